import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'pg';
import { Client as PgClient } from 'pg';
import { compileFilter, documentFields, fromStoredJson, toStoredJson } from '../../core/adapters/postgres/postgres-filter.js';
import { ValidationError } from '../../core/errors.js';
import type { FilterNode, IndexedValue } from '../../core/foundation/filter-tree.js';
import { matches, parseFilter } from '../../core/foundation/filter.js';
import { Gen } from '../support/random.js';
import { describePostgres, POSTGRES_URI, postgresAvailability } from '../support/postgres.js';

/**
 * The PostgreSQL filter compiler against `matches()`, the semantics every store shares: random
 * rows and random filters, each filter run both ways, on a temporary table shaped like
 * `heads.meta` (jsonb, with the same GIN index); and hostile keys, values and field paths over
 * both of its field mappings, the index store's `meta` and the document store's `doc` (whose
 * differential against `matches()` is in `test/domains/documents-postgres.test.ts`). Temporary
 * tables live in this session's own schema and vanish with it: the test touches nothing else.
 */

type Meta = Record<string, IndexedValue>;

const availability = await postgresAvailability();
const FIELDS = ['a', 'b', 'c'] as const;
const allowed = (field: string): boolean => ['a', 'b', 'c', 'd'].includes(field);
const parse = (input: unknown): FilterNode | null => parseFilter(input, allowed);

/** Strings that probe byte order: case, accents, astral characters, prefixes, the empty string. */
const STRINGS = ['', 'a', 'A', 'b', 'B', 'ab', 'abc', 'é', 'z', 'Z', '😀', '\uffff', 'x y', '1', 'true', 'null', '10', '9', 'a\u0001'];
/** Numbers that probe numeric order: integers, fractions, exponents, extremes. */
const NUMBERS = [0, 1, -1, 1.5, 0.1, 0.30000000000000004, 10, 9, 1e21, -1e21, 5e-324, 1.7976931348623157e308, 2 ** 53, 123456789.123];

function randomValue(g: Gen): IndexedValue {
  switch (g.int(5)) {
    case 0:
      return g.pick(STRINGS);
    case 1:
    case 2:
      return g.pick(NUMBERS);
    case 3:
      return g.chance(0.5);
    default:
      return null;
  }
}

function randomMeta(g: Gen): Meta {
  const meta: Meta = {};
  for (const field of FIELDS) if (g.chance(0.75)) meta[field] = randomValue(g);
  return meta;
}

const RANGE_OPS = ['$gt', '$gte', '$lt', '$lte'] as const;
const FILTER_FIELDS = ['a', 'b', 'c', 'c', 'd'] as const;

function randomOperand(g: Gen, seen: readonly IndexedValue[]): IndexedValue {
  return g.chance(0.6) ? g.pick(seen) : randomValue(g);
}

function randomFilter(g: Gen, seen: readonly IndexedValue[], depth: number): Record<string, unknown> {
  if (depth < 3 && g.chance(0.35)) {
    const items = Array.from({ length: 1 + g.int(3) }, () => randomFilter(g, seen, depth + 1));
    const out: Record<string, unknown> = { [g.chance(0.5) ? '$and' : '$or']: items };
    if (g.chance(0.3)) Object.assign(out, randomFieldCondition(g, seen));
    return out;
  }
  const out: Record<string, unknown> = {};
  const n = g.chance(0.8) ? 1 : 2;
  for (let i = 0; i < n; i++) Object.assign(out, randomFieldCondition(g, seen));
  return out;
}

