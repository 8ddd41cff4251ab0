/**
 * C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys, byte-compatible with
 * golang.org/x/mod/sumdb/note. The audit log publishes its checkpoints as signed notes so any
 * transparency-log tool can check them.
 *
 * A signed note is a text ending in "\n", a blank line, then one or more signature lines
 * `— <key name> <base64(4-byte key ID || signature)>\n` (em dash U+2014, space). The signature covers
 * the text including its final newline. Key ID = SHA-256(name || "\n" || 0x01 || public key)[:4].
 *
 * Keys travel as text, as in x/mod/sumdb/note:
 *   verifier key  `<name>+<hex key ID>+<base64(0x01 || 32-byte public key)>`
 *   signer key    `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte seed)>`  (secret)
 *
 * Opening follows the spec: signatures from unknown keys are listed unverified and otherwise
 * ignored; every signature from a known key must verify; at least one must. Unlike sumdb/note,
 * repeated signatures by one known key are each verified, not skipped.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { MandateError } from '../errors.ts';
import { decodeBase64Std } from './base64.ts';

/** Signature type byte for Ed25519 in key IDs and key strings. */
export const SIG_TYPE_ED25519 = 0x01;
/** Largest note (UTF-8 bytes) opened or produced. */
export const MAX_NOTE_BYTES = 1024 * 1024;
/** Most signature lines a note may carry (the limit sumdb/note applies). */
export const MAX_NOTE_SIGNATURES = 100;

/** Why a note was refused; the sentence is part of the error message. */
export const NOTE_RULES = {
  too_large: `a note must be at most ${MAX_NOTE_BYTES} bytes`,
  not_utf8: 'a note must be well-formed UTF-8',
  control_char: 'a note must not contain control characters other than newline',
  no_separator: 'a note must have a blank line between its text and its signatures',
  text_no_newline: 'the note text must be non-empty and end in a newline',
  no_signatures: 'a note must have at least one signature line',
  signature_no_newline: 'the last signature line must end in a newline',
  signature_line: 'a signature line must be an em dash, a space, a key name, a space and the signature',
  key_name: 'a key name must be non-empty and contain neither spaces nor "+"',
  signature_base64: 'a signature must be padded standard base64 of a 4-byte key ID and the signature bytes',
  too_many_signatures: `a note must have at most ${MAX_NOTE_SIGNATURES} signature lines`,
  unknown_key: 'the note has no signature from a known key',
  bad_signature: 'a signature from a known key does not verify',
} as const;

export type NoteRule = keyof typeof NOTE_RULES;

/** A public key that can check note signatures. */
export interface NoteVerifier {
  readonly name: string;
  /** 8 lowercase hex digits. */
  readonly keyId: string;
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  readonly key: KeyObject;
}

/** A private key that signs notes. Keep it secret; never log the signer key string. */
export interface NoteSigner {
  readonly name: string;
  readonly keyId: string;
  readonly privateKey: KeyObject;
  /** The matching public key, to publish with `formatVerifierKey`. */
  readonly verifier: NoteVerifier;
}

export interface NoteSignature {
  readonly name: string;
  readonly keyId: string;
  /** True when the key is known and the signature verified; false when the key is unknown. */
  readonly verified: boolean;
}

export interface OpenedNote {
  /** The signed text, with its final newline. */
  readonly text: string;
  /** One entry per signature line, in order. */
  readonly signatures: readonly NoteSignature[];
}

const EM_DASH_SPACE = '\u2014 ';
const PRIVATE_PREFIX = 'PRIVATE+KEY+';
const HEX_KEY_ID = /^[0-9a-fA-F]{8}$/;
const UNICODE_SPACE = /\p{White_Space}/u;
const CONTROL = /[\u0000-\u0009\u000b-\u001f]/;
const LONE_SURROGATE = /[\ud800-\udfff]/u;
const ED25519_SIGNATURE_BYTES = 64;
// DER prefixes that wrap a raw Ed25519 key (RFC 8410) so node:crypto can import it.
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function refuse(rule: NoteRule, detail?: string): never {
  throw new MandateError('ERR_BAD_REQUEST', `note refused: ${NOTE_RULES[rule]}${detail === undefined ? '' : `; ${detail}`}`);
}

function badKey(message: string): never {
  throw new MandateError('ERR_KEY_INVALID', message);
}

/** Key names are non-empty, without Unicode spaces or "+" (they also must not contain control characters). */
export function isValidKeyName(name: string): boolean {
  return name !== '' && !UNICODE_SPACE.test(name) && !name.includes('+') && !CONTROL.test(name) && !LONE_SURROGATE.test(name);
}

