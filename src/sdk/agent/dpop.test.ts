import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, KeyObject, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compactVerify, decodeProtectedHeader, generateKeyPair, importJWK } from 'jose';
import { accessTokenHash, DpopSigner, DPOP_PROOF_TYPE, type DpopAlg } from './dpop.ts';

const here = dirname(fileURLToPath(import.meta.url));

function payloadOf(jws: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jws.split('.')[1] as string, 'base64url').toString('utf8')) as Record<string, unknown>;
}

test('the DPoP SDK modules import only jose, node: builtins and each other', () => {
  for (const file of ['dpop.ts', 'htu.ts']) {
    const code = readFileSync(join(here, file), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
    const specifiers = [...code.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gm)].map((m) => m[1] as string);
    assert.ok(specifiers.length > 0 || file === 'htu.ts', `found the imports of ${file}`);
    for (const s of specifiers) assert.ok(s === 'jose' || s.startsWith('node:') || s === './htu.ts', `${file} imports ${s}`);
  }
});

test('a proof has the RFC 9449 header and claims and verifies with the public jwk', async () => {
  const signer = await DpopSigner.generate();
  const before = Math.floor(Date.now() / 1000);
  const proof = await signer.proof('POST', 'https://Mandate.Example:443/oauth/token?x=1#f');
  const after = Math.floor(Date.now() / 1000);

  const header = decodeProtectedHeader(proof);
  assert.deepEqual(Object.keys(header).sort(), ['alg', 'jwk', 'typ']);
  assert.equal(header.typ, DPOP_PROOF_TYPE);
  assert.equal(header.alg, 'ES256');
  assert.deepEqual(header.jwk, signer.publicJwk);

  const claims = payloadOf(proof);
  assert.deepEqual(Object.keys(claims).sort(), ['htm', 'htu', 'iat', 'jti']);
  assert.equal(claims.htm, 'POST');
  assert.equal(claims.htu, 'https://mandate.example/oauth/token');
  assert.ok((claims.iat as number) >= before && (claims.iat as number) <= after);
  assert.equal(Buffer.from(claims.jti as string, 'base64url').length, 16);

  const { payload } = await compactVerify(proof, await importJWK(signer.publicJwk, 'ES256'));
  assert.deepEqual(JSON.parse(new TextDecoder().decode(payload)), claims);
});

test('ath and nonce are added when given; jti is fresh for every proof', async () => {
  const signer = await DpopSigner.generate('EdDSA');
  const claims = payloadOf(await signer.proof('GET', 'https://tools.example/mcp', { accessToken: 'Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU', nonce: 'n-1' }));
  assert.equal(claims.ath, 'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo'); // RFC 9449 §7.1
  assert.equal(claims.nonce, 'n-1');
  const jtis = new Set<unknown>();
  for (let i = 0; i < 20; i += 1) jtis.add(payloadOf(await signer.proof('GET', 'https://tools.example/mcp')).jti);
  assert.equal(jtis.size, 20);
});

test('accessTokenHash is base64url SHA-256 of the token', () => {
  assert.equal(accessTokenHash('Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU'), 'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo');
});

test('htm: the methods fetch upper-cases are upper-cased, others kept as given', async () => {
  const signer = await DpopSigner.generate();
  assert.equal(payloadOf(await signer.proof('post', 'https://a.example/')).htm, 'POST');
  assert.equal(payloadOf(await signer.proof('Delete', 'https://a.example/')).htm, 'DELETE');
  assert.equal(payloadOf(await signer.proof('patch', 'https://a.example/')).htm, 'patch');
  assert.equal(payloadOf(await signer.proof('PATCH', 'https://a.example/')).htm, 'PATCH');
});

test('jkt is the RFC 7638 thumbprint of the public key, computed by hand', async () => {
  const cases: Array<[DpopAlg, (jwk: Record<string, unknown>) => string]> = [
    ['ES256', (j) => `{"crv":"${j.crv}","kty":"EC","x":"${j.x}","y":"${j.y}"}`],
    ['RS256', (j) => `{"e":"${j.e}","kty":"RSA","n":"${j.n}"}`],
    ['EdDSA', (j) => `{"crv":"Ed25519","kty":"OKP","x":"${j.x}"}`],
  ];
  for (const [alg, canonical] of cases) {
    const signer = await DpopSigner.generate(alg);
    const jwk = signer.publicJwk as Record<string, unknown>;
    assert.equal(signer.jkt, createHash('sha256').update(canonical(jwk)).digest('base64url'), alg);
  }
});

