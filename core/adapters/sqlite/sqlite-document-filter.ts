import { DATE_KEY, type DocFilter, type DocScalar } from '../../contracts/document-store.js';
import { ValidationError } from '../../errors.js';
import { isValidName } from '../../foundation/names.js';

/**
 * Compiles a validated document filter to a SQLite predicate over the `doc` JSON column, with the
 * semantics of `matchesDocument` (`core/domains/documents/document-filter.ts`).
 *
 * Values are always bound parameters. JSON paths are spliced into the SQL text, because SQLite
 * uses an expression index only when the query holds the same expression (`json_extract(doc,
 * '$."key"')`) literally; fields are therefore checked here against the identifier grammar
 * (`a.b_c`), whatever the caller validated before, so nothing else can reach the SQL text.
 *
 * Positive conditions stay plain `AND`ed terms (`json_extract(...) = ? AND json_type(...) = 'text'`)
 * so the planner can use the indexes; only under a negation (`$ne`, `$nin`) is a condition wrapped
 * in `IFNULL(..., 0)`, so SQL's NULL never turns a missing field into "unknown".
 *
 * Dates are stored as `{"$date":"<ISO>"}`; `json_extract` gives that text, which orders like the
 * dates (fixed-width ISO), and `json_type(doc, '$."f"."$date"') = 'text'` tells a date from any
 * other value (documents hold no `$` keys of their own).
 */
export function compileDocumentFilter(node: DocFilter, params: unknown[]): string {
  switch (node.kind) {
    case 'and':
    case 'or':
      if (node.items.length === 0) return node.kind === 'and' ? '1' : '0';
      return `(${node.items.map((n) => compileDocumentFilter(n, params)).join(node.kind === 'and' ? ' AND ' : ' OR ')})`;
    case 'exists':
      return `(json_type(doc, '${jsonPath(node.field)}') IS ${node.exists ? 'NOT ' : ''}NULL)`;
    case 'in': {
      const hit = node.values.length === 0 ? '0' : `(${node.values.map((v) => equals(node.field, v, params)).join(' OR ')})`;
      return node.negate ? `(NOT IFNULL(${hit}, 0))` : hit;
    }
    case 'compare': {
      if (node.op === '$eq') return equals(node.field, node.value, params);
      if (node.op === '$ne') return `(NOT IFNULL(${equals(node.field, node.value, params)}, 0))`;
      const sqlOp = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' }[node.op];
      if (node.value === null) throw new ValidationError(`${node.op} cannot compare with null`);
      params.push(sqlValue(node.value));
      return `(${typeGuard(node.field, node.value)} AND ${extract(node.field)} ${sqlOp} ?)`;
    }
  }
}

/** `json_extract(doc, '$."a"."b"')`: the expression both indexes and queries use. */
export function extract(field: string): string {
  return `json_extract(doc, '${jsonPath(field)}')`;
}

function equals(field: string, value: DocScalar, params: unknown[]): string {
  if (value === null) return `(json_type(doc, '${jsonPath(field)}') IS NULL OR json_type(doc, '${jsonPath(field)}') = 'null')`;
  params.push(sqlValue(value));
  return `(${extract(field)} = ? AND ${typeGuard(field, value)})`;
}

function typeGuard(field: string, value: Exclude<DocScalar, null>): string {
  if (value instanceof Date) return `json_type(doc, '${jsonPath(field)}."${DATE_KEY}"') = 'text'`;
  if (typeof value === 'string') return `json_type(doc, '${jsonPath(field)}') = 'text'`;
  if (typeof value === 'number') return `json_type(doc, '${jsonPath(field)}') IN ('integer', 'real')`;
  return `json_type(doc, '${jsonPath(field)}') IN ('true', 'false')`;
}

function sqlValue(value: Exclude<DocScalar, null>): unknown {
  if (value instanceof Date) return JSON.stringify({ [DATE_KEY]: value.toISOString() });
  return typeof value === 'boolean' ? (value ? 1 : 0) : value;
}


/** `$."a"."b"` for `a.b`; refuses anything but identifiers joined by dots. */
export function jsonPath(field: string): string {
  if (!isValidName('property', field)) throw new ValidationError(`Invalid field path ${JSON.stringify(field).slice(0, 80)}: expected identifiers joined by "."`, { path: 'field' });
  return `$.${field.split('.').map((s) => `"${s}"`).join('.')}`;
}

/** The field of a `json_extract(doc, '$."a"."b"')` expression as SQLite stored it, or `null`. */
export function fieldOfExpression(sql: string): string | null {
  const m = /^json_extract\(\s*doc\s*,\s*'\$((?:\."[A-Za-z_][A-Za-z0-9_]*")+)'\s*\)$/.exec(sql.trim());
  return m ? m[1]!.slice(1).split('.').map((s) => s.slice(1, -1)).join('.') : null;
}
