import { defineConfig } from 'vitest/config';

/** The suites test/edge/runtimes.test.ts runs under Bun and Deno (one file at a time). */
// eslint-disable-next-line no-restricted-syntax -- vitest reads a config file's default export
export default defineConfig({
  test: {
    root: new URL('../../../', import.meta.url).pathname,
    include: ['test/edge/runtime/*.conformance.ts', 'test/conformance/documents-sqlite.test.ts', 'test/conformance/sqlite-fs.test.ts', 'test/http/records.test.ts'],
    // Bun's import of zod through vitest's external-module interop lost the `z` binding; run it through vite.
    server: { deps: { inline: ['zod'] } },
    pool: 'forks',
    maxWorkers: 1,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
