/**
 * X.509 authorities: CA certificates published as `x509-svid` JWK entries (X509-SVID §6).
 */
import { X509Certificate } from 'node:crypto';
import { MandateError } from '../../errors.ts';
import { PRIVATE_JWK_MEMBERS } from './jwt-authority.ts';
import { decodeBase64Strict } from './encoding.ts';

/** Key types a CA certificate may carry; entries of any other type are ignored (bundle spec §4.2.1). */
export const X509_AUTHORITY_KTYS: ReadonlySet<string> = new Set(['EC', 'RSA', 'OKP']);

const KTY_OF_KEY_TYPE: Readonly<Record<string, string>> = { ec: 'EC', rsa: 'RSA', 'rsa-pss': 'RSA', ed25519: 'OKP', ed448: 'OKP' };

/** Key parameters an entry may repeat next to its certificate; if present they must match it. */
const KEY_PARAMS = ['crv', 'x', 'y', 'n', 'e'] as const;

function invalid(where: string, problem: string, cause?: unknown): MandateError {
  return new MandateError('ERR_BUNDLE_INVALID', `${where}: ${problem}`, cause === undefined ? undefined : { cause });
}

function certificateOf(x5c: unknown, where: string): X509Certificate {
  if (!Array.isArray(x5c)) throw invalid(where, 'x509-svid entry has no x5c array');
  // X509-SVID §6.1: exactly one CA certificate per entry (go-spiffe rejects others; so do we).
  if (x5c.length !== 1) throw invalid(where, `x5c must hold exactly one certificate, has ${x5c.length}`);
  const b64: unknown = x5c[0];
  if (typeof b64 !== 'string') throw invalid(where, 'x5c[0] is not a string');
  const der = decodeBase64Strict(b64);
  if (der === undefined || der.length === 0) throw invalid(where, 'x5c[0] is not base64');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch (err) {
    throw invalid(where, 'x5c[0] is not a DER certificate', err);
  }
  if (!cert.raw.equals(der)) throw invalid(where, 'x5c[0] has bytes beyond its certificate');
  return cert;
}

function checkKeyParams(raw: Record<string, unknown>, cert: X509Certificate, where: string): void {
  const certKty = KTY_OF_KEY_TYPE[cert.publicKey.asymmetricKeyType ?? ''];
  if (certKty !== raw.kty) throw invalid(where, `kty ${String(raw.kty)} does not match the certificate's ${cert.publicKey.asymmetricKeyType ?? 'unknown'} key`);
  let certJwk: Record<string, unknown>;
  try {
    certJwk = cert.publicKey.export({ format: 'jwk' }) as Record<string, unknown>;
  } catch {
    return; // e.g. rsa-pss keys have no JWK form; the certificate stays authoritative.
  }
  for (const name of KEY_PARAMS) {
    // A consumer reading the JWK instead of the certificate must not end up trusting another key.
    if (raw[name] !== undefined && raw[name] !== certJwk[name]) throw invalid(where, `member "${name}" does not match the x5c certificate's public key`);
  }
}

/**
 * Validates one `x509-svid` JWK entry and returns its CA certificate, or undefined when its key type
 * is unknown. `where` prefixes error messages, e.g. `keys[0]`.
 *
 * @example const ca = x509AuthorityFromJwk({ use: 'x509-svid', kty: 'EC', x5c: [derBase64] }, 'keys[0]');
 */
export function x509AuthorityFromJwk(raw: Record<string, unknown>, where: string): X509Certificate | undefined {
  if (typeof raw.kty !== 'string' || !X509_AUTHORITY_KTYS.has(raw.kty)) return undefined;
  if (raw.kid !== undefined) throw invalid(where, 'x509-svid entry must not have a kid (X509-SVID §6.1)');
  for (const member of PRIVATE_JWK_MEMBERS) {
    if (raw[member] !== undefined) throw invalid(where, `contains private key member "${member}"`);
  }
  const cert = certificateOf(raw.x5c, where);
  checkKeyParams(raw, cert, where);
  return cert;
}
