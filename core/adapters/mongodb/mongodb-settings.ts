import type { XronoxConfig } from '../../config/load.js';
import type { DocumentStore } from '../../contracts/document-store.js';
import type { IndexStore } from '../../contracts/index-store.js';
import type { AdapterMembers } from '../../store/guard.js';
import type { MongoIndexDriverOptions } from './mongodb-index-driver.js';

/**
 * The MongoDB stores' settings that need no driver: read from the one config, and what the
 * registry says of the stores before their modules (and the driver) are loaded.
 */

/**
 * The MongoDB index driver's settings, read from the one config. (Every write is a transaction, so
 * the server must be a replica set: the driver checks when it opens, and the config loader
 * refuses `transactions.enabled: false` next to a MongoDB connection.)
 */
export function mongoOptions(uri: string, config: Pick<XronoxConfig, 'collectionMaps' | 'fallback'>, ref?: string): MongoIndexDriverOptions {
  return {
    uri,
    indexSettings: (collection: string) => ({ indexedProps: config.collectionMaps[collection]?.indexedProps ?? [] }),
    deadLetterCollection: config.fallback?.deadLetterCollection ?? 'xronox_dead_letters',
    collections: Object.keys(config.collectionMaps),
    ...(ref === undefined ? {} : { configPath: `dbConnections.${ref}.mongoUri` }),
  };
}

/** The MongoDB index store's plain members, known before the driver loads. */
export const MONGODB_INDEX_STORE_MEMBERS = {
  name: 'mongodb',
  capabilities: { multiProcess: true },
} as const satisfies AdapterMembers<IndexStore>;

/** The MongoDB document store's plain members. */
export const MONGODB_DOCUMENT_STORE_MEMBERS = {
  name: 'mongodb',
  capabilities: { nativeExpiry: true, atomicReplace: false },
} as const satisfies AdapterMembers<DocumentStore>;
