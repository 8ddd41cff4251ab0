import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MandateError, isMandateError } from '../../errors.ts';
import {
  SPIFFE_ID_RULES,
  isSpiffeId,
  memberOf,
  parseSpiffeId,
  parseTrustDomain,
  spiffeIdFromParts,
  type SpiffeIdRule,
} from './parse.ts';

/** Asserts `fn` throws a MandateError with `code` whose message names exactly `rule`. */
function assertRejects(fn: () => unknown, code: string, rule: SpiffeIdRule): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MandateError, `expected MandateError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(ruleOf(err.message), rule, err.message);
    return true;
  });
}

/** The rule whose sentence a rejection message carries (after `": "`, before an optional `; found`). */
function ruleOf(message: string): SpiffeIdRule | undefined {
  const matches = (Object.keys(SPIFFE_ID_RULES) as SpiffeIdRule[]).filter((rule) => {
    const sentence = SPIFFE_ID_RULES[rule];
    return message.endsWith(`: ${sentence}`) || message.includes(`: ${sentence}; found `);
  });
  assert.ok(matches.length <= 1, `message matches several rules: ${matches.join(', ')}`);
  return matches[0];
}

const VALID: Array<[input: string, trustDomain: string, path: string]> = [
  ['spiffe://example.org', 'example.org', ''],
  ['spiffe://example.org/agent/triage-bot', 'example.org', '/agent/triage-bot'],
  ['spiffe://k8s-west.example.com/ns/staging/sa/default', 'k8s-west.example.com', '/ns/staging/sa/default'],
  ['spiffe://trust_domain_name.example.com/A.b-C_d', 'trust_domain_name.example.com', '/A.b-C_d'],
  ['spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453', 'example.com', '/9eebccd2-12bf-40a6-b262-65fe0487d453'],
  ['spiffe://192.168.1.10/workload', '192.168.1.10', '/workload'], // IPv4 is an ordinary trust domain name
  ['spiffe://td/...', 'td', '/...'], // three dots is a name, not a relative modifier
  ['spiffe://td/.a/..b/a.', 'td', '/.a/..b/a.'],
  ['spiffe://a', 'a', ''],
];

const INVALID: Array<[input: string, rule: SpiffeIdRule]> = [
  ['', 'empty'],
  ['spiffe://', 'trust_domain_empty'],
  ['spiffe:///path', 'trust_domain_empty'],
  ['spiffe://?x', 'trust_domain_empty'],
  ['spiffe://td/', 'path_trailing_slash'],
  ['spiffe://td/a/', 'path_trailing_slash'],
  ['spiffe://td//a', 'path_empty_segment'],
  ['spiffe://td/a//b', 'path_empty_segment'],
  ['spiffe://td//', 'path_empty_segment'],
  ['spiffe://td/./a', 'path_dot_segment'],
  ['spiffe://td/a/..', 'path_dot_segment'],
  ['spiffe://td/a/./b', 'path_dot_segment'],
  ['spiffe://td/..', 'path_dot_segment'],
  ['spiffe://td:80/a', 'port'],
  ['spiffe://td:/a', 'port'],
  ['spiffe://user@td/a', 'userinfo'],
  ['spiffe://user:pass@td/a', 'userinfo'],
  ['spiffe://td/a?x', 'query'],
  ['spiffe://td?x', 'query'],
  ['spiffe://td/a#f', 'fragment'],
  ['spiffe://td#f', 'fragment'],
  ['spiffe://td/%41', 'path_percent'],
  ['spiffe://t%64/a', 'trust_domain_percent'],
  ['SPIFFE://td', 'scheme_case'],
  ['Spiffe://td/a', 'scheme_case'],
  ['http://td/a', 'scheme'],
  ['https://example.org', 'scheme'],
  ['spiff://td', 'scheme'],
  ['td/a', 'scheme'],
  ['spiffe:/td/a', 'separator'],
  ['spiffe:td', 'separator'],
  ['spiffe://Example.org/a', 'trust_domain_case'],
  ['spiffe://exa mple.org/a', 'trust_domain_char'],
  ['spiffe://exämple.org/a', 'trust_domain_char'],
  ['spiffe://[::1]/a', 'ipv6'],
  ['spiffe://[::1]:80/a', 'ipv6'],
  ['spiffe://td/a b', 'path_char'],
  ['spiffe://td/a@b', 'path_char'],
  ['spiffe://td/a:b', 'path_char'],
  ['spiffe://td/ä', 'path_char'],
  ['spiffe://td/a\nb', 'path_char'],
  [`spiffe://${'a'.repeat(256)}/a`, 'trust_domain_too_long'],
];

