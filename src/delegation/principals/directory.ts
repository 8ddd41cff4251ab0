/**
 * The built-in directory: people with a username and password kept in the store, for deployments
 * without an external identity provider (and for `mandate up`). A directory user's principal is
 * (this deployment's issuer, the user's id).
 *
 * Sign-in gives away as little as it can: an unknown username and a wrong password get the same
 * message after the same work (a password check against a dummy hash). After `maxFailures` wrong
 * passwords in a row the account is locked for `lockoutSeconds`; the locked message says until when
 * (it is only ever given for an existing account). A disabled account is refused once its password
 * is right. Every attempt emits a `principal.signin` event; the password never appears in one.
 *
 * @example
 *   const directory = new Directory({ store, issuer: config.server.publicUrl, maxFailures: 5, lockoutSeconds: 900, events });
 *   await directory.createUser({ username: 'alice', displayName: 'Alice Example', password: 'correct horse battery' });
 *   const principal = await directory.authenticate('Alice', 'correct horse battery');
 *   // { issuer: 'https://mandate.example.org', subject: '<uuid>', name: 'Alice Example', groups: [], authMethod: 'password' }
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { isMandateError, MandateError } from '../../errors.ts';
import { emitRefusal, type EventSink } from '../../observability/events.ts';
import type { Store, UserRecord } from '../../store/store.ts';
import { checkPasswordStrength, hashPassword, verifyPassword } from './password.ts';
import type { Principal } from './principal.ts';

export interface DirectoryOptions {
  store: Store;
  /** This deployment's issuer identifier: the `iss` of directory principals. */
  issuer: string;
  /** Wrong passwords in a row before the account is locked (at least 1). */
  maxFailures: number;
  /** How long a locked account stays locked. */
  lockoutSeconds: number;
  events: EventSink;
  now?: () => Date;
}

export interface NewUser {
  /** 1-64 characters of a-z, 0-9, `.`, `_`, `-`, `@`; upper case is folded to lower case. */
  username: string;
  /** 1-128 characters without control characters; default: the username. */
  displayName?: string;
  password: string;
}

/** Where a sign-in attempt came from, for the event. */
export interface SignInContext {
  sourceAddress?: string;
}

const USERNAME = /^[a-z0-9._@-]{1,64}$/;
const MAX_DISPLAY_NAME = 128;
const GENERIC_REFUSAL = 'invalid username or password';

/** The username as stored (lower case), or undefined when it cannot be one. */
function normaliseUsername(input: unknown): string | undefined {
  if (typeof input !== 'string' || input.length > 64) return undefined;
  const lower = input.toLowerCase();
  return USERNAME.test(lower) ? lower : undefined;
}

function checkUsername(input: unknown): string {
  const username = normaliseUsername(input);
  if (username === undefined) {
    throw new MandateError('ERR_BAD_REQUEST', 'username must be 1 to 64 characters of a-z, 0-9, ".", "_", "-" and "@"');
  }
  return username;
}

function checkDisplayName(input: unknown): string {
  if (typeof input !== 'string') throw new MandateError('ERR_BAD_REQUEST', 'display name must be a string');
  const name = input.trim();
  if (name === '' || [...name].length > MAX_DISPLAY_NAME) {
    throw new MandateError('ERR_BAD_REQUEST', `display name must be 1 to ${MAX_DISPLAY_NAME} characters`);
  }
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) throw new MandateError('ERR_BAD_REQUEST', 'display name must not contain control characters');
  return name;
}

function checkNewPassword(password: string, username: string): void {
  checkPasswordStrength(password);
  if (password.toLowerCase() === username) throw new MandateError('ERR_BAD_REQUEST', 'password must not be the username');
}

export class Directory {
  readonly #store: Store;
  readonly #issuer: string;
  readonly #maxFailures: number;
  readonly #lockoutMs: number;
  readonly #events: EventSink;
  readonly #now: () => Date;
  /** Checked against when the username is unknown, so that case costs what a wrong password costs. */
  readonly #dummyHash: Promise<string>;

  /** @throws MandateError ERR_CONFIG_INVALID when maxFailures or lockoutSeconds is unusable. */
  constructor(opts: DirectoryOptions) {
    if (!Number.isInteger(opts.maxFailures) || opts.maxFailures < 1) {
      throw new MandateError('ERR_CONFIG_INVALID', `delegation.directory.max_failures must be a whole number of at least 1, not ${opts.maxFailures}`);
    }
    if (!(opts.lockoutSeconds > 0) || !Number.isFinite(opts.lockoutSeconds)) {
      throw new MandateError('ERR_CONFIG_INVALID', `delegation.directory.lockout must be a positive duration, not ${opts.lockoutSeconds} seconds`);
    }
    this.#store = opts.store;
    this.#issuer = opts.issuer;
    this.#maxFailures = opts.maxFailures;
    this.#lockoutMs = opts.lockoutSeconds * 1000;
    this.#events = opts.events;
    this.#now = opts.now ?? (() => new Date());
    this.#dummyHash = hashPassword(randomBytes(32).toString('base64'));
  }

