/**
 * The `mandate agent` process: attests once to the Mandate server, keeps the workload's private key
 * local, rotates the X.509-SVID at half-life (new key, new CSR, renewal authenticated by the current
 * SVID), and hands the identity to workloads over the SPIFFE Workload API and/or as files.
 *
 * When renewal fails it retries with backoff and keeps serving the current SVID until it expires;
 * from then on `current()` is null and the Workload API answers Unavailable. A join token works once,
 * so an expired agent must be restarted with a new attestation.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MandateError, isMandateError, messageOf } from '../../errors.ts';
import type { Logger } from '../../observability/logger.ts';
import { IdentityClient, type Attestation, type IdentityApi, type X509SvidResponse } from '../../sdk/identity/client.ts';
import { generateKeyAndCsr, type WorkloadKeyType } from '../../sdk/identity/csr.ts';
import type { Bundle } from '../bundle/bundle.ts';
import { toSpiffeBundleJson } from '../bundle/serialize.ts';
import { TrustBundleSet } from '../bundle/set.ts';
import { assertKeyMatches } from '../x509-svid/parse.ts';
import { verifyX509Svid } from '../x509-svid/verify.ts';
import { startWorkloadApi, type WorkloadApiServer } from '../workload-api/server.ts';
import type { SvidSource, WorkloadIdentity } from '../workload-api/source.ts';
import { FEDERATED_DIR, writeIdentityFiles } from './files.ts';
import { refreshDelay, renewalDelay, retryDelay, withJitter } from './schedule.ts';

export interface WorkloadAgentOptions {
  /** Base URL of the Mandate server. Required unless `client` is given. */
  serverUrl?: string;
  /** CA certificate (PEM file) of the server's TLS certificate. */
  caFile?: string;
  /** Per-request timeout towards the server. */
  timeoutMs?: number;
  attestation: Attestation;
  /** Ask for this SPIFFE ID when the attestation matches several registration entries. */
  spiffeId?: string;
  /** Serve the SPIFFE Workload API on this Unix socket. */
  socketPath?: string;
  /** Write svid.pem, svid.key, bundle.pem and federated/<td>.pem here. */
  outDir?: string;
  keyType?: WorkloadKeyType;
  logger?: Logger;
  /** Clock used to judge expiry (tests move it). */
  now?: () => Date;
  /** The server API to use instead of an HTTP client to `serverUrl` (embedding, tests). */
  client?: IdentityApi;
}

/** A running agent. It is itself the SvidSource behind its Workload API. */
export interface WorkloadAgent extends SvidSource {
  /** Stops timers, the Workload API and the connection to the server. Idempotent. */
  stop(): Promise<void>;
}

/** A JWT-SVID is reused until half its lifetime has passed. */
interface CachedJwt {
  spiffeId: string;
  token: string;
  refreshAt: number;
}
const MAX_CACHED_JWTS = 256;

interface Held {
  identity: WorkloadIdentity;
  notAfter: Date;
}

/** Canonical text of a bundle set, to tell a real change from a refresh that changed nothing. */
function bundlesFingerprint(bundles: TrustBundleSet): string {
  return JSON.stringify(bundles.all().map((b) => [b.trustDomain, toSpiffeBundleJson(b)]).sort());
}

function bundleSet(bundles: readonly Bundle[]): TrustBundleSet {
  const set = new TrustBundleSet();
  for (const b of bundles) set.set(b);
  return set;
}

class Agent implements WorkloadAgent {
  readonly #api: IdentityApi;
  readonly #ownsClient: IdentityClient | undefined;
  readonly #opts: WorkloadAgentOptions;
  readonly #now: () => Date;
  readonly #log: Logger | undefined;
  readonly #listeners = new Set<(id: WorkloadIdentity) => void>();
  readonly #jwts = new Map<string, CachedJwt>();
  #held: Held | null = null;
  #renewTimer: NodeJS.Timeout | undefined;
  #refreshTimer: NodeJS.Timeout | undefined;
  #workloadApi: WorkloadApiServer | undefined;
  #stopped = false;
  #started = false;
  #stopping: Promise<void> | undefined;
  /** Serialises identity changes (renewal, bundle refresh) and their file writes. */
  #queue: Promise<void> = Promise.resolve();

  constructor(opts: WorkloadAgentOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? (() => new Date());
    this.#log = opts.logger;
    if (opts.client) {
      this.#api = opts.client;
    } else {
      if (opts.serverUrl === undefined) throw new MandateError('ERR_CONFIG_INVALID', 'the agent needs serverUrl (the Mandate server) or a client');
      this.#ownsClient = new IdentityClient({ serverUrl: opts.serverUrl, ...(opts.caFile !== undefined ? { caFile: opts.caFile } : {}), ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) });
      this.#api = this.#ownsClient;
    }
  }

