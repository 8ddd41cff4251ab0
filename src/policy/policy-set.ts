/**
 * Policy sets: Cedar policies (`.cedar` files) checked strictly against Mandate's schema plus the
 * schema fragments beside them (`.cedarschema`, e.g. generated from an MCP server's tools), then
 * compiled for deciding: every policy gets an id (its `@id` annotation, else `<file>:<n>`), its
 * `@reason` and `@approval` annotations are read once, and the set is cut into one pre-parsed slice
 * per action, so a decision evaluates only the policies whose action scope can match. For each slice
 * it also records what its policies can observe of a request (`sliceReach`): which context fields,
 * entity attributes and tags they read, so a decision need not carry the rest into the engine.
 *
 * A set that does not parse or validate is refused whole, with `file:line:column: message` for
 * every problem; whoever holds the previous set keeps it.
 *
 * @example
 *   const set = compilePolicySet(loadPolicyDirectory('policies'));
 *   set.version // 'sha256:…' — recorded with every decision
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MandateError } from '../errors.ts';
import { cedar, type DetailedError, type PolicyJson } from './cedar.ts';

export const BASE_SCHEMA_FILE = fileURLToPath(new URL('./schema/mandate.cedarschema', import.meta.url));

export interface SourceFile {
  /** Shown in problems; relative to the policy directory when loaded from one. */
  file: string;
  text: string;
}

export interface PolicySources {
  policies: SourceFile[];
  /** Schema fragments added to Mandate's own schema. */
  schemas: SourceFile[];
}

export interface PolicyProblem {
  file: string;
  line: number;
  column: number;
  policyId?: string;
  message: string;
}

/** A policy set that cannot be used; `problems` has every problem found, `message` one line each. */
export class PolicySetError extends MandateError {
  readonly problems: PolicyProblem[];

  constructor(problems: PolicyProblem[]) {
    super('ERR_POLICY_INVALID', problems.map((p) => `${p.file}:${p.line}:${p.column}: ${p.policyId ? `policy ${p.policyId}: ` : ''}${p.message}`).join('\n'));
    this.problems = problems;
  }
}

export interface CompiledPolicy {
  id: string;
  file: string;
  line: number;
  /** Character offset of the policy in its file. */
  offset: number;
  effect: 'permit' | 'forbid';
  /** The `@reason` annotation: why the policy exists, shown with decisions. */
  reason: string | undefined;
  /** `@approval("required")` on a permit: allowing needs a person's approval. */
  approval: boolean;
  text: string;
  json: PolicyJson;
}

/** A Cedar entity uid as `Type::"id"`, the form actions are keyed by. */
export type ActionKey = string;

export interface CompiledPolicySet {
  /** SHA-256 over the schema and every policy file: recorded with each decision. */
  version: string;
  schemaText: string;
  /** Name of the pre-parsed schema in the Cedar engine. */
  schemaName: string;
  policies: ReadonlyMap<string, CompiledPolicy>;
  /** Every action the schema declares, with the action groups it is in (transitively). */
  actions: ReadonlyMap<ActionKey, ReadonlySet<ActionKey>>;
  /** The pre-parsed slice of the set for an action (undefined for an action the schema lacks). */
  slice(action: ActionKey): string | undefined;
  /** The Cedar record type of `context.arguments` of a per-tool action, when it has one. */
  argumentsType(action: ActionKey): Record<string, unknown> | undefined;
}

const POLICY_EXT = '.cedar';
const SCHEMA_EXT = '.cedarschema';
const ID_PATTERN = /^[A-Za-z0-9_.:/-]{1,128}$/;

export function actionKey(type: string, id: string): ActionKey {
  return `${type}::${JSON.stringify(id)}`;
}

/** Reads every `.cedar` and `.cedarschema` file of a directory (not recursive), in name order. */
export function loadPolicyDirectory(dir: string): PolicySources {
  const sources: PolicySources = { policies: [], schemas: [] };
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (err) {
    throw new MandateError('ERR_POLICY_INVALID', `cannot read the policy directory ${dir}: ${(err as Error).message}`);
  }
  for (const name of names) {
    const path = join(dir, name);
    const isPolicy = name.endsWith(POLICY_EXT);
    if ((!isPolicy && !name.endsWith(SCHEMA_EXT)) || !statSync(path).isFile()) continue;
    (isPolicy ? sources.policies : sources.schemas).push({ file: relative(process.cwd(), path) || name, text: readFileSync(path, 'utf8') });
  }
  return sources;
}

/** Line and column (1-based) of a character offset. */
function position(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, offset));
  const lines = before.split('\n');
  return { line: lines.length, column: (lines.at(-1)?.length ?? 0) + 1 };
}

