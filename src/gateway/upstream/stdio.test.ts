/**
 * The stdio upstream against real child processes: the fixture MCP server (MCP SDK, stdio), and
 * small inline programs for servers that fail to start.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { createLogger, type Logger } from '../../observability/logger.ts';
import { JSONRPC_ERROR, type JsonRpcNotification } from '../mcp/jsonrpc.ts';
import { FIXTURE_INSTRUCTIONS, FIXTURE_NAME, FIXTURE_PATH, GARBAGE_MARKER } from './stdio-fixture.ts';
import { LineReader, STDIO_PROTOCOL_VERSION, StdioMcpServer, UpstreamError, type StdioMcpServerOptions } from './stdio.ts';

/** tsx by URL, so the fixture runs whatever its working directory. */
const TSX = import.meta.resolve('tsx');
const fixture = (...flags: string[]) => [process.execPath, '--import', TSX, FIXTURE_PATH, ...flags];

type LogLine = Record<string, unknown> & { level: string; msg: string };

function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), lines };
}

const started: StdioMcpServer[] = [];

async function start(overrides: Partial<StdioMcpServerOptions> = {}): Promise<StdioMcpServer> {
  const server = await StdioMcpServer.start({
    name: 'fixture',
    command: fixture(),
    env: {},
    logger: captureLogger().logger,
    requestTimeoutMs: 20_000,
    restart: { minDelayMs: 20, maxDelayMs: 500 },
    closeGraceMs: 500,
    ...overrides,
  });
  started.push(server);
  return server;
}

/** Calls a tool and returns the text of its first content item. */
async function callTool(server: StdioMcpServer, name: string, args: Record<string, unknown> = {}, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<string> {
  const answer = await server.request('tools/call', { name, arguments: args }, opts);
  assert.ok('result' in answer, `tools/call ${name} failed: ${JSON.stringify(answer)}`);
  const result = answer.result as { content: Array<{ text: string }>; isError?: boolean };
  assert.notEqual(result.isError, true, `tool ${name} failed: ${JSON.stringify(result)}`);
  return (result.content[0] as { text: string }).text;
}

function isUpstream(code: number): (err: unknown) => boolean {
  return (err) => err instanceof UpstreamError && err.rpc.code === code;
}

/** Polls `check` until it returns a value (a few seconds at most). */
async function eventually<T>(check: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail('the condition never held');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.close()));
});

