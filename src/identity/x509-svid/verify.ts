import type { X509Certificate } from 'node:crypto';
import { MandateError } from '../../errors.ts';
import type { TrustBundleSet } from '../bundle/set.ts';
import type { SpiffeId } from '../spiffe-id/parse.ts';
import { certificateFacts, checkLeaf, checkSigningCertificate } from './constraints.ts';

const MAX_CHAIN = 10;

export interface VerifyX509SvidOptions {
  /** Time at which validity is checked; defaults to now. */
  now?: Date;
}

export interface VerifiedX509Svid {
  spiffeId: SpiffeId;
  /** Leaf, intermediates used, and the trust anchor, in that order. */
  verifiedChain: X509Certificate[];
}

function chainError(message: string): never {
  throw new MandateError('ERR_X509_CHAIN_INVALID', message);
}

function assertValidAt(cert: X509Certificate, now: Date, position: string): void {
  if (now < new Date(cert.validFrom)) chainError(`${position} is not valid before ${new Date(cert.validFrom).toISOString()}`);
  if (now > new Date(cert.validTo)) chainError(`${position} expired at ${new Date(cert.validTo).toISOString()}`);
}

function issued(issuer: X509Certificate, subject: X509Certificate): boolean {
  return subject.checkIssued(issuer) && subject.verify(issuer.publicKey);
}

/**
 * Verifies an X.509-SVID chain (leaf first) against the bundle of the leaf's own trust domain
 * (X509-SVID §5): SPIFFE leaf rules, RFC 5280 path building with signatures, validity times,
 * CA flags, keyCertSign and pathLenConstraint on every signing certificate.
 *
 * @example const { spiffeId } = verifyX509Svid(tlsSocket.getPeerCertificate... , bundles);
 */
export function verifyX509Svid(chain: readonly X509Certificate[], bundles: TrustBundleSet, opts: VerifyX509SvidOptions = {}): VerifiedX509Svid {
  if (chain.length === 0) chainError('no certificate presented');
  if (chain.length > MAX_CHAIN) chainError(`chain of ${chain.length} certificates exceeds the limit of ${MAX_CHAIN}`);
  const now = opts.now ?? new Date();
  const leaf = chain[0] as X509Certificate;
  const spiffeId = checkLeaf(leaf);
  const bundle = bundles.forSpiffeId(spiffeId);
  if (bundle.x509Authorities.length === 0) {
    throw new MandateError('ERR_X509_CHAIN_INVALID', `bundle of trust domain ${spiffeId.trustDomain} has no X.509 authorities`);
  }

  const verifiedChain: X509Certificate[] = [leaf];
  const unused = chain.slice(1);
  let current = leaf;
  assertValidAt(leaf, now, 'leaf certificate');
  for (let depth = 0; depth < MAX_CHAIN; depth++) {
    const anchor = bundle.x509Authorities.find((a) => issued(a, current));
    if (anchor) {
      const position = `trust anchor ${anchor.subject.replace(/\n/g, ', ')}`;
      assertValidAt(anchor, now, position);
      const { pathLength } = certificateFacts(anchor);
      if (pathLength !== undefined && verifiedChain.length - 1 > pathLength) {
        chainError(`${position} allows ${pathLength} intermediates below it, found ${verifiedChain.length - 1}`);
      }
      verifiedChain.push(anchor);
      return { spiffeId, verifiedChain };
    }
    const index = unused.findIndex((c) => issued(c, current));
    if (index < 0) {
      chainError(`certificate chain of ${spiffeId} does not lead to a trust anchor of trust domain ${spiffeId.trustDomain}`);
    }
    const signer = unused.splice(index, 1)[0] as X509Certificate;
    const position = `intermediate certificate ${signer.subject.replace(/\n/g, ', ')}`;
    checkSigningCertificate(signer, position);
    assertValidAt(signer, now, position);
    const { pathLength } = certificateFacts(signer);
    const intermediatesBelow = verifiedChain.length - 1;
    if (pathLength !== undefined && intermediatesBelow > pathLength) {
      chainError(`${position} allows ${pathLength} intermediates below it, found ${intermediatesBelow}`);
    }
    verifiedChain.push(signer);
    current = signer;
  }
  return chainError(`certificate chain exceeds ${MAX_CHAIN} certificates`);
}