function describe(err: DetailedError): string {
  return err.help ? `${err.message} (${err.help})` : err.message;
}

function problemAt(file: string, text: string, offset: number, message: string, policyId?: string): PolicyProblem {
  return { file, ...position(text, offset), ...(policyId !== undefined && { policyId }), message };
}

/** Mandate's schema followed by the fragments; offsets map back to the fragment files. */
function schemaOf(fragments: SourceFile[]): { text: string; locate(offset: number): { file: string; text: string; offset: number } } {
  const parts: Array<{ file: string; text: string; start: number }> = [];
  let text = '';
  for (const f of [{ file: BASE_SCHEMA_FILE, text: readFileSync(BASE_SCHEMA_FILE, 'utf8') }, ...fragments]) {
    parts.push({ ...f, start: text.length });
    text += `${f.text}\n`;
  }
  return {
    text,
    locate(offset) {
      const part = [...parts].reverse().find((p) => p.start <= offset) ?? (parts[0] as (typeof parts)[number]);
      return { file: part.file, text: part.text, offset: offset - part.start };
    },
  };
}

/** Every action of the schema and its groups, transitively. */
function actionsOf(schemaText: string): Map<ActionKey, Set<ActionKey>> {
  const answer = cedar.schemaToJson(schemaText);
  if (answer.type !== 'success') throw new MandateError('ERR_POLICY_INVALID', 'the schema could not be read back');
  const direct = new Map<ActionKey, ActionKey[]>();
  for (const [namespace, def] of Object.entries(answer.json as Record<string, { actions: Record<string, { memberOf?: Array<{ id: string; type?: string }> }> }>)) {
    const type = namespace === '' ? 'Action' : `${namespace}::Action`;
    for (const [id, action] of Object.entries(def.actions ?? {})) {
      direct.set(actionKey(type, id), (action.memberOf ?? []).map((m) => actionKey(m.type ?? type, m.id)));
    }
  }
  const all = new Map<ActionKey, Set<ActionKey>>();
  for (const key of direct.keys()) {
    const seen = new Set<ActionKey>();
    const todo = [...(direct.get(key) ?? [])];
    while (todo.length > 0) {
      const next = todo.pop() as ActionKey;
      if (seen.has(next)) continue;
      seen.add(next);
      todo.push(...(direct.get(next) ?? []));
    }
    all.set(key, seen);
  }
  return all;
}

/** The `context.arguments` record type of each action that has one (per-tool actions). */
function argumentTypesOf(schemaText: string): Map<ActionKey, Record<string, unknown>> {
  const answer = cedar.schemaToJsonWithResolvedTypes(schemaText);
  const types = new Map<ActionKey, Record<string, unknown>>();
  if (answer.type !== 'success') return types;
  for (const [namespace, def] of Object.entries(answer.json as Record<string, { actions?: Record<string, { appliesTo?: { context?: { attributes?: Record<string, Record<string, unknown>> } } }> }>)) {
    const type = namespace === '' ? 'Action' : `${namespace}::Action`;
    for (const [id, action] of Object.entries(def.actions ?? {})) {
      const args = action.appliesTo?.context?.attributes?.arguments;
      if (args) types.set(actionKey(type, id), args);
    }
  }
  return types;
}

function matches(json: PolicyJson, action: ActionKey, groups: ReadonlySet<ActionKey>): boolean {
  const c = json.action as { op: string; entity?: { type: string; id: string }; entities?: Array<{ type: string; id: string }> };
  if (c.op === 'All') return true;
  const named = (c.entities ?? (c.entity ? [c.entity] : [])).map((e) => actionKey(e.type, e.id));
  if (c.op === '==') return named.includes(action);
  return named.some((n) => n === action || groups.has(n));
}

/** What a context value's readers see: the whole value (`true`), or only some of its attributes. */
export type ContextReach = true | Map<string, ContextReach>;

/** What the policies of one slice can observe of a request, found by walking their expressions. */
export interface SliceReach {
  /** The context: `true` when a policy uses it whole; else the attributes read, and of those what is read. */
  context: ContextReach;
  /** Every attribute name read with `.`, `[]` or `has` anywhere: no other entity attribute can be seen. */
  attributes: ReadonlySet<string>;
  /** The tag keys read with `getTag`/`hasTag`, or `true` when a key is not a literal. */
  tags: ReadonlySet<string> | true;
}

type Expr = Record<string, unknown>;

