/**
 * Audit log benchmarks, each beside a baseline measured in the same run:
 *
 * - Durable appends per second through AuditLog (group commit) with many producers in flight, on
 *   SQLite (a file in a temporary directory, WAL, synchronous = FULL as the store opens it) and on
 *   PostgreSQL when DATABASE_URL is set, with p50/p99 append latency. Baseline: the same database
 *   committing one row of the same size per transaction (better-sqlite3 directly; one pg connection).
 * - Offline verification (verify.ts `verifyExport`) of an export of 1,000,000 realistic events read
 *   from a file, as `mandate audit verify` reads it. The export is generated directly (canonical event
 *   text, leaf hashes, signed checkpoints), not through the store, to keep the run short. Baseline:
 *   reading the same file the same way and computing one SHA-256 per line.
 * - Inclusion and consistency proofs through AuditLog over SQLite at 10^3, 10^5 and 10^6 events:
 *   size in hashes and bytes (baseline log2 n) and time (baseline: the time at 10^3), plus the time
 *   to open the log (which reads every leaf hash once), and the time of two store queries (an
 *   agent's next 100 events, a trace id's events; baseline: reading as many records by index). The
 *   store is filled with `appendAuditRecords` in batches of 10,000.
 *
 * BENCH_AUDIT_PARTS (sqlite,postgres,verify,proofs) runs some parts only; results are then printed,
 * not written.
 */
