import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  collectProcessMetrics, jwksCacheProbe, METRICS_CONTENT_TYPE, metricsText, recordAttestation, recordAuditCommit, recordCacheLookup,
  recordPolicyDecision, recordSvidIssued, recordTokenExchange, registry,
} from './metrics.ts';

/** The current value of one series (counter or gauge), 0 when it does not exist yet. */
async function value(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const found = values.find((v) => Object.entries(labels).every(([k, l]) => String((v.labels as Record<string, unknown>)[k]) === l) && (v as { metricName?: string }).metricName === undefined);
  return found?.value ?? 0;
}

/** Sample count of a histogram (its `_count` series). */
async function observations(name: string): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  return values.filter((v) => (v as { metricName?: string }).metricName === `${name}_count`).reduce((sum, v) => sum + v.value, 0);
}

describe('metrics', () => {
  it('names every metric of its own by Prometheus conventions', async () => {
    const own = (await registry.getMetricsAsJSON()).filter((m) => m.name.startsWith('mandate_'));
    assert.ok(own.length >= 15, `${own.length} metrics`);
    for (const m of own) {
      assert.match(m.name, /^mandate_[a-z0-9_]+$/);
      assert.ok(m.help.length > 10, `${m.name} has help`);
      if (String(m.type) === 'counter') assert.match(m.name, /_total$/, `${m.name} is a counter`);
      else assert.doesNotMatch(m.name, /_total$/, `${m.name} is a ${m.type}`);
      if (m.name.includes('duration')) {
        assert.equal(String(m.type), 'histogram', m.name);
        assert.match(m.name, /_seconds$/, `${m.name} is in seconds`);
      }
    }
  });

  it('counts token exchanges by outcome and error code', async () => {
    const ok = await value('mandate_token_exchanges_total', { outcome: 'success', error: 'none' });
    const refused = await value('mandate_token_exchanges_total', { outcome: 'failure', error: 'invalid_scope' });
    const timed = await observations('mandate_token_exchange_duration_seconds');
    recordTokenExchange(undefined, 0.01);
    recordTokenExchange('invalid_scope', 0.002);
    recordTokenExchange('invalid_scope', 0.002);
    assert.equal(await value('mandate_token_exchanges_total', { outcome: 'success', error: 'none' }), ok + 1);
    assert.equal(await value('mandate_token_exchanges_total', { outcome: 'failure', error: 'invalid_scope' }), refused + 2);
    assert.equal(await observations('mandate_token_exchange_duration_seconds'), timed + 3);
  });

  it('counts decisions, SVIDs, attestations and cache lookups', async () => {
    const read = () => Promise.all([
      value('mandate_policy_decisions_total', { decision: 'deny' }),
      value('mandate_svids_issued_total', { kind: 'jwt' }),
      value('mandate_attestations_total', { attestor: 'join_token', outcome: 'failure' }),
      value('mandate_cache_requests_total', { cache: 'dpop_key', result: 'hit' }),
      value('mandate_cache_requests_total', { cache: 'dpop_key', result: 'miss' }),
      observations('mandate_policy_evaluation_duration_seconds'),
    ]);
    const before = await read();
    recordPolicyDecision('deny', 0.0001);
    recordSvidIssued('jwt');
    recordAttestation('join_token', 'failure');
    recordCacheLookup('dpop_key', true);
    recordCacheLookup('dpop_key', true);
    recordCacheLookup('dpop_key', false);
    const after = await read();
    assert.deepEqual(after.map((v, i) => v - (before[i] as number)), [1, 1, 1, 2, 1, 1]);
  });

  it('records audit commits: events, batch size, append latency, queue depth and size', async () => {
    const events = await value('mandate_audit_events_total');
    const batches = await observations('mandate_audit_commit_batch_size');
    const appends = await observations('mandate_audit_append_duration_seconds');
    recordAuditCommit({ events: 40, durationMs: 3, waitMs: 5, queueDepth: 7, size: 1234 });
    recordAuditCommit({ events: 2, durationMs: 1, queueDepth: 0 });
    assert.equal(await value('mandate_audit_events_total'), events + 42);
    assert.equal(await observations('mandate_audit_commit_batch_size'), batches + 2);
    assert.equal(await observations('mandate_audit_append_duration_seconds'), appends + 2);
    assert.equal(await value('mandate_audit_queue_depth'), 0);
    assert.equal(await value('mandate_audit_log_size'), 1234, 'a commit that does not know the size leaves it');
    const text = await metricsText();
    assert.match(text, /^mandate_audit_append_duration_seconds_bucket\{le="0\.005"\} \d+$/m);
  });

  it('counts a JWKS lookup that had to fetch as a miss, and one served from memory as a hit', async () => {
    const hits = await value('mandate_cache_requests_total', { cache: 'jwks', result: 'hit' });
    const misses = await value('mandate_cache_requests_total', { cache: 'jwks', result: 'miss' });
    let cached = false;
    const probe = jwksCacheProbe(async (url: string) => `keys of ${url}`);
    const lookup = () => probe.lookup(async () => {
      if (!cached) {
        await probe.fetch('https://idp.example/jwks');
        cached = true;
      }
      return 'key';
    });
    await lookup();
    await lookup();
    await lookup();
    await assert.rejects(probe.lookup(async () => { await probe.fetch('x'); throw new Error('unreachable'); }));
    assert.equal(await value('mandate_cache_requests_total', { cache: 'jwks', result: 'hit' }), hits + 2);
    assert.equal(await value('mandate_cache_requests_total', { cache: 'jwks', result: 'miss' }), misses + 2);
  });

  it('serves the text format with its content type, process metrics once', async () => {
    collectProcessMetrics();
    collectProcessMetrics();
    assert.match(METRICS_CONTENT_TYPE, /^text\/plain; version=0\.0\.4/);
    const text = await metricsText();
    assert.match(text, /^# TYPE mandate_http_requests_total counter$/m);
    assert.match(text, /^# TYPE mandate_http_request_duration_seconds histogram$/m);
    assert.match(text, /^# TYPE mandate_audit_queue_depth gauge$/m);
    assert.match(text, /^# TYPE process_cpu_seconds_total counter$/m);
    assert.match(text, /^# TYPE nodejs_eventloop_lag_p99_seconds gauge$/m);
  });
});

describe('Grafana dashboard', () => {
  const path = new URL('../../deploy/grafana/mandate-dashboard.json', import.meta.url);
  const dashboard = JSON.parse(readFileSync(path, 'utf8')) as {
    __inputs: Array<{ name: string; type: string; pluginId: string }>;
    title: string;
    uid: string;
    schemaVersion: number;
    panels: Array<{ id: number; type: string; title: string; datasource?: { uid: string }; targets?: Array<{ expr: string; refId: string }>; gridPos: { w: number; x: number } }>;
    templating: { list: Array<{ query: { query: string } }> };
  };
  const queries = [...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)), ...dashboard.templating.list.map((v) => v.query.query)];

  it('is a Grafana dashboard with a Prometheus datasource input', () => {
    assert.equal(dashboard.title, 'Mandate');
    assert.ok(dashboard.uid.length > 0 && dashboard.schemaVersion >= 36);
    assert.deepEqual(dashboard.__inputs.map((i) => [i.name, i.type, i.pluginId]), [['DS_PROMETHEUS', 'datasource', 'prometheus']]);
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    for (const p of dashboard.panels) {
      assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the grid`);
      if (p.type === 'row') continue;
      assert.equal(p.datasource?.uid, '${DS_PROMETHEUS}', p.title);
      assert.ok((p.targets ?? []).length > 0, `${p.title} has queries`);
    }
  });

  it('shows what operators watch', () => {
    const all = queries.join('\n');
    for (const name of ['mandate_http_requests_total', 'mandate_http_request_duration_seconds_bucket', 'mandate_token_exchanges_total', 'mandate_policy_decisions_total',
      'mandate_policy_evaluation_duration_seconds_bucket', 'mandate_audit_append_duration_seconds_bucket', 'mandate_audit_queue_depth', 'mandate_audit_log_size',
      'mandate_svids_issued_total', 'mandate_cache_requests_total']) {
      assert.ok(all.includes(name), `the dashboard shows ${name}`);
    }
  });

  it('references only metrics the registry has', async () => {
    collectProcessMetrics();
    const known = new Set((await registry.getMetricsAsJSON()).flatMap((m) => String(m.type) === 'histogram' ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name]));
    const referenced = new Set(queries.flatMap((q) => q.match(/\b(?:mandate|process|nodejs)_[a-z0-9_]+\b/g) ?? []));
    assert.ok(referenced.size >= 15, `${referenced.size} metrics referenced`);
    for (const name of referenced) assert.ok(known.has(name), `${name} is not a metric of the registry`);
  });
});
