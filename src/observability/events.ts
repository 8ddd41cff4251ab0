import type { Logger } from './logger.ts';

/**
 * A security-relevant event (attestation, SVID issuance, admin action...). Today events go to the
 * structured log; the audit log subscribes to the same sink. Never put a secret or token here.
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

export interface EventSink {
  emit(event: MandateEvent): void;
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

/** Fans one event out to several sinks. */
export function teeEventSink(...sinks: EventSink[]): EventSink {
  return { emit: (event) => sinks.forEach((s) => s.emit(event)) };
}
