/**
 * Where the gateway's time goes: reads a V8 CPU profile (`node --cpu-prof`) of the gateway process
 * and sums its samples by component of the request path — token verification, DPoP proof, policy,
 * audit, upstream credentials, JSON-RPC, the gateway's forwarding and relaying, HTTP, undici, GC —
 * and by function (self time). A sample belongs to the innermost frame of Mandate's own code on its
 * stack (so ECDSA inside jose called from the token verifier counts as token verification); samples
 * with no such frame go by their leaf (node's HTTP, undici, GC, idle).
 *
 * Usage: node --import tsx bench/gateway-profile.ts <file.cpuprofile> [from-µs to-µs [requests]]
 *   (the optional window is in the profile's clock, CLOCK_MONOTONIC µs, as process.hrtime gives it;
 *   with the number of requests served in it, times per request are printed too)
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/**
 * Source files by component, first match wins; a sample goes to the innermost frame that matches.
 * jose is on the gateway's path only through the access-token verifier (jwtVerify); the DPoP check
 * and token minting use node:crypto directly.
 */
const COMPONENTS: Array<[RegExp, string]> = [
  [/\/src\/delegation\/binding\//, 'DPoP proof check (signature, key, replay cache)'],
  [/\/src\/delegation\/tokens\/(verify|claims|revocation)\.ts|\/src\/gateway\/caller\.ts|\/node_modules\/jose\//, 'access token verification (jose)'],
  [/\/src\/delegation\/tokens\/(mint|upstream|txn-token|signing-keys)\.ts|\/src\/gateway\/wiring\.ts/, 'upstream credentials (OBO token + Txn-Token signing)'],
  [/\/src\/policy\/|\/src\/gateway\/policy\.ts|cedar|^wasm:/, 'policy decision (Cedar)'],
  [/\/src\/audit\/|\/src\/store\/|better-sqlite3/, 'audit record (event, hash, SQLite group commit)'],
  [/\/src\/gateway\/mcp\//, 'JSON-RPC parsing and checks'],
  [/\/undici\//, 'undici (upstream HTTP client)'],
  [/\/src\/observability\/|@opentelemetry|prom-client|pino/, 'metrics, tracing, logging'],
  [/\/src\/gateway\//, 'gateway request handling (routing, forwarding, relaying)'],
  [/\/src\/server\//, 'HTTP server helpers (body, responses)'],
  [/\/src\//, 'other Mandate code'],
];

/** Stacks with no frame of the above: node's own work by the leaf. */
function leafComponent(frame: ProfileNode['callFrame']): string {
  const { functionName: fn, url } = frame;
  if (fn === '(garbage collector)') return 'garbage collection';
  if (fn === '(program)') return 'V8/native, unattributed (program)';
  if (/^node:/.test(url) || url === '') return 'node: HTTP server, sockets, streams, timers, microtasks';
  return 'other libraries';
}

export interface ProfileSummary {
  /** Sampled milliseconds in the window, and those not idle. */
  totalMs: number;
  busyMs: number;
  /** Share of the busy time per component, largest first. */
  components: Array<{ component: string; ms: number; share: number }>;
  /** Self time per function, largest first (top 25). */
  functions: Array<{ fn: string; ms: number; share: number }>;
}

export function summariseProfile(path: string, window?: { fromUs: number; toUs: number }): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const componentOf = new Map<number, string>();
  const component = (id: number): string => {
    const known = componentOf.get(id);
    if (known !== undefined) return known;
    let found: string | undefined;
    for (let at: number | undefined = id; at !== undefined && found === undefined; at = parent.get(at)) {
      const url = byId.get(at)?.callFrame.url ?? '';
      found = COMPONENTS.find(([re]) => re.test(url))?.[1];
    }
    const result = found ?? leafComponent((byId.get(id) as ProfileNode).callFrame);
    componentOf.set(id, result);
    return result;
  };
  const comps = new Map<string, number>();
  const fns = new Map<string, number>();
  let t = profile.startTime;
  let total = 0;
  let idle = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    if (window && (t < window.fromUs || t > window.toUs)) return;
    const frame = (byId.get(id) as ProfileNode).callFrame;
    total += dt;
    if (frame.functionName === '(idle)') {
      idle += dt;
      return;
    }
    const c = component(id);
    comps.set(c, (comps.get(c) ?? 0) + dt);
    const where = frame.url === '' ? '' : ` ${frame.url.replace(/^.*\/(node_modules|src|bench)\//, '$1/')}:${frame.lineNumber + 1}`;
    const fn = `${frame.functionName || '(anonymous)'}${where}`;
    fns.set(fn, (fns.get(fn) ?? 0) + dt);
  });
  const busy = total - idle;
  const ranked = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]).map(([k, us]) => ({ k, ms: us / 1000, share: us / busy }));
  return {
    totalMs: total / 1000,
    busyMs: busy / 1000,
    components: ranked(comps).map(({ k, ms, share }) => ({ component: k, ms, share })),
    functions: ranked(fns).slice(0, 25).map(({ k, ms, share }) => ({ fn: k, ms, share })),
  };
}

/** Prints the summary; with the number of requests served in the window, the time per request too. */
export function printProfile(s: ProfileSummary, requests?: number): void {
  const perRequest = (ms: number) => (requests ? `  ${((ms * 1000) / requests).toFixed(1).padStart(6)} µs/request` : '');
  console.log(`profile: ${s.totalMs.toFixed(0)} ms sampled, ${s.busyMs.toFixed(0)} ms busy (${((s.busyMs / s.totalMs) * 100).toFixed(0)} %)${perRequest(s.busyMs)}`);
  console.log('share of busy time by component:');
  for (const c of s.components) console.log(`  ${(c.share * 100).toFixed(1).padStart(5)} %${perRequest(c.ms)}  ${c.component}`);
  console.log('self time by function (top 25):');
  for (const f of s.functions) console.log(`  ${(f.share * 100).toFixed(1).padStart(5)} %  ${f.fn}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [file, from, to, requests] = process.argv.slice(2);
  if (file === undefined) throw new Error('usage: gateway-profile.ts <file.cpuprofile> [from-µs to-µs [requests]]');
  printProfile(summariseProfile(file, from !== undefined && to !== undefined ? { fromUs: Number(from), toUs: Number(to) } : undefined), requests === undefined ? undefined : Number(requests));
}
