import { randomBytes, type KeyObject, type X509Certificate } from 'node:crypto';
import { x509 } from '../x509/crypto.ts';
import { toCryptoKeys } from './key-algorithms.ts';

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
  /** The CA's subject as leaves name their issuer (byte-exact, as RFC 5280 name chaining wants). */
  issuerName: x509.Name;
  webCrypto: { privateKey: CryptoKey; publicKey: CryptoKey; signAlg: Algorithm };
}

export async function signingCa(id: string, certificate: X509Certificate, chain: X509Certificate[], trustAnchors: X509Certificate[], privateKey: KeyObject): Promise<SigningCa> {
  const issuerName = new x509.X509Certificate(certificate.raw).subjectName;
  return { id, certificate, chain, trustAnchors, privateKey, issuerName, webCrypto: await toCryptoKeys(privateKey) };
}

/** A positive 128-bit serial number as hex, as RFC 5280 §4.1.2.2 allows (at most 20 octets). */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f | 0x01;
  return bytes.toString('hex');
}
