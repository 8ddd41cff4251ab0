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
 */
import type { EntityJson } from './cedar.ts';
import { cedar } from './cedar.ts';
import { actionKey, type CompiledPolicySet } from './policy-set.ts';

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

/** A Cedar identifier for a server name in `Mandate::Tools::<server>` (letters, digits, _). */
export function toolNamespace(server: string): string {
  const ident = server.replace(/[^A-Za-z0-9_]/g, '_');
  return `${NS}::Tools::${/^[A-Za-z_]/.test(ident) ? ident : `_${ident}`}`;
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
      if ((type.type === 'decimal' || type.name === 'decimal') && typeof value === 'number' && Number.isFinite(value)) {
        return { __extn: { fn: 'decimal', arg: value.toFixed(4).replace(/0+$/, '').replace(/\.$/, '.0') } };
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
    entities.push({ uid: resource, attrs: { name: a.tool.name, server: a.server, readOnly: h.readOnlyHint === true, destructive: h.destructiveHint === true, idempotent: h.idempotentHint === true, openWorld: h.openWorldHint === true }, parents: server });
    const specific = actionKey(`${toolNamespace(a.server)}::Action`, a.tool.name);
    if (set.actions.has(specific)) {
      action = specific;
      args = toCedar(a.arguments ?? {}, set.argumentsType(specific));
    }
  } else if (a.method === 'resources/read' && a.resourceUri !== undefined) {
    resource = uid('Resource', `${a.server}|${a.resourceUri}`);
    entities.push({ uid: resource, attrs: { uri: a.resourceUri, server: a.server }, parents: server });
  } else if (a.method === 'prompts/get' && a.prompt !== undefined) {
    resource = uid('Prompt', `${a.server}/${a.prompt}`);
    entities.push({ uid: resource, attrs: { name: a.prompt, server: a.server }, parents: server });
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
    ...(req.clientAddress !== undefined && { clientAddress: { __extn: { fn: 'ip', arg: req.clientAddress } } }),
    binding: req.binding,
    ...(args !== undefined && { arguments: args }),
  };
  const [type, id] = [action.slice(0, action.indexOf('::"')), JSON.parse(action.slice(action.indexOf('::"') + 2)) as string];
  return { principal: uid('Agent', req.agent.spiffeId), action: { type, id }, actionKey: action, resource, context, entities };
}

/** Decides one request against a compiled policy set. Never throws: failures deny, with the error. */
export function decide(set: CompiledPolicySet, req: DecisionRequest): Decision {
  const deny = (errors: string[], policies: string[] = []): Decision => ({ decision: 'deny', policies, reasons: errors, errors, policySetVersion: set.version });
  let request;
  try {
    request = cedarRequest(set, req);
  } catch (err) {
    return deny([`the request could not be put to policy: ${(err as Error).message}`]);
  }
  const slice = set.slice(request.actionKey);
  if (!slice) return deny([`the schema has no action ${request.actionKey}`]);
  const answer = cedar.statefulIsAuthorized({
    principal: request.principal, action: request.action, resource: request.resource, context: request.context as never,
    entities: request.entities, preparsedPolicySetId: slice, preparsedSchemaName: set.schemaName, validateRequest: true,
  });
  if (answer.type !== 'success') return deny(answer.errors.map((e) => e.message));
  const { decision, diagnostics } = answer.response;
  const errors = diagnostics.errors.map((e) => `policy ${e.policyId}: ${e.error.message}`);
  const policies = diagnostics.reason;
  const reasons = policies.map((id) => set.policies.get(id)?.reason ?? `policy ${id}`);
  // Cedar skips a policy whose evaluation fails; a skipped forbid would let the request through.
  if (errors.length > 0) return deny(errors, policies);
  if (decision === 'deny') {
    if (policies.length === 0 && errors.length === 0) return { decision: 'deny', policies, reasons: ['no policy permits this'], errors, policySetVersion: set.version };
    return { decision: 'deny', policies, reasons: [...reasons, ...errors], errors, policySetVersion: set.version };
  }
  const needsApproval = policies.every((id) => set.policies.get(id)?.approval === true);
  return { decision: needsApproval ? 'approval-required' : 'allow', policies, reasons, errors, policySetVersion: set.version };
}
