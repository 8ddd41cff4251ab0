/**
 * Scenario: an agent calls an MCP tool for a person with a certificate-bound token (RFC 8705). The
 * agent is enrolled for real (join token, CSR, X.509-SVID), exchanges an admin-issued mandate at
 * Mandate's mutual-TLS token endpoint with its X.509-SVID, and the MCP SDK's Client talks to a real
 * MCP server behind node:https with `authProvider: mandateAuthProvider(...)` and a fetch whose
 * connections present the same SVID. The server checks every request with the Mandate's verifier and
 * the client certificate of the connection. Without the certificate the token is refused; once the
 * admin revokes the mandate the next call fails; when the SVID rotates, the next token is bound to the
 * new certificate and the connections present it.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { decodeJwt } from 'jose';
import { Agent, fetch as undiciFetch, type Dispatcher } from 'undici';
import { z } from 'zod';
import { isOAuthError } from '../../src/delegation/oauth/errors.ts';
import { certificatesToPem } from '../../src/identity/x509/pem.ts';
import { IdentityClient } from '../../src/sdk/identity/client.ts';
import { generateKeyAndCsr } from '../../src/sdk/identity/csr.ts';
import { AgentAuthError, MandateAgent, mandateAuthProvider, SUBJECT_TOKEN_TYPES, staticSource, type Grant, type X509SvidPem } from '../../src/sdk/agent/index.ts';
import { serverTls, type ServerTls } from '../support/delegation.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const AGENT = 'spiffe://example.org/agent/triage-bot';

function thumbprint(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('base64url');
}

/** A fetch for the MCP transport whose connections go through `dispatcher`. */
function fetchOver(dispatcher: Dispatcher): FetchLike {
  return (url, init) => undiciFetch(url, { ...init, dispatcher } as Parameters<typeof undiciFetch>[1]) as unknown as Promise<Response>;
}

/** The MCP server: one `echo` tool that says for whom and by which agent it ran. */
function mcpServer(): McpServer {
  const server = new McpServer({ name: 'tools', version: '1.0.0' });
  server.registerTool('echo', { description: 'Repeats the text', inputSchema: { text: z.string() } }, async ({ text }, extra) => ({
    content: [{ type: 'text', text: `${text} (for ${String(extra.authInfo?.extra?.subject)} by ${extra.authInfo?.clientId})` }],
  }));
  return server;
}

/**
 * node:https (asking for a client certificate, accepting any at TLS) in front of a stateless MCP
 * endpoint at /mcp: every request must carry a valid OBO token bound to the connection's certificate.
 */
class MutualTlsMcpServer {
  server!: Server;
  base = '';
  m: TestMandate | undefined;
  readonly refusals: Array<{ status: number; wwwAuthenticate: string | undefined; description: string }> = [];
  /** Per accepted request: the token and the thumbprint of the certificate it came with. */
  readonly accepted: Array<{ token: string; certificate: string }> = [];

  constructor(readonly tls: ServerTls) {}

  get resource(): string {
    return `${this.base}/mcp`;
  }

