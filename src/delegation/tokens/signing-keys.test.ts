import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { decodeProtectedHeader, importJWK, jwtVerify, type JWK } from 'jose';
import type { TokenSigningAlgorithm } from '../../config/types.ts';
import { isMandateError } from '../../errors.ts';
import { KeyEncryptionKey } from '../../identity/keys/kek.ts';
import { MemoryEventSink } from '../../observability/events.ts';
import { openSqliteStore } from '../../store/sqlite/sqlite-store.ts';
import type { Store } from '../../store/store.ts';
import { mintAccessToken } from './mint.ts';
import { TokenSigningKeys, type TokenSigningKeysOptions } from './signing-keys.ts';

const ISSUER = 'https://mandate.example.org';
const T0 = Date.parse('2030-01-01T00:00:00Z');
/** A key signs for 800 s: successor prepared at 600 s (1/4 left), activated at 700 s (1/8 left). */
const KEY_TTL = 800;
const MAX_TOKEN_TTL = 300;
const SKEW = 60;
const at = (seconds: number): Date => new Date(T0 + seconds * 1000);

interface Fixture {
  store: Store;
  kek: KeyEncryptionKey;
  events: MemoryEventSink;
  clock: { now: Date };
  make(over?: Partial<TokenSigningKeysOptions>): TokenSigningKeys;
}

async function fixture(t: TestContext): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-oauth-keys-'));
  const store = await openSqliteStore({ path: join(dir, 'mandate.db') });
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const kek = KeyEncryptionKey.generate();
  const events = new MemoryEventSink();
  const clock = { now: at(0) };
  return {
    store, kek, events, clock,
    make: (over = {}) => new TokenSigningKeys({ store, kek, algorithm: 'ES256', keyTtl: KEY_TTL, maxTokenTtl: MAX_TOKEN_TTL, events, now: () => clock.now, ...over }),
  };
}

async function sign(keys: TokenSigningKeys): Promise<string> {
  const { token } = await mintAccessToken(keys, {
    iss: ISSUER, sub: 'alice', principal_iss: ISSUER, aud: 'https://tools.example/mcp', client_id: 'triage-bot', scope: 'issues:read', ttlSeconds: 60,
  });
  return token;
}

const kids = (keys: TokenSigningKeys): string[] => keys.jwks().keys.map((k) => k.kid as string).sort();
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

