import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide, toolNamespace, type Decision, type DecisionRequest } from './decide.ts';
import { compilePolicySet, type CompiledPolicySet } from './policy-set.ts';

const COMMON = `onBehalfOf: Mandate::Principal, mandate?: Mandate::Mandate, scopes: Set<String>, chain: Mandate::Chain,
      now: datetime, hour: Long, weekday: Long, clientAddress?: ipaddr, binding: String`;
const toolAction = (name: string, args: string) => `  action "${name}" in [Mandate::Action::"tools/call"] appliesTo {
    principal: [Mandate::Agent], resource: [Mandate::Tool],
    context: { ${COMMON}, arguments: { ${args} } }
  };
`;
const ISSUES = `namespace Mandate::Tools::issues {
${toolAction('add_comment', 'repository: String, issue: Long, body: String')}${toolAction('delete_issue', 'repository: String, issue: Long')}}
`;
const BILLING = `namespace Mandate::Tools::billing {
${toolAction('refund', 'amount: decimal, currency: String')}${toolAction('limit', 'max?: decimal, tags?: Set<String>')}}
`;

function compile(policies: string): CompiledPolicySet {
  return compilePolicySet({ policies: [{ file: 'p.cedar', text: policies }], schemas: [{ file: 'issues.cedarschema', text: ISSUES }, { file: 'billing.cedarschema', text: BILLING }] });
}

const BOT = 'spiffe://example.org/agent/bot';
const PARENT = 'spiffe://example.org/agent/planner';
const MONDAY_10 = new Date('2026-11-23T10:00:00Z');

type Overrides = Partial<Omit<DecisionRequest, 'action'>> & { action?: DecisionRequest['action'] };

function request(o: Overrides = {}): DecisionRequest {
  return {
    agent: { spiffeId: BOT },
    principal: { issuer: 'https://sso.example', subject: 'alice' },
    action: { kind: 'mcp', method: 'tools/call', server: 'issues', tool: { name: 'add_comment' }, arguments: { repository: 'acme/api', issue: 7, body: 'hello' } },
    scopes: [],
    chain: [],
    now: MONDAY_10,
    binding: 'none',
    ...o,
  };
}

const call = (server: string, name: string, args?: Record<string, unknown>, annotations?: Record<string, boolean>): DecisionRequest['action'] => ({
  kind: 'mcp', method: 'tools/call', server, tool: { name, ...(annotations && { annotations }) }, ...(args && { arguments: args }),
});
const comment = (args: Record<string, unknown>) => call('issues', 'add_comment', args);
const refund = (amount: unknown) => call('billing', 'refund', { amount, currency: 'EUR' });
const mandate = (constraints: Record<string, unknown>): DecisionRequest['mandate'] => ({ id: 'm1', scopes: ['issues:comment'], constraints, expiresAt: new Date('2026-12-01T00:00:00Z'), maxDepth: 1 });

interface Case {
  name: string;
  policies: string;
  request: DecisionRequest;
  decision: Decision['decision'];
  /** The determining policies, exactly (order-insensitive). */
  ids?: string[];
  reasons?: string[];
  /** Every error matches; at least one error. */
  error?: RegExp;
}

function check(c: Case): void {
  const set = compile(c.policies);
  const d = decide(set, c.request);
  assert.equal(d.decision, c.decision, JSON.stringify(d));
  assert.equal(d.policySetVersion, set.version);
  if (c.ids) assert.deepEqual([...d.policies].sort(), [...c.ids].sort());
  if (c.reasons) assert.deepEqual([...d.reasons].sort(), [...c.reasons].sort());
  if (c.error) {
    assert.ok(d.errors.length > 0, 'expected an error');
    for (const e of d.errors) assert.match(e, c.error);
    for (const e of d.errors) assert.ok(d.reasons.includes(e), 'errors are among the reasons');
  } else {
    assert.deepEqual(d.errors, []);
  }
}

const PERMIT_ALL = '@id("all") @reason("anything goes") permit(principal, action, resource);\n';
const FORBID_DESTRUCTIVE = '@id("no-destructive") @reason("destructive tools are never allowed")\nforbid(principal, action in Mandate::Action::"tools/call", resource) when { resource.destructive };\n';