/** `[]` for `context`, the attribute path for `context.a.b`, null for anything else. */
function contextPath(e: unknown): string[] | null {
  if (typeof e !== 'object' || e === null) return null;
  const x = e as Expr;
  if (x.Var === 'context' && Object.keys(x).length === 1) return [];
  const access = x['.'] as { left?: unknown; attr?: unknown } | undefined;
  if (access && Object.keys(x).length === 1 && typeof access.attr === 'string') {
    const left = contextPath(access.left);
    return left && [...left, access.attr];
  }
  return null;
}

/** Marks the value at `path` (from the context) as used whole. */
function mark(root: { reach: ContextReach }, path: string[]): void {
  if (root.reach === true) return;
  if (path.length === 0) {
    root.reach = true;
    return;
  }
  let node: Map<string, ContextReach> = root.reach;
  for (let i = 0; i < path.length - 1; i++) {
    const child = node.get(path[i] as string);
    if (child === true) return;
    const next = child ?? new Map<string, ContextReach>();
    node.set(path[i] as string, next);
    node = next;
  }
  node.set(path.at(-1) as string, true);
}

/** Walks policy expressions (Cedar's JSON form) and records what they read. */
function reachOf(policies: CompiledPolicy[]): SliceReach {
  const root: { reach: ContextReach } = { reach: new Map() };
  const attributes = new Set<string>();
  let tags: Set<string> | true = new Set();
  const walk = (e: unknown): void => {
    if (Array.isArray(e)) {
      for (const x of e) walk(x);
      return;
    }
    if (typeof e !== 'object' || e === null) return;
    const x = e as Expr;
    if ('Value' in x || 'Slot' in x || 'Unknown' in x) return;
    if ('Var' in x) {
      if (x.Var === 'context') mark(root, []);
      return;
    }
    if ('Record' in x) {
      for (const v of Object.values(x.Record as Expr)) walk(v);
      return;
    }
    if ('like' in x) {
      walk((x.like as Expr).left);
      return;
    }
    const access = (x['.'] ?? x.has) as { left?: unknown; attr?: unknown } | undefined;
    if (access && Object.keys(x).length === 1) {
      const names = Array.isArray(access.attr) ? (access.attr as string[]) : [access.attr as string];
      for (const n of names) attributes.add(n);
      // The outermost access of a chain `context.a.b` (walk does not descend into its left): the
      // value at its end is used whole, whatever it is (a record, or an entity whose attributes follow).
      const path = contextPath(access.left);
      if (path) mark(root, [...path, ...names]);
      else walk(access.left);
      return;
    }
    const tag = (x.getTag ?? x.hasTag) as { left?: unknown; right?: unknown } | undefined;
    if (tag && Object.keys(x).length === 1) {
      const key = tag.right as Expr | undefined;
      if (tags !== true && key && typeof key.Value === 'string' && Object.keys(key).length === 1) tags.add(key.Value);
      else tags = true;
      walk(tag.left);
      walk(tag.right);
      return;
    }
    for (const v of Object.values(x)) walk(v);
  };
  for (const p of policies) {
    const json = p.json as unknown as Expr;
    walk(json.conditions ?? []);
  }
  return { context: root.reach, attributes, tags };
}

const reaches = new WeakMap<CompiledPolicySet, Map<ActionKey, SliceReach>>();

/** What the slice of `set` for `action` can observe of a request (undefined for an action the schema lacks). */
export function sliceReach(set: CompiledPolicySet, action: ActionKey): SliceReach | undefined {
  return reaches.get(set)?.get(action);
}

