import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { issueJwtSvid } from '../../identity/jwt-svid/issue.ts';
import { isOAuthError } from '../../delegation/oauth/errors.ts';
import { startTestMandate, type TestMandate } from '../../../test/support/mandate.ts';
import { MandateAgent, SUBJECT_TOKEN_TYPES, type Grant } from './client.ts';
import { DpopSigner } from './dpop.ts';
import { AgentAuthError, INVALID_RESPONSE } from './errors.ts';
import { staticSource, type SvidSource } from './svid-source.ts';

const AGENT = 'spiffe://example.org/agent/triage-bot';
const RESOURCE = 'https://tools.example/mcp';
const OTHER_RESOURCE = 'https://other.example/mcp';

function yaml(extra = ''): string {
  return [
    'trust_domain: example.org',
    'delegation:',
    '  scopes:',
    '    tools:read: Read tools',
    '    tools:write: Change things with tools',
    '  resources:',
    `    - { uri: "${RESOURCE}", scopes: [tools:read, tools:write] }`,
    `    - { uri: "${OTHER_RESOURCE}", scopes: [tools:read] }`,
    extra,
  ].join('\n');
}

/** JWT-SVIDs signed in process with the server's active JWT-SVID key, counting the calls. */
function svidsOf(m: TestMandate, spiffeId = AGENT, audienceOverride?: string): SvidSource & { audiences: string[] } {
  const audiences: string[] = [];
  const source = staticSource({
    jwtSvid: async (audience) => {
      audiences.push(audience);
      return (await issueJwtSvid({ spiffeId, audience: [audienceOverride ?? audience], ttlSeconds: 300, key: m.keys.activeJwtKey() })).token;
    },
  });
  return Object.assign(source, { audiences });
}

async function setupPrincipal(m: TestMandate): Promise<void> {
  const res = await m.admin('POST', '/admin/v1/users', { username: 'alice', display_name: 'Alice', password: 'correct horse battery staple' });
  assert.equal(res.status, 201, JSON.stringify(res.body));
}

async function grantMandate(m: TestMandate, body: Record<string, unknown> = {}): Promise<string> {
  const res = await m.admin('POST', '/admin/v1/mandates', { username: 'alice', agent: AGENT, scopes: ['tools:read', 'tools:write'], resources: [RESOURCE], ...body });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.id as string;
}

function mandateGrant(id: string, scope?: string[]): Grant {
  return { subjectToken: id, subjectTokenType: SUBJECT_TOKEN_TYPES.mandate, ...(scope && { scope }) };
}

function exchangedCount(m: TestMandate): number {
  return m.events.events.filter((e) => e.type === 'token.exchanged').length;
}

