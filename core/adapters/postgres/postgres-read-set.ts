import type { QueryResultRow } from 'pg';
import { nsKey, type ReadRows, type ReadSet, refKey, uploadKey } from '../../contracts/index-driver.js';
import type { Namespace } from '../../contracts/index-store.js';
import { emptyRows, groupBy, namespaceOrder, windowRangesBelow } from '../../store/driver-kit.js';
import { bind } from './postgres-filter.js';
import type { Tables } from './postgres-schema.js';
import { stampedBefore, toUpload, uploadColumns, type UploadSqlRow } from './postgres-statements.js';

/** What reading a plan's rows needs of a transaction attempt (`PostgresTransaction`). */
export interface ReadScope {
  /** The tables of a database; made in this transaction when missing and `create` (unless read-only), else `null` when missing. */
  tables(dbName: string, create: boolean): Promise<Tables | null>;
  /** Locks the namespaces' rows and learns their collection versions (see `PostgresTransaction.lock`). */
  lock(namespaces: readonly Namespace[]): Promise<void>;
  /** Locks leases by key (see `PostgresTransaction.lockLeases`). */
  lockLeases(keys: ReadonlyArray<Namespace & { readonly key: string }>): Promise<void>;
  /** The collection version of a locked namespace (null: never written; undefined: not locked). */
  cvOf(ns: Namespace): number | null | undefined;
  query<R extends QueryResultRow>(text: string, values?: readonly unknown[]): Promise<R[]>;
}

/**
 * The rows a plan's read set names, in one transaction: the namespaces it covers are locked first
 * (`lockCovered`), then each kind of row is one statement per database (its keys passed as arrays).
 */
