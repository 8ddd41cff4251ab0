/**
 * Schema fragments from MCP tools: each JSON Schema construct's Cedar type and report, quoting of
 * names, the Common context fields read from the base schema, and policies over the generated
 * arguments validating and deciding with real arguments.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { cedar } from './cedar.ts';
import { decide, type DecisionRequest } from './decide.ts';
import { cedarSchemaFromTools, cedarTypeText, commonContextFields, type JSONSchema, type McpToolDescription } from './mcp-schema.ts';
import { actionKey, BASE_SCHEMA_FILE, compilePolicySet, PolicySetError } from './policy-set.ts';

const BASE = readFileSync(BASE_SCHEMA_FILE, 'utf8');
const flat = (s: string) => s.replace(/\s+/g, ' ').trim();

function compile(fragment: string, policies = '') {
  return compilePolicySet({ schemas: [{ file: 'tools.cedarschema', text: fragment }], policies: [{ file: 'p.cedar', text: policies }] });
}

/** The generated Cedar type of property `p` (undefined when omitted), read back through Cedar. */
function typeOf(schema: unknown, root: Record<string, unknown> = {}) {
  const inputSchema = { ...root, type: 'object', properties: { p: schema } } as JSONSchema;
  const { text, unsupported } = cedarSchemaFromTools('t', [{ name: 'x', inputSchema }]);
  assert.equal(cedar.checkParseSchema(`${BASE}\n${text}`).type, 'success', text);
  const args = compile(text).argumentsType(actionKey('Mandate::Tools::t::Action', 'x')) as { attributes: Record<string, { required?: boolean; type: string }> };
  const p = args.attributes.p;
  return { type: p && flat(cedarTypeText(p)), required: p?.required !== false, unsupported: unsupported.map((u) => [u.path, u.construct, u.treatedAs]) };
}

const str = { type: 'string' };
const int = { type: 'integer' };

