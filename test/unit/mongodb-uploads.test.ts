import { randomUUID } from 'node:crypto';
import { Aggregator, Query, update, updateOne } from 'mingo';
import { describe, expect, it } from 'vitest';
import type { Document } from 'mongodb';
import type { UploadRef } from '../../core/contracts/index-store.js';
import { QUEUE_COLLECTIONS } from '../../core/adapters/mongodb/mongodb-layout.js';
import { sideEffects } from '../../core/adapters/mongodb/mongodb-protocol.js';
import {
  claimUploadCleanup,
  emptyDocFilter,
  listStaleUploads,
  recordUploads,
  releaseUploadCleanup,
  takeIntentPlan,
  touchIntentPlan,
  type UploadsCollection,
  uploadDocId,
} from '../../core/adapters/mongodb/mongodb-uploads.js';

/**
 * The MongoDB side of the content upload protocol (`mongodb-uploads.ts`) cannot meet a server on
 * these machines, so its plans run here on an in-memory collection whose query, update and
 * aggregation semantics (`$expr`, `$$NOW`, pipeline updates) come from mingo, with MongoDB's
 * single-document rules (unique `_id`, upserts). The scenarios are the index-store conformance
 * suite's for these methods; the adapter's calls to a real server run in that suite when
 * MONGODB_URI is set.
 */

type Doc = Document & { _id: string };

class DuplicateKey extends Error {}

class MemoryCollection implements UploadsCollection {
  readonly docs = new Map<string, Doc>();

  async updateOne(filter: Document, change: Document | Document[], options: { upsert?: boolean } = {}): Promise<{ matchedCount: number }> {
    const hit = [...this.docs.values()].find((d) => new Query(filter).test(d));
    if (!hit && !options.upsert) return { matchedCount: 0 };
    if (!hit && this.docs.has(filter._id as string)) throw new DuplicateKey(String(filter._id));
    const target: Doc = hit ?? { _id: filter._id as string };
    if (Array.isArray(change)) {
      // mingo replaces the array element rather than mutating it.
      const box = [target];
      updateOne(box, {}, change as never);
      this.docs.set(target._id, box[0]!);
    } else {
      update(target, change as never);
      this.docs.set(target._id, target);
    }
    return { matchedCount: hit ? 1 : 0 };
  }

  async deleteOne(filter: Document): Promise<unknown> {
    const hit = [...this.docs.values()].find((d) => new Query(filter).test(d));
    if (hit) this.docs.delete(hit._id);
    return undefined;
  }

  async aggregate(pipeline: Document[]): Promise<Document[]> {
    return new Aggregator(pipeline as never).run([...this.docs.values()].map((d) => structuredClone(d))) as Document[];
  }

  isDuplicateKey(err: unknown): boolean {
    return err instanceof DuplicateKey;
  }

  /** Moves every stamp of the key back by `ms` (time passing, without waiting for it). */
  age(collection: string, ref: Omit<UploadRef, 'token'>, ms: number): void {
    const doc = this.docs.get(uploadDocId(collection, ref.bucket, ref.key));
    if (!doc) return;
    for (const intent of (doc.intents ?? []) as Array<{ at: Date }>) intent.at = new Date(intent.at.getTime() - ms);
    if (doc.cleaning) (doc.cleaning as { at: Date }).at = new Date((doc.cleaning as { at: Date }).at.getTime() - ms);
  }
}

const C = 'orders';
const HOUR = 3_600_000;
const key = (n = 1) => `content/${C}/r1/f/${'a'.repeat(63)}${n}/blob.bin`;
const intent = (token: string, n = 1) => ({ id: 'r1', bucket: 'b', key: key(n), token });
const stale = async (coll: MemoryCollection, olderThanMs = 0) =>
  (await listStaleUploads(coll, { olderThanMs, limit: 100 })).map((r) => ({ key: r.key, token: r.token, cleaning: r.cleaning }));

