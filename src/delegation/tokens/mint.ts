/**
 * Signing access tokens: RFC 9068 JWTs with `typ: at+jwt`, signed by the active token-signing key.
 *
 * @example
 *   const { token, claims } = await mintAccessToken(keys, {
 *     iss, sub: 'alice', principal_iss: iss, aud: 'https://tools.example/mcp', client_id: 'triage-bot',
 *     scope: 'issues:read', ttlSeconds: 300, act: { sub: 'spiffe://example.org/agent/triage-bot' },
 *     cnf: { jkt }, mandate: 'mdt_...',
 *   });
 */
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import type { AccessTokenClaims } from './claims.ts';
import type { TokenSigningKeys } from './signing-keys.ts';

export const ACCESS_TOKEN_TYPE = 'at+jwt';

export type MintInput = Omit<AccessTokenClaims, 'iat' | 'exp' | 'jti'> & { ttlSeconds: number; now?: Date };

export async function mintAccessToken(keys: TokenSigningKeys, input: MintInput): Promise<{ token: string; claims: AccessTokenClaims }> {
  const { ttlSeconds, now, ...rest } = input;
  const iat = Math.floor((now ?? new Date()).getTime() / 1000);
  const claims: AccessTokenClaims = { ...rest, iat, exp: iat + Math.max(1, Math.floor(ttlSeconds)), jti: randomBytes(16).toString('base64url') };
  const key = keys.active();
  const token = await new SignJWT({ ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: ACCESS_TOKEN_TYPE })
    .sign(key.privateKey);
  return { token, claims };
}
