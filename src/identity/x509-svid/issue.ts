import { X509Certificate, constants, createHash, createPublicKey, sign, verify, type JsonWebKey, type KeyObject } from 'node:crypto';
import { MandateError, messageOf } from '../../errors.ts';
import type { SpiffeId } from '../spiffe-id/parse.ts';
import { x509 } from '../x509/crypto.ts';
import { decodePem } from '../x509/pem.ts';
import {
  DerReader, TAG, contextTag, encodeBitString, encodeBoolean, encodeExplicit, encodeIa5String, encodeImplicit, encodeInteger,
  encodeNull, encodeOctetString, encodeOid, encodePrintableString, encodeSequence, encodeSet, encodeTime, type DerElement, type DerErrorContext,
} from '../x509/der.ts';
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

const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  rsassaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  ed25519: '1.3.101.112',
  organizationName: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

// ---------------------------------------------------------------------------------------------
// The CSR: a strict DER walk, then node:crypto checks the proof of possession.

const CSR_DER: DerErrorContext = { code: 'ERR_CSR_INVALID', what: 'CSR is not a valid PKCS#10 request' };

type KeyKind = 'ec' | 'rsa' | 'rsa-pss' | 'ed25519';

/** A CSR whose signature verified with its own, acceptable, key. */
interface CheckedCsr {
  der: Uint8Array;
  /** SubjectPublicKeyInfo exactly as the workload sent it: copied into the certificate as-is. */
  spki: Uint8Array;
  /** The subjectPublicKey bits, which the subject key identifier hashes. */
  subjectPublicKey: Uint8Array;
}

const EC_CURVES: Record<string, { name: string; coordinateBytes: number }> = {
  '1.2.840.10045.3.1.7': { name: 'P-256', coordinateBytes: 32 },
  '1.3.132.0.34': { name: 'P-384', coordinateBytes: 48 },
  '1.3.132.0.35': { name: 'P-521', coordinateBytes: 66 },
};

/** Names for key algorithms Mandate refuses, so the message says more than an OID. */
const REFUSED_KEY_NAMES: Record<string, string> = { '1.3.101.113': 'Ed448', '1.3.101.110': 'X25519', '1.3.101.111': 'X448', '1.2.840.10040.4.1': 'DSA' };

const HASHES: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

interface SignatureScheme {
  name: string;
  keys: readonly KeyKind[];
  /** Digest for node:crypto `verify`; null where the scheme hashes internally (Ed25519) or declares it (PSS). */
  hash: string | null;
  /** What RFC 5758 / 4055 / 8410 put in the AlgorithmIdentifier's parameters. */
  params: 'absent' | 'null-or-absent' | 'pss';
}

const SIGNATURE_SCHEMES: Record<string, SignatureScheme> = {
  '1.2.840.10045.4.3.2': { name: 'ecdsa-with-SHA256', keys: ['ec'], hash: 'sha256', params: 'absent' },
  '1.2.840.10045.4.3.3': { name: 'ecdsa-with-SHA384', keys: ['ec'], hash: 'sha384', params: 'absent' },
  '1.2.840.10045.4.3.4': { name: 'ecdsa-with-SHA512', keys: ['ec'], hash: 'sha512', params: 'absent' },
  '1.2.840.113549.1.1.11': { name: 'sha256WithRSAEncryption', keys: ['rsa'], hash: 'sha256', params: 'null-or-absent' },
  '1.2.840.113549.1.1.12': { name: 'sha384WithRSAEncryption', keys: ['rsa'], hash: 'sha384', params: 'null-or-absent' },
  '1.2.840.113549.1.1.13': { name: 'sha512WithRSAEncryption', keys: ['rsa'], hash: 'sha512', params: 'null-or-absent' },
  [OID.rsassaPss]: { name: 'RSASSA-PSS', keys: ['rsa', 'rsa-pss'], hash: null, params: 'pss' },
  [OID.ed25519]: { name: 'Ed25519', keys: ['ed25519'], hash: null, params: 'absent' },
};

/** Reads an AlgorithmIdentifier; the caller reads (or refuses) what is left in `params`. */
function readAlgorithm(reader: DerReader, field: string): { oid: string; params: DerReader } {
  const params = reader.enter(TAG.SEQUENCE, field);
  return { oid: params.oid(`${field} OID`), params };
}

