import { DATE_KEY, fromDocumentJson, type Doc, type DocValue, type SortSpec } from '../../contracts/document-store.js';
import { ValidationError } from '../../errors.js';
import type { FilterTree, FilterValue } from '../../foundation/filter-tree.js';
import { isValidName } from '../../foundation/names.js';

/**
 * Compiles a validated filter to a PostgreSQL predicate over a `jsonb` column, with the semantics
 * of `matches` in `core/foundation/filter.ts` (type-strict equality, same-type ranges, MongoDB
 * null rules, dates). One compiler serves both stores; `JsonbFields` says where a field lives:
 *
 * - the index store's `meta` column (`metaFields`): flat keys (`customer.id` is one key), each key
 *   a bound parameter (`meta -> $1::text`), so nothing from the caller reaches the SQL text.
 *   Equality is containment, `meta @> '{"k": v}'`, which the GIN index on `heads.meta`
 *   (jsonb_path_ops) answers;
 * - a document store's `doc` column (`documentFields`): dotted paths as `(doc -> 'a' -> 'b')`,
 *   spliced into the text, because an index expression cannot take parameters and the planner
 *   matches only the same expression. Fields are therefore checked here against the identifier
 *   grammar (`a.b_c`), whatever the caller validated before. Equality is `=` on that expression,
 *   which the expression indexes answer.
 *
 * Values are always bound parameters. Positive conditions stay plain terms so the planner can use
 * indexes; a missing field makes such a term SQL NULL, which `WHERE` and the monotone `AND`/`OR`
 * treat as false. Only under a negation (`$ne`, `$nin`) is a term wrapped in `COALESCE(.., FALSE)`,
 * so that `NOT` never meets NULL.
 *
 * **Order.** `jsonb` orders numbers numerically (exact decimals; the shortest decimal of a double
 * orders as the double), booleans false < true, and strings by the database's collation. Every
 * other store orders strings by UTF-8 bytes, which `jsonb` does only under a byte-order collation
 * (`C`, `POSIX`, `C.UTF-8`, see `jsonbOrdersBytes`): then string and date ranges and sorts compare
 * `jsonb` values, which expression indexes answer; otherwise (`byteOrder: false`, and always for
 * `meta`, which has no such index) they compare the text under `COLLATE "C"`, right under any
 * collation.
 *
 * **Text.** `jsonb` cannot hold U+0000. Indexed values holding it are refused when written, so
 * no stored `meta` string has one. Documents may: every string of a document is stored with U+0001
 * as an escape, U+0000 as U+0001 U+0001 and U+0001 as U+0001 U+0002, nothing else changed. The
 * escape is reversible, keeps equality, and keeps UTF-8 byte order (each character's encoding is a
 * prefix-free code in the order of the characters), so filters compare escaped operands with
 * escaped values. Dates are the core's date tag, `{"$date": "<ISO-8601>"}`.
 */
export interface JsonbFields {
  /** The field's `jsonb` value, SQL NULL when the field is missing. */
  value(field: string, params: unknown[]): string;
  /** Equality with one of `values` (the stored `jsonb` text of non-null scalars), as the field's index answers it. */
  equalsAny(field: string, values: readonly string[], params: unknown[]): string;
  /** A string as the column stores it. */
  text(value: string): string;
  /** `jsonb` orders strings by UTF-8 bytes here (see above). */
  readonly byteOrder: boolean;
}

/** The index store's indexed values: flat keys of a `meta` column (the compiler's own column reference), keys bound. */
export function metaFields(column = 'meta'): JsonbFields {
  return {
    value: (field, params) => `(${column} -> ${bind(params, field)}::text)`,
    equalsAny: (field, values, params) => anyOf(values.map((v) => `(${column} @> ${bind(params, `{${JSON.stringify(field)}:${v}}`)}::jsonb)`)),
    text: (value) => value,
    byteOrder: false,
  };
}

/** Document collections: dotted paths into the `doc` column, written literally for the expression indexes. */
export function documentFields(byteOrder: boolean): JsonbFields {
  return {
    value: (field) => fieldSql(field),
    equalsAny: (field, values, params) =>
      values.length === 1 ? `(${fieldSql(field)} = ${bind(params, values[0])}::jsonb)` : `(${fieldSql(field)} = ANY(${bind(params, values)}::jsonb[]))`,
    text: escapeText,
    byteOrder,
  };
}

