/**
 * Prometheus metrics of the process: one module-level registry and the metric objects, defined once
 * per process so any module can record without plumbing. Several Mandates in one process (tests)
 * share them; read them as deltas.
 *
 * Names follow Prometheus conventions (`_total` counters, base units: seconds, bytes). Label values
 * come from small fixed sets — route patterns, methods, status codes, outcome and error codes,
 * decisions, cache names — never from identities, paths or anything a caller chooses, so the number
 * of series stays bounded and the endpoint can stay unauthenticated.
 *
 * @example
 *   recordPolicyDecision('allow', 0.00012);
 *   res.end(await metricsText()); // with content type METRICS_CONTENT_TYPE
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export const registry = new Registry();

const registers = [registry];
/** Latency buckets for work done in memory (policy decisions): 25 µs to 100 ms. */
const FAST_BUCKETS = [0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1];
/** Latency buckets for requests and durable writes: 0.5 ms to 10 s. */
const SLOW_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const httpRequests = new Counter({
  name: 'mandate_http_requests_total',
  help: 'HTTP requests answered, by route pattern, method and status code.',
  labelNames: ['route', 'method', 'status'] as const,
  registers,
});

export const httpRequestDuration = new Histogram({
  name: 'mandate_http_request_duration_seconds',
  help: 'Time from receiving an HTTP request to the end of its handler, by route pattern and method.',
  labelNames: ['route', 'method'] as const,
  buckets: SLOW_BUCKETS,
  registers,
});

const tokenExchanges = new Counter({
  name: 'mandate_token_exchanges_total',
  help: 'Token exchanges (RFC 8693) at the token endpoint, by outcome and OAuth error code ("none" on success).',
  labelNames: ['outcome', 'error'] as const,
  registers,
});

const tokenExchangeDuration = new Histogram({
  name: 'mandate_token_exchange_duration_seconds',
  help: 'Time to decide a token exchange, client authentication included.',
  buckets: SLOW_BUCKETS,
  registers,
});

const policyDecisions = new Counter({
  name: 'mandate_policy_decisions_total',
  help: 'Policy decisions, by decision.',
  labelNames: ['decision'] as const,
  registers,
});

const policyEvaluationDuration = new Histogram({
  name: 'mandate_policy_evaluation_duration_seconds',
  help: 'Time to evaluate one policy decision.',
  buckets: FAST_BUCKETS,
  registers,
});

const auditEvents = new Counter({
  name: 'mandate_audit_events_total',
  help: 'Audit events made durable.',
  registers,
});

const auditAppendDuration = new Histogram({
  name: 'mandate_audit_append_duration_seconds',
  help: 'Time from appending an audit event to its being durable (the longest wait in each committed batch).',
  buckets: SLOW_BUCKETS,
  registers,
});

const auditCommitDuration = new Histogram({
  name: 'mandate_audit_commit_duration_seconds',
  help: 'Time to commit one batch of audit events, retries included.',
  buckets: SLOW_BUCKETS,
  registers,
});

const auditCommitBatchSize = new Histogram({
  name: 'mandate_audit_commit_batch_size',
  help: 'Audit events per committed batch (group commit).',
  buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500],
  registers,
});

const auditQueueDepth = new Gauge({
  name: 'mandate_audit_queue_depth',
  help: 'Audit events waiting to be committed, as of the last commit.',
  registers,
});

const auditLogSize = new Gauge({
  name: 'mandate_audit_log_size',
  help: 'Events in the audit log (its Merkle tree size), as of the last commit.',
  registers,
});

const svidsIssued = new Counter({
  name: 'mandate_svids_issued_total',
  help: 'SVIDs issued, by kind.',
  labelNames: ['kind'] as const,
  registers,
});

const attestations = new Counter({
  name: 'mandate_attestations_total',
  help: 'Workload attestations, by attestor type ("unknown" for a type not enabled) and outcome.',
  labelNames: ['attestor', 'outcome'] as const,
  registers,
});

const cacheRequests = new Counter({
  name: 'mandate_cache_requests_total',
  help: 'Lookups in in-memory caches, by cache and result (hit or miss).',
  labelNames: ['cache', 'result'] as const,
  registers,
});