test('publicJwk holds only public members and cannot be changed', async () => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signer = await DpopSigner.fromKey(privateKey, 'PS256');
  assert.deepEqual(Object.keys(signer.publicJwk).sort(), ['e', 'kty', 'n']);
  assert.ok(Object.isFrozen(signer.publicJwk));
  assert.throws(() => {
    (signer.publicJwk as Record<string, unknown>).d = 'x';
  });
});

test('fromKey takes a KeyObject or a CryptoKey, extractable or not', async () => {
  const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const fromKeyObject = await DpopSigner.fromKey(ec384.privateKey, 'ES384');
  const expected = ec384.publicKey.export({ format: 'jwk' });
  assert.deepEqual({ ...fromKeyObject.publicJwk }, { crv: expected.crv, kty: expected.kty, x: expected.x, y: expected.y });
  const proof = await fromKeyObject.proof('GET', 'https://a.example/');
  await compactVerify(proof, ec384.publicKey);

  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: false });
  const fromCryptoKey = await DpopSigner.fromKey(privateKey, 'ES256');
  await compactVerify(await fromCryptoKey.proof('GET', 'https://a.example/'), publicKey);

  const ed = await webcrypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  const fromEd = await DpopSigner.fromKey((ed as webcrypto.CryptoKeyPair).privateKey as CryptoKey, 'Ed25519');
  assert.equal(fromEd.jkt, (await DpopSigner.fromKey(KeyObject.from((ed as webcrypto.CryptoKeyPair).privateKey), 'Ed25519')).jkt);
});

test('fromKey refuses keys that cannot sign proofs for the alg', async () => {
  const ec256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const ed = generateKeyPairSync('ed25519');
  const verifyOnly = (await generateKeyPair('ES256')).publicKey;
  const bad: Array<[KeyObject | CryptoKey, string, RegExp]> = [
    [ec256.publicKey, 'ES256', /needs a private key, got a public key/],
    [ec256.privateKey, 'ES384', /alg ES384 needs curve secp384r1, got prime256v1/],
    [ec256.privateKey, 'RS256', /alg RS256 needs an RSA key, got ec/],
    [ed.privateKey, 'ES256', /alg ES256 needs an EC key, got ed25519/],
    [ec256.privateKey, 'EdDSA', /alg EdDSA needs an Ed25519 key, got ec/],
    [rsa1024.privateKey, 'RS256', /RSA key has 1024 bits, fewer than 2048/],
    [ec256.privateKey, 'HS256', /alg HS256 is not supported/],
    [ec256.privateKey, 'none', /alg none is not supported/],
    [verifyOnly, 'ES256', /not usable for signing/],
  ];
  for (const [key, alg, pattern] of bad) {
    await assert.rejects(DpopSigner.fromKey(key, alg as DpopAlg), (err: unknown) => err instanceof TypeError && pattern.test(err.message), `${alg}: ${pattern}`);
  }
  await assert.rejects(DpopSigner.generate('HS256' as DpopAlg), /alg HS256 is not supported/);
});

test('proof refuses a URL that is not http(s) and a method that is not a token', async () => {
  const signer = await DpopSigner.generate();
  await assert.rejects(signer.proof('GET', '/relative'), /DPoP proof URL is not an http\(s\) URI: it is not an absolute URI with a host/);
  await assert.rejects(signer.proof('GET', 'file:///etc/passwd'), /not an absolute URI with a host/);
  await assert.rejects(signer.proof('GET', 'ws://a.example/'), /scheme ws is not http or https/);
  await assert.rejects(signer.proof('GET /x', 'https://a.example/'), /"GET \/x" is not an HTTP method/);
  await assert.rejects(signer.proof('', 'https://a.example/'), /"" is not an HTTP method/);
});
