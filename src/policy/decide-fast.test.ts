/**
 * The fast path of `decide` (no schema, pruned request, decision cache) must decide exactly as Cedar's
 * fully validated request does: compared here, request by request, with a reference that puts the
 * whole request to Cedar with the schema and `validateRequest`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cedar } from './cedar.ts';
import { argumentsProblem, cedarRequest, decide, type Decision, type DecisionRequest } from './decide.ts';
import { compilePolicySet, sliceReach, type CompiledPolicySet } from './policy-set.ts';

const BILLING = `namespace Mandate::Tools::billing {
  action "refund" in [Mandate::Action::"tools/call"] appliesTo {
    principal: [Mandate::Agent], resource: [Mandate::Tool],
    context: { onBehalfOf: Mandate::Principal, mandate?: Mandate::Mandate, scopes: Set<String>, chain: Mandate::Chain, now: datetime, hour: Long, weekday: Long, clientAddress?: ipaddr, binding: String,
      arguments: { amount: decimal, currency: String, count: Long, tags: Set<String>, opts?: { fast: Bool } } }
  };
  action "export" in [Mandate::Action::"tools/call"] appliesTo {
    principal: [Mandate::Agent], resource: [Mandate::Tool],
    context: { onBehalfOf: Mandate::Principal, mandate?: Mandate::Mandate, scopes: Set<String>, chain: Mandate::Chain, now: datetime, hour: Long, weekday: Long, clientAddress?: ipaddr, binding: String,
      arguments: { format: String } }
  };
}
`;

const POLICIES = `
@id("refund-small") @reason("small refunds")
permit(principal, action == Mandate::Tools::billing::Action::"refund", resource)
when { context.arguments.amount.lessThan(decimal("100.0")) && context.scopes.contains("billing:refund") && context.arguments.count <= 3 };

@id("refund-big") @approval("required")
permit(principal, action == Mandate::Tools::billing::Action::"refund", resource)
when { context.arguments.amount.greaterThanOrEqual(decimal("100.0")) && context.onBehalfOf in Mandate::Group::"finance" };

@id("refund-fast-tag")
forbid(principal, action == Mandate::Tools::billing::Action::"refund", resource)
when { context.arguments has opts && context.arguments.opts.fast && context.arguments.tags.contains("risky") };

@id("export-csv")
permit(principal, action == Mandate::Tools::billing::Action::"export", resource)
when { context.arguments == { format: "csv" } };

@id("read-only") @reason("read-only tools")
permit(principal, action in Mandate::Action::"tools/call", resource) when { resource.readOnly && principal.trustDomain == "example.org" };

@id("tool-calls-only-business-hours")
forbid(principal, action, resource) when { action in Mandate::Action::"tools/call" && (context.hour < 8 || context.hour >= 18) };

@id("sandbox")
forbid(principal, action, resource) when { principal.hasTag("env") && principal.getTag("env") == "sandbox" };

@id("mandate-read-only")
forbid(principal, action in Mandate::Action::"tools/call", resource is Mandate::Tool)
when { context has mandate && context.mandate.hasTag("read_only") && !resource.readOnly };

@id("named-person")
permit(principal, action == Mandate::Action::"tools/list", resource)
when { context.onBehalfOf has name && context.onBehalfOf.name like "A*" };

@id("delegated-twice")
forbid(principal, action == Mandate::Action::"tools/list", resource) when { context.chain.length > 2 };

@id("blocked-net")
forbid(principal, action, resource) when { context has clientAddress && context.clientAddress.isInRange(ip("203.0.113.0/24")) };

@id("overflow")
forbid(principal, action == Mandate::Action::"resources/read", resource) when { context.chain.length * 9223372036854775807 > 0 };

@id("http-get")
permit(principal, action == Mandate::Action::"http", resource) when { resource.method == "GET" };
`;

function compile(policies = POLICIES): CompiledPolicySet {
  return compilePolicySet({ policies: [{ file: 'p.cedar', text: policies }], schemas: [{ file: 'billing.cedarschema', text: BILLING }] });
}

/**
 * The slow, fully checked path `decide` falls back to: the tool's arguments checked against their type
 * (with messages that never quote a value), then the whole request validated by Cedar against the schema.
 */
