import 'reflect-metadata';
import assert from 'node:assert/strict';
import { KeyObject, randomUUID, webcrypto } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { SignJWT, base64url, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { isMandateError, type ErrorCode } from '../../../errors.ts';
import type { Attestor } from '../attestor.ts';
import { createK8sPsatAttestor, type K8sClusterConfig } from './k8s-psat.ts';

x509.cryptoProvider.set(globalThis.crypto);

const NOW = new Date();
const NOW_S = Math.floor(NOW.getTime() / 1000);
const AUDIENCE = 'mandate';
/** Refetch on unknown kid without waiting, so rotation is testable without sleeping. */
const OPTIONS = { jwksCooldownMs: 0 };

interface SigningKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function newKey(alg: 'RS256' | 'ES256' = 'RS256', kid: string = randomUUID()): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/**
 * A stand-in for kube-apiserver's service account issuer discovery: it serves the OIDC discovery
 * document and the JWKS, and signs tokens the way the TokenRequest API does.
 */
class FakeCluster {
  readonly hits = { discovery: 0, jwks: 0 };
  served: SigningKey[];
  failing = false;
  issuer = '';
  private server: Server;

  constructor(
    readonly signingKey: SigningKey,
    tls?: { key: string; cert: string },
  ) {
    this.served = [signingKey];
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    this.server = tls ? createHttpsServer(tls, handler) : createHttpServer(handler);
  }

  static async start(tls?: { key: string; cert: string }): Promise<FakeCluster> {
    const cluster = new FakeCluster(await newKey(), tls);
    await new Promise<void>((resolve) => cluster.server.listen(0, '127.0.0.1', resolve));
    const { port } = cluster.server.address() as AddressInfo;
    cluster.issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    return cluster;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (this.failing) return send(500, { error: 'down' });
    if (req.url === '/.well-known/openid-configuration') {
      this.hits.discovery++;
      return send(200, {
        issuer: this.issuer,
        jwks_uri: `${this.issuer}/openid/v1/jwks`,
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
      });
    }
    if (req.url === '/openid/v1/jwks') {
      this.hits.jwks++;
      return send(200, { keys: this.served.map((k) => k.publicJwk) });
    }
    send(404, { error: 'not found' });
  }

  /** Claims as kube-apiserver puts them in a projected token for payments/triage-bot. */
  claims(overrides: Record<string, unknown> = {}): JWTPayload {
    return {
      aud: [AUDIENCE],
      exp: NOW_S + 3600,
      iat: NOW_S - 10,
      nbf: NOW_S - 10,
      iss: this.issuer,
      'kubernetes.io': {
        namespace: 'payments',
        pod: { name: 'triage-7d9f', uid: '5a1d2c3e-0b4f-4e9a-9c1d-2f3e4a5b6c7d' },
        serviceaccount: { name: 'triage-bot', uid: '0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c5b' },
      },
      sub: 'system:serviceaccount:payments:triage-bot',
      ...overrides,
    };
  }

  sign(overrides: Record<string, unknown> = {}, key: SigningKey = this.signingKey): Promise<string> {
    const claims = Object.fromEntries(Object.entries(this.claims(overrides)).filter(([, v]) => v !== undefined));
    return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(key.privateKey);
  }

  config(extra: Partial<K8sClusterConfig> = {}): K8sClusterConfig {
    return { name: 'prod', issuer: this.issuer, audience: AUDIENCE, ...extra };
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err) => {
    assert.ok(isMandateError(err, code), `expected ${code}, got ${String(err)}`);
    assert.match(err.message, message);
    return true;
  });
}

const EXPECTED_SELECTORS = [
  'k8s:cluster:prod',
  'k8s:ns:payments',
  'k8s:sa:triage-bot',
  'k8s:ns-sa:payments:triage-bot',
  'k8s:pod-name:triage-7d9f',
  'k8s:pod-uid:5a1d2c3e-0b4f-4e9a-9c1d-2f3e4a5b6c7d',
];

