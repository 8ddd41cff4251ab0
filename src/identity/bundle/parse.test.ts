import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import fc from 'fast-check';
import { isMandateError } from '../../errors.ts';
import { x509 } from '../x509/crypto.ts';
import { MAX_BUNDLE_BYTES, parseJwtBundle, parseSpiffeBundle } from './parse.ts';

const VECTORS = resolve(process.cwd(), '../shared/vectors/spiffe');
const read = (dir: string, name: string): string => readFileSync(resolve(VECTORS, dir, name), 'utf8');
const TD = 'example.org';

/** The P-384 CA certificate every spiffebundle vector carries, and its JWK parameters. */
const vectorEntry = (JSON.parse(read('spiffebundle', 'spiffebundle_valid_1.json')) as { keys: Record<string, unknown>[] }).keys[0]!;
const vectorCertB64 = (vectorEntry.x5c as string[])[0]!;

function ecJwk(crv: 'P-256' | 'P-384' | 'P-521' = 'P-256'): Record<string, unknown> {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: crv });
  return publicKey.export({ format: 'jwk' }) as Record<string, unknown>;
}

function rsaJwk(bits: number): Record<string, unknown> {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return publicKey.export({ format: 'jwk' }) as Record<string, unknown>;
}

function rejects(fn: () => unknown, pattern: RegExp, code = 'ERR_BUNDLE_INVALID'): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isMandateError(err), `expected MandateError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    return true;
  });
}

// --- spec vectors (../shared/vectors/README.md) ---

test('vector spiffebundle_valid_1.json: 1 JWT key (and the CA certificate)', () => {
  const b = parseSpiffeBundle(read('spiffebundle', 'spiffebundle_valid_1.json'), TD);
  assert.equal(b.trustDomain, TD);
  assert.equal(b.jwtAuthorities.size, 1);
  assert.equal(b.x509Authorities.length, 1);
  assert.ok(b.jwtAuthorities.has('C6vs25welZOx6WksNYfbMfiw9l96pMnD'));
  assert.equal(b.sequence, undefined);
  assert.equal(b.refreshHint, undefined);
  assert.equal(b.x509Authorities[0]!.ca, true);
});

test('vector spiffebundle_valid_2.json: 6 keys, refresh hint 60 s, sequence 1', () => {
  const b = parseSpiffeBundle(read('spiffebundle', 'spiffebundle_valid_2.json'), TD);
  assert.equal(b.jwtAuthorities.size, 6);
  assert.equal(b.x509Authorities.length, 1);
  assert.equal(b.refreshHint, 60);
  assert.equal(b.sequence, 1);
  for (const [kid, jwk] of b.jwtAuthorities) {
    assert.equal(jwk.kid, kid);
    assert.equal(jwk.use, 'jwt-svid');
    assert.ok(Object.isFrozen(jwk));
  }
});

test('vector spiffebundle_valid_with_wit.json: 2 keys, WIT keys ignored, refresh hint 60 s, sequence 1', () => {
  const b = parseSpiffeBundle(read('spiffebundle', 'spiffebundle_valid_with_wit.json'), TD);
  assert.equal(b.jwtAuthorities.size, 2);
  assert.equal(b.x509Authorities.length, 1);
  assert.equal(b.refreshHint, 60);
  assert.equal(b.sequence, 1);
  assert.ok(!b.jwtAuthorities.has('uNhqAaPI7NDn7IHOsa2ac1BF4O5qGxjZ'), 'a wit-svid key must not become a JWT authority');
});

test('vector spiffebundle_missing_kid.json: rejected, a jwt-svid key without kid', () => {
  rejects(() => parseSpiffeBundle(read('spiffebundle', 'spiffebundle_missing_kid.json'), TD), /^keys\[1\]: jwt-svid key has no kid/);
});

test('vector spiffebundle_no_keys.json: rejected, no authorities', () => {
  rejects(() => parseSpiffeBundle(read('spiffebundle', 'spiffebundle_no_keys.json'), TD), /no authorities/);
});

test('vector spiffebundle_multiple_x509.json: rejected, an x509-svid entry with 2 certificates', () => {
  rejects(() => parseSpiffeBundle(read('spiffebundle', 'spiffebundle_multiple_x509.json'), TD), /^keys\[0\]: x5c must hold exactly one certificate, has 2/);
});

test('vector jwks_valid_1.json: 1 key', () => {
  const b = parseJwtBundle(read('jwtbundle', 'jwks_valid_1.json'), TD);
  assert.equal(b.jwtAuthorities.size, 1);
  assert.equal(b.x509Authorities.length, 0);
  assert.equal(b.jwtAuthorities.get('C6vs25welZOx6WksNYfbMfiw9l96pMnD')?.use, 'jwt-svid');
});

test('vector jwks_valid_2.json: 2 keys', () => {
  const b = parseJwtBundle(read('jwtbundle', 'jwks_valid_2.json'), TD);
  assert.deepEqual([...b.jwtAuthorities.keys()], ['C6vs25welZOx6WksNYfbMfiw9l96pMnD', 'gHTCunJbefYtnZnTctd84xeRWyMrEsWD']);
});

test('vector jwks_missing_kid.json: rejected, key without kid', () => {
  rejects(() => parseJwtBundle(read('jwtbundle', 'jwks_missing_kid.json'), TD), /^keys\[1\]: jwt-svid key has no kid/);
});

// --- accepted shapes ---

test('an empty keys array is a valid bundle without authorities (trust domain revoked its keys)', () => {
  const b = parseSpiffeBundle('{"keys":[],"spiffe_sequence":7}', TD);
  assert.equal(b.x509Authorities.length, 0);
  assert.equal(b.jwtAuthorities.size, 0);
  assert.equal(b.sequence, 7);
});

test('entries with unknown use or kty are ignored; only ignored entries leave a bundle without authorities', () => {
  const doc = {
    keys: [
      { kty: 'EC', crv: 'P-256', x: 'a', y: 'b', kid: 'k1' }, // no use
      { ...ecJwk(), use: 'wit-svid', kid: 'k2' },
      { ...ecJwk(), use: 'JWT-SVID', kid: 'k3' }, // use is case sensitive
      { kty: 'oct', k: 'c2VjcmV0', use: 'jwt-svid', kid: 'k4' },
      { kty: 'OKP', crv: 'Ed25519', x: 'AAAA', use: 'jwt-svid', kid: 'k5' },
      { kty: 'FOO', use: 'x509-svid', x5c: ['AAAA'] },
      { use: 'jwt-svid', kid: 'k6' }, // no kty
    ],
  };
  const b = parseSpiffeBundle(doc, TD);
  assert.equal(b.jwtAuthorities.size, 0);
  assert.equal(b.x509Authorities.length, 0);
});

test('accepts an already parsed document and UTF-8 bytes', () => {
  const text = read('spiffebundle', 'spiffebundle_valid_2.json');
  assert.equal(parseSpiffeBundle(JSON.parse(text), TD).jwtAuthorities.size, 6);
  assert.equal(parseSpiffeBundle(Buffer.from(text), TD).jwtAuthorities.size, 6);
});

test('trust domain comes from the caller, bare or spiffe:// form, and is validated', () => {
  assert.equal(parseSpiffeBundle('{"keys":[]}', 'spiffe://partner.example').trustDomain, 'partner.example');
  rejects(() => parseSpiffeBundle('{"keys":[]}', 'Example.org'), /lowercase/, 'ERR_TRUST_DOMAIN_INVALID');
});

test('jwt-svid keys are normalised to public parameters, with alg kept when it fits', () => {
  const ec = ecJwk('P-384');
  const rsa = rsaJwk(2048);
  const b = parseSpiffeBundle({ keys: [{ ...ec, use: 'jwt-svid', kid: 'e', alg: 'ES384', x5c: ['ignored'], extra: 1 }, { ...rsa, use: 'jwt-svid', kid: 'r' }] }, TD);
  assert.deepEqual({ ...b.jwtAuthorities.get('e') }, { kty: 'EC', crv: 'P-384', x: ec.x, y: ec.y, alg: 'ES384', kid: 'e', use: 'jwt-svid' });
  assert.deepEqual({ ...b.jwtAuthorities.get('r') }, { kty: 'RSA', n: rsa.n, e: rsa.e, kid: 'r', use: 'jwt-svid' });
});

test('x509-svid entries from RSA and EC CA certificates, duplicates collapsed', async () => {
  const rsa = await selfSignedDer('RSASSA-PKCS1-v1_5');
  const ec = await selfSignedDer('ECDSA');
  const doc = { keys: [{ use: 'x509-svid', kty: 'RSA', x5c: [rsa] }, { use: 'x509-svid', kty: 'EC', x5c: [ec] }, { use: 'x509-svid', kty: 'RSA', x5c: [rsa] }] };
  const b = parseSpiffeBundle(doc, TD);
  assert.equal(b.x509Authorities.length, 2);
  assert.equal(b.x509Authorities[0]!.raw.toString('base64'), rsa);
});

async function selfSignedDer(name: 'ECDSA' | 'RSASSA-PKCS1-v1_5'): Promise<string> {
  const alg = name === 'ECDSA'
    ? { name, namedCurve: 'P-256', hash: 'SHA-256' }
    : { name, hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const keys = (await crypto.subtle.generateKey(alg, false, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: 'CN=test CA', notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), signingAlgorithm: alg, keys,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  return Buffer.from(cert.rawData).toString('base64');
}

// --- hostile input ---

const garbageDer = randomBytes(300).toString('base64');
const certWithTrailer = Buffer.concat([Buffer.from(vectorCertB64, 'base64'), Buffer.from([0])]).toString('base64');
const x509Entry = (over: Record<string, unknown>): Record<string, unknown> => ({ ...vectorEntry, ...over });
const jwtEntry = (over: Record<string, unknown>): Record<string, unknown> => ({ ...ecJwk(), use: 'jwt-svid', kid: 'k', ...over });
const nested = `{"keys":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;

const hostile: Array<[string, unknown, RegExp]> = [
  ['not JSON', 'hello', /not valid JSON/],
  ['truncated JSON', '{"keys":[', /not valid JSON/],
  ['empty string', '', /not valid JSON/],
  ['array', '[]', /must be a JSON object, got an array/],
  ['null', 'null', /got null/],
  ['number', '42', /got number/],
  ['string', '"keys"', /got string/],
  ['non-JSON value', 42, /got number/],
  ['undefined', undefined, /got undefined/],
  ['keys is an object', '{"keys":{}}', /"keys" is not an array/],
  ['keys is a string', '{"keys":"a"}', /"keys" is not an array/],
  ['keys is null', '{"keys":null}', /"keys" is not an array/],
  ['huge text', `{"keys":[]}${' '.repeat(MAX_BUNDLE_BYTES)}`, /larger than 1048576 bytes/],
  ['huge in UTF-8 bytes only', `{"keys":[],"x":"${'é'.repeat(MAX_BUNDLE_BYTES / 2 + 1)}"}`, /larger than 1048576 bytes/],
  ['huge bytes', Buffer.alloc(MAX_BUNDLE_BYTES + 1, 0x20), /larger than 1048576 bytes/],
  ['bytes not UTF-8', Buffer.from([0x7b, 0xff, 0x7d]), /not UTF-8/],
  ['deeply nested', nested, /keys\[0\]: entry is not a JSON object/],
  ['entry null', '{"keys":[null]}', /keys\[0\]: entry is not a JSON object/],
  ['entry number', '{"keys":[1]}', /keys\[0\]: entry is not a JSON object/],
  ['entry array', '{"keys":[[]]}', /keys\[0\]: entry is not a JSON object/],
  ['x5c missing', { keys: [x509Entry({ x5c: undefined })] }, /keys\[0\]: x509-svid entry has no x5c array/],
  ['x5c not an array', { keys: [x509Entry({ x5c: vectorCertB64 })] }, /no x5c array/],
  ['x5c empty', { keys: [x509Entry({ x5c: [] })] }, /exactly one certificate, has 0/],
  ['x5c element not a string', { keys: [x509Entry({ x5c: [123] })] }, /x5c\[0\] is not a string/],
  ['x5c not base64', { keys: [x509Entry({ x5c: ['!!!not base64!!!'] })] }, /x5c\[0\] is not base64/],
  ['x5c base64url', { keys: [x509Entry({ x5c: [vectorCertB64.replaceAll('+', '-').replaceAll('/', '_')] })] }, /x5c\[0\] is not base64/],
  ['x5c with line breaks', { keys: [x509Entry({ x5c: [`${vectorCertB64.slice(0, 64)}\n${vectorCertB64.slice(64)}`] })] }, /x5c\[0\] is not base64/],
  ['x5c empty string', { keys: [x509Entry({ x5c: [''] })] }, /x5c\[0\] is not base64/],
  ['x5c garbage DER', { keys: [x509Entry({ x5c: [garbageDer] })] }, /x5c\[0\] is not a DER certificate/],
  ['x5c certificate with trailing bytes', { keys: [x509Entry({ x5c: [certWithTrailer] })] }, /bytes beyond its certificate/],
  ['x509-svid with kid', { keys: [x509Entry({ kid: 'k' })] }, /must not have a kid/],
  ['x509-svid with private member', { keys: [x509Entry({ d: 'AAAA' })] }, /private key member "d"/],
  ['x509-svid kty not the certificate key type', { keys: [x509Entry({ kty: 'RSA', crv: undefined, x: undefined, y: undefined })] }, /kty RSA does not match the certificate's ec key/],
  ['x509-svid JWK x not the certificate key', { keys: [x509Entry({ x: `A${(vectorEntry.x as string).slice(1)}` })] }, /member "x" does not match/],
  ['negative sequence', '{"keys":[],"spiffe_sequence":-1}', /"spiffe_sequence" must be a non-negative integer/],
  ['fractional sequence', '{"keys":[],"spiffe_sequence":1.5}', /"spiffe_sequence" must be a non-negative integer/],
  ['string sequence', '{"keys":[],"spiffe_sequence":"1"}', /"spiffe_sequence" must be a non-negative integer/],
  ['null sequence', '{"keys":[],"spiffe_sequence":null}', /"spiffe_sequence" must be a non-negative integer/],
  ['sequence beyond 2^53', '{"keys":[],"spiffe_sequence":18446744073709551615}', /below 2\^53/],
  ['negative refresh hint', '{"keys":[],"spiffe_refresh_hint":-60}', /"spiffe_refresh_hint" must be a non-negative integer/],
  ['refresh hint as float', '{"keys":[],"spiffe_refresh_hint":1e400}', /"spiffe_refresh_hint"/],
  ['jwt-svid duplicate kid', { keys: [jwtEntry({ kid: 'same' }), jwtEntry({ kid: 'same' })] }, /^keys\[1\]: duplicate kid "same"/],
  ['jwt-svid empty kid', { keys: [jwtEntry({ kid: '' })] }, /kid is not a non-empty string/],
  ['jwt-svid numeric kid', { keys: [jwtEntry({ kid: 7 })] }, /kid is not a non-empty string/],
  ['jwt-svid private EC key', { keys: [jwtEntry({ d: 'AAAA' })] }, /private key member "d"/],
  ['jwt-svid EC point off the curve', { keys: [jwtEntry({ y: (ecJwk().y as string) })] }, /do not form a valid public key/],
  ['jwt-svid short EC coordinate', { keys: [jwtEntry({ x: 'AAAA' })] }, /member "x" is 3 bytes, expected 32/],
  ['jwt-svid x not base64url', { keys: [jwtEntry({ x: '+/+/' })] }, /member "x" is not base64url/],
  ['jwt-svid x missing', { keys: [jwtEntry({ x: undefined })] }, /member "x" is missing/],
  ['jwt-svid unknown curve', { keys: [jwtEntry({ crv: 'secp256k1' })] }, /curve "secp256k1" is not P-256/],
  ['jwt-svid RSA key of 1024 bits', { keys: [{ ...rsaJwk(1024), use: 'jwt-svid', kid: 'r' }] }, /RSA key has 1024 bits/],
  ['jwt-svid RSA n missing', { keys: [{ kty: 'RSA', e: 'AQAB', use: 'jwt-svid', kid: 'r' }] }, /member "n" is missing/],
  ['jwt-svid alg HS256', { keys: [jwtEntry({ alg: 'HS256' })] }, /alg "HS256" is not a JWT-SVID algorithm/],
  ['jwt-svid alg RS256 on an EC key', { keys: [jwtEntry({ alg: 'RS256' })] }, /alg RS256 does not fit a EC P-256 key/],
  ['jwt-svid alg ES384 on a P-256 key', { keys: [jwtEntry({ alg: 'ES384' })] }, /alg ES384 does not fit/],
];

for (const [name, input, pattern] of hostile) {
  test(`rejects hostile input: ${name}`, () => {
    rejects(() => parseSpiffeBundle(input, TD), pattern);
  });
}

test('parseJwtBundle: hostile input and ignored entries', () => {
  rejects(() => parseJwtBundle('[]', TD), /got an array/);
  rejects(() => parseJwtBundle('{}', TD), /no authorities/);
  rejects(() => parseJwtBundle({ keys: [jwtEntry({ kid: 'a', use: undefined }), jwtEntry({ kid: 'a', use: 'sig' })] }, TD), /keys\[1\]: duplicate kid/);
  const b = parseJwtBundle({ keys: [jwtEntry({ kid: 'enc', use: 'enc' }), jwtEntry({ kid: 'x509', use: 'x509-svid' }), jwtEntry({ kid: 'ok', use: undefined })] }, TD);
  assert.deepEqual([...b.jwtAuthorities.keys()], ['ok']);
});

test('property: any JSON value or text either parses or throws ERR_BUNDLE_INVALID', () => {
  const key = fc.constantFrom<Record<string, unknown>>(vectorEntry, jwtEntry({ kid: 'a' }), jwtEntry({ kid: 'a', use: 'sig' }));
  const entry = fc.oneof(fc.jsonValue(), key, fc.tuple(key, fc.dictionary(fc.constantFrom('kty', 'use', 'kid', 'x5c', 'x', 'y', 'crv', 'alg', 'd'), fc.jsonValue())).map(([k, over]) => ({ ...k, ...over })));
  const doc = fc.oneof(fc.jsonValue(), fc.record({ keys: fc.array(entry, { maxLength: 4 }), spiffe_sequence: fc.jsonValue(), spiffe_refresh_hint: fc.jsonValue() }, { requiredKeys: ['keys'] }));
  const input = fc.oneof(doc, doc.map((d) => JSON.stringify(d) ?? ''), fc.string(), fc.uint8Array({ maxLength: 64 }));
  fc.assert(fc.property(input, (value) => {
    for (const parse of [parseSpiffeBundle, parseJwtBundle]) {
      try {
        const b = parse(value, TD);
        assert.equal(b.trustDomain, TD);
      } catch (err) {
        assert.ok(isMandateError(err, 'ERR_BUNDLE_INVALID'), `unexpected ${String(err)}`);
      }
    }
  }), { numRuns: 500 });
});

test('the vector certificate is a CA certificate usable as an X509Certificate', () => {
  const cert = new X509Certificate(Buffer.from(vectorCertB64, 'base64'));
  assert.equal(cert.ca, true);
});
