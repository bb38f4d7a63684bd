/**
 * The SQLite index-store conformance suite on this runtime's SQLite driver (better-sqlite3 on
 * Node, bun:sqlite on Bun, node:sqlite on Deno). Run by test/edge/runtimes.test.ts under each
 * runtime, as a real process of that runtime.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultSqliteDriver } from '../../../core/adapters/sqlite/sqlite-driver.js';
import { sqliteIndexStore } from '../../support/sqlite-index.js';
import { tempDir } from '../../support/temp.js';
import { indexStoreConformance } from '../../conformance/index-store.suite.js';

indexStoreConformance(`sqlite (${process.env.XRONOX_SQLITE_DRIVER_LABEL ?? 'runtime default'})`, async () => {
  const dir = tempDir('xronox-index');
  const store = sqliteIndexStore({ path: join(dir.path, 'index.db') });
  return { store, cleanup: async () => { await store.close(); dir.cleanup(); } };
});

describe('the SQLite driver of this runtime', () => {
  it('is the one the runner expects (bun:sqlite on Bun, node:sqlite on Deno)', () => {
    expect(defaultSqliteDriver()).toBe(process.env.XRONOX_EXPECT_SQLITE_DRIVER ?? 'better-sqlite3');
  });
});
