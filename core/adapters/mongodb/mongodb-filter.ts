import type { Document, Filter } from 'mongodb';
import type { DocFilter, SortSpec } from '../../contracts/document-store.js';
import { COMPARE_OPS, type CompareOp, type FilterNode, type FilterValue } from '../../foundation/filter-tree.js';
import { ValidationError } from '../../errors.js';
import { isValidName } from '../../foundation/names.js';
import { describe, isPlainObject, metaPath, scalarProblem } from './mongodb-meta.js';

export { META_FIELD, decodeMeta, encodeMeta, metaKey, metaPath } from './mongodb-meta.js';

/**
 * Compiles a validated filter to a MongoDB query, with exactly the semantics of `matches()` in
 * `core/foundation/filter.ts`. One compiler serves both stores; `MongoFields` says where a field
 * lives: the index store's `meta` subdocument (`toMongoFilter`, paths `meta.<key>`, see
 * `mongodb-meta.ts`), or a document collection's own paths (`toMongoDocumentFilter`, where values
 * may also be `Date`s).
 *
 * - `$eq`/`$ne`/`$in`/`$nin` map one to one. MongoDB's own rules are the engine's: equality is
 *   type-strict across brackets (`1` ≠ `"1"` ≠ `true`; an int32 and a double of the same value
 *   are equal, and every JS number is one of those; a `Date` equals the same instant),
 *   `{ $eq: null }` matches null or missing, and `$ne`/`$nin` match a missing property.
 * - `$gt`/`$gte`/`$lt`/`$lte` map one to one. MongoDB's type bracketing makes a range match only
 *   values of the operand's type, as `compareSameType` does (dates with dates); booleans order
 *   false < true. Strings compare by the "simple" binary collation, memcmp of UTF-8 bytes, which
 *   is the engine's `Buffer.compare` order (and SQLite's BINARY). The stores must therefore never
 *   give their collections, indexes or queries a collation: any other collation changes equality
 *   and order.
 * - `$exists` maps one to one (a null value is present).
 * - No `$not` or `$nor` is needed: every negation in the AST is already a native operator with
 *   the engine's semantics (`$ne`, `$nin`, `$exists: false`).
 * - MongoDB refuses an empty `$and`/`$or` ("must be a nonempty array"), so constants are folded
 *   instead: an empty `and` and an empty `$nin` are "always", an empty `or` and an empty `$in`
 *   "never"; "always" absorbs an `or`, "never" an `and`. A filter that is "always" at the top is
 *   `{}`; one that is "never" is `{ _id: { $in: [] } }` (every document has an `_id`, and `$in` of
 *   no values matches nothing, missing included; the planner answers it from the `_id` index).
 *
 * Injection: everything is validated before any of it is returned, so nothing unchecked reaches
 * the driver. Fields must be valid property names that the `MongoFields` admit (so they never
 * start with `$`, never are all digits and never reach a prototype); values must be strings
 * (well-formed Unicode), finite numbers, booleans, null, or (documents only) valid `Date`s, which
 * are copied. Every value is emitted as the operand of an operator (`{ "meta.a": { $eq: v } }`,
 * never `{ "meta.a": v }`), so MongoDB reads it as a literal: a string such as `"$where"` or
 * `"$gt"` is just a string there, and no value is ever an object that could hold operators. The
 * result is checked once more by `assertSafeMongoFilter`, so a bug in this translator cannot
 * leak an operator either.
 *
 * Arrays never occur under a filtered field (meta values are scalars; `checkDocument` keeps
 * declared fields out of arrays), so MongoDB's array-traversal rules never apply; an encoded key
 * or a property name never is all digits, so a path is never read as an array index.
 */

/** The operators a Xronox MongoDB filter may contain: the only ones `assertSafeMongoFilter` lets through. */
export const MONGO_LOGICAL_OPERATORS = ['$and', '$or'] as const;
export const MONGO_FIELD_OPERATORS = ['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exists'] as const;

/**
 * Bounds on a filter node, so a hand-built node cannot make an unbounded query. Each is above
 * what `parseFilter` and `parseDocumentFilter` (the same parser) can produce (8 levels of user
 * `$and`/`$or` become at most 17 nested and/or nodes, as implicit ANDs wrap explicit ones, 18
 * with a document collection's tenant pin; 256 conditions of up to 9 operators; lists of 1000;
 * 256 × (2 × 1000 + 6) values), so every parsed filter translates.
 */
