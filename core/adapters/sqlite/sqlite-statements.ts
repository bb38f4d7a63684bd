import type { RecordTable } from '../../contracts/index-driver.js';
import type { Actor, HeadRow, HistoryRow, PendingBlob, VersionRow } from '../../contracts/index-store.js';
import type * as Database from './sqlite-driver.js';

const HEAD_COLUMNS = 'id, ov, cv, deleted, created_at, updated_at, deleted_at, meta, body, hash';
/** A head's columns named as `HeadRow` names its fields. */
export const HEAD_FIELDS = 'id, ov, cv, deleted, created_at AS createdAt, updated_at AS updatedAt, deleted_at AS deletedAt, meta, body, hash';
/** The columns of `versions_history`, which a history page reads alone. */
const HISTORY_COLUMNS = 'ov, cv, op, at, actor, reason, deleted, size, archived';
/** In the order of `VersionRow`'s fields. */
export const VERSION_COLUMNS = `id, ${HISTORY_COLUMNS}, body, meta, hash`;

/** A row as a statement returns it: SQLite's integers for the booleans, JSON text for the objects. */
type SqlRow<R, Json extends keyof R, Flags extends keyof R> = Omit<R, Json | Flags> & { [K in Json]: string } & { [K in Flags]: number };
export type HeadSqlRow = SqlRow<HeadRow, 'meta', 'deleted'>;
export type VersionSqlRow = SqlRow<VersionRow, 'actor' | 'meta', 'deleted' | 'archived'>;
export type HistorySqlRow = SqlRow<Omit<HistoryRow, 'id'>, 'actor', 'deleted' | 'archived'>;
export interface UploadSqlRow { coll: string; bucket: string; key: string; token: string; id: string; cleaning: number; at: number }
export interface PendingBlobSqlRow { bucket: string; key: string; content_type: string; body: Buffer }

export function toHead(r: HeadSqlRow): HeadRow {
  return { ...r, deleted: r.deleted === 1, meta: JSON.parse(r.meta) as HeadRow['meta'] };
}

export function toHistoryRow(id: string, r: HistorySqlRow): HistoryRow {
  return { id, ...r, actor: JSON.parse(r.actor) as Actor, deleted: r.deleted === 1, archived: r.archived === 1 };
}

export function toVersion(r: VersionSqlRow): VersionRow {
  const actor = JSON.parse(r.actor) as Actor;
  return { ...r, actor, deleted: r.deleted === 1, archived: r.archived === 1, meta: JSON.parse(r.meta) as VersionRow['meta'] };
}

export function toPendingBlob(r: PendingBlobSqlRow): PendingBlob {
  return { bucket: r.bucket, key: r.key, contentType: r.content_type, body: new Uint8Array(r.body) };
}

/** An `INSERT` of one row, each of `columns` a parameter in that order, then `clause`. */
function insert(table: string, columns: string, clause = ''): string {
  const marks = columns.split(', ').map(() => '?');
  return `INSERT INTO ${table} (${columns}) VALUES (${marks.join(', ')}) ${clause}`;
}

/** An `insert` of `(keys, values)` that, on a row with the same keys, sets each value column as `set` says (default: to the new value). */
function upsert(table: string, keys: string, values: string, set = (column: string) => `${column} = excluded.${column}`): string {
  return insert(table, `${keys}, ${values}`, `ON CONFLICT (${keys}) DO UPDATE SET ${values.split(', ').map(set).join(', ')}`);
}

/** A counter's upsert adds to the value it finds. */
const adding = (column: string) => `${column} = ${column} + excluded.${column}`;

/**
 * A prepared statement, under a name of this module: the package's type declarations must name
 * the statements' type, and better-sqlite3's own (`BetterSqlite3.Statement`) is not exported.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
interface SqliteStatement extends Database.Statement {}

/**
 * Every fixed statement of the driver, prepared once per connection; parameters in the order of
 * the key columns, `(db, coll, ...)`. The SQL of reads whose shape varies is built by the driver.
 */
