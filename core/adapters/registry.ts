import type { DbConnectionConfig, SpacesConnectionConfig } from '../config/schema.js';
import type { BlobStore } from '../contracts/blob-store.js';
import type { IndexStore } from '../contracts/index-store.js';
import { ConfigError } from '../errors.js';
import { FsBlobStore } from './fs/fs-blob-store.js';
import { S3BlobStore } from './s3/s3-blob-store.js';
import { SqliteIndexStore } from './sqlite/sqlite-index-store.js';

/**
 * The adapters this build ships, chosen by the shape of each connection. A new backend is one
 * folder under `core/adapters/` plus one branch here.
 */
export const defaultAdapters = {
  indexStore(ref: string, connection: DbConnectionConfig): IndexStore {
    if (connection.sqlitePath !== undefined) return new SqliteIndexStore({ path: connection.sqlitePath });
    throw unsupported(`dbConnections.${ref}.mongoUri`, 'the MongoDB index store');
  },
  blobStore(ref: string | null, connection: SpacesConnectionConfig | null, localBasePath: string | undefined): BlobStore {
    if (connection === null) {
      if (localBasePath === undefined) throw new ConfigError([{ path: 'localStorage', message: 'is needed for databases without a spaceConnRef' }]);
      return new FsBlobStore({ basePath: localBasePath });
    }
    return new S3BlobStore({ ref: ref ?? '', connection });
  },
  /** Which connections this build can open; `initXronox` refuses a config that needs others, up front. */
  unsupported(connections: { db: Record<string, DbConnectionConfig> }): ConfigError | null {
    const issues = Object.entries(connections.db)
      .filter(([, c]) => c.mongoUri !== undefined)
      .map(([ref]) => ({ path: `dbConnections.${ref}.mongoUri`, message: 'the MongoDB index store is not part of this build yet; use sqlitePath' }));
    return issues.length ? new ConfigError(issues) : null;
  },
};

function unsupported(path: string, what: string): ConfigError {
  return new ConfigError([{ path, message: `${what} is not part of this build yet` }]);
}
