import type * as Database from './sqlite-driver.js';
import type { Effect, IndexDriver, OutboxQuery, ReadSet, Transaction, UploadRow, VersionRange } from '../../contracts/index-driver.js';
import type {
  ActorQuery,
  AsOfQuery,
  CounterWindow,
  CounterWindowQuery,
  DeadLetter,
  HeadQuery,
  HeadRow,
  HistoryRow,
  Namespace,
  PendingBlob,
  PendingSync,
  UnarchivedRecord,
  VersionRow,
  VersionSummary,
} from '../../contracts/index-store.js';
import { processGone } from '../../foundation/process.js';
import { decideStepsSync, groupWindows, readRowByRow, type RowReader, versionPoint, windowKeyRange, windowRangesBelow } from '../../store/driver-kit.js';
import { compileFilter, metaFields } from './sqlite-filter.js';
import { openSqliteFile, type SqliteFileOptions, statementCache, synchronous } from './sqlite-open.js';
import { openSchema } from './sqlite-schema.js';
import type { HeadSqlRow, HistorySqlRow, PendingBlobSqlRow, Statements, UploadSqlRow, VersionSqlRow } from './sqlite-statements.js';
import { HEAD_FIELDS, prepareStatements, toHead, toHistoryRow, toPendingBlob, toVersion, VERSION_COLUMNS } from './sqlite-statements.js';

export interface SqliteIndexDriverOptions extends SqliteFileOptions {
  /** The page cache of this connection, in MiB. Default 64. */
  cacheMiB?: number;
}

const SORT_COLUMNS = { id: 'id', createdAt: 'created_at', updatedAt: 'updated_at' } as const;

/** A term of a `WHERE` and its parameters; `false` ones are left out. */
type Condition = readonly [sql: string, ...params: unknown[]] | false;

/** A filter over indexed values as a condition (see `compileFilter`). */
function filtered(filter: HeadQuery['filter'], column?: string): Condition {
  const params: unknown[] = [];
  return filter ? [compileFilter(filter, params, metaFields(column)), ...params] : false;
}

/**
 * The embedded index driver: one SQLite file (WAL mode) holding every database of a connection.
 * A transaction is one `BEGIN IMMEDIATE`, which takes the file's write lock before it reads, so
 * several processes can share the file (the busy timeout queues them) and what a plan read cannot
 * change before its effects are written.
 */
export class SqliteIndexDriver implements IndexDriver {
  readonly name = 'sqlite';
  readonly multiProcess = true;
  readonly #db: Database.Database;
  /** The durability the file was opened with (`durability`). */
  readonly #synchronous: 'FULL' | 'NORMAL';
  readonly #s: Statements;
  /** Statements of SQL that varies with a query's shape (see `#select`). */
  readonly #dynamic: (sql: string) => Database.Statement;
  readonly #run: Database.Transaction<(tx: Transaction<unknown>) => unknown>;

