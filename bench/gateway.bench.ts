/**
 * Gateway overhead: one small MCP `tools/call` (list_issues on acme/api, a JSON answer) sent by the
 * same load generator (wrk with bench/gateway-wrk.lua, same connections, threads and duration), in
 * the same run, to
 *   (a) the upstream directly: a plain node:http MCP responder with a canned answer
 *       (gateway-upstream.ts), so what stands in front of it is measured by its own cost;
 *   (b) a bare reverse proxy: undici Pool to the upstream, bodies streamed, no checks (gateway-proxy.ts);
 *   (b') the same proxy checking one signature per request, the DPoP proof's: the floor under any
 *       gateway that verifies a proof per call, on this machine;
 *   (c) the gateway with full checks: a Mandate configured as the demo (gateway-server.ts) — DPoP-bound
 *       OBO token verified with a fresh DPoP proof per request, a policy decision, the audit record
 *       made durable (SQLite, group commit) before the answer, an OBO token and a Transaction Token
 *       minted for the upstream per request.
 * Each server is a process of its own; wrk is another. Figures: the maximum rate of each; latency of
 * (b) and (c) at half of (b)'s maximum rate (wrk paced by the script's delay(): wrk2 is not
 * available); the gateway's resident memory; and, for information, (a) and (c) in front of the real
 * demo MCP server (the issue tracker built with the MCP SDK). With BENCH_GATEWAY_PROFILE=<dir>, one
 * more gateway run under `--cpu-prof`, summarised by component (gateway-profile.ts).
 *
 * Skips with a message when wrk is not installed.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DpopSigner } from '../src/sdk/agent/dpop.ts';
import { machine, writeResults, type Result } from './lib.ts';
import { memoryOf, runLoad, writeProofs, writeRequestFile, wrkMissing, type LoadReport } from './gateway-load.ts';
import { startChild, type ChildServer } from './gateway-process.ts';
import { printProfile, summariseProfile } from './gateway-profile.ts';
import type { ProxyInfo } from './gateway-proxy.ts';
import type { AgentCredentials, AuditCommits, GatewayInfo } from './gateway-server.ts';
import type { UpstreamInfo } from './gateway-upstream.ts';

const num = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const SECONDS = num('BENCH_GATEWAY_SECONDS', 10);
const WARMUP_SECONDS = num('BENCH_GATEWAY_WARMUP_SECONDS', 2);
const CONNECTIONS = num('BENCH_GATEWAY_CONNECTIONS', 64);
const PACED_CONNECTIONS = num('BENCH_GATEWAY_PACED_CONNECTIONS', 32);
const THREADS = num('BENCH_GATEWAY_THREADS', 2);
const WITH_TRACKER = process.env.BENCH_GATEWAY_TRACKER !== '0';
/** With a directory: one more gateway run under --cpu-prof (paced at BENCH_GATEWAY_PROFILE_RATE when set). */
const PROFILE_DIR = process.env.BENCH_GATEWAY_PROFILE;
const PROFILE_RATE = process.env.BENCH_GATEWAY_PROFILE_RATE === undefined ? undefined : Number(process.env.BENCH_GATEWAY_PROFILE_RATE);
/** Only the profiled run (nothing measured, no results written). */
const PROFILE_ONLY = process.env.BENCH_GATEWAY_PROFILE_ONLY === '1';
/** Proofs for the profiled run's warm-up: enough for this many requests per second. */
const PROFILE_WARMUP_CEILING = 10_000;
/** Extra node options for the gateway process only, e.g. "--max-old-space-size=64" (experiments). */
const GATEWAY_EXEC_ARGV = (process.env.BENCH_GATEWAY_EXEC_ARGV ?? '').split(' ').filter((a) => a !== '');

const TARGET_RATIO = 0.7;
const TARGET_ADDED_P50_MS = 0.3;
const TARGET_ADDED_P99_MS = 2;
const TARGET_RSS_MB = 200;
/** Proofs signed beyond the expected number of requests. */
const PROOF_MARGIN = 1.3;
/** How long after its iat the gateway accepts a DPoP proof (delegation.dpop default). */
const PROOF_MAX_AGE_SECONDS = 60;

const BODY = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'list_issues', arguments: { repository: 'acme/api' } } });

/** One endpoint under load: its URL, and for the gateway the agent that calls it. */
interface Target {
  label: string;
  url: string;
  gateway?: { server: ChildServer<GatewayInfo>; agent: Agent };
  /** The canned upstream, whose call counter shows that every request went through. */
  upstream?: ChildServer<UpstreamInfo>;
}

