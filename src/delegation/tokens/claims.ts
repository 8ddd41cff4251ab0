/**
 * The claims of the access tokens Mandate mints (RFC 9068 JWT profile, `typ: at+jwt`), and the
 * delegation chain they carry in `act` (RFC 8693 §4.1).
 *
 * An OBO token says: `sub` (with `principal_iss`) is the principal; `act.sub` is the agent acting
 * now, and a nested `act` is the agent that delegated to it, outermost = current actor. Only the
 * top-level `sub` and the outermost `act` are used to authorize; the rest of the chain is recorded.
 */

export interface ActClaim {
  /** The acting agent's SPIFFE ID. */
  sub: string;
  /** The agent that delegated to this one (earlier in the chain). */
  act?: ActClaim;
}

export interface ConfirmationClaim {
  /** RFC 9449: SHA-256 JWK thumbprint of the DPoP key. */
  jkt?: string;
  /** RFC 8705: SHA-256 thumbprint of the client certificate (DER). */
  'x5t#S256'?: string;
}

export interface AccessTokenClaims {
  iss: string;
  /** The principal's subject at their identity provider. */
  sub: string;
  /** The principal's identity provider (our issuer for the built-in directory). */
  principal_iss: string;
  /** Exactly one audience: the resource the token is for. */
  aud: string;
  exp: number;
  iat: number;
  jti: string;
  client_id: string;
  /** Space-separated scopes. */
  scope: string;
  /** The mandate the token was minted under (absent on a principal's own access token). */
  mandate?: string;
  act?: ActClaim;
  cnf?: ConfirmationClaim;
  /** Seconds since the epoch when the principal signed in, when known. */
  auth_time?: number;
}

/** Longest delegation chain we read; deeper nesting is refused outright. */
export const MAX_ACT_NESTING = 16;

/** The chain of actors, outermost (current) first; empty when the token has no `act`. */
export function actChain(act: ActClaim | undefined): string[] {
  const chain: string[] = [];
  let cursor: unknown = act;
  while (cursor !== undefined) {
    if (typeof cursor !== 'object' || cursor === null || typeof (cursor as ActClaim).sub !== 'string') throw new TypeError('act claim is malformed: each level needs a string sub');
    if (chain.length >= MAX_ACT_NESTING) throw new TypeError(`act claim nests deeper than ${MAX_ACT_NESTING} levels`);
    chain.push((cursor as ActClaim).sub);
    cursor = (cursor as ActClaim).act;
  }
  return chain;
}

/** Builds the `act` claim for a new actor on top of an existing chain. */
export function pushActor(actor: string, previous: ActClaim | undefined): ActClaim {
  return previous ? { sub: actor, act: previous } : { sub: actor };
}

export function scopesOf(claims: { scope?: unknown }): string[] {
  return typeof claims.scope === 'string' && claims.scope !== '' ? claims.scope.split(' ') : [];
}