function validated(set: CompiledPolicySet, req: DecisionRequest): Decision {
  const deny = (errors: string[], policies: string[] = []): Decision => ({ decision: 'deny', policies, reasons: errors, errors, policySetVersion: set.version });
  let request;
  try {
    request = cedarRequest(set, req);
  } catch (err) {
    return deny([`the request could not be put to policy: ${(err as Error).message}`]);
  }
  const slice = set.slice(request.actionKey);
  if (!slice) return deny([`the schema has no action ${request.actionKey}`]);
  const argumentsType = set.argumentsType(request.actionKey);
  if (argumentsType && req.action.kind === 'mcp') {
    const problem = argumentsProblem(req.action.arguments ?? {}, argumentsType);
    if (problem) return deny([`the arguments do not fit tool ${req.action.tool?.name ?? ''}: ${problem}`]);
  }
  const answer = cedar.statefulIsAuthorized({
    principal: request.principal, action: request.action, resource: request.resource, context: request.context as never,
    entities: request.entities, preparsedPolicySetId: slice, preparsedSchemaName: set.schemaName, validateRequest: true,
  });
  if (answer.type !== 'success') return deny(answer.errors.map((e) => e.message.replace(/\{[\s\S]*\}/g, '{…}')));
  const { decision, diagnostics } = answer.response;
  const errors = diagnostics.errors.map((e) => `policy ${e.policyId}: ${e.error.message}`);
  const policies = diagnostics.reason;
  const reasons = policies.map((id) => set.policies.get(id)?.reason ?? `policy ${id}`);
  if (errors.length > 0) return deny(errors, [...new Set(diagnostics.errors.map((e) => e.policyId))]);
  if (decision === 'deny') return { decision: 'deny', policies, reasons: policies.length === 0 ? ['no policy permits this'] : reasons, errors, policySetVersion: set.version };
  const approval = policies.every((id) => set.policies.get(id)?.approval === true);
  return { decision: approval ? 'approval-required' : 'allow', policies, reasons, errors, policySetVersion: set.version };
}

/** Cedar reports the determining policies as a set: their order is not part of the answer. */
const normalise = (d: Decision) => ({ ...d, policies: [...d.policies].sort(), reasons: [...d.reasons].sort() });

function base(overrides: Partial<DecisionRequest> = {}): DecisionRequest {
  return {
    agent: { spiffeId: 'spiffe://example.org/agents/billing-bot', metadata: { owner: 'team-a' } },
    principal: { issuer: 'https://idp.example.org', subject: 'u1', name: 'Alice', groups: ['finance', 'staff'] },
    mandate: { id: 'mnd_1', scopes: ['billing:refund'], constraints: { max: 100 }, expiresAt: new Date('2026-12-01T00:00:00Z'), maxDepth: 2 },
    action: { kind: 'mcp', method: 'tools/call', server: 'billing', tool: { name: 'refund' }, arguments: { amount: 12.5, currency: 'EUR', count: 1, tags: [] } },
    scopes: ['billing:refund'],
    chain: [],
    now: new Date('2026-11-24T10:00:00Z'),
    binding: 'dpop',
    ...overrides,
  };
}

function refund(args: Record<string, unknown>, more: Partial<DecisionRequest> = {}): DecisionRequest {
  return base({ action: { kind: 'mcp', method: 'tools/call', server: 'billing', tool: { name: 'refund' }, arguments: args }, ...more });
}

/** A deterministic spread of requests touching every field the policies read. */
function spread(): DecisionRequest[] {
  let s = 12345;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const out: DecisionRequest[] = [];
  for (let i = 0; i < 400; i++) {
    const action: DecisionRequest['action'] = pick<DecisionRequest['action']>([
      { kind: 'mcp', method: 'tools/call', server: 'billing', tool: { name: 'refund' }, arguments: { amount: pick([5, 99.99, 100, 2500.5]), currency: 'EUR', count: pick([1, 3, 4]), tags: pick([[], ['risky'], ['a', 'risky']]), ...(rand() < 0.5 && { opts: { fast: rand() < 0.5 } }) } },
      { kind: 'mcp', method: 'tools/call', server: 'billing', tool: { name: 'export' }, arguments: { format: pick(['csv', 'json']) } },
      { kind: 'mcp', method: 'tools/call', server: 'docs', tool: { name: 'search', annotations: { readOnlyHint: rand() < 0.7, destructiveHint: rand() < 0.2 } }, arguments: { q: 'x' } },
      { kind: 'mcp', method: 'tools/list', server: 'billing' },
      { kind: 'mcp', method: 'resources/read', server: 'docs', resourceUri: 'docs://a' },
      { kind: 'mcp', method: 'prompts/get', server: 'docs', prompt: 'p' },
      { kind: 'http', server: 'api', method: pick(['GET', 'post']), pathTemplate: '/v1/x' },
    ]);
    out.push(base({
      agent: { spiffeId: pick(['spiffe://example.org/a/1', 'spiffe://other.org/a/2']), metadata: rand() < 0.3 ? { env: pick(['sandbox', 'prod']) } : {} },
      principal: { issuer: 'https://idp', subject: `u${i % 7}`, ...(rand() < 0.7 && { name: pick(['Alice', 'Bob']) }), groups: pick([[], ['finance'], ['staff', 'finance']]) },
      ...(rand() < 0.8 ? { mandate: { id: `m${i % 5}`, scopes: ['billing:refund'], constraints: rand() < 0.3 ? { read_only: true } : {}, expiresAt: new Date('2026-12-01T00:00:00Z'), maxDepth: 2 } } : { mandate: undefined }),
      action,
      scopes: pick([['billing:refund'], []]),
      chain: pick([[], ['spiffe://example.org/a/1', 'spiffe://example.org/b'], ['x', 'y', 'z']]),
      now: new Date(Date.UTC(2026, 10, 24, pick([7, 8, 12, 17, 18]), pick([0, 59]), 0)),
      ...(rand() < 0.7 && { clientAddress: pick(['10.0.0.1', '203.0.113.9', '::1']) }),
      binding: pick(['dpop', 'mtls', 'none']),
    }));
  }
  return out;
}

