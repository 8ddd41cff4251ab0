import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isMandateError } from '../errors.ts';
import { compilePolicySet, loadPolicyDirectory } from './policy-set.ts';
import { loadPolicyTests, runPolicyTests } from './test-file.ts';

const POLICIES = `@id("read-only")
@reason("read-only tools are fine")
permit(principal, action in Mandate::Action::"tools/call", resource) when { resource.readOnly };

@id("no-destructive")
@reason("destructive tools are never allowed")
forbid(principal, action, resource is Mandate::Tool) when { resource.destructive };
`;

function fixture(tests: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-policy-tests-'));
  writeFileSync(join(dir, 'policies.cedar'), POLICIES);
  writeFileSync(join(dir, 'tests.yaml'), tests);
  return { dir, file: join(dir, 'tests.yaml') };
}

const REQUEST = `
      agent: spiffe://example.org/agent/bot
      principal: { issuer: https://sso.example, subject: alice, groups: [eng] }
      server: issues
      tool: list_issues
      annotations: { readOnlyHint: true }
      time: 2026-11-24T10:00:00Z`;

describe('policy test files', () => {
  it('runs every case and reports passes and a diff for each mismatch', () => {
    const { dir, file } = fixture(`policies: .
tests:
  - name: reading is allowed
    request:${REQUEST}
    expect: allow
    policies: [read-only]
  - name: deleting is denied
    request:${REQUEST.replace('list_issues', 'delete_issue').replace('readOnlyHint: true', 'destructiveHint: true')}
    expect: deny
    policies: [no-destructive]
  - name: a wrong expectation
    request:${REQUEST}
    expect: deny
    policies: [no-destructive]
`);
    const loaded = loadPolicyTests(file);
    assert.equal(loaded.policiesDir, dir);
    const results = runPolicyTests(compilePolicySet(loadPolicyDirectory(dir)), loaded.tests);
    assert.deepEqual(results.map((r) => r.passed), [true, true, false]);
    assert.deepEqual(results[2]?.diff, [
      '- decision: deny', '+ decision: allow',
      '- policies: [no-destructive]', '+ policies: [read-only]',
      '  reasons: read-only tools are fine',
    ]);
  });

  it('refuses malformed files, naming the case and the field', () => {
    const cases: Array<[string, RegExp]> = [
      ['tests: []\n', /needs a non-empty list "tests"/],
      ['tests:\n  - request: {}\n    expect: allow\n', /tests\[0\]\.request\.principal: must be a mapping/],
      [`tests:\n  - request:${REQUEST}\n    expect: maybe\n`, /tests\[0\]\.expect: must be one of allow, deny, approval-required/],
      [`tests:\n  - request:${REQUEST.replace('2026-11-24T10:00:00Z', 'yesterday')}\n    expect: allow\n`, /tests\[0\]\.request\.time: must be an ISO 8601 time/],
      [`tests:\n  - request:${REQUEST}\n      method: tools/delete\n    expect: allow\n`, /tests\[0\]\.request\.method: must be one of/],
      ['tests: [: bad yaml\n', /tests\.yaml/],
    ];
    for (const [text, message] of cases) {
      const { file } = fixture(text);
      assert.throws(() => loadPolicyTests(file), (err) => isMandateError(err, 'ERR_BAD_REQUEST') && message.test(err.message), text);
    }
  });
});
