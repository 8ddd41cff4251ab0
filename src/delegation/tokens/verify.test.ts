import assert from 'node:assert/strict';
import { generateKeyPairSync, type X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT, type JWTPayload } from 'jose';
import { generateRootCa } from '../../identity/ca/generate.ts';
import { KeyEncryptionKey } from '../../identity/keys/kek.ts';
import { MemoryEventSink } from '../../observability/events.ts';
import { DpopSigner } from '../../sdk/agent/dpop.ts';
import { openSqliteStore } from '../../store/sqlite/sqlite-store.ts';
import type { Store } from '../../store/store.ts';
import { certificateThumbprint } from '../binding/mtls.ts';
import { MemoryReplayGuard } from '../binding/replay.ts';
import { isOAuthError, type OAuthErrorCode } from '../oauth/errors.ts';
import type { AccessTokenClaims, ActClaim } from './claims.ts';
import { mintAccessToken, type MintInput } from './mint.ts';
import type { RevocationCheck } from './revocation.ts';
import { TokenSigningKeys } from './signing-keys.ts';
import { AccessTokenVerifier, localKeys, type PresentedToken } from './verify.ts';

const ISSUER = 'https://mandate.example.org';
const RESOURCE = 'https://tools.example/mcp/issues';
const OTHER_RESOURCE = 'https://tools.example/mcp/mail';
const URL_ = `${RESOURCE}?tool=list`;
const TRIAGE = 'spiffe://example.org/agent/triage-bot';
const PLANNER = 'spiffe://example.org/agent/planner';
const MAX_TOKEN_TTL = 300;

let dir: string;
let store: Store;
let keys: TokenSigningKeys;
const keyClock = { now: new Date() };
let certificate: X509Certificate;
let otherCertificate: X509Certificate;
let signer: DpopSigner;
let otherSigner: DpopSigner;

/** Revocation answers the tests set, recording what was asked. */
const revocation = {
  revoked: false,
  asked: [] as Array<{ jti: string; mandate?: string }>,
  isRevoked(token: { jti: string; mandate?: string }): boolean {
    this.asked.push(token);
    return this.revoked;
  },
};

function verifier(check: RevocationCheck = revocation): AccessTokenVerifier {
  return new AccessTokenVerifier({ issuer: ISSUER, keys: localKeys(keys), revocation: check, dpop: { algorithms: ['ES256', 'EdDSA'], replay: new MemoryReplayGuard() } });
}

function mint(over: Partial<MintInput> = {}): Promise<{ token: string; claims: AccessTokenClaims }> {
  return mintAccessToken(keys, {
    iss: ISSUER, sub: 'alice', principal_iss: ISSUER, aud: RESOURCE, client_id: 'triage-bot',
    scope: 'issues:read issues:write', mandate: 'mdt_test', act: { sub: TRIAGE, act: { sub: PLANNER } }, ttlSeconds: 300,
    ...over,
  });
}

/** Signs arbitrary claims and header with the active key (for tokens mint would never make). */
async function forge(payload: JWTPayload, header: { typ?: string; alg?: string; kid?: string } = {}): Promise<string> {
  const key = keys.active();
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: ISSUER, sub: 'alice', principal_iss: ISSUER, aud: RESOURCE, client_id: 'triage-bot', scope: 'issues:read', jti: 'forged', iat: now, exp: now + 300,
    ...payload,
  })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt', ...header })
    .sign(key.privateKey);
}

function present(authorization: string | undefined, over: Partial<PresentedToken> = {}): PresentedToken {
  return { authorization, dpop: undefined, method: 'POST', url: URL_, audience: RESOURCE, ...over };
}