  constructor(options: SqliteIndexDriverOptions) {
    this.#synchronous = synchronous(options);
    this.#db = openSqliteFile(options, (db) => {
      db.pragma('foreign_keys = OFF');
      // SQLite's default page cache (2 MiB) makes a random read into a long history a page miss at
      // every level of the index; 64 MiB keeps the upper levels of large indexes in memory.
      db.pragma(`cache_size = -${(options.cacheMiB ?? 64) * 1024}`);
      openSchema(db);
    });
    this.#s = prepareStatements(this.#db);
    this.#dynamic = statementCache(this.#db);
    const reader = rowReader(this.#s);
    const read = (reads: ReadSet) => readRowByRow(reads, reader, Date.now());
    this.#run = this.#db.transaction((tx: Transaction<unknown>) => {
      const decision = decideStepsSync(tx, read);
      for (const effect of decision.effects) this.#apply(effect);
      return decision.result;
    });
  }

  async transact<T>(tx: Transaction<T>): Promise<T> {
    // A read-only plan reads in a deferred transaction (a consistent snapshot in WAL mode) and
    // never waits for the write lock; every other plan takes the write lock before it reads.
    if (tx.readOnly) return this.#run.deferred(tx) as T;
    // A write that need not survive a power loss (a lease: only live processes need it, and a power
    // loss ends every process sharing the file) skips the fsync. In WAL mode a `NORMAL` commit
    // survives a process crash; the next `FULL` commit makes it durable. `exec`, not a kept
    // statement: SQLite applies this pragma when it prepares it.
    const noFsync = (tx.durability ?? 'always') !== 'always' && this.#synchronous === 'FULL';
    if (noFsync) this.#db.exec('PRAGMA synchronous = NORMAL');
    try {
      return this.#run.immediate(tx) as T;
    } finally {
      if (noFsync) this.#db.exec('PRAGMA synchronous = FULL');
    }
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }

  // ---- reads --------------------------------------------------------------------------------

  /**
   * The rows of `SELECT columns FROM source WHERE conditions ORDER BY order LIMIT limit`. The limit
   * is written in: a bound `LIMIT ?` makes SQLite prepare the statement again at every run (the
   * value may change its plan), which costs more than a point query itself; the statements of the
   * shapes and limits in use are kept. `-1` is SQLite's "no limit".
   */
  #select<R>(columns: string, source: string, conditions: readonly Condition[], order: string, limit = -1): R[] {
    if (!Number.isSafeInteger(limit)) throw new RangeError(`A limit is a whole number, not ${limit}`);
    const kept = conditions.filter((c) => c !== false);
    const sql = `SELECT ${columns} FROM ${source} WHERE ${kept.map(([term]) => term).join(' AND ')} ORDER BY ${order} LIMIT ${limit}`;
    return this.#dynamic(sql).all(...kept.flatMap(([, ...params]) => params)) as R[];
  }

  async getHead(ns: Namespace, id: string): Promise<HeadRow | null> {
    const row = this.#s.getHead.get(ns.dbName, ns.collection, id) as HeadSqlRow | undefined;
    return row ? toHead(row) : null;
  }

  async listVersions(ns: Namespace, id: string, range: VersionRange): Promise<VersionRow[]> {
    const point = versionPoint(range);
    if (point) {
      const row = this.#s.versionAt[point.by].get(ns.dbName, ns.collection, id, point.value) as VersionSqlRow | undefined;
      return row ? [toVersion(row)] : [];
    }
    const at = range.at;
    const order = at === undefined ? (range.order === 'asc' ? 'ov' : 'ov DESC') : 'at' in at ? 'at DESC, ov DESC' : 'cv DESC';
    // Only the few entries still waiting for archival, in their partial index: never a long history.
    const from = range.unarchived ? 'versions INDEXED BY versions_unarchived' : 'versions';
    const rows = this.#select<VersionSqlRow>(VERSION_COLUMNS, from, [
      ['db = ? AND coll = ? AND id = ?', ns.dbName, ns.collection, id],
      range.beforeOv !== undefined && ['ov < ?', range.beforeOv],
      range.afterOv !== undefined && ['ov > ?', range.afterOv],
      range.unarchived === true && ['archived = 0'],
      at !== undefined && ('at' in at ? ['at <= ?', at.at] : ['cv <= ?', at.cv]),
    ], order, at ? 1 : range.limit);
    return rows.map(toVersion);
  }

  async listHistory(ns: Namespace, id: string, range: { beforeOv?: number; limit: number }): Promise<HistoryRow[]> {
    const beforeOv = range.beforeOv ?? Number.MAX_SAFE_INTEGER;
    const rows = this.#s.listHistory.all(ns.dbName, ns.collection, id, beforeOv, range.limit) as HistorySqlRow[];
    return rows.map((row) => toHistoryRow(id, row));
  }

  async listHeads(ns: Namespace, query: HeadQuery): Promise<HeadRow[]> {
    const column = SORT_COLUMNS[query.sort.field];
    const [dir, cmp] = query.sort.direction === 1 ? ['ASC', '>'] : ['DESC', '<'];
    const after = query.after;
    const order = column === 'id' ? `id ${dir}` : `${column} ${dir}, id ${dir}`;
    const rows = this.#select<HeadSqlRow>(HEAD_FIELDS, 'heads', [
      ['db = ? AND coll = ?', ns.dbName, ns.collection],
      !query.includeDeleted && ['deleted = 0'],
      filtered(query.filter),
      after !== undefined && (column === 'id' ? [`id ${cmp} ?`, after.id] : [`(${column}, id) ${cmp} (?, ?)`, after.value, after.id]),
    ], order, query.limit);
    return rows.map(toHead);
  }

  async queryAt(ns: Namespace, query: AsOfQuery): Promise<VersionRow[]> {
    const [dir, cmp] = query.direction === 1 ? ['ASC', '>'] : ['DESC', '<'];
    // One index seek per record (versions_by_time), driven by the heads in id order.
    const source = 'heads h JOIN versions v ON v.db = h.db AND v.coll = h.coll AND v.id = h.id';
    const version = 'SELECT w.ov FROM versions w WHERE w.db = h.db AND w.coll = h.coll AND w.id = h.id AND w.at <= ? ORDER BY w.at DESC, w.ov DESC LIMIT 1';
    const rows = this.#select<VersionSqlRow>(VERSION_COLUMNS.replace(/\w+/g, 'v.$&'), source, [
      [`v.ov = (${version})`, query.at],
      ['h.db = ? AND h.coll = ?', ns.dbName, ns.collection],
      query.afterId !== undefined && [`h.id ${cmp} ?`, query.afterId],
      !query.includeDeleted && ['v.deleted = 0'],
      filtered(query.filter, 'v.meta'),
    ], `h.id ${dir}`, query.limit);
    return rows.map(toVersion);
  }

  async listVersionsByActor(ns: Namespace, actorId: string, query: ActorQuery): Promise<VersionRow[]> {
    const before = query.before;
    const rows = this.#select<VersionSqlRow>(VERSION_COLUMNS, 'versions', [
      ['db = ? AND coll = ? AND actor_id = ?', ns.dbName, ns.collection, actorId],
      query.actorType !== undefined && ['actor_type = ?', query.actorType],
      query.from !== undefined && ['at >= ?', query.from],
      query.to !== undefined && ['at <= ?', query.to],
      before !== undefined && ['(at, id, ov) < (?, ?, ?)', before.at, before.id, before.ov],
    ], 'at DESC, id DESC, ov DESC', query.limit);
    return rows.map(toVersion);
  }

  async listClaims(ns: Namespace, query: { key?: string; afterKey?: string; limit: number }): Promise<Array<{ key: string; id: string }>> {
    const { dbName, collection } = ns;
    if (query.key === undefined) return this.#s.listClaims.all(dbName, collection, query.afterKey ?? '', query.limit) as Array<{ key: string; id: string }>;
    const id = this.#s.getClaim.get(dbName, collection, query.key) as string | undefined;
    return id === undefined ? [] : [{ key: query.key, id }];
  }

  async listOutbox(dbName: string, query: OutboxQuery): Promise<PendingSync[]> {
    // The queue's order is the rowid's: an upsert keeps a re-marked entry's row.
    const order = query.order === 'id' ? 'id' : 'rowid';
    return this.#select<PendingSync>('coll AS collection, id, seq', 'sync_outbox', [
      ['db = ?', dbName],
      query.collection !== undefined && ['coll = ?', query.collection],
      query.id !== undefined && ['id = ?', query.id],
      query.afterId !== undefined && ['id > ?', query.afterId],
      query.maxSeq !== undefined && ['seq <= ?', query.maxSeq],
    ], order, query.limit);
  }

  async listDeadLetters(dbName: string, query: { limit: number }): Promise<DeadLetter[]> {
    return this.#s.listDeadLetters.all(dbName, query.limit) as DeadLetter[];
  }

  async listPendingBlobs(ns: Namespace, id: string | null, query?: { bucket: string; key: string }): Promise<PendingBlob[]> {
    const rows = this.#select<PendingBlobSqlRow>('bucket, key, content_type, body', 'pending_blobs', [
      ['db = ? AND coll = ?', ns.dbName, ns.collection],
      id !== null && ['id = ?', id],
      query !== undefined && ['bucket = ? AND key = ?', query.bucket, query.key],
    ], 'key');
    return rows.map(toPendingBlob);
  }

  async getCounters(dbName: string, collection: string): Promise<Record<string, number>> {
    const rows = this.#s.getCounters.all(dbName, collection) as Array<{ name: string; value: number }>;
    return Object.fromEntries(rows.map((r) => [r.name, r.value]));
  }

  async getCounterWindows(dbName: string, collection: string, query: CounterWindowQuery): Promise<CounterWindow[]> {
    const { from, below } = windowKeyRange(query.granularity);
    const to = query.to ?? null;
    const rows = this.#s.getCounterWindows.all(dbName, collection, from, below, query.from ?? '', to, to);
    return groupWindows(rows as Array<{ win: string; name: string; value: number }>);
  }

  async listNamespaces(dbName?: string): Promise<Array<Namespace & { cv: number }>> {
    return (dbName === undefined ? this.#s.allNamespaces.all() : this.#s.namespacesOf.all(dbName)) as Array<Namespace & { cv: number }>;
  }

  async listUnarchivedRecords(
    dbName: string,
    query: { writtenBefore: string; after?: { collection: string; id: string }; limit: number },
  ): Promise<UnarchivedRecord[]> {
    const { collection, id } = query.after ?? { collection: '', id: '' };
    return this.#s.listUnarchivedRecords.all(dbName, collection, collection, id, query.writtenBefore, query.limit) as UnarchivedRecord[];
  }

  async listHeadIds(ns: Namespace, query: { afterId?: string; limit: number }): Promise<string[]> {
    return this.#s.listHeadIds.all(ns.dbName, ns.collection, query.afterId ?? '', query.limit) as string[];
  }

  async summariseVersions(ns: Namespace, query: { afterId?: string; limit: number }): Promise<VersionSummary[]> {
    const { dbName, collection } = ns;
    return this.#s.summariseVersions.all(dbName, collection, dbName, collection, query.afterId ?? '', query.limit) as VersionSummary[];
  }

  // ---- transactions -------------------------------------------------------------------------

  /** One effect, as statements of the open transaction. */
  #apply(e: Effect): void {
    const s = this.#s;
    // Counter effects name their database and collection themselves; `copyNamespace` names two.
    const { dbName: db, collection: coll } = (e as { ns?: Namespace }).ns ?? (e as Partial<Namespace>);
    switch (e.kind) {
      case 'putHead': {
        const h = e.head;
        s.putHead.run(db, coll, e.id, h.ov, h.cv, h.deleted ? 1 : 0, h.createdAt, h.updatedAt, h.deletedAt, JSON.stringify(h.meta), h.body, h.hash);
        return;
      }
      case 'putVersion': {
        const v = e.version;
        const actor = v.actor;
        const plain = typeof actor === 'string';
        s.insertVersion.run(
          db, coll, v.id, v.ov, v.cv, v.op, v.at, JSON.stringify(actor), plain ? actor : actor.identifier, plain ? null : actor.type,
          v.reason, v.deleted ? 1 : 0, v.size, v.body, v.archived ? 1 : 0, JSON.stringify(v.meta), v.hash,
        );
        return;
      }
      case 'deleteRecord': for (const t of e.tables) s.deleteOfRecord[t].run(db, coll, e.id, ...(t === 'versions' ? [e.belowOv ?? Infinity] : [])); return;
      case 'dropBodies': if (e.ovs === null) s.offloadHead.run(db, coll, e.id); else for (const ov of e.ovs) s.markArchived.run(db, coll, e.id, ov); return;
      case 'putClaim': s.putClaim.run(db, coll, e.key, e.id); return;
      case 'putOutbox': s.markPending.run(db, coll, e.id, e.seq); return;
      case 'putPendingBlob': s.putPendingBlob.run(db, coll, e.blob.bucket, e.blob.key, e.id, e.blob.contentType, Buffer.from(e.blob.body)); return;
      case 'deletePendingBlobs': for (const b of e.keys) s.deletePendingBlob.run(db, coll, b.bucket, b.key); return;
      case 'putDeadLetter': s.putDeadLetter.run(db, coll, e.id, e.reason, e.failedAt); return;
      case 'counters': {
        const [totals, windows] = e.add ? s.addCounts : s.setCounts;
        for (const name in e.counts) if (e.window === null) totals.run(db, coll, name, e.counts[name]); else windows.run(db, coll, e.window, name, e.counts[name]);
        return;
      }
      case 'deleteCounters': if (e.window !== null) s.deleteWindow.run(db, coll, e.window); else for (const clear of s.clearCounters) clear.run(db, coll); return;
      case 'setCollectionVersion': s.setCollectionVersion.run(db, coll, e.cv); return;
      case 'putLock': s.putLock.run(db, coll, e.key, e.owner, Date.now() + e.leaseMs); return;
      case 'deleteLock': s.deleteLock.run(db, coll, e.key); return;
      // Stamped at 0, a stale intent is stale for every age, so the next sweep lists it first.
      case 'putUpload': s.putUpload.run(db, coll, e.bucket, e.key, e.row.token, e.row.id, e.row.cleaning ? 1 : 0, e.stamp === 'now' ? Date.now() : 0); return;
      case 'deleteUpload': s.deleteUpload.run(db, coll, e.bucket, e.key, e.token); return;
      case 'clearNamespace': for (const clear of s.clearNamespace) clear.run(db, coll); return;
      case 'copyNamespace':
        for (const copy of s.copyNamespace) copy.run(e.to.dbName, e.to.collection, e.from.dbName, e.from.collection);
        s.markAllPending.run(e.to.dbName, e.to.collection);
        return;
    }
  }
}

