import type { FilterNode } from '../../foundation/filter-tree.js';
import type { IndexedValue } from '../../contracts/index-store.js';

/**
 * Compiles a validated filter to a SQLite predicate over the `meta` JSON column, with the
 * semantics of `core/foundation/filter.ts` (type-strict equality, same-type ranges, MongoDB null
 * rules). Every value and JSON path is a bound parameter; nothing from the caller is spliced
 * into the SQL text.
 *
 * Each atomic predicate is wrapped in `IFNULL(..., 0)` so that SQL's three-valued logic never
 * turns a missing property into "unknown" under `NOT`.
 */
export function compileFilter(node: FilterNode, params: unknown[], column = 'meta'): string {
  switch (node.kind) {
    case 'and':
    case 'or':
      // An empty conjunction is true and an empty disjunction false, as in `matches`.
      if (node.items.length === 0) return node.kind === 'and' ? '1' : '0';
      return `(${node.items.map((n) => compileFilter(n, params, column)).join(node.kind === 'and' ? ' AND ' : ' OR ')})`;
    case 'exists':
      params.push(jsonPath(node.field));
      return `(json_type(${column}, ?) IS ${node.exists ? 'NOT ' : ''}NULL)`;
    case 'in': {
      const hit = node.values.length === 0 ? '0' : `(${node.values.map((v) => equals(node.field, v, params, column)).join(' OR ')})`;
      return node.negate ? `(NOT ${hit})` : hit;
    }
    case 'compare': {
      if (node.op === '$eq') return equals(node.field, node.value, params, column);
      if (node.op === '$ne') return `(NOT ${equals(node.field, node.value, params, column)})`;
      const sqlOp = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' }[node.op];
      const path = jsonPath(node.field);
      params.push(path, path, sqlValue(node.value));
      return `IFNULL((json_type(${column}, ?) IN (${typesOf(node.value)}) AND json_extract(${column}, ?) ${sqlOp} ?), 0)`;
    }
  }
}

function equals(field: string, value: IndexedValue, params: unknown[], column: string): string {
  const path = jsonPath(field);
  if (value === null) {
    params.push(path, path);
    return `IFNULL((json_type(${column}, ?) IS NULL OR json_type(${column}, ?) = 'null'), 0)`;
  }
  if (typeof value === 'boolean') {
    params.push(path);
    return `IFNULL((json_type(${column}, ?) = '${value ? 'true' : 'false'}'), 0)`;
  }
  params.push(path, path, value);
  return `IFNULL((json_type(${column}, ?) IN (${typesOf(value)}) AND json_extract(${column}, ?) = ?), 0)`;
}

function typesOf(value: IndexedValue): string {
  if (typeof value === 'string') return `'text'`;
  if (typeof value === 'number') return `'integer', 'real'`;
  return `'true', 'false'`;
}

function sqlValue(value: IndexedValue): unknown {
  return typeof value === 'boolean' ? (value ? 1 : 0) : value;
}

/** The JSON path of a flat meta key; property names are validated identifiers joined by dots. */
function jsonPath(field: string): string {
  return `$."${field}"`;
}
