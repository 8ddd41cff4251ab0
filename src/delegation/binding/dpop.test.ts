import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import fc from 'fast-check';
import { DpopSigner, type DpopAlg } from '../../sdk/agent/dpop.ts';
import { isOAuthError, type OAuthErrorCode } from '../oauth/errors.ts';
import { DpopNonces, verifyDpopProof, type DpopRequest, type DpopVerifyOptions } from './dpop.ts';
import { MemoryReplayGuard } from './replay.ts';

const NOW = new Date('2030-01-01T00:00:00Z');
const NOW_S = NOW.getTime() / 1000;
const URL_TOKEN = 'https://mandate.example/oauth/token';
const REQ: DpopRequest = { method: 'POST', url: URL_TOKEN, now: NOW };
const ALL_ALGS = ['ES256', 'ES384', 'ES512', 'RS256', 'PS256', 'EdDSA', 'Ed25519'];

const es256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const other256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const es384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
const JWK_256 = es256.publicKey.export({ format: 'jwk' }) as JWK;

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

const HEADER = { typ: 'dpop+jwt', alg: 'ES256', jwk: JWK_256 };
const CLAIMS = { jti: 'jti-1', htm: 'POST', htu: URL_TOKEN, iat: NOW_S };

const SIGN_HASH: Record<string, string> = { ES256: 'sha256', ES384: 'sha384', RS256: 'sha256' };

/** A proof built by hand from any header and payload, signed with `key` for header.alg. */
function craft(header: Record<string, unknown>, payload: unknown, key: KeyObject = es256.privateKey): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const alg = String(header.alg);
  const hash = SIGN_HASH[alg] ?? 'sha256';
  const sig = sign(hash, Buffer.from(input), key.asymmetricKeyType === 'ec' ? { key, dsaEncoding: 'ieee-p1363' } : key);
  return `${input}.${sig.toString('base64url')}`;
}

function options(extra: Partial<DpopVerifyOptions> = {}): DpopVerifyOptions {
  return { algorithms: ['ES256', 'EdDSA'], maxAgeSeconds: 60, clockSkewSeconds: 30, replay: new MemoryReplayGuard(), ...extra };
}

