import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { sqliteIndexStore } from '../support/sqlite-index.js';
import type { RecordWrite } from '../../core/contracts/index-store.js';
import { tempDir } from '../support/temp.js';

/**
 * Files written by earlier schema versions open in place: the store creates what is new and
 * keeps every row. Each test turns a current file back into what the older version wrote.
 */
describe('SQLite index schema upgrades', () => {
  const ns = { dbName: 'db1', collection: 'orders' };

  const withFile = async (body: (path: string) => Promise<void>) => {
    const dir = tempDir('xronox-schema');
    try {
      await body(join(dir.path, 'index.db'));
    } finally {
      dir.cleanup();
    }
  };
  const rewind = (path: string, sql: string, version: number) => {
    const raw = new Database(path);
    raw.exec(sql);
    raw.pragma(`user_version = ${version}`);
    raw.close();
  };
  const schemaOf = (path: string) => {
    const raw = new Database(path, { readonly: true });
    try {
      const indexes = raw.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'versions'`).pluck().all() as string[];
      return { version: raw.pragma('user_version', { simple: true }) as number, indexes };
    } finally {
      raw.close();
    }
  };
  const write = (ov: number): RecordWrite => {
    const body = JSON.stringify({ ov });
    const at = new Date(Date.UTC(2026, 0, 1, 0, 0, ov)).toISOString();
    return {
      id: 'r1',
      expectedOv: ov === 1 ? null : ov - 1,
      head: { ov, deleted: false, createdAt: at, updatedAt: at, deletedAt: null, meta: { n: ov }, body, hash: `h${ov}` },
      version: { op: ov === 1 ? 'create' : 'update', at, actor: 'tester', reason: `step ${ov}`, deleted: false, body, hash: `h${ov}` },
    };
  };

  it('a file written before the versions_history index gains it on open, with the history it already held, and stays at version 6', async () => {
    await withFile(async (path) => {
      const first = sqliteIndexStore({ path });
      for (let ov = 1; ov <= 3; ov++) expect((await first.commit(ns, { writes: [write(ov)] })).ok).toBe(true);
      await first.close();
      rewind(path, 'DROP INDEX versions_history', 6);
      expect(schemaOf(path).indexes).not.toContain('versions_history');

      const upgraded = sqliteIndexStore({ path });
      expect((await upgraded.listHistory(ns, 'r1', { limit: 10 })).map((v) => [v.ov, v.reason])).toEqual([
        [3, 'step 3'],
        [2, 'step 2'],
        [1, 'step 1'],
      ]);
      expect((await upgraded.commit(ns, { writes: [write(4)] })).ok).toBe(true);
      expect((await upgraded.listHistory(ns, 'r1', { limit: 1 })).map((v) => v.ov)).toEqual([4]);
      await upgraded.close();
      expect(schemaOf(path)).toMatchObject({ version: 6, indexes: expect.arrayContaining(['versions_history']) });
    });
  });

  it('a version-4 file gains counter_windows too and keeps its counters', async () => {
    await withFile(async (path) => {
      const first = sqliteIndexStore({ path });
      await first.commit(ns, { writes: [], counters: [{ ...ns, deltas: { created: 3 } }] });
      await first.close();
      rewind(path, 'DROP TABLE counter_windows; DROP TABLE content_uploads; DROP INDEX versions_history', 4);

      const upgraded = sqliteIndexStore({ path });
      expect(await upgraded.getCounters(ns.dbName, ns.collection)).toEqual({ created: 3 });
      await upgraded.commit(ns, { writes: [], counters: [{ ...ns, deltas: { created: 1 }, windows: ['day:2026-01-01'] }] });
      expect(await upgraded.getCounterWindows(ns.dbName, ns.collection, { granularity: 'day' })).toEqual([{ window: 'day:2026-01-01', counts: { created: 1 } }]);
      await upgraded.close();
      expect(schemaOf(path).version).toBe(6);
    });
  });

  it('a version-5 file gains content_uploads and keeps everything else', async () => {
    await withFile(async (path) => {
      const first = sqliteIndexStore({ path });
      for (let ov = 1; ov <= 2; ov++) expect((await first.commit(ns, { writes: [write(ov)] })).ok).toBe(true);
      await first.close();
      rewind(path, 'DROP TABLE content_uploads', 5);

      const upgraded = sqliteIndexStore({ path });
      expect((await upgraded.listHistory(ns, 'r1', { limit: 10 })).map((v) => v.ov)).toEqual([2, 1]);
      const upload = { id: 'r1', bucket: 'b', key: 'content/orders/r1/f/x/blob.bin', token: 't' };
      expect(await upgraded.recordUploads(ns, [upload])).toEqual({ ok: true });
      expect((await upgraded.commit(ns, { writes: [{ ...write(3), uploads: [upload] }] })).ok).toBe(true);
      expect(await upgraded.listStaleUploads(ns.dbName, { olderThanMs: 0, limit: 10 })).toEqual([]);
      await upgraded.close();
      expect(schemaOf(path).version).toBe(6);
    });
  });

  it('a file of any other version is refused, untouched', async () => {
    await withFile(async (path) => {
      await sqliteIndexStore({ path }).close();
      for (const version of [3, 7]) {
        rewind(path, '', version);
        expect(() => sqliteIndexStore({ path })).toThrow(new RegExp(`schema ${version}, but this version needs schema 6`));
        expect(schemaOf(path).version).toBe(version);
      }
    });
  });
});
