/**
 * History checker under contention: clients in child processes, in worker threads and in this
 * process run random create / update / enrich / delete / restore operations with optimistic
 * locking on one SQLite file and one blob folder, mostly on a handful of shared records, and log
 * every acknowledged and rejected result. Afterwards the checker (`support/history-checker.ts`)
 * reads everything back through the API and the blob folder: no acknowledged write lost, no ov
 * or cv assigned twice, gapless histories, strictly increasing version times, every `getAsOf`
 * answer the version the acknowledged order says, and the objects equal to the index.
 *
 * XRONOX_RELIABILITY_SCALE multiplies the operations per client (default 1);
 * XRONOX_RELIABILITY_SEED changes the seed (printed).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Collection } from '../../core/engine/collection.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';
import { runTsx } from '../support/tsx-process.js';
import { checkHistory } from './support/history-checker.js';
import { type ClientFigures, ordersRoute, pendingOutbox, RELIABILITY_DB, reliabilityConfig, runClient, seedRecords } from './support/history-client.js';
import { OpLog, readOpLog } from './support/history-log.js';
import { type HostArgs, startThreadHost } from './support/history-worker.js';

const SCALE = Number(process.env.XRONOX_RELIABILITY_SCALE ?? 1);
const SEED = Number(process.env.XRONOX_RELIABILITY_SEED ?? 9_2026);
const OPS_PER_CLIENT = Math.round(120 * SCALE);
const SHARED_RECORDS = 6;
const PROCESSES = 3;
const THREADS = 2;
const CLIENTS_PER_HOST = 2;
const WORKER = new URL('./support/history-worker.ts', import.meta.url).pathname;

describe('concurrent clients in processes, threads and this process', () => {
  const dir = tempDir('xronox-reliability-history');
  afterAll(() => dir.cleanup());

  it('lose no acknowledged write and leave histories the acknowledged order explains', async () => {
    const config = reliabilityConfig(dir.path);
    const logPath = (client: string) => join(dir.path, `${client}.jsonl`);
    const seedLog = new OpLog(logPath('seed'));
    const local = initXronox(config);
    const orders = local.with(ordersRoute) as Collection;
    const sharedIds = await seedRecords(orders, SHARED_RECORDS, seedLog);
    seedLog.close();

    let nextSeed = SEED;
    const hostArgs = (prefix: string): HostArgs => ({
      config,
      sharedIds,
      barrier: { ready: join(dir.path, `ready-${prefix}`), go: join(dir.path, 'go') },
      clients: Array.from({ length: CLIENTS_PER_HOST }, (_, i) => {
        const client = `${prefix}${String.fromCharCode(97 + i)}`;
        return { client, seed: nextSeed++, ops: OPS_PER_CLIENT, logPath: logPath(client) };
      }),
    });
    const processHosts = Array.from({ length: PROCESSES }, (_, p) => hostArgs(`p${p}`));
    const threadHosts = Array.from({ length: THREADS }, (_, t) => hostArgs(`t${t}`));
    const inProcess = hostArgs('m0');
    const inProcessLogs = inProcess.clients.map((c) => new OpLog(c.logPath));

    const remote = [...processHosts.map((args) => runProcessHost(args)), ...threadHosts.map((args) => startThreadHost(args))];
    // Every client starts once every host is up. A host that fails ends the wait, and the others
    // are still let go, so that they finish rather than wait forever.
    try {
      await Promise.race([waitForFiles([...processHosts, ...threadHosts].map((h) => h.barrier!.ready)), Promise.all(remote)]);
    } finally {
      writeFileSync(join(dir.path, 'go'), '');
    }
    const figures = (
      await Promise.all([...remote, Promise.all(inProcess.clients.map((c, i) => runClient(orders, { client: c.client, seed: c.seed, ops: c.ops, sharedIds, log: inProcessLogs[i]! })))])
    ).flat();
    for (const log of inProcessLogs) log.close();
    await local.shutdown();

    // A fresh instance, as after a restart: every instance drained its sync when it shut down.
    const x = initXronox(config);
    try {
      const check = x.with(ordersRoute) as Collection;
      const pendingAfterShutdown = await pendingOutbox(x);
      const clients = ['seed', ...[...processHosts, ...threadHosts, inProcess].flatMap((h) => h.clients.map((c) => c.client))];
      const logs = clients.map((name) => ({ name, entries: readOpLog(logPath(name)), killed: false }));
      const report = await checkHistory({ orders: check, logs, blobRoot: join(dir.path, 'blobs', RELIABILITY_DB), seed: SEED });
      const verified = await check.verifyCollection();

      const acked = sum(figures, 'acked');
      const rejected = sum(figures, 'rejected');
      console.log(
        `[reliability] history: seed ${SEED}, scale ${SCALE}: ${figures.length} clients (${PROCESSES * CLIENTS_PER_HOST} in ${PROCESSES} processes, ` +
          `${THREADS * CLIENTS_PER_HOST} in ${THREADS} threads, ${CLIENTS_PER_HOST} in the test process) on ${SHARED_RECORDS} shared records; ` +
          `${acked.total} writes acknowledged ${JSON.stringify(acked.byKind)}, ${rejected.total} rejected by optimistic locking ${JSON.stringify(rejected.byKind)}; ` +
          `checked ${report.figures.records} records, ${report.figures.versions} versions, ${report.figures.ackedChecked} acknowledged writes, ` +
          `${report.figures.asOfQueries} getAsOf answers, ${report.figures.blobObjects} blob objects; hash chains: ${verified.versions} versions, ok ${verified.ok}; ` +
          `problems: ${report.problems.length}`,
      );

      expect(report.problems).toEqual([]);
      expect(verified.broken).toEqual([]);
      expect(pendingAfterShutdown).toBe(0);
      expect(report.figures.inFlight).toBe(0);
      // Every operation a client reports acknowledged was checked (plus the seed creates).
      expect(report.figures.ackedChecked).toBe(acked.total + SHARED_RECORDS);
      // The contention is real: optimistic locking turned writes away, in processes and threads alike.
      expect(rejected.total).toBeGreaterThan(0);
      expect(figures.filter((f) => f.client.startsWith('p')).some((f) => total(f.rejected) > 0)).toBe(true);
      expect(figures.filter((f) => f.client.startsWith('t')).some((f) => total(f.rejected) > 0)).toBe(true);
    } finally {
      await x.shutdown();
    }
  }, 180_000 * Math.max(1, SCALE));
});

async function waitForFiles(paths: readonly string[]): Promise<void> {
  while (!paths.every((p) => existsSync(p))) await new Promise((r) => setTimeout(r, 5));
}

function total(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

function sum(figures: readonly ClientFigures[], field: 'acked' | 'rejected'): { total: number; byKind: Record<string, number> } {
  const byKind: Record<string, number> = {};
  for (const f of figures) for (const [kind, n] of Object.entries(f[field])) byKind[kind] = (byKind[kind] ?? 0) + n;
  return { total: total(byKind), byKind };
}

/** A host in a child process (`node --import tsx history-worker.ts`); resolves with its clients' figures. */
async function runProcessHost(args: HostArgs): Promise<ClientFigures[]> {
  const { code, stdout, stderr } = await runTsx(WORKER, [JSON.stringify(args)]);
  if (code !== 0) throw new Error(`client process exited with ${code}: ${stderr}`);
  return JSON.parse(stdout) as ClientFigures[];
}
