/**
 * `repair()` beside a busy writer (issue 15, item 6). Another process creates records as fast as
 * it can on the same SQLite file; one repair pass must handle what was pending when it began and
 * end, report what it left, and lose nothing acknowledged.
 *
 * The writer's own blob sync fails (its blob folder is under a regular file, and its first retry
 * is an hour away), so everything it writes stays in the outbox until a repair takes it: which
 * records the pass synced is then exactly which `current.json` files exist. The pass's first put
 * waits until the writer has acknowledged 20 creates with a cv above the collection's cv at that
 * moment, which is after the pass's snapshot: those 20 are in the outbox while the pass runs, and
 * it must leave them. No timing is assumed anywhere.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../core/adapters/fs/fs-blob-store.js';
import { sqliteIndexStore } from '../support/sqlite-index.js';
import { loadConfig } from '../../core/config/load.js';
import type { Namespace } from '../../core/contracts/index-store.js';
import { type AdapterFactories, Xronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';
import { RELIABILITY_COLLECTION, RELIABILITY_DB, reliabilityConfig } from './support/history-client.js';

const WRITER = new URL('./support/busy-writer.ts', import.meta.url).pathname;
const ns: Namespace = { dbName: RELIABILITY_DB, collection: RELIABILITY_COLLECTION };
const LATE = 20;

interface Ack {
  id: string;
  cv: number;
}

/** The busy writer as a child process, with what it acknowledged so far. */
function startWriter(config: unknown) {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ['--import', 'tsx', WRITER, JSON.stringify(config)], { env });
  const acks: Ack[] = [];
  const waiters: Array<() => void> = [];
  let buffer = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    const lines = buffer.split('\n');
    buffer = lines.pop()!;
    for (const line of lines) if (line) acks.push(JSON.parse(line) as Ack);
    for (const wake of waiters.splice(0)) wake();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  void exited.then(() => {
    for (const wake of waiters.splice(0)) wake();
  });
  /** Resolves once `done()` holds; rejects if the writer ends first. */
  const until = async (done: () => boolean) => {
    while (!done()) {
      if (child.exitCode !== null) throw new Error(`the writer ended (${child.exitCode}): ${stderr}`);
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  return {
    acks,
    until,
    stop: async () => {
      child.kill('SIGTERM');
      return { code: await exited, stderr };
    },
    kill: () => child.kill('SIGKILL'),
  };
}

describe('a repair pass beside a busy writer', () => {
  it('syncs what was pending when it began, leaves what the writer adds meanwhile and reports it, and loses nothing', async () => {
    const dir = tempDir('xronox-repair-busy');
    const config = reliabilityConfig(dir.path);
    writeFileSync(join(dir.path, 'blocked'), 'a file where the writer expects its blob folder');
    const writer = startWriter({ ...config, localStorage: { basePath: join(dir.path, 'blocked', 'blobs'), enabled: true }, fallback: { enabled: true, retryDelayMs: 3_600_000 } });
    const index = sqliteIndexStore({ path: config.dbConnections.local.sqlitePath });
    const current = (id: string) => join(dir.path, 'blobs', RELIABILITY_DB, 'records', RELIABILITY_COLLECTION, id, 'current.json');
    let repairer: Xronox | undefined;
    try {
      await writer.until(() => writer.acks.length >= 50);
      const pendingBefore = (await index.listPendingSync(RELIABILITY_DB, { limit: 100_000 })).map((p) => p.id);
      expect(pendingBefore.length).toBeGreaterThanOrEqual(50);

      let gateCv = -1;
      const putIds: string[] = [];
      let gate: Promise<void> | undefined;
      const factories: AdapterFactories = {
        indexStore: (_ref, connection) => sqliteIndexStore({ path: connection.sqlitePath! }),
        blobStore: (_ref, _connection, basePath) => {
          const store = new FsBlobStore({ basePath: basePath! });
          const put = store.put.bind(store);
          store.put = async (...args) => {
            gate ??= (async () => {
              gateCv = (await index.getCollectionVersion(ns))!;
              await writer.until(() => writer.acks.filter((a) => a.cv > gateCv).length >= LATE);
            })();
            await gate;
            await put(...args);
            // `{prefix}/{collection}/{id}/current.json`: the records this repairer wrote.
            if (String(args[1]).endsWith('/current.json')) putIds.push(String(args[1]).split('/').at(-2)!);
          };
          return store;
        },
      };
      repairer = new Xronox(loadConfig(config), factories, { onBackgroundError: () => undefined });
      const report = await repairer.repair();
      const putsInPass = [...putIds];

      // Which records the pass synced: the writer's own sync writes nothing.
      const acked = new Map(writer.acks.map((a) => [a.id, a.cv]));
      const synced = [...acked.keys()].filter((id) => existsSync(current(id)));
      const late = writer.acks.filter((a) => a.cv > gateCv).map((a) => a.id);
      expect(gateCv).toBeGreaterThan(0);
      expect(late.length).toBeGreaterThanOrEqual(LATE);
      // Nothing written after the snapshot was synced, and everything pending before the call was.
      expect(late.filter((id) => existsSync(current(id)))).toEqual([]);
      expect(synced.filter((id) => acked.get(id)! > gateCv)).toEqual([]);
      expect(putsInPass.filter((id) => !(acked.get(id)! <= gateCv))).toEqual([]);
      expect(pendingBefore.filter((id) => !existsSync(current(id)))).toEqual([]);
      expect({ failed: report.failed, deadLettered: report.deadLettered, synced: report.synced, putByThePass: new Set(putsInPass).size }).toEqual({
        failed: 0,
        deadLettered: 0,
        synced: synced.length,
        putByThePass: synced.length,
      });
      // What it left is reported: at least the late records, all still in the outbox.
      expect(report.left).toBeGreaterThanOrEqual(late.length);
      for (const id of late) expect(await index.getPendingSeq(ns, id)).not.toBeNull();

      const stopped = await writer.stop();
      expect(stopped.code, stopped.stderr).toBe(0);
      // The next pass takes the rest: every acknowledged record is in the blob store, nothing left.
      const all = writer.acks.map((a) => a.id);
      const second = await repairer.repair();
      expect({ failed: second.failed, left: second.left, pending: await index.countPendingSync(RELIABILITY_DB) }).toEqual({ failed: 0, left: 0, pending: 0 });
      expect(second.synced + report.synced).toBeGreaterThanOrEqual(all.length);
      expect(all.filter((id) => !existsSync(current(id)))).toEqual([]);
      for (const id of all) expect((await index.getHead(ns, id))?.ov).toBe(0);
      console.log(
        `[reliability] repair beside a busy writer: ${pendingBefore.length} pending before the call; the pass synced ${report.synced} and left ${report.left} (the writer committed ${late.length} after the pass's first put began); writer acknowledged ${all.length} in all; the next pass synced ${second.synced}, left 0`,
      );
    } finally {
      writer.kill();
      await repairer?.shutdown();
      await index.close();
      dir.cleanup();
    }
  }, 120_000);
});
