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
  /**
   * x509-ca and jwt: the identity authority's keys. oauth: the delegation authority's token-signing
   * keys. audit: the audit log's checkpoint-signing key (publicData: the C2SP verifier key).
   */
  kind: 'x509-ca' | 'jwt' | 'oauth' | 'audit';
  /**
   * prepared: published in the bundle, not yet used to sign.
   * active: signs new SVIDs (at most one per kind).
   * retired: no longer signs, still published until `publishUntil`.
   */
  state: 'prepared' | 'active' | 'retired';
  /** x509-ca: PEM chain, CA certificate first (then its issuers, if imported). jwt, oauth: public JWK as JSON. */
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

/** A person in the built-in directory. Their principal is (this deployment's issuer, `id`). */
export interface UserRecord {
  /** Stable, opaque; becomes the principal's `sub`. */
  id: string;
  /** Unique sign-in name, stored lower-case. */
  username: string;
  displayName: string;
  /** Self-describing password hash (`$scrypt$...`); never the password. */
  passwordHash: string;
  /** Consecutive failed sign-ins since the last success. */
  failedLogins: number;
  /** Sign-in is refused until this time (lockout after repeated failures). */
  lockedUntil: Date | null;
  disabled: boolean;
  createdAt: Date;
}

/** Who a mandate is for: an identity provider's issuer and its subject. */
export interface PrincipalRef {
  issuer: string;
  subject: string;
  /** Display name at the time of the grant (for pages and audit; never used to authorize). */
  name: string;
}

/** A principal's standing grant to an agent. */
export interface MandateRecord {
  id: string;
  principal: PrincipalRef;
  /** The agent's SPIFFE ID, or a pattern ending in `/*` that matches every ID below that path. */
  agent: string;
  scopes: string[];
  /** Resource indicators (RFC 8707): the tool servers the agent may reach under this mandate. */
  resources: string[];
  /** Free-form conditions handed to policy (e.g. `{ "repository": "acme/api" }`). */
  constraints: Record<string, unknown>;
  /** How many further delegation hops (sub-agents) are allowed below the agent: 0 = none. */
  maxDepth: number;
  origin: 'consent' | 'admin';
  /** The OAuth client through which consent was given (consent origin only). */
  clientId: string | null;
  createdAt: Date;
  expiresAt: Date;
  status: 'active' | 'revoked';
  revokedAt: Date | null;
  /** `admin` or the principal's subject. */
  revokedBy: string | null;
}

/** Query over mandates; every field that is set must match. Newest first. */
export interface MandateFilter {
  principalIssuer?: string;
  principalSubject?: string;
  /** Exact match on the stored agent (ID or pattern). */
  agent?: string;
  status?: 'active' | 'revoked';
  /** Only mandates with `expiresAt` after this time. */
  liveAt?: Date;
  /** Only mandates with `expiresAt` at or before this time. */
  expiredBy?: Date;
  limit?: number;
}

/**
 * One entry of the revocation list that verifiers follow. `seq` grows with every revocation, so a
 * verifier that has seen up to `seq` asks only for what came after (the revocation epoch).
 */
export interface RevocationRecord {
  seq: number;
  /** mandate: every token minted from it is dead. token: one access token by `jti`. */
  kind: 'mandate' | 'token';
  id: string;
  /** After this time the entry is moot (the mandate or token has expired anyway) and may be pruned. */
  expiresAt: Date;
  revokedAt: Date;
}

/** A client registered dynamically (RFC 7591). Clients from the configuration are not stored. */
export interface OAuthClientRecord {
  clientId: string;
  /** The client metadata as accepted (RFC 7591 §2 names). */
  metadata: Record<string, unknown>;
  /** SHA-256 of the client secret, hex, for confidential clients. */
  secretHash: string | null;
  createdAt: Date;
}

/**
 * A short-lived, single-use record: authorization codes, browser sessions, pending authorization
 * requests, pending sign-ins at an external provider. `kind` namespaces the keys.
 */
export interface EphemeralRecord {
  kind: string;
  /** For secrets (codes, session ids) the caller stores a hash, never the secret. */
  key: string;
  value: unknown;
  expiresAt: Date;
  usedAt: Date | null;
}

