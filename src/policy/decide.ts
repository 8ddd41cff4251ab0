/**
 * The decision function the gateway calls for every agent action: plain data in, a typed decision
 * out, no I/O. It builds the Cedar request (the agent as principal; the person, the mandate, scopes,
 * delegation chain, time, address and binding in the context; the tool's arguments when the schema
 * has the tool's action), evaluates only the slice of the policy set that can apply, and reads the
 * answer:
 *
 *   - deny when no permit matches, a forbid matches, or any policy's evaluation fails (Cedar would
 *     skip that policy; a skipped forbid must not let the request through), with the error as reason;
 *   - approval-required when every matching permit carries `@approval("required")`;
 *   - allow otherwise.
 *
 * Each decision names the determining policies, their `@reason`s and the policy set's version.
 *
 * Speed (see docs/benchmarks.md, "Policy engine"): every value carried into Cedar's wasm engine costs
 * microseconds, so a request that provably conforms to the schema — checked here in plain code: the
 * request's fields and the tool's arguments against their Cedar type — is decided without the schema
 * and without Cedar's request validation, carrying only what the slice's policies can observe (the
 * context fields, entity attributes and tags they read, `sliceReach`) plus the action entity with its
 * groups (which the schema would otherwise supply). Strict validation of the policies then still
 * guarantees they meet no type errors. Such decisions are also cached per policy set (bounded LRU)
 * under the exact Cedar request: they are pure functions of it. Anything else — a request that does
 * not conform, an engine failure, an evaluation error — takes the full validated path, so denials
 * and their messages are what they always were.
 */
import { recordCacheLookup } from '../observability/metrics.ts';
import type { EntityJson } from './cedar.ts';
import { cedar } from './cedar.ts';
import { actionKey, sliceReach, type CompiledPolicySet, type ContextReach, type SliceReach } from './policy-set.ts';

export type McpMethod = 'tools/call' | 'tools/list' | 'resources/read' | 'resources/list' | 'prompts/get' | 'prompts/list';

export interface DecisionRequest {
  /** The acting agent: the outermost `act` of the token. */
  agent: { spiffeId: string; metadata?: Record<string, string> };
  /** The person the agent acts for. */
  principal: { issuer: string; subject: string; name?: string; groups?: string[] };
  mandate?: { id: string; scopes: string[]; constraints: Record<string, unknown>; expiresAt: Date; maxDepth: number };
  /** What is attempted: an MCP method on a server, or an HTTP request on a route. */
  action:
    | { kind: 'mcp'; method: McpMethod; server: string; tool?: { name: string; annotations?: ToolAnnotations }; resourceUri?: string; prompt?: string; arguments?: Record<string, unknown> }
    | { kind: 'http'; server: string; method: string; pathTemplate: string };
  /** The token's scopes. */
  scopes: string[];
  /** The delegation chain, outermost (current actor) first. */
  chain: string[];
  now: Date;
  clientAddress?: string;
  binding: 'dpop' | 'mtls' | 'none';
}

export interface ToolAnnotations {
  readOnlyHint?: boolean;
  destructiveHint?: boolean;
  idempotentHint?: boolean;
  openWorldHint?: boolean;
}

export interface Decision {
  decision: 'allow' | 'deny' | 'approval-required';
  /** Ids of the policies that determined it (empty when nothing matched). */
  policies: string[];
  /** Their `@reason`s, and evaluation errors (which deny). */
  reasons: string[];
  errors: string[];
  policySetVersion: string;
}

const NS = 'Mandate';
const uid = (type: string, id: string) => ({ type: `${NS}::${type}`, id });
const entityRef = (type: string, id: string) => ({ __entity: uid(type, id) });
const datetime = (d: Date) => ({ __extn: { fn: 'datetime', arg: d.toISOString().replace(/\.\d{3}Z$/, 'Z') } });

