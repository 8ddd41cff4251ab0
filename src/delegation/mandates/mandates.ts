/**
 * Mandates: a principal's standing grant to an agent, and the questions asked of them — may this
 * agent act for this principal, with these scopes, at this resource, right now?
 *
 * Granting checks every field against the configuration (known scopes and resources, lifetime and
 * depth limits); revoking is one store transaction that also appends to the revocation list, so
 * every token minted from the mandate dies with it (see tokens/revocation.ts).
 */
import { randomBytes } from 'node:crypto';
import type { DelegationConfig } from '../../config/types.ts';
import { MandateError } from '../../errors.ts';
import type { EventSink } from '../../observability/events.ts';
import type { MandateFilter, MandateRecord, PrincipalRef, Store } from '../../store/store.ts';
import { agentMatches, parseAgentPattern } from './agent-pattern.ts';

export interface GrantMandateInput {
  principal: PrincipalRef;
  agent: string;
  scopes: string[];
  resources: string[];
  constraints?: Record<string, unknown>;
  /** Seconds; default `delegation.mandates.default_ttl`, at most `max_ttl`. */
  ttlSeconds?: number;
  maxDepth?: number;
  origin: MandateRecord['origin'];
  clientId?: string | null;
}

/** RFC 6749 §3.3 scope-token characters. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/;
const MAX_DEPTH = 8;
/** Every mandate id starts with this. */
export const MANDATE_ID_PREFIX = 'mdt_';
const MAX_CONSTRAINTS_BYTES = 16 * 1024;

function bad(message: string): MandateError {
  return new MandateError('ERR_BAD_REQUEST', message);
}

export function mandateIsLive(m: MandateRecord, now: Date): boolean {
  return m.status === 'active' && m.expiresAt.getTime() > now.getTime();
}

export class Mandates {
  constructor(
    private readonly deps: {
      store: Store;
      config: Pick<DelegationConfig, 'mandates' | 'scopes' | 'resources'>;
      events: EventSink;
      /** Called after a revocation is committed (the revocation list syncs at once). */
      onRevoked?: () => Promise<void> | void;
      now?: () => Date;
    },
  ) {}

  #now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /** Description of a scope for people (consent page, listings). */
  describeScope(scope: string): string {
    return this.deps.config.scopes[scope] ?? scope;
  }

  /** The resources a mandate may name: absolute URIs without fragment, known when resources are configured. */
  checkResources(input: string[]): string[] {
    const knownResources = this.deps.config.resources;
    const resources = [...new Set(input)];
    if (resources.length === 0) throw bad('a mandate needs at least one resource');
    for (const resource of resources) {
      if (typeof resource !== 'string' || !URL.canParse(resource)) throw bad(`resource ${JSON.stringify(resource)} is not an absolute URI (RFC 8707 §2)`);
      if (resource.includes('#')) throw bad(`resource ${resource} must not contain a fragment (RFC 8707 §2)`);
      if (knownResources.length > 0 && !knownResources.some((r) => r.uri === resource)) {
        throw bad(`unknown resource ${resource} (known: ${knownResources.map((r) => r.uri).join(', ')})`);
      }
    }
    return resources;
  }

  /** The scopes a mandate may grant at these (checked) resources: valid, known, and applying to one of them. */
  checkScopes(input: string[], resources: string[]): string[] {
    const { scopes: known, resources: knownResources } = this.deps.config;
    const scopes = [...new Set(input)];
    if (scopes.length === 0) throw bad('a mandate needs at least one scope');
    for (const scope of scopes) {
      if (typeof scope !== 'string' || !SCOPE_TOKEN.test(scope)) throw bad(`scope ${JSON.stringify(scope)} is not a valid scope token (RFC 6749 §3.3)`);
      if (Object.keys(known).length > 0 && !(scope in known)) throw bad(`unknown scope "${scope}" (known: ${Object.keys(known).join(', ')})`);
      if (knownResources.length > 0 && !resources.some((uri) => knownResources.find((r) => r.uri === uri)?.scopes.includes(scope))) {
        throw bad(`scope "${scope}" does not apply to any of the mandate's resources`);
      }
    }
    return scopes;
  }

