/**
 * The OAuth endpoints of the delegation authority as plain handlers over the server's request
 * context: token (RFC 6749 §3.2 with RFC 8693), introspection (RFC 7662), revocation (RFC 7009),
 * the revocation list for verifiers, and metadata (RFC 8414) with the JWKS.
 *
 * Every reply carries `Cache-Control: no-store`; every refusal is an OAuth error body with
 * `error_description`, and the event stream records grants and refusals (never a token).
 */
import { isMandateError } from '../../errors.ts';
import { emitRefusal } from '../../observability/events.ts';
import { recordTokenExchange, secondsSince } from '../../observability/metrics.ts';
import { withSpan } from '../../observability/tracing.ts';
import type { RequestContext } from '../../server/http/context.ts';
import { sendJson } from '../../server/http/context.ts';
import { TOKEN_ALGORITHMS } from '../tokens/verify.ts';
import { actChain } from '../tokens/claims.ts';
import { authenticateClient, peerCertificateChain, type AuthenticatedClient } from './client-auth.ts';
import { authorizationCodeGrant, hashSecret, refreshTokenGrant } from './code-grant.ts';
import { GRANT, TOKEN_TYPE, type OAuthContext } from './context.ts';
import { OAuthError, isOAuthError } from './errors.ts';
import { parseForm, type OAuthParams } from './form.ts';
import { tokenExchange, type GrantRequest } from './token-exchange.ts';

export const OAUTH_PATHS = {
  authorize: '/oauth/authorize',
  token: '/oauth/token',
  introspect: '/oauth/introspect',
  revoke: '/oauth/revoke',
  register: '/oauth/register',
  jwks: '/oauth/jwks',
  revocations: '/oauth/revocations',
  metadata: '/.well-known/oauth-authorization-server',
} as const;

export function sendOAuthError(ctx: RequestContext, err: OAuthError, extraHeaders: Record<string, string> = {}): void {
  sendJson(ctx.res, err.status, err.toJSON(), { pragma: 'no-cache', ...extraHeaders, ...err.headers });
}

/**
 * Runs an OAuth handler, turning errors into OAuth replies: request-shape errors of the HTTP layer
 * (body too large, unreadable) become invalid_request with their status, a store outage
 * temporarily_unavailable. Anything else propagates to the router (a logged 500).
 */
async function oauthReply(ctx: RequestContext, work: () => Promise<void>, onError?: (err: OAuthError) => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (caught) {
    const err = asOAuthError(caught);
    if (!isOAuthError(err)) throw err;
    await onError?.(err);
    sendOAuthError(ctx, err);
  }
}

/** The OAuth error a failure is answered with; anything else is returned as it is. */
function asOAuthError(err: unknown): unknown {
  if (isMandateError(err) && (err.code === 'ERR_BODY_TOO_LARGE' || err.code === 'ERR_BAD_REQUEST' || err.code === 'ERR_UNSUPPORTED_MEDIA_TYPE')) {
    return new OAuthError('invalid_request', err.message, { status: err.status, ...(err.code === 'ERR_BODY_TOO_LARGE' && { headers: { connection: 'close' } }) });
  }
  if (isMandateError(err, 'ERR_STORE')) return new OAuthError('temporarily_unavailable', 'the authorization server cannot reach its store; try again shortly');
  return err;
}

/**
 * Runs one token request in a span (`token exchange` for RFC 8693, else `token request`) that records
 * grant type, outcome and OAuth error code, never a token; token exchanges are also counted and timed.
 */
function instrumentedGrant<T>(grantType: string | undefined, work: () => Promise<T>): Promise<T> {
  const exchange = grantType === GRANT.tokenExchange;
  const known = (Object.values(GRANT) as Array<string | undefined>).includes(grantType);
  return withSpan(exchange ? 'token exchange' : 'token request', { 'oauth.grant_type': known ? (grantType as string) : 'unsupported' }, async (span) => {
    const started = performance.now();
    try {
      const result = await work();
      span.setAttribute('mandate.outcome', 'success');
      if (exchange) recordTokenExchange(undefined, secondsSince(started));
      return result;
    } catch (caught) {
      const err = asOAuthError(caught);
      const code = isOAuthError(err) ? err.error : 'server_error';
      span.setAttributes({ 'mandate.outcome': 'failure', 'oauth.error': code });
      if (exchange) recordTokenExchange(code, secondsSince(started));
      throw err;
    }
  });
}

function clientAuthDeps(o: OAuthContext) {
  return { resolveClient: (id: string) => o.resolveClient(id), bundles: () => o.bundles(), assertionAudiences: [o.issuer, ...o.tokenEndpoints] };
}

