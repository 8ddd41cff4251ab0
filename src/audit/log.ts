/**
 * The audit log: an append-only Merkle log (RFC 9162) of audit events, one leaf per event.
 *
 * Appending is durable before it is acknowledged and fast under concurrency: callers queue their
 * events and one writer commits everything queued in a single fsync'd transaction (group commit),
 * then tells each caller its event's index. Only one batch is in flight at a time, so indices are
 * contiguous and the in-memory Merkle frontier always matches what the store holds. A failed commit
 * rejects its batch and changes nothing; the next batch reuses the indices.
 *
 * Checkpoints (signed C2SP notes of size and root) are written on demand and at an interval;
 * inclusion and consistency proofs are computed from the stored leaf hashes.
 *
 * @example
 *   const log = await AuditLog.open({ store, origin: 'example.org/mandate/audit', signer, replica: 'r1' });
 *   const { index } = await log.append(event);   // durable now
 *   const note = await log.checkpoint();
 */
import { MandateError } from '../errors.ts';
import type { AuditRecord, Store } from '../store/store.ts';
import { signCheckpoint } from './checkpoint.ts';
import { canonicalJson, type AuditEvent } from './event.ts';
import { consistencyProofRanges, frontierRanges, inclusionProofRanges, leafHash, MerkleTreeBuilder, rootOf, type LeafRange } from './merkle.ts';
import type { NoteSigner } from './note.ts';

export interface AuditLogOptions {
  store: Store;
  /** The log's name in its checkpoints (C2SP origin), e.g. `example.org/mandate/audit`. */
  origin: string;
  signer: NoteSigner;
  /** Most events committed in one transaction. Default 1,000. */
  maxBatch?: number;
  now?: () => Date;
}

interface Pending {
  record: Omit<AuditRecord, 'index'>;
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

export class AuditLog {
  readonly #opts: AuditLogOptions;
  readonly #tree: MerkleTreeBuilder;
  #queue: Pending[] = [];
  #writing: Promise<void> | undefined;
  #closed = false;

  private constructor(opts: AuditLogOptions, tree: MerkleTreeBuilder) {
    this.#opts = opts;
    this.#tree = tree;
  }

  /** Opens the log: reads its size and rebuilds the Merkle frontier from the stored leaf hashes. */
  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    const size = await opts.store.auditSize();
    const frontier: Buffer[] = [];
    for (const [start, end] of frontierRanges(size)) frontier.push(rootOf((await opts.store.getAuditLeafHashes(start, end)).map((h) => Buffer.from(h))));
    return new AuditLog(opts, MerkleTreeBuilder.fromFrontier(size, frontier));
  }

  /** Events committed so far. */
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
      this.#queue.push({ record, resolve: (index) => resolve({ index }), reject });
      this.#writing ??= this.#drain();
    });
  }

  /** Commits batches until the queue is empty. */
  async #drain(): Promise<void> {
    // Let every append of this turn of the event loop join the first batch.
    await new Promise((r) => setImmediate(r));
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.#opts.maxBatch ?? 1000);
        const start = this.#tree.size;
        const records = batch.map((p, i) => ({ ...p.record, index: start + i }));
        try {
          await this.#opts.store.appendAuditRecords(records);
        } catch (err) {
          for (const p of batch) p.reject(err);
          continue;
        }
        for (const r of records) this.#tree.append(r.leafHash);
        batch.forEach((p, i) => p.resolve(start + i));
      }
    } finally {
      this.#writing = undefined;
    }
  }

  /** Waits until everything appended so far is committed (or refused). */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  /** Signs and stores a checkpoint of the log as it is now; returns the signed note. */
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

  /** The Merkle roots of the given leaf ranges, read from the store. */
  async #hashes(ranges: LeafRange[]): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for (const [start, end] of ranges) out.push(rootOf((await this.#opts.store.getAuditLeafHashes(start, end)).map((h) => Buffer.from(h))));
    return out;
  }

  /** RFC 9162 inclusion proof of event `index` in the tree of `size` events (default: now). */
  async inclusionProof(index: number, size = this.#tree.size): Promise<Buffer[]> {
    if (size > this.#tree.size) throw new MandateError('ERR_BAD_REQUEST', `the log has ${this.#tree.size} events, not ${size}`);
    return this.#hashes(inclusionProofRanges(index, size));
  }

  /** RFC 9162 consistency proof between two sizes of the log. */
  async consistencyProof(oldSize: number, newSize = this.#tree.size): Promise<Buffer[]> {
    if (newSize > this.#tree.size) throw new MandateError('ERR_BAD_REQUEST', `the log has ${this.#tree.size} events, not ${newSize}`);
    return this.#hashes(consistencyProofRanges(oldSize, newSize));
  }

  /** Stops accepting events and waits for those queued. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }
}
