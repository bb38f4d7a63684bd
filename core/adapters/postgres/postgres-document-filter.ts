import { DATE_KEY, type Doc, type DocFilter, type DocScalar, type DocValue, type SortSpec } from '../../contracts/document-store.js';
import { ValidationError } from '../../errors.js';
import { isValidName } from '../../foundation/names.js';

/**
 * Documents on PostgreSQL: the `jsonb` text of a document, the SQL expression of a declared
 * field, and the compiler of document filters to SQL predicates with the semantics of
 * `matchesDocument` (`core/domains/documents/document-filter.ts`).
 *
 * **Text.** `jsonb` cannot hold U+0000 in a string, which documents may. Every string value is
 * therefore stored with U+0001 as an escape: U+0000 becomes U+0001 U+0001 and U+0001 becomes
 * U+0001 U+0002; nothing else changes. The escape is reversible, keeps equality, and keeps the
 * UTF-8 byte order every store orders strings by (each character's encoding is a prefix-free
 * code in the order of the characters), so filters compare escaped operands with escaped values.
 * Keys never hold U+0000 (`checkDocument`) and are stored as they are. Dates are the core's date
 * tag, `{"$date": "<ISO-8601>"}` (`toDocumentJson`).
 *
 * **Fields.** A declared field `a.b` is the expression `(doc -> 'a' -> 'b')`, the same text in
 * every index and every query, so the planner matches them. Field names are spliced into SQL as
 * literals (an index expression cannot take parameters); they are therefore checked here against
 * the identifier grammar (`a.b_c`), whatever the caller validated before. Values are always
 * bound parameters.
 *
 * **Order.** `jsonb` orders numbers numerically (exact decimals; the shortest decimal of a double
 * orders as the double), booleans false < true, and strings by the database's collation. Every
 * other store orders strings by UTF-8 bytes, which `jsonb` does only under a byte-order collation
 * (`C`, `POSIX`, `C.UTF-8`): then string and date ranges and sorts compare `jsonb` values, which
 * the expression indexes answer; otherwise (`byteOrder: false`) they compare the text under
 * `COLLATE "C"`, which is right under any collation but leaves those indexes out.
 */
export interface DocumentSqlOptions {
  /** The database's collation orders `jsonb` strings by UTF-8 bytes (see `jsonbOrdersBytes`). */
  readonly byteOrder: boolean;
}

/** The document's JSON for a `jsonb` parameter: dates tagged, strings escaped. */
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
  return JSON.parse(text, (_key, v: unknown) => {
    if (typeof v === 'string') return unescapeText(v);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const keys = Object.keys(v);
      const iso = (v as Record<string, unknown>)[DATE_KEY];
      if (keys.length === 1 && typeof iso === 'string') return new Date(iso);
    }
    return v;
  }) as Doc;
}

const NUL = '\u0000';
const ESC = '\u0001';

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

/** An `ORDER BY` list for `sort`, then insertion order. */
export function sortSql(sort: SortSpec | undefined, options: DocumentSqlOptions): string {
  const keys = (sort ?? []).map(([field, direction]) => {
    if (options.byteOrder) return orderSql(field, direction);
    // Strings and dates by their bytes first; every other type (whose first key is NULL) as jsonb orders it.
    const nulls = direction === -1 ? 'DESC NULLS LAST' : 'ASC NULLS FIRST';
    const x = fieldSql(field);
    const text = `CASE WHEN jsonb_typeof(${x}) = 'string' THEN ${x} #>> '{}' WHEN jsonb_typeof(${x} -> '${DATE_KEY}') = 'string' THEN ${x} ->> '${DATE_KEY}' END`;
    return `(${text}) COLLATE "C" ${nulls}, ${x} ${nulls}`;
  });
  return [...keys, 'id ASC'].join(', ');
}

/**
 * Compiles a validated document filter to a predicate over the `doc` column. Values are pushed on
 * `params` and referenced as `$n`.
 *
 * Positive conditions stay plain terms (`(doc -> 'k') = $1::jsonb`) so the planner can use the
 * expression indexes; a missing field makes such a term SQL NULL, which `WHERE` and the
 * monotone `AND`/`OR` treat as false. Only under a negation (`$ne`, `$nin`) is a term wrapped in
 * `COALESCE(..., FALSE)`, so that `NOT` never meets NULL.
 */
