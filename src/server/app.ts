/**
 * `mandate up`: the whole platform in one process. Builds every component from the configuration,
 * serves the HTTP(S) API, runs rotation and federation in the background, and shuts down in order.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { isAbsolute, join, resolve } from 'node:path';
import { AuditTrail } from '../audit/trail.ts';
import { isLoopbackHost } from '../config/address.ts';
import type { ListenAddress, MandateConfig } from '../config/types.ts';
import { MandateError } from '../errors.ts';
import { DelegationAuthority } from '../delegation/authority.ts';
import type { MetadataDocumentOptions } from '../delegation/clients/metadata-document.ts';
import { buildAttestors } from '../identity/attestation/catalog.ts';
import { IdentityAuthority } from '../identity/authority/authority.ts';
import { KeyManager } from '../identity/authority/key-manager.ts';
import { MAX_JWT_SVID_TTL } from '../identity/authority/validate.ts';
import { parseSpiffeBundle } from '../identity/bundle/parse.ts';
import { toSpiffeBundleJson } from '../identity/bundle/serialize.ts';
import { TrustBundleSet } from '../identity/bundle/set.ts';
import { importCa, type ImportedCa } from '../identity/ca/import.ts';
import { FederationManager } from '../identity/federation/poller.ts';
import { KeyEncryptionKey } from '../identity/keys/kek.ts';
import { logEventSink, teeEventSink, type EventSink } from '../observability/events.ts';
import { recordAuditCommit } from '../observability/metrics.ts';
import { startTracing } from '../observability/tracing.ts';
import { Gateway } from '../gateway/gateway.ts';
import { principalSecretNames, Vault } from '../gateway/vault.ts';
import { startGatewayListeners } from '../gateway/listeners.ts';
import { rateLimiter, upstreamCredentials } from '../gateway/wiring.ts';
import { PolicyEngine } from '../policy/engine.ts';
import type { Logger } from '../observability/logger.ts';
import { openStore } from '../store/open.ts';
import type { Store } from '../store/store.ts';
import { ensureAdminToken } from './admin-auth.ts';
import { sendJson } from './http/context.ts';
import { Router } from './http/router.ts';
import { adminRoutes } from './routes/admin.ts';
import { consentRoutes } from './routes/consent.ts';
import { identityRoutes } from './routes/identity.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { oauthRoutes } from './routes/oauth.ts';

export interface StartOptions {
  config: MandateConfig;
  dataDir: string;
  logger: Logger;
  /** Extra event sink (tests collect events here). */
  events?: EventSink;
  /** Overrides config server.listen, e.g. port 0 in tests. */
  listen?: ListenAddress;
  /** Trust anchors and resolver for fetching Client ID Metadata Documents (tests and labs). */
  metadataDocumentOptions?: MetadataDocumentOptions;
}

export interface RunningMandate {
  /** Base URL the API answers on. */
  url: string;
  /** The admin token when it was created by this start (first start only); print it once. */
  adminToken: string | null;
  authority: IdentityAuthority;
  keys: KeyManager;
  /** The audit trail every component writes through. */
  audit: AuditTrail;
  store: Store;
  federation: FederationManager;
  delegation: DelegationAuthority;
  /** Secrets the gateway injects upstream, sealed with the KEK. */
  vault: Vault;
  /** The gateway, when tool servers are configured. */
  gateway: Gateway | undefined;
  /** Base URLs of the gateway's own listeners, when configured (tool servers are also on `url`). */
  gatewayUrls: { url?: string; mtlsUrl?: string };
  /** The policy engine, when `policy.dir` is configured. */
  policy: PolicyEngine | undefined;
  /** The delegation authority's issuer identifier (the public URL). */
  issuer: string;
  /** Base URL of the mutual-TLS listener, when configured. */
  mtlsUrl: string | undefined;
  kekCreated: boolean;
  close(): Promise<void>;
}

function boundUrl(server: Server, scheme: 'http' | 'https'): string {
  const address = server.address() as AddressInfo;
  const hostForUrl = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${scheme}://${hostForUrl}:${address.port}`;
}