describe('MandateAgent against a real Mandate', { timeout: 60_000 }, () => {
  let m: TestMandate;
  let mandateId: string;

  before(async () => {
    m = await startTestMandate({ yaml: yaml() });
    await setupPrincipal(m);
    mandateId = await grantMandate(m);
  });
  after(async () => {
    await m?.close();
  });

  test('discover reads the RFC 8414 metadata of the issuer', async () => {
    const agent = new MandateAgent({ issuer: m.issuer, svids: svidsOf(m) });
    const metadata = await agent.discover();
    assert.equal(metadata.issuer, m.issuer);
    assert.equal(metadata.token_endpoint, `${m.issuer}/oauth/token`);
    assert.equal(await agent.discover(), metadata, 'fetched once');
  });

  test('an admin mandate is exchanged for a DPoP-bound OBO token the resource server accepts', async () => {
    const signer = await DpopSigner.generate();
    const svids = svidsOf(m);
    const agent = new MandateAgent({ issuer: m.issuer, svids, dpop: signer });
    assert.equal(await agent.dpopSigner(), signer);
    const before = Date.now();
    const token = await agent.tokenFor(RESOURCE, mandateGrant(mandateId));
    const after = Date.now();
    assert.deepEqual(svids.audiences, [m.issuer], 'the actor JWT-SVID is for the issuer');
    assert.equal(token.tokenType, 'DPoP');
    assert.equal(token.resource, RESOURCE);
    assert.deepEqual([...token.scope].sort(), ['tools:read', 'tools:write']);
    const expiresAt = token.expiresAt.getTime();
    assert.ok(expiresAt >= before + 300_000 && expiresAt <= after + 300_000, 'the token lives delegation.token.max_ttl from when it was asked for');

    const headers = await agent.authorize({ method: 'POST', url: `${RESOURCE}?x=1` }, RESOURCE, mandateGrant(mandateId));
    assert.ok(headers.Authorization === `DPoP ${token.accessToken}`, 'authorize uses the cached token');
    const verified = await m.delegation.verifier.verify({ authorization: headers.Authorization, dpop: headers.DPoP, method: 'POST', url: RESOURCE, audience: RESOURCE });
    assert.equal(verified.actor, AGENT);
    assert.equal(verified.principal.issuer, m.issuer);
    assert.equal(verified.mandateId, mandateId);
    assert.equal(verified.binding, 'dpop');
    assert.equal(verified.claims.cnf?.jkt, signer.jkt);
    assert.deepEqual([...verified.scopes].sort(), ['tools:read', 'tools:write']);

    // The proof is for one request: another method or another key is refused.
    const again = await agent.authorize({ method: 'GET', url: RESOURCE }, RESOURCE, mandateGrant(mandateId));
    await assert.rejects(m.delegation.verifier.verify({ authorization: again.Authorization, dpop: again.DPoP, method: 'POST', url: RESOURCE, audience: RESOURCE }), (err) => isOAuthError(err, 'invalid_dpop_proof'));
    const stranger = await (await DpopSigner.generate()).proof('POST', RESOURCE, { accessToken: token.accessToken });
    await assert.rejects(m.delegation.verifier.verify({ authorization: headers.Authorization, dpop: stranger, method: 'POST', url: RESOURCE, audience: RESOURCE }), (err) => isOAuthError(err, 'invalid_token'));
  });

  test('a narrower scope is asked for and granted', async () => {
    const agent = new MandateAgent({ issuer: m.issuer, svids: svidsOf(m) });
    const token = await agent.exchange({ ...mandateGrant(mandateId, ['tools:read']), resource: RESOURCE });
    assert.deepEqual(token.scope, ['tools:read']);
    const headers = await agent.authorize({ method: 'GET', url: RESOURCE }, RESOURCE, mandateGrant(mandateId, ['tools:read']));
    const verified = await m.delegation.verifier.verify({ authorization: headers.Authorization, dpop: headers.DPoP, method: 'GET', url: RESOURCE, audience: RESOURCE });
    assert.deepEqual(verified.scopes, ['tools:read']);
  });

  test('tokenFor keeps a token until 80% of its life, then exchanges again', async () => {
    let clock = Date.now();
    const agent = new MandateAgent({ issuer: m.issuer, svids: svidsOf(m), now: () => new Date(clock) });
    const grant = mandateGrant(mandateId);
    const start = exchangedCount(m);
    const first = await agent.tokenFor(RESOURCE, grant);
    assert.equal(exchangedCount(m), start + 1);
    clock += 239_000; // 300 s token: refreshed at 240 s (80%), before the 30 s margin (270 s)
    assert.ok((await agent.tokenFor(RESOURCE, grant)).accessToken === first.accessToken, 'still the first token');
    assert.equal(exchangedCount(m), start + 1);
    clock += 1_000;
    const second = await agent.tokenFor(RESOURCE, grant);
    assert.ok(second.accessToken !== first.accessToken, 'a new token');
    assert.equal(exchangedCount(m), start + 2);
    assert.ok((await agent.tokenFor(RESOURCE, grant)).accessToken === second.accessToken, 'the new token is kept');

    // Another grant (here: another scope) is another token.
    const narrow = await agent.tokenFor(RESOURCE, mandateGrant(mandateId, ['tools:read']));
    assert.ok(narrow.accessToken !== second.accessToken, 'another token for another grant');
    assert.equal(exchangedCount(m), start + 3);
  });

  test('a token with less than a minute to live is exchanged again when 30 s are left', async () => {
    const shortMandate = await grantMandate(m, { ttl: '1m' });
    let clock = Date.now();
    const agent = new MandateAgent({ issuer: m.issuer, svids: svidsOf(m), now: () => new Date(clock) });
    const grant = mandateGrant(shortMandate);
    const first = await agent.tokenFor(RESOURCE, grant);
    const life = first.expiresAt.getTime() - clock;
    assert.ok(life <= 60_000 && life > 50_000, `the token lives as long as its mandate (${life} ms)`);
    clock = first.expiresAt.getTime() - 30_001;
    assert.ok((await agent.tokenFor(RESOURCE, grant)).accessToken === first.accessToken, 'still the first token');
    clock += 1;
    assert.ok((await agent.tokenFor(RESOURCE, grant)).accessToken !== first.accessToken, 'a new token 30 s before expiry');
  });

  test('concurrent callers share one exchange', async () => {
    const agent = new MandateAgent({ issuer: m.issuer, svids: svidsOf(m) });
    const start = exchangedCount(m);
    const tokens = await Promise.all(Array.from({ length: 5 }, () => agent.tokenFor(RESOURCE, mandateGrant(mandateId))));
    assert.equal(new Set(tokens.map((t) => t.accessToken)).size, 1);
    assert.equal(exchangedCount(m), start + 1);
  });

  test('refusals surface as AgentAuthError with the server\'s error and error_description', async () => {
    const revoked = await grantMandate(m);
    assert.equal((await m.admin('POST', `/admin/v1/mandates/${revoked}/revoke`)).status, 200);
    const agent = new MandateAgent({ issuer: m.issuer, svids: svidsOf(m) });
    const cases: Array<[string, Parameters<MandateAgent['exchange']>[0], string, RegExp]> = [
      ['unknown mandate', { ...mandateGrant('mdt_nope'), resource: RESOURCE }, 'invalid_request', /no mandate mdt_nope/],
      ['revoked mandate', { ...mandateGrant(revoked), resource: RESOURCE }, 'invalid_request', new RegExp(`mandate ${revoked} is revoked`)],
      ['resource not in the mandate', { ...mandateGrant(mandateId), resource: OTHER_RESOURCE }, 'invalid_target', /covers resource https:\/\/other\.example\/mcp/],
      ['scope beyond the mandate', { ...mandateGrant(mandateId, ['tools:admin']), resource: RESOURCE }, 'invalid_scope', /exceeds what the mandate grants/],
      ['unknown subject token type', { subjectToken: 'x', subjectTokenType: 'urn:example:nope', resource: RESOURCE }, 'invalid_request', /subject_token_type urn:example:nope is not supported/],
      ['subject token that is no token', { subjectToken: 'not-a-jwt', subjectTokenType: SUBJECT_TOKEN_TYPES.accessToken, resource: RESOURCE }, 'invalid_request', /not from this authorization server/],
    ];
    for (const [name, request, error, description] of cases) {
      await assert.rejects(agent.exchange(request), (err: unknown) => {
        assert.ok(err instanceof AgentAuthError, `${name}: ${String(err)}`);
        assert.equal(err.error, error, `${name}: ${err.message}`);
        assert.match(err.error_description ?? '', description, name);
        assert.equal(err.status, 400, name);
        return true;
      }, name);
    }
  });

  test('an agent the mandate does not name, or a JWT-SVID for another audience, is refused', async () => {
    const intruder = new MandateAgent({ issuer: m.issuer, svids: svidsOf(m, 'spiffe://example.org/agent/intruder') });
    await assert.rejects(intruder.exchange({ ...mandateGrant(mandateId), resource: RESOURCE }), (err) => err instanceof AgentAuthError && err.error === 'invalid_request' && /does not name agent spiffe:\/\/example.org\/agent\/intruder/.test(err.message));
    const misdirected = new MandateAgent({ issuer: m.issuer, svids: svidsOf(m, AGENT, 'https://elsewhere.example') });
    await assert.rejects(misdirected.exchange({ ...mandateGrant(mandateId), resource: RESOURCE }), (err) => err instanceof AgentAuthError && err.error === 'invalid_client' && err.status === 401);
  });

  test('a malformed request is a TypeError before anything is sent', async () => {
    const svids = svidsOf(m);
    const agent = new MandateAgent({ issuer: m.issuer, svids });
    const bad: Array<Parameters<MandateAgent['exchange']>[0]> = [
      { subjectToken: '', subjectTokenType: SUBJECT_TOKEN_TYPES.mandate, resource: RESOURCE },
      { subjectToken: mandateId, subjectTokenType: '', resource: RESOURCE },
      { subjectToken: mandateId, subjectTokenType: SUBJECT_TOKEN_TYPES.mandate, resource: '' },
      { subjectToken: mandateId, subjectTokenType: SUBJECT_TOKEN_TYPES.mandate, resource: RESOURCE, scope: ['a b'] },
      { subjectToken: mandateId, subjectTokenType: SUBJECT_TOKEN_TYPES.mandate, resource: RESOURCE, scope: ['a"'] },
    ];
    for (const request of bad) await assert.rejects(agent.exchange(request), TypeError, JSON.stringify(request));
    assert.deepEqual(svids.audiences, []);
    for (const issuer of ['not a url', 'ftp://mandate.example', 'https://mandate.example/?a=1', 'https://mandate.example/#f', 'https://u:p@mandate.example']) {
      assert.throws(() => new MandateAgent({ issuer, svids }), TypeError, issuer);
    }
    assert.throws(() => new MandateAgent({ issuer: m.issuer, svids, timeoutMs: 0 }), TypeError);
  });
});

