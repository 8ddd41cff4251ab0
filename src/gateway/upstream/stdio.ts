/**
 * The gateway's connection to one MCP server that it runs as a local process (MCP 2025-11-25
 * stdio transport): newline-delimited JSON-RPC on the child's stdin and stdout, its stderr as log
 * lines. Several agents share the one process, so the gateway does the MCP handshake itself, once
 * per process, and answers agents' `initialize` from the server's result; agents' requests reach
 * the process under ids assigned here (mapping agents' ids back is the caller's job).
 *
 * Decisions worth knowing:
 * - Environment: the child gets exactly the configured variables, plus Mandate's own `PATH` when
 *   the configuration sets none (program lookup, and servers started through `npx` or a shell
 *   script, need one; a search path is no secret). Nothing else is inherited, so `MANDATE_KEK`,
 *   `MANDATE_ADMIN_TOKEN` and the like never reach a tool server.
 * - Messages and logs name the program (`command[0]`) but never its arguments or environment,
 *   which may carry credentials.
 * - The gateway offers no client capabilities: server-to-client requests (sampling, roots,
 *   elicitation) are answered with -32601 Method not found; only `ping` is answered (with `{}`),
 *   as MCP says either side may ping. Server notifications go to `onNotification` listeners.
 * - What the server writes to stdout is read within bounds: a line longer than `maxLineBytes`,
 *   or one that is not valid JSON-RPC, is logged (its size and what is wrong, never its content)
 *   and skipped. Lines are split on LF bytes, which never occur inside UTF-8 sequences or JSON
 *   strings, so binary output cannot desynchronise the reader.
 * - stderr is the server's own log, and MCP says it does not mean an error: lines (cut at 4 KiB)
 *   go to the logger at debug once the server is up, and at warn before its handshake completes,
 *   where they usually say why it does not start.
 * - When the process exits, every pending request fails with UPSTREAM_UNAVAILABLE and the process
 *   is started again after an exponential backoff (bounded by `restart.maxDelayMs`; the backoff
 *   resets once a process has stayed up for `maxDelayMs`), with a new handshake. Requests made
 *   while it is down fail at once with UPSTREAM_UNAVAILABLE rather than queue.
 * - The child runs in its own process group (POSIX), and signals go to the group, so a server
 *   started through a wrapper (`npx`, a shell) is stopped with everything it started; whatever
 *   of the group outlives the process it started is killed when that process exits.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { MandateError, messageOf } from '../../errors.ts';
import type { Logger } from '../../observability/logger.ts';
import {
  JSONRPC_ERROR,
  parseMessages,
  type JsonRpcErrorObject,
  type JsonRpcLimits,
  type JsonRpcNotification,
  type JsonRpcParams,
  type JsonRpcRequest,
  type JsonRpcResponse,
  type ParsedItem,
} from '../mcp/jsonrpc.ts';

/** The protocol revision the gateway asks for in `initialize`. */
export const STDIO_PROTOCOL_VERSION = '2025-11-25';
/** Revisions a server may answer with: those whose stdio messages the gateway relays unchanged. */
export const STDIO_ACCEPTED_PROTOCOL_VERSIONS: readonly string[] = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'];
export const DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024;
export const DEFAULT_RESTART = { minDelayMs: 250, maxDelayMs: 30_000 } as const;
export const DEFAULT_CLOSE_GRACE_MS = 2_000;

const CLIENT_INFO = { name: 'mandate-gateway', version: '0.1.0' } as const;
const STDERR_MAX_LINE_BYTES = 4096;
/** Tool results can nest more deeply than agents' requests may; still bounded. */
const STDOUT_LIMITS: Omit<JsonRpcLimits, 'maxBytes'> = { maxBatch: 64, maxDepth: 256 };
/** Skipped stdout lines: the first few are logged, then one in every thousand. */
const SKIP_LOG_FIRST = 10;
const SKIP_LOG_EVERY = 1000;
/** After the process exits, how long to wait for the rest of its stdout. */
const STDOUT_DRAIN_MS = 100;
const PROCESS_GROUPS = process.platform !== 'win32';

