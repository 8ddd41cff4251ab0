import pg from 'pg';
import { MandateError } from '../../errors.ts';
import { AUDIT_FILTER_COLUMNS, auditRecordValues, checkAuditBatch, requireHash, requireLogContinues } from '../audit-values.ts';
import { pendingMigrations } from '../migration.ts';
import { requireDate, requireDateOrNull } from '../record-values.ts';
import { ownerColumns, VAULT_INFO_COLUMNS, VAULT_ORDER, vaultFilter } from '../vault-values.ts';
import type {
  AdminTokenRecord,
  AuditCheckpointRecord,
  AuditQuery,
  AuditRecord,
  EphemeralRecord,
  FederatedBundleRecord,
  JoinTokenRecord,
  MandateFilter,
  MandateRecord,
  OAuthClientRecord,
  RefreshTokenRecord,
  RegistrationEntry,
  RevocationRecord,
  SigningKeyRecord,
  Store,
  UserRecord,
  VaultOwner,
  VaultSecretFilter,
  VaultSecretInfo,
  VaultSecretRecord,
} from '../store.ts';
import { type Expected, toStoreError } from './errors.ts';
import { MIGRATIONS } from './migrations.ts';
import {
  type AdminTokenRow,
  type AuditCheckpointRow,
  type AuditRow,
  type EntryRow,
  type EphemeralRow,
  type FederatedBundleRow,
  type JoinTokenRow,
  type MandateRow,
  type OAuthClientRow,
  type RefreshTokenRow,
  type RevocationRow,
  type SigningKeyRow,
  type UserRow,
  type VaultSecretInfoRow,
  type VaultSecretRow,
  toAdminToken,
  toAuditCheckpoint,
  toAuditRecord,
  toEntry,
  toEphemeral,
  toFederatedBundle,
  toJoinToken,
  toMandate,
  toOAuthClient,
  toRefreshToken,
  toRevocation,
  toSigningKey,
  toUser,
  toVaultSecret,
  toVaultSecretInfo,
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

/** JSON text of a record value; a value JSON cannot represent (undefined, a function) is a caller bug. */
function jsonText(value: unknown, field: string): string {
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) throw new MandateError('ERR_INTERNAL', `${field} is not representable as JSON`);
  return text;
}

