import type {
  AdminTokenRecord,
  AuditCheckpointRecord,
  AuditRecord,
  EphemeralRecord,
  FederatedBundleRecord,
  JoinTokenRecord,
  MandateRecord,
  OAuthClientRecord,
  RefreshTokenRecord,
  RegistrationEntry,
  RevocationRecord,
  SigningKeyRecord,
  UserRecord,
  VaultSecretInfo,
  VaultSecretRecord,
} from '../store.ts';
import { ownerOf } from '../vault-values.ts';

/*
 * Table rows as better-sqlite3 returns them (snake_case columns, dates as epoch milliseconds,
 * JSON as text) and their conversion to store records.
 *
 * @example
 *   toEntry(db.prepare('SELECT * FROM registration_entries WHERE id = ?').get(id) as EntryRow)
 */

export interface SigningKeyRow {
  id: string;
  kind: SigningKeyRecord['kind'];
  state: SigningKeyRecord['state'];
  public_data: string;
  private_key_enc: string;
  trust_anchors: string;
  not_after: number;
  created_at: number;
  publish_until: number | null;
}

export interface EntryRow {
  id: string;
  spiffe_id: string;
  selectors: string;
  x509_svid_ttl: number;
  jwt_svid_ttl: number;
  metadata: string;
  created_at: number;
}

export interface JoinTokenRow {
  id: string;
  secret_hash: string;
  entry_id: string;
  expires_at: number;
  used_at: number | null;
  created_at: number;
}

export interface AdminTokenRow {
  id: string;
  secret_hash: string;
  created_at: number;
}

export interface FederatedBundleRow {
  trust_domain: string;
  bundle: string;
  source: string;
  refreshed_at: number;
}

export interface UserRow {
  id: string;
  username: string;
  display_name: string;
  password_hash: string;
  failed_logins: number;
  locked_until: number | null;
  /** 0 or 1: SQLite has no boolean type. */
  disabled: number;
  created_at: number;
}

export interface MandateRow {
  id: string;
  principal_issuer: string;
  principal_subject: string;
  principal_name: string;
  agent: string;
  scopes: string;
  resources: string;
  constraints: string;
  max_depth: number;
  origin: MandateRecord['origin'];
  client_id: string | null;
  created_at: number;
  expires_at: number;
  status: MandateRecord['status'];
  revoked_at: number | null;
  revoked_by: string | null;
}

export interface RevocationRow {
  seq: number;
  kind: RevocationRecord['kind'];
  id: string;
  expires_at: number;
  revoked_at: number;
}

export interface OAuthClientRow {
  client_id: string;
  metadata: string;
  secret_hash: string | null;
  created_at: number;
}

export interface EphemeralRow {
  kind: string;
  key: string;
  value: string;
  expires_at: number;
  used_at: number | null;
}

export interface RefreshTokenRow {
  token_hash: string;
  family_id: string;
  client_id: string;
  principal_issuer: string;
  principal_subject: string;
  principal_name: string;
  scopes: string;
  resources: string;
  dpop_jkt: string | null;
  expires_at: number;
  created_at: number;
  used_at: number | null;
}

export interface AuditRow {
  idx: number;
  event: string;
  leaf_hash: Buffer;
  time: number;
  type: string;
  agent: string | null;
  principal_issuer: string | null;
  principal_subject: string | null;
  mandate_id: string | null;
  tool: string | null;
  decision: string | null;
  trace_id: string | null;
}

export interface AuditCheckpointRow {
  size: number;
  root_hash: Buffer;
  note: string;
  created_at: number;
}

const dateOrNull = (ms: number | null): Date | null => (ms === null ? null : new Date(ms));

export interface VaultSecretInfoRow {
  owner_kind: string;
  owner_issuer: string;
  owner: string;
  name: string;
  fingerprint: string;
  created_at: number;
  updated_at: number;
}

export interface VaultSecretRow extends VaultSecretInfoRow {
  value_enc: string;
}

export const toSigningKey = (r: SigningKeyRow): SigningKeyRecord => ({
  id: r.id,
  kind: r.kind,
  state: r.state,
  publicData: r.public_data,
  privateKeyEnc: r.private_key_enc,
  trustAnchors: r.trust_anchors,
  notAfter: new Date(r.not_after),
  createdAt: new Date(r.created_at),
  publishUntil: dateOrNull(r.publish_until),
});

export const toEntry = (r: EntryRow): RegistrationEntry => ({
  id: r.id,
  spiffeId: r.spiffe_id,
  selectors: JSON.parse(r.selectors) as string[],
  x509SvidTtl: r.x509_svid_ttl,
  jwtSvidTtl: r.jwt_svid_ttl,
  metadata: JSON.parse(r.metadata) as Record<string, string>,
  createdAt: new Date(r.created_at),
});

