import { openPostgresStore } from './postgres/postgres-store.ts';
import { openSqliteStore } from './sqlite/sqlite-store.ts';
import type { Store } from './store.ts';

/** Which store to open, as it appears in the server configuration. */
export type StoreConfig =
  | { driver: 'sqlite'; path: string }
  | { driver: 'postgres'; url: string; schema?: string; poolSize?: number };

/**
 * Opens the configured store and runs its pending migrations.
 *
 * @example
 *   const store = await openStore({ driver: 'sqlite', path: `${dataDir}/mandate.db` });
 *   const prod = await openStore({ driver: 'postgres', url: process.env.DATABASE_URL!, schema: 'mandate' });
 */
export async function openStore(cfg: StoreConfig): Promise<Store> {
  switch (cfg.driver) {
    case 'sqlite':
      return openSqliteStore({ path: cfg.path });
    case 'postgres':
      return openPostgresStore({ url: cfg.url, schema: cfg.schema, poolSize: cfg.poolSize });
  }
}