export type Outcome = 'success' | 'failure';

/**
 * The caches whose hit ratio is measured: verified JWT-SVID signatures, imported DPoP proof keys,
 * remote JWKS of identity providers and clusters, Client ID Metadata Documents, policy decisions.
 */
export type CacheName = 'jwt_svid_validation' | 'dpop_key' | 'jwks' | 'client_metadata' | 'policy_decision';

/** One token exchange; `error` is the OAuth error code of a refusal. */
export function recordTokenExchange(error: string | undefined, seconds: number): void {
  tokenExchanges.inc({ outcome: error === undefined ? 'success' : 'failure', error: error ?? 'none' });
  tokenExchangeDuration.observe(seconds);
}

export function recordPolicyDecision(decision: string, seconds: number): void {
  policyDecisions.inc({ decision });
  policyEvaluationDuration.observe(seconds);
}

export function recordSvidIssued(kind: 'x509' | 'jwt'): void {
  svidsIssued.inc({ kind });
}

/** `attestor` must be an enabled attestor type (or "unknown"): never the raw type a caller sent. */
export function recordAttestation(attestor: string, outcome: Outcome): void {
  attestations.inc({ attestor, outcome });
}

export function recordCacheLookup(cache: CacheName, hit: boolean): void {
  cacheRequests.inc({ cache, result: hit ? 'hit' : 'miss' });
}

/**
 * Measures the hit ratio of a remote JWKS (jose's `createRemoteJWKSet`): give the set `fetch` as its
 * fetch, and run each key lookup through `lookup`. A lookup during which the set was fetched is a miss.
 *
 * @example
 *   const probe = jwksCacheProbe(myFetch);
 *   const remote = createRemoteJWKSet(url, { [customFetch]: probe.fetch });
 *   const getKey = (header, token) => probe.lookup(() => remote(header, token));
 */
export function jwksCacheProbe<A extends unknown[], R>(fetch: (...args: A) => R): { fetch: (...args: A) => R; lookup<T>(run: () => Promise<T>): Promise<T> } {
  let fetches = 0;
  return {
    fetch: (...args) => {
      fetches++;
      return fetch(...args);
    },
    async lookup(run) {
      const before = fetches;
      try {
        return await run();
      } finally {
        recordCacheLookup('jwks', fetches === before);
      }
    },
  };
}

/** What the audit log reports after each durable batch (see AuditLog `onCommit`). */
export interface AuditCommitMetrics {
  /** Events in the batch. */
  events: number;
  /** Time spent committing the batch (ms). */
  durationMs: number;
  /** Longest time an event of the batch waited from append to durable (ms); the commit time when absent. */
  waitMs?: number;
  /** Events still queued after the commit. */
  queueDepth: number;
  /** Events in the log after the commit, when known. */
  size?: number;
}

export function recordAuditCommit(info: AuditCommitMetrics): void {
  auditEvents.inc(info.events);
  auditCommitBatchSize.observe(info.events);
  auditCommitDuration.observe(info.durationMs / 1000);
  auditAppendDuration.observe((info.waitMs ?? info.durationMs) / 1000);
  auditQueueDepth.set(info.queueDepth);
  if (info.size !== undefined) auditLogSize.set(info.size);
}

let processMetrics = false;

/**
 * Adds prom-client's default process metrics (CPU, memory, event loop lag, GC, handles) to the
 * registry, once per process. Not done on import: commands that never serve metrics should not
 * start the event-loop and GC observers.
 */
export function collectProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  collectDefaultMetrics({ register: registry });
}

/** The content type of `metricsText()` (Prometheus text exposition format 0.0.4). */
export const METRICS_CONTENT_TYPE = registry.contentType;

/** Every metric of the registry in the Prometheus text format. */
export function metricsText(): Promise<string> {
  return registry.metrics();
}

/** Seconds elapsed since `startedMs`, a `performance.now()` reading. */
export function secondsSince(startedMs: number): number {
  return (performance.now() - startedMs) / 1000;
}