function csrBytes(csr: string | Uint8Array): Uint8Array {
  const size = typeof csr === 'string' ? Buffer.byteLength(csr) : csr.byteLength;
  if (size === 0) throw new MandateError('ERR_CSR_INVALID', 'CSR is empty');
  if (size > MAX_CSR_BYTES) throw new MandateError('ERR_CSR_INVALID', `CSR exceeds ${MAX_CSR_BYTES} bytes`);
  if (typeof csr !== 'string') return csr;
  const block = decodePem(csr).find((b) => b.label === 'CERTIFICATE REQUEST' || b.label === 'NEW CERTIFICATE REQUEST');
  if (!block) throw new MandateError('ERR_CSR_INVALID', 'no CERTIFICATE REQUEST block in CSR PEM');
  return block.der;
}

/** Parses a PKCS#10 request (RFC 2986) strictly and verifies that its own key signed it. */
function readCsr(csr: string | Uint8Array): CheckedCsr {
  const der = csrBytes(csr);
  const top = new DerReader(der, CSR_DER);
  const request = top.enter(TAG.SEQUENCE, 'CertificationRequest');
  top.finish('CertificationRequest');
  const infoElement = request.read(TAG.SEQUENCE, 'certificationRequestInfo');
  const signatureAlgorithm = readAlgorithm(request, 'signatureAlgorithm');
  const signature = request.octetAlignedBitString('signature');
  request.finish('CertificationRequest');

  const info = request.child(infoElement, 'certificationRequestInfo');
  if (info.smallInteger('version') !== 0) info.fail('version must be 0 (v1)');
  // The subject and attributes are never used (the SPIFFE ID comes from the registration entry), only checked.
  info.enter(TAG.SEQUENCE, 'subject').skipWellFormed('subject');
  const spkiElement = info.read(TAG.SEQUENCE, 'subjectPKInfo');
  // RFC 2986 requires [0] attributes; a few generators leave an empty set out, which is harmless.
  const attributes = info.optional(contextTag(0, true), 'attributes');
  if (attributes) info.child(attributes, 'attributes').skipWellFormed('attributes');
  info.finish('certificationRequestInfo');

  const key = readPublicKey(request, spkiElement);
  verifyProofOfPossession(key, signatureAlgorithm, request.whole(infoElement), signature);
  return { der, spki: request.whole(spkiElement), subjectPublicKey: key.bits };
}

interface CsrKey {
  kind: KeyKind;
  key: KeyObject;
  bits: Uint8Array;
}

