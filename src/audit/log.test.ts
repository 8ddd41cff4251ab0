import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MandateError } from '../errors.ts';
import { openPostgresStore } from '../store/postgres/postgres-store.ts';
import { openSqliteStore } from '../store/sqlite/sqlite-store.ts';
import type { AuditRecord, Store } from '../store/store.ts';
import { verifyCheckpoint } from './checkpoint.ts';
import type { AuditEvent } from './event.ts';
import { AuditLog, CACHE_BLOCK, type CommitInfo } from './log.ts';
import { consistencyProof, inclusionProof, leafHash, memoryHashRange, rootOf, verifyConsistency, verifyInclusion, type HashRange } from './merkle.ts';
import { generateNoteKey, parseSignerKey, parseVerifierKey } from './note.ts';

const ORIGIN = 'example.org/mandate/audit';
const keys = generateNoteKey('example.org-audit');
const signer = parseSignerKey(keys.signerKey);
const verifier = parseVerifierKey(keys.verifierKey);

function event(n: number, extra: Partial<AuditEvent> = {}): AuditEvent {
  return { v: 1, time: new Date(Date.UTC(2026, 10, 24, 10, 0, 0, n)).toISOString(), type: 'gateway.decision', outcome: 'success', agent: `spiffe://example.org/agent/a${n % 3}`, principal: { issuer: 'https://sso.example', subject: `u${n % 5}` }, tool: 'add_comment', decision: { decision: n % 2 ? 'allow' : 'deny', policies: ['p'] }, replica: 'r1', ...extra };
}

describe('audit log', () => {
  let dir: string;
  let store: Store;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mandate-audit-'));
    store = await openSqliteStore({ path: join(dir, 'mandate.db') });
  });
  after(() => store.close());

  it('commits concurrent appends in batches, each index once, and the root covers every stored event', async () => {
    const log = await AuditLog.open({ store, origin: ORIGIN, signer });
    const indices = await Promise.all(Array.from({ length: 2500 }, (_, n) => log.append(event(n)).then((r) => r.index)));
    assert.deepEqual([...indices].sort((a, b) => a - b), Array.from({ length: 2500 }, (_, i) => i));
    assert.equal(log.size, 2500);
    assert.equal(await store.auditSize(), 2500);
    const stored = await store.getAuditRecords(0, 2500);
    for (const r of stored) assert.deepEqual(Buffer.from(r.leafHash), leafHash(Buffer.from(r.event, 'utf8')));
    assert.deepEqual(log.root(), rootOf(stored.map((r) => Buffer.from(r.leafHash))));
    await log.close();
  });

  it('reopens where it left off, signs checkpoints, and proves inclusion and consistency', async () => {
    const log = await AuditLog.open({ store, origin: ORIGIN, signer });
    const before = log.size;
    const oldNote = await log.checkpoint();
    const old = verifyCheckpoint(oldNote, [verifier], { expectedOrigin: ORIGIN }).checkpoint;
    assert.equal(old.size, before);
    const { index } = await log.append(event(9999, { type: 'mandate.revoked' }));
    assert.equal(index, before);
    const note = await log.checkpoint();
    const cp = verifyCheckpoint(note, [verifier], { expectedOrigin: ORIGIN }).checkpoint;
    assert.equal(cp.size, before + 1);
    const [record] = await store.getAuditRecords(index, index + 1);
    assert.ok(verifyInclusion(Buffer.from(record?.leafHash as Uint8Array), index, cp.size, await log.inclusionProof(index, cp.size), cp.rootHash));
    assert.ok(verifyInclusion(Buffer.from((await store.getAuditRecords(17, 18))[0]?.leafHash as Uint8Array), 17, cp.size, await log.inclusionProof(17, cp.size), cp.rootHash));
    assert.ok(verifyConsistency(old.size, cp.size, old.rootHash, cp.rootHash, await log.consistencyProof(old.size, cp.size)));
    assert.equal(await log.checkpoint(), note, 'no new checkpoint while nothing was appended');
    await log.close();
  });

  it('rejects a batch the store refuses, changes nothing, and goes on with the next', async () => {
    const log = await AuditLog.open({ store, origin: ORIGIN, signer });
    const size = log.size;
    const failing = Object.create(store) as Store;
    let fail = true;
    failing.appendAuditRecords = (records) => (fail ? Promise.reject(new Error('disk full')) : store.appendAuditRecords(records));
    const flaky = await AuditLog.open({ store: failing, origin: ORIGIN, signer });
    await assert.rejects(flaky.append(event(1)), /disk full/);
    assert.equal(flaky.size, size);
    fail = false;
    assert.deepEqual(await flaky.append(event(2)), { index: size });
    await flaky.close();
    await log.close();
  });

  it('checkpoints under sustained load, covering everything appended before the call', { timeout: 30_000 }, async () => {
    const log = await AuditLog.open({ store, origin: ORIGIN, signer });
    let running = true;
    let acked = 0;
    const producers = Array.from({ length: 32 }, async (_, p) => {
      for (let n = 0; running; n++) {
        await log.append(event(p * 1_000_000 + n));
        acked += 1;
      }
    });
    while (acked < 500) await new Promise((resolve) => setImmediate(resolve));
    const before = log.size + log.queued;
    const note = await log.checkpoint();
    const cp = verifyCheckpoint(note, [verifier], { expectedOrigin: ORIGIN }).checkpoint;
    assert.ok(cp.size >= before, `checkpoint of ${cp.size} covers the ${before} events appended before it`);
    assert.ok(log.queued > 0 || log.size > cp.size, 'the load went on while the checkpoint was taken');
    running = false;
    await Promise.all(producers);
    await log.close();
    assert.deepEqual(Buffer.from(cp.rootHash), rootOf((await store.getAuditLeafHashes(0, cp.size)).map((h) => Buffer.from(h))));
  });

  it('refuses an event with a bad time, and appends after close', async () => {
    const log = await AuditLog.open({ store, origin: ORIGIN, signer });
    await assert.rejects(log.append({ ...event(1), time: 'yesterday' }), /not an ISO 8601 time/);
    await log.close();
    await assert.rejects(log.append(event(1)), /closed/);
  });
});