import { hash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import pg from 'pg';
import { signCheckpoint } from '../src/audit/checkpoint.ts';
import { canonicalJson, type AuditEvent } from '../src/audit/event.ts';
import { EXPORT_FORMAT, EXPORT_VERSION } from '../src/audit/export.ts';
import { AuditLog } from '../src/audit/log.ts';
import { leafHash, MerkleTreeBuilder, verifyInclusion } from '../src/audit/merkle.ts';
import { generateNoteKey, parseSignerKey, parseVerifierKey } from '../src/audit/note.ts';
import { splitLines, verifyExport } from '../src/audit/verify.ts';
import { openPostgresStore } from '../src/store/postgres/postgres-store.ts';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import type { AuditRecord, Store } from '../src/store/store.ts';
import { machine, result, writeResults, type Result } from './lib.ts';

const APPEND_MS = Number(process.env.BENCH_AUDIT_MS ?? 5000);
const WARM_MS = 1000;
const BASELINE_MS = Number(process.env.BENCH_AUDIT_BASELINE_MS ?? 3000);
const PRODUCERS = Number(process.env.BENCH_AUDIT_PRODUCERS ?? 256);
const VERIFY_EVENTS = Number(process.env.BENCH_AUDIT_VERIFY_EVENTS ?? 1_000_000);
const PROOF_SIZES = (process.env.BENCH_AUDIT_PROOF_SIZES ?? '1000,100000,1000000').split(',').map(Number);
const PROOFS_PER_SIZE = 500;
const QUERIES_PER_SIZE = 200;
const FILL_BATCH = 10_000;
/** Which parts to run (comma-separated); results are written only when all of them ran. */
const ALL_PARTS = ['sqlite', 'postgres', 'verify', 'proofs'] as const;
const PARTS = new Set((process.env.BENCH_AUDIT_PARTS ?? ALL_PARTS.join(',')).split(',').map((p) => p.trim()));
const APPEND_TARGET = 20_000;
const VERIFY_TARGET_S = 10;

const ORIGIN = 'example.org/mandate/audit';
const keys = generateNoteKey(ORIGIN);
const signer = parseSignerKey(keys.signerKey);
const verifier = parseVerifierKey(keys.verifierKey);
const EPOCH = Date.UTC(2026, 10, 24, 8, 0, 0);

const TOOLS = ['issue_comment', 'invoice_get', 'message_post', 'query', 'file_share', 'deployment_scale', 'refund', 'event_create'];

/** A gateway decision as the gateway records it: about 530 bytes of canonical JSON. */
function benchEvent(n: number): AuditEvent {
  const agent = `spiffe://example.org/agent/worker-${n % 200}`;
  const allow = n % 9 !== 0;
  return {
    v: 1,
    time: new Date(EPOCH + n * 3).toISOString(),
    type: 'gateway.decision',
    outcome: allow ? 'success' : 'failure',
    agent,
    principal: { issuer: 'https://sso.example.org', subject: `user-${n % 1000}` },
    mandateId: `mnd_${(n % 5000).toString(36).padStart(6, '0')}`,
    chain: [agent],
    resource: 'https://tools.example.org/mcp',
    action: 'tools/call',
    tool: TOOLS[n % TOOLS.length] as string,
    argumentsDigest: hashHex(n),
    arguments: { body: '[redacted]', issue: n % 10_000, repo: 'example/app' },
    decision: { decision: allow ? 'allow' : 'deny', policies: ['github.issue_comment'], policySetVersion: 'v42' },
    result: { durationMs: n % 250, status: allow ? 200 : 403 },
    traceId: `${hashHex(n).slice(0, 32)}`,
    spanId: `${hashHex(n).slice(32, 48)}`,
    replica: 'bench-1',
  };
}

/**
 * A stable 64-hex-digit value per event (its arguments digest; its trace and span ids are slices),
 * unique and cheap to make. It starts with n scrambled (a bijection on 32 bits), so consecutive
 * events' trace ids are far apart in key order, as random W3C trace ids are.
 */
function hashHex(n: number): string {
  const spread = (Math.imul(n, 0x9e3779b1) >>> 0).toString(16).padStart(8, '0');
  return (spread + n.toString(16).padStart(8, '0') + 'a3f1c2e4b5d69788').repeat(2);
}

/**
 * `canonicalJson(benchEvent(n))` written out directly (keys in sorted order), so generating a
 * million events takes a second, not twenty; `checkEventText` proves the two agree.
 */
function eventText(n: number): string {
  const agent = `spiffe://example.org/agent/worker-${n % 200}`;
  const allow = n % 9 !== 0;
  const digest = hashHex(n);
  return `{"action":"tools/call","agent":"${agent}","arguments":{"body":"[redacted]","issue":${n % 10_000},"repo":"example/app"},"argumentsDigest":"${digest}","chain":["${agent}"],"decision":{"decision":"${allow ? 'allow' : 'deny'}","policies":["github.issue_comment"],"policySetVersion":"v42"},"mandateId":"mnd_${(n % 5000).toString(36).padStart(6, '0')}","outcome":"${allow ? 'success' : 'failure'}","principal":{"issuer":"https://sso.example.org","subject":"user-${n % 1000}"},"replica":"bench-1","resource":"https://tools.example.org/mcp","result":{"durationMs":${n % 250},"status":${allow ? 200 : 403}},"spanId":"${digest.slice(32, 48)}","time":"${new Date(EPOCH + n * 3).toISOString()}","tool":"${TOOLS[n % TOOLS.length]}","traceId":"${digest.slice(0, 32)}","type":"gateway.decision","v":1}`;
}

function checkEventText(): void {
  for (const n of [0, 1, 9, 12_345, 999_999]) {
    if (eventText(n) !== canonicalJson(benchEvent(n))) throw new Error(`eventText(${n}) is not the canonical JSON of benchEvent(${n})`);
  }
}

/** The store record of event n, as AuditLog would write it. */
function benchRecord(n: number): AuditRecord {
  const event = benchEvent(n);
  const text = eventText(n);
  return {
    index: n, event: text, leafHash: leafHash(Buffer.from(text)), time: new Date(event.time), type: event.type, agent: event.agent ?? null,
    principalIssuer: event.principal?.issuer ?? null, principalSubject: event.principal?.subject ?? null, mandateId: event.mandateId ?? null,
    tool: event.tool ?? null, decision: event.decision?.decision ?? null, traceId: event.traceId ?? null,
  };
}

interface Run { perSecond: number; p50: number; p99: number; events: number }

/** Per-second rate and latency percentiles (ms) of operations timed in a window. */
function summarise(latencies: number[], seconds: number): Run {
  const sorted = Float64Array.from(latencies).sort();
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
  return { perSecond: latencies.length / seconds, p50: at(0.5), p99: at(0.99), events: latencies.length };
}

/**
 * PRODUCERS loops, each appending one event and waiting for it to be durable before the next, as
 * request handlers do; counts the acknowledgements inside the window after a warm-up.
 */
async function appendThroughLog(store: Store): Promise<Run & { batches: number }> {
  let batches = 0;
  const log = await AuditLog.open({ store, origin: ORIGIN, signer, onCommit: () => (batches += 1) });
  let running = true;
  let measuring = false;
  let seq = 0;
  const latencies: number[] = [];
  const producers = Array.from({ length: PRODUCERS }, async () => {
    while (running) {
      const started = performance.now();
      await log.append(benchEvent(seq++));
      if (measuring) latencies.push(performance.now() - started);
    }
  });
  await sleep(WARM_MS);
  measuring = true;
  const batchesBefore = batches;
  const start = performance.now();
  await sleep(APPEND_MS);
  measuring = false;
  const seconds = (performance.now() - start) / 1000;
  const windowBatches = batches - batchesBefore;
  running = false;
  await Promise.all(producers);
  await log.close();
  return { ...summarise(latencies, seconds), batches: windowBatches };
}

/** Runs `commit` back to back for BASELINE_MS, one row per transaction, timing each. */
async function singleRowCommits(commit: (n: number) => unknown): Promise<Run> {
  const latencies: number[] = [];
  const start = performance.now();
  for (let n = 0; performance.now() - start < BASELINE_MS; n++) {
    const t = performance.now();
    await commit(n);
    latencies.push(performance.now() - t);
  }
  return summarise(latencies, (performance.now() - start) / 1000);
}

const INSERT = `INSERT INTO audit_log (idx, event, leaf_hash, time, type, agent, principal_issuer, principal_subject, mandate_id, tool, decision, trace_id)`;

function recordValues(r: AuditRecord): unknown[] {
  return [r.index, r.event, r.leafHash, r.time, r.type, r.agent, r.principalIssuer, r.principalSubject, r.mandateId, r.tool, r.decision, r.traceId];
}

async function sqliteAppends(dir: string): Promise<Result[]> {
  const path = join(dir, 'appends.db');
  const store = await openSqliteStore({ path });
  const ours = await appendThroughLog(store);
  await store.close();

  // Baseline: the store's own table in a file it created, written by better-sqlite3 directly.
  const basePath = join(dir, 'baseline.db');
  await (await openSqliteStore({ path: basePath })).close();
  const db = new Database(basePath);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  const insert = db.prepare(`${INSERT} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const base = await singleRowCommits((n) => {
    const values = recordValues(benchRecord(n));
    values[3] = (values[3] as Date).getTime();
    insert.run(...values);
  });
  db.close();
  report('SQLite', ours, base);
  return appendResults('SQLite', ours, base, APPEND_TARGET);
}

async function postgresAppends(url: string): Promise<Result[]> {
  const schema = `mandate_bench_${process.pid}`;
  const store = await openPostgresStore({ url, schema, poolSize: 4 });
  const baseStore = await openPostgresStore({ url, schema: `${schema}_base`, poolSize: 1 });
  const client = new pg.Client({ connectionString: url, options: `-c search_path=${schema}_base` });
  try {
    const ours = await appendThroughLog(store);
    // Baseline: the store's own table in a schema of its own, one INSERT per transaction on one connection.
    await client.connect();
    const base = await singleRowCommits((n) => client.query(`${INSERT} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, recordValues(benchRecord(n))));
    report('PostgreSQL', ours, base);
    return appendResults('PostgreSQL', ours, base, null);
  } finally {
    await client.end();
    for (const s of [store, baseStore]) {
      await s.dropSchema();
      await s.close();
    }
  }
}

