/**
 * Which agents a mandate names: one SPIFFE ID, or every ID below a path (`spiffe://td/agent/*`).
 * A pattern never matches across trust domains and never matches the path itself, only IDs below it.
 *
 * @example
 *   agentMatches('spiffe://example.org/agent/*', 'spiffe://example.org/agent/triage-bot') // true
 *   agentMatches('spiffe://example.org/agent/*', 'spiffe://example.org/agentx')           // false
 */
import { MandateError, isMandateError } from '../../errors.ts';
import { parseSpiffeId } from '../../identity/spiffe-id/parse.ts';

/** Checks and returns the canonical form; ERR_BAD_REQUEST naming the problem otherwise. */
export function parseAgentPattern(pattern: string): string {
  if (typeof pattern !== 'string' || pattern === '') throw new MandateError('ERR_BAD_REQUEST', 'agent must be a SPIFFE ID or a pattern ending in /*');
  const wildcard = pattern.endsWith('/*');
  const id = wildcard ? pattern.slice(0, -2) : pattern;
  if (id.includes('*')) throw new MandateError('ERR_BAD_REQUEST', `agent pattern ${JSON.stringify(pattern)} may only end in /*; no other wildcards`);
  try {
    const parsed = parseSpiffeId(id);
    if (wildcard && parsed.path === '' && !id.endsWith('/')) return `${parsed.toString()}/*`;
    return wildcard ? `${parsed.toString()}/*` : parsed.toString();
  } catch (err) {
    if (isMandateError(err)) throw new MandateError('ERR_BAD_REQUEST', `agent ${JSON.stringify(pattern)}: ${err.message}`);
    throw err;
  }
}

export function agentMatches(pattern: string, spiffeId: string): boolean {
  if (!pattern.endsWith('/*')) return pattern === spiffeId;
  const prefix = pattern.slice(0, -1);
  return spiffeId.startsWith(prefix) && spiffeId.length > prefix.length;
}
