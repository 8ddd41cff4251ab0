/**
 * One GET of a bundle endpoint: redirects followed by hand (each target re-validated), a size limit
 * enforced while reading, and one deadline for the whole exchange so a slow server cannot hold a poll.
 * The fetch is a client span and passes the trace context on (`traceparent`).
 */
import { request, type Dispatcher } from 'undici';
import { MandateError, messageOf } from '../../errors.ts';
import { clientSpanAttributes, injectTraceContext, SpanKind, withSpan } from '../../observability/tracing.ts';
import { redirectTarget } from './endpoint.ts';

export interface FetchBundleOptions {
  dispatcher: Dispatcher;
  timeoutMs: number;
  maxBytes: number;
  /** Aborts the fetch early, e.g. when the federation manager stops. */
  signal?: AbortSignal;
  maxRedirects?: number;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function unavailable(message: string, cause?: unknown): MandateError {
  return new MandateError('ERR_BUNDLE_UNAVAILABLE', message, cause === undefined ? undefined : { cause });
}

/** Drops a response body. undici reports a destroyed, unread body as an 'error' event, expected here. */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => undefined);
  body.destroy();
}

async function readLimited(body: Dispatcher.ResponseData['body'], maxBytes: number, url: URL): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      discard(body);
      throw new MandateError('ERR_BUNDLE_INVALID', `${url.href} sent more than ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

async function exchange(url: URL, opts: FetchBundleOptions, signal: AbortSignal): Promise<Uint8Array> {
  let current = url;
  for (let hop = 0; ; hop++) {
    const res = await request(current, { method: 'GET', dispatcher: opts.dispatcher, signal, headers: injectTraceContext({ accept: 'application/json' }) });
    if (REDIRECTS.has(res.statusCode)) {
      discard(res.body);
      if (hop >= (opts.maxRedirects ?? 3)) throw unavailable(`${url.href}: too many redirects`);
      const location = res.headers.location;
      if (typeof location !== 'string') throw unavailable(`${current.href} answered HTTP ${res.statusCode} without a Location`);
      // Followed for this fetch only; the next poll starts from the configured URL again (§5.2.1.4).
      current = redirectTarget(current, location);
      continue;
    }
    if (res.statusCode !== 200) {
      discard(res.body);
      throw unavailable(`${current.href} answered HTTP ${res.statusCode}`);
    }
    const declared = Number(res.headers['content-length']);
    if (declared > opts.maxBytes) {
      discard(res.body);
      throw new MandateError('ERR_BUNDLE_INVALID', `${current.href} announced ${declared} bytes, more than ${opts.maxBytes}`);
    }
    return readLimited(res.body, opts.maxBytes, current);
  }
}

/** The reason hidden in undici's error chain (refused, TLS, DNS), which operators need to see. */
function describe(err: unknown): string {
  const cause = err instanceof Error ? err.cause : undefined;
  return cause === undefined ? messageOf(err) : `${messageOf(err)}: ${messageOf(cause)}`;
}

/**
 * Fetches the raw bundle document at `url`.
 *
 * @throws MandateError ERR_BUNDLE_UNAVAILABLE (network, TLS, HTTP status, redirects, timeout) or
 *   ERR_BUNDLE_INVALID (response over `maxBytes`).
 * @example const bytes = await fetchBundleDocument(new URL(u), { dispatcher: new Agent(), timeoutMs: 10_000, maxBytes: 1 << 20 });
 */
export function fetchBundleDocument(url: URL, opts: FetchBundleOptions): Promise<Uint8Array> {
  return withSpan('federation bundle fetch', clientSpanAttributes('GET', url), () => fetchOnce(url, opts), { kind: SpanKind.CLIENT });
}

async function fetchOnce(url: URL, opts: FetchBundleOptions): Promise<Uint8Array> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, opts.timeoutMs);
  timer.unref();
  const onAbort = (): void => controller.abort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (opts.signal?.aborted) throw unavailable(`fetch of ${url.href} was cancelled`);
    return await exchange(url, opts, controller.signal);
  } catch (err) {
    if (timedOut) throw unavailable(`${url.href} did not answer within ${opts.timeoutMs} ms`, err);
    if (err instanceof MandateError) throw err;
    if (controller.signal.aborted) throw unavailable(`fetch of ${url.href} was cancelled`, err);
    throw unavailable(`cannot fetch ${url.href}: ${describe(err)}`, err);
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
