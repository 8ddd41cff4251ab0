/**
 * The gateway: the bailiff at the door of every tool server. For each request to a tool server's
 * path it proves who is calling and for whom (caller.ts), parses the MCP JSON-RPC messages, asks
 * policy about each one (policy.ts), takes rate-limit tokens, swaps in the upstream's own
 * credential (the agent's token and proof never leave this process), forwards, filters lists, and
 * writes the audit record durably before it answers.
 *
 * It sits in front of the router: `handle(req, res)` returns false for paths that are not a tool
 * server's, which the router then serves. The hot path does one token verification, one policy
 * decision per message, and one upstream request on a keep-alive pool.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { randomUUID } from 'node:crypto';
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { Pool, errors as undiciErrors } from 'undici';
import type { AuditTrail, AuditInput } from '../audit/trail.ts';
import type { GatewayConfig, HttpRouteConfig, ToolServerConfig } from '../config/types.ts';
import { peerCertificateChain } from '../delegation/oauth/client-auth.ts';
import { OAuthError } from '../delegation/oauth/errors.ts';
import type { TrustBundleSet } from '../identity/bundle/set.ts';
import { verifyX509Svid } from '../identity/x509-svid/verify.ts';
import { metadataUrl, protectedResourceMetadata } from '../delegation/oauth/resource-metadata.ts';
import type { AccessTokenVerifier } from '../delegation/tokens/verify.ts';
import { MandateError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { httpRequestDuration, httpRequests } from '../observability/metrics.ts';
import { tracer } from '../observability/tracing.ts';
import { readBody, sendError, sendJson } from '../server/http/context.ts';
import type { Store } from '../store/store.ts';
import type { PolicyEngine } from '../policy/engine.ts';
import type { Decision } from '../policy/decide.ts';
import { authenticate, insufficientScope, type Caller } from './caller.ts';
import {
  checkMetadataHeaders, errorResponse, itemErrorResponse, JSONRPC_ERROR, JsonRpcBodyError, mcpCall, parseMessages, serializeResponses,
  type JsonRpcErrorObject, type JsonRpcErrorResponse, type JsonRpcMessage, type JsonRpcRequest, type JsonRpcResponse, type ParsedBody,
} from './mcp/jsonrpc.ts';
import { mapSseStream } from './mcp/sse.ts';
import { StdioMcpServer, UpstreamError } from './upstream/stdio.ts';
import { GatewayPolicy, type McpAction } from './policy.ts';
import type { BucketKey, RateLimiter } from './rate-limit.ts';

/** Headers an agent's request may pass upstream (all others — credentials, cookies, forwarding and certificate headers — stay here). */
const FORWARDED_REQUEST_HEADERS = ['content-type', 'accept', 'mcp-session-id', 'mcp-protocol-version', 'mcp-method', 'mcp-name', 'last-event-id'];
/** Headers an agent's HTTP API request may pass upstream. */
const HTTP_API_REQUEST_HEADERS = ['content-type', 'accept', 'accept-language', 'if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since'];
/** Headers of an upstream's answer passed back to the agent. */
const FORWARDED_RESPONSE_HEADERS = ['content-type', 'mcp-session-id', 'mcp-protocol-version', 'retry-after', 'etag', 'last-modified', 'location'];
const MAX_SESSIONS = 100_000;
/** The MCP list methods whose answers are filtered, with the field of the result that holds the list. */
const LIST_METHODS: ReadonlyMap<string, string> = new Map([
  ['tools/list', 'tools'], ['prompts/list', 'prompts'], ['resources/list', 'resources'], ['resources/templates/list', 'resourceTemplates'],
]);

/** Credentials for an upstream request: header name -> value. */
export type UpstreamCredentials = (server: ToolServerConfig, caller: Caller, call: { method: string; tool?: string }) => Promise<Record<string, string>>;

export interface GatewayOptions {
  config: GatewayConfig;
  /** Our authorization server (the token issuer). */
  issuer: string;
  /** Base URL agents reach the gateway at, without a trailing slash. */
  publicUrl: string;
  verifier: AccessTokenVerifier;
  policy: PolicyEngine;
  audit: AuditTrail;
  store: Store;
  limiter?: RateLimiter;
  credentials: UpstreamCredentials;
  /** Trust bundles (ours and federated) that agents' client certificates verify against. */
  bundles?: () => TrustBundleSet;
  /** Scopes of each delegation resource, for defaults and metadata. */
  resourceScopes: (resource: string) => readonly string[] | undefined;
  logger: Logger;
}

/** A tool server as mounted: its configuration, resolved resource and upstream connection pool. */
interface Mounted {
  config: ToolServerConfig;
  resource: string;
  metadataUrl: string;
  metadataPath: string;
  scopes: readonly string[];
  pool: Pool | undefined;
  upstreamPath: string;
  /** mcp_stdio: the process, once started. */
  stdio: StdioMcpServer | undefined;
  /** HTTP APIs: the routes agents may call. */
  routes: Array<HttpRouteConfig & { match: (path: string) => boolean }>;
}

