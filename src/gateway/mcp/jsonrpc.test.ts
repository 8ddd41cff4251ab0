import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  JSONRPC_ERROR,
  JsonRpcBodyError,
  checkMetadataHeaders,
  decodeHeaderValue,
  errorResponse,
  itemErrorResponse,
  mcpCall,
  parseMessages,
  serializeResponses,
  type JsonRpcLimits,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type ParsedItem,
  type RequestHeaders,
} from './jsonrpc.ts';

const LIMITS: JsonRpcLimits = { maxBytes: 1 << 20, maxBatch: 8, maxDepth: 16 };
const LARGE: JsonRpcLimits = { maxBytes: 1 << 26, maxBatch: 1 << 20, maxDepth: 10_000 };

function refusal(body: Buffer | string, limits: JsonRpcLimits = LIMITS): JsonRpcBodyError {
  try {
    parseMessages(body, limits);
  } catch (err) {
    assert.ok(err instanceof JsonRpcBodyError, `expected a JsonRpcBodyError, got ${String(err)}`);
    return err;
  }
  assert.fail(`accepted ${typeof body === 'string' ? JSON.stringify(body.slice(0, 80)) : body.toString('hex').slice(0, 80)}`);
}

function single(body: string): ParsedItem {
  const parsed = parseMessages(body, LIMITS);
  assert.equal(parsed.batch, false);
  assert.equal(parsed.items.length, 1);
  return parsed.items[0] as ParsedItem;
}

const call = (params: unknown, method = 'tools/call') => JSON.stringify({ jsonrpc: '2.0', id: 7, method, params });

describe('parseMessages: valid messages', () => {
  it('reads a request, a notification and responses, from a string or bytes', () => {
    const request = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read', arguments: { n: 1 } } };
    for (const body of [JSON.stringify(request), Buffer.from(JSON.stringify(request))]) {
      const parsed = parseMessages(body, LIMITS);
      assert.deepEqual(parsed, { batch: false, items: [{ ok: true, kind: 'request', message: request }] });
    }
    assert.deepEqual(single('{"jsonrpc":"2.0","method":"notifications/initialized"}'), {
      ok: true, kind: 'notification', message: { jsonrpc: '2.0', method: 'notifications/initialized' },
    });
    assert.equal((single('{"jsonrpc":"2.0","id":"a","result":{}}') as { kind: string }).kind, 'response');
    assert.equal((single('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}') as { kind: string }).kind, 'response');
    assert.equal((single('{"jsonrpc":"2.0","id":3,"result":null}') as { kind: string }).kind, 'response');
  });

  it('accepts every id JSON-RPC and MCP allow on a request', () => {
    for (const id of ['""', '"x"', '0', '-0', '-5', '9007199254740991', '-9007199254740991', '1e3']) {
      const item = single(`{"jsonrpc":"2.0","id":${id},"method":"ping"}`);
      assert.ok(item.ok && item.kind === 'request', id);
    }
  });

  it('accepts params as an object or an array, and keeps members it does not know', () => {
    assert.ok(single('{"jsonrpc":"2.0","id":1,"method":"m","params":[]}').ok);
    const item = single('{"jsonrpc":"2.0","id":1,"method":"m","params":{},"extra":{"kept":true}}');
    assert.ok(item.ok);
    assert.deepEqual((item.message as unknown as { extra: unknown }).extra, { kept: true });
  });

  it('accepts whitespace around the body and inside it', () => {
    assert.ok(single(' \r\n\t{ "jsonrpc" : "2.0" , "method" : "ping" , "id" : 1 } \n').ok);
  });

  it('does not count brackets, quotes or escapes inside strings', () => {
    const tricky = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'm', params: { a: '[[[[{{{{', b: '\\"', c: 'x\\', d: '\\\\"}' } });
    assert.ok(parseMessages(tricky, { ...LIMITS, maxDepth: 2 }).items[0]?.ok);
  });

  it('allows exactly maxDepth levels and refuses one more', () => {
    const nested = (levels: number) => `{"jsonrpc":"2.0","id":1,"method":"m","params":${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}}`;
    assert.ok(parseMessages(nested(4), { ...LIMITS, maxDepth: 4 }).items[0]?.ok);
    const err = refusal(nested(5), { ...LIMITS, maxDepth: 4 });
    assert.equal(err.rpc.code, JSONRPC_ERROR.INVALID_REQUEST);
    assert.match(err.message, /nested deeper than 4/);
  });

  it('keeps __proto__ members as plain data and pollutes no prototype', () => {
    const body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","__proto__":{"polluted":1},"params":{"name":"x","arguments":{"__proto__":{"polluted":2},"constructor":{"prototype":{"polluted":3}}}}}';
    const item = single(body);
    assert.ok(item.ok && item.kind === 'request');
    const c = mcpCall(item.message);
    assert.ok(c.ok);
    const args = c.arguments as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(args), Object.prototype);
    assert.ok(Object.hasOwn(args, '__proto__'));
    assert.deepEqual(Object.keys(args), ['__proto__', 'constructor']);
    assert.equal(Object.getPrototypeOf(item.message), Object.prototype);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
  });
});

