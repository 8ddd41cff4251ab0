/**
 * The audit log: an append-only Merkle log (RFC 9162) of audit events, one leaf per event.
 *
 * Appending is durable before it is acknowledged and fast under concurrency: callers queue their
 * events and one writer commits everything queued in a single fsync'd transaction (group commit),
 * then tells each caller its event's index. Only one batch is in flight at a time, so indices are
 * contiguous and the in-memory tree always matches a prefix of what the store holds. A failed commit
 * rejects its batch and changes nothing; the next batch reuses the indices. When another process
 * appended meanwhile (two replicas on one database), the store refuses the batch with ERR_CONFLICT:
 * the log then reads the records it has not seen and retries the batch at the new end, a bounded
 * number of times.
 *
 * The tree in memory (`MerkleCache`) keeps the root of every complete aligned block of 256 leaves and
 * of every perfect subtree above, about n/128 hashes (250 KB for a million events), kept up to date
 * as batches commit. A proof is then O(log n) cached hashes plus the leaves of at most two partial
 * blocks (the proven leaf's and the one at the tree's edge) read from the store, and catching up
 * after a conflict reads only the new records. Opening the log reads every leaf hash once,
 * page by page: the root of a stored tree cannot be had with less.
 *
 * Checkpoints (signed C2SP notes of size and root) are written on demand.
 *
 * @example
 *   const log = await AuditLog.open({ store, origin: 'example.org/mandate/audit', signer });
 *   const { index } = await log.append(event);   // durable now
 *   const note = await log.checkpoint();
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { isMandateError, MandateError } from '../errors.ts';
import type { AuditRecord, Store } from '../store/store.ts';
import { signCheckpoint } from './checkpoint.ts';
import { canonicalJson, type AuditEvent } from './event.ts';
import { consistencyProofRanges, HASH_SIZE, inclusionProofRanges, leafHash, MerkleTreeBuilder, nodeHash, rootOf, type LeafRange } from './merkle.ts';
import type { NoteSigner } from './note.ts';

/** Leaves per cached block: the cache's lowest level. */
export const CACHE_BLOCK = 256;
/** Leaf hashes read from the store per query when (re)reading the log. */
const PAGE = 65_536;
/** Default retries of a batch refused because another process appended first. */
const CONFLICT_RETRIES = 8;

/** What `onCommit` is told after each durable batch. */
export interface CommitInfo {
  /** Events in the batch. */
  events: number;
  /** Time spent committing the batch, retries included (ms). */
  durationMs: number;
  /** Longest time an event of the batch waited from `append` to being durable (ms). */
  waitMs: number;
  /** Events still queued when the batch became durable. */
  queueDepth: number;
  /** Times the batch was refused because another process appended first. */
  retries: number;
  /** Events in the log after the commit (as this process knows it). */
  size: number;
}

export interface AuditLogOptions {
  store: Store;
  /** The log's name in its checkpoints (C2SP origin), e.g. `example.org/mandate/audit`. */
  origin: string;
  signer: NoteSigner;
  /** Most events committed in one transaction. Default 1,000. */
  maxBatch?: number;
  /** Retries of a batch after ERR_CONFLICT (another process appended first). Default 8. */
  conflictRetries?: number;
  now?: () => Date;
  /** Called after each durable batch (for metrics); what it throws is ignored. */
  onCommit?: (info: CommitInfo) => void;
  /** Called when a batch is rejected, with the error its callers get; what it throws is ignored. */
  onCommitError?: (info: { events: number; error: unknown }) => void;
}

interface Pending {
  record: Omit<AuditRecord, 'index'>;
  queuedAt: number;
  resolve: (index: number) => void;
  reject: (err: unknown) => void;
}

function recordOf(event: AuditEvent): Omit<AuditRecord, 'index'> {
  const text = canonicalJson(event);
  const time = new Date(event.time);
  if (Number.isNaN(time.getTime())) throw new MandateError('ERR_BAD_REQUEST', `audit event time ${JSON.stringify(event.time)} is not an ISO 8601 time`);
  return {
    event: text,
    leafHash: leafHash(Buffer.from(text, 'utf8')),
    time,
    type: event.type,
    agent: event.agent ?? null,
    principalIssuer: event.principal?.issuer ?? null,
    principalSubject: event.principal?.subject ?? null,
    mandateId: event.mandateId ?? null,
    tool: event.tool ?? null,
    decision: event.decision?.decision ?? null,
    traceId: event.traceId ?? null,
  };
}

