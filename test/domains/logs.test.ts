import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Xronox } from '../../core/xronox.js';
import { readLogRange } from '../../core/domains/logs/logs.js';
import { AppendOnlyError, ValidationError } from '../../core/errors.js';
import { domainDeployment } from './support.js';

/** The logs database type: append-only (a named error, nothing changed), filed by date, read by time range. */
describe('logs', () => {
  const dep = domainDeployment();
  let x: Xronox;
  const logs = () => x.with({ databaseType: 'logs', tier: 'generic', collection: 'activity' });

  beforeAll(() => {
    x = dep.open();
  });
  afterAll(async () => {
    await x.shutdown();
    dep.dir.cleanup();
  });

  it('refuses update, enrich, delete and smartInsert with AppendOnlyError, and the record is unchanged', async () => {
    const { id } = await logs().create({ action: 'login', user: 'ada' });
    const before = await logs().getLatest(id);
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['update', () => logs().update(id, { action: 'logout' }, 0)],
      ['enrich', () => logs().enrich(id, { extra: 1 }, {})],
      ['delete', () => logs().delete(id, 0)],
      ['smartInsert', () => logs().smartInsert({ action: 'x' }, { uniqueKeys: ['action'] })],
    ];
    for (const [operation, call] of calls) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AppendOnlyError);
      expect(err).toBeInstanceOf(ValidationError);
      expect(err).toMatchObject({ code: 'VALIDATION_FAILED', databaseType: 'logs', operation, message: `logs is append-only: ${operation} is not allowed; create a new record instead` });
    }
    expect(await logs().getLatest(id)).toEqual(before);
  });

  it('reads by time range: [from, to), in order, paged, whatever the bounds are spelled as', async () => {
    const created: Array<{ id: string; createdAt: string }> = [];
    for (let i = 0; i < 7; i++) {
      // A new record is stamped at the millisecond; two in one millisecond would share an instant
      // and the [from, to) bounds below would not tell them apart.
      const last = created.at(-1)?.createdAt;
      while (last !== undefined && new Date().toISOString().slice(0, -1) <= last.slice(0, 23)) await new Promise((r) => setTimeout(r, 1));
      created.push(await logs().create({ action: 'tick', n: i }));
    }
    const [, second, , , , sixth] = created;
    const page1 = await readLogRange(logs(), { from: second!.createdAt, to: sixth!.createdAt, limit: 2 });
    expect(page1.items.map((r) => r.data.n)).toEqual([1, 2]);
    const page2 = await readLogRange(logs(), { from: second!.createdAt, to: sixth!.createdAt, limit: 2, afterId: page1.nextAfterId! });
    expect(page2.items.map((r) => r.data.n)).toEqual([3, 4]);
    expect(page2.nextAfterId).toBeNull();
    // Newest first, with Date bounds.
    const newest = await readLogRange(logs(), { from: new Date(0), to: new Date(Date.UTC(2999, 0, 1)), order: -1, limit: 100 });
    expect(newest.items.map((r) => r.data.n).filter((n) => n !== undefined)).toEqual([6, 5, 4, 3, 2, 1, 0]);
    expect(await readLogRange(logs(), { from: '2999-01-01T00:00:00Z' })).toEqual({ items: [], nextAfterId: null });
    for (const bad of [{ from: 'yesterday' }, { to: '2024-02-31T00:00:00Z' }, { order: 0 as 1 }]) {
      expect(() => readLogRange(logs(), bad)).toThrow(ValidationError);
    }
    expect(() => readLogRange(x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' }), {})).toThrow(ValidationError);
  });

  it('files record objects by day: records/{collection}/{YYYY-MM-DD}/{id}.json', async () => {
    const { id, createdAt } = await logs().create({ action: 'filed' });
    await x.flush();
    const bucket = x.route({ databaseType: 'logs', tier: 'generic', collection: 'activity' }).blobs.records!.bucket;
    const day = createdAt.slice(0, 10);
    expect(readdirSync(join(dep.blobsPath, bucket, 'records', 'activity', day))).toContain(`${id}.json`);
  });
});
