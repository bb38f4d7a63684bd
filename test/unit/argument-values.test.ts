/**
 * The arguments of collection methods, through the collection API on the embedded default
 * (SQLite × local files): version numbers, reasons, page sizes, sorts, projections, restore
 * targets and page tokens. What is valid works as documented; anything else is a ValidationError
 * naming the argument. Page tokens are opaque to callers: a token changed in any field, or issued
 * by another collection, is refused rather than reinterpreted.
 */
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { Collection } from '../../core/engine/collection.js';
import type { Xronox } from '../../core/xronox.js';
import { ValidationError } from '../../core/errors.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';

const dir = tempDir('xronox-arguments');
let xronox: Xronox;
const collection = (name: string, tenantId = 'acme') => xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId, collection: name });
/** 60 records, ids ascending in creation order (`n` 0…59), one of them (n 0) updated once. */
let orders: Collection;
let created: { id: string; createdAt: string }[];
let seeding: Promise<void> | undefined;

/**
 * Opens the store and writes the records, once, from inside the first test that runs: writes
 * check their arguments too, and a check that fails here must fail a test (Stryker's vitest runner
 * does not count a failed beforeAll).
 */
function seeded(): Promise<void> {
  seeding ??= seed();
  return seeding;
}

async function seed(): Promise<void> {
  xronox = initXronox({
    dbConnections: { local: { sqlitePath: join(dir.path, 'xronox.sqlite') } },
    localStorage: { basePath: join(dir.path, 'blobs'), enabled: true },
    databases: {
      runtime: {
        tenantDatabases: [
          { tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' },
          { tenantId: 'globex', dbConnRef: 'local', dbName: 'rt_globex' },
        ],
      },
      logs: { genericDatabase: { dbConnRef: 'local', dbName: 'logs_main' } },
    },
    collectionMaps: { orders: { indexedProps: ['n', 'kind'] } },
  });
  orders = collection('orders');
  created = [];
  for (let n = 0; n < 60; n++) created.push(await orders.create({ n, kind: n % 2 === 0 ? 'even' : 'odd', text: `order ${n}` }, 'loader', 'seed'));
  await orders.update(created[0]!.id, { n: 0, kind: 'even', text: 'order 0, edited' }, 0, 'editor', 'fix');
}

beforeEach(() => seeded());
afterAll(async () => {
  if (seeding) await seeding.catch(() => undefined);
  await xronox?.shutdown();
  dir.cleanup();
});

const sortedIds = () => created.map((c) => c.id).sort();

/** The ValidationError `call` rejects with. */
async function refused(call: () => Promise<unknown>): Promise<ValidationError> {
  const err = await call().then(
    () => {
      throw new Error('expected a ValidationError, but the call succeeded');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ValidationError);
  return err as ValidationError;
}

describe('version numbers', () => {
  it('are whole numbers of at least 0; anything else is refused, naming the argument', async () => {
    const id = created[0]!.id;
    expect((await orders.getVersion(id, 0))?.data).toMatchObject({ n: 0, text: 'order 0' });
    expect(await orders.getVersion(id, Number.MAX_SAFE_INTEGER)).toBeNull();
    for (const ov of [-1, 0.5, '0', null, Number.MAX_SAFE_INTEGER + 1, Number.POSITIVE_INFINITY]) {
      const err = await refused(() => orders.getVersion(id, ov as never));
      expect({ ov, path: err.path, message: err.message }).toEqual({ ov, path: 'ov', message: 'ov must be a whole number of at least 0' });
    }
    expect((await refused(() => orders.update(id, { n: 0 }, -1))).path).toBe('expectedOv');
    expect((await refused(() => orders.history(id, { before: 1.5 }))).path).toBe('before');
  });
});

describe('reasons', () => {
  it('are optional (null when not given or null) and at most 1024 characters', async () => {
    const none = await orders.create({ n: 100 }, 'a');
    const nulled = await orders.create({ n: 101 }, 'a', null as never);
    const longest = 'r'.repeat(1024);
    const long = await orders.create({ n: 102 }, 'a', longest);
    expect((await orders.history(none.id)).items[0]?.reason).toBeNull();
    expect((await orders.history(nulled.id)).items[0]?.reason).toBeNull();
    expect((await orders.history(long.id)).items[0]?.reason).toBe(longest);
    for (const reason of ['r'.repeat(1025), 42, { why: 'x' }]) {
      const err = await refused(() => orders.create({ n: 103 }, 'a', reason as never));
      expect({ reason, path: err.path, message: err.message }).toEqual({ reason, path: 'reason', message: 'reason must be a string of at most 1024 characters' });
    }
    expect((await orders.listByMeta({ filter: { n: 103 } })).items).toEqual([]);
    for (const id of [none.id, nulled.id, long.id]) await orders.delete(id, 0);
  });
});

describe('page sizes', () => {
  it('default to 50 and go from 1 to 1000', async () => {
    const page = await orders.listByMeta();
    expect(page.items.map((r) => r.id)).toEqual(sortedIds().slice(0, 50));
    expect(page.nextAfterId).toBe(sortedIds()[49]);
    expect((await orders.listByMeta({ limit: 1 })).items.map((r) => r.id)).toEqual(sortedIds().slice(0, 1));
    expect((await orders.listByMeta({ limit: 1000 })).items.map((r) => r.id)).toEqual(sortedIds());
    for (const limit of [0, -1, 1001, 2.5, '10', null]) {
      const err = await refused(() => orders.listByMeta({ limit: limit as never }));
      expect({ limit, path: err.path, message: err.message }).toEqual({ limit, path: 'limit', message: 'limit must be a whole number from 1 to 1000' });
    }
  });
});

describe('sorts', () => {
  it('default to id ascending, and follow the field and direction given', async () => {
    const byCreation = [...created].sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : 1)).map((c) => c.id);
    expect((await orders.listByMeta({ limit: 1000, sort: { id: 1 } })).items.map((r) => r.id)).toEqual(sortedIds());
    expect((await orders.listByMeta({ limit: 1000, sort: { id: -1 } })).items.map((r) => r.id)).toEqual(sortedIds().reverse());
    expect((await orders.listByMeta({ limit: 1000, sort: { createdAt: 1 } })).items.map((r) => r.id)).toEqual(byCreation);
    expect((await orders.listByMeta({ limit: 1000, sort: { createdAt: -1 } })).items.map((r) => r.id)).toEqual([...byCreation].reverse());
    // updatedAt: the one edited record comes last.
    expect((await orders.listByMeta({ limit: 1000, sort: { updatedAt: 1 } })).items.at(-1)?.id).toBe(created[0]!.id);
    expect((await orders.query({}, { limit: 1000, sort: { id: -1 } })).items.map((r) => r.id)).toEqual(sortedIds().reverse());
    expect((await orders.query({}, { limit: 1000 })).items.map((r) => r.id)).toEqual(sortedIds());
  });

  it('refuse anything but one allowed field with 1 or -1, listing what is allowed', async () => {
    for (const sort of [{}, { id: 1, createdAt: 1 }, { id: 0 }, { id: 2 }, { id: '1' }, { n: 1 }, [['id', 1]], 'id', null]) {
      const err = await refused(() => orders.listByMeta({ sort: sort as never }));
      expect({ sort, path: err.path, message: err.message }).toEqual({
        sort,
        path: 'sort',
        message: 'sort must be one of { id: 1 | -1 }, { createdAt: 1 | -1 }, { updatedAt: 1 | -1 }',
      });
    }
    // A query pages by id only.
    const err = await refused(() => orders.query({}, { sort: { createdAt: 1 } as never }));
    expect({ path: err.path, message: err.message }).toEqual({ path: 'sort', message: 'sort must be one of { id: 1 | -1 }' });
  });
});

