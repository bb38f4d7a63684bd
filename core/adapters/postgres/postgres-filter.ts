import type { FilterNode, IndexedValue } from '../../foundation/filter-tree.js';

/**
 * Compiles a validated filter to a PostgreSQL predicate over a `jsonb` column of indexed values,
 * with the semantics of `matches()` in `core/foundation/filter.ts`:
 * - equality with a non-null value is containment, `meta @> '{"k": v}'`: type-strict (`1` is not
 *   `"1"`), strings equal byte for byte, and the GIN index on `heads.meta` (jsonb_path_ops)
 *   answers it;
 * - `{ k: null }` matches a missing key or a JSON null;
 * - ranges match only values of the operand's type: numbers numerically (jsonb numerics are
 *   exact decimals, and the shortest decimal of a double orders as the double does), strings by
 *   byte order (the "C" collation: UTF-8 code point order), booleans with false < true;
 * - `$exists` is the key test `?`, for which a JSON null counts as present.
 *
 * Every atomic predicate is `true` or `false`, never SQL NULL (`meta` is never NULL, and the
 * terms that could be are wrapped in COALESCE), so `NOT` never meets three-valued logic.
 *
 * Keys and values are bound parameters (pushed on `params`, referenced as `$n`); nothing from the
 * caller is spliced into the SQL text. `column` is the compiler's own column reference.
 */
export function compileFilter(node: FilterNode, params: unknown[], column = 'meta'): string {
  switch (node.kind) {
    case 'and':
    case 'or':
      // An empty conjunction is true and an empty disjunction false, as in `matches`.
      if (node.items.length === 0) return node.kind === 'and' ? 'TRUE' : 'FALSE';
      return `(${node.items.map((n) => compileFilter(n, params, column)).join(node.kind === 'and' ? ' AND ' : ' OR ')})`;
    case 'exists':
      return node.exists ? `(${column} ? ${param(params, node.field)}::text)` : `(NOT (${column} ? ${param(params, node.field)}::text))`;
    case 'in': {
      const hit = node.values.length === 0 ? 'FALSE' : `(${node.values.map((v) => equals(node.field, v, params, column)).join(' OR ')})`;
      return node.negate ? `(NOT ${hit})` : hit;
    }
    case 'compare': {
      if (node.op === '$eq') return equals(node.field, node.value, params, column);
      if (node.op === '$ne') return `(NOT ${equals(node.field, node.value, params, column)})`;
      const op = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' }[node.op];
      const value = node.value;
      const key = param(params, node.field);
      if (typeof value === 'string') {
        // PostgreSQL strings cannot hold U+0000, so no stored value does. Against `p + "\0" + r`
        // such a value t compares as against `p`: t > s exactly when t > p, t < s when t <= p.
        const nul = value.indexOf('\0');
        const [sqlOp, operand] = nul < 0 ? [op, value] : [op.startsWith('>') ? '>' : '<=', value.slice(0, nul)];
        return `COALESCE((jsonb_typeof(${column} -> ${key}::text) = 'string' AND (${column} ->> ${key}::text) COLLATE "C" ${sqlOp} ${param(params, operand)}::text), FALSE)`;
      }
      // Numbers and booleans: jsonb orders both within their type as `matches` does.
      const type = typeof value === 'number' ? 'number' : 'boolean';
      return `COALESCE((jsonb_typeof(${column} -> ${key}::text) = '${type}' AND (${column} -> ${key}::text) ${op} ${param(params, JSON.stringify(value))}::jsonb), FALSE)`;
    }
  }
}

function equals(field: string, value: IndexedValue, params: unknown[], column: string): string {
  if (value === null) {
    const key = param(params, field);
    return `(NOT (${column} ? ${key}::text) OR ${column} @> ${param(params, JSON.stringify({ [field]: null }))}::jsonb)`;
  }
  // No stored value holds U+0000 (see above), and jsonb cannot even parse one.
  if (typeof value === 'string' && value.includes('\0')) return 'FALSE';
  return `(${column} @> ${param(params, JSON.stringify({ [field]: value }))}::jsonb)`;
}

function param(params: unknown[], value: unknown): string {
  params.push(value);
  return `$${params.length}`;
}
