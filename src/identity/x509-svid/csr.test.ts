/**
 * The CSR side of issuance: which PKCS#10 requests Mandate accepts, which it refuses and why, and
 * that hostile bytes only ever end in a MandateError. CSRs are built here with the DER writer and
 * node:crypto, so every algorithm and every malformation is reachable; `openssl req -verify`
 * confirms the well-formed ones are real CSRs.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { constants, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import { isMandateError } from '../../errors.ts';
import type { SigningCa } from '../ca/authority-key.ts';
import { parseSpiffeId } from '../spiffe-id/parse.ts';
import {
  DerReader, TAG, encodeBitString, encodeExplicit, encodeIa5String, encodeImplicit, encodeInteger, encodeNull, encodeOctetString, encodeOid,
  encodePrintableString, encodeSequence, encodeSet, encodeTlv, encodeUtf8String,
} from '../x509/der.ts';
import { encodePem } from '../x509/pem.ts';
import { x509 } from '../x509/crypto.ts';
import { testCa } from '../../../test/support/pki.ts';
import { issueX509Svid, parseCsr } from './issue.ts';

const ID = parseSpiffeId('spiffe://example.org/agent/triage-bot');
const HASH_OID = { sha1: '1.3.14.3.2.26', sha256: '2.16.840.1.101.3.4.2.1', sha384: '2.16.840.1.101.3.4.2.2', sha512: '2.16.840.1.101.3.4.2.3' } as const;
type Hash = keyof typeof HASH_OID;

interface Scheme {
  algorithm: Uint8Array;
  sign: (data: Uint8Array, key: KeyObject) => Buffer;
}

const algorithm = (oid: string, ...params: Uint8Array[]) => encodeSequence(encodeOid(oid), ...params);
const ecdsa = (hash: Hash, oid: string): Scheme => ({ algorithm: algorithm(oid), sign: (d, k) => sign(hash, d, k) });
const pkcs1 = (hash: Hash, oid: string): Scheme => ({ algorithm: algorithm(oid, encodeNull()), sign: (d, k) => sign(hash, d, k) });
const pssParams = (hash: Hash, saltLength: number, mgfHash: Hash = hash) => encodeSequence(
  encodeExplicit(0, algorithm(HASH_OID[hash], encodeNull())),
  encodeExplicit(1, algorithm('1.2.840.113549.1.1.8', algorithm(HASH_OID[mgfHash], encodeNull()))),
  encodeExplicit(2, encodeInteger(saltLength)),
);
const pss = (hash: Hash, saltLength: number): Scheme => ({
  algorithm: algorithm('1.2.840.113549.1.1.10', pssParams(hash, saltLength)),
  sign: (d, k) => sign(hash, d, { key: k, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }),
});
const SCHEMES = {
  ecdsaSha256: ecdsa('sha256', '1.2.840.10045.4.3.2'),
  ecdsaSha384: ecdsa('sha384', '1.2.840.10045.4.3.3'),
  ecdsaSha512: ecdsa('sha512', '1.2.840.10045.4.3.4'),
  rsaSha256: pkcs1('sha256', '1.2.840.113549.1.1.11'),
  rsaSha384: pkcs1('sha384', '1.2.840.113549.1.1.12'),
  rsaSha512: pkcs1('sha512', '1.2.840.113549.1.1.13'),
  pssSha256: pss('sha256', 32),
  pssSha512: pss('sha512', 64),
  ed25519: { algorithm: algorithm('1.3.101.112'), sign: (d: Uint8Array, k: KeyObject) => sign(null, d, k) },
} satisfies Record<string, Scheme>;

const SUBJECT = encodeSequence(encodeSet(encodeSequence(encodeOid('2.5.4.10'), encodePrintableString('SPIFFE'))));
const NO_ATTRIBUTES = encodeImplicit(0, encodeSet());

interface CsrParts {
  key: KeyObject;
  scheme: Scheme;
  spki?: Uint8Array;
  version?: number;
  subject?: Uint8Array;
  /** The whole `[0] attributes` element, or null to leave it out. */
  attributes?: Uint8Array | null;
  /** Replaces the signature BIT STRING. */
  signature?: (signed: Uint8Array) => Uint8Array;
}

