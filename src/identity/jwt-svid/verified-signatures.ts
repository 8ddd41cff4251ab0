/**
 * A bounded memory of tokens whose signature already verified, and with which key.
 *
 * An agent presents the same JWT-SVID on every call for the token's whole lifetime, and the signature
 * check (≈100 µs for ES256) dominates verification. Remembering "this exact token was signed by this
 * JWK object" skips it on repeats. A hit counts only while that same JWK object is still an authority of
 * the subject's current bundle, so replacing or removing a bundle or key takes effect at once. Claims
 * (exp, aud, ...) are checked afresh on every call; failures are never remembered.
 */
import { createHash, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { GenerationalMap } from '../../util/generational-map.ts';
import { publicKeyOf } from '../bundle/jwt-authority.ts';

interface Signer {
  jwk: JWK;
  /** The key imported from `jwk` when it verified; a JWK edited in place imports to another one. */
  key: KeyObject;
}

/** Entries per generation; at most twice this many are remembered. */
const GENERATION_SIZE = 5_000;

// Keyed by a digest of the whole token, so memory stays bounded whatever the token sizes.
const remembered = new GenerationalMap<string, Signer>(GENERATION_SIZE);

/**
 * @example const d = tokenDigest(token); if (!verifiedBefore(d, keys)) rememberSigner(d, await check(keys));
 */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token).digest('base64');
}

/**
 * True if the token with this digest verified before under one of `candidates` (the same JWK object,
 * its key parameters unchanged).
 */
export function verifiedBefore(digest: string, candidates: readonly JWK[]): boolean {
  const signer = remembered.get(digest);
  return signer !== undefined && candidates.includes(signer.jwk) && publicKeyOf(signer.jwk) === signer.key;
}

/** Remembers that `jwk` verified the token with this digest. */
export function rememberSigner(digest: string, jwk: JWK): void {
  remembered.set(digest, { jwk, key: publicKeyOf(jwk) });
}