describe('TokenSigningKeys', () => {
  it('init creates one active key on a new store, and only once', async (t) => {
    const f = await fixture(t);
    const keys = f.make();
    assert.throws(() => keys.active(), (err: unknown) => isMandateError(err, 'ERR_CA_UNAVAILABLE'), 'no key before init: fail closed');
    await keys.init();
    const records = keys.records();
    assert.equal(records.length, 1);
    assert.equal(records[0]?.state, 'active');
    assert.equal(records[0]?.kind, 'oauth');
    assert.deepEqual(records[0]?.createdAt, at(0));
    assert.deepEqual(records[0]?.notAfter, at(KEY_TTL));
    assert.equal(records[0]?.publishUntil, null);
    assert.equal(keys.active().kid, records[0]?.id);
    assert.equal(keys.active().alg, 'ES256');
    await keys.init();
    await f.make().init();
    assert.equal((await f.store.listSigningKeys('oauth')).length, 1, 'a second init, here or in another instance, adds nothing');
    assert.deepEqual(f.events.events.map((e) => [e.type, e.state]), [['key.oauth.generated', 'active']]);
  });

  it('publishes the active key, public members only', async (t) => {
    const f = await fixture(t);
    const keys = f.make();
    await keys.init();
    const { keys: published } = keys.jwks();
    assert.equal(published.length, 1);
    const jwk = published[0] as JWK;
    assert.equal(jwk.kid, keys.active().kid);
    assert.equal(jwk.alg, 'ES256');
    assert.equal(jwk.use, 'sig');
    assert.equal(jwk.kty, 'EC');
    assert.equal(jwk.crv, 'P-256');
    for (const m of PRIVATE_MEMBERS) assert.equal(m in jwk, false, `no ${m} member`);
    const token = await sign(keys);
    await jwtVerify(token, await importJWK(jwk, 'ES256'), { issuer: ISSUER });
    assert.equal(decodeProtectedHeader(token).kid, jwk.kid);
    const found = keys.publicKey(jwk.kid as string);
    assert.equal(found?.alg, 'ES256');
    assert.equal(keys.publicKey('unknown-kid'), undefined);
  });

  it('rotates on tick: prepares at 1/4 life left, activates at 1/8, removes the retired key after publishUntil', async (t) => {
    const f = await fixture(t);
    const keys = f.make();
    await keys.init();
    const first = keys.active().kid;

    f.clock.now = new Date(at(600).getTime() - 1);
    assert.equal(await keys.tick(), false, 'more than a quarter of its life left');
    assert.deepEqual(kids(keys), [first]);

    f.clock.now = at(600);
    assert.equal(await keys.tick(), true);
    const second = keys.records().find((r) => r.state === 'prepared')?.id as string;
    assert.ok(second);
    assert.equal(keys.active().kid, first, 'prepared, not yet signing');
    assert.deepEqual(kids(keys), [first, second].sort(), 'the successor is published before it signs');
    assert.equal(decodeProtectedHeader(await sign(keys)).kid, first);

    f.clock.now = at(650);
    assert.equal(await keys.tick(), false);

    f.clock.now = new Date(at(700).getTime() - 1);
    assert.equal(await keys.tick(), false, 'more than an eighth of its life left');
    f.clock.now = at(700);
    assert.equal(await keys.tick(), true);
    assert.equal(keys.active().kid, second);
    assert.equal(decodeProtectedHeader(await sign(keys)).kid, second);
    const retired = keys.records().find((r) => r.id === first);
    assert.equal(retired?.state, 'retired');
    const publishUntil = at(700 + MAX_TOKEN_TTL + SKEW);
    assert.deepEqual(retired?.publishUntil, publishUntil, 'published as long as a token it signed can live, plus skew');
    assert.deepEqual(kids(keys), [first, second].sort());
    assert.ok(keys.publicKey(first), 'tokens signed by the retired key still verify');

    f.clock.now = new Date(publishUntil.getTime() - 1);
    assert.equal(await keys.tick(), false);
    assert.deepEqual(kids(keys), [first, second].sort());

    f.clock.now = publishUntil;
    assert.equal(await keys.tick(), true);
    assert.deepEqual(kids(keys), [second]);
    assert.equal(keys.publicKey(first), undefined);
    assert.deepEqual((await f.store.listSigningKeys('oauth')).map((r) => r.id), [second]);

    assert.deepEqual(f.events.events.map((e) => [e.type, e.keyId, e.state ?? e.retiredKeyId]), [
      ['key.oauth.generated', first, 'active'],
      ['key.oauth.generated', second, 'prepared'],
      ['key.oauth.activated', second, first],
      ['key.oauth.removed', first, undefined],
    ]);

    // the next cycle runs on the successor's own life (created at 600 s, so prepared again at 1200 s)
    f.clock.now = new Date(at(1200).getTime() - 1);
    assert.equal(await keys.tick(), false);
    f.clock.now = at(1200);
    assert.equal(await keys.tick(), true);
    assert.equal(keys.records().filter((r) => r.state === 'prepared').length, 1);
  });

  it('rotate() prepares a successor, then activates it', async (t) => {
    const f = await fixture(t);
    const keys = f.make();
    await keys.init();
    const first = keys.active().kid;
    f.clock.now = at(10);
    const prepared = await keys.rotate();
    assert.equal(prepared.phase, 'prepared');
    assert.notEqual(prepared.keyId, first);
    assert.equal(keys.active().kid, first, 'step one does not change the signing key');
    assert.deepEqual(kids(keys), [first, prepared.keyId].sort());

    f.clock.now = at(20);
    const activated = await keys.rotate();
    assert.deepEqual(activated, { phase: 'activated', keyId: prepared.keyId });
    assert.equal(keys.active().kid, prepared.keyId);
    const old = keys.records().find((r) => r.id === first);
    assert.equal(old?.state, 'retired');
    assert.deepEqual(old?.publishUntil, at(20 + MAX_TOKEN_TTL + SKEW));
    assert.deepEqual(kids(keys), [first, prepared.keyId].sort());

    const again = await keys.rotate();
    assert.equal(again.phase, 'prepared');
    assert.ok(![first, prepared.keyId].includes(again.keyId));
    assert.equal(keys.records().filter((r) => r.state === 'active').length, 1, 'never more than one active key');
  });

  it('seals the private key in the store with the KEK', async (t) => {
    const f = await fixture(t);
    const keys = f.make();
    await keys.init();
    const { privateKey, kid } = keys.active();
    const [row] = await f.store.listSigningKeys('oauth');
    assert.ok(row);
    const der = privateKey.export({ type: 'pkcs8', format: 'der' });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const d = (privateKey.export({ format: 'jwk' }) as JWK).d as string;
    const pemBody = pem.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
    for (const [name, secret] of [['PEM body', pemBody], ['DER base64', der.toString('base64')], ['DER base64url', der.toString('base64url')], ['DER hex', der.toString('hex')], ['JWK d', d]] as const) {
      assert.equal(row.privateKeyEnc.includes(secret), false, `the stored envelope does not contain the ${name}`);
    }
    assert.equal(row.privateKeyEnc.includes('PRIVATE KEY'), false);
    assert.equal(row.publicData.includes(d), false, 'the public data has no private member');
    assert.match(row.privateKeyEnc, /^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    assert.ok(f.kek.open(kid, row.privateKeyEnc).equals(der), 'the envelope is the key, sealed with this KEK');
    assert.throws(() => KeyEncryptionKey.generate().open(kid, row.privateKeyEnc), (err: unknown) => isMandateError(err, 'ERR_KEK_INVALID'));
  });

  it('a second instance on the same store signs with the same key, and follows a rotation after reload', async (t) => {
    const f = await fixture(t);
    const a = f.make();
    await a.init();
    const b = f.make();
    await b.init();
    assert.equal(b.active().kid, a.active().kid);
    assert.ok(b.active().privateKey.export({ type: 'pkcs8', format: 'der' }).equals(a.active().privateKey.export({ type: 'pkcs8', format: 'der' })));
    const fromB = await sign(b);
    const aKey = a.publicKey(decodeProtectedHeader(fromB).kid as string);
    assert.ok(aKey);
    await jwtVerify(fromB, aKey.key, { issuer: ISSUER });

    await a.rotate();
    const { keyId } = await a.rotate();
    assert.notEqual(b.active().kid, keyId, 'b has not reloaded yet');
    await b.reload();
    assert.equal(b.active().kid, keyId);
    assert.deepEqual(kids(b), kids(a));
  });

  it('refuses to load keys sealed with another KEK', async (t) => {
    const f = await fixture(t);
    await f.make().init();
    const other = f.make({ kek: KeyEncryptionKey.generate() });
    await assert.rejects(other.init(), (err: unknown) => isMandateError(err, 'ERR_KEK_INVALID'));
    assert.equal((await f.store.listSigningKeys('oauth')).length, 1, 'no second key was created');
  });

  const algorithms: Array<[TokenSigningAlgorithm, Partial<JWK>]> = [
    ['ES256', { kty: 'EC', crv: 'P-256' }],
    ['ES384', { kty: 'EC', crv: 'P-384' }],
    ['EdDSA', { kty: 'OKP', crv: 'Ed25519' }],
    ['PS256', { kty: 'RSA' }],
    ['RS256', { kty: 'RSA' }],
  ];
  for (const [alg, shape] of algorithms) {
    it(`${alg}: the key, its JWK and its tokens all say ${alg}`, async (t) => {
      const f = await fixture(t);
      const keys = f.make({ algorithm: alg });
      await keys.init();
      const jwk = keys.jwks().keys[0] as JWK;
      assert.equal(jwk.alg, alg);
      for (const [member, value] of Object.entries(shape)) assert.equal(jwk[member as keyof JWK], value, member);
      if (shape.kty === 'RSA') assert.equal(createPublicKey({ key: jwk, format: 'jwk' }).asymmetricKeyDetails?.modulusLength, 2048);
      for (const m of PRIVATE_MEMBERS) assert.equal(m in jwk, false, `no ${m} member`);
      assert.equal(keys.active().alg, alg);
      assert.equal(keys.publicKey(jwk.kid as string)?.alg, alg);
      const token = await sign(keys);
      assert.equal(decodeProtectedHeader(token).alg, alg);
      await jwtVerify(token, await importJWK(jwk, alg), { issuer: ISSUER, algorithms: [alg] });

      const reloaded = f.make({ algorithm: alg });
      await reloaded.init();
      assert.equal(reloaded.active().alg, alg, 'the algorithm survives a reload from the store');
      await jwtVerify(await sign(reloaded), await importJWK(jwk, alg), { algorithms: [alg] });
    });
  }
});
