/**
 * Transaction Tokens (draft-ietf-oauth-transaction-tokens-10): how the gateway tells an upstream, in
 * a form it can verify, for whom and by which agent a call is made. Sent in the `Txn-Token` header,
 * never in Authorization (which carries the upstream's own credential). Signed with the delegation
 * authority's token keys, so the JWKS that verifies our access tokens verifies these too; `typ` is
 * `txntoken+jwt` and nothing else is accepted as one, nor is one accepted as an access token
 * (RFC 8725 §3.11).
 *
 * Claims: `aud` is the trust domain the token is valid in; `sub` and `principal_iss` the principal
 * (as in our access tokens: the subject is unique within its identity provider, the pair within the
 * trust domain); `act` the delegation chain, outermost = the agent calling now; `scope` the scopes of
 * the agent's token; `req_wl` the gateway that asked for it; `tctx` the immutable facts of the call
 * (tool server, method, tool, mandate); `rctx` the request's environment (the agent's address, the
 * W3C trace id).
 *
 * `txn` is fresh for every gateway call, not the trace id: one agent trace spans many gateway calls,
 * and a workload that refuses a `txn` it has seen (the draft's replay defence) would refuse every call
 * after the first. The trace id travels in `rctx.trace_id` for correlation instead.
 *
 * @example
 *   const { token } = await mintTxnToken(delegation.keys, {
 *     issuer, trustDomain: 'example.org', principal: verified.principal, chain: verified.chain,
 *     mandateId: verified.mandateId, scope: verified.scopes, server: 'issues', method: 'tools/call',
 *     tool: 'comment', workload: 'spiffe://example.org/mandate/gateway', sourceAddress, traceId, ttlSeconds: 60,
 *     subjectExpiresAt: verified.claims.exp,
 *   });
 *   headers[TXN_TOKEN_HEADER] = token;
 */
import { randomUUID } from 'node:crypto';
import { jwtVerify, type JWTVerifyGetKey } from 'jose';
import { MandateError } from '../../errors.ts';
import { actChain, MAX_ACT_NESTING, pushActor, type ActClaim } from './claims.ts';
import { signJwt } from './mint.ts';
import type { TokenSigningKeys } from './signing-keys.ts';
import { describeJoseError, TOKEN_ALGORITHMS } from './verify.ts';

export const TXN_TOKEN_TYPE = 'txntoken+jwt';
/** The request header a Txn-Token travels in (draft §"Txn-Token" HTTP Header); lower case as Node names headers. */
export const TXN_TOKEN_HEADER = 'txn-token';
/** Txn-Tokens are short-lived by design; the gateway's configured lifetime must not exceed this. */
export const MAX_TXN_TOKEN_TTL = 300;

const MAX_TOKEN_LENGTH = 8 * 1024;
const TXN_ID = /^[\x21-\x7e]{1,128}$/;

/** The immutable facts of the call (`tctx`). */
export interface TransactionContext {
  /** The tool server's name (config `gateway.tool_servers[].name`). */
  server: string;
  /** The MCP method (`tools/call`) or the HTTP method and route (`GET /repos/{owner}/issues`). */
  method: string;
  tool?: string;
  mandate?: string;
}

/** The request's environment (`rctx`). */
export interface TxnRequestContext {
  /** The agent's address as the gateway saw it. */
  req_ip?: string;
  /** The W3C trace id of the call. */
  trace_id?: string;
}

export interface TxnTokenClaims {
  iss: string;
  iat: number;
  exp: number;
  /** The trust domain the token is valid in. */
  aud: string;
  /** Unique per gateway call. */
  txn: string;
  sub: string;
  principal_iss: string;
  /** Space-separated. */
  scope: string;
  act?: ActClaim;
  /** The workload that requested the token: the gateway. */
  req_wl: string;
  tctx: TransactionContext;
  rctx: TxnRequestContext;
}

export interface TxnTokenInput {
  issuer: string;
  trustDomain: string;
  /** Default: a fresh UUID. */
  txn?: string;
  principal: { issuer: string; subject: string };
  /** The delegation chain, outermost (the agent calling now) first, as `VerifiedAccessToken.chain`. */
  chain: readonly string[];
  mandateId?: string;
  scope: string | readonly string[];
  server: string;
  method: string;
  tool?: string;
  /** The gateway's own identifier (`req_wl`). */
  workload: string;
  sourceAddress?: string;
  traceId?: string;
  ttlSeconds: number;
  /** The `exp` of the agent's token: the Txn-Token never outlives it, and none is minted once it has passed. */
  subjectExpiresAt?: number;
  now?: Date;
}

function bad(message: string): MandateError {
  return new MandateError('ERR_INTERNAL', `cannot mint a Txn-Token: ${message}`);
}

