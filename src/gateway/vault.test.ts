import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { ToolServerConfig, UpstreamCredentialConfig } from '../config/types.ts';
import { isMandateError } from '../errors.ts';
import { KeyEncryptionKey } from '../identity/keys/kek.ts';
import { logEventSink, MemoryEventSink, teeEventSink } from '../observability/events.ts';
import { createLogger } from '../observability/logger.ts';
import { openSqliteStore } from '../store/sqlite/sqlite-store.ts';
import type { Store } from '../store/store.ts';
import { MAX_SECRET_BYTES, principalSecretNames, Vault, type VaultOwner } from './vault.ts';

const ISSUER = 'https://mandate.example.org';
const ALICE: VaultOwner = { kind: 'principal', issuer: ISSUER, subject: 'alice-id' };
const BOB: VaultOwner = { kind: 'principal', issuer: ISSUER, subject: 'bob-id' };
const TRACKER: VaultOwner = { kind: 'server', server: 'tracker' };
const ADMIN = 'admin:tok_1';
/** Values the tests look for wherever they must not be. */
const ALICE_VALUE = 'ghp_aliceSecretValue0123456789abcdef';
const BOB_VALUE = 'ghp_bobSecretValue9876543210fedcba';

let dir: string;
let dbPath: string;
let store: Store;
let kek: KeyEncryptionKey;
let vault: Vault;
const events = new MemoryEventSink();
let logText = '';

function badRequest(err: unknown): boolean {
  assert.ok(isMandateError(err, 'ERR_BAD_REQUEST'), `expected ERR_BAD_REQUEST, got ${String(err)}`);
  return true;
}

