/**
 * Verifying JWT-SVIDs (JWT-SVID Appendix A) against the bundle of the token's own trust domain.
 *
 * Uses node:crypto directly: keys come pre-imported from the bundle (one import per JWK object), the
 * async crypto.verify runs on the libuv pool so verifications spread over the CPU cores, and a token
 * presented again skips the signature check while its signing key is still in the bundle
 * (verified-signatures.ts).
 */
import { constants, verify, type KeyObject, type VerifyKeyObjectInput } from 'node:crypto';
import type { JWK, JWSHeaderParameters, JWTPayload } from 'jose';
import { MandateError } from '../../errors.ts';
import { recordCacheLookup } from '../../observability/metrics.ts';
import type { Bundle } from '../bundle/bundle.ts';
import { publicKeyOf } from '../bundle/jwt-authority.ts';
import type { TrustBundleSet } from '../bundle/set.ts';
import { parseSpiffeId, type SpiffeId } from '../spiffe-id/parse.ts';
import { ALGORITHMS, jwkFitsAlg, type JwtSvidAlg } from './algorithms.ts';
import { decodeJwtSvid, type DecodedJwtSvid } from './decode.ts';
import { rememberSigner, tokenDigest, verifiedBefore } from './verified-signatures.ts';

export interface VerifyJwtSvidOptions {
  /** The audience(s) this validator identifies with; the token's `aud` must contain one of them. */
  audience: string | string[];
  now?: Date;
  /** Leeway for `exp`, `nbf` and `iat`, seconds. Default 30. */
  clockToleranceSeconds?: number;
  /** Longest token accepted, in characters. Default 16 KiB. */
  maxLength?: number;
}

export interface VerifiedJwtSvid {
  spiffeId: SpiffeId;
  claims: JWTPayload;
  header: JWSHeaderParameters;
}

const DEFAULT_TOLERANCE_SECONDS = 30;
const DEFAULT_MAX_LENGTH = 16 * 1024;

function invalid(message: string): MandateError {
  return new MandateError('ERR_JWT_SVID_INVALID', message);
}

function subjectOf(payload: JWTPayload): SpiffeId {
  if (typeof payload.sub !== 'string') throw invalid('sub claim is missing or not a string');
  try {
    return parseSpiffeId(payload.sub);
  } catch (err) {
    throw new MandateError('ERR_JWT_SVID_INVALID', `sub claim is not a SPIFFE ID: ${(err as Error).message}`, { cause: err });
  }
}

/** The authorities that may have signed: the one named by kid, or every one fitting alg. */
function candidateKeys(bundle: Bundle, header: DecodedJwtSvid['header']): JWK[] {
  const { alg, kid } = header;
  if (bundle.jwtAuthorities.size === 0) throw invalid(`trust domain ${bundle.trustDomain} has no JWT authorities`);
  if (kid !== undefined) {
    const jwk = bundle.jwtAuthorities.get(kid);
    if (jwk === undefined) throw invalid(`kid ${JSON.stringify(kid)} is not a JWT authority of trust domain ${bundle.trustDomain}`);
    if (!jwkFitsAlg(jwk, alg)) throw invalid(`key ${kid} of trust domain ${bundle.trustDomain} does not fit alg ${alg}`);
    return [jwk];
  }
  const fitting = [...bundle.jwtAuthorities.values()].filter((jwk) => jwkFitsAlg(jwk, alg));
  if (fitting.length === 0) throw invalid(`no JWT authority of trust domain ${bundle.trustDomain} fits alg ${alg}`);
  return fitting;
}

function verifyInput(key: KeyObject, alg: JwtSvidAlg): VerifyKeyObjectInput {
  const spec = ALGORITHMS[alg];
  if (spec.kty === 'EC') return { key, dsaEncoding: 'ieee-p1363' };
  if (spec.pss) return { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST };
  return { key, padding: constants.RSA_PKCS1_PADDING };
}

function verifyAsync(alg: JwtSvidAlg, data: Buffer, key: KeyObject, signature: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    // An error here (e.g. a key the provider refuses) means "not verified", never "verified".
    verify(ALGORITHMS[alg].hash, data, verifyInput(key, alg), signature, (err, ok) => resolve(err === null && ok));
  });
}

/** Returns the key that verified the signature. */
async function checkSignature(decoded: DecodedJwtSvid, keys: JWK[]): Promise<JWK> {
  const { alg } = decoded.header;
  const expected = ALGORITHMS[alg].signatureLength;
  if (expected !== undefined && decoded.signature.length !== expected) {
    throw invalid(`signature is ${decoded.signature.length} bytes, ${alg} needs ${expected}`);
  }
  const data = Buffer.from(decoded.signingInput, 'latin1');
  for (const jwk of keys) {
    if (await verifyAsync(alg, data, publicKeyOf(jwk), decoded.signature)) return jwk;
  }
  throw invalid('signature verification failed');
}

