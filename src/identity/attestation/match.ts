import type { RegistrationEntry } from '../../store/store.ts';
import type { AttestationResult } from './attestor.ts';

/**
 * The registration entries an attestation qualifies for: an entry the attestation names by id, or an
 * entry with at least one selector whose selectors were all proven. An entry without selectors
 * matches only by id, so an empty selector list can never mean "anyone".
 *
 * @example
 *   matchEntries([{ id: 'e1', selectors: ['k8s:ns:payments', 'k8s:sa:triage-bot'], ... }],
 *     { selectors: ['k8s:ns:payments', 'k8s:sa:triage-bot', 'k8s:cluster:prod'], entryIds: [], ... });
 *   // -> [entry e1]
 */
export function matchEntries(entries: RegistrationEntry[], result: AttestationResult): RegistrationEntry[] {
  const proven = new Set(result.selectors);
  const named = new Set(result.entryIds);
  return entries.filter(
    (entry) => named.has(entry.id) || (entry.selectors.length > 0 && entry.selectors.every((s) => proven.has(s))),
  );
}
