/**
 * The revocation list verifiers consult on every token: revoked mandates (every token minted from
 * one dies with it) and revoked token ids. Entries carry a growing sequence number — the revocation
 * epoch — so a verifier only asks for what is new since its last sync: one indexed query per poll in
 * a replica, one HTTP request per poll in a remote gateway (`GET /oauth/revocations?after=N`).
 *
 * Fails closed: when the list could not be synced for `maxStalenessMs`, every check answers
 * "revoked" until a sync succeeds again.
 */
import type { RevocationRecord } from '../../store/store.ts';

export interface RevocationSource {
  /** Entries with seq > afterSeq, oldest first, at most `limit`. */
  list(afterSeq: number, limit: number): Promise<RevocationRecord[]>;
}

export interface RevocationCheck {
  /** True when the token or its mandate is revoked — or when the list is too stale to tell. */
  isRevoked(token: { jti: string; mandate?: string }): boolean;
}

export interface RevocationListOptions {
  source: RevocationSource;
  /** Poll interval; default 500 ms, so every replica sees a revocation within a second. */
  pollMs?: number;
  /** After this long without a successful sync, every token counts as revoked. Default 30 s. */
  maxStalenessMs?: number;
  now?: () => number;
  onError?: (err: unknown) => void;
}

const PAGE = 1000;

export class RevocationList implements RevocationCheck {
  readonly #opts: Required<Omit<RevocationListOptions, 'onError'>> & Pick<RevocationListOptions, 'onError'>;
  readonly #mandates = new Map<string, number>();
  readonly #tokens = new Map<string, number>();
  #epoch = 0;
  #lastSync = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | undefined;
  #syncing: Promise<void> | undefined;
  #next: Promise<void> | undefined;

  constructor(opts: RevocationListOptions) {
    this.#opts = { pollMs: 500, maxStalenessMs: 30_000, now: Date.now, ...opts };
  }

  /** The highest revocation sequence seen. */
  get epoch(): number {
    return this.#epoch;
  }

  isRevoked(token: { jti: string; mandate?: string }): boolean {
    if (this.#opts.now() - this.#lastSync > this.#opts.maxStalenessMs) return true;
    return this.#tokens.has(token.jti) || (token.mandate !== undefined && this.#mandates.has(token.mandate));
  }

  /** True when the list is too stale to be trusted (every check then answers revoked). */
  get stale(): boolean {
    return this.#opts.now() - this.#lastSync > this.#opts.maxStalenessMs;
  }

  /**
   * Fetches everything newer than the epoch. A call made while a fetch is running waits for it and
   * then fetches once more (shared by every caller that arrived meanwhile), so a revocation committed
   * before the call is always seen when it returns.
   */
  sync(): Promise<void> {
    if (!this.#syncing) {
      this.#syncing = this.#sync().finally(() => (this.#syncing = undefined));
      return this.#syncing;
    }
    this.#next ??= this.#syncing.catch(() => undefined).then(() => {
      this.#next = undefined;
      return this.sync();
    });
    return this.#next;
  }

  async #sync(): Promise<void> {
    for (;;) {
      const page = await this.#opts.source.list(this.#epoch, PAGE);
      for (const entry of page) {
        (entry.kind === 'mandate' ? this.#mandates : this.#tokens).set(entry.id, entry.expiresAt.getTime());
        this.#epoch = Math.max(this.#epoch, entry.seq);
      }
      if (page.length < PAGE) break;
    }
    this.#lastSync = this.#opts.now();
    this.#prune();
  }

  #prune(): void {
    const now = this.#opts.now();
    for (const map of [this.#mandates, this.#tokens]) {
      for (const [id, expiresAt] of map) if (expiresAt < now) map.delete(id);
    }
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      this.sync().catch((err: unknown) => this.#opts.onError?.(err));
    }, this.#opts.pollMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