/** Reads the SubjectPublicKeyInfo and applies Mandate's key rules: EC P-256/384/521, RSA >= 2048 bits, Ed25519. */
function readPublicKey(request: DerReader, element: DerElement): CsrKey {
  const spki = request.child(element, 'subjectPKInfo');
  const algorithm = readAlgorithm(spki, 'subjectPKInfo algorithm');
  const bits = spki.octetAlignedBitString('subjectPublicKey');
  spki.finish('subjectPKInfo');
  const { params } = algorithm;
  let kind: KeyKind;
  // OpenSSL 3.0 decodes DER keys through its slow generic decoder (~200 us); the same key as a JWK
  // imports several times faster, so keys are handed over as JWK built from these very bits.
  let jwk: JsonWebKey | undefined;
  switch (algorithm.oid) {
    case OID.ecPublicKey: {
      // Only named curves: explicit curve parameters are refused by RFC 5480 and by most verifiers.
      if (params.peekTag() !== TAG.OID) params.fail('EC key parameters must be a namedCurve OID');
      const curveOid = params.oid('namedCurve');
      params.finish('EC key parameters');
      const curve = EC_CURVES[curveOid];
      if (!curve) throw new MandateError('ERR_CSR_INVALID', `CSR key curve ${curveOid} is not supported: use P-256, P-384 or P-521`);
      // A compressed point would be copied into the certificate, and Go and others refuse those there.
      const n = curve.coordinateBytes;
      if (bits.length !== 1 + 2 * n || bits[0] !== 0x04) throw new MandateError('ERR_CSR_INVALID', `CSR ${curve.name} public key must be an uncompressed point`);
      kind = 'ec';
      jwk = { kty: 'EC', crv: curve.name, x: base64url(bits.subarray(1, 1 + n)), y: base64url(bits.subarray(1 + n)) };
      break;
    }
    case OID.rsaEncryption: {
      // RFC 3279 §2.3.1: NULL parameters, which Go insists on when it reads the certificate.
      params.null('RSA key parameters');
      params.finish('RSA key parameters');
      kind = 'rsa';
      const rsa = new DerReader(bits, CSR_DER).enter(TAG.SEQUENCE, 'RSAPublicKey');
      const modulus = positiveInteger(rsa, 'RSA modulus');
      const exponent = positiveInteger(rsa, 'RSA public exponent');
      rsa.finish('RSAPublicKey');
      jwk = { kty: 'RSA', n: base64url(modulus), e: base64url(exponent) };
      break;
    }
    case OID.rsassaPss:
      // RSASSA-PSS keys may carry restrictions that a JWK cannot express: OpenSSL reads the DER.
      params.skipWellFormed('RSASSA-PSS key parameters');
      kind = 'rsa-pss';
      break;
    case OID.ed25519:
      params.finish('Ed25519 key (RFC 8410 forbids parameters)');
      if (bits.length !== 32) throw new MandateError('ERR_CSR_INVALID', `CSR Ed25519 public key is ${bits.length} bytes, not 32`);
      kind = 'ed25519';
      jwk = { kty: 'OKP', crv: 'Ed25519', x: base64url(bits) };
      break;
    default:
      throw new MandateError('ERR_CSR_INVALID', `CSR key algorithm ${REFUSED_KEY_NAMES[algorithm.oid] ?? algorithm.oid} is not supported`);
  }
  let key: KeyObject;
  try {
    const der = request.whole(element);
    key = jwk ? createPublicKey({ key: jwk, format: 'jwk' }) : createPublicKey({ key: Buffer.from(der.buffer, der.byteOffset, der.byteLength), format: 'der', type: 'spki' });
  } catch (err) {
    throw new MandateError('ERR_CSR_INVALID', `CSR is not a valid PKCS#10 request: its ${kind} public key cannot be decoded: ${messageOf(err)}`);
  }
  if (key.asymmetricKeyType !== kind) throw new MandateError('ERR_CSR_INVALID', `CSR key decodes as ${key.asymmetricKeyType ?? 'unknown'}, not ${kind}`);
  if (kind === 'rsa' || kind === 'rsa-pss') {
    const details = key.asymmetricKeyDetails;
    const size = details?.modulusLength ?? 0;
    if (size < 2048) throw new MandateError('ERR_CSR_INVALID', `CSR RSA key of ${size} bits is too short: at least 2048 bits are required`);
    // Go refuses such certificates, and a huge exponent would make every verification expensive.
    if ((details?.publicExponent ?? 0n) > 0x7fffffffn) throw new MandateError('ERR_CSR_INVALID', 'CSR RSA public exponent is larger than 2^31-1');
  }
  return { kind, key, bits };
}

/** A positive INTEGER's magnitude without the sign octet, as JWK wants it. */
function positiveInteger(reader: DerReader, field: string): Uint8Array {
  const value = reader.integer(field);
  if (((value[0] as number) & 0x80) !== 0 || (value.length === 1 && value[0] === 0)) reader.fail(`${field} must be positive`);
  return value[0] === 0 ? value.subarray(1) : value;
}

function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Checks the CSR signature: the requester holds the private key of the certificate it asks for. */
function verifyProofOfPossession(key: CsrKey, algorithm: { oid: string; params: DerReader }, signed: Uint8Array, signature: Uint8Array): void {
  const scheme = SIGNATURE_SCHEMES[algorithm.oid];
  if (!scheme) throw new MandateError('ERR_CSR_INVALID', `CSR signature algorithm ${algorithm.oid} is not supported: use ECDSA, RSA PKCS#1 v1.5 or RSASSA-PSS with SHA-256/384/512, or Ed25519`);
  if (!scheme.keys.includes(key.kind)) throw new MandateError('ERR_CSR_INVALID', `CSR signature algorithm ${scheme.name} does not fit its ${key.kind} key`);
  const { params } = algorithm;
  let hash = scheme.hash;
  let pss: { saltLength: number } | undefined;
  if (scheme.params === 'pss') {
    const declared = readPssParameters(params);
    hash = declared.hash;
    pss = { saltLength: declared.saltLength };
  } else if (scheme.params === 'null-or-absent' && !params.done) params.null(`${scheme.name} parameters`);
  params.finish(`${scheme.name} algorithm (unexpected parameters)`);
  let valid = false;
  try {
    valid = verify(hash, signed, pss ? { key: key.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: pss.saltLength } : key.key, signature);
  } catch {
    // OpenSSL refuses some malformed signatures (a bad ECDSA DER sequence) by throwing: the same answer.
  }
  if (!valid) throw new MandateError('ERR_CSR_INVALID', 'CSR signature does not verify with its public key');
}

