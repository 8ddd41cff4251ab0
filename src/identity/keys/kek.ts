/**
 * Envelope encryption of private keys at rest. Every CA and JWT signing key is sealed with the
 * deployment's key-encryption key (KEK, 32 bytes) using AES-256-GCM before it reaches the store;
 * the key's id is bound as additional authenticated data so a sealed key cannot be swapped onto
 * another record unnoticed.
 *
 * Envelope text: `v1.<iv b64url>.<ciphertext b64url>.<tag b64url>`.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { MandateError } from '../../errors.ts';

export class KeyEncryptionKey {
  readonly #key: Buffer;

  private constructor(key: Buffer) {
    this.#key = key;
  }

  /** From the base64 text of 32 bytes (config `keys.kek` or env MANDATE_KEK). */
  static fromBase64(text: string): KeyEncryptionKey {
    const key = Buffer.from(text.trim(), 'base64');
    if (key.length !== 32) throw new MandateError('ERR_KEK_INVALID', `key-encryption key must be 32 bytes of base64, got ${key.length} bytes`);
    return new KeyEncryptionKey(key);
  }

  static fromBytes(bytes: Uint8Array): KeyEncryptionKey {
    if (bytes.length !== 32) throw new MandateError('ERR_KEK_INVALID', `key-encryption key must be 32 bytes, got ${bytes.length}`);
    return new KeyEncryptionKey(Buffer.from(bytes));
  }

  static generate(): KeyEncryptionKey {
    return new KeyEncryptionKey(randomBytes(32));
  }

  /**
   * Reads the KEK file, creating it (mode 0600) when missing. For the embedded, single-machine
   * set-up only; production passes MANDATE_KEK from a secret manager.
   */
  static fromFile(path: string, create: boolean): { kek: KeyEncryptionKey; created: boolean } {
    if (existsSync(path)) return { kek: KeyEncryptionKey.fromBase64(readFileSync(path, 'utf8')), created: false };
    if (!create) throw new MandateError('ERR_KEK_INVALID', `key-encryption key file ${path} does not exist`);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const kek = KeyEncryptionKey.generate();
    writeFileSync(path, kek.#key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    chmodSync(path, 0o600);
    return { kek, created: true };
  }

  seal(keyId: string, plaintext: Buffer): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(keyId, 'utf8'));
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return ['v1', iv.toString('base64url'), ct.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
  }

  open(keyId: string, envelope: string): Buffer {
    const [version, iv, ct, tag] = envelope.split('.');
    if (version !== 'v1' || !iv || ct === undefined || !tag) {
      throw new MandateError('ERR_KEK_INVALID', `sealed key ${keyId} has an unknown envelope format`);
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(keyId, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]);
    } catch {
      throw new MandateError('ERR_KEK_INVALID', `sealed key ${keyId} cannot be opened: wrong key-encryption key or tampered record`);
    }
  }

  /**
   * A key for another purpose derived from the KEK (HKDF-SHA256, `label` as info), so one root secret
   * serves other uses (such as keyed fingerprints of vault secrets) without the KEK itself doing
   * anything but sealing. The same label always gives the same key.
   */
  deriveKey(label: string, length = 32): Buffer {
    return Buffer.from(hkdfSync('sha256', this.#key, Buffer.alloc(0), `mandate ${label}`, length));
  }

  /** Keeps the key out of logs, JSON and inspection. */
  toJSON(): string {
    return '[KeyEncryptionKey]';
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return '[KeyEncryptionKey]';
  }
}
