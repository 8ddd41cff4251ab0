import { MandateError, isMandateError, messageOf } from '../../errors.ts';

/** What a failed statement means for the caller, when it is not a store fault. */
export interface Expected {
  /** Message for a primary-key or unique violation (SQLSTATE 23505). */
  conflict?: string;
  /** Message for a foreign-key violation (SQLSTATE 23503): a referenced record is missing. */
  missingReference?: string;
}

/**
 * Turns a pg or network error into a MandateError. Only the error's own message (and SQLSTATE)
 * is kept, never its `detail` (which quotes row values such as secret hashes) nor the error object
 * as `cause`; any fragment of the connection URL's password is masked as a last defence.
 *
 * @example
 *   throw toStoreError('open', err, url); // MandateError ERR_STORE "postgres store: open failed: connect ECONNREFUSED 127.0.0.1:1"
 */
export function toStoreError(op: string, err: unknown, url: string, expected: Expected = {}): MandateError {
  if (isMandateError(err)) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (expected.conflict && code === '23505') return new MandateError('ERR_CONFLICT', expected.conflict);
  if (expected.missingReference && code === '23503') {
    return new MandateError('ERR_NOT_FOUND', expected.missingReference);
  }
  const sqlState = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? ` (SQLSTATE ${code})` : '';
  return new MandateError('ERR_STORE', redact(`postgres store: ${op} failed: ${describe(err)}${sqlState}`, url));
}

/** Node reports a refused dual-stack connect as an AggregateError with an empty message. */
function describe(err: unknown): string {
  const own = messageOf(err);
  if (own !== '' || !(err instanceof AggregateError)) return own || 'unknown error';
  return err.errors.map(messageOf).filter((m) => m !== '').join('; ') || 'unknown error';
}

/** Masks the URL and any password it carries (user-info or `?password=`), raw and decoded. */
export function redact(message: string, url: string): string {
  const secrets = new Set<string>([url]);
  try {
    const u = new URL(url);
    for (const p of [u.password, u.searchParams.get('password') ?? '']) {
      if (p === '') continue;
      secrets.add(p);
      secrets.add(safeDecode(p));
    }
  } catch {
    // Not parseable as a URL: masking the whole string is all we can do.
  }
  let out = message;
  for (const s of [...secrets].filter((x) => x !== '').sort((a, b) => b.length - a.length)) {
    out = out.split(s).join('***');
  }
  return out;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
