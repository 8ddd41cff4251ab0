/**
 * Redirect URIs: the exact-match check at the authorization endpoint and the rules a URI must meet
 * to be registered (dynamically or in a Client ID Metadata Document).
 *
 * Matching is simple string comparison (RFC 9700 §4.1.1, RFC 6749 §3.1.2): no patterns, no case
 * folding, no normalisation; a trailing slash, an extra query or a different case is a different
 * URI. The one exception is RFC 8252 §7.3: for an `http` redirect URI on a loopback IP literal
 * (`127.0.0.1` or `[::1]`) any port is accepted, because native apps get an ephemeral port from
 * the operating system at run time. `localhost` does not get this exception: RFC 8252 §8.3 calls
 * loopback redirects by name NOT RECOMMENDED (the name may resolve elsewhere or be claimed by
 * another listener), so a `http://localhost:<port>/...` URI must match exactly, port included.
 *
 * @example
 *   checkRedirectUri(client, 'http://127.0.0.1:51234/callback'); // ok if http://127.0.0.1/callback is registered
 *   validateRedirectUri('https://app.example/cb#x')              // 'must not contain a fragment (RFC 6749 §3.1.2)'
 */
import { isLoopbackHost } from '../../config/address.ts';
import { OAuthError } from '../oauth/errors.ts';
import type { OAuthClient } from './client.ts';

/** Longest redirect URI accepted at registration. */
export const MAX_REDIRECT_URI_LENGTH = 2000;

/** `http://127.0.0.1` or `http://[::1]`, an optional port, and the rest of the URI. */
const LOOPBACK_IP = /^http:\/\/(127\.0\.0\.1|\[::1\])(?::([0-9]+))?(?=$|[/?#])(.*)$/s;

interface LoopbackParts {
  host: string;
  rest: string;
}

function loopbackParts(uri: string): LoopbackParts | undefined {
  const m = LOOPBACK_IP.exec(uri);
  if (m === null) return undefined;
  const port = m[2];
  if (port !== undefined && !/^[1-9][0-9]{0,4}$/.test(port)) return undefined;
  if (port !== undefined && Number(port) > 65535) return undefined;
  return { host: m[1]!, rest: m[3]! };
}

/** True when `requested` equals `registered`, or both are loopback IP http URIs differing only in port. */
export function redirectUriMatches(registered: string, requested: string): boolean {
  if (registered === requested) return true;
  const a = loopbackParts(registered);
  if (a === undefined) return false;
  const b = loopbackParts(requested);
  return b !== undefined && a.host === b.host && a.rest === b.rest;
}

/**
 * Accepts `redirectUri` for `client` or throws; the authorization endpoint must then show the error
 * to the user and not redirect (RFC 6749 §4.1.2.1).
 *
 * @throws OAuthError invalid_request
 */
export function checkRedirectUri(client: OAuthClient, redirectUri: string): void {
  if (redirectUri.includes('#')) {
    throw new OAuthError('invalid_request', 'redirect_uri must not contain a fragment (RFC 6749 §3.1.2)');
  }
  if (!client.redirectUris.some((registered) => redirectUriMatches(registered, redirectUri))) {
    throw new OAuthError('invalid_request', `redirect_uri is not registered for client ${client.clientId.slice(0, 200)}; it must match a registered URI exactly`);
  }
}

/**
 * Checks a redirect URI offered for registration: absolute; no fragment; no user name or password;
 * https, or http on a loopback host (RFC 8252 §7.3; `localhost` included, as the MCP authorization
 * spec allows), or a private-use scheme in reverse domain name form, i.e. containing a dot
 * (RFC 8252 §7.1). Printable ASCII only (RFC 3986: other characters must be percent-encoded).
 *
 * @returns undefined when acceptable, else a sentence saying what is wrong.
 */
export function validateRedirectUri(uri: string): string | undefined {
  if (uri.length === 0) return 'must not be empty';
  if (uri.length > MAX_REDIRECT_URI_LENGTH) return `must not be longer than ${MAX_REDIRECT_URI_LENGTH} characters`;
  if (!/^[\x21-\x7e]+$/.test(uri)) return 'must consist of printable ASCII characters without spaces (percent-encode the rest)';
  if (uri.includes('#')) return 'must not contain a fragment (RFC 6749 §3.1.2)';
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(uri)?.[1];
  if (scheme === undefined) return 'must be an absolute URI with a scheme';
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return 'must be an absolute URI';
  }
  const authority = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(uri)?.[1];
  if (authority?.includes('@') === true || url.username !== '' || url.password !== '') {
    return 'must not contain a user name or password';
  }
  const lower = scheme.toLowerCase();
  if (lower === 'https') {
    if (authority === undefined || authority === '') return 'must name a host';
    return undefined;
  }
  if (lower === 'http') {
    if (authority === undefined || authority === '') return 'must name a host';
    if (!isLoopbackHost(url.hostname)) return 'must use https (http is allowed only on a loopback host, RFC 8252 §7.3)';
    return undefined;
  }
  if (lower.includes('.')) return undefined;
  return `scheme "${scheme}" is not allowed: use https, http on a loopback host, or a private-use scheme in reverse domain name form such as com.example.app (RFC 8252 §7.1)`;
}
