/**
 * The in-memory SPIFFE bundle: the trust anchors of exactly one trust domain.
 *
 * A bundle document does not name its trust domain (SPIFFE Trust Domain and Bundle §3), so the name
 * is recorded beside the keys when the document is parsed and never inferred from its content.
 */
import type { X509Certificate } from 'node:crypto';
import type { JWK } from 'jose';

/**
 * Trust anchors of one trust domain.
 *
 * Verifiers cache the imported key per JWK object in `jwtAuthorities`, so prefer replacing a JWK (or
 * the whole bundle) to editing one in place; parsed bundles hold frozen JWKs.
 *
 * @example
 *   const bundle: Bundle = { trustDomain: 'example.org', x509Authorities: [caCert], jwtAuthorities: new Map() };
 */
export interface Bundle {
  trustDomain: string;
  /** CA certificates that X.509-SVIDs of this trust domain chain up to. */
  x509Authorities: X509Certificate[];
  /** kid -> public JWK with `use: 'jwt-svid'`, the keys JWT-SVIDs of this trust domain are signed with. */
  jwtAuthorities: Map<string, JWK>;
  /** `spiffe_sequence`: increases whenever the publisher changes the bundle. */
  sequence?: number;
  /** `spiffe_refresh_hint`, seconds: how often a consumer should check for a new bundle. */
  refreshHint?: number;
}

/**
 * A bundle without authorities. Every SVID of its trust domain is untrusted until keys are added.
 *
 * @example const b = emptyBundle('example.org'); b.x509Authorities.push(caCert);
 */
export function emptyBundle(trustDomain: string): Bundle {
  return { trustDomain, x509Authorities: [], jwtAuthorities: new Map() };
}
