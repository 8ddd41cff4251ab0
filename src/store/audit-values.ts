import { MandateError } from '../errors.ts';
import { requireDate } from './record-values.ts';
import type { AuditRecord } from './store.ts';

/**
 * Checks both stores apply to audit records before writing them, so the two refuse the same
 * caller bugs the same way: malformed values are ERR_INTERNAL, a batch that does not continue the
 * log is ERR_CONFLICT.
 *
 * @example
 *   const first = checkAuditBatch(records); // index of the first record, or null for an empty batch
 *   requireLogContinues(first, size);        // inside the appending transaction
 */

/** A 32-byte hash as a Buffer (what both drivers bind as a blob), or ERR_INTERNAL. */
export function requireHash(value: Uint8Array, field: string): Buffer {
  if (!(value instanceof Uint8Array) || value.byteLength !== 32) {
    const got = value instanceof Uint8Array ? `${value.byteLength} bytes` : typeof value;
    throw new MandateError('ERR_INTERNAL', `${field} must be 32 bytes, got ${got}`);
  }
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/**
 * Validates every record of a batch and that their indices run on by one. Returns the first
 * index, or null when the batch is empty (nothing to append).
 */
export function checkAuditBatch(records: readonly AuditRecord[]): number | null {
  const first = records[0]?.index;
  if (first === undefined) return null;
  records.forEach((r, i) => {
    if (!Number.isSafeInteger(r.index) || r.index < 0) {
      throw new MandateError('ERR_INTERNAL', `audit record index must be an integer >= 0, got ${String(r.index)}`);
    }
    if (typeof r.event !== 'string' || typeof r.type !== 'string') {
      throw new MandateError('ERR_INTERNAL', `audit record ${r.index} must have a string event and type`);
    }
    requireHash(r.leafHash, `audit record ${r.index} leafHash`);
    requireDate(r.time, `audit record ${r.index} time`);
    if (r.index !== first + i) {
      throw new MandateError(
        'ERR_CONFLICT',
        `audit records must be contiguous: expected index ${first + i} at position ${i} of the batch, got ${r.index}`,
      );
    }
  });
  return first;
}

/**
 * An audit record's column values in the order both stores' audit_log tables list them: idx, event,
 * leaf_hash, time, type, agent, principal_issuer, principal_subject, mandate_id, tool, decision,
 * trace_id. The time stays a Date (each driver binds it its own way).
 */
export function auditRecordValues(r: AuditRecord): [number, string, Buffer, Date, string, ...(string | null)[]] {
  return [
    r.index, r.event, requireHash(r.leafHash, 'audit record leafHash'), r.time, r.type,
    r.agent, r.principalIssuer, r.principalSubject, r.mandateId, r.tool, r.decision, r.traceId,
  ];
}

/** ERR_CONFLICT unless a batch starting at `first` continues a log of `size` records. */
export function requireLogContinues(first: number, size: number): void {
  if (first !== size) {
    throw new MandateError(
      'ERR_CONFLICT',
      `audit log holds ${size} records: expected the batch to start at index ${size}, got ${first}`,
    );
  }
}

/** Equality filters of an audit query, by query field: the same columns on both backends. */
export const AUDIT_FILTER_COLUMNS = {
  agent: 'agent',
  principalIssuer: 'principal_issuer',
  principalSubject: 'principal_subject',
  mandateId: 'mandate_id',
  tool: 'tool',
  decision: 'decision',
  traceId: 'trace_id',
  type: 'type',
} as const;
