import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isMandateError } from '../../errors.ts';
import { TrustBundleSet } from '../bundle/set.ts';
import { parseSpiffeId } from '../spiffe-id/parse.ts';
import { x509 } from '../x509/crypto.ts';
import { certificatesToPem } from '../x509/pem.ts';
import { VECTORS } from '../../../test/support/paths.ts';
import { keyAndCsr, testCa } from '../../../test/support/pki.ts';
import { issueX509Svid } from './issue.ts';
import { parseX509Svid } from './parse.ts';
import { verifyX509Svid } from './verify.ts';

const dir = join(VECTORS, 'spiffe/x509svid');
const read = (name: string) => readFileSync(join(dir, name), 'utf8');
const ID = parseSpiffeId('spiffe://example.org/agent/triage-bot');

describe('X.509-SVID vectors (go-spiffe test data)', () => {
  const accepted: Array<[string, string | undefined, string, number]> = [
    ['good-leaf-only.pem', 'key-pkcs8-rsa.pem', 'spiffe://example.org/workload-1', 1],
    ['good-leaf-and-intermediate.pem', 'key-pkcs8-ecdsa.pem', 'spiffe://example.org/workload-1', 2],
    ['good-cert-and-key.pem', undefined, 'spiffe://example.org/workload-1', 1],
    ['good-key-and-cert.pem', undefined, 'spiffe://example.org/workload-1', 1],
  ];
  for (const [certs, key, id, length] of accepted) {
    it(`accepts ${certs}`, () => {
      const svid = parseX509Svid(read(certs), key ? read(key) : undefined);
      assert.equal(svid.spiffeId.toString(), id);
      assert.equal(svid.chain.length, length);
      assert.ok(svid.privateKey);
    });
  }

  const rejected: Array<[string, string | undefined, string, RegExp]> = [
    ['wrong-leaf-ca-true.pem', undefined, 'ERR_X509_SVID_INVALID', /CA flag/],
    ['wrong-leaf-cert-sign.pem', undefined, 'ERR_X509_SVID_INVALID', /keyCertSign/],
    ['wrong-leaf-crl-sign.pem', undefined, 'ERR_X509_SVID_INVALID', /cRLSign/],
    ['wrong-leaf-no-digital-signature.pem', undefined, 'ERR_X509_SVID_INVALID', /digitalSignature/],
    ['wrong-leaf-empty-id.pem', undefined, 'ERR_X509_SVID_INVALID', /no URI SAN|SPIFFE ID/],
    ['wrong-intermediate-no-ca.pem', undefined, 'ERR_X509_CHAIN_INVALID', /CA flag/],
    ['wrong-intermediate-no-key-cert-sign.pem', undefined, 'ERR_X509_CHAIN_INVALID', /keyCertSign/],
    ['corrupt-cert.pem', undefined, 'ERR_PEM_INVALID', /./],
    ['not-pem', undefined, 'ERR_PEM_INVALID', /no PEM block/],
    ['good-leaf-and-intermediate.pem', 'key-pkcs8-rsa.pem', 'ERR_KEY_MISMATCH', /does not match/],
  ];
  for (const [certs, key, code, message] of rejected) {
    it(`rejects ${certs}${key ? ` with ${key}` : ''}: ${code}`, () => {
      assert.throws(() => parseX509Svid(read(certs), key ? read(key) : undefined), (err) => isMandateError(err) && err.code === code && message.test(err.message));
    });
  }

  it('rejects corrupt-key.pem with a parse error', () => {
    assert.throws(() => parseX509Svid(read('good-leaf-only.pem'), read('corrupt-key.pem')), (err) => isMandateError(err) && /KEY|PEM/.test(err.code));
  });
});

