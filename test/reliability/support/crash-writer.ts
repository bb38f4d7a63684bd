/**
 * A writer process for the crash trials: one reliability client (`history-client.ts`) working on
 * every record already in the store (or on `sharedIds`), until it is killed with SIGKILL.
 *
 *   node --import tsx crash-writer.ts '<CrashWriterArgs as JSON>'   (crash.test.ts runs it bundled)
 *
 * Where the kill lands (`mode`, the k-th event of that kind):
 * - `signal`: the parent sends SIGKILL after the k-th ack it reads on stdout (one line per ack),
 *   after a short random delay: anywhere in the write path, wherever the writer happens to be;
 * - `after-commit`: the writer kills itself as the k-th index commit returns, before the engine
 *   acknowledges it (a committed write the client never heard of);
 * - `after-ack`: right after the k-th ack is logged: committed, acknowledged, blobs not written;
 * - `before-put`: as the k-th blob put starts (a version object or current.json);
 * - `after-put`: as the k-th blob put has finished, before the next one or before the sync is
 *   marked complete in the index.
 *
 * - `group-before` / `group-after` (with `clients` > 1, whose commits the index store groups): as
 *   the k-th transaction carrying two or more commits goes to the driver, or as it returns.
 *
 * A `repair` process runs only `xronox.repair()` and is killed at its k-th blob put: a crash
 * during the recovery from a crash.
 *
 * A `survive` writer runs beside a killed one on the same records (a crash amid contention): it
 * stops after its operations and shuts down normally.
 *
 * The stores are the real index store the config names (SQLite, or PostgreSQL) and the
 * filesystem blob store, built as the adapter registry builds them; the self-kill modes reach
 * them through a proxy that only adds the kill.
 * (The registry itself is not imported: it also loads the MongoDB and S3 clients, which would add
 * a quarter second to each of the many process starts.)
 */
import { existsSync, writeFileSync } from 'node:fs';
import { FsBlobStore } from '../../../core/adapters/fs/fs-blob-store.js';
import { loadConfig } from '../../../core/config/load.js';
import type { Collection } from '../../../core/engine/collection.js';
import type { IndexDriver, Transaction } from '../../../core/contracts/index-driver.js';
import { IndexRuntime } from '../../../core/store/index-runtime.js';
import { type AdapterFactories, Xronox } from '../../../core/xronox.js';
import { ordersRoute, runClient } from './history-client.js';
import { type CrashWriterArgs, clientLogPath } from './crash-kill.js';
import { OpLog } from './history-log.js';
import { writeStdoutLine } from '../../support/stdout-line.js';

const args = JSON.parse(process.argv[2]!) as CrashWriterArgs;
const die = () => process.kill(process.pid, 'SIGKILL');

let commits = 0;
let puts = 0;
let groups = 0;
// Only the backend the config names is loaded (a bundle evaluates a dynamic import when it runs).
const conn = Object.values((args.config as { dbConnections: Record<string, { sqlitePath?: string; postgresUri?: string; schemaPrefix?: string }> }).dbConnections)[0]!;
const driver: IndexDriver =
  conn.postgresUri === undefined
    ? new (await import('../../../core/adapters/sqlite/sqlite-index-driver.js')).SqliteIndexDriver({ path: conn.sqlitePath! })
    : new (await import('../../../core/adapters/postgres/postgres-index-driver.js')).PostgresIndexDriver({
        connectionString: conn.postgresUri,
        ...(conn.schemaPrefix === undefined ? {} : { schemaPrefix: conn.schemaPrefix }),
      });
const indexStore = IndexRuntime.of(groupKills(driver));
const factories: AdapterFactories = {
  indexStore: () =>
    hook(indexStore, 'commit', {
      after: (result) => {
        if (args.mode === 'after-commit' && (result as { ok: boolean }).ok && ++commits === args.k) die();
      },
    }),
  blobStore: (_ref, _connection, basePath) =>
    hook(new FsBlobStore({ basePath: basePath! }), 'put', {
      before: () => {
        if ((args.mode === 'before-put' || args.mode === 'repair') && ++puts === args.k) die();
      },
      after: () => {
        if (args.mode === 'after-put' && ++puts === args.k) die();
      },
    }),
};

const xronox = new Xronox(loadConfig(args.config), factories);
const orders = xronox.with(ordersRoute) as Collection;
if (args.mode === 'repair') {
  await xronox.repair();
  await xronox.shutdown();
  process.exit(0);
}
const log = new OpLog(args.logPath);
const existing: string[] = [];
for (let afterId: string | undefined; args.sharedIds === undefined; ) {
  const page = await orders.listByMeta({ includeDeleted: true, limit: 1000, ...(afterId ? { afterId } : {}) });
  existing.push(...page.items.map((r) => r.id));
  if (page.nextAfterId === null) break;
  afterId = page.nextAfterId;
}
if (args.barrier) {
  writeFileSync(args.barrier.ready, '');
  while (!existsSync(args.barrier.go)) await new Promise((r) => setTimeout(r, 2));
}
const clients = args.clients ?? 1;
const logs = clients === 1 ? [log] : Array.from({ length: clients }, (_, i) => new OpLog(clientLogPath(args.logPath, i)));
let acked = 0;
await Promise.all(
  logs.map((clientLog, i) =>
    runClient(orders, {
      client: clients === 1 ? args.client : `${args.client}${i}`,
      seed: args.seed + i,
      ops: args.mode === 'survive' ? args.ops! : Number.MAX_SAFE_INTEGER,
      sharedIds: args.sharedIds ?? existing,
      log: clientLog,
      onAck: () => {
        if (args.mode === 'after-ack' && ++acked === args.k) die();
        // The parent counts these lines to time a `signal` kill.
        writeStdoutLine('a');
      },
    }),
  ),
);
for (const l of logs) if (l !== log) l.close();
log.close();
await xronox.shutdown();

/** The driver, killing the process at the k-th group commit it is given, before or after it commits (the `group-*` modes). */
function groupKills(target: IndexDriver): IndexDriver {
  return new Proxy(target, {
    get(t, property) {
      const value: unknown = Reflect.get(t, property, t);
      if (typeof value !== 'function') return value;
      if (property !== 'transact') return value.bind(t);
      return async <T>(tx: Transaction<T>): Promise<T> => {
        const grouped = ((tx as { group?: number }).group ?? 1) >= 2;
        const kill = grouped && (args.mode === 'group-before' || args.mode === 'group-after') && ++groups === args.k;
        if (kill && args.mode === 'group-before') die();
        const result = await (value as (tx: Transaction<T>) => Promise<T>).call(t, tx);
        if (kill) die();
        return result;
      };
    },
  });
}

/** The store with a kill hook around one method; every call still goes to the real store. */
function hook<T extends object>(store: T, method: string, hooks: { before?: () => void; after?: (result: unknown) => void }): T {
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      if (property !== method) return value.bind(target);
      return async (...callArgs: unknown[]) => {
        hooks.before?.();
        const result: unknown = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, callArgs);
        hooks.after?.(result);
        return result;
      };
    },
  });
}
