/**
 * The tamper suite on the embedded default (SQLite index, filesystem objects): each way of
 * editing stored history behind the engine's back is found by `verify` and, where a read touches
 * it, refused by the read with a `TamperError` rather than served.
 */
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { StorageError, TamperError } from '../../core/errors.js';
import { legacyVersionHash } from '../../core/engine/hash-chain.js';
import { initXronox, type Xronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';

const dirs: Array<{ cleanup: () => void }> = [];
afterAll(() => dirs.forEach((d) => d.cleanup()));

/** Every file under `root` whose path ends with `suffix`. */
function findFiles(root: string, suffix: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(root)) {
    const path = join(root, name);
    if (statSync(path).isDirectory()) out.push(...findFiles(path, suffix));
    else if (path.endsWith(suffix)) out.push(path);
  }
  return out;
}

/** A record with five versions (ov 0..4), archived to version files, and handles on its storage. */
async function world(integrity?: { digestKey: string; digestKeyId?: string }) {
  const dir = tempDir('xronox-tamper');
  dirs.push(dir);
  const sqlitePath = join(dir.path, 'x.sqlite');
  const x: Xronox = initXronox({
    dbConnections: { local: { sqlitePath } },
    localStorage: { basePath: join(dir.path, 'blobs'), enabled: true },
    databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }] } },
    ...(integrity ? { integrity } : {}),
  });
  const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
  const { id } = await orders.create({ status: 's0', total: 0 }, 'alice', 'opened');
  const times: string[] = [(await orders.getLatest(id))!.updatedAt];
  for (let i = 1; i <= 4; i++) {
    await orders.update(id, { status: `s${i}`, total: i * 10 }, i - 1, 'alice', `step ${i}`);
    times.push((await orders.getLatest(id))!.updatedAt);
  }
  const other = (await orders.create({ status: 'fine', total: 1 }, 'bob')).id;
  await x.flush();
  expect(await orders.verifyCollection()).toMatchObject({ ok: true, records: 2, versions: 6 });
  const versionFile = (ov: number) => {
    const [file] = findFiles(join(dir.path, 'blobs'), join('orders', id, `v${ov}.json`));
    if (!file) throw new Error(`no file for version ${ov}`);
    return file;
  };
  const currentFile = () => findFiles(join(dir.path, 'blobs'), join('orders', id, 'current.json'))[0]!;
  const sql = <R>(run: (db: Database.Database) => R): R => {
    const db = new Database(sqlitePath);
    try {
      return run(db);
    } finally {
      db.close();
    }
  };
  const editJson = (file: string, edit: (doc: Record<string, unknown> & { data: Record<string, unknown> }) => void) => {
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    edit(doc);
    writeFileSync(file, JSON.stringify(doc));
  };
  return { x, orders, id, other, times, versionFile, currentFile, sql, editJson, blobs: join(dir.path, 'blobs'), dir: dir.path };
}

type World = Awaited<ReturnType<typeof world>>;

async function expectFinding(w: World, ov: number, reason?: RegExp) {
  const report = await w.orders.verify(w.id);
  expect(report).toMatchObject({ ok: false, brokenAt: { ov, ...(reason ? { reason: expect.stringMatching(reason) } : {}) } });
  const all = await w.orders.verifyCollection();
  expect(all.ok).toBe(false);
  // Only the tampered record is reported; the other still verifies.
  expect(all.broken.map((b) => b.id)).toEqual([w.id]);
  expect(await w.orders.verify(w.other)).toMatchObject({ ok: true });
}

