/**
 * Interoperability: two issued SVIDs complete mTLS with Node's TLS stack (OpenSSL) and each side
 * reads the other's SPIFFE ID; an Istio-style SVID from a federated trust domain verifies against
 * that domain's bundle only.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { isMandateError } from '../../src/errors.ts';
import { TrustBundleSet } from '../../src/identity/bundle/set.ts';
import { parseSpiffeId } from '../../src/identity/spiffe-id/parse.ts';
import { certificatesToPem } from '../../src/identity/x509/pem.ts';
import { issueX509Svid } from '../../src/identity/x509-svid/issue.ts';
import { verifyX509Svid } from '../../src/identity/x509-svid/verify.ts';
import { keyAndCsr, testCa } from '../support/pki.ts';

async function svid(ca: Awaited<ReturnType<typeof testCa>>, id: string) {
  const { csrPem, privateKey } = await keyAndCsr();
  const issued = await issueX509Svid(ca, { csr: csrPem, spiffeId: parseSpiffeId(id), ttlSeconds: 600 });
  return { cert: certificatesToPem(issued.chain), key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

/** The SPIFFE ID of the TLS peer, checked against the bundle of its own trust domain. */
function peerSpiffeId(socket: TLSSocket, bundles: TrustBundleSet): string {
  const peer = socket.getPeerX509Certificate();
  assert.ok(peer instanceof X509Certificate, 'peer presented a certificate');
  return verifyX509Svid([peer], bundles).spiffeId.toString();
}

describe('mTLS with two X.509-SVIDs', () => {
  it('completes the handshake and each side sees the other’s SPIFFE ID', async () => {
    const ca = await testCa('example.org');
    const bundles = new TrustBundleSet();
    bundles.set({ trustDomain: 'example.org', x509Authorities: ca.trustAnchors, jwtAuthorities: new Map() });
    const server = await svid(ca, 'spiffe://example.org/tool/issue-tracker');
    const client = await svid(ca, 'spiffe://example.org/agent/triage-bot');
    const ca_pem = certificatesToPem(ca.trustAnchors);
    const seenByClient = deferred<string>();
    const seenByServer = new Promise<string>((resolve) => {
      const srv = createServer({ cert: server.cert, key: server.key, ca: ca_pem, requestCert: true, rejectUnauthorized: true }, (socket) => {
        resolve(peerSpiffeId(socket, bundles));
        socket.end('hello');
        srv.close();
      });
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as AddressInfo;
        // SPIFFE authentication checks the URI SAN, not a host name.
        const socket = connect({ host: '127.0.0.1', port, cert: client.cert, key: client.key, ca: ca_pem, checkServerIdentity: () => undefined }, () => {
          seenByClient.resolve(peerSpiffeId(socket, bundles));
        });
        socket.on('data', () => socket.end());
        socket.on('error', seenByClient.reject);
      });
    });
    assert.equal(await seenByServer, 'spiffe://example.org/agent/triage-bot');
    assert.equal(await seenByClient.promise, 'spiffe://example.org/tool/issue-tracker');
  });

  it('refuses a client whose SVID comes from a CA the server does not trust', async () => {
    const ca = await testCa('example.org');
    const rogue = await testCa('example.org');
    const server = await svid(ca, 'spiffe://example.org/tool/issue-tracker');
    const client = await svid(rogue, 'spiffe://example.org/agent/triage-bot');
    const ca_pem = certificatesToPem(ca.trustAnchors);
    const srv = createServer({ cert: server.cert, key: server.key, ca: ca_pem, requestCert: true, rejectUnauthorized: true }, (s) => s.end());
    srv.on('tlsClientError', () => undefined);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const { port } = srv.address() as AddressInfo;
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port, cert: client.cert, key: client.key, ca: ca_pem, checkServerIdentity: () => undefined });
      socket.on('error', (err) => resolve(`error: ${err.message}`));
      socket.on('close', () => resolve('closed'));
      socket.on('data', () => resolve('data'));
    });
    srv.close();
    assert.notEqual(outcome, 'data');
  });
});

describe('federated trust domains', () => {
  it('verifies an Istio-style SVID against its own trust domain’s bundle, never ours', async () => {
    const ours = await testCa('example.org');
    const istio = await testCa('cluster.local');
    const { csrPem } = await keyAndCsr();
    const issued = await issueX509Svid(istio, { csr: csrPem, spiffeId: parseSpiffeId('spiffe://cluster.local/ns/payments/sa/refunds'), ttlSeconds: 600 });
    const bundles = new TrustBundleSet();
    bundles.set({ trustDomain: 'example.org', x509Authorities: ours.trustAnchors, jwtAuthorities: new Map() });
    assert.throws(() => verifyX509Svid(issued.chain, bundles), (err) => isMandateError(err, 'ERR_BUNDLE_UNKNOWN_TRUST_DOMAIN'));
    // even if cluster.local's root were (wrongly) put under our name, it would not count for cluster.local
    const merged = new TrustBundleSet();
    merged.set({ trustDomain: 'example.org', x509Authorities: [...ours.trustAnchors, ...istio.trustAnchors], jwtAuthorities: new Map() });
    assert.throws(() => verifyX509Svid(issued.chain, merged), (err) => isMandateError(err, 'ERR_BUNDLE_UNKNOWN_TRUST_DOMAIN'));
    bundles.set({ trustDomain: 'cluster.local', x509Authorities: istio.trustAnchors, jwtAuthorities: new Map() });
    assert.equal(verifyX509Svid(issued.chain, bundles).spiffeId.toString(), 'spiffe://cluster.local/ns/payments/sa/refunds');
  });
});

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}
