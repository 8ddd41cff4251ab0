import { createPublicKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { MandateError } from '../../errors.ts';
import type { SpiffeId } from '../spiffe-id/parse.ts';
import { parseCertificatesAndKey } from '../x509/pem.ts';
import { checkLeaf, checkSigningCertificate } from './constraints.ts';

/** An X.509-SVID as a workload holds it: leaf first, then intermediates, and its private key. */
export interface X509Svid {
  spiffeId: SpiffeId;
  chain: X509Certificate[];
  privateKey: KeyObject | null;
}

/**
 * Parses an X.509-SVID from PEM (certificates and optionally the key, in any order, possibly in
 * separate texts) and checks the SPIFFE constraints of the leaf and of every signing certificate
 * in the chain. It does not check validity times or signatures up to a trust anchor: that is
 * `verifyX509Svid`.
 *
 * @example const svid = parseX509Svid(fs.readFileSync('svid.pem', 'utf8'), fs.readFileSync('svid.key', 'utf8'));
 */
export function parseX509Svid(certsPem: string, keyPem?: string): X509Svid {
  const parsed = parseCertificatesAndKey(certsPem);
  let privateKey = parsed.privateKey;
  if (keyPem !== undefined) {
    const fromKey = parseCertificatesAndKey(keyPem);
    if (!fromKey.privateKey) throw new MandateError('ERR_KEY_INVALID', 'no private key in key PEM input');
    privateKey = fromKey.privateKey;
  }
  if (parsed.certificates.length === 0) throw new MandateError('ERR_PEM_INVALID', 'no certificate in PEM input');
  const chain = parsed.certificates;
  const spiffeId = checkLeaf(chain[0] as X509Certificate);
  chain.slice(1).forEach((cert, i) => checkSigningCertificate(cert, `chain certificate #${i + 2}`));
  if (privateKey) assertKeyMatches(chain[0] as X509Certificate, privateKey);
  return { spiffeId, chain, privateKey };
}

/** Throws ERR_KEY_MISMATCH unless the private key belongs to the certificate. */
export function assertKeyMatches(cert: X509Certificate, privateKey: KeyObject): void {
  const fromKey = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const fromCert = cert.publicKey.export({ type: 'spki', format: 'der' });
  if (!fromKey.equals(fromCert)) {
    throw new MandateError('ERR_KEY_MISMATCH', 'private key does not match the certificate public key');
  }
}
