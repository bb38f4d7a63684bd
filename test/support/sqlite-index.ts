import { SqliteIndexDriver, type SqliteIndexDriverOptions } from '../../core/adapters/sqlite/sqlite-index-driver.js';
import { IndexRuntime } from '../../core/store/index-runtime.js';

/** The SQLite index store as the registry builds it, on a file of the test's choosing. */
export function sqliteIndexStore(options: SqliteIndexDriverOptions): IndexRuntime {
  return IndexRuntime.of(new SqliteIndexDriver(options));
}
