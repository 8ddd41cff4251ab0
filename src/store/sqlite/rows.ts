import type {
  AdminTokenRecord,
  FederatedBundleRecord,
  JoinTokenRecord,
  RegistrationEntry,
  SigningKeyRecord,
} from '../store.ts';

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

export const toSigningKey = (r: SigningKeyRow): SigningKeyRecord => ({
  id: r.id,
  kind: r.kind,
  state: r.state,
  publicData: r.public_data,
  privateKeyEnc: r.private_key_enc,
  trustAnchors: r.trust_anchors,
  notAfter: new Date(r.not_after),
  createdAt: new Date(r.created_at),
  publishUntil: r.publish_until === null ? null : new Date(r.publish_until),
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
  usedAt: r.used_at === null ? null : new Date(r.used_at),
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
