import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import type { Collection } from '../../core/engine/collection.js';
import type { Xronox } from '../../core/xronox.js';
import {
  ConflictError,
  NotFoundError,
  RouteNotFoundError,
  ValidationError,
  VersionConflictError,
  XronoxError,
} from '../../core/errors.js';
import { initXronox } from '../../core/xronox.js';
import type { EngineBackend, EngineBackendInstance } from './engine-backend.js';

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const WRITER_SCRIPT = new URL('./fixtures/writer-process.ts', import.meta.url).pathname;

/**
 * The engine conformance suite: every behaviour of the collection API, run against one
 * index-store × blob-store pair. A new backend adds one line to a backends list; it never
 * copies these tests.
 */
export function engineConformance(backend: EngineBackend): void {
  describe.skipIf(backend.skip !== undefined)(`engine conformance: ${backend.name}`, () => {
    let inst: EngineBackendInstance;
    const open: Xronox[] = [];

    beforeAll(async () => {
      inst = await backend.setup();
    });
    afterEach(async () => {
      await Promise.all(open.splice(0).map((x) => x.shutdown()));
    });
    afterAll(async () => {
      await inst?.cleanup();
    });

    /** One database entry on the backend under test. */
    function dbEntry(dbName: string, dbConnRef = inst.dbConnRef) {
      return { dbConnRef, ...(inst.spaceConnRef ? { spaceConnRef: inst.spaceConnRef } : {}), dbName, ...inst.databaseFields?.(dbName) };
    }

    /** A config whose database names are unique to this call, so tests never share data. */
    function configFor(extra: Partial<XronoxConfigInput> = {}) {
      const suffix = randomUUID().slice(0, 8);
      const names = {
        acme: `rt_acme_${suffix}`,
        acmeAnalytics: `an_acme_${suffix}`,
        globex: `rt_globex_${suffix}`,
        knowledge: `kn_${suffix}`,
        knowledgeAcme: `kn_acme_${suffix}`,
        logs: `logs_${suffix}`,
      };
      const db = (dbName: string) => dbEntry(dbName);
      const config: XronoxConfigInput = {
        ...inst.connections,
        ...inst.settings,
        databases: {
          runtime: {
            tenantDatabases: [
              { tenantId: 'acme', ...db(names.acme), analyticsDbName: names.acmeAnalytics },
              { tenantId: 'globex', ...db(names.globex) },
            ],
          },
          knowledge: { genericDatabase: db(names.knowledge), tenantDatabases: [{ tenantId: 'acme', ...db(names.knowledgeAcme) }] },
          logs: { genericDatabase: db(names.logs) },
        },
        collectionMaps: {
          orders: { indexedProps: ['status', 'total', 'customer.id'], validation: { requiredIndexed: ['status'] } },
        },
        counterRules: { rules: [{ name: 'bigOrders', on: ['CREATE', 'UPDATE'], when: { total: { $gte: 100 } } }] },
        ...extra,
      };
      return { config, names };
    }

    async function start(extra: Partial<XronoxConfigInput> = {}) {
      const { config, names } = configFor(extra);
      await inst.prepare?.(Object.values(names));
      const x = initXronox(config);
      open.push(x);
      const runtime = (tenantId: string, collection = 'orders') => x.with({ databaseType: 'runtime', tier: 'tenant', tenantId, collection });
      return { x, names, config, runtime, orders: runtime('acme') };
    }

    async function text(bucket: string, key: string): Promise<string | null> {
      const bytes = await inst.inspect.get(bucket, key);
      return bytes ? Buffer.from(bytes).toString('utf8') : null;
    }

    // Paging loops are bounded: a cursor that never advances must fail the test, not hang it.
    const MAX_PAGES = 1000;

    async function allKeys(bucket: string, prefix: string): Promise<string[]> {
      const keys: string[] = [];
      let startAfter: string | undefined;
      for (let pages = 0; pages < MAX_PAGES; pages++) {
        const page = await inst.inspect.list(bucket, prefix, startAfter ? { startAfter } : {});
        keys.push(...page.keys);
        startAfter = page.nextStartAfter ?? undefined;
        if (!startAfter) return keys;
      }
      throw new Error(`listing ${prefix} did not end after ${MAX_PAGES} pages`);
    }

    async function fullHistory(c: Collection, id: string) {
      const all = [];
      let before: number | undefined;
      for (let pages = 0; pages < MAX_PAGES; pages++) {
        const page = await c.history(id, { limit: 500, ...(before !== undefined ? { before } : {}) });
        all.push(...page.items);
        if (page.nextBefore === null) return all;
        before = page.nextBefore;
      }
      throw new Error(`history of ${id} did not end after ${MAX_PAGES} pages`);
    }

    describe('versioned writes', () => {
      it('create returns ov 0 and a collection version; reads return the data', async () => {
        const { orders } = await start();
        const a = await orders.create({ status: 'new', total: 5, customer: { id: 'c1' } }, 'alice', 'checkout');
        const b = await orders.create({ status: 'new', total: 7 }, 'alice', 'checkout');
        expect(a.ov).toBe(0);
        expect(b.cv).toBe(a.cv + 1);
        expect(Date.parse(a.createdAt)).not.toBeNaN();
        const got = await orders.getLatest(a.id);
        expect(got).toMatchObject({ id: a.id, ov: 0, cv: a.cv, deleted: false, data: { status: 'new', total: 5, customer: { id: 'c1' } } });
        expect(await orders.getLatest(a.id, { projection: ['customer.id'] })).toMatchObject({ data: { customer: { id: 'c1' } } });
      });

      it('createMany creates every record in one commit, in order, with consecutive cvs and counted', async () => {
        const { x, orders, runtime } = await start();
        const items = Array.from({ length: 250 }, (_, i) => ({ status: i % 2 ? 'odd' : 'even', total: i, customer: { id: `c${i}` } }));
        const created = await orders.createMany(items, 'loader', 'import');
        expect(created).toHaveLength(250);
        expect(created.map((c) => c.cv)).toEqual(created.map((_, i) => created[0]!.cv + i));
        expect(new Set(created.map((c) => c.id)).size).toBe(250);
        for (const i of [0, 1, 137, 249]) {
          expect(await orders.getLatest(created[i]!.id)).toMatchObject({ id: created[i]!.id, ov: 0, cv: created[i]!.cv, data: items[i] });
          expect((await orders.history(created[i]!.id)).items.map((h) => [h.ov, h.op, h.actor, h.reason])).toEqual([[0, 'create', 'loader', 'import']]);
        }
        const odd = await orders.listByMeta({ filter: { status: 'odd' }, limit: 1000 });
        expect(odd.items.map((r) => r.data.total)).toEqual(expect.arrayContaining(items.filter((_, i) => i % 2).map((d) => d.total)));
        expect(odd.items).toHaveLength(125);
        // Counter rules see each record (total >= 100: items 100…249).
        expect(await x.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' })).toMatchObject({ created: 250, bigOrders: 150 });
        // Another tenant's collection saw none of it.
        expect((await runtime('globex').listByMeta({ limit: 10 })).items).toEqual([]);
        // Unversioned types batch too.
        const kn = x.with({ databaseType: 'knowledge', tier: 'generic', collection: 'facts' });
        const facts = await kn.createMany([{ a: 1 }, { a: 2 }]);
        expect(await Promise.all(facts.map(async (f) => (await kn.getLatest(f.id))?.data))).toEqual([{ a: 1 }, { a: 2 }]);
      });

      it('createMany checks every item first: one bad item, an empty or oversized batch writes nothing', async () => {
        const { x, orders } = await start();
        const good = { status: 'new', total: 1 };
        const bad: unknown[] = [{ total: 1 }, { status: 'x', $where: 1 }, { status: 'x', _system: {} }, 'text', null];
        for (const item of bad) {
          const err = await orders.createMany([good, good, good, item as never]).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(ValidationError);
          expect((err as ValidationError).path ?? (err as Error).message).toMatch(/items\[3\]/);
        }
        for (const batch of [[], Array.from({ length: 1001 }, () => good), 'x', null]) {
          await expect(orders.createMany(batch as never)).rejects.toBeInstanceOf(ValidationError);
        }
        expect((await orders.listByMeta({ limit: 10, includeDeleted: true })).items).toEqual([]);
        expect(await x.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' })).toEqual({});
        const ok = await orders.createMany(Array.from({ length: 1000 }, () => good));
        expect(ok).toHaveLength(1000);
      });

      it('update needs the current ov; a stale one fails with expected and actual and writes nothing', async () => {
        const { orders } = await start();
        const { id } = await orders.create({ status: 'new', total: 1 }, 'alice', 'r');
        const u = await orders.update(id, { status: 'paid', total: 1 }, 0, 'bob', 'pay');
        expect(u).toMatchObject({ id, ov: 1 });
        const err = await orders.update(id, { status: 'lost', total: 1 }, 0, 'eve', 'stale').catch((e: unknown) => e);
        expect(err).toBeInstanceOf(VersionConflictError);
        expect(err).toMatchObject({ expected: 0, actual: 1, code: 'VERSION_CONFLICT' });
        expect((await orders.getLatest(id))?.data).toEqual({ status: 'paid', total: 1 });
        expect((await orders.history(id)).items.map((h) => h.ov)).toEqual([1, 0]);
      });

      it('enrich deep-merges objects, unions arrays, records functionId, and takes a list of patches', async () => {
        const { orders } = await start();
        const { id } = await orders.create({ status: 'new', tags: ['a'], meta: { x: 1, deep: { k: 1 } } }, 'alice', 'r');
        await orders.enrich(id, { tags: ['a', 'b'], meta: { y: 2, deep: { j: 2 } } }, { functionId: 'enricher@v1', actor: 'bot', reason: 'enrich' });
        await orders.enrich(id, [{ tags: ['vip'] }, { meta: { score: 100 } }, { tags: ['verified', 'a'] }]);
        const got = await orders.getLatest(id);
        expect(got?.data).toEqual({ status: 'new', tags: ['a', 'b', 'vip', 'verified'], meta: { x: 1, y: 2, deep: { k: 1, j: 2 }, score: 100 } });
        expect(got?.ov).toBe(2);
        expect(await orders.getVersion(id, 1)).toMatchObject({ functionId: 'enricher@v1', actor: 'bot', reason: 'enrich', op: 'enrich' });
      });

      it('logical delete hides the record, keeps history, and refuses further updates', async () => {
        const { orders } = await start();
        const { id } = await orders.create({ status: 'new' }, 'alice', 'r');
        const d = await orders.delete(id, 0, 'bob', 'cancel');
        expect(d).toMatchObject({ id, ov: 1 });
        expect(await orders.getLatest(id)).toBeNull();
        expect(await orders.getLatest(id, { includeDeleted: true })).toMatchObject({ deleted: true, deletedAt: d.deletedAt, data: { status: 'new' } });
        await expect(orders.update(id, { status: 'x' }, 1)).rejects.toBeInstanceOf(NotFoundError);
        await expect(orders.delete(id, 1)).rejects.toBeInstanceOf(NotFoundError);
        expect((await orders.history(id)).items.map((h) => [h.ov, h.op, h.actor, h.reason])).toEqual([
          [1, 'delete', 'bob', 'cancel'],
          [0, 'create', 'alice', 'r'],
        ]);
      });

      it('every version records actor, reason and time, and history pages without gaps', async () => {
        const { orders } = await start();
        const { id } = await orders.create({ status: 's0' }, 'u0', 'why0');
        for (let i = 1; i <= 25; i++) await orders.update(id, { status: `s${i}` }, i - 1, `u${i}`, `why${i}`);
        const seen: number[] = [];
        let before: number | undefined;
        for (let pages = 0; pages < 10; pages++) {
          const page = await orders.history(id, { limit: 7, ...(before !== undefined ? { before } : {}) });
          seen.push(...page.items.map((h) => h.ov));
          for (const h of page.items) expect(h).toMatchObject({ actor: `u${h.ov}`, reason: `why${h.ov}` });
          if (page.nextBefore === null) break;
          before = page.nextBefore;
        }
        expect(seen).toEqual(Array.from({ length: 26 }, (_, i) => 25 - i));
      });
    });

    describe('time travel', () => {
      it('getAsOf at each recorded timestamp returns exactly the version current then', async () => {
        const { orders } = await start();
        const { id } = await orders.create({ status: 'v0' }, 'a', 'r');
        for (let i = 1; i < 40; i++) {
          const head = await orders.getLatest(id);
          if (i % 10 === 0) {
            await orders.delete(id, head!.ov, 'a', 'gone');
            await orders.restoreObject(id, { ov: head!.ov });
          } else await orders.update(id, { status: `v${i}` }, head!.ov, 'a', 'r');
        }
        const history = await fullHistory(orders, id);
        for (const h of history) {
          const asOf = await orders.getAsOf(id, h.at, { includeDeleted: true });
          expect(asOf?.ov).toBe(h.ov);
          const exact = await orders.getVersion(id, h.ov);
          expect(asOf?.data).toEqual(exact?.data);
        }
        const first = history[history.length - 1]!;
        expect(await orders.getAsOf(id, new Date(Date.parse(first.at) - 1))).toBeNull();
        expect((await orders.getAsOf(id, '9999-01-01T00:00:00Z'))?.ov).toBe(history[0]!.ov);
      });

      it('"as of now" never misses an acknowledged write, however fast one record is written', async () => {
        const { orders } = await start();
        const { id } = await orders.create({ status: 'new', n: 0 });
        let ov = 0;
        for (let i = 1; i <= 200; i++) ov = (await orders.update(id, { status: i === 200 ? 'paid' : 'new', n: i }, ov)).ov;
        const latest = await orders.getLatest(id);
        expect(Date.parse(latest!.updatedAt)).toBeLessThanOrEqual(Date.now());
        expect((await orders.query({ status: 'paid' })).items.map((r) => r.id)).toEqual([id]);
        expect((await orders.getAsOf(id, new Date()))?.ov).toBe(200);
        expect((await orders.restoreObject(id, { at: new Date() })).restoredFromOv).toBe(200);
      });

      it('a deleted state reads as null unless includeDeleted', async () => {
        const { orders } = await start();
        const { id } = await orders.create({ status: 'a' });
        const d = await orders.delete(id, 0);
        expect(await orders.getAsOf(id, d.deletedAt)).toBeNull();
        expect(await orders.getAsOf(id, d.deletedAt, { includeDeleted: true })).toMatchObject({ ov: 1, deleted: true });
      });
    });

    describe('restore', () => {
      it('restoreObject by ov and by time appends a version and keeps all history, with actor and reason', async () => {
        const { orders } = await start();
        const c = await orders.create({ status: 'one' }, 'a', 'r');
        const u = await orders.update(c.id, { status: 'two' }, 0, 'a', 'r');
        await orders.update(c.id, { status: 'three' }, 1, 'a', 'r');
        const r1 = await orders.restoreObject(c.id, { ov: 0 }, { actor: 'admin', reason: 'rollback' });
        expect(r1).toMatchObject({ ov: 3, restoredFromOv: 0 });
        expect((await orders.getLatest(c.id))?.data).toEqual({ status: 'one' });
        const r2 = await orders.restoreObject(c.id, { at: u.updatedAt }, { actor: 'admin', reason: 'again' });
        expect(r2).toMatchObject({ ov: 4, restoredFromOv: 1 });
        expect((await orders.getLatest(c.id))?.data).toEqual({ status: 'two' });
        const history = await orders.history(c.id);
        expect(history.items.map((h) => [h.ov, h.op])).toEqual([[4, 'restore'], [3, 'restore'], [2, 'update'], [1, 'update'], [0, 'create']]);
        expect(history.items[0]).toMatchObject({ actor: 'admin', reason: 'again' });
        expect((await orders.getVersion(c.id, 2))?.data).toEqual({ status: 'three' });
      });

      it('restoreObject revives a deleted record and refuses a target that never existed', async () => {
        const { orders } = await start();
        const c = await orders.create({ status: 'x' });
        await orders.delete(c.id, 0);
        await orders.restoreObject(c.id, { ov: 0 });
        expect(await orders.getLatest(c.id)).toMatchObject({ deleted: false, data: { status: 'x' } });
        await expect(orders.restoreObject(c.id, { ov: 99 })).rejects.toBeInstanceOf(NotFoundError);
        await expect(orders.restoreObject(c.id, { at: '2000-01-01T00:00:00Z' })).rejects.toBeInstanceOf(NotFoundError);
      });

      it('restoreCollection brings every record to its state at a cv: later creations deleted, deletions revived', async () => {
        const { orders } = await start();
        const keep = await orders.create({ status: 'keep' });
        const changed = await orders.create({ status: 'before' });
        const toDelete = await orders.create({ status: 'will-be-deleted' });
        const target = toDelete.cv;
        await orders.update(changed.id, { status: 'after' }, 0);
        await orders.delete(toDelete.id, 0);
        const late = await orders.create({ status: 'late' });

        const dry = await orders.restoreCollection({ cv: target }, { dryRun: true });
        expect(dry).toMatchObject({ dryRun: true, restored: 1, revived: 1, deleted: 1, unchanged: 1 });
        expect((await orders.getLatest(changed.id))?.data).toEqual({ status: 'after' });
        expect(await orders.getLatest(late.id)).not.toBeNull();

        const done = await orders.restoreCollection({ cv: target }, { actor: 'admin', reason: 'incident-42' });
        expect(done).toMatchObject({ dryRun: false, restored: 1, revived: 1, deleted: 1, unchanged: 1 });
        expect((await orders.getLatest(changed.id))?.data).toEqual({ status: 'before' });
        expect((await orders.getLatest(toDelete.id))?.data).toEqual({ status: 'will-be-deleted' });
        expect(await orders.getLatest(late.id)).toBeNull();
        expect((await orders.getLatest(keep.id))?.ov).toBe(0);
        expect((await orders.history(changed.id)).items[0]).toMatchObject({ op: 'restore', actor: 'admin', reason: 'incident-42' });
        // History is only appended to: the overwritten state is still there.
        expect((await orders.getVersion(changed.id, 1))?.data).toEqual({ status: 'after' });
        // Restoring again to the same point changes nothing.
        expect(await orders.restoreCollection({ cv: target })).toMatchObject({ restored: 0, revived: 0, deleted: 0, unchanged: 4 });
      });

      it('restoreCollection by time matches restoreCollection by cv', async () => {
        const { orders } = await start();
        const a = await orders.create({ status: 'a0' });
        const mark = await orders.update(a.id, { status: 'a1' }, 0);
        await new Promise((r) => setTimeout(r, 5));
        await orders.update(a.id, { status: 'a2' }, 1);
        await orders.create({ status: 'b0' });
        const report = await orders.restoreCollection({ at: mark.updatedAt });
        expect(report).toMatchObject({ restored: 1, deleted: 1 });
        expect((await orders.getLatest(a.id))?.data).toEqual({ status: 'a1' });
      });

      it('only one collection restore runs at a time', async () => {
        const { orders } = await start();
        for (let i = 0; i < 300; i++) await orders.create({ status: `s${i}` });
        const results = await Promise.allSettled([orders.restoreCollection({ cv: 0 }), orders.restoreCollection({ cv: 0 })]);
        const rejected = results.filter((r) => r.status === 'rejected');
        expect(rejected.length).toBeLessThanOrEqual(1);
        for (const r of rejected) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(ConflictError);
        expect((await orders.listByMeta({ limit: 1000 })).items.map((i) => i.data.status)).toEqual(['s0']);
      });
    });

    describe('listing by indexed properties', () => {
      it('filters with the safe operators, sorts, and pages with afterId', async () => {
        const { orders } = await start();
        const made = [];
        for (let i = 0; i < 30; i++) made.push(await orders.create({ status: i % 3 === 0 ? 'paid' : 'new', total: i, customer: { id: `c${i % 5}` } }));
        const paid = await orders.listByMeta({ filter: { status: 'paid', total: { $gte: 10 } }, limit: 100 });
        expect(paid.items.map((r) => r.data.total)).toEqual([12, 15, 18, 21, 24, 27]);
        const either = await orders.listByMeta({ filter: { $or: [{ total: { $lt: 2 } }, { 'customer.id': { $in: ['c4'] } }] }, limit: 100 });
        expect(either.items.map((r) => r.data.total).sort((a, b) => Number(a) - Number(b))).toEqual([0, 1, 4, 9, 14, 19, 24, 29]);
        const pages: number[] = [];
        let afterId: string | undefined;
        for (let n = 0; n < 10; n++) {
          const page = await orders.listByMeta({ limit: 7, sort: { updatedAt: -1 }, ...(afterId ? { afterId } : {}) });
          pages.push(...page.items.map((r) => Number(r.data.total)));
          afterId = page.nextAfterId ?? undefined;
          if (!afterId) break;
        }
        expect(pages).toEqual(Array.from({ length: 30 }, (_, i) => 29 - i));
        await orders.delete(made[0]!.id, 0);
        expect((await orders.listByMeta({ filter: { total: 0 } })).items).toHaveLength(0);
        expect((await orders.listByMeta({ filter: { total: 0 }, includeDeleted: true })).items).toHaveLength(1);
      });

      it('rejects unsafe operators and non-indexed properties before touching the store', async () => {
        const { orders } = await start();
        await orders.create({ status: 'new', secret: 'x' });
        for (const filter of [{ $where: 'true' }, { status: { $regex: '.*' } }, { status: { $function: {} } }, { secret: 'x' }, { status: { nested: 1 } }, { $expr: {} }]) {
          await expect(orders.listByMeta({ filter })).rejects.toBeInstanceOf(ValidationError);
        }
      });
    });

    describe('counters and validation', () => {
      it('counts created, updated, deleted, restored and counter rules per collection, in the analytics database', async () => {
        const { x, orders, names } = await start();
        const a = await orders.create({ status: 'n', total: 150 });
        await orders.create({ status: 'n', total: 5 });
        await orders.update(a.id, { status: 'p', total: 200 }, 0);
        await orders.enrich(a.id, { note: 'x' });
        await orders.delete(a.id, 2);
        await orders.restoreObject(a.id, { ov: 0 });
        const totals = await x.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
        // bigOrders (total >= 100 on CREATE or UPDATE): the create, the update, the enrich and the
        // restore (an update back to total 150); the small order and the delete do not count.
        expect(totals).toEqual({ created: 2, updated: 2, deleted: 1, restored: 1, bigOrders: 4 });
        expect(await x.counters.getTotals({ dbName: names.acmeAnalytics, collection: 'orders' })).toEqual(totals);
        expect(await x.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: 'globex', collection: 'orders' })).toEqual({});
      });

      it('enforces validation.requiredIndexed and writes nothing on failure', async () => {
        const { x, orders } = await start();
        await expect(orders.create({ total: 1 })).rejects.toBeInstanceOf(ValidationError);
        await expect(orders.create({ status: null, total: 1 })).rejects.toBeInstanceOf(ValidationError);
        const { id } = await orders.create({ status: 'ok' });
        await expect(orders.update(id, { total: 3 }, 0)).rejects.toBeInstanceOf(ValidationError);
        expect((await orders.listByMeta({ includeDeleted: true })).items).toHaveLength(1);
        expect(await x.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' })).toEqual({ created: 1 });
      });
    });

    describe('database types', () => {
      it('knowledge keeps only the latest state: same CRUD, no history, no versions objects', async () => {
        const { x, names } = await start();
        const facts = x.with({ databaseType: 'knowledge', tier: 'generic', collection: 'facts' });
        const { id } = await facts.create({ text: 'Python uses indentation' }, 'curator', 'seed');
        await facts.update(id, { text: 'Python uses significant indentation' }, 0, 'curator', 'fix');
        await facts.enrich(id, { tags: ['python'] });
        expect(await facts.getLatest(id)).toMatchObject({ ov: 2, data: { text: 'Python uses significant indentation', tags: ['python'] } });
        for (const call of [() => facts.history(id), () => facts.getAsOf(id, new Date()), () => facts.getVersion(id, 0), () => facts.restoreObject(id, { ov: 0 }), () => facts.restoreCollection({ cv: 0 })]) {
          await expect(call()).rejects.toThrow(/not keep|version history/);
        }
        expect(facts.route.blobs.versions).toBeUndefined();
        await x.flush();
        expect(await allKeys(inst.bucketFor(names.knowledge, 'records'), 'versions/')).toEqual([]);
        expect(JSON.parse((await text(inst.bucketFor(names.knowledge, 'records'), `records/facts/${id}/current.json`))!)).toMatchObject({ ov: 2 });
      });

      it('logs are append-only', async () => {
        const { x } = await start();
        const logs = x.with({ databaseType: 'logs', tier: 'generic', collection: 'activity' });
        const { id } = await logs.create({ action: 'login', at: new Date('2024-01-01T00:00:00Z') });
        expect((await logs.getLatest(id))?.data).toEqual({ action: 'login', at: '2024-01-01T00:00:00.000Z' });
        await expect(logs.update(id, { action: 'x' }, 0)).rejects.toThrow(/append-only/);
        await expect(logs.enrich(id, { action: 'x' })).rejects.toThrow(/append-only/);
        await expect(logs.delete(id, 0)).rejects.toThrow(/append-only/);
        expect((await logs.getLatest(id))?.ov).toBe(0);
      });

      it('with logicalDelete disabled, delete removes the record, its history and its objects', async () => {
        const { x, orders, names } = await start({ logicalDelete: { enabled: false } });
        const { id } = await orders.create({ status: 'a' });
        await orders.update(id, { status: 'b' }, 0);
        await x.flush();
        expect(await allKeys(inst.bucketFor(names.acme, 'versions'), `versions/orders/${id}/`)).toHaveLength(2);
        await orders.delete(id, 1);
        expect(await orders.getLatest(id, { includeDeleted: true })).toBeNull();
        expect((await orders.history(id)).items).toEqual([]);
        await x.flush();
        expect(await allKeys(inst.bucketFor(names.acme, 'versions'), `versions/orders/${id}/`)).toEqual([]);
        expect(await allKeys(inst.bucketFor(names.acme, 'records'), `records/orders/${id}/`)).toEqual([]);
      });
    });

    describe('blob layout and archival', () => {
      it('archives every version with the exact committed bytes under the documented keys; reads do not change', async () => {
        const { x, orders, names } = await start();
        const { id } = await orders.create({ status: 'é ✓ 😀', n: 1 }, 'a', 'r');
        for (let i = 1; i <= 5; i++) await orders.update(id, { status: `s${i}`, n: i }, i - 1, 'a', `r${i}`);
        const before = await Promise.all([0, 1, 2, 3, 4, 5].map((ov) => orders.getVersion(id, ov)));
        const asOfBefore = await orders.getAsOf(id, before[3]!.at);
        await x.flush();
        const versionsBucket = inst.bucketFor(names.acme, 'versions');
        expect(await allKeys(versionsBucket, `versions/orders/${id}/`)).toEqual([0, 1, 2, 3, 4, 5].map((ov) => `versions/orders/${id}/v${ov}.json`));
        expect((await orders.history(id)).items.every((h) => h.archived)).toBe(true);
        const after = await Promise.all([0, 1, 2, 3, 4, 5].map((ov) => orders.getVersion(id, ov)));
        expect(after).toEqual(before);
        expect(await orders.getAsOf(id, before[3]!.at)).toEqual(asOfBefore);
        for (const v of after) {
          const stored = await text(versionsBucket, `versions/orders/${id}/v${v!.ov}.json`);
          const doc = JSON.parse(stored!);
          expect(doc).toEqual({ id, ov: v!.ov, op: v!.op, at: v!.at, actor: 'a', reason: v!.reason, deleted: false, createdAt: v!.createdAt, data: v!.data });
          expect((await orders.history(id)).items.find((h) => h.ov === v!.ov)?.size).toBe(Buffer.byteLength(stored!, 'utf8'));
        }
        const current = JSON.parse((await text(inst.bucketFor(names.acme, 'records'), `records/orders/${id}/current.json`))!);
        expect(current).toMatchObject({ id, ov: 5, data: { status: 's5', n: 5 } });
      });

      it('never overwrites a foreign object already at a version key: the version stays in the index and is reported', async (ctx) => {
        if (!inst.inspect.capabilities.conditionalWrites) {
          console.warn(`[skipped] ${backend.name}: the blob store does not enforce create-only writes`);
          ctx.skip();
        }
        const errors: unknown[] = [];
        const { config, names } = configFor();
        await inst.prepare?.(Object.values(names));
        const x = initXronox(config, { onBackgroundError: (err) => errors.push(err) });
        open.push(x);
        const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
        const { id } = await orders.create({ status: 'a' });
        await x.flush();
        const bucket = inst.bucketFor(names.acme, 'versions');
        const planted = Buffer.from('{"planted":true}');
        await inst.inspect.put(bucket, `versions/orders/${id}/v1.json`, planted);
        await orders.update(id, { status: 'b' }, 0);
        expect((await x.flush()).failed).toBeGreaterThan(0);
        expect(String((errors[0] as Error).message)).toMatch(/different bytes/);
        expect(Buffer.from((await inst.inspect.get(bucket, `versions/orders/${id}/v1.json`))!).equals(planted)).toBe(true);
        expect((await orders.history(id)).items.find((h) => h.ov === 1)?.archived).toBe(false);
        expect((await orders.getVersion(id, 1))?.data).toEqual({ status: 'b' });
        // Once the foreign object is gone, a repair archives the version.
        await inst.inspect.delete(bucket, `versions/orders/${id}/v1.json`);
        await x.repair();
        expect((await orders.history(id)).items.every((h) => h.archived)).toBe(true);
        expect(JSON.parse(Buffer.from((await inst.inspect.get(bucket, `versions/orders/${id}/v1.json`))!).toString())).toMatchObject({ ov: 1, data: { status: 'b' } });
      });

      it('tenants land in their own databases and folders', async () => {
        const { x, runtime, names } = await start();
        const a = await runtime('acme').create({ status: 'a' });
        const g = await runtime('globex').create({ status: 'g' });
        await x.flush();
        expect(await allKeys(inst.bucketFor(names.acme, 'records'), 'records/orders/')).toEqual([`records/orders/${a.id}/current.json`]);
        expect(await allKeys(inst.bucketFor(names.globex, 'records'), 'records/orders/')).toEqual([`records/orders/${g.id}/current.json`]);
      });
    });

    describe('content offload', () => {
      const maps = {
        docs: {
          indexedProps: ['title'],
          base64Props: { file: { contentType: 'application/pdf' }, note: { contentType: 'text/plain', preferredText: true } },
        },
      };

      it('stores base64 properties in the content bucket, keeps a reference, and gives the bytes or presigned URLs back', async () => {
        const { x, runtime, names } = await start({ collectionMaps: maps, limits: { maxContentBytes: 1_000_000 } });
        const docs = runtime('acme', 'docs');
        const pdf = randomBytes(200_000);
        const c = await docs.create({ title: 'contract', file: pdf.toString('base64'), note: Buffer.from('héllo').toString('base64') }, 'a', 'upload');
        const bucket = inst.bucketFor(names.acme, 'content');
        const key = `content/docs/${c.id}/file/${sha(pdf)}/blob.bin`;
        expect(Buffer.from((await inst.inspect.get(bucket, key))!).equals(pdf)).toBe(true);
        expect(Buffer.from((await inst.inspect.get(bucket, `content/docs/${c.id}/note/${sha(Buffer.from('héllo'))}/text.txt`))!).toString('utf8')).toBe('héllo');
        const info = await inst.inspect.head(bucket, key);
        if (info?.contentType !== undefined) expect(info.contentType).toBe('application/pdf');
        const got = await docs.getLatest(c.id);
        expect(got?.data).toEqual({ title: 'contract', file: pdf.toString('base64'), note: Buffer.from('héllo').toString('base64') });
        // The index and the version objects hold only the reference.
        await x.flush();
        const stored = JSON.parse(Buffer.from((await inst.inspect.get(inst.bucketFor(names.acme, 'versions'), `versions/docs/${c.id}/v0.json`))!).toString());
        expect(stored.data.file).toEqual({ _content: { key, contentType: 'application/pdf', size: 200_000, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) } });
        const presigned = await docs.getLatest(c.id, { presign: true, ttlSeconds: 60 });
        expect(typeof presigned?.data.file).toBe('string');
        const url = String(presigned?.data.file);
        const fetched = url.startsWith('file:') ? readFileSync(new URL(url)) : Buffer.from(await (await fetch(url)).arrayBuffer());
        expect(fetched.equals(pdf)).toBe(true);
        // Unchanged content is not uploaded again; new content gets its own object; history keeps the old bytes.
        await docs.update(c.id, { title: 'contract v2', file: pdf.toString('base64') }, 0);
        const pdf2 = randomBytes(1000);
        await docs.enrich(c.id, { file: pdf2.toString('base64') });
        expect((await docs.getVersion(c.id, 1))?.data.file).toBe(pdf.toString('base64'));
        expect((await docs.getLatest(c.id))?.data.file).toBe(pdf2.toString('base64'));
        const objects = await allKeys(bucket, `content/docs/${c.id}/file/`);
        expect(objects).toEqual([`content/docs/${c.id}/file/${sha(pdf)}/blob.bin`, `content/docs/${c.id}/file/${sha(pdf2)}/blob.bin`].sort());
        expect((await docs.listByMeta({ filter: { title: 'contract v2' } })).items[0]?.data.file).toBe(pdf2.toString('base64'));
        expect(await docs.verify(c.id)).toMatchObject({ ok: true });
      });

      it('racing writers never change the bytes behind the winner, and a refused write never touches stored content', async () => {
        const { runtime, x, names } = await start({ collectionMaps: maps, limits: { maxDocumentBytes: 2000 } });
        const docs = runtime('acme', 'docs');
        for (let i = 0; i < 5; i++) {
          const v0 = Buffer.from('v0');
          const c = await docs.create({ title: 't', file: v0.toString('base64') });
          const a = Buffer.from('A'.repeat(5000));
          const b = Buffer.from('B'.repeat(10));
          const [ra] = await Promise.allSettled([docs.update(c.id, { title: 't', file: a.toString('base64') }, 0), docs.update(c.id, { title: 't', file: b.toString('base64') }, 0)]);
          const winner = ra.status === 'fulfilled' ? a : b;
          expect((await docs.getLatest(c.id))?.data.file).toBe(winner.toString('base64'));
          // The loser removed what it uploaded (if it got that far) as it failed: no sweep needed.
          const folder = `content/docs/${c.id}/file/`;
          expect(await allKeys(inst.bucketFor(names.acme, 'content'), folder)).toEqual([`${folder}${sha(v0)}/blob.bin`, `${folder}${sha(winner)}/blob.bin`].sort());
        }
        const facts = x.with({ databaseType: 'knowledge', tier: 'generic', collection: 'docs' });
        const f = await facts.create({ title: 't', file: Buffer.from('ORIGINAL').toString('base64') });
        await expect(facts.update(f.id, { title: 't', file: Buffer.from('OTHER').toString('base64'), pad: 'x'.repeat(3000) }, 0)).rejects.toBeInstanceOf(ValidationError);
        expect((await facts.getLatest(f.id))?.data.file).toBe(Buffer.from('ORIGINAL').toString('base64'));
      });

      it('repair removes the content of a write that never committed, once it is older than maxUploadSeconds, and keeps what a version shares', async () => {
        const { x, runtime, names } = await start({ collectionMaps: maps, limits: { maxUploadSeconds: 1 } });
        const docs = runtime('acme', 'docs');
        const [v0, v1, lost] = [randomBytes(3000), randomBytes(3000), randomBytes(3000)];
        const c = await docs.create({ title: 't', file: v0.toString('base64') });
        await docs.update(c.id, { title: 't', file: v1.toString('base64') }, 0);
        // What a writer killed between its uploads and its commit leaves: an upload intent per
        // object it stored (one new, one back to v0's bytes), and the objects.
        const target = (await x.jobTargets()).find((t) => t.dbName === names.acme)!;
        const bucket = inst.bucketFor(names.acme, 'content');
        const key = (bytes: Buffer) => `content/docs/${c.id}/file/${sha(bytes)}/blob.bin`;
        const token = randomUUID();
        const ns = { dbName: names.acme, collection: 'docs' };
        expect(await target.index.recordUploads(ns, [{ id: c.id, bucket, key: key(lost), token }, { id: c.id, bucket, key: key(v0), token }])).toEqual({ ok: true });
        await inst.inspect.put(bucket, key(lost), lost);
        // Younger than maxUploadSeconds: the writer may still be at work.
        expect((await x.repair()).uploads).toEqual({ deleted: 0, kept: 0, failed: 0 });
        expect(await allKeys(bucket, `content/docs/${c.id}/`)).toContain(key(lost));
        await new Promise((r) => setTimeout(r, 1200));
        expect((await x.repair()).uploads).toEqual({ deleted: 1, kept: 1, failed: 0 });
        expect(await allKeys(bucket, `content/docs/${c.id}/`)).toEqual([key(v0), key(v1)].sort());
        expect((await docs.getVersion(c.id, 0))?.data.file).toBe(v0.toString('base64'));
        expect((await docs.getLatest(c.id))?.data.file).toBe(v1.toString('base64'));
        expect(await target.index.listStaleUploads(names.acme, { olderThanMs: 0, limit: 10 })).toEqual([]);
        // Its commit, had the writer lived on, is refused: nothing is written.
        await expect(
          docs.enrich(c.id, { title: 'late' }).then(() => target.index.commit(ns, { writes: [{ id: c.id, expectedOv: 2, head: null, uploads: [{ bucket, key: key(lost), token }] }] })),
        ).resolves.toMatchObject({ ok: false, reason: 'upload' });
        expect((await docs.getLatest(c.id))?.ov).toBe(2);
      });

      it('a restore to a version whose content is gone from the bucket is refused, writing nothing', async () => {
        const { runtime, names } = await start({ collectionMaps: maps });
        const docs = runtime('acme', 'docs');
        const [v0, v1] = [randomBytes(2000), randomBytes(2000)];
        const c = await docs.create({ title: 't', file: v0.toString('base64') });
        await docs.update(c.id, { title: 't', file: v1.toString('base64') }, 0);
        await inst.inspect.delete(inst.bucketFor(names.acme, 'content'), `content/docs/${c.id}/file/${sha(v0)}/blob.bin`);
        await expect(docs.restoreObject(c.id, { ov: 0 })).rejects.toThrow(/cannot be restored to version 0/);
        expect((await docs.getLatest(c.id))?.ov).toBe(1);
        // A restore to content the head already holds needs nothing more.
        await docs.update(c.id, { title: 'u', file: v1.toString('base64') }, 1);
        expect((await docs.restoreObject(c.id, { ov: 1 })).ov).toBe(3);
      });

      it('content changed behind the engine is reported on read, never served', async () => {
        const { runtime, names } = await start({ collectionMaps: maps });
        const docs = runtime('acme', 'docs');
        const bytes = Buffer.from('the real invoice');
        const c = await docs.create({ title: 't', file: bytes.toString('base64') });
        await inst.inspect.put(inst.bucketFor(names.acme, 'content'), `content/docs/${c.id}/file/${sha(bytes)}/blob.bin`, Buffer.from('a forged invoice'));
        await expect(docs.getLatest(c.id)).rejects.toThrow(/does not match its SHA-256/);
      });

      it('refuses planted references, bad base64 and oversize content, writing nothing', async () => {
        const { x, runtime, names } = await start({ collectionMaps: maps, limits: { maxContentBytes: 1000 } });
        const docs = runtime('acme', 'docs');
        const other = await runtime('globex', 'docs').create({ title: 'secret', file: Buffer.from('globex').toString('base64') });
        const planted = { _content: { key: `content/docs/${other.id}/file/v0/blob.bin`, contentType: 'x', size: 6, sha256: '0'.repeat(64) } };
        for (const data of [{ title: 't', file: planted }, { title: 't', file: 'not base64!' }, { title: 't', file: Buffer.alloc(1001).toString('base64') }, { title: 't', file: 42 }]) {
          await expect(docs.create(data as never)).rejects.toBeInstanceOf(ValidationError);
        }
        const mine = await docs.create({ title: 'mine', file: Buffer.from('mine').toString('base64') });
        await expect(docs.update(mine.id, { title: 'mine', file: planted }, 0)).rejects.toBeInstanceOf(ValidationError);
        await expect(docs.enrich(mine.id, { file: planted })).rejects.toBeInstanceOf(ValidationError);
        await x.flush();
        expect((await docs.listByMeta({ includeDeleted: true })).items.map((r) => r.id)).toEqual([mine.id]);
        expect(await allKeys(inst.bucketFor(names.acme, 'content'), 'content/docs/')).toEqual([`content/docs/${mine.id}/file/${sha(Buffer.from('mine'))}/blob.bin`]);
        await expect(docs.getLatest(mine.id, { presign: true, ttlSeconds: 0 })).rejects.toBeInstanceOf(ValidationError);
      });

      it('unversioned types use the same content-addressed layout', async () => {
        const { x, names } = await start({ collectionMaps: maps });
        const docs = x.with({ databaseType: 'knowledge', tier: 'generic', collection: 'docs' });
        const c = await docs.create({ title: 'kb', file: Buffer.from('kb').toString('base64') });
        expect(await allKeys(inst.bucketFor(names.knowledge, 'content'), 'content/docs/')).toEqual([`content/docs/${c.id}/file/${sha(Buffer.from('kb'))}/blob.bin`]);
        expect((await docs.getLatest(c.id))?.data.file).toBe(Buffer.from('kb').toString('base64'));
      });
    });

    describe('tenant isolation', () => {
      it("tenant B can neither read, list, change, restore nor count tenant A's records", async () => {
        const { x, runtime } = await start();
        const acme = runtime('acme');
        const globex = runtime('globex');
        const { id } = await acme.create({ status: 'secret', total: 1 });
        expect(await globex.getLatest(id, { includeDeleted: true })).toBeNull();
        expect(await globex.getVersion(id, 0)).toBeNull();
        expect(await globex.getAsOf(id, new Date())).toBeNull();
        expect((await globex.history(id)).items).toEqual([]);
        expect((await globex.listByMeta({ filter: { status: 'secret' }, includeDeleted: true })).items).toEqual([]);
        await expect(globex.update(id, { status: 'pwned' }, 0)).rejects.toBeInstanceOf(NotFoundError);
        await expect(globex.enrich(id, { status: 'pwned' })).rejects.toBeInstanceOf(NotFoundError);
        await expect(globex.delete(id, 0)).rejects.toBeInstanceOf(NotFoundError);
        await expect(globex.restoreObject(id, { ov: 0 })).rejects.toBeInstanceOf(NotFoundError);
        await globex.restoreCollection({ cv: 0 });
        expect(await acme.getLatest(id)).toMatchObject({ ov: 0, data: { status: 'secret' } });
        expect(await x.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: 'globex', collection: 'orders' })).toEqual({});
        await expect(async () => x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'initech', collection: 'orders' })).rejects.toBeInstanceOf(RouteNotFoundError);
      });
    });

    describe('bad input', () => {
      const hostileNames = ['../x', '$where', '', 'a'.repeat(10_000), 'a/b', 'a\\b', 'x\u0000y', '..'];

      it('every method refuses hostile ids, wrong types and oversize documents with a named error, writing nothing', async () => {
        const { x, orders, runtime } = await start({ limits: { maxDocumentBytes: 10_000 } });
        const { id } = await orders.create({ status: 'ok' });
        const attempts: Array<() => Promise<unknown>> = [];
        for (const bad of hostileNames) {
          attempts.push(
            () => orders.update(bad, { status: 'x' }, 0),
            () => orders.enrich(bad, { status: 'x' }),
            () => orders.delete(bad, 0),
            () => orders.getLatest(bad),
            () => orders.getVersion(bad, 0),
            () => orders.getAsOf(bad, new Date()),
            () => orders.history(bad),
            () => orders.restoreObject(bad, { ov: 0 }),
            () => orders.listByMeta({ afterId: bad }),
            async () => runtime('acme', bad),
            async () => runtime(bad),
          );
        }
        const wrong: unknown[] = [null, undefined, 42, 'str', [], [1], new Map(), { $set: { a: 1 } }, { a: () => 1 }, { a: Number.NaN }, { a: 10n }, { status: 'x', big: 'y'.repeat(20_000) }];
        for (const data of wrong) {
          attempts.push(
            () => orders.create(data as never),
            () => orders.update(id, data as never, 0),
            () => orders.enrich(id, data as never),
          );
        }
        attempts.push(
          () => orders.update(id, { status: 'x' }, -1),
          () => orders.update(id, { status: 'x' }, 1.5),
          () => orders.update(id, { status: 'x' }, '0' as never),
          () => orders.create({ status: 'x' }, 42 as never),
          () => orders.create({ status: 'x' }, 'a', { r: 1 } as never),
          () => orders.create({ status: 'x' }, 'a'.repeat(10_000)),
          () => orders.getAsOf(id, 'yesterday'),
          () => orders.getAsOf(id, 12 as never),
          () => orders.history(id, { limit: 0 }),
          () => orders.history(id, { limit: 1e9 }),
          () => orders.listByMeta({ limit: -1 }),
          () => orders.listByMeta({ sort: { status: 1 } as never }),
          () => orders.listByMeta({ filter: 'status=1' as never }),
          () => orders.restoreCollection({ cv: -1 }),
          () => orders.restoreCollection({} as never),
          () => orders.restoreObject(id, {} as never),
          () => orders.enrich(id, []),
          () => orders.getLatest(id, null as never),
          () => orders.getVersion(id, 0, null as never),
          () => orders.getAsOf(id, new Date(), null as never),
          () => orders.history(id, null as never),
          () => orders.changesBy('a', null as never),
          () => orders.restoreObject(id, { ov: 0 }, null as never),
          () => orders.restoreCollection({ cv: 0 }, 'dry' as never),
          () => orders.listByMeta(null as never),
          () => orders.query({}, null as never),
          () => orders.enrich(id, { a: 1 }, null as never),
          async () => x.with({ databaseType: 'nope' as never, tier: 'tenant', tenantId: 'acme', collection: 'orders' }),
          async () => x.with({ databaseType: 'runtime', tier: 'galaxy' as never, tenantId: 'acme', collection: 'orders' }),
          async () => x.with({ databaseType: 'runtime', tier: 'generic', tenantId: 'acme', collection: 'orders' }),
        );
        for (const attempt of attempts) {
          const err = await attempt().then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err, attempt.toString()).toBeInstanceOf(XronoxError);
          expect((err as XronoxError).code, attempt.toString()).toMatch(/VALIDATION_FAILED|NOT_FOUND|ROUTE_NOT_FOUND/);
          expect((err as Error).message.length).toBeLessThan(400);
        }
        // Read everything back: exactly the one good record, untouched, and one write counted.
        const all = await orders.listByMeta({ includeDeleted: true, limit: 1000 });
        expect(all.items.map((r) => [r.id, r.ov, r.data])).toEqual([[id, 0, { status: 'ok' }]]);
        expect(await x.counters.getTotals({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' })).toEqual({ created: 1 });
      });
    });

    describe('lineage and actors', () => {
      it('records parent and origin, accumulates functionIds, and makes lineage queryable', async () => {
        const { orders } = await start();
        const parent = await orders.create({ status: 'draft' });
        const child = await orders.create({ status: 'final' }, 'alice', 'derive', { parentRecord: { id: parent.id, ov: 0 }, origin: { type: 'import', id: 'batch-7' } });
        await orders.enrich(child.id, { score: 1 }, { functionId: 'scorer@v1' });
        await orders.enrich(child.id, { score: 2 }, { functionId: 'scorer@v2' });
        await orders.enrich(child.id, { note: 'x' }, { functionId: 'scorer@v1' });
        const got = await orders.getLatest(child.id);
        expect(got?._system).toEqual({
          insertedAt: child.createdAt,
          updatedAt: got!.updatedAt,
          deletedAt: null,
          functionIds: ['scorer@v1', 'scorer@v2'],
          parent: { id: parent.id, collection: 'orders', ov: 0 },
          origin: { type: 'import', id: 'batch-7' },
        });
        expect((await orders.listByMeta({ filter: { '_system.parentId': parent.id } })).items.map((r) => r.id)).toEqual([child.id]);
        expect((await orders.listByMeta({ filter: { '_system.originType': 'import', '_system.originId': 'batch-7' } })).items).toHaveLength(1);
        expect((await orders.listByMeta({ filter: { '_system.insertedAt': { $gte: child.createdAt } } })).items.map((r) => r.id)).toEqual([child.id]);
        const d = await orders.delete(child.id, got!.ov);
        expect((await orders.getLatest(child.id, { includeDeleted: true }))?._system.deletedAt).toBe(d.deletedAt);
        await expect(orders.create({ status: 'x', _system: { hack: 1 } })).rejects.toBeInstanceOf(ValidationError);
        await expect(orders.create({ status: 'x' }, 'a', 'r', { parentRecord: { id: '../etc' } })).rejects.toBeInstanceOf(ValidationError);
        await expect(orders.create({ status: 'x' }, 'a', 'r', { sneaky: 1 } as never)).rejects.toBeInstanceOf(ValidationError);
      });

      it('stores typed actors on every version and answers "everything user-123 changed" by time range', async () => {
        const { orders, runtime } = await start();
        const ada = { type: 'user' as const, identifier: 'user-123', name: 'Ada' };
        const a = await orders.create({ status: 'a' }, ada, 'new');
        const b = await orders.create({ status: 'b' }, { type: 'agent', identifier: 'bot-1' });
        await orders.update(b.id, { status: 'b2' }, 0, ada, 'fix');
        await new Promise((r) => setTimeout(r, 5));
        const later = new Date().toISOString();
        await new Promise((r) => setTimeout(r, 5));
        await orders.update(a.id, { status: 'a2' }, 0, 'user-123', 'plain name, same identifier');
        await runtime('globex').create({ status: 'other tenant' }, ada);
        expect((await orders.getVersion(a.id, 0))?.actor).toEqual(ada);
        expect((await orders.history(b.id)).items.map((h) => h.actor)).toEqual([ada, { type: 'agent', identifier: 'bot-1' }]);
        // A plain name matches every version with that identifier, typed or not.
        const all = await orders.changesBy('user-123');
        expect(all.items.map((c) => [c.id, c.ov])).toEqual([[a.id, 1], [b.id, 1], [a.id, 0]]);
        expect((await orders.changesBy('user-123', { to: later })).items.map((c) => [c.id, c.ov])).toEqual([[b.id, 1], [a.id, 0]]);
        // A typed identity matches its type too: an agent that happens to share the identifier is someone else.
        expect((await orders.changesBy({ type: 'agent', identifier: 'user-123' })).items).toEqual([]);
        expect((await orders.changesBy({ type: 'user', identifier: 'user-123' })).items.map((c) => [c.id, c.ov])).toEqual([[b.id, 1], [a.id, 0]]);
        expect((await orders.changesBy('user-123', { from: later })).items.map((c) => [c.id, c.ov])).toEqual([[a.id, 1]]);
        const page1 = await orders.changesBy('user-123', { limit: 2 });
        const page2 = await orders.changesBy('user-123', { limit: 2, pageToken: page1.nextPageToken! });
        expect([...page1.items, ...page2.items].map((c) => c.ov)).toEqual([1, 1, 0]);
        expect(page2.nextPageToken).toBeNull();
        for (const bad of [{ type: 'robot', identifier: 'x' }, { type: 'user' }, { type: 'user', identifier: '' }, { type: 'user', identifier: 'x', extra: 1 }, 42, '']) {
          await expect(orders.create({ status: 'x' }, bad as never)).rejects.toBeInstanceOf(ValidationError);
        }
        await expect(runtime('globex').changesBy('user-123', { pageToken: page1.nextPageToken! })).rejects.toBeInstanceOf(ValidationError);
      });
    });

    describe('tamper evidence', () => {
      it('verify recomputes the hash chain and finds a version edited behind the engine', async () => {
        const { x, orders, names } = await start();
        const { id } = await orders.create({ status: 's0', amount: 10 }, 'a', 'r');
        for (let i = 1; i <= 4; i++) await orders.update(id, { status: `s${i}`, amount: 10 * (i + 1) }, i - 1, 'a', 'r');
        expect(await orders.verify(id)).toEqual({ id, ok: true, checked: 5, brokenAt: null });
        await x.flush();
        expect(await orders.verify(id)).toMatchObject({ ok: true, checked: 5 });
        // Someone with bucket access quietly lowers an amount in version 2.
        const bucket = inst.bucketFor(names.acme, 'versions');
        const key = `versions/orders/${id}/v2.json`;
        const original = (await inst.inspect.get(bucket, key))!;
        const doc = JSON.parse(Buffer.from(original).toString('utf8'));
        doc.data.amount = 1;
        await inst.inspect.put(bucket, key, Buffer.from(JSON.stringify(doc)));
        expect(await orders.verify(id)).toMatchObject({ ok: false, brokenAt: { ov: 2, reason: expect.stringMatching(/hash/) } });
        // Even a metadata-only edit (who did it) is caught.
        doc.data.amount = 30;
        doc.actor = 'someone-else';
        await inst.inspect.put(bucket, key, Buffer.from(JSON.stringify(doc)));
        expect(await orders.verify(id)).toMatchObject({ ok: false, brokenAt: { ov: 2 } });
        const other = await orders.create({ status: 'fine' });
        const report = await orders.verifyCollection();
        expect(report).toMatchObject({ ok: false, records: 2, versions: 6, broken: [{ id, ov: 2 }] });
        // Put the original bytes back: the chain holds again.
        await inst.inspect.put(bucket, key, original);
        expect(await orders.verify(id)).toMatchObject({ ok: true });
        expect(await orders.verify(other.id)).toMatchObject({ ok: true, checked: 1 });
        // A version object that disappears is reported too.
        await inst.inspect.delete(bucket, `versions/orders/${id}/v3.json`);
        expect(await orders.verify(id)).toMatchObject({ ok: false, brokenAt: { ov: 3, reason: expect.stringMatching(/missing/) } });
      });
    });

    describe('smartInsert and relationships', () => {
      it('16 concurrent smartInserts with the same keys leave exactly one record', async () => {
        const { runtime } = await start({ collectionMaps: { customers: { indexedProps: ['email', 'region'] } } });
        const customers = runtime('acme', 'customers');
        const results = await Promise.all(
          Array.from({ length: 16 }, (_, i) => customers.smartInsert({ email: 'ada@example.com', region: 'eu', [`seen${i}`]: true }, { uniqueKeys: ['email', 'region'], actor: `caller-${i}` })),
        );
        expect(new Set(results.map((r) => r.id)).size).toBe(1);
        expect(results.filter((r) => r.created)).toHaveLength(1);
        const all = await customers.listByMeta({ filter: { email: 'ada@example.com' }, includeDeleted: true });
        expect(all.items).toHaveLength(1);
        // Every caller's data was merged into the one record.
        for (let i = 0; i < 16; i++) expect(all.items[0]!.data[`seen${i}`]).toBe(true);
        expect(all.items[0]!.ov).toBe(15);
        // Other key values make other records; a deleted record's key is free again.
        const other = await customers.smartInsert({ email: 'bob@example.com', region: 'eu' }, { uniqueKeys: ['email', 'region'] });
        expect(other.created).toBe(true);
        await customers.delete(other.id, 0);
        const again = await customers.smartInsert({ email: 'bob@example.com', region: 'eu' }, { uniqueKeys: ['email', 'region'] });
        expect(again).toMatchObject({ created: true });
        expect(again.id).not.toBe(other.id);
        // Reviving a deleted record whose key another live record now holds is refused.
        await expect(customers.restoreObject(other.id, { ov: 0 })).rejects.toBeInstanceOf(ConflictError);
        expect((await customers.listByMeta({ filter: { email: 'bob@example.com' } })).items.map((r) => r.id)).toEqual([again.id]);
        // A record whose key changed no longer holds it.
        await customers.update(again.id, { email: 'robert@example.com', region: 'eu' }, 0);
        const third = await customers.smartInsert({ email: 'bob@example.com', region: 'eu' }, { uniqueKeys: ['email', 'region'] });
        expect(third.created).toBe(true);
        for (const bad of [[], ['nope'], ['email', 'email', 'email', 'email', 'email', 'email', 'email', 'email', 'email'], 'email']) {
          await expect(customers.smartInsert({ email: 'x', region: 'y' }, { uniqueKeys: bad as never })).rejects.toBeInstanceOf(ValidationError);
        }
        await expect(customers.smartInsert({ region: 'y' }, { uniqueKeys: ['email'] })).rejects.toBeInstanceOf(ValidationError);
      });

      it('insertWithEntities upserts referenced entities by key and links them; getWithEntities resolves them', async () => {
        const { runtime } = await start({ collectionMaps: { customers: { indexedProps: ['email'] }, orders: { indexedProps: ['total'] } } });
        const orders = runtime('acme');
        const customers = runtime('acme', 'customers');
        const mappings = [{ property: 'customer', collection: 'customers', keyProperty: 'email' }];
        const first = await orders.insertWithEntities({ total: 10, customer: { email: 'ada@example.com', name: 'Ada' } }, mappings, 'shop', 'order');
        const second = await orders.insertWithEntities({ total: 20, customer: { email: 'ada@example.com', tier: 'gold' } }, mappings, 'shop', 'order');
        expect(first.entities.customer).toMatchObject({ created: true });
        expect(second.entities.customer).toEqual({ id: first.entities.customer!.id, created: false });
        expect((await customers.listByMeta({})).items).toHaveLength(1);
        const stored = await orders.getLatest(second.id);
        expect(stored?.data.customer).toEqual({ _ref: { collection: 'customers', id: first.entities.customer!.id } });
        const resolved = await orders.getWithEntities(second.id, mappings);
        expect(resolved?.data.customer).toEqual({ id: first.entities.customer!.id, email: 'ada@example.com', name: 'Ada', tier: 'gold' });
        expect(resolved?.entities.customer?.id).toBe(first.entities.customer!.id);
        await expect(orders.insertWithEntities({ total: 1, customer: 'not-an-object' }, mappings)).rejects.toBeInstanceOf(ValidationError);
        // Every entity is checked before any is written.
        const two = [...mappings, { property: 'product', collection: 'products', keyProperty: 'sku' }];
        await expect(orders.insertWithEntities({ total: 1, customer: { email: 'new@example.com' }, product: 'nope' }, two)).rejects.toBeInstanceOf(ValidationError);
        await expect(orders.insertWithEntities({ total: 1, customer: { email: 'new@example.com' }, product: { name: 'no sku' } }, two)).rejects.toBeInstanceOf(ValidationError);
        expect((await customers.listByMeta({ filter: { email: 'new@example.com' } })).items).toEqual([]);
        await expect(orders.insertWithEntities({ total: 1 }, [{ property: 'customer', collection: '../x', keyProperty: 'email' }])).rejects.toBeInstanceOf(ValidationError);
        // Entities stay in the record's own tenant.
        expect((await runtime('globex', 'customers').listByMeta({})).items).toEqual([]);
      });
    });

    describe('queries as of a time', () => {
      it('answers a filter as the collection stood at a time, with pages that stay correct under concurrent writes', async () => {
        const { orders } = await start();
        const made = [];
        for (let i = 0; i < 25; i++) made.push(await orders.create({ status: i % 2 ? 'paid' : 'new', total: i }));
        await new Promise((r) => setTimeout(r, 5));
        const t = new Date().toISOString();
        await new Promise((r) => setTimeout(r, 5));
        // After t: some paid orders become refunded, one is deleted, new paid orders appear.
        for (const r of made.slice(0, 6)) if (r.ov === 0) await orders.update(r.id, { status: 'refunded', total: -1 }, 0);
        await orders.delete(made[7]!.id, 0);
        for (let i = 0; i < 5; i++) await orders.create({ status: 'paid', total: 100 + i });
        const expected = made.filter((_, i) => i % 2 === 1).map((r) => r.id);
        const seen: string[] = [];
        let pageToken: string | undefined;
        for (let pages = 0; pages < 20; pages++) {
          const page = await orders.query({ status: 'paid' }, { at: t, limit: 4, ...(pageToken ? { pageToken } : {}) });
          expect(Date.parse(page.at!)).toBe(Date.parse(t));
          seen.push(...page.items.map((r) => r.id));
          // Writes between pages must not shift what the next page returns.
          await orders.create({ status: 'paid', total: 999 });
          if (made[9]) await orders.update(made[9].id, { status: 'gone', total: 0 }, (await orders.getLatest(made[9].id))!.ov).catch(() => undefined);
          pageToken = page.nextPageToken ?? undefined;
          if (!pageToken) break;
        }
        expect(seen).toEqual([...expected].sort());
        const now = await orders.query({ status: 'paid' }, { limit: 1000 });
        expect(now.items.some((r) => r.data.total === 999)).toBe(true);
        const asThen = await orders.query({ total: { $lt: 3 } }, { at: t, limit: 10, projection: ['total'] });
        expect(asThen.items.map((r) => r.data)).toEqual([{ total: 0 }, { total: 1 }, { total: 2 }]);
        const withDeleted = await orders.query({ total: 7 }, { at: new Date().toISOString(), includeDeleted: true });
        expect(withDeleted.items.map((r) => r.deleted)).toEqual([true]);
        await expect(orders.query({ status: 'paid' }, { pageToken: 'garbage' })).rejects.toBeInstanceOf(ValidationError);
        const page = await orders.query({}, { at: t, limit: 1 });
        await expect((await start()).orders.query({}, { pageToken: page.nextPageToken! })).rejects.toBeInstanceOf(ValidationError);
      });

      it('unversioned types answer for the present and refuse a time', async () => {
        const { x } = await start();
        const facts = x.with({ databaseType: 'knowledge', tier: 'generic', collection: 'facts' });
        for (let i = 0; i < 5; i++) await facts.create({ n: i });
        const page1 = await facts.query({ n: { $gte: 1 } }, { limit: 2 });
        const page2 = await facts.query({ n: { $gte: 1 } }, { limit: 2, pageToken: page1.nextPageToken! });
        expect([...page1.items, ...page2.items].map((r) => r.data.n)).toEqual([1, 2, 3, 4]);
        await expect(facts.query({}, { at: new Date() })).rejects.toThrow(/version history/);
      });
    });

    describe('dynamic tenants', () => {
      it('routes a tenant that signs up without a config change, into its own database, isolated from others', async () => {
        const { config } = configFor();
        const dbNameTemplate = `dyn_${randomUUID().slice(0, 6)}_{tenantId}`;
        // On object storage each tenant gets its own bucket, named from the same template.
        const bucketTemplate = inst.databaseFields?.(dbNameTemplate).bucket;
        await inst.prepare?.(['newco', 'other-co'].map((t) => dbNameTemplate.replace('{tenantId}', t)));
        const x = initXronox({
          ...config,
          databases: {
            ...config.databases,
            runtime: {
              tenantDatabases: [],
              dynamicTenants: {
                enabled: true,
                dbConnRef: inst.dbConnRef,
                ...(inst.spaceConnRef ? { spaceConnRef: inst.spaceConnRef } : {}),
                ...(bucketTemplate ? { bucketTemplate } : {}),
                dbNameTemplate,
                validation: { pattern: '[a-z][a-z0-9-]*', maxLength: 32 },
              },
            },
          },
        });
        open.push(x);
        const tenant = (tenantId: string) => x.with({ databaseType: 'runtime', tier: 'tenant', tenantId, collection: 'orders' });
        const a = await tenant('newco').create({ status: 'a' });
        const b = await tenant('other-co').create({ status: 'b' });
        expect(tenant('newco').route.dbName).not.toBe(tenant('other-co').route.dbName);
        expect(await tenant('other-co').getLatest(a.id)).toBeNull();
        expect((await tenant('newco').listByMeta({ includeDeleted: true })).items.map((r) => r.id)).toEqual([a.id]);
        expect((await tenant('other-co').listByMeta({ includeDeleted: true })).items.map((r) => r.id)).toEqual([b.id]);
        await expect(tenant('other-co').update(a.id, { status: 'x' }, 0)).rejects.toBeInstanceOf(NotFoundError);
        for (const bad of ['Bad', '../x', '$where', 'a'.repeat(40)]) expect(() => tenant(bad)).toThrow(ValidationError);
      });
    });

    describe('tiered reads', () => {
      it('reads generic, domain and tenant knowledge, most specific first or deep-merged, saying which tiers contributed', async () => {
        const { config } = configFor();
        const made: string[] = [];
        const db = (dbName: string) => {
          const name = `${dbName}_${randomUUID().slice(0, 6)}`;
          made.push(name);
          return dbEntry(name);
        };
        const x = initXronox({
          ...config,
          databases: {
            ...config.databases,
            knowledge: { genericDatabase: db('kg'), domainsDatabases: [{ domain: 'health', ...db('kd') }], tenantDatabases: [{ tenantId: 'acme', ...db('kt') }] },
            metadata: { genericDatabase: db('mg'), tenantDatabases: [{ tenantId: 'acme', ...db('mt') }] },
          },
          collectionMaps: { ...config.collectionMaps, policies: { indexedProps: ['name'] } },
        });
        open.push(x);
        await inst.prepare?.(made);
        const k = (tier: 'generic' | 'domain' | 'tenant') =>
          x.with({ databaseType: 'knowledge', tier, collection: 'policies', ...(tier === 'domain' ? { domain: 'health' } : tier === 'tenant' ? { tenantId: 'acme' } : {}) });
        await k('generic').create({ name: 'retention', days: 30, rules: { audit: true }, tags: ['base'] });
        await k('domain').create({ name: 'retention', days: 90, tags: ['hipaa'] });
        await k('tenant').create({ name: 'retention', rules: { export: false }, tags: ['acme'] });
        const specific = await x.getKnowledge('policies', { name: 'retention' }, { tenantId: 'acme', domain: 'health' });
        expect(specific).toMatchObject({ tiers: ['generic', 'domain', 'tenant'], data: { name: 'retention', rules: { export: false }, tags: ['acme'] } });
        const merged = await x.getKnowledge('policies', { name: 'retention' }, { tenantId: 'acme', domain: 'health', merge: true });
        expect(merged?.data).toEqual({ name: 'retention', days: 90, rules: { audit: true, export: false }, tags: ['base', 'hipaa', 'acme'] });
        expect(await x.getKnowledge('policies', { name: 'retention' })).toMatchObject({ tiers: ['generic'], data: { days: 30 } });
        // A tenant or domain without its own database contributes nothing, and the answer says so.
        expect(await x.getKnowledge('policies', { name: 'retention' }, { tenantId: 'globex', domain: 'finance', merge: true })).toMatchObject({
          tiers: ['generic'],
          consulted: ['generic'],
          notConfigured: ['domain', 'tenant'],
        });
        expect(await x.getKnowledge('policies', { name: 'missing' }, { tenantId: 'acme' })).toEqual({
          data: null,
          tiers: [],
          records: {},
          consulted: ['generic', 'tenant'],
          notConfigured: [],
        });
        await x.with({ databaseType: 'metadata', tier: 'tenant', tenantId: 'acme', collection: 'policies' }).create({ name: 'theme', color: 'dark' });
        expect(await x.getMetadata('policies', { name: 'theme' }, { tenantId: 'acme' })).toMatchObject({ tiers: ['tenant'], data: { color: 'dark' } });
        await expect(x.getKnowledge('policies', { $where: '1' })).rejects.toBeInstanceOf(ValidationError);
        await expect(x.getKnowledge('policies', { name: 'retention' }, { tenantId: '../x' })).rejects.toBeInstanceOf(ValidationError);
      });
    });

    describe('admin', () => {
      it('health reaches every database and blob store and reports latency', async () => {
        const { x, names } = await start();
        const report = await x.admin.health();
        expect(report.ok).toBe(true);
        expect(report.databases.map((d) => d.dbName).sort()).toEqual(Object.values(names).filter((n) => n !== names.acmeAnalytics).sort());
        for (const d of report.databases) {
          expect(d.index).toMatchObject({ ok: true, adapter: expect.any(String) });
          expect(d.index.latencyMs).toBeGreaterThanOrEqual(0);
          expect(d.blobs).toMatchObject({ ok: true });
        }
        await x.admin.shutdown();
        expect(x.closed).toBe(true);
        await expect(x.admin.health()).rejects.toBeInstanceOf(XronoxError);
      });

      it('health never shows a secret of the config', async () => {
        // Secrets every backend has, the embedded one included: a spare S3 connection and a MongoDB
        // connection that no database uses, and the HTTP API's JWT secret.
        const spare = { region: 'us-east-1', accessKey: 'AKIASPAREUNUSEDKEY42', secretKey: 'spare-secret-key-nobody-uses-0123456789' };
        const mongoPassword = 'spare-mongo-password-42';
        const jwtSecret = 'jwt-secret-of-the-health-test-0123456789';
        const { x, config } = await start({
          spacesConnections: { ...inst.connections.spacesConnections, spare },
          dbConnections: { ...inst.connections.dbConnections, spareMongo: { mongoUri: `mongodb://app:${mongoPassword}@127.0.0.1:1/spare` } },
          api: { jwt: { secret: jwtSecret } },
        });
        const health = await x.admin.health();
        const report = JSON.stringify(health);
        const secrets = [
          ...Object.values(config.spacesConnections ?? {}).flatMap((c) => [c.secretKey, c.accessKey]),
          mongoPassword,
          jwtSecret,
        ].filter((s): s is string => typeof s === 'string');
        expect(secrets).toEqual(expect.arrayContaining([spare.accessKey, spare.secretKey, mongoPassword, jwtSecret]));
        for (const secret of secrets) expect(report).not.toContain(secret);
        // The masked config is there, with the places the secrets were in.
        expect(health.config.spacesConnections.spare).toMatchObject({ accessKey: 'AKIA****', secretKey: '****' });
        expect(health.config.dbConnections.spareMongo?.mongoUri).toBe('mongodb://app:****@127.0.0.1:1/spare');
        expect(health.config.api?.jwt?.secret).toBe('****');
      });

      it('two instances in one process share nothing: closing one leaves the other working', async () => {
        const a = await start();
        const b = await start();
        const ra = await a.orders.create({ status: 'a' });
        const rb = await b.orders.create({ status: 'b' });
        await a.x.shutdown();
        await expect(a.orders.getLatest(ra.id)).rejects.toBeInstanceOf(XronoxError);
        expect((await b.orders.getLatest(rb.id))?.data).toEqual({ status: 'b' });
        expect(await b.orders.getLatest(ra.id)).toBeNull();
        await b.x.flush();
      });
    });

    describe('messaging, identities and logs', () => {
      /** The suite's databases plus messaging and identities for acme and globex, on the backend under test. */
      async function startDomains() {
        const { config, names } = configFor();
        const suffix = randomUUID().slice(0, 8);
        const docs = inst.documentConnRef ?? inst.dbConnRef;
        const more = { msgAcme: `msg_acme_${suffix}`, msgGlobex: `msg_globex_${suffix}`, idsAcme: `ids_acme_${suffix}`, idsGlobex: `ids_globex_${suffix}` };
        const databases = {
          ...config.databases,
          messaging: { tenantDatabases: [{ tenantId: 'acme', ...dbEntry(more.msgAcme, docs) }, { tenantId: 'globex', ...dbEntry(more.msgGlobex, docs) }] },
          identities: { tenantDatabases: [{ tenantId: 'acme', ...dbEntry(more.idsAcme, docs) }, { tenantId: 'globex', ...dbEntry(more.idsGlobex, docs) }] },
        };
        await inst.prepare?.([...Object.values(names), ...Object.values(more)]);
        const x = initXronox({ ...config, databases });
        open.push(x);
        const messaging = (tenantId: string, collection: string) => x.with({ databaseType: 'messaging', tier: 'tenant', tenantId, collection });
        const identities = (tenantId: string, collection: string) => x.with({ databaseType: 'identities', tier: 'tenant', tenantId, collection });
        return { x, messaging, identities, logs: x.with({ databaseType: 'logs', tier: 'generic', collection: 'events' }) };
      }
      const at = (ms: number) => new Date(Date.UTC(2026, 0, 15, 12, 0, 0, ms));

      it('messages round-trip exactly, a unique key refuses a duplicate, and a large payload goes through the blob store and back', async () => {
        const { messaging } = await startDomains();
        const messages = messaging('acme', 'messages');
        const doc = { topic: 'payments', msgId: 'm-1', tenantId: 'acme', headers: { 'x-trace': 'é🎉' }, payload: { amount: 12.5, items: [{ sku: 'a' }] }, firstSeenAt: at(3), size: 40, _system: { createdAt: at(3) } };
        await messages.insert(doc);
        expect(await messages.findOne({ msgId: 'm-1' })).toEqual(doc);
        const dup = await messages.insert({ ...doc, payload: { other: true } }).catch((e: unknown) => e);
        expect(dup).toBeInstanceOf(ConflictError);
        expect(await messages.findOne({ msgId: 'm-1' })).toEqual(doc);
        const big = { ...doc, msgId: 'm-big', payload: { blob: 'x'.repeat(100_000) }, size: 100_020 };
        await messages.insert(big);
        expect(await messages.findOne({ msgId: 'm-big' })).toEqual(big);
      });

      it("tenant globex sees and changes nothing of acme's messaging and identities data", async () => {
        const { messaging, identities } = await startDomains();
        await messaging('acme', 'shared_memory').insert({ key: 'k', namespace: 'app', tenantId: 'acme', val: 1, _system: { createdAt: at(0), updatedAt: at(0) } });
        await identities('acme', 'users').insert({ userId: 'u1', tenantId: 'acme', email: 'ada@example.com', name: 'Ada', roles: ['user'] });
        expect(await messaging('globex', 'shared_memory').find({}, { limit: 100 })).toEqual([]);
        expect(await messaging('globex', 'shared_memory').findOne({ key: 'k', tenantId: 'acme' })).toBeNull();
        expect(await messaging('globex', 'shared_memory').deleteMany({})).toBe(0);
        expect(await identities('globex', 'users').find({ email: 'ada@example.com' }, { limit: 10 })).toEqual([]);
        expect(await messaging('acme', 'shared_memory').findOne({ key: 'k' })).toMatchObject({ val: 1 });
        expect(await identities('acme', 'users').findOne({ userId: 'u1' })).toMatchObject({ name: 'Ada' });
      });

      it('16 concurrent upserts of one shared_memory key leave exactly one document, holding one of the written values', async () => {
        const { messaging } = await startDomains();
        const memory = messaging('acme', 'shared_memory');
        const key = { key: 'race', namespace: 'app', tenantId: 'acme' };
        await Promise.all(Array.from({ length: 16 }, (_, i) => memory.upsert(key, { ...key, val: i, _system: { createdAt: at(i), updatedAt: at(i) } })));
        const found = await memory.find({ key: 'race' }, { limit: 100 });
        expect(found).toHaveLength(1);
        expect(Array.from({ length: 16 }, (_, i) => i)).toContain(found[0]!.val);
      });

      it("an identity change writes a versioned audit event into the tenant's runtime database", async () => {
        const { x, identities } = await startDomains();
        const users = identities('acme', 'users');
        const ada = { userId: 'u1', tenantId: 'acme', email: 'ada@example.com', name: 'Ada', roles: ['user'] };
        await users.insert(ada, { actor: 'admin', reason: 'signup' });
        await users.upsert({ tenantId: 'acme', userId: 'u1' }, { ...ada, roles: ['admin'] }, { actor: 'admin', reason: 'promotion' });
        const events = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'identity_events' });
        const listed = await events.listByMeta({ limit: 100 });
        expect(listed.items).toHaveLength(2);
        const history = await events.history(listed.items[0]!.id);
        expect(history.items.length).toBeGreaterThanOrEqual(1);
        expect(JSON.stringify(listed.items.map((i) => i.data))).toContain('admin');
      });

      it('logs are append-only: update and delete are refused and the record stays as written', async () => {
        const { logs } = await startDomains();
        const entry = await logs.create({ level: 'info', msg: 'started' }, 'system');
        for (const attempt of [() => logs.update(entry.id, { level: 'warn' }, entry.ov, 'system'), () => logs.delete(entry.id, entry.ov, 'system')]) {
          const err = await attempt().catch((e: unknown) => e);
          expect(err).toBeInstanceOf(ValidationError);
          expect((err as XronoxError).name).toBe('AppendOnlyError');
        }
        expect((await logs.getLatest(entry.id))?.data).toEqual({ level: 'info', msg: 'started' });
      });
    });

    describe('concurrency and crashes', () => {
      it('8 concurrent writers x 200 updates with retry on conflict: ov 1600, gapless history, every payload as written', async () => {
        const { orders } = await start();
        const { id } = await orders.create({ status: 'start', writer: -1, i: -1 });
        const acknowledged = new Map<number, { writer: number; i: number }>();
        const writer = async (w: number) => {
          for (let i = 0; i < 200; i++) {
            for (;;) {
              const head = await orders.getLatest(id);
              try {
                const r = await orders.update(id, { status: 'busy', writer: w, i }, head!.ov, `writer-${w}`, 'load');
                expect(acknowledged.has(r.ov)).toBe(false);
                acknowledged.set(r.ov, { writer: w, i });
                break;
              } catch (err) {
                if (!(err instanceof VersionConflictError)) throw err;
              }
            }
          }
        };
        await Promise.all(Array.from({ length: 8 }, (_, w) => writer(w)));
        expect((await orders.getLatest(id))?.ov).toBe(1600);
        const history = await fullHistory(orders, id);
        expect(history.map((h) => h.ov)).toEqual(Array.from({ length: 1601 }, (_, i) => 1600 - i));
        for (let ov = 1; ov <= 1600; ov += 1) {
          const v = await orders.getVersion(id, ov);
          expect(v?.data).toEqual({ status: 'busy', ...acknowledged.get(ov) });
          expect(v?.actor).toBe(`writer-${acknowledged.get(ov)!.writer}`);
        }
      });

      it('two OS processes updating one record share the store without losing or duplicating a version', async () => {
        const { config, orders } = await start();
        const { id } = await orders.create({ status: 'start' });
        const configPath = join(tmpdir(), `xronox-config-${randomUUID()}.json`);
        writeFileSync(configPath, JSON.stringify(config));
        const runs = await Promise.all([0, 1].map((w) => runWriter(['update', configPath, 'acme', id, String(w), '150'])));
        const acked = runs.flatMap((r) => r.lines.map((l) => JSON.parse(l) as { ov: number; writer: number; i: number }));
        expect(runs.map((r) => r.code)).toEqual([0, 0]);
        expect(acked).toHaveLength(300);
        expect(new Set(acked.map((a) => a.ov)).size).toBe(300);
        expect((await orders.getLatest(id))?.ov).toBe(300);
        const history = await fullHistory(orders, id);
        expect(history.map((h) => h.ov)).toEqual(Array.from({ length: 301 }, (_, i) => 300 - i));
        for (const a of acked) expect((await orders.getVersion(id, a.ov))?.data).toEqual({ status: 'busy', writer: a.writer, i: a.i });
      });

      it('a writer killed with SIGKILL loses no acknowledged write; one repair pass finishes its blob copies', async () => {
        const { config, names } = await start();
        const configPath = join(tmpdir(), `xronox-config-${randomUUID()}.json`);
        writeFileSync(configPath, JSON.stringify(config));
        const run = await runWriter(['create', configPath, 'acme', '-', '0', '100000'], { killAfterLines: 40 });
        expect(run.signal).toBe('SIGKILL');
        const acked = run.lines.map((l) => JSON.parse(l) as { id: string; i: number });
        expect(acked.length).toBeGreaterThanOrEqual(40);
        const x = initXronox(config);
        open.push(x);
        const orders = x.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
        const report = await x.repair();
        expect(report.failed).toBe(0);
        for (const a of acked) {
          expect((await orders.getLatest(a.id))?.data).toEqual({ status: 'crash-test', i: a.i });
          expect(await text(inst.bucketFor(names.acme, 'versions'), `versions/orders/${a.id}/v0.json`)).not.toBeNull();
          expect(await text(inst.bucketFor(names.acme, 'records'), `records/orders/${a.id}/current.json`)).not.toBeNull();
        }
        // Nothing is left pending, and every record the index holds is whole.
        expect((await x.repair()).synced).toBe(0);
        const all = await orders.listByMeta({ limit: 1000, includeDeleted: true });
        for (const r of all.items) expect(r.data).toMatchObject({ status: 'crash-test' });
      });
    });
  });

  if (backend.skip !== undefined) {
    // Said out loud, never silently.
    console.warn(`[xronox] SKIPPED engine conformance for ${backend.name}: ${backend.skip}`);
  }
}

/** Runs the writer fixture in a separate Node process and collects its JSON lines. */
function runWriter(args: string[], options: { killAfterLines?: number } = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; lines: string[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    let buffer = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      const parts = buffer.split('\n');
      buffer = parts.pop() ?? '';
      lines.push(...parts.filter(Boolean));
      if (options.killAfterLines !== undefined && lines.length >= options.killAfterLines) child.kill('SIGKILL');
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (buffer && signal !== 'SIGKILL') lines.push(buffer);
      if (code !== 0 && signal === null) reject(new Error(`writer exited with ${code}: ${stderr}`));
      else resolve({ code, signal, lines, stderr });
    });
  });
}
