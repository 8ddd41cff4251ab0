/**
 * OpenTelemetry traces: the process's tracer provider and the small helpers the rest of Mandate uses
 * to make spans, read the current trace ids and pass W3C trace context to the servers it calls.
 *
 * The helpers need only @opentelemetry/api and cost next to nothing until `startTracing` registers a
 * provider: before that (CLI commands, unit tests) spans are no-ops and no ids exist. The SDK and the
 * OTLP exporter are loaded by `startTracing` alone, so commands that never trace do not pay for them.
 *
 * One provider per process. Every Mandate started in the process (tests start several) adds its own
 * exporter to it and removes it on shutdown; spans are created whether or not anything exports them,
 * so logs and audit events carry trace ids and `traceparent` is passed on. The sampler is
 * ParentBased(TraceIdRatioBased): a caller's sampling decision is followed, new traces are sampled at
 * the ratio of the most recent start.
 *
 * @example
 *   const tracing = await startTracing(config.observability.traces, { replica: 'mandate-0' });
 *   await withSpan('token exchange', { 'oauth.grant_type': grant }, async (span) => { ... });
 *   await request(url, { headers: injectTraceContext({ accept: 'application/json' }) });
 *   await tracing.shutdown();
 */
import {
  context,
  diag,
  DiagLogLevel,
  isSpanContextValid,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TextMapSetter,
} from '@opentelemetry/api';
import { ATTR_ERROR_TYPE, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_URL_FULL } from '@opentelemetry/semantic-conventions';
import type { Resource } from '@opentelemetry/resources';
import type { Sampler, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-node';
import type { ObservabilityConfig } from '../config/types.ts';
import type { Logger } from './logger.ts';

export { SpanKind, SpanStatusCode, type Attributes, type Span };

/** Mandate's tracer. A no-op until `startTracing` registers a provider. */
export const tracer = trace.getTracer('mandate');

export interface Tracing {
  /** Exports the spans that ended so far now, instead of with the next batch; rejects if the export fails. */
  flush(): Promise<void>;
  /**
   * Flushes this start's exporter and detaches it; the process's provider stays registered. Never
   * rejects: a failed last export is reported like any other (a warning in the log).
   */
  shutdown(): Promise<void>;
}

export interface StartTracingOptions {
  /** `service.instance.id` of the exported spans, e.g. the replica name. */
  replica?: string;
  /** Receives the exporter's own warnings and errors (collector unreachable...). */
  logger?: Logger;
}

interface ProcessTracing {
  /** Span processors of the running starts; each exports to one collector. */
  processors: Set<SpanProcessor>;
  /** Samples new traces (no parent); replaced by each start. */
  root: Sampler;
}

let shared: Promise<ProcessTracing> | undefined;

/**
 * Registers the process's tracer provider on the first call (AsyncLocalStorage context, W3C trace
 * context propagation) and, when `otlpEndpoint` is set, exports this start's spans there over
 * OTLP/HTTP (JSON) in batches. Safe to call again in the same process.
 */
export async function startTracing(config: ObservabilityConfig['traces'], opts: StartTracingOptions = {}): Promise<Tracing> {
  const sdk = await import('@opentelemetry/sdk-trace-node');
  const state = await (shared ??= register());
  state.root = new sdk.TraceIdRatioBasedSampler(config.sampleRatio);
  if (opts.logger) routeDiagnostics(opts.logger);
  if (config.otlpEndpoint === undefined) return { flush: async () => undefined, shutdown: async () => undefined };

  const [{ OTLPTraceExporter }, { resourceFromAttributes }, { ATTR_SERVICE_NAME, ATTR_SERVICE_INSTANCE_ID }] = await Promise.all([
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/semantic-conventions'),
  ]);
  const resource = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: config.serviceName,
    ...(opts.replica !== undefined && { [ATTR_SERVICE_INSTANCE_ID]: opts.replica }),
  });
  const exporter = withResource(new OTLPTraceExporter({ url: config.otlpEndpoint }), resource);
  const processor = new sdk.BatchSpanProcessor(exporter);
  state.processors.add(processor);
  let stopped: Promise<void> | undefined;
  return {
    flush: () => processor.forceFlush(),
    shutdown: () => (stopped ??= (async () => {
      state.processors.delete(processor);
      await processor.shutdown().catch((err: unknown) => diag.error(`the last spans could not be exported: ${err instanceof Error ? err.message : String(err)}`));
    })()),
  };
}

