import { afterAll, beforeAll, expect, it } from 'vitest';
import type { HeadQuery, Namespace, VersionRow } from '../../core/contracts/index-store.js';
import { PostgresIndexDriver } from '../../core/adapters/postgres/postgres-index-driver.js';
import { schemaNameFor, tablesOf } from '../../core/adapters/postgres/postgres-schema.js';
import { IndexRuntime } from '../../core/store/index-runtime.js';
import { describePostgres, dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix, withPostgres } from '../support/postgres.js';

/**
 * The read paths of the PostgreSQL index store, each run through `EXPLAIN ANALYZE` on a real
 * server: heads, getVersion, getAsOf (findVersionAt by time and by cv), history pages, queryAt and
 * listByMeta (listHeads) are each one range of one index, so their cost does not grow with the
 * depth of a record's history. "One range" is checked on what the server did, not only on the
 * plan's shape: no sequential scan and no sort, the expected index, no row read and then thrown
 * away by a filter, and no more rows read than the call returns. The record read here has 20,000
 * versions and every read aims deep into its past, where a bound that is only a filter (not part
 * of the index range) would read every version above it.
 *
 * listByMeta with a filter on indexed values is not one range: an equality filter may use the GIN
 * index on `meta` (a bitmap of the matching heads, then sorted) or walk the sort order's index and
 * filter, as the planner judges (postgres-driver.test.ts checks the GIN index is used on 8,000
 * heads). Either way it reads no versions, so it does not grow with history depth.
 */

const availability = await postgresAvailability();
const prefix = randomSchemaPrefix();
const DEPTH = 20_000;
const OTHERS = 4_000;
const T0 = Date.UTC(2026, 0, 1);
const DEEP = 'deep';
const ns: Namespace = { dbName: 'plans', collection: 'orders' };

const seen: Array<{ text: string; values: readonly unknown[] }> = [];
const driver = new PostgresIndexDriver({ connectionString: POSTGRES_URI, schemaPrefix: prefix, pool: { max: 2 }, onQuery: (text, values) => seen.push({ text, values }) });
const store = IndexRuntime.of(driver);

/** The deep record's version `ov` began at T0 + ov seconds; its cv is its ov. */
const deepAt = (ov: number) => new Date(T0 + ov * 1000).toISOString();

function deepRecord() {
  const versions: VersionRow[] = Array.from({ length: DEPTH }, (_, ov) => ({
    id: DEEP, ov, cv: ov, op: ov === 0 ? 'create' : 'update', at: deepAt(ov), actor: { type: 'user', identifier: 'u1' }, reason: null,
    deleted: false, size: 20, body: null, archived: true, meta: { status: 'deep', n: ov }, hash: `h${ov}`,
  }));
  const last = versions[DEPTH - 1]!;
  return {
    head: { id: DEEP, ov: last.ov, cv: last.cv, deleted: false, createdAt: deepAt(0), updatedAt: last.at, deletedAt: null, meta: last.meta, body: '{}', hash: last.hash },
    versions,
  };
}

/** Other records (3 versions each), so the tables are large enough for the planner to choose as it would in use. */
function otherRecord(i: number) {
  const id = `r${String(i).padStart(5, '0')}`;
  const meta = { status: i % 400 === 0 ? 'rare' : `common${i % 7}`, n: i };
  const versions: VersionRow[] = [0, 1, 2].map((ov) => ({
    id, ov, cv: DEPTH + i * 3 + ov, op: ov === 0 ? 'create' : 'update', at: new Date(T0 + (i * 3 + ov) * 1000).toISOString(), actor: 'writer', reason: null,
    deleted: false, size: 20, body: JSON.stringify({ id, ov }), archived: ov < 2, meta, hash: `h${ov}`,
  }));
  const last = versions[2]!;
  return { head: { id, ov: 2, cv: last.cv, deleted: false, createdAt: versions[0]!.at, updatedAt: last.at, deletedAt: null, meta, body: last.body!, hash: 'h2' }, versions };
}

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  'Rows Removed by Filter'?: number;
  Plans?: PlanNode[];
}

