/**
 * MandateAgent for MCP clients built with `@modelcontextprotocol/sdk`: two ways to authorize the
 * StreamableHTTPClientTransport's requests to the MCP server with the agent's On-Behalf-Of token.
 *
 * DPoP agents (binding 'dpop', the default) use `fetch: mandateFetch(agent, resource, grant)` and
 * give the transport NO `authProvider`:
 *
 *   - DPoP needs a new proof for every request (method, URL, token hash, server nonce). The
 *     transport builds the Authorization header from `authProvider.tokens()` itself, always as
 *     `Bearer <access_token>`, and has no hook for a per-request proof, so an OAuthClientProvider
 *     cannot carry a DPoP-bound token: the resource server refuses a DPoP token sent as Bearer.
 *   - On a 401 the transport hands an `authProvider` to the SDK's own `auth()` flow (protected
 *     resource discovery, then an authorization-code or client-credentials grant). An agent does not
 *     get its token that way: it exchanges the person's grant with its SPIFFE identity, which
 *     MandateAgent already does (and repeats before the token runs out).
 *
 * Without an authProvider the transport sends exactly what this fetch adds, and reports a refusal
 * (401/403) as a StreamableHTTPError carrying the status.
 *
 * mTLS agents (binding 'mtls') may instead plug in as the transport's auth provider:
 * `authProvider: mandateAuthProvider(agent, resource, grant)`. Their certificate-bound token is sent
 * as `Authorization: Bearer`, which the transport does itself; the connections must present the
 * agent's X.509-SVID, so the transport also gets a fetch over the agent's tlsDispatcher().
 *
 * @example
 *   const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { fetch: mandateFetch(agent, mcpUrl, grant) });
 *   const client = new Client({ name: 'triage-bot', version: '1.0.0' });
 *   await client.connect(transport);
 *   await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
 *
 * @example
 *   const agent = new MandateAgent({ issuer, svids, binding: 'mtls', tlsCa });
 *   const dispatcher = await agent.tlsDispatcher();
 *   const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), {
 *     authProvider: mandateAuthProvider(agent, mcpUrl, grant),
 *     fetch: (url, init) => undiciFetch(url, { ...init, dispatcher }),
 *   });
 */
