/**
 * Join tokens: an admin creates one for a registration entry and hands it to a workload out of band;
 * the workload attests with it once. The store keeps only the SHA-256 of the token, so a leaked
 * database cannot be replayed as tokens.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { MandateError } from '../../../errors.ts';
import type { Store } from '../../../store/store.ts';
import type { AttestationRequest, AttestationResult, Attestor } from '../attestor.ts';
import { requireString } from '../fields.ts';

const TOKEN_PREFIX = 'mjt_';
/** A year: join tokens are meant for minutes or days; anything longer is a typo or a mistake. */
const MAX_TTL_SECONDS = 365 * 24 * 3600;
/** Generated tokens are ~84 characters; the limit only keeps hashing of junk cheap. */
const MAX_TOKEN_LENGTH = 256;

/** SHA-256 of the whole token string, hex: the lookup key in the store. */
function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * Creates a single-use join token bound to one registration entry. The returned `token` is shown
 * once; only its hash is stored.
 *
 * @example
 *   const { token, id, expiresAt } = await createJoinToken(store, { entryId: entry.id, ttlSeconds: 600 });
 *   // token = 'mjt_5f0c…e1.Qm9n…' ; give it to the workload, never log it
 */
export async function createJoinToken(
  store: Store,
  opts: { entryId: string; ttlSeconds: number; now?: Date },
): Promise<{ token: string; id: string; expiresAt: Date }> {
  const { entryId, ttlSeconds } = opts;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0 || ttlSeconds > MAX_TTL_SECONDS) {
    throw new MandateError('ERR_BAD_REQUEST', `join token ttlSeconds must be an integer between 1 and ${MAX_TTL_SECONDS}`);
  }
  if ((await store.getEntry(entryId)) === null) {
    throw new MandateError('ERR_NOT_FOUND', `registration entry "${entryId}" does not exist`);
  }
  const now = opts.now ?? new Date();
  const id = randomUUID();
  const token = `${TOKEN_PREFIX}${id}.${randomBytes(32).toString('base64url')}`;
  const expiresAt = new Date(now.getTime() + ttlSeconds * 1000);
  await store.createJoinToken({ id, secretHash: hashToken(token), entryId, expiresAt, usedAt: null, createdAt: now });
  return { token, id, expiresAt };
}

/**
 * The `join_token` attestor. Request: `{ type: 'join_token', token: string }`.
 *
 * The store offers no read without consuming, so the token is consumed first and its expiry checked
 * after: an expired token is burnt and refused, which is harmless since it could never be used again.
 *
 * @example
 *   const attestor = createJoinTokenAttestor(store);
 *   await attestor.attest({ type: 'join_token', token }, new Date());
 *   // -> { attestor: 'join_token', selectors: ['join_token:<id>'], entryIds: [entryId], subject: 'join_token:<id>' }
 */
export function createJoinTokenAttestor(store: Store): Attestor {
  return {
    type: 'join_token',
    async attest(req: AttestationRequest, now: Date): Promise<AttestationResult> {
      const token = requireString(req, 'token', { maxLength: MAX_TOKEN_LENGTH });
      const outcome = await store.consumeJoinToken(hashToken(token), now);
      if (outcome === null) {
        throw new MandateError('ERR_JOIN_TOKEN_INVALID', 'join token is not known to this server');
      }
      const { token: record, consumed } = outcome;
      if (!consumed) {
        throw new MandateError('ERR_JOIN_TOKEN_USED', `join token ${record.id} was already used`);
      }
      if (record.expiresAt.getTime() <= now.getTime()) {
        throw new MandateError('ERR_JOIN_TOKEN_EXPIRED', `join token ${record.id} expired at ${record.expiresAt.toISOString()}`);
      }
      const subject = `join_token:${record.id}`;
      return { attestor: 'join_token', selectors: [subject], entryIds: [record.entryId], subject };
    },
  };
}
