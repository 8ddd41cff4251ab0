/**
 * Scenario helpers for the delegation authority: a configuration with scopes, resources, clients and
 * a mutual-TLS listener; agents enrolled through the real identity API (entry, join token, CSR,
 * SVID-PoP); and token-endpoint calls as an agent makes them (form body, DPoP proof, optional
 * client certificate).
 */
import { createHash, type KeyObject, type X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { subtle, x509 } from '../../src/identity/x509/crypto.ts';
import { certificatesToPem } from '../../src/identity/x509/pem.ts';
import { DpopSigner } from '../../src/sdk/agent/dpop.ts';
import { IdentityClient } from '../../src/sdk/identity/client.ts';
import { generateKeyAndCsr } from '../../src/sdk/identity/csr.ts';
import { startTestMandate, type TestMandate } from './mandate.ts';

export const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TT = {
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
  mandate: 'urn:mandate:params:oauth:token-type:mandate',
} as const;
export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** The resources the scenario configuration lists (RFC 8707 indicators; nothing listens there). */
export const ISSUES = 'https://tools.example/mcp/issues';
export const WIKI = 'https://tools.example/mcp/wiki';

/** The confidential client a resource server introspects with (client_secret_basic). */
export const INTROSPECTOR = { clientId: 'issues-api', secret: 'introspection-secret-9f2c1a7e' } as const;
/** The public client agents call the token endpoint through with an actor token. */
export const PUBLIC_CLIENT = 'agent-app';

export interface ServerTls {
  certFile: string;
  keyFile: string;
  /** PEM of the self-signed server certificate: what clients trust. */
  certPem: string;
  keyPem: string;
}

/** A self-signed P-256 server certificate for 127.0.0.1 (and localhost), written to `dir`. */
export async function serverTls(dir: string): Promise<ServerTls> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=mandate-mtls-test',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }, { type: 'dns', value: 'localhost' }]),
    ],
  });
  const certPem = cert.toString('pem');
  const keyDer = Buffer.from(await subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${keyDer.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
  const certFile = join(dir, 'mtls.crt');
  const keyFile = join(dir, 'mtls.key');
  writeFileSync(certFile, certPem);
  writeFileSync(keyFile, keyPem, { mode: 0o600 });
  return { certFile, keyFile, certPem, keyPem };
}

/** The scenario configuration: two resources with their scopes, an introspecting and a public client, optionally mTLS. */
export function delegationYaml(opts: { mtls?: ServerTls; requireNonce?: boolean } = {}): string {
  const secretHash = createHash('sha256').update(INTROSPECTOR.secret).digest('hex');
  return [
    'trust_domain: example.org',
    'delegation:',
    '  scopes:',
    '    "issues:read": Read issues and their comments',
    '    "issues:comment": Comment on issues',
    '    "wiki:read": Read the wiki',
    '  resources:',
    `    - { uri: "${ISSUES}", name: Issue tracker, scopes: ["issues:read", "issues:comment"] }`,
    `    - { uri: "${WIKI}", name: Wiki, scopes: ["wiki:read"] }`,
    '  clients:',
    `    - client_id: ${INTROSPECTOR.clientId}`,
    '      auth_method: client_secret_basic',
    `      secret_sha256: ${secretHash}`,
    `      grant_types: [${GRANT_TOKEN_EXCHANGE}]`,
    `    - client_id: ${PUBLIC_CLIENT}`,
    '      auth_method: none',
    `      grant_types: [${GRANT_TOKEN_EXCHANGE}]`,
    ...(opts.requireNonce ? ['  dpop:', '    require_nonce: true'] : []),
    ...(opts.mtls ? [
      '  mtls:',
      '    listen: 127.0.0.1:0',
      `    cert_file: ${opts.mtls.certFile}`,
      `    key_file: ${opts.mtls.keyFile}`,
    ] : []),
    '',
  ].join('\n');
}

/**
 * A Mandate with the scenario configuration; with `mtls`, a mutual-TLS listener on port 0; with
 * `requireNonce`, DPoP server nonces at the token endpoint.
 */
export async function startDelegationMandate(opts: { mtls?: boolean; requireNonce?: boolean } = {}): Promise<TestMandate & { serverTls?: ServerTls }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'mandate-delegation-'));
  const tls = opts.mtls ? await serverTls(dataDir) : undefined;
  const m = await startTestMandate({ dataDir, yaml: delegationYaml({ mtls: tls, requireNonce: opts.requireNonce }) });
  return Object.assign(m, { serverTls: tls });
}

/** An agent as the real identity API made it: its X.509-SVID, its key, and JWT-SVIDs on demand. */
export interface EnrolledAgent {
  spiffeId: string;
  chain: X509Certificate[];
  privateKey: KeyObject;
  /** PEM of the SVID chain (leaf first) and of the key, for a TLS client. */
  certPem: string;
  keyPem: string;
  /** A JWT-SVID for the audiences, fetched with SVID-PoP from POST /v1/svid/jwt. */
  jwtSvid(audience: string[]): Promise<string>;
}

