import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { generateKeyPairSync, webcrypto, X509Certificate } from 'node:crypto';
import { x509 } from '../x509/crypto.ts';
import type { Bundle } from './bundle.ts';
import { parseJwtBundle, parseSpiffeBundle } from './parse.ts';
import { toJwksJson, toSpiffeBundleJson, x509AuthoritiesDer } from './serialize.ts';

const VECTORS = resolve(process.cwd(), '../shared/vectors/spiffe');
const TD = 'example.org';

function sameBundle(a: Bundle, b: Bundle): void {
  assert.equal(a.trustDomain, b.trustDomain);
  assert.deepEqual(a.x509Authorities.map((c) => c.raw.toString('base64')), b.x509Authorities.map((c) => c.raw.toString('base64')));
  assert.deepEqual([...a.jwtAuthorities].map(([k, v]) => [k, { ...v }]), [...b.jwtAuthorities].map(([k, v]) => [k, { ...v }]));
  assert.equal(a.sequence, b.sequence);
  assert.equal(a.refreshHint, b.refreshHint);
}

for (const name of ['spiffebundle_valid_1.json', 'spiffebundle_valid_2.json', 'spiffebundle_valid_with_wit.json']) {
  test(`round trip of vector ${name} through toSpiffeBundleJson`, () => {
    const original = parseSpiffeBundle(readFileSync(resolve(VECTORS, 'spiffebundle', name), 'utf8'), TD);
    const doc = toSpiffeBundleJson(original);
    sameBundle(parseSpiffeBundle(JSON.stringify(doc), TD), original);
  });
}

test('x509-svid entries: use, kty and key parameters of the certificate, x5c with one DER certificate, no kid', () => {
  const text = readFileSync(resolve(VECTORS, 'spiffebundle', 'spiffebundle_valid_2.json'), 'utf8');
  const source = JSON.parse(text) as { keys: Record<string, unknown>[] };
  const doc = toSpiffeBundleJson(parseSpiffeBundle(text, TD));
  const entry = doc.keys[0]!;
  assert.equal(entry.use, 'x509-svid');
  assert.equal(entry.kid, undefined);
  assert.deepEqual({ kty: entry.kty, crv: entry.crv, x: entry.x, y: entry.y, x5c: entry.x5c }, { kty: 'EC', crv: 'P-384', x: source.keys[0]!.x, y: source.keys[0]!.y, x5c: source.keys[0]!.x5c });
  assert.equal(doc.spiffe_sequence, 1);
  assert.equal(doc.spiffe_refresh_hint, 60);
  for (const jwt of doc.keys.slice(1)) {
    assert.equal(jwt.use, 'jwt-svid');
    assert.equal(typeof jwt.kid, 'string');
    assert.equal(jwt.d, undefined);
  }
});

test('a bundle without sequence or hint serialises without them', () => {
  const doc = toSpiffeBundleJson({ trustDomain: TD, x509Authorities: [], jwtAuthorities: new Map() });
  assert.deepEqual(doc, { keys: [] });
});

test('toJwksJson carries only JWT keys and round-trips through parseJwtBundle', () => {
  const original = parseSpiffeBundle(readFileSync(resolve(VECTORS, 'spiffebundle', 'spiffebundle_valid_2.json'), 'utf8'), TD);
  const jwks = toJwksJson(original);
  assert.equal(jwks.keys.length, 6);
  assert.ok(jwks.keys.every((k) => k.x5c === undefined && k.use === 'jwt-svid'));
  const back = parseJwtBundle(JSON.stringify(jwks), TD);
  assert.deepEqual([...back.jwtAuthorities.keys()], [...original.jwtAuthorities.keys()]);
  assert.equal(back.x509Authorities.length, 0);
});

test('x509AuthoritiesDer concatenates the DER certificates in order; RSA CA and RSA JWT key round-trip', async () => {
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const keys = (await crypto.subtle.generateKey(alg, false, ['sign', 'verify'])) as CryptoKeyPair;
  const generated = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '02', name: 'CN=rsa CA', notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), signingAlgorithm: alg, keys,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const rsaCa = new X509Certificate(Buffer.from(generated.rawData));
  const vector = parseSpiffeBundle(readFileSync(resolve(VECTORS, 'spiffebundle', 'spiffebundle_valid_1.json'), 'utf8'), TD);
  const jwk = { ...generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' }), kid: 'rsa-1', use: 'jwt-svid', alg: 'PS256' };
  const bundle: Bundle = { trustDomain: TD, x509Authorities: [vector.x509Authorities[0]!, rsaCa], jwtAuthorities: new Map([['rsa-1', jwk]]), sequence: 0, refreshHint: 0 };

  const der = x509AuthoritiesDer(bundle);
  assert.deepEqual(der, Buffer.concat([vector.x509Authorities[0]!.raw, rsaCa.raw]));

  const back = parseSpiffeBundle(JSON.stringify(toSpiffeBundleJson(bundle)), TD);
  sameBundle(back, bundle);
  assert.equal(back.x509Authorities[1]!.subject, 'CN=rsa CA');
});

test('x509AuthoritiesDer of a bundle without X.509 authorities is empty', () => {
  assert.equal(x509AuthoritiesDer({ trustDomain: TD, x509Authorities: [], jwtAuthorities: new Map() }).length, 0);
});

test('JWT authorities are published with public members only, even if a private JWK was put in the bundle', () => {
  const full = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const bundle: Bundle = { trustDomain: TD, x509Authorities: [], jwtAuthorities: new Map([['k', { ...full, kid: 'k', ext: true }]]) };
  for (const doc of [toSpiffeBundleJson(bundle), toJwksJson(bundle)]) {
    assert.deepEqual(doc.keys, [{ kty: 'EC', crv: 'P-256', x: full.x, y: full.y, kid: 'k', use: 'jwt-svid' }]);
  }
});

test('a CA certificate with an RSA-PSS key (no JWK form) still serialises and round-trips', async () => {
  const { publicKey } = generateKeyPairSync('rsa-pss', { modulusLength: 2048 });
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const signer = (await webcrypto.subtle.generateKey(alg, false, ['sign', 'verify'])) as CryptoKeyPair;
  const generated = await x509.X509CertificateGenerator.create({
    serialNumber: '03', subject: 'CN=pss CA', issuer: 'CN=pss CA', notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: alg, signingKey: signer.privateKey, publicKey: new x509.PublicKey(publicKey.export({ type: 'spki', format: 'der' })),
  });
  const cert = new X509Certificate(Buffer.from(generated.rawData));
  assert.equal(cert.publicKey.asymmetricKeyType, 'rsa-pss');
  const bundle: Bundle = { trustDomain: TD, x509Authorities: [cert], jwtAuthorities: new Map() };
  const doc = toSpiffeBundleJson(bundle);
  assert.deepEqual(doc.keys, [{ use: 'x509-svid', kty: 'RSA', x5c: [cert.raw.toString('base64')] }]);
  sameBundle(parseSpiffeBundle(JSON.stringify(doc), TD), bundle);
});
