import type { KeyObject, X509Certificate } from 'node:crypto';
import { MandateError } from '../../errors.ts';
import { parseCertificates, parseCertificatesAndKey } from '../x509/pem.ts';
import { checkSigningCertificate } from '../x509-svid/constraints.ts';
import { assertKeyMatches } from '../x509-svid/parse.ts';
import { webCryptoAlgorithms } from './key-algorithms.ts';

export interface ImportCaOptions {
  /** The CA certificate, optionally followed by the intermediates above it (PEM). */
  certPem: string;
  /** Its private key (PEM: PKCS#8, PKCS#1 or SEC1), e.g. cert-manager's `tls.key`. */
  keyPem: string;
  /** Trust anchors (PEM), required when the CA is an intermediate whose root is not in certPem. */
  bundlePem?: string;
  now?: Date;
}

export interface ImportedCa {
  certificate: X509Certificate;
  /** Certificates to send after a leaf: the CA and intermediates above it that are not trust anchors. */
  chain: X509Certificate[];
  trustAnchors: X509Certificate[];
  privateKey: KeyObject;
}

function selfSigned(cert: X509Certificate): boolean {
  return cert.checkIssued(cert) && cert.verify(cert.publicKey);
}

function invalid(message: string): never {
  throw new MandateError('ERR_CA_INVALID', `imported CA: ${message}`);
}

/**
 * Validates an existing CA (a root, or an intermediate such as cert-manager's CA Issuer secret or
 * Istio's `cacerts`) so Mandate can issue under it: key matches, CA flag and keyCertSign, valid
 * now, and a verified path from the CA certificate to a trust anchor.
 *
 * @example const ca = importCa({ certPem: read('tls.crt'), keyPem: read('tls.key'), bundlePem: read('ca.crt') });
 */
export function importCa(opts: ImportCaOptions): ImportedCa {
  const now = opts.now ?? new Date();
  const certs = parseCertificates(opts.certPem);
  const { privateKey } = parseCertificatesAndKey(opts.keyPem);
  if (!privateKey) invalid('no private key found in the key file');
  const ca = certs[0] as X509Certificate;
  webCryptoAlgorithms(privateKey); // throws for key types and sizes a CA must not sign with
  try {
    assertKeyMatches(ca, privateKey);
  } catch {
    invalid('the private key does not match the CA certificate');
  }
  try {
    checkSigningCertificate(ca, 'CA certificate');
  } catch (err) {
    invalid((err as Error).message);
  }
  for (const cert of certs) {
    if (now > new Date(cert.validTo)) invalid(`certificate ${cert.subject.replace(/\n/g, ', ')} expired at ${new Date(cert.validTo).toISOString()}`);
    if (now < new Date(cert.validFrom)) invalid(`certificate ${cert.subject.replace(/\n/g, ', ')} is not valid before ${new Date(cert.validFrom).toISOString()}`);
  }

  let trustAnchors: X509Certificate[];
  if (opts.bundlePem !== undefined) trustAnchors = parseCertificates(opts.bundlePem);
  else {
    const roots = certs.filter(selfSigned);
    if (roots.length === 0) invalid('the CA certificate is not self-signed and no trust bundle (its root) was given');
    trustAnchors = roots;
  }
  const anchorSet = new Set(trustAnchors.map((a) => a.fingerprint256));
  const chain = certs.filter((c) => !anchorSet.has(c.fingerprint256));

  // Walk from the CA certificate to an anchor, through the given intermediates.
  let current = ca;
  for (let hops = 0; ; hops++) {
    if (hops > 8) invalid('certificate chain is too long');
    if (anchorSet.has(current.fingerprint256)) break;
    const anchor = trustAnchors.find((a) => current.checkIssued(a) && current.verify(a.publicKey));
    if (anchor) break;
    const next = certs.find((c) => c !== current && current.checkIssued(c) && current.verify(c.publicKey));
    if (!next) invalid(`no path from ${current.subject.replace(/\n/g, ', ')} to a trust anchor`);
    checkSigningCertificate(next, `chain certificate ${next.subject.replace(/\n/g, ', ')}`);
    current = next;
  }
  return { certificate: ca, chain, trustAnchors, privateKey };
}
