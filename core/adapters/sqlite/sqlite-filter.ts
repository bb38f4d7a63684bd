import { DATE_KEY, toDocumentJson } from '../../contracts/document-store.js';
import { ValidationError } from '../../errors.js';
import type { FilterTree, FilterValue } from '../../foundation/filter-tree.js';
import { isValidName } from '../../foundation/names.js';

/**
 * Compiles a validated filter to a SQLite predicate over a JSON column, with the semantics of
 * `matches` in `core/foundation/filter.ts` (type-strict equality, same-type ranges, MongoDB null
 * rules, dates). One compiler serves both stores; `JsonFields` says where a field lives:
 *
 * - the index store's `meta` column (`metaFields`): flat keys (`customer.id` is one key), each
 *   JSON path a bound parameter, so nothing from the caller is spliced into the SQL text;
 * - a document store's `doc` column (`DOCUMENT_FIELDS`): dotted paths into the document, spliced
 *   into the text, because SQLite uses an expression index only when the query holds the same
 *   expression (`json_extract(doc, '$."key"')`) literally. Fields are therefore checked here
 *   against the identifier grammar (`a.b_c`), whatever the caller validated before, so nothing
 *   else can reach the SQL text.
 *
 * Values are always bound parameters. Positive conditions stay plain `AND`ed terms
 * (`json_extract(...) = ? AND json_type(...) = 'text'`) so the planner can use indexes; only under
 * a negation (`$ne`, `$nin`) is a condition wrapped in `IFNULL(..., 0)`, so SQL's NULL never
 * turns a missing field into "unknown" there (elsewhere NULL and false select the same rows, as
 * `and`/`or` are never negated).
 *
 * Dates are stored as `{"$date":"<ISO>"}` (`toDocumentJson`, which also encodes a filter's dates
 * here); `json_extract` gives that text, which orders like the dates (fixed-width ISO), and
 * `json_type(doc, '$."f"."$date"') = 'text'` tells a date from any other value (documents hold no
 * `$` keys of their own).
 */

/** Where a filter's fields live: a JSON column, and the JSON path of each field in it. */
export interface JsonFields {
  /** The column (or `alias.column`) holding the JSON; code's own constant, never caller input. */
  readonly column: string;
  /** The JSON path of a field, e.g. `$."customer.id"` or `$."a"."b"`. */
  path(field: string): string;
  /** Paths written into the SQL text (checked identifiers only) rather than bound. */
  readonly literalPaths: boolean;
}

/** The index store's indexed values: flat keys in a `meta` JSON column, paths bound. */
export function metaFields(column = 'meta'): JsonFields {
  return { column, path: (field) => `$."${field}"`, literalPaths: false };
}

/** Document collections: dotted paths into the `doc` JSON column, written literally for the indexes. */
export const DOCUMENT_FIELDS: JsonFields = { column: 'doc', path: documentPath, literalPaths: true };

const RANGE_SQL = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' } as const;

/** The predicate of `node` over `fields` (default: the index store's `meta`); pushes its parameters onto `params`. */
export function compileFilter(node: FilterTree<FilterValue>, params: unknown[], fields: JsonFields = metaFields()): string {
  // Template literals evaluate left to right, so parameters are pushed in the order their `?` appear.
  const pathArg = (field: string, suffix = ''): string => {
    const path = `${fields.path(field)}${suffix}`;
    if (fields.literalPaths) {
      if (path.includes("'")) throw new ValidationError(`Invalid field path ${JSON.stringify(field).slice(0, 80)}`, { path: 'field' });
      return `'${path}'`;
    }
    params.push(path);
    return '?';
  };
  const bind = (value: Exclude<FilterValue, null>): string => {
    params.push(sqlValue(value));
    return '?';
  };
  const type = (field: string, suffix?: string): string => `json_type(${fields.column}, ${pathArg(field, suffix)})`;
  const extract = (field: string): string => `json_extract(${fields.column}, ${pathArg(field)})`;
  const typeGuard = (field: string, value: Exclude<FilterValue, null>): string => {
    if (value instanceof Date) return `${type(field, `."${DATE_KEY}"`)} = 'text'`;
    if (typeof value === 'string') return `${type(field)} = 'text'`;
    if (typeof value === 'number') return `${type(field)} IN ('integer', 'real')`;
    return `${type(field)} IN ('true', 'false')`;
  };
  const equals = (field: string, value: FilterValue): string => {
    if (value === null) return `(${type(field)} IS NULL OR ${type(field)} = 'null')`;
    return `(${extract(field)} = ${bind(value)} AND ${typeGuard(field, value)})`;
  };
  const compile = (n: FilterTree<FilterValue>): string => {
    switch (n.kind) {
      case 'and':
      case 'or':
        // An empty conjunction is true and an empty disjunction false, as in `matches`.
        if (n.items.length === 0) return n.kind === 'and' ? '1' : '0';
        return `(${n.items.map(compile).join(n.kind === 'and' ? ' AND ' : ' OR ')})`;
      case 'exists':
        return `(${type(n.field)} IS ${n.exists ? 'NOT ' : ''}NULL)`;
      case 'in': {
        const hit = n.values.length === 0 ? '0' : `(${n.values.map((v) => equals(n.field, v)).join(' OR ')})`;
        return n.negate ? `(NOT IFNULL(${hit}, 0))` : hit;
      }
      case 'compare': {
        if (n.op === '$eq') return equals(n.field, n.value);
        if (n.op === '$ne') return `(NOT IFNULL(${equals(n.field, n.value)}, 0))`;
        if (n.value === null) throw new ValidationError(`${n.op} cannot compare with null`);
        return `(${typeGuard(n.field, n.value)} AND ${extract(n.field)} ${RANGE_SQL[n.op]} ${bind(n.value)})`;
      }
    }
  };
  return compile(node);
}

function sqlValue(value: Exclude<FilterValue, null>): unknown {
  // A date as documents store it, so `json_extract` of a stored date gives exactly this text.
  if (value instanceof Date) return toDocumentJson(value);
  return typeof value === 'boolean' ? (value ? 1 : 0) : value;
}

/** `json_extract(doc, '$."a"."b"')`: the expression a document store's indexes and queries share. */
export function extract(field: string): string {
  return `json_extract(${DOCUMENT_FIELDS.column}, '${documentPath(field)}')`;
}

/** `$."a"."b"` for `a.b`; refuses anything but identifiers joined by dots. */
export function documentPath(field: string): string {
  if (!isValidName('property', field)) throw new ValidationError(`Invalid field path ${JSON.stringify(field).slice(0, 80)}: expected identifiers joined by "."`, { path: 'field' });
  return `$.${field.split('.').map((s) => `"${s}"`).join('.')}`;
}

/** The field of a `json_extract(doc, '$."a"."b"')` expression as SQLite stored it, or `null`. */
export function fieldOfExpression(sql: string): string | null {
  const m = /^json_extract\(\s*doc\s*,\s*'\$((?:\."[A-Za-z_][A-Za-z0-9_]*")+)'\s*\)$/.exec(sql.trim());
  return m ? m[1]!.slice(1).split('.').map((s) => s.slice(1, -1)).join('.') : null;
}
