/**
 * JSON-RPC 2.0 as the gateway reads it from agents: a single message or a batch, parsed within
 * limits, each message checked on its own, MCP requests classified for the policy engine, the
 * 2026-07-28 request metadata headers (`Mcp-Method`, `Mcp-Name`, `MCP-Protocol-Version`) checked
 * against the body, and the error responses the gateway gives.
 *
 * The gateway decides on the body it parsed while the upstream executes the body it receives, so
 * anything two JSON parsers may read differently is refused rather than guessed at: duplicate
 * member names (`{"name":"read","name":"delete"}` is "delete" to JSON.parse and "read" to a
 * first-wins parser), numbers beyond the double range (JSON.parse turns them into Infinity), a
 * byte order mark (RFC 8259 §8.1 forbids sending one), and invalid UTF-8. What remains —
 * integers beyond 2^53 lose precision here — cannot pass a policy that types them (`Long` needs a
 * safe integer).
 *
 * Nesting is measured by an iterative scan of the text before JSON.parse builds anything, so a
 * 100k-deep body costs one pass and no stack. `__proto__` members stay plain data: JSON.parse
 * defines them as own properties and nothing here copies with assignment.
 *
 * Batches: JSON-RPC 2.0 batches are accepted (the MCP SDK's server takes them, and 2025-03-26
 * defined them) and each element succeeds or fails on its own; neither 2025-11-25 nor 2026-07-28
 * Streamable HTTP sends them, so a deployment that wants none sets `maxBatch` to 1.
 */
import { decodeBase64Std } from '../../audit/base64.ts';
import { MandateError, type ErrorCode } from '../../errors.ts';
import type { McpMethod } from '../../policy/decide.ts';

// ---------------------------------------------------------------------------------------------
// Error codes

/**
 * The JSON-RPC error codes the gateway answers with.
 *
 * | code   | name                  | when                                                                     |
 * |--------|-----------------------|--------------------------------------------------------------------------|
 * | -32700 | PARSE_ERROR           | the body is not JSON text (empty, invalid UTF-8, byte order mark, syntax) |
 * | -32600 | INVALID_REQUEST       | not a valid JSON-RPC message; body too large, too deep, bad batch        |
 * | -32601 | METHOD_NOT_FOUND      | the method is unknown                                                    |
 * | -32602 | INVALID_PARAMS        | the params of an MCP method are malformed (tools/call without a name)    |
 * | -32603 | INTERNAL_ERROR        | the gateway failed                                                       |
 * | -32020 | HEADER_MISMATCH       | MCP 2026-07-28 `HeaderMismatch`: metadata headers missing, malformed or not matching the body |
 * | -31001 | POLICY_DENIED         | Mandate: policy denied the call                                          |
 * | -31002 | APPROVAL_REQUIRED     | Mandate: policy requires a person's approval, which is not yet available |
 * | -31003 | INSUFFICIENT_SCOPE    | Mandate: the token lacks the scope this tool needs                       |
 * | -31004 | RATE_LIMITED          | Mandate: a rate limit is exhausted; `data.retryAfter` in seconds         |
 * | -31005 | UPSTREAM_UNAVAILABLE  | Mandate: the tool server cannot be reached or failed                     |
 * | -31006 | UPSTREAM_TIMEOUT      | Mandate: the tool server did not answer in time                          |
 *
 * Mandate's own codes lie outside the range JSON-RPC reserves (-32768..-32000) on purpose: MCP
 * 2026-07-28 keeps -32020..-32099 for codes the specification defines (an implementation must not
 * emit others from it), calls -32000..-32019 legacy that new implementations should not use, and
 * asks for new codes outside the reserved range; JSON-RPC leaves the rest of the space to
 * applications. These values are stable: agents `switch` on them.
 */
export const JSONRPC_ERROR = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  HEADER_MISMATCH: -32020,
  POLICY_DENIED: -31001,
  APPROVAL_REQUIRED: -31002,
  INSUFFICIENT_SCOPE: -31003,
  RATE_LIMITED: -31004,
  UPSTREAM_UNAVAILABLE: -31005,
  UPSTREAM_TIMEOUT: -31006,
} as const;

