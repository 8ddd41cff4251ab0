/**
 * The demo MCP tool server: a small issue tracker with four tools (list_issues, get_issue,
 * add_comment, delete_issue) over an in-memory store, built with the MCP SDK. It is the upstream the
 * demo gateway stands in front of, so it behaves like a real tool server: Streamable HTTP with
 * sessions (protocol 2025-11-25: POST/GET/DELETE on /mcp, `Mcp-Session-Id`) and stateless single
 * POSTs, loopback-only by default, Origin and Host checked against DNS rebinding.
 *
 * With `verifyCaller` every request must carry an access token of the delegation authority for this
 * server (`Authorization: Bearer`, `typ: at+jwt`, issuer, audience, signature by a key of the
 * authority's JWKS): that is how the upstream learns which principal and agent the gateway vouches
 * for, and add_comment records them as the comment's author. A `Txn-Token` header is shown to the
 * tools for display; it is verified with the same JWKS (`typ: txntoken+jwt`) when there is one.
 *
 * @example
 *   const tracker = await startIssueTracker({ verifyCaller: { issuer, jwksUrl: `${issuer}/oauth/jwks`, audience } });
 *   tracker.url   // http://127.0.0.1:40123/mcp
 *   await tracker.close();
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  isInitializeRequest, SetLevelRequestSchema,
  type CallToolResult, type LoggingLevel, type ServerNotification, type ServerRequest,
} from '@modelcontextprotocol/sdk/types.js';
import { createRemoteJWKSet, decodeJwt, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { isLoopbackHost, urlHost } from '../config/address.ts';
import { MemoryReplayGuard } from '../delegation/binding/replay.ts';
import { isOAuthError } from '../delegation/oauth/errors.ts';
import { AccessTokenVerifier, describeJoseError, TOKEN_ALGORITHMS, type VerifiedAccessToken } from '../delegation/tokens/verify.ts';
import { isMandateError, MandateError } from '../errors.ts';
import { readBody, sendJson } from '../server/http/context.ts';

// ---------------------------------------------------------------------------------------------
// The store

export type IssueState = 'open' | 'closed';

export interface Comment {
  id: number;
  body: string;
  /** The principal's `sub` the comment was written for; null when the caller was not verified. */
  author: string | null;
  /** The agent that wrote it (outermost `act.sub`); null when the caller was not verified. */
  agent: string | null;
  /** The `txn` claim of the request's Txn-Token, when it carried one. */
  transaction: string | null;
  createdAt: string;
}

export interface IssueSummary {
  number: number;
  title: string;
  state: IssueState;
  labels: string[];
  comments: number;
}

export interface IssueDetail {
  number: number;
  title: string;
  state: IssueState;
  labels: string[];
  body: string;
  comments: Comment[];
}

export interface SeedRepository {
  repository: string;
  issues: IssueDetail[];
}

const SEEDED_AT = '2025-01-15T09:00:00.000Z';

/** The demo data: two acme/ repositories the demo policies let the triage bot work on, and one they do not. */
export const DEMO_ISSUES: readonly SeedRepository[] = [
  {
    repository: 'acme/api',
    issues: [
      {
        number: 1, title: 'Rate limiter drops requests during bursts', state: 'open', labels: ['bug', 'p1'],
        body: 'Under a burst of 200 requests the limiter rejects about 10% even though the budget allows them.',
        comments: [{ id: 1, body: 'Reproduced with the load test from #2.', author: 'bob', agent: null, transaction: null, createdAt: SEEDED_AT }],
      },
      { number: 2, title: 'Add a load test for the public API', state: 'open', labels: ['testing'], body: 'We need a repeatable load test in CI.', comments: [] },
      { number: 3, title: 'Document pagination of /v1/orders', state: 'closed', labels: ['docs'], body: 'The cursor parameter is undocumented.', comments: [] },
    ],
  },
  {
    repository: 'acme/web',
    issues: [
      { number: 1, title: 'Dark mode: low contrast on secondary buttons', state: 'open', labels: ['bug', 'accessibility'], body: 'Contrast ratio is 2.9:1; WCAG AA needs 4.5:1.', comments: [] },
      { number: 2, title: 'Login form forgets the e-mail address', state: 'open', labels: ['bug'], body: 'After a failed login the e-mail field is empty again.', comments: [] },
    ],
  },
  {
    repository: 'other/secret-project',
    issues: [
      { number: 1, title: 'Launch plan (confidential)', state: 'open', labels: ['internal'], body: 'Not for agents of other teams.', comments: [] },
    ],
  },
];

