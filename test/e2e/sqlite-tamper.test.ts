import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { TamperError } from '../../core/errors.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';

/** Tampering with the embedded index itself, behind the engine's back. */
describe('verify on the embedded index', () => {
  const dir = tempDir('xronox-tamper');
  afterAll(() => dir.cleanup());

  it('catches a head edited in the database file (what getLatest serves), and a version row edited there', async () => {
    const x = initXronox({
      dbConnections: { local: { sqlitePath: `${dir.path}/x.sqlite` } },
      localStorage: { basePath: `${dir.path}/blobs`, enabled: true },
      databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }] } },
    });
    try {
      const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
      const a = await orders.create({ status: 'a', total: 10 });
      await orders.update(a.id, { status: 'b', total: 20 }, 0);
      const b = await orders.create({ status: 'x', total: 1 });
      await orders.update(b.id, { status: 'y', total: 2 }, 0);
      expect((await orders.verifyCollection()).ok).toBe(true);

      const db = new Database(`${dir.path}/x.sqlite`);
      const head = db.prepare('SELECT body FROM heads WHERE id = ?').get(a.id) as { body: string };
      const forged = JSON.parse(head.body);
      forged.data.total = 999_999;
      db.prepare('UPDATE heads SET body = ? WHERE id = ?').run(JSON.stringify(forged), a.id);
      // Not archived yet: the newest version's payload is still a row in the index.
      const row = db.prepare('SELECT body FROM versions WHERE id = ? AND ov = 0').get(b.id) as { body: string | null };
      if (row.body !== null) {
        const v = JSON.parse(row.body);
        v.data.total = 0;
        db.prepare('UPDATE versions SET body = ? WHERE id = ? AND ov = 0').run(JSON.stringify(v), b.id);
      }
      db.close();

      // The read refuses what it would otherwise serve.
      await expect(orders.getLatest(a.id)).rejects.toBeInstanceOf(TamperError);
      expect(await orders.verify(a.id)).toMatchObject({ ok: false, brokenAt: { ov: 1, reason: expect.stringMatching(/head/) } });
      const report = await orders.verifyCollection();
      expect(report.ok).toBe(false);
      expect(report.broken.map((r) => r.id).sort()).toEqual(row.body !== null ? [a.id, b.id].sort() : [a.id]);
    } finally {
      await x.shutdown();
    }
  });
});
