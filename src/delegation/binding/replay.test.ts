import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DEFAULT_MAX_REPLAY_ENTRIES, MemoryReplayGuard } from './replay.ts';

test('an id is new once, then seen until it expires, then new again', () => {
  const guard = new MemoryReplayGuard();
  assert.equal(guard.maxEntries, DEFAULT_MAX_REPLAY_ENTRIES);
  assert.equal(guard.remember('a', 2000, 1000), true);
  assert.equal(guard.remember('a', 2000, 1000), false);
  assert.equal(guard.remember('a', 5000, 1999), false, 'a later expiry does not make a live id new');
  assert.equal(guard.remember('b', 2000, 1000), true, 'other ids are independent');
  assert.equal(guard.remember('a', 3000, 2000), true, 'expired at 2000: new again');
  assert.equal(guard.remember('a', 3000, 2999), false);
});

test('an id that has already expired is not stored', () => {
  const guard = new MemoryReplayGuard();
  assert.equal(guard.remember('old', 1000, 1000), true);
  assert.equal(guard.size, 0);
});

test('the bound: fills, refuses without evicting live entries, recovers as entries expire', () => {
  const guard = new MemoryReplayGuard({ maxEntries: 3 });
  assert.equal(guard.remember('a', 3000, 0), true);
  assert.equal(guard.remember('b', 1000, 0), true);
  assert.equal(guard.remember('c', 2000, 0), true);
  assert.equal(guard.size, 3);
  assert.equal(guard.remember('d', 5000, 500), false, 'full: a new id is refused');
  for (const id of ['a', 'b', 'c']) assert.equal(guard.remember(id, 9000, 999), false, `live entry ${id} was not evicted`);
  assert.equal(guard.size, 3);
  assert.equal(guard.remember('d', 5000, 1000), true, 'b expired at 1000: room for one');
  assert.equal(guard.remember('e', 5000, 1000), false, 'full again');
  assert.equal(guard.remember('e', 5000, 2000), true, 'c expired at 2000');
  assert.equal(guard.remember('b', 5000, 2000), false, 'full: even an id seen before and expired waits for room');
  assert.equal(guard.remember('f', 9000, 5000), true, 'a, d and e have expired');
  assert.equal(guard.size, 1);
});

test('maxEntries must be a positive integer', () => {
  for (const maxEntries of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => new MemoryReplayGuard({ maxEntries }), /maxEntries must be a positive integer/);
  }
});

test('property: MemoryReplayGuard answers like a plain model with the same bound', () => {
  const op = fc.record({ id: fc.integer({ min: 0, max: 15 }), ttl: fc.integer({ min: -5, max: 60 }), advance: fc.integer({ min: 0, max: 20 }) });
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 8 }), fc.array(op, { maxLength: 200 }), (maxEntries, ops) => {
      const guard = new MemoryReplayGuard({ maxEntries });
      const model = new Map<string, number>();
      let now = 0;
      for (const { id, ttl, advance } of ops) {
        now += advance;
        for (const [k, exp] of model) if (exp <= now) model.delete(k);
        const key = String(id);
        let expected: boolean;
        if (model.has(key)) expected = false;
        else if (now + ttl <= now) expected = true;
        else if (model.size >= maxEntries) expected = false;
        else {
          model.set(key, now + ttl);
          expected = true;
        }
        assert.equal(guard.remember(key, now + ttl, now), expected);
        assert.equal(guard.size, model.size);
      }
    }),
    { numRuns: 300 },
  );
});