describe('StdioMcpServer', () => {
  it('does the MCP handshake and keeps the initialize result', async () => {
    const server = await start();
    const init = server.initializeResult;
    assert.equal(init.protocolVersion, STDIO_PROTOCOL_VERSION);
    assert.equal(init.serverInfo.name, FIXTURE_NAME);
    assert.equal(init.instructions, FIXTURE_INSTRUCTIONS);
    assert.ok(typeof init.capabilities.tools === 'object');
    assert.equal(server.state, 'ready');
    const list = await server.request('tools/list', {});
    assert.ok('result' in list);
    const names = (list.result as { tools: Array<{ name: string }> }).tools.map((t) => t.name);
    assert.ok(names.includes('echo') && names.includes('sleep'), names.join());
  });

  it('correlates many concurrent requests with their answers', async () => {
    const server = await start();
    const texts = Array.from({ length: 200 }, (_, i) => `message ${i} ${'x'.repeat(i * 37)}`);
    const answers = await Promise.all(texts.map((t) => callTool(server, 'echo', { text: t })));
    assert.deepEqual(answers, texts);
  });

  it('waits for stdin to drain when the server reads slower than the gateway writes', async () => {
    const server = await start();
    // Eight 1 MiB requests overflow the pipe and the stream's buffer many times over.
    const texts = Array.from({ length: 8 }, (_, i) => String(i).repeat(1 << 20));
    const answers = await Promise.all(texts.map((t) => callTool(server, 'echo', { text: t })));
    assert.deepEqual(answers.map((a) => a.length), texts.map((t) => t.length));
    assert.ok(answers.every((a, i) => a === texts[i]));
  });

  it('times out with UPSTREAM_TIMEOUT and tells the server to cancel', async () => {
    const server = await start();
    await assert.rejects(callTool(server, 'sleep', { ms: 60_000, tag: 'slow' }, { timeoutMs: 200 }), isUpstream(JSONRPC_ERROR.UPSTREAM_TIMEOUT));
    const seen = await eventually(async () => {
      const list = JSON.parse(await callTool(server, 'cancellations')) as Array<{ tag: string; reason: string; requestId: unknown }>;
      return list.find((c) => c.tag === 'slow');
    });
    assert.equal(seen.reason, 'timeout');
    assert.equal(typeof seen.requestId, 'number');
  });

  it('gives up on an aborted request, rejecting with the reason, and cancels it upstream', async () => {
    const server = await start();
    const controller = new AbortController();
    const reason = new Error('the agent went away');
    const call = callTool(server, 'sleep', { ms: 60_000, tag: 'aborted' }, { signal: controller.signal });
    setTimeout(() => controller.abort(reason), 100);
    await assert.rejects(call, (err) => err === reason);
    const seen = await eventually(async () => {
      const list = JSON.parse(await callTool(server, 'cancellations')) as Array<{ tag: string; reason: string }>;
      return list.find((c) => c.tag === 'aborted');
    });
    assert.equal(seen.reason, 'aborted');
    await assert.rejects(server.request('tools/list', {}, { signal: controller.signal }), (err) => err === reason);
  });

  it('skips stdout lines that are not JSON-RPC, logging their size but not their content', async () => {
    const { logger, lines } = captureLogger();
    const server = await start({ logger, maxLineBytes: 64 * 1024 });
    assert.equal(await callTool(server, 'garbage'), 'after garbage');
    assert.equal(await callTool(server, 'echo', { text: 'still here' }), 'still here');
    const skipped = lines.filter((l) => l.msg.startsWith('skipped stdout output'));
    // Not JSON, invalid UTF-8, too long, jsonrpc 1.0. The answer to an unknown id is valid, only unexpected.
    assert.equal(skipped.length, 4, JSON.stringify(skipped));
    assert.ok(skipped.some((l) => String(l.reason).includes('longer than 65536 bytes')));
    assert.ok(!JSON.stringify(lines).includes(GARBAGE_MARKER), 'the garbage itself must not reach the log');
  });

  it('fails pending requests when the process exits, restarts it, and works again', async () => {
    const { logger, lines } = captureLogger();
    const server = await start({ logger });
    const firstPid = server.pid;
    const slow = callTool(server, 'sleep', { ms: 60_000, tag: 'pending' });
    const exiting = callTool(server, 'exit', { code: 3 });
    await assert.rejects(slow, isUpstream(JSONRPC_ERROR.UPSTREAM_UNAVAILABLE));
    await assert.rejects(exiting, (err) => err instanceof UpstreamError && /exited with code 3/.test(err.message));
    assert.notEqual(server.state, 'ready');
    await assert.rejects(server.request('tools/list', {}), isUpstream(JSONRPC_ERROR.UPSTREAM_UNAVAILABLE));
    await server.whenReady();
    assert.notEqual(server.pid, firstPid);
    assert.equal(await callTool(server, 'echo', { text: 'back' }), 'back');
    assert.equal(server.initializeResult.serverInfo.name, FIXTURE_NAME);
    assert.ok(lines.some((l) => l.level === 'warn' && l.msg.includes('will be restarted')));
  });

  it('keeps restarting with a growing delay while the program fails, until it starts again', async () => {
    const { logger, lines } = captureLogger();
    const marker = join(mkdtempSync(join(tmpdir(), 'mandate-stdio-')), 'fail');
    // Exits at once while the marker file exists, runs the fixture otherwise.
    const script = 'test -e "$3" && exit 1; exec "$0" --import "$1" "$2"';
    const server = await start({ logger, command: ['/bin/sh', '-c', script, process.execPath, TSX, FIXTURE_PATH, marker], restart: { minDelayMs: 20, maxDelayMs: 160 } });
    writeFileSync(marker, '');
    await assert.rejects(callTool(server, 'exit', { code: 1 }), isUpstream(JSONRPC_ERROR.UPSTREAM_UNAVAILABLE));
    const delays = await eventually(async () => {
      const retries = lines.filter((l) => l.msg.includes('failed to restart')).map((l) => l.retryInMs as number);
      return retries.length >= 4 ? retries : undefined;
    });
    assert.deepEqual(delays.slice(0, 4), [40, 80, 160, 160]);
    assert.equal(server.state, 'restarting');
    rmSync(marker);
    await server.whenReady();
    assert.equal(await callTool(server, 'echo', { text: 'recovered' }), 'recovered');
  });

  it('stops what a wrapper started along with the wrapper', async () => {
    // The shell stays as the parent (it has more to do after node), and node ignores SIGTERM.
    const script = '"$0" --import "$1" "$2" --ignore-sigterm; exit 0';
    const server = await start({ command: ['/bin/sh', '-c', script, process.execPath, TSX, FIXTURE_PATH], closeGraceMs: 200 });
    const inner = (JSON.parse(await callTool(server, 'env')) as { pid: number }).pid;
    assert.notEqual(inner, server.pid);
    await server.close();
    await eventually(async () => (isAlive(inner) ? undefined : true));
  });

  it('gives the child only the configured environment (and PATH), in the configured directory', async () => {
    process.env.MANDATE_KEK = 'kek-that-must-not-leak';
    process.env.MANDATE_ADMIN_TOKEN = 'token-that-must-not-leak';
    try {
      const cwd = realpathSync(mkdtempSync(join(tmpdir(), 'mandate-stdio-')));
      const server = await start({ env: { FIXTURE_SETTING: 'on' }, cwd });
      const seen = JSON.parse(await callTool(server, 'env')) as { keys: string[]; path: string; cwd: string };
      assert.deepEqual(seen.keys, ['FIXTURE_SETTING', 'PATH']);
      assert.equal(seen.path, process.env.PATH);
      assert.equal(seen.cwd, cwd);

      const own = await start({ env: { PATH: '/nowhere' } });
      const ownSeen = JSON.parse(await callTool(own, 'env')) as { keys: string[]; path: string };
      assert.deepEqual(ownSeen.keys, ['PATH']);
      assert.equal(ownSeen.path, '/nowhere');
    } finally {
      delete process.env.MANDATE_KEK;
      delete process.env.MANDATE_ADMIN_TOKEN;
    }
  });

  it('passes server notifications to listeners and refuses server-to-client requests except ping', async () => {
    const server = await start();
    const received: JsonRpcNotification[] = [];
    const stop = server.onNotification((n) => received.push(n));
    server.onNotification(() => {
      throw new Error('a failing listener must not stop the others');
    });
    assert.equal(await callTool(server, 'notify', { text: 'hello' }), 'notified');
    const message = await eventually(async () => received.find((n) => n.method === 'notifications/message'));
    assert.deepEqual(message.params, { level: 'info', data: 'hello' });
    stop();
    await callTool(server, 'notify', { text: 'again' });
    await callTool(server, 'echo', { text: 'sync' });
    assert.equal(received.filter((n) => n.method === 'notifications/message').length, 1);

    const asked = JSON.parse(await callTool(server, 'ask-client')) as { ping: unknown; roots: unknown };
    assert.deepEqual(asked.ping, { ok: {} });
    assert.deepEqual(asked.roots, { code: JSONRPC_ERROR.METHOD_NOT_FOUND });
  });

  it('logs stderr, binary or overlong lines included, without failing', async () => {
    const { logger, lines } = captureLogger();
    const server = await start({ logger });
    await callTool(server, 'echo', { text: 'x' });
    const stderr = await eventually(async () => {
      const found = lines.filter((l) => l.msg === 'tool server stderr');
      return found.some((l) => l.stderr === 'fixture initialized') ? found : undefined;
    });
    const long = stderr.find((l) => l.truncated === true);
    assert.ok(long !== undefined && String(long.stderr).length === 4096);
    // Written before the handshake completed, so at warn; after it, at debug.
    assert.equal(stderr.find((l) => l.stderr === 'fixture starting')?.level, 'warn');
    assert.equal(stderr.find((l) => l.stderr === 'fixture initialized')?.level, 'debug');
  });

  it('close() stops a process that ignores stdin closing and SIGTERM, failing pending requests', async () => {
    const { logger, lines } = captureLogger();
    const server = await start({ command: fixture('--ignore-sigterm'), closeGraceMs: 200, logger });
    const pid = server.pid as number;
    const pending = assert.rejects(callTool(server, 'sleep', { ms: 60_000, tag: 'at-close' }), isUpstream(JSONRPC_ERROR.UPSTREAM_UNAVAILABLE));
    await server.close();
    await pending;
    assert.equal(isAlive(pid), false);
    assert.deepEqual(
      lines.filter((l) => l.msg.includes('signalling')).map((l) => l.signal),
      ['SIGTERM', 'SIGKILL'],
    );
    assert.equal(server.state, 'closed');
    await assert.rejects(server.request('tools/list', {}), isUpstream(JSONRPC_ERROR.UPSTREAM_UNAVAILABLE));
    await assert.rejects(server.whenReady(), UpstreamError);
    await server.close();
  });

  it('close() lets a well-behaved server exit when its stdin ends, without signals', async () => {
    const { logger, lines } = captureLogger();
    const server = await start({ logger });
    const pid = server.pid as number;
    await server.close();
    assert.equal(isAlive(pid), false);
    assert.equal(lines.filter((l) => l.msg.includes('signalling')).length, 0);
  });

  it('refuses to send initialize itself', async () => {
    const server = await start();
    await assert.rejects(server.request('initialize', {}), /initialize is sent once per process/);
  });
});

