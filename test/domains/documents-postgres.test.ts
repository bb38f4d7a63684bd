import { randomUUID } from 'node:crypto';
import { type Client, escapeIdentifier } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileFilter, documentFields, escapeText, fromStoredJson, sortSql, toStoredJson, unescapeText } from '../../core/adapters/postgres/postgres-filter.js';
import { indexNameFor, PostgresDocumentStore } from '../../core/adapters/postgres/postgres-document-store.js';
import { lockSchema, schemaNameFor } from '../../core/adapters/postgres/postgres-schema.js';
import type { CollectionSpec, Doc, DocScalar, SortSpec } from '../../core/contracts/document-store.js';
import type { Namespace } from '../../core/contracts/index-store.js';
import { checkDocument } from '../../core/domains/documents/document-check.js';
import { parseDocumentFilter, valueAt } from '../../core/domains/documents/document-filter.js';
import { byPath, matches } from '../../core/foundation/filter.js';
import { loadConfig } from '../../core/config/load.js';
import { expireDocuments, migrateDocuments } from '../../core/domains/maintenance.js';
import { MESSAGING_SPECS } from '../../core/domains/messaging/messaging.js';
import { DuplicateKeyError, StorageError, ValidationError } from '../../core/errors.js';
import { Xronox } from '../../core/xronox.js';
import { expectedIndexes, SPEC } from '../conformance/document-store.suite.js';
import { describePostgres, dropDocumentSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix, schemasOf, withPostgres } from '../support/postgres-docs.js';
import { seededRandom } from '../support/random.js';

/**
 * What the conformance suite cannot see of the PostgreSQL document store: its filter compiler
 * against the core's evaluator (`matches`) in both string-order modes (the one a byte-order database uses and
 * the one any other collation gets), sorts against a reference sort, the U+0000 escape, races
 * between processes (separate pools), the real catalog (expression indexes the planner uses),
 * long names, and refusing a schema that is not Xronox's. Every schema carries this file's random
 * prefix; only those are dropped.
 */
const availability = await postgresAvailability();
const schemaPrefix = randomSchemaPrefix();

