/**
 * What the OAuth endpoints share: configuration, keys, mandates, the revocation list, the client
 * registry, the identity authority's bundles, external providers and the event sink. Built once by
 * DelegationAuthority (../authority.ts); endpoints take it as plain data.
 */
import type { DelegationConfig } from '../../config/types.ts';
import type { TrustBundleSet } from '../../identity/bundle/set.ts';
import type { EventSink } from '../../observability/events.ts';
import type { Store } from '../../store/store.ts';
import type { DpopNonces, DpopVerifyOptions } from '../binding/dpop.ts';
import type { OAuthClient } from '../clients/client.ts';
import type { Mandates } from '../mandates/mandates.ts';
import type { Principal } from '../principals/principal.ts';
import type { RevocationList } from '../tokens/revocation.ts';
import type { TokenSigningKeys } from '../tokens/signing-keys.ts';
import type { AccessTokenVerifier } from '../tokens/verify.ts';

export interface OAuthContext {
  issuer: string;
  /** Token endpoint URLs: the main listener's, and the mTLS alias when configured. */
  tokenEndpoints: string[];
  /** Base URL of the mutual-TLS listener (RFC 8705 endpoint aliases), when configured. */
  mtlsUrl: string | undefined;
  config: DelegationConfig;
  store: Store;
  keys: TokenSigningKeys;
  mandates: Mandates;
  revocation: RevocationList;
  verifier: AccessTokenVerifier;
  dpop: DpopVerifyOptions & { nonces: DpopNonces };
  resolveClient(clientId: string): Promise<OAuthClient>;
  bundles(): TrustBundleSet;
  /** Verifies an external provider's ID or access token; null when its issuer is not a configured provider. */
  verifyProviderToken(token: string): Promise<Principal | null>;
  events: EventSink;
  now(): Date;
}

export const TOKEN_TYPE = {
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
  idToken: 'urn:ietf:params:oauth:token-type:id_token',
  refreshToken: 'urn:ietf:params:oauth:token-type:refresh_token',
  /** Mandate's extension: the subject is a mandate, named by id (admin-issued mandates have no principal token). */
  mandate: 'urn:mandate:params:oauth:token-type:mandate',
} as const;

export const GRANT = {
  tokenExchange: 'urn:ietf:params:oauth:grant-type:token-exchange',
  authorizationCode: 'authorization_code',
  refreshToken: 'refresh_token',
} as const;
