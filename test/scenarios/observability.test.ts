/**
 * Scenario: a Mandate exporting traces to a real OTLP/HTTP receiver on 127.0.0.1 and serving
 * Prometheus metrics. An agent enrols and exchanges a mandate for an OBO token with a W3C
 * `traceparent` of its own: the receiver gets the request's server span in the caller's trace, with
 * the exchange, attestation, SVID and policy spans as its children, under the configured service
 * name. /metrics is scraped over HTTP and parsed; a traced admin call reaches a federation bundle
 * endpoint with the same trace id, which its log lines carry too; a malformed `traceparent` starts a
 * new trace and changes nothing else.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OtlpReceiver } from '../../src/observability/otlp-receiver.fixture.ts';
import { DpopSigner } from '../../src/sdk/agent/dpop.ts';
import { delegationYaml, enrolAgent, ISSUES, mandateExchange, type EnrolledAgent } from '../support/delegation.ts';
import { ADD_COMMENT_DECISION } from '../support/decisions.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const AGENT = 'spiffe://example.org/agent/triage-bot';
const PARTNER = 'partner.example';

/** A fresh caller-side trace context: what an instrumented client would send. */
function callerTrace(): { traceId: string; spanId: string; traceparent: string } {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
}

interface Sample { name: string; labels: Record<string, string>; value: number }

/** The Prometheus text format (0.0.4), as far as this test needs it: TYPE lines and samples. */
function parsePrometheus(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1] as string, type[2] as string);
      continue;
    }
    if (line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(sample, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k as string] = v as string;
    samples.push({ name: sample[1] as string, labels, value: Number(sample[3]) });
  }
  return { types, samples };
}

/** Sum of the samples of `name` whose labels include `labels`. */
function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((sum, s) => sum + s.value, 0);
}

