/**
 * Cedar schema fragments from an MCP server's tools: each tool of `tools/list` becomes an action
 * `Mandate::Tools::<server>::Action::"<tool>"` in `Mandate::Action::"tools/call"` whose
 * `context.arguments` is the tool's `inputSchema` as a Cedar record, so policies can say
 * `context.arguments.amount.lessThan(decimal("100.0"))`. The fragment goes beside the policies as
 * a `.cedarschema` file (see `mandate policy schema --from-mcp`).
 *
 * Cedar has no record spread, so every field of `Mandate::Common` is spelled out in each action's
 * context; they are read from Mandate's own schema when the fragment is generated, never copied.
 *
 * JSON Schema -> Cedar:
 *   string -> String, integer -> Long, number -> decimal, boolean -> Bool, enum/const of one
 *   such type -> that type, object with properties -> record (required ones required, others `?`),
 *   array of X -> Set<X>. A set keeps what a policy can ask of an array (contains, containsAll,
 *   containsAny, isEmpty); Cedar cannot ask for an element's position or count duplicates, so
 *   arrays are not reported whether or not `uniqueItems` is set. Local `$ref`s ("#/...") are
 *   followed unless recursive.
 *
 * Everything else is reported in `unsupported`, never dropped silently: either mapped to the nearest
 * type (nullable -> the non-null type, date/time formats -> String, a union whose branches are all
 * the same Cedar type -> that type) or omitted from the record (other unions, tuples, maps,
 * recursive or remote `$ref`s, untyped values), with the path, the construct and what it became.
 * Property names that are not Cedar identifiers are quoted (`"my-field"?: String`; policies read
 * them as `context.arguments["my-field"]`).
 *
 * decide() validates each request against the schema, so a call that passes a property the record
 * lacks (omitted, or allowed only by additionalProperties/patternProperties) or a null is denied.
 */
import { readFileSync } from 'node:fs';
import { MandateError } from '../errors.ts';
import { cedar } from './cedar.ts';
import { toolNamespace } from './decide.ts';
import { BASE_SCHEMA_FILE } from './policy-set.ts';

/** A JSON Schema as MCP servers publish it (`inputSchema`): read defensively, it is remote input. */
export type JSONSchema = { [keyword: string]: unknown } | boolean;

export interface McpToolDescription {
  name: string;
  title?: string;
  description?: string;
  inputSchema: JSONSchema;
  annotations?: { title?: string; readOnlyHint?: boolean; destructiveHint?: boolean; idempotentHint?: boolean; openWorldHint?: boolean };
}

/** A Cedar type in Cedar's JSON schema form (as `schemaToJsonWithResolvedTypes` gives it). */
export interface CedarType {
  type: string;
  name?: string;
  element?: CedarType;
  attributes?: Record<string, CedarAttribute>;
}

export interface CedarAttribute extends CedarType {
  required?: boolean;
}

export interface Unsupported {
  tool: string;
  /** Where in the arguments, as a policy would write it: `arguments.filters["my-labels"][]`. */
  path: string;
  /** The JSON Schema construct, e.g. `oneOf`, `type: ["string","null"]`, `format: date-time`. */
  construct: string;
  /** The Cedar type it was mapped to, or `omitted`. */
  treatedAs: string;
}

export interface SchemaFragment {
  text: string;
  unsupported: Unsupported[];
}

const RESERVED = new Set(['true', 'false', 'if', 'then', 'else', 'in', 'is', 'like', 'has', '__cedar']);
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const TIME_FORMATS = new Set(['date-time', 'date', 'time', 'duration']);
const OMITTED = 'omitted';
/** Schemas nested deeper than this (remote input) are omitted. */
const MAX_DEPTH = 32;
/** Properties a schema allows beyond the declared ones: not typed, so not visible to policies. */
const IGNORED = 'not in the record (only the declared properties are)';

