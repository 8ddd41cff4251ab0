/**
 * Policy engine throughput: `decide()` against a generated, realistic 100-policy set (10 tool servers,
 * 50 tools with typed arguments in schema fragments, per-tool argument rules, group rules, forbids,
 * business hours, mandate constraints, agent metadata), on one core (this thread, synchronous), with
 * p50/p99 latency, beside the fixed cost of one call into the Cedar engine measured in the same run.
 *
 * Three request streams: every request distinct (fresh arguments and time: nothing can be cached), a
 * production-like stream in which agents repeat calls (same agent, person, tool and arguments within a
 * minute, as agents retry and page), and one with arguments of the wrong type (denied with an error).
 */
import { compilePolicySet, type CompiledPolicySet, type SourceFile } from '../src/policy/policy-set.ts';
import { cedar } from '../src/policy/cedar.ts';
import { decide, type DecisionRequest } from '../src/policy/decide.ts';
import { machine, result, writeResults, type Result } from './lib.ts';

const MS = Number(process.env.BENCH_POLICY_MS ?? 3000);
/** Requests per stream: more than a run decides, so no request is decided twice unless the stream repeats it. */
const STREAM = Number(process.env.BENCH_POLICY_REQUESTS ?? 100_000);
const TARGET = 20_000;
const P99_TARGET_US = 200;

type Kind = 'read' | 'write' | 'money' | 'delete';
interface Tool { name: string; kind: Kind }

const SERVERS: Array<{ name: string; tools: Tool[] }> = [
  ['billing', ['invoice_get:read', 'invoices_list:read', 'refund:money', 'charge:money', 'customer_delete:delete']],
  ['github', ['issue_get:read', 'search_code:read', 'issue_comment:write', 'pr_create:write', 'repo_delete:delete']],
  ['jira', ['ticket_get:read', 'tickets_search:read', 'ticket_update:write', 'ticket_create:write', 'project_delete:delete']],
  ['slack', ['channel_history:read', 'users_list:read', 'message_post:write', 'channel_create:write', 'channel_archive:delete']],
  ['gdrive', ['file_get:read', 'files_search:read', 'file_share:write', 'file_upload:write', 'file_delete:delete']],
  ['postgres', ['query:read', 'schema_get:read', 'row_insert:write', 'row_update:write', 'table_drop:delete']],
  ['k8s', ['pods_list:read', 'logs_get:read', 'deployment_scale:write', 'deployment_restart:write', 'namespace_delete:delete']],
  ['email', ['inbox_search:read', 'message_get:read', 'message_send:write', 'draft_create:write', 'message_delete:delete']],
  ['calendar', ['events_list:read', 'freebusy:read', 'event_create:write', 'expense_submit:money', 'event_delete:delete']],
  ['crm', ['contact_get:read', 'deals_search:read', 'deal_update:money', 'contact_create:write', 'account_delete:delete']],
].map(([name, tools]) => ({ name: name as string, tools: (tools as string[]).map((t) => { const [n, k] = t.split(':'); return { name: n as string, kind: k as Kind }; }) }));

const COMMON = 'onBehalfOf: Mandate::Principal, mandate?: Mandate::Mandate, scopes: Set<String>, chain: Mandate::Chain, now: datetime, hour: Long, weekday: Long, clientAddress?: ipaddr, binding: String';
const ARGS: Record<Kind, string> = {
  read: '{ query: String, limit: Long, fields?: Set<String> }',
  write: '{ target: String, body: String, labels: Set<String>, notify?: Bool }',
  money: '{ amount: decimal, currency: String, customer: String, note?: String }',
  delete: '{ id: String, force: Bool, reason: String }',
};

function action(server: string, tool: string): string {
  return `Mandate::Tools::${server}::Action::"${tool}"`;
}

