import { X509Certificate } from 'node:crypto';
import { MandateError, messageOf } from '../../errors.ts';
import type { SpiffeId } from '../spiffe-id/parse.ts';
import { x509 } from '../x509/crypto.ts';
import { decodePem } from '../x509/pem.ts';
import { randomSerial, type SigningCa } from '../ca/authority-key.ts';

const MAX_CSR_BYTES = 16 * 1024;
/** Leaves are backdated a little so a verifier whose clock runs behind still accepts them. */
const BACKDATE_MS = 10_000;

export interface IssueX509SvidOptions {
  /** PKCS#10 request, PEM or DER, signed by the workload's own key. */
  csr: string | Uint8Array;
  spiffeId: SpiffeId;
  ttlSeconds: number;
  now?: Date;
}

export interface IssuedX509Svid {
  certificate: X509Certificate;
  /** Leaf first, then the CA chain (no trust anchors): what a workload presents in TLS. */
  chain: X509Certificate[];
  serialNumber: string;
  notAfter: Date;
}

const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** Parses and checks a CSR: size, PEM/DER, signature (proof that the requester holds the key), key type. */
export async function parseCsr(csr: string | Uint8Array): Promise<x509.Pkcs10CertificateRequest> {
  const size = typeof csr === 'string' ? Buffer.byteLength(csr) : csr.byteLength;
  if (size === 0) throw new MandateError('ERR_CSR_INVALID', 'CSR is empty');
  if (size > MAX_CSR_BYTES) throw new MandateError('ERR_CSR_INVALID', `CSR exceeds ${MAX_CSR_BYTES} bytes`);
  let der: Uint8Array;
  if (typeof csr === 'string') {
    const block = decodePem(csr).find((b) => b.label === 'CERTIFICATE REQUEST' || b.label === 'NEW CERTIFICATE REQUEST');
    if (!block) throw new MandateError('ERR_CSR_INVALID', 'no CERTIFICATE REQUEST block in CSR PEM');
    der = block.der;
  } else der = csr;
  let request: x509.Pkcs10CertificateRequest;
  try {
    request = new x509.Pkcs10CertificateRequest(Uint8Array.from(der));
  } catch (err) {
    throw new MandateError('ERR_CSR_INVALID', `CSR is not a valid PKCS#10 request: ${messageOf(err)}`);
  }
  const keyAlg = request.publicKey.algorithm as { name: string; namedCurve?: string; modulusLength?: number };
  let valid: boolean;
  try {
    valid = await request.verify();
  } catch (err) {
    throw new MandateError('ERR_CSR_INVALID', `CSR key type is not supported (${keyAlg.name}): ${messageOf(err)}`);
  }
  if (!valid) throw new MandateError('ERR_CSR_INVALID', 'CSR signature does not verify with its public key');
  await assertAcceptableKey(request);
  return request;
}

async function assertAcceptableKey(request: x509.Pkcs10CertificateRequest): Promise<void> {
  const alg = request.publicKey.algorithm as { name: string; namedCurve?: string; modulusLength?: number };
  if (alg.name === 'ECDSA') {
    if (!['P-256', 'P-384', 'P-521'].includes(alg.namedCurve ?? '')) {
      throw new MandateError('ERR_CSR_INVALID', `CSR key curve ${alg.namedCurve ?? '(unknown)'} is not supported: use P-256, P-384 or P-521`);
    }
    return;
  }
  if (alg.name === 'RSASSA-PKCS1-v1_5' || alg.name === 'RSA-PSS') {
    const key = await request.publicKey.export();
    const bits = (key.algorithm as RsaHashedKeyAlgorithm).modulusLength;
    if (bits < 2048) throw new MandateError('ERR_CSR_INVALID', `CSR RSA key of ${bits} bits is too short: at least 2048 bits are required`);
    return;
  }
  if (alg.name === 'Ed25519') return;
  throw new MandateError('ERR_CSR_INVALID', `CSR key algorithm ${alg.name} is not supported`);
}

/**
 * Issues an X.509-SVID exactly per X509-SVID.md: the CSR's key (the workload's key never leaves it),
 * one URI SAN (the SPIFFE ID from the registration entry, never from the CSR), key usage critical
 * with digitalSignature only, EKU serverAuth + clientAuth, CA false, chained to the bundle.
 *
 * @example const svid = await issueX509Svid(ca, { csr, spiffeId: parseSpiffeId('spiffe://example.org/agent/bot'), ttlSeconds: 3600 });
 */
export async function issueX509Svid(ca: SigningCa, opts: IssueX509SvidOptions): Promise<IssuedX509Svid> {
  if (opts.spiffeId.path === '') throw new MandateError('ERR_SPIFFE_ID_INVALID', 'an X.509-SVID leaf needs a SPIFFE ID with a path');
  const request = await parseCsr(opts.csr);
  const now = opts.now ?? new Date();
  const caNotAfter = new Date(ca.certificate.validTo);
  const notAfter = new Date(Math.min(now.getTime() + opts.ttlSeconds * 1000, caNotAfter.getTime()));
  if (notAfter <= now) throw new MandateError('ERR_CA_UNAVAILABLE', 'the active CA certificate has expired');
  const serialNumber = randomSerial();
  const publicKey = await request.publicKey.export();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber,
    subject: 'O=SPIFFE',
    issuer: ca.issuerName,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter,
    signingAlgorithm: ca.webCrypto.signAlg,
    publicKey,
    signingKey: ca.webCrypto.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([EKU_SERVER_AUTH, EKU_CLIENT_AUTH], false),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: opts.spiffeId.toString() }], false),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.webCrypto.publicKey),
    ],
  });
  const certificate = new X509Certificate(Buffer.from(cert.rawData));
  return { certificate, chain: [certificate, ...ca.chain], serialNumber, notAfter };
}