describe('parseMessages: bodies refused as a whole', () => {
  const table: Array<[string, Buffer | string, number, RegExp]> = [
    ['empty string', '', JSONRPC_ERROR.PARSE_ERROR, /empty/],
    ['empty buffer', Buffer.alloc(0), JSONRPC_ERROR.PARSE_ERROR, /empty/],
    ['only whitespace', ' \r\n\t ', JSONRPC_ERROR.PARSE_ERROR, /empty/],
    ['invalid UTF-8 byte', Buffer.from([0x7b, 0xff, 0x7d]), JSONRPC_ERROR.PARSE_ERROR, /UTF-8/],
    ['overlong UTF-8', Buffer.from([0x22, 0xc0, 0x80, 0x22]), JSONRPC_ERROR.PARSE_ERROR, /UTF-8/],
    ['UTF-8 encoded surrogate', Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]), JSONRPC_ERROR.PARSE_ERROR, /UTF-8/],
    ['truncated UTF-8', Buffer.from([0x22, 0xe4, 0xb8]), JSONRPC_ERROR.PARSE_ERROR, /UTF-8/],
    ['byte order mark', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"jsonrpc":"2.0","method":"ping"}')]), JSONRPC_ERROR.PARSE_ERROR, /byte order mark/],
    ['byte order mark in a string', '\ufeff{"jsonrpc":"2.0","method":"ping"}', JSONRPC_ERROR.PARSE_ERROR, /byte order mark/],
    ['unterminated object', '{"jsonrpc":"2.0"', JSONRPC_ERROR.PARSE_ERROR, /not valid JSON/],
    ['unterminated string', '{"jsonrpc":"2.0', JSONRPC_ERROR.PARSE_ERROR, /not valid JSON/],
    ['NaN', '{"jsonrpc":"2.0","id":NaN,"method":"m"}', JSONRPC_ERROR.PARSE_ERROR, /not valid JSON/],
    ['Infinity literal', '{"jsonrpc":"2.0","id":Infinity,"method":"m"}', JSONRPC_ERROR.PARSE_ERROR, /not valid JSON/],
    ['bare NaN', 'NaN', JSONRPC_ERROR.PARSE_ERROR, /not valid JSON/],
    ['undefined', 'undefined', JSONRPC_ERROR.PARSE_ERROR, /not valid JSON/],
    ['single quotes', "{'jsonrpc':'2.0'}", JSONRPC_ERROR.PARSE_ERROR, /not valid JSON/],
    ['trailing comma', '{"jsonrpc":"2.0","method":"m",}', JSONRPC_ERROR.PARSE_ERROR, /not valid JSON/],
    ['leading zero', '{"jsonrpc":"2.0","id":01,"method":"m"}', JSONRPC_ERROR.PARSE_ERROR, /not valid JSON/],
    ['two values', '{"jsonrpc":"2.0","method":"m"}{}', JSONRPC_ERROR.PARSE_ERROR, /not valid JSON/],
    ['unbalanced closers', ']]]}}}', JSONRPC_ERROR.PARSE_ERROR, /not valid JSON/],
    ['a comment', '{"jsonrpc":"2.0"/* x */,"method":"m"}', JSONRPC_ERROR.PARSE_ERROR, /not valid JSON/],
    ['raw control character in a string', '{"jsonrpc":"2.0","method":"a\u0001"}', JSONRPC_ERROR.PARSE_ERROR, /not valid JSON/],
    ['duplicate member', '{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping"}', JSONRPC_ERROR.INVALID_REQUEST, /member "method" twice/],
    ['duplicate member deep in params', call({ name: 'x', arguments: { a: 1 } }).replace('"a":1', '"a":1,"b":[{"c":1,"c":2}]'), JSONRPC_ERROR.INVALID_REQUEST, /member "c" twice/],
    ['duplicate member spelt with an escape', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read","n\\u0061me":"delete"}}', JSONRPC_ERROR.INVALID_REQUEST, /member "name" twice/],
    ['duplicate empty member name', '{"jsonrpc":"2.0","method":"m","params":{"":1,"":2}}', JSONRPC_ERROR.INVALID_REQUEST, /member "" twice/],
    ['number beyond a double', '{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":1e400}}', JSONRPC_ERROR.INVALID_REQUEST, /range of a double/],
    ['negative number beyond a double', '{"jsonrpc":"2.0","id":1,"method":"m","params":[-1.5E+999]}', JSONRPC_ERROR.INVALID_REQUEST, /range of a double/],
    ['400-digit integer', `{"jsonrpc":"2.0","id":1,"method":"m","params":[${'9'.repeat(400)}]}`, JSONRPC_ERROR.INVALID_REQUEST, /range of a double/],
    ['100k-deep arrays', '['.repeat(100_000) + ']'.repeat(100_000), JSONRPC_ERROR.INVALID_REQUEST, /nested deeper/],
    ['100k-deep objects, unterminated', '{"a":'.repeat(100_000), JSONRPC_ERROR.INVALID_REQUEST, /nested deeper/],
    ['empty batch', '[]', JSONRPC_ERROR.INVALID_REQUEST, /batch is empty/],
    ['empty batch with spaces', ' [ ] ', JSONRPC_ERROR.INVALID_REQUEST, /batch is empty/],
    ['batch over the limit', JSON.stringify(Array.from({ length: 9 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'ping' }))), JSONRPC_ERROR.INVALID_REQUEST, /more than 8 messages/],
  ];
  for (const [name, body, code, message] of table) {
    it(`refuses ${name}`, () => {
      const err = refusal(body);
      assert.equal(err.rpc.code, code);
      assert.match(err.message, message);
      assert.equal(err.status, 400);
      assert.deepEqual(err.response(), { jsonrpc: '2.0', id: null, error: err.rpc });
    });
  }

  it('refuses a body over maxBytes, counted in UTF-8 bytes, as 413', () => {
    const body = JSON.stringify({ jsonrpc: '2.0', method: 'm', params: ['é'.repeat(40)] });
    assert.ok(parseMessages(body, { ...LIMITS, maxBytes: Buffer.byteLength(body) }).items[0]?.ok);
    for (const input of [body, Buffer.from(body)]) {
      const err = refusal(input, { ...LIMITS, maxBytes: Buffer.byteLength(body) - 1 });
      assert.equal(err.code, 'ERR_BODY_TOO_LARGE');
      assert.equal(err.status, 413);
      assert.equal(err.rpc.code, JSONRPC_ERROR.INVALID_REQUEST);
    }
  });

  it('never quotes the body in its messages', () => {
    const err = refusal('{"jsonrpc":"2.0","params":{"password":"hunter2"');
    assert.doesNotMatch(err.message, /hunter2/);
    const err2 = refusal('{"password":"hunter2" x}');
    assert.doesNotMatch(err2.message, /hunter2/);
  });
});