export const toJoinToken = (r: JoinTokenRow): JoinTokenRecord => ({
  id: r.id,
  secretHash: r.secret_hash,
  entryId: r.entry_id,
  expiresAt: new Date(r.expires_at),
  usedAt: dateOrNull(r.used_at),
  createdAt: new Date(r.created_at),
});

export const toAdminToken = (r: AdminTokenRow): AdminTokenRecord => ({
  id: r.id,
  secretHash: r.secret_hash,
  createdAt: new Date(r.created_at),
});

export const toFederatedBundle = (r: FederatedBundleRow): FederatedBundleRecord => ({
  trustDomain: r.trust_domain,
  bundle: r.bundle,
  source: r.source,
  refreshedAt: new Date(r.refreshed_at),
});

export const toUser = (r: UserRow): UserRecord => ({
  id: r.id,
  username: r.username,
  displayName: r.display_name,
  passwordHash: r.password_hash,
  failedLogins: r.failed_logins,
  lockedUntil: dateOrNull(r.locked_until),
  disabled: r.disabled === 1,
  createdAt: new Date(r.created_at),
});

export const toMandate = (r: MandateRow): MandateRecord => ({
  id: r.id,
  principal: { issuer: r.principal_issuer, subject: r.principal_subject, name: r.principal_name },
  agent: r.agent,
  scopes: JSON.parse(r.scopes) as string[],
  resources: JSON.parse(r.resources) as string[],
  constraints: JSON.parse(r.constraints) as Record<string, unknown>,
  maxDepth: r.max_depth,
  origin: r.origin,
  clientId: r.client_id,
  createdAt: new Date(r.created_at),
  expiresAt: new Date(r.expires_at),
  status: r.status,
  revokedAt: dateOrNull(r.revoked_at),
  revokedBy: r.revoked_by,
});

export const toRevocation = (r: RevocationRow): RevocationRecord => ({
  seq: r.seq,
  kind: r.kind,
  id: r.id,
  expiresAt: new Date(r.expires_at),
  revokedAt: new Date(r.revoked_at),
});

export const toOAuthClient = (r: OAuthClientRow): OAuthClientRecord => ({
  clientId: r.client_id,
  metadata: JSON.parse(r.metadata) as Record<string, unknown>,
  secretHash: r.secret_hash,
  createdAt: new Date(r.created_at),
});

export const toEphemeral = (r: EphemeralRow): EphemeralRecord => ({
  kind: r.kind,
  key: r.key,
  value: JSON.parse(r.value) as unknown,
  expiresAt: new Date(r.expires_at),
  usedAt: dateOrNull(r.used_at),
});

export const toRefreshToken = (r: RefreshTokenRow): RefreshTokenRecord => ({
  tokenHash: r.token_hash,
  familyId: r.family_id,
  clientId: r.client_id,
  principal: { issuer: r.principal_issuer, subject: r.principal_subject, name: r.principal_name },
  scopes: JSON.parse(r.scopes) as string[],
  resources: JSON.parse(r.resources) as string[],
  dpopJkt: r.dpop_jkt,
  expiresAt: new Date(r.expires_at),
  createdAt: new Date(r.created_at),
  usedAt: dateOrNull(r.used_at),
});

export const toAuditRecord = (r: AuditRow): AuditRecord => ({
  index: r.idx,
  event: r.event,
  leafHash: r.leaf_hash,
  time: new Date(r.time),
  type: r.type,
  agent: r.agent,
  principalIssuer: r.principal_issuer,
  principalSubject: r.principal_subject,
  mandateId: r.mandate_id,
  tool: r.tool,
  decision: r.decision,
  traceId: r.trace_id,
});

export const toAuditCheckpoint = (r: AuditCheckpointRow): AuditCheckpointRecord => ({
  size: r.size,
  rootHash: r.root_hash,
  note: r.note,
  createdAt: new Date(r.created_at),
});

export const toVaultSecretInfo = (r: VaultSecretInfoRow): VaultSecretInfo => ({
  owner: ownerOf(r.owner_kind, r.owner_issuer, r.owner),
  name: r.name,
  fingerprint: r.fingerprint,
  createdAt: new Date(r.created_at),
  updatedAt: new Date(r.updated_at),
});

export const toVaultSecret = (r: VaultSecretRow): VaultSecretRecord => ({ ...toVaultSecretInfo(r), valueEnc: r.value_enc });
