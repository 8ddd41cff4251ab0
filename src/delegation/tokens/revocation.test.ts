import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it, type TestContext } from 'node:test';
import { isMandateError } from '../../errors.ts';
import { openSqliteStore } from '../../store/sqlite/sqlite-store.ts';
import type { MandateRecord, Store } from '../../store/store.ts';
import { RevocationList, type RevocationSource } from './revocation.ts';

const T0 = Date.parse('2030-01-01T00:00:00Z');
const HOUR = 3600_000;

interface Fixture {
  /** The store currently open on the database file (reopen() replaces it). */
  store: Store;
  /** Reads the current store, whichever it is. */
  source: RevocationSource;
  /** afterSeq of every list() call the RevocationList made. */
  calls: number[];
  clock: { now: number };
  reopen(): Promise<void>;
}

async function fixture(t: TestContext): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-revocation-'));
  const path = join(dir, 'mandate.db');
  const f: Fixture = {
    store: await openSqliteStore({ path }),
    source: { list: (after, limit) => { f.calls.push(after); return f.store.listRevocations(after, limit); } },
    calls: [],
    clock: { now: T0 },
    reopen: async () => {
      f.store = await openSqliteStore({ path });
    },
  };
  t.after(async () => {
    await f.store.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  return f;
}

function list(f: Fixture, opts: { maxStalenessMs?: number; pollMs?: number; onError?: (err: unknown) => void; realTime?: boolean } = {}): RevocationList {
  const { realTime, ...rest } = opts;
  return new RevocationList({ source: f.source, ...(realTime ? {} : { now: () => f.clock.now }), ...rest });
}

async function grantMandate(store: Store, id: string, expiresAt: Date): Promise<void> {
  const mandate: MandateRecord = {
    id, principal: { issuer: 'https://mandate.example.org', subject: 'alice', name: 'Alice' },
    agent: 'spiffe://example.org/agent/triage-bot', scopes: ['issues:read'], resources: ['https://tools.example/mcp/issues'],
    constraints: {}, maxDepth: 0, origin: 'admin', clientId: null, createdAt: new Date(T0), expiresAt,
    status: 'active', revokedAt: null, revokedBy: null,
  };
  await store.createMandate(mandate);
}

async function until(condition: () => boolean, timeoutMs: number): Promise<number> {
  const start = performance.now();
  while (!condition()) {
    if (performance.now() - start > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(2);
  }
  return performance.now() - start;
}

describe('RevocationList sync', () => {
  it('reads a list of more than one page (1000 entries) in order, up to the last entry', async (t) => {
    const f = await fixture(t);
    const seqs: number[] = [];
    for (let i = 0; i < 2500; i++) seqs.push(await f.store.revokeToken(`jti-${i}`, new Date(T0 + HOUR), new Date(T0)));
    const l = list(f);
    await l.sync();
    assert.deepEqual(f.calls, [0, seqs[999], seqs[1999]], 'three pages: 1000, 1000 and 500 entries');
    assert.equal(l.epoch, seqs[2499]);
    for (const i of [0, 999, 1000, 1001, 1999, 2000, 2499]) assert.equal(l.isRevoked({ jti: `jti-${i}` }), true, `jti-${i}`);
    assert.equal(l.isRevoked({ jti: 'jti-2500' }), false);
    assert.equal(l.stale, false);
  });

  it('asks for one more page when a page is exactly full', async (t) => {
    const f = await fixture(t);
    for (let i = 0; i < 1000; i++) await f.store.revokeToken(`jti-${i}`, new Date(T0 + HOUR), new Date(T0));
    const l = list(f);
    await l.sync();
    assert.equal(f.calls.length, 2);
    assert.equal(l.isRevoked({ jti: 'jti-999' }), true);
  });

  it('keeps an epoch and asks only for what is new since it', async (t) => {
    const f = await fixture(t);
    const l = list(f);
    assert.equal(l.epoch, 0);
    await l.sync();
    assert.equal(l.epoch, 0, 'an empty list leaves the epoch at 0');
    const first = await f.store.revokeToken('a', new Date(T0 + HOUR), new Date(T0));
    const second = await f.store.revokeToken('b', new Date(T0 + HOUR), new Date(T0));
    f.calls.length = 0;
    await l.sync();
    assert.deepEqual(f.calls, [0]);
    assert.equal(l.epoch, second);
    assert.ok(second > first);
    const third = await f.store.revokeToken('c', new Date(T0 + HOUR), new Date(T0));
    f.calls.length = 0;
    await l.sync();
    assert.deepEqual(f.calls, [second], 'the next sync starts after the epoch');
    assert.equal(l.epoch, third);
    f.calls.length = 0;
    await l.sync();
    assert.deepEqual(f.calls, [third]);
    assert.equal(l.epoch, third, 'nothing new: the epoch stays');
    assert.deepEqual(['a', 'b', 'c', 'd'].map((jti) => l.isRevoked({ jti })), [true, true, true, false]);
  });

  it('tells mandate entries from token entries', async (t) => {
    const f = await fixture(t);
    await grantMandate(f.store, 'mdt_revoked', new Date(T0 + HOUR));
    await grantMandate(f.store, 'mdt_live', new Date(T0 + HOUR));
    await f.store.revokeMandate('mdt_revoked', 'admin', new Date(T0));
    await f.store.revokeToken('jti-revoked', new Date(T0 + HOUR), new Date(T0));
    const l = list(f);
    await l.sync();
    assert.equal(l.isRevoked({ jti: 'any', mandate: 'mdt_revoked' }), true, 'every token of a revoked mandate');
    assert.equal(l.isRevoked({ jti: 'jti-revoked' }), true);
    assert.equal(l.isRevoked({ jti: 'jti-revoked', mandate: 'mdt_live' }), true, 'a revoked token of a live mandate');
    assert.equal(l.isRevoked({ jti: 'any', mandate: 'mdt_live' }), false);
    assert.equal(l.isRevoked({ jti: 'any' }), false);
    assert.equal(l.isRevoked({ jti: 'mdt_revoked' }), false, 'a token whose jti equals a revoked mandate id is not revoked');
    assert.equal(l.isRevoked({ jti: 'any', mandate: 'jti-revoked' }), false, 'a mandate whose id equals a revoked jti is not revoked');
  });

  it('forgets entries once they have expired, and does not get them back', async (t) => {
    const f = await fixture(t);
    await f.store.revokeToken('short', new Date(T0 + 60_000), new Date(T0));
    await f.store.revokeToken('long', new Date(T0 + HOUR), new Date(T0));
    await grantMandate(f.store, 'mdt_short', new Date(T0 + 60_000));
    await f.store.revokeMandate('mdt_short', 'admin', new Date(T0));
    const l = list(f, { maxStalenessMs: 2 * HOUR });
    await l.sync();
    assert.equal(l.isRevoked({ jti: 'short' }), true);
    assert.equal(l.isRevoked({ jti: 'x', mandate: 'mdt_short' }), true);
    f.clock.now = T0 + 60_000;
    await l.sync();
    assert.equal(l.isRevoked({ jti: 'short' }), true, 'kept up to its expiry');
    f.clock.now = T0 + 60_001;
    assert.equal(l.isRevoked({ jti: 'short' }), true, 'pruned on sync, not before');
    await l.sync();
    assert.equal(l.isRevoked({ jti: 'short' }), false);
    assert.equal(l.isRevoked({ jti: 'x', mandate: 'mdt_short' }), false);
    assert.equal(l.isRevoked({ jti: 'long' }), true);
    await l.sync();
    assert.equal(l.isRevoked({ jti: 'short' }), false, 'the epoch is past it: a later sync does not bring it back');
  });
});

describe('RevocationList fails closed', () => {
  it('answers revoked for everything before the first sync', async (t) => {
    const f = await fixture(t);
    const l = list(f);
    assert.equal(l.stale, true);
    assert.equal(l.isRevoked({ jti: 'never-revoked' }), true);
    assert.equal(l.isRevoked({ jti: 'never-revoked', mandate: 'mdt_x' }), true);
    await l.sync();
    assert.equal(l.stale, false);
    assert.equal(l.isRevoked({ jti: 'never-revoked' }), false);
  });

  it('answers revoked for everything once no sync succeeded for maxStalenessMs', async (t) => {
    const f = await fixture(t);
    const l = list(f, { maxStalenessMs: 30_000 });
    await l.sync();
    f.clock.now = T0 + 30_000;
    assert.equal(l.stale, false, 'exactly maxStalenessMs is still fresh');
    assert.equal(l.isRevoked({ jti: 'x' }), false);
    f.clock.now = T0 + 30_001;
    assert.equal(l.stale, true);
    assert.equal(l.isRevoked({ jti: 'x' }), true);
    assert.equal(l.isRevoked({ jti: 'x', mandate: 'mdt_x' }), true);
    await l.sync();
    assert.equal(l.stale, false, 'a successful sync makes it fresh again');
    assert.equal(l.isRevoked({ jti: 'x' }), false);
  });

  it('stays stale while the source fails, and recovers when it works again', async (t) => {
    const f = await fixture(t);
    const errors: unknown[] = [];
    const l = list(f, { maxStalenessMs: 30_000, onError: (err) => errors.push(err) });
    await l.sync();
    await f.store.close();
    f.clock.now = T0 + 20_000;
    await assert.rejects(l.sync(), (err: unknown) => isMandateError(err, 'ERR_STORE'));
    assert.equal(l.stale, false, 'a failed sync does not make a fresh list stale before its time');
    f.clock.now = T0 + 30_001;
    assert.equal(l.stale, true, 'the failed sync did not count: staleness runs from the last success (T0)');
    assert.equal(l.isRevoked({ jti: 'x' }), true);
    await assert.rejects(l.sync(), (err: unknown) => isMandateError(err, 'ERR_STORE'));
    assert.equal(l.stale, true);
    assert.equal(l.isRevoked({ jti: 'x' }), true);

    await f.reopen();
    await f.store.revokeToken('revoked-while-down', new Date(T0 + HOUR), new Date(T0 + 25_000));
    await l.sync();
    assert.equal(l.stale, false);
    assert.equal(l.isRevoked({ jti: 'x' }), false);
    assert.equal(l.isRevoked({ jti: 'revoked-while-down' }), true);
    assert.deepEqual(errors, [], 'sync() rejects to its caller; onError is for polling');
  });

  it('a list that never synced stays stale while the source fails', async (t) => {
    const f = await fixture(t);
    await f.store.close();
    const l = list(f);
    await assert.rejects(l.sync(), (err: unknown) => isMandateError(err, 'ERR_STORE'));
    assert.equal(l.stale, true);
    assert.equal(l.isRevoked({ jti: 'x' }), true);
  });

  it('a sync that fails after its first page keeps the page, stays stale, and resumes after it', async (t) => {
    const f = await fixture(t);
    for (let i = 0; i < 1500; i++) await f.store.revokeToken(`jti-${i}`, new Date(T0 + HOUR), new Date(T0));
    let fail = true;
    const seen: number[] = [];
    const l = new RevocationList({
      now: () => f.clock.now,
      source: {
        list: async (after, limit) => {
          seen.push(after);
          if (fail && seen.length === 2) throw new Error('connection reset');
          return f.store.listRevocations(after, limit);
        },
      },
    });
    await assert.rejects(l.sync(), /connection reset/);
    assert.equal(l.stale, true);
    const afterFirstPage = l.epoch;
    assert.ok(afterFirstPage > 0);
    fail = false;
    await l.sync();
    assert.deepEqual(seen, [0, afterFirstPage, afterFirstPage]);
    assert.equal(l.stale, false);
    assert.equal(l.isRevoked({ jti: 'jti-0' }), true);
    assert.equal(l.isRevoked({ jti: 'jti-1499' }), true);
  });
});

describe('RevocationList concurrency and polling', () => {
  it('calls made while a fetch runs share one follow-up fetch, which sees what was committed before them', async (t) => {
    const f = await fixture(t);
    await f.store.revokeToken('early', new Date(T0 + HOUR), new Date(T0));
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let fetches = 0;
    const l = new RevocationList({
      now: () => f.clock.now,
      source: {
        list: async (after, limit) => {
          fetches++;
          const page = await f.store.listRevocations(after, limit);
          if (fetches === 1) await gate; // the first fetch has read the store and is still "in flight"
          return page;
        },
      },
    });
    const first = l.sync();
    await sleep(5);
    assert.equal(fetches, 1);
    await f.store.revokeToken('late', new Date(T0 + HOUR), new Date(T0));
    const waiting = [l.sync(), l.sync(), l.sync(), l.sync()];
    assert.ok(waiting.every((p) => p === waiting[0]), 'every call made during the fetch gets the same promise');
    assert.notEqual(waiting[0], first);
    assert.equal(fetches, 1, 'the follow-up waits for the running fetch');
    release();
    await first;
    assert.equal(l.isRevoked({ jti: 'early' }), true);
    await Promise.all(waiting);
    assert.equal(fetches, 2, 'one follow-up fetch for all four waiting calls');
    assert.equal(l.isRevoked({ jti: 'late' }), true, 'a revocation committed before sync() was called is seen when it returns');
    await l.sync();
    assert.equal(fetches, 3, 'a sync after everything settled fetches again');
  });

  it('a failed fetch fails its own callers only; the follow-up for callers that waited runs anyway', async (t) => {
    const f = await fixture(t);
    await f.store.revokeToken('a', new Date(T0 + HOUR), new Date(T0));
    let fetches = 0;
    const l = new RevocationList({
      now: () => f.clock.now,
      source: {
        list: async (after, limit) => {
          fetches++;
          await sleep(5);
          if (fetches === 1) throw new Error('connection reset');
          return f.store.listRevocations(after, limit);
        },
      },
    });
    const first = l.sync();
    const second = l.sync();
    const [r1, r2] = await Promise.allSettled([first, second]);
    assert.equal(r1.status, 'rejected');
    assert.match(String((r1 as PromiseRejectedResult).reason), /connection reset/);
    assert.equal(r2.status, 'fulfilled');
    assert.equal(fetches, 2);
    assert.equal(l.stale, false);
    assert.equal(l.isRevoked({ jti: 'a' }), true);
  });

  it('callers waiting on a follow-up all see its failure, and the next sync tries again', async (t) => {
    const f = await fixture(t);
    let fetches = 0;
    let fail = true;
    const l = new RevocationList({
      now: () => f.clock.now,
      source: { list: async (after, limit) => { fetches++; await sleep(5); if (fail) throw new Error('down'); return f.store.listRevocations(after, limit); } },
    });
    const results = await Promise.allSettled([l.sync(), l.sync(), l.sync()]);
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected', 'rejected']);
    assert.equal(fetches, 2, 'the running fetch and one shared follow-up');
    assert.equal(l.stale, true);
    fail = false;
    await l.sync();
    assert.equal(fetches, 3);
    assert.equal(l.stale, false);
  });

  it('polling picks up a revocation made in the store within about pollMs, and stop() ends it', async (t) => {
    const f = await fixture(t);
    const pollMs = 25;
    const l = list(f, { pollMs, realTime: true });
    t.after(() => l.stop());
    l.start();
    await until(() => !l.stale, 20 * pollMs);

    await grantMandate(f.store, 'mdt_polled', new Date(Date.now() + HOUR));
    await f.store.revokeMandate('mdt_polled', 'admin', new Date());
    const waited = await until(() => l.isRevoked({ jti: 'x', mandate: 'mdt_polled' }), 40 * pollMs);
    // one interval plus a fetch; the bound leaves room for a loaded machine but not for a missed poll period of the 500 ms default
    assert.ok(waited <= 10 * pollMs, `seen after ${Math.round(waited)} ms with pollMs ${pollMs}`);
    await f.store.revokeToken('jti-polled', new Date(Date.now() + HOUR), new Date());
    await until(() => l.isRevoked({ jti: 'jti-polled' }), 20 * pollMs);

    l.stop();
    await sleep(pollMs); // let a fetch already in flight finish
    await f.store.revokeToken('jti-after-stop', new Date(Date.now() + HOUR), new Date());
    await sleep(6 * pollMs);
    assert.equal(l.isRevoked({ jti: 'jti-after-stop' }), false, 'no polling after stop()');

    l.start();
    await until(() => l.isRevoked({ jti: 'jti-after-stop' }), 20 * pollMs);
  });

  it('start() twice runs one timer', async (t) => {
    const f = await fixture(t);
    const pollMs = 20;
    const l = list(f, { pollMs, realTime: true });
    t.after(() => l.stop());
    l.start();
    l.start();
    const started = performance.now();
    await sleep(10 * pollMs);
    l.stop();
    const ticks = Math.floor((performance.now() - started) / pollMs);
    assert.ok(f.calls.length <= ticks + 1, `${f.calls.length} fetches in ${ticks} poll intervals`);
    assert.ok(f.calls.length >= 1);
  });

  it('polling reports a failing source to onError and the list goes stale', async (t) => {
    const f = await fixture(t);
    const errors: unknown[] = [];
    const l = list(f, { pollMs: 10, maxStalenessMs: 50, realTime: true, onError: (err) => errors.push(err) });
    t.after(() => l.stop());
    await l.sync();
    await f.store.close();
    l.start();
    await until(() => errors.length >= 2, 1000);
    assert.ok(errors.every((err) => isMandateError(err, 'ERR_STORE')), String(errors[0]));
    await until(() => l.stale, 1000);
    assert.equal(l.isRevoked({ jti: 'x' }), true);
    await f.reopen();
    await until(() => !l.stale, 1000);
    assert.equal(l.isRevoked({ jti: 'x' }), false);
  });
});
