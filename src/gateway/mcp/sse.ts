/**
 * Server-sent events (`text/event-stream`) for the gateway's MCP proxy: an incremental parser
 * that follows the WHATWG HTML "event stream interpretation" rules (fields `event`, `data`, `id`,
 * `retry`; comments; CRLF, LF and CR line endings; a leading byte order mark; chunks split
 * anywhere, even inside a UTF-8 sequence), a serializer, and `mapSseStream`, which rewrites the
 * events of a stream (say, filtering the tools of a `tools/list` result) and passes the rest
 * through untouched.
 *
 * Events are bounded (`maxEventSize`): an upstream that never ends a line or an event cannot make
 * the gateway buffer without limit. Comments between events (the keep-alives MCP servers send on
 * long-lived streams) are passed on at once rather than held until the next event, so they still
 * keep idle connections open downstream.
 */
import { MandateError } from '../../errors.ts';

/** One event as a client sees it. `event` absent means the default type, "message". */
export interface SseEvent {
  event?: string;
  /** The data lines joined with LF (a CR or CRLF inside data cannot survive the format). */
  data: string;
  /** The `id` this event sets, if it sets one (the last event ID carries over otherwise). */
  id?: string;
  /** The reconnection time in milliseconds this event sets, if any. */
  retry?: number;
}

/**
 * A piece of the stream as received: a whole event block up to and including its closing blank
 * line, or comment lines between events. `event` is set when the block dispatches an event (it
 * has data); blocks without one (comments, a lone `retry` or `id`) only pass through.
 */
export interface SseBlock {
  text: string;
  event?: SseEvent;
}

export interface SseParserOptions {
  /** Largest event block, in characters (UTF-16 code units) of decoded text, line endings included. */
  maxEventSize: number;
}

/** Generous for a `tools/list` result with many tool schemas. */
export const DEFAULT_MAX_EVENT_SIZE = 4 * 1024 * 1024;

/** An event grew beyond `maxEventSize` before it ended; the stream cannot be read further. */
export class SseEventTooLargeError extends MandateError {
  readonly limit: number;

  constructor(limit: number) {
    super('ERR_BODY_TOO_LARGE', `an event of the event stream is larger than ${limit} characters`);
    this.limit = limit;
  }
}

const LF = 0x0a;
const CR = 0x0d;
const DIGITS = /^[0-9]+$/;

/**
 * Parses an event stream fed in chunks.
 *
 * @example
 *   const parser = new SseParser({ maxEventSize: 1 << 20 });
 *   for await (const chunk of body) for (const ev of parser.push(chunk)) handle(JSON.parse(ev.data));
 *   parser.end();
 */
export class SseParser {
  readonly #max: number;
  readonly #decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  #started = false;
  /** The previous chunk ended with CR: an LF opening the next one belongs to that line ending. */
  #skipLF = false;
  /** Text from the start of the pending block; lines before `#lineStart` are processed. */
  #buf = '';
  #lineStart = 0;
  /** Where the search for the end of the pending line resumes (no line break before it). */
  #searchFrom = 0;
  #failed: SseEventTooLargeError | undefined;
  // The pending block's fields.
  #fields = false;
  #data: string | undefined;
  #event = '';
  #id: string | undefined;
  #retry: number | undefined;
  #lastEventId = '';
  #reconnectionTime: number | undefined;

  constructor(options: SseParserOptions) {
    if (!Number.isSafeInteger(options.maxEventSize) || options.maxEventSize < 1) {
      throw new MandateError('ERR_CONFIG_INVALID', 'the largest event size must be a positive whole number of characters');
    }
    this.#max = options.maxEventSize;
  }

  /** The last event ID, as a client would send it in `Last-Event-ID`. */
  get lastEventId(): string {
    return this.#lastEventId;
  }

  /** The reconnection time (ms) the stream last set, if any. */
  get reconnectionTime(): number | undefined {
    return this.#reconnectionTime;
  }

