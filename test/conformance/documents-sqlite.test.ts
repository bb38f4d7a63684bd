import { join } from 'node:path';
import { SqliteDocumentStore } from '../../core/adapters/sqlite/sqlite-document-store.js';
import { tempDir } from '../support/temp.js';
import { documentStoreConformance } from './document-store.suite.js';

documentStoreConformance('sqlite', async () => {
  const dir = tempDir('xronox-docs');
  const path = join(dir.path, 'index.db');
  const store = new SqliteDocumentStore({ path });
  return {
    store,
    // A second connection to the same file, as another process would have.
    openAnother: async () => new SqliteDocumentStore({ path }),
    cleanup: async () => {
      await store.close();
      dir.cleanup();
    },
  };
});
