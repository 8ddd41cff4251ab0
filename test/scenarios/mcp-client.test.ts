/**
 * Scenario: an agent calls an MCP tool for a person. The agent gets its SPIFFE identity from
 * `mandate agent` over the Workload API, exchanges an admin-issued mandate for a DPoP-bound OBO token,
 * and the MCP SDK's Client talks to a real MCP server (McpServer + StreamableHTTPServerTransport)
 * through mandateFetch. The server checks every request with the Mandate's AccessTokenVerifier.
 * Without the agent's authorization the server answers 401; once the admin revokes the mandate the
 * next call fails.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { z } from 'zod';
import { isOAuthError } from '../../src/delegation/oauth/errors.ts';
import { startWorkloadAgent, type WorkloadAgent } from '../../src/identity/workload-agent/agent.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { AgentAuthError, MandateAgent, mandateFetch, SUBJECT_TOKEN_TYPES, workloadApiSource, type Grant, type SvidSource } from '../../src/sdk/agent/index.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const AGENT = 'spiffe://example.org/agent/triage-bot';

/** The MCP server: one `echo` tool that says for whom and by which agent it ran. */
function mcpServer(): McpServer {
  const server = new McpServer({ name: 'tools', version: '1.0.0' });
  server.registerTool('echo', { description: 'Repeats the text', inputSchema: { text: z.string() } }, async ({ text }, extra) => ({
    content: [{ type: 'text', text: `${text} (for ${String(extra.authInfo?.extra?.subject)} by ${extra.authInfo?.clientId})` }],
  }));
  return server;
}

/** node:http in front of a stateless MCP endpoint at /mcp: every request must carry a valid OBO token. */
class ProtectedMcpServer {
  server!: Server;
  base = '';
  m: TestMandate | undefined;
  readonly refusals: Array<{ status: number; wwwAuthenticate: string | undefined }> = [];

  get resource(): string {
    return `${this.base}/mcp`;
  }

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

  async #handle(req: IncomingMessage & { auth?: AuthInfo }, res: ServerResponse): Promise<void> {
    let verified;
    try {
      verified = await (this.m as TestMandate).delegation.verifier.verify({
        authorization: req.headers.authorization, dpop: req.headers.dpop, method: req.method ?? '', url: `${this.base}${req.url}`, audience: this.resource,
      });
    } catch (err) {
      if (!isOAuthError(err)) throw err;
      this.refusals.push({ status: err.status, wwwAuthenticate: err.headers['www-authenticate'] });
      res.writeHead(err.status, { 'content-type': 'application/json', ...err.headers });
      res.end(JSON.stringify(err.toJSON()));
      return;
    }
    if (req.method !== 'POST') {
      // Stateless: no server-initiated stream, no session to delete.
      res.writeHead(405, { allow: 'POST' });
      res.end();
      return;
    }
    req.auth = { token: verified.token, clientId: verified.actor ?? '', scopes: verified.scopes, extra: { subject: verified.principal.subject } };
    const server = mcpServer();
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

describe('an MCP client acting for a person through Mandate', { timeout: 60_000 }, () => {
  const mcp = new ProtectedMcpServer();
  let m: TestMandate;
  let workloadAgent: WorkloadAgent;
  let svids: SvidSource;
  let agent: MandateAgent;
  let grant: Grant;
  let mandateId: string;
  let aliceSubject: string;
  const socketPath = join(mkdtempSync(join(tmpdir(), 'mandate-mcp-')), 'agent.sock');

  before(async () => {
    await mcp.start();
    m = await startTestMandate({
      yaml: `trust_domain: example.org\ndelegation:\n  scopes:\n    tools:call: Call tools\n  resources:\n    - { uri: "${mcp.resource}", name: Tools }\n`,
    });
    mcp.m = m;
    await m.admin('POST', '/admin/v1/entries', { id: 'bot', spiffe_id: AGENT });
    const { token } = (await m.admin('POST', '/admin/v1/join-tokens', { entry_id: 'bot' })).body;
    workloadAgent = await startWorkloadAgent({ serverUrl: m.url, attestation: { type: 'join_token', token }, socketPath, logger: silentLogger() });
    aliceSubject = (await m.admin('POST', '/admin/v1/users', { username: 'alice', display_name: 'Alice', password: 'correct horse battery staple' })).body.id;
    const mandate = await m.admin('POST', '/admin/v1/mandates', { username: 'alice', agent: AGENT, scopes: ['tools:call'], resources: [mcp.resource] });
    assert.equal(mandate.status, 201, JSON.stringify(mandate.body));
    mandateId = mandate.body.id;
    grant = { subjectToken: mandateId, subjectTokenType: SUBJECT_TOKEN_TYPES.mandate };
    svids = workloadApiSource(socketPath);
    agent = new MandateAgent({ issuer: m.issuer, svids });
  });
  after(async () => {
    await svids?.close?.();
    await workloadAgent?.stop();
    await m?.close();
    await mcp.close();
  });

  it('connects, lists the tools and calls one with the DPoP-bound OBO token', async () => {
    const client = new Client({ name: 'triage-bot', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(mcp.resource), { fetch: mandateFetch(agent, mcp.resource, grant) }));
    try {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name), ['echo']);
      const result = await client.callTool({ name: 'echo', arguments: { text: 'hello' } });
      assert.deepEqual(result.content, [{ type: 'text', text: `hello (for ${aliceSubject} by ${AGENT})` }]);
      await client.callTool({ name: 'echo', arguments: { text: 'again' } });
    } finally {
      await client.close();
    }
    const exchanged = m.events.events.filter((e) => e.type === 'token.exchanged');
    assert.equal(exchanged.length, 1, 'one token served the whole session');
    assert.equal((exchanged[0] as { mandateId?: string }).mandateId, mandateId);
    assert.equal(mcp.refusals.length, 0);
  });