describe('parseMessages: invalid messages', () => {
  const table: Array<[string, unknown, RegExp, string | number | null]> = [
    ['a number', 1, /must be a JSON object/, null],
    ['a string', 'x', /must be a JSON object/, null],
    ['null', null, /must be a JSON object/, null],
    ['an empty object', {}, /"jsonrpc" must be "2.0"/, null],
    ['jsonrpc missing', { id: 1, method: 'm' }, /"jsonrpc" must be "2.0"/, 1],
    ['jsonrpc 1.0', { jsonrpc: '1.0', id: 1, method: 'm' }, /"jsonrpc" must be "2.0"/, 1],
    ['jsonrpc a number', { jsonrpc: 2.0, id: 'a', method: 'm' }, /"jsonrpc" must be "2.0"/, 'a'],
    ['method a number', { jsonrpc: '2.0', id: 1, method: 1 }, /"method" must be a non-empty string/, 1],
    ['method empty', { jsonrpc: '2.0', id: 1, method: '' }, /"method" must be a non-empty string/, 1],
    ['method null', { jsonrpc: '2.0', id: 1, method: null }, /"method" must be a non-empty string/, 1],
    ['method an array', { jsonrpc: '2.0', method: ['m'] }, /"method" must be a non-empty string/, null],
    ['params a string', { jsonrpc: '2.0', id: 1, method: 'm', params: 'x' }, /"params" must be an object or an array/, 1],
    ['params a number', { jsonrpc: '2.0', id: 1, method: 'm', params: 1 }, /"params" must be an object or an array/, 1],
    ['params null', { jsonrpc: '2.0', id: 1, method: 'm', params: null }, /"params" must be an object or an array/, 1],
    ['params true', { jsonrpc: '2.0', method: 'm', params: true }, /"params" must be an object or an array/, null],
    ['request id null', { jsonrpc: '2.0', id: null, method: 'm' }, /"id" must be a string or an integer/, null],
    ['request id fractional', { jsonrpc: '2.0', id: 1.5, method: 'm' }, /"id" must be a string or an integer/, null],
    ['request id unsafe', { jsonrpc: '2.0', id: 2 ** 53, method: 'm' }, /"id" must be a string or an integer/, null],
    ['request id true', { jsonrpc: '2.0', id: true, method: 'm' }, /"id" must be a string or an integer/, null],
    ['request id an object', { jsonrpc: '2.0', id: {}, method: 'm' }, /"id" must be a string or an integer/, null],
    ['request id an array', { jsonrpc: '2.0', id: [1], method: 'm' }, /"id" must be a string or an integer/, null],
    ['request with a result', { jsonrpc: '2.0', id: 1, method: 'm', result: 1 }, /cannot carry "result" or "error"/, 1],
    ['neither method nor id', { jsonrpc: '2.0', params: {} }, /needs "method"/, null],
    ['response with neither result nor error', { jsonrpc: '2.0', id: 1 }, /exactly one of "result" and "error"/, 1],
    ['response with both', { jsonrpc: '2.0', id: 1, result: 1, error: { code: 1, message: 'x' } }, /exactly one/, 1],
    ['result with id null', { jsonrpc: '2.0', id: null, result: 1 }, /"id" must be a string or an integer/, null],
    ['response id fractional', { jsonrpc: '2.0', id: 0.5, result: 1 }, /"id" must be a string or an integer/, null],
    ['error a string', { jsonrpc: '2.0', id: 1, error: 'bad' }, /"error" must be an object/, 1],
    ['error code a string', { jsonrpc: '2.0', id: 1, error: { code: '-32600', message: 'x' } }, /"error" must be an object/, 1],
    ['error code fractional', { jsonrpc: '2.0', id: 1, error: { code: 1.5, message: 'x' } }, /"error" must be an object/, 1],
    ['error without message', { jsonrpc: '2.0', id: 1, error: { code: 1 } }, /"error" must be an object/, 1],
  ];
  for (const [name, value, message, id] of table) {
    it(`answers ${name} with Invalid Request`, () => {
      const item = single(JSON.stringify(value));
      assert.ok(!item.ok);
      assert.equal(item.error.code, JSONRPC_ERROR.INVALID_REQUEST);
      assert.match(item.error.message, message);
      assert.equal(item.id, id);
      assert.deepEqual(itemErrorResponse(item), { jsonrpc: '2.0', id, error: item.error });
    });
  }

  it('decides each message of a batch on its own, in order', () => {
    const batch = [
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'a' } },
      1,
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      { jsonrpc: '2.0', id: 2, method: '' },
      { jsonrpc: '2.0', id: 'r', result: {} },
      [],
      { jsonrpc: '2.0', id: 3, method: 'ping' },
    ];
    const parsed = parseMessages(JSON.stringify(batch), LIMITS);
    assert.equal(parsed.batch, true);
    assert.deepEqual(parsed.items.map((i) => (i.ok ? i.kind : `error ${String(i.id)}`)), ['request', 'error null', 'notification', 'error 2', 'response', 'error null', 'request']);
  });

  it('refuses a request id already used in the same batch, keeping the first', () => {
    const batch = [
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read' } },
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'delete' } },
      { jsonrpc: '2.0', id: '1', method: 'ping' },
    ];
    const items = parseMessages(JSON.stringify(batch), LIMITS).items;
    assert.ok(items[0]?.ok);
    const second = items[1];
    assert.ok(second !== undefined && !second.ok);
    assert.match(second.error.message, /repeats an earlier request/);
    assert.equal(second.id, null);
    assert.ok(items[2]?.ok, 'a string id differs from the number');
  });

  it('parses a batch of one as a batch', () => {
    const parsed = parseMessages('[{"jsonrpc":"2.0","id":1,"method":"ping"}]', LIMITS);
    assert.equal(parsed.batch, true);
    assert.equal(parsed.items.length, 1);
  });
});

