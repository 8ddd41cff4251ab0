import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cliFor } from '../../../test/support/cli.ts';
import { startVaultApi, type VaultApi } from '../../server/routes/admin-vault.fixture.ts';

const VALUE = 'xoxb-cliValueFromStdin-0123456789';

let api: VaultApi;

/** The real `mandate` program against the vault API. */
const { run: mandate, ok } = cliFor(() => ({ url: api.url, adminToken: 'test-admin-token' }));

before(async () => {
  api = await startVaultApi();
});
after(() => api.close());

describe('mandate vault', () => {
  it('sets a tool server\'s secret from stdin, dropping one trailing newline, and prints no value', async () => {
    const out = JSON.parse(await ok(['vault', 'set', 'api_key', '--tool-server', 'tracker', '--json'], `${VALUE}\n`));
    assert.equal(out.server, 'tracker');
    assert.equal(out.name, 'api_key');
    assert.equal(await api.vault.get({ kind: 'server', server: 'tracker' }, 'api_key'), VALUE);
    assert.equal(JSON.stringify(out).includes(VALUE), false);
  });

  it('sets a directory user\'s and an external principal\'s secret', async () => {
    await ok(['vault', 'set', 'github_token', '--user', 'alice'], 'alice-gh-token');
    assert.equal(await api.vault.get({ kind: 'principal', issuer: 'http://127.0.0.1:8420', subject: api.aliceId }, 'github_token'), 'alice-gh-token');
    await ok(['vault', 'set', 'github_token', '--principal-issuer', 'https://login.example.com', '--principal-subject', '00u1ab'], 'sso-gh-token\r\n');
    assert.equal(await api.vault.get({ kind: 'principal', issuer: 'https://login.example.com', subject: '00u1ab' }, 'github_token'), 'sso-gh-token');
  });

  it('lists owners, names and fingerprints as a table or JSON, never values', async () => {
    const table = await ok(['vault', 'list']);
    const lines = table.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^OWNER\s+NAME\s+FINGERPRINT\s+UPDATED_AT$/);
    assert.equal(lines.length, 4, table);
    assert.match(table, new RegExp(`${api.aliceId} at http://127\\.0\\.0\\.1:8420\\s+github_token\\s+[0-9a-f]{8}`));
    assert.match(table, /server tracker\s+api_key\s+[0-9a-f]{8}/);
    const alice = JSON.parse(await ok(['vault', 'list', '--user', 'alice', '--json']));
    assert.deepEqual(alice.map((s: { name: string }) => s.name), ['github_token']);
    assert.equal(JSON.parse(await ok(['vault', 'list', '--kind', 'server', '--json'])).length, 1);
    assert.match(await ok(['vault', 'list', '--tool-server', 'tracker']), /api_key/);
    for (const text of [table, JSON.stringify(alice)]) {
      for (const value of [VALUE, 'alice-gh-token', 'sso-gh-token']) assert.equal(text.includes(value), false);
    }
  });

  it('deletes a secret; deleting it again fails with ERR_NOT_FOUND', async () => {
    await ok(['vault', 'delete', 'github_token', '--user', 'alice']);
    assert.equal(await api.vault.get({ kind: 'principal', issuer: 'http://127.0.0.1:8420', subject: api.aliceId }, 'github_token'), undefined);
    const again = await mandate(['vault', 'delete', 'github_token', '--user', 'alice']);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /has no secret github_token \(ERR_NOT_FOUND\)/);
    await ok(['vault', 'delete', 'github_token', '--principal-issuer', 'https://login.example.com', '--principal-subject', '00u1ab']);
  });

  it('takes the value from stdin only: not from argv, not empty, one line', async () => {
    const fromArgv = await mandate(['vault', 'set', 'other', VALUE, '--tool-server', 'tracker'], VALUE);
    assert.notEqual(fromArgv.status, 0, 'a value on the command line is refused');
    assert.match(fromArgv.stderr, /too many arguments/);
    for (const [input, message] of [['', /stdin was empty/], ['\n', /stdin was empty/], ['one\ntwo\n', /single line/]] as const) {
      const run = await mandate(['vault', 'set', 'other', '--tool-server', 'tracker'], input);
      assert.equal(run.status, 1);
      assert.match(run.stderr, message);
    }
    assert.equal(await api.vault.get({ kind: 'server', server: 'tracker' }, 'other'), undefined);
    assert.equal(api.ran.filter((a) => a === 'vault.secret.set').length, 3, 'refused values never reached the server');
  });

  it('insists on exactly one owner', async () => {
    const none = await mandate(['vault', 'set', 'k'], 'v');
    assert.equal(none.status, 1);
    assert.match(none.stderr, /name the owner/);
    const both = await mandate(['vault', 'set', 'k', '--tool-server', 'tracker', '--user', 'alice'], 'v');
    assert.notEqual(both.status, 0);
    assert.match(both.stderr, /cannot be used with/);
    const kindAndOwner = await mandate(['vault', 'list', '--kind', 'server', '--user', 'alice']);
    assert.equal(kindAndOwner.status, 1);
    assert.match(kindAndOwner.stderr, /--kind lists every owner/);
  });
});
