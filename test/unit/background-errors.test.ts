/**
 * Background failures (the blob sync of a write) as the engine reports them: to
 * `onBackgroundError` with where they happened, and, without a handler, as one JSON line on
 * stderr (never plain text), with the tenant, database and record. A handler that throws does
 * not stop the sync.
 */
import { mkdirSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type BackgroundErrorContext, createDevConfig, initXronox, type Xronox } from '../../core/index.js';
import { tempDir } from '../support/temp.js';

const dir = tempDir('xronox-background-errors');
let x: Xronox | undefined;

afterEach(async () => {
  await x?.shutdown({ timeoutMs: 1000 });
  x = undefined;
});
afterAll(() => dir.cleanup());

/** An engine whose blob folder is /proc, where no folder can be made: every blob sync fails. */
function brokenBlobs(name: string, onBackgroundError?: (err: unknown, context: BackgroundErrorContext) => void): Xronox {
  const base = join(dir.path, name);
  mkdirSync(base, { recursive: true });
  const config = createDevConfig({ sqlitePath: join(base, 'xronox.sqlite'), basePath: join(base, 'blobs'), tenants: ['acme'] });
  symlinkSync('/proc', join(base, 'blobs'));
  return initXronox(config, { env: {}, ...(onBackgroundError ? { onBackgroundError } : {}) });
}

function restoreBlobs(name: string): void {
  const blobs = join(dir.path, name, 'blobs');
  rmSync(blobs);
  mkdirSync(blobs);
}

describe('background errors', () => {
  it('reach onBackgroundError with the operation, the tenant, its database and the record', async () => {
    const seen: Array<{ err: unknown; context: BackgroundErrorContext }> = [];
    x = brokenBlobs('hook', (err, context) => seen.push({ err, context }));
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    const created = (await orders.create({ n: 1 })) as { id: string };
    await x.flush();
    expect(seen.length).toBeGreaterThan(0);
    expect(seen[0]!.err).toMatchObject({ name: 'StorageError', code: 'STORAGE_FAILED' });
    expect(seen[0]!.context).toEqual({
      operation: 'blob sync',
      dbName: x.route({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' }).dbName,
      collection: 'orders',
      id: created.id,
      databaseType: 'runtime',
      tier: 'tenant',
      tenantId: 'acme',
    });
    restoreBlobs('hook');
  });

  it('without a handler, are one JSON line each on stderr', async () => {
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => {
      lines.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return true;
    }) as typeof process.stderr.write;
    try {
      x = brokenBlobs('default');
      const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
      await orders.create({ n: 1 });
      await x.flush();
    } finally {
      process.stderr.write = write;
    }
    const text = lines.join('');
    expect(text).not.toContain('[xronox]');
    const parsed = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed[0]).toMatchObject({
      time: expect.any(String),
      level: 'error',
      msg: 'xronox background blob sync failed; it is retried',
      operation: 'blob sync',
      tenantId: 'acme',
      collection: 'orders',
      error: { name: 'StorageError', code: 'STORAGE_FAILED', message: expect.stringContaining('fs store failed during put') },
    });
    restoreBlobs('default');
  });

  // Without the engine's guard, the handler's error escapes the sync as an unhandled rejection, which fails the run.
  it('a handler that throws does not stop the sync: once the store is back, the record is synced', async () => {
    let calls = 0;
    x = brokenBlobs('throwing', () => {
      calls++;
      throw new Error('the handler itself failed');
    });
    const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
    await orders.create({ n: 1 });
    await x.flush();
    expect(calls).toBeGreaterThan(0);
    renameSync(join(dir.path, 'throwing', 'blobs'), join(dir.path, 'throwing', 'blobs.proc'));
    mkdirSync(join(dir.path, 'throwing', 'blobs'));
    expect(await x.repair()).toMatchObject({ synced: 1, left: 0 });
  });
});
