import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { XronoxConfigBuilder } from '../../core/config/builder.js';
import { loadConfig } from '../../core/config/load.js';
import { RouteNotFoundError, StorageError, ValidationError } from '../../core/errors.js';
import { restoreStagingDbName } from '../../core/foundation/names.js';
import { type RouteRequest, Router } from '../../core/routing/router.js';
import { pooledMongoClientCount } from '../../core/adapters/mongodb/mongodb-client-pool.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';
import { configError, thrown } from '../support/errors.js';
import { lazy } from '../support/lazy.js';


const local = {
  dbConnections: { main: { sqlitePath: '/tmp/xronox-dyn.sqlite' }, other: { sqlitePath: '/tmp/xronox-dyn-other.sqlite' } },
  localStorage: { basePath: '/tmp/xronox-dyn-blobs', enabled: true },
};
const s3 = { region: 'us-east-1', accessKey: 'key', secretKey: 'secret' };

const rt = (tenantId: string, collection = 'orders'): RouteRequest => ({ databaseType: 'runtime', tier: 'tenant', tenantId, collection });

describe('dynamic tenants: routing', () => {
  const router = lazy(() => new Router(
    loadConfig({
      ...local,
      spacesConnections: { shared: { ...s3, buckets: { records: 'xr-records', content: 'xr-content', backups: 'xr-backups' }, folderPrefixes: { records: 'rec' } } },
      databases: {
        runtime: {
          tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'main', dbName: 'custom_acme' }],
          dynamicTenants: {
            enabled: true,
            dbConnRef: 'main',
            dbNameTemplate: 'rt_{tenantId}',
            analyticsDbNameTemplate: 'an_{tenantId}',
            validation: { pattern: '[a-z0-9-]+', maxLength: 20 },
          },
        },
        knowledge: {
          dynamicTenants: { enabled: true, dbConnRef: 'other', spaceConnRef: 'shared', dbNameTemplate: 'kn_{tenantId}', bucketTemplate: 'kn-{tenantId}-data' },
        },
        metadata: {
          dynamicTenants: { enabled: true, dbConnRef: 'other', spaceConnRef: 'shared', dbNameTemplate: 'md_{tenantId}' },
        },
      },
    }),
  ));

  it('routes a tenant that is in no config entry, exactly as a configured entry with those names would be routed', () => {
    const configured = new Router(
      loadConfig({
        ...local,
        databases: { runtime: { tenantDatabases: [{ tenantId: 'new-co', dbConnRef: 'main', dbName: 'rt_new-co', analyticsDbName: 'an_new-co' }] } },
      }),
    );
    expect(router.resolve(rt('new-co'))).toEqual(configured.resolve(rt('new-co')));
    expect(router.resolve(rt('new-co'))).toMatchObject({
      tenantId: 'new-co',
      dbConnRef: 'main',
      dbName: 'rt_new-co',
      analyticsDbName: 'an_new-co',
      spaceConnRef: null,
      label: 'runtime/tenant:new-co/orders',
      blobs: { records: { bucket: 'rt_new-co', prefix: 'records' }, versions: { bucket: 'rt_new-co', prefix: 'versions' } },
    });
    expect(router.resolve(rt('new-co')).policy.versioned).toBe(true);
  });

  it('puts every blob kind in the bucket of bucketTemplate, with the connection\'s folder prefixes', () => {
    const route = router.resolve({ databaseType: 'knowledge', tier: 'tenant', tenantId: 'globex', collection: 'facts' });
    expect(route).toMatchObject({ dbConnRef: 'other', dbName: 'kn_globex', analyticsDbName: 'kn_globex', spaceConnRef: 'shared' });
    expect(route.blobs).toEqual({
      records: { bucket: 'kn-globex-data', prefix: 'rec' },
      content: { bucket: 'kn-globex-data', prefix: 'content' },
      backups: { bucket: 'kn-globex-data', prefix: 'backups' },
    });
  });

  it('uses the connection\'s buckets without a bucketTemplate', () => {
    const route = router.resolve({ databaseType: 'metadata', tier: 'tenant', tenantId: 'globex', collection: 'schemas' });
    expect(route.blobs.records).toEqual({ bucket: 'xr-records', prefix: 'rec' });
    expect(route.dbName).toBe('md_globex');
  });

  it('lets a configured tenant win, even one the dynamic rules would refuse', () => {
    expect(router.resolve(rt('acme')).dbName).toBe('custom_acme');
    const strict = new Router(
      loadConfig({
        ...local,
        databases: {
          runtime: {
            tenantDatabases: [{ tenantId: 'Legacy_Co', dbConnRef: 'main', dbName: 'legacy' }],
            dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}', validation: { pattern: '[a-z]+' } },
          },
        },
      }),
    );
    expect(strict.resolve(rt('Legacy_Co')).dbName).toBe('legacy');
    thrown(ValidationError, () => strict.resolve(rt('Other_Co')));
  });

  it('keeps dynamic tenants out of databases(), which lists configured databases only', () => {
    router.resolve(rt('listed-not'));
    expect(router.databases().map((d) => d.dbName)).toEqual(['custom_acme']);
    expect(router.cachedDynamicDatabases().map((d) => d.dbName)).toContain('rt_listed-not');
  });

  it('routes nothing dynamically when enabled is false, and says so', () => {
    const off = new Router(
      loadConfig({ ...local, databases: { runtime: { dynamicTenants: { enabled: false, dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}' } } } }),
    );
    const err = thrown(RouteNotFoundError, () => off.resolve(rt('anyone')));
    expect(err.message).toContain('dynamicTenants is disabled');
  });
});

describe('dynamic tenants: refusals', () => {
  const router = lazy(() => new Router(
    loadConfig({
      ...local,
      databases: {
        runtime: {
          dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}', bucketTemplate: 'rt-{tenantId}', validation: { pattern: 't[0-9A-Za-z-]*', maxLength: 12 } },
        },
        knowledge: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'kn_{tenantId}' } },
      },
    }),
  ));

  it('refuses hostile tenant ids with a ValidationError naming the tenantId rule', () => {
    for (const tenantId of ['../x', '$where', '', 'a'.repeat(10 * 1024), 'a/b', '..', 'a\u0000b', ' t1', 't.1']) {
      const err = thrown(ValidationError, () => router.resolve({ databaseType: 'knowledge', tier: 'tenant', tenantId, collection: 'x' }));
      expect(err.path).toBe('tenantId');
      expect(err.message).toContain('tenantId');
      expect(err.message.length).toBeLessThan(200);
    }
    for (const value of [null, 42, { $ne: null }]) {
      thrown(ValidationError, () => router.resolve({ databaseType: 'knowledge', tier: 'tenant', tenantId: value as unknown as string, collection: 'x' }));
    }
    expect(router.dynamicCacheSize).toBe(0);
  });

  it('refuses a tenant id that fails the pattern (anchored) or maxLength, naming the rule', () => {
    expect(router.resolve(rt('t1')).dbName).toBe('rt_t1');
    const pattern = thrown(ValidationError, () => router.resolve(rt('x-t1')));
    expect(pattern.message).toContain('pattern');
    // Anchored: a match inside the id is not enough.
    thrown(ValidationError, () => router.resolve(rt('t1_')));
    const long = thrown(ValidationError, () => router.resolve(rt('t123456789012')));
    expect(long.message).toContain('maxLength');
    expect(router.resolve(rt('t12345678901')).dbName).toBe('rt_t12345678901');
  });

  it('refuses a tenant whose bucket would not be a valid bucket name (uppercase), or whose dbName would be too long', () => {
    const upper = thrown(ValidationError, () => router.resolve(rt('tAcme')));
    expect(upper.message).toContain('bucketTemplate gives "rt-tAcme"');
    expect(upper.message).toContain('bucket');
    // Without a bucket template uppercase is fine: database names allow it.
    expect(router.resolve({ databaseType: 'knowledge', tier: 'tenant', tenantId: 'Acme', collection: 'x' }).dbName).toBe('kn_Acme');
    const long = thrown(ValidationError, () => router.resolve({ databaseType: 'knowledge', tier: 'tenant', tenantId: 'a'.repeat(62), collection: 'x' }));
    expect(long.message).toContain('dbNameTemplate');
    expect(long.message).toContain('not a valid dbName');
  });

  it('never gives a tenant a restore\'s staging database, nor reads one as a tenant\'s', () => {
    const bare = new Router(loadConfig({ ...local, databases: { knowledge: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: '{tenantId}' } } } }));
    const staging = restoreStagingDbName('kn_acme');
    expect(staging).toMatch(/^xronox_restore_[0-9a-f]{24}$/);
    expect(thrown(ValidationError, () => bare.resolve({ databaseType: 'knowledge', tier: 'tenant', tenantId: staging, collection: 'x' })).message).toContain('kept for restores');
    expect(bare.databaseNamed('main', staging)).toBeNull();
    expect(bare.databaseNamed('main', 'kn_acme')?.dbName).toBe('kn_acme');
  });
});

