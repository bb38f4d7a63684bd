/**
 * "As of now" never misses an acknowledged write. Two versions of one record written within one
 * millisecond are stamped `…488000Z` and `…488001Z`, while a `Date` taken right after the second
 * acknowledgement says `…488Z`: read as the first microsecond of that millisecond, it would sort
 * before the second version and answer with the first. Each entry point that reads as of a time
 * is driven through update-then-read-as-of-now loops, with writes fast enough that many land in
 * the millisecond of the one before (the SQLite file lives in memory-backed /dev/shm where there
 * is one, so an fsync costs next to nothing), and must miss none.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevConfig } from '../../core/config/presets.js';
import type { Collection } from '../../core/engine/collection.js';
import type { Xronox } from '../../core/xronox.js';
import { runJob } from '../../core/jobs/run.js';
import { initXronox } from '../../core/xronox.js';
import { KEYS, startServer, type TestServer } from '../http/harness.js';

const SCALE = Number(process.env.XRONOX_RELIABILITY_SCALE ?? 1);
const LOOPS = 10_000 * SCALE;
/** Ten thousand loops take seconds on an idle machine, and several times longer on a busy one. */
const TIMEOUT_MS = 600_000 * SCALE;
const TENANT = 'acme';
const DAY_MS = 86_400_000;
const WRITER = new URL('./support/as-of-writer.ts', import.meta.url).pathname;

function fastDir(label: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `${label}-`));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

function openXronox(dir: string): Xronox {
  return initXronox(createDevConfig({ sqlitePath: join(dir, 'index.sqlite'), basePath: join(dir, 'blobs'), tenants: [TENANT] }));
}

function orders(xronox: Xronox, collection: string): Collection {
  return xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: TENANT, collection });
}

/** Runs `loops` rounds of `round` (which answers whether as-of-now saw the write just acknowledged); returns the misses. */
async function countMisses(loops: number, round: (i: number) => Promise<boolean>): Promise<{ misses: number }> {
  let misses = 0;
  for (let i = 0; i < loops; i++) if (!(await round(i))) misses++;
  return { misses };
}

/** Versions stamped in the millisecond of their predecessor: the case a millisecond "now" used to miss. */
async function sameMillisecondVersions(records: Collection, id: string): Promise<number> {
  let count = 0;
  let before: number | undefined;
  let newer: string | undefined;
  for (;;) {
    const page = await records.history(id, { limit: 1000, ...(before !== undefined ? { before } : {}) });
    for (const v of page.items) {
      if (newer !== undefined && newer.slice(0, 23) === v.at.slice(0, 23)) count++;
      newer = v.at;
    }
    if (page.nextBefore === null) return count;
    before = page.nextBefore;
  }
}

describe(`as of now, ${LOOPS} update-then-read loops per entry point`, { timeout: TIMEOUT_MS }, () => {
  let dir: { path: string; cleanup: () => void };
  let xronox: Xronox;

  beforeAll(() => {
    dir = fastDir('xronox-as-of-now');
    xronox = openXronox(dir.path);
  });
  afterAll(async () => {
    await xronox.shutdown();
    dir.cleanup();
  }, TIMEOUT_MS);

  it('getAsOf(id, new Date()) answers with the version just acknowledged', async () => {
    const records = orders(xronox, 'get_as_of');
    const { id } = await records.create({ n: 0 });
    let ov = 0;
    const { misses } = await countMisses(LOOPS, async (i) => {
      ov = (await records.update(id, { n: i + 1 }, ov)).ov;
      return (await records.getAsOf(id, new Date()))?.ov === ov;
    });
    const sameMs = await sameMillisecondVersions(records, id);
    console.log(`[reliability] as of now, getAsOf: ${LOOPS} loops, ${misses} misses, ${sameMs} versions stamped in their predecessor's millisecond`);
    expect(sameMs).toBeGreaterThan(0);
    expect(misses).toBe(0);
  });

  it('query() at its default instant answers with the version just acknowledged, and so does an explicit Date', async () => {
    const records = orders(xronox, 'query_now');
    const { id } = await records.create({ n: 0 });
    let ov = 0;
    const { misses } = await countMisses(LOOPS, async (i) => {
      ov = (await records.update(id, { n: i + 1 }, ov)).ov;
      const byDefault = await records.query({}, { limit: 1 });
      const byDate = await records.query({}, { limit: 1, at: new Date() });
      return byDefault.items[0]?.ov === ov && byDate.items[0]?.ov === ov;
    });
    console.log(`[reliability] as of now, query: ${LOOPS} loops, ${misses} misses`);
    expect(misses).toBe(0);
  });

  it('restoreCollection({ at: now }) finds every record already at its target (the jobs\' as-of read)', async () => {
    const records = orders(xronox, 'restore_now');
    const { id } = await records.create({ n: 0 });
    let ov = 0;
    const { misses } = await countMisses(LOOPS, async (i) => {
      ov = (await records.update(id, { n: i + 1 }, ov)).ov;
      const report = await records.restoreCollection({ at: new Date() }, { dryRun: true });
      return report.unchanged === 1 && report.changes.length === 0;
    });
    console.log(`[reliability] as of now, restoreCollection: ${LOOPS} loops, ${misses} misses`);
    expect(misses).toBe(0);
  });

  it('the retention job run right after a write reads it as of its own clock', async () => {
    // Retention asks, for every record, which version was current `days` before the run's clock:
    // versions before that one may go once archived. A run whose clock is one day ahead asks as
    // of the real now, which must be the newest version: nothing but it is kept.
    const loops = Math.max(1, Math.round(LOOPS / 50));
    const local = fastDir('xronox-as-of-retention');
    const config = createDevConfig({ sqlitePath: join(local.path, 'index.sqlite'), basePath: join(local.path, 'blobs'), tenants: [TENANT] });
    const retaining = initXronox({ ...config, retention: { ver: { days: 1 } } });
    try {
      const records = orders(retaining, 'retained');
      const { id } = await records.create({ n: 0 });
      let ov = 0;
      const { misses } = await countMisses(loops, async (i) => {
        ov = (await records.update(id, { n: 2 * i + 1 }, ov)).ov;
        ov = (await records.update(id, { n: 2 * i + 2 }, ov)).ov;
        const now = new Date(Date.now() + DAY_MS);
        await retaining.flush();
        await runJob(retaining, 'retention', { now, log: null });
        const oldest = (await records.history(id, { limit: 1000 })).items.at(-1)?.ov;
        return oldest === ov;
      });
      console.log(`[reliability] as of now, retention: ${loops} loops, ${misses} misses`);
      expect(misses).toBe(0);
    } finally {
      await retaining.shutdown();
      local.cleanup();
    }
  });
});