/** RSASSA-PSS-params (RFC 4055 §3.1); node:crypto uses one hash for the message and MGF1, so both must agree. */
function readPssParameters(params: DerReader): { hash: string; saltLength: number } {
  const field = 'RSASSA-PSS parameters';
  const seq = params.enter(TAG.SEQUENCE, field);
  let hash = 'sha1';
  let mgfHash = 'sha1';
  let saltLength = 20;
  const hashElement = seq.optional(contextTag(0, true), 'hashAlgorithm');
  if (hashElement) hash = readHash(seq.child(hashElement, 'hashAlgorithm'), 'hashAlgorithm');
  const mgfElement = seq.optional(contextTag(1, true), 'maskGenAlgorithm');
  if (mgfElement) {
    const wrapper = seq.child(mgfElement, 'maskGenAlgorithm');
    const mgf = readAlgorithm(wrapper, 'maskGenAlgorithm');
    wrapper.finish('maskGenAlgorithm');
    if (mgf.oid !== OID.mgf1) throw new MandateError('ERR_CSR_INVALID', `CSR RSASSA-PSS mask generation ${mgf.oid} is not supported: use MGF1`);
    mgfHash = readHash(mgf.params, 'MGF1 hash');
  }
  const saltElement = seq.optional(contextTag(2, true), 'saltLength');
  if (saltElement) {
    const salt = seq.child(saltElement, 'saltLength');
    saltLength = salt.smallInteger('saltLength');
    salt.finish('saltLength');
  }
  const trailerElement = seq.optional(contextTag(3, true), 'trailerField');
  if (trailerElement) {
    const trailer = seq.child(trailerElement, 'trailerField');
    if (trailer.smallInteger('trailerField') !== 1) trailer.fail('RSASSA-PSS trailerField must be 1');
    trailer.finish('trailerField');
  }
  seq.finish(field);
  if (!['sha256', 'sha384', 'sha512'].includes(hash)) throw new MandateError('ERR_CSR_INVALID', `CSR RSASSA-PSS hash ${hash} is not supported: use SHA-256, SHA-384 or SHA-512`);
  if (mgfHash !== hash) throw new MandateError('ERR_CSR_INVALID', `CSR RSASSA-PSS MGF1 hash ${mgfHash} differs from its message hash ${hash}`);
  return { hash, saltLength };
}

/** A HashAlgorithm wrapped in its own reader (an EXPLICIT tag or MGF1 parameters); NULL parameters are tolerated. */
function readHash(reader: DerReader, field: string): string {
  const algorithm = readAlgorithm(reader, field);
  if (!algorithm.params.done) algorithm.params.null(`${field} parameters`);
  algorithm.params.finish(field);
  reader.finish(field);
  return HASHES[algorithm.oid] ?? algorithm.oid;
}

/**
 * Parses and checks a CSR: size, PEM/DER, strict DER structure, signature (proof that the
 * requester holds the key), key type. Issuance uses the same checks without building this object.
 *
 * @example const request = await parseCsr(csrPem); request.subject // 'O=SPIFFE'
 */
