import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { MongoDocumentStore } from '../../core/adapters/mongodb/mongodb-document-store.js';
import { dropDatabases, mongoAvailability, type MongoServer, startMongo } from '../support/mongodb.js';
import { documentStoreConformance } from './document-store.suite.js';

// The MongoDB document store through the same suite as SQLite. It needs a server: MONGODB_URI,
// or Docker for testcontainers. Neither exists on the machines this project is built on, so there
// it says, loudly, that it skipped.
const availability = mongoAvailability();

if ('skip' in availability) {
  console.warn(`[xronox] SKIPPED the MongoDB document store suite: ${availability.skip}. Set MONGODB_URI (see README: docker compose up -d) to run it.`);
  describe.skip(`MongoDB document store conformance: ${availability.skip}`, () => {
    it('needs a MongoDB server', () => undefined);
  });
} else {
  let server: MongoServer;
  const run = `xd_${randomUUID().slice(0, 6)}`;
  beforeAll(async () => {
    server = await startMongo(availability.source);
  }, 180_000);
  afterAll(async () => {
    if (!server) return;
    // The suite's namespaces are `xd_<random>` (and, for the case test, `dA…`/`da…`).
    await dropDatabases(server.uri, (name) => name.startsWith('xd_') || name.startsWith(run) || /^d[Aa][0-9a-f-]{8}$/.test(name));
    await server.stop();
  }, 120_000);

  documentStoreConformance('mongodb', async () => {
    // Opened as the core's guard opens it before a first call (the suite calls the adapter directly).
    const opened = async () => {
      const store = new MongoDocumentStore({ uri: server.uri });
      await store.open();
      return store;
    };
    const store = await opened();
    return { store, openAnother: opened, cleanup: () => store.close() };
  });
}
