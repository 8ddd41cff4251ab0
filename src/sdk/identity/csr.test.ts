import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { parseCsr } from '../../identity/x509-svid/issue.ts';
import { isMandateError } from '../../errors.ts';
import { generateKeyAndCsr, WORKLOAD_KEY_TYPES, type WorkloadKeyType } from './csr.ts';

for (const keyType of WORKLOAD_KEY_TYPES) {
  test(`a ${keyType} CSR is accepted by the issuer and carries the workload's public key`, async () => {
    const { privateKey, csrPem } = await generateKeyAndCsr(keyType);
    assert.equal(privateKey.type, 'private');
    assert.match(csrPem, /^-----BEGIN CERTIFICATE REQUEST-----/);
    const request = await parseCsr(csrPem);
    assert.equal(request.subject, 'O=SPIFFE');
    const fromCsr = Buffer.from(request.publicKey.rawData);
    assert.ok(fromCsr.equals(createPublicKey(privateKey).export({ type: 'spki', format: 'der' })));
  });
}

test('each call makes a new key', async () => {
  const a = await generateKeyAndCsr();
  const b = await generateKeyAndCsr();
  assert.notDeepEqual(a.privateKey.export({ type: 'pkcs8', format: 'der' }), b.privateKey.export({ type: 'pkcs8', format: 'der' }));
});

test('an unknown key type is refused', async () => {
  await assert.rejects(generateKeyAndCsr('dsa-1024' as WorkloadKeyType), (err) => isMandateError(err, 'ERR_KEY_INVALID'));
});
