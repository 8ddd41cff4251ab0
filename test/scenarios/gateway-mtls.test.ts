/**
 * Scenario: certificate-bound tokens at the gateway's mutual-TLS listener. The agent exchanges its
 * mandate over mutual TLS with its X.509-SVID (RFC 8705) and calls the tool server through the
 * gateway's mTLS listener with the same certificate. Another agent's certificate, no certificate, or
 * a certificate that is not an SVID of a trusted trust domain is refused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { enrolAgent, GRANT_TOKEN_EXCHANGE, oauthPost, serverTls, TT, type EnrolledAgent, type ServerTls } from '../support/delegation.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const AGENT = 'spiffe://example.org/agent/triage-bot';
const OTHER = 'spiffe://example.org/agent/other-bot';
const RESOURCE = 'https://tools.example/mcp/issues';

describe('the gateway\'s mutual-TLS listener', { timeout: 60_000 }, () => {
  let m: TestMandate;
  let tls: ServerTls;
  let upstream: Server;
  let agent: EnrolledAgent;
  let other: EnrolledAgent;
  let token: string;

  const call = async (client: { cert?: string; key?: string }, auth = `Bearer ${token}`) => {
    const dispatcher = new Agent({ connect: { ca: tls.certPem, ...client } });
    try {
      const res = await request(`${m.gatewayUrls.mtlsUrl}/mcp/issues`, {
        method: 'POST', dispatcher,
        headers: { authorization: auth, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      return { status: res.statusCode, body: await res.body.json() as any, headers: res.headers };
    } finally {
      await dispatcher.close();
    }
  };

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mandate-gw-mtls-'));
    tls = await serverTls(dir);
    upstream = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'list_issues', annotations: { readOnlyHint: true } }] } }));
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const port = (upstream.address() as AddressInfo).port;
    m = await startTestMandate({
      dataDir: dir,
      yaml: [
        'trust_domain: example.org',
        'delegation:',
        '  scopes: { "issues:read": Read issues }',
        `  resources: [{ uri: "${RESOURCE}", name: Issue tracker }]`,
        `  mtls: { listen: "127.0.0.1:0", cert_file: "${tls.certFile}", key_file: "${tls.keyFile}" }`,
        `policy: { dir: "${process.cwd()}/config/policies", watch: false }`,
        'gateway:',
        `  mtls: { listen: "127.0.0.1:0", cert_file: "${tls.certFile}", key_file: "${tls.keyFile}" }`,
        '  tool_servers:',
        `    - { name: issues, path: /mcp/issues, type: mcp, url: "http://127.0.0.1:${port}/mcp", resource: "${RESOURCE}" }`,
        '',
      ].join('\n'),
    });
    agent = await enrolAgent(m, AGENT);
    other = await enrolAgent(m, OTHER);
    await m.admin('POST', '/admin/v1/users', { username: 'alice', password: 'correct horse battery staple' });
    const mandate = await m.admin('POST', '/admin/v1/mandates', { username: 'alice', agent: AGENT, scopes: ['issues:read'], resources: [RESOURCE] });
    const res = await oauthPost(m.mtlsUrl as string, { grant_type: GRANT_TOKEN_EXCHANGE, subject_token: mandate.body.id, subject_token_type: TT.mandate, resource: RESOURCE }, {
      tls: { cert: agent.certPem, key: agent.keyPem, ca: tls.certPem },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.token_type, 'Bearer');
    token = res.body.access_token;
  });
  after(async () => {
    await m?.close();
    upstream?.closeAllConnections();
    await new Promise((r) => upstream?.close(r));
  });

  it('serves the agent that presents the certificate its token is bound to', async () => {
    const res = await call({ cert: agent.certPem, key: agent.keyPem });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.result.tools.map((t: any) => t.name), ['list_issues']);
  });

  it('refuses the token without a certificate, with another agent\'s SVID, and a certificate that is no SVID', async () => {
    const none = await call({});
    assert.equal(none.status, 401);
    assert.match(String(none.body.error_description), /client certificate/);
    const stolen = await call({ cert: other.certPem, key: other.keyPem });
    assert.equal(stolen.status, 401);
    const notSvid = await call({ cert: tls.certPem, key: tls.keyPem });
    assert.equal(notSvid.status, 401);
    assert.match(String(notSvid.body.error_description), /not a valid X\.509-SVID/);
  });

  it('serves only tool servers on its listener', async () => {
    const dispatcher = new Agent({ connect: { ca: tls.certPem } });
    try {
      const res = await request(`${m.gatewayUrls.mtlsUrl}/admin/v1/entries`, { dispatcher });
      assert.equal(res.statusCode, 404);
      await res.body.dump();
    } finally {
      await dispatcher.close();
    }
  });
});
