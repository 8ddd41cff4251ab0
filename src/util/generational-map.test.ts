import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GenerationalMap } from './generational-map.ts';

describe('GenerationalMap', () => {
  it('keeps at most two generations, and what is used survives the next change', () => {
    const m = new GenerationalMap<number, string>(2);
    m.set(1, 'a');
    m.set(2, 'b');
    m.set(3, 'c'); // 1 and 2 become old
    assert.equal(m.get(1), 'a'); // promoted: young is now 3, 1
    m.set(4, 'd'); // young full: 3 and 1 become old, 2 is dropped
    assert.equal(m.get(2), undefined);
    assert.equal(m.get(3), 'c');
    assert.equal(m.get(1), 'a');
    assert.equal(m.get(4), 'd');
  });

  it('forgets a deleted key in both generations', () => {
    const m = new GenerationalMap<string, number>(1);
    m.set('x', 1);
    m.set('y', 2); // x is old
    m.delete('x');
    m.delete('y');
    assert.equal(m.get('x'), undefined);
    assert.equal(m.get('y'), undefined);
  });
});
