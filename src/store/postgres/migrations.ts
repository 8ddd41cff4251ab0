import type { Migration } from '../migration.ts';

/**
 * PostgreSQL schema history. Names are unqualified so they land in the store's schema (the
 * connection's search_path). Structured JSON (selectors, metadata) is jsonb; documents handed to
 * us as text (bundles, JWKs) stay text so they come back byte for byte. Identifiers use the "C"
 * collation so listings sort bytewise, exactly as in SQLite, whatever the server's locale.
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
];
