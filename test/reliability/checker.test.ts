/**
 * The history checker must be able to fail: a real store written by logged clients passes, and
 * each corruption of the logs (a write acknowledged but not stored, an ov acknowledged twice, a
 * version no operation explains, …) or of the store itself (a version row deleted from the
 * SQLite file, a version time moved, a blob object removed, stale or left over) is reported.
 */
import { cpSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Collection } from '../../core/engine/collection.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';
import { checkHistory, type ClientLog, fromMicros, toMicros } from './support/history-checker.js';
import { ordersRoute, RELIABILITY_COLLECTION, RELIABILITY_DB, reliabilityConfig, runClient, seedRecords } from './support/history-client.js';
import { type AckEntry, type IntentEntry, type LogEntry, OpLog, readOpLog } from './support/history-log.js';

const SEED = 5_2026;
const CLIENTS = ['c0', 'c1', 'c2'];

describe('the history checker', () => {
  const dir = tempDir('xronox-reliability-checker');
  const base = join(dir.path, 'base');
  let logs: ClientLog[] = [];
  let copies = 0;
  afterAll(() => dir.cleanup());

  beforeAll(async () => {
    const x = initXronox(reliabilityConfig(base));
    const orders = x.with(ordersRoute) as Collection;
    const seedLog = new OpLog(join(dir.path, 'seed.jsonl'));
    const sharedIds = await seedRecords(orders, 3, seedLog);
    seedLog.close();
    const clientLogs = CLIENTS.map((c) => new OpLog(join(dir.path, `${c}.jsonl`)));
    await Promise.all(CLIENTS.map((client, i) => runClient(orders, { client, seed: SEED + i, ops: 60, sharedIds, log: clientLogs[i]! })));
    for (const log of clientLogs) log.close();
    await x.shutdown();
    logs = ['seed', ...CLIENTS].map((name) => ({ name, entries: readOpLog(join(dir.path, `${name}.jsonl`)), killed: false }));
  });

  /** Runs the checker over a copy of the store (tampered with by `tamper`) and the given logs. */
  async function check(options: { logs?: ClientLog[]; tamper?: (root: string) => void } = {}) {
    const root = join(dir.path, `copy-${copies++}`);
    cpSync(base, root, { recursive: true });
    options.tamper?.(root);
    const x = initXronox(reliabilityConfig(root));
    try {
      return await checkHistory({ orders: x.with(ordersRoute) as Collection, logs: options.logs ?? logs, blobRoot: join(root, 'blobs', RELIABILITY_DB), seed: SEED });
    } finally {
      await x.shutdown();
    }
  }

  /** A copy of the logs with one client's entries changed by `edit`. */
  function editLog(name: string, edit: (entries: LogEntry[]) => LogEntry[]): ClientLog[] {
    return logs.map((l) => (l.name === name ? { ...l, entries: edit(structuredClone(l.entries)) } : l));
  }

  const acks = (name: string) => logs.find((l) => l.name === name)!.entries.filter((e): e is AckEntry => e.t === 'ack');
  const intentOf = (tag: string) => logs.flatMap((l) => l.entries).find((e): e is IntentEntry => e.t === 'intent' && e.tag === tag)!;
  /** An acknowledged update or enrich of c0, whose record has later versions. */
  const middleAck = () => acks('c0').find((a) => a.ov > 0 && ['update', 'enrich'].includes(intentOf(a.tag).kind) && acks('c1').some((b) => b.id === a.id && b.ov > a.ov))!;

  it('passes the store its clients wrote, and the clients really contended', async () => {
    const report = await check();
    expect(report.problems).toEqual([]);
    expect(report.figures.ackedChecked).toBe(logs.flatMap((l) => l.entries).filter((e) => e.t === 'ack').length);
    expect(report.figures.rejected).toBeGreaterThan(0);
    expect(middleAck()).toBeDefined();
  });

  describe('reports a corrupted log', () => {
    it('a write acknowledged but never stored (a lost write)', async () => {
      const a = acks('c0').at(-1)!;
      const lost: LogEntry[] = [
        { ...intentOf(a.tag), tag: 'c0:lost', kind: 'update', id: a.id, expectedOv: 10_000 },
        { t: 'ack', tag: 'c0:lost', w: a.w, id: a.id, ov: 10_001, cv: 1_000_000, at: a.at },
      ];
      const report = await check({ logs: editLog('c0', (e) => [...e, ...lost]) });
      expect(report.problems.join('\n')).toMatch(/lost acknowledged write: c0:lost/);
    });

    it('one ov acknowledged to two operations', async () => {
      const a = middleAck();
      const later = acks('c1').find((b) => b.id === a.id && b.ov > a.ov)!;
      const report = await check({ logs: editLog('c1', (entries) => entries.map((e) => (e.t === 'ack' && e.tag === later.tag ? { ...e, ov: a.ov } : e))) });
      expect(report.problems.join('\n')).toMatch(new RegExp(`ov ${a.ov} of ${a.id} was acknowledged twice`));
    });

    it('a stored version that no logged operation wrote (an orphan)', async () => {
      const a = middleAck();
      const report = await check({ logs: editLog('c0', (entries) => entries.filter((e) => e.tag !== a.tag)) });
      expect(report.problems.join('\n')).toMatch(new RegExp(`${a.id} ov ${a.ov}: orphan version`));
    });

    it('a write stored with other data than acknowledged', async () => {
      const a = middleAck();
      const report = await check({ logs: editLog('c0', (entries) => entries.map((e) => (e.t === 'intent' && e.tag === a.tag ? { ...e, data: { ...e.data, n: -1 } } : e))) });
      expect(report.problems.join('\n')).toMatch(new RegExp(`${a.id} ov ${a.ov}: data .* is not what ${a.tag} wrote`));
    });

    it('a rejected write that is visible', async () => {
      const a = middleAck();
      const report = await check({ logs: editLog('c0', (entries) => entries.map((e) => (e.t === 'ack' && e.tag === a.tag ? { t: 'reject', tag: a.tag, w: a.w, error: 'VersionConflictError' } : e))) });
      expect(report.problems.join('\n')).toMatch(new RegExp(`written by ${a.tag}, which was rejected`));
    });

    it('a write the client was told failed (outcome unknown) only if it was stored otherwise than asked', async () => {
      const a = middleAck();
      const asFailed = (entries: LogEntry[]) => entries.map((e): LogEntry => (e.t === 'ack' && e.tag === a.tag ? { t: 'fail', tag: a.tag, w: a.w, error: 'StorageError: the server went away' } : e));
      // Stored whole, or never stored (a failed update of the same record appended): both allowed.
      const neverStored: LogEntry[] = [
        { ...intentOf(a.tag), tag: 'c0:failed', expectedOv: 1_000 },
        { t: 'fail', tag: 'c0:failed', w: a.w, error: 'StorageError: the server went away' },
      ];
      const allowed = await check({ logs: editLog('c0', (entries) => [...asFailed(entries), ...neverStored]) });
      expect({ problems: allowed.problems, failed: allowed.figures.failed, failedApplied: allowed.figures.failedApplied }).toEqual({ problems: [], failed: 2, failedApplied: 1 });
      const otherData = await check({ logs: editLog('c0', (entries) => asFailed(entries).map((e) => (e.t === 'intent' && e.tag === a.tag ? { ...e, data: { ...e.data, n: -1 } } : e))) });
      expect(otherData.problems.join('\n')).toMatch(new RegExp(`is not what ${a.tag} wrote`));
    });

    it('an operation left unanswered by a client that was not killed', async () => {
      const a = acks('c0').at(-1)!;
      const report = await check({ logs: editLog('c0', (entries) => entries.filter((e) => !(e.t === 'ack' && e.tag === a.tag))) });
      expect(report.problems.join('\n')).toMatch(/c0: 1 operations without an answer \(the client was not killed\)/);
    });

    it('acknowledgements that contradict real time', async () => {
      // The later version is made to look acknowledged before the earlier one was even issued.
      const a = middleAck();
      const later = acks('c1').find((b) => b.id === a.id && b.ov > a.ov)!;
      const report = await check({ logs: editLog('c1', (entries) => entries.map((e) => (e.t === 'ack' && e.tag === later.tag ? { ...e, w: intentOf(a.tag).w - 1 } : e))) });
      expect(report.problems.join('\n')).toMatch(new RegExp(`${later.tag} \\(ov ${later.ov}\\) was acknowledged at .*, before ${a.tag} \\(ov ${a.ov}\\) was issued`));
    });
  });

  describe('reports a corrupted store', () => {
    const sqlite = (root: string, sql: string, ...params: unknown[]) => {
      const db = new Database(join(root, 'xronox.sqlite'));
      try {
        db.prepare(sql).run(...params);
      } finally {
        db.close();
      }
    };

    it('a version row deleted from the index (a lost write and a gap in the history)', async () => {
      const a = middleAck();
      const report = await check({ tamper: (root) => sqlite(root, 'DELETE FROM versions WHERE db = ? AND coll = ? AND id = ? AND ov = ?', RELIABILITY_DB, RELIABILITY_COLLECTION, a.id, a.ov) });
      const text = report.problems.join('\n');
      expect(text).toMatch(new RegExp(`${a.id}: history ovs are .*without gaps`));
      expect(text).toMatch(new RegExp(`lost acknowledged write: ${a.tag}`));
    });

    it('a version time moved in the index (reads refuse the version as tampered: its time is in its hash)', async () => {
      const a = middleAck();
      const moved = fromMicros(toMicros(a.at) + 1);
      const report = await check({ tamper: (root) => sqlite(root, 'UPDATE versions SET at = ? WHERE db = ? AND coll = ? AND id = ? AND ov = ?', moved, RELIABILITY_DB, RELIABILITY_COLLECTION, a.id, a.ov) });
      expect(report.problems.join('\n')).toMatch(new RegExp(`${a.id}: reading it back failed: Record ${a.id} version ${a.ov} in .* failed its tamper check \\(its metadata .*does not match its hash\\)`));
    });

    it('a stale current.json', async () => {
      const a = middleAck();
      const report = await check({
        tamper: (root) => cpSync(join(root, 'blobs', RELIABILITY_DB, 'versions', RELIABILITY_COLLECTION, a.id, `v${a.ov}.json`), join(root, 'blobs', RELIABILITY_DB, 'records', RELIABILITY_COLLECTION, a.id, 'current.json')),
      });
      expect(report.problems.join('\n')).toMatch(new RegExp(`${a.id}: current.json holds ov ${a.ov}, the head is ov`));
    });

    it('a version object removed from the blob folder', async () => {
      const a = middleAck();
      const report = await check({ tamper: (root) => rmSync(join(root, 'blobs', RELIABILITY_DB, 'versions', RELIABILITY_COLLECTION, a.id, `v${a.ov}.json`)) });
      // The version is archived, so reading it back fails; the checker reports it rather than stopping.
      expect(report.problems.join('\n')).toMatch(new RegExp(`${a.id}: reading it back failed: .*Version ${a.ov} of ${a.id} is archived but its object is missing`));
    });

    it('objects of a version or a record the index does not have', async () => {
      const a = middleAck();
      const stray = '01900000-0000-7000-8000-000000000000';
      const report = await check({
        tamper: (root) => {
          const versions = join(root, 'blobs', RELIABILITY_DB, 'versions', RELIABILITY_COLLECTION);
          writeFileSync(join(versions, a.id, 'v9999.json'), '{}');
          mkdirSync(join(root, 'blobs', RELIABILITY_DB, 'records', RELIABILITY_COLLECTION, stray), { recursive: true });
          writeFileSync(join(root, 'blobs', RELIABILITY_DB, 'records', RELIABILITY_COLLECTION, stray, 'current.json'), '{}');
          expect(readdirSync(versions).length).toBeGreaterThan(0);
        },
      });
      const text = report.problems.join('\n');
      expect(text).toMatch(new RegExp(`${a.id}: versions/${RELIABILITY_COLLECTION}/${a.id}/v9999.json is an object of no version`));
      expect(text).toMatch(new RegExp(`records/${RELIABILITY_COLLECTION}/${stray}: objects of a record the index does not have`));
    });
  });
});
