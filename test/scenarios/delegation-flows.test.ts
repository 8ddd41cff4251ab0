/**
 * Scenario: the delegation authority's user-facing flows through its real HTTP routes — sign-in at
 * an external OpenID provider (a real oidc-provider) ending in a consented mandate for the provider's
 * (issuer, sub); the provider's ID token as the subject of an agent's token exchange; authorization
 * codes with rotating refresh tokens and reuse detection; Dynamic Client Registration; a client
 * known only by its Client ID Metadata Document; RFC 7009 revocation of refresh tokens; and DPoP
 * server nonces on the code and refresh grants.
 *
 * The browser is `fetch` with a cookie jar: no redirects followed, Mandate's Origin on every POST.
 * TestIdp only accepts Mandate's callback at http://127.0.0.1:8420 (its CALLBACK), so the sign-in
 * scenario gives Mandate that public URL and the browser reaches it at the listening port, as
 * behind a reverse proxy.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt, importJWK, SignJWT } from 'jose';
import { CALLBACK, CLIENT_ID, CLIENT_SECRET, TestIdp } from '../../src/delegation/principals/oidc-provider.fixture.ts';
import { DpopSigner } from '../../src/sdk/agent/dpop.ts';
import {
  approve, codeFrom, CookieBrowser, passwordSignIn, pkcePair, providerIdToken, providerSignIn, serveDocuments,
  toConsent, type AuthorizationRequest, type DocumentServer, type SignIn,
} from '../support/delegation-flows.ts';
import { enrolAgent, GRANT_TOKEN_EXCHANGE, ISSUES, oauthPost, TT, type EnrolledAgent, type OAuthReply } from '../support/delegation.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const AGENT = 'spiffe://example.org/agent/issue-helper';
const WEB_APP = 'web-app';
/** A public client for agents' token exchanges (actor token + DPoP). */
const AGENT_APP = 'agent-app';
const REDIRECT_URI = 'http://127.0.0.1/callback';
const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
const USER = { username: 'alice', display_name: 'Alice Directory', password: 'correct horse battery staple 42' };
/** Where TestIdp sends browsers back: Mandate must have this origin as its public URL. */
const IDP_PUBLIC_URL = new URL(CALLBACK).origin;

function flowsYaml(o: { idpIssuer?: string; publicUrl?: string; dynamicRegistration: boolean; requireNonce?: boolean }): string {
  return [
    'trust_domain: example.org',
    ...(o.publicUrl ? ['server:', `  public_url: ${o.publicUrl}`] : []),
    'delegation:',
    '  scopes:',
    '    "issues:read": Read issues and their comments',
    '    "issues:comment": Comment on issues',
    '  resources:',
    `    - { uri: "${ISSUES}", name: Issue tracker, scopes: ["issues:read", "issues:comment"] }`,
    ...(o.idpIssuer ? [
      '  providers:',
      '    - id: idp',
      '      name: Test IdP',
      `      issuer: ${o.idpIssuer}`,
      `      client_id: ${CLIENT_ID}`,
      `      client_secret: ${CLIENT_SECRET}`,
    ] : []),
    '  clients:',
    `    - client_id: ${WEB_APP}`,
    '      name: Web app',
    `      redirect_uris: ["${REDIRECT_URI}"]`,
    '      auth_method: none',
    '      grant_types: [authorization_code, refresh_token]',
    `    - client_id: ${AGENT_APP}`,
    '      auth_method: none',
    `      grant_types: [${GRANT_TOKEN_EXCHANGE}]`,
    '  dynamic_registration:',
    `    enabled: ${o.dynamicRegistration}`,
    '  client_id_metadata_documents:',
    '    allow_private_addresses: true',
    ...(o.requireNonce ? ['  dpop:', '    require_nonce: true'] : []),
    '',
  ].join('\n');
}

