/**
 * The public keys DPoP proofs carry in their `jwk` header, imported once and reused: an agent signs
 * every proof with the same key, so the import and the RFC 7638 thumbprint are computed on its first
 * proof only. Signatures are checked with node:crypto directly (jose's WebCrypto path costs several
 * times more per call on Node 20, and a proof is checked on every token request and tool call).
 *
 * @example
 *   const { key, jkt } = proofKey(jwk);          // throws ProofKeyError for an unusable key
 *   await verifyJwsSignature(`${h}.${p}`, signature, 'ES256', key)  // true or false
 */
import { constants, createHash, createPublicKey, verify, type KeyObject, type VerifyKeyObjectInput } from 'node:crypto';
import type { JWK } from 'jose';
import { recordCacheLookup } from '../../observability/metrics.ts';

export class ProofKeyError extends Error {}

/** RFC 7638 §3.2: the required members of each key type, in lexicographic order. */
const THUMBPRINT_MEMBERS: Readonly<Record<string, readonly string[]>> = {
  EC: ['crv', 'kty', 'x', 'y'],
  RSA: ['e', 'kty', 'n'],
  OKP: ['crv', 'kty', 'x'],
};

const MIN_RSA_BITS = 2048;
const MAX_CACHED_KEYS = 10_000;
const cache = new Map<string, { key: KeyObject; jkt: string }>();

/** The key and its SHA-256 thumbprint (the `jkt` tokens bind to). */
export function proofKey(jwk: JWK): { key: KeyObject; jkt: string } {
  const members = THUMBPRINT_MEMBERS[jwk.kty as string];
  if (!members) throw new ProofKeyError(`kty ${String(jwk.kty)} is not supported`);
  const required: Record<string, string> = {};
  for (const name of members) {
    const value = (jwk as Record<string, unknown>)[name];
    if (typeof value !== 'string' || value === '') throw new ProofKeyError(`member "${name}" is missing or not a string`);
    required[name] = value;
  }
  const canonical = JSON.stringify(required, members as string[]);
  const hit = cache.get(canonical);
  recordCacheLookup('dpop_key', hit !== undefined);
  if (hit) return hit;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: required as unknown as import('node:crypto').JsonWebKey, format: 'jwk' });
  } catch (err) {
    throw new ProofKeyError((err as Error).message);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (jwk.kty === 'RSA' && (bits === undefined || bits < MIN_RSA_BITS)) throw new ProofKeyError(`an RSA key of ${bits ?? 'unknown'} bits is too small (at least ${MIN_RSA_BITS})`);
  const entry = { key, jkt: createHash('sha256').update(canonical).digest('base64url') };
  if (cache.size >= MAX_CACHED_KEYS) cache.delete(cache.keys().next().value as string);
  cache.set(canonical, entry);
  return entry;
}

const HASHES: Readonly<Record<string, string | null>> = {
  ES256: 'sha256', ES384: 'sha384', ES512: 'sha512',
  RS256: 'sha256', RS384: 'sha384', RS512: 'sha512',
  PS256: 'sha256', PS384: 'sha384', PS512: 'sha512',
  EdDSA: null, Ed25519: null,
};

/**
 * Checks a JWS signature over `signingInput` (header.payload, ASCII) with `alg`. The verification
 * runs on libuv's thread pool, not on the event loop: an ECDSA verification costs 60-100 µs, which
 * the gateway and the token endpoint pay on every request.
 */
export function verifyJwsSignature(signingInput: string, signature: Buffer, alg: string, key: KeyObject): Promise<boolean> {
  const hash = HASHES[alg];
  if (hash === undefined) return Promise.resolve(false);
  const input: VerifyKeyObjectInput = alg.startsWith('ES')
    ? { key, dsaEncoding: 'ieee-p1363' }
    : alg.startsWith('PS')
      ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
      : alg.startsWith('RS') ? { key, padding: constants.RSA_PKCS1_PADDING } : { key };
  return new Promise((resolve) => {
    try {
      verify(hash, Buffer.from(signingInput, 'ascii'), input, signature, (err, ok) => resolve(!err && ok));
    } catch {
      resolve(false);
    }
  });
}
