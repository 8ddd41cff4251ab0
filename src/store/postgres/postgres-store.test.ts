import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import pg from 'pg';
import { isMandateError } from '../../errors.ts';
import { openStore } from '../open.ts';
import { storeSuite, storeUpgradeSuite } from '../store.case.ts';
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

  /** Writes a schema the way a build that knew only migrations 1..version left it. */
  storeUpgradeSuite<PostgresStore>('upgraded from an older schema version', async (version, keys) => {
    const oldSchema = freshSchema();
    const steps = MIGRATIONS.filter((m) => m.version <= version);
    assert.equal(steps.length, version);
    await withClient(url, async (c) => {
      await c.query(`CREATE SCHEMA "${oldSchema}"`);
      await c.query(`SET search_path = "${oldSchema}"`);
      await c.query(`CREATE TABLE schema_migrations (
        version    integer     PRIMARY KEY,
        name       text        NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
      for (const m of steps) {
        await c.query(m.sql);
        await c.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      }
      for (const k of keys) {
        await c.query(
          `INSERT INTO signing_keys
             (id, kind, state, public_data, private_key_enc, trust_anchors, not_after, created_at, publish_until)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
          [k.id, k.kind, k.state, k.publicData, k.privateKeyEnc, k.trustAnchors, k.notAfter, k.createdAt, k.publishUntil],
        );
      }
    });
    return { open: () => openPostgresStore({ url, schema: oldSchema }), cleanup: (s) => s.dropSchema() };
  });

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

    it('never lets a revocation become visible while one with a smaller seq is still uncommitted', async () => {
      // A raw transaction holds an uncommitted entry for jti X. The store's revocation of X then
      // blocks (on that entry, or on the list's lock) and a second revocation, of Y, follows. If Y
      // could commit with a seq above the one X's revocation already drew, a verifier reading now
      // would move past X's seq and never see X.
      const s = freshSchema();
      const app = `mandate_rev_${randomBytes(4).toString('hex')}`;
      const tagged = new URL(url);
      tagged.searchParams.set('application_name', app);
      const store = await openPostgresStore({ url: tagged.toString(), schema: s, poolSize: 3 });
      const x = `x-${randomBytes(4).toString('hex')}`;
      const y = `y-${randomBytes(4).toString('hex')}`;
      const expires = new Date(Date.now() + 3_600_000);
      const blocked = async (): Promise<number> => {
        const { rows } = await withClient(url, (c) =>
          c.query<{ n: number }>(
            `SELECT count(*)::integer AS n FROM pg_stat_activity
             WHERE application_name = $1 AND cardinality(pg_blocking_pids(pid)) > 0`,
            [app],
          ),
        );
        return rows[0]?.n ?? 0;
      };
      const until = async (done: () => Promise<boolean>): Promise<void> => {
        const deadline = Date.now() + 5000;
        while (!(await done())) {
          assert.ok(Date.now() < deadline, 'timed out waiting for the revocations to queue');
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      };
      try {
        await withClient(url, async (raw) => {
          await raw.query(`SET search_path = "${s}"`);
          await raw.query('BEGIN');
          await raw.query(
            `INSERT INTO revocations (kind, id, expires_at, revoked_at) VALUES ('token', $1, $2, now())`,
            [x, expires],
          );
          const revokeX = store.revokeToken(x, expires, new Date());
          await until(async () => (await blocked()) >= 1);
          let ySettled = false;
          const revokeY = store.revokeToken(y, expires, new Date()).finally(() => {
            ySettled = true;
          });
          await until(async () => ySettled || (await blocked()) >= 2);
          const seenWhileBlocked = await store.listRevocations(0, 100);
          await raw.query('ROLLBACK');
          const [seqX, seqY] = await Promise.all([revokeX, revokeY]);
          const after = seenWhileBlocked.at(-1)?.seq ?? 0;
          const seen = [...seenWhileBlocked, ...(await store.listRevocations(after, 100))];
          assert.deepEqual(seen.map((e) => [e.id, e.seq]), [[x, seqX], [y, seqY]]);
        });
      } finally {
        await dropAndClose(store);
      }
    });

    it('revokes a mandate all or nothing: a failed list entry leaves it active', async () => {
      const s = freshSchema();
      const store = await openPostgresStore({ url, schema: s });
      try {
        const id = `m-${randomBytes(6).toString('hex')}`;
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
          expiresAt: new Date(Date.UTC(2030, 0, 1)),
          status: 'active',
          revokedAt: null,
          revokedBy: null,
        });
        // An entry the store did not write makes its own insert fail inside the transaction.
        await withClient(url, (c) =>
          c.query(
            `INSERT INTO "${s}".revocations (kind, id, expires_at, revoked_at) VALUES ('mandate', $1, now(), now())`,
            [id],
          ),
        );
        await assert.rejects(store.revokeMandate(id, 'admin', new Date()), (err: unknown) =>
          isMandateError(err, 'ERR_STORE'),
        );
        assert.equal((await store.getMandate(id))?.status, 'active');
        assert.deepEqual((await store.listRevocations(0, 10)).map((e) => e.id), [id]);
      } finally {
        await dropAndClose(store);
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
