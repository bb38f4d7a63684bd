import { afterAll, beforeAll, expect, it } from 'vitest';
import type { XronoxConfigInput } from '../../core/config/schema.js';
import { ConfigError, RouteNotFoundError, StorageError, ValidationError } from '../../core/errors.js';
import { initXronox, type Xronox } from '../../core/xronox.js';
import { dropDocumentSchemas, schemasOf } from '../support/postgres-docs.js';
import { describePostgres, dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix } from '../support/postgres.js';
import { tempDir } from '../support/temp.js';
import { placementProblems, schemaCensus } from './support/tenant-world-postgres.js';

/**
 * Tenant isolation where PostgreSQL itself could merge two tenants: database names it would fold
 * to one identifier if unquoted (case), truncate to one (longer than 63 bytes with the prefix),
 * or read differently unquoted (a hyphen); two connections whose prefix and database name spell
 * the same schema; and hostile tenant ids and database names. Each tenant must get schemas of its
 * own, see only its own rows, and a schema another database made must be refused, never shared.
 * Every schema carries this file's random prefix; only those are dropped.
 */
const availability = await postgresAvailability();
const prefix = randomSchemaPrefix();
/** Two connections whose prefixes nest: `<prefix>a_` + `b_rt` is `<prefix>a_b_` + `rt`. */
const nested = { outer: `${prefix}a_`, inner: `${prefix}a_b_` };
const long = (tail: string) => `long_${'x'.repeat(57)}${tail}`;

/** Tenants whose runtime and messaging database names differ only where PostgreSQL could lose the difference. */
const TWINS: Record<string, { runtime: string; messaging: string }> = {
  upper: { runtime: 'Iso_Case', messaging: 'Msg_Case' },
  lower: { runtime: 'iso_case', messaging: 'msg_case' },
  'long-a': { runtime: long('a'), messaging: `m${long('a').slice(1)}` },
  'long-b': { runtime: long('b'), messaging: `m${long('b').slice(1)}` },
  dash: { runtime: 'iso-dash', messaging: 'msg-dash' },
  underscore: { runtime: 'iso_dash', messaging: 'msg_dash' },
};
const tenants = Object.keys(TWINS);

