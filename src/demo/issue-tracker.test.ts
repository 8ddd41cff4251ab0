/**
 * The demo issue tracker driven by the official MCP SDK Client, over Streamable HTTP (sessions,
 * stateless POSTs, notifications, DNS-rebinding checks, caller verification with tokens signed by a
 * local JWKS) and over stdio (the runnable entry started as a child process).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema, type CallToolResult, type LoggingMessageNotification, type Progress } from '@modelcontextprotocol/sdk/types.js';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { startIssueTracker, type Comment, type IssueTracker } from './issue-tracker.ts';

const STDIO_ENTRY = fileURLToPath(new URL('./issue-tracker-stdio.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PROTOCOL = '2025-11-25';
const INITIALIZE = {
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'raw-test', version: '1.0.0' } },
};

// ---------------------------------------------------------------------------------------------
// helpers

async function connect(transport: StreamableHTTPClientTransport | StdioClientTransport): Promise<Client> {
  const client = new Client({ name: 'issue-tracker-test', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

function httpClient(url: string, headers: Record<string, string> = {}): Promise<Client> {
  return connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
}

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

function textOf(result: CallToolResult): string {
  const first = result.content[0];
  assert.equal(first?.type, 'text');
  return (first as { text: string }).text;
}

/** A POST as a raw Streamable HTTP client makes it. */
function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** The JSON-RPC message of a response: the body itself, or the last `data:` line of an SSE stream. */
async function messageOf(res: Response): Promise<{ result?: Record<string, unknown>; error?: { code: number; message: string } }> {
  const text = await res.text();
  if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) return JSON.parse(text);
  const data = text.split('\n').filter((line) => line.startsWith('data: ')).at(-1);
  assert.ok(data, `an SSE event in ${JSON.stringify(text)}`);
  return JSON.parse(data.slice('data: '.length));
}

/** A raw request with a Host header of our choosing (fetch does not let one set it). */
function withHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { host, 'content-type': 'application/json', accept: 'application/json, text/event-stream' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(JSON.stringify(INITIALIZE));
  });
}

