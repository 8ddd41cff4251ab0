/**
 * Exports the audit log as JSON Lines for offline verification (verify.ts), streaming the store in
 * pages so the log is never held in memory:
 *
 *   {"format":"mandate-audit-export","version":1,"origin":"<origin>"|null[,"from":n,"frontier":[hex...]]}
 *   {"index":0,"event":<the stored event JSON, verbatim>,"leaf_hash":"<hex>"}
 *   ...
 *   {"checkpoint":"<signed note>"}      right after the record that completes its size
 *
 * The event is written exactly as stored (not re-serialised), so tampered text reaches the verifier
 * as it is in the database. `origin` is read from the latest checkpoint (unverified: the verifier
 * checks it against the signatures). An export starting after index 0 carries, as `frontier`, the
 * hashes of the perfect subtrees before `from` (merkle.ts `frontierRanges`), which the next
 * checkpoint then authenticates; the events before `from` are not part of it.
 *
 * A checkpoint of a size beyond the last stored record (the log lost its tail) is written at the end,
 * so the verifier sees the missing events.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { MandateError } from '../errors.ts';
import type { AuditCheckpointRecord, Store } from '../store/store.ts';
import { parseCheckpoint } from './checkpoint.ts';
import { frontierRanges, MerkleTreeBuilder } from './merkle.ts';

export const EXPORT_FORMAT = 'mandate-audit-export';
export const EXPORT_VERSION = 1;
/** Records read from the store per query. */
export const EXPORT_PAGE_SIZE = 1000;

export interface ExportOptions {
  /** First index exported (default 0). */
  from?: number;
  /** One past the last index exported (default: the log's size when the export starts). */
  to?: number;
}

/** The header line's fields. */
export interface ExportHeader {
  format: typeof EXPORT_FORMAT;
  version: typeof EXPORT_VERSION;
  origin: string | null;
  from?: number;
  frontier?: string[];
}

/** Each line without its newline; a Writable gets "\n" after each and is waited on when it is full. */
export type ExportSink = Writable | ((line: string) => void);

function lineWriter(out: ExportSink): (line: string) => Promise<void> {
  if (typeof out === 'function') return async (line) => out(line);
  return async (line) => {
    if (!out.write(`${line}\n`)) await once(out, 'drain');
  };
}

/** The origin line of a checkpoint note, without checking its signatures. */
function originOf(note: string): string | null {
  const split = note.lastIndexOf('\n\n');
  try {
    return parseCheckpoint(note.slice(0, split + 1)).origin;
  } catch {
    return null;
  }
}

function requireIndex(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new MandateError('ERR_BAD_REQUEST', `${what} must be an integer >= 0`);
}

/** MTH of leaves [start, end), read page by page. */
async function storedRoot(store: Store, start: number, end: number): Promise<Buffer> {
  const builder = new MerkleTreeBuilder();
  for (let at = start; at < end; at += EXPORT_PAGE_SIZE) {
    const hashes = await store.getAuditLeafHashes(at, Math.min(at + EXPORT_PAGE_SIZE, end));
    if (hashes.length !== Math.min(EXPORT_PAGE_SIZE, end - at)) {
      throw new MandateError('ERR_STORE', `audit records are missing between ${at} and ${Math.min(at + EXPORT_PAGE_SIZE, end)}`);
    }
    for (const h of hashes) builder.append(h);
  }
  return builder.root();
}

/** Checkpoints of sizes in [from, to], by size; none when the range is empty. */
async function checkpointsIn(store: Store, from: number, to: number): Promise<AuditCheckpointRecord[]> {
  return from > to ? [] : store.listAuditCheckpoints(from, to);
}

/**
 * Writes the export of records [from, to) and the checkpoints of sizes from..to. Returns how many
 * records and checkpoints were written.
 */
export async function exportAuditLog(store: Store, out: ExportSink, opts: ExportOptions = {}): Promise<{ events: number; checkpoints: number }> {
  const write = lineWriter(out);
  // Latest checkpoint first, then the size: the log only grows, so a checkpoint beyond the size read
  // afterwards means records were lost, not appended meanwhile.
  const latest = await store.latestAuditCheckpoint();
  const size = await store.auditSize();
  const from = opts.from ?? 0;
  const to = opts.to ?? size;
  requireIndex(from, 'export from');
  requireIndex(to, 'export to');
  if (from > to || to > size) throw new MandateError('ERR_BAD_REQUEST', `cannot export records [${from}, ${to}) of a log of ${size}`);

  const header: ExportHeader = { format: EXPORT_FORMAT, version: EXPORT_VERSION, origin: latest ? originOf(latest.note) : null };
  if (from > 0) {
    const frontier: string[] = [];
    for (const [start, end] of frontierRanges(from)) frontier.push((await storedRoot(store, start, end)).toString('hex'));
    Object.assign(header, { from, frontier });
  }
  await write(JSON.stringify(header));

  const lastCheckpointed = Math.min(latest?.size ?? -1, to);
  let checkpoints = 0;
  const writeCheckpoint = async (c: AuditCheckpointRecord) => {
    await write(JSON.stringify({ checkpoint: c.note }));
    checkpoints += 1;
  };
  for (const c of await checkpointsIn(store, from, Math.min(from, lastCheckpointed))) await writeCheckpoint(c);

  let events = 0;
  for (let at = from; at < to; at += EXPORT_PAGE_SIZE) {
    const end = Math.min(at + EXPORT_PAGE_SIZE, to);
    const records = await store.getAuditRecords(at, end);
    // One query per page: a page holds at most EXPORT_PAGE_SIZE checkpoints, so memory stays bounded.
    const bySize = new Map((await checkpointsIn(store, at + 1, Math.min(end, lastCheckpointed))).map((c) => [c.size, c]));
    for (const r of records) {
      await write(`{"index":${r.index},"event":${r.event},"leaf_hash":"${Buffer.from(r.leafHash).toString('hex')}"}`);
      events += 1;
      const c = bySize.get(r.index + 1);
      if (c) await writeCheckpoint(c);
    }
  }
  if (opts.to === undefined && latest && latest.size > to) await writeCheckpoint(latest);
  return { events, checkpoints };
}