const databaseUrl = process.env.DATABASE_URL;

function sqliteFile(): string {
  return join(mkdtempSync(join(tmpdir(), 'mandate-audit-')), 'mandate.db');
}

/** Records for events [from, to), as AuditLog would store them, for filling a store quickly. */
function records(from: number, to: number): AuditRecord[] {
  return Array.from({ length: to - from }, (_, i) => {
    const text = JSON.stringify({ n: from + i });
    return { index: from + i, event: text, leafHash: leafHash(Buffer.from(text)), time: new Date(0), type: 't', agent: null, principalIssuer: null, principalSubject: null, mandateId: null, tool: null, decision: null, traceId: null };
  });
}

/** A store that counts the leaf hashes read through it. */
function counting(store: Store): { store: Store; leavesRead: () => number } {
  let read = 0;
  const wrapped = Object.create(store) as Store;
  wrapped.getAuditLeafHashes = async (from, to) => {
    const hashes = await store.getAuditLeafHashes(from, to);
    read += hashes.length;
    return hashes;
  };
  return { store: wrapped, leavesRead: () => read };
}

/** Sizes around cache block boundaries and a few between, up to `n`. */
function interestingSizes(n: number): number[] {
  const sizes = new Set([1, 2, 3, 7, 100, n]);
  for (let b = CACHE_BLOCK; b <= n; b += CACHE_BLOCK) for (const s of [b - 1, b, b + 1]) if (s <= n) sizes.add(s);
  return [...sizes].sort((a, b) => a - b);
}

