import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader } from 'jose';
import { isMandateError } from '../../errors.ts';
import { KeyEncryptionKey } from '../../identity/keys/kek.ts';
import { MemoryEventSink } from '../../observability/events.ts';
import { openSqliteStore } from '../../store/sqlite/sqlite-store.ts';
import type { Store } from '../../store/store.ts';
import { MemoryReplayGuard } from '../binding/replay.ts';
import { isOAuthError } from '../oauth/errors.ts';
import { ACCESS_TOKEN_TYPE, mintAccessToken, signJwt } from './mint.ts';
import { TokenSigningKeys } from './signing-keys.ts';
import { mintTxnToken, MAX_TXN_TOKEN_TTL, TXN_TOKEN_TYPE, verifyTxnToken, type TxnTokenInput } from './txn-token.ts';
import { AccessTokenVerifier, localKeys } from './verify.ts';

const ISSUER = 'https://mandate.example.org';
const TRUST_DOMAIN = 'example.org';
const GATEWAY = 'spiffe://example.org/mandate/gateway';
const TRIAGE = 'spiffe://example.org/agent/triage-bot';
const PLANNER = 'spiffe://example.org/agent/planner';
const RESOURCE = 'https://mandate.example.org/mcp/issues';

let dir: string;
let store: Store;
let keys: TokenSigningKeys;
let otherKeys: TokenSigningKeys;

function input(over: Partial<TxnTokenInput> = {}): TxnTokenInput {
  return {
    issuer: ISSUER, trustDomain: TRUST_DOMAIN,
    principal: { issuer: 'https://login.example.com', subject: 'alice' },
    chain: [TRIAGE, PLANNER], mandateId: 'mdt_txn', scope: ['issues:read', 'issues:comment'],
    server: 'issues', method: 'tools/call', tool: 'comment', workload: GATEWAY,
    sourceAddress: '127.0.0.1', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', ttlSeconds: 60,
    ...over,
  };
}

function verifyOpts(over: Partial<Parameters<typeof verifyTxnToken>[1]> = {}): Parameters<typeof verifyTxnToken>[1] {
  return { keys: localKeys(keys), trustDomain: TRUST_DOMAIN, issuer: ISSUER, ...over };
}