/** The schema fragments and the 100 policies. */
export function policySources(): { policies: SourceFile[]; schemas: SourceFile[] } {
  const schemas: SourceFile[] = [];
  const policies: SourceFile[] = [];
  for (const s of SERVERS) {
    schemas.push({
      file: `${s.name}.cedarschema`,
      text: `namespace Mandate::Tools::${s.name} {\n${s.tools.map((t) => `  action "${t.name}" in [Mandate::Action::"tools/call"] appliesTo {\n    principal: [Mandate::Agent], resource: [Mandate::Tool],\n    context: { ${COMMON},\n      arguments: ${ARGS[t.kind]} }\n  };`).join('\n')}\n}\n`,
    });
    const p: string[] = [];
    for (const t of s.tools) {
      const a = action(s.name, t.name);
      if (t.kind === 'read') {
        p.push(`@id("${s.name}.${t.name}")\n@reason("reading ${s.name} needs ${s.name}:read and a bounded page")\npermit(principal, action == ${a}, resource)\nwhen { context.scopes.contains("${s.name}:read") && context.arguments.limit <= 200 && !(context.arguments.query like "*password*") };`);
      } else if (t.kind === 'write') {
        p.push(`@id("${s.name}.${t.name}")\n@reason("${s.name} writers may ${t.name.replace('_', ' ')} in their team's space")\npermit(principal, action == ${a}, resource)\nwhen { context.scopes.contains("${s.name}:write") && context.onBehalfOf in Mandate::Group::"${s.name}-writers" && context.arguments.labels.containsAny(["team", "ops", "eng"]) && !(context.arguments.target like "*/private/*") };`);
      } else if (t.kind === 'money') {
        p.push(`@id("${s.name}.${t.name}.small")\n@reason("amounts under 100 EUR need no approval")\npermit(principal, action == ${a}, resource)\nwhen { context.scopes.contains("${s.name}:pay") && context.arguments.currency == "EUR" && context.arguments.amount.lessThan(decimal("100.0")) };`);
        p.push(`@id("${s.name}.${t.name}.large")\n@reason("larger amounts need a finance approver")\n@approval("required")\npermit(principal, action == ${a}, resource)\nwhen { context.scopes.contains("${s.name}:pay") && context.onBehalfOf in Mandate::Group::"finance" && context.arguments.amount.lessThan(decimal("10000.0")) };`);
      } else {
        p.push(`@id("${s.name}.${t.name}")\n@reason("admins may delete, with approval")\n@approval("required")\npermit(principal, action == ${a}, resource)\nwhen { context.onBehalfOf in Mandate::Group::"admins" && context.arguments.reason != "" && context.binding != "none" };`);
        p.push(`@id("${s.name}.${t.name}.hours")\n@reason("no deletions outside business hours")\nforbid(principal, action == ${a}, resource)\nwhen { context.hour < 8 || context.hour >= 18 || context.weekday > 5 };`);
      }
    }
    p.push(`@id("${s.name}.list")\n@reason("listing ${s.name}'s tools needs a ${s.name} scope")\npermit(principal, action in [Mandate::Action::"tools/list", Mandate::Action::"resources/list", Mandate::Action::"prompts/list"], resource == Mandate::ToolServer::"${s.name}")\nwhen { context.scopes.contains("${s.name}:read") || context.scopes.contains("${s.name}:write") };`);
    p.push(`@id("${s.name}.resources")\n@reason("${s.name} resources are readable with ${s.name}:read")\npermit(principal, action == Mandate::Action::"resources/read", resource in Mandate::ToolServer::"${s.name}")\nwhen { context.scopes.contains("${s.name}:read") && !(resource.uri like "*secret*") };`);
    p.push(`@id("${s.name}.sandbox")\n@reason("sandbox agents stay away from ${s.name}'s writes")\nforbid(principal, action in Mandate::Action::"tools/call", resource in Mandate::ToolServer::"${s.name}")\nwhen { principal.hasTag("environment") && principal.getTag("environment") == "sandbox" && !resource.readOnly };`);
    policies.push({ file: `${s.name}.cedar`, text: p.join('\n\n') + '\n' });
  }
  const global = [
    `@id("read-only")\n@reason("read-only tools are fine for agents of our trust domain")\npermit(principal, action in Mandate::Action::"tools/call", resource)\nwhen { resource.readOnly && principal.trustDomain == "example.org" };`,
    `@id("no-deep-chains")\n@reason("delegation chains stop at three agents")\nforbid(principal, action, resource) when { context.chain.length > 3 };`,
    `@id("bound-writes")\n@reason("writes need a sender-constrained token")\nforbid(principal, action in Mandate::Action::"tools/call", resource is Mandate::Tool) when { !resource.readOnly && context.binding == "none" };`,
    `@id("mandate-read-only")\n@reason("a read-only mandate allows no writes")\nforbid(principal, action in Mandate::Action::"tools/call", resource is Mandate::Tool)\nwhen { context has mandate && context.mandate.hasTag("read_only") && context.mandate.getTag("read_only") == "true" && !resource.readOnly };`,
    `@id("mandate-expired")\n@reason("an expired mandate allows nothing")\nforbid(principal, action, resource) when { context has mandate && context.mandate.expiresAt < context.now };`,
    `@id("blocked-network")\n@reason("requests from the quarantine network are refused")\nforbid(principal, action, resource) when { context has clientAddress && context.clientAddress.isInRange(ip("203.0.113.0/24")) };`,
    `@id("contractors-no-delete")\n@reason("contractors never delete")\nforbid(principal, action in Mandate::Action::"tools/call", resource is Mandate::Tool) when { context.onBehalfOf in Mandate::Group::"contractors" && resource.destructive };`,
    `@id("http-read")\n@reason("HTTP reads need the api:read scope")\npermit(principal, action == Mandate::Action::"http", resource) when { resource.method == "GET" && context.scopes.contains("api:read") };`,
    `@id("prompts")\n@reason("prompts are shared")\npermit(principal, action == Mandate::Action::"prompts/get", resource);`,
    `@id("quarantined-agents")\n@reason("agents their owner quarantined do nothing")\nforbid(principal, action, resource) when { principal.hasTag("status") && principal.getTag("status") == "quarantined" };`,
  ];
  policies.push({ file: 'global.cedar', text: global.join('\n\n') + '\n' });
  return { policies, schemas };
}