const RANGE_SQL = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' } as const;

/** The predicate of `node` over `fields` (default: the index store's `meta`); pushes its parameters onto `params`. */
export function compileFilter(node: FilterTree<FilterValue>, params: unknown[], fields: JsonbFields = metaFields()): string {
  /** A scalar operand as stored `jsonb` text: strings as the column stores them, dates tagged. */
  const json = (value: Exclude<FilterValue, null>): string =>
    value instanceof Date ? JSON.stringify({ [DATE_KEY]: value.toISOString() }) : JSON.stringify(typeof value === 'string' ? fields.text(value) : value);
  /** `{ f: v }` for any of `values`; `{ f: null }` matches a missing field or a JSON null. */
  const equals = (field: string, values: readonly FilterValue[]): string => {
    const terms: string[] = [];
    if (values.includes(null)) {
      const x = fields.value(field, params);
      terms.push(`(${x} IS NULL OR ${x} = 'null'::jsonb)`);
    }
    // No stored string holds U+0000 (see above): an operand that still does after `text` equals nothing.
    const stored = values.filter((v): v is Exclude<FilterValue, null> => v !== null && !(typeof v === 'string' && fields.text(v).includes(NUL))).map(json);
    if (stored.length > 0) terms.push(fields.equalsAny(field, stored, params));
    return terms.length === 0 ? 'FALSE' : anyOf(terms);
  };
  /** Ranges match values of the operand's type only. */
  const range = (field: string, op: string, value: Exclude<FilterValue, null>): string => {
    const x = fields.value(field, params);
    // Where the type's values form one interval of jsonb order (Null < String < Number < Boolean <
    // Array < Object), the term is a pair of bounds, which an index range scan answers.
    const bounded = (sqlOp: string, stored: string, bound: string) => `(${x} ${sqlOp} ${bind(params, stored)}::jsonb AND ${bound})`;
    if (value instanceof Date) {
      // Dates, one-pair objects keyed "$date" with an ISO string, lie between these two objects (ISO text holds no "~").
      if (fields.byteOrder) return bounded(op, json(value), `${x} ${op.startsWith('>') ? '<' : '>'} '{"${DATE_KEY}": "${op.startsWith('>') ? '~' : ''}"}'::jsonb`);
      return `(jsonb_typeof(${x} -> '${DATE_KEY}') = 'string' AND (${x} ->> '${DATE_KEY}') COLLATE "C" ${op} ${bind(params, value.toISOString())}::text)`;
    }
    if (typeof value === 'string') {
      let [sqlOp, text] = [op, fields.text(value)];
      // No stored string holds U+0000, so against `p + "\0" + r` a string t compares as against
      // `p`: t > s exactly when t > p, and t < s when t <= p.
      const nul = text.indexOf(NUL);
      if (nul >= 0) [sqlOp, text] = [op.startsWith('>') ? '>' : '<=', text.slice(0, nul)];
      if (!fields.byteOrder) return `(jsonb_typeof(${x}) = 'string' AND (${x} #>> '{}') COLLATE "C" ${sqlOp} ${bind(params, text)}::text)`;
      // Strings sit just above null (an empty top-level array sorts below it); no string is the last one.
      return bounded(sqlOp, JSON.stringify(text), sqlOp.startsWith('<') ? `${x} > 'null'::jsonb` : `jsonb_typeof(${x}) = 'string'`);
    }
    // Numbers sit just below false; no number is the first one. Numbers compare by value under any collation.
    if (typeof value === 'number') return bounded(op, json(value), op.startsWith('>') ? `${x} < 'false'::jsonb` : `jsonb_typeof(${x}) = 'number'`);
    return bounded(op, json(value), `${x} BETWEEN 'false'::jsonb AND 'true'::jsonb`);
  };
  const compile = (n: FilterTree<FilterValue>): string => {
    switch (n.kind) {
      case 'and':
      case 'or':
        // An empty conjunction is true and an empty disjunction false, as in `matches`.
        if (n.items.length === 0) return n.kind === 'and' ? 'TRUE' : 'FALSE';
        return `(${n.items.map(compile).join(n.kind === 'and' ? ' AND ' : ' OR ')})`;
      case 'exists':
        return `(${fields.value(n.field, params)} IS ${n.exists ? 'NOT ' : ''}NULL)`;
      case 'in': {
        const hit = equals(n.field, n.values);
        return n.negate ? `(NOT COALESCE(${hit}, FALSE))` : hit;
      }
      case 'compare':
        if (n.op === '$eq') return equals(n.field, [n.value]);
        if (n.op === '$ne') return `(NOT COALESCE(${equals(n.field, [n.value])}, FALSE))`;
        if (n.value === null) throw new ValidationError(`${n.op} cannot compare with null`);
        return range(n.field, RANGE_SQL[n.op], n.value);
    }
  };
  return compile(node);
}

