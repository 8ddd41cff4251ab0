import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { actChain, MAX_ACT_NESTING, pushActor, scopesOf, type ActClaim } from './claims.ts';

const A = 'spiffe://example.org/agent/planner';
const B = 'spiffe://example.org/agent/researcher';
const C = 'spiffe://example.org/agent/fetcher';

/** An act claim nested `levels` deep, outermost `agent-<levels-1>`, innermost `agent-0`. */
function nested(levels: number): ActClaim {
  let act: ActClaim | undefined;
  for (let i = 0; i < levels; i++) act = pushActor(`spiffe://example.org/agent/${i}`, act);
  return act as ActClaim;
}

describe('actChain', () => {
  it('is empty without an act claim', () => {
    assert.deepEqual(actChain(undefined), []);
  });

  it('lists the actors outermost (current) first', () => {
    assert.deepEqual(actChain({ sub: A }), [A]);
    assert.deepEqual(actChain({ sub: C, act: { sub: B, act: { sub: A } } }), [C, B, A]);
  });

  it(`reads exactly ${MAX_ACT_NESTING} levels`, () => {
    const chain = actChain(nested(MAX_ACT_NESTING));
    assert.equal(chain.length, MAX_ACT_NESTING);
    assert.equal(chain[0], `spiffe://example.org/agent/${MAX_ACT_NESTING - 1}`);
    assert.equal(chain.at(-1), 'spiffe://example.org/agent/0');
  });

  it(`refuses ${MAX_ACT_NESTING + 1} levels`, () => {
    assert.equal(MAX_ACT_NESTING, 16);
    assert.throws(() => actChain(nested(MAX_ACT_NESTING + 1)), { name: 'TypeError', message: /nests deeper than 16 levels/ });
  });

  const malformed: Array<[string, unknown]> = [
    ['no sub', {}],
    ['sub not a string', { sub: 42 }],
    ['sub null', { sub: null }],
    ['a string', 'spiffe://example.org/agent/a'],
    ['a number', 7],
    ['null', null],
    ['an array', [{ sub: A }]],
    ['true', true],
    ['nested act without sub', { sub: B, act: { act: { sub: A } } }],
    ['nested act a string', { sub: B, act: A }],
    ['nested act null', { sub: B, act: null }],
    ['nested act an array', { sub: B, act: [] }],
  ];
  for (const [name, act] of malformed) {
    it(`refuses a malformed act: ${name}`, () => {
      assert.throws(() => actChain(act as ActClaim), { name: 'TypeError', message: /act claim is malformed: each level needs a string sub/ });
    });
  }
});

describe('pushActor', () => {
  it('starts a chain without a nested act member', () => {
    const act = pushActor(A, undefined);
    assert.deepEqual(act, { sub: A });
    assert.equal(Object.hasOwn(act, 'act'), false);
  });

  it('puts the new actor outermost and keeps the earlier chain', () => {
    const first = pushActor(A, undefined);
    const second = pushActor(B, first);
    const third = pushActor(C, second);
    assert.deepEqual(third, { sub: C, act: { sub: B, act: { sub: A } } });
    assert.deepEqual(actChain(third), [C, B, A]);
    assert.deepEqual(first, { sub: A }, 'the previous chain is not changed');
  });
});

describe('scopesOf', () => {
  const cases: Array<[unknown, string[]]> = [
    ['issues:read', ['issues:read']],
    ['issues:read issues:write mail:send', ['issues:read', 'issues:write', 'mail:send']],
    ['', []],
    [undefined, []],
    [null, []],
    [42, []],
    [['issues:read'], []],
    [{ 0: 'issues:read' }, []],
  ];
  for (const [scope, expected] of cases) {
    it(`${JSON.stringify(scope) ?? 'undefined'} -> ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(scopesOf({ scope }), expected);
    });
  }

  it('is empty when the claim is missing', () => {
    assert.deepEqual(scopesOf({}), []);
  });
});