  it('without the agent\'s authorization the MCP server answers 401 with a challenge', async () => {
    const client = new Client({ name: 'stranger', version: '1.0.0' });
    await assert.rejects(client.connect(new StreamableHTTPClientTransport(new URL(mcp.resource))), (err) => err instanceof StreamableHTTPError && err.code === 401);
    assert.deepEqual(mcp.refusals.at(-1), { status: 401, wwwAuthenticate: 'Bearer, DPoP' });
  });

  it('after the admin revokes the mandate the next call fails, and no new token is issued', async () => {
    const client = new Client({ name: 'triage-bot', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(mcp.resource), { fetch: mandateFetch(agent, mcp.resource, grant) }));
    try {
      await client.callTool({ name: 'echo', arguments: { text: 'before' } });
      assert.equal((await m.admin('POST', `/admin/v1/mandates/${mandateId}/revoke`)).status, 200);
      await assert.rejects(client.callTool({ name: 'echo', arguments: { text: 'after' } }), (err) => err instanceof StreamableHTTPError && err.code === 401 && /mandate has been revoked/.test(err.message));
      assert.match(mcp.refusals.at(-1)?.wwwAuthenticate ?? '', /^DPoP error="invalid_token"/);
      // The refused token was dropped: the same agent's next call exchanges again and learns why.
      await assert.rejects(client.callTool({ name: 'echo', arguments: { text: 'again' } }), (err) => err instanceof AgentAuthError && err.error === 'invalid_request' && /revoked/.test(err.message));
    } finally {
      await client.close();
    }
    // A fresh agent holds no token: its exchange is refused.
    const fresh = new MandateAgent({ issuer: m.issuer, svids });
    const client2 = new Client({ name: 'triage-bot', version: '1.0.0' });
    await assert.rejects(client2.connect(new StreamableHTTPClientTransport(new URL(mcp.resource), { fetch: mandateFetch(fresh, mcp.resource, grant) })), (err) => err instanceof AgentAuthError && err.error === 'invalid_request' && /revoked/.test(err.message));
  });
});
