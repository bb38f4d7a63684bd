import { existsSync, unlinkSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../core/errors.js';
import type { Xronox } from '../../core/xronox.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';

describe('blob store outage on the embedded default', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('keeps acknowledging writes, serves reads from the index, and drains by itself once storage is back', async () => {
    const dir = tempDir('xronox-outage');
    cleanups.push(dir.cleanup);
    const blobs = `${dir.path}/blobs`;
    // A file where the blob folder should be: every put fails with a real filesystem error.
    writeFileSync(blobs, 'not a folder');
    const errors: unknown[] = [];
    const x: Xronox = initXronox(
      {
        dbConnections: { local: { sqlitePath: `${dir.path}/xronox.sqlite` } },
        databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }] } },
        localStorage: { basePath: blobs, enabled: true },
      },
      { onBackgroundError: (err) => errors.push(err) },
    );
    cleanups.push(() => x.shutdown());
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });

    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const { id } = await orders.create({ i });
      await orders.update(id, { i, updated: true }, 0);
      ids.push(id);
    }
    const report = await x.flush();
    expect(report.failed).toBeGreaterThan(0);
    expect(errors[0]).toBeInstanceOf(StorageError);
    expect(errors[0]).toMatchObject({ adapter: 'fs', operation: 'put' });
    // Nothing acknowledged is lost while the blob store is down: the index holds every version.
    for (const id of ids) {
      expect((await orders.getLatest(id))?.data).toEqual({ i: ids.indexOf(id), updated: true });
      expect((await orders.getVersion(id, 0))?.data).toEqual({ i: ids.indexOf(id) });
      expect((await orders.history(id)).items.every((h) => !h.archived)).toBe(true);
    }

    unlinkSync(blobs);
    // No repair() call: the sync's own backoff retries the outbox.
    const deadline = Date.now() + 30_000;
    const archived = async () => (await Promise.all(ids.map((id) => orders.history(id)))).every((h) => h.items.every((v) => v.archived));
    while (!(await archived())) {
      if (Date.now() > deadline) throw new Error('the outbox did not drain within 30 s of storage coming back');
      await new Promise((r) => setTimeout(r, 100));
    }
    await x.flush();
    for (const id of ids) {
      expect(existsSync(`${blobs}/rt_acme/versions/orders/${id}/v0.json`)).toBe(true);
      expect(existsSync(`${blobs}/rt_acme/versions/orders/${id}/v1.json`)).toBe(true);
      expect(existsSync(`${blobs}/rt_acme/records/orders/${id}/current.json`)).toBe(true);
      expect((await orders.getVersion(id, 0))?.data).toEqual({ i: ids.indexOf(id) });
    }
    expect((await x.repair()).synced).toBe(0);
  });
});

describe('dead letters (fallback.maxRetries)', () => {
  it('moves records whose sync keeps failing to the dead-letter list, keeps their data, and retries them on demand', async () => {
    const dir = tempDir('xronox-dead');
    const blobs = `${dir.path}/blobs`;
    writeFileSync(blobs, 'not a folder');
    const x = initXronox(
      {
        dbConnections: { local: { sqlitePath: `${dir.path}/xronox.sqlite` } },
        databases: {
          runtime: {
            tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }],
            dynamicTenants: { enabled: true, dbConnRef: 'local', dbNameTemplate: 'dyn_{tenantId}' },
          },
        },
        localStorage: { basePath: blobs, enabled: true },
        fallback: { enabled: true, maxRetries: 2, retryDelayMs: 10, maxDelayMs: 40 },
      },
      { onBackgroundError: () => undefined },
    );
    try {
      const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push((await orders.create({ i })).id);
      // A tenant that exists only through dynamicTenants, in no config list.
      const newco = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'newco', collection: 'orders' });
      const dynamicId = (await newco.create({ i: 'dyn' })).id;
      const deadline = Date.now() + 20_000;
      while ((await x.admin.deadLetters()).length < ids.length + 1) {
        if (Date.now() > deadline) throw new Error('records did not reach the dead-letter list');
        await new Promise((r) => setTimeout(r, 20));
      }
      const dead = await x.admin.deadLetters();
      expect(dead.map((d) => d.id).sort()).toEqual([...ids, dynamicId].sort());
      expect(dead.find((d) => d.id === dynamicId)?.dbName).toBe('dyn_newco');
      expect(dead[0]).toMatchObject({ dbName: 'rt_acme', collection: 'orders', reason: expect.stringMatching(/fs store failed/) });
      // Dead letters are not retried by themselves, and their data is intact in the index.
      expect((await x.repair()).synced).toBe(0);
      for (const [i, id] of ids.entries()) expect((await orders.getVersion(id, 0))?.data).toEqual({ i });
      unlinkSync(blobs);
      const report = await x.admin.retryDeadLetters();
      expect(report).toMatchObject({ synced: ids.length + 1, failed: 0 });
      expect(await x.admin.deadLetters()).toEqual([]);
      for (const id of ids) expect(existsSync(`${blobs}/rt_acme/versions/orders/${id}/v0.json`)).toBe(true);
      expect(existsSync(`${blobs}/dyn_newco/versions/orders/${dynamicId}/v0.json`)).toBe(true);
    } finally {
      await x.shutdown();
      dir.cleanup();
    }
  });
});
