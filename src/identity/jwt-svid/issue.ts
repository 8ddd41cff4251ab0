/**
 * Issuing JWT-SVIDs (JWT-SVID §2–§3): a compact JWS with header exactly `{alg, kid, typ: 'JWT'}` and
 * claims `sub`, `aud`, `exp`, `iat`, `jti`.
 *
 * Signs with node:crypto directly rather than jose's SignJWT: the token layout is fixed, so the
 * generic header/claim handling is pure overhead, and the key is prepared once per key object.
 */
import { constants, KeyObject, randomBytes, sign, type SignKeyObjectInput, type SignPrivateKeyInput } from 'node:crypto';
import { MandateError } from '../../errors.ts';
import { parseSpiffeId } from '../spiffe-id/parse.ts';
import { ALGORITHMS, isJwtSvidAlg, keyObjectMismatch, type JwtSvidAlg } from './algorithms.ts';

export type { JwtSvidAlg } from './algorithms.ts';

export interface JwtSvidSigningKey {
  /** Published as the `kid` of this key's `jwt-svid` entry in the bundle. */
  kid: string;
  alg: JwtSvidAlg;
  privateKey: KeyObject | CryptoKey;
}

export interface IssueJwtSvidOptions {
  /** The SPIFFE ID of the workload, becomes `sub`. */
  spiffeId: string;
  /** At least one audience; one is strongly recommended (JWT-SVID §7.2). */
  audience: string[];
  ttlSeconds: number;
  key: JwtSvidSigningKey;
  now?: Date;
  /** Further claims (e.g. `iss`); may not replace sub, aud, exp, iat or jti. */
  extraClaims?: Record<string, unknown>;
}

export interface IssuedJwtSvid {
  token: string;
  expiresAt: Date;
  issuedAt: Date;
}

const CLAIMS_SET_HERE = new Set(['sub', 'aud', 'exp', 'iat', 'jti']);

interface PreparedKey {
  alg: JwtSvidAlg;
  kid: string;
  /** base64url of the JOSE header, identical for every token this key signs. */
  header: string;
  signInput: SignKeyObjectInput | SignPrivateKeyInput;
}

// Per key object, so a CryptoKey is converted and checked once, not on every token.
const prepared = new WeakMap<KeyObject | CryptoKey, PreparedKey>();

function bad(message: string): MandateError {
  return new MandateError('ERR_BAD_REQUEST', message);
}

function prepareKey(k: JwtSvidSigningKey): PreparedKey {
  const hit = prepared.get(k.privateKey);
  if (hit !== undefined && hit.alg === k.alg && hit.kid === k.kid) return hit;
  if (!isJwtSvidAlg(k.alg)) throw new MandateError('ERR_KEY_INVALID', `alg ${JSON.stringify(k.alg)} is not a JWT-SVID algorithm (JWT-SVID §2.1)`);
  if (typeof k.kid !== 'string' || k.kid === '') throw new MandateError('ERR_KEY_INVALID', 'signing key needs a non-empty kid (JWT-SVID §6.1)');
  const key = k.privateKey instanceof KeyObject ? k.privateKey : KeyObject.from(k.privateKey);
  if (key.type !== 'private') throw new MandateError('ERR_KEY_INVALID', `signing key is a ${key.type} key, not a private key`);
  const mismatch = keyObjectMismatch(key, k.alg);
  if (mismatch !== undefined) throw new MandateError('ERR_KEY_INVALID', mismatch);
  const spec = ALGORITHMS[k.alg];
  const signInput: SignKeyObjectInput | SignPrivateKeyInput = spec.kty === 'EC'
    ? { key, dsaEncoding: 'ieee-p1363' }
    : spec.pss
      ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
      : { key, padding: constants.RSA_PKCS1_PADDING };
  // JWT-SVID §2: no header beyond alg, kid and typ.
  const header = Buffer.from(JSON.stringify({ alg: k.alg, kid: k.kid, typ: 'JWT' })).toString('base64url');
  const entry: PreparedKey = { alg: k.alg, kid: k.kid, header, signInput };
  prepared.set(k.privateKey, entry);
  return entry;
}

function checkClaims(opts: IssueJwtSvidOptions): string {
  const sub = parseSpiffeId(opts.spiffeId).toString();
  if (!Array.isArray(opts.audience) || opts.audience.length === 0) throw bad('audience must name at least one audience (JWT-SVID §3.2)');
  if (!opts.audience.every((a) => typeof a === 'string' && a !== '')) throw bad('every audience must be a non-empty string');
  if (!Number.isSafeInteger(opts.ttlSeconds) || opts.ttlSeconds <= 0) throw bad(`ttlSeconds must be a positive integer, got ${String(opts.ttlSeconds)}`);
  for (const name of Object.keys(opts.extraClaims ?? {})) {
    if (CLAIMS_SET_HERE.has(name)) throw bad(`extraClaims may not set "${name}"`);
  }
  return sub;
}

function signAsync(hash: string, data: Buffer, input: SignKeyObjectInput | SignPrivateKeyInput): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    sign(hash, data, input, (err, signature) => (err ? reject(err) : resolve(signature)));
  });
}

/**
 * Issues a JWT-SVID for `spiffeId`, valid from now for `ttlSeconds`.
 *
 * @throws MandateError ERR_SPIFFE_ID_INVALID, ERR_BAD_REQUEST (audience, ttl, extra claims),
 *   ERR_KEY_INVALID (key does not fit alg).
 * @example
 *   const { token } = await issueJwtSvid({
 *     spiffeId: 'spiffe://example.org/agent/triage-bot', audience: ['spiffe://example.org/gateway'],
 *     ttlSeconds: 300, key: { kid: 'k1', alg: 'ES256', privateKey },
 *   });
 */
export async function issueJwtSvid(opts: IssueJwtSvidOptions): Promise<IssuedJwtSvid> {
  const sub = checkClaims(opts);
  const key = prepareKey(opts.key);
  const iat = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  if (!Number.isFinite(iat)) throw bad('now is not a valid date');
  const exp = iat + opts.ttlSeconds;
  const aud = opts.audience.length === 1 ? opts.audience[0] : opts.audience;
  const claims = { ...opts.extraClaims, sub, aud, exp, iat, jti: randomBytes(16).toString('base64url') };
  let json: string;
  try {
    json = JSON.stringify(claims);
  } catch (err) {
    throw new MandateError('ERR_BAD_REQUEST', `extraClaims cannot be serialised as JSON: ${(err as Error).message}`, { cause: err });
  }
  const signingInput = `${key.header}.${Buffer.from(json).toString('base64url')}`;
  let signature: Buffer;
  try {
    signature = await signAsync(ALGORITHMS[key.alg].hash, Buffer.from(signingInput), key.signInput);
  } catch (err) {
    throw new MandateError('ERR_KEY_INVALID', `signing with key ${key.kid} failed`, { cause: err });
  }
  return { token: `${signingInput}.${signature.toString('base64url')}`, expiresAt: new Date(exp * 1000), issuedAt: new Date(iat * 1000) };
}