/** A small deterministic PRNG, so every run decides the same requests. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const GROUPS = ['finance', 'admins', 'contractors', 'staff', 'oncall', ...SERVERS.map((s) => `${s.name}-writers`)];
const BASE_TIME = Date.UTC(2026, 10, 24, 7, 59, 30); // a Tuesday, 07:59:30 UTC: the stream crosses 08:00
/** The stream's clock: a busy gateway, 200 decisions per second of clock time. */
const CLOCK_STEP_MS = 5;

interface Population { agents: DecisionRequest['agent'][]; people: Array<{ principal: DecisionRequest['principal']; mandate: NonNullable<DecisionRequest['mandate']> }> }

function population(rand: () => number): Population {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const agents = Array.from({ length: 200 }, (_, i) => ({
    spiffeId: `spiffe://${i % 20 === 0 ? 'partner.example' : 'example.org'}/agents/${pick(['support', 'finance', 'devops', 'sales'])}/bot-${i}`,
    metadata: { owner: `team-${i % 12}`, environment: i % 10 === 0 ? 'sandbox' : 'production', ...(i % 97 === 0 && { status: 'quarantined' }), model: pick(['gpt', 'claude', 'llama']) },
  }));
  const people = Array.from({ length: 1000 }, (_, i) => {
    const groups = Array.from(new Set(Array.from({ length: 1 + Math.floor(rand() * 4) }, () => pick(GROUPS))));
    const servers = SERVERS.filter(() => rand() < 0.4).map((s) => s.name);
    const scopes = servers.flatMap((s) => [`${s}:read`, ...(rand() < 0.6 ? [`${s}:write`] : []), ...(rand() < 0.3 ? [`${s}:pay`] : [])]);
    return {
      principal: { issuer: 'https://idp.example.org', subject: `user-${i}`, name: `User ${i}`, groups },
      mandate: {
        id: `mnd_${i.toString(36).padStart(8, '0')}`, scopes, expiresAt: new Date(BASE_TIME + (rand() < 0.02 ? -1 : 1) * 86_400_000), maxDepth: 2,
        constraints: { ...(rand() < 0.1 && { read_only: 'true' }), max_amount: 500, currencies: ['EUR', 'USD'] },
      },
    };
  });
  return { agents, people };
}

