/**
 * Scenario: an operator generates the Cedar schema fragment of a real MCP server's tools with
 * `mandate policy schema --from-mcp`, keeps it beside the policies, and the gateway's decisions read
 * the tools' typed arguments. The MCP servers are built with the MCP SDK (McpServer with zod input
 * schemas, and a low-level Server that pages tools/list) on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { decide, type DecisionRequest } from '../../src/policy/decide.ts';
import { listMcpTools } from '../../src/policy/mcp-client.ts';
import { compilePolicySet, loadPolicyDirectory } from '../../src/policy/policy-set.ts';

const BIN = join(process.cwd(), 'bin/mandate.js');
const SECRET = 'Bearer s3cret-for-tests';
const ok = () => ({ content: [{ type: 'text' as const, text: 'ok' }] });

function billingServer(): McpServer {
  const server = new McpServer({ name: 'billing', version: '1.0.0' });
  server.registerTool('refund', { description: 'Refund a payment', inputSchema: { amount: z.number(), currency: z.enum(['EUR', 'USD']) }, annotations: { destructiveHint: true } }, ok);
  server.registerTool('comment', { description: 'Comment on an issue', inputSchema: { repository: z.string(), issue: z.number().int(), body: z.string() } }, ok);
  server.registerTool('search', { description: 'Search issues', inputSchema: { query: z.string(), filters: z.object({ labels: z.array(z.string()) }) }, annotations: { readOnlyHint: true } }, ok);
  return server;
}

/** Tools whose inputs Cedar cannot express exactly. */
function oddServer(): McpServer {
  const server = new McpServer({ name: 'odd', version: '1.0.0' });
  server.registerTool('tag', { inputSchema: { target: z.union([z.string(), z.object({ id: z.number() })]), note: z.string().nullable() } }, ok);
  return server;
}

/** A low-level SDK server that answers tools/list in pages of two. */
function pagedServer(): Server {
  const server = new Server({ name: 'paged', version: '1.0.0' }, { capabilities: { tools: {} } });
  const all = ['t1', 't2', 't3', 't4', 't5'].map((name) => ({ name, inputSchema: { type: 'object' as const, properties: { n: { type: 'integer' } } } }));
  server.setRequestHandler(ListToolsRequestSchema, (req) => {
    const start = Number(req.params?.cursor ?? 0);
    return { tools: all.slice(start, start + 2), ...(start + 2 < all.length && { nextCursor: String(start + 2) }) };
  });
  return server;
}

/** node:http with stateless MCP endpoints: /billing, /odd, /paged, and /private (needs SECRET). */
class McpServers {
  server!: HttpServer;
  base = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        res.writeHead(500);
        res.end(String(err));
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', this.base).pathname;
    if (path === '/private' && req.headers.authorization !== SECRET) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"error":"unauthorized"}');
      return;
    }
    const make = { '/billing': billingServer, '/private': billingServer, '/odd': oddServer, '/paged': pagedServer }[path];
    if (!make || req.method !== 'POST') {
      res.writeHead(make ? 405 : 404);
      res.end();
      return;
    }
    const server = make();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Runs the real CLI without blocking this process (the MCP servers live here). */
