/**
 * The token-exchange grant (RFC 8693): a principal's token (or a parent agent's OBO token, or a
 * mandate id) plus the agent's own identity in, a short-lived On-Behalf-Of token out — for one
 * resource, within the mandate's scopes, bound to the agent's key, with the agent in `act`.
 *
 * Every rule that narrows the result lives here:
 *   - the actor is the agent that authenticated (JWT-SVID actor token or client assertion, or
 *     X.509-SVID over mTLS); `may_act` in the subject token, when present, must name it;
 *   - a live mandate must cover (principal, agent, resource, every scope); a chain's mandate is its
 *     parent's, and the chain may be no deeper than the mandate allows;
 *   - scope, audience and lifetime only shrink: never beyond the mandate, the parent token, or
 *     `delegation.token.max_ttl`;
 *   - the token is sender-constrained: DPoP (`cnf.jkt`) or the mTLS certificate (`cnf.x5t#S256`).
 */
import type { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isMandateError } from '../../errors.ts';
import { verifyJwtSvid } from '../../identity/jwt-svid/verify.ts';
import type { MandateRecord } from '../../store/store.ts';
import { verifyDpopProof } from '../binding/dpop.ts';
import { certificateThumbprint } from '../binding/mtls.ts';
import { mandateIsLive } from '../mandates/mandates.ts';
import { actChain, pushActor, scopesOf, type AccessTokenClaims, type ConfirmationClaim } from '../tokens/claims.ts';
import { mintAccessToken } from '../tokens/mint.ts';
import { describeJoseError } from '../tokens/verify.ts';
import type { AuthenticatedClient } from './client-auth.ts';
import { GRANT, TOKEN_TYPE, type OAuthContext } from './context.ts';
import { OAuthError } from './errors.ts';
import type { OAuthParams } from './form.ts';

export interface TokenResponse {
  access_token: string;
  issued_token_type?: string;
  token_type: 'DPoP' | 'Bearer';
  expires_in: number;
  scope: string;
  refresh_token?: string;
}

/** The request as the grant needs it: where it came in, and how the caller proved key possession. */
export interface GrantRequest {
  req: IncomingMessage;
  /** The token endpoint URL this request was addressed to (for DPoP `htu`). */
  endpointUrl: string;
  client: AuthenticatedClient;
  params: OAuthParams;
  /** Leaf certificate of the mTLS connection, when there is one. */
  certificate?: X509Certificate;
  sourceAddress: string;
}

type Subject =
  | { kind: 'principal'; principal: { issuer: string; subject: string }; authTime?: number; mayAct?: unknown }
  | { kind: 'parent'; claims: AccessTokenClaims }
  | { kind: 'mandate'; mandate: MandateRecord };

/**
 * RFC 8693 §2.2.2: a subject or actor token that is invalid for any reason, or unacceptable by
 * policy (no mandate covers it, depth, may_act), is answered with invalid_request.
 */
function refuse(description: string): OAuthError {
  return new OAuthError('invalid_request', description);
}

/** Binding for the new token: a DPoP proof of the caller's key, or its mTLS certificate. */
export async function bindingFor(ctx: OAuthContext, r: GrantRequest, required: boolean): Promise<{ cnf?: ConfirmationClaim; tokenType: 'DPoP' | 'Bearer' }> {
  if (r.req.headers.dpop !== undefined) {
    const proof = await verifyDpopProof(r.req.headers.dpop, { method: r.req.method ?? 'POST', url: r.endpointUrl, now: ctx.now() }, {
      ...ctx.dpop,
      requireNonce: ctx.config.dpop.requireNonce,
    });
    return { cnf: { jkt: proof.jkt }, tokenType: 'DPoP' };
  }
  if (r.certificate) return { cnf: { 'x5t#S256': certificateThumbprint(r.certificate) }, tokenType: 'Bearer' };
  if (required) {
    throw new OAuthError('invalid_request', 'On-Behalf-Of tokens are sender-constrained: send a DPoP proof (RFC 9449), or call the mTLS token endpoint with your X.509-SVID (RFC 8705)');
  }
  return { tokenType: 'Bearer' };
}