interface Decided {
  request: JsonRpcRequest;
  action: McpAction | undefined;
  decision: Decision | undefined;
  /** The answer when the gateway answers itself (refused). */
  refusal: JsonRpcErrorResponse | undefined;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export class Gateway {
  readonly #o: GatewayOptions;
  readonly #byPath = new Map<string, Mounted>();
  readonly #byMetadataPath = new Map<string, Mounted>();
  readonly #httpApis: Mounted[] = [];
  /** Verified SVIDs of TLS connections, per connection. */
  readonly #peers = new WeakMap<TLSSocket, string>();
  readonly #policy: GatewayPolicy;
  /** Upstream MCP sessions, bound to the agent and principal that opened them: nobody else may use one. */
  readonly #sessions = new Map<string, string>();

  constructor(opts: GatewayOptions) {
    this.#o = opts;
    this.#policy = new GatewayPolicy(opts.policy, opts.store);
    for (const config of opts.config.toolServers) {
      const resource = config.resource ?? `${opts.publicUrl}${config.path}`;
      const scopes = config.scopes ?? opts.resourceScopes(resource);
      if (scopes === undefined) throw new MandateError('ERR_CONFIG_INVALID', `tool server ${config.name}: resource ${resource} is not among delegation.resources`);
      const upstream = config.url === undefined ? undefined : new URL(config.url);
      const mdUrl = metadataUrl(resource);
      const mounted: Mounted = {
        config, resource, scopes,
        metadataUrl: mdUrl,
        metadataPath: new URL(mdUrl).pathname,
        pool: upstream && new Pool(upstream.origin, { connections: 64, keepAliveTimeout: 10_000, headersTimeout: config.timeout, bodyTimeout: 0 }),
        upstreamPath: upstream === undefined ? '' : config.type === 'http' ? upstream.pathname.replace(/\/+$/, '') : `${upstream.pathname}${upstream.search}`,
        stdio: undefined,
        routes: config.routes.map((r) => ({ ...r, match: compileTemplate(r.path) })),
      };
      if (config.type === 'http') this.#httpApis.push(mounted);
      else this.#byPath.set(config.path, mounted);
      this.#byMetadataPath.set(mounted.metadataPath, mounted);
    }
  }

  /** Starts the tool servers that run as local processes (their MCP handshake included). */
  async start(): Promise<void> {
    for (const m of this.#byPath.values()) {
      const c = m.config;
      if (c.type !== 'mcp_stdio' || !c.command) continue;
      m.stdio = await StdioMcpServer.start({
        name: c.name, command: c.command, env: c.env, cwd: c.cwd, requestTimeoutMs: c.timeout, logger: this.#o.logger.child({ toolServer: c.name }),
      });
    }
  }

  get size(): number {
    return this.#byPath.size;
  }

  /** Serves the request when it is for a tool server (or its metadata); false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse, baseUrl: string = this.#o.publicUrl): boolean {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const mounted = this.#byPath.get(path) ?? this.#httpApiFor(path);
    if (mounted) {
      this.#traced(mounted, req, res, baseUrl);
      return true;
    }
    const described = this.#byMetadataPath.get(path);
    if (described && (req.method === 'GET' || req.method === 'HEAD')) {
      sendJson(res, 200, protectedResourceMetadata({
        resource: described.resource, issuer: this.#o.issuer, scopes: described.scopes, name: described.config.name,
      }), { 'cache-control': 'public, max-age=300' });
      return true;
    }
    return false;
  }

  /** The HTTP API tool server whose path `path` is under, if any. */
  #httpApiFor(path: string): Mounted | undefined {
    for (const m of this.#httpApis) if (path.startsWith(`${m.config.path}/`)) return m;
    return undefined;
  }

  /** Serves in a SERVER span (child of the agent's traceparent), counted and timed like the router's routes. */
  #traced(m: Mounted, req: IncomingMessage, res: ServerResponse, baseUrl: string): void {
    const started = performance.now();
    const method = req.method === 'POST' || req.method === 'GET' || req.method === 'DELETE' ? req.method : '_OTHER';
    const parent = propagation.extract(ROOT_CONTEXT, req.headers);
    const span = tracer.startSpan(`${method} ${m.config.path}`, {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': method, 'http.route': m.config.path, 'mandate.tool_server': m.config.name },
    }, parent);
    // An agent that goes away cancels the upstream request (MCP: closing the stream is the cancellation).
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    context.with(trace.setSpan(parent, span), () => this.#serve(m, req, res, baseUrl, abort.signal).catch(async (err) => {
      await this.#recordRefusal(m, req, err);
      this.#fail(res, err);
    })).finally(() => {
      span.setAttribute('http.response.status_code', res.statusCode);
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      httpRequests.inc({ route: m.config.path, method, status: res.statusCode });
      httpRequestDuration.observe({ route: m.config.path, method }, (performance.now() - started) / 1000);
    });
  }

  /** A caller turned away before any message was decided (no or bad token, missing scope): on the record too. */
  async #recordRefusal(m: Mounted, req: IncomingMessage, err: unknown): Promise<void> {
    if (!(err instanceof OAuthError)) return;
    await this.#o.audit.record({
      type: 'gateway.refused', outcome: 'failure', resource: m.resource, action: req.method,
      result: { status: err.status, error: `${err.error}: ${err.message}` },
      sourceAddress: req.socket.remoteAddress ?? undefined, detail: { server: m.config.name },
    }).catch((e: Error) => this.#o.logger.error({ err: e.message }, 'a gateway refusal could not be recorded'));
  }

  async close(): Promise<void> {
    await Promise.all([...this.#byPath.values(), ...this.#httpApis].map((m) => m.pool?.close()));
    await Promise.all([...this.#byPath.values()].map((m) => m.stdio?.close()));
  }

  #fail(res: ServerResponse, err: unknown): void {
    // The agent went away (the upstream request was cancelled with it): nobody to answer.
    if (res.destroyed || res.writableEnded) return;
    if (err instanceof OAuthError) {
      if (res.headersSent) return void res.destroy();
      sendJson(res, err.status, err.toJSON(), err.headers);
      return;
    }
    if (err instanceof JsonRpcBodyError) {
      if (res.headersSent) return void res.destroy();
      sendJson(res, err.status, err.response());
      return;
    }
    if (err instanceof MandateError) return sendError(res, err);
    this.#o.logger.error({ err: (err as Error).message }, 'gateway request failed');
    sendError(res, new MandateError('ERR_INTERNAL', 'internal error'));
  }

  async #serve(m: Mounted, req: IncomingMessage, res: ServerResponse, baseUrl: string, signal: AbortSignal): Promise<void> {
    const method = req.method ?? 'GET';
    if (m.config.type === 'http') return this.#serveHttpApi(m, req, res, baseUrl, signal);
    if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') {
      throw new MandateError('ERR_METHOD_NOT_ALLOWED', `method ${method} is not allowed on an MCP endpoint (allowed: POST, GET, DELETE)`);
    }
    this.#originAllowed(req, baseUrl);
    const caller = await this.#authenticate(m, req, `${baseUrl}${m.config.path}`);
    const session = header(req, 'mcp-session-id');
    if (session !== undefined) this.#checkSession(session, caller);
    if (method === 'POST') return this.#post(m, req, res, caller, signal);
    if (m.stdio) {
      // No server-initiated stream through the gateway for a local process (the transport allows 405).
      if (method === 'GET') throw new MandateError('ERR_METHOD_NOT_ALLOWED', 'this tool server offers no event stream: use POST');
      if (session !== undefined) this.#sessions.delete(session);
      return void res.writeHead(204).end();
    }
    // GET opens the server's notification stream (2025-11-25); DELETE ends a session.
    const upstream = await this.#forward(m, req, caller, { method }, undefined, signal);
    if (method === 'DELETE' && session !== undefined && upstream.statusCode < 300) this.#sessions.delete(session);
    await this.#relay(m, res, upstream, caller, undefined);
  }

  /** An HTTP API call: the route decides (method and path template), per-route scopes, then forward. */
  async #serveHttpApi(m: Mounted, req: IncomingMessage, res: ServerResponse, baseUrl: string, signal: AbortSignal): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rest = (q < 0 ? url : url.slice(0, q)).slice(m.config.path.length);
    const method = req.method ?? 'GET';
    this.#originAllowed(req, baseUrl);
    const caller = await this.#authenticate(m, req, `${baseUrl}${q < 0 ? url : url.slice(0, q)}`);
    const route = m.routes.find((r) => (r.method === method || (method === 'HEAD' && r.method === 'GET')) && r.match(rest));
    if (!route) throw new MandateError('ERR_NOT_FOUND', `no route ${method} ${rest} on tool server ${m.config.name}`);
    const missing = route.scopes.filter((s) => !caller.token.scopes.includes(s));
    if (missing.length > 0) throw insufficientScope(m.metadataUrl, [...route.scopes], `${method} ${route.path} needs scope ${missing.join(' ')}`);
    const started = performance.now();
    const action = { kind: 'http' as const, server: m.config.name, method, pathTemplate: route.path };
    const limited = await this.#rateLimit(caller, `${method} ${route.path}`);
    const decision = limited ? undefined : this.#policy.decide(await this.#policy.request(caller, action));
    const routeName = `${method} ${route.path}`;
    const record = (outcome: { status?: number; error?: string }, refusal?: string) =>
      this.#recordDecision(m, caller, { action: routeName, tool: routeName, decision, refusal }, outcome, started);
    if (limited) {
      await record({ status: 429 }, limited.message);
      return sendJson(res, 429, { error: 'ERR_RATE_LIMITED', message: limited.message }, { 'retry-after': String(limited.retryAfter) });
    }
    if (decision?.decision !== 'allow') {
      const reason = decision?.reasons.join('; ') || 'no policy allows it';
      const message = decision?.decision === 'approval-required'
        ? `${method} ${route.path} needs a person's approval, which this gateway cannot ask for yet`
        : `${method} ${route.path} is denied by policy: ${reason}`;
      await record({ status: 403 }, message);
      return sendJson(res, 403, { error: decision?.decision === 'approval-required' ? 'ERR_APPROVAL_REQUIRED' : 'ERR_POLICY_DENIED', message, policies: decision?.policies ?? [] });
    }
    const body = method === 'GET' || method === 'HEAD' ? undefined : await readBody(req, this.#o.config.limits.maxBodyBytes);
    const upstream = await this.#forward(m, req, caller, { method, path: `${m.upstreamPath}${rest}${q < 0 ? '' : url.slice(q)}`, tool: `${method} ${route.path}`, headers: HTTP_API_REQUEST_HEADERS }, body, signal)
      .catch(async (err) => {
        await record({ error: upstreamProblem(err).message });
        throw err;
      });
    await record({ status: upstream.statusCode });
    await this.#relay(m, res, upstream, caller, undefined);
  }

  #originAllowed(req: IncomingMessage, baseUrl: string): void {
    // DNS rebinding (MCP transports): a browser page of another origin must not reach the tool server.
    const origin = header(req, 'origin');
    if (origin !== undefined && origin !== new URL(baseUrl).origin) {
      throw new MandateError('ERR_FORBIDDEN', `requests from origin ${origin.slice(0, 200)} are not accepted`);
    }
  }

  /**
   * The SPIFFE ID of the client certificate of a TLS connection, verified as an X.509-SVID of our
   * trust domain or a federated one (once per connection); undefined without a certificate.
   */
  #certificateSpiffeId(req: IncomingMessage): string | undefined {
    const socket = req.socket as TLSSocket;
    if (!socket.encrypted) return undefined;
    const known = this.#peers.get(socket);
    if (known !== undefined) return known;
    const chain = peerCertificateChain(req);
    if (chain.length === 0 || !this.#o.bundles) return undefined;
    let spiffeId: string;
    try {
      spiffeId = verifyX509Svid(chain, this.#o.bundles()).spiffeId.toString();
    } catch (err) {
      throw new OAuthError('invalid_token', `the client certificate is not a valid X.509-SVID: ${(err as Error).message}`, { status: 401 });
    }
    this.#peers.set(socket, spiffeId);
    return spiffeId;
  }

  #authenticate(m: Mounted, req: IncomingMessage, url: string): Promise<Caller> {
    const socket = req.socket as TLSSocket;
    const certificateSpiffeId = this.#certificateSpiffeId(req);
    return authenticate(this.#o.verifier, {
      certificateSpiffeId,
      authorization: header(req, 'authorization'),
      dpop: req.headers.dpop,
      method: req.method ?? 'GET',
      url,
      resource: m.resource,
      metadataUrl: m.metadataUrl,
      scopes: m.scopes,
      clientCertificate: socket.encrypted ? (socket.getPeerX509Certificate?.() ?? undefined) : undefined,
      sourceAddress: req.socket.remoteAddress ?? '',
    });
  }

  #checkSession(session: string, caller: Caller): void {
    const owner = this.#sessions.get(session);
    // An unknown session is the upstream's to refuse; a known one belongs to one agent and principal.
    if (owner !== undefined && owner !== this.#ownerKey(caller)) {
      throw new MandateError('ERR_NOT_FOUND', 'no such MCP session for this agent and principal');
    }
  }

  #ownerKey(caller: Caller): string {
    return `${caller.agent} ${caller.principal.issuer} ${caller.principal.subject}`;
  }

  async #post(m: Mounted, req: IncomingMessage, res: ServerResponse, caller: Caller, signal: AbortSignal): Promise<void> {
    const limits = this.#o.config.limits;
    const type = (header(req, 'content-type') ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json') throw new MandateError('ERR_UNSUPPORTED_MEDIA_TYPE', `an MCP message is sent as application/json (got ${type ? type.slice(0, 100) : 'no content type'})`);
    const raw = await readBody(req, limits.maxBodyBytes);
    const body = parseMessages(raw, { maxBytes: limits.maxBodyBytes, maxBatch: limits.maxBatch, maxDepth: limits.maxDepth });
    if (!body.batch && body.items[0]?.ok) {
      const problem = checkMetadataHeaders(body.items[0].message, req.headers);
      if (problem) return sendJson(res, 400, errorResponse(null, problem.code, problem.message, problem.data));
    }
    const started = performance.now();
    const refused: JsonRpcResponse[] = [];
    const forward: JsonRpcMessage[] = [];
    const decided: Decided[] = [];
    /** The list requests forwarded, by JSON-RPC id: their answers are filtered. */
    const lists = new Map<string | number, string>();
    for (const item of body.items) {
      if (!item.ok) {
        refused.push(itemErrorResponse(item));
        continue;
      }
      if (item.kind !== 'request') {
        forward.push(item.message);
        continue;
      }
      const d = await this.#decide(m, caller, item.message, !body.batch);
      decided.push(d);
      if (d.refusal) refused.push(d.refusal);
      else {
        forward.push(item.message);
        if (LIST_METHODS.has(item.message.method)) lists.set(item.message.id, item.message.method);
      }
    }
    // Refusals are on the record before anyone hears of them.
    await Promise.all(decided.filter((d) => d.refusal).map((d) => this.#record(m, caller, d, { error: d.refusal?.error.message }, started)));
    if (forward.length === 0) {
      const text = serializeResponses(body, refused);
      if (text === undefined) return void res.writeHead(202).end();
      // A lone rate-limited call is an HTTP 429 with Retry-After; in a batch, each message has its error.
      const retryAfter = refused.map(retryAfterOf).find((r) => r !== undefined);
      const status = !body.batch && retryAfter !== undefined ? 429 : 200;
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...(retryAfter !== undefined && { 'retry-after': String(retryAfter) }) });
      return void res.end(text);
    }
    if (m.stdio) return this.#answerFromStdio(m, m.stdio, req, res, caller, body, forward, refused, decided, started, signal);
    const payload = refused.length === 0 && decided.every((d) => !d.refusal) && forward.length === body.items.length
      ? raw
      : Buffer.from(JSON.stringify(body.batch ? forward : forward[0]));
    const first = decided[0];
    const upstream = await this.#forward(m, req, caller, { method: 'POST', tool: first?.action?.tool?.name, mcpMethod: first?.request.method }, payload, signal).catch(async (err) => {
      await Promise.all(decided.filter((d) => !d.refusal).map((d) => this.#record(m, caller, d, { error: upstreamProblem(err).message }, started)));
      throw err;
    });
    // The outcome of every allowed call is durable before the agent sees any of it.
    await Promise.all(decided.filter((d) => !d.refusal).map((d) => this.#record(m, caller, d, { status: upstream.statusCode }, started)));
    const session = upstream.headers['mcp-session-id'];
    if (typeof session === 'string' && !this.#sessions.has(session)) this.#bindSession(session, caller);
    await this.#relay(m, res, upstream, caller, lists, refused, body);
  }

  /**
   * A tool server the gateway runs as a local process: the gateway is the agent's MCP endpoint
   * itself. It answers `initialize` from the process's own handshake (one process serves every
   * agent), keeps the sessions, and passes each allowed request to the process under an id of its
   * own, answering with the agent's id. Notifications from agents are accepted and not passed on.
   *
   * A request that carries a progress token gets the process's progress notifications for it when
   * the agent accepts an event stream: the token goes to the process as one of the gateway's own
   * (agents' tokens may collide; the process serves them all) and comes back as the agent's, and
   * the answer is a stream of those notifications, then the responses.
   */
  async #answerFromStdio(m: Mounted, stdio: StdioMcpServer, req: IncomingMessage, res: ServerResponse, caller: Caller, body: ParsedBody, forward: JsonRpcMessage[], refused: JsonRpcResponse[], decided: Decided[], started: number, signal: AbortSignal): Promise<void> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-store' };
    const acceptsStream = (header(req, 'accept') ?? '').includes('text/event-stream');
    const progress = new ProgressRelay(stdio, acceptsStream ? () => this.#startStream(res, headers) : undefined);
    const answers: JsonRpcResponse[] = [];
    try {
      for (const msg of forward) {
        if (!('method' in msg) || !('id' in msg)) continue;
        const request = msg as JsonRpcRequest;
        if (request.method === 'initialize') {
          const session = randomUUID();
          this.#bindSession(session, caller);
          headers['mcp-session-id'] = session;
          answers.push({ jsonrpc: '2.0', id: request.id, result: stdio.initializeResult });
          continue;
        }
        let outcome: { result: unknown } | { error: JsonRpcErrorObject };
        try {
          outcome = await stdio.request(request.method, progress.params(request.params), { signal, timeoutMs: m.config.timeout });
        } catch (err) {
          const rpc = err instanceof UpstreamError ? err.rpc : { code: JSONRPC_ERROR.UPSTREAM_UNAVAILABLE, message: 'the tool server is unavailable' };
          outcome = { error: rpc };
        }
        const answer: JsonRpcResponse = 'error' in outcome ? { jsonrpc: '2.0', id: request.id, error: outcome.error } : { jsonrpc: '2.0', id: request.id, result: outcome.result };
        if (LIST_METHODS.has(request.method)) this.#filterList(m, caller, request.method, answer);
        answers.push(answer);
      }
    } finally {
      progress.stop();
    }
    await Promise.all(decided.filter((d) => !d.refusal).map((d) => {
      const answer = answers.find((a) => a.id === d.request.id);
      return this.#record(m, caller, d, answer && 'error' in answer ? { error: answer.error.message } : { status: 200 }, started);
    }));
    if (res.headersSent) {
      // The stream is open (progress went out on it): the responses follow as its last events.
      for (const answer of [...answers, ...refused]) res.write(`event: message\ndata: ${JSON.stringify(answer)}\n\n`);
      return void res.end();
    }
    const text = serializeResponses(body, [...answers, ...refused]);
    if (text === undefined) return void res.writeHead(202).end();
    res.writeHead(200, headers);
    res.end(text);
  }

  /** Opens the event stream of a stdio call's answer (once), with the headers gathered so far. */
  #startStream(res: ServerResponse, headers: Record<string, string>): ServerResponse {
    if (!res.headersSent) res.writeHead(200, { ...headers, 'content-type': 'text/event-stream', 'x-accel-buffering': 'no' });
    return res;
  }

  #bindSession(session: string, caller: Caller): void {
    if (this.#sessions.size >= MAX_SESSIONS) this.#sessions.delete(this.#sessions.keys().next().value as string);
    this.#sessions.set(session, this.#ownerKey(caller));
  }

  /** Decides one request: classification, scopes, rate limits, policy. */
  async #decide(m: Mounted, caller: Caller, request: JsonRpcRequest, single: boolean): Promise<Decided> {
    const refuse = (code: number, message: string, data?: unknown): Decided => ({ request, action: undefined, decision: undefined, refusal: errorResponse(request.id, code, message, data) });
    const call = mcpCall(request);
    if (!call.ok) return refuse(call.error.code, call.error.message);
    if (call.kind === 'lifecycle') return { request, action: undefined, decision: undefined, refusal: undefined };
    if (call.kind === 'other' || call.policyMethod === undefined) {
      return refuse(JSONRPC_ERROR.METHOD_NOT_FOUND, `method ${request.method} is not available through the gateway`);
    }
    const tool = call.kind === 'tool' ? call.name : undefined;
    if (tool !== undefined) {
      const needed = m.config.toolScopes[tool] ?? [];
      const missing = needed.filter((s) => !caller.token.scopes.includes(s));
      if (missing.length > 0) {
        // A lone call gets the HTTP step-up challenge (MCP authorization); in a batch, an error for that message.
        if (single) throw insufficientScope(m.metadataUrl, [...needed], `tool ${tool} needs scope ${missing.join(' ')}`);
        return refuse(JSONRPC_ERROR.INSUFFICIENT_SCOPE, `tool ${tool} needs scope ${missing.join(' ')}`, { reason: 'insufficient_scope' });
      }
    }
    const action: McpAction = {
      kind: 'mcp', method: call.policyMethod, server: m.config.name,
      ...(tool !== undefined && { tool: { name: tool } }),
      ...(call.kind === 'resource' && { resourceUri: call.name }),
      ...(call.kind === 'prompt' && { prompt: call.name }),
      ...((call.kind === 'tool' || call.kind === 'prompt') && { arguments: call.arguments ?? {} }),
    };
    const limited = await this.#rateLimit(caller, tool);
    if (limited) {
      return { request, action, decision: undefined, refusal: errorResponse(request.id, JSONRPC_ERROR.RATE_LIMITED, limited.message, { reason: 'rate_limited', retryAfter: limited.retryAfter }) };
    }
    const decision = this.#policy.decide(await this.#policy.request(caller, action));
    if (decision.decision === 'allow') return { request, action, decision, refusal: undefined };
    const data = { reason: decision.reasons.join('; ') || 'no policy allows it', policies: decision.policies };
    const refusal = decision.decision === 'approval-required'
      ? errorResponse(request.id, JSONRPC_ERROR.APPROVAL_REQUIRED, `${describe(action)} needs a person's approval, which this gateway cannot ask for yet`, data)
      : errorResponse(request.id, JSONRPC_ERROR.POLICY_DENIED, `${describe(action)} is denied by policy: ${data.reason}`, data);
    return { request, action, decision, refusal };
  }

  async #rateLimit(caller: Caller, tool: string | undefined): Promise<{ message: string; retryAfter: number } | undefined> {
    const limits = this.#o.config.rateLimits;
    const limiter = this.#o.limiter;
    if (!limiter) return undefined;
    const principal = `${caller.principal.issuer} ${caller.principal.subject}`;
    const keys: BucketKey[] = [];
    if (limits.agent) keys.push({ dimension: 'agent', key: caller.agent, limit: limits.agent });
    if (limits.principal) keys.push({ dimension: 'principal', key: principal, limit: limits.principal });
    if (limits.tool && tool !== undefined) keys.push({ dimension: 'tool', key: `${principal} ${tool}`, limit: limits.tool });
    if (keys.length === 0) return undefined;
    const d = await limiter.take(keys);
    if (d.allowed) return undefined;
    return d.reason === 'limited'
      ? { message: `rate limit per ${d.dimension} reached; retry in ${d.retryAfterSeconds} s`, retryAfter: d.retryAfterSeconds }
      : { message: 'rate limits cannot be checked right now; refused', retryAfter: d.retryAfterSeconds };
  }

  #record(m: Mounted, caller: Caller, d: Decided, result: { status?: number; error?: string }, started: number): Promise<unknown> {
    const a = d.action;
    return this.#recordDecision(m, caller, {
      action: d.request.method, tool: a?.tool?.name ?? a?.prompt ?? a?.resourceUri, arguments: a?.arguments,
      decision: d.decision, refusal: d.refusal?.error.message,
    }, result, started);
  }

  /**
   * The `gateway.decision` audit event of one call: who, for whom, under which mandate, what, the
   * decision (or the gateway's own refusal) and the outcome.
   */
  #recordDecision(
    m: Mounted, caller: Caller,
    call: { action: string; tool: string | undefined; arguments?: unknown; decision: Decision | undefined; refusal: string | undefined },
    result: { status?: number; error?: string }, started: number,
  ): Promise<unknown> {
    const t = caller.token;
    const d = call.decision;
    const event: AuditInput = {
      type: 'gateway.decision',
      outcome: call.refusal !== undefined || result.error !== undefined ? 'failure' : 'success',
      agent: caller.agent,
      principal: caller.principal,
      mandateId: t.mandateId,
      chain: t.chain,
      clientId: t.claims.client_id,
      resource: m.resource,
      action: call.action,
      tool: call.tool,
      arguments: call.arguments,
      decision: d
        ? { decision: d.decision, policies: d.policies, policySetVersion: d.policySetVersion, reasons: d.reasons }
        : call.refusal !== undefined ? { decision: 'deny', policies: [], reasons: [call.refusal] } : undefined,
      result: { ...result, durationMs: Math.round(performance.now() - started) },
      sourceAddress: caller.sourceAddress,
      detail: { server: m.config.name },
    };
    return this.#o.audit.record(event);
  }

  /** Sends the request upstream with the upstream's own credential and trace context, nothing of the agent's. */
  async #forward(m: Mounted, req: IncomingMessage, caller: Caller, call: { method: string; tool?: string; mcpMethod?: string; path?: string; headers?: readonly string[] }, body: Buffer | undefined, signal: AbortSignal) {
    const headers: Record<string, string> = {};
    for (const name of call.headers ?? FORWARDED_REQUEST_HEADERS) {
      const v = header(req, name);
      if (v !== undefined && !/[\r\n]/.test(v)) headers[name] = v;
    }
    propagation.inject(context.active(), headers);
    Object.assign(headers, await this.#o.credentials(m.config, caller, { method: call.mcpMethod ?? call.method, tool: call.tool }));
    try {
      return await (m.pool as Pool).request({
        path: call.path ?? m.upstreamPath,
        method: call.method as 'POST',
        headers,
        body,
        headersTimeout: m.config.timeout,
        signal,
      });
    } catch (err) {
      throw upstreamProblem(err);
    }
  }

  /** Passes the upstream's answer back: status, the MCP headers, the body (lists filtered), our refusals merged in. */
  async #relay(m: Mounted, res: ServerResponse, upstream: Awaited<ReturnType<Pool['request']>>, caller: Caller, lists?: ReadonlyMap<string | number, string>, refused: JsonRpcResponse[] = [], body?: ParsedBody): Promise<void> {
    const headers: Record<string, string> = { 'cache-control': 'no-store' };
    for (const name of FORWARDED_RESPONSE_HEADERS) {
      const v = upstream.headers[name];
      if (typeof v === 'string') headers[name] = v;
    }
    const type = headers['content-type'] ?? '';
    const filter = lists && lists.size > 0 ? (msg: unknown) => {
      const id = (msg as { id?: unknown } | null)?.id;
      const method = typeof id === 'string' || typeof id === 'number' ? lists.get(id) : undefined;
      return method !== undefined && this.#filterList(m, caller, method, msg);
    } : undefined;
    if (type.startsWith('text/event-stream')) {
      res.writeHead(upstream.statusCode, { ...headers, 'x-accel-buffering': 'no' });
      const events = mapSseStream(upstream.body, (ev) => {
        if (!filter || ev.data === '') return ev;
        try {
          const msg = JSON.parse(ev.data) as unknown;
          return filter(msg) ? { ...ev, data: JSON.stringify(msg) } : ev;
        } catch {
          return ev;
        }
      }, { maxEventSize: this.#o.config.limits.maxListBytes });
      for await (const chunk of events) if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
      for (const r of refused) res.write(`event: message\ndata: ${JSON.stringify(r)}\n\n`);
      return void res.end();
    }
    if (type.startsWith('application/json') && (filter || refused.length > 0)) {
      const text = await readLimited(upstream.body, this.#o.config.limits.maxListBytes);
      let answer: unknown;
      try {
        answer = JSON.parse(text);
      } catch {
        throw new MandateError('ERR_UPSTREAM', 'the tool server answered with malformed JSON');
      }
      const answers = Array.isArray(answer) ? answer : [answer];
      if (filter) answers.forEach((a) => filter(a));
      const merged = [...answers, ...refused];
      const out = body?.batch ? JSON.stringify(merged) : JSON.stringify(merged[0]);
      res.writeHead(upstream.statusCode, { ...headers, 'content-length': String(Buffer.byteLength(out)) });
      return void res.end(out);
    }
    res.writeHead(upstream.statusCode, headers);
    for await (const chunk of upstream.body) if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
    res.end();
  }

  /**
   * Removes from a list result what this caller may never use (tools, prompts, resources; resource
   * templates when no resource may be read); true when it changed.
   */
  #filterList(m: Mounted, caller: Caller, method: string, msg: unknown): boolean {
    const result = (msg as { result?: Record<string, unknown> } | null)?.result;
    const field = LIST_METHODS.get(method);
    const items = result && field ? result[field] : undefined;
    if (!result || !field || !Array.isArray(items)) return false;
    const server = m.config.name;
    if (method === 'tools/list') this.#policy.learnTools(server, items as Array<{ name?: unknown; annotations?: unknown }>);
    if (method === 'resources/templates/list') {
      // A template names no resource yet: all are shown unless no resource may be read at all.
      if (items.length === 0 || this.#policy.resourceTemplatesVisible(caller)) return false;
      result[field] = [];
      return true;
    }
    const visible = items.filter((item: { name?: unknown; uri?: unknown } | null) => {
      const key = method === 'resources/list' ? item?.uri : item?.name;
      if (typeof key !== 'string') return false;
      if (method === 'tools/list') return this.#policy.toolVisible(caller, server, key);
      return method === 'prompts/list' ? this.#policy.promptVisible(caller, server, key) : this.#policy.resourceVisible(caller, server, key);
    });
    if (visible.length === items.length) return false;
    result[field] = visible;
    return true;
  }
}

/**
 * Progress notifications of a local process's calls, back to the agent that made each call. While a
 * call runs, its progress token is one of the gateway's own; a notification for it is written to the
 * agent's event stream (opened by the first one) with the agent's token in its place. Without an
 * event stream (the agent accepts JSON only), the agent's token is not passed on and no progress is
 * asked for.
 */
class ProgressRelay {
  readonly #tokens = new Map<string, string | number>();
  #unsubscribe: (() => void) | undefined;

  /** `stream` opens the agent's event stream if it is not open yet and returns it; undefined: JSON only. */
  constructor(private readonly stdio: StdioMcpServer, private readonly stream: (() => ServerResponse) | undefined) {}

  /** The params to send the process: the agent's progress token swapped for one of ours, or dropped. */
  params(params: JsonRpcRequest['params']): JsonRpcRequest['params'] {
    const meta = (params as { _meta?: Record<string, unknown> } | undefined)?._meta;
    const token = meta?.progressToken;
    if (params === undefined || meta === undefined || token === undefined) return params;
    const { progressToken: _theirs, ...rest } = meta;
    if (!this.stream || (typeof token !== 'string' && typeof token !== 'number')) return { ...params, _meta: rest };
    const ours = `mandate-${randomUUID()}`;
    this.#tokens.set(ours, token);
    this.#unsubscribe ??= this.stdio.onNotification((n) => this.#relay(n));
    return { ...params, _meta: { ...rest, progressToken: ours } };
  }

  #relay(n: { method: string; params?: unknown }): void {
    if (n.method !== 'notifications/progress' || !this.stream) return;
    const params = n.params as { progressToken?: unknown } | undefined;
    const theirs = typeof params?.progressToken === 'string' ? this.#tokens.get(params.progressToken) : undefined;
    if (theirs === undefined) return;
    const res = this.stream();
    if (!res.writableEnded && !res.destroyed) res.write(`event: message\ndata: ${JSON.stringify({ ...n, params: { ...params, progressToken: theirs } })}\n\n`);
  }

  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#tokens.clear();
  }
}

