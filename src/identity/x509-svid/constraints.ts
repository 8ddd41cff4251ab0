/**
 * The SPIFFE-specific rules of X509-SVID §3–§5 for leaf and signing certificates. Chain signatures
 * and validity are checked elsewhere (verify.ts); this module only reads extensions.
 */
import type { X509Certificate } from 'node:crypto';
import { MandateError } from '../../errors.ts';
import { parseSpiffeId, type SpiffeId } from '../spiffe-id/parse.ts';
import { x509 } from '../x509/crypto.ts';

const KU = x509.KeyUsageFlags;

export interface CertificateFacts {
  isCa: boolean;
  pathLength: number | undefined;
  /** Key usage bit flags, or null when the extension is absent. */
  keyUsage: number | null;
  uris: string[];
}

const factsCache = new WeakMap<X509Certificate, CertificateFacts>();

/** Reads the extensions that SPIFFE constrains. Cached per certificate object. */
export function certificateFacts(cert: X509Certificate): CertificateFacts {
  const cached = factsCache.get(cert);
  if (cached) return cached;
  let parsed: x509.X509Certificate;
  try {
    parsed = new x509.X509Certificate(cert.raw);
  } catch (err) {
    throw new MandateError('ERR_PEM_INVALID', `certificate extensions cannot be parsed: ${(err as Error).message}`);
  }
  const bc = parsed.getExtension(x509.BasicConstraintsExtension);
  const ku = parsed.getExtension(x509.KeyUsagesExtension);
  const san = parsed.getExtension(x509.SubjectAlternativeNameExtension);
  const facts: CertificateFacts = {
    isCa: bc?.ca === true,
    pathLength: bc?.pathLength,
    keyUsage: ku ? ku.usages : null,
    uris: san ? san.names.items.filter((n) => n.type === 'url').map((n) => n.value) : [],
  };
  factsCache.set(cert, facts);
  return facts;
}

function reject(message: string): never {
  throw new MandateError('ERR_X509_SVID_INVALID', message);
}

/**
 * Checks a leaf X.509-SVID (X509-SVID §2, §3.1, §4.1, §4.3, §5.2) and returns its SPIFFE ID.
 *
 * @example const id = checkLeaf(chain[0]); // spiffe://example.org/agent/triage-bot
 */
export function checkLeaf(cert: X509Certificate): SpiffeId {
  const facts = certificateFacts(cert);
  if (facts.uris.length === 0) reject('leaf certificate has no URI SAN, so no SPIFFE ID (X509-SVID §2)');
  if (facts.uris.length > 1) reject(`leaf certificate has ${facts.uris.length} URI SANs; exactly one is allowed (X509-SVID §2)`);
  let id: SpiffeId;
  try {
    id = parseSpiffeId(facts.uris[0] as string);
  } catch (err) {
    reject(`leaf certificate URI SAN is not a valid SPIFFE ID: ${(err as Error).message}`);
  }
  if (id.path === '') reject(`leaf SPIFFE ID ${id} has no path; leaf SVIDs need a non-root path (X509-SVID §3.1)`);
  if (facts.isCa) reject('leaf certificate has the CA flag set (X509-SVID §4.1)');
  if (facts.keyUsage === null) reject('leaf certificate has no key usage extension (X509-SVID §4.3)');
  if (!(facts.keyUsage & KU.digitalSignature)) reject('leaf certificate lacks digitalSignature key usage (X509-SVID §4.3)');
  if (facts.keyUsage & KU.keyCertSign) reject('leaf certificate has keyCertSign key usage (X509-SVID §4.3)');
  if (facts.keyUsage & KU.cRLSign) reject('leaf certificate has cRLSign key usage (X509-SVID §4.3)');
  return id;
}

/** Checks a signing (CA) certificate of a chain (X509-SVID §3.2, §4.1, §4.3). */
export function checkSigningCertificate(cert: X509Certificate, position: string): void {
  const facts = certificateFacts(cert);
  if (!facts.isCa) {
    throw new MandateError('ERR_X509_CHAIN_INVALID', `${position} signs certificates but does not have the CA flag (X509-SVID §4.1)`);
  }
  if (facts.keyUsage === null || !(facts.keyUsage & KU.keyCertSign)) {
    throw new MandateError('ERR_X509_CHAIN_INVALID', `${position} signs certificates but lacks keyCertSign key usage (X509-SVID §4.3)`);
  }
  for (const uri of facts.uris) {
    if (!uri.startsWith('spiffe:')) continue;
    const id = parseSpiffeId(uri);
    if (id.path !== '') {
      throw new MandateError('ERR_X509_CHAIN_INVALID', `${position} has SPIFFE ID ${id} with a path; signing certificates must not (X509-SVID §3.2)`);
    }
  }
}