/** Issues by repository, in memory. Every read returns copies, so callers cannot change the store. */
export class IssueStore {
  readonly #repositories = new Map<string, Map<number, IssueDetail>>();
  #nextCommentId = 1;

  constructor(seed: readonly SeedRepository[] = DEMO_ISSUES) {
    for (const { repository, issues } of seed) {
      this.#repositories.set(repository, new Map(issues.map((issue) => [issue.number, structuredClone(issue)])));
      for (const issue of issues) for (const c of issue.comments) this.#nextCommentId = Math.max(this.#nextCommentId, c.id + 1);
    }
  }

  repositories(): string[] {
    return [...this.#repositories.keys()];
  }

  list(repository: string): IssueSummary[] {
    return [...this.#repository(repository).values()].map(({ number, title, state, labels, comments }) => ({
      number, title, state, labels: [...labels], comments: comments.length,
    }));
  }

  get(repository: string, number: number): IssueDetail {
    return structuredClone(this.#issue(repository, number));
  }

  addComment(repository: string, number: number, input: Omit<Comment, 'id' | 'createdAt'>): Comment {
    const issue = this.#issue(repository, number);
    const comment: Comment = { id: this.#nextCommentId++, ...input, createdAt: new Date().toISOString() };
    issue.comments.push(comment);
    return structuredClone(comment);
  }

  delete(repository: string, number: number): void {
    this.#issue(repository, number);
    this.#repository(repository).delete(number);
  }

  #repository(repository: string): Map<number, IssueDetail> {
    const found = this.#repositories.get(repository);
    if (!found) throw new MandateError('ERR_NOT_FOUND', `repository ${JSON.stringify(repository)} does not exist`);
    return found;
  }

  #issue(repository: string, number: number): IssueDetail {
    const found = this.#repository(repository).get(number);
    if (!found) throw new MandateError('ERR_NOT_FOUND', `issue #${number} does not exist in ${repository}`);
    return found;
  }
}

// ---------------------------------------------------------------------------------------------
// Who is calling, as the tools see it

/** What the tools know of the caller: set per HTTP request from the verified access token and Txn-Token. */
export interface CallerContext {
  /** The principal the gateway vouches for (`principal_iss`, `sub`); absent without caller verification. */
  principal?: { issuer: string; subject: string };
  /** The agent acting now: the outermost `act.sub`. */
  agent?: string;
  /** Every actor, outermost first. */
  chain: string[];
  scopes: string[];
  /** The claims of the request's Txn-Token, for display; `verified` says whether its signature was checked. */
  txnToken?: { verified: boolean; claims: JWTPayload };
}

type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;

function callerOf(extra: ToolExtra): CallerContext | undefined {
  return extra.authInfo?.extra?.caller as CallerContext | undefined;
}

// ---------------------------------------------------------------------------------------------
// The MCP server

const repositoryArg = z.string().min(1).max(200).regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/)
  .describe('The repository as owner/name, e.g. acme/api');
const issueArg = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).describe('The issue number within the repository');
const commentOutput = z.object({
  id: z.number().int(), body: z.string(), author: z.string().nullable(), agent: z.string().nullable(),
  transaction: z.string().nullable(), createdAt: z.string(),
});
const stateOutput = z.enum(['open', 'closed']);

const LOG_LEVELS: readonly LoggingLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

export interface IssueTrackerServerOptions {
  /** Shared by every session of one tracker; a fresh store seeded with DEMO_ISSUES by default. */
  store?: IssueStore;
}

/**
 * The issue tracker's McpServer, ready to connect to one transport. Tools answer with text and
 * structuredContent; an unknown repository or issue is a tool error (`isError`), not a protocol error.
 * When a call carries a progress token the tool reports progress, and writes send a log message
 * (`notifications/message`, respecting `logging/setLevel`) on the call's own stream.
 */
