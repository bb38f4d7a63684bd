/**
 * The history-checker run, whatever the index store: clients in child processes, in worker
 * threads and in the test process run random create / update / enrich / delete / restore
 * operations with optimistic locking, mostly on a handful of shared records, and log every
 * acknowledged and rejected result; then a fresh instance reads everything back and the checker
 * (`history-checker.ts`) holds it to the logs. `history.test.ts` runs it on the embedded SQLite
 * file, `history-postgres.test.ts` on a PostgreSQL server.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Collection } from '../../../core/engine/collection.js';
import { initXronox } from '../../../core/xronox.js';
import { runTsx } from '../../support/tsx-process.js';
import { type CheckReport, checkHistory } from './history-checker.js';
import { type ClientFigures, ordersRoute, pendingOutbox, RELIABILITY_DB, type ReliabilityBackend, reliabilityConfig, runClient, seedRecords } from './history-client.js';
import { OpLog, readOpLog } from './history-log.js';
import { type HostArgs, startThreadHost } from './history-worker.js';

const WORKER = new URL('./history-worker.ts', import.meta.url).pathname;

export interface HistoryScenario {
  /** Names the run in the printed figures: `history` (SQLite), `history on postgres`. */
  label: string;
  backend: ReliabilityBackend;
  /** The run's folder: logs, barrier files, the blob folder (and the SQLite file). */
  dir: string;
  processes: number;
  threads: number;
  /** Clients in each process and each thread. */
  clientsPerHost: number;
  /** Clients in the test process itself. */
  inProcessClients: number;
  opsPerClient: number;
  /** Each client stops once this many of its operations were acknowledged (and at `opsPerClient` at the latest). */
  acksPerClient?: number;
  sharedRecords: number;
  seed: number;
  scale: number;
  /** Records the checker reads back at once (see `CheckInput.concurrency`). Default 1. */
  checkConcurrency?: number;
}

export interface HistoryOutcome {
  figures: ClientFigures[];
  report: CheckReport;
  verified: { versions: number; ok: boolean; broken: unknown[] };
  pendingAfterShutdown: number;
  acked: { total: number; byKind: Record<string, number> };
  rejected: { total: number; byKind: Record<string, number> };
  /** Seconds the clients ran (from the start line to the last client's end) and the check took. */
  writeSeconds: number;
  checkSeconds: number;
}

export async function runHistoryScenario(s: HistoryScenario): Promise<HistoryOutcome> {
  const config = reliabilityConfig(s.dir, s.backend);
  const logPath = (client: string) => join(s.dir, `${client}.jsonl`);
  const seedLog = new OpLog(logPath('seed'));
  const local = initXronox(config);
  const orders = local.with(ordersRoute) as Collection;
  const sharedIds = await seedRecords(orders, s.sharedRecords, seedLog);
  seedLog.close();

  let nextSeed = s.seed;
  const hostArgs = (prefix: string, clients: number): HostArgs => ({
    config,
    sharedIds,
    barrier: { ready: join(s.dir, `ready-${prefix}`), go: join(s.dir, 'go') },
    clients: Array.from({ length: clients }, (_, i) => {
      const client = `${prefix}${String.fromCharCode(97 + i)}`;
      return { client, seed: nextSeed++, ops: s.opsPerClient, ...(s.acksPerClient === undefined ? {} : { acks: s.acksPerClient }), logPath: logPath(client) };
    }),
  });
  const processHosts = Array.from({ length: s.processes }, (_, p) => hostArgs(`p${p}`, s.clientsPerHost));
  const threadHosts = Array.from({ length: s.threads }, (_, t) => hostArgs(`t${t}`, s.clientsPerHost));
  const inProcess = hostArgs('m0', s.inProcessClients);
  const inProcessLogs = inProcess.clients.map((c) => new OpLog(c.logPath));

  const remote = [...processHosts.map((args) => runProcessHost(args)), ...threadHosts.map((args) => startThreadHost(args))];
  // Every client starts once every host is up. A host that fails ends the wait, and the others
  // are still let go, so that they finish rather than wait forever.
  try {
    await Promise.race([waitForFiles([...processHosts, ...threadHosts].map((h) => h.barrier!.ready)), Promise.all(remote)]);
  } finally {
    writeFileSync(join(s.dir, 'go'), '');
  }
  const started = performance.now();
  const figures = (
    await Promise.all([...remote, Promise.all(inProcess.clients.map((c, i) => runClient(orders, { client: c.client, seed: c.seed, ops: c.ops, ...(c.acks === undefined ? {} : { acks: c.acks }), sharedIds, log: inProcessLogs[i]! })))])
  ).flat();
  const writeSeconds = (performance.now() - started) / 1000;
  for (const log of inProcessLogs) log.close();
  await local.shutdown();

  // A fresh instance, as after a restart: every instance drained its sync when it shut down.
  const checkStarted = performance.now();
  const x = initXronox(config);
  try {
    const check = x.with(ordersRoute) as Collection;
    const pendingAfterShutdown = await pendingOutbox(x);
    const clients = ['seed', ...[...processHosts, ...threadHosts, inProcess].flatMap((h) => h.clients.map((c) => c.client))];
    const logs = clients.map((name) => ({ name, entries: readOpLog(logPath(name)), killed: false }));
    const report = await checkHistory({ orders: check, logs, blobRoot: join(s.dir, 'blobs', RELIABILITY_DB), seed: s.seed, concurrency: s.checkConcurrency ?? 1 });
    const verified = await check.verifyCollection();
    return { figures, report, verified, pendingAfterShutdown, acked: sum(figures, 'acked'), rejected: sum(figures, 'rejected'), writeSeconds, checkSeconds: (performance.now() - checkStarted) / 1000 };
  } finally {
    await x.shutdown();
  }
}