describe('dynamic tenants: never another tenant\'s database', () => {
  const config = loadConfig({
    ...local,
    databases: {
      knowledge: {
        tenantDatabases: [
          { tenantId: 'acme', dbConnRef: 'main', dbName: 'rt_zeta' },
          { tenantId: 'globex', dbConnRef: 'other', dbName: 'an_omega', recordsBucket: 'gx-records', contentBucket: 'gx-content', backupsBucket: 'gx-backups' },
        ],
      },
      runtime: {
        tenantDatabases: [{ tenantId: 'initech', dbConnRef: 'main', dbName: 'initech_rt', analyticsDbName: 'rt_stats' }],
        dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}', analyticsDbNameTemplate: 'an_{tenantId}' },
      },
      metadata: {
        dynamicTenants: { enabled: true, dbConnRef: 'other', dbNameTemplate: 'md_{tenantId}', bucketTemplate: 'gx-{tenantId}' },
      },
      // Overlaps runtime's template, for numeric ids only: loadConfig's sample ids do not see it, the router does.
      messaging: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'rt_m_{tenantId}', validation: { pattern: '[0-9]+' } } },
    },
  });
  const router = lazy(() => new Router(config));

  it('names the owner of a taken name exactly: a generic, a domain, a tenant database, or an analytics database', () => {
    const owners = new Router(
      loadConfig({
        ...local,
        databases: {
          knowledge: {
            genericDatabase: { dbConnRef: 'main', dbName: 'rt_gen' },
            domainsDatabases: [{ domain: 'legal', dbConnRef: 'main', dbName: 'rt_legal' }],
            tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'main', dbName: 'rt_zeta' }],
          },
          runtime: {
            tenantDatabases: [{ tenantId: 'initech', dbConnRef: 'main', dbName: 'initech_rt', analyticsDbName: 'rt_stats' }],
            dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}' },
          },
        },
      }),
    );
    const refusal = (tenantId: string, owner: string) =>
      `Tenant "${tenantId}" is refused for runtime dynamic tenants: its database "rt_${tenantId}" on connection "main" is already ${owner}; a tenant never shares another's database`;
    expect(thrown(ValidationError, () => owners.resolve(rt('gen'))).message).toBe(refusal('gen', 'the configured knowledge generic database'));
    expect(thrown(ValidationError, () => owners.resolve(rt('legal'))).message).toBe(refusal('legal', 'the configured knowledge database of domain "legal"'));
    // acme's database is also its analytics database: the first owner's label is the one kept.
    expect(thrown(ValidationError, () => owners.resolve(rt('zeta'))).message).toBe(refusal('zeta', 'the configured knowledge database of tenant "acme"'));
    expect(thrown(ValidationError, () => owners.resolve(rt('stats'))).message).toBe(
      refusal('stats', 'the configured runtime database of tenant "initech" (as its analytics database)'),
    );
  });

  it('refuses a tenant whose database would be a configured database on the same connection', () => {
    const err = thrown(ValidationError, () => router.resolve(rt('zeta')));
    expect(err.message).toContain('"rt_zeta"');
    expect(err.message).toContain('tenant "acme"');
    expect(router.resolve(rt('eta')).dbName).toBe('rt_eta');
    // A configured analytics database is taken too.
    expect(thrown(ValidationError, () => router.resolve(rt('stats'))).message).toContain('tenant "initech" (as its analytics database)');
  });

  it('refuses a tenant whose localStorage folder or bucket would be a configured database\'s', () => {
    // an_omega is on another connection, so only the folders could clash; runtime's analytics database holds no blobs.
    expect(router.resolve(rt('omega')).analyticsDbName).toBe('an_omega');
    const bucket = thrown(ValidationError, () => router.resolve({ databaseType: 'metadata', tier: 'tenant', tenantId: 'records', collection: 'x' }));
    expect(bucket.message).toContain('"gx-records"');
    const folder = new Router(
      loadConfig({
        ...local,
        databases: {
          knowledge: { genericDatabase: { dbConnRef: 'other', dbName: 'kn_shared' } },
          metadata: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'kn_{tenantId}' } },
        },
      }),
    );
    expect(thrown(ValidationError, () => folder.resolve({ databaseType: 'metadata', tier: 'tenant', tenantId: 'shared', collection: 'x' })).message).toContain(
      'localStorage folder "kn_shared"',
    );
  });

  it('refuses a tenant whose database another template would give another tenant', () => {
    // messaging gives tenant "42" rt_m_42, which runtime would give tenant "m_42".
    const err = thrown(ValidationError, () => router.resolve(rt('m_42')));
    expect(err.message).toContain('databases.messaging.dynamicTenants.dbNameTemplate');
    expect(err.message).toContain('"42"');
    // And the other way round: every name messaging's template gives, runtime's could give too, so both refuse it.
    thrown(ValidationError, () => router.resolve({ databaseType: 'messaging', tier: 'tenant', tenantId: '42', collection: 'c' }));
    // Ids messaging would refuse anyway are no clash.
    expect(router.resolve(rt('m_x')).dbName).toBe('rt_m_x');
  });

  it('refuses a tenant whose database is another tenant\'s analytics database of the same type', () => {
    const same = new Router(
      loadConfig({
        ...local,
        databases: {
          runtime: {
            dynamicTenants: {
              enabled: true,
              dbConnRef: 'main',
              dbNameTemplate: 'd{tenantId}',
              analyticsDbNameTemplate: 'd{tenantId}a',
              validation: { pattern: '[0-9]+|7a' },
            },
          },
        },
      }),
    );
    // Tenant "7"'s analytics database d7a would be tenant "7a"'s database: both are refused.
    expect(thrown(ValidationError, () => same.resolve(rt('7'))).message).toContain('analytics database "d7a"');
    expect(thrown(ValidationError, () => same.resolve(rt('7a'))).message).toBe(
      'Tenant "7a" is refused for runtime dynamic tenants: its database "d7a" on connection "main" is also what databases.runtime.dynamicTenants.analyticsDbNameTemplate gives the tenant "7"; a tenant never shares another\'s database',
    );
    // Tenant "5a" is not accepted, so d5a is no other tenant's.
    expect(same.resolve(rt('5')).analyticsDbName).toBe('d5a');
  });
});

