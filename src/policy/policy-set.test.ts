import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { isMandateError } from '../errors.ts';
import { actionKey, compilePolicySet, loadPolicyDirectory, PolicySetError, type PolicyProblem, type PolicySources } from './policy-set.ts';

const FRAGMENT = `namespace Mandate::Tools::billing {
  action "refund" in [Mandate::Action::"tools/call"] appliesTo {
    principal: [Mandate::Agent], resource: [Mandate::Tool],
    context: { onBehalfOf: Mandate::Principal, mandate?: Mandate::Mandate, scopes: Set<String>, chain: Mandate::Chain,
      now: datetime, hour: Long, weekday: Long, clientAddress?: ipaddr, binding: String,
      arguments: { amount: decimal, currency: String } }
  };
}
`;

const GOOD = `// refunds
@id("refund-limit")
@reason("small refunds")
permit(principal, action == Mandate::Tools::billing::Action::"refund", resource)
when { context.arguments.amount.lessThan(decimal("100.0")) };

@id("big-refund")
@reason("big refunds need approval")
@approval("required")
permit(principal, action == Mandate::Tools::billing::Action::"refund", resource);

forbid(principal, action, resource is Mandate::Tool) when { resource.destructive };
`;

function sources(policies: Record<string, string>, schemas: Record<string, string> = { 'billing.cedarschema': FRAGMENT }): PolicySources {
  return {
    policies: Object.entries(policies).map(([file, text]) => ({ file, text })),
    schemas: Object.entries(schemas).map(([file, text]) => ({ file, text })),
  };
}

function problemsOf(s: PolicySources): PolicyProblem[] {
  try {
    compilePolicySet(s);
  } catch (err) {
    assert.ok(err instanceof PolicySetError, String(err));
    assert.equal(err.code, 'ERR_POLICY_INVALID');
    assert.ok(isMandateError(err));
    assert.ok(err.problems.length > 0);
    return err.problems;
  }
  assert.fail('the set compiled');
}

/** Only the position and file of each problem, deduplicated. */
function where(problems: PolicyProblem[]): string[] {
  return [...new Set(problems.map((p) => `${p.file}:${p.line}:${p.column}${p.policyId ? ` ${p.policyId}` : ''}`))];
}