/** A Cedar string literal: `\\`, `"` and control characters escaped the way Cedar reads them. */
export function cedarString(s: string): string {
  const escaped = s.replace(/[\\"\u0000-\u001f\u007f]/g, (c) => (c === '\\' || c === '"' ? `\\${c}` : `\\u{${c.charCodeAt(0).toString(16)}}`));
  return `"${escaped}"`;
}

function attributeName(name: string): string {
  return IDENT.test(name) && !RESERVED.has(name) ? name : cedarString(name);
}

/** A Cedar type as schema text; records one attribute per line at the given indentation. */
export function cedarTypeText(t: CedarType, indent = ''): string {
  switch (t.type) {
    case 'Set':
      return `Set<${cedarTypeText(t.element as CedarType, indent)}>`;
    case 'Record': {
      const attrs = Object.entries(t.attributes ?? {});
      if (attrs.length === 0) return '{}';
      const inner = `${indent}  `;
      const lines = attrs.map(([name, a]) => `${inner}${attributeName(name)}${a.required === false ? '?' : ''}: ${cedarTypeText(a, inner)},\n`);
      return `{\n${lines.join('')}${indent}}`;
    }
    case 'Entity':
    case 'Extension':
    case 'EntityOrCommon':
      return t.name as string;
    case 'Boolean':
      return 'Bool';
    default:
      // String, Long, Bool, the extension types, or a common type's qualified name (Mandate::Chain).
      return t.type;
  }
}

/** The fields of `Mandate::Common` (what every decision's context has), from Mandate's schema. */
export function commonContextFields(schemaText: string = readFileSync(BASE_SCHEMA_FILE, 'utf8')): Record<string, CedarAttribute> {
  const answer = cedar.schemaToJsonWithResolvedTypes(schemaText);
  const common = answer.type === 'success'
    ? (answer.json as Record<string, { commonTypes?: Record<string, CedarType> }>).Mandate?.commonTypes?.Common
    : undefined;
  if (common?.type !== 'Record' || !common.attributes) throw new MandateError('ERR_POLICY_INVALID', 'the base schema has no record type Mandate::Common');
  return common.attributes;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Maps JSON Schemas of one tool, collecting what did not map exactly. */
class ToolMapper {
  readonly unsupported: Unsupported[] = [];
  readonly #refs: string[] = [];
  #depth = 0;

  constructor(readonly tool: string, readonly root: JSONSchema) {}

  /** Records what did not map exactly; `treatedAs` is a Cedar type's text, `omitted` or IGNORED. */
  report(path: string, construct: string, treatedAs: string): undefined {
    this.unsupported.push({ tool: this.tool, path, construct, treatedAs });
    return undefined;
  }

  /** The Cedar type of a schema, or undefined when it is omitted (and reported). */
  map(schema: unknown, path: string): CedarType | undefined {
    if (!isObject(schema)) return this.report(path, `schema ${Array.isArray(schema) ? '[...]' : String(JSON.stringify(schema)).slice(0, 40)}`, OMITTED);
    if (++this.#depth > MAX_DEPTH) return this.report(path, `nesting deeper than ${MAX_DEPTH}`, OMITTED);
    try {
      return this.#map(schema, path);
    } finally {
      this.#depth--;
    }
  }

  #map(schema: Record<string, unknown>, path: string): CedarType | undefined {
    if (typeof schema.$ref === 'string') return this.#ref(schema.$ref, path);
    if (Array.isArray(schema.allOf)) {
      if (schema.allOf.length === 1) return this.map(schema.allOf[0], path);
      return this.report(path, 'allOf', OMITTED);
    }
    for (const keyword of ['oneOf', 'anyOf'] as const) {
      if (Array.isArray(schema[keyword])) return this.#union(keyword, schema[keyword] as unknown[], path);
    }
    if (Array.isArray(schema.enum) || 'const' in schema) return this.#values(Array.isArray(schema.enum) ? schema.enum : [schema.const], path);
    if (Array.isArray(schema.type)) {
      const types = schema.type.filter((t) => t !== 'null');
      if (types.length !== 1) return this.report(path, `type: ${JSON.stringify(schema.type)}`, OMITTED);
      return this.#nullable(this.#typed({ ...schema, type: types[0] }, path), path, `type: ${JSON.stringify(schema.type)}`);
    }
    if (schema.nullable === true) return this.#nullable(this.#typed(schema, path), path, 'nullable: true');
    return this.#typed(schema, path);
  }

  /** The non-null type of a nullable schema, reported: a null argument cannot be put to policy. */
  #nullable(t: CedarType | undefined, path: string, construct: string): CedarType | undefined {
    if (t) this.report(path, `${construct} (null cannot be put to policy: calls with null are denied)`, cedarTypeText(t));
    return t;
  }

  #typed(schema: Record<string, unknown>, path: string): CedarType | undefined {
    const type = schema.type ?? ('properties' in schema ? 'object' : 'items' in schema || 'prefixItems' in schema ? 'array' : undefined);
    switch (type) {
      case 'string': {
        const format = schema.format;
        if (typeof format === 'string' && TIME_FORMATS.has(format)) this.report(path, `format: ${format}`, 'String');
        return { type: 'String' };
      }
      case 'integer':
        return { type: 'Long' };
      case 'number':
        return { type: 'decimal' };
      case 'boolean':
        return { type: 'Bool' };
      case 'array':
        return this.#array(schema, path);
      case 'object':
        return this.#object(schema, path);
      case undefined:
        return this.report(path, 'a value of any type (no type)', OMITTED);
      default:
        return this.report(path, `type: ${JSON.stringify(type)}`, OMITTED);
    }
  }

  #array(schema: Record<string, unknown>, path: string): CedarType | undefined {
    if (Array.isArray(schema.items) || 'prefixItems' in schema) return this.report(path, 'tuple (items by position)', OMITTED);
    if (!('items' in schema)) return this.report(path, 'array without items', OMITTED);
    const element = this.map(schema.items, `${path}[]`);
    if (!element) return this.report(path, 'array of an unsupported item type', OMITTED);
    return { type: 'Set', element };
  }

  #object(schema: Record<string, unknown>, path: string): CedarType | undefined {
    const properties = isObject(schema.properties) ? schema.properties : undefined;
    const extra = schema.additionalProperties;
    const open = extra !== undefined && extra !== false;
    if (!properties && (open || 'patternProperties' in schema)) return this.report(path, 'object without properties (a map)', OMITTED);
    if (open) this.report(path, 'additionalProperties', IGNORED);
    for (const keyword of ['patternProperties', 'dependentSchemas', 'dependencies', 'if']) {
      if (keyword in schema) this.report(path, keyword, IGNORED);
    }
    const required = new Set(Array.isArray(schema.required) ? schema.required.filter((r) => typeof r === 'string') : []);
    const attributes: Record<string, CedarAttribute> = {};
    for (const [name, sub] of Object.entries(properties ?? {})) {
      const t = this.map(sub, `${path}${IDENT.test(name) && !RESERVED.has(name) ? `.${name}` : `[${cedarString(name)}]`}`);
      if (t) attributes[name] = required.has(name) ? t : { ...t, required: false };
    }
    return { type: 'Record', attributes };
  }

  /** enum and const: one JSON type for every value, else omitted. */
  #values(values: unknown[], path: string): CedarType | undefined {
    const nonNull = values.filter((v) => v !== null);
    const kinds = new Set(nonNull.map((v) => (typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v)));
    if (kinds.has('integer') && kinds.has('number')) kinds.delete('integer');
    const [kind] = kinds;
    const t = kinds.size !== 1 ? undefined : kind === 'string' ? { type: 'String' } : kind === 'boolean' ? { type: 'Bool' } : kind === 'integer' ? { type: 'Long' } : kind === 'number' ? { type: 'decimal' } : undefined;
    if (!t) return this.report(path, `enum of ${[...kinds].join(', ') || 'nothing but null'}`, OMITTED);
    return nonNull.length < values.length ? this.#nullable(t, path, 'enum with null') : t;
  }

  /** oneOf/anyOf: the one Cedar type all non-null branches map to, else omitted. */
  #union(keyword: string, branches: unknown[], path: string): CedarType | undefined {
    const isNull = (b: unknown) => isObject(b) && (b.type === 'null' || (Array.isArray(b.enum) && b.enum.every((v) => v === null)));
    const rest = branches.filter((b) => !isNull(b));
    const nullable = rest.length < branches.length;
    if (rest.length === 1) return nullable ? this.#nullable(this.map(rest[0], path), path, `${keyword} with null`) : this.map(rest[0], path);
    const probe = new ToolMapper(this.tool, this.root);
    const types = rest.map((b) => probe.map(b, path));
    const texts = new Set(types.map((t) => (t ? cedarTypeText(t) : OMITTED)));
    const [only] = types;
    if (texts.size !== 1 || !only || probe.unsupported.length > 0) return this.report(path, `${keyword} of ${rest.length} different schemas`, OMITTED);
    this.report(path, `${keyword}${nullable ? ' with null' : ''} (every branch is ${cedarTypeText(only)})`, cedarTypeText(only));
    return only;
  }

  #ref(ref: string, path: string): CedarType | undefined {
    if (!ref.startsWith('#')) return this.report(path, `$ref ${ref} (not in this schema)`, OMITTED);
    if (this.#refs.includes(ref)) return this.report(path, `$ref ${ref} (recursive)`, OMITTED);
    let target: unknown = this.root;
    for (const part of ref.slice(1).split('/').slice(1)) {
      const key = decodeURIComponent(part).replace(/~1/g, '/').replace(/~0/g, '~');
      target = isObject(target) ? target[key] : Array.isArray(target) ? target[Number(key)] : undefined;
    }
    if (target === undefined) return this.report(path, `$ref ${ref} (not found)`, OMITTED);
    this.#refs.push(ref);
    try {
      return this.map(target, path);
    } finally {
      this.#refs.pop();
    }
  }
}