const CASES: Case[] = [
  // forbid beats permit
  { name: 'forbid beats permit', policies: PERMIT_ALL + FORBID_DESTRUCTIVE, request: request({ action: call('other', 'wipe', {}, { destructiveHint: true }) }), decision: 'deny', ids: ['no-destructive'], reasons: ['destructive tools are never allowed'] },
  { name: 'a forbid that does not match leaves the permit', policies: PERMIT_ALL + FORBID_DESTRUCTIVE, request: request({ action: call('other', 'look', {}, { readOnlyHint: true }) }), decision: 'allow', ids: ['all'], reasons: ['anything goes'] },
  { name: 'forbid beats an @approval permit too', policies: '@id("ask") @approval("required") permit(principal, action, resource);\n' + FORBID_DESTRUCTIVE, request: request({ action: call('other', 'wipe', {}, { destructiveHint: true }) }), decision: 'deny', ids: ['no-destructive'] },

  // nothing permits
  { name: 'empty policy set denies', policies: '', request: request(), decision: 'deny', ids: [], reasons: ['no policy permits this'] },
  { name: 'only forbids, none matching, denies', policies: FORBID_DESTRUCTIVE, request: request({ action: { ...call('other', 'look'), tool: { name: 'look', annotations: { readOnlyHint: true } } } as DecisionRequest['action'] }), decision: 'deny', ids: [], reasons: ['no policy permits this'] },
  { name: 'a tool without MCP hints counts as destructive (the MCP defaults)', policies: FORBID_DESTRUCTIVE, request: request({ action: call('other', 'look') }), decision: 'deny', ids: ['no-destructive'], reasons: ['destructive tools are never allowed'] },
  { name: 'a permit for another action does not apply', policies: '@id("list") permit(principal, action == Mandate::Action::"tools/list", resource);', request: request(), decision: 'deny', ids: [], reasons: ['no policy permits this'] },

  // missing attributes: optional mandate and `has` guards
  ...((): Case[] => {
    const repoRule = '@id("repo") @reason("the mandate names the repository")\npermit(principal, action == Mandate::Tools::issues::Action::"add_comment", resource)\nwhen { context has mandate && context.mandate.hasTag("repository") && context.mandate.getTag("repository") == context.arguments.repository };\n';
    return [
      { name: 'mandate constraint matches the argument', policies: repoRule, request: request({ mandate: mandate({ repository: 'acme/api' }) }), decision: 'allow', ids: ['repo'], reasons: ['the mandate names the repository'] },
      { name: 'mandate constraint names another repository', policies: repoRule, request: request({ mandate: mandate({ repository: 'acme/web' }) }), decision: 'deny', ids: [], reasons: ['no policy permits this'] },
      { name: 'mandate without the constraint (hasTag guard)', policies: repoRule, request: request({ mandate: mandate({ other: 'x' }) }), decision: 'deny', ids: [] },
      { name: 'no mandate at all (has guard)', policies: repoRule, request: request(), decision: 'deny', ids: [], reasons: ['no policy permits this'] },
      { name: 'a non-string constraint is its JSON text', policies: '@id("n") permit(principal, action, resource) when { context has mandate && context.mandate.hasTag("max") && context.mandate.getTag("max") == "[1,2]" };', request: request({ mandate: mandate({ max: [1, 2] }) }), decision: 'allow', ids: ['n'] },
      { name: 'forbid unless a mandate: absent mandate denies', policies: PERMIT_ALL + '@id("need-mandate") @reason("only under a mandate") forbid(principal, action, resource) unless { context has mandate };', request: request(), decision: 'deny', ids: ['need-mandate'], reasons: ['only under a mandate'] },
      { name: 'forbid unless a mandate: present mandate allows', policies: PERMIT_ALL + '@id("need-mandate") forbid(principal, action, resource) unless { context has mandate };', request: request({ mandate: mandate({}) }), decision: 'allow', ids: ['all'] },
      { name: 'mandate attributes: scopes and maxDepth', policies: '@id("m") permit(principal, action, resource) when { context has mandate && context.mandate.scopes.contains("issues:comment") && context.mandate.maxDepth == 1 && context.mandate.expiresAt > context.now };', request: request({ mandate: mandate({}) }), decision: 'allow', ids: ['m'] },
      { name: 'optional argument absent (has guard)', policies: '@id("cap") permit(principal, action == Mandate::Tools::billing::Action::"limit", resource) unless { context.arguments has max };', request: request({ action: call('billing', 'limit', {}) }), decision: 'allow', ids: ['cap'] },
      { name: 'optional argument present', policies: '@id("cap") permit(principal, action == Mandate::Tools::billing::Action::"limit", resource) unless { context.arguments has max };', request: request({ action: call('billing', 'limit', { max: 3.5 }) }), decision: 'deny', ids: [] },
      { name: 'set argument', policies: '@id("tags") permit(principal, action == Mandate::Tools::billing::Action::"limit", resource) when { context.arguments has tags && context.arguments.tags.contains("vip") };', request: request({ action: call('billing', 'limit', { tags: ['vip', 'eu'] }) }), decision: 'allow', ids: ['tags'] },
    ];
  })(),

  // wrong argument types: refused by request validation, denied with the error
  ...[
    { name: 'string where Long', args: { repository: 'acme/api', issue: '7', body: 'x' } },
    { name: 'fraction where Long', args: { repository: 'acme/api', issue: 7.5, body: 'x' } },
    { name: 'number where String', args: { repository: 42, issue: 7, body: 'x' } },
    { name: 'missing argument', args: { repository: 'acme/api', issue: 7 } },
    { name: 'extra argument', args: { repository: 'acme/api', issue: 7, body: 'x', admin: true } },
    { name: 'object where String', args: { repository: { name: 'acme/api' }, issue: 7, body: 'x' } },
    { name: 'array where Long', args: { repository: 'acme/api', issue: [7], body: 'x' } },
    { name: 'null argument', args: { repository: 'acme/api', issue: null, body: 'x' } },
    { name: 'Long out of range', args: { repository: 'acme/api', issue: 2 ** 64, body: 'x' } },
  ].map(({ name, args }): Case => ({ name: `wrong arguments: ${name}`, policies: PERMIT_ALL, request: request({ action: comment(args) }), decision: 'deny', ids: [], error: /./ })),
  { name: 'wrong arguments: arguments absent for a typed tool', policies: PERMIT_ALL, request: request({ action: call('issues', 'add_comment') }), decision: 'deny', ids: [], error: /arguments\.body: required/ },
  { name: 'wrong arguments: not a decimal', policies: PERMIT_ALL, request: request({ action: refund('lots') }), decision: 'deny', ids: [], error: /decimal/ },
  { name: 'wrong arguments: decimal out of range', policies: PERMIT_ALL, request: request({ action: refund(1e300) }), decision: 'deny', ids: [], error: /./ },
  { name: 'wrong arguments: NaN-like decimal', policies: PERMIT_ALL, request: request({ action: refund(Number.POSITIVE_INFINITY) }), decision: 'deny', ids: [], error: /./ },

  // unknown tools: the generic tools/call action, no arguments in the context
  { name: 'unknown tool falls back to tools/call', policies: '@id("generic") permit(principal, action == Mandate::Action::"tools/call", resource) when { resource.name == "mystery" && resource.server == "issues" };', request: request({ action: call('issues', 'mystery', { anything: [1, { x: 2 }] }) }), decision: 'allow', ids: ['generic'] },
  { name: 'unknown tool: per-tool policies do not apply', policies: '@id("comment") permit(principal, action == Mandate::Tools::issues::Action::"add_comment", resource);', request: request({ action: call('issues', 'mystery', {}) }), decision: 'deny', ids: [], reasons: ['no policy permits this'] },
  { name: 'unknown server: tools/call, not another server\'s action', policies: '@id("comment") permit(principal, action == Mandate::Tools::issues::Action::"add_comment", resource);', request: request({ action: call('elsewhere', 'add_comment', { repository: 'acme/api', issue: 7, body: 'x' }) }), decision: 'deny', ids: [] },
  { name: '`action in tools/call` covers per-tool actions', policies: '@id("calls") permit(principal, action in Mandate::Action::"tools/call", resource);', request: request(), decision: 'allow', ids: ['calls'] },
  { name: '`action == tools/call` does not cover a tool that has its own action', policies: '@id("generic") permit(principal, action == Mandate::Action::"tools/call", resource);', request: request(), decision: 'deny', ids: [] },
  { name: 'tools/call without a tool is refused', policies: PERMIT_ALL, request: request({ action: { kind: 'mcp', method: 'tools/call', server: 'issues' } }), decision: 'deny', ids: [], error: /./ },
  { name: 'the tool is in its server', policies: '@id("srv") permit(principal, action, resource in Mandate::ToolServer::"issues");', request: request({ action: call('issues', 'mystery') }), decision: 'allow', ids: ['srv'] },

  // evaluation errors deny
  ...((): Case[] => {
    const overflowForbid = '@id("overflow") forbid(principal, action == Mandate::Tools::issues::Action::"add_comment", resource) when { context.arguments.issue * 4611686018427387904 > 0 };\n';
    return [
      { name: 'an evaluation error in a forbid denies, though a permit matches', policies: PERMIT_ALL + overflowForbid, request: request(), decision: 'deny', error: /^policy overflow: .*overflow/ },
      { name: 'the same forbid without the error leaves the permit', policies: PERMIT_ALL + overflowForbid, request: request({ action: comment({ repository: 'acme/api', issue: 0, body: 'x' }) }), decision: 'allow', ids: ['all'] },
      { name: 'an evaluation error in a permit denies, though another permit matches', policies: PERMIT_ALL + '@id("bad-permit") permit(principal, action == Mandate::Tools::issues::Action::"add_comment", resource) when { context.arguments.issue * 4611686018427387904 > 0 };', request: request(), decision: 'deny', error: /^policy bad-permit: / },
    ];
  })(),

  // approval
  ...((): Case[] => {
    const ask = '@id("ask") @reason("a person must approve") @approval("required") permit(principal, action, resource);\n';
    const plain = '@id("plain") @reason("allowed outright") permit(principal, action in Mandate::Action::"tools/call", resource) when { resource.readOnly };\n';
    return [
      { name: 'approval-required when the only permit carries @approval', policies: ask + plain, request: request(), decision: 'approval-required', ids: ['ask'], reasons: ['a person must approve'] },
      { name: 'allow when one determining permit has no @approval', policies: ask + plain, request: request({ action: call('other', 'look', {}, { readOnlyHint: true }) }), decision: 'allow', ids: ['ask', 'plain'], reasons: ['a person must approve', 'allowed outright'] },
      { name: 'approval-required when every determining permit carries @approval', policies: ask + '@id("ask2") @approval("required") permit(principal, action in Mandate::Action::"tools/call", resource);', request: request(), decision: 'approval-required', ids: ['ask', 'ask2'] },
    ];
  })(),

  // reasons and ids
  { name: 'a policy without @reason is named in the reasons', policies: 'permit(principal, action, resource);', request: request(), decision: 'allow', ids: ['p.cedar:1'], reasons: ['policy p.cedar:1'] },
  { name: 'default ids count policies in their file', policies: 'forbid(principal, action, resource) when { context.hour == 3 };\npermit(principal, action, resource);', request: request(), decision: 'allow', ids: ['p.cedar:2'] },

  // groups
  ...((): Case[] => {
    const finance = '@id("finance") @reason("finance may refund") permit(principal, action == Mandate::Tools::billing::Action::"refund", resource) when { context.onBehalfOf in Mandate::Group::"finance" };';
    return [
      { name: 'group member', policies: finance, request: request({ action: refund(10), principal: { issuer: 'https://sso.example', subject: 'alice', groups: ['eng', 'finance'] } }), decision: 'allow', ids: ['finance'] },
      { name: 'not a member', policies: finance, request: request({ action: refund(10), principal: { issuer: 'https://sso.example', subject: 'alice', groups: ['eng'] } }), decision: 'deny', ids: [] },
      { name: 'no groups', policies: finance, request: request({ action: refund(10) }), decision: 'deny', ids: [] },
      { name: 'group names are case-sensitive', policies: finance, request: request({ action: refund(10), principal: { issuer: 'https://sso.example', subject: 'alice', groups: ['Finance'] } }), decision: 'deny', ids: [] },
      { name: 'principal attributes', policies: '@id("alice") permit(principal, action, resource) when { context.onBehalfOf.subject == "alice" && context.onBehalfOf.issuer == "https://sso.example" && context.onBehalfOf has name && context.onBehalfOf.name == "Alice" };', request: request({ principal: { issuer: 'https://sso.example', subject: 'alice', name: 'Alice' } }), decision: 'allow', ids: ['alice'] },
      { name: 'a principal without a name (has guard)', policies: '@id("alice") permit(principal, action, resource) when { context.onBehalfOf has name };', request: request(), decision: 'deny', ids: [] },
    ];
  })(),

  // the agent: SPIFFE ID parts and registration metadata as tags
  ...((): Case[] => {
    const team = '@id("team") permit(principal, action, resource) when { principal.hasTag("team") && principal.getTag("team") == "support" && principal.trustDomain == "example.org" && principal.path == "/agent/bot" };';
    return [
      { name: 'agent tag and SPIFFE parts', policies: team, request: request({ agent: { spiffeId: BOT, metadata: { team: 'support' } } }), decision: 'allow', ids: ['team'] },
      { name: 'agent without the tag', policies: team, request: request(), decision: 'deny', ids: [] },
      { name: 'the agent by its SPIFFE ID', policies: `@id("bot") permit(principal == Mandate::Agent::"${BOT}", action, resource);`, request: request(), decision: 'allow', ids: ['bot'] },
      { name: 'another agent', policies: `@id("bot") permit(principal == Mandate::Agent::"${BOT}", action, resource);`, request: request({ agent: { spiffeId: PARENT } }), decision: 'deny', ids: [] },
    ];
  })(),

  // business hours: UTC hour and ISO weekday
  ...((): Case[] => {
    const hours = PERMIT_ALL + '@id("hours") @reason("destructive only in business hours") forbid(principal, action in Mandate::Action::"tools/call", resource) when { resource.destructive } unless { context.weekday <= 5 && context.hour >= 8 && context.hour < 18 };';
    const at = (iso: string, decision: Decision['decision']): Case => ({ name: `business hours at ${iso}`, policies: hours, request: request({ action: call('other', 'wipe', {}, { destructiveHint: true }), now: new Date(iso) }), decision, ids: decision === 'allow' ? ['all'] : ['hours'] });
    return [
      at('2026-11-23T10:00:00Z', 'allow'), // Monday
      at('2026-11-27T17:59:59Z', 'allow'), // Friday
      at('2026-11-27T18:00:00Z', 'deny'),
      at('2026-11-23T07:59:59Z', 'deny'),
      at('2026-11-23T08:00:00Z', 'allow'),
      at('2026-11-28T10:00:00Z', 'deny'), // Saturday
      at('2026-11-29T10:00:00Z', 'deny'), // Sunday (weekday 7)
      at('2026-11-23T09:30:00+02:00', 'deny'), // 07:30 UTC: the hour is UTC, not local
      { name: 'weekday 1 is Monday, 7 is Sunday', policies: '@id("w") permit(principal, action, resource) when { context.weekday == 7 && context.hour == 23 };', request: request({ now: new Date('2026-11-29T23:15:00Z') }), decision: 'allow', ids: ['w'] },
      { name: 'now is a datetime', policies: '@id("t") permit(principal, action, resource) when { context.now < datetime("2026-12-01") && context.now.toDate() == datetime("2026-11-23") };', request: request(), decision: 'allow', ids: ['t'] },
    ];
  })(),

  // sub-agents
  ...((): Case[] => {
    const sub = PERMIT_ALL + '@id("sub") @reason("sub-agents never destroy") forbid(principal, action in Mandate::Action::"tools/call", resource) when { context.chain.length > 1 && resource.destructive };';
    const wipe = call('other', 'wipe', {}, { destructiveHint: true });
    return [
      { name: 'a sub-agent may not call a destructive tool', policies: sub, request: request({ action: wipe, chain: [BOT, PARENT] }), decision: 'deny', ids: ['sub'], reasons: ['sub-agents never destroy'] },
      { name: 'the agent itself may (no chain given)', policies: sub, request: request({ action: wipe }), decision: 'allow', ids: ['all'] },
      { name: 'the agent itself may (chain of one)', policies: sub, request: request({ action: wipe, chain: [BOT] }), decision: 'allow', ids: ['all'] },
      { name: 'a sub-agent may call a harmless tool', policies: sub, request: request({ action: call('other', 'look', {}, { readOnlyHint: true }), chain: [BOT, PARENT] }), decision: 'allow', ids: ['all'] },
      { name: 'delegator and origin', policies: `@id("d") permit(principal, action, resource) when { context.chain has delegator && context.chain.delegator == "${PARENT}" && context.chain.origin == "spiffe://example.org/agent/root" && context.chain.actors.contains("${BOT}") && context.chain.length == 3 };`, request: request({ chain: [BOT, PARENT, 'spiffe://example.org/agent/root'] }), decision: 'allow', ids: ['d'] },
      { name: 'no delegator without delegation (has guard)', policies: '@id("d") permit(principal, action, resource) when { context.chain has delegator };', request: request({ chain: [BOT] }), decision: 'deny', ids: [] },
      { name: 'origin is the agent itself without delegation', policies: `@id("o") permit(principal, action, resource) when { context.chain.origin == "${BOT}" };`, request: request(), decision: 'allow', ids: ['o'] },
    ];
  })(),

  // decimals
  ...((): Case[] => {
    const limits = '@id("small") @reason("small refunds") permit(principal, action == Mandate::Tools::billing::Action::"refund", resource) when { context.arguments.amount.lessThan(decimal("100.0")) };\n'
      + '@id("big") @reason("big refunds need approval") @approval("required") permit(principal, action == Mandate::Tools::billing::Action::"refund", resource) when { context.arguments.amount.greaterThanOrEqual(decimal("100.0")) };\n';
    const amount = (value: number, decision: Decision['decision'], ids: string[]): Case => ({ name: `refund of ${value}`, policies: limits, request: request({ action: refund(value) }), decision, ids });
    return [
      amount(99.99, 'allow', ['small']),
      amount(0, 'allow', ['small']),
      amount(99, 'allow', ['small']),
      amount(100, 'approval-required', ['big']),
      amount(100.0001, 'approval-required', ['big']),
      amount(150.5, 'approval-required', ['big']),
      amount(-5, 'allow', ['small']),
      { name: 'currency and amount together', policies: '@id("eur") permit(principal, action == Mandate::Tools::billing::Action::"refund", resource) when { context.arguments.currency == "EUR" && context.arguments.amount.lessThanOrEqual(decimal("12.5")) };', request: request({ action: refund(12.5) }), decision: 'allow', ids: ['eur'] },
    ];
  })(),

  // client address
  ...((): Case[] => {
    const office = '@id("office") @reason("from the office network") permit(principal, action, resource) when { context has clientAddress && (context.clientAddress.isInRange(ip("10.0.0.0/8")) || context.clientAddress.isInRange(ip("2001:db8::/32"))) };';
    return [
      { name: 'address in range', policies: office, request: request({ clientAddress: '10.1.2.3' }), decision: 'allow', ids: ['office'] },
      { name: 'IPv6 address in range', policies: office, request: request({ clientAddress: '2001:db8::7' }), decision: 'allow', ids: ['office'] },
      { name: 'address out of range', policies: office, request: request({ clientAddress: '192.168.1.1' }), decision: 'deny', ids: [] },
      { name: 'no address (has guard)', policies: office, request: request(), decision: 'deny', ids: [] },
      { name: 'not an address', policies: office, request: request({ clientAddress: 'not-an-ip' }), decision: 'deny', ids: [], error: /./ },
      { name: 'a forbid on a range', policies: PERMIT_ALL + '@id("bad-net") forbid(principal, action, resource) when { context has clientAddress && context.clientAddress.isInRange(ip("203.0.113.0/24")) };', request: request({ clientAddress: '203.0.113.9' }), decision: 'deny', ids: ['bad-net'] },
      { name: 'loopback', policies: '@id("local") permit(principal, action, resource) when { context has clientAddress && context.clientAddress.isLoopback() };', request: request({ clientAddress: '127.0.0.1' }), decision: 'allow', ids: ['local'] },
    ];
  })(),

  // binding and scopes
  { name: 'binding', policies: '@id("bound") permit(principal, action, resource) when { context.binding != "none" };', request: request({ binding: 'dpop' }), decision: 'allow', ids: ['bound'] },
  { name: 'unbound token', policies: '@id("bound") permit(principal, action, resource) when { context.binding != "none" };', request: request(), decision: 'deny', ids: [] },
  { name: 'token scope', policies: '@id("scope") permit(principal, action, resource) when { context.scopes.contains("issues:comment") };', request: request({ scopes: ['issues:read', 'issues:comment'] }), decision: 'allow', ids: ['scope'] },
  { name: 'missing token scope', policies: '@id("scope") permit(principal, action, resource) when { context.scopes.contains("issues:comment") };', request: request({ scopes: ['issues:read'] }), decision: 'deny', ids: [] },

  // HTTP routes
  ...((): Case[] => {
    const routes = '@id("read-issues") @reason("reading issues over HTTP") permit(principal, action == Mandate::Action::"http", resource is Mandate::HttpRoute in Mandate::ToolServer::"github") when { resource.method == "GET" && resource.pathTemplate like "/repos/*/issues*" };';
    const http = (method: string, pathTemplate: string, server = 'github'): DecisionRequest['action'] => ({ kind: 'http', server, method, pathTemplate });
    return [
      { name: 'GET on the route', policies: routes, request: request({ action: http('GET', '/repos/{owner}/{repo}/issues') }), decision: 'allow', ids: ['read-issues'] },
      { name: 'the method is upper-cased', policies: routes, request: request({ action: http('get', '/repos/{owner}/{repo}/issues/{number}') }), decision: 'allow', ids: ['read-issues'] },
      { name: 'POST on the route', policies: routes, request: request({ action: http('POST', '/repos/{owner}/{repo}/issues') }), decision: 'deny', ids: [] },
      { name: 'another route', policies: routes, request: request({ action: http('GET', '/user/keys') }), decision: 'deny', ids: [] },
      { name: 'another server', policies: routes, request: request({ action: http('GET', '/repos/{owner}/{repo}/issues', 'gitlab') }), decision: 'deny', ids: [] },
      { name: 'tool policies do not apply to HTTP', policies: '@id("calls") permit(principal, action in Mandate::Action::"tools/call", resource);', request: request({ action: http('GET', '/') }), decision: 'deny', ids: [] },
    ];
  })(),

  // listings, resources, prompts
  { name: 'tools/list on a server', policies: '@id("list") permit(principal, action == Mandate::Action::"tools/list", resource == Mandate::ToolServer::"issues");', request: request({ action: { kind: 'mcp', method: 'tools/list', server: 'issues' } }), decision: 'allow', ids: ['list'] },
  { name: 'tools/list on another server', policies: '@id("list") permit(principal, action == Mandate::Action::"tools/list", resource == Mandate::ToolServer::"issues");', request: request({ action: { kind: 'mcp', method: 'tools/list', server: 'billing' } }), decision: 'deny', ids: [] },
  { name: 'tools/list server attributes', policies: '@id("list") permit(principal, action == Mandate::Action::"tools/list", resource) when { resource.name == "issues" && resource.kind == "mcp" };', request: request({ action: { kind: 'mcp', method: 'tools/list', server: 'issues' } }), decision: 'allow', ids: ['list'] },
  { name: 'resources/read by URI', policies: '@id("docs") permit(principal, action == Mandate::Action::"resources/read", resource) when { resource.uri like "file:///docs/*" && resource.server == "issues" };', request: request({ action: { kind: 'mcp', method: 'resources/read', server: 'issues', resourceUri: 'file:///docs/readme.md' } }), decision: 'allow', ids: ['docs'] },
  { name: 'resources/read of another URI', policies: '@id("docs") permit(principal, action == Mandate::Action::"resources/read", resource) when { resource.uri like "file:///docs/*" };', request: request({ action: { kind: 'mcp', method: 'resources/read', server: 'issues', resourceUri: 'file:///etc/passwd' } }), decision: 'deny', ids: [] },
  { name: 'resources/read without a URI is refused', policies: PERMIT_ALL, request: request({ action: { kind: 'mcp', method: 'resources/read', server: 'issues' } }), decision: 'deny', ids: [], error: /./ },
  { name: 'prompts/get by name', policies: '@id("prompt") permit(principal, action == Mandate::Action::"prompts/get", resource) when { resource.name == "triage" };', request: request({ action: { kind: 'mcp', method: 'prompts/get', server: 'issues', prompt: 'triage' } }), decision: 'allow', ids: ['prompt'] },
  { name: 'resources/list', policies: '@id("rl") permit(principal, action == Mandate::Action::"resources/list", resource is Mandate::ToolServer);', request: request({ action: { kind: 'mcp', method: 'resources/list', server: 'issues' } }), decision: 'allow', ids: ['rl'] },
];