describe('parseSpiffeId: table', () => {
  for (const [input, trustDomain, path] of VALID) {
    it(`accepts ${input}`, () => {
      const id = parseSpiffeId(input);
      assert.equal(id.trustDomain, trustDomain);
      assert.equal(id.path, path);
      assert.equal(id.toString(), input);
      assert.equal(`${id}`, input);
      assert.equal(JSON.stringify({ id }), JSON.stringify({ id: input }));
      assert.equal(isSpiffeId(input), true);
    });
  }
  for (const [input, rule] of INVALID) {
    it(`rejects ${JSON.stringify(input)}: ${rule}`, () => {
      assertRejects(() => parseSpiffeId(input), 'ERR_SPIFFE_ID_INVALID', rule);
      assert.equal(isSpiffeId(input), false);
    });
  }

  it('formats the message with the input and the rule', () => {
    assert.throws(() => parseSpiffeId('spiffe://Example.org/a'), {
      name: 'MandateError',
      code: 'ERR_SPIFFE_ID_INVALID',
      message: 'invalid SPIFFE ID "spiffe://Example.org/a": trust domain must be lowercase (SPIFFE-ID §2.1); found "E" at offset 9',
    });
    assert.throws(() => parseSpiffeId('spiffe://td/a/..'), {
      message: 'invalid SPIFFE ID "spiffe://td/a/..": path segments must not be the relative path modifiers "." or ".." (SPIFFE-ID §2.2)',
    });
  });

  it('quotes control characters and shortens long inputs in messages', () => {
    assert.throws(() => parseSpiffeId('spiffe://td/a\nb'), (err: Error) => !err.message.includes('\n'));
    assert.throws(
      () => parseSpiffeId(`spiffe://td/${'x'.repeat(3000)}`),
      (err: Error) => err.message.length < 400 && err.message.includes('…'),
    );
  });

  it('refuses values that are not strings with a MandateError', () => {
    for (const value of [undefined, null, 42, {}, ['spiffe://td']]) {
      assert.throws(() => parseSpiffeId(value as unknown as string), { code: 'ERR_SPIFFE_ID_INVALID' });
      assert.throws(() => parseTrustDomain(value as unknown as string), { code: 'ERR_TRUST_DOMAIN_INVALID' });
      assert.equal(isSpiffeId(value as unknown as string), false);
    }
  });

  it('accepts exactly 2048 bytes and rejects 2049', () => {
    const base = 'spiffe://example.org/';
    const id2048 = base + 'a'.repeat(2048 - base.length);
    assert.equal(Buffer.byteLength(id2048), 2048);
    assert.equal(parseSpiffeId(id2048).toString(), id2048);
    assertRejects(() => parseSpiffeId(`${id2048}b`), 'ERR_SPIFFE_ID_INVALID', 'too_long');
  });

  it('accepts a 255-byte trust domain and rejects 256', () => {
    const td255 = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`;
    assert.equal(td255.length, 255);
    assert.equal(parseSpiffeId(`spiffe://${td255}/x`).trustDomain, td255);
    assertRejects(() => parseSpiffeId(`spiffe://${td255}e/x`), 'ERR_SPIFFE_ID_INVALID', 'trust_domain_too_long');
  });
});

describe('parseTrustDomain', () => {
  it('accepts a bare name or a spiffe:// ID without a path', () => {
    assert.equal(parseTrustDomain('example.org'), 'example.org');
    assert.equal(parseTrustDomain('spiffe://example.org'), 'example.org');
    assert.equal(parseTrustDomain('10.0.0.1'), '10.0.0.1');
    assert.equal(parseTrustDomain('my_td-1.local'), 'my_td-1.local');
  });

  const cases: Array<[string, SpiffeIdRule]> = [
    ['', 'trust_domain_empty'],
    ['Example.org', 'trust_domain_case'],
    ['example.org:8443', 'port'],
    ['admin@example.org', 'userinfo'],
    ['[::1]', 'ipv6'],
    ['exa%6Dple.org', 'trust_domain_percent'],
    ['exa mple', 'trust_domain_char'],
    ['example.org/path', 'trust_domain_path'],
    ['example.org?x', 'query'],
    ['example.org#x', 'fragment'],
    ['spiffe://example.org/agent', 'trust_domain_path'],
    ['spiffe://Example.org', 'trust_domain_case'],
    ['spiffe:/example.org', 'separator'],
    ['http://example.org', 'scheme'],
    ['a'.repeat(256), 'trust_domain_too_long'],
  ];
  for (const [input, rule] of cases) {
    it(`rejects ${JSON.stringify(input.slice(0, 40))}: ${rule}`, () => {
      assertRejects(() => parseTrustDomain(input), 'ERR_TRUST_DOMAIN_INVALID', rule);
    });
  }

  it('names the trust domain in the message', () => {
    assert.throws(() => parseTrustDomain('example.org:8443'), {
      code: 'ERR_TRUST_DOMAIN_INVALID',
      message: 'invalid trust domain "example.org:8443": trust domain must not include a port (SPIFFE-ID §2.1)',
    });
  });
});

