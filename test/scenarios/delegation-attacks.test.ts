/**
 * Scenario: a table of attacks on the delegation authority's token endpoint and on the access-token
 * verifier a resource server runs. Every row is one real HTTP request against a running Mandate (or
 * against a protected resource on 127.0.0.1 that verifies with `m.delegation.verifier`), with real
 * keys: JWT-SVIDs signed by the identity authority's active key, DPoP proofs from DpopSigner, OBO
 * tokens from the token endpoint. Each row must be refused with the right status and OAuth error
 * code, an error_description a person can act on, nothing internal in the reply and no token echoed
 * back; refusals at the token endpoint are recorded as `token.refused` events. Afterwards the server
 * must still answer /healthz, and none of the tokens sent may appear in its logs.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { mintAccessToken, type MintInput } from '../../src/delegation/tokens/mint.ts';
import { issueJwtSvid } from '../../src/identity/jwt-svid/issue.ts';
import { DpopSigner } from '../../src/sdk/agent/dpop.ts';
import {
  GRANT_TOKEN_EXCHANGE,
  JWT_BEARER,
  TOKEN_TYPE,
  assertNoLeak,
  assertReadable,
  authorizationCodeFromConsent,
  basicAuth,
  formPost,
  jwtsIn,
  payloadOf,
  pkcePair,
  publicJwkAsSecret,
  send,
  signJws,
  sleep,
  startProtectedResource,
  unsecuredJwt,
  type AttackReply,
  type AttackRequest,
  type ProtectedResource,
} from '../support/delegation-attacks.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const A = 'spiffe://example.org/agent/triage-bot';
const B = 'spiffe://example.org/agent/summariser';
const REDIRECT_URI = 'http://127.0.0.1/callback';
const USERNAME = 'alice';
const PASSWORD = `pw-${randomBytes(12).toString('base64url')}`;
const CONSOLE_SECRET = randomBytes(24).toString('base64url');

function yaml(r1: string, r2: string): string {
  return [
    'trust_domain: example.org',
    'delegation:',
    '  scopes:',
    '    "issues:read": Read issues and their comments',
    '    "issues:comment": Comment on issues',
    '    "issues:admin": Administer the issue tracker',
    '  resources:',
    `    - { uri: "${r1}", name: Issue tracker, scopes: ["issues:read", "issues:comment", "issues:admin"] }`,
    `    - { uri: "${r2}", name: Other tool, scopes: ["issues:read"] }`,
    '  clients:',
    '    - client_id: console',
    '      auth_method: client_secret_basic',
    `      secret_sha256: ${createHash('sha256').update(CONSOLE_SECRET).digest('hex')}`,
    `      redirect_uris: ["${REDIRECT_URI}"]`,
    '      grant_types: [authorization_code, refresh_token]',
    '    - client_id: web-app',
    '      auth_method: none',
    `      redirect_uris: ["${REDIRECT_URI}"]`,
    '      grant_types: [authorization_code, refresh_token]',
    '    - client_id: agent-cli',
    '      auth_method: none',
    `      grant_types: [${GRANT_TOKEN_EXCHANGE}]`,
    '',
  ].join('\n');
}

/** Everything the rows attack: a running Mandate, a protected resource, agents, mandates and good tokens. */
interface Fixture {
  m: TestMandate;
  rs: ProtectedResource;
  /** The resource of every mandate, and one no mandate names. */
  r1: string;
  r2: string;
  tokenUrl: string;
  userId: string;
  dpopA: DpopSigner;
  dpopB: DpopSigner;
  /** A key nobody bound a token to. */
  dpopStranger: DpopSigner;
  /** user -> A at r1, issues:read + issues:comment, no sub-agents. */
  mainMandate: string;
  /** user -> A at r1, up to two sub-agent hops. */
  chainMandate: string;
  /** user -> A at r1, revoked after a token was minted from it. */
  revokedMandate: string;
  /** user -> A at r1 for one second. */
  expiringMandate: { id: string; expiresAt: number };
  /** The reference OBO token: main mandate, A, r1, bound to dpopA. */
  obo: string;
  /** A's token under the chain mandate (issues:read only), bound to dpopA. */
  chainToken: string;
  /** B's token exchanged from chainToken: act B <- A, bound to dpopB. */
  subAgentToken: string;
  /** Minted (bound to dpopA) before its mandate was revoked. */
  revokedMandateToken: string;
  /** Whether GET /oauth/authorize is served (the consent routes are mounted). */
  authorizeRoute: boolean;
}

let f: Fixture;

/** A JWT-SVID of `agent` signed with the identity authority's active key; aud the issuer unless told. */
async function svid(agent: string, opts: { audience?: string[]; now?: Date; ttlSeconds?: number } = {}): Promise<string> {
  return (await issueJwtSvid({ spiffeId: agent, audience: opts.audience ?? [f.m.issuer], ttlSeconds: opts.ttlSeconds ?? 300, key: f.m.keys.activeJwtKey(), now: opts.now })).token;
}

