import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SseEventTooLargeError, SseParser, formatEvent, mapSseStream, type SseEvent } from './sse.ts';

const MAX = 1 << 16;

function parseAll(chunks: Array<string | Uint8Array>, maxEventSize = MAX): { events: SseEvent[]; parser: SseParser } {
  const parser = new SseParser({ maxEventSize });
  const events = chunks.flatMap((c) => parser.push(c));
  parser.end();
  return { events, parser };
}

const parse = (text: string) => parseAll([text]).events;

async function collect(stream: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Uint8Array[] = [];
  for await (const chunk of stream) parts.push(chunk);
  return Buffer.concat(parts).toString('utf8');
}

async function* chunks(...parts: Array<string | Uint8Array>): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield typeof p === 'string' ? Buffer.from(p) : p;
}

describe('SseParser', () => {
  it('reads data, event, id and retry fields', () => {
    assert.deepEqual(parse('data: hello\n\n'), [{ data: 'hello' }]);
    assert.deepEqual(parse('event: message\nid: 7\nretry: 1500\ndata: {"a":1}\n\n'), [{ event: 'message', id: '7', retry: 1500, data: '{"a":1}' }]);
    assert.deepEqual(parse('data: a\ndata: b\n\ndata: c\n\n'), [{ data: 'a\nb' }, { data: 'c' }]);
  });

  it('removes exactly one space after the colon, and reads a field without a colon as empty', () => {
    assert.deepEqual(parse('data:x\n\ndata:  x\n\ndata: \n\ndata\n\ndata\ndata\n\n'), [{ data: 'x' }, { data: ' x' }, { data: '' }, { data: '' }, { data: '\n' }]);
    assert.deepEqual(parse('data:a:b: c\n\n'), [{ data: 'a:b: c' }]);
  });

  it('ignores comments, unknown fields, malformed retry values and ids with NUL', () => {
    assert.deepEqual(parse(': comment\ndata: a\n:inside\nfoo: bar\nData: x\nretry: 1e3\nretry: -1\nretry: 12a\nretry:\nid: a\u0000b\n\n'), [{ data: 'a' }]);
  });

  it('dispatches nothing for a block without data, but remembers its id and retry', () => {
    const { events, parser } = parseAll(['id: 1\n\nretry: 250\n\nevent: ping\n\n\n\n']);
    assert.deepEqual(events, []);
    assert.equal(parser.lastEventId, '1');
    assert.equal(parser.reconnectionTime, 250);
  });

  it('keeps the last event id across events until an empty id resets it', () => {
    const parser = new SseParser({ maxEventSize: MAX });
    parser.push('id: 5\ndata: a\n\n');
    assert.deepEqual(parser.push('data: b\n\n'), [{ data: 'b' }]);
    assert.equal(parser.lastEventId, '5');
    assert.deepEqual(parser.push('id\ndata: c\n\n'), [{ data: 'c', id: '' }]);
    assert.equal(parser.lastEventId, '');
  });

  it('treats an empty event type as the default', () => {
    assert.deepEqual(parse('event:\ndata: a\n\nevent: x\nevent:\ndata: b\n\n'), [{ data: 'a' }, { data: 'b' }]);
  });

  it('accepts LF, CRLF and CR line endings, mixed', () => {
    const expected = [{ event: 'e', data: 'a\nb' }, { data: 'c' }];
    for (const text of ['event: e\ndata: a\ndata: b\n\ndata: c\n\n', 'event: e\r\ndata: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n', 'event: e\rdata: a\rdata: b\r\rdata: c\r\r', 'event: e\r\ndata: a\rdata: b\n\r\ndata: c\r\r']) {
      assert.deepEqual(parse(text), expected, JSON.stringify(text));
    }
  });

  it('does not read a CRLF split between chunks as two line endings', () => {
    assert.deepEqual(parseAll(['data: a\r', '\ndata: b\r', '\n\r', '\n']).events, [{ data: 'a\nb' }]);
    assert.deepEqual(parseAll(['data: a\r', '\r']).events, [{ data: 'a' }]);
    assert.deepEqual(parseAll(['data: a\r', '', '\n', '\n']).events, [{ data: 'a' }]);
  });

  it('removes one leading byte order mark, also split across chunks, and no other', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    assert.deepEqual(parseAll([Buffer.concat([bom, Buffer.from('data: a\n\n')])]).events, [{ data: 'a' }]);
    assert.deepEqual(parseAll([bom.subarray(0, 1), bom.subarray(1), Buffer.from('data: a\n\n')]).events, [{ data: 'a' }]);
    assert.deepEqual(parseAll(['\ufeffdata: a\n\n']).events, [{ data: 'a' }]);
    assert.deepEqual(parseAll(['\ufeff\ufeffdata: a\n\n']).events, [], 'a second BOM is part of the field name');
    assert.deepEqual(parseAll(['data: a\n\n\ufeffdata: b\n\n']).events, [{ data: 'a' }]);
  });

  it('decodes UTF-8 split anywhere, and replaces invalid bytes', () => {
    const bytes = Buffer.from('data: grüße 世界 🎉\n\n');
    for (let cut = 1; cut < bytes.length; cut++) {
      assert.deepEqual(parseAll([bytes.subarray(0, cut), bytes.subarray(cut)]).events, [{ data: 'grüße 世界 🎉' }], `cut at ${cut}`);
    }
    assert.deepEqual(parseAll([Buffer.from([0x64, 0x61, 0x74, 0x61, 0x3a, 0xff, 0x0a, 0x0a])]).events, [{ data: '\ufffd' }]);
  });

  it('discards an event the stream ends in the middle of', () => {
    assert.deepEqual(parse('data: a\n\ndata: b\n'), [{ data: 'a' }]);
    assert.deepEqual(parse('data: a\n\ndata: b'), [{ data: 'a' }]);
  });

  it('refuses an event larger than the limit, however it arrives, and stays failed', () => {
    const parser = new SseParser({ maxEventSize: 32 });
    assert.deepEqual(parser.push(`data: ${'x'.repeat(24)}\n\n`), [{ data: 'x'.repeat(24) }], 'an event of exactly 32 characters passes');
    assert.throws(() => parser.push(`data: ${'x'.repeat(25)}\n\n`), SseEventTooLargeError);
    assert.throws(() => parser.push('data: a\n\n'), SseEventTooLargeError);

    const line = new SseParser({ maxEventSize: 32 });
    assert.throws(() => {
      for (let i = 0; i < 10; i++) line.push('xxxxxxxx');
    }, (err: unknown) => err instanceof SseEventTooLargeError && err.limit === 32 && err.code === 'ERR_BODY_TOO_LARGE');

    const lines = new SseParser({ maxEventSize: 32 });
    assert.throws(() => {
      for (let i = 0; i < 10; i++) lines.push('data: a\n');
    }, SseEventTooLargeError);
  });

  it('bounds each event, not the stream, and never counts comments between events', () => {
    const parser = new SseParser({ maxEventSize: 32 });
    for (let i = 0; i < 1000; i++) {
      assert.deepEqual(parser.push(':\r\n'), []);
      assert.deepEqual(parser.push(`data: ${i}\n\n`), [{ data: String(i) }]);
    }
  });

  it('refuses a limit that is not a positive whole number', () => {
    for (const maxEventSize of [0, -1, 1.5, Number.NaN, Infinity]) assert.throws(() => new SseParser({ maxEventSize }), /positive whole number/);
  });
});

