/**
 * The upstream OBO token: what the gateway sends a tool server configured with `credential: obo_token`
 * in place of the agent's token, which is never forwarded. It is a second access token of ours
 * (`at+jwt`), for the upstream's own audience, carrying the same principal, act chain, mandate, client
 * and scope as the token the agent presented, so the upstream can tell who acts for whom and verify
 * it against our published JWKS like any RFC 9068 token.
 *
 * It has no `cnf`: the upstream receives it from the gateway over the network, and the agent's key
 * or certificate is not the gateway's to prove. That makes it a bearer token, so it lives at most a
 * minute and never past the agent's token; its audience is the upstream's alone (never the resource
 * the agent's token was for, so it cannot be replayed at the gateway); and it names the same mandate,
 * so revoking the mandate kills it at every verifier that follows our revocation list.
 *
 * @example
 *   const verified = await delegation.verifier.verify(presented);
 *   const { token } = await mintUpstreamToken(delegation.keys, verified, { issuer, audience: 'https://api.tracker.example' });
 *   headers.authorization = `Bearer ${token}`;
 */
import { MandateError } from '../../errors.ts';
import { GenerationalMap } from '../../util/generational-map.ts';
import type { AccessTokenClaims } from './claims.ts';
import { mintAccessToken } from './mint.ts';
import type { TokenSigningKeys } from './signing-keys.ts';
import type { VerifiedAccessToken } from './verify.ts';

/** The longest an upstream token lives (and its default lifetime), in seconds. */
export const MAX_UPSTREAM_TOKEN_TTL = 60;

export interface UpstreamTokenOptions {
  /** Our issuer identifier (the `iss` of every token we mint). */
  issuer: string;
  /** The upstream's audience (config `credential.audience`). */
  audience: string;
  /** 1..60 seconds; default 60. Cut further to the agent's token's remaining life. */
  ttlSeconds?: number;
  now?: Date;
}

export async function mintUpstreamToken(
  keys: TokenSigningKeys,
  from: VerifiedAccessToken,
  opts: UpstreamTokenOptions,
): Promise<{ token: string; claims: AccessTokenClaims }> {
  const ttl = opts.ttlSeconds ?? MAX_UPSTREAM_TOKEN_TTL;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_UPSTREAM_TOKEN_TTL) {
    throw new MandateError('ERR_INTERNAL', `an upstream token lives 1 to ${MAX_UPSTREAM_TOKEN_TTL} seconds, not ${String(ttl)}`);
  }
  if (opts.audience === '') throw new MandateError('ERR_CONFIG_INVALID', 'the upstream token needs the upstream\'s audience');
  const inbound = from.claims;
  if (opts.audience === inbound.aud) {
    throw new MandateError('ERR_CONFIG_INVALID', `the upstream audience must not be ${inbound.aud}, the resource the agent's token is for: the upstream token would be a bearer token for the gateway itself`);
  }
  const now = opts.now ?? new Date();
  // The same second mintAccessToken takes as iat, so exp below lands exactly where computed.
  const iat = Math.floor(now.getTime() / 1000);
  const remaining = inbound.exp - iat;
  if (remaining < 1) throw new MandateError('ERR_UNAUTHENTICATED', 'the agent\'s token has expired: no upstream token outlives it');
  return mintAccessToken(keys, {
    iss: opts.issuer,
    sub: inbound.sub,
    principal_iss: inbound.principal_iss,
    aud: opts.audience,
    client_id: inbound.client_id,
    scope: inbound.scope,
    ...(inbound.mandate === undefined ? {} : { mandate: inbound.mandate }),
    ...(inbound.act === undefined ? {} : { act: inbound.act }),
    ...(inbound.auth_time === undefined ? {} : { auth_time: inbound.auth_time }),
    ttlSeconds: Math.min(ttl, remaining),
    now,
  });
}

/** Upstream tokens remembered per generation (GenerationalMap); at most twice this many. */
const REMEMBERED_PER_GENERATION = 5_000;

/**
 * Upstream tokens reused across an agent's calls. An agent makes many calls with one token, and each
 * would otherwise sign a new upstream token for the same principal, chain and audience. One is sent
 * again while at least half of its life remains (so the upstream always gets at least 30 seconds of
 * it), per agent token (its `jti`) and audience; concurrent first calls share one signing.
 *
 * @example
 *   const upstreamTokens = new UpstreamTokens(delegation.keys);
 *   const { token } = await upstreamTokens.forCall(verified, { issuer, audience });
 */
export class UpstreamTokens {
  readonly #minted = new GenerationalMap<string, Promise<{ token: string; claims: AccessTokenClaims }>>(REMEMBERED_PER_GENERATION);

  constructor(private readonly keys: TokenSigningKeys) {}

  async forCall(from: VerifiedAccessToken, opts: UpstreamTokenOptions): Promise<{ token: string; claims: AccessTokenClaims }> {
    const key = `${from.claims.jti} ${opts.audience}`;
    const t = Math.floor((opts.now ?? new Date()).getTime() / 1000);
    const known = this.#minted.get(key);
    if (known !== undefined) {
      const minted = await known.catch(() => undefined);
      if (minted !== undefined && (minted.claims.exp - t) * 2 >= minted.claims.exp - minted.claims.iat) return minted;
    }
    const minting = mintUpstreamToken(this.keys, from, opts);
    this.#minted.set(key, minting);
    minting.catch(() => this.#minted.delete(key));
    return minting;
  }
}
