import { afterAll, beforeAll, describe, it } from 'vitest';
import { FsBlobStore } from '../../core/adapters/fs/fs-blob-store.js';
import { MongoIndexDriver } from '../../core/adapters/mongodb/mongodb-index-driver.js';
import { IndexRuntime } from '../../core/store/index-runtime.js';
import { mongoAvailability, type MongoRun, startMongoRun } from '../support/mongodb.js';
import { tempDir } from '../support/temp.js';
import { engineConformance } from './engine.suite.js';
import { indexStoreConformance } from './index-store.suite.js';

// MongoDB index driver × local filesystem, through the same suites as every other backend. It
// needs a replica set (the driver refuses a standalone server): MONGODB_URI, or Docker for
// testcontainers, which starts a one-node replica set. Neither exists on the machines this
// project is built on, so there it says, loudly, that it skipped. `npm run test:mongodb`.
const availability = mongoAvailability();
/** Every property the index-store suite filters on: MongoDB filters only on indexed properties. */
const SUITE_FIELDS = ['customer.id', 'even', 'flag', 'n', 'ns', 'state', 'tier'];

if ('skip' in availability) {
  console.warn(`\n[xronox] ⚠ SKIPPED the MongoDB index store suites: ${availability.skip}. Set MONGODB_URI or start Docker, then \`npm run test:mongodb\`.\n`);
  describe.skip(`MongoDB index store conformance: ${availability.skip}`, () => {
    it('needs a MongoDB server', () => undefined);
  });
} else {
  let run: MongoRun | undefined;
  beforeAll(async () => {
    run = await startMongoRun(availability.source, { replicaSet: true });
  }, 180_000);
  // Only what this run created: the databases its commands named that did not exist before it.
  afterAll(async () => run?.finish(), 120_000);

  // Both ways of writing a transaction's effects: one bulkWrite command (MongoDB 8.0) and one per collection.
  for (const bulkWriteCommand of [true, false]) {
    indexStoreConformance(bulkWriteCommand ? 'mongodb' : 'mongodb, a bulkWrite per collection', async () => {
      const store = IndexRuntime.of(new MongoIndexDriver({ uri: run!.uri, indexSettings: () => ({ indexedProps: SUITE_FIELDS }), bulkWriteCommand }));
      // The guard opens a store in the product; here the suite holds the store itself.
      await store.open();
      return { store, cleanup: () => store.close() };
    });
  }

  engineConformance({
    name: 'mongodb × fs',
    async setup() {
      const dir = tempDir('xronox-engine-mongo');
      return {
        connections: { dbConnections: { mongo: { mongoUri: run!.uri } }, localStorage: { basePath: `${dir.path}/blobs`, enabled: true } },
        dbConnRef: 'mongo',
        inspect: new FsBlobStore({ basePath: `${dir.path}/blobs` }),
        bucketFor: (dbName) => dbName,
        cleanup: async () => dir.cleanup(),
      };
    },
  });
}
