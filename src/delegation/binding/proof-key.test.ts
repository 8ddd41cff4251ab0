import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { ProofKeyError, proofKey, verifyJwsSignature } from './proof-key.ts';

describe('DPoP proof keys', () => {
  const pairs = {
    ES256: generateKeyPairSync('ec', { namedCurve: 'P-256' }),
    ES384: generateKeyPairSync('ec', { namedCurve: 'P-384' }),
    RS256: generateKeyPairSync('rsa', { modulusLength: 2048 }),
    EdDSA: generateKeyPairSync('ed25519'),
  };

  for (const [alg, pair] of Object.entries(pairs)) {
    it(`${alg}: the thumbprint equals jose's RFC 7638 thumbprint, and the key is imported once`, async () => {
      const jwk = { ...pair.publicKey.export({ format: 'jwk' }), alg, use: 'sig' } as JWK;
      const first = proofKey(jwk);
      assert.equal(first.jkt, await calculateJwkThumbprint(jwk, 'sha256'));
      assert.equal(proofKey({ ...jwk, kid: 'other members do not matter' }), first);
    });
  }

  it('checks signatures per algorithm and refuses a changed input', async () => {
    const input = 'eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiIxIn0';
    const es = sign('sha256', Buffer.from(input), { key: pairs.ES256.privateKey, dsaEncoding: 'ieee-p1363' });
    const key = proofKey(pairs.ES256.publicKey.export({ format: 'jwk' }) as JWK).key;
    assert.equal(await verifyJwsSignature(input, es, 'ES256', key), true);
    assert.equal(await verifyJwsSignature(`${input}x`, es, 'ES256', key), false);
    assert.equal(await verifyJwsSignature(input, es, 'ES384', key), false);
    assert.equal(await verifyJwsSignature(input, es, 'HS256', key), false);
    const ed = sign(null, Buffer.from(input), pairs.EdDSA.privateKey);
    assert.equal(await verifyJwsSignature(input, ed, 'EdDSA', proofKey(pairs.EdDSA.publicKey.export({ format: 'jwk' }) as JWK).key), true);
  });

  it('refuses unusable keys, naming the problem', () => {
    const ec = pairs.ES256.publicKey.export({ format: 'jwk' }) as JWK;
    const cases: Array<[JWK, RegExp]> = [
      [{ kty: 'oct', k: 'AAAA' }, /kty oct is not supported/],
      [{ kty: 'EC', crv: 'P-256', x: ec.x }, /member "y"/],
      [{ ...ec, y: ec.x }, /./],
      [{ ...ec, x: 123 as unknown as string }, /member "x"/],
      [generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' }) as JWK, /1024 bits is too small/],
    ];
    for (const [jwk, message] of cases) assert.throws(() => proofKey(jwk), (err) => err instanceof ProofKeyError && message.test(err.message));
  });
});
