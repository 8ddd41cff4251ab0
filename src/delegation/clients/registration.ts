/**
 * Dynamic Client Registration (RFC 7591 §3): the registration endpoint's logic as a plain function,
 * and the reading of stored registrations back into clients.
 *
 * A registered client gets a random `client_id` (never URL-shaped, so it cannot be mistaken for a
 * Client ID Metadata Document) and, for client_secret_basic/client_secret_post only, a random secret
 * that is returned once and stored as its SHA-256 (hex). Metadata members the authority does not act
 * on are dropped (RFC 7591 §2 lets the server ignore them); the response lists what was registered.
 *
 * When registration is disabled the route should not be mounted and `registration_endpoint` not
 * advertised (RFC 8414 §2). RFC 7591 defines no error code for "registration is not offered": its
 * codes (§3.2.2) all describe faults in the request's metadata, which would mislead the client. So a
 * call anyway is refused with the general OAuth refusal `access_denied` and HTTP 403: the server
 * declines, whatever the request says. (RFC 7591 §3 leaves it to the server whom it lets register.)
 *
 * @example
 *   const reply = await registerClient(await readJson(req), { store, dynamicRegistration: config.delegation.dynamicRegistration });
 *   res.writeHead(201, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(reply));
 */
import { createHash, randomBytes } from 'node:crypto';
import type { DelegationConfig } from '../../config/types.ts';
import type { OAuthClientRecord, Store } from '../../store/store.ts';
import { OAuthError } from '../oauth/errors.ts';
import type { ClientAuthMethod, OAuthClient } from './client.ts';
import { isJsonObject, metadataMembers, parseClientMetadata, type MetadataMembers, type MetadataRules } from './client-metadata.ts';

/** The metadata a dynamically registered client may have: no tls_client_auth (needs a configured SPIFFE ID). */
const RULES: MetadataRules = {
  authMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
  defaultAuthMethod: 'client_secret_basic', // RFC 7591 §2
  nameRequired: false,
  jwksUriHttpOnLoopback: false,
};

const SECRET_METHODS: readonly ClientAuthMethod[] = ['client_secret_basic', 'client_secret_post'];

export interface RegistrationDeps {
  store: Pick<Store, 'createOAuthClient'>;
  dynamicRegistration: DelegationConfig['dynamicRegistration'];
  now?: () => Date;
}

/** The 201 body (RFC 7591 §3.2.1): the identifiers, the secret if one was issued, and the registered metadata. */
export type RegistrationResponse = MetadataMembers & {
  client_id: string;
  /** Seconds since the epoch. */
  client_id_issued_at: number;
  client_secret?: string;
  /** 0: the secret does not expire. Present exactly when client_secret is. */
  client_secret_expires_at?: 0;
};

/** SHA-256 of a client secret, hex: the form secrets are stored and configured in. */
export function hashClientSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/**
 * Registers a client from the parsed JSON request body.
 *
 * @throws OAuthError access_denied (403) when dynamic registration is disabled;
 *   invalid_redirect_uri / invalid_client_metadata (400) for unacceptable metadata.
 *   Store failures propagate (MandateError ERR_STORE).
 */
export async function registerClient(body: unknown, deps: RegistrationDeps): Promise<RegistrationResponse> {
  if (!deps.dynamicRegistration.enabled) {
    throw new OAuthError('access_denied', 'dynamic client registration is not offered by this server', { status: 403 });
  }
  if (!isJsonObject(body)) throw new OAuthError('invalid_client_metadata', 'the registration request must be a JSON object');
  const metadata = parseClientMetadata(body, RULES);
  const clientId = randomBytes(18).toString('base64url');
  const secret = SECRET_METHODS.includes(metadata.authMethod) ? randomBytes(32).toString('base64url') : undefined;
  const createdAt = deps.now?.() ?? new Date();
  const members = metadataMembers(metadata);
  const record: OAuthClientRecord = {
    clientId,
    metadata: members,
    secretHash: secret === undefined ? null : hashClientSecret(secret),
    createdAt,
  };
  await deps.store.createOAuthClient(record);
  return {
    client_id: clientId,
    client_id_issued_at: Math.floor(createdAt.getTime() / 1000),
    ...(secret !== undefined && { client_secret: secret, client_secret_expires_at: 0 as const }),
    ...members,
  };
}

/**
 * The client a stored registration describes. The metadata is checked again, so a damaged row is
 * refused rather than trusted.
 *
 * @throws OAuthError server_error when the stored registration is unusable
 */
export function clientFromRecord(record: OAuthClientRecord): OAuthClient {
  let metadata;
  try {
    metadata = parseClientMetadata(record.metadata, RULES);
  } catch (err) {
    throw new OAuthError('server_error', `the stored registration of client ${record.clientId} is invalid`, { cause: err });
  }
  const needsSecret = SECRET_METHODS.includes(metadata.authMethod);
  if (needsSecret !== (record.secretHash !== null)) {
    throw new OAuthError('server_error', `the stored registration of client ${record.clientId} is invalid: its secret does not fit ${metadata.authMethod}`);
  }
  return {
    clientId: record.clientId,
    name: metadata.clientName ?? record.clientId,
    redirectUris: metadata.redirectUris,
    authMethod: metadata.authMethod,
    ...(record.secretHash !== null && { secretHash: record.secretHash }),
    grantTypes: metadata.grantTypes,
    ...(metadata.jwksUri !== undefined && { jwksUri: metadata.jwksUri }),
    origin: 'dynamic',
  };
}