export async function readRows(tx: ReadScope, reads: ReadSet): Promise<ReadRows> {
  const { letterColls, staleColls, wholeDbs } = await lockCovered(tx, reads);
  const { allDeadLetters: letterDb, staleUploads: stale } = reads;
  const rows = emptyRows();
  const at = (db: string, r: { coll: string }, key: string) => refKey({ dbName: db, collection: r.coll }, key);
  type Head = { id: string; ov: number; cv: number; deleted: boolean; offloaded: boolean };
  for (const [db, h] of await lookup<Head>(tx, reads.heads, (t) => t.heads, ['id'], `x.id, x.ov, x.cv, x.deleted, x.body = '' AS offloaded`)) {
    rows.heads.set(at(db, h, h.id), { ov: h.ov, cv: h.cv, deleted: h.deleted, offloaded: h.offloaded });
  }
  for (const [db, c] of await lookup<{ key: string; id: string }>(tx, reads.claims, (t) => t.claims, ['key'], 'x.key, x.id')) rows.claims.set(at(db, c, c.key), c.id);
  for (const [db, o] of await lookup<{ id: string; seq: number }>(tx, reads.outbox, (t) => t.outbox, ['id'], 'x.id, x.seq')) rows.outbox.set(at(db, o, o.id), o.seq);
  for (const [db, d] of await lookup<{ id: string }>(tx, reads.deadLetters, (t) => t.deadLetters, ['id'], 'x.id')) rows.deadLetters.add(at(db, d, d.id));
  for (const r of reads.unarchived ?? []) rows.unarchived.set(refKey(r, r.id), 0);
  const unarchived = await lookup<{ id: string; n: number }>(tx, reads.unarchived, (t) => t.versions, ['id'], 'x.id, count(*) AS n', 'WHERE NOT x.archived GROUP BY x.coll, x.id');
  for (const [db, u] of unarchived) rows.unarchived.set(at(db, u, u.id), u.n);
  for (const [db, t, refs] of await byDb(tx, reads.versionCounts)) {
    for (const r of refs) rows.versionCounts.set(refKey(r, r.id), 0);
    const counted = await tx.query<{ coll: string; id: string; n: number }>(
      `SELECT r.coll, r.id, count(v.ov) AS n FROM unnest($1::text[], $2::text[], $3::float8[]) AS r(coll, id, below)
       JOIN ${t.versions} v ON v.coll = r.coll AND v.id = r.id AND v.ov < r.below GROUP BY r.coll, r.id`,
      [refs.map((r) => r.collection), refs.map((r) => r.id), refs.map((r) => r.belowOv)],
    );
    for (const c of counted) rows.versionCounts.set(at(db, c, c.id), c.n);
  }
  for (const ns of reads.collectionVersions ?? []) {
    const cv = tx.cvOf(ns);
    if (cv !== undefined && cv !== null) rows.collectionVersions.set(nsKey(ns), cv);
  }
  if (reads.counterWindows) {
    const { dbName, collection, before } = reads.counterWindows;
    const t = await tx.tables(dbName, true);
    const params: unknown[] = [collection];
    const ranges = windowRangesBelow(before).map(({ from, below }) => `(win >= ${bind(params, from)} AND win < ${bind(params, below)})`);
    if (t && ranges.length > 0) {
      const windows = await tx.query<{ win: string }>(`SELECT DISTINCT win FROM ${t.counterWindows} WHERE coll = $1 AND (${ranges.join(' OR ')}) ORDER BY win`, params);
      rows.counterWindows = windows.map((r) => r.win);
    }
  }
  type Lease = { key: string; owner: string; expired: boolean };
  for (const [db, l] of await lookup<Lease>(tx, reads.locks, (t) => t.locks, ['key'], 'x.key, x.owner, x.expires_at <= clock_timestamp() AS expired')) {
    rows.locks.set(at(db, l, l.key), { owner: l.owner, expired: l.expired });
  }
  const uploads = await lookup<UploadSqlRow>(tx, reads.uploads, (t) => t.uploads, ['bucket', 'key'], uploadColumns('x'), 'ORDER BY x.token');
  for (const [db, u] of uploads) {
    const k = uploadKey({ dbName: db, collection: u.coll }, u.bucket, u.key);
    let list = rows.uploads.get(k);
    if (!list) rows.uploads.set(k, (list = []));
    list.push(toUpload(u));
  }
  if (stale && staleColls.length > 0) {
    const t = (await tx.tables(stale.dbName, false))!;
    const found = await tx.query<UploadSqlRow>(
      `SELECT u.coll, ${uploadColumns('u')} FROM ${t.uploads} u WHERE u.coll = ANY($1::text[]) AND u.${stampedBefore('$2')}
       ORDER BY u.stamped_at, u.coll, u.bucket, u.key, u.token LIMIT $3`,
      [staleColls, stale.olderThanMs, stale.limit],
    );
    rows.staleUploads = found.map((u) => ({ ...toUpload(u), collection: u.coll, bucket: u.bucket, key: u.key }));
  }
  for (const [db, t, list] of await byDb(tx, reads.headCounts)) {
    const colls = [...new Set(list.map((ns) => ns.collection))];
    for (const coll of colls) rows.headCounts.set(nsKey({ dbName: db, collection: coll }), 0);
    const counted = await tx.query<{ coll: string; n: number }>(`SELECT coll, count(*) AS n FROM ${t.heads} WHERE coll = ANY($1::text[]) GROUP BY coll`, [colls]);
    for (const c of counted) rows.headCounts.set(nsKey({ dbName: db, collection: c.coll }), c.n);
  }
  // A count over a whole database is one statement's snapshot, without locks: no plan decides a
  // write on it (it answers `countPendingSync`), and locking every namespace of the database
  // would queue a health probe behind every commit.
  for (const db of new Set(reads.outboxCounts ?? [])) {
    const t = await tx.tables(db, false);
    const counted = t ? await tx.query<{ n: number }>(`SELECT count(*) AS n FROM ${t.outbox}`) : [];
    rows.outboxCounts.set(db, counted[0]?.n ?? 0);
  }
  for (const [db, colls] of wholeDbs) {
    for (const collection of colls) {
      const cv = tx.cvOf({ dbName: db, collection });
      if (cv !== undefined && cv !== null) rows.namespaces.push({ dbName: db, collection, cv });
    }
  }
  rows.namespaces.sort(namespaceOrder);
  if (letterDb !== undefined && letterColls.length > 0) {
    const t = (await tx.tables(letterDb, false))!;
    const letters = await tx.query<{ coll: string; id: string; reason: string; failed_at: string; head_cv: number | null }>(
      `SELECT d.coll, d.id, d.reason, d.failed_at, h.cv AS head_cv FROM ${t.deadLetters} d
       LEFT JOIN ${t.heads} h ON h.coll = d.coll AND h.id = d.id
       WHERE d.coll = ANY($1::text[]) ORDER BY d.failed_at, d.made`,
      [letterColls],
    );
    rows.allDeadLetters = letters.map((d) => ({ collection: d.coll, id: d.id, reason: d.reason, failedAt: d.failed_at, headCv: d.head_cv }));
  }
  return rows;
}