async function expectRefused(
  proof: string | string[] | undefined,
  code: OAuthErrorCode,
  pattern: RegExp,
  req: Partial<DpopRequest> = {},
  opts: Partial<DpopVerifyOptions> = {},
): Promise<void> {
  await assert.rejects(verifyDpopProof(proof, { ...REQ, ...req }, options(opts)), (err: unknown) => {
    assert.ok(isOAuthError(err), `expected OAuthError, got ${String(err)}`);
    assert.equal(err.error, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

const GOOD = craft(HEADER, CLAIMS);
const nonces = new DpopNonces({ secret: Buffer.alloc(32, 7) });
const oldNonce = nonces.current(new Date(NOW.getTime() - 2 * 300_000));
const hs256Input = `${b64({ ...HEADER, alg: 'HS256' })}.${b64(CLAIMS)}`;
const pem = es256.publicKey.export({ format: 'pem', type: 'spki' }) as string;
/** Same signature bytes, but the last character differs in the 4 unused bits only. */
const aliasSignature = (() => {
  const [h, p, s] = GOOD.split('.') as [string, string, string];
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(s.at(-1) as string);
  return `${h}.${p}.${s.slice(0, -1)}${alphabet[last ^ 1]}`;
})();

const REFUSALS: Array<[string, string | string[] | undefined, OAuthErrorCode, RegExp, Partial<DpopRequest>?, Partial<DpopVerifyOptions>?]> = [
  ['no DPoP header', undefined, 'invalid_dpop_proof', /no DPoP header/],
  ['empty DPoP header', '', 'invalid_dpop_proof', /no DPoP header/],
  ['two DPoP headers (array)', [GOOD, GOOD], 'invalid_dpop_proof', /2 DPoP headers, exactly one/],
  ['two DPoP headers joined with ","', `${GOOD}, ${GOOD}`, 'invalid_dpop_proof', /more than one DPoP proof/],
  ['garbage', 'not-a-jwt', 'invalid_dpop_proof', /1 parts, a compact JWS has 3/],
  ['garbage in three parts', 'a.b.c', 'invalid_dpop_proof', /header is not base64url/],
  ['JWE (5 parts)', `${GOOD}.x.y`, 'invalid_dpop_proof', /5 parts/],
  ['header not JSON', `${b64('hello')}.${b64(CLAIMS)}.AAAA`, 'invalid_dpop_proof', /header is not UTF-8 JSON/],
  ['payload an array', craft(HEADER, [CLAIMS]), 'invalid_dpop_proof', /payload is not a JSON object/],
  ['over-long proof', `${b64(HEADER)}.${b64({ ...CLAIMS, pad: 'x'.repeat(9000) })}.AAAA`, 'invalid_dpop_proof', /over the limit of 8192/],
  ['alg none', `${b64({ ...HEADER, alg: 'none' })}.${b64(CLAIMS)}.`, 'invalid_dpop_proof', /alg "none" is not allowed/],
  ['alg none with a signature part', `${b64({ ...HEADER, alg: 'none' })}.${b64(CLAIMS)}.AAAA`, 'invalid_dpop_proof', /alg "none" is not allowed/],
  ['HS256 keyed with the public key', `${hs256Input}.${createHmac('sha256', pem).update(hs256Input).digest('base64url')}`, 'invalid_dpop_proof', /alg "HS256" is not an asymmetric/],
  ['HS256 keyed with the jwk JSON', `${hs256Input}.${createHmac('sha256', JSON.stringify(JWK_256)).update(hs256Input).digest('base64url')}`, 'invalid_dpop_proof', /alg "HS256" is not an asymmetric/],
  ['alg not accepted here', craft({ ...HEADER, alg: 'ES384', jwk: es384.publicKey.export({ format: 'jwk' }) }, CLAIMS, es384.privateKey), 'invalid_dpop_proof', /alg ES384 is not accepted here \(accepted: ES256, EdDSA\)/],
  ['no alg', craft({ typ: 'dpop+jwt', jwk: JWK_256 }, CLAIMS), 'invalid_dpop_proof', /no alg header/],
  ['wrong typ', craft({ ...HEADER, typ: 'JWT' }, CLAIMS), 'invalid_dpop_proof', /typ "JWT" is not dpop\+jwt/],
  ['typ of an access token', craft({ ...HEADER, typ: 'at+jwt' }, CLAIMS), 'invalid_dpop_proof', /typ "at\+jwt" is not dpop\+jwt/],
  ['no typ', craft({ alg: 'ES256', jwk: JWK_256 }, CLAIMS), 'invalid_dpop_proof', /no typ header/],
  ['no jwk', craft({ typ: 'dpop+jwt', alg: 'ES256' }, CLAIMS), 'invalid_dpop_proof', /no jwk header/],
  ['jwk a string', craft({ ...HEADER, jwk: 'key' }, CLAIMS), 'invalid_dpop_proof', /jwk header is not a JSON object/],
  ['private key in jwk', craft({ ...HEADER, jwk: es256.privateKey.export({ format: 'jwk' }) }, CLAIMS), 'invalid_dpop_proof', /private key member "d"/],
  ['symmetric jwk', craft({ ...HEADER, jwk: { kty: 'oct', k: 'c2VjcmV0' } }, CLAIMS), 'invalid_dpop_proof', /private key member "k"/],
  ['jwk of another curve', craft({ ...HEADER, jwk: es384.publicKey.export({ format: 'jwk' }) }, CLAIMS), 'invalid_dpop_proof', /kty EC, crv P-384\) does not fit alg ES256/],
  ['jwk naming another alg', craft({ ...HEADER, jwk: { ...JWK_256, alg: 'ES384' } }, CLAIMS), 'invalid_dpop_proof', /jwk is for alg ES384, not ES256/],
  ['jwk not on the curve', craft({ ...HEADER, jwk: { ...JWK_256, y: JWK_256.x } }, CLAIMS), 'invalid_dpop_proof', /jwk is not a usable ES256 public key/],
  ['crit header', craft({ ...HEADER, crit: ['exp'], exp: 1 }, CLAIMS), 'invalid_dpop_proof', /header "crit" is not supported/],
  ['signed by another key than the jwk', craft(HEADER, CLAIMS, other256.privateKey), 'invalid_dpop_proof', /signature does not verify with its jwk/],
  ['non-canonical signature alias', aliasSignature, 'invalid_dpop_proof', /signature is not base64url/],
  ['empty signature', `${b64(HEADER)}.${b64(CLAIMS)}.`, 'invalid_dpop_proof', /signature is not base64url/],
  ['RSA key under 2048 bits', craft({ ...HEADER, alg: 'RS256', jwk: rsa1024.publicKey.export({ format: 'jwk' }) }, CLAIMS, rsa1024.privateKey), 'invalid_dpop_proof', /jwk is not a usable RS256 public key: an RSA key of 1024 bits is too small/, {}, { algorithms: ['RS256'] }],
  ['missing jti', craft(HEADER, { ...CLAIMS, jti: undefined }), 'invalid_dpop_proof', /no jti claim/],
  ['empty jti', craft(HEADER, { ...CLAIMS, jti: '' }), 'invalid_dpop_proof', /no jti claim/],
  ['jti over 256 characters', craft(HEADER, { ...CLAIMS, jti: 'j'.repeat(257) }), 'invalid_dpop_proof', /jti is 257 characters, over the limit of 256/],
  ['missing htm', craft(HEADER, { ...CLAIMS, htm: undefined }), 'invalid_dpop_proof', /no htm claim/],
  ['missing htu', craft(HEADER, { ...CLAIMS, htu: undefined }), 'invalid_dpop_proof', /no htu claim/],
  ['iat a string', craft(HEADER, { ...CLAIMS, iat: String(NOW_S) }), 'invalid_dpop_proof', /no numeric iat claim/],
  ['wrong htm', craft(HEADER, { ...CLAIMS, htm: 'GET' }), 'invalid_dpop_proof', /htm GET does not match the request method POST/],
  ['htm in another case', craft(HEADER, { ...CLAIMS, htm: 'post' }), 'invalid_dpop_proof', /htm post does not match the request method POST/],
  ['htu of another host', craft(HEADER, { ...CLAIMS, htu: 'https://evil.example/oauth/token' }), 'invalid_dpop_proof', /htu https:\/\/evil\.example\/oauth\/token does not match the request URI https:\/\/mandate\.example\/oauth\/token/],
  ['htu of another path', craft(HEADER, { ...CLAIMS, htu: 'https://mandate.example/oauth/par' }), 'invalid_dpop_proof', /htu https:\/\/mandate\.example\/oauth\/par does not match/],
  ['htu with a trailing slash', craft(HEADER, { ...CLAIMS, htu: `${URL_TOKEN}/` }), 'invalid_dpop_proof', /does not match/],
  ['htu of another scheme', craft(HEADER, { ...CLAIMS, htu: 'http://mandate.example/oauth/token' }), 'invalid_dpop_proof', /htu http:\/\/mandate\.example\/oauth\/token does not match/],
  ['htu of another port', craft(HEADER, { ...CLAIMS, htu: 'https://mandate.example:8443/oauth/token' }), 'invalid_dpop_proof', /htu https:\/\/mandate\.example:8443\/oauth\/token does not match/],
  ['htu relative', craft(HEADER, { ...CLAIMS, htu: '/oauth/token' }), 'invalid_dpop_proof', /htu is not an http\(s\) URI: it is not an absolute URI with a host/],
  ['htu with user information', craft(HEADER, { ...CLAIMS, htu: 'https://user@mandate.example/oauth/token' }), 'invalid_dpop_proof', /htu is not an http\(s\) URI: it carries user information/],
  ['htu with a space', craft(HEADER, { ...CLAIMS, htu: 'https://mandate.example/oauth token' }), 'invalid_dpop_proof', /htu is not an http\(s\) URI: it contains characters RFC 3986 does not allow/],
  ['iat too old', craft(HEADER, { ...CLAIMS, iat: NOW_S - 91 }), 'invalid_dpop_proof', /iat is 91 s old; proofs are accepted for 60 s \(\+30 s clock skew\)/],
  ['iat in the future', craft(HEADER, { ...CLAIMS, iat: NOW_S + 31 }), 'invalid_dpop_proof', /iat is 31 s in the future \(clock skew allowed: 30 s\)/],
  ['ath missing with an access token', craft(HEADER, CLAIMS), 'invalid_dpop_proof', /no ath claim, but the request carries an access token/, { accessToken: 'token-1' }],
  ['ath of another token', craft(HEADER, { ...CLAIMS, ath: createHash('sha256').update('token-2').digest('base64url') }), 'invalid_dpop_proof', /ath does not match the hash of the access token/, { accessToken: 'token-1' }],
  ['ath not a string', craft(HEADER, { ...CLAIMS, ath: 1 }), 'invalid_dpop_proof', /ath does not match/, { accessToken: 'token-1' }],
  ['nonce missing when required', craft(HEADER, CLAIMS), 'use_dpop_nonce', /no nonce claim/, {}, { nonces, requireNonce: true }],
  ['nonce stale when required', craft(HEADER, { ...CLAIMS, nonce: oldNonce }), 'use_dpop_nonce', /nonce is stale or unknown/, {}, { nonces, requireNonce: true }],
  ['nonce unknown when optional', craft(HEADER, { ...CLAIMS, nonce: 'made-up' }), 'use_dpop_nonce', /nonce is stale or unknown/, {}, { nonces }],
  ['nonce not a string', craft(HEADER, { ...CLAIMS, nonce: 42 }), 'invalid_dpop_proof', /nonce claim is not a string/, {}, { nonces, requireNonce: true }],
  ['request URL not http(s)', GOOD, 'invalid_request', /request URL is not an http\(s\) URI a DPoP proof can match: its scheme ftp is not http or https/, { url: 'ftp://mandate.example/oauth/token' }],
];

test('the well-formed hand-made proof the refusal table starts from is accepted', async () => {
  const verified = await verifyDpopProof(GOOD, REQ, options());
  assert.equal(verified.jkt, await calculateJwkThumbprint(JWK_256, 'sha256'));
  assert.deepEqual(verified.jwk, JWK_256);
  assert.deepEqual({ jti: verified.jti, htm: verified.htm, htu: verified.htu, iat: verified.iat }, CLAIMS);
});

for (const [name, proof, code, pattern, req, opts] of REFUSALS) {
  test(`refused: ${name}`, () => expectRefused(proof, code, pattern, req, opts));
}

test('a use_dpop_nonce refusal carries a fresh, valid DPoP-Nonce and status 400', async () => {
  await assert.rejects(verifyDpopProof(GOOD, REQ, options({ nonces, requireNonce: true })), (err: unknown) => {
    assert.ok(isOAuthError(err, 'use_dpop_nonce'));
    assert.equal(err.status, 400);
    assert.equal(err.headers['DPoP-Nonce'], nonces.current(NOW));
    assert.ok(nonces.isValid(err.headers['DPoP-Nonce'] as string, NOW));
    return true;
  });
  const proof = craft(HEADER, { ...CLAIMS, nonce: nonces.current(NOW) });
  const verified = await verifyDpopProof(proof, REQ, options({ nonces, requireNonce: true }));
  assert.equal(verified.jti, CLAIMS.jti);
});

test('a nonce from the previous window is still accepted; without requireNonce none is needed', async () => {
  const previous = nonces.current(new Date(NOW.getTime() - 300_000));
  await verifyDpopProof(craft(HEADER, { ...CLAIMS, nonce: previous }), REQ, options({ nonces, requireNonce: true }));
  await verifyDpopProof(GOOD, REQ, options({ nonces }));
});

test('a single-element header array is one header', async () => {
  const verified = await verifyDpopProof([GOOD], REQ, options());
  assert.equal(verified.jti, CLAIMS.jti);
});

test('iat at the edges of the window: skew into the future and max age plus skew into the past', async () => {
  await verifyDpopProof(craft(HEADER, { ...CLAIMS, iat: NOW_S + 30 }), REQ, options());
  await verifyDpopProof(craft(HEADER, { ...CLAIMS, iat: NOW_S - 89.999 }), REQ, options());
  await expectRefused(craft(HEADER, { ...CLAIMS, iat: NOW_S - 90 }), 'invalid_dpop_proof', /iat is 90 s old/);
  await verifyDpopProof(craft(HEADER, { ...CLAIMS, iat: NOW_S - 15 }), REQ, options({ maxAgeSeconds: 10, clockSkewSeconds: 10 }));
  await expectRefused(craft(HEADER, { ...CLAIMS, iat: NOW_S - 25 }), 'invalid_dpop_proof', /accepted for 10 s \(\+10 s/, {}, { maxAgeSeconds: 10, clockSkewSeconds: 10 });
});

test('a proof is accepted once: the second use is refused as replayed until its window ends', async () => {
  const replay = new MemoryReplayGuard();
  const opts = options({ replay });
  const proof = craft(HEADER, CLAIMS);
  await verifyDpopProof(proof, REQ, opts);
  await expectRefused(proof, 'invalid_dpop_proof', /replayed/, {}, { replay });
  // Still remembered at the last millisecond the proof is acceptable; refused as too old after it.
  const lastMs = new Date((NOW_S + 90) * 1000 - 1);
  await expectRefused(proof, 'invalid_dpop_proof', /replayed/, { now: lastMs }, { replay });
  await expectRefused(proof, 'invalid_dpop_proof', /iat is 90 s old/, { now: new Date((NOW_S + 90) * 1000) }, { replay });
});

test('replay is scoped by key: the same jti from another key is a different proof', async () => {
  const replay = new MemoryReplayGuard();
  await verifyDpopProof(craft(HEADER, CLAIMS), REQ, options({ replay }));
  const otherJwk = other256.publicKey.export({ format: 'jwk' });
  await verifyDpopProof(craft({ ...HEADER, jwk: otherJwk }, CLAIMS, other256.privateKey), REQ, options({ replay }));
  assert.equal(replay.size, 2);
});

test('a refused proof does not use up its jti', async () => {
  const replay = new MemoryReplayGuard();
  await expectRefused(craft(HEADER, { ...CLAIMS, htm: 'GET' }), 'invalid_dpop_proof', /htm GET/, {}, { replay });
  assert.equal(replay.size, 0);
});

test('a full replay guard refuses new proofs instead of forgetting old ones', async () => {
  const replay = new MemoryReplayGuard({ maxEntries: 1 });
  await verifyDpopProof(craft(HEADER, CLAIMS), REQ, options({ replay }));
  await expectRefused(craft(HEADER, { ...CLAIMS, jti: 'jti-2' }), 'invalid_dpop_proof', /replay cache is full/, {}, { replay });
});

for (const alg of ['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'RS256', 'PS256'] as DpopAlg[]) {
  test(`a proof from DpopSigner (${alg}) is accepted, with ath and nonce`, async () => {
    const signer = await DpopSigner.generate(alg);
    const now = new Date();
    const url = 'https://tools.example/mcp/call';
    const proof = await signer.proof('POST', url, { accessToken: 'at-1', nonce: nonces.current(now) });
    const verified = await verifyDpopProof(proof, { method: 'POST', url, accessToken: 'at-1', now }, options({ algorithms: ALL_ALGS, nonces, requireNonce: true }));
    assert.equal(verified.jkt, signer.jkt);
    assert.deepEqual(verified.jwk, signer.publicJwk);
    assert.equal(verified.htu, url);
    assert.equal(verified.htm, 'POST');
    await expectRefused(proof, 'invalid_dpop_proof', /ath does not match/, { url, now, accessToken: 'at-2' }, { algorithms: ALL_ALGS });
  });
}

test('htu is compared normalised: query and fragment ignored, case, default port and encodings normalised', async () => {
  const signer = await DpopSigner.generate();
  const cases: Array<[string, string]> = [
    ['https://tools.example/mcp?tool=search#frag', 'https://tools.example/mcp?other=1'],
    ['https://tools.example/mcp', 'https://tools.example/mcp?x=1'],
    ['HTTPS://Tools.Example:443/mcp', 'https://tools.example/mcp'],
    ['https://tools.example/mcp', 'https://TOOLS.example:443/mcp#x'],
    ['http://tools.example:80/a/./b/../c', 'http://tools.example/a/c'],
    ['https://tools.example/%7euser/%2f', 'https://tools.example/~user/%2F'],
    ['https://tools.example', 'https://tools.example/'],
  ];
  for (const [signed, requested] of cases) {
    const proof = await signer.proof('GET', signed);
    await verifyDpopProof(proof, { method: 'GET', url: requested }, options());
  }
  const proof = await signer.proof('GET', 'https://tools.example/mcp?tool=search');
  await expectRefused(proof, 'invalid_dpop_proof', /does not match the request URI https:\/\/tools\.example\/mcp\/x/, { method: 'GET', url: 'https://tools.example/mcp/x?tool=search', now: new Date() });
});

test('RFC 9449 §4.1 example proof: structure, signature and thumbprint', async () => {
  const proof =
    'eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19' +
    '.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ' +
    '.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg';
  const [h, p] = proof.split('.') as [string, string];
  assert.deepEqual(JSON.parse(Buffer.from(h, 'base64url').toString()), {
    typ: 'dpop+jwt',
    alg: 'ES256',
    jwk: { kty: 'EC', x: 'l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs', y: '9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA', crv: 'P-256' },
  });
  assert.deepEqual(JSON.parse(Buffer.from(p, 'base64url').toString()), { jti: '-BwC3ESc6acc2lTc', htm: 'POST', htu: 'https://server.example.com/token', iat: 1562262616 });
  const now = new Date(1562262616 * 1000);
  const verified = await verifyDpopProof(proof, { method: 'POST', url: 'https://server.example.com/token', now }, options({ algorithms: ['ES256'] }));
  // RFC 9449 §6.1 shows this key's thumbprint as the cnf.jkt of the token issued for it.
  assert.equal(verified.jkt, '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I');
  assert.equal(verified.jti, '-BwC3ESc6acc2lTc');
  await expectRefused(proof, 'invalid_dpop_proof', /iat is 91 s old/, { url: 'https://server.example.com/token', now: new Date(now.getTime() + 91_000) });
});

test('RFC 9449 §7.1 example proof with ath is accepted with its access token only', async () => {
  const proof =
    'eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19' +
    '.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9' +
    '.2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA';
  const req = { method: 'GET', url: 'https://resource.example.org/protectedresource', now: new Date(1562262618 * 1000) };
  const verified = await verifyDpopProof(proof, { ...req, accessToken: 'Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU' }, options({ algorithms: ['ES256'] }));
  assert.equal(verified.jkt, '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I');
  await expectRefused(proof, 'invalid_dpop_proof', /ath does not match/, { ...req, accessToken: 'another-token' });
});

test('property: any single-character change to a valid proof is refused', async () => {
  const signer = await DpopSigner.generate('ES256');
  const url = 'https://tools.example/mcp';
  const proof = await signer.proof('POST', url, { accessToken: 'at-1' });
  const now = new Date();
  const req = { method: 'POST', url, accessToken: 'at-1', now };
  await verifyDpopProof(proof, req, options());
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: proof.length - 1 }), fc.integer({ min: 0x21, max: 0x7e }), async (index, code) => {
      fc.pre(proof.charCodeAt(index) !== code);
      const mutated = proof.slice(0, index) + String.fromCharCode(code) + proof.slice(index + 1);
      await assert.rejects(verifyDpopProof(mutated, req, options()), (err: unknown) => {
        assert.ok(isOAuthError(err, 'invalid_dpop_proof'), `expected invalid_dpop_proof, got ${String(err)}`);
        assert.doesNotMatch(err.message, /replayed/);
        return true;
      });
    }),
    { numRuns: 1000 },
  );
});

test('inconsistent options are programming errors (TypeError), not refusals', async () => {
  const bad: Array<[Partial<DpopVerifyOptions>, RegExp]> = [
    [{ algorithms: [] }, /at least one algorithm/],
    [{ algorithms: ['none'] }, /none is not an asymmetric/],
    [{ algorithms: ['ES256', 'HS256'] }, /HS256 is not an asymmetric/],
    [{ requireNonce: true }, /requireNonce needs a DpopNonces/],
    [{ maxAgeSeconds: 0 }, /maxAgeSeconds must be positive/],
    [{ clockSkewSeconds: -1 }, /clockSkewSeconds must not be negative/],
  ];
  for (const [opts, pattern] of bad) {
    await assert.rejects(verifyDpopProof(GOOD, REQ, options(opts)), (err: unknown) => err instanceof TypeError && pattern.test(err.message));
  }
});

test('DpopNonces: current and previous window accepted, older and foreign refused', () => {
  const n = new DpopNonces({ windowSeconds: 60 });
  const t0 = new Date('2030-01-01T00:00:10Z');
  const nonce = n.current(t0);
  assert.match(nonce, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(n.current(new Date('2030-01-01T00:00:59.999Z')), nonce, 'same window, same nonce');
  assert.ok(n.isValid(nonce, t0));
  const next = new Date('2030-01-01T00:01:00Z');
  assert.notEqual(n.current(next), nonce, 'a new window has a new nonce');
  assert.ok(n.isValid(nonce, next), 'the previous window is still accepted after rollover');
  assert.ok(n.isValid(nonce, new Date('2030-01-01T00:01:59.999Z')));
  assert.ok(!n.isValid(nonce, new Date('2030-01-01T00:02:00Z')), 'two windows later it is stale');
  assert.ok(!n.isValid(n.current(next), t0), 'a nonce from a later window is not accepted early');
  assert.ok(!new DpopNonces({ windowSeconds: 60 }).isValid(nonce, t0), 'another random secret does not accept it');
  assert.ok(!n.isValid('', t0));
  assert.ok(!n.isValid(`${nonce}x`, t0));
});

test('DpopNonces: the same secret gives the same nonces on every replica; the window is part of the nonce', () => {
  const secret = Buffer.alloc(32, 1);
  const a = new DpopNonces({ secret });
  const b = new DpopNonces({ secret });
  assert.equal(a.windowSeconds, 300);
  assert.equal(a.current(NOW), b.current(NOW));
  assert.ok(b.isValid(a.current(NOW), NOW));
  assert.ok(!new DpopNonces({ secret, windowSeconds: 60 }).isValid(a.current(NOW), NOW));
  assert.throws(() => new DpopNonces({ secret: Buffer.alloc(16) }), /at least 32 bytes/);
  assert.throws(() => new DpopNonces({ windowSeconds: 0 }), /positive integer/);
});