describe('mcpCall', () => {
  const request = (method: string, params?: unknown): JsonRpcRequest => {
    const item = single(JSON.stringify({ jsonrpc: '2.0', id: 1, method, ...(params === undefined ? {} : { params }) }));
    assert.ok(item.ok && item.kind === 'request');
    return item.message;
  };

  it('classifies tools/call with its name and arguments', () => {
    assert.deepEqual(mcpCall(request('tools/call', { name: 'delete_issue', arguments: { id: 4 }, _meta: {} })), {
      ok: true, method: 'tools/call', kind: 'tool', name: 'delete_issue', arguments: { id: 4 }, policyMethod: 'tools/call',
    });
    assert.deepEqual(mcpCall(request('tools/call', { name: 'list' })), { ok: true, method: 'tools/call', kind: 'tool', name: 'list', policyMethod: 'tools/call' });
  });

  it('classifies resources and prompts', () => {
    assert.deepEqual(mcpCall(request('resources/read', { uri: 'file:///a' })), { ok: true, method: 'resources/read', kind: 'resource', name: 'file:///a', policyMethod: 'resources/read' });
    assert.deepEqual(mcpCall(request('resources/subscribe', { uri: 'file:///a' })), { ok: true, method: 'resources/subscribe', kind: 'resource', name: 'file:///a', policyMethod: 'resources/read' });
    assert.deepEqual(mcpCall(request('prompts/get', { name: 'review', arguments: { lang: 'en' } })), {
      ok: true, method: 'prompts/get', kind: 'prompt', name: 'review', arguments: { lang: 'en' }, policyMethod: 'prompts/get',
    });
  });

  it('classifies lists, lifecycle and everything else', () => {
    const table: Array<[string, string, string | undefined]> = [
      ['tools/list', 'list', 'tools/list'],
      ['resources/list', 'list', 'resources/list'],
      ['resources/templates/list', 'list', 'resources/list'],
      ['prompts/list', 'list', 'prompts/list'],
      ['initialize', 'lifecycle', undefined],
      ['ping', 'lifecycle', undefined],
      ['server/discover', 'lifecycle', undefined],
      ['subscriptions/listen', 'lifecycle', undefined],
      ['logging/setLevel', 'lifecycle', undefined],
      ['resources/unsubscribe', 'lifecycle', undefined],
      ['completion/complete', 'other', undefined],
      ['tasks/get', 'other', undefined],
      ['constructor', 'other', undefined],
      ['__proto__', 'other', undefined],
      ['toString', 'other', undefined],
      ['Tools/list', 'other', undefined],
    ];
    for (const [method, kind, policyMethod] of table) {
      const c = mcpCall(request(method, { cursor: 'x' }));
      assert.ok(c.ok);
      assert.equal(c.kind, kind, method);
      assert.equal(c.policyMethod, policyMethod, method);
    }
    const note: JsonRpcNotification = { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } };
    assert.deepEqual(mcpCall(note), { ok: true, method: 'notifications/cancelled', kind: 'lifecycle' });
  });

  it('answers malformed params with Invalid params naming the problem', () => {
    const table: Array<[string, unknown, RegExp]> = [
      ['tools/call', undefined, /tools\/call needs params, an object/],
      ['tools/call', [], /needs params, an object/],
      ['tools/call', {}, /needs params\.name, a non-empty string/],
      ['tools/call', { name: '' }, /params\.name/],
      ['tools/call', { name: 5 }, /params\.name/],
      ['tools/call', { name: ['x'] }, /params\.name/],
      ['tools/call', { name: 'x', arguments: [] }, /params\.arguments must be an object/],
      ['tools/call', { name: 'x', arguments: 'a=1' }, /params\.arguments must be an object/],
      ['tools/call', { name: 'x', arguments: null }, /params\.arguments must be an object/],
      ['resources/read', { name: 'x' }, /needs params\.uri/],
      ['resources/read', { uri: 1 }, /needs params\.uri/],
      ['prompts/get', { name: 'p', arguments: { n: 1 } }, /values must be strings/],
      ['prompts/get', { arguments: {} }, /needs params\.name/],
    ];
    for (const [method, params, message] of table) {
      const c = mcpCall(request(method, params));
      assert.ok(!c.ok, `${method} ${JSON.stringify(params)}`);
      assert.equal(c.error.code, JSONRPC_ERROR.INVALID_PARAMS);
      assert.match(c.error.message, message);
    }
  });
});

