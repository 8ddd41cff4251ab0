/**
 * The `k8s_psat` attestor: a workload proves its Kubernetes identity with a projected service-account
 * token (a JWT the API server signs for one audience and a short lifetime), verified offline against
 * the cluster's published signing keys.
 */
import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { MandateError, isMandateError, messageOf } from '../../../errors.ts';
import type { AttestationRequest, AttestationResult, Attestor } from '../attestor.ts';
import { optionalString, requireString } from '../fields.ts';
import { createClusterKeys, type K8sClusterConfig } from './cluster-keys.ts';
import { readServiceAccountClaims, type ServiceAccountClaims } from './claims.ts';

export type { K8sClusterConfig } from './cluster-keys.ts';

const MAX_TOKEN_LENGTH = 16 * 1024;
const CLOCK_TOLERANCE_SECONDS = 30;
/** What kube-apiserver signs with; anything else (none, HS*, PS*) is not a service-account token. */
const ALGORITHMS = ['RS256', 'ES256'];
/** The issuer of pre-1.22-style tokens stored in Secrets: they never expire and are not audience-bound. */
const LEGACY_ISSUER = 'kubernetes/serviceaccount';
const CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export interface K8sPsatOptions {
  /** Minimum time between JWKS refetches triggered by an unknown `kid`. Default 30 s. */
  jwksCooldownMs?: number;
  /** Timeout of each discovery or JWKS request. Default 5 s. */
  jwksTimeoutMs?: number;
}

interface Cluster {
  config: K8sClusterConfig;
  keys: JWTVerifyGetKey;
}

function invalid(message: string): MandateError {
  return new MandateError('ERR_K8S_TOKEN_INVALID', message);
}

function validateClusters(clusters: K8sClusterConfig[]): void {
  const names = new Set<string>();
  for (const c of clusters) {
    if (typeof c.name !== 'string' || !CLUSTER_NAME.test(c.name)) {
      throw new MandateError('ERR_CONFIG_INVALID', `attestation.k8s cluster name ${JSON.stringify(c.name)} must match ${CLUSTER_NAME.source}`);
    }
    if (names.has(c.name)) throw new MandateError('ERR_CONFIG_INVALID', `attestation.k8s cluster "${c.name}" is configured twice`);
    names.add(c.name);
    for (const field of ['issuer', 'audience'] as const) {
      if (typeof c[field] !== 'string' || c[field].length === 0) {
        throw new MandateError('ERR_CONFIG_INVALID', `attestation.k8s cluster "${c.name}": ${field} must be a non-empty string`);
      }
    }
  }
}

/** Reads claims without trusting them, only to refuse legacy tokens early and to pick the cluster. */
function peekClaims(token: string): JWTPayload {
  try {
    return decodeJwt(token);
  } catch (err) {
    throw invalid(`token is not a JWT: ${messageOf(err)}`);
  }
}

function refuseLegacy(claims: JWTPayload): void {
  if (claims.iss === LEGACY_ISSUER) {
    throw invalid(
      'legacy secret-based service account token (iss "kubernetes/serviceaccount") is refused: mount a projected ' +
        'service account token (serviceAccountToken volume) with the audience configured for this cluster',
    );
  }
  if (claims.exp === undefined) {
    throw invalid('token has no "exp" claim: only projected, expiring service account tokens are accepted');
  }
}

function selectCluster(clusters: Cluster[], requested: string | undefined, iss: unknown): Cluster {
  if (requested !== undefined) {
    const named = clusters.find((c) => c.config.name === requested);
    if (named === undefined) throw invalid(`cluster "${requested}" is not configured on this server`);
    return named;
  }
  const byIssuer = clusters.filter((c) => c.config.issuer === iss);
  if (byIssuer.length === 1) return byIssuer[0]!;
  if (byIssuer.length === 0) {
    throw invalid(`token issuer ${JSON.stringify(typeof iss === 'string' ? iss.slice(0, 256) : iss ?? null)} is not the issuer of any configured cluster`);
  }
  // Clusters left on the default issuer (https://kubernetes.default.svc...) share it; keys differ.
  throw invalid(`token issuer "${String(iss)}" is shared by clusters ${byIssuer.map((c) => c.config.name).join(', ')}: name one in field "cluster"`);
}