describe('spiffeIdFromParts and memberOf', () => {
  it('builds IDs from valid parts', () => {
    assert.equal(spiffeIdFromParts('example.org', '/agent/a').toString(), 'spiffe://example.org/agent/a');
    assert.equal(spiffeIdFromParts('spiffe://example.org', '').toString(), 'spiffe://example.org');
    const id = spiffeIdFromParts('example.org', '/x');
    assert.equal(id.trustDomain, 'example.org');
    assert.equal(id.path, '/x');
  });

  it('validates the trust domain with the trust-domain code and the path with the SPIFFE ID code', () => {
    assertRejects(() => spiffeIdFromParts('Example.org', '/a'), 'ERR_TRUST_DOMAIN_INVALID', 'trust_domain_case');
    assertRejects(() => spiffeIdFromParts('example.org', 'agent'), 'ERR_SPIFFE_ID_INVALID', 'path_leading_slash');
    assertRejects(() => spiffeIdFromParts('example.org', '/'), 'ERR_SPIFFE_ID_INVALID', 'path_trailing_slash');
    assertRejects(() => spiffeIdFromParts('example.org', '/a/../b'), 'ERR_SPIFFE_ID_INVALID', 'path_dot_segment');
    assertRejects(() => spiffeIdFromParts('example.org', '/a?b'), 'ERR_SPIFFE_ID_INVALID', 'query');
    assertRejects(() => spiffeIdFromParts('example.org', `/${'a'.repeat(2048)}`), 'ERR_SPIFFE_ID_INVALID', 'too_long');
  });

  it('memberOf compares trust domains exactly', () => {
    const id = parseSpiffeId('spiffe://example.org/agent/a');
    assert.equal(memberOf(id, 'example.org'), true);
    assert.equal(memberOf(id, 'example.com'), false);
    assert.equal(memberOf(id, 'sub.example.org'), false);
    assert.equal(memberOf(parseSpiffeId('spiffe://sub.example.org/a'), 'example.org'), false);
  });
});

// ---- property-based tests ----

const TD_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789.-_'.split('');
const PATH_ALPHABET = [...TD_ALPHABET, ...'ABCDEFGHIJKLMNOPQRSTUVWXYZ'.split('')];

const trustDomainArb = fc.string({ unit: fc.constantFrom(...TD_ALPHABET), minLength: 1, maxLength: 40 });
const segmentArb = fc
  .string({ unit: fc.constantFrom(...PATH_ALPHABET), minLength: 1, maxLength: 16 })
  .filter((s) => s !== '.' && s !== '..');
const pathArb = fc.array(segmentArb, { maxLength: 6 }).map((segs) => segs.map((s) => `/${s}`).join(''));
const nonEmptyPathArb = fc.array(segmentArb, { minLength: 1, maxLength: 6 }).map((segs) => segs.map((s) => `/${s}`).join(''));

/** Characters outside [a-zA-Z0-9.-_] (and not `/`, which only moves the trust-domain/path boundary). */
const disallowedCharArb = fc.oneof(
  fc.constantFrom(...' !"#$%&\'()*+,:;<=>?@[\\]^`{|}~\t\n\0'.split('')),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }).filter((c) => c.codePointAt(0)! > 127),
);

/** What the spec says must fail when `ch` is inserted at offset `at` of a valid trust domain. */
function expectedTrustDomainRule(ch: string, at: number): SpiffeIdRule {
  if (ch === '?' || ch === '#') return at === 0 ? 'trust_domain_empty' : ch === '?' ? 'query' : 'fragment';
  if (ch === '@') return 'userinfo';
  if (ch === '[' && at === 0) return 'ipv6';
  if (ch === ':') return 'port';
  if (ch === '%') return 'trust_domain_percent';
  if (/^[A-Z]$/.test(ch)) return 'trust_domain_case';
  return 'trust_domain_char';
}