describe('tamper suite on the embedded default (SQLite + filesystem)', () => {
  describe('a version file edited', () => {
    const edits: Array<[string, (doc: Record<string, unknown> & { data: Record<string, unknown> }) => void]> = [
      ['data', (d) => (d.data.total = 1)],
      ['actor', (d) => (d.actor = 'mallory')],
      ['reason', (d) => (d.reason = 'nothing to see')],
      ['time', (d) => (d.at = new Date(Date.parse(d.at as string) - 1000).toISOString())],
    ];
    for (const [what, edit] of edits) {
      it(`${what}: verify finds it, getVersion and getAsOf refuse it`, async () => {
        const w = await world();
        try {
          w.editJson(w.versionFile(2), edit);
          await expectFinding(w, 2);
          await expect(w.orders.getVersion(w.id, 2)).rejects.toBeInstanceOf(TamperError);
          await expect(w.orders.getAsOf(w.id, w.times[2]!)).rejects.toBeInstanceOf(TamperError);
          // Untouched versions are still served.
          expect((await w.orders.getVersion(w.id, 3))?.data).toEqual({ status: 's3', total: 30 });
          expect((await w.orders.getLatest(w.id))?.ov).toBe(4);
        } finally {
          await w.x.shutdown();
        }
      });
    }
  });

  describe('an index column edited', () => {
    const edits: Array<[string, string, unknown[]]> = [
      ['actor', 'UPDATE versions SET actor = ?, actor_id = ? WHERE id = ? AND ov = 2', [JSON.stringify('mallory'), 'mallory']],
      ['reason', 'UPDATE versions SET reason = ? WHERE id = ? AND ov = 2', ['nothing to see']],
      ['time', "UPDATE versions SET at = ? WHERE id = ? AND ov = 2", ['2001-01-01T00:00:00.000Z']],
      ['cv', 'UPDATE versions SET cv = cv + 100 WHERE id = ? AND ov = 2', []],
      ['deleted', 'UPDATE versions SET deleted = 1 WHERE id = ? AND ov = 2', []],
    ];
    for (const [what, statement, values] of edits) {
      it(`${what}: verify finds it, history, getVersion and changesBy refuse it`, async () => {
        const w = await world();
        try {
          w.sql((db) => expect(db.prepare(statement).run(...values, w.id).changes).toBe(1));
          await expectFinding(w, 2);
          await expect(w.orders.history(w.id)).rejects.toBeInstanceOf(TamperError);
          await expect(w.orders.getVersion(w.id, 2)).rejects.toBeInstanceOf(TamperError);
          await expect(w.orders.changesBy(what === 'actor' ? 'mallory' : 'alice')).rejects.toBeInstanceOf(TamperError);
          // History above the edit is still served.
          expect((await w.orders.history(w.id, { limit: 2 })).items.map((i) => i.ov)).toEqual([4, 3]);
        } finally {
          await w.x.shutdown();
        }
      });
    }

    it('time moved back: getAsOf at the forged time refuses rather than answering from it', async () => {
      const w = await world();
      try {
        // Version 3 claims to be as old as version 0: as of that time, it would be the answer.
        w.sql((db) => db.prepare('UPDATE versions SET at = ? WHERE id = ? AND ov = 3').run(w.times[0]!, w.id));
        await expectFinding(w, 3);
        await expect(w.orders.getAsOf(w.id, w.times[0]!)).rejects.toBeInstanceOf(TamperError);
      } finally {
        await w.x.shutdown();
      }
    });
  });

  /** Edits the head's body (and with `clearHash`, empties its hash column too, so nothing would seem to check it). */
  const editHeadBody = (w: Awaited<ReturnType<typeof world>>, clearHash: boolean) =>
    w.sql((db) => {
      const { body } = db.prepare('SELECT body FROM heads WHERE id = ?').get(w.id) as { body: string };
      const doc = JSON.parse(body);
      doc.data.total = 999_999;
      db.prepare(`UPDATE heads SET body = ?${clearHash ? ', hash = NULL' : ''} WHERE id = ?`).run(JSON.stringify(doc), w.id);
    });

  it('the head body edited: verify finds it, getLatest, listByMeta and updates refuse it', async () => {
    const w = await world();
    try {
      editHeadBody(w, false);
      await expectFinding(w, 4, /head/);
      await expect(w.orders.getLatest(w.id)).rejects.toBeInstanceOf(TamperError);
      await expect(w.orders.listByMeta({ limit: 10 })).rejects.toBeInstanceOf(TamperError);
      // No write builds on (and so launders) the forged state.
      await expect(w.orders.update(w.id, { status: 'next' }, 4)).rejects.toBeInstanceOf(TamperError);
      expect((await w.orders.getLatest(w.other))?.data).toEqual({ status: 'fine', total: 1 });
    } finally {
      await w.x.shutdown();
    }
  });

  it('the head body edited and its hash set to NULL (so nothing would check it): getLatest and updates refuse it', async () => {
    const w = await world();
    try {
      editHeadBody(w, true);
      await expectFinding(w, 4, /head/);
      await expect(w.orders.getLatest(w.id)).rejects.toThrow(/carries no hash/);
      await expect(w.orders.update(w.id, { status: 'next' }, 4)).rejects.toBeInstanceOf(TamperError);
    } finally {
      await w.x.shutdown();
    }
  });

  it('the head columns edited (cv, time): getLatest refuses', async () => {
    const w = await world();
    try {
      w.sql((db) => db.prepare('UPDATE heads SET cv = cv + 7 WHERE id = ?').run(w.id));
      await expectFinding(w, 4, /head/);
      await expect(w.orders.getLatest(w.id)).rejects.toBeInstanceOf(TamperError);
    } finally {
      await w.x.shutdown();
    }
  });

  it('current.json edited: verify finds it', async () => {
    const w = await world();
    try {
      w.editJson(w.currentFile(), (d) => (d.data.total = 5));
      await expectFinding(w, 4, /current\.json/);
    } finally {
      await w.x.shutdown();
    }
  });

  it('current.json replaced by an older version is accepted only as that exact version', async () => {
    const w = await world();
    try {
      writeFileSync(w.currentFile(), readFileSync(w.versionFile(3)));
      // A lagging sync looks exactly like this, so it is not a finding…
      expect(await w.orders.verify(w.id)).toMatchObject({ ok: true });
      // …but an older version with any change is.
      w.editJson(w.currentFile(), (d) => (d.reason = 'x'));
      await expectFinding(w, 3, /current\.json/);
    } finally {
      await w.x.shutdown();
    }
  });

  it('a version file deleted: verify finds it, getVersion refuses', async () => {
    const w = await world();
    try {
      rmSync(w.versionFile(2));
      await expectFinding(w, 2, /missing/);
      await expect(w.orders.getVersion(w.id, 2)).rejects.toBeInstanceOf(StorageError);
    } finally {
      await w.x.shutdown();
    }
  });

  it('an index row deleted: verify finds the gap, getAsOf refuses to answer from the version before it', async () => {
    const w = await world();
    try {
      w.sql((db) => expect(db.prepare('DELETE FROM versions WHERE id = ? AND ov = 2').run(w.id).changes).toBe(1));
      await expectFinding(w, 2, /missing/);
      await expect(w.orders.getAsOf(w.id, w.times[2]!)).rejects.toBeInstanceOf(TamperError);
      await expect(w.orders.getAsOf(w.id, w.times[1]!)).rejects.toBeInstanceOf(TamperError);
      expect((await w.orders.getAsOf(w.id, w.times[3]!))?.ov).toBe(3);
    } finally {
      await w.x.shutdown();
    }
  });

  it('the newest index row deleted: verify finds the head pointing past it', async () => {
    const w = await world();
    try {
      w.sql((db) => db.prepare('DELETE FROM versions WHERE id = ? AND ov = 4').run(w.id));
      await expectFinding(w, 3);
      await expect(w.orders.getAsOf(w.id, w.times[4]!)).rejects.toBeInstanceOf(TamperError);
    } finally {
      await w.x.shutdown();
    }
  });

  it('two version files swapped: verify finds it, getVersion refuses both', async () => {
    const w = await world();
    try {
      const one = readFileSync(w.versionFile(1));
      writeFileSync(w.versionFile(1), readFileSync(w.versionFile(2)));
      writeFileSync(w.versionFile(2), one);
      await expectFinding(w, 1);
      await expect(w.orders.getVersion(w.id, 1)).rejects.toBeInstanceOf(TamperError);
      await expect(w.orders.getVersion(w.id, 2)).rejects.toBeInstanceOf(TamperError);
    } finally {
      await w.x.shutdown();
    }
  });

  it('two index rows swapped (their ov, cv and hash exchanged): verify finds it, history refuses', async () => {
    const w = await world();
    try {
      w.sql((db) => {
        db.prepare('UPDATE versions SET ov = -1 WHERE id = ? AND ov = 1').run(w.id);
        db.prepare('UPDATE versions SET ov = 1 WHERE id = ? AND ov = 2').run(w.id);
        db.prepare('UPDATE versions SET ov = 2 WHERE id = ? AND ov = -1').run(w.id);
      });
      await expectFinding(w, 1);
      await expect(w.orders.history(w.id)).rejects.toBeInstanceOf(TamperError);
      await expect(w.orders.getVersion(w.id, 1)).rejects.toBeInstanceOf(TamperError);
    } finally {
      await w.x.shutdown();
    }
  });

  it('query as of a time refuses a tampered version it would return', async () => {
    const w = await world();
    try {
      w.editJson(w.versionFile(4), (d) => (d.data.total = 0));
      await expect(w.orders.query({}, { at: w.times[4]! })).rejects.toBeInstanceOf(TamperError);
      await expectFinding(w, 4);
    } finally {
      await w.x.shutdown();
    }
  });
});

