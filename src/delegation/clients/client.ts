/**
 * An OAuth client as the delegation authority sees it, whichever way it became known: configured by
 * the operator, described by a Client ID Metadata Document at its own URL, or registered dynamically
 * (RFC 7591). Authorization and token endpoints work with this one shape.
 *
 * @example
 *   const client = clientFromConfig(config.delegation.clients[0]!);
 *   client.origin // 'config'
 */
import type { ClientAuthMethod, OAuthClientConfig } from '../../config/types.ts';

export type { ClientAuthMethod };

export interface OAuthClient {
  readonly clientId: string;
  /** Shown on the consent page. */
  readonly name: string;
  /** Compared exactly (see redirect.ts); empty for clients without the authorization_code grant. */
  readonly redirectUris: readonly string[];
  readonly authMethod: ClientAuthMethod;
  /** SHA-256 (hex) of the client secret, for client_secret_basic and client_secret_post. */
  readonly secretHash?: string;
  /** For private_key_jwt with a JWT-SVID and tls_client_auth (configured clients only). */
  readonly spiffeId?: string;
  readonly grantTypes: readonly string[];
  /** Where the client's keys for private_key_jwt are published (metadata-document and dynamic clients). */
  readonly jwksUri?: string;
  readonly origin: 'config' | 'metadata-document' | 'dynamic';
}

/** The grant types every client kind may hold. */
export const GRANT_TYPES = ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:token-exchange'] as const;

export function clientFromConfig(c: OAuthClientConfig): OAuthClient {
  return {
    clientId: c.clientId,
    name: c.name,
    redirectUris: [...c.redirectUris],
    authMethod: c.authMethod,
    ...(c.secretHash !== undefined && { secretHash: c.secretHash }),
    ...(c.spiffeId !== undefined && { spiffeId: c.spiffeId }),
    grantTypes: [...c.grantTypes],
    origin: 'config',
  };
}
