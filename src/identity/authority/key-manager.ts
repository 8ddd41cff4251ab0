/**
 * The signing keys of this trust domain — X.509 CAs and JWT-SVID keys — and their rotation.
 *
 * Each key goes prepared -> active -> retired -> removed. A prepared key is published in the bundle
 * before it signs anything, and a retired key stays published until the last SVID it signed has
 * expired, so no validation fails during a rotation. All state lives in the store (private keys
 * sealed with the KEK), so every replica converges on the same keys by reloading.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { MandateError } from '../../errors.ts';
import type { EventSink } from '../../observability/events.ts';
import type { SigningKeyRecord, Store } from '../../store/store.ts';
import type { Bundle } from '../bundle/bundle.ts';
import { signingCa, type SigningCa } from '../ca/authority-key.ts';
import { generateRootCa } from '../ca/generate.ts';
import type { ImportedCa } from '../ca/import.ts';
import type { CaKeyType } from '../ca/key-algorithms.ts';
import type { JwtSvidAlg } from '../jwt-svid/algorithms.ts';
import type { KeyEncryptionKey } from '../keys/kek.ts';
import { certificatesToPem, parseCertificates } from '../x509/pem.ts';

export interface KeyManagerOptions {
  store: Store;
  kek: KeyEncryptionKey;
  trustDomain: string;
  ca: { keyType: CaKeyType; ttlSeconds: number; commonName?: string; imported?: ImportedCa };
  jwt: { algorithm: JwtSvidAlg; keyTtlSeconds: number; maxSvidTtlSeconds: number };
  refreshHintSeconds: number;
  /** Fraction of a key's life left when its successor is prepared; activation at half of that. */
  prepareAhead: number;
  events: EventSink;
  now?: () => Date;
}

export interface JwtSigningKey {
  kid: string;
  alg: JwtSvidAlg;
  privateKey: KeyObject;
  publicJwk: JWK;
}

/** Extra allowance past a key's last token, for verifiers' clock skew. */
const SKEW_MS = 60_000;

function jwtKeyPair(alg: JwtSvidAlg): { privateKey: KeyObject; publicKey: KeyObject } {
  if (alg.startsWith('ES')) {
    const curve = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[alg as 'ES256'];
    return generateKeyPairSync('ec', { namedCurve: curve });
  }
  return generateKeyPairSync('rsa', { modulusLength: 2048 });
}

export class KeyManager {
  readonly #opts: KeyManagerOptions;
  readonly #now: () => Date;
  #cas = new Map<string, { record: SigningKeyRecord; ca: SigningCa }>();
  #jwtKeys = new Map<string, { record: SigningKeyRecord; key: JwtSigningKey }>();
  #sequence = 0;
  #bundle: Bundle | null = null;

  constructor(opts: KeyManagerOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? (() => new Date());
  }

  get trustDomain(): string {
    return this.#opts.trustDomain;
  }

