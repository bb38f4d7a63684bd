import { afterAll, beforeAll, expect, it } from 'vitest';
import { Client } from 'pg';
import { inlineParams, literal } from '../../core/adapters/postgres/postgres-inline.js';
import { Gen } from '../support/random.js';
import { describePostgres, POSTGRES_URI, postgresAvailability } from '../support/postgres.js';

/**
 * The PostgreSQL driver sends a transaction's writes as one simple query, its values written as
 * literals (`postgres-inline.ts`). Here every kind of value it binds goes to the server both
 * ways, as a literal and as a bound parameter, and must come back the same; hostile text must
 * stay a value.
 */

const availability = await postgresAvailability();

const HOSTILE = [
  '',
  "'",
  "''",
  "'); DROP TABLE x; --",
  '\\',
  "\\'",
  "E'\\x00'",
  '$1',
  '$$',
  '$tag$ x $tag$',
  '"',
  '";--',
  'a\nb\r\tc',
  'é😀\uffff',
  '{a,b}',
  '{"x": [1, "y\\"z"]}',
  'NULL',
  ' spaces ',
  '\\x41',
];

function randomText(g: Gen): string {
  const alphabet = ["'", '"', '\\', '$', '1', 'a', ' ', '{', '}', ',', ';', '-', '\n', 'é', '😀', 'E', 'x', '(', ')'];
  return Array.from({ length: g.int(12) }, () => g.pick(alphabet)).join('');
}

describePostgres('PostgreSQL literals for batched writes', availability, () => {
  let client: Client;
  beforeAll(async () => {
    client = new Client({ connectionString: POSTGRES_URI });
    await client.connect();
  });
  afterAll(async () => {
    await client.end();
  });

  /** The value as the server sees it, bound and written as a literal. */
  async function both(value: unknown, type: string): Promise<[unknown, unknown]> {
    const bound = await client.query(`SELECT $1::${type} AS v`, [value]);
    const inlined = await client.query(inlineParams(`SELECT $1::${type} AS v`, [value]));
    return [bound.rows[0].v, inlined.rows[0].v];
  }

  it('text, hostile and random, comes back as bound', async () => {
    const g = new Gen(7);
    for (const value of [...HOSTILE, ...Array.from({ length: 300 }, () => randomText(g))]) {
      const [bound, inlined] = await both(value, 'text');
      expect(inlined).toBe(bound);
      expect(inlined).toBe(value);
    }
  });

  it('jsonb text of hostile documents comes back as bound', async () => {
    for (const value of HOSTILE) {
      const doc = JSON.stringify({ [value]: value, list: [value, 1.5, null, true] });
      const [bound, inlined] = await both(doc, 'jsonb');
      expect(inlined).toEqual(bound);
      expect(inlined).toEqual(JSON.parse(doc));
    }
  });

  it('numbers, booleans, null, bytes and arrays come back as bound', async () => {
    for (const n of [0, -0, 1, -1, 1.5, -2.25, 1e21, -1e-7, 5e-324, 2 ** 53, Number.MAX_VALUE, Infinity, -Infinity]) {
      const [bound, inlined] = await both(n, 'float8');
      expect(inlined).toBe(bound);
    }
    for (const n of [0, 1, -1, 2 ** 53 - 1, 123456789]) {
      const [bound, inlined] = await both(n, 'bigint');
      expect(inlined).toBe(bound);
    }
    for (const b of [true, false]) expect(new Set(await both(b, 'boolean')).size).toBe(1);
    expect(await both(null, 'text')).toEqual([null, null]);
    const bytes = Buffer.from([0, 1, 39, 92, 255, 34, 36]);
    const [boundBytes, inlinedBytes] = await both(bytes, 'bytea');
    expect(Buffer.compare(inlinedBytes as Buffer, boundBytes as Buffer)).toBe(0);
    expect(Buffer.compare(inlinedBytes as Buffer, bytes)).toBe(0);
    const [boundUint8, inlinedUint8] = await both(new Uint8Array(bytes.buffer, 1, 4), 'bytea');
    expect(inlinedUint8).toEqual(boundUint8);
    const strings = [...HOSTILE, null];
    const [boundArray, inlinedArray] = await both(strings, 'text[]');
    expect(inlinedArray).toEqual(boundArray);
    expect(inlinedArray).toEqual(strings);
    const [boundNumbers, inlinedNumbers] = await both([1, 2, -3, 4.5, Infinity], 'float8[]');
    expect(inlinedNumbers).toEqual(boundNumbers);
    expect(await both([], 'bigint[]')).toEqual([[], []]);
  });

  it('leaves the statement\'s own quoted identifiers and literals alone, $ and all', async () => {
    const rendered = inlineParams(`SELECT 'it''s $1' AS "a$1""b", $1::text AS v, $2::int AS w`, ["x'y", 2]);
    expect(rendered).toBe(`SELECT 'it''s $1' AS "a$1""b", 'x''y'::text AS v, '2'::int AS w`);
    const rows = await client.query(rendered);
    expect(rows.rows[0]).toEqual({ 'a$1"b': 'it\'s $1', v: "x'y", w: 2 });
  });

  it('refuses what it cannot write faithfully: U+0000, NaN, objects, a missing value', () => {
    expect(() => literal('a\u0000b')).toThrow(/U\+0000/);
    expect(() => literal(['ok', 'a\u0000'])).toThrow(/U\+0000/);
    expect(() => literal(Number.NaN)).toThrow(/NaN/);
    expect(() => literal({ a: 1 })).toThrow(/object/);
    expect(() => inlineParams('SELECT $2', [1])).toThrow(/\$2/);
  });
});
