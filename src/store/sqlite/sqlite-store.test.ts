import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { isMandateError } from '../../errors.ts';
import { openStore } from '../open.ts';
import { storeSuite, storeUpgradeSuite } from '../store.case.ts';
import { MIGRATIONS } from './migrations.ts';
import { openSqliteStore } from './sqlite-store.ts';

const dir = mkdtempSync(join(tmpdir(), 'mandate-sqlite-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));

storeSuite('sqlite store', () => openSqliteStore({ path: join(dir, 'suite', 'mandate.db') }));

/** Writes a database the way a build that knew only migrations 1..version left it. */
storeUpgradeSuite('sqlite store upgraded from an older schema version', async (version, keys) => {
  const path = join(dir, `v${version}-${randomUUID()}.db`);
  const db = new Database(path);
  try {
    db.exec(`CREATE TABLE schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT    NOT NULL,
      applied_at INTEGER NOT NULL
    ) STRICT`);
    const steps = MIGRATIONS.filter((m) => m.version <= version);
    assert.equal(steps.length, version);
    for (const m of steps) {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
    }
    const insert = db.prepare(
      `INSERT INTO signing_keys
         (id, kind, state, public_data, private_key_enc, trust_anchors, not_after, created_at, publish_until)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    for (const k of keys) {
      insert.run(k.id, k.kind, k.state, k.publicData, k.privateKeyEnc, k.trustAnchors, k.notAfter.getTime(),
        k.createdAt.getTime(), k.publishUntil?.getTime() ?? null);
    }
  } finally {
    db.close();
  }
  return { open: () => openSqliteStore({ path }) };
});

function storeError(err: unknown): boolean {
  assert.ok(isMandateError(err, 'ERR_STORE'), `expected ERR_STORE, got ${String(err)}`);
  return true;
}

describe('sqlite store specifics', () => {
  it('creates the parent directory 0700 and the database file 0600', { skip: process.platform === 'win32' }, async () => {
    const parent = join(dir, 'perm', 'nested');
    const path = join(parent, 'mandate.db');
    const store = await openSqliteStore({ path });
    try {
      assert.equal(statSync(parent).mode & 0o777, 0o700);
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.equal(statSync(`${path}-wal`).mode & 0o777, 0o600);
    } finally {
      await store.close();
    }
  });

  it('leaves the file in WAL mode at the latest migration', async () => {
    const path = join(dir, 'wal.db');
    await (await openSqliteStore({ path })).close();
    const db = new Database(path, { readonly: true });
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      const rows = db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all();
      assert.deepEqual(rows, MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
    } finally {
      db.close();
    }
  });

  it('leaves signing_keys, after its rebuild, a STRICT table with its index and no leftover copy', async () => {
    const path = join(dir, 'rebuilt.db');
    await (await openSqliteStore({ path })).close();
    const db = new Database(path, { readonly: true });
    try {
      const table = db.prepare(`SELECT strict FROM pragma_table_list WHERE name = 'signing_keys'`).get() as
        | { strict: number }
        | undefined;
      assert.equal(table?.strict, 1);
      const names = db.prepare(`SELECT name FROM sqlite_master WHERE name LIKE 'signing_keys%' ORDER BY name`).all();
      assert.deepEqual(names, [{ name: 'signing_keys' }, { name: 'signing_keys_by_kind' }]);
      const indexed = db.prepare(`SELECT name FROM pragma_index_info('signing_keys_by_kind') ORDER BY seqno`).all();
      assert.deepEqual(indexed, [{ name: 'kind' }, { name: 'created_at' }, { name: 'id' }]);
    } finally {
      db.close();
    }
  });

  it('revokes a mandate all or nothing: a failed list entry leaves it active', async () => {
    const path = join(dir, 'revoke-atomic.db');
    const store = await openSqliteStore({ path });
    try {
      const id = randomUUID();
      const expiresAt = new Date(Date.UTC(2030, 0, 1, 0, 0, 0, 123));
      await store.createMandate({
        id,
        principal: { issuer: 'https://mandate.example', subject: 'alice', name: 'Alice' },
        agent: 'spiffe://example.org/agent/a',
        scopes: ['s'],
        resources: [],
        constraints: {},
        maxDepth: 0,
        origin: 'admin',
        clientId: null,
        createdAt: new Date(0),
        expiresAt,
        status: 'active',
        revokedAt: null,
        revokedBy: null,
      });
      // An entry the store did not write makes its own insert fail inside the transaction.
      const raw = new Database(path);
      raw.prepare(`INSERT INTO revocations (kind, id, expires_at, revoked_at) VALUES ('mandate', ?, 1, 1)`).run(id);
      raw.close();
      await assert.rejects(store.revokeMandate(id, 'admin', new Date()), storeError);
      assert.equal((await store.getMandate(id))?.status, 'active');
      assert.deepEqual((await store.listRevocations(0, 10)).map((e) => e.id), [id]);
    } finally {
      await store.close();
    }
  });

  it('gives each :memory: store its own database', async () => {
    const a = await openSqliteStore({ path: ':memory:' });
    const b = await openSqliteStore({ path: ':memory:' });
    try {
      await a.bumpBundleSequence();
      assert.equal(await a.getBundleSequence(), 1);
      assert.equal(await b.getBundleSequence(), 0);
      assert.equal(await b.schemaVersion(), await a.schemaVersion());
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('is what openStore opens for driver sqlite', async () => {
    const store = await openStore({ driver: 'sqlite', path: join(dir, 'via-open.db') });
    try {
      assert.equal(store.kind, 'sqlite');
      assert.ok((await store.schemaVersion()) >= 1);
    } finally {
      await store.close();
    }
  });

  it('fails with ERR_STORE on a file that is not a database', async () => {
    const path = join(dir, 'not-a-db.db');
    writeFileSync(path, 'this is plain text, not an SQLite database file, padded to look real enough'.repeat(20));
    await assert.rejects(openSqliteStore({ path }), storeError);
  });

  it('fails with ERR_STORE when the directory cannot be created', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    await assert.rejects(openSqliteStore({ path: join(file, 'sub', 'mandate.db') }), storeError);
  });

  it('refuses a database migrated by a newer build', async () => {
    const path = join(dir, 'newer.db');
    await (await openSqliteStore({ path })).close();
    const db = new Database(path);
    db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(9999, 'future', Date.now());
    db.close();
    await assert.rejects(openSqliteStore({ path }), (err: unknown) => {
      assert.ok(isMandateError(err, 'ERR_STORE'));
      assert.match(err.message, /schema version 9999 is newer/);
      return true;
    });
  });
});
