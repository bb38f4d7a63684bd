import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { tempDir } from '../../support/temp.js';

const ROOT = new URL('../../../', import.meta.url).pathname;

/** A runtime the suites run under, as a real process of it. */
export interface Runtime {
  name: 'bun' | 'deno';
  /** The command line before vitest's own arguments. */
  command: string[];
  /** The SQLite driver the embedded default must use there. */
  sqliteDriver: 'bun:sqlite' | 'node:sqlite';
}

export const RUNTIMES: Record<Runtime['name'], Runtime> = {
  // --bun: run vitest itself (and the forks it starts) on Bun, not on the Node its shebang names.
  bun: { name: 'bun', command: [join(ROOT, 'node_modules/.bin/bun'), '--bun'], sqliteDriver: 'bun:sqlite' },
  deno: { name: 'deno', command: [join(ROOT, 'node_modules/.bin/deno'), 'run', '-A'], sqliteDriver: 'node:sqlite' },
};

export interface SuiteRun {
  code: number | null;
  output: string;
  report: { numPassedTests: number; numFailedTests: number; numTotalTestSuites: number; testResults: Array<{ name: string; status: string; assertionResults: Array<{ fullName: string; status: string }> }> } | null;
}

/**
 * Runs test/edge/runtime/vitest.config.ts's suites under `runtime`: the SQLite index-store and
 * document-store conformance suites on the runtime's driver, and the engine conformance suite on
 * the embedded default (SQLite × filesystem) and on PostgreSQL × S3 (s3rver), and the HTTP API's
 * records suite (test/http/records.test.ts: the Hono app served by @hono/node-server on the
 * runtime's node:http, on the embedded default). Left out there: the
 * engine suite's "concurrency and crashes" cases, which start Node writer processes (tsx) to kill
 * and are sized for Node's timing; they run on Node in test/conformance.
 */
export async function runSuitesUnder(runtime: Runtime): Promise<SuiteRun> {
  const dir = tempDir(`xronox-${runtime.name}-suites`);
  const reportFile = join(dir.path, 'report.json');
  const [bin, ...pre] = runtime.command as [string, ...string[]];
  const args = [...pre, join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', '--config', 'test/edge/runtime/vitest.config.ts',
    '--testNamePattern', '^(?!.*concurrency and crashes)', '--reporter=json', `--outputFile=${reportFile}`];
  const env: NodeJS.ProcessEnv = { ...process.env, XRONOX_EXPECT_SQLITE_DRIVER: runtime.sqliteDriver, NO_COLOR: '1' };
  delete env.NODE_OPTIONS;
  delete env.VITEST;
  delete env.VITEST_POOL_ID;
  delete env.VITEST_WORKER_ID;
  try {
    const child = spawn(bin, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-20_000)));
    child.stderr.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-20_000)));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    let report: SuiteRun['report'] = null;
    try {
      report = JSON.parse(readFileSync(reportFile, 'utf8')) as SuiteRun['report'];
    } catch {
      report = null;
    }
    return { code, output, report };
  } finally {
    dir.cleanup();
  }
}

/** The suite files every runtime run must have passed. */
export const RUNTIME_SUITE_FILES = [
  'test/edge/runtime/sqlite-index.conformance.ts',
  'test/edge/runtime/postgres-s3.conformance.ts',
  'test/conformance/documents-sqlite.test.ts',
  'test/conformance/sqlite-fs.test.ts',
  'test/http/records.test.ts',
];

/** The test of one runtime: every suite file ran there, and passed (none failed, none missing). */
export function runtimeSuitesTest(runtime: Runtime): void {
  const what = `passes the SQLite index and document store conformance suites on ${runtime.sqliteDriver}, the engine conformance suite on SQLite × fs and on PostgreSQL × S3, and the HTTP records suite`;
  it(what, { timeout: 20 * 60_000 }, async () => {
    const run = await runSuitesUnder(runtime);
    expect(run.report, run.output).not.toBeNull();
    const report = run.report!;
    const failed = report.testResults.flatMap((f) => f.assertionResults.filter((a) => a.status === 'failed').map((a) => a.fullName));
    expect(failed, run.output).toEqual([]);
    for (const file of RUNTIME_SUITE_FILES) {
      const result = report.testResults.find((f) => f.name.endsWith(file));
      expect(result?.status, `${file} under ${runtime.name}\n${run.output}`).toBe('passed');
      expect(result!.assertionResults.filter((a) => a.status === 'passed').length).toBeGreaterThan(5);
    }
    expect(run.code, run.output).toBe(0);
  });
}
