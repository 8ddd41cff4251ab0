/**
 * Scenario: the vault in a running Mandate. An admin sets, lists and deletes tool servers' and
 * principals' secrets through the admin API and the `mandate vault` CLI (value on stdin); the values
 * reach the vault but never a reply, the log, the event stream or the audit log, which record owner
 * and name only. The admin API refuses callers without the admin token.
 *
 * Each case is skipped, visibly, while `mandate up` does not build a vault (RunningMandate.vault).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { Vault } from '../../src/gateway/vault.ts';
import { cliFor } from '../support/cli.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const SERVER_VALUE = 'tracker-api-key-0123456789abcdef';
const ALICE_VALUE = 'ghp_aliceScenarioValue0123456789';
const CLI_VALUE = 'cli-piped-secret-value-fedcba9876';
const NOT_WIRED = 'mandate up builds no vault yet (RunningMandate.vault is missing)';

describe('the vault in a running Mandate', () => {
  let m: TestMandate;
  let vault: Vault | undefined;
  let aliceId: string;
  const { ok } = cliFor(() => m);

  /** The vault, or skips the case while there is none. */
  const wired = (t: TestContext): Vault | undefined => {
    if (!vault) t.skip(NOT_WIRED);
    return vault;
  };

  before(async () => {
    m = await startTestMandate();
    vault = (m as TestMandate & { vault?: Vault }).vault;
    const user = await m.admin('POST', '/admin/v1/users', { username: 'alice', display_name: 'Alice', password: 'correct horse battery staple 7' });
    aliceId = user.body.id;
  });
  after(() => m.close());

  it('sets, lists and deletes secrets through the admin API without ever answering a value', async (t) => {
    const v = wired(t);
    if (!v) return;
    const set = await m.admin('PUT', '/admin/v1/vault/servers/tracker/secrets/api_key', { value: SERVER_VALUE });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const alice = await m.admin('PUT', '/admin/v1/vault/principals/secrets/github_token', { username: 'alice', value: ALICE_VALUE });
    assert.equal(alice.status, 200, JSON.stringify(alice.body));
    assert.equal(await v.get({ kind: 'server', server: 'tracker' }, 'api_key'), SERVER_VALUE);
    assert.equal(await v.get({ kind: 'principal', issuer: m.issuer, subject: aliceId }, 'github_token'), ALICE_VALUE);
    const all = await m.admin('GET', '/admin/v1/vault/secrets');
    assert.deepEqual(all.body.secrets.map((s: { name: string }) => s.name), ['github_token', 'api_key']);
    for (const reply of [set, alice, all]) {
      const text = JSON.stringify(reply.body);
      assert.equal(text.includes(SERVER_VALUE) || text.includes(ALICE_VALUE), false);
    }
    assert.equal((await m.admin('DELETE', '/admin/v1/vault/principals/secrets/github_token?username=alice')).status, 200);
    assert.equal(await v.get({ kind: 'principal', issuer: m.issuer, subject: aliceId }, 'github_token'), undefined);
  });

  it('refuses the admin API without the admin token', async (t) => {
    if (!wired(t)) return;
    const res = await m.admin('PUT', '/admin/v1/vault/servers/tracker/secrets/api_key', { value: 'intruder-value' }, 'not-the-token');
    assert.equal(res.status, 401);
    assert.equal(await vault?.get({ kind: 'server', server: 'tracker' }, 'api_key'), SERVER_VALUE);
  });

  it('sets and lists through `mandate vault` with the value on stdin', async (t) => {
    const v = wired(t);
    if (!v) return;
    await ok(['vault', 'set', 'deploy_key', '--tool-server', 'tracker'], `${CLI_VALUE}\n`);
    assert.equal(await v.get({ kind: 'server', server: 'tracker' }, 'deploy_key'), CLI_VALUE);
    const table = await ok(['vault', 'list', '--tool-server', 'tracker']);
    assert.match(table, /server tracker\s+api_key/);
    assert.match(table, /server tracker\s+deploy_key/);
    assert.equal(table.includes(CLI_VALUE), false);
  });

  it('records owner and name in events and the audit log, and no value anywhere', async (t) => {
    if (!wired(t)) return;
    const types = m.events.events.map((e) => e.type);
    for (const type of ['vault.secret.set', 'vault.secret.deleted', 'admin.vault.secret.set', 'admin.vault.secret.delete']) {
      assert.ok(types.includes(type), `event ${type} among ${types.join(', ')}`);
    }
    const deleted = m.events.events.find((e) => e.type === 'vault.secret.deleted');
    assert.deepEqual(deleted?.principal, { issuer: m.issuer, subject: aliceId });
    assert.equal(deleted?.name, 'github_token');
    const size = await m.store.auditSize();
    const audit = (await m.store.getAuditRecords(0, size)).map((r) => r.event).join('\n');
    assert.match(audit, /vault\.secret\.set/);
    const places = { log: m.logs(), events: JSON.stringify(m.events.events), audit };
    for (const [where, text] of Object.entries(places)) {
      for (const value of [SERVER_VALUE, ALICE_VALUE, CLI_VALUE, 'intruder-value']) {
        assert.equal(text.includes(value), false, `a secret value is in the ${where}`);
      }
    }
  });
});