  /** Loads keys from the store and creates the first CA and JWT key when there are none. */
  async init(): Promise<void> {
    await this.reload();
    const imported = this.#opts.ca.imported;
    if (!this.#active('x509-ca')) await this.#createCa('active', imported);
    else if (imported && !this.#knowsCertificate(imported.certificate)) {
      // A CA import added to the configuration after the first start: publish it now; an admin
      // activates it (`mandate key rotate x509-ca`) once verifiers have fetched the new bundle.
      await this.#createCa('prepared', imported);
      await this.#opts.store.bumpBundleSequence();
      this.#opts.events.emit({ type: 'key.x509-ca.import_pending', outcome: 'success', reason: 'the configured CA is published but not active; run `mandate key rotate x509-ca` to activate it' });
    }
    if (!this.#active('jwt')) await this.#createJwtKey('active');
    await this.reload();
  }

  #knowsCertificate(cert: X509Certificate): boolean {
    return [...this.#cas.values()].some(({ ca }) => ca.certificate.fingerprint256 === cert.fingerprint256);
  }

  /** Re-reads every key from the store (another replica may have rotated). */
  async reload(): Promise<void> {
    const { store, kek } = this.#opts;
    const cas = new Map<string, { record: SigningKeyRecord; ca: SigningCa }>();
    for (const record of await store.listSigningKeys('x509-ca')) {
      const existing = this.#cas.get(record.id);
      const privateKey = existing?.ca.privateKey ?? createPrivateKey({ key: kek.open(record.id, record.privateKeyEnc), format: 'der', type: 'pkcs8' });
      const certs = parseCertificates(record.publicData);
      const anchors = parseCertificates(record.trustAnchors);
      const isAnchor = (c: X509Certificate) => anchors.some((a) => a.fingerprint256 === c.fingerprint256);
      const ca = existing?.ca ?? signingCa(record.id, certs[0] as X509Certificate, certs.filter((c) => !isAnchor(c)), anchors, privateKey);
      cas.set(record.id, { record, ca });
    }
    const jwtKeys = new Map<string, { record: SigningKeyRecord; key: JwtSigningKey }>();
    for (const record of await store.listSigningKeys('jwt')) {
      const existing = this.#jwtKeys.get(record.id);
      const publicJwk = JSON.parse(record.publicData) as JWK;
      const privateKey = existing?.key.privateKey ?? createPrivateKey({ key: kek.open(record.id, record.privateKeyEnc), format: 'der', type: 'pkcs8' });
      jwtKeys.set(record.id, { record, key: { kid: record.id, alg: publicJwk.alg as JwtSvidAlg, privateKey, publicJwk } });
    }
    this.#cas = cas;
    this.#jwtKeys = jwtKeys;
    this.#sequence = await store.getBundleSequence();
    this.#bundle = null;
  }

  /** The CA that signs new X.509-SVIDs. Fails closed when there is none. */
  activeCa(): SigningCa {
    const entry = this.#active('x509-ca');
    if (!entry) throw new MandateError('ERR_CA_UNAVAILABLE', 'no active certificate authority');
    return (this.#cas.get(entry.id) as { ca: SigningCa }).ca;
  }

  activeJwtKey(): JwtSigningKey {
    const entry = this.#active('jwt');
    if (!entry) throw new MandateError('ERR_CA_UNAVAILABLE', 'no active JWT-SVID signing key');
    return (this.#jwtKeys.get(entry.id) as { key: JwtSigningKey }).key;
  }

  /** Every key with its state, for the admin API. */
  keys(): SigningKeyRecord[] {
    return [...[...this.#cas.values()].map((c) => c.record), ...[...this.#jwtKeys.values()].map((k) => k.record)];
  }

  /** This trust domain's bundle: every published CA's anchors and every published JWT key. */
  bundle(): Bundle {
    if (this.#bundle) return this.#bundle;
    const seen = new Set<string>();
    const x509Authorities: X509Certificate[] = [];
    for (const { ca } of this.#cas.values()) {
      for (const anchor of ca.trustAnchors) {
        if (seen.has(anchor.fingerprint256)) continue;
        seen.add(anchor.fingerprint256);
        x509Authorities.push(anchor);
      }
    }
    const jwtAuthorities = new Map<string, JWK>();
    for (const { key } of this.#jwtKeys.values()) jwtAuthorities.set(key.kid, key.publicJwk);
    this.#bundle = { trustDomain: this.#opts.trustDomain, x509Authorities, jwtAuthorities, sequence: this.#sequence, refreshHint: this.#opts.refreshHintSeconds };
    return this.#bundle;
  }

  /**
   * Advances rotation: prepares a successor when the active key has `prepareAhead` of its life
   * left, activates it at half of that, removes retired keys once nothing they signed is valid.
   * Returns true when the published bundle changed.
   */
  async tick(): Promise<boolean> {
    await this.reload();
    const now = this.#now().getTime();
    let changed = false;
    for (const kind of ['x509-ca', 'jwt'] as const) {
      const active = this.#active(kind);
      const prepared = this.#byState(kind, 'prepared');
      if (active && !(kind === 'x509-ca' && this.#opts.ca.imported)) {
        const life = active.notAfter.getTime() - active.createdAt.getTime();
        const left = active.notAfter.getTime() - now;
        if (!prepared && left <= this.#opts.prepareAhead * life) {
          await this.#prepare(kind);
          changed = true;
        } else if (prepared && left <= (this.#opts.prepareAhead / 2) * life) {
          await this.#activate(kind, prepared.id);
          changed = true;
        }
      }
      for (const retired of this.#all(kind).filter((r) => r.state === 'retired')) {
        if (retired.publishUntil && retired.publishUntil.getTime() <= now) {
          await this.#opts.store.deleteSigningKey(retired.id);
          this.#opts.events.emit({ type: `key.${kind}.removed`, outcome: 'success', keyId: retired.id });
          changed = true;
        }
      }
    }
    if (changed) {
      await this.#opts.store.bumpBundleSequence();
      await this.reload();
    }
    return changed;
  }

  /**
   * Manual rotation, in two steps as the automatic one: the first call prepares and publishes a
   * successor; the next call (after verifiers have fetched the new bundle) activates it.
   */
  async rotate(kind: 'x509-ca' | 'jwt', opts: { imported?: ImportedCa } = {}): Promise<{ phase: 'prepared' | 'activated'; keyId: string }> {
    await this.reload();
    const prepared = this.#byState(kind, 'prepared');
    let result: { phase: 'prepared' | 'activated'; keyId: string };
    if (prepared && !opts.imported) {
      await this.#activate(kind, prepared.id);
      result = { phase: 'activated', keyId: prepared.id };
    } else {
      if (prepared) await this.#opts.store.deleteSigningKey(prepared.id);
      const id = kind === 'jwt' ? await this.#createJwtKey('prepared') : await this.#createCa('prepared', opts.imported);
      result = { phase: 'prepared', keyId: id };
    }
    await this.#opts.store.bumpBundleSequence();
    await this.reload();
    return result;
  }

  #all(kind: 'x509-ca' | 'jwt'): SigningKeyRecord[] {
    return kind === 'jwt' ? [...this.#jwtKeys.values()].map((k) => k.record) : [...this.#cas.values()].map((c) => c.record);
  }

  #byState(kind: 'x509-ca' | 'jwt', state: SigningKeyRecord['state']): SigningKeyRecord | undefined {
    return this.#all(kind).find((r) => r.state === state);
  }

  #active(kind: 'x509-ca' | 'jwt'): SigningKeyRecord | undefined {
    return this.#byState(kind, 'active');
  }

  async #prepare(kind: 'x509-ca' | 'jwt'): Promise<void> {
    if (kind === 'jwt') await this.#createJwtKey('prepared');
    else await this.#createCa('prepared');
  }

  async #activate(kind: 'x509-ca' | 'jwt', id: string): Promise<void> {
    const now = this.#now().getTime();
    const active = this.#active(kind);
    if (active) {
      // A retired CA stays published for as long as any leaf it signed can be valid (leaves never outlive their CA);
      // a retired JWT key for the longest JWT-SVID lifetime.
      const until = kind === 'x509-ca' ? active.notAfter.getTime() : now + this.#opts.jwt.maxSvidTtlSeconds * 1000;
      await this.#opts.store.updateSigningKeyState(active.id, 'retired', new Date(until + SKEW_MS));
    }
    await this.#opts.store.updateSigningKeyState(id, 'active', null);
    this.#opts.events.emit({ type: `key.${kind}.activated`, outcome: 'success', keyId: id, retiredKeyId: active?.id });
  }

  async #createCa(state: SigningKeyRecord['state'], imported?: ImportedCa): Promise<string> {
    const { trustDomain, ca: cfg, kek, store } = this.#opts;
    const now = this.#now();
    const id = randomBytes(12).toString('base64url');
    let certificate: X509Certificate;
    let chain: X509Certificate[];
    let anchors: X509Certificate[];
    let privateKey: KeyObject;
    if (imported) {
      ({ certificate, chain, privateKey } = imported);
      anchors = imported.trustAnchors;
    } else {
      ({ certificate, privateKey } = await generateRootCa({ trustDomain, keyType: cfg.keyType, ttlSeconds: cfg.ttlSeconds, commonName: cfg.commonName, now }));
      chain = [];
      anchors = [certificate];
    }
    const publicChain = [certificate, ...chain.filter((c) => c.fingerprint256 !== certificate.fingerprint256)];
    await store.putSigningKey({
      id,
      kind: 'x509-ca',
      state,
      publicData: certificatesToPem(publicChain),
      privateKeyEnc: kek.seal(id, privateKey.export({ type: 'pkcs8', format: 'der' })),
      trustAnchors: certificatesToPem(anchors),
      notAfter: new Date(certificate.validTo),
      createdAt: now,
      publishUntil: null,
    });
    if (state === 'active') await store.bumpBundleSequence();
    this.#opts.events.emit({ type: `key.x509-ca.${imported ? 'imported' : 'generated'}`, outcome: 'success', keyId: id, state, notAfter: certificate.validTo });
    return id;
  }

  async #createJwtKey(state: SigningKeyRecord['state']): Promise<string> {
    const { jwt, kek, store } = this.#opts;
    const now = this.#now();
    const kid = randomBytes(16).toString('base64url');
    const { privateKey } = jwtKeyPair(jwt.algorithm);
    const publicJwk: JWK = { ...createPublicKey(privateKey).export({ format: 'jwk' }), kid, alg: jwt.algorithm, use: 'jwt-svid' };
    await store.putSigningKey({
      id: kid,
      kind: 'jwt',
      state,
      publicData: JSON.stringify(publicJwk),
      privateKeyEnc: kek.seal(kid, privateKey.export({ type: 'pkcs8', format: 'der' })),
      trustAnchors: '',
      notAfter: new Date(now.getTime() + jwt.keyTtlSeconds * 1000),
      createdAt: now,
      publishUntil: null,
    });
    if (state === 'active') await store.bumpBundleSequence();
    this.#opts.events.emit({ type: 'key.jwt.generated', outcome: 'success', keyId: kid, state });
    return kid;
  }
}