function numericClaim(payload: JWTPayload, name: 'exp' | 'nbf' | 'iat'): number | undefined {
  const value = payload[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw invalid(`${name} claim is not a number`);
  return value;
}

function checkTimes(payload: JWTPayload, now: number, tolerance: number): void {
  const exp = numericClaim(payload, 'exp');
  if (exp === undefined) throw invalid('exp claim is missing (JWT-SVID §3.3)');
  if (now - tolerance >= exp) throw new MandateError('ERR_JWT_SVID_EXPIRED', `token expired at ${new Date(exp * 1000).toISOString()}`);
  const nbf = numericClaim(payload, 'nbf');
  if (nbf !== undefined && now + tolerance < nbf) throw invalid(`token is not valid before ${new Date(nbf * 1000).toISOString()} (nbf)`);
  const iat = numericClaim(payload, 'iat');
  if (iat !== undefined && now + tolerance < iat) throw invalid(`token was issued in the future at ${new Date(iat * 1000).toISOString()} (iat)`);
}

function checkAudience(payload: JWTPayload, expected: readonly string[]): void {
  const aud = payload.aud;
  const values = typeof aud === 'string' ? [aud] : aud;
  if (values === undefined) throw invalid('aud claim is missing (JWT-SVID §3.2)');
  if (!Array.isArray(values) || values.length === 0 || !values.every((v) => typeof v === 'string')) {
    throw invalid('aud claim is not a string or a non-empty array of strings');
  }
  if (!values.some((v) => expected.includes(v))) {
    throw new MandateError('ERR_JWT_SVID_AUDIENCE', `aud ${JSON.stringify(values)} contains none of the expected audiences`);
  }
}

function expectedAudiences(audience: string | string[]): string[] {
  const list = typeof audience === 'string' ? [audience] : audience;
  // A validator without an audience would accept tokens meant for anyone (JWT-SVID §7.2).
  if (!Array.isArray(list) || list.length === 0 || list.some((a) => typeof a !== 'string' || a === '')) {
    throw new MandateError('ERR_INTERNAL', 'verifyJwtSvid needs at least one non-empty expected audience');
  }
  return list;
}

/**
 * Verifies a JWT-SVID: compact form, header (alg in the JWT-SVID list, only alg/kid/typ, typ JWT or
 * JOSE), `sub` a SPIFFE ID whose trust domain's bundle holds the signing key, signature, `exp`
 * (required), `aud` (required, one expected value), `nbf`/`iat` if present.
 *
 * Shape problems and failed signatures are ERR_JWT_SVID_INVALID; a well-formed token past its `exp` is
 * ERR_JWT_SVID_EXPIRED, one for other audiences ERR_JWT_SVID_AUDIENCE.
 *
 * @throws MandateError ERR_JWT_SVID_INVALID | ERR_JWT_SVID_EXPIRED | ERR_JWT_SVID_AUDIENCE |
 *   ERR_BUNDLE_UNKNOWN_TRUST_DOMAIN, the message naming the failed check.
 * @example
 *   const { spiffeId, claims } = await verifyJwtSvid(bearer, bundles, { audience: 'spiffe://example.org/gateway' });
 */
export async function verifyJwtSvid(token: string, bundles: TrustBundleSet, opts: VerifyJwtSvidOptions): Promise<VerifiedJwtSvid> {
  const expected = expectedAudiences(opts.audience);
  const decoded = decodeJwtSvid(token, opts.maxLength ?? DEFAULT_MAX_LENGTH);
  const spiffeId = subjectOf(decoded.payload);
  // Only the bundle of the subject's own trust domain may vouch for it (Federation §7.3).
  const bundle = bundles.forSpiffeId(spiffeId);
  const keys = candidateKeys(bundle, decoded.header);
  const digest = tokenDigest(token);
  const verified = verifiedBefore(digest, keys);
  recordCacheLookup('jwt_svid_validation', verified);
  if (!verified) rememberSigner(digest, await checkSignature(decoded, keys));
  const now = (opts.now ?? new Date()).getTime() / 1000;
  checkTimes(decoded.payload, now, opts.clockToleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS);
  checkAudience(decoded.payload, expected);
  return { spiffeId, claims: decoded.payload, header: decoded.header };
}
