import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { isMandateError } from '../../errors.ts';
import { generateKeyAndCsr } from '../../sdk/identity/csr.ts';
import { TrustBundleSet } from '../bundle/set.ts';
import { issueX509Svid } from '../x509-svid/issue.ts';
import { assertKeyMatches, parseX509Svid } from '../x509-svid/parse.ts';
import { parseCertificates } from '../x509/pem.ts';
import { workloadApiClientConstructor } from '../workload-api/proto.ts';
import type { WorkloadIdentity } from '../workload-api/source.ts';
import { startWorkloadAgent } from './agent.ts';
import { writeIdentityFiles } from './files.ts';
import { MandateServerFixture } from './mandate-server.fixture.ts';
import { MIN_RENEW_DELAY_MS, refreshDelay, renewAt, renewalDelay, retryDelay, RETRY_MAX_MS, withJitter } from './schedule.ts';

const T0 = new Date('2030-01-01T00:00:00Z');
const at = (seconds: number): Date => new Date(T0.getTime() + seconds * 1000);

describe('rotation schedule', () => {
  test('renewAt is the half-life', () => {
    assert.deepEqual(renewAt(T0, at(3600)), at(1800));
    assert.deepEqual(renewAt(at(-10), at(590)), at(290));
  });

  test('renewalDelay counts the half-life from receipt when notBefore is backdated', () => {
    // Issued with notBefore 10 s in the past and 60 s to live: renew 30 s after receipt, not 25 s.
    assert.equal(renewalDelay(at(-10), at(60), T0), 30_000);
    // Received late (clock skew): never sooner than the minimum delay.
    assert.equal(renewalDelay(at(-100), at(-1), T0), MIN_RENEW_DELAY_MS);
    assert.equal(renewalDelay(T0, at(3600), T0), 1_800_000);
  });

  test('retries back off exponentially, at most a minute and half the remaining life', () => {
    assert.deepEqual([1, 2, 3, 4].map((n) => retryDelay(n, 3_600_000)), [1000, 2000, 4000, 8000]);
    assert.equal(retryDelay(20, 3_600_000), RETRY_MAX_MS);
    assert.equal(retryDelay(10, 8000), 4000);
    assert.equal(retryDelay(3, 100), 500);
    assert.equal(withJitter(1000, 0), 900);
    assert.equal(withJitter(1000, 1), 1100);
  });

  test('refresh hints are clamped; no hint means no timer', () => {
    assert.equal(refreshDelay(300), 300_000);
    assert.equal(refreshDelay(1), 10_000);
    assert.equal(refreshDelay(10 ** 9), 86_400_000);
    assert.equal(refreshDelay(undefined), null);
    assert.equal(refreshDelay(0), null);
  });
});

async function identityFrom(fixture: MandateServerFixture, federated: boolean): Promise<WorkloadIdentity> {
  const { privateKey, csrPem } = await generateKeyAndCsr();
  const svid = await issueX509Svid(fixture.own.ca, { csr: csrPem, spiffeId: fixture.spiffeId, ttlSeconds: 600 });
  const bundles = new TrustBundleSet();
  bundles.set(fixture.own.bundle);
  if (federated) bundles.set(fixture.partner.bundle);
  return { spiffeId: fixture.spiffeId.toString(), chain: svid.chain, privateKey, bundles, trustDomain: 'example.org' };
}