describe('dynamic tenants: the cache', () => {
  const configWith = (cacheSize?: number) =>
    loadConfig({
      ...local,
      databases: { runtime: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}', ...(cacheSize ? { cacheSize } : {}) } } },
    });

  it('never holds more than cacheSize tenants, after 5000 distinct ones', () => {
    const router = new Router(configWith(100));
    let largest = 0;
    for (let i = 0; i < 5000; i++) {
      router.resolve(rt(`tenant-${i}`));
      largest = Math.max(largest, router.dynamicCacheSize);
    }
    expect(largest).toBe(100);
    expect(router.dynamicCacheSize).toBe(100);
  });

  it('defaults to 1000 entries', () => {
    const router = new Router(configWith());
    for (let i = 0; i < 5000; i++) router.resolve(rt(`tenant-${i}`));
    expect(router.dynamicCacheSize).toBe(1000);
  });

  it('keeps the most recently used tenants, and resolves a cached tenant to the same route', () => {
    const router = new Router(configWith(3));
    const first = router.resolve(rt('t-0'));
    router.resolve(rt('t-1'));
    router.resolve(rt('t-2'));
    router.resolve(rt('t-0')); // t-1 is now the least recently used
    router.resolve(rt('t-3'));
    expect(router.cachedDynamicDatabases().map((d) => d.tenantId).sort()).toEqual(['t-0', 't-2', 't-3']);
    expect(router.resolve(rt('t-0'))).toEqual(first);
    expect(router.resolve(rt('t-1'))).toEqual({ ...first, tenantId: 't-1', dbName: 'rt_t-1', analyticsDbName: 'rt_t-1', label: 'runtime/tenant:t-1/orders', blobs: expect.any(Object) });
  });
});