// ---------------------------------------------------------------------------------------------
// Message types

export type JsonRpcId = string | number;
export type JsonRpcParams = Record<string, unknown> | unknown[];

export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

/**
 * What Mandate puts in `error.data`: the reason, the deciding policies and when to retry — never
 * secrets, argument values or upstream internals.
 */
export interface MandateErrorData {
  reason?: string;
  policies?: string[];
  /** Seconds, as in `Retry-After`. */
  retryAfter?: number;
}

export interface JsonRpcRequest {
  jsonrpc: '2.0';
  id: JsonRpcId;
  method: string;
  params?: JsonRpcParams;
}

export interface JsonRpcNotification {
  jsonrpc: '2.0';
  method: string;
  params?: JsonRpcParams;
}

export interface JsonRpcResultResponse {
  jsonrpc: '2.0';
  id: JsonRpcId;
  result: unknown;
}

export interface JsonRpcErrorResponse {
  jsonrpc: '2.0';
  /** Null only when the id of the message answered could not be read. */
  id: JsonRpcId | null;
  error: JsonRpcErrorObject;
}

export type JsonRpcResponse = JsonRpcResultResponse | JsonRpcErrorResponse;
export type JsonRpcMessage = JsonRpcRequest | JsonRpcNotification | JsonRpcResponse;

/** One message of a body: valid (with its kind) or refused (with the error to answer it with). */
export type ParsedItem =
  | { ok: true; kind: 'request'; message: JsonRpcRequest }
  | { ok: true; kind: 'notification'; message: JsonRpcNotification }
  | { ok: true; kind: 'response'; message: JsonRpcResponse }
  | { ok: false; error: JsonRpcErrorObject; id: JsonRpcId | null };

export interface ParsedBody {
  /** The body was an array; answers go back as an array too. */
  batch: boolean;
  items: ParsedItem[];
}

export interface JsonRpcLimits {
  /** Largest body in bytes (UTF-8). */
  maxBytes: number;
  /** Most messages in one batch. */
  maxBatch: number;
  /** Deepest nesting of arrays and objects; the message object itself is depth 1 (2 in a batch). */
  maxDepth: number;
}

/**
 * A body refused as a whole. `rpc` is the error to answer with (id null, as JSON-RPC requires
 * when no id could be read); `status` (from the MandateError code) is 413 for a body over the
 * size limit and 400 otherwise.
 */
export class JsonRpcBodyError extends MandateError {
  readonly rpc: JsonRpcErrorObject;

  constructor(code: ErrorCode, rpcCode: number, message: string) {
    super(code, message);
    this.rpc = { code: rpcCode, message };
  }