function report(db: string, ours: Run & { batches: number }, base: Run): void {
  console.log(`${db} durable appends, ${PRODUCERS} producers: ${ours.perSecond.toFixed(0)} events/s (${ours.events} in ${APPEND_MS} ms, ${ours.batches} commits, ${(ours.events / ours.batches).toFixed(0)} events/commit), p50 ${ours.p50.toFixed(2)} ms, p99 ${ours.p99.toFixed(2)} ms`);
  console.log(`${db} baseline, one row per commit: ${base.perSecond.toFixed(0)} rows/s, p50 ${base.p50.toFixed(2)} ms, p99 ${base.p99.toFixed(2)} ms; ratio ${(ours.perSecond / base.perSecond).toFixed(1)}`);
}

function appendResults(db: string, ours: Run, base: Run, target: number | null): Result[] {
  const ms = (r: Result, value: number, baseline: number): Result => ({ ...r, value: Math.round(value * 100) / 100, baseline: Math.round(baseline * 100) / 100 });
  return [
    result(`${db} durable appends, ${PRODUCERS} producers (baseline: one row per commit)`, ours.perSecond, base.perSecond, target, 'events/s'),
    ms(result(`${db} append latency p50`, ours.p50, base.p50, null, 'ms'), ours.p50, base.p50),
    ms(result(`${db} append latency p99`, ours.p99, base.p99, null, 'ms'), ours.p99, base.p99),
  ];
}