// ---------------------------------------------------------------------------------------------
// Public types

export interface StdioMcpServerOptions {
  /** The tool server's name from the configuration, for logs and messages. */
  name: string;
  /** Program and arguments; no shell is involved. */
  command: readonly string[];
  /** The child's whole environment (plus `PATH` when absent, see the module comment). */
  env: Readonly<Record<string, string>>;
  cwd?: string;
  logger: Logger;
  /** Default time a request (and the `initialize` handshake) may take, in milliseconds. */
  requestTimeoutMs: number;
  /** Longest stdout line accepted, in bytes; default 4 MiB. */
  maxLineBytes?: number;
  /** Backoff between restarts after the process exits; default 250 ms doubling up to 30 s. */
  restart?: { minDelayMs: number; maxDelayMs: number };
  /** How long `close()` waits after ending stdin, and again after SIGTERM; default 2 s. */
  closeGraceMs?: number;
}

/** The server's answer to `initialize`, as the gateway relays it to agents. */
export interface InitializeResult {
  protocolVersion: string;
  capabilities: Record<string, unknown>;
  serverInfo: { name: string; version?: string; [member: string]: unknown };
  instructions?: string;
  [member: string]: unknown;
}

/** The server's answer to a request: its result or its JSON-RPC error, as it gave them. */
export type JsonRpcResultOrError = { result: unknown } | { error: JsonRpcErrorObject };

export type StdioMcpServerState = 'starting' | 'ready' | 'restarting' | 'closed';

export type NotificationListener = (notification: JsonRpcNotification) => void;

export interface RequestOptions {
  /** Aborting sends `notifications/cancelled` to the server and rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Overrides `requestTimeoutMs` for this request. */
  timeoutMs?: number;
}

/**
 * No answer could be had from the tool server. `message` is for operators (names the server and
 * program, says what happened); `rpc` is what an agent may be told: UPSTREAM_UNAVAILABLE (-31005)
 * or UPSTREAM_TIMEOUT (-31006) with a fixed message that leaks nothing about the upstream.
 */
export class UpstreamError extends MandateError {
  readonly rpc: JsonRpcErrorObject;

  constructor(failure: 'unavailable' | 'timeout', message: string, options?: { cause?: unknown }) {
    super(failure === 'timeout' ? 'ERR_UPSTREAM_TIMEOUT' : 'ERR_UPSTREAM', message, options);
    this.rpc =
      failure === 'timeout'
        ? { code: JSONRPC_ERROR.UPSTREAM_TIMEOUT, message: 'Upstream timeout: the tool server did not answer in time' }
        : { code: JSONRPC_ERROR.UPSTREAM_UNAVAILABLE, message: 'Upstream unavailable: the tool server cannot be reached' };
  }
}

// ---------------------------------------------------------------------------------------------
// The server: handshake, restarts, listeners, close

/**
 * One MCP server run as a child process, shared by every agent the gateway routes to it.
 *
 * @example
 *   const issues = await StdioMcpServer.start({ name: 'issues', command: ['node', 'server.js'], env: {}, logger, requestTimeoutMs: 30_000 });
 *   issues.onNotification((n) => relay(n));
 *   const answer = await issues.request('tools/call', { name: 'read', arguments: { id: 7 } }, { signal });
 *   if ('error' in answer) ...
 *   await issues.close();
 */
export class StdioMcpServer {
  readonly name: string;
  private readonly opts: Required<Omit<StdioMcpServerOptions, 'cwd'>> & { cwd: string | undefined };
  private readonly log: Logger;
  private readonly label: string;
  private current: ServerProcess | undefined;
  private initialized: InitializeResult | undefined;
  private stateValue: StdioMcpServerState = 'starting';
  private failures = 0;
  private readyAt = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<NotificationListener>();
  private readyWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private closing: Promise<void> | undefined;

