/** Test PKI: a real root CA and workload keys, built with the same code Mandate runs. */
import { KeyObject } from 'node:crypto';
import { signingCa, type SigningCa } from '../../src/identity/ca/authority-key.ts';
import { generateRootCa } from '../../src/identity/ca/generate.ts';
import { subtle, x509 } from '../../src/identity/x509/crypto.ts';

export async function testCa(trustDomain = 'example.org', opts: { ttlSeconds?: number; now?: Date } = {}): Promise<SigningCa> {
  const { certificate, privateKey } = await generateRootCa({ trustDomain, keyType: 'ec-p256', ttlSeconds: opts.ttlSeconds ?? 86400, now: opts.now });
  return signingCa('test-ca', certificate, [], [certificate], privateKey);
}

export async function keyAndCsr(type: 'ec' | 'rsa' = 'ec', bits = 2048): Promise<{ privateKey: KeyObject; csrPem: string }> {
  const alg = type === 'ec'
    ? { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
    : { name: 'RSASSA-PKCS1-v1_5', modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
  const keys = (await subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'O=SPIFFE', keys, signingAlgorithm: alg });
  return { privateKey: KeyObject.from(keys.privateKey), csrPem: csr.toString('pem') };
}