/** Cedar reports a problem once per action the policy applies to; each is listed once. */
function dedupe(problems: PolicyProblem[]): PolicyProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.file}:${p.line}:${p.column}:${p.policyId ?? ''}:${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

let engineSeq = 0;

/**
 * Parses, validates (strict mode) and compiles a policy set.
 *
 * @param opts.storage name under which the Cedar engine keeps the pre-parsed set; compiling again
 *   under the same name replaces (and invalidates) the set compiled there before.
 * @throws PolicySetError listing every syntax and validation problem with file, line and column.
 */
export function compilePolicySet(sources: PolicySources, opts: { storage?: string } = {}): CompiledPolicySet {
  const problems: PolicyProblem[] = [];
  const schema = schemaOf(sources.schemas);
  const parsedSchema = cedar.checkParseSchema(schema.text);
  if (parsedSchema.type !== 'success') {
    for (const err of parsedSchema.errors) {
      const at = schema.locate(err.sourceLocations?.[0]?.start ?? 0);
      problems.push(problemAt(at.file, at.text, at.offset, describe(err)));
    }
    throw new PolicySetError(problems);
  }

  const policies = new Map<string, CompiledPolicy>();
  for (const source of sources.policies) {
    const parts = cedar.policySetTextToParts(source.text);
    if (parts.type !== 'success') {
      for (const err of parts.errors) problems.push(problemAt(source.file, source.text, err.sourceLocations?.[0]?.start ?? 0, describe(err)));
      continue;
    }
    if (parts.policy_templates.length > 0) {
      problems.push(problemAt(source.file, source.text, source.text.indexOf(parts.policy_templates[0] as string), 'policy templates (?principal, ?resource) are not supported; write static policies'));
    }
    let cursor = 0;
    parts.policies.forEach((text, index) => {
      const offset = source.text.indexOf(text, cursor);
      cursor = offset + text.length;
      const json = cedar.policyToJson(text);
      if (json.type !== 'success') return;
      const annotations = json.json.annotations ?? {};
      const id = annotations.id ?? `${source.file}:${index + 1}`;
      const { line } = position(source.text, offset);
      if (annotations.id !== undefined && !ID_PATTERN.test(annotations.id)) {
        problems.push(problemAt(source.file, source.text, offset, `@id ${JSON.stringify(annotations.id)} must be 1-128 characters of letters, digits and _ . : / -`));
        return;
      }
      const earlier = policies.get(id);
      if (earlier) {
        problems.push(problemAt(source.file, source.text, offset, `@id ${JSON.stringify(id)} is already used by the policy at ${earlier.file}:${earlier.line}`));
        return;
      }
      const approval = annotations.approval;
      if (approval !== undefined && approval !== 'required') {
        problems.push(problemAt(source.file, source.text, offset, '@approval must be "required" (or absent)', id));
      } else if (approval !== undefined && json.json.effect !== 'permit') {
        problems.push(problemAt(source.file, source.text, offset, '@approval belongs on permit policies: a forbid needs no approval', id));
      }
      policies.set(id, { id, file: source.file, line, offset, effect: json.json.effect as 'permit' | 'forbid', reason: annotations.reason, approval: approval === 'required', text, json: json.json });
    });
  }
  if (problems.length > 0) throw new PolicySetError(problems);

  const byId = Object.fromEntries([...policies].map(([id, p]) => [id, p.text]));
  const validation = cedar.validate({ schema: schema.text, policies: { staticPolicies: byId }, validationSettings: { mode: 'strict' } });
  if (validation.type !== 'success') {
    throw new PolicySetError(validation.errors.map((err) => ({ file: '(policy set)', line: 1, column: 1, message: describe(err) })));
  }
  for (const { policyId, error } of validation.validationErrors) {
    const policy = policies.get(policyId) as CompiledPolicy;
    const source = sources.policies.find((s) => s.file === policy.file) as SourceFile;
    const offset = policy.offset + (error.sourceLocations?.[0]?.start ?? 0);
    problems.push(problemAt(policy.file, source.text, offset, describe(error).replace(/^for policy `[^`]*`, /, ''), policyId));
  }
  if (problems.length > 0) throw new PolicySetError(dedupe(problems));

  const digest = createHash('sha256').update(schema.text);
  // File names without their directory: the same files give the same version wherever they are read from.
  for (const source of sources.policies) digest.update(`\0${basename(source.file)}\0${source.text}`);
  const version = `sha256:${digest.digest('hex')}`;

  // Pre-parsed state lives in the Cedar engine under names unique to this set.
  // The Cedar engine cannot free pre-parsed sets: a holder that recompiles (PolicyEngine) passes
  // alternating storage names so memory stays bounded; by default every set gets its own.
  const prefix = opts.storage ?? `set${++engineSeq}-${randomBytes(4).toString('hex')}`;
  const schemaName = `${prefix}/schema`;
  if (cedar.preparseSchema(schemaName, schema.text).type !== 'success') throw new MandateError('ERR_POLICY_INVALID', 'the schema could not be pre-parsed');
  const actions = actionsOf(schema.text);
  const slices = new Map<ActionKey, string>();
  const reach = new Map<ActionKey, SliceReach>();
  for (const [action, groups] of actions) {
    const members = [...policies.values()].filter((p) => matches(p.json, action, groups));
    const name = `${prefix}/${action}`;
    if (cedar.preparsePolicySet(name, { staticPolicies: Object.fromEntries(members.map((p) => [p.id, p.text])) }).type !== 'success') throw new MandateError('ERR_POLICY_INVALID', `the policies for ${action} could not be pre-parsed`);
    slices.set(action, name);
    reach.set(action, reachOf(members));
  }
  const argumentTypes = argumentTypesOf(schema.text);
  const set: CompiledPolicySet = {
    version, schemaText: schema.text, schemaName, policies, actions,
    slice: (action) => slices.get(action),
    argumentsType: (action) => argumentTypes.get(action),
  };
  reaches.set(set, reach);
  return set;
}
