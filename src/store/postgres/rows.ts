import type {
  AdminTokenRecord,
  FederatedBundleRecord,
  JoinTokenRecord,
  RegistrationEntry,
  SigningKeyRecord,
} from '../store.ts';

/*
 * Table rows as pg returns them with its default type parsers (timestamptz -> Date, jsonb ->
 * parsed value) and their conversion to store records.
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