function checkKeyName(name: string): void {
  if (!isValidKeyName(name)) badKey(`note key name refused: ${NOTE_RULES.key_name}`);
}

/** The C2SP key ID of an Ed25519 key: SHA-256(name || "\n" || 0x01 || public key)[:4], as 8 hex digits. */
export function noteKeyId(name: string, publicKey: Uint8Array): string {
  return createHash('sha256')
    .update(name, 'utf8')
    .update('\n')
    .update(Uint8Array.of(SIG_TYPE_ED25519))
    .update(publicKey)
    .digest()
    .subarray(0, 4)
    .toString('hex');
}

function makeVerifier(name: string, publicKey: Uint8Array): NoteVerifier {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
  } catch {
    badKey('verifier key refused: not an Ed25519 public key');
  }
  return Object.freeze({ name, keyId: noteKeyId(name, publicKey), publicKey: Uint8Array.from(publicKey), key });
}

function signerFromSeed(name: string, seed: Uint8Array): NoteSigner {
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length);
  const verifier = makeVerifier(name, publicKey);
  return Object.freeze({ name, keyId: verifier.keyId, privateKey, verifier });
}

/** `<name>+<hex key ID>+<base64(0x01 || public key)>`, the public text to give to verifiers. */
export function formatVerifierKey(verifier: NoteVerifier): string {
  const data = Buffer.concat([Uint8Array.of(SIG_TYPE_ED25519), verifier.publicKey]).toString('base64');
  return `${verifier.name}+${verifier.keyId}+${data}`;
}

/** A fresh Ed25519 key pair for `name`. `signerKey` is secret. */
export function generateNoteKey(name: string): { signerKey: string; verifierKey: string } {
  checkKeyName(name);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_PREFIX.length);
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length);
  const keyId = noteKeyId(name, raw);
  const data = (bytes: Uint8Array) => Buffer.concat([Uint8Array.of(SIG_TYPE_ED25519), bytes]).toString('base64');
  return { signerKey: `${PRIVATE_PREFIX}${name}+${keyId}+${data(seed)}`, verifierKey: `${name}+${keyId}+${data(raw)}` };
}

/** Splits `<name>+<hex id>+<base64 key data>` and checks the parts' syntax; the data is 0x01 || 32 bytes. */
function splitKey(text: string, what: string): { name: string; keyId: string; raw: Uint8Array } {
  const first = text.indexOf('+');
  const second = first < 0 ? -1 : text.indexOf('+', first + 1);
  if (second < 0) badKey(`${what} refused: expected <name>+<hex key ID>+<base64 key>`);
  const name = text.slice(0, first);
  const keyId = text.slice(first + 1, second);
  checkKeyName(name);
  if (!HEX_KEY_ID.test(keyId)) badKey(`${what} refused: the key ID must be 8 hex digits`);
  const data = decodeBase64Std(text.slice(second + 1));
  if (data === undefined || data.length === 0) badKey(`${what} refused: the key must be padded standard base64`);
  if (data[0] !== SIG_TYPE_ED25519) badKey(`${what} refused: unknown signature type ${data[0]} (only 1, Ed25519, is supported)`);
  if (data.length !== 33) badKey(`${what} refused: an Ed25519 key must be 32 bytes, got ${data.length - 1}`);
  return { name, keyId: keyId.toLowerCase(), raw: data.subarray(1) };
}

/** Parses a verifier key string; refuses (ERR_KEY_INVALID) bad syntax and a key ID that does not match the key. */
export function parseVerifierKey(text: string): NoteVerifier {
  const { name, keyId, raw } = splitKey(text, 'verifier key');
  const verifier = makeVerifier(name, raw);
  if (verifier.keyId !== keyId) badKey('verifier key refused: the key ID does not match the name and public key');
  return verifier;
}

/** Parses a `PRIVATE+KEY+...` signer key string; refuses (ERR_KEY_INVALID) bad syntax and a mismatched key ID. */
export function parseSignerKey(text: string): NoteSigner {
  if (!text.startsWith(PRIVATE_PREFIX)) badKey('signer key refused: it must start with PRIVATE+KEY+');
  const { name, keyId, raw } = splitKey(text.slice(PRIVATE_PREFIX.length), 'signer key');
  const signer = signerFromSeed(name, raw);
  if (signer.keyId !== keyId) badKey('signer key refused: the key ID does not match the name and derived public key');
  return signer;
}

