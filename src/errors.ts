/**
 * Every rejection Mandate makes has a stable code. The same code appears in the HTTP error body,
 * the log line and the audit event, so operators and callers can `switch (err.code)`.
 *
 * @example
 *   throw new MandateError('ERR_SPIFFE_ID_INVALID', 'path segment ".." is a relative path modifier');
 */

/** code -> HTTP status used when the error reaches an HTTP client. */
const STATUS = {
  // request shape
  ERR_BAD_REQUEST: 400,
  ERR_BODY_TOO_LARGE: 413,
  ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_NOT_FOUND: 404,
  ERR_METHOD_NOT_ALLOWED: 405,
  ERR_CONFLICT: 409,
  ERR_TIMEOUT: 408,
  // authentication of callers
  ERR_UNAUTHENTICATED: 401,
  ERR_FORBIDDEN: 403,
  // configuration and start-up
  ERR_CONFIG_INVALID: 500,
  ERR_KEK_INVALID: 500,
  ERR_STORE: 503,
  ERR_INTERNAL: 500,
  // SPIFFE identities and documents
  ERR_SPIFFE_ID_INVALID: 400,
  ERR_TRUST_DOMAIN_INVALID: 400,
  ERR_CSR_INVALID: 400,
  ERR_PEM_INVALID: 400,
  ERR_KEY_INVALID: 400,
  ERR_KEY_MISMATCH: 400,
  ERR_X509_SVID_INVALID: 401,
  ERR_X509_CHAIN_INVALID: 401,
  ERR_JWT_SVID_INVALID: 401,
  ERR_JWT_SVID_EXPIRED: 401,
  ERR_JWT_SVID_AUDIENCE: 401,
  ERR_BUNDLE_INVALID: 400,
  ERR_BUNDLE_UNKNOWN_TRUST_DOMAIN: 401,
  ERR_BUNDLE_UNAVAILABLE: 503,
  ERR_CA_INVALID: 400,
  ERR_CA_UNAVAILABLE: 503,
  // attestation
  ERR_ATTESTATION_FAILED: 401,
  ERR_ATTESTOR_DISABLED: 403,
  ERR_JOIN_TOKEN_INVALID: 401,
  ERR_JOIN_TOKEN_EXPIRED: 401,
  ERR_JOIN_TOKEN_USED: 401,
  ERR_K8S_TOKEN_INVALID: 401,
  ERR_K8S_JWKS_UNAVAILABLE: 503,
  ERR_NO_MATCHING_ENTRY: 403,
  ERR_AMBIGUOUS_ENTRY: 400,
  // policy
  ERR_POLICY_INVALID: 400,
  // the gateway's upstreams (tool servers); the agent learns which kind of failure, never its details
  ERR_UPSTREAM: 502,
  ERR_UPSTREAM_TIMEOUT: 504,
  // agent side: talking to the Mandate server
  ERR_SERVER_UNREACHABLE: 503,
  ERR_SERVER_RESPONSE_INVALID: 502,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof STATUS;

export class MandateError extends Error {
  override readonly name = 'MandateError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** The HTTP status this error maps to when it reaches an HTTP client. */
  get status(): number {
    return STATUS[this.code];
  }

  toJSON(): { error: ErrorCode; message: string } {
    return { error: this.code, message: this.message };
  }
}

export function isMandateError(err: unknown, code?: ErrorCode): err is MandateError {
  return err instanceof MandateError && (code === undefined || err.code === code);
}

/** Message of any thrown value, for wrapping library errors without leaking stack traces. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
