import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, it } from 'node:test';
import { MemoryEventSink } from '../observability/events.ts';
import type { DecisionRequest } from './decide.ts';
import { PolicyEngine } from './engine.ts';
import { PolicySetError } from './policy-set.ts';

const ALLOW_READ = '@id("read-only") @reason("read-only tools are fine")\npermit(principal, action in Mandate::Action::"tools/call", resource) when { resource.readOnly };\n';
const ALLOW_ALL = '@id("everything") @reason("anything goes")\npermit(principal, action, resource);\n';
const INVALID = '@id("broken")\npermit(principal, action, resource) when { context.nope };\n';

const REQUEST: DecisionRequest = {
  agent: { spiffeId: 'spiffe://example.org/agent/bot' },
  principal: { issuer: 'https://sso.example', subject: 'alice' },
  action: { kind: 'mcp', method: 'tools/call', server: 'issues', tool: { name: 'add_comment' } },
  scopes: [],
  chain: [],
  now: new Date('2026-11-23T10:00:00Z'),
  binding: 'none',
};

const engines: PolicyEngine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

function setup(text = ALLOW_READ): { dir: string; file: string; events: MemoryEventSink; engine: PolicyEngine } {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-policy-engine-'));
  const file = join(dir, 'policies.cedar');
  writeFileSync(file, text);
  const events = new MemoryEventSink();
  const engine = PolicyEngine.fromDirectory(dir, { events, debounceMs: 20 });
  engines.push(engine);
  return { dir, file, events, engine };
}