function refused(code: OAuthErrorCode, pattern: RegExp, scheme: 'Bearer' | 'DPoP' = 'Bearer'): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isOAuthError(err, code), `expected ${code}, got ${String(err)}`);
    assert.equal(err.status, 401);
    assert.match(err.message, pattern);
    const challenge = err.headers['www-authenticate'] ?? '';
    assert.ok(challenge.startsWith(`${scheme} error="${code}", error_description="`), challenge);
    return true;
  };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mandate-verify-'));
  store = await openSqliteStore({ path: join(dir, 'mandate.db') });
  keys = new TokenSigningKeys({ store, kek: KeyEncryptionKey.generate(), algorithm: 'ES256', keyTtl: 86_400, maxTokenTtl: MAX_TOKEN_TTL, events: new MemoryEventSink(), now: () => keyClock.now });
  await keys.init();
  certificate = (await generateRootCa({ trustDomain: 'example.org', keyType: 'ec-p256', ttlSeconds: 600 })).certificate;
  otherCertificate = (await generateRootCa({ trustDomain: 'example.org', keyType: 'ec-p256', ttlSeconds: 600 })).certificate;
  signer = await DpopSigner.generate('ES256');
  otherSigner = await DpopSigner.generate('ES256');
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('AccessTokenVerifier: mTLS-bound tokens', () => {
  it('accepts the token with its certificate and reports the delegation', async () => {
    revocation.revoked = false;
    revocation.asked.length = 0;
    const { token, claims } = await mint({ cnf: { 'x5t#S256': certificateThumbprint(certificate) } });
    const v = await verifier().verify(present(`Bearer ${token}`, { clientCertificate: certificate }));
    assert.equal(v.binding, 'mtls');
    assert.equal(v.token, token);
    assert.deepEqual(v.claims, claims);
    assert.deepEqual(v.principal, { issuer: ISSUER, subject: 'alice' });
    assert.equal(v.actor, TRIAGE);
    assert.deepEqual(v.chain, [TRIAGE, PLANNER]);
    assert.deepEqual(v.scopes, ['issues:read', 'issues:write']);
    assert.equal(v.mandateId, 'mdt_test');
    assert.deepEqual(revocation.asked, [{ jti: claims.jti, mandate: 'mdt_test' }], 'revocation is asked about the jti and the mandate');
  });

  it('refuses it without a certificate, with another certificate, and under the DPoP scheme', async () => {
    const { token } = await mint({ cnf: { 'x5t#S256': certificateThumbprint(certificate) } });
    await assert.rejects(verifier().verify(present(`Bearer ${token}`)), refused('invalid_token', /bound to a client certificate: present it over mutual TLS/));
    await assert.rejects(verifier().verify(present(`Bearer ${token}`, { clientCertificate: otherCertificate })), refused('invalid_token', /client certificate is not the one the access token is bound to/));
    const dpop = await signer.proof('POST', URL_, { accessToken: token });
    await assert.rejects(verifier().verify(present(`DPoP ${token}`, { dpop, clientCertificate: certificate })), refused('invalid_token', /not DPoP-bound; send it with Authorization: Bearer/, 'DPoP'));
  });
});

describe('AccessTokenVerifier: DPoP-bound tokens', () => {
  it('accepts the token under the DPoP scheme with a proof of the key carrying ath', async () => {
    revocation.revoked = false;
    const { token } = await mint({ cnf: { jkt: signer.jkt } });
    const v = verifier();
    const result = await v.verify(present(`DPoP ${token}`, { dpop: await signer.proof('POST', URL_, { accessToken: token }) }));
    assert.equal(result.binding, 'dpop');
    assert.equal(result.actor, TRIAGE);
    const lower = await v.verify(present(`dpop ${token}`, { method: 'GET', dpop: await signer.proof('GET', URL_, { accessToken: token }) }));
    assert.equal(lower.binding, 'dpop', 'the scheme name is case-insensitive');
  });

  it('refuses it under the Bearer scheme', async () => {
    const { token } = await mint({ cnf: { jkt: signer.jkt } });
    const dpop = await signer.proof('POST', URL_, { accessToken: token });
    await assert.rejects(verifier().verify(present(`Bearer ${token}`, { dpop })), refused('invalid_token', /DPoP-bound: send it with Authorization: DPoP and a DPoP proof/));
  });

  it('refuses a missing, unbound, mismatched or replayed proof', async () => {
    const { token } = await mint({ cnf: { jkt: signer.jkt } });
    const { token: otherToken } = await mint({ cnf: { jkt: signer.jkt } });
    const v = verifier();
    const cases: Array<[string, () => Promise<string | undefined>, RegExp]> = [
      ['no proof', async () => undefined, /no DPoP header/],
      ['a proof without ath', () => signer.proof('POST', URL_), /no ath claim, but the request carries an access token/],
      ['a proof with the ath of another token', () => signer.proof('POST', URL_, { accessToken: otherToken }), /ath does not match the hash of the access token/],
      ['a proof for another method', () => signer.proof('GET', URL_, { accessToken: token }), /htm GET does not match the request method POST/],
      ['a proof for another URL', () => signer.proof('POST', OTHER_RESOURCE, { accessToken: token }), /htu .* does not match the request URI/],
    ];
    for (const [name, proof, pattern] of cases) {
      await assert.rejects(v.verify(present(`DPoP ${token}`, { dpop: await proof() })), refused('invalid_dpop_proof', pattern, 'DPoP'), name);
    }
    await assert.rejects(
      v.verify(present(`DPoP ${token}`, { dpop: await otherSigner.proof('POST', URL_, { accessToken: token }) })),
      refused('invalid_token', /DPoP proof is signed by another key than the one the token is bound to/, 'DPoP'),
    );
    const once = await signer.proof('POST', URL_, { accessToken: token });
    await v.verify(present(`DPoP ${token}`, { dpop: once }));
    await assert.rejects(v.verify(present(`DPoP ${token}`, { dpop: once })), refused('invalid_dpop_proof', /replayed/, 'DPoP'));
  });
});

