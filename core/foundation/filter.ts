import { COMPARE_OPS, type CompareOp, type FilterNode, type FilterTree } from './filter-tree.js';
import type { IndexedValue } from './filter-tree.js';
import { ValidationError } from '../errors.js';

/**
 * Filters over indexed properties: a MongoDB-like subset with only safe operators.
 *
 * Semantics, identical in every store (the conformance suite checks stores against `matches`):
 * - values are scalars: string, finite number, boolean or null; objects and arrays are refused,
 *   which is what stops operator injection (`{ a: { $where: ... } }` is an unknown operator);
 * - `$eq`/`$ne` compare type and value (`1` never equals `"1"`); `{ a: null }` matches a missing
 *   property or a null one, as in MongoDB;
 * - `$gt`/`$gte`/`$lt`/`$lte` only match values of the same type as the operand (numbers with
 *   numbers, strings with strings by UTF-8 byte order, booleans with false < true); a null operand
 *   is refused;
 * - `$in`/`$nin` are `$eq`/`$ne` over a list; `$exists` tests presence (null counts as present).
 */

const MAX_DEPTH = 8;
const MAX_LIST = 1000;
const MAX_NODES = 256;

const OPERATOR_SET = new Set<string>([...COMPARE_OPS, '$in', '$nin', '$exists']);

/**
 * What varies between filter languages over the same operators: which fields may be named (and
 * the error for one that may not), and which literals are accepted.
 */
export interface FilterGrammar<V> {
  allows(field: string): boolean;
  refusal(field: string): string;
  scalar(value: unknown, path: string): V;
}

/** Parses and validates a user filter. `isAllowedField` says which properties may be filtered. */
export function parseFilter(input: unknown, isAllowedField: (field: string) => boolean): FilterNode | null {
  return parseFilterTree(input, { allows: isAllowedField, refusal: (field) => `Property "${field}" is not indexed, so it cannot be filtered on`, scalar });
}

/** The parser behind `parseFilter`, for any literal type: bounded depth, size and lists; only the safe operators. */
export function parseFilterTree<V>(input: unknown, grammar: FilterGrammar<V>): FilterTree<V> | null {
  if (input === undefined || input === null) return null;
  const state = { nodes: 0 };
  const node = parseObject(input, grammar, 'filter', 0, state);
  return node.kind === 'and' && node.items.length === 0 ? null : node;
}

function parseObject<V>(input: unknown, grammar: FilterGrammar<V>, path: string, depth: number, state: { nodes: number }): FilterTree<V> {
  if (depth > MAX_DEPTH) throw new ValidationError(`Filter is nested deeper than ${MAX_DEPTH} levels`, { path });
  if (!isPlainObject(input)) throw new ValidationError('A filter must be an object', { path });
  const items: FilterTree<V>[] = [];
  for (const [key, value] of Object.entries(input)) {
    if (++state.nodes > MAX_NODES) throw new ValidationError(`Filter has more than ${MAX_NODES} conditions`, { path });
    const keyPath = `${path}.${key}`;
    if (key === '$and' || key === '$or') {
      if (!Array.isArray(value) || value.length === 0) {
        throw new ValidationError(`${key} takes a non-empty array of filters`, { path: keyPath });
      }
      const children = value.map((child, i) => parseObject(child, grammar, `${keyPath}[${i}]`, depth + 1, state));
      items.push({ kind: key === '$and' ? 'and' : 'or', items: children });
    } else if (key.startsWith('$')) {
      throw new ValidationError(`Operator ${key} is not allowed; allowed: $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or`, {
        path: keyPath,
      });
    } else {
      if (!grammar.allows(key)) throw new ValidationError(grammar.refusal(key), { path: keyPath });
      items.push(...parseCondition(key, value, keyPath, grammar));
    }
  }
  return items.length === 1 ? items[0]! : { kind: 'and', items };
}

