/**
 * SPIFFE ID parsing and validation, exactly as SPIFFE-ID §2–§2.4 define it.
 *
 * Hand-written rather than `new URL()`: the WHATWG parser normalises (lowercases hosts, resolves
 * `.`/`..`, decodes some escapes), and a SPIFFE ID must be rejected, not repaired, when it is not in
 * canonical form. The scanner is one pass over the string with a lookup table, because it runs on every
 * SVID and token verification.
 *
 * Like go-spiffe, an uppercase scheme or trust domain is rejected even though §2.4 calls them
 * case-insensitive: §2.1 requires the host to be lowercase, so only the canonical spelling is valid.
 */
import { MandateError } from '../../errors.ts';

/** A parsed, valid SPIFFE ID. `toString()` returns the full URI, identical to the parsed input. */
export interface SpiffeId {
  /** The trust domain name, e.g. `example.org`. */
  readonly trustDomain: string;
  /** The path, `""` for the trust domain's own ID, otherwise starting with `/`, e.g. `/agent/triage-bot`. */
  readonly path: string;
  /** The full URI, e.g. `spiffe://example.org/agent/triage-bot`. */
  toString(): string;
}

/**
 * Every rule a SPIFFE ID or trust domain name can break, keyed by a stable rule name. Rejection messages
 * end with the sentence of the rule that failed, so callers and operators see which rule and which section.
 *
 * @example
 *   SPIFFE_ID_RULES.trust_domain_case // 'trust domain must be lowercase (SPIFFE-ID §2.1)'
 */
export const SPIFFE_ID_RULES = {
  empty: 'must not be empty (SPIFFE-ID §2)',
  scheme: 'scheme must be "spiffe" (SPIFFE-ID §2)',
  scheme_case: 'scheme must be written in lowercase as "spiffe" (SPIFFE-ID §2, §2.4)',
  separator: 'scheme must be followed by "://" and the trust domain (SPIFFE-ID §2)',
  trust_domain_empty: 'trust domain must not be empty (SPIFFE-ID §2.1)',
  userinfo: 'trust domain must not include userinfo ("user@") (SPIFFE-ID §2.1)',
  port: 'trust domain must not include a port (SPIFFE-ID §2.1)',
  ipv6: 'trust domain must not be an IPv6 address (SPIFFE-ID §2.1)',
  trust_domain_percent: 'trust domain must not contain percent-encoded characters (SPIFFE-ID §2.1)',
  trust_domain_case: 'trust domain must be lowercase (SPIFFE-ID §2.1)',
  trust_domain_char: 'trust domain must contain only letters, numbers, dots, dashes and underscores [a-z0-9.-_] (SPIFFE-ID §2.1)',
  trust_domain_too_long: 'trust domain must be at most 255 bytes (SPIFFE-ID §2.3)',
  trust_domain_path: 'a trust domain name must not include a path (SPIFFE-ID §2.1)',
  query: 'must not include a query component ("?") (SPIFFE-ID §2)',
  fragment: 'must not include a fragment component ("#") (SPIFFE-ID §2)',
  path_leading_slash: 'path must be empty or start with "/" (SPIFFE-ID §2.2)',
  path_percent: 'path must not contain percent-encoded characters (SPIFFE-ID §2.2)',
  path_empty_segment: 'path segments must not be empty (SPIFFE-ID §2.2)',
  path_dot_segment: 'path segments must not be the relative path modifiers "." or ".." (SPIFFE-ID §2.2)',
  path_trailing_slash: 'path must not end with "/" (SPIFFE-ID §2.2)',
  path_char: 'path segments must contain only letters, numbers, dots, dashes and underscores [a-zA-Z0-9.-_] (SPIFFE-ID §2.2)',
  too_long: 'must be at most 2048 bytes (SPIFFE-ID §2.3)',
} as const satisfies Record<string, string>;

export type SpiffeIdRule = keyof typeof SPIFFE_ID_RULES;

const PREFIX = 'spiffe://';
const MAX_ID_BYTES = 2048;
const MAX_TRUST_DOMAIN_BYTES = 255;

