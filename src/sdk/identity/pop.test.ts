import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject, type X509Certificate } from 'node:crypto';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { generateRootCa } from '../../identity/ca/generate.ts';
import { signingCa } from '../../identity/ca/authority-key.ts';
import { issueX509Svid } from '../../identity/x509-svid/issue.ts';
import { parseSpiffeId } from '../../identity/spiffe-id/parse.ts';
import { isMandateError } from '../../errors.ts';
import { generateKeyAndCsr, type WorkloadKeyType } from './csr.ts';
import { signSvidPop, svidPopAlgorithm, svidPopBodyHash, SVID_POP_TYPE } from './pop.ts';

async function svid(keyType: WorkloadKeyType): Promise<{ chain: X509Certificate[]; privateKey: KeyObject }> {
  const root = await generateRootCa({ trustDomain: 'example.org', keyType: 'ec-p256', ttlSeconds: 3600 });
  const ca = await signingCa('root', root.certificate, [], [root.certificate], root.privateKey);
  const { privateKey, csrPem } = await generateKeyAndCsr(keyType);
  const issued = await issueX509Svid(ca, { csr: csrPem, spiffeId: parseSpiffeId('spiffe://example.org/agent/bot'), ttlSeconds: 600 });
  return { chain: issued.chain, privateKey };
}

function decodePayload(jws: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jws.split('.')[1] as string, 'base64url').toString('utf8')) as Record<string, unknown>;
}

test('SVID-PoP has the agreed header and payload and verifies with the leaf key', async () => {
  const current = await svid('ec-p256');
  const body = JSON.stringify({ csr: '-----BEGIN CERTIFICATE REQUEST-----\n...' });
  const now = new Date('2030-01-01T00:00:00Z');
  const jws = await signSvidPop(current, { htm: 'POST', htu: '/v1/svid/x509', body }, { now });

  const header = decodeProtectedHeader(jws);
  assert.deepEqual(Object.keys(header).sort(), ['alg', 'typ', 'x5c']);
  assert.equal(header.alg, 'ES256');
  assert.equal(header.typ, SVID_POP_TYPE);
  assert.deepEqual(header.x5c, current.chain.map((c) => c.raw.toString('base64')));

  const payload = decodePayload(jws);
  assert.deepEqual(Object.keys(payload).sort(), ['bh', 'exp', 'htm', 'htu', 'iat', 'jti']);
  assert.equal(payload.htm, 'POST');
  assert.equal(payload.htu, '/v1/svid/x509');
  assert.equal(payload.iat, Math.floor(now.getTime() / 1000));
  assert.equal(payload.exp, (payload.iat as number) + 60);
  assert.equal(Buffer.from(payload.jti as string, 'base64url').length, 16);
  assert.equal(payload.bh, createHash('sha256').update(body).digest('base64url'));

  const leaf = current.chain[0] as X509Certificate;
  const verified = await compactVerify(jws, leaf.publicKey);
  assert.equal(verified.protectedHeader.typ, SVID_POP_TYPE);
});

test('SVID-PoP does not verify with another key', async () => {
  const current = await svid('ec-p256');
  const jws = await signSvidPop(current, { htm: 'POST', htu: '/v1/svid/jwt', body: '{}' });
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
  await assert.rejects(compactVerify(jws, other));
});

test('bh binds the exact body bytes; jti is fresh per proof', async () => {
  const current = await svid('ec-p256');
  const a = decodePayload(await signSvidPop(current, { htm: 'POST', htu: '/v1/svid/jwt', body: '{"audience":["a"]}' }));
  const b = decodePayload(await signSvidPop(current, { htm: 'POST', htu: '/v1/svid/jwt', body: '{"audience": ["a"]}' }));
  assert.notEqual(a.bh, b.bh);
  assert.notEqual(a.jti, b.jti);
  assert.equal(svidPopBodyHash(new TextEncoder().encode('{"audience":["a"]}')), a.bh);
});

for (const [keyType, alg] of [['ec-p384', 'ES384'], ['rsa-2048', 'RS256'], ['ed25519', 'EdDSA']] as const) {
  test(`SVID-PoP with a ${keyType} key is signed with ${alg}`, async () => {
    const current = await svid(keyType);
    const jws = await signSvidPop(current, { htm: 'POST', htu: '/v1/svid/x509', body: '{}' });
    assert.equal(decodeProtectedHeader(jws).alg, alg);
    await compactVerify(jws, (current.chain[0] as X509Certificate).publicKey);
  });
}

test('keys that cannot sign an SVID-PoP are refused', async () => {
  const current = await svid('ec-p256');
  const x25519 = generateKeyPairSync('x25519').privateKey;
  assert.throws(() => svidPopAlgorithm(x25519), (err) => isMandateError(err, 'ERR_KEY_INVALID'));
  const publicOnly = createPublicKey(current.privateKey);
  await assert.rejects(signSvidPop({ chain: current.chain, privateKey: publicOnly }, { htm: 'POST', htu: '/x', body: '' }), (err) => isMandateError(err, 'ERR_KEY_INVALID'));
  await assert.rejects(signSvidPop({ chain: [], privateKey: current.privateKey }, { htm: 'POST', htu: '/x', body: '' }), (err) => isMandateError(err, 'ERR_X509_SVID_INVALID'));
});
