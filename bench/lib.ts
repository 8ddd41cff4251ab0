/** Small benchmark harness: fixed-duration loops, ops/s in one or several worker threads, JSON results. */
import { cpus, totalmem } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Result {
  name: string;
  value: number;
  unit: string;
  baseline: number;
  ratio: number;
  target: number | null;
  met: boolean | null;
}

export function machine(): string {
  const c = cpus();
  return `${c.length} x ${c[0]?.model.trim() ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${process.platform}`;
}

/**
 * Runs `op` for `ms` milliseconds (after a warm-up) and returns operations per second. Each round
 * starts `batch` operations at once, as a server does with concurrent requests: asynchronous crypto
 * then spreads over libuv's thread pool, synchronous work simply runs back to back.
 */
export async function opsPerSecond(op: () => unknown | Promise<unknown>, ms = 2000, batch = 64): Promise<number> {
  const round = () => Promise.all(Array.from({ length: batch }, op));
  const warmUntil = performance.now() + 300;
  while (performance.now() < warmUntil) await round();
  let count = 0;
  const start = performance.now();
  const end = start + ms;
  while (performance.now() < end) {
    await round();
    count += batch;
  }
  return count / ((performance.now() - start) / 1000);
}

export function result(name: string, value: number, baseline: number, target: number | null, unit = 'ops/s'): Result {
  const round = (n: number) => Math.round(n * 10) / 10;
  return { name, value: round(value), unit, baseline: round(baseline), ratio: Math.round((value / baseline) * 1000) / 1000, target, met: target === null ? null : value >= target };
}

export function writeResults(benchName: string, results: Result[]): string {
  const dir = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${benchName}.json`);
  writeFileSync(path, JSON.stringify({ machine: machine(), date: new Date().toISOString(), results }, null, 2) + '\n');
  return path;
}
