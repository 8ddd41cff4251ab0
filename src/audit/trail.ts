/**
 * The audit trail: the one place every component writes its record through. It owns the audit log
 * of this deployment, its signing key and its checkpoint schedule, and turns what components report
 * into versioned audit events: time, replica and trace ids filled in, arguments redacted beside the
 * digest of the full arguments.
 *
 * Components either call `record()` and await it (the gateway answers only once its record is
 * durable) or emit MandateEvents into `sink()`, which records them the same way; the sink's promise
 * is there for callers that must wait, and failures are logged for those that do not.
 *
 * @example
 *   const trail = await AuditTrail.start({ store, kek, config: config.audit, logger });
 *   await trail.record({ type: 'gateway.decision', outcome: 'success', agent, tool, arguments: args, decision });
 */
import { trace } from '@opentelemetry/api';
import type { AuditConfig } from '../config/types.ts';
import type { KeyEncryptionKey } from '../identity/keys/kek.ts';
import type { EventSink, MandateEvent } from '../observability/events.ts';
import type { Logger } from '../observability/logger.ts';
import { withSpan } from '../observability/tracing.ts';
import type { Store } from '../store/store.ts';
import { argumentsDigest, AUDIT_EVENT_VERSION, redact, type AuditEvent } from './event.ts';
import { AuditLog, type AuditLogOptions } from './log.ts';
import { loadAuditSigningKey } from './signing-key.ts';

/** What a producer states; the trail adds version, time, replica, trace ids and the digest. */
export type AuditInput = Omit<AuditEvent, 'v' | 'time' | 'replica' | 'argumentsDigest'> & { time?: Date };

export interface AuditTrailOptions {
  store: Store;
  kek: KeyEncryptionKey;
  config: AuditConfig;
  logger: Logger;
  /** Called after each commit (metrics). */
  onCommit?: AuditLogOptions['onCommit'];
  now?: () => Date;
}

/** MandateEvent members that have a place of their own in an audit event. */
const PLACED = new Set(['type', 'outcome', 'spiffeId', 'principal', 'mandateId', 'chain', 'clientId', 'resource', 'error', 'sourceAddress']);

function isPrincipal(value: unknown): value is { issuer: string; subject: string } {
  const p = value as { issuer?: unknown; subject?: unknown } | null;
  return typeof p === 'object' && p !== null && typeof p.issuer === 'string' && typeof p.subject === 'string';
}

/** A MandateEvent as an audit input: known members in their places, the rest kept as detail. */
export function auditInputOf(event: MandateEvent): AuditInput {
  const detail = Object.fromEntries(Object.entries(event).filter(([k, v]) => !PLACED.has(k) && v !== undefined));
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return {
    type: event.type,
    outcome: event.outcome,
    agent: event.spiffeId,
    principal: isPrincipal(event.principal) ? { issuer: event.principal.issuer, subject: event.principal.subject } : undefined,
    mandateId: str(event.mandateId),
    chain: Array.isArray(event.chain) ? event.chain.map(String) : undefined,
    clientId: str(event.clientId),
    resource: str(event.resource),
    result: event.error === undefined ? undefined : { error: event.error },
    sourceAddress: event.sourceAddress,
    detail: Object.keys(detail).length > 0 ? detail : undefined,
  };
}

export class AuditTrail {
  readonly log: AuditLog;
  readonly store: Store;
  /** The C2SP verifier key that checkpoints verify with. */
  readonly verifierKey: string;
  readonly origin: string;
  readonly #opts: AuditTrailOptions;
  readonly #timer: NodeJS.Timeout;
  #checkpointing: Promise<unknown> | undefined;

  private constructor(opts: AuditTrailOptions, log: AuditLog, verifierKey: string) {
    this.#opts = opts;
    this.store = opts.store;
    this.log = log;
    this.verifierKey = verifierKey;
    this.origin = opts.config.origin;
    this.#timer = setInterval(() => void this.#scheduledCheckpoint(), opts.config.checkpointIntervalSeconds * 1000);
    this.#timer.unref();
  }

  /** Loads (or creates) the signing key and opens the log. */
  static async start(opts: AuditTrailOptions): Promise<AuditTrail> {
    const { signer, verifierKey } = await loadAuditSigningKey(opts.store, opts.kek, opts.config.origin);
    const log = await AuditLog.open({
      store: opts.store, origin: opts.config.origin, signer, maxBatch: opts.config.maxBatch, now: opts.now, onCommit: opts.onCommit,
    });
    return new AuditTrail(opts, log, verifierKey);
  }

  /** Records one event; resolves with its index once it is durable, rejects if it could not be. */
  record(input: AuditInput): Promise<{ index: number }> {
    const { time, arguments: args, ...rest } = input;
    const span = trace.getActiveSpan()?.spanContext();
    const event: AuditEvent = {
      ...rest,
      v: AUDIT_EVENT_VERSION,
      time: (time ?? this.#opts.now?.() ?? new Date()).toISOString(),
      replica: this.#opts.config.replica,
      ...(args !== undefined && { argumentsDigest: argumentsDigest(args), arguments: redact(args, this.#opts.config.redact) }),
      traceId: rest.traceId ?? span?.traceId,
      spanId: rest.spanId ?? span?.spanId,
    };
    return withSpan('audit append', { 'mandate.audit.type': event.type }, () => this.log.append(event));
  }

  /** An event sink that records every MandateEvent; its promise settles when the record is durable. */
  sink(): EventSink {
    return {
      emit: (event) => {
        const recorded = this.record(auditInputOf(event)).then(() => undefined);
        recorded.catch((err: Error) => this.#opts.logger.error({ type: event.type, err: err.message }, 'an event could not be written to the audit log'));
        return recorded;
      },
    };
  }

  /** Signs a checkpoint of the log as it is now (one at a time). */
  async checkpoint(): Promise<string> {
    while (this.#checkpointing) await this.#checkpointing.catch(() => undefined);
    const making = this.log.checkpoint();
    this.#checkpointing = making;
    try {
      return await making;
    } finally {
      this.#checkpointing = undefined;
    }
  }

  async #scheduledCheckpoint(): Promise<void> {
    try {
      const latest = await this.#opts.store.latestAuditCheckpoint();
      if ((latest?.size ?? -1) < this.log.size) await this.checkpoint();
    } catch (err) {
      this.#opts.logger.error({ err: (err as Error).message }, 'scheduled audit checkpoint failed');
    }
  }

  /** Stops the schedule, commits what is queued and signs a last checkpoint. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.log.flush();
    await this.#scheduledCheckpoint();
    await this.log.close();
  }
}
