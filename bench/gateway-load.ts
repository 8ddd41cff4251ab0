/**
 * The load side of the gateway benchmark: runs wrk with bench/gateway-wrk.lua against one endpoint
 * and reads its result line; prepares the files the script reads (the request, and the DPoP proofs,
 * each signed with DpopSigner for one use, right before the run that spends them); and watches the
 * server processes during the run through /proc (resident memory, CPU time) and the machine's load.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { DpopSigner } from '../src/sdk/agent/dpop.ts';

const SCRIPT = new URL('./gateway-wrk.lua', import.meta.url).pathname;
/** Proofs signed concurrently: the signer's asynchronous signing then keeps both cores busy. */
const SIGN_BATCH = 256;

export interface LoadOptions {
  url: string;
  connections: number;
  threads: number;
  seconds: number;
  requestFile: string;
  /** One DPoP proof per line (each used once), or none: the request file's static DPoP value. */
  proofsFile?: string;
  /** Paced: each thread sends one request every this many microseconds (see gateway-wrk.lua). */
  intervalUs?: number;
  /** Processes to watch during the run (e.g. the gateway), by name. */
  watch?: Record<string, number>;
}

export interface ProcessUse {
  /** Largest resident set seen during the run, MB (sampled every 100 ms). */
  maxRssMb: number;
  /** CPU time over the run divided by its duration: 1 = one core busy throughout. */
  cores: number;
  /** The part of that in the kernel (system time: sockets, fsync...). */
  systemCores: number;
}

export interface LoadReport {
  requests: number;
  seconds: number;
  rate: number;
  /** Answers with status >= 400, socket errors and timeouts. */
  failures: number;
  /** The same by kind, as wrk counts them. */
  errors: WrkResult['errors'];
  /** Requests sent without a proof because a thread ran out (they fail at the gateway). */
  exhausted: number;
  latencyMs: { mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
  /** 1-minute load average at the start and the end of the run. */
  load: { start: number; end: number };
  processes: Record<string, ProcessUse>;
}

interface WrkResult {
  requests: number;
  duration_us: number;
  errors: Record<'connect' | 'read' | 'write' | 'status' | 'timeout', number>;
  latency_us: { mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
  exhausted: number;
}

/** Whether wrk can be run; undefined when it can, else why not. */
export function wrkMissing(): string | undefined {
  const r = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  if (r.error) return (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'wrk is not installed (apt-get install wrk)' : r.error.message;
  return undefined;
}

/** The request file gateway-wrk.lua reads: Authorization value, static DPoP value, body. */
export function writeRequestFile(path: string, authorization: string, staticProof: string, body: string): void {
  if ([authorization, staticProof, body].some((s) => s.includes('\n'))) throw new Error('request file values must be single lines');
  writeFileSync(path, `${authorization}\n${staticProof}\n${body}\n`);
}

/** Signs `count` proofs for POST `url` carrying `accessToken`, one per line into `path`; returns the seconds it took. */
export async function writeProofs(path: string, signer: DpopSigner, url: string, accessToken: string, count: number): Promise<number> {
  const started = performance.now();
  const lines: string[] = [];
  while (lines.length < count) {
    const n = Math.min(SIGN_BATCH, count - lines.length);
    lines.push(...await Promise.all(Array.from({ length: n }, () => signer.proof('POST', url, { accessToken }))));
  }
  writeFileSync(path, `${lines.join('\n')}\n`);
  return (performance.now() - started) / 1000;
}

const CLOCK_TICKS = 100;

/** User and system CPU seconds of a process (all its threads) so far. */
function cpuSeconds(pid: number): { user: number; system: number } {
  // /proc/<pid>/stat: the command may contain spaces; fields after its closing parenthesis.
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / CLOCK_TICKS, system: Number(fields[12]) / CLOCK_TICKS };
}

/** VmRSS and VmHWM of a process, MB. */
export function memoryOf(pid: number): { rssMb: number; hwmMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

/** Runs wrk once and returns its figures and what the watched processes used meanwhile. */
export async function runLoad(o: LoadOptions): Promise<LoadReport> {
  // A 10 s timeout: wrk's default 2 s would drop the slowest answers from the latency figures.
  const args = ['-c', String(o.connections), '-t', String(o.threads), '-d', `${o.seconds}s`, '--timeout', '10s', '-s', SCRIPT, o.url, '--', o.requestFile, o.proofsFile ?? '-', String(o.threads)];
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.GATEWAY_BENCH_INTERVAL_US;
  if (o.intervalUs !== undefined) env.GATEWAY_BENCH_INTERVAL_US = String(Math.round(o.intervalUs));
  const watch = Object.entries(o.watch ?? {});
  const cpuBefore = watch.map(([, pid]) => cpuSeconds(pid));
  const maxRss = watch.map(() => 0);
  const loadStart = loadavg()[0] as number;
  const started = performance.now();
  const sampler = setInterval(() => watch.forEach(([, pid], i) => { maxRss[i] = Math.max(maxRss[i] as number, memoryOf(pid).rssMb); }), 100);
  let out: string;
  try {
    out = await new Promise<string>((resolve, reject) => {
      const wrk = spawn('wrk', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      wrk.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
      wrk.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      const killer = setTimeout(() => wrk.kill('SIGKILL'), (o.seconds + 30) * 1000);
      wrk.once('error', reject);
      wrk.once('close', (code) => {
        clearTimeout(killer);
        if (code !== 0 || stderr.trim() !== '') reject(new Error(`wrk exited with ${code}: ${stderr.trim() || stdout.trim()}`));
        else resolve(stdout);
      });
    });
  } finally {
    clearInterval(sampler);
  }
  const elapsed = (performance.now() - started) / 1000;
  const line = out.split('\n').find((l) => l.startsWith('GATEWAY_BENCH_RESULT '));
  if (!line) throw new Error(`wrk printed no result: ${out.slice(0, 500)}`);
  const r = JSON.parse(line.slice('GATEWAY_BENCH_RESULT '.length)) as WrkResult;
  const seconds = r.duration_us / 1e6;
  const ms = (us: number) => us / 1000;
  return {
    requests: r.requests,
    seconds,
    rate: r.requests / seconds,
    failures: r.errors.connect + r.errors.read + r.errors.write + r.errors.status + r.errors.timeout,
    errors: r.errors,
    exhausted: r.exhausted,
    latencyMs: { mean: ms(r.latency_us.mean), p50: ms(r.latency_us.p50), p90: ms(r.latency_us.p90), p99: ms(r.latency_us.p99), p999: ms(r.latency_us.p999), max: ms(r.latency_us.max) },
    load: { start: loadStart, end: loadavg()[0] as number },
    processes: Object.fromEntries(watch.map(([name, pid], i) => {
      const before = cpuBefore[i] as { user: number; system: number };
      const now = cpuSeconds(pid);
      const system = (now.system - before.system) / elapsed;
      return [name, { maxRssMb: maxRss[i] as number, cores: (now.user - before.user) / elapsed + system, systemCores: system }];
    })),
  };
}
