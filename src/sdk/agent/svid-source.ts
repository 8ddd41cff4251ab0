/**
 * Where an agent's SPIFFE identity comes from. The token exchange needs a JWT-SVID for the
 * authorization server (the actor token); mutual TLS needs the X.509-SVID. Three sources:
 *
 *   workloadApiSource(socket)   the SPIFFE Workload API that `mandate agent --socket` serves (gRPC)
 *   filesSource(dir, server)    the files `mandate agent --out-dir` writes, plus JWT-SVIDs from the
 *                               Mandate identity API, authenticated by the X.509-SVID (SVID-PoP)
 *   staticSource({ jwtSvid })   whatever the caller supplies (tests, embedding)
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { IdentityClient, type IdentityClientOptions } from '../identity/client.ts';

/** The agent's X.509-SVID as PEM: chain leaf first, its PKCS#8 key, and the own trust domain's anchors. */
export interface X509SvidPem {
  certPem: string;
  keyPem: string;
  bundlePem: string;
}

export interface SvidSource {
  /** A JWT-SVID (compact JWS) of the agent for `audience`, valid for a while yet. */
  jwtSvid(audience: string): Promise<string>;
  /** The current X.509-SVID, when this source has one. */
  x509?(): Promise<X509SvidPem>;
  /** Releases connections the source holds. */
  close?(): Promise<void>;
}

/**
 * A source that asks `jwtSvid` for every JWT-SVID (and `x509`, when given, for the X.509-SVID).
 *
 * @example staticSource({ jwtSvid: async (aud) => (await issueJwtSvid({ spiffeId, audience: [aud], ttlSeconds: 300, key })).token })
 */
export function staticSource(source: { jwtSvid: (audience: string) => Promise<string>; x509?: () => Promise<X509SvidPem> }): SvidSource {
  return { jwtSvid: (audience) => source.jwtSvid(audience), ...(source.x509 && { x509: source.x509 }) };
}

// ---- Workload API ----

/** proto/workloadapi.proto in the repository: the SPIFFE standard's file, read at run time. */
const WORKLOAD_API_PROTO = fileURLToPath(new URL('../../../proto/workloadapi.proto', import.meta.url));
const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
/** Every Workload API call carries this metadata (Workload API §5.1); servers refuse calls without it. */
const SECURITY_HEADER = 'workload.spiffe.io';
const DEFAULT_DEADLINE_MS = 10_000;

type Callback = (err: grpc.ServiceError | null, res: Record<string, unknown>) => void;
interface WorkloadApiClient extends grpc.Client {
  FetchJWTSVID(req: { audience: string[] }, md: grpc.Metadata, opts: grpc.CallOptions, cb: Callback): grpc.ClientUnaryCall;
  FetchX509SVID(req: Record<string, never>, md: grpc.Metadata, opts: grpc.CallOptions): grpc.ClientReadableStream<Record<string, unknown>>;
}

let clientConstructor: grpc.ServiceClientConstructor | undefined;

function workloadApiClient(socketPath: string): WorkloadApiClient {
  if (!clientConstructor) {
    const definition = protoLoader.loadSync(WORKLOAD_API_PROTO, LOADER_OPTIONS);
    clientConstructor = grpc.loadPackageDefinition(definition).SpiffeWorkloadAPI as grpc.ServiceClientConstructor;
  }
  return new clientConstructor(`unix:${socketPath}`, grpc.credentials.createInsecure()) as unknown as WorkloadApiClient;
}

function grpcFailure(rpc: string, socketPath: string, err: grpc.ServiceError): Error {
  return new Error(`Workload API ${rpc} at ${socketPath} failed: ${err.details || err.message}`, { cause: err });
}

/** Splits concatenated DER certificates (each one DER SEQUENCE) as the Workload API sends them. */
export function splitDerCertificates(der: Uint8Array): X509Certificate[] {
  const certs: X509Certificate[] = [];
  let offset = 0;
  while (offset < der.length) {
    if (der[offset] !== 0x30 || offset + 2 > der.length) throw new TypeError('not a sequence of DER certificates');
    const first = der[offset + 1] as number;
    let length = first;
    let header = 2;
    if (first & 0x80) {
      const count = first & 0x7f;
      if (count === 0 || count > 4 || offset + 2 + count > der.length) throw new TypeError('a DER certificate has an invalid length');
      length = 0;
      for (let i = 0; i < count; i += 1) length = length * 256 + (der[offset + 2 + i] as number);
      header += count;
    }
    const end = offset + header + length;
    if (end > der.length) throw new TypeError('a DER certificate is cut short');
    certs.push(new X509Certificate(der.subarray(offset, end)));
    offset = end;
  }
  if (certs.length === 0) throw new TypeError('no certificate');
  return certs;
}

function certificatesPem(certs: readonly X509Certificate[]): string {
  return certs.map((c) => c.toString()).join('');
}

/**
 * The SPIFFE Workload API on a Unix socket (`mandate agent --socket`, SPIRE's agent, ...). Each call
 * asks the agent, which caches and rotates; nothing is cached here.
 *
 * @example
 *   const svids = workloadApiSource('/run/mandate/agent.sock');
 *   const jwt = await svids.jwtSvid('https://mandate.example.org');
 *   await svids.close();
 */