function mandate(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, MANDATE_SERVER: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const POLICIES = `
@id("small-refunds")
@reason("refunds under 100 need no one's approval")
permit(principal, action == Mandate::Tools::billing::Action::"refund", resource)
when { context.arguments.amount.lessThan(decimal("100.0")) };

@id("big-refunds")
@approval("required")
permit(principal, action == Mandate::Tools::billing::Action::"refund", resource)
when { context.arguments.amount.greaterThanOrEqual(decimal("100.0")) && context.arguments.currency == "EUR" };

@id("acme-comments")
permit(principal, action == Mandate::Tools::billing::Action::"comment", resource)
when { context.arguments.repository like "acme/*" };

@id("search-bugs")
permit(principal, action == Mandate::Tools::billing::Action::"search", resource)
when { context.arguments.filters.labels.contains("bug") };
`;

function request(tool: string, args: Record<string, unknown>): DecisionRequest {
  return {
    agent: { spiffeId: 'spiffe://example.org/agent/billing-bot' }, principal: { issuer: 'https://idp.example', subject: 'alice' },
    action: { kind: 'mcp', method: 'tools/call', server: 'billing', tool: { name: tool }, arguments: args },
    scopes: [], chain: [], now: new Date(), binding: 'dpop',
  };
}

describe('mandate policy schema --from-mcp', { timeout: 120_000 }, () => {
  const servers = new McpServers();
  before(() => servers.start());
  after(() => servers.close());

  it('prints a fragment whose typed arguments policies decide on', async () => {
    const run = await mandate('policy', 'schema', '--from-mcp', `${servers.base}/billing`, '--server', 'billing');
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stderr, '');
    assert.match(run.stdout, /namespace Mandate::Tools::billing \{/);
    assert.match(run.stdout, /\/\/ Refund a payment \(destructive\)\n\s+action "refund" in \[Mandate::Action::"tools\/call"\]/);
    const set = compilePolicySet({ schemas: [{ file: 'billing.cedarschema', text: run.stdout }], policies: [{ file: 'policies.cedar', text: POLICIES }] });
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['refund', { amount: 42.5, currency: 'USD' }, 'allow'],
      ['refund', { amount: 150, currency: 'EUR' }, 'approval-required'],
      ['refund', { amount: 150, currency: 'USD' }, 'deny'],
      ['refund', { amount: 'lots', currency: 'EUR' }, 'deny'],
      ['comment', { repository: 'acme/widgets', issue: 12, body: 'looks good' }, 'allow'],
      ['comment', { repository: 'other/widgets', issue: 12, body: 'looks good' }, 'deny'],
      ['comment', { repository: 'acme/widgets', issue: 1.5, body: 'looks good' }, 'deny'],
      ['search', { query: 'crash', filters: { labels: ['ui', 'bug'] } }, 'allow'],
      ['search', { query: 'crash', filters: { labels: ['ui'] } }, 'deny'],
    ];
    for (const [tool, args, expected] of cases) {
      assert.equal(decide(set, request(tool, args)).decision, expected, `${tool} ${JSON.stringify(args)}`);
    }
  });

  it('writes the fragment with --out, next to the policies', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mandate-policy-'));
    writeFileSync(join(dir, 'policies.cedar'), POLICIES);
    const out = join(dir, 'billing.cedarschema');
    const run = await mandate('policy', 'schema', '--from-mcp', `${servers.base}/billing`, '--server', 'billing', '--out', out);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /wrote 3 tool action\(s\)/);
    const set = compilePolicySet(loadPolicyDirectory(dir));
    assert.match(readFileSync(out, 'utf8'), /action "search"/);
    assert.equal(decide(set, request('refund', { amount: 1, currency: 'EUR' })).decision, 'allow');
  });

  it('sends --header to the MCP server', async () => {
    const refused = await mandate('policy', 'schema', '--from-mcp', `${servers.base}/private`, '--server', 'billing');
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /cannot list the tools of http:\/\/127\.0\.0\.1:\d+\/private.*\(ERR_SERVER_UNREACHABLE\)/);
    const run = await mandate('policy', 'schema', '--from-mcp', `${servers.base}/private`, '--server', 'billing', '--header', `Authorization: ${SECRET}`);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /action "comment"/);
  });

  it('reports what Cedar cannot express on stderr, and fails with --strict', async () => {
    const run = await mandate('policy', 'schema', '--from-mcp', `${servers.base}/odd`, '--server', 'odd');
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /unsupported: tool "tag" arguments\.target: anyOf of 2 different schemas -> omitted\n/);
    assert.match(run.stderr, /unsupported: tool "tag" arguments\.note: type: \["string","null"\].* -> String/);
    assert.match(run.stdout, /note: String,/);
    assert.doesNotMatch(run.stdout, /target/);
    compilePolicySet({ schemas: [{ file: 'odd.cedarschema', text: run.stdout }], policies: [] });
    const strict = await mandate('policy', 'schema', '--from-mcp', `${servers.base}/odd`, '--server', 'odd', '--strict');
    assert.equal(strict.status, 2);
    assert.equal(strict.stdout, run.stdout);
    const clean = await mandate('policy', 'schema', '--from-mcp', `${servers.base}/billing`, '--server', 'billing', '--strict');
    assert.equal(clean.status, 0, clean.stderr);
  });

  it('needs --server, and says so when the MCP server is not there', async () => {
    const missing = await mandate('policy', 'schema', '--from-mcp', `${servers.base}/billing`);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /--server <name> is required/);
    const before = await mandate('--server', 'billing', 'policy', 'schema', '--from-mcp', `${servers.base}/billing`);
    assert.equal(before.status, 0, before.stderr);
    const gone = await mandate('policy', 'schema', '--from-mcp', `${servers.base}/nothing-here`, '--server', 'billing');
    assert.equal(gone.status, 1);
    assert.match(gone.stderr, /cannot list the tools of/);
  });

  it('pages through tools/list', async () => {
    const tools = await listMcpTools(`${servers.base}/paged`);
    assert.deepEqual(tools.map((t) => t.name), ['t1', 't2', 't3', 't4', 't5']);
  });
});
