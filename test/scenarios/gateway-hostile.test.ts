/**
 * Scenario: the gateway under bad input and bad upstreams. Malformed, oversized and deeply nested
 * JSON-RPC, unknown methods, header mismatches, conflicting Content-Length and Transfer-Encoding,
 * path traversal, slow request bodies, an upstream that is down, slow or never finishes: each gets a
 * clear error within the configured limits, and nothing of the agent's credentials, nor any
 * forwarding or certificate header, reaches the upstream. The upstream here records what it gets.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { DpopSigner } from '../../src/sdk/agent/dpop.ts';
import { JSONRPC_ERROR } from '../../src/gateway/mcp/jsonrpc.ts';
import { dpopTokenForAlice, enrolAgent, GRANT_TOKEN_EXCHANGE, PUBLIC_CLIENT } from '../support/delegation.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const AGENT = 'spiffe://example.org/agent/triage-bot';
const RESOURCE = 'https://tools.example/mcp/issues';
const POLICIES = `${process.cwd()}/config/policies`;

/** What the recording upstream answers, by method (anything else gets the tools). */
const LISTS: Record<string, unknown> = {
  'tools/list': { tools: [{ name: 'list_issues', annotations: { readOnlyHint: true } }, { name: 'delete_issue' }] },
  'prompts/list': { prompts: [{ name: 'triage' }, { name: 'purge_closed' }] },
  'resources/list': { resources: [{ uri: 'issues://acme/api', name: 'acme/api' }, { uri: 'issues://other/secret-project', name: 'other/secret-project' }] },
};

/** An upstream that records each request and answers as told by the test. */
class RecordingUpstream {
  server!: Server;
  port = 0;
  seen: Array<{ method?: string; headers: IncomingMessage['headers']; body: string }> = [];
  mode: 'ok' | 'slow' | 'hang-body' = 'ok';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => {
        this.seen.push({ method: req.method, headers: req.headers, body });
        if (this.mode === 'slow') return; // never answers: the gateway's upstream timeout must fire
        if (this.mode === 'hang-body') {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write('event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"working"}}\n\n');
          return; // the stream stays open
        }
        const parsed = JSON.parse(body) as { id?: number; method?: string } | Array<{ id?: number; method?: string }>;
        const answer = (msg: { id?: number; method?: string }) => ({ jsonrpc: '2.0', id: msg.id ?? null, result: LISTS[msg.method ?? ''] ?? LISTS['tools/list'] });
        res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'upstream-session-1' });
        res.end(JSON.stringify(Array.isArray(parsed) ? parsed.map(answer) : answer(parsed)));
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

function yaml(port: number): string {
  return [
    'trust_domain: example.org',
    'delegation:',
    '  scopes: { "issues:read": Read issues, "issues:comment": Comment }',
    `  resources: [{ uri: "${RESOURCE}", name: Issue tracker }]`,
    `  clients: [{ client_id: ${PUBLIC_CLIENT}, auth_method: none, grant_types: ["${GRANT_TOKEN_EXCHANGE}"] }]`,
    `policy: { dir: "${POLICIES}", watch: false }`,
    'gateway:',
    '  limits: { max_body_bytes: 4096, max_batch: 4, max_depth: 16, upstream_timeout: 1s }',
    '  rate_limits: { tool: { rate: 0.1, burst: 2 } }',
    '  tool_servers:',
    `    - { name: issues, path: /mcp/issues, type: mcp, url: "http://127.0.0.1:${port}/mcp", resource: "${RESOURCE}" }`,
    '',
  ].join('\n');
}

