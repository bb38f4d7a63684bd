import { MemoryIndexDriver } from '../../core/adapters/memory/memory-index-driver.js';
import { IndexRuntime } from '../../core/store/index-runtime.js';
import { indexStoreConformance } from './index-store.suite.js';

indexStoreConformance('memory', async () => {
  const store = IndexRuntime.of(new MemoryIndexDriver());
  return { store, cleanup: () => store.close() };
});
