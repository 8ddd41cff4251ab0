/**
 * External OpenID Connect providers as sources of principals, in two ways:
 * - browser sign-in: authorization code flow with PKCE (S256), `state` and `nonce`, done with
 *   openid-client (the caller keeps the `PendingSignIn` between redirect and callback);
 * - subject tokens: an ID token (or, when configured, a JWT access token) the provider issued,
 *   presented to the token endpoint and verified here against the provider's published keys.
 *
 * A provider's discovery document is fetched on first use and kept; a failed discovery is retried
 * on the next use. Its signing keys are cached by jose and refetched when a token names an unknown
 * `kid` (at most once per cooldown). Plain HTTP is allowed only for an issuer on a loopback address.
 * Every refusal is an OAuthError; a provider that cannot be reached gives `temporarily_unavailable`
 * (fail closed, but distinguishable from a bad token). Each request to a provider is a client span
 * and carries the trace context (`traceparent`).
 *
 * @example
 *   const providers = new OidcProviders(config.delegation.providers, { events });
 *   const { url, pending } = await providers.beginSignIn('corp', 'https://mandate.example/signin/corp/callback');
 *   // store `pending` keyed by pending.state, redirect the browser to `url`; on the callback:
 *   const principal = await providers.completeSignIn(pending, new URL(req.url, publicUrl));
 */
import { readFileSync } from 'node:fs';
import {
  createRemoteJWKSet,
  customFetch as joseCustomFetch,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type FetchImplementation,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import * as client from 'openid-client';
import { Agent, fetch as undiciFetch } from 'undici';
import { isLoopbackHost, parseUrl } from '../../config/address.ts';
import type { OidcProviderConfig } from '../../config/types.ts';
import { MandateError, messageOf } from '../../errors.ts';
import type { EventSink } from '../../observability/events.ts';
import { jwksCacheProbe } from '../../observability/metrics.ts';
import { tracedFetch } from '../../observability/tracing.ts';
import { OAuthError } from '../oauth/errors.ts';
import type { Principal } from './principal.ts';

/** What the caller keeps (keyed by `state`) between sending the browser away and its return. */
export interface PendingSignIn {
  providerId: string;
  state: string;
  nonce: string;
  codeVerifier: string;
  redirectUri: string;
}

export interface OidcProvidersOptions {
  /** Receives `principal.signin` events for completed and failed sign-ins. */
  events?: EventSink;
  /** Minimum time between key refetches triggered by an unknown `kid`. Default 30 s. */
  jwksCooldownMs?: number;
  /** Timeout of each request to a provider. Default 10 s. */
  timeoutMs?: number;
}

/** Signature algorithms accepted from providers: asymmetric only (a shared secret proves nothing about the issuer). */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
/** Seconds of clock difference tolerated on `exp`, `nbf` and `iat`. */
const CLOCK_TOLERANCE = 30;

type TokenKind = 'id' | 'access';

interface Connection {
  config: client.Configuration;
  /** The issuer as the discovery document names it: tokens must carry exactly this `iss`. */
  issuer: string;
  keys: JWTVerifyGetKey;
}

interface ProviderState {
  readonly config: OidcProviderConfig;
  /** The issuer as a normalised URL, to find the provider of a token. */
  readonly issuerHref: string;
  readonly insecure: boolean;
  readonly fetch: CaFetch | undefined;
  connection: Promise<Connection> | undefined;
}

/** One fetch implementation for both openid-client and jose, trusting only the configured CA. */
type CaFetch = (url: string, init: { method: string; headers: HeadersInit; body?: unknown; redirect?: RequestRedirect; signal?: AbortSignal }) => Promise<Response>;

function configError(id: string, message: string): MandateError {
  return new MandateError('ERR_CONFIG_INVALID', `delegation.providers "${id}": ${message}`);
}

function fetchWithCa(id: string, caFile: string): CaFetch {
  let ca: string;
  try {
    ca = readFileSync(caFile, 'utf8');
  } catch (err) {
    throw configError(id, `cannot read caFile: ${messageOf(err)}`);
  }
  const dispatcher = new Agent({ connect: { ca } });
  // undici's own fetch (not Node's bundled one) so that the Agent of the same undici version applies;
  // its Response differs nominally from the DOM type the libraries declare, at runtime they agree.
  return (url, init) =>
    undiciFetch(url, {
      method: init.method,
      headers: init.headers instanceof Headers ? [...init.headers] : (init.headers as Record<string, string>),
      body: init.body as string | URLSearchParams | undefined,
      redirect: init.redirect,
      signal: init.signal,
      dispatcher,
    }) as unknown as Promise<Response>;
}

/** The platform's fetch, for providers served with publicly trusted certificates. */
const plainFetch: CaFetch = (url, init) => fetch(url, init as RequestInit);

/** https, or http on a loopback address; as an issuer also without query or fragment. */
function fetchableUrl(text: string): URL | undefined {
  const url = parseUrl(text);
  if (url === undefined || url.username !== '' || url.password !== '' || url.hash !== '') return undefined;
  if (url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname))) return url;
  return undefined;
}

