/**
 * `mandate audit ...`: the audit log from the command line. `verify` checks an export, or one event
 * with its proof, offline against the deployment's public checkpoint key — no server needed, so
 * anyone given the export and the key can check it. The other commands read the log through the
 * admin API: export it (streamed to a file), query and tail it, fetch checkpoints, proofs and the key.
 */
import { createReadStream, createWriteStream, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { request } from 'undici';
import { verifyExport, verifyBundle, splitLines, type BundleReport, type VerifyReport } from '../../audit/verify.ts';
import { parseVerifierKey, type NoteVerifier } from '../../audit/note.ts';
import { parseDurationMs } from '../../config/duration.ts';
import { isMandateError, MandateError, messageOf, type ErrorCode } from '../../errors.ts';
import type { AdminClient } from '../admin-client.ts';
import { collect, print, printTable } from '../output.ts';
import { clientFrom, type GlobalOptions } from './admin-api.ts';

/** Exports smaller than this verify too fast to need a progress bar. */
const PROGRESS_MIN_BYTES = 16 * 1024 * 1024;
/** Largest proof bundle file read. */
const MAX_BUNDLE_BYTES = 1024 * 1024;
/** Events asked for per page when scanning the log. */
const PAGE = 500;
const MAX_TAIL_LINES = 10_000;
/** How long an export may take before the server must have sent its first byte / between chunks. */
const EXPORT_HEADERS_TIMEOUT_MS = 30_000;
const EXPORT_BODY_TIMEOUT_MS = 300_000;

/** Event fields come from agents and servers: no terminal control characters from there. */
const safe = (s: string): string => s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function json(cmd: Command): boolean {
  return cmd.optsWithGlobals<GlobalOptions>().json === true;
}

function count(value: string, flag: string): number {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n)) throw new MandateError('ERR_BAD_REQUEST', `${flag} must be a whole number, got "${value}"`);
  return n;
}

/**
 * Verifier keys from `--key` values: a key itself, or `@file` holding keys one per line (blank lines
 * and `#` comments ignored), as `mandate audit key > audit.vkey` writes.
 */
function readVerifierKeys(values: readonly string[]): NoteVerifier[] {
  const texts = values.flatMap((value) => {
    if (!value.startsWith('@')) return [value.trim()];
    let text: string;
    try {
      text = readFileSync(value.slice(1), 'utf8');
    } catch (err) {
      throw new MandateError('ERR_KEY_INVALID', `cannot read the key file ${value.slice(1)}: ${messageOf(err)}`);
    }
    return text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  });
  if (texts.length === 0) throw new MandateError('ERR_KEY_INVALID', '--key names no verifier key');
  return texts.map(parseVerifierKey);
}

/** A progress bar on stderr, only when it is a terminal; `undefined` otherwise. */
function progressBar(format: string, total: number, payload: Record<string, string> = {}): SingleBar | undefined {
  if (!process.stderr.isTTY) return undefined;
  const bar = new SingleBar({ format, stream: process.stderr, hideCursor: true, clearOnComplete: true, fps: 5 }, Presets.shades_classic);
  bar.start(total, 0, payload);
  return bar;
}

const mib = (bytes: number): string => (bytes / (1024 * 1024)).toFixed(0);

/** The export's chunks, reporting bytes read to `onBytes`. */
async function* countingBytes(source: Readable, onBytes: (n: number) => void): AsyncGenerator<Buffer> {
  let read = 0;
  for await (const chunk of source) {
    read += (chunk as Buffer).length;
    onBytes(read);
    yield chunk as Buffer;
  }
}

/** File system errors (missing file, a directory, no permission) as a clear refusal naming the file. */
async function reading<T>(file: string, read: () => T | Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof MandateError || typeof (err as { code?: unknown } | null)?.code !== 'string') throw err;
    throw new MandateError('ERR_BAD_REQUEST', `cannot read ${file}: ${messageOf(err)}`);
  }
}