describe('dynamic tenants: config validation', () => {

  it('reports every problem of every dynamicTenants block together', () => {
    const err = configError(() =>
      loadConfig({
        ...local,
        spacesConnections: { nobuckets: s3 },
        databases: {
          runtime: {
            dynamicTenants: {
              enabled: true,
              dbConnRef: 'missing-db',
              spaceConnRef: 'missing-s3',
              dbNameTemplate: 'rt_shared',
              bucketTemplate: 'rt-bucket',
              validation: { pattern: '[a-z', maxLength: 0 },
            },
          },
          knowledge: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'kn_{tenantId}', analyticsDbNameTemplate: 'an_{tenantId}', cacheSize: 10 } },
          metadata: { dynamicTenants: { enabled: true, dbConnRef: 'main', spaceConnRef: 'nobuckets', dbNameTemplate: 'kn_{tenantId}' } },
          identities: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'id {tenantId}', bucketTemplate: 'ID-{tenantId}', extra: 1 } },
          logs: { dynamicTenants: { enabled: 'yes', dbConnRef: 'main', dbNameTemplate: 'lg_{tenantId}_{region}' } },
        },
      }),
    );
    const at = (path: string) => err.issues.filter((i) => i.path === path).map((i) => i.message).join(' | ');
    expect(at('databases.runtime.dynamicTenants.dbConnRef')).toContain('"missing-db"');
    expect(at('databases.runtime.dynamicTenants.spaceConnRef')).toContain('"missing-s3"');
    expect(at('databases.runtime.dynamicTenants.dbNameTemplate')).toContain('{tenantId}');
    expect(at('databases.runtime.dynamicTenants.bucketTemplate')).toContain('{tenantId}');
    expect(at('databases.runtime.dynamicTenants.validation.pattern')).toContain('not a valid regular expression');
    expect(at('databases.runtime.dynamicTenants.validation.maxLength')).not.toBe('');
    expect(at('databases.knowledge.dynamicTenants.analyticsDbNameTemplate')).toContain('only runtime');
    expect(at('databases.metadata.dynamicTenants.dbNameTemplate')).toContain('databases.knowledge.dynamicTenants.dbNameTemplate');
    expect(at('databases.metadata.dynamicTenants.bucketTemplate')).toContain('no bucket for records, content, backups');
    expect(at('databases.identities.dynamicTenants.dbNameTemplate')).toContain('gives "id a"');
    expect(at('databases.identities.dynamicTenants.bucketTemplate')).toContain('"ID-a"');
    expect(at('databases.identities.dynamicTenants')).toContain('"extra"');
    expect(at('databases.logs.dynamicTenants.enabled')).not.toBe('');
    expect(at('databases.logs.dynamicTenants.dbNameTemplate')).toContain('no placeholder but {tenantId}');
  });

  it('reports templates that give names another template gives other tenants', () => {
    const err = configError(() =>
      loadConfig({
        ...local,
        databases: {
          runtime: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}', analyticsDbNameTemplate: 'rt_{tenantId}_an' } },
          messaging: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'rt_m_{tenantId}', bucketTemplate: 'xr-{tenantId}' } },
          logs: { dynamicTenants: { enabled: true, dbConnRef: 'other', dbNameTemplate: 'lg_{tenantId}', bucketTemplate: 'xr-{tenantId}' } },
          // Same names as messaging, but in another database: no clash.
          identities: { dynamicTenants: { enabled: true, dbConnRef: 'other', dbNameTemplate: 'rt_m_{tenantId}', bucketTemplate: 'id-{tenantId}' } },
        },
      }),
    );
    const at = (path: string) => err.issues.find((i) => i.path === path)?.message ?? '';
    expect(at('databases.runtime.dynamicTenants.analyticsDbNameTemplate')).toContain('the tenant "a" would get "rt_a_an", as would the tenant "a_an"');
    expect(at('databases.messaging.dynamicTenants.dbNameTemplate')).toContain('databases.runtime.dynamicTenants.dbNameTemplate');
    expect(at('databases.messaging.dynamicTenants.bucketTemplate')).toContain('databases.logs.dynamicTenants.bucketTemplate');
    expect(at('databases.logs.dynamicTenants.bucketTemplate')).toContain('in localStorage');
    expect(err.issues.filter((i) => i.path.startsWith('databases.identities'))).toEqual([]);
    expect(err.issues.filter((i) => i.path === 'databases.runtime.dynamicTenants.dbNameTemplate')).toEqual([]);
  });

  it('needs localStorage or a spaces connection for the tenants\' blobs', () => {
    const err = configError(() =>
      loadConfig({ dbConnections: local.dbConnections, databases: { runtime: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}' } } } }),
    );
    expect(err.issues.map((i) => i.path)).toEqual(['databases.runtime.dynamicTenants.spaceConnRef']);
  });

  it('accepts dynamicTenants beside the single-object form of a section, and an empty spaceConnRef as none', () => {
    const config = loadConfig({
      ...local,
      databases: { logs: { dbConnRef: 'main', dbName: 'logs', dynamicTenants: { enabled: true, dbConnRef: 'main', spaceConnRef: '', dbNameTemplate: 'logs_{tenantId}' } } },
    });
    expect(config.databases.logs?.genericDatabase).toEqual({ dbConnRef: 'main', dbName: 'logs' });
    expect(config.databases.logs?.dynamicTenants).toEqual({ enabled: true, dbConnRef: 'main', dbNameTemplate: 'logs_{tenantId}' });
    expect(new Router(config).resolve({ databaseType: 'logs', tier: 'tenant', tenantId: 'acme', collection: 'events' }).dbName).toBe('logs_acme');
  });

  it('is what the builder\'s enableDynamicTenants writes', () => {
    const built = new XronoxConfigBuilder()
      .addEmbeddedConnection('main', '/tmp/x.sqlite')
      .withLocalStorage('/tmp/blobs')
      .enableDynamicTenants('runtime', { mongoRef: 'main', dbNameTemplate: 'rt_{tenantId}', analyticsDbNameTemplate: 'an_{tenantId}', validation: { maxLength: 20 } })
      .enableDynamicTenants('knowledge', { dbConnRef: 'main', dbNameTemplate: 'kn_{tenantId}', enabled: false })
      .build();
    expect(built.databases.runtime).toEqual({
      tenantDatabases: [],
      dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}', analyticsDbNameTemplate: 'an_{tenantId}', validation: { maxLength: 20 } },
    });
    expect(built.databases.knowledge?.dynamicTenants).toEqual({ enabled: false, dbConnRef: 'main', dbNameTemplate: 'kn_{tenantId}' });
    const twice = configError(() =>
      new XronoxConfigBuilder()
        .addEmbeddedConnection('main', '/tmp/x.sqlite')
        .withLocalStorage('/tmp/blobs')
        .enableDynamicTenants('runtime', { dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}' })
        .enableDynamicTenants('runtime', { dbConnRef: 'main', dbNameTemplate: 'rt2_{tenantId}' })
        .enableDynamicTenants('logs', { dbConnRef: 'nowhere', dbNameTemplate: 'logs' })
        .build(),
    );
    expect(twice.issues.map((i) => i.path)).toEqual(
      expect.arrayContaining(['databases.runtime.dynamicTenants', 'databases.logs.dynamicTenants.dbConnRef', 'databases.logs.dynamicTenants.dbNameTemplate']),
    );
  });
});

