/**
 * Where a Kubernetes cluster's service-account signing keys come from: a JWKS file, a JWKS URL, or
 * the issuer's OIDC discovery document (what the API server's service account issuer discovery
 * serves: `<issuer>/.well-known/openid-configuration` -> `jwks_uri`, usually `/openid/v1/jwks`).
 * Requests are client spans carrying the trace context.
 */
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors, type FetchImplementation, type JWTVerifyGetKey } from 'jose';
import { Agent, fetch as undiciFetch } from 'undici';
import { MandateError, messageOf } from '../../../errors.ts';
import { jwksCacheProbe } from '../../../observability/metrics.ts';
import { tracedFetch } from '../../../observability/tracing.ts';

/** One trusted cluster, as configured under `attestation.k8s.clusters`. */
export interface K8sClusterConfig {
  /** Becomes the `k8s:cluster:<name>` selector. */
  name: string;
  /** The API server's `--service-account-issuer`; tokens' `iss` must equal it. */
  issuer: string;
  /** The audience workloads request in their projected token; `aud` must contain it. */
  audience: string;
  jwksUrl?: string;
  jwksFile?: string;
  /** PEM CA bundle trusted (instead of the system roots) when fetching discovery and JWKS. */
  caFile?: string;
}

export interface ClusterKeysOptions {
  /** Minimum time between refetches triggered by an unknown `kid` (protects the API server). */
  cooldownMs: number;
  /** Timeout of each discovery or JWKS request. */
  timeoutMs: number;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Keys fetched over plain HTTP could be swapped in transit, so only loopback may skip TLS. */
function remoteUrl(cluster: K8sClusterConfig, value: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new MandateError('ERR_CONFIG_INVALID', `attestation.k8s cluster "${cluster.name}": ${what} "${value}" is not a URL`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) {
    throw new MandateError('ERR_CONFIG_INVALID', `attestation.k8s cluster "${cluster.name}": ${what} must be an https URL (http only on loopback)`);
  }
  return url;
}

function fetchFor(cluster: K8sClusterConfig): FetchImplementation {
  if (cluster.caFile === undefined) return tracedFetch(fetch);
  let ca: string;
  try {
    ca = readFileSync(cluster.caFile, 'utf8');
  } catch (err) {
    throw new MandateError('ERR_CONFIG_INVALID', `attestation.k8s cluster "${cluster.name}": cannot read caFile: ${messageOf(err)}`);
  }
  const dispatcher = new Agent({ connect: { ca } });
  // undici's own fetch (not Node's bundled one) so that the Agent from the same undici version applies.
  const withCa = (url: string, init: Parameters<FetchImplementation>[1]) =>
    undiciFetch(url, { method: init.method, redirect: init.redirect, signal: init.signal, headers: [...init.headers], dispatcher });
  // undici's Response type differs nominally from the DOM one jose declares; at runtime they agree.
  return tracedFetch(withCa) as unknown as FetchImplementation;
}

function localKeys(cluster: K8sClusterConfig, file: string): JWTVerifyGetKey {
  try {
    return createLocalJWKSet(JSON.parse(readFileSync(file, 'utf8')));
  } catch (err) {
    throw new MandateError('ERR_CONFIG_INVALID', `attestation.k8s cluster "${cluster.name}": jwksFile ${file} is not a JWKS: ${messageOf(err)}`);
  }
}

async function discoverJwksUri(cluster: K8sClusterConfig, doFetch: FetchImplementation, opts: ClusterKeysOptions): Promise<URL> {
  const discovery = remoteUrl(cluster, `${cluster.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, 'issuer');
  const response = await doFetch(discovery.href, {
    method: 'GET',
    headers: new Headers({ accept: 'application/json' }),
    redirect: 'manual',
    signal: AbortSignal.timeout(opts.timeoutMs),
  });
  if (response.status !== 200) throw new Error(`${discovery.href} answered HTTP ${response.status}`);
  const doc: unknown = await response.json();
  if (typeof doc !== 'object' || doc === null) throw new Error(`${discovery.href} is not a JSON object`);
  const { issuer, jwks_uri: jwksUri } = doc as Record<string, unknown>;
  // OpenID Connect Discovery 1.0 §4.3: the document must name the issuer it was fetched for.
  if (issuer !== cluster.issuer) throw new Error(`${discovery.href} names issuer ${JSON.stringify(issuer)}, expected ${cluster.issuer}`);
  if (typeof jwksUri !== 'string') throw new Error(`${discovery.href} has no jwks_uri`);
  return remoteUrl(cluster, jwksUri, 'discovered jwks_uri');
}

/** fetch() hides the reason (refused, TLS, DNS) in `cause`; operators need it. */
function describe(err: unknown): string {
  const cause = err instanceof Error ? err.cause : undefined;
  return cause === undefined ? messageOf(err) : `${messageOf(err)}: ${messageOf(cause)}`;
}

/** Errors that mean "the token names a key we do not have", as opposed to "we could not ask". */
function isKeySelectionError(err: unknown): boolean {
  return err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys || err instanceof errors.JOSENotSupported;
}

/**
 * A jose key resolver for one cluster. Remote keys are cached by jose and refetched when a token
 * names an unknown `kid` (key rotation). Discovery runs on first use and is retried on the next
 * attestation when it fails. A source that cannot be reached throws ERR_K8S_JWKS_UNAVAILABLE
 * (fail closed, but distinguishable from a bad token).
 *
 * @example
 *   const getKey = createClusterKeys({ name: 'prod', issuer: 'https://oidc.example', audience: 'mandate' },
 *     { cooldownMs: 30_000, timeoutMs: 5_000 });
 *   await jwtVerify(token, getKey, { algorithms: ['RS256', 'ES256'] });
 */
export function createClusterKeys(cluster: K8sClusterConfig, opts: ClusterKeysOptions): JWTVerifyGetKey {
  if (cluster.jwksFile !== undefined && cluster.jwksUrl !== undefined) {
    throw new MandateError('ERR_CONFIG_INVALID', `attestation.k8s cluster "${cluster.name}": set jwksFile or jwksUrl, not both`);
  }
  if (cluster.jwksFile !== undefined) return localKeys(cluster, cluster.jwksFile);

  const doFetch = fetchFor(cluster);
  const probe = jwksCacheProbe(doFetch);
  const remoteOptions = { cooldownDuration: opts.cooldownMs, timeoutDuration: opts.timeoutMs, [customFetch]: probe.fetch };
  const fixedUrl = cluster.jwksUrl === undefined ? undefined : remoteUrl(cluster, cluster.jwksUrl, 'jwksUrl');
  if (fixedUrl === undefined) remoteUrl(cluster, cluster.issuer, 'issuer'); // fail at start-up, not on first token
  let remote: Promise<JWTVerifyGetKey> | undefined =
    fixedUrl === undefined ? undefined : Promise.resolve(createRemoteJWKSet(fixedUrl, remoteOptions));

  return async (header, token) => {
    remote ??= discoverJwksUri(cluster, doFetch, opts).then((url) => createRemoteJWKSet(url, remoteOptions));
    const pending = remote;
    try {
      const getKey = await pending.catch((err: unknown) => {
        if (remote === pending) remote = undefined;
        throw err;
      });
      return await probe.lookup(async () => getKey(header, token));
    } catch (err) {
      if (isKeySelectionError(err)) throw err;
      throw new MandateError('ERR_K8S_JWKS_UNAVAILABLE', `cannot fetch the signing keys of cluster "${cluster.name}": ${describe(err)}`, { cause: err });
    }
  };
}