  private constructor(opts: StdioMcpServerOptions) {
    this.name = opts.name;
    this.opts = {
      ...opts,
      cwd: opts.cwd,
      maxLineBytes: opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES,
      restart: opts.restart ?? DEFAULT_RESTART,
      closeGraceMs: opts.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS,
    };
    this.log = opts.logger.child({ upstream: opts.name });
    this.label = `tool server "${opts.name}" (\`${opts.command[0]}\`)`;
  }

  /**
   * Starts the process and completes the MCP handshake (`initialize`, then
   * `notifications/initialized`).
   *
   * @throws MandateError ERR_CONFIG_INVALID for unusable options (empty command, bad limits).
   * @throws UpstreamError (unavailable) naming the server and program when the program cannot be
   *   run, exits, or does not answer `initialize` properly within `requestTimeoutMs`; the process
   *   is stopped first.
   */
  static async start(opts: StdioMcpServerOptions): Promise<StdioMcpServer> {
    checkOptions(opts);
    const server = new StdioMcpServer(opts);
    await server.launch();
    return server;
  }

  /** `ready` between a completed handshake and the process exiting; `restarting` until the next one. */
  get state(): StdioMcpServerState {
    return this.stateValue;
  }

  /** The running process's id; undefined while none runs. */
  get pid(): number | undefined {
    return this.current === undefined || this.current.hasExited ? undefined : this.current.pid;
  }

  /** The server's `initialize` result; after a restart, that of the new process. */
  get initializeResult(): InitializeResult {
    // start() resolves only once a handshake succeeded, so this is always set on a started server.
    return this.initialized as InitializeResult;
  }

  /**
   * Sends a request under an id of its own and resolves with the server's result or error.
   *
   * @throws UpstreamError UPSTREAM_UNAVAILABLE when the process is down (restarting, closed) or
   *   exits before answering; UPSTREAM_TIMEOUT after `timeoutMs` (and `notifications/cancelled`
   *   goes to the server). An aborted `signal` rejects with its reason, after the same notice.
   * @throws MandateError ERR_BAD_REQUEST for `initialize`, which only this class sends.
   */
  async request(method: string, params: JsonRpcParams | undefined, opts: RequestOptions = {}): Promise<JsonRpcResultOrError> {
    if (method === 'initialize') {
      throw new MandateError('ERR_BAD_REQUEST', 'initialize is sent once per process by the gateway; answer agents from initializeResult');
    }
    return this.readyProcess().request(method, params, { signal: opts.signal, timeoutMs: opts.timeoutMs ?? this.opts.requestTimeoutMs, cancellable: true });
  }

  /** Sends a notification. @throws UpstreamError UPSTREAM_UNAVAILABLE when the process is down. */
  async notify(method: string, params?: JsonRpcParams): Promise<void> {
    await this.readyProcess().notify(method, params);
  }