export function compileDocumentFilter(node: DocFilter, params: unknown[], options: DocumentSqlOptions): string {
  switch (node.kind) {
    case 'and':
    case 'or':
      if (node.items.length === 0) return node.kind === 'and' ? 'TRUE' : 'FALSE';
      return `(${node.items.map((n) => compileDocumentFilter(n, params, options)).join(node.kind === 'and' ? ' AND ' : ' OR ')})`;
    case 'exists':
      return `(${fieldSql(node.field)} IS ${node.exists ? 'NOT ' : ''}NULL)`;
    case 'in': {
      const x = fieldSql(node.field);
      const terms: string[] = [];
      if (node.values.some((v) => v === null)) terms.push(isNull(x));
      const values = node.values.filter((v): v is Exclude<DocScalar, null> => v !== null);
      if (values.length > 0) terms.push(`${x} = ANY(${param(params, values.map((v) => toStoredJson(v)))}::jsonb[])`);
      const hit = terms.length === 0 ? 'FALSE' : terms.length === 1 ? terms[0]! : `(${terms.join(' OR ')})`;
      return node.negate ? `(NOT COALESCE(${hit}, FALSE))` : hit;
    }
    case 'compare': {
      const x = fieldSql(node.field);
      if (node.op === '$eq') return equals(x, node.value, params);
      if (node.op === '$ne') return `(NOT COALESCE(${equals(x, node.value, params)}, FALSE))`;
      const op = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' }[node.op];
      const value = node.value;
      if (value === null) throw new ValidationError(`${node.op} cannot compare with null`);
      // Ranges match values of the operand's type only. Where the type's values form one
      // interval of jsonb order (Null < String < Number < Boolean < Array < Object), the term is a
      // pair of bounds, which an index range scan answers and the planner estimates well.
      const operand = () => `${x} ${op} ${param(params, toStoredJson(value))}::jsonb`;
      if (value instanceof Date) {
        // Objects compare by their pairs (key, then value), so the dates, one-pair objects keyed
        // "$date" with an ISO string, lie between these two (ISO text holds no "~").
        if (options.byteOrder) return `(${operand()} AND ${x} ${op.startsWith('>') ? '<' : '>'} '{"${DATE_KEY}": "${op.startsWith('>') ? '~' : ''}"}'::jsonb)`;
        return `(jsonb_typeof(${x} -> '${DATE_KEY}') = 'string' AND (${x} ->> '${DATE_KEY}') COLLATE "C" ${op} ${param(params, value.toISOString())}::text)`;
      }
      if (typeof value === 'string') {
        if (!options.byteOrder) return `(jsonb_typeof(${x}) = 'string' AND (${x} #>> '{}') COLLATE "C" ${op} ${param(params, escapeText(value))}::text)`;
        // Strings sit just above null; no string is the last one.
        return op.startsWith('<') ? `(${operand()} AND ${x} > 'null'::jsonb)` : `(${operand()} AND jsonb_typeof(${x}) = 'string')`;
      }
      if (typeof value === 'number') {
        // Numbers sit just below false; no number is the first one. jsonb orders numbers by value under any collation.
        return op.startsWith('>') ? `(${operand()} AND ${x} < 'false'::jsonb)` : `(${operand()} AND jsonb_typeof(${x}) = 'number')`;
      }
      return `(${operand()} AND ${x} BETWEEN 'false'::jsonb AND 'true'::jsonb)`;
    }
  }
}

/** `{ f: null }` matches a missing field or a JSON null. */
function isNull(x: string): string {
  return `(${x} IS NULL OR ${x} = 'null'::jsonb)`;
}

/** Type-strict equality: `jsonb` never equals a number to a string, and a date is its tagged object. */
function equals(x: string, value: DocScalar, params: unknown[]): string {
  if (value === null) return isNull(x);
  return `(${x} = ${param(params, toStoredJson(value))}::jsonb)`;
}

function param(params: unknown[], value: unknown): string {
  params.push(value);
  return `$${params.length}`;
}
