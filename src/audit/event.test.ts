import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { argumentsDigest, canonicalJson, redact, REDACTED } from './event.ts';

describe('audit event encoding', () => {
  it('writes canonical JSON: sorted keys at every level, no whitespace, undefined dropped', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: undefined, x: 'é' }], c: null } }), '{"a":{"c":null,"d":[1,{"x":"é","z":1}]},"b":1}');
    assert.throws(() => canonicalJson({ n: Number.NaN }), /finite/);
  });

  it('is the same for the same value whatever the key order (property)', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => {
      const shuffled = JSON.parse(JSON.stringify(v, (_k, val) => (val && typeof val === 'object' && !Array.isArray(val) ? Object.fromEntries(Object.entries(val).reverse()) : val)));
      assert.equal(canonicalJson(shuffled), canonicalJson(v));
      assert.deepEqual(JSON.parse(canonicalJson(v)), JSON.parse(JSON.stringify(v)));
    }));
  });

  it('redacts configured paths, with * for any key or element, and leaves the rest', () => {
    const args = { password: 'p', card: { number: '4111', name: 'A' }, items: [{ secret: 's', ok: 1 }, { secret: 't' }], keep: 'k' };
    assert.deepEqual(redact(args, ['password', 'card.number', 'items.*.secret']), {
      password: REDACTED, card: { number: REDACTED, name: 'A' }, items: [{ secret: REDACTED, ok: 1 }, { secret: REDACTED }], keep: 'k',
    });
    assert.deepEqual(redact(args, []), args);
    assert.deepEqual(redact('text', ['x']), 'text');
  });

  it('digests the full arguments, independent of key order', () => {
    assert.equal(argumentsDigest({ a: 1, b: 2 }), argumentsDigest({ b: 2, a: 1 }));
    assert.notEqual(argumentsDigest({ a: 1 }), argumentsDigest({ a: 2 }));
    assert.match(argumentsDigest(undefined), /^[0-9a-f]{64}$/);
  });
});
