import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMandateError, type ErrorCode } from '../../errors.ts';
import { MemoryEventSink } from '../../observability/events.ts';
import { openSqliteStore } from '../../store/sqlite/sqlite-store.ts';
import type { Store } from '../../store/store.ts';
import { Directory, type DirectoryOptions } from './directory.ts';

const ISSUER = 'https://mandate.example.org';
const PASSWORD = 'correct horse battery staple';
const OTHER = 'tr0ub4dor&3 is too short';
const T0 = new Date('2030-01-01T00:00:00Z');

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isMandateError(err), `expected MandateError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

const GENERIC = /^invalid username or password$/;

describe('Directory on a real SQLite store', () => {
  let dir: string;
  let store: Store;
  let events: MemoryEventSink;
  let clock: Date;
  let directory: Directory;
  /** Every password any test used, to check that no event ever carries one. */
  const passwordsUsed = new Set<string>([PASSWORD, OTHER]);

  function makeDirectory(over: Partial<DirectoryOptions> = {}): Directory {
    return new Directory({ store, issuer: ISSUER, maxFailures: 3, lockoutSeconds: 60, events, now: () => clock, ...over });
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mandate-directory-'));
    store = await openSqliteStore({ path: join(dir, 'mandate.db') });
    events = new MemoryEventSink();
    clock = T0;
    directory = makeDirectory();
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('createUser stores a user with a lower-cased username and a password hash', async () => {
    const user = await directory.createUser({ username: 'Alice', displayName: '  Alice Example ', password: PASSWORD });
    assert.equal(user.username, 'alice');
    assert.equal(user.displayName, 'Alice Example');
    assert.match(user.passwordHash, /^\$scrypt\$ln=15,r=8,p=1\$/);
    assert.ok(!user.passwordHash.includes(PASSWORD));
    assert.deepEqual([user.failedLogins, user.lockedUntil, user.disabled, user.createdAt.toISOString()], [0, null, false, T0.toISOString()]);
    assert.deepEqual(await directory.get(user.id), user);
    assert.deepEqual((await directory.list()).map((u) => u.id), [user.id]);
    assert.equal(await directory.get('no-such-id'), null);
    const plain = await directory.createUser({ username: 'bob', password: PASSWORD });
    assert.equal(plain.displayName, 'bob', 'the display name defaults to the username');
    assert.notEqual(plain.id, user.id);
  });

  test('a taken username is a conflict, whatever its case', async () => {
    await directory.createUser({ username: 'carol', password: PASSWORD });
    await rejectsWith(directory.createUser({ username: 'CAROL', password: PASSWORD }), 'ERR_CONFLICT', /username "carol" is taken/);
  });

  test('username rules', async () => {
    const accepted: Array<[string, string]> = [
      ['d', 'd'],
      ['Dave.Example', 'dave.example'],
      ['dave_x-1@corp.example', 'dave_x-1@corp.example'],
      ['e'.repeat(64), 'e'.repeat(64)],
    ];
    for (const [input, stored] of accepted) assert.equal((await directory.createUser({ username: input, password: PASSWORD })).username, stored);
    const refused: unknown[] = ['', 'e'.repeat(65), 'al ice', 'alice!', 'ålice', 'alice\n', 'ali/ce', 'ali:ce', '\u0130stanbul', 42, null, undefined];
    for (const username of refused) {
      await rejectsWith(directory.createUser({ username: username as string, password: PASSWORD }), 'ERR_BAD_REQUEST', /username must be 1 to 64 characters/);
    }
  });

  test('display name and password rules', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ username: 'erin', displayName: '   ', password: PASSWORD }, /display name must be 1 to 128/],
      [{ username: 'erin', displayName: 'x'.repeat(129), password: PASSWORD }, /display name must be 1 to 128/],
      [{ username: 'erin', displayName: 'Erin\u0007', password: PASSWORD }, /control characters/],
      [{ username: 'erin', displayName: 7, password: PASSWORD }, /display name must be a string/],
      [{ username: 'erin', password: 'short' }, /at least 12 characters/],
      [{ username: 'erin.example', password: 'Erin.Example' }, /must not be the username/],
      [{ username: 'erin', password: undefined }, /password must be a string/],
    ];
    for (const [input, pattern] of cases) {
      await rejectsWith(directory.createUser(input as never), 'ERR_BAD_REQUEST', pattern);
    }
    assert.equal((await directory.list()).filter((u) => u.username.startsWith('erin')).length, 0);
  });

  test('authenticate gives the principal of the directory user, whatever the username case', async () => {
    const user = await directory.createUser({ username: 'frank', displayName: 'Frank Example', password: PASSWORD });
    const before = events.events.length;
    const principal = await directory.authenticate('FRANK', PASSWORD, { sourceAddress: '127.0.0.1' });
    assert.deepEqual(principal, { issuer: ISSUER, subject: user.id, name: 'Frank Example', groups: [], authMethod: 'password' });
    assert.deepEqual(directory.principalOf(user), principal);
    assert.deepEqual(events.events.slice(before), [
      { type: 'principal.signin', outcome: 'success', authMethod: 'password', issuer: ISSUER, username: 'frank', subject: user.id, sourceAddress: '127.0.0.1' },
    ]);
  });

  test('unknown user, malformed username and wrong password get the same answer', async () => {
    const user = await directory.createUser({ username: 'grace', password: PASSWORD });
    const before = events.events.length;
    await rejectsWith(directory.authenticate('grace', OTHER), 'ERR_UNAUTHENTICATED', GENERIC);
    await rejectsWith(directory.authenticate('nobody', PASSWORD), 'ERR_UNAUTHENTICATED', GENERIC);
    await rejectsWith(directory.authenticate('not a username!', PASSWORD), 'ERR_UNAUTHENTICATED', GENERIC);
    await rejectsWith(directory.authenticate(undefined as unknown as string, undefined as unknown as string), 'ERR_UNAUTHENTICATED', GENERIC);
    await rejectsWith(directory.authenticate('grace', undefined as unknown as string), 'ERR_UNAUTHENTICATED', GENERIC);
    const emitted = events.events.slice(before);
    assert.deepEqual(emitted.map((e) => [e.outcome, e.error, e.reason, e.subject]), [
      ['failure', 'ERR_UNAUTHENTICATED', 'wrong password', user.id],
      ['failure', 'ERR_UNAUTHENTICATED', 'unknown username', undefined],
      ['failure', 'ERR_UNAUTHENTICATED', 'malformed username', undefined],
      ['failure', 'ERR_UNAUTHENTICATED', 'malformed username', undefined],
      ['failure', 'ERR_UNAUTHENTICATED', 'wrong password', user.id],
    ]);
    assert.equal((await directory.get(user.id))!.failedLogins, 2);
  });

  test('maxFailures wrong passwords lock the account until the lock time, then it signs in again', async () => {
    clock = T0;
    const user = await directory.createUser({ username: 'heidi', password: PASSWORD });
    const until = new Date(T0.getTime() + 60_000).toISOString();
    await rejectsWith(directory.authenticate('heidi', OTHER), 'ERR_UNAUTHENTICATED', GENERIC);
    await rejectsWith(directory.authenticate('heidi', OTHER), 'ERR_UNAUTHENTICATED', GENERIC);
    await rejectsWith(directory.authenticate('heidi', OTHER), 'ERR_UNAUTHENTICATED', new RegExp(`locked after too many failed sign-ins, until ${until}`));
    // While locked, even the right password is refused, and attempts do not extend the lock.
    clock = new Date(T0.getTime() + 59_000);
    await rejectsWith(directory.authenticate('heidi', PASSWORD), 'ERR_UNAUTHENTICATED', new RegExp(`until ${until}`));
    await rejectsWith(directory.authenticate('heidi', OTHER), 'ERR_UNAUTHENTICATED', new RegExp(`until ${until}`));
    assert.equal((await directory.get(user.id))!.lockedUntil!.toISOString(), until);
    clock = new Date(T0.getTime() + 60_000);
    assert.equal((await directory.authenticate('heidi', PASSWORD)).subject, user.id);
    const after = (await directory.get(user.id))!;
    assert.deepEqual([after.failedLogins, after.lockedUntil], [0, null]);
    clock = T0;
  });

  test('a successful sign-in resets the failure count', async () => {
    const user = await directory.createUser({ username: 'ivan', password: PASSWORD });
    for (let round = 0; round < 2; round++) {
      await rejectsWith(directory.authenticate('ivan', OTHER), 'ERR_UNAUTHENTICATED', GENERIC);
      await rejectsWith(directory.authenticate('ivan', OTHER), 'ERR_UNAUTHENTICATED', GENERIC);
      assert.equal((await directory.authenticate('ivan', PASSWORD)).subject, user.id);
    }
  });

  test('an unknown username is never reported as locked', async () => {
    for (let i = 0; i < 5; i++) await rejectsWith(directory.authenticate('judy', OTHER), 'ERR_UNAUTHENTICATED', GENERIC);
  });

  test('a disabled user is refused (said only with the right password) until enabled again', async () => {
    const user = await directory.createUser({ username: 'mallory', password: PASSWORD });
    await directory.setDisabled(user.id, true);
    assert.equal((await directory.get(user.id))!.disabled, true);
    await rejectsWith(directory.authenticate('mallory', PASSWORD), 'ERR_UNAUTHENTICATED', /^this account is disabled$/);
    await rejectsWith(directory.authenticate('mallory', OTHER), 'ERR_UNAUTHENTICATED', GENERIC);
    await directory.setDisabled(user.id, false);
    assert.equal((await directory.authenticate('mallory', PASSWORD)).subject, user.id);
    await rejectsWith(directory.setDisabled('no-such-id', true), 'ERR_NOT_FOUND', /no user with id "no-such-id"/);
  });

  test('setPassword replaces the password and lifts a lock', async () => {
    const user = await directory.createUser({ username: 'niaj.longname', password: PASSWORD });
    for (let i = 0; i < 3; i++) await directory.authenticate('niaj.longname', OTHER).catch(() => undefined);
    assert.notEqual((await directory.get(user.id))!.lockedUntil, null);
    const fresh = 'a whole new passphrase';
    passwordsUsed.add(fresh);
    await directory.setPassword(user.id, fresh);
    assert.equal((await directory.authenticate('niaj.longname', fresh)).subject, user.id);
    await rejectsWith(directory.authenticate('niaj.longname', PASSWORD), 'ERR_UNAUTHENTICATED', GENERIC);
    await rejectsWith(directory.setPassword(user.id, 'short'), 'ERR_BAD_REQUEST', /at least 12 characters/);
    await rejectsWith(directory.setPassword(user.id, 'NIAJ.LongName'), 'ERR_BAD_REQUEST', /must not be the username/);
    assert.equal((await directory.authenticate('niaj.longname', fresh)).subject, user.id, 'a refused new password changes nothing');
    await rejectsWith(directory.setPassword('no-such-id', fresh), 'ERR_NOT_FOUND', /no user with id/);
  });

  test('delete removes the user; they can no longer sign in', async () => {
    const user = await directory.createUser({ username: 'olivia', password: PASSWORD });
    await directory.delete(user.id);
    assert.equal(await directory.get(user.id), null);
    await rejectsWith(directory.authenticate('olivia', PASSWORD), 'ERR_UNAUTHENTICATED', GENERIC);
    await rejectsWith(directory.delete(user.id), 'ERR_NOT_FOUND', /no user with id/);
    // The username is free again.
    await directory.createUser({ username: 'olivia', password: PASSWORD });
  });

  test('no event carries a password or a password hash (runs last)', () => {
    assert.ok(events.events.length > 30);
    const text = JSON.stringify(events.events);
    for (const password of passwordsUsed) assert.ok(!text.includes(password), 'an event carries a password');
    assert.ok(!text.includes('$scrypt$'), 'an event carries a password hash');
  });

  test('unusable lockout settings are refused', () => {
    const cases: Array<[Partial<DirectoryOptions>, RegExp]> = [
      [{ maxFailures: 0 }, /max_failures must be a whole number of at least 1/],
      [{ maxFailures: 2.5 }, /max_failures/],
      [{ maxFailures: Number.NaN }, /max_failures/],
      [{ lockoutSeconds: 0 }, /lockout must be a positive duration/],
      [{ lockoutSeconds: -5 }, /lockout/],
      [{ lockoutSeconds: Number.POSITIVE_INFINITY }, /lockout/],
    ];
    for (const [over, pattern] of cases) {
      assert.throws(() => makeDirectory(over), (err) => isMandateError(err, 'ERR_CONFIG_INVALID') && pattern.test(err.message), pattern.source);
    }
  });
});
