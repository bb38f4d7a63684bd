import type { Tier } from '../config/schema.js';
import { RouteNotFoundError, ValidationError } from '../errors.js';
import type { Collection } from './collection.js';
import type { XronoxRecord } from './collection-types.js';
import type { Data } from './documents.js';
import { isPlainObject } from './filter.js';
import { deepMerge } from './merge.js';

export interface TieredReadOptions {
  tenantId?: string;
  domain?: string;
  /** Deep-merge the tiers (generic ← domain ← tenant) instead of taking the most specific match. */
  merge?: boolean;
}

export interface TieredReadResult<T extends Data = Data> {
  /** The most specific match, or the merge of every match. */
  data: T;
  /** Tiers that had a match, from least to most specific. */
  tiers: Tier[];
  /** The matching record of each tier. */
  records: Partial<Record<Tier, XronoxRecord>>;
}

/**
 * Reads one logical item across the generic, domain and tenant tiers of a static database type
 * (knowledge, metadata): the first record matching `filter` in each configured tier. A tier that
 * is not configured (no domain database for this domain, say) simply contributes nothing.
 */
export async function readTiers<T extends Data>(
  open: (tier: Tier) => Collection | null,
  filter: Record<string, unknown>,
  options: TieredReadOptions,
): Promise<TieredReadResult<T> | null> {
  if (!isPlainObject(filter)) throw new ValidationError('filter must be an object', { path: 'filter' });
  if (!isPlainObject(options)) throw new ValidationError('options must be { tenantId?, domain?, merge? }', { path: 'options' });
  const tiers: Tier[] = ['generic'];
  if (options.domain !== undefined) tiers.push('domain');
  if (options.tenantId !== undefined) tiers.push('tenant');
  const records: Partial<Record<Tier, XronoxRecord>> = {};
  const found: Tier[] = [];
  for (const tier of tiers) {
    const collection = open(tier);
    if (!collection) continue;
    const [match] = (await collection.listByMeta({ filter, limit: 1 })).items;
    if (!match) continue;
    records[tier] = match;
    found.push(tier);
  }
  if (found.length === 0) return null;
  const data = options.merge
    ? found.reduce<Data>((acc, tier) => deepMerge(acc, records[tier]!.data), {})
    : records[found[found.length - 1]!]!.data;
  return { data: data as T, tiers: found, records };
}

/** `open` for `readTiers`: a tier that has no database configured yields `null`, not an error. */
export function openIfConfigured(open: () => Collection): Collection | null {
  try {
    return open();
  } catch (err) {
    if (err instanceof RouteNotFoundError) return null;
    throw err;
  }
}