/** Guards counts handed to SQL (LIMIT, thresholds), so both stores refuse the same caller bugs. */
function requireCount(value: number, field: string, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new MandateError('ERR_INTERNAL', `${field} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

/** Columns updateUser may change, by record field. */
const USER_COLUMNS = { displayName: 'display_name', passwordHash: 'password_hash', disabled: 'disabled' } as const;

/**
 * Every write to the revocation list takes this lock first and holds it until commit, so seqs
 * become visible in the order they were handed out: a verifier that has seen seq n can never
 * later miss a smaller seq still in flight. Reads (ACCESS SHARE) are not blocked.
 */
const LOCK_REVOCATIONS = 'LOCK TABLE revocations IN SHARE ROW EXCLUSIVE MODE';

/**
 * Appenders take this lock first and hold it until commit, so each reads the size the previous
 * one committed: two appenders at the same index cannot both pass the contiguity check. It
 * conflicts with itself but not with readers (ACCESS SHARE).
 */
const LOCK_AUDIT_LOG = 'LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE';

/** Indices are contiguous from 0, so the size is one past the highest (read off the primary key). */
const AUDIT_SIZE = 'SELECT coalesce(max(idx) + 1, 0) AS size FROM audit_log';

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

  /** Runs `work` in one transaction on one pooled connection, turning driver errors into MandateErrors. */
  private async transaction<T>(op: string, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw toStoreError(op, err, this.url);
    }
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      // A connection whose statement failed may be in any state: discard it rather than reuse it.
      if (err instanceof Error) broken = err;
      throw toStoreError(op, err, this.url);
    } finally {
      client.release(broken);
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

  async createUser(user: UserRecord): Promise<void> {
    const username = user.username.toLowerCase();
    await this.query(
      'createUser',
      `INSERT INTO users
         (id, username, display_name, password_hash, failed_logins, locked_until, disabled, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [
        user.id,
        username,
        user.displayName,
        user.passwordHash,
        requireCount(user.failedLogins, 'user failedLogins', 0),
        atOrNull(user.lockedUntil, 'user lockedUntil'),
        user.disabled,
        at(user.createdAt, 'user createdAt'),
      ],
      { conflict: `user "${user.id}" conflicts with an existing user (same id or username "${username}")` },
    );
  }

  async getUser(id: string): Promise<UserRecord | null> {
    const { rows } = await this.query<UserRow>('getUser', 'SELECT * FROM users WHERE id = $1', [id]);
    return rows[0] ? toUser(rows[0]) : null;
  }

  async findUserByUsername(username: string): Promise<UserRecord | null> {
    const { rows } = await this.query<UserRow>('findUserByUsername', 'SELECT * FROM users WHERE username = $1', [
      username.toLowerCase(),
    ]);
    return rows[0] ? toUser(rows[0]) : null;
  }

  async listUsers(): Promise<UserRecord[]> {
    const { rows } = await this.query<UserRow>('listUsers', 'SELECT * FROM users ORDER BY username');
    return rows.map(toUser);
  }

  async updateUser(
    id: string,
    change: Partial<Pick<UserRecord, 'displayName' | 'passwordHash' | 'disabled'>>,
  ): Promise<boolean> {
    const values: unknown[] = [id];
    const sets: string[] = [];
    for (const field of Object.keys(USER_COLUMNS) as (keyof typeof USER_COLUMNS)[]) {
      const value = change[field];
      if (value === undefined) continue;
      values.push(value);
      sets.push(`${USER_COLUMNS[field]} = $${values.length}`);
    }
    const sql =
      sets.length === 0 ? 'SELECT 1 FROM users WHERE id = $1' : `UPDATE users SET ${sets.join(', ')} WHERE id = $1`;
    const { rowCount } = await this.query('updateUser', sql, values);
    return (rowCount ?? 0) > 0;
  }

  async recordLoginFailure(id: string, maxFailures: number, lockUntil: Date): Promise<UserRecord | null> {
    // Both CASEs read the row as it was before this UPDATE, so they agree on whether it locks; a
    // concurrent failure waits for the row lock and then counts on top of this one.
    const { rows } = await this.query<UserRow>(
      'recordLoginFailure',
      `UPDATE users SET
         failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END,
         locked_until  = CASE WHEN failed_logins + 1 >= $2 THEN $3::timestamptz ELSE locked_until END
       WHERE id = $1 RETURNING *`,
      [id, requireCount(maxFailures, 'maxFailures', 1), at(lockUntil, 'user lockUntil')],
    );
    return rows[0] ? toUser(rows[0]) : null;
  }

  async recordLoginSuccess(id: string): Promise<void> {
    await this.query('recordLoginSuccess', 'UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1', [id]);
  }

  async deleteUser(id: string): Promise<boolean> {
    const { rowCount } = await this.query('deleteUser', 'DELETE FROM users WHERE id = $1', [id]);
    return (rowCount ?? 0) > 0;
  }

  async createMandate(mandate: MandateRecord): Promise<void> {
    await this.query(
      'createMandate',
      `INSERT INTO mandates
         (id, principal_issuer, principal_subject, principal_name, agent, scopes, resources, constraints,
          max_depth, origin, client_id, created_at, expires_at, status, revoked_at, revoked_by)
       VALUES ($1, $2, $3, $4, $5, $6::json, $7::json, $8::json, $9, $10, $11, $12, $13, $14, $15, $16)`,
      [
        mandate.id,
        mandate.principal.issuer,
        mandate.principal.subject,
        mandate.principal.name,
        mandate.agent,
        jsonText(mandate.scopes, 'mandate scopes'),
        jsonText(mandate.resources, 'mandate resources'),
        jsonText(mandate.constraints, 'mandate constraints'),
        requireCount(mandate.maxDepth, 'mandate maxDepth', 0),
        mandate.origin,
        mandate.clientId,
        at(mandate.createdAt, 'mandate createdAt'),
        at(mandate.expiresAt, 'mandate expiresAt'),
        mandate.status,
        atOrNull(mandate.revokedAt, 'mandate revokedAt'),
        mandate.revokedBy,
      ],
      { conflict: `mandate "${mandate.id}" already exists` },
    );
  }

  async getMandate(id: string): Promise<MandateRecord | null> {
    const { rows } = await this.query<MandateRow>('getMandate', 'SELECT * FROM mandates WHERE id = $1', [id]);
    return rows[0] ? toMandate(rows[0]) : null;
  }

  async listMandates(filter: MandateFilter): Promise<MandateRecord[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    const match = (column: string, op: string, value: unknown): void => {
      values.push(value);
      where.push(`${column} ${op} $${values.length}`);
    };
    if (filter.principalIssuer !== undefined) match('principal_issuer', '=', filter.principalIssuer);
    if (filter.principalSubject !== undefined) match('principal_subject', '=', filter.principalSubject);
    if (filter.agent !== undefined) match('agent', '=', filter.agent);
    if (filter.status !== undefined) match('status', '=', filter.status);
    if (filter.liveAt !== undefined) match('expires_at', '>', at(filter.liveAt, 'mandate filter liveAt'));
    if (filter.expiredBy !== undefined) match('expires_at', '<=', at(filter.expiredBy, 'mandate filter expiredBy'));
    let sql = 'SELECT * FROM mandates';
    if (where.length > 0) sql += ` WHERE ${where.join(' AND ')}`;
    sql += ' ORDER BY created_at DESC, id DESC';
    if (filter.limit !== undefined) {
      values.push(requireCount(filter.limit, 'mandate filter limit', 0));
      sql += ` LIMIT $${values.length}`;
    }
    const { rows } = await this.query<MandateRow>('listMandates', sql, values);
    return rows.map(toMandate);
  }

  async revokeMandate(id: string, by: string, revokedAt: Date): Promise<{ mandate: MandateRecord; revoked: boolean } | null> {
    at(revokedAt, 'mandate revocation time');
    return this.transaction('revokeMandate', async (client) => {
      // A concurrent revoker of the same mandate waits for this row lock, then finds it no longer
      // active and falls through to the read below: one revocation, one list entry.
      const revoked = await client.query<MandateRow>(
        `UPDATE mandates SET status = 'revoked', revoked_at = $2, revoked_by = $3
         WHERE id = $1 AND status = 'active' RETURNING *`,
        [id, revokedAt, by],
      );
      const row = revoked.rows[0];
      if (row) {
        await client.query(LOCK_REVOCATIONS);
        await client.query(
          `INSERT INTO revocations (kind, id, expires_at, revoked_at) VALUES ('mandate', $1, $2, $3)`,
          [id, row.expires_at, revokedAt],
        );
        return { mandate: toMandate(row), revoked: true };
      }
      const current = await client.query<MandateRow>('SELECT * FROM mandates WHERE id = $1', [id]);
      return current.rows[0] ? { mandate: toMandate(current.rows[0]), revoked: false } : null;
    });
  }

  async revokeToken(jti: string, expiresAt: Date, revokedAt: Date): Promise<number> {
    at(expiresAt, 'token revocation expiresAt');
    at(revokedAt, 'token revocation time');
    return this.transaction('revokeToken', async (client) => {
      await client.query(LOCK_REVOCATIONS);
      const added = await client.query<{ seq: string }>(
        `INSERT INTO revocations (kind, id, expires_at, revoked_at) VALUES ('token', $1, $2, $3)
         ON CONFLICT (kind, id) DO NOTHING RETURNING seq`,
        [jti, expiresAt, revokedAt],
      );
      const row =
        added.rows[0] ??
        (await client.query<{ seq: string }>(`SELECT seq FROM revocations WHERE kind = 'token' AND id = $1`, [jti]))
          .rows[0];
      if (!row) throw new Error('token revocation vanished inside its transaction');
      return Number(row.seq);
    });
  }

  async listRevocations(afterSeq: number, limit: number): Promise<RevocationRecord[]> {
    const { rows } = await this.query<RevocationRow>(
      'listRevocations',
      'SELECT * FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2',
      [requireCount(afterSeq, 'revocation afterSeq', 0), requireCount(limit, 'revocation limit', 0)],
    );
    return rows.map(toRevocation);
  }

  async pruneRevocations(before: Date): Promise<number> {
    const { rowCount } = await this.query('pruneRevocations', 'DELETE FROM revocations WHERE expires_at < $1', [
      at(before, 'revocation prune time'),
    ]);
    return rowCount ?? 0;
  }

  async createOAuthClient(client: OAuthClientRecord): Promise<void> {
    await this.query(
      'createOAuthClient',
      'INSERT INTO oauth_clients (client_id, metadata, secret_hash, created_at) VALUES ($1, $2::json, $3, $4)',
      [
        client.clientId,
        jsonText(client.metadata, 'OAuth client metadata'),
        client.secretHash,
        at(client.createdAt, 'OAuth client createdAt'),
      ],
      { conflict: `OAuth client "${client.clientId}" already exists` },
    );
  }

  async getOAuthClient(clientId: string): Promise<OAuthClientRecord | null> {
    const { rows } = await this.query<OAuthClientRow>(
      'getOAuthClient',
      'SELECT * FROM oauth_clients WHERE client_id = $1',
      [clientId],
    );
    return rows[0] ? toOAuthClient(rows[0]) : null;
  }

  async deleteOAuthClient(clientId: string): Promise<boolean> {
    const { rowCount } = await this.query('deleteOAuthClient', 'DELETE FROM oauth_clients WHERE client_id = $1', [
      clientId,
    ]);
    return (rowCount ?? 0) > 0;
  }

  async putEphemeral(record: Omit<EphemeralRecord, 'usedAt'>): Promise<void> {
    await this.query(
      'putEphemeral',
      `INSERT INTO ephemeral_records (kind, key, value, expires_at, used_at) VALUES ($1, $2, $3::json, $4, NULL)
       ON CONFLICT (kind, key) DO UPDATE
         SET value = excluded.value, expires_at = excluded.expires_at, used_at = NULL`,
      [record.kind, record.key, jsonText(record.value, 'ephemeral value'), at(record.expiresAt, 'ephemeral expiresAt')],
    );
  }

  async getEphemeral(kind: string, key: string, now: Date): Promise<EphemeralRecord | null> {
    const { rows } = await this.query<EphemeralRow>(
      'getEphemeral',
      'SELECT * FROM ephemeral_records WHERE kind = $1 AND key = $2 AND expires_at > $3',
      [kind, key, at(now, 'ephemeral lookup time')],
    );
    return rows[0] ? toEphemeral(rows[0]) : null;
  }

  async consumeEphemeral(
    kind: string,
    key: string,
    now: Date,
  ): Promise<{ record: EphemeralRecord; consumed: boolean } | null> {
    at(now, 'ephemeral consumption time');
    for (;;) {
      // As in consumeJoinToken: a concurrent UPDATE waits for the first to commit, then re-checks
      // `used_at IS NULL` against the committed row and matches nothing.
      const used = await this.query<EphemeralRow>(
        'consumeEphemeral',
        `UPDATE ephemeral_records SET used_at = $3
         WHERE kind = $1 AND key = $2 AND used_at IS NULL AND expires_at > $3 RETURNING *`,
        [kind, key, now],
      );
      if (used.rows[0]) return { record: toEphemeral(used.rows[0]), consumed: true };
      const earlier = await this.query<EphemeralRow>(
        'consumeEphemeral',
        'SELECT * FROM ephemeral_records WHERE kind = $1 AND key = $2 AND expires_at > $3',
        [kind, key, now],
      );
      const row = earlier.rows[0];
      if (!row) return null;
      if (row.used_at !== null) return { record: toEphemeral(row), consumed: false };
      // Replaced by putEphemeral between the two statements: try the new record.
    }
  }

  async deleteEphemeral(kind: string, key: string): Promise<boolean> {
    const { rowCount } = await this.query(
      'deleteEphemeral',
      'DELETE FROM ephemeral_records WHERE kind = $1 AND key = $2',
      [kind, key],
    );
    return (rowCount ?? 0) > 0;
  }

  async pruneEphemeral(before: Date): Promise<number> {
    const { rowCount } = await this.query('pruneEphemeral', 'DELETE FROM ephemeral_records WHERE expires_at < $1', [
      at(before, 'ephemeral prune time'),
    ]);
    return rowCount ?? 0;
  }

  async createRefreshToken(token: RefreshTokenRecord): Promise<void> {
    await this.query(
      'createRefreshToken',
      `INSERT INTO refresh_tokens
         (token_hash, family_id, client_id, principal_issuer, principal_subject, principal_name,
          scopes, resources, dpop_jkt, expires_at, created_at, used_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7::json, $8::json, $9, $10, $11, $12)`,
      [
        token.tokenHash,
        token.familyId,
        token.clientId,
        token.principal.issuer,
        token.principal.subject,
        token.principal.name,
        jsonText(token.scopes, 'refresh token scopes'),
        jsonText(token.resources, 'refresh token resources'),
        token.dpopJkt,
        at(token.expiresAt, 'refresh token expiresAt'),
        at(token.createdAt, 'refresh token createdAt'),
        atOrNull(token.usedAt, 'refresh token usedAt'),
      ],
      { conflict: `refresh token of family "${token.familyId}" conflicts with an existing token (same hash)` },
    );
  }

  async consumeRefreshToken(
    tokenHash: string,
    now: Date,
  ): Promise<{ token: RefreshTokenRecord; consumed: boolean } | null> {
    const used = await this.query<RefreshTokenRow>(
      'consumeRefreshToken',
      `UPDATE refresh_tokens SET used_at = $2
       WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING *`,
      [tokenHash, at(now, 'refresh token consumption time')],
    );
    if (used.rows[0]) return { token: toRefreshToken(used.rows[0]), consumed: true };
    // A token's used_at never goes back to NULL, so a live row found here was spent earlier.
    const earlier = await this.query<RefreshTokenRow>(
      'consumeRefreshToken',
      'SELECT * FROM refresh_tokens WHERE token_hash = $1 AND expires_at > $2',
      [tokenHash, now],
    );
    return earlier.rows[0] ? { token: toRefreshToken(earlier.rows[0]), consumed: false } : null;
  }

  async getRefreshToken(tokenHash: string, now: Date): Promise<RefreshTokenRecord | null> {
    const found = await this.query<RefreshTokenRow>(
      'getRefreshToken',
      'SELECT * FROM refresh_tokens WHERE token_hash = $1 AND expires_at > $2',
      [tokenHash, at(now, 'refresh token lookup time')],
    );
    return found.rows[0] ? toRefreshToken(found.rows[0]) : null;
  }

  async revokeRefreshFamily(familyId: string): Promise<number> {
    const { rowCount } = await this.query('revokeRefreshFamily', 'DELETE FROM refresh_tokens WHERE family_id = $1', [
      familyId,
    ]);
    return rowCount ?? 0;
  }

  async appendAuditRecords(records: readonly AuditRecord[]): Promise<void> {
    const first = checkAuditBatch(records);
    if (first === null) return;
    const columns: unknown[][] = Array.from({ length: 12 }, () => []);
    for (const r of records) auditRecordValues(r).forEach((value, i) => columns[i]?.push(value));
    await this.transaction('appendAuditRecords', async (client) => {
      await client.query(LOCK_AUDIT_LOG);
      const { rows } = await client.query<{ size: string }>(AUDIT_SIZE);
      requireLogContinues(first, Number(rows[0]?.size));
      // One statement for the whole batch: each parameter is one column, as an array.
      await client.query(
        `INSERT INTO audit_log
           (idx, event, leaf_hash, time, type, agent, principal_issuer, principal_subject, mandate_id, tool,
            decision, trace_id)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::timestamptz[], $5::text[], $6::text[],
                              $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])`,
        columns,
      );
    });
  }

  async auditSize(): Promise<number> {
    const { rows } = await this.query<{ size: string }>('auditSize', AUDIT_SIZE);
    return Number(rows[0]?.size);
  }

  async getAuditRecords(from: number, to: number): Promise<AuditRecord[]> {
    const { rows } = await this.query<AuditRow>(
      'getAuditRecords',
      'SELECT * FROM audit_log WHERE idx >= $1 AND idx < $2 ORDER BY idx',
      [requireCount(from, 'audit range from', 0), requireCount(to, 'audit range to', 0)],
    );
    return rows.map(toAuditRecord);
  }

  async getAuditLeafHashes(from: number, to: number): Promise<Uint8Array[]> {
    const { rows } = await this.query<{ leaf_hash: Buffer }>(
      'getAuditLeafHashes',
      'SELECT leaf_hash FROM audit_log WHERE idx >= $1 AND idx < $2 ORDER BY idx',
      [requireCount(from, 'audit range from', 0), requireCount(to, 'audit range to', 0)],
    );
    return rows.map((r) => r.leaf_hash);
  }

  async queryAuditRecords(query: AuditQuery): Promise<AuditRecord[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    const match = (column: string, op: string, value: unknown): void => {
      values.push(value);
      where.push(`${column} ${op} $${values.length}`);
    };
    for (const field of Object.keys(AUDIT_FILTER_COLUMNS) as (keyof typeof AUDIT_FILTER_COLUMNS)[]) {
      const value = query[field];
      if (value !== undefined) match(AUDIT_FILTER_COLUMNS[field], '=', value);
    }
    if (query.from !== undefined) match('time', '>=', at(query.from, 'audit query from'));
    if (query.to !== undefined) match('time', '<', at(query.to, 'audit query to'));
    if (query.afterIndex !== undefined) match('idx', '>', requireCount(query.afterIndex, 'audit query afterIndex', -1));
    let sql = 'SELECT * FROM audit_log';
    if (where.length > 0) sql += ` WHERE ${where.join(' AND ')}`;
    sql += ' ORDER BY idx';
    if (query.limit !== undefined) {
      values.push(requireCount(query.limit, 'audit query limit', 0));
      sql += ` LIMIT $${values.length}`;
    }
    const { rows } = await this.query<AuditRow>('queryAuditRecords', sql, values);
    return rows.map(toAuditRecord);
  }

  async putAuditCheckpoint(checkpoint: AuditCheckpointRecord): Promise<void> {
    const rootHash = requireHash(checkpoint.rootHash, 'audit checkpoint rootHash');
    const size = requireCount(checkpoint.size, 'audit checkpoint size', 0);
    const inserted = await this.query(
      'putAuditCheckpoint',
      `INSERT INTO audit_checkpoints (size, root_hash, note, created_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (size) DO NOTHING`,
      [size, rootHash, checkpoint.note, at(checkpoint.createdAt, 'audit checkpoint createdAt')],
    );
    if ((inserted.rowCount ?? 0) > 0) return;
    // Checkpoints are never changed or deleted, so the one found here is the one that was kept.
    const { rows } = await this.query<{ root_hash: Buffer }>(
      'putAuditCheckpoint',
      'SELECT root_hash FROM audit_checkpoints WHERE size = $1',
      [size],
    );
    const existing = rows[0];
    if (!existing) {
      throw new MandateError('ERR_STORE', 'postgres store: putAuditCheckpoint failed: checkpoint vanished after a conflict');
    }
    if (!existing.root_hash.equals(rootHash)) {
      throw new MandateError('ERR_CONFLICT', `an audit checkpoint of size ${size} already exists with another root hash`);
    }
  }

  async latestAuditCheckpoint(): Promise<AuditCheckpointRecord | null> {
    const { rows } = await this.query<AuditCheckpointRow>(
      'latestAuditCheckpoint',
      'SELECT * FROM audit_checkpoints ORDER BY size DESC LIMIT 1',
    );
    return rows[0] ? toAuditCheckpoint(rows[0]) : null;
  }

  async getAuditCheckpoint(size: number): Promise<AuditCheckpointRecord | null> {
    const { rows } = await this.query<AuditCheckpointRow>(
      'getAuditCheckpoint',
      'SELECT * FROM audit_checkpoints WHERE size = $1',
      [requireCount(size, 'audit checkpoint size', 0)],
    );
    return rows[0] ? toAuditCheckpoint(rows[0]) : null;
  }

  async listAuditCheckpoints(fromSize: number, toSize: number): Promise<AuditCheckpointRecord[]> {
    const { rows } = await this.query<AuditCheckpointRow>(
      'listAuditCheckpoints',
      'SELECT * FROM audit_checkpoints WHERE size >= $1 AND size <= $2 ORDER BY size',
      [requireCount(fromSize, 'audit checkpoint size', 0), requireCount(toSize, 'audit checkpoint size', 0)],
    );
    return rows.map(toAuditCheckpoint);
  }

  async putVaultSecret(secret: VaultSecretRecord): Promise<VaultSecretInfo> {
    const { rows } = await this.query<VaultSecretInfoRow>(
      'putVaultSecret',
      `INSERT INTO vault_secrets (owner_kind, owner_issuer, owner, name, value_enc, fingerprint, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (owner_kind, owner_issuer, owner, name) DO UPDATE
         SET value_enc = excluded.value_enc, fingerprint = excluded.fingerprint, updated_at = excluded.updated_at
       RETURNING ${VAULT_INFO_COLUMNS}`,
      [
        ...ownerColumns(secret.owner),
        secret.name,
        secret.valueEnc,
        secret.fingerprint,
        at(secret.createdAt, 'vault secret createdAt'),
        at(secret.updatedAt, 'vault secret updatedAt'),
      ],
    );
    return toVaultSecretInfo(rows[0] as VaultSecretInfoRow);
  }

  async getVaultSecret(owner: VaultOwner, name: string): Promise<VaultSecretRecord | null> {
    const { where, values } = vaultFilter({ owner }, (n) => `$${n}`);
    const { rows } = await this.query<VaultSecretRow>('getVaultSecret', `SELECT * FROM vault_secrets${where} AND name = $4`, [...values, name]);
    return rows[0] ? toVaultSecret(rows[0]) : null;
  }

  async listVaultSecrets(filter: VaultSecretFilter): Promise<VaultSecretInfo[]> {
    const { where, values } = vaultFilter(filter, (n) => `$${n}`);
    const { rows } = await this.query<VaultSecretInfoRow>('listVaultSecrets', `SELECT ${VAULT_INFO_COLUMNS} FROM vault_secrets${where} ${VAULT_ORDER}`, values);
    return rows.map(toVaultSecretInfo);
  }

  async deleteVaultSecret(owner: VaultOwner, name: string): Promise<boolean> {
    const { where, values } = vaultFilter({ owner }, (n) => `$${n}`);
    const { rowCount } = await this.query('deleteVaultSecret', `DELETE FROM vault_secrets${where} AND name = $4`, [...values, name]);
    return (rowCount ?? 0) > 0;
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