function parseCondition<V>(field: string, value: unknown, path: string, grammar: FilterGrammar<V>): FilterTree<V>[] {
  if (!isPlainObject(value)) return [{ kind: 'compare', field, op: '$eq', value: grammar.scalar(value, path) }];
  const entries = Object.entries(value);
  if (entries.length === 0) throw new ValidationError('An operator object needs at least one operator', { path });
  return entries.map(([op, operand]): FilterTree<V> => {
    const opPath = `${path}.${op}`;
    if (!OPERATOR_SET.has(op)) {
      throw new ValidationError(
        op.startsWith('$')
          ? `Operator ${op} is not allowed; allowed: $eq $ne $gt $gte $lt $lte $in $nin $exists`
          : `Unexpected key "${op}": compare against a scalar, or use operators like $eq`,
        { path: opPath },
      );
    }
    if (op === '$exists') {
      if (typeof operand !== 'boolean') throw new ValidationError('$exists takes true or false', { path: opPath });
      return { kind: 'exists', field, exists: operand };
    }
    if (op === '$in' || op === '$nin') {
      if (!Array.isArray(operand)) throw new ValidationError(`${op} takes an array`, { path: opPath });
      if (operand.length > MAX_LIST) throw new ValidationError(`${op} takes at most ${MAX_LIST} values`, { path: opPath });
      return { kind: 'in', field, negate: op === '$nin', values: operand.map((v, i) => grammar.scalar(v, `${opPath}[${i}]`)) };
    }
    const compareOp = op as CompareOp;
    const v = grammar.scalar(operand, opPath);
    if (v === null && compareOp !== '$eq' && compareOp !== '$ne') {
      throw new ValidationError(`${op} cannot compare with null`, { path: opPath });
    }
    return { kind: 'compare', field, op: compareOp, value: v };
  });
}

/** A filter's scalar operand: a well-formed string, a finite number, a boolean or null. */
export function scalar(value: unknown, path: string): IndexedValue {
  if (typeof value === 'string') {
    if (!isWellFormed(value)) throw new ValidationError('Filter strings must be well-formed Unicode (no lone surrogates)', { path });
    return value;
  }
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ValidationError('Filter numbers must be finite', { path });
    return value;
  }
  throw new ValidationError('Filter values must be strings, finite numbers, booleans or null', { path });
}

/** Evaluates a filter against flat indexed values (missing keys are missing properties). */
export function matches(node: FilterNode | null, meta: Readonly<Record<string, IndexedValue>>): boolean {
  if (node === null) return true;
  switch (node.kind) {
    case 'and':
      return node.items.every((n) => matches(n, meta));
    case 'or':
      return node.items.some((n) => matches(n, meta));
    case 'exists':
      return Object.hasOwn(meta, node.field) === node.exists;
    case 'in': {
      const hit = node.values.some((v) => equalsValue(meta, node.field, v));
      return node.negate ? !hit : hit;
    }
    case 'compare': {
      if (node.op === '$eq') return equalsValue(meta, node.field, node.value);
      if (node.op === '$ne') return !equalsValue(meta, node.field, node.value);
      if (!Object.hasOwn(meta, node.field)) return false;
      const actual = meta[node.field];
      const order = compareSameType(actual ?? null, node.value);
      if (order === undefined) return false;
      switch (node.op) {
        case '$gt':
          return order > 0;
        case '$gte':
          return order >= 0;
        case '$lt':
          return order < 0;
        case '$lte':
          return order <= 0;
      }
    }
  }
}

function equalsValue(meta: Readonly<Record<string, IndexedValue>>, field: string, expected: IndexedValue): boolean {
  const present = Object.hasOwn(meta, field);
  const actual = present ? meta[field] : undefined;
  if (expected === null) return !present || actual === null;
  return present && typeof actual === typeof expected && actual === expected;
}

/** Orders two scalars of the same type; `undefined` when the types differ or either is null. */
export function compareSameType(a: IndexedValue, b: IndexedValue): number | undefined {
  if (a === null || b === null || typeof a !== typeof b) return undefined;
  if (typeof a === 'string') return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b as string, 'utf8'));
  if (typeof a === 'number') return a === b ? 0 : a < (b as number) ? -1 : 1;
  return a === b ? 0 : a ? 1 : -1;
}

/** Every property a filter reads. */
export function filterFields(node: FilterNode | null): string[] {
  if (node === null) return [];
  if (node.kind === 'and' || node.kind === 'or') return node.items.flatMap(filterFields);
  return [node.field];
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Whether a string is well-formed UTF-16. Lone surrogates have no UTF-8 form: stores would
 * each substitute something different, so ordering and equality would differ between backends.
 */
export function isWellFormed(value: string): boolean {
  return !LONE_SURROGATE.test(value);
}
