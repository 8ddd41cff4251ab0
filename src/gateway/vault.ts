/**
 * The vault: secrets the gateway sends upstream in place of the agent's credential (a tool server
 * configured with `credential: { type: secret }`), either one per tool server or one per principal
 * (set by the principal on their account page, or by an admin). Agents never see them.
 *
 * Values are sealed with the KEK (AES-256-GCM) before they reach the store, with the owner and the
 * name as additional authenticated data, so a sealed value moved to another owner's or name's row
 * does not open. Once set, a value leaves only toward the upstream (`get`): listings show the name,
 * owner, times and a fingerprint (the first 8 hex digits of an HMAC-SHA256 under a key derived from
 * the KEK, so it reveals nothing even about a short value), and events name owner and secret only.
 * Values go in an HTTP header, so they are limited to 16 KiB of printable ASCII without leading or
 * trailing spaces (which a header would lose) and, above all, without line breaks.
 *
 * @example
 *   const vault = new Vault({ store, kek, events });
 *   await vault.set({ kind: 'server', server: 'tracker' }, 'api_key', value, 'admin:tok_1');
 *   await vault.get({ kind: 'principal', issuer, subject }, 'github_token'); // string | undefined
 */
import { createHmac } from 'node:crypto';
import type { ToolServerConfig } from '../config/types.ts';
import { MandateError } from '../errors.ts';
import type { KeyEncryptionKey } from '../identity/keys/kek.ts';
import type { EventSink } from '../observability/events.ts';
import type { Store, VaultOwner, VaultSecretFilter, VaultSecretInfo } from '../store/store.ts';
import { ownerColumns } from '../store/vault-values.ts';

export type { VaultOwner, VaultSecretInfo } from '../store/store.ts';

export const MAX_SECRET_BYTES = 16 * 1024;
/** Secret names: what config `credential.secret` must look like. */
export const SECRET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Tool server names, as the configuration allows them. */
const SERVER_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,62}$/;
const PRINTABLE = /^[\x20-\x7e]*$/;
const MAX_PRINCIPAL_PART = 1024;

export interface VaultOptions {
  store: Store;
  kek: KeyEncryptionKey;
  events: EventSink;
  now?: () => Date;
}

function bad(message: string): MandateError {
  return new MandateError('ERR_BAD_REQUEST', message);
}

/** "tool server tracker", "principal alice at https://login.example.com": for messages, never a value. */
export function describeOwner(owner: VaultOwner): string {
  return owner.kind === 'server' ? `tool server ${owner.server}` : `principal ${owner.subject} at ${owner.issuer}`;
}

function checkOwner(owner: VaultOwner): void {
  if (owner.kind === 'server') {
    if (!SERVER_NAME.test(owner.server)) throw bad('the tool server name must be letters, digits, "-" and "_", starting with a letter, at most 63 characters');
    return;
  }
  for (const [part, value] of [['issuer', owner.issuer], ['subject', owner.subject]] as const) {
    if (typeof value !== 'string' || value === '' || value.length > MAX_PRINCIPAL_PART || !PRINTABLE.test(value)) {
      throw bad(`the principal's ${part} must be 1 to ${MAX_PRINCIPAL_PART} printable characters`);
    }
  }
}

function checkName(name: string): void {
  if (typeof name !== 'string' || !SECRET_NAME.test(name)) {
    throw bad('a secret name is 1 to 128 letters, digits, ".", "-" and "_", starting with a letter or digit');
  }
}

/** The limits of a value that goes into a header. The messages never quote the value. */
function checkValue(value: string): void {
  if (typeof value !== 'string' || value === '') throw bad('the secret value is empty');
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > MAX_SECRET_BYTES) throw bad(`the secret value is ${bytes} bytes; at most ${MAX_SECRET_BYTES} are allowed`);
  if (/[\r\n]/.test(value)) throw bad('the secret value contains a line break; it goes in an HTTP header, so it must be one line');
  if (!PRINTABLE.test(value)) throw bad('the secret value contains a character other than printable ASCII (no tabs, control or non-ASCII characters)');
  if (value.startsWith(' ') || value.endsWith(' ')) throw bad('the secret value begins or ends with a space, which an HTTP header would drop');
}

/** Additional authenticated data of a sealed value: its owner and name, unambiguously. */
function aad(owner: VaultOwner, name: string): string {
  return JSON.stringify(['vault', ...ownerColumns(owner), name]);
}

/** What an event says about the owner: the principal in its audit place, a server by name. */
function ownerFields(owner: VaultOwner): Record<string, unknown> {
  return owner.kind === 'server'
    ? { ownerKind: 'server', server: owner.server }
    : { ownerKind: 'principal', principal: { issuer: owner.issuer, subject: owner.subject } };
}

