/**
 * Offline verification of the audit log: a whole export (export.ts's JSON Lines), or one event with
 * its inclusion proof, or a consistency proof between two checkpoints — against the deployment's
 * checkpoint verifier key only. No store, no network: whoever holds an export and the public key can
 * check that nothing in it was changed, dropped, inserted or reordered since it was checkpointed.
 *
 * The export is read line by line and the Merkle tree is rebuilt with an O(log n) frontier, so memory
 * does not grow with the log. Each event's leaf hash is computed over its text exactly as it appears
 * in the line (never re-serialised), so a changed byte shows. Verification stops at the first problem
 * and names it — the first bad index where one can be named — instead of reporting a flood of
 * consequences.
 *
 * What a checkpoint cannot vouch for: events after the last checkpoint in the export (reported as a
 * warning), and an export whose later checkpoints were removed with the events they covered. Compare
 * the export with the latest checkpoint you obtained independently (`mandate audit checkpoint`).
 *
 * @example
 *   const report = await verifyExport(splitLines(createReadStream('audit.jsonl')), { verifiers: [parseVerifierKey(key)] });
 *   if (!report.ok) console.error(report.problems[0]);
 */
import { hash } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import { Worker } from 'node:worker_threads';
import { MandateError, messageOf } from '../errors.ts';
import { verifyCheckpoint, type Checkpoint } from './checkpoint.ts';
import { EXPORT_FORMAT, EXPORT_VERSION } from './export.ts';
import { HASH_SIZE, MAX_PROOF_LENGTH, MerkleTreeBuilder, verifyConsistency, verifyInclusion } from './merkle.ts';
import type { NoteVerifier } from './note.ts';

/** Longest export line accepted, in characters (an event or a checkpoint note is far smaller). */
export const MAX_LINE_LENGTH = 1024 * 1024;
/** How often (in events) `onProgress` is called. */
export const PROGRESS_EVERY = 50_000;
/** Events checked on the calling thread before the rest are handed to a worker thread. */
export const INLINE_EVENT_CHECKS = 10_000;
/** Events per batch sent to the worker, and batches in flight before the reader waits. */
const CHECK_BATCH = 2_000;
const CHECK_BATCHES_IN_FLIGHT = 4;

export const INCLUSION_BUNDLE_FORMAT = 'mandate-audit-proof';
export const CONSISTENCY_BUNDLE_FORMAT = 'mandate-audit-consistency';
export const BUNDLE_VERSION = 1;

/** One event with its inclusion proof against a signed checkpoint of `size` events. */
export interface InclusionProofBundle {
  format: typeof INCLUSION_BUNDLE_FORMAT;
  version: typeof BUNDLE_VERSION;
  index: number;
  size: number;
  /** The event's canonical JSON text, as stored (what the leaf hash covers). */
  event: string;
  /** Hex hashes, bottom up (RFC 9162 §2.1.3). */
  proof: string[];
  /** The signed checkpoint note of size `size`. */
  checkpoint: string;
}

/** Proof that the log of `to` events extends the log of `from` events, with both signed checkpoints. */
export interface ConsistencyProofBundle {
  format: typeof CONSISTENCY_BUNDLE_FORMAT;
  version: typeof BUNDLE_VERSION;
  from: number;
  to: number;
  /** Hex hashes (RFC 9162 §2.1.4). */
  proof: string[];
  from_checkpoint: string;
  to_checkpoint: string;
}

export interface VerifyOptions {
  /** The log's checkpoint keys (note.ts `parseVerifierKey`); a checkpoint must verify with one. */
  verifiers: readonly NoteVerifier[];
  /** The log's origin. Default: the export header's, else the first checkpoint's. */
  origin?: string;
  /** Called every PROGRESS_EVERY events and at the end with the events verified so far. */
  onProgress?: (done: number, total?: number) => void;
  /**
   * Checkpoints the verifier already holds (signed notes, e.g. from `mandate audit checkpoint`
   * earlier): the export must reach each one's size and match its root there. This catches a log
   * cut back together with its later checkpoints, which the export alone cannot show.
   */
  trusted?: readonly string[];
}