describe('data written with the format-1 hash (before every column was covered)', () => {
  /** Rewrites a record's chain as an older Xronox wrote it: format-1 hashes on every version and the head. */
  function toLegacy(w: World): string[] {
    const hashes: string[] = [];
    w.sql((db) => {
      let previous: string | null = null;
      for (let ov = 0; ov <= 4; ov++) {
        const doc = JSON.parse(readFileSync(w.versionFile(ov), 'utf8'));
        const hash = legacyVersionHash(previous, doc);
        db.prepare('UPDATE versions SET hash = ? WHERE id = ? AND ov = ?').run(hash, w.id, ov);
        hashes.push(hash);
        previous = hash;
      }
      db.prepare('UPDATE heads SET hash = ? WHERE id = ?').run(previous, w.id);
    });
    return hashes;
  }

  it('still verifies and is served; a chain goes on in format 2; tampering is still found', async () => {
    const w = await world();
    try {
      toLegacy(w);
      expect(await w.orders.verify(w.id)).toEqual({ id: w.id, ok: true, checked: 5, brokenAt: null });
      expect((await w.orders.getLatest(w.id))?.data).toEqual({ status: 's4', total: 40 });
      expect((await w.orders.getVersion(w.id, 2))?.data).toEqual({ status: 's2', total: 20 });
      expect((await w.orders.getAsOf(w.id, w.times[1]!))?.ov).toBe(1);
      expect((await w.orders.history(w.id)).items).toHaveLength(5);
      // New versions are written in format 2, linked to the format-1 ones.
      await w.orders.update(w.id, { status: 's5', total: 50 }, 4, 'alice');
      await w.x.flush();
      expect(await w.orders.verify(w.id)).toMatchObject({ ok: true, checked: 6 });
      expect((await w.orders.getLatest(w.id))?.ov).toBe(5);
      // An older version's actor in the index is checked against its document.
      w.sql((db) => db.prepare('UPDATE versions SET actor = ?, actor_id = ? WHERE id = ? AND ov = 2').run(JSON.stringify('mallory'), 'mallory', w.id));
      await expectFinding(w, 2, /actor/);
      await expect(w.orders.history(w.id)).rejects.toBeInstanceOf(TamperError);
    } finally {
      await w.x.shutdown();
    }
  });

  it('a format-1 version file edited is found and refused', async () => {
    const w = await world();
    try {
      toLegacy(w);
      w.editJson(w.versionFile(3), (d) => (d.data.total = 1));
      await expectFinding(w, 3, /hash/);
      await expect(w.orders.getVersion(w.id, 3)).rejects.toBeInstanceOf(TamperError);
    } finally {
      await w.x.shutdown();
    }
  });

  it('a format-2 link turned back into format 1 (dropping the cv from what is covered) is found', async () => {
    const w = await world();
    try {
      const hashes = toLegacy(w);
      await w.orders.update(w.id, { status: 's5' }, 4);
      await w.orders.update(w.id, { status: 's6' }, 5);
      await w.x.flush();
      // Version 6 rewritten in format 1 over version 5's format-2 hash.
      const v5 = w.sql((db) => (db.prepare('SELECT hash FROM versions WHERE id = ? AND ov = 5').get(w.id) as { hash: string }).hash);
      expect(v5.startsWith('2:')).toBe(true);
      expect(hashes).toHaveLength(5);
      const doc6 = JSON.parse(readFileSync(w.versionFile(6), 'utf8'));
      const downgraded = legacyVersionHash(v5, doc6);
      w.sql((db) => {
        db.prepare('UPDATE versions SET hash = ? WHERE id = ? AND ov = 6').run(downgraded, w.id);
        db.prepare('UPDATE heads SET hash = ? WHERE id = ?').run(downgraded, w.id);
      });
      await expectFinding(w, 6, /older format/);
    } finally {
      await w.x.shutdown();
    }
  });
});
