/**
 * The history checker: holds a versioned collection, read through the public API (and, when
 * asked, its blob folder), to the logs of every client that wrote to it (`history-log.ts`).
 *
 * It reports a problem when
 * - an acknowledged write is missing, or stored with other data, time, op or deleted state;
 * - an (id, ov) or a cv was acknowledged twice, or an ack does not follow its intent
 *   (ov ≠ expectedOv + 1);
 * - a record's history is not exactly 0..head (a gap, a duplicate, an extra), its version times
 *   do not strictly increase, or its head is not its newest version;
 * - a stored version was written by no logged operation (an orphan), by a rejected one, or by
 *   one operation twice; only an operation in flight when its process died, or one the client was
 *   told failed with the index store (`fail`: its outcome unknown), may have written a version
 *   without an ack;
 * - acknowledged writes of one record contradict real time: a write acknowledged before another
 *   was even issued holds a higher ov; or one client's acks of a record go back in ov;
 * - what a client read (the base of an enrich or delete, the target of a restore) is not what
 *   the log says that version holds;
 * - `getAsOf` at a version's time, between two versions, just before the next one or before the
 *   first answers anything but the version whose time is the latest at or before the instant;
 * - (with `blobRoot`) `current.json` or a `v{ov}.json` object disagrees with the index, is
 *   missing, or an object exists for a record or version the index does not have.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Collection } from '../../../core/engine/collection.js';
import type { VersionRecord } from '../../../core/engine/collection-types.js';
import { seededRandom } from '../../support/random.js';
import type { AckEntry, FailEntry, IntentEntry, LogEntry, RejectEntry } from './history-log.js';

export interface ClientLog {
  name: string;
  entries: LogEntry[];
  /** The client's process was killed: its last operation may be in flight (at most one). */
  killed: boolean;
}

export interface CheckInput {
  orders: Collection;
  logs: readonly ClientLog[];
  /** `{localStorage.basePath}/{dbName}`: when given, the blob objects are compared with the index. */
  blobRoot?: string;
  /** Records that get the per-version checks; default every record. Records no ack names always do. */
  scope?: ReadonlySet<string>;
  /** Picks the instants probed between two versions. */
  seed: number;
  /**
   * Limits the `getAsOf` probes to the neighbourhood of versions whose operation tag passes (a
   * crash trial probes around its own writes; the final check probes everything). Default: all.
   */
  probeTags?: (tag: string) => boolean;
  /**
   * Per record, the first ov to read back (a crash trial starts just below the head the previous
   * check saw: older versions were checked then). History, head and current.json are always
   * checked whole. Default: every version.
   */
  fromOv?: ReadonlyMap<string, number>;
  /**
   * Records read back at once (default 1). A server-backed index store answers each read over a
   * round trip: several records in flight keep both the server and this process busy.
   */
  concurrency?: number;
}

export interface CheckFigures {
  records: number;
  versions: number;
  ackedChecked: number;
  rejected: number;
  inFlight: number;
  /** In-flight operations whose write is in the store (the kill came after the commit, before the ack). */
  inFlightApplied: number;
  /** Operations answered with a storage failure (`fail`): their outcome was unknown to the client. */
  failed: number;
  /** Those whose write is in the store. */
  failedApplied: number;
  asOfQueries: number;
  /** Blob objects compared with the index (current.json and the version objects read back). */
  blobObjects: number;
  /** `*.xronox-tmp` files left by killed puts (in the blob store's temporary folder, or beside objects): invisible through the API, counted for the report. */
  tempFiles: number;
}

export interface CheckReport {
  problems: string[];
  figures: CheckFigures;
  /** Tags of the in-flight operations whose write is in the store. */
  inFlightApplied: string[];
  /** The head ov of every record checked. */
  heads: Map<string, number>;
}

interface Op {
  log: string;
  intent: IntentEntry;
  ack?: AckEntry;
  reject?: RejectEntry;
  fail?: FailEntry;
  /** Where the operation's version was found, if anywhere. */
  foundAt?: { id: string; ov: number };
}

const MAX_PROBLEMS = 50;
/** What the filesystem blob store names an object while it is being written. */
const TEMP_SUFFIX = '.xronox-tmp';

