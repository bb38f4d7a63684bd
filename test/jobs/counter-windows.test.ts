/**
 * Counter windows (`retention.counters`) end to end: writes at controlled times (the engine stamps
 * writes with `Date.now()`, faked here) land in their daily, ISO-weekly and monthly windows next
 * to the unchanged totals; the retention job keeps exactly the last N windows of each granularity
 * measured from its clock; `counters.getWindows` reads them through the public API.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Xronox } from '../../core/xronox.js';
import { runJob } from '../../core/jobs/run.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';
import { type BackendInstance, freshNames, JOB_BACKENDS, jobConfig } from './support.js';

const backend = JOB_BACKENDS[0]!; // sqlite × fs: the windows live in the index store only
const route = { databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' } as const;

describe('counter windows: writes, getWindows, retention', () => {
  let inst: BackendInstance;
  const dir = tempDir('xronox-counter-windows');
  let x: Xronox | undefined;

  beforeAll(async () => {
    inst = await backend.setup();
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(async () => {
    await x?.shutdown();
    await inst?.dispose();
    dir.cleanup();
  });

  it('adds every write to its day, ISO week and month; retention keeps exactly the last N of each; totals stay', async () => {
    const names = freshNames();
    x = initXronox(jobConfig(inst, dir.path, names, { retention: { counters: { days: 3, weeks: 2, months: 2 } } }));
    const orders = x.with(route);
    const writeAt = async (iso: string, total: number) => {
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(new Date(iso));
      try {
        return await orders.create({ status: 'new', sku: iso, total }, 'w', 'create');
      } finally {
        vi.useRealTimers();
      }
    };
    await writeAt('2026-01-10T10:00:00Z', 5); // week 2026-W02
    await writeAt('2026-02-20T10:00:00Z', 150); // W08
    await writeAt('2026-03-01T23:59:59Z', 5); // a Sunday: W09
    const edited = await writeAt('2026-03-02T00:00:00Z', 5); // a Monday: W10
    await writeAt('2026-03-03T10:00:00Z', 200); // W10
    await x.flush();
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-03-03T11:00:00Z'));
    await orders.update(edited.id, { status: 'paid', sku: 'x', total: 120 }, 0, 'w', 'edit');
    vi.useRealTimers();
    await x.flush();

    const totals = await x.counters.getTotals(route);
    expect(totals).toEqual({ created: 5, updated: 1, bigOrders: 3 });
    const days = await x.counters.getWindows(route, { granularity: 'day' });
    expect(days).toEqual([
      { window: 'day:2026-01-10', counts: { created: 1 } },
      { window: 'day:2026-02-20', counts: { created: 1, bigOrders: 1 } },
      { window: 'day:2026-03-01', counts: { created: 1 } },
      { window: 'day:2026-03-02', counts: { created: 1 } },
      { window: 'day:2026-03-03', counts: { created: 1, updated: 1, bigOrders: 2 } },
    ]);
    const keys = async (granularity: 'day' | 'week' | 'month') => (await x!.counters.getWindows(route, { granularity })).map((w) => w.window);
    expect(await keys('week')).toEqual(['week:2026-W02', 'week:2026-W08', 'week:2026-W09', 'week:2026-W10']);
    expect(await keys('month')).toEqual(['month:2026-01', 'month:2026-02', 'month:2026-03']);
    // The sum of every granularity's windows is the totals (every write was windowed).
    for (const g of ['day', 'week', 'month'] as const) {
      const sum: Record<string, number> = {};
      for (const w of await x.counters.getWindows(route, { granularity: g })) for (const [k, v] of Object.entries(w.counts)) sum[k] = (sum[k] ?? 0) + v;
      expect(sum).toEqual(totals);
    }
    // Bounds: inclusive, with or without the prefix.
    expect((await x.counters.getWindows(route, { granularity: 'day', from: '2026-03-01', to: 'day:2026-03-02' })).map((w) => w.window)).toEqual(['day:2026-03-01', 'day:2026-03-02']);
    await expect(x.counters.getWindows(route, { granularity: 'year' as never })).rejects.toThrow(/granularity/);

    // Retention on 2026-03-03 (a Tuesday of W10): days 3 → 03-01..03-03; weeks 2 → W09, W10; months 2 → 02, 03.
    const report = await runJob(x, 'retention', { log: null, now: new Date('2026-03-03T12:00:00Z') });
    expect(report).toMatchObject({ complete: true, failures: [] });
    expect(report.counts.prunedCounterWindows).toBe(2 + 2 + 1);
    expect(await keys('day')).toEqual(['day:2026-03-01', 'day:2026-03-02', 'day:2026-03-03']);
    expect(await keys('week')).toEqual(['week:2026-W09', 'week:2026-W10']);
    expect(await keys('month')).toEqual(['month:2026-02', 'month:2026-03']);
    expect(await x.counters.getTotals(route)).toEqual(totals);
    // A rerun finds nothing more.
    const again = await runJob(x, 'retention', { log: null, now: new Date('2026-03-03T12:00:00Z') });
    expect(again.counts.prunedCounterWindows ?? 0).toBe(0);
    // A day later one more daily window goes; weeks and months are still within the policy.
    const later = await runJob(x, 'retention', { log: null, now: new Date('2026-03-04T00:00:00Z') });
    expect(later.counts.prunedCounterWindows).toBe(1);
    expect(await keys('day')).toEqual(['day:2026-03-02', 'day:2026-03-03']);

    // A real write today lands in today's windows.
    await orders.create({ status: 'new', sku: 'today', total: 1 }, 'w', 'create');
    await x.flush();
    const today = new Date().toISOString().slice(0, 10);
    expect(await x.counters.getWindows(route, { granularity: 'day', from: today, to: today })).toEqual([{ window: `day:${today}`, counts: { created: 1 } }]);
    expect(await x.counters.getWindows({ dbName: names.analytics, collection: 'orders' }, { granularity: 'month', from: today.slice(0, 7) })).toEqual([
      { window: `month:${today.slice(0, 7)}`, counts: { created: 1 } },
    ]);
  });

  it('without retention.counters only totals are kept', async () => {
    const names = freshNames();
    const y = initXronox(jobConfig(inst, dir.path, names));
    try {
      await y.with(route).create({ status: 'new', sku: 'a', total: 1 }, 'w', 'create');
      await y.flush();
      expect(await y.counters.getTotals(route)).toEqual({ created: 1 });
      expect(await y.counters.getWindows(route, { granularity: 'day' })).toEqual([]);
    } finally {
      await y.shutdown();
    }
  });
});