/** Client authentication as the agent itself: its JWT-SVID as private_key_jwt client assertion. */
async function asAgent(agent: string): Promise<Record<string, string>> {
  return { client_assertion_type: JWT_BEARER, client_assertion: await svid(agent) };
}

/** A token-endpoint POST, with a fresh DPoP proof of `dpop` for the token endpoint, or the proof given. */
async function tokenRequest(params: Record<string, string | string[] | undefined>, dpop: DpopSigner | string | null): Promise<AttackRequest> {
  const proof = typeof dpop === 'string' ? dpop : dpop === null ? undefined : await dpop.proof('POST', f.tokenUrl);
  return formPost(f.tokenUrl, params, proof === undefined ? {} : { dpop: proof });
}

/** Token exchange for a mandate id, the client authenticating as the agent, bound to its DPoP key. */
async function mandateExchange(agent: string, mandateId: string, dpop: DpopSigner | string | null, extra: Record<string, string | string[]> = {}): Promise<AttackRequest> {
  return tokenRequest({ grant_type: GRANT_TOKEN_EXCHANGE, ...(await asAgent(agent)), subject_token: mandateId, subject_token_type: TOKEN_TYPE.mandate, ...extra }, dpop);
}

/** Token exchange of one of our access tokens (a principal's or a parent agent's) by `agent`. */
async function tokenExchange(agent: string, subjectToken: string, dpop: DpopSigner | string | null, extra: Record<string, string | string[]> = {}): Promise<AttackRequest> {
  return tokenRequest({ grant_type: GRANT_TOKEN_EXCHANGE, ...(await asAgent(agent)), subject_token: subjectToken, subject_token_type: TOKEN_TYPE.accessToken, ...extra }, dpop);
}

/** Token exchange through the public client with an actor token (the agent does not authenticate as client). */
async function actorExchange(actorToken: string, mandateId: string, dpop: DpopSigner): Promise<AttackRequest> {
  return tokenRequest({
    grant_type: GRANT_TOKEN_EXCHANGE, client_id: 'agent-cli', subject_token: mandateId, subject_token_type: TOKEN_TYPE.mandate,
    actor_token: actorToken, actor_token_type: TOKEN_TYPE.jwt,
  }, dpop);
}

/**
 * A request to the protected resource. `scheme` DPoP sends a proof of `signer` for this request
 * (with `ath`), unless `proof` overrides what the proof covers.
 */
async function atResource(token: string, o: {
  path?: '/mcp' | '/other'; method?: string; scheme?: 'DPoP' | 'Bearer'; signer?: DpopSigner;
  proof?: { method?: string; path?: string; ath?: boolean };
} = {}): Promise<AttackRequest> {
  const path = o.path ?? '/mcp';
  const method = o.method ?? 'GET';
  const scheme = o.scheme ?? 'DPoP';
  const headers: Record<string, string> = { authorization: `${scheme} ${token}` };
  if (scheme === 'DPoP') {
    const p = o.proof ?? {};
    headers.dpop = await (o.signer ?? f.dpopA).proof(p.method ?? method, `${f.rs.url}${p.path ?? path}`, p.ath === false ? {} : { accessToken: token });
  }
  return { url: `${f.rs.url}${path}`, method, headers };
}

/** Our claims, as the reference OBO token carries them, with fresh times and jti and the overrides. */
function oboClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { ...payloadOf(f.obo), iat: now, exp: now + 300, jti: randomBytes(16).toString('base64url'), ...overrides };
}

/** An access token signed by the delegation authority's real active key (allowed here: it is our own issuer). */
async function mint(overrides: Partial<MintInput> & Record<string, unknown> = {}): Promise<string> {
  const claims = payloadOf(f.obo);
  const input = {
    iss: f.m.issuer, sub: f.userId, principal_iss: f.m.issuer, aud: f.r1, client_id: String(claims.client_id),
    scope: 'issues:read', mandate: f.mainMandate, act: { sub: A }, cnf: { jkt: f.dpopA.jkt }, ttlSeconds: 300,
    ...overrides,
  } as MintInput;
  return (await mintAccessToken(f.m.delegation.keys, input)).token;
}

/** The principal's own access token (no act, no mandate), as the code grant mints them for client `console`. */
function userToken(extra: Record<string, unknown> = {}): Promise<string> {
  return mint({ client_id: 'console', scope: 'issues:read issues:comment', mandate: undefined, act: undefined, cnf: undefined, ...extra });
}

/** Signs with the active token-signing key but under the header given (e.g. another typ). */
function signWithOurKey(header: Record<string, unknown>, payload: Record<string, unknown>): Promise<string> {
  const key = f.m.delegation.keys.active();
  return signJws({ alg: key.alg, kid: key.kid, ...header }, payload, key.privateKey);
}

async function okJson(req: AttackRequest, what: string): Promise<Record<string, unknown>> {
  const res = await send(req);
  assert.equal(res.status, 200, `${what}: ${res.status} ${res.text}`);
  return res.json as Record<string, unknown>;
}

async function accessToken(req: AttackRequest, what: string): Promise<string> {
  return String((await okJson(req, what)).access_token);
}

