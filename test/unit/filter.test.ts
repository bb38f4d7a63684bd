import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileFilter, DOCUMENT_FIELDS, documentPath, extract, fieldOfExpression, metaFields } from '../../core/adapters/sqlite/sqlite-filter.js';
import { toDocumentJson, type Doc, type DocFilter, type DocScalar } from '../../core/contracts/document-store.js';
import type { FilterNode } from '../../core/foundation/filter-tree.js';
import type { IndexedValue } from '../../core/contracts/index-store.js';
import { parseDocumentFilter } from '../../core/domains/documents/document-filter.js';
import { byPath, compareSameType, filterFields, matches, parseFilter, valueAtPath } from '../../core/foundation/filter.js';
import { ValidationError } from '../../core/errors.js';
import { isValidName } from '../../core/foundation/names.js';
import { Gen } from '../support/random.js';

type Meta = Record<string, IndexedValue>;

const FIELDS = ['a', 'b', 'c'] as const;
/** `d` is filterable but never present in any row: every condition on it hits the missing case. */
const allowed = (field: string): boolean => ['a', 'b', 'c', 'd'].includes(field);
/** The predicate the engine uses for a collection without `indexedProps`. */
const engineDefault = (field: string): boolean => isValidName('property', field) && !field.includes('.');

function parse(input: unknown): FilterNode | null {
  return parseFilter(input, allowed);
}

