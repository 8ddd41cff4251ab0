/** Validation of admin input for registration entries and join tokens: every field named in errors. */
import { randomUUID } from 'node:crypto';
import { MandateError } from '../../errors.ts';
import type { RegistrationEntry } from '../../store/store.ts';
import { parseSpiffeId } from '../spiffe-id/parse.ts';

const SELECTOR = /^[a-z0-9_-]+:[\x21-\x7e]{1,255}$/;
const ID = /^[A-Za-z0-9_-]{1,64}$/;
const LIMITS = { x509: [60, 30 * 86400], jwt: [30, 86400], joinToken: [60, 30 * 86400] } as const;

/** The longest JWT-SVID lifetime an entry may have: how long a retired JWT key must stay published. */
export const MAX_JWT_SVID_TTL = LIMITS.jwt[1];

function bad(message: string): never {
  throw new MandateError('ERR_BAD_REQUEST', message);
}

function object(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) bad('request body must be a JSON object');
  return body as Record<string, unknown>;
}

function onlyKeys(obj: Record<string, unknown>, allowed: string[]): void {
  for (const key of Object.keys(obj)) if (!allowed.includes(key)) bad(`unknown field "${key}" (allowed: ${allowed.join(', ')})`);
}

function seconds(value: unknown, field: string, fallback: number, [min, max]: readonly [number, number]): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value)) bad(`${field} must be an integer number of seconds`);
  if (value < min || value > max) bad(`${field} must be between ${min} and ${max} seconds (got ${value})`);
  return value;
}

export function validateEntryInput(body: unknown, ctx: { trustDomain: string; defaults: { x509SvidTtl: number; jwtSvidTtl: number }; now: Date }): RegistrationEntry {
  const b = object(body);
  onlyKeys(b, ['id', 'spiffe_id', 'selectors', 'x509_svid_ttl', 'jwt_svid_ttl', 'metadata']);
  if (typeof b.spiffe_id !== 'string') bad('spiffe_id is required and must be a string');
  const id = parseSpiffeId(b.spiffe_id);
  if (id.trustDomain !== ctx.trustDomain) bad(`spiffe_id ${id} is not in this server's trust domain ${ctx.trustDomain}`);
  if (id.path === '') bad(`spiffe_id ${id} needs a path: a workload cannot have the trust domain's own ID`);
  const selectors = b.selectors ?? [];
  if (!Array.isArray(selectors) || selectors.length > 32) bad('selectors must be an array of at most 32 strings');
  selectors.forEach((s, i) => {
    if (typeof s !== 'string' || !SELECTOR.test(s)) bad(`selectors[${i}] must look like "type:value" (lowercase type, printable value, at most 256 characters)`);
  });
  const metadata = b.metadata ?? {};
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) bad('metadata must be an object of strings');
  const entries = Object.entries(metadata as Record<string, unknown>);
  if (entries.length > 32) bad('metadata may hold at most 32 keys');
  for (const [k, v] of entries) {
    if (k.length === 0 || k.length > 64 || typeof v !== 'string' || v.length > 1024) bad(`metadata.${k} must be a string of at most 1024 characters under a key of 1 to 64 characters`);
  }
  if (b.id !== undefined && (typeof b.id !== 'string' || !ID.test(b.id))) bad('id must be 1 to 64 characters of [A-Za-z0-9_-]');
  return {
    id: (b.id as string | undefined) ?? randomUUID(),
    spiffeId: id.toString(),
    selectors: [...new Set(selectors as string[])].sort(),
    x509SvidTtl: seconds(b.x509_svid_ttl, 'x509_svid_ttl', ctx.defaults.x509SvidTtl, LIMITS.x509),
    jwtSvidTtl: seconds(b.jwt_svid_ttl, 'jwt_svid_ttl', ctx.defaults.jwtSvidTtl, LIMITS.jwt),
    metadata: Object.fromEntries(entries) as Record<string, string>,
    createdAt: ctx.now,
  };
}

export function validateJoinTokenInput(body: unknown, defaultTtl: number): { entryId?: string; spiffeId?: string; ttlSeconds: number } {
  const b = object(body);
  onlyKeys(b, ['entry_id', 'spiffe_id', 'ttl']);
  if ((b.entry_id === undefined) === (b.spiffe_id === undefined)) bad('give exactly one of entry_id or spiffe_id');
  if (b.entry_id !== undefined && (typeof b.entry_id !== 'string' || b.entry_id.length > 64)) bad('entry_id must be a string');
  if (b.spiffe_id !== undefined && typeof b.spiffe_id !== 'string') bad('spiffe_id must be a string');
  return {
    entryId: b.entry_id as string | undefined,
    spiffeId: b.spiffe_id === undefined ? undefined : parseSpiffeId(b.spiffe_id as string).toString(),
    ttlSeconds: seconds(b.ttl, 'ttl', defaultTtl, LIMITS.joinToken),
  };
}

/** API view of an entry (snake_case, ISO dates). */
export function entryToJson(e: RegistrationEntry): Record<string, unknown> {
  return { id: e.id, spiffe_id: e.spiffeId, selectors: e.selectors, x509_svid_ttl: e.x509SvidTtl, jwt_svid_ttl: e.jwtSvidTtl, metadata: e.metadata, created_at: e.createdAt.toISOString() };
}
