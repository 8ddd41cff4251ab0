import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMandateError } from '../../errors.ts';
import { agentMatches, parseAgentPattern } from './agent-pattern.ts';

describe('agent patterns', () => {
  const cases: Array<[pattern: string, id: string, matches: boolean]> = [
    ['spiffe://example.org/agent/triage-bot', 'spiffe://example.org/agent/triage-bot', true],
    ['spiffe://example.org/agent/triage-bot', 'spiffe://example.org/agent/triage-bot2', false],
    ['spiffe://example.org/agent/triage-bot', 'spiffe://example.org/agent/triage-bot/sub', false],
    ['spiffe://example.org/agent/*', 'spiffe://example.org/agent/triage-bot', true],
    ['spiffe://example.org/agent/*', 'spiffe://example.org/agent/a/b', true],
    ['spiffe://example.org/agent/*', 'spiffe://example.org/agent', false],
    ['spiffe://example.org/agent/*', 'spiffe://example.org/agentx/a', false],
    ['spiffe://example.org/agent/*', 'spiffe://other.org/agent/a', false],
    ['spiffe://example.org/agent/*', 'spiffe://example.org.evil/agent/a', false],
    ['spiffe://example.org/*', 'spiffe://example.org/anything', true],
  ];
  for (const [pattern, id, expected] of cases) {
    it(`${pattern} ${expected ? 'matches' : 'does not match'} ${id}`, () => {
      assert.equal(agentMatches(parseAgentPattern(pattern), id), expected);
    });
  }

  it('refuses malformed patterns, naming the problem', () => {
    for (const bad of ['', 'agent/*', 'spiffe://example.org/a*/b', 'spiffe://example.org/*/x', 'spiffe://Example.org/a', 'spiffe://example.org/a/../b', 'https://example.org/a']) {
      assert.throws(() => parseAgentPattern(bad), (err) => isMandateError(err, 'ERR_BAD_REQUEST') && err.message.length > 10, bad);
    }
  });
});
