export type IndexedValue = string | number | boolean | null;

/** A literal a filter compares with: an indexed scalar, or a `Date` (document collections). */
export type FilterValue = IndexedValue | Date;

/**
 * A validated filter over indexed properties, as the engine hands it to an index store.
 * Adapters translate it (SQL, a MongoDB query); `core/foundation/filter.ts` parses user input into
 * it and evaluates it (and every other `FilterTree`) in memory with the same semantics.
 */
export type FilterNode = FilterTree<IndexedValue>;

/** The same tree over literals of type `V` (document collections also compare `Date`s). */
export type FilterTree<V> =
  | { readonly kind: 'and'; readonly items: readonly FilterTree<V>[] }
  | { readonly kind: 'or'; readonly items: readonly FilterTree<V>[] }
  | { readonly kind: 'compare'; readonly field: string; readonly op: CompareOp; readonly value: V }
  | { readonly kind: 'in'; readonly field: string; readonly negate: boolean; readonly values: readonly V[] }
  | { readonly kind: 'exists'; readonly field: string; readonly exists: boolean };

export const COMPARE_OPS = ['$eq', '$ne', '$gt', '$gte', '$lt', '$lte'] as const;
export type CompareOp = (typeof COMPARE_OPS)[number];

/** The only operators a filter may use; anything else is rejected before reaching a store. */
export const FILTER_OPERATORS = [...COMPARE_OPS, '$in', '$nin', '$exists', '$and', '$or'] as const;
export type FilterOperator = (typeof FILTER_OPERATORS)[number];
