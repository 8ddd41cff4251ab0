import { MandateError } from '../../errors.ts';
import type { AttestationRequest } from './attestor.ts';

/**
 * Reads a required string field of an untrusted attestation request. Size limits apply before any
 * parsing or hashing so an oversized body fails cheaply with a precise message.
 *
 * @example
 *   const token = requireString(req, 'token', { maxLength: 512 });
 */
export function requireString(req: AttestationRequest, field: string, opts: { maxLength: number }): string {
  const value = req[field];
  if (typeof value !== 'string' || value.length === 0) {
    throw new MandateError('ERR_BAD_REQUEST', `${req.type} attestation requires field "${field}" (a non-empty string)`);
  }
  if (value.length > opts.maxLength) {
    throw new MandateError('ERR_BODY_TOO_LARGE', `${req.type} attestation field "${field}" exceeds ${opts.maxLength} characters`);
  }
  return value;
}

/**
 * Reads an optional string field; absent (undefined) is allowed, any other non-string is not.
 *
 * @example
 *   const cluster = optionalString(req, 'cluster', { maxLength: 253 }); // string | undefined
 */
export function optionalString(req: AttestationRequest, field: string, opts: { maxLength: number }): string | undefined {
  return req[field] === undefined ? undefined : requireString(req, field, opts);
}
