/**
 * `getAsOf` and `history` latency against the depth of one record's history (see BENCHMARKS.md,
 * "Reads against history depth"): one record with 10, 1,000 and 100,000 versions per system.
 * The curve must stay flat: a read is an index lookup, not a scan of the history.
 *
 *   npx tsx bench/history.bench.ts          (or: npm run bench:history)
 *
 * Systems: Xronox on the embedded default, Xronox with its index store on PostgreSQL (objects in
 * a local folder; schemas under a random prefix of this run, dropped at the end), and, where their
 * servers answer on loopback, MariaDB (`WITH SYSTEM VERSIONING`, `FOR SYSTEM_TIME AS OF`) and
 * PostgreSQL (trigger-maintained history table), with the tables of bench/compare.bench.ts. A
 * server that does not answer is skipped with a message. BENCH_BACKEND=sqlite leaves out Xronox
 * on PostgreSQL; BENCH_BACKEND=postgres runs only Xronox on PostgreSQL and the PostgreSQL
 * trigger table (the goal there: getAsOf and history pages at 100,000 versions within 1.3× of
 * 1,000).
 *
 * Setup is not what is measured here, so each store is filled as fast as it allows (the report
 * says how; every version is still a real update through each system's write path). Xronox's
 * records are written through its `update` API by an instance whose SQLite runs with
 * synchronous=NORMAL, then flushed (every version archived to its file) and closed; the reads
 * are measured on a fresh instance with the default config, as a reader would open it. Xronox on
 * PostgreSQL's records are written the same way (SQLite synchronous=NORMAL, version files without
 * fsync) and their index entries imported into PostgreSQL with `importRecords`, the call a restore
 * uses (bench/support/postgres-depth.ts says why); its reads too are measured on a fresh default
 * instance.
 *
 * MariaDB's reads are measured in a block of their own, after the others' (see `measure`).
 *
 * Last, every system's deepest record is measured once more, right after Xronox's version files
 * and (embedded) index file were read: the difference is what the operating system's file cache
 * is worth to Xronox at depth.
 *
 * Knobs (environment): BENCH_HISTORY_DEPTHS (default 10,1000,100000), BENCH_HISTORY_QUERIES
 * (samples per measurement, default 1000), BENCH_BACKEND (all, sqlite or postgres; default all),
 * BENCH_KEEP=1 keeps the folder.
 */
import { mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { defaultAdapters } from '../core/adapters/registry.js';
import { SqliteIndexDriver } from '../core/adapters/sqlite/sqlite-index-driver.js';
import { IndexRuntime } from '../core/store/index-runtime.js';
import { initXronox, loadConfig, Xronox } from '../core/index.js';
import type { Data } from '../core/engine/documents.js';
import { makeData } from './support/document.js';
import { PostgresDepthSeeder } from './support/postgres-depth.js';
import { dropXronoxSchemas, postgresUri, randomSchemaPrefix } from './support/xronox-postgres.js';
import { describeMachine, envInt, loadAverage, settle } from './support/machine.js';
import { finishRun, fmtNumber, type Latency, latencyInterleaved, markdownTable, now, progressLog, secondsSince } from './support/measure.js';
import { type ComparedStore, connectMariadb, connectPostgres, MariadbStore, mariadbInfo, microsToIso, PostgresStore, postgresInfo } from './support/sql-versioned.js';
import { XronoxStore } from './support/xronox-store.js';

const DEPTHS = (process.env.BENCH_HISTORY_DEPTHS ?? '10,1000,100000').split(',').map(Number);
const QUERIES = envInt('BENCH_HISTORY_QUERIES', 1000, 10);
const BACKEND = process.env.BENCH_BACKEND ?? 'all';
if (!['all', 'sqlite', 'postgres'].includes(BACKEND)) throw new Error(`BENCH_BACKEND must be all, sqlite or postgres, got ${BACKEND}`);
/** Goal for Xronox on PostgreSQL: p50 at the deepest depth within this factor of 1,000 versions. */
const PG_FLATNESS_GOAL = 1.3;
const WARMUP = 100;
const PAGE = 50;
const TENANT = 'bench';
const COLLECTION = 'deep';
const runStart = now();
const machine = describeMachine(os.tmpdir());

const log = progressLog(runStart, { rss: true });

const dataOf = (ov: number): Data => makeData(ov);
const seqOf = (data: Data | undefined): number => Number((data as { seq?: number } | undefined)?.seq) - 1_000_000;

const dir = await mkdtemp(join(os.tmpdir(), 'xronox-history-'));
const config = {
  dbConnections: { local: { sqlitePath: join(dir, 'xronox.sqlite') } },
  databases: { runtime: { tenantDatabases: [{ tenantId: TENANT, dbConnRef: 'local', dbName: 'rt_history' }] } },
  localStorage: { basePath: join(dir, 'blobs'), enabled: true },
};
const backgroundErrors: unknown[] = [];
const onBackgroundError = (err: unknown) => backgroundErrors.push(err);

const skipped: string[] = [];
const pgClient = await connectPostgres().catch((err: unknown) => {
  skipped.push(`PostgreSQL skipped: no server at 127.0.0.1:5432 (${(err as Error).message})`);
  return null;
});
const mariaConn =
  BACKEND === 'postgres'
    ? null
    : await connectMariadb().catch((err: unknown) => {
        skipped.push(`MariaDB skipped: no server at 127.0.0.1:3306 (${(err as Error).message})`);
        return null;
      });
if (BACKEND === 'postgres' && !pgClient) throw new Error(`BENCH_BACKEND=postgres needs PostgreSQL: ${skipped.join('; ')}`);
const schemaPrefix = randomSchemaPrefix();
const PG_DB = 'rt_history';
const pgConfig = {
  dbConnections: { pg: { postgresUri: postgresUri(), schemaPrefix } },
  databases: { runtime: { tenantDatabases: [{ tenantId: TENANT, dbConnRef: 'pg', dbName: PG_DB }] } },
  localStorage: { basePath: join(dir, 'pg-blobs'), enabled: true },
};
for (const line of skipped) console.log(line);
const serverLines = [
  ...(pgClient ? [`PostgreSQL ${(await postgresInfo(pgClient)).version}`] : []),
  ...(mariaConn ? [`MariaDB ${(await mariadbInfo(mariaConn)).version}`] : []),
];

console.log('Machine');
for (const line of machine) console.log(`  ${line}`);
for (const line of serverLines) console.log(`  ${line} on 127.0.0.1`);
if (pgClient && BACKEND !== 'sqlite') console.log(`  Xronox on PostgreSQL: schemas ${schemaPrefix}* (dropped at the end)`);
console.log(`Command    npx tsx bench/history.bench.ts${['BENCH_HISTORY_DEPTHS', 'BENCH_HISTORY_QUERIES', 'BENCH_BACKEND'].filter((k) => process.env[k]).map((k) => ` ${k}=${process.env[k]}`).join('')}`);
console.log(`Folder     ${dir}`);
console.log();

// ---- setup ------------------------------------------------------------------------------

const setupXronox =
  BACKEND === 'postgres'
    ? null
    : new Xronox(
        loadConfig(config),
        { ...defaultAdapters, indexStore: (_ref, connection) => IndexRuntime.of(new SqliteIndexDriver({ path: connection.sqlitePath!, durability: 'normal' })) },
        { onBackgroundError },
      );
const setupStores: ComparedStore[] = setupXronox ? [new XronoxStore(setupXronox, 'runtime', TENANT, COLLECTION)] : [];
const pgSeeder =
  pgClient && BACKEND !== 'sqlite'
    ? new PostgresDepthSeeder(pgConfig, join(dir, 'pg-builder.sqlite'), { connectionString: postgresUri(), schemaPrefix }, { tenant: TENANT, dbName: PG_DB, collection: COLLECTION }, onBackgroundError)
    : null;
if (pgSeeder) setupStores.push(pgSeeder);
if (mariaConn) setupStores.push(await MariadbStore.open(mariaConn, true));
if (pgClient) setupStores.push(await PostgresStore.open(pgClient, true));

/** ids[s][d]: the record of store s with DEPTHS[d] versions. */
const ids: string[][] = setupStores.map(() => []);
const seedSeconds: number[][] = setupStores.map(() => []);
try {
  for (const depth of DEPTHS) {
    for (let s = 0; s < setupStores.length; s++) {
      const store = setupStores[s]!;
      await settle();
      const start = now();
      ids[s]!.push(await store.seed(depth, dataOf));
      seedSeconds[s]!.push(secondsSince(start));
      const split = store === pgSeeder ? ` (engine on SQLite ${pgSeeder.buildSeconds.toFixed(1)} s, import into PostgreSQL ${pgSeeder.importSeconds.toFixed(1)} s)` : '';
      log(`seeded ${store.name}: ${depth.toLocaleString('en-US')} versions in ${secondsSince(start).toFixed(1)} s${split}`);
    }
  }
  await setupXronox?.shutdown();

  // ---- measure ----------------------------------------------------------------------------

  const xronox = setupXronox ? initXronox(config, { onBackgroundError }) : null;
  const xronoxPg = pgSeeder ? initXronox(pgConfig, { onBackgroundError }) : null;
  const stores = setupStores.map((s) => {
    if (s === pgSeeder) return new XronoxStore(xronoxPg!, 'runtime', TENANT, COLLECTION, 'on PostgreSQL');
    if (s instanceof XronoxStore) return new XronoxStore(xronox!, 'runtime', TENANT, COLLECTION);
    return s;
  });
  type Plan = { store: ComparedStore; id: string; depth: number; queries: Array<{ at: number; ov: number; before: number }>; asOf: number[]; pages: number[][]; newest: number[][] };
  type Result = { depth: number; name: string; asOf: Latency; newest: Latency; page: Latency; checked: number };

  /** Random instants and page starts over the record's whole history, with the answers they must get. */
  const planFor = async (store: ComparedStore, id: string, depth: number): Promise<Plan> => {
    const times = await store.versionTimes(id);
    if (times.length !== depth) throw new Error(`${store.name}: ${times.length} versions recorded, expected ${depth}`);
    const first = times[0]!;
    const last = times[depth - 1]!;
    const queries = Array.from({ length: QUERIES + WARMUP }, () => {
      const at = first + Math.floor(Math.random() * (last - first + 1));
      let lo = 0;
      let hi = depth - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (times[mid]! <= at) lo = mid;
        else hi = mid - 1;
      }
      // A page below a random version: `before` in [1, depth].
      return { at, ov: lo, before: 1 + Math.floor(Math.random() * depth) };
    });
    return { store, id, depth, queries, asOf: new Array<number>(queries.length), pages: new Array<number[]>(queries.length), newest: new Array<number[]>(queries.length) };
  };

  /**
   * The warm-up calls, then the measured ones, every answer checked; one result per plan, and the
   * bytes this process read from the disk per measured call of each read. Only Xronox reads files
   * in this process (the servers read in theirs), so that is Xronox's disk traffic per call (of
   * both Xronox systems together when both run: they take turns call by call).
   */
  const measure = async (plans: Plan[]): Promise<{ results: Result[]; diskPerCall: { asOf: number; newest: number; page: number } }> => {
    const reads: Array<(p: Plan, i: number) => Promise<void>> = [
      async (p, i) => {
        const got = await p.store.getAsOf(p.id, p.queries[i]!.at);
        p.asOf[i] = got?.ov === seqOf(got?.data) ? got.ov : -1;
      },
      async (p, i) => {
        p.newest[i] = await p.store.history(p.id, PAGE);
      },
      async (p, i) => {
        p.pages[i] = await p.store.history(p.id, PAGE, p.queries[i]!.before);
      },
    ];
    // MariaDB is measured in a block of its own after the others, which take turns call by call:
    // its AS OF scans the history (about 35 ms a call at 100,000 versions), and whichever call came
    // next was slower for it, whatever its system (BENCHMARKS.md: Xronox's getAsOf p50 at 100,000
    // versions was 200 µs without MariaDB in the turns and 1,002 µs with it, PostgreSQL's 185 and
    // 718 µs). The disk bytes are read around the others' block, the only one Xronox is in.
    const alone = plans.filter((p) => p.store instanceof MariadbStore);
    const together = plans.filter((p) => !alone.includes(p));
    const round = async (offset: number, samples: number) => {
      const latencies: Latency[][] = [];
      const disk: number[] = [];
      for (const read of reads) {
        const byPlan = new Map<Plan, Latency>();
        const before = diskReadBytes();
        const shared = await latencyInterleaved(samples, together.map((p) => (i: number) => read(p, offset + i)));
        disk.push((diskReadBytes() - before) / samples);
        together.forEach((p, k) => byPlan.set(p, shared[k]!));
        for (const p of alone) byPlan.set(p, (await latencyInterleaved(samples, [(i: number) => read(p, offset + i)]))[0]!);
        latencies.push(plans.map((p) => byPlan.get(p)!));
      }
      return { latencies, disk };
    };
    await round(0, WARMUP);
    const measured = await round(WARMUP, QUERIES);
    const results = plans.map((p, k) => {
      const expectPage = (before: number) => Array.from({ length: Math.min(PAGE, before) }, (_, j) => before - 1 - j).join(',');
      p.queries.forEach((q, i) => {
        if (p.asOf[i] !== q.ov) throw new Error(`${p.store.name}: getAsOf(${microsToIso(q.at)}) at depth ${p.depth} answered ov ${p.asOf[i]}, expected ${q.ov}`);
        if (p.newest[i]!.join(',') !== expectPage(p.depth)) throw new Error(`${p.store.name}: newest history page at depth ${p.depth} is wrong`);
        if (p.pages[i]!.join(',') !== expectPage(q.before)) throw new Error(`${p.store.name}: history page before ${q.before} at depth ${p.depth} is wrong`);
      });
      const [asOf, newest, page] = measured.latencies.map((l) => l[k]!);
      return { depth: p.depth, name: p.store.name, asOf: asOf!, newest: newest!, page: page!, checked: p.queries.length };
    });
    const [asOf, newest, page] = measured.disk;
    return { results, diskPerCall: { asOf: asOf!, newest: newest!, page: page! } };
  };

  const results: Result[] = [];
  const diskByDepth: Array<{ depth: number; asOf: number; newest: number; page: number }> = [];
  for (let d = 0; d < DEPTHS.length; d++) {
    const depth = DEPTHS[d]!;
    log(`${depth.toLocaleString('en-US')} versions: ${QUERIES} samples per store and read (after ${WARMUP} warm-up), interleaved call by call`);
    const measured = await measure(await Promise.all(stores.map((store, s) => planFor(store, ids[s]![d]!, depth))));
    results.push(...measured.results);
    diskByDepth.push({ depth, ...measured.diskPerCall });
  }

  // Why Xronox's deepest reads cost more on this machine: the OS keeps few of its files cached
  // (BENCHMARKS.md, "Machine"). Read the deepest record's version files (of each Xronox system)
  // and the embedded index file once, then measure every system again at that depth, interleaved
  // as above, with new random instants. Xronox on PostgreSQL's index is the server's to cache.
  const deepest = DEPTHS.length - 1;
  let warmStart = now();
  const versionFolders = stores.flatMap((s, k) => {
    if (!(s instanceof XronoxStore)) return [];
    const base = s.name.includes('on PostgreSQL') ? join(dir, 'pg-blobs', PG_DB) : join(dir, 'blobs', 'rt_history');
    return [join(base, 'versions', COLLECTION, ids[k]![deepest]!)];
  });
  const versionBytes = await readEveryFile(versionFolders);
  const versionSeconds = secondsSince(warmStart);
  warmStart = now();
  const indexBytes = xronox ? await readEveryFile([join(dir, 'xronox.sqlite')]) : 0;
  const indexSeconds = secondsSince(warmStart);
  let warmedFiles = 0;
  for (const folder of versionFolders) warmedFiles += (await readdir(folder)).length;
  const indexRead = xronox ? ` and its index file (${(indexBytes / 2 ** 20).toFixed(0)} MiB, ${indexSeconds.toFixed(1)} s)` : '';
  log(`read Xronox's ${warmedFiles.toLocaleString('en-US')} version files (${(versionBytes / 2 ** 20).toFixed(0)} MiB) in ${versionSeconds.toFixed(1)} s${indexRead}; measuring ${DEPTHS[deepest]!.toLocaleString('en-US')} versions again`);
  const { results: warm, diskPerCall: warmDisk } = await measure(await Promise.all(stores.map((store, s) => planFor(store, ids[s]![deepest]!, DEPTHS[deepest]!))));
  await xronox?.shutdown();
  await xronoxPg?.shutdown();

  // ---- report -----------------------------------------------------------------------------

  const count = (n: number) => n.toLocaleString('en-US');
  const lat = (l: Latency) => `${fmtNumber(l.p50)} / ${fmtNumber(l.p99)} µs`;
  console.log();
  console.log('How each record was filled (setup, not measured)');
  console.log();
  const how: Record<string, string> = {
    'Xronox runtime (versioned)': 'create + awaited update() calls, SQLite synchronous=NORMAL, then flush() (every version archived to its file); reads on a fresh default instance (synchronous=FULL)',
    'MariaDB, WITH SYSTEM VERSIONING': 'the INSERT/UPDATE statements of compare.bench.ts, 1,000 per transaction, each with its own SET timestamp (1 ms apart)',
    'PostgreSQL, trigger + history table': 'the INSERT/UPDATE statements of compare.bench.ts, autocommit, session synchronous_commit=off',
    'Xronox on PostgreSQL, runtime (versioned)':
      'create + awaited update() calls on a SQLite setup instance (synchronous=NORMAL, version files without fsync), flush(), then its rows imported into PostgreSQL with importRecords (the restore path), one transaction; reads on a fresh default instance',
  };
  console.log(
    markdownTable(
      ['system', 'how', ...DEPTHS.map((d) => `${count(d)} versions`)],
      stores.map((s, k) => [s.name, how[s.name] ?? '', ...seedSeconds[k]!.map((t) => `${t.toFixed(1)} s`)]),
    ),
  );
  console.log();
  console.log(`Latency p50 / p99 by history depth, one record, ~1 KB versions (${QUERIES} samples each; every answer checked)`);
  console.log();
  console.log(
    markdownTable(
      ['versions', 'system', 'getAsOf (random instant)', `history, newest ${PAGE}`, `history, ${PAGE} before a random version`],
      results.map((r) => [count(r.depth), r.name, lat(r.asOf), lat(r.newest), lat(r.page)]),
    ),
  );
  console.log();
  const deep = DEPTHS[deepest]!;
  console.log(`Flatness: p50 at ${count(deep)} versions / p50 at fewer versions (1× = flat; goal for Xronox on PostgreSQL against 1,000 versions: ≤ ${PG_FLATNESS_GOAL}×)`);
  console.log();
  console.log(
    markdownTable(
      ['system', 'against', 'getAsOf', `history, newest ${PAGE}`, `history, ${PAGE} before a random version`],
      stores.flatMap((s) =>
        DEPTHS.slice(0, -1).map((shallow) => {
          const a = results.find((r) => r.name === s.name && r.depth === shallow)!;
          const b = results.find((r) => r.name === s.name && r.depth === deep)!;
          // Xronox on PostgreSQL's goal: within PG_FLATNESS_GOAL of 1,000 versions.
          const goal = s.name.includes('on PostgreSQL') && shallow === 1000;
          const x = (p: (r: Result) => Latency) => {
            const growth = p(b).p50 / p(a).p50;
            return `${growth.toFixed(2)}×${goal ? (growth <= PG_FLATNESS_GOAL ? ' (met)' : ' (MISSED)') : ''}`;
          };
          return [s.name, `${count(shallow)} versions`, x((r) => r.asOf), x((r) => r.newest), x((r) => r.page)];
        }),
      ),
    ),
  );
  console.log();
  const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
  console.log("Bytes this process read from the disk per Xronox call (/proc/self/io read_bytes: the SQLite file's and the version files' pages not in the file cache)");
  console.log();
  console.log(
    markdownTable(
      ['versions', 'getAsOf (random instant)', `history, newest ${PAGE}`, `history, ${PAGE} before a random version`],
      [
        ...diskByDepth.map((d) => [count(d.depth), kib(d.asOf), kib(d.newest), kib(d.page)]),
        [`${count(deep)}, Xronox's files just read (below)`, kib(warmDisk.asOf), kib(warmDisk.newest), kib(warmDisk.page)],
      ],
    ),
  );
  console.log();
  console.log(
    `${count(deep)} versions again, every system, right after reading Xronox's ${count(warmedFiles)} version files once (${versionSeconds.toFixed(1)} s)${indexRead}`,
  );
  console.log();
  console.log(
    markdownTable(
      ['system', 'measurement', 'getAsOf (random instant)', `history, newest ${PAGE}`, `history, ${PAGE} before a random version`],
      warm.flatMap((w) => {
        const cold = results.find((r) => r.name === w.name && r.depth === deep)!;
        return [
          [w.name, 'in the run above', lat(cold.asOf), lat(cold.newest), lat(cold.page)],
          [w.name, "Xronox's files just read", lat(w.asOf), lat(w.newest), lat(w.page)],
        ];
      }),
    ),
  );
} finally {
  for (const store of setupStores) await store.close();
  if (pgSeeder) log(`dropped ${await dropXronoxSchemas(pgClient!, schemaPrefix)} schemas of prefix ${schemaPrefix}`);
  await pgClient?.end();
  await mariaConn?.end();
  if (process.env.BENCH_KEEP !== '1') await rm(dir, { recursive: true, force: true });
}
console.log();
finishRun(runStart, backgroundErrors, loadAverage());

/** Reads every file under the paths (folders or files) once, as a cache warm-up; returns the bytes read. */
async function readEveryFile(paths: readonly string[], chunk = Buffer.allocUnsafe(1 << 20)): Promise<number> {
  let bytes = 0;
  for (const path of paths) {
    if ((await stat(path)).isDirectory()) {
      for (const name of await readdir(path)) bytes += await readEveryFile([join(path, name)], chunk);
      continue;
    }
    const handle = await open(path, 'r');
    try {
      let n: number;
      do {
        n = (await handle.read(chunk, 0, chunk.length)).bytesRead;
        bytes += n;
      } while (n > 0);
    } finally {
      await handle.close();
    }
  }
  return bytes;
}

/** Bytes this process has read from storage (Linux `/proc/self/io`), or 0 where that is not available. */
function diskReadBytes(): number {
  try {
    return Number(/^read_bytes: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}