describe('dynamic tenants: end to end on the embedded default', () => {
  const dir = tempDir('xronox-dynamic');
  afterAll(() => dir.cleanup());

  it('on a MongoDB connection, routes a new tenant; the shared client is made on first use and closed at shutdown', async () => {
    const before = pooledMongoClientCount();
    const xronox = initXronox({
      // No server answers there: the first operation fails fast.
      dbConnections: { mongo: { mongoUri: 'mongodb://127.0.0.1:1/x?serverSelectionTimeoutMS=200' } },
      spacesConnections: { s3: { ...s3, bucket: 'one-bucket' } },
      databases: { runtime: { dynamicTenants: { enabled: true, dbConnRef: 'mongo', spaceConnRef: 's3', dbNameTemplate: 'rt_{tenantId}' } } },
    });
    try {
      const orders = xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', collection: 'orders' });
      expect(orders.route.dbName).toBe('rt_acme');
      const globex = xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'globex', collection: 'orders' });
      // with() opens nothing: the store (and its client) is made on its first use.
      expect(pooledMongoClientCount()).toBe(before);
      // The store's name is known before the store (or the driver) is loaded.
      expect(xronox.jobTarget(orders.route).index.name).toBe('mongodb');
      expect(xronox.jobTarget(globex.route).index.name).toBe('mongodb');
      expect(pooledMongoClientCount()).toBe(before);
      // The first operation makes it: one client for the connection, whatever the number of tenants.
      for (const route of [orders.route, globex.route]) await expect(xronox.jobTarget(route).index.ping()).rejects.toBeInstanceOf(StorageError);
      expect(pooledMongoClientCount()).toBe(before + 1);
    } finally {
      await xronox.shutdown();
    }
    expect(pooledMongoClientCount()).toBe(before);
  });

  it('gives two new tenants their own runtime databases; neither sees the other\'s records', async () => {
    const xronox = initXronox({
      dbConnections: { local: { sqlitePath: join(dir.path, 'xronox.sqlite') } },
      localStorage: { basePath: join(dir.path, 'blobs'), enabled: true },
      databases: { runtime: { dynamicTenants: { enabled: true, dbConnRef: 'local', dbNameTemplate: 'app_runtime_{tenantId}' } } },
      collectionMaps: { orders: { indexedProps: ['customer'] } },
    });
    try {
      const orders = (tenantId: string) => xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId, collection: 'orders' });
      const a = orders('tenant-a');
      const b = orders('tenant-b');
      const fromA = await a.create({ customer: 'ada', total: 1 }, 'alice', 'first');
      const fromB = await b.create({ customer: 'ada', total: 2 }, 'bob', 'first');
      await a.update(fromA.id, { customer: 'ada', total: 3 }, 0, 'alice', 'second');

      expect((await a.getLatest(fromA.id))?.data).toEqual({ customer: 'ada', total: 3 });
      expect((await b.getLatest(fromB.id))?.data).toEqual({ customer: 'ada', total: 2 });
      expect(await a.getLatest(fromB.id)).toBeNull();
      expect(await b.getLatest(fromA.id)).toBeNull();

      const listA = await a.listByMeta({ filter: { customer: 'ada' } });
      const listB = await b.listByMeta({ filter: { customer: 'ada' } });
      expect(listA.items.map((r) => r.id)).toEqual([fromA.id]);
      expect(listB.items.map((r) => r.id)).toEqual([fromB.id]);
      expect(xronox.route({ databaseType: 'runtime', tier: 'tenant', tenantId: 'tenant-b', collection: 'orders' }).dbName).toBe('app_runtime_tenant-b');
      await xronox.flush();
    } finally {
      await xronox.shutdown();
    }
  });
});