  /** The error response for this body. */
  response(): JsonRpcErrorResponse {
    return errorResponse(null, this.rpc.code, this.rpc.message);
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const parseError = (why: string) => new JsonRpcBodyError('ERR_BAD_REQUEST', JSONRPC_ERROR.PARSE_ERROR, `Parse error: ${why}`);
const invalidBody = (why: string) => new JsonRpcBodyError('ERR_BAD_REQUEST', JSONRPC_ERROR.INVALID_REQUEST, `Invalid Request: ${why}`);

/**
 * Parses a request body: one JSON-RPC message or a batch. Pass the body's bytes; a string is
 * taken as text already decoded (its UTF-8 length counts against `maxBytes`).
 *
 * @throws JsonRpcBodyError when the body as a whole is refused: empty, larger than `maxBytes`,
 *   invalid UTF-8, a byte order mark, not JSON, duplicate member names, a number beyond the double
 *   range, nested deeper than `maxDepth`, an empty batch or one longer than `maxBatch`. Nothing
 *   else is thrown, whatever the bytes.
 * @example
 *   const body = parseMessages(buf, { maxBytes: 1 << 20, maxBatch: 32, maxDepth: 64 });
 *   for (const item of body.items) if (item.ok && item.kind === 'request') ...
 */
export function parseMessages(body: Buffer | string, limits: JsonRpcLimits): ParsedBody {
  const bytes = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  if (bytes > limits.maxBytes) {
    throw new JsonRpcBodyError('ERR_BODY_TOO_LARGE', JSONRPC_ERROR.INVALID_REQUEST, `Invalid Request: the body is larger than ${limits.maxBytes} bytes`);
  }
  let text: string;
  if (typeof body === 'string') {
    text = body;
  } else {
    try {
      text = utf8.decode(body);
    } catch {
      throw parseError('the body is not valid UTF-8');
    }
  }
  if (text.charCodeAt(0) === 0xfeff) throw parseError('the body starts with a byte order mark');
  const problem = scanJsonText(text, limits.maxDepth);
  if (problem !== undefined) throw problem;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // The engine's message quotes the body, which may hold secrets: say only what is wrong.
    throw parseError('the body is not valid JSON');
  }
  if (!Array.isArray(value)) return { batch: false, items: [validateMessage(value)] };
  if (value.length === 0) throw invalidBody('the batch is empty');
  if (value.length > limits.maxBatch) throw invalidBody(`the batch has more than ${limits.maxBatch} messages`);
  const items = new Array<ParsedItem>(value.length);
  const ids = new Set<JsonRpcId>();
  for (let i = 0; i < value.length; i++) items[i] = batchItem(validateMessage(value[i]), ids);
  return { batch: true, items };
}

/** Answers to a batch are matched by id, so a request id may appear only once in it. */
function batchItem(item: ParsedItem, ids: Set<JsonRpcId>): ParsedItem {
  if (!item.ok || item.kind !== 'request') return item;
  if (ids.has(item.message.id)) return invalidItem('the id repeats an earlier request of the batch', null);
  ids.add(item.message.id);
  return item;
}

const BRACE_OPEN = 0x7b;
const BRACE_CLOSE = 0x7d;
const BRACKET_OPEN = 0x5b;
const BRACKET_CLOSE = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const MINUS = 0x2d;

/** Per open container: an array, an object with no member yet, its one name, or its names. */
type Container = typeof IN_ARRAY | typeof IN_EMPTY_OBJECT | string | Set<string>;
const IN_ARRAY = 0;
const IN_EMPTY_OBJECT = 1;

/**
 * One pass over the text, before JSON.parse: the first non-whitespace character, the nesting
 * depth, duplicate member names and numbers beyond the double range. Invalid JSON is left for
 * JSON.parse to refuse; the scan only has to be right about valid JSON and never throw.
 */
function scanJsonText(text: string, maxDepth: number): JsonRpcBodyError | undefined {
  const n = text.length;
  let i = 0;
  while (i < n && isJsonSpace(text.charCodeAt(i))) i++;
  if (i === n) return parseError('the body is empty');
  const stack: Container[] = [];
  let expectName = false;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === BRACE_OPEN || c === BRACKET_OPEN) {
      if (stack.length === maxDepth) return invalidBody(`the body is nested deeper than ${maxDepth} levels`);
      stack.push(c === BRACE_OPEN ? IN_EMPTY_OBJECT : IN_ARRAY);
      expectName = c === BRACE_OPEN;
      i++;
    } else if (c === BRACE_CLOSE || c === BRACKET_CLOSE) {
      stack.pop();
      expectName = false;
      i++;
    } else if (c === COMMA) {
      expectName = stack.length > 0 && stack[stack.length - 1] !== IN_ARRAY;
      i++;
    } else if (c === QUOTE) {
      const end = stringEnd(text, i);
      if (end < 0) return undefined;
      if (expectName) {
        const name = memberName(text, i, end);
        if (name === undefined) return undefined;
        const top = stack.length - 1;
        const seen = stack[top] as Container;
        if (seen === IN_EMPTY_OBJECT) stack[top] = name;
        else if (typeof seen === 'string') {
          if (seen === name) return duplicateName(name);
          stack[top] = new Set([seen, name]);
        } else if (typeof seen !== 'number') {
          if (seen.has(name)) return duplicateName(name);
          seen.add(name);
        }
        expectName = false;
      }
      i = end + 1;
    } else if (c === MINUS || (c >= 0x30 && c <= 0x39)) {
      const start = i;
      let exponent = false;
      while (i < n && isNumberChar(text.charCodeAt(i))) {
        const d = text.charCodeAt(i) | 0x20;
        if (d === 0x65) exponent = true; // e or E
        i++;
      }
      // Only an exponent or more than 308 digits can leave the double range.
      if ((exponent || i - start > 308) && Math.abs(Number(text.slice(start, i))) === Infinity) {
        return invalidBody('a number is beyond the range of a double');
      }
    } else {
      i++;
    }
  }
  return undefined;
}

