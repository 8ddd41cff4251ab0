/**
 * "What may this agent do for this person?" — across every action the schema knows (each generated
 * per-tool action, and the generic MCP and HTTP actions), by Cedar's partial evaluation: what is
 * known (the agent, the person and their groups, optionally scopes and the delegation chain) is
 * given; what is not (the resource's attributes, the arguments, the time, the mandate, the client
 * address, the binding) is left unknown. Each action comes back allowed, denied, or conditional with
 * the residual conditions that decide it.
 *
 * @example
 *   for (const a of whatCan(set, { agent: 'spiffe://example.org/agent/triage-bot', principal: { issuer, subject: 'alice' } }))
 *     console.log(a.action, a.answer, a.conditions.map((c) => c.text));
 */
import { cedar, type EntityJson, type PolicyJson } from './cedar.ts';
import type { ActionKey, CompiledPolicySet } from './policy-set.ts';

export interface CanQuery {
  agent: string;
  principal: { issuer: string; subject: string; groups?: string[] };
  /** Known scopes; unknown when absent. */
  scopes?: string[];
  /** Known delegation chain, outermost first; unknown when absent. */
  chain?: string[];
}

export interface CanAnswer {
  action: ActionKey;
  answer: 'allowed' | 'denied' | 'conditional';
  /** For conditional answers: the policies still undecided, with what they still depend on. */
  conditions: Array<{ policy: string; effect: 'permit' | 'forbid'; reason: string | undefined; text: string }>;
  errors: string[];
}

const unknown = (name: string) => ({ __extn: { fn: 'unknown', arg: name } });

function parse(key: ActionKey): { type: string; id: string } {
  const i = key.indexOf('::"');
  return { type: key.slice(0, i), id: JSON.parse(key.slice(i + 2)) as string };
}

function residualText(json: PolicyJson): string {
  const answer = cedar.policyToText(json);
  if (answer.type !== 'success') return JSON.stringify(json.conditions);
  // Only the conditions, without annotations and the `true &&` that evaluation left behind.
  const text = answer.text.replace(/\s+/g, ' ').trim();
  const body = text.slice(text.indexOf(') when') + 2).replace(/true && /g, '');
  return `${json.effect} ${body}`;
}

export function whatCan(set: CompiledPolicySet, q: CanQuery): CanAnswer[] {
  const known = knownParts(q);
  return [...set.actions].map(([action, groups]) => partialAnswer(set, known, action, groups, null, []));
}

/**
 * The same question for one action on one known resource (a listed prompt or resource, from
 * `listedItem`): what stays unknown is the context. Undefined when the set has no such action.
 *
 * @example
 *   const item = listedItem('issues', { prompt: 'triage' });
 *   whatCanOn(set, query, actionKey('Mandate::Action', 'prompts/get'), item)?.answer // 'allowed' | 'denied' | 'conditional'
 */
export function whatCanOn(set: CompiledPolicySet, q: CanQuery, action: ActionKey, resource: { uid: { type: string; id: string }; entities: EntityJson[] }): CanAnswer | undefined {
  const groups = set.actions.get(action);
  if (groups === undefined) return undefined;
  return partialAnswer(set, knownParts(q), action, groups, resource.uid, resource.entities);
}

/** What the query makes known: the agent, the person and their groups, and the context around them. */
function knownParts(q: CanQuery): { agent: string; entities: EntityJson[]; context: Record<string, unknown> } {
  const principalId = `${q.principal.issuer}#${q.principal.subject}`;
  const rest = q.agent.startsWith('spiffe://') ? q.agent.slice(9) : q.agent;
  const slash = rest.indexOf('/');
  const entities: EntityJson[] = [
    { uid: { type: 'Mandate::Agent', id: q.agent }, attrs: { spiffeId: q.agent, trustDomain: slash < 0 ? rest : rest.slice(0, slash), path: slash < 0 ? '' : rest.slice(slash) }, parents: [], tags: {} },
    { uid: { type: 'Mandate::Principal', id: principalId }, attrs: { issuer: q.principal.issuer, subject: q.principal.subject }, parents: (q.principal.groups ?? []).map((g) => ({ type: 'Mandate::Group', id: g })) },
    ...(q.principal.groups ?? []).map((g) => ({ uid: { type: 'Mandate::Group', id: g }, attrs: {}, parents: [] })),
  ];
  const chain = q.chain && q.chain.length > 0 ? q.chain : undefined;
  const context = {
    onBehalfOf: { __entity: { type: 'Mandate::Principal', id: principalId } },
    mandate: unknown('mandate'),
    scopes: q.scopes ?? unknown('scopes'),
    chain: chain ? { length: chain.length, actors: chain, origin: chain.at(-1), ...(chain[1] !== undefined && { delegator: chain[1] }) } : unknown('chain'),
    now: unknown('now'),
    hour: unknown('hour'),
    weekday: unknown('weekday'),
    clientAddress: unknown('clientAddress'),
    binding: unknown('binding'),
    arguments: unknown('arguments'),
  };
  return { agent: q.agent, entities, context };
}

/** Cedar's partial evaluation of one action, the resource known (`resource`) or not (null). */
function partialAnswer(
  set: CompiledPolicySet, known: ReturnType<typeof knownParts>, action: ActionKey, groups: ReadonlySet<ActionKey>,
  resource: { type: string; id: string } | null, resourceEntities: EntityJson[],
): CanAnswer {
  const policies = Object.fromEntries([...set.policies].filter(([, p]) => policyApplies(p.json, action, groups)).map(([id, p]) => [id, p.text]));
  const result = cedar.isAuthorizedPartial({
    principal: { type: 'Mandate::Agent', id: known.agent }, action: parse(action), resource, context: known.context as never,
    policies: { staticPolicies: policies }, entities: [...known.entities, ...resourceEntities],
  });
  if (result.type !== 'residuals') return { action, answer: 'denied', conditions: [], errors: result.errors.map((e) => e.message) };
  const r = result.response;
  const errors = r.errored.map((id) => `policy ${id} failed to evaluate`);
  const conditions = r.nontrivialResiduals.map((id) => {
    const json = r.residuals[id] as PolicyJson;
    return { policy: id, effect: json.effect as 'permit' | 'forbid', reason: set.policies.get(id)?.reason, text: residualText(json) };
  });
  const answer = r.decision === 'allow' && errors.length === 0 ? 'allowed' : r.decision === 'deny' || errors.length > 0 ? 'denied' : 'conditional';
  return { action, answer, conditions: answer === 'conditional' ? conditions : [], errors };
}

function policyApplies(json: PolicyJson, action: ActionKey, groups: ReadonlySet<ActionKey>): boolean {
  const c = json.action as { op: string; entity?: { type: string; id: string }; entities?: Array<{ type: string; id: string }> };
  if (c.op === 'All') return true;
  const named = (c.entities ?? (c.entity ? [c.entity] : [])).map((e) => `${e.type}::${JSON.stringify(e.id)}`);
  return c.op === '==' ? named.includes(action) : named.some((n) => n === action || groups.has(n));
}
