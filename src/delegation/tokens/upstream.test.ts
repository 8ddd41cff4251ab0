import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { isMandateError } from '../../errors.ts';
import { KeyEncryptionKey } from '../../identity/keys/kek.ts';
import { MemoryEventSink } from '../../observability/events.ts';
import { DpopSigner } from '../../sdk/agent/dpop.ts';
import { openSqliteStore } from '../../store/sqlite/sqlite-store.ts';
import type { Store } from '../../store/store.ts';
import { MemoryReplayGuard } from '../binding/replay.ts';
import { isOAuthError } from '../oauth/errors.ts';
import { mintAccessToken, type MintInput } from './mint.ts';
import type { RevocationCheck } from './revocation.ts';
import { TokenSigningKeys } from './signing-keys.ts';
import { mintUpstreamToken, UpstreamTokens } from './upstream.ts';
import { AccessTokenVerifier, type VerifiedAccessToken } from './verify.ts';

const ISSUER = 'https://mandate.example.org';
const GATEWAY_RESOURCE = 'https://mandate.example.org/mcp/issues';
const UPSTREAM = 'https://api.tracker.example';
const URL_ = GATEWAY_RESOURCE;
const TRIAGE = 'spiffe://example.org/agent/triage-bot';
const PLANNER = 'spiffe://example.org/agent/planner';

let dir: string;
let store: Store;
let keys: TokenSigningKeys;
let signer: DpopSigner;
const revoked = new Set<string>();
const revocation: RevocationCheck = { isRevoked: ({ jti, mandate }) => revoked.has(jti) || (mandate !== undefined && revoked.has(mandate)) };

/** Verifies with the published JWKS only, as a resource server elsewhere would. */
function verifierAt(): AccessTokenVerifier {
  return new AccessTokenVerifier({ issuer: ISSUER, keys: createLocalJWKSet(keys.jwks()), revocation, dpop: { algorithms: ['ES256'], replay: new MemoryReplayGuard() } });
}

/** A DPoP-bound OBO token as the gateway sees it after verification. */
async function inbound(over: Partial<MintInput> = {}, now = new Date()): Promise<VerifiedAccessToken> {
  const { token } = await mintAccessToken(keys, {
    iss: ISSUER, sub: 'alice', principal_iss: 'https://login.example.com', aud: GATEWAY_RESOURCE, client_id: 'agent-app',
    scope: 'issues:read issues:comment', mandate: 'mdt_upstream', act: { sub: TRIAGE, act: { sub: PLANNER } },
    cnf: { jkt: signer.jkt }, auth_time: 1_700_000_000, ttlSeconds: 300, now, ...over,
  });
  return verifierAt().verify({
    authorization: `DPoP ${token}`, dpop: await signer.proof('POST', URL_, { accessToken: token }),
    method: 'POST', url: URL_, audience: GATEWAY_RESOURCE, now,
  });
}

