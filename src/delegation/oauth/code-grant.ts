/**
 * The grants of user-facing clients: authorization code with PKCE (RFC 6749 §4.1, RFC 7636), and
 * rotating refresh tokens (RFC 9700 §4.14.2). Codes are single use: a second use revokes the
 * refresh-token family issued from the first. Refresh tokens rotate on every use; presenting a
 * spent one revokes its whole family (the sign of a stolen token).
 *
 * The tokens minted here are the principal's own access tokens (no `act`), for the one resource
 * asked for, carrying the consented mandate's id; an agent exchanges them for OBO tokens.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { emitRefusal } from '../../observability/events.ts';
import type { PrincipalRef } from '../../store/store.ts';
import { MANDATE_ID_PREFIX, mandateIsLive } from '../mandates/mandates.ts';
import { mintAccessToken } from '../tokens/mint.ts';
import { GRANT, type OAuthContext } from './context.ts';
import { OAuthError } from './errors.ts';
import { bindingFor, type GrantRequest, type TokenResponse } from './token-exchange.ts';

export const CODE_KIND = 'authorization-code';

/** What an authorization code stands for (stored under the code's hash). */
export interface CodeGrant {
  clientId: string;
  redirectUri: string;
  codeChallenge: string;
  principal: PrincipalRef;
  scopes: string[];
  resources: string[];
  mandateId: string | null;
  authTime: number;
  /**
   * Refresh-token family this code's tokens belong to (revoked if the code is replayed). A consented
   * grant's family is named by its mandate id, so refreshed tokens keep carrying the mandate.
   */
  familyId: string;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function newSecret(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

function pkceMatches(verifier: string, challenge: string): boolean {
  if (!/^[A-Za-z0-9._~-]{43,128}$/.test(verifier)) {
    throw new OAuthError('invalid_grant', 'code_verifier must be 43-128 characters of [A-Za-z0-9._~-] (RFC 7636 §4.1)');
  }
  const computed = Buffer.from(createHash('sha256').update(verifier).digest('base64url'));
  const expected = Buffer.from(challenge);
  return computed.length === expected.length && timingSafeEqual(computed, expected);
}

function pickResource(r: GrantRequest, granted: string[]): string {
  const asked = [...new Set(r.params.all('resource'))];
  if (asked.length > 1) throw new OAuthError('invalid_target', 'name one resource per token request');
  const resource = asked[0] ?? (granted.length === 1 ? granted[0] : undefined);
  if (resource === undefined) throw new OAuthError('invalid_target', `name the resource (RFC 8707) this token is for: one of ${granted.join(', ')}`);
  if (!granted.includes(resource)) throw new OAuthError('invalid_target', `resource ${resource} was not part of the grant`);
  return resource;
}

function pickScopes(r: GrantRequest, granted: string[]): string[] {
  const asked = r.params.scopes();
  if (asked === undefined) return granted;
  const extra = asked.filter((s) => !granted.includes(s));
  if (extra.length > 0) throw new OAuthError('invalid_scope', `scope ${extra.join(' ')} was not granted`);
  return asked;
}

type Binding = Awaited<ReturnType<typeof bindingFor>>;

interface GrantFields {
  principal: PrincipalRef;
  scopes: string[];
  resources: string[];
  mandateId: string | null;
  familyId: string;
  authTime?: number;
}

/**
 * Everything that can refuse the request, checked before the code or refresh token is spent: a
 * refused proof (a `use_dpop_nonce` round trip, say) or a wrong resource must not burn the grant.
 */
async function prepare(ctx: OAuthContext, r: GrantRequest, grant: GrantFields, boundTo: string | null, binding: Binding) {
  if (boundTo !== null) {
    // A DPoP-bound refresh family stays bound to the same key (RFC 9449 §5).
    if (!binding.cnf?.jkt) throw new OAuthError('invalid_dpop_proof', 'this refresh token is DPoP-bound: send a DPoP proof of the same key');
    if (binding.cnf.jkt !== boundTo) throw new OAuthError('invalid_dpop_proof', 'this refresh token is bound to another DPoP key than the one that signed the proof');
  }
  const resource = pickResource(r, grant.resources);
  const scopes = pickScopes(r, grant.scopes);
  let ttl = ctx.config.token.maxTtl;
  if (grant.mandateId !== null) {
    const mandate = await ctx.mandates.get(grant.mandateId);
    if (!mandate || !mandateIsLive(mandate, ctx.now())) throw new OAuthError('invalid_grant', `mandate ${grant.mandateId} is no longer live`);
    ttl = Math.min(ttl, Math.floor((mandate.expiresAt.getTime() - ctx.now().getTime()) / 1000));
  }
  return { resource, scopes, ttl };
}

async function issue(ctx: OAuthContext, r: GrantRequest, grant: GrantFields, binding: Binding, checked: { resource: string; scopes: string[]; ttl: number }): Promise<TokenResponse> {
  const { resource, scopes, ttl } = checked;
  const { token, claims } = await mintAccessToken(ctx.keys, {
    iss: ctx.issuer,
    sub: grant.principal.subject,
    principal_iss: grant.principal.issuer,
    aud: resource,
    client_id: r.client.client.clientId,
    scope: scopes.join(' '),
    ...(grant.mandateId !== null && { mandate: grant.mandateId }),
    ...(grant.authTime !== undefined && { auth_time: grant.authTime }),
    ...(binding.cnf && { cnf: binding.cnf }),
    ttlSeconds: ttl,
    now: ctx.now(),
  });
  const response: TokenResponse = { access_token: token, token_type: binding.tokenType, expires_in: ttl, scope: claims.scope };
  if (r.client.client.grantTypes.includes(GRANT.refreshToken)) {
    const refresh = newSecret('mrt_');
    await ctx.store.createRefreshToken({
      tokenHash: hashSecret(refresh),
      familyId: grant.familyId,
      clientId: r.client.client.clientId,
      principal: grant.principal,
      scopes: grant.scopes,
      resources: grant.resources,
      dpopJkt: binding.cnf?.jkt ?? null,
      expiresAt: new Date(ctx.now().getTime() + ctx.config.refreshTokenTtl * 1000),
      createdAt: ctx.now(),
      usedAt: null,
    });
    response.refresh_token = refresh;
  }
  await ctx.events.emit({
    type: 'token.issued', outcome: 'success', clientId: r.client.client.clientId, principal: grant.principal,
    mandateId: grant.mandateId ?? undefined, resource, scopes, jti: claims.jti, sourceAddress: r.sourceAddress,
  });
  return response;
}

export async function authorizationCodeGrant(ctx: OAuthContext, r: GrantRequest): Promise<TokenResponse> {
  const code = r.params.require('code');
  const redirectUri = r.params.require('redirect_uri', '(the one sent to the authorization endpoint)');
  const verifier = r.params.require('code_verifier', '(PKCE is required)');
  const binding = await bindingFor(ctx, r, false);
  const key = hashSecret(code);
  const seen = await ctx.store.getEphemeral(CODE_KIND, key, ctx.now());
  if (!seen) throw new OAuthError('invalid_grant', 'the authorization code is unknown or expired');
  const grant = seen.value as CodeGrant;
  let checked;
  if (seen.usedAt === null) {
    if (grant.clientId !== r.client.client.clientId) throw new OAuthError('invalid_grant', 'the authorization code was issued to another client');
    if (grant.redirectUri !== redirectUri) throw new OAuthError('invalid_grant', 'redirect_uri differs from the one in the authorization request');
    if (!pkceMatches(verifier, grant.codeChallenge)) throw new OAuthError('invalid_grant', 'code_verifier does not match the code_challenge (PKCE)');
    checked = await prepare(ctx, r, grant, null, binding);
  }
  const found = await ctx.store.consumeEphemeral(CODE_KIND, key, ctx.now());
  if (!found) throw new OAuthError('invalid_grant', 'the authorization code is unknown or expired');
  if (!found.consumed || !checked) {
    // RFC 6749 §4.1.2: a reused code revokes what was issued from it.
    await ctx.store.revokeRefreshFamily(grant.familyId);
    await emitRefusal(ctx.events, { type: 'token.refused', outcome: 'failure', error: 'invalid_grant', reason: 'authorization code reused; its refresh tokens are revoked', clientId: grant.clientId });
    throw new OAuthError('invalid_grant', 'the authorization code has already been used');
  }
  return issue(ctx, r, grant, binding, checked);
}

export async function refreshTokenGrant(ctx: OAuthContext, r: GrantRequest): Promise<TokenResponse> {
  if (!r.client.client.grantTypes.includes(GRANT.refreshToken)) throw new OAuthError('unauthorized_client', `client ${r.client.client.clientId} may not use refresh tokens`);
  const presented = r.params.require('refresh_token');
  const binding = await bindingFor(ctx, r, false);
  const key = hashSecret(presented);
  const t = await ctx.store.getRefreshToken(key, ctx.now());
  if (!t) throw new OAuthError('invalid_grant', 'the refresh token is unknown, revoked or expired');
  // Another client's token is refused without touching it (it is not this caller's to spend).
  if (t.clientId !== r.client.client.clientId) throw new OAuthError('invalid_grant', 'the refresh token was issued to another client');
  const grant: GrantFields = { principal: t.principal, scopes: t.scopes, resources: t.resources, mandateId: t.familyId.startsWith(MANDATE_ID_PREFIX) ? t.familyId : null, familyId: t.familyId };
  const checked = t.usedAt === null ? await prepare(ctx, r, grant, t.dpopJkt, binding) : undefined;
  const found = await ctx.store.consumeRefreshToken(key, ctx.now());
  if (!found) throw new OAuthError('invalid_grant', 'the refresh token is unknown, revoked or expired');
  if (!found.consumed || !checked) {
    await ctx.store.revokeRefreshFamily(t.familyId);
    await emitRefusal(ctx.events, { type: 'token.refused', outcome: 'failure', error: 'invalid_grant', reason: 'refresh token reused; its family is revoked', clientId: t.clientId });
    throw new OAuthError('invalid_grant', 'the refresh token has already been used; every token of its grant is now revoked');
  }
  return issue(ctx, r, grant, binding, checked);
}