function listenLocal(server: Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

// ---------------------------------------------------------------------------------------------
// the tools, the same over both transports

async function checkToolList(client: Client): Promise<void> {
  const { tools } = await client.listTools();
  const byName = new Map(tools.map((t) => [t.name, t]));
  assert.deepEqual([...byName.keys()].sort(), ['add_comment', 'delete_issue', 'get_issue', 'list_issues']);
  assert.equal(byName.get('list_issues')?.annotations?.readOnlyHint, true);
  assert.equal(byName.get('get_issue')?.annotations?.readOnlyHint, true);
  assert.equal(byName.get('add_comment')?.annotations?.readOnlyHint, false);
  assert.equal(byName.get('add_comment')?.annotations?.destructiveHint, false);
  assert.equal(byName.get('delete_issue')?.annotations?.destructiveHint, true);
  // The argument types the demo's Cedar schema expects: repository String, issue Long, body String.
  const props = (name: string) => byName.get(name)?.inputSchema.properties as Record<string, { type: string }>;
  assert.deepEqual(Object.fromEntries(Object.entries(props('add_comment')).map(([k, v]) => [k, v.type])), { repository: 'string', issue: 'integer', body: 'string' });
  assert.deepEqual(Object.keys(props('list_issues')), ['repository']);
  assert.deepEqual(Object.keys(props('delete_issue')).sort(), ['issue', 'repository']);
  assert.deepEqual(byName.get('get_issue')?.inputSchema.required?.slice().sort(), ['issue', 'repository']);
}

async function checkResourcesAndPrompts(client: Client): Promise<void> {
  const { resources } = await client.listResources();
  assert.deepEqual(resources.map((r) => r.uri), ['issues://acme/api', 'issues://acme/web', 'issues://other/secret-project']);
  const { resourceTemplates } = await client.listResourceTemplates();
  assert.deepEqual(resourceTemplates.map((t) => t.uriTemplate), ['issues://{owner}/{repo}']);
  const read = await client.readResource({ uri: 'issues://acme/api' });
  const content = read.contents[0] as { uri: string; mimeType: string; text: string };
  assert.equal(content.mimeType, 'application/json');
  assert.deepEqual((JSON.parse(content.text) as { issues: Array<{ number: number }> }).issues.map((i) => i.number), [1, 2, 3]);
  await assert.rejects(client.readResource({ uri: 'issues://nobody/nothing' }), /does not exist/);

  const { prompts } = await client.listPrompts();
  assert.deepEqual(prompts.map((p) => [p.name, p.arguments?.map((a) => a.name)]), [['triage', ['repository']], ['purge_closed', ['repository']]]);
  const triage = await client.getPrompt({ name: 'triage', arguments: { repository: 'acme/web' } });
  assert.match((triage.messages[0]?.content as { text: string }).text, /^Triage the open issues of acme\/web/);
}

async function checkReads(client: Client): Promise<void> {
  const listed = await call(client, 'list_issues', { repository: 'acme/api' });
  assert.equal(listed.isError, undefined);
  const issues = (listed.structuredContent as { issues: Array<{ number: number; title: string; comments: number }> }).issues;
  assert.deepEqual(issues.map((i) => i.number), [1, 2, 3]);
  assert.match(textOf(listed), /^acme\/api: 3 issues\n#1 \[open\] Rate limiter/);

  const read = await call(client, 'get_issue', { repository: 'acme/api', issue: 1 });
  const issue = (read.structuredContent as { issue: { title: string; comments: Comment[] } }).issue;
  assert.equal(issue.title, 'Rate limiter drops requests during bursts');
  assert.equal(issue.comments[0]?.author, 'bob');
  assert.match(textOf(read), /acme\/api#1 \[open\]/);
}

async function checkErrors(client: Client): Promise<void> {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['list_issues', { repository: 'acme/nothing' }, /repository "acme\/nothing" does not exist/],
    ['get_issue', { repository: 'acme/api', issue: 999 }, /issue #999 does not exist in acme\/api/],
    ['add_comment', { repository: 'nobody/here', issue: 1, body: 'hello' }, /repository "nobody\/here" does not exist/],
    ['delete_issue', { repository: 'acme/web', issue: 42 }, /issue #42 does not exist/],
    ['get_issue', { repository: 'acme/api', issue: 'one' }, /Input validation error/],
    ['get_issue', { repository: 'acme/api', issue: 1.5 }, /Input validation error/],
    ['add_comment', { repository: 'acme/api', issue: 1, body: '' }, /Input validation error/],
    ['list_issues', { repository: '../../etc' }, /Input validation error/],
    ['close_issue', { repository: 'acme/api', issue: 1 }, /Tool close_issue not found/],
  ];
  for (const [name, args, message] of cases) {
    const result = await call(client, name, args);
    assert.equal(result.isError, true, `${name} ${JSON.stringify(args)} is a tool error`);
    assert.match(textOf(result), message);
  }
}

// ---------------------------------------------------------------------------------------------

describe('the demo issue tracker over Streamable HTTP', { timeout: 30_000 }, () => {
  let tracker: IssueTracker;
  let client: Client;

  before(async () => {
    tracker = await startIssueTracker();
    client = await httpClient(tracker.url);
  });
  after(async () => {
    await client?.close();
    await tracker?.close();
  });

  it('listens on loopback at /mcp', () => {
    assert.match(tracker.url, /^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
  });

  it('lists the four tools with their annotations and argument types', () => checkToolList(client));

  it('reads issues: text and structured content', () => checkReads(client));

  it('offers each repository as a resource, and two prompts', () => checkResourcesAndPrompts(client));

  it('answers unknown repositories, unknown issues, bad arguments and unknown tools with tool errors', () => checkErrors(client));

  it('records a comment that every session and the store then see', async () => {
    const added = await call(client, 'add_comment', { repository: 'acme/web', issue: 1, body: 'Contrast fixed in #7?' });
    const comment = (added.structuredContent as { comment: Comment }).comment;
    assert.equal(comment.body, 'Contrast fixed in #7?');
    assert.equal(comment.author, null, 'no verified caller');
    assert.equal(comment.agent, null);
    assert.match(textOf(added), /^Comment \d+ added to acme\/web#1 by an unverified caller\.$/);

    const other = await httpClient(tracker.url);
    try {
      const read = await call(other, 'get_issue', { repository: 'acme/web', issue: 1 });
      assert.deepEqual((read.structuredContent as { issue: { comments: Comment[] } }).issue.comments.at(-1), comment);
    } finally {
      await other.close();
    }
    assert.deepEqual(tracker.store.get('acme/web', 1).comments.at(-1), comment);
  });

  it('deletes an issue, after which it is unknown', async () => {
    const deleted = await call(client, 'delete_issue', { repository: 'acme/web', issue: 2 });
    assert.deepEqual(deleted.structuredContent, { repository: 'acme/web', issue: 2, deleted: true });
    const again = await call(client, 'get_issue', { repository: 'acme/web', issue: 2 });
    assert.equal(again.isError, true);
    assert.deepEqual(tracker.store.list('acme/web').map((i) => i.number), [1]);
  });

  it('streams progress and log notifications on the call, and respects logging/setLevel', async () => {
    const logs: LoggingMessageNotification['params'][] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
      logs.push(n.params);
    });
    const progress: Progress[] = [];
    await client.callTool({ name: 'add_comment', arguments: { repository: 'acme/api', issue: 2, body: 'On it.' } }, undefined, { onprogress: (p) => progress.push(p) });
    assert.deepEqual(progress, [{ progress: 1, total: 1, message: 'commented on acme/api#2' }]);
    assert.equal(logs.length, 1);
    assert.equal(logs[0]?.level, 'info');
    assert.deepEqual({ ...(logs[0]?.data as object), comment: 0 }, { event: 'comment.added', repository: 'acme/api', issue: 2, comment: 0 });

    await client.setLoggingLevel('warning');
    await call(client, 'add_comment', { repository: 'acme/api', issue: 2, body: 'Quietly.' });
    assert.equal(logs.length, 1, 'info is below the level the client set');
  });

  it('sessions: initialize returns Mcp-Session-Id, requests in it work, DELETE ends it', async () => {
    const init = await post(tracker.url, INITIALIZE);
    assert.equal(init.status, 200);
    const sessionId = init.headers.get('mcp-session-id');
    assert.match(sessionId ?? '', /^[0-9a-f-]{36}$/);
    assert.equal((await messageOf(init)).result?.protocolVersion, PROTOCOL);
    const inSession = { 'mcp-session-id': sessionId as string, 'mcp-protocol-version': PROTOCOL };

    const initialized = await post(tracker.url, { jsonrpc: '2.0', method: 'notifications/initialized' }, inSession);
    assert.equal(initialized.status, 202, 'a client notification is accepted');
    const listed = await messageOf(await post(tracker.url, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, inSession));
    assert.equal((listed.result?.tools as unknown[]).length, 4);

    const stream = new AbortController();
    const get = await fetch(tracker.url, { headers: { accept: 'text/event-stream', ...inSession }, signal: stream.signal });
    assert.equal(get.status, 200, 'the standalone SSE stream opens');
    assert.match(get.headers.get('content-type') ?? '', /^text\/event-stream/);
    stream.abort();

    const ended = await fetch(tracker.url, { method: 'DELETE', headers: inSession });
    assert.equal(ended.status, 200);
    const after = await post(tracker.url, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, inSession);
    assert.equal(after.status, 404);
    assert.equal((await messageOf(after)).error?.code, -32001);
  });

  it('the SDK client ends its session with DELETE', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(tracker.url));
    const own = await connect(transport);
    const sessionId = transport.sessionId as string;
    assert.ok(sessionId);
    await transport.terminateSession();
    await own.close();
    const res = await post(tracker.url, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { 'mcp-session-id': sessionId });
    assert.equal(res.status, 404);
  });

  it('answers unknown sessions with 404 and GET or DELETE without a session with 400', async () => {
    const unknown = await post(tracker.url, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { 'mcp-session-id': randomUUID() });
    assert.equal(unknown.status, 404);
    assert.equal((await fetch(tracker.url, { headers: { accept: 'text/event-stream' } })).status, 400);
    assert.equal((await fetch(tracker.url, { method: 'DELETE' })).status, 400);
  });

  it('bounds the number of open sessions', async () => {
    const small = await startIssueTracker({ maxSessions: 1 });
    try {
      const first = (await post(small.url, INITIALIZE)).headers.get('mcp-session-id') as string;
      assert.ok(first);
      const refused = await post(small.url, INITIALIZE);
      assert.equal(refused.status, 503);
      assert.equal((await fetch(small.url, { method: 'DELETE', headers: { 'mcp-session-id': first } })).status, 200);
      assert.equal((await post(small.url, INITIALIZE)).status, 200, 'a closed session frees its place');
    } finally {
      await small.close();
    }
  });

  it('serves a single POST without a session statelessly', async () => {
    const res = await post(tracker.url, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'list_issues', arguments: { repository: 'acme/api' } } }, { 'mcp-protocol-version': PROTOCOL });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('mcp-session-id'), null, 'no session is minted');
    const message = await messageOf(res);
    assert.equal((message.result?.structuredContent as { repository: string }).repository, 'acme/api');
  });

  it('refuses foreign origins and host names (DNS rebinding)', async () => {
    const foreign = await post(tracker.url, INITIALIZE, { origin: 'http://evil.example' });
    assert.equal(foreign.status, 403);
    assert.equal((await messageOf(foreign)).error?.code, -32000);
    assert.equal((await post(tracker.url, INITIALIZE, { origin: 'null' })).status, 403);
    const port = new URL(tracker.url).port;
    assert.equal((await post(tracker.url, INITIALIZE, { origin: `http://localhost:${port}` })).status, 200, 'its own origin is fine');
    assert.equal(await withHost(tracker.url, `evil.example:${port}`), 403);
    assert.equal(await withHost(tracker.url, `evil.example@127.0.0.1:${port}`), 403);
    assert.equal(await withHost(tracker.url, `localhost:${port}`), 200);
  });

  it('refuses other paths, other methods, oversized and malformed bodies', async () => {
    const base = new URL(tracker.url);
    assert.equal((await post(`${base.origin}/admin`, INITIALIZE)).status, 404);
    assert.equal((await post(`${base.origin}/mcp/../admin`, INITIALIZE)).status, 404);
    assert.equal((await fetch(tracker.url, { method: 'PUT', body: '{}' })).status, 405);
    const tooLarge = await post(tracker.url, { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { pad: 'x'.repeat(1024 * 1024) } });
    assert.equal(tooLarge.status, 413);
    const broken = await post(tracker.url, '{"jsonrpc":"2.0",');
    assert.equal(broken.status, 400);
    assert.equal((await messageOf(broken)).error?.code, -32700);
    const wrongType = await post(tracker.url, INITIALIZE, { 'content-type': 'text/plain' });
    assert.equal(wrongType.status, 415);
  });
});

