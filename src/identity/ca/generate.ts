import { X509Certificate, type KeyObject } from 'node:crypto';
import { x509 } from '../x509/crypto.ts';
import { generateKeyPair, toCryptoKeys, type CaKeyType } from './key-algorithms.ts';
import { randomSerial } from './authority-key.ts';

export interface GenerateRootCaOptions {
  trustDomain: string;
  keyType: CaKeyType;
  ttlSeconds: number;
  commonName?: string;
  now?: Date;
}

/**
 * Generates a self-signed root CA for a trust domain: its SPIFFE ID (`spiffe://<trust domain>`,
 * no path) as URI SAN, CA flag, keyCertSign and cRLSign only (X509-SVID §3.2, §4).
 *
 * @example const { certificate, privateKey } = await generateRootCa({ trustDomain: 'example.org', keyType: 'ec-p256', ttlSeconds: 31536000 });
 */
export async function generateRootCa(opts: GenerateRootCaOptions): Promise<{ certificate: X509Certificate; privateKey: KeyObject }> {
  const now = opts.now ?? new Date();
  const { privateKey } = generateKeyPair(opts.keyType);
  const keys = await toCryptoKeys(privateKey);
  const name = `CN=${opts.commonName ?? 'Mandate CA'}, O=${opts.trustDomain}, OU=${randomSerial().slice(0, 16)}`;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: name,
    issuer: name,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + opts.ttlSeconds * 1000),
    signingAlgorithm: keys.signAlg,
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${opts.trustDomain}` }]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certificate: new X509Certificate(Buffer.from(cert.rawData)), privateKey };
}
