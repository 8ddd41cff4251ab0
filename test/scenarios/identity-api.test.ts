/**
 * Scenario: an admin registers an agent, the agent attests with a join token, gets an X.509-SVID
 * from a CSR, renews it with proof of possession, gets JWT-SVIDs; every step through real HTTP.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseSpiffeBundle } from '../../src/identity/bundle/parse.ts';
import { TrustBundleSet } from '../../src/identity/bundle/set.ts';
import { verifyJwtSvid } from '../../src/identity/jwt-svid/verify.ts';
import { verifyX509Svid } from '../../src/identity/x509-svid/verify.ts';
import { IdentityClient } from '../../src/sdk/identity/client.ts';
import { generateKeyAndCsr } from '../../src/sdk/identity/csr.ts';
import { signSvidPop } from '../../src/sdk/identity/pop.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const AGENT = 'spiffe://example.org/agent/triage-bot';

describe('identity API', () => {
  let m: TestMandate;
  let client: IdentityClient;
  before(async () => {
    m = await startTestMandate();
    client = new IdentityClient({ serverUrl: m.url });
  });
  after(() => m.close());

  async function bundles(): Promise<TrustBundleSet> {
    const set = new TrustBundleSet();
    set.set(parseSpiffeBundle((await m.call('GET', '/bundle')).body, 'example.org'));
    return set;
  }

  it('prints an admin token on first start and refuses the admin API without it', async () => {
    assert.match(m.adminToken ?? '', /^mat_/);
    assert.equal((await m.call('GET', '/admin/v1/entries')).status, 401);
    const wrong = await m.admin('GET', '/admin/v1/entries', undefined, 'mat_wrong');
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error, 'ERR_UNAUTHENTICATED');
    assert.ok(m.events.events.some((e) => e.type === 'admin.auth.failed'));
  });

  it('creates, lists, shows registration entries and records each admin action', async () => {
    const created = await m.admin('POST', '/admin/v1/entries', { id: 'triage', spiffe_id: AGENT, selectors: ['k8s:ns:demo'], x509_svid_ttl: 600, metadata: { owner: 'alice' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.spiffe_id, AGENT);
    assert.equal((await m.admin('GET', '/admin/v1/entries/triage')).body.metadata.owner, 'alice');
    assert.equal((await m.admin('GET', '/admin/v1/entries')).body.entries.length, 1);
    assert.equal((await m.admin('POST', '/admin/v1/entries', { id: 'triage', spiffe_id: AGENT })).status, 409);
    assert.equal((await m.admin('GET', '/admin/v1/entries/nope')).status, 404);
    assert.ok(m.events.events.some((e) => e.type === 'admin.entry.create' && e.outcome === 'success' && String(e.actor).startsWith('admin:')));
  });

  it('refuses bad entries with the reason', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ spiffe_id: 'spiffe://other.org/agent/x' }, /not in this server's trust domain/],
      [{ spiffe_id: 'spiffe://example.org' }, /needs a path/],
      [{ spiffe_id: 'spiffe://example.org/a/../b' }, /SPIFFE-ID/],
      [{ spiffe_id: AGENT, selectors: ['Bad Selector'] }, /selectors\[0\]/],
      [{ spiffe_id: AGENT, x509_svid_ttl: 5 }, /x509_svid_ttl/],
      [{ spiffe_id: AGENT, surprise: 1 }, /unknown field "surprise"/],
      [[1, 2], /JSON object/],
    ];
    for (const [body, message] of cases) {
      const res = await m.admin('POST', '/admin/v1/entries', body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(res.body.message, message);
    }
  });

  it('issues an X.509-SVID for a join token, once, and it verifies against the bundle', async () => {
    const { token } = (await m.admin('POST', '/admin/v1/join-tokens', { spiffe_id: AGENT, ttl: 300 })).body;
    const { csrPem, privateKey } = await generateKeyAndCsr();
    const svid = await client.attest({ type: 'join_token', token }, csrPem);
    assert.equal(svid.spiffeId.toString(), AGENT);
    assert.equal(verifyX509Svid(svid.chain, await bundles()).spiffeId.toString(), AGENT);
    assert.ok(svid.expiresAt.getTime() - Date.now() <= 600_000);
    await assert.rejects(client.attest({ type: 'join_token', token }, csrPem), (err: any) => err.code === 'ERR_JOIN_TOKEN_USED');
    assert.ok(m.events.events.some((e) => e.type === 'attestation.succeeded'));
    assert.ok(m.events.events.some((e) => e.type === 'attestation.failed' && e.error === 'ERR_JOIN_TOKEN_USED'));
    assert.ok(m.events.events.some((e) => e.type === 'svid.x509.issued' && e.spiffeId === AGENT));

    // renewal with proof of possession of the current SVID; a new key each time
    const next = await generateKeyAndCsr();
    const renewed = await client.renewX509({ chain: svid.chain, privateKey }, next.csrPem);
    assert.equal(renewed.spiffeId.toString(), AGENT);
    assert.notEqual(renewed.chain[0]?.serialNumber, svid.chain[0]?.serialNumber);

    // JWT-SVID for an audience, verifiable with the bundle's JWT keys
    const jwt = await client.fetchJwtSvid({ chain: renewed.chain, privateKey: next.privateKey }, ['mcp-gateway']);
    const verified = await verifyJwtSvid(jwt.token, await bundles(), { audience: 'mcp-gateway' });
    assert.equal(verified.spiffeId.toString(), AGENT);
    await assert.rejects(verifyJwtSvid(jwt.token, await bundles(), { audience: 'someone-else' }));

    // a proof is single use
    const body = JSON.stringify({ audience: ['x'] });
    const pop = await signSvidPop({ chain: renewed.chain, privateKey: next.privateKey }, { htm: 'POST', htu: '/v1/svid/jwt', body });
    const send = () => m.call('POST', '/v1/svid/jwt', { body, headers: { 'content-type': 'application/json', authorization: `SVID-PoP ${pop}` } });
    assert.equal((await send()).status, 200);
    const replay = await send();
    assert.equal(replay.status, 401);
    assert.match(replay.body.message, /already used/);

    // a proof bound to another path or body is refused
    const wrongPath = await m.call('POST', '/v1/svid/x509', { body, headers: { 'content-type': 'application/json', authorization: `SVID-PoP ${pop}` } });
    assert.equal(wrongPath.status, 401);

    // deleting the entry stops renewal
    await m.admin('POST', '/admin/v1/entries', { id: 'temp', spiffe_id: 'spiffe://example.org/agent/temp' });
    const t2 = (await m.admin('POST', '/admin/v1/join-tokens', { entry_id: 'temp' })).body.token;
    const k2 = await generateKeyAndCsr();
    const temp = await client.attest({ type: 'join_token', token: t2 }, k2.csrPem);
    assert.equal((await m.admin('DELETE', '/admin/v1/entries/temp')).status, 200);
    await assert.rejects(client.renewX509({ chain: temp.chain, privateKey: k2.privateKey }, (await generateKeyAndCsr()).csrPem), (err: any) => err.code === 'ERR_NO_MATCHING_ENTRY');
  });

  it('answers hostile and malformed input with a clear 4xx', async () => {
    const json = { 'content-type': 'application/json' };
    const cases: Array<[string, string, { body?: string; headers?: Record<string, string> }, number, RegExp]> = [
      ['POST', '/v1/attest', { body: '{not json', headers: json }, 400, /not valid JSON/],
      ['POST', '/v1/attest', { body: '{}', headers: { 'content-type': 'text/plain' } }, 415, /application\/json/],
      ['POST', '/v1/attest', { body: JSON.stringify({ csr: 'x'.repeat(70_000) }), headers: json }, 413, /exceeds/],
      ['POST', '/v1/attest', { body: '{}', headers: json }, 400, /attestation request must be a JSON object/],
      ['POST', '/v1/attest', { body: JSON.stringify({ attestation: { type: 'static', selectors: ['a:b'] }, csr: 'x' }), headers: json }, 403, /development mode/],
      ['POST', '/v1/attest', { body: JSON.stringify({ attestation: { type: 'join_token', token: 'mjt_nope' }, csr: 'x' }), headers: json }, 401, /./],
      ['POST', '/v1/svid/jwt', { body: '{}', headers: json }, 401, /SVID-PoP/],
      ['POST', '/v1/svid/jwt', { body: '{}', headers: { ...json, authorization: 'SVID-PoP not.a.jws' } }, 401, /SVID-PoP/],
      ['GET', '/nope', {}, 404, /no route/],
      ['DELETE', '/bundle', {}, 405, /not allowed/],
    ];
    for (const [method, path, init, status, message] of cases) {
      const res = await m.call(method, path, init);
      assert.equal(res.status, status, `${method} ${path} -> ${res.status} ${JSON.stringify(res.body)}`);
      assert.match(res.body.message, message);
    }
  });

  it('refuses traversal and encoded separators in paths', async () => {
    for (const path of ['/admin/v1/../v1/attest', '/v1/%2e%2e/admin/v1/entries', '/admin/v1/entries/%2fx', '//bundle']) {
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(m.url + '/', { method: 'GET', path }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, 400, path);
    }
  });

  it('issues nothing for a malformed CSR', async () => {
    const { token } = (await m.admin('POST', '/admin/v1/join-tokens', { spiffe_id: AGENT })).body;
    const res = await m.call('POST', '/v1/attest', { body: JSON.stringify({ attestation: { type: 'join_token', token }, csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----' }), headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 400);
    assert.equal(res.body.error, 'ERR_CSR_INVALID');
  });

  it('exports the CA as a kubernetes.io/tls Secret', async () => {
    const res = await m.call('GET', '/admin/v1/ca/k8s-secret?name=mandate-ca&namespace=cert-manager', { headers: { authorization: `Bearer ${m.adminToken}` } });
    assert.equal(res.status, 200);
    assert.match(res.body, /type: kubernetes\.io\/tls/);
    assert.match(res.body, /tls\.crt: /);
    assert.match(res.body, /tls\.key: /);
    assert.equal((await m.call('GET', '/admin/v1/ca/k8s-secret?name=Bad_Name', { headers: { authorization: `Bearer ${m.adminToken}` } })).status, 400);
  });

  it('never writes tokens or private keys to the log', () => {
    const logs = m.logs();
    assert.ok(logs.length > 0);
    assert.doesNotMatch(logs, /mjt_[A-Za-z0-9-]+\.[A-Za-z0-9_-]{20,}/);
    assert.doesNotMatch(logs, new RegExp(m.adminToken as string));
    assert.doesNotMatch(logs, /PRIVATE KEY/);
    assert.doesNotMatch(logs, /SVID-PoP ey/);
  });
});

describe('restart', () => {
  it('keeps the SQLite store in the data directory in use, beside its key-encryption key', async () => {
    // The configuration's data_dir would be <dir>/.mandate; the data directory given at start wins.
    const m = await startTestMandate();
    try {
      assert.ok(existsSync(join(m.dataDir, 'mandate.db')), 'the database is in the data directory in use');
      assert.ok(existsSync(join(m.dataDir, 'kek.key')), 'so is the generated KEK');
      assert.equal(existsSync(join(m.dataDir, '.mandate')), false, 'nothing goes to the configuration\'s data_dir');
    } finally {
      await m.close();
    }
  });

  it('keeps the CA, keys and admin token across restarts and prints no new admin token', async () => {
    const first = await startTestMandate();
    const bundle1 = (await first.call('GET', '/bundle')).body;
    await first.close();
    const second = await startTestMandate({ dataDir: first.dataDir });
    try {
      assert.equal(second.adminToken, null);
      const bundle2 = (await second.call('GET', '/bundle')).body;
      assert.deepEqual(bundle2.keys, bundle1.keys);
      assert.equal((await second.admin('GET', '/admin/v1/entries', undefined, first.adminToken as string)).status, 200);
    } finally {
      await second.close();
    }
  });

  it('finishes an in-flight request during shutdown', async () => {
    const m = await startTestMandate();
    const slow = new Promise<number>((resolve, reject) => {
      const req = httpRequest(m.url + '/v1/attest', { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': '2' } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
      req.on('error', reject);
      req.write('{');
      setTimeout(() => req.end('}'), 200);
    });
    await new Promise((r) => setTimeout(r, 50));
    const closed = m.close();
    assert.equal(await slow, 400); // answered (attestation missing), not cut off
    await closed;
  });
});


describe('CA import', () => {
  it('issues under an imported intermediate (e.g. cert-manager or Istio) and publishes its root', async () => {
    const { generateRootCa } = await import('../../src/identity/ca/generate.ts');
    const { x509 } = await import('../../src/identity/x509/crypto.ts');
    const { toCryptoKeys, generateKeyPair } = await import('../../src/identity/ca/key-algorithms.ts');
    const { certificatesToPem } = await import('../../src/identity/x509/pem.ts');
    const { X509Certificate } = await import('node:crypto');
    // an external root and an intermediate signed by it, as an operator's PKI would hand over
    const root = await generateRootCa({ trustDomain: 'example.org', keyType: 'ec-p256', ttlSeconds: 86400, commonName: 'Corp Root' });
    const rootKeys = await toCryptoKeys(root.privateKey);
    const inter = generateKeyPair('ec-p256');
    const interKeys = await toCryptoKeys(inter.privateKey);
    const interCert = await x509.X509CertificateGenerator.create({
      serialNumber: '0a1b', subject: 'CN=Corp Intermediate, O=example.org', issuer: new x509.X509Certificate(root.certificate.raw).subjectName,
      notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 43_200_000),
      signingAlgorithm: rootKeys.signAlg, publicKey: interKeys.publicKey, signingKey: rootKeys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(interKeys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
      ],
    });
    const m = await startTestMandate();
    try {
      const body = {
        cert_pem: certificatesToPem([new X509Certificate(Buffer.from(interCert.rawData))]),
        key_pem: inter.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        bundle_pem: certificatesToPem([root.certificate]),
      };
      const wrongKey = await m.admin('POST', '/admin/v1/ca/import', { ...body, key_pem: generateKeyPair('ec-p256').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() });
      assert.equal(wrongKey.status, 400);
      assert.match(wrongKey.body.message, /does not match/);
      const imported = await m.admin('POST', '/admin/v1/ca/import', body);
      assert.equal(imported.status, 200, JSON.stringify(imported.body));
      assert.equal(imported.body.phase, 'prepared');
      assert.equal((await m.admin('POST', '/admin/v1/keys/rotate', { kind: 'x509-ca' })).body.phase, 'activated');
      await m.admin('POST', '/admin/v1/entries', { id: 'bot', spiffe_id: AGENT });
      const { token } = (await m.admin('POST', '/admin/v1/join-tokens', { entry_id: 'bot' })).body;
      const { csrPem } = await generateKeyAndCsr();
      const svid = await new IdentityClient({ serverUrl: m.url }).attest({ type: 'join_token', token }, csrPem);
      assert.equal(svid.chain.length, 2, 'leaf and the imported intermediate');
      const bundle = parseSpiffeBundle((await m.call('GET', '/bundle')).body, 'example.org');
      assert.ok(bundle.x509Authorities.some((a) => a.fingerprint256 === root.certificate.fingerprint256), 'the imported root is published');
      const set = new TrustBundleSet();
      set.set({ ...bundle, x509Authorities: [root.certificate] });
      assert.equal(verifyX509Svid(svid.chain, set).spiffeId.toString(), AGENT);
    } finally {
      await m.close();
    }
  });
});
