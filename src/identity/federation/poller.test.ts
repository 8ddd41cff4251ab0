import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isMandateError, type ErrorCode, type MandateError } from '../../errors.ts';
import type { Bundle } from '../bundle/bundle.ts';
import { TrustBundleSet } from '../bundle/set.ts';
import { x509 } from '../x509/crypto.ts';
import { FederationManager, type FederationManagerOptions } from './poller.ts';

const TD = 'partner.example';
type Handler = (req: IncomingMessage, res: ServerResponse) => void;

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** A self-signed server certificate for IP 127.0.0.1, which is also its own trust anchor. */
async function serverCertificate(): Promise<{ key: string; cert: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: 'CN=127.0.0.1', notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: alg, keys,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }]), new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  return { key: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), cert: cert.toString('pem') };
}

/** A SPIFFE bundle document with one fresh JWT key. */
function bundleDoc(sequence?: number, refreshHint?: number): string {
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
  return JSON.stringify({ keys: [{ ...jwk, kid: `k${sequence ?? 'x'}`, use: 'jwt-svid' }], spiffe_sequence: sequence, spiffe_refresh_hint: refreshHint });
}

const serve = (body: string, status = 200): Handler => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
};

let dir: string;
let caFile: string;
let wrongCaFile: string;
let server: Server;
let base: string;
let handler: Handler = serve('{}');
let requests = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mandate-federation-'));
  const tls = await serverCertificate();
  caFile = join(dir, 'ca.pem');
  wrongCaFile = join(dir, 'wrong-ca.pem');
  await writeFile(caFile, tls.cert);
  await writeFile(wrongCaFile, (await serverCertificate()).cert);
  server = createHttpsServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    requests += 1;
    handler(req, res);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

// Every manager a test makes is stopped, even when the test failed half-way.
const live: FederationManager[] = [];
afterEach(() => {
  for (const manager of live.splice(0)) manager.stop();
});

after(async () => {
  server.closeAllConnections();
  await new Promise((ok) => server.close(ok));
  await rm(dir, { recursive: true, force: true });
});

interface Harness {
  manager: FederationManager;
  bundles: TrustBundleSet;
  updates: Array<{ td: string; bundle: Bundle; source: string }>;
  errors: MandateError[];
}

function harness(over: Partial<FederationManagerOptions> = {}, source: Record<string, unknown> = {}): Harness {
  const bundles = over.bundles ?? new TrustBundleSet();
  const updates: Harness['updates'] = [];
  const errors: MandateError[] = [];
  const manager = new FederationManager({
    sources: [{ trustDomain: TD, bundleUrl: `${base}/bundle`, caFile, ...source }],
    bundles,
    onUpdate: (td, bundle, src) => void updates.push({ td, bundle, source: src }),
    onError: (_td, err) => void errors.push(err),
    fetchTimeoutMs: 2_000,
    ...over,
  });
  live.push(manager);
  return { manager, bundles, updates, errors };
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((ok) => setTimeout(ok, 10));
}

