import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isMandateError } from '../../../errors.ts';
import { openSqliteStore } from '../../../store/sqlite/sqlite-store.ts';
import type { Store } from '../../../store/store.ts';
import { createJoinToken, createJoinTokenAttestor } from './join-token.ts';

const NOW = new Date('2030-01-01T00:00:00Z');

describe('join token attestation', () => {
  let dir: string;
  let dbPath: string;
  let store: Store;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mandate-join-token-'));
    dbPath = join(dir, 'mandate.db');
    store = await openSqliteStore({ path: dbPath });
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function newEntry(): Promise<string> {
    const id = randomUUID();
    await store.createEntry({
      id,
      spiffeId: `spiffe://example.org/agent/${id}`,
      selectors: [],
      x509SvidTtl: 3600,
      jwtSvidTtl: 300,
      metadata: {},
      createdAt: NOW,
    });
    return id;
  }

  test('a token is accepted once and names its entry', async () => {
    const entryId = await newEntry();
    const { token, id, expiresAt } = await createJoinToken(store, { entryId, ttlSeconds: 600, now: NOW });
    assert.match(token, /^mjt_[0-9a-f-]{36}\.[A-Za-z0-9_-]{43}$/);
    assert.ok(token.startsWith(`mjt_${id}.`));
    assert.equal(expiresAt.getTime(), NOW.getTime() + 600_000);

    const attestor = createJoinTokenAttestor(store);
    const result = await attestor.attest({ type: 'join_token', token }, new Date(NOW.getTime() + 1000));
    assert.deepEqual(result, {
      attestor: 'join_token',
      selectors: [`join_token:${id}`],
      entryIds: [entryId],
      subject: `join_token:${id}`,
    });
    await assert.rejects(
      attestor.attest({ type: 'join_token', token }, new Date(NOW.getTime() + 2000)),
      (err) => isMandateError(err, 'ERR_JOIN_TOKEN_USED') && err.message.includes(id) && !err.message.includes(token),
    );
  });

  test('only the SHA-256 of the token reaches the database', async () => {
    const entryId = await newEntry();
    const { token } = await createJoinToken(store, { entryId, ttlSeconds: 600, now: NOW });
    const secret = token.split('.')[1]!;
    const files = await Promise.all(['', '-wal'].map((suffix) => readFile(dbPath + suffix).catch(() => Buffer.alloc(0))));
    const bytes = Buffer.concat(files);
    assert.equal(bytes.includes(secret), false, 'token secret found in the database files');
    assert.equal(bytes.includes(createHash('sha256').update(token).digest('hex')), true, 'token hash not found');
  });

  test('of 10 concurrent attestations with one token exactly one succeeds', async () => {
    const entryId = await newEntry();
    const { token } = await createJoinToken(store, { entryId, ttlSeconds: 600, now: NOW });
    const attestor = createJoinTokenAttestor(store);
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, () => attestor.attest({ type: 'join_token', token }, NOW)),
    );
    assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1);
    for (const o of outcomes) {
      if (o.status === 'rejected') assert.ok(isMandateError(o.reason, 'ERR_JOIN_TOKEN_USED'), String(o.reason));
    }
  });

  test('an expired token is refused, and stays refused', async () => {
    const entryId = await newEntry();
    const { token, expiresAt } = await createJoinToken(store, { entryId, ttlSeconds: 60, now: NOW });
    const attestor = createJoinTokenAttestor(store);
    await assert.rejects(attestor.attest({ type: 'join_token', token }, expiresAt), (err) =>
      isMandateError(err, 'ERR_JOIN_TOKEN_EXPIRED'),
    );
    // Refusal burnt it: a later attempt (even with a clock set back) cannot use it.
    await assert.rejects(attestor.attest({ type: 'join_token', token }, NOW), (err) =>
      isMandateError(err, 'ERR_JOIN_TOKEN_USED'),
    );
  });

  test('a token one second before expiry is accepted', async () => {
    const entryId = await newEntry();
    const { token, expiresAt } = await createJoinToken(store, { entryId, ttlSeconds: 60, now: NOW });
    const result = await createJoinTokenAttestor(store).attest({ type: 'join_token', token }, new Date(expiresAt.getTime() - 1000));
    assert.deepEqual(result.entryIds, [entryId]);
  });

  test('an unknown token is refused without echoing it', async () => {
    const attestor = createJoinTokenAttestor(store);
    const token = `mjt_${randomUUID()}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`;
    await assert.rejects(
      attestor.attest({ type: 'join_token', token }, NOW),
      (err) => isMandateError(err, 'ERR_JOIN_TOKEN_INVALID') && !err.message.includes(token),
    );
    await assert.rejects(attestor.attest({ type: 'join_token', token: 'not-even-a-token' }, NOW), (err) =>
      isMandateError(err, 'ERR_JOIN_TOKEN_INVALID'),
    );
  });

  test('a request of the wrong shape is refused', async () => {
    const attestor = createJoinTokenAttestor(store);
    for (const token of [undefined, 42, '', ['mjt_x'], { token: 'x' }, null]) {
      await assert.rejects(
        attestor.attest({ type: 'join_token', token }, NOW),
        (err) => isMandateError(err, 'ERR_BAD_REQUEST') && err.message.includes('"token"'),
        `token ${JSON.stringify(token)}`,
      );
    }
    await assert.rejects(attestor.attest({ type: 'join_token', token: 'x'.repeat(10_000) }, NOW), (err) =>
      isMandateError(err, 'ERR_BODY_TOO_LARGE'),
    );
  });

  test('creating a token checks the entry and the lifetime', async () => {
    await assert.rejects(createJoinToken(store, { entryId: 'no-such-entry', ttlSeconds: 60 }), (err) =>
      isMandateError(err, 'ERR_NOT_FOUND') && err.message.includes('no-such-entry'),
    );
    const entryId = await newEntry();
    for (const ttlSeconds of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 400 * 24 * 3600]) {
      await assert.rejects(createJoinToken(store, { entryId, ttlSeconds }), (err) => isMandateError(err, 'ERR_BAD_REQUEST'), `ttl ${ttlSeconds}`);
    }
  });

  test('two tokens for the same entry are independent', async () => {
    const entryId = await newEntry();
    const a = await createJoinToken(store, { entryId, ttlSeconds: 60, now: NOW });
    const b = await createJoinToken(store, { entryId, ttlSeconds: 60, now: NOW });
    assert.notEqual(a.id, b.id);
    const attestor = createJoinTokenAttestor(store);
    assert.equal((await attestor.attest({ type: 'join_token', token: a.token }, NOW)).subject, `join_token:${a.id}`);
    assert.equal((await attestor.attest({ type: 'join_token', token: b.token }, NOW)).subject, `join_token:${b.id}`);
  });
});
