/**
 * When the agent acts: rotation at half-life, retry backoff bounded by the SVID's remaining life,
 * bundle refresh at the refresh hint. Pure functions, so the timing rules are tested without waiting.
 */

/** Retries start here and double per failed attempt. */
export const RETRY_BASE_MS = 1000;
/** Longest wait between two renewal attempts. */
export const RETRY_MAX_MS = 60_000;
/** No two renewals closer than this, whatever the certificate says (guards against a tight loop). */
export const MIN_RENEW_DELAY_MS = 1000;
/** Bounds on a bundle's `spiffe_refresh_hint`, seconds. */
export const MIN_REFRESH_SECONDS = 10;
export const MAX_REFRESH_SECONDS = 24 * 60 * 60;

/**
 * Half-life of a certificate: the moment to rotate it.
 *
 * @example renewAt(new Date('2030-01-01T00:00:00Z'), new Date('2030-01-01T01:00:00Z')) // 00:30:00Z
 */
export function renewAt(notBefore: Date, notAfter: Date): Date {
  return new Date(notBefore.getTime() + (notAfter.getTime() - notBefore.getTime()) / 2);
}

/**
 * Milliseconds to wait before rotating an SVID received at `receivedAt`. The half-life counts from
 * the later of notBefore and receipt, because issuers backdate notBefore and clocks drift: an SVID
 * must never look half spent the moment it arrives.
 *
 * @example renewalDelay(notBefore, notAfter, new Date()) // about half the SVID's TTL
 */
export function renewalDelay(notBefore: Date, notAfter: Date, receivedAt: Date): number {
  const start = new Date(Math.max(notBefore.getTime(), receivedAt.getTime()));
  return Math.max(renewAt(start, notAfter).getTime() - receivedAt.getTime(), MIN_RENEW_DELAY_MS);
}

/**
 * Wait before renewal attempt `attempt` (1 = first retry): exponential from one second, at most a
 * minute, and at most half the SVID's remaining life so several attempts fit before it expires.
 *
 * @example retryDelay(1, 3_600_000) // 1000;  retryDelay(10, 3_600_000) // 60000;  retryDelay(10, 8000) // 4000
 */
export function retryDelay(attempt: number, msUntilExpiry: number): number {
  const exponential = RETRY_BASE_MS * 2 ** Math.max(0, Math.min(attempt - 1, 30));
  return Math.max(Math.min(exponential, RETRY_MAX_MS, Math.floor(msUntilExpiry / 2)), RETRY_BASE_MS / 2);
}

/**
 * Spreads `ms` by up to ±10% so agents that failed together do not retry together.
 *
 * @example withJitter(1000, Math.random()) // 900..1100
 */
export function withJitter(ms: number, random: number): number {
  return Math.round(ms * (0.9 + 0.2 * random));
}

/**
 * Milliseconds between bundle refreshes for a refresh hint in seconds, clamped to sane bounds; null
 * when the bundle gives no hint (bundles are then refreshed only with each SVID renewal).
 *
 * @example refreshDelay(300) // 300000;  refreshDelay(1) // 10000;  refreshDelay(undefined) // null
 */
export function refreshDelay(hintSeconds: number | undefined): number | null {
  if (hintSeconds === undefined || !Number.isFinite(hintSeconds) || hintSeconds <= 0) return null;
  return Math.min(Math.max(hintSeconds, MIN_REFRESH_SECONDS), MAX_REFRESH_SECONDS) * 1000;
}
