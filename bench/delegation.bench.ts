/**
 * Delegation authority throughput: full token exchanges (RFC 8693) per second through the real HTTP
 * token endpoint of a Mandate started in this process (SQLite in a temp dir, nothing logged to the
 * terminal), with p50/p99 latency, beside raw node:crypto ES256 signing on one core measured in the
 * same run. Each exchange verifies the subject (a mandate id, or a principal's access token), the
 * agent's JWT-SVID (actor token and client assertion), finds and checks the mandate, checks a fresh
 * DPoP proof, signs the OBO token and records the `token.exchanged` event.
 *
 * The server runs on this thread; the load client (delegation-worker.ts) on another.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { parseConfig } from '../src/config/load.ts';
import { OAUTH_PATHS } from '../src/delegation/oauth/endpoints.ts';
import { mintAccessToken } from '../src/delegation/tokens/mint.ts';
import { issueJwtSvid } from '../src/identity/jwt-svid/issue.ts';
import type { EventSink } from '../src/observability/events.ts';
import { createLogger } from '../src/observability/logger.ts';
import { startMandate, type RunningMandate } from '../src/server/app.ts';
import type { ClientAgent, ClientJob, ClientReport } from './delegation-worker.ts';
import { machine, result, writeResults, type Result } from './lib.ts';

const MS = Number(process.env.BENCH_EXCHANGE_MS ?? 5000);
const MAX_REQUESTS = Number(process.env.BENCH_EXCHANGE_REQUESTS ?? 20_000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 32);
const WARMUP = 1000;
const TARGET = 2000;

const boot = new URL('./worker-boot.mjs', import.meta.url);
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT = 'urn:ietf:params:oauth:token-type:jwt';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const MANDATE = 'urn:mandate:params:oauth:token-type:mandate';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const RESOURCE = 'https://tools.example/mcp/issues';

const CONFIG = `
trust_domain: example.org
delegation:
  scopes:
    issues:read: Read issues and their comments
    issues:comment: Comment on issues
  resources:
    - uri: ${RESOURCE}
      name: Issue tracker
      scopes: [issues:read, issues:comment]
`;

function runWorker<T>(workerData: Record<string, unknown>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const w = new Worker(boot, { workerData });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

/** Raw ES256 signatures per second on one core: identity-worker.ts's baseline, 64 in flight. */
function rawSignPerSecond(): Promise<number> {
  return runWorker<number>({ module: new URL('./identity-worker.ts', import.meta.url).href, op: 'baseline-ecdsa-sign', ms: 2500 });
}

interface Agent {
  spiffeId: string;
  svid: string;
  mandateId: string;
  principalToken: string;
}

/**
 * One simulated agent per client: its own SPIFFE ID and JWT-SVID (audience the issuer, reused for every
 * request as agents do for the SVID's lifetime), an admin-issued mandate from its own principal, and
 * that principal's access token (RFC 9068, as the authorization-code grant issues it) to exchange.
 */
async function agents(m: RunningMandate): Promise<Agent[]> {
  const key = m.keys.activeJwtKey();
  return Promise.all(Array.from({ length: CLIENTS }, async (_, i) => {
    const spiffeId = `spiffe://example.org/agent/bench-${i}`;
    const principal = { issuer: m.issuer, subject: `bench-user-${i}` };
    const mandate = await m.delegation.mandates.grant({
      principal: { ...principal, name: `Bench user ${i}` }, agent: spiffeId,
      scopes: ['issues:read', 'issues:comment'], resources: [RESOURCE], ttlSeconds: 3600, origin: 'admin',
    }, 'admin:bench');
    const { token: svid } = await issueJwtSvid({ spiffeId, audience: [m.issuer], ttlSeconds: 600, key });
    const { token: principalToken } = await mintAccessToken(m.delegation.keys, {
      iss: m.issuer, sub: principal.subject, principal_iss: principal.issuer, aud: RESOURCE,
      client_id: 'bench-app', scope: 'issues:read issues:comment', ttlSeconds: 300,
    });
    return { spiffeId, svid, mandateId: mandate.id, principalToken };
  }));
}

