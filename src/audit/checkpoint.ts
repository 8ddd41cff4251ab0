/**
 * Transparency-log checkpoints (https://c2sp.org/tlog-checkpoint): the signed statement of the audit
 * log's origin, tree size and RFC 6962 Merkle root, carried as a C2SP signed note (note.ts).
 *
 * Body:
 *   <origin>\n
 *   <tree size, decimal, no leading zeros>\n
 *   <root hash, padded standard base64 of 32 bytes>\n
 *   [time <POSIX seconds>\n]      Mandate's time extension line (see below)
 *   [<other extension line>\n]*
 *
 * Time: the checkpoint spec has no time field and leaves extension lines opaque. Mandate records
 * when it signed a checkpoint as the first extension line `time <seconds since the Epoch>`, spelled
 * like the timestamp line of c2sp.org/tlog-cosignature (`time`, one space, ASCII decimal without
 * leading zeros). Other tools read the checkpoint without it; the signature covers it. Any extension
 * line starting with "time " is taken to be this one.
 *
 * Tree sizes and times are JavaScript numbers, so at most 2^53 - 1.
 */
import { MandateError } from '../errors.ts';
import { decodeBase64Std } from './base64.ts';
import { openNote, signNote, type NoteSignature, type NoteSigner, type NoteVerifier } from './note.ts';

/** Bytes in a root hash (SHA-256). */
export const ROOT_HASH_BYTES = 32;

/** Why a checkpoint was refused; the sentence is part of the error message. */
export const CHECKPOINT_RULES = {
  no_newline: 'a checkpoint body must end in a newline',
  too_few_lines: 'a checkpoint body must have an origin line, a tree size line and a root hash line',
  line_chars: 'checkpoint lines must not contain newlines or other control characters',
  origin_empty: 'the origin must be non-empty',
  size_syntax: 'the tree size must be ASCII decimal digits without leading zeros',
  size_range: 'the tree size must be an integer from 0 to 2^53 - 1',
  root_hash: `the root hash must be padded standard base64 of ${ROOT_HASH_BYTES} bytes`,
  extension_empty: 'extension lines must be non-empty',
  time_syntax: 'the time extension must be "time" and a space then decimal seconds without leading zeros, at most 2^53 - 1',
  time_position: 'the time extension must be the first extension line and appear at most once',
  origin_mismatch: 'the checkpoint origin is not the expected one',
} as const;

export type CheckpointRule = keyof typeof CHECKPOINT_RULES;

export interface Checkpoint {
  readonly origin: string;
  /** Number of leaves in the tree. */
  readonly size: number;
  /** RFC 6962 Merkle tree root hash, 32 bytes. */
  readonly rootHash: Uint8Array;
  /** When the checkpoint was signed, in seconds since the Epoch (the `time` extension line). */
  readonly time?: number;
  /** Extension lines other than the time line, without their newlines. */
  readonly extensions?: readonly string[];
}

export interface VerifiedCheckpoint {
  readonly checkpoint: Checkpoint;
  /** The note's signature lines; at least one is verified. */
  readonly signatures: readonly NoteSignature[];
}

const TIME_PREFIX = 'time ';
const DECIMAL = /^(?:0|[1-9][0-9]*)$/;
const CONTROL = /[\u0000-\u001f]/;

function refuse(rule: CheckpointRule, detail?: string): never {
  throw new MandateError('ERR_BAD_REQUEST', `checkpoint refused: ${CHECKPOINT_RULES[rule]}${detail === undefined ? '' : `; ${detail}`}`);
}

function checkLine(line: string, what: string): void {
  if (CONTROL.test(line)) refuse('line_chars', what);
}

function checkCount(value: number, rule: 'size_range' | 'time_syntax'): void {
  if (!Number.isSafeInteger(value) || value < 0) refuse(rule);
}

/** The checkpoint body text (a note text, ending in "\n"). Refuses values `parseCheckpoint` would refuse. */
export function formatCheckpoint(checkpoint: Checkpoint): string {
  const { origin, size, rootHash, time, extensions = [] } = checkpoint;
  if (origin === '') refuse('origin_empty');
  checkLine(origin, 'origin');
  checkCount(size, 'size_range');
  if (rootHash.length !== ROOT_HASH_BYTES) refuse('root_hash', `got ${rootHash.length} bytes`);
  const lines = [origin, String(size), Buffer.from(rootHash).toString('base64')];
  if (time !== undefined) {
    checkCount(time, 'time_syntax');
    lines.push(`${TIME_PREFIX}${time}`);
  }
  for (const [index, line] of extensions.entries()) {
    const what = `extension line ${index + 1}`;
    if (line === '') refuse('extension_empty', what);
    checkLine(line, what);
    if (line.startsWith(TIME_PREFIX)) refuse('time_position', `${what}; set the time field instead`);
    lines.push(line);
  }
  return `${lines.join('\n')}\n`;
}

/** Parses a checkpoint body strictly; refuses (ERR_BAD_REQUEST, message naming the rule) anything else. */
export function parseCheckpoint(body: string): Checkpoint {
  if (!body.endsWith('\n')) refuse('no_newline');
  const lines = body.slice(0, -1).split('\n');
  const [origin, sizeText, hashText, ...rest] = lines;
  if (origin === undefined || sizeText === undefined || hashText === undefined) refuse('too_few_lines');
  if (origin === '') refuse('origin_empty');
  checkLine(origin, 'origin');
  if (!DECIMAL.test(sizeText)) refuse('size_syntax');
  const size = Number(sizeText);
  checkCount(size, 'size_range');
  const rootHash = decodeBase64Std(hashText);
  if (rootHash === undefined || rootHash.length !== ROOT_HASH_BYTES) refuse('root_hash');

  let time: number | undefined;
  const extensions: string[] = [];
  for (const [index, line] of rest.entries()) {
    const what = `extension line ${index + 1}`;
    if (line === '') refuse('extension_empty', what);
    checkLine(line, what);
    if (line.startsWith(TIME_PREFIX)) {
      if (index !== 0) refuse('time_position', what);
      const seconds = line.slice(TIME_PREFIX.length);
      if (!DECIMAL.test(seconds)) refuse('time_syntax');
      time = Number(seconds);
      checkCount(time, 'time_syntax');
    } else {
      extensions.push(line);
    }
  }
  return Object.freeze({
    origin,
    size,
    rootHash: Uint8Array.from(rootHash),
    ...(time === undefined ? {} : { time }),
    ...(extensions.length === 0 ? {} : { extensions: Object.freeze(extensions) }),
  });
}

/** The signed note of `checkpoint`. The log's key name should be the origin (tlog-checkpoint). */
export function signCheckpoint(checkpoint: Checkpoint, signer: NoteSigner): string {
  return signNote(formatCheckpoint(checkpoint), signer);
}

/**
 * Opens a signed checkpoint with `verifiers` (see `openNote` for the signature rules) and parses its
 * body. Pass `expectedOrigin` to refuse checkpoints of another log signed by a trusted key.
 */
export function verifyCheckpoint(
  note: string | Uint8Array,
  verifiers: readonly NoteVerifier[],
  options: { expectedOrigin?: string } = {},
): VerifiedCheckpoint {
  const opened = openNote(note, verifiers);
  const checkpoint = parseCheckpoint(opened.text);
  if (options.expectedOrigin !== undefined && checkpoint.origin !== options.expectedOrigin) refuse('origin_mismatch');
  return Object.freeze({ checkpoint, signatures: opened.signatures });
}
