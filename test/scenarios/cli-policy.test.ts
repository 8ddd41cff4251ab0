/**
 * `mandate policy validate|test|explain|can` run as the real program on the example policies and on
 * broken copies: exit codes, file:line:column problems, test diffs, explanations, partial evaluation.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const BIN = join(process.cwd(), 'bin/mandate.js');
const EXAMPLES = join(process.cwd(), 'config/policies');
const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });

function copyOfExamples(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-policy-cli-'));
  cpSync(EXAMPLES, dir, { recursive: true });
  return dir;
}

describe('mandate policy', () => {
  it('validates the example policies, and names file, line and column of each problem in a broken set', () => {
    const ok = run(['policy', 'validate', EXAMPLES, '--json']);
    assert.equal(ok.status, 0, ok.stderr);
    const summary = JSON.parse(ok.stdout);
    assert.equal(summary.valid, true);
    assert.match(summary.version, /^sha256:[0-9a-f]{64}$/);

    const dir = copyOfExamples();
    writeFileSync(join(dir, 'broken.cedar'), '@id("typo")\npermit(principal, action, resource)\nwhen { context.argumentz.amount < 5 };\n');
    const bad = run(['policy', 'validate', dir]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /broken\.cedar:3:\d+: policy typo: .*argumentz/);
    assert.match(bad.stderr, /ERR_POLICY_INVALID/);
  });

  it('runs policy tests: all pass on the examples; a wrong expectation fails with a diff and exit 1', () => {
    const ok = run(['policy', 'test', join(EXAMPLES, 'tests.yaml')]);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /4 passed, 0 failed/);

    const dir = copyOfExamples();
    writeFileSync(join(dir, 'wrong.yaml'), `policies: .
tests:
  - name: deleting is expected to pass (it must not)
    request:
      agent: spiffe://example.org/agent/triage-bot
      principal: { issuer: https://sso.example, subject: alice }
      server: issues
      tool: delete_issue
      arguments: { repository: acme/api, issue: 1 }
      time: 2026-11-24T10:00:00Z
    expect: allow
`);
    const failed = run(['policy', 'test', join(dir, 'wrong.yaml')]);
    assert.equal(failed.status, 1);
    assert.match(failed.stdout, /FAIL\s+deleting is expected to pass/);
    assert.match(failed.stdout, /- decision: allow\n\s+\+ decision: deny/);
    assert.match(failed.stdout, /0 passed, 1 failed/);
  });

  it('explains one decision with every determining policy, its reason and where it is', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mandate-policy-explain-'));
    writeFileSync(join(dir, 'request.yaml'), `agent: spiffe://example.org/agent/triage-bot
principal: { issuer: https://sso.example, subject: alice }
server: issues
tool: delete_issue
annotations: { destructiveHint: true }
arguments: { repository: acme/api, issue: 1 }
time: 2026-11-24T10:00:00Z
`);
    const res = run(['policy', 'explain', '--policies', EXAMPLES, join(dir, 'request.yaml'), '--json']);
    assert.equal(res.status, 0, res.stderr);
    const out = JSON.parse(res.stdout);
    assert.equal(out.decision, 'deny');
    const never = out.determining.find((d: { id: string }) => d.id === 'demo-never-delete');
    assert.equal(never.effect, 'forbid');
    assert.match(never.reason, /never deletes/);
    assert.match(never.at, /demo\.cedar:\d+$/);
  });

  it('answers what an agent can do for a person, with the open conditions', () => {
    const res = run(['policy', 'can', '--policies', EXAMPLES, '--agent', 'spiffe://example.org/agent/triage-bot', '--principal', 'https://sso.example#alice', '--json']);
    assert.equal(res.status, 0, res.stderr);
    const answers = new Map((JSON.parse(res.stdout) as Array<{ action: string; answer: string; conditions: Array<{ policy: string }> }>).map((a) => [a.action, a]));
    assert.equal(answers.get('Mandate::Tools::issues::Action::"delete_issue"')?.answer, 'denied');
    const comment = answers.get('Mandate::Tools::issues::Action::"add_comment"');
    assert.equal(comment?.answer, 'conditional');
    assert.ok(comment?.conditions.some((c) => c.policy === 'demo-comment'));
  });

  it('refuses bad invocations with a clear message', () => {
    const nobody = run(['policy', 'can', '--policies', EXAMPLES, '--agent', 'spiffe://example.org/agent/triage-bot']);
    assert.equal(nobody.status, 1);
    assert.match(nobody.stderr, /name the person/);
    const missing = run(['policy', 'validate', join(tmpdir(), 'no-such-policy-dir')]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /cannot read the policy directory/);
    const dir = mkdtempSync(join(tmpdir(), 'mandate-policy-bad-'));
    writeFileSync(join(dir, 'tests.yaml'), 'tests:\n  - request: {}\n    expect: allow\n');
    const bad = run(['policy', 'test', join(dir, 'tests.yaml'), '--policies', EXAMPLES]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /tests\[0\]\.request\.principal: must be a mapping/);
  });
});