function randomFieldCondition(g: Gen, seen: readonly IndexedValue[]): Record<string, unknown> {
  const field = g.pick(FILTER_FIELDS);
  const condition: Record<string, unknown> = {};
  const ops = 1 + (g.chance(0.2) ? 1 : 0);
  for (let i = 0; i < ops; i++) {
    switch (g.int(8)) {
      case 0:
        return { [field]: randomOperand(g, seen) };
      case 1:
        condition.$eq = randomOperand(g, seen);
        break;
      case 2:
        condition.$ne = randomOperand(g, seen);
        break;
      case 3:
      case 4: {
        let v = randomOperand(g, seen);
        while (v === null) v = randomOperand(g, seen);
        condition[g.pick(RANGE_OPS)] = v;
        break;
      }
      case 5:
        condition.$in = Array.from({ length: g.int(5) }, () => randomOperand(g, seen));
        break;
      case 6:
        condition.$nin = Array.from({ length: g.int(5) }, () => randomOperand(g, seen));
        break;
      default:
        condition.$exists = g.chance(0.5);
    }
  }
  return { [field]: condition };
}

function kindsOf(node: FilterNode | null, out: Set<string>): Set<string> {
  if (node === null) return out;
  if (node.kind === 'and' || node.kind === 'or') {
    out.add(node.kind);
    node.items.forEach((n) => kindsOf(n, out));
  } else if (node.kind === 'compare') out.add(node.op);
  else if (node.kind === 'in') out.add(node.negate ? '$nin' : '$in');
  else out.add(`$exists:${node.exists}`);
  return out;
}

function memoryRows(metas: readonly Meta[], node: FilterNode | null): number[] {
  const out: number[] = [];
  metas.forEach((meta, i) => {
    if (matches(node, meta)) out.push(i + 1);
  });
  return out;
}

/** Rows (1-based) each filter selects, many filters per statement (one aggregate column each). */
async function sqlRowsMany(client: Client, nodes: readonly (FilterNode | null)[]): Promise<number[][]> {
  const out: number[][] = [];
  for (let i = 0; i < nodes.length; i += 40) {
    const chunk = nodes.slice(i, i + 40);
    const params: unknown[] = [];
    const columns = chunk.map((node, j) => {
      const where = node === null ? 'TRUE' : compileFilter(node, params);
      return `coalesce(array_agg(rid ORDER BY rid) FILTER (WHERE ${where}), '{}') AS f${j}`;
    });
    const result = await client.query<Record<string, number[]>>(`SELECT ${columns.join(', ')} FROM pg_temp.heads`, params);
    const row = result.rows[0]!;
    chunk.forEach((_, j) => out.push(row[`f${j}`]!.map(Number)));
  }
  return out;
}

async function sqlRows(client: Client, node: FilterNode | null): Promise<number[]> {
  const params: unknown[] = [];
  const where = node === null ? 'TRUE' : compileFilter(node, params);
  const result = await client.query<{ rid: number }>(`SELECT rid FROM pg_temp.heads WHERE ${where} ORDER BY rid`, params);
  return result.rows.map((r) => Number(r.rid));
}

async function load(client: Client, metas: readonly Meta[]): Promise<void> {
  await client.query('DROP TABLE IF EXISTS pg_temp.heads');
  await client.query('CREATE TEMP TABLE heads (rid integer PRIMARY KEY, meta jsonb NOT NULL)');
  await client.query('CREATE INDEX ON pg_temp.heads USING gin (meta jsonb_path_ops)');
  await client.query('INSERT INTO pg_temp.heads (rid, meta) SELECT i, m FROM unnest($1::int[], $2::jsonb[]) AS u(i, m)', [
    metas.map((_, i) => i + 1),
    metas.map((m) => JSON.stringify(m)),
  ]);
  await client.query('ANALYZE pg_temp.heads');
}

