/**
 * The gateway part of the configuration: listeners, limits, rate limits and the tool servers, checked
 * against each other and against the delegation authority's scopes and resources (a tool server's
 * resource must be one tokens can be minted for).
 *
 * @example
 *   const gateway = normaliseGateway(raw.gateway, { delegation, policyDir, publicUrl }, check);
 */
import { parseListen, parseUrl } from './address.ts';
import type { Checker } from './checker.ts';
import type { RawGateway, RawToolServer } from './raw.ts';
import { Secret } from './secret.ts';
import type { DelegationConfig, GatewayConfig, HttpRouteConfig, ListenAddress, ToolServerConfig, UpstreamCredentialConfig } from './types.ts';

export const ENV_REDIS_URL = 'MANDATE_REDIS_URL';
const MAX_TXN_TOKEN_TTL = 300;

/** Paths of Mandate's own APIs and pages: a tool server may not be mounted on or under them. */
const RESERVED_PATHS = ['/admin', '/oauth', '/v1', '/.well-known', '/healthz', '/readyz', '/metrics', '/account', '/consent', '/signin', '/signout'];

interface GatewayContext {
  delegation: Pick<DelegationConfig, 'scopes' | 'resources'>;
  policyDir: string | undefined;
  /** server.public_url when configured (not derived from a port-0 listen address). */
  publicUrl: string | undefined;
}

function listenOf(path: Array<string | number>, value: string, check: Checker): ListenAddress {
  const parsed = parseListen(value);
  if (typeof parsed !== 'string') return parsed;
  check.add(path, `${parsed} (got ${JSON.stringify(value)})`);
  return { host: '127.0.0.1', port: 0 };
}

/** True when `a` equals `b` or one is under the other, segment by segment (`/mcp/x` is under `/mcp`, `/mcpx` is not). */
function pathsOverlap(a: string, b: string): boolean {
  const within = (inner: string, outer: string) => inner === outer || inner.startsWith(outer === '/' ? '/' : `${outer}/`);
  return within(a, b) || within(b, a);
}

export function normaliseGateway(raw: RawGateway, ctx: GatewayContext, check: Checker): GatewayConfig {
  const at = (...path: Array<string | number>) => ['gateway', ...path];
  const redisFromEnv = check.envVar(ENV_REDIS_URL);
  const redisUrl = redisFromEnv ?? raw.rate_limits.redis_url;
  if (raw.rate_limits.store === 'redis' && redisUrl === undefined) check.add(at('rate_limits', 'store'), `store redis needs gateway.rate_limits.redis_url or ${ENV_REDIS_URL}`);
  const toolServers = raw.tool_servers.map((server, i) => normaliseToolServer(server, i, raw, ctx, check));
  checkDistinct(toolServers, check);
  if (toolServers.length > 0 && ctx.policyDir === undefined) {
    check.add(at('tool_servers'), 'the gateway decides every call with the policy engine: set policy.dir');
  }
  return {
    listen: raw.listen === undefined ? undefined : listenOf(at('listen'), raw.listen, check),
    tls: raw.tls && { certFile: check.inputFile(at('tls', 'cert_file'), raw.tls.cert_file), keyFile: check.inputFile(at('tls', 'key_file'), raw.tls.key_file) },
    mtls: raw.mtls && {
      listen: listenOf(at('mtls', 'listen'), raw.mtls.listen, check),
      tls: { certFile: check.inputFile(at('mtls', 'cert_file'), raw.mtls.cert_file), keyFile: check.inputFile(at('mtls', 'key_file'), raw.mtls.key_file) },
    },
    limits: {
      maxBodyBytes: raw.limits.max_body_bytes,
      maxBatch: raw.limits.max_batch,
      maxDepth: raw.limits.max_depth,
      requestTimeout: check.milliseconds(at('limits', 'request_timeout'), raw.limits.request_timeout),
      upstreamTimeout: check.milliseconds(at('limits', 'upstream_timeout'), raw.limits.upstream_timeout),
      maxListBytes: raw.limits.max_list_bytes,
    },
    rateLimits: {
      store: raw.rate_limits.store,
      redisUrl: redisUrl === undefined ? undefined : new Secret(redisUrl, redisFromEnv !== undefined ? `env ${ENV_REDIS_URL}` : 'gateway.rate_limits.redis_url'),
      maxBuckets: raw.rate_limits.max_buckets,
      agent: raw.rate_limits.agent,
      principal: raw.rate_limits.principal,
      tool: raw.rate_limits.tool,
    },
    txnToken: { enabled: raw.txn_token.enabled, ttlSeconds: txnTokenTtl(raw.txn_token.ttl, check) },
    toolServers,
  };
}

/** A Txn-Token lives for one call chain: at most five minutes, whole seconds. */
function txnTokenTtl(raw: RawGateway['txn_token']['ttl'], check: Checker): number {
  const seconds = check.seconds(['gateway', 'txn_token', 'ttl'], raw);
  if (seconds > MAX_TXN_TOKEN_TTL || !Number.isInteger(seconds)) check.add(['gateway', 'txn_token', 'ttl'], `must be whole seconds, at most ${MAX_TXN_TOKEN_TTL / 60}m`);
  return seconds;
}