describePostgres('tenant isolation on PostgreSQL: names PostgreSQL could merge', availability, () => {
  /**
   * One Xronox instance per connection, as separate applications would have them: nested
   * prefixes in one config are a ConfigError (checked below), so the runtime refusal is what
   * keeps apart two applications whose prefixes nest on one database.
   */
  const instances: Partial<Record<'pg' | 'outer' | 'inner', Xronox>> = {};
  const dir = tempDir('xronox-iso-pg');
  const connections = { pg: prefix, outer: nested.outer, inner: nested.inner } as const;
  const configOf = (ref: keyof typeof connections): XronoxConfigInput => {
    const on = (list: Array<[string, string]>) => list.map(([tenantId, dbName]) => ({ tenantId, dbConnRef: ref, dbName }));
    const databases = {
      pg: { runtime: on(tenants.map((t) => [t, TWINS[t]!.runtime])), messaging: on(tenants.map((t) => [t, TWINS[t]!.messaging])) },
      outer: { runtime: on([['outer', 'b_rt']]), messaging: on([['outer', 'b_msg']]) },
      inner: { runtime: on([['inner', 'rt']]), messaging: on([['inner', 'msg']]) },
    }[ref];
    return {
      dbConnections: { [ref]: { postgresUri: POSTGRES_URI, schemaPrefix: connections[ref] } },
      localStorage: { basePath: `${dir.path}/blobs`, enabled: true },
      databases: { runtime: { tenantDatabases: databases.runtime }, messaging: { tenantDatabases: databases.messaging } },
      collectionMaps: { orders: { indexedProps: ['owner'] } },
    };
  };

  beforeAll(() => {
    for (const ref of ['pg', 'outer', 'inner'] as const) instances[ref] = initXronox(configOf(ref));
  });
  afterAll(async () => {
    for (const x of Object.values(instances)) await x.shutdown();
    for (const p of [prefix, nested.outer, nested.inner]) {
      await dropSchemas(p);
      await dropDocumentSchemas(p);
    }
    expect(await schemasOf(prefix)).toEqual([]);
    dir.cleanup();
  });

  const instanceOf = (tenantId: string) => instances[tenantId === 'outer' || tenantId === 'inner' ? tenantId : 'pg']!;
  const orders = (tenantId: string) => instanceOf(tenantId).with({ databaseType: 'runtime', tier: 'tenant', tenantId, collection: 'orders' });
  const memory = (tenantId: string) => instanceOf(tenantId).with({ databaseType: 'messaging', tier: 'tenant', tenantId, collection: 'shared_memory' });
  const memo = (tenantId: string) => ({ key: 'k', namespace: 'app', tenantId, val: tenantId, _system: { createdAt: new Date(), updatedAt: new Date() } });

  it('each tenant gets schemas of its own and sees only its own rows', async () => {
    const ids = new Map<string, string>();
    for (const t of tenants) {
      ids.set(t, (await orders(t).create({ owner: t })).id);
      await memory(t).insert(memo(t));
    }
    for (const t of tenants) {
      const { items } = await orders(t).listByMeta({ limit: 100 });
      expect(items.map((r) => [r.id, r.data]), t).toEqual([[ids.get(t), { owner: t }]]);
      expect((await memory(t).find({})).map((d) => d.tenantId), t).toEqual([t]);
    }
    const census = await schemaCensus(prefix);
    const onPg = census.filter((c) => !c.schema.startsWith(nested.outer));
    // Twelve schemas, each named after its database exactly (case kept), none longer than PostgreSQL keeps.
    expect(onPg.map((c) => c.dbName).sort()).toEqual(tenants.flatMap((t) => [TWINS[t]!.runtime, TWINS[t]!.messaging]).sort());
    expect(new Set(onPg.map((c) => c.schema)).size).toBe(12);
    expect(onPg.every((c) => Buffer.byteLength(c.schema) <= 63)).toBe(true);
    const configured = new Map(tenants.flatMap((t) => [[TWINS[t]!.runtime, t] as const, [TWINS[t]!.messaging, t] as const]));
    const records = tenants.map((t) => ({ tenant: t, dbName: TWINS[t]!.runtime, collection: 'orders', ids: [ids.get(t)!] }));
    expect(placementProblems(onPg, { configured, records })).toEqual([]);
  });

  it('nested prefixes on one database in one config are a ConfigError', () => {
    const outer = configOf('outer');
    const inner = configOf('inner');
    const both: XronoxConfigInput = { ...outer, dbConnections: { ...outer.dbConnections, ...inner.dbConnections } };
    expect(() => initXronox(both)).toThrow(/dbConnections\.inner\.schemaPrefix: .* starts with .*the prefix of dbConnections\.outer/);
  });

  it('a schema another connection made under a nesting prefix is refused, not shared', async () => {
    // `outer` makes <prefix>a_b_rt and <prefix>a_b_msg first; `inner` names the same schemas.
    const { id } = await orders('outer').create({ owner: 'outer' });
    await memory('outer').insert(memo('outer'));
    await expect(orders('inner').create({ owner: 'inner' })).rejects.toThrow(StorageError);
    await expect(orders('inner').listByMeta({})).rejects.toThrow(/belongs to database "b_rt" under prefix/);
    await expect(memory('inner').find({})).rejects.toThrow(StorageError);
    await expect(memory('inner').insert(memo('inner'))).rejects.toThrow(StorageError);
    expect((await orders('outer').listByMeta({})).items.map((r) => [r.id, r.data])).toEqual([[id, { owner: 'outer' }]]);
    expect((await memory('outer').find({})).map((d) => d.tenantId)).toEqual(['outer']);
  });

  it('hostile tenant ids are refused before any store is reached, and make no schema', async () => {
    const before = await schemasOf(prefix);
    const hostile = ['Upper', 'upper"."heads', 'upper; DROP SCHEMA public', 'upper ', 'lower\u0000', '../lower', 'long-a$', `${prefix}iso_case`, ''];
    for (const tenantId of hostile) {
      const calls: Array<() => Promise<unknown>> = [() => orders(tenantId).create({ owner: 'intruder' }), () => orders(tenantId).listByMeta({}), () => memory(tenantId).find({})];
      for (const call of calls) {
        // `with()` refuses synchronously, the store asynchronously: either counts.
        const err = await Promise.resolve().then(call).then(() => null, (e: unknown) => e);
        expect(err instanceof ValidationError || err instanceof RouteNotFoundError, `${JSON.stringify(tenantId)}: ${String(err)}`).toBe(true);
      }
    }
    expect(await schemasOf(prefix)).toEqual(before);
  });

  it('database names and prefixes that are not identifiers are a ConfigError, not SQL', () => {
    const config = (dbName: string, schemaPrefix = prefix): XronoxConfigInput => ({
      dbConnections: { pg: { postgresUri: POSTGRES_URI, schemaPrefix } },
      localStorage: { basePath: `${dir.path}/blobs`, enabled: true },
      databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'pg', dbName }] } },
    });
    for (const dbName of ['x"; DROP SCHEMA public CASCADE; --', 'a.b', 'a b', 'ü', '$hash', 'x'.repeat(64)]) {
      expect(() => initXronox(config(dbName)), dbName).toThrow(ConfigError);
    }
    for (const schemaPrefix of ['', 'Public', 'x"."', 'pg_catalog.', 'a-b']) {
      expect(() => initXronox(config('rt', schemaPrefix)), schemaPrefix).toThrow(ConfigError);
    }
  });
});