export const MONGO_FILTER_LIMITS = { maxDepth: 20, maxNodes: 4096, maxList: 1000, maxValues: 524_288 } as const;

/** The properties a filter may use: a set of property names, or a predicate over them. */
export type IndexedFields = ReadonlySet<string> | ((field: string) => boolean);

/** Where a filter's fields live, which of them it may use, and whether its values may be `Date`s. */
interface MongoFields {
  /** The MongoDB path of a valid property name. */
  path(field: string): string;
  /** Why a valid property name may not be filtered on, or `undefined` when it may. */
  refuse(field: string): string | undefined;
  readonly dates: boolean;
}

/** Document collections: fields are the documents' own paths (the core checked them against the declared fields). */
const DOCUMENT_FIELDS: MongoFields = { path: (field) => field, refuse: () => undefined, dates: true };

const RANGE_OPS = new Set<string>(['$gt', '$gte', '$lt', '$lte']);
const COMPARE_OP_SET = new Set<string>(COMPARE_OPS);

interface State {
  readonly fields: MongoFields;
  nodes: number;
  values: number;
}

/** "Always" and "never" are folded away; only a real condition is an object. */
type Compiled = Filter<Document> | boolean;

/**
 * Translates a filter node to a MongoDB query over `meta.<key>` paths. Throws a `ValidationError`
 * (with the node path, e.g. `filter.items[2].value`) for anything outside the AST: an unknown
 * node kind or operator, a field that is not a valid property name or not in `indexed`, a value
 * that is not a scalar, a range over null, or a node beyond `MONGO_FILTER_LIMITS`.
 */
export function toMongoFilter(node: FilterNode, indexed: IndexedFields): Filter<Document> {
  const isIndexed = typeof indexed === 'function' ? indexed : (field: string) => indexed.has(field);
  return compileMongoFilter(node, {
    path: metaPath,
    refuse: (field) => (isIndexed(field) ? undefined : `Property "${field}" is not indexed, so it cannot be filtered on`),
    dates: false,
  });
}

/** The query of a document filter over the documents' own paths (`{}` for none); refusals as `toMongoFilter`'s. */
export function toMongoDocumentFilter(node: DocFilter | null): Filter<Document> {
  return node === null ? {} : compileMongoFilter(node, DOCUMENT_FIELDS);
}

/** The one translation behind `toMongoFilter` and `toMongoDocumentFilter`. */
function compileMongoFilter(node: unknown, fields: MongoFields): Filter<Document> {
  const compiled = compile(node, 'filter', 0, { fields, nodes: 0, values: 0 });
  const filter: Filter<Document> = compiled === true ? {} : compiled === false ? { _id: { $in: [] } } : compiled;
  assertSafeMongoFilter(filter, { dates: fields.dates });
  return filter;
}