describe('audit log proofs from the subtree cache', () => {
  const SIZE = 10 * CACHE_BLOCK + 37;
  let store: Store;
  before(async () => {
    store = await openSqliteStore({ path: sqliteFile() });
    // Half stored before the log opens (the cache is built from the store), half appended through it.
    await store.appendAuditRecords(records(0, 1300));
    const log = await AuditLog.open({ store, origin: ORIGIN, signer });
    await Promise.all(Array.from({ length: SIZE - 1300 }, (_, n) => log.append(event(n))));
    await log.close();
  });
  after(() => store.close());

  /** Every proof at sizes around block boundaries up to the log's size equals merkle.ts's, from all leaves in memory. */
  async function checkAgainstReference(log: AuditLog): Promise<void> {
    const leaves = (await store.getAuditLeafHashes(0, log.size)).map((h) => Buffer.from(h));
    assert.deepEqual(log.root(), rootOf(leaves));
    // The root of a range does not depend on the tree around it, so one memoised reference serves every size.
    const roots = new Map<string, Buffer>();
    const all = memoryHashRange(leaves);
    const reference: HashRange = (start, end) => roots.get(`${start}:${end}`) ?? roots.set(`${start}:${end}`, all(start, end)).get(`${start}:${end}`) as Buffer;
    const sizes = interestingSizes(log.size);
    for (const size of sizes) {
      for (const index of new Set([0, 1, size >> 1, 255, 256, 257, size - 2, size - 1, (size * 7919) % size])) {
        if (index < 0 || index >= size) continue;
        assert.deepEqual(await log.inclusionProof(index, size), inclusionProof(index, size, reference), `inclusion of ${index} in ${size}`);
      }
      for (const oldSize of sizes.filter((s) => s <= size)) {
        assert.deepEqual(await log.consistencyProof(oldSize, size), consistencyProof(oldSize, size, reference), `consistency ${oldSize} -> ${size}`);
      }
    }
  }

  it('equals the reference proofs of merkle.ts at sizes on and around block boundaries, as appended and after reopening', async () => {
    const log = await AuditLog.open({ store, origin: ORIGIN, signer });
    assert.equal(log.size, SIZE);
    await checkAgainstReference(log);
    // Grown by appends: blocks completed after opening are cached as they commit.
    const extra = await Promise.all(Array.from({ length: 3 * CACHE_BLOCK + 50 }, (_, n) => log.append(event(n)).then((r) => r.index)));
    assert.equal(Math.min(...extra), SIZE);
    await checkAgainstReference(log);
    await log.close();
    await checkAgainstReference(await AuditLog.open({ store, origin: ORIGIN, signer }));
  });

  it('reads at most two blocks of leaf hashes per proof, however large the log', async () => {
    const { store: watched, leavesRead } = counting(store);
    const log = await AuditLog.open({ store: watched, origin: ORIGIN, signer });
    const size = log.size;
    const opened = leavesRead();
    assert.equal(opened, size, 'opening reads every leaf hash once');
    for (const [index, at] of [[0, size], [size - 1, size], [1000, 2000], [300, 2 * CACHE_BLOCK + 1]] as const) {
      const before = leavesRead();
      await log.inclusionProof(index, at);
      assert.ok(leavesRead() - before <= 2 * CACHE_BLOCK, `inclusion ${index} in ${at} read ${leavesRead() - before} leaves`);
    }
    for (const [oldSize, newSize] of [[1, size], [CACHE_BLOCK * 3 + 5, size], [777, 2049], [CACHE_BLOCK, 4 * CACHE_BLOCK]] as const) {
      const before = leavesRead();
      await log.consistencyProof(oldSize, newSize);
      assert.ok(leavesRead() - before <= 2 * CACHE_BLOCK, `consistency ${oldSize} -> ${newSize} read ${leavesRead() - before} leaves`);
    }
    const before = leavesRead();
    await log.inclusionProof(CACHE_BLOCK * 4, CACHE_BLOCK * 8);
    assert.equal(leavesRead() - before, CACHE_BLOCK - 1, 'a leaf of a cached tree needs only the other leaves of its block');
  });

  it('refuses proofs beyond the log, and an index outside the tree', async () => {
    const log = await AuditLog.open({ store, origin: ORIGIN, signer });
    await assert.rejects(log.inclusionProof(0, log.size + 1), /the log has/);
    await assert.rejects(log.consistencyProof(1, log.size + 1), /the log has/);
    await assert.rejects(log.inclusionProof(log.size), /is not in a tree/);
    await assert.rejects(log.consistencyProof(0), /no consistency proof/);
  });

  it('refuses to open over a store that lost records in the middle', async () => {
    const holed = Object.create(store) as Store;
    holed.getAuditLeafHashes = async (from, to) => (await store.getAuditLeafHashes(from, to)).slice(1);
    await assert.rejects(AuditLog.open({ store: holed, origin: ORIGIN, signer }), /audit records are missing between 0 and/);
  });
});

describe('audit log metrics hooks', () => {
  it('reports each durable batch and each refused one, and a throwing hook changes nothing', async () => {
    const store = await openSqliteStore({ path: sqliteFile() });
    const commits: CommitInfo[] = [];
    const errors: Array<{ events: number; error: unknown }> = [];
    let fail = false;
    const flaky = Object.create(store) as Store;
    flaky.appendAuditRecords = (r) => (fail ? Promise.reject(new MandateError('ERR_STORE', 'disk full')) : store.appendAuditRecords(r));
    const log = await AuditLog.open({
      store: flaky,
      origin: ORIGIN,
      signer,
      maxBatch: 100,
      onCommit: (info) => {
        commits.push(info);
        throw new Error('metrics backend down');
      },
      onCommitError: (info) => errors.push(info),
    });
    const indices = await Promise.all(Array.from({ length: 250 }, (_, n) => log.append(event(n)).then((r) => r.index)));
    assert.deepEqual(indices, Array.from({ length: 250 }, (_, i) => i));
    assert.deepEqual(commits.map((c) => c.events), [100, 100, 50]);
    assert.deepEqual(commits.map((c) => c.queueDepth), [150, 50, 0]);
    assert.deepEqual(commits.map((c) => c.size), [100, 200, 250]);
    for (const c of commits) {
      assert.ok(c.durationMs >= 0 && c.waitMs >= c.durationMs, JSON.stringify(c));
      assert.equal(c.retries, 0);
    }
    fail = true;
    await assert.rejects(log.append(event(1)), /disk full/);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.events, 1);
    assert.match(String(errors[0]?.error), /disk full/);
    assert.equal(log.size, 250);
    await log.close();
    await store.close();
  });
});

