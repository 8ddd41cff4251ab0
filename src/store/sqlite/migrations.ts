import type { Migration } from '../migration.ts';

/**
 * SQLite schema history. Dates are integer milliseconds since the epoch; JSON values are TEXT.
 * STRICT tables make SQLite reject a value of the wrong type instead of silently storing it.
 *
 * @example
 *   MIGRATIONS.at(-1)?.version // the schema version a fresh database ends up at
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial',
    sql: `
CREATE TABLE signing_keys (
  id              TEXT    PRIMARY KEY,
  kind            TEXT    NOT NULL CHECK (kind IN ('x509-ca', 'jwt')),
  state           TEXT    NOT NULL CHECK (state IN ('prepared', 'active', 'retired')),
  public_data     TEXT    NOT NULL,
  private_key_enc TEXT    NOT NULL,
  trust_anchors   TEXT    NOT NULL,
  not_after       INTEGER NOT NULL,
  created_at      INTEGER NOT NULL,
  publish_until   INTEGER
) STRICT;
CREATE INDEX signing_keys_by_kind ON signing_keys (kind, created_at, id);

CREATE TABLE bundle_sequence (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  sequence INTEGER NOT NULL
) STRICT;
INSERT INTO bundle_sequence (id, sequence) VALUES (1, 0);

CREATE TABLE registration_entries (
  id            TEXT    PRIMARY KEY,
  spiffe_id     TEXT    NOT NULL,
  selectors     TEXT    NOT NULL,
  x509_svid_ttl INTEGER NOT NULL,
  jwt_svid_ttl  INTEGER NOT NULL,
  metadata      TEXT    NOT NULL,
  created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX registration_entries_by_spiffe_id ON registration_entries (spiffe_id, created_at, id);
CREATE INDEX registration_entries_by_created_at ON registration_entries (created_at, id);

CREATE TABLE join_tokens (
  id          TEXT    PRIMARY KEY,
  secret_hash TEXT    NOT NULL UNIQUE,
  entry_id    TEXT    NOT NULL REFERENCES registration_entries (id) ON DELETE CASCADE,
  expires_at  INTEGER NOT NULL,
  used_at     INTEGER,
  created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX join_tokens_by_entry_id ON join_tokens (entry_id);

CREATE TABLE admin_tokens (
  id          TEXT    PRIMARY KEY,
  secret_hash TEXT    NOT NULL UNIQUE,
  created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE federated_bundles (
  trust_domain TEXT    PRIMARY KEY,
  bundle       TEXT    NOT NULL,
  source       TEXT    NOT NULL,
  refreshed_at INTEGER NOT NULL
) STRICT;
`,
  },
  {
    version: 2,
    name: 'delegation_authority',
    // SQLite cannot alter a CHECK constraint: signing_keys is rebuilt with 'oauth' allowed and its
    // rows copied over (nothing references it, so no foreign key is involved).
    sql: `
CREATE TABLE signing_keys_v2 (
  id              TEXT    PRIMARY KEY,
  kind            TEXT    NOT NULL CHECK (kind IN ('x509-ca', 'jwt', 'oauth')),
  state           TEXT    NOT NULL CHECK (state IN ('prepared', 'active', 'retired')),
  public_data     TEXT    NOT NULL,
  private_key_enc TEXT    NOT NULL,
  trust_anchors   TEXT    NOT NULL,
  not_after       INTEGER NOT NULL,
  created_at      INTEGER NOT NULL,
  publish_until   INTEGER
) STRICT;
INSERT INTO signing_keys_v2
  (id, kind, state, public_data, private_key_enc, trust_anchors, not_after, created_at, publish_until)
  SELECT id, kind, state, public_data, private_key_enc, trust_anchors, not_after, created_at, publish_until
  FROM signing_keys;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_v2 RENAME TO signing_keys;
CREATE INDEX signing_keys_by_kind ON signing_keys (kind, created_at, id);

CREATE TABLE users (
  id            TEXT    PRIMARY KEY,
  username      TEXT    NOT NULL UNIQUE,
  display_name  TEXT    NOT NULL,
  password_hash TEXT    NOT NULL,
  failed_logins INTEGER NOT NULL CHECK (failed_logins >= 0),
  locked_until  INTEGER,
  disabled      INTEGER NOT NULL CHECK (disabled IN (0, 1)),
  created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE mandates (
  id                TEXT    PRIMARY KEY,
  principal_issuer  TEXT    NOT NULL,
  principal_subject TEXT    NOT NULL,
  principal_name    TEXT    NOT NULL,
  agent             TEXT    NOT NULL,
  scopes            TEXT    NOT NULL,
  resources         TEXT    NOT NULL,
  constraints       TEXT    NOT NULL,
  max_depth         INTEGER NOT NULL CHECK (max_depth >= 0),
  origin            TEXT    NOT NULL CHECK (origin IN ('consent', 'admin')),
  client_id         TEXT,
  created_at        INTEGER NOT NULL,
  expires_at        INTEGER NOT NULL,
  status            TEXT    NOT NULL CHECK (status IN ('active', 'revoked')),
  revoked_at        INTEGER,
  revoked_by        TEXT
) STRICT;
CREATE INDEX mandates_by_principal ON mandates (principal_issuer, principal_subject, created_at, id);
CREATE INDEX mandates_by_agent ON mandates (agent, created_at, id);
CREATE INDEX mandates_by_created_at ON mandates (created_at, id);

-- AUTOINCREMENT: a seq is never handed out twice, not even after the newest entries are pruned.
CREATE TABLE revocations (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  kind       TEXT    NOT NULL CHECK (kind IN ('mandate', 'token')),
  id         TEXT    NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked_at INTEGER NOT NULL,
  UNIQUE (kind, id)
) STRICT;
CREATE INDEX revocations_by_expires_at ON revocations (expires_at);

CREATE TABLE oauth_clients (
  client_id   TEXT    PRIMARY KEY,
  metadata    TEXT    NOT NULL,
  secret_hash TEXT,
  created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE ephemeral_records (
  kind       TEXT    NOT NULL,
  key        TEXT    NOT NULL,
  value      TEXT    NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at    INTEGER,
  PRIMARY KEY (kind, key)
) STRICT;
CREATE INDEX ephemeral_records_by_expires_at ON ephemeral_records (expires_at);

CREATE TABLE refresh_tokens (
  token_hash        TEXT    PRIMARY KEY,
  family_id         TEXT    NOT NULL,
  client_id         TEXT    NOT NULL,
  principal_issuer  TEXT    NOT NULL,
  principal_subject TEXT    NOT NULL,
  principal_name    TEXT    NOT NULL,
  scopes            TEXT    NOT NULL,
  resources         TEXT    NOT NULL,
  dpop_jkt          TEXT,
  expires_at        INTEGER NOT NULL,
  created_at        INTEGER NOT NULL,
  used_at           INTEGER
) STRICT;
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
`,
  },
  {
    version: 3,
    name: 'audit_log',
    // idx is the rowid (INTEGER PRIMARY KEY), so every index below also orders by idx within a key:
    // a filtered query reads its matches oldest first without sorting.
    sql: `
CREATE TABLE audit_log (
  idx               INTEGER PRIMARY KEY CHECK (idx >= 0),
  event             TEXT    NOT NULL,
  leaf_hash         BLOB    NOT NULL CHECK (length(leaf_hash) = 32),
  time              INTEGER NOT NULL,
  type              TEXT    NOT NULL,
  agent             TEXT,
  principal_issuer  TEXT,
  principal_subject TEXT,
  mandate_id        TEXT,
  tool              TEXT,
  decision          TEXT,
  trace_id          TEXT
) STRICT;
CREATE INDEX audit_log_by_agent ON audit_log (agent);
CREATE INDEX audit_log_by_principal ON audit_log (principal_issuer, principal_subject);
CREATE INDEX audit_log_by_mandate_id ON audit_log (mandate_id);
CREATE INDEX audit_log_by_tool ON audit_log (tool);
CREATE INDEX audit_log_by_decision ON audit_log (decision);
CREATE INDEX audit_log_by_trace_id ON audit_log (trace_id);
CREATE INDEX audit_log_by_type ON audit_log (type);
CREATE INDEX audit_log_by_time ON audit_log (time);

CREATE TABLE audit_checkpoints (
  size       INTEGER PRIMARY KEY CHECK (size >= 0),
  root_hash  BLOB    NOT NULL CHECK (length(root_hash) = 32),
  note       TEXT    NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;
`,
  },
  {
    version: 4,
    name: 'audit_signing_key',
    // The audit log's checkpoint-signing key lives with the other signing keys (sealed with the KEK,
    // shared by every replica); the table is rebuilt as in version 2 to widen the CHECK.
    sql: `
CREATE TABLE signing_keys_v4 (
  id              TEXT    PRIMARY KEY,
  kind            TEXT    NOT NULL CHECK (kind IN ('x509-ca', 'jwt', 'oauth', 'audit')),
  state           TEXT    NOT NULL CHECK (state IN ('prepared', 'active', 'retired')),
  public_data     TEXT    NOT NULL,
  private_key_enc TEXT    NOT NULL,
  trust_anchors   TEXT    NOT NULL,
  not_after       INTEGER NOT NULL,
  created_at      INTEGER NOT NULL,
  publish_until   INTEGER
) STRICT;
INSERT INTO signing_keys_v4
  (id, kind, state, public_data, private_key_enc, trust_anchors, not_after, created_at, publish_until)
  SELECT id, kind, state, public_data, private_key_enc, trust_anchors, not_after, created_at, publish_until
  FROM signing_keys;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_v4 RENAME TO signing_keys;
CREATE INDEX signing_keys_by_kind ON signing_keys (kind, created_at, id);
`,
  },
  {
    version: 5,
    name: 'audit_search',
    // The audit_log indexes whose keys are spread out (agent, principal subject, mandate id, trace
    // id) dirtied about one page per event in every durable commit. Their entries move to
    // audit_search, which the store writes after the commit in large batches; records with
    // idx >= audit_search_state.indexed_upto are not in it yet, and queries read those from the log.
    // Entries are grouped by bucket (idx >> 14, 16,384 records), so a batch's entries all land in
    // the last bucket's small part of the tree, however long the log grows; a query seeks each
    // bucket. field: 1 agent, 2 principal subject, 3 mandate id, 4 trace id. Keys with few values
    // (type, tool, decision, principal issuer) and time stay indexed on the log. The existing records
    // are indexed here, in key order (appending to the tree is much faster than inserting at random).
    sql: `
DROP INDEX audit_log_by_agent;
DROP INDEX audit_log_by_principal;
DROP INDEX audit_log_by_mandate_id;
DROP INDEX audit_log_by_trace_id;
CREATE INDEX audit_log_by_principal_issuer ON audit_log (principal_issuer);

CREATE TABLE audit_search (
  bucket INTEGER NOT NULL,
  field  INTEGER NOT NULL CHECK (field BETWEEN 1 AND 4),
  value  TEXT    NOT NULL,
  idx    INTEGER NOT NULL,
  PRIMARY KEY (bucket, field, value, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE audit_search_state (
  id           INTEGER PRIMARY KEY CHECK (id = 1),
  indexed_upto INTEGER NOT NULL CHECK (indexed_upto >= 0)
) STRICT;

INSERT INTO audit_search (bucket, field, value, idx)
  SELECT idx >> 14, 1, agent, idx FROM audit_log WHERE agent IS NOT NULL
  UNION ALL SELECT idx >> 14, 2, principal_subject, idx FROM audit_log WHERE principal_subject IS NOT NULL
  UNION ALL SELECT idx >> 14, 3, mandate_id, idx FROM audit_log WHERE mandate_id IS NOT NULL
  UNION ALL SELECT idx >> 14, 4, trace_id, idx FROM audit_log WHERE trace_id IS NOT NULL
  ORDER BY 1, 2, 3, 4;
INSERT INTO audit_search_state (id, indexed_upto) SELECT 1, coalesce(max(idx) + 1, 0) FROM audit_log;
`,
  },
  {
    version: 6,
    name: 'vault',
    // Secrets the gateway sends upstream, sealed with the KEK (value_enc is opaque here). The owner
    // is a tool server (owner_kind 'server', owner = its name, owner_issuer '') or a principal
    // (owner_kind 'principal', owner_issuer = the identity provider's issuer, owner = the subject).
    sql: `
CREATE TABLE vault_secrets (
  owner_kind   TEXT    NOT NULL CHECK (owner_kind IN ('principal', 'server')),
  owner_issuer TEXT    NOT NULL,
  owner        TEXT    NOT NULL CHECK (owner <> ''),
  name         TEXT    NOT NULL CHECK (name <> ''),
  value_enc    TEXT    NOT NULL,
  fingerprint  TEXT    NOT NULL,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  PRIMARY KEY (owner_kind, owner_issuer, owner, name),
  CHECK ((owner_kind = 'server') = (owner_issuer = ''))
) STRICT, WITHOUT ROWID;
`,
  },
];
