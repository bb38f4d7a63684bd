import type { XronoxConfig } from '../config/load.js';
import type { DbConnectionConfig, SpacesConnectionConfig } from '../config/schema.js';
import type { BlobStore } from '../contracts/blob-store.js';
import type { DocumentStore } from '../contracts/document-store.js';
import type { IndexStore } from '../contracts/index-store.js';
import { ConfigError } from '../errors.js';
import { IndexRuntime } from '../store/index-runtime.js';
import { FsBlobStore } from './fs/fs-blob-store.js';
import { MongoDocumentStore } from './mongodb/mongodb-document-store.js';
import { MongoIndexStore } from './mongodb/mongodb-index-store.js';
import { LazyPostgresIndexDriver } from './postgres/postgres-lazy-driver.js';
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
    if (connection.mongoUri !== undefined) return new MongoIndexStore(mongoOptions(connection.mongoUri, config));
    // Loads pg on first use only (see LazyPostgresIndexDriver).
    if (connection.postgresUri !== undefined) {
      return IndexRuntime.of(
        new LazyPostgresIndexDriver({ connectionString: connection.postgresUri, ...(connection.schemaPrefix === undefined ? {} : { schemaPrefix: connection.schemaPrefix }) }),
      );
    }
    throw new ConfigError([{ path: `dbConnections.${ref}`, message: 'names no backend (mongoUri, sqlitePath or postgresUri)' }]);
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
    if (connection.postgresUri !== undefined) {
      throw new ConfigError([{ path: `dbConnections.${ref}`, message: 'is a PostgreSQL connection, which holds record databases only; messaging and identities need mongoUri or sqlitePath' }]);
    }
    throw new ConfigError([{ path: `dbConnections.${ref}`, message: 'names no backend (mongoUri, sqlitePath or postgresUri)' }]);
  },
};

/** The MongoDB store's settings, read from the one config. */
export function mongoOptions(uri: string, config: Pick<XronoxConfig, 'collectionMaps' | 'transactions' | 'fallback'>) {
  const t = config.transactions;
  return {
    uri,
    // `transactions.enabled: false` forces the standalone protocol; `enabled: true` without
    // auto-detection insists on a replica set; anything else detects the server's topology.
    transactions: t?.enabled === false ? 'off' : t?.enabled === true && t.autoDetect === false ? 'required' : 'auto',
    indexSettings: (collection: string) => ({ indexedProps: config.collectionMaps[collection]?.indexedProps ?? [] }),
    protocol: { deadLetterCollection: config.fallback?.deadLetterCollection ?? 'xronox_dead_letters' },
  } as const satisfies ConstructorParameters<typeof MongoIndexStore>[0];
}