// ---------------------------------------------------------------------------------------------

describe('the demo issue tracker verifying its callers', { timeout: 30_000 }, () => {
  const ISSUER = 'http://127.0.0.1:8420';
  const AUDIENCE = 'http://127.0.0.1:8420/mcp/issues-upstream';
  const AGENT = 'spiffe://example.org/agent/triage-bot';
  const PARENT = 'spiffe://example.org/agent/planner';
  const KID = 'k1';
  let authority: { privateKey: CryptoKey; publicKey: CryptoKey };
  let stranger: { privateKey: CryptoKey; publicKey: CryptoKey };
  let jwks: Server;
  let tracker: IssueTracker;

  /** An access token as the delegation authority mints it; `claims` and `header` override the defaults. */
  function accessToken(claims: JWTPayload = {}, header: Record<string, unknown> = {}, key = authority.privateKey): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({
      iss: ISSUER, sub: 'alice', aud: AUDIENCE, iat: now, exp: now + 300, jti: randomUUID(), principal_iss: ISSUER, client_id: AGENT,
      scope: 'issues:read issues:comment', mandate: 'mdt_1', act: { sub: AGENT, act: { sub: PARENT } }, ...claims,
    }).setProtectedHeader({ alg: 'ES256', kid: KID, typ: 'at+jwt', ...header }).sign(key);
  }

  function txnToken(claims: JWTPayload = {}, key = authority.privateKey): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: ISSUER, sub: 'alice', aud: 'example.org', txn: 'txn-42', iat: now, exp: now + 60, scope: 'issues:comment', ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: KID, typ: 'txntoken+jwt' }).sign(key);
  }

  before(async () => {
    authority = await generateKeyPair('ES256');
    stranger = await generateKeyPair('ES256');
    const published = { keys: [{ ...(await exportJWK(authority.publicKey)), kid: KID, alg: 'ES256', use: 'sig' }] };
    jwks = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(published));
    });
    const jwksBase = await listenLocal(jwks);
    tracker = await startIssueTracker({ verifyCaller: { issuer: ISSUER, jwksUrl: `${jwksBase}/jwks`, audience: AUDIENCE } });
  });
  after(async () => {
    await tracker?.close();
    jwks?.closeAllConnections();
    await new Promise((resolve) => jwks?.close(resolve));
  });

  it('accepts the authority\'s token and records the principal, the current agent and the transaction', async () => {
    const client = await httpClient(tracker.url, { authorization: `Bearer ${await accessToken()}`, 'txn-token': await txnToken() });
    try {
      await checkToolList(client);
      const added = await call(client, 'add_comment', { repository: 'acme/api', issue: 1, body: 'Looking into it.' });
      const comment = (added.structuredContent as { comment: Comment }).comment;
      assert.equal(comment.author, 'alice');
      assert.equal(comment.agent, AGENT, 'the outermost act.sub');
      assert.equal(comment.transaction, 'txn-42');
      assert.match(textOf(added), new RegExp(`by alice via ${AGENT.replace(/[/.]/g, '\\$&')}\\.$`));
    } finally {
      await client.close();
    }
  });

  it('refuses a request without a token with 401 and a Bearer challenge', async () => {
    const res = await post(tracker.url, INITIALIZE);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.equal(((await res.json()) as { error: string }).error, 'invalid_token');
    await assert.rejects(httpClient(tracker.url), /401|Unauthorized|invalid_token/i, 'the SDK client cannot connect either');
  });

  const refused: Array<[string, () => Promise<string>, RegExp]> = [
    ['forged (signed by another key under the published kid)', () => accessToken({}, {}, stranger.privateKey), /signature does not verify/],
    ['for another audience', () => accessToken({ aud: 'http://127.0.0.1:8420/mcp/other' }), /is for http:\/\/127\.0\.0\.1:8420\/mcp\/other, not for this resource/],
    ['from another issuer', () => accessToken({ iss: 'http://127.0.0.1:9999' }), /claim iss/],
    ['of another type (an ID token)', () => accessToken({}, { typ: 'JWT' }), /typ/],
    ['expired', () => accessToken({ iat: 1_000, exp: 2_000 }), /expired/],
    ['unsigned', async () => `${(await accessToken()).split('.').slice(0, 2).join('.')}.`, /unsigned/],
  ];
  for (const [name, make, reason] of refused) {
    it(`refuses a token that is ${name}`, async () => {
      const res = await post(tracker.url, INITIALIZE, { authorization: `Bearer ${await make()}` });
      assert.equal(res.status, 401);
      assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
      assert.match(((await res.json()) as { error_description: string }).error_description, reason);
    });
  }

  it('refuses a Txn-Token it cannot verify', async () => {
    const authorization = `Bearer ${await accessToken()}`;
    for (const txn of [await txnToken({}, stranger.privateKey), 'not-a-jwt', await accessToken()]) {
      const res = await post(tracker.url, INITIALIZE, { authorization, 'txn-token': txn });
      assert.equal(res.status, 400);
      assert.match(((await res.json()) as { error_description: string }).error_description, /^the Txn-Token is not valid/);
    }
  });

  it('keeps a session to the principal and agent that opened it', async () => {
    const alice = `Bearer ${await accessToken()}`;
    const init = await post(tracker.url, INITIALIZE, { authorization: alice });
    const sessionId = init.headers.get('mcp-session-id') as string;
    assert.ok(sessionId);
    const list = { jsonrpc: '2.0', id: 2, method: 'tools/list' };
    const inSession = { 'mcp-session-id': sessionId, 'mcp-protocol-version': PROTOCOL };
    const bob = await post(tracker.url, list, { ...inSession, authorization: `Bearer ${await accessToken({ sub: 'bob' })}` });
    assert.equal(bob.status, 404, 'another principal cannot use it');
    const otherAgent = await post(tracker.url, list, { ...inSession, authorization: `Bearer ${await accessToken({ act: { sub: PARENT } })}` });
    assert.equal(otherAgent.status, 404, 'another agent cannot use it');
    const again = await post(tracker.url, list, { ...inSession, authorization: `Bearer ${await accessToken()}` });
    assert.equal(again.status, 200, 'the same caller with a fresh token can');
  });
});

