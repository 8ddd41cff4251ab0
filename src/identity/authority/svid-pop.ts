/**
 * SVID-PoP: how a workload that already holds an X.509-SVID authenticates to Mandate to renew it or
 * to get JWT-SVIDs. The request carries a compact JWS signed with the SVID's private key, its
 * certificate chain in `x5c`, bound to the method, path and body hash, short-lived and single-use
 * (the shape follows DPoP, RFC 9449, with an X.509-SVID in place of a bare JWK).
 */
import { createHash, X509Certificate } from 'node:crypto';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { MandateError, messageOf } from '../../errors.ts';
import type { TrustBundleSet } from '../bundle/set.ts';
import type { SpiffeId } from '../spiffe-id/parse.ts';
import { verifyX509Svid } from '../x509-svid/verify.ts';

export const SVID_POP_TYPE = 'svid-pop+jwt';
const MAX_AGE_S = 120;
const ALGS = ['ES256', 'ES384', 'ES512', 'RS256', 'PS256', 'EdDSA'];

/** Remembers proof ids until they expire, so a captured proof cannot be replayed. */
export class ReplayCache {
  #seen = new Map<string, number>();
  #lastSweep = 0;

  /** Returns false when the id was already seen (and not yet expired). */
  remember(id: string, expiresAtMs: number, nowMs: number): boolean {
    if (nowMs - this.#lastSweep > 10_000) {
      for (const [k, exp] of this.#seen) if (exp < nowMs) this.#seen.delete(k);
      this.#lastSweep = nowMs;
    }
    const exp = this.#seen.get(id);
    if (exp !== undefined && exp >= nowMs) return false;
    this.#seen.set(id, expiresAtMs);
    return true;
  }
}

function fail(message: string): never {
  throw new MandateError('ERR_UNAUTHENTICATED', `SVID-PoP: ${message}`);
}

export interface VerifySvidPopInput {
  /** Value of the Authorization header. */
  authorization: string | undefined;
  method: string;
  path: string;
  body: Buffer;
  bundles: TrustBundleSet;
  trustDomain: string;
  replay: ReplayCache;
  now?: Date;
}

/**
 * Verifies an `Authorization: SVID-PoP <jws>` header and returns the caller's SPIFFE ID and chain.
 *
 * @example const { spiffeId } = await verifySvidPop({ authorization: req.headers.authorization, method: 'POST', path: '/v1/svid/jwt', body, bundles, trustDomain, replay });
 */
export async function verifySvidPop(input: VerifySvidPopInput): Promise<{ spiffeId: SpiffeId; chain: X509Certificate[] }> {
  const auth = input.authorization ?? '';
  const match = /^SVID-PoP ([A-Za-z0-9_\-.]+)$/.exec(auth);
  if (!match) fail('missing or malformed Authorization header (expected "SVID-PoP <jws>")');
  const jws = match[1] as string;
  if (jws.length > 32 * 1024) fail('proof is too large');
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(jws);
  } catch (err) {
    fail(`proof header cannot be decoded: ${messageOf(err)}`);
  }
  if (header.typ !== SVID_POP_TYPE) fail(`proof typ must be ${SVID_POP_TYPE}`);
  if (typeof header.alg !== 'string' || !ALGS.includes(header.alg)) fail(`proof alg ${String(header.alg)} is not allowed`);
  if (!Array.isArray(header.x5c) || header.x5c.length === 0 || header.x5c.length > 10) fail('proof x5c must hold the SVID chain');
  let chain: X509Certificate[];
  try {
    chain = header.x5c.map((c) => new X509Certificate(Buffer.from(String(c), 'base64')));
  } catch (err) {
    fail(`proof x5c is not a certificate chain: ${messageOf(err)}`);
  }
  const now = input.now ?? new Date();
  const { spiffeId } = verifyX509Svid(chain, input.bundles, { now });
  if (spiffeId.trustDomain !== input.trustDomain) fail(`caller ${spiffeId} is not in trust domain ${input.trustDomain}`);

  let payload: Record<string, unknown>;
  try {
    const verified = await compactVerify(jws, (chain[0] as X509Certificate).publicKey, { algorithms: ALGS });
    payload = JSON.parse(Buffer.from(verified.payload).toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    fail(`proof signature does not verify with the SVID key: ${messageOf(err)}`);
  }
  const nowS = Math.floor(now.getTime() / 1000);
  const { htm, htu, iat, exp, jti, bh } = payload;
  if (htm !== input.method) fail(`proof is for method ${String(htm)}, not ${input.method}`);
  if (htu !== input.path) fail(`proof is for ${String(htu)}, not ${input.path}`);
  if (typeof iat !== 'number' || typeof exp !== 'number') fail('proof needs numeric iat and exp');
  if (iat > nowS + 30) fail('proof iat is in the future');
  if (exp < nowS - 30) fail('proof has expired');
  if (exp - iat > MAX_AGE_S) fail(`proof lifetime exceeds ${MAX_AGE_S} s`);
  if (typeof jti !== 'string' || jti.length < 16 || jti.length > 128) fail('proof jti must be a random string of 16 to 128 characters');
  const bodyHash = createHash('sha256').update(input.body).digest('base64url');
  if (bh !== bodyHash) fail('proof body hash does not match the request body');
  if (!input.replay.remember(`${spiffeId}|${jti}`, (exp + 30) * 1000, now.getTime())) fail('proof was already used');
  return { spiffeId, chain };
}