export function createIssueTrackerServer(opts: IssueTrackerServerOptions = {}): McpServer {
  const store = opts.store ?? new IssueStore();
  const server = new McpServer(
    { name: 'mandate-demo-issues', title: 'Demo issue tracker', version: '1.0.0' },
    { capabilities: { logging: {} }, instructions: 'A demo issue tracker: list and read issues, comment on them, delete them. Each repository is also a resource (issues://<owner>/<repo>), and two prompts help triage.' },
  );
  const log = logSender(server);

  server.registerTool('list_issues', {
    title: 'List issues',
    description: "Lists a repository's issues with their state, labels and number of comments.",
    inputSchema: { repository: repositoryArg },
    outputSchema: {
      repository: z.string(),
      issues: z.array(z.object({ number: z.number().int(), title: z.string(), state: stateOutput, labels: z.array(z.string()), comments: z.number().int() })),
    },
    annotations: { readOnlyHint: true, openWorldHint: false },
  }, async ({ repository }, extra) => toolResult(async () => {
    const issues = store.list(repository);
    await progress(extra, `listed ${issues.length} issues of ${repository}`);
    const lines = issues.map((i) => `#${i.number} [${i.state}] ${i.title}${i.labels.length ? ` (${i.labels.join(', ')})` : ''} — ${plural(i.comments, 'comment')}`);
    return { text: [`${repository}: ${plural(issues.length, 'issue')}`, ...lines].join('\n'), structured: { repository, issues } };
  }));

  server.registerTool('get_issue', {
    title: 'Read an issue',
    description: 'Reads one issue with its description and comments.',
    inputSchema: { repository: repositoryArg, issue: issueArg },
    outputSchema: {
      repository: z.string(),
      issue: z.object({ number: z.number().int(), title: z.string(), state: stateOutput, labels: z.array(z.string()), body: z.string(), comments: z.array(commentOutput) }),
    },
    annotations: { readOnlyHint: true, openWorldHint: false },
  }, async ({ repository, issue }, extra) => toolResult(async () => {
    const found = store.get(repository, issue);
    await progress(extra, `read ${repository}#${issue}`);
    const comments = found.comments.map((c) => `- ${describeAuthor(c)}: ${c.body}`);
    const text = [`${repository}#${found.number} [${found.state}] ${found.title}`, found.body, `${plural(found.comments.length, 'comment')}`, ...comments].join('\n');
    return { text, structured: { repository, issue: found } };
  }));

  server.registerTool('add_comment', {
    title: 'Comment on an issue',
    description: 'Adds a comment to an issue, written for the calling principal by the calling agent.',
    inputSchema: { repository: repositoryArg, issue: issueArg, body: z.string().min(1).max(10_000).describe('The comment text (Markdown)') },
    outputSchema: { repository: z.string(), issue: z.number().int(), comment: commentOutput },
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  }, async ({ repository, issue, body }, extra) => toolResult(async () => {
    const caller = callerOf(extra);
    const txn = caller?.txnToken?.claims.txn;
    const comment = store.addComment(repository, issue, {
      body, author: caller?.principal?.subject ?? null, agent: caller?.agent ?? null, transaction: typeof txn === 'string' ? txn : null,
    });
    await progress(extra, `commented on ${repository}#${issue}`);
    await log(extra, 'info', { event: 'comment.added', repository, issue, comment: comment.id });
    return { text: `Comment ${comment.id} added to ${repository}#${issue} by ${describeAuthor(comment)}.`, structured: { repository, issue, comment } };
  }));

  server.registerTool('delete_issue', {
    title: 'Delete an issue',
    description: 'Deletes an issue and its comments for good.',
    inputSchema: { repository: repositoryArg, issue: issueArg },
    outputSchema: { repository: z.string(), issue: z.number().int(), deleted: z.literal(true) },
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  }, async ({ repository, issue }, extra) => toolResult(async () => {
    store.delete(repository, issue);
    await progress(extra, `deleted ${repository}#${issue}`);
    await log(extra, 'warning', { event: 'issue.deleted', repository, issue });
    return { text: `Deleted ${repository}#${issue}.`, structured: { repository, issue, deleted: true } };
  }));

  // Each repository's issue list as a resource, issues://<owner>/<repo> (listed, and as a template).
  server.registerResource('repository-issues', new ResourceTemplate('issues://{owner}/{repo}', {
    list: async () => ({
      resources: store.repositories().map((repository) => ({ uri: `issues://${repository}`, name: repository, title: `Issues of ${repository}`, mimeType: 'application/json' })),
    }),
  }), {
    title: "A repository's issues",
    description: "A repository's issues with their state, labels and number of comments, as JSON.",
    mimeType: 'application/json',
  }, async (uri, { owner, repo }) => {
    const repository = `${String(owner)}/${String(repo)}`;
    return { contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify({ repository, issues: store.list(repository) }) }] };
  });

  server.registerPrompt('triage', {
    title: 'Triage a repository',
    description: "Asks for a triage of a repository's open issues: what to fix first, what needs more information.",
    argsSchema: { repository: repositoryArg },
  }, ({ repository }) => ({
    messages: [{ role: 'user', content: { type: 'text', text: `Triage the open issues of ${repository}: list them with list_issues, read the unclear ones with get_issue, and say which to fix first and which need more information. Comment on those that need more information.` } }],
  }));

  server.registerPrompt('purge_closed', {
    title: 'Purge closed issues',
    description: 'Asks for every closed issue of a repository to be deleted.',
    argsSchema: { repository: repositoryArg },
  }, ({ repository }) => ({
    messages: [{ role: 'user', content: { type: 'text', text: `Delete every closed issue of ${repository} with delete_issue.` } }],
  }));

  return server;
}