function duplicateName(name: string): JsonRpcBodyError {
  return invalidBody(`an object has the member ${JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}...` : name)} twice`);
}

function isJsonSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function isNumberChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2b || c === MINUS || c === 0x65 || c === 0x45;
}

/** Index of the quote closing the string opened at `start`, or -1 when it never closes. */
function stringEnd(text: string, start: number): number {
  let from = start + 1;
  for (;;) {
    const q = text.indexOf('"', from);
    if (q < 0) return -1;
    let backslashes = 0;
    while (text.charCodeAt(q - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return q;
    from = q + 1;
  }
}

/** The member name between the quotes at `start` and `end`, unescaped; undefined if malformed. */
function memberName(text: string, start: number, end: number): string | undefined {
  const raw = text.slice(start + 1, end);
  if (!raw.includes('\\')) return raw;
  try {
    return JSON.parse(text.slice(start, end + 1)) as string;
  } catch {
    return undefined;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isId(value: unknown): value is JsonRpcId {
  return typeof value === 'string' || Number.isSafeInteger(value);
}

function invalidItem(why: string, id: JsonRpcId | null): ParsedItem {
  return { ok: false, id, error: { code: JSONRPC_ERROR.INVALID_REQUEST, message: `Invalid Request: ${why}` } };
}

const has = Object.hasOwn;

/**
 * One message checked against JSON-RPC 2.0 as MCP uses it: `jsonrpc` "2.0"; a request has a
 * string or safe-integer id (MCP forbids null), a notification none; `method` a non-empty string;
 * `params` an object or array; a response exactly one of `result` and `error`, its id null only
 * with an error. Members beyond these are kept for the upstream.
 */
function validateMessage(value: unknown): ParsedItem {
  if (!isPlainObject(value)) return invalidItem('a message must be a JSON object', null);
  const id = has(value, 'id') && isId(value.id) ? value.id : null;
  if (value.jsonrpc !== '2.0') return invalidItem('"jsonrpc" must be "2.0"', id);
  if (has(value, 'method')) {
    if (typeof value.method !== 'string' || value.method.length === 0) return invalidItem('"method" must be a non-empty string', id);
    if (has(value, 'result') || has(value, 'error')) return invalidItem('a request cannot carry "result" or "error"', id);
    if (has(value, 'params') && (typeof value.params !== 'object' || value.params === null)) return invalidItem('"params" must be an object or an array', id);
    if (!has(value, 'id')) return { ok: true, kind: 'notification', message: value as unknown as JsonRpcNotification };
    if (id === null) return invalidItem('"id" must be a string or an integer', null);
    return { ok: true, kind: 'request', message: value as unknown as JsonRpcRequest };
  }
  if (!has(value, 'id')) return invalidItem('a message needs "method" (request, notification) or "id" (response)', null);
  const hasResult = has(value, 'result');
  const hasError = has(value, 'error');
  if (hasResult === hasError) return invalidItem('a response must have exactly one of "result" and "error"', id);
  if (id === null && (value.id !== null || hasResult)) return invalidItem('"id" must be a string or an integer', null);
  if (hasError && !isErrorObject(value.error)) return invalidItem('"error" must be an object with an integer "code" and a string "message"', id);
  return { ok: true, kind: 'response', message: value as unknown as JsonRpcResponse };
}

function isErrorObject(value: unknown): value is JsonRpcErrorObject {
  return isPlainObject(value) && Number.isSafeInteger(value.code) && typeof value.message === 'string';
}

// ---------------------------------------------------------------------------------------------
// MCP classification

/**
 * What an MCP message asks for, as policy sees it:
 * - `tool`: `tools/call` (name, arguments);
 * - `resource`: `resources/read` and `resources/subscribe` (name = the URI; subscribing reads
 *   the resource as it changes);
 * - `prompt`: `prompts/get` (name, arguments);
 * - `list`: `tools/list`, `resources/list`, `resources/templates/list`, `prompts/list`, whose
 *   results the gateway filters;
 * - `lifecycle`: protocol plumbing that reaches no tool or data: `initialize`, `ping`,
 *   `server/discover`, `subscriptions/listen`, `logging/setLevel`, `resources/unsubscribe`,
 *   every `notifications/*`;
 * - `other`: anything else (`completion/complete`, `tasks/*`, methods of later revisions), for
 *   the gateway to refuse unless configured otherwise.
 */
