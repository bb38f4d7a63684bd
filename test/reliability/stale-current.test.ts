/**
 * A regression test for what the crash trials found (XRONOX_RELIABILITY_SCALE=10): two processes
 * syncing one record, the older `current.json` put landing after the newer one, and the process
 * that would have refreshed it dying first, left `current.json` at an older version than the head
 * with nothing in the outbox, so no repair ever fixed it.
 *
 * Replayed deterministically in one process: instance A's sync of ov 1 stalls in its put of
 * `current.json`; B commits ov 2 and tries to sync it; A's put lands; A then "dies" (every later
 * put of A's never returns). With record sync leases, B cannot sync while A holds the record, so
 * A's stale put cannot land after B's; the record stays in the outbox, and once A's lease runs out
 * B's shutdown (which waits for records it found leased) or a fresh instance's repair writes ov 2.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FsBlobStore } from '../../core/adapters/fs/fs-blob-store.js';
import { sqliteIndexStore } from '../support/sqlite-index.js';
import { loadConfig } from '../../core/config/load.js';
import type { Collection } from '../../core/engine/collection.js';
import { type AdapterFactories, Xronox } from '../../core/xronox.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';
import { ordersRoute, RELIABILITY_COLLECTION, RELIABILITY_DB, reliabilityConfig } from './support/history-client.js';

describe('an older current.json put landing after a newer one, its writer then dying', () => {
  it('is repaired: current.json ends at the head, nothing left in the outbox', async () => {
    const dir = tempDir('xronox-repro-stale-current');
    const config = reliabilityConfig(dir.path);
    const currentJson = (id: string) => join(dir.path, 'blobs', RELIABILITY_DB, 'records', RELIABILITY_COLLECTION, id, 'current.json');

    // A's blob store: its first put of a current.json waits for `release`; every put after that never
    // returns (A is dead from then on).
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let aPutStarted!: () => void;
    const aPutIsWaiting = new Promise<void>((r) => (aPutStarted = r));
    let aRefreshStarted!: () => void;
    const aRefreshIsWaiting = new Promise<void>((r) => (aRefreshStarted = r));
    let gatedDone = false;
    const aFactories: AdapterFactories = {
      indexStore: (_ref, connection) => sqliteIndexStore({ path: connection.sqlitePath! }),
      blobStore: (_ref, _connection, basePath) => {
        const real = new FsBlobStore({ basePath: basePath! });
        return new Proxy(real, {
          get(target, property) {
            const value: unknown = Reflect.get(target, property, target);
            if (typeof value !== 'function') return value;
            if (property !== 'put') return value.bind(target);
            return async (bucket: string, key: string, body: Uint8Array, options?: object) => {
              if (gatedDone) {
                aRefreshStarted();
                return new Promise<never>(() => undefined);
              }
              if (key.endsWith('/current.json')) {
                aPutStarted();
                await gate;
                gatedDone = true;
              }
              return target.put(bucket, key, body, options);
            };
          },
        });
      },
    };

    const b = initXronox(config);
    const bOrders = b.with(ordersRoute) as Collection;
    const { id } = await bOrders.create({ v: 0 });
    await b.flush();

    const a = new Xronox(loadConfig(config), aFactories);
    const aOrders = a.with(ordersRoute) as Collection;
    await aOrders.update(id, { v: 1 }, 0); // A's sync of ov 1 starts and waits in its current.json put
    await aPutIsWaiting;
    await bOrders.update(id, { v: 2 }, 1); // B commits ov 2 ...
    await b.flush(); // ... and tries to sync it, but A holds the record's lease
    release(); // A's put of ov 1 lands now ...
    await aRefreshIsWaiting; // ... and A dies as it starts to put ov 2 again
    await b.shutdown();

    const c = initXronox(config);
    const repair = await c.repair();
    const head = await (c.with(ordersRoute) as Collection).getLatest(id);
    const current = JSON.parse(readFileSync(currentJson(id), 'utf8')) as { ov: number };
    await c.shutdown();
    dir.cleanup();
    // B's shutdown (waiting out A's lease) or C's repair wrote ov 2; nothing is left pending.
    expect({ failed: repair.failed, currentJsonOv: current.ov }).toEqual({ failed: 0, currentJsonOv: head?.ov });
    expect(head?.ov).toBe(2);
  }, 60_000);
});