describe('AccessTokenVerifier: refusals', () => {
  it('refuses a token for another audience, naming both', async () => {
    const { token } = await mint();
    await assert.rejects(verifier().verify(present(`Bearer ${token}`, { audience: OTHER_RESOURCE })),
      refused('invalid_token', /the access token is for https:\/\/tools\.example\/mcp\/issues, not for this resource \(https:\/\/tools\.example\/mcp\/mail\)/));
  });

  it('keeps quotes and line breaks out of the WWW-Authenticate header', async () => {
    const { token } = await mint();
    await assert.rejects(verifier().verify(present(`Bearer ${token}`, { audience: 'https://tools.example/"x"\r\nSet-Cookie: a=b' })), (err: unknown) => {
      assert.ok(isOAuthError(err, 'invalid_token'));
      const header = err.headers['www-authenticate'] ?? '';
      assert.equal(/[\r\n]/.test(header), false);
      assert.equal(header.match(/"/g)?.length, 4, `only the delimiting quotes: ${header}`);
      return true;
    });
  });

  it('refuses a revoked token, naming the mandate when it has one', async () => {
    const check: RevocationCheck = { isRevoked: () => true };
    const withMandate = await mint();
    await assert.rejects(verifier(check).verify(present(`Bearer ${withMandate.token}`)), refused('invalid_token', /^the access token or its mandate has been revoked$/));
    const own = await mint({ mandate: undefined, act: undefined });
    await assert.rejects(verifier(check).verify(present(`Bearer ${own.token}`)), refused('invalid_token', /^the access token has been revoked$/));
    const bound = await mint({ cnf: { jkt: signer.jkt } });
    await assert.rejects(verifier(check).verify(present(`DPoP ${bound.token}`, { dpop: await signer.proof('POST', URL_, { accessToken: bound.token }) })), refused('invalid_token', /has been revoked/, 'DPoP'));
  });

  it('answers a request without credentials with a challenge and no error code (RFC 6750 §3.1)', async () => {
    for (const authorization of [undefined, '', 'Basic YWxpY2U6c2VjcmV0', 'Token abc.def.ghi', 'Bearer_x']) {
      await assert.rejects(verifier().verify(present(authorization)), (err: unknown) => {
        assert.ok(isOAuthError(err, 'invalid_token'), String(err));
        assert.equal(err.status, 401);
        assert.deepEqual(err.headers, { 'www-authenticate': 'Bearer, DPoP' }, String(authorization));
        return true;
      });
    }
  });

  it('refuses garbage where a token should be', async () => {
    const { token } = await mint();
    const [h, p] = token.split('.') as [string, string, string];
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${p}.`;
    const cases: Array<[string, string, RegExp]> = [
      ['no token', 'Bearer', /not a compact JWS/],
      ['an empty token', 'Bearer ', /not a compact JWS/],
      ['one word', 'Bearer garbage', /not a compact JWS/],
      ['two parts', `Bearer ${h}.${p}`, /not a compact JWS/],
      ['five parts (JWE)', 'Bearer a.b.c.d.e', /not a compact JWS/],
      ['base64 padding', `Bearer ${token}=`, /not a compact JWS/],
      ['a space inside', `Bearer ${h}. ${p}.x`, /not a compact JWS/],
      ['JSON serialisation', `Bearer {"payload":"${p}"}`, /not a compact JWS/],
      ['alg none, unsigned', `Bearer ${none}`, /the access token is unsigned \(alg "none"\); only signed tokens are accepted/],
      ['three parts of nonsense', 'Bearer a.b.c', /the access token is not valid: JWS Protected Header is invalid/],
      ['a signature that does not verify', `Bearer ${h}.${p}.${'A'.repeat(86)}`, /the access token is not valid: the signature does not verify/],
      ['a token over 8 KiB', `Bearer ${h}.${'A'.repeat(8192)}.x`, /longer than 8192 characters/],
    ];
    for (const [name, authorization, pattern] of cases) {
      await assert.rejects(verifier().verify(present(authorization)), refused('invalid_token', pattern), name);
    }
    await assert.rejects(verifier().verify(present('DPoP garbage')), refused('invalid_token', /not a compact JWS/, 'DPoP'), 'the challenge names the scheme used');
  });

  it('refuses tokens whose typ is not at+jwt (RFC 8725 §3.11), and accepts application/at+jwt (RFC 9068 §4)', async () => {
    const cases: Array<[string, string | undefined]> = [['JWT', 'JWT'], ['no typ', undefined], ['dpop+jwt', 'dpop+jwt'], ['jwt-svid-like', 'JOSE'], ['at+jwt with a suffix', 'at+jwt2']];
    for (const [name, typ] of cases) {
      const key = keys.active();
      const now = Math.floor(Date.now() / 1000);
      const header: Record<string, string> = { alg: key.alg, kid: key.kid };
      if (typ !== undefined) header.typ = typ;
      const token = await new SignJWT({ iss: ISSUER, sub: 'alice', principal_iss: ISSUER, aud: RESOURCE, client_id: 'c', scope: 's', jti: 'j', iat: now, exp: now + 60 })
        .setProtectedHeader(header as { alg: string })
        .sign(key.privateKey);
      await assert.rejects(verifier().verify(present(`Bearer ${token}`)), refused('invalid_token', /the access token is not valid: .*typ/), name);
    }
    revocation.revoked = false;
    const full = await forge({}, { typ: 'application/at+jwt' });
    assert.equal((await verifier().verify(present(`Bearer ${full}`))).binding, 'none');
  });

  it('refuses tokens that break the other checks, naming the failed one', async () => {
    revocation.revoked = false;
    const hour = 3600;
    const longAgo = new Date(Date.now() - 2 * hour * 1000);
    const key = keys.active();
    const foreignKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const now = Math.floor(Date.now() / 1000);
    const seventeen = Array.from({ length: 17 }).reduce<ActClaim | undefined>((act, _, i) => ({ sub: `spiffe://example.org/agent/${i}`, ...(act ? { act } : {}) }), undefined);
    const cases: Array<[string, () => Promise<string>, RegExp]> = [
      ['expired', async () => (await mint({ now: longAgo, ttlSeconds: 60 })).token, /it has expired/],
      ['issued by someone else', () => forge({ iss: 'https://evil.example' }), /claim iss is wrong/],
      ['two audiences', () => forge({ aud: [RESOURCE, OTHER_RESOURCE] }), /exactly one audience/],
      ['no client_id', () => forge({ client_id: undefined }), /claim client_id missing/],
      ['no principal_iss', () => forge({ principal_iss: undefined }), /claim principal_iss missing/],
      ['no jti', () => forge({ jti: undefined }), /claim jti missing/],
      ['iat not a number', () => forge({ iat: 'yesterday' as unknown as number }), /claim iat invalid/],
      ['an act chain 17 deep', () => forge({ act: seventeen as unknown as JWTPayload }), /nests deeper than 16 levels/],
      ['a malformed act', () => forge({ act: { act: { sub: TRIAGE } } }), /act claim is malformed/],
      ['signed by another key under our kid', () => new SignJWT({ iss: ISSUER, sub: 'a', principal_iss: ISSUER, aud: RESOURCE, client_id: 'c', jti: 'j', iat: now, exp: now + 60 })
        .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'at+jwt' }).sign(foreignKey), /the signature does not verify/],
      ['our kid with another alg', () => new SignJWT({ iss: ISSUER, sub: 'a', principal_iss: ISSUER, aud: RESOURCE, client_id: 'c', jti: 'j', iat: now, exp: now + 60 })
        .setProtectedHeader({ alg: 'ES384', kid: key.kid, typ: 'at+jwt' }).sign(p384), /not signed by a published key of this issuer/],
      ['HMAC under our kid', () => new SignJWT({ iss: ISSUER, sub: 'a', principal_iss: ISSUER, aud: RESOURCE, client_id: 'c', jti: 'j', iat: now, exp: now + 60 })
        .setProtectedHeader({ alg: 'HS256', kid: key.kid, typ: 'at+jwt' }).sign(new TextEncoder().encode(JSON.stringify(key.publicJwk))), /its signature algorithm is not allowed/],
      ['an unknown kid', () => forge({}, { kid: 'no-such-kid' }), /not signed by a published key of this issuer/],
      ['no kid', async () => {
        const t = await forge({});
        const [h, p, s] = t.split('.') as [string, string, string];
        const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as Record<string, unknown>;
        delete header.kid;
        return `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${p}.${s}`;
      }, /not signed by a published key of this issuer/],
    ];
    for (const [name, make, pattern] of cases) {
      await assert.rejects(verifier().verify(present(`Bearer ${await make()}`)), refused('invalid_token', pattern), name);
    }
  });

  it('accepts a token of a retired key while it is published, and refuses it once the key is removed', async () => {
    revocation.revoked = false;
    const { token } = await mint();
    const v = verifier();
    await v.verify(present(`Bearer ${token}`));
    await keys.rotate();
    await keys.rotate();
    const retired = keys.records().find((r) => r.state === 'retired');
    assert.ok(retired?.publishUntil);
    assert.equal((await v.verify(present(`Bearer ${token}`))).claims.iss, ISSUER, 'still published: still verifies');
    keyClock.now = retired.publishUntil;
    assert.equal(await keys.tick(), true);
    assert.equal(keys.publicKey(retired.id), undefined);
    await assert.rejects(v.verify(present(`Bearer ${token}`)), refused('invalid_token', /it is not signed by a published key of this issuer/));
    const fresh = await mint();
    assert.equal((await v.verify(present(`Bearer ${fresh.token}`))).binding, 'none', 'tokens of the new key verify');
  });
});