export interface VerifyReport {
  ok: boolean;
  /** Events read from the export. */
  events: number;
  /** Checkpoints verified. */
  checkpoints: number;
  /** Tree size reached (the export's `from` plus the events read). */
  size: number;
  /** Hex Merkle root of the first `size` events. */
  root: string;
  /** The first event that is missing, changed or out of place, when one can be named. */
  firstBadIndex?: number;
  /** The export line (from 1) where verification stopped, on failure. */
  line?: number;
  /** Empty when ok; otherwise the one problem verification stopped at. */
  problems: string[];
  warnings: string[];
}

export interface BundleReport {
  ok: boolean;
  /** Empty when ok; otherwise the problem found. */
  problems: string[];
  /** The (verified) checkpoint's origin, size and hex root; for a consistency bundle, the newer one's. */
  origin?: string;
  size?: number;
  root?: string;
}

/** The one problem verification stops at. */
class Failure extends Error {
  constructor(
    readonly problem: string,
    readonly index?: number,
    /** The line it is on, when not the line being read. */
    readonly line?: number,
  ) {
    super(problem);
  }
}

const RECORD_PREFIX = '{"index":';
const EVENT_KEY = ',"event":';
const HASH_KEY = ',"leaf_hash":"';
const RECORD_END = '"}';
const HEX_HASH_LENGTH = HASH_SIZE * 2;
/** Characters from the start of `,"leaf_hash":"` to the end of the line. */
const RECORD_SUFFIX_LENGTH = HASH_KEY.length + HEX_HASH_LENGTH + RECORD_END.length;
const DECIMAL = /^(?:0|[1-9][0-9]{0,15})$/;
const HEX_HASH = /^[0-9a-f]{64}$/;

/**
 * Splits a stream of text or UTF-8 chunks into lines (without "\n" or a trailing "\r"), refusing
 * (ERR_BAD_REQUEST, naming the line) a line longer than `maxLength` before buffering more of it.
 */
export async function* splitLines(chunks: AsyncIterable<string | Uint8Array>, maxLength = MAX_LINE_LENGTH): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let line = 0;
  const emit = (text: string): string => {
    line += 1;
    const end = text.endsWith('\r') ? text.length - 1 : text.length;
    if (end > maxLength) throw new MandateError('ERR_BAD_REQUEST', `line ${line} is longer than ${maxLength} characters`);
    return end === text.length ? text : text.slice(0, end);
  };
  // The unfinished line of the chunks so far; only it is ever concatenated, never a whole chunk.
  let rest = '';
  for await (const chunk of chunks) {
    const text = typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let nl = text.indexOf('\n');
    if (nl < 0) {
      rest += text;
      if (rest.length > maxLength + 1) throw new MandateError('ERR_BAD_REQUEST', `line ${line + 1} is longer than ${maxLength} characters`);
      continue;
    }
    yield emit(rest + text.slice(0, nl));
    let start = nl + 1;
    for (nl = text.indexOf('\n', start); nl >= 0; nl = text.indexOf('\n', start)) {
      yield emit(text.slice(start, nl));
      start = nl + 1;
    }
    rest = text.slice(start);
    if (rest.length > maxLength + 1) throw new MandateError('ERR_BAD_REQUEST', `line ${line + 1} is longer than ${maxLength} characters`);
  }
  rest += decoder.end();
  if (rest !== '') yield emit(rest);
}

/** A record line split at the export's fixed layout, without parsing the event. */
interface RawRecord {
  index: number;
  /** The event's JSON text, exactly as in the line. */
  event: string;
  leafHash: string;
}

/**
 * `{"index":N,"event":<raw>,"leaf_hash":"<hex>"}` split without JSON.parse; undefined when the line
 * is not laid out exactly so. The event is whatever lies between the fixed prefix and suffix; once it
 * parses as JSON on its own, the whole line is that exact JSON object. The leaf hash is checked to be
 * hex only when it does not match (a match proves it).
 */
function splitRecord(line: string): RawRecord | undefined {
  if (!line.startsWith(RECORD_PREFIX) || !line.endsWith(RECORD_END)) return undefined;
  const eventKey = line.indexOf(EVENT_KEY, RECORD_PREFIX.length);
  const hashKey = line.length - RECORD_SUFFIX_LENGTH;
  if (eventKey < 0 || hashKey <= eventKey + EVENT_KEY.length || !line.startsWith(HASH_KEY, hashKey)) return undefined;
  const digits = line.slice(RECORD_PREFIX.length, eventKey);
  if (!DECIMAL.test(digits)) return undefined;
  const index = Number(digits);
  if (!Number.isSafeInteger(index)) return undefined;
  return { index, event: line.slice(eventKey + EVENT_KEY.length, hashKey), leafHash: line.slice(hashKey + HASH_KEY.length, line.length - RECORD_END.length) };
}