/** Stops accepting, lets requests in flight finish (10 s at most), then closes. */
function closeServer(server: Server): Promise<void> {
  return new Promise<void>((done) => {
    server.close(() => done());
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), 10_000).unref();
  });
}

/** Malformed requests (bad headers, oversized header block, TLS garbage) get a 400, never a crash. */
function answerClientErrors(server: Server): void {
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolveListen());
  });
}

/**
 * The mutual-TLS listener (RFC 8705): token, introspection and revocation endpoints where clients
 * authenticate with X.509-SVIDs and tokens bind to the client certificate. The TLS layer asks for a
 * certificate but accepts any; the endpoints verify it as an SVID against our and federated bundles.
 * Bound before the delegation authority is built, so the URLs it publishes carry the real port.
 */
async function bindMtlsListener(
  config: MandateConfig,
  logger: Logger,
  serverOptions: Record<string, number>,
  closers: Array<() => Promise<void> | void>,
): Promise<{ router: Router; url: string } | undefined> {
  const mtls = config.delegation.mtls;
  if (!mtls) return undefined;
  const router = new Router({ logger, maxBodyBytes: config.server.maxBodyBytes });
  const server = createHttpsServer({
    ...serverOptions,
    cert: readFileSync(mtls.tls.certFile),
    key: readFileSync(mtls.tls.keyFile),
    requestCert: true,
    rejectUnauthorized: false,
  }, router.handle);
  answerClientErrors(server);
  await listen(server, mtls.listen.port, mtls.listen.host);
  closers.push(() => closeServer(server));
  const url = mtls.listen.port === 0 && mtls.publicUrl.endsWith(':0') ? boundUrl(server, 'https') : mtls.publicUrl;
  return { router, url };
}

function loadKek(config: MandateConfig, dataDir: string): { kek: KeyEncryptionKey; created: boolean } {
  if (config.keys.kek) return { kek: KeyEncryptionKey.fromBytes(config.keys.kek.reveal()), created: false };
  return KeyEncryptionKey.fromFile(join(dataDir, 'kek.key'), true);
}

function loadImportedCa(config: MandateConfig): ImportedCa | undefined {
  const imp = config.identity.ca.import;
  if (!imp) return undefined;
  return importCa({
    certPem: readFileSync(imp.certFile, 'utf8'),
    keyPem: readFileSync(imp.keyFile, 'utf8'),
    bundlePem: imp.bundleFile ? readFileSync(imp.bundleFile, 'utf8') : undefined,
  });
}

