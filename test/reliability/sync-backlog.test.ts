/**
 * A record with a long backlog of versions not yet in the blob store: what a record updated many
 * times while the blob store was down, or by a writer that died before syncing, leaves behind.
 * The sync reads that backlog a page at a time (`forEachUnarchived`), so it must visit every
 * version across page boundaries, each exactly once.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sqliteIndexStore } from '../support/sqlite-index.js';
import type { Namespace, RecordWrite } from '../../core/contracts/index-store.js';
import { forEachUnarchived } from '../../core/engine/blob-sync.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';
import { RELIABILITY_COLLECTION, RELIABILITY_DB, reliabilityConfig } from './support/history-client.js';

const ns: Namespace = { dbName: RELIABILITY_DB, collection: RELIABILITY_COLLECTION };
const VERSIONS = 700;

/** Version `ov` of the record; the engine creates records at ov 0. */
function write(id: string, ov: number): RecordWrite {
  const at = new Date(Date.UTC(2026, 0, 1) + ov * 1000).toISOString();
  const body = JSON.stringify({ id, ov, at, data: { n: ov, note: `version ${ov}` } });
  return {
    id,
    expectedOv: ov === 0 ? null : ov - 1,
    head: { ov, deleted: false, createdAt: at, updatedAt: at, deletedAt: null, meta: {}, body, hash: `h${ov}` },
    version: { op: ov === 0 ? 'create' : 'update', at, actor: 'writer', reason: null, deleted: false, body, hash: `h${ov}` },
  };
}

/** Commits `VERSIONS` versions of one record straight to the index, as a writer that never synced would leave them. */
async function backlog(path: string, id: string): Promise<Map<number, string>> {
  const store = sqliteIndexStore({ path });
  const bodies = new Map<number, string>();
  try {
    for (let ov = 0; ov < VERSIONS; ov++) {
      const w = write(id, ov);
      const result = await store.commit(ns, { writes: [w] });
      if (!result.ok) throw new Error(`commit of ov ${ov} failed: ${JSON.stringify(result)}`);
      bodies.set(ov, w.version!.body);
    }
  } finally {
    await store.close();
  }
  return bodies;
}

describe('a long backlog of unarchived versions', () => {
  it('forEachUnarchived visits every version with a payload once, in order, across pages and archived gaps', async () => {
    const dir = tempDir('xronox-backlog-pages');
    try {
      const path = join(dir.path, 'index.db');
      const bodies = await backlog(path, 'r1');
      const store = sqliteIndexStore({ path });
      // Gaps right after the first version (ov 0, which must be visited) and on and next to page
      // boundaries (pages of 256).
      const archived = [1, 255, 256, 257, 512, 513, VERSIONS - 1];
      await store.completeSync(ns, 'r1', { archivedOvs: archived, seq: null });
      const seen: Array<[number, string]> = [];
      await forEachUnarchived(store, ns, 'r1', async (ov, body) => {
        seen.push([ov, body.toString('utf8')]);
      });
      await store.close();
      const expected = [...bodies].filter(([ov]) => !archived.includes(ov));
      expect(seen.length).toBe(VERSIONS - archived.length);
      expect(seen).toEqual(expected);
    } finally {
      dir.cleanup();
    }
  });

  it('one repair pass archives all of them, byte for byte, and writes the head', async () => {
    const dir = tempDir('xronox-backlog-repair');
    try {
      const config = reliabilityConfig(dir.path);
      const bodies = await backlog(config.dbConnections.local.sqlitePath, 'r1');
      const xronox = initXronox(config);
      try {
        const report = await xronox.repair();
        expect(report).toMatchObject({ synced: 1, failed: 0 });
      } finally {
        await xronox.shutdown();
      }

      const folder = join(dir.path, 'blobs', RELIABILITY_DB, 'versions', RELIABILITY_COLLECTION, 'r1');
      expect(readdirSync(folder).length).toBe(VERSIONS);
      for (const [ov, body] of bodies) expect(readFileSync(join(folder, `v${ov}.json`), 'utf8')).toBe(body);
      const current = join(dir.path, 'blobs', RELIABILITY_DB, 'records', RELIABILITY_COLLECTION, 'r1', 'current.json');
      expect(readFileSync(current, 'utf8')).toBe(bodies.get(VERSIONS - 1));

      const store = sqliteIndexStore({ path: config.dbConnections.local.sqlitePath });
      try {
        expect(await store.listUnarchived(ns, 'r1')).toEqual([]);
        expect(await store.getPendingSeq(ns, 'r1')).toBeNull();
      } finally {
        await store.close();
      }
    } finally {
      dir.cleanup();
    }
  });
});