describe('the gateway under hostile input', { timeout: 60_000 }, () => {
  const upstream = new RecordingUpstream();
  let m: TestMandate;
  let signer: DpopSigner;
  let token: string;

  /** POSTs to the MCP endpoint with the agent's token and a fresh DPoP proof. */
  const post = async (body: string, headers: Record<string, string> = {}) => {
    const url = `${m.url}/mcp/issues`;
    const res = await fetch(url, {
      method: 'POST', body,
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `DPoP ${token}`, dpop: await signer.proof('POST', url, { accessToken: token }), ...headers },
    });
    const text = await res.text();
    let json: any;
    try { json = JSON.parse(text); } catch { json = text; }
    return { status: res.status, body: json, headers: res.headers };
  };
  const rpc = (method: string, params?: unknown, id: number | string = 1) => JSON.stringify({ jsonrpc: '2.0', id, method, ...(params !== undefined && { params }) });

  before(async () => {
    await upstream.start();
    m = await startTestMandate({ yaml: yaml(upstream.port) });
    ({ signer, token } = await dpopTokenForAlice(m, await enrolAgent(m, AGENT), { resource: RESOURCE, scopes: ['issues:read', 'issues:comment'] }));
  });
  after(async () => {
    await m?.close();
    await upstream.close();
  });

  it('forwards an allowed list with none of the agent\'s credentials or forwarding headers', async () => {
    upstream.seen = [];
    const res = await post(rpc('tools/list'), {
      cookie: 'session=abc', 'x-forwarded-for': '10.0.0.1', forwarded: 'for=10.0.0.1', 'x-forwarded-client-cert': 'By=spiffe://evil', 'x-client-cert': 'MIIB...', 'proxy-authorization': 'Basic eA==',
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.result.tools.map((t: any) => t.name), ['list_issues'], 'delete_issue is filtered out');
    const seen = upstream.seen[0];
    assert.ok(seen);
    for (const h of ['authorization', 'dpop', 'cookie', 'x-forwarded-for', 'forwarded', 'x-forwarded-client-cert', 'x-client-cert', 'proxy-authorization']) {
      assert.equal(seen.headers[h], undefined, `${h} must not reach the upstream`);
    }
    assert.ok(!JSON.stringify(seen).includes(token), 'the agent\'s token never leaves the gateway');
    assert.match(String(seen.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/, 'trace context goes upstream');
  });

  it('answers malformed, oversized, deep and invalid JSON-RPC with JSON-RPC errors, without calling upstream', async () => {
    upstream.seen = [];
    const cases: Array<[string, string, number, number]> = [
      ['not json', '{"jsonrpc":', 400, JSONRPC_ERROR.PARSE_ERROR],
      ['empty batch', '[]', 400, JSONRPC_ERROR.INVALID_REQUEST],
      ['too deep', `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":${'['.repeat(40)}${']'.repeat(40)}}`, 400, JSONRPC_ERROR.INVALID_REQUEST],
      ['batch too big', `[${Array.from({ length: 5 }, (_, i) => rpc('ping', undefined, i)).join(',')}]`, 400, JSONRPC_ERROR.INVALID_REQUEST],
      ['oversized', rpc('tools/call', { name: 'list_issues', arguments: { repository: 'x'.repeat(5000) } }), 413, JSONRPC_ERROR.INVALID_REQUEST],
    ];
    for (const [what, body, status, code] of cases) {
      const res = await post(body);
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
      if (status !== 413) assert.equal(res.body.error?.code, code, what);
    }
    const notJson = await post(rpc('ping'), { 'content-type': 'text/plain' });
    assert.equal(notJson.status, 415);
    assert.equal(notJson.body.error, 'ERR_UNSUPPORTED_MEDIA_TYPE');
    const invalid = await post(JSON.stringify({ jsonrpc: '1.0', id: 1, method: 'ping' }));
    assert.equal(invalid.body.error?.code, JSONRPC_ERROR.INVALID_REQUEST);
    const unknown = await post(rpc('sampling/createMessage', {}));
    assert.equal(unknown.body.error?.code, JSONRPC_ERROR.METHOD_NOT_FOUND);
    const badParams = await post(rpc('tools/call', { arguments: {} }));
    assert.equal(badParams.body.error?.code, JSONRPC_ERROR.INVALID_PARAMS);
    assert.equal(upstream.seen.length, 0, 'nothing reached the upstream');
  });

  it('decides each message of a batch on its own', async () => {
    upstream.seen = [];
    const res = await post(`[${rpc('tools/call', { name: 'delete_issue', arguments: { repository: 'acme/api', issue: 1 } }, 1)},${rpc('tools/list', undefined, 2)}]`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.ok(Array.isArray(res.body));
    const byId = new Map(res.body.map((r: any) => [r.id, r]));
    assert.equal((byId.get(1) as any).error.code, JSONRPC_ERROR.POLICY_DENIED);
    assert.ok((byId.get(2) as any).result, 'the allowed message was answered by the upstream');
    assert.deepEqual(JSON.parse(upstream.seen[0]?.body ?? '[]').map((msg: any) => msg.method), ['tools/list'], 'only the allowed message went upstream');
  });

  it('filters each list of a batch by its own method', async () => {
    const res = await post(`[${rpc('resources/list', undefined, 'r')},${rpc('tools/list', undefined, 't')},${rpc('prompts/list', undefined, 'p')}]`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const byId = new Map(res.body.map((r: any) => [r.id, r.result]));
    assert.deepEqual((byId.get('t') as any).tools.map((t: any) => t.name), ['list_issues']);
    assert.deepEqual((byId.get('p') as any).prompts.map((p: any) => p.name), ['triage']);
    assert.deepEqual((byId.get('r') as any).resources.map((r: any) => r.uri), ['issues://acme/api']);
  });

  it('passes a 2026-07-28 request with its metadata headers, which must match the body', async () => {
    upstream.seen = [];
    const body = JSON.stringify({
      jsonrpc: '2.0', id: 7, method: 'tools/call',
      params: { name: 'list_issues', arguments: { repository: 'acme/api' }, _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } },
    });
    const headers = { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call' };
    const res = await post(body, { ...headers, 'mcp-name': 'list_issues' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const seen = upstream.seen[0];
    assert.equal(seen?.headers['mcp-protocol-version'], '2026-07-28', JSON.stringify([res.body, upstream.seen]));
    assert.equal(seen?.headers['mcp-method'], 'tools/call');
    assert.equal(seen?.headers['mcp-name'], 'list_issues');
    const missing = await post(body, headers);
    assert.equal(missing.status, 400, 'Mcp-Name is required from 2026-07-28 on');
    assert.equal(missing.body.error.code, JSONRPC_ERROR.HEADER_MISMATCH);
  });

  it('limits calls per tool and principal: 429 with Retry-After once the bucket is empty, on the record', async () => {
    const call = () => post(rpc('tools/call', { name: 'list_issues', arguments: { repository: 'acme/api' } }));
    // The bucket holds 2 and the 2026-07-28 test above took one.
    assert.equal((await call()).status, 200);
    const limited = await call();
    assert.equal(limited.status, 429, JSON.stringify(limited.body));
    assert.equal(limited.body.error.code, JSONRPC_ERROR.RATE_LIMITED);
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    const events = (await m.admin('GET', '/admin/v1/audit/events?type=gateway.decision&limit=1000')).body.events;
    assert.match(events.at(-1).event.decision.reasons[0], /rate limit per tool/);
  });

  it('refuses a Mcp-Method header that does not match the body', async () => {
    const res = await post(rpc('tools/list'), { 'mcp-method': 'tools/call' });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, JSONRPC_ERROR.HEADER_MISMATCH);
  });

  it('refuses another origin (DNS rebinding), other methods and traversal out of the tool server\'s path', async () => {
    assert.equal((await post(rpc('ping'), { origin: 'https://evil.example' })).status, 403);
    assert.equal((await fetch(`${m.url}/mcp/issues`, { method: 'PUT' })).status, 405);
    for (const path of ['/mcp/issues/../../admin/v1/entries', '/mcp/issues/%2e%2e/admin', '/mcp//issues']) {
      const res = await rawRequest(m.url, `GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
      assert.match(res, /^HTTP\/1\.1 (400|404)/, path);
    }
  });

  it('refuses conflicting Content-Length and Transfer-Encoding and a request whose body never ends', async () => {
    const smuggle = await rawRequest(m.url, `POST /mcp/issues HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n`);
    assert.match(smuggle, /^HTTP\/1\.1 400/);
    const url = `${m.url}/mcp/issues`;
    const proof = await signer.proof('POST', url, { accessToken: token });
    const slow = await rawRequest(m.url, `POST /mcp/issues HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: DPoP ${token}\r\ndpop: ${proof}\r\ncontent-length: 100\r\n\r\n{"jsonrpc"`, 8000);
    // The server's request timeout ends it (408 or a closed connection); the process stays up.
    assert.ok(slow === '' || /^HTTP\/1\.1 (408|400)/.test(slow), slow.slice(0, 80));
    assert.equal((await m.call('GET', '/healthz')).status, 200);
  });

  it('answers an upstream that is slow with 504 and one that is down with 502, leaking nothing of it', async () => {
    upstream.mode = 'slow';
    const slow = await post(rpc('tools/list'));
    assert.equal(slow.status, 504, JSON.stringify(slow.body));
    assert.equal(slow.body.error, 'ERR_UPSTREAM_TIMEOUT');
    upstream.mode = 'ok';
    await upstream.close();
    const down = await post(rpc('tools/list'));
    assert.equal(down.status, 502, JSON.stringify(down.body));
    assert.equal(down.body.error, 'ERR_UPSTREAM');
    assert.ok(!JSON.stringify(down.body).includes(String(upstream.port)), 'no upstream address in the answer');
    await upstream.start();
  });
});

/** Sends raw bytes and returns what came back (empty if the server closed without answering). */
function rawRequest(base: string, text: string, waitMs = 3000): Promise<string> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname, () => socket.write(text));
    let got = '';
    socket.on('data', (d) => { got += d.toString(); });
    const done = () => resolve(got);
    socket.on('close', done);
    socket.on('error', done);
    setTimeout(() => { socket.destroy(); done(); }, waitMs).unref();
  });
}