// [name, JSON Schema of property p, Cedar type (undefined = omitted), reports: [path, construct contains, treatedAs]]
const CASES: Array<[string, unknown, string | undefined, Array<[string, string, string]>]> = [
  ['string', str, 'String', []],
  ['integer', int, 'Long', []],
  ['number', { type: 'number' }, 'decimal', []],
  ['boolean', { type: 'boolean' }, 'Bool', []],
  ['enum of strings', { type: 'string', enum: ['EUR', 'USD'] }, 'String', []],
  ['enum of integers', { enum: [1, 2] }, 'Long', []],
  ['enum of numbers', { enum: [1, 2.5] }, 'decimal', []],
  ['enum of booleans', { enum: [true] }, 'Bool', []],
  ['const string', { const: 'x' }, 'String', []],
  ['string with a plain format', { type: 'string', format: 'email' }, 'String', []],
  ['array', { type: 'array', items: str }, 'Set<String>', []],
  ['array with uniqueItems', { type: 'array', items: int, uniqueItems: true }, 'Set<Long>', []],
  ['array of arrays', { type: 'array', items: { type: 'array', items: { type: 'number' } } }, 'Set<Set<decimal>>', []],
  ['object', { type: 'object', properties: { a: str, b: int }, required: ['a'] }, '{ a: String, b?: Long, }', []],
  ['object without type', { properties: { a: str } }, '{ a?: String, }', []],
  ['closed empty object', { type: 'object', properties: {}, additionalProperties: false }, '{}', []],
  ['array of objects', { type: 'array', items: { type: 'object', properties: { a: str }, required: ['a'] } }, 'Set<{ a: String, }>', []],
  ['allOf of one', { allOf: [int] }, 'Long', []],
  ['local $ref', { $ref: '#/$defs/money' }, 'decimal', []],
  ['$ref with JSON pointer escapes', { $ref: '#/$defs/a~1b' }, 'String', []],
  ['format date-time', { type: 'string', format: 'date-time' }, 'String', [['arguments.p', 'format: date-time', 'String']]],
  ['format date', { type: 'string', format: 'date' }, 'String', [['arguments.p', 'format: date', 'String']]],
  ['type with null', { type: ['string', 'null'] }, 'String', [['arguments.p', 'type: ["string","null"]', 'String']]],
  ['nullable: true', { type: 'integer', nullable: true }, 'Long', [['arguments.p', 'nullable: true', 'Long']]],
  ['enum with null', { enum: ['a', null] }, 'String', [['arguments.p', 'enum with null', 'String']]],
  ['anyOf with null', { anyOf: [str, { type: 'null' }] }, 'String', [['arguments.p', 'anyOf with null', 'String']]],
  ['oneOf of one Cedar type', { oneOf: [{ type: 'string', format: 'email' }, { type: 'string', maxLength: 3 }] }, 'String', [['arguments.p', 'oneOf', 'String']]],
  ['type array', { type: ['string', 'integer'] }, undefined, [['arguments.p', 'type: ["string","integer"]', 'omitted']]],
  ['oneOf of different types', { oneOf: [str, int] }, undefined, [['arguments.p', 'oneOf of 2 different schemas', 'omitted']]],
  ['anyOf of different records', { anyOf: [{ properties: { a: str } }, { properties: { b: str } }] }, undefined, [['arguments.p', 'anyOf of 2', 'omitted']]],
  ['allOf of two', { allOf: [{ properties: { a: str } }, { properties: { b: str } }] }, undefined, [['arguments.p', 'allOf', 'omitted']]],
  ['enum of mixed types', { enum: ['a', 1] }, undefined, [['arguments.p', 'enum of string, integer', 'omitted']]],
  ['enum of objects', { enum: [{ a: 1 }] }, undefined, [['arguments.p', 'enum of object', 'omitted']]],
  // The reference is followed once, then found to recur.
  ['recursive $ref', { type: 'object', properties: { child: { $ref: '#/properties/p' } } }, '{ child?: {}, }', [['arguments.p.child.child', '$ref #/properties/p (recursive)', 'omitted']]],
  ['remote $ref', { $ref: 'https://example.com/s.json' }, undefined, [['arguments.p', 'not in this schema', 'omitted']]],
  ['dangling $ref', { $ref: '#/$defs/nothing' }, undefined, [['arguments.p', 'not found', 'omitted']]],
  ['map (additionalProperties schema)', { type: 'object', additionalProperties: { type: 'number' } }, undefined, [['arguments.p', 'object without properties', 'omitted']]],
  ['patternProperties only', { type: 'object', patternProperties: { '^x': str } }, undefined, [['arguments.p', 'object without properties', 'omitted']]],
  ['free-form object', { type: 'object', additionalProperties: true }, undefined, [['arguments.p', 'object without properties', 'omitted']]],
  ['properties and additionalProperties', { type: 'object', properties: { a: str }, additionalProperties: true }, '{ a?: String, }', [['arguments.p', 'additionalProperties', 'not in the record (only the declared properties are)']]],
  ['properties and patternProperties', { type: 'object', properties: { a: str }, patternProperties: { '^x': str } }, '{ a?: String, }', [['arguments.p', 'patternProperties', 'not in the record (only the declared properties are)']]],
  ['tuple (items array)', { type: 'array', items: [str, int] }, undefined, [['arguments.p', 'tuple', 'omitted']]],
  ['tuple (prefixItems)', { type: 'array', prefixItems: [str] }, undefined, [['arguments.p', 'tuple', 'omitted']]],
  ['array without items', { type: 'array' }, undefined, [['arguments.p', 'array without items', 'omitted']]],
  ['array of unions', { type: 'array', items: { oneOf: [str, int] } }, undefined, [['arguments.p[]', 'oneOf', 'omitted'], ['arguments.p', 'array of an unsupported item type', 'omitted']]],
  ['untyped', {}, undefined, [['arguments.p', 'no type', 'omitted']]],
  ['true schema', true, undefined, [['arguments.p', 'schema true', 'omitted']]],
  ['null type', { type: 'null' }, undefined, [['arguments.p', 'type: "null"', 'omitted']]],
  ['unknown type', { type: 'bigint' }, undefined, [['arguments.p', 'type: "bigint"', 'omitted']]],
  ['quoted names in paths', { type: 'object', properties: { 'my-field': { oneOf: [str, int] } } }, '{}', [['arguments.p["my-field"]', 'oneOf', 'omitted']]],
];

