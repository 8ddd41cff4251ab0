/**
 * Crash safety of the audit log: a child process (crash-writer.ts) appends from 64 concurrent
 * producers and signs checkpoints until it is killed with SIGKILL at some moment; then every event it
 * acknowledged must be in the store exactly once, at the index it was given, the indices contiguous,
 * the log must reopen with the root of its stored leaves, take appends again, and its export must
 * verify. Three kills at different moments on the same log, on SQLite and on PostgreSQL.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { openPostgresStore } from '../store/postgres/postgres-store.ts';
import { openSqliteStore } from '../store/sqlite/sqlite-store.ts';
import type { Store } from '../store/store.ts';
import { verifyCheckpoint } from './checkpoint.ts';
import type { AuditEvent } from './event.ts';
import { exportAuditLog } from './export.ts';
import { AuditLog } from './log.ts';
import { leafHash, MerkleTreeBuilder } from './merkle.ts';
import { generateNoteKey, parseSignerKey, parseVerifierKey } from './note.ts';
import { verifyExport } from './verify.ts';

const ORIGIN = 'example.org/mandate/audit-crash';
const keys = generateNoteKey(ORIGIN);
const verifier = parseVerifierKey(keys.verifierKey);
const WRITER = new URL('./crash-writer.ts', import.meta.url).pathname;
/** The project root, where `--import tsx` resolves. */
const ROOT = new URL('../..', import.meta.url).pathname;
const databaseUrl = process.env.DATABASE_URL;

/** When to kill the writer: after this many acknowledgements, then after this many more milliseconds. */
const KILLS: ReadonlyArray<{ acks: number; delayMs: number }> = [
  { acks: 3000, delayMs: 0 },
  { acks: 1, delayMs: 0 },
  { acks: 1500, delayMs: 7 },
];

interface Backend {
  /** The writer's arguments after the script path. */
  args: string[];
  open: () => Promise<Store>;
}

/** Runs the writer until `kill` says, SIGKILLs it, and returns every `id -> index` it acknowledged. */
async function runAndKill(backend: Backend, kill: { acks: number; delayMs: number }): Promise<Map<string, number>> {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, ...backend.args], {
    env: { ...process.env, MANDATE_AUDIT_SIGNER_KEY: keys.signerKey, MANDATE_AUDIT_ORIGIN: ORIGIN },
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  const acked = new Map<string, number>();
  let killing = false;
  try {
    // Reads to the end: lines printed before the kill are still in the pipe and were acknowledged.
    for await (const line of createInterface({ input: child.stdout })) {
      if (line.startsWith('ready ')) continue;
      const [id, index] = line.split(' ');
      assert.ok(id && index && !acked.has(id), `writer line ${JSON.stringify(line)}`);
      acked.set(id, Number(index));
      if (!killing && acked.size >= kill.acks) {
        killing = true;
        setTimeout(() => child.kill('SIGKILL'), kill.delayMs);
      }
    }
  } finally {
    // Never leave the writer running, whatever failed here.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  assert.equal(await exited, 'SIGKILL', `the writer ended by itself: ${stderr}`);
  return acked;
}

/** Every acknowledged event once at its index, indices contiguous, leaves and checkpoints right. */
async function checkStored(store: Store, acked: ReadonlyMap<string, number>): Promise<number> {
  const size = await store.auditSize();
  const records = await store.getAuditRecords(0, size);
  const seen = new Map<string, number>();
  const tree = new MerkleTreeBuilder();
  const checkpoints = new Map((await store.listAuditCheckpoints(0, size)).map((c) => [c.size, c]));
  records.forEach((r, i) => {
    assert.equal(r.index, i, 'indices are contiguous from 0');
    assert.deepEqual(Buffer.from(r.leafHash), leafHash(Buffer.from(r.event, 'utf8')), `leaf hash of record ${i}`);
    const id = (JSON.parse(r.event) as AuditEvent).detail?.id as string;
    assert.equal(seen.get(id), undefined, `event ${id} stored twice, at ${seen.get(id)} and ${i}`);
    seen.set(id, i);
    tree.append(r.leafHash);
    const cp = checkpoints.get(i + 1);
    if (cp) assert.deepEqual(Buffer.from(cp.rootHash), tree.root(), `checkpoint of size ${i + 1}`);
  });
  for (const [id, index] of acked) assert.equal(seen.get(id), index, `acknowledged event ${id} at ${index}`);
  const log = await AuditLog.open({ store, origin: ORIGIN, signer: parseSignerKey(keys.signerKey) });
  assert.equal(log.size, size);
  assert.deepEqual(log.root(), tree.root(), 'the reopened log has the root of the stored leaves');
  await log.close();
  return size;
}

async function crashRounds(backend: Backend, note: (message: string) => void): Promise<void> {
  const acked = new Map<string, number>();
  let sizeBefore = 0;
  for (const kill of KILLS) {
    const round = await runAndKill(backend, kill);
    assert.ok(round.size >= kill.acks, `the writer acknowledged ${round.size} events`);
    for (const [id, index] of round) {
      assert.ok(index >= sizeBefore, `a new event got index ${index}, below the ${sizeBefore} stored before`);
      acked.set(id, index);
    }
    const store = await backend.open();
    try {
      const size = await checkStored(store, acked);
      note(`kill after ${kill.acks} acknowledgements + ${kill.delayMs} ms: ${round.size} acknowledged, ${size - sizeBefore} stored`);
      sizeBefore = size;
    } finally {
      await store.close();
    }
  }

  const store = await backend.open();
  try {
    const log = await AuditLog.open({ store, origin: ORIGIN, signer: parseSignerKey(keys.signerKey) });
    const { index } = await log.append({ v: 1, time: new Date().toISOString(), type: 'admin.check', outcome: 'success', replica: 'test', detail: { id: 'after-crashes' } });
    assert.equal(index, sizeBefore, 'appends go on at the end of the log');
    const note = await log.checkpoint();
    assert.equal(verifyCheckpoint(note, [verifier], { expectedOrigin: ORIGIN }).checkpoint.size, sizeBefore + 1);
    await log.close();
    const lines: string[] = [];
    await exportAuditLog(store, (line) => lines.push(line));
    const report = await verifyExport(lines, { verifiers: [verifier] });
    assert.deepEqual(report.problems, []);
    assert.ok(report.ok);
    assert.equal(report.size, sizeBefore + 1);
    assert.equal(report.root, log.root().toString('hex'));
    assert.ok(report.checkpoints > 1, `the export carries the writer's checkpoints (${report.checkpoints})`);
  } finally {
    await store.close();
  }
}

describe('audit log crash safety (SIGKILL while 64 producers append)', () => {
  it('SQLite: every acknowledged event survives exactly once and the log verifies', { timeout: 180_000 }, async (t) => {
    const path = join(mkdtempSync(join(tmpdir(), 'mandate-crash-')), 'mandate.db');
    await crashRounds({ args: ['sqlite', path], open: () => openSqliteStore({ path }) }, (m) => t.diagnostic(m));
  });

  it('PostgreSQL: the same', { timeout: 180_000, skip: databaseUrl ? false : 'DATABASE_URL is unset: PostgreSQL crash test skipped' }, async (t) => {
    const url = databaseUrl as string;
    const schema = `mandate_test_${randomBytes(6).toString('hex')}`;
    try {
      await crashRounds({ args: ['postgres', schema], open: () => openPostgresStore({ url, schema, poolSize: 2 }) }, (m) => t.diagnostic(m));
    } finally {
      const store = await openPostgresStore({ url, schema });
      await store.dropSchema();
      await store.close();
    }
  });
});
