/**
 * The one error the agent SDK's OAuth calls throw: the authorization server refused (an OAuth error
 * reply, RFC 6749 §5.2 / RFC 8693 §2.2.2 / RFC 9449), or answered with something that is not a usable
 * OAuth reply. Transport failures are fetch's own errors and are not wrapped.
 *
 * @example
 *   try { await agent.exchange(request); }
 *   catch (err) { if (err instanceof AgentAuthError && err.error === 'invalid_scope') askForLess(); }
 */

/** `error` of an AgentAuthError raised by the SDK itself when a reply is not a valid OAuth reply. */
export const INVALID_RESPONSE = 'invalid_response';

export class AgentAuthError extends Error {
  override readonly name = 'AgentAuthError';
  /** The OAuth error code the server sent (`invalid_request`, `invalid_scope`, `invalid_target`, ...), or `invalid_response`. */
  readonly error: string;
  /** The server's `error_description`, or the SDK's description of what was wrong with the reply. */
  readonly error_description: string | undefined;
  /** HTTP status of the reply. */
  readonly status: number | undefined;

  constructor(error: string, description: string | undefined, opts: { status?: number; cause?: unknown } = {}) {
    super(description === undefined ? error : `${error}: ${description}`, { cause: opts.cause });
    this.error = error;
    this.error_description = description;
    this.status = opts.status;
  }
}
