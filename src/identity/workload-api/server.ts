/**
 * The SPIFFE Workload API (SpiffeWorkloadAPI service of workloadapi.proto) over a Unix socket.
 *
 * Every RPC first checks the `workload.spiffe.io: true` header (Workload Endpoint §3, §6). The
 * X.509 and JWT bundle RPCs are server streams: the first message goes out at once, then a complete
 * message follows every update of the source (Workload API §4.3). WIT-SVID is not supported
 * (§7: Unimplemented).
 */
import { resolve } from 'node:path';
import type { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { isMandateError, MandateError, messageOf } from '../../errors.ts';
import type { Logger } from '../../observability/logger.ts';
import { parseSpiffeId } from '../spiffe-id/parse.ts';
import { verifyJwtSvid } from '../jwt-svid/verify.ts';
import { jwtBundlesResponse, x509BundlesResponse, x509SvidResponse } from './messages.ts';
import { workloadApiService } from './proto.ts';
import { bindOwnerOnly, prepareSocketPath, removeSocket } from './socket.ts';
import type { SvidSource, WorkloadIdentity } from './source.ts';
import { grpcError, MISSING_HEADER_MESSAGE, NO_IDENTITY_MESSAGE, SECURITY_HEADER, statusForSourceError, type GrpcError } from './status.ts';
import { toStruct } from './struct.ts';

export type { SvidSource, WorkloadIdentity } from './source.ts';

export interface WorkloadApiOptions {
  socketPath: string;
  source: SvidSource;
  logger?: Logger;
}

export interface WorkloadApiServer {
  /** Ends every open stream with OK, stops the server and removes the socket. Idempotent. */
  close(): Promise<void>;
}

/** Requests are tiny; a validated JWT-SVID is at most 16 KiB. */
const MAX_REQUEST_BYTES = 64 * 1024;
const SHUTDOWN_GRACE_MS = 2000;
/** setTimeout cannot wait longer than 2^31-1 ms; longer waits are re-armed. */
const MAX_TIMER_MS = 2_147_483_647;

type Stream = grpc.ServerWritableStream<unknown, unknown>;
type Unary = grpc.ServerUnaryCall<Record<string, unknown>, unknown>;

function hasSecurityHeader(metadata: grpc.Metadata): boolean {
  const values = metadata.get(SECURITY_HEADER);
  return values.length === 1 && values[0] === 'true';
}

function isOpen(call: Stream): boolean {
  return !call.cancelled && !call.writableEnded && !call.destroyed;
}

function fail(call: Stream, err: GrpcError): void {
  if (isOpen(call)) call.emit('error', err);
}

class Handlers {
  readonly #source: SvidSource;
  readonly #log: Logger | undefined;
  /** Open streams, each with the function that ends it cleanly. */
  readonly #streams = new Map<Stream, () => void>();

  constructor(source: SvidSource, log: Logger | undefined) {
    this.#source = source;
    this.#log = log;
  }

  /** Ends every open stream with status OK. */
  endAll(): void {
    for (const end of [...this.#streams.values()]) end();
  }

  service(): grpc.UntypedServiceImplementation {
    const unimplemented = (call: Stream): void => {
      if (!hasSecurityHeader(call.metadata)) return fail(call, grpcError(grpc.status.INVALID_ARGUMENT, MISSING_HEADER_MESSAGE));
      fail(call, grpcError(grpc.status.UNIMPLEMENTED, 'the WIT-SVID profile is not supported by this Workload API endpoint'));
    };
    return {
      FetchX509SVID: (call: Stream) => this.#stream(call, 'FetchX509SVID', x509SvidResponse, true),
      FetchX509Bundles: (call: Stream) => this.#stream(call, 'FetchX509Bundles', x509BundlesResponse, false),
      FetchJWTBundles: (call: Stream) => this.#stream(call, 'FetchJWTBundles', jwtBundlesResponse, false),
      FetchJWTSVID: (call: Unary, callback: grpc.sendUnaryData<unknown>) => void this.#fetchJwtSvid(call).then((res) => callback(null, res), (err: GrpcError) => callback(err)),
      ValidateJWTSVID: (call: Unary, callback: grpc.sendUnaryData<unknown>) => void this.#validateJwtSvid(call).then((res) => callback(null, res), (err: GrpcError) => callback(err)),
      FetchWITSVID: unimplemented,
      FetchWITBundles: unimplemented,
    };
  }

  /**
   * Serves one stream. With `endsAtExpiry` (FetchX509SVID), the stream is ended with Unavailable
   * once the SVID it last carried has expired and the source has none to replace it, so the client
   * stops using it (Workload API §5.2.1).
   */
  #stream(call: Stream, rpc: string, build: (id: WorkloadIdentity) => unknown, endsAtExpiry: boolean): void {
    if (!hasSecurityHeader(call.metadata)) return fail(call, grpcError(grpc.status.INVALID_ARGUMENT, MISSING_HEADER_MESSAGE));
    const first = this.#source.current();
    if (!first) return fail(call, grpcError(grpc.status.UNAVAILABLE, NO_IDENTITY_MESSAGE));

    let expiryTimer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      clearTimeout(expiryTimer);
      unsubscribe();
      this.#streams.delete(call);
    };
    const send = (id: WorkloadIdentity): void => {
      if (!isOpen(call)) return cleanup();
      let message: unknown;
      try {
        message = build(id);
      } catch (err) {
        this.#log?.warn({ rpc, err: messageOf(err) }, 'workload API response cannot be built');
        cleanup();
        return fail(call, grpcError(grpc.status.UNAVAILABLE, messageOf(err)));
      }
      call.write(message);
      if (endsAtExpiry) watchExpiry(id.chain[0]);
    };
    const watchExpiry = (leaf: X509Certificate | undefined): void => {
      clearTimeout(expiryTimer);
      if (!leaf) return;
      const delay = Math.min(Math.max(new Date(leaf.validTo).getTime() - Date.now(), 1000), MAX_TIMER_MS);
      expiryTimer = setTimeout(() => {
        const now = this.#source.current();
        if (now) return watchExpiry(now.chain[0]);
        cleanup();
        fail(call, grpcError(grpc.status.UNAVAILABLE, NO_IDENTITY_MESSAGE));
      }, delay);
      expiryTimer.unref();
    };
    const unsubscribe = this.#source.onUpdate(send);
    this.#streams.set(call, () => {
      cleanup();
      if (isOpen(call)) call.end();
    });
    for (const event of ['cancelled', 'close', 'finish', 'error']) call.once(event, cleanup);
    send(first);
  }

  async #fetchJwtSvid(call: Unary): Promise<unknown> {
    if (!hasSecurityHeader(call.metadata)) throw grpcError(grpc.status.INVALID_ARGUMENT, MISSING_HEADER_MESSAGE);
    const audience = call.request.audience;
    if (!Array.isArray(audience) || audience.length === 0) throw grpcError(grpc.status.INVALID_ARGUMENT, 'audience is required (Workload API §6.2.1)');
    if (audience.some((a) => typeof a !== 'string' || a === '')) throw grpcError(grpc.status.INVALID_ARGUMENT, 'every audience must be a non-empty string');
    const requested = typeof call.request.spiffe_id === 'string' ? call.request.spiffe_id : '';
    if (requested !== '') {
      try {
        parseSpiffeId(requested);
      } catch (err) {
        throw grpcError(grpc.status.INVALID_ARGUMENT, `spiffe_id: ${messageOf(err)}`);
      }
    }
    const id = this.#source.current();
    if (!id) throw grpcError(grpc.status.UNAVAILABLE, NO_IDENTITY_MESSAGE);
    if (requested !== '' && requested !== id.spiffeId) throw grpcError(grpc.status.PERMISSION_DENIED, `this workload is not entitled to ${requested}`);
    let jwt: { spiffeId: string; token: string };
    try {
      jwt = await this.#source.fetchJwtSvid(audience as string[]);
    } catch (err) {
      this.#log?.warn({ rpc: 'FetchJWTSVID', code: isMandateError(err) ? err.code : undefined, err: messageOf(err) }, 'JWT-SVID could not be obtained');
      throw statusForSourceError(err);
    }
    return { svids: [{ spiffe_id: jwt.spiffeId, svid: jwt.token, hint: '' }] };
  }

  async #validateJwtSvid(call: Unary): Promise<unknown> {
    if (!hasSecurityHeader(call.metadata)) throw grpcError(grpc.status.INVALID_ARGUMENT, MISSING_HEADER_MESSAGE);
    const { audience, svid } = call.request;
    if (typeof audience !== 'string' || audience === '') throw grpcError(grpc.status.INVALID_ARGUMENT, 'audience is required (Workload API §6.2.3)');
    if (typeof svid !== 'string' || svid === '') throw grpcError(grpc.status.INVALID_ARGUMENT, 'svid is required (Workload API §6.2.3)');
    const id = this.#source.current();
    if (!id) throw grpcError(grpc.status.UNAVAILABLE, NO_IDENTITY_MESSAGE);
    try {
      const verified = await verifyJwtSvid(svid, id.bundles, { audience });
      return { spiffe_id: verified.spiffeId.toString(), claims: toStruct(verified.claims as Record<string, unknown>) };
    } catch (err) {
      if (isMandateError(err)) throw grpcError(grpc.status.INVALID_ARGUMENT, `${err.code}: ${err.message}`);
      this.#log?.error({ rpc: 'ValidateJWTSVID', err: messageOf(err) }, 'JWT-SVID validation failed unexpectedly');
      throw grpcError(grpc.status.INTERNAL, 'internal error');
    }
  }
}

