/**
 * Record sync leases (see `core/engine/blob-sync.ts`), each test the replay of a problem a review
 * of the first version of the leases reproduced. Two engine instances in this process stand for
 * two processes sharing a SQLite file and a blob folder; their stores are the real ones, wrapped
 * only to slow, stall or hold a call at a chosen point.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../core/adapters/fs/fs-blob-store.js';
import { sqliteIndexStore } from '../support/sqlite-index.js';
import { loadConfig } from '../../core/config/load.js';
import type { Collection } from '../../core/engine/collection.js';
import { type AdapterFactories, Xronox } from '../../core/xronox.js';
import { runJob } from '../../core/jobs/run.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';
import { ordersRoute, RELIABILITY_COLLECTION, RELIABILITY_DB, reliabilityConfig } from './support/history-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A proxy of `target` whose method `name` is replaced by `wrap(original)`. */
function intercept<T extends object>(target: T, name: string, wrap: (original: (...args: never[]) => Promise<unknown>) => (...args: never[]) => Promise<unknown>): T {
  return new Proxy(target, {
    get(t, property) {
      const value: unknown = Reflect.get(t, property, t);
      if (typeof value !== 'function') return value;
      const bound = (value as (...args: never[]) => Promise<unknown>).bind(t);
      return property === name ? wrap(bound) : bound;
    },
  });
}

function setup(prefix: string) {
  const dir = tempDir(prefix);
  const config = reliabilityConfig(dir.path);
  const currentOv = (id: string) => (JSON.parse(readFileSync(join(dir.path, 'blobs', RELIABILITY_DB, 'records', RELIABILITY_COLLECTION, id, 'current.json'), 'utf8')) as { ov: number }).ov;
  const pending = async () => {
    const index = sqliteIndexStore({ path: join(dir.path, 'xronox.sqlite') });
    try {
      return (await index.listPendingSync(RELIABILITY_DB, { limit: 10 })).length;
    } finally {
      await index.close();
    }
  };
  return { dir, config, currentOv, pending };
}