/** A rotating refresh token (authorization-code clients). One family per grant. */
export interface RefreshTokenRecord {
  /** SHA-256 of the token, hex. */
  tokenHash: string;
  /** Every token rotated from the same grant shares the family; reuse of a spent one revokes the family. */
  familyId: string;
  clientId: string;
  principal: PrincipalRef;
  scopes: string[];
  resources: string[];
  /** DPoP key thumbprint the family is bound to (public clients using DPoP), or null. */
  dpopJkt: string | null;
  expiresAt: Date;
  createdAt: Date;
  usedAt: Date | null;
}

/**
 * One entry of the audit log: the event as canonical JSON, its Merkle leaf hash, and the fields
 * queries filter on (copied from the event when appended; the event text is what is hashed).
 */
export interface AuditRecord {
  /** Position in the log, from 0, contiguous. */
  index: number;
  /** Canonical JSON of the event (what the leaf hash covers). */
  event: string;
  /** RFC 9162 leaf hash of `event` (32 bytes). */
  leafHash: Uint8Array;
  time: Date;
  type: string;
  agent: string | null;
  principalIssuer: string | null;
  principalSubject: string | null;
  mandateId: string | null;
  tool: string | null;
  decision: string | null;
  traceId: string | null;
}

/** Filters of an audit query; every field that is set must match. Oldest first. */
export interface AuditQuery {
  agent?: string;
  principalIssuer?: string;
  principalSubject?: string;
  mandateId?: string;
  tool?: string;
  decision?: string;
  traceId?: string;
  type?: string;
  /** time >= from */
  from?: Date;
  /** time < to */
  to?: Date;
  /** index >= afterIndex + 1 */
  afterIndex?: number;
  limit?: number;
}

/** A signed statement of the audit log's size and root (a C2SP signed note). */
export interface AuditCheckpointRecord {
  size: number;
  rootHash: Uint8Array;
  /** The signed note text. */
  note: string;
  createdAt: Date;
}

/**
 * Whose a vault secret is: a tool server's (one for every caller) or a principal's own. A principal is
 * named by identity provider and subject, as everywhere else.
 */
export type VaultOwner =
  | { kind: 'server'; server: string }
  | { kind: 'principal'; issuer: string; subject: string };

/** What may be shown of a vault secret: never the value. */
export interface VaultSecretInfo {
  owner: VaultOwner;
  name: string;
  /** A short keyed digest of the value (changes when the value does; reveals nothing of it). */
  fingerprint: string;
  createdAt: Date;
  updatedAt: Date;
}

/** A vault secret as stored: the value sealed with the KEK, bound to its owner and name. */
export interface VaultSecretRecord extends VaultSecretInfo {
  /** Encrypted value envelope (opaque to the store). */
  valueEnc: string;
}