/** Writes an export of `n` events with a signed checkpoint every 100,000 events and at the end. */
async function writeExport(path: string, n: number): Promise<void> {
  const out = createWriteStream(path, { highWaterMark: 4 * 1024 * 1024 });
  const tree = new MerkleTreeBuilder();
  let chunk: string[] = [JSON.stringify({ format: EXPORT_FORMAT, version: EXPORT_VERSION, origin: ORIGIN })];
  for (let i = 0; i < n; i++) {
    const text = eventText(i);
    const leaf = leafHash(Buffer.from(text));
    tree.append(leaf);
    chunk.push(`{"index":${i},"event":${text},"leaf_hash":"${leaf.toString('hex')}"}`);
    if ((i + 1) % 100_000 === 0 || i + 1 === n) {
      chunk.push(JSON.stringify({ checkpoint: signCheckpoint({ origin: ORIGIN, size: i + 1, rootHash: tree.root(), time: Math.floor((EPOCH + i * 3) / 1000) }, signer) }));
    }
    if (chunk.length >= 1000 || i + 1 === n) {
      if (!out.write(`${chunk.join('\n')}\n`)) await once(out, 'drain');
      chunk = [];
    }
  }
  out.end();
  await once(out, 'finish');
}

function lines(path: string): AsyncGenerator<string> {
  return splitLines(createReadStream(path, { highWaterMark: 1024 * 1024 }));
}

