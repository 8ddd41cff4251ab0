/**
 * The identity authority: turns attestations into X.509-SVIDs, renews them, mints JWT-SVIDs, and
 * keeps the registration entries. Transport-free: the HTTP routes (src/server) call these methods
 * with parsed bodies and authenticated callers.
 */
import { MandateError } from '../../errors.ts';
import { emitRefusal, type EventSink } from '../../observability/events.ts';
import { recordAttestation, recordSvidIssued } from '../../observability/metrics.ts';
import { withSpan } from '../../observability/tracing.ts';
import type { RegistrationEntry, Store } from '../../store/store.ts';
import type { AttestationResult, Attestor } from '../attestation/attestor.ts';
import { attest } from '../attestation/catalog.ts';
import { matchEntries } from '../attestation/match.ts';
import { createJoinToken } from '../attestation/join-token/join-token.ts';
import type { Bundle } from '../bundle/bundle.ts';
import { toSpiffeBundleJson, type SpiffeBundleJson } from '../bundle/serialize.ts';
import { TrustBundleSet } from '../bundle/set.ts';
import { issueJwtSvid } from '../jwt-svid/issue.ts';
import { parseSpiffeId, type SpiffeId } from '../spiffe-id/parse.ts';
import { certificatesToPem } from '../x509/pem.ts';
import { issueX509Svid } from '../x509-svid/issue.ts';
import { validateEntryInput, validateJoinTokenInput } from './validate.ts';
import type { KeyManager } from './key-manager.ts';

export interface X509SvidResponse {
  spiffe_id: string;
  x509_svid: string;
  expires_at: string;
  bundle: SpiffeBundleJson;
  federated_bundles: Record<string, SpiffeBundleJson>;
}

export interface IdentityAuthorityOptions {
  trustDomain: string;
  store: Store;
  keys: KeyManager;
  attestors: Map<string, Attestor>;
  /** Foreign trust domains' bundles, kept up to date by federation. Never merged with ours. */
  federated: TrustBundleSet;
  events: EventSink;
  defaults: { x509SvidTtl: number; jwtSvidTtl: number; joinTokenTtl: number };
  now?: () => Date;
}

export interface CallContext {
  sourceAddress?: string;
}

function asObject(body: unknown, what: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new MandateError('ERR_BAD_REQUEST', `${what} must be a JSON object`);
  }
  return body as Record<string, unknown>;
}

export class IdentityAuthority {
  readonly #o: IdentityAuthorityOptions;
  readonly #now: () => Date;
  #bundlesCache: { own: Bundle; federatedVersion: number; set: TrustBundleSet } | null = null;
  #federatedVersion = 0;

  constructor(opts: IdentityAuthorityOptions) {
    this.#o = opts;
    this.#now = opts.now ?? (() => new Date());
  }

  get trustDomain(): string {
    return this.#o.trustDomain;
  }

  /** Call when a federated bundle changed so `bundles()` is rebuilt. */
  federationChanged(): void {
    this.#federatedVersion++;
  }

