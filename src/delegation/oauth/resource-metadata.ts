/**
 * RFC 9728 protected-resource metadata for the resources behind the gateway: the document each
 * resource serves, where it is served, and the `WWW-Authenticate` challenge that points clients at it
 * (MCP authorization: servers answer 401 with `resource_metadata`).
 *
 * @example
 *   const doc = protectedResourceMetadata({ resource: 'https://gw.example/mcp/issues', issuer, scopes: ['issues:read'] });
 *   metadataUrl('https://gw.example/mcp/issues')  // 'https://gw.example/.well-known/oauth-protected-resource/mcp/issues'
 *   unauthorizedChallenge(metadataUrl(resource))  // 'Bearer resource_metadata="...", DPoP resource_metadata="...", algs="ES256 ..."'
 */

export interface ProtectedResourceInput {
  /** The resource identifier (RFC 8707): the URL agents call, as mandates name it. */
  resource: string;
  /** The authorization server(s) issuing tokens for it: our issuer. */
  issuer: string | string[];
  /** Scopes the resource understands. */
  scopes: readonly string[];
  name?: string;
  /** DPoP algorithms accepted; default ES256, ES384, EdDSA, PS256, RS256. */
  dpopAlgorithms?: readonly string[];
  /** The resource accepts certificate-bound tokens over mutual TLS. */
  mtls?: boolean;
  documentation?: string;
}

const DEFAULT_DPOP_ALGS = ['ES256', 'ES384', 'EdDSA', 'PS256', 'RS256'];

/** The metadata document (RFC 9728 §2). */
export function protectedResourceMetadata(r: ProtectedResourceInput): Record<string, unknown> {
  const url = new URL(r.resource);
  if (url.hash !== '') throw new TypeError(`resource ${r.resource} must not contain a fragment (RFC 9728 §1.2)`);
  return {
    resource: r.resource,
    authorization_servers: Array.isArray(r.issuer) ? [...r.issuer] : [r.issuer],
    scopes_supported: [...r.scopes],
    bearer_methods_supported: ['header'],
    dpop_signing_alg_values_supported: [...(r.dpopAlgorithms ?? DEFAULT_DPOP_ALGS)],
    dpop_bound_access_tokens_required: !r.mtls,
    tls_client_certificate_bound_access_tokens: r.mtls === true,
    ...(r.name !== undefined && { resource_name: r.name }),
    ...(r.documentation !== undefined && { resource_documentation: r.documentation }),
  };
}

/**
 * Where the document is served (RFC 9728 §3.1): the well-known suffix goes between the origin and
 * the resource's path, e.g. `/.well-known/oauth-protected-resource/mcp/issues`.
 */
export function metadataUrl(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '');
  return `${url.origin}/.well-known/oauth-protected-resource${path}${url.search}`;
}

function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * The 401 challenge for a request without a usable token (RFC 9728 §5.1, RFC 9449 §7.1), or the
 * 403 `insufficient_scope` challenge naming the scope needed (RFC 6750 §3.1).
 */
export function unauthorizedChallenge(resourceMetadataUrl: string, opts: { error?: 'invalid_token' | 'insufficient_scope'; description?: string; scope?: string[]; dpopAlgorithms?: readonly string[] } = {}): string {
  const params = [`resource_metadata=${quoted(resourceMetadataUrl)}`];
  if (opts.error) params.push(`error=${quoted(opts.error)}`);
  if (opts.description) params.push(`error_description=${quoted(opts.description)}`);
  if (opts.scope?.length) params.push(`scope=${quoted(opts.scope.join(' '))}`);
  const algs = `algs=${quoted((opts.dpopAlgorithms ?? DEFAULT_DPOP_ALGS).join(' '))}`;
  return `DPoP ${[...params, algs].join(', ')}, Bearer ${params.join(', ')}`;
}
