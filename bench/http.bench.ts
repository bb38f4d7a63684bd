/**
 * HTTP API benchmark, side by side with the engine called directly (see BENCHMARKS.md,
 * "HTTP API and Lambda handler").
 *
 *   npx tsx bench/http.bench.ts          (or: npm run bench:http)
 *
 * Knobs (environment): BENCH_HTTP_N (requests per side per operation, default 6000),
 * BENCH_HTTP_OFFLINE=0 (leave out serverless-offline), BENCH_COLD_N (fresh processes per
 * cold-start measurement, default 20), BENCH_KEEP=1 (keep the temp folder).
 *
 * Throughput and latency of GET (read the latest state of a record) and PUT (update with
 * If-Match) with 16 concurrent clients, each side on its own fresh SQLite file + blob folder:
 * - engine: `getLatest` / `update` on a collection, in this process;
 * - HTTP: the API app (functions/api/app.ts, built by functions/api/container.ts as the Lambda
 *   handler builds it) served by @hono/node-server in a child process, called over keep-alive
 *   HTTP/1.1 connections from this process;
 * - offline: `osls offline start --stage local` (`npm run offline`): serverless-offline turns each
 *   request into an API Gateway v2 event for the bundled Lambda handler in a worker thread.
 *   The handler waits for the blob sync before answering, so its PUTs are compared with the
 *   engine's `update` + `flush()`.
 * Sides take turns in rounds (rotating order), as in bench/engine.bench.ts.
 *
 * Cold start: the function zip that `osls package` builds is unpacked, and fresh Node processes
 * time `require()` of the bundled handler (without and with --enable-source-maps, which the
 * deployed function sets), and import + the first invocation (config, engine, app, one GET). The
 * baseline is a minimal Hono Lambda handler bundled with the same esbuild options.
 *
 * With `--serve <config file>`, this file is the HTTP side's server (used by the bench itself).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import type { BuildOptions, Plugin } from 'esbuild';

const REPO = fileURLToPath(new URL('..', import.meta.url));
/** Clock ticks per second of /proc's CPU times. */
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** What the run started (servers, folders), stopped and removed even when the run fails. */
const cleanups: Array<() => unknown> = [];

if (process.argv[2] === '--serve') {
  await serveApp(process.argv[3]!);
} else {
  try {
    await main();
  } finally {
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch((err: unknown) => console.error('cleanup failed:', err));
  }
}

/** The HTTP side's server: the app as the Lambda handler builds it, served by @hono/node-server. */
async function serveApp(configFile: string): Promise<void> {
  const { serve } = await import('@hono/node-server');
  const { createContainer } = await import('../functions/api/container.js');
  const { createApp } = await import('../functions/api/app.js');
  const container = createContainer({ env: { XRONOX_CONFIG_FILE: configFile }, buildApp: ({ xronox }) => createApp({ xronox }) });
  const { app } = await container.get();
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) => {
    process.stderr.write(`LISTENING ${info.port}\n`);
  });
  process.on('SIGTERM', () => {
    server.close();
    void container.close().then(() => process.exit(0));
  });
}

