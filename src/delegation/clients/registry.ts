/**
 * The one place the delegation authority asks "who is this client?": configured clients first, then
 * URL-shaped client_ids through Client ID Metadata Documents (when enabled), then dynamically
 * registered clients in the store (when dynamic registration is enabled; turning it off also stops
 * accepting clients registered earlier, so an operator can shut the door in one place). Also checks
 * client secrets.
 *
 * @example
 *   const registry = new ClientRegistry({ clients: d.clients, store, metadataDocuments: d.clientIdMetadataDocuments, dynamicRegistration: d.dynamicRegistration });
 *   const client = await registry.resolve(clientId);
 *   if (!registry.checkSecret(client, secret)) throw new OAuthError('invalid_client', 'client authentication failed');
 */
import { timingSafeEqual } from 'node:crypto';
import type { DelegationConfig, OAuthClientConfig } from '../../config/types.ts';
import type { Store } from '../../store/store.ts';
import { OAuthError } from '../oauth/errors.ts';
import { clientFromConfig, type OAuthClient } from './client.ts';
import { isUrlClientId, MetadataDocumentClients, type MetadataDocumentOptions } from './metadata-document.ts';
import { clientFromRecord, hashClientSecret } from './registration.ts';

export interface ClientRegistryOptions {
  clients: readonly OAuthClientConfig[];
  store: Pick<Store, 'getOAuthClient'>;
  metadataDocuments: DelegationConfig['clientIdMetadataDocuments'];
  dynamicRegistration: DelegationConfig['dynamicRegistration'];
  /** Passed to the metadata document fetcher (trust anchors, resolver, clock) for tests and labs. */
  metadataDocumentOptions?: MetadataDocumentOptions;
}

const HEX_SHA256 = /^[0-9a-f]{64}$/i;

export class ClientRegistry {
  readonly #configured: ReadonlyMap<string, OAuthClient>;
  readonly #store: Pick<Store, 'getOAuthClient'>;
  readonly #documents: MetadataDocumentClients | undefined;
  readonly #dynamic: boolean;

  constructor(opts: ClientRegistryOptions) {
    this.#configured = new Map(opts.clients.map((c) => [c.clientId, clientFromConfig(c)]));
    this.#store = opts.store;
    this.#documents = opts.metadataDocuments.enabled ? new MetadataDocumentClients(opts.metadataDocuments, opts.metadataDocumentOptions) : undefined;
    this.#dynamic = opts.dynamicRegistration.enabled;
  }

  /** True when URL-shaped client_ids are resolved by fetching their document (for AS metadata). */
  get metadataDocumentsSupported(): boolean {
    return this.#documents !== undefined;
  }

  /**
   * @throws OAuthError invalid_client (unknown client, or a metadata document that fails);
   *   server_error for an unusable stored registration. Store failures propagate.
   */
  async resolve(clientId: string): Promise<OAuthClient> {
    const configured = this.#configured.get(clientId);
    if (configured !== undefined) return configured;
    const shown = JSON.stringify(clientId.slice(0, 200));
    if (isUrlClientId(clientId)) {
      if (this.#documents === undefined) throw new OAuthError('invalid_client', `unknown client ${shown}: client ID metadata documents are not accepted here`);
      return this.#documents.resolve(clientId);
    }
    if (this.#dynamic) {
      const record = await this.#store.getOAuthClient(clientId);
      if (record !== null) return clientFromRecord(record);
    }
    throw new OAuthError('invalid_client', `unknown client ${shown}`);
  }

  /**
   * True when `secret` is the client's secret: its SHA-256 compared with the stored hash in
   * constant time. False for clients without a secret.
   */
  checkSecret(client: OAuthClient, secret: string): boolean {
    if (client.secretHash === undefined || !HEX_SHA256.test(client.secretHash)) return false;
    const presented = Buffer.from(hashClientSecret(secret), 'hex');
    return timingSafeEqual(presented, Buffer.from(client.secretHash, 'hex'));
  }

  /** Releases the metadata document fetcher's connections. */
  async close(): Promise<void> {
    await this.#documents?.close();
  }
}
