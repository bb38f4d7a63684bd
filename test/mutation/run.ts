/**
 * `npm run test:mutation [-- module…]`: one Stryker run per module of modules.json (all of them
 * without arguments), each mutating the module and running the test files listed with it, then a
 * table of the scores. Exits non-zero if a run fails or a score is under the break threshold of
 * stryker.config.mjs. Reports: reports/mutation/<module>.html and .json.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import modules from './modules.json' with { type: 'json' };

const BREAK = 85;
const root = join(import.meta.dirname, '..', '..');
const all = Object.keys(modules);
const asked = process.argv.slice(2);
const unknown = asked.filter((m) => !all.includes(m));
if (unknown.length > 0) {
  console.error(`Unknown module ${unknown.join(', ')}; expected some of: ${all.join(', ')}`);
  process.exit(2);
}

/** What a Stryker JSON report says of its mutants. */
interface Report {
  files: Record<string, { mutants: { status: string }[] }>;
}

function score(reportFile: string): { score: number; killed: number; survived: number; noCoverage: number; timeout: number; errors: number } {
  const report = JSON.parse(readFileSync(reportFile, 'utf8')) as Report;
  const count = (status: string) => Object.values(report.files).reduce((n, f) => n + f.mutants.filter((m) => m.status === status).length, 0);
  const killed = count('Killed');
  const timeout = count('Timeout');
  const survived = count('Survived');
  const noCoverage = count('NoCoverage');
  const errors = count('RuntimeError') + count('CompileError');
  // Stryker's own definition: detected / (detected + undetected); errors count in neither.
  const detected = killed + timeout;
  return { score: (100 * detected) / (detected + survived + noCoverage), killed, survived, noCoverage, timeout, errors };
}

let child: ReturnType<typeof spawn> | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    child?.kill(signal);
    process.exit(130);
  });
}

function stryker(module: string): Promise<number> {
  return new Promise((resolve, reject) => {
    child = spawn(join(root, 'node_modules', '.bin', 'stryker'), ['run', 'stryker.config.mjs'], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, XRONOX_MUTATE: module },
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

const rows: string[] = [];
let failed = false;
for (const module of asked.length > 0 ? asked : all) {
  const started = Date.now();
  const code = await stryker(module);
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  try {
    const s = score(join(root, 'reports', 'mutation', `${module.replaceAll('/', '-')}.json`));
    if (s.score < BREAK) failed = true;
    rows.push(`| ${module} | ${s.score.toFixed(2)} | ${s.killed} | ${s.timeout} | ${s.survived} | ${s.noCoverage} | ${s.errors} | ${minutes} min |`);
  } catch (err) {
    failed = true;
    rows.push(`| ${module} | no report (${(err as Error).message}) | | | | | | ${minutes} min |`);
  }
  // A run that ended on an error (not on a low score) fails the whole command too.
  if (code !== 0) failed = true;
}
console.log(['', '| module | score % | killed | timeout | survived | no coverage | errors | time |', '| --- | --- | --- | --- | --- | --- | --- | --- |', ...rows].join('\n'));
process.exit(failed ? 1 : 0);