/** A growable array of 32-byte hashes in one buffer (no object per hash). */
class HashList {
  #bytes = Buffer.alloc(HASH_SIZE * 64);
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(node: Uint8Array): void {
    if ((this.#length + 1) * HASH_SIZE > this.#bytes.length) {
      const grown = Buffer.alloc(this.#bytes.length * 2);
      this.#bytes.copy(grown);
      this.#bytes = grown;
    }
    this.#bytes.set(node, this.#length * HASH_SIZE);
    this.#length += 1;
  }

  /** A copy: callers may keep or change it. */
  at(i: number): Buffer {
    return Buffer.from(this.#bytes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE));
  }
}

/** Folds perfect-subtree roots (largest first) right to left into their tree's root. */
function fold(nodes: readonly Buffer[]): Buffer {
  return nodes.reduceRight((right, left) => nodeHash(left, right));
}

/** The perfect subtrees, largest first, that make up the tree of the leaves [start, end). */
function perfectPieces(start: number, end: number): LeafRange[] {
  const pieces: LeafRange[] = [];
  let width = 1;
  while (width * 2 <= end - start) width *= 2;
  for (let at = start; width >= 1; width /= 2) {
    if (end - at >= width) {
      pieces.push([at, at + width]);
      at += width;
    }
  }
  return pieces;
}

/**
 * The log's Merkle tree in memory: the root of every complete aligned block of `CACHE_BLOCK` leaves
 * (level 0) and of every perfect aligned subtree above (level h: 2^h blocks), plus a frontier of the
 * leaves after the last complete block. Level h holds floor(blocks / 2^h) hashes.
 */
class MerkleCache {
  readonly #levels: HashList[] = [];
  #tail = new MerkleTreeBuilder();

  get size(): number {
    return this.#blocks * CACHE_BLOCK + this.#tail.size;
  }

  get #blocks(): number {
    return this.#levels[0]?.length ?? 0;
  }

  append(leaf: Uint8Array): void {
    this.#tail.append(leaf);
    if (this.#tail.size < CACHE_BLOCK) return;
    let node = this.#tail.root();
    this.#tail = new MerkleTreeBuilder();
    // Each completed pair on a level completes one subtree on the level above.
    for (let h = 0; ; h++) {
      const level = (this.#levels[h] ??= new HashList());
      level.push(node);
      if (level.length % 2 === 1) return;
      node = nodeHash(level.at(level.length - 2), node);
    }
  }

  /** The root of the leaves [start, end) if they are a complete, aligned, cached subtree. */
  subtree(start: number, end: number): Buffer | undefined {
    const blocks = (end - start) / CACHE_BLOCK;
    if (!Number.isInteger(blocks) || start % (end - start) !== 0 || end > this.#blocks * CACHE_BLOCK) return undefined;
    const h = Math.log2(blocks);
    if (!Number.isInteger(h)) return undefined;
    return this.#levels[h]?.at(start / (end - start));
  }

  /** The root of the whole tree (SHA-256 of nothing when empty): O(log n) hashes. */
  root(): Buffer {
    const nodes = perfectPieces(0, this.#blocks * CACHE_BLOCK).map(([start, end]) => this.subtree(start, end) as Buffer);
    if (this.#tail.size > 0 || nodes.length === 0) nodes.push(this.#tail.root());
    return fold(nodes);
  }
}

/** A proof range split into cached subtrees and pieces to compute from leaves. */
interface RangePlan {
  pieces: Array<{ range: LeafRange; node: Buffer | undefined }>;
}

export class AuditLog {
  readonly #opts: AuditLogOptions;
  readonly #tree: MerkleCache;
  #queue: Pending[] = [];
  #writing: Promise<void> | undefined;
  #closed = false;
  /** Events ever queued, and of those, how many are committed or refused (batches settle in order). */
  #queuedTotal = 0;
  #settledTotal = 0;
  #flushWaiters: Array<{ upTo: number; resolve: () => void }> = [];

  private constructor(opts: AuditLogOptions, tree: MerkleCache) {
    this.#opts = opts;
    this.#tree = tree;
  }

  /** Opens the log: reads every stored leaf hash, page by page, into the tree in memory. */
  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    const log = new AuditLog(opts, new MerkleCache());
    await log.#catchUp();
    return log;
  }

  /** Events committed so far (as this process knows the log). */
  get size(): number {
    return this.#tree.size;
  }

  /** Events waiting for the next commit. */
  get queued(): number {
    return this.#queue.length;
  }

  root(): Buffer {
    return this.#tree.root();
  }

  /** Appends one event; resolves with its index once it is durably stored. */
  append(event: AuditEvent): Promise<{ index: number }> {
    if (this.#closed) return Promise.reject(new MandateError('ERR_STORE', 'the audit log is closed'));
    let record: Omit<AuditRecord, 'index'>;
    try {
      record = recordOf(event);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ record, queuedAt: performance.now(), resolve: (index) => resolve({ index }), reject });
      this.#queuedTotal += 1;
      this.#writing ??= this.#drain();
    });
  }

  /** Commits batches until the queue is empty. */
  async #drain(): Promise<void> {
    try {
      do {
        // Let every append of this turn of the event loop join the batch; and with a synchronous store
        // (SQLite), producers re-appending from their acknowledgements would otherwise keep this loop
        // in microtasks and starve all I/O.
        await nextTurn();
        await this.#commit(this.#queue.splice(0, this.#opts.maxBatch ?? 1000));
      } while (this.#queue.length > 0);
    } finally {
      this.#writing = undefined;
    }
  }

  /** Commits one batch at the end of the log, catching up and retrying when another process appended first. */
  async #commit(batch: Pending[]): Promise<void> {
    const started = performance.now();
    const maxRetries = this.#opts.conflictRetries ?? CONFLICT_RETRIES;
    for (let retries = 0; ; retries++) {
      const first = this.#tree.size;
      const records = batch.map((p, i) => ({ ...p.record, index: first + i }));
      try {
        await this.#opts.store.appendAuditRecords(records);
      } catch (err) {
        if (!isMandateError(err, 'ERR_CONFLICT') || retries >= maxRetries) return this.#fail(batch, conflictExhausted(err, retries));
        try {
          await this.#catchUp();
        } catch (failure) {
          return this.#fail(batch, failure);
        }
        continue;
      }
      for (const r of records) this.#tree.append(r.leafHash);
      batch.forEach((p, i) => p.resolve(first + i));
      this.#settled(batch.length);
      const now = performance.now();
      notify(this.#opts.onCommit, {
        events: batch.length,
        durationMs: now - started,
        waitMs: now - (batch[0]?.queuedAt ?? now),
        queueDepth: this.#queue.length,
        retries,
        size: this.#tree.size,
      });
      return;
    }
  }

  #fail(batch: readonly Pending[], error: unknown): void {
    for (const p of batch) p.reject(error);
    this.#settled(batch.length);
    notify(this.#opts.onCommitError, { events: batch.length, error });
  }

  #settled(events: number): void {
    this.#settledTotal += events;
    const done = this.#flushWaiters.filter((w) => w.upTo <= this.#settledTotal);
    if (done.length === 0) return;
    this.#flushWaiters = this.#flushWaiters.filter((w) => w.upTo > this.#settledTotal);
    for (const w of done) w.resolve();
  }

  /** Reads the records appended to the store since this process last saw its end. */
  async #catchUp(): Promise<void> {
    const size = await this.#opts.store.auditSize();
    if (size < this.#tree.size) {
      throw new MandateError('ERR_STORE', `the stored audit log holds ${size} records, fewer than the ${this.#tree.size} already read: records were removed`);
    }
    for (let at = this.#tree.size; at < size; at = this.#tree.size) {
      for (const h of await this.#leafHashes(at, Math.min(at + PAGE, size))) this.#tree.append(h);
    }
  }

  /** Leaf hashes [start, end) from the store; ERR_STORE when any is missing. */
  async #leafHashes(start: number, end: number): Promise<Uint8Array[]> {
    const hashes = await this.#opts.store.getAuditLeafHashes(start, end);
    if (hashes.length !== end - start) throw new MandateError('ERR_STORE', `audit records are missing between ${start} and ${end}`);
    return hashes;
  }

