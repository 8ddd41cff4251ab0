/**
 * Scenario: the gateway in front of a real MCP server. An agent (its SVID from `mandate agent` over
 * the Workload API) exchanges a mandate for a DPoP-bound OBO token and uses the official MCP SDK
 * client, through the agent SDK's mandateFetch, against the gateway — which verifies the token,
 * decides every message with the demo policies (config/policies), mints the upstream's own token,
 * and records each decision in the audit log before answering. The upstream (the demo issue
 * tracker) accepts only tokens of ours for its own audience, so it proves the gateway never
 * forwards the agent's.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { startIssueTracker } from '../../src/demo/issue-tracker.ts';
import { JSONRPC_ERROR } from '../../src/gateway/mcp/jsonrpc.ts';
import { startWorkloadAgent, type WorkloadAgent } from '../../src/identity/workload-agent/agent.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { MandateAgent, mandateFetch, SUBJECT_TOKEN_TYPES, workloadApiSource, type Grant, type SvidSource } from '../../src/sdk/agent/index.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const AGENT = 'spiffe://example.org/agent/triage-bot';
const RESOURCE = 'https://tools.example/mcp/issues';
const POLICIES = join(process.cwd(), 'config/policies');

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

function gatewayYaml(upstream: { port: number } | 'stdio'): string {
  const server = upstream === 'stdio'
    ? ['      type: mcp_stdio', `      command: ["${process.execPath}", "--import", "tsx", "${join(process.cwd(), 'src/demo/issue-tracker-stdio.ts')}"]`, '      credential: { type: none }']
    : ['      type: mcp', `      url: http://127.0.0.1:${upstream.port}/mcp`, '      credential: { type: obo_token }'];
  return [
    'trust_domain: example.org',
    'delegation:',
    '  scopes:',
    '    "issues:read": Read issues',
    '    "issues:comment": Comment on issues',
    '    "issues:delete": Delete issues',
    '  resources:',
    `    - { uri: "${RESOURCE}", name: Issue tracker }`,
    `policy: { dir: "${POLICIES}", watch: false }`,
    'gateway:',
    '  tool_servers:',
    '    - name: issues',
    '      path: /mcp/issues',
    ...server,
    `      resource: "${RESOURCE}"`,
    '      tool_scopes: { delete_issue: ["issues:delete"] }',
    '',
  ].join('\n');
}

for (const kind of ['streamable-http', 'stdio'] as const) describe(`the gateway in front of an MCP server (${kind})`, { timeout: 90_000 }, () => {
  let m: TestMandate;
  let tracker: { url: string; close(): Promise<void> } | undefined;
  let workloadAgent: WorkloadAgent;
  let svids: SvidSource;
  let agent: MandateAgent;
  let grant: Grant;
  let mandateId: string;
  let client: Client;
  const socketPath = join(mkdtempSync(join(tmpdir(), 'mandate-gw-')), 'agent.sock');

  const gatewayEvents = async () => (await m.admin('GET', '/admin/v1/audit/events?type=gateway.decision&limit=1000')).body.events.map((e: { event: any }) => e.event);
  const connect = async (scopes?: string) => {
    const c = new Client({ name: 'triage-bot', version: '1.0.0' });
    const fetch = mandateFetch(agent, RESOURCE, scopes ? { ...grant, scope: scopes.split(' ') } : grant);
    await c.connect(new StreamableHTTPClientTransport(new URL(`${m.url}/mcp/issues`), { fetch }));
    return c;
  };

  before(async () => {
    if (kind === 'stdio') {
      m = await startTestMandate({ yaml: gatewayYaml('stdio') });
    } else {
      const port = await freePort();
      m = await startTestMandate({ yaml: gatewayYaml({ port }) });
      // The tracker accepts only tokens of ours for its own audience: the agent's would be refused.
      tracker = await startIssueTracker({ port, verifyCaller: { issuer: m.issuer, jwksUrl: `${m.issuer}/oauth/jwks`, audience: `http://127.0.0.1:${port}` } });
    }
    await m.admin('POST', '/admin/v1/entries', { id: 'bot', spiffe_id: AGENT });
    const { token } = (await m.admin('POST', '/admin/v1/join-tokens', { entry_id: 'bot' })).body;
    workloadAgent = await startWorkloadAgent({ serverUrl: m.url, attestation: { type: 'join_token', token }, socketPath, logger: silentLogger() });
    await m.admin('POST', '/admin/v1/users', { username: 'alice', display_name: 'Alice', password: 'correct horse battery staple' });
    const mandate = await m.admin('POST', '/admin/v1/mandates', { username: 'alice', agent: AGENT, scopes: ['issues:read', 'issues:comment', 'issues:delete'], resources: [RESOURCE] });
    assert.equal(mandate.status, 201, JSON.stringify(mandate.body));
    mandateId = mandate.body.id;
    grant = { subjectToken: mandateId, subjectTokenType: SUBJECT_TOKEN_TYPES.mandate };
    svids = workloadApiSource(socketPath);
    agent = new MandateAgent({ issuer: m.issuer, svids });
    client = await connect();
  });
  after(async () => {
    await client?.close();
    await svids?.close?.();
    await workloadAgent?.stop();
    await m?.close();
    await tracker?.close();
  });

  it('serves protected-resource metadata and challenges a call without a token', async () => {
    const md = await m.call('GET', '/.well-known/oauth-protected-resource/mcp/issues');
    assert.equal(md.status, 200);
    assert.equal(md.body.resource, RESOURCE);
    assert.deepEqual(md.body.authorization_servers, [m.issuer]);
    const res = await m.call('POST', '/mcp/issues', { body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' } });
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /resource_metadata="https:\/\/tools\.example\/\.well-known\/oauth-protected-resource\/mcp\/issues"/);
  });

  it('lists only the tools policy may allow: delete_issue is forbidden to this agent', async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['add_comment', 'get_issue', 'list_issues']);
  });

  it('lists only the prompts and resources policy may allow, and decides each read and get', async () => {
    const { prompts } = await client.listPrompts();
    assert.deepEqual(prompts.map((p) => p.name), ['triage'], 'purge_closed: no policy lets this agent get it');
    const { resources } = await client.listResources();
    assert.deepEqual(resources.map((r) => r.uri).sort(), ['issues://acme/api', 'issues://acme/web'], 'other/secret-project is not for this agent');
    const { resourceTemplates } = await client.listResourceTemplates();
    assert.deepEqual(resourceTemplates.map((t) => t.uriTemplate), ['issues://{owner}/{repo}'], 'some resources may be read: the template stays');

    const read = await client.readResource({ uri: 'issues://acme/api' });
    assert.match(JSON.stringify(read.contents), /acme\/api/);
    const prompt = await client.getPrompt({ name: 'triage', arguments: { repository: 'acme/api' } });
    assert.match(JSON.stringify(prompt.messages), /Triage the open issues of acme\/api/);
    // One after the other: each is on the record in this order.
    for (const refused of [() => client.readResource({ uri: 'issues://other/secret-project' }), () => client.getPrompt({ name: 'purge_closed', arguments: { repository: 'acme/api' } })]) {
      await assert.rejects(refused(), (err: unknown) => err instanceof McpError && err.code === JSONRPC_ERROR.POLICY_DENIED);
    }
    // Without issues:read no resource may be read and the triage prompt is out of reach: all hidden.
    const commenter = await connect('issues:comment');
    try {
      assert.deepEqual((await commenter.listResources()).resources, []);
      assert.deepEqual((await commenter.listResourceTemplates()).resourceTemplates, []);
      assert.deepEqual((await commenter.listPrompts()).prompts, []);
    } finally {
      await commenter.close();
    }
    const events = (await gatewayEvents()).filter((e: any) => e.action === 'resources/read' || e.action === 'prompts/get').slice(-4);
    assert.deepEqual(events.map((e: any) => [e.action, e.tool, e.decision.decision]), [
      ['resources/read', 'issues://acme/api', 'allow'], ['prompts/get', 'triage', 'allow'],
      ['resources/read', 'issues://other/secret-project', 'deny'], ['prompts/get', 'purge_closed', 'deny'],
    ]);
  });

  it('forwards an allowed call with the upstream\'s own credential and records it', async () => {
    const result = await client.callTool({ name: 'list_issues', arguments: { repository: 'acme/api' } });
    assert.equal(result.isError, undefined);
    const events = await gatewayEvents();
    const last = events.at(-1);
    assert.equal(last.tool, 'list_issues');
    assert.equal(last.decision.decision, 'allow');
    assert.deepEqual(last.decision.policies, ['demo-read']);
    assert.equal(last.outcome, 'success');
    assert.equal(last.agent, AGENT);
    assert.equal(last.mandateId, mandateId);
    assert.equal(last.result.status, 200);
    assert.equal(typeof last.argumentsDigest, 'string');
  });

  it('streams the upstream\'s progress notifications of a call back to the agent (SSE)', async () => {
    const progress: unknown[] = [];
    const result = await client.callTool({ name: 'get_issue', arguments: { repository: 'acme/api', issue: 1 } }, undefined, { onprogress: (p) => progress.push(p) });
    assert.equal(result.isError, undefined);
    assert.ok(progress.length >= 1, 'a progress notification arrived before the result');
  });

  it('gives each agent the progress of its own call, when their progress tokens are the same', async () => {
    const [one, two] = [await connect(), await connect()];
    try {
      // Two fresh clients number their requests alike, so their progress tokens are equal.
      const heard: Array<Array<{ message?: string }>> = [[], []];
      await Promise.all([
        one.callTool({ name: 'list_issues', arguments: { repository: 'acme/api' } }, undefined, { onprogress: (p) => heard[0]?.push(p) }),
        two.callTool({ name: 'get_issue', arguments: { repository: 'acme/web', issue: 1 } }, undefined, { onprogress: (p) => heard[1]?.push(p) }),
      ]);
      assert.deepEqual(heard.map((h) => h.map((p) => p.message)), [['listed 3 issues of acme/api'], ['read acme/web#1']]);
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });

  it('denies a forbidden tool and an allowed tool with forbidden arguments, with JSON-RPC errors, on the record', async () => {
    await assert.rejects(client.callTool({ name: 'delete_issue', arguments: { repository: 'acme/api', issue: 1 } }), (err: unknown) => {
      assert.ok(err instanceof McpError);
      assert.equal(err.code, JSONRPC_ERROR.POLICY_DENIED);
      assert.match(err.message, /never deletes issues/);
      return true;
    });
    await assert.rejects(client.callTool({ name: 'add_comment', arguments: { repository: 'other/secret-project', issue: 1, body: 'hi' } }), (err: unknown) => {
      assert.ok(err instanceof McpError);
      assert.equal(err.code, JSONRPC_ERROR.POLICY_DENIED);
      return true;
    });
    const events = await gatewayEvents();
    const denied = events.filter((e: any) => e.action === 'tools/call' && e.decision?.decision === 'deny');
    assert.deepEqual(denied.map((e: any) => e.tool), ['delete_issue', 'add_comment']);
    assert.ok(denied[0].decision.policies.includes('demo-never-delete'), denied[0].decision.policies.join(', '));
    assert.ok(denied.every((e: any) => e.outcome === 'failure'));
  });

  it('answers a scope the token lacks with 403 insufficient_scope naming it', async () => {
    const narrow = await connect('issues:read');
    try {
      await assert.rejects(narrow.callTool({ name: 'delete_issue', arguments: { repository: 'acme/api', issue: 1 } }), /403|insufficient_scope/);
    } finally {
      await narrow.close();
    }
  });

  it('refuses every call once the mandate is revoked', async () => {
    const revoked = await m.admin('POST', `/admin/v1/mandates/${mandateId}/revoke`);
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    await assert.rejects(client.callTool({ name: 'list_issues', arguments: { repository: 'acme/api' } }));
    const refused = (await m.admin('GET', '/admin/v1/audit/events?type=gateway.refused')).body.events.map((e: any) => e.event);
    assert.ok(refused.some((e: any) => e.result.status === 401 && /revoked/.test(e.result.error)), JSON.stringify(refused));
  });
});
