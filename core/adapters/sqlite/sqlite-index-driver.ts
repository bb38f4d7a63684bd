import type Database from 'better-sqlite3';
import type { Effect, IndexDriver, OutboxQuery, ReadRows, ReadSet, Transaction, UploadRow, VersionRange } from '../../contracts/index-driver.js';
import { isDecision, nsKey, refKey, uploadKey } from '../../contracts/index-driver.js';
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
import type { FilterNode } from '../../foundation/filter-tree.js';
import { processGone } from '../../foundation/process.js';
import { groupWindows, keyed, windowRangeEnd } from '../../store/driver-kit.js';
import { compileFilter, metaFields } from './sqlite-filter.js';
import { openSqliteFile } from './sqlite-open.js';
import { openSchema } from './sqlite-schema.js';
import type { HeadSqlRow, HistorySqlRow, PendingBlobSqlRow, Statements, UploadSqlRow, VersionSqlRow } from './sqlite-statements.js';
import { HEAD_COLUMNS, prepareStatements, toHead, toHistoryRow, toPendingBlob, toVersion, VERSION_COLUMNS } from './sqlite-statements.js';

export interface SqliteIndexDriverOptions {
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
const SORT_COLUMNS = { id: 'id', createdAt: 'created_at', updatedAt: 'updated_at' } as const;
/** `LIMIT -1` is SQLite's "no limit". */
const NO_LIMIT = -1;

/**
 * A `LIMIT` with its number written in. A bound `LIMIT ?` makes SQLite prepare the statement again
 * at every run (the value may change its plan), which costs more than a point query itself; the
 * statements of the limits in use are kept (`#all`).
 */
function limit(n: number): string {
  if (!Number.isSafeInteger(n)) throw new RangeError(`A limit is a whole number, not ${n}`);
  return `LIMIT ${n}`;
}

type Condition = readonly [sql: string, ...params: unknown[]];

/** `AND`ed conditions and their parameters in order; `false` ones are left out. */
function where(conditions: ReadonlyArray<Condition | false>): { sql: string; params: unknown[] } {
  const kept = conditions.filter((c): c is Condition => c !== false);
  return { sql: kept.map(([sql]) => sql).join(' AND '), params: kept.flatMap(([, ...params]) => params) };
}

/** A filter over indexed values as a condition (see `compileFilter`). */
function filtered(filter: FilterNode | null, column?: string): Condition | false {
  if (!filter) return false;
  const params: unknown[] = [];
  return [compileFilter(filter, params, metaFields(column)), ...params];
}

const ref = (r: Namespace & { id: string }) => refKey(r, r.id);
/** The row a statement gives (a plucked one: its value), if any. */
const value = <V>(stmt: Database.Statement, ...params: unknown[]) => stmt.get(...params) as V | undefined;


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
  /** The durability the file was opened with (`durability`), restored after each write that skips the fsync. */
  readonly #synchronous: 'FULL' | 'NORMAL';
  readonly #s: Statements;
  readonly #dynamic = new Map<string, Database.Statement>();
  readonly #run: Database.Transaction<(tx: Transaction<unknown>) => unknown>;

  constructor(options: SqliteIndexDriverOptions) {
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
    this.#s = prepareStatements(this.#db);
    this.#run = this.#db.transaction((tx: Transaction<unknown>) => {
      let outcome = tx.decide(this.#read(tx.reads));
      while (!isDecision(outcome)) outcome = outcome.decide(this.#read(outcome.reads));
      if (tx.readOnly && outcome.effects.length > 0) throw new Error('A read-only plan returned effects');
      for (const effect of outcome.effects) this.#apply(effect);
      return outcome.result;
    });
  }