  /**
   * Checks the output directory and opens the socket before attesting, so a configuration error does
   * not burn a single-use join token. Until attestation completes the Workload API answers Unavailable.
   */
  async start(): Promise<void> {
    if (this.#opts.outDir !== undefined) {
      try {
        await mkdir(join(this.#opts.outDir, FEDERATED_DIR), { recursive: true });
      } catch (err) {
        throw new MandateError('ERR_CONFIG_INVALID', `outDir ${this.#opts.outDir} cannot be created: ${messageOf(err)}`, { cause: err });
      }
    }
    if (this.#opts.socketPath !== undefined) {
      this.#workloadApi = await startWorkloadApi({ socketPath: this.#opts.socketPath, source: this, ...(this.#log ? { logger: this.#log } : {}) });
    }
    const { privateKey, csrPem } = await generateKeyAndCsr(this.#opts.keyType);
    const svid = await this.#api.attest(this.#opts.attestation, csrPem, this.#opts.spiffeId);
    await this.#accept(svid, privateKey);
    this.#started = true;
    this.#log?.info({ spiffeId: svid.spiffeId.toString(), expiresAt: svid.expiresAt.toISOString() }, 'agent attested and holds an X.509-SVID');
  }

  // ---- SvidSource ----

  current(): WorkloadIdentity | null {
    const held = this.#held;
    if (!held || this.#now() >= held.notAfter) return null;
    return held.identity;
  }

  onUpdate(listener: (id: WorkloadIdentity) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  async fetchJwtSvid(audience: string[]): Promise<{ spiffeId: string; token: string }> {
    const id = this.current();
    if (!id) throw new MandateError('ERR_X509_SVID_INVALID', 'the agent holds no valid X.509-SVID to authenticate with');
    const key = `${id.spiffeId}\n${[...new Set(audience)].sort().join('\n')}`;
    const cached = this.#jwts.get(key);
    if (cached && this.#now().getTime() < cached.refreshAt) return { spiffeId: cached.spiffeId, token: cached.token };
    const issuedAt = this.#now().getTime();
    const jwt = await this.#api.fetchJwtSvid({ chain: id.chain, privateKey: id.privateKey }, audience);
    if (jwt.spiffeId.toString() !== id.spiffeId) {
      throw new MandateError('ERR_SERVER_RESPONSE_INVALID', `server issued a JWT-SVID for ${jwt.spiffeId}, but the agent is ${id.spiffeId}`);
    }
    if (this.#jwts.size >= MAX_CACHED_JWTS) this.#jwts.delete(this.#jwts.keys().next().value as string);
    this.#jwts.set(key, { spiffeId: id.spiffeId, token: jwt.token, refreshAt: issuedAt + (jwt.expiresAt.getTime() - issuedAt) / 2 });
    return { spiffeId: id.spiffeId, token: jwt.token };
  }

  // ---- lifecycle ----

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#stopped = true;
      clearTimeout(this.#renewTimer);
      clearTimeout(this.#refreshTimer);
      this.#listeners.clear();
      await this.#workloadApi?.close();
      await this.#queue.catch(() => undefined);
      await this.#ownsClient?.close();
      this.#log?.info('agent stopped');
    })();
    return this.#stopping;
  }

  /** Checks a freshly issued SVID against our key and its bundle, then makes it current. */
  async #accept(svid: X509SvidResponse, privateKey: KeyObject): Promise<void> {
    const leaf = svid.chain[0] as X509Certificate;
    // The server must have certified our key, not some other one.
    assertKeyMatches(leaf, privateKey);
    const bundles = bundleSet([svid.bundle, ...svid.federatedBundles]);
    verifyX509Svid(svid.chain, bundles, { now: this.#now() });
    const previous = this.#held?.identity.spiffeId;
    if (previous !== undefined && previous !== svid.spiffeId.toString()) {
      this.#log?.warn({ previous, spiffeId: svid.spiffeId.toString() }, 'the server renewed the SVID under a different SPIFFE ID');
    }
    const identity: WorkloadIdentity = { spiffeId: svid.spiffeId.toString(), chain: svid.chain, privateKey, bundles, trustDomain: svid.spiffeId.trustDomain };
    await this.#publish({ identity, notAfter: svid.expiresAt });
    this.#scheduleRenewal(new Date(leaf.validFrom), svid.expiresAt);
    this.#scheduleRefresh(svid.bundle.refreshHint);
  }

  /**
   * Makes `held` current, tells the streams, writes the files. A write failure is thrown at start-up
   * (a bad outDir is a configuration error) and logged afterwards: a new SVID would not fix a disk.
   */
  async #publish(held: Held): Promise<void> {
    this.#held = held;
    for (const listener of [...this.#listeners]) {
      try {
        listener(held.identity);
      } catch (err) {
        this.#log?.warn({ err: messageOf(err) }, 'identity update listener failed');
      }
    }
    if (this.#opts.outDir === undefined) return;
    try {
      await writeIdentityFiles(this.#opts.outDir, held.identity);
    } catch (err) {
      if (!this.#started) throw err;
      this.#log?.error({ outDir: this.#opts.outDir, err: messageOf(err) }, 'identity files could not be written; the Workload API still serves the new identity');
    }
  }

  #run(task: () => Promise<void>): void {
    this.#queue = this.#queue.then(task).catch((err: unknown) => {
      this.#log?.error({ err: messageOf(err) }, 'agent task failed');
    });
  }

  #scheduleRenewal(notBefore: Date, notAfter: Date): void {
    clearTimeout(this.#renewTimer);
    if (this.#stopped) return;
    const delay = renewalDelay(notBefore, notAfter, this.#now());
    this.#log?.debug({ inMs: delay }, 'X.509-SVID renewal scheduled');
    this.#renewTimer = setTimeout(() => this.#run(() => this.#renew(1)), clampTimer(delay));
  }

  async #renew(attempt: number): Promise<void> {
    const held = this.#held;
    if (this.#stopped || !held) return;
    try {
      const { privateKey, csrPem } = await generateKeyAndCsr(this.#opts.keyType);
      const svid = await this.#api.renewX509({ chain: held.identity.chain, privateKey: held.identity.privateKey }, csrPem);
      if (this.#stopped) return;
      await this.#accept(svid, privateKey);
      this.#log?.info({ spiffeId: svid.spiffeId.toString(), expiresAt: svid.expiresAt.toISOString() }, 'X.509-SVID renewed');
    } catch (err) {
      if (this.#stopped) return;
      const remaining = held.notAfter.getTime() - this.#now().getTime();
      const code = isMandateError(err) ? err.code : undefined;
      if (remaining <= 0) {
        this.#log?.error({ code, err: messageOf(err), attempt }, 'X.509-SVID expired before it could be renewed; restart the agent with a new attestation');
        return;
      }
      const delay = withJitter(retryDelay(attempt, remaining), Math.random());
      this.#log?.warn({ code, err: messageOf(err), attempt, retryInMs: delay }, 'X.509-SVID renewal failed; serving the current SVID and retrying');
      this.#renewTimer = setTimeout(() => this.#run(() => this.#renew(attempt + 1)), clampTimer(delay));
    }
  }

  #scheduleRefresh(hintSeconds: number | undefined): void {
    clearTimeout(this.#refreshTimer);
    const delay = refreshDelay(hintSeconds);
    if (this.#stopped || delay === null) return;
    this.#refreshTimer = setTimeout(() => this.#run(() => this.#refreshBundles()), clampTimer(delay));
  }

  /** GET /v1/bundles at the refresh hint; pushes an update only when a bundle really changed. */
  async #refreshBundles(): Promise<void> {
    const held = this.#held;
    if (this.#stopped || !held) return;
    let hint = held.identity.bundles.get(held.identity.trustDomain)?.refreshHint;
    try {
      const fetched = await this.#api.bundles();
      if (this.#stopped || this.#held !== held) return;
      if (fetched.trustDomain !== held.identity.trustDomain) {
        throw new MandateError('ERR_SERVER_RESPONSE_INVALID', `server now names trust domain ${fetched.trustDomain}, the agent belongs to ${held.identity.trustDomain}`);
      }
      const bundles = bundleSet(fetched.bundles);
      hint = bundles.get(held.identity.trustDomain)?.refreshHint;
      if (bundlesFingerprint(bundles) !== bundlesFingerprint(held.identity.bundles)) {
        try {
          verifyX509Svid(held.identity.chain, bundles, { now: this.#now() });
        } catch (err) {
          this.#log?.warn({ err: messageOf(err) }, 'the refreshed bundle no longer verifies the current SVID; it will be replaced at renewal');
        }
        await this.#publish({ identity: { ...held.identity, bundles }, notAfter: held.notAfter });
        this.#log?.info({ trustDomains: bundles.all().map((b) => b.trustDomain) }, 'trust bundles updated');
      }
    } catch (err) {
      this.#log?.warn({ code: isMandateError(err) ? err.code : undefined, err: messageOf(err) }, 'bundle refresh failed; keeping the current bundles');
    }
    this.#scheduleRefresh(hint);
  }
}

/** setTimeout fires at once for delays above 2^31-1 ms; long waits are cut and simply fire early. */
function clampTimer(ms: number): number {
  return Math.min(Math.max(ms, 0), 2_147_483_647);
}

/**
 * Starts the agent: generates a key, attests once, then serves and rotates the identity. Rejects
 * (with the server's error code) when the first attestation fails.
 *
 * @example
 *   const agent = await startWorkloadAgent({
 *     serverUrl: 'https://mandate.example.org', caFile: '/etc/mandate/ca.pem',
 *     attestation: { type: 'join_token', token: process.env.MANDATE_JOIN_TOKEN! },
 *     socketPath: '/run/mandate/agent.sock', outDir: '/run/mandate/svid',
 *   });
 *   process.on('SIGTERM', () => void agent.stop());
 */
export async function startWorkloadAgent(opts: WorkloadAgentOptions): Promise<WorkloadAgent> {
  const agent = new Agent(opts);
  try {
    await agent.start();
  } catch (err) {
    await agent.stop();
    throw err;
  }
  return agent;
}
