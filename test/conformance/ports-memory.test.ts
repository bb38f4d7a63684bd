import { MemoryIndexDriver } from '../../core/adapters/memory/memory-index-driver.js';
import { IndexRuntime } from '../../core/store/index-runtime.js';
import { indexStoreConformance } from './index-store.suite.js';

indexStoreConformance('memory', async () => {
  const store = IndexRuntime.of(new MemoryIndexDriver());
  return { store, cleanup: () => store.close() };
});

// The path a driver takes when one transaction cannot hold a restore (MongoDB's): the same
// suite, replaceCollections run collection by collection.
indexStoreConformance('memory, restores by collection', async () => {
  const store = IndexRuntime.of(new MemoryIndexDriver({ replacesInOneTransaction: false }));
  return { store, cleanup: () => store.close() };
});