describe('projections', () => {
  it('return only the paths asked for, at most 64 of them', async () => {
    const id = created[5]!.id;
    expect((await orders.getLatest(id))?.data).toEqual({ n: 5, kind: 'odd', text: 'order 5' });
    expect((await orders.getLatest(id, { projection: ['n', 'kind'] }))?.data).toEqual({ n: 5, kind: 'odd' });
    const many = Array.from({ length: 64 }, (_, i) => `p${i}`);
    expect((await orders.getLatest(id, { projection: many }))?.data).toEqual({});
    for (const projection of [[...many, 'p64'], 'n', ['$where'], ['n', '$where'], ['__proto__'], [7], {}]) {
      const err = await refused(() => orders.getLatest(id, { projection: projection as never }));
      expect({ projection, path: err.path, message: err.message }).toEqual({ projection, path: 'projection', message: 'projection must be a list of at most 64 property paths' });
    }
  });
});

describe('restore targets', () => {
  it('are { cv } or { at }, each checked', async () => {
    const first = await orders.getVersion(created[0]!.id, 0);
    const byCv = await orders.restoreCollection({ cv: first!.cv }, { dryRun: true });
    expect(byCv.target).toStrictEqual({ cv: first!.cv });
    expect(byCv.changes.map((c) => c.id)).toContain(created[0]!.id);
    const at = created[59]!.createdAt;
    expect((await orders.restoreCollection({ at }, { dryRun: true })).target).toStrictEqual({ at });
    expect((await refused(() => orders.restoreCollection({ cv: -1 }, { dryRun: true }))).path).toBe('cv');
    expect((await refused(() => orders.restoreCollection({ at: 'yesterday' }, { dryRun: true }))).path).toBe('at');
    for (const target of [{}, null, 'cv']) {
      const err = await refused(() => orders.restoreCollection(target as never, { dryRun: true }));
      expect({ target, message: err.message }).toEqual({ target, message: 'The restore target must be { cv } or { at }' });
    }
    // A key of neither form is named (the general rule for option objects).
    const stray = await refused(() => orders.restoreCollection({ ov: 1 } as never, { dryRun: true }));
    expect({ path: stray.path, message: stray.message }).toEqual({ path: 'target.ov', message: 'target of restoreCollection has an unknown key "ov"; it takes only cv, at' });
  });
});