function failsWith(code: ErrorCode, pattern: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(isMandateError(err), `expected MandateError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  };
}

test('start: first fetch over HTTPS puts the bundle under the configured trust domain', async () => {
  handler = serve(bundleDoc(1, 3600));
  const h = harness();
  await h.manager.start();
  h.manager.stop();
  const bundle = h.bundles.get(TD);
  assert.ok(bundle);
  assert.equal(bundle.sequence, 1);
  assert.equal(bundle.jwtAuthorities.size, 1);
  assert.deepEqual(h.updates.map((u) => [u.td, u.source]), [[TD, `${base}/bundle`]]);
  assert.equal(h.updates[0]!.bundle, bundle);
  assert.equal(h.errors.length, 0);
  const [status] = h.manager.status();
  assert.equal(status!.consecutiveFailures, 0);
  assert.equal(status!.sequence, 1);
});

test('the same document served for two trust domains gives two separate bundles', async () => {
  handler = serve(bundleDoc(1));
  const bundles = new TrustBundleSet();
  const manager = new FederationManager({
    sources: [{ trustDomain: 'a.example', bundleUrl: `${base}/a`, caFile }, { trustDomain: 'b.example', bundleUrl: `${base}/b`, caFile }],
    bundles,
  });
  await manager.start();
  manager.stop();
  assert.deepEqual(bundles.all().map((b) => b.trustDomain).sort(), ['a.example', 'b.example']);
  assert.notEqual(bundles.get('a.example'), bundles.get('b.example'));
});

test('polls again at the refresh hint (minimum lowered for the test) and applies the newer bundle', { timeout: 20_000 }, async () => {
  handler = serve(bundleDoc(1, 0));
  const h = harness({ minRefreshSeconds: 0.05 });
  await h.manager.start();
  assert.equal(h.bundles.get(TD)?.sequence, 1);
  handler = serve(bundleDoc(2, 0));
  await until(() => h.bundles.get(TD)?.sequence === 2);
  h.manager.stop();
  assert.deepEqual(h.updates.map((u) => u.bundle.sequence), [1, 2]);
  assert.equal(h.errors.length, 0);
});

test('an unchanged bundle keeps the same object and does not call onUpdate again', async () => {
  const doc = bundleDoc(4, 3600);
  handler = serve(doc);
  const h = harness();
  await h.manager.start();
  const first = h.bundles.get(TD);
  assert.equal(await h.manager.refresh(TD), first);
  h.manager.stop();
  assert.equal(h.bundles.get(TD), first);
  assert.equal(h.updates.length, 1);
});

test('garbage from the server: refresh fails, the last good bundle stays, onError is told', async () => {
  handler = serve(bundleDoc(1, 3600));
  const h = harness();
  await h.manager.start();
  const good = h.bundles.get(TD);
  for (const body of ['<html>oops</html>', '[]', '{"keys":[{"use":"jwt-svid","kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}', '{"spiffe_sequence":9}']) {
    handler = serve(body);
    await assert.rejects(h.manager.refresh(TD), failsWith('ERR_BUNDLE_INVALID', /./));
    assert.equal(h.bundles.get(TD), good);
  }
  h.manager.stop();
  assert.equal(h.errors.length, 4);
  assert.ok(h.errors.every((e) => e.code === 'ERR_BUNDLE_INVALID'));
  assert.equal(h.manager.status()[0]!.consecutiveFailures, 4);
});

test('a bundle with a lower spiffe_sequence is ignored and reported', async () => {
  handler = serve(bundleDoc(5, 3600));
  const h = harness();
  await h.manager.start();
  handler = serve(bundleDoc(3, 3600));
  await assert.rejects(h.manager.refresh(TD), failsWith('ERR_BUNDLE_INVALID', /spiffe_sequence 3, lower than the current 5: ignored/));
  h.manager.stop();
  assert.equal(h.bundles.get(TD)?.sequence, 5);
  assert.equal(h.errors.length, 1);
});

test('a stored bundle with a higher sequence is not rolled back by the endpoint', async () => {
  const bundles = new TrustBundleSet();
  handler = serve(bundleDoc(10));
  const seed = harness({ bundles });
  await seed.manager.start();
  seed.manager.stop();
  handler = serve(bundleDoc(2));
  const h = harness({ bundles });
  await h.manager.start();
  h.manager.stop();
  assert.equal(bundles.get(TD)?.sequence, 10);
  assert.match(h.errors[0]!.message, /lower than the current 10/);
});

test('oversized responses are refused, with and without content-length', async () => {
  const big = `{"keys":[],"pad":"${'x'.repeat(1024 * 1024)}"}`;
  const h = harness();
  handler = serve(big);
  await assert.rejects(h.manager.refresh(TD), failsWith('ERR_BUNDLE_INVALID', /announced \d+ bytes, more than 1048576/));
  handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }); // chunked: no content-length
    for (let i = 0; i < 20; i++) res.write('x'.repeat(64 * 1024));
    res.end();
  };
  await assert.rejects(h.manager.refresh(TD), failsWith('ERR_BUNDLE_INVALID', /sent more than 1048576 bytes/));
  h.manager.stop();
});

test('a server that does not answer, or stalls in the body, runs into the fetch timeout', { timeout: 20_000 }, async () => {
  const h = harness({ fetchTimeoutMs: 200 });
  handler = () => undefined; // never answers
  await assert.rejects(h.manager.refresh(TD), failsWith('ERR_BUNDLE_UNAVAILABLE', /did not answer within 200 ms/));
  handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"keys":['); // and then nothing
  };
  await assert.rejects(h.manager.refresh(TD), failsWith('ERR_BUNDLE_UNAVAILABLE', /did not answer within 200 ms/));
  h.manager.stop();
});

test('wrong TLS trust: another CA, or the system roots, do not authenticate the endpoint', async () => {
  handler = serve(bundleDoc(1));
  for (const source of [{ caFile: wrongCaFile }, { caFile: undefined }]) {
    const h = harness({}, source);
    await h.manager.start(); // reports, does not throw
    h.manager.stop();
    assert.equal(h.bundles.get(TD), undefined);
    assert.equal(h.errors.length, 1);
    assert.equal(h.errors[0]!.code, 'ERR_BUNDLE_UNAVAILABLE');
    assert.match(h.errors[0]!.message, /cannot fetch https:\/\/127\.0\.0\.1:\d+\/bundle: .*(certificate|self.signed)/i);
  }
});

test('HTTP errors and redirects: valid redirects are followed, invalid ones refused', async () => {
  const h = harness();
  handler = serve('nope', 503);
  await assert.rejects(h.manager.refresh(TD), failsWith('ERR_BUNDLE_UNAVAILABLE', /answered HTTP 503/));

  const doc = bundleDoc(1);
  handler = (req, res) => {
    if (req.url === '/bundle') res.writeHead(302, { location: '/moved' }).end();
    else serve(doc)(req, res);
  };
  assert.equal((await h.manager.refresh(TD)).sequence, 1);

  const refused: Array<[string, RegExp]> = [
    ['http://evil.example/bundle', /must be https/],
    [`http://127.0.0.1:${(server.address() as AddressInfo).port}/x`, /leaves https/],
    ['/bundle', /too many redirects/],
  ];
  for (const [location, pattern] of refused) {
    handler = (_req, res) => res.writeHead(307, { location }).end();
    await assert.rejects(h.manager.refresh(TD), failsWith('ERR_BUNDLE_UNAVAILABLE', pattern));
  }
  handler = (_req, res) => res.writeHead(302).end();
  await assert.rejects(h.manager.refresh(TD), failsWith('ERR_BUNDLE_UNAVAILABLE', /without a Location/));
  h.manager.stop();
});

