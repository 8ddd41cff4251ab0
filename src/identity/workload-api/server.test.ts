import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { generateRootCa } from '../ca/generate.ts';
import { signingCa, type SigningCa } from '../ca/authority-key.ts';
import { issueX509Svid } from '../x509-svid/issue.ts';
import { assertKeyMatches } from '../x509-svid/parse.ts';
import { verifyX509Svid } from '../x509-svid/verify.ts';
import { parseSpiffeId } from '../spiffe-id/parse.ts';
import { parseJwtBundle, parseSpiffeBundle } from '../bundle/parse.ts';
import { TrustBundleSet } from '../bundle/set.ts';
import { verifyJwtSvid } from '../jwt-svid/verify.ts';
import { generateKeyAndCsr } from '../../sdk/identity/csr.ts';
import { isMandateError } from '../../errors.ts';
import { startWorkloadApi, type WorkloadApiServer } from './server.ts';
import type { SvidSource, WorkloadIdentity } from './source.ts';
import { fromStruct, type ProtoStruct } from './struct.ts';

// ---------- a real CA and a test source ----------

interface TrustDomainFixture {
  name: string;
  ca: SigningCa;
  jwtKey: KeyObject | CryptoKey;
  kid: string;
  bundleJson: unknown;
}

async function trustDomain(name: string): Promise<TrustDomainFixture> {
  const root = await generateRootCa({ trustDomain: name, keyType: 'ec-p256', ttlSeconds: 3600 });
  const ca = await signingCa(`${name}-root`, root.certificate, [], [root.certificate], root.privateKey);
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = `${name}-jwt-1`;
  const jwk = { ...(await exportJWK(publicKey)), kid, use: 'jwt-svid' };
  const x509Entry = { ...root.certificate.publicKey.export({ format: 'jwk' }), use: 'x509-svid', x5c: [root.certificate.raw.toString('base64')] };
  return { name, ca, jwtKey: privateKey, kid, bundleJson: { keys: [x509Entry, jwk] } };
}

async function identity(own: TrustDomainFixture, federated: TrustDomainFixture, spiffeId: string): Promise<WorkloadIdentity> {
  const { privateKey, csrPem } = await generateKeyAndCsr('ec-p256');
  const svid = await issueX509Svid(own.ca, { csr: csrPem, spiffeId: parseSpiffeId(spiffeId), ttlSeconds: 600 });
  const bundles = new TrustBundleSet();
  bundles.set(parseSpiffeBundle(own.bundleJson, own.name));
  bundles.set(parseSpiffeBundle(federated.bundleJson, federated.name));
  return { spiffeId, chain: svid.chain, privateKey, bundles, trustDomain: own.name };
}

async function jwtSvid(td: TrustDomainFixture, sub: string, aud: string[], extra: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ ...extra, sub, aud })
    .setProtectedHeader({ alg: 'ES256', kid: td.kid, typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(td.jwtKey);
}

class TestSource implements SvidSource {
  id: WorkloadIdentity | null;
  readonly listeners = new Set<(id: WorkloadIdentity) => void>();
  readonly td: TrustDomainFixture;

  constructor(id: WorkloadIdentity | null, td: TrustDomainFixture) {
    this.id = id;
    this.td = td;
  }
  current(): WorkloadIdentity | null {
    return this.id;
  }
  onUpdate(listener: (id: WorkloadIdentity) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  push(id: WorkloadIdentity): void {
    this.id = id;
    for (const l of this.listeners) l(id);
  }
  async fetchJwtSvid(audience: string[]): Promise<{ spiffeId: string; token: string }> {
    const id = this.id as WorkloadIdentity;
    return { spiffeId: id.spiffeId, token: await jwtSvid(this.td, id.spiffeId, audience) };
  }
}

// ---------- a client generated from the proto, independent of the server's loader ----------

type Client = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

function newClient(socketPath: string): Client {
  const definition = protoLoader.loadSync(join(process.cwd(), 'proto/workloadapi.proto'), { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const Ctor = grpc.loadPackageDefinition(definition).SpiffeWorkloadAPI as grpc.ServiceClientConstructor;
  return new Ctor(`unix:${socketPath}`, grpc.credentials.createInsecure()) as unknown as Client;
}

function header(value = 'true'): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', value);
  return md;
}

const STREAMS = ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTBundles', 'FetchWITSVID', 'FetchWITBundles'] as const;

function openStream(client: Client, rpc: string, md = header()): grpc.ClientReadableStream<Record<string, unknown>> {
  return client[rpc]!({}, md) as grpc.ClientReadableStream<Record<string, unknown>>;
}

/** Collects messages; `next()` resolves with the next one, `status` with the final status. */
function reader(stream: grpc.ClientReadableStream<Record<string, unknown>>) {
  const queue: Record<string, unknown>[] = [];
  const waiting: ((m: Record<string, unknown>) => void)[] = [];
  stream.on('data', (m: Record<string, unknown>) => {
    const w = waiting.shift();
    if (w) w(m);
    else queue.push(m);
  });
  const status = new Promise<grpc.StatusObject>((resolve) => {
    stream.on('status', resolve);
    stream.on('error', () => undefined); // the status event carries the code
  });
  return {
    next: (): Promise<Record<string, unknown>> => new Promise((resolve) => {
      const m = queue.shift();
      if (m) resolve(m);
      else waiting.push(resolve);
    }),
    status,
  };
}

function unary(client: Client, rpc: string, request: Record<string, unknown>, md = header()): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    client[rpc]!(request, md, (err: grpc.ServiceError | null, res: Record<string, unknown>) => (err ? reject(err) : resolve(res)));
  });
}

