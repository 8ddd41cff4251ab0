import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RegistrationEntry } from '../../store/store.ts';
import type { AttestationResult } from './attestor.ts';
import { matchEntries } from './match.ts';

function entry(id: string, selectors: string[]): RegistrationEntry {
  return { id, spiffeId: `spiffe://example.org/agent/${id}`, selectors, x509SvidTtl: 3600, jwtSvidTtl: 300, metadata: {}, createdAt: new Date(0) };
}

function result(selectors: string[], entryIds: string[] = []): AttestationResult {
  return { attestor: 'k8s_psat', selectors, entryIds, subject: 'test' };
}

const ENTRIES = [
  entry('ns', ['k8s:ns:payments']),
  entry('ns-sa', ['k8s:ns:payments', 'k8s:sa:triage-bot']),
  entry('other-sa', ['k8s:ns:payments', 'k8s:sa:billing']),
  entry('no-selectors', []),
  entry('joined', ['join_token:t1']),
];

const CASES: Array<{ name: string; result: AttestationResult; expected: string[] }> = [
  { name: 'all selectors of an entry proven', result: result(['k8s:ns:payments', 'k8s:sa:triage-bot', 'k8s:cluster:prod']), expected: ['ns', 'ns-sa'] },
  { name: 'a subset of an entry\'s selectors is not enough', result: result(['k8s:sa:triage-bot']), expected: [] },
  { name: 'one selector proves only one-selector entries', result: result(['k8s:ns:payments']), expected: ['ns'] },
  { name: 'nothing proven matches nothing, not even entries without selectors', result: result([]), expected: [] },
  { name: 'an entry without selectors matches by id', result: result([], ['no-selectors']), expected: ['no-selectors'] },
  { name: 'id and selectors combine without duplicates', result: result(['join_token:t1'], ['joined', 'ns']), expected: ['ns', 'joined'] },
  { name: 'unknown ids are ignored', result: result([], ['gone']), expected: [] },
  { name: 'selectors are compared exactly', result: result(['k8s:ns:Payments', 'k8s:ns:payments ', 'k8s:sa:triage-bot']), expected: [] },
];

for (const c of CASES) {
  test(`matchEntries: ${c.name}`, () => {
    assert.deepEqual(matchEntries(ENTRIES, c.result).map((e) => e.id), c.expected);
  });
}
