import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { FsBlobStore } from '../../core/adapters/fs/fs-blob-store.js';
import { MongoIndexStore } from '../../core/adapters/mongodb/mongodb-index-store.js';
import { dropDatabases, mongoAvailability, type MongoServer, startMongo } from '../support/mongodb.js';
import { tempDir } from '../support/temp.js';
import { engineConformance } from './engine.suite.js';
import { indexStoreConformance } from './index-store.suite.js';

// MongoDB index store × local filesystem, through the same suites as every other backend, once
// with transactions (replica set) and once with the standalone protocol. It needs a server:
// MONGODB_URI, or Docker for testcontainers. Neither exists on the machines this project is
// built on, so there it says, loudly, that it skipped.
const availability = mongoAvailability();
/** Every property the index-store suite filters on: MongoDB filters only on indexed properties. */
const SUITE_FIELDS = ['customer.id', 'even', 'flag', 'n', 'ns', 'state', 'tier'];

if ('skip' in availability) {
  console.warn(`[xronox] SKIPPED the MongoDB suites: ${availability.skip}. Set MONGODB_URI (see README: docker compose up -d) to run them.`);
  describe.skip(`MongoDB index store conformance: ${availability.skip}`, () => {
    it('needs a MongoDB server', () => undefined);
  });
} else {
  let server: MongoServer;
  const run = `x${randomUUID().slice(0, 6)}`;
  beforeAll(async () => {
    server = await startMongo(availability.source);
  }, 180_000);
  afterAll(async () => {
    if (!server) return;
    await dropDatabases(server.uri, (name) => name.startsWith(run) || /^(rt|an|kn|logs)_/.test(name));
    await server.stop();
  }, 120_000);

  for (const transactions of ['auto', 'off'] as const) {
    const label = transactions === 'auto' ? 'mongodb (transactions when the server has them)' : 'mongodb (standalone protocol)';

    indexStoreConformance(label, async () => {
      const store = new MongoIndexStore({ uri: server.uri, transactions, indexSettings: () => ({ indexedProps: SUITE_FIELDS }) });
      return { store, cleanup: () => store.close() };
    });

    engineConformance({
      name: `${label} × fs`,
      async setup() {
        const dir = tempDir('xronox-engine-mongo');
        return {
          connections: { dbConnections: { mongo: { mongoUri: server.uri } }, localStorage: { basePath: `${dir.path}/blobs`, enabled: true } },
          settings: transactions === 'off' ? { transactions: { enabled: false } } : {},
          dbConnRef: 'mongo',
          inspect: new FsBlobStore({ basePath: `${dir.path}/blobs` }),
          bucketFor: (dbName) => dbName,
          cleanup: async () => dir.cleanup(),
        };
      },
    });
  }
}