  /** Checks a grant and fills defaults; ERR_BAD_REQUEST naming the first problem. */
  validate(input: GrantMandateInput): Omit<MandateRecord, 'id' | 'createdAt' | 'status' | 'revokedAt' | 'revokedBy'> {
    const { mandates } = this.deps.config;
    const agent = parseAgentPattern(input.agent);
    if (!input.principal?.issuer || !input.principal.subject) throw bad('principal needs an issuer and a subject');
    if (!Array.isArray(input.scopes)) throw bad('scopes must be a list');
    if (!Array.isArray(input.resources)) throw bad('resources must be a list');
    const resources = this.checkResources(input.resources);
    const scopes = this.checkScopes(input.scopes, resources);
    const ttl = input.ttlSeconds ?? mandates.defaultTtl;
    if (!Number.isFinite(ttl) || ttl <= 0) throw bad('the mandate lifetime must be a positive number of seconds');
    if (ttl > mandates.maxTtl) throw bad(`the mandate lifetime ${ttl}s exceeds the maximum of ${mandates.maxTtl}s (delegation.mandates.max_ttl)`);
    const maxDepth = input.maxDepth ?? mandates.defaultMaxDepth;
    if (!Number.isSafeInteger(maxDepth) || maxDepth < 0 || maxDepth > MAX_DEPTH) throw bad(`max depth must be an integer from 0 to ${MAX_DEPTH}`);
    const constraints = input.constraints ?? {};
    if (typeof constraints !== 'object' || constraints === null || Array.isArray(constraints)) throw bad('constraints must be a JSON object');
    if (Buffer.byteLength(JSON.stringify(constraints)) > MAX_CONSTRAINTS_BYTES) throw bad(`constraints exceed ${MAX_CONSTRAINTS_BYTES} bytes`);
    return {
      principal: { issuer: input.principal.issuer, subject: input.principal.subject, name: input.principal.name || input.principal.subject },
      agent, scopes, resources, constraints, maxDepth,
      origin: input.origin,
      clientId: input.clientId ?? null,
      expiresAt: new Date(this.#now().getTime() + ttl * 1000),
    };
  }

  async grant(input: GrantMandateInput, actor: string): Promise<MandateRecord> {
    const fields = this.validate(input);
    const mandate: MandateRecord = {
      ...fields,
      id: `${MANDATE_ID_PREFIX}${randomBytes(16).toString('base64url')}`,
      createdAt: this.#now(),
      status: 'active',
      revokedAt: null,
      revokedBy: null,
    };
    await this.deps.store.createMandate(mandate);
    await this.deps.events.emit({
      type: 'mandate.granted', outcome: 'success', actor,
      mandateId: mandate.id, spiffeId: mandate.agent, principal: { issuer: mandate.principal.issuer, subject: mandate.principal.subject },
      scopes: mandate.scopes, resources: mandate.resources, origin: mandate.origin, clientId: mandate.clientId,
      expiresAt: mandate.expiresAt.toISOString(), maxDepth: mandate.maxDepth,
    });
    return mandate;
  }

  get(id: string): Promise<MandateRecord | null> {
    return this.deps.store.getMandate(id);
  }

  list(filter: MandateFilter): Promise<MandateRecord[]> {
    return this.deps.store.listMandates(filter);
  }

  #sweptUntil: Date | undefined;

  /**
   * Records `mandate.expired` for each active mandate whose expiry passed since the last sweep (run
   * from the authority's housekeeping tick). The first sweep of a process starts where the audit
   * log's last event left off, so mandates that expired while Mandate was down are recorded too.
   * Returns how many were recorded.
   */
  async sweepExpired(): Promise<number> {
    const now = this.#now();
    const since = this.#sweptUntil ?? (await this.#lastRecordTime()) ?? now;
    const expired = since < now ? await this.deps.store.listMandates({ status: 'active', liveAt: since, expiredBy: now }) : [];
    for (const m of expired) {
      await this.deps.events.emit({
        type: 'mandate.expired', outcome: 'success', mandateId: m.id, spiffeId: m.agent,
        principal: { issuer: m.principal.issuer, subject: m.principal.subject }, expiresAt: m.expiresAt.toISOString(),
      });
    }
    this.#sweptUntil = since < now ? now : since;
    return expired.length;
  }

  async #lastRecordTime(): Promise<Date | undefined> {
    const size = await this.deps.store.auditSize();
    return size === 0 ? undefined : (await this.deps.store.getAuditRecords(size - 1, size))[0]?.time;
  }

  /**
   * Revokes a mandate. `by` is `admin` or the principal's subject; a principal may only revoke their
   * own mandates (`owner` set): someone else's is reported as not found.
   */
  async revoke(id: string, by: string, owner?: { issuer: string; subject: string }): Promise<MandateRecord> {
    const existing = await this.deps.store.getMandate(id);
    if (!existing || (owner && (existing.principal.issuer !== owner.issuer || existing.principal.subject !== owner.subject))) {
      throw new MandateError('ERR_NOT_FOUND', `no mandate ${id}`);
    }
    const result = await this.deps.store.revokeMandate(id, by, this.#now());
    if (!result) throw new MandateError('ERR_NOT_FOUND', `no mandate ${id}`);
    const { mandate, revoked } = result;
    if (revoked) {
      await this.deps.events.emit({
        type: 'mandate.revoked', outcome: 'success', actor: by, mandateId: id, spiffeId: mandate.agent,
        principal: { issuer: mandate.principal.issuer, subject: mandate.principal.subject },
      });
      await this.deps.onRevoked?.();
    }
    return mandate;
  }

  /**
   * The live mandates of a principal that name the agent, newest first. `mandateId` narrows to one
   * (a client that names the mandate it uses). The caller then checks resource and scopes, so it can
   * say which of the two a refusal is about.
   */
  async forAgent(principal: { issuer: string; subject: string }, agent: string, mandateId?: string): Promise<MandateRecord[]> {
    const now = this.#now();
    const candidates = mandateId
      ? [await this.deps.store.getMandate(mandateId)].filter((m): m is MandateRecord => m !== null)
      : await this.deps.store.listMandates({ principalIssuer: principal.issuer, principalSubject: principal.subject, status: 'active', liveAt: now, limit: 500 });
    return candidates.filter((m) =>
      mandateIsLive(m, now) &&
      m.principal.issuer === principal.issuer && m.principal.subject === principal.subject &&
      agentMatches(m.agent, agent));
  }
}
