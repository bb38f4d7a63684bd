// Mutation testing (`npm run test:mutation`, not part of `npm test`): each module of
// test/mutation/modules.json is mutated and run against the test files listed with it, one Stryker
// run per module, so a module's score says what its own tests catch. test/mutation/run.ts runs
// them in turn; XRONOX_MUTATE names the module of one run.
import { readFileSync } from 'node:fs';
import process from 'node:process';
import { URL } from 'node:url';

const modules = JSON.parse(readFileSync(new URL('./test/mutation/modules.json', import.meta.url), 'utf8'));
const key = process.env.XRONOX_MUTATE ?? '';
const module = modules[key];
if (!module) throw new Error(`Set XRONOX_MUTATE to one of: ${Object.keys(modules).join(', ')} (or run npm run test:mutation)`);
const reportName = key.replaceAll('/', '-');

/** The score every module must reach; below it the run fails. */
const BREAK = 85;

export default {
  testRunner: 'vitest',
  // The module's test files are chosen by vitest.mutation.config.ts (see there why not `testFiles`).
  vitest: { configFile: 'vitest.mutation.config.ts', related: false },
  coverageAnalysis: 'perTest',
  mutate: [module.mutate],
  // Two cores shared with other work; XRONOX_MUTATION_CONCURRENCY raises or lowers it.
  concurrency: Number(process.env.XRONOX_MUTATION_CONCURRENCY ?? 2),
  // A busy machine slows a test run down; only a mutant that loops should time out.
  timeoutFactor: 2,
  timeoutMS: 15_000,
  thresholds: { high: 90, low: BREAK, break: BREAK },
  reporters: ['clear-text', 'progress', 'html', 'json'],
  clearTextReporter: { allowColor: false, logTests: false, reportTests: false },
  htmlReporter: { fileName: `reports/mutation/${reportName}.html` },
  jsonReporter: { fileName: `reports/mutation/${reportName}.json` },
  // The sandbox, a copy of the sources, is removed after every run; tests write only to temp dirs.
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  ignorePatterns: ['bench', 'reports', '.stryker-tmp*', '.xronox-data', '.serverless', '.scratch', 'coverage', '*.md'],
};
