import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { whatCan, whatCanOn } from './can.ts';
import { listedItem } from './decide.ts';
import { actionKey, compilePolicySet, loadPolicyDirectory } from './policy-set.ts';

const BILLING = `namespace Mandate::Tools::billing {
  action "refund" in [Mandate::Action::"tools/call"] appliesTo {
    principal: [Mandate::Agent], resource: [Mandate::Tool],
    context: { onBehalfOf: Mandate::Principal, mandate?: Mandate::Mandate, scopes: Set<String>, chain: Mandate::Chain, now: datetime, hour: Long, weekday: Long, clientAddress?: ipaddr, binding: String,
      arguments: { amount: decimal, currency: String } }
  };
}
`;
const POLICIES = `@id("refund-limit")
permit(principal, action == Mandate::Tools::billing::Action::"refund", resource)
when { context.arguments.amount.lessThan(decimal("100.0")) };

@id("finance-lists")
permit(principal, action == Mandate::Action::"tools/list", resource) when { context.onBehalfOf in Mandate::Group::"finance" };

@id("no-sub-agents")
forbid(principal, action == Mandate::Action::"resources/read", resource) when { context.chain.length > 1 };
@id("reads")
permit(principal, action == Mandate::Action::"resources/read", resource);
`;

describe('what an agent can do for a person (partial evaluation)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-can-'));
  writeFileSync(join(dir, 'billing.cedarschema'), BILLING);
  writeFileSync(join(dir, 'policies.cedar'), POLICIES);
  const set = compilePolicySet(loadPolicyDirectory(dir));
  const answers = (q: Parameters<typeof whatCan>[1]) => new Map(whatCan(set, q).map((a) => [a.action, a]));
  const base = { agent: 'spiffe://example.org/agent/bot', principal: { issuer: 'https://sso.example', subject: 'alice' } };

  it('answers every action: allowed, denied, or conditional with what it depends on', () => {
    const a = answers(base);
    const refund = a.get('Mandate::Tools::billing::Action::"refund"');
    assert.equal(refund?.answer, 'conditional');
    assert.deepEqual(refund?.conditions.map((c) => [c.policy, c.effect]), [['refund-limit', 'permit']]);
    assert.match(refund?.conditions[0]?.text ?? '', /^permit when \{.*unknown\("arguments"\)\.amount\.lessThan\(decimal\("100\.0"\)\)/);
    assert.equal(a.get('Mandate::Action::"tools/list"')?.answer, 'denied', 'alice is not in finance');
    assert.equal(a.get('Mandate::Action::"http"')?.answer, 'denied', 'nothing permits HTTP');
    assert.equal(a.get('Mandate::Action::"resources/read"')?.answer, 'conditional', 'depends on the unknown chain');
  });

  it('uses what is known: groups and the delegation chain', () => {
    const a = answers({ ...base, principal: { ...base.principal, groups: ['finance'] }, chain: [base.agent] });
    assert.equal(a.get('Mandate::Action::"tools/list"')?.answer, 'allowed');
    assert.equal(a.get('Mandate::Action::"resources/read"')?.answer, 'allowed');
    const sub = answers({ ...base, chain: [base.agent, 'spiffe://example.org/agent/parent'] });
    assert.equal(sub.get('Mandate::Action::"resources/read"')?.answer, 'denied', 'sub-agents are forbidden');
  });
});

describe('what an agent can do with one listed prompt or resource (partial evaluation)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-can-on-'));
  writeFileSync(join(dir, 'policies.cedar'), `@id("acme-resources")
permit(principal, action == Mandate::Action::"resources/read", resource) when { resource.uri like "issues://acme/*" };

@id("triage-prompt")
permit(principal, action == Mandate::Action::"prompts/get", resource == Mandate::Prompt::"issues/triage") when { context.hour < 18 };
`);
  const set = compilePolicySet(loadPolicyDirectory(dir));
  const q = { agent: 'spiffe://example.org/agent/bot', principal: { issuer: 'https://sso.example', subject: 'alice' } };
  const read = actionKey('Mandate::Action', 'resources/read');
  const get = actionKey('Mandate::Action', 'prompts/get');

  it('decides on the resource attributes, known here', () => {
    assert.equal(whatCanOn(set, q, read, listedItem('issues', { resourceUri: 'issues://acme/api' }))?.answer, 'allowed');
    assert.equal(whatCanOn(set, q, read, listedItem('issues', { resourceUri: 'issues://other/secret' }))?.answer, 'denied');
  });

  it('leaves the context unknown: a prompt allowed at some hours is conditional, another is denied', () => {
    const triage = whatCanOn(set, q, get, listedItem('issues', { prompt: 'triage' }));
    assert.equal(triage?.answer, 'conditional');
    assert.match(triage?.conditions[0]?.text ?? '', /hour/);
    assert.equal(whatCanOn(set, q, get, listedItem('issues', { prompt: 'purge_closed' }))?.answer, 'denied');
    assert.equal(whatCanOn(set, q, get, listedItem('mail', { prompt: 'triage' }))?.answer, 'denied', 'the same name on another server is another prompt');
  });

  it('has no answer for an action the schema does not know', () => {
    assert.equal(whatCanOn(set, q, actionKey('Mandate::Action', 'sampling/createMessage'), listedItem('issues', { prompt: 'x' })), undefined);
  });
});