  async transact<T>(tx: Transaction<T>): Promise<T> {
    // A read-only plan reads in a deferred transaction (a consistent snapshot in WAL mode) and
    // never waits for the write lock; every other plan takes the write lock before it reads.
    const run = () => (tx.readOnly ? this.#run.deferred(tx) : this.#run.immediate(tx)) as T;
    return tx.durable === false ? this.#withoutFsync(run) : run();
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

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }

  async ping(): Promise<void> {
    this.#db.prepare('SELECT 1').get();
  }

  // ---- reads --------------------------------------------------------------------------------

  /** SQL that varies with a query's shape; shapes repeat, so their statements are kept (bounded). */
  #all<R>(sql: string, params: readonly unknown[]): R[] {
    let stmt = this.#dynamic.get(sql);
    if (!stmt) {
      if (this.#dynamic.size >= 256) this.#dynamic.clear();
      stmt = this.#db.prepare(sql);
      this.#dynamic.set(sql, stmt);
    }
    return stmt.all(...params) as R[];
  }

  async getHead(ns: Namespace, id: string): Promise<HeadRow | null> {
    const row = this.#s.getHead.get(ns.dbName, ns.collection, id) as HeadSqlRow | undefined;
    return row ? toHead(row) : null;
  }

  async listVersions(ns: Namespace, id: string, range: VersionRange): Promise<VersionRow[]> {
    const point = this.#pointRead(ns, id, range);
    if (point !== undefined) return point === null ? [] : [toVersion(point)];
    const at = range.at;
    const w = where([
      ['db = ? AND coll = ? AND id = ?', ns.dbName, ns.collection, id],
      range.beforeOv !== undefined && ['ov < ?', range.beforeOv],
      range.afterOv !== undefined && ['ov > ?', range.afterOv],
      // Only the few entries still waiting for archival, in their partial index: never a long history.
      range.unarchived === true && ['archived = 0'],
      at !== undefined && ('at' in at ? ['at <= ?', at.at] : ['cv <= ?', at.cv]),
    ]);
    const order = at === undefined ? (range.order === 'asc' ? 'ov' : 'ov DESC') : 'at' in at ? 'at DESC, ov DESC' : 'cv DESC';
    const from = range.unarchived ? 'versions INDEXED BY versions_unarchived' : 'versions';
    const sql = `SELECT ${VERSION_COLUMNS} FROM ${from} WHERE ${w.sql} ORDER BY ${order} ${limit(at ? 1 : (range.limit ?? NO_LIMIT))}`;
    return this.#all<VersionSqlRow>(sql, w.params).map(toVersion);
  }

  /**
   * One version by ov, time or cv (`getVersion`, `findVersionAt`: the hot reads) through a
   * prepared statement; `undefined` when the range is not such a point.
   */
  #pointRead(ns: Namespace, id: string, range: VersionRange): VersionSqlRow | null | undefined {
    const { at, beforeOv, afterOv, unarchived, limit: max } = range;
    if (unarchived === true) return undefined;
    const args = [ns.dbName, ns.collection, id] as const;
    if (at !== undefined && beforeOv === undefined && afterOv === undefined) {
      const row = 'at' in at ? this.#s.versionAtTime.get(...args, at.at) : this.#s.versionAtCv.get(...args, at.cv);
      return (row as VersionSqlRow | undefined) ?? null;
    }
    if (at === undefined && beforeOv !== undefined && afterOv !== undefined && beforeOv - afterOv === 2 && (max ?? 1) >= 1) {
      return (this.#s.versionByOv.get(...args, afterOv + 1) as VersionSqlRow | undefined) ?? null;
    }
    return undefined;
  }

  async listHistory(ns: Namespace, id: string, range: { beforeOv?: number; limit: number }): Promise<HistoryRow[]> {
    const rows = this.#s.listHistory.all(ns.dbName, ns.collection, id, range.beforeOv ?? Number.MAX_SAFE_INTEGER, range.limit) as HistorySqlRow[];
    return rows.map((row) => toHistoryRow(id, row));
  }

  async listHeads(ns: Namespace, query: HeadQuery): Promise<HeadRow[]> {
    const column = SORT_COLUMNS[query.sort.field];
    const [dir, cmp] = query.sort.direction === 1 ? ['ASC', '>'] : ['DESC', '<'];
    const after = query.after;
    const w = where([
      ['db = ? AND coll = ?', ns.dbName, ns.collection],
      !query.includeDeleted && ['deleted = 0'],
      filtered(query.filter),
      after !== undefined && (column === 'id' ? [`id ${cmp} ?`, after.id] : [`(${column}, id) ${cmp} (?, ?)`, after.value, after.id]),
    ]);
    const order = column === 'id' ? `id ${dir}` : `${column} ${dir}, id ${dir}`;
    return this.#all<HeadSqlRow>(`SELECT ${HEAD_COLUMNS} FROM heads WHERE ${w.sql} ORDER BY ${order} ${limit(query.limit)}`, w.params).map(toHead);
  }

  async queryAt(ns: Namespace, query: AsOfQuery): Promise<VersionRow[]> {
    const [dir, cmp] = query.direction === 1 ? ['ASC', '>'] : ['DESC', '<'];
    const w = where([
      ['h.db = ? AND h.coll = ?', ns.dbName, ns.collection],
      query.afterId !== undefined && [`h.id ${cmp} ?`, query.afterId],
      !query.includeDeleted && ['v.deleted = 0'],
      filtered(query.filter, 'v.meta'),
    ]);
    // One index seek per record (versions_by_time), driven by the heads in id order.
    const sql = `SELECT ${VERSION_COLUMNS.split(', ').map((c) => `v.${c}`).join(', ')}
      FROM heads h JOIN versions v ON v.db = h.db AND v.coll = h.coll AND v.id = h.id
        AND v.ov = (SELECT w.ov FROM versions w WHERE w.db = h.db AND w.coll = h.coll AND w.id = h.id AND w.at <= ?
                    ORDER BY w.at DESC, w.ov DESC LIMIT 1)
      WHERE ${w.sql} ORDER BY h.id ${dir} ${limit(query.limit)}`;
    return this.#all<VersionSqlRow>(sql, [query.at, ...w.params]).map(toVersion);
  }

  async listVersionsByActor(ns: Namespace, actorId: string, query: ActorQuery): Promise<VersionRow[]> {
    const before = query.before;
    const w = where([
      ['db = ? AND coll = ? AND actor_id = ?', ns.dbName, ns.collection, actorId],
      query.actorType !== undefined && ['actor_type = ?', query.actorType],
      query.from !== undefined && ['at >= ?', query.from],
      query.to !== undefined && ['at <= ?', query.to],
      before !== undefined && ['(at, id, ov) < (?, ?, ?)', before.at, before.id, before.ov],
    ]);
    const sql = `SELECT ${VERSION_COLUMNS} FROM versions WHERE ${w.sql} ORDER BY at DESC, id DESC, ov DESC ${limit(query.limit)}`;
    return this.#all<VersionSqlRow>(sql, w.params).map(toVersion);
  }

  async listClaims(ns: Namespace, query: { key?: string; afterKey?: string; limit: number }): Promise<Array<{ key: string; id: string }>> {
    if (query.key === undefined) return this.#s.listClaims.all(ns.dbName, ns.collection, query.afterKey ?? '', query.limit) as Array<{ key: string; id: string }>;
    const id = this.#s.getClaim.get(ns.dbName, ns.collection, query.key) as string | undefined;
    return id === undefined ? [] : [{ key: query.key, id }];
  }

  async listOutbox(dbName: string, query: OutboxQuery): Promise<PendingSync[]> {
    const w = where([
      ['db = ?', dbName],
      query.collection !== undefined && ['coll = ?', query.collection],
      query.id !== undefined && ['id = ?', query.id],
      query.afterId !== undefined && ['id > ?', query.afterId],
      query.maxSeq !== undefined && ['seq <= ?', query.maxSeq],
    ]);
    // The queue's order is the rowid's: an upsert keeps a re-marked entry's row.
    const sql = `SELECT coll AS collection, id, seq FROM sync_outbox WHERE ${w.sql} ORDER BY ${query.order === 'id' ? 'id' : 'rowid'} ${limit(query.limit)}`;
    return this.#all<PendingSync>(sql, w.params);
  }

  async listDeadLetters(dbName: string, query: { limit: number }): Promise<DeadLetter[]> {
    return this.#s.listDeadLetters.all(dbName, query.limit) as DeadLetter[];
  }

  async listPendingBlobs(ns: Namespace, id: string | null, query?: { bucket: string; key: string }): Promise<PendingBlob[]> {
    const w = where([['db = ? AND coll = ?', ns.dbName, ns.collection], id !== null && ['id = ?', id], query !== undefined && ['bucket = ? AND key = ?', query.bucket, query.key]]);
    return this.#all<PendingBlobSqlRow>(`SELECT bucket, key, content_type, body FROM pending_blobs WHERE ${w.sql} ORDER BY key`, w.params).map(toPendingBlob);
  }

  async getCounters(dbName: string, collection: string): Promise<Record<string, number>> {
    const rows = this.#s.getCounters.all(dbName, collection) as Array<{ name: string; value: number }>;
    return Object.fromEntries(rows.map((r) => [r.name, r.value]));
  }

  async getCounterWindows(dbName: string, collection: string, query: CounterWindowQuery): Promise<CounterWindow[]> {
    const prefix = `${query.granularity}:`;
    const rows = this.#s.getCounterWindows.all(
      dbName, collection, prefix, windowRangeEnd(prefix), query.from ?? '', query.to ?? null, query.to ?? null,
    ) as Array<{ win: string; name: string; value: number }>;
    return groupWindows(rows);
  }

