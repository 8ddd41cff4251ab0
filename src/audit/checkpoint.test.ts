import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MandateError } from '../errors.ts';
import {
  CHECKPOINT_RULES,
  formatCheckpoint,
  parseCheckpoint,
  signCheckpoint,
  verifyCheckpoint,
  type Checkpoint,
  type CheckpointRule,
} from './checkpoint.ts';
import { NOTE_RULES, generateNoteKey, parseSignerKey, parseVerifierKey, signNote, type NoteRule } from './note.ts';

/** Asserts `fn` throws ERR_BAD_REQUEST whose message carries `sentence`. */
function assertRefused(fn: () => unknown, sentence: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MandateError, `expected MandateError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_BAD_REQUEST');
    assert.ok(err.message.includes(sentence), `message "${err.message}" does not say "${sentence}"`);
    return true;
  });
}
const refusedBy = (rule: CheckpointRule) => CHECKPOINT_RULES[rule];

// The example body of c2sp.org/tlog-checkpoint.
const SPEC_BODY = 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';
const HASH_B64 = 'CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=';
const HASH = Uint8Array.from(Buffer.from(HASH_B64, 'base64'));

const ORIGIN = 'mandate.example/audit';
const logKey = generateNoteKey(ORIGIN);
const signer = parseSignerKey(logKey.signerKey);
const verifier = parseVerifierKey(logKey.verifierKey);

describe('checkpoint body', () => {
  it('parses the tlog-checkpoint example', () => {
    assert.deepEqual(parseCheckpoint(SPEC_BODY), { origin: 'example.com/behind-the-sofa', size: 20852163, rootHash: HASH });
    assert.equal(formatCheckpoint({ origin: 'example.com/behind-the-sofa', size: 20852163, rootHash: HASH }), SPEC_BODY);
  });

  it('writes the time as the first extension line "time <seconds>", before other extensions', () => {
    const body = formatCheckpoint({ origin: ORIGIN, size: 0, rootHash: HASH, time: 1700000000, extensions: ['x-mandate v1'] });
    assert.equal(body, `${ORIGIN}\n0\n${HASH_B64}\ntime 1700000000\nx-mandate v1\n`);
    assert.deepEqual(parseCheckpoint(body), { origin: ORIGIN, size: 0, rootHash: HASH, time: 1700000000, extensions: ['x-mandate v1'] });
  });

  it('round-trips any valid checkpoint, byte for byte', () => {
    const line = fc.string({ minLength: 1, unit: 'grapheme' }).filter((s) => !/[\u0000-\u001f]/.test(s));
    const checkpoint = fc.record(
      {
        origin: line,
        size: fc.maxSafeNat(),
        rootHash: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        time: fc.maxSafeNat(),
        extensions: fc.array(line.filter((s) => !s.startsWith('time ')), { minLength: 1, maxLength: 3 }),
      },
      { requiredKeys: ['origin', 'size', 'rootHash'] },
    );
    fc.assert(
      fc.property(checkpoint, (cp) => {
        const body = formatCheckpoint(cp);
        assert.deepEqual(parseCheckpoint(body), { ...cp }); // fast-check records have a null prototype
        assert.equal(formatCheckpoint(parseCheckpoint(body)), body);
      }),
    );
  });

  const BAD_BODIES: Array<[what: string, body: string, rule: CheckpointRule]> = [
    ['empty', '', 'no_newline'],
    ['no final newline', SPEC_BODY.slice(0, -1), 'no_newline'],
    ['two lines', 'example.com/log\n5\n', 'too_few_lines'],
    ['one newline', '\n', 'too_few_lines'],
    ['empty origin', `\n5\n${HASH_B64}\n`, 'origin_empty'],
    ['control character in origin', `a\u0007b\n5\n${HASH_B64}\n`, 'line_chars'],
    ['carriage return before newline', `o\r\n5\r\n${HASH_B64}\r\n`, 'line_chars'],
    ['leading zero in size', `o\n05\n${HASH_B64}\n`, 'size_syntax'],
    ['"00" size', `o\n00\n${HASH_B64}\n`, 'size_syntax'],
    ['negative size', `o\n-1\n${HASH_B64}\n`, 'size_syntax'],
    ['plus sign in size', `o\n+1\n${HASH_B64}\n`, 'size_syntax'],
    ['hex size', `o\n0x10\n${HASH_B64}\n`, 'size_syntax'],
    ['exponent size', `o\n1e3\n${HASH_B64}\n`, 'size_syntax'],
    ['space after size', `o\n5 \n${HASH_B64}\n`, 'size_syntax'],
    ['empty size', `o\n\n${HASH_B64}\n`, 'size_syntax'],
    ['non-ASCII digits in size', `o\n\u0665\n${HASH_B64}\n`, 'size_syntax'],
    ['size 2^53', `o\n9007199254740992\n${HASH_B64}\n`, 'size_range'],
    ['size 2^64', `o\n18446744073709551616\n${HASH_B64}\n`, 'size_range'],
    ['root hash of 31 bytes', `o\n5\n${Buffer.alloc(31).toString('base64')}\n`, 'root_hash'],
    ['root hash of 33 bytes', `o\n5\n${Buffer.alloc(33).toString('base64')}\n`, 'root_hash'],
    ['root hash unpadded', `o\n5\n${HASH_B64.slice(0, -1)}\n`, 'root_hash'],
    ['root hash URL-safe', `o\n5\n${Buffer.from(HASH).toString('base64url')}=\n`, 'root_hash'],
    ['root hash with non-zero unused bits', `o\n5\n${HASH_B64.slice(0, -2)}J=\n`, 'root_hash'],
    ['root hash in hex', `o\n5\n${Buffer.from(HASH).toString('hex')}\n`, 'root_hash'],
    ['empty root hash line', 'o\n5\n\n', 'root_hash'],
    ['empty extension line', `${SPEC_BODY}\n`, 'extension_empty'],
    ['empty line between extensions', `${SPEC_BODY}a\n\nb\n`, 'extension_empty'],
    ['tab in an extension line', `${SPEC_BODY}a\tb\n`, 'line_chars'],
    ['time with leading zero', `${SPEC_BODY}time 017\n`, 'time_syntax'],
    ['time not a number', `${SPEC_BODY}time soon\n`, 'time_syntax'],
    ['time negative', `${SPEC_BODY}time -5\n`, 'time_syntax'],
    ['time with two spaces', `${SPEC_BODY}time  5\n`, 'time_syntax'],
    ['time empty', `${SPEC_BODY}time \n`, 'time_syntax'],
    ['time 2^53', `${SPEC_BODY}time 9007199254740992\n`, 'time_syntax'],
    ['time twice', `${SPEC_BODY}time 5\ntime 6\n`, 'time_position'],
    ['time after another extension', `${SPEC_BODY}x\ntime 5\n`, 'time_position'],
  ];
  for (const [what, body, rule] of BAD_BODIES) {
    it(`refuses a body: ${what}`, () => assertRefused(() => parseCheckpoint(body), refusedBy(rule)));
  }

  const BAD_VALUES: Array<[what: string, checkpoint: Checkpoint, rule: CheckpointRule]> = [
    ['empty origin', { origin: '', size: 1, rootHash: HASH }, 'origin_empty'],
    ['newline in origin', { origin: 'a\nb', size: 1, rootHash: HASH }, 'line_chars'],
    ['negative size', { origin: 'o', size: -1, rootHash: HASH }, 'size_range'],
    ['fractional size', { origin: 'o', size: 1.5, rootHash: HASH }, 'size_range'],
    ['size 2^53', { origin: 'o', size: 2 ** 53, rootHash: HASH }, 'size_range'],
    ['NaN size', { origin: 'o', size: Number.NaN, rootHash: HASH }, 'size_range'],
    ['31-byte root hash', { origin: 'o', size: 1, rootHash: new Uint8Array(31) }, 'root_hash'],
    ['negative time', { origin: 'o', size: 1, rootHash: HASH, time: -1 }, 'time_syntax'],
    ['fractional time', { origin: 'o', size: 1, rootHash: HASH, time: 1.5 }, 'time_syntax'],
    ['empty extension', { origin: 'o', size: 1, rootHash: HASH, extensions: [''] }, 'extension_empty'],
    ['newline in extension', { origin: 'o', size: 1, rootHash: HASH, extensions: ['a\n'] }, 'line_chars'],
    ['time given as an extension line', { origin: 'o', size: 1, rootHash: HASH, extensions: ['time 5'] }, 'time_position'],
  ];
  for (const [what, checkpoint, rule] of BAD_VALUES) {
    it(`refuses to format: ${what}`, () => assertRefused(() => formatCheckpoint(checkpoint), refusedBy(rule)));
  }
});

describe('signed checkpoints', () => {
  const checkpoint: Checkpoint = { origin: ORIGIN, size: 42, rootHash: HASH, time: 1750000000 };
  const signed = signCheckpoint(checkpoint, signer);

  it('signs as a C2SP note whose key name is the origin, and verifies', () => {
    assert.ok(signed.startsWith(`${ORIGIN}\n42\n${HASH_B64}\ntime 1750000000\n\n— ${ORIGIN} `));
    const result = verifyCheckpoint(signed, [verifier], { expectedOrigin: ORIGIN });
    assert.deepEqual(result.checkpoint, checkpoint);
    assert.deepEqual(result.signatures, [{ name: ORIGIN, keyId: verifier.keyId, verified: true }]);
    assert.deepEqual(verifyCheckpoint(Buffer.from(signed, 'utf8'), [verifier]).checkpoint, checkpoint);
  });

  it('verifies with a cosignature from an unknown key appended', () => {
    const witness = parseSignerKey(generateNoteKey('witness.example').signerKey);
    const cosigned = signNote(formatCheckpoint(checkpoint), [signer, witness]);
    assert.deepEqual(verifyCheckpoint(cosigned, [verifier]).signatures.map((s) => [s.name, s.verified]), [
      [ORIGIN, true],
      ['witness.example', false],
    ]);
  });

  const other = generateNoteKey('other.example/log');
  const otherSigner = parseSignerKey(other.signerKey);
  const HOSTILE: Array<[what: string, note: () => string, sentence: string, expectedOrigin?: string]> = [
    ['signed by an unknown key', () => signCheckpoint({ ...checkpoint, origin: 'other.example/log' }, otherSigner), NOTE_RULES.unknown_key],
    ['another trusted log, wrong origin', () => signCheckpoint({ ...checkpoint, origin: 'other.example/log' }, signer), refusedBy('origin_mismatch'), ORIGIN],
    ['signed body that is not a checkpoint', () => signNote('hello\n', signer), refusedBy('too_few_lines')],
    ['signed body with a bad tree size', () => signNote(`${ORIGIN}\n007\n${HASH_B64}\n`, signer), refusedBy('size_syntax')],
    ['signed body with a short root hash', () => signNote(`${ORIGIN}\n7\nAAAA\n`, signer), refusedBy('root_hash')],
    ['signed body with an empty extension line', () => signNote(`${ORIGIN}\n7\n${HASH_B64}\n\n`, signer), refusedBy('extension_empty')],
    ['size changed after signing', () => signed.replace('\n42\n', '\n43\n'), NOTE_RULES.bad_signature],
    ['time removed after signing', () => signed.replace('time 1750000000\n', ''), NOTE_RULES.bad_signature],
    ['unsigned', () => formatCheckpoint(checkpoint), NOTE_RULES.no_separator],
  ];
  for (const [what, note, sentence, expectedOrigin] of HOSTILE) {
    it(`refuses a signed checkpoint: ${what}`, () => {
      assertRefused(() => verifyCheckpoint(note(), [verifier], expectedOrigin === undefined ? {} : { expectedOrigin }), sentence);
    });
  }

  const bytes = Buffer.from(signed, 'utf8');
  const refusal = (mutated: Buffer): string | undefined => {
    try {
      verifyCheckpoint(mutated, [verifier]);
      return undefined;
    } catch (err) {
      assert.ok(err instanceof MandateError && err.code === 'ERR_BAD_REQUEST', String(err));
      return err.message;
    }
  };

  it('fails verification after any change of one byte (property)', () => {
    fc.assert(
      fc.property(fc.nat({ max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), (index, delta) => {
        const mutated = Buffer.from(bytes);
        mutated[index] = (mutated[index]! + delta) % 256;
        assert.notEqual(refusal(mutated), undefined, `byte ${index} changed by ${delta} still verifies`);
      }),
      { numRuns: 2000 },
    );
  });

  it('fails verification after flipping any single bit, each for a named reason', () => {
    const reasons = new Set<string>();
    for (let index = 0; index < bytes.length; index++) {
      for (let bit = 0; bit < 8; bit++) {
        const mutated = Buffer.from(bytes);
        mutated[index] = mutated[index]! ^ (1 << bit);
        const message = refusal(mutated);
        assert.notEqual(message, undefined, `bit ${bit} of byte ${index} flipped still verifies`);
        const rule = [...Object.entries(NOTE_RULES), ...Object.entries(CHECKPOINT_RULES)].find(([, s]) => message!.includes(s));
        assert.ok(rule, `refusal names no rule: ${message}`);
        reasons.add(rule[0]);
      }
    }
    // The flips reach the UTF-8, framing, signature and key-lookup checks, not only the signature.
    for (const rule of ['not_utf8', 'control_char', 'bad_signature', 'unknown_key', 'signature_base64'] satisfies NoteRule[]) {
      assert.ok(reasons.has(rule), `no flip was refused by ${rule}; got ${[...reasons].join(', ')}`);
    }
  });
});
