import pg from 'pg';
import { MandateError } from '../../errors.ts';
import { pendingMigrations } from '../migration.ts';
import { requireDate, requireDateOrNull } from '../record-values.ts';
import type {
  AdminTokenRecord,
  FederatedBundleRecord,
  JoinTokenRecord,
  RegistrationEntry,
  SigningKeyRecord,
  Store,
} from '../store.ts';
import { type Expected, toStoreError } from './errors.ts';
import { MIGRATIONS } from './migrations.ts';
import {
  type AdminTokenRow,
  type EntryRow,
  type FederatedBundleRow,
  type JoinTokenRow,
  type SigningKeyRow,
  toAdminToken,
  toEntry,
  toFederatedBundle,
  toJoinToken,
  toSigningKey,
} from './rows.ts';

export interface PostgresStoreOptions {
  /** libpq-style URL, e.g. `postgres://mandate:secret@db:5432/mandate`. */
  url: string;
  /**
   * Schema holding Mandate's tables, created when missing and used as every pooled connection's
   * search_path. Lowercase letters, digits and `_`, not starting with a digit. Default: the
   * server's default search_path (normally `public`).
   */
  schema?: string;
  /** Maximum pooled connections. Default 10. */
  poolSize?: number;
}

/** The PostgreSQL store, plus what only it can do. */
export interface PostgresStore extends Store {
  readonly kind: 'postgres';
  /** The schema given at open, or null when the server's default is used. */
  readonly schema: string | null;
  /**
   * Drops the store's schema and everything in it (test teardown). Refuses (ERR_CONFIG_INVALID)
   * when no schema was given, so it can never drop `public`. The store stays open; close it after.
   */
  dropSchema(): Promise<void>;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
/** A refused or unroutable server must fail start-up promptly, not hang it. */
const CONNECT_TIMEOUT_MS = 5000;

/**
 * Connects a pool to PostgreSQL and brings the schema up to date. Replicas starting together
 * migrate one at a time (transaction-scoped advisory lock). Connection failures reject with
 * ERR_STORE, with the URL and password masked.
 *
 * @example
 *   const store = await openPostgresStore({ url: process.env.DATABASE_URL!, schema: 'mandate' });
 *   await store.listEntries();
 *   await store.close();
 */
export async function openPostgresStore(opts: PostgresStoreOptions): Promise<PostgresStore> {
  const schema = opts.schema ?? null;
  if (schema !== null && !SCHEMA_NAME.test(schema)) {
    throw new MandateError(
      'ERR_CONFIG_INVALID',
      `postgres schema "${schema}" is not allowed: use lowercase letters, digits and "_", not starting with a digit, at most 63 characters`,
    );
  }
  if (opts.poolSize !== undefined && !(Number.isInteger(opts.poolSize) && opts.poolSize > 0)) {
    throw new MandateError('ERR_CONFIG_INVALID', `postgres poolSize must be a positive integer, got ${opts.poolSize}`);
  }
  const pool = new pg.Pool({
    ...connectionConfig(opts.url, schema),
    max: opts.poolSize ?? 10,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  });
  // An idle client losing its server emits here; without a listener that kills the process.
  // The next query on the pool gets a fresh connection or fails with ERR_STORE, so nothing is lost.
  pool.on('error', () => {});
  try {
    await migrate(pool, schema);
  } catch (err) {
    await pool.end().catch(() => {});
    throw toStoreError('open', err, opts.url);
  }
  return new PgStore(pool, opts.url, schema);
}

/**
 * search_path goes in the startup packet (`options=-c search_path=...`), so every connection the
 * pool ever opens is in the schema before its first query. A URL's own `options` parameter would
 * override a separate `options` setting in pg, so it is merged into ours instead.
 */
function connectionConfig(url: string, schema: string | null): pg.PoolConfig {
  if (schema === null) return { connectionString: url };
  const searchPath = `-c search_path=${schema}`;
  let parsed: URL | null = null;
  try {
    parsed = new URL(url);
  } catch {
    // pg accepts strings that are not WHATWG URLs (socket paths); those cannot carry options here.
  }
  const own = parsed?.searchParams.get('options');
  if (!parsed || own === null || own === undefined) return { connectionString: url, options: searchPath };
  parsed.searchParams.delete('options');
  return { connectionString: parsed.toString(), options: `${own} ${searchPath}` };
}

async function migrate(pool: pg.Pool, schema: string | null): Promise<void> {
  const client = await pool.connect();
  let failed: unknown;
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`mandate:migrations:${schema ?? ''}`]);
    if (schema !== null) await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    integer     PRIMARY KEY,
      name       text        NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
    for (const m of pendingMigrations(MIGRATIONS, new Set(rows.map((r) => r.version)))) {
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
    }
    await client.query('COMMIT');
  } catch (err) {
    failed = err;
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    // A client whose transaction failed may be in any state: discard it rather than reuse it.
    client.release(failed instanceof Error ? failed : undefined);
  }
}

