import { afterAll, beforeAll, describe, it } from 'vitest';
import { FsBlobStore } from '../../core/adapters/fs/fs-blob-store.js';
import { acquireMongoClient, type PooledMongoClient } from '../../core/adapters/mongodb/mongodb-client-pool.js';
import { MongoIndexDriver } from '../../core/adapters/mongodb/mongodb-index-driver.js';
import { IndexRuntime } from '../../core/store/index-runtime.js';
import { dropDatabases, listDatabases, mongoAvailability, type MongoServer, startMongo } from '../support/mongodb.js';
import { tempDir } from '../support/temp.js';
import { engineConformance } from './engine.suite.js';
import { indexStoreConformance } from './index-store.suite.js';

// MongoDB index driver × local filesystem, through the same suites as every other backend. It
// needs a replica set (the driver refuses a standalone server): MONGODB_URI, or Docker for
// testcontainers, which starts a one-node replica set. Neither exists on the machines this
// project is built on, so there it says, loudly, that it skipped.
const availability = mongoAvailability();
/** Every property the index-store suite filters on: MongoDB filters only on indexed properties. */
const SUITE_FIELDS = ['customer.id', 'even', 'flag', 'n', 'ns', 'state', 'tier'];
const SYSTEM_DATABASES = new Set(['admin', 'config', 'local']);

if ('skip' in availability) {
  console.warn(`[xronox] SKIPPED the MongoDB suites: ${availability.skip}. Set MONGODB_URI (see README: docker compose up -d) to run them.`);
  describe.skip(`MongoDB index store conformance: ${availability.skip}`, () => {
    it('needs a MongoDB server', () => undefined);
  });
} else {
  let server: MongoServer;
  /** The server's URI with command monitoring on: every store of the run shares its one client, which `watched` holds too. */
  let uri: string;
  let watched: PooledMongoClient | undefined;
  let before = new Set<string>();
  const named = new Set<string>();

  beforeAll(async () => {
    server = await startMongo(availability.source);
    if (!server.replicaSet) throw new Error('The MongoDB suites need a replica set (or mongos); the server at MONGODB_URI is a standalone server');
    before = new Set(await listDatabases(server.uri));
    uri = withOption(server.uri, 'monitorCommands=true');
    watched = acquireMongoClient(uri);
    watched.client.on('commandStarted', (event) => {
      if (!SYSTEM_DATABASES.has(event.databaseName)) named.add(event.databaseName);
    });
  }, 180_000);

  afterAll(async () => {
    await watched?.release();
    if (!server) return;
    // Only what this run created: databases its commands named that did not exist before it.
    await dropDatabases(server.uri, (name) => named.has(name) && !before.has(name));
    await server.stop();
  }, 120_000);

  indexStoreConformance('mongodb', async () => {
    const store = IndexRuntime.of(new MongoIndexDriver({ uri, indexSettings: () => ({ indexedProps: SUITE_FIELDS }) }));
    // The guard opens a store in the product; here the suite holds the store itself.
    await store.open();
    return { store, cleanup: () => store.close() };
  });

  engineConformance({
    name: 'mongodb × fs',
    async setup() {
      const dir = tempDir('xronox-engine-mongo');
      return {
        connections: { dbConnections: { mongo: { mongoUri: uri } }, localStorage: { basePath: `${dir.path}/blobs`, enabled: true } },
        dbConnRef: 'mongo',
        inspect: new FsBlobStore({ basePath: `${dir.path}/blobs` }),
        bucketFor: (dbName) => dbName,
        cleanup: async () => dir.cleanup(),
      };
    },
  });
}

/** The URI with one more option (`mongodb://h:1` → `mongodb://h:1/?o=1`; `…/?a=1` → `…/?a=1&o=1`). */
function withOption(uri: string, option: string): string {
  if (uri.includes('?')) return `${uri}&${option}`;
  const afterScheme = uri.slice(uri.indexOf('://') + 3);
  return afterScheme.includes('/') ? `${uri}?${option}` : `${uri}/?${option}`;
}