export type McpCallKind = 'tool' | 'resource' | 'prompt' | 'list' | 'lifecycle' | 'other';

export interface McpCall {
  ok: true;
  method: string;
  kind: McpCallKind;
  /** The tool or prompt name, or the resource URI. */
  name?: string;
  /** The tool's or prompt's arguments, when given. */
  arguments?: Record<string, unknown>;
  /** The method a policy decision is asked for (`DecisionRequest.action.method`), if any. */
  policyMethod?: McpMethod;
}

export interface McpCallError {
  ok: false;
  /** Invalid params (-32602), naming what is wrong. */
  error: JsonRpcErrorObject;
}

const LISTS: Readonly<Record<string, McpMethod>> = {
  'tools/list': 'tools/list',
  'resources/list': 'resources/list',
  'resources/templates/list': 'resources/list',
  'prompts/list': 'prompts/list',
};
const LIFECYCLE = new Set(['initialize', 'ping', 'server/discover', 'subscriptions/listen', 'logging/setLevel', 'resources/unsubscribe']);

/**
 * Classifies an MCP request or notification for the policy engine.
 *
 * @example
 *   const call = mcpCall(item.message);
 *   if (!call.ok) return errorResponse(item.message.id, call.error.code, call.error.message);
 *   if (call.kind === 'tool') decide({ ..., action: { kind: 'mcp', method: 'tools/call', server, tool: { name: call.name! }, arguments: call.arguments } });
 */
export function mcpCall(message: JsonRpcRequest | JsonRpcNotification): McpCall | McpCallError {
  const method = message.method;
  switch (method) {
    case 'tools/call':
      return named(message, 'tool', 'name', 'tools/call', toolArguments);
    case 'prompts/get':
      return named(message, 'prompt', 'name', 'prompts/get', promptArguments);
    case 'resources/read':
    case 'resources/subscribe':
      return named(message, 'resource', 'uri', 'resources/read');
  }
  const list = has(LISTS, method) ? LISTS[method] : undefined;
  if (list !== undefined) return { ok: true, method, kind: 'list', policyMethod: list };
  if (LIFECYCLE.has(method) || method.startsWith('notifications/')) return { ok: true, method, kind: 'lifecycle' };
  return { ok: true, method, kind: 'other' };
}

type ArgumentsCheck = (args: unknown, method: string) => string | undefined;