/** Which listener an endpoint serves: the main one, or the mutual-TLS one (RFC 8705 aliases). */
export interface Listener {
  /** The base URL clients address this listener by. */
  baseUrl: string;
  /** True on the mTLS listener: client certificates are read (and verified as SVIDs) only there. */
  mtls: boolean;
}

async function readRequest(o: OAuthContext, ctx: RequestContext, listener: Listener): Promise<{ params: OAuthParams; client: AuthenticatedClient }> {
  const params = parseForm(ctx.req, await ctx.body());
  return { params, client: await authenticate(o, ctx, listener, params) };
}

function authenticate(o: OAuthContext, ctx: RequestContext, listener: Listener, params: OAuthParams): Promise<AuthenticatedClient> {
  return authenticateClient(ctx.req, params, listener.mtls ? peerCertificateChain(ctx.req) : [], clientAuthDeps(o));
}

export function tokenEndpoint(o: OAuthContext, listener: Listener) {
  const url = `${listener.baseUrl}${OAUTH_PATHS.token}`;
  return (ctx: RequestContext) => oauthReply(ctx, async () => {
    const params = parseForm(ctx.req, await ctx.body());
    const response = await instrumentedGrant(params.get('grant_type'), async () => {
      const client = await authenticate(o, ctx, listener, params);
      const grantType = params.require('grant_type');
      const request: GrantRequest = { req: ctx.req, endpointUrl: url, client, params, certificate: client.certificate, sourceAddress: ctx.sourceAddress };
      switch (grantType) {
        case GRANT.tokenExchange:
          return tokenExchange(o, request);
        case GRANT.authorizationCode:
          if (!client.client.grantTypes.includes(GRANT.authorizationCode)) throw new OAuthError('unauthorized_client', `client ${client.client.clientId} may not use the authorization code grant`);
          return authorizationCodeGrant(o, request);
        case GRANT.refreshToken:
          return refreshTokenGrant(o, request);
        default:
          throw new OAuthError('unsupported_grant_type', `grant_type ${grantType} is not supported (supported: ${Object.values(GRANT).join(', ')})`);
      }
    });
    sendJson(ctx.res, 200, response, { pragma: 'no-cache', ...(o.config.dpop.requireNonce && { 'dpop-nonce': o.dpop.nonces.current() }) });
  }, (err) => emitRefusal(o.events, { type: 'token.refused', outcome: 'failure', error: err.error, reason: err.message, sourceAddress: ctx.sourceAddress }));
}

/** Introspection (RFC 7662): for resource servers and clients that authenticate (not public clients). */
export function introspectionEndpoint(o: OAuthContext, listener: Listener) {
  return (ctx: RequestContext) => oauthReply(ctx, async () => {
    const { params, client } = await readRequest(o, ctx, listener);
    if (client.method === 'none') throw new OAuthError('invalid_client', 'introspection needs an authenticated client (RFC 7662 §2.1); public clients cannot introspect');
    // token_type_hint is only a hint (RFC 7662 §2.1); refresh tokens are opaque and never introspected active.
    sendJson(ctx.res, 200, await introspect(o, params.require('token')));
  });
}

/** RFC 7662 §2.2 response for one access token: inactive when invalid, expired or revoked. */
export async function introspect(o: OAuthContext, token: string): Promise<Record<string, unknown>> {
  let claims;
  try {
    claims = await o.verifier.verifySignature(token, o.now());
  } catch {
    return { active: false };
  }
  if (o.revocation.isRevoked({ jti: claims.jti, mandate: claims.mandate })) return { active: false };
  return { active: true, ...claims, token_type: claims.cnf?.jkt ? 'DPoP' : 'Bearer', act_chain: actChain(claims.act) };
}

/**
 * Revocation (RFC 7009). Access tokens go on the revocation list by `jti`; refresh tokens revoke
 * their family. A client may only revoke its own tokens; anything else (unknown, foreign, invalid)
 * is answered 200 as the RFC asks, so the endpoint reveals nothing.
 */
