import type { Tier } from '../config/schema.js';
import { RouteNotFoundError, ValidationError } from '../errors.js';
import { checkOptions } from './arguments.js';
import type { Collection } from './collection.js';
import type { XronoxRecord } from './collection-types.js';
import type { Data } from './documents.js';
import { isPlainObject } from '../foundation/filter.js';
import { deepMerge } from './merge.js';

export interface TieredReadOptions {
  tenantId?: string;
  domain?: string;
  /** Deep-merge the tiers (generic ← domain ← tenant) instead of taking the most specific match. */
  merge?: boolean;
}

export interface TieredReadResult<T extends Data = Data> {
  /** The most specific match, or the merge of every match; `null` when no consulted tier has a match. */
  data: T | null;
  /** Tiers that had a match, from least to most specific. */
  tiers: Tier[];
  /** The matching record of each tier. */
  records: Partial<Record<Tier, XronoxRecord>>;
  /** The tiers asked that have a database, all of which were read, from least to most specific. */
  consulted: Tier[];
  /** The tiers asked that have no database (none for this domain or tenant): they contribute nothing. */
  notConfigured: Tier[];
}

/** How `readTiers` reaches a tier: its collection, or the `RouteNotFoundError` saying it has no database. */
export type TierOpener = (tier: Tier) => Collection;

/**
 * Reads one logical item across the generic, domain and tenant tiers of a static database type
 * (knowledge, metadata): the first record matching `filter` in each tier asked. The generic tier
 * is always asked, the domain tier when `domain` is given, the tenant tier when `tenantId` is.
 *
 * Every tier asked is accounted for in the result: `consulted` (it has a database, which was
 * read) or `notConfigured` (it has none, so it contributes nothing). When no tier asked has a
 * database the read is a `RouteNotFoundError` naming them, as `with()` is for each of them.
 * Every tier is resolved, and its names checked, before any is read.
 */
export async function readTiers<T extends Data>(databaseType: string, open: TierOpener, filter: Record<string, unknown>, options: TieredReadOptions): Promise<TieredReadResult<T>> {
  if (!isPlainObject(filter)) throw new ValidationError('filter must be an object', { path: 'filter' });
  const { tenantId, domain, merge } = checkOptions(options, ['tenantId', 'domain', 'merge'], 'options', `get${databaseType === 'knowledge' ? 'Knowledge' : 'Metadata'}`);
  if (merge !== undefined && typeof merge !== 'boolean') throw new ValidationError('merge must be true or false', { path: 'options.merge' });
  const asked: Tier[] = ['generic'];
  if (domain !== undefined) asked.push('domain');
  if (tenantId !== undefined) asked.push('tenant');
  const opened: Array<{ tier: Tier; collection: Collection }> = [];
  const notConfigured: Tier[] = [];
  for (const tier of asked) {
    try {
      opened.push({ tier, collection: open(tier) });
    } catch (err) {
      if (!(err instanceof RouteNotFoundError)) throw err;
      notConfigured.push(tier);
    }
  }
  if (opened.length === 0) {
    const what = asked.map((tier) => (tier === 'domain' ? `domain "${String(domain)}"` : tier === 'tenant' ? `tenant "${String(tenantId)}"` : 'generic'));
    throw new RouteNotFoundError(`No ${databaseType} database is configured for any tier asked (${what.join(', ')})`);
  }
  const records: Partial<Record<Tier, XronoxRecord>> = {};
  const found: Tier[] = [];
  for (const { tier, collection } of opened) {
    const [match] = (await collection.listByMeta({ filter, limit: 1 })).items;
    if (!match) continue;
    records[tier] = match;
    found.push(tier);
  }
  const consulted = opened.map((o) => o.tier);
  if (found.length === 0) return { data: null, tiers: [], records, consulted, notConfigured };
  const data = merge === true ? found.reduce<Data>((acc, tier) => deepMerge(acc, records[tier]!.data), {}) : records[found[found.length - 1]!]!.data;
  return { data: data as T, tiers: found, records, consulted, notConfigured };
}