test('failures are retried with backoff until the endpoint recovers', { timeout: 20_000 }, async () => {
  handler = serve('down', 500);
  const h = harness({ minRefreshSeconds: 0.02 });
  await h.manager.start();
  await until(() => h.errors.length >= 3);
  handler = serve(bundleDoc(1, 3600));
  await until(() => h.bundles.get(TD) !== undefined);
  h.manager.stop();
  assert.ok(h.errors.every((e) => e.code === 'ERR_BUNDLE_UNAVAILABLE'));
  assert.equal(h.manager.status()[0]!.consecutiveFailures, 0);
});

test('stop: no polls after stop', { timeout: 20_000 }, async () => {
  handler = serve(bundleDoc(1, 0));
  const h = harness({ minRefreshSeconds: 0.02 });
  await h.manager.start();
  const seen = requests;
  await until(() => requests >= seen + 2); // it is polling
  h.manager.stop();
  const atStop = requests;
  await new Promise((ok) => setTimeout(ok, 200));
  assert.equal(requests, atStop);
  assert.equal(h.manager.status()[0]!.nextRefreshAt, undefined);
});

test('plain http is accepted on loopback', async () => {
  const plain = createHttpServer(serve(bundleDoc(1)));
  await new Promise<void>((ok) => plain.listen(0, '127.0.0.1', ok));
  try {
    const bundles = new TrustBundleSet();
    const manager = new FederationManager({ sources: [{ trustDomain: TD, bundleUrl: `http://127.0.0.1:${(plain.address() as AddressInfo).port}/b` }], bundles });
    assert.equal((await manager.refresh(TD)).sequence, 1);
    manager.stop();
  } finally {
    plain.closeAllConnections();
    await new Promise((ok) => plain.close(ok));
  }
});

test('static file source: loaded at start, re-read on refresh; unreadable or oversized files are reported', async () => {
  const file = join(dir, 'partner-bundle.json');
  await writeFile(file, bundleDoc(1));
  const h = harness({}, { bundleUrl: undefined, caFile: undefined, bundleFile: file });
  await h.manager.start();
  assert.equal(h.bundles.get(TD)?.sequence, 1);
  assert.equal(h.updates[0]!.source, file);

  await writeFile(file, bundleDoc(2));
  assert.equal((await h.manager.refresh(TD)).sequence, 2);

  await writeFile(file, ' '.repeat(1024 * 1024 + 1));
  await assert.rejects(h.manager.refresh(TD), failsWith('ERR_BUNDLE_INVALID', /larger than 1048576 bytes/));
  await rm(file);
  await assert.rejects(h.manager.refresh(TD), failsWith('ERR_BUNDLE_UNAVAILABLE', /cannot read bundle file .*ENOENT/));
  h.manager.stop();
  assert.equal(h.bundles.get(TD)?.sequence, 2);
  assert.equal(h.errors.length, 2);
});

