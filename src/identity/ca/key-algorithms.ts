/**
 * Key types Mandate's certificate authority can hold, and the glue between Node's KeyObject and
 * the WebCrypto keys @peculiar/x509 signs with.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { MandateError } from '../../errors.ts';
import { subtle } from '../x509/crypto.ts';

export type CaKeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-3072';

export function generateKeyPair(type: CaKeyType): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (type) {
    case 'ec-p256': return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'ec-p384': return generateKeyPairSync('ec', { namedCurve: 'P-384' });
    case 'rsa-2048': return generateKeyPairSync('rsa', { modulusLength: 2048 });
    case 'rsa-3072': return generateKeyPairSync('rsa', { modulusLength: 3072 });
  }
}

/** WebCrypto import and signing parameters for a key, chosen from the key itself. */
export function webCryptoAlgorithms(key: KeyObject): { importAlg: EcKeyImportParams | RsaHashedImportParams; signAlg: EcdsaParams | Algorithm & { hash: string } } {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const map: Record<string, [string, string]> = { prime256v1: ['P-256', 'SHA-256'], secp384r1: ['P-384', 'SHA-384'], secp521r1: ['P-521', 'SHA-512'] };
    const entry = curve ? map[curve] : undefined;
    if (!entry) throw new MandateError('ERR_KEY_INVALID', `unsupported EC curve ${curve ?? '(unknown)'}: use P-256, P-384 or P-521`);
    return { importAlg: { name: 'ECDSA', namedCurve: entry[0] }, signAlg: { name: 'ECDSA', hash: entry[1] } };
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw new MandateError('ERR_KEY_INVALID', `RSA key of ${bits} bits is too short: at least 2048 bits are required`);
    return { importAlg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, signAlg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } };
  }
  throw new MandateError('ERR_KEY_INVALID', `unsupported key type ${key.asymmetricKeyType ?? '(unknown)'}: use EC or RSA`);
}

/** Imports a Node private key into WebCrypto (non-extractable) with its public half, for signing certificates. */
export async function toCryptoKeys(privateKey: KeyObject): Promise<{ privateKey: CryptoKey; publicKey: CryptoKey; signAlg: Algorithm }> {
  const { importAlg, signAlg } = webCryptoAlgorithms(privateKey);
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  return {
    privateKey: await subtle.importKey('pkcs8', pkcs8, importAlg, false, ['sign']),
    publicKey: await subtle.importKey('spki', spki, importAlg, true, ['verify']),
    signAlg,
  };
}
