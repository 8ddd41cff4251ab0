import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { context, propagation, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { createLogger } from './logger.ts';
import { OtlpReceiver } from './otlp-receiver.fixture.ts';
import { currentTraceIds, injectTraceContext, startTracing, tracedFetch, withSpan, type Tracing } from './tracing.ts';

const NO_EXPORT = { otlpEndpoint: undefined, serviceName: 'mandate', sampleRatio: 1 };
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/;

describe('tracing', () => {
  let receiver: OtlpReceiver;
  let exporting: Tracing;

  before(async () => {
    receiver = await OtlpReceiver.start();
    exporting = await startTracing({ otlpEndpoint: receiver.url, serviceName: 'mandate-unit', sampleRatio: 1 }, { replica: 'replica-a' });
  });
  after(async () => {
    await exporting.shutdown();
    await receiver.close();
  });

  it('can be started again in the same process without an endpoint', async () => {
    const second = await startTracing(NO_EXPORT);
    await second.shutdown();
    await second.shutdown();
  });

  it('gives the active span\'s ids, and none outside a span', () => {
    assert.equal(currentTraceIds(), undefined);
    const ids = withSpan('outer', {}, (span) => {
      const current = currentTraceIds();
      assert.ok(current);
      assert.equal(current.spanId, span.spanContext().spanId);
      return current;
    });
    assert.match(ids.traceId, /^[0-9a-f]{32}$/);
    assert.notEqual(ids.traceId, '0'.repeat(32));
    assert.equal(currentTraceIds(), undefined);
  });

  it('keeps the span active across awaits and makes nested spans its children', async () => {
    const [outer, inner] = await withSpan('outer', {}, async () => {
      const o = currentTraceIds();
      await new Promise((r) => setTimeout(r, 5));
      const i = await withSpan('inner', {}, async () => currentTraceIds());
      return [o, i];
    });
    assert.ok(outer && inner);
    assert.equal(inner.traceId, outer.traceId);
    assert.notEqual(inner.spanId, outer.spanId);
  });

  it('rethrows what fn throws or rejects with', async () => {
    assert.throws(() => withSpan('sync failure', {}, () => { throw new Error('sync boom'); }), /sync boom/);
    await assert.rejects(withSpan('async failure', {}, async () => { throw Object.assign(new Error('async boom'), { code: 'ERR_TEST' }); }), /async boom/);
  });

  it('injects traceparent of the active span into header records and Headers', () => {
    withSpan('outgoing', {}, (span) => {
      const { traceId, spanId } = span.spanContext();
      const record = injectTraceContext<Record<string, string>>({ accept: 'application/json' });
      assert.equal(record.accept, 'application/json');
      assert.equal(record.traceparent, `00-${traceId}-${spanId}-01`);
      const headers = injectTraceContext(new Headers({ accept: 'application/json' }));
      assert.equal(headers.get('traceparent'), `00-${traceId}-${spanId}-01`);
    });
    assert.equal(injectTraceContext({} as Record<string, string>).traceparent, undefined, 'nothing outside a span');
  });

  it('follows an incoming trace context and ignores a malformed one', () => {
    const incoming = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const ctx = propagation.extract(ROOT_CONTEXT, { traceparent: incoming });
    const child = context.with(ctx, () => withSpan('child', {}, () => currentTraceIds()));
    assert.equal(child?.traceId, '0af7651916cd43dd8448eb211c80319c');
    for (const bad of ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331', 'ff-00000000000000000000000000000000-b7ad6b7169203331-01', 'garbage', '00-' + 'z'.repeat(32) + '-b7ad6b7169203331-01']) {
      const badCtx = propagation.extract(ROOT_CONTEXT, { traceparent: bad });
      assert.equal(trace.getSpanContext(badCtx), undefined, bad);
      const fresh = context.with(badCtx, () => withSpan('fresh', {}, () => currentTraceIds()));
      assert.ok(fresh, bad);
      assert.notEqual(fresh.traceId, '0af7651916cd43dd8448eb211c80319c');
    }
  });

  it('samples new traces at the ratio, follows a sampled parent, and has ids either way', async () => {
    const never = await startTracing({ ...NO_EXPORT, sampleRatio: 0 });
    try {
      withSpan('unsampled', {}, (span) => {
        assert.equal(span.isRecording(), false);
        assert.ok(currentTraceIds(), 'ids exist for logs and audit events');
        assert.match(injectTraceContext({} as Record<string, string>).traceparent ?? '', /-00$/, 'passed on as not sampled');
      });
      const sampled = propagation.extract(ROOT_CONTEXT, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
      context.with(sampled, () => withSpan('follows parent', {}, (span) => assert.equal(span.isRecording(), true)));
    } finally {
      await never.shutdown();
      await (await startTracing(NO_EXPORT)).shutdown(); // back to sampling everything
    }
  });

  it('makes each request of a wrapped fetch a client span and passes the trace context', async () => {
    const seen: Array<string | null> = [];
    const fetchLike = tracedFetch(async (_url: string, init: { method?: string; headers?: HeadersInit }) => {
      seen.push(new Headers(init.headers).get('traceparent'));
      return { status: 204 };
    });
    const parent = await withSpan('caller', {}, async () => {
      await fetchLike('https://idp.example/jwks?secret=1', { method: 'GET', headers: { accept: 'application/json' } });
      return currentTraceIds();
    });
    await exporting.flush();
    const [, traceId, spanId] = TRACEPARENT.exec(seen[0] ?? '') ?? [];
    assert.equal(traceId, parent?.traceId);
    assert.notEqual(spanId, parent?.spanId, 'the header names the client span, not the caller');
    const client = await receiver.waitFor((s) => s.spanId === spanId);
    assert.equal(client.kind, 3);
    assert.equal(client.parentSpanId, parent?.spanId);
    assert.equal(client.attributes['url.full'], 'https://idp.example/jwks', 'no query string');
    assert.equal(client.attributes['http.response.status_code'], 204);
  });

  it('exports spans over OTLP/HTTP with service name, instance, parents and error status', async () => {
    const ids = withSpan('exported parent', { 'test.attribute': 'yes' }, () => {
      const parent = currentTraceIds();
      try {
        withSpan('exported child', {}, () => { throw Object.assign(new Error('child failed'), { code: 'ERR_TEST' }); });
      } catch { /* expected */ }
      return parent;
    });
    await exporting.flush();
    const parent = await receiver.waitFor((s) => s.name === 'exported parent');
    const child = await receiver.waitFor((s) => s.name === 'exported child');
    assert.equal(parent.traceId, ids?.traceId);
    assert.equal(parent.spanId, ids?.spanId);
    assert.equal(parent.attributes['test.attribute'], 'yes');
    assert.equal(child.traceId, parent.traceId);
    assert.equal(child.parentSpanId, parent.spanId);
    assert.equal(child.status, 2, 'error status');
    assert.equal(child.attributes['error.type'], 'ERR_TEST');
    assert.equal(parent.resource['service.name'], 'mandate-unit');
    assert.equal(parent.resource['service.instance.id'], 'replica-a');
    assert.equal(parent.scope, 'mandate');
    assert.deepEqual(receiver.rejected, []);
  });

  it('reports a refused export: flush rejects, shutdown logs a warning and succeeds', async () => {
    const refusing = createServer((_req, res) => res.writeHead(400, { 'content-type': 'application/json' }).end('{}'));
    await new Promise<void>((done) => refusing.listen(0, '127.0.0.1', done));
    let logText = '';
    const logger = createLogger({ level: 'debug', destination: new Writable({ write(c, _e, done) { logText += c.toString(); done(); } }) });
    const failing = await startTracing({ otlpEndpoint: `http://127.0.0.1:${(refusing.address() as AddressInfo).port}/v1/traces`, serviceName: 'refused', sampleRatio: 1 }, { logger });
    try {
      withSpan('refused by the collector', {}, () => undefined);
      await assert.rejects(failing.flush(), /Bad Request/);
      withSpan('refused again', {}, () => undefined);
      await failing.shutdown();
      const line = logText.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: string; component?: string }).find((l) => l.component === 'tracing');
      assert.equal(line?.level, 'warn', logText);
    } finally {
      await failing.shutdown();
      refusing.close();
    }
  });

  it('sends each start\'s spans to its own collector under its own service name, and stops on shutdown', async () => {
    const other = await OtlpReceiver.start();
    try {
      const second = await startTracing({ otlpEndpoint: other.url, serviceName: 'mandate-second', sampleRatio: 1 });
      withSpan('seen by both', {}, () => undefined);
      await second.shutdown();
      await exporting.flush();
      const there = await other.waitFor((s) => s.name === 'seen by both');
      assert.equal(there.resource['service.name'], 'mandate-second');
      const here = await receiver.waitFor((s) => s.name === 'seen by both');
      assert.equal(here.resource['service.name'], 'mandate-unit');
      withSpan('after shutdown', {}, () => undefined);
      await exporting.flush();
      await receiver.waitFor((s) => s.name === 'after shutdown');
      assert.equal(other.spans.some((s) => s.name === 'after shutdown'), false);
    } finally {
      await other.close();
    }
  });
});