describe('X.509-SVID issuance', () => {
  it('issues exactly per X509-SVID.md from a CSR', async () => {
    const ca = await testCa();
    const { csrPem, privateKey } = await keyAndCsr();
    const svid = await issueX509Svid(ca, { csr: csrPem, spiffeId: ID, ttlSeconds: 3600 });
    const cert = new x509.X509Certificate(svid.certificate.raw);
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    assert.deepEqual(san?.names.items.map((n) => [n.type, n.value]), [['url', ID.toString()]]);
    const ku = cert.getExtension(x509.KeyUsagesExtension);
    assert.equal(ku?.critical, true);
    assert.equal(ku?.usages, x509.KeyUsageFlags.digitalSignature);
    const bc = cert.getExtension(x509.BasicConstraintsExtension);
    assert.equal(bc?.ca, false);
    const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
    assert.deepEqual([...(eku?.usages ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    // the workload's own key is in the certificate
    const svidWithKey = parseX509Svid(certificatesToPem(svid.chain), privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    assert.equal(svidWithKey.spiffeId.toString(), ID.toString());
    const bundles = new TrustBundleSet();
    bundles.set({ trustDomain: 'example.org', x509Authorities: ca.trustAnchors, jwtAuthorities: new Map() });
    assert.equal(verifyX509Svid(svid.chain, bundles).spiffeId.toString(), ID.toString());
  });

  it('ignores names requested in the CSR and caps the lifetime at the CA', async () => {
    const ca = await testCa('example.org', { ttlSeconds: 600 });
    const { csrPem } = await keyAndCsr();
    const svid = await issueX509Svid(ca, { csr: csrPem, spiffeId: ID, ttlSeconds: 86400 });
    assert.ok(svid.notAfter.getTime() <= new Date(ca.certificate.validTo).getTime());
  });

  const badCsrs: Array<[string, () => Promise<string> | string, RegExp]> = [
    ['empty', () => '', /empty/],
    ['not PEM', () => 'hello', /no PEM block/],
    ['a certificate instead of a CSR', async () => certificatesToPem([(await testCa()).certificate]), /CERTIFICATE REQUEST/],
    ['garbage DER', () => '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', /not a valid PKCS#10/],
    ['oversized', () => 'x'.repeat(20000), /exceeds/],
    ['RSA 1024', async () => (await keyAndCsr('rsa', 1024)).csrPem, /too short/],
    ['tampered signature', async () => {
      const { csrPem } = await keyAndCsr();
      const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
      der[der.length - 5] = (der[der.length - 5] as number) ^ 0xff;
      return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    }, /signature|not a valid/],
  ];
  for (const [name, make, message] of badCsrs) {
    it(`refuses a CSR that is ${name}`, async () => {
      const ca = await testCa();
      const csr = await make();
      await assert.rejects(issueX509Svid(ca, { csr, spiffeId: ID, ttlSeconds: 60 }), (err) => isMandateError(err) && /ERR_(CSR|PEM)_INVALID/.test(err.code) && message.test(err.message));
    });
  }
});

describe('X.509-SVID verification', () => {
  async function setup() {
    const ca = await testCa('example.org');
    const other = await testCa('partner.example');
    const bundles = new TrustBundleSet();
    bundles.set({ trustDomain: 'example.org', x509Authorities: ca.trustAnchors, jwtAuthorities: new Map() });
    bundles.set({ trustDomain: 'partner.example', x509Authorities: other.trustAnchors, jwtAuthorities: new Map() });
    const { csrPem } = await keyAndCsr();
    return { ca, other, bundles, csrPem };
  }

  it('uses only the bundle of the SVID’s own trust domain', async () => {
    const { other, bundles, csrPem } = await setup();
    // partner.example's CA signs an ID in example.org: must not verify with either bundle.
    const forged = await issueX509Svid(other, { csr: csrPem, spiffeId: ID, ttlSeconds: 60 });
    assert.throws(() => verifyX509Svid(forged.chain, bundles), (err) => isMandateError(err, 'ERR_X509_CHAIN_INVALID'));
  });

  it('refuses an unknown trust domain', async () => {
    const { ca, csrPem } = await setup();
    const svid = await issueX509Svid(ca, { csr: csrPem, spiffeId: ID, ttlSeconds: 60 });
    assert.throws(() => verifyX509Svid(svid.chain, new TrustBundleSet()), (err) => isMandateError(err, 'ERR_BUNDLE_UNKNOWN_TRUST_DOMAIN'));
  });

  it('refuses expired and not-yet-valid SVIDs', async () => {
    const { ca, bundles, csrPem } = await setup();
    const svid = await issueX509Svid(ca, { csr: csrPem, spiffeId: ID, ttlSeconds: 60 });
    assert.throws(() => verifyX509Svid(svid.chain, bundles, { now: new Date(Date.now() + 3600_000) }), /expired/);
    assert.throws(() => verifyX509Svid(svid.chain, bundles, { now: new Date(Date.now() - 3600_000) }), /not valid before/);
  });

  it('refuses an empty or overlong chain', async () => {
    const { ca, bundles, csrPem } = await setup();
    const svid = await issueX509Svid(ca, { csr: csrPem, spiffeId: ID, ttlSeconds: 60 });
    assert.throws(() => verifyX509Svid([], bundles), /no certificate/);
    assert.throws(() => verifyX509Svid(Array(11).fill(svid.certificate), bundles), /exceeds/);
  });
});

describe('interoperability', () => {
  it('openssl verify accepts an issued SVID and x509 -text shows the URI SAN', async (t) => {
    try {
      execFileSync('openssl', ['version']);
    } catch {
      t.skip('openssl is not installed');
      return;
    }
    const ca = await testCa();
    const { csrPem } = await keyAndCsr();
    const svid = await issueX509Svid(ca, { csr: csrPem, spiffeId: ID, ttlSeconds: 600 });
    const tmp = mkdtempSync(join(tmpdir(), 'mandate-openssl-'));
    writeFileSync(join(tmp, 'bundle.pem'), certificatesToPem(ca.trustAnchors));
    writeFileSync(join(tmp, 'svid.pem'), certificatesToPem([svid.certificate]));
    const out = execFileSync('openssl', ['verify', '-CAfile', join(tmp, 'bundle.pem'), join(tmp, 'svid.pem')], { encoding: 'utf8' });
    assert.match(out, /svid\.pem: OK/);
    const text = execFileSync('openssl', ['x509', '-in', join(tmp, 'svid.pem'), '-noout', '-text'], { encoding: 'utf8' });
    assert.match(text, new RegExp(`URI:${ID.toString().replace(/[/.]/g, '\\$&')}`));
    assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature\n/);
    assert.match(text, /CA:FALSE/);
    assert.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/);
  });
});
