/**
 * The bare reverse proxy of the gateway benchmark, in a process of its own: what any proxy in front
 * of a tool server costs, with no checks at all. A node:http server that streams each request to
 * the upstream through an undici Pool (keep-alive, as many connections as the gateway's pool) and
 * streams the answer back. It passes on the same request headers the gateway passes (content type,
 * accept, MCP headers) and the response headers except hop-by-hop ones, so the two differ only by
 * what the gateway checks, mints and records.
 *
 * With `verify-proof`, it also checks the one signature no DPoP-checking gateway can skip: the DPoP
 * proof's, fresh on every request (ES256 against the proof's own `jwk`, on libuv's thread pool as the
 * gateway verifies it; the key imported once per key). No other check:
 * this is the floor under any gateway that verifies a proof per call, measured on the same machine.
 *
 * Usage: node --import tsx bench/gateway-proxy.ts <upstream MCP URL> [verify-proof]
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
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

/** Proof keys by the proof's encoded header (the same for every proof of one key and alg). */
const proofKeys = new Map<string, KeyObject>();

/** Verifies the signature of the request's DPoP proof (ES256 against its header's jwk); false if it does not verify. */
function proofVerifies(req: IncomingMessage): Promise<boolean> {
  const proof = req.headers.dpop;
  if (typeof proof !== 'string') return Promise.resolve(false);
  const [h, p, sig] = proof.split('.');
  if (h === undefined || p === undefined || sig === undefined) return Promise.resolve(false);
  let key = proofKeys.get(h);
  if (key === undefined) {
    const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as { jwk: object };
    key = createPublicKey({ key: header.jwk as never, format: 'jwk' });
    if (proofKeys.size < 1000) proofKeys.set(h, key);
  }
  const input = Buffer.from(`${h}.${p}`);
  const signature = Buffer.from(sig, 'base64url');
  const publicKey = key;
  return new Promise((resolve) => verify('sha256', input, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature, (err, ok) => resolve(!err && ok)));
}

async function startProxy(target: URL, verifyProof: boolean): Promise<{ info: ProxyInfo; close: () => Promise<void> }> {
  const pool = new Pool(target.origin, { connections: 64, keepAliveTimeout: 10_000 });
  const forward = (req: IncomingMessage, res: ServerResponse) => {
    pool.stream({ path: target.pathname, method: (req.method ?? 'GET') as 'POST', headers: requestHeaders(req.headers), body: req }, ({ statusCode, headers }) => {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
      res.writeHead(statusCode, out);
      return res;
    }).catch(() => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
  };  const server = createServer((req, res) => {
    if (!verifyProof) return forward(req, res);
    proofVerifies(req).then((ok) => (ok ? forward(req, res) : void res.writeHead(401).end()), () => void res.writeHead(401).end());
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
if (target === undefined) throw new Error('usage: gateway-proxy.ts <upstream MCP URL> [verify-proof]');
await serveChild<ProxyInfo>(() => startProxy(new URL(target), process.argv[3] === 'verify-proof'));
