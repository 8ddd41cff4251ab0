/**
 * The gateway's own listeners, beside the main one: `gateway.listen` (HTTP, or HTTPS with
 * `gateway.tls`) and `gateway.mtls` (HTTPS asking for the agent's X.509-SVID, for certificate-bound
 * tokens; the TLS layer accepts any certificate and the gateway verifies it as an SVID of our or a
 * federated trust domain). They serve tool servers only: anything else is 404.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { GatewayConfig, ListenAddress } from '../config/types.ts';
import { MandateError } from '../errors.ts';
import { sendError } from '../server/http/context.ts';
import type { Gateway } from './gateway.ts';

export interface GatewayListener {
  url: string;
  close(): Promise<void>;
}

function listen(server: Server, at: ListenAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => resolve());
  });
}

function urlOf(server: Server, scheme: string): string {
  const a = server.address() as AddressInfo;
  return `${scheme}://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
}

async function start(gateway: Gateway, create: (handler: (req: IncomingMessage, res: ServerResponse) => void) => Server, at: ListenAddress, scheme: string): Promise<GatewayListener> {
  let url = '';
  const server = create((req, res) => {
    if (!gateway.handle(req, res, url)) sendError(res, new MandateError('ERR_NOT_FOUND', 'no tool server at this path'));
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });
  await listen(server, at);
  url = urlOf(server, scheme);
  return {
    url,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 10_000).unref();
    }),
  };
}

/** Starts the listeners the configuration asks for; returns them (none when it asks for none). */
export async function startGatewayListeners(gateway: Gateway, config: GatewayConfig, serverOptions: Record<string, number>): Promise<{ plain?: GatewayListener; mtls?: GatewayListener }> {
  const out: { plain?: GatewayListener; mtls?: GatewayListener } = {};
  if (config.listen) {
    const tls = config.tls;
    out.plain = await start(gateway, (h) => (tls
      ? createHttpsServer({ ...serverOptions, cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, h)
      : createHttpServer(serverOptions, h)), config.listen, tls ? 'https' : 'http');
  }
  if (config.mtls) {
    const m = config.mtls;
    try {
      out.mtls = await start(gateway, (h) => createHttpsServer({
        ...serverOptions, cert: readFileSync(m.tls.certFile), key: readFileSync(m.tls.keyFile), requestCert: true, rejectUnauthorized: false,
      }, h), m.listen, 'https');
    } catch (err) {
      await out.plain?.close();
      throw err;
    }
  }
  return out;
}