/** Runs a tool body; a missing repository or issue becomes a tool error the model can read. */
async function toolResult(run: () => Promise<{ text: string; structured: Record<string, unknown> }>): Promise<CallToolResult> {
  try {
    const { text, structured } = await run();
    return { content: [{ type: 'text', text }], structuredContent: structured };
  } catch (err) {
    if (isMandateError(err, 'ERR_NOT_FOUND')) return { content: [{ type: 'text', text: err.message }], isError: true };
    throw err;
  }
}

async function progress(extra: ToolExtra, message: string): Promise<void> {
  const token = extra._meta?.progressToken;
  if (token === undefined) return;
  await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: 1, total: 1, message } });
}

/**
 * Log messages go on the stream of the call they concern (the SDK's sendLoggingMessage would use the
 * session's standalone stream, which a stateless request has not got), so the level the client set
 * is kept here: one McpServer serves one session.
 */
function logSender(server: McpServer): (extra: ToolExtra, level: LoggingLevel, data: Record<string, unknown>) => Promise<void> {
  let minimum: LoggingLevel = 'debug';
  server.server.setRequestHandler(SetLevelRequestSchema, (request) => {
    minimum = request.params.level;
    return {};
  });
  return async (extra, level, data) => {
    if (LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(minimum)) return;
    await extra.sendNotification({ method: 'notifications/message', params: { level, logger: 'issues', data } });
  };
}

function describeAuthor(c: Comment): string {
  const who = c.author ?? 'an unverified caller';
  return c.agent ? `${who} via ${c.agent}` : who;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

// ---------------------------------------------------------------------------------------------
// Streamable HTTP

export interface VerifyCallerOptions {
  /** The delegation authority's issuer: the tokens' `iss`. */
  issuer: string;
  /** Where the authority publishes its token-signing keys. */
  jwksUrl: string;
  /** The audience tokens must carry; the tracker's MCP endpoint URL when omitted. */
  audience?: string;
}

export interface IssueTrackerOptions {
  /** Default 127.0.0.1: only this machine can reach the demo. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** Require and verify the authority's access token on every request. */
  verifyCaller?: VerifyCallerOptions;
  /** Browser origins allowed besides the tracker's own (`http://127.0.0.1:<port>`, ...). */
  allowedOrigins?: string[];
  /** Default: a fresh store seeded with DEMO_ISSUES. */
  store?: IssueStore;
  /** Open sessions at most; initializing another answers 503. Default 256. */
  maxSessions?: number;
  /** Failures that reach no client (a broken stream, a bug): for the caller's log. */
  onError?: (err: unknown) => void;
}

export interface IssueTracker {
  /** The MCP endpoint, e.g. http://127.0.0.1:8421/mcp. */
  url: string;
  store: IssueStore;
  /** Ends every session and stops listening. */
  close(): Promise<void>;
}

const MCP_PATH = '/mcp';
const MAX_BODY_BYTES = 1024 * 1024;
const MAX_TXN_TOKEN_LENGTH = 8 * 1024;
const TXN_TOKEN_TYPE = 'txntoken+jwt';

interface Session {
  transport: StreamableHTTPServerTransport;
  server: McpServer;
  /** The principal and agent that initialized it; only they may use it (session hijacking). */
  owner: string;
}

type Refusal = { status: number; body: unknown; headers?: Record<string, string> };

/** Serves the issue tracker over Streamable HTTP at `/mcp` until `close()`. */
export async function startIssueTracker(opts: IssueTrackerOptions = {}): Promise<IssueTracker> {
  const host = opts.host ?? '127.0.0.1';
  const http = createServer();
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(opts.port ?? 0, host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  const port = (http.address() as AddressInfo).port;
  const url = `http://${urlHost(host)}:${port}${MCP_PATH}`;
  const tracker = new HttpIssueTracker(http, url, host, port, opts);
  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    tracker.handle(req, res).catch((err: unknown) => {
      opts.onError?.(err);
      if (res.headersSent) res.destroy();
      else sendJsonRpcError(res, 500, -32603, 'the issue tracker failed');
    });
  });
  return { url, store: tracker.store, close: () => tracker.close() };
}

