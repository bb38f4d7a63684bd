import type Database from 'better-sqlite3';
import type { Actor, HeadRow, HistoryRow, IndexedValue, PendingBlob, VersionOp, VersionRow } from '../../contracts/index-store.js';

export const HEAD_COLUMNS = 'id, ov, cv, deleted, created_at, updated_at, deleted_at, meta, body, hash';
export const VERSION_COLUMNS = 'id, ov, cv, op, at, actor, reason, deleted, size, body, archived, meta, hash';
/** The columns of `versions_history`, which a history page reads alone. */
const HISTORY_COLUMNS = 'ov, cv, op, at, actor, reason, deleted, size, archived';
/** What a transaction reads of a head. `octet_length` reads the body's size, never the body itself. */
const HEAD_STATE = 'ov, cv, deleted, octet_length(body) = 0 AS offloaded';

/** Rows as the statements return them: SQLite's integers for booleans, JSON text for objects. */
export interface HeadSqlRow {
  id: string; ov: number; cv: number; deleted: number; created_at: string; updated_at: string; deleted_at: string | null;
  meta: string; body: string; hash: string | null;
}
export interface VersionSqlRow {
  id: string; ov: number; cv: number; op: VersionOp; at: string; actor: string; reason: string | null; deleted: number;
  size: number; body: string | null; archived: number; meta: string; hash: string;
}
export type HistorySqlRow = Pick<VersionSqlRow, 'ov' | 'cv' | 'op' | 'at' | 'actor' | 'reason' | 'deleted' | 'size' | 'archived'>;
export interface UploadSqlRow { coll: string; bucket: string; key: string; token: string; id: string; cleaning: number; at: number }
export interface PendingBlobSqlRow { bucket: string; key: string; content_type: string; body: Buffer }

export function toHead(r: HeadSqlRow): HeadRow {
  const meta = JSON.parse(r.meta) as Record<string, IndexedValue>;
  return { id: r.id, ov: r.ov, cv: r.cv, deleted: r.deleted === 1, createdAt: r.created_at, updatedAt: r.updated_at, deletedAt: r.deleted_at, meta, body: r.body, hash: r.hash };
}

export function toHistoryRow(id: string, r: HistorySqlRow): HistoryRow {
  const actor = JSON.parse(r.actor) as Actor;
  return { id, ov: r.ov, cv: r.cv, op: r.op, at: r.at, actor, reason: r.reason, deleted: r.deleted === 1, size: r.size, archived: r.archived === 1 };
}

export function toVersion(r: VersionSqlRow): VersionRow {
  return { ...toHistoryRow(r.id, r), body: r.body, meta: JSON.parse(r.meta) as Record<string, IndexedValue>, hash: r.hash };
}

export function toPendingBlob(r: PendingBlobSqlRow): PendingBlob {
  return { bucket: r.bucket, key: r.key, contentType: r.content_type, body: new Uint8Array(r.body) };
}

/**
 * Every fixed statement of the driver, prepared once per connection; parameters in the order of
 * the key columns, `(db, coll, ...)`. The SQL of reads whose shape varies is built by the driver.
 */
