import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { inspect } from 'node:util';
import { MandateError } from '../errors.ts';
import {
  MAX_NOTE_BYTES,
  NOTE_RULES,
  formatVerifierKey,
  generateNoteKey,
  noteKeyId,
  openNote,
  parseSignerKey,
  parseVerifierKey,
  signNote,
  type NoteRule,
  type NoteVerifier,
} from './note.ts';

// Known-answer vectors from golang.org/x/mod/sumdb/note (package doc and note_test.go: TestSign, TestOpen).
const PETER_SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const ENOCH_VKEY = 'EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop';
const TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG = '— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';
const ENOCH_SIG = '— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n';
const PETER_NOTE = `${TEXT}\n${PETER_SIG}`;

const peter = parseVerifierKey(PETER_VKEY);
const enoch = parseVerifierKey(ENOCH_VKEY);

/** Asserts `fn` throws a MandateError with `code` whose message carries the sentence of `rule`. */
function assertRefused(fn: () => unknown, code: string, sentence: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MandateError, `expected MandateError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.ok(err.message.includes(sentence), `message "${err.message}" does not say "${sentence}"`);
    return true;
  });
}

/** A verifier key string for arbitrary key data (type byte included) whose key ID is computed correctly. */
function keyWithAdjustedId(name: string, data: Buffer): string {
  data[0] = 0x01;
  const id = createHash('sha256').update(`${name}\n`).update(data).digest().subarray(0, 4).toString('hex');
  return `${name}+${id}+${data.toString('base64')}`;
}

function assertNoteRefused(fn: () => unknown, rule: NoteRule): void {
  assertRefused(fn, 'ERR_BAD_REQUEST', NOTE_RULES[rule]);
}

describe('note known-answer vectors (golang.org/x/mod/sumdb/note)', () => {
  it('parses the PeterNeumann verifier key and opens the example note', () => {
    assert.equal(peter.name, 'PeterNeumann');
    assert.equal(peter.keyId, 'c74f20a3');
    const opened = openNote(PETER_NOTE, [peter]);
    assert.equal(opened.text, TEXT);
    assert.deepEqual(opened.signatures, [{ name: 'PeterNeumann', keyId: 'c74f20a3', verified: true }]);
  });

  it('signs the example text to exactly the documented note (Ed25519 is deterministic)', () => {
    const signer = parseSignerKey(PETER_SKEY);
    assert.equal(signer.keyId, 'c74f20a3');
    assert.equal(signNote(TEXT, signer), PETER_NOTE);
    assert.equal(formatVerifierKey(signer.verifier), PETER_VKEY);
  });

  it('opens the doubly-signed example, leaving the unknown EnochRoot signature unverified', () => {
    const note = `${TEXT}\n${PETER_SIG}${ENOCH_SIG}`;
    assert.deepEqual(openNote(note, [peter]).signatures, [
      { name: 'PeterNeumann', keyId: 'c74f20a3', verified: true },
      { name: 'EnochRoot', keyId: 'af0cfe78', verified: false },
    ]);
    assert.deepEqual(
      openNote(note, [peter, enoch]).signatures.map((s) => s.verified),
      [true, true],
    );
    assert.deepEqual(openNote(Buffer.from(note, 'utf8'), [enoch]).signatures.map((s) => s.verified), [false, true]);
  });

  it('agrees with an independent reading of the format: key ID hash and raw Ed25519 verification', () => {
    const data = Buffer.from(PETER_VKEY.split('+')[2]!, 'base64');
    const expectedId = createHash('sha256').update(Buffer.concat([Buffer.from('PeterNeumann\n'), data])).digest();
    assert.equal(noteKeyId('PeterNeumann', data.subarray(1)), expectedId.subarray(0, 4).toString('hex'));
    const sig = Buffer.from(PETER_SIG.slice('— PeterNeumann '.length, -1), 'base64');
    assert.equal(sig.subarray(0, 4).toString('hex'), 'c74f20a3');
    const jwk = { kty: 'OKP', crv: 'Ed25519', x: data.subarray(1).toString('base64url') };
    assert.ok(verify(null, Buffer.from(TEXT), createPublicKey({ key: jwk, format: 'jwk' }), sig.subarray(4)));
  });
});

describe('note keys', () => {
  it('generates key pairs whose strings parse back to matching signer and verifier', () => {
    const { signerKey, verifierKey } = generateNoteKey('audit.example/log');
    assert.ok(signerKey.startsWith('PRIVATE+KEY+audit.example/log+'));
    const signer = parseSignerKey(signerKey);
    const verifier = parseVerifierKey(verifierKey);
    assert.equal(signer.keyId, verifier.keyId);
    assert.equal(formatVerifierKey(signer.verifier), verifierKey);
    assert.match(verifierKey, /^audit\.example\/log\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}$/);
    const note = signNote('hello\n', signer);
    assert.deepEqual(openNote(note, [verifier]).signatures, [{ name: 'audit.example/log', keyId: verifier.keyId, verified: true }]);
  });

  it('does not reveal the private key when a signer is serialised or inspected', () => {
    const { signerKey } = generateNoteKey('k');
    const seed = signerKey.split('+').slice(4).join('+');
    const signer = parseSignerKey(signerKey);
    assert.ok(!JSON.stringify(signer).includes(seed));
    const raw = Buffer.from(seed, 'base64').subarray(1);
    for (const shown of [JSON.stringify(signer), inspect(signer, { depth: 5 })]) {
      for (const encoding of ['base64', 'base64url', 'hex'] as const) assert.ok(!shown.includes(raw.toString(encoding)));
    }
  });

  it('refuses every truncation and every single-byte change of a verifier or signer key', () => {
    for (const key of [PETER_VKEY, PETER_SKEY]) {
      const parse = key === PETER_VKEY ? parseVerifierKey : parseSignerKey;
      for (let i = 0; i <= key.length; i++) {
        for (let j = i + 1; j <= key.length; j++) {
          if (i === 0 && j === key.length) continue;
          assert.throws(() => parse(key.slice(i, j)), (e: unknown) => e instanceof MandateError && e.code === 'ERR_KEY_INVALID', key.slice(i, j));
        }
      }
      for (let i = 0; i < key.length; i++) {
        const changed = key.slice(0, i) + String.fromCharCode(key.charCodeAt(i) + 1) + key.slice(i + 1);
        assert.throws(() => parse(changed), (e: unknown) => e instanceof MandateError && e.code === 'ERR_KEY_INVALID', changed);
      }
    }
  });

  const BAD_KEYS: Array<[what: string, parse: (text: string) => unknown, text: string, says: string]> = [
    // From note_test.go; its last group has non-zero unused bits, which sumdb/note tolerates and we refuse.
    ['wrong key length, adjusted ID (Go vector)', parseVerifierKey, 'PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==', 'padded standard base64'],
    ['31-byte key, adjusted ID', parseVerifierKey, keyWithAdjustedId('PeterNeumann', Buffer.alloc(32, 7)), 'must be 32 bytes, got 31'],
    ['33-byte key, adjusted ID', parseVerifierKey, keyWithAdjustedId('PeterNeumann', Buffer.alloc(34, 7)), 'must be 32 bytes, got 33'],
    ['unknown signature type, adjusted ID', parseVerifierKey, 'PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW', 'unknown signature type 101'],
    ['key ID of another key', parseVerifierKey, 'PeterNeumann+af0cfe78+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW', 'key ID does not match'],
    ['name of another key', parseVerifierKey, 'EnochRoot+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW', 'key ID does not match'],
    ['short key ID', parseVerifierKey, 'PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW', 'key ID must be 8 hex digits'],
    ['URL-safe base64', parseVerifierKey, 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq_LDE4izWy10TW', 'padded standard base64'],
    ['space in name', parseVerifierKey, 'Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW', NOTE_RULES.key_name],
    ['empty name', parseVerifierKey, '+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW', NOTE_RULES.key_name],
    ['only two parts', parseVerifierKey, 'PeterNeumann+c74f20a3', 'expected <name>+<hex key ID>+<base64 key>'],
    ['verifier key given as signer key', parseSignerKey, PETER_VKEY, 'must start with PRIVATE+KEY+'],
    ['signer key given as verifier key', parseVerifierKey, PETER_SKEY, 'key ID must be 8 hex digits'],
    ['signer key with the wrong ID', parseSignerKey, 'PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz', 'key ID does not match'],
  ];
  for (const [what, parse, text, says] of BAD_KEYS) {
    it(`refuses a key string: ${what}`, () => assertRefused(() => parse(text), 'ERR_KEY_INVALID', says));
  }

  for (const name of ['', 'a b', 'a+b', 'a\u00a0b', 'a\u2028b', 'a\tb', 'a\nb']) {
    it(`refuses to generate a key named ${JSON.stringify(name)}`, () => {
      assertRefused(() => generateNoteKey(name), 'ERR_KEY_INVALID', NOTE_RULES.key_name);
    });
  }

  it('refuses a verifier list holding two different keys under one name and key ID', () => {
    const other = generateKeyPairSync('ed25519').publicKey;
    const raw = other.export({ format: 'jwk' }).x!;
    const impostor: NoteVerifier = { name: peter.name, keyId: peter.keyId, publicKey: Buffer.from(raw, 'base64url'), key: other };
    assertRefused(() => openNote(PETER_NOTE, [peter, impostor]), 'ERR_KEY_INVALID', 'ambiguous');
    assert.equal(openNote(PETER_NOTE, [peter, peter]).text, TEXT);
  });
});

describe('signing and opening notes', () => {
  const a = parseSignerKey(generateNoteKey('a.example').signerKey);
  const b = parseSignerKey(generateNoteKey('b.example').signerKey);

  const TEXTS = ['x\n', 'line one\nline two\n', 'blank lines\n\ninside\n', 'ends with a blank line\n\n', '\n', '\uFEFFbom and ünïcödé — 𝄞\n', '— looks like a signature\n'];
  for (const text of TEXTS) {
    it(`round-trips the text ${JSON.stringify(text)}`, () => {
      const note = signNote(text, [a, b]);
      const opened = openNote(note, [a.verifier, b.verifier]);
      assert.equal(opened.text, text);
      assert.deepEqual(opened.signatures.map((s) => [s.name, s.verified]), [['a.example', true], ['b.example', true]]);
      assert.equal(openNote(Buffer.from(note, 'utf8'), [b.verifier]).text, text);
    });
  }

  it('verifies every signature by a known key, even a repeated one', () => {
    const note = signNote(TEXT, a);
    const sigLine = note.slice(TEXT.length + 1);
    const bytes = Buffer.from(sigLine.slice(`— ${a.name} `.length, -1), 'base64');
    bytes[40] = bytes[40]! ^ 0x80;
    const corrupt = `— ${a.name} ${bytes.toString('base64')}\n`;
    assertNoteRefused(() => openNote(`${TEXT}\n${sigLine}${corrupt}`, [a.verifier]), 'bad_signature');
    assert.equal(openNote(`${TEXT}\n${sigLine}${sigLine}`, [a.verifier]).signatures.length, 2);
  });

  it('accepts a note with exactly 100 signature lines', () => {
    assert.equal(openNote(`${TEXT}\n${PETER_SIG.repeat(100)}`, [peter]).signatures.length, 100);
  });

  const SIGN_REFUSALS: Array<[what: string, text: string, rule: NoteRule]> = [
    ['empty text', '', 'text_no_newline'],
    ['text without final newline', 'abc', 'text_no_newline'],
    ['carriage return', 'a\r\n', 'control_char'],
    ['NUL', 'a\u0000\n', 'control_char'],
    ['lone surrogate', 'a\ud800\n', 'not_utf8'],
    ['over 1 MiB', `${'x'.repeat(MAX_NOTE_BYTES)}\n`, 'too_large'],
    ['over 1 MiB only once signed', `${'x'.repeat(MAX_NOTE_BYTES - 10)}\n`, 'too_large'],
  ];
  for (const [what, text, rule] of SIGN_REFUSALS) {
    it(`refuses to sign: ${what}`, () => assertNoteRefused(() => signNote(text, a), rule));
  }
  it('refuses to sign with no signers', () => assertNoteRefused(() => signNote(TEXT, []), 'no_signatures'));
});

describe('hostile notes', () => {
  const sigB64 = PETER_SIG.slice('— PeterNeumann '.length, -1);
  const sigBytes = Buffer.from(sigB64, 'base64');
  const flipped = Buffer.from(sigBytes);
  flipped[10] = flipped[10]! ^ 1;
  const wrongId = Buffer.from(sigBytes);
  wrongId[0] = wrongId[0]! ^ 1;

  const HOSTILE: Array<[what: string, note: string | Uint8Array, rule: NoteRule, verifiers?: NoteVerifier[]]> = [
    ['text only', TEXT, 'no_separator'],
    ['signature without blank line', TEXT + PETER_SIG, 'no_separator'],
    ['blank line but no signatures', `${TEXT}\n`, 'no_signatures'],
    ['last signature line without newline', `${TEXT}\n${PETER_SIG.slice(0, -1)}`, 'signature_no_newline'],
    ['control character U+0001', `\u0001${PETER_NOTE}`, 'control_char'],
    ['CRLF line ends', PETER_NOTE.replaceAll('\n', '\r\n'), 'control_char'],
    ['tab in a signature line', `${TEXT}\n— PeterNeumann\t${sigB64}\n`, 'control_char'],
    ['invalid UTF-8 byte 0xff', Buffer.concat([Buffer.from([0xff]), Buffer.from(PETER_NOTE)]), 'not_utf8'],
    ['truncated UTF-8 sequence', Buffer.concat([Buffer.from(TEXT), Buffer.from([0x0a, 0xe2, 0x80, 0x20]), Buffer.from(PETER_SIG.slice(2))]), 'not_utf8'],
    ['overlong UTF-8 encoding of "/"', Buffer.concat([Buffer.from([0xc0, 0xaf, 0x0a, 0x0a]), Buffer.from(PETER_SIG)]), 'not_utf8'],
    ['lone surrogate in a string', `\udc00${PETER_NOTE}`, 'not_utf8'],
    ['over 1 MiB (string)', `${'x'.repeat(MAX_NOTE_BYTES)}\n\n${PETER_SIG}`, 'too_large'],
    ['over 1 MiB (bytes)', Buffer.from(`${'x'.repeat(MAX_NOTE_BYTES)}\n\n${PETER_SIG}`), 'too_large'],
    ['over 1 MiB counting UTF-8 bytes', `${'é'.repeat(MAX_NOTE_BYTES / 2)}\n\n${PETER_SIG}`, 'too_large'],
    ['101 signature lines', `${TEXT}\n${PETER_SIG.repeat(101)}`, 'too_many_signatures'],
    ['101 unknown signature lines', `${TEXT}\n${PETER_SIG.repeat(101)}`, 'too_many_signatures', []],
    ['ASCII hyphen instead of em dash', `${TEXT}\n- PeterNeumann ${sigB64}\n`, 'signature_line'],
    ['en dash instead of em dash', `${TEXT}\n\u2013 PeterNeumann ${sigB64}\n`, 'signature_line'],
    ['no space after em dash', `${TEXT}\n—PeterNeumann ${sigB64}\n`, 'signature_line'],
    ['no signature after the name', `${TEXT}\n— PeterNeumann\n`, 'signature_line'],
    ['trailing line that is not a signature', `${PETER_NOTE}Unexpected line.\n`, 'signature_line'],
    ['blank line after a signature, which makes it part of the text', `${TEXT}\n${PETER_SIG}\n${ENOCH_SIG}`, 'unknown_key'],
    ['same, with both keys known', `${TEXT}\n${PETER_SIG}\n${ENOCH_SIG}`, 'bad_signature', [peter, enoch]],
    ['empty key name', `${TEXT}\n—  ${sigB64}\n`, 'key_name'],
    ['"+" in key name', `${TEXT}\n— Peter+Neumann ${sigB64}\n`, 'key_name'],
    ['no-break space in key name', `${TEXT}\n— Peter\u00a0Neumann ${sigB64}\n`, 'key_name'],
    ['space in key name', `${TEXT}\n— Bad Name ${sigB64}\n`, 'signature_base64'],
    ['empty signature', `${TEXT}\n— PeterNeumann \n`, 'signature_base64'],
    ['unpadded signature', `${TEXT}\n— PeterNeumann ${sigB64.replace(/=+$/, '')}\n`, 'signature_base64'],
    ['URL-safe signature', `${TEXT}\n— PeterNeumann ${sigBytes.toString('base64url')}=\n`, 'signature_base64'],
    ['non-canonical trailing bits', `${TEXT}\n— PeterNeumann ${sigB64.slice(0, -2)}N=\n`, 'signature_base64'],
    ['signature of 4 bytes (key ID only)', `${TEXT}\n— PeterNeumann x08gow==\n`, 'signature_base64'],
    ['no verifiers at all', PETER_NOTE, 'unknown_key', []],
    ['only another key known', PETER_NOTE, 'unknown_key', [enoch]],
    ['known name, other key ID', `${TEXT}\n— PeterNeumann ${wrongId.toString('base64')}\n`, 'unknown_key'],
    ['known key ID, other name', PETER_NOTE.replace('— PeterNeumann', '— CarmenSandiego'), 'unknown_key'],
    ['one flipped signature bit', `${TEXT}\n— PeterNeumann ${flipped.toString('base64')}\n`, 'bad_signature'],
    ['signature 3 bytes too long', `${TEXT}\n${PETER_SIG.slice(0, 60)}ABCD${PETER_SIG.slice(60)}`, 'bad_signature'],
    ['signature truncated to 32 bytes', `${TEXT}\n— PeterNeumann ${sigBytes.subarray(0, 36).toString('base64')}\n`, 'bad_signature'],
    ['changed text', PETER_NOTE.replace('cryptography', 'cryptographx'), 'bad_signature'],
    ['extra blank line at the end of the text', `${TEXT}\n\n${PETER_SIG}`, 'bad_signature'],
    ['good and bad signature by the same key', `${TEXT}\n${PETER_SIG}— PeterNeumann ${flipped.toString('base64')}\n`, 'bad_signature'],
  ];
  for (const [what, note, rule, verifiers] of HOSTILE) {
    it(`refuses: ${what}`, () => assertNoteRefused(() => openNote(note, verifiers ?? [peter]), rule));
  }
});
