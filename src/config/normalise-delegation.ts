/**
 * Normalisation of the `delegation` section: durations in seconds, secrets from the environment,
 * URLs and SPIFFE IDs checked, and the cross-references a schema cannot express (a client's auth
 * method and the fields it needs, resources naming known scopes, unique ids).
 *
 * @example
 *   const delegation = normaliseDelegation(raw.delegation, check);
 *   delegation.token.maxTtl // 300
 */
import { isMandateError } from '../errors.ts';
import { parseSpiffeId } from '../identity/spiffe-id/parse.ts';
import { isLoopbackHost, parseListen, parseUrl, urlHost } from './address.ts';
import type { Checker } from './checker.ts';
import { formatKeyPath } from './problems.ts';
import type { RawDelegation, RawOAuthClient, RawOidcProvider } from './raw.ts';
import { Secret } from './secret.ts';
import type { DelegationConfig, MtlsListenerConfig, OAuthClientConfig, OidcProviderConfig, ResourceConfig } from './types.ts';

/** The environment variable holding provider `id`'s client secret: MANDATE_OIDC_<ID>_CLIENT_SECRET. */
export function providerSecretVariable(id: string): string {
  return `MANDATE_OIDC_${id.toUpperCase().replace(/-/g, '_')}_CLIENT_SECRET`;
}

export function normaliseDelegation(raw: RawDelegation, check: Checker): DelegationConfig {
  const at = (...path: Array<string | number>) => ['delegation', ...path];
  const mandateMax = check.seconds(at('mandates', 'max_ttl'), raw.mandates.max_ttl);
  const mandateDefault = check.seconds(at('mandates', 'default_ttl'), raw.mandates.default_ttl);
  if (mandateDefault > mandateMax) check.add(at('mandates', 'default_ttl'), `must not exceed delegation.mandates.max_ttl (${String(raw.mandates.max_ttl)})`);
  const tokenMax = check.seconds(at('token', 'max_ttl'), raw.token.max_ttl);
  const keyTtl = check.seconds(at('token', 'key_ttl'), raw.token.key_ttl);
  if (tokenMax * 4 > keyTtl) check.add(at('token', 'key_ttl'), `must be at least four times delegation.token.max_ttl (${String(raw.token.max_ttl)}) so rotation overlaps`);

  const scopes: Record<string, string> = { ...raw.scopes };
  return {
    token: { algorithm: raw.token.algorithm, maxTtl: tokenMax, keyTtl },
    mandates: { defaultTtl: mandateDefault, maxTtl: mandateMax, defaultMaxDepth: raw.mandates.default_max_depth },
    authorizationCodeTtl: check.seconds(at('authorization_code_ttl'), raw.authorization_code_ttl),
    refreshTokenTtl: check.seconds(at('refresh_token_ttl'), raw.refresh_token_ttl),
    sessionTtl: check.seconds(at('session_ttl'), raw.session_ttl),
    directory: {
      enabled: raw.directory.enabled,
      maxFailures: raw.directory.max_failures,
      lockout: check.seconds(at('directory', 'lockout'), raw.directory.lockout),
    },
    providers: unique(raw.providers.map((p, i) => normaliseProvider(p, i, check)), (p) => p.id, 'providers', 'id', check),
    clients: unique(raw.clients.map((c, i) => normaliseClient(c, i, check)), (c) => c.clientId, 'clients', 'client_id', check),
    clientIdMetadataDocuments: {
      enabled: raw.client_id_metadata_documents.enabled,
      allowPrivateAddresses: raw.client_id_metadata_documents.allow_private_addresses,
      maxBytes: raw.client_id_metadata_documents.max_bytes,
      timeout: check.milliseconds(at('client_id_metadata_documents', 'timeout'), raw.client_id_metadata_documents.timeout),
      cacheTtl: check.seconds(at('client_id_metadata_documents', 'cache_ttl'), raw.client_id_metadata_documents.cache_ttl),
    },
    dynamicRegistration: { enabled: raw.dynamic_registration.enabled },
    dpop: {
      algorithms: [...new Set(raw.dpop.algorithms)],
      proofMaxAge: check.seconds(at('dpop', 'proof_max_age'), raw.dpop.proof_max_age),
      requireNonce: raw.dpop.require_nonce,
      replayCacheSize: raw.dpop.replay_cache_size,
    },
    mtls: raw.mtls && normaliseMtls(raw.mtls, check),
    scopes,
    resources: unique(raw.resources.map((r, i) => normaliseResource(r, i, scopes, check)), (r) => r.uri, 'resources', 'uri', check),
  };
}

/** Reports later duplicates of a key, pointing at the first use. */
function unique<T>(items: T[], key: (item: T) => string, section: string, field: string, check: Checker): T[] {
  const first = new Map<string, number>();
  items.forEach((item, i) => {
    const k = key(item);
    const earlier = first.get(k);
    if (earlier === undefined) first.set(k, i);
    else check.add(['delegation', section, i, field], `duplicate: "${k}" is already used at ${formatKeyPath(['delegation', section, earlier])}`);
  });
  return items;
}

/** https, or http on a loopback host; returned without a trailing `/` when `trim`. */
function webUrl(path: Array<string | number>, value: string, check: Checker, what: string): string {
  const url = parseUrl(value);
  if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    check.add(path, `${what} must be an absolute https URL (got ${JSON.stringify(value)})`);
  } else if (url.protocol === 'http:' && !isLoopbackHost(url.hostname.replace(/^\[|\]$/g, ''))) {
    check.add(path, `${what} must use https (http is only allowed on loopback addresses)`);
  } else if (url.username !== '' || url.password !== '' || url.hash !== '') {
    check.add(path, `${what} must not contain a user name, password or fragment`);
  }
  return value;
}