describe('observability', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-observability-'));
  let receiver: OtlpReceiver;
  let partner: Server;
  const partnerRequests: IncomingHttpHeaders[] = [];
  let m: TestMandate;
  let agent: EnrolledAgent;
  let mandateId: string;
  /** Tokens and proofs this scenario handled: none may reach a span. */
  const secrets: string[] = [];

  const scrape = async () => {
    const res = await fetch(`${m.url}/metrics`);
    assert.equal(res.status, 200);
    return { contentType: res.headers.get('content-type') ?? '', ...parsePrometheus(await res.text()) };
  };

  /** A token exchange as the agent, with DPoP, sending `traceparent`. */
  const exchange = async (traceparent: string) => {
    const actorToken = await agent.jwtSvid([m.issuer]);
    const signer = await DpopSigner.generate();
    const url = `${m.url}/oauth/token`;
    const proof = await signer.proof('POST', url);
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof, traceparent },
      body: new URLSearchParams(mandateExchange(mandateId, actorToken, { resource: ISSUES }) as Record<string, string>).toString(),
    });
    const body = await res.json() as { access_token?: string };
    secrets.push(actorToken, proof, ...(body.access_token ? [body.access_token] : []));
    return { status: res.status, body };
  };

  before(async () => {
    receiver = await OtlpReceiver.start();
    partner = createServer((req, res) => {
      partnerRequests.push(req.headers);
      res.setHeader('content-type', 'application/json');
      // A new sequence on every fetch, so each refresh is an update.
      res.end(JSON.stringify({ keys: [], spiffe_sequence: partnerRequests.length, spiffe_refresh_hint: 300 }));
    });
    await new Promise<void>((done) => partner.listen(0, '127.0.0.1', done));
    const policies = join(dir, 'policies');
    cpSync(join(process.cwd(), 'config/policies'), policies, { recursive: true });
    const yaml = [
      delegationYaml(),
      'federation:',
      '  trust_domains:',
      `    - { trust_domain: ${PARTNER}, bundle_url: "http://127.0.0.1:${(partner.address() as AddressInfo).port}/bundle" }`,
      'policy:',
      `  dir: ${policies}`,
      'observability:',
      '  traces:',
      `    otlp_endpoint: ${receiver.url}`,
      '    service_name: mandate-scenario',
      '',
    ].join('\n');
    m = await startTestMandate({ yaml, dataDir: join(dir, 'data') });
    const user = await m.admin('POST', '/admin/v1/users', { username: 'alice', password: 'correct horse battery staple' });
    assert.equal(user.status, 201, JSON.stringify(user.body));
    agent = await enrolAgent(m, AGENT);
    const mandate = await m.admin('POST', '/admin/v1/mandates', { username: 'alice', agent: AGENT, scopes: ['issues:read'], resources: [ISSUES] });
    assert.equal(mandate.status, 201, JSON.stringify(mandate.body));
    mandateId = mandate.body.id;
    secrets.push(m.adminToken as string);
  });
  after(async () => {
    await m?.close();
    await receiver?.close();
    partner?.close();
  });

  describe('Prometheus metrics', () => {
    it('are served at /metrics in the text format, with conventional names and types', async () => {
      const { contentType, types, samples } = await scrape();
      assert.match(contentType, /^text\/plain; version=0\.0\.4/);
      const expected: Record<string, string> = {
        mandate_http_requests_total: 'counter', mandate_http_request_duration_seconds: 'histogram',
        mandate_token_exchanges_total: 'counter', mandate_token_exchange_duration_seconds: 'histogram',
        mandate_policy_decisions_total: 'counter', mandate_policy_evaluation_duration_seconds: 'histogram',
        mandate_audit_events_total: 'counter', mandate_audit_append_duration_seconds: 'histogram', mandate_audit_commit_batch_size: 'histogram',
        mandate_audit_queue_depth: 'gauge', mandate_audit_log_size: 'gauge',
        mandate_svids_issued_total: 'counter', mandate_attestations_total: 'counter', mandate_cache_requests_total: 'counter',
        process_cpu_seconds_total: 'counter', nodejs_eventloop_lag_seconds: 'gauge',
      };
      for (const [name, type] of Object.entries(expected)) assert.equal(types.get(name), type, name);
      for (const [name, type] of types) if (type === 'counter') assert.match(name, /_total$/, name);
      // Histograms are whole: cumulative buckets ending in +Inf, which equals the count.
      const route = { route: '/admin/v1/mandates', method: 'POST' };
      const inf = total(samples, 'mandate_http_request_duration_seconds_bucket', { ...route, le: '+Inf' });
      assert.ok(inf >= 1);
      assert.equal(inf, total(samples, 'mandate_http_request_duration_seconds_count', route));
      assert.equal(total(samples, 'mandate_http_requests_total', { ...route, status: '201' }) >= 1, true);
    });

    it('move with what the deployment does', async () => {
      const before = (await scrape()).samples;
      assert.equal((await exchange(callerTrace().traceparent)).status, 200);
      assert.equal((await exchange(callerTrace().traceparent)).status, 200);
      const refused = await m.call('POST', '/oauth/token', { body: 'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&client_id=agent-app', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      assert.equal(refused.status, 400);
      await enrolAgent(m, 'spiffe://example.org/agent/summarizer');
      assert.equal((await m.admin('POST', '/admin/v1/policy/decide', ADD_COMMENT_DECISION)).body.decision, 'allow');
      const after = (await scrape()).samples;
      const delta = (name: string, labels: Record<string, string> = {}) => total(after, name, labels) - total(before, name, labels);
      assert.equal(delta('mandate_token_exchanges_total', { outcome: 'success', error: 'none' }), 2);
      assert.equal(delta('mandate_token_exchanges_total', { outcome: 'failure', error: 'invalid_request' }), 1);
      assert.equal(delta('mandate_token_exchange_duration_seconds_count'), 3);
      assert.equal(delta('mandate_http_requests_total', { route: '/oauth/token', method: 'POST', status: '200' }), 2);
      assert.equal(delta('mandate_svids_issued_total', { kind: 'x509' }), 1);
      assert.ok(delta('mandate_svids_issued_total', { kind: 'jwt' }) >= 2);
      assert.equal(delta('mandate_attestations_total', { attestor: 'join_token', outcome: 'success' }), 1);
      assert.equal(delta('mandate_policy_decisions_total', { decision: 'allow' }), 1);
      assert.equal(delta('mandate_policy_evaluation_duration_seconds_count'), 1);
      assert.ok(delta('mandate_cache_requests_total', { cache: 'dpop_key', result: 'miss' }) >= 2, 'each exchange brought a new DPoP key');
      assert.ok(delta('mandate_cache_requests_total', { cache: 'jwt_svid_validation' }) >= 2);
    });

    it('carry no identities, paths or tokens in label values', async () => {
      const { samples } = await scrape();
      for (const s of samples) {
        for (const value of Object.values(s.labels)) {
          assert.doesNotMatch(value, /spiffe:|alice|mdt_|eyJ|\/items|triage/, `${s.name} ${JSON.stringify(s.labels)}`);
        }
      }
      const routes = new Set(samples.filter((s) => s.name === 'mandate_http_requests_total').map((s) => s.labels.route));
      for (const route of routes) assert.ok(route === 'unmatched' || route?.startsWith('/'), String(route));
    });
  });

  describe('traces and trace context', () => {
    // Spans leave in batches (every 5 s): every traced action runs first, the assertions wait once.
    const exchanged = callerTrace();
    const refusedTrace = callerTrace();
    const decidedTrace = callerTrace();
    const refreshTrace = callerTrace();
    const MALFORMED = ['00-not-a-trace-01', `00-${'0'.repeat(32)}-${'1'.repeat(16)}-01`, `01-${'a'.repeat(32)}-${'b'.repeat(16)}`, `00-${'A'.repeat(32)}-${'b'.repeat(16)}-01`, 'x'.repeat(3000)];
    const malformedAnswers: Array<{ status: number; trustDomain: string }> = [];
    let refusedStatus = 0;
    let decided: { decision: string; policy_set_version: string };
    let refreshed: { status: number; body: unknown };
    let upstream: IncomingHttpHeaders[] = [];

    before(async () => {
      assert.equal((await exchange(exchanged.traceparent)).status, 200);
      refusedStatus = (await fetch(`${m.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', traceparent: refusedTrace.traceparent },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', client_id: 'agent-app', subject_token: mandateId, subject_token_type: 'urn:mandate:params:oauth:token-type:mandate' }).toString(),
      })).status;
      await enrolAgent(m, 'spiffe://example.org/agent/translator');
      decided = (await m.call('POST', '/admin/v1/policy/decide', { body: JSON.stringify(ADD_COMMENT_DECISION), headers: { authorization: `Bearer ${m.adminToken}`, 'content-type': 'application/json', traceparent: decidedTrace.traceparent } })).body;
      const seen = partnerRequests.length;
      refreshed = await m.call('POST', '/admin/v1/federation/refresh', {
        body: JSON.stringify({ trust_domain: PARTNER }),
        headers: { authorization: `Bearer ${m.adminToken}`, 'content-type': 'application/json', traceparent: refreshTrace.traceparent },
      });
      upstream = partnerRequests.slice(seen);
      for (const traceparent of MALFORMED) {
        const res = await fetch(`${m.url}/v1/bundles`, { headers: { traceparent } });
        malformedAnswers.push({ status: res.status, trustDomain: (await res.json() as { trust_domain: string }).trust_domain });
      }
    });

    it('reach the OTLP receiver in the caller\'s trace: server span, token exchange below it, service name', async () => {
      const server = await receiver.waitFor((s) => s.traceId === exchanged.traceId && s.name === 'POST /oauth/token');
      const exchangeSpan = await receiver.waitFor((s) => s.traceId === exchanged.traceId && s.name === 'token exchange');
      assert.equal(server.parentSpanId, exchanged.spanId, 'the server span is the child of the caller\'s span');
      assert.equal(server.kind, 2);
      assert.equal(server.attributes['http.route'], '/oauth/token');
      assert.equal(server.attributes['http.response.status_code'], 200);
      assert.equal(exchangeSpan.parentSpanId, server.spanId, 'the exchange is a child of the server span');
      assert.equal(exchangeSpan.attributes['oauth.grant_type'], 'urn:ietf:params:oauth:grant-type:token-exchange');
      assert.equal(exchangeSpan.attributes['mandate.outcome'], 'success');
      assert.equal(server.resource['service.name'], 'mandate-scenario');
      assert.equal(exchangeSpan.scope, 'mandate');
    });

    it('record a refused exchange with its OAuth error code', async () => {
      assert.equal(refusedStatus, 400);
      const span = await receiver.waitFor((s) => s.traceId === refusedTrace.traceId && s.name === 'token exchange');
      assert.equal(span.attributes['mandate.outcome'], 'failure');
      assert.equal(span.attributes['oauth.error'], 'invalid_request');
      assert.equal(span.status, 2);
    });

    it('cover attestation, SVID issuance and policy decisions as children of their requests', async () => {
      const byId = (id: string) => receiver.waitFor((s) => s.spanId === id);
      const attestation = await receiver.waitFor((s) => s.name === 'attestation join_token');
      assert.equal((await byId(attestation.parentSpanId)).name, 'POST /v1/attest');
      assert.equal(attestation.attributes['mandate.attestor'], 'join_token');
      const x509 = await receiver.waitFor((s) => s.name === 'svid issue x509' && s.traceId === attestation.traceId);
      assert.equal(x509.parentSpanId, attestation.parentSpanId);
      const jwt = await receiver.waitFor((s) => s.name === 'svid issue jwt');
      assert.equal((await byId(jwt.parentSpanId)).name, 'POST /v1/svid/jwt');

      assert.equal(decided.decision, 'allow');
      const policy = await receiver.waitFor((s) => s.traceId === decidedTrace.traceId && s.name === 'policy decide');
      assert.equal(policy.attributes['mandate.policy.decision'], 'allow');
      assert.equal(policy.attributes['mandate.policy.set_version'], decided.policy_set_version);
      assert.equal(policy.attributes['mandate.policy.tool'], 'add_comment');
      assert.equal((await byId(policy.parentSpanId)).name, 'POST /admin/v1/policy/decide');
    });

    it('go on to the servers Mandate calls, with the caller\'s trace id', async () => {
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
      assert.equal(upstream.length, 1);
      const [, traceId, spanId] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(upstream[0]?.traceparent)) ?? [];
      assert.equal(traceId, refreshTrace.traceId, 'the bundle endpoint sees the caller\'s trace');
      const fetchSpan = await receiver.waitFor((s) => s.spanId === spanId);
      assert.equal(fetchSpan.name, 'federation bundle fetch');
      assert.equal(fetchSpan.kind, 3);
      assert.equal(fetchSpan.attributes['url.full'], `http://127.0.0.1:${(partner.address() as AddressInfo).port}/bundle`);
    });

    it('put the request\'s trace id on its log lines', () => {
      const lines = m.logs().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      const traced = lines.filter((l) => l.trace_id === refreshTrace.traceId);
      const types = traced.map((l) => (l.event as { type?: string } | undefined)?.type);
      assert.ok(types.includes('federation.bundle.updated'), JSON.stringify(types));
      assert.ok(types.includes('admin.federation.refresh'), JSON.stringify(types));
      assert.ok(traced.every((l) => typeof l.span_id === 'string' && /^[0-9a-f]{16}$/.test(l.span_id)));
    });

    it('ignore a malformed traceparent: a new trace, and the same answer', async () => {
      assert.deepEqual(malformedAnswers, MALFORMED.map(() => ({ status: 200, trustDomain: 'example.org' })));
      const bundles = () => receiver.spans.filter((s) => s.name === 'GET /v1/bundles');
      await receiver.waitFor(() => bundles().length >= MALFORMED.length);
      assert.ok(bundles().every((s) => s.parentSpanId === ''), 'each is the root of a new trace');
      const joined = receiver.spans.filter((s) => ['0'.repeat(32), 'a'.repeat(32)].includes(s.traceId));
      assert.deepEqual(joined, [], 'no span joined a malformed trace');
      assert.equal((await m.call('GET', '/healthz')).status, 200);
    });

    it('never carry a token, proof or the admin token', () => {
      const text = JSON.stringify(receiver.spans);
      assert.ok(secrets.length >= 8, `${secrets.length} secrets`);
      for (const secret of secrets) assert.ok(!text.includes(secret), 'a token or secret is in a span');
      assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{8,}\.eyJ/);
      assert.deepEqual(receiver.rejected, []);
    });
  });

  describe('configuration', () => {
    it('serves no /metrics when metrics are disabled', async () => {
      const off = await startTestMandate({ yaml: 'trust_domain: example.org\nobservability:\n  metrics:\n    enabled: false\n' });
      try {
        assert.equal((await off.call('GET', '/metrics')).status, 404);
        assert.equal((await off.call('GET', '/healthz')).status, 200);
      } finally {
        await off.close();
      }
    });
  });
});
