/**
 * Client metadata (RFC 7591 §2) as a client presents it, in a registration request or a Client ID
 * Metadata Document: checked member by member and reduced to what the authority acts on. Members
 * this module does not name are dropped. Problems with `redirect_uris` are OAuthError
 * `invalid_redirect_uri`, all others `invalid_client_metadata` (RFC 7591 §3.2.2); callers with other
 * needs re-wrap them.
 *
 * @example
 *   const m = parseClientMetadata(body, { authMethods: ['none'], defaultAuthMethod: 'none', nameRequired: false, jwksUriHttpOnLoopback: false });
 *   m.grantTypes // ['authorization_code']
 */
import { isLoopbackHost, parseUrl } from '../../config/address.ts';
import { OAuthError } from '../oauth/errors.ts';
import { GRANT_TYPES, type ClientAuthMethod } from './client.ts';
import { validateRedirectUri } from './redirect.ts';

export const MAX_REDIRECT_URIS = 20;
export const MAX_CLIENT_NAME_LENGTH = 200;

export interface ClientMetadata {
  clientName: string | undefined;
  redirectUris: string[];
  grantTypes: string[];
  responseTypes: string[];
  authMethod: ClientAuthMethod;
  jwksUri: string | undefined;
}

export interface MetadataRules {
  /** token_endpoint_auth_method values accepted. */
  authMethods: readonly ClientAuthMethod[];
  /** Used when token_endpoint_auth_method is absent. */
  defaultAuthMethod: ClientAuthMethod;
  nameRequired: boolean;
  /** Accept an http jwks_uri on a loopback host (labs only); otherwise jwks_uri must be https. */
  jwksUriHttpOnLoopback: boolean;
}

/** C0/C1 controls and bidirectional overrides, which would let a name disguise itself on the consent page. */
const UNSAFE_NAME = /[\p{Cc}\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

function bad(message: string): OAuthError {
  return new OAuthError('invalid_client_metadata', message);
}

function stringArray(doc: Record<string, unknown>, member: string): string[] | undefined {
  const value = doc[member];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string')) {
    throw member === 'redirect_uris'
      ? new OAuthError('invalid_redirect_uri', 'redirect_uris must be an array of strings')
      : bad(`${member} must be an array of strings`);
  }
  return [...new Set(value)];
}

function clientName(doc: Record<string, unknown>, required: boolean): string | undefined {
  const value = doc.client_name;
  if (value === undefined) {
    if (required) throw bad('client_name is required');
    return undefined;
  }
  if (typeof value !== 'string' || value.trim() === '') throw bad('client_name must be a non-empty string');
  if ([...value].length > MAX_CLIENT_NAME_LENGTH) throw bad(`client_name must not be longer than ${MAX_CLIENT_NAME_LENGTH} characters`);
  if (UNSAFE_NAME.test(value)) throw bad('client_name must not contain control or bidirectional formatting characters');
  return value;
}

function redirectUris(doc: Record<string, unknown>, grantTypes: string[]): string[] {
  const uris = stringArray(doc, 'redirect_uris') ?? [];
  if (grantTypes.includes('authorization_code') && uris.length === 0) {
    throw new OAuthError('invalid_redirect_uri', 'redirect_uris must name at least one URI for the authorization_code grant');
  }
  if (uris.length > MAX_REDIRECT_URIS) throw new OAuthError('invalid_redirect_uri', `redirect_uris must not name more than ${MAX_REDIRECT_URIS} URIs`);
  for (const uri of uris) {
    const why = validateRedirectUri(uri);
    if (why !== undefined) throw new OAuthError('invalid_redirect_uri', `redirect_uri ${JSON.stringify(uri.slice(0, 200))} ${why}`);
  }
  return uris;
}