describe('formatEvent', () => {
  it('writes each field on its own line and ends with a blank line', () => {
    assert.equal(formatEvent({ data: 'hello' }), 'data: hello\n\n');
    assert.equal(formatEvent({ event: 'message', id: '7', retry: 100, data: '{"a":1}' }), 'event: message\nid: 7\nretry: 100\ndata: {"a":1}\n\n');
    assert.equal(formatEvent({ data: '' }), 'data:\n\n');
    assert.equal(formatEvent({ id: '', data: 'x' }), 'id:\ndata: x\n\n');
  });

  it('splits data on every kind of line break', () => {
    assert.equal(formatEvent({ data: 'a\nb\r\nc\rd\n' }), 'data: a\ndata: b\ndata: c\ndata: d\ndata:\n\n');
    assert.deepEqual(parse(formatEvent({ data: 'a\r\nb\n\n c' })), [{ data: 'a\nb\n\n c' }]);
  });

  it('refuses a field that would break the format', () => {
    assert.throws(() => formatEvent({ event: 'a\nid: 1', data: '' }), /event name must not contain a line break/);
    assert.throws(() => formatEvent({ id: 'a\rb', data: '' }), /event id must not contain a line break/);
    assert.throws(() => formatEvent({ id: 'a\u0000', data: '' }), /NUL/);
    for (const retry of [-1, 1.5, Number.NaN]) assert.throws(() => formatEvent({ retry, data: '' }), /retry/);
  });
});