/**
 * The namespace of a server's per-tool actions, `Mandate::Tools::<server>`. Letters and digits stay;
 * `_` doubles and any other character becomes `_<hex>_`, so two names never share a namespace
 * (`issue-tracker` -> `issue_2d_tracker`, `issue_tracker` -> `issue__tracker`).
 */
export function toolNamespace(server: string): string {
  const ident = [...server].map((ch) => (/[A-Za-z0-9]/.test(ch) ? ch : ch === '_' ? '__' : `_${(ch.codePointAt(0) as number).toString(16)}_`)).join('');
  return `${NS}::Tools::${/^[A-Za-z_]/.test(ident) ? ident : `_${ident}`}`;
}

/**
 * A listed MCP item as decisions see it: a Resource (`resources/read`) or a Prompt (`prompts/get`)
 * of a tool server, with the server as its parent.
 */
export function listedItem(server: string, item: { resourceUri: string } | { prompt: string }): { uid: { type: string; id: string }; entities: EntityJson[] } {
  const serverEntity: EntityJson = { uid: uid('ToolServer', server), attrs: { name: server, kind: 'mcp' }, parents: [] };
  const parents = [serverEntity.uid];
  const entity: EntityJson = 'resourceUri' in item
    ? { uid: uid('Resource', `${server}|${item.resourceUri}`), attrs: { uri: item.resourceUri, server }, parents }
    : { uid: uid('Prompt', `${server}/${item.prompt}`), attrs: { name: item.prompt, server }, parents };
  return { uid: entity.uid as { type: string; id: string }, entities: [serverEntity, entity] };
}

/**
 * A tool's attributes from its MCP annotations, with the MCP specification's defaults for absent
 * hints: not read-only, destructive unless read-only, not idempotent, open-world. A server that says
 * nothing is treated as the riskiest kind of tool.
 */
function toolAttributes(name: string, server: string, h: ToolAnnotations): Record<string, string | boolean> {
  const readOnly = h.readOnlyHint === true;
  return { name, server, readOnly, destructive: !readOnly && h.destructiveHint !== false, idempotent: h.idempotentHint === true, openWorld: h.openWorldHint !== false };
}

/** A dual-stack listener reports IPv4 clients as `::ffff:a.b.c.d`; policies see them as IPv4. */
function clientIp(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return mapped ? (mapped[1] as string) : address;
}

/** Cedar decimals have four fraction digits: a number with more is refused, never rounded across a limit. */
function decimalText(value: number): string | undefined {
  if (!Number.isFinite(value) || Math.abs(value) >= DECIMAL_LIMIT || Number(value.toFixed(4)) !== value) return undefined;
  return value.toFixed(4).replace(/0+$/, '').replace(/\.$/, '.0');
}

/**
 * The first place where tool arguments do not fit their Cedar type, as `path: expected ...` — never
 * the value (arguments may hold secrets; reasons are recorded). Undefined when they fit.
 */
export function argumentsProblem(value: unknown, type: Record<string, unknown>, path = 'arguments'): string | undefined {
  const expected = (what: string) => `${path}: expected ${what}`;
  switch (type.type) {
    case 'String': return isString(value) ? undefined : expected('a string');
    case 'Long': return Number.isSafeInteger(value) ? undefined : expected('an integer');
    case 'Bool':
    case 'Boolean': return typeof value === 'boolean' ? undefined : expected('true or false');
    case 'decimal':
    case 'Extension':
      if (type.type === 'Extension' && type.name !== 'decimal') return expected(String(type.name));
      return typeof value === 'number' && decimalText(value) !== undefined ? undefined : expected('a number with at most four decimal places');
    case 'Set':
      if (!Array.isArray(value)) return expected('a list');
      for (let i = 0; i < value.length; i++) {
        const problem = argumentsProblem(value[i], type.element as Record<string, unknown>, `${path}[${i}]`);
        if (problem) return problem;
      }
      return undefined;
    case 'Record': {
      if (!isPlain(value)) return expected('an object');
      const attrs = (type.attributes ?? {}) as Record<string, Record<string, unknown>>;
      for (const key of Object.keys(value)) if (!Object.hasOwn(attrs, key)) return `${path}.${key}: not in the tool's schema`;
      for (const [key, t] of Object.entries(attrs)) {
        if (!Object.hasOwn(value, key)) {
          if (t.required !== false) return `${path}.${key}: required`;
        } else {
          const problem = argumentsProblem(value[key], t, `${path}.${key}`);
          if (problem) return problem;
        }
      }
      return undefined;
    }
    default: return expected(`a ${String(type.type)}`);
  }
}