/** Validates a date for pg, which would otherwise send "NaN-NaN-..." to the server. */
function at(value: Date, field: string): Date {
  requireDate(value, field);
  return value;
}

function atOrNull(value: Date | null, field: string): Date | null {
  requireDateOrNull(value, field);
  return value;
}

class PgStore implements PostgresStore {
  readonly kind = 'postgres' as const;

  constructor(
    private readonly pool: pg.Pool,
    private readonly url: string,
    readonly schema: string | null,
  ) {}

  /** Runs one statement on the pool, turning driver errors into MandateErrors. */
  private async query<R extends pg.QueryResultRow>(
    op: string,
    sql: string,
    params: unknown[] = [],
    expected?: Expected,
  ): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, params);
    } catch (err) {
      throw toStoreError(op, err, this.url, expected);
    }
  }

  async putSigningKey(key: SigningKeyRecord): Promise<void> {
    await this.query(
      'putSigningKey',
      `INSERT INTO signing_keys
         (id, kind, state, public_data, private_key_enc, trust_anchors, not_after, created_at, publish_until)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        key.id,
        key.kind,
        key.state,
        key.publicData,
        key.privateKeyEnc,
        key.trustAnchors,
        at(key.notAfter, 'signing key notAfter'),
        at(key.createdAt, 'signing key createdAt'),
        atOrNull(key.publishUntil, 'signing key publishUntil'),
      ],
      { conflict: `signing key "${key.id}" already exists` },
    );
  }

  async updateSigningKeyState(id: string, state: SigningKeyRecord['state'], publishUntil: Date | null): Promise<void> {
    const { rowCount } = await this.query(
      'updateSigningKeyState',
      'UPDATE signing_keys SET state = $1, publish_until = $2 WHERE id = $3',
      [state, atOrNull(publishUntil, 'signing key publishUntil'), id],
    );
    if (rowCount === 0) throw new MandateError('ERR_NOT_FOUND', `signing key "${id}" does not exist`);
  }

  async listSigningKeys(kind: SigningKeyRecord['kind']): Promise<SigningKeyRecord[]> {
    const { rows } = await this.query<SigningKeyRow>(
      'listSigningKeys',
      'SELECT * FROM signing_keys WHERE kind = $1 ORDER BY created_at, id',
      [kind],
    );
    return rows.map(toSigningKey);
  }

  async deleteSigningKey(id: string): Promise<void> {
    await this.query('deleteSigningKey', 'DELETE FROM signing_keys WHERE id = $1', [id]);
  }

  async getBundleSequence(): Promise<number> {
    return this.sequence('getBundleSequence', 'SELECT sequence FROM bundle_sequence WHERE id = 1');
  }

  async bumpBundleSequence(): Promise<number> {
    return this.sequence(
      'bumpBundleSequence',
      'UPDATE bundle_sequence SET sequence = sequence + 1 WHERE id = 1 RETURNING sequence',
    );
  }

  /** bigint arrives as a string from pg; a bundle sequence stays far below 2^53. */
  private async sequence(op: string, sql: string): Promise<number> {
    const { rows } = await this.query<{ sequence: string }>(op, sql);
    const row = rows[0];
    if (!row) throw new MandateError('ERR_STORE', `postgres store: ${op} failed: bundle_sequence row is missing`);
    return Number(row.sequence);
  }

  async createEntry(entry: RegistrationEntry): Promise<void> {
    await this.query(
      'createEntry',
      `INSERT INTO registration_entries
         (id, spiffe_id, selectors, x509_svid_ttl, jwt_svid_ttl, metadata, created_at)
       VALUES ($1, $2, $3::jsonb, $4, $5, $6::jsonb, $7)`,
      [
        entry.id,
        entry.spiffeId,
        JSON.stringify(entry.selectors),
        entry.x509SvidTtl,
        entry.jwtSvidTtl,
        JSON.stringify(entry.metadata),
        at(entry.createdAt, 'registration entry createdAt'),
      ],
      { conflict: `registration entry "${entry.id}" already exists` },
    );
  }

  async getEntry(id: string): Promise<RegistrationEntry | null> {
    const { rows } = await this.query<EntryRow>('getEntry', 'SELECT * FROM registration_entries WHERE id = $1', [id]);
    return rows[0] ? toEntry(rows[0]) : null;
  }

  async listEntries(): Promise<RegistrationEntry[]> {
    const { rows } = await this.query<EntryRow>(
      'listEntries',
      'SELECT * FROM registration_entries ORDER BY created_at, id',
    );
    return rows.map(toEntry);
  }

  async listEntriesBySpiffeId(spiffeId: string): Promise<RegistrationEntry[]> {
    const { rows } = await this.query<EntryRow>(
      'listEntriesBySpiffeId',
      'SELECT * FROM registration_entries WHERE spiffe_id = $1 ORDER BY created_at, id',
      [spiffeId],
    );
    return rows.map(toEntry);
  }

  async deleteEntry(id: string): Promise<boolean> {
    const { rowCount } = await this.query('deleteEntry', 'DELETE FROM registration_entries WHERE id = $1', [id]);
    return (rowCount ?? 0) > 0;
  }

  async createJoinToken(token: JoinTokenRecord): Promise<void> {
    await this.query(
      'createJoinToken',
      `INSERT INTO join_tokens (id, secret_hash, entry_id, expires_at, used_at, created_at)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [
        token.id,
        token.secretHash,
        token.entryId,
        at(token.expiresAt, 'join token expiresAt'),
        atOrNull(token.usedAt, 'join token usedAt'),
        at(token.createdAt, 'join token createdAt'),
      ],
      {
        conflict: `join token "${token.id}" conflicts with an existing token (same id or secret hash)`,
        missingReference: `join token "${token.id}" names registration entry "${token.entryId}", which does not exist`,
      },
    );
  }

  async consumeJoinToken(secretHash: string, now: Date): Promise<{ token: JoinTokenRecord; consumed: boolean } | null> {
    // Under READ COMMITTED a second concurrent UPDATE waits for the first to commit, then re-checks
    // `used_at IS NULL` against the committed row and matches nothing: exactly one caller wins.
    const used = await this.query<JoinTokenRow>(
      'consumeJoinToken',
      'UPDATE join_tokens SET used_at = $2 WHERE secret_hash = $1 AND used_at IS NULL RETURNING *',
      [secretHash, at(now, 'join token consumption time')],
    );
    if (used.rows[0]) return { token: toJoinToken(used.rows[0]), consumed: true };
    const earlier = await this.query<JoinTokenRow>(
      'consumeJoinToken',
      'SELECT * FROM join_tokens WHERE secret_hash = $1',
      [secretHash],
    );
    return earlier.rows[0] ? { token: toJoinToken(earlier.rows[0]), consumed: false } : null;
  }

  async createAdminToken(token: AdminTokenRecord): Promise<void> {
    await this.query(
      'createAdminToken',
      'INSERT INTO admin_tokens (id, secret_hash, created_at) VALUES ($1, $2, $3)',
      [token.id, token.secretHash, at(token.createdAt, 'admin token createdAt')],
      { conflict: `admin token "${token.id}" conflicts with an existing token (same id or secret hash)` },
    );
  }

  async findAdminToken(secretHash: string): Promise<AdminTokenRecord | null> {
    const { rows } = await this.query<AdminTokenRow>(
      'findAdminToken',
      'SELECT * FROM admin_tokens WHERE secret_hash = $1',
      [secretHash],
    );
    return rows[0] ? toAdminToken(rows[0]) : null;
  }

  async countAdminTokens(): Promise<number> {
    const { rows } = await this.query<{ n: number }>('countAdminTokens', 'SELECT count(*)::integer AS n FROM admin_tokens');
    return rows[0]?.n ?? 0;
  }

  async deleteAdminTokens(): Promise<void> {
    await this.query('deleteAdminTokens', 'DELETE FROM admin_tokens');
  }

  async putFederatedBundle(bundle: FederatedBundleRecord): Promise<void> {
    await this.query(
      'putFederatedBundle',
      `INSERT INTO federated_bundles (trust_domain, bundle, source, refreshed_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (trust_domain) DO UPDATE
         SET bundle = excluded.bundle, source = excluded.source, refreshed_at = excluded.refreshed_at`,
      [bundle.trustDomain, bundle.bundle, bundle.source, at(bundle.refreshedAt, 'federated bundle refreshedAt')],
    );
  }

  async getFederatedBundle(trustDomain: string): Promise<FederatedBundleRecord | null> {
    const { rows } = await this.query<FederatedBundleRow>(
      'getFederatedBundle',
      'SELECT * FROM federated_bundles WHERE trust_domain = $1',
      [trustDomain],
    );
    return rows[0] ? toFederatedBundle(rows[0]) : null;
  }

  async listFederatedBundles(): Promise<FederatedBundleRecord[]> {
    const { rows } = await this.query<FederatedBundleRow>(
      'listFederatedBundles',
      'SELECT * FROM federated_bundles ORDER BY trust_domain',
    );
    return rows.map(toFederatedBundle);
  }

  async schemaVersion(): Promise<number> {
    const { rows } = await this.query<{ v: number | null }>(
      'schemaVersion',
      'SELECT max(version) AS v FROM schema_migrations',
    );
    return rows[0]?.v ?? 0;
  }

  async dropSchema(): Promise<void> {
    if (this.schema === null) {
      throw new MandateError('ERR_CONFIG_INVALID', 'postgres store was opened without a schema: refusing to drop one');
    }
    await this.query('dropSchema', `DROP SCHEMA IF EXISTS "${this.schema}" CASCADE`);
  }

  async close(): Promise<void> {
    if (this.pool.ended) return;
    try {
      await this.pool.end();
    } catch (err) {
      throw toStoreError('close', err, this.url);
    }
  }
}
