import type { XronoxConfig } from '../../config/load.js';
import type { DocumentStore } from '../../contracts/document-store.js';
import type { IndexStore } from '../../contracts/index-store.js';
import type { AdapterMembers } from '../../store/guard.js';
import type { MongoIndexStoreOptions } from './mongodb-index-store.js';

/**
 * The MongoDB stores' settings that need no driver: read from the one config, and what the
 * registry says of the stores before their modules (and the driver) are loaded.
 */

/** The MongoDB index store's settings, read from the one config. */
export function mongoOptions(uri: string, config: Pick<XronoxConfig, 'collectionMaps' | 'transactions' | 'fallback'>) {
  const t = config.transactions;
  return {
    uri,
    // `transactions.enabled: false` forces the standalone protocol; `enabled: true` without
    // auto-detection insists on a replica set; anything else detects the server's topology.
    transactions: t?.enabled === false ? 'off' : t?.enabled === true && t.autoDetect === false ? 'required' : 'auto',
    indexSettings: (collection: string) => ({ indexedProps: config.collectionMaps[collection]?.indexedProps ?? [] }),
    protocol: { deadLetterCollection: config.fallback?.deadLetterCollection ?? 'xronox_dead_letters' },
  } as const satisfies MongoIndexStoreOptions;
}

/**
 * The MongoDB index store's plain members before it has asked the server anything: until then
 * only `transactions: 'required'` is known to make batches atomic (once the store has detected
 * the topology, it answers for itself).
 */
export function mongoIndexStoreMembers(options: Pick<MongoIndexStoreOptions, 'transactions'>) {
  return {
    name: 'mongodb',
    capabilities: { atomicBatches: options.transactions === 'required', multiProcess: true, atomicReplace: false },
  } as const satisfies AdapterMembers<IndexStore>;
}

/** The MongoDB document store's plain members. */
export const MONGODB_DOCUMENT_STORE_MEMBERS = {
  name: 'mongodb',
  capabilities: { nativeExpiry: true, atomicReplace: false },
} as const satisfies AdapterMembers<DocumentStore>;
