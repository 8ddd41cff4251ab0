/**
 * The router every Mandate listener dispatches through; also where each request gets its server span
 * and its request metrics, so no handler has to.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { context, propagation, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import {
  ATTR_CLIENT_ADDRESS, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_HTTP_ROUTE, ATTR_URL_PATH, ATTR_URL_SCHEME,
} from '@opentelemetry/semantic-conventions';
import { MandateError } from '../../errors.ts';
import type { Logger } from '../../observability/logger.ts';
import { httpRequestDuration, httpRequests } from '../../observability/metrics.ts';
import { SpanKind, SpanStatusCode, tracer, type Span } from '../../observability/tracing.ts';
import { parseJsonBody, readBody, sendError, type RequestContext } from './context.ts';

export type Handler = (ctx: RequestContext) => Promise<void> | void;

interface Route {
  method: string;
  /** As registered, e.g. `/admin/v1/entries/:id`: the `http.route` of spans and the `route` label of metrics. */
  pattern: string;
  segments: string[];
  handler: Handler;
}

/** Methods that keep their name in metrics and spans; any other is `_OTHER` (bounded label values). */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
/** The `route` label of requests that matched no route. */
const UNMATCHED = 'unmatched';

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
 *
 * Each request runs in a SERVER span named `<METHOD> <route pattern>`, child of the caller's W3C
 * `traceparent` when it sends a valid one (an invalid one is ignored: a new trace starts), and is
 * counted and timed by route pattern, method and status. The span carries no query string and no
 * header values.
 */
export class Router {
  readonly #routes: Route[] = [];

  constructor(private readonly opts: { logger: Logger; maxBodyBytes: number }) {}

  on(method: string, pattern: string, handler: Handler): this {
    this.#routes.push({ method, pattern, segments: pattern.split('/').slice(1), handler });
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

  handle = (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = performance.now();
    const method = KNOWN_METHODS.has(req.method ?? '') ? (req.method as string) : '_OTHER';
    const parent = propagation.extract(ROOT_CONTEXT, req.headers);
    const span = tracer.startSpan(method, {
      kind: SpanKind.SERVER,
      attributes: {
        [ATTR_HTTP_REQUEST_METHOD]: method,
        [ATTR_URL_SCHEME]: (req.socket as TLSSocket).encrypted ? 'https' : 'http',
        [ATTR_CLIENT_ADDRESS]: req.socket.remoteAddress ?? '',
      },
    }, parent);
    const seen: { route?: string } = {};
    return context.with(trace.setSpan(parent, span), () => this.#dispatch(req, res, span, seen)).finally(() => {
      const route = seen.route ?? UNMATCHED;
      const status = res.statusCode;
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      httpRequests.inc({ route, method, status });
      httpRequestDuration.observe({ route, method }, (performance.now() - started) / 1000);
    });
  };

  /** Routes one request; records the matched route pattern in `seen` for the span and metrics. */
  async #dispatch(req: IncomingMessage, res: ServerResponse, span: Span, seen: { route?: string }): Promise<void> {
    try {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      assertCleanPath(path);
      span.setAttribute(ATTR_URL_PATH, path);
      const matches = this.#match(path);
      if (matches.length === 0) throw new MandateError('ERR_NOT_FOUND', `no route for ${path}`);
      seen.route = (matches[0] as { route: Route }).route.pattern;
      const method = req.method ?? 'GET';
      const hit = matches.find((m) => m.route.method === method || (method === 'HEAD' && m.route.method === 'GET'));
      if (!hit) {
        const allow = [...new Set(matches.map((m) => m.route.method))].join(', ');
        sendError(res, new MandateError('ERR_METHOD_NOT_ALLOWED', `method ${method} is not allowed on ${path} (allowed: ${allow})`), { allow });
        return;
      }
      seen.route = hit.route.pattern;
      // A hit's method is a registered one, so the name stays within the known methods.
      span.updateName(`${method} ${hit.route.pattern}`);
      span.setAttribute(ATTR_HTTP_ROUTE, hit.route.pattern);
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
  }
}
