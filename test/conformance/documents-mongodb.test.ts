import { afterAll, beforeAll, describe, it } from 'vitest';
import { MongoDocumentStore } from '../../core/adapters/mongodb/mongodb-document-store.js';
import { mongoAvailability, type MongoRun, startMongoRun } from '../support/mongodb.js';
import { documentStoreConformance } from './document-store.suite.js';

// The MongoDB document store through the same suite as SQLite. It needs a server: MONGODB_URI,
// or Docker for testcontainers. Neither exists on the machines this project is built on, so there
// it says, loudly, that it skipped. `npm run test:mongodb`.
const availability = mongoAvailability();

if ('skip' in availability) {
  console.warn(`\n[xronox] ⚠ SKIPPED the MongoDB document store suite: ${availability.skip}. Set MONGODB_URI or start Docker, then \`npm run test:mongodb\`.\n`);
  describe.skip(`MongoDB document store conformance: ${availability.skip}`, () => {
    it('needs a MongoDB server', () => undefined);
  });
} else {
  let run: MongoRun | undefined;
  beforeAll(async () => {
    run = await startMongoRun(availability.source, { replicaSet: false });
  }, 180_000);
  // Only what this run created (its messaging and identities databases among them): the databases its commands named that did not exist before it.
  afterAll(async () => run?.finish(), 120_000);

  documentStoreConformance('mongodb', async () => {
    // Opened as the core's guard opens it before a first call (the suite calls the adapter directly).
    const opened = async () => {
      const store = new MongoDocumentStore({ uri: run!.uri });
      await store.open();
      return store;
    };
    const store = await opened();
    return { store, openAnother: opened, cleanup: () => store.close() };
  });
}