async function verifyFile(file: string, opts: { verifiers: NoteVerifier[]; origin?: string; trusted?: string[] }): Promise<VerifyReport> {
  const fromStdin = file === '-';
  const size = fromStdin ? 0 : await reading(file, () => statSync(file).size);
  const bar = size >= PROGRESS_MIN_BYTES ? progressBar('verifying |{bar}| {percentage}% | {read}/{size} MiB | {eta_formatted} left', size, { read: '0', size: mib(size) }) : undefined;
  const source = fromStdin ? process.stdin : createReadStream(file, { highWaterMark: 1024 * 1024 });
  try {
    return await reading(file, () => verifyExport(splitLines(countingBytes(source, (read) => bar?.update(read, { read: mib(read) }))), opts));
  } finally {
    bar?.stop();
    if (!fromStdin) source.destroy();
  }
}

function printExportReport(report: VerifyReport, file: string): void {
  const out = process.stdout;
  for (const w of report.warnings) process.stderr.write(`warning: ${w}\n`);
  if (report.ok) {
    const first = report.size - report.events;
    out.write(`${file}: verified ${report.events} events (${first}..${report.size - 1}) and ${report.checkpoints} signed checkpoints\n`);
    out.write(`tree size ${report.size}, root ${report.root}\n`);
    return;
  }
  out.write(`${file}: verification FAILED${report.line === undefined ? '' : ` at line ${report.line}`}\n`);
  out.write(`${report.problems[0]}\n`);
  if (report.firstBadIndex !== undefined) out.write(`first bad index: ${report.firstBadIndex}\n`);
}

function printBundleReport(report: BundleReport, file: string): void {
  if (report.ok) process.stdout.write(`${file}: verified against the checkpoint of ${report.origin} at size ${report.size}, root ${report.root}\n`);
  else process.stdout.write(`${file}: verification FAILED\n${report.problems[0]}\n`);
}

async function readBundle(file: string): Promise<unknown> {
  const text = await reading(file, () => {
    if (statSync(file).size > MAX_BUNDLE_BYTES) throw new MandateError('ERR_BODY_TOO_LARGE', `${file} is larger than ${MAX_BUNDLE_BYTES} bytes: not a proof bundle`);
    return readFileSync(file, 'utf8');
  });
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new MandateError('ERR_BAD_REQUEST', `${file} is not JSON: not a proof bundle`);
  }
}

function verifyCommand(audit: Command): void {
  audit
    .command('verify')
    .description('verify an exported log, or one event with its proof, offline against the checkpoint key')
    .argument('[file]', 'the export (JSON Lines from `mandate audit export`), or - for standard input')
    .requiredOption('--key <key>', 'the log\'s verifier key, or @file of keys one per line (repeatable)', collect)
    .option('--origin <origin>', 'the log\'s origin every checkpoint must carry (default: the export\'s)')
    .option('--proof <bundle>', 'verify this inclusion or consistency proof bundle instead of an export')
    .option('--checkpoint <file>', 'a signed checkpoint you already hold (from `mandate audit checkpoint`): the export must reach and match it (repeatable)', collect)
    .addHelpText('after', `
Exits 0 when everything verifies, 1 naming the first bad index otherwise (--json: the whole report).
Events after the last signed checkpoint cannot be vouched for: they are reported as a warning. A log
cut back together with its later checkpoints looks complete on its own: pass a checkpoint you kept
(--checkpoint) and the export must reach it.

Examples:
  $ mandate audit key > audit.vkey
  $ mandate audit export --out audit.jsonl
  $ mandate audit verify --key @audit.vkey audit.jsonl
  $ mandate audit verify --key @audit.vkey --origin example.org/mandate/audit - < audit.jsonl
  $ mandate audit checkpoint > kept.note          # keep one now, check against it later
  $ mandate audit verify --key @audit.vkey --checkpoint kept.note audit.jsonl
  $ mandate audit proof inclusion 1234 --out event-1234.json
  $ mandate audit verify --key @audit.vkey --proof event-1234.json`)
    .action(async (file: string | undefined, o: { key: string[]; origin?: string; proof?: string; checkpoint?: string[] }, cmd: Command) => {
      const opts = { verifiers: readVerifierKeys(o.key), ...(o.origin !== undefined && { origin: o.origin }) };
      const trusted = (o.checkpoint ?? []).map((f) => reading(f, () => readFileSync(f, 'utf8')));
      if (o.proof !== undefined) {
        if (file !== undefined) throw new MandateError('ERR_BAD_REQUEST', 'give either an export file or --proof, not both');
        const report = verifyBundle(await readBundle(o.proof), opts);
        if (json(cmd)) print(report, true);
        else printBundleReport(report, o.proof);
        if (!report.ok) process.exitCode = 1;
        return;
      }
      if (file === undefined) throw new MandateError('ERR_BAD_REQUEST', 'name the export to verify (a file, or - for standard input), or pass --proof');
      const report = await verifyFile(file, { ...opts, trusted: await Promise.all(trusted) });
      if (json(cmd)) print(report, true);
      else printExportReport(report, file === '-' ? '(stdin)' : file);
      if (!report.ok) process.exitCode = 1;
    });
}