function code(expected: string, pattern: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isMandateError(err, expected as never), `expected ${expected}, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mandate-upstream-'));
  store = await openSqliteStore({ path: join(dir, 'mandate.db') });
  keys = new TokenSigningKeys({ store, kek: KeyEncryptionKey.generate(), algorithm: 'ES256', keyTtl: 86_400, maxTokenTtl: 300, events: new MemoryEventSink() });
  await keys.init();
  signer = await DpopSigner.generate('ES256');
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('mintUpstreamToken', () => {
  it('carries the principal, act chain, mandate, client and scope to the upstream audience, unbound', async () => {
    const from = await inbound();
    const { token, claims } = await mintUpstreamToken(keys, from, { issuer: ISSUER, audience: UPSTREAM });
    assert.equal(decodeProtectedHeader(token).typ, 'at+jwt');
    const { payload } = await jwtVerify(token, createLocalJWKSet(keys.jwks()), { issuer: ISSUER, audience: UPSTREAM, typ: 'at+jwt' });
    assert.deepEqual(payload, claims);
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.principal_iss, 'https://login.example.com');
    assert.deepEqual(claims.act, { sub: TRIAGE, act: { sub: PLANNER } });
    assert.equal(claims.mandate, 'mdt_upstream');
    assert.equal(claims.client_id, 'agent-app');
    assert.equal(claims.scope, 'issues:read issues:comment');
    assert.equal(claims.auth_time, 1_700_000_000);
    assert.equal(claims.cnf, undefined, 'the upstream gets no key binding it could not prove');
    assert.notEqual(claims.jti, from.claims.jti);
    assert.equal(claims.exp - claims.iat, 60);

    const seen = await verifierAt().verify({ authorization: `Bearer ${token}`, dpop: undefined, method: 'GET', url: UPSTREAM, audience: UPSTREAM });
    assert.equal(seen.binding, 'none');
    assert.deepEqual(seen.principal, from.principal);
    assert.deepEqual(seen.chain, [TRIAGE, PLANNER]);
    assert.equal(seen.mandateId, 'mdt_upstream');
  });

  it('carries no act or mandate when the inbound token has none (a principal\'s own token)', async () => {
    const from = await inbound({ act: undefined, mandate: undefined });
    const { claims } = await mintUpstreamToken(keys, from, { issuer: ISSUER, audience: UPSTREAM });
    assert.equal('act' in claims, false);
    assert.equal('mandate' in claims, false);
  });

  it('is refused at the gateway\'s own resource, and dies with its mandate', async () => {
    const from = await inbound();
    const { token } = await mintUpstreamToken(keys, from, { issuer: ISSUER, audience: UPSTREAM });
    await assert.rejects(
      verifierAt().verify({ authorization: `Bearer ${token}`, dpop: undefined, method: 'POST', url: URL_, audience: GATEWAY_RESOURCE }),
      (err) => isOAuthError(err, 'invalid_token') && /not for this resource/.test(err.message),
    );
    revoked.add('mdt_upstream');
    try {
      await assert.rejects(
        verifierAt().verify({ authorization: `Bearer ${token}`, dpop: undefined, method: 'GET', url: UPSTREAM, audience: UPSTREAM }),
        (err) => isOAuthError(err, 'invalid_token') && /revoked/.test(err.message),
      );
    } finally {
      revoked.delete('mdt_upstream');
    }
  });

  it('never outlives the agent\'s token', async () => {
    const now = new Date();
    const from = await inbound({ ttlSeconds: 20 }, now);
    const { claims } = await mintUpstreamToken(keys, from, { issuer: ISSUER, audience: UPSTREAM, now });
    assert.equal(claims.exp, from.claims.exp);
    const later = new Date(now.getTime() + 19_000);
    assert.equal((await mintUpstreamToken(keys, from, { issuer: ISSUER, audience: UPSTREAM, now: later })).claims.exp, from.claims.exp);
    // Within the verifier's clock tolerance the agent's token still verifies; no upstream token is minted from it.
    const expired = new Date(from.claims.exp * 1000);
    await assert.rejects(mintUpstreamToken(keys, from, { issuer: ISSUER, audience: UPSTREAM, now: expired }), code('ERR_UNAUTHENTICATED', /has expired/));
  });

  it('takes a shorter lifetime, and refuses one over a minute or not a whole number of seconds', async () => {
    const from = await inbound();
    const { claims } = await mintUpstreamToken(keys, from, { issuer: ISSUER, audience: UPSTREAM, ttlSeconds: 10 });
    assert.equal(claims.exp - claims.iat, 10);
    for (const ttlSeconds of [61, 0, -5, 1.5, Number.NaN]) {
      await assert.rejects(mintUpstreamToken(keys, from, { issuer: ISSUER, audience: UPSTREAM, ttlSeconds }), code('ERR_INTERNAL', /1 to 60 seconds/));
    }
  });

  it('refuses the agent\'s own audience and an empty one', async () => {
    const from = await inbound();
    await assert.rejects(mintUpstreamToken(keys, from, { issuer: ISSUER, audience: GATEWAY_RESOURCE }), code('ERR_CONFIG_INVALID', /bearer token for the gateway itself/));
    await assert.rejects(mintUpstreamToken(keys, from, { issuer: ISSUER, audience: '' }), code('ERR_CONFIG_INVALID', /audience/));
  });
});

describe('UpstreamTokens', () => {
  it('sends the same token again while half its life remains, then a new one', async () => {
    const now = new Date();
    const from = await inbound({}, now);
    const tokens = new UpstreamTokens(keys);
    const first = await tokens.forCall(from, { issuer: ISSUER, audience: UPSTREAM, now });
    assert.equal(first.claims.exp - first.claims.iat, 60);
    const at = (s: number) => new Date(now.getTime() + s * 1000);
    assert.equal((await tokens.forCall(from, { issuer: ISSUER, audience: UPSTREAM, now: at(30) })).token, first.token, '30 s of 60 left');
    const next = await tokens.forCall(from, { issuer: ISSUER, audience: UPSTREAM, now: at(31) });
    assert.notEqual(next.token, first.token, '29 s left: a new one');
    assert.equal(next.claims.iat, first.claims.iat + 31);
  });

  it('keeps agent tokens and audiences apart, and signs once for concurrent first calls', async () => {
    const tokens = new UpstreamTokens(keys);
    const one = await inbound();
    const other = await inbound();
    const together = await Promise.all(Array.from({ length: 5 }, () => tokens.forCall(one, { issuer: ISSUER, audience: UPSTREAM })));
    assert.equal(new Set(together.map((t) => t.token)).size, 1);
    assert.notEqual((await tokens.forCall(other, { issuer: ISSUER, audience: UPSTREAM })).token, together[0]?.token);
    const elsewhere = await tokens.forCall(one, { issuer: ISSUER, audience: 'https://api.mail.example' });
    assert.notEqual(elsewhere.token, together[0]?.token);
    assert.equal(elsewhere.claims.aud, 'https://api.mail.example');
  });

  it('remembers no refusal', async () => {
    const tokens = new UpstreamTokens(keys);
    const from = await inbound();
    await assert.rejects(tokens.forCall(from, { issuer: ISSUER, audience: UPSTREAM, ttlSeconds: 61 }), (err) => isMandateError(err, 'ERR_INTERNAL'));
    assert.equal((await tokens.forCall(from, { issuer: ISSUER, audience: UPSTREAM })).claims.aud, UPSTREAM);
  });
});
