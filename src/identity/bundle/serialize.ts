/**
 * Bundles as documents: the SPIFFE bundle (for bundle endpoints and federation), the plain JWKS
 * (Workload API FetchJWTBundles) and concatenated DER (Workload API X.509 bundles).
 */
import type { X509Certificate } from 'node:crypto';
import type { JWK } from 'jose';
import type { Bundle } from './bundle.ts';

/** A SPIFFE bundle document (bundle spec §4.1). */
export interface SpiffeBundleJson {
  keys: JWK[];
  spiffe_sequence?: number;
  spiffe_refresh_hint?: number;
}

/** A JWK Set of JWT-SVID keys. */
export interface JwksJson {
  keys: JWK[];
}

const KTY_OF_KEY_TYPE: Readonly<Record<string, string>> = { ec: 'EC', rsa: 'RSA', 'rsa-pss': 'RSA', ed25519: 'OKP', ed448: 'OKP' };

function x509Entry(cert: X509Certificate): JWK {
  let params: JWK;
  try {
    params = cert.publicKey.export({ format: 'jwk' }) as JWK;
  } catch {
    // Some key types (rsa-pss) have no JWK form; the certificate in x5c is what consumers use.
    params = { kty: KTY_OF_KEY_TYPE[cert.publicKey.asymmetricKeyType ?? ''] ?? 'RSA' };
  }
  // X509-SVID §6.1: use x509-svid, the certificate in x5c, and no kid.
  return { use: 'x509-svid', ...params, x5c: [cert.raw.toString('base64')] };
}

/** The only members a published JWT authority carries; anything else (`d`, say) stays private. */
const PUBLIC_JWK_MEMBERS = ['kty', 'crv', 'x', 'y', 'n', 'e', 'alg'] as const;

function jwtEntries(b: Bundle): JWK[] {
  return [...b.jwtAuthorities].map(([kid, jwk]) => {
    const entry: JWK = {};
    for (const name of PUBLIC_JWK_MEMBERS) if (jwk[name] !== undefined) entry[name] = jwk[name];
    return { ...entry, kid, use: 'jwt-svid' };
  });
}

/**
 * The SPIFFE bundle document of `b`: `x509-svid` entries first, then `jwt-svid` entries.
 *
 * @example res.json(toSpiffeBundleJson(bundles.get('example.org')!));
 */
export function toSpiffeBundleJson(b: Bundle): SpiffeBundleJson {
  const doc: SpiffeBundleJson = { keys: [...b.x509Authorities.map(x509Entry), ...jwtEntries(b)] };
  if (b.sequence !== undefined) doc.spiffe_sequence = b.sequence;
  if (b.refreshHint !== undefined) doc.spiffe_refresh_hint = b.refreshHint;
  return doc;
}

/**
 * The JWT authorities of `b` as a JWK Set, as the Workload API's FetchJWTBundles returns them.
 *
 * @example const jwks = Buffer.from(JSON.stringify(toJwksJson(bundle)));
 */
export function toJwksJson(b: Bundle): JwksJson {
  return { keys: jwtEntries(b) };
}

/**
 * The X.509 authorities of `b` as concatenated DER certificates (Workload API `X509SVID.bundle`).
 *
 * @example const der = x509AuthoritiesDer(bundle); // Buffer of cert1 DER || cert2 DER
 */
export function x509AuthoritiesDer(b: Bundle): Buffer {
  return Buffer.concat(b.x509Authorities.map((cert) => cert.raw));
}
