/**
 * Cold start of the API's Lambda bundle against a minimal handler bundled the same way (issue 20,
 * goal 5: the API handler imports in ≤ 1.0× the CPU and peak RSS of the minimal one).
 *
 *   npx tsx bench/cold-start.bench.ts          (or: npm run bench:cold)
 *
 * Both are bundled here with the esbuild options and plugins of serverless.yml's `custom.esbuild`
 * (as bench/http.bench.ts does; `osls package` would build the API's bundle the same way, slower):
 * - the API: functions/api/lambda.ts;
 * - the baseline: a Hono Lambda handler that validates with zod, reads MongoDB and falls back to
 *   S3 (hono + zod + @aws-sdk/client-s3 + mongodb, each imported at the top, as such a handler is
 *   written), creating its clients at module scope as the AWS guidance recommends.
 * Then BENCH_COLD_N (default 20) fresh Node processes each `require()` one of them, the two
 * taking turns, and each reports its whole-process CPU time (user + system, from the process's
 * start: Node's own start-up included) and its peak RSS (`process.resourceUsage().maxRSS`) once
 * the require has returned, plus the wall time of the require itself. Medians, min–max, and the
 * API / baseline ratio of the medians and of each pair (the machine's speed drifts; a pair shares
 * its moment). A third, empty process (`node -e ''`) gives the floor Node itself costs.
 *
 * The same comparison with a general process timer (from outside, every figure of the whole
 * process, e.g. `/usr/bin/time -v node first.cjs` against `node second.cjs`) needs only the two
 * bundles: BENCH_KEEP=1 keeps them and prints their paths.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { describeMachine, envInt, loadAverage } from './support/machine.js';
import { fmtNumber, markdownTable } from './support/measure.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const N = envInt('BENCH_COLD_N', 20, 2);

const BASELINE = `
import { Hono } from 'hono';
import { handle } from 'hono/aws-lambda';
import { z } from 'zod';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { MongoClient } from 'mongodb';

const s3 = new S3Client({});
const mongo = new MongoClient(process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017');
const Params = z.object({ tenant: z.string().regex(/^[a-z0-9-]{1,63}$/), id: z.string().uuid() });

const app = new Hono();
app.get('/v1/:tenant/items/:id', async (c) => {
  const { tenant, id } = Params.parse(c.req.param());
  const doc = await mongo.db(tenant).collection('items').findOne({ _id: id as never });
  if (doc) return c.json(doc);
  const object = await s3.send(new GetObjectCommand({ Bucket: process.env.BUCKET, Key: tenant + '/' + id + '.json' }));
  return c.json(JSON.parse(await object.Body!.transformToString()));
});
export const handler = handle(app);
`;

interface Sample {
  cpuMs: number;
  maxRssMiB: number;
  requireMs: number;
}

/** One fresh process that requires `file` (or nothing) and reports its figures. */
function coldRun(file: string | null): Sample {
  const script = `
    const t0 = process.hrtime.bigint();
    ${file === null ? '' : `require(${JSON.stringify(file)});`}
    const t1 = process.hrtime.bigint();
    const cpu = process.cpuUsage();
    process.stdout.write('COLD ' + JSON.stringify({ cpuMs: (cpu.user + cpu.system) / 1000, maxRssMiB: process.resourceUsage().maxRSS / 1024, requireMs: Number(t1 - t0) / 1e6 }) + '\\n');`;
  // No NODE_OPTIONS or NODE_PATH: the bundles must stand alone, as in a Lambda zip.
  const res = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { PATH: process.env.PATH }, cwd: os.tmpdir() });
  const line = res.stdout.split('\n').find((l) => l.startsWith('COLD '));
  if (res.status !== 0 || !line) throw new Error(`cold run of ${file ?? 'an empty process'} failed:\n${res.stdout}\n${res.stderr}`);
  return JSON.parse(line.slice(5)) as Sample;
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const spread = (xs: readonly number[], unit: string) => `${fmtNumber(median(xs))} ${unit} (${fmtNumber(Math.min(...xs))}–${fmtNumber(Math.max(...xs))})`;

