import { join } from 'node:path';
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
