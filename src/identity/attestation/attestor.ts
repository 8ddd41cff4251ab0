/**
 * The one interface every workload attestor implements. Attestation is how a workload proves what it
 * is before Mandate issues it an SVID: each attestor turns an untrusted request body into the
 * selectors (and, for join tokens, the registration entry) it could prove. Implementations live one
 * per folder beside this file and are wired in catalog.ts.
 */

export type AttestorType = 'join_token' | 'k8s_psat' | 'static';

/** The body a workload sends, already JSON-parsed (untrusted: validate every field). */
export interface AttestationRequest {
  type: string;
  [field: string]: unknown;
}

/**
 * What one attestation proved.
 *
 * @example
 *   { attestor: 'k8s_psat', selectors: ['k8s:cluster:prod', 'k8s:ns:payments'], entryIds: [],
 *     subject: 'k8s_psat:prod:payments:triage-bot' }
 */
export interface AttestationResult {
  attestor: AttestorType;
  /** `type:value` selectors proven by this attestation, e.g. `k8s:ns:payments`. */
  selectors: string[];
  /** Registration entry ids the attestation names directly (join tokens are bound to one entry). */
  entryIds: string[];
  /** Short non-secret description of what attested, for audit events, e.g. `join_token:<token id>`. */
  subject: string;
}

/**
 * A pluggable attestor. `attest` throws a MandateError with the most specific code when the request
 * proves nothing; it never returns an empty "failed" result.
 *
 * @example
 *   const result = await attestor.attest({ type: 'join_token', token }, new Date());
 */
export interface Attestor {
  readonly type: AttestorType;
  attest(req: AttestationRequest, now: Date): Promise<AttestationResult>;
}
