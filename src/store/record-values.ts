import { MandateError } from '../errors.ts';

/**
 * Guards the one value both SQL drivers would otherwise mangle silently: an Invalid Date becomes
 * NULL in SQLite and a malformed literal in PostgreSQL. Passing one is a caller bug.
 *
 * @example
 *   requireDate(entry.createdAt, 'registration entry createdAt') // -> epoch milliseconds
 */
export function requireDate(value: Date, field: string): number {
  const ms = value instanceof Date ? value.getTime() : Number.NaN;
  if (Number.isNaN(ms)) throw new MandateError('ERR_INTERNAL', `${field} is not a valid Date`);
  return ms;
}

/** As requireDate, for the nullable date fields; null passes through. */
export function requireDateOrNull(value: Date | null, field: string): number | null {
  return value === null ? null : requireDate(value, field);
}