function principalId(p: DecisionRequest['principal']): string {
  return `${p.issuer}#${p.subject}`;
}

function spiffeParts(id: string): { trustDomain: string; path: string } {
  const rest = id.startsWith('spiffe://') ? id.slice('spiffe://'.length) : id;
  const slash = rest.indexOf('/');
  return slash < 0 ? { trustDomain: rest, path: '' } : { trustDomain: rest.slice(0, slash), path: rest.slice(slash) };
}

function asTag(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/**
 * JSON arguments as Cedar values of the schema's type: integers for Long, numbers as decimals
 * (at most four fraction digits), strings, booleans, sets, records. A value that does not fit is
 * left as is; Cedar's request validation then refuses it, and the request is denied.
 */
function toCedar(value: unknown, type: Record<string, unknown> | undefined): unknown {
  switch (type?.type) {
    case 'decimal':
    case 'Extension':
      if ((type.type === 'decimal' || type.name === 'decimal') && typeof value === 'number') {
        const text = decimalText(value);
        if (text !== undefined) return { __extn: { fn: 'decimal', arg: text } };
      }
      return value;
    case 'Set':
      return Array.isArray(value) ? value.map((v) => toCedar(v, type.element as Record<string, unknown>)) : value;
    case 'Record': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
      const attrs = (type.attributes ?? {}) as Record<string, Record<string, unknown>>;
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toCedar(v, attrs[k])]));
    }
    default:
      return value;
  }
}

/** The Cedar request: principal, action, resource, context and the entities they refer to. */
export function cedarRequest(set: CompiledPolicySet, req: DecisionRequest) {
  const a = req.action;
  const { trustDomain, path } = spiffeParts(req.agent.spiffeId);
  const entities: EntityJson[] = [
    { uid: uid('Agent', req.agent.spiffeId), attrs: { spiffeId: req.agent.spiffeId, trustDomain, path }, parents: [], tags: { ...req.agent.metadata } },
    {
      uid: uid('Principal', principalId(req.principal)),
      attrs: { issuer: req.principal.issuer, subject: req.principal.subject, ...(req.principal.name !== undefined && { name: req.principal.name }) },
      parents: (req.principal.groups ?? []).map((g) => uid('Group', g)),
    },
    ...(req.principal.groups ?? []).map((g) => ({ uid: uid('Group', g), attrs: {}, parents: [] })),
    { uid: uid('ToolServer', a.server), attrs: { name: a.server, kind: a.kind }, parents: [] },
  ];
  if (req.mandate) {
    entities.push({
      uid: uid('Mandate', req.mandate.id),
      attrs: { scopes: req.mandate.scopes, expiresAt: datetime(req.mandate.expiresAt), maxDepth: req.mandate.maxDepth },
      parents: [],
      tags: Object.fromEntries(Object.entries(req.mandate.constraints).map(([k, v]) => [k, asTag(v)])),
    });
  }
  const server = [uid('ToolServer', a.server)];
  let action = actionKey(`${NS}::Action`, a.kind === 'http' ? 'http' : a.method);
  let resource;
  let args: unknown;
  if (a.kind === 'http') {
    resource = uid('HttpRoute', `${a.server} ${a.method.toUpperCase()} ${a.pathTemplate}`);
    entities.push({ uid: resource, attrs: { method: a.method.toUpperCase(), pathTemplate: a.pathTemplate, server: a.server }, parents: server });
  } else if (a.method === 'tools/call' && a.tool) {
    resource = uid('Tool', `${a.server}/${a.tool.name}`);
    const h = a.tool.annotations ?? {};
    entities.push({ uid: resource, attrs: toolAttributes(a.tool.name, a.server, h), parents: server });
    const specific = actionKey(`${toolNamespace(a.server)}::Action`, a.tool.name);
    if (set.actions.has(specific)) {
      action = specific;
      args = toCedar(a.arguments ?? {}, set.argumentsType(specific));
    }
  } else if ((a.method === 'resources/read' && a.resourceUri !== undefined) || (a.method === 'prompts/get' && a.prompt !== undefined)) {
    const item = listedItem(a.server, a.method === 'resources/read' ? { resourceUri: a.resourceUri as string } : { prompt: a.prompt as string });
    resource = item.uid;
    entities.push(...item.entities.slice(1));
  } else {
    resource = server[0] as { type: string; id: string };
  }
  const chain = req.chain.length > 0 ? req.chain : [req.agent.spiffeId];
  const context: Record<string, unknown> = {
    onBehalfOf: entityRef('Principal', principalId(req.principal)),
    ...(req.mandate && { mandate: entityRef('Mandate', req.mandate.id) }),
    scopes: req.scopes,
    chain: { length: chain.length, actors: chain, origin: chain.at(-1), ...(chain[1] !== undefined && { delegator: chain[1] }) },
    now: datetime(req.now),
    hour: req.now.getUTCHours(),
    weekday: ((req.now.getUTCDay() + 6) % 7) + 1,
    ...(req.clientAddress !== undefined && { clientAddress: { __extn: { fn: 'ip', arg: clientIp(req.clientAddress) } } }),
    binding: req.binding,
    ...(args !== undefined && { arguments: args }),
  };
  const [type, id] = [action.slice(0, action.indexOf('::"')), JSON.parse(action.slice(action.indexOf('::"') + 2)) as string];
  return { principal: uid('Agent', req.agent.spiffeId), action: { type, id }, actionKey: action, resource, context, entities };
}