describe('MandateAgent and DPoP nonces', { timeout: 60_000 }, () => {
  let m: TestMandate;
  let mandateId: string;

  before(async () => {
    m = await startTestMandate({ yaml: yaml('  dpop:\n    require_nonce: true') });
    await setupPrincipal(m);
    mandateId = await grantMandate(m);
  });
  after(async () => {
    await m?.close();
  });

  test('use_dpop_nonce is answered by one retry with the nonce; the next exchange sends it at once', async () => {
    const statuses: number[] = [];
    const recording: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (String(input).endsWith('/oauth/token')) statuses.push(res.status);
      return res;
    };
    const agent = new MandateAgent({ issuer: m.issuer, svids: svidsOf(m), fetch: recording });
    const token = await agent.exchange({ ...mandateGrant(mandateId), resource: RESOURCE });
    assert.deepEqual(statuses, [400, 200]);
    await agent.exchange({ ...mandateGrant(mandateId), resource: RESOURCE });
    assert.deepEqual(statuses, [400, 200, 200], 'the nonce from the last reply is reused');
    const proof = await (await agent.dpopSigner()).proof('GET', RESOURCE, { accessToken: token.accessToken });
    const verified = await m.delegation.verifier.verify({ authorization: `DPoP ${token.accessToken}`, dpop: proof, method: 'GET', url: RESOURCE, audience: RESOURCE });
    assert.equal(verified.actor, AGENT);
  });
});