describe('StdioMcpServer.start failures', () => {
  const base = { name: 'broken', env: {}, logger: captureLogger().logger, requestTimeoutMs: 500, closeGraceMs: 200 };

  it('names the program when it does not exist', async () => {
    await assert.rejects(
      StdioMcpServer.start({ ...base, command: ['/nonexistent/mcp-server', '--token=secret-arg'] }),
      (err) => err instanceof UpstreamError && err.message.includes('/nonexistent/mcp-server') && !err.message.includes('secret-arg'),
    );
  });

  it('names the program when it never answers initialize, and stops it', async () => {
    const { logger, lines } = captureLogger();
    const program = 'process.stdin.resume(); process.on("SIGTERM", () => {}); setInterval(() => {}, 1000);';
    await assert.rejects(
      StdioMcpServer.start({ ...base, logger, command: [process.execPath, '-e', program] }),
      (err) => err instanceof UpstreamError && err.message.includes(process.execPath) && /did not answer initialize within 500 ms/.test(err.message),
    );
    const signalled = lines.filter((l) => l.msg.includes('signalling'));
    assert.deepEqual(signalled.map((l) => l.signal), ['SIGTERM', 'SIGKILL']);
    assert.equal(isAlive(signalled[0]?.pid as number), false);
  });

  it('reports a process that exits before answering', async () => {
    await assert.rejects(StdioMcpServer.start({ ...base, command: [process.execPath, '-e', 'process.exit(2)'] }), /exited with code 2/);
  });

  it('refuses a server that answers with a protocol version it does not support', async () => {
    const program = `process.stdin.once('data', (d) => {
      const { id } = JSON.parse(String(d).split('\\n')[0]);
      process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id, result: { protocolVersion: '1999-01-01', capabilities: {}, serverInfo: { name: 'old' } } }) + '\\n');
    });`;
    await assert.rejects(StdioMcpServer.start({ ...base, command: [process.execPath, '-e', program] }), /protocol version "1999-01-01"/);
  });

  it('refuses options it cannot use', async () => {
    await assert.rejects(StdioMcpServer.start({ ...base, command: [] }), { code: 'ERR_CONFIG_INVALID' });
    await assert.rejects(StdioMcpServer.start({ ...base, command: ['x'], requestTimeoutMs: 0 }), { code: 'ERR_CONFIG_INVALID' });
    await assert.rejects(StdioMcpServer.start({ ...base, command: ['x'], restart: { minDelayMs: 10, maxDelayMs: 5 } }), { code: 'ERR_CONFIG_INVALID' });
  });
});

describe('LineReader', () => {
  const read = (max: number, chunks: Array<string | Buffer>) => {
    const lines: Array<[string, boolean]> = [];
    const reader = new LineReader(max, (line, cut) => lines.push([line.toString('latin1'), cut]));
    for (const c of chunks) reader.push(Buffer.isBuffer(c) ? c : Buffer.from(c, 'latin1'));
    return lines;
  };

  it('splits at LF across chunks and keeps an unfinished line back', () => {
    assert.deepEqual(read(100, ['ab', 'c\nde', 'f\n\ng', 'h']), [['abc', false], ['def', false], ['', false]]);
  });

  it('cuts a long line to its first bytes and drops the rest up to its LF', () => {
    assert.deepEqual(read(4, ['abcdef', 'gh\nij\n', 'klmno', 'p\nq\n']), [['abcd', true], ['ij', false], ['klmn', true], ['q', false]]);
  });

  it('takes a line of exactly the limit whole', () => {
    assert.deepEqual(read(4, ['abcd\n']), [['abcd', false]]);
  });
});