async function until(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('PolicyEngine', () => {
  it('refuses to start on an invalid directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mandate-policy-engine-'));
    writeFileSync(join(dir, 'p.cedar'), INVALID);
    assert.throws(() => PolicyEngine.fromDirectory(dir), (err: unknown) => err instanceof PolicySetError && err.problems[0]?.policyId === 'broken');
  });

  it('decides with the set in force', () => {
    const { engine } = setup();
    const d = engine.decide(REQUEST);
    assert.equal(d.decision, 'deny');
    assert.deepEqual(d.reasons, ['no policy permits this']);
    assert.equal(d.policySetVersion, engine.current.version);
  });

  it('a reload of unchanged files changes nothing and says so', () => {
    const { engine, events } = setup();
    const before = engine.current.version;
    assert.deepEqual(engine.reload(), { ok: true, version: before, changed: false });
    assert.equal(events.events.length, 0);
  });

  it('replaces the set when the new one is valid', () => {
    const { engine, file, events } = setup();
    const before = engine.current.version;
    writeFileSync(file, ALLOW_ALL);
    const result = engine.reload();
    assert.ok(result.ok);
    assert.equal(result.changed, true);
    assert.notEqual(result.version, before);
    assert.equal(engine.current.version, result.version);
    const d = engine.decide(REQUEST);
    assert.equal(d.decision, 'allow');
    assert.deepEqual(d.policies, ['everything']);
    assert.equal(d.policySetVersion, result.version);
    assert.deepEqual(events.events, [{ type: 'policy.reloaded', outcome: 'success', policySetVersion: result.version, previousVersion: before, policies: 1 }]);
  });

  it('keeps the previous set when the new one is invalid, and says why', () => {
    const { engine, file, events } = setup(ALLOW_ALL);
    const before = engine.current;
    writeFileSync(file, ALLOW_ALL + INVALID);
    const result = engine.reload();
    assert.equal(result.ok, false);
    assert.ok(!result.ok && result.error instanceof PolicySetError);
    assert.ok(!result.ok && result.error.problems.every((p) => p.file.endsWith('policies.cedar') && p.line === 4 && p.policyId === 'broken'));
    assert.equal(engine.current, before);
    assert.equal(engine.decide(REQUEST).decision, 'allow');
    assert.equal(events.events.length, 1);
    const event = events.events[0];
    assert.equal(event?.type, 'policy.reload_refused');
    assert.equal(event?.outcome, 'failure');
    assert.equal(event?.error, 'ERR_POLICY_INVALID');
    assert.equal(event?.policySetVersion, before.version);
    assert.match(String(event?.reason), /policies\.cedar:4:\d+: policy broken: attribute `nope`/);

    // fixed: the next reload takes it
    writeFileSync(file, ALLOW_READ);
    const fixed = engine.reload();
    assert.ok(fixed.ok && fixed.changed);
    assert.equal(engine.decide(REQUEST).decision, 'deny');
  });

  it('keeps the previous set when a schema fragment breaks', () => {
    const { engine, dir } = setup(ALLOW_ALL);
    const before = engine.current;
    writeFileSync(join(dir, 'broken.cedarschema'), 'namespace X { entity A = { a: Nope }; }');
    const result = engine.reload();
    assert.ok(!result.ok && result.error.problems[0]?.file.endsWith('broken.cedarschema'));
    assert.equal(engine.current, before);
  });

  it('keeps the previous set when the directory disappears', () => {
    const { engine, dir, events } = setup(ALLOW_ALL);
    const before = engine.current;
    rmSync(dir, { recursive: true });
    const result = engine.reload();
    assert.equal(result.ok, false);
    assert.equal(engine.current, before);
    assert.equal(events.events[0]?.type, 'policy.reload_refused');
  });

  it('watch() picks up a file change', async () => {
    const { engine, file, events } = setup();
    engine.watch();
    const before = engine.current.version;
    writeFileSync(file, ALLOW_ALL);
    await until(() => engine.current.version !== before, 'the new version');
    assert.equal(engine.decide(REQUEST).decision, 'allow');
    assert.equal(events.events.at(-1)?.type, 'policy.reloaded');
  });

  it('watch() picks up a new file and refuses a broken one', async () => {
    const { engine, dir, events } = setup();
    engine.watch();
    const before = engine.current.version;
    writeFileSync(join(dir, 'more.cedar'), ALLOW_ALL);
    await until(() => engine.current.version !== before, 'the new version');
    const good = engine.current.version;
    writeFileSync(join(dir, 'zz-broken.cedar'), INVALID);
    await until(() => events.events.some((e) => e.type === 'policy.reload_refused'), 'the refusal');
    assert.equal(engine.current.version, good);
    assert.equal(engine.decide(REQUEST).decision, 'allow');
  });

  it('close() stops watching', async () => {
    const { engine, file } = setup();
    engine.watch();
    engine.close();
    const before = engine.current.version;
    writeFileSync(file, ALLOW_ALL);
    await sleep(300);
    assert.equal(engine.current.version, before);
  });

  it('decisions keep working during reloads', async () => {
    const { engine, file } = setup(ALLOW_READ);
    engine.watch();
    const denyVersion = engine.current.version;
    let allowVersion: string | undefined;
    const seen = new Set<string>();
    let decisions = 0;
    const texts = [ALLOW_ALL, ALLOW_ALL + INVALID, ALLOW_READ, INVALID, ALLOW_ALL];
    for (const text of texts) {
      writeFileSync(file, text);
      const end = Date.now() + 120;
      while (Date.now() < end) {
        const d = engine.decide(REQUEST);
        decisions++;
        seen.add(d.policySetVersion);
        assert.equal(d.errors.length, 0);
        if (d.policySetVersion === denyVersion) assert.equal(d.decision, 'deny');
        else {
          allowVersion ??= d.policySetVersion;
          assert.equal(d.policySetVersion, allowVersion, 'only the two valid sets are ever used');
          assert.equal(d.decision, 'allow');
        }
        await sleep(5);
      }
    }
    await until(() => engine.current.version !== denyVersion, 'the last valid set');
    const last = engine.decide(REQUEST);
    assert.equal(last.decision, 'allow');
    if (allowVersion !== undefined) assert.equal(last.policySetVersion, allowVersion);
    seen.add(last.policySetVersion);
    assert.ok(decisions > 20);
    assert.ok(seen.has(denyVersion) && seen.size === 2, `saw ${seen.size} versions`);
  });
});
