/**
 * Scenario: an HTTP API behind the gateway. Only configured routes are served; each is decided by
 * policy on its method and path template and needs its scopes; the upstream gets the principal's own
 * secret from the vault (never the agent's token) and a Transaction Token it can verify with our
 * JWKS, saying for whom and by which agent the call is made. An MCP server sits behind the same
 * gateway at its own path, as a protected resource of its own.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyTxnToken } from '../../src/delegation/tokens/txn-token.ts';
import { localKeys } from '../../src/delegation/tokens/verify.ts';
import type { DpopSigner } from '../../src/sdk/agent/dpop.ts';
import { dpopTokenForAlice, enrolAgent, GRANT_TOKEN_EXCHANGE, PUBLIC_CLIENT } from '../support/delegation.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const AGENT = 'spiffe://example.org/agent/triage-bot';
const RESOURCE = 'https://tools.example/api/issues';
const MAIL = 'https://tools.example/mcp/mail';

const POLICY = `
@id("read-issues-over-http")
@reason("agents may read issues through the HTTP API")
permit(principal, action == Mandate::Action::"http", resource)
when { resource.method == "GET" && resource.pathTemplate == "/repos/{owner}/{repo}/issues" };
`;

describe('an HTTP API behind the gateway', { timeout: 60_000 }, () => {
  let upstream: Server;
  let m: TestMandate;
  let signer: DpopSigner;
  let token: string;
  const seen: Array<{ method?: string; url?: string; headers: IncomingMessage['headers'] }> = [];

  const call = async (method: string, path: string, body?: string) => {
    const url = `${m.url}/api/issues${path}`;
    const bare = url.split('?')[0] as string;
    const res = await fetch(url, {
      method, body,
      headers: { authorization: `DPoP ${token}`, dpop: await signer.proof(method, bare, { accessToken: token }), ...(body && { 'content-type': 'application/json' }) },
    });
    const text = await res.text();
    let json: any;
    try { json = JSON.parse(text); } catch { json = text; }
    return { status: res.status, body: json, headers: res.headers };
  };

  before(async () => {
    upstream = createServer((req, res) => {
      seen.push({ method: req.method, url: req.url, headers: req.headers });
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json', etag: '"v1"', 'set-cookie': 'upstream=1' });
      res.end(JSON.stringify([{ number: 1, title: 'First issue' }]));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const port = (upstream.address() as AddressInfo).port;
    const policies = mkdtempSync(join(tmpdir(), 'mandate-http-policies-'));
    writeFileSync(join(policies, 'http.cedar'), POLICY);
    m = await startTestMandate({
      yaml: [
        'trust_domain: example.org',
        'delegation:',
        '  scopes: { "issues:read": Read issues, "issues:comment": Comment, "mail:read": Read mail }',
        `  resources: [{ uri: "${RESOURCE}", name: Issues API, scopes: ["issues:read", "issues:comment"] }, { uri: "${MAIL}", name: Mail, scopes: ["mail:read"] }]`,
        `  clients: [{ client_id: ${PUBLIC_CLIENT}, auth_method: none, grant_types: ["${GRANT_TOKEN_EXCHANGE}"] }]`,
        `policy: { dir: "${policies}", watch: false }`,
        'gateway:',
        '  tool_servers:',
        '    - name: issues-api',
        '      path: /api/issues',
        '      type: http',
        `      url: "http://127.0.0.1:${port}/v3"`,
        `      resource: "${RESOURCE}"`,
        '      routes:',
        '        - { method: GET, path: "/repos/{owner}/{repo}/issues", scopes: ["issues:read"] }',
        '        - { method: POST, path: "/repos/{owner}/{repo}/issues/{number}/comments", scopes: ["issues:comment"] }',
        '        - { method: GET, path: "/repos/{owner}/{repo}", scopes: ["issues:read"] }',
        '      credential: { type: secret, secret: tracker-token, owner: principal, prefix: "token " }',
        '    - name: mail',
        '      path: /mcp/mail',
        '      type: mcp',
        `      url: "http://127.0.0.1:${port}/mcp"`,
        `      resource: "${MAIL}"`,
        '',
      ].join('\n'),
    });
    ({ signer, token } = await dpopTokenForAlice(m, await enrolAgent(m, AGENT), { resource: RESOURCE, scopes: ['issues:read'] }));
  });
  after(async () => {
    await m?.close();
    upstream?.closeAllConnections();
    await new Promise((r) => upstream?.close(r));
  });

  it('refuses to call upstream while the principal has no secret for it', async () => {
    const res = await call('GET', '/repos/acme/api/issues');
    assert.equal(res.status, 403, JSON.stringify(res.body));
    assert.match(res.body.message, /no secret tracker-token is set for this person/);
    assert.equal(seen.length, 0);
  });

  it('calls an allowed route with the principal\'s secret and a Txn-Token, never the agent\'s token', async () => {
    const set = await m.admin('PUT', '/admin/v1/vault/principals/secrets/tracker-token', { username: 'alice', value: 'ghp_principalSecret123' });
    assert.ok(set.status === 200 || set.status === 201, JSON.stringify(set.body));
    const res = await call('GET', '/repos/acme/api/issues?state=open');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body, [{ number: 1, title: 'First issue' }]);
    assert.equal(res.headers.get('etag'), '"v1"');
    assert.equal(res.headers.get('set-cookie'), null, 'upstream cookies do not reach the agent');
    const got = seen.at(-1);
    assert.equal(got?.url, '/v3/repos/acme/api/issues?state=open');
    assert.equal(got?.headers.authorization, 'token ghp_principalSecret123');
    assert.equal(got?.headers.dpop, undefined);
    assert.ok(!JSON.stringify(got).includes(token));
    const txn = await verifyTxnToken(String(got?.headers['txn-token']), { keys: localKeys(m.delegation.keys), trustDomain: 'example.org' });
    assert.equal(txn.act?.sub, AGENT);
    assert.equal(txn.tctx.server, 'issues-api');
  });

  it('serves another tool server at its own path, as a protected resource of its own', async () => {
    for (const [path, resource, scopes] of [['/api/issues', RESOURCE, ['issues:read', 'issues:comment']], ['/mcp/mail', MAIL, ['mail:read']]] as const) {
      const md = await m.call('GET', `/.well-known/oauth-protected-resource${path}`);
      assert.equal(md.status, 200);
      assert.equal(md.body.resource, resource);
      assert.deepEqual(md.body.scopes_supported, scopes);
    }
    const before = seen.length;
    const res = await fetch(`${m.url}/mcp/mail`, {
      method: 'POST', body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `DPoP ${token}`, dpop: await signer.proof('POST', `${m.url}/mcp/mail`, { accessToken: token }) },
    });
    assert.equal(res.status, 401, 'a token for the issues API is not one for the mail server');
    const challenge = res.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /error="invalid_token"/);
    assert.match(challenge, /resource_metadata="[^"]*\/\.well-known\/oauth-protected-resource\/mcp\/mail"/);
    assert.match(challenge, /not for this resource/);
    assert.equal(seen.length, before, 'nothing reached an upstream');
  });

  it('denies by policy, refuses a route that is not configured and a scope the token lacks', async () => {
    const before = seen.length;
    const comment = await call('POST', '/repos/acme/api/issues/1/comments', '{"body":"hi"}');
    assert.equal(comment.status, 403, JSON.stringify(comment.body));
    assert.match(String(comment.headers.get('www-authenticate')), /insufficient_scope/, 'the token has issues:read only');
    const repo = await call('GET', '/repos/acme/api');
    assert.equal(repo.status, 403, JSON.stringify(repo.body));
    assert.equal(repo.body.error, 'ERR_POLICY_DENIED');
    const unknown = await call('GET', '/repos/acme/api/pulls');
    assert.equal(unknown.status, 404);
    assert.equal(seen.length, before, 'nothing reached the upstream');
    const events = (await m.admin('GET', '/admin/v1/audit/events?type=gateway.decision')).body.events.map((e: any) => e.event);
    assert.ok(events.some((e: any) => e.tool === 'GET /repos/{owner}/{repo}/issues' && e.decision.decision === 'allow' && e.result.status === 200));
  });
});