/** The admin error a failed streamed request answered with, as the JSON client would report it. */
async function streamError(status: number, body: Readable, what: string): Promise<MandateError> {
  let text = '';
  for await (const chunk of body) {
    text += (chunk as Buffer).toString('utf8');
    if (text.length > 64 * 1024) break;
  }
  body.destroy();
  let doc: { error?: unknown; message?: unknown } = {};
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch {
    // not a JSON error body: the status says it
  }
  // A code this build knows (MandateError.status is undefined for any other), else one for the status.
  const known = typeof doc.error === 'string' && /^ERR_[A-Z0-9_]+$/.test(doc.error) && new MandateError(doc.error as ErrorCode, '').status !== undefined;
  const code = known ? (doc.error as ErrorCode) : (STATUS_CODES[status] ?? (status < 500 ? 'ERR_BAD_REQUEST' : 'ERR_SERVER_UNREACHABLE'));
  return new MandateError(code, typeof doc.message === 'string' && doc.message !== '' ? doc.message : `${what} failed with HTTP ${status}`);
}

const STATUS_CODES: Record<number, ErrorCode> = { 401: 'ERR_UNAUTHENTICATED', 403: 'ERR_FORBIDDEN', 404: 'ERR_NOT_FOUND' };

/** GET of a JSON Lines stream from the admin API, as a readable body (never buffered whole). */
async function getStream(cmd: Command, path: string): Promise<Readable> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  if (!g.adminToken) throw new MandateError('ERR_UNAUTHENTICATED', 'no admin token: set MANDATE_ADMIN_TOKEN or pass --admin-token');
  let url: URL;
  try {
    url = new URL(path, g.server);
  } catch {
    throw new MandateError('ERR_CONFIG_INVALID', `--server ${JSON.stringify(g.server)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new MandateError('ERR_CONFIG_INVALID', '--server must be an http or https URL');
  const what = `GET ${path}`;
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(url, {
      method: 'GET',
      headers: { authorization: `Bearer ${g.adminToken}`, accept: 'application/x-ndjson' },
      headersTimeout: EXPORT_HEADERS_TIMEOUT_MS,
      bodyTimeout: EXPORT_BODY_TIMEOUT_MS,
    });
  } catch (err) {
    throw new MandateError('ERR_SERVER_UNREACHABLE', `${what} failed: ${messageOf(err)}`);
  }
  if (res.statusCode < 200 || res.statusCode > 299) throw await streamError(res.statusCode, res.body, what);
  const type = String(res.headers['content-type'] ?? '');
  if (!type.startsWith('application/x-ndjson')) {
    res.body.destroy();
    throw new MandateError('ERR_SERVER_RESPONSE_INVALID', `${what} answered ${type || 'no content type'}, not application/x-ndjson`);
  }
  return res.body;
}

/** Passes chunks through, counting their lines for the progress indicator. */
function lineCounter(onLines: (lines: number) => void): Transform & { lines(): number } {
  let lines = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) lines += 1;
      onLines(lines);
      done(null, chunk);
    },
  });
  return Object.assign(counter, { lines: () => lines });
}

function exportCommand(audit: Command): void {
  audit
    .command('export')
    .description('download the log as JSON Lines with its signed checkpoints, for `mandate audit verify`')
    .option('--from <index>', 'first event (default 0); the export then carries the tree\'s frontier before it')
    .option('--to <index>', 'one past the last event (default: the log\'s size now)')
    .requiredOption('--out <file>', 'where to write it, or - for standard output')
    .addHelpText('after', `
The export is streamed: the log is never held in memory, here or on the server. A file is written
as <file>.partial and renamed once complete.

Examples:
  $ mandate audit export --out audit.jsonl
  $ mandate audit export --from 100000 --out recent.jsonl
  $ mandate audit export --out - | gzip > audit.jsonl.gz`)
    .action(async (o: { from?: string; to?: string; out: string }, cmd: Command) => {
      const params = new URLSearchParams();
      const from = o.from === undefined ? undefined : count(o.from, '--from');
      const to = o.to === undefined ? undefined : count(o.to, '--to');
      if (from !== undefined) params.set('from', String(from));
      if (to !== undefined) params.set('to', String(to));
      const query = params.toString() === '' ? '' : `?${params}`;
      const body = await getStream(cmd, `/admin/v1/audit/export${query}`);
      const bar = o.out === '-' ? undefined : progressBar('exporting: {value} lines', 0);
      const counter = lineCounter((lines) => bar?.update(lines));
      const cutOff = (err: unknown) =>
        err instanceof MandateError ? err : new MandateError('ERR_SERVER_UNREACHABLE', `the export stopped after ${counter.lines()} lines: ${messageOf(err)}`);
      if (o.out === '-') {
        await pipeline(body, counter, process.stdout as Writable, { end: false }).catch((err: unknown) => {
          throw cutOff(err);
        });
        return;
      }
      const partial = `${o.out}.partial`;
      try {
        await pipeline(body, counter, createWriteStream(partial, { mode: 0o600 }));
        renameSync(partial, o.out);
      } catch (err) {
        rmSync(partial, { force: true });
        throw cutOff(err);
      } finally {
        bar?.stop();
      }
      process.stderr.write(`wrote ${counter.lines()} lines to ${o.out}\n`);
    });
}

interface FilterOptions {
  agent?: string;
  principal?: string[];
  principalSubject?: string;
  mandate?: string;
  tool?: string;
  decision?: string;
  type?: string;
  since?: string;
  until?: string;
  traceId?: string;
}

/** An ISO 8601 time, or a duration meaning that long ago (`1h`, `30m`, `7d`). */
function timeArgument(value: string, flag: string, now = Date.now()): string {
  if (/^\d{4}-\d{2}-\d{2}/.test(value)) {
    const t = Date.parse(value);
    if (!Number.isNaN(t)) return new Date(t).toISOString();
  } else {
    const ms = parseDurationMs(value);
    if (ms !== undefined) return new Date(now - ms).toISOString();
  }
  throw new MandateError('ERR_BAD_REQUEST', `${flag} "${value}" is neither an ISO 8601 time (2026-11-24T10:00:00Z) nor a duration ago (90s, 5m, 1h, 7d)`);
}

function filterParams(o: FilterOptions): URLSearchParams {
  const params = new URLSearchParams();
  const set = (name: string, value: string | undefined) => value !== undefined && params.set(name, value);
  if (o.principal !== undefined && o.principal.length !== 2) throw new MandateError('ERR_BAD_REQUEST', '--principal takes two values: the issuer and the subject');
  if (o.principal !== undefined && o.principalSubject !== undefined) throw new MandateError('ERR_BAD_REQUEST', 'give --principal or --principal-subject, not both');
  set('agent', o.agent);
  set('principal_issuer', o.principal?.[0]);
  set('principal_subject', o.principal?.[1] ?? o.principalSubject);
  set('mandate', o.mandate);
  set('tool', o.tool);
  set('decision', o.decision);
  set('type', o.type);
  set('since', o.since === undefined ? undefined : timeArgument(o.since, '--since'));
  set('until', o.until === undefined ? undefined : timeArgument(o.until, '--until'));
  set('trace_id', o.traceId);
  return params;
}

function filterOptions(command: Command): Command {
  return command
    .option('--agent <spiffe-id>', 'events of this agent')
    .option('--principal <issuer-and-subject...>', 'events for this person: their issuer and subject')
    .option('--principal-subject <subject>', 'events for this person, by subject alone (any issuer)')
    .option('--mandate <id>', 'events under this mandate')
    .option('--tool <tool>', 'events about this tool')
    .option('--decision <decision>', 'events with this decision (allow, deny...)')
    .option('--type <type>', 'events of this type (gateway.decision, token.exchanged...)')
    .option('--since <time>', 'events at or after this time: ISO 8601, or a duration ago (1h, 7d)')
    .option('--until <time>', 'events before this time: ISO 8601, or a duration ago')
    .option('--trace-id <id>', 'events of this trace');
}

interface AuditEntry {
  index: number;
  event: Record<string, unknown>;
}

interface EventPage {
  events: AuditEntry[];
  next_after: number | null;
  /** The log's size, when the server says. */
  size?: unknown;
}

async function queryPage(client: AdminClient, filters: URLSearchParams, after: number | undefined, limit: number): Promise<EventPage> {
  const params = new URLSearchParams(filters);
  if (after !== undefined && after >= 0) params.set('after', String(after));
  params.set('limit', String(limit));
  const page = await client.request<EventPage>('GET', `/admin/v1/audit/events?${params}`);
  if (!page || !Array.isArray(page.events) || !page.events.every((e) => Number.isSafeInteger(e?.index) && typeof e.event === 'object' && e.event !== null)) {
    throw new MandateError('ERR_SERVER_RESPONSE_INVALID', 'the audit events answer is not {"events":[{"index","event"}...],"next_after"}');
  }
  return page;
}

/** Matching events after index `after`, page by page, oldest first. */
async function* eventsAfter(client: AdminClient, filters: URLSearchParams, after: number): AsyncGenerator<AuditEntry> {
  let cursor = after;
  for (;;) {
    const page = await queryPage(client, filters, cursor, PAGE);
    for (const e of page.events) yield e;
    const last = page.events.at(-1)?.index;
    if (page.next_after === null || last === undefined || page.events.length < PAGE) return;
    cursor = Math.max(page.next_after, last);
  }
}

function row({ index, event }: AuditEntry): Record<string, unknown> {
  const str = (v: unknown) => (typeof v === 'string' ? safe(v) : v === undefined || v === null ? undefined : safe(JSON.stringify(v)));
  const principal = event.principal as { subject?: unknown } | undefined;
  const decision = event.decision as { decision?: unknown } | undefined;
  return {
    index,
    time: str(event.time),
    type: str(event.type),
    agent: str(event.agent),
    principal: str(principal?.subject),
    tool: str(event.tool),
    decision: str(decision?.decision),
    outcome: str(event.outcome),
  };
}

const COLUMNS = ['index', 'time', 'type', 'agent', 'principal', 'tool', 'decision', 'outcome'];

function queryCommand(audit: Command): void {
  filterOptions(audit.command('query').description('find events by agent, person, mandate, tool, decision, type, time or trace'))
    .option('--after <index>', 'only events after this index (to page on)')
    .option('--limit <n>', 'at most this many events', '100')
    .addHelpText('after', `
Oldest first. When more events match, the next page starts after the last index shown.

Examples:
  $ mandate audit query --agent spiffe://example.org/agent/triage-bot --since 1h
  $ mandate audit query --principal https://sso.example alice --decision deny --limit 20
  $ mandate audit query --trace-id 4bf92f3577b34da6a3ce929d0e0e4736 --json`)
    .action(async (o: FilterOptions & { after?: string; limit: string }, cmd: Command) => {
      const { client } = clientFrom(cmd);
      const page = await queryPage(client, filterParams(o), o.after === undefined ? undefined : count(o.after, '--after'), count(o.limit, '--limit'));
      if (json(cmd)) {
        print(page, true);
        return;
      }
      printTable(page.events.map(row), COLUMNS);
      if (page.next_after !== null) process.stderr.write(`(more events match: add --after ${page.next_after})\n`);
    });
}

/** Size of the latest checkpoint, 0 when there is none yet. */
async function checkpointedSize(client: AdminClient): Promise<number> {
  try {
    const latest = await client.request<{ size?: unknown }>('GET', '/admin/v1/audit/checkpoint');
    return isCount(latest.size) ? latest.size : 0;
  } catch (err) {
    if (isMandateError(err, 'ERR_NOT_FOUND')) return 0;
    throw err;
  }
}

/** Keeps the last `n` of what it is given. */
function lastOf<T>(n: number): { add(item: T): void; items(): T[] } {
  let items: T[] = [];
  return {
    add(item) {
      items.push(item);
      if (items.length >= 2 * n) items = items.slice(-n);
    },
    items: () => items.slice(-n),
  };
}

/**
 * The newest `n` matching events and the index to poll after. The admin API pages oldest first, so
 * this reads from the log's size (or the latest checkpoint's) to the end, then windows further back,
 * growing, until it has `n` events or reaches the oldest match.
 */
async function newestEvents(client: AdminClient, filters: URLSearchParams, n: number): Promise<{ events: AuditEntry[]; cursor: number }> {
  const oldest = await queryPage(client, filters, undefined, 1);
  const size = isCount(oldest.size) ? oldest.size : await checkpointedSize(client);
  const first = oldest.events[0]?.index;
  if (first === undefined || n === 0) return { events: [], cursor: size - 1 };
  let low = size;
  let cursor = low - 1;
  const recent = lastOf<AuditEntry>(n);
  for await (const e of eventsAfter(client, filters, cursor)) {
    recent.add(e);
    cursor = e.index;
  }
  let events = recent.items();
  for (let width = Math.max(n, PAGE); events.length < n && low > first; width *= 4) {
    const start = Math.max(first, low - width);
    const older = lastOf<AuditEntry>(n - events.length);
    for await (const e of eventsAfter(client, filters, start - 1)) {
      if (e.index >= low) break;
      older.add(e);
    }
    events = [...older.items(), ...events];
    low = start;
  }
  return { events, cursor };
}

function printEvent(entry: AuditEntry, asJson: boolean): void {
  if (asJson) {
    process.stdout.write(`${JSON.stringify(entry)}\n`);
    return;
  }
  const r = row(entry);
  process.stdout.write(`${COLUMNS.map((c) => (r[c] === undefined ? '-' : String(r[c]))).join('  ')}\n`);
}

/** Errors worth waiting out while following: the server restarting or slow. */
function transient(err: unknown): boolean {
  return isMandateError(err, 'ERR_SERVER_UNREACHABLE') || isMandateError(err, 'ERR_TIMEOUT');
}

function tailCommand(audit: Command): void {
  filterOptions(audit.command('tail').description('print the newest events; with -f, keep printing new ones as they are appended'))
    .option('-n, --lines <n>', 'how many of the newest events to print first', '10')
    .option('-f, --follow', 'keep polling for new events until interrupted (Ctrl-C)')
    .option('--interval <duration>', 'how often to poll with --follow', '1s')
    .addHelpText('after', `
One line per event (index, time, type, agent, principal, tool, decision, outcome); with --json, one
JSON object per line.

Examples:
  $ mandate audit tail
  $ mandate audit tail -f --decision deny
  $ mandate audit tail -f --agent spiffe://example.org/agent/triage-bot --interval 5s --json`)
    .action(async (o: FilterOptions & { lines: string; follow?: boolean; interval: string }, cmd: Command) => {
      const { client } = clientFrom(cmd);
      const asJson = json(cmd);
      const n = count(o.lines, '--lines');
      if (n > MAX_TAIL_LINES) throw new MandateError('ERR_BAD_REQUEST', `--lines must be at most ${MAX_TAIL_LINES}`);
      const interval = parseDurationMs(o.interval);
      if (interval === undefined) throw new MandateError('ERR_BAD_REQUEST', `--interval "${o.interval}" is not a duration (e.g. 500ms, 1s, 1m)`);
      const filters = filterParams(o);
      const newest = await newestEvents(client, filters, n);
      for (const e of newest.events) printEvent(e, asJson);
      if (!o.follow) return;
      let cursor = newest.cursor;
      for (;;) {
        await sleep(interval);
        try {
          for await (const e of eventsAfter(client, filters, cursor)) {
            printEvent(e, asJson);
            cursor = e.index;
          }
        } catch (err) {
          if (!transient(err)) throw err;
          process.stderr.write(`mandate: ${(err as Error).message}; retrying\n`);
        }
      }
    });
}

function checkpointCommand(audit: Command): void {
  audit
    .command('checkpoint')
    .description('print the latest signed checkpoint (a C2SP signed note of the log\'s size and root)')
    .option('--new', 'sign a checkpoint of the log as it is now, first')
    .addHelpText('after', `
Keep the checkpoints you see: a later export or consistency proof must agree with them.

Examples:
  $ mandate audit checkpoint
  $ mandate audit checkpoint --new > checkpoint-$(date +%F).txt`)
    .action(async (o: { new?: boolean }, cmd: Command) => {
      const { client, json: asJson } = clientFrom(cmd);
      const checkpoint = await client.request<{ size: number; root_hash: string; note: string }>(o.new ? 'POST' : 'GET', '/admin/v1/audit/checkpoint');
      if (asJson) print(checkpoint, true);
      else process.stdout.write(typeof checkpoint.note === 'string' ? checkpoint.note : '');
    });
}

/** Writes a proof bundle to a file or standard output. */
function writeBundle(bundle: unknown, out: string | undefined): void {
  const text = `${JSON.stringify(bundle, null, 2)}\n`;
  if (out === undefined || out === '-') {
    process.stdout.write(text);
    return;
  }
  writeFileSync(out, text);
  process.stderr.write(`wrote the proof to ${out}\n`);
}

function proofCommands(audit: Command): void {
  const proof = audit.command('proof').description('inclusion and consistency proofs, as bundles `mandate audit verify --proof` checks offline');
  proof
    .command('inclusion')
    .description('an event with the proof that it is in the log, against a signed checkpoint')
    .argument('<index>', 'the event\'s index')
    .option('--size <n>', 'the checkpoint\'s tree size (default: the latest checkpoint)')
    .option('--out <file>', 'write the bundle to this file instead of standard output')
    .addHelpText('after', `
Example:
  $ mandate audit proof inclusion 1234 --out event-1234.json
  $ mandate audit verify --key @audit.vkey --proof event-1234.json`)
    .action(async (index: string, o: { size?: string; out?: string }, cmd: Command) => {
      const { client } = clientFrom(cmd);
      const params = new URLSearchParams({ index: String(count(index, 'index')) });
      if (o.size !== undefined) params.set('size', String(count(o.size, '--size')));
      writeBundle(await client.request('GET', `/admin/v1/audit/proof/inclusion?${params}`), o.out);
    });
  proof
    .command('consistency')
    .description('the proof that the log at one checkpoint extends the log at an earlier one')
    .requiredOption('--from <size>', 'the earlier checkpoint\'s tree size')
    .option('--to <size>', 'the later checkpoint\'s tree size (default: the latest)')
    .option('--out <file>', 'write the bundle to this file instead of standard output')
    .addHelpText('after', `
Example:
  $ mandate audit proof consistency --from 1000 --out since-1000.json
  $ mandate audit verify --key @audit.vkey --proof since-1000.json`)
    .action(async (o: { from: string; to?: string; out?: string }, cmd: Command) => {
      const { client } = clientFrom(cmd);
      const params = new URLSearchParams({ from: String(count(o.from, '--from')) });
      if (o.to !== undefined) params.set('to', String(count(o.to, '--to')));
      writeBundle(await client.request('GET', `/admin/v1/audit/proof/consistency?${params}`), o.out);
    });
}

function keyCommand(audit: Command): void {
  audit
    .command('key')
    .description('print the log\'s checkpoint verifier key (public), for offline verification')
    .addHelpText('after', `
Example:
  $ mandate audit key > audit.vkey
  $ mandate audit verify --key @audit.vkey audit.jsonl`)
    .action(async (_o: unknown, cmd: Command) => {
      const { client, json: asJson } = clientFrom(cmd);
      const key = await client.request<{ origin: string; verifier_key: string }>('GET', '/admin/v1/audit/key');
      if (asJson) print(key, true);
      else process.stdout.write(`${key.verifier_key}\n`);
    });
}

/** Registers `mandate audit` and its subcommands. */
export function auditCommands(program: Command): void {
  const audit = program.command('audit').description('the tamper-evident audit log: verify offline, export, query, tail, checkpoints, proofs');
  verifyCommand(audit);
  exportCommand(audit);
  queryCommand(audit);
  tailCommand(audit);
  checkpointCommand(audit);
  proofCommands(audit);
  keyCommand(audit);
}