function ok(res: OAuthReply, what: string): any {
  assert.equal(res.status, 200, `${what}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

function refused(res: OAuthReply, status: number, error: string, description?: RegExp): void {
  assert.equal(res.status, status, `expected ${status} ${error}, got ${res.status} ${JSON.stringify(res.body)}`);
  assert.equal(res.body.error, error, JSON.stringify(res.body));
  assert.equal(typeof res.body.error_description, 'string', JSON.stringify(res.body));
  if (description) assert.match(res.body.error_description, description);
}

/** A code for `r` (consent approved in `browser`), with its PKCE verifier. */
async function consentedCode(m: TestMandate, browser: CookieBrowser, r: Omit<AuthorizationRequest, 'challenge'>, signIn: SignIn): Promise<{ code: string; verifier: string; consentHtml: string }> {
  const { verifier, challenge } = pkcePair();
  const consent = await toConsent(browser, m.issuer, { ...r, challenge }, signIn);
  const code = codeFrom(await approve(browser, consent), { redirectUri: r.redirectUri, state: r.state, issuer: m.issuer });
  return { code, verifier, consentHtml: consent.html };
}

function redeem(m: TestMandate, clientId: string, code: string, verifier: string, opts: Parameters<typeof oauthPost>[2] = {}): Promise<OAuthReply> {
  return oauthPost(m.url, { grant_type: 'authorization_code', client_id: clientId, code, redirect_uri: REDIRECT_URI, code_verifier: verifier }, opts);
}

function refresh(m: TestMandate, refreshToken: string, opts: Parameters<typeof oauthPost>[2] = {}, clientId = WEB_APP): Promise<OAuthReply> {
  return oauthPost(m.url, { grant_type: 'refresh_token', client_id: clientId, refresh_token: refreshToken }, opts);
}

describe('delegation flows through the HTTP routes', () => {
  let idp: TestIdp;

  before(async () => {
    idp = await TestIdp.start({ accounts: { bob: { name: 'Bob Provider' }, carol: { name: 'Carol Provider' } } });
  });
  after(() => idp.close());

  describe('1. sign-in at an external OpenID provider', () => {
    let m: TestMandate;

    before(async () => {
      m = await startTestMandate({ yaml: flowsYaml({ idpIssuer: idp.issuer, publicUrl: IDP_PUBLIC_URL, dynamicRegistration: false }) });
      assert.equal(m.issuer, IDP_PUBLIC_URL);
    });
    after(() => m.close());

    const request = (state: string): Omit<AuthorizationRequest, 'challenge'> => ({ clientId: WEB_APP, redirectUri: REDIRECT_URI, resource: ISSUES, agent: AGENT, state });

    /** Starts an authorization request and the provider sign-in, up to the provider's redirect back (not yet followed). */
    const toCallback = async (browser: CookieBrowser, state: string): Promise<URL> => {
      const start = await browser.get(new URL(`/oauth/authorize?${new URLSearchParams({
        response_type: 'code', client_id: WEB_APP, redirect_uri: REDIRECT_URI, code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256', resource: ISSUES, agent: AGENT, state,
      })}`, m.issuer));
      assert.equal(start.status, 303);
      assert.equal(start.location?.pathname, '/signin');
      const toProvider = await browser.get(`/signin/idp?request=${start.location!.searchParams.get('request')}`);
      assert.equal(toProvider.status, 303, toProvider.text.slice(0, 200));
      return idp.signIn(toProvider.location!.href, { login: 'alice' });
    };

    let callback: URL;

    it('walks authorize -> provider login and consent -> callback -> consent; the mandate is for (provider issuer, sub)', async () => {
      const browser = new CookieBrowser(m.issuer, m.url);
      const { code, verifier, consentHtml } = await consentedCode(m, browser, request('st-idp-1'), async (b, signInUrl) => {
        const done = await providerSignIn(b, signInUrl, idp, 'idp', 'alice');
        callback = done.callback;
        assert.equal(done.reply.location?.pathname, '/consent');
        assert.ok(b.has('__Host-mandate-session'), 'the callback starts a session');
        return done.reply;
      });
      assert.equal(`${callback.origin}${callback.pathname}`, `${m.issuer}/signin/idp/callback`);
      assert.ok(callback.searchParams.get('state'), 'the provider returned the state Mandate sent');
      assert.match(consentHtml, /Signed in as <strong>Alice Example<\/strong>/, 'the consent page names the provider\'s user');

      const listed = await m.admin('GET', `/admin/v1/mandates?principal_issuer=${encodeURIComponent(idp.issuer)}&principal_subject=alice`);
      assert.equal(listed.status, 200, JSON.stringify(listed.body));
      assert.equal(listed.body.mandates.length, 1, JSON.stringify(listed.body));
      const mandate = listed.body.mandates[0];
      assert.deepEqual(mandate.principal, { issuer: idp.issuer, subject: 'alice', name: 'Alice Example' });
      assert.equal(mandate.agent, AGENT);
      assert.equal(mandate.origin, 'consent');
      assert.deepEqual(mandate.resources, [ISSUES]);

      const tokens = ok(await redeem(m, WEB_APP, code, verifier), 'code exchange');
      const claims = decodeJwt(tokens.access_token);
      assert.equal(claims.iss, m.issuer);
      assert.equal(claims.sub, 'alice');
      assert.equal(claims.principal_iss, idp.issuer);
      assert.equal(claims.mandate, mandate.id);
      assert.equal(claims.aud, ISSUES);
      assert.equal(claims.client_id, WEB_APP);
      assert.equal(claims.act, undefined, 'the principal\'s own token has no actor');
      assert.ok(m.events.events.some((e) => e.type === 'principal.signin' && e.outcome === 'success' && e.authMethod === 'oidc' && e.issuer === idp.issuer && e.subject === 'alice'));
    });

    it('refuses the same callback a second time (state is single use), in the same browser and in another', async () => {
      for (const browser of [new CookieBrowser(m.issuer, m.url), new CookieBrowser(m.issuer, m.url)]) {
        const replay = await browser.get(callback);
        assert.equal(replay.status, 403, replay.text.slice(0, 200));
        assert.equal(replay.location, undefined);
        assert.match(replay.text, /already used/);
        assert.ok(!browser.has('__Host-mandate-session'), 'a refused callback starts no session');
      }
    });

    it('refuses a callback with a wrong or missing state, and the genuine one still works afterwards', async () => {
      const browser = new CookieBrowser(m.issuer, m.url);
      const genuine = await toCallback(browser, 'st-idp-2');
      const signIns = m.events.events.filter((e) => e.type === 'principal.signin').length;
      for (const state of [`${genuine.searchParams.get('state')}x`, 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', '', null]) {
        const forged = new URL(genuine);
        if (state === null) forged.searchParams.delete('state');
        else forged.searchParams.set('state', state);
        const res = await browser.get(forged);
        assert.equal(res.status, 403, `state ${JSON.stringify(state)}: ${res.status} ${res.text.slice(0, 200)}`);
        assert.equal(res.location, undefined);
        assert.ok(!browser.has('__Host-mandate-session'), `state ${JSON.stringify(state)} started a session`);
      }
      assert.equal(m.events.events.filter((e) => e.type === 'principal.signin').length, signIns, 'no code was exchanged for a forged state');
      const real = await browser.get(genuine);
      assert.equal(real.status, 303, real.text.slice(0, 200));
      assert.equal(real.location?.pathname, '/consent');
    });
  });

  describe('with providers, clients, dynamic registration and metadata documents', () => {
    let m: TestMandate;
    let agent: EnrolledAgent;
    /** Signed in once with the directory; the session carries over to later authorizations. */
    let browser: CookieBrowser;
    const password = passwordSignIn(USER.username, USER.password);
    const webApp = (state: string): Omit<AuthorizationRequest, 'challenge'> => ({ clientId: WEB_APP, redirectUri: REDIRECT_URI, resource: ISSUES, agent: AGENT, state });

    before(async () => {
      m = await startTestMandate({ yaml: flowsYaml({ idpIssuer: idp.issuer, dynamicRegistration: true }) });
      const user = await m.admin('POST', '/admin/v1/users', USER);
      assert.equal(user.status, 201, JSON.stringify(user.body));
      agent = await enrolAgent(m, AGENT);
      browser = new CookieBrowser(m.url);
    });
    after(() => m.close());

    describe('2. a provider\'s ID token as subject token', () => {
      let mandateId: string;
      const exchange = async (subjectToken: string, signer: DpopSigner) => oauthPost(m.url, {
        grant_type: GRANT_TOKEN_EXCHANGE, client_id: AGENT_APP,
        subject_token: subjectToken, subject_token_type: ID_TOKEN,
        actor_token: await agent.jwtSvid([m.issuer]), actor_token_type: TT.jwt,
        resource: ISSUES,
      }, { dpop: signer });
      /** An ID token signed with the provider's own key, so only the claims chosen here differ from a real one. */
      const signedByProvider = async (claims: Record<string, unknown>) => {
        const key = idp.keys[0]!;
        const now = Math.floor(Date.now() / 1000);
        return new SignJWT({ iss: idp.issuer, sub: 'bob', iat: now, exp: now + 300, ...claims })
          .setProtectedHeader({ alg: key.alg!, kid: key.kid! })
          .sign(await importJWK(key, key.alg));
      };

      before(async () => {
        const res = await m.admin('POST', '/admin/v1/mandates', {
          principal: { issuer: idp.issuer, subject: 'bob', name: 'Bob Provider' }, agent: AGENT,
          scopes: ['issues:read', 'issues:comment'], resources: [ISSUES], ttl: '1h',
        });
        assert.equal(res.status, 201, JSON.stringify(res.body));
        mandateId = res.body.id;
      });

      it('exchanges the ID token, the agent\'s JWT-SVID and a DPoP proof for an OBO token with principal_iss = the provider', async () => {
        const idToken = await providerIdToken(idp, CLIENT_ID, CALLBACK, 'bob');
        assert.equal(decodeJwt(idToken).aud, CLIENT_ID);
        const signer = await DpopSigner.generate();
        const body = ok(await exchange(idToken, signer), 'ID token exchange');
        assert.equal(body.token_type, 'DPoP');
        assert.equal(body.issued_token_type, TT.accessToken);
        const c = decodeJwt(body.access_token) as Record<string, any>;
        assert.equal(c.iss, m.issuer);
        assert.equal(c.principal_iss, idp.issuer);
        assert.equal(c.sub, 'bob');
        assert.equal(c.mandate, mandateId);
        assert.deepEqual(c.act, { sub: AGENT });
        assert.deepEqual(c.cnf, { jkt: signer.jkt });
        assert.equal(c.aud, ISSUES);
        assert.equal(c.scope, 'issues:read issues:comment');
        const url = `${ISSUES}/items`;
        const verified = await m.delegation.verifier.verify({
          authorization: `DPoP ${body.access_token}`, dpop: await signer.proof('GET', url, { accessToken: body.access_token }), method: 'GET', url, audience: ISSUES,
        });
        assert.deepEqual(verified.principal, { issuer: idp.issuer, subject: 'bob' });
        assert.equal(verified.actor, AGENT);
      });

      it('baseline for the next row: an ID token signed with the provider\'s key for Mandate\'s client id is accepted', async () => {
        ok(await exchange(await signedByProvider({ aud: CLIENT_ID }), await DpopSigner.generate()), 'provider-signed ID token');
      });

      it('refuses an ID token issued to another audience with invalid_request (RFC 8693 §2.2.2)', async () => {
        for (const aud of ['another-client', ['another-client', 'someone-else']]) {
          const res = await exchange(await signedByProvider({ aud }), await DpopSigner.generate());
          refused(res, 400, 'invalid_request', /audience/);
        }
      });

      it('refuses an ID token issued to another audience (whatever the error code)', async () => {
        const res = await exchange(await signedByProvider({ aud: 'another-client' }), await DpopSigner.generate());
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.ok(res.body.error === 'invalid_request' || res.body.error === 'invalid_grant', JSON.stringify(res.body));
        assert.match(res.body.error_description, /audience/);
        assert.equal(res.body.access_token, undefined);
      });

      it('refuses a real ID token of a user the agent holds no mandate for', async () => {
        refused(await exchange(await providerIdToken(idp, CLIENT_ID, CALLBACK, 'carol'), await DpopSigner.generate()), 400, 'invalid_request', /no live mandate/);
      });
    });

    describe('3. authorization code with rotating refresh tokens', () => {
      it('code -> access + refresh; refresh rotates; a spent refresh token revokes the whole family', async () => {
        const { code, verifier } = await consentedCode(m, browser, webApp('st-rt-1'), password);
        const first = ok(await redeem(m, WEB_APP, code, verifier), 'code exchange');
        assert.equal(first.token_type, 'Bearer');
        assert.match(first.refresh_token, /^mrt_/);
        const mandate = decodeJwt(first.access_token).mandate;
        assert.match(String(mandate), /^mdt_/);

        const second = ok(await refresh(m, first.refresh_token), 'refresh');
        assert.match(second.refresh_token, /^mrt_/);
        assert.notEqual(second.refresh_token, first.refresh_token, 'the refresh token rotates');
        assert.notEqual(second.access_token, first.access_token);
        const c = decodeJwt(second.access_token);
        assert.equal(c.mandate, mandate, 'refreshed tokens keep carrying the mandate');
        assert.equal(c.aud, ISSUES);
        assert.equal(c.client_id, WEB_APP);

        refused(await refresh(m, first.refresh_token), 400, 'invalid_grant', /already been used/);
        refused(await refresh(m, second.refresh_token), 400, 'invalid_grant', /unknown, revoked or expired/);
        assert.ok(m.events.events.some((e) => e.type === 'token.refused' && /refresh token reused/.test(String(e.reason))));
      });

      it('refuses to redeem a code twice, and the second attempt revokes the refresh tokens of the first', async () => {
        const { code, verifier } = await consentedCode(m, browser, webApp('st-rt-2'), password);
        const first = ok(await redeem(m, WEB_APP, code, verifier), 'code exchange');
        refused(await redeem(m, WEB_APP, code, verifier), 400, 'invalid_grant', /already been used/);
        refused(await refresh(m, first.refresh_token), 400, 'invalid_grant');
      });

      it('a DPoP-bound family refreshes only with a proof of the same key', async () => {
        const key = await DpopSigner.generate();
        const other = await DpopSigner.generate();
        const bound = async (state: string) => {
          const { code, verifier } = await consentedCode(m, browser, webApp(state), password);
          const body = ok(await redeem(m, WEB_APP, code, verifier, { dpop: key }), 'DPoP-bound code exchange');
          assert.equal(body.token_type, 'DPoP');
          assert.deepEqual(decodeJwt(body.access_token).cnf, { jkt: key.jkt });
          return body.refresh_token as string;
        };

        const rotated = ok(await refresh(m, await bound('st-dpop-1'), { dpop: key }), 'refresh with the same key');
        assert.equal(rotated.token_type, 'DPoP');
        assert.deepEqual(decodeJwt(rotated.access_token).cnf, { jkt: key.jkt }, 'still bound to the key');
        ok(await refresh(m, rotated.refresh_token, { dpop: key }), 'the rotated token is bound too');

        refused(await refresh(m, await bound('st-dpop-2')), 400, 'invalid_dpop_proof', /DPoP-bound/);
        const wrongKey = await refresh(m, await bound('st-dpop-3'), { dpop: other });
        assert.ok(wrongKey.status === 400 || wrongKey.status === 401, `a proof of another key: ${wrongKey.status} ${JSON.stringify(wrongKey.body)}`);
        assert.match(wrongKey.body.error_description, /bound to another DPoP key/);
        assert.equal(wrongKey.body.access_token, undefined);
      });

      it('a proof of another key is refused as a token-endpoint error (400 invalid_dpop_proof or invalid_grant)', async () => {
        const { code, verifier } = await consentedCode(m, browser, webApp('st-dpop-4'), password);
        const body = ok(await redeem(m, WEB_APP, code, verifier, { dpop: await DpopSigner.generate() }), 'DPoP-bound code exchange');
        const res = await refresh(m, body.refresh_token, { dpop: await DpopSigner.generate() });
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.ok(['invalid_dpop_proof', 'invalid_grant'].includes(res.body.error), JSON.stringify(res.body));
      });

      it('after the mandate is revoked, refresh is refused with invalid_grant', async () => {
        const { code, verifier } = await consentedCode(m, browser, webApp('st-rt-3'), password);
        const body = ok(await redeem(m, WEB_APP, code, verifier), 'code exchange');
        const mandate = String(decodeJwt(body.access_token).mandate);
        const revoked = await m.admin('POST', `/admin/v1/mandates/${mandate}/revoke`);
        assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
        refused(await refresh(m, body.refresh_token), 400, 'invalid_grant', /no longer live/);
      });
    });

    describe('4. Dynamic Client Registration over HTTP', () => {
      const register = async (body: string, contentType = 'application/json') => {
        const res = await fetch(`${m.url}/oauth/register`, { method: 'POST', headers: { 'content-type': contentType }, body });
        const text = await res.text();
        let json: any;
        try { json = JSON.parse(text); } catch { json = text; }
        return { status: res.status, body: json, headers: res.headers };
      };

      it('publishes registration_endpoint in the metadata', async () => {
        const meta = (await m.call('GET', '/.well-known/oauth-authorization-server')).body;
        assert.equal(meta.registration_endpoint, `${m.issuer}/oauth/register`);
      });

      it('registers a public client (201) that then runs the authorization code flow with its redirect URI', async () => {
        const redirect = 'http://127.0.0.1/registered/callback';
        const res = await register(JSON.stringify({
          client_name: 'Registered Notes', redirect_uris: [redirect], token_endpoint_auth_method: 'none',
          grant_types: ['authorization_code', 'refresh_token'], logo_uri: 'https://ignored.example/logo.png',
        }));
        assert.equal(res.status, 201, JSON.stringify(res.body));
        assert.equal(res.headers.get('cache-control'), 'no-store');
        const clientId: string = res.body.client_id;
        assert.match(clientId, /^[A-Za-z0-9_-]{20,}$/);
        assert.equal(res.body.client_secret, undefined, 'a public client gets no secret');
        assert.deepEqual(res.body.redirect_uris, [redirect]);
        assert.equal(res.body.token_endpoint_auth_method, 'none');
        assert.deepEqual(res.body.grant_types, ['authorization_code', 'refresh_token']);
        assert.equal(res.body.logo_uri, undefined, 'members it does not act on are dropped');
        assert.ok(Math.abs(res.body.client_id_issued_at - Date.now() / 1000) < 10);
        assert.ok(m.events.events.some((e) => e.type === 'client.registered' && e.clientId === clientId));

        const unregistered = await browser.get(new URL(`/oauth/authorize?${new URLSearchParams({
          response_type: 'code', client_id: clientId, redirect_uri: 'http://127.0.0.1/elsewhere', code_challenge: pkcePair().challenge,
          code_challenge_method: 'S256', resource: ISSUES, agent: AGENT,
        })}`, m.url));
        assert.equal(unregistered.status, 400);
        assert.equal(unregistered.location, undefined, 'never redirected to an unregistered URI');

        const { verifier, challenge } = pkcePair();
        const consent = await toConsent(browser, m.issuer, { clientId, redirectUri: redirect, challenge, resource: ISSUES, agent: AGENT, state: 'st-dcr' }, password);
        assert.match(consent.html, /<em>Registered Notes<\/em>/);
        const code = codeFrom(await approve(browser, consent), { redirectUri: redirect, state: 'st-dcr', issuer: m.issuer });
        const tokens = ok(await oauthPost(m.url, { grant_type: 'authorization_code', client_id: clientId, code, redirect_uri: redirect, code_verifier: verifier }), 'code exchange');
        assert.equal(decodeJwt(tokens.access_token).client_id, clientId);
        assert.match(tokens.refresh_token, /^mrt_/);
      });

      const rows: Array<[string, string, string]> = [
        ['a JSON array', '[]', 'invalid_client_metadata'],
        ['a JSON string', '"client"', 'invalid_client_metadata'],
        ['no redirect_uris (authorization_code by default)', '{"client_name":"x","token_endpoint_auth_method":"none"}', 'invalid_redirect_uri'],
        ['redirect_uris a string', '{"redirect_uris":"https://app.example/cb"}', 'invalid_redirect_uri'],
        ['redirect_uris with a number', '{"redirect_uris":[7]}', 'invalid_redirect_uri'],
        ['http redirect URI on a public host', '{"redirect_uris":["http://app.example/cb"]}', 'invalid_redirect_uri'],
        ['redirect URI with a fragment', '{"redirect_uris":["https://app.example/cb#x"]}', 'invalid_redirect_uri'],
        ['redirect URI with user info', '{"redirect_uris":["https://user:pw@app.example/cb"]}', 'invalid_redirect_uri'],
        ['relative redirect URI', '{"redirect_uris":["/cb"]}', 'invalid_redirect_uri'],
        ['private-use scheme without a dot', '{"redirect_uris":["myapp:/cb"]}', 'invalid_redirect_uri'],
        ['javascript: redirect URI', '{"redirect_uris":["javascript:alert(1)"]}', 'invalid_redirect_uri'],
        ['unknown grant type', '{"redirect_uris":["https://app.example/cb"],"grant_types":["implicit"]}', 'invalid_client_metadata'],
        ['refresh_token without authorization_code', `{"grant_types":["refresh_token","${GRANT_TOKEN_EXCHANGE}"]}`, 'invalid_client_metadata'],
        ['response type token', '{"redirect_uris":["https://app.example/cb"],"response_types":["token"]}', 'invalid_client_metadata'],
        ['tls_client_auth', '{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"tls_client_auth"}', 'invalid_client_metadata'],
        ['inline jwks', '{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[]}}', 'invalid_client_metadata'],
        ['client_name with a bidi override', '{"redirect_uris":["https://app.example/cb"],"client_name":"Good\\u202eevil"}', 'invalid_client_metadata'],
        ['empty client_name', '{"redirect_uris":["https://app.example/cb"],"client_name":" "}', 'invalid_client_metadata'],
      ];
      for (const [name, body, error] of rows) {
        it(`refuses a registration: ${name} -> 400 ${error}`, async () => {
          const registered = m.events.events.filter((e) => e.type === 'client.registered').length;
          const res = await register(body);
          assert.equal(res.status, 400, `${res.status} ${JSON.stringify(res.body)}`);
          assert.equal(res.body.error, error, JSON.stringify(res.body));
          assert.equal(typeof res.body.error_description, 'string');
          assert.equal(res.body.client_id, undefined);
          assert.equal(m.events.events.filter((e) => e.type === 'client.registered').length, registered, 'nothing was registered');
        });
      }

      it('refuses a body that is not JSON with 400 invalid_client_metadata and an OAuth error body', async () => {
        for (const body of ['{"redirect_uris": [', '', 'redirect_uris=https://app.example/cb']) {
          const res = await register(body);
          assert.equal(res.status, 400, `${JSON.stringify(body)}: ${res.status} ${JSON.stringify(res.body)}`);
          assert.equal(res.body.error, 'invalid_client_metadata', `${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
          assert.equal(typeof res.body.error_description, 'string');
        }
      });

      it('refuses a body that is not JSON with 400 and registers nothing (whatever the error shape)', async () => {
        const registered = m.events.events.filter((e) => e.type === 'client.registered').length;
        const res = await register('{"redirect_uris": [');
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(res.body.client_id, undefined);
        assert.equal(m.events.events.filter((e) => e.type === 'client.registered').length, registered);
      });

      describe('when disabled', () => {
        let off: TestMandate;
        before(async () => {
          off = await startTestMandate({ yaml: flowsYaml({ dynamicRegistration: false }) });
        });
        after(() => off.close());

        it('the route is 404 and the metadata has no registration_endpoint', async () => {
          const res = await fetch(`${off.url}/oauth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'none' }) });
          assert.equal(res.status, 404, await res.text());
          const meta = (await off.call('GET', '/.well-known/oauth-authorization-server')).body;
          assert.equal(meta.issuer, off.issuer);
          assert.equal('registration_endpoint' in meta, false, JSON.stringify(meta));
        });
      });
    });

    describe('5. a client known by its Client ID Metadata Document', () => {
      let docs: DocumentServer;
      let clientId: string;

      before(async () => {
        docs = await serveDocuments((origin) => ({
          '/client.json': { type: 'application/json', body: JSON.stringify({
            client_id: `${origin}/client.json`, client_name: 'Notes Helper', redirect_uris: [REDIRECT_URI],
            grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'none',
          }) },
          '/text.json': { type: 'text/plain', body: JSON.stringify({ client_id: `${origin}/text.json`, client_name: 'Wrong type', redirect_uris: [REDIRECT_URI] }) },
          '/other.json': { type: 'application/json', body: JSON.stringify({ client_id: `${origin}/client.json`, client_name: 'Impostor', redirect_uris: [REDIRECT_URI] }) },
        }));
        clientId = `${docs.origin}/client.json`;
      });
      after(() => docs.close());

      it('advertises metadata documents', async () => {
        assert.equal((await m.call('GET', '/.well-known/oauth-authorization-server')).body.client_id_metadata_document_supported, true);
      });

      it('uses the document URL as client_id at /oauth/authorize and /oauth/token; the consent page shows its client_name', async () => {
        const { code, verifier, consentHtml } = await consentedCode(m, browser, { clientId, redirectUri: REDIRECT_URI, resource: ISSUES, agent: AGENT, state: 'st-cimd' }, password);
        assert.ok((docs.hits.get('/client.json') ?? 0) >= 1, 'Mandate fetched the document');
        assert.match(consentHtml, /<em>Notes Helper<\/em> asks you/);
        const tokens = ok(await redeem(m, clientId, code, verifier), 'code exchange as the document client');
        const c = decodeJwt(tokens.access_token);
        assert.equal(c.client_id, clientId);
        assert.equal(c.sub, (await m.admin('GET', '/admin/v1/users')).body.users.find((u: { username: string }) => u.username === USER.username).id);
        assert.equal(tokens.refresh_token, undefined, 'the document asks for no refresh_token grant');
        refused(await redeem(m, WEB_APP, code, verifier), 400, 'invalid_grant');
      });

      it('refuses a redirect URI the document does not list, and documents that do not qualify, on an error page', async () => {
        const cases: Array<[string, string, RegExp]> = [
          [clientId, 'http://127.0.0.1/not-listed', /redirect_uri is not registered/],
          [`${docs.origin}/text.json`, REDIRECT_URI, /content type/],
          [`${docs.origin}/other.json`, REDIRECT_URI, /client_id member does not equal/],
          [`${docs.origin}/missing.json`, REDIRECT_URI, /HTTP 404/],
          [`${docs.origin}/`, REDIRECT_URI, /must contain a path/],
        ];
        for (const [id, redirectUri, why] of cases) {
          const res = await browser.get(new URL(`/oauth/authorize?${new URLSearchParams({
            response_type: 'code', client_id: id, redirect_uri: redirectUri, code_challenge: pkcePair().challenge,
            code_challenge_method: 'S256', resource: ISSUES, agent: AGENT,
          })}`, m.url));
          assert.equal(res.status, 400, `${id} ${redirectUri}: ${res.status}`);
          assert.equal(res.location, undefined, `${id}: no redirect`);
          assert.match(res.text, why, `${id}: ${res.text.slice(0, 400)}`);
        }
      });
    });

    describe('6. RFC 7009 revocation of refresh tokens', () => {
      const revoke = (token: string, clientId = WEB_APP) => oauthPost(m.url, { token, token_type_hint: 'refresh_token', client_id: clientId }, { path: '/oauth/revoke' });
      const family = async (state: string) => {
        const { code, verifier } = await consentedCode(m, browser, webApp(state), password);
        return ok(await redeem(m, WEB_APP, code, verifier), 'code exchange').refresh_token as string;
      };

      it('revoking the current refresh token by its client makes it unusable', async () => {
        const rt = await family('st-rev-1');
        const res = await revoke(rt);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(res.body, {});
        refused(await refresh(m, rt), 400, 'invalid_grant', /unknown, revoked or expired/);
      });

      it('revoking any token of a family (here a spent one) kills the whole family', async () => {
        const rt1 = await family('st-rev-2');
        const rt2 = ok(await refresh(m, rt1), 'refresh').refresh_token as string;
        assert.equal((await revoke(rt1)).status, 200);
        refused(await refresh(m, rt2), 400, 'invalid_grant', /unknown, revoked or expired/);
      });

      it('answers 200 to unknown tokens', async () => {
        assert.equal((await revoke('mrt_not-a-real-token')).status, 200);
        assert.equal((await revoke('not even a token')).status, 200);
      });

      it('another client\'s revocation request is answered 200 and leaves the token usable (RFC 7009 §2.1)', async () => {
        const rt = await family('st-rev-3');
        assert.equal((await revoke(rt, AGENT_APP)).status, 200);
        ok(await refresh(m, rt), 'refresh after a foreign revocation request');
      });
    });
  });

  describe('DPoP server nonces on the code and refresh grants (RFC 9449 §8)', () => {
    let m: TestMandate;
    let browser: CookieBrowser;
    const password = passwordSignIn(USER.username, USER.password);

    before(async () => {
      m = await startTestMandate({ yaml: flowsYaml({ dynamicRegistration: false, requireNonce: true }) });
      assert.equal((await m.admin('POST', '/admin/v1/users', USER)).status, 201);
      browser = new CookieBrowser(m.url);
    });
    after(() => m.close());

    /** A request refused with use_dpop_nonce, then sent again with a proof carrying the nonce it named. */
    const withNonceRetry = async (key: DpopSigner, params: Record<string, string>) => {
      const first = await oauthPost(m.url, params, { dpop: key });
      refused(first, 400, 'use_dpop_nonce');
      const nonce = first.headers.get('dpop-nonce');
      assert.ok(nonce, 'the refusal carries DPoP-Nonce');
      return oauthPost(m.url, params, { dpopProof: await key.proof('POST', `${m.url}/oauth/token`, { nonce }) });
    };
    const code = (state: string) => consentedCode(m, browser, { clientId: WEB_APP, redirectUri: REDIRECT_URI, resource: ISSUES, agent: AGENT, state }, password);

    it('baseline: a proof that already carries a current nonce redeems the code and refreshes', async () => {
      const key = await DpopSigner.generate();
      const proof = async () => key.proof('POST', `${m.url}/oauth/token`, { nonce: m.delegation.oauth.dpop.nonces.current() });
      const { code: c, verifier } = await code('st-nonce-0');
      const tokens = ok(await redeem(m, WEB_APP, c, verifier, { dpopProof: await proof() }), 'code exchange with a nonce');
      assert.equal(tokens.token_type, 'DPoP');
      assert.ok(tokens.refresh_token);
      ok(await refresh(m, tokens.refresh_token, { dpopProof: await proof() }), 'refresh with a nonce');
    });

    it('the code grant: a client that retries with the nonce it was given gets its tokens', async () => {
      const key = await DpopSigner.generate();
      const { code: c, verifier } = await code('st-nonce-1');
      const tokens = ok(await withNonceRetry(key, { grant_type: 'authorization_code', client_id: WEB_APP, code: c, redirect_uri: REDIRECT_URI, code_verifier: verifier }), 'code exchange after the nonce retry');
      assert.equal(tokens.token_type, 'DPoP');
    });

    it('the refresh grant: a client that retries with the nonce it was given gets its tokens, and the family lives on', async () => {
      const key = await DpopSigner.generate();
      const { code: c, verifier } = await code('st-nonce-2');
      const tokens = ok(await redeem(m, WEB_APP, c, verifier, { dpopProof: await key.proof('POST', `${m.url}/oauth/token`, { nonce: m.delegation.oauth.dpop.nonces.current() }) }), 'code exchange with a nonce');
      ok(await withNonceRetry(key, { grant_type: 'refresh_token', client_id: WEB_APP, refresh_token: tokens.refresh_token }), 'refresh after the nonce retry');
    });
  });
});
