/**
 * Every TypeScript snippet of the README and of docs/ is extracted, type-checked with the
 * project's own compiler settings and run, so that none can drift from the code. The README's
 * first snippet is a whole program, and so is the first snippet of a docs/ page that imports
 * something; each other snippet continues its page's whole program, or, on a page whose first
 * snippet imports nothing, the README's (as docs/collections.md says): it gets that program's
 * setup (its lines before the first `await`: the import, `xronox` and `orders`) and nothing else,
 * so a name a snippet uses without defining is a type error here, as it would be for a reader.
 * A fence with a word after its language (```ts running-server) is left out: it needs a server
 * or generated files, and the test its page names runs it (docs/http.md: openapi-client.test.ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const tsx = pathToFileURL(join(root, 'node_modules/tsx/dist/loader.mjs')).href;
const tsc = join(root, 'node_modules/typescript/bin/tsc');

interface Snippet {
  file: string;
  line: number;
  code: string;
}

/** The TypeScript snippets of one Markdown file, with the line each starts on. */
function snippetsOf(markdown: string, file: string): Snippet[] {
  const out: Snippet[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i]!)) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !lines[end]!.startsWith('```')) end++;
    out.push({ file, line: start + 1, code: lines.slice(start, end).join('\n') });
    i = end;
  }
  return out;
}

function markdownFiles(): string[] {
  const docs = join(root, 'docs');
  const extra = existsSync(docs) ? readdirSync(docs, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.md')).map((f) => join(docs, f)) : [];
  return [join(root, 'README.md'), ...extra.sort()];
}

/** The snippet as a program: the first snippet's setup before it (unless it is the first), with imports pointing at the repository's code. */
function program(snippet: Snippet, first: Snippet, importPath: string): string {
  const setupEnd = first.code.split('\n').findIndex((l) => l.includes('await '));
  const setup = first.code.split('\n').slice(0, setupEnd === -1 ? undefined : setupEnd).join('\n');
  const body = snippet === first ? snippet.code : `${setup}\n\n${snippet.code}\nawait xronox.shutdown();\n`;
  return `${body.replaceAll("'./core/index.js'", `'${importPath}'`)}\nexport {};\n`;
}

const snippets = markdownFiles().flatMap((file) => snippetsOf(readFileSync(file, 'utf8'), relative(root, file)));

/** The whole program a snippet continues (or is): its page's first snippet when that imports something, else the README's first. */
function setupOf(snippet: Snippet): Snippet {
  const first = snippets.find((s) => s.file === snippet.file)!;
  return /^import /m.test(first.code) ? first : snippets[0]!;
}

describe('every TypeScript snippet of the README and docs/', () => {
  // Inside the repository (an ignored folder), so the project's tsconfig and node_modules apply.
  const folder = join(root, '.scratch', `readme-snippets-${process.pid}-${Date.now()}`);
  const runDir = tempDir('xronox-readme-snippets');
  mkdirSync(folder, { recursive: true });
  const files = snippets.map((snippet, i) => {
    const first = setupOf(snippet);
    const path = join(folder, `snippet-${i}.mts`);
    writeFileSync(path, program(snippet, first, relative(folder, join(root, 'core/index.js')).replaceAll('\\', '/')));
    return { snippet, path };
  });
  afterAll(() => {
    rmSync(folder, { recursive: true, force: true });
    runDir.cleanup();
  });

  it('there are snippets to check', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(6);
  });

  it('type-check under the project\'s compiler settings', () => {
    writeFileSync(
      join(folder, 'tsconfig.json'),
      JSON.stringify({ extends: relative(folder, join(root, 'tsconfig.json')), compilerOptions: { noEmit: true, noUnusedLocals: false }, include: ['*.mts'] }),
    );
    const run = spawnSync(process.execPath, [tsc, '-p', join(folder, 'tsconfig.json')], { encoding: 'utf8' });
    // Name each failing snippet by the Markdown line it comes from.
    const report = run.stdout.replace(/\S*snippet-(\d+)\.mts\((\d+),(\d+)\)/g, (_, i: string, line: string, column: string) => {
      const { snippet } = files[Number(i)]!;
      return `${snippet.file}, the snippet at line ${snippet.line} (its program's line ${line}, column ${column})`;
    });
    expect(report).toBe('');
    expect(run.status).toBe(0);
  });

  it.each(files.map((f) => [`${f.snippet.file}:${f.snippet.line}`, f] as const))('runs: %s', (_label, { path }) => {
    // Each in a folder of its own: the dev config keeps its data under the working directory.
    const cwd = join(runDir.path, String(files.findIndex((f) => f.path === path)));
    mkdirSync(cwd, { recursive: true });
    const run = spawnSync(process.execPath, ['--import', tsx, path], { cwd, encoding: 'utf8', timeout: 60_000 });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    // The first screen's example prints the history: a restore on top of an update on top of a create.
    if (path === files[0]!.path) expect(run.stdout).toMatch(/op: 'restore'[\s\S]*op: 'update'[\s\S]*op: 'create'/);
  });
});