describe('decide, fast path', () => {
  const set = compile();

  it('decides every request of a broad spread exactly as the validated request does', () => {
    const seen = new Set<string>();
    for (const req of spread()) {
      const want = normalise(validated(set, req));
      assert.deepEqual(normalise(decide(set, req)), want, JSON.stringify(req));
      assert.deepEqual(normalise(decide(set, req)), want, 'again, from the cache');
      seen.add(want.decision);
    }
    assert.deepEqual([...seen].sort(), ['allow', 'approval-required', 'deny']);
  });

  it('denies arguments that do not conform, with the validated path\'s error', () => {
    // Cedar's schema-directed parsing would read a string as the decimal it spells; a string is not a number.
    const asString = refund({ amount: '12.5', currency: 'EUR', count: 1, tags: [] });
    assert.equal(decide(set, asString).decision, 'deny');
    assert.deepEqual(decide(set, asString).reasons, ['the arguments do not fit tool refund: arguments.amount: expected a number with at most four decimal places']);
    assert.deepEqual(normalise(decide(set, asString)), normalise(validated(set, asString)));
    assert.equal(decide(set, refund({ amount: 'twelve', currency: 'EUR', count: 1, tags: [] })).decision, 'deny');
    const table: Array<[string, Record<string, unknown>]> = [
      ['count not an integer', { amount: 1, currency: 'EUR', count: 1.5, tags: [] }],
      ['an attribute the schema lacks', { amount: 1, currency: 'EUR', count: 1, tags: [], extra: 'x' }],
      ['a required attribute missing', { amount: 1, currency: 'EUR', tags: [] }],
      ['a set of numbers', { amount: 1, currency: 'EUR', count: 1, tags: [1] }],
      ['a set as a string', { amount: 1, currency: 'EUR', count: 1, tags: 'risky' }],
      ['a nested record of the wrong type', { amount: 1, currency: 'EUR', count: 1, tags: [], opts: { fast: 'yes' } }],
      ['a nested record with an extra attribute', { amount: 1, currency: 'EUR', count: 1, tags: [], opts: { fast: true, x: 1 } }],
      ['an amount beyond the decimal range', { amount: 1e16, currency: 'EUR', count: 1, tags: [] }],
      ['an amount that is not finite', { amount: Number.NaN, currency: 'EUR', count: 1, tags: [] }],
      ['null', { amount: null, currency: 'EUR', count: 1, tags: [] }],
    ];
    for (const [name, args] of table) {
      const got = decide(set, refund(args));
      assert.equal(got.decision, 'deny', name);
      assert.ok(got.errors.length > 0 && got.errors.every((e) => e.length > 0), name);
      assert.deepEqual(normalise(got), normalise(validated(set, refund(args))), name);
    }
  });

  it('denies malformed requests as the validated path does', () => {
    const table: Array<[string, DecisionRequest]> = [
      ['tools/call without a tool', base({ action: { kind: 'mcp', method: 'tools/call', server: 'billing' } })],
      ['an invalid date', base({ now: new Date(Number.NaN) })],
      ['a metadata value that is not a string', base({ agent: { spiffeId: 'spiffe://example.org/a', metadata: { env: 1 as unknown as string } } })],
      ['an address that is not one', base({ clientAddress: 'not-an-ip' })],
      ['a method the schema lacks', base({ action: { kind: 'mcp', method: 'tools/destroy' as 'tools/call', server: 'billing' } })],
    ];
    for (const [name, req] of table) {
      const got = decide(set, req);
      assert.equal(got.decision, 'deny', name);
      assert.ok(got.errors.length > 0, name);
      assert.deepEqual(normalise(got), normalise(validated(set, req)), name);
    }
  });

  it('refuses integers beyond 2^53, which JSON cannot carry exactly', () => {
    const req = refund({ amount: 1, currency: 'EUR', count: 2 ** 60, tags: [] });
    assert.deepEqual(decide(set, req).reasons, ['the arguments do not fit tool refund: arguments.count: expected an integer']);
    assert.deepEqual(normalise(decide(set, req)), normalise(validated(set, req)));
  });

  it('decides a person listed twice in a group as the validated path does', () => {
    const req = refund({ amount: 150, currency: 'EUR', count: 1, tags: [] }, { principal: { issuer: 'i', subject: 's', groups: ['finance', 'finance'] } });
    assert.equal(decide(set, req).decision, 'approval-required');
    assert.deepEqual(normalise(decide(set, req)), normalise(validated(set, req)));
  });

  it('reports evaluation errors as denials with the error, as before', () => {
    const req = base({ action: { kind: 'mcp', method: 'resources/read', server: 'docs', resourceUri: 'docs://a' }, chain: ['a', 'b'] });
    const got = decide(set, req);
    assert.equal(got.decision, 'deny');
    assert.match(got.errors[0] ?? '', /^policy overflow: /);
    assert.deepEqual(normalise(got), normalise(validated(set, req)));
  });

  it('evaluates action groups without the schema', () => {
    const night = refund({ amount: 5, currency: 'EUR', count: 1, tags: [] }, { now: new Date('2026-11-24T22:00:00Z') });
    assert.deepEqual(decide(set, night).policies, ['tool-calls-only-business-hours']);
  });

  it('reads a record used whole (context.arguments == {...}) whole', () => {
    const exp = (args: Record<string, unknown>) => base({ action: { kind: 'mcp', method: 'tools/call', server: 'billing', tool: { name: 'export' }, arguments: args } });
    assert.equal(decide(set, exp({ format: 'csv' })).decision, 'allow');
    assert.equal(decide(set, exp({ format: 'json' })).decision, 'deny');
  });

  it('hands out copies from the cache, and keeps sets apart', () => {
    const req = refund({ amount: 5, currency: 'EUR', count: 1, tags: [] });
    const first = decide(set, req);
    assert.equal(first.decision, 'allow');
    first.policies.push('tampered');
    first.reasons.length = 0;
    assert.deepEqual(decide(set, req), validated(set, req));
    const stricter = compile(POLICIES.replace('context.arguments.count <= 3', 'context.arguments.count <= 0'));
    const other = decide(stricter, req);
    assert.equal(other.decision, 'deny');
    assert.equal(other.policySetVersion, stricter.version);
  });

  it('does not confuse requests that differ in what policies read', () => {
    const a = refund({ amount: 5, currency: 'EUR', count: 1, tags: [] });
    assert.equal(decide(set, a).decision, 'allow');
    assert.equal(decide(set, { ...a, scopes: [] }).decision, 'deny');
    assert.equal(decide(set, { ...a, agent: { spiffeId: a.agent.spiffeId, metadata: { env: 'sandbox' } } }).decision, 'deny');
    assert.equal(decide(set, { ...a, clientAddress: '203.0.113.1' }).decision, 'deny');
    assert.equal(decide(set, refund({ amount: 5, currency: 'EUR', count: 4, tags: [] })).decision, 'deny');
  });
});

