/**
 * The certificate side of issuance, cross-checked against three independent readers: node:crypto,
 * @peculiar/x509 (which wrote these certificates before the DER writer did) and OpenSSL.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate, createHash, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isMandateError } from '../../errors.ts';
import { signingCa, type SigningCa } from '../ca/authority-key.ts';
import { generateRootCa } from '../ca/generate.ts';
import { generateKeyPair, toCryptoKeys, type CaKeyType } from '../ca/key-algorithms.ts';
import { parseSpiffeId } from '../spiffe-id/parse.ts';
import { DerReader, TAG, contextTag } from '../x509/der.ts';
import { x509 } from '../x509/crypto.ts';
import { certificatesToPem } from '../x509/pem.ts';
import { keyAndCsr, testCa } from '../../../test/support/pki.ts';
import { issueX509Svid } from './issue.ts';

const ID = parseSpiffeId('spiffe://example.org/agent/triage-bot');

function opensslAvailable(): boolean {
  try {
    execFileSync('openssl', ['version']);
    return true;
  } catch {
    return false;
  }
}
const OPENSSL = opensslAvailable();
const tmp = mkdtempSync(join(tmpdir(), 'mandate-issue-'));
let files = 0;

function pemFile(certs: readonly X509Certificate[]): string {
  const file = join(tmp, `${files++}.pem`);
  writeFileSync(file, certificatesToPem(certs));
  return file;
}

/** `openssl verify` of a leaf against the CA's anchors; returns OpenSSL's own words. */
function opensslVerify(ca: SigningCa, leaf: X509Certificate, atTime?: Date): string {
  const args = ['verify', '-CAfile', pemFile(ca.trustAnchors), ...(atTime ? ['-attime', String(Math.floor(atTime.getTime() / 1000))] : []), pemFile([leaf])];
  const run = spawnSync('openssl', args, { encoding: 'utf8' });
  return `${run.stdout}${run.stderr}`.trim();
}

function opensslText(cert: X509Certificate): string {
  return execFileSync('openssl', ['x509', '-in', pemFile([cert]), '-noout', '-text'], { encoding: 'utf8' });
}

/** Everything but what differs by design between two issuances: serial, validity, signature value. */
function comparableText(text: string): string[] {
  const lines = text.split('\n');
  const out: string[] = [];
  let skipIndented = 0;
  for (const line of lines) {
    const indent = line.length - line.trimStart().length;
    if (skipIndented && indent > skipIndented) continue;
    skipIndented = 0;
    if (/^\s+(Serial Number|Signature Value):/.test(line)) {
      if (!/:\s*\S/.test(line.replace(/^\s+(Serial Number|Signature Value):/, ':'))) skipIndented = indent;
      continue;
    }
    if (/^\s+(Not Before|Not After)\s*:/.test(line)) continue;
    out.push(line);
  }
  return out;
}

/** What issuance looked like with @peculiar/x509's generator: the reference for the DER writer. */
async function issueWithPeculiar(ca: SigningCa, csrPem: string): Promise<X509Certificate> {
  const request = new x509.Pkcs10CertificateRequest(csrPem);
  const publicKey = await request.publicKey.export();
  const caKeys = await toCryptoKeys(ca.privateKey);
  const now = new Date();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '01',
    subject: 'O=SPIFFE',
    issuer: new x509.X509Certificate(ca.certificate.raw).subjectName,
    notBefore: now,
    notAfter: new Date(now.getTime() + 600_000),
    signingAlgorithm: caKeys.signAlg,
    publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], false),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: ID.toString() }], false),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return new X509Certificate(Buffer.from(cert.rawData));
}

async function caOfType(keyType: CaKeyType): Promise<SigningCa> {
  const { certificate, privateKey } = await generateRootCa({ trustDomain: 'example.org', keyType, ttlSeconds: 86400 });
  return signingCa(`ca-${keyType}`, certificate, [], [certificate], privateKey);
}

/** A self-signed CA whose subject key identifier is chosen by the test (or left out). */
async function caWithSubjectKeyId(keyId: Uint8Array | null): Promise<{ ca: SigningCa; caKey: KeyObject }> {
  const { privateKey } = generateKeyPair('ec-p256');
  const keys = await toCryptoKeys(privateKey);
  const name = `CN=SKI test CA, O=example.org, OU=${randomBytes(4).toString('hex')}`;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: name,
    issuer: name,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 86_400_000),
    signingAlgorithm: keys.signAlg,
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://example.org' }]),
      ...(keyId ? [new x509.SubjectKeyIdentifierExtension(Buffer.from(keyId).toString('hex'))] : []),
    ],
  });
  const certificate = new X509Certificate(Buffer.from(cert.rawData));
  return { ca: await signingCa('ski-test', certificate, [], [certificate], privateKey), caKey: privateKey };
}

