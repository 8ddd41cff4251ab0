/**
 * Replay guards: remember one-time identifiers (DPoP proof `jti`s, RFC 9449 §11.1) for as long as the
 * thing they identify could still be accepted, and say whether an identifier was seen before.
 *
 * MemoryReplayGuard keeps them in this process, bounded. When the bound is reached and nothing has
 * expired yet it refuses new identifiers instead of evicting old ones: evicting a live entry would
 * let that identifier be accepted a second time, and anyone able to make proofs with their own key
 * could flood the guard to push out a victim's `jti` and then replay the victim's captured proof.
 * Refusing turns such a flood into a short denial of service (entries expire after the proof window)
 * instead of a bypass. Size `maxEntries` for the peak proof rate times the proof window.
 */

export interface ReplayGuard {
  /**
   * Records `id` until `expiresAtMs`. Returns true if `id` is new, false if it was already recorded
   * and has not expired (or the guard cannot record it, which must count as "seen").
   */
  remember(id: string, expiresAtMs: number, nowMs: number): boolean;
}

export const DEFAULT_MAX_REPLAY_ENTRIES = 100_000;

interface Entry {
  expiresAtMs: number;
  id: string;
}

/** An in-process ReplayGuard; enough for one replica. Replicas behind one name need a shared guard. */
export class MemoryReplayGuard implements ReplayGuard {
  readonly maxEntries: number;
  readonly #live = new Set<string>();
  /** Min-heap on expiresAtMs: expired entries are dropped from the top in O(log n) each. */
  readonly #heap: Entry[] = [];

  constructor(opts: { maxEntries?: number } = {}) {
    const max = opts.maxEntries ?? DEFAULT_MAX_REPLAY_ENTRIES;
    if (!Number.isSafeInteger(max) || max < 1) throw new TypeError(`maxEntries must be a positive integer, got ${max}`);
    this.maxEntries = max;
  }

  /** Identifiers currently remembered (expired ones are dropped on the next `remember`). */
  get size(): number {
    return this.#live.size;
  }

  /**
   * @example guard.remember(`${jkt}:${jti}`, (iat + 90) * 1000, Date.now()) // true once, then false
   */
  remember(id: string, expiresAtMs: number, nowMs: number): boolean {
    this.#sweep(nowMs);
    if (this.#live.has(id)) return false;
    // Already expired: nothing could accept it any more, so there is nothing to remember.
    if (expiresAtMs <= nowMs) return true;
    if (this.#live.size >= this.maxEntries) return false;
    this.#live.add(id);
    this.#push({ expiresAtMs, id });
    return true;
  }

  #sweep(nowMs: number): void {
    while (this.#heap.length > 0 && (this.#heap[0] as Entry).expiresAtMs <= nowMs) {
      this.#live.delete(this.#pop().id);
    }
  }

  #push(entry: Entry): void {
    const heap = this.#heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((heap[parent] as Entry).expiresAtMs <= entry.expiresAtMs) break;
      heap[i] = heap[parent] as Entry;
      i = parent;
    }
    heap[i] = entry;
  }

  #pop(): Entry {
    const heap = this.#heap;
    const top = heap[0] as Entry;
    const last = heap.pop() as Entry;
    if (heap.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && (heap[right] as Entry).expiresAtMs < (heap[left] as Entry).expiresAtMs ? right : left;
      if ((heap[child] as Entry).expiresAtMs >= last.expiresAtMs) break;
      heap[i] = heap[child] as Entry;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}