/** A `//` comment line for a tool: its title or description's first line, and its MCP hints. */
function toolComment(tool: McpToolDescription): string {
  const a = tool.annotations ?? {};
  const summary = (tool.title ?? a.title ?? tool.description ?? '').split('\n')[0]?.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, ' ').trim().slice(0, 120) ?? '';
  const hints = [a.readOnlyHint && 'read-only', a.destructiveHint && 'destructive', a.idempotentHint && 'idempotent', a.openWorldHint && 'open-world'].filter(Boolean);
  const text = [summary, hints.length > 0 ? `(${hints.join(', ')})` : ''].filter(Boolean).join(' ');
  return text ? `  // ${text}\n` : '';
}

/**
 * The Cedar schema fragment for an MCP server's tools, and what of their input schemas Cedar
 * cannot express exactly.
 *
 * @param server the server's name in Mandate (the namespace is `toolNamespace(server)`)
 * @param tools  the server's `tools/list` answer
 * @param common the context fields every action has; defaults to `Mandate::Common` of Mandate's schema
 */
export function cedarSchemaFromTools(server: string, tools: McpToolDescription[], common: Record<string, CedarAttribute> = commonContextFields()): SchemaFragment {
  const unsupported: Unsupported[] = [];
  const seen = new Set<string>();
  let body = '';
  for (const tool of tools) {
    if (seen.has(tool.name)) {
      unsupported.push({ tool: tool.name, path: '', construct: 'a second tool of the same name', treatedAs: OMITTED });
      continue;
    }
    seen.add(tool.name);
    const mapper = new ToolMapper(tool.name, tool.inputSchema);
    let args = mapper.map(tool.inputSchema, 'arguments');
    if (args?.type !== 'Record') {
      if (args) mapper.report('arguments', 'an input schema that is not an object', OMITTED);
      args = { type: 'Record', attributes: {} };
    }
    unsupported.push(...mapper.unsupported);
    const context: CedarType = { type: 'Record', attributes: { ...common, arguments: args } };
    body += `${toolComment(tool)}  action ${cedarString(tool.name)} in [Mandate::Action::"tools/call"] appliesTo {\n`
      + '    principal: [Mandate::Agent],\n    resource: [Mandate::Tool],\n'
      + `    context: ${cedarTypeText(context, '    ')},\n  };\n`;
  }
  const text = `// Generated by \`mandate policy schema --from-mcp\` from the tools of MCP server ${JSON.stringify(server)}.\n`
    + '// Each tool is an action in Mandate::Action::"tools/call"; context.arguments holds its typed arguments.\n'
    + `namespace ${toolNamespace(server)} {\n${body}}\n`;
  return { text, unsupported };
}