function compile(node: unknown, path: string, depth: number, state: State): Compiled {
  const { maxDepth, maxNodes, maxList } = MONGO_FILTER_LIMITS;
  if (depth > maxDepth) throw new ValidationError(`Filter is nested deeper than ${maxDepth} levels`, { path });
  if (++state.nodes > maxNodes) throw new ValidationError(`Filter has more than ${maxNodes} nodes`, { path });
  if (!isPlainObject(node)) throw new ValidationError(`A filter node must be a plain object; got ${describe(node)}`, { path });
  const kind = own(node, 'kind');
  switch (kind) {
    case 'and':
    case 'or': {
      const items = own(node, 'items');
      if (!Array.isArray(items)) throw new ValidationError(`An "${kind}" node takes an array of items; got ${describe(items)}`, { path: `${path}.items` });
      // Every item is validated before anything is folded away.
      const parts: Filter<Document>[] = [];
      let absorbed = false;
      for (let i = 0; i < items.length; i++) {
        const part = compile(items[i], `${path}.items[${i}]`, depth + 1, state);
        if (typeof part !== 'boolean') parts.push(part);
        else if (part === (kind === 'or')) absorbed = true;
      }
      if (absorbed) return kind === 'or';
      if (parts.length === 0) return kind === 'and';
      if (parts.length === 1) return parts[0]!;
      return kind === 'and' ? { $and: parts } : { $or: parts };
    }
    case 'compare': {
      const field = checkField(own(node, 'field'), path, state);
      const op = own(node, 'op');
      if (typeof op !== 'string' || !COMPARE_OP_SET.has(op)) {
        throw new ValidationError(`Operator ${show(op)} is not allowed in a comparison; allowed: ${COMPARE_OPS.join(' ')}`, { path: `${path}.op` });
      }
      const value = checkValue(own(node, 'value'), `${path}.value`, state);
      if (value === null && RANGE_OPS.has(op)) throw new ValidationError(`${op} cannot compare with null`, { path: `${path}.value` });
      return { [state.fields.path(field)]: { [op as CompareOp]: value } };
    }
    case 'in': {
      const field = checkField(own(node, 'field'), path, state);
      const negate = own(node, 'negate');
      if (typeof negate !== 'boolean') throw new ValidationError(`An "in" node needs negate: true or false; got ${describe(negate)}`, { path: `${path}.negate` });
      const list = own(node, 'values');
      if (!Array.isArray(list)) throw new ValidationError(`An "in" node takes an array of values; got ${describe(list)}`, { path: `${path}.values` });
      if (list.length > maxList) throw new ValidationError(`${negate ? '$nin' : '$in'} takes at most ${maxList} values`, { path: `${path}.values` });
      // Indexed access, not map(): a hole must be refused, not skipped (BSON would send it as null).
      const values: FilterValue[] = [];
      for (let i = 0; i < list.length; i++) values.push(checkValue(list[i], `${path}.values[${i}]`, state));
      if (values.length === 0) return negate;
      return { [state.fields.path(field)]: negate ? { $nin: values } : { $in: values } };
    }
    case 'exists': {
      const field = checkField(own(node, 'field'), path, state);
      const exists = own(node, 'exists');
      if (typeof exists !== 'boolean') throw new ValidationError(`An "exists" node needs exists: true or false; got ${describe(exists)}`, { path: `${path}.exists` });
      return { [state.fields.path(field)]: { $exists: exists } };
    }
    default:
      throw new ValidationError(`Unknown filter node kind ${show(kind)}; expected and, or, compare, in or exists`, { path: `${path}.kind` });
  }
}

function checkField(field: unknown, path: string, state: State): string {
  if (!isValidName('property', field)) {
    throw new ValidationError(`Filter property ${show(field)} is not a valid property name (identifiers joined by ".", at most 8 levels)`, {
      path: `${path}.field`,
    });
  }
  const refusal = state.fields.refuse(field);
  if (refusal !== undefined) throw new ValidationError(refusal, { path: `${path}.field` });
  return field;
}

function checkValue(value: unknown, path: string, state: State): FilterValue {
  const problem = valueProblem(value, state.fields.dates);
  if (problem !== undefined) {
    throw new ValidationError(`Filter values must be strings, finite numbers, booleans${state.fields.dates ? ', null or Dates' : ' or null'}; got ${problem}`, { path });
  }
  if (++state.values > MONGO_FILTER_LIMITS.maxValues) throw new ValidationError(`Filter has more than ${MONGO_FILTER_LIMITS.maxValues} values`, { path });
  // A copy: what reaches the driver is a plain Date, whatever subclass or own properties came in.
  return value instanceof Date ? new Date(value.getTime()) : (value as FilterValue);
}

/** Why a value is not an operand, or `undefined` when it is one; dates only where `dates`. */
function valueProblem(value: unknown, dates: boolean): string | undefined {
  if (dates && value instanceof Date) return Number.isFinite(value.getTime()) ? undefined : 'an invalid Date';
  return scalarProblem(value);
}

/** A sort over document paths, with `_id` last so ties come in `_id` (insertion) order. */
export function toMongoSort(sort: SortSpec | undefined): Array<[string, 1 | -1]> {
  return [...(sort ?? []).map(([f, dir]): [string, 1 | -1] => [documentPath(f), dir === -1 ? -1 : 1]), ['_id', 1]];
}

