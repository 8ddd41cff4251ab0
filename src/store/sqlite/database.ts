/**
 * Opening Mandate's SQLite database the same way wherever a connection is needed (the store's own,
 * and the audit writer's on its thread), and turning driver errors into MandateErrors.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { isMandateError, MandateError, messageOf } from '../../errors.ts';

/**
 * Opens a connection with Mandate's settings. `writesAuditLog`: the connection that appends to the
 * audit log (the writer thread's, or the only one of an in-memory database) gets a larger page cache.
 */
export function openDatabase(path: string, opts: { writesAuditLog: boolean }): Database.Database {
  let db: Database.Database | undefined;
  try {
    if (path !== ':memory:') createPrivateFile(path);
    db = new Database(path);
    // WAL lets readers run beside the writer; FULL makes a committed transaction survive power loss.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    // 32 MB instead of 2: a batch of audit search entries, and the log pages it is read from, stay
    // in memory between the appends and the indexing (the cache fills only as pages are used).
    if (opts.writesAuditLog) db.pragma('cache_size = -32768');
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

/** What a failed statement means for the caller, when it is not a store fault. */
export interface Expected {
  /** Message for a primary-key or unique violation. */
  conflict?: string;
  /** Message for a foreign-key violation (a referenced record is missing). */
  missingReference?: string;
}

export function toStoreError(op: string, err: unknown, expected: Expected = {}): MandateError {
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