function body(agent: Agent, subject: 'mandate' | 'principal'): string {
  return new URLSearchParams({
    grant_type: TOKEN_EXCHANGE,
    subject_token: subject === 'mandate' ? agent.mandateId : agent.principalToken,
    subject_token_type: subject === 'mandate' ? MANDATE : ACCESS_TOKEN,
    actor_token: agent.svid,
    actor_token_type: JWT,
    client_assertion_type: JWT_BEARER,
    client_assertion: agent.svid,
    resource: RESOURCE,
  }).toString();
}

/** Fails the run unless the sample response is the OBO token the request asks for. */
function checkSample(sample: string, agentIds: string[]): void {
  const response = JSON.parse(sample) as { access_token: string; token_type: string };
  const claims = JSON.parse(Buffer.from(response.access_token.split('.')[1] as string, 'base64url').toString('utf8')) as { act?: { sub?: string }; cnf?: { jkt?: string }; aud?: string };
  if (response.token_type !== 'DPoP' || !claims.cnf?.jkt || claims.aud !== RESOURCE || !agentIds.includes(claims.act?.sub ?? '')) {
    throw new Error('the token endpoint did not issue a DPoP-bound OBO token for a bench agent');
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** A latency figure (ms, to 0.01) beside the time one raw signature takes (ms, to 4 decimals: it is about 0.02). */
function latency(name: string, ms: number, signPerSecond: number): Result {
  const perSign = 1000 / signPerSecond;
  return { ...result(name, ms, perSign, null, 'ms'), value: Math.round(ms * 100) / 100, baseline: Math.round(perSign * 10_000) / 10_000 };
}

export async function runDelegationBench(): Promise<Result[]> {
  const signPerSecond = await rawSignPerSecond();
  const dataDir = mkdtempSync(join(tmpdir(), 'mandate-bench-'));
  let exchanged = 0;
  const events: EventSink = { emit: (e) => { if (e.type === 'token.exchanged') exchanged++; } };
  // Events are written as log lines at info, as in production; the lines go nowhere.
  const discard = new Writable({ write(_chunk, _enc, done) { done(); } });
  const config = parseConfig(CONFIG, join(dataDir, 'mandate.yaml'), {});
  const m = await startMandate({ config, dataDir, logger: createLogger({ level: 'info', destination: discard }), events, listen: { host: '127.0.0.1', port: 0 } });
  const results: Result[] = [];
  try {
    const list = await agents(m);
    const ids = list.map((a) => a.spiffeId);
    const cases: Array<[string, 'mandate' | 'principal']> = [['mandate-id subject', 'mandate'], ['principal access-token subject', 'principal']];
    for (const [label, subject] of cases) {
      const before = exchanged;
      const job: ClientJob = {
        origin: m.url, endpoint: `${m.issuer}${OAUTH_PATHS.token}`,
        agents: list.map((a): ClientAgent => ({ body: body(a, subject) })),
        warmup: WARMUP, ms: MS, maxRequests: MAX_REQUESTS,
      };
      const report = await runWorker<ClientReport>({ module: new URL('./delegation-worker.ts', import.meta.url).href, job });
      checkSample(report.sample, ids);
      if (exchanged - before !== WARMUP + report.requests) throw new Error(`${exchanged - before} token.exchanged events for ${WARMUP + report.requests} requests`);
      const name = `token-exchange, ${label} (${CLIENTS} clients)`;
      const rate = result(name, report.requests / report.seconds, signPerSecond, TARGET, 'exchanges/s');
      const p50 = latency(`${name} p50 latency`, percentile(report.latencies, 50), signPerSecond);
      const p99 = latency(`${name} p99 latency`, percentile(report.latencies, 99), signPerSecond);
      results.push(rate, p50, p99);
      console.log(`${name.padEnd(58)} ${rate.value.toFixed(0).padStart(6)} exchanges/s  baseline raw sign ${rate.baseline.toFixed(0)}/s  ratio ${rate.ratio}  target ${TARGET} ${rate.met ? 'met' : 'NOT met'}`);
      console.log(`${''.padEnd(58)} p50 ${p50.value} ms  p99 ${p99.value} ms  (${report.requests} requests in ${report.seconds.toFixed(2)} s; proofs signed beforehand in ${report.proofSeconds.toFixed(1)} s)`);
    }
  } finally {
    await m.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  console.log(`machine: ${machine()}`);
  console.log(`wrote ${writeResults('delegation', results)}`);
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) await runDelegationBench();
