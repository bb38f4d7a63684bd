import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config/load.js';
import type { BlobKind, DatabaseType, Tier } from '../../core/config/schema.js';
import { RouteNotFoundError, ValidationError, XronoxError } from '../../core/errors.js';
import { Router, type RouteRequest } from '../../core/routing/router.js';
import { thrown } from '../support/errors.js';
import { lazy } from '../support/lazy.js';

const s3 = { region: 'us-east-1', accessKey: 'key', secretKey: 'secret' };

/** One database per bucket style, so each test reads one route. */
const config = loadConfig({
  dbConnections: {
    main: { sqlitePath: '/tmp/xronox-routing.sqlite' },
    cluster: { mongoUri: 'mongodb://cluster:27017' },
  },
  spacesConnections: {
    // Option A of product doc 001: one bucket per kind.
    separate: { ...s3, buckets: { records: 'xr-records', versions: 'xr-versions', content: 'xr-content', backups: 'xr-backups' } },
    // Option B: one bucket, kinds told apart by folder prefixes.
    shared: {
      ...s3,
      buckets: { records: 'xr-data', versions: 'xr-data', content: 'xr-data', backups: 'xr-data' },
      folderPrefixes: { records: 'rec', versions: 'ver', content: 'files/cnt', backups: 'bak' },
    },
    // Legacy single bucket.
    legacy: { ...s3, bucket: 'xr-legacy' },
  },
  localStorage: { basePath: '/tmp/xronox-routing-blobs', enabled: true },
  databases: {
    knowledge: {
      genericDatabase: { dbConnRef: 'main', spaceConnRef: 'separate', dbName: 'kn_generic' },
      domainsDatabases: [{ domain: 'finance', dbConnRef: 'cluster', spaceConnRef: 'shared', dbName: 'kn_finance' }],
      tenantDatabases: [{ tenantId: 'tenant-a', dbConnRef: 'cluster', spaceConnRef: 'legacy', dbName: 'kn_tenant_a' }],
    },
    metadata: {
      // Option C: per-database buckets win over the connection's.
      genericDatabase: { dbConnRef: 'main', spaceConnRef: 'separate', dbName: 'md_generic', recordsBucket: 'md-records', backupsBucket: 'md-backups' },
    },
    runtime: {
      tenantDatabases: [
        { tenantId: 'tenant-a', dbConnRef: 'cluster', spaceConnRef: 'separate', dbName: 'rt_tenant_a', analyticsDbName: 'an_tenant_a' },
        { tenantId: 'tenant-b', dbConnRef: 'main', spaceConnRef: 'shared', dbName: 'rt_tenant_b' },
        {
          tenantId: 'tenant-c',
          dbConnRef: 'main',
          spaceConnRef: 'separate',
          dbName: 'rt_tenant_c',
          recordsBucket: 'c-records',
          versionsBucket: 'c-versions',
        },
        { tenantId: 'tenant-d', dbConnRef: 'main', spaceConnRef: 'legacy', dbName: 'rt_tenant_d' },
        { tenantId: 'tenant-e', dbConnRef: 'main', dbName: 'rt_tenant_e' },
        { tenantId: 'tenant-f', dbConnRef: 'main', spaceConnRef: 'separate', bucket: 'f-everything', dbName: 'rt_tenant_f' },
      ],
    },
    messaging: {
      genericDatabase: { dbConnRef: 'main', spaceConnRef: 'separate', dbName: 'msg_generic' },
      tenantDatabases: [{ tenantId: 'tenant-a', dbConnRef: 'main', spaceConnRef: 'shared', dbName: 'msg_tenant_a', captureDeliveries: true }],
    },
    identities: { dbConnRef: 'main', spaceConnRef: 'separate', dbName: 'ids' },
    logs: { dbConnRef: 'main', spaceConnRef: 'separate', dbName: 'logs' },
  },
  collectionMaps: { orders: { indexedProps: ['customerId'] } },
});

const router = lazy(() => new Router(config));
const runtime = (tenantId: string, collection = 'orders') => router.resolve({ databaseType: 'runtime', tier: 'tenant', tenantId, collection });