function bind(server: grpc.Server, address: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolvePromise()));
  });
}

function shutdown(server: grpc.Server): Promise<void> {
  return new Promise((resolvePromise) => {
    const force = setTimeout(() => server.forceShutdown(), SHUTDOWN_GRACE_MS);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolvePromise();
    });
  });
}

/**
 * Starts the Workload API on a Unix socket (mode 0600). A stale socket file is replaced; a path that
 * is not a socket, or a socket another process serves, is refused.
 *
 * @throws MandateError ERR_CONFIG_INVALID | ERR_CONFLICT when the socket cannot be set up.
 * @example
 *   const api = await startWorkloadApi({ socketPath: '/run/mandate/agent.sock', source: agent });
 *   // SPIFFE_ENDPOINT_SOCKET=unix:///run/mandate/agent.sock
 *   await api.close();
 */
export async function startWorkloadApi(opts: WorkloadApiOptions): Promise<WorkloadApiServer> {
  const socketPath = resolve(opts.socketPath);
  await prepareSocketPath(socketPath);
  const handlers = new Handlers(opts.source, opts.logger);
  const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_REQUEST_BYTES });
  server.addService(workloadApiService(), handlers.service());
  try {
    await bindOwnerOnly(socketPath, () => bind(server, `unix:${socketPath}`));
  } catch (err) {
    server.forceShutdown();
    await removeSocket(socketPath);
    throw new MandateError('ERR_CONFIG_INVALID', `Workload API cannot listen on ${socketPath}: ${messageOf(err)}`, { cause: err });
  }
  opts.logger?.info({ socketPath }, 'SPIFFE Workload API listening');

  let closing: Promise<void> | undefined;
  return {
    close(): Promise<void> {
      closing ??= (async () => {
        handlers.endAll();
        await shutdown(server);
        await removeSocket(socketPath);
        opts.logger?.info({ socketPath }, 'SPIFFE Workload API stopped');
      })();
      return closing;
    },
  };
}
