/**
 * Scenario: `mandate agent` against a real Mandate server. The agent attests with a join token, serves
 * the SPIFFE Workload API on a Unix socket, and a gRPC client built from the standard's proto fetches an
 * X.509-SVID and a JWT-SVID that verify against the server's bundle.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { parseSpiffeBundle } from '../../src/identity/bundle/parse.ts';
import { TrustBundleSet } from '../../src/identity/bundle/set.ts';
import { verifyJwtSvid } from '../../src/identity/jwt-svid/verify.ts';
import { verifyX509Svid } from '../../src/identity/x509-svid/verify.ts';
import { assertKeyMatches } from '../../src/identity/x509-svid/parse.ts';
import { startWorkloadAgent } from '../../src/identity/workload-agent/agent.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const AGENT = 'spiffe://example.org/agent/triage-bot';
type Client = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

function derChain(der: Buffer): X509Certificate[] {
  const certs: X509Certificate[] = [];
  let offset = 0;
  while (offset < der.length) {
    // each certificate is one DER SEQUENCE with a long-form length
    const lenBytes = (der[offset + 1] as number) & 0x7f;
    const len = [...der.subarray(offset + 2, offset + 2 + lenBytes)].reduce((a, b) => a * 256 + b, 0);
    const end = offset + 2 + lenBytes + len;
    certs.push(new X509Certificate(der.subarray(offset, end)));
    offset = end;
  }
  return certs;
}

describe('mandate agent with the real server', () => {
  let m: TestMandate;
  let agent: Awaited<ReturnType<typeof startWorkloadAgent>>;
  let client: Client;
  const socketPath = join(mkdtempSync(join(tmpdir(), 'mandate-agent-')), 'agent.sock');
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');

  before(async () => {
    m = await startTestMandate();
    await m.admin('POST', '/admin/v1/entries', { id: 'bot', spiffe_id: AGENT });
    const { token } = (await m.admin('POST', '/admin/v1/join-tokens', { entry_id: 'bot' })).body;
    agent = await startWorkloadAgent({ serverUrl: m.url, attestation: { type: 'join_token', token }, socketPath, logger: silentLogger() });
    const definition = protoLoader.loadSync(join(process.cwd(), 'proto/workloadapi.proto'), { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
    const Ctor = grpc.loadPackageDefinition(definition).SpiffeWorkloadAPI as grpc.ServiceClientConstructor;
    client = new Ctor(`unix:${socketPath}`, grpc.credentials.createInsecure()) as unknown as Client;
  });
  after(async () => {
    client?.close();
    await agent?.stop();
    await m?.close();
  });

  async function bundles(): Promise<TrustBundleSet> {
    const set = new TrustBundleSet();
    set.set(parseSpiffeBundle((await m.call('GET', '/bundle')).body, 'example.org'));
    return set;
  }

  it('serves the socket with mode 0600', () => {
    assert.equal(statSync(socketPath).mode & 0o777, 0o600);
  });

  it('streams an X.509-SVID whose key matches and which verifies against the server bundle', async () => {
    const first = await new Promise<Record<string, any>>((resolve, reject) => {
      const stream = client.FetchX509SVID!({}, md) as grpc.ClientReadableStream<Record<string, any>>;
      stream.once('data', (msg) => { resolve(msg); stream.cancel(); });
      stream.on('error', (err: grpc.ServiceError) => { if (err.code !== grpc.status.CANCELLED) reject(err); });
    });
    const svid = first.svids[0];
    assert.equal(svid.spiffe_id, AGENT);
    const chain = derChain(svid.x509_svid);
    assertKeyMatches(chain[0] as X509Certificate, createPrivateKey({ key: svid.x509_svid_key, format: 'der', type: 'pkcs8' }));
    assert.equal(verifyX509Svid(chain, await bundles()).spiffeId.toString(), AGENT);
  });

  it('fetches a JWT-SVID that the server bundle validates', async () => {
    const res = await new Promise<Record<string, any>>((resolve, reject) =>
      client.FetchJWTSVID!({ audience: ['mcp-gateway'] }, md, (err: Error | null, r: Record<string, any>) => (err ? reject(err) : resolve(r))));
    assert.equal(res.svids[0].spiffe_id, AGENT);
    const verified = await verifyJwtSvid(res.svids[0].svid, await bundles(), { audience: 'mcp-gateway' });
    assert.equal(verified.spiffeId.toString(), AGENT);
  });
});