/** Prints the run's figures (`[reliability] …`) and holds the outcome to what the checker demands. */
export function expectHistoryHolds(s: HistoryScenario, o: HistoryOutcome): void {
  const { report, acked, rejected } = o;
  console.log(
    `[reliability] ${s.label}: seed ${s.seed}, scale ${s.scale}: ${o.figures.length} clients (${s.processes * s.clientsPerHost} in ${s.processes} processes, ` +
      `${s.threads * s.clientsPerHost} in ${s.threads} threads, ${s.inProcessClients} in the test process) on ${s.sharedRecords} shared records; ` +
      `${acked.total} writes acknowledged ${JSON.stringify(acked.byKind)}, ${rejected.total} rejected by optimistic locking ${JSON.stringify(rejected.byKind)} ` +
      `in ${o.writeSeconds.toFixed(1)} s; checked ${report.figures.records} records, ${report.figures.versions} versions, ${report.figures.ackedChecked} acknowledged writes, ` +
      `${report.figures.asOfQueries} getAsOf answers, ${report.figures.blobObjects} blob objects in ${o.checkSeconds.toFixed(1)} s; ` +
      `hash chains: ${o.verified.versions} versions, ok ${o.verified.ok}; ${problemCounts(report.problems)}, problems: ${report.problems.length}`,
  );
  expect(report.problems).toEqual([]);
  expect(o.verified.broken).toEqual([]);
  expect(o.pendingAfterShutdown).toBe(0);
  expect(report.figures.inFlight).toBe(0);
  // Every operation a client reports acknowledged was checked (plus the seed creates).
  expect(report.figures.ackedChecked).toBe(acked.total + s.sharedRecords);
  // The contention is real: optimistic locking turned writes away, in processes and threads alike.
  expect(rejected.total).toBeGreaterThan(0);
  expect(o.figures.filter((f) => f.client.startsWith('p')).some((f) => total(f.rejected) > 0)).toBe(true);
  if (s.threads > 0) expect(o.figures.filter((f) => f.client.startsWith('t')).some((f) => total(f.rejected) > 0)).toBe(true);
}

/** The checker's findings by the kinds the figures name (each a substring of the checker's wording). */
export function problemCounts(problems: readonly string[]): string {
  const count = (...marks: string[]) => problems.filter((p) => marks.some((m) => p.includes(m))).length;
  return (
    `lost ${count('lost acknowledged write', 'not listed')}, duplicated ${count('acknowledged twice', 'wrote two versions', 'issued twice')}, ` +
    `ov gaps ${count('without gaps', 'getVersion(')}, wrong getAsOf answers ${count('getAsOf(')}`
  );
}

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
  // The watchdog only turns a hang into a failure (it is far beyond any run's length).
  const { code, stdout, stderr } = await runTsx(WORKER, [JSON.stringify(args)], { killAfterMs: 900_000 });
  if (code !== 0) throw new Error(`client process exited with ${code}: ${stderr}`);
  return JSON.parse(stdout) as ClientFigures[];
}