function deny(set: CompiledPolicySet, errors: string[], policies: string[] = []): Decision {
  return { decision: 'deny', policies, reasons: errors, errors, policySetVersion: set.version };
}

/** Reads Cedar's answer: errors deny, forbids deny, permits allow or need approval. */
function interpret(set: CompiledPolicySet, answer: ReturnType<typeof cedar.statefulIsAuthorized>): Decision {
  // Cedar's request-validation messages can quote the request; values never reach the reasons.
  if (answer.type !== 'success') return deny(set, answer.errors.map((e) => e.message.replace(/\{[\s\S]*\}/g, '{…}')));
  const { decision, diagnostics } = answer.response;
  const errors = diagnostics.errors.map((e) => `policy ${e.policyId}: ${e.error.message}`);
  const policies = diagnostics.reason;
  const reasons = policies.map((id) => set.policies.get(id)?.reason ?? `policy ${id}`);
  // Cedar skips a policy whose evaluation fails; a skipped forbid would let the request through.
  // The failing policies determine the deny.
  if (errors.length > 0) return deny(set, errors, [...new Set(diagnostics.errors.map((e) => e.policyId))]);
  if (decision === 'deny') {
    if (policies.length === 0 && errors.length === 0) return { decision: 'deny', policies, reasons: ['no policy permits this'], errors, policySetVersion: set.version };
    return { decision: 'deny', policies, reasons: [...reasons, ...errors], errors, policySetVersion: set.version };
  }
  const needsApproval = policies.every((id) => set.policies.get(id)?.approval === true);
  return { decision: needsApproval ? 'approval-required' : 'allow', policies, reasons, errors, policySetVersion: set.version };
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);
const isDate = (v: unknown): v is Date => v instanceof Date && Number.isFinite(v.getTime());
const isPlain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null);
/** Decimals that `toCedar` writes in plain notation, well inside Cedar's decimal range (±9.2e14). */
const DECIMAL_LIMIT = 9e14;

