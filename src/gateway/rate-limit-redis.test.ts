import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { rateLimiterSuite } from './rate-limit.case.ts';
import { RedisRateLimiter } from './rate-limit-redis.ts';
import { bucketId, rateLimit, type BucketKey } from './rate-limit.ts';

const url = process.env.REDIS_URL;
const skip = url ? false : 'REDIS_URL is unset: Redis rate-limit tests skipped';

/** Deletes every key under `prefix`. */
async function dropPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

rateLimiterSuite(
  'redis rate limiter',
  async () => {
    const redis = new Redis(url as string);
    const prefix = `mandate-test:rl:${randomUUID()}:`;
    return {
      limiter: new RedisRateLimiter({ redis, prefix, useCallerClock: true }),
      close: async () => {
        await dropPrefix(redis, prefix);
        await redis.quit();
      },
    };
  },
  { skip },
);

describe('redis rate limiter: shared by replicas', { skip }, () => {
  let redis: Redis;
  const prefix = `mandate-test:rl:${randomUUID()}:`;
  const key = (rate: number, burst: number, dimension = 'agent'): BucketKey => ({ dimension, key: randomUUID(), limit: rateLimit({ rate, burst }) });

  before(() => {
    redis = new Redis(url as string);
  });
  after(async () => {
    await dropPrefix(redis, prefix);
    await redis.quit();
  });

  it("refills from the server's clock, whatever time the caller passes", async () => {
    const limiter = new RedisRateLimiter({ redis, prefix });
    const hourly = key(1 / 3600, 1);
    assert.deepEqual(await limiter.take([hourly], 0), { allowed: true });
    assert.deepEqual(await limiter.take([hourly], 1e15), { allowed: false, reason: 'limited', retryAfterSeconds: 3600, dimension: 'agent' });
    assert.deepEqual(await limiter.take([hourly]), { allowed: false, reason: 'limited', retryAfterSeconds: 3600, dimension: 'agent' });
  });

  it('never admits more than the burst to many clients taking at once', async () => {
    const clients = Array.from({ length: 8 }, () => new Redis(url as string));
    try {
      const limiters = clients.map((c) => new RedisRateLimiter({ redis: c, prefix, timeoutMs: 10_000 }));
      const shared = key(0.001, 50);
      const decisions = await Promise.all(Array.from({ length: 400 }, (_, i) => (limiters[i % limiters.length] as RedisRateLimiter).take([shared])));
      assert.equal(decisions.filter((d) => d.allowed).length, 50);
      assert.ok(decisions.every((d) => d.allowed || d.reason === 'limited'));

      // All or nothing under contention: each request also names a tool bucket of its own.
      const agent = key(0.001, 40);
      const mixed = await Promise.all(Array.from({ length: 300 }, (_, i) => (limiters[i % limiters.length] as RedisRateLimiter).take([key(0.001, 1, 'tool'), agent])));
      assert.equal(mixed.filter((d) => d.allowed).length, 40);
    } finally {
      await Promise.all(clients.map((c) => c.quit()));
    }
  });

  it('lets idle buckets expire once they would have refilled', async () => {
    const limiter = new RedisRateLimiter({ redis, prefix });
    const k = key(1, 2);
    assert.equal((await limiter.take([k])).allowed, true);
    const ttl = await redis.pttl(prefix + bucketId(k));
    assert.ok(ttl > 0 && ttl <= 3000, `ttl ${ttl}`);
  });

  it('loads the script again when the server has forgotten it', async () => {
    const limiter = new RedisRateLimiter({ redis, prefix });
    assert.equal((await limiter.take([key(1, 1)])).allowed, true);
    await redis.script('FLUSH');
    assert.equal((await limiter.take([key(1, 1)])).allowed, true);
  });

  it('refuses when Redis fails on a bucket', async () => {
    const limiter = new RedisRateLimiter({ redis, prefix });
    const k = key(1, 1);
    await redis.set(prefix + bucketId(k), 'not a hash');
    const d = await limiter.take([k]);
    assert.equal(d.allowed, false);
    assert.ok(!d.allowed && d.reason === 'unavailable' && d.retryAfterSeconds === 1 && /Redis failed/.test(d.error), JSON.stringify(d));
  });
});

describe('redis rate limiter: fails closed', () => {
  const k: BucketKey = { dimension: 'agent', key: 'a', limit: rateLimit({ rate: 1, burst: 10 }) };
  let silent: Server;
  const sockets = new Set<Socket>();
  let silentPort = 0;
  let closedPort = 0;

  before(async () => {
    silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentPort = (silent.address() as { port: number }).port;
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    closedPort = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  const unavailable = (d: unknown, why: RegExp) => {
    assert.ok(typeof d === 'object' && d !== null);
    const decision = d as { allowed: boolean; reason?: string; retryAfterSeconds?: number; error?: string };
    assert.equal(decision.allowed, false);
    assert.equal(decision.reason, 'unavailable');
    assert.equal(decision.retryAfterSeconds, 1);
    assert.match(decision.error ?? '', why);
  };

  it('refuses when nothing listens', async () => {
    const redis = new Redis({ host: '127.0.0.1', port: closedPort, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => {});
    try {
      unavailable(await new RedisRateLimiter({ redis, prefix: 't:', timeoutMs: 2000 }).take([k]), /Redis/);
    } finally {
      redis.disconnect();
    }
  });

  it('refuses without waiting when the client is reconnecting', async () => {
    const redis = new Redis({ host: '127.0.0.1', port: closedPort, retryStrategy: () => 60_000 });
    redis.on('error', () => {});
    try {
      await new Promise<void>((resolve) => redis.once('reconnecting', () => resolve()));
      unavailable(await new RedisRateLimiter({ redis, prefix: 't:', timeoutMs: 60_000 }).take([k]), /not connected \(reconnecting\)/);
    } finally {
      redis.disconnect();
    }
  });

  it('refuses when Redis does not answer in time', async () => {
    const redis = new Redis({ host: '127.0.0.1', port: silentPort, maxRetriesPerRequest: null });
    redis.on('error', () => {});
    try {
      unavailable(await new RedisRateLimiter({ redis, prefix: 't:', timeoutMs: 100 }).take([k]), /did not answer within 100 ms/);
    } finally {
      redis.disconnect();
    }
  });

  it('refuses after the client was closed', { skip }, async () => {
    const redis = new Redis(url as string);
    const ended = new Promise((resolve) => redis.once('end', resolve));
    await redis.quit();
    await ended;
    unavailable(await new RedisRateLimiter({ redis, prefix: 't:' }).take([k]), /not connected \(end\)/);
  });

  it('refuses a timeout that is not a positive number', () => {
    const redis = { status: 'wait' } as unknown as Redis;
    for (const timeoutMs of [0, -1, Number.NaN]) assert.throws(() => new RedisRateLimiter({ redis, prefix: 't:', timeoutMs }), /timeout/);
  });
});