/** A page token's JSON, and a token made from JSON: what a caller tampering with one would do. */
const decode = (token: string) => JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Record<string, unknown>;
const encode = (state: unknown) => Buffer.from(JSON.stringify(state), 'utf8').toString('base64url');

describe('page tokens', () => {
  it('continue a query where the page ended, in the direction it started with, at the same instant', async () => {
    const down = await orders.query({ kind: 'even' }, { limit: 10, sort: { id: -1 } });
    const evens = created.filter((_, n) => n % 2 === 0).map((c) => c.id).sort();
    expect(down.items.map((r) => r.id)).toEqual([...evens].reverse().slice(0, 10));
    // The token carries the direction: a sort given with it is not what decides.
    const next = await orders.query({ kind: 'even' }, { limit: 10, pageToken: down.nextPageToken!, sort: { id: 1 } });
    expect(next.items.map((r) => r.id)).toEqual([...evens].reverse().slice(10, 20));
    expect(next.at).toBe(down.at);
    const up = await orders.query({ kind: 'even' }, { limit: 25 });
    const rest = await orders.query({ kind: 'even' }, { limit: 25, pageToken: up.nextPageToken! });
    expect([...up.items, ...rest.items].map((r) => r.id)).toEqual(evens);
    expect(rest.nextPageToken).toBeNull();
  });

  it('hold the instant, the last id and the direction, and nothing a caller could read otherwise', async () => {
    const page = await orders.query({}, { limit: 3 });
    const state = decode(page.nextPageToken!);
    expect(state).toStrictEqual({ v: 1, s: expect.stringMatching(/^[A-Za-z0-9_-]{16}$/), at: page.at, afterId: page.items[2]!.id, direction: 1 });
  });

  it('are refused when any field is changed, or issued by another collection or tenant', async () => {
    const page = await orders.query({}, { limit: 3 });
    const state = decode(page.nextPageToken!);
    const tampered: [string, unknown][] = [
      ['version', { ...state, v: 2 }],
      ['no version', { ...state, v: undefined }],
      ['scope', { ...state, s: 'AAAAAAAAAAAAAAAA' }],
      ['scope, longer', { ...state, s: `${String(state.s)}x` }],
      ['instant, not a string', { ...state, at: 12 }],
      ['instant, not a time', { ...state, at: 'not-a-time' }],
      ['last id, unsafe', { ...state, afterId: '../x' }],
      ['last id, missing', { ...state, afterId: undefined }],
      ['direction 0', { ...state, direction: 0 }],
      ['direction as text', { ...state, direction: '1' }],
      ['an array', [state]],
      ['null', null],
    ];
    for (const [what, changed] of tampered) {
      const err = await refused(() => orders.query({}, { limit: 3, pageToken: encode(changed) }));
      expect({ what, path: err.path, message: err.message }).toEqual({
        what,
        path: 'pageToken',
        message: what === 'instant, not a time' ? 'pageToken must be an ISO-8601 time such as 2024-01-01T00:00:00Z' : 'pageToken is not a token this collection issued',
      });
    }
    for (const pageToken of ['', 'garbage', '%%%', encode('just text').slice(0, -2), 42]) {
      expect((await refused(() => orders.query({}, { pageToken: pageToken as never }))).path).toBe('pageToken');
    }
    // Issued by the same collection name of another tenant, or by another collection.
    await collection('orders', 'globex').create({ n: 1 });
    await refused(() => collection('orders', 'globex').query({}, { pageToken: page.nextPageToken! }));
    await collection('invoices').create({ n: 1 });
    await refused(() => collection('invoices').query({}, { pageToken: page.nextPageToken! }));
  });

  it('are accepted up to 2048 characters, and refused beyond', async () => {
    const page = await orders.query({}, { limit: 3 });
    const state = decode(page.nextPageToken!);
    // Unknown fields are ignored: padding makes a valid token of exactly 2048 characters (1536 bytes).
    const base = JSON.stringify({ ...state, pad: '' });
    const longest = encode({ ...state, pad: 'x'.repeat(1536 - Buffer.byteLength(base)) });
    expect(longest).toHaveLength(2048);
    expect((await orders.query({}, { limit: 3, pageToken: longest })).items.map((r) => r.id)).toEqual(sortedIds().slice(3, 6));
    // One more character decodes to the same bytes (a lone base64 digit is dropped) but is too long.
    expect(decode(`${longest}A`)).toStrictEqual(decode(longest));
    expect((await refused(() => orders.query({}, { limit: 3, pageToken: `${longest}A` }))).path).toBe('pageToken');
  });

  it('of changesBy are bound to the actor, and refused when changed', async () => {
    const first = await orders.changesBy('loader', { limit: 2 });
    const second = await orders.changesBy('loader', { limit: 2, pageToken: first.nextPageToken! });
    expect(second.items).toHaveLength(2);
    expect(second.items.map((i) => i.id)).not.toContain(first.items[0]!.id);
    await refused(() => orders.changesBy('editor', { pageToken: first.nextPageToken! }));
    const [token, ov] = [first.nextPageToken!.slice(0, first.nextPageToken!.lastIndexOf('.')), first.nextPageToken!.slice(first.nextPageToken!.lastIndexOf('.') + 1)];
    await refused(() => orders.changesBy('loader', { pageToken: `${encode({ ...decode(token), at: null })}.${ov}` }));
    await refused(() => orders.changesBy('loader', { pageToken: token }));
  });

  it('of an unversioned collection hold no instant, and continue where the page ended', async () => {
    const logs = xronox.with({ databaseType: 'logs', tier: 'generic', collection: 'events' });
    const ids = (await logs.createMany(Array.from({ length: 5 }, (_, n) => ({ n })))).map((r) => r.id).sort();
    const first = await logs.query({}, { limit: 3 });
    expect(first.at).toBeNull();
    expect(decode(first.nextPageToken!)).toMatchObject({ at: null, afterId: ids[2], direction: 1 });
    const second = await logs.query({}, { limit: 3, pageToken: first.nextPageToken! });
    expect(second.items.map((r) => r.id)).toEqual(ids.slice(3));
    expect(second.nextPageToken).toBeNull();
  });
});