  /** Calls `fn` for each notification the server sends, until the returned function is called. */
  onNotification(fn: NotificationListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Resolves when the server is ready (at once, or after the restart under way). Rejects once closed. */
  whenReady(): Promise<void> {
    if (this.stateValue === 'ready') return Promise.resolve();
    if (this.stateValue === 'closed') return Promise.reject(this.closedError());
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /**
   * Stops for good: pending requests fail with UPSTREAM_UNAVAILABLE, stdin is ended, and a process
   * still running after `closeGraceMs` gets SIGTERM, then SIGKILL after as long again. Resolves
   * once it has exited. Safe to call more than once.
   */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.stateValue = 'closed';
    clearTimeout(this.restartTimer);
    this.settleWaiters(this.closedError());
    this.closing = this.current?.stop(this.opts.closeGraceMs) ?? Promise.resolve();
    return this.closing;
  }

  private readyProcess(): ServerProcess {
    if (this.stateValue === 'closed') throw this.closedError();
    if (this.stateValue !== 'ready' || this.current === undefined) {
      throw new UpstreamError('unavailable', `${this.label}: the process is ${this.stateValue === 'starting' ? 'starting' : 'restarting'}`);
    }
    return this.current;
  }

  private isClosed(): boolean {
    return this.stateValue === 'closed';
  }

  private closedError(): UpstreamError {
    return new UpstreamError('unavailable', `${this.label}: closed`);
  }

  /** One process: spawn, handshake, ready. Throws (having stopped the process) when that fails. */
  private async launch(): Promise<void> {
    const proc = new ServerProcess({
      label: this.label,
      command: this.opts.command,
      env: childEnv(this.opts.env),
      cwd: this.opts.cwd,
      maxLineBytes: this.opts.maxLineBytes,
      log: this.log,
      isUp: () => this.stateValue === 'ready',
      onNotification: (n) => this.emit(n),
    });
    this.current = proc;
    void proc.exited.then(() => this.onExit(proc));
    try {
      await proc.spawned;
      const result = await this.handshake(proc);
      if (this.isClosed()) throw this.closedError();
      this.initialized = result;
      this.stateValue = 'ready';
      this.readyAt = Date.now();
      this.log.info({ pid: proc.pid, protocolVersion: result.protocolVersion, server: result.serverInfo.name }, 'tool server process is ready');
      this.settleWaiters();
    } catch (err) {
      await proc.stop(this.opts.closeGraceMs);
      throw new UpstreamError('unavailable', `cannot start ${err instanceof UpstreamError ? err.message : `${this.label}: ${messageOf(err)}`}`, { cause: err });
    }
  }

  private async handshake(proc: ServerProcess): Promise<InitializeResult> {
    const params = { protocolVersion: STDIO_PROTOCOL_VERSION, capabilities: {}, clientInfo: CLIENT_INFO };
    // MCP: the initialize request must not be cancelled, so a timeout only fails it.
    const answer = await proc.request('initialize', params, { timeoutMs: this.opts.requestTimeoutMs, cancellable: false });
    if ('error' in answer) throw new UpstreamError('unavailable', `${this.label}: it answered initialize with error ${answer.error.code}`);
    const problem = initializeProblem(answer.result);
    if (problem !== undefined) throw new UpstreamError('unavailable', `${this.label}: ${problem}`);
    await proc.notify('notifications/initialized');
    if (proc.hasExited) throw new UpstreamError('unavailable', `${this.label}: it exited during the handshake`);
    return answer.result as InitializeResult;
  }

  private onExit(proc: ServerProcess): void {
    if (proc !== this.current || this.stateValue !== 'ready') return;
    if (Date.now() - this.readyAt >= this.opts.restart.maxDelayMs) this.failures = 0;
    const retryInMs = this.scheduleRestart();
    this.log.warn({ pid: proc.pid, exit: proc.exitDescription, retryInMs }, 'tool server process exited; it will be restarted');
  }

  /** Returns the delay chosen: minDelayMs, doubling with each failure in a row, up to maxDelayMs. */
  private scheduleRestart(): number {
    const { minDelayMs, maxDelayMs } = this.opts.restart;
    const delay = Math.min(maxDelayMs, minDelayMs * 2 ** this.failures);
    if (delay < maxDelayMs) this.failures++;
    this.stateValue = 'restarting';
    this.restartTimer = setTimeout(() => void this.restart(), delay);
    return delay;
  }

  private async restart(): Promise<void> {
    this.restartTimer = undefined;
    if (this.isClosed()) return;
    try {
      await this.launch();
    } catch (err) {
      // close() may have been called while launching.
      if (this.isClosed()) return;
      const retryInMs = this.scheduleRestart();
      this.log.warn({ reason: messageOf(err), retryInMs }, 'tool server process failed to restart; trying again');
    }
  }

  private settleWaiters(err?: Error): void {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) {
      if (err === undefined) w.resolve();
      else w.reject(err);
    }
  }

