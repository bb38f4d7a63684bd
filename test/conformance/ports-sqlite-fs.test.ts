import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../core/adapters/fs/fs-blob-store.js';
import { SqliteIndexStore } from '../../core/adapters/sqlite/sqlite-index-store.js';
import { tempDir } from '../support/temp.js';
import { blobStoreConformance } from './blob-store.suite.js';
import { indexStoreConformance } from './index-store.suite.js';

indexStoreConformance('sqlite', async () => {
  const dir = tempDir('xronox-index');
  const store = new SqliteIndexStore({ path: join(dir.path, 'index.db') });
  return { store, cleanup: async () => { await store.close(); dir.cleanup(); } };
});

blobStoreConformance('fs', async () => {
  const dir = tempDir('xronox-blob');
  const store = new FsBlobStore({ basePath: dir.path });
  return { store, bucket: 'test-bucket', cleanup: async () => { await store.close(); dir.cleanup(); } };
});

describe('the filesystem blob store: temporary files', () => {
  it("writes puts through a temporary folder in the bucket's folder that no key can name, and clears what crashed puts left there", async () => {
    const dir = tempDir('xronox-blob-temp');
    const temp = join(dir.path, 'bucket', '.xronox-tmp');
    mkdirSync(temp, { recursive: true });
    // One file of a put cut off long ago, one of a put that may still be running.
    writeFileSync(join(temp, 'old.xronox-tmp'), 'x');
    utimesSync(join(temp, 'old.xronox-tmp'), new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
    writeFileSync(join(temp, 'recent.xronox-tmp'), 'y');
    const store = new FsBlobStore({ basePath: dir.path });
    await store.put('bucket', 'a/b.json', Buffer.from('{}'));
    expect(readdirSync(temp)).toEqual(['recent.xronox-tmp']);
    expect(readdirSync(join(dir.path, 'bucket', 'a'))).toEqual(['b.json']);
    expect(readdirSync(join(dir.path, 'bucket')).sort()).toEqual(['.xronox-tmp', 'a']);
    expect((await store.list('bucket', '')).keys).toEqual(['a/b.json']);
    await store.close();
    dir.cleanup();
  });
});
