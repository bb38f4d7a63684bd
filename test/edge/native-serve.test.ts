/**
 * The HTTP API on Bun's and Deno's own servers (`Bun.serve`, `Deno.serve`), over the embedded
 * default on the runtime's SQLite driver: test/edge/runtime/native-serve.ts, run as a real
 * process of each runtime, reports what it saw over HTTP.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;
const SCRIPT = join(ROOT, 'test/edge/runtime/native-serve.ts');

// Deno resolves the sources' `.js` specifiers to their `.ts` files only with --sloppy-imports (the published package's `.js` files need none).
const COMMANDS = {
  bun: [join(ROOT, 'node_modules/.bin/bun'), SCRIPT],
  deno: [join(ROOT, 'node_modules/.bin/deno'), 'run', '-A', '--sloppy-imports', SCRIPT],
} as const;

function run(command: readonly string[]): Promise<{ code: number | null; output: string }> {
  const [bin, ...args] = command as [string, ...string[]];
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.NODE_OPTIONS;
  const child = spawn(bin, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, output })));
}

describe.each(Object.keys(COMMANDS) as Array<keyof typeof COMMANDS>)('the HTTP API on %s’s own server', (runtime) => {
  it('creates, updates conditionally (412 on a stale If-Match), reads as of a time and lists the history', { timeout: 120_000 }, async () => {
    const { code, output } = await run(COMMANDS[runtime]);
    expect(code, output).toBe(0);
    const line = /NATIVE_SERVE (\{.*\})/.exec(output)?.[1];
    expect(line, output).toBeDefined();
    expect(JSON.parse(line!)).toEqual({
      runtime,
      create: { status: 201, etag: '"0"' },
      update: { status: 200, etag: '"1"' },
      stale: { status: 412, type: 'application/problem+json' },
      asOf: { status: 200, total: 12 },
      latest: { status: 200, total: 14 },
      history: { status: 200, ovs: [1, 0] },
    });
  });
});
