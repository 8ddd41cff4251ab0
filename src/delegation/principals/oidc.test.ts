import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import { Secret } from '../../config/secret.ts';
import type { OidcProviderConfig } from '../../config/types.ts';
import { isMandateError } from '../../errors.ts';
import { subtle, x509 } from '../../identity/x509/crypto.ts';
import { MemoryEventSink } from '../../observability/events.ts';
import { isOAuthError, type OAuthErrorCode } from '../oauth/errors.ts';
import { OidcProviders, type PendingSignIn } from './oidc.ts';
import { API_RESOURCE, CALLBACK, CLIENT_ID, CLIENT_SECRET, PUBLIC_CLIENT_ID, signingKey, TestIdp } from './oidc-provider.fixture.ts';

function providerConfig(issuer: string, over: Partial<OidcProviderConfig> = {}): OidcProviderConfig {
  return {
    id: 'idp',
    name: 'Test IdP',
    issuer,
    clientId: CLIENT_ID,
    clientSecret: new Secret(CLIENT_SECRET, 'test'),
    scopes: ['profile', 'email', 'groups'],
    accessTokenAudience: undefined,
    caFile: undefined,
    ...over,
  };
}

async function rejectsOAuth(promise: Promise<unknown>, code: OAuthErrorCode, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isOAuthError(err), `expected OAuthError, got ${String(err)}`);
    assert.equal(err.error, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

/** A token signed with one of the provider's own private keys (so only the claims are wrong, if anything). */
async function signWith(key: JWK, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg!, kid: key.kid!, ...header }).sign(await importJWK(key, key.alg));
}

