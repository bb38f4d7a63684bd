/**
 * The Workers bundle: its size against Workers' limits, what dominates it, and its cold start in
 * workerd (see BENCHMARKS.md, section "Workers bundle").
 *
 *   npx tsx bench/edge-bundle.bench.ts            # BENCH_EDGE_RUNS=10 by default
 *
 * 1. Size: the bundle as deployed (infra/edge/bundle.mjs, minified), raw and gzip-compressed
 *    (level 9; Cloudflare measures the compressed upload: 3 MB on the Free plan, 10 MB on paid
 *    plans), and its 15 largest contributors by package or source folder (esbuild's metafile:
 *    bytes each leaves in the output).
 * 2. Cold start: BENCH_EDGE_RUNS times, a fresh workerd process serving the bundle; the time from
 *    spawning it to the first answer of `GET /` (process start, isolate creation, evaluation of the
 *    bundle's top level, one request through the app with the config parsed), and then of
 *    `GET /openapi.json` (the OpenAPI document generated on the first request). Median and
 *    spread. No PostgreSQL or S3 request is made: neither route reaches a store. The numbers
 *    include workerd's own start, which Cloudflare's edge does not pay per isolate (the
 *    isolate's start is the part that compares).
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
// @ts-expect-error -- an ES module of infra/ without type declarations
import { bundleWorker } from '../infra/edge/bundle.mjs';
import { tempDir } from '../test/support/temp.js';

const ROOT = new URL('../', import.meta.url).pathname;
const RUNS = Number(process.env.BENCH_EDGE_RUNS ?? 10);

interface Metafile {
  outputs: Record<string, { bytes: number; inputs: Record<string, { bytesInOutput: number }> }>;
}

function contributorOf(input: string): string {
  const inModules = input.split('node_modules/');
  if (inModules.length > 1) {
    const parts = inModules[inModules.length - 1]!.split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  return input.split('/').slice(0, 2).join('/');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function coldStart(dir: string): Promise<{ firstMs: number; openapiMs: number }> {
  const port = await freePort();
  const config = {
    dbConnections: { pg: { postgresUri: 'postgres://postgres@127.0.0.1:5432/test' } },
    spacesConnections: { r2: { endpoint: 'http://127.0.0.1:9', region: 'auto', accessKey: 'x', secretKey: 'y', forcePathStyle: true } },
    databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbName: 'bench_rt', dbConnRef: 'pg', spaceConnRef: 'r2', recordsBucket: 'b-records', versionsBucket: 'b-versions', contentBucket: 'b-content', backupsBucket: 'b-backups' }] } },
  };
  writeFileSync(
    join(dir, `config-${port}.capnp`),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "xronox", worker = (modules = [(name = "worker.js", esModule = embed "worker.js")], compatibilityDate = "2025-11-01", compatibilityFlags = ["nodejs_compat"], bindings = [(name = "XRONOX_CONFIG", text = ${JSON.stringify(JSON.stringify(config))})]))],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "xronox")],
);
`,
  );
  const started = performance.now();
  const child = spawn(join(ROOT, 'node_modules/.bin/workerd'), ['serve', join(dir, `config-${port}.capnp`)], { cwd: dir, stdio: 'ignore' });
  try {
    let firstMs: number | undefined;
    for (let attempt = 0; attempt < 2000 && firstMs === undefined; attempt++) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/`);
        await res.arrayBuffer();
        firstMs = performance.now() - started;
      } catch {
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    if (firstMs === undefined) throw new Error('workerd did not answer');
    const before = performance.now();
    const doc = await fetch(`http://127.0.0.1:${port}/openapi.json`);
    if (!doc.ok) throw new Error(`GET /openapi.json answered ${doc.status}`);
    await doc.arrayBuffer();
    return { firstMs, openapiMs: performance.now() - before };
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[]) => `median ${median(xs).toFixed(1)} ms (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)}, n=${xs.length})`;

const dir = tempDir('xronox-edge-bench');
try {
  const outfile = join(dir.path, 'worker.js');
  const meta = (await bundleWorker({ outfile })) as Metafile;
  const bytes = readFileSync(outfile);
  const gzip = gzipSync(bytes, { level: 9 }).length;
  console.log(`Workers bundle: ${(bytes.length / 1024).toFixed(0)} KiB raw, ${(gzip / 1024).toFixed(0)} KiB gzip (limits, compressed: 3 MB Free, 10 MB paid)`);
  const totals = new Map<string, number>();
  for (const output of Object.values(meta.outputs)) {
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) totals.set(contributorOf(input), (totals.get(contributorOf(input)) ?? 0) + bytesInOutput);
  }
  console.log('Largest contributors (bytes in the minified output):');
  for (const [name, n] of [...totals].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${name.padEnd(36)} ${(n / 1024).toFixed(0).padStart(6)} KiB  ${((100 * n) / bytes.length).toFixed(1)}%`);

  const first: number[] = [];
  const openapi: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const run = await coldStart(dir.path);
    first.push(run.firstMs);
    openapi.push(run.openapiMs);
  }
  console.log(`Cold start, spawn to first GET / answer: ${fmt(first)}`);
  console.log(`Then the first GET /openapi.json:        ${fmt(openapi)}`);
} finally {
  dir.cleanup();
}