function flatten(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(flatten)];
}

/** Runs the call, then `EXPLAIN ANALYZE` of the last statement it sent (the read itself), with its values. */
async function analyse<T>(call: () => Promise<T>): Promise<{ result: T; nodes: PlanNode[] }> {
  seen.length = 0;
  const result = await call();
  const last = seen.at(-1)!;
  const rows = await withPostgres(async (c) => (await c.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${last.text}`, [...last.values])).rows);
  return { result, nodes: flatten(rows[0]!['QUERY PLAN'][0]!.Plan) };
}

/**
 * One range of each named index: only these node types, every index scan on one of `indexes`
 * (and each of them used), nothing read and then filtered away, at most `maxRows` rows read in all.
 */
function expectIndexRange(nodes: PlanNode[], indexes: readonly string[], maxRows: number): void {
  const types = nodes.map((n) => n['Node Type']);
  expect(types.filter((t) => !['Limit', 'Index Scan', 'Index Only Scan', 'Nested Loop', 'Subquery Scan'].includes(t))).toEqual([]);
  const scans = nodes.filter((n) => n['Node Type'].startsWith('Index'));
  expect([...new Set(scans.map((n) => n['Index Name']))].sort()).toEqual([...indexes].sort());
  expect(nodes.reduce((sum, n) => sum + (n['Rows Removed by Filter'] ?? 0), 0)).toBe(0);
  expect(scans.reduce((sum, n) => sum + n['Actual Rows'] * n['Actual Loops'], 0)).toBeLessThanOrEqual(maxRows);
}

/** A history page may read either index on (coll, id, ov): the covering one or the primary key. */
const HISTORY_INDEXES = ['_versions_history', '_versions_pkey'];
const indexOf = (nodes: PlanNode[]): string => nodes.find((n) => n['Index Name'])?.['Index Name'] ?? 'none';

const byId = (limit: number, after?: string): HeadQuery => ({ filter: null, includeDeleted: false, sort: { field: 'id', direction: 1 }, limit, ...(after ? { after: { value: after, id: after } } : {}) });

describePostgres('PostgreSQL read paths: one index range each, flat with history depth', availability, () => {
  beforeAll(async () => {
    await store.importRecords(ns, { records: [deepRecord()], sync: false });
    for (let start = 0; start < OTHERS; start += 500) {
      await store.importRecords(ns, { records: Array.from({ length: 500 }, (_, k) => otherRecord(start + k)), sync: false });
    }
    const t = tablesOf(schemaNameFor(prefix, ns.dbName));
    await withPostgres(async (c) => {
      await c.query(`VACUUM ANALYZE ${t.heads}`);
      await c.query(`VACUUM ANALYZE ${t.versions}`);
    });
  }, 300_000);

  afterAll(async () => {
    await store.close();
    await dropSchemas(prefix);
  });

  it('getHead: one row of _heads_pkey', async () => {
    const { result, nodes } = await analyse(() => store.getHead(ns, 'r01234'));
    expect(result?.ov).toBe(2);
    expectIndexRange(nodes, ['_heads_pkey'], 1);
  });

  it('getVersion of an old version of a 20,000-version record: one row of _versions_pkey', async () => {
    const { result, nodes } = await analyse(() => store.getVersion(ns, DEEP, 100));
    expect(result?.ov).toBe(100);
    expectIndexRange(nodes, ['_versions_pkey'], 1);
    expect((await store.getVersion(ns, DEEP, 0))?.ov).toBe(0);
    expect((await store.getVersion(ns, DEEP, DEPTH - 1))?.ov).toBe(DEPTH - 1);
    expect(await store.getVersion(ns, DEEP, DEPTH)).toBeNull();
  });

  it('getAsOf (findVersionAt by time) deep in the past: one row of _versions_by_time', async () => {
    const { result, nodes } = await analyse(() => store.findVersionAt(ns, DEEP, { at: new Date(T0 + 100_500).toISOString() }));
    expect(result?.ov).toBe(100);
    expectIndexRange(nodes, ['_versions_by_time'], 1);
  });

  it('findVersionAt by collection version deep in the past: one row of _versions_by_cv', async () => {
    const { result, nodes } = await analyse(() => store.findVersionAt(ns, DEEP, { cv: 100 }));
    expect(result?.ov).toBe(100);
    expectIndexRange(nodes, ['_versions_by_cv'], 1);
  });

  it('history pages, the newest and one deep in the past: the page’s rows of one index', async () => {
    const newest = await analyse(() => store.listHistory(ns, DEEP, { limit: 51 }));
    expect(newest.result.map((r) => r.ov)).toEqual(Array.from({ length: 51 }, (_, k) => DEPTH - 1 - k));
    expect(HISTORY_INDEXES).toContain(indexOf(newest.nodes));
    expectIndexRange(newest.nodes, [indexOf(newest.nodes)], 51);

    const deep = await analyse(() => store.listHistory(ns, DEEP, { limit: 51, beforeOv: 100 }));
    expect(deep.result.map((r) => r.ov)).toEqual(Array.from({ length: 51 }, (_, k) => 99 - k));
    expect(HISTORY_INDEXES).toContain(indexOf(deep.nodes));
    expectIndexRange(deep.nodes, [indexOf(deep.nodes)], 51);

    const bodies = await analyse(() => store.listVersions(ns, DEEP, { limit: 10, beforeOv: 100 }));
    expect(bodies.result.map((r) => r.ov)).toEqual(Array.from({ length: 10 }, (_, k) => 99 - k));
    expectIndexRange(bodies.nodes, ['_versions_pkey'], 10);
  });

  it('queryAt: heads in id order, one row of _versions_by_time per record', async () => {
    const { result, nodes } = await analyse(() => store.queryAt(ns, { at: new Date(T0 + 3_600_000).toISOString(), filter: null, includeDeleted: false, direction: 1, limit: 20, afterId: 'r00100' }));
    expect(result.map((r) => r.id)).toEqual(Array.from({ length: 20 }, (_, k) => `r${String(101 + k).padStart(5, '0')}`));
    expectIndexRange(nodes, ['_heads_pkey', '_versions_by_time'], 40);
  });

  it('listByMeta (listHeads) by id, by updatedAt and by createdAt, first and later pages: one range of _heads_pkey, _heads_by_updated or _heads_by_created', async () => {
    const first = await analyse(() => store.listHeads(ns, byId(21)));
    expect(first.result).toHaveLength(21);
    expectIndexRange(first.nodes, ['_heads_pkey'], 21);

    const later = await analyse(() => store.listHeads(ns, byId(21, 'r02000')));
    expect(later.result[0]!.id).toBe('r02001');
    expectIndexRange(later.nodes, ['_heads_pkey'], 21);

    const recent = await analyse(() => store.listHeads(ns, { filter: null, includeDeleted: false, sort: { field: 'updatedAt', direction: -1 }, limit: 21 }));
    expect(recent.result[0]!.id).toBe(DEEP);
    expectIndexRange(recent.nodes, ['_heads_by_updated'], 21);

    const after = recent.result[20]!;
    const next = await analyse(() =>
      store.listHeads(ns, { filter: null, includeDeleted: false, sort: { field: 'updatedAt', direction: -1 }, limit: 21, after: { value: after.updatedAt, id: after.id } }),
    );
    expect(next.result[0]!.updatedAt <= after.updatedAt).toBe(true);
    expectIndexRange(next.nodes, ['_heads_by_updated'], 21);

    const oldest = await analyse(() => store.listHeads(ns, { filter: null, includeDeleted: false, sort: { field: 'createdAt', direction: 1 }, limit: 21 }));
    expect(oldest.result).toHaveLength(21);
    expectIndexRange(oldest.nodes, ['_heads_by_created'], 21);
  });
});