/** A stand-in authorization server answering metadata and token requests as `reply` says. */
async function fakeServer(reply: (req: IncomingMessage, res: ServerResponse, url: string) => void): Promise<{ url: string; server: Server; requests: string[] }> {
  const requests: string[] = [];
  let base = '';
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => reply(req, res, base));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url: base, server, requests };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

function metadataOf(base: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { issuer: base, token_endpoint: `${base}/oauth/token`, ...extra };
}

describe('MandateAgent with a misbehaving authorization server', { timeout: 30_000 }, () => {
  const svids = staticSource({ jwtSvid: async () => 'header.payload.signature' });
  const request = { subjectToken: 'mdt_x', subjectTokenType: SUBJECT_TOKEN_TYPES.mandate, resource: RESOURCE };

  const metadataCases: Array<[string, (base: string) => [number, unknown], RegExp]> = [
    ['metadata missing', () => [404, { error: 'not_found' }], /answered HTTP 404/],
    ['metadata not JSON', () => [200, '<html>'], /is not a JSON object/],
    ['metadata a JSON array', () => [200, []], /is not a JSON object/],
    ['another issuer', (base) => [200, metadataOf(`${base}/`)], /names issuer .* not .*RFC 8414 §3\.3/],
    ['no token endpoint', (base) => [200, { issuer: base }], /names no token_endpoint/],
    ['token endpoint not a URL', (base) => [200, metadataOf(base, { token_endpoint: 'nope' })], /is not a URL/],
    ['token endpoint downgraded', (base) => [200, metadataOf(base, { token_endpoint: 'ftp://127.0.0.1/token' })], /does not use http:/],
    ['dpop algs not strings', (base) => [200, metadataOf(base, { dpop_signing_alg_values_supported: [1] })], /not a list of strings/],
  ];
  for (const [name, answer, pattern] of metadataCases) {
    test(`discover refuses: ${name}`, async () => {
      const fake = await fakeServer((_req, res, base) => {
        const [status, body] = answer(base);
        json(res, status, body);
      });
      try {
        const agent = new MandateAgent({ issuer: fake.url, svids });
        await assert.rejects(agent.exchange(request), (err) => err instanceof AgentAuthError && err.error === INVALID_RESPONSE && pattern.test(err.message), name);
        assert.deepEqual(fake.requests, ['GET /.well-known/oauth-authorization-server']);
        await assert.rejects(agent.discover(), AgentAuthError);
        assert.equal(fake.requests.length, 2, 'a failed discovery is not remembered');
      } finally {
        fake.server.closeAllConnections();
        fake.server.close();
      }
    });
  }

  const tokenCases: Array<[string, [number, unknown, Record<string, string>?], string, RegExp]> = [
    ['Bearer instead of DPoP', [200, { access_token: 'a', token_type: 'Bearer', expires_in: 60 }], INVALID_RESPONSE, /token_type "Bearer"/],
    ['no access_token', [200, { token_type: 'DPoP', expires_in: 60 }], INVALID_RESPONSE, /no access_token/],
    ['no expires_in', [200, { access_token: 'a', token_type: 'DPoP' }], INVALID_RESPONSE, /no positive expires_in/],
    ['negative expires_in', [200, { access_token: 'a', token_type: 'DPoP', expires_in: -1 }], INVALID_RESPONSE, /no positive expires_in/],
    ['scope not a string', [200, { access_token: 'a', token_type: 'DPoP', expires_in: 60, scope: ['a'] }], INVALID_RESPONSE, /scope is not a string/],
    ['a refresh token issued', [200, { access_token: 'a', token_type: 'DPoP', expires_in: 60, issued_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }], INVALID_RESPONSE, /not an access token/],
    ['token response not JSON', [200, 'ok'], INVALID_RESPONSE, /not a JSON object/],
    ['an error page', [502, '<html>bad gateway</html>'], INVALID_RESPONSE, /answered HTTP 502 without an OAuth error/],
    ['an OAuth error', [401, { error: 'invalid_client', error_description: 'who are you' }], 'invalid_client', /^invalid_client: who are you$/],
    ['an OAuth error without description', [503, { error: 'temporarily_unavailable' }], 'temporarily_unavailable', /^temporarily_unavailable$/],
    ['use_dpop_nonce without a nonce', [400, { error: 'use_dpop_nonce', error_description: 'nonce please' }], 'use_dpop_nonce', /nonce please/],
    ['a reply over 1 MiB', [200, JSON.stringify({ access_token: 'a'.repeat(1024 * 1024), token_type: 'DPoP', expires_in: 60 })], INVALID_RESPONSE, /larger than 1048576 bytes|declares/],
  ];
  for (const [name, [status, body, headers], error, pattern] of tokenCases) {
    test(`exchange refuses: ${name}`, async () => {
      const fake = await fakeServer((req, res, base) => {
        if (req.method === 'GET') json(res, 200, metadataOf(base));
        else json(res, status, body, headers);
      });
      try {
        const agent = new MandateAgent({ issuer: fake.url, svids });
        await assert.rejects(agent.exchange(request), (err) => err instanceof AgentAuthError && err.error === error && err.status === status && pattern.test(err.message), name);
        assert.deepEqual(fake.requests.filter((r) => r.startsWith('POST')), ['POST /oauth/token']);
      } finally {
        fake.server.closeAllConnections();
        fake.server.close();
      }
    });
  }

  test('use_dpop_nonce is retried once only, with the nonce in the proof', async () => {
    const proofs: string[] = [];
    const fake = await fakeServer((req, res, base) => {
      if (req.method === 'GET') return json(res, 200, metadataOf(base));
      proofs.push(String(req.headers.dpop));
      json(res, 400, { error: 'use_dpop_nonce', error_description: 'nonce please' }, { 'dpop-nonce': `n-${proofs.length}` });
    });
    try {
      const agent = new MandateAgent({ issuer: fake.url, svids });
      await assert.rejects(agent.exchange(request), (err) => err instanceof AgentAuthError && err.error === 'use_dpop_nonce');
      assert.equal(proofs.length, 2);
      const nonces = proofs.map((p) => JSON.parse(Buffer.from(p.split('.')[1] as string, 'base64url').toString('utf8')).nonce);
      assert.deepEqual(nonces, [undefined, 'n-1']);
    } finally {
      fake.server.closeAllConnections();
      fake.server.close();
    }
  });

  test('the request carries the exchange parameters, client assertion, actor token and DPoP proof', async () => {
    let form: URLSearchParams | undefined;
    let dpop: string | undefined;
    const fake = await fakeServer((req, res, base) => {
      if (req.method === 'GET') return json(res, 200, metadataOf(base));
      dpop = String(req.headers.dpop);
      json(res, 200, { access_token: 'tok', token_type: 'DPoP', expires_in: 60, scope: 'tools:read' });
    });
    // Read the body: the fake server discards it, so capture it through the agent's fetch.
    const capture: typeof fetch = async (input, init) => {
      if (init?.method === 'POST') form = new URLSearchParams(String(init.body));
      return fetch(input, init);
    };
    try {
      const signer = await DpopSigner.generate('EdDSA');
      const agent = new MandateAgent({ issuer: fake.url, svids, dpop: signer, fetch: capture });
      const token = await agent.exchange({ ...request, scope: ['tools:read'], mandateId: 'mdt_x' });
      assert.deepEqual(token.scope, ['tools:read']);
      assert.deepEqual(Object.fromEntries(form ?? []), {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: 'mdt_x',
        subject_token_type: SUBJECT_TOKEN_TYPES.mandate,
        actor_token: 'header.payload.signature',
        actor_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: 'header.payload.signature',
        resource: RESOURCE,
        scope: 'tools:read',
        mandate_id: 'mdt_x',
      });
      const claims = JSON.parse(Buffer.from((dpop as string).split('.')[1] as string, 'base64url').toString('utf8'));
      assert.equal(claims.htm, 'POST');
      assert.equal(claims.htu, `${fake.url}/oauth/token`);
      assert.equal(claims.ath, undefined);
    } finally {
      fake.server.closeAllConnections();
      fake.server.close();
    }
  });

  test('a DPoP key the server does not accept is refused before the exchange', async () => {
    const fake = await fakeServer((_req, res, base) => json(res, 200, metadataOf(base, { dpop_signing_alg_values_supported: ['ES256'] })));
    try {
      const agent = new MandateAgent({ issuer: fake.url, svids, dpop: await DpopSigner.generate('EdDSA') });
      await assert.rejects(agent.exchange(request), (err) => err instanceof AgentAuthError && err.error === 'invalid_dpop_proof' && /ES256, not EdDSA/.test(err.message));
      assert.deepEqual(fake.requests, ['GET /.well-known/oauth-authorization-server']);
    } finally {
      fake.server.closeAllConnections();
      fake.server.close();
    }
  });

  test('an issuer with a path has its metadata at the RFC 8414 §3.1 address', async () => {
    const fake = await fakeServer((_req, res, base) => json(res, 200, metadataOf(`${base}/tenant/a`)));
    try {
      const agent = new MandateAgent({ issuer: `${fake.url}/tenant/a`, svids });
      assert.equal((await agent.discover()).issuer, `${fake.url}/tenant/a`);
      assert.deepEqual(fake.requests, ['GET /.well-known/oauth-authorization-server/tenant/a']);
    } finally {
      fake.server.closeAllConnections();
      fake.server.close();
    }
  });
});