/** The demo triage bot as the benchmark plays it: one DPoP key, an OBO token from a real token exchange. */
class Agent {
  constructor(readonly signer: DpopSigner, private readonly gateway: ChildServer<GatewayInfo>) {}

  /** A fresh DPoP-bound OBO token for the tool server (mandate id as subject, JWT-SVID as actor). */
  async token(): Promise<string> {
    const { mandateId, svid } = await this.gateway.query<AgentCredentials>('credentials');
    const endpoint = this.gateway.info.tokenEndpoint;
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: await this.signer.proof('POST', endpoint) },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: mandateId, subject_token_type: 'urn:mandate:params:oauth:token-type:mandate',
        actor_token: svid, actor_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: svid,
        resource: this.gateway.info.resource,
      }).toString(),
    });
    const body = await res.json() as { access_token?: string; token_type?: string; error?: string; error_description?: string };
    if (res.status !== 200 || body.token_type !== 'DPoP' || !body.access_token) {
      throw new Error(`token exchange answered ${res.status}: ${body.error ?? ''} ${body.error_description ?? ''}`);
    }
    return body.access_token;
  }
}

function post(url: string, body: string, authorization: string, dpop: string): Promise<Response> {
  return fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization, dpop } });
}

/** One call before a run: the answer must be the tool's result (not a refusal, nor a JSON-RPC error). */
async function checkCall(t: Target, authorization: string, dpop: string): Promise<void> {
  const res = await post(t.url, BODY, authorization, dpop);
  const text = await res.text();
  if (res.status !== 200 || !text.includes('"result"') || !text.includes('acme/api')) {
    throw new Error(`${t.label}: the sample tools/call answered ${res.status}: ${text.slice(0, 300)}`);
  }
}

/**
 * Lists the tools through the gateway first, as an agent (and the demo) does: the gateway learns
 * the tools' annotations from the answer, and policies read them (list_issues is read-only; a tool
 * of unknown annotations counts as destructive, which business-hours.cedar forbids at night).
 */
async function listTools(t: Target, authorization: string, dpop: string): Promise<void> {
  const res = await post(t.url, JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'tools/list' }), authorization, dpop);
  const text = await res.text();
  if (res.status !== 200 || !text.includes('list_issues')) throw new Error(`${t.label}: tools/list answered ${res.status}: ${text.slice(0, 300)}`);
}

class ProofsExhausted extends Error {}

/** A run's figures; for the gateway, also its audit commits during the run. */
type Measured = LoadReport & {
  /** Proofs signed for the run, and the seconds that took (before the run). */
  proofs?: { count: number; seconds: number };
  audit?: { commits: number; eventsPerCommit: number; msPerCommit: number; share: number; over5ms: number };
  /** The gateway's event-loop delay during the run, ms. */
  loop?: { p50: number; p99: number; max: number };
};

interface RunOptions {
  seconds: number;
  connections: number;
  /** Paced: the aggregate rate to send at. */
  rate?: number;
  /** Requests the run may send at most (proofs to sign for the gateway). */
  expected: number;
}

class Bench {
  readonly dir = mkdtempSync(join(tmpdir(), 'mandate-gateway-wrk-'));
  /** What (a) and (b) receive in place of the gateway's credentials: a token and a proof of the same size. */
  authorization = '';
  staticProof = '';
  /** Processes whose memory and CPU are sampled during every run. */
  watch: Record<string, number> = {};

