import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { isMandateError } from '../errors.ts';
import type {
  AdminTokenRecord,
  FederatedBundleRecord,
  JoinTokenRecord,
  RegistrationEntry,
  SigningKeyRecord,
  Store,
} from './store.ts';

/**
 * The one behavioural suite every Store implementation must pass (run by sqlite-store.test.ts and
 * postgres-store.test.ts).
 *
 * `open` must return a store on the SAME database every time it is called (same file, same
 * schema): the suite opens it more than once to prove migrations are idempotent and data
 * persists. Cases share that database, so each works on its own random ids. `cleanup` runs once
 * at the end with the suite's store still open; the suite closes the store afterwards.
 *
 * @example
 *   storeSuite('sqlite store', () => openSqliteStore({ path: join(dir, 'mandate.db') }));
 */
export function storeSuite<S extends Store>(
  name: string,
  open: () => Promise<S>,
  cleanup?: (s: S) => Promise<void>,
): void {
  describe(name, () => {
    let store: S;
    before(async () => {
      store = await open();
    });
    after(async () => {
      try {
        await cleanup?.(store);
      } finally {
        await store.close();
      }
    });

    it('reports a positive schema version', async () => {
      const v = await store.schemaVersion();
      assert.ok(Number.isInteger(v) && v >= 1, `schema version ${v}`);
    });

    describe('signing keys', () => {
      it('round-trips every field of both kinds, and lists only the requested kind', async () => {
        const ca = signingKey({ kind: 'x509-ca', publishUntil: null });
        const jwt = signingKey({ kind: 'jwt', state: 'active', trustAnchors: '', publishUntil: at(9) });
        await store.putSigningKey(ca);
        await store.putSigningKey(jwt);
        const cas = (await store.listSigningKeys('x509-ca')).filter((k) => k.id === ca.id || k.id === jwt.id);
        const jwts = (await store.listSigningKeys('jwt')).filter((k) => k.id === ca.id || k.id === jwt.id);
        assert.deepEqual(cas, [ca]);
        assert.deepEqual(jwts, [jwt]);
        assert.ok(cas[0]?.notAfter instanceof Date);
      });

      it('updates state and publishUntil, including back to null', async () => {
        const key = signingKey({ state: 'active' });
        await store.putSigningKey(key);
        await store.updateSigningKeyState(key.id, 'retired', at(42));
        assert.deepEqual(await findKey(store, key), { ...key, state: 'retired', publishUntil: at(42) });
        await store.updateSigningKeyState(key.id, 'active', null);
        assert.deepEqual(await findKey(store, key), { ...key, state: 'active', publishUntil: null });
      });

      it('rejects updating an unknown key with ERR_NOT_FOUND', async () => {
        await assert.rejects(store.updateSigningKeyState(`missing-${randomUUID()}`, 'retired', null), code('ERR_NOT_FOUND'));
      });

      it('rejects a second key with the same id with ERR_CONFLICT and keeps the first', async () => {
        const key = signingKey();
        await store.putSigningKey(key);
        await assert.rejects(store.putSigningKey({ ...key, privateKeyEnc: 'other' }), code('ERR_CONFLICT'));
        assert.deepEqual(await findKey(store, key), key);
      });

      it('lists keys oldest first', async () => {
        const tag = randomUUID();
        const keys = [3, 1, 2].map((n) => signingKey({ id: `${tag}-${n}`, createdAt: at(n) }));
        for (const k of keys) await store.putSigningKey(k);
        const listed = (await store.listSigningKeys('x509-ca')).filter((k) => k.id.startsWith(tag));
        assert.deepEqual(listed.map((k) => k.id), [`${tag}-1`, `${tag}-2`, `${tag}-3`]);
      });

      it('deletes a key; deleting an unknown key is not an error', async () => {
        const key = signingKey();
        await store.putSigningKey(key);
        await store.deleteSigningKey(key.id);
        assert.equal(await findKey(store, key), undefined);
        await store.deleteSigningKey(key.id);
      });

      it('rejects an invalid Date instead of storing it', async () => {
        await assert.rejects(store.putSigningKey(signingKey({ notAfter: new Date(Number.NaN) })), code('ERR_INTERNAL'));
      });
    });

    describe('bundle sequence', () => {
      it('increments by one on each bump and reads back the latest value', async () => {
        const start = await store.getBundleSequence();
        assert.ok(Number.isInteger(start) && start >= 0);
        assert.equal(await store.bumpBundleSequence(), start + 1);
        assert.equal(await store.bumpBundleSequence(), start + 2);
        assert.equal(await store.getBundleSequence(), start + 2);
      });

      it('gives 20 concurrent bumps 20 distinct consecutive values', async () => {
        const start = await store.getBundleSequence();
        const got = await Promise.all(Array.from({ length: 20 }, () => store.bumpBundleSequence()));
        assert.deepEqual(
          [...got].sort((a, b) => a - b),
          Array.from({ length: 20 }, (_, i) => start + 1 + i),
        );
        assert.equal(await store.getBundleSequence(), start + 20);
      });
    });

    describe('registration entries', () => {
      it('round-trips every field, keeping selector order and unicode metadata', async () => {
        const entry = registrationEntry({
          selectors: ['k8s:ns:payments', 'k8s:sa:agent', 'unix:uid:1000', 'k8s:ns:payments'],
          metadata: { owner: 'équipe-paiements', note: 'quotes " and \\ and 日本', empty: '' },
        });
        await store.createEntry(entry);
        const got = await store.getEntry(entry.id);
        assert.deepEqual(got, entry);
        assert.ok(got?.createdAt instanceof Date);
      });

      it('round-trips empty selectors and metadata', async () => {
        const entry = registrationEntry({ selectors: [], metadata: {} });
        await store.createEntry(entry);
        assert.deepEqual(await store.getEntry(entry.id), entry);
      });

      it('returns null for an unknown id', async () => {
        assert.equal(await store.getEntry(`missing-${randomUUID()}`), null);
      });

      it('rejects a duplicate id with ERR_CONFLICT and keeps the first', async () => {
        const entry = registrationEntry();
        await store.createEntry(entry);
        await assert.rejects(store.createEntry({ ...entry, spiffeId: 'spiffe://example.org/other' }), code('ERR_CONFLICT'));
        assert.deepEqual(await store.getEntry(entry.id), entry);
      });

      it('lists entries oldest first, ties broken by id', async () => {
        const tag = randomUUID();
        const entries = [
          registrationEntry({ id: `${tag}-c`, createdAt: at(2) }),
          registrationEntry({ id: `${tag}-b`, createdAt: at(1) }),
          registrationEntry({ id: `${tag}-a`, createdAt: at(2) }),
        ];
        for (const e of entries) await store.createEntry(e);
        const listed = (await store.listEntries()).filter((e) => e.id.startsWith(tag));
        assert.deepEqual(listed.map((e) => e.id), [`${tag}-b`, `${tag}-a`, `${tag}-c`]);
        assert.deepEqual(listed[0], entries[1]);
      });

      it('lists by SPIFFE ID only the entries for that ID, oldest first', async () => {
        const spiffeId = `spiffe://example.org/agent/${randomUUID()}`;
        const first = registrationEntry({ spiffeId, createdAt: at(1) });
        const second = registrationEntry({ spiffeId, createdAt: at(5) });
        const other = registrationEntry({ spiffeId: `${spiffeId}/sub` });
        for (const e of [second, other, first]) await store.createEntry(e);
        assert.deepEqual(await store.listEntriesBySpiffeId(spiffeId), [first, second]);
        assert.deepEqual(await store.listEntriesBySpiffeId(`spiffe://example.org/none/${randomUUID()}`), []);
      });

      it('deletes an entry once: true, then false', async () => {
        const entry = registrationEntry();
        await store.createEntry(entry);
        assert.equal(await store.deleteEntry(entry.id), true);
        assert.equal(await store.getEntry(entry.id), null);
        assert.equal(await store.deleteEntry(entry.id), false);
      });
    });

    describe('join tokens', () => {
      it('consumes an unused token once, then reports it used with the first usedAt', async () => {
        const token = await newJoinToken(store);
        const first = await store.consumeJoinToken(token.secretHash, at(100));
        assert.deepEqual(first, { token: { ...token, usedAt: at(100) }, consumed: true });
        const second = await store.consumeJoinToken(token.secretHash, at(200));
        assert.deepEqual(second, { token: { ...token, usedAt: at(100) }, consumed: false });
      });

      it('returns null for an unknown secret hash', async () => {
        assert.equal(await store.consumeJoinToken(hex(32), at(1)), null);
      });

      it('stores a token created already used as used', async () => {
        const token = await newJoinToken(store, { usedAt: at(7) });
        assert.deepEqual(await store.consumeJoinToken(token.secretHash, at(8)), { token, consumed: false });
      });

      it('lets exactly one of 20 concurrent consumers have the token', async () => {
        const token = await newJoinToken(store);
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.consumeJoinToken(token.secretHash, at(1000 + i))),
        );
        const winners = results.filter((r) => r?.consumed === true);
        assert.equal(winners.length, 1);
        const usedAt = winners[0]?.token.usedAt;
        assert.ok(usedAt instanceof Date);
        for (const r of results) assert.deepEqual(r?.token, { ...token, usedAt });
      });

      it('rejects a duplicate id or secret hash with ERR_CONFLICT', async () => {
        const token = await newJoinToken(store);
        await assert.rejects(store.createJoinToken({ ...token, secretHash: hex(32) }), code('ERR_CONFLICT'));
        await assert.rejects(store.createJoinToken({ ...token, id: randomUUID() }), code('ERR_CONFLICT'));
      });

      it('rejects a token for an unknown registration entry with ERR_NOT_FOUND', async () => {
        const token = joinToken({ entryId: `missing-${randomUUID()}` });
        await assert.rejects(store.createJoinToken(token), code('ERR_NOT_FOUND'));
      });

      it('forgets the tokens of a deleted registration entry', async () => {
        const token = await newJoinToken(store);
        assert.equal(await store.deleteEntry(token.entryId), true);
        assert.equal(await store.consumeJoinToken(token.secretHash, at(1)), null);
      });
    });

    describe('admin tokens', () => {
      it('creates, finds by hash, counts and deletes all', async () => {
        await store.deleteAdminTokens();
        assert.equal(await store.countAdminTokens(), 0);
        const a = adminToken();
        const b = adminToken();
        await store.createAdminToken(a);
        await store.createAdminToken(b);
        assert.equal(await store.countAdminTokens(), 2);
        const found = await store.findAdminToken(b.secretHash);
        assert.deepEqual(found, b);
        assert.ok(found?.createdAt instanceof Date);
        assert.equal(await store.findAdminToken(hex(32)), null);
        await assert.rejects(store.createAdminToken({ ...adminToken(), secretHash: a.secretHash }), code('ERR_CONFLICT'));
        await assert.rejects(store.createAdminToken({ ...a, secretHash: hex(32) }), code('ERR_CONFLICT'));
        assert.equal(await store.countAdminTokens(), 2);
        await store.deleteAdminTokens();
        assert.equal(await store.countAdminTokens(), 0);
        assert.equal(await store.findAdminToken(a.secretHash), null);
      });
    });

    describe('federated bundles', () => {
      it('round-trips the bundle text byte for byte', async () => {
        const bundle = federatedBundle({ bundle: '{ "keys" : [ ],\n  "spiffe_sequence": 7, "z": 1, "a": 2 }' });
        await store.putFederatedBundle(bundle);
        const got = await store.getFederatedBundle(bundle.trustDomain);
        assert.deepEqual(got, bundle);
        assert.ok(got?.refreshedAt instanceof Date);
      });

      it('replaces the bundle of a trust domain on a second put', async () => {
        const first = federatedBundle();
        await store.putFederatedBundle(first);
        const second = { ...first, bundle: '{"keys":[{"kty":"EC"}]}', source: 'https://b.example/bundle', refreshedAt: at(77) };
        await store.putFederatedBundle(second);
        assert.deepEqual(await store.getFederatedBundle(first.trustDomain), second);
        const listed = (await store.listFederatedBundles()).filter((b) => b.trustDomain === first.trustDomain);
        assert.deepEqual(listed, [second]);
      });

      it('returns null for an unknown trust domain', async () => {
        assert.equal(await store.getFederatedBundle(`${hex(8)}.unknown.example`), null);
      });

      it('lists bundles ordered by trust domain', async () => {
        const tag = hex(8);
        const domains = [`c-${tag}.example`, `a-${tag}.example`, `b-${tag}.example`];
        for (const d of domains) await store.putFederatedBundle(federatedBundle({ trustDomain: d }));
        const listed = (await store.listFederatedBundles()).filter((b) => b.trustDomain.includes(tag));
        assert.deepEqual(listed.map((b) => b.trustDomain), [...domains].sort());
      });
    });

    describe('persistence and migrations', () => {
      it('opens again on the same database at the same schema version, seeing existing data', async () => {
        const entry = registrationEntry();
        await store.createEntry(entry);
        const again = await open();
        try {
          assert.equal(await again.schemaVersion(), await store.schemaVersion());
          assert.deepEqual(await again.getEntry(entry.id), entry);
        } finally {
          await again.close();
        }
      });

      it('keeps data written before a close', async () => {
        const writer = await open();
        const entry = registrationEntry();
        const bundle = federatedBundle();
        let sequence: number;
        try {
          await writer.createEntry(entry);
          await writer.putFederatedBundle(bundle);
          sequence = await writer.bumpBundleSequence();
        } finally {
          await writer.close();
        }
        const reader = await open();
        try {
          assert.deepEqual(await reader.getEntry(entry.id), entry);
          assert.deepEqual(await reader.getFederatedBundle(bundle.trustDomain), bundle);
          assert.ok((await reader.getBundleSequence()) >= sequence);
        } finally {
          await reader.close();
        }
      });

      it('rejects calls on a closed store with ERR_STORE', async () => {
        const closed = await open();
        await closed.close();
        await assert.rejects(closed.getEntry('x'), code('ERR_STORE'));
      });
    });
  });
}