/** Which vault secrets to list: one owner's, those of one kind of owner, or all (`{}`). */
export type VaultSecretFilter =
  | { owner: VaultOwner }
  | { kind: VaultOwner['kind'] }
  | Record<string, never>;

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

  // built-in directory
  /** ERR_CONFLICT when the username is taken. */
  createUser(user: UserRecord): Promise<void>;
  getUser(id: string): Promise<UserRecord | null>;
  findUserByUsername(username: string): Promise<UserRecord | null>;
  listUsers(): Promise<UserRecord[]>;
  /** Returns false when no such user existed. */
  updateUser(id: string, change: Partial<Pick<UserRecord, 'displayName' | 'passwordHash' | 'disabled'>>): Promise<boolean>;
  /**
   * Atomically counts one failed sign-in; when the count reaches `maxFailures` the user is locked
   * until `lockUntil` and the count starts again. Returns the updated user (null if unknown).
   */
  recordLoginFailure(id: string, maxFailures: number, lockUntil: Date): Promise<UserRecord | null>;
  /** Resets the failure count and any lock. */
  recordLoginSuccess(id: string): Promise<void>;
  deleteUser(id: string): Promise<boolean>;

  // mandates
  createMandate(mandate: MandateRecord): Promise<void>;
  getMandate(id: string): Promise<MandateRecord | null>;
  listMandates(filter: MandateFilter): Promise<MandateRecord[]>;
  /**
   * Revokes an active mandate and appends it to the revocation list, in one transaction. Returns
   * the mandate as it now is (an already revoked one unchanged) and whether this call revoked it —
   * of concurrent revokers exactly one gets `revoked: true` — or null when unknown.
   */
  revokeMandate(id: string, by: string, at: Date): Promise<{ mandate: MandateRecord; revoked: boolean } | null>;

  // revocation list
  /** Appends a token revocation (idempotent per jti) and returns its seq. */
  revokeToken(jti: string, expiresAt: Date, at: Date): Promise<number>;
  /** Entries with seq > afterSeq, oldest first, at most `limit`. */
  listRevocations(afterSeq: number, limit: number): Promise<RevocationRecord[]>;
  /** Deletes entries whose expiresAt is before `before`; returns how many. */
  pruneRevocations(before: Date): Promise<number>;

  // dynamically registered OAuth clients
  createOAuthClient(client: OAuthClientRecord): Promise<void>;
  getOAuthClient(clientId: string): Promise<OAuthClientRecord | null>;
  deleteOAuthClient(clientId: string): Promise<boolean>;

  // short-lived records: codes, sessions, pending requests
  /** Inserts or replaces. */
  putEphemeral(record: Omit<EphemeralRecord, 'usedAt'>): Promise<void>;
  /** Null when unknown or expired at `now`. */
  getEphemeral(kind: string, key: string, now: Date): Promise<EphemeralRecord | null>;
  /**
   * Atomically marks an unexpired, unused record as used and returns it with consumed=true; a
   * record already used comes back with consumed=false (so reuse can be detected); null when
   * unknown or expired. Two concurrent callers can never both consume it.
   */
  consumeEphemeral(kind: string, key: string, now: Date): Promise<{ record: EphemeralRecord; consumed: boolean } | null>;
  deleteEphemeral(kind: string, key: string): Promise<boolean>;
  /** Deletes records expired before `before`; returns how many. */
  pruneEphemeral(before: Date): Promise<number>;

  // refresh tokens
  createRefreshToken(token: RefreshTokenRecord): Promise<void>;
  /** As consumeEphemeral: atomic single use, reuse reported with consumed=false, null when unknown. */
  consumeRefreshToken(tokenHash: string, now: Date): Promise<{ token: RefreshTokenRecord; consumed: boolean } | null>;
  /** The token without using it (revocation checks its owner first); null when unknown or expired at `now`. */
  getRefreshToken(tokenHash: string, now: Date): Promise<RefreshTokenRecord | null>;
  /** Deletes every token of the family; returns how many. */
  revokeRefreshFamily(familyId: string): Promise<number>;

  // audit log
  /**
   * Appends records in one transaction, durable when the promise resolves (fsync'd commit). Their
   * indices must continue the log exactly (the first equals the current size, then +1 each), else
   * ERR_CONFLICT and nothing is written.
   */
  appendAuditRecords(records: readonly AuditRecord[]): Promise<void>;
  /** Number of records in the log. */
  auditSize(): Promise<number>;
  /** Records with from <= index < to, by index. */
  getAuditRecords(from: number, to: number): Promise<AuditRecord[]>;
  /** Leaf hashes with from <= index < to, by index. */
  getAuditLeafHashes(from: number, to: number): Promise<Uint8Array[]>;
  queryAuditRecords(query: AuditQuery): Promise<AuditRecord[]>;
  /** ERR_CONFLICT when a checkpoint of that size exists with another root. */
  putAuditCheckpoint(checkpoint: AuditCheckpointRecord): Promise<void>;
  latestAuditCheckpoint(): Promise<AuditCheckpointRecord | null>;
  getAuditCheckpoint(size: number): Promise<AuditCheckpointRecord | null>;
  /** Checkpoints with fromSize <= size <= toSize, by size. */
  listAuditCheckpoints(fromSize: number, toSize: number): Promise<AuditCheckpointRecord[]>;

  // vault secrets
  /**
   * Inserts or replaces the secret of that owner and name; a replaced secret keeps its createdAt.
   * Returns what is now stored (without the value).
   */
  putVaultSecret(secret: VaultSecretRecord): Promise<VaultSecretInfo>;
  getVaultSecret(owner: VaultOwner, name: string): Promise<VaultSecretRecord | null>;
  /** Sorted by owner kind, issuer, owner and name. */
  listVaultSecrets(filter: VaultSecretFilter): Promise<VaultSecretInfo[]>;
  /** Returns false when no such secret existed. */
  deleteVaultSecret(owner: VaultOwner, name: string): Promise<boolean>;

  /** Schema version after migrations (the highest applied migration number). */
  schemaVersion(): Promise<number>;
  close(): Promise<void>;
}
