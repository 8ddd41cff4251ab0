import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scryptSync } from 'node:crypto';
import fc from 'fast-check';
import { isMandateError } from '../../errors.ts';
import { checkPasswordStrength, hashPassword, MAX_PASSWORD_LENGTH, verifyPassword } from './password.ts';

const b64 = (bytes: Buffer): string => bytes.toString('base64').replace(/=+$/, '');

/** A hash made here with chosen parameters, independently of hashPassword. */
function handMade(password: string, logN: number, r: number, p: number, salt: Buffer, keyLength: number): string {
  const key = scryptSync(password.normalize('NFKC'), salt, keyLength, { N: 2 ** logN, r, p, maxmem: 256 * 1024 * 1024 });
  return `$scrypt$ln=${logN},r=${r},p=${p}$${b64(salt)}$${b64(key)}`;
}

test('hash and verify round trip, in the documented format', async () => {
  const hash = await hashPassword('correct horse battery staple');
  assert.match(hash, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
  assert.equal(await verifyPassword(hash, 'correct horse battery staple'), true);
  assert.equal(await verifyPassword(hash, 'correct horse battery stapl'), false);
  assert.equal(await verifyPassword(hash, 'Correct horse battery staple'), false);
  assert.equal(await verifyPassword(hash, ''), false);
  const again = await hashPassword('correct horse battery staple');
  assert.notEqual(again, hash, 'a fresh salt every time');
  // The key is what scrypt gives for the stated parameters and salt.
  const salt = Buffer.from(hash.split('$')[3]!, 'base64');
  assert.equal(handMade('correct horse battery staple', 15, 8, 1, salt, 32), hash);
});

test('passwords are compared after NFKC normalisation', async () => {
  const hash = await hashPassword('caf\u00e9 \ufb01sh tacos');
  assert.equal(await verifyPassword(hash, 'cafe\u0301 fish tacos'), true);
});

test('the parameters, salt and key length come from the hash string', async () => {
  const salt = Buffer.from('0123456789abcdef0123');
  const hash = handMade('pw-under-test-1', 10, 4, 2, salt, 64);
  assert.equal(await verifyPassword(hash, 'pw-under-test-1'), true);
  assert.equal(await verifyPassword(hash, 'pw-under-test-2'), false);
  // Same salt and key, other stated parameters: the derived key differs.
  for (const altered of [hash.replace('ln=10', 'ln=11'), hash.replace('r=4', 'r=5'), hash.replace('p=2', 'p=1')]) {
    assert.equal(await verifyPassword(altered, 'pw-under-test-1'), false, altered);
  }
});

test('malformed and hostile hashes give false without throwing', async () => {
  const salt = b64(Buffer.alloc(16, 1));
  const key = b64(Buffer.alloc(32, 2));
  const cases: Array<[string, unknown]> = [
    ['empty', ''],
    ['garbage', 'garbage'],
    ['prefix only', '$scrypt$'],
    ['other algorithm', `$argon2id$v=19$m=65536,t=3,p=4$${salt}$${key}`],
    ['bcrypt', '$2b$12$abcdefghijklmnopqrstuuAbCdEfGhIjKlMnOpQrStUvWxYz01234'],
    ['ln=0', `$scrypt$ln=0,r=8,p=1$${salt}$${key}`],
    ['ln over the bound', `$scrypt$ln=21,r=8,p=1$${salt}$${key}`],
    ['memory over the bound', `$scrypt$ln=20,r=32,p=1$${salt}$${key}`],
    ['ln with a leading zero', `$scrypt$ln=015,r=8,p=1$${salt}$${key}`],
    ['r=0', `$scrypt$ln=15,r=0,p=1$${salt}$${key}`],
    ['p=0', `$scrypt$ln=15,r=8,p=0$${salt}$${key}`],
    ['r over the bound', `$scrypt$ln=10,r=999,p=1$${salt}$${key}`],
    ['p over the bound', `$scrypt$ln=10,r=8,p=999$${salt}$${key}`],
    ['negative', `$scrypt$ln=-1,r=8,p=1$${salt}$${key}`],
    ['parameters reordered', `$scrypt$r=8,ln=15,p=1$${salt}$${key}`],
    ['padded base64', `$scrypt$ln=15,r=8,p=1$${salt}==$${key}`],
    ['url-safe base64', `$scrypt$ln=15,r=8,p=1$${salt.replace(/[+/]/g, '-')}-_$${key}`],
    ['non-canonical base64 tail', `$scrypt$ln=15,r=8,p=1$${salt.slice(0, -1)}B$${key}`],
    ['salt too short', `$scrypt$ln=15,r=8,p=1$${b64(Buffer.alloc(4))}$${key}`],
    ['key too short', `$scrypt$ln=15,r=8,p=1$${salt}$${b64(Buffer.alloc(8))}`],
    ['key too long', `$scrypt$ln=15,r=8,p=1$${salt}$${b64(Buffer.alloc(80))}`],
    ['extra field', `$scrypt$ln=15,r=8,p=1$${salt}$${key}$extra`],
    ['trailing newline', `$scrypt$ln=15,r=8,p=1$${salt}$${key}\n`],
    ['leading space', ` $scrypt$ln=15,r=8,p=1$${salt}$${key}`],
    ['huge', `$scrypt$ln=15,r=8,p=1$${'A'.repeat(1_000_000)}$${key}`],
    ['number', 42],
    ['null', null],
    ['undefined', undefined],
    ['object', { toString: () => `$scrypt$ln=15,r=8,p=1$${salt}$${key}` }],
  ];
  for (const [name, hash] of cases) {
    assert.equal(await verifyPassword(hash as string, 'password'), false, name);
  }
});

test('a password that is not a string or too long gives false', async () => {
  const hash = await hashPassword('a'.repeat(MAX_PASSWORD_LENGTH));
  assert.equal(await verifyPassword(hash, 'a'.repeat(MAX_PASSWORD_LENGTH)), true, 'the longest allowed password verifies');
  assert.equal(await verifyPassword(hash, 'a'.repeat(MAX_PASSWORD_LENGTH + 1)), false);
  for (const password of [undefined, null, 42, ['a'], { length: 1 }]) {
    assert.equal(await verifyPassword(hash, password as unknown as string), false, String(password));
  }
});

test('property: arbitrary strings as hashes never throw and never verify', async () => {
  await fc.assert(
    fc.asyncProperty(fc.string({ maxLength: 200 }), fc.string({ maxLength: 40 }), async (hash, password) => {
      assert.equal(await verifyPassword(hash, password), false);
    }),
    { numRuns: 300 },
  );
});

test('property: well-formed hashes with random parameters and bytes never throw, and verify only their own password', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 6 }),
      fc.integer({ min: 0, max: 40 }),
      fc.integer({ min: 0, max: 20 }),
      fc.uint8Array({ minLength: 0, maxLength: 70 }),
      fc.uint8Array({ minLength: 0, maxLength: 70 }),
      async (logN, r, p, salt, key) => {
        const hash = `$scrypt$ln=${logN},r=${r},p=${p}$${b64(Buffer.from(salt))}$${b64(Buffer.from(key))}`;
        assert.equal(await verifyPassword(hash, 'some password'), false);
      },
    ),
    { numRuns: 100 },
  );
});

