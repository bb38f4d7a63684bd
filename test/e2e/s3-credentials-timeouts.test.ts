import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { S3BlobStore } from '../../core/adapters/s3/s3-blob-store.js';
import { loadConfig } from '../../core/config/load.js';
import { ConfigError, StorageError } from '../../core/errors.js';
import { configError } from '../support/errors.js';

// Two properties of S3 connections that matter on Lambda: keys may be left to the SDK's default
// chain (the function's role), and a server that accepts connections but never answers cannot
// hold a request forever.

const base = {
  dbConnections: { local: { sqlitePath: '/tmp/unused.sqlite' } },
  databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', spaceConnRef: 's3', dbName: 'rt_acme' }] } },
};

describe('S3 credentials in the config', () => {
  it('may be left out entirely (the SDK default chain), but not half given', () => {
    const conn = { region: 'us-east-1', buckets: { records: 'r-b', versions: 'v-b', content: 'c-b', backups: 'b-b' } };
    expect(loadConfig({ ...base, spacesConnections: { s3: conn } }).spacesConnections.s3!.accessKey).toBeUndefined();
    const err = configError(() => loadConfig({ ...base, spacesConnections: { s3: { ...conn, accessKey: 'AKIAEXAMPLE' } } }));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.issues).toContainEqual({ path: 'spacesConnections.s3', message: 'give both accessKey and secretKey, or neither (the SDK default credential chain)' });
  });
});

describe('an S3 server that accepts connections and never answers', () => {
  const sockets = new Set<Socket>();
  let server: Server;
  afterAll(() => {
    for (const s of sockets) s.destroy();
    server?.close();
  });

  it('fails the request after requestTimeoutMs (and the SDK retries) with a StorageError, instead of hanging', async () => {
    server = createServer((socket) => {
      sockets.add(socket); // read and never answer
      socket.on('data', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const store = new S3BlobStore({
      ref: 'silent',
      connection: { endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', accessKey: 'k', secretKey: 's', forcePathStyle: true, requestTimeoutMs: 150 },
    });
    try {
      const err = await store.put('a-bucket', 'k.json', Buffer.from('{}')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect(sockets.size).toBeGreaterThan(1); // the SDK tried again on a fresh connection
    } finally {
      await store.close();
    }
  });
});
