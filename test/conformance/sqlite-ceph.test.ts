import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { S3BlobStore } from '../../core/adapters/s3/s3-blob-store.js';
import { StorageError } from '../../core/errors.js';
import { cephS3, type CephS3 } from '../support/ceph.js';
import { tempDir } from '../support/temp.js';
import { blobStoreConformance } from './blob-store.suite.js';
import { engineConformance } from './engine.suite.js';

// SQLite × S3 against Ceph's S3 gateway (started by .ci/run; see infra/local/ceph-s3.sh). Unlike
// s3rver it checks signatures and conditional writes, so every case runs here.
const ceph = cephS3();
const skip = 'skip' in ceph ? ceph.skip : undefined;
const connection = (c: CephS3, extra: Record<string, unknown> = {}) => ({
  endpoint: c.endpoint,
  region: c.region,
  accessKey: c.accessKey,
  secretKey: c.secretKey,
  forcePathStyle: true,
  ...extra,
});
const run = `${Date.now().toString(36)}`;
const bucketOf = (dbName: string) => `xr-${run}-${dbName.replace(/_/g, '-')}`.slice(0, 63).replace(/-+$/, '');

async function createBuckets(c: CephS3, names: string[]): Promise<void> {
  const client = new S3Client({ region: c.region, endpoint: c.endpoint, forcePathStyle: true, credentials: { accessKeyId: c.accessKey, secretAccessKey: c.secretKey } });
  try {
    for (const Bucket of names) {
      await client.send(new CreateBucketCommand({ Bucket })).catch((err: { name?: string }) => {
        if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
      });
    }
  } finally {
    client.destroy();
  }
}

if (skip !== undefined) {
  console.warn(`[xronox] SKIPPED the Ceph S3 suites: ${skip}`);
  describe.skip(`blob store and engine conformance on Ceph: ${skip}`, () => {
    it('needs the Ceph S3 gateway', () => undefined);
  });
} else {
  const c = ceph as CephS3;
  blobStoreConformance('s3 (Ceph)', async () => {
    await createBuckets(c, [`xr-${run}-ports`]);
    const store = new S3BlobStore({ ref: 'ceph', connection: connection(c) });
    return { store, bucket: `xr-${run}-ports`, cleanup: () => store.close() };
  });

  engineConformance({
    name: 'sqlite × s3 (Ceph)',
    async setup() {
      const dir = tempDir('xronox-engine-ceph');
      const inspect = new S3BlobStore({ ref: 'ceph', connection: connection(c) });
      return {
        connections: { dbConnections: { local: { sqlitePath: `${dir.path}/xronox.sqlite` } }, spacesConnections: { ceph: connection(c) } },
        dbConnRef: 'local',
        spaceConnRef: 'ceph',
        inspect,
        bucketFor: (dbName) => bucketOf(dbName),
        databaseFields: (dbName) => ({ bucket: bucketOf(dbName) }),
        prepare: (dbNames) => createBuckets(c, dbNames.map(bucketOf)),
        cleanup: async () => {
          await inspect.close();
          dir.cleanup();
        },
      };
    },
  });

  describe('Ceph checks what s3rver does not', () => {
    it('without keys in the config, the SDK default chain signs (here AWS_* variables), and Ceph checks it', async () => {
      const bucket = `xr-${run}-chain`;
      await createBuckets(c, [bucket]);
      const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
      const keyless = { endpoint: c.endpoint, region: c.region, forcePathStyle: true };
      try {
        process.env.AWS_ACCESS_KEY_ID = c.accessKey;
        process.env.AWS_SECRET_ACCESS_KEY = c.secretKey;
        const store = new S3BlobStore({ ref: 'role', connection: keyless });
        await store.put(bucket, 'chain.json', Buffer.from('{"ok":true}'));
        expect(Buffer.from((await store.get(bucket, 'chain.json'))!).toString()).toBe('{"ok":true}');
        await store.close(); // the last user: the pooled client goes, so the next store resolves credentials anew

        process.env.AWS_SECRET_ACCESS_KEY = 'not-the-secret';
        const refused = new S3BlobStore({ ref: 'role', connection: keyless });
        const err = await refused.put(bucket, 'chain2.json', Buffer.from('{}')).catch((e: unknown) => e);
        await refused.close();
        expect(err).toBeInstanceOf(StorageError);
        expect((err as Error).message).toMatch(/refused the credentials of spaces connection "role"/);
      } finally {
        for (const [name, value] of [['AWS_ACCESS_KEY_ID', saved.id], ['AWS_SECRET_ACCESS_KEY', saved.secret]] as const) {
          if (value === undefined) delete process.env[name];
          else process.env[name] = value;
        }
      }
    });

    it('a wrong secret key is refused with a StorageError naming the connection, not a generic failure', async () => {
      await createBuckets(c, [`xr-${run}-creds`]);
      const store = new S3BlobStore({ ref: 'bad-secret', connection: connection(c, { secretKey: 'not-the-secret' }) });
      try {
        const err = await store.put(`xr-${run}-creds`, 'k.json', Buffer.from('{}')).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StorageError);
        expect((err as Error).message).toMatch(/refused the credentials of spaces connection "bad-secret" \((SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied)\)/);
        expect((err as Error).message).not.toContain('not-the-secret');
      } finally {
        await store.close();
      }
    });
  });
}