describe('checkMetadataHeaders', () => {
  /** A request, or a notification when `id` is null. */
  const message = (method: string, params: Record<string, unknown>, id: number | null = 1) =>
    ({ jsonrpc: '2.0', ...(id === null ? {} : { id }), method, params }) as JsonRpcRequest;
  const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' };
  const modern = (extra: Record<string, string | string[]>): RequestHeaders => ({ 'mcp-protocol-version': '2026-07-28', ...extra });
  const toolCall = (name: string) => message('tools/call', { name, arguments: {}, _meta: meta });

  it('accepts headers that match the body', () => {
    assert.equal(checkMetadataHeaders(toolCall('get_weather'), modern({ 'mcp-method': 'tools/call', 'mcp-name': 'get_weather' })), undefined);
    assert.equal(checkMetadataHeaders(message('resources/read', { uri: 'file:///projects/myapp/config.json', _meta: meta }), modern({ 'mcp-method': 'resources/read', 'mcp-name': 'file:///projects/myapp/config.json' })), undefined);
    assert.equal(checkMetadataHeaders(message('tools/list', { _meta: meta }), modern({ 'mcp-method': 'tools/list' })), undefined);
  });

  it('decodes the base64 sentinel before comparing (the specification\'s examples)', () => {
    const table: Array<[string, string]> = [
      ['Hello, 世界', '=?base64?SGVsbG8sIOS4lueVjA==?='],
      [' padded ', '=?base64?IHBhZGRlZCA=?='],
      ['line1\nline2', '=?base64?bGluZTEKbGluZTI=?='],
      ['=?base64?literal?=', '=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?='],
    ];
    for (const [name, header] of table) {
      assert.equal(decodeHeaderValue(header), name);
      assert.equal(checkMetadataHeaders(toolCall(name), modern({ 'mcp-method': 'tools/call', 'mcp-name': header })), undefined, name);
    }
    assert.equal(decodeHeaderValue('us-west1'), 'us-west1');
  });

  it('refuses missing, malformed and mismatching headers with HeaderMismatch', () => {
    const table: Array<[string, JsonRpcRequest, RequestHeaders, RegExp]> = [
      ['Mcp-Method missing', toolCall('a'), modern({ 'mcp-name': 'a' }), /Mcp-Method header is missing/],
      ['Mcp-Name missing', toolCall('a'), modern({ 'mcp-method': 'tools/call' }), /Mcp-Name header is missing/],
      ['Mcp-Method different', toolCall('a'), modern({ 'mcp-method': 'tools/list', 'mcp-name': 'a' }), /Mcp-Method header does not match/],
      ['Mcp-Method in another case', toolCall('a'), modern({ 'mcp-method': 'Tools/call', 'mcp-name': 'a' }), /Mcp-Method header does not match/],
      ['Mcp-Name different', toolCall('read'), modern({ 'mcp-method': 'tools/call', 'mcp-name': 'delete' }), /Mcp-Name header does not match params\.name/],
      ['Mcp-Name repeated', toolCall('a'), modern({ 'mcp-method': 'tools/call', 'mcp-name': 'a, a' }), /Mcp-Name header does not match/],
      ['Mcp-Name as an array', toolCall('a'), modern({ 'mcp-method': 'tools/call', 'mcp-name': ['a', 'a'] }), /Mcp-Name header is malformed/],
      ['Mcp-Name with a latin-1 byte', toolCall('caf\u00e9'), modern({ 'mcp-method': 'tools/call', 'mcp-name': 'caf\u00e9' }), /Mcp-Name header is malformed/],
      ['Mcp-Name with a control character', toolCall('a\u0001'), modern({ 'mcp-method': 'tools/call', 'mcp-name': 'a\u0001' }), /malformed/],
      ['Mcp-Name base64 not padded', toolCall('Hello, 世界'), modern({ 'mcp-method': 'tools/call', 'mcp-name': '=?base64?SGVsbG8sIOS4lueVjA?=' }), /malformed base64/],
      ['Mcp-Name base64 URL alphabet', toolCall('??>'), modern({ 'mcp-method': 'tools/call', 'mcp-name': '=?base64?Pz8-?=' }), /malformed base64/],
      ['Mcp-Name base64 of invalid UTF-8', toolCall('x'), modern({ 'mcp-method': 'tools/call', 'mcp-name': '=?base64?/w==?=' }), /malformed base64/],
      ['Mcp-Name sentinel in upper case is plain text', toolCall('Hello'), modern({ 'mcp-method': 'tools/call', 'mcp-name': '=?BASE64?SGVsbG8=?=' }), /does not match/],
      ['Mcp-Name on a list', message('tools/list', { _meta: meta }), modern({ 'mcp-method': 'tools/list', 'mcp-name': 'x' }), /not expected for tools\/list/],
      ['Mcp-Name for a uri', message('resources/read', { uri: 'file:///a', name: 'file:///b', _meta: meta }), modern({ 'mcp-method': 'resources/read', 'mcp-name': 'file:///b' }), /params\.uri/],
      ['version header differs from _meta', toolCall('a'), { 'mcp-protocol-version': '2025-11-25', 'mcp-method': 'tools/call', 'mcp-name': 'a' }, /MCP-Protocol-Version header does not match/],
      ['version header missing with _meta', toolCall('a'), { 'mcp-method': 'tools/call', 'mcp-name': 'a' }, /MCP-Protocol-Version header is missing/],
      ['version header repeated', toolCall('a'), modern({ 'mcp-protocol-version': '2026-07-28, 2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'a' }), /MCP-Protocol-Version header is malformed/],
      ['legacy request with a wrong Mcp-Method', message('tools/call', { name: 'a' }), { 'mcp-protocol-version': '2025-11-25', 'mcp-method': 'tools/list' }, /Mcp-Method header does not match/],
      ['legacy request with a wrong Mcp-Name', message('tools/call', { name: 'a' }), { 'mcp-name': 'b' }, /Mcp-Name header does not match/],
      ['a later revision without Mcp-Method', message('ping', {}), { 'mcp-protocol-version': '2027-01-01' }, /Mcp-Method header is missing/],
    ];
    for (const [name, msg, headers, why] of table) {
      const problem = checkMetadataHeaders(msg, headers);
      assert.ok(problem, name);
      assert.equal(problem.code, JSONRPC_ERROR.HEADER_MISMATCH, name);
      assert.match(problem.message, /^Header mismatch: /, name);
      assert.match(problem.message, why, name);
    }
  });

  it('requires nothing of earlier revisions and of notifications', () => {
    assert.equal(checkMetadataHeaders(message('tools/call', { name: 'a' }), { 'mcp-protocol-version': '2025-11-25' }), undefined);
    assert.equal(checkMetadataHeaders(message('tools/call', { name: 'a' }), {}), undefined);
    assert.equal(checkMetadataHeaders(message('notifications/initialized', { _meta: meta }, null), modern({})), undefined);
    assert.ok(checkMetadataHeaders(message('notifications/initialized', {}, null), modern({ 'mcp-method': 'ping' })));
  });

  it('refuses metadata headers on a response', () => {
    const response = { jsonrpc: '2.0' as const, id: 1, result: {} };
    assert.equal(checkMetadataHeaders(response, { 'mcp-protocol-version': '2025-11-25' }), undefined);
    assert.match(checkMetadataHeaders(response, { 'mcp-method': 'tools/call' })?.message ?? '', /Mcp-Method header does not match/);
  });

  it('never echoes header or body values', () => {
    const problem = checkMetadataHeaders(toolCall('s3cr3t-body'), modern({ 'mcp-method': 'tools/call', 'mcp-name': 's3cr3t-header' }));
    assert.ok(problem);
    assert.doesNotMatch(problem.message, /s3cr3t/);
  });
});

describe('answers', () => {
  it('builds error responses with and without data', () => {
    assert.deepEqual(errorResponse(1, JSONRPC_ERROR.POLICY_DENIED, 'Denied by policy: deleting issues needs approval'), {
      jsonrpc: '2.0', id: 1, error: { code: -31001, message: 'Denied by policy: deleting issues needs approval' },
    });
    assert.deepEqual(errorResponse(null, JSONRPC_ERROR.RATE_LIMITED, 'Rate limited', { reason: 'agent', retryAfter: 3 }), {
      jsonrpc: '2.0', id: null, error: { code: -31004, message: 'Rate limited', data: { reason: 'agent', retryAfter: 3 } },
    });
  });

  it('keeps Mandate codes distinct and outside the range JSON-RPC reserves', () => {
    const own = [JSONRPC_ERROR.POLICY_DENIED, JSONRPC_ERROR.APPROVAL_REQUIRED, JSONRPC_ERROR.INSUFFICIENT_SCOPE, JSONRPC_ERROR.RATE_LIMITED, JSONRPC_ERROR.UPSTREAM_UNAVAILABLE, JSONRPC_ERROR.UPSTREAM_TIMEOUT];
    assert.equal(new Set(Object.values(JSONRPC_ERROR)).size, Object.values(JSONRPC_ERROR).length);
    for (const code of own) assert.ok(Number.isInteger(code) && (code > -32000 || code < -32768), String(code));
  });

  it('serialises one answer as an object and a batch as an array without notifications', () => {
    const a = errorResponse(1, -32601, 'Method not found');
    const b = { jsonrpc: '2.0' as const, id: 2, result: { ok: true } };
    assert.equal(serializeResponses({ batch: false }, [a]), JSON.stringify(a));
    assert.equal(serializeResponses({ batch: true }, [a, undefined, b]), JSON.stringify([a, b]));
    assert.equal(serializeResponses({ batch: true }, [a]), JSON.stringify([a]));
    assert.equal(serializeResponses({ batch: true }, [undefined, undefined]), undefined);
    assert.equal(serializeResponses({ batch: false }, [undefined]), undefined);
    assert.equal(serializeResponses({ batch: false }, []), undefined);
  });
});

describe('properties', () => {
  const id = fc.oneof(fc.string(), fc.maxSafeInteger());
  const method = fc.string({ minLength: 1 });
  const params = fc.option(fc.oneof(fc.dictionary(fc.string(), fc.jsonValue()), fc.array(fc.jsonValue())), { nil: undefined });
  const withParams = <T extends object>(m: T, p: unknown) => (p === undefined ? m : { ...m, params: p });
  const message = fc.oneof(
    fc.tuple(id, method, params).map(([i, m, p]) => withParams({ jsonrpc: '2.0', id: i, method: m }, p)),
    fc.tuple(method, params).map(([m, p]) => withParams({ jsonrpc: '2.0', method: m }, p)),
    fc.tuple(id, fc.jsonValue()).map(([i, r]) => ({ jsonrpc: '2.0', id: i, result: r })),
    fc.tuple(fc.option(id, { nil: null }), fc.integer(), fc.string()).map(([i, code, msg]) => ({ jsonrpc: '2.0', id: i, error: { code, message: msg } })),
  );

  it('round-trips valid messages', () => {
    fc.assert(
      fc.property(message, (m) => {
        const text = JSON.stringify(m);
        const item = parseMessages(Buffer.from(text), LARGE).items[0];
        assert.ok(item?.ok, text);
        assert.deepEqual(item.message, JSON.parse(text));
      }),
    );
  });

  it('round-trips batches of messages with distinct request ids', () => {
    fc.assert(
      fc.property(fc.uniqueArray(message, { minLength: 1, maxLength: 20, selector: (m) => ('method' in m && 'id' in m ? `r${JSON.stringify(m.id)}` : Math.random()) }), (batch) => {
        const parsed = parseMessages(JSON.stringify(batch), LARGE);
        assert.equal(parsed.batch, true);
        assert.equal(parsed.items.length, batch.length);
        for (const item of parsed.items) assert.ok(item.ok);
      }),
    );
  });

  it('accepts any JSON value a serialiser writes, up to its real depth and no further', () => {
    const depthOf = (v: unknown): number => (typeof v === 'object' && v !== null ? 1 + Math.max(0, ...Object.values(v).map(depthOf)) : 0);
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = JSON.stringify(v);
        if (Array.isArray(v) && v.length === 0) return;
        const depth = depthOf(v);
        assert.doesNotThrow(() => parseMessages(text, { ...LARGE, maxDepth: depth }), text);
        if (depth > 0) assert.throws(() => parseMessages(text, { ...LARGE, maxDepth: depth - 1 }), JsonRpcBodyError);
      }),
    );
  });

  it('throws nothing but JsonRpcBodyError, whatever the bytes', () => {
    const jsonish = fc.array(fc.constantFrom('{', '}', '[', ']', '"', '\\', ':', ',', ' ', '1', 'e9', '-', 'true', 'null', '"a"', '"jsonrpc"', '"2.0"', '"id"', '"method"', '\ufeff', '\u0000'), { maxLength: 60 }).map((parts) => parts.join(''));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)), fc.string({ unit: 'binary' }), jsonish), (body) => {
        try {
          const parsed = parseMessages(body, LIMITS);
          assert.ok(parsed.items.length >= 1);
        } catch (err) {
          assert.ok(err instanceof JsonRpcBodyError, String(err));
          assert.ok([JSONRPC_ERROR.PARSE_ERROR, JSONRPC_ERROR.INVALID_REQUEST].includes(err.rpc.code as -32700 | -32600));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('finds a member named twice wherever it is, however it is spelt', () => {
    const escape = (name: string) => [...name].map((ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue(), { minKeys: 1 }), fc.nat(), fc.boolean(), (obj, pick, escaped) => {
        const keys = Object.keys(obj);
        const dup = keys[pick % keys.length] as string;
        const inner = JSON.stringify(obj);
        const twice = `${inner.slice(0, -1)},${escaped ? `"${escape(dup)}"` : JSON.stringify(dup)}:0}`;
        const body = `{"jsonrpc":"2.0","method":"m","params":{"x":[${twice}]}}`;
        assert.throws(() => parseMessages(body, LARGE), /twice/);
      }),
    );
  });
});