/** Turns jose's rejection into one precise, token-free message. */
function explain(err: unknown, token: string, cluster: K8sClusterConfig): MandateError {
  if (isMandateError(err)) return err;
  const where = `cluster "${cluster.name}"`;
  if (err instanceof errors.JWTExpired) return invalid(`token expired (exp ${String(err.payload.exp)}, tolerance ${CLOCK_TOLERANCE_SECONDS}s)`);
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'iss':
        return invalid(`token issuer ${JSON.stringify(err.payload.iss ?? null)} is not the issuer of ${where} (${cluster.issuer})`);
      case 'aud':
        return invalid(`token audience does not include "${cluster.audience}" (${where})`);
      case 'nbf':
        return invalid(`token is not valid yet (nbf ${String(err.payload.nbf)}, tolerance ${CLOCK_TOLERANCE_SECONDS}s)`);
      default:
        return invalid(`token claim "${err.claim}" is invalid: ${err.reason === 'missing' ? 'missing' : err.message}`);
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed) {
    let alg = 'unknown';
    try {
      alg = String(decodeProtectedHeader(token).alg);
    } catch {
      // the message below still names the rule
    }
    return invalid(`token algorithm "${alg}" is not allowed (only ${ALGORITHMS.join(', ')})`);
  }
  if (err instanceof errors.JWKSNoMatchingKey) {
    let kid = 'none';
    try {
      kid = String(decodeProtectedHeader(token).kid ?? 'none');
    } catch {
      // the message below still names the rule
    }
    return invalid(`no signing key of ${where} matches the token (kid "${kid}")`);
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return invalid(`token signature does not verify with the keys of ${where}`);
  return invalid(`token rejected: ${messageOf(err)}`);
}

function selectorsOf(cluster: string, sa: ServiceAccountClaims): string[] {
  const selectors = [
    `k8s:cluster:${cluster}`,
    `k8s:ns:${sa.namespace}`,
    `k8s:sa:${sa.serviceAccount}`,
    `k8s:ns-sa:${sa.namespace}:${sa.serviceAccount}`,
  ];
  if (sa.pod !== undefined) selectors.push(`k8s:pod-name:${sa.pod.name}`, `k8s:pod-uid:${sa.pod.uid}`);
  return selectors;
}

/**
 * Creates the k8s_psat attestor over the configured clusters. Request:
 * `{ type: 'k8s_psat', token: string, cluster?: string }`; without `cluster`, the cluster is the one
 * whose issuer equals the token's `iss`.
 *
 * @example
 *   const attestor = createK8sPsatAttestor([{ name: 'prod', issuer: 'https://oidc.prod.example', audience: 'mandate' }]);
 *   await attestor.attest({ type: 'k8s_psat', token: projectedToken }, new Date());
 *   // -> selectors ['k8s:cluster:prod', 'k8s:ns:payments', 'k8s:sa:triage-bot', 'k8s:ns-sa:payments:triage-bot',
 *   //               'k8s:pod-name:triage-7d9f', 'k8s:pod-uid:…'], entryIds []
 */
export function createK8sPsatAttestor(clusterConfigs: K8sClusterConfig[], opts: K8sPsatOptions = {}): Attestor {
  validateClusters(clusterConfigs);
  const keyOptions = { cooldownMs: opts.jwksCooldownMs ?? 30_000, timeoutMs: opts.jwksTimeoutMs ?? 5_000 };
  const clusters: Cluster[] = clusterConfigs.map((config) => ({ config, keys: createClusterKeys(config, keyOptions) }));

  return {
    type: 'k8s_psat',
    async attest(req: AttestationRequest, now: Date): Promise<AttestationResult> {
      const token = requireString(req, 'token', { maxLength: MAX_TOKEN_LENGTH });
      const requested = optionalString(req, 'cluster', { maxLength: 63 });
      const unverified = peekClaims(token);
      refuseLegacy(unverified);
      const cluster = selectCluster(clusters, requested, unverified.iss);
      const { name, issuer, audience } = cluster.config;

      let claims: JWTPayload;
      try {
        ({ payload: claims } = await jwtVerify(token, cluster.keys, {
          algorithms: ALGORITHMS,
          issuer,
          audience,
          currentDate: now,
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          requiredClaims: ['exp', 'iat', 'sub'],
        }));
      } catch (err) {
        throw explain(err, token, cluster.config);
      }
      // jose checks iat only against a maximum age; a token from the future means a bad clock or a forgery.
      if (claims.iat! > now.getTime() / 1000 + CLOCK_TOLERANCE_SECONDS) {
        throw invalid(`token "iat" ${claims.iat} is in the future (tolerance ${CLOCK_TOLERANCE_SECONDS}s)`);
      }
      const sa = readServiceAccountClaims(claims);
      const subject = `k8s_psat:${name}:${sa.namespace}:${sa.serviceAccount}${sa.pod === undefined ? '' : `:${sa.pod.name}`}`;
      return { attestor: 'k8s_psat', selectors: selectorsOf(name, sa), entryIds: [], subject };
    },
  };
}
