/**
 * Strict base64 decoding. Buffer.from(s, 'base64') skips characters it does not know and ignores
 * non-zero padding bits, so two different strings can decode to the same bytes; a verifier must not
 * accept such aliases (a mutated signature that still verifies, a certificate hidden behind junk).
 */

const STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const URL = /^[A-Za-z0-9_-]*$/;

/**
 * Decodes RFC 4648 §4 base64 (with padding), or returns undefined if `s` is not its canonical form.
 *
 * @example decodeBase64Strict('AQAB') // <Buffer 01 00 01>;  decodeBase64Strict('AQAB\n') // undefined
 */
export function decodeBase64Strict(s: string): Buffer | undefined {
  if (!STD.test(s)) return undefined;
  const bytes = Buffer.from(s, 'base64');
  return bytes.toString('base64') === s ? bytes : undefined;
}

/**
 * Decodes RFC 4648 §5 base64url without padding, or returns undefined if `s` is not its canonical form.
 *
 * @example decodeBase64UrlStrict('AQAB') // <Buffer 01 00 01>;  decodeBase64UrlStrict('AQAC=') // undefined
 */
export function decodeBase64UrlStrict(s: string): Buffer | undefined {
  if (s.length % 4 === 1 || !URL.test(s)) return undefined;
  const bytes = Buffer.from(s, 'base64url');
  return bytes.toString('base64url') === s ? bytes : undefined;
}
