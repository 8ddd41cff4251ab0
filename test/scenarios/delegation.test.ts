/**
 * Scenario: the delegation authority end to end, through its real interfaces. An admin creates a
 * directory user and issues a mandate to an agent that enrolled through the identity API; the agent
 * exchanges the mandate (plus its JWT-SVID, or its X.509-SVID over mutual TLS) for a sender-bound
 * On-Behalf-Of token; sub-agents narrow it; resource servers verify and introspect it; revoking the
 * mandate kills every token at once; an external OAuth client library speaks to the same endpoints;
 * token-signing keys rotate without breaking issued tokens; and no token reaches the log, whose
 * lines carry the trace id of the request they were written for.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, type X509Certificate } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { calculateJwkThumbprint, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { isOAuthError } from '../../src/delegation/oauth/errors.ts';
import { DpopSigner } from '../../src/sdk/agent/dpop.ts';
import {
  enrolAgent, GRANT_TOKEN_EXCHANGE, introspect, INTROSPECTOR, ISSUES, JWT_BEARER, mandateExchange, oauthPost,
  PUBLIC_CLIENT, startDelegationMandate, TT, WIKI, type EnrolledAgent, type OAuthReply, type ServerTls,
} from '../support/delegation.ts';
import type { TestMandate } from '../support/mandate.ts';

const AGENT = 'spiffe://example.org/agent/triage-bot';
const SUB_AGENT = 'spiffe://example.org/agent/summarizer';
const THIRD_AGENT = 'spiffe://example.org/agent/translator';
const MAX_TTL = 300;

type Mandate = { id: string; expires_at: string; [k: string]: unknown };

/** Every claim a Mandate OBO token carries, and no other. */
const OBO_CLAIMS = ['act', 'aud', 'client_id', 'cnf', 'exp', 'iat', 'iss', 'jti', 'mandate', 'principal_iss', 'scope', 'sub'];