describe('Router.resolve: databases per tier', () => {
  it('resolves the generic tier', () => {
    const route = router.resolve({ databaseType: 'knowledge', tier: 'generic', collection: 'facts' });
    expect(route).toMatchObject({
      databaseType: 'knowledge',
      tier: 'generic',
      tenantId: undefined,
      domain: undefined,
      collection: 'facts',
      dbConnRef: 'main',
      dbName: 'kn_generic',
      analyticsDbName: 'kn_generic',
      spaceConnRef: 'separate',
      label: 'knowledge/generic/facts',
    });
    expect(route.policy.versioned).toBe(false);
  });

  it('resolves the domain tier', () => {
    const route = router.resolve({ databaseType: 'knowledge', tier: 'domain', domain: 'finance', collection: 'articles' });
    expect(route).toMatchObject({
      tier: 'domain',
      domain: 'finance',
      tenantId: undefined,
      dbConnRef: 'cluster',
      dbName: 'kn_finance',
      label: 'knowledge/domain:finance/articles',
    });
  });

  it('resolves the tenant tier, with the analytics database of runtime', () => {
    expect(runtime('tenant-a')).toMatchObject({
      databaseType: 'runtime',
      tier: 'tenant',
      tenantId: 'tenant-a',
      domain: undefined,
      dbConnRef: 'cluster',
      dbName: 'rt_tenant_a',
      analyticsDbName: 'an_tenant_a',
      label: 'runtime/tenant:tenant-a/orders',
    });
    expect(runtime('tenant-a').policy.versioned).toBe(true);
    // Without analyticsDbName, counters go to the database itself.
    expect(runtime('tenant-b').analyticsDbName).toBe('rt_tenant_b');
    expect(router.resolve({ databaseType: 'knowledge', tier: 'tenant', tenantId: 'tenant-a', collection: 'facts' }).dbName).toBe('kn_tenant_a');
    expect(router.resolve({ databaseType: 'messaging', tier: 'tenant', tenantId: 'tenant-a', collection: 'topics' }).dbName).toBe('msg_tenant_a');
  });

  it('resolves the single-object section form as the generic tier', () => {
    expect(router.resolve({ databaseType: 'logs', tier: 'generic', collection: 'activity_logs' }).dbName).toBe('logs');
    expect(router.resolve({ databaseType: 'identities', tier: 'generic', collection: 'users' }).dbName).toBe('ids');
  });

  it('keeps tenants apart: no two tenants share a database', () => {
    const names = ['tenant-a', 'tenant-b', 'tenant-c', 'tenant-d', 'tenant-e', 'tenant-f'].map((t) => `${runtime(t).dbConnRef}/${runtime(t).dbName}`);
    expect(new Set(names).size).toBe(names.length);
  });

  it('attaches the collection map of the collection, or none', () => {
    expect(runtime('tenant-a', 'orders').collectionMap?.indexedProps).toEqual(['customerId']);
    expect(runtime('tenant-a', 'invoices').collectionMap).toBeUndefined();
  });

  // The lookup must be own-property-only, or these names would get an Object.prototype member.
  it('gives no collection map to collections named like Object.prototype members', () => {
    for (const collection of ['constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
      expect(runtime('tenant-a', collection).collectionMap).toBeUndefined();
    }
  });
});

describe('Router.resolve: blob locations', () => {
  it('uses the connection\'s separate bucket per kind, prefixed by the kind name', () => {
    expect(runtime('tenant-a').blobs).toEqual({
      records: { bucket: 'xr-records', prefix: 'records' },
      versions: { bucket: 'xr-versions', prefix: 'versions' },
      content: { bucket: 'xr-content', prefix: 'content' },
      backups: { bucket: 'xr-backups', prefix: 'backups' },
    });
  });

  it('uses one bucket with the connection\'s folder prefixes', () => {
    expect(runtime('tenant-b').blobs).toEqual({
      records: { bucket: 'xr-data', prefix: 'rec' },
      versions: { bucket: 'xr-data', prefix: 'ver' },
      content: { bucket: 'xr-data', prefix: 'files/cnt' },
      backups: { bucket: 'xr-data', prefix: 'bak' },
    });
    expect(router.resolve({ databaseType: 'knowledge', tier: 'domain', domain: 'finance', collection: 'x' }).blobs.records).toEqual({
      bucket: 'xr-data',
      prefix: 'rec',
    });
  });

  it('lets per-database buckets win over the connection\'s, kind by kind', () => {
    expect(runtime('tenant-c').blobs).toEqual({
      records: { bucket: 'c-records', prefix: 'records' },
      versions: { bucket: 'c-versions', prefix: 'versions' },
      content: { bucket: 'xr-content', prefix: 'content' },
      backups: { bucket: 'xr-backups', prefix: 'backups' },
    });
    expect(router.resolve({ databaseType: 'metadata', tier: 'generic', collection: 'schemas' }).blobs).toEqual({
      records: { bucket: 'md-records', prefix: 'records' },
      content: { bucket: 'xr-content', prefix: 'content' },
      backups: { bucket: 'md-backups', prefix: 'backups' },
    });
  });

  it('spreads a legacy single bucket, on the connection or on the database, over every kind', () => {
    const legacy = (bucket: string) => ({
      records: { bucket, prefix: 'records' },
      versions: { bucket, prefix: 'versions' },
      content: { bucket, prefix: 'content' },
      backups: { bucket, prefix: 'backups' },
    });
    expect(runtime('tenant-d').blobs).toEqual(legacy('xr-legacy'));
    expect(runtime('tenant-f').blobs).toEqual(legacy('f-everything'));
    const { versions, ...unversioned } = legacy('xr-legacy');
    expect(versions).toBeDefined();
    expect(router.resolve({ databaseType: 'knowledge', tier: 'tenant', tenantId: 'tenant-a', collection: 'x' }).blobs).toEqual(unversioned);
  });

  it('defaults the local filesystem bucket to the database name', () => {
    const route = runtime('tenant-e');
    expect(route.spaceConnRef).toBeNull();
    expect(route.blobs).toEqual({
      records: { bucket: 'rt_tenant_e', prefix: 'records' },
      versions: { bucket: 'rt_tenant_e', prefix: 'versions' },
      content: { bucket: 'rt_tenant_e', prefix: 'content' },
      backups: { bucket: 'rt_tenant_e', prefix: 'backups' },
    });
  });

  it('gives unversioned types no versions location, even when the connection has a versions bucket', () => {
    const requests: RouteRequest[] = [
      { databaseType: 'knowledge', tier: 'generic', collection: 'c' },
      { databaseType: 'metadata', tier: 'generic', collection: 'c' },
      { databaseType: 'messaging', tier: 'generic', collection: 'c' },
      { databaseType: 'identities', tier: 'generic', collection: 'c' },
    ];
    for (const request of requests) {
      const route = router.resolve(request);
      expect(Object.keys(route.blobs).sort(), request.databaseType).toEqual(['backups', 'content', 'records']);
      expect(route.policy.versioned).toBe(false);
    }
  });

  it('gives logs only records and content', () => {
    const route = router.resolve({ databaseType: 'logs', tier: 'generic', collection: 'activity_logs' });
    expect(route.blobs).toEqual({
      records: { bucket: 'xr-records', prefix: 'records' },
      content: { bucket: 'xr-content', prefix: 'content' },
    });
    expect(route.policy.appendOnly).toBe(true);
  });

  it('drops the versions location of runtime when versioning is switched off', () => {
    const off = new Router(
      loadConfig({
        dbConnections: { main: { sqlitePath: '/tmp/x.sqlite' } },
        localStorage: { basePath: '/tmp/blobs', enabled: true },
        versioning: { enabled: false },
        databases: { runtime: { tenantDatabases: [{ tenantId: 't', dbConnRef: 'main', dbName: 'rt', bucket: 'one-bucket' }] } },
      }),
    );
    const route = off.resolve({ databaseType: 'runtime', tier: 'tenant', tenantId: 't', collection: 'orders' });
    expect(Object.keys(route.blobs).sort()).toEqual(['backups', 'content', 'records']);
    expect(route.policy.versioned).toBe(false);
  });
});

describe('Router.resolve: refusals', () => {
  it('names the tenant asked for and the tenants configured when a tenant is unknown', () => {
    const err = thrown(RouteNotFoundError, () => runtime('tenant-zz'));
    expect(err.code).toBe('ROUTE_NOT_FOUND');
    expect(err.message).toContain('"tenant-zz"');
    expect(err.message).toContain('tenant "tenant-a"');
    expect(err.message).toContain('tenant "tenant-f"');
  });

  it('names the domain asked for when a domain is unknown', () => {
    const err = thrown(RouteNotFoundError, () => router.resolve({ databaseType: 'knowledge', tier: 'domain', domain: 'legal', collection: 'x' }));
    expect(err.message).toContain('"legal"');
    expect(err.message).toContain('domain "finance"');
  });

  it('refuses a database type or tier that is not configured with a RouteNotFoundError', () => {
    const cases: Array<[DatabaseType, Tier, Partial<RouteRequest>]> = [
      ['runtime', 'generic', {}],
      ['runtime', 'domain', { domain: 'finance' }],
      ['metadata', 'tenant', { tenantId: 'tenant-a' }],
      ['logs', 'domain', { domain: 'finance' }],
    ];
    for (const [databaseType, tier, extra] of cases) {
      const err = thrown(RouteNotFoundError, () => router.resolve({ databaseType, tier, collection: 'x', ...extra }));
      expect(err.message).toContain(databaseType);
    }
    // Runtime exists only per tenant; asking for it at the generic tier says what does exist.
    const generic = thrown(RouteNotFoundError, () => router.resolve({ databaseType: 'runtime', tier: 'generic', collection: 'x' }));
    expect(generic.message).toContain('tenant "tenant-a"');
    const empty = new Router(loadConfig({ dbConnections: {}, databases: {} }));
    expect(thrown(RouteNotFoundError, () => empty.resolve({ databaseType: 'logs', tier: 'generic', collection: 'x' })).message).toContain(
      'not configured at all',
    );
  });

  it('says exactly what is configured instead: every entry up to ten, then how many more', () => {
    const generic = thrown(RouteNotFoundError, () => router.resolve({ databaseType: 'runtime', tier: 'generic', collection: 'x' }));
    expect(generic.message).toBe(
      'No generic runtime database is configured (configured: tenant "tenant-a", tenant "tenant-b", tenant "tenant-c", tenant "tenant-d", tenant "tenant-e", tenant "tenant-f")',
    );
    expect(thrown(RouteNotFoundError, () => router.resolve({ databaseType: 'knowledge', tier: 'domain', domain: 'legal', collection: 'x' })).message).toBe(
      'No knowledge database is configured for domain "legal" (configured: generic, domain "finance", tenant "tenant-a")',
    );
    const many = new Router(
      loadConfig({
        dbConnections: { main: { sqlitePath: '/tmp/xronox-routing-many.sqlite' } },
        localStorage: { basePath: '/tmp/xronox-routing-many', enabled: true },
        databases: {
          runtime: { tenantDatabases: Array.from({ length: 12 }, (_, i) => ({ tenantId: `t${i}`, dbConnRef: 'main', dbName: `rt_t${i}` })) },
          knowledge: { tenantDatabases: [] },
        },
      }),
    );
    expect(thrown(RouteNotFoundError, () => many.resolve({ databaseType: 'runtime', tier: 'tenant', tenantId: 'zz', collection: 'x' })).message).toBe(
      `No runtime database is configured for tenant "zz" (configured: ${Array.from({ length: 10 }, (_, i) => `tenant "t${i}"`).join(', ')}, and 2 more)`,
    );
    const ten = new Router(
      loadConfig({
        dbConnections: { main: { sqlitePath: '/tmp/xronox-routing-many.sqlite' } },
        localStorage: { basePath: '/tmp/xronox-routing-many', enabled: true },
        databases: { runtime: { tenantDatabases: Array.from({ length: 10 }, (_, i) => ({ tenantId: `t${i}`, dbConnRef: 'main', dbName: `rt_t${i}` })) } },
      }),
    );
    expect(thrown(RouteNotFoundError, () => ten.resolve({ databaseType: 'runtime', tier: 'tenant', tenantId: 'zz', collection: 'x' })).message).toBe(
      `No runtime database is configured for tenant "zz" (configured: ${Array.from({ length: 10 }, (_, i) => `tenant "t${i}"`).join(', ')})`,
    );
    expect(thrown(RouteNotFoundError, () => many.resolve({ databaseType: 'knowledge', tier: 'generic', collection: 'x' })).message).toBe(
      'No generic knowledge database is configured (none are configured)',
    );
    expect(thrown(RouteNotFoundError, () => many.resolve({ databaseType: 'logs', tier: 'generic', collection: 'x' })).message).toBe(
      'No generic logs database is configured (this database type is not configured at all)',
    );
  });

  it('refuses a tier given the wrong key with a ValidationError', () => {
    const cases: RouteRequest[] = [
      { databaseType: 'runtime', tier: 'tenant', tenantId: 'tenant-a', domain: 'finance', collection: 'x' },
      { databaseType: 'knowledge', tier: 'generic', tenantId: 'tenant-a', collection: 'x' },
      { databaseType: 'knowledge', tier: 'generic', domain: 'finance', collection: 'x' },
      { databaseType: 'knowledge', tier: 'domain', domain: 'finance', tenantId: 'tenant-a', collection: 'x' },
      { databaseType: 'runtime', tier: 'tenant', collection: 'x' },
      { databaseType: 'knowledge', tier: 'domain', collection: 'x' },
    ];
    const messages = [
      'The tenant tier takes a tenantId, not a domain',
      'The generic tier takes neither tenantId nor domain',
      'The generic tier takes neither tenantId nor domain',
      'The domain tier takes a domain, not a tenantId',
    ];
    for (const [i, request] of cases.entries()) {
      const err = thrown(ValidationError, () => router.resolve(request));
      expect(err.code).toBe('VALIDATION_FAILED');
      if (messages[i]) expect(err.message).toBe(messages[i]);
    }
  });

  it('refuses hostile collection, tenant and domain names with a ValidationError', () => {
    const hostile = ['../x', '$where', '', 'a'.repeat(10_000), 'a/b', 'a.b', '..', 'a\u0000b', ' orders', '__proto__'];
    for (const name of hostile) {
      const err = thrown(ValidationError, () => runtime('tenant-a', name));
      expect(err.path).toBe('collection');
      // The message describes the input instead of echoing a huge string back.
      expect(err.message.length).toBeLessThan(200);
      thrown(ValidationError, () => runtime(name));
      thrown(ValidationError, () => router.resolve({ databaseType: 'knowledge', tier: 'domain', domain: name, collection: 'x' }));
    }
    for (const value of [null, 42, { $ne: null }, ['orders']]) {
      thrown(ValidationError, () => router.resolve({ databaseType: 'runtime', tier: 'tenant', tenantId: 'tenant-a', collection: value as unknown as string }));
      thrown(ValidationError, () => router.resolve({ databaseType: 'runtime', tier: 'tenant', tenantId: value as unknown as string, collection: 'x' }));
    }
  });

  it('refuses unknown database types, tiers and malformed requests with a ValidationError', () => {
    const bad: unknown[] = [
      null,
      'runtime',
      { databaseType: 'audit', tier: 'generic', collection: 'x' },
      { databaseType: 'runtime', tier: 'global', tenantId: 'tenant-a', collection: 'x' },
      { databaseType: 'constructor', tier: 'generic', collection: 'x' },
    ];
    for (const request of bad) {
      const err = thrown(ValidationError, () => router.resolve(request as RouteRequest));
      expect(err).toBeInstanceOf(XronoxError);
    }
    for (const request of [null, 'runtime']) {
      expect(thrown(ValidationError, () => router.resolve(request as unknown as RouteRequest)).message).toBe('with() takes { databaseType, tier, collection, ... }');
    }
    const type = thrown(ValidationError, () => router.resolve({ databaseType: 'audit', tier: 'generic', collection: 'x' } as unknown as RouteRequest));
    expect({ path: type.path, message: type.message }).toEqual({
      path: 'databaseType',
      message: 'Unknown databaseType "audit"; expected one of runtime, knowledge, metadata, messaging, identities, logs',
    });
    const tier = thrown(ValidationError, () => router.resolve({ databaseType: 'runtime', tier: 'global', collection: 'x' } as unknown as RouteRequest));
    expect({ path: tier.path, message: tier.message }).toEqual({ path: 'tier', message: 'Unknown tier "global"; expected one of generic, domain, tenant' });
  });

  it('refuses any tier of a type that is not configured, and a tenant of a type configured without tenants', () => {
    const empty = new Router(loadConfig({ dbConnections: {}, databases: {} }));
    expect(thrown(RouteNotFoundError, () => empty.resolve({ databaseType: 'knowledge', tier: 'domain', domain: 'legal', collection: 'x' })).message).toBe(
      'No knowledge database is configured for domain "legal" (this database type is not configured at all)',
    );
    const genericOnly = new Router(
      loadConfig({
        dbConnections: { main: { sqlitePath: '/tmp/xronox-routing-generic.sqlite' } },
        localStorage: { basePath: '/tmp/xronox-routing-generic', enabled: true },
        databases: { logs: { genericDatabase: { dbConnRef: 'main', dbName: 'logs' } } },
      }),
    );
    // Even a tenant named like a missing value.
    for (const tenantId of ['acme', 'undefined']) {
      expect(thrown(RouteNotFoundError, () => genericOnly.resolve({ databaseType: 'logs', tier: 'tenant', tenantId, collection: 'x' })).message).toBe(
        `No logs database is configured for tenant "${tenantId}" (configured: generic)`,
      );
    }
  });
});

describe('Router.databases', () => {
  it('lists every configured database once, with its tier and blob locations', () => {
    const all = router.databases();
    expect(all).toHaveLength(3 + 1 + 6 + 2 + 1 + 1);
    const byName = new Map(all.map((d) => [d.dbName, d]));
    expect(byName.get('kn_finance')).toMatchObject({ databaseType: 'knowledge', tier: 'domain', domain: 'finance' });
    expect(byName.get('rt_tenant_a')).toMatchObject({ tier: 'tenant', tenantId: 'tenant-a', analyticsDbName: 'an_tenant_a' });
    const kinds = (name: string) => Object.keys(byName.get(name)?.blobs ?? {}).sort() as BlobKind[];
    expect(kinds('logs')).toEqual(['content', 'records']);
    expect(kinds('rt_tenant_e')).toEqual(['backups', 'content', 'records', 'versions']);
  });
});