export function revocationEndpoint(o: OAuthContext, listener: Listener) {
  return (ctx: RequestContext) => oauthReply(ctx, async () => {
    const { params, client } = await readRequest(o, ctx, listener);
    const token = params.require('token');
    const hint = params.get('token_type_hint');
    if (hint !== undefined && hint !== 'access_token' && hint !== 'refresh_token') {
      throw new OAuthError('unsupported_token_type', `token_type_hint ${hint} is not supported`);
    }
    if (token.startsWith('mrt_')) {
      // Looked up, not consumed: another client's request must leave the token as it is (RFC 7009 §2.1).
      const found = await o.store.getRefreshToken(hashSecret(token), o.now());
      if (found && found.clientId === client.client.clientId) {
        await o.store.revokeRefreshFamily(found.familyId);
        await o.events.emit({ type: 'token.revoked', outcome: 'success', clientId: client.client.clientId, refreshFamily: true });
      }
    } else {
      try {
        const claims = await o.verifier.verifySignature(token, o.now());
        if (claims.client_id === client.client.clientId) {
          await o.store.revokeToken(claims.jti, new Date(claims.exp * 1000), o.now());
          await o.revocation.sync();
          await o.events.emit({ type: 'token.revoked', outcome: 'success', clientId: client.client.clientId, jti: claims.jti, mandateId: claims.mandate });
        }
      } catch (err) {
        if (isOAuthError(err)) throw err;
        // Invalid tokens need no revocation (RFC 7009 §2.2).
      }
    }
    sendJson(ctx.res, 200, {});
  });
}

/** The revocation list for verifiers in other processes: entries after `after`, oldest first. */
export function revocationsEndpoint(o: OAuthContext) {
  return async (ctx: RequestContext) => {
    const after = Number(ctx.query.get('after') ?? '0');
    if (!Number.isSafeInteger(after) || after < 0) {
      sendOAuthError(ctx, new OAuthError('invalid_request', 'after must be a non-negative integer (the last seq you have)'));
      return;
    }
    const entries = await o.store.listRevocations(after, 1000);
    sendJson(ctx.res, 200, {
      epoch: entries.at(-1)?.seq ?? after,
      entries: entries.map((e) => ({ seq: e.seq, kind: e.kind, id: e.id, expires_at: e.expiresAt.toISOString(), revoked_at: e.revokedAt.toISOString() })),
    });
  };
}

export function jwksEndpoint(o: OAuthContext) {
  return (ctx: RequestContext) => {
    sendJson(ctx.res, 200, o.keys.jwks(), { 'cache-control': 'public, max-age=300' });
  };
}

/** RFC 8414 authorization server metadata. */
export function authorizationServerMetadata(o: OAuthContext): Record<string, unknown> {
  const url = (path: string) => `${o.issuer}${path}`;
  const mtlsBase = o.mtlsUrl;
  return {
    issuer: o.issuer,
    authorization_endpoint: url(OAUTH_PATHS.authorize),
    token_endpoint: url(OAUTH_PATHS.token),
    jwks_uri: url(OAUTH_PATHS.jwks),
    introspection_endpoint: url(OAUTH_PATHS.introspect),
    revocation_endpoint: url(OAUTH_PATHS.revoke),
    ...(o.config.dynamicRegistration.enabled && { registration_endpoint: url(OAUTH_PATHS.register) }),
    scopes_supported: Object.keys(o.config.scopes),
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: [GRANT.authorizationCode, GRANT.refreshToken, GRANT.tokenExchange],
    token_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt', ...(mtlsBase ? ['tls_client_auth'] : [])],
    token_endpoint_auth_signing_alg_values_supported: ['ES256', 'ES384', 'ES512', 'RS256', 'PS256'],
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', ...(mtlsBase ? ['tls_client_auth'] : [])],
    revocation_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt', ...(mtlsBase ? ['tls_client_auth'] : [])],
    code_challenge_methods_supported: ['S256'],
    dpop_signing_alg_values_supported: [...o.config.dpop.algorithms],
    tls_client_certificate_bound_access_tokens: mtlsBase !== undefined,
    ...(mtlsBase && {
      mtls_endpoint_aliases: { token_endpoint: `${mtlsBase}${OAUTH_PATHS.token}`, introspection_endpoint: `${mtlsBase}${OAUTH_PATHS.introspect}`, revocation_endpoint: `${mtlsBase}${OAUTH_PATHS.revoke}` },
    }),
    authorization_response_iss_parameter_supported: true,
    client_id_metadata_document_supported: o.config.clientIdMetadataDocuments.enabled,
    access_token_signing_alg_values_supported: [...TOKEN_ALGORITHMS],
    subject_token_types_supported: [TOKEN_TYPE.accessToken, TOKEN_TYPE.jwt, TOKEN_TYPE.idToken, TOKEN_TYPE.mandate],
    actor_token_types_supported: [TOKEN_TYPE.jwt],
  };
}

export function metadataEndpoint(o: OAuthContext) {
  const body = authorizationServerMetadata(o);
  return (ctx: RequestContext) => sendJson(ctx.res, 200, body, { 'cache-control': 'public, max-age=300', 'access-control-allow-origin': '*' });
}