const SLASH = 0x2f;
const QUESTION = 0x3f;
const HASH = 0x23;
const PERCENT = 0x25;
const AT = 0x40;
const COLON = 0x3a;
const DOT = 0x2e;
const LEFT_BRACKET = 0x5b;

// Bit 1: allowed in a trust domain. Bit 2: allowed in a path segment.
const TRUST_DOMAIN_CHAR = 1;
const PATH_CHAR = 2;
const CHAR_CLASS = new Uint8Array(128);
for (let c = 0x61; c <= 0x7a; c++) CHAR_CLASS[c] = TRUST_DOMAIN_CHAR | PATH_CHAR; // a-z
for (let c = 0x41; c <= 0x5a; c++) CHAR_CLASS[c] = PATH_CHAR; // A-Z
for (let c = 0x30; c <= 0x39; c++) CHAR_CLASS[c] = TRUST_DOMAIN_CHAR | PATH_CHAR; // 0-9
for (const c of [DOT, 0x2d, 0x5f]) CHAR_CLASS[c] = TRUST_DOMAIN_CHAR | PATH_CHAR; // . - _

/** Where and why a scan failed; `at` is the UTF-16 offset of the offending character, if there is one. */
interface Violation {
  rule: SpiffeIdRule;
  at?: number;
}

class ParsedSpiffeId implements SpiffeId {
  readonly trustDomain: string;
  readonly path: string;
  readonly #uri: string;

  constructor(uri: string, trustDomain: string, path: string) {
    this.#uri = uri;
    this.trustDomain = trustDomain;
    this.path = path;
  }

  toString(): string {
    return this.#uri;
  }

  toJSON(): string {
    return this.#uri;
  }
}

/**
 * Parse a SPIFFE ID, rejecting anything that is not in the canonical form of SPIFFE-ID §2.
 *
 * @example
 *   const id = parseSpiffeId('spiffe://example.org/agent/triage-bot');
 *   id.trustDomain // 'example.org'
 *   id.path        // '/agent/triage-bot'
 *   parseSpiffeId('spiffe://Example.org/a') // throws ERR_SPIFFE_ID_INVALID: trust domain must be lowercase
 */
export function parseSpiffeId(input: string): SpiffeId {
  // Inputs often come from untyped JSON (token claims); anything but a string is refused, not crashed on.
  if (typeof input !== 'string') {
    throw new MandateError('ERR_SPIFFE_ID_INVALID', `invalid SPIFFE ID: must be a string (got ${typeof input})`);
  }
  const result = scanSpiffeId(input);
  if (typeof result !== 'number') throw invalid('ERR_SPIFFE_ID_INVALID', 'SPIFFE ID', input, result);
  return new ParsedSpiffeId(input, input.slice(PREFIX.length, result), input.slice(result));
}

/**
 * True when `input` is a valid SPIFFE ID. Never throws, and skips building an error on the failure path.
 *
 * @example
 *   isSpiffeId('spiffe://example.org/agent/a') // true
 *   isSpiffeId('spiffe://example.org/agent/')  // false
 */
export function isSpiffeId(input: string): boolean {
  return typeof input === 'string' && typeof scanSpiffeId(input) === 'number';
}

/**
 * Validate a trust domain name, given bare (`example.org`) or as a SPIFFE ID without a path
 * (`spiffe://example.org`), and return the bare name.
 *
 * @example
 *   parseTrustDomain('spiffe://example.org') // 'example.org'
 *   parseTrustDomain('example.org:8443')     // throws ERR_TRUST_DOMAIN_INVALID: must not include a port
 */
export function parseTrustDomain(input: string): string {
  if (typeof input !== 'string') {
    throw new MandateError('ERR_TRUST_DOMAIN_INVALID', `invalid trust domain: must be a string (got ${typeof input})`);
  }
  // Like go-spiffe: anything with a scheme separator is read as an ID, which gives better diagnostics
  // for near misses such as `spiffe:/example.org`.
  if (input.includes(':/')) {
    const result = scanSpiffeId(input);
    if (typeof result !== 'number') throw invalid('ERR_TRUST_DOMAIN_INVALID', 'trust domain', input, result);
    if (result !== input.length) {
      throw invalid('ERR_TRUST_DOMAIN_INVALID', 'trust domain', input, { rule: 'trust_domain_path', at: result });
    }
    return input.slice(PREFIX.length);
  }
  const end = scanTrustDomain(input, 0);
  if (typeof end !== 'number') throw invalid('ERR_TRUST_DOMAIN_INVALID', 'trust domain', input, end);
  if (end !== input.length) {
    throw invalid('ERR_TRUST_DOMAIN_INVALID', 'trust domain', input, afterAuthority(input, end));
  }
  return input;
}