async function main(): Promise<void> {
  const { hashApiKey } = await import('../functions/api/api-keys.js');
  const { createContainer } = await import('../functions/api/container.js');
  const { makeData } = await import('./support/document.js');
  const { fmtNumber, markdownTable, now, secondsSince, summarise } = await import('./support/measure.js');
  const { httpApiEvent } = await import('../test/lambda/http-api-event.js');
  const { oslsPackage, serviceDir, startOffline } = await import('../test/lambda/osls.js');
  const { readZip } = await import('../test/lambda/zip.js');
  const { build } = await import('esbuild');

  const N = envInt('BENCH_HTTP_N', 6000);
  const COLD_N = envInt('BENCH_COLD_N', 20);
  const WITH_OFFLINE = process.env.BENCH_HTTP_OFFLINE !== '0';
  const CLIENTS = 16;
  const ROUNDS = 3;
  const WARMUP = 400;
  const RECORDS = 256;
  const KEY = 'xrx_http-bench-key';
  const TENANT = 'bench';

  const runStart = now();
  const loadBefore = os.loadavg();
  const dir = join(os.tmpdir(), `xronox-http-bench-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  if (process.env.BENCH_KEEP !== '1') cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const log = (message: string) => console.log(`[${secondsSince(runStart).toFixed(1).padStart(6)} s] ${message}`);

  /** One side's own config file: a fresh SQLite file and blob folder next to it. */
  const configFor = (side: string): string => {
    const file = join(dir, side, 'xronox.config.json');
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(
      file,
      JSON.stringify({
        dbConnections: { local: { sqlitePath: 'xronox.sqlite' } },
        localStorage: { basePath: 'blobs', enabled: true },
        databases: { runtime: { tenantDatabases: [{ tenantId: TENANT, dbConnRef: 'local', dbName: 'rt_bench' }] } },
        api: { keys: [{ id: 'bench', sha256: hashApiKey(KEY), role: 'write', tenants: [TENANT] }] },
      }),
    );
    return file;
  };

  // ---- the sides ------------------------------------------------------------------------

  interface Side {
    label: string;
    /** The latest state of record `i % RECORDS`. */
    get(i: number): Promise<void>;
    /** Update worker `w`'s own record with the ov it last saw. */
    put(w: number, seq: number): Promise<void>;
    /** CPU seconds used so far by the process(es) that serve this side's requests. */
    cpu(): number;
    close(): Promise<void>;
  }

  const engineContainer = createContainer({ env: { XRONOX_CONFIG_FILE: configFor('engine') }, buildApp: () => null });
  cleanups.push(() => engineContainer.close());
  const { xronox } = await engineContainer.get();
  const orders = xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: TENANT, collection: 'orders' });
  const engineIds: string[] = [];
  for (let i = 0; i < RECORDS; i++) engineIds.push((await orders.create(makeData(i), 'bench')).id);
  const engineOv = new Map<number, { id: string; ov: number }>();
  for (let w = 0; w < CLIENTS; w++) engineOv.set(w, { id: engineIds[w]!, ov: 0 });
  await xronox.flush();
  const engineSide = (flush: boolean): Side => ({
    label: flush ? 'engine: update + flush()' : 'engine',
    async get(i) {
      if (!(await orders.getLatest(engineIds[i % RECORDS]!))) throw new Error('engine: record missing');
    },
    async put(w, seq) {
      const mine = engineOv.get(w)!;
      mine.ov = (await orders.update(mine.id, makeData(seq), mine.ov, 'bench')).ov;
      if (flush) await xronox.flush();
    },
    cpu: () => {
      const { user, system } = process.cpuUsage();
      return (user + system) / 1e6;
    },
    close: () => Promise.resolve(),
  });

  /** GET and PUT over HTTP to `base`, with one keep-alive connection per client. */
  const httpSide = async (label: string, base: URL, cpu: () => number): Promise<Side> => {
    const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
    const auth = { authorization: `Bearer ${KEY}` };
    const path = `/v1/tenants/${TENANT}/runtime/orders`;
    const ids: string[] = [];
    for (let i = 0; i < RECORDS; i++) {
      const res = await call(agent, base, 'POST', path, { ...auth, 'content-type': 'application/json' }, JSON.stringify(makeData(i)));
      if (res.status !== 201) throw new Error(`${label}: create answered ${res.status}: ${res.body}`);
      ids.push((JSON.parse(res.body) as { id: string }).id);
    }
    const mine = Array.from({ length: CLIENTS }, (_, w) => ({ id: ids[w]!, etag: '"0"' }));
    return {
      label,
      async get(i) {
        const res = await call(agent, base, 'GET', `${path}/${ids[i % RECORDS]}`, auth);
        if (res.status !== 200) throw new Error(`${label}: GET answered ${res.status}: ${res.body}`);
      },
      async put(w, seq) {
        const record = mine[w]!;
        const res = await call(agent, base, 'PUT', `${path}/${record.id}`, { ...auth, 'content-type': 'application/json', 'if-match': record.etag }, JSON.stringify(makeData(seq)));
        if (res.status !== 200 || res.etag === undefined) throw new Error(`${label}: PUT answered ${res.status} (ETag ${res.etag}): ${res.body}`);
        record.etag = res.etag;
      },
      cpu,
      close: async () => agent.destroy(),
    };
  };

  log(`HTTP side: the API app on @hono/node-server (child process)`);
  const server = await startServer(configFor('http'));
  cleanups.push(() => server.stop());
  const httpApp = await httpSide('HTTP (Hono app, node-server)', new URL(`http://127.0.0.1:${server.port}`), () => processCpuSeconds((pid) => pid === server.pid));

  let offline: Awaited<ReturnType<typeof startOffline>> | undefined;
  let offlineService: ReturnType<typeof serviceDir> | undefined;
  let offlineSide: Side | undefined;
  if (WITH_OFFLINE) {
    log('offline side: osls offline start --stage local');
    const service = serviceDir('xronox-bench-offline');
    offlineService = service;
    cleanups.push(() => service.cleanup());
    const [httpPort, lambdaPort] = [await freePort(), await freePort()];
    offline = await startOffline(offlineService, {
      httpPort,
      lambdaPort,
      // Idle workers are kept for the whole run, so no round pays for another cold start.
      env: { XRONOX_CONFIG_FILE: configFor('offline') },
      extraArgs: ['--terminateIdleLambdaTime', '3600'],
    });
    const started = offline;
    cleanups.push(() => started.stop());
    // Every process of the group osls leads (npx, node, esbuild's service), worker threads included.
    const group = offline.child.pid!;
    offlineSide = await httpSide('serverless-offline (Lambda handler)', new URL(offline.url), () => processCpuSeconds((_pid, pgrp) => pgrp === group)).catch((err: unknown) => {
      throw new Error(`${String(err)}\nserverless-offline said:\n${started.output()}`);
    });
  }

  // ---- throughput and latency -------------------------------------------------------------

  interface Measured {
    requests: number;
    seconds: number;
    /** CPU seconds of the serving process(es). */
    cpu: number;
    latencies: Float64Array;
  }
  const totals = new Map<string, Measured>();
  const add = (key: string, m: Measured) => {
    const t = totals.get(key);
    if (!t) totals.set(key, m);
    else totals.set(key, { requests: t.requests + m.requests, seconds: t.seconds + m.seconds, cpu: t.cpu + m.cpu, latencies: concat(t.latencies, m.latencies) });
  };

  /** `count` operations by `CLIENTS` concurrent clients (each its own loop), with per-call latency in µs. */
  const run = async (side: Side, count: number, op: (w: number, k: number) => Promise<void>, seqBase: number): Promise<Measured> => {
    const per = Math.ceil(count / CLIENTS);
    const latencies = new Float64Array(per * CLIENTS);
    const cpuBefore = side.cpu();
    const start = now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, w) => {
        for (let k = 0; k < per; k++) {
          const t0 = now();
          await op(w, seqBase + k * CLIENTS + w);
          latencies[w * per + k] = Number(now() - t0) / 1e3;
        }
      }),
    );
    const seconds = secondsSince(start);
    return { requests: per * CLIENTS, seconds, cpu: side.cpu() - cpuBefore, latencies };
  };

  const sides: Side[] = [engineSide(false), engineSide(true), httpApp, ...(offlineSide ? [offlineSide] : [])];
  log(`warm-up: ${WARMUP} GETs and PUTs per side`);
  for (const side of sides) {
    await run(side, WARMUP, (_w, k) => side.get(k), 0);
    await run(side, WARMUP, (w, k) => side.put(w, k), 1_000_000);
  }

  const perRound = Math.ceil(N / ROUNDS);
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < sides.length; k++) {
      const side = sides[(k + round) % sides.length]!;
      await xronox.flush();
      const seq = 2_000_000 + round * perRound;
      if (side.label !== 'engine: update + flush()') add(`${side.label}\u0000GET`, await run(side, perRound, (_w, i) => side.get(i), seq));
      add(`${side.label}\u0000PUT`, await run(side, perRound, (w, i) => side.put(w, i), seq));
    }
    log(`round ${round + 1}/${ROUNDS} done`);
  }

  const stat = (label: string, op: string) => {
    const m = totals.get(`${label}\u0000${op}`);
    if (!m) return null;
    const lat = summarise(m.latencies);
    return { rps: m.requests / m.seconds, p50: lat.p50, p99: lat.p99, cpuUs: (m.cpu / m.requests) * 1e6 };
  };
  const rps = (s: { rps: number } | null) => (s ? `${fmtNumber(s.rps)} req/s` : '—');
  const lat = (s: { p50: number; p99: number } | null) => (s ? `${fmtNumber(s.p50 / 1000)} / ${fmtNumber(s.p99 / 1000)} ms` : '—');
  const cpuUs = (s: { cpuUs: number } | null) => (s ? `${fmtNumber(s.cpuUs)} µs` : '—');
  const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? '—' : `${(a / b).toFixed(2)}×`);

  const eng = { get: stat('engine', 'GET'), put: stat('engine', 'PUT'), putFlush: stat('engine: update + flush()', 'PUT') };
  const http = { get: stat(httpApp.label, 'GET'), put: stat(httpApp.label, 'PUT') };
  const off = offlineSide ? { get: stat(offlineSide.label, 'GET'), put: stat(offlineSide.label, 'PUT') } : { get: null, put: null };

  const throughputRows = [
    ['GET (getLatest)', rps(eng.get), rps(http.get), ratio(http.get?.rps, eng.get?.rps), rps(off.get), ratio(off.get?.rps, eng.get?.rps)],
    ['PUT (update), acknowledged', rps(eng.put), rps(http.put), ratio(http.put?.rps, eng.put?.rps), '—', '—'],
    ['PUT (update), incl. blob sync (flush)', rps(eng.putFlush), '—', '—', rps(off.put), ratio(off.put?.rps, eng.putFlush?.rps)],
  ];
  const latencyRows = [
    ['GET (getLatest)', lat(eng.get), lat(http.get), ratio(http.get?.p50, eng.get?.p50) + ' / ' + ratio(http.get?.p99, eng.get?.p99), lat(off.get), ratio(off.get?.p50, eng.get?.p50) + ' / ' + ratio(off.get?.p99, eng.get?.p99)],
    ['PUT (update), acknowledged', lat(eng.put), lat(http.put), ratio(http.put?.p50, eng.put?.p50) + ' / ' + ratio(http.put?.p99, eng.put?.p99), '—', '—'],
    ['PUT (update), incl. blob sync (flush)', lat(eng.putFlush), '—', '—', lat(off.put), ratio(off.put?.p50, eng.putFlush?.p50) + ' / ' + ratio(off.put?.p99, eng.putFlush?.p99)],
  ];

  const cpuRows = [
    ['GET (getLatest)', cpuUs(eng.get), cpuUs(http.get), ratio(http.get?.cpuUs, eng.get?.cpuUs), cpuUs(off.get), ratio(off.get?.cpuUs, eng.get?.cpuUs)],
    ['PUT (update), acknowledged', cpuUs(eng.put), cpuUs(http.put), ratio(http.put?.cpuUs, eng.put?.cpuUs), '—', '—'],
    ['PUT (update), incl. blob sync (flush)', cpuUs(eng.putFlush), '—', '—', cpuUs(off.put), ratio(off.put?.cpuUs, eng.putFlush?.cpuUs)],
  ];

  await httpApp.close();
  await offlineSide?.close();
  await server.stop();
  await offline?.stop();
  offlineService?.cleanup();
  await engineContainer.close();

  // ---- cold start -------------------------------------------------------------------------

  log('cold start: npx osls package');
  const packService = serviceDir('xronox-bench-package');
  cleanups.push(() => packService.cleanup());
  const packaged = oslsPackage(packService);
  const zipBytes = statSync(packaged.zipPath).size;
  const taskRoot = join(dir, 'task');
  const entries = readZip(packaged.zipPath);
  for (const entry of entries) {
    mkdirSync(dirname(join(taskRoot, entry.name)), { recursive: true });
    writeFileSync(join(taskRoot, entry.name), entry.read());
  }
  packService.cleanup();
  const bundlePath = join(taskRoot, 'functions/api/lambda.cjs');
  const bundleBytes = statSync(bundlePath).size;
  const mapBytes = statSync(`${bundlePath}.map`).size;

  // The same esbuild options as serverless.yml's custom.esbuild, for the baseline and the breakdown.
  const plugins = createRequire(import.meta.url)('../infra/esbuild/plugins.cjs') as Plugin[];
  const esbuildOptions: BuildOptions = { bundle: true, minify: true, sourcemap: true, sourcesContent: false, platform: 'node', target: 'node22', format: 'cjs', external: ['better-sqlite3'], plugins };
  const baselinePath = join(dir, 'baseline', 'handler.cjs');
  await build({
    ...esbuildOptions,
    stdin: {
      contents: "import { Hono } from 'hono';\nimport { handle } from 'hono/aws-lambda';\nconst app = new Hono();\napp.get('/', (c) => c.json({ ok: true }));\nexport const handler = handle(app);\n",
      resolveDir: REPO,
      sourcefile: 'baseline.ts',
      loader: 'ts',
    },
    outfile: baselinePath,
    logLevel: 'error',
  });
  const baselineBytes = statSync(baselinePath).size;
  const meta = await build({ ...esbuildOptions, entryPoints: [join(REPO, 'functions/api/lambda.ts')], outfile: join(dir, 'meta', 'lambda.cjs'), metafile: true, logLevel: 'error' });
  if (!meta.metafile) throw new Error('esbuild returned no metafile');
  const byPackage = new Map<string, number>();
  for (const output of Object.values(meta.metafile.outputs)) {
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input)?.[1] ?? (input.startsWith('core/') ? 'core/ (Xronox engine)' : input.startsWith('functions/') ? 'functions/ (API)' : input);
      byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + bytesInOutput);
    }
  }
  const metaBytes = statSync(join(dir, 'meta', 'lambda.cjs')).size;

  const coldConfig = configFor('cold');
  // The first request of a cold container: an authenticated listing (auth, validation, SQLite open, query).
  const firstEvent = JSON.stringify(httpApiEvent({ method: 'GET', url: `/v1/tenants/${TENANT}/runtime/orders?limit=10`, headers: { authorization: `Bearer ${KEY}` } }));
  /** One fresh process: ms to require() the module, and (with `invoke`) ms from start to the first answer. */
  const coldRun = (file: string, opts: { sourceMaps?: boolean; invoke?: boolean }): { importMs: number; firstMs?: number } => {
    const script = `
      const t0 = process.hrtime.bigint();
      const mod = require(${JSON.stringify(file)});
      const t1 = process.hrtime.bigint();
      (async () => {
        let first;
        if (${opts.invoke ? 'true' : 'false'}) {
          const res = await mod.handler(JSON.parse(process.env.EVENT), { awsRequestId: 'cold' });
          if (res.statusCode !== 200) throw new Error('first invocation answered ' + res.statusCode + ': ' + res.body);
          first = Number(process.hrtime.bigint() - t0) / 1e6;
          await mod.container.close();
        }
        process.stdout.write('COLD ' + JSON.stringify({ importMs: Number(t1 - t0) / 1e6, firstMs: first }) + '\\n');
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const args = [...(opts.sourceMaps ? ['--enable-source-maps'] : []), '-e', script];
    const res = spawnSync(process.execPath, args, {
      cwd: dirname(file),
      encoding: 'utf8',
      // NODE_PATH: the lazily required better-sqlite3 of the embedded config (on Lambda, MongoDB).
      env: { PATH: process.env.PATH, XRONOX_CONFIG_FILE: coldConfig, NODE_PATH: join(REPO, 'node_modules'), EVENT: opts.invoke === true ? firstEvent : '' },
    });
    const line = res.stdout.split('\n').find((l) => l.startsWith('COLD '));
    if (res.status !== 0 || !line) throw new Error(`cold run of ${file} failed:\n${res.stdout}\n${res.stderr}`);
    return JSON.parse(line.slice(5)) as { importMs: number; firstMs?: number };
  };

  log(`cold start: ${COLD_N} fresh processes per measurement, taking turns`);
  const cold = { bundle: [] as number[], bundleMaps: [] as number[], baseline: [] as number[], first: [] as number[], firstMaps: [] as number[] };
  for (let i = 0; i < COLD_N; i++) {
    cold.bundle.push(coldRun(bundlePath, {}).importMs);
    cold.baseline.push(coldRun(baselinePath, {}).importMs);
    cold.bundleMaps.push(coldRun(bundlePath, { sourceMaps: true }).importMs);
    cold.first.push(coldRun(bundlePath, { invoke: true }).firstMs!);
    cold.firstMaps.push(coldRun(bundlePath, { invoke: true, sourceMaps: true }).firstMs!);
  }
  const med = (xs: number[]) => summarise(Float64Array.from(xs).map((x) => x * 1000));
  const ms = (xs: number[]) => {
    const s = med(xs);
    return `${fmtNumber(s.p50 / 1000)} ms (p99 ${fmtNumber(s.p99 / 1000)})`;
  };
  const kib = (b: number) => `${fmtNumber(b / 1024)} KiB`;
  const baseMed = med(cold.baseline).p50;

  // ---- report -----------------------------------------------------------------------------

  const loadAfter = os.loadavg();
  const cpu = os.cpus();
  console.log('\n## Machine\n');
  console.log(
    markdownTable(
      ['', ''],
      [
        ['CPU', `${cpu[0]?.model ?? 'unknown'} × ${cpu.length}`],
        ['Memory', `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`],
        ['OS', `${os.type()} ${os.release()} (${os.arch()})`],
        ['Node', process.version],
        ['Load average at start / end', `${loadBefore[0]!.toFixed(2)} / ${loadAfter[0]!.toFixed(2)}`],
      ],
    ),
  );
  console.log(`\nThroughput, ${CLIENTS} concurrent clients, ${N} requests per side per operation in ${ROUNDS} rounds (ratio = side / engine; above 1× is faster)\n`);
  console.log(markdownTable(['operation', 'engine direct', 'HTTP: Hono app (node-server)', 'HTTP / engine', 'serverless-offline (Lambda handler)', 'offline / engine'], throughputRows));
  console.log(`\nLatency p50 / p99 per request, same runs (ratio = side / engine; above 1× is slower)\n`);
  console.log(markdownTable(['operation', 'engine direct', 'HTTP: Hono app (node-server)', 'HTTP / engine', 'serverless-offline (Lambda handler)', 'offline / engine'], latencyRows));
  console.log(
    `\nCPU per request of the serving process (engine: this process, including the benchmark loop; HTTP: the server process; offline: every process of osls's group, worker threads included), same runs (ratio = side / engine)\n`,
  );
  console.log(markdownTable(['operation', 'engine direct', 'HTTP: Hono app (node-server)', 'HTTP / engine', 'serverless-offline (Lambda handler)', 'offline / engine'], cpuRows));
  console.log(`\nCold start: median (p99) over ${COLD_N} fresh Node processes each, taking turns (ratio = API / baseline)\n`);
  console.log(
    markdownTable(
      ['measurement', 'API handler (osls package zip)', 'baseline: minimal Hono handler', 'API / baseline'],
      [
        ['require() of the bundle', ms(cold.bundle), ms(cold.baseline), ratio(med(cold.bundle).p50, baseMed)],
        ['require() with --enable-source-maps (as deployed)', ms(cold.bundleMaps), '—', ratio(med(cold.bundleMaps).p50, baseMed)],
        ['require() + first invocation (config, engine, app, an authenticated GET list)', ms(cold.first), '—', '—'],
        ['same, with --enable-source-maps', ms(cold.firstMaps), '—', '—'],
        ['bundle size', `${kib(bundleBytes)} (+ ${kib(mapBytes)} source map)`, kib(baselineBytes), ratio(bundleBytes, baselineBytes)],
        ['zip size', kib(zipBytes), '—', '—'],
      ],
    ),
  );
  const top = [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 10);
  console.log(`\nWhat the bundle holds (esbuild metafile of the same build, ${kib(metaBytes)}; bytes in the minified output)\n`);
  console.log(markdownTable(['input', 'bytes', 'share'], top.map(([name, bytes]) => [name, kib(bytes), `${((bytes / metaBytes) * 100).toFixed(1)} %`])));
  console.log(`\nLoad average at end: ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`Total run time: ${secondsSince(runStart).toFixed(1)} s`);
  if (process.env.BENCH_KEEP === '1') console.log(`Kept ${dir}`);

  async function startServer(configFile: string): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve', configFile], {
      cwd: REPO,
      // The app's request log goes to stdout: discarded, as CloudWatch would take it elsewhere.
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    const port = await new Promise<number>((resolve, reject) => {
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /LISTENING (\d+)/.exec(err);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`the HTTP server exited (${code}):\n${err}`)));
    });
    return {
      port,
      pid: child.pid!,
      stop: () =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
    };
  }
}

interface HttpAnswer {
  status: number;
  body: string;
  etag: string | undefined;
}

function call(agent: Agent, base: URL, method: string, path: string, headers: Record<string, string>, body?: string): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { agent, host: base.hostname, port: base.port, method, path, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), etag: res.headers.etag }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** CPU seconds (user + system) of the processes `match` selects, from /proc (Linux). */
function processCpuSeconds(match: (pid: number, pgrp: number) => boolean): number {
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // Fields after the command name (which may contain spaces) in parentheses: state ppid pgrp … utime(14) stime(15).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (match(Number(entry), Number(fields[2]))) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / CLOCK_TICKS;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    import('node:net')
      .then(({ createServer }) => {
        const server = createServer();
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => {
          const { port } = server.address() as AddressInfo;
          server.close(() => resolve(port));
        });
      })
      .catch(reject);
  });
}

function concat(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function envInt(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, not ${JSON.stringify(value)}`);
  return n;
}
