/**
 * Rate limits for the gateway: token buckets per agent, per principal and per tool (or any other
 * dimension). A request names the buckets it counts against and takes one token from each — or,
 * when any of them is empty, from none, so a refused request costs nothing and the answer says
 * which limit to wait for and for how long (`Retry-After`).
 *
 * A bucket holds at most `burst` tokens and gains `rate` tokens per second. This module holds the
 * types shared by every limiter and the in-process one; rate-limit-redis.ts has the one shared by
 * replicas.
 */
import { MandateError } from '../errors.ts';

export interface RateLimit {
  /** Tokens gained per second; fractions allowed (0.5 = one request every two seconds). */
  rate: number;
  /** The most tokens a bucket holds: the requests allowed at once after a quiet spell. */
  burst: number;
}

export interface BucketKey {
  dimension: 'agent' | 'principal' | 'tool' | (string & {});
  /** Who or what within the dimension: a SPIFFE ID, `iss#sub`, `server/tool`. */
  key: string;
  limit: RateLimit;
}

export type RateDecision =
  | { allowed: true }
  /** A bucket is empty: answer 429 with `Retry-After: retryAfterSeconds`. */
  | { allowed: false; reason: 'limited'; retryAfterSeconds: number; dimension: string }
  /** The limiter could not be consulted, so the request is refused (fail closed): answer 503. */
  | { allowed: false; reason: 'unavailable'; retryAfterSeconds: number; error: string };

export interface RateLimiter {
  /**
   * Takes one token from every bucket `keys` names, or none. A bucket named twice counts once.
   *
   * @param now milliseconds on the limiter's clock, for tests; leave it out otherwise.
   * @throws MandateError ERR_CONFIG_INVALID when a limit is not valid (see {@link rateLimit}).
   */
  take(keys: readonly BucketKey[], now?: number): Promise<RateDecision>;
}

export const ALLOWED: RateDecision = Object.freeze({ allowed: true });

/** Float slack: 0.1 + 0.2 tokens must still make 0.3. */
const EPSILON = 1e-9;

/** Why `limit` is not a usable rate limit, or undefined when it is. */
export function rateLimitProblem(limit: RateLimit): string | undefined {
  if (typeof limit.rate !== 'number' || !Number.isFinite(limit.rate) || limit.rate <= 0) {
    return `a rate limit's rate must be a positive number of requests per second (got ${String(limit.rate)})`;
  }
  if (!Number.isSafeInteger(limit.burst) || limit.burst < 1) {
    return `a rate limit's burst must be a whole number of at least 1, or no request could ever pass (got ${String(limit.burst)})`;
  }
  return undefined;
}

/**
 * A checked rate limit, for building limits from configuration at start-up.
 *
 * @throws MandateError ERR_CONFIG_INVALID for a burst below 1 (nothing could pass), a rate that is
 *   not a positive finite number (the bucket would never refill), or a burst that is not whole.
 */
export function rateLimit(limit: RateLimit): RateLimit {
  const problem = rateLimitProblem(limit);
  if (problem !== undefined) throw new MandateError('ERR_CONFIG_INVALID', problem);
  return Object.freeze({ rate: limit.rate, burst: limit.burst });
}

/**
 * A bucket's identity. The dimension's length comes first, so no choice of characters in a
 * dimension or key can make two different pairs meet (`a:b` + `c` vs `a` + `b:c`).
 */
export function bucketId(key: BucketKey): string {
  return `${key.dimension.length}:${key.dimension}:${key.key}`;
}

/**
 * The buckets a request names, checked and each once (the first naming wins), with their ids.
 *
 * @throws MandateError ERR_CONFIG_INVALID when a limit is not valid.
 */
export function distinctBuckets(keys: readonly BucketKey[]): { keys: BucketKey[]; ids: string[] } {
  const out: BucketKey[] = [];
  const ids: string[] = [];
  for (const key of keys) {
    const problem = rateLimitProblem(key.limit);
    if (problem !== undefined) throw new MandateError('ERR_CONFIG_INVALID', `${key.dimension} ${JSON.stringify(key.key)}: ${problem}`);
    const id = bucketId(key);
    if (ids.includes(id)) continue;
    out.push(key);
    ids.push(id);
  }
  return { keys: out, ids };
}

/** `Retry-After` for a wait of `seconds`: whole seconds, rounded up, at least 1. */
export function retryAfter(seconds: number): number {
  return Math.max(1, Math.ceil(seconds - EPSILON));
}

