/**
 * Rotation without a failed validation: SVIDs issued before, during and after a CA and a JWT key
 * rotation all verify against the bundle a verifier holds at each step, as long as it refreshes the
 * bundle once per step (as the refresh hint tells it to).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryEventSink } from '../../observability/events.ts';
import { openSqliteStore } from '../../store/sqlite/sqlite-store.ts';
import { TrustBundleSet } from '../bundle/set.ts';
import { issueJwtSvid } from '../jwt-svid/issue.ts';
import { verifyJwtSvid } from '../jwt-svid/verify.ts';
import { KeyEncryptionKey } from '../keys/kek.ts';
import { parseSpiffeId } from '../spiffe-id/parse.ts';
import { issueX509Svid } from '../x509-svid/issue.ts';
import { verifyX509Svid } from '../x509-svid/verify.ts';
import { keyAndCsr } from '../../../test/support/pki.ts';
import { KeyManager } from './key-manager.ts';

const ID = parseSpiffeId('spiffe://example.org/agent/triage-bot');
const HOUR = 3600_000;

async function setup(start: Date) {
  let now = start;
  const store = await openSqliteStore({ path: ':memory:' });
  const keys = new KeyManager({
    store, kek: KeyEncryptionKey.generate(), trustDomain: 'example.org', events: new MemoryEventSink(),
    ca: { keyType: 'ec-p256', ttlSeconds: 24 * 3600 },
    jwt: { algorithm: 'ES256', keyTtlSeconds: 24 * 3600, maxSvidTtlSeconds: 300 },
    refreshHintSeconds: 300, prepareAhead: 0.5,
    now: () => now,
  });
  await keys.init();
  return { keys, store, setNow: (d: Date) => { now = d; } };
}

function bundleSet(keys: KeyManager): TrustBundleSet {
  const set = new TrustBundleSet();
  set.set(keys.bundle());
  return set;
}

describe('key rotation', () => {
  it('publishes a new CA before using it and keeps the old one until its leaves expire', async () => {
    const t0 = new Date(Date.now() - 20 * HOUR);
    const { keys, setNow } = await setup(t0);
    const issued: Array<{ chain: import('node:crypto').X509Certificate[]; notAfter: Date }> = [];
    const seq0 = keys.bundle().sequence ?? 0;
    // Walk a day in 30-minute steps: issue an SVID at each step, rotate when due, and check that every
    // SVID still inside its validity verifies against the bundle of that moment.
    for (let step = 0; step <= 44; step++) {
      const now = new Date(t0.getTime() + step * HOUR / 2);
      setNow(now);
      await keys.tick();
      const { csrPem } = await keyAndCsr();
      const svid = await issueX509Svid(keys.activeCa(), { csr: csrPem, spiffeId: ID, ttlSeconds: 2 * 3600, now });
      issued.push({ chain: svid.chain, notAfter: svid.notAfter });
      const set = bundleSet(keys);
      for (const s of issued) {
        if (s.notAfter.getTime() <= now.getTime()) continue;
        assert.equal(verifyX509Svid(s.chain, set, { now }).spiffeId.toString(), ID.toString(), `step ${step}`);
      }
    }
    const cas = keys.keys().filter((k) => k.kind === 'x509-ca');
    assert.ok(cas.some((k) => k.state === 'active'));
    assert.ok((keys.bundle().sequence ?? 0) > seq0, 'the bundle sequence moved with each rotation');
  });

  it('rotates JWT keys without failing a validation, in two manual steps', async () => {
    const { keys } = await setup(new Date());
    const sign = () => issueJwtSvid({ spiffeId: ID.toString(), audience: ['gw'], ttlSeconds: 300, key: keys.activeJwtKey() });
    const before = await sign();
    const firstKid = keys.activeJwtKey().kid;
    assert.equal((await keys.rotate('jwt')).phase, 'prepared');
    assert.equal(keys.activeJwtKey().kid, firstKid, 'a prepared key does not sign yet');
    assert.equal(keys.bundle().jwtAuthorities.size, 2, 'but it is published');
    const verifierBundle = bundleSet(keys); // a verifier refreshes here, then the key is activated
    assert.equal((await keys.rotate('jwt')).phase, 'activated');
    const after = await sign();
    assert.notEqual(keys.activeJwtKey().kid, firstKid);
    for (const t of [before, after]) await verifyJwtSvid(t.token, verifierBundle, { audience: 'gw' });
    for (const t of [before, after]) await verifyJwtSvid(t.token, bundleSet(keys), { audience: 'gw' });
    const retired = keys.keys().find((k) => k.id === firstKid);
    assert.equal(retired?.state, 'retired');
  });

  it('keeps keys sealed at rest and reloads them with the same KEK only', async () => {
    const { keys, store } = await setup(new Date());
    const records = await store.listSigningKeys('jwt');
    assert.ok(records.every((r) => r.privateKeyEnc.startsWith('v1.') && !r.privateKeyEnc.includes('PRIVATE')));
    const other = new KeyManager({
      store, kek: KeyEncryptionKey.generate(), trustDomain: 'example.org', events: new MemoryEventSink(),
      ca: { keyType: 'ec-p256', ttlSeconds: 3600 }, jwt: { algorithm: 'ES256', keyTtlSeconds: 3600, maxSvidTtlSeconds: 300 },
      refreshHintSeconds: 300, prepareAhead: 0.5,
    });
    await assert.rejects(other.init(), /cannot be opened/);
    void keys;
  });
});

describe('CA import configured after the first start', () => {
  it('publishes the imported CA as prepared and keeps issuing with the active one until rotated', async () => {
    const { generateRootCa } = await import('../ca/generate.ts');
    const store = await openSqliteStore({ path: ':memory:' });
    const kek = KeyEncryptionKey.generate();
    const options = (imported?: import('../ca/import.ts').ImportedCa) => ({
      store, kek, trustDomain: 'example.org', events: new MemoryEventSink(),
      ca: { keyType: 'ec-p256' as const, ttlSeconds: 86400, imported },
      jwt: { algorithm: 'ES256' as const, keyTtlSeconds: 86400, maxSvidTtlSeconds: 300 },
      refreshHintSeconds: 300, prepareAhead: 0.5,
    });
    const first = new KeyManager(options());
    await first.init();
    const generated = first.activeCa().certificate;
    const root = await generateRootCa({ trustDomain: 'example.org', keyType: 'ec-p256', ttlSeconds: 86400, commonName: 'Corp Root' });
    const imported = { certificate: root.certificate, chain: [], trustAnchors: [root.certificate], privateKey: root.privateKey };
    const second = new KeyManager(options(imported));
    await second.init();
    assert.equal(second.activeCa().certificate.fingerprint256, generated.fingerprint256, 'still issuing with the active CA');
    assert.ok(second.bundle().x509Authorities.some((a) => a.fingerprint256 === root.certificate.fingerprint256), 'imported root published');
    await second.init(); // a further restart does not import it twice
    assert.equal(second.keys().filter((k) => k.kind === 'x509-ca').length, 2);
    assert.equal((await second.rotate('x509-ca')).phase, 'activated');
    assert.equal(second.activeCa().certificate.fingerprint256, root.certificate.fingerprint256);
  });
});