/** What a transaction step reads, row by row (see `readRowByRow`), inside its transaction. */
function rowReader(s: Statements): RowReader {
  const uploadRow = (r: UploadSqlRow, now: number): UploadRow => ({ id: r.id, token: r.token, cleaning: r.cleaning === 1, ageMs: Math.max(0, now - r.at) });
  return {
    head: (r) => {
      const row = s.headState.get(r.dbName, r.collection, r.id) as [ov: number, cv: number, deleted: number, offloaded: number] | undefined;
      return row && { ov: row[0], cv: row[1], deleted: row[2] === 1, offloaded: row[3] === 1 };
    },
    claim: (c) => s.getClaim.get(c.dbName, c.collection, c.key) as string | undefined,
    outbox: (r) => s.getPending.get(r.dbName, r.collection, r.id) as number | undefined,
    hasDeadLetter: (r) => s.hasDeadLetter.get(r.dbName, r.collection, r.id) !== undefined,
    unarchived: (r) => s.countUnarchived.get(r.dbName, r.collection, r.id) as number,
    versionsBelow: (r) => s.countVersionsBelow.get(r.dbName, r.collection, r.id, r.belowOv) as number,
    collectionVersion: (ns) => s.getCollectionVersion.get(ns.dbName, ns.collection) as number | undefined,
    lock: (l, now) => {
      const row = s.getLock.get(l.dbName, l.collection, l.key) as { owner: string; expires_at: number } | undefined;
      // A SQLite file is shared by the processes of one host: a lease of one that is gone is free.
      return row && { owner: row.owner, expired: row.expires_at <= now || processGone(row.owner) };
    },
    uploads: (u, now) => (s.uploadsOfKey.all(u.dbName, u.collection, u.bucket, u.key) as UploadSqlRow[]).map((r) => uploadRow(r, now)),
    headCount: (ns) => s.countHeads.get(ns.dbName, ns.collection) as number,
    outboxCount: (dbName) => s.countPending.get(dbName) as number,
    allDeadLetters: (dbName) => s.allDeadLetters.all(dbName) as ReturnType<RowReader['allDeadLetters']>,
    // Granularities' keys do not overlap, so no window comes twice.
    counterWindows: (q) => windowRangesBelow(q.before).flatMap((r) => s.windowsBelow.all(q.dbName, q.collection, r.from, r.below) as string[]),
    staleUploads: (q, now) =>
      (s.staleUploads.all(q.dbName, now - q.olderThanMs, q.limit) as UploadSqlRow[]).map((r) => ({ ...uploadRow(r, now), collection: r.coll, bucket: r.bucket, key: r.key })),
    namespaces: (dbName) => s.namespacesOf.all(dbName) as ReturnType<RowReader['namespaces']>,
  };
}