async function readSubject(ctx: OAuthContext, params: OAuthParams): Promise<Subject> {
  const token = params.require('subject_token');
  const type = params.require('subject_token_type');
  if (type === TOKEN_TYPE.mandate) {
    const mandate = await ctx.mandates.get(token);
    if (!mandate) throw refuse(`no mandate ${token}`);
    return { kind: 'mandate', mandate };
  }
  if (type !== TOKEN_TYPE.accessToken && type !== TOKEN_TYPE.jwt && type !== TOKEN_TYPE.idToken) {
    throw new OAuthError('invalid_request', `subject_token_type ${type} is not supported (use ${TOKEN_TYPE.accessToken}, ${TOKEN_TYPE.jwt}, ${TOKEN_TYPE.idToken} or ${TOKEN_TYPE.mandate})`);
  }
  if (type !== TOKEN_TYPE.idToken && issuerOf(token) === ctx.issuer) {
    let claims: AccessTokenClaims;
    try {
      claims = await ctx.verifier.verifySignature(token, ctx.now());
    } catch (err) {
      throw refuse(`the subject token is not a valid access token of this issuer: ${describeJoseError(err)}`);
    }
    if (ctx.revocation.isRevoked({ jti: claims.jti, mandate: claims.mandate })) throw refuse('the subject token or its mandate has been revoked');
    if (claims.act) return { kind: 'parent', claims };
    return { kind: 'principal', principal: { issuer: claims.principal_iss, subject: claims.sub }, authTime: claims.auth_time, mayAct: (claims as { may_act?: unknown }).may_act };
  }
  let principal;
  try {
    principal = await ctx.verifyProviderToken(token);
  } catch (err) {
    // RFC 8693 §2.2.2: an invalid subject token is invalid_request; an unreachable provider stays temporarily_unavailable.
    if (err instanceof OAuthError && err.error === 'invalid_grant') throw refuse(`the subject token is not valid: ${err.message}`);
    throw err;
  }
  if (!principal) throw refuse('the subject token is not from this authorization server or a trusted identity provider');
  return { kind: 'principal', principal: { issuer: principal.issuer, subject: principal.subject }, mayAct: undefined };
}

/** The unverified `iss` of a JWT, only to route it to the right verifier. */
function issuerOf(token: string): string | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const iss = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { iss?: unknown }).iss;
    return typeof iss === 'string' ? iss : undefined;
  } catch {
    return undefined;
  }
}

/** The acting agent: the actor token's subject, or the SPIFFE ID the client authenticated with. */
async function readActor(ctx: OAuthContext, r: GrantRequest): Promise<string> {
  const token = r.params.get('actor_token');
  const authenticated = r.client.spiffeId;
  if (token === undefined) {
    if (r.params.get('actor_token_type') !== undefined) throw new OAuthError('invalid_request', 'actor_token_type without actor_token');
    if (!authenticated) throw new OAuthError('invalid_request', 'actor_token is required: the agent\'s JWT-SVID (or authenticate as the agent with its SVID)');
    return authenticated;
  }
  const type = r.params.require('actor_token_type', 'with actor_token');
  if (type !== TOKEN_TYPE.jwt) throw new OAuthError('invalid_request', `actor_token_type must be ${TOKEN_TYPE.jwt} (a JWT-SVID)`);
  let actor: string;
  try {
    actor = (await verifyJwtSvid(token, ctx.bundles(), { audience: [ctx.issuer, ...ctx.tokenEndpoints], now: ctx.now() })).spiffeId.toString();
  } catch (err) {
    if (isMandateError(err)) throw refuse(`the actor token is not a valid JWT-SVID for this authorization server: ${err.message}`);
    throw err;
  }
  if (authenticated && authenticated !== actor) throw refuse(`the actor token is for ${actor}, but the client authenticated as ${authenticated}`);
  if (!authenticated && r.client.client.spiffeId && r.client.client.spiffeId !== actor) {
    throw refuse(`client ${r.client.client.clientId} acts for ${r.client.client.spiffeId}, not ${actor}`);
  }
  return actor;
}

