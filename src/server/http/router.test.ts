import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { MandateError } from '../../errors.ts';
import { createLogger } from '../../observability/logger.ts';
import { registry } from '../../observability/metrics.ts';
import { OtlpReceiver } from '../../observability/otlp-receiver.fixture.ts';
import { currentTraceIds, startTracing, type Tracing } from '../../observability/tracing.ts';
import { sendJson } from './context.ts';
import { Router } from './router.ts';

const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';

async function series(name: string, labels: Record<string, string>): Promise<number> {
  const { values } = await (registry.getSingleMetric(name) as NonNullable<ReturnType<typeof registry.getSingleMetric>>).get();
  return values
    .filter((v) => Object.entries(labels).every(([k, l]) => String((v.labels as Record<string, unknown>)[k]) === l))
    .filter((v) => (v as { metricName?: string }).metricName === undefined || (v as { metricName?: string }).metricName === `${name}_count`)
    .reduce((sum, v) => sum + v.value, 0);
}

/** A raw request, so methods and paths fetch() would normalise reach the server as sent. */
function send(url: string, method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, path, headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('router observability', () => {
  let server: Server;
  let url: string;
  let receiver: OtlpReceiver;
  let tracing: Tracing;
  let logText = '';

  before(async () => {
    receiver = await OtlpReceiver.start();
    tracing = await startTracing({ otlpEndpoint: receiver.url, serviceName: 'router-test', sampleRatio: 1 });
    const logger = createLogger({ level: 'debug', destination: new Writable({ write(c, _e, done) { logText += c.toString(); done(); } }) });
    const router = new Router({ logger, maxBodyBytes: 1024 })
      .on('GET', '/items/:id', (ctx) => {
        logger.info({ item: ctx.params.id }, 'item read');
        sendJson(ctx.res, 200, { id: ctx.params.id, trace: currentTraceIds() });
      })
      .on('POST', '/items', () => { throw new MandateError('ERR_CONFLICT', 'exists'); })
      .on('GET', '/boom', () => { throw new Error('unexpected'); });
    server = createServer(router.handle);
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((done) => server.close(done));
    await tracing.shutdown();
    await receiver.close();
  });

  it('counts and times requests by route pattern, method and status, never by raw path', async () => {
    const labels = { route: '/items/:id', method: 'GET', status: '200' };
    const before = await series('mandate_http_requests_total', labels);
    const timed = await series('mandate_http_request_duration_seconds', { route: '/items/:id', method: 'GET' });
    for (const id of ['a', 'b', 'c']) assert.equal((await send(url, 'GET', `/items/${id}?q=1`)).status, 200);
    assert.equal(await series('mandate_http_requests_total', labels), before + 3);
    assert.equal(await series('mandate_http_request_duration_seconds', { route: '/items/:id', method: 'GET' }), timed + 3);
    const text = await registry.metrics();
    assert.doesNotMatch(text, /route="\/items\/a"/);
  });

  it('labels unknown paths "unmatched", unknown methods "_OTHER", and keeps the pattern on 405', async () => {
    const unmatched = await series('mandate_http_requests_total', { route: 'unmatched', method: 'GET', status: '404' });
    const other = await series('mandate_http_requests_total', { route: 'unmatched', method: '_OTHER', status: '404' });
    const notAllowed = await series('mandate_http_requests_total', { route: '/items/:id', method: 'DELETE', status: '405' });
    const bad = await series('mandate_http_requests_total', { route: 'unmatched', method: 'GET', status: '400' });
    assert.equal((await send(url, 'GET', '/nothing/here')).status, 404);
    assert.equal((await send(url, 'PROPFIND', '/nothing')).status, 404);
    assert.equal((await send(url, 'DELETE', '/items/a')).status, 405);
    assert.equal((await send(url, 'GET', '/items/%2e%2e')).status, 400);
    assert.equal(await series('mandate_http_requests_total', { route: 'unmatched', method: 'GET', status: '404' }), unmatched + 1);
    assert.equal(await series('mandate_http_requests_total', { route: 'unmatched', method: '_OTHER', status: '404' }), other + 1);
    assert.equal(await series('mandate_http_requests_total', { route: '/items/:id', method: 'DELETE', status: '405' }), notAllowed + 1);
    assert.equal(await series('mandate_http_requests_total', { route: 'unmatched', method: 'GET', status: '400' }), bad + 1);
  });

  it('continues the caller\'s trace in a SERVER span named by method and route, with no query string', async () => {
    const res = await send(url, 'GET', '/items/x1?access_token=should-not-appear', { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, tracestate: 'vendor=1' });
    const { trace } = JSON.parse(res.body) as { trace: { traceId: string; spanId: string } };
    assert.equal(trace.traceId, CLIENT_TRACE);
    await tracing.flush();
    const span = await receiver.waitFor((s) => s.spanId === trace.spanId);
    assert.equal(span.name, 'GET /items/:id');
    assert.equal(span.kind, 2);
    assert.equal(span.parentSpanId, CLIENT_SPAN);
    assert.equal(span.attributes['http.route'], '/items/:id');
    assert.equal(span.attributes['http.request.method'], 'GET');
    assert.equal(span.attributes['http.response.status_code'], 200);
    assert.equal(span.attributes['url.path'], '/items/x1');
    assert.equal(span.attributes['url.scheme'], 'http');
    assert.doesNotMatch(JSON.stringify(span), /should-not-appear/);
    const line = logText.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.item === 'x1');
    assert.equal(line?.trace_id, CLIENT_TRACE, 'the handler\'s log line carries the trace id');
  });

  it('ignores a malformed traceparent: a new trace, a normal answer', async () => {
    for (const traceparent of ['00-zzzz-00f067aa0ba902b7-01', `00-${'0'.repeat(32)}-${CLIENT_SPAN}-01`, `00-${CLIENT_TRACE}-${CLIENT_SPAN}`, 'x'.repeat(4000)]) {
      const res = await send(url, 'GET', '/items/y', { traceparent });
      assert.equal(res.status, 200, traceparent.slice(0, 40));
      const { trace } = JSON.parse(res.body) as { trace?: { traceId: string } };
      assert.match(trace?.traceId ?? '', /^[0-9a-f]{32}$/);
      assert.notEqual(trace?.traceId, CLIENT_TRACE);
      assert.notEqual(trace?.traceId, '0'.repeat(32));
    }
  });

  it('marks a 500 as an error and answers it without detail', async () => {
    const res = await send(url, 'GET', '/boom', { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` });
    assert.equal(res.status, 500);
    assert.doesNotMatch(res.body, /unexpected/);
    await tracing.flush();
    const span = await receiver.waitFor((s) => s.name === 'GET /boom');
    assert.equal(span.status, 2);
    assert.equal(span.traceId, CLIENT_TRACE);
    const conflict = await send(url, 'POST', '/items');
    assert.equal(conflict.status, 409);
    await tracing.flush();
    assert.equal((await receiver.waitFor((s) => s.name === 'POST /items')).status, 0, 'a refusal is not a server error');
  });
});
