/**
 * `xronox` as a person at a terminal meets it, each a real process: help on stdout (the whole and
 * per command), `--version`, what it says when no config file is there, `hash-key`, and a job's
 * progress on stderr counted in records against a total while stdout carries only the report.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiKeySchema, initXronox, type XronoxConfigInput } from '../../core/index.js';
import { createApiAuthenticator } from '../../functions/api/auth.js';
import { EXIT } from '../../functions/cli/xronox.js';
import { runTsx } from '../support/tsx-process.js';
import { tempDir } from '../support/temp.js';
import { writeConfig } from './support.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(root, 'functions/cli/xronox.ts');
/** tsx by path: a child in a folder outside the repository cannot resolve the bare name. */
const tsx = pathToFileURL(join(root, 'node_modules/tsx/dist/loader.mjs')).href;
/** The AWS SDK warns about Node 20 on stderr; that is not the CLI's output. */
const withoutSdkWarning = (stderr: string) => stderr.replace(/\(node:\d+\) (Warning: )?NodeVersionSupportWarning[\s\S]*?--trace-warnings[^\n]*\n/g, '');
/** The environment's config would answer for a missing one. */
const dropEnv = ['XRONOX_CONFIG_FILE'];

/** The CLI in its own process, in `cwd`, with `stdin` piped in (or none). */
function cli(args: readonly string[], options: { cwd?: string; stdin?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  for (const name of ['NODE_OPTIONS', ...dropEnv]) delete env[name];
  const child = spawn(process.execPath, ['--import', tsx, CLI, ...args], { cwd: options.cwd ?? root, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  child.stdin.end(options.stdin ?? '');
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr: withoutSdkWarning(stderr) }));
  });
}