export function workloadApiSource(socketPath: string, opts: { deadlineMs?: number } = {}): Required<SvidSource> {
  const client = workloadApiClient(socketPath);
  const deadlineMs = opts.deadlineMs ?? DEFAULT_DEADLINE_MS;
  const metadata = (): grpc.Metadata => {
    const md = new grpc.Metadata();
    md.set(SECURITY_HEADER, 'true');
    return md;
  };
  return {
    jwtSvid(audience: string): Promise<string> {
      return new Promise((resolve, reject) => {
        client.FetchJWTSVID({ audience: [audience] }, metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => {
          if (err) return reject(grpcFailure('FetchJWTSVID', socketPath, err));
          const svid = (res.svids as Array<Record<string, unknown>> | undefined)?.[0]?.svid;
          if (typeof svid !== 'string' || svid === '') return reject(new Error(`Workload API FetchJWTSVID at ${socketPath} returned no JWT-SVID`));
          resolve(svid);
        });
      });
    },
    x509(): Promise<X509SvidPem> {
      return new Promise((resolve, reject) => {
        const stream = client.FetchX509SVID({}, metadata(), { deadline: Date.now() + deadlineMs });
        let settled = false;
        stream.once('data', (msg: Record<string, unknown>) => {
          settled = true;
          stream.cancel();
          try {
            const svid = (msg.svids as Array<Record<string, Buffer>> | undefined)?.[0];
            if (!svid) throw new Error('the first message holds no X.509-SVID');
            const key: KeyObject = createPrivateKey({ key: svid.x509_svid_key as Buffer, format: 'der', type: 'pkcs8' });
            resolve({
              certPem: certificatesPem(splitDerCertificates(svid.x509_svid as Buffer)),
              keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string,
              bundlePem: certificatesPem(splitDerCertificates(svid.bundle as Buffer)),
            });
          } catch (err) {
            reject(new Error(`Workload API FetchX509SVID at ${socketPath} sent an unusable X.509-SVID: ${(err as Error).message}`, { cause: err }));
          }
        });
        stream.on('error', (err: grpc.ServiceError) => {
          if (!settled) reject(grpcFailure('FetchX509SVID', socketPath, err));
        });
      });
    },
    async close(): Promise<void> {
      client.close();
    },
  };
}

// ---- files ----

/** File names `mandate agent --out-dir` writes (src/identity/workload-agent/files.ts). */
export const SVID_FILES = { cert: 'svid.pem', key: 'svid.key', bundle: 'bundle.pem' } as const;

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
/** The agent writes the key before the chain; a reader between the two sees a new key and an old chain. */
const TORN_READ_ATTEMPTS = 5;
const TORN_READ_PAUSE_MS = 50;

interface FileSvid extends X509SvidPem {
  chain: X509Certificate[];
  privateKey: KeyObject;
}

async function readSvidFiles(dir: string): Promise<FileSvid> {
  for (let attempt = 1; ; attempt += 1) {
    const [certPem = '', keyPem = '', bundlePem = ''] = await Promise.all([SVID_FILES.cert, SVID_FILES.key, SVID_FILES.bundle].map((f) => readFile(join(dir, f), 'utf8')));
    const blocks = certPem.match(PEM_CERTIFICATE) ?? [];
    if (blocks.length === 0) throw new Error(`${join(dir, SVID_FILES.cert)} holds no certificate`);
    const chain = blocks.map((b) => new X509Certificate(b));
    const privateKey = createPrivateKey(keyPem);
    if ((chain[0] as X509Certificate).checkPrivateKey(privateKey)) return { certPem, keyPem, bundlePem, chain, privateKey };
    if (attempt === TORN_READ_ATTEMPTS) throw new Error(`${join(dir, SVID_FILES.key)} is not the key of the certificate in ${join(dir, SVID_FILES.cert)}`);
    await sleep(TORN_READ_PAUSE_MS);
  }
}

/**
 * The files `mandate agent --out-dir <dir>` keeps current (svid.pem, svid.key, bundle.pem), read at
 * every call so a rotation is picked up. JWT-SVIDs come from the Mandate server's identity API
 * (POST /v1/svid/jwt), authenticated by an SVID-PoP signed with the file's key; each is reused until
 * half its lifetime has passed.
 *
 * @example
 *   const svids = filesSource('/run/mandate/svid', { serverUrl: 'https://mandate.example.org', caFile: '/etc/mandate/ca.pem' });
 */
export function filesSource(dir: string, server: IdentityClientOptions): Required<SvidSource> {
  const client = new IdentityClient(server);
  const cache = new Map<string, { token: string; refreshAt: number }>();
  return {
    async jwtSvid(audience: string): Promise<string> {
      const cached = cache.get(audience);
      if (cached && Date.now() < cached.refreshAt) return cached.token;
      const { chain, privateKey } = await readSvidFiles(dir);
      const issuedAt = Date.now();
      const jwt = await client.fetchJwtSvid({ chain, privateKey }, [audience]);
      cache.set(audience, { token: jwt.token, refreshAt: issuedAt + (jwt.expiresAt.getTime() - issuedAt) / 2 });
      return jwt.token;
    },
    async x509(): Promise<X509SvidPem> {
      const { certPem, keyPem, bundlePem } = await readSvidFiles(dir);
      return { certPem, keyPem, bundlePem };
    },
    close: () => client.close(),
  };
}
