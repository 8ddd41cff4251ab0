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
 * Table rows as pg returns them with its default type parsers (timestamptz -> Date, json and
 * jsonb -> parsed value, bigint -> string, bytea -> Buffer) and their conversion to store records.
 *
 * @example
 *   toEntry((await pool.query('SELECT * FROM registration_entries WHERE id = $1', [id])).rows[0])
 */

export interface SigningKeyRow {
  id: string;
  kind: SigningKeyRecord['kind'];
  state: SigningKeyRecord['state'];
  public_data: string;
  private_key_enc: string;
  trust_anchors: string;
  not_after: Date;
  created_at: Date;
  publish_until: Date | null;
}

export interface EntryRow {
  id: string;
  spiffe_id: string;
  selectors: string[];
  x509_svid_ttl: number;
  jwt_svid_ttl: number;
  metadata: Record<string, string>;
  created_at: Date;
}

export interface JoinTokenRow {
  id: string;
  secret_hash: string;
  entry_id: string;
  expires_at: Date;
  used_at: Date | null;
  created_at: Date;
}

export interface AdminTokenRow {
  id: string;
  secret_hash: string;
  created_at: Date;
}

export interface FederatedBundleRow {
  trust_domain: string;
  bundle: string;
  source: string;
  refreshed_at: Date;
}

export interface UserRow {
  id: string;
  username: string;
  display_name: string;
  password_hash: string;
  failed_logins: number;
  locked_until: Date | null;
  disabled: boolean;
  created_at: Date;
}

export interface MandateRow {
  id: string;
  principal_issuer: string;
  principal_subject: string;
  principal_name: string;
  agent: string;
  scopes: string[];
  resources: string[];
  constraints: Record<string, unknown>;
  max_depth: number;
  origin: MandateRecord['origin'];
  client_id: string | null;
  created_at: Date;
  expires_at: Date;
  status: MandateRecord['status'];
  revoked_at: Date | null;
  revoked_by: string | null;
}

export interface RevocationRow {
  /** bigserial: a string from pg; a revocation seq stays far below 2^53. */
  seq: string;
  kind: RevocationRecord['kind'];
  id: string;
  expires_at: Date;
  revoked_at: Date;
}

export interface OAuthClientRow {
  client_id: string;
  metadata: Record<string, unknown>;
  secret_hash: string | null;
  created_at: Date;
}

export interface EphemeralRow {
  kind: string;
  key: string;
  value: unknown;
  expires_at: Date;
  used_at: Date | null;
}

export interface RefreshTokenRow {
  token_hash: string;
  family_id: string;
  client_id: string;
  principal_issuer: string;
  principal_subject: string;
  principal_name: string;
  scopes: string[];
  resources: string[];
  dpop_jkt: string | null;
  expires_at: Date;
  created_at: Date;
  used_at: Date | null;
}

export interface AuditRow {
  /** bigint: a string from pg; an audit index stays far below 2^53. */
  idx: string;
  event: string;
  leaf_hash: Buffer;
  time: Date;
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
  /** bigint, as idx. */
  size: string;
  root_hash: Buffer;
  note: string;
  created_at: Date;
}

export interface VaultSecretInfoRow {
  owner_kind: string;
  owner_issuer: string;
  owner: string;
  name: string;
  fingerprint: string;
  created_at: Date;
  updated_at: Date;
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
  notAfter: r.not_after,
  createdAt: r.created_at,
  publishUntil: r.publish_until,
});

export const toEntry = (r: EntryRow): RegistrationEntry => ({
  id: r.id,
  spiffeId: r.spiffe_id,
  selectors: r.selectors,
  x509SvidTtl: r.x509_svid_ttl,
  jwtSvidTtl: r.jwt_svid_ttl,
  metadata: r.metadata,
  createdAt: r.created_at,
});

export const toJoinToken = (r: JoinTokenRow): JoinTokenRecord => ({
  id: r.id,
  secretHash: r.secret_hash,
  entryId: r.entry_id,
  expiresAt: r.expires_at,
  usedAt: r.used_at,
  createdAt: r.created_at,
});

export const toAdminToken = (r: AdminTokenRow): AdminTokenRecord => ({
  id: r.id,
  secretHash: r.secret_hash,
  createdAt: r.created_at,
});

export const toFederatedBundle = (r: FederatedBundleRow): FederatedBundleRecord => ({
  trustDomain: r.trust_domain,
  bundle: r.bundle,
  source: r.source,
  refreshedAt: r.refreshed_at,
});

export const toUser = (r: UserRow): UserRecord => ({
  id: r.id,
  username: r.username,
  displayName: r.display_name,
  passwordHash: r.password_hash,
  failedLogins: r.failed_logins,
  lockedUntil: r.locked_until,
  disabled: r.disabled,
  createdAt: r.created_at,
});

export const toMandate = (r: MandateRow): MandateRecord => ({
  id: r.id,
  principal: { issuer: r.principal_issuer, subject: r.principal_subject, name: r.principal_name },
  agent: r.agent,
  scopes: r.scopes,
  resources: r.resources,
  constraints: r.constraints,
  maxDepth: r.max_depth,
  origin: r.origin,
  clientId: r.client_id,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  status: r.status,
  revokedAt: r.revoked_at,
  revokedBy: r.revoked_by,
});

export const toRevocation = (r: RevocationRow): RevocationRecord => ({
  seq: Number(r.seq),
  kind: r.kind,
  id: r.id,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
});

export const toOAuthClient = (r: OAuthClientRow): OAuthClientRecord => ({
  clientId: r.client_id,
  metadata: r.metadata,
  secretHash: r.secret_hash,
  createdAt: r.created_at,
});

export const toEphemeral = (r: EphemeralRow): EphemeralRecord => ({
  kind: r.kind,
  key: r.key,
  value: r.value,
  expiresAt: r.expires_at,
  usedAt: r.used_at,
});

export const toRefreshToken = (r: RefreshTokenRow): RefreshTokenRecord => ({
  tokenHash: r.token_hash,
  familyId: r.family_id,
  clientId: r.client_id,
  principal: { issuer: r.principal_issuer, subject: r.principal_subject, name: r.principal_name },
  scopes: r.scopes,
  resources: r.resources,
  dpopJkt: r.dpop_jkt,
  expiresAt: r.expires_at,
  createdAt: r.created_at,
  usedAt: r.used_at,
});

export const toAuditRecord = (r: AuditRow): AuditRecord => ({
  index: Number(r.idx),
  event: r.event,
  leafHash: r.leaf_hash,
  time: r.time,
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
  size: Number(r.size),
  rootHash: r.root_hash,
  note: r.note,
  createdAt: r.created_at,
});

export const toVaultSecretInfo = (r: VaultSecretInfoRow): VaultSecretInfo => ({
  owner: ownerOf(r.owner_kind, r.owner_issuer, r.owner),
  name: r.name,
  fingerprint: r.fingerprint,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export const toVaultSecret = (r: VaultSecretRow): VaultSecretRecord => ({ ...toVaultSecretInfo(r), valueEnc: r.value_enc });
