/**
 * OAuth request parameters: `application/x-www-form-urlencoded` bodies (RFC 6749 §3.2) and query
 * strings. Parameters are single-valued unless the grant allows repeats (`resource`, `audience`,
 * RFC 8707 / RFC 8693), an empty value counts as absent (RFC 6749 §3.1), and anything malformed is
 * an `invalid_request` naming the parameter.
 */
import type { IncomingMessage } from 'node:http';
import { OAuthError } from './errors.ts';

const REPEATABLE = new Set(['resource', 'audience']);
const MAX_VALUE_LENGTH = 16 * 1024;

export class OAuthParams {
  constructor(private readonly params: URLSearchParams) {
    for (const key of new Set(params.keys())) {
      if (!REPEATABLE.has(key) && params.getAll(key).filter((v) => v !== '').length > 1) {
        throw new OAuthError('invalid_request', `parameter ${key} is repeated (RFC 6749 §3.1)`);
      }
      for (const value of params.getAll(key)) {
        if (value.length > MAX_VALUE_LENGTH) throw new OAuthError('invalid_request', `parameter ${key} is longer than ${MAX_VALUE_LENGTH} characters`);
      }
    }
  }

  /** The value, or undefined when absent or empty (an empty occurrence never hides a real one). */
  get(name: string): string | undefined {
    return this.params.getAll(name).find((v) => v !== '');
  }

  require(name: string, why = ''): string {
    const value = this.get(name);
    if (value === undefined) throw new OAuthError('invalid_request', `parameter ${name} is required${why ? ` ${why}` : ''}`);
    return value;
  }

  all(name: string): string[] {
    return this.params.getAll(name).filter((v) => v !== '');
  }

  /** Space-delimited scope list, deduplicated; undefined when absent. */
  scopes(): string[] | undefined {
    const scope = this.get('scope');
    if (scope === undefined) return undefined;
    const list = scope.split(' ').filter((s) => s !== '');
    if (list.some((s) => !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s))) throw new OAuthError('invalid_scope', 'scope contains characters RFC 6749 §3.3 does not allow');
    return [...new Set(list)];
  }
}

/** Parses a token-endpoint style body; the content type must be form-encoded. */
export function parseForm(req: IncomingMessage, body: Buffer): OAuthParams {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new OAuthError('invalid_request', `the request body must be application/x-www-form-urlencoded (got ${type || 'none'})`);
  }
  const text = body.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(body)) throw new OAuthError('invalid_request', 'the request body is not valid UTF-8');
  // URLSearchParams turns percent-encoded bytes that are not UTF-8 into U+FFFD; refuse them instead.
  const strict = new TextDecoder('utf-8', { fatal: true });
  for (const part of text.split(/[&=]/)) {
    if (!part.includes('%')) continue;
    const bytes = Buffer.concat(part.split(/(%[0-9A-Fa-f]{2})/).map((piece) =>
      /^%[0-9A-Fa-f]{2}$/.test(piece) ? Buffer.from([parseInt(piece.slice(1), 16)]) : Buffer.from(piece, 'utf8')));
    try {
      strict.decode(bytes);
    } catch {
      throw new OAuthError('invalid_request', 'the request body has percent-encoded bytes that are not UTF-8');
    }
  }
  return new OAuthParams(new URLSearchParams(text));
}
