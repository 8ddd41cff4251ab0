import type { IncomingMessage, ServerResponse } from 'node:http';
import { MandateError } from '../../errors.ts';
import type { Logger } from '../../observability/logger.ts';
import { parseJsonBody, readBody, sendError, type RequestContext } from './context.ts';

export type Handler = (ctx: RequestContext) => Promise<void> | void;

interface Route {
  method: string;
  segments: string[];
  handler: Handler;
}

/** Paths we refuse before routing: traversal, empty segments, encoded separators, control characters. */
function assertCleanPath(path: string): void {
  if (path.length > 2048) throw new MandateError('ERR_BAD_REQUEST', 'request path is too long');
  if (!path.startsWith('/')) throw new MandateError('ERR_BAD_REQUEST', 'request path must start with /');
  if (/%2f|%5c|%2e|\\|[\x00-\x1f\x7f]/i.test(path)) throw new MandateError('ERR_BAD_REQUEST', 'request path contains encoded separators, dots or control characters');
  if (path.split('/').slice(1).some((s, i, all) => s === '.' || s === '..' || (s === '' && i < all.length - 1))) {
    throw new MandateError('ERR_BAD_REQUEST', 'request path contains empty, "." or ".." segments');
  }
}

function decodeSegment(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new MandateError('ERR_BAD_REQUEST', 'request path contains malformed percent-encoding');
  }
}

/**
 * Exact-segment router with `:param` segments. Unknown path -> 404, known path with another method
 * -> 405 with Allow. Every error becomes a coded JSON reply; unexpected errors are logged and
 * answered with a generic 500 that leaks nothing.
 */
export class Router {
  readonly #routes: Route[] = [];

  constructor(private readonly opts: { logger: Logger; maxBodyBytes: number }) {}

  on(method: string, pattern: string, handler: Handler): this {
    this.#routes.push({ method, segments: pattern.split('/').slice(1), handler });
    return this;
  }

  #match(path: string): Array<{ route: Route; params: Record<string, string> }> {
    const parts = path.split('/').slice(1);
    const found: Array<{ route: Route; params: Record<string, string> }> = [];
    for (const route of this.#routes) {
      if (route.segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      const ok = route.segments.every((seg, i) => {
        const part = parts[i] as string;
        if (seg.startsWith(':')) {
          if (part === '') return false;
          params[seg.slice(1)] = decodeSegment(part);
          return true;
        }
        return seg === part;
      });
      if (ok) found.push({ route, params });
    }
    return found;
  }

  handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      assertCleanPath(path);
      const matches = this.#match(path);
      if (matches.length === 0) throw new MandateError('ERR_NOT_FOUND', `no route for ${path}`);
      const method = req.method ?? 'GET';
      const hit = matches.find((m) => m.route.method === method || (method === 'HEAD' && m.route.method === 'GET'));
      if (!hit) {
        const allow = [...new Set(matches.map((m) => m.route.method))].join(', ');
        sendError(res, new MandateError('ERR_METHOD_NOT_ALLOWED', `method ${method} is not allowed on ${path} (allowed: ${allow})`), { allow });
        return;
      }
      let body: Promise<Buffer> | undefined;
      const ctx: RequestContext = {
        req, res, method, path,
        query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)),
        params: hit.params,
        sourceAddress: req.socket.remoteAddress ?? '',
        maxBodyBytes: this.opts.maxBodyBytes,
        body: () => (body ??= readBody(req, this.opts.maxBodyBytes)),
        json: async () => parseJsonBody(req, await ctx.body()),
      };
      await hit.route.handler(ctx);
    } catch (err) {
      if (err instanceof MandateError) {
        if (err.code === 'ERR_BODY_TOO_LARGE') res.setHeader('connection', 'close');
        sendError(res, err);
        return;
      }
      this.opts.logger.error({ err }, 'unhandled error in request handler');
      sendError(res, new MandateError('ERR_INTERNAL', 'internal error'));
    }
  };
}