test('an unreadable caFile is reported like any other failure', async () => {
  const h = harness({}, { caFile: join(dir, 'missing-ca.pem') });
  await h.manager.start();
  h.manager.stop();
  assert.equal(h.errors[0]!.code, 'ERR_CONFIG_INVALID');
  assert.match(h.errors[0]!.message, /cannot read caFile/);
});

test('onUpdate failures are reported, the bundle stays in effect', async () => {
  handler = serve(bundleDoc(1));
  const errors: MandateError[] = [];
  const bundles = new TrustBundleSet();
  const manager = new FederationManager({
    sources: [{ trustDomain: TD, bundleUrl: `${base}/b`, caFile }], bundles,
    onUpdate: () => Promise.reject(new Error('store is down')), onError: (_td, err) => void errors.push(err),
  });
  await manager.start();
  manager.stop();
  assert.equal(bundles.get(TD)?.sequence, 1);
  assert.match(errors[0]!.message, /onUpdate for partner\.example failed: store is down/);
});

test('refresh of a trust domain without a source', async () => {
  const h = harness();
  await assert.rejects(h.manager.refresh('other.example'), failsWith('ERR_BUNDLE_UNKNOWN_TRUST_DOMAIN', /no federation source for trust domain "other\.example"/));
  await assert.rejects(h.manager.refresh('Not A Domain'), (err: unknown) => isMandateError(err, 'ERR_TRUST_DOMAIN_INVALID'));
});

test('configuration errors are thrown by the constructor', () => {
  const bundles = new TrustBundleSet();
  const cases: Array<[Record<string, unknown>[], RegExp]> = [
    [[{ trustDomain: TD, bundleUrl: 'http://partner.example/b' }], /must be https/],
    [[{ trustDomain: TD, bundleUrl: 'https://u:p@partner.example/b' }], /userinfo/],
    [[{ trustDomain: TD }], /exactly one of bundleFile and bundleUrl/],
    [[{ trustDomain: TD, bundleUrl: 'https://partner.example/b', bundleFile: '/tmp/x' }], /exactly one of bundleFile and bundleUrl/],
    [[{ trustDomain: TD, bundleFile: '/tmp/x', caFile: '/tmp/ca' }], /caFile applies to bundleUrl only/],
    [[{ trustDomain: TD, bundleFile: '/tmp/x' }, { trustDomain: TD, bundleFile: '/tmp/y' }], /configured twice/],
    [[{ trustDomain: 'Partner.example', bundleFile: '/tmp/x' }], /lowercase/],
    [[{ trustDomain: TD, bundleFile: '/tmp/x', defaultRefreshSeconds: 0 }], /defaultRefreshSeconds/],
  ];
  for (const [sources, pattern] of cases) {
    assert.throws(() => new FederationManager({ sources: sources as never, bundles }), failsWith('ERR_CONFIG_INVALID', pattern));
  }
});

test('timers do not keep the process alive: a child process that never calls stop() still exits', { timeout: 30_000 }, async () => {
  handler = serve(bundleDoc(1, 3600));
  const poller = resolve(process.cwd(), 'src/identity/federation/poller.ts');
  const set = resolve(process.cwd(), 'src/identity/bundle/set.ts');
  const code = `
    import { FederationManager } from ${JSON.stringify(poller)};
    import { TrustBundleSet } from ${JSON.stringify(set)};
    const bundles = new TrustBundleSet();
    const m = new FederationManager({ sources: [{ trustDomain: 'partner.example', bundleUrl: ${JSON.stringify(`${base}/bundle`)}, caFile: ${JSON.stringify(caFile)} }], bundles });
    await m.start();
    console.log('loaded', bundles.get('partner.example')?.sequence);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'], timeout: 25_000 });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const [exitCode, signal] = await new Promise<[number | null, string | null]>((ok) => child.on('exit', (c, s) => ok([c, s])));
  assert.equal(signal, null, 'the child had to be killed: something kept it alive');
  assert.equal(exitCode, 0);
  assert.match(out, /loaded 1/);
});
