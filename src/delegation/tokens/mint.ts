/**
 * Signing access tokens: RFC 9068 JWTs with `typ: at+jwt`, signed by the active token-signing key.
 *
 * Signs with node:crypto directly, as the JWT-SVID issuer does: the header is fixed per key and
 * type, and jose's WebCrypto path costs twice as much per signature on Node 20 — this runs on every
 * token exchange, and `signJwt` on every gateway call for upstream and Transaction Tokens. Tokens
 * verify with any JOSE library (the tests check them with jose).
 *
 * @example
 *   const { token, claims } = await mintAccessToken(keys, {
 *     iss, sub: 'alice', principal_iss: iss, aud: 'https://tools.example/mcp', client_id: 'triage-bot',
 *     scope: 'issues:read', ttlSeconds: 300, act: { sub: 'spiffe://example.org/agent/triage-bot' },
 *     cnf: { jkt }, mandate: 'mdt_...',
 *   });
 */
import { constants, randomBytes, sign, type SignKeyObjectInput } from 'node:crypto';
import type { TokenSigningAlgorithm } from '../../config/types.ts';
import type { AccessTokenClaims } from './claims.ts';
import type { TokenSigningKey, TokenSigningKeys } from './signing-keys.ts';

export const ACCESS_TOKEN_TYPE = 'at+jwt';

export type MintInput = Omit<AccessTokenClaims, 'iat' | 'exp' | 'jti'> & { ttlSeconds: number; now?: Date };

const HASH: Readonly<Record<TokenSigningAlgorithm, string | null>> = { ES256: 'sha256', ES384: 'sha384', PS256: 'sha256', RS256: 'sha256', EdDSA: null };

interface Prepared {
  /** base64url JOSE header per `typ`: fixed for a key, so built once. */
  headers: Map<string, string>;
  hash: string | null;
  input: SignKeyObjectInput;
}

const prepared = new WeakMap<TokenSigningKey, Prepared>();

function prepare(key: TokenSigningKey): Prepared {
  let entry = prepared.get(key);
  if (!entry) {
    const input: SignKeyObjectInput = key.alg.startsWith('ES')
      ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' }
      : key.alg === 'PS256'
        ? { key: key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
        : { key: key.privateKey };
    entry = { headers: new Map(), hash: HASH[key.alg], input };
    prepared.set(key, entry);
  }
  return entry;
}

/**
 * Signs `payload` as a compact JWS with the header `{alg, kid, typ}` under the active key. Every JWT
 * this authority issues goes through here; `typ` keeps the kinds apart (RFC 8725 §3.11).
 */
export async function signJwt(keys: TokenSigningKeys, typ: string, payload: object): Promise<string> {
  const key = keys.active();
  const p = prepare(key);
  let header = p.headers.get(typ);
  if (header === undefined) {
    header = Buffer.from(JSON.stringify({ alg: key.alg, kid: key.kid, typ })).toString('base64url');
    p.headers.set(typ, header);
  }
  const signingInput = `${header}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  const signature = await new Promise<Buffer>((resolve, reject) => {
    sign(p.hash, Buffer.from(signingInput), p.input, (err, sig) => (err ? reject(err) : resolve(sig)));
  });
  return `${signingInput}.${signature.toString('base64url')}`;
}

export async function mintAccessToken(keys: TokenSigningKeys, input: MintInput): Promise<{ token: string; claims: AccessTokenClaims }> {
  const { ttlSeconds, now, ...rest } = input;
  const iat = Math.floor((now ?? new Date()).getTime() / 1000);
  const claims: AccessTokenClaims = { ...rest, iat, exp: iat + Math.max(1, Math.floor(ttlSeconds)), jti: randomBytes(16).toString('base64url') };
  return { token: await signJwt(keys, ACCESS_TOKEN_TYPE, claims), claims };
}
