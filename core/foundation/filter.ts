import { COMPARE_OPS, type CompareOp, type FilterNode, type FilterTree, type FilterValue, type IndexedValue } from './filter-tree.js';
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
 * - `$in`/`$nin` are `$eq`/`$ne` over a list; `$exists` tests presence (null counts as present);
 * - document collections (`core/domains/documents/document-filter.ts`) also compare `Date`s, as
 *   MongoDB does: a date is its instant, equal to the same instant, ordered by time, and ranges
 *   over dates match dates only.
 *
 * This file holds the one in-memory evaluator of those semantics (`matches`), for indexed meta
 * and documents alike; each backend has one compiler (`core/adapters/<backend>/<backend>-filter.ts`).
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

/**
 * Where the evaluator reads a field: a flat record (the engine's indexed values, whose keys are
 * whole property paths such as `"customer.id"`; own keys only), or a function returning a field's
 * value, `undefined` when it is missing (see `byPath` for documents).
 */
export type FieldSource = Readonly<Record<string, unknown>> | ((field: string) => unknown);

/**
 * Evaluates a filter in memory, with the semantics every store implements (see the top of this
 * file): index-store meta (`matches(node, meta)`) and documents (`matches(node, byPath(doc))`) alike.
 */
export function matches(node: FilterTree<FilterValue> | null, values: FieldSource): boolean {
  if (node === null) return true;
  const read = typeof values === 'function' ? values : (field: string): unknown => (Object.hasOwn(values, field) ? values[field] : undefined);
  return evaluate(node, read);
}

function evaluate(node: FilterTree<FilterValue>, read: (field: string) => unknown): boolean {
  switch (node.kind) {
    case 'and':
      return node.items.every((n) => evaluate(n, read));
    case 'or':
      return node.items.some((n) => evaluate(n, read));
    case 'exists':
      return (read(node.field) !== undefined) === node.exists;
    case 'in': {
      const actual = read(node.field);
      const hit = node.values.some((v) => equalsValue(actual, v));
      return node.negate ? !hit : hit;
    }
    case 'compare': {
      const actual = read(node.field);
      if (node.op === '$eq') return equalsValue(actual, node.value);
      if (node.op === '$ne') return !equalsValue(actual, node.value);
      const order = compareSameType(actual, node.value);
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

/** Type-strict equality (`undefined` is a missing field): null matches missing too; a date equals the same instant. */
function equalsValue(actual: unknown, expected: FilterValue): boolean {
  if (expected === null) return actual === undefined || actual === null;
  if (expected instanceof Date) return actual instanceof Date && actual.getTime() === expected.getTime();
  return actual === expected;
}

/** The type bracket a range stays within; `undefined` for null, missing and anything not a scalar. */
function bracket(value: unknown): 'string' | 'number' | 'boolean' | 'date' | undefined {
  if (value instanceof Date) return 'date';
  const type = typeof value;
  return type === 'string' || type === 'number' || type === 'boolean' ? type : undefined;
}

/**
 * Orders a value against a filter literal of the same type: strings by UTF-8 bytes, numbers
 * numerically, false < true, dates by instant. `undefined` when the types differ or either is
 * null or missing, so ranges never cross types.
 */
export function compareSameType(a: unknown, b: FilterValue): number | undefined {
  const type = bracket(b);
  if (type === undefined || bracket(a) !== type) return undefined;
  switch (type) {
    case 'string':
      return Buffer.compare(Buffer.from(a as string, 'utf8'), Buffer.from(b as string, 'utf8'));
    case 'number':
      return a === b ? 0 : (a as number) < (b as number) ? -1 : 1;
    case 'boolean':
      return a === b ? 0 : a ? 1 : -1;
    case 'date':
      return Math.sign((a as Date).getTime() - (b as Date).getTime());
  }
}

/**
 * The value at a dotted path through nested plain objects; `undefined` when a step is missing or
 * is not an object to descend into (arrays and dates are not).
 */
export function valueAtPath(value: unknown, path: string): unknown {
  let current = value;
  for (const segment of path.split('.')) {
    if (current === null || typeof current !== 'object' || Array.isArray(current) || current instanceof Date) return undefined;
    current = Object.hasOwn(current, segment) ? (current as Record<string, unknown>)[segment] : undefined;
  }
  return current;
}

/** A `FieldSource` that reads fields as dotted paths into a document. */
export function byPath(doc: unknown): (field: string) => unknown {
  return (field) => valueAtPath(doc, field);
}

/** Every property a filter reads. */
export function filterFields(node: FilterTree<FilterValue> | null): string[] {
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