  /**
   * Waits until everything appended so far is committed (or refused) — not for events appended
   * later, so it returns under sustained load too.
   */
  flush(): Promise<void> {
    const upTo = this.#queuedTotal;
    if (this.#settledTotal >= upTo) return Promise.resolve();
    return new Promise((resolve) => this.#flushWaiters.push({ upTo, resolve }));
  }

  /** Signs and stores a checkpoint of the log with everything appended so far; returns the signed note. */
  async checkpoint(): Promise<string> {
    await this.flush();
    const size = this.#tree.size;
    const rootHash = this.#tree.root();
    const existing = await this.#opts.store.getAuditCheckpoint(size);
    if (existing) return existing.note;
    const createdAt = this.#opts.now?.() ?? new Date();
    const note = signCheckpoint({ origin: this.#opts.origin, size, rootHash, time: Math.floor(createdAt.getTime() / 1000) }, this.#opts.signer);
    await this.#opts.store.putAuditCheckpoint({ size, rootHash, note, createdAt });
    return note;
  }

  /** RFC 9162 inclusion proof of event `index` in the tree of `size` events (default: now). */
  async inclusionProof(index: number, size = this.#tree.size): Promise<Buffer[]> {
    if (size > this.#tree.size) throw new MandateError('ERR_BAD_REQUEST', `the log has ${this.#tree.size} events, not ${size}`);
    return this.#rangeRoots(inclusionProofRanges(index, size));
  }

  /** RFC 9162 consistency proof between two sizes of the log. */
  async consistencyProof(oldSize: number, newSize = this.#tree.size): Promise<Buffer[]> {
    if (newSize > this.#tree.size) throw new MandateError('ERR_BAD_REQUEST', `the log has ${this.#tree.size} events, not ${newSize}`);
    return this.#rangeRoots(consistencyProofRanges(oldSize, newSize));
  }

  /**
   * The roots of the given leaf ranges. Each range is a tree of perfect subtrees (largest first);
   * those of a block or more are cached, the smaller ones lie at the range's end, inside one block,
   * and are computed from leaf hashes read in one query per block.
   */
  async #rangeRoots(ranges: readonly LeafRange[]): Promise<Buffer[]> {
    const plans: RangePlan[] = ranges.map(([start, end]) => ({
      pieces: perfectPieces(start, end).map((range) => ({ range, node: this.#tree.subtree(range[0], range[1]) })),
    }));
    const missing = plans.flatMap((p) => p.pieces.filter((piece) => piece.node === undefined).map((piece) => piece.range));
    for (const [start, end, leaves] of await this.#readSpans(missing)) {
      for (const piece of plans.flatMap((p) => p.pieces)) {
        const [a, b] = piece.range;
        if (piece.node === undefined && a >= start && b <= end) piece.node = rootOf(leaves.slice(a - start, b - start));
      }
    }
    return plans.map((p) => fold(p.pieces.map((piece) => piece.node as Buffer)));
  }

  /**
   * Reads the leaves under `ranges`, one query per run of ranges within a block of each other (so
   * the leaves of one block come in one query even with gaps between the ranges).
   */
  async #readSpans(ranges: readonly LeafRange[]): Promise<Array<[start: number, end: number, leaves: Buffer[]]>> {
    const spans: Array<[number, number]> = [];
    for (const [start, end] of [...ranges].sort((x, y) => x[0] - y[0])) {
      const last = spans.at(-1);
      if (last && start - last[1] < CACHE_BLOCK && end - last[0] <= PAGE) last[1] = end;
      else spans.push([start, end]);
    }
    const read: Array<[number, number, Buffer[]]> = [];
    for (const [start, end] of spans) {
      const leaves: Buffer[] = [];
      for (let at = start; at < end; at += PAGE) {
        for (const h of await this.#leafHashes(at, Math.min(at + PAGE, end))) leaves.push(Buffer.isBuffer(h) ? h : Buffer.from(h));
      }
      read.push([start, end, leaves]);
    }
    return read;
  }

  /** Stops accepting events and waits for those queued. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }
}

/** The error a batch's callers get when it was refused: a conflict that outlasted its retries says so. */
function conflictExhausted(err: unknown, retries: number): unknown {
  if (!isMandateError(err, 'ERR_CONFLICT') || retries === 0) return err;
  return new MandateError('ERR_CONFLICT', `the audit log kept moving: batch refused after ${retries} retries (${err.message})`, { cause: err });
}

/** Calls a metrics hook; a failing hook must not fail appends that are already durable. */
function notify<T>(hook: ((info: T) => void) | undefined, info: T): void {
  try {
    hook?.(info);
  } catch {
    // ignored on purpose: see above
  }
}