/** The DER pieces of a certificate that name chaining and key identifiers depend on. */
function certificateParts(cert: X509Certificate): { issuer: Buffer; subject: Buffer; subjectPublicKey: Buffer } {
  const r = new DerReader(cert.raw, { code: 'ERR_INTERNAL', what: 'test certificate' });
  const tbs = r.enter(TAG.SEQUENCE, 'Certificate').enter(TAG.SEQUENCE, 'tbsCertificate');
  tbs.optional(contextTag(0, true), 'version');
  tbs.integer('serialNumber');
  tbs.read(TAG.SEQUENCE, 'signature');
  const issuer = Buffer.from(tbs.whole(tbs.read(TAG.SEQUENCE, 'issuer')));
  tbs.read(TAG.SEQUENCE, 'validity');
  const subject = Buffer.from(tbs.whole(tbs.read(TAG.SEQUENCE, 'subject')));
  const spki = tbs.enter(TAG.SEQUENCE, 'subjectPublicKeyInfo');
  spki.read(TAG.SEQUENCE, 'algorithm');
  return { issuer, subject, subjectPublicKey: Buffer.from(spki.octetAlignedBitString('subjectPublicKey')) };
}

const sha1 = (bytes: Uint8Array) => createHash('sha1').update(bytes).digest('hex');

describe('issued X.509-SVIDs, read back', () => {
  it('carry exactly the profile, as @peculiar/x509 reads it', async () => {
    const ca = await testCa();
    const { csrPem } = await keyAndCsr();
    const now = new Date('2030-05-06T07:08:09.765Z');
    const caAtThatTime = await (async () => {
      const { certificate, privateKey } = await generateRootCa({ trustDomain: 'example.org', keyType: 'ec-p256', ttlSeconds: 86400, now });
      return signingCa('at-time', certificate, [], [certificate], privateKey);
    })();
    const svid = await issueX509Svid(caAtThatTime, { csr: csrPem, spiffeId: ID, ttlSeconds: 3600, now });
    const cert = new x509.X509Certificate(svid.certificate.raw);
    assert.equal(cert.serialNumber.toLowerCase(), svid.serialNumber);
    assert.match(svid.serialNumber, /^[0-7][0-9a-f]{31}$/, '128-bit positive serial');
    assert.equal(cert.notBefore.toISOString(), '2030-05-06T07:07:59.000Z', 'backdated 10 s, whole seconds');
    assert.equal(cert.notAfter.toISOString(), '2030-05-06T08:08:09.000Z');
    assert.equal(svid.notAfter.toISOString(), cert.notAfter.toISOString(), 'the reported notAfter is the certificate’s');
    assert.equal(new Date(svid.certificate.validTo).getTime(), svid.notAfter.getTime());
    assert.equal(cert.subject, 'O=SPIFFE');
    assert.equal(cert.issuer, new x509.X509Certificate(caAtThatTime.certificate.raw).subject);
    assert.deepEqual(Array.from(cert.extensions, (e) => [e.type, e.critical]), [
      ['2.5.29.19', true], ['2.5.29.15', true], ['2.5.29.37', false], ['2.5.29.17', false], ['2.5.29.14', false], ['2.5.29.35', false],
    ]);
    const leaf = certificateParts(svid.certificate);
    const issuer = certificateParts(caAtThatTime.certificate);
    assert.ok(leaf.issuer.equals(issuer.subject), 'issuer copied byte for byte from the CA subject');
    assert.equal(cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId, sha1(leaf.subjectPublicKey), 'SKI is RFC 5280 method 1');
    const caSki = new x509.X509Certificate(caAtThatTime.certificate.raw).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    assert.equal(cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, caSki);
    assert.equal(await cert.verify({ publicKey: new x509.X509Certificate(caAtThatTime.certificate.raw).publicKey, signatureOnly: true }), true);
    // unrelated CA from the shared fixture: not the issuer
    assert.equal(svid.certificate.checkIssued(ca.certificate), false);
    assert.equal(svid.certificate.checkIssued(caAtThatTime.certificate), true);
  });

  it('gives every certificate its own serial number', async () => {
    const ca = await testCa();
    const { csrPem } = await keyAndCsr();
    const serials = new Set<string>();
    for (let i = 0; i < 50; i++) serials.add((await issueX509Svid(ca, { csr: csrPem, spiffeId: ID, ttlSeconds: 60 })).serialNumber);
    assert.equal(serials.size, 50);
  });

  for (const [keyType, algorithm] of [['ec-p256', 'ecdsa-with-SHA256'], ['ec-p384', 'ecdsa-with-SHA384'], ['rsa-2048', 'sha256WithRSAEncryption']] as const) {
    it(`are signed with ${algorithm} by a ${keyType} CA, and OpenSSL and node:crypto verify them`, async (t) => {
      const ca = await caOfType(keyType);
      const { csrPem } = await keyAndCsr();
      const svid = await issueX509Svid(ca, { csr: csrPem, spiffeId: ID, ttlSeconds: 600 });
      assert.ok(svid.certificate.verify(ca.certificate.publicKey));
      assert.ok(svid.certificate.checkIssued(ca.certificate));
      if (!OPENSSL) return t.skip('openssl is not installed');
      assert.match(opensslVerify(ca, svid.certificate), /: OK$/);
      assert.match(opensslText(svid.certificate), new RegExp(`Signature Algorithm: ${algorithm}\\n`));
    });
  }

  it('show the same openssl x509 -text as certificates from @peculiar/x509’s generator', async (t) => {
    if (!OPENSSL) return t.skip('openssl is not installed');
    for (const keyType of ['ec-p256', 'rsa-2048'] as const) {
      const ca = await caOfType(keyType);
      for (const workload of ['ec', 'rsa'] as const) {
        const { csrPem } = await keyAndCsr(workload);
        const ours = opensslText((await issueX509Svid(ca, { csr: csrPem, spiffeId: ID, ttlSeconds: 600 })).certificate);
        const reference = opensslText(await issueWithPeculiar(ca, csrPem));
        assert.match(ours, /X509v3 extensions:/);
        assert.deepEqual(comparableText(ours), comparableText(reference), `${keyType} CA, ${workload} workload key`);
        const extensions = (text: string) => text.slice(text.indexOf('X509v3 extensions:'), text.lastIndexOf('Signature Algorithm:'));
        assert.equal(extensions(ours), extensions(reference));
      }
    }
  });
});

