/**
 * JWT authorities: the public keys JWT-SVIDs of a trust domain are signed with, as JWK entries of a
 * bundle (JWT-SVID §6). Parsing normalises each entry to its public parameters and imports it once;
 * verifiers reuse that imported key through `publicKeyOf`.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { MandateError } from '../../errors.ts';
import { isJwtSvidAlg, jwkFitsAlg, MIN_RSA_BITS } from '../jwt-svid/algorithms.ts';
import { decodeBase64UrlStrict } from './encoding.ts';

/** Key types JWT-SVID algorithms can use; entries of any other type are ignored (bundle spec §4.2.1). */
export const JWT_AUTHORITY_KTYS: ReadonlySet<string> = new Set(['EC', 'RSA']);

/** Members that only a private or symmetric JWK has: a bundle carrying them leaks a secret. */
export const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

const CURVE_BYTES: Readonly<Record<string, number>> = { 'P-256': 32, 'P-384': 48, 'P-521': 66 };

interface ImportedKey {
  key: KeyObject;
  /** The key parameters it was imported from, to notice a JWK edited in place after import. */
  params: readonly (string | undefined)[];
}

// Keyed by the JWK object itself, so a replaced bundle drops its keys with it.
const imported = new WeakMap<JWK, ImportedKey>();

const paramsOf = (jwk: JWK): (string | undefined)[] => [jwk.kty, jwk.crv, jwk.x, jwk.y, jwk.n, jwk.e];

function remember(jwk: JWK, key: KeyObject): void {
  imported.set(jwk, { key, params: paramsOf(jwk) });
}

function invalid(where: string, problem: string, cause?: unknown): MandateError {
  return new MandateError('ERR_BUNDLE_INVALID', `${where}: ${problem}`, cause === undefined ? undefined : { cause });
}

function base64urlMember(raw: Record<string, unknown>, name: string, where: string, length?: number): string {
  const value = raw[name];
  if (typeof value !== 'string' || value === '') throw invalid(where, `member "${name}" is missing or not a string`);
  const bytes = decodeBase64UrlStrict(value);
  if (bytes === undefined) throw invalid(where, `member "${name}" is not base64url`);
  // RFC 7518 §6.2.1.2: EC coordinates are full length, so no two encodings name the same key.
  if (length !== undefined && bytes.length !== length) throw invalid(where, `member "${name}" is ${bytes.length} bytes, expected ${length}`);
  return value;
}

function publicParams(raw: Record<string, unknown>, where: string): JWK {
  if (raw.kty === 'EC') {
    const crv = raw.crv;
    if (typeof crv !== 'string' || CURVE_BYTES[crv] === undefined) throw invalid(where, `EC curve ${JSON.stringify(crv)} is not P-256, P-384 or P-521`);
    const x = base64urlMember(raw, 'x', where, CURVE_BYTES[crv]);
    const y = base64urlMember(raw, 'y', where, CURVE_BYTES[crv]);
    return { kty: 'EC', crv, x, y };
  }
  return { kty: 'RSA', n: base64urlMember(raw, 'n', where), e: base64urlMember(raw, 'e', where) };
}

function importPublic(jwk: JWK, where: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
  } catch (err) {
    throw invalid(where, 'key parameters do not form a valid public key', err);
  }
  if (jwk.kty === 'RSA') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) throw invalid(where, `RSA key has ${bits} bits, fewer than ${MIN_RSA_BITS}`);
  }
  return key;
}

/**
 * Validates one JWK entry as a JWT authority and returns its normalised, frozen public JWK
 * (`kty`, key parameters, `kid`, `use: 'jwt-svid'`, `alg` if the entry named one), or undefined when
 * its key type is not one JWT-SVID can use. `where` prefixes error messages, e.g. `keys[2]`.
 *
 * @example const jwk = jwtAuthorityFromJwk({ kty: 'EC', crv: 'P-256', x, y, kid: 'k1', use: 'jwt-svid' }, 'keys[0]');
 */
export function jwtAuthorityFromJwk(raw: Record<string, unknown>, where: string): JWK | undefined {
  if (typeof raw.kty !== 'string' || !JWT_AUTHORITY_KTYS.has(raw.kty)) return undefined;
  for (const member of PRIVATE_JWK_MEMBERS) {
    if (raw[member] !== undefined) throw invalid(where, `contains private key member "${member}"`);
  }
  const kid = raw.kid;
  if (kid === undefined) throw invalid(where, 'jwt-svid key has no kid (JWT-SVID §6.1 requires one)');
  if (typeof kid !== 'string' || kid === '') throw invalid(where, 'kid is not a non-empty string');
  const jwk: JWK = publicParams(raw, where);
  if (raw.alg !== undefined) {
    if (!isJwtSvidAlg(raw.alg)) throw invalid(where, `alg ${JSON.stringify(raw.alg)} is not a JWT-SVID algorithm`);
    if (!jwkFitsAlg(jwk, raw.alg)) throw invalid(where, `alg ${raw.alg} does not fit a ${jwk.kty} ${jwk.crv ?? ''} key`.trimEnd());
    jwk.alg = raw.alg;
  }
  jwk.kid = kid;
  jwk.use = 'jwt-svid';
  const key = importPublic(jwk, where);
  Object.freeze(jwk);
  remember(jwk, key);
  return jwk;
}

/**
 * The imported public key of a JWT authority, imported once per JWK object (again only if the JWK's
 * key parameters were changed in place since).
 *
 * @throws MandateError ERR_BUNDLE_INVALID if the JWK is not a usable public key.
 * @example crypto.verify('sha256', data, { key: publicKeyOf(jwk), dsaEncoding: 'ieee-p1363' }, sig)
 */
export function publicKeyOf(jwk: JWK): KeyObject {
  const cached = imported.get(jwk);
  if (cached !== undefined) {
    const now = paramsOf(jwk);
    if (cached.params.every((value, i) => value === now[i])) return cached.key;
  }
  const key = importPublic(jwk, `JWT authority ${jwk.kid ?? '(no kid)'}`);
  remember(jwk, key);
  return key;
}