async function unaryStatus(client: Client, rpc: string, request: Record<string, unknown>, md = header()): Promise<grpc.ServiceError> {
  try {
    await unary(client, rpc, request, md);
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error(`${rpc} succeeded but an error was expected`);
}

/** Splits concatenated DER certificates. */
function splitDer(buf: Buffer): X509Certificate[] {
  const out: X509Certificate[] = [];
  let i = 0;
  while (i < buf.length) {
    assert.equal(buf[i], 0x30, 'each certificate starts with a SEQUENCE');
    let len = buf[i + 1] as number;
    let headerLength = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let k = 0; k < n; k++) len = len * 256 + (buf[i + 2 + k] as number);
      headerLength += n;
    }
    out.push(new X509Certificate(buf.subarray(i, i + headerLength + len)));
    i += headerLength + len;
  }
  return out;
}

const AGENT_ID = 'spiffe://example.org/agent/triage-bot';

// ---------- tests ----------

describe('SPIFFE Workload API server', { timeout: 60_000 }, () => {
  let dir: string;
  let socketPath: string;
  let own: TrustDomainFixture;
  let partner: TrustDomainFixture;
  let source: TestSource;
  let server: WorkloadApiServer;
  let client: Client;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mandate-wl-'));
    socketPath = join(dir, 'agent.sock');
    own = await trustDomain('example.org');
    partner = await trustDomain('partner.example');
    source = new TestSource(await identity(own, partner, AGENT_ID), own);
    server = await startWorkloadApi({ socketPath, source });
    client = newClient(socketPath);
  });

  after(async () => {
    client.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the socket is created owner-only (0600)', () => {
    const stat = statSync(socketPath);
    assert.ok(stat.isSocket());
    assert.equal(stat.mode & 0o777, 0o600);
  });

  test('every RPC without the security header is InvalidArgument', async () => {
    for (const md of [new grpc.Metadata(), header('True'), header('false')]) {
      for (const rpc of STREAMS) {
        const { status } = reader(openStream(client, rpc, md));
        const s = await status;
        assert.equal(s.code, grpc.status.INVALID_ARGUMENT, rpc);
        assert.match(s.details, /workload\.spiffe\.io/);
      }
      for (const [rpc, req] of [['FetchJWTSVID', { audience: ['a'] }], ['ValidateJWTSVID', { audience: 'a', svid: 'x.y.z' }]] as const) {
        const err = await unaryStatus(client, rpc, req, md);
        assert.equal(err.code, grpc.status.INVALID_ARGUMENT, rpc);
        assert.match(err.details, /workload\.spiffe\.io/);
      }
    }
  });

  test('a duplicated security header is InvalidArgument', async () => {
    const md = header();
    md.add('workload.spiffe.io', 'true');
    const err = await unaryStatus(client, 'FetchJWTSVID', { audience: ['a'] }, md);
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
  });

  test('FetchX509SVID sends the SVID, its key and the bundles at once', async () => {
    const stream = openStream(client, 'FetchX509SVID');
    const first = await reader(stream).next();
    stream.cancel();
    const svids = first.svids as Record<string, unknown>[];
    assert.equal(svids.length, 1);
    const svid = svids[0] as { spiffe_id: string; x509_svid: Buffer; x509_svid_key: Buffer; bundle: Buffer; hint: string };
    assert.equal(svid.spiffe_id, AGENT_ID);
    assert.equal(svid.hint, '');

    const chain = splitDer(svid.x509_svid);
    const expected = source.current() as WorkloadIdentity;
    assert.deepEqual(chain.map((c) => c.fingerprint256), expected.chain.map((c) => c.fingerprint256));
    const key = createPrivateKey({ key: svid.x509_svid_key, format: 'der', type: 'pkcs8' });
    assertKeyMatches(chain[0] as X509Certificate, key);

    const anchors = splitDer(svid.bundle);
    assert.deepEqual(anchors.map((c) => c.fingerprint256), [own.ca.certificate.fingerprint256]);
    const federated = first.federated_bundles as Record<string, Buffer>;
    assert.deepEqual(Object.keys(federated), ['spiffe://partner.example']);
    assert.deepEqual(splitDer(federated['spiffe://partner.example'] as Buffer).map((c) => c.fingerprint256), [partner.ca.certificate.fingerprint256]);
    assert.deepEqual(first.crl, []);

    // What the workload received is enough to verify its own SVID.
    const set = new TrustBundleSet();
    set.set({ trustDomain: 'example.org', x509Authorities: anchors, jwtAuthorities: new Map() });
    assert.equal(verifyX509Svid(chain, set).spiffeId.toString(), AGENT_ID);
  });

  test('FetchX509SVID pushes a complete new response on every update', async () => {
    const stream = openStream(client, 'FetchX509SVID');
    const r = reader(stream);
    const first = await r.next();
    const rotated = await identity(own, partner, AGENT_ID);
    source.push(rotated);
    const second = await r.next();
    stream.cancel();
    const leafOf = (m: Record<string, unknown>) => splitDer(((m.svids as Record<string, Buffer>[])[0] as Record<string, Buffer>).x509_svid as Buffer)[0] as X509Certificate;
    assert.notEqual(leafOf(first).serialNumber, leafOf(second).serialNumber);
    assert.equal(leafOf(second).fingerprint256, (rotated.chain[0] as X509Certificate).fingerprint256);
    assert.deepEqual(Object.keys(second.federated_bundles as object), ['spiffe://partner.example']);
    const key = createPrivateKey({ key: ((second.svids as Record<string, Buffer>[])[0] as Record<string, Buffer>).x509_svid_key as Buffer, format: 'der', type: 'pkcs8' });
    assertKeyMatches(leafOf(second), key);
  });

  test('FetchX509Bundles sends own and federated CAs keyed by trust domain SPIFFE ID, and updates', async () => {
    const stream = openStream(client, 'FetchX509Bundles');
    const r = reader(stream);
    const first = await r.next();
    const bundles = first.bundles as Record<string, Buffer>;
    assert.deepEqual(Object.keys(bundles).sort(), ['spiffe://example.org', 'spiffe://partner.example']);
    assert.equal(splitDer(bundles['spiffe://example.org'] as Buffer)[0]?.fingerprint256, own.ca.certificate.fingerprint256);
    assert.equal(splitDer(bundles['spiffe://partner.example'] as Buffer)[0]?.fingerprint256, partner.ca.certificate.fingerprint256);

    // A federation ends: the next message no longer carries that trust domain (§4.4 redaction).
    const current = source.current() as WorkloadIdentity;
    const ownOnly = new TrustBundleSet();
    ownOnly.set(current.bundles.get('example.org')!);
    source.push({ ...current, bundles: ownOnly });
    const second = await r.next();
    stream.cancel();
    assert.deepEqual(Object.keys(second.bundles as object), ['spiffe://example.org']);
    source.push(current);
  });

  test('FetchJWTBundles sends JWKS documents of JWT-SVID keys only', async () => {
    const stream = openStream(client, 'FetchJWTBundles');
    const first = await reader(stream).next();
    stream.cancel();
    const bundles = first.bundles as Record<string, Buffer>;
    assert.deepEqual(Object.keys(bundles).sort(), ['spiffe://example.org', 'spiffe://partner.example']);
    const jwks = JSON.parse((bundles['spiffe://example.org'] as Buffer).toString('utf8')) as { keys: Record<string, unknown>[] };
    assert.equal(jwks.keys.length, 1);
    assert.equal(jwks.keys[0]?.kid, own.kid);
    assert.equal(jwks.keys[0]?.use, 'jwt-svid');
    assert.ok(jwks.keys.every((k) => k.x5c === undefined && k.d === undefined));
    const parsed = parseJwtBundle(bundles['spiffe://partner.example'] as Buffer, 'partner.example');
    assert.deepEqual([...parsed.jwtAuthorities.keys()], [partner.kid]);
  });

  test('FetchJWTSVID returns a JWT-SVID for the audience', async () => {
    const res = await unary(client, 'FetchJWTSVID', { audience: ['https://api.example.org'] });
    const svids = res.svids as { spiffe_id: string; svid: string; hint: string }[];
    assert.equal(svids.length, 1);
    assert.equal(svids[0]?.spiffe_id, AGENT_ID);
    const verified = await verifyJwtSvid(svids[0]?.svid as string, (source.current() as WorkloadIdentity).bundles, { audience: 'https://api.example.org' });
    assert.equal(verified.spiffeId.toString(), AGENT_ID);

    const same = await unary(client, 'FetchJWTSVID', { audience: ['https://api.example.org'], spiffe_id: AGENT_ID });
    assert.equal((same.svids as unknown[]).length, 1);
  });

  test('FetchJWTSVID checks audience and spiffe_id', async () => {
    assert.equal((await unaryStatus(client, 'FetchJWTSVID', { audience: [] })).code, grpc.status.INVALID_ARGUMENT);
    assert.equal((await unaryStatus(client, 'FetchJWTSVID', { audience: [''] })).code, grpc.status.INVALID_ARGUMENT);
    assert.equal((await unaryStatus(client, 'FetchJWTSVID', { audience: ['a'], spiffe_id: 'spiffe://example.org/agent/other' })).code, grpc.status.PERMISSION_DENIED);
    assert.equal((await unaryStatus(client, 'FetchJWTSVID', { audience: ['a'], spiffe_id: 'not a spiffe id' })).code, grpc.status.INVALID_ARGUMENT);
  });

  test('ValidateJWTSVID accepts a valid token and returns its claims', async () => {
    const token = await jwtSvid(own, 'spiffe://example.org/agent/caller', ['spiffe://example.org/agent/triage-bot'], { scope: ['read', 'write'], n: 3, nested: { ok: true, none: null } });
    const res = await unary(client, 'ValidateJWTSVID', { audience: 'spiffe://example.org/agent/triage-bot', svid: token });
    assert.equal(res.spiffe_id, 'spiffe://example.org/agent/caller');
    const claims = fromStruct(res.claims as ProtoStruct);
    assert.equal(claims.sub, 'spiffe://example.org/agent/caller');
    assert.deepEqual(claims.aud, ['spiffe://example.org/agent/triage-bot']);
    assert.equal(typeof claims.exp, 'number');
    assert.deepEqual(claims.scope, ['read', 'write']);
    assert.equal(claims.n, 3);
    assert.deepEqual(claims.nested, { ok: true, none: null });
  });

  test('ValidateJWTSVID uses the bundle of the subject\'s own trust domain', async () => {
    const federated = await jwtSvid(partner, 'spiffe://partner.example/agent/peer', ['aud-1']);
    const res = await unary(client, 'ValidateJWTSVID', { audience: 'aud-1', svid: federated });
    assert.equal(res.spiffe_id, 'spiffe://partner.example/agent/peer');

    // Signed by example.org's key but claiming a partner.example subject: partner's bundle must vouch.
    const crossSigned = await jwtSvid(own, 'spiffe://partner.example/agent/peer', ['aud-1']);
    const err = await unaryStatus(client, 'ValidateJWTSVID', { audience: 'aud-1', svid: crossSigned });
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.match(err.details, /ERR_JWT_SVID_INVALID/);
  });

  test('ValidateJWTSVID refuses invalid tokens, wrong audiences and missing fields with InvalidArgument', async () => {
    const token = await jwtSvid(own, 'spiffe://example.org/agent/caller', ['aud-1']);
    const [h, p, s] = token.split('.') as [string, string, string];
    const tampered = `${h}.${p}.${(s[0] === 'A' ? 'B' : 'A') + s.slice(1)}`;
    const bad = await unaryStatus(client, 'ValidateJWTSVID', { audience: 'aud-1', svid: tampered });
    assert.equal(bad.code, grpc.status.INVALID_ARGUMENT);
    assert.match(bad.details, /signature/);

    const wrongAud = await unaryStatus(client, 'ValidateJWTSVID', { audience: 'aud-2', svid: token });
    assert.equal(wrongAud.code, grpc.status.INVALID_ARGUMENT);
    assert.match(wrongAud.details, /ERR_JWT_SVID_AUDIENCE/);

    const garbage = await unaryStatus(client, 'ValidateJWTSVID', { audience: 'aud-1', svid: 'not-a-jwt' });
    assert.equal(garbage.code, grpc.status.INVALID_ARGUMENT);

    assert.equal((await unaryStatus(client, 'ValidateJWTSVID', { audience: '', svid: token })).code, grpc.status.INVALID_ARGUMENT);
    assert.equal((await unaryStatus(client, 'ValidateJWTSVID', { audience: 'aud-1', svid: '' })).code, grpc.status.INVALID_ARGUMENT);
  });

  test('WIT-SVID RPCs are Unimplemented', async () => {
    for (const rpc of ['FetchWITSVID', 'FetchWITBundles']) {
      const s = await reader(openStream(client, rpc)).status;
      assert.equal(s.code, grpc.status.UNIMPLEMENTED, rpc);
    }
  });

  test('without an identity, streams and JWT-SVID fetches are Unavailable', async () => {
    const saved = source.id;
    source.id = null;
    try {
      for (const rpc of ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTBundles']) {
        assert.equal((await reader(openStream(client, rpc)).status).code, grpc.status.UNAVAILABLE, rpc);
      }
      assert.equal((await unaryStatus(client, 'FetchJWTSVID', { audience: ['a'] })).code, grpc.status.UNAVAILABLE);
    } finally {
      source.id = saved;
    }
  });
});