describe('compilePolicySet', () => {
  it('compiles policies with ids, effects, reasons, approval and positions', () => {
    const set = compilePolicySet(sources({ 'a.cedar': GOOD }));
    assert.deepEqual([...set.policies.keys()], ['refund-limit', 'big-refund', 'a.cedar:3']);
    const limit = set.policies.get('refund-limit');
    assert.equal(limit?.effect, 'permit');
    assert.equal(limit?.reason, 'small refunds');
    assert.equal(limit?.approval, false);
    assert.equal(limit?.file, 'a.cedar');
    assert.equal(limit?.line, 2);
    assert.match(limit?.text ?? '', /^@id\("refund-limit"\)/);
    assert.equal(set.policies.get('big-refund')?.approval, true);
    assert.equal(set.policies.get('big-refund')?.line, 7);
    const forbid = set.policies.get('a.cedar:3');
    assert.equal(forbid?.effect, 'forbid');
    assert.equal(forbid?.reason, undefined);
    assert.equal(forbid?.line, 12);
    assert.match(set.version, /^sha256:[0-9a-f]{64}$/);
  });

  it('knows every action, its groups, and the argument types of per-tool actions', () => {
    const set = compilePolicySet(sources({}));
    const refund = actionKey('Mandate::Tools::billing::Action', 'refund');
    const call = actionKey('Mandate::Action', 'tools/call');
    assert.ok(set.actions.get(refund)?.has(call));
    for (const a of ['tools/call', 'tools/list', 'resources/read', 'resources/list', 'prompts/get', 'prompts/list', 'http']) {
      assert.ok(set.actions.has(actionKey('Mandate::Action', a)), a);
      assert.ok(set.slice(actionKey('Mandate::Action', a)), a);
    }
    assert.ok(set.slice(refund));
    assert.equal(set.slice(actionKey('Mandate::Action', 'nope')), undefined);
    const args = set.argumentsType(refund) as { type: string; attributes: Record<string, unknown> };
    assert.equal(args.type, 'Record');
    assert.deepEqual(Object.keys(args.attributes).sort(), ['amount', 'currency']);
    assert.equal(set.argumentsType(call), undefined);
  });

  it('accepts an empty set', () => {
    const set = compilePolicySet({ policies: [], schemas: [] });
    assert.equal(set.policies.size, 0);
  });

  describe('refuses syntax errors at their line and column', () => {
    const cases: Array<{ name: string; text: string; at: string; message?: RegExp }> = [
      { name: 'missing comma', text: 'permit(principal, action, resource);\n\npermit(principal, action resource);\n', at: 'a.cedar:3:26', message: /unexpected token `resource`/ },
      { name: 'missing semicolon', text: '@id("x")\npermit(principal, action, resource)\n  when { true }\n@id("y") permit(principal, action, resource);', at: 'a.cedar:4:1' },
      { name: 'unknown effect', text: '\n\n   allow(principal, action, resource);', at: 'a.cedar:3:4' },
      { name: 'unterminated string', text: 'permit(principal, action, resource) when { resource.name == "x };', at: 'a.cedar:1:61' },
      { name: 'bad operator', text: 'permit(principal, action, resource)\nwhen { context.hour => 3 };', at: 'a.cedar:2:22' },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const problems = problemsOf(sources({ 'ok.cedar': '@id("fine") permit(principal, action, resource);', 'a.cedar': c.text }));
        assert.deepEqual(where(problems), [c.at], JSON.stringify(problems));
        if (c.message) assert.match(problems[0]?.message ?? '', c.message);
      });
    }

    it('reports errors of every file, not only the first', () => {
      const problems = problemsOf(sources({ 'a.cedar': 'permit(principal action, resource);', 'b.cedar': '\npermit(principal, action, resource) when {;' }));
      assert.deepEqual(problems.map((p) => p.file), ['a.cedar', 'b.cedar']);
      assert.equal(problems[1]?.line, 2);
    });

    it('formats the message as file:line:column', () => {
      try {
        compilePolicySet(sources({ 'a.cedar': 'permit(principal, action, resource);\n\npermit(principal, action resource);' }));
        assert.fail('compiled');
      } catch (err) {
        assert.match((err as Error).message, /^a\.cedar:3:26: unexpected token `resource`/);
      }
    });
  });

  describe('refuses validation errors, located in the right file', () => {
    const lead = '@id("fine") permit(principal, action, resource);\n\n';
    const cases: Array<{ name: string; text: string; at: string; message: RegExp }> = [
      { name: 'unknown context attribute', text: '@id("x")\npermit(principal, action, resource)\nwhen { context.nope };', at: 'b.cedar:5:8 x', message: /attribute `nope` .*not found/ },
      { name: 'unknown entity attribute', text: '@id("x") permit(principal, action, resource is Mandate::Tool)\n  when { resource.colour == "red" };', at: 'b.cedar:4:10 x', message: /colour/ },
      { name: 'wrong type', text: '@id("x") permit(principal, action, resource)\n  when { context.hour like "9*" };', at: 'b.cedar:4:10 x', message: /expected String but saw Long/ },
      { name: 'decimal compared with a Long', text: '@id("x") permit(principal, action == Mandate::Tools::billing::Action::"refund", resource)\n  when { context.arguments.amount < 100 };', at: 'b.cedar:4:10 x', message: /./ },
      { name: 'optional attribute without has', text: '@id("x") permit(principal, action, resource)\n  when { context.mandate.maxDepth > 1 };', at: 'b.cedar:4:10 x', message: /mandate/ },
      { name: 'tag without hasTag', text: '@id("x") permit(principal, action, resource)\n  when { principal.getTag("team") == "a" };', at: 'b.cedar:4:10 x', message: /tag/ },
      { name: 'unknown entity type', text: '@id("x") permit(principal is Mandate::Robot, action, resource);', at: 'b.cedar:3:30 x', message: /Robot/ },
      { name: 'unknown action', text: '@id("x")\npermit(principal, action == Mandate::Action::"tools/destroy", resource);', at: 'b.cedar:4:29 x', message: /tools\/destroy/ },
      { name: 'arguments of the generic action', text: '@id("x") permit(principal, action == Mandate::Action::"tools/call", resource)\n  when { context.arguments.amount == 1 };', at: 'b.cedar:4:10 x', message: /arguments/ },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const problems = problemsOf(sources({ 'a.cedar': GOOD, 'b.cedar': lead + c.text }));
        assert.deepEqual(where(problems), [c.at], JSON.stringify(problems));
        for (const p of problems) assert.match(p.message, c.message);
      });
    }

    it('locates an error inside a policy after comments and annotations', () => {
      const problems = problemsOf(sources({ 'a.cedar': '// header\n\n@id("x")\n@reason("why")\npermit(principal, action, resource)\n  // inner comment\n  when { context.hour like "9" };\n' }));
      assert.deepEqual(where(problems), ['a.cedar:7:10 x']);
    });

    it('locates the second of two identical policies at its own line', () => {
      const bad = 'permit(principal, action, resource) when { context.nope };\n';
      const problems = problemsOf(sources({ 'a.cedar': bad + bad }));
      assert.deepEqual(where(problems).sort(), ['a.cedar:1:44 a.cedar:1', 'a.cedar:2:44 a.cedar:2']);
    });
  });

  describe('refuses bad annotations and templates', () => {
    const cases: Array<{ name: string; files: Record<string, string>; at: string; message: RegExp }> = [
      { name: 'duplicate @id in one file', files: { 'a.cedar': '@id("x") permit(principal, action, resource);\n\n@id("x") forbid(principal, action, resource);' }, at: 'a.cedar:3:1', message: /@id "x" is already used by the policy at a\.cedar:1/ },
      { name: 'duplicate @id across files', files: { 'a.cedar': '\n@id("x") permit(principal, action, resource);', 'b.cedar': '\n\n@id("x") permit(principal, action, resource);' }, at: 'b.cedar:3:1', message: /already used by the policy at a\.cedar:2/ },
      { name: '@id clashing with a default id', files: { 'a.cedar': 'permit(principal, action, resource);', 'b.cedar': '@id("a.cedar:1") permit(principal, action, resource);' }, at: 'b.cedar:1:1', message: /already used/ },
      { name: '@id with spaces', files: { 'a.cedar': '@id("my policy") permit(principal, action, resource);' }, at: 'a.cedar:1:1', message: /@id "my policy" must be/ },
      { name: 'empty @id', files: { 'a.cedar': '@id("") permit(principal, action, resource);' }, at: 'a.cedar:1:1', message: /must be 1-128/ },
      { name: 'bad @approval value', files: { 'a.cedar': '@id("x")\n@approval("yes") permit(principal, action, resource);' }, at: 'a.cedar:1:1 x', message: /@approval must be "required"/ },
      { name: '@approval without value', files: { 'a.cedar': '@id("x") @approval permit(principal, action, resource);' }, at: 'a.cedar:1:1 x', message: /@approval must be "required"/ },
      { name: '@approval on a forbid', files: { 'a.cedar': '\n@id("x") @approval("required") forbid(principal, action, resource);' }, at: 'a.cedar:2:1 x', message: /@approval belongs on permit policies/ },
      { name: 'template', files: { 'a.cedar': '@id("fine") permit(principal, action, resource);\npermit(principal == ?principal, action, resource);' }, at: 'a.cedar:2:1', message: /templates .* are not supported/ },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const problems = problemsOf(sources(c.files));
        assert.deepEqual(where(problems), [c.at], JSON.stringify(problems));
        assert.match(problems[0]?.message ?? '', c.message);
      });
    }
  });

  describe('locates schema fragment errors in the fragment', () => {
    const cases: Array<{ name: string; text: string; at: string; message: RegExp }> = [
      { name: 'syntax error', text: 'namespace X {\n  entity A = { a: String }\n  entity B;\n}\n', at: 'x.cedarschema:3:3', message: /unexpected token/ },
      { name: 'unknown type', text: '// types\nnamespace X {\n  entity A = { a: Decimal };\n}\n', at: 'x.cedarschema:3:19', message: /Decimal/ },
      { name: 'unclosed namespace', text: 'namespace X {\n  entity A;\n', at: 'x.cedarschema:2:12', message: /unexpected end of input/ },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const problems = problemsOf(sources({ 'a.cedar': GOOD }, { 'billing.cedarschema': FRAGMENT, 'x.cedarschema': c.text }));
        assert.deepEqual(where(problems), [c.at], JSON.stringify(problems));
        assert.match(problems[0]?.message ?? '', c.message);
      });
    }

    it('a policy using an action whose fragment is missing is refused', () => {
      const problems = problemsOf(sources({ 'a.cedar': GOOD }, {}));
      assert.ok(problems.every((p) => p.file === 'a.cedar'));
    });
  });

  describe('version', () => {
    const base = () => sources({ 'a.cedar': GOOD, 'b.cedar': '@id("list") permit(principal, action == Mandate::Action::"tools/list", resource);' });

    it('is the same for the same files', () => {
      assert.equal(compilePolicySet(base()).version, compilePolicySet(base()).version);
    });

    const changes: Array<[string, (s: PolicySources) => void]> = [
      ['a policy changes', (s) => { (s.policies[1] as { text: string }).text += '\n// note'; }],
      ['a policy file is added', (s) => { s.policies.push({ file: 'c.cedar', text: '' }); }],
      ['a policy file is removed', (s) => { s.policies.pop(); }],
      ['a policy file is renamed', (s) => { (s.policies[1] as { file: string }).file = 'c.cedar'; }],
      ['a schema fragment changes', (s) => { (s.schemas[0] as { text: string }).text += '\n// note'; }],
    ];
    for (const [name, change] of changes) {
      it(`changes when ${name}`, () => {
        const s = base();
        change(s);
        assert.notEqual(compilePolicySet(s).version, compilePolicySet(base()).version);
      });
    }
  });
});