  private emit(notification: JsonRpcNotification): void {
    for (const fn of this.listeners) {
      try {
        fn(notification);
      } catch (err) {
        this.log.error({ method: notification.method, reason: messageOf(err) }, 'a notification listener failed');
      }
    }
  }
}

function checkOptions(opts: StdioMcpServerOptions): void {
  const invalid = (why: string) => new MandateError('ERR_CONFIG_INVALID', `tool server "${opts.name}": ${why}`);
  if (opts.command.length === 0 || typeof opts.command[0] !== 'string' || opts.command[0].length === 0) throw invalid('command needs a program');
  if (!isPositive(opts.requestTimeoutMs)) throw invalid('requestTimeoutMs must be a positive number');
  if (opts.maxLineBytes !== undefined && !(Number.isSafeInteger(opts.maxLineBytes) && opts.maxLineBytes > 0)) throw invalid('maxLineBytes must be a positive integer');
  if (opts.closeGraceMs !== undefined && !(opts.closeGraceMs >= 0)) throw invalid('closeGraceMs must not be negative');
  const r = opts.restart;
  if (r !== undefined && !(isPositive(r.minDelayMs) && isPositive(r.maxDelayMs) && r.minDelayMs <= r.maxDelayMs)) {
    throw invalid('restart needs 0 < minDelayMs <= maxDelayMs');
  }
}

function isPositive(n: number): boolean {
  return Number.isFinite(n) && n > 0;
}

/** The configured environment, plus Mandate's PATH when it has none. Nothing else is inherited. */
function childEnv(env: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = { ...env };
  if (!Object.hasOwn(out, 'PATH') && process.env.PATH !== undefined) out.PATH = process.env.PATH;
  return out;
}

