import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DpopNonces } from '../../delegation/binding/dpop.ts';
import { MemoryReplayGuard } from '../../delegation/binding/replay.ts';
import { isOAuthError } from '../../delegation/oauth/errors.ts';
import { AccessTokenVerifier, localKeys } from '../../delegation/tokens/verify.ts';
import { issueJwtSvid } from '../../identity/jwt-svid/issue.ts';
import { startTestMandate, type TestMandate } from '../../../test/support/mandate.ts';
import { MandateAgent, SUBJECT_TOKEN_TYPES, type Grant } from './client.ts';
import { AgentAuthError } from './errors.ts';
import { mandateAuthProvider, mandateFetch } from './mcp.ts';
import { staticSource } from './svid-source.ts';

const AGENT = 'spiffe://example.org/agent/triage-bot';

interface Seen {
  method: string;
  url: string;
  body: string;
  custom: string | undefined;
  status: number;
  nonce: unknown;
}

function proofClaims(dpop: string | string[] | undefined): Record<string, unknown> {
  if (typeof dpop !== 'string') return {};
  return JSON.parse(Buffer.from(dpop.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

async function bodyOf(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A resource server at <base>/tools that checks every request with an AccessTokenVerifier of the
 * Mandate (requiring DPoP nonces of its own when `requireNonce`) and answers 200 with what it saw.
 */
class ResourceServer {
  readonly seen: Seen[] = [];
  server!: Server;
  base = '';
  verifier: AccessTokenVerifier | undefined;
  /** Answer every request with this challenge instead of checking it. */
  challenge: (() => { status: number; headers: Record<string, string> }) | undefined;

  get resource(): string {
    return `${this.base}/tools`;
  }

  async start(): Promise<void> {
    this.server = createServer(async (req, res) => {
      const body = await bodyOf(req);
      const url = `${this.base}${req.url}`;
      const record = (status: number) => this.seen.push({ method: req.method ?? '', url, body, custom: req.headers['x-custom'] as string | undefined, status, nonce: proofClaims(req.headers.dpop).nonce });
      if (this.challenge) {
        const { status, headers } = this.challenge();
        record(status);
        res.writeHead(status, headers);
        res.end();
        return;
      }
      try {
        const verified = await (this.verifier as AccessTokenVerifier).verify({ authorization: req.headers.authorization, dpop: req.headers.dpop, method: req.method ?? '', url, audience: this.resource });
        record(200);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ actor: verified.actor, scopes: verified.scopes }));
      } catch (err) {
        if (!isOAuthError(err)) throw err;
        record(err.status);
        res.writeHead(err.status, { 'content-type': 'application/json', ...err.headers });
        res.end(JSON.stringify(err.toJSON()));
      }
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

describe('mandateFetch', { timeout: 60_000 }, () => {
  const rs = new ResourceServer();
  let m: TestMandate;
  let agent: MandateAgent;
  let grant: Grant;

  before(async () => {
    await rs.start();
    m = await startTestMandate({ yaml: `trust_domain: example.org\ndelegation:\n  scopes:\n    tools:read: Read\n  resources:\n    - { uri: "${rs.resource}" }\n` });
    // The resource server's own verifier: same keys and revocations as the Mandate, its own nonces.
    rs.verifier = new AccessTokenVerifier({
      issuer: m.issuer,
      keys: localKeys(m.delegation.keys),
      revocation: m.delegation.revocation,
      dpop: { algorithms: ['ES256'], replay: new MemoryReplayGuard(), nonces: new DpopNonces(), requireNonce: true },
    });
    await m.admin('POST', '/admin/v1/users', { username: 'alice', display_name: 'Alice', password: 'correct horse battery staple' });
    const mandate = await m.admin('POST', '/admin/v1/mandates', { username: 'alice', agent: AGENT, scopes: ['tools:read'], resources: [rs.resource] });
    grant = { subjectToken: mandate.body.id, subjectTokenType: SUBJECT_TOKEN_TYPES.mandate };
    const svids = staticSource({ jwtSvid: async (aud) => (await issueJwtSvid({ spiffeId: AGENT, audience: [aud], ttlSeconds: 300, key: m.keys.activeJwtKey() })).token });
    agent = new MandateAgent({ issuer: m.issuer, svids });
  });
  after(async () => {
    await m?.close();
    await rs.close();
  });

  test('every request carries the token and its own proof; a nonce request is answered once, with the body again', async () => {
    const call = mandateFetch(agent, rs.resource, grant);
    rs.seen.length = 0;
    const res = await call(`${rs.resource}?q=1`, { method: 'POST', headers: { 'x-custom': 'kept', authorization: 'Bearer replaced' }, body: '{"a":1}' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { actor: AGENT, scopes: ['tools:read'] });
    assert.deepEqual(rs.seen.map((s) => [s.status, s.body, s.custom, typeof s.nonce]), [[401, '{"a":1}', 'kept', 'undefined'], [200, '{"a":1}', 'kept', 'string']]);

    // The nonce is remembered: the next requests need no retry, whatever their method and URL.
    const get = await call(new URL(`${rs.resource}/items`));
    assert.equal(get.status, 200);
    await get.body?.cancel();
    const del = await call(rs.resource, { method: 'DELETE' });
    assert.equal(del.status, 200);
    await del.body?.cancel();
    assert.deepEqual(rs.seen.slice(2).map((s) => [s.method, s.url, s.status]), [['GET', `${rs.resource}/items`, 200], ['DELETE', rs.resource, 200]]);
  });

  test('a server that keeps asking for a nonce gets one retry; its 401 is returned', async () => {
    const call = mandateFetch(agent, rs.resource, grant);
    rs.seen.length = 0;
    let n = 0;
    // A new nonce every time: only the limit of one retry ends the exchange.
    rs.challenge = () => ({ status: 401, headers: { 'www-authenticate': 'DPoP error="use_dpop_nonce", error_description="nonce"', 'dpop-nonce': `n-${(n += 1)}` } });
    try {
      const res = await call(rs.resource, { method: 'POST', body: 'x' });
      assert.equal(res.status, 401);
      assert.equal(rs.seen.length, 2);
      assert.deepEqual(rs.seen.map((s) => s.nonce), [undefined, 'n-1']);
    } finally {
      rs.challenge = undefined;
    }
  });

  test('no retry for a 401 that asks for no nonce, or for a body that cannot be sent twice', async () => {
    const call = mandateFetch(agent, rs.resource, grant);
    try {
      rs.seen.length = 0;
      rs.challenge = () => ({ status: 401, headers: { 'www-authenticate': 'DPoP error="invalid_token"', 'dpop-nonce': 'fresh' } });
      assert.equal((await call(rs.resource)).status, 401);
      assert.equal(rs.seen.length, 1);

      rs.seen.length = 0;
      rs.challenge = () => ({ status: 401, headers: { 'www-authenticate': 'DPoP error="use_dpop_nonce"', 'dpop-nonce': 'newer' } });
      const stream = new ReadableStream<Uint8Array>({ start(c) { c.enqueue(new TextEncoder().encode('streamed')); c.close(); } });
      const res = await call(rs.resource, { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
      assert.equal(res.status, 401);
      assert.deepEqual(rs.seen.map((s) => s.body), ['streamed']);

      // A challenge whose nonce is the one just used is not retried either.
      rs.seen.length = 0;
      assert.equal((await call(rs.resource)).status, 401);
      assert.deepEqual(rs.seen.map((s) => s.nonce), ['newer']);
    } finally {
      rs.challenge = undefined;
    }
  });

  test('a refused exchange rejects the fetch with AgentAuthError', async () => {
    const revokedGrant = { subjectToken: (await m.admin('POST', '/admin/v1/mandates', { username: 'alice', agent: AGENT, scopes: ['tools:read'], resources: [rs.resource] })).body.id as string, subjectTokenType: SUBJECT_TOKEN_TYPES.mandate };
    await m.admin('POST', `/admin/v1/mandates/${revokedGrant.subjectToken}/revoke`);
    rs.seen.length = 0;
    await assert.rejects(mandateFetch(agent, rs.resource, revokedGrant)(rs.resource), (err) => err instanceof AgentAuthError && err.error === 'invalid_request' && /revoked/.test(err.message));
    assert.equal(rs.seen.length, 0, 'nothing reached the resource server');
  });
});

describe('mandateAuthProvider', () => {
  test('refuses an agent whose tokens are DPoP-bound, pointing to mandateFetch', () => {
    const agent = new MandateAgent({ issuer: 'https://mandate.example.org', svids: staticSource({ jwtSvid: async () => 'unused' }) });
    const grant = { subjectToken: 'mdt_x', subjectTokenType: SUBJECT_TOKEN_TYPES.mandate };
    assert.throws(() => mandateAuthProvider(agent, 'https://tools.example/mcp', grant), (err) => err instanceof TypeError && /binding 'mtls'/.test(err.message) && /use fetch: mandateFetch\(agent, resource, grant\)/.test(err.message));
  });
});
