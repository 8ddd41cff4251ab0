/**
 * JSON over HTTP(S) to the Mandate server, with the limits an agent needs: a deadline per request,
 * a cap on response size, an optional private CA, and server errors turned back into MandateErrors
 * carrying the server's own code.
 */
import { readFileSync } from 'node:fs';
import { Agent, request, type Dispatcher } from 'undici';
import { MandateError, messageOf, type ErrorCode } from '../../errors.ts';

/** Largest response body accepted from the server. */
export const MAX_RESPONSE_BYTES = 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 10_000;

export interface JsonHttpOptions {
  /** Base URL of the Mandate server, e.g. `https://mandate.example.org:8443`. */
  serverUrl: string;
  /** PEM file of the CA that signed the server's TLS certificate, when it is not a public one. */
  caFile?: string;
  timeoutMs?: number;
}

export interface JsonRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  /** Exact bytes to send (already serialised, so an SVID-PoP can hash them). */
  body?: string;
  headers?: Record<string, string>;
  /** `text` returns the body as a string instead of parsing JSON (e.g. a YAML manifest). */
  accept?: 'json' | 'text';
}

/** Fallback codes for error bodies whose `error` is not a code this build knows. */
function codeForStatus(status: number): ErrorCode {
  if (status === 401) return 'ERR_UNAUTHENTICATED';
  if (status === 403) return 'ERR_FORBIDDEN';
  if (status === 404) return 'ERR_NOT_FOUND';
  if (status === 408) return 'ERR_TIMEOUT';
  if (status === 409) return 'ERR_CONFLICT';
  if (status === 413) return 'ERR_BODY_TOO_LARGE';
  if (status >= 400 && status < 500) return 'ERR_BAD_REQUEST';
  if (status === 502 || status === 503 || status === 504) return 'ERR_SERVER_UNREACHABLE';
  return 'ERR_INTERNAL';
}

function isKnownCode(code: string): code is ErrorCode {
  // MandateError.status is undefined exactly when the code is missing from the STATUS table.
  return /^ERR_[A-Z0-9_]+$/.test(code) && new MandateError(code as ErrorCode, '').status !== undefined;
}

function baseUrl(serverUrl: string): URL {
  let url: URL;
  try {
    url = new URL(serverUrl);
  } catch {
    throw new MandateError('ERR_CONFIG_INVALID', `serverUrl ${JSON.stringify(serverUrl)} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new MandateError('ERR_CONFIG_INVALID', `serverUrl must use https (or http for local development), got ${url.protocol}`);
  if (url.username || url.password) throw new MandateError('ERR_CONFIG_INVALID', 'serverUrl must not contain credentials');
  if (url.pathname !== '/' || url.search || url.hash) throw new MandateError('ERR_CONFIG_INVALID', 'serverUrl must be an origin only (no path, query or fragment), e.g. https://mandate.example.org:8443');
  return url;
}

async function readCapped(body: Dispatcher.ResponseData['body'], what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > MAX_RESPONSE_BYTES) {
      body.destroy();
      throw new MandateError('ERR_BODY_TOO_LARGE', `response to ${what} exceeds ${MAX_RESPONSE_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    throw new MandateError('ERR_SERVER_RESPONSE_INVALID', `response to ${what} is not JSON`);
  }
}

function serverError(status: number, doc: unknown, what: string): MandateError {
  const fields = typeof doc === 'object' && doc !== null ? (doc as Record<string, unknown>) : {};
  const code = typeof fields.error === 'string' && isKnownCode(fields.error) ? fields.error : codeForStatus(status);
  const message = typeof fields.message === 'string' && fields.message !== '' ? fields.message : `${what} failed with HTTP ${status}`;
  return new MandateError(code, message);
}

/**
 * A small JSON client bound to one Mandate server.
 *
 * @example
 *   const http = new JsonHttp({ serverUrl: 'https://mandate.example.org', caFile: '/etc/mandate/ca.pem' });
 *   const doc = await http.send({ method: 'GET', path: '/v1/bundles' });
 */
export class JsonHttp {
  readonly #base: URL;
  readonly #timeoutMs: number;
  readonly #dispatcher: Agent;

  constructor(opts: JsonHttpOptions) {
    this.#base = baseUrl(opts.serverUrl);
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(this.#timeoutMs) || this.#timeoutMs <= 0) throw new MandateError('ERR_CONFIG_INVALID', `timeoutMs must be a positive number, got ${opts.timeoutMs}`);
    let ca: Buffer | undefined;
    if (opts.caFile !== undefined) {
      if (this.#base.protocol !== 'https:') throw new MandateError('ERR_CONFIG_INVALID', 'caFile is set but serverUrl does not use https');
      try {
        ca = readFileSync(opts.caFile);
      } catch (err) {
        throw new MandateError('ERR_CONFIG_INVALID', `caFile ${opts.caFile} cannot be read: ${messageOf(err)}`);
      }
    }
    this.#dispatcher = new Agent(ca ? { connect: { ca } } : {});
  }

  /** Sends one request; resolves with the parsed JSON of a 2xx answer, throws MandateError otherwise. */
  async send(req: JsonRequest): Promise<unknown> {
    const what = `${req.method} ${req.path}`;
    const headers: Record<string, string> = { accept: req.accept === 'text' ? '*/*' : 'application/json', ...req.headers };
    if (req.body !== undefined) headers['content-type'] = 'application/json';
    let res: Dispatcher.ResponseData;
    try {
      res = await request(new URL(req.path, this.#base), {
        method: req.method,
        headers,
        body: req.body,
        dispatcher: this.#dispatcher,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      throw transportError(err, what, this.#timeoutMs);
    }
    const declared = Number(res.headers['content-length'] ?? 0);
    if (declared > MAX_RESPONSE_BYTES) {
      res.body.destroy();
      throw new MandateError('ERR_BODY_TOO_LARGE', `response to ${what} declares ${declared} bytes, more than ${MAX_RESPONSE_BYTES}`);
    }
    let bytes: Buffer;
    try {
      bytes = await readCapped(res.body, what);
    } catch (err) {
      if (err instanceof MandateError) throw err;
      throw transportError(err, what, this.#timeoutMs);
    }
    if (res.statusCode < 200 || res.statusCode > 299) {
      let doc: unknown;
      try {
        doc = JSON.parse(bytes.toString('utf8'));
      } catch {
        doc = undefined;
      }
      throw serverError(res.statusCode, doc, what);
    }
    return req.accept === 'text' ? bytes.toString('utf8') : parseJson(bytes, what);
  }

  /** Closes pooled connections. */
  async close(): Promise<void> {
    await this.#dispatcher.close();
  }
}

function transportError(err: unknown, what: string, timeoutMs: number): MandateError {
  const name = (err as { name?: string } | null)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') return new MandateError('ERR_TIMEOUT', `${what} got no answer within ${timeoutMs} ms`, { cause: err });
  return new MandateError('ERR_SERVER_UNREACHABLE', `${what} failed: ${messageOf(err)}`, { cause: err });
}
