/**
 * The delegation authority's token-signing keys and their rotation, published as the JWKS that
 * resource servers verify OBO tokens with.
 *
 * Same life cycle as the identity authority's keys: prepared (published, not signing) -> active
 * (signs) -> retired (published until every token it signed has expired) -> removed. A successor is
 * prepared when a quarter of the active key's life is left and activated at an eighth, so verifiers
 * that cache the JWKS see a key before the first token it signs. Keys live in the store, sealed with
 * the KEK, so every replica signs with the same key after a reload.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import type { TokenSigningAlgorithm } from '../../config/types.ts';
import { MandateError } from '../../errors.ts';
import type { KeyEncryptionKey } from '../../identity/keys/kek.ts';
import type { EventSink } from '../../observability/events.ts';
import type { SigningKeyRecord, Store } from '../../store/store.ts';

export interface TokenSigningKey {
  kid: string;
  alg: TokenSigningAlgorithm;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicJwk: JWK;
}

export interface TokenSigningKeysOptions {
  store: Store;
  kek: KeyEncryptionKey;
  algorithm: TokenSigningAlgorithm;
  /** Seconds a key signs. */
  keyTtl: number;
  /** Seconds the longest token lives: a retired key stays published this long (plus skew). */
  maxTokenTtl: number;
  events: EventSink;
  now?: () => Date;
}

const KIND = 'oauth';
const PREPARE_AT = 0.25;
const ACTIVATE_AT = 0.125;
const SKEW_MS = 60_000;

function generate(alg: TokenSigningAlgorithm): KeyObject {
  switch (alg) {
    case 'ES256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    case 'ES384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    case 'EdDSA':
      return generateKeyPairSync('ed25519').privateKey;
    case 'PS256':
    case 'RS256':
      return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  }
}

export class TokenSigningKeys {
  readonly #opts: TokenSigningKeysOptions;
  readonly #now: () => Date;
  #keys = new Map<string, { record: SigningKeyRecord; key: TokenSigningKey }>();
  #jwks: { keys: JWK[] } | null = null;

  constructor(opts: TokenSigningKeysOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? (() => new Date());
  }

  /** Loads the keys and creates the first one on a new deployment. */
  async init(): Promise<void> {
    await this.reload();
    if (!this.#byState('active')) {
      await this.#create('active');
      await this.reload();
    }
  }

  async reload(): Promise<void> {
    const keys = new Map<string, { record: SigningKeyRecord; key: TokenSigningKey }>();
    for (const record of await this.#opts.store.listSigningKeys(KIND)) {
      const existing = this.#keys.get(record.id);
      const publicJwk = JSON.parse(record.publicData) as JWK;
      const privateKey = existing?.key.privateKey ?? createPrivateKey({ key: this.#opts.kek.open(record.id, record.privateKeyEnc), format: 'der', type: 'pkcs8' });
      keys.set(record.id, {
        record,
        key: { kid: record.id, alg: publicJwk.alg as TokenSigningAlgorithm, privateKey, publicKey: existing?.key.publicKey ?? createPublicKey(privateKey), publicJwk },
      });
    }
    this.#keys = keys;
    this.#jwks = null;
  }

  /** The key that signs new tokens. Fails closed when there is none. */
  active(): TokenSigningKey {
    const record = this.#byState('active');
    if (!record) throw new MandateError('ERR_CA_UNAVAILABLE', 'no active token-signing key');
    return (this.#keys.get(record.id) as { key: TokenSigningKey }).key;
  }

  /** A published key by `kid` (for verifying our own tokens), or undefined. */
  publicKey(kid: string): { key: KeyObject; alg: TokenSigningAlgorithm } | undefined {
    const entry = this.#keys.get(kid);
    return entry && { key: entry.key.publicKey, alg: entry.key.alg };
  }

  /** The JWKS published at the jwks_uri: every prepared, active and retired key. */
  jwks(): { keys: JWK[] } {
    this.#jwks ??= { keys: [...this.#keys.values()].map(({ key }) => key.publicJwk) };
    return this.#jwks;
  }

  records(): SigningKeyRecord[] {
    return [...this.#keys.values()].map((k) => k.record);
  }

  /** Advances rotation; true when the published set changed. */
  async tick(): Promise<boolean> {
    await this.reload();
    const now = this.#now().getTime();
    let changed = false;
    const active = this.#byState('active');
    const prepared = this.#byState('prepared');
    if (active) {
      const life = active.notAfter.getTime() - active.createdAt.getTime();
      const left = active.notAfter.getTime() - now;
      if (!prepared && left <= PREPARE_AT * life) {
        await this.#create('prepared');
        changed = true;
      } else if (prepared && left <= ACTIVATE_AT * life) {
        await this.#activate(prepared.id);
        changed = true;
      }
    }
    for (const { record } of this.#keys.values()) {
      if (record.state === 'retired' && record.publishUntil && record.publishUntil.getTime() <= now) {
        await this.#opts.store.deleteSigningKey(record.id);
        this.#opts.events.emit({ type: 'key.oauth.removed', outcome: 'success', keyId: record.id });
        changed = true;
      }
    }
    if (changed) await this.reload();
    return changed;
  }

  /** Manual rotation in two calls: prepare (publish) a successor, then activate it. */
  async rotate(): Promise<{ phase: 'prepared' | 'activated'; keyId: string }> {
    await this.reload();
    const prepared = this.#byState('prepared');
    const result = prepared
      ? (await this.#activate(prepared.id), { phase: 'activated' as const, keyId: prepared.id })
      : { phase: 'prepared' as const, keyId: await this.#create('prepared') };
    await this.reload();
    return result;
  }

  #byState(state: SigningKeyRecord['state']): SigningKeyRecord | undefined {
    return [...this.#keys.values()].map((k) => k.record).find((r) => r.state === state);
  }

  async #activate(id: string): Promise<void> {
    const active = this.#byState('active');
    if (active) {
      const until = this.#now().getTime() + this.#opts.maxTokenTtl * 1000 + SKEW_MS;
      await this.#opts.store.updateSigningKeyState(active.id, 'retired', new Date(until));
    }
    await this.#opts.store.updateSigningKeyState(id, 'active', null);
    this.#opts.events.emit({ type: 'key.oauth.activated', outcome: 'success', keyId: id, retiredKeyId: active?.id });
  }

  async #create(state: SigningKeyRecord['state']): Promise<string> {
    const { algorithm, kek, store, keyTtl } = this.#opts;
    const now = this.#now();
    const kid = randomBytes(16).toString('base64url');
    const privateKey = generate(algorithm);
    const publicJwk: JWK = { ...createPublicKey(privateKey).export({ format: 'jwk' }), kid, alg: algorithm, use: 'sig' };
    await store.putSigningKey({
      id: kid,
      kind: KIND,
      state,
      publicData: JSON.stringify(publicJwk),
      privateKeyEnc: kek.seal(kid, privateKey.export({ type: 'pkcs8', format: 'der' })),
      trustAnchors: '',
      notAfter: new Date(now.getTime() + keyTtl * 1000),
      createdAt: now,
      publishUntil: null,
    });
    this.#opts.events.emit({ type: 'key.oauth.generated', outcome: 'success', keyId: kid, state });
    return kid;
  }
}