describe('k8s_psat attestation', () => {
  let cluster: FakeCluster;
  let attestor: Attestor;
  let dir: string;

  before(async () => {
    cluster = await FakeCluster.start();
    attestor = createK8sPsatAttestor([cluster.config()], OPTIONS);
    dir = await mkdtemp(join(tmpdir(), 'mandate-k8s-psat-'));
  });
  after(async () => {
    await cluster.close();
    await rm(dir, { recursive: true, force: true });
  });

  const attest = (token: string, extra: Record<string, unknown> = {}, a: Attestor = attestor) =>
    a.attest({ type: 'k8s_psat', token, ...extra }, NOW);

  test('a projected token is accepted via OIDC discovery, with the right selectors', async () => {
    const result = await attest(await cluster.sign());
    assert.deepEqual(result, {
      attestor: 'k8s_psat',
      selectors: EXPECTED_SELECTORS,
      entryIds: [],
      subject: 'k8s_psat:prod:payments:triage-bot:triage-7d9f',
    });
    assert.equal(cluster.hits.discovery, 1);
    const jwksFetches = cluster.hits.jwks;
    // Keys are cached: a second token with a known kid costs no request.
    await attest(await cluster.sign(), { cluster: 'prod' });
    assert.equal(cluster.hits.jwks, jwksFetches);
    assert.equal(cluster.hits.discovery, 1);
  });

  test('a token without a pod (TokenRequest for a service account) gets no pod selectors', async () => {
    const token = await cluster.sign({ 'kubernetes.io': { namespace: 'payments', serviceaccount: { name: 'triage-bot', uid: 'abc-1' } } });
    assert.deepEqual((await attest(token)).selectors, EXPECTED_SELECTORS.slice(0, 4));
  });

  test('a token for another audience is refused', async () => {
    await rejectsWith(attest(await cluster.sign({ aud: ['https://kubernetes.default.svc'] })), 'ERR_K8S_TOKEN_INVALID', /audience does not include "mandate"/);
  });

  test('a token of an unknown issuer is refused, naming the issuer', async () => {
    const token = await cluster.sign({ iss: 'https://evil.example' });
    await rejectsWith(attest(token), 'ERR_K8S_TOKEN_INVALID', /issuer "https:\/\/evil\.example" is not the issuer of any configured cluster/);
    // Naming the cluster does not help: the issuer must still be that cluster's.
    await rejectsWith(attest(token, { cluster: 'prod' }), 'ERR_K8S_TOKEN_INVALID', /issuer "https:\/\/evil\.example" is not the issuer of cluster "prod"/);
    await rejectsWith(attest(await cluster.sign(), { cluster: 'staging' }), 'ERR_K8S_TOKEN_INVALID', /cluster "staging" is not configured/);
  });

  test('an expired token is refused; 30 s of clock skew is tolerated', async () => {
    await rejectsWith(attest(await cluster.sign({ exp: NOW_S - 31, iat: NOW_S - 3600, nbf: NOW_S - 3600 })), 'ERR_K8S_TOKEN_INVALID', /token expired/);
    await attest(await cluster.sign({ exp: NOW_S - 20, iat: NOW_S - 3600, nbf: NOW_S - 3600 }));
  });

  test('a token not valid yet, or issued in the future, is refused', async () => {
    await rejectsWith(attest(await cluster.sign({ nbf: NOW_S + 60 })), 'ERR_K8S_TOKEN_INVALID', /not valid yet/);
    await rejectsWith(attest(await cluster.sign({ iat: NOW_S + 60, nbf: undefined })), 'ERR_K8S_TOKEN_INVALID', /"iat" .* in the future/);
    await attest(await cluster.sign({ iat: NOW_S + 20, nbf: NOW_S + 20 }));
  });

  test('a token signed by another key under a served kid is refused', async () => {
    const impostor = { ...(await newKey()), kid: cluster.signingKey.kid };
    await rejectsWith(attest(await cluster.sign({}, impostor)), 'ERR_K8S_TOKEN_INVALID', /signature does not verify with the keys of cluster "prod"/);
  });

  test('an unknown kid triggers a refetch; after key rotation the new key is accepted', async () => {
    const rotated = await newKey('RS256', 'rotated-key');
    const before = cluster.hits.jwks;
    await rejectsWith(attest(await cluster.sign({}, rotated)), 'ERR_K8S_TOKEN_INVALID', /no signing key of cluster "prod" matches the token \(kid "rotated-key"\)/);
    assert.ok(cluster.hits.jwks > before, 'unknown kid did not refetch the JWKS');

    cluster.served = [cluster.signingKey, rotated];
    assert.deepEqual((await attest(await cluster.sign({}, rotated))).selectors, EXPECTED_SELECTORS);
    cluster.served = [cluster.signingKey];
  });

  test('sub must name the namespace and service account of the kubernetes.io claim', async () => {
    await rejectsWith(attest(await cluster.sign({ sub: 'system:serviceaccount:kube-system:triage-bot' })), 'ERR_K8S_TOKEN_INVALID', /"sub" .* does not match its kubernetes.io claim/);
    const otherNs = { namespace: 'kube-system', serviceaccount: { name: 'triage-bot', uid: 'abc' } };
    await rejectsWith(attest(await cluster.sign({ 'kubernetes.io': otherNs })), 'ERR_K8S_TOKEN_INVALID', /expected "system:serviceaccount:kube-system:triage-bot"/);
    await rejectsWith(attest(await cluster.sign({ sub: undefined })), 'ERR_K8S_TOKEN_INVALID', /claim "sub"/);
  });

  test('the kubernetes.io claim must be present and well-formed', async () => {
    await rejectsWith(attest(await cluster.sign({ 'kubernetes.io': undefined })), 'ERR_K8S_TOKEN_INVALID', /"kubernetes.io" is missing/);
    const cases: Array<[unknown, RegExp]> = [
      [{ serviceaccount: { name: 'triage-bot' } }, /kubernetes.io.namespace/],
      [{ namespace: 'payments' }, /kubernetes.io.serviceaccount" is missing/],
      [{ namespace: 'payments', serviceaccount: {} }, /kubernetes.io.serviceaccount.name/],
      [{ namespace: 'pay:ments', serviceaccount: { name: 'triage-bot' } }, /kubernetes.io.namespace/],
      [{ namespace: 'payments', serviceaccount: { name: 'triage-bot' }, pod: { name: 'triage-7d9f' } }, /kubernetes.io.pod.uid/],
      [{ namespace: 'payments', serviceaccount: { name: 'triage-bot' }, pod: 'triage' }, /kubernetes.io.pod" is missing or not an object/],
    ];
    for (const [claim, message] of cases) {
      await rejectsWith(attest(await cluster.sign({ 'kubernetes.io': claim })), 'ERR_K8S_TOKEN_INVALID', message);
    }
  });

  test('a legacy secret-based service account token is refused with a clear message', async () => {
    const legacy = await new SignJWT({
      iss: 'kubernetes/serviceaccount',
      'kubernetes.io/serviceaccount/namespace': 'payments',
      'kubernetes.io/serviceaccount/secret.name': 'triage-bot-token-x7k2p',
      'kubernetes.io/serviceaccount/service-account.name': 'triage-bot',
      'kubernetes.io/serviceaccount/service-account.uid': '0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c5b',
      sub: 'system:serviceaccount:payments:triage-bot',
    })
      .setProtectedHeader({ alg: 'RS256', kid: cluster.signingKey.kid })
      .sign(cluster.signingKey.privateKey);
    await rejectsWith(attest(legacy), 'ERR_K8S_TOKEN_INVALID', /legacy secret-based service account token .* projected/);
    await rejectsWith(attest(await cluster.sign({ exp: undefined })), 'ERR_K8S_TOKEN_INVALID', /no "exp" claim/);
  });

  test('alg none and HS256 are refused', async () => {
    const enc = (v: unknown) => base64url.encode(JSON.stringify(v));
    const unsigned = `${enc({ alg: 'none', kid: cluster.signingKey.kid })}.${enc(cluster.claims())}.`;
    await rejectsWith(attest(unsigned), 'ERR_K8S_TOKEN_INVALID', /algorithm "none" is not allowed/);
    // HMAC keyed with the public key's modulus: the classic RS256/HS256 confusion.
    const secret = new TextEncoder().encode(cluster.signingKey.publicJwk.n);
    const hs = await new SignJWT(cluster.claims()).setProtectedHeader({ alg: 'HS256', kid: cluster.signingKey.kid }).sign(secret);
    await rejectsWith(attest(hs), 'ERR_K8S_TOKEN_INVALID', /algorithm "HS256" is not allowed/);
  });

  test('ES256 tokens are accepted', async () => {
    const ec = await newKey('ES256');
    cluster.served = [...cluster.served, ec];
    assert.deepEqual((await attest(await cluster.sign({}, ec))).selectors, EXPECTED_SELECTORS);
  });

  test('malformed and oversized requests are refused', async () => {
    await rejectsWith(attest('not.a.jwt'), 'ERR_K8S_TOKEN_INVALID', /not a JWT/);
    await rejectsWith(attestor.attest({ type: 'k8s_psat' }, NOW), 'ERR_BAD_REQUEST', /"token"/);
    await rejectsWith(attest(await cluster.sign(), { cluster: 7 }), 'ERR_BAD_REQUEST', /"cluster"/);
    await rejectsWith(attest('a'.repeat(16 * 1024 + 1)), 'ERR_BODY_TOO_LARGE', /16384/);
  });

  test('keys from a jwksFile (static JWKS) are used without any fetch', async () => {
    const key = await newKey();
    const file = join(dir, 'jwks.json');
    await writeFile(file, JSON.stringify({ keys: [key.publicJwk] }));
    const issuer = 'https://kubernetes.default.svc.cluster.local';
    const fileAttestor = createK8sPsatAttestor([{ name: 'kind', issuer, audience: AUDIENCE, jwksFile: file }], OPTIONS);
    const hits = { ...cluster.hits };
    const result = await attest(await cluster.sign({ iss: issuer }, key), {}, fileAttestor);
    assert.equal(result.selectors[0], 'k8s:cluster:kind');
    assert.deepEqual(cluster.hits, hits);
    await rejectsWith(attest(await cluster.sign({ iss: issuer }), {}, fileAttestor), 'ERR_K8S_TOKEN_INVALID', /no signing key of cluster "kind"/);
  });

  test('a jwksUrl skips discovery', async () => {
    const direct = await FakeCluster.start();
    try {
      const a = createK8sPsatAttestor([direct.config({ jwksUrl: `${direct.issuer}/openid/v1/jwks` })], OPTIONS);
      await attest(await direct.sign(), {}, a);
      assert.deepEqual(direct.hits, { discovery: 0, jwks: 1 });
    } finally {
      await direct.close();
    }
  });

  test('clusters are told apart by issuer; a shared issuer needs the cluster named', async () => {
    const other = await FakeCluster.start();
    try {
      const two = createK8sPsatAttestor([cluster.config(), other.config({ name: 'staging' })], OPTIONS);
      assert.equal((await attest(await other.sign(), {}, two)).selectors[0], 'k8s:cluster:staging');
      assert.equal((await attest(await cluster.sign(), {}, two)).selectors[0], 'k8s:cluster:prod');
      // Same issuer string, different keys (e.g. two clusters left on the default issuer).
      const shared = createK8sPsatAttestor(
        [other.config({ name: 'a' }), other.config({ name: 'b', issuer: other.issuer, jwksUrl: `${cluster.issuer}/openid/v1/jwks` })],
        OPTIONS,
      );
      const token = await other.sign();
      await rejectsWith(attest(token, {}, shared), 'ERR_K8S_TOKEN_INVALID', /shared by clusters a, b: name one in field "cluster"/);
      assert.equal((await attest(token, { cluster: 'a' }, shared)).selectors[0], 'k8s:cluster:a');
      await rejectsWith(attest(token, { cluster: 'b' }, shared), 'ERR_K8S_TOKEN_INVALID', /cluster "b"/);
    } finally {
      await other.close();
    }
  });

  test('an unreachable issuer fails closed as unavailable, and discovery is retried', async () => {
    const flaky = await FakeCluster.start();
    try {
      const a = createK8sPsatAttestor([flaky.config()], OPTIONS);
      flaky.failing = true;
      await rejectsWith(attest(await flaky.sign(), {}, a), 'ERR_K8S_JWKS_UNAVAILABLE', /cluster "prod".*HTTP 500/);
      flaky.failing = false;
      await attest(await flaky.sign(), {}, a);
    } finally {
      await flaky.close();
    }
    const gone = createK8sPsatAttestor([flaky.config()], OPTIONS);
    await rejectsWith(attest(await flaky.sign(), {}, gone), 'ERR_K8S_JWKS_UNAVAILABLE', /cannot fetch the signing keys of cluster "prod"/);
  });

  test('discovery must name the configured issuer', async () => {
    const a = createK8sPsatAttestor([cluster.config({ issuer: `${cluster.issuer}/` })], OPTIONS);
    await rejectsWith(attest(await cluster.sign({ iss: `${cluster.issuer}/` }), {}, a), 'ERR_K8S_JWKS_UNAVAILABLE', /names issuer/);
  });

  test('with a caFile, keys are fetched over TLS trusting only that CA', async () => {
    const tls = await selfSignedServerCert();
    const caFile = join(dir, 'ca.crt');
    await writeFile(caFile, tls.cert);
    const secure = await FakeCluster.start(tls);
    try {
      const trusted = createK8sPsatAttestor([secure.config({ caFile })], OPTIONS);
      assert.deepEqual((await attest(await secure.sign(), {}, trusted)).selectors, EXPECTED_SELECTORS);
      const untrusted = createK8sPsatAttestor([secure.config()], OPTIONS);
      await rejectsWith(attest(await secure.sign(), {}, untrusted), 'ERR_K8S_JWKS_UNAVAILABLE', /cluster "prod"/);
    } finally {
      await secure.close();
    }
  });

  test('unusable cluster configuration is refused at start-up', () => {
    const base = cluster.config();
    const cases: Array<[K8sClusterConfig[], RegExp]> = [
      [[{ ...base, jwksFile: join(dir, 'x.json'), jwksUrl: `${base.issuer}/jwks` }], /jwksFile or jwksUrl, not both/],
      [[{ ...base, issuer: 'http://kubernetes.example' }], /issuer must be an https URL/],
      [[{ ...base, jwksUrl: 'http://10.0.0.1/openid/v1/jwks' }], /jwksUrl must be an https URL/],
      [[{ ...base, jwksFile: join(dir, 'missing.json') }], /jwksFile .* is not a JWKS/],
      [[{ ...base, caFile: join(dir, 'missing.crt') }], /cannot read caFile/],
      [[base, base], /configured twice/],
      [[{ ...base, name: 'has:colon' }], /cluster name/],
      [[{ ...base, audience: '' }], /audience must be a non-empty string/],
    ];
    for (const [clusters, message] of cases) {
      assert.throws(() => createK8sPsatAttestor(clusters), (err) => isMandateError(err, 'ERR_CONFIG_INVALID') && message.test(err.message), message.source);
    }
  });
});

/** A self-signed certificate for 127.0.0.1, standing in for a cluster CA plus API server certificate. */
async function selfSignedServerCert(): Promise<{ key: string; cert: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=kube-apiserver',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }]),
    ],
  });
  const key = KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string;
  return { key, cert: cert.toString('pem') };
}