function unauthenticated(pattern: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isMandateError(err, 'ERR_UNAUTHENTICATED'), `expected ERR_UNAUTHENTICATED, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  };
}

function accessVerifier(): AccessTokenVerifier {
  return new AccessTokenVerifier({ issuer: ISSUER, keys: localKeys(keys), revocation: { isRevoked: () => false }, dpop: { algorithms: ['ES256'], replay: new MemoryReplayGuard() } });
}

async function signingKeys(on: Store): Promise<TokenSigningKeys> {
  const k = new TokenSigningKeys({ store: on, kek: KeyEncryptionKey.generate(), algorithm: 'ES256', keyTtl: 86_400, maxTokenTtl: 300, events: new MemoryEventSink() });
  await k.init();
  return k;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mandate-txn-'));
  store = await openSqliteStore({ path: join(dir, 'mandate.db') });
  keys = await signingKeys(store);
  // Another authority: its own store, so its keys are not published with ours.
  const other = await openSqliteStore({ path: join(dir, 'other.db') });
  otherKeys = await signingKeys(other);
  await other.close();
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('mintTxnToken', () => {
  it('signs a txntoken+jwt with the principal, the chain and the call, verifiable with the published JWKS', async () => {
    const { token, claims } = await mintTxnToken(keys, input());
    const header = decodeProtectedHeader(token);
    assert.equal(header.typ, TXN_TOKEN_TYPE);
    assert.equal(header.kid, keys.active().kid);
    assert.equal(claims.aud, TRUST_DOMAIN);
    assert.equal(claims.iss, ISSUER);
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.principal_iss, 'https://login.example.com');
    assert.deepEqual(claims.act, { sub: TRIAGE, act: { sub: PLANNER } });
    assert.equal(claims.scope, 'issues:read issues:comment');
    assert.equal(claims.req_wl, GATEWAY);
    assert.deepEqual(claims.tctx, { server: 'issues', method: 'tools/call', tool: 'comment', mandate: 'mdt_txn' });
    assert.deepEqual(claims.rctx, { req_ip: '127.0.0.1', trace_id: '4bf92f3577b34da6a3ce929d0e0e4736' });
    assert.match(claims.txn, /^[0-9a-f-]{36}$/);
    assert.equal(claims.exp - claims.iat, 60);
    assert.deepEqual(await verifyTxnToken(token, verifyOpts({ keys: createLocalJWKSet(keys.jwks()) })), claims);
  });

  it('gives every call its own txn, even within one trace, unless one is given', async () => {
    const a = await mintTxnToken(keys, input());
    const b = await mintTxnToken(keys, input());
    assert.notEqual(a.claims.txn, b.claims.txn);
    assert.equal(a.claims.rctx.trace_id, b.claims.rctx.trace_id);
    assert.equal((await mintTxnToken(keys, input({ txn: 'call-42' }))).claims.txn, 'call-42');
    await assert.rejects(mintTxnToken(keys, input({ txn: 'has space' })), (err) => isMandateError(err, 'ERR_INTERNAL'));
  });

  it('leaves out what the call does not have: act, mandate, tool, address, trace', async () => {
    const { claims } = await mintTxnToken(keys, input({ chain: [], mandateId: undefined, tool: undefined, sourceAddress: undefined, traceId: undefined, scope: 'issues:read' }));
    assert.equal('act' in claims, false);
    assert.deepEqual(claims.tctx, { server: 'issues', method: 'tools/call' });
    assert.deepEqual(claims.rctx, {});
    assert.equal(claims.scope, 'issues:read');
  });

  it('never outlives the agent\'s token, and refuses one that has expired', async () => {
    const now = new Date();
    const iat = Math.floor(now.getTime() / 1000);
    const { claims } = await mintTxnToken(keys, input({ now, subjectExpiresAt: iat + 10 }));
    assert.equal(claims.exp, iat + 10);
    await assert.rejects(mintTxnToken(keys, input({ now, subjectExpiresAt: iat })), unauthenticated(/has expired/));
  });

  it('refuses a lifetime that is not 1 to 300 whole seconds', async () => {
    for (const ttlSeconds of [0, MAX_TXN_TOKEN_TTL + 1, 2.5]) {
      await assert.rejects(mintTxnToken(keys, input({ ttlSeconds })), (err) => isMandateError(err, 'ERR_CONFIG_INVALID'));
    }
  });
});

describe('verifyTxnToken', () => {
  it('refuses another trust domain, another issuer, an expired token and another authority\'s key', async () => {
    const now = new Date();
    const { token } = await mintTxnToken(keys, input({ now }));
    await assert.rejects(verifyTxnToken(token, verifyOpts({ trustDomain: 'other.example' })), unauthenticated(/claim aud/));
    await assert.rejects(verifyTxnToken(token, verifyOpts({ issuer: 'https://elsewhere.example' })), unauthenticated(/claim iss/));
    await assert.rejects(verifyTxnToken(token, verifyOpts({ now: new Date(now.getTime() + 91_000) })), unauthenticated(/expired/));
    const foreign = await mintTxnToken(otherKeys, input());
    await assert.rejects(verifyTxnToken(foreign.token, verifyOpts()), unauthenticated(/not signed by a published key/));
  });

  it('refuses a tampered payload and an unsigned token', async () => {
    const { token } = await mintTxnToken(keys, input());
    const [h, p, s] = token.split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...payload, sub: 'mallory' })).toString('base64url')}.${s}`;
    await assert.rejects(verifyTxnToken(tampered, verifyOpts()), unauthenticated(/signature does not verify/));
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: TXN_TOKEN_TYPE })).toString('base64url')}.${p}.`;
    await assert.rejects(verifyTxnToken(none, verifyOpts()), unauthenticated(/not valid/));
  });

  it('refuses a token missing a required claim or naming several trust domains', async () => {
    const { claims } = await mintTxnToken(keys, input());
    const { txn: _txn, ...noTxn } = claims;
    await assert.rejects(verifyTxnToken(await signJwt(keys, TXN_TOKEN_TYPE, noTxn), verifyOpts()), unauthenticated(/txn/));
    const { req_wl: _wl, ...noWorkload } = claims;
    await assert.rejects(verifyTxnToken(await signJwt(keys, TXN_TOKEN_TYPE, noWorkload), verifyOpts()), unauthenticated(/req_wl/));
    const many = await signJwt(keys, TXN_TOKEN_TYPE, { ...claims, aud: [TRUST_DOMAIN, 'other.example'] });
    await assert.rejects(verifyTxnToken(many, verifyOpts()), unauthenticated(/exactly one trust domain/));
    const badContext = await signJwt(keys, TXN_TOKEN_TYPE, { ...claims, tctx: 'issues' });
    await assert.rejects(verifyTxnToken(badContext, verifyOpts()), unauthenticated(/tctx must be a JSON object/));
  });
});

describe('token types are never confused (RFC 8725 §3.11)', () => {
  it('an access token is not a Txn-Token, even with every Txn-Token claim', async () => {
    const { claims } = await mintTxnToken(keys, input());
    const disguised = await signJwt(keys, ACCESS_TOKEN_TYPE, claims);
    await assert.rejects(verifyTxnToken(disguised, verifyOpts()), unauthenticated(/typ/));
    const { token: accessToken } = await mintAccessToken(keys, {
      iss: ISSUER, sub: 'alice', principal_iss: ISSUER, aud: TRUST_DOMAIN, client_id: 'agent-app', scope: 'issues:read', ttlSeconds: 60,
    });
    await assert.rejects(verifyTxnToken(accessToken, verifyOpts()), unauthenticated(/typ/));
  });

  it('a Txn-Token is not an access token, even with every access-token claim and the right audience', async () => {
    const { token } = await mintTxnToken(keys, input({ trustDomain: RESOURCE }));
    const present = (t: string) => ({ authorization: `Bearer ${t}`, dpop: undefined, method: 'POST', url: RESOURCE, audience: RESOURCE });
    await assert.rejects(accessVerifier().verify(present(token)), (err) => isOAuthError(err, 'invalid_token') && /typ/.test(err.message));
    const now = Math.floor(Date.now() / 1000);
    const disguised = await signJwt(keys, TXN_TOKEN_TYPE, {
      iss: ISSUER, sub: 'alice', principal_iss: ISSUER, aud: RESOURCE, client_id: 'agent-app', scope: 'issues:read', jti: 'j1', iat: now, exp: now + 60,
    });
    await assert.rejects(accessVerifier().verify(present(disguised)), (err) => isOAuthError(err, 'invalid_token') && /typ/.test(err.message));
    // The same claims under at+jwt are accepted: the refusal above is the type and nothing else.
    const genuine = await signJwt(keys, ACCESS_TOKEN_TYPE, {
      iss: ISSUER, sub: 'alice', principal_iss: ISSUER, aud: RESOURCE, client_id: 'agent-app', scope: 'issues:read', jti: 'j2', iat: now, exp: now + 60,
    });
    assert.equal((await accessVerifier().verify(present(genuine))).principal.subject, 'alice');
  });
});
