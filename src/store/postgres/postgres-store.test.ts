import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import pg from 'pg';
import { isMandateError } from '../../errors.ts';
import { openStore } from '../open.ts';
import { storeSuite } from '../store.case.ts';
import { redact } from './errors.ts';
import { MIGRATIONS } from './migrations.ts';
import { type PostgresStore, openPostgresStore } from './postgres-store.ts';

const url = process.env.DATABASE_URL;

/** A fresh schema per use, so concurrently running test files never see each other's rows. */
function freshSchema(): string {
  return `mandate_test_${randomBytes(6).toString('hex')}`;
}

/** A raw connection for looking behind the store, always closed (an open one keeps the run alive). */
async function withClient<T>(connectionString: string, use: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

async function dropAndClose(store: PostgresStore): Promise<void> {
  try {
    await store.dropSchema();
  } finally {
    await store.close();
  }
}

describe('postgres store', { skip: url ? false : 'DATABASE_URL is unset: PostgreSQL store tests skipped' }, () => {
  if (!url) return;

  const schema = freshSchema();
  storeSuite('shared store suite', () => openPostgresStore({ url, schema, poolSize: 5 }), (s) => s.dropSchema());

  describe('postgres store specifics', () => {
    it('migrates a fresh schema once when several replicas start together', async () => {
      const shared = freshSchema();
      const stores = await Promise.all(Array.from({ length: 4 }, () => openPostgresStore({ url, schema: shared })));
      try {
        const versions = await Promise.all(stores.map((s) => s.schemaVersion()));
        assert.deepEqual(new Set(versions), new Set([MIGRATIONS.at(-1)?.version]));
        const { rows } = await withClient(url, (c) =>
          c.query<{ version: number }>(`SELECT version FROM "${shared}".schema_migrations ORDER BY version`),
        );
        assert.deepEqual(rows.map((r) => r.version), MIGRATIONS.map((m) => m.version));
      } finally {
        await stores[0]?.dropSchema();
        await Promise.all(stores.map((s) => s.close()));
      }
    });

    it('keeps every connection of the pool in its own schema', async () => {
      const a = await openPostgresStore({ url, schema: freshSchema(), poolSize: 3 });
      const b = await openPostgresStore({ url, schema: freshSchema(), poolSize: 3 });
      try {
        // Concurrent calls force several pooled connections; all must see only their schema.
        await Promise.all(Array.from({ length: 9 }, () => a.bumpBundleSequence()));
        assert.deepEqual(
          await Promise.all(Array.from({ length: 6 }, () => b.getBundleSequence())),
          [0, 0, 0, 0, 0, 0],
        );
        assert.equal(await a.getBundleSequence(), 9);
      } finally {
        await dropAndClose(a);
        await dropAndClose(b);
      }
    });

    it('refuses a schema migrated by a newer build', async () => {
      const s = freshSchema();
      const store = await openPostgresStore({ url, schema: s });
      try {
        await withClient(url, (c) => c.query(`INSERT INTO "${s}".schema_migrations (version, name) VALUES (9999, 'future')`));
        await assert.rejects(openPostgresStore({ url, schema: s }), (err: unknown) => {
          assert.ok(isMandateError(err, 'ERR_STORE'));
          assert.match(err.message, /schema version 9999 is newer/);
          return true;
        });
      } finally {
        await dropAndClose(store);
      }
    });

    it('is what openStore opens for driver postgres', async () => {
      const store = (await openStore({ driver: 'postgres', url, schema: freshSchema() })) as PostgresStore;
      try {
        assert.equal(store.kind, 'postgres');
        assert.ok((await store.schemaVersion()) >= 1);
      } finally {
        await dropAndClose(store);
      }
    });

    it('fails with ERR_STORE naming the problem for an unknown database', async () => {
      const bad = new URL(url);
      bad.pathname = `/no_such_db_${randomBytes(4).toString('hex')}`;
      await assert.rejects(openPostgresStore({ url: bad.toString(), schema: freshSchema() }), (err: unknown) => {
        assert.ok(isMandateError(err, 'ERR_STORE'));
        assert.match(err.message, /does not exist/);
        return true;
      });
    });
  });
});

// These need no server: nothing listens on port 1.
describe('postgres store without a server', () => {
  const password = 'pw-Zq9!never-shown';
  const badUrl = `postgres://mandate:${encodeURIComponent(password)}@127.0.0.1:1/mandate`;

  it('fails to open with ERR_STORE, without the password or URL in the message', async () => {
    await assert.rejects(openPostgresStore({ url: badUrl, schema: freshSchema() }), (err: unknown) => {
      assert.ok(isMandateError(err, 'ERR_STORE'), `expected ERR_STORE, got ${String(err)}`);
      assert.match(err.message, /ECONNREFUSED/);
      assert.ok(!err.message.includes(password), err.message);
      assert.ok(!err.message.includes(encodeURIComponent(password)), err.message);
      assert.ok(!err.message.includes(badUrl), err.message);
      assert.equal(err.cause, undefined);
      return true;
    });
  });

  it('rejects a schema name that would need quoting with ERR_CONFIG_INVALID', async () => {
    for (const schema of ['Mixed', 'a-b', '1abc', 'x"; DROP SCHEMA public; --', '']) {
      await assert.rejects(openPostgresStore({ url: badUrl, schema }), (err: unknown) => {
        assert.ok(isMandateError(err, 'ERR_CONFIG_INVALID'), `schema ${JSON.stringify(schema)}: ${String(err)}`);
        return true;
      });
    }
  });

  it('masks passwords given in the user-info or as a query parameter', () => {
    const u = 'postgres://u:p%40ss@h/db?password=qp-secret';
    assert.equal(redact(`failed for ${u}`, u), 'failed for ***');
    assert.equal(redact('auth p@ss p%40ss qp-secret', u), 'auth *** *** ***');
    assert.equal(redact('nothing secret here', 'not a url'), 'nothing secret here');
  });
});
