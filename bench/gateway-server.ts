/**
 * The gateway of the gateway benchmark: a whole Mandate (`startMandate`, as `mandate up` runs it) in a
 * process of its own, configured as the demo is (config/demo.yaml) with its one tool server pointed at
 * the benchmark's upstream: the demo policies, SQLite audit in a temporary directory, `obo_token`
 * upstream credentials, the default Transaction Token, no rate limits, logging at info (into a
 * stream that discards it). It grants the demo triage bot a mandate from a person, and hands the
 * parent what an agent holds to exchange it for a DPoP-bound OBO token: the mandate id and a
 * JWT-SVID (fresh on each `credentials` query).
 *
 * Its other queries let the parent check and explain a run: `auditSize` (events in the audit log:
 * every call must be recorded), `auditCommits` (batches committed and the time they took),
 * `loopDelay` (how long the event loop kept callbacks waiting), `memory` and `liveHeap` (the heap
 * after a full collection), `clock` (the monotonic clock a CPU profile is stamped with).
 *
 * Usage: node --import tsx bench/gateway-server.ts <upstream MCP URL>   (forked by gateway.bench.ts)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { parseConfig } from '../src/config/load.ts';
import { OAUTH_PATHS } from '../src/delegation/oauth/endpoints.ts';
import { issueJwtSvid } from '../src/identity/jwt-svid/issue.ts';
import { createLogger } from '../src/observability/logger.ts';
import { registry } from '../src/observability/metrics.ts';
import { startMandate, type RunningMandate } from '../src/server/app.ts';
import { serveChild } from './gateway-process.ts';

const AGENT = 'spiffe://example.org/agent/triage-bot';
/** The tool server's OAuth resource, as in the demo (an identifier; nothing needs to listen there). */
const RESOURCE = 'http://127.0.0.1:8420/mcp/issues';
const TOOL_PATH = '/mcp/issues';
const POLICIES = new URL('../config/policies', import.meta.url).pathname;

export interface GatewayInfo {
  /** The gateway's MCP endpoint for the tool server. */
  url: string;
  /** The token endpoint agents exchange their mandate at. */
  tokenEndpoint: string;
  /** The tool server's OAuth resource: what the agent asks a token for. */
  resource: string;
}

/** Audit commits so far (from the process's metrics): batches, their total duration, events, slow ones. */
export interface AuditCommits {
  commits: number;
  seconds: number;
  events: number;
  /** Commits that took longer than 5 ms (they hold up every request waiting on the event loop). */
  over5ms: number;
}

type MetricValues = Array<{ value: number; metricName?: string; labels: Record<string, string | number> }>;

async function auditCommits(): Promise<AuditCommits> {
  const values = async (name: string) => ((await registry.getSingleMetric(name)?.get())?.values ?? []) as MetricValues;
  const pick = (v: MetricValues, metric: string, le?: number) => v.find((x) => x.metricName === metric && (le === undefined || x.labels.le === le))?.value ?? 0;
  const duration = await values('mandate_audit_commit_duration_seconds');
  const batch = await values('mandate_audit_commit_batch_size');
  const commits = pick(duration, 'mandate_audit_commit_duration_seconds_count');
  return {
    commits,
    seconds: pick(duration, 'mandate_audit_commit_duration_seconds_sum'),
    events: pick(batch, 'mandate_audit_commit_batch_size_sum'),
    over5ms: commits - pick(duration, 'mandate_audit_commit_duration_seconds_bucket', 0.005),
  };
}

export interface AgentCredentials {
  mandateId: string;
  /** The agent's JWT-SVID for the issuer (10 minutes). */
  svid: string;
}

/** The demo configuration (config/demo.yaml), with the tool server at `upstream`. */
function benchConfig(upstream: string): string {
  return `trust_domain: example.org
delegation:
  scopes:
    issues:read: Read issues and their comments
    issues:comment: Comment on issues
    issues:delete: Delete issues
  resources:
    - uri: ${RESOURCE}
      name: Demo issue tracker
      scopes: [issues:read, issues:comment, issues:delete]
policy:
  dir: ${POLICIES}
gateway:
  tool_servers:
    - name: issues
      path: ${TOOL_PATH}
      type: mcp
      url: ${upstream}
      resource: ${RESOURCE}
      tool_scopes:
        delete_issue: [issues:delete]
      credential:
        type: obo_token
        audience: ${new URL(upstream).origin}
log:
  level: info
`;
}

async function start(upstream: string) {
  const dataDir = mkdtempSync(join(tmpdir(), 'mandate-gateway-bench-'));
  const discard = new Writable({ write(_chunk, _enc, done) { done(); } });
  let m: RunningMandate;
  try {
    m = await startMandate({
      config: parseConfig(benchConfig(upstream), join(dataDir, 'mandate.yaml'), {}), dataDir,
      logger: createLogger({ level: 'info', destination: discard }), listen: { host: '127.0.0.1', port: 0 },
    });
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  // How long callbacks wait for the event loop (1 ms resolution): read and reset per run.
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const mandate = await m.delegation.mandates.grant({
    principal: { issuer: m.issuer, subject: 'alice', name: 'Alice' }, agent: AGENT,
    scopes: ['issues:read', 'issues:comment'], resources: [RESOURCE], ttlSeconds: 3600, origin: 'admin',
  }, 'admin:bench');
  return {
    info: { url: `${m.url}${TOOL_PATH}`, tokenEndpoint: `${m.issuer}${OAUTH_PATHS.token}`, resource: RESOURCE } satisfies GatewayInfo,
    queries: {
      credentials: async (): Promise<AgentCredentials> => {
        const { token } = await issueJwtSvid({ spiffeId: AGENT, audience: [m.issuer], ttlSeconds: 600, key: m.keys.activeJwtKey() });
        return { mandateId: mandate.id, svid: token };
      },
      auditSize: () => m.audit.log.size,
      auditCommits,
      /** Event-loop delay since the last query, ms. */
      loopDelay: () => {
        const ms = (ns: number) => ns / 1e6;
        const d = { p50: ms(loop.percentile(50)), p99: ms(loop.percentile(99)), max: ms(loop.max) };
        loop.reset();
        return d;
      },
      memory: () => process.memoryUsage(),
      /** The V8 heap after a full collection (what is live), when the process runs with --expose-gc. */
      liveHeap: () => {
        (globalThis as { gc?: () => void }).gc?.();
        return process.memoryUsage().heapUsed;
      },
      /** CLOCK_MONOTONIC in µs: the clock of a --cpu-prof profile, to cut it to a run's window. */
      clock: () => Number(process.hrtime.bigint() / 1000n),
    },
    close: async () => {
      loop.disable();
      await m.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const upstream = process.argv[2];
if (upstream === undefined) throw new Error('usage: gateway-server.ts <upstream MCP URL>');
await serveChild<GatewayInfo>(() => start(upstream));
