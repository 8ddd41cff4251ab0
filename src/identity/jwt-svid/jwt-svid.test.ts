import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, createHmac, generateKeyPairSync, KeyObject, sign, type KeyObject as KeyObjectType } from 'node:crypto';
import * as jose from 'jose';
import fc from 'fast-check';
import { isMandateError, MandateError, type ErrorCode } from '../../errors.ts';
import type { Bundle } from '../bundle/bundle.ts';
import { parseSpiffeBundle } from '../bundle/parse.ts';
import { TrustBundleSet } from '../bundle/set.ts';
import { ALGORITHMS, JWT_SVID_ALGS, type JwtSvidAlg } from './algorithms.ts';
import { issueJwtSvid } from './issue.ts';
import { verifyJwtSvid } from './verify.ts';

const NOW = new Date('2030-01-01T00:00:00Z');
const NOW_S = NOW.getTime() / 1000;
const A = 'a.example';
const B = 'b.example';
const SUB_A = `spiffe://${A}/agent/triage-bot`;
const AUD = 'spiffe://a.example/gateway';

function keyPair(alg: JwtSvidAlg): { privateKey: KeyObjectType; publicKey: KeyObjectType } {
  const spec = ALGORITHMS[alg];
  return spec.kty === 'EC' ? generateKeyPairSync('ec', { namedCurve: spec.crv! }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
}

function bundleOf(td: string, keys: Array<{ kid: string; publicKey: KeyObjectType; alg?: string }>): Bundle {
  return parseSpiffeBundle({ keys: keys.map((k) => ({ ...k.publicKey.export({ format: 'jwk' }), kid: k.kid, use: 'jwt-svid', ...(k.alg ? { alg: k.alg } : {}) })) }, td);
}

// Two trust domains whose bundles both use kid "k1", with different keys.
const keyA = keyPair('ES256');
const keyB = keyPair('ES256');
const bundles = new TrustBundleSet();
bundles.set(bundleOf(A, [{ kid: 'k1', publicKey: keyA.publicKey }]));
bundles.set(bundleOf(B, [{ kid: 'k1', publicKey: keyB.publicKey }]));
const signerA = { kid: 'k1', alg: 'ES256' as const, privateKey: keyA.privateKey };

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Builds a token by hand, signed ES256 with `key` unless another signature is given. */
function craft(header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObjectType = keyA.privateKey, signature?: string): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = signature ?? sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  return `${input}.${sig}`;
}

const HEADER = { alg: 'ES256', kid: 'k1', typ: 'JWT' };
const CLAIMS = { sub: SUB_A, aud: [AUD], exp: NOW_S + 300, iat: NOW_S, jti: 'j1' };

