import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_DURATION_MS, parseDurationMs, parseDurationSeconds } from './duration.ts';

describe('parseDurationMs', () => {
  it('reads each unit, combinations and plain seconds', () => {
    const cases: Array<[string | number, number]> = [
      ['500ms', 500], ['90s', 90_000], ['5m', 300_000], ['1h', 3_600_000], ['7d', 604_800_000],
      ['1h30m', 5_400_000], ['1m1ms', 60_001], ['0h5m', 300_000], [90, 90_000], [1, 1000],
    ];
    for (const [input, ms] of cases) assert.equal(parseDurationMs(input), ms, String(input));
    assert.equal(parseDurationSeconds('500ms'), 0.5);
    assert.equal(parseDurationSeconds('7ms'), 0.007);
  });

  it('rejects everything else', () => {
    for (const input of ['', 's', '5', '5 m', '1.5h', '-1s', '5M', '5min', '1h 30m', 'ms', '0s', '0ms', 0, -5, 1.5, Number.NaN, Infinity]) {
      assert.equal(parseDurationMs(input), undefined, JSON.stringify(input));
    }
  });

  it('rejects more than 100 years however it is written', () => {
    assert.equal(parseDurationMs('36500d'), MAX_DURATION_MS);
    assert.equal(parseDurationMs('36500d1ms'), undefined);
    assert.equal(parseDurationMs('99999999999999999999999s'), undefined);
    assert.equal(parseDurationMs(MAX_DURATION_MS / 1000 + 1), undefined);
  });

  it('sums its parts', () => {
    const unit = fc.constantFrom(['ms', 1], ['s', 1000], ['m', 60_000], ['h', 3_600_000], ['d', 86_400_000] as const);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 1000 }), unit), { minLength: 1, maxLength: 5 }), (parts) => {
        const text = parts.map(([n, [u]]) => `${n}${u}`).join('');
        const expected = parts.reduce((sum, [n, [, scale]]) => sum + n * scale, 0);
        assert.equal(parseDurationMs(text), expected);
      }),
    );
  });
});
