import { FsBlobStore } from '../../core/adapters/fs/fs-blob-store.js';
import { dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix } from '../support/postgres.js';
import { tempDir } from '../support/temp.js';
import { engineConformance } from './engine.suite.js';

// PostgreSQL index store (a `postgresUri` connection, through the registry) × local filesystem.
// Messaging and identities are document databases, which PostgreSQL does not hold: they go to a
// SQLite connection beside it. Every schema is made under this file's random prefix, and only
// those are dropped at the end.
const availability = await postgresAvailability();

engineConformance({
  name: 'postgres × fs',
  ...(availability.ok || !availability.optional ? {} : { skip: availability.reason }),
  async setup() {
    if (!availability.ok) throw new Error(`${availability.reason}. Start PostgreSQL, point XRONOX_POSTGRES_URI at one, or set XRONOX_POSTGRES_OPTIONAL=1 to skip.`);
    const dir = tempDir('xronox-engine-pg');
    const schemaPrefix = randomSchemaPrefix();
    return {
      connections: {
        dbConnections: { pg: { postgresUri: POSTGRES_URI, schemaPrefix }, docs: { sqlitePath: `${dir.path}/documents.sqlite` } },
        localStorage: { basePath: `${dir.path}/blobs`, enabled: true },
      },
      dbConnRef: 'pg',
      documentConnRef: 'docs',
      inspect: new FsBlobStore({ basePath: `${dir.path}/blobs` }),
      bucketFor: (dbName) => dbName,
      cleanup: async () => {
        await dropSchemas(schemaPrefix);
        dir.cleanup();
      },
    };
  },
});
