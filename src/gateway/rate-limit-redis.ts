/**
 * Token buckets in Redis, shared by every gateway replica: one Lua script reads all the buckets a
 * request names, refills them from the Redis server's clock (TIME — replicas' clocks may disagree,
 * the server's is one clock for all) and takes a token from each or from none, atomically. Each
 * bucket is a hash (`t` tokens, `ts` last update in ms) that expires once it would have refilled,
 * so idle buckets cost nothing and a missing bucket is a full one. A server clock that goes back
 * (a failover to a server whose clock is behind) refills nothing until it passes `ts` again:
 * the limiter would rather refuse for a while than admit more than the limit.
 *
 * Fail closed: when Redis cannot answer — unreachable, reconnecting, too slow (`timeoutMs`), or
 * failing — the request is refused with reason `unavailable`, never waved through. A take that
 * timed out may still reach Redis later and spend its tokens; the request was refused anyway.
 *
 * The script is called by EVALSHA and sent again with EVAL when the server does not have it
 * (after a restart or SCRIPT FLUSH). Under Redis Cluster every key of one script call must live
 * in one slot: put a hash tag in the prefix (`{mandate-rl}:`).
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { MandateError, messageOf } from '../errors.ts';
import { ALLOWED, distinctBuckets, retryAfter, type BucketKey, type RateDecision, type RateLimiter } from './rate-limit.ts';

/**
 * KEYS: the buckets. ARGV[1]: now in ms, or empty for the server's TIME; then per bucket its rate
 * (tokens/s) and burst. Returns {1} when allowed, or {0, i, wait} where bucket i (1-based) waits
 * longest, `wait` seconds (as text: a Lua number reply would be truncated to an integer).
 */
const SCRIPT = `
local now = tonumber(ARGV[1])
if now == nil then
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local eps = 1e-9
local tokens, stamps = {}, {}
local worst, worstWait = 0, 0
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', KEYS[i], 't', 'ts')
  local t, ts = tonumber(state[1]), tonumber(state[2])
  if t == nil or ts == nil then
    t, ts = burst, now
  elseif now > ts then
    t, ts = math.min(burst, t + (now - ts) / 1000 * rate), now
  end
  tokens[i], stamps[i] = t, ts
  if t < 1 - eps then
    local wait = (1 - t) / rate
    if wait > worstWait then worst, worstWait = i, wait end
  end
end
if worst > 0 then return {0, worst, string.format('%.17g', worstWait)} end
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local ttl = math.min(math.ceil(burst / rate * 1000) + 1000, ${365 * 24 * 3600 * 1000})
  redis.call('HSET', KEYS[i], 't', tokens[i] - 1, 'ts', stamps[i])
  redis.call('PEXPIRE', KEYS[i], string.format('%d', ttl))
end
return {1}
`;
const SHA = createHash('sha1').update(SCRIPT).digest('hex');

/** What the limiter needs of a client: ioredis's `Redis` (or `Cluster`, with a hash-tagged prefix). */
export type RedisScriptClient = Pick<Redis, 'evalsha' | 'eval'> & { readonly status: string };

export interface RedisRateLimiterOptions {
  redis: RedisScriptClient;
  /** Prepended to every bucket key, e.g. `mandate:rl:` (with a `{hash tag}` under Cluster). */
  prefix: string;
  /** How long to wait for Redis before refusing; default 250 ms. */
  timeoutMs?: number;
  /**
   * Refill from the `now` passed to `take` instead of the Redis server's clock. For tests only:
   * replicas' clocks are not one clock.
   */
  useCallerClock?: boolean;
}

/** Client states in which a command would only queue up behind a connection that is not there. */
const DOWN = new Set(['reconnecting', 'close', 'end']);

type Reply = { ok: unknown } | { err: unknown };

/**
 * @example
 *   const limiter = new RedisRateLimiter({ redis: new Redis(url), prefix: 'mandate:rl:' });
 *   const d = await limiter.take(keys);
 *   if (!d.allowed) d.reason === 'limited' ? answer429(d.retryAfterSeconds) : answer503(d.retryAfterSeconds);
 */
export class RedisRateLimiter implements RateLimiter {
  readonly #redis: RedisScriptClient;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #callerClock: boolean;

  constructor(options: RedisRateLimiterOptions) {
    const timeoutMs = options.timeoutMs ?? 250;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new MandateError('ERR_CONFIG_INVALID', `the rate limiter's Redis timeout must be a positive number of milliseconds (got ${String(timeoutMs)})`);
    this.#redis = options.redis;
    this.#prefix = options.prefix;
    this.#timeoutMs = timeoutMs;
    this.#callerClock = options.useCallerClock === true;
  }

  async take(keys: readonly BucketKey[], now?: number): Promise<RateDecision> {
    if (keys.length === 0) return ALLOWED;
    const named = distinctBuckets(keys);
    if (DOWN.has(this.#redis.status)) return unavailable(`Redis is not connected (${this.#redis.status})`);
    const args: Array<string | number> = [named.keys.length];
    for (const id of named.ids) args.push(this.#prefix + id);
    args.push(this.#callerClock && now !== undefined ? String(now) : '');
    for (const key of named.keys) args.push(String(key.limit.rate), String(key.limit.burst));

    const reply = await this.#withTimeout(this.#run(args));
    if (reply === undefined) return unavailable(`Redis did not answer within ${this.#timeoutMs} ms`);
    if ('err' in reply) return unavailable(`Redis failed: ${messageOf(reply.err)}`);
    return decision(reply.ok, named.keys);
  }

  /** The script's reply; EVAL when the server has not got the script cached. Never rejects. */
  async #run(args: Array<string | number>): Promise<Reply> {
    try {
      return { ok: await this.#redis.evalsha(SHA, ...(args as [number, ...string[]])) };
    } catch (err) {
      if (!messageOf(err).startsWith('NOSCRIPT')) return { err };
    }
    try {
      return { ok: await this.#redis.eval(SCRIPT, ...(args as [number, ...string[]])) };
    } catch (err) {
      return { err };
    }
  }

  /** `reply`, or undefined when it takes longer than the timeout. */
  async #withTimeout(reply: Promise<Reply>): Promise<Reply | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(resolve, this.#timeoutMs, undefined);
      timer.unref();
    });
    try {
      return await Promise.race([reply, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function unavailable(error: string): RateDecision {
  return { allowed: false, reason: 'unavailable', retryAfterSeconds: 1, error };
}

function decision(reply: unknown, keys: readonly BucketKey[]): RateDecision {
  if (!Array.isArray(reply)) return unavailable('Redis answered the rate-limit script with something unexpected');
  if (reply[0] === 1) return ALLOWED;
  const key = keys[Number(reply[1]) - 1];
  const wait = Number(reply[2]);
  if (reply[0] !== 0 || key === undefined || !Number.isFinite(wait)) return unavailable('Redis answered the rate-limit script with something unexpected');
  return { allowed: false, reason: 'limited', retryAfterSeconds: retryAfter(wait), dimension: key.dimension };
}