describe('mapSseStream', () => {
  const upstream = ': hello\n\nretry: 1000\n\nevent: message\nid: 1\ndata: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n'
    + 'data: {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read"},{"name":"delete"}]}}\n\n';

  it('passes everything through byte for byte when the map keeps every event', async () => {
    assert.equal(await collect(mapSseStream(chunks(upstream), (ev) => ev)), upstream);
    const bytes = Buffer.from(upstream);
    const split = Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
    assert.equal(await collect(mapSseStream(chunks(...split), async (ev) => ev)), upstream);
  });

  it('rewrites the events the map replaces, drops those it refuses, and keeps the rest', async () => {
    const out = await collect(mapSseStream(chunks(upstream), (ev) => {
      const msg = JSON.parse(ev.data) as { result?: { tools: Array<{ name: string }> }; method?: string };
      if (msg.method === 'notifications/progress') return null;
      if (msg.result) return { ...ev, data: JSON.stringify({ ...msg, result: { tools: msg.result.tools.filter((t) => t.name !== 'delete') } }) };
      return ev;
    }));
    assert.equal(out, ': hello\n\nretry: 1000\n\ndata: {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read"}]}}\n\n');
  });

  it('ends every output chunk at the end of a block', async () => {
    const text = 'data: a\n\ndata: b\ndata: c\n\n:x\n\ndata: d\n\n';
    const bytes = Buffer.from(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      for await (const out of mapSseStream(chunks(bytes.subarray(0, cut), bytes.subarray(cut)), (ev) => ({ ...ev }))) {
        assert.ok(/\n\n$|^:x\n$|\n\n:x\n$/.test(Buffer.from(out).toString()), `cut at ${cut}: ${JSON.stringify(Buffer.from(out).toString())}`);
      }
    }
  });

  it('forwards a keep-alive comment before the next event arrives', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    async function* source() {
      yield Buffer.from('data: a\n\n:\r\n');
      await gate;
      yield Buffer.from('data: b\n\n');
    }
    const it = mapSseStream(source(), (ev) => ev)[Symbol.asyncIterator]();
    const first = await it.next();
    assert.equal(Buffer.from(first.value as Uint8Array).toString(), 'data: a\n\n:\r\n');
    release();
    assert.equal(Buffer.from((await it.next()).value as Uint8Array).toString(), 'data: b\n\n');
    assert.equal((await it.next()).done, true);
  });

  it('reads the source only as fast as its consumer', async () => {
    let pulled = 0;
    async function* source() {
      for (let i = 0; i < 100; i++) {
        pulled++;
        yield Buffer.from(`data: ${i}\n\n`);
      }
    }
    const it = mapSseStream(source(), (ev) => ev)[Symbol.asyncIterator]();
    await it.next();
    await it.next();
    assert.equal(pulled, 2);
    await it.return?.();
  });

  it('fails on an oversized event and closes the source', async () => {
    let closed = false;
    async function* source() {
      try {
        yield Buffer.from('data: ok\n\n');
        for (;;) yield Buffer.from('data: xxxxxxxxxxxxxxxx\n');
      } finally {
        closed = true;
      }
    }
    const seen: string[] = [];
    await assert.rejects(async () => {
      for await (const out of mapSseStream(source(), (ev) => ev, { maxEventSize: 256 })) seen.push(Buffer.from(out).toString());
    }, SseEventTooLargeError);
    assert.deepEqual(seen, ['data: ok\n\n']);
    assert.equal(closed, true);
  });
});

describe('properties', () => {
  const noBreak = (s: string) => !/[\r\n]/.test(s);
  const event: fc.Arbitrary<SseEvent> = fc.record(
    {
      event: fc.string({ unit: 'binary', minLength: 1 }).filter(noBreak),
      id: fc.string({ unit: 'binary' }).filter((s) => noBreak(s) && !s.includes('\0')),
      retry: fc.nat(),
      data: fc.string({ unit: 'binary' }),
    },
    { requiredKeys: ['data'] },
  );
  const ending = fc.constantFrom('\n', '\r\n', '\r');

  /** Byte offsets at which to cut `bytes`, anywhere, even inside a UTF-8 sequence. */
  const cuts = fc.array(fc.nat(), { maxLength: 12 });
  function split(bytes: Buffer, at: number[]): Buffer[] {
    const points = [...new Set(at.map((n) => n % (bytes.length + 1)))].sort((a, b) => a - b);
    const parts: Buffer[] = [];
    let from = 0;
    for (const p of points) {
      parts.push(bytes.subarray(from, p));
      from = p;
    }
    parts.push(bytes.subarray(from));
    return parts;
  }
  const expected = (ev: SseEvent): SseEvent => ({ ...ev, data: ev.data.replace(/\r\n|\r/g, '\n') });

  it('reads back any formatted events split at any byte, with any line ending', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 8 }), ending, cuts, (events, eol, at) => {
        const text = events.map(formatEvent).join('').replace(/\n/g, eol);
        assert.deepEqual(parseAll(split(Buffer.from(text), at)).events, events.map(expected));
      }),
      { numRuns: 500 },
    );
  });

  it('passes any formatted stream through unchanged when the map keeps the events', async () => {
    const comment = fc.string({ unit: 'binary' }).filter(noBreak).map((c) => `:${c}\n`);
    const block = fc.oneof(event.map(formatEvent), comment, fc.nat().map((n) => `retry: ${n}\n\n`));
    await fc.assert(
      fc.asyncProperty(fc.array(block, { maxLength: 8 }), cuts, async (blocks, at) => {
        const text = blocks.join('');
        assert.equal(await collect(mapSseStream(chunks(...split(Buffer.from(text), at)), (ev) => ev)), text.slice(0, complete(text)));
      }),
      { numRuns: 300 },
    );
  });

  /** Length of the part of `text` a client acts on: up to the end of its last complete block or leading comments. */
  function complete(text: string): number {
    const lastBlank = text.lastIndexOf('\n\n');
    let end = lastBlank < 0 ? 0 : lastBlank + 2;
    // Comment lines after the last block are forwarded too.
    while (text.startsWith(':', end) && text.indexOf('\n', end) >= 0) end = text.indexOf('\n', end) + 1;
    return end;
  }
});