export async function parseCsr(csr: string | Uint8Array): Promise<x509.Pkcs10CertificateRequest> {
  const { der } = readCsr(csr);
  try {
    return new x509.Pkcs10CertificateRequest(Uint8Array.from(der));
  } catch (err) {
    throw new MandateError('ERR_CSR_INVALID', `CSR is not a valid PKCS#10 request: ${messageOf(err)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The certificate: TBSCertificate written directly in DER, signed with node:crypto.

/** What every leaf of one CA repeats: read from the CA certificate once. */
interface CaProfile {
  /** The signature AlgorithmIdentifier, in TBSCertificate and Certificate alike. */
  signatureAlgorithm: Buffer;
  hash: string;
  /** The CA certificate's subject, byte for byte, as RFC 5280 name chaining wants. */
  issuer: Uint8Array;
  /** The whole AuthorityKeyIdentifier extension, naming the CA's own subject key identifier. */
  authorityKeyIdentifier: Buffer;
  /** The CA certificate's notAfter in ms: no leaf outlives it. */
  notAfterMs: number;
}

const caProfiles = new WeakMap<SigningCa, CaProfile>();

const CA_DER: DerErrorContext = { code: 'ERR_CA_INVALID', what: 'CA certificate cannot be read' };

const CA_SIGNATURE: Record<string, [string, string]> = {
  prime256v1: ['1.2.840.10045.4.3.2', 'sha256'],
  secp384r1: ['1.2.840.10045.4.3.3', 'sha384'],
  secp521r1: ['1.2.840.10045.4.3.4', 'sha512'],
};

function caProfile(ca: SigningCa): CaProfile {
  const cached = caProfiles.get(ca);
  if (cached) return cached;
  const profile = { ...caSignature(ca.privateKey), ...readCaCertificate(ca.certificate), notAfterMs: new Date(ca.certificate.validTo).getTime() };
  caProfiles.set(ca, profile);
  return profile;
}

/** The signature algorithm follows the CA key: ECDSA with the curve's hash, or SHA-256 with RSA. */
function caSignature(key: KeyObject): { signatureAlgorithm: Buffer; hash: string } {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? '';
    const entry = CA_SIGNATURE[curve];
    if (!entry) throw new MandateError('ERR_KEY_INVALID', `unsupported EC curve ${curve || '(unknown)'}: use P-256, P-384 or P-521`);
    return { signatureAlgorithm: encodeSequence(encodeOid(entry[0])), hash: entry[1] };
  }
  if (key.asymmetricKeyType === 'rsa') return { signatureAlgorithm: encodeSequence(encodeOid('1.2.840.113549.1.1.11'), encodeNull()), hash: 'sha256' };
  throw new MandateError('ERR_KEY_INVALID', `unsupported key type ${key.asymmetricKeyType ?? '(unknown)'}: use EC or RSA`);
}

/** Takes the CA's subject and subject key identifier (or, without one, SHA-1 of its key: RFC 5280 §4.2.1.2 method 1). */
function readCaCertificate(certificate: X509Certificate): { issuer: Uint8Array; authorityKeyIdentifier: Buffer } {
  const top = new DerReader(certificate.raw, CA_DER);
  const tbs = top.enter(TAG.SEQUENCE, 'Certificate').enter(TAG.SEQUENCE, 'tbsCertificate');
  tbs.optional(contextTag(0, true), 'version');
  tbs.integer('serialNumber');
  tbs.read(TAG.SEQUENCE, 'signature');
  tbs.read(TAG.SEQUENCE, 'issuer');
  tbs.read(TAG.SEQUENCE, 'validity');
  const issuer = Buffer.from(tbs.whole(tbs.read(TAG.SEQUENCE, 'subject')));
  const spki = tbs.enter(TAG.SEQUENCE, 'subjectPublicKeyInfo');
  spki.read(TAG.SEQUENCE, 'algorithm');
  const caKeyBits = spki.octetAlignedBitString('subjectPublicKey');
  tbs.optional(contextTag(1, false), 'issuerUniqueID');
  tbs.optional(contextTag(2, false), 'subjectUniqueID');
  let keyId: Uint8Array | undefined;
  const extensionsElement = tbs.optional(contextTag(3, true), 'extensions');
  if (extensionsElement) {
    const extensions = tbs.child(extensionsElement, 'extensions').enter(TAG.SEQUENCE, 'extensions');
    while (!extensions.done && !keyId) {
      const extension = extensions.enter(TAG.SEQUENCE, 'extension');
      if (extension.oid('extnID') !== OID.subjectKeyIdentifier) continue;
      extension.optional(TAG.BOOLEAN, 'critical');
      keyId = new DerReader(extension.octetString('extnValue'), CA_DER).octetString('subjectKeyIdentifier');
    }
  }
  keyId ??= createHash('sha1').update(caKeyBits).digest();
  const authorityKeyIdentifier = extension(OID.authorityKeyIdentifier, false, encodeSequence(encodeImplicit(0, encodeOctetString(keyId))));
  return { issuer, authorityKeyIdentifier };
}

function extension(oid: string, critical: boolean, value: Uint8Array): Buffer {
  // DER leaves out `critical` when it has its DEFAULT, FALSE.
  return critical ? encodeSequence(encodeOid(oid), encodeBoolean(true), encodeOctetString(value)) : encodeSequence(encodeOid(oid), encodeOctetString(value));
}

const VERSION_3 = encodeExplicit(0, encodeInteger(2));
const SUBJECT = encodeSequence(encodeSet(encodeSequence(encodeOid(OID.organizationName), encodePrintableString('SPIFFE'))));
/** X509-SVID §4.1, §4.3: a leaf is no CA, signs only digitalSignature, and serves TLS both ways. */
const BASIC_CONSTRAINTS = extension(OID.basicConstraints, true, encodeSequence());
const KEY_USAGE = extension(OID.keyUsage, true, encodeBitString(Uint8Array.of(0x80), 7));
const EXT_KEY_USAGE = extension(OID.extKeyUsage, false, encodeSequence(encodeOid(OID.serverAuth), encodeOid(OID.clientAuth)));

/**
 * Issues an X.509-SVID exactly per X509-SVID.md: the CSR's key (the workload's key never leaves it),
 * one URI SAN (the SPIFFE ID from the registration entry, never from the CSR), key usage critical
 * with digitalSignature only, EKU serverAuth + clientAuth, CA false, chained to the bundle.
 *
 * @example const svid = await issueX509Svid(ca, { csr, spiffeId: parseSpiffeId('spiffe://example.org/agent/bot'), ttlSeconds: 3600 });
 */
export async function issueX509Svid(ca: SigningCa, opts: IssueX509SvidOptions): Promise<IssuedX509Svid> {
  if (opts.spiffeId.path === '') throw new MandateError('ERR_SPIFFE_ID_INVALID', 'an X.509-SVID leaf needs a SPIFFE ID with a path');
  if (!Number.isFinite(opts.ttlSeconds) || opts.ttlSeconds < 1) {
    throw new MandateError('ERR_BAD_REQUEST', `X.509-SVID ttlSeconds ${opts.ttlSeconds} is invalid: it must be at least 1 second`);
  }
  const request = readCsr(opts.csr);
  const profile = caProfile(ca);
  const now = opts.now ?? new Date();
  // Certificates hold whole seconds: report the notAfter the certificate really carries.
  const notAfter = new Date(Math.floor(Math.min(now.getTime() + opts.ttlSeconds * 1000, profile.notAfterMs) / 1000) * 1000);
  if (!(notAfter > now)) throw new MandateError('ERR_CA_UNAVAILABLE', 'the active CA certificate has expired');
  const serialNumber = randomSerial();
  const subjectKeyIdentifier = createHash('sha1').update(request.subjectPublicKey).digest();
  const tbs = encodeSequence(
    VERSION_3,
    encodeInteger(Buffer.from(serialNumber, 'hex')),
    profile.signatureAlgorithm,
    profile.issuer,
    encodeSequence(encodeTime(new Date(now.getTime() - BACKDATE_MS)), encodeTime(notAfter)),
    SUBJECT,
    request.spki,
    encodeExplicit(3, encodeSequence(
      BASIC_CONSTRAINTS,
      KEY_USAGE,
      EXT_KEY_USAGE,
      extension(OID.subjectAltName, false, encodeSequence(encodeImplicit(6, encodeIa5String(opts.spiffeId.toString())))),
      extension(OID.subjectKeyIdentifier, false, encodeOctetString(subjectKeyIdentifier)),
      profile.authorityKeyIdentifier,
    )),
  );
  // ECDSA signatures come out DER-encoded, which is what X.509 carries.
  const signature = sign(profile.hash, tbs, ca.privateKey);
  const certificate = new X509Certificate(encodeSequence(tbs, profile.signatureAlgorithm, encodeBitString(signature)));
  return { certificate, chain: [certificate, ...ca.chain], serialNumber, notAfter };
}