const dir = mkdtempSync(join(os.tmpdir(), 'xronox-cold-'));
try {
  // serverless.yml's custom.esbuild: the same options and plugins (better-sqlite3 left out).
  const plugins = createRequire(import.meta.url)('../infra/esbuild/plugins.cjs') as Plugin[];
  const options: BuildOptions = { bundle: true, minify: true, sourcemap: true, sourcesContent: false, platform: 'node', target: 'node22', format: 'cjs', external: ['better-sqlite3'], plugins, logLevel: 'error' };
  const apiPath = join(dir, 'api', 'lambda.cjs');
  const basePath = join(dir, 'baseline', 'handler.cjs');
  await build({ ...options, entryPoints: [join(REPO, 'functions/api/lambda.ts')], outfile: apiPath });
  await build({ ...options, stdin: { contents: BASELINE, resolveDir: REPO, sourcefile: 'baseline.ts', loader: 'ts' }, outfile: basePath });
  writeFileSync(join(dir, 'baseline', 'source.ts'), BASELINE);

  console.log('Machine');
  for (const line of describeMachine(os.tmpdir())) console.log(`  ${line}`);
  console.log(`  Load average at start: ${loadAverage()}`);
  console.log(`Command    npx tsx bench/cold-start.bench.ts${process.env.BENCH_COLD_N ? `   (with BENCH_COLD_N=${N})` : ''}`);
  console.log('Durability not involved: nothing is written; each process only loads a bundle.');
  console.log();

  // One untimed round first (the page cache holds both bundles and node itself afterwards).
  coldRun(apiPath);
  coldRun(basePath);
  coldRun(null);
  const api: Sample[] = [];
  const base: Sample[] = [];
  const empty: Sample[] = [];
  for (let i = 0; i < N; i++) {
    // Taking turns, the order alternating, so that neither always runs right after the other.
    if (i % 2 === 0) {
      api.push(coldRun(apiPath));
      base.push(coldRun(basePath));
    } else {
      base.push(coldRun(basePath));
      api.push(coldRun(apiPath));
    }
    empty.push(coldRun(null));
  }

  const pick = (xs: Sample[], k: keyof Sample) => xs.map((s) => s[k]);
  const pairRatios = (k: keyof Sample) => api.map((s, i) => s[k] / base[i]![k]);
  const ratio = (k: keyof Sample) => {
    const r = median(pick(api, k)) / median(pick(base, k));
    const pairs = pairRatios(k);
    return `${r.toFixed(2)}× (pairs ${Math.min(...pairs).toFixed(2)}–${Math.max(...pairs).toFixed(2)})`;
  };
  const goal = (k: keyof Sample) => (median(pick(api, k)) / median(pick(base, k)) <= 1 ? 'met' : 'MISSED');
  console.log(`Cold start, ${N} fresh processes each, taking turns: median (min–max); ratio = API / baseline, above 1× the API costs more`);
  console.log();
  console.log(
    markdownTable(
      ['figure', 'API handler (functions/api/lambda.ts)', 'baseline: hono + zod + client-s3 + mongodb', 'API / baseline', 'goal ≤ 1.0×', 'empty node process'],
      [
        ['CPU, whole process to the end of require()', spread(pick(api, 'cpuMs'), 'ms'), spread(pick(base, 'cpuMs'), 'ms'), ratio('cpuMs'), goal('cpuMs'), spread(pick(empty, 'cpuMs'), 'ms')],
        ['peak RSS', spread(pick(api, 'maxRssMiB'), 'MiB'), spread(pick(base, 'maxRssMiB'), 'MiB'), ratio('maxRssMiB'), goal('maxRssMiB'), spread(pick(empty, 'maxRssMiB'), 'MiB')],
        ['wall time of require()', spread(pick(api, 'requireMs'), 'ms'), spread(pick(base, 'requireMs'), 'ms'), ratio('requireMs'), '—', '—'],
        ['bundle size', `${fmtNumber(statSync(apiPath).size / 1024)} KiB`, `${fmtNumber(statSync(basePath).size / 1024)} KiB`, (statSync(apiPath).size / statSync(basePath).size).toFixed(2) + '×', '—', '—'],
      ],
    ),
  );
  console.log();
  console.log(`Load average at end: ${loadAverage()}`);
  if (process.env.BENCH_KEEP === '1') console.log(`Kept the bundles: ${apiPath} and ${basePath}`);
} finally {
  if (process.env.BENCH_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
}
