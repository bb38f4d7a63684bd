import type { DbConnectionConfig, SpacesConnectionConfig } from '../config/schema.js';
import type { BlobStore } from '../contracts/blob-store.js';
import type { IndexStore } from '../contracts/index-store.js';
import { ConfigError } from '../errors.js';
import { FsBlobStore } from './fs/fs-blob-store.js';
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
    throw unsupported(`spacesConnections.${ref ?? ''}`, 'the S3 blob store');
  },
  /** Which connections this build can open; `initXronox` refuses a config that needs others, up front. */
  unsupported(connections: { db: Record<string, DbConnectionConfig>; spacesInUse: string[] }): ConfigError | null {
    const issues = [
      ...Object.entries(connections.db)
        .filter(([, c]) => c.mongoUri !== undefined)
        .map(([ref]) => ({ path: `dbConnections.${ref}.mongoUri`, message: 'the MongoDB index store is not part of this build yet; use sqlitePath' })),
      ...connections.spacesInUse.map((ref) => ({
        path: `spacesConnections.${ref}`,
        message: 'the S3 blob store is not part of this build yet; leave spaceConnRef empty to use localStorage',
      })),
    ];
    return issues.length ? new ConfigError(issues) : null;
  },
};

function unsupported(path: string, what: string): ConfigError {
  return new ConfigError([{ path, message: `${what} is not part of this build yet` }]);
}