/** The `act` claim for a chain listed outermost first. */
function actOf(chain: readonly string[]): ActClaim | undefined {
  if (chain.length > MAX_ACT_NESTING) throw bad(`the delegation chain is longer than ${MAX_ACT_NESTING}`);
  return chain.reduceRight<ActClaim | undefined>((inner, actor) => pushActor(actor, inner), undefined);
}

export async function mintTxnToken(keys: TokenSigningKeys, input: TxnTokenInput): Promise<{ token: string; claims: TxnTokenClaims }> {
  const { ttlSeconds } = input;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TXN_TOKEN_TTL) {
    throw new MandateError('ERR_CONFIG_INVALID', `a Txn-Token lives 1 to ${MAX_TXN_TOKEN_TTL} seconds, not ${String(ttlSeconds)}`);
  }
  const txn = input.txn ?? randomUUID();
  if (!TXN_ID.test(txn)) throw bad('txn must be 1 to 128 printable characters without spaces');
  for (const [name, value] of [['trustDomain', input.trustDomain], ['server', input.server], ['method', input.method], ['workload', input.workload]] as const) {
    if (value === '') throw bad(`${name} is empty`);
  }
  const iat = Math.floor((input.now ?? new Date()).getTime() / 1000);
  let exp = iat + ttlSeconds;
  if (input.subjectExpiresAt !== undefined) {
    if (input.subjectExpiresAt <= iat) throw new MandateError('ERR_UNAUTHENTICATED', 'the agent\'s token has expired: no Txn-Token is minted from it');
    exp = Math.min(exp, input.subjectExpiresAt);
  }
  const act = actOf(input.chain);
  const tctx: TransactionContext = { server: input.server, method: input.method };
  if (input.tool !== undefined) tctx.tool = input.tool;
  if (input.mandateId !== undefined) tctx.mandate = input.mandateId;
  const rctx: TxnRequestContext = {};
  if (input.sourceAddress) rctx.req_ip = input.sourceAddress;
  if (input.traceId) rctx.trace_id = input.traceId;
  const claims: TxnTokenClaims = {
    iss: input.issuer, iat, exp, aud: input.trustDomain, txn,
    sub: input.principal.subject, principal_iss: input.principal.issuer,
    scope: typeof input.scope === 'string' ? input.scope : input.scope.join(' '),
    ...(act === undefined ? {} : { act }),
    req_wl: input.workload, tctx, rctx,
  };
  return { token: await signJwt(keys, TXN_TOKEN_TYPE, claims), claims };
}

export interface TxnTokenVerifyOptions {
  /** `localKeys(keys)` in process, `createRemoteJWKSet(jwksUri)` elsewhere. */
  keys: JWTVerifyGetKey;
  /** The trust domain this workload is in: the token's `aud` must be exactly this. */
  trustDomain: string;
  /** When set, `iss` must be this (the draft makes `iss` optional; ours always carry it). */
  issuer?: string;
  /** Seconds of leeway for `exp`/`iat`. Default 30. */
  clockToleranceSeconds?: number;
  now?: Date;
}

/**
 * Verifies a Txn-Token as a receiving workload must: signature with a published key, `typ`
 * `txntoken+jwt` (an access token or any other JWT is refused), the trust domain, the times, and the
 * shape of the claims. Fails with ERR_UNAUTHENTICATED naming the failed check.
 */
export async function verifyTxnToken(token: string, opts: TxnTokenVerifyOptions): Promise<TxnTokenClaims> {
  const fail = (why: string, cause?: unknown) => new MandateError('ERR_UNAUTHENTICATED', `the Txn-Token is not valid: ${why}`, { cause });
  if (token.length > MAX_TOKEN_LENGTH) throw fail(`it is longer than ${MAX_TOKEN_LENGTH} characters`);
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, opts.keys, {
      typ: TXN_TOKEN_TYPE,
      audience: opts.trustDomain,
      issuer: opts.issuer,
      algorithms: [...TOKEN_ALGORITHMS],
      clockTolerance: opts.clockToleranceSeconds ?? 30,
      currentDate: opts.now,
      requiredClaims: ['iat', 'exp', 'aud', 'txn', 'sub', 'scope', 'req_wl'],
    }));
  } catch (err) {
    throw fail(describeJoseError(err), err);
  }
  if (typeof payload.aud !== 'string') throw fail('it must name exactly one trust domain');
  for (const name of ['txn', 'sub', 'scope', 'req_wl'] as const) {
    if (typeof payload[name] !== 'string') throw fail(`claim ${name} must be a string`);
  }
  for (const name of ['tctx', 'rctx'] as const) {
    const value = payload[name];
    if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value))) throw fail(`claim ${name} must be a JSON object`);
  }
  try {
    actChain(payload.act as ActClaim | undefined);
  } catch (err) {
    throw fail(err instanceof Error ? err.message : String(err), err);
  }
  return payload as unknown as TxnTokenClaims;
}
