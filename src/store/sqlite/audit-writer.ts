/**
 * Writing the audit log into SQLite: the durable append of a batch, and the search index kept
 * beside it (audit_search). Synchronous, on one connection: the store's own for an in-memory
 * database, otherwise the audit writer thread's (audit-thread.ts), so a commit's fsync never blocks
 * the event loop that serves requests.
 */
import type Database from 'better-sqlite3';
import { auditRecordValues, checkAuditBatch, requireLogContinues } from '../audit-values.ts';
import type { AuditRecord } from '../store.ts';

/**
 * Audit query fields whose entries live in audit_search (migration 5) rather than in an index of
 * audit_log, with their field number there; most selective first, as a query uses the first one it
 * filters on.
 */
export const AUDIT_SEARCH_FIELDS = [
  { field: 4, query: 'traceId', column: 'trace_id' },
  { field: 3, query: 'mandateId', column: 'mandate_id' },
  { field: 2, query: 'principalSubject', column: 'principal_subject' },
  { field: 1, query: 'agent', column: 'agent' },
] as const;

/**
 * Unindexed audit records at which the store indexes them, in the next turn of the event loop
 * after the commit that made them this many. The larger, the more events of one key share each
 * index page written, and the more records a query reads from the log directly.
 */
const AUDIT_SEARCH_BATCH = 8192;
/**
 * Unindexed records at which an append indexes them itself, after its commit: the background
 * indexing waits for a turn of the event loop, which a caller appending in a tight loop of
 * promises never gives. Bounds what a query reads from the log directly.
 */
const AUDIT_SEARCH_MAX_BEHIND = 4 * AUDIT_SEARCH_BATCH;
/** Longest a record waits to be indexed when fewer than AUDIT_SEARCH_BATCH follow it (ms). */
const AUDIT_SEARCH_DELAY_MS = 1000;
/** Most records indexed per transaction (a store opened after a long unindexed run). */
const AUDIT_SEARCH_CHUNK = 65_536;
/** log2 of the records per audit_search bucket: fixed by migration 5 (`idx >> 14`). */
export const AUDIT_SEARCH_BUCKET_BITS = 14;
/** Writes the search entries of the records @from <= idx < @to. */
const AUDIT_SEARCH_INSERT = `INSERT INTO audit_search (bucket, field, value, idx) ${AUDIT_SEARCH_FIELDS.map(
  (f) => `SELECT idx >> ${AUDIT_SEARCH_BUCKET_BITS}, ${f.field}, ${f.column}, idx FROM audit_log
          WHERE idx >= @from AND idx < @to AND ${f.column} IS NOT NULL`,
).join(' UNION ALL ')}`;

/** Indices are contiguous from 0, so the log's size is one past the highest (read off the primary key). */
export function auditLogSize(stmt: (sql: string) => Database.Statement): number {
  const last = stmt('SELECT max(idx) FROM audit_log').pluck().get() as number | null;
  return last === null ? 0 : last + 1;
}

/** Records below the watermark are in audit_search; those at or above it are not yet. */
export function auditWatermark(stmt: (sql: string) => Database.Statement): number {
  return stmt('SELECT indexed_upto FROM audit_search_state WHERE id = 1').pluck().get() as number;
}

/** The audit_search bucket of a log index. */
export function auditBucket(index: number): number {
  return Math.floor(index / 2 ** AUDIT_SEARCH_BUCKET_BITS);
}

/**
 * Keeps audit_search (migration 5) up to date with the log. The search entries of the records at
 * or above the watermark (`indexed_upto`) are written in one transaction once AUDIT_SEARCH_BATCH of
 * them have piled up, or AUDIT_SEARCH_DELAY_MS after the first: outside the durable append, so the
 * index pages a batch dirties are shared by its many events of each key instead of written again
 * for each commit. The entries and the watermark move together in one transaction and are derived
 * from the log rows, so a crash loses nothing: the next store opened on the file indexes the rest.
 */
