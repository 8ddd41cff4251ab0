/**
 * The signature algorithms JWT-SVID allows (JWT-SVID §2.1) and which keys fit each one.
 * Anything outside this table (`none`, HS*, EdDSA, ...) is rejected by issuers and verifiers.
 */
import type { KeyObject } from 'node:crypto';

export const JWT_SVID_ALGS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const;

/** A JWS `alg` value permitted for JWT-SVIDs. */
export type JwtSvidAlg = (typeof JWT_SVID_ALGS)[number];

export interface AlgorithmSpec {
  /** node:crypto digest name. */
  hash: 'sha256' | 'sha384' | 'sha512';
  kty: 'EC' | 'RSA';
  /** EC only: the one curve the algorithm is defined for (RFC 7518 §3.4). */
  crv?: 'P-256' | 'P-384' | 'P-521';
  /** EC only: length of the IEEE P1363 (r || s) signature in bytes. */
  signatureLength?: number;
  pss: boolean;
}

export const ALGORITHMS: Readonly<Record<JwtSvidAlg, AlgorithmSpec>> = {
  ES256: { hash: 'sha256', kty: 'EC', crv: 'P-256', signatureLength: 64, pss: false },
  ES384: { hash: 'sha384', kty: 'EC', crv: 'P-384', signatureLength: 96, pss: false },
  ES512: { hash: 'sha512', kty: 'EC', crv: 'P-521', signatureLength: 132, pss: false },
  RS256: { hash: 'sha256', kty: 'RSA', pss: false },
  RS384: { hash: 'sha384', kty: 'RSA', pss: false },
  RS512: { hash: 'sha512', kty: 'RSA', pss: false },
  PS256: { hash: 'sha256', kty: 'RSA', pss: true },
  PS384: { hash: 'sha384', kty: 'RSA', pss: true },
  PS512: { hash: 'sha512', kty: 'RSA', pss: true },
};

/** Smallest RSA modulus accepted for JWT-SVID keys (RFC 7518 §3.3 requires 2048 bits). */
export const MIN_RSA_BITS = 2048;

/**
 * @example isJwtSvidAlg('ES256') // true;  isJwtSvidAlg('HS256') // false
 */
export function isJwtSvidAlg(value: unknown): value is JwtSvidAlg {
  return typeof value === 'string' && Object.hasOwn(ALGORITHMS, value);
}

/**
 * Whether a public JWK may verify signatures made with `alg`: key type and curve must match, and a
 * JWK that names its own `alg` is only used for that one.
 *
 * @example jwkFitsAlg({ kty: 'EC', crv: 'P-256' }, 'ES256') // true
 */
export function jwkFitsAlg(jwk: { kty?: string; crv?: string; alg?: string }, alg: JwtSvidAlg): boolean {
  const spec = ALGORITHMS[alg];
  if (jwk.alg !== undefined && jwk.alg !== alg) return false;
  if (jwk.kty !== spec.kty) return false;
  return spec.crv === undefined || jwk.crv === spec.crv;
}

const NODE_CURVES: Readonly<Record<string, string>> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' };

/**
 * Why a key object cannot sign or verify with `alg`, or undefined when it can.
 *
 * @example keyObjectMismatch(ecP256PrivateKey, 'RS256') // 'alg RS256 needs an RSA key, got ec'
 */
export function keyObjectMismatch(key: KeyObject, alg: JwtSvidAlg): string | undefined {
  const spec = ALGORITHMS[alg];
  const type = key.asymmetricKeyType;
  if (spec.kty === 'EC') {
    if (type !== 'ec') return `alg ${alg} needs an EC ${spec.crv} key, got ${type ?? key.type}`;
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve !== NODE_CURVES[spec.crv ?? '']) return `alg ${alg} needs curve ${spec.crv}, got ${curve ?? 'unknown'}`;
    return undefined;
  }
  // An rsa-pss key is restricted to PSS by its own parameters, so it cannot serve RS*.
  if (type !== 'rsa' && !(type === 'rsa-pss' && spec.pss)) return `alg ${alg} needs an RSA key, got ${type ?? key.type}`;
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) return `RSA key has ${bits} bits, fewer than ${MIN_RSA_BITS}`;
  return undefined;
}