/** How a refusal arrives: an OAuth JSON body, a redirect back to the client, or the server's own error body. */
type Shape = 'oauth' | 'redirect' | 'server';

interface Row {
  name: string;
  request(): Promise<AttackRequest>;
  status: number;
  error: string;
  /** What the error_description must say. */
  says: RegExp;
  /** WWW-Authenticate the refusal must carry. */
  challenge?: RegExp;
  shape?: Shape;
  /** A reason to skip, decided when the row runs (the product cannot do this yet). */
  skip?(): Promise<string | undefined>;
  /** Further checks after the refusal (e.g. the server still works). */
  then?(): Promise<void>;
}

const INVALID_TOKEN = /^(?:Bearer|DPoP) error="invalid_token", error_description="[^"]+"/;
const DPOP_PROOF = /^DPoP error="invalid_dpop_proof", error_description="[^"]+"/;
const NO_AUTHORIZE = async () => (f.authorizeRoute ? undefined : 'NOTE: GET /oauth/authorize is not served (consent routes not mounted) — row skipped until it is');

const rows: Row[] = [
  // ── The verifier at a resource server ────────────────────────────────────────────────────────────
  {
    name: 'verifier: forged token (our claims and kid, signed by a foreign key)',
    request: async () => {
      const foreign = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const kid = f.m.delegation.keys.active().kid;
      return atResource(await signJws({ alg: 'ES256', kid, typ: 'at+jwt' }, oboClaims(), foreign));
    },
    status: 401, error: 'invalid_token', says: /signature does not verify/, challenge: INVALID_TOKEN,
  },
  {
    name: 'verifier: expired token',
    request: async () => atResource(await mint({ ttlSeconds: 60, now: new Date(Date.now() - 10 * 60_000) })),
    status: 401, error: 'invalid_token', says: /expired/, challenge: INVALID_TOKEN,
  },
  {
    name: 'verifier: alg none token',
    request: () => atResource(unsecuredJwt({ typ: 'at+jwt', kid: f.m.delegation.keys.active().kid }, oboClaims())),
    status: 401, error: 'invalid_token', says: /not a compact JWS|algorithm|none/, challenge: INVALID_TOKEN,
  },
  {
    name: 'verifier: HS256 token keyed with the published public JWK',
    request: async () => {
      const key = f.m.delegation.keys.active();
      return atResource(await signJws({ alg: 'HS256', kid: key.kid, typ: 'at+jwt' }, oboClaims(), publicJwkAsSecret(key.publicJwk)));
    },
    status: 401, error: 'invalid_token', says: /published key|algorithm is not allowed/, challenge: INVALID_TOKEN,
  },
  {
    name: 'verifier: wrong iss (our key, another issuer)',
    request: async () => atResource(await mint({ iss: 'https://mandate.evil.example' })),
    status: 401, error: 'invalid_token', says: /\biss\b/, challenge: INVALID_TOKEN,
  },
  {
    name: 'verifier: token for another resource (aud r1 presented at r2)',
    request: () => atResource(f.obo, { path: '/other' }),
    status: 401, error: 'invalid_token', says: /is for .* not for this resource/, challenge: INVALID_TOKEN,
  },
  {
    name: 'verifier: two audiences',
    request: async () => atResource(await mint({ aud: [f.r1, f.r2] as unknown as string })),
    status: 401, error: 'invalid_token', says: /exactly one audience/, challenge: INVALID_TOKEN,
  },
  {
    name: 'verifier: ID token (our claims and key, typ JWT) presented as access token',
    request: async () => atResource(await signWithOurKey({ typ: 'JWT' }, oboClaims())),
    status: 401, error: 'invalid_token', says: /\btyp\b/, challenge: INVALID_TOKEN,
  },
  {
    name: 'verifier: a DPoP proof presented as access token',
    request: async () => atResource(await f.dpopA.proof('GET', `${f.rs.url}/mcp`), { scheme: 'Bearer' }),
    status: 401, error: 'invalid_token', says: /published key|typ/, challenge: INVALID_TOKEN,
  },
  {
    name: 'verifier: a JWT-SVID (typ JWT, aud the resource) presented as access token',
    request: async () => atResource(await svid(A, { audience: [f.r1] }), { scheme: 'Bearer' }),
    status: 401, error: 'invalid_token', says: /published key|typ/, challenge: INVALID_TOKEN,
  },
  {
    name: 'verifier: DPoP-bound token sent as Bearer',
    request: () => atResource(f.obo, { scheme: 'Bearer' }),
    status: 401, error: 'invalid_token', says: /DPoP-bound/, challenge: INVALID_TOKEN,
  },
  {
    name: 'verifier: DPoP proof of another key',
    request: () => atResource(f.obo, { signer: f.dpopStranger }),
    status: 401, error: 'invalid_token', says: /another key/, challenge: INVALID_TOKEN,
  },
  {
    name: 'verifier: replayed DPoP proof',
    request: async () => {
      const req = await atResource(f.obo);
      assert.equal((await send(req)).status, 200, 'the first use of the proof is accepted');
      return req;
    },
    status: 401, error: 'invalid_dpop_proof', says: /replayed/, challenge: DPOP_PROOF,
  },
  {
    name: 'verifier: DPoP proof with wrong htu',
    request: () => atResource(f.obo, { proof: { path: '/other' } }),
    status: 401, error: 'invalid_dpop_proof', says: /htu/, challenge: DPOP_PROOF,
  },
  {
    name: 'verifier: DPoP proof with wrong htm',
    request: () => atResource(f.obo, { method: 'GET', proof: { method: 'POST' } }),
    status: 401, error: 'invalid_dpop_proof', says: /htm/, challenge: DPOP_PROOF,
  },
  {
    name: 'verifier: DPoP proof without ath',
    request: () => atResource(f.obo, { proof: { ath: false } }),
    status: 401, error: 'invalid_dpop_proof', says: /\bath\b/, challenge: DPOP_PROOF,
  },
  {
    name: 'verifier: token of a revoked mandate',
    request: () => atResource(f.revokedMandateToken),
    status: 401, error: 'invalid_token', says: /revoked/, challenge: INVALID_TOKEN,
  },
  {
    name: 'verifier: revoked access token (revoked by jti at /oauth/revoke)',
    request: async () => {
      const token = await userToken();
      assert.equal((await send(formPost(`${f.m.url}/oauth/revoke`, { token }, { authorization: basicAuth('console', CONSOLE_SECRET) }))).status, 200);
      return atResource(token, { scheme: 'Bearer' });
    },
    status: 401, error: 'invalid_token', says: /revoked/, challenge: INVALID_TOKEN,
  },

  // ── Token endpoint: the subject token ────────────────────────────────────────────────────────────
  {
    name: 'token: forged subject token (foreign key, our kid)',
    request: async () => {
      const foreign = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const claims = oboClaims({ act: undefined, mandate: undefined, cnf: undefined, client_id: 'console' });
      return tokenExchange(A, await signJws({ alg: 'ES256', kid: f.m.delegation.keys.active().kid, typ: 'at+jwt' }, claims, foreign), f.dpopA);
    },
    status: 400, error: 'invalid_request', says: /not a valid access token.*signature/,
  },
  {
    name: 'token: alg none subject token',
    request: () => tokenExchange(A, unsecuredJwt({ typ: 'at+jwt' }, oboClaims({ act: undefined, mandate: undefined, cnf: undefined })), f.dpopA),
    status: 400, error: 'invalid_request', says: /not a valid access token/,
  },
  {
    name: 'token: HS256 subject token keyed with the public JWK',
    request: async () => {
      const key = f.m.delegation.keys.active();
      return tokenExchange(A, await signJws({ alg: 'HS256', kid: key.kid, typ: 'at+jwt' }, oboClaims({ act: undefined, mandate: undefined, cnf: undefined }), publicJwkAsSecret(key.publicJwk)), f.dpopA);
    },
    status: 400, error: 'invalid_request', says: /not a valid access token/,
  },
  {
    name: 'token: expired subject token',
    request: async () => tokenExchange(A, await userToken({ ttlSeconds: 60, now: new Date(Date.now() - 10 * 60_000) }), f.dpopA, { resource: f.r1 }),
    status: 400, error: 'invalid_request', says: /expired/,
  },
  {
    name: 'token: ID token (our claims and key, typ JWT) as subject access token',
    request: async () => tokenExchange(A, await signWithOurKey({ typ: 'JWT' }, oboClaims({ act: undefined, mandate: undefined, cnf: undefined })), f.dpopA),
    status: 400, error: 'invalid_request', says: /\btyp\b/,
  },
  {
    name: 'token: a JWT-SVID as subject access token',
    request: async () => tokenExchange(A, await svid(B), f.dpopA),
    status: 400, error: 'invalid_request', says: /not from this authorization server/,
  },
  {
    name: 'token: subject token revoked (by jti at /oauth/revoke)',
    request: async () => {
      const token = await userToken();
      assert.equal((await send(formPost(`${f.m.url}/oauth/revoke`, { token }, { authorization: basicAuth('console', CONSOLE_SECRET) }))).status, 200);
      return tokenExchange(A, token, f.dpopA, { resource: f.r1 });
    },
    status: 400, error: 'invalid_request', says: /revoked/,
  },
  {
    name: 'token: may_act of the subject token names another agent',
    request: async () => tokenExchange(A, await userToken({ may_act: { sub: B } }), f.dpopA, { resource: f.r1 }),
    status: 400, error: 'invalid_request', says: /may_act/,
  },
  {
    name: 'token: unsupported subject_token_type',
    request: () => mandateExchange(A, f.mainMandate, f.dpopA, { subject_token_type: 'urn:ietf:params:oauth:token-type:saml2' }),
    status: 400, error: 'invalid_request', says: /subject_token_type .* not supported/,
  },

  // ── Token endpoint: the actor ────────────────────────────────────────────────────────────────────
  {
    name: 'token: actor not covered by the mandate (agent B with A\'s mandate)',
    request: () => mandateExchange(B, f.mainMandate, f.dpopB),
    status: 400, error: 'invalid_request', says: /does not name agent/,
  },
  {
    name: 'token: actor_token for another audience',
    request: async () => actorExchange(await svid(A, { audience: ['spiffe://example.org/gateway'] }), f.mainMandate, f.dpopA),
    status: 400, error: 'invalid_request', says: /actor token .*aud/,
  },
  {
    name: 'token: actor_token expired',
    request: async () => actorExchange(await svid(A, { now: new Date(Date.now() - 10 * 60_000), ttlSeconds: 60 }), f.mainMandate, f.dpopA),
    status: 400, error: 'invalid_request', says: /actor token .*expired/,
  },
  {
    name: 'token: actor_token from an unknown trust domain',
    request: async () => {
      const key = { kid: 'evil-1', alg: 'ES256' as const, privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey };
      const token = (await issueJwtSvid({ spiffeId: 'spiffe://evil.example/agent/triage-bot', audience: [f.m.issuer], ttlSeconds: 300, key })).token;
      return actorExchange(token, f.mainMandate, f.dpopA);
    },
    status: 400, error: 'invalid_request', says: /trust domain evil\.example/,
  },
  {
    name: 'token: actor_token of another type (an access token)',
    request: async () => tokenRequest({
      grant_type: GRANT_TOKEN_EXCHANGE, client_id: 'agent-cli', subject_token: f.mainMandate, subject_token_type: TOKEN_TYPE.mandate,
      actor_token: f.obo, actor_token_type: TOKEN_TYPE.accessToken,
    }, f.dpopA),
    status: 400, error: 'invalid_request', says: /actor_token_type/,
  },

  // ── Token endpoint: the mandate ──────────────────────────────────────────────────────────────────
  {
    name: 'token: revoked mandate',
    request: () => mandateExchange(A, f.revokedMandate, f.dpopA),
    status: 400, error: 'invalid_request', says: /revoked/,
  },
  {
    name: 'token: parent token of a revoked mandate',
    request: () => tokenExchange(B, f.revokedMandateToken, f.dpopB),
    status: 400, error: 'invalid_request', says: /revoked/,
  },
  {
    name: 'token: expired mandate (admin mandate with ttl 1s)',
    request: async () => {
      await sleep(f.expiringMandate.expiresAt + 200 - Date.now());
      return mandateExchange(A, f.expiringMandate.id, f.dpopA);
    },
    status: 400, error: 'invalid_request', says: /expired/,
  },
  {
    name: 'token: scope escalation beyond the mandate',
    request: () => mandateExchange(A, f.mainMandate, f.dpopA, { scope: 'issues:read issues:admin' }),
    status: 400, error: 'invalid_scope', says: /exceeds what the mandate grants/,
  },
  {
    name: 'token: audience escalation (a resource the mandate does not name)',
    request: () => mandateExchange(A, f.mainMandate, f.dpopA, { resource: f.r2 }),
    status: 400, error: 'invalid_target', says: /covers resource/,
  },
  {
    name: 'token: two resources',
    request: () => mandateExchange(A, f.mainMandate, f.dpopA, { resource: [f.r1, f.r2] }),
    status: 400, error: 'invalid_target', says: /exactly one resource/,
  },
  {
    name: 'token: resource and audience naming different targets',
    request: () => mandateExchange(A, f.mainMandate, f.dpopA, { resource: f.r1, audience: f.r2 }),
    status: 400, error: 'invalid_target', says: /exactly one resource/,
  },
  {
    name: 'token: sub-agent asks for another resource than its parent token\'s',
    request: () => tokenExchange(B, f.chainToken, f.dpopB, { resource: f.r2 }),
    status: 400, error: 'invalid_target', says: /parent token's resource/,
  },
  {
    name: 'token: sub-agent asks for a scope its parent token lacks',
    request: () => tokenExchange(B, f.chainToken, f.dpopB, { scope: 'issues:read issues:comment' }),
    status: 400, error: 'invalid_scope', says: /only shrinks/,
  },
  {
    name: 'token: delegation depth exceeded (mandate allows no sub-agent)',
    request: () => tokenExchange(B, f.obo, f.dpopB),
    status: 400, error: 'invalid_request', says: /depth exceeded/,
  },
  {
    name: 'token: self-delegation loop (A -> B -> A)',
    request: () => tokenExchange(A, f.subAgentToken, f.dpopA),
    status: 400, error: 'invalid_request', says: /already in the delegation chain/,
  },

  // ── Token endpoint: sender constraint (DPoP) ─────────────────────────────────────────────────────
  {
    name: 'token: no binding (neither DPoP nor mTLS)',
    request: () => mandateExchange(A, f.mainMandate, null),
    status: 400, error: 'invalid_request', says: /sender-constrained/,
  },
  {
    name: 'token: replayed DPoP proof',
    request: async () => {
      const proof = await f.dpopA.proof('POST', f.tokenUrl);
      await accessToken(await mandateExchange(A, f.mainMandate, proof), 'first use of the proof');
      return mandateExchange(A, f.mainMandate, proof);
    },
    status: 400, error: 'invalid_dpop_proof', says: /replayed/,
  },
  {
    name: 'token: DPoP proof with wrong htu',
    request: async () => mandateExchange(A, f.mainMandate, await f.dpopA.proof('POST', `${f.m.url}/oauth/introspect`)),
    status: 400, error: 'invalid_dpop_proof', says: /htu/,
  },
  {
    name: 'token: DPoP proof with wrong htm',
    request: async () => mandateExchange(A, f.mainMandate, await f.dpopA.proof('GET', f.tokenUrl)),
    status: 400, error: 'invalid_dpop_proof', says: /htm/,
  },

  // ── Token endpoint: clients ──────────────────────────────────────────────────────────────────────
  {
    name: 'token: unknown client',
    request: async () => tokenRequest({ grant_type: GRANT_TOKEN_EXCHANGE, client_id: 'no-such-client', subject_token: f.mainMandate, subject_token_type: TOKEN_TYPE.mandate, actor_token: await svid(A), actor_token_type: TOKEN_TYPE.jwt }, f.dpopA),
    status: 401, error: 'invalid_client', says: /unknown client/,
  },
  {
    name: 'token: agent client_id (spiffe://...) without its SVID',
    request: () => tokenRequest({ grant_type: GRANT_TOKEN_EXCHANGE, client_id: A, subject_token: f.mainMandate, subject_token_type: TOKEN_TYPE.mandate }, f.dpopA),
    status: 401, error: 'invalid_client', says: /must authenticate with its SVID/,
  },
  {
    name: 'token: wrong client_secret (HTTP Basic)',
    request: async () => formPost(f.tokenUrl, { grant_type: 'authorization_code', code: 'x', redirect_uri: REDIRECT_URI, code_verifier: pkcePair().verifier }, { authorization: basicAuth('console', 'not-the-secret') }),
    status: 401, error: 'invalid_client', says: /client authentication failed/, challenge: /^Basic /,
  },
  {
    name: 'token: client assertion (JWT-SVID) for another audience',
    request: async () => tokenRequest({
      grant_type: GRANT_TOKEN_EXCHANGE, client_assertion_type: JWT_BEARER, client_assertion: await svid(A, { audience: ['spiffe://example.org/gateway'] }),
      subject_token: f.mainMandate, subject_token_type: TOKEN_TYPE.mandate,
    }, f.dpopA),
    status: 401, error: 'invalid_client', says: /client assertion .*aud/,
  },

  // ── Token endpoint: the request itself ───────────────────────────────────────────────────────────
  {
    name: 'token: unsupported grant_type',
    request: () => tokenRequest({ grant_type: 'password', client_id: 'agent-cli', username: USERNAME, password: PASSWORD }, null),
    status: 400, error: 'unsupported_grant_type', says: /grant_type password is not supported/,
  },
  {
    name: 'token: repeated parameter',
    request: () => mandateExchange(A, f.mainMandate, f.dpopA, { subject_token: [f.mainMandate, f.chainMandate] }),
    status: 400, error: 'invalid_request', says: /repeated/,
  },
  {
    name: 'token: JSON body instead of a form',
    request: async () => ({
      url: f.tokenUrl, method: 'POST',
      headers: { 'content-type': 'application/json', dpop: await f.dpopA.proof('POST', f.tokenUrl) },
      body: JSON.stringify({ grant_type: GRANT_TOKEN_EXCHANGE, ...(await asAgent(A)), subject_token: f.mainMandate, subject_token_type: TOKEN_TYPE.mandate }),
    }),
    status: 400, error: 'invalid_request', says: /x-www-form-urlencoded/,
  },
  {
    name: 'token: oversized body (server body limit)',
    request: async () => formPost(f.tokenUrl, { grant_type: GRANT_TOKEN_EXCHANGE, padding: 'x'.repeat(200 * 1024) }),
    status: 413, error: 'invalid_request', says: /exceeds the limit/,
    then: async () => {
      const health = await send({ url: `${f.m.url}/healthz`, method: 'GET' });
      assert.equal(health.status, 200, 'the server still answers after an oversized body');
      await accessToken(await mandateExchange(A, f.mainMandate, f.dpopA), 'a good exchange after the oversized body');
    },
  },

  // ── Code grant and the authorization endpoint ────────────────────────────────────────────────────
  {
    name: 'token: PKCE missing (authorization_code without code_verifier)',
    request: async () => tokenRequest({ grant_type: 'authorization_code', client_id: 'web-app', code: 'some-code', redirect_uri: REDIRECT_URI }, null),
    status: 400, error: 'invalid_request', says: /code_verifier/,
  },
  {
    name: 'token: unknown authorization code',
    request: async () => tokenRequest({ grant_type: 'authorization_code', client_id: 'web-app', code: randomBytes(32).toString('base64url'), redirect_uri: REDIRECT_URI, code_verifier: pkcePair().verifier }, null),
    status: 400, error: 'invalid_grant', says: /unknown or expired/,
  },
  {
    name: 'token: authorization code reused',
    skip: NO_AUTHORIZE,
    request: async () => {
      const { verifier, challenge } = pkcePair();
      const code = await authorizationCodeFromConsent(f.m.url, {
        clientId: 'web-app', redirectUri: REDIRECT_URI, challenge, resource: f.r1, scope: 'issues:read', agent: A, username: USERNAME, password: PASSWORD,
      });
      const redeem = await tokenRequest({ grant_type: 'authorization_code', client_id: 'web-app', code, redirect_uri: REDIRECT_URI, code_verifier: verifier }, null);
      await accessToken(redeem, 'first use of the code');
      return redeem;
    },
    status: 400, error: 'invalid_grant', says: /already been used/,
  },
  {
    name: 'authorize: code_challenge_method plain',
    skip: NO_AUTHORIZE,
    request: async () => {
      const url = new URL(`${f.m.url}/oauth/authorize`);
      for (const [k, v] of Object.entries({
        response_type: 'code', client_id: 'web-app', redirect_uri: REDIRECT_URI, code_challenge: pkcePair().verifier,
        code_challenge_method: 'plain', resource: f.r1, scope: 'issues:read', agent: A, state: 'st-plain',
      })) url.searchParams.set(k, v);
      return { url: url.href, method: 'GET' };
    },
    status: 303, error: 'invalid_request', says: /S256/, shape: 'redirect',
  },

  // ── Introspection ────────────────────────────────────────────────────────────────────────────────
  {
    name: 'introspect: without client authentication',
    request: async () => formPost(`${f.m.url}/oauth/introspect`, { token: f.obo }),
    status: 401, error: 'invalid_client', says: /client authentication is required/,
  },
  {
    name: 'introspect: as a public client',
    request: async () => formPost(`${f.m.url}/oauth/introspect`, { token: f.obo, client_id: 'web-app' }),
    status: 401, error: 'invalid_client', says: /public clients cannot introspect/,
  },
];