describePostgres('PostgreSQL document store', availability, () => {
  let opened = 0;
  const stores: PostgresDocumentStore[] = [];
  /** A store with a pool of its own: its own connections, as another process would have. */
  const openStore = (): PostgresDocumentStore => {
    const store = new PostgresDocumentStore({ uri: POSTGRES_URI, schemaPrefix, pool: { applicationName: `xronox-doc-test-${++opened}`, max: 4 } });
    stores.push(store);
    return store;
  };
  let store: PostgresDocumentStore;
  /** The one schema this file makes by hand (not a document database), dropped by name. */
  const foreignDb = `foreign_${randomUUID().slice(0, 8)}`;
  const foreignSchema = schemaNameFor(schemaPrefix, foreignDb);
  const freshNs = (): Namespace => ({ dbName: `db_${randomUUID().slice(0, 8)}`, collection: 'items' });
  const tableOf = (ns: Namespace) => `${escapeIdentifier(schemaNameFor(schemaPrefix, ns.dbName))}.${escapeIdentifier(ns.collection)}`;
  const doc = (fields: Record<string, unknown>): Doc => checkDocument(fields, SPEC, 1 << 20).doc;
  const f = (input: unknown) => parseDocumentFilter(input, new Set(SPEC.fields));

  beforeAll(() => {
    store = openStore();
  });
  afterAll(async () => {
    for (const s of stores) await s.close();
    const dropped = await dropDocumentSchemas(schemaPrefix, [foreignSchema]);
    expect(dropped.length).toBeGreaterThan(0);
    expect(await schemasOf(schemaPrefix)).toEqual([]);
  });

  /** Strings that stress the escape and byte order: NUL, U+0001, U+0002, case, accents, astral characters. */
  const STRINGS = ['', 'a', 'B', 'b', 'é', 'e\u0301', '🎉', '\uffff', 'a\u0000', 'a\u0001', 'a\u0001\u0002', 'a\u0002', '\u0000', '\u0001\u0001', 'a b', '10', '9'];
  const DATES = [new Date('0000-01-01T00:00:00.000Z'), new Date(Date.UTC(1999, 5, 1)), new Date(Date.UTC(2024, 0, 1)), new Date(Date.UTC(2024, 0, 1, 0, 0, 0, 1)), new Date('9999-12-31T23:59:59.999Z')];
  const POOL: Array<DocScalar | undefined> = [undefined, null, true, false, 0, 1, -1, 2.5, 1e15, 1e300, -1e-300, 5e-324, ...STRINGS, ...DATES];
  const byteCompare = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

  describe('the U+0000 escape', () => {
    it('round-trips every string and keeps UTF-8 byte order and equality', () => {
      const next = seededRandom(11);
      const alphabet = ['\u0000', '\u0001', '\u0002', 'a', 'é', '🎉', '\u007f'];
      const words = Array.from({ length: 400 }, () => Array.from({ length: Math.floor(next() * 5) }, () => alphabet[Math.floor(next() * alphabet.length)]).join(''));
      for (const w of words) {
        expect(unescapeText(escapeText(w))).toBe(w);
        expect(escapeText(w)).not.toContain('\u0000');
      }
      for (let i = 0; i + 1 < words.length; i++) {
        const [a, b] = [words[i]!, words[i + 1]!];
        expect(Math.sign(byteCompare(escapeText(a), escapeText(b)))).toBe(Math.sign(byteCompare(a, b)));
      }
      const nested = doc({ k: 'a\u0000', g: '\u0001', n: 1, list: ['\u0000\u0001', { deep: 'x\u0000y' }], at: DATES[0] });
      expect(fromStoredJson(toStoredJson(nested))).toEqual(nested);
    });
  });

  describe('the filter compiler against the core evaluator', () => {
    const fields = ['n', 'at', 'flag', 'v', 'g', '_system.updatedAt'];
    let ns: Namespace;
    let docs: Doc[];

    beforeAll(async () => {
      ns = freshNs();
      await store.ensureCollection(ns, SPEC);
      const next = seededRandom(424242);
      const pick = <T,>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
      docs = Array.from({ length: 90 }, (_, i) => {
        const raw: Record<string, unknown> = { k: `d${i}`, g: pick(['x', 'y', ...STRINGS]) };
        for (const field of ['n', 'at', 'flag', 'v']) {
          const v = pick(POOL);
          if (v !== undefined) raw[field] = v;
        }
        const u = pick(POOL);
        if (next() < 0.7) raw._system = u === undefined ? {} : { updatedAt: u };
        return doc(raw);
      });
      for (const d of docs) await store.insertOne(ns, d);
    });

    describe.each([true, false])('byteOrder: %s', (byteOrder) => {
      it.each([1, 2, 3, 20240601])('agrees on 1,500 random filters over 90 documents, and the filters are not vacuous (seed %i)', async (seed) => {
        const next = seededRandom(seed);
        const pick = <T,>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
        const condition = (depth: number): Record<string, unknown> => {
          if (depth < 2 && next() < 0.2) return { [pick(['$and', '$or'])]: Array.from({ length: 1 + Math.floor(next() * 3) }, () => condition(depth + 1)) };
          const field = pick(fields);
          const op = pick(['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exists', 'plain']);
          const value = pick(POOL) ?? null;
          if (op === 'plain') return { [field]: value };
          if (op === '$exists') return { [field]: { $exists: next() < 0.5 } };
          if (op === '$in' || op === '$nin') return { [field]: { [op]: Array.from({ length: Math.floor(next() * 4) }, () => pick(POOL) ?? null) } };
          return { [field]: { [op]: value === null && op !== '$eq' && op !== '$ne' ? 1 : value } };
        };
        let nonEmpty = 0;
        let notAll = 0;
        await withPostgres(async (client) => {
          for (let i = 0; i < 1500; i++) {
            const input = condition(0);
            const node = f(input);
            const expected = docs.filter((d) => matches(node, byPath(d))).map((d) => d.k);
            const params: unknown[] = [];
            const where = node ? compileFilter(node, params, documentFields(byteOrder)) : 'TRUE';
            const rows = await client.query<{ json: string }>(`SELECT doc::text AS json FROM ${tableOf(ns)} WHERE ${where} ORDER BY id`, params);
            const got = rows.rows.map((r) => fromStoredJson(r.json).k);
            expect({ input, got }).toEqual({ input, got: expected });
            if (expected.length > 0) nonEmpty++;
            if (expected.length < docs.length) notAll++;
          }
        });
        expect(nonEmpty).toBeGreaterThan(500);
        expect(notAll).toBeGreaterThan(500);
      });
    });

    it('the store itself reads the same (its mode for this database), with expired documents left out', async () => {
      const next = seededRandom(5);
      for (let i = 0; i < 200; i++) {
        const field = fields[Math.floor(next() * fields.length)]!;
        const value = POOL[Math.floor(next() * POOL.length)] ?? null;
        const input = { [field]: { [value === null ? '$ne' : ['$gt', '$lte', '$eq', '$ne'][Math.floor(next() * 4)]!]: value } };
        const node = f(input);
        expect((await store.find(ns, node, { limit: 1000 })).map((d) => d.k)).toEqual(docs.filter((d) => matches(node, byPath(d))).map((d) => d.k));
      }
    });
  });

  describe('sorts', () => {
    /** The reference order: values of one type, missing first ascending and last descending, ties in insertion order. */
    const reference = (docs: Doc[], sort: SortSpec): string[] =>
      docs
        .map((d, i) => ({ d, i }))
        .sort((a, b) => {
          for (const [field, dir] of sort) {
            const [x, y] = [valueAt(a.d, field), valueAt(b.d, field)];
            if (x === undefined || y === undefined) {
              if (x !== y) return (x === undefined ? -1 : 1) * dir;
              continue;
            }
            const c =
              x instanceof Date ? x.getTime() - (y as Date).getTime() : typeof x === 'string' ? byteCompare(x, y as string) : typeof x === 'number' ? (x as number) - (y as number) : Number(x) - Number(y);
            if (c !== 0) return Math.sign(c) * dir;
          }
          return a.i - b.i;
        })
        .map(({ d }) => d.k as string);

    it.each([
      ['strings', STRINGS],
      ['numbers', [0, 1, -1, 2.5, 1e15, -1e-300, 1e300, 5e-324]],
      ['dates', DATES],
      ['booleans', [true, false]],
    ] as const)('orders %s as every store does (byte order for strings), in both modes and through find', async (_label, values) => {
      const ns = freshNs();
      await store.ensureCollection(ns, SPEC);
      const next = seededRandom(values.length);
      const docs: Doc[] = [];
      for (let i = 0; i < 40; i++) {
        const raw: Record<string, unknown> = { k: `s${i}`, g: 'g', n: i % 3 };
        // One type per field, or missing.
        if (next() < 0.85) raw.v = values[Math.floor(next() * values.length)];
        docs.push(doc(raw));
      }
      for (const d of docs) await store.insertOne(ns, d);
      for (const sort of [[['v', 1]], [['v', -1]], [['n', 1], ['v', -1]], [['n', -1], ['v', 1]]] as SortSpec[]) {
        const expected = reference(docs, sort);
        expect((await store.find(ns, null, { sort, limit: 100 })).map((d) => d.k)).toEqual(expected);
        for (const byteOrder of [true, false]) {
          const rows = await withPostgres((client) => client.query<{ json: string }>(`SELECT doc::text AS json FROM ${tableOf(ns)} ORDER BY ${sortSql(sort, byteOrder)}`));
          expect(rows.rows.map((r) => fromStoredJson(r.json).k)).toEqual(expected);
        }
      }
    });
  });

  describe('races between processes', () => {
    it('two inserts racing on one unique key: exactly one DuplicateKeyError, one document', async () => {
      const ns = freshNs();
      const [a, b] = [openStore(), openStore()];
      await Promise.all([a.ensureCollection(ns, SPEC), b.ensureCollection(ns, SPEC)]);
      for (let round = 0; round < 25; round++) {
        // Every third round an expired document holds the key, which both writers purge.
        if (round % 3 === 2) await a.insertOne(ns, doc({ k: `race${round}`, g: 'g', n: -1 }), { expiresAt: new Date(Date.now() - 1000) });
        const results = await Promise.allSettled([a.insertOne(ns, doc({ k: `race${round}`, g: 'g', n: 1 })), b.insertOne(ns, doc({ k: `race${round}`, g: 'g', n: 2 }))]);
        const refused = results.filter((r) => r.status === 'rejected');
        expect(refused).toHaveLength(1);
        const reason = (refused[0] as PromiseRejectedResult).reason as unknown;
        expect(reason).toBeInstanceOf(DuplicateKeyError);
        expect(reason).toMatchObject({ index: 'k_1_g_1', collection: ns.collection });
        expect((await store.find(ns, f({ k: `race${round}` }), { limit: 10 })).map((d) => d.n)).toHaveLength(1);
      }
      expect((await store.exportDocuments(ns, { limit: 1000 })).documents).toHaveLength(25);
    });

    it('ensureCollection from many processes at once creates every schema, table and index once', async () => {
      const dbName = `db_${randomUUID().slice(0, 8)}`;
      const others = Array.from({ length: 6 }, () => openStore());
      const collections = ['alpha', 'beta', 'gamma'];
      await Promise.all(others.flatMap((s) => collections.map((collection) => s.ensureCollection({ dbName, collection }, SPEC))));
      for (const collection of collections) {
        for (const s of [store, ...others.slice(0, 2)]) expect(await s.listIndexes({ dbName, collection })).toEqual(expectedIndexes(SPEC));
      }
      const schema = schemaNameFor(schemaPrefix, dbName);
      await withPostgres(async (client) => {
        const tables = await client.query<{ relname: string }>(`SELECT relname FROM pg_class WHERE relnamespace = $1::regnamespace AND relkind = 'r' ORDER BY relname`, [escapeIdentifier(schema)]);
        expect(tables.rows.map((r) => r.relname)).toEqual(['_xronox_documents', ...collections]);
        expect((await client.query(`SELECT * FROM ${escapeIdentifier(schema)}._xronox_documents`)).rows).toEqual([{ version: 1, prefix: schemaPrefix, db_name: dbName }]);
        const indexes = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_indexes WHERE schemaname = $1`, [schema]);
        // Declared ones, plus the primary key and the expiry index of each table.
        expect(indexes.rows[0]!.n).toBe(collections.length * (SPEC.indexes.length + 2));
      });
    });
  });

  describe('timeouts', () => {
    /** A store whose statements may take 500 ms. */
    const timed = (): PostgresDocumentStore => {
      const timedStore = new PostgresDocumentStore({ uri: POSTGRES_URI, schemaPrefix, pool: { applicationName: `xronox-doc-test-${++opened}`, max: 2, statementTimeoutMillis: 500 } });
      stores.push(timedStore);
      return timedStore;
    };
    /** What `call` rejects with while another connection holds what `hold` takes in an open transaction, and how long it took. */
    async function failureWhileHeld(hold: (blocker: Client) => Promise<unknown>, call: () => Promise<unknown>): Promise<{ err: unknown; ms: number }> {
      return withPostgres(async (blocker) => {
        await blocker.query('BEGIN');
        try {
          await hold(blocker);
          const started = Date.now();
          const err = await call().then(
            () => undefined,
            (e: unknown) => e,
          );
          return { err, ms: Date.now() - started };
        } finally {
          await blocker.query('ROLLBACK');
        }
      });
    }

    it('ensureCollection waiting for another creator of its schema is cancelled by the server after the statement timeout: a StorageError, then it succeeds', async () => {
      const ns = freshNs();
      const s = timed();
      const { err, ms } = await failureWhileHeld((blocker) => lockSchema(blocker, schemaNameFor(schemaPrefix, ns.dbName)), () => s.ensureCollection(ns, SPEC));
      expect(err).toBeInstanceOf(StorageError);
      expect(err).toMatchObject({ adapter: 'postgres', operation: 'transaction', message: expect.stringMatching(/due to statement timeout.*500 ms/) });
      expect(ms).toBeGreaterThanOrEqual(450);
      expect(ms).toBeLessThan(3_000);
      await s.ensureCollection(ns, SPEC);
      expect(await s.listIndexes(ns)).toEqual(expectedIndexes(SPEC));
    });

    it('a write blocked on a row lock another connection holds fails with a StorageError once the client stops waiting, and the store goes on', async () => {
      const ns = freshNs();
      const s = timed();
      await s.ensureCollection(ns, SPEC);
      await s.insertOne(ns, doc({ k: 'a', g: 'x', n: 1 }));
      const { err, ms } = await failureWhileHeld((blocker) => blocker.query(`SELECT id FROM ${tableOf(ns)} FOR UPDATE`), () => s.upsertOne(ns, f({ k: 'a', g: 'x' })!, doc({ k: 'a', g: 'x', n: 2 })));
      expect(err).toBeInstanceOf(StorageError);
      expect(err).toMatchObject({ operation: 'upsertOne', message: expect.stringMatching(/did not answer .* within 1500 ms/) });
      expect(ms).toBeGreaterThanOrEqual(1_400);
      expect(ms).toBeLessThan(4_000);
      // The store goes on. (Outside a transaction only the client gives up: the server may still have run the upsert once the lock went.)
      expect(await s.countDocuments(ns)).toBe(1);
      expect((await s.findOne(ns, f({ k: 'a' })))?.g).toBe('x');
    });
  });

  describe('the catalog', () => {
    it('holds each declared index as a real expression index (unique, partial where sparse) that the planner uses', async () => {
      const ns = freshNs();
      await store.ensureCollection(ns, SPEC);
      const schema = schemaNameFor(schemaPrefix, ns.dbName);
      await withPostgres(async (client) => {
        const defs = await client.query<{ indexname: string; indexdef: string }>(`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 ORDER BY indexname`, [schema, ns.collection]);
        const byName = new Map(defs.rows.map((r) => [r.indexname, r.indexdef]));
        expect(byName.get(indexNameFor(ns.collection, 'k_1_g_1'))).toMatch(/^CREATE UNIQUE INDEX .* USING btree \(\(\(doc -> 'k'::text\)\) NULLS FIRST, \(\(doc -> 'g'::text\)\) NULLS FIRST\)$/);
        expect(byName.get(indexNameFor(ns.collection, 'g_1_at_-1'))).toContain("(((doc -> 'g'::text)) NULLS FIRST, ((doc -> 'at'::text)) DESC NULLS LAST)");
        expect(byName.get(indexNameFor(ns.collection, '_system.deletedAt_1'))).toMatch(/\(\(\(\(doc -> '_system'::text\) -> 'deletedAt'::text\)\) NULLS FIRST\) WHERE \(\(\(doc -> '_system'::text\) -> 'deletedAt'::text\) IS NOT NULL\)$/);
        expect(byName.get(indexNameFor(ns.collection, 'code_1'))).toMatch(/^CREATE UNIQUE INDEX .* WHERE \(\(doc -> 'code'::text\) IS NOT NULL\)$/);
        const comments = await client.query<{ relname: string; comment: string }>(
          `SELECT c.relname, obj_description(c.oid, 'pg_class') AS comment FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass AND obj_description(c.oid, 'pg_class') IS NOT NULL ORDER BY 2`,
          [tableOf(ns)],
        );
        expect(comments.rows.map((r) => r.comment)).toEqual(SPEC.indexes.map((i) => i.name).sort());

        // The statement find runs: equality on g, a date range, sorted by at descending.
        const node = f({ g: 'x', at: { $gte: new Date(Date.UTC(2024, 0, 1)) } })!;
        const params: unknown[] = [Date.now()];
        const where = compileFilter(node, params, documentFields(true));
        // Enough rows (in twenty groups, over a year of dates) for the planner to prefer the index.
        await client.query(
          `INSERT INTO ${tableOf(ns)} (doc) SELECT jsonb_build_object('k', 'k' || i, 'g', CASE WHEN i % 20 = 0 THEN 'x' ELSE 'y' || (i % 20) END,
             'at', jsonb_build_object('$date', to_char(timestamptz '2024-01-01 00:00Z' + i * interval '1 hour', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
           FROM generate_series(1, 20000) AS i`,
        );
        await client.query(`ANALYZE ${tableOf(ns)}`);
        const plan = await client.query<{ 'QUERY PLAN': string }>(
          `EXPLAIN SELECT doc::text FROM ${tableOf(ns)} WHERE (expires_at IS NULL OR expires_at > $1::bigint) AND ${where} ORDER BY ${sortSql([['at', -1]], true)} LIMIT 10`,
          params,
        );
        const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
        expect(text).toContain(`Index Scan using "${indexNameFor(ns.collection, 'g_1_at_-1')}"`);
        // The index gives the order of at; only ties (on id) may still be sorted.
        expect(text).toMatch(/Index Cond: .*doc -> 'g'::text\) = .* AND .*doc -> 'at'::text\) >= /);
        expect(text).not.toMatch(/^\s*(->\s+)?Sort\s+\(/m);
        expect(text).toMatch(/Presorted Key: \(\(doc -> 'at'::text\)\)/);
      });
    });

    it('long names: hashed index names within 63 bytes, still reported and named by their declared names', async () => {
      const ns = { dbName: `D${'b'.repeat(62)}`, collection: `C${'c'.repeat(62)}` };
      const longName = `${'x'.repeat(100)}_1`;
      const spec: CollectionSpec = { fields: ['k', 'g', 'x'], indexes: [{ name: 'k_1_g_1', keys: [['k', 1], ['g', 1]], unique: true }, { name: longName, keys: [['x', -1]], unique: true, sparse: true }] };
      await store.ensureCollection(ns, spec);
      await store.ensureCollection(ns, spec);
      expect(await store.listIndexes(ns)).toEqual(expectedIndexes(spec));
      await store.insertOne(ns, { k: 'a', g: 'b', x: 1 });
      await expect(store.insertOne(ns, { k: 'c', g: 'd', x: 1 })).rejects.toMatchObject({ index: longName });
      await expect(store.insertOne(ns, { k: 'a', g: 'b' })).rejects.toMatchObject({ index: 'k_1_g_1' });
      expect(schemaNameFor(schemaPrefix, ns.dbName).length).toBeLessThanOrEqual(63);
      expect(indexNameFor(ns.collection, longName).length).toBeLessThanOrEqual(63);
    });

    it('refuses a schema of its name that is not a Xronox document database, and leaves it alone', async () => {
      const ns = { dbName: foreignDb, collection: 'items' };
      const schema = escapeIdentifier(foreignSchema);
      await withPostgres(async (client) => {
        await client.query(`CREATE SCHEMA ${schema}`);
        await client.query(`CREATE TABLE ${schema}.items (doc jsonb)`);
        await client.query(`INSERT INTO ${schema}.items VALUES ('{"k":"theirs"}')`);
      });
      await expect(store.ensureCollection(ns, SPEC)).rejects.toBeInstanceOf(StorageError);
      await expect(store.find(ns, null, { limit: 10 })).rejects.toBeInstanceOf(StorageError);
      await expect(store.deleteMany(ns, null)).rejects.toBeInstanceOf(StorageError);
      await withPostgres(async (client) => {
        expect((await client.query(`SELECT doc FROM ${schema}.items`)).rows).toEqual([{ doc: { k: 'theirs' } }]);
        expect((await client.query(`SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = $1::regnamespace`, [schema])).rows[0]).toEqual({ n: 1 });
      });
    });

    it('a collection without unique indexes takes inserts and upserts (no expired holders to purge)', async () => {
      const ns = freshNs();
      const spec: CollectionSpec = { fields: ['k', 'at'], indexes: [{ name: 'at_-1', keys: [['at', -1]] }] };
      await store.ensureCollection(ns, spec);
      await store.insertOne(ns, { k: 'a', at: DATES[1]! });
      await store.insertOne(ns, { k: 'a', at: DATES[2]! });
      expect(await store.upsertOne(ns, f({ k: 'b' })!, { k: 'b', n: 1 })).toEqual({ created: true });
      expect(await store.upsertOne(ns, f({ k: 'b' })!, { k: 'b', n: 2 })).toEqual({ created: false });
      expect(await store.find(ns, null, { sort: [['at', -1]], limit: 10 })).toEqual([{ k: 'a', at: DATES[2] }, { k: 'a', at: DATES[1] }, { k: 'b', n: 2 }]);
    });

    it('writes before ensureCollection in this process are refused; bad names and expiries are ValidationErrors', async () => {
      const ns = freshNs();
      await expect(store.insertOne(ns, doc({ k: 'a', g: 'g' }))).rejects.toBeInstanceOf(ValidationError);
      await expect(store.ensureCollection({ dbName: 'bad name', collection: 'items' }, SPEC)).rejects.toBeInstanceOf(ValidationError);
      await expect(store.ensureCollection({ dbName: 'ok', collection: 'x"; DROP SCHEMA public; --' }, SPEC)).rejects.toBeInstanceOf(ValidationError);
      await store.ensureCollection(ns, SPEC);
      await expect(store.insertOne(ns, doc({ k: 'a', g: 'g' }), { expiresAt: new Date(Date.UTC(10000, 0, 1)) })).rejects.toBeInstanceOf(ValidationError);
      // The extremes of the storable years keep their exact millisecond.
      const extremes = [new Date('0000-01-01T00:00:00.000Z'), new Date('9999-12-31T23:59:59.999Z')];
      await store.importDocuments(ns, extremes.map((expiresAt, i) => ({ doc: doc({ k: `e${i}`, g: 'g' }), expiresAt })));
      expect((await store.exportDocuments(ns, { limit: 10 })).documents.map((d) => d.expiresAt)).toEqual(extremes);
    });
  });

  describe('messaging on PostgreSQL, through the facade', () => {
    // The adapter registry is not wired to PostgreSQL yet: this instance gets its document store
    // from a factory of its own, and has no index or blob store (the Chronow configuration).
    const DAY = 86_400_000;
    let x: Xronox;
    const config = {
      dbConnections: { pg: { postgresUri: POSTGRES_URI } },
      spacesConnections: {},
      databases: {
        messaging: {
          tenantDatabases: [
            { tenantId: 'default', dbConnRef: 'pg', spaceConnRef: '', bucket: '', dbName: 'chronos_messaging_default' },
            { tenantId: 'tenant-a', dbConnRef: 'pg', spaceConnRef: '', bucket: '', dbName: 'chronos_messaging_tenant_a' },
          ],
        },
      },
    };
    const none = (what: string) => () => {
      throw new Error(`this test configures no ${what}`);
    };
    beforeAll(() => {
      x = new Xronox(loadConfig(config), {
        indexStore: none('index store'),
        blobStore: none('blob store'),
        documentStore: () => new PostgresDocumentStore({ uri: POSTGRES_URI, schemaPrefix }),
      });
    });
    afterAll(async () => {
      await x.shutdown();
    });
    const handle = (tenantId: string, collection: string) => x.with({ databaseType: 'messaging', tier: 'tenant', tenantId, collection });

    it('migrate creates every collection with its declared indexes, idempotently (what `xronox migrate` runs)', async () => {
      for (let run = 0; run < 2; run++) {
        const reports = await migrateDocuments(x);
        expect(reports.map((r) => [r.dbName, r.error])).toEqual([['chronos_messaging_default', undefined], ['chronos_messaging_tenant_a', undefined]]);
        for (const report of reports) {
          for (const [collection, names] of Object.entries(report.collections)) {
            expect({ collection, names }).toEqual({ collection, names: MESSAGING_SPECS[collection as keyof typeof MESSAGING_SPECS].indexes.map((i) => i.name).sort() });
          }
        }
      }
    });

    it('round-trips messages, keeps unique keys, sorts by date, hides and sweeps expired shared memory', async () => {
      const messages = handle('tenant-a', 'messages');
      const t0 = Date.UTC(2026, 0, 15, 12);
      const message = (msgId: string, minutes: number) => ({
        topic: 'payments', msgId, tenantId: 'tenant-a', headers: { 'x-trace': 'é🎉\u0000' }, payload: { amount: 12.5, blob: 'p'.repeat(70_000) },
        firstSeenAt: new Date(t0 + minutes * 60_000), size: 70_000, _system: { createdAt: new Date(t0) },
      });
      for (const [i, minutes] of [3, 1, 2].entries()) await messages.insert(message(`m${i}`, minutes));
      expect(await messages.findOne({ msgId: 'm1' })).toEqual(message('m1', 1));
      await expect(messages.insert(message('m1', 9))).rejects.toMatchObject({ index: 'topic_1_msgId_1_tenantId_1' });
      expect((await messages.find({ topic: 'payments' }, { sort: { firstSeenAt: -1 } })).map((m) => m.msgId)).toEqual(['m0', 'm2', 'm1']);
      expect((await messages.find({ firstSeenAt: { $gt: new Date(t0 + 60_000) } })).map((m) => m.msgId)).toEqual(['m0', 'm2']);
      expect(await handle('default', 'messages').find({})).toEqual([]);

      const memory = handle('default', 'shared_memory');
      const now = Date.now();
      const entry = (key: string, ageDays: number, retentionDays: number) => ({
        key, namespace: 'app', tenantId: 'default', val: { key },
        _system: { createdAt: new Date(now - ageDays * DAY), updatedAt: new Date(now - ageDays * DAY), retentionDays },
      });
      expect(await memory.upsert({ key: 'old', namespace: 'app', tenantId: 'default' }, entry('old', 3, 1))).toEqual({ created: true });
      expect(await memory.upsert({ key: 'new', namespace: 'app', tenantId: 'default' }, entry('new', 0, 1))).toEqual({ created: true });
      expect((await memory.find({})).map((d) => d.key)).toEqual(['new']);
      const swept = await expireDocuments(x, new Date(now));
      expect(swept.find((r) => r.dbName === 'chronos_messaging_default')!.collections.shared_memory).toBe(1);
      // The expired key may be written again.
      expect(await memory.upsert({ key: 'old', namespace: 'app', tenantId: 'default' }, entry('old', 0, 1))).toEqual({ created: true });
      expect((await memory.find({}, { sort: { key: 1 } })).map((d) => d.key)).toEqual(['new', 'old']);
    });
  });
});