export function prepareStatements(db: Database.Database) {
  const p = (sql: string) => db.prepare(sql);
  /** A statement of one column, whose rows are that column's values. */
  const v = (sql: string) => db.prepare(sql).pluck();
  const byNs = (table: string) => p(`DELETE FROM ${table} WHERE db = ? AND coll = ?`);
  return {
    // ---- reads
    getHead: p(`SELECT ${HEAD_COLUMNS} FROM heads WHERE db = ? AND coll = ? AND id = ?`),
    // The point reads of every getVersion / getAsOf, prepared once (the general range query is
    // built per call).
    versionByOv: p(`SELECT ${VERSION_COLUMNS} FROM versions WHERE db = ? AND coll = ? AND id = ? AND ov = ?`),
    versionAtTime: p(`SELECT ${VERSION_COLUMNS} FROM versions WHERE db = ? AND coll = ? AND id = ? AND at <= ? ORDER BY at DESC, ov DESC LIMIT 1`),
    versionAtCv: p(`SELECT ${VERSION_COLUMNS} FROM versions WHERE db = ? AND coll = ? AND id = ? AND cv <= ? ORDER BY cv DESC LIMIT 1`),
    headState: p(`SELECT ${HEAD_STATE} FROM heads WHERE db = ? AND coll = ? AND id = ?`),
    listHistory: p(
      `SELECT ${HISTORY_COLUMNS} FROM versions INDEXED BY versions_history WHERE db = ? AND coll = ? AND id = ? AND ov < ?
       ORDER BY ov DESC LIMIT ?`,
    ),
    listHeadIds: v('SELECT id FROM heads WHERE db = ? AND coll = ? AND id > ? ORDER BY id LIMIT ?'),
    getClaim: v('SELECT id FROM unique_claims WHERE db = ? AND coll = ? AND key = ?'),
    listClaims: p('SELECT key, id FROM unique_claims WHERE db = ? AND coll = ? AND key > ? ORDER BY key LIMIT ?'),
    getPending: v('SELECT seq FROM sync_outbox WHERE db = ? AND coll = ? AND id = ?'),
    countPending: v('SELECT count(*) AS n FROM sync_outbox WHERE db = ?'),
    pendingDatabases: v('SELECT DISTINCT db FROM sync_outbox ORDER BY db'),
    hasDeadLetter: v('SELECT 1 FROM sync_dead_letters WHERE db = ? AND coll = ? AND id = ?'),
    listDeadLetters: p('SELECT coll AS collection, id, reason, failed_at AS failedAt FROM sync_dead_letters WHERE db = ? ORDER BY failed_at, rowid LIMIT ?'),
    allDeadLetters: p(
      `SELECT d.coll AS collection, d.id, d.reason, d.failed_at AS failedAt, h.cv AS headCv FROM sync_dead_letters d
       LEFT JOIN heads h ON h.db = d.db AND h.coll = d.coll AND h.id = d.id WHERE d.db = ? ORDER BY d.failed_at, d.rowid`,
    ),
    deadLetterDatabases: v('SELECT DISTINCT db FROM sync_dead_letters ORDER BY db'),
    countUnarchived: v('SELECT count(*) AS n FROM versions INDEXED BY versions_unarchived WHERE db = ? AND coll = ? AND id = ? AND archived = 0'),
    countVersionsBelow: v('SELECT count(*) AS n FROM versions WHERE db = ? AND coll = ? AND id = ? AND ov < ?'),
    getCounters: p('SELECT name, value FROM counters WHERE db = ? AND coll = ?'),
    getCounterWindows: p(
      `SELECT win, name, value FROM counter_windows
       WHERE db = ? AND coll = ? AND win >= ? AND win < ? AND win >= ? AND (? IS NULL OR win <= ?)
       ORDER BY win, name`,
    ),
    windowsBelow: v('SELECT DISTINCT win FROM counter_windows WHERE db = ? AND coll = ? AND win >= ? AND win < ?'),
    getCollectionVersion: v('SELECT cv FROM collection_versions WHERE db = ? AND coll = ?'),
    // collection_versions has one small row per namespace ever written: no scan of the data.
    allNamespaces: p('SELECT db AS dbName, coll AS collection, cv FROM collection_versions ORDER BY db, coll'),
    namespacesOf: p('SELECT db AS dbName, coll AS collection, cv FROM collection_versions WHERE db = ? ORDER BY coll'),
    countHeads: v('SELECT count(*) AS n FROM heads WHERE db = ? AND coll = ?'),
    getLock: p('SELECT owner, expires_at FROM locks WHERE db = ? AND coll = ? AND key = ?'),
    uploadsOfKey: p('SELECT coll, bucket, key, token, id, cleaning, at FROM content_uploads WHERE db = ? AND coll = ? AND bucket = ? AND key = ?'),
    staleUploads: p('SELECT coll, bucket, key, token, id, cleaning, at FROM content_uploads WHERE db = ? AND at <= ? ORDER BY at, coll, bucket, key, token LIMIT ?'),
    // Reads only the partial index of unarchived entries, never archived history. Named, because
    // the planner would otherwise prefer versions_history, which also holds every column used
    // here but lists every version of the database.
    listUnarchivedRecords: p(
      `SELECT coll AS collection, id, min(at) AS oldestAt FROM versions INDEXED BY versions_unarchived
       WHERE db = ? AND archived = 0 AND (coll > ? OR (coll = ? AND id > ?))
       GROUP BY coll, id HAVING min(at) <= ? ORDER BY coll, id LIMIT ?`,
    ),
    summariseVersions: p(
      `SELECT g.id, g.n AS count, g.lo AS oldestOv, g.hi AS newestOv,
         (SELECT w.at FROM versions w WHERE w.db = ? AND w.coll = ? AND w.id = g.id AND w.ov = g.lo + 1) AS oldestSupersededAt
       FROM (SELECT id, count(*) AS n, min(ov) AS lo, max(ov) AS hi FROM versions
             WHERE db = ? AND coll = ? AND id > ? GROUP BY id ORDER BY id LIMIT ?) g
       ORDER BY g.id`,
    ),
    // ---- effects
    putHead: p(
      `INSERT INTO heads (db, coll, id, ov, cv, deleted, created_at, updated_at, deleted_at, meta, body, hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (db, coll, id) DO UPDATE SET ov = excluded.ov, cv = excluded.cv, deleted = excluded.deleted,
         created_at = excluded.created_at, updated_at = excluded.updated_at, deleted_at = excluded.deleted_at,
         meta = excluded.meta, body = excluded.body, hash = excluded.hash`,
    ),
    deleteHead: p('DELETE FROM heads WHERE db = ? AND coll = ? AND id = ?'),
    offloadHead: p(`UPDATE heads SET body = '' WHERE db = ? AND coll = ? AND id = ?`),
    insertVersion: p(
      `INSERT INTO versions (db, coll, id, ov, cv, op, at, actor, actor_id, actor_type, reason, deleted, size, body, archived, meta, hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    deleteVersionsBelow: p('DELETE FROM versions WHERE db = ? AND coll = ? AND id = ? AND ov < ?'),
    markArchived: p('UPDATE versions SET archived = 1, body = NULL WHERE db = ? AND coll = ? AND id = ? AND ov = ?'),
    putClaim: p(
      `INSERT INTO unique_claims (db, coll, key, id) VALUES (?, ?, ?, ?)
       ON CONFLICT (db, coll, key) DO UPDATE SET id = excluded.id`,
    ),
    releaseClaims: p('DELETE FROM unique_claims WHERE db = ? AND coll = ? AND id = ?'),
    // An upsert keeps the row, and so its rowid: the outbox's queue order.
    markPending: p(
      `INSERT INTO sync_outbox (db, coll, id, seq) VALUES (?, ?, ?, ?)
       ON CONFLICT (db, coll, id) DO UPDATE SET seq = excluded.seq`,
    ),
    clearPending: p('DELETE FROM sync_outbox WHERE db = ? AND coll = ? AND id = ?'),
    putPendingBlob: p(
      `INSERT INTO pending_blobs (db, coll, id, bucket, key, content_type, body) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (db, coll, bucket, key) DO UPDATE SET id = excluded.id, content_type = excluded.content_type, body = excluded.body`,
    ),
    deletePendingBlob: p('DELETE FROM pending_blobs WHERE db = ? AND coll = ? AND bucket = ? AND key = ?'),
    dropPendingBlobs: p('DELETE FROM pending_blobs WHERE db = ? AND coll = ? AND id = ?'),
    putDeadLetter: p(
      `INSERT INTO sync_dead_letters (db, coll, id, reason, failed_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (db, coll, id) DO UPDATE SET reason = excluded.reason, failed_at = excluded.failed_at`,
    ),
    deleteDeadLetter: p('DELETE FROM sync_dead_letters WHERE db = ? AND coll = ? AND id = ?'),
    addCounter: p(
      `INSERT INTO counters (db, coll, name, value) VALUES (?, ?, ?, ?)
       ON CONFLICT (db, coll, name) DO UPDATE SET value = value + excluded.value`,
    ),
    addWindowCounter: p(
      `INSERT INTO counter_windows (db, coll, win, name, value) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (db, coll, win, name) DO UPDATE SET value = value + excluded.value`,
    ),
    setCounter: p(
      `INSERT INTO counters (db, coll, name, value) VALUES (?, ?, ?, ?)
       ON CONFLICT (db, coll, name) DO UPDATE SET value = excluded.value`,
    ),
    setWindowCounter: p(
      `INSERT INTO counter_windows (db, coll, win, name, value) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (db, coll, win, name) DO UPDATE SET value = excluded.value`,
    ),
    deleteWindow: p('DELETE FROM counter_windows WHERE db = ? AND coll = ? AND win = ?'),
    clearCounters: ['counters', 'counter_windows'].map(byNs),
    setCollectionVersion: p(
      `INSERT INTO collection_versions (db, coll, cv) VALUES (?, ?, ?)
       ON CONFLICT (db, coll) DO UPDATE SET cv = excluded.cv`,
    ),
    putLock: p(
      `INSERT INTO locks (db, coll, key, owner, expires_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (db, coll, key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at`,
    ),
    deleteLock: p('DELETE FROM locks WHERE db = ? AND coll = ? AND key = ?'),
    putUpload: p(
      `INSERT INTO content_uploads (db, coll, bucket, key, token, id, cleaning, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (db, coll, bucket, key, token) DO UPDATE SET id = excluded.id, cleaning = excluded.cleaning, at = excluded.at`,
    ),
    deleteUpload: p('DELETE FROM content_uploads WHERE db = ? AND coll = ? AND bucket = ? AND key = ? AND token = ?'),
    // What a namespace holds (queued objects stay: restored records may point at them).
    clearNamespace: ['heads', 'versions', 'unique_claims', 'collection_versions', 'sync_outbox', 'sync_dead_letters'].map(byNs),
    // Parameters: the target (db, coll), then the source (db, coll).
    copyNamespace: [
      `INSERT INTO heads (db, coll, ${HEAD_COLUMNS}) SELECT ?, ?, ${HEAD_COLUMNS} FROM heads WHERE db = ? AND coll = ?`,
      `INSERT INTO versions (db, coll, ${VERSION_COLUMNS}, actor_id, actor_type) SELECT ?, ?, ${VERSION_COLUMNS}, actor_id, actor_type FROM versions WHERE db = ? AND coll = ?`,
      'INSERT INTO unique_claims (db, coll, key, id) SELECT ?, ?, key, id FROM unique_claims WHERE db = ? AND coll = ?',
      'INSERT INTO collection_versions (db, coll, cv) SELECT ?, ?, cv FROM collection_versions WHERE db = ? AND coll = ?',
    ].map(p),
    // In id order, as the other drivers queue a copied collection.
    markAllPending: p('INSERT INTO sync_outbox (db, coll, id, seq) SELECT db, coll, id, cv FROM heads WHERE db = ? AND coll = ? ORDER BY id'),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;