describe('JSON Schema -> Cedar types', () => {
  const root = { $defs: { money: { type: 'number' }, 'a/b': str } };
  for (const [name, schema, type, reports] of CASES) {
    it(name, () => {
      const got = typeOf(schema, root);
      assert.equal(got.type, type);
      assert.equal(got.unsupported.length, reports.length, JSON.stringify(got.unsupported));
      reports.forEach(([path, construct, treatedAs], i) => {
        const [p, c, t] = got.unsupported[i] as [string, string, string];
        assert.equal(p, path);
        assert.ok(c.includes(construct), `${c} should mention ${construct}`);
        assert.equal(t, treatedAs);
      });
    });
  }

  it('required properties are required, the others optional', () => {
    const { text } = cedarSchemaFromTools('t', [{ name: 'x', inputSchema: { type: 'object', properties: { a: str, b: str }, required: ['a', 'zzz', 7] } }]);
    assert.match(text, /arguments: \{\n\s+a: String,\n\s+b\?: String,\n/);
  });

  it('omits what is nested too deep, and says so', () => {
    let schema: Record<string, unknown> = str;
    for (let i = 0; i < 100; i++) schema = { type: 'object', properties: { a: schema }, required: ['a'] };
    const got = typeOf(schema);
    assert.equal(got.unsupported.length, 1);
    assert.match(got.unsupported[0]?.[1] as string, /nesting deeper than 32/);
  });
});

describe('schema fragments', () => {
  it('spells out every field of Mandate::Common, read from the base schema', () => {
    const { text } = cedarSchemaFromTools('billing', [{ name: 'refund', inputSchema: { type: 'object', properties: { amount: { type: 'number' } } } }]);
    const answer = cedar.schemaToJsonWithResolvedTypes(`${BASE}\n${text}`);
    assert.equal(answer.type, 'success');
    const action = (answer.json as Record<string, { actions: Record<string, { appliesTo: { context: { attributes: Record<string, unknown> } } }> }>)['Mandate::Tools::billing']?.actions.refund;
    const { arguments: args, ...common } = action?.appliesTo.context.attributes ?? {};
    assert.deepEqual(common, commonContextFields());
    assert.deepEqual(Object.keys(common).sort(), ['binding', 'chain', 'clientAddress', 'hour', 'mandate', 'now', 'onBehalfOf', 'scopes', 'weekday']);
    assert.ok(args);
  });

  it('takes the Common fields from whatever base schema it is given', () => {
    const base = BASE.replace('binding: String,', 'binding: String,\n    tenant: String,');
    const { text } = cedarSchemaFromTools('s', [{ name: 'x', inputSchema: { type: 'object' } }], commonContextFields(base));
    assert.match(text, /\n\s+tenant: String,\n/);
    assert.equal(cedar.checkParseSchema(`${base}\n${text}`).type, 'success');
  });

  it('refuses a base schema without Mandate::Common', () => {
    assert.throws(() => commonContextFields('namespace Other { type Common = { a: Long }; }'), /Mandate::Common/);
  });

  it('quotes attribute names that are not identifiers and takes any tool name as action id', () => {
    const names = ['my-field', 'if', 'in', 'true', '', 'a"b\\c', 'line\nbreak\u0007', 'émoji😀', 'ok_1'];
    const tools = ['create-issue', 'a "quoted" tool\n', 'ns::x', 'ünïcode', ''].map((name) => ({
      name, inputSchema: { type: 'object', properties: Object.fromEntries(names.map((n) => [n, str])) } as JSONSchema,
    }));
    const { text, unsupported } = cedarSchemaFromTools('my-server.example', tools);
    assert.deepEqual(unsupported, []);
    assert.match(text, /namespace Mandate::Tools::my_2d_server_2e_example \{/);
    assert.match(text, /\n\s+"my-field"\?: String,/);
    assert.match(text, /\n\s+ok_1\?: String,/);
    const set = compile(text, `permit(principal, action == Mandate::Tools::my_2d_server_2e_example::Action::"create-issue", resource)
      when { context.arguments has "my-field" && context.arguments["my-field"] == "x" && context.arguments has "if" && context.arguments["if"] like "y*" };`);
    for (const t of tools) {
      const key = actionKey('Mandate::Tools::my_2d_server_2e_example::Action', t.name);
      assert.ok(set.actions.get(key)?.has(actionKey('Mandate::Action', 'tools/call')), key);
      assert.deepEqual(Object.keys((set.argumentsType(key) as { attributes: object }).attributes).sort(), [...names].sort());
    }
    const call = (args: Record<string, unknown>) => decide(set, request('my-server.example', 'create-issue', args)).decision;
    assert.equal(call({ 'my-field': 'x', if: 'yes' }), 'allow');
    assert.equal(call({ 'my-field': 'x', if: 'no' }), 'deny');
  });

  it('keeps the first of two tools with the same name and reports the second', () => {
    const tool = { name: 'x', inputSchema: { type: 'object' } } as McpToolDescription;
    const { text, unsupported } = cedarSchemaFromTools('s', [tool, tool]);
    assert.equal(text.match(/action "x"/g)?.length, 1);
    assert.deepEqual(unsupported, [{ tool: 'x', path: '', construct: 'a second tool of the same name', treatedAs: 'omitted' }]);
    compile(text);
  });

  it('parses with no tools at all', () => {
    const { text } = cedarSchemaFromTools('empty', []);
    assert.equal(cedar.checkParseSchema(`${BASE}\n${text}`).type, 'success');
  });

  it('puts the title or description and the MCP hints in a comment, on one line', () => {
    const { text } = cedarSchemaFromTools('s', [{ name: 'x', description: 'Deletes it\n*/ action "evil"', annotations: { destructiveHint: true, idempotentHint: true }, inputSchema: { type: 'object' } }]);
    assert.match(text, /\n {2}\/\/ Deletes it \(destructive, idempotent\)\n {2}action "x"/);
    assert.doesNotMatch(text, /evil/);
  });

  // Hostile or broken input schemas from a server: never a throw, never an unparsable fragment.
  for (const [name, inputSchema] of [['null', null], ['a string', 'object'], ['a number', 42], ['an array', [{ type: 'object' }]], ['true', true], ['a string type', { type: 'string' }], ['properties not an object', { type: 'object', properties: 'a' }], ['required not an array', { type: 'object', properties: { a: str }, required: 'a' }]] as const) {
    it(`survives an inputSchema that is ${name}`, () => {
      const { text, unsupported } = cedarSchemaFromTools('s', [{ name: 'x', inputSchema: inputSchema as unknown as JSONSchema }]);
      compile(text);
      if (name !== 'properties not an object' && name !== 'required not an array') assert.equal(unsupported[0]?.path, 'arguments');
    });
  }
});

function request(server: string, tool: string, args: Record<string, unknown>): DecisionRequest {
  return {
    agent: { spiffeId: 'spiffe://example.org/agent/bot' }, principal: { issuer: 'https://idp.example', subject: 'alice' },
    action: { kind: 'mcp', method: 'tools/call', server, tool: { name: tool }, arguments: args },
    scopes: ['billing:refund'], chain: [], now: new Date('2026-01-05T10:00:00Z'), binding: 'dpop',
  };
}

describe('policies over generated arguments', () => {
  const tools: McpToolDescription[] = [
    { name: 'refund', inputSchema: { type: 'object', properties: { amount: { type: 'number' }, currency: { type: 'string', enum: ['EUR', 'USD'] } }, required: ['amount', 'currency'] } },
    { name: 'comment', inputSchema: { type: 'object', properties: { repository: str, issue: int, body: str, labels: { type: 'array', items: str } }, required: ['repository', 'issue', 'body'] } },
  ];
  const { text } = cedarSchemaFromTools('billing', tools);
  const set = compile(text, `
@id("small-refunds")
permit(principal, action == Mandate::Tools::billing::Action::"refund", resource)
when { context.arguments.amount.lessThan(decimal("100.0")) && context.arguments.currency == "EUR" };

@id("acme-comments")
permit(principal, action == Mandate::Tools::billing::Action::"comment", resource)
when { context.arguments.repository like "acme/*" && context.arguments.issue > 0 };

@id("no-secret-label")
forbid(principal, action == Mandate::Tools::billing::Action::"comment", resource)
when { context.arguments has labels && context.arguments.labels.contains("secret") };
`);
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['refund', { amount: 5, currency: 'EUR' }, 'allow'],
    ['refund', { amount: 99.99, currency: 'EUR' }, 'allow'],
    ['refund', { amount: 100, currency: 'EUR' }, 'deny'],
    ['refund', { amount: 250.5, currency: 'EUR' }, 'deny'],
    ['refund', { amount: 5, currency: 'USD' }, 'deny'],
    ['refund', { amount: '5', currency: 'EUR' }, 'deny'],
    ['refund', { currency: 'EUR' }, 'deny'],
    ['comment', { repository: 'acme/widgets', issue: 7, body: 'hi' }, 'allow'],
    ['comment', { repository: 'acme/widgets', issue: 7, body: 'hi', labels: ['bug'] }, 'allow'],
    ['comment', { repository: 'acme/widgets', issue: 7, body: 'hi', labels: ['bug', 'secret'] }, 'deny'],
    ['comment', { repository: 'evil/acme', issue: 7, body: 'hi' }, 'deny'],
    ['comment', { repository: 'acme/widgets', issue: 1.5, body: 'hi' }, 'deny'],
    ['comment', { repository: 'acme/widgets', issue: 7, body: 'hi', extra: true }, 'deny'],
  ];
  for (const [tool, args, expected] of cases) {
    it(`${tool} ${JSON.stringify(args)} -> ${expected}`, () => {
      assert.equal(decide(set, request('billing', tool, args)).decision, expected);
    });
  }

  it('names the determining policy', () => {
    assert.deepEqual(decide(set, request('billing', 'refund', { amount: 5, currency: 'EUR' })).policies, ['small-refunds']);
  });

  // The generated types are enforced when the policy set is validated.
  for (const [name, policy] of [
    ['a decimal compared as a string', 'context.arguments.amount like "1*"'],
    ['an argument the tool does not have', 'context.arguments.total.lessThan(decimal("1.0"))'],
    ['an optional argument read without has', 'context.arguments.labels.contains("x")'],
  ] as const) {
    it(`refuses a policy with ${name}`, () => {
      const tool = name.includes('optional') ? 'comment' : 'refund';
      assert.throws(() => compile(text, `permit(principal, action == Mandate::Tools::billing::Action::"${tool}", resource) when { ${policy} };`), PolicySetError);
    });
  }
});
