/**
 * Mounts the delegation authority's OAuth endpoints on a listener: metadata and JWKS, token,
 * introspection, revocation, the revocation list, and dynamic registration when enabled. The
 * mutual-TLS listener mounts the same token, introspection and revocation endpoints (RFC 8705
 * aliases); client certificates are read only there.
 */
import type { DelegationAuthority } from '../../delegation/authority.ts';
import { registerClient } from '../../delegation/clients/registration.ts';
import {
  OAUTH_PATHS,
  introspectionEndpoint,
  jwksEndpoint,
  metadataEndpoint,
  revocationEndpoint,
  revocationsEndpoint,
  sendOAuthError,
  tokenEndpoint,
  type Listener,
} from '../../delegation/oauth/endpoints.ts';
import { OAuthError, isOAuthError } from '../../delegation/oauth/errors.ts';
import { isMandateError } from '../../errors.ts';
import { sendJson } from '../http/context.ts';
import type { Router } from '../http/router.ts';

export function oauthRoutes(router: Router, delegation: DelegationAuthority, listener: Listener): void {
  const o = delegation.oauth;
  router
    .on('POST', OAUTH_PATHS.token, tokenEndpoint(o, listener))
    .on('POST', OAUTH_PATHS.introspect, introspectionEndpoint(o, listener))
    .on('POST', OAUTH_PATHS.revoke, revocationEndpoint(o, listener));
  if (listener.mtls) return;
  router
    .on('GET', OAUTH_PATHS.metadata, metadataEndpoint(o))
    .on('GET', OAUTH_PATHS.jwks, jwksEndpoint(o))
    .on('GET', OAUTH_PATHS.revocations, revocationsEndpoint(o));
  if (delegation.config.dynamicRegistration.enabled) {
    router.on('POST', OAUTH_PATHS.register, async (ctx) => {
      try {
        const response = await registerClient(await ctx.json(), { store: o.store, dynamicRegistration: delegation.config.dynamicRegistration, now: o.now });
        await o.events.emit({ type: 'client.registered', outcome: 'success', clientId: response.client_id, sourceAddress: ctx.sourceAddress });
        sendJson(ctx.res, 201, response, { pragma: 'no-cache' });
      } catch (err) {
        // RFC 7591 §3.2.2: a body that is not a JSON object is invalid client metadata too.
        if (isMandateError(err) && err.status < 500) {
          sendOAuthError(ctx, new OAuthError('invalid_client_metadata', err.message, { status: err.status }));
          return;
        }
        if (!isOAuthError(err)) throw err;
        sendOAuthError(ctx, err);
      }
    });
  }
}