/** The Retry-After seconds of a rate-limit refusal. */
function retryAfterOf(r: JsonRpcResponse): number | undefined {
  if (!('error' in r) || r.error.code !== JSONRPC_ERROR.RATE_LIMITED) return undefined;
  return (r.error.data as { retryAfter?: number } | undefined)?.retryAfter;
}

function describe(a: McpAction): string {
  if (a.tool) return `tool ${a.tool.name}`;
  if (a.prompt !== undefined) return `prompt ${a.prompt}`;
  if (a.resourceUri !== undefined) return `resource ${a.resourceUri}`;
  return a.method;
}

/** An upstream failure as the agent may see it: which kind, never the upstream's details. */
function upstreamProblem(err: unknown): MandateError {
  if (err instanceof MandateError) return err;
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
    return new MandateError('ERR_UPSTREAM_TIMEOUT', 'the tool server did not answer in time');
  }
  return new MandateError('ERR_UPSTREAM', 'the tool server is unavailable');
}

async function readLimited(body: AsyncIterable<Uint8Array>, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) throw new MandateError('ERR_UPSTREAM', `the tool server's answer exceeds ${limit} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A matcher for a route template: literal segments and `{name}` parameters (one non-empty segment each). */
function compileTemplate(template: string): (path: string) => boolean {
  const segments = template.split('/').slice(1);
  return (path) => {
    const parts = path.split('/').slice(1);
    if (parts.length !== segments.length) return false;
    return segments.every((seg, i) => {
      const part = parts[i] as string;
      return seg.startsWith('{') ? part.length > 0 : seg === part;
    });
  };
}