describe('record sync leases', () => {
  it('a pass of many puts renews its lease before each put: a stale current.json cannot land after a newer sync', async () => {
    const { dir, config, currentOv, pending } = setup('xronox-lease-midpass');
    // A's blob store: refuses puts while A builds a backlog, then takes 150 ms per put, and dies
    // (never answers again) right after its first current.json lands.
    let mode: 'refuse' | 'slow' | 'dead' = 'refuse';
    let currentPutStarted!: () => void;
    const currentPut = new Promise<void>((r) => (currentPutStarted = r));
    const aFactories: AdapterFactories = {
      indexStore: (_ref, connection) => sqliteIndexStore({ path: connection.sqlitePath! }),
      blobStore: (_ref, _connection, basePath) =>
        intercept(new FsBlobStore({ basePath: basePath! }), 'put', (put) => async (...args: never[]) => {
          if (mode === 'refuse') throw new Error('outage');
          if (mode === 'dead') return new Promise<never>(() => undefined);
          const key = String(args[1]);
          if (key.endsWith('/current.json')) {
            currentPutStarted();
            await sleep(300);
            await put(...args);
            mode = 'dead';
            return;
          }
          await sleep(150);
          return put(...args);
        }),
    };
    const b = initXronox(config);
    const bOrders = b.with(ordersRoute) as Collection;
    const { id } = await bOrders.create({ v: 0 });
    await b.flush();
    const a = new Xronox(loadConfig(config), aFactories, { onBackgroundError: () => undefined });
    const aOrders = a.with(ordersRoute) as Collection;
    let ov = 0;
    // 45 versions waiting for A's sync: one pass puts them all (6.75 s), longer than one lease (6 s).
    for (; ov < 45; ov++) await aOrders.update(id, { v: ov + 1 }, ov);
    await a.flush();
    mode = 'slow';
    void a.repair().catch(() => undefined);
    await currentPut;
    // While A's current.json put is in flight, B writes a newer version and tries to sync it.
    await bOrders.update(id, { v: ov + 1 }, ov);
    ov++;
    await b.shutdown();
    const c = initXronox(config);
    const repair = await c.repair();
    const head = await (c.with(ordersRoute) as Collection).getLatest(id);
    await c.shutdown();
    expect({ failed: repair.failed, currentJsonOv: currentOv(id), pending: await pending() }).toEqual({ failed: 0, currentJsonOv: head!.ov, pending: 0 });
    expect(head!.ov).toBe(ov);
    dir.cleanup();
  }, 60_000);

  it('a write that finds its record leased is synced, even if its writer shuts down before the holder lets go', async () => {
    const { dir, config, currentOv, pending } = setup('xronox-lease-wakeup');
    // A's index store holds its releaseLock of the record's sync lease until `release`.
    let armed = false;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let holding!: () => void;
    const held = new Promise<void>((r) => (holding = r));
    const aFactories: AdapterFactories = {
      indexStore: (_ref, connection) =>
        intercept(sqliteIndexStore({ path: connection.sqlitePath! }), 'releaseLock', (releaseLock) => async (...args: never[]) => {
          if (armed && String(args[1]).startsWith('sync:')) {
            holding();
            await gate;
          }
          return releaseLock(...args);
        }),
      blobStore: (_ref, _connection, basePath) => new FsBlobStore({ basePath: basePath! }),
    };
    const b = initXronox(config);
    const bOrders = b.with(ordersRoute) as Collection;
    const { id } = await bOrders.create({ v: 0 });
    await b.flush();
    const a = new Xronox(loadConfig(config), aFactories);
    armed = true;
    await (a.with(ordersRoute) as Collection).update(id, { v: 1 }, 0);
    await held; // A synced ov 1 and cleared the outbox; it has not let go of the record yet
    await bOrders.update(id, { v: 2 }, 1); // B's own sync finds the record leased
    await b.shutdown(); // B waits for the record (A's lease runs out) and writes it
    release();
    await a.shutdown();
    expect({ currentJsonOv: currentOv(id), pending: await pending() }).toEqual({ currentJsonOv: 2, pending: 0 });
    dir.cleanup();
  }, 60_000);

  it('the scheduled archive sweep writes the objects of records whose sync was cut off (as a frozen Lambda container leaves them)', async () => {
    const { dir, config, currentOv, pending } = setup('xronox-sweep-outbox');
    // A process whose blob store refuses every put: its writes commit, their syncs fail, and it stops.
    const refusing: AdapterFactories = {
      indexStore: (_ref, connection) => sqliteIndexStore({ path: connection.sqlitePath! }),
      blobStore: (_ref, _connection, basePath) =>
        intercept(new FsBlobStore({ basePath: basePath! }), 'put', () => async () => {
          throw new Error('gone');
        }),
    };
    const a = new Xronox(loadConfig(config), refusing, { onBackgroundError: () => undefined });
    const orders = a.with(ordersRoute) as Collection;
    const { id } = await orders.create({ v: 0 });
    await orders.update(id, { v: 1 }, 0);
    await a.shutdown();
    expect(await pending()).toBe(1);
    const b = initXronox(config);
    const report = await runJob(b, 'archive', { log: null });
    await b.shutdown();
    expect(report).toMatchObject({ complete: true, counts: { outboxSynced: 1 } });
    expect({ currentJsonOv: currentOv(id), pending: await pending() }).toEqual({ currentJsonOv: 1, pending: 0 });
    dir.cleanup();
  }, 60_000);

  it('retention completes when another process holds the lease of a log it removes; the removal is left in the outbox', async () => {
    const dir = tempDir('xronox-lease-retention');
    const sqlitePath = join(dir.path, 'xronox.sqlite');
    const config = {
      dbConnections: { local: { sqlitePath } },
      localStorage: { basePath: join(dir.path, 'blobs'), enabled: true },
      databases: { logs: { genericDatabase: { dbConnRef: 'local', dbName: 'lg' } } },
      jobs: { leaseSeconds: 2, retention: { logsDays: 1 } },
    };
    const x = initXronox(config);
    const logs = x.with({ databaseType: 'logs', tier: 'generic', collection: 'activity' });
    const first = await logs.create({ a: 1 });
    await logs.create({ a: 2 });
    await x.flush();
    // Another live process (this one, under another owner) holds the first log's sync lease.
    const other = sqliteIndexStore({ path: sqlitePath });
    expect(await other.acquireLock({ dbName: 'lg', collection: 'activity' }, `sync:${first.id}`, 'sync:other', 60_000)).toBe(true);
    const report = await runJob(x, 'retention', { log: null, now: new Date(Date.now() + 3 * 86_400_000) });
    expect(report).toMatchObject({ complete: true, failures: [], counts: { expiredLogs: 2 } });
    expect((await other.listPendingSync('lg', { limit: 10 })).map((p) => p.id)).toEqual([first.id]);
    await other.releaseLock({ dbName: 'lg', collection: 'activity' }, `sync:${first.id}`, 'sync:other');
    await other.close();
    expect(await x.repair()).toMatchObject({ failed: 0 });
    await x.shutdown();
    dir.cleanup();
  }, 60_000);
});
