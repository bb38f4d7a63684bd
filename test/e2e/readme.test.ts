import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
// Resolved from this repository, so a script in a fresh folder can still be run as TypeScript.
const tsx = pathToFileURL(join(root, 'node_modules/tsx/dist/loader.mjs')).href;

describe('README', () => {
  const dir = tempDir('xronox-readme');
  afterAll(() => dir.cleanup());

  it('the library example on the first screen runs as written, in a fresh folder', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const example = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(example, 'README.md has a ts example').toBeDefined();
    // Only the import path changes: the README is read from the repository root.
    const script = example!.replace("'./core/index.js'", JSON.stringify(join(root, 'core/index.ts')));
    // .mts: the snippet uses top-level await, so it is an ES module wherever it is saved.
    const file = join(dir.path, 'example.mts');
    writeFileSync(file, script);
    const run = spawnSync(process.execPath, ['--import', tsx, file], { cwd: dir.path, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    // The example prints the history: a restore on top of an update on top of a create.
    expect(run.stdout).toMatch(/op: 'restore'[\s\S]*op: 'update'[\s\S]*op: 'create'/);
  });

  // `npm start` (the HTTP API on the embedded default) is run as written in test/http/start.test.ts.
});