describe('authority key identifier', () => {
  it('names a CA subject key identifier that is not a SHA-1 of the key, as OpenSSL chaining requires', async (t) => {
    const keyId = randomBytes(8);
    const { ca } = await caWithSubjectKeyId(keyId);
    const { csrPem } = await keyAndCsr();
    const svid = await issueX509Svid(ca, { csr: csrPem, spiffeId: ID, ttlSeconds: 600 });
    assert.equal(new x509.X509Certificate(svid.certificate.raw).getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, keyId.toString('hex'));
    if (!OPENSSL) return t.skip('openssl is not installed');
    assert.match(opensslVerify(ca, svid.certificate), /: OK$/);
  });

  it('falls back to SHA-1 of the CA key (RFC 5280 §4.2.1.2 method 1) when the CA has no subject key identifier', async (t) => {
    const { ca } = await caWithSubjectKeyId(null);
    const { csrPem } = await keyAndCsr();
    const svid = await issueX509Svid(ca, { csr: csrPem, spiffeId: ID, ttlSeconds: 600 });
    const aki = new x509.X509Certificate(svid.certificate.raw).getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId;
    assert.equal(aki, sha1(certificateParts(ca.certificate).subjectPublicKey));
    if (!OPENSSL) return t.skip('openssl is not installed');
    assert.match(opensslVerify(ca, svid.certificate), /: OK$/);
  });
});

describe('validity encoding', () => {
  it('switches from UTCTime to GeneralizedTime in 2050 (RFC 5280 §4.1.2.5)', async (t) => {
    const now = new Date('2049-12-31T23:00:00Z');
    const { certificate, privateKey } = await generateRootCa({ trustDomain: 'example.org', keyType: 'ec-p256', ttlSeconds: 3 * 86400, now });
    const ca = await signingCa('y2050', certificate, [], [certificate], privateKey);
    const { csrPem } = await keyAndCsr();
    const svid = await issueX509Svid(ca, { csr: csrPem, spiffeId: ID, ttlSeconds: 7200, now });
    const cert = new x509.X509Certificate(svid.certificate.raw);
    assert.equal(cert.notBefore.toISOString(), '2049-12-31T22:59:50.000Z');
    assert.equal(cert.notAfter.toISOString(), '2050-01-01T01:00:00.000Z');
    assert.equal(svid.certificate.validTo, 'Jan  1 01:00:00 2050 GMT');
    const r = new DerReader(svid.certificate.raw, { code: 'ERR_INTERNAL', what: 'test certificate' });
    const tbs = r.enter(TAG.SEQUENCE, 'Certificate').enter(TAG.SEQUENCE, 'tbsCertificate');
    for (const field of ['version', 'serialNumber', 'signature', 'issuer']) tbs.next(field);
    const validity = tbs.enter(TAG.SEQUENCE, 'validity');
    assert.equal(validity.next('notBefore').tag, TAG.UTC_TIME);
    assert.equal(validity.next('notAfter').tag, TAG.GENERALIZED_TIME);
    if (!OPENSSL) return t.skip('openssl is not installed');
    assert.match(opensslVerify(ca, svid.certificate, new Date('2050-01-01T00:30:00Z')), /: OK$/);
  });

  it('refuses a lifetime under one second', async () => {
    const ca = await testCa();
    const { csrPem } = await keyAndCsr();
    for (const ttlSeconds of [0, -60, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await assert.rejects(issueX509Svid(ca, { csr: csrPem, spiffeId: ID, ttlSeconds }), (err) => isMandateError(err, 'ERR_BAD_REQUEST') && /ttlSeconds/.test(err.message));
    }
  });

  it('refuses to issue from a CA that has expired', async () => {
    const ca = await testCa('example.org', { ttlSeconds: 60 });
    const { csrPem } = await keyAndCsr();
    await assert.rejects(issueX509Svid(ca, { csr: csrPem, spiffeId: ID, ttlSeconds: 60, now: new Date(Date.now() + 3600_000) }), (err) => isMandateError(err, 'ERR_CA_UNAVAILABLE'));
  });
});