function buildCsr(parts: CsrParts): Buffer {
  const spki = parts.spki ?? createPublicKey(parts.key).export({ type: 'spki', format: 'der' });
  const attributes = parts.attributes === null ? [] : [parts.attributes ?? NO_ATTRIBUTES];
  const info = encodeSequence(encodeInteger(parts.version ?? 0), parts.subject ?? SUBJECT, spki, ...attributes);
  const signature = parts.signature ? parts.signature(info) : encodeBitString(parts.scheme.sign(info, parts.key));
  return encodeSequence(info, parts.scheme.algorithm, signature);
}

const keys = {
  p256: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
  p384: generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey,
  p521: generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey,
  rsa2048: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
  rsa3072: generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey,
  rsaPss: generateKeyPairSync('rsa-pss', { modulusLength: 2048, hashAlgorithm: 'sha256', mgf1HashAlgorithm: 'sha256' }).privateKey,
  ed25519: generateKeyPairSync('ed25519').privateKey,
};

function opensslAvailable(): boolean {
  try {
    execFileSync('openssl', ['version']);
    return true;
  } catch {
    return false;
  }
}
const OPENSSL = opensslAvailable();
const tmp = mkdtempSync(join(tmpdir(), 'mandate-csr-'));

/** `openssl req -verify` on a DER CSR: proves a hand-built CSR is a real one. */
function opensslVerifies(der: Uint8Array): boolean {
  const file = join(tmp, 'req.der');
  writeFileSync(file, der);
  // OpenSSL 3 reports the verdict on stderr.
  const run = spawnSync('openssl', ['req', '-in', file, '-inform', 'DER', '-verify', '-noout'], { encoding: 'utf8' });
  return run.status === 0 && /verify OK/i.test(`${run.stdout}${run.stderr}`);
}

let ca: SigningCa;
before(async () => {
  ca = await testCa();
});

