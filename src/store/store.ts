/**
 * The one persistence interface of Mandate. Two implementations: SQLite (embedded, `mandate up`)
 * and PostgreSQL (production). Both run versioned migrations when opened, and both pass the same
 * test suite (store.case.ts).
 *
 * Private key material arrives here already encrypted (see identity/keys/kek.ts); the store never
 * sees a plaintext key.
 */

/** A trust anchor or signing key of this deployment. */
export interface SigningKeyRecord {
  /** Stable id: for JWT keys this is the JWK `kid`; for CAs a random id. */
  id: string;
  kind: 'x509-ca' | 'jwt';
  /**
   * prepared: published in the bundle, not yet used to sign.
   * active: signs new SVIDs (at most one per kind).
   * retired: no longer signs, still published until `publishUntil`.
   */
  state: 'prepared' | 'active' | 'retired';
  /** x509-ca: PEM chain, CA certificate first (then its issuers, if imported). jwt: public JWK as JSON. */
  publicData: string;
  /** Encrypted private key envelope (opaque to the store). */
  privateKeyEnc: string;
  /** x509-ca: the certificate(s) to publish as trust anchors (PEM). jwt: unused (empty string). */
  trustAnchors: string;
  notAfter: Date;
  createdAt: Date;
  /** Published in bundles until this time (set when retired). */
  publishUntil: Date | null;
}

export interface RegistrationEntry {
  id: string;
  spiffeId: string;
  /** `type:value` strings, e.g. `k8s:ns:payments`; all must be present in an attestation to match. */
  selectors: string[];
  /** Lifetime of issued X.509-SVIDs, seconds. */
  x509SvidTtl: number;
  /** Lifetime of issued JWT-SVIDs, seconds. */
  jwtSvidTtl: number;
  /** Free-form admin metadata (owner, description, ...). */
  metadata: Record<string, string>;
  createdAt: Date;
}

export interface JoinTokenRecord {
  id: string;
  /** SHA-256 of the token secret, hex. The secret itself is never stored. */
  secretHash: string;
  /** The registration entry a workload attesting with this token receives. */
  entryId: string;
  expiresAt: Date;
  usedAt: Date | null;
  createdAt: Date;
}

export interface AdminTokenRecord {
  id: string;
  /** SHA-256 of the token, hex. */
  secretHash: string;
  createdAt: Date;
}

/** A foreign trust domain's bundle, as last fetched or loaded. Never merged with another domain. */
export interface FederatedBundleRecord {
  trustDomain: string;
  /** The SPIFFE bundle document (JSON text). */
  bundle: string;
  /** Where it came from: `file:/path` or `https://...`. */
  source: string;
  refreshedAt: Date;
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres';

  // signing keys (CA certificates and JWT-SVID keys)
  putSigningKey(key: SigningKeyRecord): Promise<void>;
  /** Updates state and publishUntil of an existing key. */
  updateSigningKeyState(id: string, state: SigningKeyRecord['state'], publishUntil: Date | null): Promise<void>;
  listSigningKeys(kind: SigningKeyRecord['kind']): Promise<SigningKeyRecord[]>;
  deleteSigningKey(id: string): Promise<void>;

  /** Bundle sequence of this trust domain: incremented every time the published set changes. */
  getBundleSequence(): Promise<number>;
  bumpBundleSequence(): Promise<number>;

  // registration entries
  createEntry(entry: RegistrationEntry): Promise<void>;
  getEntry(id: string): Promise<RegistrationEntry | null>;
  listEntries(): Promise<RegistrationEntry[]>;
  listEntriesBySpiffeId(spiffeId: string): Promise<RegistrationEntry[]>;
  /** Returns false when no such entry existed. */
  deleteEntry(id: string): Promise<boolean>;

  // join tokens
  createJoinToken(token: JoinTokenRecord): Promise<void>;
  /**
   * Atomically marks an unused token as used and returns it; returns null when the hash is
   * unknown. A token already used is returned with its earlier `usedAt` left unchanged, so the
   * caller can tell "used" from "unknown". Two concurrent callers can never both consume it.
   */
  consumeJoinToken(secretHash: string, now: Date): Promise<{ token: JoinTokenRecord; consumed: boolean } | null>;

  // admin tokens
  createAdminToken(token: AdminTokenRecord): Promise<void>;
  findAdminToken(secretHash: string): Promise<AdminTokenRecord | null>;
  countAdminTokens(): Promise<number>;
  deleteAdminTokens(): Promise<void>;

  // federation
  putFederatedBundle(bundle: FederatedBundleRecord): Promise<void>;
  getFederatedBundle(trustDomain: string): Promise<FederatedBundleRecord | null>;
  listFederatedBundles(): Promise<FederatedBundleRecord[]>;

  /** Schema version after migrations (the highest applied migration number). */
  schemaVersion(): Promise<number>;
  close(): Promise<void>;
}
