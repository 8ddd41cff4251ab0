import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { isMandateError } from '../errors.ts';
import { rateLimit, type BucketKey, type RateDecision, type RateLimit, type RateLimiter } from './rate-limit.ts';

export interface LimiterHarness {
  limiter: RateLimiter;
  close?: () => Promise<void>;
}

/**
 * The behaviour every RateLimiter must have (run by rate-limit.test.ts and
 * rate-limit-redis.test.ts). Time is passed explicitly, in milliseconds from an arbitrary origin,
 * so the limiter under test must refill from the `now` it is given. Each case uses keys of its
 * own, so cases may share one store.
 */
export function rateLimiterSuite(name: string, open: () => Promise<LimiterHarness>, options: { skip?: string | false } = {}): void {
  describe(name, { skip: options.skip ?? false }, () => {
    let harness: LimiterHarness;
    before(async () => {
      harness = await open();
    });
    after(async () => {
      await harness?.close?.();
    });

    const T0 = 1_000_000;
    const bucket = (dimension: string, limit: RateLimit, key: string = randomUUID()): BucketKey => ({ dimension, key, limit: rateLimit(limit) });
    const take = (keys: BucketKey[], now: number) => harness.limiter.take(keys, now);
    const limited = (dimension: string, retryAfterSeconds: number): RateDecision => ({ allowed: false, reason: 'limited', retryAfterSeconds, dimension });
    const allowed: RateDecision = { allowed: true };

    it('allows a burst, then refuses naming the dimension and when to retry', async () => {
      const agent = bucket('agent', { rate: 1, burst: 3 });
      for (let i = 0; i < 3; i++) assert.deepEqual(await take([agent], T0), allowed, `request ${i + 1}`);
      assert.deepEqual(await take([agent], T0), limited('agent', 1));
    });

    it('refills at the steady rate', async () => {
      const agent = bucket('agent', { rate: 2, burst: 1 });
      assert.deepEqual(await take([agent], T0), allowed);
      assert.deepEqual(await take([agent], T0 + 100), limited('agent', 1));
      assert.deepEqual(await take([agent], T0 + 499), limited('agent', 1));
      assert.deepEqual(await take([agent], T0 + 500), allowed);
      let admitted = 0;
      for (let t = T0 + 550; t <= T0 + 10_500; t += 50) if ((await take([agent], t)).allowed) admitted++;
      assert.equal(admitted, 20, 'two requests a second for ten seconds');
    });

    it('never holds more than the burst', async () => {
      const agent = bucket('agent', { rate: 10, burst: 2 });
      assert.deepEqual(await take([agent], T0), allowed);
      assert.deepEqual(await take([agent], T0 + 3_600_000), allowed);
      assert.deepEqual(await take([agent], T0 + 3_600_000), allowed);
      assert.deepEqual(await take([agent], T0 + 3_600_000), limited('agent', 1));
    });

    it('takes a token from every bucket named, or from none', async () => {
      const agent = bucket('agent', { rate: 0.001, burst: 5 });
      const tool = bucket('tool', { rate: 0.001, burst: 1 });
      const principal = bucket('principal', { rate: 0.001, burst: 5 });
      assert.deepEqual(await take([agent, principal, tool], T0), allowed);
      assert.deepEqual(await take([agent, principal, tool], T0), limited('tool', 1000));
      assert.deepEqual(await take([principal, tool, agent], T0), limited('tool', 1000));
      for (let i = 0; i < 4; i++) assert.deepEqual(await take([agent, principal], T0), allowed, 'refused requests took nothing');
      assert.deepEqual(await take([agent], T0), limited('agent', 1000));
      assert.deepEqual(await take([principal], T0), limited('principal', 1000));
    });

    it('names the bucket that must wait longest', async () => {
      const agent = bucket('agent', { rate: 1, burst: 1 });
      const principal = bucket('principal', { rate: 0.1, burst: 1 });
      assert.deepEqual(await take([agent, principal], T0), allowed);
      assert.deepEqual(await take([agent, principal], T0), limited('principal', 10));
      assert.deepEqual(await take([principal, agent], T0 + 1000), limited('principal', 9));
      assert.deepEqual(await take([agent], T0 + 1000), allowed);
      assert.deepEqual(await take([agent, principal], T0 + 9500), limited('principal', 1));
      assert.deepEqual(await take([agent, principal], T0 + 10_000), allowed);
    });

    it('gives the exact wait, rounded up to whole seconds', async () => {
      const slow = bucket('agent', { rate: 0.1, burst: 1 });
      assert.deepEqual(await take([slow], T0), allowed);
      const table: Array<[number, number]> = [[0, 10], [1, 10], [999, 10], [1000, 9], [2500, 8], [9000, 1], [9999, 1]];
      for (const [dt, seconds] of table) assert.deepEqual(await take([slow], T0 + dt), limited('agent', seconds), `after ${dt} ms`);
      assert.deepEqual(await take([slow], T0 + 10_000), allowed);
      const fast = bucket('agent', { rate: 3, burst: 1 });
      assert.deepEqual(await take([fast], T0), allowed);
      assert.deepEqual(await take([fast], T0), limited('agent', 1));
    });

    it('refills at fractional rates', async () => {
      const half = bucket('tool', { rate: 0.5, burst: 1 });
      assert.deepEqual(await take([half], T0), allowed);
      assert.deepEqual(await take([half], T0 + 1000), limited('tool', 1));
      assert.deepEqual(await take([half], T0 + 1999), limited('tool', 1));
      assert.deepEqual(await take([half], T0 + 2000), allowed);
      assert.deepEqual(await take([half], T0 + 2000), limited('tool', 2));
      const tenth = bucket('tool', { rate: 0.1, burst: 3 });
      for (let i = 0; i < 3; i++) assert.deepEqual(await take([tenth], T0), allowed);
      let admitted = 0;
      for (let t = T0 + 1000; t <= T0 + 60_000; t += 1000) if ((await take([tenth], t)).allowed) admitted++;
      assert.equal(admitted, 6, 'one request every ten seconds for a minute');
    });

    it('refuses limits that could never admit or never refill, when built and when used', async () => {
      const bad: Array<[RateLimit, RegExp]> = [
        [{ rate: 1, burst: 0 }, /burst must be a whole number of at least 1/],
        [{ rate: 1, burst: -1 }, /burst/],
        [{ rate: 1, burst: 1.5 }, /burst/],
        [{ rate: 1, burst: Number.NaN }, /burst/],
        [{ rate: 0, burst: 1 }, /rate must be a positive number/],
        [{ rate: -1, burst: 1 }, /rate/],
        [{ rate: Number.NaN, burst: 1 }, /rate/],
        [{ rate: Infinity, burst: 1 }, /rate/],
      ];
      for (const [limit, message] of bad) {
        assert.throws(() => rateLimit(limit), (err: unknown) => isMandateError(err, 'ERR_CONFIG_INVALID') && message.test(err.message), JSON.stringify(limit));
        const key: BucketKey = { dimension: 'agent', key: randomUUID(), limit };
        await assert.rejects(harness.limiter.take([key], T0), (err: unknown) => isMandateError(err, 'ERR_CONFIG_INVALID') && message.test(err.message));
      }
    });

    it('keeps buckets apart by dimension and key, whatever characters they hold', async () => {
      const id = randomUUID();
      const limit = { rate: 0.001, burst: 1 };
      const a = bucket(`a:${id}`, limit, 'c');
      const b = bucket('a', limit, `${id}:c`);
      const c = bucket(`a:${id}:c`, limit, '');
      const agent = bucket('agent', limit, id);
      const tool = bucket('tool', limit, id);
      for (const k of [a, b, c, agent, tool]) assert.deepEqual(await take([k], T0), allowed, `${k.dimension} ${k.key}`);
      for (const k of [a, b, c, agent, tool]) assert.equal((await take([k], T0)).allowed, false);
    });

    it('allows a request that names no bucket', async () => {
      assert.deepEqual(await take([], T0), allowed);
    });

    it('counts a bucket named twice once', async () => {
      const key = randomUUID();
      const one = bucket('agent', { rate: 0.001, burst: 1 }, key);
      assert.deepEqual(await take([one, { ...one }], T0), allowed);
      assert.deepEqual(await take([one], T0), limited('agent', 1000));
    });

    it('refills nothing while the clock is behind the last update', async () => {
      const agent = bucket('agent', { rate: 1, burst: 1 });
      assert.deepEqual(await take([agent], T0), allowed);
      assert.deepEqual(await take([agent], T0 - 5000), limited('agent', 1));
      assert.deepEqual(await take([agent], T0 + 500), limited('agent', 1));
      assert.deepEqual(await take([agent], T0 + 1000), allowed);
    });

    it('decides a request naming many buckets', async () => {
      const keys = Array.from({ length: 20 }, (_, i) => bucket(`d${i}`, { rate: 1, burst: i === 13 ? 1 : 2 }));
      assert.deepEqual(await take(keys, T0), allowed);
      assert.deepEqual(await take(keys, T0), limited('d13', 1));
    });
  });
}