/**
 * Locks the namespaces the read set covers. Reads over a whole database first find the namespaces
 * they cover (without locks), then lock those with the rest. A namespace that appears meanwhile is
 * left out, as if it had been written after this transaction, which is a valid serial order:
 * nothing here reads it. Returns what those reads found.
 */
async function lockCovered(tx: ReadScope, reads: ReadSet): Promise<{ letterColls: string[]; staleColls: string[]; wholeDbs: Map<string, string[]> }> {
  const direct: Namespace[] = [];
  for (const list of [reads.heads, reads.claims, reads.outbox, reads.deadLetters, reads.unarchived, reads.versionCounts, reads.collectionVersions, reads.uploads, reads.headCounts]) {
    for (const ns of list ?? []) direct.push({ dbName: ns.dbName, collection: ns.collection });
  }
  if (reads.counterWindows) direct.push({ dbName: reads.counterWindows.dbName, collection: reads.counterWindows.collection });
  const found = async (dbName: string, sql: (t: Tables) => string, values: unknown[] = []): Promise<string[]> => {
    const t = await tx.tables(dbName, false);
    const colls = t ? (await tx.query<{ coll: string }>(sql(t), values)).map((r) => r.coll) : [];
    for (const collection of colls) direct.push({ dbName, collection });
    return colls;
  };
  const { allDeadLetters: letterDb, staleUploads: stale } = reads;
  const letterColls = letterDb === undefined ? [] : await found(letterDb, (t) => `SELECT DISTINCT coll FROM ${t.deadLetters}`);
  const staleColls = stale ? await found(stale.dbName, (t) => `SELECT DISTINCT coll FROM ${t.uploads} WHERE ${stampedBefore('$1')}`, [stale.olderThanMs]) : [];
  const wholeDbs = new Map<string, string[]>();
  for (const db of new Set(reads.namespaces ?? [])) wholeDbs.set(db, await found(db, (t) => `SELECT coll FROM ${t.namespaces} WHERE cv IS NOT NULL`));
  await tx.lock(direct);
  if (reads.locks?.length) await tx.lockLeases(reads.locks);
  return { letterColls, staleColls, wholeDbs };
}

/** Refs grouped by database, with their tables (locked, so their schemas exist; a read-only plan reads nothing from a database that has none). */
async function byDb<R extends Namespace>(tx: ReadScope, refs: readonly R[] | undefined): Promise<Array<[string, Tables, R[]]>> {
  const out: Array<[string, Tables, R[]]> = [];
  for (const [db, list] of groupBy(refs ?? [], (r) => r.dbName)) {
    const t = await tx.tables(db, true);
    if (t) out.push([db, t, list]);
  }
  return out;
}

/**
 * The rows of a table (as `x`) whose collection and `keys` columns match one of the refs, one
 * statement per database, each row with its database name. `columns` and `tail` name `x`.
 */
async function lookup<Row extends QueryResultRow>(
  tx: ReadScope,
  refs: readonly Namespace[] | undefined,
  table: (t: Tables) => string,
  keys: readonly string[],
  columns: string,
  tail = '',
): Promise<Array<[string, Row & { coll: string }]>> {
  const out: Array<[string, Row & { coll: string }]> = [];
  const names = ['coll', ...keys];
  for (const [db, t, list] of await byDb(tx, refs)) {
    const found = await tx.query<Row & { coll: string }>(
      `SELECT x.coll, ${columns} FROM ${table(t)} x JOIN unnest(${names.map((_, i) => `$${i + 1}::text[]`).join(', ')}) AS r(${names.join(', ')})
       ON ${names.map((n) => `x.${n} = r.${n}`).join(' AND ')} ${tail}`,
      // `keys` name properties of the refs (`id`, `key`, `bucket`), whose values fill the key columns.
      [list.map((r) => r.collection), ...keys.map((k) => list.map((r) => (r as unknown as Record<string, unknown>)[k]))],
    );
    for (const row of found) out.push([db, row]);
  }
  return out;
}
