/**
 * One step of a store's schema history. Each dialect keeps an ordered array of these beside its
 * store (sqlite/migrations.ts, postgres/migrations.ts); a step, once released, is never edited:
 * changes are new steps with a higher version.
 *
 * @example
 *   const m: Migration = { version: 2, name: 'entries_by_created_at', sql: 'CREATE INDEX ...' };
 */
export interface Migration {
  /** Strictly increasing, starting at 1; recorded in `schema_migrations.version`. */
  version: number;
  name: string;
  /** One or more statements, run inside the transaction that records the version. */
  sql: string;
}

/**
 * The migrations not yet applied, in order. Throws when the database was migrated by a newer
 * build (a version this build does not know), because writing to a schema we do not understand
 * could corrupt it.
 *
 * @example
 *   pendingMigrations(MIGRATIONS, new Set([1])) // -> steps 2.. of MIGRATIONS
 */
export function pendingMigrations(all: readonly Migration[], applied: ReadonlySet<number>): Migration[] {
  const known = new Set(all.map((m) => m.version));
  const unknown = [...applied].filter((v) => !known.has(v));
  if (unknown.length > 0) {
    const newest = Math.max(...unknown);
    throw new Error(
      `database schema version ${newest} is newer than this build supports (${Math.max(0, ...known)})`,
    );
  }
  return all.filter((m) => !applied.has(m.version));
}

