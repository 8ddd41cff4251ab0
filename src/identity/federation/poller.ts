/**
 * Keeps foreign trust domains' bundles current (SPIFFE Federation §4.1–§4.2, §6.2), from bundle
 * endpoints (`https_web`) or local files. Each bundle is parsed for the trust domain configured for
 * its source, never for one named by the content, and bundles are never merged (§7.3).
 */
import { readFile, stat } from 'node:fs/promises';
import { Agent, type Dispatcher } from 'undici';
import { MandateError, messageOf } from '../../errors.ts';
import type { Bundle } from '../bundle/bundle.ts';
import { MAX_BUNDLE_BYTES, parseSpiffeBundle } from '../bundle/parse.ts';
import { toSpiffeBundleJson } from '../bundle/serialize.ts';
import type { TrustBundleSet } from '../bundle/set.ts';
import { parseTrustDomain } from '../spiffe-id/parse.ts';
import { bundleEndpointUrl } from './endpoint.ts';
import { fetchBundleDocument } from './fetch.ts';

/** Where one foreign trust domain's bundle comes from: a file or a bundle endpoint URL (exactly one). */
export interface FederationSource {
  trustDomain: string;
  bundleFile?: string;
  bundleUrl?: string;
  /** PEM CA certificates trusted for `bundleUrl` instead of the system roots. */
  caFile?: string;
  /** Polling interval when the bundle has no `spiffe_refresh_hint`, seconds. Default 300 (§4.1). */
  defaultRefreshSeconds?: number;
}

export interface FederationManagerOptions {
  sources: FederationSource[];
  bundles: TrustBundleSet;
  /** Called after a changed bundle was put into `bundles`. `source` is the URL or file path. */
  onUpdate?: (trustDomain: string, bundle: Bundle, source: string) => void | Promise<void>;
  /** Every failed load (and every ignored bundle) is reported here once; the last good bundle stays. */
  onError?: (trustDomain: string, err: MandateError) => void;
  /** Deadline for one fetch, redirects and body included. Default 10 s. */
  fetchTimeoutMs?: number;
  now?: () => number;
  /** Polling interval bounds, seconds; defaults 5 and 86400. Tests lower the minimum. */
  minRefreshSeconds?: number;
  maxRefreshSeconds?: number;
}

/** What an operator wants to know about one federation relationship. */
export interface FederationStatus {
  trustDomain: string;
  source: string;
  sequence?: number;
  /** Epoch milliseconds, from `now()`. */
  lastSuccessAt?: number;
  lastError?: string;
  consecutiveFailures: number;
  nextRefreshAt?: number;
}

interface SourceState {
  readonly trustDomain: string;
  readonly source: FederationSource;
  readonly label: string;
  readonly url?: URL;
  dispatcher?: Dispatcher;
  timer?: NodeJS.Timeout;
  inFlight?: Promise<Bundle>;
  failures: number;
  lastSuccessAt?: number;
  lastError?: string;
  nextRefreshAt?: number;
}

const DEFAULT_REFRESH_SECONDS = 300;
const DEFAULT_TIMEOUT_MS = 10_000;

function configError(message: string): MandateError {
  return new MandateError('ERR_CONFIG_INVALID', message);
}

function toMandateError(err: unknown): MandateError {
  return err instanceof MandateError ? err : new MandateError('ERR_INTERNAL', messageOf(err), { cause: err });
}

function sameContent(a: Bundle, b: Bundle): boolean {
  return JSON.stringify(toSpiffeBundleJson(a)) === JSON.stringify(toSpiffeBundleJson(b));
}

function checkSource(source: FederationSource): { trustDomain: string; label: string; url?: URL } {
  let trustDomain: string;
  try {
    trustDomain = parseTrustDomain(source.trustDomain);
  } catch (err) {
    throw configError(`federation: ${messageOf(err)}`);
  }
  const where = `federation ${trustDomain}`;
  if ((source.bundleFile === undefined) === (source.bundleUrl === undefined)) throw configError(`${where}: set exactly one of bundleFile and bundleUrl`);
  if (source.caFile !== undefined && source.bundleUrl === undefined) throw configError(`${where}: caFile applies to bundleUrl only`);
  const refresh = source.defaultRefreshSeconds;
  if (refresh !== undefined && !(Number.isFinite(refresh) && refresh > 0)) throw configError(`${where}: defaultRefreshSeconds must be a positive number`);
  if (source.bundleUrl === undefined) return { trustDomain, label: source.bundleFile! };
  return { trustDomain, label: source.bundleUrl, url: bundleEndpointUrl(source.bundleUrl, where) };
}

