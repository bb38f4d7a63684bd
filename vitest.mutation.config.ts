import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';
import modules from './test/mutation/modules.json' with { type: 'json' };

/**
 * The vitest config of a mutation run (stryker.config.mjs): the project's, limited to the test
 * files of the module named by XRONOX_MUTATE. The limit is set here rather than with Stryker's
 * own `testFiles` option, because in Stryker 9.6 that option makes static mutants (a changed
 * constant, a changed regex) run without being switched on, so they always count as survived.
 */
const key = process.env.XRONOX_MUTATE ?? '';
const module = (modules as Record<string, { mutate: string; testFiles: string[] } | undefined>)[key];
if (!module) throw new Error(`XRONOX_MUTATE must be one of: ${Object.keys(modules).join(', ')}`);

// Without the projects of the base config: a mutant is judged by its module's files, run once.
export default defineConfig({ ...base, test: { ...base.test, projects: undefined, include: module.testFiles } });