function server(name: string, credential: UpstreamCredentialConfig): Pick<ToolServerConfig, 'name' | 'credential'> {
  return { name, credential };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mandate-vault-'));
  dbPath = join(dir, 'mandate.db');
  store = await openSqliteStore({ path: dbPath });
  kek = KeyEncryptionKey.generate();
  const destination = new Writable({ write(chunk, _enc, done) { logText += chunk.toString(); done(); } });
  vault = new Vault({ store, kek, events: teeEventSink(events, logEventSink(createLogger({ level: 'debug', destination }))) });
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Vault', () => {
  it('sets and gets a principal\'s and a server\'s secret; an unset one is undefined', async () => {
    const info = await vault.set(ALICE, 'github_token', ALICE_VALUE, ADMIN);
    assert.deepEqual(info.owner, ALICE);
    assert.equal(info.name, 'github_token');
    assert.match(info.fingerprint, /^[0-9a-f]{8}$/);
    await vault.set(TRACKER, 'api_key', 'tracker-key-1', ADMIN);
    assert.equal(await vault.get(ALICE, 'github_token'), ALICE_VALUE);
    assert.equal(await vault.get(TRACKER, 'api_key'), 'tracker-key-1');
    assert.equal(await vault.get(BOB, 'github_token'), undefined);
    assert.equal(await vault.get(ALICE, 'other'), undefined);
  });

  it('stores the value sealed, never in clear', async () => {
    const row = await store.getVaultSecret(ALICE, 'github_token');
    assert.ok(row);
    assert.match(row.valueEnc, /^v1\./);
    assert.equal(row.valueEnc.includes(ALICE_VALUE), false);
    const db = [dbPath, `${dbPath}-wal`].filter((f) => existsSync(f)).map((f) => readFileSync(f).toString('latin1')).join('');
    assert.equal(db.includes(ALICE_VALUE), false, 'the database file does not hold the value');
  });

  it('lists names, owners, times and fingerprints, never values', async () => {
    const all = await vault.list();
    assert.deepEqual(all.map((s) => [s.owner.kind, s.name]), [['principal', 'github_token'], ['server', 'api_key']]);
    assert.deepEqual((await vault.list(ALICE)).map((s) => s.name), ['github_token']);
    assert.deepEqual((await vault.list('server')).map((s) => s.name), ['api_key']);
    const text = JSON.stringify(all);
    assert.equal(text.includes(ALICE_VALUE) || text.includes('tracker-key-1'), false);
    assert.equal(JSON.stringify(vault), '"[Vault]"');
  });

  it('fingerprints by value under a key of this KEK: same value alike, another value or KEK different', async () => {
    assert.equal(vault.fingerprint(ALICE_VALUE), (await vault.list(ALICE))[0]?.fingerprint);
    assert.notEqual(vault.fingerprint(ALICE_VALUE), vault.fingerprint(BOB_VALUE));
    const other = new Vault({ store, kek: KeyEncryptionKey.generate(), events: new MemoryEventSink() });
    assert.notEqual(other.fingerprint(ALICE_VALUE), vault.fingerprint(ALICE_VALUE));
  });

  it('replaces a value: new fingerprint and updatedAt, same createdAt', async () => {
    let t = Date.UTC(2026, 5, 1);
    const clocked = new Vault({ store, kek, events: new MemoryEventSink(), now: () => new Date(t) });
    const first = await clocked.set(TRACKER, 'rotating', 'value-one', ADMIN);
    t += 60_000;
    const second = await clocked.set(TRACKER, 'rotating', 'value-two', ADMIN);
    assert.equal(second.createdAt.getTime(), first.createdAt.getTime());
    assert.equal(second.updatedAt.getTime(), t);
    assert.notEqual(second.fingerprint, first.fingerprint);
    assert.equal(await vault.get(TRACKER, 'rotating'), 'value-two');
  });

  it('binds a sealed value to its owner and name: swapped or moved rows do not open', async () => {
    await vault.set(BOB, 'github_token', BOB_VALUE, ADMIN);
    const db = new Database(dbPath);
    try {
      const sealed = (subject: string) =>
        (db.prepare("SELECT value_enc FROM vault_secrets WHERE owner = ? AND name = 'github_token'").pluck().get(subject) as string);
      const aliceSealed = sealed('alice-id');
      const bobSealed = sealed('bob-id');
      const put = db.prepare("UPDATE vault_secrets SET value_enc = ? WHERE owner = ? AND name = 'github_token'");
      put.run(aliceSealed, 'bob-id');
      put.run(bobSealed, 'alice-id');
      db.prepare("INSERT INTO vault_secrets SELECT owner_kind, owner_issuer, owner, 'gitlab_token', value_enc, fingerprint, created_at, updated_at FROM vault_secrets WHERE owner = 'bob-id' AND name = 'github_token'").run();
    } finally {
      db.close();
    }
    const unopenable = (err: unknown) => {
      assert.ok(isMandateError(err, 'ERR_KEK_INVALID'), String(err));
      assert.match(err.message, /cannot be opened/);
      assert.equal(err.message.includes(ALICE_VALUE) || err.message.includes(BOB_VALUE), false);
      return true;
    };
    await assert.rejects(vault.get(BOB, 'github_token'), unopenable, 'alice\'s sealed value does not open as bob\'s');
    await assert.rejects(vault.get(ALICE, 'github_token'), unopenable);
    await assert.rejects(vault.get(BOB, 'gitlab_token'), unopenable, 'nor under another name');
    // Put right again for the cases below.
    await vault.set(ALICE, 'github_token', ALICE_VALUE, ADMIN);
    await vault.set(BOB, 'github_token', BOB_VALUE, ADMIN);
    await vault.delete(BOB, 'gitlab_token', ADMIN);
  });

  it('does not open under another KEK', async () => {
    const other = new Vault({ store, kek: KeyEncryptionKey.generate(), events: new MemoryEventSink() });
    await assert.rejects(other.get(ALICE, 'github_token'), (err) => isMandateError(err, 'ERR_KEK_INVALID'));
  });

  it('takes a value of up to 16 KiB of printable ASCII, one line, without edge spaces', async () => {
    const longest = 'k'.repeat(MAX_SECRET_BYTES);
    await vault.set(TRACKER, 'long', longest, ADMIN);
    assert.equal(await vault.get(TRACKER, 'long'), longest);
    await vault.set(TRACKER, 'inner', 'Basic dXNlcjpwYXNz with ~!@#$%^&*() inside', ADMIN);
    const refused: Array<[string, RegExp]> = [
      ['', /empty/],
      ['k'.repeat(MAX_SECRET_BYTES + 1), /16385 bytes/],
      ['line\r\nX-Injected: 1', /line break/],
      ['line\nbreak', /line break/],
      ['tab\there', /printable ASCII/],
      ['nul\u0000', /printable ASCII/],
      ['caf\u00e9', /printable ASCII/],
      [' leading', /space/],
      ['trailing ', /space/],
    ];
    for (const [value, message] of refused) {
      await assert.rejects(vault.set(TRACKER, 'bad', value, ADMIN), (err) => {
        badRequest(err);
        assert.match((err as Error).message, message);
        if (value.length > 3) assert.equal((err as Error).message.includes(value), false, 'the message does not quote the value');
        return true;
      });
    }
    assert.equal(await vault.get(TRACKER, 'bad'), undefined);
  });

  it('refuses malformed names and owners', async () => {
    for (const name of ['', '.hidden', 'a/b', 'a b', 'x'.repeat(129), 'ünï']) {
      await assert.rejects(vault.set(TRACKER, name, 'v', ADMIN), badRequest, name);
    }
    await assert.rejects(vault.set({ kind: 'server', server: '1tracker' }, 'k', 'v', ADMIN), badRequest);
    await assert.rejects(vault.set({ kind: 'server', server: '' }, 'k', 'v', ADMIN), badRequest);
    await assert.rejects(vault.set({ kind: 'principal', issuer: ISSUER, subject: '' }, 'k', 'v', ADMIN), badRequest);
    await assert.rejects(vault.set({ kind: 'principal', issuer: 'x\ny', subject: 's' }, 'k', 'v', ADMIN), badRequest);
    await assert.rejects(vault.get({ kind: 'server', server: 'a b' }, 'k'), badRequest);
  });

  it('deletes a secret; deleting an unknown one is ERR_NOT_FOUND', async () => {
    await vault.set(TRACKER, 'doomed', 'short-lived', ADMIN);
    await vault.delete(TRACKER, 'doomed', ADMIN);
    assert.equal(await vault.get(TRACKER, 'doomed'), undefined);
    await assert.rejects(vault.delete(TRACKER, 'doomed', ADMIN), (err) => isMandateError(err, 'ERR_NOT_FOUND') && /tool server tracker has no secret doomed/.test(err.message));
  });

  it('records set and delete with owner and name, never the value, in events and logs', async () => {
    events.events.length = 0;
    await vault.set(ALICE, 'jira_token', 'jira-secret-value-42', 'principal:alice-id');
    await vault.delete(ALICE, 'jira_token', ADMIN);
    assert.deepEqual(events.events, [
      { type: 'vault.secret.set', outcome: 'success', actor: 'principal:alice-id', ownerKind: 'principal', principal: { issuer: ISSUER, subject: 'alice-id' }, name: 'jira_token' },
      { type: 'vault.secret.deleted', outcome: 'success', actor: ADMIN, ownerKind: 'principal', principal: { issuer: ISSUER, subject: 'alice-id' }, name: 'jira_token' },
    ]);
    await vault.set(TRACKER, 'api_key', 'tracker-key-2', ADMIN);
    assert.deepEqual(events.events.at(-1), { type: 'vault.secret.set', outcome: 'success', actor: ADMIN, ownerKind: 'server', server: 'tracker', name: 'api_key' });
    assert.ok(logText.includes('vault.secret.set'), 'the events reach the log');
    for (const value of [ALICE_VALUE, BOB_VALUE, 'jira-secret-value-42', 'tracker-key-2']) {
      assert.equal(logText.includes(value), false, 'no value in the log');
    }
  });
});