describe('AccessTokenVerifier: tokens it has verified before', () => {
  it('answers a repeat with the same frozen claims, and only while the token lives', async () => {
    revocation.revoked = false;
    const { token, claims } = await mint();
    const v = verifier();
    const first = await v.verify(present(`Bearer ${token}`));
    const again = await v.verify(present(`Bearer ${token}`));
    assert.equal(again.claims, first.claims, 'the remembered claims');
    assert.ok(Object.isFrozen(again.claims) && Object.isFrozen(again.claims.act), 'shared by every call, so frozen');
    const late = new Date((claims.exp + 31) * 1000);
    await assert.rejects(v.verify(present(`Bearer ${token}`, { now: late })), refused('invalid_token', /it has expired/));
    const { token: later, claims: laterClaims } = await mint({ nbf: Math.floor(Date.now() / 1000) } as Partial<MintInput>);
    await v.verify(present(`Bearer ${later}`));
    const early = new Date((laterClaims.iat - 31) * 1000);
    await assert.rejects(v.verify(present(`Bearer ${later}`, { now: early })), refused('invalid_token', /claim nbf/));
  });

  it('does not take a token that differs by one character for the one it verified', async () => {
    revocation.revoked = false;
    const { token } = await mint();
    const v = verifier();
    await v.verify(present(`Bearer ${token}`));
    const last = token.at(-2) === 'A' ? 'B' : 'A';
    const altered = `${token.slice(0, -2)}${last}${token.at(-1)}`;
    await assert.rejects(v.verify(present(`Bearer ${altered}`)), refused('invalid_token', /signature does not verify/));
  });

  it('checks the binding and revocation on every call, remembered or not', async () => {
    revocation.revoked = false;
    const { token } = await mint({ cnf: { 'x5t#S256': certificateThumbprint(certificate) } });
    const v = verifier();
    await v.verify(present(`Bearer ${token}`, { clientCertificate: certificate }));
    await assert.rejects(v.verify(present(`Bearer ${token}`, { clientCertificate: otherCertificate })), refused('invalid_token', /not the one the access token is bound to/));
    revocation.revoked = true;
    await assert.rejects(v.verify(present(`Bearer ${token}`, { clientCertificate: certificate })), refused('invalid_token', /revoked/));
    revocation.revoked = false;
  });
});