test('checkPasswordStrength names the broken rule', () => {
  const refused: Array<[string, RegExp]> = [
    ['', /at least 12 characters/],
    ['elevenchars', /at least 12 characters/],
    ['😀😀😀😀😀😀😀😀😀😀😀', /at least 12 characters/], // 11 code points, 22 UTF-16 units
    ['x'.repeat(MAX_PASSWORD_LENGTH + 1), /at most 1024 characters/],
    ['aaaaaaaaaaaaaaaa', /one character repeated/],
    ['correct horse\nbattery', /control characters/],
    ['correct horse\tbattery', /control characters/],
    ['correct horse\u0000battery', /control characters/],
    ['correct horse\u0085battery', /control characters/],
    ['correct horse \ud800battery', /unpaired surrogate/],
  ];
  for (const [password, pattern] of refused) {
    assert.throws(() => checkPasswordStrength(password), (err) => isMandateError(err, 'ERR_BAD_REQUEST') && pattern.test(err.message), JSON.stringify(password.slice(0, 20)));
  }
  assert.throws(() => checkPasswordStrength(42 as unknown as string), (err) => isMandateError(err, 'ERR_BAD_REQUEST') && /must be a string/.test(err.message));
  for (const password of ['twelve chars', 'correct horse battery staple', 'Ünïcödé pässwörd', '😀🎉'.repeat(6), 'ab'.repeat(6), 'xy'.repeat(MAX_PASSWORD_LENGTH / 2), '😀🎉'.repeat(MAX_PASSWORD_LENGTH / 2)]) {
    assert.doesNotThrow(() => checkPasswordStrength(password), password.slice(0, 20));
  }
});