describe('Vault.forUpstream and principalSecretNames', () => {
  const none = server('wiki', { type: 'none' });
  const perServer = server('tracker', { type: 'secret', secret: 'api_key', owner: 'server', header: 'x-api-key', prefix: '' });
  const perPrincipal = server('github', { type: 'secret', secret: 'github_token', owner: 'principal', header: 'authorization', prefix: 'Bearer ' });
  const alsoPrincipal = server('gists', { type: 'secret', secret: 'github_token', owner: 'principal', header: 'authorization', prefix: 'token ' });
  const principal = { issuer: ISSUER, subject: 'alice-id' };

  it('reads the server\'s or the calling principal\'s secret, as configured', async () => {
    assert.equal(await vault.forUpstream(perServer, principal), 'tracker-key-2');
    assert.equal(await vault.forUpstream(perPrincipal, principal), ALICE_VALUE);
    assert.equal(await vault.forUpstream(perPrincipal, { issuer: ISSUER, subject: 'bob-id' }), BOB_VALUE);
    assert.equal(await vault.forUpstream(perPrincipal, { issuer: ISSUER, subject: 'carol-id' }), undefined);
    assert.equal(await vault.forUpstream(none, principal), undefined);
  });

  it('lists the secret names principals keep, with the servers using each', () => {
    assert.deepEqual(principalSecretNames([none, perServer, perPrincipal, alsoPrincipal]), [{ name: 'github_token', servers: ['github', 'gists'] }]);
    assert.deepEqual(principalSecretNames([none, perServer]), []);
  });
});