/** Whether a JSON value is certainly of the Cedar type (as `schemaToJsonWithResolvedTypes` writes it). Unknown types: no. */
function conforms(value: unknown, type: Record<string, unknown>): boolean {
  switch (type.type) {
    case 'String': return isString(value);
    case 'Long': return Number.isSafeInteger(value);
    case 'Bool':
    case 'Boolean': return typeof value === 'boolean';
    case 'decimal': return typeof value === 'number' && decimalText(value) !== undefined;
    case 'Extension': return type.name === 'decimal' && typeof value === 'number' && decimalText(value) !== undefined;
    case 'Set': return Array.isArray(value) && value.every((v) => conforms(v, type.element as Record<string, unknown>));
    case 'Record': {
      if (!isPlain(value) || type.additionalAttributes === true) return false;
      const attrs = (type.attributes ?? {}) as Record<string, Record<string, unknown>>;
      for (const key of Object.keys(value)) if (!Object.hasOwn(attrs, key)) return false;
      for (const [key, t] of Object.entries(attrs)) {
        if (!Object.hasOwn(value, key)) {
          if (t.required !== false) return false;
        } else if (!conforms(value[key], t)) return false;
      }
      return true;
    }
    default: return false;
  }
}

/**
 * Whether the Cedar request `cedarRequest` builds is certainly valid for the schema: every field of the
 * right type, a resource of the kind the action applies to, the tool's arguments of their declared type.
 * When in doubt, no (the validated path then decides).
 */
function conformsToSchema(set: CompiledPolicySet, req: DecisionRequest): boolean {
  const { agent, principal, mandate, action: a } = req;
  if (!isPlain(agent) || !isString(agent.spiffeId) || (agent.metadata !== undefined && !(isPlain(agent.metadata) && Object.values(agent.metadata).every(isString)))) return false;
  if (!isPlain(principal) || !isString(principal.issuer) || !isString(principal.subject) || (principal.name !== undefined && !isString(principal.name)) || (principal.groups !== undefined && !(isStrings(principal.groups) && new Set(principal.groups).size === principal.groups.length))) return false;
  if (mandate !== undefined) {
    if (!isPlain(mandate) || !isString(mandate.id) || !isStrings(mandate.scopes) || !isDate(mandate.expiresAt) || !Number.isSafeInteger(mandate.maxDepth) || !isPlain(mandate.constraints)) return false;
    for (const v of Object.values(mandate.constraints)) if (!isString(asTag(v))) return false;
  }
  if (!isStrings(req.scopes) || !isStrings(req.chain) || !isDate(req.now) || (req.clientAddress !== undefined && !isString(req.clientAddress)) || !isString(req.binding)) return false;
  if (!isPlain(a) || !isString(a.server) || !isString(a.method)) return false;
  if (a.kind === 'http') return isString(a.pathTemplate);
  if (a.kind !== 'mcp') return false;
  switch (a.method) {
    case 'tools/call': {
      if (!isPlain(a.tool) || !isString(a.tool.name) || (a.tool.annotations !== undefined && !isPlain(a.tool.annotations))) return false;
      const type = set.argumentsType(actionKey(`${toolNamespace(a.server)}::Action`, a.tool.name));
      return type === undefined || conforms(a.arguments ?? {}, type);
    }
    case 'resources/read': return isString(a.resourceUri);
    case 'prompts/get': return isString(a.prompt);
    case 'tools/list':
    case 'resources/list':
    case 'prompts/list': return true;
    default: return false;
  }
}

/** The part of a context value its readers can see: records we built are cut down; anything else is kept whole. */
function prune(value: unknown, reach: ContextReach): unknown {
  if (reach === true || !isPlain(value) || '__entity' in value || '__extn' in value) return value;
  const out: Record<string, unknown> = {};
  for (const [key, sub] of reach) if (Object.hasOwn(value, key)) out[key] = prune(value[key], sub);
  return out;
}