function named(
  message: JsonRpcRequest | JsonRpcNotification,
  kind: 'tool' | 'prompt' | 'resource',
  field: 'name' | 'uri',
  policyMethod: McpMethod,
  checkArguments?: ArgumentsCheck,
): McpCall | McpCallError {
  const method = message.method;
  const params = message.params;
  if (!isPlainObject(params)) return invalidParams(`${method} needs params, an object`);
  const name = params[field];
  if (typeof name !== 'string' || name.length === 0) return invalidParams(`${method} needs params.${field}, a non-empty string`);
  const call: McpCall = { ok: true, method, kind, name, policyMethod };
  if (checkArguments === undefined || !has(params, 'arguments') || params.arguments === undefined) return call;
  const problem = checkArguments(params.arguments, method);
  if (problem !== undefined) return invalidParams(problem);
  call.arguments = params.arguments as Record<string, unknown>;
  return call;
}

const toolArguments: ArgumentsCheck = (args, method) => (isPlainObject(args) ? undefined : `${method}: params.arguments must be an object`);

/** MCP prompt arguments are a map of strings. */
const promptArguments: ArgumentsCheck = (args, method) => {
  if (!isPlainObject(args)) return `${method}: params.arguments must be an object`;
  for (const key in args) if (has(args, key) && typeof args[key] !== 'string') return `${method}: params.arguments values must be strings`;
  return undefined;
};

function invalidParams(why: string): McpCallError {
  return { ok: false, error: { code: JSONRPC_ERROR.INVALID_PARAMS, message: `Invalid params: ${why}` } };
}

// ---------------------------------------------------------------------------------------------
// Request metadata headers (MCP 2026-07-28, Streamable HTTP "Request Metadata")

/** The first protocol revision whose requests mirror body fields into headers. */
export const METADATA_HEADERS_SINCE = '2026-07-28';
const META_PROTOCOL_VERSION = 'io.modelcontextprotocol/protocolVersion';
const BASE64_SENTINEL = /^=\?base64\?(.*)\?=$/s;
const VERSION_TOKEN = /^[A-Za-z0-9._-]+$/;
const DATE_VERSION = /^\d{4}-\d{2}-\d{2}$/;
const NAME_FIELD: Readonly<Record<string, 'name' | 'uri'>> = { 'tools/call': 'name', 'prompts/get': 'name', 'resources/read': 'uri' };

/** Request headers as Node gives them: lower-case names. */
export type RequestHeaders = Readonly<Record<string, string | string[] | undefined>>;

/**
 * Checks the request metadata headers against the body, per MCP 2026-07-28 "Server Validation":
 * `MCP-Protocol-Version` must equal `params._meta["io.modelcontextprotocol/protocolVersion"]`
 * when the body carries one; `Mcp-Method` must equal `method`; `Mcp-Name` must equal
 * `params.name` (tools/call, prompts/get) or `params.uri` (resources/read), after decoding the
 * `=?base64?...?=` sentinel form. For a request of 2026-07-28 or later, `Mcp-Method` (and
 * `Mcp-Name` where it applies) are required. Earlier revisions defined neither header, but one
 * that is present is still checked: something in front of the gateway may have routed on it.
 * Headers describe one message, so in a batch (which no revision with these headers sends) any
 * present header is checked against each message and a batch of different methods fails.
 *
 * @returns the `HeaderMismatch` (-32020) error to answer with status 400, or undefined.
 *   The message names the header, never the values.
 */