  async listNamespaces(dbName?: string): Promise<Array<Namespace & { cv: number }>> {
    return (dbName === undefined ? this.#s.allNamespaces.all() : this.#s.namespacesOf.all(dbName)) as Array<Namespace & { cv: number }>;
  }

  async listUnarchivedRecords(
    dbName: string,
    query: { writtenBefore: string; after?: { collection: string; id: string }; limit: number },
  ): Promise<UnarchivedRecord[]> {
    const after = query.after ?? { collection: '', id: '' };
    return this.#s.listUnarchivedRecords.all(dbName, after.collection, after.collection, after.id, query.writtenBefore, query.limit) as UnarchivedRecord[];
  }

  async listHeadIds(ns: Namespace, query: { afterId?: string; limit: number }): Promise<string[]> {
    return this.#s.listHeadIds.all(ns.dbName, ns.collection, query.afterId ?? '', query.limit) as string[];
  }

  async summariseVersions(ns: Namespace, query: { afterId?: string; limit: number }): Promise<VersionSummary[]> {
    return this.#s.summariseVersions.all(ns.dbName, ns.collection, ns.dbName, ns.collection, query.afterId ?? '', query.limit) as VersionSummary[];
  }

  async listPendingDatabases(): Promise<string[]> {
    return this.#s.pendingDatabases.all() as string[];
  }

  async listDeadLetterDatabases(): Promise<string[]> {
    return this.#s.deadLetterDatabases.all() as string[];
  }

  // ---- transactions -------------------------------------------------------------------------

  /** What a transaction step reads, inside its `BEGIN IMMEDIATE`. */
  #read(reads: ReadSet): ReadRows {
    const s = this.#s;
    const now = Date.now();
    const uploadRow = (r: UploadSqlRow): UploadRow => ({ id: r.id, token: r.token, cleaning: r.cleaning === 1, ageMs: Math.max(0, now - r.at) });
    const { counterWindows: prune, staleUploads: stale, allDeadLetters: lettersOf } = reads;
    return {
      heads: keyed(reads.heads, ref, (h) => {
        const row = value<{ ov: number; cv: number; deleted: number; offloaded: number }>(s.headState, h.dbName, h.collection, h.id);
        return row && { ov: row.ov, cv: row.cv, deleted: row.deleted === 1, offloaded: row.offloaded === 1 };
      }),
      claims: keyed(reads.claims, (c) => refKey(c, c.key), (c) => value<string>(s.getClaim, c.dbName, c.collection, c.key)),
      outbox: keyed(reads.outbox, ref, (r) => value<number>(s.getPending, r.dbName, r.collection, r.id)),
      deadLetters: new Set(keyed(reads.deadLetters, ref, (r) => s.hasDeadLetter.get(r.dbName, r.collection, r.id)).keys()),
      allDeadLetters: lettersOf === undefined ? [] : (s.allDeadLetters.all(lettersOf) as ReadRows['allDeadLetters']),
      unarchived: keyed(reads.unarchived, ref, (r) => value<number>(s.countUnarchived, r.dbName, r.collection, r.id)),
      versionCounts: keyed(reads.versionCounts, ref, (r) => value<number>(s.countVersionsBelow, r.dbName, r.collection, r.id, r.belowOv)),
      collectionVersions: keyed(reads.collectionVersions, nsKey, (ns) => value<number>(s.getCollectionVersion, ns.dbName, ns.collection)),
      counterWindows: [
        ...new Set(
          (['day', 'week', 'month'] as const).flatMap((g) => {
            const bound = prune?.before[g];
            return prune && bound !== undefined ? (s.windowsBelow.all(prune.dbName, prune.collection, `${g}:`, bound) as string[]) : [];
          }),
        ),
      ],
      locks: keyed(reads.locks, (l) => refKey(l, l.key), (l) => {
        const row = value<{ owner: string; expires_at: number }>(s.getLock, l.dbName, l.collection, l.key);
        // A SQLite file is shared by the processes of one host: a lease of one that is gone is free.
        return row && { owner: row.owner, expired: row.expires_at <= now || processGone(row.owner) };
      }),
      uploads: keyed(reads.uploads, (u) => uploadKey(u, u.bucket, u.key), (u) => (s.uploadsOfKey.all(u.dbName, u.collection, u.bucket, u.key) as UploadSqlRow[]).map(uploadRow)),
      staleUploads: stale
        ? (s.staleUploads.all(stale.dbName, now - stale.olderThanMs, stale.limit) as UploadSqlRow[]).map((r) => ({ ...uploadRow(r), collection: r.coll, bucket: r.bucket, key: r.key }))
        : [],
      headCounts: keyed(reads.headCounts, nsKey, (ns) => value<number>(s.countHeads, ns.dbName, ns.collection)),
      outboxCounts: keyed(reads.outboxCounts, (db) => db, (db) => value<number>(s.countPending, db)),
      namespaces: (reads.namespaces ?? []).flatMap((db) => s.namespacesOf.all(db) as ReadRows['namespaces']),
    };
  }

