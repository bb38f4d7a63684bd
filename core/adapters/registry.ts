import type { XronoxConfig } from '../config/load.js';
import type { DbConnectionConfig, SpacesConnectionConfig } from '../config/schema.js';
import type { BlobStore } from '../contracts/blob-store.js';
import type { DocumentStore } from '../contracts/document-store.js';
import type { IndexStore } from '../contracts/index-store.js';
import { ConfigError } from '../errors.js';
import { IndexRuntime } from '../store/index-runtime.js';
import { FsBlobStore } from './fs/fs-blob-store.js';
import { MongoDocumentStore } from './mongodb/mongodb-document-store.js';
import { MongoIndexDriver, type MongoIndexDriverOptions } from './mongodb/mongodb-index-driver.js';
import { S3BlobStore } from './s3/s3-blob-store.js';
import { SqliteDocumentStore } from './sqlite/sqlite-document-store.js';
import { SqliteIndexDriver } from './sqlite/sqlite-index-driver.js';

/**
 * The adapters this build ships, chosen by the shape of each connection. A new backend is one
 * folder under `core/adapters/` plus one branch here.
 */
export const defaultAdapters = {
  indexStore(ref: string, connection: DbConnectionConfig, config: XronoxConfig): IndexStore {
    if (connection.sqlitePath !== undefined) return IndexRuntime.of(new SqliteIndexDriver({ path: connection.sqlitePath }));
    if (connection.mongoUri !== undefined) return IndexRuntime.of(new MongoIndexDriver(mongoOptions(connection.mongoUri, config, ref)));
    throw new ConfigError([{ path: `dbConnections.${ref}`, message: 'names no backend (mongoUri or sqlitePath)' }]);
  },
  blobStore(ref: string | null, connection: SpacesConnectionConfig | null, localBasePath: string | undefined): BlobStore {
    if (connection === null) {
      if (localBasePath === undefined) throw new ConfigError([{ path: 'localStorage', message: 'is needed for databases without a spaceConnRef' }]);
      return new FsBlobStore({ basePath: localBasePath });
    }
    return new S3BlobStore({ ref: ref ?? '', connection });
  },
  /** Messaging and identities: plain collections with declared indexes, in the same database as the index store's. */
  documentStore(ref: string, connection: DbConnectionConfig): DocumentStore {
    if (connection.sqlitePath !== undefined) return new SqliteDocumentStore({ path: connection.sqlitePath });
    if (connection.mongoUri !== undefined) return new MongoDocumentStore({ uri: connection.mongoUri });
    throw new ConfigError([{ path: `dbConnections.${ref}`, message: 'names no backend (mongoUri or sqlitePath)' }]);
  },
};

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
    ...(ref === undefined ? {} : { configPath: `dbConnections.${ref}.mongoUri` }),
  };
}