function parseError(input: unknown, isAllowed: (field: string) => boolean = allowed): ValidationError {
  try {
    parseFilter(input, isAllowed);
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error(`parseFilter accepted ${JSON.stringify(input)}`);
}

function validationErrorOf(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError, but nothing was thrown');
}

// ---------------------------------------------------------------------------------------------
// A SQLite table shaped like the adapter's `heads.meta` column, and the two evaluators side by side.

function openDb(): Database.Database {
  const db = new Database(':memory:');
  db.exec('CREATE TABLE heads (meta TEXT NOT NULL)');
  return db;
}

function insertAll(db: Database.Database, metas: readonly Meta[]): void {
  // rowid = index + 1, so a selected rowid maps back to its meta.
  const insert = db.prepare('INSERT INTO heads (rowid, meta) VALUES (?, ?)');
  db.transaction(() => metas.forEach((meta, i) => insert.run(i + 1, JSON.stringify(meta))))();
}

function sqlRows(db: Database.Database, node: FilterNode | null): number[] {
  if (node === null) return (db.prepare('SELECT rowid FROM heads ORDER BY rowid').all() as { rowid: number }[]).map((r) => r.rowid);
  const params: unknown[] = [];
  const where = compileFilter(node, params);
  const rows = db.prepare(`SELECT rowid FROM heads WHERE ${where} ORDER BY rowid`).all(...params) as { rowid: number }[];
  return rows.map((r) => r.rowid);
}

function memoryRows(metas: readonly Meta[], node: FilterNode | null): number[] {
  const out: number[] = [];
  metas.forEach((meta, i) => {
    if (matches(node, meta)) out.push(i + 1);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------

describe('parseFilter', () => {
  it('returns null for no filter and for an empty object', () => {
    expect(parse(undefined)).toBeNull();
    expect(parse(null)).toBeNull();
    expect(parse({})).toBeNull();
  });

  it('turns a scalar into implicit $eq, for every scalar type', () => {
    expect(parse({ a: 'x' })).toEqual({ kind: 'compare', field: 'a', op: '$eq', value: 'x' });
    expect(parse({ a: 1.5 })).toEqual({ kind: 'compare', field: 'a', op: '$eq', value: 1.5 });
    expect(parse({ a: false })).toEqual({ kind: 'compare', field: 'a', op: '$eq', value: false });
    expect(parse({ a: null })).toEqual({ kind: 'compare', field: 'a', op: '$eq', value: null });
  });

  it.each(['$eq', '$ne', '$gt', '$gte', '$lt', '$lte'] as const)('accepts %s', (op) => {
    expect(parse({ a: { [op]: 3 } })).toEqual({ kind: 'compare', field: 'a', op, value: 3 });
    expect(parse({ a: { [op]: 'x' } })).toEqual({ kind: 'compare', field: 'a', op, value: 'x' });
  });

  it('accepts $eq and $ne with null', () => {
    expect(parse({ a: { $eq: null } })).toEqual({ kind: 'compare', field: 'a', op: '$eq', value: null });
    expect(parse({ a: { $ne: null } })).toEqual({ kind: 'compare', field: 'a', op: '$ne', value: null });
  });

  it('accepts $in and $nin with mixed scalars, including an empty list', () => {
    expect(parse({ a: { $in: [1, '1', true, null] } })).toEqual({ kind: 'in', field: 'a', negate: false, values: [1, '1', true, null] });
    expect(parse({ a: { $nin: ['x'] } })).toEqual({ kind: 'in', field: 'a', negate: true, values: ['x'] });
    expect(parse({ a: { $in: [] } })).toEqual({ kind: 'in', field: 'a', negate: false, values: [] });
  });

  it('accepts $exists', () => {
    expect(parse({ a: { $exists: true } })).toEqual({ kind: 'exists', field: 'a', exists: true });
    expect(parse({ a: { $exists: false } })).toEqual({ kind: 'exists', field: 'a', exists: false });
  });

  it('accepts $and and $or, and ANDs several fields and several operators', () => {
    expect(parse({ $and: [{ a: 1 }, { b: 2 }] })).toEqual({
      kind: 'and',
      items: [
        { kind: 'compare', field: 'a', op: '$eq', value: 1 },
        { kind: 'compare', field: 'b', op: '$eq', value: 2 },
      ],
    });
    expect(parse({ $or: [{ a: 1 }, { b: { $exists: false } }] })).toEqual({
      kind: 'or',
      items: [
        { kind: 'compare', field: 'a', op: '$eq', value: 1 },
        { kind: 'exists', field: 'b', exists: false },
      ],
    });
    expect(parse({ a: { $gt: 1, $lt: 5 }, b: 'x' })).toEqual({
      kind: 'and',
      items: [
        { kind: 'compare', field: 'a', op: '$gt', value: 1 },
        { kind: 'compare', field: 'a', op: '$lt', value: 5 },
        { kind: 'compare', field: 'b', op: '$eq', value: 'x' },
      ],
    });
  });

  it('lists the fields a filter reads', () => {
    expect(filterFields(parse({ a: 1, $or: [{ b: 2 }, { c: { $in: [1] } }] }))).toEqual(['a', 'b', 'c']);
    expect(filterFields(null)).toEqual([]);
  });

  it.each([
    ['$where', { $where: 'this.a == 1' }, 'filter.$where'],
    ['$function', { $function: { body: 'x', args: [], lang: 'js' } }, 'filter.$function'],
    ['$expr', { $expr: { $eq: ['$a', 1] } }, 'filter.$expr'],
    ['$regex at the top', { $regex: 'x' }, 'filter.$regex'],
    ['$regex on a field', { a: { $regex: '^x' } }, 'filter.a.$regex'],
    ['$where on a field', { a: { $where: 'x' } }, 'filter.a.$where'],
    ['$not', { a: { $not: { $eq: 1 } } }, 'filter.a.$not'],
    ['$nor', { $nor: [{ a: 1 }] }, 'filter.$nor'],
    ['$elemMatch', { a: { $elemMatch: { b: 1 } } }, 'filter.a.$elemMatch'],
    ['an operator inside $or', { $or: [{ a: 1 }, { $expr: true }] }, 'filter.$or[1].$expr'],
    ['an operator inside nested $and', { $and: [{ $or: [{ a: { $where: '1' } }] }] }, 'filter.$and[0].$or[0].a.$where'],
  ])('rejects %s', (_label, input, path) => {
    const err = parseError(input);
    expect(err.path).toBe(path);
    expect(err.code).toBe('VALIDATION_FAILED');
  });

  it('rejects an object as an equality value (a non-operator key)', () => {
    const err = parseError({ a: { b: 1 } });
    expect(err.path).toBe('filter.a.b');
    expect(err.message).toMatch(/Unexpected key "b"/);
  });

  it('rejects an object or array as an operand', () => {
    expect(parseError({ a: { $eq: { $gt: 1 } } }).path).toBe('filter.a.$eq');
    expect(parseError({ a: { $eq: [1] } }).path).toBe('filter.a.$eq');
    expect(parseError({ a: [1, 2] }).path).toBe('filter.a');
    expect(parseError({ a: { $in: [{ $gt: 1 }] } }).path).toBe('filter.a.$in[0]');
    expect(parseError({ a: { $in: [[1]] } }).path).toBe('filter.a.$in[0]');
  });

  it('rejects an empty operator object', () => {
    expect(parseError({ a: {} }).path).toBe('filter.a');
  });

  it.each([
    ['a string', 'x'],
    ['a number', 1],
    ['an object', { x: 1 }],
    ['null', null],
  ])('rejects $in / $nin with %s instead of an array', (_label, operand) => {
    expect(parseError({ a: { $in: operand } }).path).toBe('filter.a.$in');
    expect(parseError({ a: { $nin: operand } }).path).toBe('filter.a.$nin');
  });

  it('rejects $in lists over 1000 values', () => {
    expect(parse({ a: { $in: Array.from({ length: 1000 }, (_, i) => i) } })).not.toBeNull();
    expect(parseError({ a: { $in: Array.from({ length: 1001 }, (_, i) => i) } }).path).toBe('filter.a.$in');
  });

  it.each([1, 0, 'true', null, {}])('rejects $exists with %j', (operand) => {
    expect(parseError({ a: { $exists: operand } }).path).toBe('filter.a.$exists');
  });

  it.each([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])('rejects %s wherever a value goes', (n) => {
    expect(parseError({ a: n }).path).toBe('filter.a');
    expect(parseError({ a: { $gt: n } }).path).toBe('filter.a.$gt');
    expect(parseError({ a: { $in: [1, n] } }).path).toBe('filter.a.$in[1]');
  });

  it('rejects values JSON has no scalar for', () => {
    expect(parseError({ a: undefined }).path).toBe('filter.a');
    expect(parseError({ a: 10n }).path).toBe('filter.a');
    expect(parseError({ a: Symbol('x') }).path).toBe('filter.a');
    expect(parseError({ a: () => 1 }).path).toBe('filter.a');
    expect(parseError({ a: new Date(0) }).path).toBe('filter.a');
  });

  it.each(['$gt', '$gte', '$lt', '$lte'])('rejects null with %s', (op) => {
    const err = parseError({ a: { [op]: null } });
    expect(err.path).toBe(`filter.a.${op}`);
    expect(err.message).toMatch(/null/);
  });

  it('rejects properties the predicate does not allow, naming them', () => {
    const err = parseError({ a: 1, secret: 2 });
    expect(err.path).toBe('filter.secret');
    expect(err.message).toMatch(/"secret" is not indexed/);
    expect(parseError({ $or: [{ a: 1 }, { e: 1 }] }).path).toBe('filter.$or[1].e');
    // Dotted paths are rejected when only top-level fields are filterable.
    expect(parseError({ 'a.b': 1 }, engineDefault).path).toBe('filter.a.b');
  });

  it('rejects __proto__ and constructor keys parsed from JSON', () => {
    const proto = JSON.parse('{"__proto__": {"$gt": 1}}') as unknown;
    expect(Object.hasOwn(proto as object, '__proto__')).toBe(true);
    expect(parseError(proto).path).toBe('filter.__proto__');
    expect(parseError(JSON.parse('{"constructor": 1}')).path).toBe('filter.constructor');
    expect(parseError(JSON.parse('{"$or": [{"__proto__": 1}]}')).path).toBe('filter.$or[0].__proto__');
  });

  it('rejects a non-object filter and non-object $and / $or members', () => {
    expect(parseError('a = 1').path).toBe('filter');
    expect(parseError([{ a: 1 }]).path).toBe('filter');
    expect(parseError(42).path).toBe('filter');
    expect(parseError(new Map([['a', 1]])).path).toBe('filter');
    expect(parseError({ $and: [{ a: 1 }, 'b'] }).path).toBe('filter.$and[1]');
    expect(parseError({ $or: [null] }).path).toBe('filter.$or[0]');
  });

  it('rejects $and / $or that are not non-empty arrays', () => {
    expect(parseError({ $and: [] }).path).toBe('filter.$and');
    expect(parseError({ $or: { a: 1 } }).path).toBe('filter.$or');
    expect(parseError({ $and: 'x' }).path).toBe('filter.$and');
  });

  it('accepts nesting up to 8 levels and rejects a ninth', () => {
    const nest = (levels: number): unknown => {
      let f: unknown = { a: 1 };
      for (let i = 0; i < levels; i++) f = { [i % 2 === 0 ? '$and' : '$or']: [f] };
      return f;
    };
    expect(parse(nest(8))).not.toBeNull();
    const err = parseError(nest(9));
    expect(err.message).toMatch(/nested deeper than 8/);
    expect(err.path).toMatch(/^filter(\.\$(and|or)\[0\]){9}$/);
  });

  it('accepts 256 conditions and rejects 257', () => {
    const fields = (n: number): Record<string, number> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`f${i}`, i]));
    expect(parseFilter(fields(256), () => true)).not.toBeNull();
    expect(() => parseFilter(fields(257), () => true)).toThrow(/more than 256 conditions/);
    // Conditions are counted across the whole tree, not per object.
    const spread = { $or: Array.from({ length: 200 }, (_, i) => ({ [`f${i}`]: 1, [`g${i}`]: 2 })) };
    expect(() => parseFilter(spread, () => true)).toThrow(ValidationError);
  });

  it('does not touch the prototype chain of the input', () => {
    const input = Object.create({ inherited: 1 }) as Record<string, unknown>;
    // An object whose prototype is not Object.prototype is not a plain filter.
    expect(parseError(input).path).toBe('filter');
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1 });
    expect(parse(bare)).toEqual({ kind: 'compare', field: 'a', op: '$eq', value: 1 });
  });
});