  /** One effect, as statements of the open transaction. */
  #apply(e: Effect): void {
    const s = this.#s;
    const at = 'ns' in e ? [e.ns.dbName, e.ns.collection] : 'dbName' in e ? [e.dbName, e.collection] : [];
    switch (e.kind) {
      case 'putHead': {
        const h = e.head;
        s.putHead.run(...at, e.id, h.ov, h.cv, h.deleted ? 1 : 0, h.createdAt, h.updatedAt, h.deletedAt, JSON.stringify(h.meta), h.body, h.hash);
        return;
      }
      case 'putVersion': {
        const v = e.version;
        const [actorId, actorType] = typeof v.actor === 'string' ? [v.actor, null] : [v.actor.identifier, v.actor.type];
        s.insertVersion.run(
          ...at, v.id, v.ov, v.cv, v.op, v.at, JSON.stringify(v.actor), actorId, actorType, v.reason,
          v.deleted ? 1 : 0, v.size, v.body, v.archived ? 1 : 0, JSON.stringify(v.meta), v.hash,
        );
        return;
      }
      case 'deleteHead': s.deleteHead.run(...at, e.id); return;
      case 'offloadHead': s.offloadHead.run(...at, e.id); return;
      case 'deleteVersions': s.deleteVersionsBelow.run(...at, e.id, e.belowOv); return;
      case 'archiveVersions': for (const ov of e.ovs) s.markArchived.run(...at, e.id, ov); return;
      case 'putClaim': s.putClaim.run(...at, e.key, e.id); return;
      case 'releaseClaims': s.releaseClaims.run(...at, e.id); return;
      case 'putOutbox': s.markPending.run(...at, e.id, e.seq); return;
      case 'deleteOutbox': s.clearPending.run(...at, e.id); return;
      case 'putPendingBlob': s.putPendingBlob.run(...at, e.id, e.blob.bucket, e.blob.key, e.blob.contentType, Buffer.from(e.blob.body)); return;
      case 'deletePendingBlobs': for (const b of e.keys) s.deletePendingBlob.run(...at, b.bucket, b.key); return;
      case 'dropPendingBlobs': s.dropPendingBlobs.run(...at, e.id); return;
      case 'putDeadLetter': s.putDeadLetter.run(...at, e.id, e.reason, e.failedAt); return;
      case 'deleteDeadLetter': s.deleteDeadLetter.run(...at, e.id); return;
      case 'addCounters':
        for (const [name, delta] of Object.entries(e.deltas)) {
          s.addCounter.run(...at, name, delta);
          for (const win of e.windows) s.addWindowCounter.run(...at, win, name, delta);
        }
        return;
      case 'setCounters': for (const [name, value] of Object.entries(e.values)) s.setCounter.run(...at, name, value); return;
      case 'setCounterWindow': for (const [name, value] of Object.entries(e.window.counts)) s.setWindowCounter.run(...at, e.window.window, name, value); return;
      case 'deleteCounterWindow': s.deleteWindow.run(...at, e.window); return;
      case 'clearCounters': for (const clear of s.clearCounters) clear.run(...at); return;
      case 'setCollectionVersion': s.setCollectionVersion.run(...at, e.cv); return;
      case 'putLock': s.putLock.run(...at, e.key, e.owner, Date.now() + e.leaseMs); return;
      case 'deleteLock': s.deleteLock.run(...at, e.key); return;
      // Stamped at 0, a stale intent is stale for every age, so the next sweep lists it first.
      case 'putUpload': s.putUpload.run(...at, e.bucket, e.key, e.row.token, e.row.id, e.row.cleaning ? 1 : 0, e.stamp === 'now' ? Date.now() : 0); return;
      case 'deleteUpload': s.deleteUpload.run(...at, e.bucket, e.key, e.token); return;
      case 'clearNamespace': for (const clear of s.clearNamespace) clear.run(...at); return;
      case 'copyNamespace':
        for (const copy of s.copyNamespace) copy.run(e.to.dbName, e.to.collection, e.from.dbName, e.from.collection);
        s.markAllPending.run(e.to.dbName, e.to.collection);
        return;
    }
  }
}
