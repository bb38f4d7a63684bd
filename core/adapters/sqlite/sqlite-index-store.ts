import type Database from 'better-sqlite3';
import type {
  ActorQuery,
  Actor,
  AsOfQuery,
  CommitBatch,
  CommitResult,
  CounterWindow,
  CounterWindowBounds,
  CounterWindowQuery,
  DeadLetter,
  HeadQuery,
  PendingBlob,
  HeadRow,
  HistoryRow,
  CollectionReplacement,
  ImportBatch,
  IndexedValue,
  IndexStore,
  Namespace,
  PendingSync,
  ReplaceCollectionsOptions,
  StaleUpload,
  UnarchivedRecord,
  UploadIntent,
  UploadRef,
  VersionOp,
  VersionPoint,
  VersionRow,
  VersionSummary,
} from '../../contracts/index-store.js';
import { processTag } from '../../foundation/process.js';
import { compileFilter, metaFields } from './sqlite-filter.js';
import { openSqliteFile } from './sqlite-open.js';

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
  /** The page cache of this connection, in MiB. Default 64. */
  cacheMiB?: number;
}

const DEFAULT_CACHE_MIB = 64;

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
 * Bumped whenever the tables above change shape; a file of another version is refused, except
 * the versions in `UPGRADABLE_FROM`, which `SCHEMA` upgrades in place by creating what is new.
 * A new index alone does not bump it: `SCHEMA` creates missing indexes on every open, and SQLite
 * keeps every index of a table up to date whichever version of this code writes, so older code
 * can still open the file (a rollback stays possible; older code's archive sweep, which does not
 * name `versions_unarchived`, may then read `versions_history` and be slower). `versions_history`
 * came that way; opening a file written before it builds it once, holding the write lock meanwhile
 * (other processes' writes wait, and fail after their busy timeout if the file is very large).
 */
const SCHEMA_VERSION = 6;
/** Version 5 lacks only `content_uploads`, version 4 also `counter_windows`: additive tables. */
const UPGRADABLE_FROM: readonly number[] = [4, 5];

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
  hash: string | null;
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
  meta: string;
  hash: string;
}

type HistorySqlRow = Pick<VersionSqlRow, 'ov' | 'cv' | 'op' | 'at' | 'actor' | 'reason' | 'deleted' | 'size' | 'archived'>;

/** The lowest string above every key starting with `prefix` (prefixes end in `:`, so `;` follows). */
function windowRangeEnd(prefix: string): string {
  return `${prefix.slice(0, -1)};`;
}

const HEAD_COLUMNS = 'id, ov, cv, deleted, created_at, updated_at, deleted_at, meta, body, hash';
const VERSION_COLUMNS = 'id, ov, cv, op, at, actor, reason, deleted, size, body, archived, meta, hash';
/** The columns of `versions_history`, which a history page reads alone. */
const HISTORY_COLUMNS = 'ov, cv, op, at, actor, reason, deleted, size, archived';
const SORT_COLUMNS = { id: 'id', createdAt: 'created_at', updatedAt: 'updated_at' } as const;

/** Thrown inside a transaction to roll it back when an optimistic check fails. */
class CheckFailed {
  constructor(readonly result: CommitResult) {}
}

/** Thrown inside `recordUploads`' transaction to roll it back: the key has a cleanup mark. */
class MarkedKey {
  constructor(readonly key: string) {}
}

/**
 * The embedded index store: one SQLite file (WAL mode) holding every database of a connection,
 * each table keyed by `(db, coll, ...)`. Writes run in `BEGIN IMMEDIATE` transactions, so several
 * processes can share the file; the busy timeout queues them.
 */
export class SqliteIndexStore implements IndexStore {
  readonly name = 'sqlite';
  readonly capabilities = { atomicBatches: true, multiProcess: true, atomicReplace: true } as const;
  readonly #db: Database.Database;
  /** The durability the store was opened with (`durability`), restored after each write that skips the fsync. */
  readonly #synchronous: 'FULL' | 'NORMAL';
  readonly #stmts: ReturnType<typeof prepareStatements>;
  readonly #dynamic = new Map<string, Database.Statement>();
  readonly #commitTx: Database.Transaction<(ns: Namespace, batch: CommitBatch) => number[]>;
  readonly #importTx: Database.Transaction<(ns: Namespace, batch: ImportBatch) => void>;

