/**
 * Scenario: Mandate configured to trust a foreign trust domain (an Istio mesh, `cluster.local`) from a
 * bundle file and another from a bundle endpoint. Foreign SVIDs verify against their own domain's
 * bundle; the bundles are served apart and survive a restart of Mandate.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { toSpiffeBundleJson } from '../../src/identity/bundle/serialize.ts';
import { certificatesToPem } from '../../src/identity/x509/pem.ts';
import { issueX509Svid } from '../../src/identity/x509-svid/issue.ts';
import { parseSpiffeId } from '../../src/identity/spiffe-id/parse.ts';
import { keyAndCsr, testCa } from '../support/pki.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

describe('federation configured in mandate.yaml', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-fed-'));
  let m: TestMandate;
  let partnerServer: ReturnType<typeof createServer>;
  let istio: Awaited<ReturnType<typeof testCa>>;
  let partner: Awaited<ReturnType<typeof testCa>>;
  let yaml: string;

  before(async () => {
    istio = await testCa('cluster.local');
    partner = await testCa('partner.example');
    writeFileSync(join(dir, 'istio-bundle.json'), JSON.stringify(toSpiffeBundleJson({ trustDomain: 'cluster.local', x509Authorities: istio.trustAnchors, jwtAuthorities: new Map() })));
    const partnerBundle = JSON.stringify(toSpiffeBundleJson({ trustDomain: 'partner.example', x509Authorities: partner.trustAnchors, jwtAuthorities: new Map(), sequence: 7, refreshHint: 300 }));
    partnerServer = createServer((_req, res) => { res.setHeader('content-type', 'application/json'); res.end(partnerBundle); });
    await new Promise<void>((r) => partnerServer.listen(0, '127.0.0.1', () => r()));
    const port = (partnerServer.address() as AddressInfo).port;
    yaml = [
      'trust_domain: example.org',
      'federation:',
      '  trust_domains:',
      `    - { trust_domain: cluster.local, bundle_file: ${join(dir, 'istio-bundle.json')} }`,
      `    - { trust_domain: partner.example, bundle_url: "http://127.0.0.1:${port}/bundle" }`,
      '',
    ].join('\n');
    m = await startTestMandate({ yaml, dataDir: join(dir, 'data') });
  });
  after(async () => {
    await m?.close();
    partnerServer?.close();
  });

  it('serves each federated bundle under its own trust domain', async () => {
    const { body } = await m.call('GET', '/v1/bundles');
    assert.deepEqual(Object.keys(body.bundles).sort(), ['cluster.local', 'example.org', 'partner.example']);
    assert.equal(body.bundles['partner.example'].spiffe_sequence, 7);
    const listed = (await m.admin('GET', '/admin/v1/federation')).body.trust_domains;
    assert.deepEqual(listed.map((t: { trust_domain: string }) => t.trust_domain).sort(), ['cluster.local', 'partner.example']);
  });

  it('verifies an Istio SVID and refuses one that cluster.local’s CA signed for another domain', async () => {
    const { csrPem } = await keyAndCsr();
    const mesh = await issueX509Svid(istio, { csr: csrPem, spiffeId: parseSpiffeId('spiffe://cluster.local/ns/payments/sa/refunds'), ttlSeconds: 600 });
    const ok = await m.admin('POST', '/admin/v1/svids/verify', { x509_svid: certificatesToPem(mesh.chain) });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.spiffe_id, 'spiffe://cluster.local/ns/payments/sa/refunds');
    const forged = await issueX509Svid(istio, { csr: csrPem, spiffeId: parseSpiffeId('spiffe://partner.example/agent/x'), ttlSeconds: 600 });
    const refused = await m.admin('POST', '/admin/v1/svids/verify', { x509_svid: certificatesToPem(forged.chain) });
    assert.equal(refused.status, 401);
    assert.equal(refused.body.error, 'ERR_X509_CHAIN_INVALID');
  });

  it('keeps the last good endpoint bundle across a restart while the endpoint is down', async () => {
    await m.close();
    partnerServer.close();
    m = await startTestMandate({ yaml, dataDir: join(dir, 'data') });
    const { body } = await m.call('GET', '/v1/bundles');
    assert.equal(body.bundles['partner.example']?.spiffe_sequence, 7);
  });
});
