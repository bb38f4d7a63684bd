import type { XronoxConfig } from '../config/load.js';
import type { DbConnectionConfig, SpacesConnectionConfig } from '../config/schema.js';
import type { BlobStore } from '../contracts/blob-store.js';
import type { DocumentStore } from '../contracts/document-store.js';
import type { IndexStore } from '../contracts/index-store.js';
import { ConfigError } from '../errors.js';
import type { AdapterSource } from '../store/guard.js';
import { IndexRuntime } from '../store/index-runtime.js';
import { FS_BLOB_STORE_MEMBERS } from './fs/fs-settings.js';
import { MONGODB_DOCUMENT_STORE_MEMBERS, MONGODB_INDEX_STORE_MEMBERS, mongoOptions } from './mongodb/mongodb-settings.js';
import { POSTGRES_DOCUMENT_STORE_MEMBERS, POSTGRES_INDEX_STORE_MEMBERS, postgresOptions } from './postgres/postgres-settings.js';
import { s3BlobStoreMembers } from './s3/s3-settings.js';
import { SQLITE_DOCUMENT_STORE_MEMBERS, SQLITE_INDEX_STORE_MEMBERS } from './sqlite/sqlite-settings.js';

/**
 * The adapters this build ships, chosen by the shape of each connection. A new backend is one
 * folder under `core/adapters/` plus one branch here.
 *
 * Each branch imports its adapter's module (and so the backend's SDK: the MongoDB driver, the AWS
 * SDK, better-sqlite3) only when the store is first used, never when this file is loaded: a
 * process, a Lambda cold start in particular, pays only for the backends its config uses. What
 * the guard must know before then (the adapter's name, capabilities, a blob store's `maxPutMs`)
 * comes from each backend's `*-settings.ts`, which needs no SDK.
 */
export const defaultAdapters = {
  indexStore(ref: string, connection: DbConnectionConfig, config: XronoxConfig): AdapterSource<IndexStore> {
    const { sqlitePath, mongoUri, postgresUri } = connection;
    if (sqlitePath !== undefined) {
      return { members: SQLITE_INDEX_STORE_MEMBERS, open: async () => IndexRuntime.of(new (await import('./sqlite/sqlite-index-driver.js')).SqliteIndexDriver({ path: sqlitePath })) };
    }
    if (mongoUri !== undefined) {
      const options = mongoOptions(mongoUri, config, ref);
      return { members: MONGODB_INDEX_STORE_MEMBERS, open: async () => IndexRuntime.of(new (await import('./mongodb/mongodb-index-driver.js')).MongoIndexDriver(options)) };
    }
    if (postgresUri !== undefined) {
      const options = { connectionString: postgresUri, ...postgresOptions(connection) };
      return { members: POSTGRES_INDEX_STORE_MEMBERS, open: async () => IndexRuntime.of(new (await import('./postgres/postgres-index-driver.js')).PostgresIndexDriver(options)) };
    }
    throw new ConfigError([{ path: `dbConnections.${ref}`, message: 'names no backend (mongoUri, postgresUri or sqlitePath)' }]);
  },
  blobStore(ref: string | null, connection: SpacesConnectionConfig | null, localBasePath: string | undefined): AdapterSource<BlobStore> {
    if (connection === null) {
      if (localBasePath === undefined) throw new ConfigError([{ path: 'localStorage', message: 'is needed for databases without a spaceConnRef' }]);
      return { members: FS_BLOB_STORE_MEMBERS, open: async () => new (await import('./fs/fs-blob-store.js')).FsBlobStore({ basePath: localBasePath }) };
    }
    return { members: s3BlobStoreMembers(connection), open: async () => new (await import('./s3/s3-blob-store.js')).S3BlobStore({ ref: ref ?? '', connection }) };
  },
  /** Messaging and identities: plain collections with declared indexes, in the same database as the index store's. */
  documentStore(ref: string, connection: DbConnectionConfig): AdapterSource<DocumentStore> {
    const { sqlitePath, mongoUri } = connection;
    if (sqlitePath !== undefined) {
      return { members: SQLITE_DOCUMENT_STORE_MEMBERS, open: async () => new (await import('./sqlite/sqlite-document-store.js')).SqliteDocumentStore({ path: sqlitePath }) };
    }
    if (mongoUri !== undefined) {
      return { members: MONGODB_DOCUMENT_STORE_MEMBERS, open: async () => new (await import('./mongodb/mongodb-document-store.js')).MongoDocumentStore({ uri: mongoUri, configPath: `dbConnections.${ref}.mongoUri` }) };
    }
    if (connection.postgresUri !== undefined) {
      const options = { uri: connection.postgresUri, ...postgresOptions(connection) };
      return { members: POSTGRES_DOCUMENT_STORE_MEMBERS, open: async () => new (await import('./postgres/postgres-document-store.js')).PostgresDocumentStore(options) };
    }
    throw new ConfigError([{ path: `dbConnections.${ref}`, message: 'names no backend (mongoUri, postgresUri or sqlitePath)' }]);
  },
};