async function readBundleFile(path: string): Promise<Uint8Array> {
  try {
    // A size check before reading, so a wrong path (a log file, a device) is not slurped whole.
    if ((await stat(path)).size > MAX_BUNDLE_BYTES) throw new MandateError('ERR_BUNDLE_INVALID', `${path} is larger than ${MAX_BUNDLE_BYTES} bytes`);
    return await readFile(path);
  } catch (err) {
    if (err instanceof MandateError) throw err;
    throw new MandateError('ERR_BUNDLE_UNAVAILABLE', `cannot read bundle file ${path}: ${messageOf(err)}`, { cause: err });
  }
}

/**
 * Loads and refreshes federated bundles into a TrustBundleSet.
 *
 * @example
 *   const federation = new FederationManager({
 *     sources: [{ trustDomain: 'partner.example', bundleUrl: 'https://partner.example/bundle.json' }],
 *     bundles, onError: (td, err) => log.warn({ td, code: err.code }, err.message),
 *   });
 *   await federation.start();  // never throws for a source that is down; it keeps retrying
 *   // ... on shutdown:
 *   federation.stop();
 */
export class FederationManager {
  readonly #opts: FederationManagerOptions;
  readonly #states = new Map<string, SourceState>();
  readonly #now: () => number;
  readonly #min: number;
  readonly #max: number;
  #abort = new AbortController();
  #running = false;

  /** @throws MandateError ERR_CONFIG_INVALID for an unusable source (bad URL, both file and URL, duplicates). */
  constructor(opts: FederationManagerOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#min = opts.minRefreshSeconds ?? 5;
    this.#max = opts.maxRefreshSeconds ?? 86_400;
    if (!(this.#min > 0 && this.#max >= this.#min)) throw configError('federation: refresh bounds must satisfy 0 < min <= max');
    if (opts.fetchTimeoutMs !== undefined && !(opts.fetchTimeoutMs > 0)) throw configError('federation: fetchTimeoutMs must be positive');
    for (const source of opts.sources) {
      const checked = checkSource(source);
      if (this.#states.has(checked.trustDomain)) throw configError(`federation ${checked.trustDomain}: configured twice; one source per trust domain`);
      this.#states.set(checked.trustDomain, { ...checked, source, failures: 0 });
    }
  }

  /**
   * Loads every source once (failures go to onError, not thrown), then polls each at its bundle's
   * `spiffe_refresh_hint` (or the source default), clamped to the refresh bounds; after a failure
   * it retries with exponential backoff, at most one interval apart.
   */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    this.#abort = new AbortController();
    await Promise.all([...this.#states.values()].map((state) => this.#poll(state)));
  }

  /**
   * Loads the bundle of `trustDomain` now and returns the bundle in effect afterwards.
   *
   * @throws MandateError ERR_BUNDLE_UNKNOWN_TRUST_DOMAIN (no source), ERR_TRUST_DOMAIN_INVALID, ERR_BUNDLE_UNAVAILABLE,
   *   ERR_BUNDLE_INVALID (the last good bundle stays in effect).
   */
  async refresh(trustDomain: string): Promise<Bundle> {
    const state = this.#states.get(parseTrustDomain(trustDomain));
    if (state === undefined) throw new MandateError('ERR_BUNDLE_UNKNOWN_TRUST_DOMAIN', `no federation source for trust domain ${JSON.stringify(trustDomain)}`);
    const bundle = await this.#load(state);
    this.#schedule(state);
    return bundle;
  }

  /** Stops polling and cancels fetches in flight. Timers are unref'd, so even without stop() none keeps the process alive. */
  stop(): void {
    this.#running = false;
    this.#abort.abort();
    for (const state of this.#states.values()) {
      clearTimeout(state.timer);
      state.timer = undefined;
      state.nextRefreshAt = undefined;
      void state.dispatcher?.close().catch(() => undefined);
      state.dispatcher = undefined;
    }
  }

  status(): FederationStatus[] {
    return [...this.#states.values()].map((s) => ({
      trustDomain: s.trustDomain,
      source: s.label,
      sequence: this.#opts.bundles.get(s.trustDomain)?.sequence,
      lastSuccessAt: s.lastSuccessAt,
      lastError: s.lastError,
      consecutiveFailures: s.failures,
      nextRefreshAt: s.nextRefreshAt,
    }));
  }

  async #poll(state: SourceState): Promise<void> {
    try {
      await this.#load(state);
    } catch {
      // Already reported through onError by #load.
    }
    this.#schedule(state);
  }

  #schedule(state: SourceState): void {
    clearTimeout(state.timer);
    if (!this.#running) return;
    const hint = this.#opts.bundles.get(state.trustDomain)?.refreshHint ?? state.source.defaultRefreshSeconds ?? DEFAULT_REFRESH_SECONDS;
    const interval = Math.min(this.#max, Math.max(this.#min, hint));
    // §6.2: do not hammer a failing endpoint; back off from the minimum up to the normal interval.
    const delay = state.failures === 0 ? interval : Math.min(interval, this.#min * 2 ** (state.failures - 1));
    // setTimeout fires at once for delays beyond 2^31-1 ms (24.8 days).
    const delayMs = Math.min(delay * 1000, 2 ** 31 - 1);
    state.nextRefreshAt = this.#now() + delayMs;
    state.timer = setTimeout(() => void this.#poll(state), delayMs);
    state.timer.unref();
  }

  /** One load per source at a time; concurrent callers share it. */
  #load(state: SourceState): Promise<Bundle> {
    state.inFlight ??= this.#loadOnce(state).finally(() => {
      state.inFlight = undefined;
    });
    return state.inFlight;
  }

  async #loadOnce(state: SourceState): Promise<Bundle> {
    try {
      const bytes = state.url === undefined ? await readBundleFile(state.label) : await this.#fetch(state, state.url);
      const bundle = await this.#apply(state, parseSpiffeBundle(bytes, state.trustDomain));
      state.failures = 0;
      state.lastSuccessAt = this.#now();
      state.lastError = undefined;
      return bundle;
    } catch (err) {
      const failure = toMandateError(err);
      state.failures += 1;
      state.lastError = failure.message;
      if (!this.#abort.signal.aborted) this.#opts.onError?.(state.trustDomain, failure);
      throw failure;
    }
  }

  async #fetch(state: SourceState, url: URL): Promise<Uint8Array> {
    return fetchBundleDocument(url, {
      dispatcher: await this.#dispatcherFor(state),
      timeoutMs: this.#opts.fetchTimeoutMs ?? DEFAULT_TIMEOUT_MS,
      maxBytes: MAX_BUNDLE_BYTES,
      signal: this.#abort.signal,
    });
  }

