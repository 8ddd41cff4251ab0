/**
 * A minimal OTLP/HTTP traces receiver for tests: a real HTTP server on 127.0.0.1 that accepts what
 * the OTLP exporter posts to `/v1/traces` (OTLP/JSON, see
 * https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding) and keeps the spans, flattened
 * with their resource's attributes. Anything else it answers with 400 or 404, and remembers why.
 *
 * @example
 *   const receiver = await OtlpReceiver.start();
 *   // ... export to receiver.url ...
 *   const span = await receiver.waitFor((s) => s.name === 'token exchange');
 *   await receiver.close();
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** Empty for a root span. */
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client. */
  kind: number;
  attributes: Record<string, unknown>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  status: number;
  resource: Record<string, unknown>;
  scope: string;
}

interface OtlpAnyValue {
  stringValue?: string;
  intValue?: number | string;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: OtlpAnyValue[] };
}
type OtlpAttributes = Array<{ key: string; value: OtlpAnyValue }> | undefined;

function valueOf(v: OtlpAnyValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(valueOf);
  return undefined;
}

function attributesOf(list: OtlpAttributes): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((a) => [a.key, valueOf(a.value)]));
}

interface ExportRequest {
  resourceSpans?: Array<{
    resource?: { attributes?: OtlpAttributes };
    scopeSpans?: Array<{
      scope?: { name?: string };
      spans?: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string; kind?: number; attributes?: OtlpAttributes; status?: { code?: number } }>;
    }>;
  }>;
}

function flatten(body: ExportRequest): ReceivedSpan[] {
  return (body.resourceSpans ?? []).flatMap((rs) => {
    const resource = attributesOf(rs.resource?.attributes);
    return (rs.scopeSpans ?? []).flatMap((ss) => (ss.spans ?? []).map((s) => ({
      traceId: s.traceId,
      spanId: s.spanId,
      parentSpanId: s.parentSpanId ?? '',
      name: s.name,
      kind: s.kind ?? 0,
      attributes: attributesOf(s.attributes),
      status: s.status?.code ?? 0,
      resource,
      scope: ss.scope?.name ?? '',
    })));
  });
}

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  /** Requests it could not accept, with the reason. */
  readonly rejected: string[] = [];
  readonly #waiters = new Set<() => void>();

  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(): Promise<OtlpReceiver> {
    let receiver: OtlpReceiver | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => (receiver as OtlpReceiver).#accept(req.method, req.url, req.headers['content-type'], Buffer.concat(chunks), res));
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    receiver = new OtlpReceiver(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`);
    return receiver;
  }

  #accept(method: string | undefined, url: string | undefined, type: string | undefined, body: Buffer, res: import('node:http').ServerResponse): void {
    const refuse = (status: number, why: string) => {
      this.rejected.push(why);
      res.writeHead(status).end();
    };
    if (method !== 'POST' || url !== '/v1/traces') return refuse(404, `${method} ${url}`);
    if (!(type ?? '').startsWith('application/json')) return refuse(400, `content type ${type}`);
    let parsed: ExportRequest;
    try {
      parsed = JSON.parse(body.toString('utf8')) as ExportRequest;
    } catch {
      return refuse(400, 'body is not JSON');
    }
    this.spans.push(...flatten(parsed));
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    for (const wake of this.#waiters) wake();
  }

  /** The first received span that matches, waiting up to `timeoutMs` for it. */
  waitFor(match: (span: ReceivedSpan) => boolean, timeoutMs = 10_000): Promise<ReceivedSpan> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.spans.find(match);
        if (found === undefined) return;
        this.#waiters.delete(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`no matching span within ${timeoutMs} ms; received: ${this.spans.map((s) => s.name).join(', ') || 'none'}`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  close(): Promise<void> {
    return new Promise((done) => this.server.close(() => done()));
  }
}