/**
 * RFC 9162 leaf hash of a text. One-shot over "\0" + text: the UTF-8 of U+0000 is the 0x00 prefix,
 * and this is the verifier's hot path (merkle.ts `leafHash` wants the bytes copied out first).
 */
function leafHashOfText(text: string): Buffer {
  return hash('sha256', `\u0000${text}`, 'buffer');
}

// isObject and eventProblem also run on the checking worker thread, from their source text: keep
// them self-contained (no imports, no module-level names, no nested functions).

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Why an event text is not an audit event, or undefined when it is one. */
function eventProblem(text: string): string | undefined {
  let event: unknown;
  try {
    event = JSON.parse(text);
  } catch {
    return 'it is not JSON';
  }
  if (!isObject(event)) return 'it is not a JSON object';
  if (typeof event.v !== 'number' || typeof event.time !== 'string' || typeof event.type !== 'string') {
    return 'it lacks the fields v, time and type';
  }
  return undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

const CHECK_WORKER_SOURCE = `'use strict';
const { parentPort } = require('node:worker_threads');
${isObject.toString()}
${eventProblem.toString()}
parentPort.on('message', (texts) => {
  let reply = { offset: -1 };
  for (let i = 0; i < texts.length; i++) {
    const problem = eventProblem(texts[i]);
    if (problem !== undefined) {
      reply = { offset: i, problem };
      break;
    }
  }
  parentPort.postMessage(reply);
});
`;

/** An event that is not an audit event. */
interface EventFault {
  index: number;
  line: number;
  problem: string;
}

interface Batch {
  firstIndex: number;
  lines: number[];
  done: (fault: EventFault | undefined) => void;
  fail: (err: unknown) => void;
}

/**
 * Checks that event texts are audit events (JSON objects with v, time and type), in order. Parsing
 * costs about as much as hashing, so past INLINE_EVENT_CHECKS events the texts go in batches to a
 * worker thread and the reader goes on hashing; `drain` then says whether any event before the
 * reader's position was bad.
 */
class EventChecks {
  #checked = 0;
  #worker: Worker | undefined;
  #texts: string[] = [];
  #lines: number[] = [];
  #firstIndex = 0;
  readonly #sent: Batch[] = [];
  readonly #inFlight: Promise<void>[] = [];
  #fault: EventFault | undefined;
  /** Why the worker stopped, if it did: every batch not yet answered fails with it. */
  #broken: Error | undefined;

  /** The first bad event found so far. */
  get fault(): EventFault | undefined {
    return this.#fault;
  }

  /** Checks one event; returns a promise when the reader should wait for the worker to catch up. */
  add(text: string, index: number, line: number): Promise<void> | undefined {
    if (this.#fault) return undefined;
    if (this.#checked < INLINE_EVENT_CHECKS) {
      this.#checked += 1;
      const problem = eventProblem(text);
      if (problem !== undefined) this.#fault = { index, line, problem };
      return undefined;
    }
    if (this.#texts.length === 0) this.#firstIndex = index;
    this.#texts.push(text);
    this.#lines.push(line);
    if (this.#texts.length < CHECK_BATCH) return undefined;
    this.#send();
    return this.#inFlight.length > CHECK_BATCHES_IN_FLIGHT ? this.#inFlight.shift() : undefined;
  }

  #send(): void {
    const worker = this.#worker ?? this.#startWorker();
    const firstIndex = this.#firstIndex;
    const lines = this.#lines;
    const checked = new Promise<EventFault | undefined>((done, fail) => {
      if (this.#broken) fail(this.#broken);
      else this.#sent.push({ firstIndex, lines, done, fail });
    }).then((fault) => {
      this.#fault ??= fault;
    });
    // Awaited later (by `add` or `drain`); a failure meanwhile must not count as unhandled.
    checked.catch(() => undefined);
    this.#inFlight.push(checked);
    if (!this.#broken) worker.postMessage(this.#texts);
    this.#texts = [];
    this.#lines = [];
  }

  #startWorker(): Worker {
    const worker = new Worker(CHECK_WORKER_SOURCE, { eval: true });
    const stop = (err: Error) => {
      this.#broken ??= err;
      for (const batch of this.#sent.splice(0)) batch.fail(this.#broken);
    };
    worker.on('message', (reply: { offset: number; problem?: string }) => {
      const batch = this.#sent.shift();
      if (!batch) return;
      const line = batch.lines[reply.offset];
      batch.done(line === undefined ? undefined : { index: batch.firstIndex + reply.offset, line, problem: reply.problem ?? 'it is not an audit event' });
    });
    worker.on('error', stop);
    worker.on('exit', (code) => stop(new Error(`the event checking worker exited (code ${code})`)));
    this.#worker = worker;
    return worker;
  }

  /** Waits for every event added to be checked; the first bad one, if any. */
  async drain(): Promise<EventFault | undefined> {
    if (this.#texts.length > 0 && !this.#fault) this.#send();
    await Promise.all(this.#inFlight.splice(0));
    return this.#fault;
  }

  async close(): Promise<void> {
    await this.#worker?.terminate();
  }
}

function hexHash(value: unknown, what: string): Buffer {
  if (typeof value !== 'string' || !HEX_HASH.test(value)) throw new Failure(`${what} must be ${HEX_HASH_LENGTH} lowercase hex digits`);
  return Buffer.from(value, 'hex');
}

function hexProof(value: unknown): Buffer[] {
  if (!Array.isArray(value) || value.length > MAX_PROOF_LENGTH) throw new Failure(`the proof must be a list of at most ${MAX_PROOF_LENGTH} hashes`);
  return value.map((h, i) => hexHash(h, `proof hash ${i}`));
}

function count(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new Failure(`${what} must be an integer >= 0`);
  return value;
}

function openCheckpoint(note: unknown, verifiers: readonly NoteVerifier[], origin: string | undefined, what: string): Checkpoint {
  if (typeof note !== 'string') throw new Failure(`${what} must be a signed note (a string)`);
  try {
    return verifyCheckpoint(note, verifiers, origin === undefined ? {} : { expectedOrigin: origin }).checkpoint;
  } catch (err) {
    throw new Failure(`${what} is refused: ${messageOf(err)}`);
  }
}

/** The state of one export's verification, fed line by line. */
class ExportVerifier {
  readonly #opts: VerifyOptions;
  #origin: string | undefined;
  #tree = new MerkleTreeBuilder();
  readonly #checks = new EventChecks();
  #from = 0;
  #line = 0;
  #checkpoints = 0;
  /** Size of the last verified checkpoint, if any. */
  #verified: number | undefined;
  /** A verified checkpoint beyond the events read so far: the export must end here. */
  #beyondEnd: { size: number; line: number } | undefined;

  constructor(opts: VerifyOptions) {
    this.#opts = opts;
    this.#origin = opts.origin;
  }

  get line(): number {
    return this.#line;
  }

  /**
   * Feeds the next line; throws Failure at the first problem. Returns a promise when the caller
   * should wait (for the event checks to catch up) before the next line.
   */
  take(line: string): Promise<void> | undefined {
    this.#line += 1;
    if (line.length > MAX_LINE_LENGTH) throw new Failure(`line ${this.#line} is longer than ${MAX_LINE_LENGTH} characters`, this.#tree.size);
    if (this.#line === 1) {
      this.#header(line);
      this.#openTrusted();
      return undefined;
    }
    if (this.#beyondEnd) {
      const { size, line: at } = this.#beyondEnd;
      throw new Failure(`the checkpoint on line ${at}, signed at size ${size}, comes before events ${this.#tree.size}..${size - 1} it covers`, this.#tree.size);
    }
    const record = splitRecord(line);
    if (record) return this.#record(record);
    this.#otherLine(line);
    return undefined;
  }

  #header(line: string): undefined {
    const header = parseJson(line);
    if (!isObject(header) || header.format !== EXPORT_FORMAT) throw new Failure(`line 1 is not a Mandate audit export header (format "${EXPORT_FORMAT}")`);
    if (header.version !== EXPORT_VERSION) throw new Failure(`line 1: unsupported export version ${JSON.stringify(header.version)} (this verifier reads version ${EXPORT_VERSION})`);
    if (header.origin !== null && typeof header.origin !== 'string') throw new Failure('line 1: the origin must be a string or null');
    this.#origin ??= header.origin ?? undefined;
    if (header.from === undefined && header.frontier === undefined) return undefined;
    const from = count(header.from, 'line 1: from');
    const frontier = header.frontier;
    if (!Array.isArray(frontier)) throw new Failure('line 1: an export starting after event 0 must carry its frontier');
    try {
      this.#tree = MerkleTreeBuilder.fromFrontier(from, frontier.map((h, i) => hexHash(h, `line 1: frontier hash ${i}`)));
    } catch (err) {
      throw err instanceof Failure ? err : new Failure(`line 1: ${messageOf(err)}`);
    }
    this.#from = from;
    return undefined;
  }

  /** The trusted checkpoints by size, opened (signature and origin checked) after the header. */
  #pins = new Map<number, { root: Buffer; at: number }>();

  #openTrusted(): void {
    (this.#opts.trusted ?? []).forEach((note, i) => {
      const c = openCheckpoint(note, this.#opts.verifiers, this.#origin, `trusted checkpoint ${i + 1}`);
      this.#origin ??= c.origin;
      if (c.size <= this.#from && this.#from > 0) return; // before this export: nothing to compare
      this.#pins.set(c.size, { root: Buffer.from(c.rootHash), at: i + 1 });
    });
    const empty = this.#pins.get(0);
    if (empty && !this.#tree.root().equals(empty.root)) throw new Failure('trusted checkpoint of size 0 does not match the empty log');
  }

  /** Compares the tree with a trusted checkpoint of its current size, if one is held. */
  #checkPin(): void {
    const pin = this.#pins.get(this.#tree.size);
    if (!pin || this.#tree.root().equals(pin.root)) return;
    const start = this.#verified ?? this.#from;
    throw new Failure(`the events ${start}..${this.#tree.size - 1} do not match trusted checkpoint ${pin.at}, signed at size ${this.#tree.size}: the log was changed after it was signed`, start);
  }

  #record({ index, event, leafHash }: RawRecord): Promise<void> | undefined {
    const expected = this.#tree.size;
    if (index < expected) throw new Failure(`event ${index} appears twice or out of order: line ${this.#line} holds it where event ${expected} is expected`, index);
    if (index > expected) throw new Failure(`event ${expected} is missing: line ${this.#line} holds event ${index} where event ${expected} is expected`, expected);
    const hash = leafHashOfText(event);
    if (hash.toString('hex') !== leafHash) {
      if (!HEX_HASH.test(leafHash)) throw new Failure(`line ${this.#line} is malformed: the leaf hash of event ${index} must be ${HEX_HASH_LENGTH} lowercase hex digits`, index);
      throw new Failure(`event ${index} was changed: its leaf hash does not match (line ${this.#line})`, index);
    }
    this.#tree.append(hash);
    if (this.#pins.size > 0) this.#checkPin();
    const wait = this.#checks.add(event, index, this.#line);
    if (this.#checks.fault) throw faultFailure(this.#checks.fault);
    const done = this.#tree.size - this.#from;
    if (done % PROGRESS_EVERY === 0) this.#opts.onProgress?.(done);
    return wait;
  }

  /** A checkpoint line, or a line that is neither (with the most useful explanation). */
  #otherLine(line: string): void {
    const where = `line ${this.#line} (where event ${this.#tree.size} is expected)`;
    const doc = parseJson(line);
    if (doc === undefined) throw new Failure(`${where} is not JSON`, this.#tree.size);
    if (isObject(doc) && 'checkpoint' in doc && Object.keys(doc).length === 1) return this.#checkpoint(doc.checkpoint);
    if (isObject(doc) && 'index' in doc && 'event' in doc) {
      throw new Failure(`${where} is malformed: a record must read exactly {"index":N,"event":<event>,"leaf_hash":"<64 lowercase hex digits>"}, as exported`, this.#tree.size);
    }
    throw new Failure(`${where} is neither an event record nor a checkpoint`, this.#tree.size);
  }

  #checkpoint(note: unknown): void {
    const checkpoint = openCheckpoint(note, this.#opts.verifiers, this.#origin, `the checkpoint on line ${this.#line}`);
    this.#origin ??= checkpoint.origin;
    const { size } = checkpoint;
    const seen = this.#tree.size;
    if (size > seen) {
      this.#beyondEnd = { size, line: this.#line };
      return;
    }
    if (size < seen) throw new Failure(`the checkpoint on line ${this.#line}, signed at size ${size}, is out of place: it follows event ${seen - 1}`);
    if (!this.#tree.root().equals(checkpoint.rootHash)) this.#rootMismatch(size);
    this.#verified = size;
    this.#checkpoints += 1;
  }

  #rootMismatch(size: number): never {
    const previous = this.#verified;
    if (previous === size) throw new Failure(`two checkpoints signed at size ${size} disagree (line ${this.#line}): the log was forked`);
    if (previous === undefined && this.#from > 0) {
      throw new Failure(`the export's frontier or events ${this.#from}..${size - 1} do not match the checkpoint signed at ${size} (line ${this.#line})`, this.#from);
    }
    const start = previous ?? 0;
    throw new Failure(`the events between checkpoint sizes ${start} and ${size} (events ${start}..${size - 1}) do not match the checkpoint signed at ${size} (line ${this.#line})`, start);
  }

  /** After the last line: what the export as a whole proves. Returns the warnings. */
  finish(): string[] {
    if (this.#line === 0) throw new Failure('the export is empty: it has no header line');
    const seen = this.#tree.size;
    if (this.#beyondEnd) {
      const { size, line } = this.#beyondEnd;
      throw new Failure(`the log lost events ${seen}..${size - 1}: the checkpoint on line ${line} was signed at size ${size}, but the export ends after ${seen} events`, seen);
    }
    this.#opts.onProgress?.(seen - this.#from);
    const lost = [...this.#pins.entries()].filter(([size]) => size > seen).sort(([a], [b]) => a - b)[0];
    if (lost) throw new Failure(`the log lost events ${seen}..${lost[0] - 1}: trusted checkpoint ${lost[1].at} was signed at size ${lost[0]}, but the export ends after ${seen} events`, seen);
    const verified = this.#verified;
    if (verified === undefined || (verified === this.#from && seen > this.#from)) {
      throw new Failure(seen > this.#from ? `no signed checkpoint covers any of events ${this.#from}..${seen - 1}` : 'the export holds no signed checkpoint');
    }
    return verified < seen ? [`events ${verified}..${seen - 1} are not covered by any signed checkpoint`] : [];
  }

  /** Waits for the event checks; the Failure of the first bad event, if any. */
  async checkedEvents(): Promise<Failure | undefined> {
    const fault = await this.#checks.drain();
    return fault && faultFailure(fault);
  }

  close(): Promise<void> {
    return this.#checks.close();
  }

  report(failure?: Failure, warnings: string[] = []): VerifyReport {
    const report: VerifyReport = {
      ok: failure === undefined,
      events: this.#tree.size - this.#from,
      checkpoints: this.#checkpoints,
      size: this.#tree.size,
      root: this.#tree.root().toString('hex'),
      problems: failure ? [failure.problem] : [],
      warnings,
    };
    if (failure?.index !== undefined) report.firstBadIndex = failure.index;
    if (failure) report.line = failure.line ?? this.#line;
    return report;
  }
}

function faultFailure({ index, line, problem }: EventFault): Failure {
  return new Failure(`event ${index} on line ${line} is not a valid audit event: ${problem}`, index, line);
}

/**
 * Verifies an export (export.ts format) line by line against the checkpoint keys. Never throws for
 * bad input: malformed, changed, missing or reordered lines make a failed report naming the first
 * problem. Errors of the line source itself are reported when they are MandateErrors (e.g. a line
 * too long for `splitLines`) and rethrown otherwise (I/O errors).
 */
export async function verifyExport(lines: AsyncIterable<string> | Iterable<string>, opts: VerifyOptions): Promise<VerifyReport> {
  const verifier = new ExportVerifier(opts);
  try {
    for await (const line of lines) {
      const wait = verifier.take(line);
      if (wait) await wait;
    }
    const badEvent = await verifier.checkedEvents();
    return badEvent ? verifier.report(badEvent) : verifier.report(undefined, verifier.finish());
  } catch (err) {
    let failure: Failure;
    if (err instanceof Failure) failure = err;
    else if (err instanceof MandateError) failure = new Failure(`after line ${verifier.line}: ${err.message}`);
    else throw err;
    // A bad event still being checked lies before the line that failed: it is the first problem.
    return verifier.report((await verifier.checkedEvents()) ?? failure);
  } finally {
    await verifier.close();
  }
}

function bundleField(bundle: Record<string, unknown>, format: string): void {
  if (bundle.format !== format) throw new Failure(`not a ${format} bundle`);
  if (bundle.version !== BUNDLE_VERSION) throw new Failure(`unsupported ${format} version ${JSON.stringify(bundle.version)} (this verifier reads version ${BUNDLE_VERSION})`);
}

function bundleReport(run: () => Checkpoint): BundleReport {
  try {
    const checkpoint = run();
    return { ok: true, problems: [], origin: checkpoint.origin, size: checkpoint.size, root: Buffer.from(checkpoint.rootHash).toString('hex') };
  } catch (err) {
    if (err instanceof Failure) return { ok: false, problems: [err.problem] };
    throw err;
  }
}

/**
 * Verifies one event with its inclusion proof: the checkpoint's signature (and origin), that it was
 * signed at the bundle's size, and that the event's leaf is at `index` in the tree the checkpoint signs.
 */
export function verifyProofBundle(bundle: unknown, opts: Omit<VerifyOptions, 'onProgress'>): BundleReport {
  return bundleReport(() => {
    if (!isObject(bundle)) throw new Failure('the proof bundle is not a JSON object');
    bundleField(bundle, INCLUSION_BUNDLE_FORMAT);
    const index = count(bundle.index, 'index');
    const size = count(bundle.size, 'size');
    if (typeof bundle.event !== 'string') throw new Failure('event must be the event\'s JSON text (a string)');
    const proof = hexProof(bundle.proof);
    const checkpoint = openCheckpoint(bundle.checkpoint, opts.verifiers, opts.origin, 'the checkpoint');
    if (checkpoint.size !== size) throw new Failure(`the checkpoint was signed at size ${checkpoint.size}, not at the bundle's size ${size}`);
    if (index >= size) throw new Failure(`event ${index} is not in a log of ${size} events`);
    if (!verifyInclusion(leafHashOfText(bundle.event), index, size, proof, checkpoint.rootHash)) {
      throw new Failure(`event ${index} is not in the log the checkpoint signs at size ${size}: the event or the proof was changed`);
    }
    const problem = eventProblem(bundle.event);
    if (problem !== undefined) throw new Failure(`event ${index} is not a valid audit event: ${problem}`);
    return checkpoint;
  });
}

/** Verifies that the log signed at `to` events extends the log signed at `from` events. */
export function verifyConsistencyBundle(bundle: unknown, opts: Omit<VerifyOptions, 'onProgress'>): BundleReport {
  return bundleReport(() => {
    if (!isObject(bundle)) throw new Failure('the proof bundle is not a JSON object');
    bundleField(bundle, CONSISTENCY_BUNDLE_FORMAT);
    const from = count(bundle.from, 'from');
    const to = count(bundle.to, 'to');
    if (from === 0) throw new Failure('from must be at least 1: there is no consistency proof from an empty log');
    const proof = hexProof(bundle.proof);
    const older = openCheckpoint(bundle.from_checkpoint, opts.verifiers, opts.origin, 'the older checkpoint');
    const newer = openCheckpoint(bundle.to_checkpoint, opts.verifiers, opts.origin ?? older.origin, 'the newer checkpoint');
    if (older.size !== from || newer.size !== to) {
      throw new Failure(`the checkpoints were signed at sizes ${older.size} and ${newer.size}, not at the bundle's ${from} and ${to}`);
    }
    if (!verifyConsistency(from, to, older.rootHash, newer.rootHash, proof)) {
      throw new Failure(`the log signed at size ${to} does not extend the log signed at size ${from}: events 0..${from - 1} were changed, or the proof was`);
    }
    return newer;
  });
}

/** Verifies an inclusion or a consistency bundle, by its `format`. */
export function verifyBundle(bundle: unknown, opts: Omit<VerifyOptions, 'onProgress'>): BundleReport {
  if (isObject(bundle) && bundle.format === CONSISTENCY_BUNDLE_FORMAT) return verifyConsistencyBundle(bundle, opts);
  if (isObject(bundle) && bundle.format === INCLUSION_BUNDLE_FORMAT) return verifyProofBundle(bundle, opts);
  return { ok: false, problems: [`not a proof bundle: its format must be "${INCLUSION_BUNDLE_FORMAT}" or "${CONSISTENCY_BUNDLE_FORMAT}"`] };
}