function grantTypes(doc: Record<string, unknown>): string[] {
  const grants = stringArray(doc, 'grant_types') ?? ['authorization_code'];
  if (grants.length === 0) throw bad('grant_types must not be empty');
  const unknown = grants.find((g) => !(GRANT_TYPES as readonly string[]).includes(g));
  if (unknown !== undefined) throw bad(`grant type ${JSON.stringify(unknown.slice(0, 100))} is not supported (supported: ${GRANT_TYPES.join(', ')})`);
  if (grants.includes('refresh_token') && !grants.includes('authorization_code')) {
    throw bad('grant type refresh_token is only issued with authorization_code');
  }
  return grants;
}

function responseTypes(doc: Record<string, unknown>, grants: string[]): string[] {
  const code = grants.includes('authorization_code');
  const types = stringArray(doc, 'response_types') ?? (code ? ['code'] : []);
  const unknown = types.find((t) => t !== 'code');
  if (unknown !== undefined) throw bad(`response type ${JSON.stringify(unknown.slice(0, 100))} is not supported (only code)`);
  // RFC 7591 §2.1: the authorization_code grant and the code response type go together.
  if (code !== types.includes('code')) throw bad('response_types must be ["code"] exactly when grant_types includes authorization_code');
  return types;
}

function authMethod(doc: Record<string, unknown>, rules: MetadataRules): ClientAuthMethod {
  const value = doc.token_endpoint_auth_method ?? rules.defaultAuthMethod;
  if (typeof value !== 'string' || !(rules.authMethods as readonly string[]).includes(value)) {
    throw bad(`token_endpoint_auth_method must be one of ${rules.authMethods.join(', ')}`);
  }
  return value as ClientAuthMethod;
}

function jwksUri(doc: Record<string, unknown>, method: ClientAuthMethod, rules: MetadataRules): string | undefined {
  if (doc.jwks !== undefined) throw bad('jwks (keys inline) is not supported: publish the keys and name them in jwks_uri');
  const value = doc.jwks_uri;
  if (method !== 'private_key_jwt') {
    if (value !== undefined) throw bad('jwks_uri is only used with token_endpoint_auth_method private_key_jwt');
    return undefined;
  }
  if (value === undefined) throw bad('private_key_jwt needs jwks_uri');
  if (typeof value !== 'string') throw bad('jwks_uri must be a string');
  const url = parseUrl(value);
  if (url === undefined) throw bad('jwks_uri must be an absolute URL');
  const httpAllowed = rules.jwksUriHttpOnLoopback && url.protocol === 'http:' && isLoopbackHost(url.hostname);
  if (url.protocol !== 'https:' && !httpAllowed) throw bad('jwks_uri must be an https URL');
  if (url.username !== '' || url.password !== '' || value.includes('#')) throw bad('jwks_uri must not contain a user name, password or fragment');
  return value;
}

/**
 * Checks `doc` (a JSON object) against RFC 7591 §2 and this authority's limits.
 *
 * @throws OAuthError invalid_redirect_uri or invalid_client_metadata
 */
export function parseClientMetadata(doc: Record<string, unknown>, rules: MetadataRules): ClientMetadata {
  const grants = grantTypes(doc);
  const method = authMethod(doc, rules);
  return {
    clientName: clientName(doc, rules.nameRequired),
    redirectUris: redirectUris(doc, grants),
    grantTypes: grants,
    responseTypes: responseTypes(doc, grants),
    authMethod: method,
    jwksUri: jwksUri(doc, method, rules),
  };
}

/** The metadata in RFC 7591 member names, as stored and returned in a registration response. */
export type MetadataMembers = {
  client_name?: string;
  redirect_uris: string[];
  grant_types: string[];
  response_types: string[];
  token_endpoint_auth_method: ClientAuthMethod;
  jwks_uri?: string;
};

export function metadataMembers(m: ClientMetadata): MetadataMembers {
  return {
    ...(m.clientName !== undefined && { client_name: m.clientName }),
    redirect_uris: m.redirectUris,
    grant_types: m.grantTypes,
    response_types: m.responseTypes,
    token_endpoint_auth_method: m.authMethod,
    ...(m.jwksUri !== undefined && { jwks_uri: m.jwksUri }),
  };
}

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