  async start(): Promise<void> {
    this.server = createServer({ cert: this.tls.certPem, key: this.tls.keyPem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        res.writeHead(500);
        res.end(String(err));
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.base = `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async #handle(req: IncomingMessage & { auth?: AuthInfo }, res: ServerResponse): Promise<void> {
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    const clientCertificate = peer?.raw ? new X509Certificate(peer.raw) : undefined;
    let verified;
    try {
      verified = await (this.m as TestMandate).delegation.verifier.verify({
        authorization: req.headers.authorization, dpop: req.headers.dpop, method: req.method ?? '', url: `${this.base}${req.url}`, audience: this.resource, clientCertificate,
      });
    } catch (err) {
      if (!isOAuthError(err)) throw err;
      this.refusals.push({ status: err.status, wwwAuthenticate: err.headers['www-authenticate'], description: err.message });
      res.writeHead(err.status, { 'content-type': 'application/json', ...err.headers });
      res.end(JSON.stringify(err.toJSON()));
      return;
    }
    this.accepted.push({ token: verified.token, certificate: clientCertificate ? thumbprint(clientCertificate) : '' });
    if (req.method !== 'POST') {
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

/** An X.509-SVID for the entry, attested over HTTP with a new join token and CSR. */
async function attest(m: TestMandate, entryId: string, bundlePem: string): Promise<X509SvidPem & { leaf: X509Certificate }> {
  const join = await m.admin('POST', '/admin/v1/join-tokens', { entry_id: entryId });
  assert.ok(join.status === 201 || join.status === 200, JSON.stringify(join.body));
  const client = new IdentityClient({ serverUrl: m.url });
  try {
    const { privateKey, csrPem } = await generateKeyAndCsr();
    const svid = await client.attest({ type: 'join_token', token: join.body.token }, csrPem);
    assert.equal(svid.spiffeId.toString(), AGENT);
    return { certPem: certificatesToPem(svid.chain), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), bundlePem, leaf: svid.chain[0] as X509Certificate };
  } finally {
    await client.close();
  }
}

describe('an MCP client with a certificate-bound token through mandateAuthProvider', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-mcp-mtls-'));
  let mcp: MutualTlsMcpServer;
  let m: TestMandate;
  let mandateTls: ServerTls;
  let tlsCa: string;
  let entryId: string;
  let bundlePem: string;
  /** What the agent's SvidSource returns now; a test swaps it to rotate. */
  let current: X509SvidPem & { leaf: X509Certificate };
  let agent: MandateAgent;
  let grant: Grant;
  let mandateId: string;
  let aliceSubject: string;

  const newAgent = (): MandateAgent => new MandateAgent({
    issuer: m.issuer,
    binding: 'mtls',
    tlsCa,
    svids: staticSource({
      jwtSvid: async () => assert.fail('a certificate-bound exchange needs no JWT-SVID'),
      x509: async () => ({ certPem: current.certPem, keyPem: current.keyPem, bundlePem: current.bundlePem }),
    }),
  });

  async function connect(a: MandateAgent, fetch?: FetchLike): Promise<Client> {
    const client = new Client({ name: 'triage-bot', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(mcp.resource), {
      authProvider: mandateAuthProvider(a, mcp.resource, grant),
      fetch: fetch ?? fetchOver(await a.tlsDispatcher()),
    }));
    return client;
  }

  before(async () => {
    // One self-signed certificate for 127.0.0.1 serves Mandate's mTLS listener and the MCP server
    // (serverTls names every certificate alike, so two of them could not be told apart as anchors).
    mandateTls = await serverTls(dir);
    tlsCa = mandateTls.certPem;
    mcp = new MutualTlsMcpServer(mandateTls);
    await mcp.start();
    m = await startTestMandate({
      dataDir: dir,
      yaml: [
        'trust_domain: example.org',
        'delegation:',
        '  scopes:',
        '    tools:call: Call tools',
        '  resources:',
        `    - { uri: "${mcp.resource}", name: Tools }`,
        '  mtls:',
        '    listen: 127.0.0.1:0',
        `    cert_file: ${mandateTls.certFile}`,
        `    key_file: ${mandateTls.keyFile}`,
        '',
      ].join('\n'),
    });
    mcp.m = m;
    const identity = new IdentityClient({ serverUrl: m.url });
    bundlePem = certificatesToPem((await identity.bundles()).bundles.find((b) => b.trustDomain === 'example.org')?.x509Authorities ?? []);
    await identity.close();
    const entry = await m.admin('POST', '/admin/v1/entries', { spiffe_id: AGENT });
    assert.equal(entry.status, 201, JSON.stringify(entry.body));
    entryId = entry.body.id;
    current = await attest(m, entryId, bundlePem);
    aliceSubject = (await m.admin('POST', '/admin/v1/users', { username: 'alice', display_name: 'Alice', password: 'correct horse battery staple' })).body.id;
    const mandate = await m.admin('POST', '/admin/v1/mandates', { username: 'alice', agent: AGENT, scopes: ['tools:call'], resources: [mcp.resource] });
    assert.equal(mandate.status, 201, JSON.stringify(mandate.body));
    mandateId = mandate.body.id;
    grant = { subjectToken: mandateId, subjectTokenType: SUBJECT_TOKEN_TYPES.mandate };
    agent = newAgent();
  });
  after(async () => {
    await agent?.close();
    await m?.close();
    await mcp?.close();
  });

  it('lists the tools and calls one with a token bound to the agent\'s X.509-SVID', async () => {
    const start = m.events.events.length;
    const client = await connect(agent);
    try {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name), ['echo']);
      const result = await client.callTool({ name: 'echo', arguments: { text: 'hello' } });
      assert.deepEqual(result.content, [{ type: 'text', text: `hello (for ${aliceSubject} by ${AGENT})` }]);
    } finally {
      await client.close();
    }
    assert.equal(mcp.refusals.length, 0, JSON.stringify(mcp.refusals));
    const exchanged = m.events.events.slice(start).filter((e) => e.type === 'token.exchanged');
    assert.equal(exchanged.length, 1, 'one token served the whole session');
    assert.equal((exchanged[0] as { binding?: string }).binding, 'mtls');
    const tokens = new Set(mcp.accepted.map((a) => a.token));
    assert.equal(tokens.size, 1);
    const claims = decodeJwt([...tokens][0] as string) as Record<string, any>;
    assert.deepEqual(claims.cnf, { 'x5t#S256': thumbprint(current.leaf) }, 'bound to the leaf of the X.509-SVID');
    assert.deepEqual(claims.act, { sub: AGENT });
    assert.ok(mcp.accepted.every((a) => a.certificate === thumbprint(current.leaf)), 'every request came over a connection presenting that leaf');
  });

  it('the provider\'s members are those of a non-interactive agent', async () => {
    const provider = mandateAuthProvider(agent, mcp.resource, grant);
    assert.equal(provider.redirectUrl, undefined);
    assert.deepEqual(provider.clientMetadata, { redirect_uris: [], grant_types: ['urn:ietf:params:oauth:grant-type:token-exchange'], token_endpoint_auth_method: 'tls_client_auth' });
    assert.deepEqual(mandateAuthProvider(agent, mcp.resource, { ...grant, scope: ['tools:call'] }).clientMetadata.scope, 'tools:call');
    assert.deepEqual(await provider.clientInformation(), { client_id: AGENT, issuer: m.issuer });
    const state = await provider.discoveryState?.();
    assert.equal(state?.authorizationServerUrl, m.issuer);
    assert.equal(state?.authorizationServerMetadata?.issuer, m.issuer);
    assert.equal((await provider.validateResourceURL?.(new URL(`${mcp.base}/`), undefined))?.href, mcp.resource);

    const tokens = await provider.tokens();
    assert.equal(tokens?.token_type, 'Bearer');
    assert.equal(tokens?.scope, 'tools:call');
    assert.ok((tokens?.expires_in ?? 0) > 200 && (tokens?.expires_in ?? 0) <= 300, String(tokens?.expires_in));
    assert.ok((await provider.tokens())?.access_token === tokens?.access_token, 'the cached token');
    for (const scope of ['client', 'verifier', 'discovery'] as const) {
      await provider.invalidateCredentials?.(scope);
      assert.ok((await provider.tokens())?.access_token === tokens?.access_token, `invalidateCredentials('${scope}') keeps the token`);
    }
    await provider.invalidateCredentials?.('tokens');
    const fresh = await provider.tokens();
    assert.ok(fresh?.access_token !== tokens?.access_token, "invalidateCredentials('tokens') forgets the token");
    await provider.invalidateCredentials?.('all');
    assert.ok((await provider.tokens())?.access_token !== fresh?.access_token, "invalidateCredentials('all') forgets the token");

    const interactive: Array<[string, () => unknown]> = [
      ['redirectToAuthorization', () => provider.redirectToAuthorization(new URL(`${m.issuer}/oauth/authorize?client_id=x`))],
      ['saveCodeVerifier', () => provider.saveCodeVerifier('verifier')],
      ['codeVerifier', () => provider.codeVerifier()],
      ['saveTokens', () => provider.saveTokens({ access_token: 'elsewhere', token_type: 'Bearer' })],
    ];
    for (const [name, call] of interactive) {
      assert.throws(call, (err: Error) => err.message.startsWith(name) && /obtains its tokens by token exchange/.test(err.message), name);
    }
  });

  it('a request without the client certificate, or with another, is refused', async () => {
    const token = (await mandateAuthProvider(agent, mcp.resource, grant).tokens())?.access_token as string;
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const noCert = new Agent({ connect: { ca: tlsCa } });
    const otherSvid = await attest(m, entryId, bundlePem);
    const otherCert = new Agent({ connect: { ca: tlsCa, cert: otherSvid.certPem, key: otherSvid.keyPem } });
    try {
      const cases: Array<[string, Dispatcher, RegExp]> = [
        ['no certificate', noCert, /present it over mutual TLS/],
        ['another SVID of the same agent', otherCert, /not the one the access token is bound to/],
      ];
      for (const [name, dispatcher, reason] of cases) {
        const res = await undiciFetch(mcp.resource, { method: 'POST', headers, body, dispatcher });
        assert.equal(res.status, 401, name);
        await res.body?.cancel();
        assert.match(mcp.refusals.at(-1)?.description ?? '', reason, name);
        assert.match(mcp.refusals.at(-1)?.wwwAuthenticate ?? '', /^Bearer error="invalid_token"/, name);
      }
      // Through the MCP client: the provider's token goes over a connection without the certificate,
      // the transport runs the SDK's auth() flow, and the provider ends it: no authorization flow.
      const before = mcp.refusals.length;
      await assert.rejects(connect(agent, fetchOver(noCert)), (err: Error) => /refused the token/.test(err.message));
      assert.ok(mcp.refusals.slice(before).some((r) => /present it over mutual TLS/.test(r.description)));
    } finally {
      await noCert.close();
      await otherCert.close();
    }
  });

  it('when the SVID rotates, the next token is bound to the new certificate and the connections present it', async () => {
    const rotating = newAgent();
    try {
      const client = await connect(rotating);
      try {
        await client.callTool({ name: 'echo', arguments: { text: 'before' } });
        const old = current;
        current = await attest(m, entryId, bundlePem);
        assert.notEqual(thumbprint(current.leaf), thumbprint(old.leaf));
        // The token is not due yet: the old certificate keeps serving it.
        await client.callTool({ name: 'echo', arguments: { text: 'still' } });
        assert.equal(mcp.accepted.at(-1)?.certificate, thumbprint(old.leaf));
        // The next exchange reads the SVID again; the same fetch (same dispatcher) now presents the new one.
        rotating.forget(mcp.resource, grant);
        await client.callTool({ name: 'echo', arguments: { text: 'after' } });
        const last = mcp.accepted.at(-1);
        assert.equal(last?.certificate, thumbprint(current.leaf));
        assert.deepEqual((decodeJwt(last?.token as string) as Record<string, any>).cnf, { 'x5t#S256': thumbprint(current.leaf) });
      } finally {
        await client.close();
      }
    } finally {
      await rotating.close();
    }
  });

  it('after the admin revokes the mandate the next call fails, and no new token is issued', async () => {
    let exchanges = 0;
    const client = await connect(agent);
    try {
      await client.callTool({ name: 'echo', arguments: { text: 'before' } });
      assert.equal((await m.admin('POST', `/admin/v1/mandates/${mandateId}/revoke`)).status, 200);
      // The MCP server refuses the revoked token; the SDK's auth() flow asks the provider, which
      // drops the token and exchanges again, and Mandate says why.
      const before = mcp.refusals.length;
      exchanges = m.events.events.filter((e) => e.type === 'token.exchanged').length;
      await assert.rejects(client.callTool({ name: 'echo', arguments: { text: 'after' } }), (err) => err instanceof AgentAuthError && err.error === 'invalid_request' && /revoked/.test(err.message));
      // The revoked token, then the SDK's looks for protected resource metadata (without a token).
      const [revoked, ...discovery] = mcp.refusals.slice(before);
      assert.match(revoked?.description ?? '', /revoked/);
      assert.ok(discovery.every((r) => /an access token is required/.test(r.description)), JSON.stringify(discovery));
      await assert.rejects(client.callTool({ name: 'echo', arguments: { text: 'again' } }), (err) => err instanceof AgentAuthError && err.error === 'invalid_request' && /revoked/.test(err.message));
    } finally {
      await client.close();
    }
    const fresh = newAgent();
    try {
      await assert.rejects(connect(fresh), (err) => err instanceof AgentAuthError && err.error === 'invalid_request' && /revoked/.test(err.message));
    } finally {
      await fresh.close();
    }
    assert.equal(m.events.events.filter((e) => e.type === 'token.exchanged').length, exchanges, 'no token was issued after the revocation');
  });
});