async function expectReject(token: string, code: ErrorCode, pattern: RegExp, opts: Partial<Parameters<typeof verifyJwtSvid>[2]> = {}, set = bundles): Promise<void> {
  await assert.rejects(verifyJwtSvid(token, set, { audience: AUD, now: NOW, ...opts }), (err: unknown) => {
    assert.ok(isMandateError(err), `expected MandateError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

// --- issue + verify round trips ---

for (const alg of JWT_SVID_ALGS) {
  test(`round trip ${alg}: our verifier and jose.jwtVerify accept the token`, async () => {
    const pair = keyPair(alg);
    const set = new TrustBundleSet();
    set.set(bundleOf(A, [{ kid: `k-${alg}`, publicKey: pair.publicKey }]));
    const issued = await issueJwtSvid({ spiffeId: SUB_A, audience: [AUD], ttlSeconds: 300, key: { kid: `k-${alg}`, alg, privateKey: pair.privateKey }, now: NOW });
    assert.equal(issued.issuedAt.getTime(), NOW.getTime());
    assert.equal(issued.expiresAt.getTime(), NOW.getTime() + 300_000);

    const ours = await verifyJwtSvid(issued.token, set, { audience: AUD, now: NOW });
    assert.equal(ours.spiffeId.toString(), SUB_A);
    assert.deepEqual(ours.header, { alg, kid: `k-${alg}`, typ: 'JWT' });

    const theirs = await jose.jwtVerify(issued.token, pair.publicKey, { audience: AUD, algorithms: [alg], currentDate: NOW, typ: 'JWT' });
    assert.equal(theirs.payload.sub, SUB_A);
    assert.deepEqual(theirs.protectedHeader, { alg, kid: `k-${alg}`, typ: 'JWT' });
  });
}

test('issued claims: exactly sub, aud, exp, iat, jti (+ extra claims); jti is 128 random bits', async () => {
  const one = await issueJwtSvid({ spiffeId: SUB_A, audience: [AUD], ttlSeconds: 60, key: signerA, now: NOW, extraClaims: { iss: 'https://mandate.example' } });
  const two = await issueJwtSvid({ spiffeId: SUB_A, audience: [AUD, 'other'], ttlSeconds: 60, key: signerA, now: NOW });
  const claims1 = jose.decodeJwt(one.token);
  assert.deepEqual(Object.keys(claims1).sort(), ['aud', 'exp', 'iat', 'iss', 'jti', 'sub']);
  assert.equal(claims1.aud, AUD);
  assert.deepEqual(jose.decodeJwt(two.token).aud, [AUD, 'other']);
  assert.equal(claims1.exp, NOW_S + 60);
  assert.match(claims1.jti!, /^[A-Za-z0-9_-]{22}$/);
  assert.notEqual(claims1.jti, jose.decodeJwt(two.token).jti);
});

test('issue accepts a WebCrypto CryptoKey as well as a KeyObject', async () => {
  const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign', 'verify']);
  const set = new TrustBundleSet();
  set.set(bundleOf(A, [{ kid: 'wc', publicKey: KeyObject.from(pair.publicKey) }]));
  const { token } = await issueJwtSvid({ spiffeId: SUB_A, audience: [AUD], ttlSeconds: 60, key: { kid: 'wc', alg: 'ES384', privateKey: pair.privateKey }, now: NOW });
  assert.equal((await verifyJwtSvid(token, set, { audience: AUD, now: NOW })).spiffeId.toString(), SUB_A);
});

test('issue rejects bad requests and keys that do not fit alg', async () => {
  const base = { spiffeId: SUB_A, audience: [AUD], ttlSeconds: 60, key: signerA, now: NOW };
  const cases: Array<[string, Record<string, unknown>, ErrorCode, RegExp]> = [
    ['empty audience', { audience: [] }, 'ERR_BAD_REQUEST', /at least one audience/],
    ['empty audience string', { audience: [''] }, 'ERR_BAD_REQUEST', /non-empty string/],
    ['sub not a SPIFFE ID', { spiffeId: 'https://a.example/x' }, 'ERR_SPIFFE_ID_INVALID', /scheme/],
    ['ttl zero', { ttlSeconds: 0 }, 'ERR_BAD_REQUEST', /ttlSeconds/],
    ['ttl fractional', { ttlSeconds: 1.5 }, 'ERR_BAD_REQUEST', /ttlSeconds/],
    ['extra claim overrides sub', { extraClaims: { sub: 'spiffe://a.example/other' } }, 'ERR_BAD_REQUEST', /may not set "sub"/],
    ['extra claim overrides exp', { extraClaims: { exp: 1 } }, 'ERR_BAD_REQUEST', /may not set "exp"/],
    ['extra claim not JSON', { extraClaims: { n: 1n } }, 'ERR_BAD_REQUEST', /cannot be serialised as JSON/],
    ['invalid now', { now: new Date('nope') }, 'ERR_BAD_REQUEST', /now is not a valid date/],
    ['EC key for RS256', { key: { ...signerA, alg: 'RS256' } }, 'ERR_KEY_INVALID', /needs an RSA key/],
    ['P-256 key for ES384', { key: { ...signerA, alg: 'ES384' } }, 'ERR_KEY_INVALID', /needs curve P-384/],
    ['HS256', { key: { ...signerA, alg: 'HS256' } }, 'ERR_KEY_INVALID', /not a JWT-SVID algorithm/],
    ['public key', { key: { ...signerA, kid: 'pub', privateKey: keyA.publicKey } }, 'ERR_KEY_INVALID', /not a private key/],
    ['no kid', { key: { ...signerA, kid: '', privateKey: keyB.privateKey } }, 'ERR_KEY_INVALID', /non-empty kid/],
    ['RSA 1024', { key: { kid: 'r', alg: 'RS256', privateKey: generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey } }, 'ERR_KEY_INVALID', /1024 bits/],
  ];
  for (const [name, over, code, pattern] of cases) {
    await assert.rejects(issueJwtSvid({ ...base, ...over } as Parameters<typeof issueJwtSvid>[0]), (err: unknown) => isMandateError(err, code) && pattern.test(err.message), name);
  }
});

// --- verification: accepted variants ---

test('accepted: typ JOSE, typ absent, aud as string, no kid (each authority is tried), within clock tolerance', async () => {
  const ok = async (token: string, opts: Partial<Parameters<typeof verifyJwtSvid>[2]> = {}) =>
    assert.equal((await verifyJwtSvid(token, bundles, { audience: AUD, now: NOW, ...opts })).spiffeId.toString(), SUB_A);
  await ok(craft({ ...HEADER, typ: 'JOSE' }, CLAIMS));
  await ok(craft({ alg: 'ES256', kid: 'k1' }, CLAIMS));
  await ok(craft(HEADER, { ...CLAIMS, aud: AUD }));
  await ok(craft({ alg: 'ES256' }, CLAIMS));
  await ok(craft(HEADER, { ...CLAIMS, exp: NOW_S - 29 }));
  await ok(craft(HEADER, { ...CLAIMS, nbf: NOW_S + 29, iat: NOW_S + 29 }));
  await ok(craft(HEADER, { ...CLAIMS, aud: ['x', AUD] }), { audience: ['y', AUD] });
  await ok(craft(HEADER, { ...CLAIMS, exp: NOW_S - 50 }), { clockToleranceSeconds: 60 });
});

// --- verification: the table of tricky rejections ---

const pubPem = keyA.publicKey.export({ type: 'spki', format: 'pem' }) as string;
const hsInput = `${b64({ alg: 'HS256', kid: 'k1', typ: 'JWT' })}.${b64(CLAIMS)}`;
const hsConfusion = `${hsInput}.${createHmac('sha256', pubPem).update(hsInput).digest('base64url')}`;
const valid = craft(HEADER, CLAIMS);
const [vh, vp, vs] = valid.split('.') as [string, string, string];
const flip = (s: string, i: number): string => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
const derSig = sign('sha256', Buffer.from(`${vh}.${vp}`), keyA.privateKey).toString('base64url');
const lastSigChar = vs[vs.length - 1]!;
// 64 bytes -> 86 chars: the last char carries 2 data bits and 4 padding bits; changing a padding bit
// still decodes to the same signature, so only strict decoding rejects it.
const aliasChar = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.indexOf(lastSigChar) ^ 1;
const aliasSig = vs.slice(0, -1) + 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[aliasChar];

const rejections: Array<[string, string, ErrorCode, RegExp, Partial<Parameters<typeof verifyJwtSvid>[2]>?]> = [
  ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(CLAIMS)}.`, 'ERR_JWT_SVID_INVALID', /alg "none" is not allowed/],
  ['alg none with a signature', craft({ alg: 'none', kid: 'k1' }, CLAIMS), 'ERR_JWT_SVID_INVALID', /alg "none" is not allowed/],
  ['HS256 signed with the public key as secret', hsConfusion, 'ERR_JWT_SVID_INVALID', /alg "HS256" is not allowed/],
  ['alg EdDSA', craft({ ...HEADER, alg: 'EdDSA' }, CLAIMS), 'ERR_JWT_SVID_INVALID', /alg "EdDSA" is not allowed/],
  ['alg missing', craft({ kid: 'k1', typ: 'JWT' }, CLAIMS), 'ERR_JWT_SVID_INVALID', /alg undefined is not allowed/],
  ['alg lowercase', craft({ ...HEADER, alg: 'es256' }, CLAIMS), 'ERR_JWT_SVID_INVALID', /alg "es256" is not allowed/],
  ['alg ES384 with a P-256 key', craft({ ...HEADER, alg: 'ES384' }, CLAIMS), 'ERR_JWT_SVID_INVALID', /does not fit alg ES384/],
  ['alg RS256 with an EC key (no kid)', craft({ alg: 'RS256' }, CLAIMS), 'ERR_JWT_SVID_INVALID', /no JWT authority of trust domain a\.example fits alg RS256/],
  ['typ at+jwt', craft({ ...HEADER, typ: 'at+jwt' }, CLAIMS), 'ERR_JWT_SVID_INVALID', /typ "at\+jwt" is not JWT or JOSE/],
  ['typ dpop+jwt', craft({ ...HEADER, typ: 'dpop+jwt' }, CLAIMS), 'ERR_JWT_SVID_INVALID', /typ "dpop\+jwt"/],
  ['typ lowercase jwt', craft({ ...HEADER, typ: 'jwt' }, CLAIMS), 'ERR_JWT_SVID_INVALID', /typ "jwt"/],
  ['typ not a string', craft({ ...HEADER, typ: 1 }, CLAIMS), 'ERR_JWT_SVID_INVALID', /typ 1/],
  ['header jku', craft({ ...HEADER, jku: 'https://evil.example/jwks' }, CLAIMS), 'ERR_JWT_SVID_INVALID', /header "jku" is not allowed/],
  ['header x5u', craft({ ...HEADER, x5u: 'https://evil.example/cert' }, CLAIMS), 'ERR_JWT_SVID_INVALID', /header "x5u" is not allowed/],
  ['header jwk', craft({ ...HEADER, jwk: keyB.publicKey.export({ format: 'jwk' }) }, CLAIMS, keyB.privateKey), 'ERR_JWT_SVID_INVALID', /header "jwk" is not allowed/],
  ['header crit', craft({ ...HEADER, crit: ['exp'] }, CLAIMS), 'ERR_JWT_SVID_INVALID', /header "crit" is not allowed/],
  ['header b64', craft({ ...HEADER, b64: false }, CLAIMS), 'ERR_JWT_SVID_INVALID', /header "b64" is not allowed/],
  ['header kid empty', craft({ ...HEADER, kid: '' }, CLAIMS), 'ERR_JWT_SVID_INVALID', /kid header is not a non-empty string/],
  ['missing aud', craft(HEADER, { ...CLAIMS, aud: undefined }), 'ERR_JWT_SVID_INVALID', /aud claim is missing/],
  ['aud empty array', craft(HEADER, { ...CLAIMS, aud: [] }), 'ERR_JWT_SVID_INVALID', /aud claim is not a string or a non-empty array/],
  ['aud a number', craft(HEADER, { ...CLAIMS, aud: 5 }), 'ERR_JWT_SVID_INVALID', /aud claim is not a string/],
  ['wrong aud', craft(HEADER, { ...CLAIMS, aud: ['spiffe://a.example/other'] }), 'ERR_JWT_SVID_AUDIENCE', /contains none of the expected audiences/],
  ['aud prefix of the expected one', craft(HEADER, { ...CLAIMS, aud: 'spiffe://a.example/gate' }), 'ERR_JWT_SVID_AUDIENCE', /none of the expected/],
  ['missing exp', craft(HEADER, { ...CLAIMS, exp: undefined }), 'ERR_JWT_SVID_INVALID', /exp claim is missing/],
  ['exp a string', craft(HEADER, { ...CLAIMS, exp: String(NOW_S + 300) }), 'ERR_JWT_SVID_INVALID', /exp claim is not a number/],
  ['expired beyond tolerance', craft(HEADER, { ...CLAIMS, exp: NOW_S - 31 }), 'ERR_JWT_SVID_EXPIRED', /token expired at 2029-12-31T23:59:29/],
  ['expired, no tolerance', craft(HEADER, { ...CLAIMS, exp: NOW_S }), 'ERR_JWT_SVID_EXPIRED', /expired/, { clockToleranceSeconds: 0 }],
  ['nbf in the future', craft(HEADER, { ...CLAIMS, nbf: NOW_S + 120 }), 'ERR_JWT_SVID_INVALID', /not valid before .* \(nbf\)/],
  ['iat in the future', craft(HEADER, { ...CLAIMS, iat: NOW_S + 120 }), 'ERR_JWT_SVID_INVALID', /issued in the future/],
  ['sub not a SPIFFE ID', craft(HEADER, { ...CLAIMS, sub: 'triage-bot' }), 'ERR_JWT_SVID_INVALID', /sub claim is not a SPIFFE ID/],
  ['sub with a dot segment', craft(HEADER, { ...CLAIMS, sub: 'spiffe://a.example/agent/../admin' }), 'ERR_JWT_SVID_INVALID', /sub claim is not a SPIFFE ID/],
  ['sub missing', craft(HEADER, { ...CLAIMS, sub: undefined }), 'ERR_JWT_SVID_INVALID', /sub claim is missing/],
  ['sub of a trust domain without bundle', craft(HEADER, { ...CLAIMS, sub: 'spiffe://c.example/agent' }), 'ERR_BUNDLE_UNKNOWN_TRUST_DOMAIN', /c\.example/],
  ['sub of domain B signed by A\'s key with the colliding kid', craft(HEADER, { ...CLAIMS, sub: `spiffe://${B}/agent/x` }), 'ERR_JWT_SVID_INVALID', /signature verification failed/],
  ['sub of domain B signed by A\'s key, no kid', craft({ alg: 'ES256' }, { ...CLAIMS, sub: `spiffe://${B}/agent/x` }), 'ERR_JWT_SVID_INVALID', /signature verification failed/],
  ['unknown kid', craft({ ...HEADER, kid: 'k2' }, CLAIMS), 'ERR_JWT_SVID_INVALID', /kid "k2" is not a JWT authority of trust domain a\.example/],
  ['signed by another key', craft(HEADER, CLAIMS, keyB.privateKey), 'ERR_JWT_SVID_INVALID', /signature verification failed/],
  ['tampered payload', `${vh}.${b64({ ...CLAIMS, sub: `spiffe://${A}/agent/admin` })}.${vs}`, 'ERR_JWT_SVID_INVALID', /signature verification failed/],
  ['tampered header', `${b64({ ...HEADER, typ: 'JOSE' })}.${vp}.${vs}`, 'ERR_JWT_SVID_INVALID', /signature verification failed/],
  ['tampered signature', `${vh}.${vp}.${flip(vs, 10)}`, 'ERR_JWT_SVID_INVALID', /signature verification failed/],
  ['signature alias (non-canonical base64url)', `${vh}.${vp}.${aliasSig}`, 'ERR_JWT_SVID_INVALID', /signature is not base64url/],
  ['signature in DER instead of r||s', `${vh}.${vp}.${derSig}`, 'ERR_JWT_SVID_INVALID', /signature is \d+ bytes, ES256 needs 64/],
  ['signature empty', `${vh}.${vp}.`, 'ERR_JWT_SVID_INVALID', /signature is not base64url/],
  ['JSON serialization', JSON.stringify({ payload: vp, protected: vh, signature: vs }), 'ERR_JWT_SVID_INVALID', /JSON serialization is not allowed/],
  ['5 parts (JWE)', `${vh}.${vp}.${vs}.AAAA.AAAA`, 'ERR_JWT_SVID_INVALID', /5 parts: a JWE/],
  ['2 parts', `${vh}.${vp}`, 'ERR_JWT_SVID_INVALID', /has 2 parts/],
  ['4 parts', `${valid}.AAAA`, 'ERR_JWT_SVID_INVALID', /has 4 parts/],
  ['empty token', '', 'ERR_JWT_SVID_INVALID', /has 1 parts/],
  ['oversized token', craft(HEADER, { ...CLAIMS, pad: 'x'.repeat(20_000) }), 'ERR_JWT_SVID_INVALID', /over the limit of 16384/],
  ['over a custom size limit', valid, 'ERR_JWT_SVID_INVALID', /over the limit of 100/, { maxLength: 100 }],
  ['garbage base64 header', `!!!.${vp}.${vs}`, 'ERR_JWT_SVID_INVALID', /header is not base64url/],
  ['padded base64 payload', `${vh}.${vp}==.${vs}`, 'ERR_JWT_SVID_INVALID', /payload is not base64url/],
  ['header not JSON', `${b64('hello')}.${vp}.${vs}`, 'ERR_JWT_SVID_INVALID', /header is not UTF-8 JSON/],
  ['header a JSON array', `${b64(['ES256'])}.${vp}.${vs}`, 'ERR_JWT_SVID_INVALID', /header is not a JSON object/],
  ['payload not UTF-8', `${vh}.${Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')}.${vs}`, 'ERR_JWT_SVID_INVALID', /payload is not UTF-8 JSON/],
  ['payload null', `${vh}.${b64('null')}.${vs}`, 'ERR_JWT_SVID_INVALID', /payload is not a JSON object/],
];

for (const [name, token, code, pattern, opts] of rejections) {
  test(`rejects: ${name}`, async () => expectReject(token, code, pattern, opts));
}

test('rejects: a non-string token, and a trust domain whose bundle has no JWT authorities', async () => {
  await expectReject(42 as unknown as string, 'ERR_JWT_SVID_INVALID', /not a string/);
  const set = new TrustBundleSet();
  set.set(parseSpiffeBundle({ keys: [] }, A));
  await expectReject(valid, 'ERR_JWT_SVID_INVALID', /trust domain a\.example has no JWT authorities/, {}, set);
});

test('a JWK that names its alg is only used for that alg', async () => {
  const set = new TrustBundleSet();
  set.set(bundleOf(A, [{ kid: 'k1', publicKey: keyA.publicKey, alg: 'ES256' }]));
  assert.ok(await verifyJwtSvid(valid, set, { audience: AUD, now: NOW }));
  const rsa = keyPair('RS256');
  const rsaSet = new TrustBundleSet();
  rsaSet.set(bundleOf(A, [{ kid: 'r', publicKey: rsa.publicKey, alg: 'PS256' }]));
  const input = `${b64({ alg: 'RS256', kid: 'r' })}.${b64(CLAIMS)}`;
  const rs256 = `${input}.${sign('sha256', Buffer.from(input), { key: rsa.privateKey, padding: constants.RSA_PKCS1_PADDING }).toString('base64url')}`;
  await expectReject(rs256, 'ERR_JWT_SVID_INVALID', /key r of trust domain a\.example does not fit alg RS256/, {}, rsaSet);
});

test('a remembered signature stops counting once its key leaves the bundle (rotation, revocation)', async () => {
  const set = new TrustBundleSet();
  set.set(bundleOf(A, [{ kid: 'k1', publicKey: keyA.publicKey }]));
  const { token } = await issueJwtSvid({ spiffeId: SUB_A, audience: [AUD], ttlSeconds: 300, key: signerA, now: NOW });
  await verifyJwtSvid(token, set, { audience: AUD, now: NOW });
  await verifyJwtSvid(token, set, { audience: AUD, now: NOW });
  // Same kid, different key: the cached result must not vouch for the token any more.
  set.set(bundleOf(A, [{ kid: 'k1', publicKey: keyB.publicKey }]));
  await expectReject(token, 'ERR_JWT_SVID_INVALID', /signature verification failed/, {}, set);
  // Key removed entirely.
  set.set(parseSpiffeBundle({ keys: [] }, A));
  await expectReject(token, 'ERR_JWT_SVID_INVALID', /no JWT authorities/, {}, set);
  // The original key back (a fresh parse, so a new JWK object): verifies again, and claims are rechecked.
  set.set(bundleOf(A, [{ kid: 'k1', publicKey: keyA.publicKey }]));
  assert.ok(await verifyJwtSvid(token, set, { audience: AUD, now: NOW }));
  await expectReject(token, 'ERR_JWT_SVID_EXPIRED', /expired/, { now: new Date(NOW.getTime() + 3_600_000) }, set);
  await expectReject(token, 'ERR_JWT_SVID_AUDIENCE', /none of the expected/, { audience: 'other' }, set);
});

test('a hand-built bundle (JWKs not from the parser) verifies, and an in-place key change is noticed', async () => {
  const jwk = { ...keyA.publicKey.export({ format: 'jwk' }), kid: 'k1', use: 'jwt-svid' };
  const set = new TrustBundleSet();
  set.set({ trustDomain: A, x509Authorities: [], jwtAuthorities: new Map([['k1', jwk]]) });
  const token = craft(HEADER, { ...CLAIMS, jti: 'hand-built' });
  assert.ok(await verifyJwtSvid(token, set, { audience: AUD, now: NOW }));
  Object.assign(jwk, keyB.publicKey.export({ format: 'jwk' }));
  await expectReject(token, 'ERR_JWT_SVID_INVALID', /signature verification failed/, {}, set);
  await expectReject(craft(HEADER, { ...CLAIMS, jti: 'hand-built-2' }), 'ERR_JWT_SVID_INVALID', /signature verification failed/, {}, set);
  assert.ok(await verifyJwtSvid(craft(HEADER, { ...CLAIMS, jti: 'hand-built-3' }, keyB.privateKey), set, { audience: AUD, now: NOW }));
});

test('verify refuses to run without an expected audience', async () => {
  await assert.rejects(verifyJwtSvid(valid, bundles, { audience: [], now: NOW }), (err: unknown) => isMandateError(err, 'ERR_INTERNAL'));
  await assert.rejects(verifyJwtSvid(valid, bundles, { audience: '', now: NOW }), (err: unknown) => isMandateError(err, 'ERR_INTERNAL'));
});

test('property: mutations of a valid token never verify and only ever throw MandateError', async () => {
  const { token } = await issueJwtSvid({ spiffeId: SUB_A, audience: [AUD], ttlSeconds: 300, key: signerA, now: NOW });
  await verifyJwtSvid(token, bundles, { audience: AUD, now: NOW }); // the unmutated token is valid
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.={}"+/ \u00e9\u0000';
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), ch: fc.constantFrom(...alphabet) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), ch: fc.constantFrom(...alphabet) }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), ch: fc.constant('') }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(), ch: fc.constant('') }),
  );
  await fc.assert(fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (mutations) => {
    let t = token;
    for (const m of mutations) {
      const at = m.at % (t.length + 1);
      if (m.kind === 'replace') t = t.slice(0, at) + m.ch + t.slice(at + 1);
      else if (m.kind === 'insert') t = t.slice(0, at) + m.ch + t.slice(at);
      else if (m.kind === 'delete') t = t.slice(0, at) + t.slice(at + 1);
      else t = t.slice(0, at);
    }
    fc.pre(t !== token);
    try {
      await verifyJwtSvid(t, bundles, { audience: AUD, now: NOW });
    } catch (err) {
      assert.ok(err instanceof MandateError, `threw ${String(err)}`);
      return;
    }
    assert.fail(`mutated token verified: ${t}`);
  }), { numRuns: 1000 });
});