function ok(res: OAuthReply, what: string): any {
  assert.equal(res.status, 200, `${what}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

function refused(res: OAuthReply, status: number, error: string, description?: RegExp): void {
  assert.equal(res.status, status, `expected ${status} ${error}, got ${res.status} ${JSON.stringify(res.body)}`);
  assert.equal(res.body.error, error, JSON.stringify(res.body));
  assert.equal(typeof res.body.error_description, 'string');
  if (description) assert.match(res.body.error_description, description);
}

function thumbprint(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('base64url');
}

describe('delegation authority', () => {
  let m: TestMandate & { serverTls?: ServerTls };
  let agent: EnrolledAgent;
  let subAgent: EnrolledAgent;
  let thirdAgent: EnrolledAgent;
  let aliceId: string;
  /** Everything secret this scenario handled: none of it may reach the log or the events. */
  const secrets: string[] = [INTROSPECTOR.secret];

  const actorToken = async (a: EnrolledAgent, audience = [m.issuer]) => {
    const token = await a.jwtSvid(audience);
    secrets.push(token);
    return token;
  };
  const grantMandate = async (body: Record<string, unknown>): Promise<Mandate> => {
    const res = await m.admin('POST', '/admin/v1/mandates', { username: 'alice', agent: AGENT, scopes: ['issues:read', 'issues:comment'], resources: [ISSUES], ...body });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body;
  };
  const exchange = async (params: Record<string, string | string[]>, opts: Parameters<typeof oauthPost>[2] = {}, baseUrl = m.url) => {
    const res = await oauthPost(baseUrl, params, opts);
    if (typeof res.body?.access_token === 'string') secrets.push(res.body.access_token);
    return res;
  };

  before(async () => {
    m = await startDelegationMandate({ mtls: true });
    const user = await m.admin('POST', '/admin/v1/users', { username: 'alice', display_name: 'Alice Example', password: 'correct horse battery staple' });
    assert.equal(user.status, 201, JSON.stringify(user.body));
    aliceId = user.body.id;
    agent = await enrolAgent(m, AGENT);
    subAgent = await enrolAgent(m, SUB_AGENT);
    thirdAgent = await enrolAgent(m, THIRD_AGENT);
  });
  after(() => m.close());

  describe('the README flow over HTTP', () => {
    let mandate: Mandate;
    let short: Mandate;
    let signer: DpopSigner;
    let token: string;

    it('publishes RFC 8414 metadata naming the endpoints it serves', async () => {
      const meta = (await m.call('GET', '/.well-known/oauth-authorization-server')).body;
      assert.equal(meta.issuer, m.issuer);
      assert.equal(meta.token_endpoint, `${m.issuer}/oauth/token`);
      assert.equal(meta.introspection_endpoint, `${m.issuer}/oauth/introspect`);
      assert.equal(meta.jwks_uri, `${m.issuer}/oauth/jwks`);
      assert.ok(meta.grant_types_supported.includes(GRANT_TOKEN_EXCHANGE));
      assert.ok(meta.subject_token_types_supported.includes(TT.mandate));
      assert.deepEqual(meta.scopes_supported, ['issues:read', 'issues:comment', 'wiki:read']);
      assert.ok(meta.dpop_signing_alg_values_supported.includes('ES256'));
    });

    it('lets an admin issue a mandate for a directory user to an enrolled agent', async () => {
      mandate = await grantMandate({ ttl: '8h' });
      assert.match(mandate.id, /^mdt_/);
      assert.deepEqual(mandate.principal, { issuer: m.issuer, subject: aliceId, name: 'Alice Example' });
      assert.equal(mandate.agent, AGENT);
      assert.equal(mandate.status, 'active');
      assert.equal(mandate.origin, 'admin');
      const listed = await m.admin('GET', `/admin/v1/mandates?agent=${encodeURIComponent(AGENT)}&status=active`);
      assert.ok(listed.body.mandates.some((x: Mandate) => x.id === mandate.id));
      assert.ok(m.events.events.some((e) => e.type === 'mandate.granted' && e.mandateId === mandate.id && e.spiffeId === AGENT));
    });

    it('refuses mandates the configuration does not allow', async () => {
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{ scopes: ['issues:delete'] }, /unknown scope/],
        [{ resources: ['https://elsewhere.example/mcp'] }, /unknown resource/],
        [{ scopes: ['wiki:read'] }, /does not apply/],
        [{ ttl: '365d' }, /exceeds the maximum/],
        [{ max_depth: 9 }, /max depth/],
        [{ username: 'nobody' }, /no user nobody/],
        [{ agent: 'not a spiffe id' }, /invalid SPIFFE ID/],
        [{ ttl: 'forever' }, /not a duration/],
        [{ scopes: [] }, /at least one scope/],
        [{ resources: [] }, /at least one resource/],
        [{ max_depth: 1.5 }, /max depth/],
        [{ constraints: [1] }, /constraints must be a JSON object/],
      ];
      for (const [body, message] of cases) {
        const res = await m.admin('POST', '/admin/v1/mandates', { username: 'alice', agent: AGENT, scopes: ['issues:read'], resources: [ISSUES], ...body });
        assert.ok(res.status === 400 || res.status === 404, `${JSON.stringify(body)} -> ${res.status} ${JSON.stringify(res.body)}`);
        assert.match(res.body.message, message);
      }
    });

    it('exchanges the mandate and the agent\'s JWT-SVID (fetched with SVID-PoP) for a DPoP-bound OBO token', async () => {
      signer = await DpopSigner.generate();
      const res = await exchange(mandateExchange(mandate.id, await actorToken(agent), { resource: ISSUES }), { dpop: signer });
      const body = ok(res, 'exchange');
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.equal(body.token_type, 'DPoP');
      assert.equal(body.issued_token_type, TT.accessToken);
      assert.equal(body.scope, 'issues:read issues:comment');
      assert.ok(Number.isInteger(body.expires_in) && body.expires_in > 0 && body.expires_in <= MAX_TTL, String(body.expires_in));
      assert.equal(body.refresh_token, undefined);
      token = body.access_token;

      const header = decodeProtectedHeader(token);
      assert.equal(header.typ, 'at+jwt');
      assert.equal(header.alg, 'ES256');
      const jwks = (await m.call('GET', '/oauth/jwks')).body;
      assert.ok(jwks.keys.some((k: { kid: string }) => k.kid === header.kid), 'signed by a published key');

      const c = decodeJwt(token) as Record<string, any>;
      assert.deepEqual(Object.keys(c).sort(), OBO_CLAIMS);
      assert.equal(c.iss, m.issuer);
      assert.equal(c.sub, aliceId);
      assert.equal(c.principal_iss, m.issuer);
      assert.equal(c.aud, ISSUES, 'exactly one audience, as a string');
      assert.deepEqual(c.act, { sub: AGENT });
      assert.equal(c.scope, 'issues:read issues:comment');
      assert.equal(c.mandate, mandate.id);
      assert.deepEqual(c.cnf, { jkt: signer.jkt });
      assert.equal(c.client_id, PUBLIC_CLIENT);
      assert.match(c.jti, /^[A-Za-z0-9_-]{16,}$/);
      const now = Math.floor(Date.now() / 1000);
      assert.ok(Math.abs(c.iat - now) <= 5);
      assert.ok(c.exp - c.iat <= MAX_TTL && c.exp - c.iat === body.expires_in);
      assert.ok(c.exp * 1000 <= Date.parse(mandate.expires_at));
    });

    it('narrows the scope on request and never outlives the mandate', async () => {
      short = await grantMandate({ ttl: '2m', scopes: ['issues:read'] });
      const body = ok(await exchange(mandateExchange(short.id, await actorToken(agent)), { dpop: signer }), 'exchange under a short mandate');
      const c = decodeJwt(body.access_token);
      assert.equal(c.aud, ISSUES, 'the only resource of the mandate is the default');
      assert.equal(c.scope, 'issues:read');
      assert.ok((c.exp as number) * 1000 <= Date.parse(short.expires_at), `exp ${c.exp} after the mandate's ${short.expires_at}`);
      assert.ok(body.expires_in <= 120);

      const narrowed = ok(await exchange(mandateExchange(mandate.id, await actorToken(agent), { scope: 'issues:comment' }), { dpop: signer }), 'narrowed');
      assert.equal(narrowed.scope, 'issues:comment');
      assert.equal(decodeJwt(narrowed.access_token).scope, 'issues:comment');
    });

    it('verifies at a resource server only with a fresh DPoP proof of the bound key', async () => {
      const url = `${ISSUES}/tools/call`;
      const v = await m.delegation.verifier.verify({
        authorization: `DPoP ${token}`, dpop: await signer.proof('POST', url, { accessToken: token }), method: 'POST', url, audience: ISSUES,
      });
      assert.deepEqual(v.principal, { issuer: m.issuer, subject: aliceId });
      assert.equal(v.actor, AGENT);
      assert.deepEqual(v.chain, [AGENT]);
      assert.deepEqual(v.scopes, ['issues:read', 'issues:comment']);
      assert.equal(v.mandateId, mandate.id);
      assert.equal(v.binding, 'dpop');

      const other = await DpopSigner.generate();
      const replayed = await signer.proof('POST', url, { accessToken: token });
      await m.delegation.verifier.verify({ authorization: `DPoP ${token}`, dpop: replayed, method: 'POST', url, audience: ISSUES });
      const cases: Array<[string, () => Promise<Parameters<typeof m.delegation.verifier.verify>[0]>, RegExp]> = [
        ['Bearer scheme', async () => ({ authorization: `Bearer ${token}`, dpop: await signer.proof('POST', url, { accessToken: token }), method: 'POST', url, audience: ISSUES }), /DPoP-bound/],
        ['no proof', async () => ({ authorization: `DPoP ${token}`, dpop: undefined, method: 'POST', url, audience: ISSUES }), /./],
        ['proof without ath', async () => ({ authorization: `DPoP ${token}`, dpop: await signer.proof('POST', url), method: 'POST', url, audience: ISSUES }), /ath/],
        ['proof of another key', async () => ({ authorization: `DPoP ${token}`, dpop: await other.proof('POST', url, { accessToken: token }), method: 'POST', url, audience: ISSUES }), /another key/],
        ['proof for another URL', async () => ({ authorization: `DPoP ${token}`, dpop: await signer.proof('POST', `${WIKI}/x`, { accessToken: token }), method: 'POST', url, audience: ISSUES }), /htu/],
        ['proof for another method', async () => ({ authorization: `DPoP ${token}`, dpop: await signer.proof('GET', url, { accessToken: token }), method: 'POST', url, audience: ISSUES }), /htm/],
        ['replayed proof', async () => ({ authorization: `DPoP ${token}`, dpop: replayed, method: 'POST', url, audience: ISSUES }), /./],
        ['another resource', async () => ({ authorization: `DPoP ${token}`, dpop: await signer.proof('POST', `${WIKI}/x`, { accessToken: token }), method: 'POST', url: `${WIKI}/x`, audience: WIKI }), /not for this resource/],
        ['tampered token', async () => {
          const [h, , s] = token.split('.');
          const claims = { ...decodeJwt(token), scope: 'issues:read issues:comment wiki:read' };
          const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
          return { authorization: `DPoP ${forged}`, dpop: await signer.proof('POST', url, { accessToken: forged }), method: 'POST', url, audience: ISSUES };
        }, /signature/],
        ['no credentials', async () => ({ authorization: undefined, dpop: undefined, method: 'POST', url, audience: ISSUES }), /required/],
      ];
      for (const [name, presented, message] of cases) {
        await assert.rejects(m.delegation.verifier.verify(await presented()), (err: unknown) => {
          assert.ok(isOAuthError(err), `${name}: ${String(err)}`);
          assert.ok(err.error === 'invalid_token' || err.error === 'invalid_dpop_proof', `${name}: ${err.error}`);
          assert.equal(err.status, 401, name);
          assert.match(err.message, message, name);
          assert.ok(err.headers['www-authenticate'], `${name}: a WWW-Authenticate challenge`);
          return true;
        }, name);
      }
    });

    it('introspects for an authenticated resource server, and only for it', async () => {
      const body = ok(await introspect(m, token), 'introspection');
      const c = decodeJwt(token);
      assert.equal(body.active, true);
      for (const claim of OBO_CLAIMS) assert.deepEqual(body[claim], c[claim], claim);
      assert.equal(body.token_type, 'DPoP');
      assert.deepEqual(body.act_chain, [AGENT]);

      refused(await oauthPost(m.url, { token }, { path: '/oauth/introspect' }), 401, 'invalid_client');
      refused(await oauthPost(m.url, { token }, { path: '/oauth/introspect', basic: { clientId: INTROSPECTOR.clientId, secret: 'wrong' } }), 401, 'invalid_client');
      refused(await oauthPost(m.url, { token, client_id: PUBLIC_CLIENT }, { path: '/oauth/introspect' }), 401, 'invalid_client', /public clients/);
      for (const garbage of ['not-a-token', `${token}x`, await actorToken(agent)]) {
        assert.deepEqual(ok(await introspect(m, garbage), 'garbage introspection'), { active: false });
      }
    });

    it('does not let a token_type_hint that does not fit hide an active token (RFC 7662 §2.1)', async () => {
      // "If the server is unable to locate the token using the given hint, it MUST extend its search across all of its supported token types."
      const body = ok(await oauthPost(m.url, { token, token_type_hint: 'refresh_token' }, { path: '/oauth/introspect', basic: INTROSPECTOR }), 'introspection with a wrong hint');
      assert.equal(body.active, true, `token_type_hint=refresh_token on an access token: ${JSON.stringify(body)}`);
      assert.equal(ok(await oauthPost(m.url, { token, token_type_hint: 'access_token' }, { path: '/oauth/introspect', basic: INTROSPECTOR }), 'right hint').active, true);
    });

    it('on revocation of the mandate: the verifier refuses at once, introspection says inactive, exchange is refused', async () => {
      const url = `${ISSUES}/tools/call`;
      const revoked = await m.admin('POST', `/admin/v1/mandates/${mandate.id}/revoke`);
      assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
      assert.equal(revoked.body.status, 'revoked');
      assert.equal(revoked.body.revoked_by, 'admin');

      await assert.rejects(
        m.delegation.verifier.verify({ authorization: `DPoP ${token}`, dpop: await signer.proof('POST', url, { accessToken: token }), method: 'POST', url, audience: ISSUES }),
        (err: unknown) => isOAuthError(err, 'invalid_token') && /revoked/.test(err.message),
      );
      assert.deepEqual(ok(await introspect(m, token), 'introspection after revocation'), { active: false });
      refused(await exchange(mandateExchange(mandate.id, await actorToken(agent)), { dpop: signer }), 400, 'invalid_request', /revoked/);

      const list = (await m.call('GET', '/oauth/revocations?after=0')).body;
      assert.ok(list.entries.some((e: { kind: string; id: string }) => e.kind === 'mandate' && e.id === mandate.id));
      assert.ok(m.events.events.some((e) => e.type === 'mandate.revoked' && e.mandateId === mandate.id));

      // another mandate of the same principal and agent lives on
      ok(await exchange(mandateExchange(short.id, await actorToken(agent)), { dpop: signer }), 'exchange under the other mandate');
    });
  });

  describe('token endpoint refusals', () => {
    let mandate: Mandate;
    let actor: string;
    let signer: DpopSigner;

    before(async () => {
      mandate = await grantMandate({});
      actor = await actorToken(agent);
      signer = await DpopSigner.generate();
    });

    it('answers hostile and malformed requests with the RFC error and a reason', async () => {
      const tokenUrl = `${m.issuer}/oauth/token`;
      const foreignKey = await generateKeyPair('ES256');
      const forged = await new SignJWT({ sub: aliceId, principal_iss: m.issuer, aud: ISSUES, client_id: PUBLIC_CLIENT, jti: 'forged-jti-0000000', scope: 'issues:read' })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'nope' }).setIssuer(m.issuer).setIssuedAt().setExpirationTime('5m').sign(foreignKey.privateKey);
      const obo = ok(await exchange(mandateExchange(mandate.id, actor), { dpop: signer }), 'an OBO token to misuse').access_token as string;
      const base = () => mandateExchange(mandate.id, actor);
      const without = (key: string) => Object.fromEntries(Object.entries(base()).filter(([k]) => k !== key));
      type Case = [string, Record<string, string | string[]>, Parameters<typeof oauthPost>[2] | (() => Promise<Parameters<typeof oauthPost>[2]>), number, string, RegExp?];
      const cases: Case[] = [
        ['no grant_type', without('grant_type'), { dpop: signer }, 400, 'invalid_request', /grant_type/],
        ['unknown grant', { ...base(), grant_type: 'password' }, { dpop: signer }, 400, 'unsupported_grant_type'],
        ['no client identification', without('client_id'), { dpop: signer }, 401, 'invalid_client'],
        ['unknown client', { ...base(), client_id: 'nobody' }, { dpop: signer }, 401, 'invalid_client', /unknown client/],
        ['a SPIFFE ID as client_id without its SVID', { ...base(), client_id: AGENT }, { dpop: signer }, 401, 'invalid_client', /SVID/],
        ['client secret of a public client', { ...base(), client_secret: 'x' }, { dpop: signer }, 401, 'invalid_client'],
        ['no sender constraint', base(), {}, 400, 'invalid_request', /sender-constrained/],
        ['DPoP proof for another URL', base(), async () => ({ dpopProof: await signer.proof('POST', `${m.issuer}/oauth/introspect`) }), 400, 'invalid_dpop_proof', /htu/],
        ['DPoP proof for GET', base(), async () => ({ dpopProof: await signer.proof('GET', tokenUrl) }), 400, 'invalid_dpop_proof', /htm/],
        ['DPoP proof that is not a JWS', base(), { dpopProof: 'not.a.proof' }, 400, 'invalid_dpop_proof'],
        ['DPoP proof that is the OBO token', base(), { dpopProof: obo }, 400, 'invalid_dpop_proof'],
        ['no actor token', without('actor_token'), { dpop: signer }, 400, 'invalid_request', /actor_token/],
        ['actor token of another type', { ...base(), actor_token_type: TT.accessToken }, { dpop: signer }, 400, 'invalid_request', /actor_token_type/],
        ['actor token for another audience', { ...base(), actor_token: await actorToken(agent, ['https://elsewhere.example']) }, { dpop: signer }, 400, 'invalid_request', /actor token/],
        ['an OBO token as actor token', { ...base(), actor_token: obo }, { dpop: signer }, 400, 'invalid_request', /actor token/],
        ['unknown subject token type', { ...base(), subject_token_type: 'urn:x:nope' }, { dpop: signer }, 400, 'invalid_request', /subject_token_type/],
        ['unknown mandate', { ...base(), subject_token: 'mdt_doesnotexist' }, { dpop: signer }, 400, 'invalid_request', /no mandate/],
        ['another agent\'s mandate', { ...base(), actor_token: await actorToken(subAgent) }, { dpop: signer }, 400, 'invalid_request', /does not name agent/],
        ['two resources', { ...base(), resource: [ISSUES, WIKI] }, { dpop: signer }, 400, 'invalid_target', /exactly one/],
        ['resource and a different audience', { ...base(), resource: ISSUES, audience: WIKI }, { dpop: signer }, 400, 'invalid_target'],
        ['a resource outside the mandate', { ...base(), resource: WIKI }, { dpop: signer }, 400, 'invalid_target'],
        ['a resource with a fragment', { ...base(), resource: `${ISSUES}#x` }, { dpop: signer }, 400, 'invalid_target', /fragment/],
        ['a relative resource', { ...base(), resource: '/mcp/issues' }, { dpop: signer }, 400, 'invalid_target', /absolute/],
        ['scope beyond the mandate', { ...base(), scope: 'issues:read wiki:read' }, { dpop: signer }, 400, 'invalid_scope'],
        ['scope with forbidden characters', { ...base(), scope: 'issues:read "x"' }, { dpop: signer }, 400, 'invalid_scope'],
        ['a refresh token requested', { ...base(), requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }, { dpop: signer }, 400, 'invalid_request', /requested_token_type/],
        ['repeated subject_token', { ...base(), subject_token: [mandate.id, 'mdt_other'] }, { dpop: signer }, 400, 'invalid_request', /repeated/],
        ['a forged access token as subject', { ...base(), subject_token: forged, subject_token_type: TT.accessToken }, { dpop: signer }, 400, 'invalid_request', /not a valid access token/],
        ['a JWT-SVID as subject', { ...base(), subject_token: actor, subject_token_type: TT.jwt }, { dpop: signer }, 400, 'invalid_request'],
        ['a client assertion for another audience', { ...without('client_id'), client_assertion_type: JWT_BEARER, client_assertion: await actorToken(agent, ['https://elsewhere.example']) }, { dpop: signer }, 401, 'invalid_client', /client assertion/],
        ['a client assertion of the wrong type', { ...without('client_id'), client_assertion_type: 'urn:x', client_assertion: actor }, { dpop: signer }, 400, 'invalid_request', /client_assertion_type/],
        ['a client assertion for a public client', { ...base(), client_assertion_type: JWT_BEARER, client_assertion: actor }, { dpop: signer }, 401, 'invalid_client'],
        ['an actor token of another agent than the assertion', { ...without('client_id'), client_assertion_type: JWT_BEARER, client_assertion: await actorToken(subAgent) }, { dpop: signer }, 400, 'invalid_request', /client authenticated as/],
      ];
      for (const [name, params, opts, status, error, description] of cases) {
        const res = await oauthPost(m.url, params, typeof opts === 'function' ? await opts() : opts);
        assert.equal(res.status, status, `${name}: ${res.status} ${JSON.stringify(res.body)}`);
        assert.equal(res.body.error, error, `${name}: ${JSON.stringify(res.body)}`);
        if (description) assert.match(res.body.error_description, description, name);
        assert.equal(res.headers.get('cache-control'), 'no-store', name);
      }
      // a body that is not form-encoded
      const json = await fetch(`${m.url}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/json', dpop: await signer.proof('POST', tokenUrl) }, body: JSON.stringify(base()) });
      assert.equal(json.status, 400);
      assert.equal(((await json.json()) as { error: string }).error, 'invalid_request');
      assert.ok(m.events.events.some((e) => e.type === 'token.refused' && e.error === 'invalid_target'));
    });

    it('accepts a DPoP proof once', async () => {
      const proof = await signer.proof('POST', `${m.issuer}/oauth/token`);
      ok(await exchange(mandateExchange(mandate.id, actor), { dpopProof: proof }), 'first use');
      refused(await exchange(mandateExchange(mandate.id, actor), { dpopProof: proof }), 400, 'invalid_dpop_proof');
    });

    it('accepts JWT-SVIDs addressed to the token endpoint URL as well as to the issuer', async () => {
      const viaEndpoint = await actorToken(agent, [`${m.issuer}/oauth/token`]);
      ok(await exchange(mandateExchange(mandate.id, viaEndpoint), { dpop: signer }), 'actor token for the token endpoint');
      ok(await exchange({
        grant_type: GRANT_TOKEN_EXCHANGE, subject_token: mandate.id, subject_token_type: TT.mandate,
        client_assertion_type: JWT_BEARER, client_assertion: viaEndpoint,
      }, { dpop: signer }), 'client assertion for the token endpoint');
    });

    it('revokes one token on the client\'s request (RFC 7009) and leaves the mandate alone', async () => {
      const token = ok(await exchange(mandateExchange(mandate.id, actor), { dpop: signer }), 'a token to revoke').access_token as string;
      const other = ok(await exchange(mandateExchange(mandate.id, actor), { dpop: signer }), 'a token to keep').access_token as string;
      // another client's request is answered 200 and changes nothing
      assert.equal((await oauthPost(m.url, { token }, { path: '/oauth/revoke', basic: INTROSPECTOR })).status, 200);
      assert.equal(ok(await introspect(m, token), 'after a foreign revocation').active, true);
      assert.equal((await oauthPost(m.url, { token, token_type_hint: 'access_token', client_id: PUBLIC_CLIENT }, { path: '/oauth/revoke' })).status, 200);
      assert.deepEqual(ok(await introspect(m, token), 'after revocation'), { active: false });
      const url = `${ISSUES}/x`;
      await assert.rejects(
        m.delegation.verifier.verify({ authorization: `DPoP ${token}`, dpop: await signer.proof('GET', url, { accessToken: token }), method: 'GET', url, audience: ISSUES }),
        (err: unknown) => isOAuthError(err, 'invalid_token') && /revoked/.test(err.message),
      );
      assert.equal(ok(await introspect(m, other), 'the other token').active, true);
      refused(await oauthPost(m.url, { token, token_type_hint: 'id_token', client_id: PUBLIC_CLIENT }, { path: '/oauth/revoke' }), 400, 'unsupported_token_type');
    });

    it('lets the agent authenticate as itself with its JWT-SVID as client assertion', async () => {
      const body = ok(await exchange({
        grant_type: GRANT_TOKEN_EXCHANGE, subject_token: mandate.id, subject_token_type: TT.mandate,
        client_assertion_type: JWT_BEARER, client_assertion: await actorToken(agent),
      }, { dpop: signer }), 'private_key_jwt exchange');
      const c = decodeJwt(body.access_token);
      assert.equal(c.client_id, AGENT);
      assert.deepEqual(c.act, { sub: AGENT });
    });
  });

  describe('sub-agent chain', () => {
    let mandate: Mandate;
    let signerA: DpopSigner;
    let signerB: DpopSigner;
    let tokenA: string;
    let tokenB: string;
    const subExchange = async (subject: string, by: EnrolledAgent, signer: DpopSigner, extra: Record<string, string | string[]> = {}) => exchange({
      grant_type: GRANT_TOKEN_EXCHANGE, subject_token: subject, subject_token_type: TT.accessToken,
      client_assertion_type: JWT_BEARER, client_assertion: await actorToken(by), ...extra,
    }, { dpop: signer });

    before(async () => {
      mandate = await grantMandate({ max_depth: 1 });
      signerA = await DpopSigner.generate();
      signerB = await DpopSigner.generate('EdDSA');
      tokenA = ok(await exchange(mandateExchange(mandate.id, await actorToken(agent)), { dpop: signerA }), 'agent A').access_token;
    });

    it('lets agent B act on A\'s OBO token: act nests, scope narrows on request, same audience, no longer life', async () => {
      const res = await subExchange(tokenA, subAgent, signerB, { scope: 'issues:read' });
      const body = ok(res, 'sub-agent exchange');
      tokenB = body.access_token;
      assert.equal(body.token_type, 'DPoP');
      assert.equal(body.scope, 'issues:read');
      const a = decodeJwt(tokenA) as Record<string, any>;
      const b = decodeJwt(tokenB) as Record<string, any>;
      assert.deepEqual(Object.keys(b).sort(), OBO_CLAIMS);
      assert.deepEqual(b.act, { sub: SUB_AGENT, act: { sub: AGENT } });
      assert.equal(b.sub, aliceId);
      assert.equal(b.principal_iss, m.issuer);
      assert.equal(b.aud, a.aud);
      assert.equal(b.scope, 'issues:read');
      assert.equal(b.mandate, mandate.id);
      assert.deepEqual(b.cnf, { jkt: signerB.jkt });
      assert.equal(b.client_id, SUB_AGENT);
      assert.ok(b.exp <= a.exp, `child exp ${b.exp} > parent exp ${a.exp}`);
      assert.notEqual(b.jti, a.jti);

      const url = `${ISSUES}/tools/call`;
      const v = await m.delegation.verifier.verify({ authorization: `DPoP ${tokenB}`, dpop: await signerB.proof('POST', url, { accessToken: tokenB }), method: 'POST', url, audience: ISSUES });
      assert.equal(v.actor, SUB_AGENT);
      assert.deepEqual(v.chain, [SUB_AGENT, AGENT]);
      assert.deepEqual(v.scopes, ['issues:read']);
      await assert.rejects(
        m.delegation.verifier.verify({ authorization: `DPoP ${tokenB}`, dpop: await signerA.proof('POST', url, { accessToken: tokenB }), method: 'POST', url, audience: ISSUES }),
        (err: unknown) => isOAuthError(err, 'invalid_token'),
        'B\'s token needs B\'s key, not A\'s',
      );
      const exchanged = m.events.events.find((e) => e.type === 'token.exchanged' && e.jti === b.jti);
      assert.ok(exchanged, 'a token.exchanged event for the sub-agent token');
      assert.deepEqual(exchanged.chain, [SUB_AGENT, AGENT]);
      assert.equal(exchanged.mandateId, mandate.id);
      assert.deepEqual(exchanged.principal, { issuer: m.issuer, subject: aliceId });
      assert.equal(exchanged.binding, 'dpop');
    });

    it('keeps the parent\'s scopes when B names none, and lets B act through the public client too', async () => {
      const body = ok(await exchange({
        grant_type: GRANT_TOKEN_EXCHANGE, client_id: PUBLIC_CLIENT, subject_token: tokenA, subject_token_type: TT.accessToken,
        actor_token: await actorToken(subAgent), actor_token_type: TT.jwt,
      }, { dpop: signerB }), 'sub-agent via public client');
      assert.equal(body.scope, 'issues:read issues:comment');
      assert.deepEqual(decodeJwt(body.access_token).act, { sub: SUB_AGENT, act: { sub: AGENT } });
    });

    it('refuses a third hop beyond max_depth', async () => {
      const signerC = await DpopSigner.generate();
      refused(await subExchange(tokenB, thirdAgent, signerC), 400, 'invalid_request', /depth/);
    });

    it('refuses scope escalation and another resource', async () => {
      refused(await subExchange(tokenA, subAgent, signerB, { scope: 'issues:read wiki:read' }), 400, 'invalid_scope', /only shrinks/);
      refused(await subExchange(tokenB, thirdAgent, signerB, { scope: 'issues:comment' }), 400, 'invalid_request', /depth/);
      refused(await subExchange(tokenA, subAgent, signerB, { resource: WIKI }), 400, 'invalid_target');
      refused(await subExchange(tokenA, subAgent, signerB, { audience: WIKI }), 400, 'invalid_target');
    });

    it('refuses an agent already in the chain and a token it cannot use', async () => {
      refused(await subExchange(tokenA, agent, signerA), 400, 'invalid_request', /already in the delegation chain/);
      const [h, , s] = tokenA.split('.');
      const widened = `${h}.${Buffer.from(JSON.stringify({ ...decodeJwt(tokenA), scope: 'issues:read issues:comment wiki:read' })).toString('base64url')}.${s}`;
      refused(await subExchange(widened, subAgent, signerB), 400, 'invalid_request', /not a valid access token/);
    });

    it('refuses sub-agents under a mandate that allows none', async () => {
      const flat = await grantMandate({ max_depth: 0 });
      const parent = ok(await exchange(mandateExchange(flat.id, await actorToken(agent)), { dpop: signerA }), 'parent under max_depth 0').access_token;
      refused(await subExchange(parent, subAgent, signerB), 400, 'invalid_request', /depth/);
    });

    it('revoking the mandate kills the whole chain', async () => {
      assert.equal((await m.admin('POST', `/admin/v1/mandates/${mandate.id}/revoke`)).status, 200);
      const url = `${ISSUES}/tools/call`;
      for (const [t, s] of [[tokenA, signerA], [tokenB, signerB]] as const) {
        await assert.rejects(
          m.delegation.verifier.verify({ authorization: `DPoP ${t}`, dpop: await s.proof('POST', url, { accessToken: t }), method: 'POST', url, audience: ISSUES }),
          (err: unknown) => isOAuthError(err, 'invalid_token') && /revoked/.test(err.message),
        );
      }
      refused(await subExchange(tokenA, subAgent, signerB), 400, 'invalid_request', /revoked/);
    });
  });

  describe('mutual-TLS listener (RFC 8705)', () => {
    let mandate: Mandate;
    const tls = (a: EnrolledAgent) => ({ cert: a.certPem, key: a.keyPem, ca: m.serverTls?.certPem as string });

    before(async () => {
      mandate = await grantMandate({});
    });

    it('publishes the mTLS endpoint aliases', async () => {
      assert.match(m.mtlsUrl ?? '', /^https:\/\/127\.0\.0\.1:[1-9][0-9]*$/);
      const meta = (await m.call('GET', '/.well-known/oauth-authorization-server')).body;
      assert.equal(meta.tls_client_certificate_bound_access_tokens, true);
      assert.ok(meta.token_endpoint_auth_methods_supported.includes('tls_client_auth'));
      assert.deepEqual(meta.mtls_endpoint_aliases, {
        token_endpoint: `${m.mtlsUrl}/oauth/token`,
        introspection_endpoint: `${m.mtlsUrl}/oauth/introspect`,
        revocation_endpoint: `${m.mtlsUrl}/oauth/revoke`,
      });
    });

    it('exchanges with the X.509-SVID as client certificate: no actor token, a certificate-bound Bearer token', async () => {
      const res = await exchange({ grant_type: GRANT_TOKEN_EXCHANGE, subject_token: mandate.id, subject_token_type: TT.mandate, resource: ISSUES }, { tls: tls(agent) }, m.mtlsUrl);
      const body = ok(res, 'mTLS exchange');
      assert.equal(body.token_type, 'Bearer');
      const token = body.access_token as string;
      const c = decodeJwt(token) as Record<string, any>;
      const leaf = agent.chain[0] as X509Certificate;
      assert.deepEqual(Object.keys(c).sort(), OBO_CLAIMS);
      assert.deepEqual(c.cnf, { 'x5t#S256': thumbprint(leaf) });
      assert.deepEqual(c.act, { sub: AGENT });
      assert.equal(c.client_id, AGENT);
      assert.equal(c.sub, aliceId);
      assert.equal(c.aud, ISSUES);

      const url = `${ISSUES}/tools/call`;
      const v = await m.delegation.verifier.verify({ authorization: `Bearer ${token}`, dpop: undefined, method: 'POST', url, audience: ISSUES, clientCertificate: leaf });
      assert.equal(v.binding, 'mtls');
      assert.equal(v.actor, AGENT);
      const cases: Array<[string, Parameters<typeof m.delegation.verifier.verify>[0], RegExp]> = [
        ['without a certificate', { authorization: `Bearer ${token}`, dpop: undefined, method: 'POST', url, audience: ISSUES }, /client certificate/],
        ['with another agent\'s certificate', { authorization: `Bearer ${token}`, dpop: undefined, method: 'POST', url, audience: ISSUES, clientCertificate: subAgent.chain[0] }, /not the one/],
        ['under the DPoP scheme', { authorization: `DPoP ${token}`, dpop: undefined, method: 'POST', url, audience: ISSUES, clientCertificate: leaf }, /not DPoP-bound/],
      ];
      for (const [name, presented, message] of cases) {
        await assert.rejects(m.delegation.verifier.verify(presented), (err: unknown) => isOAuthError(err, 'invalid_token') && message.test(err.message), name);
      }

      // introspection on the mTLS listener, as the resource-server client
      const seen = ok(await oauthPost(m.mtlsUrl as string, { token }, { path: '/oauth/introspect', basic: INTROSPECTOR, tls: { ca: m.serverTls?.certPem as string } }), 'mTLS introspection');
      assert.equal(seen.active, true);
      assert.equal(seen.token_type, 'Bearer');
      assert.deepEqual(seen.cnf, { 'x5t#S256': thumbprint(leaf) });
    });

    it('takes DPoP over the certificate when the agent sends a proof on the mTLS listener', async () => {
      const signer = await DpopSigner.generate();
      const body = ok(await exchange({ grant_type: GRANT_TOKEN_EXCHANGE, subject_token: mandate.id, subject_token_type: TT.mandate }, { tls: tls(agent), dpop: signer }, m.mtlsUrl), 'mTLS + DPoP');
      assert.equal(body.token_type, 'DPoP');
      assert.deepEqual(decodeJwt(body.access_token).cnf, { jkt: signer.jkt });
    });

    it('accepts an actor token addressed to the mTLS token endpoint itself', async () => {
      const body = ok(await exchange({
        grant_type: GRANT_TOKEN_EXCHANGE, subject_token: mandate.id, subject_token_type: TT.mandate,
        actor_token: await actorToken(agent, [`${m.mtlsUrl}/oauth/token`]), actor_token_type: TT.jwt,
      }, { tls: tls(agent) }, m.mtlsUrl), 'actor token for the mTLS token endpoint');
      assert.deepEqual(decodeJwt(body.access_token).act, { sub: AGENT });
    });

    it('answers a malformed request and a plain-HTTP client on the mTLS listener without falling over', async () => {
      const url = new URL(m.mtlsUrl as string);
      const garbage = await new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({ host: url.hostname, port: Number(url.port), ca: m.serverTls?.certPem }, () => {
          socket.write('POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n');
        });
        let reply = '';
        socket.on('data', (d: Buffer) => { reply += d.toString(); });
        socket.on('end', () => resolve(reply));
        socket.on('error', reject);
      });
      assert.match(garbage, /^HTTP\/1\.1 400/);
      const plain = await new Promise<void>((resolve) => {
        const socket = netConnect({ host: url.hostname, port: Number(url.port) }, () => socket.write('GET / HTTP/1.1\r\n\r\n'));
        socket.on('close', () => resolve());
        socket.on('error', () => resolve());
        socket.resume();
      });
      assert.equal(plain, undefined);
      const meta = await fetch(`${m.url}/.well-known/oauth-authorization-server`);
      assert.equal(meta.status, 200, 'the server still answers');
      const noCert = await oauthPost(m.mtlsUrl as string, { grant_type: GRANT_TOKEN_EXCHANGE }, { tls: { ca: m.serverTls?.certPem as string } });
      assert.equal(noCert.status, 401, 'and the mTLS listener too');
    });

    it('refuses callers that are not the agent of the mandate', async () => {
      const noCert = await oauthPost(m.mtlsUrl as string, { grant_type: GRANT_TOKEN_EXCHANGE, subject_token: mandate.id, subject_token_type: TT.mandate }, { tls: { ca: m.serverTls?.certPem as string } });
      refused(noCert, 401, 'invalid_client');
      const notSvid = await oauthPost(m.mtlsUrl as string, { grant_type: GRANT_TOKEN_EXCHANGE, subject_token: mandate.id, subject_token_type: TT.mandate }, {
        tls: { cert: m.serverTls?.certPem, key: m.serverTls?.keyPem, ca: m.serverTls?.certPem as string },
      });
      refused(notSvid, 401, 'invalid_client', /X\.509-SVID/);
      refused(await exchange({ grant_type: GRANT_TOKEN_EXCHANGE, subject_token: mandate.id, subject_token_type: TT.mandate }, { tls: tls(subAgent) }, m.mtlsUrl), 400, 'invalid_request', /does not name agent/);
      refused(await exchange({
        grant_type: GRANT_TOKEN_EXCHANGE, subject_token: mandate.id, subject_token_type: TT.mandate,
        actor_token: await actorToken(subAgent), actor_token_type: TT.jwt,
      }, { tls: tls(agent) }, m.mtlsUrl), 400, 'invalid_request', /client authenticated as/);
      // the main listener never reads client certificates: there the agent still needs DPoP
      refused(await oauthPost(m.url, { grant_type: GRANT_TOKEN_EXCHANGE, subject_token: mandate.id, subject_token_type: TT.mandate, client_assertion_type: JWT_BEARER, client_assertion: await actorToken(agent) }), 400, 'invalid_request', /sender-constrained/);
    });
  });

  describe('openid-client as an external OAuth client', () => {
    let mandate: Mandate;
    before(async () => {
      mandate = await grantMandate({});
    });

    it('discovers the metadata and performs a DPoP-bound token exchange as a public client', async () => {
      const config = await oidc.discovery(new URL(m.issuer), PUBLIC_CLIENT, undefined, oidc.None(), { algorithm: 'oauth2', execute: [oidc.allowInsecureRequests] });
      assert.equal(config.serverMetadata().issuer, m.issuer);
      assert.equal(config.serverMetadata().token_endpoint, `${m.issuer}/oauth/token`);
      const keyPair = await oidc.randomDPoPKeyPair('ES256');
      const DPoP = oidc.getDPoPHandle(config, keyPair);
      const res = await oidc.genericGrantRequest(config, GRANT_TOKEN_EXCHANGE, {
        subject_token: mandate.id, subject_token_type: TT.mandate,
        actor_token: await actorToken(agent), actor_token_type: TT.jwt,
        resource: ISSUES, scope: 'issues:read',
      }, { DPoP });
      secrets.push(res.access_token);
      assert.equal(res.token_type, 'dpop');
      assert.equal(res.scope, 'issues:read');
      assert.equal(res.issued_token_type, TT.accessToken);
      assert.ok((res.expires_in ?? 0) > 0 && (res.expires_in ?? 0) <= MAX_TTL);
      const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey));
      const c = decodeJwt(res.access_token);
      assert.deepEqual(c.cnf, { jkt });
      assert.deepEqual(c.act, { sub: AGENT });
      assert.equal(c.client_id, PUBLIC_CLIENT);

      const signer = await DpopSigner.fromKey(keyPair.privateKey, 'ES256');
      assert.equal(signer.jkt, jkt);
      const url = `${ISSUES}/tools/call`;
      const v = await m.delegation.verifier.verify({ authorization: `DPoP ${res.access_token}`, dpop: await signer.proof('POST', url, { accessToken: res.access_token }), method: 'POST', url, audience: ISSUES });
      assert.equal(v.binding, 'dpop');
      assert.deepEqual(v.scopes, ['issues:read']);

      await assert.rejects(
        oidc.genericGrantRequest(config, GRANT_TOKEN_EXCHANGE, {
          subject_token: mandate.id, subject_token_type: TT.mandate, actor_token: await actorToken(agent), actor_token_type: TT.jwt, resource: WIKI,
        }, { DPoP }),
        (err: any) => err instanceof oidc.ResponseBodyError && err.error === 'invalid_target' && err.status === 400,
      );
    });
  });

  describe('events and logs', () => {
    it('writes the trace id of a request on the lines logged while serving it', async () => {
      const traceId = randomBytes(16).toString('hex');
      const traceparent = `00-${traceId}-${randomBytes(8).toString('hex')}-01`;
      const granted = await m.call('POST', '/admin/v1/mandates', {
        body: JSON.stringify({ username: 'alice', agent: AGENT, scopes: ['issues:read'], resources: [ISSUES] }),
        headers: { authorization: `Bearer ${m.adminToken}`, 'content-type': 'application/json', traceparent },
      });
      assert.equal(granted.status, 201, JSON.stringify(granted.body));
      const url = `${m.url}/oauth/token`;
      const signer = await DpopSigner.generate();
      const proof = await signer.proof('POST', url);
      secrets.push(proof);
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof, traceparent },
        body: new URLSearchParams(mandateExchange(granted.body.id, await actorToken(agent), { resource: ISSUES }) as Record<string, string>).toString(),
      });
      const body = await res.json() as { access_token: string };
      assert.equal(res.status, 200, JSON.stringify(body));
      secrets.push(body.access_token);

      const lines = m.logs().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { trace_id?: string; span_id?: string; event?: { type?: string; mandateId?: string } });
      const traced = lines.filter((l) => l.trace_id === traceId);
      assert.deepEqual(traced.map((l) => l.event?.type).filter((t) => t === 'mandate.granted' || t === 'token.exchanged').sort(), ['mandate.granted', 'token.exchanged']);
      assert.ok(traced.every((l) => /^[0-9a-f]{16}$/.test(l.span_id ?? '')), 'with the span id');
      const exchanged = lines.filter((l) => l.event?.type === 'token.exchanged');
      assert.ok(exchanged.length > 1 && exchanged.filter((l) => l.trace_id === traceId).length === 1, 'other requests\' lines carry their own trace ids');
      assert.ok(exchanged.every((l) => /^[0-9a-f]{32}$/.test(l.trace_id ?? '')), 'every request is traced, with or without a caller\'s traceparent');
    });

    it('records every exchange with mandate, chain and principal, and never a token', () => {
      const exchanged = m.events.events.filter((e) => e.type === 'token.exchanged');
      assert.ok(exchanged.length >= 10, `only ${exchanged.length} token.exchanged events`);
      for (const e of exchanged) {
        assert.equal(e.outcome, 'success');
        assert.match(String(e.mandateId), /^mdt_/);
        assert.ok(Array.isArray(e.chain) && e.chain.length >= 1 && e.chain[0] === e.spiffeId, JSON.stringify(e));
        const principal = e.principal as { issuer: string; subject: string };
        assert.equal(principal.issuer, m.issuer, JSON.stringify(e));
        assert.equal(principal.subject, aliceId, JSON.stringify(e));
        assert.ok(e.binding === 'dpop' || e.binding === 'mtls');
        assert.equal(typeof e.jti, 'string');
      }
      assert.ok(exchanged.some((e) => e.binding === 'mtls'));
      const refusals = m.events.events.filter((e) => e.type === 'token.refused');
      for (const code of ['invalid_scope', 'invalid_target', 'invalid_client', 'invalid_dpop_proof', 'invalid_request']) {
        assert.ok(refusals.some((e) => e.error === code), `a token.refused event with ${code}`);
      }

      secrets.push(m.adminToken as string);
      const logs = m.logs();
      const eventText = JSON.stringify(m.events.events);
      assert.ok(logs.includes('token.exchanged'), 'events reach the log');
      assert.ok(secrets.length > 20, `${secrets.length} secrets collected`);
      for (const secret of secrets) {
        assert.ok(!logs.includes(secret), 'a token or secret is in the log');
        assert.ok(!eventText.includes(secret), 'a token or secret is in an event');
      }
      assert.doesNotMatch(logs, /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\./, 'no JWT of any kind in the log');
      assert.doesNotMatch(logs, /PRIVATE KEY/);
    });
  });
});

describe('token-signing key rotation', () => {
  let m: TestMandate;
  let agent: EnrolledAgent;
  let mandate: Mandate;
  let signer: DpopSigner;

  before(async () => {
    m = await startDelegationMandate();
    const user = await m.admin('POST', '/admin/v1/users', { username: 'bob', password: 'correct horse battery staple' });
    assert.equal(user.status, 201);
    agent = await enrolAgent(m, AGENT);
    mandate = (await m.admin('POST', '/admin/v1/mandates', { username: 'bob', agent: AGENT, scopes: ['issues:read'], resources: [ISSUES] })).body;
    signer = await DpopSigner.generate();
  });
  after(() => m.close());

  const mint = async () => {
    const body = ok(await oauthPost(m.url, mandateExchange(mandate.id, await agent.jwtSvid([m.issuer])), { dpop: signer }), 'exchange');
    return body.access_token as string;
  };
  const kids = async () => ((await m.call('GET', '/oauth/jwks')).body.keys as Array<{ kid: string }>).map((k) => k.kid).sort();
  const verifyLocally = async (token: string) => {
    const url = `${ISSUES}/x`;
    return m.delegation.verifier.verify({ authorization: `DPoP ${token}`, dpop: await signer.proof('GET', url, { accessToken: token }), method: 'GET', url, audience: ISSUES });
  };
  /** A resource server elsewhere: only the published JWKS. */
  const verifyRemotely = (token: string) => jwtVerify(token, createRemoteJWKSet(new URL(`${m.issuer}/oauth/jwks`)), { issuer: m.issuer, audience: ISSUES, typ: 'at+jwt' });

  it('publishes a prepared key first, signs with it after the second call, and keeps old tokens valid', async () => {
    const initial = await kids();
    assert.equal(initial.length, 1);
    const oldKid = initial[0] as string;
    const t1 = await mint();
    assert.equal(decodeProtectedHeader(t1).kid, oldKid);

    const prepared = await m.admin('POST', '/admin/v1/oauth/keys/rotate');
    assert.equal(prepared.status, 200, JSON.stringify(prepared.body));
    assert.equal(prepared.body.phase, 'prepared');
    const newKid = prepared.body.key_id as string;
    assert.deepEqual(await kids(), [oldKid, newKid].sort(), 'the successor is published before it signs');
    const t2 = await mint();
    assert.equal(decodeProtectedHeader(t2).kid, oldKid, 'a prepared key does not sign');

    const activated = await m.admin('POST', '/admin/v1/oauth/keys/rotate');
    assert.equal(activated.status, 200);
    assert.deepEqual(activated.body, { kind: 'oauth', phase: 'activated', key_id: newKid });
    assert.deepEqual(await kids(), [oldKid, newKid].sort(), 'the retired key stays published');
    for (const key of (await m.call('GET', '/oauth/jwks')).body.keys as Array<Record<string, unknown>>) {
      assert.deepEqual(['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].filter((member) => member in key), [], 'only public members in the JWKS');
      assert.equal(key.use, 'sig');
    }
    const t3 = await mint();
    assert.equal(decodeProtectedHeader(t3).kid, newKid);

    for (const token of [t1, t2, t3]) {
      assert.equal((await verifyLocally(token)).principal.subject, decodeJwt(token).sub);
      assert.equal((await verifyRemotely(token)).payload.jti, decodeJwt(token).jti);
      assert.equal(ok(await introspect(m, token), 'introspection').active, true);
    }
    assert.ok(m.events.events.some((e) => e.type === 'key.oauth.activated' && e.keyId === newKid && e.retiredKeyId === oldKid));
    assert.equal((await m.admin('POST', '/admin/v1/oauth/keys/rotate', undefined, 'mat_wrong')).status, 401);
  });
});

describe('DPoP server nonces (RFC 9449 §8)', () => {
  let m: TestMandate;
  let agent: EnrolledAgent;
  let mandate: Mandate;

  before(async () => {
    m = await startDelegationMandate({ requireNonce: true });
    assert.equal((await m.admin('POST', '/admin/v1/users', { username: 'carol', password: 'correct horse battery staple' })).status, 201);
    agent = await enrolAgent(m, AGENT);
    mandate = (await m.admin('POST', '/admin/v1/mandates', { username: 'carol', agent: AGENT, scopes: ['issues:read'], resources: [ISSUES] })).body;
  });
  after(() => m.close());

  it('asks for a nonce, and openid-client retries with it', async () => {
    const signer = await DpopSigner.generate();
    const first = await oauthPost(m.url, mandateExchange(mandate.id, await agent.jwtSvid([m.issuer])), { dpop: signer });
    refused(first, 400, 'use_dpop_nonce');
    const nonce = first.headers.get('dpop-nonce');
    assert.match(nonce ?? '', /^[A-Za-z0-9_-]{20,}$/);
    const proof = await signer.proof('POST', `${m.issuer}/oauth/token`, { nonce: nonce as string });
    const second = await oauthPost(m.url, mandateExchange(mandate.id, await agent.jwtSvid([m.issuer])), { dpopProof: proof });
    assert.equal(ok(second, 'with the nonce').token_type, 'DPoP');
    refused(await oauthPost(m.url, mandateExchange(mandate.id, await agent.jwtSvid([m.issuer])), { dpopProof: await signer.proof('POST', `${m.issuer}/oauth/token`, { nonce: 'made-up-nonce-000000000000' }) }), 400, 'use_dpop_nonce');

    const config = await oidc.discovery(new URL(m.issuer), PUBLIC_CLIENT, undefined, oidc.None(), { algorithm: 'oauth2', execute: [oidc.allowInsecureRequests] });
    const keyPair = await oidc.randomDPoPKeyPair('ES256');
    const res = await oidc.genericGrantRequest(config, GRANT_TOKEN_EXCHANGE, {
      subject_token: mandate.id, subject_token_type: TT.mandate, actor_token: await agent.jwtSvid([m.issuer]), actor_token_type: TT.jwt,
    }, { DPoP: oidc.getDPoPHandle(config, keyPair) });
    assert.equal(res.token_type, 'dpop');
    assert.deepEqual(decodeJwt(res.access_token).cnf, { jkt: await calculateJwkThumbprint(await exportJWK(keyPair.publicKey)) });
  });
});