export class AuditSearch {
  /** Records this store appended since it last indexed (other writers' records are found too). */
  #unindexed = 0;
  #soon: NodeJS.Immediate | undefined;
  #later: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Database.Database,
    private readonly stmt: (sql: string) => Database.Statement,
  ) {}

  /** Records below the watermark are in audit_search; those at or above it are not yet. */
  watermark(): number {
    return auditWatermark(this.stmt);
  }

  /** Called after each durable append (never inside its transaction): schedules indexing. */
  appended(records: number): void {
    this.#unindexed += records;
    if (this.#unindexed >= AUDIT_SEARCH_MAX_BEHIND) this.#indexNow();
    else if (this.#unindexed >= AUDIT_SEARCH_BATCH) this.#soon ??= setImmediate(() => this.#indexNow());
    else this.#later ??= setTimeout(() => this.#indexNow(), AUDIT_SEARCH_DELAY_MS).unref();
  }

  /** Indexes now; a failure must not fail the append that led here, which is durable already. */
  #indexNow(): void {
    this.#cancel();
    try {
      this.indexAll();
    } catch {
      // Nothing is lost: queries read unindexed records from the log, and the next append or the
      // next store opened on the file tries again.
    }
  }

  /** Indexes every record at or above the watermark; returns how many. */
  indexAll(): number {
    this.#unindexed = 0;
    let total = 0;
    for (let n = this.#indexChunk(); n > 0; n = this.#indexChunk()) total += n;
    return total;
  }

  /** Indexes up to AUDIT_SEARCH_CHUNK records above the watermark in one transaction; returns how many. */
  #indexChunk(): number {
    return this.db
      .transaction(() => {
        const mark = this.watermark();
        const size = auditLogSize(this.stmt);
        if (size < mark) {
          // Records were deleted behind the store's back (verification names them): keep the
          // index true to what is left, so records appended at those indices are found again.
          this.stmt('DELETE FROM audit_search WHERE bucket >= ? AND idx >= ?').run(auditBucket(size), size);
        }
        const from = Math.min(mark, size);
        const to = Math.min(size, from + AUDIT_SEARCH_CHUNK);
        if (to > from) this.stmt(AUDIT_SEARCH_INSERT).run({ from, to });
        if (to !== mark) this.stmt('UPDATE audit_search_state SET indexed_upto = ? WHERE id = 1').run(to);
        return to - from;
      })
      .immediate();
  }

  #cancel(): void {
    if (this.#soon) clearImmediate(this.#soon);
    if (this.#later) clearTimeout(this.#later);
    this.#soon = undefined;
    this.#later = undefined;
  }

  /** Stops background indexing (the store is closing; the next one opened indexes the rest). */
  close(): void {
    this.#cancel();
  }
}

/**
 * Appends batches of audit records on one connection and keeps their search entries coming.
 *
 * @example
 *   const writer = new SqliteAuditWriter(db);
 *   writer.append(records); // durable on return (fsync'd commit), or throws
 */
export class SqliteAuditWriter {
  readonly search: AuditSearch;
  readonly #statements = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {
    this.search = new AuditSearch(db, (sql) => this.#stmt(sql));
  }

  #stmt(sql: string): Database.Statement {
    let s = this.#statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s;
  }

  /**
   * Appends the records in one IMMEDIATE transaction; ERR_CONFLICT (nothing written) unless they
   * continue the log exactly. Schedules their indexing after the commit.
   */
  append(records: readonly AuditRecord[]): void {
    const first = checkAuditBatch(records);
    if (first === null) return;
    this.db
      .transaction(() => {
        requireLogContinues(first, auditLogSize((sql) => this.#stmt(sql)));
        const insert = this.#stmt(
          `INSERT INTO audit_log
             (idx, event, leaf_hash, time, type, agent, principal_issuer, principal_subject, mandate_id, tool,
              decision, trace_id)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        );
        // SQLite keeps the time as milliseconds since the epoch.
        for (const r of records) insert.run(...auditRecordValues(r).map((v) => (v instanceof Date ? v.getTime() : v)));
      })
      .immediate();
    this.search.appended(records.length);
  }

  close(): void {
    this.search.close();
    this.#statements.clear();
  }
}
