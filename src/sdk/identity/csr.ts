/**
 * The workload's key pair and its PKCS#10 request. The private key is generated here and never leaves
 * the workload: the server only sees the CSR, which proves possession by its signature.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { MandateError } from '../../errors.ts';
import { subtle, x509 } from '../../identity/x509/crypto.ts';

/** Key types a workload may hold for its X.509-SVID. */
export type WorkloadKeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-3072' | 'ed25519';

export const WORKLOAD_KEY_TYPES: readonly WorkloadKeyType[] = ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'ed25519'];

interface Algorithms {
  importAlg: AlgorithmIdentifier | EcKeyImportParams | RsaHashedImportParams;
  signAlg: Algorithm | EcdsaParams | RsaHashedImportParams;
}

function generate(keyType: WorkloadKeyType): { privateKey: KeyObject; algorithms: Algorithms } {
  switch (keyType) {
    case 'ec-p256':
      return { privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, algorithms: { importAlg: { name: 'ECDSA', namedCurve: 'P-256' }, signAlg: { name: 'ECDSA', hash: 'SHA-256' } } };
    case 'ec-p384':
      return { privateKey: generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, algorithms: { importAlg: { name: 'ECDSA', namedCurve: 'P-384' }, signAlg: { name: 'ECDSA', hash: 'SHA-384' } } };
    case 'rsa-2048':
    case 'rsa-3072': {
      const modulusLength = keyType === 'rsa-2048' ? 2048 : 3072;
      const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
      return { privateKey: generateKeyPairSync('rsa', { modulusLength }).privateKey, algorithms: { importAlg: alg, signAlg: alg } };
    }
    case 'ed25519':
      return { privateKey: generateKeyPairSync('ed25519').privateKey, algorithms: { importAlg: { name: 'Ed25519' }, signAlg: { name: 'Ed25519' } } };
    default:
      throw new MandateError('ERR_KEY_INVALID', `key type ${JSON.stringify(keyType)} is not supported: use one of ${WORKLOAD_KEY_TYPES.join(', ')}`);
  }
}

/**
 * Generates a fresh key pair and a CSR for it with subject `O=SPIFFE`. The CSR carries no SPIFFE ID:
 * the server takes the ID from the registration entry, never from the request.
 *
 * @example
 *   const { privateKey, csrPem } = await generateKeyAndCsr('ec-p256');
 *   const svid = await client.attest({ type: 'join_token', token }, csrPem);
 */
export async function generateKeyAndCsr(keyType: WorkloadKeyType = 'ec-p256'): Promise<{ privateKey: KeyObject; csrPem: string }> {
  const { privateKey, algorithms } = generate(keyType);
  // Imported non-extractable: this WebCrypto copy exists only to sign the CSR.
  const keys = {
    privateKey: await subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), algorithms.importAlg, false, ['sign']),
    publicKey: await subtle.importKey('spki', createPublicKey(privateKey).export({ type: 'spki', format: 'der' }), algorithms.importAlg, true, ['verify']),
  };
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'O=SPIFFE', keys, signingAlgorithm: algorithms.signAlg });
  return { privateKey, csrPem: csr.toString('pem') };
}
