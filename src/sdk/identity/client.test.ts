import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, webcrypto, type X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMandateError } from '../../errors.ts';
import { TrustBundleSet } from '../../identity/bundle/set.ts';
import { verifyJwtSvid } from '../../identity/jwt-svid/verify.ts';
import { x509 } from '../../identity/x509/crypto.ts';
import { encodePem } from '../../identity/x509/pem.ts';
import { MandateServerFixture } from '../../identity/workload-agent/mandate-server.fixture.ts';
import { IdentityClient } from './client.ts';
import { generateKeyAndCsr } from './csr.ts';

function spkiOf(cert: X509Certificate): Buffer {
  return cert.publicKey.export({ type: 'spki', format: 'der' });
}

describe('IdentityClient against the identity API contract', { timeout: 60_000 }, () => {
  let fixture: MandateServerFixture;
  let client: IdentityClient;

  before(async () => {
    fixture = await MandateServerFixture.start();
    client = new IdentityClient({ serverUrl: fixture.url });
  });
  after(async () => {
    await client.close();
    await fixture.close();
  });

  test('attest, renew with SVID-PoP, fetch a JWT-SVID, read bundles', async () => {
    const first = await generateKeyAndCsr();
    const svid = await client.attest({ type: 'join_token', token: fixture.joinToken }, first.csrPem);
    assert.equal(svid.spiffeId.toString(), fixture.spiffeId.toString());
    assert.ok(spkiOf(svid.chain[0] as X509Certificate).equals(createPublicKey(first.privateKey).export({ type: 'spki', format: 'der' })));
    assert.equal(svid.bundle.trustDomain, 'example.org');
    assert.equal(svid.bundle.x509Authorities[0]?.fingerprint256, fixture.own.ca.certificate.fingerprint256);
    assert.deepEqual(svid.federatedBundles.map((b) => b.trustDomain), ['partner.example']);
    assert.equal(svid.expiresAt.getTime(), new Date((svid.chain[0] as X509Certificate).validTo).getTime());

    const second = await generateKeyAndCsr();
    const renewed = await client.renewX509({ chain: svid.chain, privateKey: first.privateKey }, second.csrPem);
    assert.equal(fixture.calls.renew, 1);
    assert.ok(spkiOf(renewed.chain[0] as X509Certificate).equals(createPublicKey(second.privateKey).export({ type: 'spki', format: 'der' })));

    const jwt = await client.fetchJwtSvid({ chain: renewed.chain, privateKey: second.privateKey }, ['https://api.example.org']);
    assert.equal(jwt.spiffeId.toString(), fixture.spiffeId.toString());
    const set = new TrustBundleSet();
    set.set(renewed.bundle);
    const verified = await verifyJwtSvid(jwt.token, set, { audience: 'https://api.example.org' });
    assert.equal(verified.spiffeId.toString(), fixture.spiffeId.toString());

    const bundles = await client.bundles();
    assert.equal(bundles.trustDomain, 'example.org');
    assert.deepEqual(bundles.bundles.map((b) => b.trustDomain).sort(), ['example.org', 'partner.example']);

    // The private keys never travelled.
    assert.ok(fixture.bodies.every((b) => !b.includes('PRIVATE KEY')));
  });

  test('a proof signed with a key that is not the SVID key is refused by the server', async () => {
    const { csrPem, privateKey } = await generateKeyAndCsr();
    const fresh = await MandateServerFixture.start({ joinToken: 'other' });
    const c = new IdentityClient({ serverUrl: fresh.url });
    try {
      const svid = await c.attest({ type: 'join_token', token: 'other' }, csrPem);
      const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      await assert.rejects(c.renewX509({ chain: svid.chain, privateKey: stranger }, csrPem), (err) => isMandateError(err, 'ERR_UNAUTHENTICATED'));
      await c.renewX509({ chain: svid.chain, privateKey }, csrPem);
    } finally {
      await c.close();
      await fresh.close();
    }
  });

  test('a refusal carries the server\'s code and message', async () => {
    const { csrPem } = await generateKeyAndCsr();
    await assert.rejects(client.attest({ type: 'join_token', token: fixture.joinToken }, csrPem), (err) => isMandateError(err, 'ERR_JOIN_TOKEN_USED') && err.message === 'join token was already used');
    await assert.rejects(client.attest({ type: 'join_token', token: 'wrong' }, csrPem), (err) => isMandateError(err, 'ERR_JOIN_TOKEN_INVALID'));
  });

  test('an empty audience is refused before anything is sent', async () => {
    const before = fixture.calls.jwt;
    const { privateKey } = await generateKeyAndCsr();
    await assert.rejects(client.fetchJwtSvid({ chain: [], privateKey }, []), (err) => isMandateError(err, 'ERR_BAD_REQUEST'));
    assert.equal(fixture.calls.jwt, before);
  });
});