describe('dynamic tenants: names shared with connections and other sections', () => {
  it('refuses a tenant whose bucket is one of the connection\'s own buckets, which all its databases share', () => {
    const router = new Router(
      loadConfig({
        ...local,
        spacesConnections: { shared: { ...s3, buckets: { records: 'xr-records', versions: 'xr-versions', content: 'xr-content', backups: 'xr-backups' } } },
        databases: { runtime: { dynamicTenants: { enabled: true, dbConnRef: 'main', spaceConnRef: 'shared', dbNameTemplate: 'rt_{tenantId}', bucketTemplate: 'xr-{tenantId}' } } },
      }),
    );
    for (const kind of ['records', 'versions', 'content', 'backups']) {
      const err = thrown(ValidationError, () => router.resolve(rt(kind)));
      expect(err.message).toContain(`its bucket "xr-${kind}" is already a bucket of spacesConnections.shared, shared by its databases`);
      expect(err.path).toBe('tenantId');
    }
    expect(router.resolve(rt('acme')).blobs.records).toEqual({ bucket: 'xr-acme', prefix: 'records' });
    // Refusals are not cached.
    expect(router.dynamicCacheSize).toBe(1);
  });

  it('refuses a tenant whose bucket another section\'s bucketTemplate gives another tenant', () => {
    const router = new Router(
      loadConfig({
        ...local,
        spacesConnections: { shared: s3 },
        databases: {
          runtime: { dynamicTenants: { enabled: true, dbConnRef: 'main', spaceConnRef: 'shared', dbNameTemplate: 'rt_{tenantId}', bucketTemplate: 'b-{tenantId}' } },
          // Numeric ids only: loadConfig's sample ids do not see the overlap, the router does.
          knowledge: {
            dynamicTenants: { enabled: true, dbConnRef: 'other', spaceConnRef: 'shared', dbNameTemplate: 'kn_{tenantId}', bucketTemplate: 'b-k{tenantId}', validation: { pattern: '[0-9]+' } },
          },
        },
      }),
    );
    const err = thrown(ValidationError, () => router.resolve(rt('k7')));
    expect(err.message).toContain('its bucket "b-k7" is also what databases.knowledge.dynamicTenants.bucketTemplate gives the tenant "7"');
    expect(thrown(ValidationError, () => router.resolve({ databaseType: 'knowledge', tier: 'tenant', tenantId: '7', collection: 'c' })).message).toContain(
      'databases.runtime.dynamicTenants.bucketTemplate gives the tenant "k7"',
    );
    expect(router.resolve(rt('kx')).blobs.records?.bucket).toBe('b-kx');
  });

  it('refuses a tenant whose localStorage folder another section gives another tenant, on another connection', () => {
    const router = new Router(
      loadConfig({
        ...local,
        databases: {
          runtime: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}' } },
          knowledge: { dynamicTenants: { enabled: true, dbConnRef: 'other', dbNameTemplate: 'rt_k{tenantId}', validation: { pattern: '[0-9]+' } } },
        },
      }),
    );
    // Different connections, so the databases are apart; their folders would not be.
    const err = thrown(ValidationError, () => router.resolve(rt('k7')));
    expect(err.message).toContain('its localStorage folder "rt_k7" is also what databases.knowledge.dynamicTenants.dbNameTemplate gives the tenant "7"');
    expect(thrown(ValidationError, () => router.resolve({ databaseType: 'knowledge', tier: 'tenant', tenantId: '8', collection: 'c' })).message).toContain(
      'its localStorage folder "rt_k8" is also what databases.runtime.dynamicTenants.dbNameTemplate gives the tenant "k8"',
    );
    // Ids the other section would refuse are no clash.
    expect(router.resolve(rt('kx')).blobs.records).toEqual({ bucket: 'rt_kx', prefix: 'records' });
  });

  it('compares bucket names within one spaces connection only', () => {
    const router = new Router(
      loadConfig({
        ...local,
        spacesConnections: { east: s3, west: { ...s3, endpoint: 'https://s3.west.example' } },
        databases: {
          knowledge: { genericDatabase: { dbConnRef: 'other', spaceConnRef: 'west', dbName: 'kn_generic', bucket: 'b-acme' } },
          runtime: { dynamicTenants: { enabled: true, dbConnRef: 'main', spaceConnRef: 'east', dbNameTemplate: 'rt_{tenantId}', bucketTemplate: 'b-{tenantId}' } },
        },
      }),
    );
    // West's b-acme is another account's bucket: east's may have the same name.
    expect(router.resolve(rt('acme')).blobs.records).toEqual({ bucket: 'b-acme', prefix: 'records' });
  });

  it('lets a disabled section claim no name', () => {
    const router = new Router(
      loadConfig({
        ...local,
        databases: {
          runtime: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}' } },
          messaging: { dynamicTenants: { enabled: false, dbConnRef: 'main', dbNameTemplate: 'rt_m_{tenantId}', validation: { pattern: '[0-9]+' } } },
        },
      }),
    );
    expect(router.resolve(rt('m_42')).dbName).toBe('rt_m_42');
    expect(router.dynamicConnections()).toEqual(['main']);
    expect(router.databaseNamed('main', 'rt_m_42')?.databaseType).toBe('runtime');
  });
});

