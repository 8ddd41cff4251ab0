import type { Logger } from './logger.ts';

/**
 * A security-relevant event (attestation, SVID issuance, token exchange, admin action...). Events go
 * to the structured log and to the audit log (src/audit/trail.ts). Never put a secret or token here.
 */
export interface MandateEvent {
  /** Dotted type, e.g. `attestation.succeeded`, `svid.x509.issued`, `admin.entry.created`. */
  type: string;
  outcome: 'success' | 'failure';
  /** The SPIFFE ID concerned, when known. */
  spiffeId?: string;
  /** Who acted: `admin:<token id>`, `workload:<spiffe id>`, `attestor:<subject>`. */
  actor?: string;
  /** Error code on failure (same as in the HTTP body). */
  error?: string;
  reason?: string;
  sourceAddress?: string;
  [detail: string]: unknown;
}

/**
 * Where events go. `emit` may return a promise that settles once the event is durably recorded (the
 * audit log's sink does): a caller that must not answer before its record exists awaits it, and a
 * rejection means the record was not made. Callers that do not await lose nothing: the sink reports
 * its own failures.
 */
export interface EventSink {
  emit(event: MandateEvent): void | Promise<void>;
}

/**
 * Emits the event of a refusal and waits until the sink has it (the audit log's: durably), so the
 * record exists before the refused caller hears back. A sink that fails reports it itself; the
 * refusal is answered either way.
 *
 * @example
 *   await emitRefusal(events, { type: 'token.refused', outcome: 'failure', error: err.error, reason: err.message });
 *   throw err;
 */
export async function emitRefusal(sink: EventSink, event: MandateEvent): Promise<void> {
  try {
    await sink.emit(event);
  } catch {
    // reported by the sink (see above)
  }
}

/** Writes each event as one structured log line at info (success) or warn (failure). */
export function logEventSink(logger: Logger): EventSink {
  return {
    emit(event) {
      const level = event.outcome === 'success' ? 'info' : 'warn';
      logger[level]({ event }, event.type);
    },
  };
}

/** Collects events in memory; for tests. */
export class MemoryEventSink implements EventSink {
  readonly events: MandateEvent[] = [];
  emit(event: MandateEvent): void {
    this.events.push(event);
  }
}

/** Fans one event out to several sinks; settles when every sink that returned a promise has. */
export function teeEventSink(...sinks: EventSink[]): EventSink {
  return {
    emit(event) {
      const pending = sinks.map((s) => s.emit(event)).filter((p): p is Promise<void> => p instanceof Promise);
      if (pending.length > 0) return Promise.all(pending).then(() => undefined);
    },
  };
}
