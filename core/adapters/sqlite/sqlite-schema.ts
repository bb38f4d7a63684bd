import type * as Database from './sqlite-driver.js';

/**
 * The index store's tables in its SQLite file. Every database of a connection shares them, each
 * row keyed by `(db, coll, ...)`. Files written by earlier versions open in place (see
 * `SCHEMA_VERSION`); `test/unit/sqlite-schema.test.ts` keeps it so.
 */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS heads (
  db TEXT NOT NULL, coll TEXT NOT NULL, id TEXT NOT NULL,
  ov INTEGER NOT NULL, cv INTEGER NOT NULL, deleted INTEGER NOT NULL,
  created_at TEXT NOT NULL, updated_at TEXT NOT NULL, deleted_at TEXT,
  meta TEXT NOT NULL, body TEXT NOT NULL, hash TEXT,
  PRIMARY KEY (db, coll, id)
);
CREATE INDEX IF NOT EXISTS heads_by_updated ON heads (db, coll, updated_at, id);
CREATE INDEX IF NOT EXISTS heads_by_created ON heads (db, coll, created_at, id);

CREATE TABLE IF NOT EXISTS versions (
  db TEXT NOT NULL, coll TEXT NOT NULL, id TEXT NOT NULL, ov INTEGER NOT NULL,
  cv INTEGER NOT NULL, op TEXT NOT NULL, at TEXT NOT NULL,
  actor TEXT NOT NULL, actor_id TEXT NOT NULL, actor_type TEXT, reason TEXT,
  deleted INTEGER NOT NULL, size INTEGER NOT NULL, body TEXT, archived INTEGER NOT NULL DEFAULT 0,
  meta TEXT NOT NULL, hash TEXT NOT NULL,
  PRIMARY KEY (db, coll, id, ov)
);
CREATE INDEX IF NOT EXISTS versions_by_actor ON versions (db, coll, actor_id, at, id, ov);
CREATE INDEX IF NOT EXISTS versions_by_time ON versions (db, coll, id, at, ov);
CREATE INDEX IF NOT EXISTS versions_by_cv ON versions (db, coll, id, cv);
-- Every column of a history page, so a page is one range of this index and never visits the
-- table's rows: those are wide (indexed values, the document until archival) and a deep
-- history's rows spread over many pages, which made a page deep in the past cost more.
CREATE INDEX IF NOT EXISTS versions_history ON versions (db, coll, id, ov, cv, op, at, actor, reason, deleted, size, archived);
-- Only the few versions still waiting for archival, so finding them never scans a long history.
CREATE INDEX IF NOT EXISTS versions_unarchived ON versions (db, coll, id, ov) WHERE archived = 0;

CREATE TABLE IF NOT EXISTS collection_versions (
  db TEXT NOT NULL, coll TEXT NOT NULL, cv INTEGER NOT NULL, PRIMARY KEY (db, coll)
);
CREATE TABLE IF NOT EXISTS counters (
  db TEXT NOT NULL, coll TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
  PRIMARY KEY (db, coll, name)
);
CREATE TABLE IF NOT EXISTS counter_windows (
  db TEXT NOT NULL, coll TEXT NOT NULL, win TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
  PRIMARY KEY (db, coll, win, name)
);
CREATE TABLE IF NOT EXISTS sync_outbox (
  db TEXT NOT NULL, coll TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY (db, coll, id)
);
CREATE TABLE IF NOT EXISTS unique_claims (
  db TEXT NOT NULL, coll TEXT NOT NULL, key TEXT NOT NULL, id TEXT NOT NULL,
  PRIMARY KEY (db, coll, key)
);
CREATE INDEX IF NOT EXISTS unique_claims_by_record ON unique_claims (db, coll, id);
CREATE TABLE IF NOT EXISTS pending_blobs (
  db TEXT NOT NULL, coll TEXT NOT NULL, id TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL,
  content_type TEXT NOT NULL, body BLOB NOT NULL,
  PRIMARY KEY (db, coll, bucket, key)
);
CREATE INDEX IF NOT EXISTS pending_blobs_by_record ON pending_blobs (db, coll, id);
CREATE TABLE IF NOT EXISTS sync_dead_letters (
  db TEXT NOT NULL, coll TEXT NOT NULL, id TEXT NOT NULL, reason TEXT NOT NULL, failed_at TEXT NOT NULL,
  PRIMARY KEY (db, coll, id)
);
-- Upload intents of writes (cleaning = 0) and cleanup marks (cleaning = 1) on content object
-- keys; see core/engine/content-uploads.ts. Holds only writes in flight and what they left.
CREATE TABLE IF NOT EXISTS content_uploads (
  db TEXT NOT NULL, coll TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL, token TEXT NOT NULL,
  id TEXT NOT NULL, cleaning INTEGER NOT NULL, at INTEGER NOT NULL,
  PRIMARY KEY (db, coll, bucket, key, token)
);
CREATE INDEX IF NOT EXISTS content_uploads_by_age ON content_uploads (db, at);
CREATE TABLE IF NOT EXISTS locks (
  db TEXT NOT NULL, coll TEXT NOT NULL, key TEXT NOT NULL, owner TEXT NOT NULL, expires_at INTEGER NOT NULL,
  PRIMARY KEY (db, coll, key)
);
`;

/**
 * Bumped whenever the tables above change shape; a file of another version is refused, except the
 * versions in `UPGRADABLE_FROM`, which `SCHEMA` upgrades in place by creating what is new. A new index
 * alone does not bump it: `SCHEMA` creates missing indexes on every open and SQLite keeps every index
 * up to date whichever version writes, so older code can still open the file (a rollback stays
 * possible; its archive sweep, not naming `versions_unarchived`, may read `versions_history`: slower).
 * `versions_history` came that way: opening a file written before it builds it once, holding the write
 * lock meanwhile (other processes' writes wait, and fail after their busy timeout if the file is huge).
 */
const SCHEMA_VERSION = 6;
/** Version 5 lacks only `content_uploads`, version 4 also `counter_windows`: additive tables. */
const UPGRADABLE_FROM: readonly number[] = [4, 5];

/** Creates the schema, or checks and upgrades the one the file holds (see `SCHEMA_VERSION`). */
export function openSchema(db: Database.Database): void {
  // Another process may be creating the schema at the same moment; IMMEDIATE serialises that.
  db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    const written = db.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'heads'`).pluck().get() as number;
    if (written > 0 && version !== SCHEMA_VERSION && !UPGRADABLE_FROM.includes(version)) {
      const advice = 'export it with the previous version or start from a new file';
      throw new Error(`the file holds Xronox index schema ${version}, but this version needs schema ${SCHEMA_VERSION}; ${advice}`);
    }
    db.exec(SCHEMA);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}