  async run(t: Target, o: RunOptions): Promise<Measured> {
    let authorization = this.authorization;
    let proofsFile: string | undefined;
    let proofs: Measured['proofs'];
    if (t.gateway) {
      const { agent } = t.gateway;
      const token = await agent.token();
      authorization = `DPoP ${token}`;
      await listTools(t, authorization, await agent.signer.proof('POST', t.url, { accessToken: token }));
      await checkCall(t, authorization, await agent.signer.proof('POST', t.url, { accessToken: token }));
      proofsFile = join(this.dir, 'proofs.txt');
      const count = Math.ceil(o.expected * PROOF_MARGIN) + 4 * o.connections;
      const signing = await writeProofs(proofsFile, agent.signer, t.url, token, count);
      proofs = { count, seconds: signing };
      // The gateway accepts a proof up to 60 s after its iat (src/delegation/binding/dpop.ts).
      if (signing + o.seconds > PROOF_MAX_AGE_SECONDS - 10) throw new Error(`${t.label}: signing the proofs took ${signing.toFixed(0)} s; the last ones would be too old`);
    } else {
      await checkCall(t, authorization, this.staticProof);
    }
    const requestFile = join(this.dir, 'request.txt');
    writeRequestFile(requestFile, authorization, this.staticProof, BODY);
    const auditBefore = await t.gateway?.server.query<number>('auditSize');
    const callsBefore = await t.upstream?.query<number>('calls');
    const commitsBefore = await t.gateway?.server.query<AuditCommits>('auditCommits');
    await t.gateway?.server.query('loopDelay');
    const report: Measured = await runLoad({
      url: t.url, connections: o.connections, threads: THREADS, seconds: o.seconds, requestFile, proofsFile,
      intervalUs: o.rate === undefined ? undefined : (THREADS * 1e6) / o.rate, watch: this.watch,
    });
    report.proofs = proofs;
    if (report.exhausted > 0) throw new ProofsExhausted(`${t.label}: wrk ran out of DPoP proofs (${report.exhausted} requests without one)`);
    if (report.failures > 0) throw new Error(`${t.label}: ${report.failures} of ${report.requests} requests failed: ${JSON.stringify(report.errors)}`);
    // Requests in flight when wrk stops are served but not counted by wrk: at most one per connection.
    const within = (what: string, n: number) => {
      if (n < report.requests || n > report.requests + o.connections) throw new Error(`${t.label}: ${n} ${what} for ${report.requests} requests`);
    };
    if (auditBefore !== undefined) within('audit events', (await t.gateway?.server.query<number>('auditSize') as number) - auditBefore);
    if (callsBefore !== undefined) within('upstream calls', (await t.upstream?.query<number>('calls') as number) - callsBefore);
    if (commitsBefore !== undefined) {
      const after = await t.gateway?.server.query<AuditCommits>('auditCommits') as AuditCommits;
      const commits = after.commits - commitsBefore.commits;
      const seconds = after.seconds - commitsBefore.seconds;
      report.audit = {
        commits, eventsPerCommit: (after.events - commitsBefore.events) / commits, msPerCommit: (seconds * 1000) / commits,
        share: seconds / report.seconds, over5ms: after.over5ms - commitsBefore.over5ms,
      };
      report.loop = await t.gateway?.server.query<{ p50: number; p99: number; max: number }>('loopDelay');
    }
    return report;
  }

  /**
   * A warm-up run, then the measured run, both as fast as the answers come back. The gateway's run
   * gets proofs for twice the warm-up's rate, or for `ceiling` (the bare proxy's rate) when that
   * was not enough.
   */
  async maxRate(t: Target, ceiling: number): Promise<Measured> {
    const warm = await this.run(t, { seconds: WARMUP_SECONDS, connections: CONNECTIONS, expected: ceiling * WARMUP_SECONDS });
    const measure = (rate: number) => this.run(t, { seconds: SECONDS, connections: CONNECTIONS, expected: rate * SECONDS });
    const report = await measure(Math.min(ceiling, 2 * warm.rate)).catch((err: unknown) => {
      if (err instanceof ProofsExhausted) return measure(ceiling);
      throw err;
    });
    log(`${t.label}, max rate`, report);
    return report;
  }