export class Vault {
  readonly #store: Store;
  readonly #kek: KeyEncryptionKey;
  readonly #events: EventSink;
  readonly #now: () => Date;
  readonly #fingerprintKey: Buffer;

  constructor(opts: VaultOptions) {
    this.#store = opts.store;
    this.#kek = opts.kek;
    this.#events = opts.events;
    this.#now = opts.now ?? (() => new Date());
    this.#fingerprintKey = opts.kek.deriveKey('vault fingerprint');
  }

  /** Sets (or replaces) a secret; answered once its event is recorded. */
  async set(owner: VaultOwner, name: string, value: string, actor: string): Promise<VaultSecretInfo> {
    checkOwner(owner);
    checkName(name);
    checkValue(value);
    const now = this.#now();
    const info = await this.#store.putVaultSecret({
      owner, name,
      valueEnc: this.#kek.seal(aad(owner, name), Buffer.from(value, 'utf8')),
      fingerprint: this.fingerprint(value),
      createdAt: now,
      updatedAt: now,
    });
    await this.#events.emit({ type: 'vault.secret.set', outcome: 'success', actor, ...ownerFields(owner), name });
    return info;
  }

  /**
   * The value, for the upstream request only; undefined when none is set. A value that does not
   * open (another KEK, or a row altered or moved to another owner or name) is ERR_KEK_INVALID.
   */
  async get(owner: VaultOwner, name: string): Promise<string | undefined> {
    checkOwner(owner);
    checkName(name);
    const record = await this.#store.getVaultSecret(owner, name);
    if (!record) return undefined;
    try {
      return this.#kek.open(aad(owner, name), record.valueEnc).toString('utf8');
    } catch {
      throw new MandateError('ERR_KEK_INVALID', `the vault secret ${name} of ${describeOwner(owner)} cannot be opened: another key-encryption key, or the record was altered or moved`);
    }
  }

  /** Secrets without their values: one owner's, one kind of owner's, or all; sorted by owner, then name. */
  list(owner?: VaultOwner | VaultOwner['kind']): Promise<VaultSecretInfo[]> {
    let filter: VaultSecretFilter = {};
    if (typeof owner === 'string') filter = { kind: owner };
    else if (owner !== undefined) {
      checkOwner(owner);
      filter = { owner };
    }
    return this.#store.listVaultSecrets(filter);
  }

  /** Deletes a secret; ERR_NOT_FOUND when there is none. */
  async delete(owner: VaultOwner, name: string, actor: string): Promise<void> {
    checkOwner(owner);
    checkName(name);
    if (!(await this.#store.deleteVaultSecret(owner, name))) throw new MandateError('ERR_NOT_FOUND', `${describeOwner(owner)} has no secret ${name}`);
    await this.#events.emit({ type: 'vault.secret.deleted', outcome: 'success', actor, ...ownerFields(owner), name });
  }

  /**
   * The secret a tool server's upstream requests carry, for a call made for `principal`: the
   * server's own or the principal's, as its credential is configured; undefined when the server
   * takes no vault secret or none is set (the caller decides whether to refuse the call).
   */
  forUpstream(server: Pick<ToolServerConfig, 'name' | 'credential'>, principal: { issuer: string; subject: string }): Promise<string | undefined> {
    const c = server.credential;
    if (c.type !== 'secret') return Promise.resolve(undefined);
    const owner: VaultOwner = c.owner === 'server'
      ? { kind: 'server', server: server.name }
      : { kind: 'principal', issuer: principal.issuer, subject: principal.subject };
    return this.get(owner, c.secret);
  }

  /** The first 8 hex digits of HMAC-SHA256 of the value under a key derived from the KEK. */
  fingerprint(value: string): string {
    return createHmac('sha256', this.#fingerprintKey).update(value, 'utf8').digest('hex').slice(0, 8);
  }

  /** Keeps the derived key out of logs, JSON and inspection. */
  toJSON(): string {
    return '[Vault]';
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return '[Vault]';
  }
}

/**
 * The secrets principals keep for themselves: the names of the tool servers' secrets owned by the
 * principal, each with the servers that use it (what the account page offers).
 */
export function principalSecretNames(servers: readonly Pick<ToolServerConfig, 'name' | 'credential'>[]): Array<{ name: string; servers: string[] }> {
  const byName = new Map<string, string[]>();
  for (const s of servers) {
    if (s.credential.type !== 'secret' || s.credential.owner !== 'principal') continue;
    byName.set(s.credential.secret, [...(byName.get(s.credential.secret) ?? []), s.name]);
  }
  return [...byName].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, users]) => ({ name, servers: users }));
}