/**
 * Build a SPIFFE ID from a trust domain (bare or `spiffe://` form) and a path, validating both.
 *
 * @example
 *   spiffeIdFromParts('example.org', '/agent/triage-bot').toString() // 'spiffe://example.org/agent/triage-bot'
 *   spiffeIdFromParts('example.org', '').toString()                  // 'spiffe://example.org'
 */
export function spiffeIdFromParts(trustDomain: string, path: string): SpiffeId {
  const td = parseTrustDomain(trustDomain);
  if (path.length > 0 && path.charCodeAt(0) !== SLASH) {
    throw invalid('ERR_SPIFFE_ID_INVALID', 'SPIFFE ID path', path, { rule: 'path_leading_slash', at: 0 });
  }
  const pathResult = scanPath(path, 0);
  if (pathResult !== undefined) throw invalid('ERR_SPIFFE_ID_INVALID', 'SPIFFE ID path', path, pathResult);
  const uri = PREFIX + td + path;
  if (uri.length > MAX_ID_BYTES) throw invalid('ERR_SPIFFE_ID_INVALID', 'SPIFFE ID', uri, { rule: 'too_long' });
  return new ParsedSpiffeId(uri, td, path);
}

/**
 * True when the ID belongs to the given trust domain (a bare trust domain name, as parseTrustDomain returns).
 *
 * @example
 *   memberOf(parseSpiffeId('spiffe://example.org/a'), 'example.org') // true
 */
export function memberOf(id: SpiffeId, trustDomain: string): boolean {
  return id.trustDomain === trustDomain;
}

/** Returns the offset where the path starts (the end of the trust domain) or the first violation. */
function scanSpiffeId(input: string): number | Violation {
  // A valid ID is ASCII, so its UTF-16 length is its byte length; a longer string is too long in any
  // encoding, and a shorter one with non-ASCII characters fails the character rules below.
  if (input.length > MAX_ID_BYTES) return { rule: 'too_long' };
  if (!input.startsWith(PREFIX)) return schemeViolation(input);
  const end = scanTrustDomain(input, PREFIX.length);
  if (typeof end !== 'number') return end;
  if (end === input.length) return end;
  const c = input.charCodeAt(end);
  if (c !== SLASH) return afterAuthority(input, end);
  const pathViolation = scanPath(input, end);
  return pathViolation ?? end;
}

/** Explains why an input that does not start with `spiffe://` is not a SPIFFE ID. */
function schemeViolation(input: string): Violation {
  if (input.length === 0) return { rule: 'empty' };
  const colon = input.indexOf(':');
  if (colon !== 6 || !equalsAsciiCaseInsensitive(input, 'spiffe', 0)) return { rule: 'scheme', at: 0 };
  if (!input.startsWith('spiffe:')) return { rule: 'scheme_case', at: 0 };
  return { rule: 'separator', at: 6 };
}

/**
 * Scans the authority starting at `start` up to the first `/`, `?` or `#` (RFC 3986 §3.2) and returns
 * its end offset, or the violation. All characters are looked at before a rule is chosen, so that
 * `user@host` is reported as userinfo rather than as the first odd character.
 */
