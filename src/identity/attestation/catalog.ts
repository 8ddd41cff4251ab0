/**
 * The one place attestors are wired: configuration in, a map of the enabled attestors out, and the
 * dispatch of an untrusted request to the attestor its `type` names.
 */
import { MandateError } from '../../errors.ts';
import type { Store } from '../../store/store.ts';
import type { AttestationRequest, AttestationResult, Attestor } from './attestor.ts';
import { createJoinTokenAttestor } from './join-token/join-token.ts';
import { createK8sPsatAttestor, type K8sClusterConfig, type K8sPsatOptions } from './k8s/k8s-psat.ts';
import { createStaticAttestor, staticDisabledError, type StaticAttestorConfig } from './static/static.ts';

/** `attestation` section of the server configuration. */
export interface AttestationConfig {
  joinToken: { enabled: boolean };
  k8s: { clusters: K8sClusterConfig[] };
  static: StaticAttestorConfig;
}

export interface AttestationDeps {
  store: Store;
  /** Tuning of the k8s_psat attestor's JWKS fetching; defaults suit production. */
  k8s?: K8sPsatOptions;
}

/**
 * Builds the enabled attestors, keyed by attestation type. k8s_psat is enabled by configuring at
 * least one cluster. Throws ERR_CONFIG_INVALID for an unusable cluster configuration.
 *
 * @example
 *   const attestors = buildAttestors(
 *     { joinToken: { enabled: true }, k8s: { clusters: [] }, static: { enabled: false, allowedSelectors: [] } },
 *     { store });
 *   attestors.has('join_token'); // true
 */
export function buildAttestors(cfg: AttestationConfig, deps: AttestationDeps): Map<string, Attestor> {
  const attestors = new Map<string, Attestor>();
  const add = (attestor: Attestor) => attestors.set(attestor.type, attestor);
  if (cfg.joinToken.enabled) add(createJoinTokenAttestor(deps.store));
  if (cfg.k8s.clusters.length > 0) add(createK8sPsatAttestor(cfg.k8s.clusters, deps.k8s));
  if (cfg.static.enabled) add(createStaticAttestor(cfg.static));
  return attestors;
}

/**
 * Validates the shape of an untrusted attestation request and hands it to the attestor of its type.
 *
 * @example
 *   const result = await attest(attestors, JSON.parse(body), new Date());
 *   const entries = matchEntries(await store.listEntries(), result);
 */
export async function attest(attestors: Map<string, Attestor>, req: unknown, now: Date): Promise<AttestationResult> {
  if (typeof req !== 'object' || req === null || Array.isArray(req)) {
    throw new MandateError('ERR_BAD_REQUEST', 'attestation request must be a JSON object');
  }
  const { type } = req as Record<string, unknown>;
  if (typeof type !== 'string') {
    throw new MandateError('ERR_BAD_REQUEST', 'attestation request field "type" must be a string');
  }
  const attestor = attestors.get(type);
  if (attestor === undefined) {
    if (type === 'static') throw staticDisabledError();
    const shown = type.length > 64 ? `${type.slice(0, 64)}…` : type;
    throw new MandateError('ERR_ATTESTOR_DISABLED', `attestation type ${JSON.stringify(shown)} is not enabled on this server`);
  }
  return attestor.attest(req as AttestationRequest, now);
}
