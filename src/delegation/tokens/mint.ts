/**
 * Signing access tokens: RFC 9068 JWTs with `typ: at+jwt`, signed by the active token-signing key.
 *
 * Signs with node:crypto directly, as the JWT-SVID issuer does: the header is fixed per key, and
 * jose's WebCrypto path costs twice as much per signature on Node 20 — this runs on every token
 * exchange. Tokens verify with any JOSE library (the tests check them with jose).
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
  header: string;
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
    entry = { header: Buffer.from(JSON.stringify({ alg: key.alg, kid: key.kid, typ: ACCESS_TOKEN_TYPE })).toString('base64url'), hash: HASH[key.alg], input };
    prepared.set(key, entry);
  }
  return entry;
}

export async function mintAccessToken(keys: TokenSigningKeys, input: MintInput): Promise<{ token: string; claims: AccessTokenClaims }> {
  const { ttlSeconds, now, ...rest } = input;
  const iat = Math.floor((now ?? new Date()).getTime() / 1000);
  const claims: AccessTokenClaims = { ...rest, iat, exp: iat + Math.max(1, Math.floor(ttlSeconds)), jti: randomBytes(16).toString('base64url') };
  const key = prepare(keys.active());
  const signingInput = `${key.header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const signature = await new Promise<Buffer>((resolve, reject) => {
    sign(key.hash, Buffer.from(signingInput), key.input, (err, sig) => (err ? reject(err) : resolve(sig)));
  });
  return { token: `${signingInput}.${signature.toString('base64url')}`, claims };
}
