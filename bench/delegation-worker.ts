/**
 * The load client of the token-exchange benchmark, in its own thread so its work does not run on the
 * server's event loop: one simulated agent per connection of an undici Pool (keep-alive), each with its
 * own DPoP key and a fixed request body (subject token, JWT-SVID as actor token and client assertion,
 * resource). Every request needs a fresh DPoP proof (the server refuses a replayed `jti`), so all
 * proofs are signed before the timed window; the window then only sends. Run by delegation.bench.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Pool } from 'undici';
import { DpopSigner } from '../src/sdk/agent/dpop.ts';

export interface ClientAgent {
  /** The form body of this agent's exchange request, without the DPoP proof (which is a header). */
  body: string;
}

export interface ClientJob {
  origin: string;
  /** The token endpoint URL: the proofs' `htu`. */
  endpoint: string;
  agents: ClientAgent[];
  /** Requests before the timed window (connections, JIT, caches), spread over the agents. */
  warmup: number;
  /** The timed window ends after this many milliseconds or this many requests, whichever comes first. */
  ms: number;
  maxRequests: number;
}

export interface ClientReport {
  requests: number;
  seconds: number;
  /** Milliseconds from sending a request to having read its whole response, sorted. */
  latencies: number[];
  /** Seconds spent signing DPoP proofs before the window (not measured). */
  proofSeconds: number;
  /** The first response body, for the caller to check what was issued. */
  sample: string;
}

const job = workerData.job as ClientJob;
const path = new URL(job.endpoint).pathname;
// Agents do not all get the same share of the requests: a quarter more proofs than an even share.
const perAgent = Math.ceil((1.25 * (job.warmup + job.maxRequests)) / job.agents.length);

const proofStart = performance.now();
const proofs = await Promise.all(job.agents.map(async () => {
  const signer = await DpopSigner.generate('ES256');
  const list: string[] = [];
  for (let i = 0; i < perAgent; i++) list.push(await signer.proof('POST', job.endpoint));
  return list;
}));
const proofSeconds = (performance.now() - proofStart) / 1000;

const pool = new Pool(job.origin, { connections: job.agents.length, pipelining: 1 });
let sample = '';

async function exchange(agent: number, proof: string): Promise<number> {
  const start = performance.now();
  const res = await pool.request({
    method: 'POST', path,
    headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof },
    body: (job.agents[agent] as ClientAgent).body,
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`token exchange answered ${res.statusCode}: ${text}`);
  if (sample === '') sample = text;
  return performance.now() - start;
}

/** Each agent sends one request at a time (a client per connection) until `stop` says so. */
async function drive(stop: (sent: number) => boolean, latencies?: number[]): Promise<number> {
  let sent = 0;
  const next: number[] = proofs.map(() => 0);
  await Promise.all(job.agents.map(async (_, agent) => {
    const mine = proofs[agent] as string[];
    while (!stop(sent) && (next[agent] as number) < mine.length) {
      sent++;
      const took = await exchange(agent, mine[(next[agent] as number)++] as string);
      latencies?.push(took);
    }
  }));
  for (const [agent, used] of next.entries()) (proofs[agent] as string[]).splice(0, used);
  return sent;
}

await drive((sent) => sent >= job.warmup);
const latencies: number[] = [];
const start = performance.now();
const end = start + job.ms;
const requests = await drive((sent) => sent >= job.maxRequests || performance.now() >= end, latencies);
const seconds = (performance.now() - start) / 1000;
await pool.close();
latencies.sort((a, b) => a - b);
parentPort?.postMessage({ requests, seconds, latencies, proofSeconds, sample } satisfies ClientReport);