describe('MongoDB upload intents (mingo)', () => {
  it('records and renews intents; a marked key refuses the whole call and takes back what it recorded', async () => {
    const coll = new MemoryCollection();
    const [a, b] = [randomUUID(), randomUUID()];
    expect(await recordUploads(coll, C, [intent(a, 1), intent(a, 2)])).toEqual({ ok: true });
    expect(await stale(coll)).toEqual([
      { key: key(1), token: a, cleaning: false },
      { key: key(2), token: a, cleaning: false },
    ]);
    expect(await stale(coll, HOUR)).toEqual([]);
    coll.age(C, intent(a, 1), 2 * HOUR);
    expect(await stale(coll, HOUR)).toEqual([{ key: key(1), token: a, cleaning: false }]);
    // Recording again renews the stamp.
    expect(await recordUploads(coll, C, [intent(a, 1)])).toEqual({ ok: true });
    expect(await stale(coll, HOUR)).toEqual([]);
    expect((coll.docs.get(uploadDocId(C, 'b', key(1)))!.intents as unknown[]).length).toBe(1);
    // Mark key 2, then a call recording keys 3 and 2 is refused and leaves no intent on 3.
    coll.age(C, intent(a, 2), 2 * HOUR);
    expect(await claimUploadCleanup(coll, C, intent(a, 2), { olderThanMs: HOUR, markToken: 'm' })).toBe(true);
    expect(await recordUploads(coll, C, [intent(b, 3), intent(b, 2)])).toEqual({ ok: false, key: key(2) });
    expect(coll.docs.has(uploadDocId(C, 'b', key(3)))).toBe(false);
  });

  it('marks a key only when every intent on it may go; a younger intent of another write keeps it, dropping only the own one', async () => {
    const coll = new MemoryCollection();
    const [a, b] = [randomUUID(), randomUUID()];
    await recordUploads(coll, C, [intent(a)]);
    expect(await claimUploadCleanup(coll, C, intent(a), { olderThanMs: HOUR, markToken: 'm' })).toBe(false);
    expect(await stale(coll)).toEqual([{ key: key(), token: a, cleaning: false }]);
    expect(await claimUploadCleanup(coll, C, intent(randomUUID()), { olderThanMs: 0, markToken: 'm' })).toBe(false);
    await recordUploads(coll, C, [intent(b)]);
    coll.age(C, intent(a), 2 * HOUR);
    // a is stale, b is young: b keeps the key, and the stale a goes.
    await recordUploads(coll, C, [intent(b)]);
    expect(await claimUploadCleanup(coll, C, intent(a), { olderThanMs: HOUR, markToken: 'm' })).toBe(false);
    expect((await stale(coll)).map((r) => r.token)).toEqual([b]);
    // b young but its own: with no other intent, it marks the key.
    expect(await claimUploadCleanup(coll, C, intent(b), { olderThanMs: HOUR, markToken: 'm', own: true })).toBe(true);
    expect(await stale(coll)).toEqual([{ key: key(), token: 'm', cleaning: true }]);
    // The taken intent can no longer be committed (transaction check) or renewed (standalone check).
    const take = takeIntentPlan(C, { bucket: 'b', key: key(), token: b });
    expect((await coll.updateOne(take.filter, take.update)).matchedCount).toBe(0);
    const touch = touchIntentPlan(C, { bucket: 'b', key: key(), token: b });
    expect((await coll.updateOne(touch.filter, touch.update)).matchedCount).toBe(0);
  });

  it('renews or takes over a mark only as the port says; release removes it, or turns it into an intent stale for any age', async () => {
    const coll = new MemoryCollection();
    const a = randomUUID();
    await recordUploads(coll, C, [intent(a)]);
    expect(await claimUploadCleanup(coll, C, intent(a), { olderThanMs: 0, markToken: 'm1' })).toBe(true);
    expect(await claimUploadCleanup(coll, C, intent('m1'), { olderThanMs: HOUR, markToken: 'm1' })).toBe(true);
    expect(await claimUploadCleanup(coll, C, intent('m1'), { olderThanMs: HOUR, markToken: 'm2' })).toBe(false);
    coll.age(C, intent('m1'), 2 * HOUR);
    expect(await claimUploadCleanup(coll, C, intent('m1'), { olderThanMs: HOUR, markToken: 'm2' })).toBe(true);
    await releaseUploadCleanup(coll, C, { bucket: 'b', key: key() }, 'm1');
    expect(await stale(coll)).toEqual([{ key: key(), token: 'm2', cleaning: true }]);
    await releaseUploadCleanup(coll, C, { bucket: 'b', key: key() }, 'm2', { retry: true });
    expect(await stale(coll, 50 * 365 * 24 * HOUR)).toEqual([{ key: key(), token: 'm2', cleaning: false }]);
    expect(await recordUploads(coll, C, [intent(a)])).toEqual({ ok: true });
    // A younger intent keeps the key; the stale one that was the mark goes.
    expect(await claimUploadCleanup(coll, C, intent('m2'), { olderThanMs: HOUR, markToken: 'm3' })).toBe(false);
    expect(await stale(coll)).toEqual([{ key: key(), token: a, cleaning: false }]);
    coll.age(C, intent(a), 2 * HOUR);
    expect(await claimUploadCleanup(coll, C, intent(a), { olderThanMs: HOUR, markToken: 'm3' })).toBe(true);
    await releaseUploadCleanup(coll, C, { bucket: 'b', key: key() }, 'm3');
    expect(coll.docs.size).toBe(0);
  });

  it('a commit takes its intents: in a transaction with a checked pull, standalone with a renewal, then a pull in the roll-forward', async () => {
    const coll = new MemoryCollection();
    const a = randomUUID();
    await recordUploads(coll, C, [intent(a, 1), intent(a, 2)]);
    const take = takeIntentPlan(C, { bucket: 'b', key: key(1), token: a });
    expect((await coll.updateOne(take.filter, take.update)).matchedCount).toBe(1);
    expect((await coll.updateOne(take.filter, take.update)).matchedCount).toBe(0);
    await coll.deleteOne(emptyDocFilter(C, { bucket: 'b', key: key(1) }));
    // Standalone: renewed just before the compare-and-set, so a cleanup judging it by an age sees it young.
    coll.age(C, intent(a, 2), 2 * HOUR);
    const touch = touchIntentPlan(C, { bucket: 'b', key: key(2), token: a });
    expect((await coll.updateOne(touch.filter, touch.update)).matchedCount).toBe(1);
    expect(await claimUploadCleanup(coll, C, intent(a, 2), { olderThanMs: HOUR, markToken: 'm' })).toBe(false);
    expect(await stale(coll)).toEqual([{ key: key(2), token: a, cleaning: false }]);
    // The roll-forward's operations remove it (twice changes nothing) and the emptied document.
    const ns = { dbName: 'rt', collection: C };
    const ops = sideEffects(ns, 'r1', {
      opId: 'op',
      queueOrder: undefined as never,
      ov: 0,
      cv: 0,
      since: new Date(),
      purge: false,
      releaseClaims: false,
      version: null,
      blobs: [],
      uploads: [{ bucket: 'b', key: key(2), token: a }],
      counters: [],
      countersApplied: false,
    }, { deadLetterCollection: 'x' }, { idempotentCounters: true }).filter((op) => op.coll.name === QUEUE_COLLECTIONS.uploads);
    expect(ops.length).toBe(2);
    for (let round = 0; round < 2; round++) {
      for (const op of ops) {
        if (op.kind === 'updateOne') await coll.updateOne(op.filter, op.update);
        else if (op.kind === 'deleteOne') await coll.deleteOne(op.filter);
      }
    }
    expect(coll.docs.size).toBe(0);
  });
});