async function verification(dir: string): Promise<Result[]> {
  const path = join(dir, 'export.jsonl');
  let t = performance.now();
  await writeExport(path, VERIFY_EVENTS);
  console.log(`generated an export of ${VERIFY_EVENTS} events in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  t = performance.now();
  let hashed = 0;
  for await (const line of lines(path)) {
    hash('sha256', line, 'buffer');
    hashed += 1;
  }
  const base = (performance.now() - t) / 1000;

  t = performance.now();
  const verified = await verifyExport(lines(path), { verifiers: [verifier] });
  const ours = (performance.now() - t) / 1000;
  if (!verified.ok || verified.size !== VERIFY_EVENTS) throw new Error(`the generated export did not verify: ${verified.problems.join('; ')}`);
  console.log(`verifyExport: ${VERIFY_EVENTS} events, ${verified.checkpoints} checkpoints in ${ours.toFixed(2)} s; baseline (read and SHA-256 each of its ${hashed} lines) ${base.toFixed(2)} s`);
  rmSync(path);
  const seconds = (x: number) => Math.round(x * 1000) / 1000;
  return [{ name: `verify an export of ${VERIFY_EVENTS} events (baseline: read and SHA-256 each line)`, value: seconds(ours), unit: 's', baseline: seconds(base), ratio: Math.round((ours / base) * 1000) / 1000, target: VERIFY_TARGET_S, met: ours < VERIFY_TARGET_S }];
}

interface ProofFigures { hashes: number; maxHashes: number; p50us: number; p99us: number }

async function timeProofs(make: (i: number) => Promise<Buffer[]>): Promise<ProofFigures> {
  for (let i = 0; i < 50; i++) await make(i); // warm-up: statement preparation, JIT
  const counts: number[] = [];
  const latencies: number[] = [];
  for (let i = 0; i < PROOFS_PER_SIZE; i++) {
    const t = performance.now();
    const proof = await make(i);
    latencies.push((performance.now() - t) * 1000);
    counts.push(proof.length);
  }
  const { p50, p99 } = summarise(latencies, 1);
  return { hashes: counts.reduce((a, b) => a + b, 0) / counts.length, maxHashes: Math.max(...counts), p50us: p50, p99us: p99 };
}

/** p50 (µs) of a query and of its baseline: reading as many records by index (`getAuditRecords`). */
interface QueryFigures { p50us: number; baseUs: number }

/**
 * Store queries at random events i of a log of n bench records, each answer checked: the agent's
 * next 100 events after i (event j's agent is worker-(j % 200), so i + 200, i + 400, …), and the
 * events with i's trace id (i alone).
 */
async function timeQueries(store: Store, n: number, random: () => number): Promise<{ agent: QueryFigures; trace: QueryFigures }> {
  const time = async (query: (i: number) => Promise<AuditRecord[]>, want: (i: number) => number[]): Promise<QueryFigures> => {
    const latencies: number[] = [];
    const baseline: number[] = [];
    for (let k = -20; k < QUERIES_PER_SIZE; k++) { // 20 warm-up rounds
      const i = Math.floor(random() * n);
      let t = performance.now();
      const got = (await query(i)).map((r) => r.index);
      const queried = performance.now() - t;
      if (got.join() !== want(i).join()) throw new Error(`query at event ${i} of ${n} answered ${got.length} events, not the ${want(i).length} expected`);
      t = performance.now();
      await store.getAuditRecords(i, i + got.length);
      if (k < 0) continue;
      latencies.push(queried * 1000);
      baseline.push((performance.now() - t) * 1000);
    }
    return { p50us: summarise(latencies, 1).p50, baseUs: summarise(baseline, 1).p50 };
  };
  const agent = await time(
    (i) => store.queryAuditRecords({ agent: benchEvent(i).agent, afterIndex: i, limit: 100 }),
    (i) => Array.from({ length: Math.min(100, Math.floor((n - 1 - i) / 200)) }, (_, k) => i + 200 * (k + 1)),
  );
  const trace = await time((i) => store.queryAuditRecords({ traceId: benchEvent(i).traceId, afterIndex: -1, limit: 100 }), (i) => [i]);
  return { agent, trace };
}

/** A fixed pseudo-random sequence, so every run proves the same indices. */
function sequence(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1_103_515_245 + 12_345) % 2_147_483_648;
    return x / 2_147_483_648;
  };
}

async function proofs(dir: string): Promise<Result[]> {
  const store = await openSqliteStore({ path: join(dir, 'proofs.db') });
  const results: Result[] = [];
  const first = new Map<string, number>();
  try {
    let size = 0;
    for (const n of PROOF_SIZES) {
      const t = performance.now();
      for (; size < n; size += FILL_BATCH) {
        await store.appendAuditRecords(Array.from({ length: Math.min(FILL_BATCH, n - size) }, (_, i) => benchRecord(size + i)));
      }
      size = n;
      const fillS = (performance.now() - t) / 1000;
      // A turn of the event loop, as a server gives between requests: the store indexes for queries then.
      await new Promise((resolve) => setImmediate(resolve));
      let opened = performance.now();
      const log = await AuditLog.open({ store, origin: ORIGIN, signer });
      const openS = (performance.now() - opened) / 1000;
      opened = performance.now();
      for (let at = 0; at < n; at += 65_536) await store.getAuditLeafHashes(at, Math.min(at + 65_536, n));
      const readS = (performance.now() - opened) / 1000;

      const random = sequence(n);
      const index = () => Math.floor(random() * n);
      const leaf = Buffer.from((await store.getAuditLeafHashes(7 % n, (7 % n) + 1))[0] as Uint8Array);
      if (!verifyInclusion(leaf, 7 % n, n, await log.inclusionProof(7 % n), log.root())) throw new Error(`inclusion proof at ${n} does not verify`);
      const inclusion = await timeProofs(() => log.inclusionProof(index()));
      const consistency = await timeProofs(() => log.consistencyProof(1 + Math.floor(random() * (n - 1))));
      const log2 = Math.log2(n);
      console.log(`${n} events (filled in ${fillS.toFixed(1)} s): open ${(openS * 1000).toFixed(0)} ms (reading the leaf hashes alone ${(readS * 1000).toFixed(0)} ms); log2 n = ${log2.toFixed(1)}`);
      for (const [kind, f] of [['inclusion', inclusion], ['consistency', consistency]] as const) {
        console.log(`  ${kind}: ${f.hashes.toFixed(1)} hashes on average (max ${f.maxHashes}, ${(f.hashes * 32).toFixed(0)} bytes), p50 ${f.p50us.toFixed(0)} us, p99 ${f.p99us.toFixed(0)} us`);
        if (!first.has(kind)) first.set(kind, f.p50us);
        const label = `${kind} proof at ${n} events`;
        const r1 = (x: number) => Math.round(x * 10) / 10;
        results.push(
          { ...result(`${label}: hashes (baseline: log2 n)`, f.hashes, log2, null, 'hashes'), value: r1(f.hashes), baseline: r1(log2) },
          { ...result(`${label}: bytes (baseline: 32 log2 n)`, f.hashes * 32, log2 * 32, null, 'bytes'), value: Math.round(f.hashes * 32), baseline: Math.round(log2 * 32) },
          result(`${label}: time p50 (baseline: p50 at ${PROOF_SIZES[0]} events)`, f.p50us, first.get(kind) as number, null, 'us'),
        );
      }
      results.push(result(`open the log at ${n} events (baseline: reading its leaf hashes)`, openS * 1000, readS * 1000, null, 'ms'));
      const queries = await timeQueries(store, n, random);
      for (const [label, q] of [['an agent\'s next 100 events after a random one', queries.agent], ['the events of a random event\'s trace id', queries.trace]] as const) {
        console.log(`  query, ${label}: p50 ${q.p50us.toFixed(0)} us; as many records read by index ${q.baseUs.toFixed(0)} us`);
        results.push(result(`query at ${n} events, ${label}: time p50 (baseline: as many records read by index)`, q.p50us, q.baseUs, null, 'us'));
      }
      await log.close();
    }
  } finally {
    await store.close();
  }
  return results;
}

export async function runAuditBench(): Promise<Result[]> {
  checkEventText();
  const dir = mkdtempSync(join(tmpdir(), 'mandate-audit-bench-'));
  const results: Result[] = [];
  try {
    if (PARTS.has('sqlite')) results.push(...(await sqliteAppends(dir)));
    const url = process.env.DATABASE_URL;
    if (!PARTS.has('postgres')) console.log('PostgreSQL appends not selected');
    else if (url) results.push(...(await postgresAppends(url)));
    else console.log('DATABASE_URL is unset: PostgreSQL appends not measured');
    if (PARTS.has('verify')) results.push(...(await verification(dir)));
    if (PARTS.has('proofs')) results.push(...(await proofs(dir)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`machine: ${machine()}`);
  if (ALL_PARTS.every((p) => PARTS.has(p))) console.log(`wrote ${writeResults('audit', results)}`);
  else console.log(`BENCH_AUDIT_PARTS=${[...PARTS].join(',')}: a partial run, results not written`);
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) await runAuditBench();
