import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMandateError } from '../errors.ts';
import { rateLimiterSuite } from './rate-limit.case.ts';
import { MemoryRateLimiter, rateLimit, type BucketKey } from './rate-limit.ts';

rateLimiterSuite('memory rate limiter', async () => ({ limiter: new MemoryRateLimiter({ maxBuckets: 10_000 }) }));

describe('memory rate limiter: bounded memory', () => {
  const key = (name: string, rate: number, burst: number): BucketKey => ({ dimension: 'agent', key: name, limit: rateLimit({ rate, burst }) });

  it('refuses a bucket count below 1', () => {
    for (const maxBuckets of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new MemoryRateLimiter({ maxBuckets }), (err: unknown) => isMandateError(err, 'ERR_CONFIG_INVALID'));
    }
  });

  it('never holds more buckets than allowed', () => {
    const limiter = new MemoryRateLimiter({ maxBuckets: 100 });
    for (let i = 0; i < 1000; i++) {
      assert.equal(limiter.takeSync([key(`k${i}`, 1, 5), { ...key(`k${i}`, 1, 5), dimension: 'tool' }], i).allowed, true);
      assert.ok(limiter.size <= 100);
    }
    assert.equal(limiter.size, 100);
  });

  it('evicts a refilled bucket before a drained one', () => {
    const limiter = new MemoryRateLimiter({ maxBuckets: 3 });
    assert.equal(limiter.takeSync([key('drained', 0.001, 1)], 0).allowed, true);
    assert.equal(limiter.takeSync([key('a', 1, 5)], 0).allowed, true);
    assert.equal(limiter.takeSync([key('b', 1, 5)], 0).allowed, true);
    // Ten seconds on, a and b are full again; the drained bucket is the least recently used.
    assert.equal(limiter.takeSync([key('c', 1, 5)], 10_000).allowed, true);
    assert.equal(limiter.size, 3);
    assert.deepEqual(limiter.takeSync([key('drained', 0.001, 1)], 10_000), { allowed: false, reason: 'limited', retryAfterSeconds: 990, dimension: 'agent' });
  });

  it('falls back to the least recently used bucket when none has refilled, forgetting it', () => {
    const limiter = new MemoryRateLimiter({ maxBuckets: 2 });
    assert.equal(limiter.takeSync([key('oldest', 0.001, 1)], 0).allowed, true);
    assert.equal(limiter.takeSync([key('newer', 0.001, 1)], 1).allowed, true);
    assert.equal(limiter.takeSync([key('newest', 0.001, 1)], 2).allowed, true);
    assert.equal(limiter.takeSync([key('newer', 0.001, 1)], 3).allowed, false, 'newer was kept');
    assert.equal(limiter.takeSync([key('oldest', 0.001, 1)], 4).allowed, true, 'oldest was forgotten and came back full');
  });

  it('counts use, not creation, for recency', () => {
    const limiter = new MemoryRateLimiter({ maxBuckets: 2 });
    assert.equal(limiter.takeSync([key('first', 0.001, 2)], 0).allowed, true);
    assert.equal(limiter.takeSync([key('second', 0.001, 2)], 1).allowed, true);
    assert.equal(limiter.takeSync([key('first', 0.001, 2)], 2).allowed, true);
    assert.equal(limiter.takeSync([key('third', 0.001, 2)], 3).allowed, true);
    assert.equal(limiter.takeSync([key('first', 0.001, 2)], 4).allowed, false, 'first, used last, was kept (and is empty)');
  });

  it('stores nothing for a refused request', () => {
    const limiter = new MemoryRateLimiter({ maxBuckets: 10 });
    assert.equal(limiter.takeSync([key('tight', 0.001, 1)], 0).allowed, true);
    assert.equal(limiter.takeSync([key('tight', 0.001, 1), key('fresh', 1, 1)], 0).allowed, false);
    assert.equal(limiter.size, 1);
  });

  it('reads the monotonic clock when no time is given', async () => {
    const limiter = new MemoryRateLimiter({ maxBuckets: 10 });
    const k = key('clock', 0.001, 1);
    assert.equal((await limiter.take([k])).allowed, true);
    assert.deepEqual(await limiter.take([k]), { allowed: false, reason: 'limited', retryAfterSeconds: 1000, dimension: 'agent' });
  });
});
