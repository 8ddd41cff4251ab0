/**
 * Admin API authentication. On first start Mandate generates one admin token, prints it once and
 * stores only its SHA-256; the CLI presents it as a bearer token.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { MandateError } from '../errors.ts';
import { emitRefusal, type EventSink } from '../observability/events.ts';
import type { Store } from '../store/store.ts';

export const ADMIN_TOKEN_PREFIX = 'mat_';

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Creates an admin token and stores its hash. Returns the token: show it once, never store it. */
export async function createAdminToken(store: Store): Promise<string> {
  const token = ADMIN_TOKEN_PREFIX + randomBytes(32).toString('base64url');
  await store.createAdminToken({ id: randomUUID(), secretHash: hashToken(token), createdAt: new Date() });
  return token;
}

/** On first start (no admin token yet) creates one and returns it; otherwise null. */
export async function ensureAdminToken(store: Store): Promise<string | null> {
  if ((await store.countAdminTokens()) > 0) return null;
  return createAdminToken(store);
}

/** Replaces every admin token with a new one (recovery when the printed token was lost). */
export async function resetAdminToken(store: Store): Promise<string> {
  await store.deleteAdminTokens();
  return createAdminToken(store);
}

/** Checks `Authorization: Bearer <admin token>`; returns the token id for the audit trail. */
export async function authenticateAdmin(store: Store, authorization: string | undefined, events: EventSink, sourceAddress: string): Promise<string> {
  const match = /^Bearer ([A-Za-z0-9_\-.~+/]+=*)$/.exec(authorization ?? '');
  const record = match ? await store.findAdminToken(hashToken(match[1] as string)) : null;
  if (!record) {
    await emitRefusal(events, { type: 'admin.auth.failed', outcome: 'failure', error: 'ERR_UNAUTHENTICATED', reason: match ? 'unknown admin token' : 'missing bearer token', sourceAddress });
    throw new MandateError('ERR_UNAUTHENTICATED', match ? 'admin token is not valid' : 'admin API requires "Authorization: Bearer <admin token>"');
  }
  return record.id;
}
