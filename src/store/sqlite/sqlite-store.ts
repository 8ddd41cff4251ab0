import type Database from 'better-sqlite3';
import { MandateError, isMandateError } from '../../errors.ts';
import { AUDIT_FILTER_COLUMNS, checkAuditBatch, requireHash } from '../audit-values.ts';
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
import { AuditWriterThread } from './audit-thread.ts';
import { AUDIT_SEARCH_FIELDS, AuditSearch, auditBucket, auditLogSize, auditWatermark, SqliteAuditWriter } from './audit-writer.ts';
import { type Expected, openDatabase, toStoreError } from './database.ts';
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

/**
 * Opens (creating if needed) the embedded SQLite store used by `mandate up`, and brings its schema
 * up to date. The parent directory is created with mode 0700 and a new database file with mode
 * 0600 (SQLite gives its -wal/-shm files the same mode). `':memory:'` gives a private in-memory
 * database, for tests.
 *
 * @example
 *   const store = await openSqliteStore({ path: '/var/lib/mandate/mandate.db' });
 *   await store.bumpBundleSequence();
 *   await store.close();
 */
export async function openSqliteStore(opts: { path: string }): Promise<Store> {
  const inMemory = opts.path === ':memory:';
  const db = openDatabase(opts.path, { writesAuditLog: inMemory });
  try {
    migrate(db);
    // Records a crashed process appended but had not indexed yet.
    new AuditSearch(db, (sql) => db.prepare(sql)).indexAll();
  } catch (err) {
    db.close();
    throw toStoreError('open', err);
  }
  // A file gets its audit writer thread; a private in-memory database is one connection's only.
  let writer: AuditWriterThread | SqliteAuditWriter;
  try {
    writer = inMemory ? new SqliteAuditWriter(db) : await AuditWriterThread.start(opts.path);
  } catch (err) {
    db.close();
    throw err;
  }
  return new SqliteStore(db, writer);
}

function migrate(db: Database.Database): void {
  const apply = db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT    NOT NULL,
      applied_at INTEGER NOT NULL
    ) STRICT`);
    const rows = db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[];
    const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
    for (const m of pendingMigrations(MIGRATIONS, new Set(rows.map((r) => r.version)))) {
      db.exec(m.sql);
      record.run(m.version, m.name, Date.now());
    }
  });
  // IMMEDIATE takes the write lock up front, so two processes opening a fresh file cannot both
  // decide a migration is pending.
  apply.immediate();
}

/** JSON text of a record value; a value JSON cannot represent (undefined, a function) is a caller bug. */
function jsonText(value: unknown, field: string): string {
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) throw new MandateError('ERR_INTERNAL', `${field} is not representable as JSON`);
  return text;
}

/** Guards counts handed to SQL (LIMIT, thresholds): SQLite would read a negative LIMIT as "no limit". */
function requireCount(value: number, field: string, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new MandateError('ERR_INTERNAL', `${field} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

/** Columns updateUser may change, by record field. */
const USER_COLUMNS = { displayName: 'display_name', passwordHash: 'password_hash', disabled: 'disabled' } as const;

/**
 * better-sqlite3 is synchronous; the methods are async only to satisfy the Store interface. Each
 * statement is atomic on its own, and SQLite's write lock serialises writers across processes.
 * Work of several statements runs in an IMMEDIATE transaction, which takes that lock up front.
 */