/** Entities with only the attributes and tags the slice can read; those left with nothing to read, dropped. */
function pruneEntities(entities: EntityJson[], reach: SliceReach): EntityJson[] {
  const out: EntityJson[] = [];
  for (const e of entities) {
    const attrs = Object.fromEntries(Object.entries(e.attrs ?? {}).filter(([k]) => reach.attributes.has(k)));
    const tags = reach.tags === true ? e.tags ?? {} : Object.fromEntries(Object.entries(e.tags ?? {}).filter(([k]) => (reach.tags as ReadonlySet<string>).has(k)));
    const parents = e.parents ?? [];
    if (Object.keys(attrs).length === 0 && Object.keys(tags).length === 0 && parents.length === 0) continue;
    out.push({ uid: e.uid, attrs, parents, ...(Object.keys(tags).length > 0 && { tags }) } as EntityJson);
  }
  return out;
}

const CACHE_SIZE = 10_000;
const caches = new WeakMap<CompiledPolicySet, Map<string, Decision>>();

function copy(d: Decision): Decision {
  return { ...d, policies: [...d.policies], reasons: [...d.reasons], errors: [...d.errors] };
}

/** The decision for a request that conforms to the schema, or undefined to take the validated path. */
function decideConforming(set: CompiledPolicySet, req: DecisionRequest): Decision | undefined {
  if (!conformsToSchema(set, req)) return undefined;
  const request = cedarRequest(set, req);
  const slice = set.slice(request.actionKey);
  const reach = sliceReach(set, request.actionKey);
  const groups = set.actions.get(request.actionKey);
  if (!slice || !reach || !groups) return undefined;
  const action = { uid: request.action, attrs: {}, parents: [...groups].map((g) => ({ type: g.slice(0, g.indexOf('::"')), id: JSON.parse(g.slice(g.indexOf('::"') + 2)) as string })) };
  const call = {
    principal: request.principal, action: request.action, resource: request.resource,
    context: prune(request.context, reach.context) as never,
    entities: [...pruneEntities(request.entities, reach), action as EntityJson],
    preparsedPolicySetId: slice,
  };
  let cache = caches.get(set);
  if (!cache) caches.set(set, (cache = new Map()));
  const key = JSON.stringify([slice, call.principal, call.resource, call.context, call.entities]);
  const hit = cache.get(key);
  recordCacheLookup('policy_decision', hit !== undefined);
  if (hit) {
    cache.delete(key);
    cache.set(key, hit);
    return copy(hit);
  }
  const answer = cedar.statefulIsAuthorized(call);
  // Failures and evaluation errors are decided again on the validated path, for its exact messages.
  if (answer.type !== 'success' || answer.response.diagnostics.errors.length > 0) return undefined;
  const decision = interpret(set, answer);
  cache.set(key, copy(decision));
  if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value as string);
  return decision;
}

/** Decides one request against a compiled policy set. Never throws: failures deny, with the error. */
export function decide(set: CompiledPolicySet, req: DecisionRequest): Decision {
  try {
    const fast = decideConforming(set, req);
    if (fast) return fast;
  } catch {
    // Whatever went wrong, the validated path below decides and reports it.
  }
  let request;
  try {
    request = cedarRequest(set, req);
  } catch (err) {
    return deny(set, [`the request could not be put to policy: ${(err as Error).message}`]);
  }
  const slice = set.slice(request.actionKey);
  if (!slice) return deny(set, [`the schema has no action ${request.actionKey}`]);
  const argumentsType = set.argumentsType(request.actionKey);
  if (argumentsType && req.action.kind === 'mcp') {
    const problem = argumentsProblem(req.action.arguments ?? {}, argumentsType);
    if (problem) return deny(set, [`the arguments do not fit tool ${req.action.tool?.name ?? ''}: ${problem}`]);
  }
  return interpret(set, cedar.statefulIsAuthorized({
    principal: request.principal, action: request.action, resource: request.resource, context: request.context as never,
    entities: request.entities, preparsedPolicySetId: slice, preparsedSchemaName: set.schemaName, validateRequest: true,
  }));
}