describe(`as of now over HTTP, ${LOOPS} write-then-GET ?at= loops`, { timeout: TIMEOUT_MS }, () => {
  let server: TestServer;
  let dir: { path: string; cleanup: () => void };
  beforeAll(async () => {
    dir = fastDir('xronox-as-of-http');
    server = await startServer({ sqlitePath: join(dir.path, 'index.sqlite') });
  });
  // Shutting down drains the blob sync of twenty thousand versions.
  afterAll(async () => {
    await server.close();
    dir.cleanup();
  }, TIMEOUT_MS);

  it('GET …/{id}?at=<the time of the acknowledgement> answers with the version just acknowledged', async () => {
    // The writes go through the server's own engine, two in a row so that the second often
    // shares the first's millisecond; "now" is read the moment the second is acknowledged, so
    // the HTTP round trip cannot move it past the version's millisecond.
    const records = orders(server.xronox, 'orders');
    const headers = { authorization: `Bearer ${KEYS.acmeReader}` };
    const url = `${server.base}/v1/tenants/${TENANT}/runtime/orders`;
    const { id } = await records.create({ n: 0 });
    let ov = 0;
    const { misses } = await countMisses(LOOPS, async (i) => {
      ov = (await records.update(id, { n: 2 * i + 1 }, ov)).ov;
      ov = (await records.update(id, { n: 2 * i + 2 }, ov)).ov;
      const now = new Date().toISOString();
      const read = await fetch(`${url}/${id}?at=${encodeURIComponent(now)}`, { headers });
      return ((await read.json()) as { ov: number }).ov === ov;
    });
    console.log(`[reliability] as of now, HTTP ?at=: ${LOOPS} loops, ${misses} misses`);
    expect(misses).toBe(0);
  });
});

describe(`as of now with two processes writing one SQLite file, ${LOOPS} loops`, { timeout: TIMEOUT_MS }, () => {
  it('a version the other process acknowledged is seen as of now, even in the millisecond of this process\'s own', async () => {
    const dir = fastDir('xronox-as-of-two');
    const xronox = openXronox(dir.path);
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir.path, TENANT], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, NODE_OPTIONS: '' } });
    const replies = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const ask = async (line: string): Promise<string> => {
      child.stdin.write(`${line}\n`);
      const next = await replies.next();
      if (next.done) throw new Error('the writer process ended');
      return next.value;
    };
    try {
      const records = orders(xronox, 'two_processes');
      const { id } = await records.create({ n: 0 });
      let ov = 0;
      const { misses } = await countMisses(LOOPS, async (i) => {
        // This process writes, the other writes right after it (often in the same millisecond),
        // then this process reads as of now: the other's version must be the answer.
        ov = (await records.update(id, { n: i, by: 'parent' }, ov)).ov;
        ov = Number(await ask(`update ${id} ${ov}`));
        return (await records.getAsOf(id, new Date()))?.ov === ov;
      });
      const sameMs = await sameMillisecondVersions(records, id);
      console.log(`[reliability] as of now, two processes: ${LOOPS} loops, ${misses} misses, ${sameMs} versions stamped in their predecessor's millisecond`);
      expect(misses).toBe(0);
    } finally {
      child.stdin.end();
      await new Promise((resolve) => child.once('close', resolve));
      await xronox.shutdown();
      dir.cleanup();
    }
  });
});