/** The error and description of a refusal, wherever its shape puts them. */
function refusalOf(res: AttackReply, shape: Shape, what: string): { error: unknown; description: unknown; text: string } {
  if (shape === 'redirect') {
    const location = res.headers.get('location') ?? '';
    assert.ok(location.startsWith(`${REDIRECT_URI}?`), `${what}: the error goes back to the registered redirect URI, got ${location}`);
    const q = new URL(location).searchParams;
    assert.equal(q.get('iss'), f.m.issuer, `${what}: the redirect names the issuer (RFC 9207)`);
    assert.equal(q.get('state'), 'st-plain', `${what}: the redirect returns the state`);
    return { error: q.get('error'), description: q.get('error_description'), text: `${location}\n${res.text}` };
  }
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/, `${what}: the refusal is JSON`);
  assert.ok(res.json, `${what}: the body is a JSON object: ${res.text}`);
  return { error: res.json.error, description: shape === 'server' ? res.json.message : res.json.error_description, text: res.text };
}

describe('attacks on the token endpoint and the token verifier', () => {
  /** Every JWT the table sent, to look for in replies and logs. */
  const sent = new Set<string>();

  before(async () => {
    let verifier: TestMandate['delegation']['verifier'] | undefined;
    const rs = await startProtectedResource(() => verifier as TestMandate['delegation']['verifier']);
    const m = await startTestMandate({ yaml: yaml(rs.resources.mcp, rs.resources.other) });
    verifier = m.delegation.verifier;
    const [dpopA, dpopB, dpopStranger] = await Promise.all([DpopSigner.generate(), DpopSigner.generate(), DpopSigner.generate()]);
    f = {
      m, rs, r1: rs.resources.mcp, r2: rs.resources.other, tokenUrl: `${m.issuer}/oauth/token`, userId: '',
      dpopA, dpopB, dpopStranger,
      mainMandate: '', chainMandate: '', revokedMandate: '', expiringMandate: { id: '', expiresAt: 0 },
      obo: '', chainToken: '', subAgentToken: '', revokedMandateToken: '',
      authorizeRoute: false,
    };

    const user = await m.admin('POST', '/admin/v1/users', { username: USERNAME, display_name: 'Alice Example', password: PASSWORD });
    assert.equal(user.status, 201, JSON.stringify(user.body));
    f.userId = user.body.id;
    const grant = async (body: Record<string, unknown>) => {
      const res = await m.admin('POST', '/admin/v1/mandates', { username: USERNAME, agent: A, resources: [f.r1], scopes: ['issues:read', 'issues:comment'], ttl: '1h', ...body });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body as { id: string; expires_at: string };
    };
    const expiring = await grant({ ttl: '1s' });
    f.expiringMandate = { id: expiring.id, expiresAt: Date.parse(expiring.expires_at) };
    f.mainMandate = (await grant({})).id;
    f.chainMandate = (await grant({ max_depth: 2 })).id;
    f.revokedMandate = (await grant({})).id;

    f.obo = await accessToken(await mandateExchange(A, f.mainMandate, dpopA), 'reference OBO token');
    f.chainToken = await accessToken(await mandateExchange(A, f.chainMandate, dpopA, { scope: 'issues:read' }), 'chain token');
    f.subAgentToken = await accessToken(await tokenExchange(B, f.chainToken, dpopB), 'sub-agent token');
    f.revokedMandateToken = await accessToken(await mandateExchange(A, f.revokedMandate, dpopA), 'token of the mandate to revoke');
    assert.equal((await m.admin('POST', `/admin/v1/mandates/${f.revokedMandate}/revoke`)).status, 200);

    const authorize = await send({ url: `${m.url}/oauth/authorize`, method: 'GET' });
    f.authorizeRoute = !(authorize.status === 404 && authorize.json?.error === 'ERR_NOT_FOUND');
  });

  after(async () => {
    await f?.m.close();
    await f?.rs.close();
  });

  it('baseline: the same requests done right are accepted (each row differs from one of these in one point)', async () => {
    const obo = payloadOf(f.obo);
    assert.deepEqual([obo.sub, obo.aud, obo.mandate, (obo.act as { sub: string }).sub, (obo.cnf as { jkt: string }).jkt], [f.userId, f.r1, f.mainMandate, A, f.dpopA.jkt]);
    const atR1 = await okJson(await atResource(f.obo), 'reference OBO at the resource');
    assert.deepEqual([atR1.actor, atR1.binding], [A, 'dpop']);
    const sub = await okJson(await atResource(f.subAgentToken, { signer: f.dpopB }), 'sub-agent token at the resource');
    assert.deepEqual(sub.chain, [B, A]);
    assert.equal((await okJson(await atResource(await mint()), 'a token minted with our key')).actor, A);
    assert.equal((await okJson(await atResource(await userToken(), { scheme: 'Bearer' }), 'a principal token')).sub, f.userId);

    await accessToken(await actorExchange(await svid(A), f.mainMandate, f.dpopA), 'public client with actor token');
    await accessToken(await tokenExchange(A, await userToken(), f.dpopA, { resource: f.r1 }), 'principal token as subject');
    await accessToken(await tokenExchange(A, await userToken({ may_act: { sub: A } }), f.dpopA, { resource: f.r1 }), 'may_act naming the actor');
    await accessToken(await mandateExchange(A, f.mainMandate, f.dpopA, { scope: 'issues:read', resource: f.r1 }), 'explicit scope and resource');
    const introspected = await okJson(formPost(`${f.m.url}/oauth/introspect`, { token: f.obo }, { authorization: basicAuth('console', CONSOLE_SECRET) }), 'introspection');
    assert.equal(introspected.active, true);
    for (const t of [f.obo, f.chainToken, f.subAgentToken]) sent.add(t);
  });

  for (const row of rows) {
    it(row.name, async (t) => {
      const skip = await row.skip?.();
      if (skip !== undefined) {
        t.skip(skip);
        return;
      }
      const shape = row.shape ?? 'oauth';
      const req = await row.request();
      const tokens = jwtsIn(`${JSON.stringify(req.headers ?? {})}\n${decodeURIComponent(req.body ?? '')}\n${req.url}`);
      for (const token of tokens) sent.add(token);
      const eventsBefore = f.m.events.events.length;

      const res = await send(req);
      assert.equal(res.status, row.status, `${row.name}: status ${res.status}, body ${res.text.slice(0, 400)}`);
      const { error, description, text } = refusalOf(res, shape, row.name);
      assert.equal(error, row.error, `${row.name}: ${String(description)}`);
      assertReadable(description, row.name);
      assert.match(description, row.says, row.name);
      if (row.challenge) assert.match(res.headers.get('www-authenticate') ?? '', row.challenge, `${row.name}: WWW-Authenticate`);
      assertNoLeak(text, tokens, row.name);

      const url = new URL(req.url);
      if (url.origin === new URL(f.m.url).origin && shape !== 'redirect') {
        assert.match(res.headers.get('cache-control') ?? '', /no-store/, `${row.name}: refusals are not cached`);
      }
      if (url.pathname === '/oauth/token' && shape === 'oauth') {
        const refused = f.m.events.events.slice(eventsBefore).filter((e) => e.type === 'token.refused');
        assert.ok(refused.some((e) => e.error === row.error), `${row.name}: a token.refused event with ${row.error} is recorded`);
      }
      await row.then?.();
    });
  }

  it('the server still answers after the table, and logged none of the tokens sent', async () => {
    const health = await send({ url: `${f.m.url}/healthz`, method: 'GET' });
    assert.equal(health.status, 200);
    assert.deepEqual(health.json, { status: 'ok' });
    const metadata = await send({ url: `${f.m.url}/.well-known/oauth-authorization-server`, method: 'GET' });
    assert.equal(metadata.status, 200);
    await accessToken(await mandateExchange(A, f.mainMandate, f.dpopA), 'an exchange after the table');
    assert.ok(rows.length >= 35, `the table has ${rows.length} rows`);
    const logs = f.m.logs();
    assert.ok(logs.length > 0, 'the server logged');
    for (const token of sent) assert.ok(!logs.includes(token), 'a token sent in the table appears in the server log');
  });
});