  /** The events completed by `chunk`, in order. */
  push(chunk: Uint8Array | string): SseEvent[] {
    const events: SseEvent[] = [];
    for (const block of this.pushBlocks(chunk)) if (block.event !== undefined) events.push(block.event);
    return events;
  }

  /**
   * The blocks completed by `chunk`, in order, with their text.
   *
   * @throws SseEventTooLargeError when the pending event exceeds `maxEventSize` (and on every
   *   call after that).
   */
  pushBlocks(chunk: Uint8Array | string): SseBlock[] {
    if (this.#failed) throw this.#failed;
    let text = typeof chunk === 'string' ? chunk : this.#decoder.decode(chunk, { stream: true });
    if (text.length === 0) return [];
    if (!this.#started) {
      this.#started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.#skipLF && text.length > 0) {
      this.#skipLF = false;
      if (text.charCodeAt(0) === LF) text = text.slice(1);
    }
    this.#buf += text;
    return this.#scan();
  }

  /**
   * The stream ended. A block without its closing blank line is discarded, as a client would.
   */
  end(): void {
    this.#decoder.decode();
    this.#buf = '';
    this.#lineStart = 0;
    this.#searchFrom = 0;
    this.#resetBlock();
  }

  #scan(): SseBlock[] {
    const blocks: SseBlock[] = [];
    const buf = this.#buf;
    const n = buf.length;
    let blockStart = 0;
    let i = this.#searchFrom;
    while (i < n) {
      const c = buf.charCodeAt(i);
      if (c !== LF && c !== CR) {
        i++;
        continue;
      }
      let next = i + 1;
      if (c === CR) {
        if (next < n) {
          if (buf.charCodeAt(next) === LF) next++;
        } else {
          this.#skipLF = true;
        }
      }
      const lineStart = this.#lineStart;
      if (next - blockStart > this.#max) throw this.#fail();
      if (i === lineStart) {
        // A blank line ends the block.
        const event = this.#dispatch();
        blocks.push(event === undefined ? { text: buf.slice(blockStart, next) } : { text: buf.slice(blockStart, next), event });
        blockStart = next;
      } else if (buf.charCodeAt(lineStart) === 0x3a && !this.#fields) {
        // A comment before any field: pass it on now (keep-alives must not wait for an event).
        blocks.push({ text: buf.slice(blockStart, next) });
        blockStart = next;
      } else {
        this.#field(buf, lineStart, i);
      }
      this.#lineStart = next;
      i = next;
    }
    if (n - blockStart > this.#max) throw this.#fail();
    this.#buf = blockStart === 0 ? buf : buf.slice(blockStart);
    this.#lineStart -= blockStart;
    this.#searchFrom = n - blockStart;
    return blocks;
  }

  #field(buf: string, start: number, end: number): void {
    this.#fields = true;
    if (buf.charCodeAt(start) === 0x3a) return; // a comment inside the block
    let colon = start;
    while (colon < end && buf.charCodeAt(colon) !== 0x3a) colon++;
    let name: string;
    let value: string;
    if (colon === end) {
      name = buf.slice(start, end);
      value = '';
    } else {
      name = buf.slice(start, colon);
      const from = colon + 1 < end && buf.charCodeAt(colon + 1) === 0x20 ? colon + 2 : colon + 1;
      value = buf.slice(from, end);
    }
    switch (name) {
      case 'event':
        this.#event = value;
        break;
      case 'data':
        this.#data = this.#data === undefined ? value : `${this.#data}\n${value}`;
        break;
      case 'id':
        if (!value.includes('\0')) this.#id = value;
        break;
      case 'retry':
        if (DIGITS.test(value)) this.#retry = Number(value);
        break;
      default:
        // Unknown fields are ignored, as the standard says.
        break;
    }
  }

  #dispatch(): SseEvent | undefined {
    if (this.#id !== undefined) this.#lastEventId = this.#id;
    if (this.#retry !== undefined) this.#reconnectionTime = this.#retry;
    let event: SseEvent | undefined;
    if (this.#data !== undefined) {
      event = { data: this.#data };
      if (this.#event !== '') event.event = this.#event;
      if (this.#id !== undefined) event.id = this.#id;
      if (this.#retry !== undefined) event.retry = this.#retry;
    }
    this.#resetBlock();
    return event;
  }

  #resetBlock(): void {
    this.#fields = false;
    this.#data = undefined;
    this.#event = '';
    this.#id = undefined;
    this.#retry = undefined;
  }

  #fail(): SseEventTooLargeError {
    this.#failed = new SseEventTooLargeError(this.#max);
    this.#buf = '';
    return this.#failed;
  }
}

/**
 * The text of one event, ending with its blank line. Data is split on CRLF, CR and LF into
 * `data:` lines, so a client reads back the same data with LF between lines.
 *
 * @throws MandateError ERR_INTERNAL for an event name or id with a line break (it would start a
 *   new field), an id with NUL (clients ignore it), or a retry that is not a whole number >= 0.
 */
export function formatEvent(ev: SseEvent): string {
  let out = '';
  if (ev.event !== undefined && ev.event !== '') out += field('event', singleLine('event name', ev.event));
  if (ev.id !== undefined) {
    if (ev.id.includes('\0')) throw new MandateError('ERR_INTERNAL', 'an event id must not contain NUL');
    out += field('id', singleLine('event id', ev.id));
  }
  if (ev.retry !== undefined) {
    if (!Number.isSafeInteger(ev.retry) || ev.retry < 0) throw new MandateError('ERR_INTERNAL', 'an event retry must be a whole number of milliseconds');
    out += field('retry', String(ev.retry));
  }
  for (const line of ev.data.split(/\r\n|\r|\n/)) out += field('data', line);
  return `${out}\n`;
}

function field(name: string, value: string): string {
  return value === '' ? `${name}:\n` : `${name}: ${value}\n`;
}

function singleLine(what: string, value: string): string {
  if (/[\r\n]/.test(value)) throw new MandateError('ERR_INTERNAL', `an ${what} must not contain a line break`);
  return value;
}

/** Keep an event (return it), replace it (return another) or drop it with its id and retry (null). */
export type SseEventMap = (event: SseEvent) => SseEvent | null | Promise<SseEvent | null>;

/**
 * The event stream `source` with each event passed through `map`. Events `map` returns unchanged
 * (the same object) and everything that is not an event — comments, blocks with only `id` or
 * `retry` — go out as they came; replaced events are formatted anew. Event boundaries are kept:
 * every output chunk ends at the end of a block. Pulling drives the source, so a slow client
 * slows the upstream read rather than filling memory.
 *
 * @throws SseEventTooLargeError from the iteration when an event exceeds `maxEventSize`; the
 *   source is then closed.
 * @example
 *   for await (const bytes of mapSseStream(upstream.body, filterToolsList, { maxEventSize })) {
 *     if (!res.write(bytes)) await once(res, 'drain');
 *   }
 */
export async function* mapSseStream(
  source: AsyncIterable<Uint8Array>,
  map: SseEventMap,
  options: SseParserOptions = { maxEventSize: DEFAULT_MAX_EVENT_SIZE },
): AsyncGenerator<Uint8Array, void, undefined> {
  const parser = new SseParser(options);
  for await (const chunk of source) {
    const blocks = parser.pushBlocks(chunk);
    if (blocks.length === 0) continue;
    let out = '';
    for (const block of blocks) {
      if (block.event === undefined) {
        out += block.text;
        continue;
      }
      const result = map(block.event);
      const mapped = result instanceof Promise ? await result : result;
      if (mapped === null) continue;
      out += mapped === block.event ? block.text : formatEvent(mapped);
    }
    if (out.length > 0) yield Buffer.from(out, 'utf8');
  }
  parser.end();
}