/** A fixed instant plus `n` seconds, with non-zero milliseconds so precision loss would show. */
function at(n: number): Date {
  return new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678) + n * 1000);
}

function hex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

function code(expected: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isMandateError(err), `expected a MandateError, got ${String(err)}`);
    assert.equal(err.code, expected, err.message);
    return true;
  };
}

async function findKey(store: Store, key: SigningKeyRecord): Promise<SigningKeyRecord | undefined> {
  return (await store.listSigningKeys(key.kind)).find((k) => k.id === key.id);
}

function signingKey(over: Partial<SigningKeyRecord> = {}): SigningKeyRecord {
  return {
    id: randomUUID(),
    kind: 'x509-ca',
    state: 'prepared',
    publicData: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
    privateKeyEnc: `v1.${hex(24)}`,
    trustAnchors: '-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n',
    notAfter: at(86_400),
    createdAt: at(0),
    publishUntil: null,
    ...over,
  };
}

function registrationEntry(over: Partial<RegistrationEntry> = {}): RegistrationEntry {
  return {
    id: randomUUID(),
    spiffeId: `spiffe://example.org/agent/${randomUUID()}`,
    selectors: ['k8s:ns:default'],
    x509SvidTtl: 3600,
    jwtSvidTtl: 300,
    metadata: { owner: 'tests' },
    createdAt: at(0),
    ...over,
  };
}

function joinToken(over: Partial<JoinTokenRecord> = {}): JoinTokenRecord {
  return {
    id: randomUUID(),
    secretHash: hex(32),
    entryId: randomUUID(),
    expiresAt: at(600),
    usedAt: null,
    createdAt: at(0),
    ...over,
  };
}

/** A join token for a fresh registration entry, already stored. */
async function newJoinToken(store: Store, over: Partial<JoinTokenRecord> = {}): Promise<JoinTokenRecord> {
  const entry = registrationEntry();
  await store.createEntry(entry);
  const token = joinToken({ entryId: entry.id, ...over });
  await store.createJoinToken(token);
  return token;
}

function adminToken(): AdminTokenRecord {
  return { id: randomUUID(), secretHash: hex(32), createdAt: at(0) };
}

function federatedBundle(over: Partial<FederatedBundleRecord> = {}): FederatedBundleRecord {
  return {
    trustDomain: `${hex(6)}.partner.example`,
    bundle: '{"keys":[],"spiffe_sequence":1}',
    source: 'file:/etc/mandate/partner-bundle.json',
    refreshedAt: at(0),
    ...over,
  };
}
