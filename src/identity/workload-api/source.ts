/**
 * What the Workload API serves, kept apart from how it is obtained: the `mandate agent` process
 * implements SvidSource by attesting to the Mandate server, tests implement it from a local CA.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import type { TrustBundleSet } from '../bundle/set.ts';

/**
 * The identity the endpoint hands to workloads at one point in time.
 *
 * @example
 *   const id: WorkloadIdentity = { spiffeId: 'spiffe://example.org/agent/bot', chain, privateKey, bundles, trustDomain: 'example.org' };
 */
export interface WorkloadIdentity {
  spiffeId: string;
  /** X.509-SVID leaf first, then intermediates. */
  chain: X509Certificate[];
  privateKey: KeyObject;
  /** Own trust domain's bundle plus federated bundles. */
  bundles: TrustBundleSet;
  /** Own trust domain name, e.g. `example.org`. */
  trustDomain: string;
}

/**
 * A source of the current identity and of JWT-SVIDs.
 *
 * @example
 *   const unsubscribe = source.onUpdate((id) => stream.write(x509SvidResponse(id)));
 */
export interface SvidSource {
  /** The current identity, or null when there is none (not yet attested, or expired unrenewed). */
  current(): WorkloadIdentity | null;
  /** Called with the full identity after every rotation or bundle change; returns unsubscribe. */
  onUpdate(listener: (id: WorkloadIdentity) => void): () => void;
  /** A JWT-SVID of the current identity for these audiences. */
  fetchJwtSvid(audience: string[]): Promise<{ spiffeId: string; token: string }>;
}
