import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';

const WRITER = new URL('../conformance/fixtures/writer-process.ts', import.meta.url).pathname;

describe('dynamic tenants after a crash', () => {
  const dir = tempDir('xronox-dyn-crash');
  afterAll(() => dir.cleanup());

  it("repair() finishes the blob sync of a dynamic tenant that is in no config list, and counters resolve by its dbName", async () => {
    const config = {
      dbConnections: { local: { sqlitePath: join(dir.path, 'xronox.sqlite') } },
      localStorage: { basePath: join(dir.path, 'blobs'), enabled: true },
      databases: {
        runtime: { tenantDatabases: [], dynamicTenants: { enabled: true, dbConnRef: 'local', dbNameTemplate: 'rt_{tenantId}', analyticsDbNameTemplate: 'an_{tenantId}' } },
      },
    };
    const configPath = join(dir.path, 'config.json');
    writeFileSync(configPath, JSON.stringify(config));
    // A writer for the never-configured tenant "newco" is killed after 30 acknowledged creates.
    const acked = await new Promise<Array<{ id: string; i: number }>>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', WRITER, 'create', configPath, 'newco', '-', '0', '100000'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const lines: string[] = [];
      let buffer = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        buffer += chunk;
        const parts = buffer.split('\n');
        buffer = parts.pop() ?? '';
        lines.push(...parts.filter(Boolean));
        if (lines.length >= 30) child.kill('SIGKILL');
      });
      child.on('error', reject);
      child.on('close', (_code, signal) => (signal === 'SIGKILL' ? resolve(lines.map((l) => JSON.parse(l))) : reject(new Error(`writer ended with ${signal}`))));
    });
    expect(acked.length).toBeGreaterThanOrEqual(30);

    const x = initXronox(config);
    try {
      const report = await x.repair();
      expect(report.failed).toBe(0);
      const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'newco', collection: 'orders' });
      for (const a of acked) {
        expect((await orders.getLatest(a.id))?.data).toEqual({ status: 'crash-test', i: a.i });
        expect(existsSync(join(dir.path, 'blobs', 'rt_newco', 'versions', 'orders', a.id, 'v0.json'))).toBe(true);
        expect(existsSync(join(dir.path, 'blobs', 'rt_newco', 'records', 'orders', a.id, 'current.json'))).toBe(true);
      }
      expect((await x.repair()).synced).toBe(0);
      const byRoute = await x.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: 'newco', collection: 'orders' });
      expect(byRoute.created).toBeGreaterThanOrEqual(acked.length);
      expect(await x.counters.getTotals({ dbName: 'an_newco', collection: 'orders' })).toEqual(byRoute);
    } finally {
      await x.shutdown();
    }
  });
});
