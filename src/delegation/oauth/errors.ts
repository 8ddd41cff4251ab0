/**
 * OAuth protocol errors, named exactly as the RFCs name them (RFC 6749 §5.2, RFC 6750 §3.1,
 * RFC 8693 §2.2.2, RFC 8707 §2, RFC 9449 §7/§8, RFC 7591 §3.2.2). Every refusal of the delegation
 * authority is one of these, with an `error_description` a person can act on.
 *
 * @example
 *   throw new OAuthError('invalid_target', 'resource https://tools.example/mcp is not covered by the mandate');
 */

export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'unsupported_response_type'
  | 'unsupported_token_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'access_denied'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'invalid_redirect_uri'
  | 'invalid_client_metadata'
  | 'server_error'
  | 'temporarily_unavailable';

const STATUS: Partial<Record<OAuthErrorCode, number>> = {
  invalid_client: 401,
  invalid_token: 401,
  insufficient_scope: 403,
  server_error: 500,
  temporarily_unavailable: 503,
};

export class OAuthError extends Error {
  override readonly name = 'OAuthError';
  readonly error: OAuthErrorCode;
  /** HTTP status of the reply. */
  readonly status: number;
  /** Extra reply headers (WWW-Authenticate, DPoP-Nonce, ...). */
  readonly headers: Record<string, string>;

  constructor(error: OAuthErrorCode, description: string, opts: { status?: number; headers?: Record<string, string>; cause?: unknown } = {}) {
    super(description, { cause: opts.cause });
    this.error = error;
    this.status = opts.status ?? STATUS[error] ?? 400;
    this.headers = opts.headers ?? {};
  }

  /** The JSON body of an OAuth error reply. */
  toJSON(): { error: OAuthErrorCode; error_description: string } {
    return { error: this.error, error_description: this.message };
  }
}

export function isOAuthError(err: unknown, code?: OAuthErrorCode): err is OAuthError {
  return err instanceof OAuthError && (code === undefined || err.error === code);
}
