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
];