describe('identity files', () => {
  let fixture: MandateServerFixture;
  let dir: string;
  before(async () => {
    fixture = await MandateServerFixture.start();
    dir = mkdtempSync(join(tmpdir(), 'mandate-files-'));
  });
  after(async () => {
    await fixture.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('svid.pem, svid.key (0600), bundle.pem and federated/<td>.pem hold the identity', async () => {
    const id = await identityFrom(fixture, true);
    const outDir = join(dir, 'out');
    await writeIdentityFiles(outDir, id);
    const svid = parseX509Svid(readFileSync(join(outDir, 'svid.pem'), 'utf8'), readFileSync(join(outDir, 'svid.key'), 'utf8'));
    assert.equal(svid.spiffeId.toString(), id.spiffeId);
    assert.deepEqual(svid.chain.map((c) => c.fingerprint256), id.chain.map((c) => c.fingerprint256));
    assert.equal(statSync(join(outDir, 'svid.key')).mode & 0o777, 0o600);
    assert.equal(parseCertificates(readFileSync(join(outDir, 'bundle.pem'), 'utf8'))[0]?.fingerprint256, fixture.own.ca.certificate.fingerprint256);
    assert.equal(parseCertificates(readFileSync(join(outDir, 'federated', 'partner.example.pem'), 'utf8'))[0]?.fingerprint256, fixture.partner.ca.certificate.fingerprint256);
    assert.deepEqual(readdirSync(outDir).sort(), ['bundle.pem', 'federated', 'svid.key', 'svid.pem']);
  });

  test('a rewrite replaces the files and withdraws federated bundles no longer trusted', async () => {
    const outDir = join(dir, 'rewrite');
    await writeIdentityFiles(outDir, await identityFrom(fixture, true));
    writeFileSync(join(outDir, 'federated', 'gone.example.pem'), 'stale');
    const next = await identityFrom(fixture, false);
    await writeIdentityFiles(outDir, next);
    assert.deepEqual(readdirSync(join(outDir, 'federated')), []);
    const key = createPrivateKey(readFileSync(join(outDir, 'svid.key'), 'utf8'));
    assertKeyMatches(next.chain[0] as X509Certificate, key);
    assert.ok(readdirSync(outDir).every((name) => !name.includes('.tmp-')));
  });
});

type WorkloadClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

function header(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  return md;
}

function fetchJwt(client: WorkloadClient, audience: string[]): Promise<{ svids: { spiffe_id: string; svid: string }[] }> {
  return new Promise((resolve, reject) => {
    client.FetchJWTSVID!({ audience }, header(), (err: grpc.ServiceError | null, res: { svids: { spiffe_id: string; svid: string }[] }) => (err ? reject(err) : resolve(res)));
  });
}

/** The first certificate of concatenated DER certificates (the leaf of an x509_svid chain). */
function firstDerCertificate(der: Buffer): X509Certificate {
  let length = der[1] as number;
  let headerLength = 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    length = 0;
    for (let k = 0; k < n; k++) length = length * 256 + (der[2 + k] as number);
    headerLength += n;
  }
  return new X509Certificate(der.subarray(0, headerLength + length));
}

/** Resolves with the leaf of each FetchX509SVID message, and with the final status. */
function watchX509(client: WorkloadClient) {
  const stream = client.FetchX509SVID!({}, header()) as grpc.ClientReadableStream<{ svids: { x509_svid: Buffer; x509_svid_key: Buffer }[] }>;
  const messages: { leaf: X509Certificate; key: Buffer }[] = [];
  const waiters: (() => void)[] = [];
  stream.on('data', (m) => {
    const svid = m.svids[0]!;
    messages.push({ leaf: firstDerCertificate(svid.x509_svid), key: svid.x509_svid_key });
    waiters.splice(0).forEach((w) => w());
  });
  stream.on('error', () => undefined);
  const status = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
  return {
    stream,
    messages,
    status,
    until: (count: number): Promise<void> => new Promise((resolve) => {
      const check = (): void => (messages.length >= count ? resolve() : void waiters.push(check));
      check();
    }),
  };
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 50));
}

