import { randomBytes, type KeyObject, type X509Certificate } from 'node:crypto';
import { assertKeyMatches } from '../x509-svid/parse.ts';

/** A CA certificate ready to sign: certificate, chain to publish with leaves, anchors, key. */
export interface SigningCa {
  id: string;
  /** The CA certificate itself. */
  certificate: X509Certificate;
  /** Certificates sent after a leaf: the CA certificate and intermediates above it, unless they are trust anchors. */
  chain: X509Certificate[];
  /** Certificates published in the bundle for this CA (its root, or itself when self-signed). */
  trustAnchors: X509Certificate[];
  privateKey: KeyObject;
}

/** Assembles a SigningCa, refusing a key that does not belong to the certificate. */
export function signingCa(id: string, certificate: X509Certificate, chain: X509Certificate[], trustAnchors: X509Certificate[], privateKey: KeyObject): SigningCa {
  assertKeyMatches(certificate, privateKey);
  return { id, certificate, chain, trustAnchors, privateKey };
}

/** A positive 128-bit serial number as hex, as RFC 5280 §4.1.2.2 allows (at most 20 octets). */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f | 0x01;
  return bytes.toString('hex');
}
