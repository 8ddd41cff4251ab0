import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { MandateError, isMandateError, messageOf } from '../../errors.ts';
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
  const db = openDatabase(opts.path);
  try {
    migrate(db);
  } catch (err) {
    db.close();
    throw toStoreError('migrate', err);
  }
  return new SqliteStore(db);
}

function openDatabase(path: string): Database.Database {
  let db: Database.Database | undefined;
  try {
    if (path !== ':memory:') createPrivateFile(path);
    db = new Database(path);
    // WAL lets readers run beside the writer; FULL makes a committed transaction survive power loss.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    return db;
  } catch (err) {
    db?.close();
    throw toStoreError(`open ${path}`, err);
  }
}

/** Creates the file ourselves first: SQLite would create it with the umask's mode (often 0644). */
function createPrivateFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
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

/** What a failed statement means for the caller, when it is not a store fault. */
interface Expected {
  /** Message for a primary-key or unique violation. */
  conflict?: string;
  /** Message for a foreign-key violation (a referenced record is missing). */
  missingReference?: string;
}

function toStoreError(op: string, err: unknown, expected: Expected = {}): MandateError {
  if (isMandateError(err)) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (expected.conflict && (code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE')) {
    return new MandateError('ERR_CONFLICT', expected.conflict);
  }
  if (expected.missingReference && code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
    return new MandateError('ERR_NOT_FOUND', expected.missingReference);
  }
  return new MandateError('ERR_STORE', `sqlite store: ${op} failed: ${messageOf(err)}`, { cause: err });
}

/**
 * better-sqlite3 is synchronous; the methods are async only to satisfy the Store interface. Each
 * statement is atomic on its own, and SQLite's write lock serialises writers across processes.
 */
class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;

  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {}

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

  schemaVersion(): Promise<number> {
    return this.run('schemaVersion', () => {
      const row = this.stmt('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null };
      return row.v ?? 0;
    });
  }

  close(): Promise<void> {
    return this.run('close', () => {
      this.statements.clear();
      this.db.close();
    });
  }
}
