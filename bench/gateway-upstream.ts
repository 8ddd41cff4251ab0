/**
 * The MCP upstream of the gateway benchmark, in a process of its own (forked by gateway.bench.ts).
 *
 * `canned` (default): a plain node:http server that answers every POSTed `tools/call` with the same
 * JSON-RPC result (and `tools/list` with the demo tracker's tools and annotations) — the demo tracker's answer to `list_issues {repository: "acme/api"}` (its text and
 * structured content), with the request's id — so that whatever stands in front of it is measured by
 * its own cost, not the tool's. `tracker`: the real demo MCP server (startIssueTracker, stateless
 * POSTs, no caller verification), for an informational row.
 *
 * Usage: node --import tsx bench/gateway-upstream.ts [canned|tracker]
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { IssueStore, startIssueTracker } from '../src/demo/issue-tracker.ts';
import { serveChild } from './gateway-process.ts';

export interface UpstreamInfo {
  /** The MCP endpoint. */
  url: string;
}

const REPOSITORY = 'acme/api';

/** The demo tracker's tools with their annotations (the gateway learns them from tools/list; policies read them). */
const TOOLS = JSON.stringify({
  tools: [
    { name: 'list_issues', annotations: { readOnlyHint: true, openWorldHint: false } },
    { name: 'get_issue', annotations: { readOnlyHint: true, openWorldHint: false } },
    { name: 'add_comment', annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false } },
    { name: 'delete_issue', annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false } },
  ].map((t) => ({ ...t, inputSchema: { type: 'object' } })),
});

/** The result the demo tracker gives for list_issues on acme/api, built the same way from the same data. */
function cannedResult(): string {
  const issues = new IssueStore().list(REPOSITORY);
  const lines = issues.map((i) => `#${i.number} [${i.state}] ${i.title}${i.labels.length ? ` (${i.labels.join(', ')})` : ''} — ${i.comments} comment${i.comments === 1 ? '' : 's'}`);
  const text = [`${REPOSITORY}: ${issues.length} issues`, ...lines].join('\n');
  return JSON.stringify({ content: [{ type: 'text', text }], structuredContent: { repository: REPOSITORY, issues } });
}

async function startCanned(): Promise<{ info: UpstreamInfo; close: () => Promise<void>; queries: Record<string, () => unknown> }> {
  const result = cannedResult();
  let calls = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let msg: { id?: unknown; method?: unknown };
      try {
        msg = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof msg;
      } catch {
        msg = {};
      }
      if (req.method !== 'POST' || (msg.method !== 'tools/call' && msg.method !== 'tools/list')) {
        res.writeHead(400, { 'content-type': 'application/json' });
        return void res.end('{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"this upstream answers tools/list and tools/call only"}}');
      }
      if (msg.method === 'tools/call') calls++;
      const body = `{"jsonrpc":"2.0","id":${JSON.stringify(msg.id ?? null)},"result":${msg.method === 'tools/call' ? result : TOOLS}}`;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    info: { url: `http://127.0.0.1:${port}/mcp` },
    queries: { calls: () => calls },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function startTracker(): Promise<{ info: UpstreamInfo; close: () => Promise<void> }> {
  const tracker = await startIssueTracker();
  return { info: { url: tracker.url }, close: () => tracker.close() };
}

const mode = process.argv[2] ?? 'canned';
if (mode !== 'canned' && mode !== 'tracker') throw new Error(`unknown upstream mode ${mode}: use canned or tracker`);
await serveChild<UpstreamInfo>(mode === 'canned' ? startCanned : startTracker);
