/**
 * The admin API's vault routes on a real HTTP listener (127.0.0.1, port 0) over a SQLite store in a
 * temporary directory, for the route and CLI tests. The routes are registered through a stand-in for
 * admin.ts's wrapper, which there adds authentication and the `admin.*` events: this one answers
 * with the action's result and records which action ran.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Directory } from '../../delegation/principals/directory.ts';
import { Vault } from '../../gateway/vault.ts';
import { KeyEncryptionKey } from '../../identity/keys/kek.ts';
import { MemoryEventSink } from '../../observability/events.ts';
import { createLogger } from '../../observability/logger.ts';
import { openSqliteStore } from '../../store/sqlite/sqlite-store.ts';
import { sendJson } from '../http/context.ts';
import { Router } from '../http/router.ts';
import type { AdminRoute } from './admin.ts';
import { adminVaultRoutes } from './admin-vault.ts';

export const VAULT_API_ISSUER = 'http://127.0.0.1:8420';

export interface VaultApi {
  url: string;
  vault: Vault;
  events: MemoryEventSink;
  /** The directory user `alice`'s id (her principal's subject). */
  aliceId: string;
  /** The admin actions run, oldest first. */
  ran: string[];
  close(): Promise<void>;
}

export async function startVaultApi(): Promise<VaultApi> {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-vault-api-'));
  const store = await openSqliteStore({ path: join(dir, 'mandate.db') });
  const events = new MemoryEventSink();
  const vault = new Vault({ store, kek: KeyEncryptionKey.generate(), events });
  const directory = new Directory({ store, issuer: VAULT_API_ISSUER, maxFailures: 5, lockoutSeconds: 60, events });
  const alice = await directory.createUser({ username: 'alice', displayName: 'Alice', password: 'correct horse battery staple 7' });
  const router = new Router({ logger: createLogger({ level: 'silent' }), maxBodyBytes: 64 * 1024 });
  const ran: string[] = [];
  const on: AdminRoute = (method, path, action, run, opts) => router.on(method, path, async (ctx) => {
    const result = await run(ctx, 'admin:test');
    ran.push(action);
    sendJson(ctx.res, opts?.status ?? 200, result ?? {});
  });
  adminVaultRoutes(on, vault, { issuer: VAULT_API_ISSUER, directory });
  const server = createServer(router.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    vault, events, aliceId: alice.id, ran,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