  /**
   * Adds a user. The returned record includes the password hash: never show it.
   *
   * @throws MandateError ERR_BAD_REQUEST naming the broken rule, ERR_CONFLICT when the username is taken.
   */
  async createUser(input: NewUser): Promise<UserRecord> {
    const username = checkUsername(input.username);
    const displayName = checkDisplayName(input.displayName ?? username);
    checkNewPassword(input.password, username);
    const user: UserRecord = {
      id: randomUUID(),
      username,
      displayName,
      passwordHash: await hashPassword(input.password),
      failedLogins: 0,
      lockedUntil: null,
      disabled: false,
      createdAt: this.#now(),
    };
    try {
      await this.#store.createUser(user);
    } catch (err) {
      if (isMandateError(err, 'ERR_CONFLICT')) throw new MandateError('ERR_CONFLICT', `username "${username}" is taken`, { cause: err });
      throw err;
    }
    return user;
  }

  /**
   * Signs a user in by username (any case) and password.
   *
   * @throws MandateError ERR_UNAUTHENTICATED: "invalid username or password" for an unknown user or a
   *   wrong password; a message with the time the lock ends for a locked account; "this account is
   *   disabled" for a disabled one (given only with the right password).
   */
  async authenticate(username: string, password: string, ctx: SignInContext = {}): Promise<Principal> {
    const name = normaliseUsername(username);
    const user = name === undefined ? null : await this.#store.findUserByUsername(name);
    const event = { type: 'principal.signin', authMethod: 'password', issuer: this.#issuer, username: name, sourceAddress: ctx.sourceAddress };
    const refuse = async (message: string, reason: string, subject?: string): Promise<never> => {
      await emitRefusal(this.#events, { ...event, outcome: 'failure', subject, error: 'ERR_UNAUTHENTICATED', reason });
      throw new MandateError('ERR_UNAUTHENTICATED', message);
    };

    if (user === null) {
      await verifyPassword(await this.#dummyHash, typeof password === 'string' ? password : '');
      return refuse(GENERIC_REFUSAL, name === undefined ? 'malformed username' : 'unknown username');
    }
    const now = this.#now();
    if (user.lockedUntil !== null && user.lockedUntil > now) {
      return refuse(lockedMessage(user.lockedUntil), 'account locked', user.id);
    }
    if (!(await verifyPassword(user.passwordHash, password))) {
      const counted = await this.#store.recordLoginFailure(user.id, this.#maxFailures, new Date(now.getTime() + this.#lockoutMs));
      if (counted !== null && counted.lockedUntil !== null && counted.lockedUntil > now) {
        return refuse(lockedMessage(counted.lockedUntil), `wrong password; locked after ${this.#maxFailures} failures`, user.id);
      }
      return refuse(GENERIC_REFUSAL, 'wrong password', user.id);
    }
    if (user.disabled) return refuse('this account is disabled', 'account disabled', user.id);
    if (user.failedLogins > 0 || user.lockedUntil !== null) await this.#store.recordLoginSuccess(user.id);
    await this.#events.emit({ ...event, outcome: 'success', subject: user.id });
    return this.principalOf(user);
  }

  /**
   * Replaces a user's password; this also clears failed sign-ins and any lock.
   *
   * @throws MandateError ERR_NOT_FOUND, or ERR_BAD_REQUEST naming the broken rule.
   */
  async setPassword(id: string, password: string): Promise<void> {
    const user = await this.#existing(id);
    checkNewPassword(password, user.username);
    if (!(await this.#store.updateUser(id, { passwordHash: await hashPassword(password) }))) throw notFound(id);
    await this.#store.recordLoginSuccess(id);
  }

  /** Disables (no sign-in) or re-enables a user. @throws MandateError ERR_NOT_FOUND */
  async setDisabled(id: string, disabled: boolean): Promise<void> {
    if (!(await this.#store.updateUser(id, { disabled }))) throw notFound(id);
  }

  /** Every user (records include password hashes: never show them). */
  list(): Promise<UserRecord[]> {
    return this.#store.listUsers();
  }

  /** The user with this id, or null. */
  get(id: string): Promise<UserRecord | null> {
    return this.#store.getUser(id);
  }

  /** @throws MandateError ERR_NOT_FOUND */
  async delete(id: string): Promise<void> {
    if (!(await this.#store.deleteUser(id))) throw notFound(id);
  }

  principalOf(user: UserRecord): Principal {
    return { issuer: this.#issuer, subject: user.id, name: user.displayName, groups: [], authMethod: 'password' };
  }

  async #existing(id: string): Promise<UserRecord> {
    const user = await this.#store.getUser(id);
    if (user === null) throw notFound(id);
    return user;
  }
}

function lockedMessage(until: Date): string {
  return `this account is locked after too many failed sign-ins, until ${until.toISOString()}`;
}

function notFound(id: string): MandateError {
  return new MandateError('ERR_NOT_FOUND', `no user with id "${id}"`);
}
