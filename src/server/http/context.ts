/**
 * The small HTTP core shared by every Mandate listener: bounded body reading, JSON replies, coded
 * errors. No framework: these few functions are all the admin and identity APIs need, and they keep
 * the limits (body size, content type, path shape) in one place.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MandateError } from '../../errors.ts';

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  path: string;
  query: URLSearchParams;
  params: Record<string, string>;
  sourceAddress: string;
  maxBodyBytes: number;
  /** Raw body, read once on demand. */
  body(): Promise<Buffer>;
  /** Body parsed as JSON (content type must be application/json). */
  json(): Promise<unknown>;
}

export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(new MandateError('ERR_BODY_TOO_LARGE', `request body of ${declared} bytes exceeds the limit of ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new MandateError('ERR_BODY_TOO_LARGE', `request body exceeds the limit of ${limit} bytes`));
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', (err) => reject(new MandateError('ERR_BAD_REQUEST', `request body could not be read: ${err.message}`)));
  });
}

export function parseJsonBody(req: IncomingMessage, body: Buffer): unknown {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new MandateError('ERR_UNSUPPORTED_MEDIA_TYPE', `content type must be application/json (got ${type || 'none'})`);
  }
  if (body.length === 0) throw new MandateError('ERR_BAD_REQUEST', 'request body is empty; a JSON object was expected');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new MandateError('ERR_BAD_REQUEST', `request body is not valid JSON: ${(err as Error).message}`);
  }
}

const COMMON_HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { ...COMMON_HEADERS, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType: string): void {
  res.writeHead(status, { ...COMMON_HEADERS, 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, err: MandateError, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, err.status, err.toJSON(), headers);
}