const nowS = (): number => Math.floor(Date.now() / 1000);

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('OidcProviders against a real OpenID Connect provider', () => {
  let idp: TestIdp;
  let events: MemoryEventSink;
  let providers: OidcProviders;

  before(async () => {
    idp = await TestIdp.start({ keys: [await signingKey('idp-rsa'), await signingKey('idp-ec', 'ES256')], accounts: { bob: { name: undefined, groups: undefined, roles: ['admin'], preferred_username: 'bobby' } } });
    events = new MemoryEventSink();
    providers = new OidcProviders([providerConfig(idp.issuer), providerConfig('https://idp.other.example', { id: 'other', name: 'Other' })], { events });
  });
  after(() => idp.close());

  async function signIn(login = 'alice', on = providers): Promise<{ pending: PendingSignIn; callback: URL }> {
    const { url, pending } = await on.beginSignIn('idp', CALLBACK);
    return { pending, callback: await idp.signIn(url, { login }) };
  }

  test('list() names the providers in configuration order', () => {
    assert.deepEqual(providers.list(), [{ id: 'idp', name: 'Test IdP' }, { id: 'other', name: 'Other' }]);
  });

  test('beginSignIn builds an authorization code request with PKCE S256, state and nonce', async () => {
    const { url, pending } = await providers.beginSignIn('idp', CALLBACK);
    const u = new URL(url);
    assert.equal(u.origin + u.pathname, `${idp.issuer}/auth`);
    const p = u.searchParams;
    assert.equal(p.get('response_type'), 'code');
    assert.equal(p.get('client_id'), CLIENT_ID);
    assert.equal(p.get('redirect_uri'), CALLBACK);
    assert.equal(p.get('scope'), 'openid profile email groups');
    assert.equal(p.get('code_challenge_method'), 'S256');
    assert.equal(p.get('state'), pending.state);
    assert.equal(p.get('nonce'), pending.nonce);
    const challenge = Buffer.from(await subtle.digest('SHA-256', Buffer.from(pending.codeVerifier))).toString('base64url');
    assert.equal(p.get('code_challenge'), challenge);
    assert.deepEqual(Object.keys(pending).sort(), ['codeVerifier', 'nonce', 'providerId', 'redirectUri', 'state']);
    assert.deepEqual(JSON.parse(JSON.stringify(pending)), pending, 'pending is plain JSON');
    const second = await providers.beginSignIn('idp', CALLBACK);
    assert.notEqual(second.pending.state, pending.state);
    assert.notEqual(second.pending.codeVerifier, pending.codeVerifier);
  });

  test('a completed sign-in gives the principal with userinfo claims, and an event without secrets', async () => {
    const { pending, callback } = await signIn('alice');
    assert.ok(callback.searchParams.has('code'));
    const before = events.events.length;
    const principal = await providers.completeSignIn(pending, callback);
    assert.deepEqual(principal, {
      issuer: idp.issuer,
      subject: 'alice',
      name: 'Alice Example',
      email: 'alice@example.org',
      groups: ['eng', 'ops'],
      authMethod: 'oidc',
    });
    const emitted = events.events.slice(before);
    assert.deepEqual(emitted.map((e) => [e.type, e.outcome, e.subject, e.provider]), [['principal.signin', 'success', 'alice', 'idp']]);
    const text = JSON.stringify(emitted);
    for (const secret of [callback.searchParams.get('code')!, pending.codeVerifier, pending.nonce, CLIENT_SECRET]) assert.ok(!text.includes(secret));
  });

  test('the callback URL contributes only its query: the pending redirect URI is what the provider sees', async () => {
    const { pending, callback } = await signIn('alice');
    const elsewhere = new URL(`http://mandate.internal:9999/other/path${callback.search}`);
    assert.equal((await providers.completeSignIn(pending, elsewhere)).subject, 'alice');
  });

  test('roles stand in for groups, and preferred_username for a missing name', async () => {
    const { pending, callback } = await signIn('bob');
    const principal = await providers.completeSignIn(pending, callback);
    assert.equal(principal.name, 'bobby');
    assert.deepEqual(principal.groups, ['admin']);
  });

  test('a public client (no secret) signs in with PKCE alone', async () => {
    const pub = new OidcProviders([providerConfig(idp.issuer, { clientId: PUBLIC_CLIENT_ID, clientSecret: undefined })]);
    const { pending, callback } = await signIn('carol', pub);
    assert.equal((await pub.completeSignIn(pending, callback)).subject, 'carol');
  });

  test('a declined sign-in is access_denied with the provider\'s description', async () => {
    const { url, pending } = await providers.beginSignIn('idp', CALLBACK);
    const callback = await idp.signIn(url, { decline: true });
    assert.equal(callback.searchParams.get('error'), 'access_denied');
    const before = events.events.length;
    await rejectsOAuth(providers.completeSignIn(pending, callback), 'access_denied', /identity provider "idp" refused the sign-in: access_denied \(End-User aborted interaction\)/);
    assert.deepEqual(events.events.slice(before).map((e) => [e.type, e.outcome, e.error]), [['principal.signin', 'failure', 'access_denied']]);
  });

  test('a callback that does not belong to the pending sign-in is refused', async () => {
    const { pending, callback } = await signIn('alice');
    const withQuery = (query: Record<string, string>): URL => new URL(`${CALLBACK}?${new URLSearchParams(query)}`);
    const code = callback.searchParams.get('code')!;
    const cases: Array<[string, PendingSignIn, URL, OAuthErrorCode, RegExp]> = [
      ['state differs', pending, withQuery({ code, state: 'forged', iss: idp.issuer }), 'invalid_request', /state .* does not match/],
      ['no state', pending, withQuery({ code, iss: idp.issuer }), 'invalid_request', /state .* does not match/],
      ['an error with a forged state', pending, withQuery({ error: 'access_denied', state: 'forged' }), 'invalid_request', /state .* does not match/],
      ['no code', pending, withQuery({ state: pending.state, iss: idp.issuer }), 'invalid_request', /has no authorization code/],
      ['wrong iss (mix-up)', pending, withQuery({ code, state: pending.state, iss: 'https://idp.other.example' }), 'invalid_request', /response of identity provider "idp" .* is invalid: .*"iss"/],
      ['unknown provider', { ...pending, providerId: 'nope' }, callback, 'invalid_request', /unknown identity provider "nope"/],
      ['malformed pending', { ...pending, nonce: 42 } as unknown as PendingSignIn, callback, 'invalid_request', /malformed/],
      ['pending redirect URI not a URL', { ...pending, redirectUri: 'not a url' }, callback, 'invalid_request', /malformed/],
    ];
    for (const [name, p, url, code2, pattern] of cases) {
      await rejectsOAuth(providers.completeSignIn(p, url), code2, pattern).catch((err: unknown) => assert.fail(`${name}: ${String(err)}`));
    }
  });

  test('the exchange proves the PKCE verifier, and the ID token must carry the pending nonce', async () => {
    const first = await signIn('alice');
    await rejectsOAuth(providers.completeSignIn({ ...first.pending, codeVerifier: 'x'.repeat(43) }, first.callback), 'invalid_request', /refused the authorization code exchange: invalid_grant/);
    const second = await signIn('alice');
    await rejectsOAuth(providers.completeSignIn({ ...second.pending, nonce: 'other-nonce' }, second.callback), 'invalid_request', /response of identity provider "idp" .* is invalid: .*"nonce"/);
  });

  test('an authorization code works once', async () => {
    const { pending, callback } = await signIn('alice');
    await providers.completeSignIn(pending, callback);
    await rejectsOAuth(providers.completeSignIn(pending, callback), 'invalid_request', /refused the authorization code exchange: invalid_grant/);
  });

  test('beginSignIn refuses unknown providers and unusable redirect URIs', async () => {
    await rejectsOAuth(providers.beginSignIn('nope', CALLBACK), 'invalid_request', /unknown identity provider "nope"/);
    for (const uri of ['/relative', 'ftp://127.0.0.1/cb', `${CALLBACK}?a=1`, `${CALLBACK}#f`, 'not a url']) {
      await rejectsOAuth(providers.beginSignIn('idp', uri), 'invalid_request', /redirect URI/);
    }
  });

  describe('verifySubjectToken', () => {
    let idToken: string;

    before(async () => {
      const { url, pending } = await providers.beginSignIn('idp', CALLBACK);
      idToken = (await idp.exchangeCode(await idp.signIn(url, { login: 'alice' }), pending.codeVerifier)).id_token;
    });

    test('accepts an ID token the provider issued to our client id', async () => {
      assert.deepEqual(await providers.verifySubjectToken(idToken), {
        issuer: idp.issuer,
        subject: 'alice',
        name: 'alice',
        groups: [],
        authMethod: 'token',
      });
    });

    test('accepts tokens signed with any key the provider publishes (RS256, ES256)', async () => {
      const claims = { iss: idp.issuer, sub: 'alice', aud: CLIENT_ID, exp: nowS() + 60 };
      for (const key of idp.keys) assert.equal((await providers.verifySubjectToken(await signWith(key, claims)))?.subject, 'alice', key.alg);
    });

    test('is not the judge of tokens from other issuers, or of non-JWTs (null)', async () => {
      const foreign = await signWith(idp.keys[0]!, { iss: 'https://unknown.example', sub: 'x', aud: CLIENT_ID, exp: nowS() + 60 });
      for (const token of [foreign, 'not-a-jwt', '', 'a.b.c', await signWith(idp.keys[0]!, { sub: 'x', aud: CLIENT_ID, exp: nowS() + 60 })]) {
        assert.equal(await providers.verifySubjectToken(token), null);
      }
    });

    test('refuses an ID token for another client id', async () => {
      const strict = new OidcProviders([providerConfig(idp.issuer, { clientId: 'someone-else' })]);
      await rejectsOAuth(strict.verifySubjectToken(idToken), 'invalid_grant', /audience "mandate" does not include the client id "someone-else"/);
    });

    test('refuses a tampered signature and an expired token', async () => {
      const [h, p, s] = idToken.split('.') as [string, string, string];
      const flipped = `${h}.${p}.${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
      await rejectsOAuth(providers.verifySubjectToken(flipped), 'invalid_grant', /signature does not verify/);
      const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
      const swapped = `${h}.${Buffer.from(JSON.stringify({ ...payload, sub: 'mallory' })).toString('base64url')}.${s}`;
      await rejectsOAuth(providers.verifySubjectToken(swapped), 'invalid_grant', /signature does not verify/);
      await rejectsOAuth(providers.verifySubjectToken(idToken, new Date(Date.now() + 2 * 3600_000)), 'invalid_grant', /expired at/);
    });

    test('maps name, email and groups from the claims', async () => {
      const key = idp.keys[0]!;
      const base = { iss: idp.issuer, aud: CLIENT_ID, exp: nowS() + 60, iat: nowS() };
      const cases: Array<[Record<string, unknown>, { name: string; email?: string; groups: string[] }]> = [
        [{ sub: 's1', name: 'N', preferred_username: 'u', email: 'e@x' }, { name: 'N', email: 'e@x', groups: [] }],
        [{ sub: 's1', preferred_username: 'u', email: 'e@x' }, { name: 'u', email: 'e@x', groups: [] }],
        [{ sub: 's1', name: '', email: 'e@x' }, { name: 'e@x', email: 'e@x', groups: [] }],
        [{ sub: 's1', name: 42 }, { name: 's1', groups: [] }],
        [{ sub: 's1', groups: ['a', 'b'], roles: ['r'] }, { name: 's1', groups: ['a', 'b'] }],
        [{ sub: 's1', groups: ['a', 1], roles: ['r'] }, { name: 's1', groups: ['r'] }],
        [{ sub: 's1', groups: 'a', roles: 'r' }, { name: 's1', groups: [] }],
      ];
      for (const [claims, expected] of cases) {
        const p = await providers.verifySubjectToken(await signWith(key, { ...base, ...claims }));
        assert.deepEqual(p, { issuer: idp.issuer, subject: 's1', authMethod: 'token', ...expected }, JSON.stringify(claims));
      }
    });

    test('refuses hostile and mistyped tokens signed with the provider\'s own key', async () => {
      const key = idp.keys[0]!;
      const good = { iss: idp.issuer, sub: 'alice', aud: CLIENT_ID, exp: nowS() + 60, iat: nowS() };
      const hmac = await new SignJWT(good).setProtectedHeader({ alg: 'HS256', kid: key.kid! }).sign(new Uint8Array(32));
      const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
      const cases: Array<[string, string, RegExp]> = [
        ['HS256', hmac, /algorithm is not allowed/],
        ['alg none', `${b64({ alg: 'none' })}.${b64(good)}.`, /algorithm is not allowed|refused/],
        ['typ dpop+jwt', await signWith(key, good, { typ: 'dpop+jwt' }), /type "dpop\+jwt" .* is not accepted/],
        ['access token without accessTokenAudience', await signWith(key, good, { typ: 'at+jwt' }), /access tokens of identity provider "idp" are not accepted/],
        ['no sub', await signWith(key, { ...good, sub: undefined }), /has no "sub"/],
        ['empty sub', await signWith(key, { ...good, sub: '' }), /has no "sub"/],
        ['no exp', await signWith(key, { ...good, exp: undefined }), /claim "exp"/],
        ['nbf in the future', await signWith(key, { ...good, nbf: nowS() + 3600 }), /claim "nbf"/],
        ['expired beyond the tolerance', await signWith(key, { ...good, exp: nowS() - 31 }), /expired at/],
        ['iss with a trailing slash (not exact)', await signWith(key, { ...good, iss: `${idp.issuer}/` }), /claim "iss"/],
        ['azp of another client', await signWith(key, { ...good, aud: [CLIENT_ID, 'other'], azp: 'other' }), /issued to "other" \(azp\)/],
        ['no aud', await signWith(key, { ...good, aud: undefined }), /audience undefined does not include/],
        ['unknown kid', await signWith({ ...(await signingKey('not-published')) }, good), /no published signing key matches/],
      ];
      for (const [name, token, pattern] of cases) {
        await rejectsOAuth(providers.verifySubjectToken(token), 'invalid_grant', pattern).catch((err: unknown) => assert.fail(`${name}: ${String(err)}`));
      }
      assert.equal((await providers.verifySubjectToken(await signWith(key, { ...good, exp: nowS() - 20 })))?.subject, 'alice', 'within the clock tolerance');
    });

    test('accepts the provider\'s JWT access tokens only for the configured accessTokenAudience', async () => {
      const accessToken = await idp.accessToken(API_RESOURCE);
      const header = JSON.parse(Buffer.from(accessToken.split('.')[0]!, 'base64url').toString()) as { typ: string };
      assert.equal(header.typ, 'at+jwt');
      const accepting = new OidcProviders([providerConfig(idp.issuer, { accessTokenAudience: API_RESOURCE })]);
      assert.deepEqual(await accepting.verifySubjectToken(accessToken), { issuer: idp.issuer, subject: CLIENT_ID, name: CLIENT_ID, groups: [], authMethod: 'token' });
      const other = new OidcProviders([providerConfig(idp.issuer, { accessTokenAudience: 'https://elsewhere.example' })]);
      await rejectsOAuth(other.verifySubjectToken(accessToken), 'invalid_grant', /access token's audience .* does not include "https:\/\/elsewhere.example"/);
      await rejectsOAuth(providers.verifySubjectToken(accessToken), 'invalid_grant', /access tokens of identity provider "idp" are not accepted/);
      // An ID token is not an access token, even when its audience is the access-token audience.
      const idTokenForApi = await signWith(idp.keys[0]!, { iss: idp.issuer, sub: 'alice', aud: API_RESOURCE, exp: nowS() + 60 });
      await rejectsOAuth(accepting.verifySubjectToken(idTokenForApi), 'invalid_grant', /does not include the client id "mandate"/);
    });
  });
});

describe('OidcProviders: reachability and key rotation', () => {
  test('a provider that cannot be reached is temporarily_unavailable, and discovery is retried later', async () => {
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const providers = new OidcProviders([providerConfig(issuer)], { timeoutMs: 2000, jwksCooldownMs: 0 });
    await rejectsOAuth(providers.beginSignIn('idp', CALLBACK), 'temporarily_unavailable', /identity provider "idp" \(http:\/\/127\.0\.0\.1:\d+\) cannot be reached/);
    const key = await signingKey('k1');
    const token = await signWith(key, { iss: issuer, sub: 'alice', aud: CLIENT_ID, exp: nowS() + 60 });
    await rejectsOAuth(providers.verifySubjectToken(token), 'temporarily_unavailable', /cannot be reached/);
    const idp = await TestIdp.start({ port, keys: [key] });
    try {
      assert.equal((await providers.verifySubjectToken(token))?.subject, 'alice');
      const { url, pending } = await providers.beginSignIn('idp', CALLBACK);
      assert.equal((await providers.completeSignIn(pending, await idp.signIn(url))).subject, 'alice');
    } finally {
      await idp.close();
    }
    // Discovered once, the provider going away shows when its keys must be fetched again.
    const unknownKid = await signWith(await signingKey('k2'), { iss: issuer, sub: 'alice', aud: CLIENT_ID, exp: nowS() + 60 });
    await rejectsOAuth(providers.verifySubjectToken(unknownKid), 'temporarily_unavailable', /signing keys of identity provider "idp" cannot be fetched/);
  });

  test('a new signing key is fetched when a token names an unknown kid, at most once per cooldown', async () => {
    const key1 = await signingKey('rot-1');
    const key2 = await signingKey('rot-2');
    let idp = await TestIdp.start({ keys: [key1] });
    const eager = new OidcProviders([providerConfig(idp.issuer)], { jwksCooldownMs: 0 });
    const patient = new OidcProviders([providerConfig(idp.issuer)], { jwksCooldownMs: 60_000 });
    const claims = { iss: idp.issuer, sub: 'alice', aud: CLIENT_ID, exp: nowS() + 600 };
    try {
      const old = await signWith(key1, claims);
      assert.equal((await eager.verifySubjectToken(old))?.subject, 'alice');
      assert.equal((await patient.verifySubjectToken(old))?.subject, 'alice');

      // The provider restarts on the same port, publishing a new key first (it now signs with it).
      const port = idp.port;
      await idp.close();
      idp = await TestIdp.start({ port, keys: [key2, key1] });
      const { url, pending } = await eager.beginSignIn('idp', CALLBACK);
      const fresh = (await idp.exchangeCode(await idp.signIn(url), pending.codeVerifier)).id_token;
      assert.equal(JSON.parse(Buffer.from(fresh.split('.')[0]!, 'base64url').toString()).kid, 'rot-2');

      assert.equal((await eager.verifySubjectToken(fresh))?.subject, 'alice');
      assert.equal((await eager.verifySubjectToken(old))?.subject, 'alice', 'the old key is still published');
      await rejectsOAuth(patient.verifySubjectToken(fresh), 'invalid_grant', /no published signing key matches/);
    } finally {
      await idp.close();
    }
  });
});

describe('OidcProviders: configuration and TLS', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mandate-oidc-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('an https provider is reached trusting only the configured caFile', async () => {
    const tls = await selfSignedServerCert();
    const caFile = join(dir, 'idp-ca.crt');
    writeFileSync(caFile, tls.cert);
    const idp = await TestIdp.start({ tls });
    try {
      assert.match(idp.issuer, /^https:/);
      const trusted = new OidcProviders([providerConfig(idp.issuer, { caFile })]);
      const { url, pending } = await trusted.beginSignIn('idp', CALLBACK);
      const callback = await idp.signIn(url);
      assert.equal((await trusted.completeSignIn(pending, callback)).subject, 'alice');
      const token = await signWith(idp.keys[0]!, { iss: idp.issuer, sub: 'alice', aud: CLIENT_ID, exp: nowS() + 60 });
      assert.equal((await trusted.verifySubjectToken(token))?.subject, 'alice');

      const untrusted = new OidcProviders([providerConfig(idp.issuer)]);
      await rejectsOAuth(untrusted.beginSignIn('idp', CALLBACK), 'temporarily_unavailable', /cannot be reached: .*certificate/i);
    } finally {
      await idp.close();
    }
  });

  test('unusable provider configuration is refused at construction', () => {
    const base = providerConfig('https://idp.example');
    const cases: Array<[OidcProviderConfig[], RegExp]> = [
      [[base, base], /"idp": configured twice/],
      [[{ ...base, issuer: 'http://idp.example' }], /must be an https URL/],
      [[{ ...base, issuer: 'https://idp.example/?tenant=1' }], /without query or fragment/],
      [[{ ...base, issuer: 'https://idp.example/#x' }], /without query or fragment/],
      [[{ ...base, issuer: 'idp.example' }], /must be an https URL/],
      [[{ ...base, caFile: join(dir, 'missing.crt') }], /cannot read caFile/],
    ];
    for (const [configs, pattern] of cases) {
      assert.throws(() => new OidcProviders(configs), (err) => isMandateError(err, 'ERR_CONFIG_INVALID') && pattern.test(err.message), pattern.source);
    }
    assert.doesNotThrow(() => new OidcProviders([{ ...base, issuer: 'http://localhost:8080/realms/dev' }]));
  });
});

/** A self-signed certificate for 127.0.0.1, standing in for a provider's CA and server certificate. */
async function selfSignedServerCert(): Promise<{ key: string; cert: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=test-idp',
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