/** Two logs over one database appending at once: every append lands once, at the index it was given. */
async function appendFromTwoReplicas(open: () => Promise<Store>): Promise<void> {
  const stores = [await open(), await open()];
  try {
    const retries: number[] = [0, 0];
    const logs = await Promise.all(stores.map((store, r) => AuditLog.open({ store, origin: ORIGIN, signer, maxBatch: 50, onCommit: (c) => (retries[r] = (retries[r] ?? 0) + c.retries) })));
    const ids = Array.from({ length: 2 }, () => Array.from({ length: 400 }, () => randomUUID()));
    const acked = await Promise.all(logs.map((log, r) => Promise.all((ids[r] as string[]).map(async (id, n) => {
      if (n % 25 === 0) await new Promise((resolve) => setImmediate(resolve));
      return { id, index: (await log.append(event(n, { detail: { id } }))).index };
    }))));
    assert.ok((retries[0] ?? 0) + (retries[1] ?? 0) > 0, 'the replicas conflicted at least once');
    const store = stores[0] as Store;
    const size = await store.auditSize();
    assert.equal(size, 800);
    const stored = await store.getAuditRecords(0, size);
    const byIndex = new Map(stored.map((r) => [r.index, (JSON.parse(r.event) as AuditEvent).detail?.id]));
    for (const { id, index } of acked.flat()) assert.equal(byIndex.get(index), id, `event ${id} at ${index}`);
    assert.equal(new Set(byIndex.values()).size, 800);
    const fresh = await AuditLog.open({ store, origin: ORIGIN, signer });
    assert.deepEqual(fresh.root(), rootOf(stored.map((r) => Buffer.from(r.leafHash))));
    // Each replica's view is a prefix of the log: its root and proofs agree with a fresh reader.
    for (const log of logs) {
      const leaves = stored.slice(0, log.size).map((r) => Buffer.from(r.leafHash));
      assert.deepEqual(log.root(), rootOf(leaves));
      assert.deepEqual(await log.inclusionProof(log.size - 1), inclusionProof(log.size - 1, log.size, memoryHashRange(leaves)));
      await log.close();
    }
  } finally {
    for (const s of stores) await s.close();
  }
}

describe('audit log conflict recovery', () => {
  it('two logs over one SQLite file: a refused batch is retried at the new end of the log', async () => {
    const path = sqliteFile();
    await appendFromTwoReplicas(() => openSqliteStore({ path }));
  });

  it('two logs over one PostgreSQL schema', { skip: databaseUrl ? false : 'DATABASE_URL is unset: PostgreSQL audit log test skipped' }, async () => {
    const url = databaseUrl as string;
    const schema = `mandate_test_${randomBytes(6).toString('hex')}`;
    try {
      await appendFromTwoReplicas(() => openPostgresStore({ url, schema, poolSize: 3 }));
    } finally {
      const cleanup = await openPostgresStore({ url, schema });
      await cleanup.dropSchema();
      await cleanup.close();
    }
  });

  it('gives up after the configured retries when the log keeps moving', async () => {
    const store = await openSqliteStore({ path: sqliteFile() });
    let attempts = 0;
    const moving = Object.create(store) as Store;
    moving.appendAuditRecords = async () => {
      attempts += 1;
      throw new MandateError('ERR_CONFLICT', 'audit log holds more records');
    };
    const log = await AuditLog.open({ store: moving, origin: ORIGIN, signer, conflictRetries: 3 });
    await assert.rejects(log.append(event(1)), (err: unknown) => err instanceof MandateError && err.code === 'ERR_CONFLICT' && /after 3 retries/.test(err.message));
    assert.equal(attempts, 4);
    await store.close();
  });

  it('refuses the batch when the stored log shrank', async () => {
    const store = await openSqliteStore({ path: sqliteFile() });
    await store.appendAuditRecords(records(0, 10));
    const shrunk = Object.create(store) as Store;
    const log = await AuditLog.open({ store: shrunk, origin: ORIGIN, signer });
    shrunk.appendAuditRecords = async () => {
      throw new MandateError('ERR_CONFLICT', 'audit log holds 9 records');
    };
    shrunk.auditSize = async () => 9;
    await assert.rejects(log.append(event(1)), /holds 9 records, fewer than the 10 already read/);
    assert.equal(log.size, 10);
    await store.close();
  });
});