export function prepareStatements(db: Database.Database) {
  const p = (sql: string): SqliteStatement => db.prepare(sql);
  /** A statement of one column, whose rows are that column's values. */
  const v = (sql: string): SqliteStatement => db.prepare(sql).pluck();
  const byNs = (table: string) => p(`DELETE FROM ${table} WHERE db = ? AND coll = ?`);
  const counts = (set?: (column: string) => string) => [p(upsert('counters', 'db, coll, name', 'value', set)), p(upsert('counter_windows', 'db, coll, win, name', 'value', set))] as const;
  const ofRecord = (table: string, and = '') => p(`DELETE FROM ${table} WHERE db = ? AND coll = ? AND id = ?${and}`);
  return {
    // ---- reads
    getHead: p(`SELECT ${HEAD_FIELDS} FROM heads WHERE db = ? AND coll = ? AND id = ?`),
    // The point reads of every getVersion / getAsOf (see `versionPoint`); the general range query is built per call.
    versionAt: {
      ov: p(`SELECT ${VERSION_COLUMNS} FROM versions WHERE db = ? AND coll = ? AND id = ? AND ov = ?`),
      at: p(`SELECT ${VERSION_COLUMNS} FROM versions WHERE db = ? AND coll = ? AND id = ? AND at <= ? ORDER BY at DESC, ov DESC LIMIT 1`),
      cv: p(`SELECT ${VERSION_COLUMNS} FROM versions WHERE db = ? AND coll = ? AND id = ? AND cv <= ? ORDER BY cv DESC LIMIT 1`),
    },
    // What a transaction reads of a head (`octet_length` reads the body's size, never the body
    // itself), as an array: the cheapest row better-sqlite3 makes (every commit reads one).
    headState: p('SELECT ov, cv, deleted, octet_length(body) = 0 FROM heads WHERE db = ? AND coll = ? AND id = ?').raw(),
    listHistory: p(`SELECT ${HISTORY_COLUMNS} FROM versions INDEXED BY versions_history
      WHERE db = ? AND coll = ? AND id = ? AND ov < ? ORDER BY ov DESC LIMIT ?`),
    listHeadIds: v('SELECT id FROM heads WHERE db = ? AND coll = ? AND id > ? ORDER BY id LIMIT ?'),
    getClaim: v('SELECT id FROM unique_claims WHERE db = ? AND coll = ? AND key = ?'),
    listClaims: p('SELECT key, id FROM unique_claims WHERE db = ? AND coll = ? AND key > ? ORDER BY key LIMIT ?'),
    getPending: v('SELECT seq FROM sync_outbox WHERE db = ? AND coll = ? AND id = ?'),
    countPending: v('SELECT count(*) AS n FROM sync_outbox WHERE db = ?'),
    hasDeadLetter: v('SELECT 1 FROM sync_dead_letters WHERE db = ? AND coll = ? AND id = ?'),
    listDeadLetters: p('SELECT coll AS collection, id, reason, failed_at AS failedAt FROM sync_dead_letters WHERE db = ? ORDER BY failed_at, rowid LIMIT ?'),
    allDeadLetters: p(`SELECT d.coll AS collection, d.id, d.reason, d.failed_at AS failedAt, h.cv AS headCv FROM sync_dead_letters d
      LEFT JOIN heads h ON h.db = d.db AND h.coll = d.coll AND h.id = d.id WHERE d.db = ? ORDER BY d.failed_at, d.rowid`),
    countUnarchived: v('SELECT count(*) AS n FROM versions INDEXED BY versions_unarchived WHERE db = ? AND coll = ? AND id = ? AND archived = 0'),
    countVersionsBelow: v('SELECT count(*) AS n FROM versions WHERE db = ? AND coll = ? AND id = ? AND ov < ?'),
    getCounters: p('SELECT name, value FROM counters WHERE db = ? AND coll = ?'),
    getCounterWindows: p(`SELECT win, name, value FROM counter_windows
      WHERE db = ? AND coll = ? AND win >= ? AND win < ? AND win >= ? AND (? IS NULL OR win <= ?) ORDER BY win, name`),
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
    listUnarchivedRecords: p(`SELECT coll AS collection, id, min(at) AS oldestAt FROM versions INDEXED BY versions_unarchived
      WHERE db = ? AND archived = 0 AND (coll > ? OR (coll = ? AND id > ?))
      GROUP BY coll, id HAVING min(at) <= ? ORDER BY coll, id LIMIT ?`),
    summariseVersions: p(`SELECT g.id, g.n AS count, g.lo AS oldestOv, g.hi AS newestOv,
        (SELECT w.at FROM versions w WHERE w.db = ? AND w.coll = ? AND w.id = g.id AND w.ov = g.lo + 1) AS oldestSupersededAt
      FROM (SELECT id, count(*) AS n, min(ov) AS lo, max(ov) AS hi FROM versions
            WHERE db = ? AND coll = ? AND id > ? GROUP BY id ORDER BY id LIMIT ?) g
      ORDER BY g.id`),
    // ---- effects
    putHead: p(upsert('heads', 'db, coll, id', 'ov, cv, deleted, created_at, updated_at, deleted_at, meta, body, hash')),
    offloadHead: p(`UPDATE heads SET body = '' WHERE db = ? AND coll = ? AND id = ?`),
    insertVersion: p(insert('versions', 'db, coll, id, ov, cv, op, at, actor, actor_id, actor_type, reason, deleted, size, body, archived, meta, hash')),
    markArchived: p('UPDATE versions SET archived = 1, body = NULL WHERE db = ? AND coll = ? AND id = ? AND ov = ?'),
    // A record's rows, table by table (`deleteRecord`); of its versions those below an ov.
    deleteOfRecord: { heads: ofRecord('heads'), versions: ofRecord('versions', ' AND ov < ?'), claims: ofRecord('unique_claims'), outbox: ofRecord('sync_outbox'),
      pendingBlobs: ofRecord('pending_blobs'), deadLetters: ofRecord('sync_dead_letters') } satisfies Record<RecordTable, SqliteStatement>,
    putClaim: p(upsert('unique_claims', 'db, coll, key', 'id')),
    // An upsert keeps the row, and so its rowid: the outbox's queue order.
    markPending: p(upsert('sync_outbox', 'db, coll, id', 'seq')),
    putPendingBlob: p(upsert('pending_blobs', 'db, coll, bucket, key', 'id, content_type, body')),
    deletePendingBlob: p('DELETE FROM pending_blobs WHERE db = ? AND coll = ? AND bucket = ? AND key = ?'),
    putDeadLetter: p(upsert('sync_dead_letters', 'db, coll, id', 'reason, failed_at')),
    // Counts of the totals and of a window, added to or set.
    addCounts: counts(adding),
    setCounts: counts(),
    deleteWindow: p('DELETE FROM counter_windows WHERE db = ? AND coll = ? AND win = ?'),
    clearCounters: ['counters', 'counter_windows'].map(byNs),
    setCollectionVersion: p(upsert('collection_versions', 'db, coll', 'cv')),
    putLock: p(upsert('locks', 'db, coll, key', 'owner, expires_at')),
    deleteLock: p('DELETE FROM locks WHERE db = ? AND coll = ? AND key = ?'),
    putUpload: p(upsert('content_uploads', 'db, coll, bucket, key, token', 'id, cleaning, at')),
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