// ---------------------------------------------------------------------------------------------

describe('matches and compileFilter: hand-checked semantics', () => {
  // Each row is named so that expectations read as sets of names.
  const rows: ReadonlyArray<[string, Meta]> = [
    ['int1', { a: 1 }],
    ['str1', { a: '1' }],
    ['true', { a: true }],
    ['false', { a: false }],
    ['null', { a: null }],
    ['missing', {}],
    ['float', { a: 1.5 }],
    ['neg', { a: -2 }],
    ['strB', { a: 'b' }],
    ['empty', { a: '' }],
    ['upperB', { a: 'B' }],
    ['eacute', { a: 'é' }],
    ['emoji', { a: '😀' }],
    ['zero', { a: 0 }],
  ];
  const metas = rows.map(([, meta]) => meta);
  let db: Database.Database;
  beforeAll(() => {
    db = openDb();
    insertAll(db, metas);
  });
  afterAll(() => db.close());

  const cases: ReadonlyArray<[unknown, string[]]> = [
    [{ a: 1 }, ['int1']],
    [{ a: '1' }, ['str1']],
    [{ a: true }, ['true']],
    [{ a: 0 }, ['zero']],
    [{ a: false }, ['false']],
    [{ a: null }, ['null', 'missing']],
    [{ a: { $ne: null } }, rows.map(([n]) => n).filter((n) => n !== 'null' && n !== 'missing')],
    [{ a: { $ne: 1 } }, rows.map(([n]) => n).filter((n) => n !== 'int1')],
    [{ a: { $exists: true } }, rows.map(([n]) => n).filter((n) => n !== 'missing')],
    [{ a: { $exists: false } }, ['missing']],
    [{ a: { $gt: 0 } }, ['int1', 'float']],
    [{ a: { $gte: 1 } }, ['int1', 'float']],
    [{ a: { $lt: 1 } }, ['neg', 'zero']],
    [{ a: { $lte: -2 } }, ['neg']],
    [{ a: { $gt: '' } }, ['str1', 'strB', 'upperB', 'eacute', 'emoji']],
    [{ a: { $gte: '' } }, ['str1', 'strB', 'empty', 'upperB', 'eacute', 'emoji']],
    // UTF-8 byte order: 'B' < 'b' < 'é' (C3 A9) < '😀' (F0 ...).
    [{ a: { $gt: 'b' } }, ['eacute', 'emoji']],
    [{ a: { $lt: 'b' } }, ['str1', 'empty', 'upperB']],
    [{ a: { $gt: 'é' } }, ['emoji']],
    [{ a: { $gt: false } }, ['true']],
    [{ a: { $lt: true } }, ['false']],
    [{ a: { $gte: false } }, ['true', 'false']],
    [{ a: { $in: [1, 'b', null] } }, ['int1', 'strB', 'null', 'missing']],
    [{ a: { $nin: [1, 'b', null] } }, rows.map(([n]) => n).filter((n) => !['int1', 'strB', 'null', 'missing'].includes(n))],
    [{ a: { $in: [] } }, []],
    [{ a: { $nin: [] } }, rows.map(([n]) => n)],
    [{ d: { $ne: 1 } }, rows.map(([n]) => n)],
    [{ d: { $nin: ['x'] } }, rows.map(([n]) => n)],
    [{ d: { $gt: 0 } }, []],
    [{ d: null }, rows.map(([n]) => n)],
    [{ $or: [{ a: { $gt: 1 } }, { a: { $lt: '1' } }] }, ['float', 'empty']],
    [{ $and: [{ a: { $exists: true } }, { a: { $ne: null } }, { a: { $nin: [0, 1, false] } }, { a: { $lt: 'b' } }] }, ['str1', 'empty', 'upperB']],
  ];

  it.each(cases)('%j', (input, expected) => {
    const node = parse(input);
    const want = rows.flatMap(([name], i) => (expected.includes(name) ? [i + 1] : []));
    expect(memoryRows(metas, node)).toEqual(want);
    expect(sqlRows(db, node)).toEqual(want);
  });

  it('orders strings by UTF-8 bytes, not UTF-16 code units', () => {
    // U+FF61 is one UTF-16 unit above the high surrogates, but 3 UTF-8 bytes below a 4-byte emoji.
    expect(compareSameType('\uff61', '😀')).toBe(-1);
    expect(compareSameType('a', 1)).toBeUndefined();
    expect(compareSameType(null, null)).toBeUndefined();
    expect(compareSameType(false, true)).toBe(-1);
  });

  it('treats a null filter as matching everything', () => {
    expect(matches(null, {})).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// The differential property test: random metas, random filters, SQL against `matches`.



const STRINGS = [
  '', ' ', 'a', 'b', 'B', 'ab', 'a ', '1', '0', '-1', '1.5', 'true', 'false', 'null', 'é', 'e\u0301', 'ü', 'Ω', '日本', '😀', 'a😀',
  '\uff61', 'a\u0000b', "O'Brien", '"q"', '\\', "'); DROP TABLE heads; --", '$."x"', '%', '_',
] as const;
const NUMBERS = [0, -0, 1, -1, 2, 10, -2, 1.5, -2.5, 0.1, 0.2, 0.30000000000000004, 1e-7, 123456789, 2 ** 53, -(2 ** 53), 2 ** 63, 1e21, -1e300, 5e-324] as const;

function randomValue(g: Gen): IndexedValue {
  switch (g.int(6)) {
    case 0:
    case 1:
      return g.pick(STRINGS);
    case 2:
      return g.pick(NUMBERS);
    case 3:
      // Random integers and floats, negative included; these exercise INTEGER vs REAL in SQLite.
      return g.chance(0.5) ? g.int(21) - 10 : (g.float() - 0.5) * 20;
    case 4:
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

/** A filter value: usually one seen in the data (so equality hits), sometimes fresh. */
function randomOperand(g: Gen, seen: readonly IndexedValue[]): IndexedValue {
  return g.chance(0.6) ? g.pick(seen) : randomValue(g);
}

const RANGE_OPS = ['$gt', '$gte', '$lt', '$lte'] as const;
const FILTER_FIELDS = ['a', 'b', 'c', 'c', 'd'] as const;

/** A raw user filter (what a caller would send), built to be valid: it goes through parseFilter. */
function randomFilter(g: Gen, seen: readonly IndexedValue[], depth: number): Record<string, unknown> {
  if (depth < 3 && g.chance(0.35)) {
    const n = 1 + g.int(3);
    const items = Array.from({ length: n }, () => randomFilter(g, seen, depth + 1));
    const out: Record<string, unknown> = { [g.chance(0.5) ? '$and' : '$or']: items };
    // Sometimes a sibling condition too, which makes an implicit AND around the operator.
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
  const ops = 1 + (g.chance(0.2) ? 1 : 0);
  const condition: Record<string, unknown> = {};
  for (let i = 0; i < ops; i++) {
    switch (g.int(8)) {
      case 0:
        // Implicit equality (only valid alone).
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

/** The SQL text may hold only the compiler's own tokens: every caller value is a `?` parameter. */
const SQL_TOKENS = /^(?:\s+|\(|\)|,|\?|[<>]=?|=|0|1|AND|OR|NOT|IS|NULL|IN|IFNULL|json_type|json_extract|meta|'(?:text|integer|real|true|false|null)')*$/;

describe.each([1, 2, 3, 20240601])('differential: SQLite compileFilter vs matches (seed %i)', (seed) => {
  const ROWS = 300;
  const FILTERS = 2500;
  let db: Database.Database;
  let metas: Meta[];
  let seen: IndexedValue[];

  beforeAll(() => {
    const g = new Gen(seed);
    metas = Array.from({ length: ROWS }, () => randomMeta(g));
    // A few rows that pin the mixed-type corner: the same "one" as number, string and boolean.
    metas.push({ a: 1, b: '1', c: true }, { a: '1', b: true, c: 1 }, { a: true, b: 1, c: '1' }, {}, { a: null, b: null, c: null });
    seen = metas.flatMap((m) => Object.values(m));
    db = openDb();
    insertAll(db, metas);
  });
  afterAll(() => db.close());

  it('selects exactly the rows matches() accepts, for every random filter', () => {
    const g = new Gen(seed * 7919 + 1);
    const kinds = new Set<string>();
    let selective = 0;
    const mismatches: string[] = [];
    for (let i = 0; i < FILTERS; i++) {
      const input = randomFilter(g, seen, 0);
      const node = parse(input);
      kindsOf(node, kinds);
      const want = memoryRows(metas, node);
      const got = sqlRows(db, node);
      if (want.length > 0 && want.length < metas.length) selective++;
      if (JSON.stringify(want) !== JSON.stringify(got)) {
        const onlyMemory = want.filter((r) => !got.includes(r)).map((r) => metas[r - 1]);
        const onlySql = got.filter((r) => !want.includes(r)).map((r) => metas[r - 1]);
        mismatches.push(`filter ${JSON.stringify(input)}: only matches(): ${JSON.stringify(onlyMemory)}; only SQL: ${JSON.stringify(onlySql)}`);
        if (mismatches.length >= 5) break;
      }
    }
    expect(mismatches).toEqual([]);
    // The test is only meaningful if it exercised every node kind and mostly non-trivial selections.
    expect([...kinds].sort()).toEqual(
      ['$eq', '$exists:false', '$exists:true', '$gt', '$gte', '$in', '$lt', '$lte', '$ne', '$nin', 'and', 'or'].sort(),
    );
    expect(selective).toBeGreaterThan(FILTERS / 2);
  });

  it('never splices a caller value into the SQL text', () => {
    const g = new Gen(seed + 17);
    for (let i = 0; i < 300; i++) {
      const node = parse(randomFilter(g, seen, 0));
      if (node === null) continue;
      const sql = compileFilter(node, []);
      expect(sql).toMatch(SQL_TOKENS);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('compileFilter: injection', () => {
  const hostile = ["'); DROP TABLE heads; --", '$."x"', '" OR 1=1 --', "' OR '1'='1", '$.a', '\\"; --'];
  let db: Database.Database;
  const metas: Meta[] = [...hostile.map((h) => ({ a: h })), { a: 'plain', x: 'y' }, { a: 1 }];
  beforeAll(() => {
    db = openDb();
    insertAll(db, metas);
  });
  afterAll(() => db.close());

  it.each(hostile)('binds %j as a parameter', (value) => {
    const node = parse({ a: value })!;
    const params: unknown[] = [];
    const sql = compileFilter(node, params);
    expect(sql).not.toContain(value);
    expect(params).toContain(value);
    expect(sqlRows(db, node)).toEqual([hostile.indexOf(value) + 1]);
    // Every other operator with the same value.
    for (const f of [{ $ne: value }, { $gt: value }, { $lte: value }, { $in: [value, 'zz'] }, { $nin: [value] }]) {
      const n = parse({ a: f });
      expect(sqlRows(db, n)).toEqual(memoryRows(metas, n));
    }
    const table = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'heads'`).get();
    expect(table).toEqual({ name: 'heads' });
    expect((db.prepare('SELECT count(*) AS n FROM heads').get() as { n: number }).n).toBe(metas.length);
  });

  it('keeps a hostile field name out of the SQL text (it is part of a bound JSON path)', () => {
    // parseFilter would refuse such a field; the compiler must still never splice it.
    const field = 'a"); DROP TABLE heads; --';
    const params: unknown[] = [];
    const sql = compileFilter({ kind: 'compare', field, op: '$gt', value: 1 }, params);
    expect(sql).not.toContain('DROP');
    expect(sql).toMatch(SQL_TOKENS);
    // SQLite may refuse the malformed JSON path ("bad JSON path"); what matters is that it runs nothing else.
    try {
      db.prepare(`SELECT rowid FROM heads WHERE ${sql}`).all(...params);
    } catch (err) {
      expect(String(err)).toMatch(/JSON path/);
    }
    expect(db.prepare(`SELECT name FROM sqlite_master WHERE name = 'heads'`).get()).toEqual({ name: 'heads' });
    expect((db.prepare('SELECT count(*) AS n FROM heads').get() as { n: number }).n).toBe(metas.length);
  });
});

// ---------------------------------------------------------------------------------------------
// Regressions for divergences between compileFilter and matches that this file once found.

describe('regressions', () => {
  let db: Database.Database;
  const metas: Meta[] = [{ a: 'x' }, { a: 'y' }, {}];
  beforeAll(() => {
    db = openDb();
    insertAll(db, metas);
  });
  afterAll(() => db.close());

  // An empty object inside $and / $or once compiled to "()" (a raw SQLite syntax error).
  it.each([{ $and: [{}] }, { $or: [{}] }, { $or: [{}, { a: 'x' }] }, { a: 'x', $and: [{}] }])(
    'an empty sub-filter %j selects what matches() selects',
    (input) => {
      const node = parse(input);
      expect(sqlRows(db, node)).toEqual(memoryRows(metas, node));
    },
  );

  // Lone surrogates have no UTF-8 form, so stores disagreed on their order; they are refused.
  it.each([{ a: { $gt: '\ud800' } }, { a: '\udc00x' }, { a: { $in: ['ok', '\ud801'] } }])('a lone surrogate in %j is a ValidationError', (input) => {
    expect(() => parse(input)).toThrow(ValidationError);
  });
});

// ---------------------------------------------------------------------------------------------
// Documents: the same evaluator over dotted paths (`byPath`) with `Date` values, and the same
// SQLite compiler over a `doc` column (`DOCUMENT_FIELDS`, literal paths), side by side.

const DOC_FIELDS = new Set(['n', 'at', 'flag', 'v', '_system.updatedAt', 'none']);

function openDocDb(docs: readonly Doc[]): Database.Database {
  const db = new Database(':memory:');
  db.exec('CREATE TABLE docs (doc TEXT NOT NULL)');
  const insert = db.prepare('INSERT INTO docs (rowid, doc) VALUES (?, ?)');
  db.transaction(() => docs.forEach((doc, i) => insert.run(i + 1, toDocumentJson(doc))))();
  return db;
}

function docSqlRows(db: Database.Database, node: DocFilter | null): number[] {
  const params: unknown[] = [];
  const where = node === null ? '1' : compileFilter(node, params, DOCUMENT_FIELDS);
  return (db.prepare(`SELECT rowid FROM docs WHERE ${where} ORDER BY rowid`).all(...params) as { rowid: number }[]).map((r) => r.rowid);
}

function docMemoryRows(docs: readonly Doc[], node: DocFilter | null): number[] {
  return docs.flatMap((doc, i) => (matches(node, byPath(doc)) ? [i + 1] : []));
}

const ISO = '2024-01-01T00:00:00.000Z';
const DATES = [
  new Date(0),
  new Date(ISO),
  new Date(Date.parse(ISO) + 1),
  new Date('1999-06-01T00:00:00.000Z'),
  new Date('0000-01-01T00:00:00.000Z'),
  new Date('9999-12-31T23:59:59.999Z'),
] as const;
/** Strings that spell a date, or a date's stored JSON: they must never equal or order with a date. */
const DATE_LIKE_STRINGS = [ISO, JSON.stringify({ $date: ISO }), '{"$date":"1970-01-01T00:00:00.000Z"}'] as const;

describe('matches and compileFilter over documents: hand-checked semantics', () => {
  const rows: ReadonlyArray<[string, Doc]> = [
    ['epoch', { at: new Date(0) }],
    ['newYear', { at: new Date(ISO) }],
    ['newYear+1ms', { at: new Date(Date.parse(ISO) + 1) }],
    ['isoString', { at: ISO }],
    ['jsonString', { at: JSON.stringify({ $date: ISO }) }],
    ['number', { at: Date.parse(ISO) }],
    ['null', { at: null }],
    ['missing', {}],
    ['nested', { _system: { updatedAt: new Date(ISO) } }],
    ['emptySystem', { _system: {} }],
  ];
  const docs = rows.map(([, doc]) => doc);
  let db: Database.Database;
  beforeAll(() => {
    db = openDocDb(docs);
  });
  afterAll(() => db.close());
  const all = rows.map(([n]) => n);

  const cases: ReadonlyArray<[unknown, string[]]> = [
    // A date equals the same instant (another Date object), never its ISO string, JSON or epoch number.
    [{ at: new Date(ISO) }, ['newYear']],
    [{ at: ISO }, ['isoString']],
    [{ at: JSON.stringify({ $date: ISO }) }, ['jsonString']],
    [{ at: Date.parse(ISO) }, ['number']],
    [{ at: { $ne: new Date(ISO) } }, all.filter((n) => n !== 'newYear')],
    // Ranges over dates match dates only, to the millisecond.
    [{ at: { $gt: new Date(0) } }, ['newYear', 'newYear+1ms']],
    [{ at: { $gte: new Date(0) } }, ['epoch', 'newYear', 'newYear+1ms']],
    [{ at: { $lt: new Date(Date.parse(ISO) + 1) } }, ['epoch', 'newYear']],
    [{ at: { $lte: new Date('9999-12-31T23:59:59.999Z') } }, ['epoch', 'newYear', 'newYear+1ms']],
    [{ at: { $gt: '' } }, ['isoString', 'jsonString']],
    [{ at: { $gt: 0 } }, ['number']],
    [{ at: { $in: [new Date(0), ISO, null] } }, ['epoch', 'isoString', 'null', 'missing', 'nested', 'emptySystem']],
    [{ at: { $nin: [new Date(0), new Date(ISO)] } }, all.filter((n) => n !== 'epoch' && n !== 'newYear')],
    [{ at: { $exists: true } }, ['epoch', 'newYear', 'newYear+1ms', 'isoString', 'jsonString', 'number', 'null']],
    // Dotted paths read nested documents; a missing parent is a missing field.
    [{ '_system.updatedAt': new Date(ISO) }, ['nested']],
    [{ '_system.updatedAt': null }, all.filter((n) => n !== 'nested')],
    [{ '_system.updatedAt': { $exists: true } }, ['nested']],
    [{ '_system.updatedAt': { $lte: new Date(ISO) } }, ['nested']],
  ];

  // Named by their stored JSON, so a Date reads `{"$date":…}` and an ISO string stays a string.
  it.each(cases.map(([input, expected]) => [toDocumentJson(input as Doc), input, expected] as const))('%s', (_name, input, expected) => {
    const node = parseDocumentFilter(input, DOC_FIELDS);
    const want = rows.flatMap(([name], i) => (expected.includes(name) ? [i + 1] : []));
    expect(docMemoryRows(docs, node)).toEqual(want);
    expect(docSqlRows(db, node)).toEqual(want);
  });

  it('orders dates by instant and only against dates', () => {
    expect(compareSameType(new Date(1), new Date(0))).toBe(1);
    expect(compareSameType(new Date(0), new Date(0))).toBe(0);
    expect(compareSameType(new Date(0), new Date(1))).toBe(-1);
    expect(compareSameType(ISO, new Date(ISO))).toBeUndefined();
    expect(compareSameType(new Date(ISO), ISO)).toBeUndefined();
    expect(compareSameType(0, new Date(0))).toBeUndefined();
    expect(compareSameType(undefined, 1)).toBeUndefined();
  });

  it('reads dotted paths through plain objects only', () => {
    const doc = { a: { b: 1, d: new Date(0), l: [{ x: 1 }] }, s: 'str' };
    expect(valueAtPath(doc, 'a.b')).toBe(1);
    expect(valueAtPath(doc, 'a.d')).toEqual(new Date(0));
    expect(valueAtPath(doc, 'a.d.x')).toBeUndefined();
    expect(valueAtPath(doc, 'a.l.x')).toBeUndefined();
    expect(valueAtPath(doc, 'a.l.0')).toBeUndefined();
    expect(valueAtPath(doc, 's.length')).toBeUndefined();
    expect(valueAtPath(doc, 'a.toString')).toBeUndefined();
    expect(valueAtPath(doc, 'x.y')).toBeUndefined();
    // A flat record is read by whole keys: "a.b" is one key there, never a path.
    expect(matches({ kind: 'compare', field: 'a.b', op: '$eq', value: 1 }, { 'a.b': 1 })).toBe(true);
    expect(matches({ kind: 'compare', field: 'a.b', op: '$eq', value: 1 }, doc)).toBe(false);
    expect(matches({ kind: 'compare', field: 'a.b', op: '$eq', value: 1 }, byPath(doc))).toBe(true);
  });
});

/** The SQL text of a document filter: the compiler's tokens, and literal paths of checked identifiers. */
const DOC_SQL_TOKENS =
  /^(?:\s+|\(|\)|,|\?|[<>]=?|=|0|1|AND|OR|NOT|IS|NULL|IN|IFNULL|json_type|json_extract|doc|'(?:text|integer|real|true|false|null)'|'\$(?:\."[A-Za-z_][A-Za-z0-9_]*")+(?:\."\$date")?')*$/;

describe.each([1, 2, 3, 20240601])('differential: SQLite compileFilter over documents vs matches (seed %i)', (seed) => {
  const ROWS = 150;
  const FILTERS = 1500;
  const POOL: readonly DocScalar[] = [
    ...DATES, ...DATES, ...DATE_LIKE_STRINGS, '', 'a', 'b', 'B', 'é', '😀', '10', 'a\u0000b', "O'Brien",
    0, 1, -1, 2.5, 1e21, Date.parse(ISO), true, false, null,
  ];
  let db: Database.Database;
  let docs: Doc[];

  beforeAll(() => {
    const g = new Gen(seed);
    docs = Array.from({ length: ROWS }, () => {
      const doc: Doc = {};
      for (const field of ['n', 'at', 'flag', 'v']) if (g.chance(0.75)) doc[field] = g.pick(POOL);
      const shape = g.int(4);
      if (shape === 1) doc._system = {};
      else if (shape >= 2) doc._system = { updatedAt: g.pick(POOL) };
      return doc;
    });
    db = openDocDb(docs);
  });
  afterAll(() => db.close());

  const condition = (g: Gen, depth: number): Record<string, unknown> => {
    if (depth < 2 && g.chance(0.25)) return { [g.pick(['$and', '$or'])]: Array.from({ length: 1 + g.int(3) }, () => condition(g, depth + 1)) };
    const field = g.pick([...DOC_FIELDS]);
    const value = g.pick(POOL);
    switch (g.int(10)) {
      case 0:
        return { [field]: value };
      case 1:
        return { [field]: { $exists: g.chance(0.5) } };
      case 2:
      case 3:
        return { [field]: { [g.chance(0.5) ? '$in' : '$nin']: Array.from({ length: g.int(4) }, () => g.pick(POOL)) } };
      case 4:
      case 5:
        return { [field]: { [g.pick(['$eq', '$ne'])]: value } };
      default:
        return { [field]: { [g.pick(RANGE_OPS)]: value ?? g.pick(DATES) } };
    }
  };

  it('selects exactly the documents matches() accepts, dates included, and writes only checked paths into the SQL', () => {
    const g = new Gen(seed * 31 + 5);
    const kinds = new Set<string>();
    let selective = 0;
    let dated = 0;
    const mismatches: string[] = [];
    for (let i = 0; i < FILTERS; i++) {
      const input = condition(g, 0);
      const node = parseDocumentFilter(input, DOC_FIELDS);
      kindsOf(node as FilterNode | null, kinds);
      const want = docMemoryRows(docs, node);
      const params: unknown[] = [];
      if (node !== null) expect(compileFilter(node, params, DOCUMENT_FIELDS)).toMatch(DOC_SQL_TOKENS);
      if (params.some((p) => typeof p === 'string' && p.startsWith('{"$date":'))) dated++;
      const got = docSqlRows(db, node);
      if (want.length > 0 && want.length < docs.length) selective++;
      if (JSON.stringify(want) !== JSON.stringify(got)) {
        mismatches.push(`filter ${toDocumentJson(input as Doc)}: matches() ${JSON.stringify(want)}; SQL ${JSON.stringify(got)}`);
        if (mismatches.length >= 5) break;
      }
    }
    expect(mismatches).toEqual([]);
    expect([...kinds].sort()).toEqual(
      ['$eq', '$exists:false', '$exists:true', '$gt', '$gte', '$in', '$lt', '$lte', '$ne', '$nin', 'and', 'or'].sort(),
    );
    expect(selective).toBeGreaterThan(FILTERS / 2);
    expect(dated).toBeGreaterThan(FILTERS / 10);
  });
});

describe('compileFilter: one compiler, two layouts', () => {
  const node: FilterNode = { kind: 'compare', field: 'a', op: '$gt', value: 1 };

  it('binds meta paths and writes checked document paths literally (what expression indexes need)', () => {
    const meta: unknown[] = [];
    expect(compileFilter(node, meta)).toBe(`(json_type(meta, ?) IN ('integer', 'real') AND json_extract(meta, ?) > ?)`);
    expect(meta).toEqual(['$."a"', '$."a"', 1]);
    const aliased: unknown[] = [];
    expect(compileFilter(node, aliased, metaFields('v.meta'))).toContain('json_extract(v.meta, ?)');
    const doc: unknown[] = [];
    expect(compileFilter({ kind: 'compare', field: '_system.updatedAt', op: '$lt', value: new Date(0) }, doc, DOCUMENT_FIELDS)).toBe(
      `(json_type(doc, '$."_system"."updatedAt"."$date"') = 'text' AND json_extract(doc, '$."_system"."updatedAt"') < ?)`,
    );
    expect(doc).toEqual(['{"$date":"1970-01-01T00:00:00.000Z"}']);
  });

  it('refuses a document field that is not identifiers joined by dots, and a range over null', () => {
    for (const field of ["a') OR 1=1 --", 'a..b', '$where', 'a.0', '__proto__']) {
      expect(() => compileFilter({ kind: 'exists', field, exists: true }, [], DOCUMENT_FIELDS)).toThrow(ValidationError);
    }
    expect(() => compileFilter({ kind: 'compare', field: 'a', op: '$gt', value: null }, [], DOCUMENT_FIELDS)).toThrow(/cannot compare with null/);
    // Whatever a layout's path function returns, a quote never reaches the SQL text.
    const unchecked = { column: 'doc', path: (field: string) => `$."${field}"`, literalPaths: true };
    expect(() => compileFilter({ kind: 'exists', field: "a') OR ('1", exists: true }, [], unchecked)).toThrow(ValidationError);
    expect(compileFilter({ kind: 'exists', field: 'a', exists: false }, [], unchecked)).toBe(`(json_type(doc, '$."a"') IS NULL)`);
    const field = `a'${'x'.repeat(100)}`;
    const quoted = validationErrorOf(() => compileFilter({ kind: 'exists', field, exists: true }, [], unchecked));
    expect(quoted.path).toBe('field');
    expect(quoted.message).toBe(`Invalid field path ${JSON.stringify(field).slice(0, 80)}`);
  });

  it('folds empty and/or into constants in both layouts (hand-built nodes; the parser makes none)', () => {
    for (const fields of [metaFields(), DOCUMENT_FIELDS]) {
      expect(compileFilter({ kind: 'and', items: [] }, [], fields)).toBe('1');
      expect(compileFilter({ kind: 'or', items: [] }, [], fields)).toBe('0');
    }
  });

  it("names document fields by the expression indexes use, and reads it back from SQLite's index SQL", () => {
    expect(extract('_system.updatedAt')).toBe(`json_extract(doc, '$."_system"."updatedAt"')`);
    expect(documentPath('a')).toBe('$."a"');
    expect(fieldOfExpression(extract('_system.updatedAt'))).toBe('_system.updatedAt');
    expect(fieldOfExpression(`  json_extract( doc ,  '$."k"' )  `)).toBe('k');
    const others = [
      `json_extract(meta, '$."k"')`,
      `json_extract(doc, '$.k')`,
      `json_extract(doc, '$."1k"')`,
      `lower(json_extract(doc, '$."k"'))`,
      `'x' || json_extract(doc, '$."k"')`,
      `json_extract(doc, '$."k"') || 'x'`,
      'k',
    ];
    for (const other of others) {
      expect(fieldOfExpression(other)).toBeNull();
    }
    const long = `a${'-'.repeat(200)}`;
    const err = validationErrorOf(() => documentPath(long));
    expect(err.path).toBe('field');
    expect(err.message).toBe(`Invalid field path ${JSON.stringify(long).slice(0, 80)}: expected identifiers joined by "."`);
  });
});