/** What is wrong with an `initialize` result, or undefined. */
function initializeProblem(result: unknown): string | undefined {
  if (!isPlainObject(result)) return 'its initialize result is not an object';
  const version = result.protocolVersion;
  if (typeof version !== 'string') return 'its initialize result has no protocolVersion';
  if (!STDIO_ACCEPTED_PROTOCOL_VERSIONS.includes(version)) return `it speaks protocol version ${JSON.stringify(version.slice(0, 32))}, which the gateway does not support`;
  if (!isPlainObject(result.capabilities)) return 'its initialize result has no capabilities object';
  const info = result.serverInfo;
  if (!isPlainObject(info) || typeof info.name !== 'string') return 'its initialize result has no serverInfo.name';
  if (result.instructions !== undefined && typeof result.instructions !== 'string') return 'its initialize result has instructions that are not a string';
  return undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------
// One process: spawn, framing, correlation, stop

interface ProcessOptions {
  label: string;
  command: readonly string[];
  env: Record<string, string>;
  cwd: string | undefined;
  maxLineBytes: number;
  log: Logger;
  /** Whether the handshake is done (stderr is logged at debug then, at warn before). */
  isUp: () => boolean;
  onNotification: (n: JsonRpcNotification) => void;
}

interface ProcessRequestOptions {
  signal?: AbortSignal | undefined;
  timeoutMs: number;
  /** Send `notifications/cancelled` when giving up on a request that was sent. */
  cancellable: boolean;
}

interface Pending {
  answer(a: JsonRpcResultOrError): void;
  fail(err: unknown): void;
}

interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

type Child = ChildProcessByStdio<Writable, Readable, Readable>;

class ServerProcess {
  readonly spawned: Promise<void>;
  readonly exited: Promise<void>;
  private readonly child: Child | undefined;
  private readonly pending = new Map<number, Pending>();
  private lastId = 0;
  private exitInfo: ExitInfo | undefined;
  private drain: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private skipped = 0;
  private readonly log: Logger;

  constructor(private readonly opts: ProcessOptions) {
    this.log = opts.log;
    let settleExit!: (info: ExitInfo) => void;
    this.exited = new Promise((resolve) => {
      settleExit = (info) => {
        if (this.exitInfo !== undefined) return;
        this.exitInfo = info;
        this.failPending(new UpstreamError('unavailable', `${opts.label}: ${this.exitDescription}`));
        resolve();
      };
    });
    let child: Child | undefined;
    try {
      child = spawn(opts.command[0] as string, opts.command.slice(1), {
        env: opts.env,
        cwd: opts.cwd,
        stdio: ['pipe', 'pipe', 'pipe'],
        shell: false,
        detached: PROCESS_GROUPS,
        windowsHide: true,
      });
    } catch (err) {
      // Invalid arguments (a NUL byte, say) throw instead of emitting 'error'.
      settleExit({ code: null, signal: null, error: err instanceof Error ? err : new Error(String(err)) });
    }
    this.child = child;
    this.spawned = child === undefined ? this.exited.then(() => Promise.reject(this.down())) : this.wire(child, settleExit);
    this.spawned.catch(() => undefined);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  get exitDescription(): string {
    const info = this.exitInfo;
    if (info === undefined) return 'it is running';
    if (info.error !== undefined) return `it could not be run: ${info.error.message}`;
    return info.signal !== null ? `it exited on ${info.signal}` : `it exited with code ${info.code}`;
  }

  request(method: string, params: JsonRpcParams | undefined, opts: ProcessRequestOptions): Promise<JsonRpcResultOrError> {
    const signal = opts.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.exitInfo !== undefined) return Promise.reject(this.down());
    const id = ++this.lastId;
    const message: JsonRpcRequest = params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params };
    return new Promise((resolve, reject) => {
      let sent = false;
      const finish = () => {
        this.pending.delete(id);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const giveUp = (err: unknown, reason: string) => {
        if (!this.pending.has(id)) return;
        finish();
        reject(err);
        if (sent && opts.cancellable) this.notify('notifications/cancelled', { requestId: id, reason }).catch(() => undefined);
      };
      const timer = setTimeout(() => giveUp(new UpstreamError('timeout', `${this.opts.label}: it did not answer ${method} within ${opts.timeoutMs} ms`), 'timeout'), opts.timeoutMs);
      const onAbort = () => giveUp(signal?.reason, 'aborted');
      signal?.addEventListener('abort', onAbort, { once: true });
      const entry: Pending = {
        answer: (a) => {
          finish();
          resolve(a);
        },
        fail: (err) => {
          finish();
          reject(err);
        },
      };
      this.pending.set(id, entry);
      this.send(message, () => this.pending.get(id) === entry).then(
        (wrote) => {
          sent = wrote;
        },
        (err) => this.pending.get(id)?.fail(err),
      );
    });
  }

  async notify(method: string, params?: JsonRpcParams): Promise<void> {
    const message: JsonRpcNotification = params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params };
    await this.send(message);
  }

  /** Ends stdin, then SIGTERM and SIGKILL to the process group, each after `graceMs`. Idempotent. */
  stop(graceMs: number): Promise<void> {
    this.stopping ??= this.terminate(graceMs);
    return this.stopping;
  }

  private async terminate(graceMs: number): Promise<void> {
    this.failPending(new UpstreamError('unavailable', `${this.opts.label}: closed`));
    const child = this.child;
    if (child === undefined || this.exitInfo !== undefined) return;
    child.stdin.end();
    if (await this.exitsWithin(graceMs)) return;
    this.signal(child, 'SIGTERM');
    if (await this.exitsWithin(graceMs)) return;
    this.signal(child, 'SIGKILL');
    if (!(await this.exitsWithin(Math.max(graceMs, 1000)))) this.log.error({ pid: child.pid }, 'tool server process did not exit after SIGKILL');
  }

  private signal(child: Child, sig: NodeJS.Signals): void {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    this.log.warn({ pid: child.pid, signal: sig }, 'tool server process did not exit; signalling it');
    try {
      if (PROCESS_GROUPS) process.kill(-child.pid, sig);
      else child.kill(sig);
    } catch {
      child.kill(sig);
    }
  }

  /**
   * Processes the server started and left running when it exited (children of an `npx` or shell
   * wrapper, say) serve no one now and may hold its pipes open: the group is killed. The group id
   * cannot have been reused while any of them lives, and if none does this finds nothing.
   */
  private killLeftovers(child: Child): void {
    if (!PROCESS_GROUPS || child.pid === undefined) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
      this.log.warn({ pid: child.pid }, 'killed processes the tool server left running');
    } catch {
      // ESRCH: nothing left.
    }
  }

  private exitsWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    return Promise.race([this.exited.then(() => true), timeout]).finally(() => clearTimeout(timer));
  }

  private wire(child: Child, settleExit: (info: ExitInfo) => void): Promise<void> {
    const stdout = new LineReader(this.opts.maxLineBytes, (line, cut) => this.onStdoutLine(line, cut));
    const stderr = new LineReader(STDERR_MAX_LINE_BYTES, (line, cut) => this.onStderrLine(line, cut));
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    // A pipe error (EPIPE once the child is gone) must not become an uncaught exception.
    for (const stream of [child.stdin, child.stdout, child.stderr]) {
      stream.on('error', (err: Error) => this.log.debug({ pid: child.pid, reason: err.message }, 'tool server pipe error'));
    }
    child.once('exit', (code, signal) => {
      this.killLeftovers(child);
      // 'exit' may come before the last of stdout has been read: give it a moment.
      const info = { code, signal };
      if (child.stdout.destroyed) return settleExit(info);
      const timer = setTimeout(() => settleExit(info), STDOUT_DRAIN_MS);
      child.stdout.once('close', () => {
        clearTimeout(timer);
        settleExit(info);
      });
    });
    return new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.on('error', (err) => {
        if (child.pid === undefined) {
          settleExit({ code: null, signal: null, error: err });
          reject(this.down());
        } else {
          this.log.warn({ pid: child.pid, reason: err.message }, 'tool server process error');
        }
      });
    });
  }

  private down(): UpstreamError {
    return new UpstreamError('unavailable', `${this.opts.label}: ${this.exitInfo === undefined ? 'its stdin is closed' : this.exitDescription}`);
  }

  /** Writes one message, waiting for the pipe to drain first; false when `stillWanted` said no. */
  private async send(message: JsonRpcRequest | JsonRpcNotification | JsonRpcResponse, stillWanted?: () => boolean): Promise<boolean> {
    const line = `${JSON.stringify(message)}\n`;
    const stdin = this.child?.stdin;
    while (stdin !== undefined && stdin.writable && stdin.writableNeedDrain && this.exitInfo === undefined) await this.drained(stdin);
    if (stdin === undefined || !stdin.writable || this.exitInfo !== undefined) throw this.down();
    if (stillWanted !== undefined && !stillWanted()) return false;
    stdin.write(line);
    return true;
  }

  /** One shared wait for 'drain' (or the pipe closing), however many writers wait. */
  private drained(stdin: Writable): Promise<void> {
    this.drain ??= new Promise((resolve) => {
      const done = () => {
        stdin.off('drain', done);
        stdin.off('close', done);
        this.drain = undefined;
        resolve();
      };
      stdin.on('drain', done);
      stdin.on('close', done);
      void this.exited.then(done);
    });
    return this.drain;
  }

  private failPending(err: UpstreamError): void {
    for (const p of [...this.pending.values()]) p.fail(err);
  }

  private onStdoutLine(line: Buffer, cut: boolean): void {
    if (cut) return this.skip(line.length, `the line is longer than ${this.opts.maxLineBytes} bytes`);
    if (isBlank(line)) return;
    let items: ParsedItem[];
    try {
      items = parseMessages(line, { ...STDOUT_LIMITS, maxBytes: this.opts.maxLineBytes }).items;
    } catch (err) {
      return this.skip(line.length, messageOf(err));
    }
    for (const item of items) this.dispatch(item, line.length);
  }

  private dispatch(item: ParsedItem, bytes: number): void {
    if (!item.ok) {
      this.skip(bytes, item.error.message);
      // A malformed answer to a pending request fails it now rather than at its timeout.
      if (typeof item.id === 'number') this.pending.get(item.id)?.fail(new UpstreamError('unavailable', `${this.opts.label}: it sent a malformed answer`));
      return;
    }
    if (item.kind === 'response') this.onResponse(item.message);
    else if (item.kind === 'request') this.onServerRequest(item.message);
    else this.opts.onNotification(item.message);
  }

  private onResponse(message: JsonRpcResponse): void {
    const pending = typeof message.id === 'number' ? this.pending.get(message.id) : undefined;
    if (pending === undefined) {
      // An answer after a timeout or cancellation, or one to nothing we asked.
      this.log.debug({ pid: this.pid }, 'tool server answered a request that is no longer pending');
      return;
    }
    pending.answer('error' in message ? { error: message.error } : { result: message.result });
  }

  /** The gateway declares no client capabilities; only ping is answered. */
  private onServerRequest(request: JsonRpcRequest): void {
    const answer: JsonRpcResponse =
      request.method === 'ping'
        ? { jsonrpc: '2.0', id: request.id, result: {} }
        : { jsonrpc: '2.0', id: request.id, error: { code: JSONRPC_ERROR.METHOD_NOT_FOUND, message: 'Method not found: the gateway offers no client capabilities' } };
    if (request.method !== 'ping') this.log.debug({ pid: this.pid, method: request.method.slice(0, 64) }, 'refused a request from the tool server');
    this.send(answer).catch(() => undefined);
  }

  private skip(bytes: number, reason: string): void {
    this.skipped++;
    if (this.skipped <= SKIP_LOG_FIRST || this.skipped % SKIP_LOG_EVERY === 0) {
      this.log.warn({ pid: this.pid, bytes, reason, skipped: this.skipped }, 'skipped stdout output of the tool server that is not a JSON-RPC message');
    }
  }

  private onStderrLine(line: Buffer, cut: boolean): void {
    const level = this.opts.isUp() ? 'debug' : 'warn';
    if (!this.log.isLevelEnabled(level) || isBlank(line)) return;
    const text = line.toString('utf8').replace(/\r$/, '');
    this.log[level]({ pid: this.pid, stderr: text, ...(cut ? { truncated: true } : {}) }, 'tool server stderr');
  }
}

function isBlank(line: Buffer): boolean {
  for (const b of line) if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  return true;
}

/**
 * Splits a byte stream at LF. A line longer than `max` bytes is handed on cut to its first `max`
 * bytes (`cut` true) and the rest is dropped up to its LF, so nothing buffers beyond `max`. A
 * last line without LF is never handed on.
 */
export class LineReader {
  private parts: Buffer[] = [];
  private size = 0;
  private cut = false;

  constructor(
    private readonly max: number,
    private readonly onLine: (line: Buffer, cut: boolean) => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const lf = chunk.indexOf(0x0a, start);
      this.take(chunk.subarray(start, lf < 0 ? chunk.length : lf));
      if (lf < 0) return;
      const line = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.size);
      const cut = this.cut;
      this.parts = [];
      this.size = 0;
      this.cut = false;
      this.onLine(line, cut);
      start = lf + 1;
    }
  }

  private take(piece: Buffer): void {
    if (this.cut || piece.length === 0) return;
    const room = this.max - this.size;
    if (piece.length > room) {
      this.cut = true;
      piece = piece.subarray(0, room);
    }
    this.parts.push(piece);
    this.size += piece.length;
  }
}