/** Pushes a parameter and returns its placeholder. */
export function bind(params: unknown[], value: unknown): string {
  params.push(value);
  return `$${params.length}`;
}

function anyOf(terms: readonly string[]): string {
  return terms.length === 1 ? terms[0]! : `(${terms.join(' OR ')})`;
}

// ---- documents ------------------------------------------------------------------------------

const NUL = '\u0000';
const ESC = '\u0001';

/** `(doc -> 'a' -> 'b')` for `a.b`: the expression that indexes and queries share. Refuses anything but identifiers joined by dots. */
export function fieldSql(field: string): string {
  if (!isValidName('property', field)) throw new ValidationError(`Invalid field path ${JSON.stringify(field).slice(0, 80)}: expected identifiers joined by "."`, { path: 'field' });
  return `(doc${field.split('.').map((s) => ` -> '${s}'`).join('')})`;
}

/**
 * The field of an index column as `pg_get_indexdef` prints it, `((doc -> 'a'::text) -> 'b'::text)`,
 * or `null` when the column is anything else.
 */
export function fieldOfIndexColumn(sql: string): string | null {
  const m = /^doc((?:->'[A-Za-z_][A-Za-z0-9_]*'::text)+)$/.exec(sql.replace(/[()\s]/g, ''));
  return m ? [...m[1]!.matchAll(/'([^']+)'/g)].map((s) => s[1]!).join('.') : null;
}

/** The key of an index column or a sort: missing fields first ascending, last descending, as MongoDB and SQLite order them. */
export function orderSql(field: string, direction: 1 | -1): string {
  return `${fieldSql(field)} ${direction === -1 ? 'DESC NULLS LAST' : 'ASC NULLS FIRST'}`;
}

/** An `ORDER BY` list for `sort`, then insertion order; `byteOrder` as in `JsonbFields`. */
export function sortSql(sort: SortSpec | undefined, byteOrder: boolean): string {
  const keys = (sort ?? []).map(([field, direction]) => {
    if (byteOrder) return orderSql(field, direction);
    // Strings and dates by their bytes first; every other type (whose first key is NULL) as jsonb orders it.
    const nulls = direction === -1 ? 'DESC NULLS LAST' : 'ASC NULLS FIRST';
    const x = fieldSql(field);
    const text = `CASE WHEN jsonb_typeof(${x}) = 'string' THEN ${x} #>> '{}' WHEN jsonb_typeof(${x} -> '${DATE_KEY}') = 'string' THEN ${x} ->> '${DATE_KEY}' END`;
    return `(${text}) COLLATE "C" ${nulls}, ${x} ${nulls}`;
  });
  return [...keys, 'id ASC'].join(', ');
}

/** A document's JSON for a `jsonb` parameter: dates tagged, strings escaped. */
export function toStoredJson(value: DocValue): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
    // JSON.stringify calls Date#toJSON before the replacer; the holder still has the Date.
    const raw = this[key];
    if (raw instanceof Date) return { [DATE_KEY]: raw.toISOString() };
    return typeof v === 'string' ? escapeText(v) : v;
  });
}

/** The inverse of `toStoredJson`, from the `jsonb` text PostgreSQL returns. */
export function fromStoredJson(text: string): Doc {
  return fromDocumentJson(text, unescapeText);
}

export function escapeText(text: string): string {
  if (!text.includes(NUL) && !text.includes(ESC)) return text;
  let out = '';
  for (const c of text) out += c === NUL ? `${ESC}${ESC}` : c === ESC ? `${ESC}\u0002` : c;
  return out;
}

export function unescapeText(text: string): string {
  if (!text.includes(ESC)) return text;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c !== ESC) out += c;
    else out += text[++i] === ESC ? NUL : ESC;
  }
  return out;
}
