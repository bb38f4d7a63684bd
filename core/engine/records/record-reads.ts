/**
 * The reads of a record collection: a record's latest state, one version, its state at a point
 * in time, its history, every change one actor made, lists by indexed properties, queries of the
 * collection as it stood at an instant, and records with their linked entities resolved.
 */
import type { Actor, HeadRow, HistoryRow, VersionRow } from '../../contracts/index-store.js';
import { ValidationError } from '../../errors.js';
import { nowInstant, parseAsOf, parseInstant } from '../../foundation/clock.js';
import { isPlainObject, parseFilter } from '../../foundation/filter.js';
import { assertName, isValidName } from '../../foundation/names.js';
import { checkLimit, checkOptions, checkOv, checkProjection, checkSort, decodePageToken, encodePageToken } from '../arguments.js';
import type { ActorChange, EntityMapping, HistoryEntry, ListOptions, ListResult, QueryOptions, QueryResult, VersionRecord, XronoxRecord } from '../collection-types.js';
import { checkTtl, type PresentOptions } from '../content.js';
import { type Data, readPath } from '../documents.js';
import { digestOf, legacyPending, parseSeal, sealProblem } from '../hash-chain.js';
import { actorId, checkActor } from '../lineage.js';
import { versionFields } from '../tamper-check.js';
import { checkMappings, type RecordAccess, toRecord } from './record-access.js';

/** The keys of `ListOptions` (`listByMeta`'s query) and of `PresentOptions` (how content is returned). */
const LIST_KEYS = ['filter', 'limit', 'afterId', 'sort', 'includeDeleted', 'projection'] as const;
const PRESENT_KEYS = ['presign', 'ttlSeconds'] as const;

export class RecordReads {
  readonly #access: RecordAccess;
  /** The reads of another collection of the same database (relationships). */
  readonly #sibling: (collection: string) => RecordReads;

  constructor(access: RecordAccess, sibling: (collection: string) => RecordReads) {
    this.#access = access;
    this.#sibling = sibling;
  }

  async getLatest<T extends Data>(id: string, options: { projection?: string[]; includeDeleted?: boolean } & PresentOptions): Promise<XronoxRecord<T> | null> {
    assertName('id', id);
    checkOptions(options, ['projection', 'includeDeleted', ...PRESENT_KEYS], 'options', 'getLatest');
    const projection = checkProjection(options.projection);
    checkTtl(options.ttlSeconds);
    const head = await this.#access.index.getHead(this.#access.ns, id);
    if (!head || (head.deleted && !options.includeDeleted)) return null;
    return this.#access.present(toRecord<T>(head.cv, await this.#access.headDoc(head), head.deletedAt, projection), options);
  }

  async getVersion<T extends Data>(id: string, ov: number, options: PresentOptions): Promise<VersionRecord<T> | null> {
    this.#access.requireVersioned('getVersion');
    assertName('id', id);
    checkOv(ov, 'ov');
    checkOptions(options, PRESENT_KEYS, 'options', 'getVersion');
    checkTtl(options.ttlSeconds);
    const row = await this.#access.index.getVersion(this.#access.ns, id, ov);
    return row ? this.#access.present(await this.#access.versionRecord<T>(row), options) : null;
  }