  constructor(options: SqliteIndexStoreOptions) {
    this.#synchronous = options.durability === 'normal' ? 'NORMAL' : 'FULL';
    this.#db = openSqliteFile(options.path, options.busyTimeoutMs ?? 10_000, (db) => {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${this.#synchronous}`);
      db.pragma('foreign_keys = OFF');
      // SQLite's default page cache (2 MiB) makes a random read into a long history a page miss at
      // every level of the index; 64 MiB keeps the upper levels of large indexes in memory.
      db.pragma(`cache_size = -${(options.cacheMiB ?? DEFAULT_CACHE_MIB) * 1024}`);
      openSchema(db);
    });
    this.#stmts = prepareStatements(this.#db);
    this.#commitTx = this.#db.transaction((ns: Namespace, batch: CommitBatch) => this.#applyBatch(ns, batch));
    this.#importTx = this.#db.transaction((ns: Namespace, batch: ImportBatch) => this.#applyImport(ns, batch));
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
        throw new CheckFailed({ ok: false, reason: 'version', index, id: write.id, expectedOv: write.expectedOv, actualOv });
      }
      for (const claim of write.claims ?? []) {
        const holder = s.getClaim.get(ns.dbName, ns.collection, claim.key) as { id: string } | undefined;
        if (holder && holder.id !== write.id && holder.id !== claim.replacing) {
          throw new CheckFailed({ ok: false, reason: 'claim', index, id: write.id, key: claim.key, heldBy: holder.id });
        }
        s.putClaim.run(ns.dbName, ns.collection, claim.key, write.id);
      }
      const { cv } = s.nextCv.get(ns.dbName, ns.collection) as { cv: number };
      cvs.push(cv);
      const head = write.head;
      const meta = head ? JSON.stringify(head.meta) : '{}';
      if (head) {
        s.putHead.run(
          ns.dbName, ns.collection, write.id, head.ov, cv, head.deleted ? 1 : 0,
          head.createdAt, head.updatedAt, head.deletedAt, meta, head.body, head.hash,
        );
      } else {
        s.deleteHead.run(ns.dbName, ns.collection, write.id);
        s.deleteVersions.run(ns.dbName, ns.collection, write.id);
      }
      for (const u of write.uploads ?? []) {
        if (s.deleteIntent.run(ns.dbName, ns.collection, u.bucket, u.key, u.token).changes !== 1) {
          throw new CheckFailed({ ok: false, reason: 'upload', index, id: write.id, key: u.key });
        }
      }
      if (!head || head.deleted) s.releaseClaims.run(ns.dbName, ns.collection, write.id);
      if (!head) s.dropPendingBlobs.run(ns.dbName, ns.collection, write.id);
      for (const b of write.blobs ?? []) s.putPendingBlob.run(ns.dbName, ns.collection, write.id, b.bucket, b.key, b.contentType, Buffer.from(b.body));
      const v = write.version;
      if (v && head) {
        const actorId = typeof v.actor === 'string' ? v.actor : v.actor.identifier;
        const actorType = typeof v.actor === 'string' ? null : v.actor.type;
        s.insertVersion.run(
          ns.dbName, ns.collection, write.id, head.ov, cv, v.op, v.at, JSON.stringify(v.actor), actorId, actorType, v.reason,
          v.deleted ? 1 : 0, Buffer.byteLength(v.body, 'utf8'), v.body, meta, v.hash,
        );
      }
      s.markPending.run(ns.dbName, ns.collection, write.id, cv);
    });
    for (const c of batch.counters ?? []) {
      for (const [name, delta] of Object.entries(c.deltas)) {
        if (delta === 0) continue;
        s.addCounter.run(c.dbName, c.collection, name, delta);
        for (const win of c.windows ?? []) s.addWindowCounter.run(c.dbName, c.collection, win, name, delta);
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

  async listHistory(ns: Namespace, id: string, options: { beforeOv?: number; limit: number }): Promise<HistoryRow[]> {
    const rows = this.#stmts.listHistory.all(
      ns.dbName, ns.collection, id, options.beforeOv ?? Number.MAX_SAFE_INTEGER, options.limit,
    ) as HistorySqlRow[];
    return rows.map((row) => toHistoryRow(id, row));
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

  async queryAt(ns: Namespace, query: AsOfQuery): Promise<VersionRow[]> {
    // One index seek per record (versions_by_time), driven by the heads in id order.
    const params: unknown[] = [query.at, ns.dbName, ns.collection];
    const where = ['h.db = ?', 'h.coll = ?'];
    const dir = query.direction === 1 ? 'ASC' : 'DESC';
    if (query.afterId !== undefined) {
      where.push(`h.id ${query.direction === 1 ? '>' : '<'} ?`);
      params.push(query.afterId);
    }
    if (!query.includeDeleted) where.push('v.deleted = 0');
    if (query.filter) where.push(compileFilter(query.filter, params, metaFields('v.meta')));
    params.push(query.limit);
    const sql = `SELECT ${VERSION_COLUMNS.split(', ').map((c) => `v.${c}`).join(', ')}
      FROM heads h JOIN versions v ON v.db = h.db AND v.coll = h.coll AND v.id = h.id
        AND v.ov = (SELECT w.ov FROM versions w WHERE w.db = h.db AND w.coll = h.coll AND w.id = h.id AND w.at <= ?
                    ORDER BY w.at DESC, w.ov DESC LIMIT 1)
      WHERE ${where.join(' AND ')} ORDER BY h.id ${dir} LIMIT ?`;
    return (this.#prepared(sql).all(...params) as VersionSqlRow[]).map(toVersion);
  }

  async listVersionsByActor(ns: Namespace, actorId: string, options: ActorQuery): Promise<VersionRow[]> {
    const params: unknown[] = [ns.dbName, ns.collection, actorId];
    const where = ['db = ?', 'coll = ?', 'actor_id = ?'];
    if (options.actorType !== undefined) {
      where.push('actor_type = ?');
      params.push(options.actorType);
    }
    if (options.from !== undefined) {
      where.push('at >= ?');
      params.push(options.from);
    }
    if (options.to !== undefined) {
      where.push('at <= ?');
      params.push(options.to);
    }
    if (options.before) {
      where.push('(at, id, ov) < (?, ?, ?)');
      params.push(options.before.at, options.before.id, options.before.ov);
    }
    params.push(options.limit);
    const sql = `SELECT ${VERSION_COLUMNS} FROM versions WHERE ${where.join(' AND ')} ORDER BY at DESC, id DESC, ov DESC LIMIT ?`;
    return (this.#prepared(sql).all(...params) as VersionSqlRow[]).map(toVersion);
  }

  async getClaim(ns: Namespace, key: string): Promise<string | null> {
    const row = this.#stmts.getClaim.get(ns.dbName, ns.collection, key) as { id: string } | undefined;
    return row?.id ?? null;
  }

  async listHeadIds(ns: Namespace, options: { afterId?: string; limit: number }): Promise<string[]> {
    const rows = this.#stmts.listHeadIds.all(ns.dbName, ns.collection, options.afterId ?? '', options.limit) as Array<{ id: string }>;
    return rows.map((r) => r.id);
  }

  async getCounters(dbName: string, collection: string): Promise<Record<string, number>> {
    const rows = this.#stmts.getCounters.all(dbName, collection) as Array<{ name: string; value: number }>;
    return Object.fromEntries(rows.map((r) => [r.name, r.value]));
  }

  async getCounterWindows(dbName: string, collection: string, options: CounterWindowQuery): Promise<CounterWindow[]> {
    const prefix = `${options.granularity}:`;
    const rows = this.#stmts.getCounterWindows.all(
      dbName, collection, prefix, windowRangeEnd(prefix), options.from ?? '', options.to ?? null, options.to ?? null,
    ) as Array<{ win: string; name: string; value: number }>;
    const out: CounterWindow[] = [];
    for (const r of rows) {
      let last = out[out.length - 1];
      if (last?.window !== r.win) out.push((last = { window: r.win, counts: {} }));
      last.counts[r.name] = r.value;
    }
    return out;
  }

  async pruneCounterWindows(dbName: string, collection: string, before: CounterWindowBounds): Promise<number> {
    return this.#db
      .transaction(() => {
        let removed = 0;
        for (const granularity of ['day', 'week', 'month'] as const) {
          const bound = before[granularity];
          if (bound === undefined) continue;
          const prefix = `${granularity}:`;
          const { n } = this.#stmts.countWindowsBelow.get(dbName, collection, prefix, bound) as { n: number };
          this.#stmts.pruneWindowsBelow.run(dbName, collection, prefix, bound);
          removed += n;
        }
        return removed;
      })
      .immediate();
  }

  async listPendingSync(dbName: string, options: { limit: number; collection?: string }): Promise<PendingSync[]> {
    const rows = (
      options.collection === undefined
        ? this.#stmts.listPending.all(dbName, options.limit)
        : this.#stmts.listPendingIn.all(dbName, options.collection, options.limit)
    ) as Array<{ coll: string; id: string; seq: number }>;
    return rows.map((r) => ({ collection: r.coll, id: r.id, seq: r.seq }));
  }

  async listPendingUpTo(ns: Namespace, options: { maxSeq: number; afterId?: string; limit: number }): Promise<PendingSync[]> {
    const rows = this.#stmts.listPendingUpTo.all(ns.dbName, ns.collection, options.afterId ?? '', options.maxSeq, options.limit) as Array<{ id: string; seq: number }>;
    return rows.map((r) => ({ collection: ns.collection, id: r.id, seq: r.seq }));
  }

  async countPendingSync(dbName: string): Promise<number> {
    return (this.#stmts.countPending.get(dbName) as { n: number }).n;
  }

  async listPendingBlobs(ns: Namespace, id: string): Promise<PendingBlob[]> {
    return (this.#stmts.listPendingBlobs.all(ns.dbName, ns.collection, id) as PendingBlobRow[]).map(toPendingBlob);
  }

  async getPendingBlob(ns: Namespace, bucket: string, key: string): Promise<PendingBlob | null> {
    const row = this.#stmts.getPendingBlob.get(ns.dbName, ns.collection, bucket, key) as PendingBlobRow | undefined;
    return row ? toPendingBlob(row) : null;
  }

  async deadLetterSync(ns: Namespace, id: string, seq: number, reason: string): Promise<boolean> {
    return this.#db
      .transaction(() => {
        if (this.#stmts.clearPending.run(ns.dbName, ns.collection, id, seq).changes !== 1) return false;
        this.#stmts.putDeadLetter.run(ns.dbName, ns.collection, id, reason.slice(0, 2000), new Date().toISOString());
        return true;
      })
      .immediate();
  }

  async listDeadLetters(dbName: string, options: { limit: number }): Promise<DeadLetter[]> {
    const rows = this.#stmts.listDeadLetters.all(dbName, options.limit) as Array<{ coll: string; id: string; reason: string; failed_at: string }>;
    return rows.map((r) => ({ collection: r.coll, id: r.id, reason: r.reason, failedAt: r.failed_at }));
  }

  async requeueDeadLetters(dbName: string): Promise<number> {
    return this.#db
      .transaction(() => {
        const rows = this.#stmts.allDeadLetters.all(dbName) as Array<{ coll: string; id: string }>;
        for (const r of rows) {
          const head = this.#stmts.getHead.get(dbName, r.coll, r.id) as { cv: number } | undefined;
          this.#stmts.markPending.run(dbName, r.coll, r.id, head?.cv ?? 0);
        }
        this.#stmts.clearDeadLetters.run(dbName);
        return rows.length;
      })
      .immediate();
  }

  async listDeadLetterDatabases(): Promise<string[]> {
    return (this.#stmts.deadLetterDatabases.all() as Array<{ db: string }>).map((r) => r.db);
  }

  async listPendingDatabases(): Promise<string[]> {
    return (this.#stmts.pendingDatabases.all() as Array<{ db: string }>).map((r) => r.db);
  }

  async getPendingSeq(ns: Namespace, id: string): Promise<number | null> {
    const row = this.#stmts.getPending.get(ns.dbName, ns.collection, id) as { seq: number } | undefined;
    return row?.seq ?? null;
  }

  async listUnarchived(ns: Namespace, id: string, page: { afterOv?: number; limit?: number } = {}): Promise<VersionRow[]> {
    // LIMIT -1 is SQLite's "no limit".
    const rows = this.#stmts.listUnarchived.all(ns.dbName, ns.collection, id, page.afterOv ?? -1, page.limit ?? -1) as VersionSqlRow[];
    return rows.map(toVersion);
  }

  async completeSync(
    ns: Namespace,
    id: string,
    done: { archivedOvs: readonly number[]; uploaded?: ReadonlyArray<{ bucket: string; key: string }>; seq: number | null },
  ): Promise<boolean> {
    return this.#db
      .transaction(() => {
        for (const ov of done.archivedOvs) this.#stmts.markArchived.run(ns.dbName, ns.collection, id, ov);
        for (const b of done.uploaded ?? []) this.#stmts.deletePendingBlob.run(ns.dbName, ns.collection, b.bucket, b.key);
        return done.seq === null || this.#stmts.clearPending.run(ns.dbName, ns.collection, id, done.seq).changes === 1;
      })
      .immediate();
  }

  async recordUploads(ns: Namespace, uploads: readonly UploadIntent[]): Promise<{ ok: true } | { ok: false; key: string }> {
    const s = this.#stmts;
    try {
      this.#db
        .transaction(() => {
          const now = Date.now();
          for (const u of uploads) {
            // Thrown, so that the intents inserted before it are rolled back.
            if (s.getMark.get(ns.dbName, ns.collection, u.bucket, u.key)) throw new MarkedKey(u.key);
            s.putIntent.run(ns.dbName, ns.collection, u.bucket, u.key, u.token, u.id, now);
          }
        })
        .immediate();
      return { ok: true };
    } catch (err) {
      if (err instanceof MarkedKey) return { ok: false, key: err.key };
      throw err;
    }
  }

  async listStaleUploads(dbName: string, options: { olderThanMs: number; limit: number }): Promise<StaleUpload[]> {
    const rows = this.#stmts.listStaleUploads.all(dbName, Date.now() - options.olderThanMs, options.limit) as UploadSqlRow[];
    return rows.map((r) => ({ collection: r.coll, id: r.id, bucket: r.bucket, key: r.key, token: r.token, cleaning: r.cleaning === 1 }));
  }

  async claimUploadCleanup(ns: Namespace, upload: UploadRef, options: { olderThanMs: number; markToken: string; own?: boolean }): Promise<boolean> {
    const s = this.#stmts;
    const { dbName: d, collection: c } = ns;
    return this.#db
      .transaction((): boolean => {
        const now = Date.now();
        const cutoff = now - options.olderThanMs;
        const rows = s.uploadsOfKey.all(d, c, upload.bucket, upload.key) as UploadSqlRow[];
        const named = rows.find((r) => r.token === upload.token);
        if (!named) return false;
        if (named.cleaning === 1) {
          if (named.token !== options.markToken && named.at > cutoff) return false;
          s.deleteUpload.run(d, c, upload.bucket, upload.key, named.token);
          s.putMark.run(d, c, upload.bucket, upload.key, options.markToken, named.id, now);
          return true;
        }
        const removable = options.own === true || named.at <= cutoff;
        // Another write's younger intent covers the key (if it commits, the object is used; if
        // not, its own intent leads here again); a mark means another cleanup has it.
        if (rows.some((r) => r.cleaning === 1 || (r.token !== upload.token && r.at > cutoff)) || !removable) {
          if (removable) s.deleteUpload.run(d, c, upload.bucket, upload.key, upload.token);
          return false;
        }
        s.deleteUploadsOfKey.run(d, c, upload.bucket, upload.key);
        s.putMark.run(d, c, upload.bucket, upload.key, options.markToken, named.id, now);
        return true;
      })
      .immediate();
  }

  async releaseUploadCleanup(ns: Namespace, upload: Omit<UploadRef, 'token'>, markToken: string, options: { retry?: boolean } = {}): Promise<void> {
    const { dbName: d, collection: c } = ns;
    if (options.retry) this.#stmts.markToIntent.run(d, c, upload.bucket, upload.key, markToken);
    else this.#stmts.deleteMark.run(d, c, upload.bucket, upload.key, markToken);
  }

  async acquireLock(ns: Namespace, key: string, owner: string, leaseMs: number): Promise<boolean> {
    return this.#withoutFsync(() =>
      this.#db
        .transaction(() => {
          const now = Date.now();
          const row = this.#stmts.getLock.get(ns.dbName, ns.collection, key) as { owner: string; expires_at: number } | undefined;
          if (row && row.owner !== owner && row.expires_at > now && holderMayBeAlive(row.owner)) return false;
          this.#stmts.putLock.run(ns.dbName, ns.collection, key, owner, now + leaseMs);
          return true;
        })
        .immediate(),
    );
  }

  async releaseLock(ns: Namespace, key: string, owner: string): Promise<void> {
    this.#withoutFsync(() => this.#stmts.deleteLock.run(ns.dbName, ns.collection, key, owner));
  }

  /**
   * Runs a write that need not survive a power loss without waiting for an fsync: leases only
   * matter to live processes, and a power loss ends every process that shares the file. (In WAL
   * mode a `NORMAL` commit survives a process crash; the next `FULL` commit makes it durable.)
   */
  #withoutFsync<T>(write: () => T): T {
    if (this.#synchronous === 'NORMAL') return write();
    this.#db.pragma('synchronous = NORMAL');
    try {
      return write();
    } finally {
      this.#db.pragma(`synchronous = ${this.#synchronous}`);
    }
  }

  // ---- background jobs --------------------------------------------------------------------

  async listDatabases(): Promise<string[]> {
    // collection_versions has one small row per namespace ever written: no scan of the data.
    return (this.#stmts.listDatabases.all() as Array<{ db: string }>).map((r) => r.db);
  }

  async listCollections(dbName: string): Promise<string[]> {
    return (this.#stmts.listCollections.all(dbName) as Array<{ coll: string }>).map((r) => r.coll);
  }

  async listUnarchivedRecords(
    dbName: string,
    options: { writtenBefore: string; after?: { collection: string; id: string }; limit: number },
  ): Promise<UnarchivedRecord[]> {
    const after = options.after ?? { collection: '', id: '' };
    const rows = this.#stmts.listUnarchivedRecords.all(dbName, after.collection, after.collection, after.id, options.writtenBefore, options.limit) as Array<{
      coll: string;
      id: string;
      oldest: string;
    }>;
    return rows.map((r) => ({ collection: r.coll, id: r.id, oldestAt: r.oldest }));
  }

  async summariseVersions(ns: Namespace, options: { afterId?: string; limit: number }): Promise<VersionSummary[]> {
    const rows = this.#stmts.summariseVersions.all(ns.dbName, ns.collection, ns.dbName, ns.collection, options.afterId ?? '', options.limit) as Array<{
      id: string;
      n: number;
      lo: number;
      hi: number;
      superseded: string | null;
    }>;
    return rows.map((r) => ({ id: r.id, count: r.n, oldestOv: r.lo, newestOv: r.hi, oldestSupersededAt: r.superseded }));
  }

  async pruneVersions(ns: Namespace, id: string, belowOv: number): Promise<number> {
    return this.#stmts.pruneVersions.run(ns.dbName, ns.collection, id, belowOv, ns.dbName, ns.collection, id).changes;
  }

  async offloadHead(ns: Namespace, id: string, expectedOv: number): Promise<boolean> {
    const { dbName: d, collection: c } = ns;
    return this.#stmts.offloadHead.run(d, c, id, expectedOv, d, c, id, d, c, id, d, c, id).changes === 1;
  }

  async getCollectionVersion(ns: Namespace): Promise<number | null> {
    const row = this.#stmts.getCollectionVersion.get(ns.dbName, ns.collection) as { cv: number } | undefined;
    return row?.cv ?? null;
  }

  async listClaims(ns: Namespace, options: { afterKey?: string; limit: number }): Promise<Array<{ key: string; id: string }>> {
    return this.#stmts.listClaims.all(ns.dbName, ns.collection, options.afterKey ?? '', options.limit) as Array<{ key: string; id: string }>;
  }

  async importRecords(ns: Namespace, batch: ImportBatch): Promise<void> {
    this.#importTx.immediate(ns, batch);
  }

  #applyImport(ns: Namespace, batch: ImportBatch): void {
    const s = this.#stmts;
    let highest = batch.collectionVersion ?? -1;
    for (const { head, versions } of batch.records) {
      s.deleteVersions.run(ns.dbName, ns.collection, head.id);
      s.putHead.run(
        ns.dbName, ns.collection, head.id, head.ov, head.cv, head.deleted ? 1 : 0,
        head.createdAt, head.updatedAt, head.deletedAt, JSON.stringify(head.meta), head.body, head.hash,
      );
      highest = Math.max(highest, head.cv);
      for (const v of versions) {
        const actorId = typeof v.actor === 'string' ? v.actor : v.actor.identifier;
        const actorType = typeof v.actor === 'string' ? null : v.actor.type;
        s.importVersion.run(
          ns.dbName, ns.collection, head.id, v.ov, v.cv, v.op, v.at, JSON.stringify(v.actor), actorId, actorType, v.reason,
          v.deleted ? 1 : 0, v.size, v.body, v.archived ? 1 : 0, JSON.stringify(v.meta), v.hash,
        );
        highest = Math.max(highest, v.cv);
      }
      if (batch.sync !== false) s.markPending.run(ns.dbName, ns.collection, head.id, head.cv);
    }
    for (const c of batch.claims ?? []) s.putClaim.run(ns.dbName, ns.collection, c.key, c.id);
    if (highest >= 0) s.raiseCv.run(ns.dbName, ns.collection, highest);
  }

  async countRecords(ns: Namespace): Promise<number> {
    return (this.#stmts.countHeads.get(ns.dbName, ns.collection) as { n: number }).n;
  }

  async replaceCollections(dbName: string, replacements: readonly CollectionReplacement[], options: ReplaceCollectionsOptions): Promise<{ replaced: boolean; held: number }> {
    const s = this.#stmts;
    return this.#db
      .transaction(() => {
        const listed = new Set(replacements.map((r) => r.collection));
        const others = options.wholeDatabase ? (s.listCollections.all(dbName) as Array<{ coll: string }>).map((r) => r.coll).filter((c) => !listed.has(c)) : [];
        const all: CollectionReplacement[] = [...replacements, ...others.map((collection) => ({ collection, from: null }))];
        let held = 0;
        for (const r of all) held += (s.countHeads.get(dbName, r.collection) as { n: number }).n;
        if (options.onlyIfEmpty && held > 0) return { replaced: false, held };
        for (const r of all) {
          const c = r.collection;
          for (const clear of s.clearNamespace) clear.run(dbName, c);
          s.clearCounters.run(options.countersDb, c);
          s.clearCounterWindows.run(options.countersDb, c);
          if (r.from !== null) {
            for (const copy of s.copyNamespace) copy.run(dbName, r.from, c);
            // Every record copied in is written to the blob store again (current.json, pending versions).
            s.markAllPending.run(dbName, c);
          }
          for (const [name, value] of Object.entries(r.counters?.totals ?? {})) s.setCounter.run(options.countersDb, c, name, value);
          for (const w of r.counters?.windows ?? []) {
            for (const [name, value] of Object.entries(w.counts)) s.setWindowCounter.run(options.countersDb, c, w.window, name, value);
          }
        }
        return { replaced: true, held };
      })
      .immediate();
  }

  async setCounters(dbName: string, collection: string, values: Record<string, number>): Promise<void> {
    this.#db
      .transaction(() => {
        for (const [name, value] of Object.entries(values)) this.#stmts.setCounter.run(dbName, collection, name, value);
      })
      .immediate();
  }

  async setCounterWindows(dbName: string, collection: string, windows: readonly CounterWindow[]): Promise<void> {
    this.#db
      .transaction(() => {
        for (const w of windows) {
          for (const [name, value] of Object.entries(w.counts)) this.#stmts.setWindowCounter.run(dbName, collection, w.window, name, value);
        }
      })
      .immediate();
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
      `INSERT INTO heads (db, coll, id, ov, cv, deleted, created_at, updated_at, deleted_at, meta, body, hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (db, coll, id) DO UPDATE SET ov = excluded.ov, cv = excluded.cv, deleted = excluded.deleted,
         created_at = excluded.created_at, updated_at = excluded.updated_at, deleted_at = excluded.deleted_at,
         meta = excluded.meta, body = excluded.body, hash = excluded.hash`,
    ),
    deleteHead: p('DELETE FROM heads WHERE db = ? AND coll = ? AND id = ?'),
    deleteVersions: p('DELETE FROM versions WHERE db = ? AND coll = ? AND id = ?'),
    insertVersion: p(
      `INSERT INTO versions (db, coll, id, ov, cv, op, at, actor, actor_id, actor_type, reason, deleted, size, body, meta, hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    getClaim: p('SELECT id FROM unique_claims WHERE db = ? AND coll = ? AND key = ?'),
    putClaim: p(
      `INSERT INTO unique_claims (db, coll, key, id) VALUES (?, ?, ?, ?)
       ON CONFLICT (db, coll, key) DO UPDATE SET id = excluded.id`,
    ),
    releaseClaims: p('DELETE FROM unique_claims WHERE db = ? AND coll = ? AND id = ?'),
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
    listHistory: p(
      `SELECT ${HISTORY_COLUMNS} FROM versions INDEXED BY versions_history WHERE db = ? AND coll = ? AND id = ? AND ov < ?
       ORDER BY ov DESC LIMIT ?`,
    ),
    listHeadIds: p('SELECT id FROM heads WHERE db = ? AND coll = ? AND id > ? ORDER BY id LIMIT ?'),
    getCounters: p('SELECT name, value FROM counters WHERE db = ? AND coll = ?'),
    addWindowCounter: p(
      `INSERT INTO counter_windows (db, coll, win, name, value) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (db, coll, win, name) DO UPDATE SET value = value + excluded.value`,
    ),
    setWindowCounter: p(
      `INSERT INTO counter_windows (db, coll, win, name, value) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (db, coll, win, name) DO UPDATE SET value = excluded.value`,
    ),
    getCounterWindows: p(
      `SELECT win, name, value FROM counter_windows
       WHERE db = ? AND coll = ? AND win >= ? AND win < ? AND win >= ? AND (? IS NULL OR win <= ?)
       ORDER BY win, name`,
    ),
    countWindowsBelow: p('SELECT count(DISTINCT win) AS n FROM counter_windows WHERE db = ? AND coll = ? AND win >= ? AND win < ?'),
    pruneWindowsBelow: p('DELETE FROM counter_windows WHERE db = ? AND coll = ? AND win >= ? AND win < ?'),
    listPending: p('SELECT coll, id, seq FROM sync_outbox WHERE db = ? ORDER BY rowid LIMIT ?'),
    listPendingIn: p('SELECT coll, id, seq FROM sync_outbox WHERE db = ? AND coll = ? ORDER BY rowid LIMIT ?'),
    getPending: p('SELECT seq FROM sync_outbox WHERE db = ? AND coll = ? AND id = ?'),
    // One range of the primary key (db, coll, id); ids are never empty, so '' is before them all.
    listPendingUpTo: p('SELECT id, seq FROM sync_outbox WHERE db = ? AND coll = ? AND id > ? AND seq <= ? ORDER BY id LIMIT ?'),
    countPending: p('SELECT count(*) AS n FROM sync_outbox WHERE db = ?'),
    pendingDatabases: p('SELECT DISTINCT db FROM sync_outbox ORDER BY db'),
    deadLetterDatabases: p('SELECT DISTINCT db FROM sync_dead_letters ORDER BY db'),
    putPendingBlob: p(
      `INSERT INTO pending_blobs (db, coll, id, bucket, key, content_type, body) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (db, coll, bucket, key) DO UPDATE SET id = excluded.id, content_type = excluded.content_type, body = excluded.body`,
    ),
    listPendingBlobs: p('SELECT bucket, key, content_type, body FROM pending_blobs WHERE db = ? AND coll = ? AND id = ? ORDER BY key'),
    getPendingBlob: p('SELECT bucket, key, content_type, body FROM pending_blobs WHERE db = ? AND coll = ? AND bucket = ? AND key = ?'),
    deletePendingBlob: p('DELETE FROM pending_blobs WHERE db = ? AND coll = ? AND bucket = ? AND key = ?'),
    dropPendingBlobs: p('DELETE FROM pending_blobs WHERE db = ? AND coll = ? AND id = ?'),
    putDeadLetter: p(
      `INSERT INTO sync_dead_letters (db, coll, id, reason, failed_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (db, coll, id) DO UPDATE SET reason = excluded.reason, failed_at = excluded.failed_at`,
    ),
    listDeadLetters: p('SELECT coll, id, reason, failed_at FROM sync_dead_letters WHERE db = ? ORDER BY failed_at, rowid LIMIT ?'),
    allDeadLetters: p('SELECT coll, id FROM sync_dead_letters WHERE db = ?'),
    clearDeadLetters: p('DELETE FROM sync_dead_letters WHERE db = ?'),
    listUnarchived: p(
      `SELECT ${VERSION_COLUMNS} FROM versions INDEXED BY versions_unarchived WHERE db = ? AND coll = ? AND id = ? AND archived = 0 AND ov > ?
       ORDER BY ov LIMIT ?`,
    ),
    markArchived: p('UPDATE versions SET archived = 1, body = NULL WHERE db = ? AND coll = ? AND id = ? AND ov = ?'),
    clearPending: p('DELETE FROM sync_outbox WHERE db = ? AND coll = ? AND id = ? AND seq = ?'),
    getMark: p('SELECT 1 FROM content_uploads WHERE db = ? AND coll = ? AND bucket = ? AND key = ? AND cleaning = 1'),
    putIntent: p(
      `INSERT INTO content_uploads (db, coll, bucket, key, token, id, cleaning, at) VALUES (?, ?, ?, ?, ?, ?, 0, ?)
       ON CONFLICT (db, coll, bucket, key, token) DO UPDATE SET at = excluded.at`,
    ),
    putMark: p('INSERT INTO content_uploads (db, coll, bucket, key, token, id, cleaning, at) VALUES (?, ?, ?, ?, ?, ?, 1, ?)'),
    deleteIntent: p('DELETE FROM content_uploads WHERE db = ? AND coll = ? AND bucket = ? AND key = ? AND token = ? AND cleaning = 0'),
    deleteUpload: p('DELETE FROM content_uploads WHERE db = ? AND coll = ? AND bucket = ? AND key = ? AND token = ?'),
    deleteUploadsOfKey: p('DELETE FROM content_uploads WHERE db = ? AND coll = ? AND bucket = ? AND key = ?'),
    deleteMark: p('DELETE FROM content_uploads WHERE db = ? AND coll = ? AND bucket = ? AND key = ? AND token = ? AND cleaning = 1'),
    // Stamped at 0: stale for every age, so the next sweep lists it first.
    markToIntent: p('UPDATE content_uploads SET cleaning = 0, at = 0 WHERE db = ? AND coll = ? AND bucket = ? AND key = ? AND token = ? AND cleaning = 1'),
    uploadsOfKey: p('SELECT coll, bucket, key, token, id, cleaning, at FROM content_uploads WHERE db = ? AND coll = ? AND bucket = ? AND key = ?'),
    listStaleUploads: p('SELECT coll, bucket, key, token, id, cleaning, at FROM content_uploads WHERE db = ? AND at <= ? ORDER BY at, coll, bucket, key, token LIMIT ?'),
    getLock: p('SELECT owner, expires_at FROM locks WHERE db = ? AND coll = ? AND key = ?'),
    putLock: p(
      `INSERT INTO locks (db, coll, key, owner, expires_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (db, coll, key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at`,
    ),
    deleteLock: p('DELETE FROM locks WHERE db = ? AND coll = ? AND key = ? AND owner = ?'),
    listDatabases: p('SELECT DISTINCT db FROM collection_versions ORDER BY db'),
    listCollections: p('SELECT coll FROM collection_versions WHERE db = ? ORDER BY coll'),
    // Reads only the partial index of unarchived entries, never archived history. Named, because
    // the planner would otherwise prefer versions_history, which also holds every column used
    // here but lists every version of the database.
    listUnarchivedRecords: p(
      `SELECT coll, id, min(at) AS oldest FROM versions INDEXED BY versions_unarchived
       WHERE db = ? AND archived = 0 AND (coll > ? OR (coll = ? AND id > ?))
       GROUP BY coll, id HAVING min(at) <= ? ORDER BY coll, id LIMIT ?`,
    ),
    summariseVersions: p(
      `SELECT g.id, g.n, g.lo, g.hi,
         (SELECT w.at FROM versions w WHERE w.db = ? AND w.coll = ? AND w.id = g.id AND w.ov = g.lo + 1) AS superseded
       FROM (SELECT id, count(*) AS n, min(ov) AS lo, max(ov) AS hi FROM versions
             WHERE db = ? AND coll = ? AND id > ? GROUP BY id ORDER BY id LIMIT ?) g
       ORDER BY g.id`,
    ),
    // min() with a NULL argument is NULL in SQLite, so a record without a head loses nothing.
    pruneVersions: p(
      `DELETE FROM versions WHERE db = ? AND coll = ? AND id = ?
         AND ov < min(?, (SELECT ov FROM heads WHERE db = ? AND coll = ? AND id = ?))`,
    ),
    // One statement, so one transaction: the head at the expected ov, its objects in sync.
    offloadHead: p(
      `UPDATE heads SET body = '' WHERE db = ? AND coll = ? AND id = ? AND ov = ? AND body <> ''
         AND NOT EXISTS (SELECT 1 FROM sync_outbox WHERE db = ? AND coll = ? AND id = ?)
         AND NOT EXISTS (SELECT 1 FROM sync_dead_letters WHERE db = ? AND coll = ? AND id = ?)
         AND NOT EXISTS (SELECT 1 FROM versions INDEXED BY versions_unarchived WHERE db = ? AND coll = ? AND id = ? AND archived = 0)`,
    ),
    getCollectionVersion: p('SELECT cv FROM collection_versions WHERE db = ? AND coll = ?'),
    listClaims: p('SELECT key, id FROM unique_claims WHERE db = ? AND coll = ? AND key > ? ORDER BY key LIMIT ?'),
    importVersion: p(
      `INSERT INTO versions (db, coll, id, ov, cv, op, at, actor, actor_id, actor_type, reason, deleted, size, body, archived, meta, hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    raiseCv: p(
      `INSERT INTO collection_versions (db, coll, cv) VALUES (?, ?, ?)
       ON CONFLICT (db, coll) DO UPDATE SET cv = max(cv, excluded.cv)`,
    ),
    setCounter: p(
      `INSERT INTO counters (db, coll, name, value) VALUES (?, ?, ?, ?)
       ON CONFLICT (db, coll, name) DO UPDATE SET value = excluded.value`,
    ),
    countHeads: p('SELECT count(*) AS n FROM heads WHERE db = ? AND coll = ?'),
    // replaceCollections: what a namespace holds (pending blobs stay: restored records may point at them).
    clearNamespace: ['heads', 'versions', 'unique_claims', 'collection_versions', 'sync_outbox', 'sync_dead_letters'].map((table) => p(`DELETE FROM ${table} WHERE db = ? AND coll = ?`)),
    clearCounters: p('DELETE FROM counters WHERE db = ? AND coll = ?'),
    clearCounterWindows: p('DELETE FROM counter_windows WHERE db = ? AND coll = ?'),
    copyNamespace: [
      `INSERT INTO heads (db, coll, ${HEAD_COLUMNS}) SELECT ?, coll, ${HEAD_COLUMNS} FROM heads WHERE db = ? AND coll = ?`,
      `INSERT INTO versions (db, coll, ${VERSION_COLUMNS}, actor_id, actor_type) SELECT ?, coll, ${VERSION_COLUMNS}, actor_id, actor_type FROM versions WHERE db = ? AND coll = ?`,
      'INSERT INTO unique_claims (db, coll, key, id) SELECT ?, coll, key, id FROM unique_claims WHERE db = ? AND coll = ?',
      'INSERT INTO collection_versions (db, coll, cv) SELECT ?, coll, cv FROM collection_versions WHERE db = ? AND coll = ?',
    ].map(p),
    markAllPending: p('INSERT INTO sync_outbox (db, coll, id, seq) SELECT db, coll, id, cv FROM heads WHERE db = ? AND coll = ?'),
  };
}

interface UploadSqlRow {
  coll: string;
  bucket: string;
  key: string;
  token: string;
  id: string;
  cleaning: number;
  at: number;
}

interface PendingBlobRow {
  bucket: string;
  key: string;
  content_type: string;
  body: Buffer;
}

function toPendingBlob(row: PendingBlobRow): PendingBlob {
  return { bucket: row.bucket, key: row.key, contentType: row.content_type, body: new Uint8Array(row.body) };
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
    hash: row.hash,
  };
}

function toHistoryRow(id: string, row: HistorySqlRow): HistoryRow {
  return {
    id,
    ov: row.ov,
    cv: row.cv,
    op: row.op,
    at: row.at,
    actor: JSON.parse(row.actor) as Actor,
    reason: row.reason,
    deleted: row.deleted === 1,
    size: row.size,
    archived: row.archived === 1,
  };
}

function toVersion(row: VersionSqlRow): VersionRow {
  return {
    ...toHistoryRow(row.id, row),
    body: row.body,
    meta: JSON.parse(row.meta) as Record<string, IndexedValue>,
    hash: row.hash,
  };
}

/**
 * Whether the process that took a lease may still be running. A SQLite file is shared by
 * processes of one host, so a lease whose owner names its process and process-id namespace
 * (`…@pid:<pid>:<namespace>`, as the blob sync's do, see `processTag`) is free as soon as that
 * process is gone: a crashed writer's records are repaired at once instead of after the lease.
 * Any doubt (no namespace, another namespace such as another container's, a process we may not
 * signal) counts as alive, and the lease then simply runs out.
 */
function holderMayBeAlive(owner: string): boolean {
  const m = /@pid:(\d+):(\d+)$/.exec(owner);
  const here = /:(\d+)$/.exec(processTag())?.[1];
  if (!m || here === undefined || m[2] !== here) return true;
  const pid = m[1]!;
  if (Number(pid) === process.pid) return true;
  try {
    process.kill(Number(pid), 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Creates the schema, or checks and upgrades the one the file holds (see `SCHEMA_VERSION`). */
function openSchema(db: Database.Database): void {
  // Another process may be creating the schema at the same moment; IMMEDIATE serialises that.
  db
    .transaction(() => {
      const version = db.pragma('user_version', { simple: true }) as number;
      const fresh = db.prepare(`SELECT count(*) AS n FROM sqlite_master WHERE name = 'heads'`).get() as { n: number };
      if (fresh.n > 0 && version !== SCHEMA_VERSION && !UPGRADABLE_FROM.includes(version)) {
        throw new Error(
          `the file holds Xronox index schema ${version}, but this version needs schema ${SCHEMA_VERSION}; export it with the previous version or start from a new file`,
        );
      }
      db.exec(SCHEMA);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    })
    .immediate();
}
