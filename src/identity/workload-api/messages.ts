/**
 * Workload API response messages built from a WorkloadIdentity. Every message is complete (Workload
 * API §4.3): a client drops whatever a later message leaves out (§4.4).
 *
 * Bundle maps are keyed by the SPIFFE ID of the trust domain (`spiffe://example.org`), as the comments
 * in workloadapi.proto say and as SPIRE and go-spiffe do.
 */
import type { Bundle } from '../bundle/bundle.ts';
import { toJwksJson, x509AuthoritiesDer } from '../bundle/serialize.ts';
import { MandateError } from '../../errors.ts';
import type { WorkloadIdentity } from './source.ts';

export interface X509SvidMessage {
  spiffe_id: string;
  x509_svid: Buffer;
  x509_svid_key: Buffer;
  bundle: Buffer;
  hint: string;
}

export interface X509SvidResponseMessage {
  svids: X509SvidMessage[];
  crl: Buffer[];
  federated_bundles: Record<string, Buffer>;
}

export interface BundlesMessage<T> {
  bundles: Record<string, T>;
}

/**
 * The map key for a trust domain's bundle: its SPIFFE ID.
 *
 * @example trustDomainKey('example.org') // 'spiffe://example.org'
 */
export function trustDomainKey(trustDomain: string): string {
  return `spiffe://${trustDomain}`;
}

function ownBundle(id: WorkloadIdentity): Bundle {
  const bundle = id.bundles.get(id.trustDomain);
  if (!bundle) throw new MandateError('ERR_BUNDLE_UNKNOWN_TRUST_DOMAIN', `no bundle for the agent's own trust domain ${id.trustDomain}`);
  return bundle;
}

/**
 * FetchX509SVID response: the one SVID (chain DER, PKCS#8 key DER, own bundle DER) and the
 * federated bundles.
 *
 * @example stream.write(x509SvidResponse(source.current()!));
 */
export function x509SvidResponse(id: WorkloadIdentity): X509SvidResponseMessage {
  const federated: Record<string, Buffer> = {};
  for (const b of id.bundles.all()) {
    if (b.trustDomain !== id.trustDomain) federated[trustDomainKey(b.trustDomain)] = x509AuthoritiesDer(b);
  }
  return {
    svids: [{
      spiffe_id: id.spiffeId,
      x509_svid: Buffer.concat(id.chain.map((c) => c.raw)),
      x509_svid_key: id.privateKey.export({ type: 'pkcs8', format: 'der' }),
      bundle: x509AuthoritiesDer(ownBundle(id)),
      hint: '',
    }],
    crl: [],
    federated_bundles: federated,
  };
}

/**
 * FetchX509Bundles response: DER CA certificates of the own and every federated trust domain.
 *
 * @example x509BundlesResponse(id).bundles['spiffe://example.org'] // Buffer of DER certificates
 */
export function x509BundlesResponse(id: WorkloadIdentity): BundlesMessage<Buffer> {
  ownBundle(id);
  const bundles: Record<string, Buffer> = {};
  for (const b of id.bundles.all()) bundles[trustDomainKey(b.trustDomain)] = x509AuthoritiesDer(b);
  return { bundles };
}

/**
 * FetchJWTBundles response: a JWKS of JWT-SVID keys only, per trust domain (Workload API §6.2.2).
 *
 * @example JSON.parse(jwtBundlesResponse(id).bundles['spiffe://example.org'].toString()).keys
 */
export function jwtBundlesResponse(id: WorkloadIdentity): BundlesMessage<Buffer> {
  ownBundle(id);
  const bundles: Record<string, Buffer> = {};
  for (const b of id.bundles.all()) bundles[trustDomainKey(b.trustDomain)] = Buffer.from(JSON.stringify(toJwksJson(b)), 'utf8');
  return { bundles };
}
