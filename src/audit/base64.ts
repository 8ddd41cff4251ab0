/**
 * Strict standard base64 (RFC 4648 section 4, `+/` alphabet, `=` padding) for the signed-note and
 * checkpoint formats. Node's `Buffer.from(s, 'base64')` silently accepts URL-safe letters, missing
 * padding and trailing garbage; a signed format needs one spelling per byte string, or a changed
 * character could decode to the same bytes and a tampered note would still verify.
 */

const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The bytes `text` encodes, or undefined unless `text` is the canonical padded standard base64 of
 * them (so non-zero unused trailing bits are refused too).
 */
export function decodeBase64Std(text: string): Buffer | undefined {
  if (!STD_BASE64.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}
