/**
 * `mandate up` with `policy.dir`: the set is validated at start (an invalid one stops the start),
 * reloaded when a file changes (an invalid change is refused, the set in force stays), reloaded on
 * demand, and asked for decisions through the admin API.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isMandateError } from '../../src/errors.ts';
import { ADD_COMMENT_DECISION } from '../support/decisions.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const EXAMPLES = join(process.cwd(), 'config/policies');

function policyDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-policy-server-'));
  cpSync(EXAMPLES, dir, { recursive: true });
  return dir;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('policy engine in the server', () => {
  let m: TestMandate;
  let dir: string;
  before(async () => {
    dir = policyDir();
    m = await startTestMandate({ yaml: `trust_domain: example.org\npolicy:\n  dir: ${dir}\n` });
  });
  after(() => m.close());

  const version = async () => (await m.admin('GET', '/admin/v1/policy')).body.policy_set_version as string;

  it('decides through the admin API, naming the determining policies and reasons', async () => {
    const allow = await m.admin('POST', '/admin/v1/policy/decide', ADD_COMMENT_DECISION);
    assert.equal(allow.status, 200, JSON.stringify(allow.body));
    assert.equal(allow.body.decision, 'allow');
    assert.deepEqual(allow.body.determining.map((d: { id: string }) => d.id), ['demo-comment']);
    assert.match(allow.body.policy_set_version, /^sha256:/);
    const deny = await m.admin('POST', '/admin/v1/policy/decide', { ...ADD_COMMENT_DECISION, tool: 'delete_issue', annotations: {}, arguments: { repository: 'acme/api', issue: 7 } });
    assert.equal(deny.body.decision, 'deny');
    assert.ok(deny.body.determining.some((d: { id: string }) => d.id === 'demo-never-delete'));
    const bad = await m.admin('POST', '/admin/v1/policy/decide', { ...ADD_COMMENT_DECISION, principal: 'alice' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /request\.principal: must be a mapping/);
  });

  it('reloads on a file change, refuses an invalid change and keeps the set in force', async () => {
    const first = await version();
    writeFileSync(join(dir, 'zz-broken.cedar'), '@id("broken")\npermit(principal, action, resource) when { context.nope };\n');
    await until('the refused reload', async () => (m.events.events.some((e) => e.type === 'policy.reload_refused') ? true : undefined));
    assert.equal(await version(), first, 'the set in force stays');
    const refused = m.events.events.find((e) => e.type === 'policy.reload_refused');
    assert.match(String(refused?.reason), /zz-broken\.cedar:2:\d+: policy broken: /);
    assert.equal((await m.admin('POST', '/admin/v1/policy/decide', ADD_COMMENT_DECISION)).body.decision, 'allow', 'decisions go on');

    const manual = await m.admin('POST', '/admin/v1/policy/reload');
    assert.equal(manual.status, 400);
    assert.equal(manual.body.error, 'ERR_POLICY_INVALID');

    writeFileSync(join(dir, 'zz-broken.cedar'), '@id("no-comments")\n@reason("comments are paused")\nforbid(principal, action == Mandate::Tools::issues::Action::"add_comment", resource);\n');
    const next = await until('the new set', async () => {
      const v = await version();
      return v !== first ? v : undefined;
    });
    assert.notEqual(next, first);
    const paused = await m.admin('POST', '/admin/v1/policy/decide', ADD_COMMENT_DECISION);
    assert.equal(paused.body.decision, 'deny');
    assert.deepEqual(paused.body.reasons, ['comments are paused']);
    rmSync(join(dir, 'zz-broken.cedar'));
    const back = await m.admin('POST', '/admin/v1/policy/reload');
    assert.equal(back.status, 200);
    assert.equal(back.body.policy_set_version, first, 'the same files give the same version');
  });
});

describe('policy engine at start', () => {
  it('refuses to start on an invalid set, naming file, line and column', async () => {
    const dir = policyDir();
    writeFileSync(join(dir, 'broken.cedar'), 'permit(principal, action, resource) when { 1 + "x" };\n');
    await assert.rejects(startTestMandate({ yaml: `trust_domain: example.org\npolicy:\n  dir: ${dir}\n` }), (err) => isMandateError(err, 'ERR_POLICY_INVALID') && /broken\.cedar:1:\d+/.test(err.message));
  });

  it('has no policy engine without policy.dir', async () => {
    const m = await startTestMandate();
    try {
      const res = await m.admin('GET', '/admin/v1/policy');
      assert.equal(res.status, 404);
      assert.match(res.body.message, /set policy\.dir/);
    } finally {
      await m.close();
    }
  });
});