describe('dynamic tenants: where each section keeps its names', () => {
  it('gives a section on S3 without a bucketTemplate no localStorage folder, so a local section may use the same template', () => {
    const router = new Router(
      loadConfig({
        ...local,
        spacesConnections: { shared: { ...s3, buckets: { records: 'xr-records', versions: 'xr-versions', content: 'xr-content', backups: 'xr-backups' } } },
        databases: {
          runtime: { dynamicTenants: { enabled: true, dbConnRef: 'main', spaceConnRef: 'shared', dbNameTemplate: 'x_{tenantId}' } },
          knowledge: { dynamicTenants: { enabled: true, dbConnRef: 'other', dbNameTemplate: 'x_{tenantId}' } },
        },
      }),
    );
    expect(router.resolve(rt('acme')).blobs.records).toEqual({ bucket: 'xr-records', prefix: 'records' });
    expect(router.resolve({ databaseType: 'knowledge', tier: 'tenant', tenantId: 'acme', collection: 'c' }).blobs.records).toEqual({ bucket: 'x_acme', prefix: 'records' });
  });

  it('refuses a name another section gives the same tenant id, and checks no analytics name a section has no template for', () => {
    // "a{tenantId}b" gives tenant "b" the folder "abb"; so does knowledge's "ab{tenantId}" to its own tenant "b".
    const router = new Router(
      loadConfig({
        ...local,
        databases: {
          runtime: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'a{tenantId}b' } },
          knowledge: { dynamicTenants: { enabled: true, dbConnRef: 'other', dbNameTemplate: 'ab{tenantId}', validation: { pattern: 'b+' } } },
          metadata: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'u{tenantId}' } },
        },
      }),
    );
    expect(thrown(ValidationError, () => router.resolve(rt('b'))).message).toContain(
      'its localStorage folder "abb" is also what databases.knowledge.dynamicTenants.dbNameTemplate gives the tenant "b"',
    );
    expect(router.resolve(rt('c')).dbName).toBe('acb');
    // No analytics template: the tenant's analytics database is its database, and nothing else is checked for it.
    expect(router.resolve({ databaseType: 'metadata', tier: 'tenant', tenantId: 'x', collection: 'c' })).toMatchObject({ dbName: 'ux', analyticsDbName: 'ux' });
  });

  it('refuses a tenant whose analytics database name would not be valid', () => {
    const router = new Router(
      loadConfig({
        ...local,
        databases: { runtime: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'r{tenantId}', analyticsDbNameTemplate: 'analytics_with_a_rather_long_prefix_{tenantId}' } } },
      }),
    );
    const tenantId = 'tenant-with-a-long-name-0123456789';
    expect(thrown(ValidationError, () => router.resolve(rt(tenantId))).message).toBe(
      `Tenant "${tenantId}" is refused for runtime dynamic tenants: analyticsDbNameTemplate gives "analytics_with_a_rather_long_prefix_${tenantId}", which is not a valid dbName (a letter or digit then up to 62 letters, digits, "_" or "-")`,
    );
    expect(router.resolve(rt('short')).analyticsDbName).toBe('analytics_with_a_rather_long_prefix_short');
  });

  it('says which tenants are configured when dynamicTenants is disabled', () => {
    const off = new Router(
      loadConfig({
        ...local,
        databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'main', dbName: 'rt_acme' }], dynamicTenants: { enabled: false, dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}' } } },
      }),
    );
    expect(thrown(RouteNotFoundError, () => off.resolve(rt('anyone'))).message).toBe(
      'No runtime database is configured for tenant "anyone" (configured: tenant "acme"); dynamicTenants is disabled',
    );
  });
});