export function checkMetadataHeaders(message: JsonRpcMessage, headers: RequestHeaders): JsonRpcErrorObject | undefined {
  const method = has(message, 'method') ? (message as JsonRpcRequest).method : undefined;
  const params = method !== undefined && isPlainObject((message as JsonRpcRequest).params) ? ((message as JsonRpcRequest).params as Record<string, unknown>) : undefined;

  const version = headers['mcp-protocol-version'];
  if (version !== undefined && (typeof version !== 'string' || !VERSION_TOKEN.test(version))) return mismatch('the MCP-Protocol-Version header is malformed');
  const meta = params?._meta;
  if (isPlainObject(meta) && has(meta, META_PROTOCOL_VERSION)) {
    if (version === undefined) return mismatch('the MCP-Protocol-Version header is missing');
    if (meta[META_PROTOCOL_VERSION] !== version) return mismatch(`the MCP-Protocol-Version header does not match params._meta["${META_PROTOCOL_VERSION}"]`);
  }
  const modern = version !== undefined && DATE_VERSION.test(version) && version >= METADATA_HEADERS_SINCE;
  const isRequest = method !== undefined && has(message, 'id');

  const methodHeader = headers['mcp-method'];
  if (methodHeader !== undefined) {
    if (typeof methodHeader !== 'string' || !isHeaderSafe(methodHeader)) return mismatch('the Mcp-Method header is malformed');
    if (methodHeader !== method) return mismatch('the Mcp-Method header does not match the method');
  } else if (modern && isRequest) {
    return mismatch('the Mcp-Method header is missing');
  }

  const field = method !== undefined && has(NAME_FIELD, method) ? NAME_FIELD[method] : undefined;
  const nameHeader = headers['mcp-name'];
  if (nameHeader !== undefined) {
    if (typeof nameHeader !== 'string' || !isHeaderSafe(nameHeader)) return mismatch('the Mcp-Name header is malformed');
    const name = decodeHeaderValue(nameHeader);
    if (name === undefined) return mismatch('the Mcp-Name header has a malformed base64 value');
    if (field === undefined) return mismatch(`the Mcp-Name header is not expected for ${method === undefined ? 'a response' : method}`);
    if (name !== params?.[field]) return mismatch(`the Mcp-Name header does not match params.${field}`);
  } else if (modern && isRequest && field !== undefined) {
    return mismatch('the Mcp-Name header is missing');
  }
  return undefined;
}

function mismatch(why: string): JsonRpcErrorObject {
  return { code: JSONRPC_ERROR.HEADER_MISMATCH, message: `Header mismatch: ${why}` };
}

/** RFC 9110 field value characters the specification allows: visible ASCII, space, tab. */
function isHeaderSafe(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c > 0x7e) return false;
  }
  return true;
}

/**
 * A mirrored header value as the body would hold it: `=?base64?...?=` decoded (strict padded
 * base64 of UTF-8), anything else as is. Undefined when the sentinel wraps something malformed.
 */
export function decodeHeaderValue(value: string): string | undefined {
  const encoded = BASE64_SENTINEL.exec(value);
  if (encoded === null) return value;
  const bytes = decodeBase64Std(encoded[1] as string);
  if (bytes === undefined) return undefined;
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Answers

/**
 * An error response. `message` names the reason; `data` may carry {@link MandateErrorData}
 * and must never carry secrets or upstream internals.
 */
export function errorResponse(id: JsonRpcId | null, code: number, message: string, data?: unknown): JsonRpcErrorResponse {
  const error: JsonRpcErrorObject = data === undefined ? { code, message } : { code, message, data };
  return { jsonrpc: '2.0', id, error };
}

/** The error response for a refused item of a parsed body. */
export function itemErrorResponse(item: Extract<ParsedItem, { ok: false }>): JsonRpcErrorResponse {
  return { jsonrpc: '2.0', id: item.id, error: item.error };
}

/**
 * The HTTP body answering a parsed request body: one object for a single message, an array for
 * a batch (JSON-RPC 2.0 §6), with no entry for notifications (pass `undefined` for them, or leave
 * them out). Undefined when there is nothing to answer: the caller then answers 202 Accepted
 * with no body.
 */
export function serializeResponses(body: Pick<ParsedBody, 'batch'>, responses: ReadonlyArray<JsonRpcResponse | undefined>): string | undefined {
  const answers = responses.filter((r): r is JsonRpcResponse => r !== undefined);
  if (answers.length === 0) return undefined;
  if (!body.batch && answers.length === 1) return JSON.stringify(answers[0]);
  if (!body.batch) throw new MandateError('ERR_INTERNAL', 'a single message has more than one answer');
  return JSON.stringify(answers);
}