/** Refuses text that is too large, not well-formed UTF-8 or holds control characters other than "\n". */
function checkCharacters(text: string): void {
  if (text.length > MAX_NOTE_BYTES || Buffer.byteLength(text, 'utf8') > MAX_NOTE_BYTES) refuse('too_large');
  if (LONE_SURROGATE.test(text)) refuse('not_utf8');
  const control = CONTROL.exec(text);
  if (control) refuse('control_char', `found U+${control[0].charCodeAt(0).toString(16).padStart(4, '0')} at offset ${control.index}`);
}

function signatureLine(signer: NoteSigner, text: Buffer): string {
  const signature = sign(null, text, signer.privateKey);
  return `${EM_DASH_SPACE}${signer.name} ${Buffer.concat([Buffer.from(signer.keyId, 'hex'), signature]).toString('base64')}\n`;
}

/**
 * Signs `text` (non-empty, ending in "\n") with each signer, in order, and returns the signed note.
 * Refuses (ERR_BAD_REQUEST) text that `openNote` would refuse, so every note produced can be opened.
 */
export function signNote(text: string, signers: NoteSigner | readonly NoteSigner[]): string {
  const list: readonly NoteSigner[] = Array.isArray(signers) ? signers : [signers as NoteSigner];
  if (list.length === 0) refuse('no_signatures');
  if (list.length > MAX_NOTE_SIGNATURES) refuse('too_many_signatures');
  checkCharacters(text);
  if (!text.endsWith('\n')) refuse('text_no_newline');
  const bytes = Buffer.from(text, 'utf8');
  const note = `${text}\n${list.map((signer) => signatureLine(signer, bytes)).join('')}`;
  if (Buffer.byteLength(note, 'utf8') > MAX_NOTE_BYTES) refuse('too_large');
  return note;
}

/** Map from `<name>+<key ID>` to verifier; two different keys under one name and ID is a configuration error. */
function indexVerifiers(verifiers: readonly NoteVerifier[]): Map<string, NoteVerifier> {
  const known = new Map<string, NoteVerifier>();
  for (const verifier of verifiers) {
    const id = `${verifier.name}+${verifier.keyId}`;
    const other = known.get(id);
    if (other && !Buffer.from(other.publicKey).equals(verifier.publicKey)) {
      badKey(`verifier keys are ambiguous: two different keys are named ${id}`);
    }
    known.set(id, verifier);
  }
  return known;
}

function decodeNote(note: string | Uint8Array): string {
  if (typeof note === 'string') return note;
  if (note.length > MAX_NOTE_BYTES) refuse('too_large');
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(note);
  } catch {
    refuse('not_utf8');
  }
}

/**
 * Parses a signed note and checks its signatures against `verifiers`. Refuses (ERR_BAD_REQUEST,
 * message naming the rule from NOTE_RULES) malformed notes, a signature from a known key that does
 * not verify, and notes with no signature from a known key.
 */
export function openNote(note: string | Uint8Array, verifiers: readonly NoteVerifier[]): OpenedNote {
  const known = indexVerifiers(verifiers);
  const message = decodeNote(note);
  checkCharacters(message);

  const split = message.lastIndexOf('\n\n');
  if (split < 0) refuse('no_separator');
  const text = message.slice(0, split + 1);
  const block = message.slice(split + 2);
  if (block === '') refuse('no_signatures');
  if (!block.endsWith('\n')) refuse('signature_no_newline');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) refuse('too_many_signatures', `found ${lines.length}`);

  const textBytes = Buffer.from(text, 'utf8');
  const signatures: NoteSignature[] = [];
  for (const [index, line] of lines.entries()) {
    const where = `signature line ${index + 1}`;
    if (!line.startsWith(EM_DASH_SPACE)) refuse('signature_line', where);
    const rest = line.slice(EM_DASH_SPACE.length);
    const space = rest.indexOf(' ');
    if (space < 0) refuse('signature_line', where);
    const name = rest.slice(0, space);
    if (!isValidKeyName(name)) refuse('key_name', where);
    const bytes = decodeBase64Std(rest.slice(space + 1));
    if (bytes === undefined || bytes.length < 5) refuse('signature_base64', where);
    const keyId = bytes.subarray(0, 4).toString('hex');
    const verifier = known.get(`${name}+${keyId}`);
    if (verifier) {
      const signature = bytes.subarray(4);
      if (signature.length !== ED25519_SIGNATURE_BYTES || !verify(null, textBytes, verifier.key, signature)) {
        refuse('bad_signature', `${where}, key ${name}+${keyId}`);
      }
    }
    signatures.push(Object.freeze({ name, keyId, verified: verifier !== undefined }));
  }
  if (!signatures.some((s) => s.verified)) refuse('unknown_key');
  return Object.freeze({ text, signatures: Object.freeze(signatures) });
}