class HttpIssueTracker {
  readonly store: IssueStore;
  readonly #sessions = new Map<string, Session>();
  readonly #origins: Set<string>;
  readonly #checkHost: boolean;
  readonly #verifier: AccessTokenVerifier | undefined;
  readonly #keys: JWTVerifyGetKey | undefined;
  readonly #audience: string;
  readonly #maxSessions: number;

  constructor(
    private readonly http: Server,
    private readonly url: string,
    host: string,
    port: number,
    private readonly opts: IssueTrackerOptions,
  ) {
    this.store = opts.store ?? new IssueStore();
    this.#checkHost = isLoopbackHost(host);
    const names = this.#checkHost ? ['127.0.0.1', 'localhost', '[::1]'] : [urlHost(host)];
    this.#origins = new Set([...names.map((name) => `http://${name}:${port}`), ...(opts.allowedOrigins ?? [])]);
    this.#audience = opts.verifyCaller?.audience ?? url;
    this.#maxSessions = opts.maxSessions ?? 256;
    if (opts.verifyCaller) {
      this.#keys = createRemoteJWKSet(new URL(opts.verifyCaller.jwksUrl));
      // The upstream sees plain bearer tokens (the gateway holds them); revocation is the gateway's check.
      this.#verifier = new AccessTokenVerifier({
        issuer: opts.verifyCaller.issuer,
        keys: this.#keys,
        revocation: { isRevoked: () => false },
        dpop: { algorithms: [...TOKEN_ALGORITHMS], replay: new MemoryReplayGuard() },
      });
    }
  }

  async handle(req: IncomingMessage & { auth?: AuthInfo }, res: ServerResponse): Promise<void> {
    const refusal = this.#checkRequest(req) ?? (await this.#authenticate(req));
    if (refusal) {
      sendJson(res, refusal.status, refusal.body, refusal.headers);
      return;
    }
    const sessionId = req.headers['mcp-session-id'];
    if (typeof sessionId === 'string') {
      await this.#inSession(sessionId, req, res);
      return;
    }
    if (req.method !== 'POST') {
      sendJsonRpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required for GET and DELETE');
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse((await readBody(req, MAX_BODY_BYTES)).toString('utf8'));
    } catch (err) {
      if (isMandateError(err, 'ERR_BODY_TOO_LARGE')) sendJsonRpcError(res, 413, -32600, err.message);
      else sendJsonRpcError(res, 400, -32700, 'Parse error: the body is not JSON');
      return;
    }
    const messages: unknown[] = Array.isArray(body) ? body : [body];
    if (messages.some((m) => isInitializeRequest(m))) await this.#newSession(req, res, body);
    else await this.#stateless(req, res, body);
  }

  async close(): Promise<void> {
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    await Promise.allSettled(sessions.flatMap((s) => [s.transport.close(), s.server.close()]));
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  /** Path, method and DNS-rebinding checks (MCP 2025-11-25 transports, Security Warning). */
  #checkRequest(req: IncomingMessage): Refusal | undefined {
    const path = (req.url ?? '').split('?')[0];
    if (path !== MCP_PATH) return jsonRpcRefusal(404, -32000, `Not Found: the MCP endpoint is ${MCP_PATH}`);
    if (this.#checkHost && !isLoopbackHostHeader(req.headers.host)) return jsonRpcRefusal(403, -32000, 'Forbidden: the Host header does not name this machine');
    const origin = req.headers.origin;
    if (origin !== undefined && !this.#origins.has(origin)) return jsonRpcRefusal(403, -32000, 'Forbidden: the Origin is not allowed');
    if (req.method !== 'POST' && req.method !== 'GET' && req.method !== 'DELETE') {
      return { ...jsonRpcRefusal(405, -32000, 'Method Not Allowed'), headers: { allow: 'GET, POST, DELETE' } };
    }
    return undefined;
  }

  /** Sets `req.auth` for the tools from the access token and Txn-Token, or says why the request is refused. */
  async #authenticate(req: IncomingMessage & { auth?: AuthInfo }): Promise<Refusal | undefined> {
    let verified: VerifiedAccessToken | undefined;
    if (this.#verifier) {
      try {
        verified = await this.#verifier.verify({
          authorization: req.headers.authorization, dpop: req.headers.dpop, method: req.method ?? '', url: this.url, audience: this.#audience,
        });
      } catch (err) {
        if (!isOAuthError(err)) throw err;
        return { status: err.status, body: err.toJSON(), headers: err.headers };
      }
    }
    let txnToken: CallerContext['txnToken'];
    try {
      txnToken = await this.#readTxnToken(req.headers['txn-token']);
    } catch (err) {
      return { status: 400, body: { error: 'invalid_request', error_description: `the Txn-Token is not valid: ${describeJoseError(err)}` } };
    }
    if (verified || txnToken) {
      const caller: CallerContext = verified
        ? { principal: verified.principal, agent: verified.actor, chain: verified.chain, scopes: verified.scopes, txnToken }
        : { chain: [], scopes: [], txnToken };
      req.auth = { token: verified?.token ?? '', clientId: verified?.actor ?? '', scopes: caller.scopes, expiresAt: verified?.claims.exp, extra: { caller } };
    }
    return undefined;
  }

  /** Claims for display: verified with the authority's keys when the tracker has them, else only decoded. */
  async #readTxnToken(header: string | string[] | undefined): Promise<CallerContext['txnToken']> {
    if (header === undefined) return undefined;
    if (typeof header !== 'string' || header.length > MAX_TXN_TOKEN_LENGTH) throw new Error('expected one compact JWT of at most 8 KiB');
    if (!this.#keys) return { verified: false, claims: decodeJwt(header) };
    const { payload } = await jwtVerify(header, this.#keys, { typ: TXN_TOKEN_TYPE, algorithms: [...TOKEN_ALGORITHMS], clockTolerance: 30, requiredClaims: ['exp'] });
    return { verified: true, claims: payload };
  }

  async #inSession(sessionId: string, req: IncomingMessage & { auth?: AuthInfo }, res: ServerResponse): Promise<void> {
    const session = this.#sessions.get(sessionId);
    // Someone else's session is answered like a missing one: its id reveals nothing.
    if (!session || session.owner !== ownerOf(req.auth)) {
      sendJsonRpcError(res, 404, -32001, 'Session not found');
      return;
    }
    await session.transport.handleRequest(req, res);
  }

  async #newSession(req: IncomingMessage & { auth?: AuthInfo }, res: ServerResponse, body: unknown): Promise<void> {
    if (this.#sessions.size >= this.#maxSessions) {
      sendJsonRpcError(res, 503, -32000, 'Service Unavailable: too many open sessions');
      return;
    }
    const server = createIssueTrackerServer({ store: this.store });
    const owner = ownerOf(req.auth);
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      maxRequestBodySize: MAX_BODY_BYTES,
      onsessioninitialized: (id) => {
        this.#sessions.set(id, { transport, server, owner });
      },
    });
    transport.onclose = () => {
      if (transport.sessionId !== undefined) this.#sessions.delete(transport.sessionId);
      void server.close().catch((err: unknown) => this.opts.onError?.(err));
    };
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
    if (transport.sessionId === undefined) await transport.close();
  }

  /** A POST without a session: one fresh server and transport for this request alone. */
  async #stateless(req: IncomingMessage & { auth?: AuthInfo }, res: ServerResponse, body: unknown): Promise<void> {
    const server = createIssueTrackerServer({ store: this.store });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, maxRequestBodySize: MAX_BODY_BYTES });
    res.on('close', () => {
      void transport.close().then(() => server.close()).catch((err: unknown) => this.opts.onError?.(err));
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  }
}

function ownerOf(auth: AuthInfo | undefined): string {
  const caller = auth?.extra?.caller as CallerContext | undefined;
  return caller?.principal ? JSON.stringify([caller.principal.issuer, caller.principal.subject, caller.agent ?? null]) : '';
}

/** True when the Host header is a loopback name or address with an optional port, and nothing else. */
function isLoopbackHostHeader(host: string | undefined): boolean {
  if (host === undefined || !/^[A-Za-z0-9.:[\]-]+$/.test(host)) return false;
  let hostname: string;
  try {
    hostname = new URL(`http://${host}`).hostname;
  } catch {
    return false;
  }
  return isLoopbackHost(hostname);
}

function jsonRpcRefusal(status: number, code: number, message: string): Refusal {
  return { status, body: { jsonrpc: '2.0', error: { code, message }, id: null } };
}

function sendJsonRpcError(res: ServerResponse, status: number, code: number, message: string): void {
  const { body } = jsonRpcRefusal(status, code, message);
  sendJson(res, status, body);
}