describe('xronox, the command line', () => {
  const dir = tempDir('xronox-cli');
  afterAll(() => dir.cleanup());

  it('--help prints every command to stdout and exits 0; <command> --help prints that command\'s options', async () => {
    const all = await cli(['--help']);
    expect(all).toMatchObject({ code: EXIT.ok, stderr: '' });
    for (const command of ['xronox job run', 'xronox backup restore', 'xronox migrate', 'xronox hash-key', 'xronox --version']) expect(all.stdout).toContain(command);

    const job = await cli(['job', 'run', '--help']);
    expect(job).toMatchObject({ code: EXIT.ok, stderr: '' });
    expect(job.stdout).toMatch(/^Usage: xronox job run <archive\|retention\|backup\|offload>/);
    expect(job.stdout).toContain('--wait');
    expect(job.stdout).not.toContain('--snapshot');
    const restore = await cli(['backup', '--help']);
    expect(restore.stdout).toMatch(/^Usage: xronox backup restore/);
    expect(restore.stdout).toContain('--snapshot');
    const hashKey = await cli(['hash-key', '-h']);
    expect(hashKey.stdout).toContain('--role');

    // Bad usage stays on stderr, with exit code 2: nothing for a pipe to mistake for output.
    for (const args of [[], ['nonsense', '--help'], ['nonsense']]) {
      const run = await cli(args);
      expect({ args, code: run.code, stdout: run.stdout, usage: run.stderr.includes('Usage:') }).toEqual({ args, code: EXIT.usage, stdout: '', usage: true });
    }
  }, 60_000);

  it('--version prints the package version and exits 0', async () => {
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    expect(await cli(['--version'])).toEqual({ code: EXIT.ok, stdout: `${version}\n`, stderr: '' });
    expect((await cli(['migrate', '--version'])).code).toBe(EXIT.usage);
  });

  it('without a config file, tells a CLI user about --config and XRONOX_CONFIG_FILE, and exits 2', async () => {
    // A folder with no config and no package.json above it that has one (the temp dir).
    const empty = join(dir.path, 'empty');
    mkdirSync(empty);
    const run = await cli(['job', 'run', 'backup'], { cwd: empty });
    expect(run.code).toBe(EXIT.usage);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('No config file found: looked for xronox.config.json, .xronox.json');
    expect(run.stderr).toContain('--config <file>');
    expect(run.stderr).toContain('XRONOX_CONFIG_FILE=<file>');
    // Not the library's advice, which is for code calling initXronox.
    expect(run.stderr).not.toContain('Pass a config to initXronox');
  });

  it('hash-key prints the api.keys[] entry for the key on stdin: its SHA-256, which the API then accepts', async () => {
    const key = `xrx_${'k'.repeat(20)}${Date.now().toString(36)}`;
    const run = await cli(['hash-key', '--id', 'ci-writer', '--role', 'write', '--tenant', 'acme', '--tenant', 'beta'], { stdin: `${key}\n` });
    expect(run).toMatchObject({ code: EXIT.ok, stderr: '' });
    const entry = JSON.parse(run.stdout) as unknown;
    // The trailing newline of `echo` is not part of the key.
    expect(entry).toEqual({ id: 'ci-writer', sha256: createHash('sha256').update(key).digest('hex'), role: 'write', tenants: ['acme', 'beta'], domains: [], generic: false });
    expect(apiKeySchema.parse(entry)).toEqual(entry);
    // The entry in a config lets the key in, as that principal, and nothing else.
    const auth = createApiAuthenticator({ keys: [apiKeySchema.parse(entry)] });
    await expect(auth.authenticate(key)).resolves.toMatchObject({ id: 'key:ci-writer', role: 'write', tenants: new Set(['acme', 'beta']) });
    await expect(auth.authenticate(`${key}x`)).resolves.toBeNull();

    const admin = await cli(['hash-key', '--id', 'ops', '--role', 'admin', '--tenant', '*', '--domain', 'health', '--generic'], { stdin: key });
    expect(JSON.parse(admin.stdout)).toMatchObject({ role: 'admin', tenants: ['*'], domains: ['health'], generic: true });
  }, 60_000);

  it('hash-key refuses a short key, no key, a bad id, role or tenant by name, and prints no entry', async () => {
    const key = 'xrx_0123456789abcdefghijklmnopqrstuvwxyz';
    const cases: Array<{ args: string[]; stdin: string; says: string }> = [
      { args: ['--id', 'a', '--role', 'read'], stdin: 'hunter2', says: 'at least 32 letters' },
      { args: ['--id', 'a', '--role', 'read'], stdin: '', says: 'got nothing' },
      { args: ['--id', 'a', '--role', 'read'], stdin: `${key} ${key}`, says: 'white space' },
      // A key the API could never read from an Authorization header (not token68) gets no entry.
      { args: ['--id', 'a', '--role', 'read'], stdin: `${key}!"`, says: 'a bearer token cannot hold' },
      { args: ['--id', 'no spaces please', '--role', 'read'], stdin: key, says: '--id:' },
      { args: ['--id', 'a', '--role', 'root'], stdin: key, says: '--role:' },
      { args: ['--id', 'a'], stdin: key, says: '--role:' },
      { args: ['--id', 'a', '--role', 'read', '--tenant', '../etc'], stdin: key, says: '--tenant "../etc":' },
    ];
    for (const c of cases) {
      const run = await cli(['hash-key', ...c.args], { stdin: c.stdin });
      expect({ args: c.args, code: run.code, stdout: run.stdout, says: run.stderr.includes(c.says) }).toEqual({ args: c.args, code: EXIT.usage, stdout: '', says: true });
    }
    // Options of hash-key elsewhere are bad usage too.
    expect((await cli(['migrate', '--role', 'read'])).code).toBe(EXIT.usage);
  }, 120_000);

  describe('a job run: progress on stderr in records, the report alone on stdout', () => {
    const RECORDS = 450;
    let file = '';
    beforeAll(async () => {
      const folder = join(dir.path, 'progress');
      const config: XronoxConfigInput = {
        dbConnections: { local: { sqlitePath: `${folder}/xronox.sqlite` } },
        localStorage: { basePath: `${folder}/blobs`, enabled: true },
        databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }] } },
      };
      mkdirSync(folder, { recursive: true });
      file = writeConfig(folder, config);
      const x = initXronox(config);
      try {
        const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
        const customers = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'customers' });
        await orders.createMany(Array.from({ length: RECORDS - 50 }, (_, n) => ({ n })));
        await customers.createMany(Array.from({ length: 50 }, (_, n) => ({ n })));
      } finally {
        await x.shutdown();
      }
    });

    it('one database: stderr counts records against their total; stdout is exactly one JSON report', async () => {
      const run = await runTsx(CLI, ['job', 'run', 'backup', '--config', file], { dropEnv, killAfterMs: 120_000 });
      expect(run.code).toBe(EXIT.ok);
      const lines = withoutSdkWarning(run.stderr).trim().split('\n');
      // The total is known before the first record is written, and every record is counted against it.
      expect(lines[0]).toBe(`backup: 0/1 databases | rt_acme | 0/${RECORDS} records (0%) | -`);
      expect(lines[lines.length - 1]).toMatch(new RegExp(`^backup: 1/1 databases \\| rt_acme \\| ${RECORDS}/${RECORDS} records \\(100%\\) \\| backedUpCollections 2, backedUpRecords ${RECORDS}, backedUpVersions ${RECORDS}$`));
      expect(run.stdout.endsWith('\n')).toBe(true);
      expect(run.stdout.trim().split('\n')).toHaveLength(1);
      expect(JSON.parse(run.stdout)).toMatchObject({ job: 'backup', complete: true, counts: { backedUpRecords: RECORDS } });
    }, 150_000);

    it('--quiet: nothing on stderr, the same report on stdout', async () => {
      const run = await runTsx(CLI, ['job', 'run', 'backup', '--config', file, '--quiet'], { dropEnv, killAfterMs: 120_000 });
      expect(run.code).toBe(EXIT.ok);
      expect(withoutSdkWarning(run.stderr)).toBe('');
      expect(JSON.parse(run.stdout)).toMatchObject({ job: 'backup', complete: true, counts: { backedUpRecords: RECORDS } });
    }, 150_000);
  });
});