import type { OAuthClientProvider, OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { Grant, MandateAgent } from './client.ts';

/** RFC 9449 §9: the resource server's request for a nonce, in its WWW-Authenticate challenge. */
const USE_DPOP_NONCE = /(?:^|[\s,])error\s*=\s*"?use_dpop_nonce"?/i;
const INVALID_TOKEN = /(?:^|[\s,])error\s*=\s*"?invalid_token"?/i;

/** Bodies fetch can send twice: everything but a stream. */
function replayable(body: RequestInit['body']): boolean {
  return body === undefined || body === null || typeof body === 'string' || body instanceof URLSearchParams
    || body instanceof ArrayBuffer || ArrayBuffer.isView(body) || body instanceof Blob || body instanceof FormData;
}

/**
 * A fetch that adds `Authorization: DPoP <token>` and a `DPoP` proof (with `ath`) for `resource`
 * under `grant` to every request, and remembers the server's `DPoP-Nonce`. When the server answers
 * 401 asking for a nonce (`use_dpop_nonce` with a `DPoP-Nonce` header), the request is sent once
 * more with a proof carrying it; a streamed body cannot be sent twice, so that answer is returned.
 *
 * Headers the caller set are kept, except Authorization and DPoP, which this fetch owns. Errors of
 * the token exchange (an AgentAuthError, e.g. `invalid_request` once the mandate is revoked) reject
 * the fetch.
 *
 * @param base the fetch that sends the request; default the global fetch.
 */
export function mandateFetch(agent: MandateAgent, resource: string, grant: Grant, base: FetchLike = fetch): FetchLike {
  let nonce: string | undefined;
  const send = async (url: string, init: RequestInit): Promise<Response> => {
    const headers = new Headers(init.headers);
    const auth = await agent.authorize({ method: init.method ?? 'GET', url, ...(nonce !== undefined && { nonce }) }, resource, grant);
    headers.set('authorization', auth.Authorization);
    if (auth.DPoP === undefined) headers.delete('dpop');
    else headers.set('dpop', auth.DPoP);
    const res = await base(url, { ...init, headers });
    const fresh = res.headers.get('dpop-nonce');
    if (fresh !== null && fresh !== '') nonce = fresh;
    return res;
  };
  return async (input, init = {}) => {
    const url = input instanceof URL ? input.href : input;
    const usedNonce = nonce;
    const res = await send(url, init);
    const challenge = res.headers.get('www-authenticate') ?? '';
    // A refused token (revoked mandate, rotated keys) is dropped: the next request exchanges afresh
    // and sees the authorization server's verdict (e.g. the mandate is revoked) at once.
    if (res.status === 401 && INVALID_TOKEN.test(challenge)) agent.forget(resource, grant);
    const asksForNonce = res.status === 401 && nonce !== undefined && nonce !== usedNonce && USE_DPOP_NONCE.test(challenge);
    if (!asksForNonce || !replayable(init.body)) return res;
    await res.body?.cancel();
    return send(url, init);
  };
}

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** What the interactive members of mandateAuthProvider say: there is no authorization flow to run. */
function noAuthorizationFlow(what: string): Error {
  return new Error(`${what}: this agent has no OAuth authorization flow; it obtains its tokens by token exchange at Mandate (MandateAgent.tokenFor)`);
}

/**
 * An OAuthClientProvider for the MCP SDK's transports that carries the certificate-bound token
 * (RFC 8705) of an agent with binding 'mtls' for `resource` under `grant`. The transport sends it as
 * `Authorization: Bearer`; give the transport a `fetch` over `await agent.tlsDispatcher()` too, so
 * its connections present the certificate the token is bound to.
 *
 * The members, as a non-interactive agent has them:
 *   - tokens(): the agent's current token (MandateAgent.tokenFor, exchanged again before it runs
 *     out) as `{ access_token, token_type: 'Bearer', expires_in, scope }`; an exchange Mandate refuses
 *     rejects with its AgentAuthError.
 *   - redirectUrl: undefined (no user agent to redirect); clientMetadata: a token-exchange client
 *     authenticating with its certificate (tls_client_auth); clientInformation(): the agent's
 *     SPIFFE ID as client_id, for the agent's Mandate; discoveryState(): the agent's Mandate and its
 *     metadata, so the SDK does not look for an authorization server elsewhere; validateResourceURL:
 *     `resource`.
 *   - prepareTokenRequest(): what the SDK's auth() flow reaches once the MCP server refused the
 *     token (401). The refused token is forgotten and the agent exchanges again: when Mandate
 *     refuses (the mandate was revoked, ...) its AgentAuthError rejects the call; when Mandate issues
 *     a new token the call is rejected all the same (the SDK cannot take a token it did not fetch)
 *     and the next request carries the new token.
 *   - invalidateCredentials('all' | 'tokens'): forgets the cached token.
 *   - redirectToAuthorization, saveCodeVerifier, codeVerifier, saveTokens: throw; the agent runs no
 *     authorization-code flow and keeps no tokens fetched by others.
 *
 * @throws TypeError for an agent with binding 'dpop': a DPoP-bound token needs a proof per request,
 *   which only mandateFetch adds.
 */
export function mandateAuthProvider(agent: MandateAgent, resource: string, grant: Grant): OAuthClientProvider {
  if (agent.binding !== 'mtls') {
    throw new TypeError(`mandateAuthProvider carries certificate-bound tokens of an agent with binding 'mtls'; this agent's tokens are DPoP-bound and need a proof per request: use fetch: mandateFetch(agent, resource, grant) and no authProvider`);
  }
  const resourceUrl = new URL(resource);
  const clientMetadata: OAuthClientProvider['clientMetadata'] = {
    redirect_uris: [],
    grant_types: [TOKEN_EXCHANGE],
    token_endpoint_auth_method: 'tls_client_auth',
    ...(grant.scope !== undefined && { scope: grant.scope.join(' ') }),
  };
  const forget = (): void => agent.forget(resource, grant);
  return {
    redirectUrl: undefined,
    clientMetadata,
    async clientInformation() {
      return { client_id: await agent.spiffeId(), issuer: agent.issuer };
    },
    async tokens() {
      const token = await agent.tokenFor(resource, grant);
      const expiresIn = Math.max(0, Math.floor((token.expiresAt.getTime() - Date.now()) / 1000));
      return { access_token: token.accessToken, token_type: 'Bearer', expires_in: expiresIn, scope: token.scope.join(' ') };
    },
    saveTokens() {
      throw noAuthorizationFlow('saveTokens');
    },
    redirectToAuthorization(authorizationUrl: URL) {
      throw noAuthorizationFlow(`redirectToAuthorization(${authorizationUrl.origin}${authorizationUrl.pathname})`);
    },
    saveCodeVerifier() {
      throw noAuthorizationFlow('saveCodeVerifier');
    },
    codeVerifier() {
      throw noAuthorizationFlow('codeVerifier');
    },
    async validateResourceURL() {
      return resourceUrl;
    },
    async discoveryState(): Promise<OAuthDiscoveryState> {
      // The agent's own Mandate, whose RFC 8414 metadata the agent checked (issuer, endpoints).
      const metadata = await agent.discover();
      return { authorizationServerUrl: agent.issuer, authorizationServerMetadata: metadata as OAuthDiscoveryState['authorizationServerMetadata'] };
    },
    invalidateCredentials(scope) {
      if (scope === 'all' || scope === 'tokens') forget();
    },
    async prepareTokenRequest(): Promise<URLSearchParams> {
      forget();
      await agent.tokenFor(resource, grant);
      throw new Error(`the MCP server refused the token for ${resource}; Mandate issued a new one, which the next request carries`);
    },
  };
}