describe('MandateAgent with binding mtls', { timeout: 30_000 }, () => {
  const request = { subjectToken: 'mdt_x', subjectTokenType: SUBJECT_TOKEN_TYPES.mandate, resource: RESOURCE };
  const noX509 = staticSource({ jwtSvid: async () => 'header.payload.signature' });
  const x509Calls: string[] = [];
  const withX509 = staticSource({
    jwtSvid: async () => assert.fail('no JWT-SVID for mutual TLS'),
    x509: async () => {
      x509Calls.push('x509');
      throw new Error('no SVID read expected');
    },
  });

  test('options are checked when the agent is made', () => {
    assert.throws(() => new MandateAgent({ issuer: 'https://mandate.example', svids: noX509, binding: 'mtls' }), (err) => err instanceof TypeError && /X\.509-SVID/.test(err.message));
    assert.throws(() => new MandateAgent({ issuer: 'https://mandate.example', svids: withX509, binding: 'tls' as 'mtls' }), (err) => err instanceof TypeError && /binding must be/.test(err.message));
    assert.throws(() => new MandateAgent({ issuer: 'https://mandate.example', svids: withX509, binding: 'mtls', tlsCa: 'not pem' }), (err) => err instanceof TypeError && /tlsCa/.test(err.message));
    assert.equal(new MandateAgent({ issuer: 'https://mandate.example', svids: withX509, binding: 'mtls' }).binding, 'mtls');
    assert.equal(new MandateAgent({ issuer: 'https://mandate.example', svids: noX509 }).binding, 'dpop');
  });

  test('a DPoP agent without an X.509-SVID has no TLS dispatcher', async () => {
    const agent = new MandateAgent({ issuer: 'https://mandate.example', svids: noX509 });
    await assert.rejects(agent.tlsDispatcher(), (err) => err instanceof TypeError && /no X\.509-SVID/.test(err.message));
    await assert.rejects(agent.spiffeId(), TypeError);
  });

  const aliasCases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['no mtls_endpoint_aliases', {}, /names no mtls_endpoint_aliases\.token_endpoint/],
    ['aliases without a token endpoint', { mtls_endpoint_aliases: { revocation_endpoint: 'https://x.example/revoke' } }, /names no mtls_endpoint_aliases\.token_endpoint/],
    ['a token endpoint that is not a URL', { mtls_endpoint_aliases: { token_endpoint: 'nope' } }, /is not a URL/],
    ['a token endpoint without TLS', { mtls_endpoint_aliases: { token_endpoint: 'http://127.0.0.1:1/oauth/token' } }, /is not an https URL/],
    ['aliases that are no object', { mtls_endpoint_aliases: 'https://x.example' }, /mtls_endpoint_aliases is not an object/],
    ['a token endpoint that is no string', { mtls_endpoint_aliases: { token_endpoint: 1 } }, /mtls_endpoint_aliases is not an object/],
  ];
  for (const [name, extra, pattern] of aliasCases) {
    test(`exchange refuses: ${name}`, async () => {
      const fake = await fakeServer((_req, res, base) => json(res, 200, metadataOf(base, extra)));
      try {
        x509Calls.length = 0;
        const agent = new MandateAgent({ issuer: fake.url, svids: withX509, binding: 'mtls' });
        await assert.rejects(agent.exchange(request), (err) => err instanceof AgentAuthError && err.error === INVALID_RESPONSE && pattern.test(err.message), name);
        assert.deepEqual(fake.requests, ['GET /.well-known/oauth-authorization-server'], 'no token request');
        assert.deepEqual(x509Calls, [], 'the SVID is not read');
      } finally {
        fake.server.closeAllConnections();
        fake.server.close();
      }
    });
  }
});