function checkDistinct(servers: ToolServerConfig[], check: Checker): void {
  servers.forEach((s, i) => {
    servers.slice(0, i).forEach((earlier) => {
      if (earlier.name === s.name) check.add(['gateway', 'tool_servers', i, 'name'], `"${s.name}" is already the name of another tool server`);
      if (pathsOverlap(earlier.path, s.path)) check.add(['gateway', 'tool_servers', i, 'path'], `${s.path} overlaps ${earlier.path} of tool server "${earlier.name}"`);
    });
  });
}

function normaliseToolServer(raw: RawToolServer, index: number, gateway: RawGateway, ctx: GatewayContext, check: Checker): ToolServerConfig {
  const at = (...path: Array<string | number>) => ['gateway', 'tool_servers', index, ...path];
  const path = raw.path.length > 1 ? raw.path.replace(/\/+$/, '') : raw.path;
  if (path.split('/').some((seg) => seg === '.' || seg === '..') || path.includes('//')) check.add(at('path'), 'must not contain empty, "." or ".." segments');
  const reserved = RESERVED_PATHS.find((r) => pathsOverlap(r, path));
  if (reserved !== undefined) check.add(at('path'), `overlaps Mandate's own ${reserved}`);

  const needsUrl = raw.type !== 'mcp_stdio';
  if (needsUrl && raw.url === undefined) check.add(at('url'), `a tool server of type ${raw.type} needs url`);
  if (!needsUrl && raw.url !== undefined) check.add(at('url'), 'a tool server of type mcp_stdio is started with command, not reached at a url');
  if (raw.url !== undefined) check.fetchUrl(at('url'), raw.url);
  if (raw.type === 'mcp_stdio' && raw.command === undefined) check.add(at('command'), 'a tool server of type mcp_stdio needs command');
  if (raw.type !== 'mcp_stdio') {
    for (const key of ['command', 'env', 'cwd'] as const) if (raw[key] !== undefined) check.add(at(key), 'only for type mcp_stdio');
  }
  if (raw.type !== 'http' && raw.routes !== undefined) check.add(at('routes'), 'only for type http');
  if (raw.type === 'http' && raw.tool_scopes !== undefined) check.add(at('tool_scopes'), 'only for MCP tool servers');

  const knownScope = (scope: string, where: Array<string | number>) => {
    if (!(scope in ctx.delegation.scopes)) check.add(where, `unknown scope "${scope}": list it under delegation.scopes`);
  };
  raw.scopes?.forEach((s, i) => knownScope(s, at('scopes', i)));
  const toolScopes = raw.tool_scopes ?? {};
  for (const [tool, scopes] of Object.entries(toolScopes)) scopes.forEach((s, i) => knownScope(s, at('tool_scopes', tool, i)));
  const routes = (raw.routes ?? []).map((r, i): HttpRouteConfig => {
    (r.scopes ?? []).forEach((s, j) => knownScope(s, at('routes', i, 'scopes', j)));
    if (!/^(\/(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z0-9._~!$&'()*+,;=:@-]+))*\/?$/.test(r.path)) {
      check.add(at('routes', i, 'path'), 'must be a path template of literal segments and {name} parameters, e.g. /repos/{owner}/issues');
    }
    return { method: r.method, path: r.path, scopes: r.scopes ?? [] };
  });

  const resource = raw.resource ?? (ctx.publicUrl === undefined ? undefined : `${ctx.publicUrl}${path}`);
  if (resource !== undefined && !ctx.delegation.resources.some((r) => r.uri === resource)) {
    check.add(at(raw.resource === undefined ? 'path' : 'resource'), `resource ${resource} is not among delegation.resources: list it there so tokens can be minted for it`);
  }
  return {
    name: raw.name,
    path,
    type: raw.type,
    url: raw.url,
    command: raw.command,
    env: raw.env ?? {},
    cwd: raw.cwd === undefined ? undefined : check.resolvePath(raw.cwd),
    resource,
    scopes: raw.scopes,
    toolScopes,
    routes,
    credential: normaliseCredential(raw, at, check),
    timeout: raw.timeout === undefined ? check.milliseconds(['gateway', 'limits', 'upstream_timeout'], gateway.limits.upstream_timeout) : check.milliseconds(at('timeout'), raw.timeout),
  };
}

function normaliseCredential(raw: RawToolServer, at: (...p: Array<string | number>) => Array<string | number>, check: Checker): UpstreamCredentialConfig {
  const c = raw.credential;
  const header = (c.header ?? 'authorization').toLowerCase();
  const prefix = c.prefix ?? 'Bearer ';
  if (/[\r\n]/.test(prefix)) check.add(at('credential', 'prefix'), 'must not contain line breaks');
  switch (c.type) {
    case 'none':
      return { type: 'none' };
    case 'obo_token': {
      const origin = raw.url === undefined ? undefined : parseUrl(raw.url)?.origin;
      const audience = c.audience ?? origin;
      if (audience === undefined) check.add(at('credential', 'audience'), 'obo_token needs an audience (no url to take it from)');
      return { type: 'obo_token', audience: audience ?? '', header, prefix };
    }
    case 'secret':
      if (c.secret === undefined) check.add(at('credential', 'secret'), 'type secret needs the vault secret\'s name');
      return { type: 'secret', secret: c.secret ?? '', owner: c.owner ?? 'principal', header, prefix };
  }
}