async function register(): Promise<ProcessTracing> {
  const [sdk, { W3CTraceContextPropagator }] = await Promise.all([import('@opentelemetry/sdk-trace-node'), import('@opentelemetry/core')]);
  const state: ProcessTracing = { processors: new Set(), root: new sdk.AlwaysOnSampler() };
  const fanOut: SpanProcessor = {
    onStart: (span, parent) => state.processors.forEach((p) => p.onStart(span, parent)),
    onEnd: (span) => state.processors.forEach((p) => p.onEnd(span)),
    forceFlush: async () => void (await Promise.all([...state.processors].map((p) => p.forceFlush()))),
    shutdown: async () => undefined,
  };
  const root: Sampler = {
    shouldSample: (...args) => state.root.shouldSample(...args),
    toString: () => `MandateRoot{${state.root.toString()}}`,
  };
  const provider = new sdk.NodeTracerProvider({ sampler: new sdk.ParentBasedSampler({ root }), spanProcessors: [fanOut] });
  provider.register({ propagator: new W3CTraceContextPropagator() });
  return state;
}

/**
 * Puts one start's resource (service name, instance) on the spans it exports: the provider, shared
 * by every start in the process, cannot carry one per start.
 */
function withResource(exporter: SpanExporter, resource: Resource): SpanExporter {
  return {
    export: (spans, done) => exporter.export(spans.map((s) => Object.create(s, { resource: { value: resource } })), done),
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  };
}

/** OpenTelemetry reports export failures through its diagnostics channel: send them to the log. */
function routeDiagnostics(logger: Logger): void {
  const log = logger.child({ component: 'tracing' });
  diag.setLogger({
    error: (message) => log.warn(message),
    warn: (message) => log.warn(message),
    info: () => undefined,
    debug: () => undefined,
    verbose: () => undefined,
  }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
}

/**
 * Runs `fn` in a new span, child of the active one. A throw (or a rejection) marks the span as an
 * error, with the exception and its code recorded, and is rethrown; the span ends when `fn` returns
 * or its promise settles. Works for synchronous and asynchronous `fn`.
 */
export function withSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => T, opts: { kind?: SpanKind } = {}): T {
  return tracer.startActiveSpan(name, { attributes, kind: opts.kind ?? SpanKind.INTERNAL }, (span) => {
    let result: T;
    try {
      result = fn(span);
    } catch (err) {
      failSpan(span, err);
      span.end();
      throw err;
    }
    if (result instanceof Promise) {
      return result.then(
        (value) => {
          span.end();
          return value;
        },
        (err: unknown) => {
          failSpan(span, err);
          span.end();
          throw err;
        },
      ) as T;
    }
    span.end();
    return result;
  });
}

/** Marks a span as failed by `err`: status, `error.type` (the error's code or name), the exception. */
export function failSpan(span: Span, err: unknown): void {
  const code = (err as { code?: unknown; error?: unknown } | null)?.code ?? (err as { error?: unknown } | null)?.error;
  span.setAttribute(ATTR_ERROR_TYPE, typeof code === 'string' ? code : err instanceof Error ? err.name : 'error');
  if (err instanceof Error) span.recordException(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : undefined });
}

/** The trace and span ids of the active span, when there is a valid one. */
export function currentTraceIds(ctx: Context = context.active()): { traceId: string; spanId: string } | undefined {
  const spanContext = trace.getSpan(ctx)?.spanContext();
  if (spanContext === undefined || !isSpanContextValid(spanContext)) return undefined;
  return { traceId: spanContext.traceId, spanId: spanContext.spanId };
}

const headersSetter: TextMapSetter<Headers> = { set: (carrier, key, value) => carrier.set(key, value) };

/**
 * Adds the active trace context (`traceparent`, `tracestate`) to headers of an outgoing request and
 * returns them. Nothing is added when there is no active span or tracing was not started.
 */
export function injectTraceContext<H extends Record<string, string> | Headers>(headers: H): H {
  if (headers instanceof Headers) propagation.inject(context.active(), headers, headersSetter);
  else propagation.inject(context.active(), headers);
  return headers;
}

/** The attributes of a client span for a request to `url`; the query is left out (it may carry secrets). */
export function clientSpanAttributes(method: string, url: URL): Attributes {
  return {
    [ATTR_HTTP_REQUEST_METHOD]: method,
    [ATTR_URL_FULL]: `${url.origin}${url.pathname}`,
    [ATTR_SERVER_ADDRESS]: url.hostname,
    [ATTR_SERVER_PORT]: Number(url.port) || (url.protocol === 'https:' ? 443 : 80),
  };
}

/** The shape of fetch that openid-client and jose take as a custom fetch. */
type FetchLike<I, R> = (url: string, init: I) => Promise<R>;

/**
 * Wraps a fetch function so each request is a client span and carries the trace context. For
 * libraries that take a custom fetch (openid-client, jose) and build their own request headers.
 */
export function tracedFetch<I extends { method?: string; headers?: HeadersInit }, R extends { status: number }>(inner: FetchLike<I, R>): FetchLike<I, R> {
  return (url, init) => {
    const method = init.method ?? 'GET';
    return withSpan(method, clientSpanAttributes(method, new URL(url)), async (span) => {
      const res = await inner(url, { ...init, headers: injectTraceContext(new Headers(init.headers)) });
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, res.status);
      return res;
    }, { kind: SpanKind.CLIENT });
  };
}
