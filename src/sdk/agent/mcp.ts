/**
 * MandateAgent for MCP clients built with `@modelcontextprotocol/sdk`: a fetch for the SDK's
 * StreamableHTTPClientTransport that authorizes every request to the MCP server with the agent's
 * DPoP-bound On-Behalf-Of token.
 *
 * Use `fetch: mandateFetch(agent, resource, grant)` and give the transport NO `authProvider`:
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
 * @example
 *   const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { fetch: mandateFetch(agent, mcpUrl, grant) });
 *   const client = new Client({ name: 'triage-bot', version: '1.0.0' });
 *   await client.connect(transport);
 *   await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
 */
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
    headers.set('dpop', auth.DPoP);
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