function requestedResource(params: OAuthParams): string | undefined {
  const targets = [...params.all('resource'), ...params.all('audience')];
  const unique = [...new Set(targets)];
  if (unique.length > 1) throw new OAuthError('invalid_target', 'an OBO token is for exactly one resource: name one resource (or audience)');
  const target = unique[0];
  if (target !== undefined && params.all('resource').includes(target)) {
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      throw new OAuthError('invalid_target', `resource ${target} is not an absolute URI (RFC 8707 §2)`);
    }
    if (url.hash !== '') throw new OAuthError('invalid_target', `resource ${target} must not contain a fragment (RFC 8707 §2)`);
  }
  return target;
}

function resourceScopes(ctx: OAuthContext, resource: string, mandate: MandateRecord): string[] {
  const configured = ctx.config.resources.find((r) => r.uri === resource);
  return configured ? mandate.scopes.filter((s) => configured.scopes.includes(s)) : mandate.scopes;
}

/** Picks the mandate and narrows resource and scopes for a principal (or mandate) subject. */
async function fromMandate(ctx: OAuthContext, subject: Subject & { kind: 'principal' | 'mandate' }, actor: string, params: OAuthParams) {
  const principal = subject.kind === 'mandate' ? subject.mandate.principal : subject.principal;
  const named = subject.kind === 'mandate' ? subject.mandate.id : params.get('mandate_id');
  const mandates = await ctx.mandates.forAgent(principal, actor, named);
  if (mandates.length === 0) {
    if (subject.kind === 'mandate') {
      const m = subject.mandate;
      throw refuse(!mandateIsLive(m, ctx.now()) ? `mandate ${m.id} is ${m.status === 'revoked' ? 'revoked' : 'expired'}` : `mandate ${m.id} does not name agent ${actor}`);
    }
    throw refuse(`no live mandate from ${principal.subject} (${principal.issuer}) covers agent ${actor}`);
  }
  const requested = requestedResource(params);
  const covered = [...new Set(mandates.flatMap((m) => m.resources))];
  const resource = requested ?? (covered.length === 1 ? covered[0] : undefined);
  if (resource === undefined) throw new OAuthError('invalid_target', `name the resource (RFC 8707) the token is for: the mandates cover ${covered.length} (${covered.join(', ')})`);
  const forResource = mandates.filter((m) => m.resources.includes(resource));
  if (forResource.length === 0) throw new OAuthError('invalid_target', `no mandate of ${principal.subject} for agent ${actor} covers resource ${resource}`);
  const scopes = params.scopes();
  const mandate = scopes === undefined ? forResource[0] : forResource.find((m) => scopes.every((s) => resourceScopes(ctx, resource, m).includes(s)));
  if (!mandate) throw new OAuthError('invalid_scope', `scope "${(scopes ?? []).join(' ')}" exceeds what the mandate grants agent ${actor} at ${resource}`);
  const granted = scopes ?? resourceScopes(ctx, resource, mandate);
  if (granted.length === 0) throw new OAuthError('invalid_scope', `the mandate grants no scope that applies to ${resource}`);
  return { mandate, resource, scopes: granted, principal, chain: [] as string[], parentExp: undefined as number | undefined, act: undefined, mayAct: subject.kind === 'principal' ? subject.mayAct : undefined };
}

