/**
 * The `htu` of a DPoP proof (RFC 9449 §4.2): the HTTP target URI without query and fragment, in the
 * normal form both sides compare (RFC 9449 §4.3 point 9, RFC 3986 §6.2.2): scheme and host
 * lower-cased, the scheme's default port dropped, dot segments removed, percent-encodings of
 * unreserved characters decoded and all others upper-cased. The agent signs this form and the
 * server compares against it, so one function serves both.
 */

/** Characters RFC 3986 allows in a URI; anything else (spaces, controls, `\`, non-ASCII) is refused. */
const URI_CHARS = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/;
/** `scheme://` followed by a non-empty authority; URL() would otherwise repair `http:/x` or `http:///x`. */
const WITH_AUTHORITY = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]/;
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/;
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * Normal form of an http(s) URI for DPoP `htu` comparison.
 *
 * @throws TypeError saying why, when `uri` is not an absolute http or https URI with a host, or
 *   carries user information.
 * @example normaliseHtu('HTTPS://Server.Example.COM:443/a/./b/%7euser?x=1#f') // 'https://server.example.com/a/b/~user'
 */
export function normaliseHtu(uri: string): string {
  if (typeof uri !== 'string' || !URI_CHARS.test(uri)) throw new TypeError('it contains characters RFC 3986 does not allow in a URI');
  if (BAD_PERCENT.test(uri)) throw new TypeError('a "%" is not followed by two hex digits');
  if (!WITH_AUTHORITY.test(uri)) throw new TypeError('it is not an absolute URI with a host');
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new TypeError('its host is not valid');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`its scheme ${url.protocol.slice(0, -1)} is not http or https`);
  if (url.username !== '' || url.password !== '') throw new TypeError('it carries user information');
  const path = url.pathname.replace(/%[0-9A-Fa-f]{2}/g, (pct) => {
    const char = String.fromCharCode(Number.parseInt(pct.slice(1), 16));
    return UNRESERVED.test(char) ? char : pct.toUpperCase();
  });
  return `${url.protocol}//${url.host}${path}`;
}