/** A server answering every request with `handler`. */
async function rawServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server }> {
  const server = createHttpServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('IdentityClient transport limits and failures', { timeout: 60_000 }, () => {
  test('responses above 1 MiB are refused, declared or streamed', async () => {
    const big = Buffer.alloc(1024 * 1024 + 1, 0x20);
    for (const declared of [true, false]) {
      const { url, server } = await rawServer((_req, res) => {
        res.writeHead(200, declared ? { 'content-length': big.length } : {});
        res.end(big);
      });
      const client = new IdentityClient({ serverUrl: url });
      try {
        await assert.rejects(client.bundles(), (err) => isMandateError(err, 'ERR_BODY_TOO_LARGE'));
      } finally {
        await client.close();
        await closeServer(server);
      }
    }
  });

  test('a body that is not JSON, or JSON of the wrong shape, is ERR_SERVER_RESPONSE_INVALID', async () => {
    for (const body of ['<html>', '{"trust_domain":"example.org","bundles":{}}', '[]']) {
      const { url, server } = await rawServer((_req, res) => res.end(body));
      const client = new IdentityClient({ serverUrl: url });
      try {
        await assert.rejects(client.bundles(), (err) => isMandateError(err, 'ERR_SERVER_RESPONSE_INVALID'), body);
      } finally {
        await client.close();
        await closeServer(server);
      }
    }
  });

  test('an error code this build does not know falls back to the HTTP status', async () => {
    const { url, server } = await rawServer((_req, res) => {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'ERR_SOMETHING_NEW', message: 'not allowed today' }));
    });
    const client = new IdentityClient({ serverUrl: url });
    try {
      await assert.rejects(client.bundles(), (err) => isMandateError(err, 'ERR_FORBIDDEN') && err.message === 'not allowed today');
    } finally {
      await client.close();
      await closeServer(server);
    }
  });

  test('no answer within the timeout is ERR_TIMEOUT; a closed port is ERR_SERVER_UNREACHABLE', async () => {
    const { url, server } = await rawServer(() => undefined);
    const client = new IdentityClient({ serverUrl: url, timeoutMs: 200 });
    try {
      await assert.rejects(client.bundles(), (err) => isMandateError(err, 'ERR_TIMEOUT'));
    } finally {
      await client.close();
      await closeServer(server);
    }
    const gone = new IdentityClient({ serverUrl: url });
    try {
      await assert.rejects(gone.bundles(), (err) => isMandateError(err, 'ERR_SERVER_UNREACHABLE'));
    } finally {
      await gone.close();
    }
  });

  test('bad configuration is refused at construction', () => {
    for (const serverUrl of ['not a url', 'ftp://x', 'https://x/api', 'https://u:p@x']) {
      assert.throws(() => new IdentityClient({ serverUrl }), (err) => isMandateError(err, 'ERR_CONFIG_INVALID'), serverUrl);
    }
    assert.throws(() => new IdentityClient({ serverUrl: 'http://127.0.0.1:1', caFile: '/dev/null' }), (err) => isMandateError(err, 'ERR_CONFIG_INVALID'));
    assert.throws(() => new IdentityClient({ serverUrl: 'https://127.0.0.1:1', caFile: '/nonexistent/ca.pem' }), (err) => isMandateError(err, 'ERR_CONFIG_INVALID'));
  });

  test('https with a private CA works with caFile and fails without it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mandate-client-'));
    const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=127.0.0.1',
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }]), new x509.BasicConstraintsExtension(true, undefined, true)],
    });
    const certPem = cert.toString('pem');
    const keyPem = encodePem('PRIVATE KEY', new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)));
    const caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, certPem);
    const fixture = await MandateServerFixture.start();
    const bundlesBody = JSON.stringify({ trust_domain: 'example.org', bundles: { 'example.org': { keys: [] } } });
    const server = createHttpsServer({ cert: certPem, key: keyPem }, (_req, res) => res.end(bundlesBody));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const serverUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const trusted = new IdentityClient({ serverUrl, caFile });
    const untrusted = new IdentityClient({ serverUrl });
    try {
      assert.equal((await trusted.bundles()).trustDomain, 'example.org');
      await assert.rejects(untrusted.bundles(), (err) => isMandateError(err, 'ERR_SERVER_UNREACHABLE'));
    } finally {
      await trusted.close();
      await untrusted.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await fixture.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
