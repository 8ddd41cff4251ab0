/**
 * Identity authority throughput: X.509-SVID issuance from CSR, JWT-SVID issuance and validation, each
 * beside raw node:crypto ECDSA P-256 signing or verification measured in the same run, in 1 thread and
 * in as many threads as the machine has cores.
 */
import { cpus } from 'node:os';
import { Worker } from 'node:worker_threads';
import { machine, result, writeResults, type Result } from './lib.ts';

const MS = Number(process.env.BENCH_MS ?? 2500);
const boot = new URL('./worker-boot.mjs', import.meta.url);
const module = new URL('./identity-worker.ts', import.meta.url).href;

async function measure(op: string, threads: number): Promise<number> {
  const rates = await Promise.all(Array.from({ length: threads }, () => new Promise<number>((resolve, reject) => {
    const w = new Worker(boot, { workerData: { module, op, ms: MS } });
    w.once('message', resolve);
    w.once('error', reject);
  })));
  return rates.reduce((a, b) => a + b, 0);
}

export async function runIdentityBench(): Promise<Result[]> {
  const threads = cpus().length;
  const results: Result[] = [];
  const cases: Array<[string, string, number]> = [
    ['x509-svid-issue', 'baseline-ecdsa-sign', 1000],
    ['jwt-svid-issue', 'baseline-ecdsa-sign', 10000],
    ['jwt-svid-validate-distinct', 'baseline-ecdsa-verify', 20000],
    ['jwt-svid-validate', 'baseline-ecdsa-verify', 20000],
  ];
  for (const t of [1, threads]) {
    const baselines = new Map<string, number>();
    for (const [op, base, target] of cases) {
      if (!baselines.has(base)) baselines.set(base, await measure(base, t));
      const value = await measure(op, t);
      const r = result(`${op} (${t} thread${t > 1 ? 's' : ''})`, value, baselines.get(base) as number, t === threads ? target : null);
      results.push(r);
      console.log(`${r.name.padEnd(42)} ${r.value.toFixed(0).padStart(8)} ${r.unit}  baseline ${base} ${r.baseline.toFixed(0)}  ratio ${r.ratio}${r.target ? `  target ${r.target} ${r.met ? 'met' : 'NOT met'}` : ''}`);
    }
  }
  console.log(`machine: ${machine()}`);
  console.log(`wrote ${writeResults('identity', results)}`);
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) await runIdentityBench();
