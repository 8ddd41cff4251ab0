import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { MandateError, messageOf } from '../../errors.ts';

/** A PEM block: its label (CERTIFICATE, PRIVATE KEY, ...) and DER bytes. */
export interface PemBlock {
  label: string;
  der: Buffer;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
const MAX_PEM_BYTES = 1024 * 1024;

/**
 * Splits PEM text into blocks. Text outside blocks is ignored (as OpenSSL does); a text with no
 * block at all, or a block whose body is not base64, is an error.
 *
 * @example const [cert] = decodePem(fs.readFileSync('svid.pem', 'utf8'));
 */
export function decodePem(text: string): PemBlock[] {
  if (text.length > MAX_PEM_BYTES) throw new MandateError('ERR_PEM_INVALID', `PEM input exceeds ${MAX_PEM_BYTES} bytes`);
  const blocks: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) {
    const body = (m[2] ?? '').replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length === 0) {
      throw new MandateError('ERR_PEM_INVALID', `PEM block ${m[1]} does not contain base64 data`);
    }
    blocks.push({ label: m[1] ?? '', der: Buffer.from(body, 'base64') });
  }
  if (blocks.length === 0) throw new MandateError('ERR_PEM_INVALID', 'input contains no PEM block');
  return blocks;
}

export function encodePem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** Parses DER bytes as a certificate, turning OpenSSL's errors into ERR_PEM_INVALID. */
export function certificateFromDer(der: Uint8Array, what = 'certificate'): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (err) {
    throw new MandateError('ERR_PEM_INVALID', `${what} is not a valid DER X.509 certificate: ${messageOf(err)}`);
  }
}

/** Certificates and (at most one) private key found in PEM text, in order of appearance. */
export function parseCertificatesAndKey(text: string): { certificates: X509Certificate[]; privateKey: KeyObject | null } {
  const certificates: X509Certificate[] = [];
  let privateKey: KeyObject | null = null;
  for (const block of decodePem(text)) {
    if (block.label === 'CERTIFICATE') {
      certificates.push(certificateFromDer(block.der, `certificate #${certificates.length + 1}`));
    } else if (/PRIVATE KEY$/.test(block.label)) {
      if (privateKey) throw new MandateError('ERR_PEM_INVALID', 'more than one private key in PEM input');
      privateKey = privateKeyFromPem(encodePem(block.label, block.der));
    }
  }
  return { certificates, privateKey };
}

export function parseCertificates(text: string): X509Certificate[] {
  const { certificates } = parseCertificatesAndKey(text);
  if (certificates.length === 0) throw new MandateError('ERR_PEM_INVALID', 'no CERTIFICATE block in PEM input');
  return certificates;
}

export function privateKeyFromPem(pem: string): KeyObject {
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new MandateError('ERR_KEY_INVALID', `private key cannot be parsed: ${messageOf(err)}`);
  }
}

export function certificatesToPem(certs: readonly X509Certificate[]): string {
  return certs.map((c) => encodePem('CERTIFICATE', c.raw)).join('');
}
