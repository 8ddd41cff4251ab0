import type { Migration } from '../migration.ts';

/**
 * PostgreSQL schema history. Names are unqualified so they land in the store's schema (the
 * connection's search_path). Structured JSON (selectors, metadata) is jsonb; documents handed to
 * us as text (bundles, JWKs) stay text so they come back byte for byte. Identifiers use the "C"
 * collation so listings sort bytewise, exactly as in SQLite, whatever the server's locale.
 *
 * From version 2 on, JSON columns are json rather than jsonb: they hold values from outside
 * (client metadata, consent constraints, pending requests) that are stored and read back whole,
 * never searched, and jsonb refuses strings JSON can carry (`\u0000`, an unpaired surrogate)
 * that SQLite accepts, which would make the two stores answer the same input differently.
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
  id              text COLLATE "C" PRIMARY KEY,
  kind            text        NOT NULL CHECK (kind IN ('x509-ca', 'jwt')),
  state           text        NOT NULL CHECK (state IN ('prepared', 'active', 'retired')),
  public_data     text        NOT NULL,
  private_key_enc text        NOT NULL,
  trust_anchors   text        NOT NULL,
  not_after       timestamptz NOT NULL,
  created_at      timestamptz NOT NULL,
  publish_until   timestamptz
);
CREATE INDEX signing_keys_by_kind ON signing_keys (kind, created_at, id);

CREATE TABLE bundle_sequence (
  id       smallint PRIMARY KEY CHECK (id = 1),
  sequence bigint   NOT NULL
);
INSERT INTO bundle_sequence (id, sequence) VALUES (1, 0);

CREATE TABLE registration_entries (
  id            text COLLATE "C" PRIMARY KEY,
  spiffe_id     text COLLATE "C" NOT NULL,
  selectors     jsonb       NOT NULL,
  x509_svid_ttl integer     NOT NULL,
  jwt_svid_ttl  integer     NOT NULL,
  metadata      jsonb       NOT NULL,
  created_at    timestamptz NOT NULL
);
CREATE INDEX registration_entries_by_spiffe_id ON registration_entries (spiffe_id, created_at, id);
CREATE INDEX registration_entries_by_created_at ON registration_entries (created_at, id);

CREATE TABLE join_tokens (
  id          text COLLATE "C" PRIMARY KEY,
  secret_hash text        NOT NULL UNIQUE,
  entry_id    text COLLATE "C" NOT NULL REFERENCES registration_entries (id) ON DELETE CASCADE,
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz,
  created_at  timestamptz NOT NULL
);
CREATE INDEX join_tokens_by_entry_id ON join_tokens (entry_id);

CREATE TABLE admin_tokens (
  id          text COLLATE "C" PRIMARY KEY,
  secret_hash text        NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL
);

CREATE TABLE federated_bundles (
  trust_domain text COLLATE "C" PRIMARY KEY,
  bundle       text        NOT NULL,
  source       text        NOT NULL,
  refreshed_at timestamptz NOT NULL
);
`,
  },
  {
    version: 2,
    name: 'delegation_authority',
    sql: `
ALTER TABLE signing_keys
  DROP CONSTRAINT signing_keys_kind_check,
  ADD CONSTRAINT signing_keys_kind_check CHECK (kind IN ('x509-ca', 'jwt', 'oauth'));

CREATE TABLE users (
  id            text COLLATE "C" PRIMARY KEY,
  username      text COLLATE "C" NOT NULL UNIQUE,
  display_name  text        NOT NULL,
  password_hash text        NOT NULL,
  failed_logins integer     NOT NULL CHECK (failed_logins >= 0),
  locked_until  timestamptz,
  disabled      boolean     NOT NULL,
  created_at    timestamptz NOT NULL
);

CREATE TABLE mandates (
  id                text COLLATE "C" PRIMARY KEY,
  principal_issuer  text COLLATE "C" NOT NULL,
  principal_subject text COLLATE "C" NOT NULL,
  principal_name    text        NOT NULL,
  agent             text COLLATE "C" NOT NULL,
  scopes            json        NOT NULL,
  resources         json        NOT NULL,
  constraints       json        NOT NULL,
  max_depth         integer     NOT NULL CHECK (max_depth >= 0),
  origin            text        NOT NULL CHECK (origin IN ('consent', 'admin')),
  client_id         text COLLATE "C",
  created_at        timestamptz NOT NULL,
  expires_at        timestamptz NOT NULL,
  status            text        NOT NULL CHECK (status IN ('active', 'revoked')),
  revoked_at        timestamptz,
  revoked_by        text
);
CREATE INDEX mandates_by_principal ON mandates (principal_issuer, principal_subject, created_at, id);
CREATE INDEX mandates_by_agent ON mandates (agent, created_at, id);
CREATE INDEX mandates_by_created_at ON mandates (created_at, id);

CREATE TABLE revocations (
  seq        bigserial   PRIMARY KEY,
  kind       text        NOT NULL CHECK (kind IN ('mandate', 'token')),
  id         text COLLATE "C" NOT NULL,
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz NOT NULL,
  UNIQUE (kind, id)
);
CREATE INDEX revocations_by_expires_at ON revocations (expires_at);

CREATE TABLE oauth_clients (
  client_id   text COLLATE "C" PRIMARY KEY,
  metadata    json        NOT NULL,
  secret_hash text,
  created_at  timestamptz NOT NULL
);

CREATE TABLE ephemeral_records (
  kind       text COLLATE "C" NOT NULL,
  key        text COLLATE "C" NOT NULL,
  value      json        NOT NULL,
  expires_at timestamptz NOT NULL,
  used_at    timestamptz,
  PRIMARY KEY (kind, key)
);
CREATE INDEX ephemeral_records_by_expires_at ON ephemeral_records (expires_at);

CREATE TABLE refresh_tokens (
  token_hash        text COLLATE "C" PRIMARY KEY,
  family_id         text COLLATE "C" NOT NULL,
  client_id         text COLLATE "C" NOT NULL,
  principal_issuer  text COLLATE "C" NOT NULL,
  principal_subject text COLLATE "C" NOT NULL,
  principal_name    text        NOT NULL,
  scopes            json        NOT NULL,
  resources         json        NOT NULL,
  dpop_jkt          text,
  expires_at        timestamptz NOT NULL,
  created_at        timestamptz NOT NULL,
  used_at           timestamptz
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
`,
  },
  {
    version: 3,
    name: 'audit_log',
    // Each filter's index ends in idx, so a filtered query reads its matches oldest first without
    // sorting and stops at its LIMIT.
    sql: `
CREATE TABLE audit_log (
  idx               bigint      PRIMARY KEY CHECK (idx >= 0),
  event             text        NOT NULL,
  leaf_hash         bytea       NOT NULL CHECK (octet_length(leaf_hash) = 32),
  time              timestamptz NOT NULL,
  type              text COLLATE "C" NOT NULL,
  agent             text COLLATE "C",
  principal_issuer  text COLLATE "C",
  principal_subject text COLLATE "C",
  mandate_id        text COLLATE "C",
  tool              text COLLATE "C",
  decision          text COLLATE "C",
  trace_id          text COLLATE "C"
);
CREATE INDEX audit_log_by_agent ON audit_log (agent, idx);
CREATE INDEX audit_log_by_principal ON audit_log (principal_issuer, principal_subject, idx);
CREATE INDEX audit_log_by_mandate_id ON audit_log (mandate_id, idx);
CREATE INDEX audit_log_by_tool ON audit_log (tool, idx);
CREATE INDEX audit_log_by_decision ON audit_log (decision, idx);
CREATE INDEX audit_log_by_trace_id ON audit_log (trace_id, idx);
CREATE INDEX audit_log_by_type ON audit_log (type, idx);
CREATE INDEX audit_log_by_time ON audit_log (time, idx);

CREATE TABLE audit_checkpoints (
  size       bigint      PRIMARY KEY CHECK (size >= 0),
  root_hash  bytea       NOT NULL CHECK (octet_length(root_hash) = 32),
  note       text        NOT NULL,
  created_at timestamptz NOT NULL
);
`,
  },
  {
    version: 4,
    name: 'audit_signing_key',
    sql: `
ALTER TABLE signing_keys
  DROP CONSTRAINT signing_keys_kind_check,
  ADD CONSTRAINT signing_keys_kind_check CHECK (kind IN ('x509-ca', 'jwt', 'oauth', 'audit'));
`,
  },
  {
    version: 5,
    name: 'audit_search',
    // SQLite's version 5 moves some audit_log indexes into a side table written in batches; the
    // indexes here stay as they are. Recorded so both stores number their schemas alike.
    sql: '-- nothing to change in PostgreSQL',
  },
  {
    version: 6,
    name: 'vault',
    // As in SQLite: owner_kind 'server' with owner = the tool server's name and owner_issuer '', or
    // 'principal' with owner_issuer = the identity provider's issuer and owner = the subject.
    sql: `
CREATE TABLE vault_secrets (
  owner_kind   text COLLATE "C" NOT NULL CHECK (owner_kind IN ('principal', 'server')),
  owner_issuer text COLLATE "C" NOT NULL,
  owner        text COLLATE "C" NOT NULL CHECK (owner <> ''),
  name         text COLLATE "C" NOT NULL CHECK (name <> ''),
  value_enc    text        NOT NULL,
  fingerprint  text        NOT NULL,
  created_at   timestamptz NOT NULL,
  updated_at   timestamptz NOT NULL,
  PRIMARY KEY (owner_kind, owner_issuer, owner, name),
  CHECK ((owner_kind = 'server') = (owner_issuer = ''))
);
`,
  },
];