/** Registers `spiffeId`, attests with a join token and a CSR, all over HTTP. */
export async function enrolAgent(m: TestMandate, spiffeId: string): Promise<EnrolledAgent> {
  const entry = await m.admin('POST', '/admin/v1/entries', { spiffe_id: spiffeId });
  if (entry.status !== 201) throw new Error(`entry for ${spiffeId}: ${entry.status} ${JSON.stringify(entry.body)}`);
  const join = await m.admin('POST', '/admin/v1/join-tokens', { entry_id: entry.body.id });
  if (join.status !== 201 && join.status !== 200) throw new Error(`join token for ${spiffeId}: ${join.status} ${JSON.stringify(join.body)}`);
  const client = new IdentityClient({ serverUrl: m.url });
  const { privateKey, csrPem } = await generateKeyAndCsr();
  const svid = await client.attest({ type: 'join_token', token: join.body.token }, csrPem);
  return {
    spiffeId: svid.spiffeId.toString(),
    chain: svid.chain,
    privateKey,
    certPem: certificatesToPem(svid.chain),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    jwtSvid: async (audience) => (await client.fetchJwtSvid({ chain: svid.chain, privateKey }, audience)).token,
  };
}

export interface OAuthReply {
  status: number;
  body: any;
  headers: Headers;
}

async function reply(res: { status: number; text(): Promise<string>; headers: Headers }): Promise<OAuthReply> {
  const text = await res.text();
  let body: unknown = text;
  try { body = JSON.parse(text); } catch { /* keep text */ }
  return { status: res.status, body, headers: res.headers };
}

/**
 * POSTs a form to an OAuth endpoint of `baseUrl` (`/oauth/token` by default). With `dpop`, a fresh
 * proof for this exact URL goes in the DPoP header; with `basic`, HTTP Basic client credentials;
 * with `tls`, the request goes over mutual TLS with that client certificate.
 */
export async function oauthPost(baseUrl: string, params: Record<string, string | string[]>, opts: {
  path?: string;
  dpop?: DpopSigner;
  /** A ready proof (e.g. to replay one); wins over `dpop`. */
  dpopProof?: string;
  basic?: { clientId: string; secret: string };
  tls?: { cert?: string; key?: string; ca: string };
} = {}): Promise<OAuthReply> {
  const url = `${baseUrl}${opts.path ?? '/oauth/token'}`;
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const value of Array.isArray(v) ? v : [v]) form.append(k, value);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  const proof = opts.dpopProof ?? (opts.dpop ? await opts.dpop.proof('POST', url) : undefined);
  if (proof !== undefined) headers.dpop = proof;
  if (opts.basic) headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(opts.basic.clientId)}:${encodeURIComponent(opts.basic.secret)}`).toString('base64')}`;
  if (opts.tls) {
    const dispatcher = new Agent({ connect: { ...opts.tls } });
    try {
      return await reply(await undiciFetch(url, { method: 'POST', body: form.toString(), headers, dispatcher }));
    } finally {
      await dispatcher.close();
    }
  }
  return reply(await fetch(url, { method: 'POST', body: form.toString(), headers }));
}

/** Introspects `token` as the configured resource-server client. */
export function introspect(m: TestMandate, token: string): Promise<OAuthReply> {
  return oauthPost(m.url, { token }, { path: '/oauth/introspect', basic: INTROSPECTOR });
}

/** A token-exchange request for a mandate id, acting with `actorToken` through the public client. */
export function mandateExchange(mandateId: string, actorToken: string, extra: Record<string, string | string[]> = {}): Record<string, string | string[]> {
  return {
    grant_type: GRANT_TOKEN_EXCHANGE,
    client_id: PUBLIC_CLIENT,
    subject_token: mandateId,
    subject_token_type: TT.mandate,
    actor_token: actorToken,
    actor_token_type: TT.jwt,
    ...extra,
  };
}

/**
 * The usual start of a gateway scenario: alice (created here) grants `agent` a mandate for
 * `resource` with `scopes`, and the agent exchanges it for a DPoP-bound OBO token under a new key.
 */
export async function dpopTokenForAlice(m: TestMandate, agent: EnrolledAgent, opts: { resource: string; scopes: string[] }): Promise<{ signer: DpopSigner; token: string; mandateId: string }> {
  await m.admin('POST', '/admin/v1/users', { username: 'alice', password: 'correct horse battery staple' });
  const mandate = await m.admin('POST', '/admin/v1/mandates', { username: 'alice', agent: agent.spiffeId, scopes: opts.scopes, resources: [opts.resource] });
  if (mandate.status !== 201) throw new Error(`mandate for ${agent.spiffeId}: ${mandate.status} ${JSON.stringify(mandate.body)}`);
  const signer = await DpopSigner.generate();
  const res = await oauthPost(m.url, mandateExchange(mandate.body.id, await agent.jwtSvid([m.issuer]), { resource: opts.resource }), { dpop: signer });
  if (res.status !== 200) throw new Error(`token exchange: ${res.status} ${JSON.stringify(res.body)}`);
  return { signer, token: res.body.access_token, mandateId: mandate.body.id };
}
