/**
 * Child process of the audit crash test (crash.test.ts): opens a store and the audit log, then runs
 * many concurrent producers appending events until it is killed. It prints one line per
 * acknowledged append, `<event id> <index>`, only after the append resolved (so after its commit was
 * durable), and signs a checkpoint every 50 ms, so a SIGKILL can land in any of these steps.
 *
 *   node --import tsx crash-writer.ts sqlite <path>
 *   DATABASE_URL=postgres://… node --import tsx crash-writer.ts postgres <schema>
 *
 * Secrets come from the environment, never the command line (which any local user can list): the
 * checkpoint signer key (MANDATE_AUDIT_SIGNER_KEY) and the PostgreSQL URL; so does the log's origin
 * (MANDATE_AUDIT_ORIGIN). Producers: MANDATE_AUDIT_PRODUCERS
 * (default 64). Any failure prints one line on standard error and exits with status 1. Standard output is a pipe, which Node writes
 * synchronously on Linux, so a printed line has left the process before the next append starts.
 */
import { randomUUID } from 'node:crypto';
import { openStore, type StoreConfig } from '../store/open.ts';
import type { AuditEvent } from './event.ts';
import { AuditLog } from './log.ts';
import { parseSignerKey } from './note.ts';

function storeConfig(argv: readonly string[]): StoreConfig {
  const [driver, target] = argv;
  const url = process.env.DATABASE_URL;
  if (driver === 'sqlite' && target) return { driver, path: target };
  if (driver === 'postgres' && target && url) return { driver, url, schema: target, poolSize: 4 };
  throw new Error('usage: crash-writer.ts sqlite <path> | postgres <schema> (with DATABASE_URL set)');
}

/** A gateway decision of realistic size (about 500 bytes of canonical JSON). */
function decisionEvent(id: string, producer: number, n: number): AuditEvent {
  return {
    v: 1,
    time: new Date().toISOString(),
    type: 'gateway.decision',
    outcome: n % 7 === 0 ? 'failure' : 'success',
    agent: `spiffe://example.org/agent/worker-${producer}`,
    principal: { issuer: 'https://sso.example.org', subject: `user-${n % 97}` },
    mandateId: `mnd_${producer}`,
    chain: [`spiffe://example.org/agent/worker-${producer}`],
    resource: 'https://tools.example.org/github',
    action: 'tools/call',
    tool: 'issue_comment',
    argumentsDigest: 'a3f1c2e4b5d6978800112233445566778899aabbccddeeff0011223344556677',
    arguments: { repo: 'example/app', issue: n, body: '[redacted]' },
    decision: { decision: n % 7 === 0 ? 'deny' : 'allow', policies: ['github.issue_comment'], policySetVersion: 'v42' },
    result: { status: 200, durationMs: 12 },
    replica: `crash-writer-${process.pid}`,
    detail: { id },
  };
}

function fail(err: unknown): never {
  process.stderr.write(`crash-writer: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const { MANDATE_AUDIT_SIGNER_KEY: key, MANDATE_AUDIT_ORIGIN: origin } = process.env;
  if (!key || !origin) throw new Error('MANDATE_AUDIT_SIGNER_KEY and MANDATE_AUDIT_ORIGIN must be set');
  const producers = Number(process.env.MANDATE_AUDIT_PRODUCERS ?? 64);
  const store = await openStore(storeConfig(process.argv.slice(2)));
  const log = await AuditLog.open({ store, origin, signer: parseSignerKey(key) });
  process.stdout.write(`ready ${log.size}\n`);

  setInterval(() => log.checkpoint().catch(fail), 50);
  await Promise.all(Array.from({ length: producers }, async (_, p) => {
    for (let n = 0; ; n++) {
      const id = randomUUID();
      const { index } = await log.append(decisionEvent(id, p, n));
      process.stdout.write(`${id} ${index}\n`);
    }
  }));
}

await main().catch(fail);