export async function startMandate(opts: StartOptions): Promise<RunningMandate> {
  const { config, logger } = opts;
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const { kek, created: kekCreated } = loadKek(config, dataDir);
  if (kekCreated) logger.warn({ path: join(dataDir, 'kek.key') }, 'generated a key-encryption key in the data directory; set MANDATE_KEK in production');

  const store = config.store.driver === 'postgres'
    ? await openStore({ driver: 'postgres', url: config.store.url.reveal() })
    : await openStore({ driver: 'sqlite', path: isAbsolute(config.store.path) ? config.store.path : join(dataDir, config.store.path) });
  const closers: Array<() => Promise<void> | void> = [() => store.close()];
  try {
    // Spans exist from here on (trace ids in logs and audit events); exported last thing at close.
    const tracing = await startTracing(config.observability.traces, { replica: config.audit.replica, logger });
    closers.unshift(() => tracing.shutdown());
    // Every component writes its record through the audit trail (and the structured log).
    const audit = await AuditTrail.start({ store, kek, config: config.audit, logger: logger.child({ component: 'audit' }), onCommit: recordAuditCommit });
    closers.push(() => audit.close());
    const events = teeEventSink(logEventSink(logger.child({ component: 'events' })), audit.sink(), ...(opts.events ? [opts.events] : []));
    const adminToken = await ensureAdminToken(store);
    const id = config.identity;
    const keys = new KeyManager({
      store, kek, events,
      trustDomain: config.trustDomain,
      ca: { keyType: id.ca.keyType, ttlSeconds: id.ca.ttl, commonName: id.ca.commonName, imported: loadImportedCa(config) },
      jwt: { algorithm: id.jwtSvid.algorithm, keyTtlSeconds: id.jwtSvid.keyTtl, maxSvidTtlSeconds: MAX_JWT_SVID_TTL },
      refreshHintSeconds: id.bundle.refreshHint,
      prepareAhead: id.rotation.prepareAhead,
    });
    await keys.init();

    // Federated bundles: start from the last good copies in the store, then refresh from their sources.
    const federated = new TrustBundleSet();
    for (const record of await store.listFederatedBundles()) {
      if (!config.federation.trustDomains.some((t) => t.trustDomain === record.trustDomain)) continue;
      try {
        federated.set(parseSpiffeBundle(record.bundle, record.trustDomain));
      } catch (err) {
        logger.warn({ trustDomain: record.trustDomain, err: (err as Error).message }, 'stored federated bundle is unreadable; waiting for a fresh one');
      }
    }
    let authority: IdentityAuthority | undefined;
    const federation = new FederationManager({
      sources: config.federation.trustDomains.map((t) => t.kind === 'file'
        ? { trustDomain: t.trustDomain, bundleFile: t.bundleFile }
        : { trustDomain: t.trustDomain, bundleUrl: t.bundleUrl, caFile: t.caFile, defaultRefreshSeconds: t.defaultRefresh }),
      bundles: federated,
      onUpdate: async (td, bundle, source) => {
        await store.putFederatedBundle({ trustDomain: td, bundle: JSON.stringify(toSpiffeBundleJson(bundle)), source, refreshedAt: new Date() });
        authority?.federationChanged();
        events.emit({ type: 'federation.bundle.updated', outcome: 'success', trustDomain: td, source, sequence: bundle.sequence });
      },
      onError: (td, err) => events.emit({ type: 'federation.bundle.refresh_failed', outcome: 'failure', trustDomain: td, error: err.code, reason: err.message }),
    });
    closers.push(() => federation.stop());

    authority = new IdentityAuthority({
      trustDomain: config.trustDomain, store, keys, federated, events,
      attestors: buildAttestors({ joinToken: config.attestation.joinToken, k8s: { clusters: [...config.attestation.k8s.clusters] }, static: { enabled: config.attestation.static.enabled, allowedSelectors: [...config.attestation.static.allowedSelectors] } }, { store }),
      defaults: { x509SvidTtl: id.x509Svid.defaultTtl, jwtSvidTtl: id.jwtSvid.defaultTtl, joinTokenTtl: config.attestation.joinToken.defaultTtl },
    });
    await federation.start();

    const router = new Router({ logger, maxBodyBytes: config.server.maxBodyBytes });
    router
      .on('GET', '/healthz', (ctx) => sendJson(ctx.res, 200, { status: 'ok' }))
      .on('GET', '/readyz', async (ctx) => {
        await store.schemaVersion();
        sendJson(ctx.res, 200, { status: 'ready', trust_domain: config.trustDomain });
      });
    identityRoutes(router, authority);
    metricsRoutes(router, { enabled: config.observability.metrics.enabled });

    const { host, port } = opts.listen ?? config.server.listen;
    const tls = config.server.tls;
    if (!tls && !isLoopbackHost(host) && !config.server.allowNonLoopbackHttp) {
      throw new MandateError('ERR_CONFIG_INVALID', `server.listen ${host} is not a loopback address: configure server.tls, or set server.allow_non_loopback_http behind a TLS-terminating proxy`);
    }
    const serverOptions = { requestTimeout: config.server.requestTimeout, headersTimeout: Math.min(config.server.requestTimeout, 10_000), keepAliveTimeout: 5000, maxHeaderSize: 16 * 1024 };
    // The gateway (built once the authority and policy exist) serves tool-server paths first.
    let gateway: Gateway | undefined;
    let gatewayUrls: { url?: string; mtlsUrl?: string } = {};
    const front = (req: IncomingMessage, res: ServerResponse) => {
      if (!gateway?.handle(req, res)) void router.handle(req, res);
    };
    const server: Server = tls
      ? createHttpsServer({ ...serverOptions, cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, front)
      : createHttpServer(serverOptions, front);
    answerClientErrors(server);
    await listen(server, port, host);
    closers.push(() => closeServer(server));
    const url = boundUrl(server, tls ? 'https' : 'http');

    // The issuer is the public URL; when that was derived from a listen port of 0, the bound port.
    const issuer = config.server.publicUrlFromListen ? url : config.server.publicUrl;
    const mtls = await bindMtlsListener(config, logger, serverOptions, closers);
    const mtlsUrl = mtls?.url;
    const delegation = new DelegationAuthority({
      config: config.delegation, issuer, mtlsUrl, store, kek, events,
      bundles: () => authority.bundles(),
      metadataDocumentOptions: opts.metadataDocumentOptions,
    });
    await delegation.start();
    closers.push(() => delegation.stop());
    // An invalid policy set stops the start (PolicySetError names file, line and column).
    const policy = config.policy.dir === undefined ? undefined : PolicyEngine.fromDirectory(config.policy.dir, { events });
    if (policy) {
      if (config.policy.watch) policy.watch();
      closers.push(() => policy.close());
      logger.info({ dir: config.policy.dir, policySetVersion: policy.current.version, policies: policy.current.policies.size }, 'policy set loaded');
    }
    const vault = new Vault({ store, kek, events });
    if (config.gateway.toolServers.length > 0) {
      if (!policy) throw new MandateError('ERR_CONFIG_INVALID', 'the gateway decides every call with the policy engine: set policy.dir');
      gateway = new Gateway({
        config: config.gateway, issuer, publicUrl: issuer, verifier: delegation.verifier, policy, audit, store,
        limiter: rateLimiter(config.gateway, closers),
        credentials: upstreamCredentials({ issuer, trustDomain: config.trustDomain, keys: delegation.keys, vault, txnToken: config.gateway.txnToken }),
        resourceScopes: (uri) => config.delegation.resources.find((r) => r.uri === uri)?.scopes,
        bundles: () => authority.bundles(),
        logger: logger.child({ component: 'gateway' }),
      });
      const mounted = gateway;
      closers.push(() => mounted.close());
      await gateway.start();
      const listeners = await startGatewayListeners(gateway, config.gateway, serverOptions);
      for (const l of [listeners.plain, listeners.mtls]) if (l) closers.push(() => l.close());
      gatewayUrls = { url: listeners.plain?.url, mtlsUrl: listeners.mtls?.url };
    }
    adminRoutes(router, { store, authority, keys, federation, events, delegation, policy, audit, vault });
    oauthRoutes(router, delegation, { baseUrl: issuer, mtls: false });
    consentRoutes(router, delegation, { vault, names: principalSecretNames(config.gateway.toolServers) });
    if (mtls) oauthRoutes(mtls.router, delegation, { baseUrl: mtls.url, mtls: true });

    const rotation = setInterval(() => {
      keys.tick().then(
        (changed) => changed && logger.info({ sequence: keys.bundle().sequence }, 'signing keys rotated; bundle updated'),
        (err) => logger.error({ err: (err as Error).message }, 'key rotation check failed'),
      );
      delegation.tick().catch((err) => logger.error({ err: (err as Error).message }, 'delegation housekeeping failed'));
    }, id.rotation.checkInterval * 1000);
    rotation.unref();

    let closing: Promise<void> | undefined;
    const close = () => (closing ??= (async () => {
      clearInterval(rotation);
      for (const closer of closers.reverse()) await closer();
    })());

    logger.info({ url, issuer, mtlsUrl, trustDomain: config.trustDomain, store: store.kind }, 'mandate is up');
    return { url, mtlsUrl, issuer, adminToken, authority, keys, audit, store, federation, delegation, policy, gateway, gatewayUrls, vault, kekCreated, close };
  } catch (err) {
    for (const closer of closers.reverse()) await closer();
    throw err;
  }
}