  async getAsOf<T extends Data>(id: string, at: string | Date, options: { includeDeleted?: boolean } & PresentOptions): Promise<VersionRecord<T> | null> {
    this.#access.requireVersioned('getAsOf');
    assertName('id', id);
    const instant = parseAsOf(at);
    checkOptions(options, ['includeDeleted', ...PRESENT_KEYS], 'options', 'getAsOf');
    checkTtl(options.ttlSeconds);
    const row = await this.#access.index.findVersionAt(this.#access.ns, id, { at: instant });
    if (row && this.#access.checksReads) await this.#checkSuccessor(row, instant);
    if (!row || (row.deleted && !options.includeDeleted)) return null;
    return this.#access.present(await this.#access.versionRecord<T>(row), options);
  }

  async history(id: string, options: { limit?: number; before?: number }): Promise<{ items: HistoryEntry[]; nextBefore: number | null }> {
    this.#access.requireVersioned('history');
    assertName('id', id);
    checkOptions(options, ['limit', 'before'], 'options', 'history');
    const limit = checkLimit(options.limit);
    if (options.before !== undefined) checkOv(options.before, 'before');
    // Version entries rather than summaries: their hashes vouch for the columns a page shows.
    const rows = await this.#access.index.listVersions(this.#access.ns, id, { limit: limit + 1, ...(options.before !== undefined ? { beforeOv: options.before } : {}) });
    await this.#checkColumns(rows.slice(0, limit));
    const items = rows.slice(0, limit).map(historyEntry);
    return { items, nextBefore: rows.length > limit ? (items[items.length - 1]?.ov ?? null) : null };
  }

  async changesBy(
    actor: Actor,
    options: { from?: string | Date; to?: string | Date; limit?: number; pageToken?: string },
  ): Promise<{ items: ActorChange[]; nextPageToken: string | null }> {
    this.#access.requireVersioned('changesBy');
    const who = checkActor(actor);
    if (who === undefined) throw new ValidationError('changesBy needs an actor', { path: 'actor' });
    checkOptions(options, ['from', 'to', 'limit', 'pageToken'], 'options', 'changesBy');
    const limit = checkLimit(options.limit);
    const from = options.from === undefined ? undefined : parseInstant(options.from, 'from');
    const to = options.to === undefined ? undefined : parseAsOf(options.to, 'to');
    const { ns } = this.#access;
    const scope = `${ns.dbName}/${ns.collection}/changesBy/${actorId(who)}`;
    const before = options.pageToken === undefined ? undefined : decodeActorCursor(scope, options.pageToken);
    const rows = await this.#access.index.listVersionsByActor(ns, actorId(who), {
      limit: limit + 1,
      ...(typeof who === 'string' ? {} : { actorType: who.type }),
      ...(from ? { from } : {}),
      ...(to ? { to } : {}),
      ...(before ? { before } : {}),
    });
    await this.#checkColumns(rows.slice(0, limit));
    const items = rows.slice(0, limit).map((r) => ({ id: r.id, ...historyEntry(r) }));
    const last = items[items.length - 1];
    return { items, nextPageToken: rows.length > limit && last ? encodeActorCursor(scope, { at: last.at, id: last.id, ov: last.ov }) : null };
  }

  async listByMeta<T extends Data>(query: ListOptions & PresentOptions, present: PresentOptions | undefined): Promise<ListResult<T>> {
    const asked = checkOptions(query, [...LIST_KEYS, ...PRESENT_KEYS], 'query', 'listByMeta');
    const read = checkOptions(present, PRESENT_KEYS, 'options', 'listByMeta');
    const twice = PRESENT_KEYS.find((key) => asked[key] !== undefined && read[key] !== undefined);
    if (twice) throw new ValidationError(`listByMeta got ${twice} both in the query and in the options; give it once`, { path: `options.${twice}` });
    const options = { ...asked, ...read } as ListOptions & PresentOptions;
    checkTtl(options.ttlSeconds);
    const filter = parseFilter(options.filter, (field) => this.#access.isFilterable(field));
    const limit = checkLimit(options.limit);
    const sort = checkSort(options.sort);
    const projection = checkProjection(options.projection);
    let after: { value: string; id: string } | undefined;
    if (options.afterId !== undefined) {
      const afterId = assertName('id', options.afterId, 'afterId');
      if (sort.field === 'id') after = { value: afterId, id: afterId };
      else {
        const head = await this.#access.index.getHead(this.#access.ns, afterId);
        if (!head) throw new ValidationError(`afterId "${afterId}" is not a record of this collection`, { path: 'afterId' });
        after = { value: sort.field === 'createdAt' ? head.createdAt : head.updatedAt, id: afterId };
      }
    }
    const rows = await this.#access.index.listHeads(this.#access.ns, {
      filter,
      includeDeleted: options.includeDeleted === true,
      sort,
      limit: limit + 1,
      ...(after ? { after } : {}),
    });
    const items = await this.#presentHeads<T>(rows.slice(0, limit), projection, options);
    return { items, nextAfterId: rows.length > limit ? (items[items.length - 1]?.id ?? null) : null };
  }

  async query<T extends Data>(filter: Record<string, unknown> | undefined, options: QueryOptions & PresentOptions): Promise<QueryResult<T>> {
    checkOptions(options, ['at', 'limit', 'pageToken', 'sort', 'projection', 'includeDeleted', ...PRESENT_KEYS], 'options', 'query');
    checkTtl(options.ttlSeconds);
    const node = parseFilter(filter, (field) => this.#access.isFilterable(field));
    const limit = checkLimit(options.limit);
    const projection = checkProjection(options.projection);
    const includeDeleted = options.includeDeleted === true;
    const { index, ns } = this.#access;
    const scope = `${ns.dbName}/${ns.collection}/query`;
    const page = options.pageToken === undefined ? undefined : decodePageToken(scope, options.pageToken);
    const direction = page?.direction ?? checkSort(options.sort, ['id']).direction;
    const versioned = this.#access.route.policy.versioned;
    if (!versioned && options.at !== undefined) this.#access.requireVersioned('query with `at`');
    if (page && options.at !== undefined && parseAsOf(options.at) !== page.at) {
      throw new ValidationError('at differs from the point in time of pageToken', { path: 'at' });
    }
    if (!versioned) {
      const rows = await index.listHeads(ns, {
        filter: node,
        includeDeleted,
        sort: { field: 'id', direction },
        limit: limit + 1,
        ...(page ? { after: { value: page.afterId, id: page.afterId } } : {}),
      });
      const items = await this.#presentHeads<T>(rows.slice(0, limit), projection, options);
      const last = items[items.length - 1];
      return { items, at: null, nextPageToken: rows.length > limit && last ? encodePageToken(scope, { at: null, afterId: last.id, direction }) : null };
    }
    const at = page?.at ?? (options.at === undefined ? nowInstant() : parseAsOf(options.at));
    const rows = await index.queryAt(ns, { at, filter: node, includeDeleted, direction, limit: limit + 1, ...(page ? { afterId: page.afterId } : {}) });
    const items: XronoxRecord<T>[] = [];
    for (const row of rows.slice(0, limit)) {
      const doc = await this.#access.readVersionDoc(row);
      items.push(await this.#access.present(toRecord<T>(row.cv, doc, doc.deleted ? doc.at : null, projection), options));
    }
    const last = items[items.length - 1];
    return { items, at, nextPageToken: rows.length > limit && last ? encodePageToken(scope, { at, afterId: last.id, direction }) : null };
  }

  async getWithEntities<T extends Data>(id: string, mappings: EntityMapping[]): Promise<(XronoxRecord<T> & { entities: Record<string, XronoxRecord | null> }) | null> {
    const checked = checkMappings(mappings);
    const record = await this.getLatest<T>(id, {});
    if (!record) return null;
    const data: Data = { ...record.data };
    const entities: Record<string, XronoxRecord | null> = {};
    for (const m of checked) {
      const link = readPath(data, `${m.property}._ref`);
      if (!isPlainObject(link) || link.collection !== m.collection || !isValidName('id', link.id)) {
        entities[m.property] = null;
        continue;
      }
      const entity = await this.#sibling(m.collection).getLatest(link.id, {});
      entities[m.property] = entity;
      if (entity) data[m.property] = { id: entity.id, ...entity.data };
    }
    return { ...record, data: data as T, entities };
  }

  /**
   * The version found for a point in time is the answer only if the next one came later: a
   * deleted next entry, or one whose time column was moved, would make an older version look
   * current then. One more lookup, by primary key.
   */
  async #checkSuccessor(row: VersionRow, at: string): Promise<void> {
    const { index, ns } = this.#access;
    const next = await index.getVersion(ns, row.id, row.ov + 1);
    if (next) {
      if (next.at <= at) throw this.#access.tampered(row.id, row.ov + 1, 'its time column does not follow the version found for that time');
      const seal = next.hash === null ? null : parseSeal(next.hash);
      if (seal?.format === 2 && seal.previous !== digestOf(row.hash)) throw this.#access.tampered(row.id, row.ov + 1, `it does not link to version ${row.ov}`);
      return;
    }
    const head = await index.getHead(ns, row.id);
    if (head && head.ov > row.ov) throw this.#access.tampered(row.id, row.ov + 1, `version ${row.ov + 1} is missing`);
  }

  /**
   * Refuses version entries whose columns (what history shows) do not match their hashes. A
   * format-2 hash vouches for them on its own; an older entry's document is read and checked.
   */
  async #checkColumns(rows: readonly VersionRow[]): Promise<void> {
    if (!this.#access.checksReads) return;
    for (const row of rows) {
      if (legacyPending(row.hash)) {
        await this.#access.readVersionDoc(row);
        continue;
      }
      const problem = sealProblem(versionFields(row), row.hash, null);
      if (problem) throw this.#access.tampered(row.id, row.ov, problem);
    }
  }

  /** Heads as records, in order (their documents read in parallel). */
  async #presentHeads<T extends Data>(heads: readonly HeadRow[], projection: readonly string[] | undefined, options: PresentOptions): Promise<XronoxRecord<T>[]> {
    return Promise.all(heads.map(async (h) => this.#access.present(toRecord<T>(h.cv, await this.#access.headDoc(h), h.deletedAt, projection), options)));
  }
}

function historyEntry(r: HistoryRow): HistoryEntry {
  return { ov: r.ov, cv: r.cv, op: r.op, at: r.at, actor: r.actor, reason: r.reason, deleted: r.deleted, size: r.size, archived: r.archived };
}

function encodeActorCursor(scope: string, cursor: { at: string; id: string; ov: number }): string {
  return encodePageToken(scope, { at: cursor.at, afterId: `${cursor.id}`, direction: -1 }) + `.${cursor.ov}`;
}

function decodeActorCursor(scope: string, token: unknown): { at: string; id: string; ov: number } {
  const text = typeof token === 'string' ? token : '';
  const dot = text.lastIndexOf('.');
  const ov = Number(text.slice(dot + 1));
  const state = decodePageToken(scope, dot > 0 ? text.slice(0, dot) : text);
  if (dot <= 0 || !Number.isSafeInteger(ov) || ov < 0 || state.at === null) {
    throw new ValidationError('pageToken is not a token this collection issued', { path: 'pageToken' });
  }
  return { at: state.at, id: state.afterId, ov };
}