describe('dynamic tenants: databaseNamed, which repair and the counters use', () => {
  const router = lazy(() => new Router(
    loadConfig({
      ...local,
      databases: {
        runtime: {
          tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'main', dbName: 'custom_acme', analyticsDbName: 'custom_acme_stats' }],
          dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}', analyticsDbNameTemplate: 'an_{tenantId}', validation: { maxLength: 10 } },
        },
        knowledge: { genericDatabase: { dbConnRef: 'other', dbName: 'kn_generic' } },
        metadata: { dynamicTenants: { enabled: false, dbConnRef: 'other', dbNameTemplate: 'md_{tenantId}' } },
      },
    }),
  ));

  it('names the configured database, by its name or its analytics database\'s, on its own connection only', () => {
    expect(router.databaseNamed('main', 'custom_acme')).toMatchObject({ databaseType: 'runtime', tier: 'tenant', tenantId: 'acme', dbName: 'custom_acme' });
    expect(router.databaseNamed('main', 'custom_acme_stats')).toMatchObject({ tenantId: 'acme', dbName: 'custom_acme', analyticsDbName: 'custom_acme_stats' });
    expect(router.databaseNamed('other', 'kn_generic')).toMatchObject({ databaseType: 'knowledge', tier: 'generic', dbName: 'kn_generic' });
    expect(router.databaseNamed('other', 'custom_acme')).toBeNull();
    expect(router.databaseNamed('main', 'kn_generic')).toBeNull();
  });

  it('names the dynamic tenant whose template gives the name, as its database or its analytics database', () => {
    expect(router.databaseNamed('main', 'rt_globex')).toStrictEqual(router.cachedDynamicDatabases().find((d) => d.tenantId === 'globex'));
    expect(router.databaseNamed('main', 'rt_globex')).toMatchObject({ databaseType: 'runtime', tier: 'tenant', tenantId: 'globex', dbName: 'rt_globex', analyticsDbName: 'an_globex' });
    expect(router.databaseNamed('main', 'an_initech')).toMatchObject({ tenantId: 'initech', dbName: 'rt_initech', analyticsDbName: 'an_initech' });
  });

  it('names no tenant for a name of a configured tenant\'s template, a refused tenant, another connection, a disabled section or no template', () => {
    // acme is configured: rt_acme is no database of it, and no dynamic tenant may have it.
    expect(router.databaseNamed('main', 'rt_acme')).toBeNull();
    expect(router.databaseNamed('main', 'an_acme')).toBeNull();
    // The section refuses ids longer than 10 characters.
    expect(router.databaseNamed('main', 'rt_averyverylongtenant')).toBeNull();
    expect(router.databaseNamed('other', 'rt_globex')).toBeNull();
    expect(router.databaseNamed('other', 'md_globex')).toBeNull();
    expect(router.databaseNamed('main', 'something_else')).toBeNull();
    // A section without an analytics template: a name its database template does not give is no tenant's.
    const plain = new Router(loadConfig({ ...local, databases: { runtime: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}' } } } }));
    expect(plain.databaseNamed('main', 'an_globex')).toBeNull();
    expect(plain.databaseNamed('main', 'rt_globex')).toMatchObject({ tenantId: 'globex', analyticsDbName: 'rt_globex' });
  });

  it('lists the connections of enabled sections once each', () => {
    expect(router.dynamicConnections()).toEqual(['main']);
    const two = new Router(
      loadConfig({
        ...local,
        databases: {
          runtime: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}' } },
          knowledge: { dynamicTenants: { enabled: true, dbConnRef: 'other', dbNameTemplate: 'kn_{tenantId}' } },
          metadata: { dynamicTenants: { enabled: true, dbConnRef: 'other', dbNameTemplate: 'md_{tenantId}' } },
        },
      }),
    );
    expect(two.dynamicConnections()).toEqual(['main', 'other']);
  });
});

describe('dynamic tenants: the cache on a refusal', () => {
  it('holds nothing for a tenant it refuses: a miss adds no entry', () => {
    const router = new Router(
      loadConfig({
        ...local,
        databases: { runtime: { dynamicTenants: { enabled: true, dbConnRef: 'main', dbNameTemplate: 'rt_{tenantId}', cacheSize: 3, validation: { pattern: '[a-z0-9-]+' } } } },
      }),
    );
    router.resolve(rt('t-0'));
    for (const tenantId of ['UPPER', 'Mixed-1', 'UPPER']) thrown(ValidationError, () => router.resolve(rt(tenantId)));
    expect(router.dynamicCacheSize).toBe(1);
    expect(router.cachedDynamicDatabases().map((d) => d.tenantId)).toEqual(['t-0']);
    // The refused ones took no room: three tenants still fit.
    router.resolve(rt('t-1'));
    router.resolve(rt('t-2'));
    expect(router.cachedDynamicDatabases().map((d) => d.tenantId)).toEqual(['t-0', 't-1', 't-2']);
  });
});
