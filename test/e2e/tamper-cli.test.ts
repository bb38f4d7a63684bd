/**
 * `npx xronox verify` as a process: a clean store exits 0 with the report on stdout; after a
 * version file is edited, the finding is on stderr as it is found, the report says ok: false and
 * the exit code is 1.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { initXronox } from '../../core/xronox.js';
import { EXIT } from '../../functions/cli/xronox.js';
import { tempDir } from '../support/temp.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(root, 'functions/cli/xronox.ts');
const tsx = pathToFileURL(join(root, 'node_modules/tsx/dist/loader.mjs')).href;

function cli(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  for (const name of ['NODE_OPTIONS', 'XRONOX_CONFIG_FILE']) delete env[name];
  const child = spawn(process.execPath, ['--import', tsx, CLI, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function findFile(dir: string, suffix: string): string | undefined {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      const found = findFile(path, suffix);
      if (found) return found;
    } else if (path.endsWith(suffix)) return path;
  }
  return undefined;
}

describe('npx xronox verify', () => {
  const dir = tempDir('xronox-verify-cli');
  afterAll(() => dir.cleanup());

  it('exits 0 on a clean store and 1 with the finding on stderr after tampering', async () => {
    const config = {
      dbConnections: { local: { sqlitePath: join(dir.path, 'x.sqlite') } },
      localStorage: { basePath: join(dir.path, 'blobs'), enabled: true },
      databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }, { tenantId: 'beta', dbConnRef: 'local', dbName: 'rt_beta' }] } },
      integrity: { digestKey: 'ENV.TEST_DIGEST_KEY' },
    };
    process.env.TEST_DIGEST_KEY = randomBytes(32).toString('hex');
    const file = join(dir.path, 'xronox.config.json');
    writeFileSync(file, JSON.stringify(config));
    const x = initXronox({ ...config, integrity: { digestKey: process.env.TEST_DIGEST_KEY } });
    let id: string;
    try {
      const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
      id = (await orders.create({ total: 1 })).id;
      await orders.update(id, { total: 2 }, 0);
      await x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'beta', collection: 'notes' }).create({ text: 'hi' });
      await x.flush();
    } finally {
      await x.shutdown();
    }
    // The on-demand digest, as a cron would run it.
    const digest = await cli(['digest', '--config', file]);
    expect(digest.code, digest.stderr).toBe(EXIT.ok);
    expect((JSON.parse(digest.stdout) as { written: Array<{ dbName: string }> }).written.map((w) => w.dbName).sort()).toEqual(['rt_acme', 'rt_beta']);

    const clean = await cli(['verify', '--config', file]);
    expect(clean.code, clean.stderr).toBe(EXIT.ok);
    const report = JSON.parse(clean.stdout) as { ok: boolean; databases: Array<{ dbName: string; collections: Array<{ collection: string; records: number; digest: { ok: boolean } }> }> };
    expect(report.ok).toBe(true);
    expect(report.databases.map((d) => d.dbName).sort()).toEqual(['rt_acme', 'rt_beta']);
    expect(report.databases.find((d) => d.dbName === 'rt_acme')!.collections).toMatchObject([{ collection: 'orders', records: 1, digest: { ok: true } }]);
    expect(clean.stderr).toContain('rt_acme/orders: 1 records, 2 versions, 0 findings, digest holds');

    const v0 = findFile(join(dir.path, 'blobs'), join('orders', id!, 'v0.json'))!;
    const doc = JSON.parse(readFileSync(v0, 'utf8'));
    doc.actor = 'mallory';
    writeFileSync(v0, JSON.stringify(doc));
    const dirty = await cli(['verify', '--config', file, '--db', 'rt_acme', '--quiet']);
    expect(dirty.code).toBe(EXIT.failed);
    expect(dirty.stderr).toMatch(new RegExp(`FINDING rt_acme/orders ${id!} v0: .*actor`));
    expect(JSON.parse(dirty.stdout)).toMatchObject({ ok: false, databases: [{ dbName: 'rt_acme', collections: [{ collection: 'orders', findings: 1 }] }] });
    // Only the database asked was verified; a name that is no versioned database is bad usage.
    expect((await cli(['verify', '--config', file, '--db', 'rt_beta'])).code).toBe(EXIT.ok);
    expect((await cli(['verify', '--config', file, '--db', 'nope'])).code).toBe(EXIT.usage);
    // No digest is signed over the tampered database; the other one gets its next digest.
    const refused = await cli(['digest', '--config', file]);
    expect(refused.code).toBe(EXIT.failed);
    expect(refused.stderr).toMatch(/FAILED rt_acme\/orders: .*no digest was written/);
    expect((JSON.parse(refused.stdout) as { written: Array<{ dbName: string }> }).written.map((w) => w.dbName)).toEqual(['rt_beta']);
  }, 120_000);
});