/** Leaves a stale socket file behind: a process listening on it is killed without cleanup. */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('ready'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

describe('Workload API socket handling', { timeout: 60_000 }, () => {
  let dir: string;
  let source: TestSource;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mandate-wl-'));
    const td = await trustDomain('example.org');
    source = new TestSource(await identity(td, await trustDomain('partner.example'), AGENT_ID), td);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a stale socket is replaced; open streams end with OK on close; the socket is removed', async () => {
    const socketPath = join(dir, 'stale.sock');
    await staleSocket(socketPath);
    assert.ok(statSync(socketPath).isSocket());

    const server = await startWorkloadApi({ socketPath, source });
    assert.equal(statSync(socketPath).mode & 0o777, 0o600);
    const client = newClient(socketPath);
    const r = reader(openStream(client, 'FetchX509SVID'));
    await r.next();
    await server.close();
    assert.equal((await r.status).code, grpc.status.OK);
    client.close();
    assert.throws(() => statSync(socketPath), /ENOENT/);
    await server.close(); // idempotent
  });

  test('a socket another process serves is refused', async () => {
    const socketPath = join(dir, 'live.sock');
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(socketPath, resolve));
    try {
      await assert.rejects(startWorkloadApi({ socketPath, source }), (err) => isMandateError(err, 'ERR_CONFLICT'));
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  });

  test('a path that exists and is not a socket is refused and left alone', async () => {
    const socketPath = join(dir, 'file.sock');
    writeFileSync(socketPath, 'not a socket');
    await assert.rejects(startWorkloadApi({ socketPath, source }), (err) => isMandateError(err, 'ERR_CONFIG_INVALID') && /not a socket/.test(err.message));
    assert.equal(statSync(socketPath).isFile(), true);
  });
});
