/**
 * The trust bundles a verifier knows, one per trust domain. Bundles are never merged: an SVID is
 * checked against the bundle of its own trust domain only (Federation §4.2, §7.3).
 */
import { MandateError } from '../../errors.ts';
import { parseTrustDomain, type SpiffeId } from '../spiffe-id/parse.ts';
import type { Bundle } from './bundle.ts';

/**
 * A map trust domain -> bundle. The key is the bundle's own recorded `trustDomain`, which the parser
 * takes from configuration, never from the document, so no document can place itself under another
 * trust domain's name.
 *
 * @example
 *   const bundles = new TrustBundleSet();
 *   bundles.set(parseSpiffeBundle(json, 'partner.example'));
 *   const b = bundles.forSpiffeId(parseSpiffeId('spiffe://partner.example/agent/x'));
 */
export class TrustBundleSet {
  readonly #bundles = new Map<string, Bundle>();

  /** Adds or replaces the bundle of `b.trustDomain`. @throws ERR_TRUST_DOMAIN_INVALID */
  set(b: Bundle): void {
    const name = parseTrustDomain(b.trustDomain);
    if (name !== b.trustDomain) {
      throw new MandateError('ERR_TRUST_DOMAIN_INVALID', `bundle trust domain ${JSON.stringify(b.trustDomain)} is not in canonical form ${JSON.stringify(name)}`);
    }
    this.#bundles.set(name, b);
  }

  get(trustDomain: string): Bundle | undefined {
    return this.#bundles.get(trustDomain);
  }

  /** Removes the bundle of `trustDomain` (ends trust in it); true if there was one. */
  delete(trustDomain: string): boolean {
    return this.#bundles.delete(trustDomain);
  }

  all(): Bundle[] {
    return [...this.#bundles.values()];
  }

  get size(): number {
    return this.#bundles.size;
  }

  /**
   * The bundle of the trust domain `id` belongs to.
   *
   * @throws MandateError ERR_BUNDLE_UNKNOWN_TRUST_DOMAIN when no bundle of that trust domain is known.
   */
  forSpiffeId(id: SpiffeId): Bundle {
    const bundle = this.#bundles.get(id.trustDomain);
    if (bundle === undefined) {
      throw new MandateError('ERR_BUNDLE_UNKNOWN_TRUST_DOMAIN', `no bundle for trust domain ${id.trustDomain} of ${id.toString()}`);
    }
    return bundle;
  }
}
