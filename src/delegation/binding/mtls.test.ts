import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { generateRootCa } from '../../identity/ca/generate.ts';
import { isOAuthError } from '../oauth/errors.ts';
import { certificateThumbprint, checkCertificateBinding, checkDpopBinding } from './mtls.ts';

/** A fixed self-signed P-256 certificate made with `openssl req -x509 -newkey ec ...`. */
const FIXTURE_PEM = `-----BEGIN CERTIFICATE-----
MIIBwTCCAWegAwIBAgIUBI3i0ZJ2A5NMngxGo6AdvUJ0nxQwCgYIKoZIzj0EAwIw
HDEaMBgGA1UEAwwRZHBvcC1tdGxzLWZpeHR1cmUwHhcNMjYxMTI0MDE0MjE2WhcN
MzYxMTIxMDE0MjE2WjAcMRowGAYDVQQDDBFkcG9wLW10bHMtZml4dHVyZTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABHZwS8hgHVOIhpZIoxbxjxaZAXMNZZWrW2In
G2wGHIvg678UlqI3skRe43J9ojiBog2AtA3ZQIV+sD7gWrjhN6+jgYYwgYMwHQYD
VR0OBBYEFEjL5IcgCHIDDlI4zIEx2VhZd3JqMB8GA1UdIwQYMBaAFEjL5IcgCHID
DlI4zIEx2VhZd3JqMA8GA1UdEwEB/wQFMAMBAf8wMAYDVR0RBCkwJ4Ylc3BpZmZl
Oi8vZXhhbXBsZS5vcmcvYWdlbnQvdHJpYWdlLWJvdDAKBggqhkjOPQQDAgNIADBF
AiAGm+W7OSaITsZIbhBbG3+rMkJrLAbU72MJrZQ6a9SA0gIhAK47nzEFSPYqXULJ
2tES2wCnuB0o/TjclBW++KtJ6Wra
-----END CERTIFICATE-----
`;

/**
 * Computed independently of this code:
 * `openssl x509 -in fixture.pem -outform der | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '='`
 */
const FIXTURE_X5T_S256 = 'j-azX1CM_BQ-WZdfRHk0nQUtAPhBelEDoWnInzazWPE';

const fixture = new X509Certificate(FIXTURE_PEM);

function opensslAvailable(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function refusedAsInvalidToken(pattern: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(isOAuthError(err, 'invalid_token'), `expected invalid_token, got ${String(err)}`);
    assert.equal(err.status, 401);
    assert.match(err.message, pattern);
    return true;
  };
}

test('x5t#S256 of a fixed certificate is the known value, from the certificate or its DER', () => {
  assert.equal(certificateThumbprint(fixture), FIXTURE_X5T_S256);
  assert.equal(certificateThumbprint(fixture.raw), FIXTURE_X5T_S256);
});

test('x5t#S256 agrees with openssl on the fixture and on a freshly made certificate', { skip: !opensslAvailable() && 'openssl is not installed' }, async () => {
  const viaOpenssl = (pem: string): string => {
    const der = execFileSync('openssl', ['x509', '-outform', 'der'], { input: pem });
    return execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: der }).toString('base64url');
  };
  assert.equal(viaOpenssl(FIXTURE_PEM), FIXTURE_X5T_S256);
  const { certificate } = await generateRootCa({ trustDomain: 'example.org', keyType: 'ec-p256', ttlSeconds: 600 });
  assert.equal(certificateThumbprint(certificate), viaOpenssl(certificate.toString()));
});

test('a certificate-bound token is accepted with its certificate only', async () => {
  const cnf = { 'x5t#S256': FIXTURE_X5T_S256 };
  checkCertificateBinding(cnf, fixture);
  const { certificate: other } = await generateRootCa({ trustDomain: 'example.org', keyType: 'ec-p256', ttlSeconds: 600 });
  assert.throws(() => checkCertificateBinding(cnf, other), refusedAsInvalidToken(/client certificate does not match the access token's cnf x5t#S256/));
  assert.throws(() => checkCertificateBinding(cnf, undefined), refusedAsInvalidToken(/bound to a client certificate, but the request was made without one/));
});

test('a token without a usable cnf x5t#S256 is not certificate-bound', () => {
  const notBound: unknown[] = [undefined, null, 'x5t', [FIXTURE_X5T_S256], {}, { jkt: FIXTURE_X5T_S256 }, { 'x5t#S256': 1 }, { 'x5t#S256': '' }, { x5t: FIXTURE_X5T_S256 }];
  for (const cnf of notBound) {
    assert.throws(() => checkCertificateBinding(cnf, fixture), refusedAsInvalidToken(/not bound to a client certificate \(no cnf x5t#S256\)/), JSON.stringify(cnf));
  }
});

test('a DPoP-bound token is accepted with its key thumbprint only', () => {
  const jkt = '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I';
  checkDpopBinding({ jkt }, jkt);
  assert.throws(() => checkDpopBinding({ jkt }, `${jkt.slice(0, -1)}J`), refusedAsInvalidToken(/DPoP proof key does not match the access token's cnf jkt/));
  assert.throws(() => checkDpopBinding({ jkt }, jkt.slice(1)), refusedAsInvalidToken(/does not match/));
  for (const cnf of [undefined, {}, { 'x5t#S256': jkt }, { jkt: 7 }, [jkt]]) {
    assert.throws(() => checkDpopBinding(cnf, jkt), refusedAsInvalidToken(/not DPoP-bound \(no cnf jkt\)/), JSON.stringify(cnf));
  }
});