describe('decide', () => {
  for (const c of CASES) it(c.name, () => check(c));

  it('never throws: a request that cannot be built denies with the error', () => {
    const set = compile(PERMIT_ALL);
    const d = decide(set, request({ now: new Date(Number.NaN) }));
    assert.equal(d.decision, 'deny');
    assert.equal(d.errors.length, 1);
    assert.match(d.errors[0] as string, /could not be put to policy/);
  });

  it('maps server names to Cedar namespaces', () => {
    assert.equal(toolNamespace('issues'), 'Mandate::Tools::issues');
    assert.equal(toolNamespace('my-server.v2'), 'Mandate::Tools::my_2d_server_2e_v2');
    assert.notEqual(toolNamespace('a-b'), toolNamespace('a_b'), 'names never share a namespace');
    assert.equal(toolNamespace('9lives'), 'Mandate::Tools::_9lives');
  });

  it('uses the per-tool action of a server whose name is not a Cedar identifier', () => {
    const schema = ISSUES.replace('namespace Mandate::Tools::issues', `namespace ${toolNamespace('issue-tracker')}`);
    const set = compilePolicySet({ schemas: [{ file: 's.cedarschema', text: schema }], policies: [{ file: 'p.cedar', text: '@id("c") permit(principal, action == Mandate::Tools::issue_2d_tracker::Action::"add_comment", resource) when { context.arguments.issue == 7 };' }] });
    assert.equal(decide(set, request({ action: call('issue-tracker', 'add_comment', { repository: 'acme/api', issue: 7, body: 'x' }) })).decision, 'allow');
    assert.equal(decide(set, request({ action: call('issue-tracker', 'add_comment', { repository: 'acme/api', issue: 8, body: 'x' }) })).decision, 'deny');
  });

  // Known defects (see the report); these state the correct behaviour.
  it('refuses or keeps exact a decimal with more than four fraction digits (no rounding across a limit)', () => {
    const set = compile(PERMIT_ALL + '@id("cap") forbid(principal, action == Mandate::Tools::billing::Action::"refund", resource) when { context.arguments.amount.greaterThan(decimal("100.0")) };');
    assert.equal(decide(set, request({ action: refund(100.00001) })).decision, 'deny');
  });

  it('refuses a string where the schema says decimal', () => {
    const set = compile(PERMIT_ALL);
    assert.equal(decide(set, request({ action: refund('12.5') })).decision, 'deny');
  });

  it('reads an IPv4-mapped IPv6 client address as the IPv4 address', () => {
    const set = compile('@id("office") permit(principal, action, resource) when { context has clientAddress && context.clientAddress.isInRange(ip("10.0.0.0/8")) };');
    assert.equal(decide(set, request({ clientAddress: '::ffff:10.1.2.3' })).decision, 'allow');
  });

  it('names the failing policy, not the permit, when an evaluation error denies', () => {
    const set = compile(PERMIT_ALL + '@id("overflow") forbid(principal, action == Mandate::Tools::issues::Action::"add_comment", resource) when { context.arguments.issue * 4611686018427387904 > 0 };');
    assert.deepEqual(decide(set, request()).policies, ['overflow']);
  });

  it('keeps argument values out of the reasons when request validation refuses them', () => {
    const set = compile(PERMIT_ALL);
    const d = decide(set, request({ action: comment({ repository: 'acme/api', issue: '7', body: 'sk-live-SECRET' }) }));
    assert.equal(d.decision, 'deny');
    assert.ok(!JSON.stringify(d).includes('SECRET'), JSON.stringify(d.reasons));
  });
});
