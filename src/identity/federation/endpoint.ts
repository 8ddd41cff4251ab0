/**
 * Bundle endpoint URLs (SPIFFE Federation §5.2.1.1, `https_web`): https, no userinfo. Plain http is
 * accepted only on loopback addresses, for tests and local development.
 */
import { isLoopbackHost } from '../../config/address.ts';
import { MandateError, type ErrorCode } from '../../errors.ts';

function checkUrl(raw: string, code: ErrorCode, where: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new MandateError(code, `${where}: ${JSON.stringify(raw)} is not a URL`);
  }
  if (url.username !== '' || url.password !== '') throw new MandateError(code, `${where}: bundle endpoint URL must not include userinfo (Federation §5.2.1.1)`);
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return url;
  throw new MandateError(code, `${where}: bundle endpoint URL must be https (http only on loopback addresses), got ${url.protocol}//${url.host}`);
}

/**
 * Validates a configured bundle endpoint URL.
 *
 * @throws MandateError ERR_CONFIG_INVALID
 * @example bundleEndpointUrl('https://partner.example/bundle.json', 'federation partner.example')
 */
export function bundleEndpointUrl(raw: string, where: string): URL {
  return checkUrl(raw, 'ERR_CONFIG_INVALID', where);
}

/**
 * Resolves and validates a redirect target: it must itself be a valid bundle endpoint URL and must
 * not step down from https to http (Federation §5.2.1.4).
 *
 * @throws MandateError ERR_BUNDLE_UNAVAILABLE
 * @example redirectTarget(new URL('https://a.example/b'), '/c') // https://a.example/c
 */
export function redirectTarget(from: URL, location: string): URL {
  let resolved: string;
  try {
    resolved = new URL(location, from).href;
  } catch {
    throw new MandateError('ERR_BUNDLE_UNAVAILABLE', `${from.href} redirected to ${JSON.stringify(location)}, which is not a URL`);
  }
  const target = checkUrl(resolved, 'ERR_BUNDLE_UNAVAILABLE', `redirect from ${from.href}`);
  if (from.protocol === 'https:' && target.protocol !== 'https:') {
    throw new MandateError('ERR_BUNDLE_UNAVAILABLE', `redirect from ${from.href} to ${target.href} leaves https`);
  }
  return target;
}