/** Narrows a parent OBO token for a sub-agent. */
async function fromParent(ctx: OAuthContext, parent: AccessTokenClaims, actor: string, params: OAuthParams) {
  const chain = actChain(parent.act);
  if (chain.includes(actor)) throw refuse(`agent ${actor} is already in the delegation chain (${chain.join(' <- ')})`);
  if (!parent.mandate) throw refuse('the parent token carries no mandate');
  const mandate = await ctx.mandates.get(parent.mandate);
  if (!mandate || !mandateIsLive(mandate, ctx.now())) throw refuse(`mandate ${parent.mandate} of the parent token is no longer live`);
  if (chain.length > mandate.maxDepth) {
    throw refuse(`delegation depth exceeded: mandate ${mandate.id} allows ${mandate.maxDepth} sub-agent hop(s) below ${mandate.agent}`);
  }
  const requested = requestedResource(params);
  if (requested !== undefined && requested !== parent.aud) throw new OAuthError('invalid_target', `a sub-agent token can only be for the parent token's resource ${parent.aud}`);
  const parentScopes = scopesOf(parent);
  const scopes = params.scopes() ?? parentScopes;
  const extra = scopes.filter((s) => !parentScopes.includes(s));
  if (extra.length > 0) throw new OAuthError('invalid_scope', `scope only shrinks along a delegation chain: the parent token lacks ${extra.join(' ')}`);
  return {
    mandate, resource: parent.aud, scopes, chain,
    principal: { issuer: parent.principal_iss, subject: parent.sub },
    parentExp: parent.exp, act: parent.act, mayAct: undefined as unknown,
  };
}

export async function tokenExchange(ctx: OAuthContext, r: GrantRequest): Promise<TokenResponse> {
  if (!r.client.client.grantTypes.includes(GRANT.tokenExchange)) {
    throw new OAuthError('unauthorized_client', `client ${r.client.client.clientId} may not use token exchange`);
  }
  const requestedType = r.params.get('requested_token_type');
  if (requestedType !== undefined && requestedType !== TOKEN_TYPE.accessToken && requestedType !== TOKEN_TYPE.jwt) {
    throw new OAuthError('invalid_request', `requested_token_type ${requestedType} cannot be issued (only access tokens)`);
  }
  const subject = await readSubject(ctx, r.params);
  const actor = await readActor(ctx, r);
  const narrowed = subject.kind === 'parent' ? await fromParent(ctx, subject.claims, actor, r.params) : await fromMandate(ctx, subject, actor, r.params);
  const mayAct = narrowed.mayAct as { sub?: unknown } | undefined;
  if (mayAct !== undefined && (typeof mayAct !== 'object' || mayAct === null || mayAct.sub !== actor)) {
    throw refuse(`the subject token's may_act does not name agent ${actor}`);
  }
  const binding = await bindingFor(ctx, r, true);

  const now = ctx.now();
  const nowS = Math.floor(now.getTime() / 1000);
  const limits = [ctx.config.token.maxTtl, Math.floor(narrowed.mandate.expiresAt.getTime() / 1000) - nowS];
  if (narrowed.parentExp !== undefined) limits.push(narrowed.parentExp - nowS);
  const ttl = Math.min(...limits);
  if (ttl <= 0) throw refuse('the mandate or parent token expires now');

  const { token, claims } = await mintAccessToken(ctx.keys, {
    iss: ctx.issuer,
    sub: narrowed.principal.subject,
    principal_iss: narrowed.principal.issuer,
    aud: narrowed.resource,
    client_id: r.client.client.clientId,
    scope: narrowed.scopes.join(' '),
    mandate: narrowed.mandate.id,
    act: pushActor(actor, narrowed.act),
    ...(binding.cnf && { cnf: binding.cnf }),
    ttlSeconds: ttl,
    now,
  });
  // The token is handed out only once its record is durable.
  await ctx.events.emit({
    type: 'token.exchanged', outcome: 'success',
    spiffeId: actor, actor: `workload:${actor}`, clientId: r.client.client.clientId,
    principal: { issuer: narrowed.principal.issuer, subject: narrowed.principal.subject }, mandateId: narrowed.mandate.id, chain: actChain(claims.act),
    resource: narrowed.resource, scopes: narrowed.scopes, jti: claims.jti, expiresAt: new Date(claims.exp * 1000).toISOString(),
    binding: binding.cnf?.jkt ? 'dpop' : 'mtls', sourceAddress: r.sourceAddress,
  });
  return { access_token: token, issued_token_type: TOKEN_TYPE.accessToken, token_type: binding.tokenType, expires_in: ttl, scope: claims.scope };
}
