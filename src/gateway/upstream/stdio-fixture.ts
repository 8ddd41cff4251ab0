/**
 * A small MCP server on stdio (the MCP SDK's McpServer and StdioServerTransport) for the tests of
 * the stdio upstream. Its tools misbehave on request: sleep (and record the cancellation that
 * ends the sleep), write garbage to stdout, exit, send a notification, ask the client things, and
 * report the environment it was given (and its pid).
 *
 * Flags: `--ignore-sigterm` keeps it running after stdin ends and through SIGTERM, so only
 * SIGKILL stops it. At start it writes a few lines to stderr, one of them binary, one very long.
 *
 * Run: node --import tsx src/gateway/upstream/stdio-fixture.ts [--ignore-sigterm]
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

export const FIXTURE_NAME = 'stdio-fixture';
export const FIXTURE_INSTRUCTIONS = 'A server for tests; its tools misbehave on request.';
/** Bytes of the over-long line the garbage tool writes; tests set maxLineBytes below it. */
export const GARBAGE_LONG_LINE_BYTES = 100 * 1024;
/** Text of the garbage lines, which must never appear in the gateway's logs. */
export const GARBAGE_MARKER = 'garbage-marker-7f3a';

const cancellations: Array<{ tag: string; requestId: string | number; reason: string }> = [];

const server = new McpServer({ name: FIXTURE_NAME, version: '1.0.0' }, { capabilities: { logging: {} }, instructions: FIXTURE_INSTRUCTIONS });
const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] });

server.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text: t }) => text(t));

server.registerTool('sleep', { inputSchema: { ms: z.number(), tag: z.string() } }, async ({ ms, tag }, extra) => {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    extra.signal.addEventListener('abort', () => {
      clearTimeout(timer);
      cancellations.push({ tag, requestId: extra.requestId, reason: String(extra.signal.reason) });
      resolve();
    });
  });
  return text(`slept ${ms}`);
});

server.registerTool('cancellations', {}, async () => text(JSON.stringify(cancellations)));

server.registerTool('garbage', {}, async () => {
  const out = process.stdout;
  out.write(`not json ${GARBAGE_MARKER}\n`);
  out.write(Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3]), Buffer.from(`${GARBAGE_MARKER}\n`)]));
  out.write(`{"jsonrpc":"2.0","method":"${GARBAGE_MARKER}","params":{"x":"${'y'.repeat(GARBAGE_LONG_LINE_BYTES)}"}}\n`);
  out.write(`{"jsonrpc":"1.0","id":1,"result":"${GARBAGE_MARKER}"}\n`);
  out.write(`{"jsonrpc":"2.0","id":987654321,"result":"${GARBAGE_MARKER}"}\n`);
  out.write('\n   \r\n');
  return text('after garbage');
});

server.registerTool('exit', { inputSchema: { code: z.number() } }, async ({ code }) => process.exit(code));

server.registerTool('notify', { inputSchema: { text: z.string() } }, async ({ text: t }) => {
  await server.server.notification({ method: 'notifications/message', params: { level: 'info', data: t } });
  return text('notified');
});

server.registerTool('ask-client', {}, async () => {
  const outcome = async (ask: () => Promise<unknown>) => {
    try {
      return { ok: await ask() };
    } catch (err) {
      return { code: (err as { code?: unknown }).code };
    }
  };
  return text(JSON.stringify({ ping: await outcome(() => server.server.ping()), roots: await outcome(() => server.server.listRoots()) }));
});

server.registerTool('env', {}, async () => text(JSON.stringify({ keys: Object.keys(process.env).sort(), path: process.env.PATH, cwd: process.cwd(), pid: process.pid })));

/** Path of this file, for tests to run it. */
export const FIXTURE_PATH = fileURLToPath(import.meta.url);

async function main(): Promise<void> {
  if (process.argv.includes('--ignore-sigterm')) {
    process.on('SIGTERM', () => undefined);
    setInterval(() => undefined, 60_000);
  }
  process.stderr.write('fixture starting\n');
  process.stderr.write(Buffer.from([0xff, 0x00, 0x1b, 0x5b, 0x33, 0x31, 0x6d, 0x0a]));
  process.stderr.write(`${'e'.repeat(10_000)}\n`);
  server.server.oninitialized = () => process.stderr.write('fixture initialized\n');
  await server.connect(new StdioServerTransport());
}

// Tests import the constants above; only a run as a program starts the server.
if (process.argv[1] !== undefined && resolve(process.argv[1]) === FIXTURE_PATH) await main();
