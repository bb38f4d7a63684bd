/**
 * A data folder Xronox cannot use (issue 15, item 4): the local stores fail at once with the path
 * and the reason, `xronox.admin.checkStorage()` finds it before any request does, and `shutdown()`
 * is bounded however a store hangs. (A FIFO where an object should be: `ports-sqlite-fs.test.ts`.)
 */
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../core/adapters/fs/fs-blob-store.js';
import { sqliteIndexStore } from '../support/sqlite-index.js';
import { loadConfig } from '../../core/config/load.js';
import { type AdapterFactories, Xronox } from '../../core/xronox.js';
import { StorageError } from '../../core/errors.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';
import { runTsx } from '../support/tsx-process.js';

const OPEN_STORES = new URL('./fixtures/open-stores.ts', import.meta.url).pathname;
/** Only a hang detector: a process still running after this long is killed and the test fails. */
const HUNG_AFTER_MS = 30_000;

interface Attempt {
  what: string;
  ok: boolean;
  code: string | null;
  message: string;
}

/** Runs the fixture on `folder`; `signal` is 'SIGKILL' when it hung and had to be killed. */
async function openStores(folder: string): Promise<{ signal: NodeJS.Signals | null; attempts: Attempt[]; stderr: string }> {
  const run = await runTsx(OPEN_STORES, [folder], { killAfterMs: HUNG_AFTER_MS });
  return { signal: run.signal, attempts: run.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Attempt), stderr: run.stderr };
}

function config(dir: string, overrides: { sqlitePath?: string; basePath?: string } = {}) {
  return {
    dbConnections: { local: { sqlitePath: overrides.sqlitePath ?? join(dir, 'xronox.sqlite') } },
    localStorage: { basePath: overrides.basePath ?? join(dir, 'blobs'), enabled: true },
    databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }] } },
  };
}

const route = { databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' } as const;

describe('a data folder that cannot be used', () => {
  const dir = tempDir('xronox-data-folder');
  afterAll(() => dir.cleanup());

  it('makes the SQLite stores and the blob folder fail at once, naming the path and the reason: a file in the way, /proc, /sys', async () => {
    const file = join(dir.path, 'a-file');
    writeFileSync(file, 'not a folder');
    const cases = [
      // Node's own recursive mkdir retries ENOENT here forever, at full CPU.
      { folder: `/proc/xronox-${process.pid}/data`, code: 'ENOENT' },
      { folder: `/sys/xronox-${process.pid}/data`, code: 'EPERM' },
      { folder: join(file, 'data'), code: 'ENOTDIR' },
    ];
    for (const c of cases) {
      const run = await openStores(c.folder);
      expect({ folder: c.folder, signal: run.signal, stderr: run.stderr }).toEqual({ folder: c.folder, signal: null, stderr: '' });
      expect(run.attempts.map((a) => a.what)).toEqual(['index store', 'document store', 'blob put']);
      for (const a of run.attempts) {
        expect({ folder: c.folder, what: a.what, ok: a.ok, code: a.code }).toEqual({ folder: c.folder, what: a.what, ok: false, code: c.code });
        expect(a.message).toContain(c.code);
      }
      const [index, documents, put] = run.attempts;
      for (const a of [index!, documents!]) expect(a.message).toContain(`Cannot open the SQLite file ${join(c.folder, 'x.sqlite')}: its folder cannot be made`);
      expect(put!.message).toMatch(new RegExp(`mkdir '${c.code === 'ENOTDIR' ? file : `/(proc|sys)/xronox-${process.pid}`}`));
    }
  }, 240_000);

  it('admin.checkStorage() refuses a folder or file it cannot use, with the path and the reason, and on a good folder leaves nothing behind', async () => {
    const blocked = join(dir.path, 'blocked');
    writeFileSync(blocked, 'not a folder');
    const sqliteIsFolder = join(dir.path, 'sqlite-folder');
    mkdirSync(join(sqliteIsFolder, 'xronox.sqlite'), { recursive: true });
    const notSqlite = join(dir.path, 'not-sqlite');
    mkdirSync(notSqlite);
    writeFileSync(join(notSqlite, 'xronox.sqlite'), 'these bytes are not an SQLite database file at all');
    const blobsIsFile = join(dir.path, 'blobs-file');
    mkdirSync(blobsIsFile);
    writeFileSync(join(blobsIsFile, 'blobs'), 'not a folder');
    const cases = [
      { config: config(join(blocked, 'data')), message: `Cannot open the SQLite file ${join(blocked, 'data', 'xronox.sqlite')}: its folder cannot be made (ENOTDIR` },
      { config: config(sqliteIsFolder), message: `Cannot open the SQLite file ${join(sqliteIsFolder, 'xronox.sqlite')}: a folder is at that path` },
      { config: config(notSqlite), message: `Cannot open the SQLite file ${join(notSqlite, 'xronox.sqlite')}: SQLITE_NOTADB` },
      { config: config(blobsIsFile), message: `The blob folder ${join(blobsIsFile, 'blobs', 'rt_acme')} cannot be written: ENOTDIR` },
    ];
    for (const c of cases) {
      const x = initXronox(c.config, { onBackgroundError: () => undefined });
      try {
        const failure = await x.admin.checkStorage().then(
          () => null,
          (err: unknown) => err,
        );
        expect(failure).toBeInstanceOf(StorageError);
        expect((failure as Error).message).toContain(c.message);
      } finally {
        await x.shutdown();
      }
    }
    // The not-an-SQLite file was refused, not rewritten.
    expect(statSync(join(notSqlite, 'xronox.sqlite')).size).toBe('these bytes are not an SQLite database file at all'.length);

    const good = join(dir.path, 'good');
    const x = initXronox(config(good));
    try {
      await x.admin.checkStorage();
    } finally {
      await x.shutdown();
    }
    expect(existsSync(join(good, 'xronox.sqlite'))).toBe(true);
    const leftovers = (folder: string): string[] => readdirSync(folder, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? leftovers(join(folder, e.name)) : [join(folder, e.name)]));
    expect(leftovers(join(good, 'blobs'))).toEqual([]);
  });

  it('shutdown() is bounded when a blob put never answers; the write stays in the outbox and the next repair syncs it', async () => {
    const folder = join(dir.path, 'hang');
    const cfg = config(folder);
    let hang = true;
    const factories: AdapterFactories = {
      indexStore: (_ref, connection) => sqliteIndexStore({ path: connection.sqlitePath! }),
      blobStore: (_ref, _connection, basePath) => {
        const store = new FsBlobStore({ basePath: basePath! });
        const put = store.put.bind(store);
        store.put = (...args) => (hang ? new Promise<never>(() => undefined) : put(...args));
        return store;
      },
    };
    const errors: unknown[] = [];
    const x = new Xronox(loadConfig(cfg), factories, { onBackgroundError: (err) => errors.push(err) });
    const { id } = await x.with(route).create({ total: 1 });
    await x.shutdown({ timeoutMs: 300 });
    expect(x.closed).toBe(true);
    expect(errors.map((e) => (e as Error).message)).toEqual([expect.stringMatching(/did not finish within 300 ms of shutdown; 1 record\(s\) stay in the outbox/)]);

    hang = false;
    const y = initXronox(cfg);
    try {
      expect(await y.repair()).toEqual({ synced: 1, failed: 0, deadLettered: 0, left: 0, uploads: { deleted: 0, kept: 0, failed: 0 } });
      expect(existsSync(join(folder, 'blobs', 'rt_acme', 'records', 'orders', id, 'current.json'))).toBe(true);
    } finally {
      await y.shutdown();
    }
  });
});
