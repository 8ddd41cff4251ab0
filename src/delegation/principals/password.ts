/**
 * Password hashing for the built-in directory: scrypt (node:crypto) in a self-describing string, so
 * the cost can be raised later without breaking stored hashes, and the one strength rule set new
 * passwords must pass.
 *
 * Format: `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<key>`, salt and key in base64 without padding
 * (the PHC string convention). New hashes use N=2^15, r=8, p=1, a 16-byte salt and a 32-byte key.
 * Passwords are NFKC-normalised before hashing (NIST SP 800-63B §5.1.1.2), so the same password typed
 * on different keyboards or input methods verifies.
 *
 * @example
 *   const hash = await hashPassword('correct horse battery staple');
 *   // '$scrypt$ln=15,r=8,p=1$3q2+7w...$kq0...'
 *   await verifyPassword(hash, 'correct horse battery staple')  // true
 *   await verifyPassword('garbage', 'anything')                 // false, never throws
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { MandateError } from '../../errors.ts';

const LOG_N = 15;
const R = 8;
const P = 1;
const SALT_BYTES = 16;
const KEY_BYTES = 32;

/** Passwords longer than this are refused when set and never verified (bounds the work per attempt). */
export const MAX_PASSWORD_LENGTH = 1024;
export const MIN_PASSWORD_LENGTH = 12;

// Bounds on what a stored hash may ask for, so a corrupted or planted hash cannot make a sign-in
// attempt allocate gigabytes or run for minutes.
const MAX_LOG_N = 20;
const MAX_R = 32;
const MAX_P = 16;
const MAX_MEMORY = 256 * 1024 * 1024;

const FORMAT = /^\$scrypt\$ln=([1-9][0-9]?),r=([1-9][0-9]{0,2}),p=([1-9][0-9]{0,2})\$([A-Za-z0-9+/]{11,88})\$([A-Za-z0-9+/]{22,88})$/;

interface Parsed {
  logN: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

/** Memory scrypt needs for these parameters (OpenSSL's accounting: V plus B), with room to spare. */
function memoryFor(logN: number, r: number, p: number): number {
  return 128 * r * (2 ** logN + 2) + 128 * r * p + 1024 * 1024;
}

function derive(password: string, salt: Buffer, keyLength: number, logN: number, r: number, p: number): Promise<Buffer> {
  const options: ScryptOptions = { N: 2 ** logN, r, p, maxmem: memoryFor(logN, r, p) };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFKC'), salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Strict base64 without padding: decoding and re-encoding must give the same text back. */
function decodeBase64(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64').replace(/=+$/, '') === text ? bytes : undefined;
}

function parseHash(hash: string): Parsed | undefined {
  const m = FORMAT.exec(hash);
  if (m === null) return undefined;
  const logN = Number(m[1]);
  const r = Number(m[2]);
  const p = Number(m[3]);
  if (logN > MAX_LOG_N || r > MAX_R || p > MAX_P || memoryFor(logN, r, p) > MAX_MEMORY) return undefined;
  const salt = decodeBase64(m[4]!);
  const key = decodeBase64(m[5]!);
  if (salt === undefined || key === undefined || salt.length < 8 || key.length < 16 || key.length > 64) return undefined;
  return { logN, r, p, salt, key };
}

/** Length in code points as typed (before normalisation); the UTF-16 check first bounds the work. */
function tooLong(password: string): boolean {
  return password.length > 2 * MAX_PASSWORD_LENGTH || [...password].length > MAX_PASSWORD_LENGTH;
}

const b64 = (bytes: Buffer): string => bytes.toString('base64').replace(/=+$/, '');

/** Hashes a password with a fresh random salt. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, KEY_BYTES, LOG_N, R, P);
  return `$scrypt$ln=${LOG_N},r=${R},p=${P}$${b64(salt)}$${b64(key)}`;
}

/**
 * True when `password` matches `hash`. The cost parameters, salt and key length come from the hash
 * string. Anything malformed, out of bounds or not a string gives false; it never throws.
 */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  if (typeof hash !== 'string' || typeof password !== 'string' || tooLong(password)) return false;
  const parsed = parseHash(hash);
  if (parsed === undefined) return false;
  try {
    const key = await derive(password, parsed.salt, parsed.key.length, parsed.logN, parsed.r, parsed.p);
    return timingSafeEqual(key, parsed.key);
  } catch {
    return false;
  }
}

/**
 * Refuses a new password that breaks a rule, naming the rule (ERR_BAD_REQUEST). The rules, after
 * NIST SP 800-63B §5.1.1.2 (length carries strength; no composition rules):
 * - at least 12 and at most 1024 characters (Unicode code points, as typed);
 * - not one character repeated throughout (`aaaaaaaaaaaa`);
 * - no control characters (they are typing accidents, and cannot be entered on every device), and
 *   valid Unicode (an unpaired surrogate would be hashed as U+FFFD, colliding with others).
 */
export function checkPasswordStrength(password: string): void {
  if (typeof password !== 'string') throw new MandateError('ERR_BAD_REQUEST', 'password must be a string');
  if (tooLong(password)) {
    throw new MandateError('ERR_BAD_REQUEST', `password must be at most ${MAX_PASSWORD_LENGTH} characters long`);
  }
  const chars = [...password];
  if (chars.length < MIN_PASSWORD_LENGTH) {
    throw new MandateError('ERR_BAD_REQUEST', `password must be at least ${MIN_PASSWORD_LENGTH} characters long`);
  }
  if (new Set(chars).size === 1) throw new MandateError('ERR_BAD_REQUEST', 'password must not be one character repeated');
  if (/[\u0000-\u001f\u007f-\u009f]/.test(password)) {
    throw new MandateError('ERR_BAD_REQUEST', 'password must not contain control characters');
  }
  if (/\p{Cs}/u.test(password)) throw new MandateError('ERR_BAD_REQUEST', 'password must be valid Unicode text (it has an unpaired surrogate)');
}