const refusedWith = (code: string, message: RegExp) => (err: unknown) => {
  assert.ok(isMandateError(err), `expected a MandateError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  assert.match(err.message, message);
  return true;
};

describe('CSRs Mandate accepts', () => {
  const accepted: Array<[string, KeyObject, Scheme]> = [
    ['EC P-256 with ecdsa-with-SHA256', keys.p256, SCHEMES.ecdsaSha256],
    ['EC P-384 with ecdsa-with-SHA384', keys.p384, SCHEMES.ecdsaSha384],
    ['EC P-521 with ecdsa-with-SHA512', keys.p521, SCHEMES.ecdsaSha512],
    ['EC P-256 with ecdsa-with-SHA512', keys.p256, SCHEMES.ecdsaSha512],
    ['RSA 2048 with sha256WithRSAEncryption', keys.rsa2048, SCHEMES.rsaSha256],
    ['RSA 2048 with sha384WithRSAEncryption', keys.rsa2048, SCHEMES.rsaSha384],
    ['RSA 3072 with sha512WithRSAEncryption', keys.rsa3072, SCHEMES.rsaSha512],
    ['RSA 2048 with RSASSA-PSS SHA-256', keys.rsa2048, SCHEMES.pssSha256],
    ['RSA 3072 with RSASSA-PSS SHA-512', keys.rsa3072, SCHEMES.pssSha512],
    ['an RSASSA-PSS key with RSASSA-PSS SHA-256', keys.rsaPss, SCHEMES.pssSha256],
    ['Ed25519', keys.ed25519, SCHEMES.ed25519],
  ];
  for (const [name, key, scheme] of accepted) {
    it(`issues for ${name}, with the CSR's public key copied as-is`, async (t) => {
      const der = buildCsr({ key, scheme });
      if (OPENSSL) assert.ok(opensslVerifies(der), 'openssl req -verify accepts the test CSR');
      else t.diagnostic('openssl is not installed: the test CSR is not cross-checked');
      const svid = await issueX509Svid(ca, { csr: encodePem('CERTIFICATE REQUEST', der), spiffeId: ID, ttlSeconds: 600 });
      const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
      assert.ok(svid.certificate.publicKey.export({ type: 'spki', format: 'der' }).equals(spki));
      assert.ok(svid.certificate.verify(ca.certificate.publicKey));
    });
  }

  it('parseCsr returns the request as @peculiar/x509 reads it', async () => {
    for (const key of [keys.p256, keys.rsa2048, keys.ed25519]) {
      const scheme = key === keys.p256 ? SCHEMES.ecdsaSha256 : key === keys.rsa2048 ? SCHEMES.rsaSha256 : SCHEMES.ed25519;
      const request = await parseCsr(buildCsr({ key, scheme }));
      assert.ok(request instanceof x509.Pkcs10CertificateRequest);
      assert.equal(request.subject, 'O=SPIFFE');
      assert.ok(Buffer.from(request.publicKey.rawData).equals(createPublicKey(key).export({ type: 'spki', format: 'der' })));
    }
  });

  it('accepts DER bytes, the NEW CERTIFICATE REQUEST label, RSA signatures without NULL parameters and no attributes field', async () => {
    const der = buildCsr({ key: keys.p256, scheme: SCHEMES.ecdsaSha256 });
    await issueX509Svid(ca, { csr: der, spiffeId: ID, ttlSeconds: 60 });
    await issueX509Svid(ca, { csr: encodePem('NEW CERTIFICATE REQUEST', der), spiffeId: ID, ttlSeconds: 60 });
    const absentParams = { algorithm: algorithm('1.2.840.113549.1.1.11'), sign: SCHEMES.rsaSha256.sign };
    await issueX509Svid(ca, { csr: buildCsr({ key: keys.rsa2048, scheme: absentParams }), spiffeId: ID, ttlSeconds: 60 });
    await issueX509Svid(ca, { csr: buildCsr({ key: keys.p256, scheme: SCHEMES.ecdsaSha256, attributes: null }), spiffeId: ID, ttlSeconds: 60 });
  });

  it('ignores the subject and the SANs a CSR asks for', async () => {
    const evilSan = encodeSequence(encodeOid('2.5.29.17'), encodeOctetString(encodeSequence(encodeImplicit(6, encodeIa5String('spiffe://evil.example/admin')))));
    const extensionRequest = encodeSequence(encodeOid('1.2.840.113549.1.9.14'), encodeSet(encodeSequence(evilSan)));
    const subject = encodeSequence(encodeSet(encodeSequence(encodeOid('2.5.4.3'), encodeUtf8String('admin'))));
    const der = buildCsr({ key: keys.p256, scheme: SCHEMES.ecdsaSha256, subject, attributes: encodeImplicit(0, encodeSet(extensionRequest)) });
    if (OPENSSL) assert.ok(opensslVerifies(der));
    const svid = await issueX509Svid(ca, { csr: der, spiffeId: ID, ttlSeconds: 60 });
    assert.equal(svid.certificate.subject, 'O=SPIFFE');
    assert.equal(svid.certificate.subjectAltName, `URI:${ID.toString()}`);
  });
});