  /** Paced at `rate`; `sustained` bounds the proofs to sign for a gateway that cannot keep up with it. */
  async paced(t: Target, rate: number, sustained = rate): Promise<Measured> {
    const report = await this.run(t, { seconds: SECONDS, connections: PACED_CONNECTIONS, rate, expected: Math.min(rate, 1.5 * sustained) * SECONDS });
    log(`${t.label}, paced at ${rate.toFixed(0)}/s`, report);
    return report;
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function log(what: string, r: Measured): void {
  const cores = Object.entries(r.processes).map(([name, p]) => `${name} ${p.cores.toFixed(2)} cores (${p.systemCores.toFixed(2)} sys)`).join(', ');
  const busy = r.load.end > cpus().length ? '  (machine busy)' : '';
  console.log(`${what.padEnd(58)} ${r.rate.toFixed(0).padStart(6)}/s  p50 ${r.latencyMs.p50.toFixed(3)} ms  p99 ${r.latencyMs.p99.toFixed(3)} ms  [${cores}; load ${r.load.start.toFixed(1)}→${r.load.end.toFixed(1)}]${busy}`);
  const a = r.audit;
  if (r.proofs) console.log(`${''.padEnd(58)} ${r.proofs.count} DPoP proofs signed in ${r.proofs.seconds.toFixed(1)} s before the run`);
  if (r.loop) console.log(`${''.padEnd(58)} event-loop delay: p50 ${r.loop.p50.toFixed(2)} ms, p99 ${r.loop.p99.toFixed(2)} ms, max ${r.loop.max.toFixed(1)} ms`);
  if (a) console.log(`${''.padEnd(58)} audit: ${a.commits} commits, ${a.eventsPerCommit.toFixed(1)} events and ${a.msPerCommit.toFixed(2)} ms each (${a.over5ms} over 5 ms), ${(a.share * 100).toFixed(0)} % of the run spent committing`);
}

type Row = Result & { load: number };

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** A figure beside its baseline; `met` by `atLeast` (rates) or `atMost` (latency, memory). */
function row(name: string, unit: string, value: number, baseline: number, load: number, target?: { atLeast?: number; atMost?: number }): Row {
  const digits = unit === 'ms' ? 3 : unit === 'cores' ? 2 : 1;
  const goal = target?.atLeast ?? target?.atMost ?? null;
  const met = target?.atLeast !== undefined ? value >= target.atLeast : target?.atMost !== undefined ? value <= target.atMost : null;
  return { name, value: round(value, digits), unit, baseline: round(baseline, digits), ratio: round(value / baseline, 3), target: goal === null ? null : round(goal, digits), met, load: round(load, 2) };
}

/** Achieved rates, latencies and added latency of (b) and (c) paced at the same rate. */
function pacedRows(at: string, rate: number, b: Measured, c: Measured, targets?: { p50: number; p99: number }): Row[] {
  return [
    row(`paced at ${at}: (b) achieved rate`, 'req/s', b.rate, rate, b.load.end),
    row(`paced at ${at}: (c) achieved rate`, 'req/s', c.rate, rate, c.load.end),
    ...(['p50', 'p99'] as const).flatMap((p) => [
      row(`paced at ${at}: (b) ${p} latency`, 'ms', b.latencyMs[p], b.latencyMs[p], b.load.end),
      row(`paced at ${at}: (c) ${p} latency`, 'ms', c.latencyMs[p], b.latencyMs[p], c.load.end),
      row(`paced at ${at}: added ${p} latency (c) - (b)`, 'ms', c.latencyMs[p] - b.latencyMs[p], b.latencyMs[p], c.load.end, targets && { atMost: targets[p] }),
    ]),
  ];
}

function startServers(mode: 'canned' | 'tracker', execArgv?: string[]) {
  return async () => {
    const upstream = await startChild<UpstreamInfo>('./gateway-upstream.ts', [mode]);
    // --expose-gc only lets the benchmark measure the live heap at the end; it changes nothing else.
    const gateway = await startChild<GatewayInfo>('./gateway-server.ts', [upstream.info.url], { execArgv: ['--expose-gc', ...GATEWAY_EXEC_ARGV, ...(execArgv ?? [])] }).catch(async (err) => {
      await upstream.close();
      throw err;
    });
    return { upstream, gateway };
  };
}

function gatewayTarget(label: string, gateway: ChildServer<GatewayInfo>, signer: DpopSigner, upstream?: ChildServer<UpstreamInfo>): Target {
  return { label, url: gateway.info.url, gateway: { server: gateway, agent: new Agent(signer, gateway) }, upstream };
}

/** The gateway's memory after the runs (and before, `idle`), beside the proxy's peak. */
async function memoryRows(gateway: ChildServer<GatewayInfo>, proxy: ChildServer<ProxyInfo>, idle: { rss: number; live: number }, during: number, load: number): Promise<Row[]> {
  const peak = memoryOf(gateway.pid).hwmMb;
  const proxyPeak = memoryOf(proxy.pid).hwmMb;
  await new Promise((r) => setTimeout(r, 2000));
  const after = memoryOf(gateway.pid).rssMb;
  const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MB`;
  const heap = await gateway.query<NodeJS.MemoryUsage>('memory');
  const live = await gateway.query<number>('liveHeap');
  console.log(`gateway memory: VmHWM ${peak.toFixed(1)} MB, largest VmRSS sampled during the runs ${during.toFixed(1)} MB, VmRSS 2 s after ${after.toFixed(1)} MB (proxy VmHWM ${proxyPeak.toFixed(1)} MB)`);
  console.log(`${''.padEnd(16)}before the runs: VmRSS ${idle.rss.toFixed(1)} MB, ${mb(idle.live)} live heap`);
  console.log(`${''.padEnd(16)}after: V8 heap ${mb(heap.heapUsed)} used of ${mb(heap.heapTotal)} (${mb(live)} live after a full GC), external ${mb(heap.external)} (array buffers ${mb(heap.arrayBuffers)})`);
  return [
    row('gateway peak RSS, VmHWM (baseline: proxy VmHWM)', 'MB', peak, proxyPeak, load, { atMost: TARGET_RSS_MB }),
    row('gateway RSS 2 s after the runs, VmRSS', 'MB', after, proxyPeak, load, { atMost: TARGET_RSS_MB }),
    row('gateway RSS before the runs, VmRSS', 'MB', idle.rss, proxyPeak, load),
  ];
}

/** (a), (b), (c) in front of the canned upstream: rates, latency at half of (b)'s rate, memory. */
async function fastUpstream(bench: Bench, signer: DpopSigner): Promise<Row[]> {
  const { upstream, gateway } = await startServers('canned')();
  const proxy = await startChild<ProxyInfo>('./gateway-proxy.ts', [upstream.info.url]);
  const floorProxy = await startChild<ProxyInfo>('./gateway-proxy.ts', [upstream.info.url, 'verify-proof']);
  try {
    const agent = new Agent(signer, gateway);
    const token = await agent.token();
    bench.authorization = `DPoP ${token}`;
    bench.staticProof = await signer.proof('POST', gateway.info.url, { accessToken: token });
    bench.watch = { upstream: upstream.pid, proxy: proxy.pid, floor: floorProxy.pid, gateway: gateway.pid };
    const direct: Target = { label: '(a) upstream directly', url: upstream.info.url, upstream };
    const bare: Target = { label: '(b) bare undici proxy', url: proxy.info.url, upstream };
    const floor: Target = { label: "(b') bare proxy + DPoP proof signature", url: floorProxy.info.url, upstream };
    const full = gatewayTarget('(c) gateway, full checks', gateway, signer, upstream);

    const idle = { rss: memoryOf(gateway.pid).rssMb, live: await gateway.query<number>('liveHeap') };
    const a = await bench.maxRate(direct, 20_000);
    const b = await bench.maxRate(bare, a.rate);
    const f = await bench.maxRate(floor, b.rate);
    const c = await bench.maxRate(full, b.rate);
    const half = b.rate / 2;
    const bp = await bench.paced(bare, half);
    const cp = await bench.paced(full, half, c.rate);
    // For information: both at a rate the gateway sustains, where its latency is its work, not a queue.
    const low = c.rate / 2;
    const bl = await bench.paced(bare, low);
    const cl = await bench.paced(full, low);
    const memory = await memoryRows(gateway, proxy, idle, Math.max(...[a, b, c, bp, cp, bl, cl].map((r) => r.processes.gateway?.maxRssMb ?? 0)), cl.load.end);
    const rates = [
      row('tools/call max rate, (a) upstream directly', 'req/s', a.rate, a.rate, a.load.end),
      row('tools/call max rate, (b) bare undici proxy', 'req/s', b.rate, a.rate, b.load.end),
      row("tools/call max rate, (b') bare proxy + DPoP proof signature (the floor)", 'req/s', f.rate, b.rate, f.load.end),
      row('tools/call max rate, (c) gateway with full checks (target: 0.7 x (b))', 'req/s', c.rate, b.rate, c.load.end, { atLeast: TARGET_RATIO * b.rate }),
      row("tools/call max rate, (c) gateway against (b') the floor", 'req/s', c.rate, f.rate, c.load.end),
      row('gateway CPU during (c) max rate (baseline: proxy during (b))', 'cores', c.processes.gateway?.cores ?? 0, b.processes.proxy?.cores ?? 0, c.load.end),
    ];
    const latency = [
      ...pacedRows("half of (b)'s max rate", half, bp, cp, { p50: TARGET_ADDED_P50_MS, p99: TARGET_ADDED_P99_MS }),
      ...pacedRows("half of (c)'s max rate (information)", low, bl, cl),
    ];
    return [...rates, ...latency, ...memory];
  } finally {
    await Promise.all([proxy.close(), floorProxy.close(), gateway.close()]);
    await upstream.close();
  }
}

/** For information: (a) and (c) in front of the real demo MCP server. */
async function demoTracker(bench: Bench, signer: DpopSigner): Promise<Row[]> {
  const { upstream, gateway } = await startServers('tracker')();
  try {
    bench.watch = { gateway: gateway.pid, tracker: upstream.pid };
    const direct: Target = { label: "(a') demo MCP server directly", url: upstream.info.url };
    const full = gatewayTarget("(c') gateway in front of the demo MCP server", gateway, signer);
    const a = await bench.maxRate(direct, 5000);
    const c = await bench.maxRate(full, a.rate);
    return [
      row("demo MCP server: max rate, (a') directly", 'req/s', a.rate, a.rate, a.load.end),
      row("demo MCP server: max rate, (c') through the gateway", 'req/s', c.rate, a.rate, c.load.end),
      row("demo MCP server: p50 latency at max rate, (c')", 'ms', c.latencyMs.p50, a.latencyMs.p50, c.load.end),
    ];
  } finally {
    await gateway.close();
    await upstream.close();
  }
}

/**
 * One more gateway run under --cpu-prof, as fast as it answers or paced at PROFILE_RATE; prints where
 * its time went during the measured window.
 */
async function profileGateway(bench: Bench, signer: DpopSigner, dir: string): Promise<void> {
  const { upstream, gateway } = await startServers('canned', ['--cpu-prof', `--cpu-prof-dir=${dir}`])();
  let window: { fromUs: number; toUs: number };
  let requests: number;
  try {
    bench.watch = { gateway: gateway.pid };
    const full = gatewayTarget(`(c) gateway under --cpu-prof${PROFILE_RATE === undefined ? '' : `, paced at ${PROFILE_RATE}/s`}`, gateway, signer, upstream);
    const warm = await bench.run(full, { seconds: WARMUP_SECONDS, connections: CONNECTIONS, expected: PROFILE_WARMUP_CEILING * WARMUP_SECONDS });
    const fromUs = await gateway.query<number>('clock');
    const report = PROFILE_RATE === undefined
      ? await bench.run(full, { seconds: SECONDS, connections: CONNECTIONS, expected: 2 * warm.rate * SECONDS })
      : await bench.run(full, { seconds: SECONDS, connections: PACED_CONNECTIONS, rate: PROFILE_RATE, expected: PROFILE_RATE * SECONDS });
    window = { fromUs, toUs: await gateway.query<number>('clock') };
    log(full.label, report);
    requests = report.requests;
  } finally {
    await gateway.close();
    await upstream.close();
  }
  // The main thread's profile: CPU.<date>.<time>.<pid>.0.<seq>.cpuprofile.
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile') && f.includes(`.${gateway.pid}.0.`));
  if (file === undefined) throw new Error(`no CPU profile of process ${gateway.pid} in ${dir}`);
  console.log(`CPU profile: ${join(dir, file)}`);
  printProfile(summariseProfile(join(dir, file), window), requests);
}

export async function runGatewayBench(): Promise<Result[]> {
  const missing = wrkMissing();
  if (missing !== undefined) {
    console.log(`gateway benchmark skipped: ${missing}`);
    return [];
  }
  const bench = new Bench();
  const signer = await DpopSigner.generate('ES256');
  const results: Row[] = [];
  if (PROFILE_DIR !== undefined && !existsSync(PROFILE_DIR)) throw new Error(`BENCH_GATEWAY_PROFILE: ${PROFILE_DIR} does not exist`);
  try {
    if (!PROFILE_ONLY) {
      results.push(...await fastUpstream(bench, signer));
      if (WITH_TRACKER) results.push(...await demoTracker(bench, signer));
    }
    if (PROFILE_DIR !== undefined) await profileGateway(bench, signer, PROFILE_DIR);
  } finally {
    bench.close();
  }
  if (PROFILE_ONLY) return [];
  console.log('');
  for (const r of results) {
    const verdict = r.met === null ? '' : r.met ? `  target ${r.target} met` : `  target ${r.target} NOT met`;
    console.log(`${r.name.padEnd(72)} ${String(r.value).padStart(9)} ${r.unit.padEnd(5)} baseline ${r.baseline}  ratio ${r.ratio}  load ${r.load}${verdict}`);
  }
  console.log(`wrk -t ${THREADS} -c ${CONNECTIONS} -d ${SECONDS}s (paced runs: -c ${PACED_CONNECTIONS}); machine: ${machine()}`);
  console.log(`wrote ${writeResults('gateway', results)}`);
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) await runGatewayBench();