/** A document field as MongoDB reads it (the path itself); refuses anything but identifiers joined by dots. */
export function documentPath(field: unknown): string {
  if (!isValidName('property', field)) throw new ValidationError(`Invalid field path ${JSON.stringify(field)?.slice(0, 80)}: expected identifiers joined by "."`, { path: 'field' });
  return field;
}

// ---------------------------------------------------------------------------------------------

const LOGICAL_SET = new Set<string>(MONGO_LOGICAL_OPERATORS);
const FIELD_OPERATOR_SET = new Set<string>(MONGO_FIELD_OPERATORS);
const LIST_OPERATORS = new Set<string>(['$in', '$nin']);
/** A field path segment: an identifier, `:` allowed (encoded meta keys). Never `$`-prefixed, never all digits. */
const FIELD_SEGMENT = /^[A-Za-z_][A-Za-z0-9_:]{0,127}$/;
const MAX_FIELD_SEGMENTS = 16;
const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const MAX_WALK_DEPTH = 32;
const ALLOWED_LIST = `${MONGO_LOGICAL_OPERATORS.join(' ')} between filters, ${MONGO_FIELD_OPERATORS.join(' ')} on a field`;

/**
 * Defence in depth: checks an already-built MongoDB filter (this module's output, or a store's
 * filter around it) and throws a `ValidationError` naming the path of anything outside the safe
 * subset, before it can reach the driver:
 *
 * - a filter is a plain object whose keys are `$and`/`$or` (each a non-empty array of filters) or
 *   field paths (identifier segments joined by `.`; no `$`, no prototype keys, no NUL);
 * - every other `$` key is refused: `$where`, `$function`, `$accumulator`, `$expr`, `$jsonSchema`,
 *   `$text`, `$regex`, `$nor`, `$not`, `$elemMatch`, `$comment`, … — the list is an allowlist;
 * - a field's condition is a non-empty object of `$eq $ne $gt $gte $lt $lte $in $nin $exists`,
 *   or a bare scalar literal. Operands are scalars (string, finite number, boolean, null),
 *   `$in`/`$nin` take an array of scalars, `$exists` a boolean. So no object that could hold
 *   operators ever sits in a value position (`{ a: { $eq: { $gt: "" } } }`, `{ a: { b: 1 } }`),
 *   and no RegExp, BSON `Code`, Date, `Long` or other wrapper gets through — except, with
 *   `dates: true` (document collections), valid plain `Date`s: no subclass, no own properties;
 * - only own data properties are read, as BSON serialises them (`Object.keys`); an accessor, a
 *   hole in an array or an object with a `toBSON` method (which BSON would call) is refused.
 */
export function assertSafeMongoFilter(filter: unknown, options: { dates?: boolean } = {}): asserts filter is Filter<Document> {
  walkFilter(filter, 'filter', 0, options.dates === true);
}

function walkFilter(filter: unknown, path: string, depth: number, dates: boolean): void {
  if (depth > MAX_WALK_DEPTH) throw unsafe(`it is nested deeper than ${MAX_WALK_DEPTH} levels`, path);
  const obj = plainObject(filter, path, 'a filter');
  for (const key of Object.keys(obj)) {
    const keyPath = `${path}.${key}`;
    const value = dataValue(obj, key, keyPath);
    if (LOGICAL_SET.has(key)) {
      const items = array(value, keyPath, `${key} takes`);
      // MongoDB refuses an empty $and/$or outright; refuse it here with a clearer message.
      if (items.length === 0) throw unsafe(`${key} takes a non-empty array of filters`, keyPath);
      for (let i = 0; i < items.length; i++) walkFilter(dataValue(items, String(i), `${keyPath}[${i}]`), `${keyPath}[${i}]`, depth + 1, dates);
    } else if (key.startsWith('$')) {
      throw unsafe(`operator ${key} is not allowed; allowed: ${ALLOWED_LIST}`, keyPath);
    } else {
      checkFieldPath(key, keyPath);
      walkCondition(value, keyPath, dates);
    }
  }
}