describe('CSRs Mandate refuses', () => {
  const spkiOf = (key: KeyObject) => createPublicKey(key).export({ type: 'spki', format: 'der' });
  const ecPoint = (key: KeyObject) => {
    const spki = spkiOf(key);
    return spki.subarray(spki.length - 65);
  };
  const ecSpki = (point: Uint8Array, curveOid = '1.2.840.10045.3.1.7') => encodeSequence(algorithm('1.2.840.10045.2.1', encodeOid(curveOid)), encodeBitString(point));
  const rsaPublicKey = (key: KeyObject) => {
    const r = new DerReader(spkiOf(key), { code: 'ERR_INTERNAL', what: 'test' }).enter(TAG.SEQUENCE, 'spki');
    r.read(TAG.SEQUENCE, 'algorithm');
    return r.octetAlignedBitString('key');
  };
  const otherP256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const nested = (levels: number) => {
    let der: Uint8Array = encodeNull();
    for (let i = 0; i < levels; i++) der = encodeSequence(der);
    return der;
  };

  const refused: Array<[string, () => Uint8Array, RegExp]> = [
    ['a secp256k1 key', () => buildCsr({ key: generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey, scheme: SCHEMES.ecdsaSha256 }), /CSR key curve 1\.3\.132\.0\.10 is not supported: use P-256, P-384 or P-521/],
    ['a compressed EC point', () => {
      const point = ecPoint(keys.p256);
      const compressed = Buffer.concat([Uint8Array.of(((point[64] as number) & 1) ? 0x03 : 0x02), point.subarray(1, 33)]);
      return buildCsr({ key: keys.p256, scheme: SCHEMES.ecdsaSha256, spki: ecSpki(compressed) });
    }, /P-256 public key must be an uncompressed point/],
    ['an EC point off the curve', () => buildCsr({ key: keys.p256, scheme: SCHEMES.ecdsaSha256, spki: ecSpki(Buffer.concat([Uint8Array.of(4), Buffer.alloc(64, 1)])) }), /public key cannot be decoded/],
    ['explicit EC curve parameters', () => buildCsr({ key: keys.p256, scheme: SCHEMES.ecdsaSha256, spki: encodeSequence(algorithm('1.2.840.10045.2.1', encodeSequence(encodeInteger(1))), encodeBitString(ecPoint(keys.p256))) }), /namedCurve OID/],
    ['an RSA 1024 key', () => buildCsr({ key: generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey, scheme: SCHEMES.rsaSha256 }), /CSR RSA key of 1024 bits is too short: at least 2048 bits are required/],
    ['an RSA key without NULL parameters', () => buildCsr({ key: keys.rsa2048, scheme: SCHEMES.rsaSha256, spki: encodeSequence(algorithm('1.2.840.113549.1.1.1'), encodeBitString(rsaPublicKey(keys.rsa2048))) }), /RSA key parameters is missing/],
    ['an RSA public exponent above 2^31-1', () => {
      const r = new DerReader(rsaPublicKey(keys.rsa2048), { code: 'ERR_INTERNAL', what: 'test' }).enter(TAG.SEQUENCE, 'RSAPublicKey');
      const hugeExponent = encodeSequence(encodeTlv(TAG.INTEGER, r.integer('n')), encodeInteger(2n ** 40n + 1n));
      return buildCsr({ key: keys.rsa2048, scheme: SCHEMES.rsaSha256, spki: encodeSequence(algorithm('1.2.840.113549.1.1.1', encodeNull()), encodeBitString(hugeExponent)) });
    }, /RSA public exponent is larger than 2\^31-1/],
    ['an Ed448 key', () => buildCsr({ key: generateKeyPairSync('ed448').privateKey, scheme: { algorithm: algorithm('1.3.101.113'), sign: (d, k) => sign(null, d, k) } }), /CSR key algorithm Ed448 is not supported/],
    ['an Ed25519 key with parameters', () => {
      const spki = spkiOf(keys.ed25519);
      return buildCsr({ key: keys.ed25519, scheme: SCHEMES.ed25519, spki: encodeSequence(algorithm('1.3.101.112', encodeNull()), encodeBitString(spki.subarray(spki.length - 32))) });
    }, /RFC 8410 forbids parameters/],
    ['ecdsa-with-SHA1', () => buildCsr({ key: keys.p256, scheme: ecdsa('sha1', '1.2.840.10045.4.1') }), /CSR signature algorithm 1\.2\.840\.10045\.4\.1 is not supported/],
    ['sha1WithRSAEncryption', () => buildCsr({ key: keys.rsa2048, scheme: pkcs1('sha1', '1.2.840.113549.1.1.5') }), /CSR signature algorithm 1\.2\.840\.113549\.1\.1\.5 is not supported/],
    ['an RSA signature algorithm on an EC key', () => buildCsr({ key: keys.p256, scheme: { algorithm: SCHEMES.rsaSha256.algorithm, sign: SCHEMES.ecdsaSha256.sign } }), /sha256WithRSAEncryption does not fit its ec key/],
    ['ECDSA with NULL parameters', () => buildCsr({ key: keys.p256, scheme: { algorithm: algorithm('1.2.840.10045.4.3.2', encodeNull()), sign: SCHEMES.ecdsaSha256.sign } }), /ecdsa-with-SHA256 algorithm \(unexpected parameters\)/],
    ['RSASSA-PSS with its SHA-1 defaults', () => buildCsr({ key: keys.rsa2048, scheme: { algorithm: algorithm('1.2.840.113549.1.1.10', encodeSequence()), sign: SCHEMES.pssSha256.sign } }), /RSASSA-PSS hash sha1 is not supported/],
    ['RSASSA-PSS with a different MGF1 hash', () => buildCsr({ key: keys.rsa2048, scheme: { algorithm: algorithm('1.2.840.113549.1.1.10', pssParams('sha256', 32, 'sha384')), sign: SCHEMES.pssSha256.sign } }), /MGF1 hash sha384 differs from its message hash sha256/],
    ['RSASSA-PSS on an Ed25519 key', () => buildCsr({ key: keys.ed25519, scheme: { algorithm: SCHEMES.pssSha256.algorithm, sign: SCHEMES.ed25519.sign } }), /RSASSA-PSS does not fit its ed25519 key/],
    ['PKCS#1 v1.5 on an RSASSA-PSS key', () => buildCsr({ key: keys.rsaPss, scheme: { algorithm: SCHEMES.rsaSha256.algorithm, sign: SCHEMES.pssSha256.sign } }), /does not fit its rsa-pss key/],
    ['version 2', () => buildCsr({ key: keys.p256, scheme: SCHEMES.ecdsaSha256, version: 1 }), /version must be 0 \(v1\)/],
    ['a signature by another key', () => buildCsr({ key: keys.p256, scheme: SCHEMES.ecdsaSha256, signature: (d) => encodeBitString(sign('sha256', d, otherP256)) }), /CSR signature does not verify with its public key/],
    ['an ECDSA signature in raw r||s form instead of DER', () => buildCsr({ key: keys.p256, scheme: SCHEMES.ecdsaSha256, signature: (d) => encodeBitString(sign('sha256', d, { key: keys.p256, dsaEncoding: 'ieee-p1363' })) }), /does not verify/],
    ['a PSS signature with another salt length than declared', () => buildCsr({ key: keys.rsa2048, scheme: { algorithm: SCHEMES.pssSha256.algorithm, sign: pss('sha256', 20).sign } }), /does not verify/],
    ['a signature BIT STRING with unused bits', () => buildCsr({ key: keys.p256, scheme: SCHEMES.ecdsaSha256, signature: () => encodeTlv(TAG.BIT_STRING, Uint8Array.of(1, 0x30, 0x00)) }), /signature at offset \d+ has 1 unused bits/],
    ['a trailing byte after the request', () => Buffer.concat([buildCsr({ key: keys.p256, scheme: SCHEMES.ecdsaSha256 }), Uint8Array.of(0)]), /unexpected data at offset \d+ after the last element of CertificationRequest/],
    ['an indefinite length', () => {
      const der = buildCsr({ key: keys.p256, scheme: SCHEMES.ecdsaSha256 });
      return Buffer.concat([Uint8Array.of(0x30, 0x80), der.subarray(2), Uint8Array.of(0, 0)]);
    }, /indefinite length, which DER forbids/],
    ['a non-minimal length', () => {
      const der = buildCsr({ key: keys.p256, scheme: SCHEMES.ecdsaSha256 });
      return Buffer.concat([Uint8Array.of(0x30, 0x82, 0x00, der[2] as number), der.subarray(3)]);
    }, /leading zero octets, which DER forbids/],
    ['attributes nested 500 deep', () => buildCsr({ key: keys.p256, scheme: SCHEMES.ecdsaSha256, attributes: encodeImplicit(0, encodeSet(nested(500))) }), /nested deeper than 32 levels/],
    ['a certificate', () => Buffer.from(ca.certificate.raw), /version at offset \d+ should have tag 0x02, found 0xa0/],
    ['an empty DER input', () => new Uint8Array(0), /CSR is empty/],
    ['an oversized DER input', () => new Uint8Array(16 * 1024 + 1), /exceeds 16384 bytes/],
  ];
  for (const [name, make, message] of refused) {
    it(`refuses ${name}`, async () => {
      const der = make();
      await assert.rejects(issueX509Svid(ca, { csr: der, spiffeId: ID, ttlSeconds: 60 }), refusedWith('ERR_CSR_INVALID', message));
      await assert.rejects(parseCsr(der), refusedWith('ERR_CSR_INVALID', message));
    });
  }

  it('leaves the CA key unused when the CSR is refused (the proof of possession comes first)', async () => {
    const fresh = await testCa();
    // A CA whose key cannot sign: issuance would fail with ERR_KEY_INVALID if it got that far.
    const unusable = { ...fresh, privateKey: generateKeyPairSync('ed25519').privateKey };
    const forged = buildCsr({ key: keys.p256, scheme: SCHEMES.ecdsaSha256, signature: (d) => encodeBitString(sign('sha256', d, otherP256)) });
    await assert.rejects(issueX509Svid(unusable, { csr: forged, spiffeId: ID, ttlSeconds: 60 }), refusedWith('ERR_CSR_INVALID', /does not verify/));
  });
});