  /** Our bundle plus every federated one, each under its own trust domain. */
  bundles(): TrustBundleSet {
    const own = this.#o.keys.bundle();
    const cached = this.#bundlesCache;
    if (cached && cached.own === own && cached.federatedVersion === this.#federatedVersion) return cached.set;
    const set = new TrustBundleSet();
    for (const b of this.#o.federated.all()) if (b.trustDomain !== this.#o.trustDomain) set.set(b);
    set.set(own);
    this.#bundlesCache = { own, federatedVersion: this.#federatedVersion, set };
    return set;
  }

  ownBundleJson(): SpiffeBundleJson {
    return toSpiffeBundleJson(this.#o.keys.bundle());
  }

  federatedBundlesJson(): Record<string, SpiffeBundleJson> {
    const out: Record<string, SpiffeBundleJson> = {};
    for (const b of this.#o.federated.all()) if (b.trustDomain !== this.#o.trustDomain) out[b.trustDomain] = toSpiffeBundleJson(b);
    return out;
  }

  /** First issuance: attest, match registration entries, issue an X.509-SVID for the CSR. */
  async attestAndIssue(body: unknown, ctx: CallContext = {}): Promise<X509SvidResponse> {
    const req = asObject(body, 'request body');
    const now = this.#now();
    const type = (req.attestation as { type?: unknown } | null)?.type;
    // Only an enabled attestor's type names spans and metrics: what a caller sends is unbounded.
    const attestor = typeof type === 'string' && this.#o.attestors.has(type) ? type : 'unknown';
    let result: AttestationResult;
    try {
      result = await withSpan(`attestation ${attestor}`, { 'mandate.attestor': attestor }, () => attest(this.#o.attestors, req.attestation, now));
      recordAttestation(attestor, 'success');
    } catch (err) {
      recordAttestation(attestor, 'failure');
      await this.#emitFailure('attestation.failed', err, ctx, { attestor: typeof type === 'string' ? type : undefined });
      throw err;
    }
    await this.#o.events.emit({ type: 'attestation.succeeded', outcome: 'success', actor: `attestor:${result.subject}`, attestor: result.attestor, selectors: result.selectors, sourceAddress: ctx.sourceAddress });
    try {
      const entry = await this.#selectEntry(result, req.spiffe_id);
      return await this.#issueX509(entry, req.csr, ctx, `attestor:${result.subject}`);
    } catch (err) {
      await this.#emitFailure('svid.x509.refused', err, ctx, { actor: `attestor:${result.subject}` });
      throw err;
    }
  }

  /** Renewal by a workload that proved possession of its current SVID. */
  async renewX509(caller: SpiffeId, body: unknown, ctx: CallContext = {}): Promise<X509SvidResponse> {
    const req = asObject(body, 'request body');
    try {
      const entry = await this.#entryFor(caller);
      return await this.#issueX509(entry, req.csr, ctx, `workload:${caller}`);
    } catch (err) {
      await this.#emitFailure('svid.x509.refused', err, ctx, { actor: `workload:${caller}`, spiffeId: caller.toString() });
      throw err;
    }
  }

  /** A JWT-SVID for the caller's own SPIFFE ID and the requested audience. */
  async mintJwtSvid(caller: SpiffeId, body: unknown, ctx: CallContext = {}): Promise<{ spiffe_id: string; token: string; expires_at: string }> {
    const req = asObject(body, 'request body');
    const audience = req.audience;
    if (!Array.isArray(audience) || audience.length === 0 || audience.length > 8 || !audience.every((a) => typeof a === 'string' && a.length > 0 && a.length <= 512)) {
      throw new MandateError('ERR_BAD_REQUEST', 'audience must be a non-empty array of at most 8 non-empty strings');
    }
    const entry = await this.#entryFor(caller);
    const key = this.#o.keys.activeJwtKey();
    const { token, expiresAt } = await withSpan('svid issue jwt', { 'mandate.spiffe_id': caller.toString() }, () =>
      issueJwtSvid({ spiffeId: caller.toString(), audience: audience as string[], ttlSeconds: entry.jwtSvidTtl, key, now: this.#now() }));
    recordSvidIssued('jwt');
    await this.#o.events.emit({ type: 'svid.jwt.issued', outcome: 'success', spiffeId: caller.toString(), actor: `workload:${caller}`, audience, expiresAt: expiresAt.toISOString(), sourceAddress: ctx.sourceAddress });
    return { spiffe_id: caller.toString(), token, expires_at: expiresAt.toISOString() };
  }

  // registration entries

  async createEntry(body: unknown): Promise<RegistrationEntry> {
    const entry = validateEntryInput(body, { trustDomain: this.#o.trustDomain, defaults: this.#o.defaults, now: this.#now() });
    await this.#o.store.createEntry(entry);
    return entry;
  }

  listEntries(): Promise<RegistrationEntry[]> {
    return this.#o.store.listEntries();
  }

  async getEntry(id: string): Promise<RegistrationEntry> {
    const entry = await this.#o.store.getEntry(id);
    if (!entry) throw new MandateError('ERR_NOT_FOUND', `registration entry ${id} does not exist`);
    return entry;
  }

  async deleteEntry(id: string): Promise<void> {
    if (!(await this.#o.store.deleteEntry(id))) throw new MandateError('ERR_NOT_FOUND', `registration entry ${id} does not exist`);
  }

  async createJoinToken(body: unknown): Promise<{ token: string; id: string; entry_id: string; spiffe_id: string; expires_at: string }> {
    const input = validateJoinTokenInput(body, this.#o.defaults.joinTokenTtl);
    let entryId = input.entryId;
    if (!entryId) {
      const entries = await this.#o.store.listEntriesBySpiffeId(input.spiffeId as string);
      if (entries.length === 0) throw new MandateError('ERR_NOT_FOUND', `no registration entry for ${input.spiffeId}`);
      if (entries.length > 1) throw new MandateError('ERR_AMBIGUOUS_ENTRY', `${entries.length} registration entries for ${input.spiffeId}: pass entry_id`);
      entryId = (entries[0] as RegistrationEntry).id;
    }
    const entry = await this.getEntry(entryId);
    const created = await createJoinToken(this.#o.store, { entryId, ttlSeconds: input.ttlSeconds, now: this.#now() });
    return { token: created.token, id: created.id, entry_id: entryId, spiffe_id: entry.spiffeId, expires_at: created.expiresAt.toISOString() };
  }

  async #selectEntry(result: AttestationResult, requested: unknown): Promise<RegistrationEntry> {
    let entries = matchEntries(await this.#o.store.listEntries(), result);
    if (requested !== undefined) {
      if (typeof requested !== 'string') throw new MandateError('ERR_BAD_REQUEST', 'spiffe_id must be a string');
      const id = parseSpiffeId(requested).toString();
      entries = entries.filter((e) => e.spiffeId === id);
    }
    if (entries.length === 0) {
      throw new MandateError('ERR_NO_MATCHING_ENTRY', `no registration entry matches this attestation (selectors: ${result.selectors.join(', ') || 'none'})`);
    }
    const ids = new Set(entries.map((e) => e.spiffeId));
    if (ids.size > 1) {
      throw new MandateError('ERR_AMBIGUOUS_ENTRY', `attestation matches ${ids.size} SPIFFE IDs (${[...ids].join(', ')}): pass spiffe_id to choose one`);
    }
    return entries[0] as RegistrationEntry;
  }

  /** The entry a workload renews under: its SPIFFE ID must still be registered (deleting the entry revokes renewal). */
  async #entryFor(caller: SpiffeId): Promise<RegistrationEntry> {
    const entries = await this.#o.store.listEntriesBySpiffeId(caller.toString());
    if (entries.length === 0) throw new MandateError('ERR_NO_MATCHING_ENTRY', `${caller} is no longer registered`);
    return entries[0] as RegistrationEntry;
  }

  async #issueX509(entry: RegistrationEntry, csr: unknown, ctx: CallContext, actor: string): Promise<X509SvidResponse> {
    if (typeof csr !== 'string') throw new MandateError('ERR_CSR_INVALID', 'csr must be a PEM string');
    const spiffeId = parseSpiffeId(entry.spiffeId);
    const svid = await withSpan('svid issue x509', { 'mandate.spiffe_id': entry.spiffeId }, () =>
      issueX509Svid(this.#o.keys.activeCa(), { csr, spiffeId, ttlSeconds: entry.x509SvidTtl, now: this.#now() }));
    recordSvidIssued('x509');
    await this.#o.events.emit({ type: 'svid.x509.issued', outcome: 'success', spiffeId: entry.spiffeId, actor, entryId: entry.id, serial: svid.serialNumber, expiresAt: svid.notAfter.toISOString(), sourceAddress: ctx.sourceAddress });
    return {
      spiffe_id: entry.spiffeId,
      x509_svid: certificatesToPem(svid.chain),
      expires_at: svid.notAfter.toISOString(),
      bundle: this.ownBundleJson(),
      federated_bundles: this.federatedBundlesJson(),
    };
  }

  #emitFailure(type: string, err: unknown, ctx: CallContext, extra: Record<string, unknown>): Promise<void> {
    const error = err instanceof MandateError ? err.code : 'ERR_INTERNAL';
    return emitRefusal(this.#o.events, { type, outcome: 'failure', error, reason: err instanceof Error ? err.message : String(err), sourceAddress: ctx.sourceAddress, ...extra });
  }
}