function args(kind: Kind, rand: () => number, wrongType: boolean): Record<string, unknown> {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const n = Math.floor(rand() * 1e6);
  switch (kind) {
    case 'read': return { query: `status:open owner:user-${n % 500}${rand() < 0.02 ? ' password' : ''}`, limit: wrongType ? '50' : pick([10, 20, 50, 100, 500]), ...(rand() < 0.5 && { fields: ['id', 'title', 'status'] }) };
    case 'write': return { target: `acme/${rand() < 0.05 ? 'private' : 'public'}/item-${n}`, body: `Update ${n}: see the attached notes.`, labels: wrongType ? 'team' : [pick(['team', 'ops', 'eng', 'misc'])], ...(rand() < 0.5 && { notify: rand() < 0.5 }) };
    case 'money': return { amount: wrongType ? '12.5' : Math.round(rand() * 50_000) / 100, currency: pick(['EUR', 'EUR', 'USD']), customer: `cus_${n}`, ...(rand() < 0.3 && { note: 'goodwill' }) };
    case 'delete': return { id: `obj_${n}`, force: wrongType ? 1 : rand() < 0.2, reason: rand() < 0.9 ? 'cleanup requested by owner' : '' };
  }
}

/** `count` requests; `repeat` is the chance a request repeats one of the last 256 (same inputs, up to 1.3 s later). */
export function requests(count: number, seed: number, opts: { repeat?: number; wrongType?: boolean } = {}): DecisionRequest[] {
  const rand = prng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const { agents, people } = population(prng(1));
  const out: DecisionRequest[] = [];
  for (let i = 0; i < count; i++) {
    const now = new Date(BASE_TIME + i * CLOCK_STEP_MS);
    if (out.length > 0 && rand() < (opts.repeat ?? 0)) {
      const earlier = out[Math.max(0, out.length - 1 - Math.floor(rand() * 256))] as DecisionRequest;
      out.push({ ...earlier, now });
      continue;
    }
    const agent = pick(agents);
    const { principal, mandate } = pick(people);
    const server = pick(SERVERS);
    const roll = rand();
    const chain = rand() < 0.8 ? [agent.spiffeId] : rand() < 0.9 ? [agent.spiffeId, pick(agents).spiffeId] : [agent.spiffeId, pick(agents).spiffeId, pick(agents).spiffeId, pick(agents).spiffeId];
    let act: DecisionRequest['action'];
    if (roll < 0.75) {
      const tool = pick(server.tools);
      act = { kind: 'mcp', method: 'tools/call', server: server.name, tool: { name: tool.name, annotations: { readOnlyHint: tool.kind === 'read', destructiveHint: tool.kind === 'delete', idempotentHint: tool.kind === 'read', openWorldHint: false } }, arguments: args(tool.kind, rand, opts.wrongType === true) };
    } else if (roll < 0.88) {
      act = { kind: 'mcp', method: 'tools/list', server: server.name };
    } else if (roll < 0.96) {
      act = { kind: 'mcp', method: 'resources/read', server: server.name, resourceUri: `${server.name}://docs/${rand() < 0.05 ? 'secret' : 'guide'}-${Math.floor(rand() * 100)}` };
    } else {
      act = { kind: 'http', server: 'api', method: pick(['GET', 'GET', 'POST']), pathTemplate: pick(['/v1/orders/{id}', '/v1/customers', '/v1/reports/{year}']) };
    }
    out.push({
      agent, principal, mandate, action: act, scopes: mandate.scopes, chain, now,
      ...(rand() < 0.9 && { clientAddress: rand() < 0.01 ? '203.0.113.7' : `10.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}` }),
      binding: pick(['dpop', 'dpop', 'mtls', 'none']),
    });
  }
  return out;
}

interface Run { perSecond: number; p50: number; p99: number; decisions: Record<string, number> }

/**
 * Decides requests back to back on this thread for `ms` or until the `n` requests are used up (none is
 * decided twice unless the stream repeats it), timing each one; the warm-up decides other requests.
 */
