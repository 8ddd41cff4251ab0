/**
 * The delegation authority: everything between a principal's consent and an agent's OBO token,
 * assembled from the configuration. `mandate up` builds one; the server mounts its endpoints, and a
 * gateway in the same process uses `verifier` and `revocation` directly.
 */
import type { DelegationConfig } from '../config/types.ts';
import type { TrustBundleSet } from '../identity/bundle/set.ts';
import type { KeyEncryptionKey } from '../identity/keys/kek.ts';
import type { EventSink } from '../observability/events.ts';
import type { Store } from '../store/store.ts';
import { DpopNonces } from './binding/dpop.ts';
import { MemoryReplayGuard } from './binding/replay.ts';
import { ClientRegistry } from './clients/registry.ts';
import type { MetadataDocumentOptions } from './clients/metadata-document.ts';
import { Mandates } from './mandates/mandates.ts';
import type { OAuthContext } from './oauth/context.ts';
import { OAUTH_PATHS } from './oauth/endpoints.ts';
import { Directory } from './principals/directory.ts';
import { OidcProviders } from './principals/oidc.ts';
import { RevocationList } from './tokens/revocation.ts';
import { TokenSigningKeys } from './tokens/signing-keys.ts';
import { AccessTokenVerifier, localKeys } from './tokens/verify.ts';

export interface DelegationAuthorityOptions {
  config: DelegationConfig;
  /** This authority's issuer identifier: the server's public URL. */
  issuer: string;
  /** Base URL of the mutual-TLS listener as clients reach it, when there is one. */
  mtlsUrl?: string;
  store: Store;
  kek: KeyEncryptionKey;
  events: EventSink;
  /** Our own and federated SPIFFE bundles, for agents' SVIDs. */
  bundles(): TrustBundleSet;
  metadataDocumentOptions?: MetadataDocumentOptions;
  now?: () => Date;
}

export class DelegationAuthority {
  readonly issuer: string;
  readonly config: DelegationConfig;
  readonly keys: TokenSigningKeys;
  readonly mandates: Mandates;
  readonly revocation: RevocationList;
  readonly verifier: AccessTokenVerifier;
  readonly clients: ClientRegistry;
  readonly directory: Directory;
  readonly providers: OidcProviders;
  readonly oauth: OAuthContext;
  readonly #store: Store;

  constructor(opts: DelegationAuthorityOptions) {
    const { config, store, events } = opts;
    const now = opts.now ?? (() => new Date());
    this.issuer = opts.issuer;
    this.config = config;
    this.#store = store;
    this.keys = new TokenSigningKeys({ store, kek: opts.kek, algorithm: config.token.algorithm, keyTtl: config.token.keyTtl, maxTokenTtl: config.token.maxTtl, events, now });
    this.revocation = new RevocationList({ source: { list: (after, limit) => store.listRevocations(after, limit) } });
    this.mandates = new Mandates({ store, config, events, now, onRevoked: () => this.revocation.sync() });
    const dpop = {
      algorithms: config.dpop.algorithms,
      maxAgeSeconds: config.dpop.proofMaxAge,
      replay: new MemoryReplayGuard({ maxEntries: config.dpop.replayCacheSize }),
      nonces: new DpopNonces(),
    };
    this.verifier = new AccessTokenVerifier({ issuer: opts.issuer, keys: localKeys(this.keys), revocation: this.revocation, dpop });
    this.clients = new ClientRegistry({
      clients: config.clients, store,
      metadataDocuments: config.clientIdMetadataDocuments,
      dynamicRegistration: config.dynamicRegistration,
      metadataDocumentOptions: opts.metadataDocumentOptions,
    });
    this.directory = new Directory({ store, issuer: opts.issuer, maxFailures: config.directory.maxFailures, lockoutSeconds: config.directory.lockout, events, now });
    this.providers = new OidcProviders(config.providers, { events });
    this.oauth = {
      issuer: opts.issuer,
      tokenEndpoints: [`${opts.issuer}${OAUTH_PATHS.token}`, ...(opts.mtlsUrl ? [`${opts.mtlsUrl}${OAUTH_PATHS.token}`] : [])],
      mtlsUrl: opts.mtlsUrl,
      config, store,
      keys: this.keys,
      mandates: this.mandates,
      revocation: this.revocation,
      verifier: this.verifier,
      dpop,
      resolveClient: (id) => this.clients.resolve(id),
      bundles: opts.bundles,
      verifyProviderToken: (token) => this.providers.verifySubjectToken(token, now()),
      events,
      now,
    };
  }

  /** Loads keys and the revocation list, and starts following revocations. */
  async start(): Promise<void> {
    await this.keys.init();
    await this.revocation.sync();
    this.revocation.start();
  }

  /** Key rotation and housekeeping; run periodically. */
  async tick(): Promise<void> {
    await this.keys.tick();
    const now = new Date();
    await this.#store.pruneEphemeral(now);
    await this.#store.pruneRevocations(now);
    await this.mandates.sweepExpired();
  }

  stop(): void {
    this.revocation.stop();
  }
}
