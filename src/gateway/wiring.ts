/**
 * The gateway's parts as `mandate up` builds them from the configuration: the rate limiter (in
 * memory, or shared through Redis) and the upstream credentials (a short token of ours for the
 * upstream's audience carrying the same principal and act chain, reused while half its life
 * remains, or a vault secret, and a Transaction Token).
 */
import { Redis } from 'ioredis';
import type { GatewayConfig } from '../config/types.ts';
import type { TokenSigningKeys } from '../delegation/tokens/signing-keys.ts';
import { mintTxnToken, TXN_TOKEN_HEADER } from '../delegation/tokens/txn-token.ts';
import { UpstreamTokens } from '../delegation/tokens/upstream.ts';
import { currentTraceIds } from '../observability/tracing.ts';
import type { Vault } from './vault.ts';
import { MandateError } from '../errors.ts';
import type { UpstreamCredentials } from './gateway.ts';
import { MemoryRateLimiter, type RateLimiter } from './rate-limit.ts';
import { RedisRateLimiter } from './rate-limit-redis.ts';

export function rateLimiter(config: GatewayConfig, closers: Array<() => Promise<void> | void>): RateLimiter | undefined {
  const r = config.rateLimits;
  if (!r.agent && !r.principal && !r.tool) return undefined;
  if (r.store === 'memory') return new MemoryRateLimiter({ maxBuckets: r.maxBuckets });
  const redis = new Redis(r.redisUrl?.reveal() ?? '', { lazyConnect: false, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  redis.on('error', () => undefined); // reported through the limiter, which fails closed
  closers.push(() => void redis.disconnect());
  return new RedisRateLimiter({ redis, prefix: '{mandate-rl}:' });
}

export interface UpstreamCredentialOptions {
  issuer: string;
  trustDomain: string;
  keys: TokenSigningKeys;
  vault: Vault;
  txnToken: GatewayConfig['txnToken'];
}

/**
 * What goes upstream in place of the agent's credentials: the tool server's configured credential
 * (a token of ours for its audience, a vault secret, or nothing) and, when enabled, a Transaction
 * Token saying for whom and by which agent the call is made.
 */
export function upstreamCredentials(o: UpstreamCredentialOptions): UpstreamCredentials {
  const workload = `spiffe://${o.trustDomain}/mandate/gateway`;
  const upstreamTokens = new UpstreamTokens(o.keys);
  return async (server, caller, call) => {
    const headers: Record<string, string> = {};
    const c = server.credential;
    if (c.type === 'obo_token') {
      const { token } = await upstreamTokens.forCall(caller.token, { issuer: o.issuer, audience: c.audience });
      headers[c.header] = `${c.prefix}${token}`;
    } else if (c.type === 'secret') {
      const secret = await o.vault.forUpstream(server, caller.principal);
      // Fail closed: without its credential the upstream would see an anonymous call.
      if (secret === undefined) {
        throw new MandateError('ERR_FORBIDDEN', c.owner === 'server'
          ? `tool server ${server.name} has no secret ${c.secret} in the vault yet`
          : `no secret ${c.secret} is set for this person: set it on the account page (/account/secrets) or ask an admin`);
      }
      headers[c.header] = `${c.prefix}${secret}`;
    }
    if (o.txnToken.enabled) {
      const t = caller.token;
      const { token } = await mintTxnToken(o.keys, {
        issuer: o.issuer, trustDomain: o.trustDomain, principal: caller.principal, chain: t.chain, mandateId: t.mandateId,
        scope: t.claims.scope, server: server.name, method: call.method, tool: call.tool, workload,
        sourceAddress: caller.sourceAddress, traceId: currentTraceIds()?.traceId,
        ttlSeconds: o.txnToken.ttlSeconds, subjectExpiresAt: t.claims.exp,
      });
      headers[TXN_TOKEN_HEADER] = token;
    }
    return headers;
  };
}