  async #dispatcherFor(state: SourceState): Promise<Dispatcher> {
    if (state.dispatcher !== undefined) return state.dispatcher;
    let ca: string | undefined;
    if (state.source.caFile !== undefined) {
      try {
        ca = await readFile(state.source.caFile, 'utf8');
      } catch (err) {
        throw configError(`federation ${state.trustDomain}: cannot read caFile ${state.source.caFile}: ${messageOf(err)}`);
      }
    }
    // With a caFile, only those CAs are trusted for this endpoint; the system roots otherwise.
    state.dispatcher = new Agent(ca === undefined ? {} : { connect: { ca } });
    return state.dispatcher;
  }

  async #apply(state: SourceState, bundle: Bundle): Promise<Bundle> {
    const { bundles, onUpdate, onError } = this.#opts;
    const current = bundles.get(state.trustDomain);
    // §4.2: the sequence orders bundles; an older one (a replay, a stale mirror) must not win.
    if (current?.sequence !== undefined && bundle.sequence !== undefined && bundle.sequence < current.sequence) {
      throw new MandateError('ERR_BUNDLE_INVALID', `${state.label} served spiffe_sequence ${bundle.sequence}, lower than the current ${current.sequence}: ignored`);
    }
    // Keeping the same object keeps verifiers' imported-key caches warm.
    if (current !== undefined && sameContent(current, bundle)) return current;
    bundles.set(bundle);
    try {
      await onUpdate?.(state.trustDomain, bundle, state.label);
    } catch (err) {
      // The bundle is in effect; only the listener (e.g. persisting it) failed.
      onError?.(state.trustDomain, new MandateError('ERR_INTERNAL', `onUpdate for ${state.trustDomain} failed: ${messageOf(err)}`, { cause: err }));
    }
    return bundle;
  }
}
