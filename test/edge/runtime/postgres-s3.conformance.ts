/**
 * The engine conformance suite on PostgreSQL (127.0.0.1:5432) × S3 (s3rver), the production pair,
 * run by test/edge/runtimes.test.ts under Bun and Deno as a process of that runtime. Every schema
 * is made under this file's random prefix and only those are dropped; buckets are random.
 */
import { S3BlobStore } from '../../../core/adapters/s3/s3-blob-store.js';
import { dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix } from '../../support/postgres.js';
import { type S3rverHandle, startS3rver } from '../../support/s3rver.js';
import { tempDir } from '../../support/temp.js';
import { engineConformance } from '../../conformance/engine.suite.js';

const availability = await postgresAvailability();
let server: S3rverHandle | undefined;
const connection = (s: S3rverHandle) => ({ endpoint: s.endpoint, region: s.region, accessKey: s.accessKey, secretKey: s.secretKey, forcePathStyle: true, conditionalWrites: false });
const bucketOf = (dbName: string) => `xr-${dbName.replace(/_/g, '-')}`;

engineConformance({
  name: 'postgres × s3 (s3rver)',
  ...(availability.ok || !availability.optional ? {} : { skip: availability.reason }),
  async setup() {
    if (!availability.ok) throw new Error(`${availability.reason}. Start PostgreSQL, point XRONOX_POSTGRES_URI at one, or set XRONOX_POSTGRES_OPTIONAL=1 to skip.`);
    const dir = tempDir('xronox-engine-pg-s3');
    const s = (server ??= await startS3rver({ buckets: [] }));
    const schemaPrefix = randomSchemaPrefix();
    const inspect = new S3BlobStore({ ref: 's3rver', connection: connection(s) });
    return {
      connections: {
        dbConnections: { pg: { postgresUri: POSTGRES_URI, schemaPrefix }, docs: { sqlitePath: `${dir.path}/documents.sqlite` } },
        spacesConnections: { s3: connection(s) },
      },
      dbConnRef: 'pg',
      documentConnRef: 'docs',
      spaceConnRef: 's3',
      inspect,
      bucketFor: (dbName) => bucketOf(dbName),
      databaseFields: (dbName) => ({ bucket: bucketOf(dbName) }),
      prepare: (dbNames) => s.createBuckets(dbNames.map(bucketOf)),
      cleanup: async () => {
        await inspect.close();
        await dropSchemas(schemaPrefix);
        await server?.dispose();
        server = undefined;
        dir.cleanup();
      },
    };
  },
});
