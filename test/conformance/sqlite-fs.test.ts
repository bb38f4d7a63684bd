import { FsBlobStore } from '../../core/adapters/fs/fs-blob-store.js';
import { tempDir } from '../support/temp.js';
import { engineConformance } from './engine.suite.js';

// The embedded default: SQLite index store × local filesystem blob store.
engineConformance({
  name: 'sqlite × fs',
  async setup() {
    const dir = tempDir('xronox-engine');
    return {
      connections: { dbConnections: { local: { sqlitePath: `${dir.path}/xronox.sqlite` } }, localStorage: { basePath: `${dir.path}/blobs`, enabled: true } },
      dbConnRef: 'local',
      inspect: new FsBlobStore({ basePath: `${dir.path}/blobs` }),
      bucketFor: (dbName) => dbName,
      cleanup: async () => dir.cleanup(),
    };
  },
});
