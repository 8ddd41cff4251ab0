import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { isMandateError } from '../../errors.ts';
import { openStore } from '../open.ts';
import { storeSuite } from '../store.case.ts';
import { MIGRATIONS } from './migrations.ts';
import { openSqliteStore } from './sqlite-store.ts';

const dir = mkdtempSync(join(tmpdir(), 'mandate-sqlite-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));

storeSuite('sqlite store', () => openSqliteStore({ path: join(dir, 'suite', 'mandate.db') }));

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