function measure(op: (i: number) => string, n: number, ms: number, warm: (i: number) => unknown): Run {
  const warmUntil = performance.now() + Math.min(500, ms / 4);
  for (let i = 0; performance.now() < warmUntil; i++) warm(i);
  const latencies = new Float64Array(n);
  const decisions: Record<string, number> = {};
  let count = 0;
  const start = performance.now();
  const end = start + ms;
  let t = start;
  while (t < end && count < n) {
    const outcome = op(count);
    const after = performance.now();
    latencies[count++] = after - t;
    t = after;
    decisions[outcome] = (decisions[outcome] ?? 0) + 1;
  }
  const sorted = latencies.subarray(0, count).sort();
  const at = (p: number) => (sorted[Math.min(count - 1, Math.floor((p / 100) * count))] as number) * 1000;
  return { perSecond: count / ((t - start) / 1000), p50: at(50), p99: at(99), decisions };
}

/**
 * Baseline: one call into Cedar's wasm engine with nothing to carry — a pre-parsed one-policy set, no
 * schema, no entities, an empty context. Every decision pays at least this crossing; the ratio says
 * how many such crossings a real decision costs.
 */
function baseline(ms: number): Run {
  const id = `bench-baseline-${process.pid}`;
  if (cedar.preparsePolicySet(id, { staticPolicies: 'permit(principal, action, resource);' }).type !== 'success') throw new Error('baseline policy did not parse');
  const call = { principal: { type: 'Mandate::Agent', id: 'a' }, action: { type: 'Mandate::Action', id: 'tools/call' }, resource: { type: 'Mandate::Tool', id: 't' }, context: {}, entities: [], preparsedPolicySetId: id };
  const op = () => {
    const answer = cedar.statefulIsAuthorized(call);
    return answer.type === 'success' ? answer.response.decision : 'failure';
  };
  return measure(op, 10_000_000, ms, op);
}

function row(name: string, run: Run, base: Run, target: number | null): Result[] {
  const us = (n: number) => Math.round(n * 10) / 10;
  return [
    result(`${name}`, run.perSecond, base.perSecond, target, 'decisions/s'),
    { ...result(`${name} p50 latency`, run.p50, base.p50, null, 'us'), value: us(run.p50), baseline: us(base.p50) },
    { ...result(`${name} p99 latency`, run.p99, base.p99, null, 'us'), value: us(run.p99), baseline: us(base.p99), target: target === null ? null : P99_TARGET_US, met: target === null ? null : run.p99 <= P99_TARGET_US },
  ];
}

export async function runPolicyBench(): Promise<Result[]> {
  const set: CompiledPolicySet = compilePolicySet(policySources());
  const streams: Array<[string, DecisionRequest[], number | null]> = [
    ['decide, every request distinct', requests(STREAM, 7), TARGET],
    ['decide, agents repeating calls (30 % repeats)', requests(STREAM, 8, { repeat: 0.3 }), TARGET],
    ['decide, arguments of the wrong type', requests(STREAM / 4, 9, { wrongType: true }).filter((r) => r.action.kind === 'mcp' && r.action.method === 'tools/call'), null],
  ];
  const warmList = requests(5_000, 99);
  const base = baseline(MS);
  console.log(`${set.policies.size} policies, ${set.actions.size} actions; baseline (one bare Cedar call): ${base.perSecond.toFixed(0)}/s p50 ${base.p50.toFixed(1)} us p99 ${base.p99.toFixed(1)} us`);
  const results: Result[] = [];
  for (const [name, list, target] of streams) {
    const run = measure((i) => decide(set, list[i] as DecisionRequest).decision, list.length, MS, (i) => decide(set, warmList[i % warmList.length] as DecisionRequest));
    results.push(...row(name, run, base, target));
    const mix = Object.entries(run.decisions).map(([k, v]) => `${k} ${Math.round((v / Object.values(run.decisions).reduce((a, b) => a + b, 0)) * 100)} %`).join(', ');
    console.log(`${name.padEnd(48)} ${run.perSecond.toFixed(0).padStart(7)} decisions/s  p50 ${run.p50.toFixed(1)} us  p99 ${run.p99.toFixed(1)} us  ratio ${(run.perSecond / base.perSecond).toFixed(3)}${target ? `  target ${target}/s, p99 <= ${P99_TARGET_US} us: ${run.perSecond >= target && run.p99 <= P99_TARGET_US ? 'met' : 'NOT met'}` : ''}  (${mix})`);
  }
  console.log(`machine: ${machine()}`);
  console.log(`wrote ${writeResults('policy', results)}`);
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) await runPolicyBench();