/** The reason hidden in fetch's and openid-client's error chains (refused, TLS, DNS, HTTP status). */
function describe(err: unknown): string {
  const cause = err instanceof Error ? err.cause : undefined;
  if (cause instanceof Error) return `${messageOf(err)}: ${messageOf(cause)}`;
  const status = (cause as { status?: unknown } | undefined)?.status;
  return typeof status === 'number' ? `${messageOf(err)} (HTTP ${status})` : messageOf(err);
}

/** Network failure, timeout, or an HTTP 5xx without an OAuth error body. */
function isUnreachable(err: unknown): boolean {
  if (err instanceof TypeError && err.message === 'fetch failed') return true;
  if (err instanceof client.ClientError) {
    if (err.code === 'OAUTH_TIMEOUT' || err.code === 'OAUTH_ABORT') return true;
    const status = (err.cause as { status?: unknown } | undefined)?.status;
    return typeof status === 'number' && status >= 500;
  }
  return false;
}

/** Text from the provider, fit to quote in a description: no control characters, bounded length. */
function quote(text: string): string {
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
  return clean.length > 200 ? `${clean.slice(0, 200)}...` : clean;
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function stringArray(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((v) => typeof v === 'string') ? [...value] : undefined;
}

function audiences(payload: JWTPayload): string[] {
  return typeof payload.aud === 'string' ? [payload.aud] : (stringArray(payload.aud) ?? []);
}

/** ID tokens carry no `typ` or `JWT`; JWT access tokens `at+jwt` (RFC 9068 §2.1). Others are refused. */
function tokenKind(typ: unknown): TokenKind | undefined {
  if (typ === undefined) return 'id';
  if (typeof typ !== 'string') return undefined;
  const t = typ.toLowerCase();
  if (t === 'jwt') return 'id';
  if (t === 'at+jwt' || t === 'application/at+jwt') return 'access';
  return undefined;
}

/** Maps provider claims to a principal; `iss` and `sub` have been verified by the caller. */
function principalFromClaims(claims: Record<string, unknown>, authMethod: Principal['authMethod']): Principal {
  const subject = claims.sub as string;
  const email = nonEmptyString(claims.email);
  return {
    issuer: claims.iss as string,
    subject,
    name: nonEmptyString(claims.name) ?? nonEmptyString(claims.preferred_username) ?? email ?? subject,
    ...(email === undefined ? {} : { email }),
    groups: stringArray(claims.groups) ?? stringArray(claims.roles) ?? [],
    authMethod,
  };
}

function isPendingSignIn(value: unknown): value is PendingSignIn {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return ['providerId', 'state', 'nonce', 'codeVerifier', 'redirectUri'].every((k) => typeof v[k] === 'string' && v[k] !== '');
}

/** The configured external identity providers. */
export class OidcProviders {
  readonly #providers = new Map<string, ProviderState>();
  readonly #events: EventSink | undefined;
  readonly #cooldownMs: number;
  readonly #timeoutMs: number;

  /** @throws MandateError ERR_CONFIG_INVALID for a duplicate id, an unusable issuer or an unreadable caFile. */
  constructor(providers: readonly OidcProviderConfig[], opts: OidcProvidersOptions = {}) {
    this.#events = opts.events;
    this.#cooldownMs = opts.jwksCooldownMs ?? 30_000;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
    for (const config of providers) {
      if (this.#providers.has(config.id)) throw configError(config.id, 'configured twice');
      const issuer = fetchableUrl(config.issuer);
      if (issuer === undefined || issuer.search !== '') {
        throw configError(config.id, `issuer "${config.issuer}" must be an https URL without query or fragment (http only on a loopback address)`);
      }
      this.#providers.set(config.id, {
        config,
        issuerHref: issuer.href,
        insecure: issuer.protocol === 'http:',
        fetch: tracedFetch(config.caFile === undefined ? plainFetch : fetchWithCa(config.id, config.caFile)),
        connection: undefined,
      });
    }
  }

  /** The providers to offer on the sign-in page, in configuration order. */
  list(): Array<{ id: string; name: string }> {
    return [...this.#providers.values()].map((p) => ({ id: p.config.id, name: p.config.name }));
  }

  /**
   * Starts a sign-in: the URL to send the browser to, and what to keep until it comes back to
   * `redirectUri` (which must be registered at the provider, and have no query or fragment).
   */
  async beginSignIn(id: string, redirectUri: string): Promise<{ url: string; pending: PendingSignIn }> {
    const provider = this.#provider(id);
    const redirect = parseUrl(redirectUri);
    if (redirect === undefined || (redirect.protocol !== 'https:' && redirect.protocol !== 'http:') || redirect.search !== '' || redirect.hash !== '') {
      throw new OAuthError('invalid_request', `redirect URI "${quote(String(redirectUri))}" must be an absolute http(s) URL without query or fragment`);
    }
    const { config } = await this.#connect(provider);
    const state = client.randomState();
    const nonce = client.randomNonce();
    const codeVerifier = client.randomPKCECodeVerifier();
    const scope = ['openid', ...provider.config.scopes.filter((s) => s !== 'openid')].join(' ');
    let url: URL;
    try {
      url = client.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope,
        state,
        nonce,
        code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
      });
    } catch (err) {
      throw new OAuthError('server_error', `identity provider "${id}" cannot start a sign-in: ${messageOf(err)}`, { cause: err });
    }
    return { url: url.href, pending: { providerId: id, state, nonce, codeVerifier, redirectUri } };
  }

  /**
   * Finishes a sign-in when the browser returns: checks `state`, exchanges the code (with the PKCE
   * verifier), validates the ID token (nonce, audience, issuer, times, and its signature against the
   * provider's keys), and adds the provider's userinfo claims when it has a userinfo endpoint. Only
   * the query of `callbackUrl` is used; the redirect URI sent to the provider is the pending one.
   *
   * @throws OAuthError access_denied when the provider reports an error (the user declined, ...),
   *   invalid_request for a mismatched or malformed response, temporarily_unavailable when the
   *   provider cannot be reached, server_error otherwise.
   */
  async completeSignIn(pending: PendingSignIn, callbackUrl: URL): Promise<Principal> {
    const providerId = isPendingSignIn(pending) ? pending.providerId : undefined;
    try {
      const principal = await this.#completeSignIn(pending, callbackUrl);
      this.#events?.emit({ type: 'principal.signin', outcome: 'success', authMethod: 'oidc', provider: providerId, issuer: principal.issuer, subject: principal.subject });
      return principal;
    } catch (err) {
      const error = err instanceof OAuthError ? err : new OAuthError('server_error', `sign-in at identity provider "${providerId}" failed: ${messageOf(err)}`, { cause: err });
      this.#events?.emit({ type: 'principal.signin', outcome: 'failure', authMethod: 'oidc', provider: providerId, error: error.error, reason: error.message });
      throw error;
    }
  }

  async #completeSignIn(pending: PendingSignIn, callbackUrl: URL): Promise<Principal> {
    if (!isPendingSignIn(pending)) throw new OAuthError('invalid_request', 'the pending sign-in is malformed');
    const provider = this.#provider(pending.providerId);
    const id = provider.config.id;
    const params = callbackUrl.searchParams;
    if (params.get('state') !== pending.state) throw new OAuthError('invalid_request', 'the state of the sign-in response does not match the pending sign-in');
    const error = params.get('error');
    if (error !== null) {
      const description = params.get('error_description');
      throw new OAuthError('access_denied', `identity provider "${id}" refused the sign-in: ${quote(error)}${description === null ? '' : ` (${quote(description)})`}`);
    }
    if (!params.has('code')) throw new OAuthError('invalid_request', `the sign-in response from identity provider "${id}" has no authorization code`);

    const current = parseUrl(pending.redirectUri);
    if (current === undefined) throw new OAuthError('invalid_request', 'the pending sign-in is malformed');
    current.search = callbackUrl.search;
    const connection = await this.#connect(provider);
    let idToken: string | undefined;
    let accessToken: string;
    try {
      const tokens = await client.authorizationCodeGrant(connection.config, current, {
        pkceCodeVerifier: pending.codeVerifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
      });
      idToken = tokens.id_token;
      accessToken = tokens.access_token;
    } catch (err) {
      throw this.#exchangeError(id, 'the authorization code exchange', err);
    }
    if (idToken === undefined) throw new OAuthError('invalid_request', `identity provider "${id}" returned no ID token`);
    const claims = await this.#verify(provider, connection, idToken, new Date(), 'invalid_request');
    if (tokenKind(decodeProtectedHeader(idToken).typ) !== 'id') throw new OAuthError('invalid_request', `the ID token of identity provider "${id}" has a wrong "typ"`);
    this.#checkIdTokenAudience(provider, claims, 'invalid_request');

    let userinfo: Record<string, unknown> = {};
    if (connection.config.serverMetadata().userinfo_endpoint !== undefined) {
      try {
        userinfo = await client.fetchUserInfo(connection.config, accessToken, claims.sub);
      } catch (err) {
        throw this.#exchangeError(id, 'the userinfo request', err);
      }
    }
    // The verified ID token decides iss and sub; userinfo only fills in what it lacks.
    return principalFromClaims({ ...userinfo, ...claims }, 'oidc');
  }

  /**
   * Verifies a token presented as a subject token. Returns null when its `iss` (read before
   * verification) is not a configured provider, or it is not a JWT at all: it is then not this
   * module's to judge. Otherwise the token must be signed with an asymmetric algorithm by a key the
   * provider publishes, carry exactly the provider's `iss`, be within its times (30 s tolerance),
   * and be either an ID token (no `typ` or `JWT`) for this deployment's client id, or a JWT access
   * token (`at+jwt`) for the provider's `accessTokenAudience` when one is configured.
   *
   * @throws OAuthError invalid_grant naming the problem; temporarily_unavailable when the provider's
   *   discovery document or keys cannot be fetched.
   */
  async verifySubjectToken(token: string, now: Date = new Date()): Promise<Principal | null> {
    let unverified: JWTPayload;
    let typ: unknown;
    try {
      unverified = decodeJwt(token);
      typ = decodeProtectedHeader(token).typ;
    } catch {
      return null;
    }
    const candidates = this.#byIssuer(unverified.iss);
    if (candidates.length === 0) return null;
    const first = candidates[0]!;
    const kind = tokenKind(typ);
    if (kind === undefined) {
      throw new OAuthError('invalid_grant', `a token of type "${quote(String(typ))}" from identity provider "${first.config.id}" is not accepted as a subject token`);
    }
    const claims = await this.#verify(first, await this.#connect(first), token, now, 'invalid_grant');
    if (kind === 'id') {
      const provider = candidates.find((p) => audiences(claims).includes(p.config.clientId)) ?? first;
      this.#checkIdTokenAudience(provider, claims, 'invalid_grant');
    } else {
      const accepting = candidates.filter((p) => p.config.accessTokenAudience !== undefined);
      if (accepting.length === 0) {
        throw new OAuthError('invalid_grant', `access tokens of identity provider "${first.config.id}" are not accepted (no accessTokenAudience is configured); present an ID token`);
      }
      if (!accepting.some((p) => audiences(claims).includes(p.config.accessTokenAudience!))) {
        throw new OAuthError('invalid_grant', `the access token's audience ${JSON.stringify(claims.aud)} does not include ${accepting.map((p) => `"${p.config.accessTokenAudience}"`).join(' or ')}`);
      }
    }
    return principalFromClaims(claims, 'token');
  }

  #provider(id: string): ProviderState {
    const provider = this.#providers.get(id);
    if (provider === undefined) throw new OAuthError('invalid_request', `unknown identity provider "${quote(String(id))}"`);
    return provider;
  }

  #byIssuer(iss: unknown): ProviderState[] {
    if (typeof iss !== 'string') return [];
    const href = parseUrl(iss)?.href;
    return href === undefined ? [] : [...this.#providers.values()].filter((p) => p.issuerHref === href);
  }

  /** Discovery once per provider; a failure is not kept, so the next use tries again. */
  #connect(provider: ProviderState): Promise<Connection> {
    if (provider.connection === undefined) {
      const connecting = this.#discover(provider);
      provider.connection = connecting;
      connecting.catch(() => {
        if (provider.connection === connecting) provider.connection = undefined;
      });
    }
    return provider.connection;
  }

  async #discover(provider: ProviderState): Promise<Connection> {
    const { id, issuer, clientId, clientSecret } = provider.config;
    const options: client.DiscoveryRequestOptions = {
      execute: provider.insecure ? [client.allowInsecureRequests] : [],
      timeout: Math.ceil(this.#timeoutMs / 1000),
    };
    if (provider.fetch !== undefined) options[client.customFetch] = provider.fetch as unknown as client.CustomFetch;
    let config: client.Configuration;
    try {
      config = await client.discovery(new URL(issuer), clientId, undefined, clientAuthentication(clientSecret?.reveal()), options);
    } catch (err) {
      throw new OAuthError('temporarily_unavailable', `identity provider "${id}" (${issuer}) cannot be reached: ${describe(err)}`, { cause: err });
    }
    const metadata = config.serverMetadata();
    const jwksUri = metadata.jwks_uri === undefined ? undefined : fetchableUrl(metadata.jwks_uri);
    if (jwksUri === undefined) {
      throw new OAuthError('temporarily_unavailable', `identity provider "${id}" publishes no usable jwks_uri (https, or http on loopback): ${JSON.stringify(metadata.jwks_uri)}`);
    }
    const probe = jwksCacheProbe(provider.fetch ?? plainFetch);
    const remote = createRemoteJWKSet(jwksUri, {
      cooldownDuration: this.#cooldownMs,
      timeoutDuration: this.#timeoutMs,
      [joseCustomFetch]: probe.fetch as unknown as FetchImplementation,
    });
    const keys: JWTVerifyGetKey = async (header, token) => {
      try {
        return await probe.lookup(() => remote(header, token));
      } catch (err) {
        if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys || err instanceof joseErrors.JOSENotSupported) throw err;
        throw new OAuthError('temporarily_unavailable', `the signing keys of identity provider "${id}" cannot be fetched from ${jwksUri.href}: ${describe(err)}`, { cause: err });
      }
    };
    return { config, issuer: metadata.issuer, keys };
  }

  /** Signature, algorithm, exact issuer, times; `sub` must be present. */
  async #verify(provider: ProviderState, connection: Connection, token: string, now: Date, code: 'invalid_grant' | 'invalid_request'): Promise<JWTPayload & { sub: string; iss: string }> {
    const id = provider.config.id;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, connection.keys, {
        algorithms: ALGORITHMS,
        issuer: connection.issuer,
        currentDate: now,
        clockTolerance: CLOCK_TOLERANCE,
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      if (err instanceof OAuthError) throw err;
      throw new OAuthError(code, `the token from identity provider "${id}" is refused: ${joseReason(err)}`, { cause: err });
    }
    if (nonEmptyString(payload.sub) === undefined) throw new OAuthError(code, `the token from identity provider "${id}" has no "sub"`);
    return payload as JWTPayload & { sub: string; iss: string };
  }

  /** OpenID Connect Core §3.1.3.7: `aud` contains our client id, and `azp`, if present, is it. */
  #checkIdTokenAudience(provider: ProviderState, claims: JWTPayload, code: 'invalid_grant' | 'invalid_request'): void {
    const { id, clientId } = provider.config;
    if (!audiences(claims).includes(clientId)) {
      throw new OAuthError(code, `the ID token's audience ${JSON.stringify(claims.aud)} does not include the client id "${clientId}" of identity provider "${id}"`);
    }
    if (claims.azp !== undefined && claims.azp !== clientId) {
      throw new OAuthError(code, `the ID token was issued to ${JSON.stringify(claims.azp)} (azp), not to the client id "${clientId}" of identity provider "${id}"`);
    }
  }

  #exchangeError(id: string, what: string, err: unknown): OAuthError {
    if (err instanceof OAuthError) return err;
    if (err instanceof client.ResponseBodyError) {
      const detail = `${quote(err.error)}${err.error_description === undefined ? '' : ` (${quote(err.error_description)})`}`;
      if (err.status >= 500) return new OAuthError('temporarily_unavailable', `identity provider "${id}" failed ${what}: ${detail}`, { cause: err });
      return new OAuthError('invalid_request', `identity provider "${id}" refused ${what}: ${detail}`, { cause: err });
    }
    if (isUnreachable(err)) return new OAuthError('temporarily_unavailable', `identity provider "${id}" cannot be reached for ${what}: ${describe(err)}`, { cause: err });
    if (err instanceof client.ClientError || err instanceof client.AuthorizationResponseError || err instanceof client.WWWAuthenticateChallengeError) {
      return new OAuthError('invalid_request', `the response of identity provider "${id}" to ${what} is invalid: ${describe(err)}`, { cause: err });
    }
    return new OAuthError('server_error', `${what} with identity provider "${id}" failed: ${messageOf(err)}`, { cause: err });
  }
}

/** Confidential clients authenticate as the provider prefers (basic unless only post is offered); public ones not at all. */
function clientAuthentication(secret: string | undefined): client.ClientAuth {
  if (secret === undefined) return client.None();
  const basic = client.ClientSecretBasic(secret);
  const post = client.ClientSecretPost(secret);
  return (as, c, body, headers) => {
    const supported = as.token_endpoint_auth_methods_supported;
    const usePost = supported !== undefined && !supported.includes('client_secret_basic') && supported.includes('client_secret_post');
    (usePost ? post : basic)(as, c, body, headers);
  };
}

/** A sentence for a jose verification failure. */
function joseReason(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) {
    const exp = err.payload.exp;
    return typeof exp === 'number' ? `it expired at ${new Date(exp * 1000).toISOString()}` : 'it has expired';
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'its signature does not verify';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'no published signing key matches its "kid"';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'its signature algorithm is not allowed (asymmetric algorithms only)';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `claim "${err.claim}" failed validation (${err.reason})`;
  return messageOf(err);
}
