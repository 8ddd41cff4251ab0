import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { isMandateError } from '../errors.ts';
import type {
  AdminTokenRecord,
  AuditCheckpointRecord,
  AuditQuery,
  AuditRecord,
  EphemeralRecord,
  FederatedBundleRecord,
  JoinTokenRecord,
  MandateRecord,
  OAuthClientRecord,
  RefreshTokenRecord,
  RegistrationEntry,
  RevocationRecord,
  SigningKeyRecord,
  Store,
  UserRecord,
  VaultOwner,
  VaultSecretRecord,
} from './store.ts';

/**
 * The one behavioural suite every Store implementation must pass (run by sqlite-store.test.ts and
 * postgres-store.test.ts).
 *
 * `open` must return a store on the SAME database every time it is called (same file, same
 * schema): the suite opens it more than once to prove migrations are idempotent and data
 * persists, and keeps a second store open beside the first so that concurrency cases race two
 * connections. Cases share that database, so each works on its own random ids (and dates no
 * other case uses, where a case prunes by date). `cleanup` runs once at the end with the suite's
 * store still open; the suite closes the store afterwards.
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
    /** A second store on the same database: concurrent callers alternate between the two. */
    let second: S;
    const either = (i: number): S => (i % 2 === 0 ? store : second);
    before(async () => {
      store = await open();
      second = await open();
    });
    after(async () => {
      try {
        await second.close();
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

      it('round-trips an oauth key, listed apart from the identity keys', async () => {
        const key = signingKey({
          kind: 'oauth',
          state: 'active',
          publicData: '{"kty":"EC","crv":"P-256","kid":"k1"}',
          trustAnchors: '',
        });
        await store.putSigningKey(key);
        assert.deepEqual(await findKey(store, key), key);
        for (const kind of ['x509-ca', 'jwt'] as const) {
          assert.equal((await store.listSigningKeys(kind)).find((k) => k.id === key.id), undefined);
        }
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

    describe('users', () => {
      it('round-trips every field, dates to the millisecond', async () => {
        const u = user({ failedLogins: 2, lockedUntil: at(300), disabled: true, displayName: 'Zoë "Z" Ångström 日本' });
        await store.createUser(u);
        const got = await store.getUser(u.id);
        assert.deepEqual(got, u);
        assert.ok(got?.createdAt instanceof Date && got.lockedUntil instanceof Date);
      });

      it('stores the username lower-case and finds it whatever the case', async () => {
        const tag = hex(4);
        const u = user({ username: `Alice.ÉTÉ-${tag}` });
        await store.createUser(u);
        const stored = { ...u, username: `alice.été-${tag}` };
        assert.deepEqual(await store.getUser(u.id), stored);
        assert.deepEqual(await store.findUserByUsername(`ALICE.ÉTÉ-${tag.toUpperCase()}`), stored);
        assert.deepEqual(await store.findUserByUsername(`alice.été-${tag}`), stored);
      });

      it('rejects a taken username (in any case) or id with ERR_CONFLICT and keeps the first', async () => {
        const u = user({ username: `bob-${hex(4)}` });
        await store.createUser(u);
        await assert.rejects(store.createUser(user({ username: u.username.toUpperCase() })), code('ERR_CONFLICT'));
        await assert.rejects(store.createUser({ ...u, username: `other-${hex(4)}` }), code('ERR_CONFLICT'));
        assert.deepEqual(await store.getUser(u.id), u);
      });

      it('returns null for an unknown id or username', async () => {
        assert.equal(await store.getUser(`missing-${randomUUID()}`), null);
        assert.equal(await store.findUserByUsername(`missing-${hex(8)}`), null);
      });

      it('lists users ordered by username', async () => {
        const tag = hex(6);
        const users = ['c', 'a', 'b'].map((n, i) => user({ username: `${tag}-${n}`, createdAt: at(i) }));
        for (const u of users) await store.createUser(u);
        const listed = (await store.listUsers()).filter((u) => u.username.startsWith(tag));
        assert.deepEqual(listed, [users[1], users[2], users[0]]);
      });

      it('updates only the given fields, and reports whether the user exists', async () => {
        const u = user();
        await store.createUser(u);
        assert.equal(await store.updateUser(u.id, { displayName: 'New Name' }), true);
        assert.deepEqual(await store.getUser(u.id), { ...u, displayName: 'New Name' });
        assert.equal(await store.updateUser(u.id, { passwordHash: '$scrypt$new', disabled: true }), true);
        const changed = { ...u, displayName: 'New Name', passwordHash: '$scrypt$new', disabled: true };
        assert.deepEqual(await store.getUser(u.id), changed);
        assert.equal(await store.updateUser(u.id, { disabled: false, displayName: undefined }), true);
        assert.deepEqual(await store.getUser(u.id), { ...changed, disabled: false });
        assert.equal(await store.updateUser(u.id, {}), true);
        const missing = `missing-${randomUUID()}`;
        assert.equal(await store.updateUser(missing, { displayName: 'x' }), false);
        assert.equal(await store.updateUser(missing, {}), false);
      });

      it('counts failed sign-ins, locks at the threshold and starts counting again', async () => {
        const u = user();
        await store.createUser(u);
        const fail = () => store.recordLoginFailure(u.id, 3, at(900));
        assert.deepEqual(await fail(), { ...u, failedLogins: 1, lockedUntil: null });
        assert.deepEqual(await fail(), { ...u, failedLogins: 2, lockedUntil: null });
        assert.deepEqual(await fail(), { ...u, failedLogins: 0, lockedUntil: at(900) });
        // Later failures count again without shortening or lifting the lock.
        assert.deepEqual(await fail(), { ...u, failedLogins: 1, lockedUntil: at(900) });
        assert.deepEqual(await store.getUser(u.id), { ...u, failedLogins: 1, lockedUntil: at(900) });
        await store.recordLoginSuccess(u.id);
        assert.deepEqual(await store.getUser(u.id), u);
      });

      it('locks on every failure when the threshold is 1', async () => {
        const u = user();
        await store.createUser(u);
        assert.deepEqual(await store.recordLoginFailure(u.id, 1, at(60)), { ...u, lockedUntil: at(60) });
        assert.deepEqual(await store.recordLoginFailure(u.id, 1, at(120)), { ...u, lockedUntil: at(120) });
      });

      it('counts 10 concurrent failures from two connections without losing one', async () => {
        const u = user();
        await store.createUser(u);
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) => either(i).recordLoginFailure(u.id, 4, at(500))),
        );
        // Each failure saw the one before it: counts 1,2,3,lock, 1,2,3,lock, 1,2 in some order.
        assert.deepEqual(results.map((r) => r?.failedLogins).sort(), [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]);
        assert.deepEqual(await store.getUser(u.id), { ...u, failedLogins: 2, lockedUntil: at(500) });
      });

      it('returns null when counting a failure of an unknown user; success on one is a no-op', async () => {
        const missing = `missing-${randomUUID()}`;
        assert.equal(await store.recordLoginFailure(missing, 3, at(1)), null);
        await store.recordLoginSuccess(missing);
        assert.equal(await store.getUser(missing), null);
      });

      it('rejects a threshold below 1 or not an integer with ERR_INTERNAL', async () => {
        const u = user();
        await store.createUser(u);
        for (const max of [0, -1, 1.5, Number.NaN]) {
          await assert.rejects(store.recordLoginFailure(u.id, max, at(1)), code('ERR_INTERNAL'), `max ${max}`);
        }
        assert.deepEqual(await store.getUser(u.id), u);
      });

      it('deletes a user once: true, then false', async () => {
        const u = user();
        await store.createUser(u);
        assert.equal(await store.deleteUser(u.id), true);
        assert.equal(await store.getUser(u.id), null);
        assert.equal(await store.findUserByUsername(u.username), null);
        assert.equal(await store.deleteUser(u.id), false);
      });
    });

    describe('mandates', () => {
      it('round-trips every field, nested constraints included, dates to the millisecond', async () => {
        const m = mandate({
          scopes: ['issues:read', 'issues:comment', 'issues:read'],
          resources: ['https://tools.example/mcp', 'https://api.example/v1?x=1'],
          constraints: {
            repository: 'acme/api',
            limits: { perDay: 20, ratio: 0.25, largest: Number.MAX_SAFE_INTEGER, negative: -3 },
            branches: ['main', 'release/*'],
            flags: [true, false, null],
            deep: { a: { b: { c: [1, { d: 'é 日本 "quoted" \\ back' }] } } },
            empty: {},
            none: [],
          },
          maxDepth: 2,
          createdAt: at(1),
          expiresAt: at(28_800),
        });
        await store.createMandate(m);
        const got = await store.getMandate(m.id);
        assert.deepEqual(got, m);
        assert.ok(got?.createdAt instanceof Date && got.expiresAt instanceof Date);
      });

      it('round-trips an admin mandate without client and a mandate created revoked', async () => {
        const admin = mandate({ origin: 'admin', clientId: null, agent: 'spiffe://example.org/agent/team/*' });
        const revoked = mandate({ status: 'revoked', revokedAt: at(30), revokedBy: 'admin' });
        await store.createMandate(admin);
        await store.createMandate(revoked);
        assert.deepEqual(await store.getMandate(admin.id), admin);
        assert.deepEqual(await store.getMandate(revoked.id), revoked);
      });

      it('returns null for an unknown id', async () => {
        assert.equal(await store.getMandate(`missing-${randomUUID()}`), null);
      });

      it('rejects a duplicate id with ERR_CONFLICT and keeps the first', async () => {
        const m = mandate();
        await store.createMandate(m);
        await assert.rejects(store.createMandate({ ...m, scopes: ['everything'] }), code('ERR_CONFLICT'));
        assert.deepEqual(await store.getMandate(m.id), m);
      });

      it('rejects a negative maxDepth, an invalid Date or constraints JSON cannot hold with ERR_INTERNAL', async () => {
        await assert.rejects(store.createMandate(mandate({ maxDepth: -1 })), code('ERR_INTERNAL'));
        await assert.rejects(store.createMandate(mandate({ expiresAt: new Date(Number.NaN) })), code('ERR_INTERNAL'));
        const bad = mandate({ constraints: undefined as unknown as Record<string, unknown> });
        await assert.rejects(store.createMandate(bad), code('ERR_INTERNAL'));
        assert.equal(await store.getMandate(bad.id), null);
      });

      it('lists newest first, ties broken by id (descending)', async () => {
        const issuer = issuerUrl();
        const principal = { issuer, subject: 'alice', name: 'Alice' };
        const ms = [
          mandate({ id: `${issuer}-a`, principal, createdAt: at(1) }),
          mandate({ id: `${issuer}-b`, principal, createdAt: at(3) }),
          mandate({ id: `${issuer}-c`, principal, createdAt: at(3) }),
          mandate({ id: `${issuer}-d`, principal, createdAt: at(2) }),
        ];
        for (const m of ms) await store.createMandate(m);
        const listed = await store.listMandates({ principalIssuer: issuer });
        assert.deepEqual(listed.map((m) => m.id), [`${issuer}-c`, `${issuer}-b`, `${issuer}-d`, `${issuer}-a`]);
        assert.deepEqual(listed[3], ms[0]);
        const all = await store.listMandates({});
        const mine = all.filter((m) => m.principal.issuer === issuer).map((m) => m.id);
        assert.deepEqual(mine, listed.map((m) => m.id));
        for (let i = 1; i < all.length; i++) {
          assert.ok((all[i - 1]?.createdAt.getTime() ?? 0) >= (all[i]?.createdAt.getTime() ?? 0), 'newest first');
        }
      });

      it('filters by principal issuer and subject, each on its own or together', async () => {
        const issuer = issuerUrl();
        const other = issuerUrl();
        const alice = mandate({ principal: { issuer, subject: 'alice', name: 'Alice' }, createdAt: at(3) });
        const bob = mandate({ principal: { issuer, subject: 'bob', name: 'Bob' }, createdAt: at(2) });
        const aliceElsewhere = mandate({
          principal: { issuer: other, subject: 'alice', name: 'Alice' },
          createdAt: at(1),
        });
        for (const m of [alice, bob, aliceElsewhere]) await store.createMandate(m);
        assert.deepEqual(await store.listMandates({ principalIssuer: issuer }), [alice, bob]);
        assert.deepEqual(await store.listMandates({ principalIssuer: issuer, principalSubject: 'alice' }), [alice]);
        assert.deepEqual(await store.listMandates({ principalIssuer: other, principalSubject: 'bob' }), []);
        const bySubject = (await store.listMandates({ principalSubject: 'alice' })).filter((m) =>
          [issuer, other].includes(m.principal.issuer),
        );
        assert.deepEqual(bySubject, [alice, aliceElsewhere]);
      });

      it('filters by the stored agent exactly, a pattern being just its own text', async () => {
        const base = `spiffe://example.org/agent/${hex(6)}`;
        const pattern = mandate({ agent: `${base}/*`, createdAt: at(2) });
        const exact = mandate({ agent: `${base}/triage`, createdAt: at(1) });
        await store.createMandate(pattern);
        await store.createMandate(exact);
        assert.deepEqual(await store.listMandates({ agent: `${base}/*` }), [pattern]);
        assert.deepEqual(await store.listMandates({ agent: `${base}/triage` }), [exact]);
        assert.deepEqual(await store.listMandates({ agent: base }), []);
      });

      it('filters by status and by liveAt (expiring strictly after it)', async () => {
        const issuer = issuerUrl();
        const principal = { issuer, subject: 'alice', name: 'Alice' };
        const live = mandate({ principal, createdAt: at(3), expiresAt: at(1000) });
        const endsAtCutoff = mandate({ principal, createdAt: at(2), expiresAt: at(500) });
        const revoked = mandate({
          principal,
          createdAt: at(1),
          expiresAt: at(1000),
          status: 'revoked',
          revokedAt: at(5),
          revokedBy: 'alice',
        });
        for (const m of [live, endsAtCutoff, revoked]) await store.createMandate(m);
        assert.deepEqual(await store.listMandates({ principalIssuer: issuer, status: 'active' }), [live, endsAtCutoff]);
        assert.deepEqual(await store.listMandates({ principalIssuer: issuer, status: 'revoked' }), [revoked]);
        assert.deepEqual(await store.listMandates({ principalIssuer: issuer, liveAt: at(500) }), [live, revoked]);
        const justBefore = new Date(at(500).getTime() - 1);
        assert.deepEqual(await store.listMandates({ principalIssuer: issuer, liveAt: justBefore }), [
          live,
          endsAtCutoff,
          revoked,
        ]);
        const everyFilter = { principalIssuer: issuer, principalSubject: 'alice', status: 'active', liveAt: at(500) } as const;
        assert.deepEqual(await store.listMandates(everyFilter), [live]);
        // expiredBy is inclusive: with liveAt it selects the mandates that expired in (liveAt, expiredBy].
        assert.deepEqual(await store.listMandates({ principalIssuer: issuer, liveAt: justBefore, expiredBy: at(500) }), [endsAtCutoff]);
        assert.deepEqual(await store.listMandates({ principalIssuer: issuer, liveAt: at(500), expiredBy: at(999) }), []);
      });

      it('applies the limit after ordering; 0 gives none; a negative or fractional limit is ERR_INTERNAL', async () => {
        const issuer = issuerUrl();
        const principal = { issuer, subject: 'alice', name: 'Alice' };
        const ms = [1, 2, 3, 4].map((n) => mandate({ principal, createdAt: at(n) }));
        for (const m of ms) await store.createMandate(m);
        assert.deepEqual(await store.listMandates({ principalIssuer: issuer, limit: 2 }), [ms[3], ms[2]]);
        assert.deepEqual(await store.listMandates({ principalIssuer: issuer, limit: 10 }), [...ms].reverse());
        assert.deepEqual(await store.listMandates({ principalIssuer: issuer, limit: 0 }), []);
        for (const limit of [-1, 1.5, Number.NaN]) {
          const listing = store.listMandates({ principalIssuer: issuer, limit });
          await assert.rejects(listing, code('ERR_INTERNAL'), `limit ${limit}`);
        }
      });
    });

    describe('mandate revocation and the revocation list', () => {
      it('revokes an active mandate and appends one mandate entry with its expiry', async () => {
        const m = mandate({ expiresAt: at(7200) });
        await store.createMandate(m);
        const mark = await newestSeq(store);
        const revoked = { ...m, status: 'revoked' as const, revokedAt: at(60), revokedBy: 'admin' };
        assert.deepEqual(await store.revokeMandate(m.id, 'admin', at(60)), { mandate: revoked, revoked: true });
        assert.deepEqual(await store.getMandate(m.id), revoked);
        const entries = await store.listRevocations(mark, 100);
        assert.equal(entries.length, 1);
        const seq = entries[0]?.seq ?? 0;
        assert.deepEqual(entries[0], { seq, kind: 'mandate', id: m.id, expiresAt: at(7200), revokedAt: at(60) });
        assert.ok(seq > mark);
      });

      it('returns an already revoked mandate unchanged, without a second entry', async () => {
        const m = mandate();
        await store.createMandate(m);
        const first = await store.revokeMandate(m.id, m.principal.subject, at(60));
        assert.equal(first?.revoked, true);
        const mark = await newestSeq(store);
        assert.deepEqual(await store.revokeMandate(m.id, 'admin', at(120)), { mandate: first?.mandate, revoked: false });
        assert.deepEqual(await store.getMandate(m.id), first?.mandate);
        assert.deepEqual(await store.listRevocations(mark, 100), []);
        assert.equal((await allRevocations(store)).filter((r) => r.id === m.id).length, 1);
      });

      it('leaves a mandate created revoked as it is, and lists nothing for it', async () => {
        const m = mandate({ status: 'revoked', revokedAt: at(5), revokedBy: 'admin' });
        await store.createMandate(m);
        const mark = await newestSeq(store);
        assert.deepEqual(await store.revokeMandate(m.id, 'someone', at(9)), { mandate: m, revoked: false });
        assert.deepEqual(await store.listRevocations(mark, 100), []);
      });

      it('returns null for an unknown mandate and appends nothing', async () => {
        const mark = await newestSeq(store);
        assert.equal(await store.revokeMandate(`missing-${randomUUID()}`, 'admin', at(1)), null);
        assert.deepEqual(await store.listRevocations(mark, 100), []);
      });

      it('revokes once when 20 callers on two connections revoke together', async () => {
        const m = mandate();
        await store.createMandate(m);
        const mark = await newestSeq(store);
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => either(i).revokeMandate(m.id, `by-${i}`, at(100 + i))),
        );
        const final = await store.getMandate(m.id);
        assert.equal(final?.status, 'revoked');
        for (const r of results) assert.deepEqual(r?.mandate, final);
        assert.equal(results.filter((r) => r?.revoked).length, 1, 'exactly one caller revoked it');
        const entries = await store.listRevocations(mark, 100);
        assert.deepEqual(entries.map((e) => [e.kind, e.id, e.revokedAt]), [['mandate', m.id, final?.revokedAt]]);
      });

      it('revokes a token once per jti: a repeat returns the same seq and changes nothing', async () => {
        const jti = randomUUID();
        const seq = await store.revokeToken(jti, at(300), at(10));
        assert.ok(Number.isSafeInteger(seq) && seq > 0, `seq ${seq}`);
        assert.equal(await store.revokeToken(jti, at(900), at(20)), seq);
        assert.deepEqual(await store.listRevocations(seq - 1, 1), [
          { seq, kind: 'token', id: jti, expiresAt: at(300), revokedAt: at(10) },
        ]);
        assert.deepEqual(await store.listRevocations(seq, 100), []);
      });

      it('keeps mandate and token entries apart even when the id is the same', async () => {
        const m = mandate();
        await store.createMandate(m);
        const tokenSeq = await store.revokeToken(m.id, at(300), at(1));
        await store.revokeMandate(m.id, 'admin', at(2));
        const entries = await store.listRevocations(tokenSeq - 1, 100);
        assert.deepEqual(entries.map((e) => [e.kind, e.id]), [['token', m.id], ['mandate', m.id]]);
      });

      it('gives 10 concurrent revocations of one jti one seq and one entry', async () => {
        const jti = randomUUID();
        const mark = await newestSeq(store);
        const seqs = await Promise.all(
          Array.from({ length: 10 }, (_, i) => either(i).revokeToken(jti, at(300), at(i))),
        );
        assert.equal(new Set(seqs).size, 1);
        assert.deepEqual((await store.listRevocations(mark, 100)).map((e) => [e.seq, e.id]), [[seqs[0], jti]]);
      });

      it('hands out growing seqs across mandates and tokens, listed oldest first', async () => {
        const mark = await newestSeq(store);
        const m1 = mandate();
        const m2 = mandate();
        await store.createMandate(m1);
        await store.createMandate(m2);
        const t1 = randomUUID();
        const t2 = randomUUID();
        const s1 = await store.revokeToken(t1, at(300), at(1));
        await store.revokeMandate(m1.id, 'admin', at(2));
        const s3 = await store.revokeToken(t2, at(300), at(3));
        await store.revokeMandate(m2.id, 'admin', at(4));
        const entries = await store.listRevocations(mark, 100);
        assert.deepEqual(
          entries.map((e) => [e.kind, e.id]),
          [['token', t1], ['mandate', m1.id], ['token', t2], ['mandate', m2.id]],
        );
        const seqs = entries.map((e) => e.seq);
        assert.deepEqual([...seqs].sort((a, b) => a - b), seqs);
        assert.equal(new Set(seqs).size, 4);
        assert.equal(seqs[0], s1);
        assert.equal(seqs[2], s3);
        assert.ok((seqs[0] ?? 0) > mark);
      });

      it('pages through the list with afterSeq and limit, without gaps or repeats', async () => {
        const mark = await newestSeq(store);
        const jtis = Array.from({ length: 7 }, () => randomUUID());
        for (const [i, jti] of jtis.entries()) await store.revokeToken(jti, at(300), at(i));
        const seen: string[] = [];
        let after = mark;
        for (;;) {
          const page = await store.listRevocations(after, 3);
          assert.ok(page.length <= 3);
          if (page.length === 0) break;
          seen.push(...page.map((e) => e.id));
          after = page.at(-1)?.seq ?? after;
        }
        assert.deepEqual(seen, jtis);
        assert.deepEqual(await store.listRevocations(mark, 0), []);
      });

      it('lets readers that follow the seq miss no revocation committed concurrently', async () => {
        const mark = await newestSeq(store);
        const jtis = Array.from({ length: 150 }, () => randomUUID());
        // Each reader acts as a verifier: it asks only for what came after the last seq it saw.
        const readers = Array.from({ length: 4 }, (_, i) => ({ from: either(i), after: mark, seen: new Set<string>() }));
        const follow = async (r: (typeof readers)[number]): Promise<void> => {
          for (const e of await r.from.listRevocations(r.after, 1000)) {
            r.seen.add(e.id);
            r.after = e.seq;
          }
        };
        let writing = true;
        const reading = readers.map(async (r) => {
          while (writing) {
            await follow(r);
            await new Promise((resolve) => setImmediate(resolve));
          }
        });
        try {
          await Promise.all(jtis.map((jti, i) => either(i).revokeToken(jti, at(300), at(i))));
        } finally {
          writing = false;
          await Promise.all(reading);
        }
        for (const [i, r] of readers.entries()) {
          await follow(r);
          assert.deepEqual(jtis.filter((j) => !r.seen.has(j)), [], `reader ${i} missed revocations`);
        }
      });

      it('prunes entries that expired before the given time and never reuses a pruned seq', async () => {
        const old = (ms: number) => new Date(Date.UTC(1990, 0, 1) + ms);
        const gone1 = randomUUID();
        const gone2 = randomUUID();
        const kept = randomUUID();
        const m = mandate({ expiresAt: old(-5) });
        await store.createMandate(m);
        await store.revokeToken(kept, old(0), at(1));
        await store.revokeMandate(m.id, 'admin', at(2));
        await store.revokeToken(gone1, old(-1), at(3));
        const newest = await store.revokeToken(gone2, old(-1000), at(4));
        assert.equal(await store.pruneRevocations(old(0)), 3);
        const ids = (await allRevocations(store)).map((e) => e.id);
        assert.ok(ids.includes(kept));
        for (const id of [gone1, gone2, m.id]) assert.ok(!ids.includes(id), `${id} pruned`);
        assert.equal(await store.pruneRevocations(old(0)), 0);
        // The pruned entry had the highest seq; a new one must still come after it.
        assert.ok((await store.revokeToken(randomUUID(), at(300), at(5))) > newest);
        // A pruned jti revoked again gets a new entry.
        assert.ok((await store.revokeToken(gone2, at(300), at(6))) > newest);
        assert.equal(await store.pruneRevocations(old(1)), 1);
      });

      it('rejects a negative or fractional afterSeq or limit with ERR_INTERNAL', async () => {
        for (const [after, limit] of [[-1, 10], [0, -1], [0.5, 10], [0, 2.5], [Number.NaN, 1]] as const) {
          await assert.rejects(store.listRevocations(after, limit), code('ERR_INTERNAL'), `${after}, ${limit}`);
        }
      });
    });

    describe('OAuth clients', () => {
      it('round-trips a confidential client with nested metadata', async () => {
        const client = oauthClient({
          metadata: {
            client_name: 'Triage Bot «beta»',
            redirect_uris: ['https://app.example/cb', 'http://127.0.0.1:8400/cb'],
            grant_types: ['authorization_code', 'refresh_token'],
            token_endpoint_auth_method: 'client_secret_basic',
            jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'f83O', y: 'x_FE', use: 'sig' }] },
            default_max_age: 3600,
            require_auth_time: false,
            software_statement: null,
          },
          secretHash: hex(32),
        });
        await store.createOAuthClient(client);
        const got = await store.getOAuthClient(client.clientId);
        assert.deepEqual(got, client);
        assert.ok(got?.createdAt instanceof Date);
      });

      it('round-trips a public client without secret', async () => {
        const client = oauthClient({ secretHash: null, metadata: { token_endpoint_auth_method: 'none' } });
        await store.createOAuthClient(client);
        assert.deepEqual(await store.getOAuthClient(client.clientId), client);
      });

      it('returns null for an unknown client; rejects a duplicate id with ERR_CONFLICT', async () => {
        assert.equal(await store.getOAuthClient(`missing-${randomUUID()}`), null);
        const client = oauthClient();
        await store.createOAuthClient(client);
        const impostor = { ...client, metadata: { client_name: 'impostor' } };
        await assert.rejects(store.createOAuthClient(impostor), code('ERR_CONFLICT'));
        assert.deepEqual(await store.getOAuthClient(client.clientId), client);
      });

      it('deletes a client once: true, then false', async () => {
        const client = oauthClient();
        await store.createOAuthClient(client);
        assert.equal(await store.deleteOAuthClient(client.clientId), true);
        assert.equal(await store.getOAuthClient(client.clientId), null);
        assert.equal(await store.deleteOAuthClient(client.clientId), false);
      });
    });

    describe('ephemeral records', () => {
      it('round-trips JSON values of every shape', async () => {
        const kind = `kind-${hex(4)}`;
        const values: unknown[] = [
          { clientId: 'cli', scopes: ['a', 'b'], pkce: { method: 'S256', challenge: hex(16) }, n: 1.5, none: null },
          ['x', 1, [2, [3]], {}],
          'plain string with "quotes"',
          42,
          -0.125,
          true,
          false,
          null,
          {},
          [],
        ];
        for (const [i, value] of values.entries()) {
          await store.putEphemeral({ kind, key: `k${i}`, value, expiresAt: at(600) });
        }
        for (const [i, value] of values.entries()) {
          const got = await store.getEphemeral(kind, `k${i}`, at(0));
          assert.deepEqual(got, { kind, key: `k${i}`, value, expiresAt: at(600), usedAt: null }, `value ${i}`);
        }
      });

      it('hides a record from the instant it expires', async () => {
        const r = ephemeral({ expiresAt: at(600) });
        await store.putEphemeral(r);
        const justBefore = new Date(at(600).getTime() - 1);
        assert.deepEqual(await store.getEphemeral(r.kind, r.key, justBefore), { ...r, usedAt: null });
        assert.equal(await store.getEphemeral(r.kind, r.key, at(600)), null);
        assert.equal(await store.getEphemeral(r.kind, r.key, at(601)), null);
      });

      it('returns null for an unknown record, and keeps kinds apart', async () => {
        const r = ephemeral();
        await store.putEphemeral(r);
        assert.equal(await store.getEphemeral(`other-${hex(4)}`, r.key, at(0)), null);
        assert.equal(await store.getEphemeral(r.kind, `missing-${hex(8)}`, at(0)), null);
        const sibling = { ...r, kind: `${r.kind}-2`, value: 'sibling' };
        await store.putEphemeral(sibling);
        assert.equal((await store.consumeEphemeral(sibling.kind, sibling.key, at(1)))?.consumed, true);
        assert.deepEqual(await store.getEphemeral(r.kind, r.key, at(2)), { ...r, usedAt: null });
        assert.deepEqual(await store.getEphemeral(sibling.kind, sibling.key, at(2)), { ...sibling, usedAt: at(1) });
      });

      it('replaces on a second put: new value and expiry, and unused again', async () => {
        const r = ephemeral();
        await store.putEphemeral(r);
        await store.consumeEphemeral(r.kind, r.key, at(5));
        const replaced = { ...r, value: { step: 2 }, expiresAt: at(1200) };
        await store.putEphemeral(replaced);
        assert.deepEqual(await store.getEphemeral(r.kind, r.key, at(700)), { ...replaced, usedAt: null });
        assert.deepEqual(await store.consumeEphemeral(r.kind, r.key, at(701)), {
          record: { ...replaced, usedAt: at(701) },
          consumed: true,
        });
      });

      it('consumes once; a reuse comes back unconsumed with the first usedAt', async () => {
        const r = ephemeral();
        await store.putEphemeral(r);
        const usedRecord = { ...r, usedAt: at(10) };
        assert.deepEqual(await store.consumeEphemeral(r.kind, r.key, at(10)), { record: usedRecord, consumed: true });
        assert.deepEqual(await store.consumeEphemeral(r.kind, r.key, at(20)), { record: usedRecord, consumed: false });
        assert.deepEqual(await store.getEphemeral(r.kind, r.key, at(30)), { ...r, usedAt: at(10) });
      });

      it('returns null when consuming an unknown or expired record, used or not', async () => {
        assert.equal(await store.consumeEphemeral(`kind-${hex(4)}`, hex(16), at(0)), null);
        const unused = ephemeral({ expiresAt: at(100) });
        const used = ephemeral({ expiresAt: at(100) });
        await store.putEphemeral(unused);
        await store.putEphemeral(used);
        await store.consumeEphemeral(used.kind, used.key, at(50));
        assert.equal(await store.consumeEphemeral(unused.kind, unused.key, at(100)), null);
        assert.equal(await store.consumeEphemeral(used.kind, used.key, at(100)), null);
        // Expiry did not mark it used: it is still hidden, not consumed.
        assert.deepEqual(await store.getEphemeral(unused.kind, unused.key, at(99)), { ...unused, usedAt: null });
      });

      it('lets exactly one of 20 concurrent consumers on two connections have it', async () => {
        const r = ephemeral();
        await store.putEphemeral(r);
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => either(i).consumeEphemeral(r.kind, r.key, at(100 + i))),
        );
        const winners = results.filter((x) => x?.consumed === true);
        assert.equal(winners.length, 1);
        const usedAt = winners[0]?.record.usedAt;
        assert.ok(usedAt instanceof Date);
        for (const x of results) assert.deepEqual(x?.record, { ...r, usedAt });
      });

      it('deletes a record once: true, then false', async () => {
        const r = ephemeral();
        await store.putEphemeral(r);
        assert.equal(await store.deleteEphemeral(r.kind, r.key), true);
        assert.equal(await store.getEphemeral(r.kind, r.key, at(0)), null);
        assert.equal(await store.deleteEphemeral(r.kind, r.key), false);
      });

      it('prunes the records that expired before the given time, used or not', async () => {
        const old = (ms: number) => new Date(Date.UTC(1991, 0, 1) + ms);
        const a = ephemeral({ expiresAt: old(-1) });
        const b = ephemeral({ expiresAt: old(-60_000) });
        const atCutoff = ephemeral({ expiresAt: old(0) });
        for (const r of [a, b, atCutoff]) await store.putEphemeral(r);
        await store.consumeEphemeral(b.kind, b.key, old(-70_000));
        assert.equal(await store.pruneEphemeral(old(0)), 2);
        assert.equal(await store.pruneEphemeral(old(0)), 0);
        assert.equal(await store.deleteEphemeral(a.kind, a.key), false);
        assert.equal(await store.deleteEphemeral(b.kind, b.key), false);
        assert.deepEqual(await store.getEphemeral(atCutoff.kind, atCutoff.key, old(-1)), { ...atCutoff, usedAt: null });
        assert.equal(await store.pruneEphemeral(old(1)), 1);
      });

      it('rejects a value JSON cannot represent with ERR_INTERNAL', async () => {
        for (const value of [undefined, () => 1, Symbol('s')]) {
          const r = ephemeral({ value });
          await assert.rejects(store.putEphemeral(r), code('ERR_INTERNAL'));
          assert.equal(await store.getEphemeral(r.kind, r.key, at(0)), null);
        }
      });
    });

    describe('refresh tokens', () => {
      it('consumes a token once with every field intact, then reports the reuse', async () => {
        const t = refreshToken({
          dpopJkt: hex(32),
          scopes: ['issues:read', 'offline_access'],
          resources: ['https://tools.example/mcp'],
        });
        await store.createRefreshToken(t);
        const first = await store.consumeRefreshToken(t.tokenHash, at(100));
        assert.deepEqual(first, { token: { ...t, usedAt: at(100) }, consumed: true });
        assert.ok(first?.token.createdAt instanceof Date && first.token.expiresAt instanceof Date);
        assert.deepEqual(await store.consumeRefreshToken(t.tokenHash, at(200)), {
          token: { ...t, usedAt: at(100) },
          consumed: false,
        });
      });

      it('looks a token up without using it, and not once it has expired', async () => {
        const t = refreshToken({ expiresAt: at(100) });
        await store.createRefreshToken(t);
        assert.deepEqual(await store.getRefreshToken(t.tokenHash, at(10)), t);
        assert.deepEqual(await store.consumeRefreshToken(t.tokenHash, at(20)), { token: { ...t, usedAt: at(20) }, consumed: true }, 'the lookup left it unused');
        assert.deepEqual(await store.getRefreshToken(t.tokenHash, at(30)), { ...t, usedAt: at(20) });
        assert.equal(await store.getRefreshToken(t.tokenHash, at(100)), null);
        assert.equal(await store.getRefreshToken(hex(32), at(0)), null);
      });

      it('round-trips a token without DPoP binding, and one created already used', async () => {
        const unbound = refreshToken({ dpopJkt: null, scopes: [], resources: [] });
        const spent = refreshToken({ usedAt: at(3) });
        await store.createRefreshToken(unbound);
        await store.createRefreshToken(spent);
        assert.deepEqual(await store.consumeRefreshToken(unbound.tokenHash, at(4)), {
          token: { ...unbound, usedAt: at(4) },
          consumed: true,
        });
        assert.deepEqual(await store.consumeRefreshToken(spent.tokenHash, at(4)), { token: spent, consumed: false });
      });

      it('returns null for an unknown token and for an expired one, used or not', async () => {
        assert.equal(await store.consumeRefreshToken(hex(32), at(0)), null);
        const unused = refreshToken({ expiresAt: at(100) });
        const used = refreshToken({ expiresAt: at(100) });
        await store.createRefreshToken(unused);
        await store.createRefreshToken(used);
        await store.consumeRefreshToken(used.tokenHash, at(50));
        assert.equal(await store.consumeRefreshToken(unused.tokenHash, at(100)), null);
        assert.equal(await store.consumeRefreshToken(used.tokenHash, at(100)), null);
        const justBefore = new Date(at(100).getTime() - 1);
        assert.deepEqual(await store.consumeRefreshToken(unused.tokenHash, justBefore), {
          token: { ...unused, usedAt: justBefore },
          consumed: true,
        });
      });

      it('lets exactly one of 20 concurrent consumers on two connections have it', async () => {
        const t = refreshToken();
        await store.createRefreshToken(t);
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => either(i).consumeRefreshToken(t.tokenHash, at(100 + i))),
        );
        const winners = results.filter((x) => x?.consumed === true);
        assert.equal(winners.length, 1);
        const usedAt = winners[0]?.token.usedAt;
        assert.ok(usedAt instanceof Date);
        for (const x of results) assert.deepEqual(x?.token, { ...t, usedAt });
      });

      it('rejects a duplicate hash with ERR_CONFLICT', async () => {
        const t = refreshToken();
        await store.createRefreshToken(t);
        await assert.rejects(store.createRefreshToken({ ...t, familyId: randomUUID() }), code('ERR_CONFLICT'));
        assert.deepEqual((await store.consumeRefreshToken(t.tokenHash, at(1)))?.token.familyId, t.familyId);
      });

      it('revokes a whole family and nothing else', async () => {
        const familyId = randomUUID();
        const family = [1, 2, 3].map((n) => refreshToken({ familyId, createdAt: at(n) }));
        const other = refreshToken();
        for (const t of [...family, other]) await store.createRefreshToken(t);
        await store.consumeRefreshToken(family[0]?.tokenHash ?? '', at(5));
        assert.equal(await store.revokeRefreshFamily(familyId), 3);
        for (const t of family) assert.equal(await store.consumeRefreshToken(t.tokenHash, at(6)), null);
        assert.equal((await store.consumeRefreshToken(other.tokenHash, at(6)))?.consumed, true);
        assert.equal(await store.revokeRefreshFamily(familyId), 0);
        assert.equal(await store.revokeRefreshFamily(randomUUID()), 0);
      });
    });

    describe('audit log', () => {
      /** Appends `n` fresh records at the end of the log and returns them. */
      const appendFresh = async (
        n: number,
        over: (i: number) => Partial<AuditRecord> = () => ({}),
      ): Promise<AuditRecord[]> => {
        const size = await store.auditSize();
        const batch = Array.from({ length: n }, (_, i) => auditRecord(size + i, over(i)));
        await store.appendAuditRecords(batch);
        return batch;
      };

      it('appends a single record and a batch, growing the size by each', async () => {
        const size = await store.auditSize();
        const one = auditRecord(size);
        await store.appendAuditRecords([one]);
        assert.equal(await store.auditSize(), size + 1);
        const batch = Array.from({ length: 250 }, (_, i) => auditRecord(size + 1 + i));
        await store.appendAuditRecords(batch);
        assert.equal(await store.auditSize(), size + 251);
        assert.deepEqual(plain(await store.getAuditRecords(size, size + 251)), plain([one, ...batch]));
      });

      it('treats an empty batch as nothing to append', async () => {
        const size = await store.auditSize();
        await store.appendAuditRecords([]);
        assert.equal(await store.auditSize(), size);
      });

      it('refuses a batch that does not continue the log with ERR_CONFLICT, writing nothing', async () => {
        await appendFresh(2);
        const size = await store.auditSize();
        const before = plain(await store.getAuditRecords(size - 2, size));
        const cases: [string, number[]][] = [
          ['a gap after the end', [size + 1, size + 2]],
          ['overlapping the last record', [size - 1, size]],
          ['starting at 0', [0, 1]],
          ['a gap inside the batch', [size, size + 2]],
          ['a repeated index inside the batch', [size, size]],
          ['indices going backwards', [size, size - 1]],
        ];
        for (const [label, indices] of cases) {
          const batch = indices.map((i) => auditRecord(i));
          await assert.rejects(store.appendAuditRecords(batch), (err: unknown) => {
            code('ERR_CONFLICT')(err);
            assert.match((err as Error).message, /expected .*\d+.*got \d+/, label);
            return true;
          }, label);
          assert.equal(await store.auditSize(), size, label);
        }
        assert.deepEqual(plain(await store.getAuditRecords(size - 2, size + 5)), before);
      });

      it('names the expected and the given start index when refusing', async () => {
        const size = await store.auditSize();
        await assert.rejects(store.appendAuditRecords([auditRecord(size + 7)]), (err: unknown) => {
          code('ERR_CONFLICT')(err);
          assert.match((err as Error).message, new RegExp(`start at index ${size}, got ${size + 7}`));
          return true;
        });
      });

      it('refuses malformed records with ERR_INTERNAL, writing nothing', async () => {
        const size = await store.auditSize();
        const cases: [string, Partial<AuditRecord>][] = [
          ['a 31-byte leaf hash', { leafHash: randomBytes(31) }],
          ['a 33-byte leaf hash', { leafHash: randomBytes(33) }],
          ['an empty leaf hash', { leafHash: new Uint8Array(0) }],
          ['an invalid time', { time: new Date(Number.NaN) }],
          ['a fractional index', { index: size + 0.5 }],
          ['a negative index', { index: -1 }],
          ['an unsafe index', { index: 2 ** 53 }],
        ];
        for (const [label, over] of cases) {
          // The bad record comes second, after a good one that must not be written either.
          const batch = [auditRecord(size), auditRecord(size + 1, over)];
          await assert.rejects(store.appendAuditRecords(batch), code('ERR_INTERNAL'), label);
          assert.equal(await store.auditSize(), size, label);
        }
      });

      it('accepts a leaf hash given as a plain Uint8Array', async () => {
        const size = await store.auditSize();
        const r = auditRecord(size, { leafHash: new Uint8Array(randomBytes(32)) });
        await store.appendAuditRecords([r]);
        assert.deepEqual(plain(await store.getAuditRecords(size, size + 1)), plain([r]));
      });

      it('lets exactly one of two connections appending at the same index win, every time', async () => {
        for (let round = 0; round < 5; round++) {
          const size = await store.auditSize();
          const batches = [0, 1].map(() => Array.from({ length: 20 }, (_, i) => auditRecord(size + i)));
          const results = await Promise.allSettled(batches.map((b, i) => either(i).appendAuditRecords(b)));
          const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
          assert.equal(won.length, 1, `round ${round}: ${results.map((r) => r.status).join(', ')}`);
          for (const r of results) if (r.status === 'rejected') code('ERR_CONFLICT')(r.reason);
          assert.equal(await store.auditSize(), size + 20);
          assert.deepEqual(plain(await second.getAuditRecords(size, size + 20)), plain(batches[won[0] ?? -1] ?? []));
        }
      });

      it('keeps the log contiguous when 10 appenders race, each retrying at the new size', async () => {
        const tag = randomUUID();
        const start = await store.auditSize();
        await Promise.all(
          Array.from({ length: 10 }, async (_, n) => {
            for (;;) {
              const s = either(n);
              const size = await s.auditSize();
              try {
                await s.appendAuditRecords([auditRecord(size, { traceId: tag, tool: `tool-${n}` })]);
                return;
              } catch (err) {
                if (!isMandateError(err, 'ERR_CONFLICT')) throw err;
              }
            }
          }),
        );
        const got = await store.queryAuditRecords({ traceId: tag });
        assert.deepEqual(got.map((r) => r.index), Array.from({ length: 10 }, (_, i) => start + i));
        assert.equal(new Set(got.map((r) => r.tool)).size, 10);
      });

      it('returns the requested range: empty, partial, and clipped at the size', async () => {
        const batch = await appendFresh(5);
        const first = batch[0]?.index ?? -1;
        const size = await store.auditSize();
        assert.deepEqual(await store.getAuditRecords(first, first), []);
        assert.deepEqual(await store.getAuditRecords(first + 3, first + 1), []);
        assert.deepEqual(plain(await store.getAuditRecords(first + 1, first + 4)), plain(batch.slice(1, 4)));
        assert.deepEqual(plain(await store.getAuditRecords(first + 3, size + 100)), plain(batch.slice(3)));
        assert.deepEqual(await store.getAuditRecords(size, size + 10), []);
        assert.deepEqual(await store.getAuditRecords(size + 50, size + 60), []);
        await assert.rejects(store.getAuditRecords(-1, 2), code('ERR_INTERNAL'));
        await assert.rejects(store.getAuditRecords(0, 1.5), code('ERR_INTERNAL'));
      });

      it('returns leaf hashes of a range, in index order, as 32-byte arrays', async () => {
        const batch = await appendFresh(4);
        const first = batch[0]?.index ?? -1;
        const size = await store.auditSize();
        const hashes = await store.getAuditLeafHashes(first, size + 3);
        assert.ok(hashes.every((h) => h instanceof Uint8Array && h.byteLength === 32));
        assert.deepEqual(hashes.map(hexOf), batch.map((r) => hexOf(r.leafHash)));
        const middle = await store.getAuditLeafHashes(first + 1, first + 3);
        assert.deepEqual(middle.map(hexOf), batch.slice(1, 3).map((r) => hexOf(r.leafHash)));
        assert.deepEqual(await store.getAuditLeafHashes(first, first), []);
        assert.deepEqual(await store.getAuditLeafHashes(size, size + 1), []);
        await assert.rejects(store.getAuditLeafHashes(-2, 0), code('ERR_INTERNAL'));
      });

      it('round-trips every field to the millisecond, with all optional fields set or all null', async () => {
        const size = await store.auditSize();
        const full = auditRecord(size, {
          event: '{"decision":"allow","nested":{"s":"\\u0000 😀 </script>"},"type":"tool.call"}',
          time: new Date(Date.UTC(2026, 4, 6, 7, 8, 9, 999)),
          type: 'tool.call',
          agent: 'spiffe://example.org/agent/ü',
          principalIssuer: 'https://idp.example',
          principalSubject: 'alice@example.com',
          mandateId: randomUUID(),
          tool: 'github.create_issue',
          decision: 'allow',
          traceId: hex(16),
        });
        const bare = auditRecord(size + 1, {
          time: new Date(Date.UTC(1999, 11, 31, 23, 59, 59, 1)),
          agent: null,
          principalIssuer: null,
          principalSubject: null,
          mandateId: null,
          tool: null,
          decision: null,
          traceId: null,
        });
        await store.appendAuditRecords([full, bare]);
        const got = await second.getAuditRecords(size, size + 2);
        assert.deepEqual(plain(got), plain([full, bare]));
        assert.ok(got.every((r) => r.time instanceof Date && r.leafHash instanceof Uint8Array));
        const queried = await store.queryAuditRecords({ afterIndex: size - 1, limit: 2 });
        assert.deepEqual(plain(queried), plain([full, bare]));
      });

      it('filters a query by each field, oldest first', async () => {
        const t = hex(6);
        const mk = (i: number): Partial<AuditRecord> => ({
          type: `type-${t}-${i % 2}`,
          agent: `spiffe://example.org/agent/${t}-${i % 3}`,
          principalIssuer: `https://idp-${t}-${i % 2}.example`,
          principalSubject: `sub-${t}-${i % 3}`,
          mandateId: `m-${t}-${i % 4}`,
          tool: `tool-${t}-${i % 5}`,
          decision: i % 2 === 0 ? `allow-${t}` : `deny-${t}`,
          traceId: `trace-${t}-${i % 6}`,
        });
        const batch = await appendFresh(12, mk);
        const ids = (rs: AuditRecord[]): number[] => rs.map((r) => r.index);
        const expect = (pred: (r: AuditRecord) => boolean): number[] => ids(batch.filter(pred));
        const fields = [
          'type', 'agent', 'principalIssuer', 'principalSubject', 'mandateId', 'tool', 'decision', 'traceId',
        ] as const;
        for (const field of fields) {
          const value = batch[4]?.[field] ?? '';
          const got = await store.queryAuditRecords({ [field]: value });
          assert.deepEqual(ids(got), expect((r) => r[field] === value), field);
          assert.ok(got.length >= 1 && got.length < 12, field);
        }
        const principal = {
          principalIssuer: batch[1]?.principalIssuer ?? '',
          principalSubject: batch[1]?.principalSubject ?? '',
        };
        assert.deepEqual(
          ids(await store.queryAuditRecords(principal)),
          expect((r) => r.principalIssuer === principal.principalIssuer && r.principalSubject === principal.principalSubject),
        );
        const both = { agent: batch[0]?.agent ?? '', decision: `allow-${t}` };
        assert.deepEqual(
          ids(await store.queryAuditRecords(both)),
          expect((r) => r.agent === both.agent && r.decision === both.decision),
        );
        assert.deepEqual(await store.queryAuditRecords({ agent: `spiffe://example.org/agent/${t}-none` }), []);
        const trace = batch[7]?.traceId ?? '';
        assert.deepEqual(plain(await store.queryAuditRecords({ traceId: trace })), plain(batch.filter((r) => r.traceId === trace)));
      });

      it('filters by time range (from inclusive, to exclusive), afterIndex and limit', async () => {
        const t = hex(6);
        // Times a millisecond apart in a range no other case uses, appended out of time order.
        const base = Date.UTC(2031, 2, 3, 4, 5, 6, 7);
        const offsets = [5, 0, 3, 1, 4, 2];
        const batch = await appendFresh(6, (i) => ({ tool: `tool-${t}`, time: new Date(base + (offsets[i] ?? 0)) }));
        const ids = (rs: AuditRecord[]): number[] => rs.map((r) => r.index);
        const inRange = (from: number, to: number): number[] =>
          ids(batch.filter((r) => r.time.getTime() >= base + from && r.time.getTime() < base + to));
        const between = async (from: number, to: number): Promise<number[]> =>
          ids(await store.queryAuditRecords({ from: new Date(base + from), to: new Date(base + to) }));
        assert.deepEqual(await between(1, 4), inRange(1, 4));
        assert.deepEqual(await between(5, 6), inRange(5, 6));
        assert.deepEqual(await between(2, 2), []);
        const all = ids(batch);
        assert.deepEqual(ids(await store.queryAuditRecords({ tool: `tool-${t}`, from: new Date(base + 3) })), inRange(3, 99));
        assert.deepEqual(ids(await store.queryAuditRecords({ tool: `tool-${t}`, to: new Date(base + 3) })), inRange(0, 3));
        assert.deepEqual(ids(await store.queryAuditRecords({ tool: `tool-${t}`, afterIndex: all[2] })), all.slice(3));
        assert.deepEqual(ids(await store.queryAuditRecords({ tool: `tool-${t}`, limit: 2 })), all.slice(0, 2));
        assert.deepEqual(ids(await store.queryAuditRecords({ tool: `tool-${t}`, afterIndex: all[1], limit: 3 })), all.slice(2, 5));
        assert.deepEqual(await store.queryAuditRecords({ tool: `tool-${t}`, limit: 0 }), []);
        // Paging with afterIndex visits every record once, in order.
        const paged: number[] = [];
        for (let after: number | undefined; ; ) {
          const page = await store.queryAuditRecords({ tool: `tool-${t}`, afterIndex: after, limit: 4 });
          if (page.length === 0) break;
          paged.push(...ids(page));
          after = page.at(-1)?.index;
        }
        assert.deepEqual(paged, all);
        const first = await store.queryAuditRecords({ afterIndex: -1, limit: 1 });
        assert.deepEqual(ids(first), [0]);
        for (const bad of [{ limit: -1 }, { afterIndex: -2 }, { afterIndex: 0.5 }, { from: new Date(Number.NaN) }]) {
          await assert.rejects(store.queryAuditRecords(bad), code('ERR_INTERNAL'), JSON.stringify(bad));
        }
      });

      it('stores checkpoints, finds each by size and the largest as latest', async () => {
        const base = ((await store.latestAuditCheckpoint())?.size ?? 0) + 1_000;
        const cps = [base + 5, base + 9, base + 3].map((size) => auditCheckpoint({ size }));
        for (const cp of cps) await store.putAuditCheckpoint(cp);
        assert.deepEqual(plainCheckpoint(await store.latestAuditCheckpoint()), plainCheckpoint(cps[1] ?? null));
        for (const cp of cps) {
          assert.deepEqual(plainCheckpoint(await second.getAuditCheckpoint(cp.size)), plainCheckpoint(cp));
        }
        assert.equal(await store.getAuditCheckpoint(base + 4), null);
        assert.deepEqual((await store.listAuditCheckpoints(base + 2, base + 3)).map(plainCheckpoint), cps.filter((c) => c.size >= base + 2 && c.size <= base + 3).map(plainCheckpoint));
        assert.deepEqual((await store.listAuditCheckpoints(base + 3, base + 100)).map((c) => c.size), [base + 3, base + 5, base + 9]);
        assert.deepEqual(await store.listAuditCheckpoints(base + 6, base + 8), []);
        const got = await store.getAuditCheckpoint(base + 3);
        assert.ok(got?.rootHash instanceof Uint8Array && got.rootHash.byteLength === 32 && got.createdAt instanceof Date);
      });

      it('accepts the same checkpoint again but refuses another root for a size with ERR_CONFLICT', async () => {
        const size = ((await store.latestAuditCheckpoint())?.size ?? 0) + 1_000;
        const cp = auditCheckpoint({ size });
        await store.putAuditCheckpoint(cp);
        await store.putAuditCheckpoint({ ...cp, note: `${cp.note}again`, createdAt: at(77) });
        await store.putAuditCheckpoint({ ...cp, rootHash: new Uint8Array(cp.rootHash) });
        await assert.rejects(store.putAuditCheckpoint(auditCheckpoint({ size })), code('ERR_CONFLICT'));
        assert.deepEqual(plainCheckpoint(await store.getAuditCheckpoint(size)), plainCheckpoint(cp));
        const shortRoot = auditCheckpoint({ size: size + 1, rootHash: randomBytes(31) });
        await assert.rejects(store.putAuditCheckpoint(shortRoot), code('ERR_INTERNAL'));
        await assert.rejects(store.putAuditCheckpoint(auditCheckpoint({ size: -1 })), code('ERR_INTERNAL'));
        assert.equal(await store.getAuditCheckpoint(size + 1), null);
      });

      it('appends a batch of 1,000 records in one call', async () => {
        const batch = await appendFresh(1000);
        const first = batch[0]?.index ?? -1;
        assert.equal(await store.auditSize(), first + 1000);
        const hashes = await store.getAuditLeafHashes(first, first + 1000);
        assert.deepEqual(hashes.map(hexOf), batch.map((r) => hexOf(r.leafHash)));
      });

      it('keeps the log across a reopen', async () => {
        const batch = await appendFresh(3);
        const first = batch[0]?.index ?? -1;
        const again = await open();
        try {
          assert.equal(await again.auditSize(), await store.auditSize());
          assert.deepEqual(plain(await again.getAuditRecords(first, first + 3)), plain(batch));
        } finally {
          await again.close();
        }
      });

      it('answers every filter exactly over a long log appended in many batches, oldest first', async () => {
        // 18,000 records: the SQLite store writes the search entries of agent, principal subject,
        // mandate and trace id after the commits, 8,192 records at a time, in buckets of 16,384; so
        // the answers here join indexed records, records not indexed yet, and buckets.
        const t = hex(6);
        const start = Date.UTC(2032, 0, 1);
        const mk = (i: number): Partial<AuditRecord> => ({
          agent: `spiffe://example.org/agent/${t}-${i % 5}`,
          principalIssuer: `https://idp-${t}-${i % 2}.example`,
          principalSubject: `sub-${t}-${i % 7}`,
          mandateId: `m-${t}-${i % 11}`,
          tool: `tool-${t}-${i % 3}`,
          decision: i % 4 === 0 ? 'deny' : 'allow',
          traceId: `trace-${t}-${i % 4001}`,
          time: new Date(start + i),
        });
        const records: AuditRecord[] = [];
        for (let b = 0; b < 12; b++) {
          records.push(...(await appendFresh(1500, (i) => mk(b * 1500 + i))));
          await new Promise((resolve) => setImmediate(resolve)); // a turn for work scheduled after the append
        }
        const r = records[1234] as AuditRecord;
        const ids = (rs: AuditRecord[]): number[] => rs.map((x) => x.index);
        const expect = (pred: (x: AuditRecord) => boolean): number[] => ids(records.filter(pred));
        const from = new Date(start + 5000);
        const to = new Date(start + 16000);
        const cases: [string, AuditQuery, (x: AuditRecord) => boolean][] = [
          ['agent', { agent: r.agent ?? '' }, (x) => x.agent === r.agent],
          ['principal', { principalIssuer: r.principalIssuer ?? '', principalSubject: r.principalSubject ?? '' },
            (x) => x.principalIssuer === r.principalIssuer && x.principalSubject === r.principalSubject],
          ['principal subject', { principalSubject: r.principalSubject ?? '' }, (x) => x.principalSubject === r.principalSubject],
          ['mandate', { mandateId: r.mandateId ?? '' }, (x) => x.mandateId === r.mandateId],
          ['trace id', { traceId: r.traceId ?? '' }, (x) => x.traceId === r.traceId],
          ['agent and tool', { agent: r.agent ?? '', tool: r.tool ?? '' }, (x) => x.agent === r.agent && x.tool === r.tool],
          ['mandate and decision', { mandateId: r.mandateId ?? '', decision: 'deny' }, (x) => x.mandateId === r.mandateId && x.decision === 'deny'],
          ['subject in a time range', { principalSubject: r.principalSubject ?? '', from, to },
            (x) => x.principalSubject === r.principalSubject && x.time >= from && x.time < to],
        ];
        for (const [i, [label, query, pred]] of cases.entries()) {
          const want = expect(pred);
          assert.ok(want.length >= 4, label);
          assert.deepEqual(ids(await either(i).queryAuditRecords(query)), want, label);
          const after = want[1] as number;
          assert.deepEqual(ids(await either(i + 1).queryAuditRecords({ ...query, afterIndex: after, limit: 2 })), want.slice(2, 4), `${label}, a page`);
        }
        // Paging visits every record of an agent once, in order, from anywhere in the log.
        const agent = r.agent ?? '';
        const paged: number[] = [];
        for (let after = (records[700] as AuditRecord).index; ; ) {
          const page = await store.queryAuditRecords({ agent, afterIndex: after, limit: 500 });
          if (page.length === 0) break;
          paged.push(...ids(page));
          after = page.at(-1)?.index ?? Infinity;
        }
        assert.deepEqual(paged, expect((x) => x.agent === agent && x.index > (records[700] as AuditRecord).index));
        assert.deepEqual(await store.queryAuditRecords({ traceId: `trace-${t}-none` }), []);
        assert.deepEqual(plain(await store.queryAuditRecords({ traceId: r.traceId ?? '', limit: 1 })), plain([records[1234 % 4001] as AuditRecord]));
      });

      it('answers the same through a store opened after records were appended, and through the first after it', async () => {
        const t = hex(6);
        const mk = (i: number): Partial<AuditRecord> => ({ agent: `spiffe://example.org/agent/${t}-${i % 2}`, traceId: `trace-${t}-${i % 3}` });
        const before = await appendFresh(300, mk);
        const later = await open();
        try {
          const afterOpen = await appendFresh(30, (i) => mk(i + 1));
          const all = [...before, ...afterOpen];
          for (const [name, s] of [['the later store', later], ['the first store', store]] as const) {
            for (const query of [{ agent: `spiffe://example.org/agent/${t}-1` }, { traceId: `trace-${t}-2` }]) {
              const want = all.filter((x) => x.agent === query.agent || x.traceId === query.traceId);
              assert.deepEqual(plain(await s.queryAuditRecords(query)), plain(want), `${name}: ${JSON.stringify(query)}`);
            }
          }
        } finally {
          await later.close();
        }
      });
    });

    describe('vault secrets', () => {
      it('round-trips a server\'s and a principal\'s secret; an unknown one is null', async () => {
        const server = vaultSecret({ owner: { kind: 'server', server: `tracker-${hex(4)}` } });
        const principal = vaultSecret();
        assert.deepEqual(await store.putVaultSecret(server), infoOf(server));
        assert.deepEqual(await store.putVaultSecret(principal), infoOf(principal));
        assert.deepEqual(await store.getVaultSecret(server.owner, server.name), server);
        assert.deepEqual(await second.getVaultSecret(principal.owner, principal.name), principal);
        assert.equal(await store.getVaultSecret(server.owner, 'missing'), null);
        assert.equal(await store.getVaultSecret({ kind: 'server', server: `none-${hex(4)}` }, server.name), null);
      });

      it('replaces a value in place, keeping createdAt', async () => {
        const first = vaultSecret();
        await store.putVaultSecret(first);
        const replaced = { ...first, valueEnc: `v1.${hex(24)}`, fingerprint: hex(4), createdAt: at(50), updatedAt: at(60) };
        assert.deepEqual(await second.putVaultSecret(replaced), { ...infoOf(replaced), createdAt: first.createdAt });
        assert.deepEqual(await store.getVaultSecret(first.owner, first.name), { ...replaced, createdAt: first.createdAt });
        assert.equal((await store.listVaultSecrets({ owner: first.owner })).length, 1);
      });

      it('keeps owners apart: a server, a principal with the same subject, and one at another issuer', async () => {
        const id = `shared-${hex(4)}`;
        const owners: VaultOwner[] = [
          { kind: 'server', server: id },
          { kind: 'principal', issuer: 'https://mandate.example', subject: id },
          { kind: 'principal', issuer: 'https://login.example.com', subject: id },
        ];
        const secrets = owners.map((owner) => vaultSecret({ owner, name: 'api_token' }));
        for (const s of secrets) await store.putVaultSecret(s);
        for (const s of secrets) assert.deepEqual(await store.getVaultSecret(s.owner, 'api_token'), s);
        assert.equal(await store.deleteVaultSecret(owners[1] as VaultOwner, 'api_token'), true);
        assert.equal(await store.getVaultSecret(owners[1] as VaultOwner, 'api_token'), null);
        assert.deepEqual(await store.getVaultSecret(owners[0] as VaultOwner, 'api_token'), secrets[0]);
        assert.deepEqual(await store.getVaultSecret(owners[2] as VaultOwner, 'api_token'), secrets[2]);
      });

      it('lists one owner\'s, one kind\'s or all secrets, sorted, without the sealed values', async () => {
        const tag = hex(4);
        const alice: VaultOwner = { kind: 'principal', issuer: `https://idp-${tag}.example`, subject: 'alice' };
        const server: VaultOwner = { kind: 'server', server: `srv-${tag}` };
        const made = [
          vaultSecret({ owner: alice, name: 'z_token' }),
          vaultSecret({ owner: server, name: 'key' }),
          vaultSecret({ owner: alice, name: 'a_token' }),
        ];
        for (const s of made) await store.putVaultSecret(s);
        const mine = (list: Array<{ owner: VaultOwner }>) =>
          list.filter((s) => (s.owner.kind === 'server' ? s.owner.server === `srv-${tag}` : s.owner.issuer === alice.issuer));
        const expected = [infoOf(made[2] as VaultSecretRecord), infoOf(made[0] as VaultSecretRecord)];
        assert.deepEqual(await store.listVaultSecrets({ owner: alice }), expected);
        assert.deepEqual(mine(await store.listVaultSecrets({ kind: 'principal' })), expected);
        assert.deepEqual(mine(await store.listVaultSecrets({ kind: 'server' })), [infoOf(made[1] as VaultSecretRecord)]);
        const all = mine(await second.listVaultSecrets({}));
        assert.deepEqual(all, [...expected, infoOf(made[1] as VaultSecretRecord)], 'principals sort before servers');
        for (const s of all) assert.equal('valueEnc' in s, false);
      });

      it('deletes a secret, reporting whether it existed', async () => {
        const s = vaultSecret();
        await store.putVaultSecret(s);
        assert.equal(await second.deleteVaultSecret(s.owner, s.name), true);
        assert.equal(await store.deleteVaultSecret(s.owner, s.name), false);
        assert.equal(await store.getVaultSecret(s.owner, s.name), null);
      });

      it('stores concurrent writes of one secret as one row holding one of them', async () => {
        const base = vaultSecret();
        const writes = Array.from({ length: 8 }, (_, i) => ({ ...base, valueEnc: `v1.${i}`, fingerprint: `f${i}` }));
        await Promise.all(writes.map((w, i) => either(i).putVaultSecret(w)));
        const stored = await store.getVaultSecret(base.owner, base.name);
        assert.ok(stored && writes.some((w) => w.valueEnc === stored.valueEnc && w.fingerprint === stored.fingerprint));
        assert.equal((await store.listVaultSecrets({ owner: base.owner })).length, 1);
      });

      it('refuses a malformed owner with ERR_INTERNAL', async () => {
        await assert.rejects(store.putVaultSecret(vaultSecret({ owner: { kind: 'server', server: '' } })), code('ERR_INTERNAL'));
        await assert.rejects(store.getVaultSecret({ kind: 'principal', issuer: '', subject: 'alice' }, 'x'), code('ERR_INTERNAL'));
        await assert.rejects(store.listVaultSecrets({ kind: 'robot' as VaultOwner['kind'] }), code('ERR_INTERNAL'));
      });

      it('keeps secrets across a reopen', async () => {
        const s = vaultSecret();
        await store.putVaultSecret(s);
        const again = await open();
        try {
          assert.deepEqual(await again.getVaultSecret(s.owner, s.name), s);
        } finally {
          await again.close();
        }
      });
    });

    describe('JSON values', () => {
      it('round-trip every string JSON can carry (NUL, unpaired surrogates, astral characters)', async () => {
        const strings = ['nul \u0000 inside', '\ud800', 'low \udfff alone', '😀 𝄞', 'tab\tnewline\n', '</script>'];
        const m = mandate({ constraints: { strings, nested: { [strings[0] ?? '']: strings } }, scopes: strings });
        await store.createMandate(m);
        assert.deepEqual(await store.getMandate(m.id), m);
        const client = oauthClient({ metadata: { client_name: strings[0], contacts: strings } });
        await store.createOAuthClient(client);
        assert.deepEqual(await store.getOAuthClient(client.clientId), client);
        const r = ephemeral({ value: { strings } });
        await store.putEphemeral(r);
        assert.deepEqual(await store.getEphemeral(r.kind, r.key, at(0)), { ...r, usedAt: null });
        const t = refreshToken({ scopes: strings, resources: strings });
        await store.createRefreshToken(t);
        assert.deepEqual((await store.consumeRefreshToken(t.tokenHash, at(1)))?.token, { ...t, usedAt: at(1) });
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

/** A database at an older schema version holding the given signing keys, and how to open a store on it. */
export interface OldDatabase<S extends Store> {
  /** Opens the store, which runs the pending migrations; called twice. */
  open: () => Promise<S>;
  /** Runs once at the end, with a store still open (the suite closes it afterwards). */
  cleanup?: (s: S) => Promise<void>;
}

/**
 * Upgrading from older schema versions: data written by a build that knew only migrations up to
 * `version` must come through the later migrations intact. `createOld` makes a fresh database
 * with only migrations 1..version applied and writes `keys` into it with that version's SQL.
 *
 * @example
 *   storeUpgradeSuite('sqlite store', async (version, keys) => ({ open: () => openSqliteStore({ path }) }));
 */
export function storeUpgradeSuite<S extends Store>(
  name: string,
  createOld: (version: 1 | 2, keys: SigningKeyRecord[]) => Promise<OldDatabase<S>>,
): void {
  describe(name, () => {
    it('keeps every signing key written at version 1, with its constraints, and accepts oauth keys', async () => {
      const keys = [
        signingKey({ kind: 'x509-ca', state: 'retired', createdAt: at(1), publishUntil: at(99) }),
        signingKey({ kind: 'x509-ca', state: 'active', createdAt: at(2) }),
        signingKey({ kind: 'jwt', trustAnchors: '', publicData: '{"kty":"EC","kid":"j1"}', createdAt: at(3) }),
      ];
      const db = await createOld(1, keys);
      const store = await db.open();
      try {
        assert.ok((await store.schemaVersion()) >= 2);
        assert.deepEqual(await store.listSigningKeys('x509-ca'), [keys[0], keys[1]]);
        assert.deepEqual(await store.listSigningKeys('jwt'), [keys[2]]);
        assert.deepEqual(await store.listSigningKeys('oauth'), []);

        const oauth = signingKey({ kind: 'oauth', trustAnchors: '', publicData: '{"kid":"o1"}', createdAt: at(4) });
        await store.putSigningKey(oauth);
        assert.deepEqual(await store.listSigningKeys('oauth'), [oauth]);
        const audit = signingKey({ kind: 'audit', trustAnchors: '', publicData: 'example.org/audit+0a0b0c0d+AQ', createdAt: at(5) });
        await store.putSigningKey(audit);
        assert.deepEqual(await store.listSigningKeys('audit'), [audit]);
        // The primary key and the CHECK constraints came through the upgrade.
        await assert.rejects(store.putSigningKey({ ...oauth, kind: 'jwt' }), code('ERR_CONFLICT'));
        const badKind = signingKey({ kind: 'ssh' as SigningKeyRecord['kind'] });
        const badState = signingKey({ state: 'lost' as SigningKeyRecord['state'] });
        await assert.rejects(store.putSigningKey(badKind), code('ERR_STORE'));
        await assert.rejects(store.putSigningKey(badState), code('ERR_STORE'));
        await store.updateSigningKeyState(keys[1]?.id ?? '', 'retired', at(50));

        const again = await db.open();
        try {
          assert.equal(await again.schemaVersion(), await store.schemaVersion());
          const retired = { ...keys[1], state: 'retired', publishUntil: at(50) };
          assert.deepEqual(await again.listSigningKeys('x509-ca'), [keys[0], retired]);
          assert.deepEqual(await again.listSigningKeys('oauth'), [oauth]);
        } finally {
          await again.close();
        }
      } finally {
        try {
          await db.cleanup?.(store);
        } finally {
          await store.close();
        }
      }
    });

    it('keeps the data written at version 2 and starts an empty audit log that works', async () => {
      const keys = [
        signingKey({ kind: 'oauth', state: 'active', trustAnchors: '', publicData: '{"kid":"o2"}', createdAt: at(1) }),
        signingKey({ kind: 'jwt', state: 'retired', trustAnchors: '', createdAt: at(2), publishUntil: at(9) }),
      ];
      const db = await createOld(2, keys);
      const store = await db.open();
      try {
        assert.ok((await store.schemaVersion()) >= 3);
        assert.deepEqual(await store.listSigningKeys('oauth'), [keys[0]]);
        assert.deepEqual(await store.listSigningKeys('jwt'), [keys[1]]);
        assert.equal(await store.auditSize(), 0);
        assert.equal(await store.latestAuditCheckpoint(), null);
        await assert.rejects(store.appendAuditRecords([auditRecord(1)]), code('ERR_CONFLICT'));
        const records = [0, 1, 2].map((i) => auditRecord(i));
        await store.appendAuditRecords(records);
        const cp = auditCheckpoint({ size: 3 });
        await store.putAuditCheckpoint(cp);

        const again = await db.open();
        try {
          assert.equal(await again.schemaVersion(), await store.schemaVersion());
          assert.deepEqual(await again.listSigningKeys('oauth'), [keys[0]]);
          assert.deepEqual(plain(await again.getAuditRecords(0, 10)), plain(records));
          assert.deepEqual(plainCheckpoint(await again.latestAuditCheckpoint()), plainCheckpoint(cp));
        } finally {
          await again.close();
        }
      } finally {
        try {
          await db.cleanup?.(store);
        } finally {
          await store.close();
        }
      }
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

/** A fresh identity provider issuer, so a case's mandates can be listed apart from the rest. */
function issuerUrl(): string {
  return `https://idp-${hex(6)}.example`;
}

/** Every revocation entry, oldest first, fetched in pages as a verifier would. */
async function allRevocations(store: Store): Promise<RevocationRecord[]> {
  const all: RevocationRecord[] = [];
  for (;;) {
    const page = await store.listRevocations(all.at(-1)?.seq ?? 0, 500);
    if (page.length === 0) return all;
    all.push(...page);
  }
}

/** The highest seq in the list now (0 when empty): what a verifier that is up to date has seen. */
async function newestSeq(store: Store): Promise<number> {
  return (await allRevocations(store)).at(-1)?.seq ?? 0;
}

function user(over: Partial<UserRecord> = {}): UserRecord {
  return {
    id: randomUUID(),
    username: `user-${hex(6)}`,
    displayName: 'Alice Example',
    passwordHash: `$scrypt$ln=15,r=8,p=1$${hex(16)}$${hex(32)}`,
    failedLogins: 0,
    lockedUntil: null,
    disabled: false,
    createdAt: at(0),
    ...over,
  };
}

function mandate(over: Partial<MandateRecord> = {}): MandateRecord {
  return {
    id: randomUUID(),
    principal: { issuer: 'https://mandate.example', subject: randomUUID(), name: 'Alice Example' },
    agent: `spiffe://example.org/agent/${hex(6)}`,
    scopes: ['issues:read'],
    resources: ['https://tools.example/mcp'],
    constraints: { repository: 'acme/api' },
    maxDepth: 0,
    origin: 'consent',
    clientId: 'mandate-cli',
    createdAt: at(0),
    expiresAt: at(28_800),
    status: 'active',
    revokedAt: null,
    revokedBy: null,
    ...over,
  };
}

function oauthClient(over: Partial<OAuthClientRecord> = {}): OAuthClientRecord {
  return {
    clientId: `dyn-${randomUUID()}`,
    metadata: { client_name: 'Agent console', redirect_uris: ['https://app.example/cb'] },
    secretHash: null,
    createdAt: at(0),
    ...over,
  };
}

function ephemeral(over: Partial<Omit<EphemeralRecord, 'usedAt'>> = {}): Omit<EphemeralRecord, 'usedAt'> {
  return {
    kind: `code-${hex(4)}`,
    key: hex(32),
    value: { clientId: 'mandate-cli', codeChallenge: hex(16) },
    expiresAt: at(600),
    ...over,
  };
}

function refreshToken(over: Partial<RefreshTokenRecord> = {}): RefreshTokenRecord {
  return {
    tokenHash: hex(32),
    familyId: randomUUID(),
    clientId: 'mandate-cli',
    principal: { issuer: 'https://mandate.example', subject: randomUUID(), name: 'Alice Example' },
    scopes: ['issues:read'],
    resources: ['https://tools.example/mcp'],
    dpopJkt: null,
    expiresAt: at(86_400),
    createdAt: at(0),
    usedAt: null,
    ...over,
  };
}

function auditRecord(index: number, over: Partial<AuditRecord> = {}): AuditRecord {
  const event = JSON.stringify({ id: randomUUID(), type: 'token.issued' });
  return {
    index,
    event,
    leafHash: randomBytes(32),
    time: at(index % 1000),
    type: 'token.issued',
    agent: `spiffe://example.org/agent/${hex(4)}`,
    principalIssuer: 'https://mandate.example',
    principalSubject: randomUUID(),
    mandateId: randomUUID(),
    tool: null,
    decision: null,
    traceId: hex(16),
    ...over,
  };
}

function auditCheckpoint(over: Partial<AuditCheckpointRecord> = {}): AuditCheckpointRecord {
  const size = over.size ?? 0;
  return {
    size,
    rootHash: randomBytes(32),
    note: `mandate.example/audit\n${size}\n${randomBytes(32).toString('base64')}\n\n— mandate.example ${hex(8)}\n`,
    createdAt: at(size % 1000),
    ...over,
  };
}

function vaultSecret(over: Partial<VaultSecretRecord> = {}): VaultSecretRecord {
  return {
    owner: { kind: 'principal', issuer: 'https://mandate.example', subject: randomUUID() },
    name: `token_${hex(4)}`,
    valueEnc: `v1.${hex(12)}.${hex(24)}.${hex(16)}`,
    fingerprint: hex(4),
    createdAt: at(0),
    updatedAt: at(1),
    ...over,
  };
}

/** What listings and puts return for a secret: everything but the sealed value. */
function infoOf(s: VaultSecretRecord): Omit<VaultSecretRecord, 'valueEnc'> {
  const { valueEnc: _sealed, ...info } = s;
  return info;
}

function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Records with the hash as hex: a store may hand back a Buffer, a Uint8Array subclass. */
function plain(records: readonly AuditRecord[]): Record<string, unknown>[] {
  return records.map((r) => ({ ...r, leafHash: hexOf(r.leafHash) }));
}

function plainCheckpoint(cp: AuditCheckpointRecord | null): Record<string, unknown> | null {
  return cp === null ? null : { ...cp, rootHash: hexOf(cp.rootHash) };
}