function scanTrustDomain(input: string, start: number): number | Violation {
  let at = -1;
  let colon = -1;
  let percent = -1;
  let upper = -1;
  let other = -1;
  let end = start;
  for (; end < input.length; end++) {
    const c = input.charCodeAt(end);
    if (c < 128 && (CHAR_CLASS[c]! & TRUST_DOMAIN_CHAR) !== 0) continue;
    if (c === SLASH || c === QUESTION || c === HASH) break;
    if (c === AT) {
      if (at < 0) at = end;
    } else if (c === COLON) {
      if (colon < 0) colon = end;
    } else if (c === PERCENT) {
      if (percent < 0) percent = end;
    } else if (c >= 0x41 && c <= 0x5a) {
      if (upper < 0) upper = end;
    } else if (other < 0) {
      other = end;
    }
  }
  if (end === start) return { rule: 'trust_domain_empty', at: start };
  if (at >= 0) return { rule: 'userinfo', at };
  if (input.charCodeAt(start) === LEFT_BRACKET) return { rule: 'ipv6', at: start };
  if (colon >= 0) return { rule: 'port', at: colon };
  if (percent >= 0) return { rule: 'trust_domain_percent', at: percent };
  if (upper >= 0) return { rule: 'trust_domain_case', at: upper };
  if (other >= 0) return { rule: 'trust_domain_char', at: other };
  if (end - start > MAX_TRUST_DOMAIN_BYTES) return { rule: 'trust_domain_too_long' };
  return end;
}

/** The violation for what follows a trust domain when it is not a path: a query, fragment or path. */
function afterAuthority(input: string, end: number): Violation {
  const c = input.charCodeAt(end);
  if (c === QUESTION) return { rule: 'query', at: end };
  if (c === HASH) return { rule: 'fragment', at: end };
  return { rule: 'trust_domain_path', at: end };
}

/**
 * Checks the path that starts at `start` (at a `/`, or empty) and runs to the end of the string.
 * Returns undefined when it is valid.
 */
function scanPath(input: string, start: number): Violation | undefined {
  let segmentStart = start; // offset of the `/` that opens the current segment
  for (let i = start; i < input.length; i++) {
    const c = input.charCodeAt(i);
    if (c < 128 && (CHAR_CLASS[c]! & PATH_CHAR) !== 0) continue;
    if (c === SLASH) {
      if (i > start) {
        const bad = segmentViolation(input, segmentStart, i, 'path_empty_segment');
        if (bad) return bad;
      }
      segmentStart = i;
      continue;
    }
    if (c === PERCENT) return { rule: 'path_percent', at: i };
    if (c === QUESTION) return { rule: 'query', at: i };
    if (c === HASH) return { rule: 'fragment', at: i };
    return { rule: 'path_char', at: i };
  }
  if (input.length === start) return undefined;
  return segmentViolation(input, segmentStart, input.length, 'path_trailing_slash');
}

/** A segment runs from its opening `/` at `slash` to `end` (exclusive). */
function segmentViolation(
  input: string,
  slash: number,
  end: number,
  emptyRule: 'path_empty_segment' | 'path_trailing_slash',
): Violation | undefined {
  const length = end - slash - 1;
  if (length === 0) return { rule: emptyRule, at: slash };
  if (length <= 2 && input.charCodeAt(slash + 1) === DOT && (length === 1 || input.charCodeAt(slash + 2) === DOT)) {
    return { rule: 'path_dot_segment', at: slash + 1 };
  }
  return undefined;
}

function equalsAsciiCaseInsensitive(input: string, lower: string, offset: number): boolean {
  for (let i = 0; i < lower.length; i++) {
    if ((input.charCodeAt(offset + i) | 0x20) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

const MAX_QUOTED = 120;

function invalid(
  code: 'ERR_SPIFFE_ID_INVALID' | 'ERR_TRUST_DOMAIN_INVALID',
  what: string,
  input: string,
  violation: Violation,
): MandateError {
  // JSON quoting keeps control characters and newlines out of log lines; long inputs are cut short.
  const shown = input.length > MAX_QUOTED ? `${input.slice(0, MAX_QUOTED)}…` : input;
  let message = `invalid ${what} ${JSON.stringify(shown)}: ${SPIFFE_ID_RULES[violation.rule]}`;
  if (violation.at !== undefined && violation.at < input.length && isCharacterRule(violation.rule)) {
    const ch = String.fromCodePoint(input.codePointAt(violation.at)!);
    message += `; found ${JSON.stringify(ch)} at offset ${violation.at}`;
  }
  return new MandateError(code, message);
}

function isCharacterRule(rule: SpiffeIdRule): boolean {
  return rule === 'trust_domain_char' || rule === 'path_char' || rule === 'trust_domain_case';
}