describe('workload agent against the identity API contract', { concurrency: true, timeout: 90_000 }, () => {
  test('attests once, serves the Workload API and files, rotates at half-life with SVID-PoP', async () => {
    const fixture = await MandateServerFixture.start({ svidTtlSeconds: 4 });
    const dir = mkdtempSync(join(tmpdir(), 'mandate-agent-'));
    const socketPath = join(dir, 'agent.sock');
    const outDir = join(dir, 'svid');
    let offsetMs = 0;
    const agent = await startWorkloadAgent({
      serverUrl: fixture.url,
      attestation: { type: 'join_token', token: fixture.joinToken },
      socketPath,
      outDir,
      now: () => new Date(Date.now() + offsetMs),
    });
    const Client = workloadApiClientConstructor();
    const client = new Client(`unix:${socketPath}`, grpc.credentials.createInsecure()) as unknown as WorkloadClient;
    try {
      const first = agent.current();
      assert.equal(first?.spiffeId, 'spiffe://example.org/agent/triage-bot');
      assert.equal(statSync(socketPath).mode & 0o777, 0o600);
      assert.equal(parseCertificates(readFileSync(join(outDir, 'svid.pem'), 'utf8'))[0]?.fingerprint256, first?.chain[0]?.fingerprint256);

      const watch = watchX509(client);
      await watch.until(1);
      assert.equal(watch.messages[0]?.leaf.fingerprint256, first?.chain[0]?.fingerprint256);

      // Rotation: a new SVID for a new key, pushed on the open stream and written to disk.
      await watch.until(2);
      const [m1, m2] = watch.messages as [{ leaf: X509Certificate; key: Buffer }, { leaf: X509Certificate; key: Buffer }];
      assert.notEqual(m2.leaf.fingerprint256, m1.leaf.fingerprint256);
      assert.ok(!m2.key.equals(m1.key), 'a new key is generated for every renewal');
      assertKeyMatches(m2.leaf, createPrivateKey({ key: m2.key, format: 'der', type: 'pkcs8' }));
      assert.equal(fixture.calls.attest, 1, 'the join token is used once; renewals use SVID-PoP');
      assert.ok(fixture.calls.renew >= 1);
      await until(() => parseCertificates(readFileSync(join(outDir, 'svid.pem'), 'utf8'))[0]?.fingerprint256 !== m1.leaf.fingerprint256);
      watch.stream.cancel();

      // JWT-SVIDs through the Workload API, reused while fresh.
      const jwt = await fetchJwt(client, ['https://api.example.org']);
      assert.equal(jwt.svids[0]?.spiffe_id, 'spiffe://example.org/agent/triage-bot');
      const again = await fetchJwt(client, ['https://api.example.org']);
      assert.equal(again.svids[0]?.svid, jwt.svids[0]?.svid);
      assert.equal(fixture.calls.jwt, 1);

      assert.ok(fixture.bodies.every((b) => !b.includes('PRIVATE KEY')), 'the private key never leaves the agent');

      // Past notAfter (by the agent's clock) there is no identity to serve.
      offsetMs = 3_600_000;
      assert.equal(agent.current(), null);
    } finally {
      client.close();
      await agent.stop();
      await fixture.close();
    }
    assert.equal(existsSync(socketPath), false, 'stop removes the socket');
    rmSync(dir, { recursive: true, force: true });
  });

  test('when renewal fails it keeps serving the current SVID, then stops serving at expiry', async () => {
    const fixture = await MandateServerFixture.start({ svidTtlSeconds: 8 });
    fixture.failRenewals = Number.MAX_SAFE_INTEGER;
    const dir = mkdtempSync(join(tmpdir(), 'mandate-agent-'));
    const socketPath = join(dir, 'agent.sock');
    const agent = await startWorkloadAgent({ serverUrl: fixture.url, attestation: { type: 'join_token', token: fixture.joinToken }, socketPath });
    const Client = workloadApiClientConstructor();
    const client = new Client(`unix:${socketPath}`, grpc.credentials.createInsecure()) as unknown as WorkloadClient;
    try {
      const held = agent.current();
      const watch = watchX509(client);
      await watch.until(1);
      await until(() => fixture.calls.renewRefused >= 2);
      // Refused twice, retried with backoff, and still serving the SVID it holds.
      assert.equal(agent.current()?.chain[0]?.fingerprint256, held?.chain[0]?.fingerprint256);
      // At expiry the stream ends with Unavailable and nothing more is served.
      const status = await watch.status;
      assert.equal(status.code, grpc.status.UNAVAILABLE);
      assert.equal(watch.messages.length, 1);
      assert.equal(agent.current(), null);
      await assert.rejects(fetchJwt(client, ['a']), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
    } finally {
      client.close();
      await agent.stop();
      await fixture.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('bundles are refreshed at the refresh hint and a withdrawn federation is pushed and unlinked', async () => {
    // The hint of 1 s is clamped to the 10 s minimum, so this test waits about ten seconds.
    const fixture = await MandateServerFixture.start({ refreshHintSeconds: 1 });
    const dir = mkdtempSync(join(tmpdir(), 'mandate-agent-'));
    const outDir = join(dir, 'svid');
    const agent = await startWorkloadAgent({ serverUrl: fixture.url, attestation: { type: 'join_token', token: fixture.joinToken }, outDir });
    try {
      assert.deepEqual(agent.current()?.bundles.all().map((b) => b.trustDomain).sort(), ['example.org', 'partner.example']);
      assert.ok(existsSync(join(outDir, 'federated', 'partner.example.pem')));
      const updated = new Promise<WorkloadIdentity>((resolve) => agent.onUpdate(resolve));
      fixture.federated = false;
      const next = await updated;
      assert.ok(fixture.calls.bundles >= 1);
      assert.deepEqual(next.bundles.all().map((b) => b.trustDomain), ['example.org']);
      assert.equal(next.chain[0]?.fingerprint256, agent.current()?.chain[0]?.fingerprint256, 'the SVID is unchanged');
      await until(() => !existsSync(join(outDir, 'federated', 'partner.example.pem')));
    } finally {
      await agent.stop();
      await fixture.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a failed start rejects with the precise code, leaves nothing running and spends no join token on bad config', async () => {
    const fixture = await MandateServerFixture.start();
    const dir = mkdtempSync(join(tmpdir(), 'mandate-agent-'));
    const socketPath = join(dir, 'agent.sock');
    try {
      await assert.rejects(
        startWorkloadAgent({ serverUrl: fixture.url, attestation: { type: 'join_token', token: 'wrong' }, socketPath }),
        (err) => isMandateError(err, 'ERR_JOIN_TOKEN_INVALID'),
      );
      assert.equal(existsSync(socketPath), false);

      // Configuration errors surface before the (single-use) join token is spent.
      const attests = fixture.calls.attest;
      const notADir = join(dir, 'file');
      writeFileSync(notADir, '');
      await assert.rejects(
        startWorkloadAgent({ serverUrl: fixture.url, attestation: { type: 'join_token', token: fixture.joinToken }, outDir: join(notADir, 'svid') }),
        (err) => isMandateError(err, 'ERR_CONFIG_INVALID'),
      );
      await assert.rejects(
        startWorkloadAgent({ serverUrl: fixture.url, attestation: { type: 'join_token', token: fixture.joinToken }, socketPath: notADir }),
        (err) => isMandateError(err, 'ERR_CONFIG_INVALID'),
      );
      assert.equal(fixture.calls.attest, attests);
    } finally {
      await fixture.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