// ---------------------------------------------------------------------------------------------

describe('the demo issue tracker over stdio', { timeout: 60_000 }, () => {
  let transport: StdioClientTransport;
  let client: Client;

  before(async () => {
    transport = new StdioClientTransport({ command: process.execPath, args: ['--import', 'tsx', STDIO_ENTRY], cwd: REPO_ROOT, stderr: 'pipe' });
    client = await connect(transport);
  });
  after(async () => {
    await client?.close();
  });

  it('lists the four tools with their annotations and argument types', () => checkToolList(client));

  it('reads issues', () => checkReads(client));

  it('offers each repository as a resource, and two prompts', () => checkResourcesAndPrompts(client));

  it('answers errors as tool errors', () => checkErrors(client));

  // Log messages rather than progress: the SDK client drops a progress notification that reaches it
  // in the same stdout chunk as the result (it is handled a microtask after the result ends the call).
  it('comments (without a verified caller) and deletes, with log notifications', async () => {
    const logs: LoggingMessageNotification['params'][] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
      logs.push(n.params);
    });
    const added = await call(client, 'add_comment', { repository: 'acme/api', issue: 3, body: 'Reopen?' });
    assert.equal((added.structuredContent as { comment: Comment }).comment.author, null);
    assert.deepEqual(logs.map((l) => (l.data as { event: string }).event), ['comment.added']);
    const read = await call(client, 'get_issue', { repository: 'acme/api', issue: 3 });
    assert.equal((read.structuredContent as { issue: { comments: Comment[] } }).issue.comments.at(-1)?.body, 'Reopen?');
    const deleted = await call(client, 'delete_issue', { repository: 'other/secret-project', issue: 1 });
    assert.equal(deleted.isError, undefined);
    assert.deepEqual(logs.at(-1), { level: 'warning', logger: 'issues', data: { event: 'issue.deleted', repository: 'other/secret-project', issue: 1 } });
    assert.deepEqual((await call(client, 'list_issues', { repository: 'other/secret-project' })).structuredContent, { repository: 'other/secret-project', issues: [] });
  });

  it('exits when the client closes', async () => {
    const other = new StdioClientTransport({ command: process.execPath, args: ['--import', 'tsx', STDIO_ENTRY], cwd: REPO_ROOT, stderr: 'pipe' });
    const own = await connect(other);
    const pid = other.pid as number;
    assert.ok(pid > 0);
    await own.close();
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 100 && alive(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(alive(), false);
  });
});