function walkCondition(condition: unknown, path: string, dates: boolean): void {
  if (!isPlainObject(condition)) {
    // A bare scalar is an equality with a literal: MongoDB never reads it as an operator or expression.
    const problem = operandProblem(condition, dates);
    if (problem !== undefined) throw unsafe(`a field's condition must be an operator object or a scalar; got ${problem}`, path);
    return;
  }
  const ops = plainObject(condition, path, 'a condition');
  const keys = Object.keys(ops);
  if (keys.length === 0) throw unsafe('an empty condition object would match only an empty subdocument; use an operator such as $eq', path);
  for (const op of keys) {
    const opPath = `${path}.${op}`;
    if (!FIELD_OPERATOR_SET.has(op)) {
      throw unsafe(
        op.startsWith('$')
          ? `operator ${op} is not allowed on a field; allowed: ${MONGO_FIELD_OPERATORS.join(' ')}`
          : `a condition object may hold only operators; "${op}" would match an embedded document`,
        opPath,
      );
    }
    const value = dataValue(ops, op, opPath);
    if (op === '$exists') {
      if (typeof value !== 'boolean') throw unsafe(`$exists takes true or false; got ${describe(value)}`, opPath);
    } else if (LIST_OPERATORS.has(op)) {
      const items = array(value, opPath, `${op} takes`);
      for (let i = 0; i < items.length; i++) operand(dataValue(items, String(i), `${opPath}[${i}]`), `${opPath}[${i}]`, dates);
    } else {
      operand(value, opPath, dates);
    }
  }
}

function checkFieldPath(key: string, path: string): void {
  const segments = key.split('.');
  if (segments.length > MAX_FIELD_SEGMENTS || !segments.every((s) => FIELD_SEGMENT.test(s) && !PROTOTYPE_KEYS.has(s))) {
    throw unsafe(`${show(key)} is not a safe field path (identifier segments joined by ".")`, path);
  }
}

function plainObject(value: unknown, path: string, what: string): Record<string, unknown> {
  if (!isPlainObject(value)) throw unsafe(`${what} must be a plain object; got ${describe(value)}`, path);
  if ('toBSON' in value) throw unsafe(`${what} must not have a toBSON method (BSON would call it)`, path);
  return value;
}

function array(value: unknown, path: string, what: string): unknown[] {
  if (!Array.isArray(value) || Object.getPrototypeOf(value) !== Array.prototype) throw unsafe(`${what} an array; got ${describe(value)}`, path);
  if ('toBSON' in value) throw unsafe(`${what} an array without a toBSON method`, path);
  return value;
}

function operand(value: unknown, path: string, dates: boolean): void {
  const problem = operandProblem(value, dates);
  if (problem !== undefined) throw unsafe(`operands must be strings, finite numbers, booleans${dates ? ', null or Dates' : ' or null'}; got ${problem}`, path);
}

/** Why a value cannot be an operand, or `undefined`; a Date only where `dates`, and only a plain, valid one. */
function operandProblem(value: unknown, dates: boolean): string | undefined {
  if (!dates || !(value instanceof Date)) return scalarProblem(value);
  if (Object.getPrototypeOf(value) !== Date.prototype || Reflect.ownKeys(value).length > 0) return 'a Date subclass or a Date with own properties';
  return Number.isFinite(value.getTime()) ? undefined : 'an invalid Date';
}

/** An own data property (what BSON serialises); accessors and holes are refused. */
function dataValue(obj: object, key: string, path: string): unknown {
  const desc = Object.getOwnPropertyDescriptor(obj, key);
  if (desc === undefined) throw unsafe('a hole in an array (BSON would send it as null)', path);
  if (!('value' in desc)) throw unsafe('an accessor property (its value could change after this check)', path);
  return desc.value as unknown;
}

function unsafe(detail: string, path: string): ValidationError {
  return new ValidationError(`Unsafe MongoDB filter at ${path}: ${detail}`, { path });
}

/** An own data property, or `undefined`: a node is read without touching its prototype chain. */
function own(obj: object, key: string): unknown {
  const desc = Object.getOwnPropertyDescriptor(obj, key);
  return desc !== undefined && 'value' in desc ? (desc.value as unknown) : undefined;
}

function show(value: unknown): string {
  if (typeof value !== 'string') return describe(value);
  return value.length > 40 ? `a ${value.length}-character string` : JSON.stringify(value);
}