/** The SQL text holds only the compiler's own tokens: every key and value is a `$n` parameter. */
const SQL_TOKENS =
  /^(?:\s+|\(|\)|\$\d+|::(?:text|jsonb)|[<>]=?|=|@>|->|#>>|'\{\}'|IS|NULL|TRUE|FALSE|AND|OR|NOT|BETWEEN|COALESCE|jsonb_typeof|COLLATE "C"|meta|,|'(?:string|number|boolean|null|false|true)'(?:::jsonb)?)*$/;

describePostgres('PostgreSQL filter compiler', availability, () => {
  let client: Client;
  beforeAll(async () => {
    client = new PgClient({ connectionString: POSTGRES_URI, application_name: 'xronox-filter-test' });
    await client.connect();
  });
  afterAll(async () => {
    await client.end();
  });

  describe.each([1, 2, 3, 20240601])('differential against matches() (seed %i)', (seed) => {
    const FILTERS = 1500;
    let metas: Meta[];
    let seen: IndexedValue[];

    beforeAll(async () => {
      const g = new Gen(seed);
      metas = Array.from({ length: 300 }, () => randomMeta(g));
      // The same "one" as number, string and boolean; empty; all null.
      metas.push({ a: 1, b: '1', c: true }, { a: '1', b: true, c: 1 }, { a: true, b: 1, c: '1' }, {}, { a: null, b: null, c: null });
      seen = metas.flatMap((m) => Object.values(m));
      await load(client, metas);
    });

    it.each([
      ['as filters of one statement', false],
      ['as WHERE clauses, with sequential scans off (the GIN index answers containment)', true],
    ])('selects exactly the rows matches() accepts, %s', async (_label, forced) => {
      // This session only; jit off because the cost of a disabled plan would compile every query.
      if (forced) await client.query('SET enable_seqscan = off; SET jit = off');
      try {
        const g = new Gen(seed * 7919 + 1);
        const inputs = Array.from({ length: FILTERS }, () => randomFilter(g, seen, 0));
        const nodes = inputs.map(parse);
        const kinds = new Set<string>();
        nodes.forEach((n) => kindsOf(n, kinds));
        const got: number[][] = [];
        if (forced) for (const node of nodes) got.push(await sqlRows(client, node));
        else got.push(...(await sqlRowsMany(client, nodes)));
        const mismatches: string[] = [];
        let selective = 0;
        nodes.forEach((node, i) => {
          const want = memoryRows(metas, node);
          if (want.length > 0 && want.length < metas.length) selective++;
          if (JSON.stringify(want) !== JSON.stringify(got[i]) && mismatches.length < 5) {
            const onlyMemory = want.filter((r) => !got[i]!.includes(r)).map((r) => metas[r - 1]);
            const onlySql = got[i]!.filter((r) => !want.includes(r)).map((r) => metas[r - 1]);
            mismatches.push(`filter ${JSON.stringify(inputs[i])}: only matches(): ${JSON.stringify(onlyMemory)}; only SQL: ${JSON.stringify(onlySql)}`);
          }
        });
        expect(mismatches).toEqual([]);
        expect([...kinds].sort()).toEqual(['$eq', '$exists:false', '$exists:true', '$gt', '$gte', '$in', '$lt', '$lte', '$ne', '$nin', 'and', 'or'].sort());
        expect(selective).toBeGreaterThan(FILTERS / 2);
      } finally {
        await client.query('RESET enable_seqscan; RESET jit');
      }
    });

    it('never splices a caller value into the SQL text', () => {
      const g = new Gen(seed + 17);
      for (let i = 0; i < 300; i++) {
        const node = parse(randomFilter(g, seen, 0));
        if (node === null) continue;
        expect(compileFilter(node, [])).toMatch(SQL_TOKENS);
      }
    });
  });

  describe('hand-checked semantics', () => {
    const metas: Meta[] = [
      { a: 1 },
      { a: 1.0 },
      { a: '1' },
      { a: true },
      { a: false },
      { a: null },
      {},
      { a: 'B' },
      { a: 'a' },
      { a: 'é' },
      { a: '😀' },
      { a: '\uffff' },
      { a: 'ab' },
      { a: 0.1 },
      { a: 1e21 },
      { a: -0 },
    ];
    beforeAll(async () => {
      await load(client, metas);
    });

    it.each([
      [{ a: 1 }],
      [{ a: '1' }],
      [{ a: true }],
      [{ a: null }],
      [{ a: { $ne: null } }],
      [{ a: { $exists: false } }],
      [{ a: { $exists: true } }],
      [{ a: { $gt: 'a' } }],
      [{ a: { $lt: 'a' } }],
      [{ a: { $gte: '😀' } }],
      [{ a: { $gt: '\uffff' } }],
      [{ a: { $lt: 0.5 } }],
      [{ a: { $gte: 1 } }],
      [{ a: { $gt: false } }],
      [{ a: { $lte: true } }],
      [{ a: { $in: [] } }],
      [{ a: { $nin: [] } }],
      [{ a: { $in: [1, null] } }],
      [{ a: { $nin: ['1', false] } }],
      [{ a: 0 }],
      [{ a: 1e21 }],
      [{ $or: [] }],
    ])('%j', async (input) => {
      let node: FilterNode | null;
      try {
        node = parse(input);
      } catch {
        return; // refused by the parser: nothing reaches a store
      }
      expect(await sqlRows(client, node)).toEqual(memoryRows(metas, node));
    });

    it('orders strings in the "C" collation whatever the database default (this server\'s C.UTF-8 agrees with it, en_US would not)', () => {
      for (const op of ['$gt', '$gte', '$lt', '$lte'] as const) {
        expect(compileFilter({ kind: 'compare', field: 'a', op, value: 'a' }, [])).toContain('COLLATE "C"');
      }
    });

    it('an operand with U+0000 (which no stored string can hold) compares as matches() does', async () => {
      for (const input of [
        { a: 'a\u0000' },
        { a: { $ne: 'a\u0000' } },
        { a: { $gt: 'a\u0000' } },
        { a: { $gte: 'a\u0000b' } },
        { a: { $lt: 'a\u0000' } },
        { a: { $lte: '\u0000' } },
        { a: { $gt: '\u0000' } },
        { a: { $in: ['a\u0000', 1] } },
      ]) {
        const node = parse(input);
        expect(await sqlRows(client, node), JSON.stringify(input)).toEqual(memoryRows(metas, node));
      }
    });
  });

  describe('injection', () => {
    const hostile = ["'); DROP TABLE heads; --", '" OR 1=1 --', "' OR '1'='1", '\\"; --', '{"a": 1}', "a') OR ('1'='1"];
    const metas: Meta[] = [...hostile.map((h) => ({ a: h })), { a: 'plain', x: 'y' }, { a: 1 }];
    beforeAll(async () => {
      await load(client, metas);
    });

    it.each(hostile)('binds %j as a parameter', async (value) => {
      const node = parse({ a: value })!;
      const params: unknown[] = [];
      const sql = compileFilter(node, params);
      expect(sql).not.toContain(value);
      expect(sql).toMatch(SQL_TOKENS);
      expect(await sqlRows(client, node)).toEqual([hostile.indexOf(value) + 1]);
      for (const f of [{ $ne: value }, { $gt: value }, { $lte: value }, { $in: [value, 'zz'] }, { $nin: [value] }]) {
        const n = parse({ a: f });
        expect(await sqlRows(client, n)).toEqual(memoryRows(metas, n));
      }
      const count = await client.query<{ n: string }>('SELECT count(*) AS n FROM pg_temp.heads');
      expect(Number(count.rows[0]!.n)).toBe(metas.length);
    });

    it('keeps a hostile field name out of the SQL text (it is a bound key)', async () => {
      const field = 'a"); DROP TABLE heads; --';
      for (const node of [
        { kind: 'compare', field, op: '$gt', value: 1 },
        { kind: 'compare', field, op: '$eq', value: 'x' },
        { kind: 'compare', field, op: '$eq', value: null },
        { kind: 'exists', field, exists: true },
      ] as FilterNode[]) {
        const params: unknown[] = [];
        const sql = compileFilter(node, params);
        expect(sql).not.toContain('DROP');
        expect(sql).toMatch(SQL_TOKENS);
        await client.query(`SELECT rid FROM pg_temp.heads WHERE ${sql}`, params);
      }
      const count = await client.query<{ n: string }>('SELECT count(*) AS n FROM pg_temp.heads');
      expect(Number(count.rows[0]!.n)).toBe(metas.length);
    });
  });

  describe.each([true, false])('injection into a document filter (byteOrder: %s)', (byteOrder) => {
    const fields = documentFields(byteOrder);
    const hostile = ["'); DROP TABLE docs; --", '" OR 1=1 --', "' OR '1'='1", '\\"; --', '{"k": 1}', 'a\u0000\'', '\u0001\u0000', "$1'::jsonb OR TRUE --"];
    const docs = [...hostile.map((h, i) => ({ k: h, n: i })), { k: 'plain', n: 99 }];
    /** The text of a document filter: the field's expression, the compiler's tokens and `$n` parameters only. */
    const DOC_TOKENS =
      /^(?:\s+|\(|\)|\$\d+|::(?:text|jsonb(?:\[\])?)|[<>]=?|=|->>?|#>>|'\{\}'|IS|NULL|TRUE|FALSE|AND|OR|NOT|ANY|BETWEEN|COALESCE|jsonb_typeof|COLLATE "C"|doc|'k'|'n'|,|'(?:string|number|boolean|null|false|true)'(?:::jsonb)?)*$/;

    beforeAll(async () => {
      await client.query('DROP TABLE IF EXISTS pg_temp.docs');
      await client.query('CREATE TEMP TABLE docs (rid integer PRIMARY KEY, doc jsonb NOT NULL)');
      await client.query('INSERT INTO pg_temp.docs (rid, doc) SELECT i, d::jsonb FROM unnest($1::int[], $2::text[]) AS u(i, d)', [
        docs.map((_, i) => i + 1),
        docs.map((d) => toStoredJson(d)),
      ]);
    });

    async function docRows(node: FilterNode): Promise<number[]> {
      const params: unknown[] = [];
      const sql = compileFilter(node, params, fields);
      expect(sql).toMatch(DOC_TOKENS);
      const result = await client.query<{ rid: number }>(`SELECT rid FROM pg_temp.docs WHERE ${sql} ORDER BY rid`, params);
      return result.rows.map((r) => Number(r.rid));
    }

    it.each(hostile)('binds %j as a parameter and finds exactly its document', async (value) => {
      const i = hostile.indexOf(value);
      for (const node of [
        { kind: 'compare', field: 'k', op: '$eq', value },
        { kind: 'in', field: 'k', negate: false, values: [value, 'zz'] },
      ] as FilterNode[]) {
        const params: unknown[] = [];
        expect(compileFilter(node, params, fields)).not.toContain(value);
        expect(await docRows(node)).toEqual([i + 1]);
      }
      const ne = await docRows({ kind: 'compare', field: 'k', op: '$ne', value });
      expect(ne).toHaveLength(docs.length - 1);
      const below = await docRows({ kind: 'compare', field: 'k', op: '$lt', value });
      expect(below.map((r) => docs[r - 1]!.k).every((k) => Buffer.compare(Buffer.from(k), Buffer.from(value)) < 0)).toBe(true);
      const stored = await client.query<{ doc: string }>('SELECT doc::text AS doc FROM pg_temp.docs WHERE rid = $1', [i + 1]);
      expect(fromStoredJson(stored.rows[0]!.doc)).toEqual(docs[i]);
      const count = await client.query<{ n: string }>('SELECT count(*) AS n FROM pg_temp.docs');
      expect(Number(count.rows[0]!.n)).toBe(docs.length);
    });

    it('refuses a field path that is not identifiers joined by dots, before any SQL is written', () => {
      for (const field of ["k') OR TRUE --", "k' -> 'x", 'k"', 'a..b', '', 'k;DROP TABLE docs', '__proto__', 'k\u0000']) {
        for (const node of [
          { kind: 'compare', field, op: '$eq', value: 'x' },
          { kind: 'compare', field, op: '$gt', value: 1 },
          { kind: 'exists', field, exists: true },
          { kind: 'in', field, negate: true, values: [null] },
        ] as FilterNode[]) {
          expect(() => compileFilter(node, [], fields), `${JSON.stringify(field)} ${node.kind}`).toThrow(ValidationError);
        }
      }
    });
  });
});
