import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSpiffeBundle } from '../../identity/bundle/parse.ts';
import { TrustBundleSet } from '../../identity/bundle/set.ts';
import { verifyJwtSvid } from '../../identity/jwt-svid/verify.ts';
import { verifyX509Svid } from '../../identity/x509-svid/verify.ts';
import { startWorkloadAgent, type WorkloadAgent } from '../../identity/workload-agent/agent.ts';
import { silentLogger } from '../../observability/logger.ts';
import { startTestMandate, type TestMandate } from '../../../test/support/mandate.ts';
import { testCa } from '../../../test/support/pki.ts';
import { filesSource, splitDerCertificates, staticSource, SVID_FILES, workloadApiSource } from './svid-source.ts';

const AGENT = 'spiffe://example.org/agent/triage-bot';

function certificatesOf(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((b) => new X509Certificate(b));
}

describe('SVID sources against mandate agent and a real Mandate', { timeout: 60_000 }, () => {
  let m: TestMandate;
  let agent: WorkloadAgent;
  const dir = mkdtempSync(join(tmpdir(), 'mandate-sdk-svids-'));
  const socketPath = join(dir, 'agent.sock');
  const outDir = join(dir, 'svid');
  let bundles: TrustBundleSet;

  before(async () => {
    m = await startTestMandate();
    await m.admin('POST', '/admin/v1/entries', { id: 'bot', spiffe_id: AGENT });
    const { token } = (await m.admin('POST', '/admin/v1/join-tokens', { entry_id: 'bot' })).body;
    agent = await startWorkloadAgent({ serverUrl: m.url, attestation: { type: 'join_token', token }, socketPath, outDir, logger: silentLogger() });
    bundles = new TrustBundleSet();
    bundles.set(parseSpiffeBundle((await m.call('GET', '/bundle')).body, 'example.org'));
  });
  after(async () => {
    await agent?.stop();
    await m?.close();
  });

  function jwtIssued(): number {
    return m.events.events.filter((e) => e.type === 'svid.jwt.issued').length;
  }

  test('workloadApiSource: a JWT-SVID for the audience and the X.509-SVID as PEM', async () => {
    const source = workloadApiSource(socketPath);
    try {
      const jwt = await source.jwtSvid('https://mandate.example.org');
      const verified = await verifyJwtSvid(jwt, bundles, { audience: 'https://mandate.example.org' });
      assert.equal(verified.spiffeId.toString(), AGENT);
      await assert.rejects(verifyJwtSvid(jwt, bundles, { audience: 'https://elsewhere.example' }));

      const svid = await source.x509();
      const chain = certificatesOf(svid.certPem);
      assert.equal(verifyX509Svid(chain, bundles).spiffeId.toString(), AGENT);
      assert.ok((chain[0] as X509Certificate).checkPrivateKey(createPrivateKey(svid.keyPem)));
      assert.deepEqual(certificatesOf(svid.bundlePem).map((c) => c.fingerprint256), bundles.get('example.org')?.x509Authorities.map((c) => c.fingerprint256));
    } finally {
      await source.close();
    }
  });

  test('filesSource: the files of --out-dir, and JWT-SVIDs over the identity API reused until half-life', async () => {
    const source = filesSource(outDir, { serverUrl: m.url });
    try {
      const before = jwtIssued();
      const jwt = await source.jwtSvid('https://mandate.example.org');
      assert.equal((await verifyJwtSvid(jwt, bundles, { audience: 'https://mandate.example.org' })).spiffeId.toString(), AGENT);
      assert.ok((await source.jwtSvid('https://mandate.example.org')) === jwt, 'the cached JWT-SVID');
      assert.equal(jwtIssued(), before + 1);
      const other = await source.jwtSvid('https://other.example');
      assert.equal((await verifyJwtSvid(other, bundles, { audience: 'https://other.example' })).spiffeId.toString(), AGENT);
      assert.equal(jwtIssued(), before + 2);

      const svid = await source.x509();
      assert.equal(svid.certPem, readFileSync(join(outDir, SVID_FILES.cert), 'utf8'));
      assert.equal(svid.keyPem, readFileSync(join(outDir, SVID_FILES.key), 'utf8'));
      assert.equal(svid.bundlePem, readFileSync(join(outDir, SVID_FILES.bundle), 'utf8'));
      assert.equal(verifyX509Svid(certificatesOf(svid.certPem), bundles).spiffeId.toString(), AGENT);
    } finally {
      await source.close();
    }
  });

  test('filesSource refuses a key that is not the certificate\'s, and missing files', async () => {
    const torn = mkdtempSync(join(tmpdir(), 'mandate-sdk-torn-'));
    copyFileSync(join(outDir, SVID_FILES.cert), join(torn, SVID_FILES.cert));
    copyFileSync(join(outDir, SVID_FILES.bundle), join(torn, SVID_FILES.bundle));
    writeFileSync(join(torn, SVID_FILES.key), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const source = filesSource(torn, { serverUrl: m.url });
    const empty = filesSource(mkdtempSync(join(tmpdir(), 'mandate-sdk-empty-')), { serverUrl: m.url });
    try {
      const before = jwtIssued();
      await assert.rejects(source.jwtSvid('https://mandate.example.org'), /svid\.key is not the key of the certificate in .*svid\.pem/);
      await assert.rejects(source.x509(), /is not the key of the certificate/);
      assert.equal(jwtIssued(), before, 'nothing was asked of the server');
      await assert.rejects(empty.x509(), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
      writeFileSync(join(torn, SVID_FILES.cert), 'no certificate here');
      await assert.rejects(source.x509(), /svid\.pem holds no certificate/);
    } finally {
      await source.close();
      await empty.close();
    }
  });
});

test('workloadApiSource names the socket and the RPC when no agent answers', async () => {
  const socketPath = join(mkdtempSync(join(tmpdir(), 'mandate-sdk-nosock-')), 'none.sock');
  const source = workloadApiSource(socketPath, { deadlineMs: 500 });
  try {
    await assert.rejects(source.jwtSvid('aud'), (err: Error) => err.message.startsWith(`Workload API FetchJWTSVID at ${socketPath} failed:`));
    await assert.rejects(source.x509(), (err: Error) => err.message.startsWith(`Workload API FetchX509SVID at ${socketPath} failed:`));
  } finally {
    await source.close();
  }
});

test('staticSource passes the audience through and offers x509 only when given', async () => {
  const plain = staticSource({ jwtSvid: async (aud) => `jwt-for-${aud}` });
  assert.equal(await plain.jwtSvid('https://a.example'), 'jwt-for-https://a.example');
  assert.equal(plain.x509, undefined);
  const pem = { certPem: 'c', keyPem: 'k', bundlePem: 'b' };
  const full = staticSource({ jwtSvid: async () => 'j', x509: async () => pem });
  assert.equal(await full.x509?.(), pem);
});

test('splitDerCertificates splits concatenated DER and refuses anything else', async () => {
  const [a, b] = [(await testCa()).certificate, (await testCa('other.example')).certificate] as [X509Certificate, X509Certificate];
  const both = Buffer.concat([a.raw, b.raw]);
  assert.deepEqual(splitDerCertificates(both).map((c) => c.fingerprint256), [a.fingerprint256, b.fingerprint256]);
  const bad: Array<[string, Uint8Array, RegExp]> = [
    ['nothing', new Uint8Array(0), /no certificate/],
    ['not a SEQUENCE', Buffer.from([0x31, 0x01, 0x00]), /not a sequence of DER certificates/],
    ['a lone tag', Buffer.from([0x30]), /not a sequence of DER certificates/],
    ['five length bytes', Buffer.from([0x30, 0x85, 1, 1, 1, 1, 1]), /invalid length/],
    ['indefinite length', Buffer.from([0x30, 0x80, 0x00, 0x00]), /invalid length/],
    ['length bytes cut off', Buffer.from([0x30, 0x82, 0x01]), /invalid length/],
    ['certificate cut short', a.raw.subarray(0, a.raw.length - 1), /cut short/],
    ['trailing garbage', Buffer.concat([a.raw, Buffer.from([0x00])]), /not a sequence of DER certificates/],
  ];
  for (const [name, der, pattern] of bad) assert.throws(() => splitDerCertificates(der), (err: unknown) => err instanceof TypeError && pattern.test(err.message), name);
});
