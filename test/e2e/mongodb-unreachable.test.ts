import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { pooledMongoClientCount } from '../../core/adapters/mongodb/mongodb-client-pool.js';
import { ClosedError, StorageError } from '../../core/errors.js';
import { initXronox } from '../../core/xronox.js';
import type { Xronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';

// What runs here without a MongoDB server: the real driver against a port where no MongoDB
// answers. It shows the client is created lazily, shared per URI, closed on shutdown, and that
// a server that is gone surfaces as a named StorageError with the password masked, not a hang.

const open: Xronox[] = [];
afterEach(async () => {
  for (const x of open.splice(0)) await x.shutdown().catch(() => undefined);
});

/** A TCP port that accepts and immediately drops connections: a server that is "gone". */
async function deadPort(): Promise<{ port: number; server: Server }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

function configFor(uri: string, dir: string) {
  return {
    dbConnections: { primary: { mongoUri: uri }, replica: { mongoUri: uri } },
    localStorage: { basePath: `${dir}/blobs`, enabled: true },
    databases: {
      runtime: {
        tenantDatabases: [
          { tenantId: 'acme', dbConnRef: 'primary', dbName: 'rt_acme' },
          { tenantId: 'globex', dbConnRef: 'replica', dbName: 'rt_globex' },
        ],
      },
    },
  };
}

describe('MongoDB index store without a reachable server', () => {
  it('opens nothing at init, fails the first operation with a StorageError naming the adapter, masks the password in health, and shares one client per URI', async () => {
    const { port, server } = await deadPort();
    const dir = tempDir('xronox-mongo-down');
    try {
      const uri = `mongodb://xronox:s3cr3t-pw@127.0.0.1:${port}/?serverSelectionTimeoutMS=400&connectTimeoutMS=400`;
      const before = pooledMongoClientCount();
      const x = initXronox(configFor(uri, dir.path));
      open.push(x);
      expect(pooledMongoClientCount()).toBe(before); // lazily: nothing until first use

      const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
      const err = await orders.create({ total: 1 }, 'ada').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect((err as StorageError).adapter).toBe('mongodb');
      expect((err as Error).message).not.toContain('s3cr3t-pw');
      // The next call tries to connect again: the driver's own implicit connect would have closed
      // the client for good after the first failure (MongoTopologyClosedError from then on).
      const again = await orders.getLatest('o1').catch((e: unknown) => e);
      expect((again as Error).message).toMatch(/MongoServerSelectionError/);

      const health = await x.admin.health();
      expect(health.ok).toBe(false);
      expect(health.databases.map((d) => [d.dbName, d.index.adapter, d.index.ok])).toEqual([
        ['rt_acme', 'mongodb', false],
        ['rt_globex', 'mongodb', false],
      ]);
      expect(JSON.stringify(health)).not.toContain('s3cr3t-pw');

      // Two connection refs with the same URI: one client in the process.
      expect(pooledMongoClientCount()).toBe(before + 1);
      await x.shutdown();
      expect(pooledMongoClientCount()).toBe(before);
    } finally {
      server.close();
      dir.cleanup();
    }
  });

  it('a call waits for a server only as long as configured: serverSelectionTimeoutMS of the URI, else 5 s (not the 30 s of the driver)', async () => {
    const { port, server } = await deadPort();
    const dir = tempDir('xronox-mongo-timeouts');
    try {
      for (const [options, least, most] of [['?serverSelectionTimeoutMS=300', 250, 2_500], ['', 4_500, 9_000]] as const) {
        const x = initXronox(configFor(`mongodb://127.0.0.1:${port}/${options}`, dir.path));
        open.push(x);
        const started = Date.now();
        const err = await x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' }).getLatest('o1').catch((e: unknown) => e);
        const took = Date.now() - started;
        expect(err).toBeInstanceOf(StorageError);
        expect((err as Error).message).toMatch(/MongoServerSelectionError/);
        expect(took).toBeGreaterThanOrEqual(least);
        expect(took).toBeLessThan(most);
        await x.shutdown();
      }
    } finally {
      server.close();
      dir.cleanup();
    }
  }, 30_000);

  it('the document store connects before its first call, and again on the next call after a failure; a call after shutdown connects nothing', async () => {
    const { port, server } = await deadPort();
    const dir = tempDir('xronox-mongo-docs-down');
    try {
      const uri = `mongodb://127.0.0.1:${port}/?serverSelectionTimeoutMS=300`;
      const before = pooledMongoClientCount();
      const x = initXronox({
        dbConnections: { primary: { mongoUri: uri } },
        localStorage: { basePath: `${dir.path}/blobs`, enabled: true },
        databases: { messaging: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'primary', dbName: 'msg_acme' }] } },
      });
      open.push(x);
      const documents = x.documentStoreFor({ dbConnRef: 'primary' });
      expect(documents.name).toBe('mongodb');
      expect(pooledMongoClientCount()).toBe(before); // its name is known before the store is made
      for (let attempt = 0; attempt < 2; attempt++) {
        const err = await documents.ping().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StorageError);
        expect(err).toMatchObject({ adapter: 'mongodb', operation: 'ping' });
        // Each call connects again: never the driver's MongoTopologyClosedError.
        expect((err as Error).message).toMatch(/MongoServerSelectionError/);
      }
      expect(pooledMongoClientCount()).toBe(before + 1);
      await x.shutdown();
      expect(pooledMongoClientCount()).toBe(before);
      await expect(documents.ping()).rejects.toBeInstanceOf(ClosedError);
      expect(pooledMongoClientCount()).toBe(before);
    } finally {
      server.close();
      dir.cleanup();
    }
  });

  it('two instances on one URI share the client; one shutting down leaves the other working on it', async () => {
    const { port, server } = await deadPort();
    const dir = tempDir('xronox-mongo-share');
    try {
      const uri = `mongodb://127.0.0.1:${port}/?serverSelectionTimeoutMS=300`;
      const before = pooledMongoClientCount();
      const a = initXronox(configFor(uri, dir.path));
      const b = initXronox(configFor(uri, dir.path));
      open.push(a, b);
      const ping = (x: Xronox) => x.admin.health().then((h) => h.databases[0]!.index.adapter);
      expect(await ping(a)).toBe('mongodb');
      expect(await ping(b)).toBe('mongodb');
      expect(pooledMongoClientCount()).toBe(before + 1);
      await a.shutdown();
      expect(pooledMongoClientCount()).toBe(before + 1);
      const err = await b.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' }).getLatest('o1').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError); // still the driver answering, not "client closed"
      expect((err as Error).message).toMatch(/MongoServerSelectionError/);
      await b.shutdown();
      expect(pooledMongoClientCount()).toBe(before);
    } finally {
      server.close();
      dir.cleanup();
    }
  });
});
