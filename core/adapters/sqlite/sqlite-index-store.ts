import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type {
  CommitBatch,
  CommitResult,
  HeadQuery,
  HeadRow,
  IndexedValue,
  IndexStore,
  Namespace,
  PendingSync,
  VersionOp,
  VersionPoint,
  VersionRow,
} from '../../contracts/index-store.js';
import { compileFilter } from './sqlite-filter.js';

export interface SqliteIndexStoreOptions {
  /** Database file; created with its folder when missing. `:memory:` works for one process. */
  path: string;
  /** How long a writer waits for another process's write lock before failing. Default 10 s. */
  busyTimeoutMs?: number;
  /**
   * `full` (default) fsyncs every commit: an acknowledged write survives power loss.
   * `normal` survives process crashes but may lose the last commits on power loss.
   */
  durability?: 'full' | 'normal';
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS heads (
  db TEXT NOT NULL, coll TEXT NOT NULL, id TEXT NOT NULL,
  ov INTEGER NOT NULL, cv INTEGER NOT NULL, deleted INTEGER NOT NULL,
  created_at TEXT NOT NULL, updated_at TEXT NOT NULL, deleted_at TEXT,
  meta TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (db, coll, id)
);
CREATE INDEX IF NOT EXISTS heads_by_updated ON heads (db, coll, updated_at, id);
CREATE INDEX IF NOT EXISTS heads_by_created ON heads (db, coll, created_at, id);

CREATE TABLE IF NOT EXISTS versions (
  db TEXT NOT NULL, coll TEXT NOT NULL, id TEXT NOT NULL, ov INTEGER NOT NULL,
  cv INTEGER NOT NULL, op TEXT NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL, reason TEXT,
  deleted INTEGER NOT NULL, size INTEGER NOT NULL, body TEXT, archived INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (db, coll, id, ov)
);
CREATE INDEX IF NOT EXISTS versions_by_time ON versions (db, coll, id, at, ov);
CREATE INDEX IF NOT EXISTS versions_by_cv ON versions (db, coll, id, cv);
-- Only the few versions still waiting for archival, so finding them never scans a long history.
CREATE INDEX IF NOT EXISTS versions_unarchived ON versions (db, coll, id, ov) WHERE archived = 0;

CREATE TABLE IF NOT EXISTS collection_versions (
  db TEXT NOT NULL, coll TEXT NOT NULL, cv INTEGER NOT NULL, PRIMARY KEY (db, coll)
);
CREATE TABLE IF NOT EXISTS counters (
  db TEXT NOT NULL, coll TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
  PRIMARY KEY (db, coll, name)
);
CREATE TABLE IF NOT EXISTS sync_outbox (
  db TEXT NOT NULL, coll TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY (db, coll, id)
);
CREATE TABLE IF NOT EXISTS locks (
  db TEXT NOT NULL, coll TEXT NOT NULL, key TEXT NOT NULL, owner TEXT NOT NULL, expires_at INTEGER NOT NULL,
  PRIMARY KEY (db, coll, key)
);
`;

interface HeadSqlRow {
  id: string;
  ov: number;
  cv: number;
  deleted: number;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
  meta: string;
  body: string;
}

interface VersionSqlRow {
  id: string;
  ov: number;
  cv: number;
  op: VersionOp;
  at: string;
  actor: string;
  reason: string | null;
  deleted: number;
  size: number;
  body: string | null;
  archived: number;
}

const HEAD_COLUMNS = 'id, ov, cv, deleted, created_at, updated_at, deleted_at, meta, body';
const VERSION_COLUMNS = 'id, ov, cv, op, at, actor, reason, deleted, size, body, archived';
const SORT_COLUMNS = { id: 'id', createdAt: 'created_at', updatedAt: 'updated_at' } as const;

/** Thrown inside a transaction to roll it back when an optimistic check fails. */
class CheckFailed {
  constructor(readonly result: CommitResult) {}
}

/**
 * The embedded index store: one SQLite file (WAL mode) holding every database of a connection,
 * each table keyed by `(db, coll, ...)`. Writes run in `BEGIN IMMEDIATE` transactions, so several
 * processes can share the file; the busy timeout queues them.
 */
export class SqliteIndexStore implements IndexStore {
  readonly name = 'sqlite';
  readonly capabilities = { atomicBatches: true, multiProcess: true } as const;
  readonly #db: Database.Database;
  readonly #stmts: ReturnType<typeof prepareStatements>;
  readonly #dynamic = new Map<string, Database.Statement>();
  readonly #commitTx: Database.Transaction<(ns: Namespace, batch: CommitBatch) => number[]>;

  constructor(options: SqliteIndexStoreOptions) {
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    this.#db = new Database(options.path, { timeout: options.busyTimeoutMs ?? 10_000 });
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma(`synchronous = ${options.durability === 'normal' ? 'NORMAL' : 'FULL'}`);
    this.#db.pragma('foreign_keys = OFF');
    // Another process may be creating the schema at the same moment; IMMEDIATE serialises that.
    this.#db.transaction(() => this.#db.exec(SCHEMA)).immediate();
    this.#stmts = prepareStatements(this.#db);
    this.#commitTx = this.#db.transaction((ns: Namespace, batch: CommitBatch) => this.#applyBatch(ns, batch));
  }

  async getHead(ns: Namespace, id: string): Promise<HeadRow | null> {
    const row = this.#stmts.getHead.get(ns.dbName, ns.collection, id) as HeadSqlRow | undefined;
    return row ? toHead(row) : null;
  }

  async commit(ns: Namespace, batch: CommitBatch): Promise<CommitResult> {
    try {
      return { ok: true, cvs: this.#commitTx.immediate(ns, batch) };
    } catch (err) {
      if (err instanceof CheckFailed) return err.result;
      throw err;
    }
  }

  #applyBatch(ns: Namespace, batch: CommitBatch): number[] {
    const s = this.#stmts;
    const cvs: number[] = [];
    batch.writes.forEach((write, index) => {
      const current = s.getOv.get(ns.dbName, ns.collection, write.id) as { ov: number } | undefined;
      const actualOv = current?.ov ?? null;
      if (actualOv !== write.expectedOv) {
        throw new CheckFailed({ ok: false, index, id: write.id, expectedOv: write.expectedOv, actualOv });
      }
      const { cv } = s.nextCv.get(ns.dbName, ns.collection) as { cv: number };
      cvs.push(cv);
      const head = write.head;
      if (head) {
        s.putHead.run(
          ns.dbName, ns.collection, write.id, head.ov, cv, head.deleted ? 1 : 0,
          head.createdAt, head.updatedAt, head.deletedAt, JSON.stringify(head.meta), head.body,
        );
      } else {
        s.deleteHead.run(ns.dbName, ns.collection, write.id);
        s.deleteVersions.run(ns.dbName, ns.collection, write.id);
      }
      const v = write.version;
      if (v && head) {
        s.insertVersion.run(
          ns.dbName, ns.collection, write.id, head.ov, cv, v.op, v.at, v.actor, v.reason,
          v.deleted ? 1 : 0, Buffer.byteLength(v.body, 'utf8'), v.body,
        );
      }
      s.markPending.run(ns.dbName, ns.collection, write.id, cv);
    });
    for (const c of batch.counters ?? []) {
      for (const [name, delta] of Object.entries(c.deltas)) {
        if (delta !== 0) s.addCounter.run(c.dbName, c.collection, name, delta);
      }
    }
    return cvs;
  }

  async getVersion(ns: Namespace, id: string, ov: number): Promise<VersionRow | null> {
    const row = this.#stmts.getVersion.get(ns.dbName, ns.collection, id, ov) as VersionSqlRow | undefined;
    return row ? toVersion(row) : null;
  }

  async findVersionAt(ns: Namespace, id: string, point: VersionPoint): Promise<VersionRow | null> {
    const row = (
      'at' in point
        ? this.#stmts.versionAtTime.get(ns.dbName, ns.collection, id, point.at)
        : this.#stmts.versionAtCv.get(ns.dbName, ns.collection, id, point.cv)
    ) as VersionSqlRow | undefined;
    return row ? toVersion(row) : null;
  }

  async listVersions(ns: Namespace, id: string, options: { beforeOv?: number; limit: number }): Promise<VersionRow[]> {
    const rows = this.#stmts.listVersions.all(
      ns.dbName, ns.collection, id, options.beforeOv ?? Number.MAX_SAFE_INTEGER, options.limit,
    ) as VersionSqlRow[];
    return rows.map(toVersion);
  }

  async listHeads(ns: Namespace, query: HeadQuery): Promise<HeadRow[]> {
    const params: unknown[] = [ns.dbName, ns.collection];
    const where = ['db = ?', 'coll = ?'];
    if (!query.includeDeleted) where.push('deleted = 0');
    if (query.filter) where.push(compileFilter(query.filter, params));
    const column = SORT_COLUMNS[query.sort.field];
    const dir = query.sort.direction === 1 ? 'ASC' : 'DESC';
    if (query.after) {
      const cmp = query.sort.direction === 1 ? '>' : '<';
      if (column === 'id') {
        where.push(`id ${cmp} ?`);
        params.push(query.after.id);
      } else {
        where.push(`(${column}, id) ${cmp} (?, ?)`);
        params.push(query.after.value, query.after.id);
      }
    }
    params.push(query.limit);
    const order = column === 'id' ? `id ${dir}` : `${column} ${dir}, id ${dir}`;
    const sql = `SELECT ${HEAD_COLUMNS} FROM heads WHERE ${where.join(' AND ')} ORDER BY ${order} LIMIT ?`;
    return (this.#prepared(sql).all(...params) as HeadSqlRow[]).map(toHead);
  }

  /** Listing SQL varies with the filter's shape; shapes repeat, so their statements are kept (bounded). */
  #prepared(sql: string): Database.Statement {
    let stmt = this.#dynamic.get(sql);
    if (!stmt) {
      if (this.#dynamic.size >= 256) this.#dynamic.clear();
      stmt = this.#db.prepare(sql);
      this.#dynamic.set(sql, stmt);
    }
    return stmt;
  }

  async listHeadIds(ns: Namespace, options: { afterId?: string; limit: number }): Promise<string[]> {
    const rows = this.#stmts.listHeadIds.all(ns.dbName, ns.collection, options.afterId ?? '', options.limit) as Array<{ id: string }>;
    return rows.map((r) => r.id);
  }

  async getCounters(dbName: string, collection: string): Promise<Record<string, number>> {
    const rows = this.#stmts.getCounters.all(dbName, collection) as Array<{ name: string; value: number }>;
    return Object.fromEntries(rows.map((r) => [r.name, r.value]));
  }

  async listPendingSync(dbName: string, options: { limit: number; collection?: string }): Promise<PendingSync[]> {
    const rows = (
      options.collection === undefined
        ? this.#stmts.listPending.all(dbName, options.limit)
        : this.#stmts.listPendingIn.all(dbName, options.collection, options.limit)
    ) as Array<{ coll: string; id: string; seq: number }>;
    return rows.map((r) => ({ collection: r.coll, id: r.id, seq: r.seq }));
  }

  async getPendingSeq(ns: Namespace, id: string): Promise<number | null> {
    const row = this.#stmts.getPending.get(ns.dbName, ns.collection, id) as { seq: number } | undefined;
    return row?.seq ?? null;
  }

  async listUnarchived(ns: Namespace, id: string): Promise<VersionRow[]> {
    return (this.#stmts.listUnarchived.all(ns.dbName, ns.collection, id) as VersionSqlRow[]).map(toVersion);
  }

  async completeSync(ns: Namespace, id: string, done: { archivedOvs: readonly number[]; seq: number | null }): Promise<boolean> {
    return this.#db
      .transaction(() => {
        for (const ov of done.archivedOvs) this.#stmts.markArchived.run(ns.dbName, ns.collection, id, ov);
        return done.seq === null || this.#stmts.clearPending.run(ns.dbName, ns.collection, id, done.seq).changes === 1;
      })
      .immediate();
  }

  async acquireLock(ns: Namespace, key: string, owner: string, leaseMs: number): Promise<boolean> {
    return this.#db
      .transaction(() => {
        const now = Date.now();
        const row = this.#stmts.getLock.get(ns.dbName, ns.collection, key) as { owner: string; expires_at: number } | undefined;
        if (row && row.owner !== owner && row.expires_at > now) return false;
        this.#stmts.putLock.run(ns.dbName, ns.collection, key, owner, now + leaseMs);
        return true;
      })
      .immediate();
  }

  async releaseLock(ns: Namespace, key: string, owner: string): Promise<void> {
    this.#stmts.deleteLock.run(ns.dbName, ns.collection, key, owner);
  }

  async ping(): Promise<void> {
    this.#db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}

function prepareStatements(db: Database.Database) {
  const p = (sql: string) => db.prepare(sql);
  return {
    getHead: p(`SELECT ${HEAD_COLUMNS} FROM heads WHERE db = ? AND coll = ? AND id = ?`),
    getOv: p('SELECT ov FROM heads WHERE db = ? AND coll = ? AND id = ?'),
    nextCv: p(
      `INSERT INTO collection_versions (db, coll, cv) VALUES (?, ?, 0)
       ON CONFLICT (db, coll) DO UPDATE SET cv = cv + 1 RETURNING cv`,
    ),
    putHead: p(
      `INSERT INTO heads (db, coll, id, ov, cv, deleted, created_at, updated_at, deleted_at, meta, body)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (db, coll, id) DO UPDATE SET ov = excluded.ov, cv = excluded.cv, deleted = excluded.deleted,
         created_at = excluded.created_at, updated_at = excluded.updated_at, deleted_at = excluded.deleted_at,
         meta = excluded.meta, body = excluded.body`,
    ),
    deleteHead: p('DELETE FROM heads WHERE db = ? AND coll = ? AND id = ?'),
    deleteVersions: p('DELETE FROM versions WHERE db = ? AND coll = ? AND id = ?'),
    insertVersion: p(
      `INSERT INTO versions (db, coll, id, ov, cv, op, at, actor, reason, deleted, size, body)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    markPending: p(
      `INSERT INTO sync_outbox (db, coll, id, seq) VALUES (?, ?, ?, ?)
       ON CONFLICT (db, coll, id) DO UPDATE SET seq = excluded.seq`,
    ),
    addCounter: p(
      `INSERT INTO counters (db, coll, name, value) VALUES (?, ?, ?, ?)
       ON CONFLICT (db, coll, name) DO UPDATE SET value = value + excluded.value`,
    ),
    getVersion: p(`SELECT ${VERSION_COLUMNS} FROM versions WHERE db = ? AND coll = ? AND id = ? AND ov = ?`),
    versionAtTime: p(
      `SELECT ${VERSION_COLUMNS} FROM versions WHERE db = ? AND coll = ? AND id = ? AND at <= ?
       ORDER BY at DESC, ov DESC LIMIT 1`,
    ),
    versionAtCv: p(
      `SELECT ${VERSION_COLUMNS} FROM versions WHERE db = ? AND coll = ? AND id = ? AND cv <= ?
       ORDER BY cv DESC LIMIT 1`,
    ),
    listVersions: p(
      `SELECT ${VERSION_COLUMNS} FROM versions WHERE db = ? AND coll = ? AND id = ? AND ov < ?
       ORDER BY ov DESC LIMIT ?`,
    ),
    listHeadIds: p('SELECT id FROM heads WHERE db = ? AND coll = ? AND id > ? ORDER BY id LIMIT ?'),
    getCounters: p('SELECT name, value FROM counters WHERE db = ? AND coll = ?'),
    listPending: p('SELECT coll, id, seq FROM sync_outbox WHERE db = ? ORDER BY rowid LIMIT ?'),
    listPendingIn: p('SELECT coll, id, seq FROM sync_outbox WHERE db = ? AND coll = ? ORDER BY rowid LIMIT ?'),
    getPending: p('SELECT seq FROM sync_outbox WHERE db = ? AND coll = ? AND id = ?'),
    listUnarchived: p(
      `SELECT ${VERSION_COLUMNS} FROM versions WHERE db = ? AND coll = ? AND id = ? AND archived = 0 ORDER BY ov`,
    ),
    markArchived: p('UPDATE versions SET archived = 1, body = NULL WHERE db = ? AND coll = ? AND id = ? AND ov = ?'),
    clearPending: p('DELETE FROM sync_outbox WHERE db = ? AND coll = ? AND id = ? AND seq = ?'),
    getLock: p('SELECT owner, expires_at FROM locks WHERE db = ? AND coll = ? AND key = ?'),
    putLock: p(
      `INSERT INTO locks (db, coll, key, owner, expires_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (db, coll, key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at`,
    ),
    deleteLock: p('DELETE FROM locks WHERE db = ? AND coll = ? AND key = ? AND owner = ?'),
  };
}

function toHead(row: HeadSqlRow): HeadRow {
  return {
    id: row.id,
    ov: row.ov,
    cv: row.cv,
    deleted: row.deleted === 1,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    deletedAt: row.deleted_at,
    meta: JSON.parse(row.meta) as Record<string, IndexedValue>,
    body: row.body,
  };
}

function toVersion(row: VersionSqlRow): VersionRow {
  return {
    id: row.id,
    ov: row.ov,
    cv: row.cv,
    op: row.op,
    at: row.at,
    actor: row.actor,
    reason: row.reason,
    deleted: row.deleted === 1,
    size: row.size,
    body: row.body,
    archived: row.archived === 1,
  };
}