function expectedPathRule(ch: string): SpiffeIdRule {
  if (ch === '%') return 'path_percent';
  if (ch === '?') return 'query';
  if (ch === '#') return 'fragment';
  return 'path_char';
}

/** Independent, regex-based statement of the same grammar, used as an oracle. */
const REFERENCE = /^spiffe:\/\/[a-z0-9._-]{1,255}(?:\/(?!\.{1,2}(?:\/|$))[A-Za-z0-9._-]+)*$/;
function referenceIsSpiffeId(s: string): boolean {
  return s.length <= 2048 && REFERENCE.test(s);
}

describe('parseSpiffeId: properties', () => {
  it('(a) IDs built from the valid alphabets round-trip through parse and toString', () => {
    fc.assert(
      fc.property(trustDomainArb, pathArb, (td, path) => {
        const uri = `spiffe://${td}${path}`;
        const id = parseSpiffeId(uri);
        assert.equal(id.toString(), uri);
        assert.equal(id.trustDomain, td);
        assert.equal(id.path, path);
        assert.equal(spiffeIdFromParts(td, path).toString(), uri);
        assert.equal(parseTrustDomain(td), td);
        assert.ok(memberOf(id, td));
      }),
      { numRuns: 500 },
    );
  });

  it('(b) one disallowed character in the trust domain fails with the trust-domain rule it breaks', () => {
    const upperArb = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZ'.split(''));
    fc.assert(
      fc.property(
        trustDomainArb,
        pathArb,
        fc.oneof(disallowedCharArb, upperArb),
        fc.nat(),
        (td, path, ch, n) => {
          const at = n % (td.length + 1);
          const uri = `spiffe://${td.slice(0, at)}${ch}${td.slice(at)}${path}`;
          assertRejects(() => parseSpiffeId(uri), 'ERR_SPIFFE_ID_INVALID', expectedTrustDomainRule(ch, at));
          assert.equal(isSpiffeId(uri), false);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('(b) one disallowed character in the path fails with the path rule it breaks', () => {
    fc.assert(
      fc.property(trustDomainArb, nonEmptyPathArb, disallowedCharArb, fc.nat(), (td, path, ch, n) => {
        const at = 1 + (n % path.length); // after the leading "/"
        const uri = `spiffe://${td}${path.slice(0, at)}${ch}${path.slice(at)}`;
        assertRejects(() => parseSpiffeId(uri), 'ERR_SPIFFE_ID_INVALID', expectedPathRule(ch));
        assert.equal(isSpiffeId(uri), false);
      }),
      { numRuns: 1000 },
    );
  });

  it('(c) arbitrary strings either parse to themselves or throw ERR_SPIFFE_ID_INVALID, nothing else', () => {
    const nearMiss = fc
      .tuple(
        fc.constantFrom('spiffe://', 'SPIFFE://', 'spiffe:/', 'spiffe:', '', 'http://'),
        fc.string({ unit: fc.constantFrom(...PATH_ALPHABET, '/', '/', '.', '%', ':', '@', '?', '#', '[', ']'), maxLength: 40 }),
      )
      .map(([a, b]) => a + b);
    const anyString = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.string({ unit: 'grapheme' }),
      nearMiss,
      nearMiss,
    );
    fc.assert(
      fc.property(anyString, (s) => {
        let parsed: string | undefined;
        try {
          parsed = parseSpiffeId(s).toString();
        } catch (err) {
          assert.ok(isMandateError(err, 'ERR_SPIFFE_ID_INVALID'), `unexpected ${String(err)}`);
          assert.ok(ruleOf(err.message) !== undefined, err.message);
        }
        if (parsed !== undefined) assert.equal(parsed, s);
        assert.equal(isSpiffeId(s), parsed !== undefined);
        assert.equal(parsed !== undefined, referenceIsSpiffeId(s), `reference disagrees on ${JSON.stringify(s)}`);
      }),
      { numRuns: 3000 },
    );
  });

  it('(c) parseTrustDomain throws only ERR_TRUST_DOMAIN_INVALID for arbitrary strings', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' })), (s) => {
        try {
          assert.equal(typeof parseTrustDomain(s), 'string');
        } catch (err) {
          assert.ok(isMandateError(err, 'ERR_TRUST_DOMAIN_INVALID'), `unexpected ${String(err)}`);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
