/**
 * The bare reverse proxy of the gateway benchmark, in a process of its own: what any proxy in front
 * of a tool server costs, with no checks at all. A node:http server that streams each request to
 * the upstream through an undici Pool (keep-alive, as many connections as the gateway's pool) and
 * streams the answer back. It passes on the same request headers the gateway passes (content type,
 * accept, MCP headers) and the response headers except hop-by-hop ones, so the two differ only by
 * what the gateway checks, mints and records.
 *
 * Usage: node --import tsx bench/gateway-proxy.ts <upstream MCP URL>
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { serveChild } from './gateway-process.ts';

export interface ProxyInfo {
  /** The proxied MCP endpoint. */
  url: string;
}

const REQUEST_HEADERS = ['content-type', 'accept', 'mcp-session-id', 'mcp-protocol-version', 'mcp-method', 'mcp-name', 'last-event-id'];
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);

function requestHeaders(h: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of REQUEST_HEADERS) {
    const v = h[name];
    if (typeof v === 'string') out[name] = v;
  }
  return out;
}

async function startProxy(target: URL): Promise<{ info: ProxyInfo; close: () => Promise<void> }> {
  const pool = new Pool(target.origin, { connections: 64, keepAliveTimeout: 10_000 });
  const server = createServer((req, res) => {
    pool.stream({ path: target.pathname, method: (req.method ?? 'GET') as 'POST', headers: requestHeaders(req.headers), body: req }, ({ statusCode, headers }) => {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
      res.writeHead(statusCode, out);
      return res;
    }).catch(() => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    info: { url: `http://127.0.0.1:${port}${target.pathname}` },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.close();
    },
  };
}

const target = process.argv[2];
if (target === undefined) throw new Error('usage: gateway-proxy.ts <upstream MCP URL>');
await serveChild<ProxyInfo>(() => startProxy(new URL(target)));