export async function checkHistory(input: CheckInput): Promise<CheckReport> {
  const { orders } = input;
  const problems: string[] = [];
  const problem = (text: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push(text);
  };
  const figures: CheckFigures = { records: 0, versions: 0, ackedChecked: 0, rejected: 0, inFlight: 0, inFlightApplied: 0, failed: 0, failedApplied: 0, asOfQueries: 0, blobObjects: 0, tempFiles: 0 };

  // ---- the logs on their own ----------------------------------------------------------------
  const ops = new Map<string, Op>();
  for (const log of input.logs) {
    const issued: Op[] = [];
    const lastOvOf = new Map<string, number>();
    for (const entry of log.entries) {
      if (entry.t === 'intent') {
        if (ops.has(entry.tag)) problem(`${log.name}: operation ${entry.tag} was issued twice`);
        const op: Op = { log: log.name, intent: entry };
        ops.set(entry.tag, op);
        issued.push(op);
        continue;
      }
      const op = ops.get(entry.tag);
      if (!op || op.log !== log.name) {
        problem(`${log.name}: ${entry.t} of ${entry.tag} without its intent`);
        continue;
      }
      if (op.ack || op.reject || op.fail) problem(`${log.name}: ${entry.tag} was answered twice`);
      if (entry.t === 'fail') {
        op.fail = entry;
        figures.failed++;
      } else if (entry.t === 'ack') {
        op.ack = entry;
        // One client is sequential: its later acks of a record come after its earlier ones.
        const last = lastOvOf.get(entry.id);
        if (last !== undefined && entry.ov <= last) problem(`${log.name}: ${entry.tag} acknowledged ov ${entry.ov} of ${entry.id} after this client had ov ${last} acknowledged`);
        lastOvOf.set(entry.id, entry.ov);
      } else {
        op.reject = entry;
        figures.rejected++;
      }
    }
    const inFlight = issued.filter((op) => !op.ack && !op.reject && !op.fail).length;
    figures.inFlight += inFlight;
    if (inFlight > (log.killed ? 1 : 0)) problem(`${log.name}: ${inFlight} operations without an answer (${log.killed ? 'a killed client has at most one' : 'the client was not killed'})`);
  }

  const ackedAt = new Map<string, Op>();
  const ackedCv = new Map<number, Op>();
  const ackedByRecord = new Map<string, Op[]>();
  for (const op of ops.values()) {
    const { intent, ack } = op;
    if (!ack) continue;
    if (intent.kind === 'create' ? ack.ov !== 0 : ack.id !== intent.id || ack.ov !== intent.expectedOv! + 1) {
      problem(`${intent.tag}: acknowledged as ${ack.id} ov ${ack.ov}, but it was a ${intent.kind} of ${intent.id ?? 'a new record'} at expected ov ${intent.expectedOv ?? '-'}`);
    }
    const key = `${ack.id}@${ack.ov}`;
    const twice = ackedAt.get(key);
    if (twice) problem(`ov ${ack.ov} of ${ack.id} was acknowledged twice: to ${twice.intent.tag} and to ${intent.tag}`);
    ackedAt.set(key, op);
    const cvTwice = ackedCv.get(ack.cv);
    if (cvTwice) problem(`cv ${ack.cv} was acknowledged twice: to ${cvTwice.intent.tag} and to ${intent.tag}`);
    ackedCv.set(ack.cv, op);
    const ofRecord = ackedByRecord.get(ack.id);
    if (ofRecord) ofRecord.push(op);
    else ackedByRecord.set(ack.id, [op]);
  }

  // Real time: a write acknowledged (by the wall clock every process shares) before another write
  // of the same record was issued must have the lower ov. Whole milliseconds apart only.
  for (const [id, list] of ackedByRecord) {
    const byOv = [...list].sort((a, b) => a.ack!.ov - b.ack!.ov);
    let earliestAckAbove = Infinity;
    let earliestOp: Op | undefined;
    for (let i = byOv.length - 1; i >= 0; i--) {
      const op = byOv[i]!;
      if (earliestOp && earliestAckAbove < op.intent.w) {
        problem(`${id}: ${earliestOp.intent.tag} (ov ${earliestOp.ack!.ov}) was acknowledged at ${earliestAckAbove}, before ${op.intent.tag} (ov ${op.ack!.ov}) was issued at ${op.intent.w}`);
      }
      if (op.ack!.w < earliestAckAbove) {
        earliestAckAbove = op.ack!.w;
        earliestOp = op;
      }
    }
  }

  // ---- the store --------------------------------------------------------------------------
  const listed = await listAll(orders);
  figures.records = listed.length;
  const listedSet = new Set(listed);
  for (const id of ackedByRecord.keys()) {
    if ((!input.scope || input.scope.has(id)) && !listedSet.has(id)) problem(`${id}: acknowledged, but not listed (includeDeleted)`);
  }
  const checked = listed.filter((id) => !input.scope || input.scope.has(id) || !ackedByRecord.has(id));
  const dataOf = new Map<string, VersionRecord>();
  const heads = new Map<string, number>();

  let next = 0;
  const reader = async () => {
    while (next < checked.length) {
      const id = checked[next++]!;
      try {
        await checkRecord(id);
      } catch (err) {
        // A read that fails (say an archived version whose object is gone) is a finding, not a crash of the checker.
        problem(`${id}: reading it back failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, input.concurrency ?? 1) }, reader));

  // Read consistency: what a client based a write on is what that version holds.
  for (const op of ops.values()) {
    const { intent } = op;
    if (!op.foundAt || intent.id === undefined) continue;
    if (intent.base !== undefined) {
      const read = dataOf.get(`${intent.id}@${intent.expectedOv}`);
      if (read && !isDeepStrictEqual(read.data, intent.base)) problem(`${intent.tag}: read ov ${intent.expectedOv} of ${intent.id} as other data than that version holds`);
    }
    if (intent.targetOv !== undefined) {
      const target = dataOf.get(`${intent.id}@${intent.targetOv}`);
      if (target && (!isDeepStrictEqual(target.data, intent.data) || target.deleted !== intent.deleted)) problem(`${intent.tag}: restored ov ${intent.targetOv} of ${intent.id}, but the restored state differs from that version`);
    }
  }

  for (const op of ops.values()) {
    if (!op.ack || (input.scope && !input.scope.has(op.ack.id)) || op.ack.ov < (input.fromOv?.get(op.ack.id) ?? 0)) continue;
    figures.ackedChecked++;
    if (!op.foundAt) problem(`lost acknowledged write: ${op.intent.tag} (${op.intent.kind} of ${op.ack.id}, ov ${op.ack.ov})`);
  }
  const inFlightApplied = [...ops.values()].filter((op) => !op.ack && !op.reject && !op.fail && op.foundAt).map((op) => op.intent.tag);
  figures.inFlightApplied = inFlightApplied.length;
  figures.failedApplied = [...ops.values()].filter((op) => op.fail && op.foundAt).length;

  if (input.blobRoot) checkOrphanObjects(input.blobRoot, listedSet);
  return { problems, figures, inFlightApplied, heads };

  async function checkRecord(id: string): Promise<void> {
    const head = await orders.getLatest(id, { includeDeleted: true });
    if (!head) {
      problem(`${id}: listed, but getLatest finds nothing`);
      return;
    }
    heads.set(id, head.ov);
    const firstUnchecked = input.fromOv?.get(id) ?? 0;
    // One version below the first unchecked one is read again: the time order and the probes need it.
    const fromOv = Math.max(0, Math.min(head.ov, firstUnchecked - 1));
    const historyOvs: number[] = [];
    const historyAt = new Map<number, string>();
    for (let before: number | undefined; ; ) {
      const page = await orders.history(id, { limit: 1000, ...(before !== undefined ? { before } : {}) });
      for (const h of page.items) {
        historyOvs.push(h.ov);
        historyAt.set(h.ov, h.at);
      }
      if (page.nextBefore === null) break;
      before = page.nextBefore;
    }
    const expectedOvs = Array.from({ length: head.ov + 1 }, (_, i) => head.ov - i);
    if (!isDeepStrictEqual(historyOvs, expectedOvs)) problem(`${id}: history ovs are ${summary(historyOvs)}, not ${head.ov}..0 without gaps`);

    const versions: VersionRecord[] = [];
    for (let ov = fromOv; ov <= head.ov; ov++) {
      const v = await orders.getVersion(id, ov);
      figures.versions++;
      if (!v || v.ov !== ov || v.id !== id) {
        problem(`${id}: getVersion(${ov}) returns ${v ? `${v.id} ov ${v.ov}` : 'nothing'}`);
        continue;
      }
      versions.push(v);
      dataOf.set(`${id}@${ov}`, v);
      if (historyAt.has(ov) && historyAt.get(ov) !== v.at) problem(`${id}: history says ov ${ov} is at ${historyAt.get(ov)}, getVersion says ${v.at}`);
      const prev = versions[versions.length - 2];
      if (prev && prev.ov === ov - 1 && !(v.at > prev.at)) problem(`${id}: ov ${ov} is at ${v.at}, not after ov ${ov - 1} at ${prev.at}`);
      // A version below firstUnchecked was attributed by an earlier check: read again for order and probes only.
      if (ov >= firstUnchecked) attribute(id, v);
    }
    const newest = versions[versions.length - 1];
    if (newest && (newest.ov !== head.ov || newest.deleted !== head.deleted || !isDeepStrictEqual(newest.data, head.data) || newest.at !== head.updatedAt)) {
      problem(`${id}: the head (ov ${head.ov}) is not its newest version`);
    }
    await probeAsOf(id, versions);
    if (input.blobRoot) checkObjects(input.blobRoot, id, versions, head.ov);
  }

  /** Finds the operation that wrote version `v` (its tag is the version's reason) and holds the version to it. */
  function attribute(id: string, v: VersionRecord): void {
    const tag = v.reason ?? '';
    const op = ops.get(tag);
    if (!op) return problem(`${id} ov ${v.ov}: orphan version: no logged operation ${JSON.stringify(tag)} wrote it`);
    if (op.reject) problem(`${id} ov ${v.ov}: written by ${tag}, which was rejected (${op.reject.error})`);
    if (op.foundAt) problem(`${tag} wrote two versions: ${op.foundAt.id} ov ${op.foundAt.ov} and ${id} ov ${v.ov}`);
    op.foundAt = { id, ov: v.ov };
    const { intent, ack } = op;
    const where = intent.kind === 'create' ? v.ov === 0 : intent.id === id && intent.expectedOv! + 1 === v.ov;
    if (!where) problem(`${id} ov ${v.ov}: written by ${tag}, a ${intent.kind} of ${intent.id ?? 'a new record'} at expected ov ${intent.expectedOv ?? '-'}`);
    if (v.op !== intent.kind) problem(`${id} ov ${v.ov}: op is ${v.op}, ${tag} was a ${intent.kind}`);
    if (v.actor !== intent.client) problem(`${id} ov ${v.ov}: actor is ${JSON.stringify(v.actor)}, ${tag} was ${intent.client}'s`);
    if (v.deleted !== intent.deleted) problem(`${id} ov ${v.ov}: deleted is ${v.deleted}, ${tag} wrote ${intent.deleted}`);
    if (!isDeepStrictEqual(v.data, intent.data)) problem(`${id} ov ${v.ov}: data ${JSON.stringify(v.data)} is not what ${tag} wrote: ${JSON.stringify(intent.data)}`);
    if (ack && (ack.id !== id || ack.ov !== v.ov || ack.at !== v.at || ack.cv !== v.cv)) {
      problem(`${id} ov ${v.ov}: stored at ${v.at} cv ${v.cv}, but ${tag} was acknowledged as ${ack.id} ov ${ack.ov} at ${ack.at} cv ${ack.cv}`);
    }
  }

  /** getAsOf at every version's time, between versions, just before the next, before the first and now. */
  async function probeAsOf(id: string, versions: readonly VersionRecord[]): Promise<void> {
    const expect = async (instant: string, want: VersionRecord | null, label: string) => {
      figures.asOfQueries += 2;
      const got = await orders.getAsOf(id, instant, { includeDeleted: true });
      if ((got?.ov ?? null) !== (want?.ov ?? null)) problem(`${id}: getAsOf(${instant}) (${label}) returns ov ${got?.ov ?? 'null'}, expected ${want?.ov ?? 'null'}`);
      const live = await orders.getAsOf(id, instant);
      const wantLive = want && !want.deleted ? want : null;
      if ((live?.ov ?? null) !== (wantLive?.ov ?? null)) problem(`${id}: getAsOf(${instant}) without includeDeleted returns ov ${live?.ov ?? 'null'}, expected ${wantLive?.ov ?? 'null'}`);
    };
    const first = versions[0];
    if (!first) return;
    // Each record draws its instants from a generator of its own: the same ones whatever order the records are read in.
    const random = seededRandom(input.seed ^ idHash(id));
    const probed = (v: VersionRecord | undefined) => v !== undefined && (!input.probeTags || input.probeTags(v.reason ?? ''));
    if (first.ov === 0 && probed(first)) await expect(fromMicros(toMicros(first.at) - 1), null, 'before the first version');
    for (let i = 0; i < versions.length; i++) {
      const v = versions[i]!;
      const next = versions[i + 1];
      if (!probed(v) && !probed(next)) continue;
      await expect(v.at, v, `at ov ${v.ov}`);
      const from = toMicros(v.at);
      const to = next ? toMicros(next.at) : from + 5_000_000;
      if (to - from >= 2) await expect(fromMicros(from + 1 + Math.floor(random() * (to - from - 1))), v, `after ov ${v.ov}`);
      if (next && to - from >= 2) await expect(fromMicros(to - 1), v, `just before ov ${next.ov}`);
    }
    await expect(new Date().toISOString(), versions[versions.length - 1]!, 'now');
  }

  /** current.json holds the head; every v{ov}.json holds its version; nothing else is in the record's folders. */
  function checkObjects(root: string, id: string, versions: readonly VersionRecord[], headOv: number): void {
    const collection = orders.route.collection;
    const current = readJson(join(root, 'records', collection, id, 'current.json'));
    const newest = versions[versions.length - 1];
    if (!current) problem(`${id}: records/${collection}/${id}/current.json is missing`);
    else if (newest && !sameDocument(current, newest)) problem(`${id}: current.json holds ov ${String(current.ov)}, the head is ov ${newest.ov} (or its content differs)`);
    const folder = join(root, 'versions', collection, id);
    const files = existsSync(folder) ? readdirSync(folder) : [];
    figures.blobObjects += versions.length + 1;
    const expected = new Set(Array.from({ length: headOv + 1 }, (_, ov) => `v${ov}.json`));
    for (const file of files) {
      if (!file.endsWith(TEMP_SUFFIX) && !expected.has(file)) problem(`${id}: versions/${collection}/${id}/${file} is an object of no version`);
    }
    for (const v of versions) {
      const stored = readJson(join(folder, `v${v.ov}.json`));
      if (!stored) problem(`${id}: versions/${collection}/${id}/v${v.ov}.json is missing`);
      else if (!sameDocument(stored, v)) problem(`${id}: v${v.ov}.json differs from version ${v.ov}`);
    }
  }

  function checkOrphanObjects(root: string, records: ReadonlySet<string>): void {
    const collection = orders.route.collection;
    for (const kind of ['records', 'versions']) {
      const folder = join(root, kind, collection);
      for (const entry of existsSync(folder) ? readdirSync(folder) : []) {
        if (!records.has(entry)) problem(`${kind}/${collection}/${entry}: objects of a record the index does not have`);
      }
      if (existsSync(folder)) figures.tempFiles += readdirSync(folder, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith(TEMP_SUFFIX)).length;
    }
    // The bucket's temporary folder: files of killed puts wait there
    // until a store opening the folder finds them a minute old.
    const temp = join(root, TEMP_SUFFIX);
    if (existsSync(temp)) figures.tempFiles += readdirSync(temp).filter((f) => f.endsWith(TEMP_SUFFIX)).length;
  }
}

async function listAll(orders: Collection): Promise<string[]> {
  const ids: string[] = [];
  for (let afterId: string | undefined; ; ) {
    const page = await orders.listByMeta({ includeDeleted: true, limit: 1000, ...(afterId ? { afterId } : {}) });
    ids.push(...page.items.map((r) => r.id));
    if (page.nextAfterId === null) return ids;
    afterId = page.nextAfterId;
  }
}

function idHash(id: string): number {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (Math.imul(h, 31) + id.charCodeAt(i)) | 0;
  return h;
}

function readJson(path: string): Record<string, unknown> | null {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>) : null;
}

function sameDocument(stored: Record<string, unknown>, v: VersionRecord): boolean {
  return stored.id === v.id && stored.ov === v.ov && stored.at === v.at && stored.deleted === v.deleted && stored.reason === v.reason && isDeepStrictEqual(stored.data, v.data);
}

function summary(ovs: readonly number[]): string {
  return ovs.length <= 12 ? `[${ovs.join(', ')}]` : `[${ovs.slice(0, 6).join(', ')}, …, ${ovs.slice(-6).join(', ')}] (${ovs.length})`;
}

/** Version times are fixed-width ISO-8601 with microseconds: `2026-11-22T02:07:04.997123Z`. */
export function toMicros(iso: string): number {
  const ms = Date.parse(`${iso.slice(0, 23)}Z`);
  return ms * 1000 + Number(iso.slice(23, 26));
}

export function fromMicros(micros: number): string {
  const ms = Math.floor(micros / 1000);
  return `${new Date(ms).toISOString().slice(0, -1)}${String(micros - ms * 1000).padStart(3, '0')}Z`;
}