function normaliseProvider(raw: RawOidcProvider, index: number, check: Checker): OidcProviderConfig {
  const path = ['delegation', 'providers', index];
  const variable = providerSecretVariable(raw.id);
  const fromEnv = check.envVar(variable);
  const secret = fromEnv ?? raw.client_secret;
  if (!raw.scopes.includes('openid')) check.add([...path, 'scopes'], 'must include "openid"');
  return {
    id: raw.id,
    name: raw.name ?? raw.id,
    issuer: webUrl([...path, 'issuer'], raw.issuer, check, 'the issuer'),
    clientId: raw.client_id,
    clientSecret: secret === undefined ? undefined : new Secret(secret, fromEnv !== undefined ? `env ${variable}` : `${formatKeyPath(path)}.client_secret`),
    scopes: [...raw.scopes],
    accessTokenAudience: raw.access_token_audience,
    caFile: raw.ca_file === undefined ? undefined : check.inputFile([...path, 'ca_file'], raw.ca_file),
  };
}

function normaliseClient(raw: RawOAuthClient, index: number, check: Checker): OAuthClientConfig {
  const path = ['delegation', 'clients', index];
  const method = raw.auth_method;
  const needsSecret = method === 'client_secret_basic' || method === 'client_secret_post';
  const needsSpiffeId = method === 'private_key_jwt' || method === 'tls_client_auth';
  if (needsSecret && raw.secret_sha256 === undefined) check.add([...path, 'auth_method'], `${method} needs secret_sha256`);
  if (!needsSecret && raw.secret_sha256 !== undefined) check.add([...path, 'secret_sha256'], `is only used with client_secret_basic or client_secret_post`, 'key');
  if (needsSpiffeId && raw.spiffe_id === undefined) check.add([...path, 'auth_method'], `${method} needs spiffe_id (the agent's SPIFFE ID)`);
  let spiffeId = raw.spiffe_id;
  if (spiffeId !== undefined) {
    try {
      spiffeId = parseSpiffeId(spiffeId).toString();
    } catch (err) {
      if (!isMandateError(err)) throw err;
      check.add([...path, 'spiffe_id'], err.message);
    }
  }
  if (raw.grant_types.includes('authorization_code') && raw.redirect_uris.length === 0) {
    check.add([...path, 'redirect_uris'], 'the authorization_code grant needs at least one redirect URI', 'key');
  }
  raw.redirect_uris.forEach((uri, i) => {
    const url = parseUrl(uri);
    if (url === undefined) check.add([...path, 'redirect_uris', i], `is not an absolute URI (got ${JSON.stringify(uri)})`);
    else if (uri.includes('#')) check.add([...path, 'redirect_uris', i], 'must not contain a fragment (RFC 6749 §3.1.2)');
    else if (url.protocol === 'http:' && !isLoopbackHost(url.hostname.replace(/^\[|\]$/g, ''))) {
      check.add([...path, 'redirect_uris', i], 'http redirect URIs are only allowed on loopback addresses');
    }
  });
  return {
    clientId: raw.client_id,
    name: raw.name ?? raw.client_id,
    redirectUris: [...raw.redirect_uris],
    authMethod: method,
    secretHash: raw.secret_sha256,
    spiffeId,
    grantTypes: [...new Set(raw.grant_types)],
  };
}

function normaliseMtls(raw: NonNullable<RawDelegation['mtls']>, check: Checker): MtlsListenerConfig {
  const path = ['delegation', 'mtls'];
  const parsed = parseListen(raw.listen);
  let listen = { host: '127.0.0.1', port: 0 };
  if (typeof parsed === 'string') check.add([...path, 'listen'], `${parsed} (got ${JSON.stringify(raw.listen)})`);
  else listen = parsed;
  const publicUrl = raw.public_url === undefined
    ? `https://${urlHost(listen.host)}:${listen.port}`
    : webUrl([...path, 'public_url'], raw.public_url, check, 'public_url').replace(/\/+$/, '');
  if (!publicUrl.startsWith('https:')) check.add([...path, 'public_url'], 'must be an https URL: the listener speaks TLS');
  return {
    listen,
    tls: { certFile: check.inputFile([...path, 'cert_file'], raw.cert_file), keyFile: check.inputFile([...path, 'key_file'], raw.key_file) },
    publicUrl,
  };
}

function normaliseResource(raw: RawDelegation['resources'][number], index: number, scopes: Record<string, string>, check: Checker): ResourceConfig {
  const path = ['delegation', 'resources', index];
  const url = parseUrl(raw.uri);
  if (url === undefined) check.add([...path, 'uri'], `must be an absolute URI (got ${JSON.stringify(raw.uri)})`);
  else if (raw.uri.includes('#')) check.add([...path, 'uri'], 'must not contain a fragment (RFC 8707 §2)');
  const resourceScopes = raw.scopes ?? Object.keys(scopes);
  resourceScopes.forEach((scope, i) => {
    if (!(scope in scopes)) check.add([...path, 'scopes', i], `unknown scope "${scope}": list it under delegation.scopes with a description`);
  });
  return { uri: raw.uri, name: raw.name ?? raw.uri, scopes: [...resourceScopes] };
}