export function hasToken(tokens: number): boolean {
  return tokens >= 1 - EPSILON;
}

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date, on the limiter's clock (ms). */
  updated: number;
  rate: number;
  burst: number;
}

export interface MemoryRateLimiterOptions {
  /** The most buckets kept; beyond it, buckets are evicted (see the class comment). */
  maxBuckets: number;
}

/** How many of the least recently used buckets eviction looks through for a full one. */
const EVICTION_SCAN = 64;

/**
 * Token buckets in this process's memory, for a single replica. Refill is computed from the
 * monotonic clock (`performance.now()`) on each take: no timers, nothing runs while idle.
 *
 * Memory is bounded by `maxBuckets`. Evicting a bucket forgets it, and a forgotten bucket comes
 * back full, so evicting a drained one would hand its owner a fresh burst — and whoever can make
 * the gateway create buckets (new tool names, new agents) could do that on purpose. Eviction
 * therefore takes a bucket that has refilled to its burst (forgetting it changes nothing) from
 * among the least recently used, and falls back to the least recently used bucket only when none
 * of those is full. Size `maxBuckets` above the number of keys active within a refill period and
 * the fallback never happens.
 *
 * @example
 *   const limiter = new MemoryRateLimiter({ maxBuckets: 100_000 });
 *   const d = await limiter.take([{ dimension: 'agent', key: agentId, limit: rateLimit({ rate: 5, burst: 20 }) }]);
 */
export class MemoryRateLimiter implements RateLimiter {
  readonly #max: number;
  /** In least-recently-used-first order: a used bucket is moved to the end. */
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: MemoryRateLimiterOptions) {
    if (!Number.isSafeInteger(options.maxBuckets) || options.maxBuckets < 1) {
      throw new MandateError('ERR_CONFIG_INVALID', `the rate limiter's bucket count must be a whole number of at least 1 (got ${String(options.maxBuckets)})`);
    }
    this.#max = options.maxBuckets;
  }

  /** Buckets held now. */
  get size(): number {
    return this.#buckets.size;
  }

  take(keys: readonly BucketKey[], now?: number): Promise<RateDecision> {
    try {
      return Promise.resolve(this.takeSync(keys, now));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** {@link take} without the promise, for callers on the hot path. */
  takeSync(keys: readonly BucketKey[], now: number = performance.now()): RateDecision {
    if (keys.length === 0) return ALLOWED;
    const named = distinctBuckets(keys);
    const buckets = named.keys.map((key, i) => this.#current(named.ids[i] as string, key, now));
    let worst = -1;
    let worstWait = 0;
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i] as Bucket;
      if (hasToken(b.tokens)) continue;
      const wait = (1 - b.tokens) / b.rate;
      if (wait > worstWait) [worst, worstWait] = [i, wait];
    }
    if (worst >= 0) return { allowed: false, reason: 'limited', retryAfterSeconds: retryAfter(worstWait), dimension: (named.keys[worst] as BucketKey).dimension };
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i] as Bucket;
      b.tokens -= 1;
      const id = named.ids[i] as string;
      if (!this.#buckets.has(id)) this.#buckets.set(id, b);
    }
    if (this.#buckets.size > this.#max) this.#evict(now);
    return ALLOWED;
  }

  /** The bucket brought up to `now` and marked as just used, or a new full one (not yet stored). */
  #current(id: string, key: BucketKey, now: number): Bucket {
    const b = this.#buckets.get(id);
    if (b === undefined) return { tokens: key.limit.burst, updated: now, rate: key.limit.rate, burst: key.limit.burst };
    this.#buckets.delete(id);
    this.#buckets.set(id, b);
    b.rate = key.limit.rate;
    b.burst = key.limit.burst;
    b.tokens = refilled(b, now);
    if (now > b.updated) b.updated = now;
    return b;
  }

  #evict(now: number): void {
    while (this.#buckets.size > this.#max) {
      let victim: string | undefined;
      let seen = 0;
      for (const [id, b] of this.#buckets) {
        victim ??= id;
        if (refilled(b, now) >= b.burst) {
          victim = id;
          break;
        }
        if (++seen === EVICTION_SCAN) break;
      }
      this.#buckets.delete(victim as string);
    }
  }
}

/** Tokens in `b` at `now`; a clock that went back refills nothing until it passes `updated` again. */
function refilled(b: Bucket, now: number): number {
  const elapsed = now > b.updated ? now - b.updated : 0;
  return Math.min(b.burst, b.tokens + (elapsed / 1000) * b.rate);
}