describe('hostile CSR input', () => {
  const valid = [
    buildCsr({ key: keys.p256, scheme: SCHEMES.ecdsaSha256 }),
    buildCsr({ key: keys.rsa2048, scheme: SCHEMES.pssSha256 }),
    buildCsr({ key: keys.ed25519, scheme: SCHEMES.ed25519 }),
  ];
  const rejectsCsr = async (csr: string | Uint8Array) => {
    try {
      await issueX509Svid(ca, { csr, spiffeId: ID, ttlSeconds: 60 });
    } catch (err) {
      assert.ok(isMandateError(err) && (err.code === 'ERR_CSR_INVALID' || err.code === 'ERR_PEM_INVALID'), `unexpected ${String(err)}`);
      return;
    }
    assert.fail(`accepted ${typeof csr === 'string' ? csr : Buffer.from(csr).toString('hex')}`);
  };

  it('refuses random bytes, as DER and as PEM, with a MandateError only', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 2048 }), async (bytes) => {
      await rejectsCsr(bytes);
      await rejectsCsr(encodePem('CERTIFICATE REQUEST', bytes));
    }), { numRuns: 500 });
  });

  it('refuses random text with a MandateError only', async () => {
    await fc.assert(fc.asyncProperty(fc.string({ maxLength: 600 }), async (text) => rejectsCsr(text)), { numRuns: 300 });
  });

  it('refuses random DER trees with a MandateError only', async () => {
    const { tree } = fc.letrec<{ tree: Uint8Array }>((tie) => ({
      tree: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.tuple(fc.constantFrom(0x02, 0x03, 0x04, 0x05, 0x06, 0x13), fc.uint8Array({ maxLength: 40 })).map(([tag, content]) => encodeTlv(tag, content)),
        fc.tuple(fc.constantFrom(0x30, 0x31, 0xa0, 0xa3), fc.array(tie('tree'), { maxLength: 4 })).map(([tag, items]) => encodeTlv(tag, items)),
      ),
    }));
    await fc.assert(fc.asyncProperty(tree, async (der) => rejectsCsr(der)), { numRuns: 500 });
  });

  it('refuses mutated valid CSRs with a MandateError only', async () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
    );
    await fc.assert(fc.asyncProperty(fc.constantFrom(...valid), mutation, async (original, m) => {
      let der = Buffer.from(original);
      if (m.kind === 'flip') for (const [at, xor] of m.edits) der[at % der.length] = (der[at % der.length] as number) ^ xor;
      else if (m.kind === 'truncate') der = der.subarray(0, m.at % der.length);
      else der = Buffer.concat([der.subarray(0, m.at % der.length), m.bytes, der.subarray(m.at % der.length)]);
      if (der.equals(original)) return;
      await rejectsCsr(der);
    }), { numRuns: 600 });
  });
});