describe('loadPolicyDirectory', () => {
  it('reads .cedar and .cedarschema files in name order, and nothing else', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mandate-policy-set-'));
    writeFileSync(join(dir, 'b.cedar'), 'permit(principal, action, resource);');
    writeFileSync(join(dir, 'a.cedar'), '@id("a") permit(principal, action, resource);');
    writeFileSync(join(dir, 'billing.cedarschema'), FRAGMENT);
    writeFileSync(join(dir, 'README.md'), '# not a policy');
    writeFileSync(join(dir, 'old.cedar.bak'), 'nonsense');
    mkdirSync(join(dir, 'sub.cedar'));
    const loaded = loadPolicyDirectory(dir);
    assert.deepEqual(loaded.policies.map((p) => p.file), [relative(process.cwd(), join(dir, 'a.cedar')), relative(process.cwd(), join(dir, 'b.cedar'))]);
    assert.deepEqual(loaded.schemas.map((s) => s.text), [FRAGMENT]);
    const set = compilePolicySet(loaded);
    assert.deepEqual([...set.policies.keys()], ['a', `${relative(process.cwd(), join(dir, 'b.cedar'))}:1`]);
  });

  it('names problems by the file they are in', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mandate-policy-set-'));
    writeFileSync(join(dir, 'a.cedar'), '@id("a") permit(principal, action, resource);');
    writeFileSync(join(dir, 'b.cedar'), '\n@id("b") permit(principal, action, resource) when { context.nope };');
    const problems = problemsOf(loadPolicyDirectory(dir));
    assert.deepEqual(where(problems), [`${relative(process.cwd(), join(dir, 'b.cedar'))}:2:53 b`]);
  });

  it('changes version when a file changes on disk, and not when it is rewritten unchanged', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mandate-policy-set-'));
    writeFileSync(join(dir, 'a.cedar'), '@id("a") permit(principal, action, resource);');
    const v1 = compilePolicySet(loadPolicyDirectory(dir)).version;
    writeFileSync(join(dir, 'a.cedar'), '@id("a") permit(principal, action, resource);');
    assert.equal(compilePolicySet(loadPolicyDirectory(dir)).version, v1);
    writeFileSync(join(dir, 'a.cedar'), '@id("a") forbid(principal, action, resource);');
    assert.notEqual(compilePolicySet(loadPolicyDirectory(dir)).version, v1);
  });

  it('refuses a directory that cannot be read', () => {
    assert.throws(() => loadPolicyDirectory(join(tmpdir(), 'mandate-no-such-dir-' + process.pid)), (err: unknown) => isMandateError(err) && err.code === 'ERR_POLICY_INVALID');
  });
});