describe('sliceReach', () => {
  const set = compile();
  const refundKey = 'Mandate::Tools::billing::Action::"refund"';

  it('names the context fields, entity attributes and tags a slice reads', () => {
    const reach = sliceReach(set, refundKey);
    assert.ok(reach && reach.context !== true);
    const args = reach.context.get('arguments');
    assert.ok(args instanceof Map);
    assert.deepEqual([...args.keys()].sort(), ['amount', 'count', 'opts', 'tags']);
    assert.equal(reach.context.get('hour'), true);
    assert.equal(reach.context.has('weekday'), false);
    assert.equal(reach.context.has('now'), false);
    assert.ok(reach.attributes.has('readOnly') && reach.attributes.has('trustDomain'));
    assert.ok(!reach.attributes.has('spiffeId'));
    assert.deepEqual(reach.tags instanceof Set ? [...reach.tags].sort() : reach.tags, ['env', 'read_only']);
  });

  it('keeps the whole context, or every tag, when a policy uses them in ways it cannot follow', () => {
    const whole = compile(`permit(principal, action == Mandate::Action::"tools/list", resource) when { context == context };
permit(principal, action == Mandate::Action::"tools/list", resource) when { principal.hasTag(context.binding) };`);
    const reach = sliceReach(whole, 'Mandate::Action::"tools/list"');
    assert.equal(reach?.context, true);
    assert.equal(reach?.tags, true);
    assert.equal(sliceReach(whole, 'Mandate::Action::"nope"'), undefined);
  });
});