class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;

  private readonly statements = new Map<string, Database.Statement>();

  constructor(
    private readonly db: Database.Database,
    /** Appends audit records: on the audit writer thread for a file, on this connection in memory. */
    private readonly auditWriter: AuditWriterThread | SqliteAuditWriter,
  ) {}

  /** Prepared statements are reused: preparing costs more than running a point query. */
  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  /** Runs one unit of work, turning driver errors into MandateErrors. */
  private run<T>(op: string, work: () => T, expected?: Expected): Promise<T> {
    try {
      return Promise.resolve(work());
    } catch (err) {
      return Promise.reject(toStoreError(op, err, expected));
    }
  }

  putSigningKey(key: SigningKeyRecord): Promise<void> {
    return this.run(
      'putSigningKey',
      () => {
        this.stmt(
            `INSERT INTO signing_keys
               (id, kind, state, public_data, private_key_enc, trust_anchors, not_after, created_at, publish_until)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(
            key.id,
            key.kind,
            key.state,
            key.publicData,
            key.privateKeyEnc,
            key.trustAnchors,
            requireDate(key.notAfter, 'signing key notAfter'),
            requireDate(key.createdAt, 'signing key createdAt'),
            requireDateOrNull(key.publishUntil, 'signing key publishUntil'),
          );
      },
      { conflict: `signing key "${key.id}" already exists` },
    );
  }

  updateSigningKeyState(id: string, state: SigningKeyRecord['state'], publishUntil: Date | null): Promise<void> {
    return this.run('updateSigningKeyState', () => {
      const { changes } = this.stmt('UPDATE signing_keys SET state = ?, publish_until = ? WHERE id = ?')
        .run(state, requireDateOrNull(publishUntil, 'signing key publishUntil'), id);
      if (changes === 0) throw new MandateError('ERR_NOT_FOUND', `signing key "${id}" does not exist`);
    });
  }

  listSigningKeys(kind: SigningKeyRecord['kind']): Promise<SigningKeyRecord[]> {
    return this.run('listSigningKeys', () =>
      (
        this.stmt('SELECT * FROM signing_keys WHERE kind = ? ORDER BY created_at, id')
          .all(kind) as SigningKeyRow[]
      ).map(toSigningKey),
    );
  }

  deleteSigningKey(id: string): Promise<void> {
    return this.run('deleteSigningKey', () => {
      this.stmt('DELETE FROM signing_keys WHERE id = ?').run(id);
    });
  }

  getBundleSequence(): Promise<number> {
    return this.run('getBundleSequence', () => {
      const row = this.stmt('SELECT sequence FROM bundle_sequence WHERE id = 1').get() as
        | { sequence: number }
        | undefined;
      if (!row) throw new Error('bundle_sequence row is missing');
      return row.sequence;
    });
  }

  bumpBundleSequence(): Promise<number> {
    return this.run('bumpBundleSequence', () => {
      const row = this.stmt('UPDATE bundle_sequence SET sequence = sequence + 1 WHERE id = 1 RETURNING sequence')
        .get() as { sequence: number } | undefined;
      if (!row) throw new Error('bundle_sequence row is missing');
      return row.sequence;
    });
  }

  createEntry(entry: RegistrationEntry): Promise<void> {
    return this.run(
      'createEntry',
      () => {
        this.stmt(
            `INSERT INTO registration_entries
               (id, spiffe_id, selectors, x509_svid_ttl, jwt_svid_ttl, metadata, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(
            entry.id,
            entry.spiffeId,
            JSON.stringify(entry.selectors),
            entry.x509SvidTtl,
            entry.jwtSvidTtl,
            JSON.stringify(entry.metadata),
            requireDate(entry.createdAt, 'registration entry createdAt'),
          );
      },
      { conflict: `registration entry "${entry.id}" already exists` },
    );
  }

  getEntry(id: string): Promise<RegistrationEntry | null> {
    return this.run('getEntry', () => {
      const row = this.stmt('SELECT * FROM registration_entries WHERE id = ?').get(id) as EntryRow | undefined;
      return row ? toEntry(row) : null;
    });
  }

  listEntries(): Promise<RegistrationEntry[]> {
    return this.run('listEntries', () =>
      (this.stmt('SELECT * FROM registration_entries ORDER BY created_at, id').all() as EntryRow[]).map(toEntry),
    );
  }

  listEntriesBySpiffeId(spiffeId: string): Promise<RegistrationEntry[]> {
    return this.run('listEntriesBySpiffeId', () =>
      (
        this.stmt('SELECT * FROM registration_entries WHERE spiffe_id = ? ORDER BY created_at, id')
          .all(spiffeId) as EntryRow[]
      ).map(toEntry),
    );
  }

  deleteEntry(id: string): Promise<boolean> {
    return this.run('deleteEntry', () => this.stmt('DELETE FROM registration_entries WHERE id = ?').run(id).changes > 0);
  }

  createJoinToken(token: JoinTokenRecord): Promise<void> {
    return this.run(
      'createJoinToken',
      () => {
        this.stmt(
            `INSERT INTO join_tokens (id, secret_hash, entry_id, expires_at, used_at, created_at)
             VALUES (?, ?, ?, ?, ?, ?)`,
          )
          .run(
            token.id,
            token.secretHash,
            token.entryId,
            requireDate(token.expiresAt, 'join token expiresAt'),
            requireDateOrNull(token.usedAt, 'join token usedAt'),
            requireDate(token.createdAt, 'join token createdAt'),
          );
      },
      {
        conflict: `join token "${token.id}" conflicts with an existing token (same id or secret hash)`,
        missingReference: `join token "${token.id}" names registration entry "${token.entryId}", which does not exist`,
      },
    );
  }

  consumeJoinToken(secretHash: string, now: Date): Promise<{ token: JoinTokenRecord; consumed: boolean } | null> {
    return this.run('consumeJoinToken', () => {
      const used = this.stmt('UPDATE join_tokens SET used_at = ? WHERE secret_hash = ? AND used_at IS NULL RETURNING *')
        .get(requireDate(now, 'join token consumption time'), secretHash) as JoinTokenRow | undefined;
      if (used) return { token: toJoinToken(used), consumed: true };
      const earlier = this.stmt('SELECT * FROM join_tokens WHERE secret_hash = ?').get(secretHash) as
        | JoinTokenRow
        | undefined;
      return earlier ? { token: toJoinToken(earlier), consumed: false } : null;
    });
  }

  createAdminToken(token: AdminTokenRecord): Promise<void> {
    return this.run(
      'createAdminToken',
      () => {
        this.stmt('INSERT INTO admin_tokens (id, secret_hash, created_at) VALUES (?, ?, ?)')
          .run(token.id, token.secretHash, requireDate(token.createdAt, 'admin token createdAt'));
      },
      { conflict: `admin token "${token.id}" conflicts with an existing token (same id or secret hash)` },
    );
  }

  findAdminToken(secretHash: string): Promise<AdminTokenRecord | null> {
    return this.run('findAdminToken', () => {
      const row = this.stmt('SELECT * FROM admin_tokens WHERE secret_hash = ?').get(secretHash) as
        | AdminTokenRow
        | undefined;
      return row ? toAdminToken(row) : null;
    });
  }

  countAdminTokens(): Promise<number> {
    return this.run('countAdminTokens', () => {
      const row = this.stmt('SELECT count(*) AS n FROM admin_tokens').get() as { n: number };
      return row.n;
    });
  }

  deleteAdminTokens(): Promise<void> {
    return this.run('deleteAdminTokens', () => {
      this.stmt('DELETE FROM admin_tokens').run();
    });
  }

  putFederatedBundle(bundle: FederatedBundleRecord): Promise<void> {
    return this.run('putFederatedBundle', () => {
      this.stmt(
          `INSERT INTO federated_bundles (trust_domain, bundle, source, refreshed_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (trust_domain) DO UPDATE
             SET bundle = excluded.bundle, source = excluded.source, refreshed_at = excluded.refreshed_at`,
        )
        .run(bundle.trustDomain, bundle.bundle, bundle.source, requireDate(bundle.refreshedAt, 'federated bundle refreshedAt'));
    });
  }

  getFederatedBundle(trustDomain: string): Promise<FederatedBundleRecord | null> {
    return this.run('getFederatedBundle', () => {
      const row = this.stmt('SELECT * FROM federated_bundles WHERE trust_domain = ?').get(trustDomain) as
        | FederatedBundleRow
        | undefined;
      return row ? toFederatedBundle(row) : null;
    });
  }

  listFederatedBundles(): Promise<FederatedBundleRecord[]> {
    return this.run('listFederatedBundles', () =>
      (this.stmt('SELECT * FROM federated_bundles ORDER BY trust_domain').all() as FederatedBundleRow[]).map(
        toFederatedBundle,
      ),
    );
  }

  createUser(user: UserRecord): Promise<void> {
    const username = user.username.toLowerCase();
    return this.run(
      'createUser',
      () => {
        this.stmt(
            `INSERT INTO users
               (id, username, display_name, password_hash, failed_logins, locked_until, disabled, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(
            user.id,
            username,
            user.displayName,
            user.passwordHash,
            requireCount(user.failedLogins, 'user failedLogins', 0),
            requireDateOrNull(user.lockedUntil, 'user lockedUntil'),
            user.disabled ? 1 : 0,
            requireDate(user.createdAt, 'user createdAt'),
          );
      },
      { conflict: `user "${user.id}" conflicts with an existing user (same id or username "${username}")` },
    );
  }

  getUser(id: string): Promise<UserRecord | null> {
    return this.run('getUser', () => {
      const row = this.stmt('SELECT * FROM users WHERE id = ?').get(id) as UserRow | undefined;
      return row ? toUser(row) : null;
    });
  }

  findUserByUsername(username: string): Promise<UserRecord | null> {
    return this.run('findUserByUsername', () => {
      const row = this.stmt('SELECT * FROM users WHERE username = ?').get(username.toLowerCase()) as UserRow | undefined;
      return row ? toUser(row) : null;
    });
  }

  listUsers(): Promise<UserRecord[]> {
    return this.run('listUsers', () =>
      (this.stmt('SELECT * FROM users ORDER BY username').all() as UserRow[]).map(toUser),
    );
  }

  updateUser(
    id: string,
    change: Partial<Pick<UserRecord, 'displayName' | 'passwordHash' | 'disabled'>>,
  ): Promise<boolean> {
    return this.run('updateUser', () => {
      const sets: string[] = [];
      const values: (string | number)[] = [];
      for (const field of Object.keys(USER_COLUMNS) as (keyof typeof USER_COLUMNS)[]) {
        const value = change[field];
        if (value === undefined) continue;
        sets.push(`${USER_COLUMNS[field]} = ?`);
        values.push(typeof value === 'boolean' ? (value ? 1 : 0) : value);
      }
      if (sets.length === 0) return this.stmt('SELECT 1 FROM users WHERE id = ?').get(id) !== undefined;
      return this.stmt(`UPDATE users SET ${sets.join(', ')} WHERE id = ?`).run(...values, id).changes > 0;
    });
  }

  recordLoginFailure(id: string, maxFailures: number, lockUntil: Date): Promise<UserRecord | null> {
    return this.run('recordLoginFailure', () => {
      // Both CASEs read the row as it was before this UPDATE, so they agree on whether it locks.
      const row = this.stmt(
          `UPDATE users SET
             failed_logins = CASE WHEN failed_logins + 1 >= @max THEN 0 ELSE failed_logins + 1 END,
             locked_until  = CASE WHEN failed_logins + 1 >= @max THEN @lockUntil ELSE locked_until END
           WHERE id = @id RETURNING *`,
        )
        .get({
          id,
          max: requireCount(maxFailures, 'maxFailures', 1),
          lockUntil: requireDate(lockUntil, 'user lockUntil'),
        }) as UserRow | undefined;
      return row ? toUser(row) : null;
    });
  }

  recordLoginSuccess(id: string): Promise<void> {
    return this.run('recordLoginSuccess', () => {
      this.stmt('UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?').run(id);
    });
  }

  deleteUser(id: string): Promise<boolean> {
    return this.run('deleteUser', () => this.stmt('DELETE FROM users WHERE id = ?').run(id).changes > 0);
  }

  createMandate(mandate: MandateRecord): Promise<void> {
    return this.run(
      'createMandate',
      () => {
        this.stmt(
            `INSERT INTO mandates
               (id, principal_issuer, principal_subject, principal_name, agent, scopes, resources, constraints,
                max_depth, origin, client_id, created_at, expires_at, status, revoked_at, revoked_by)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(
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
            requireDate(mandate.createdAt, 'mandate createdAt'),
            requireDate(mandate.expiresAt, 'mandate expiresAt'),
            mandate.status,
            requireDateOrNull(mandate.revokedAt, 'mandate revokedAt'),
            mandate.revokedBy,
          );
      },
      { conflict: `mandate "${mandate.id}" already exists` },
    );
  }

  getMandate(id: string): Promise<MandateRecord | null> {
    return this.run('getMandate', () => {
      const row = this.stmt('SELECT * FROM mandates WHERE id = ?').get(id) as MandateRow | undefined;
      return row ? toMandate(row) : null;
    });
  }

  listMandates(filter: MandateFilter): Promise<MandateRecord[]> {
    return this.run('listMandates', () => {
      const where: string[] = [];
      const values: (string | number)[] = [];
      const match = (clause: string, value: string | number): void => {
        where.push(clause);
        values.push(value);
      };
      if (filter.principalIssuer !== undefined) match('principal_issuer = ?', filter.principalIssuer);
      if (filter.principalSubject !== undefined) match('principal_subject = ?', filter.principalSubject);
      if (filter.agent !== undefined) match('agent = ?', filter.agent);
      if (filter.status !== undefined) match('status = ?', filter.status);
      if (filter.liveAt !== undefined) match('expires_at > ?', requireDate(filter.liveAt, 'mandate filter liveAt'));
      if (filter.expiredBy !== undefined) match('expires_at <= ?', requireDate(filter.expiredBy, 'mandate filter expiredBy'));
      let sql = 'SELECT * FROM mandates';
      if (where.length > 0) sql += ` WHERE ${where.join(' AND ')}`;
      sql += ' ORDER BY created_at DESC, id DESC';
      if (filter.limit !== undefined) {
        sql += ' LIMIT ?';
        values.push(requireCount(filter.limit, 'mandate filter limit', 0));
      }
      return (this.stmt(sql).all(...values) as MandateRow[]).map(toMandate);
    });
  }

  revokeMandate(id: string, by: string, at: Date): Promise<{ mandate: MandateRecord; revoked: boolean } | null> {
    return this.run('revokeMandate', () => {
      const revokedAt = requireDate(at, 'mandate revocation time');
      return this.db
        .transaction(() => {
          const revoked = this.stmt(
              `UPDATE mandates SET status = 'revoked', revoked_at = ?, revoked_by = ?
               WHERE id = ? AND status = 'active' RETURNING *`,
            )
            .get(revokedAt, by, id) as MandateRow | undefined;
          if (revoked) {
            this.stmt(`INSERT INTO revocations (kind, id, expires_at, revoked_at) VALUES ('mandate', ?, ?, ?)`)
              .run(id, revoked.expires_at, revokedAt);
            return { mandate: toMandate(revoked), revoked: true };
          }
          const row = this.stmt('SELECT * FROM mandates WHERE id = ?').get(id) as MandateRow | undefined;
          return row ? { mandate: toMandate(row), revoked: false } : null;
        })
        .immediate();
    });
  }

  revokeToken(jti: string, expiresAt: Date, at: Date): Promise<number> {
    return this.run('revokeToken', () => {
      const expires = requireDate(expiresAt, 'token revocation expiresAt');
      const revokedAt = requireDate(at, 'token revocation time');
      return this.db
        .transaction(() => {
          const added = this.stmt(
              `INSERT INTO revocations (kind, id, expires_at, revoked_at) VALUES ('token', ?, ?, ?)
               ON CONFLICT (kind, id) DO NOTHING RETURNING seq`,
            )
            .get(jti, expires, revokedAt) as { seq: number } | undefined;
          if (added) return added.seq;
          const existing = this.stmt(`SELECT seq FROM revocations WHERE kind = 'token' AND id = ?`).get(jti) as
            | { seq: number }
            | undefined;
          if (!existing) throw new Error('token revocation vanished inside its transaction');
          return existing.seq;
        })
        .immediate();
    });
  }

  listRevocations(afterSeq: number, limit: number): Promise<RevocationRecord[]> {
    return this.run('listRevocations', () => {
      const after = requireCount(afterSeq, 'revocation afterSeq', 0);
      const max = requireCount(limit, 'revocation limit', 0);
      const rows = this.stmt('SELECT * FROM revocations WHERE seq > ? ORDER BY seq LIMIT ?').all(after, max);
      return (rows as RevocationRow[]).map(toRevocation);
    });
  }

  pruneRevocations(before: Date): Promise<number> {
    return this.run('pruneRevocations', () =>
      this.stmt('DELETE FROM revocations WHERE expires_at < ?').run(requireDate(before, 'revocation prune time')).changes,
    );
  }

  createOAuthClient(client: OAuthClientRecord): Promise<void> {
    return this.run(
      'createOAuthClient',
      () => {
        this.stmt('INSERT INTO oauth_clients (client_id, metadata, secret_hash, created_at) VALUES (?, ?, ?, ?)')
          .run(
            client.clientId,
            jsonText(client.metadata, 'OAuth client metadata'),
            client.secretHash,
            requireDate(client.createdAt, 'OAuth client createdAt'),
          );
      },
      { conflict: `OAuth client "${client.clientId}" already exists` },
    );
  }

  getOAuthClient(clientId: string): Promise<OAuthClientRecord | null> {
    return this.run('getOAuthClient', () => {
      const row = this.stmt('SELECT * FROM oauth_clients WHERE client_id = ?').get(clientId) as
        | OAuthClientRow
        | undefined;
      return row ? toOAuthClient(row) : null;
    });
  }

  deleteOAuthClient(clientId: string): Promise<boolean> {
    return this.run(
      'deleteOAuthClient',
      () => this.stmt('DELETE FROM oauth_clients WHERE client_id = ?').run(clientId).changes > 0,
    );
  }

  putEphemeral(record: Omit<EphemeralRecord, 'usedAt'>): Promise<void> {
    return this.run('putEphemeral', () => {
      this.stmt(
          `INSERT INTO ephemeral_records (kind, key, value, expires_at, used_at) VALUES (?, ?, ?, ?, NULL)
           ON CONFLICT (kind, key) DO UPDATE
             SET value = excluded.value, expires_at = excluded.expires_at, used_at = NULL`,
        )
        .run(
          record.kind,
          record.key,
          jsonText(record.value, 'ephemeral value'),
          requireDate(record.expiresAt, 'ephemeral expiresAt'),
        );
    });
  }

  getEphemeral(kind: string, key: string, now: Date): Promise<EphemeralRecord | null> {
    return this.run('getEphemeral', () => {
      const row = this.stmt('SELECT * FROM ephemeral_records WHERE kind = ? AND key = ? AND expires_at > ?')
        .get(kind, key, requireDate(now, 'ephemeral lookup time')) as EphemeralRow | undefined;
      return row ? toEphemeral(row) : null;
    });
  }

  consumeEphemeral(kind: string, key: string, now: Date): Promise<{ record: EphemeralRecord; consumed: boolean } | null> {
    return this.run('consumeEphemeral', () => {
      const ms = requireDate(now, 'ephemeral consumption time');
      for (;;) {
        const used = this.stmt(
            `UPDATE ephemeral_records SET used_at = ?
             WHERE kind = ? AND key = ? AND used_at IS NULL AND expires_at > ? RETURNING *`,
          )
          .get(ms, kind, key, ms) as EphemeralRow | undefined;
        if (used) return { record: toEphemeral(used), consumed: true };
        const earlier = this.stmt('SELECT * FROM ephemeral_records WHERE kind = ? AND key = ? AND expires_at > ?')
          .get(kind, key, ms) as EphemeralRow | undefined;
        if (!earlier) return null;
        if (earlier.used_at !== null) return { record: toEphemeral(earlier), consumed: false };
        // Another process replaced the record between the two statements: try the new one.
      }
    });
  }

  deleteEphemeral(kind: string, key: string): Promise<boolean> {
    return this.run(
      'deleteEphemeral',
      () => this.stmt('DELETE FROM ephemeral_records WHERE kind = ? AND key = ?').run(kind, key).changes > 0,
    );
  }

  pruneEphemeral(before: Date): Promise<number> {
    return this.run(
      'pruneEphemeral',
      () =>
        this.stmt('DELETE FROM ephemeral_records WHERE expires_at < ?').run(requireDate(before, 'ephemeral prune time'))
          .changes,
    );
  }

  createRefreshToken(token: RefreshTokenRecord): Promise<void> {
    return this.run(
      'createRefreshToken',
      () => {
        this.stmt(
            `INSERT INTO refresh_tokens
               (token_hash, family_id, client_id, principal_issuer, principal_subject, principal_name,
                scopes, resources, dpop_jkt, expires_at, created_at, used_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(
            token.tokenHash,
            token.familyId,
            token.clientId,
            token.principal.issuer,
            token.principal.subject,
            token.principal.name,
            jsonText(token.scopes, 'refresh token scopes'),
            jsonText(token.resources, 'refresh token resources'),
            token.dpopJkt,
            requireDate(token.expiresAt, 'refresh token expiresAt'),
            requireDate(token.createdAt, 'refresh token createdAt'),
            requireDateOrNull(token.usedAt, 'refresh token usedAt'),
          );
      },
      { conflict: `refresh token of family "${token.familyId}" conflicts with an existing token (same hash)` },
    );
  }

  consumeRefreshToken(tokenHash: string, now: Date): Promise<{ token: RefreshTokenRecord; consumed: boolean } | null> {
    return this.run('consumeRefreshToken', () => {
      const ms = requireDate(now, 'refresh token consumption time');
      const used = this.stmt(
          `UPDATE refresh_tokens SET used_at = ?
           WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING *`,
        )
        .get(ms, tokenHash, ms) as RefreshTokenRow | undefined;
      if (used) return { token: toRefreshToken(used), consumed: true };
      // A token's used_at never goes back to NULL, so a live row found here was spent earlier.
      const earlier = this.stmt('SELECT * FROM refresh_tokens WHERE token_hash = ? AND expires_at > ?')
        .get(tokenHash, ms) as RefreshTokenRow | undefined;
      return earlier ? { token: toRefreshToken(earlier), consumed: false } : null;
    });
  }

  getRefreshToken(tokenHash: string, now: Date): Promise<RefreshTokenRecord | null> {
    return this.run('getRefreshToken', () => {
      const row = this.stmt('SELECT * FROM refresh_tokens WHERE token_hash = ? AND expires_at > ?')
        .get(tokenHash, requireDate(now, 'refresh token lookup time')) as RefreshTokenRow | undefined;
      return row ? toRefreshToken(row) : null;
    });
  }

  revokeRefreshFamily(familyId: string): Promise<number> {
    return this.run(
      'revokeRefreshFamily',
      () => this.stmt('DELETE FROM refresh_tokens WHERE family_id = ?').run(familyId).changes,
    );
  }

  appendAuditRecords(records: readonly AuditRecord[]): Promise<void> {
    const writer = this.auditWriter;
    if (writer instanceof SqliteAuditWriter) return this.run('appendAuditRecords', () => writer.append(records));
    // Refused here, as the in-thread writer would, before anything is sent to the thread.
    try {
      if (checkAuditBatch(records) === null) return Promise.resolve();
    } catch (err) {
      return Promise.reject(toStoreError('appendAuditRecords', err));
    }
    return writer.append(records);
  }

  private auditCount(): number {
    return auditLogSize((sql) => this.stmt(sql));
  }

  auditSize(): Promise<number> {
    return this.run('auditSize', () => this.auditCount());
  }

  getAuditRecords(from: number, to: number): Promise<AuditRecord[]> {
    return this.run('getAuditRecords', () => {
      const rows = this.stmt('SELECT * FROM audit_log WHERE idx >= ? AND idx < ? ORDER BY idx')
        .all(requireCount(from, 'audit range from', 0), requireCount(to, 'audit range to', 0));
      return (rows as AuditRow[]).map(toAuditRecord);
    });
  }

  getAuditLeafHashes(from: number, to: number): Promise<Uint8Array[]> {
    return this.run('getAuditLeafHashes', () =>
      this.stmt('SELECT leaf_hash FROM audit_log WHERE idx >= ? AND idx < ? ORDER BY idx')
        .pluck()
        .all(requireCount(from, 'audit range from', 0), requireCount(to, 'audit range to', 0)) as Buffer[],
    );
  }

  /**
   * A query on a field of audit_search (agent, principal subject, mandate id, trace id) reads the
   * records indexed there, then those above the watermark, a bounded number, from the log itself;
   * both in one read transaction, so from one snapshot. Every filter is checked on the log row in
   * both parts, so the answer is exact wherever the watermark is. Other queries use audit_log's
   * own indexes.
   */
  queryAuditRecords(query: AuditQuery): Promise<AuditRecord[]> {
    return this.run('queryAuditRecords', () => {
      const filter = auditFilter(query);
      const after = query.afterIndex === undefined ? undefined : requireCount(query.afterIndex, 'audit query afterIndex', -1);
      // LIMIT -1 is SQLite's "no limit"; a caller's limit is checked to be >= 0 first.
      const limit = query.limit === undefined ? -1 : requireCount(query.limit, 'audit query limit', 0);
      const search = AUDIT_SEARCH_FIELDS.find((f) => query[f.query] !== undefined);
      const rows = search === undefined
        ? this.scanAudit(filter, after, limit)
        : this.db.transaction(() => this.searchAudit(search.field, query[search.query] as string, filter, after ?? -1, limit))();
      return rows.map(toAuditRecord);
    });
  }

  /** Log rows matching `filter` with index > `after`, oldest first, through audit_log's indexes. */
  private scanAudit(filter: AuditFilter, after: number | undefined, limit: number): AuditRow[] {
    const where = after === undefined ? filter.where : ['l.idx > ?', ...filter.where];
    const values = after === undefined ? filter.values : [after, ...filter.values];
    const clause = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
    return this.stmt(`SELECT l.* FROM audit_log AS l${clause} ORDER BY l.idx LIMIT ?`).all(...values, limit) as AuditRow[];
  }

  /** As scanAudit, for `field = value` of audit_search; runs inside a read transaction. */
  private searchAudit(field: number, value: string, filter: AuditFilter, after: number, limit: number): AuditRow[] {
    const mark = auditWatermark((sql) => this.stmt(sql));
    const also = filter.where.map((w) => ` AND ${w}`).join('');
    // One seek per bucket, in ascending order (SQLite walks an IN list sorted), each bucket's
    // entries in index order: rows come oldest first, no sort, and LIMIT stops early. CROSS JOIN
    // keeps audit_search the outer loop.
    const indexed = after + 1 >= mark ? [] : (this.stmt(
      `WITH RECURSIVE buckets (b) AS (SELECT ? UNION ALL SELECT b + 1 FROM buckets WHERE b < ?)
       SELECT l.* FROM audit_search AS s CROSS JOIN audit_log AS l ON l.idx = s.idx
       WHERE s.bucket IN (SELECT b FROM buckets) AND s.field = ? AND s.value = ? AND s.idx > ? AND s.idx < ?${also}
       ORDER BY s.bucket, s.idx LIMIT ?`,
    ).all(auditBucket(after + 1), auditBucket(mark - 1), field, value, after, mark, ...filter.values, limit) as AuditRow[]);
    if (limit !== -1 && indexed.length >= limit) return indexed;
    // NOT INDEXED: the rowid range above the watermark bounds this part, whatever else matches.
    const tail = this.stmt(`SELECT l.* FROM audit_log AS l NOT INDEXED WHERE l.idx >= ?${also} ORDER BY l.idx LIMIT ?`)
      .all(Math.max(mark, after + 1), ...filter.values, limit === -1 ? -1 : limit - indexed.length) as AuditRow[];
    return indexed.concat(tail);
  }

  putAuditCheckpoint(checkpoint: AuditCheckpointRecord): Promise<void> {
    return this.run('putAuditCheckpoint', () => {
      const rootHash = requireHash(checkpoint.rootHash, 'audit checkpoint rootHash');
      const inserted = this.stmt(
          `INSERT INTO audit_checkpoints (size, root_hash, note, created_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (size) DO NOTHING`,
        )
        .run(
          requireCount(checkpoint.size, 'audit checkpoint size', 0),
          rootHash,
          checkpoint.note,
          requireDate(checkpoint.createdAt, 'audit checkpoint createdAt'),
        );
      if (inserted.changes > 0) return;
      // Checkpoints are never changed or deleted, so the one found here is the one that was kept.
      const existing = this.stmt('SELECT root_hash FROM audit_checkpoints WHERE size = ?').pluck().get(checkpoint.size) as
        | Buffer
        | undefined;
      if (!existing) throw new Error('audit checkpoint vanished after a conflicting insert');
      if (!existing.equals(rootHash)) {
        throw new MandateError(
          'ERR_CONFLICT',
          `an audit checkpoint of size ${checkpoint.size} already exists with another root hash`,
        );
      }
    });
  }

  latestAuditCheckpoint(): Promise<AuditCheckpointRecord | null> {
    return this.run('latestAuditCheckpoint', () => {
      const row = this.stmt('SELECT * FROM audit_checkpoints ORDER BY size DESC LIMIT 1').get() as
        | AuditCheckpointRow
        | undefined;
      return row ? toAuditCheckpoint(row) : null;
    });
  }

  getAuditCheckpoint(size: number): Promise<AuditCheckpointRecord | null> {
    return this.run('getAuditCheckpoint', () => {
      const row = this.stmt('SELECT * FROM audit_checkpoints WHERE size = ?')
        .get(requireCount(size, 'audit checkpoint size', 0)) as AuditCheckpointRow | undefined;
      return row ? toAuditCheckpoint(row) : null;
    });
  }

  listAuditCheckpoints(fromSize: number, toSize: number): Promise<AuditCheckpointRecord[]> {
    return this.run('listAuditCheckpoints', () => {
      const rows = this.stmt('SELECT * FROM audit_checkpoints WHERE size >= ? AND size <= ? ORDER BY size')
        .all(requireCount(fromSize, 'audit checkpoint size', 0), requireCount(toSize, 'audit checkpoint size', 0)) as AuditCheckpointRow[];
      return rows.map(toAuditCheckpoint);
    });
  }

  putVaultSecret(secret: VaultSecretRecord): Promise<VaultSecretInfo> {
    return this.run('putVaultSecret', () => {
      const row = this.stmt(
          `INSERT INTO vault_secrets (owner_kind, owner_issuer, owner, name, value_enc, fingerprint, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (owner_kind, owner_issuer, owner, name) DO UPDATE
             SET value_enc = excluded.value_enc, fingerprint = excluded.fingerprint, updated_at = excluded.updated_at
           RETURNING ${VAULT_INFO_COLUMNS}`,
        )
        .get(
          ...ownerColumns(secret.owner),
          secret.name,
          secret.valueEnc,
          secret.fingerprint,
          requireDate(secret.createdAt, 'vault secret createdAt'),
          requireDate(secret.updatedAt, 'vault secret updatedAt'),
        ) as VaultSecretInfoRow;
      return toVaultSecretInfo(row);
    });
  }

  getVaultSecret(owner: VaultOwner, name: string): Promise<VaultSecretRecord | null> {
    return this.run('getVaultSecret', () => {
      const { where, values } = vaultFilter({ owner }, () => '?');
      const row = this.stmt(`SELECT * FROM vault_secrets${where} AND name = ?`).get(...values, name) as VaultSecretRow | undefined;
      return row ? toVaultSecret(row) : null;
    });
  }

  listVaultSecrets(filter: VaultSecretFilter): Promise<VaultSecretInfo[]> {
    return this.run('listVaultSecrets', () => {
      const { where, values } = vaultFilter(filter, () => '?');
      return (this.stmt(`SELECT ${VAULT_INFO_COLUMNS} FROM vault_secrets${where} ${VAULT_ORDER}`).all(...values) as VaultSecretInfoRow[])
        .map(toVaultSecretInfo);
    });
  }

  deleteVaultSecret(owner: VaultOwner, name: string): Promise<boolean> {
    return this.run('deleteVaultSecret', () => {
      const { where, values } = vaultFilter({ owner }, () => '?');
      return this.stmt(`DELETE FROM vault_secrets${where} AND name = ?`).run(...values, name).changes > 0;
    });
  }

  schemaVersion(): Promise<number> {
    return this.run('schemaVersion', () => {
      const row = this.stmt('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null };
      return row.v ?? 0;
    });
  }

  async close(): Promise<void> {
    await this.auditWriter.close();
    await this.run('close', () => {
      this.statements.clear();
      this.db.close();
    });
  }
}

/** The equality and time filters of an audit query as conditions on the log row (alias `l`). */
interface AuditFilter {
  where: string[];
  values: (string | number)[];
}

function auditFilter(query: AuditQuery): AuditFilter {
  const where: string[] = [];
  const values: (string | number)[] = [];
  for (const field of Object.keys(AUDIT_FILTER_COLUMNS) as (keyof typeof AUDIT_FILTER_COLUMNS)[]) {
    const value = query[field];
    if (value === undefined) continue;
    where.push(`l.${AUDIT_FILTER_COLUMNS[field]} = ?`);
    values.push(value);
  }
  if (query.from !== undefined) {
    where.push('l.time >= ?');
    values.push(requireDate(query.from, 'audit query from'));
  }
  if (query.to !== undefined) {
    where.push('l.time < ?');
    values.push(requireDate(query.to, 'audit query to'));
  }
  return { where, values };
}

