import { describe, expect, it } from 'vitest';
import { postgresOptions } from '../../core/adapters/postgres/postgres-settings.js';
import { XronoxConfigBuilder } from '../../core/config/builder.js';
import { loadConfig, type XronoxConfig } from '../../core/config/load.js';
import { createDevConfig, createMinimalConfig, createProductionConfig } from '../../core/config/presets.js';
import { ConfigError, XronoxError } from '../../core/errors.js';
import { Router } from '../../core/routing/router.js';
import { configError } from '../support/errors.js';

/** Runs `fn`, expects a `ConfigError`, returns it. */

const paths = (err: ConfigError) => err.issues.map((i) => i.path);
const issueAt = (err: ConfigError, path: string) => err.issues.find((i) => i.path === path);

/** A small valid config; tests spread over it. */
const local = {
  dbConnections: { main: { sqlitePath: '/tmp/xronox-test.sqlite' } },
  localStorage: { basePath: '/tmp/xronox-test-blobs', enabled: true },
};

/** Every section of product docs 004 (README v2.0) and 001 (storage architecture), in one config. */
function documentedConfig() {
  return {
    dbConnections: {
      'mongo-primary': { mongoUri: 'mongodb+srv://user:pass@primary-cluster.mongodb.net/?retryWrites=true&w=majority' },
      'mongo-tenant-a': { mongoUri: 'mongodb+srv://user:pass@tenant-a-cluster.mongodb.net' },
      'mongo-analytics': { mongoUri: 'mongodb+srv://user:pass@analytics-cluster.mongodb.net' },
    },
    spacesConnections: {
      's3-primary': {
        endpoint: 'https://s3.amazonaws.com',
        region: 'us-east-1',
        accessKey: 'AKIA-test',
        secretKey: 'secret-test',
        buckets: { records: 'xronox-records', versions: 'xronox-versions', content: 'xronox-content', backups: 'xronox-backups' },
        folderPrefixes: { records: 'records', versions: 'versions', content: 'content', backups: 'backups' },
      },
      's3-tenant-a': {
        endpoint: 'https://tenant-a-bucket.s3.amazonaws.com',
        region: 'us-east-1',
        accessKey: 'tenant-a-key',
        secretKey: 'tenant-a-secret',
        forcePathStyle: true,
        bucket: 'chronos-tenant-a',
      },
    },
    databases: {
      metadata: {
        genericDatabase: { dbConnRef: 'mongo-primary', spaceConnRef: 's3-primary', bucket: 'chronos-metadata', dbName: 'chronos_metadata_generic' },
        domainsDatabases: [
          { domain: 'healthcare', dbConnRef: 'mongo-primary', spaceConnRef: 's3-primary', bucket: 'chronos-metadata-healthcare', dbName: 'chronos_metadata_healthcare' },
        ],
        tenantDatabases: [
          { tenantId: 'tenant-a', dbConnRef: 'mongo-tenant-a', spaceConnRef: 's3-tenant-a', bucket: 'chronos-metadata-tenant-a', dbName: 'chronos_metadata_tenant_a' },
        ],
      },
      knowledge: {
        genericDatabase: {
          dbConnRef: 'mongo-primary',
          spaceConnRef: 's3-primary',
          recordsBucket: 'xronox-knowledge-records',
          contentBucket: 'xronox-knowledge-content',
          backupsBucket: 'xronox-knowledge-backups',
          dbName: 'athenix_knowledge',
        },
        domainsDatabases: [
          { domain: 'finance', dbConnRef: 'mongo-primary', spaceConnRef: 's3-primary', bucket: 'chronos-knowledge-finance', dbName: 'chronos_knowledge_finance' },
        ],
        tenantDatabases: [
          { tenantId: 'tenant-b', dbConnRef: 'mongo-primary', spaceConnRef: 's3-primary', bucket: 'chronos-knowledge-tenant-b', dbName: 'chronos_knowledge_tenant_b' },
        ],
      },
      runtime: {
        tenantDatabases: [
          {
            tenantId: 'tenant-a',
            dbConnRef: 'mongo-primary',
            spaceConnRef: 's3-primary',
            recordsBucket: 'xronox-runtime-records',
            versionsBucket: 'xronox-runtime-versions',
            contentBucket: 'xronox-runtime-content',
            backupsBucket: 'xronox-runtime-backups',
            dbName: 'athenix_runtime_tenant_a',
            analyticsDbName: 'athenix_analytics_tenant_a',
          },
          {
            tenantId: 'tenant-b',
            dbConnRef: 'mongo-tenant-a',
            spaceConnRef: 's3-tenant-a',
            bucket: 'chronos-runtime-tenant-b',
            dbName: 'chronos_runtime_tenant_b',
            analyticsDbName: 'chronos_analytics_tenant_b',
          },
        ],
      },
      messaging: {
        dbConnRef: 'mongo-primary',
        spaceConnRef: 's3-primary',
        recordsBucket: 'xronox-messaging-records',
        contentBucket: 'xronox-messaging-content',
        backupsBucket: 'xronox-messaging-backups',
        dbName: 'athenix_messaging',
      },
      identities: {
        dbConnRef: 'mongo-primary',
        spaceConnRef: 's3-primary',
        recordsBucket: 'xronox-identities-records',
        contentBucket: 'xronox-identities-content',
        backupsBucket: 'xronox-identities-backups',
        dbName: 'athenix_identities',
      },
      logs: {
        dbConnRef: 'mongo-primary',
        spaceConnRef: 's3-primary',
        recordsBucket: 'xronox-logs-records',
        contentBucket: 'xronox-logs-content',
        dbName: 'athenix_logs',
      },
    },
    localStorage: { basePath: './data', enabled: false },
    routing: { hashAlgo: 'rendezvous' },
    retention: { ver: { days: 90, maxPerItem: 50 }, counters: { days: 30, weeks: 12, months: 6 } },
    collectionMaps: {
      users: { indexedProps: ['email', 'tenantId'] },
      financial_records: {
        indexedProps: ['accountId', 'transactionId', 'amount', 'date'],
        validation: { requiredIndexed: ['accountId', 'transactionId', 'amount'] },
      },
      documents: { indexedProps: [], base64Props: { file: { contentType: 'application/pdf', preferredText: false, textCharset: 'utf-8' } } },
      activity_logs: { indexedProps: ['agentId', 'timestamp', 'action'], s3Offload: { enabled: true, olderThan: 30 } },
    },
    counterRules: { rules: [{ name: 'activeUsers', on: ['CREATE', 'UPDATE'], scope: 'meta', when: { status: 'active' } }] },
    devShadow: { enabled: true, ttlHours: 24, maxBytesPerDoc: 1024 * 1024 },
    logicalDelete: { enabled: true },
    versioning: { enabled: true },
    writeOptimization: { batchSize: 1000, debounceMs: 100, compressionEnabled: true },
    fallback: { enabled: true, maxRetries: 3, retryDelayMs: 100, maxDelayMs: 5000, deadLetterCollection: 'chronos_fallback_dead' },
    transactions: { enabled: true, autoDetect: true },
    limits: { maxDocumentBytes: 2 * 1024 * 1024 },
  };
}

describe('loadConfig: accepted shapes', () => {
  it('parses the full documented config, every section included', () => {
    const config = loadConfig(documentedConfig());
    const { databases } = config;
    expect(databases.metadata?.genericDatabase?.dbName).toBe('chronos_metadata_generic');
    expect(databases.metadata?.domainsDatabases?.[0]?.domain).toBe('healthcare');
    expect(databases.metadata?.tenantDatabases?.[0]?.dbConnRef).toBe('mongo-tenant-a');
    expect(databases.knowledge?.genericDatabase).toEqual({
      dbConnRef: 'mongo-primary',
      spaceConnRef: 's3-primary',
      recordsBucket: 'xronox-knowledge-records',
      contentBucket: 'xronox-knowledge-content',
      backupsBucket: 'xronox-knowledge-backups',
      dbName: 'athenix_knowledge',
    });
    expect(databases.knowledge?.domainsDatabases?.[0]?.dbName).toBe('chronos_knowledge_finance');
    expect(databases.runtime?.tenantDatabases.map((t) => [t.tenantId, t.analyticsDbName])).toEqual([
      ['tenant-a', 'athenix_analytics_tenant_a'],
      ['tenant-b', 'chronos_analytics_tenant_b'],
    ]);
    expect(databases.runtime?.tenantDatabases[0]?.versionsBucket).toBe('xronox-runtime-versions');
    // The single-object form of messaging, identities and logs becomes the generic database.
    expect(databases.messaging?.genericDatabase?.dbName).toBe('athenix_messaging');
    expect(databases.identities?.genericDatabase?.recordsBucket).toBe('xronox-identities-records');
    expect(databases.logs).toEqual({
      genericDatabase: {
        dbConnRef: 'mongo-primary',
        spaceConnRef: 's3-primary',
        recordsBucket: 'xronox-logs-records',
        contentBucket: 'xronox-logs-content',
        dbName: 'athenix_logs',
      },
    });
    expect(config.spacesConnections['s3-primary']?.folderPrefixes?.records).toBe('records');
    expect(config.spacesConnections['s3-tenant-a']?.forcePathStyle).toBe(true);
    expect(config.collectionMaps.activity_logs?.s3Offload).toEqual({ enabled: true, olderThan: 30 });
    expect(config.collectionMaps.documents?.base64Props?.file?.contentType).toBe('application/pdf');
    expect(config.counterRules?.rules?.[0]?.name).toBe('activeUsers');
    expect(config.retention?.counters?.months).toBe(6);
    expect(config.fallback?.deadLetterCollection).toBe('chronos_fallback_dead');
    expect(config.limits?.maxDocumentBytes).toBe(2 * 1024 * 1024);
  });

  it('applies defaults: no spaces connections, no collection maps, logical delete and versioning on', () => {
    const config = loadConfig({ ...local, databases: {} });
    expect(config.spacesConnections).toEqual({});
    expect(config.collectionMaps).toEqual({});
    expect(config.logicalDelete).toEqual({ enabled: true });
    expect(config.versioning).toEqual({ enabled: true });
  });

  it('accepts the messaging document example: empty spaceConnRef and bucket mean "none", blobs go to localStorage', () => {
    const config = loadConfig({
      dbConnections: { 'mongo-primary': { mongoUri: 'mongodb://localhost:27017' } },
      spacesConnections: {},
      localStorage: { basePath: './data', enabled: true },
      databases: {
        messaging: {
          tenantDatabases: [
            { tenantId: 'default', dbConnRef: 'mongo-primary', spaceConnRef: '', bucket: '', dbName: 'chronos_messaging_default' },
            { tenantId: 'tenant-a', dbConnRef: 'mongo-primary', spaceConnRef: '', bucket: '', dbName: 'chronos_messaging_tenant_a' },
          ],
        },
      },
    });
    expect(config.databases.messaging?.tenantDatabases?.[0]).toEqual({
      tenantId: 'default',
      dbConnRef: 'mongo-primary',
      dbName: 'chronos_messaging_default',
    });
  });

  /** The messaging configuration exactly as the Chronow requirements document (product doc 003) writes it. */
  const chronowMessaging = () => ({
    dbConnections: { 'mongo-primary': { mongoUri: 'mongodb://localhost:27017' } },
    spacesConnections: {},
    databases: {
      messaging: {
        tenantDatabases: [
          { tenantId: 'default', dbConnRef: 'mongo-primary', spaceConnRef: '', bucket: '', dbName: 'chronos_messaging_default' },
          { tenantId: 'tenant-a', dbConnRef: 'mongo-primary', spaceConnRef: '', bucket: '', dbName: 'chronos_messaging_tenant_a' },
        ],
      },
    },
  });

  it('accepts the Chronow messaging configuration as written, without localStorage: an empty spaceConnRef means no object storage', () => {
    const config = loadConfig(chronowMessaging());
    expect(config.databases.messaging?.tenantDatabases?.[1]).toEqual({ tenantId: 'tenant-a', dbConnRef: 'mongo-primary', dbName: 'chronos_messaging_tenant_a' });
    // No blob location at all: every document lives in the database.
    const route = new Router(config).resolve({ databaseType: 'messaging', tier: 'tenant', tenantId: 'tenant-a', collection: 'messages' });
    expect({ spaceConnRef: route.spaceConnRef, blobs: route.blobs }).toEqual({ spaceConnRef: null, blobs: {} });
    // Identities likewise; dynamic messaging tenants too.
    loadConfig({ ...chronowMessaging(), databases: { identities: { tenantDatabases: [{ tenantId: 'a', dbConnRef: 'mongo-primary', spaceConnRef: '', dbName: 'ids_a' }] } } });
    const dynamic = loadConfig({ ...chronowMessaging(), databases: { messaging: { dynamicTenants: { enabled: true, dbConnRef: 'mongo-primary', spaceConnRef: '', dbNameTemplate: 'msg_{tenantId}' } } } });
    expect(new Router(dynamic).resolve({ databaseType: 'messaging', tier: 'tenant', tenantId: 'new-co', collection: 'topics' }).blobs).toEqual({});
  });

  it('still needs object storage for the types that keep objects, and refuses a bucket where there is none', () => {
    const types = { runtime: 'tenantDatabases', knowledge: 'genericDatabase', metadata: 'genericDatabase', logs: 'genericDatabase' } as const;
    for (const [type, key] of Object.entries(types)) {
      const entry = { ...(key === 'tenantDatabases' ? { tenantId: 'a' } : {}), dbConnRef: 'mongo-primary', spaceConnRef: '', dbName: `${type}_db` };
      const err = configError(() => loadConfig({ ...chronowMessaging(), databases: { [type]: { [key]: key === 'tenantDatabases' ? [entry] : entry } } }));
      expect(err.issues.map((i) => i.message), type).toEqual(['is missing and localStorage is not enabled: give a spaces connection or enable localStorage for blobs']);
    }
    const withBucket = chronowMessaging();
    withBucket.databases.messaging.tenantDatabases[0]!.bucket = 'chronow-msgs';
    const err = configError(() => loadConfig(withBucket));
    expect(err.issues).toEqual([{ path: 'databases.messaging.tenantDatabases[0].bucket', message: expect.stringContaining('has no object storage') }]);
  });

  // Product doc 001 (section 4) documents `messaging: { ..., captureDeliveries: false }`.
  it('accepts captureDeliveries on the generic messaging database, as product doc 001 shows', () => {
    const config = loadConfig({
      ...local,
      databases: { messaging: { dbConnRef: 'main', dbName: 'athenix_messaging', captureDeliveries: false } },
    });
    expect(config.databases.messaging?.genericDatabase).toMatchObject({ captureDeliveries: false });
  });
});

describe('loadConfig: rejected shapes', () => {
  it('rejects input that is not an object with a ConfigError, not a TypeError', () => {
    for (const input of [null, undefined, 'config', 42, []]) {
      const err = configError(() => loadConfig(input));
      expect(err.code).toBe('CONFIG_INVALID');
      expect(err).toBeInstanceOf(XronoxError);
    }
  });

  it('rejects hostile nesting depth with a ConfigError naming the path, not a stack overflow', () => {
    let deep: unknown = {};
    for (let i = 0; i < 100_000; i++) deep = [deep];
    let nested: Record<string, unknown> = {};
    const root = nested;
    for (let i = 0; i < 5000; i++) nested = (nested.x = {}) as Record<string, unknown>;
    for (const input of [deep, { collectionMaps: root }]) {
      const err = configError(() => loadConfig(input));
      expect(err.issues[0]!.message).toMatch(/nested deeper than 64 levels/);
    }
    expect(configError(() => loadConfig({ collectionMaps: root })).issues[0]!.path).toMatch(/^collectionMaps\.x\.x\./);
    // Depth reached through shared references counts; cycles do not.
    let chain: Record<string, unknown> = {};
    const chainRoot = chain;
    const shared = { x: 1 };
    for (let i = 0; i < 200; i++) {
      chain.ref = shared;
      chain = (chain.next = {}) as Record<string, unknown>;
    }
    chain.last = shared;
    expect(configError(() => loadConfig({ collectionMaps: chainRoot })).issues[0]!.message).toMatch(/nested deeper than 64 levels/);
    // Shared and cyclic references are not depth.
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(configError(() => loadConfig({ collectionMaps: { orders: cyclic } })).issues[0]!.message).not.toMatch(/nested deeper/);
  });

  it('rejects unknown keys everywhere, naming the key and the dotted path of its object', () => {
    const err = configError(() =>
      loadConfig({
        ...local,
        verisoning: { enabled: false },
        spacesConnections: { s3: { region: 'r', accessKey: 'a', secretKey: 's', bukets: {} } },
        databases: {
          knowledge: { genericDatabase: { dbConnRef: 'main', dbName: 'k', dbname: 'typo' } },
          runtime: { tenantDatabases: [{ tenantId: 't', dbConnRef: 'main', dbName: 'r', analyticsDb: 'x' }] },
          audit: {},
        },
        collectionMaps: { orders: { indexedProps: [], indexProps: [] } },
      }),
    );
    const expected: Array<[string, string]> = [
      ['', 'verisoning'],
      ['spacesConnections.s3', 'bukets'],
      ['databases.knowledge.genericDatabase', 'dbname'],
      ['databases.runtime.tenantDatabases[0]', 'analyticsDb'],
      ['databases', 'audit'],
      ['collectionMaps.orders', 'indexProps'],
    ];
    for (const [path, key] of expected) {
      expect(err.issues.find((i) => i.path === path && i.message.includes(`"${key}"`)), `${path} ${key}`).toBeDefined();
    }
  });

  it('reports several problems together in one ConfigError, each with its dotted path', () => {
    const err = configError(() =>
      loadConfig({
        dbConnections: { main: { sqlitePath: '/tmp/x.sqlite' }, both: { mongoUri: 'mongodb://h', sqlitePath: '/tmp/y' } },
        spacesConnections: { s3: { endpoint: 'not a url', region: 'r', accessKey: 'a', secretKey: 's', buckets: { records: 'Upper_Case' } } },
        localStorage: { basePath: '/tmp/b', enabled: true },
        databases: {
          knowledge: { genericDatabase: { dbConnRef: 'main', dbName: '../etc' } },
          runtime: {
            tenantDatabases: [
              { tenantId: 'a', dbConnRef: 'main', dbName: 'rt_a' },
              { tenantId: 'b/c', dbConnRef: 'main', dbName: 'rt_b' },
              { tenantId: 'c', dbConnRef: 'mongo-missing', dbName: 'rt_c' },
            ],
          },
        },
        retention: { ver: { days: -1 } },
      }),
    );
    expect(paths(err)).toEqual(
      expect.arrayContaining([
        'dbConnections.both',
        'spacesConnections.s3.endpoint',
        'spacesConnections.s3.buckets.records',
        'databases.knowledge.genericDatabase.dbName',
        'databases.runtime.tenantDatabases[1].tenantId',
        'databases.runtime.tenantDatabases[2].dbConnRef',
        'retention.ver.days',
      ]),
    );
    expect(err.issues.length).toBeGreaterThanOrEqual(7);
    expect(err.message).toContain(`(${err.issues.length} problems)`);
    expect(err.message).toContain('databases.runtime.tenantDatabases[2].dbConnRef: ');
  });

  it('names an unknown dbConnRef or spaceConnRef together with the connections that exist', () => {
    const err = configError(() =>
      loadConfig({
        dbConnections: { main: { sqlitePath: '/tmp/x' }, backup: { sqlitePath: '/tmp/y' } },
        spacesConnections: { 's3-primary': { region: 'r', accessKey: 'a', secretKey: 's' } },
        databases: {
          runtime: { tenantDatabases: [{ tenantId: 't', dbConnRef: 'mian', spaceConnRef: 's3-primay', dbName: 'rt' }] },
        },
      }),
    );
    const db = issueAt(err, 'databases.runtime.tenantDatabases[0].dbConnRef');
    expect(db?.message).toContain('"mian"');
    expect(db?.message).toContain('"main", "backup"');
    const space = issueAt(err, 'databases.runtime.tenantDatabases[0].spaceConnRef');
    expect(space?.message).toContain('"s3-primay"');
    expect(space?.message).toContain('"s3-primary"');
  });

  it('says "none" when no connections of that kind exist', () => {
    const err = configError(() =>
      loadConfig({ ...local, databases: { knowledge: { genericDatabase: { dbConnRef: 'main', spaceConnRef: 's3', dbName: 'k' } } } }),
    );
    expect(issueAt(err, 'databases.knowledge.genericDatabase.spaceConnRef')?.message).toContain('(defined: none)');
  });

  it('requires a spaces connection or enabled localStorage for every database', () => {
    const entry = { databases: { knowledge: { genericDatabase: { dbConnRef: 'main', dbName: 'k' } } } };
    for (const localStorage of [undefined, { basePath: '/tmp/b', enabled: false }]) {
      const err = configError(() => loadConfig({ dbConnections: local.dbConnections, localStorage, ...entry }));
      expect(issueAt(err, 'databases.knowledge.genericDatabase.spaceConnRef')?.message).toMatch(/localStorage/);
    }
    expect(() => loadConfig({ ...local, ...entry })).not.toThrow();
  });

  it('rejects versionsBucket on knowledge, saying knowledge is not versioned', () => {
    const err = configError(() =>
      loadConfig({
        ...local,
        databases: { knowledge: { genericDatabase: { dbConnRef: 'main', dbName: 'k', versionsBucket: 'xronox-knowledge-versions' } } },
      }),
    );
    expect(paths(err)).toEqual(['databases.knowledge.genericDatabase.versionsBucket']);
    expect(err.message).toContain('knowledge is not versioned');
  });

  it('rejects versionsBucket on every unversioned type and tier, and on runtime when versioning is off', () => {
    const err = configError(() =>
      loadConfig({
        ...local,
        databases: {
          metadata: { domainsDatabases: [{ domain: 'd', dbConnRef: 'main', dbName: 'm', versionsBucket: 'vvv' }] },
          messaging: { tenantDatabases: [{ tenantId: 't', dbConnRef: 'main', dbName: 'g', versionsBucket: 'vvv' }] },
          identities: { dbConnRef: 'main', dbName: 'i', versionsBucket: 'vvv' },
          logs: { dbConnRef: 'main', dbName: 'l', versionsBucket: 'vvv' },
        },
      }),
    );
    expect(paths(err).sort()).toEqual(
      [
        'databases.metadata.domainsDatabases[0].versionsBucket',
        'databases.messaging.tenantDatabases[0].versionsBucket',
        'databases.identities.versionsBucket',
        'databases.logs.versionsBucket',
      ].sort(),
    );
    const runtime = { tenantDatabases: [{ tenantId: 't', dbConnRef: 'main', dbName: 'r', versionsBucket: 'vvv' }] };
    expect(() => loadConfig({ ...local, databases: { runtime } })).not.toThrow();
    const off = configError(() => loadConfig({ ...local, versioning: { enabled: false }, databases: { runtime } }));
    expect(issueAt(off, 'databases.runtime.tenantDatabases[0].versionsBucket')?.message).toContain('versioning.enabled is false');
  });

  it('reports paths of the single-object section form as the user wrote them', () => {
    const err = configError(() =>
      loadConfig({
        ...local,
        databases: {
          logs: { dbConnRef: 'main', dbName: 'bad name', extra: true },
          identities: { dbConnRef: 'nowhere', dbName: 'ids' },
        },
      }),
    );
    expect(paths(err)).toEqual(expect.arrayContaining(['databases.logs.dbName', 'databases.logs', 'databases.identities.dbConnRef']));
    expect(err.message).not.toContain('genericDatabase');
  });

  it('rejects a tenant configured twice for one type, but allows the same tenant across types', () => {
    const tenant = (tenantId: string, dbName: string) => ({ tenantId, dbConnRef: 'main', dbName });
    const err = configError(() =>
      loadConfig({
        ...local,
        databases: {
          runtime: { tenantDatabases: [tenant('acme', 'rt_1'), tenant('globex', 'rt_2'), tenant('acme', 'rt_3')] },
          knowledge: { tenantDatabases: [tenant('acme', 'kn_1')], domainsDatabases: [{ domain: 'x', dbConnRef: 'main', dbName: 'kn_x' }, { domain: 'x', dbConnRef: 'main', dbName: 'kn_y' }] },
        },
      }),
    );
    expect(paths(err).sort()).toEqual(['databases.knowledge.domainsDatabases[1]', 'databases.runtime.tenantDatabases[2]']);
    expect(issueAt(err, 'databases.runtime.tenantDatabases[2]')?.message).toContain('tenant "acme" is configured twice');
    expect(issueAt(err, 'databases.runtime.tenantDatabases[2]')?.message).toContain('databases.runtime.tenantDatabases[0]');
  });

  it('rejects two databases sharing one (dbConnRef, dbName), across types too', () => {
    const err = configError(() =>
      loadConfig({
        dbConnections: { main: { sqlitePath: '/tmp/x' }, other: { sqlitePath: '/tmp/y' } },
        localStorage: local.localStorage,
        databases: {
          knowledge: { genericDatabase: { dbConnRef: 'main', dbName: 'shared' } },
          metadata: { genericDatabase: { dbConnRef: 'other', dbName: 'shared' } },
          logs: { dbConnRef: 'main', dbName: 'shared' },
        },
      }),
    );
    // metadata is on another connection, so its index is apart, but with blobs in localStorage
    // it would share knowledge's folder; logs shares knowledge's index database outright.
    expect(paths(err).sort()).toEqual(['databases.logs.dbName', 'databases.metadata.genericDatabase.dbName']);
    const logsIssue = err.issues.find((i) => i.path === 'databases.logs.dbName');
    expect(logsIssue?.message).toContain('databases.knowledge.genericDatabase');
    expect(logsIssue?.message).toContain('"main"');
    expect(err.issues.find((i) => i.path === 'databases.metadata.genericDatabase.dbName')?.message).toMatch(/share a folder/);
  });

  it('rejects requiredIndexed properties missing from indexedProps', () => {
    const err = configError(() =>
      loadConfig({
        ...local,
        databases: {},
        collectionMaps: { orders: { indexedProps: ['customerId', 'total'], validation: { requiredIndexed: ['customerId', 'status'] } } },
      }),
    );
    expect(paths(err)).toEqual(['collectionMaps.orders.validation.requiredIndexed[1]']);
    expect(err.issues[0]?.message).toContain('"status"');
    // An empty indexedProps indexes every top-level scalar, so any required property is indexed.
    expect(() =>
      loadConfig({ ...local, databases: {}, collectionMaps: { orders: { indexedProps: [], validation: { requiredIndexed: ['status'] } } } }),
    ).not.toThrow();
  });

  it('rejects collection map names and property names that are not safe names', () => {
    const err = configError(() =>
      loadConfig({ ...local, databases: {}, collectionMaps: { $where: { indexedProps: [] }, ok: { indexedProps: ['a..b', '$gt'] } } }),
    );
    expect(paths(err)).toEqual(expect.arrayContaining(['collectionMaps.$where', 'collectionMaps.ok.indexedProps[0]', 'collectionMaps.ok.indexedProps[1]']));
  });

  it('rejects counter rules whose `when` uses $where or other operators outside the safe set', () => {
    const err = configError(() =>
      loadConfig({
        ...local,
        databases: {},
        counterRules: {
          rules: [
            { name: 'ok', when: { status: { $in: ['a', 'b'] } } },
            { name: 'evil', when: { $where: 'sleep(1000)' } },
            { name: 'nested', when: { status: { $where: 'x' } } },
          ],
        },
      }),
    );
    expect(paths(err)).toEqual(['counterRules.rules[1].when', 'counterRules.rules[2].when']);
    expect(err.issues[0]?.message).toContain('$where');
  });

  it('requires exactly one of mongoUri, postgresUri or sqlitePath per connection', () => {
    const both = configError(() =>
      loadConfig({ dbConnections: { db: { mongoUri: 'mongodb://h', sqlitePath: '/tmp/x' } }, databases: {} }),
    );
    expect(paths(both)).toEqual(['dbConnections.db']);
    expect(both.message).toContain('exactly one of mongoUri, postgresUri or sqlitePath');
    const neither = configError(() => loadConfig({ dbConnections: { db: {} }, databases: {} }));
    expect(paths(neither)).toEqual(['dbConnections.db']);
  });
});

describe('loadConfig: legacy single bucket', () => {
  const s3 = { region: 'us-east-1', accessKey: 'a', secretKey: 's' };

  it('turns a connection\'s single bucket into one bucket per kind, explicit buckets winning', () => {
    const config = loadConfig({
      dbConnections: local.dbConnections,
      spacesConnections: {
        legacy: { ...s3, bucket: 'xronox-data' },
        mixed: { ...s3, bucket: 'xronox-data', buckets: { backups: 'xronox-glacier' } },
      },
      databases: {},
    });
    expect(config.spacesConnections.legacy).toEqual({
      ...s3,
      buckets: { records: 'xronox-data', versions: 'xronox-data', content: 'xronox-data', backups: 'xronox-data' },
    });
    expect(config.spacesConnections.mixed?.buckets).toEqual({
      records: 'xronox-data',
      versions: 'xronox-data',
      content: 'xronox-data',
      backups: 'xronox-glacier',
    });
  });

  it('turns a database\'s single bucket into per-kind buckets, with versions only for versioned types', () => {
    const config = loadConfig({
      dbConnections: local.dbConnections,
      spacesConnections: { s3 },
      databases: {
        knowledge: { genericDatabase: { dbConnRef: 'main', spaceConnRef: 's3', bucket: 'chronos-knowledge', dbName: 'k' } },
        runtime: {
          tenantDatabases: [{ tenantId: 't', dbConnRef: 'main', spaceConnRef: 's3', bucket: 'chronos-rt', recordsBucket: 'rt-records', dbName: 'r' }],
        },
      },
    });
    expect(config.databases.knowledge?.genericDatabase).toEqual({
      dbConnRef: 'main',
      spaceConnRef: 's3',
      dbName: 'k',
      recordsBucket: 'chronos-knowledge',
      contentBucket: 'chronos-knowledge',
      backupsBucket: 'chronos-knowledge',
    });
    expect(config.databases.runtime?.tenantDatabases[0]).toMatchObject({
      recordsBucket: 'rt-records',
      versionsBucket: 'chronos-rt',
      contentBucket: 'chronos-rt',
      backupsBucket: 'chronos-rt',
    });
    expect(config.databases.runtime?.tenantDatabases[0]).not.toHaveProperty('bucket');
  });

  it('routes a legacy single bucket with folder prefixes defaulting to the kind names', () => {
    const config = loadConfig({
      dbConnections: local.dbConnections,
      spacesConnections: { legacy: { ...s3, bucket: 'xronox-data' } },
      databases: {
        runtime: { tenantDatabases: [{ tenantId: 't', dbConnRef: 'main', spaceConnRef: 'legacy', dbName: 'r' }] },
        knowledge: { genericDatabase: { dbConnRef: 'main', spaceConnRef: 'legacy', bucket: 'chronos-knowledge', dbName: 'k' } },
      },
    });
    const router = new Router(config);
    expect(router.resolve({ databaseType: 'runtime', tier: 'tenant', tenantId: 't', collection: 'orders' }).blobs).toEqual({
      records: { bucket: 'xronox-data', prefix: 'records' },
      versions: { bucket: 'xronox-data', prefix: 'versions' },
      content: { bucket: 'xronox-data', prefix: 'content' },
      backups: { bucket: 'xronox-data', prefix: 'backups' },
    });
    expect(router.resolve({ databaseType: 'knowledge', tier: 'generic', collection: 'facts' }).blobs).toEqual({
      records: { bucket: 'chronos-knowledge', prefix: 'records' },
      content: { bucket: 'chronos-knowledge', prefix: 'content' },
      backups: { bucket: 'chronos-knowledge', prefix: 'backups' },
    });
  });
});

describe('loadConfig: the result', () => {
  it('is deeply frozen', () => {
    const config = loadConfig(documentedConfig());
    const mutations: Array<() => void> = [
      () => Object.assign(config, { versioning: { enabled: false } }),
      () => Object.assign(config.versioning, { enabled: false }),
      () => Object.assign(config.databases.runtime!.tenantDatabases[0]!, { dbName: 'hijacked' }),
      () => config.databases.runtime!.tenantDatabases.push(config.databases.runtime!.tenantDatabases[0]!),
      () => Object.assign(config.dbConnections['mongo-primary']!, { mongoUri: 'mongodb://evil' }),
      () => Object.assign(config.spacesConnections['s3-tenant-a']!.buckets!, { records: 'evil-bucket' }),
      () => Object.assign(config.collectionMaps, { injected: { indexedProps: [] } }),
      () => config.collectionMaps.users!.indexedProps.push('password'),
      () => Object.assign(config.counterRules!.rules![0]!.when, { status: 'any' }),
    ];
    for (const mutate of mutations) expect(mutate).toThrow(TypeError);
    expect(config.databases.runtime?.tenantDatabases[0]?.dbName).toBe('athenix_runtime_tenant_a');
  });

  // Counter rules' `when` is `z.unknown()`, which zod passes by reference.
  it('is deeply frozen even where the input held a shallow-frozen object', () => {
    const config = loadConfig({
      ...local,
      databases: {},
      counterRules: { rules: [{ name: 'r', when: { status: Object.freeze({ $in: ['a', 'b'] }) } }] },
    });
    const list = (config.counterRules?.rules?.[0]?.when.status as { $in: string[] }).$in;
    expect(Object.isFrozen(list)).toBe(true);
  });

  it('leaves the caller\'s input objects unfrozen', () => {
    const status = { $in: ['a', 'b'] };
    loadConfig({ ...local, databases: {}, counterRules: { rules: [{ name: 'r', when: { status } }] } });
    expect(Object.isFrozen(status)).toBe(false);
  });

  it('is a fixed point: a loaded config saved and loaded again is unchanged', () => {
    const config = loadConfig(documentedConfig());
    // JSON.stringify of a loaded config masks its secrets (see secrets.test.ts); structuredClone is its plain copy, secrets included.
    expect(loadConfig(JSON.parse(JSON.stringify(structuredClone(config))))).toEqual(config);
  });
});

describe('XronoxConfigBuilder', () => {
  /** The production example of product doc 001, written with the builder. */
  function documentedBuilder() {
    return new XronoxConfigBuilder()
      .addMongoConnection('primary', 'mongodb://localhost:27017')
      .addS3Connection('primary', {
        endpoint: 'https://s3.amazonaws.com',
        region: 'us-east-1',
        accessKey: 'key',
        secretKey: 'secret',
        buckets: { records: 'xronox-records', versions: 'xronox-versions', content: 'xronox-content', backups: 'xronox-backups' },
      })
      .addKnowledgeDatabase({
        type: 'generic',
        mongoRef: 'primary',
        s3Ref: 'primary',
        dbName: 'athenix_knowledge',
        recordsBucket: 'xronox-knowledge-records',
        contentBucket: 'xronox-knowledge-content',
        backupsBucket: 'xronox-knowledge-backups',
      })
      .addMetadataDatabase({ type: 'generic', mongoRef: 'primary', s3Ref: 'primary', dbName: 'athenix_metadata' })
      .addRuntimeDatabase({
        tenantId: 'acme-corp',
        mongoRef: 'primary',
        s3Ref: 'primary',
        dbName: 'athenix_runtime_acme',
        analyticsDbName: 'athenix_analytics_acme',
        versionsBucket: 'xronox-runtime-versions',
        enableVersioning: true,
      })
      .addMessagingDatabase({ mongoRef: 'primary', s3Ref: 'primary', dbName: 'athenix_messaging' })
      .addIdentitiesDatabase({ mongoRef: 'primary', s3Ref: 'primary', dbName: 'athenix_identities' })
      .addLogsDatabase({ mongoRef: 'primary', s3Ref: 'primary', dbName: 'athenix_logs', recordsBucket: 'xronox-logs-records' })
      .addCollectionMap('activity_logs', { indexedProps: ['agentId', 'timestamp', 'action'], s3Offload: { enabled: true, olderThan: 30 } });
  }

  it('builds the documented production example into the expected config', () => {
    const config = documentedBuilder().build();
    expect(config.dbConnections).toEqual({ primary: { mongoUri: 'mongodb://localhost:27017' } });
    expect(config.spacesConnections.primary?.buckets?.versions).toBe('xronox-versions');
    expect(config.databases.knowledge?.genericDatabase).toEqual({
      dbConnRef: 'primary',
      spaceConnRef: 'primary',
      dbName: 'athenix_knowledge',
      recordsBucket: 'xronox-knowledge-records',
      contentBucket: 'xronox-knowledge-content',
      backupsBucket: 'xronox-knowledge-backups',
    });
    expect(config.databases.runtime?.tenantDatabases).toEqual([
      {
        tenantId: 'acme-corp',
        dbConnRef: 'primary',
        spaceConnRef: 'primary',
        dbName: 'athenix_runtime_acme',
        analyticsDbName: 'athenix_analytics_acme',
        versionsBucket: 'xronox-runtime-versions',
        enableVersioning: true,
      },
    ]);
    expect(config.databases.messaging?.genericDatabase?.dbName).toBe('athenix_messaging');
    expect(config.databases.identities?.genericDatabase?.dbName).toBe('athenix_identities');
    expect(config.databases.logs?.genericDatabase?.recordsBucket).toBe('xronox-logs-records');
    expect(config.collectionMaps.activity_logs?.s3Offload?.olderThan).toBe(30);
    expect(Object.isFrozen(config.databases.runtime?.tenantDatabases[0])).toBe(true);
  });

  it('toJSON returns the plain input, which loads to the same config as build()', () => {
    const builder = documentedBuilder();
    const json = builder.toJSON();
    expect(json.databases.runtime?.tenantDatabases?.[0]).toEqual({
      tenantId: 'acme-corp',
      dbConnRef: 'primary',
      spaceConnRef: 'primary',
      dbName: 'athenix_runtime_acme',
      analyticsDbName: 'athenix_analytics_acme',
      versionsBucket: 'xronox-runtime-versions',
      enableVersioning: true,
    });
    // No `undefined` left behind by options the caller did not give.
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
    expect(JSON.parse(JSON.stringify(builder))).toEqual(json);
    expect(loadConfig(JSON.parse(JSON.stringify(builder)))).toEqual(builder.build());
    expect(Object.isFrozen(json)).toBe(false);
  });

  it('keeps its state private: changing toJSON() output or building does not change the builder', () => {
    const builder = new XronoxConfigBuilder().addEmbeddedConnection('local', '/tmp/x.sqlite').withLocalStorage('/tmp/blobs');
    builder.toJSON().dbConnections.local = { mongoUri: 'mongodb://evil' };
    builder.build();
    builder.addLogsDatabase({ mongoRef: 'local', dbName: 'logs' });
    const config = builder.build();
    expect(config.dbConnections.local).toEqual({ sqlitePath: '/tmp/x.sqlite' });
    expect(config.databases.logs?.genericDatabase?.dbName).toBe('logs');
  });

  it('places every tier: knowledge/metadata by type, messaging/identities/logs by tenantId', () => {
    const config = new XronoxConfigBuilder()
      .addEmbeddedConnection('local', '/tmp/x.sqlite')
      .withLocalStorage('/tmp/blobs')
      .addKnowledgeDatabase({ type: 'domain', domain: 'finance', dbConnRef: 'local', dbName: 'kn_finance' })
      .addKnowledgeDatabase({ type: 'tenant', tenantId: 'acme', dbConnRef: 'local', dbName: 'kn_acme' })
      .addMetadataDatabase({ type: 'tenant', tenantId: 'acme', dbConnRef: 'local', dbName: 'md_acme', bucket: 'legacy-bucket' })
      .addMessagingDatabase({ tenantId: 'acme', dbConnRef: 'local', dbName: 'msg_acme', captureDeliveries: true })
      .addIdentitiesDatabase({ tenantId: 'acme', dbConnRef: 'local', dbName: 'id_acme' })
      .addLogsDatabase({ tenantId: 'acme', dbConnRef: 'local', dbName: 'logs_acme' })
      .addLogsDatabase({ dbConnRef: 'local', dbName: 'logs' })
      .build();
    expect(config.databases.knowledge).toEqual({
      domainsDatabases: [{ domain: 'finance', dbConnRef: 'local', dbName: 'kn_finance' }],
      tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'kn_acme' }],
    });
    expect(config.databases.metadata?.tenantDatabases?.[0]).toMatchObject({ recordsBucket: 'legacy-bucket', backupsBucket: 'legacy-bucket' });
    expect(config.databases.messaging?.tenantDatabases).toEqual([
      { tenantId: 'acme', dbConnRef: 'local', dbName: 'msg_acme', captureDeliveries: true },
    ]);
    expect(config.databases.identities?.tenantDatabases?.[0]?.tenantId).toBe('acme');
    expect(config.databases.logs?.tenantDatabases?.[0]?.dbName).toBe('logs_acme');
    expect(config.databases.logs?.genericDatabase?.dbName).toBe('logs');
  });

  it('fails build() with one ConfigError listing every problem, the builder\'s own included', () => {
    const err = configError(() =>
      new XronoxConfigBuilder()
        .addMongoConnection('primary', 'mongodb://h')
        .addEmbeddedConnection('primary', '/tmp/x.sqlite')
        .addKnowledgeDatabase({ type: 'generic', mongoRef: 'primary', dbName: 'kn', versionsBucket: 'kn-versions' })
        .addKnowledgeDatabase({ type: 'generic', mongoRef: 'primary', dbName: 'kn2' })
        .addRuntimeDatabase({ tenantId: 'acme', mongoRef: 'missing', dbName: 'bad name' })
        .build(),
    );
    expect(paths(err)).toEqual(
      expect.arrayContaining([
        'dbConnections.primary',
        'databases.knowledge.genericDatabase',
        'databases.knowledge.genericDatabase.versionsBucket',
        'databases.runtime.tenantDatabases[0].dbConnRef',
        'databases.runtime.tenantDatabases[0].dbName',
        'databases.runtime.tenantDatabases[0].spaceConnRef',
      ]),
    );
    expect(err.message).toContain('knowledge is not versioned');
  });

  it('accepts dbConnRef/spaceConnRef as aliases of mongoRef/s3Ref and reports aliases that disagree', () => {
    const base = () =>
      new XronoxConfigBuilder()
        .addMongoConnection('primary', 'mongodb://h')
        .addS3Connection('s3', { region: 'r', accessKey: 'a', secretKey: 's', bucket: 'one-bucket' });
    const viaAlias = base().addLogsDatabase({ dbConnRef: 'primary', spaceConnRef: 's3', dbName: 'logs' }).build();
    const viaDoc = base().addLogsDatabase({ mongoRef: 'primary', s3Ref: 's3', dbName: 'logs' }).build();
    expect(viaAlias).toEqual(viaDoc);
    const err = configError(() => base().addLogsDatabase({ mongoRef: 'primary', s3Ref: 's3', spaceConnRef: 'other', dbName: 'logs' }).build());
    expect(paths(err)).toEqual(['databases.logs.genericDatabase.spaceConnRef']);
    expect(err.message).toContain('"s3"');
    expect(err.message).toContain('"other"');
  });

  it('rejects a tenantId on a generic database instead of dropping it', () => {
    const err = configError(() =>
      new XronoxConfigBuilder()
        .addEmbeddedConnection('local', '/tmp/x.sqlite')
        .withLocalStorage('/tmp/blobs')
        .addKnowledgeDatabase({ type: 'generic', tenantId: 'acme', mongoRef: 'local', dbName: 'kn' })
        .build(),
    );
    expect(err.issues[0]?.path).toBe('databases.knowledge.genericDatabase');
    expect(err.issues[0]?.message).toContain('tenantId');
  });

  it('sets the other top-level options', () => {
    const err = configError(() =>
      new XronoxConfigBuilder()
        .addEmbeddedConnection('local', '/tmp/x.sqlite')
        .withLocalStorage('/tmp/blobs')
        .set('versioning', { enabled: false })
        .addRuntimeDatabase({ tenantId: 'acme', mongoRef: 'local', dbName: 'rt', versionsBucket: 'rt-versions' })
        .withCounterRules([{ name: 'bad', when: { $where: '1' } }])
        .build(),
    );
    expect(paths(err)).toEqual(['databases.runtime.tenantDatabases[0].versionsBucket', 'counterRules.rules[0].when']);
    const config = new XronoxConfigBuilder()
      .addEmbeddedConnection('local', '/tmp/x.sqlite')
      .withLocalStorage('/tmp/blobs', false)
      .withRetention({ ver: { days: 30 } })
      .withCounterRules([{ name: 'active', when: { status: 'active' } }])
      .set('limits', { maxDocumentBytes: 4096 })
      .set('logicalDelete', { enabled: false })
      .build();
    expect(config.localStorage).toEqual({ basePath: '/tmp/blobs', enabled: false });
    expect(config.retention?.ver?.days).toBe(30);
    expect(config.counterRules?.rules?.[0]?.name).toBe('active');
    expect(config.limits?.maxDocumentBytes).toBe(4096);
    expect(config.logicalDelete.enabled).toBe(false);
  });
});

describe('presets', () => {
  /** Every (type, tier, key) a config routes, resolved through the router. */
  function routes(config: XronoxConfig) {
    return new Router(config)
      .databases()
      .map((d) => `${d.databaseType}/${d.tier}${d.tenantId ? `:${d.tenantId}` : ''} -> ${d.dbConnRef}/${d.dbName}`)
      .sort();
  }

  it('createMinimalConfig() uses an embedded SQLite file and a local blob folder', () => {
    const config = createMinimalConfig();
    expect(config.dbConnections).toEqual({ local: { sqlitePath: './.xronox-data/xronox.sqlite' } });
    expect(config.localStorage).toEqual({ basePath: './.xronox-data/blobs', enabled: true });
    expect(routes(config)).toEqual([
      'knowledge/generic -> local/xronox_knowledge',
      'logs/generic -> local/xronox_logs',
      'metadata/generic -> local/xronox_metadata',
      'runtime/tenant:default -> local/xronox_runtime_default',
    ]);
    expect(Object.isFrozen(config.databases)).toBe(true);
  });

  it('createMinimalConfig(uri) uses MongoDB for mongodb:// and mongodb+srv:// URIs and SQLite for anything else', () => {
    expect(createMinimalConfig('mongodb://localhost:27017').dbConnections).toEqual({ primary: { mongoUri: 'mongodb://localhost:27017' } });
    expect(createMinimalConfig('mongodb+srv://u:p@c.example.net').dbConnections.primary?.mongoUri).toBe('mongodb+srv://u:p@c.example.net');
    expect(createMinimalConfig('./app.sqlite').dbConnections).toEqual({ local: { sqlitePath: './app.sqlite' } });
    expect(createMinimalConfig('mongodb-cache.sqlite').dbConnections).toEqual({ local: { sqlitePath: 'mongodb-cache.sqlite' } });
    expect(createMinimalConfig('mongodb://h').databases.runtime?.tenantDatabases[0]?.dbConnRef).toBe('primary');
    configError(() => createMinimalConfig(''));
  });

  it('statementTimeoutMs: how long one statement of a postgresUri connection may take, 100 ms to 15 min, handed to both of its stores as the same pool options', () => {
    const base = { localStorage: { basePath: '/tmp/b', enabled: true }, databases: {} };
    const config = new XronoxConfigBuilder().addPostgresConnection('pg', 'postgres://h/db', { statementTimeoutMs: 5_000 }).withLocalStorage('/tmp/b').build();
    expect(config.dbConnections.pg).toEqual({ postgresUri: 'postgres://h/db', statementTimeoutMs: 5_000 });
    expect(postgresOptions(config.dbConnections.pg!)).toEqual({ pool: { statementTimeoutMillis: 5_000 } });
    expect(postgresOptions({ postgresUri: 'postgres://h/db', schemaPrefix: 'a_' })).toEqual({ schemaPrefix: 'a_' });
    for (const bad of [99, 900_001, 1.5, '30000']) {
      expect(configError(() => loadConfig({ ...base, dbConnections: { pg: { postgresUri: 'postgres://h/a', statementTimeoutMs: bad } } })).issues[0]?.path).toBe('dbConnections.pg.statementTimeoutMs');
    }
    expect(configError(() => loadConfig({ ...base, dbConnections: { s: { sqlitePath: '/tmp/x.sqlite', statementTimeoutMs: 1_000 } } })).issues).toContainEqual({
      path: 'dbConnections.s.statementTimeoutMs',
      message: 'applies to postgresUri connections only',
    });
  });

  it('schemaPrefix: two connections to one PostgreSQL database may not have nested prefixes (one schema name could be both stores\'), equal or disjoint ones may', () => {
    const base = { localStorage: { basePath: '/tmp/b', enabled: true }, databases: {} };
    const pg = (uri: string, schemaPrefix?: string) => ({ postgresUri: uri, ...(schemaPrefix === undefined ? {} : { schemaPrefix }) });
    const issues = configError(() => loadConfig({ ...base, dbConnections: { a: pg('postgres://u:secret@db.example:5432/app', 'app_'), b: pg('postgres://other@DB.example/app', 'app_x_') } })).issues;
    expect(issues).toEqual([
      {
        path: 'dbConnections.b.schemaPrefix',
        message: '"app_x_" starts with "app_", the prefix of dbConnections.a on the same PostgreSQL database, so one schema name could belong to both; give prefixes neither of which starts the other',
      },
    ]);
    // The default prefix counts too.
    expect(configError(() => loadConfig({ ...base, dbConnections: { a: pg('postgres://h/app'), b: pg('postgres://h/app', 'xronox_t_') } })).issues[0]?.path).toBe('dbConnections.b.schemaPrefix');
    // Equal prefixes (one store reached twice), disjoint ones, another database or server: accepted.
    for (const dbConnections of [
      { a: pg('postgres://h/app', 'app_'), b: pg('postgres://h/app', 'app_') },
      { a: pg('postgres://h/app', 'app_'), b: pg('postgres://h/app', 'ops_') },
      { a: pg('postgres://h/app', 'app_'), b: pg('postgres://h/other', 'app_x_') },
      { a: pg('postgres://h:5432/app', 'app_'), b: pg('postgres://h:5433/app', 'app_x_') },
    ]) {
      expect(() => loadConfig({ ...base, dbConnections })).not.toThrow();
    }
  });

  it('maxConnections: how many connections a postgresUri connection opens per process, 1 to 100, handed to the pool', () => {
    const base = { localStorage: { basePath: '/tmp/b', enabled: true }, databases: {} };
    const config = new XronoxConfigBuilder().addPostgresConnection('pg', 'postgres://h/db', { maxConnections: 3, statementTimeoutMs: 5_000 }).withLocalStorage('/tmp/b').build();
    expect(postgresOptions(config.dbConnections.pg!)).toEqual({ pool: { statementTimeoutMillis: 5_000, max: 3 } });
    for (const bad of [0, 101, 2.5, '4']) {
      expect(configError(() => loadConfig({ ...base, dbConnections: { pg: { postgresUri: 'postgres://h/a', maxConnections: bad } } })).issues[0]?.path).toBe('dbConnections.pg.maxConnections');
    }
    expect(configError(() => loadConfig({ ...base, dbConnections: { s: { sqlitePath: '/tmp/x.sqlite', maxConnections: 2 } } })).issues).toContainEqual({
      path: 'dbConnections.s.maxConnections',
      message: 'applies to postgresUri connections only',
    });
  });

  it('postgresUri: a connection kind of its own, a URI, exactly one kind per connection', () => {
    expect(createMinimalConfig('postgres://u:p@127.0.0.1:5432/app').dbConnections).toEqual({ primary: { postgresUri: 'postgres://u:p@127.0.0.1:5432/app' } });
    expect(createMinimalConfig('postgresql://h/app').dbConnections.primary?.postgresUri).toBe('postgresql://h/app');
    expect(createMinimalConfig('postgres.sqlite').dbConnections).toEqual({ local: { sqlitePath: 'postgres.sqlite' } });
    expect(createDevConfig({ postgresUri: 'postgres://h/app' }).dbConnections).toEqual({ local: { postgresUri: 'postgres://h/app' } });
    const production = createProductionConfig({ postgresUri: 'postgres://h/app', s3Region: 'eu-west-1', tenants: ['acme'], bucketPrefix: 'xr' });
    expect(production.dbConnections).toEqual({ primary: { postgresUri: 'postgres://h/app' } });
    expect(new XronoxConfigBuilder().addPostgresConnection('pg', 'postgres://h/db').withLocalStorage('/tmp/b').addLogsDatabase({ mongoRef: 'pg', dbName: 'logs' }).build().dbConnections.pg).toEqual({ postgresUri: 'postgres://h/db' });
    // Not a URI (libpq's key=value form), or two kinds at once: refused by name.
    const base = { localStorage: { basePath: '/tmp/b', enabled: true } };
    expect(configError(() => loadConfig({ ...base, dbConnections: { pg: { postgresUri: 'host=h dbname=app' } } })).issues).toContainEqual(
      expect.objectContaining({ path: 'dbConnections.pg.postgresUri', message: expect.stringContaining('postgres://') }),
    );
    expect(configError(() => loadConfig({ ...base, dbConnections: { pg: { postgresUri: 'postgres://h/a', sqlitePath: '/tmp/x.sqlite' } } })).issues).toContainEqual(
      expect.objectContaining({ message: 'give exactly one of mongoUri, postgresUri or sqlitePath' }),
    );
    expect(configError(() => createDevConfig({ postgresUri: 'postgres://h/a', mongoUri: 'mongodb://h' })).issues).toContainEqual({ path: 'postgresUri', message: 'and mongoUri are both given; give one of them' });
    expect(configError(() => createProductionConfig({ s3Region: 'r', tenants: [], bucketPrefix: 'xr' })).issues[0]?.path).toBe('mongoUri');
  });

  it('createDevConfig() configures every database type on an embedded file and a local folder', () => {
    const config = createDevConfig();
    expect(config.dbConnections).toEqual({ local: { sqlitePath: './.xronox-data/xronox.sqlite' } });
    expect(config.localStorage).toEqual({ basePath: './.xronox-data/blobs', enabled: true });
    expect(config.spacesConnections).toEqual({});
    expect(routes(config)).toEqual([
      'identities/tenant:demo -> local/xronox_dev_identities_demo',
      'knowledge/generic -> local/xronox_dev_knowledge',
      'logs/generic -> local/xronox_dev_logs',
      'messaging/tenant:demo -> local/xronox_dev_messaging_demo',
      'metadata/generic -> local/xronox_dev_metadata',
      'runtime/tenant:demo -> local/xronox_dev_runtime_demo',
    ]);
  });

  it('createDevConfig(options) uses the given connection, folder, prefix and tenants, with safe database names', () => {
    const longTenant = `t${'x'.repeat(60)}`;
    const config = createDevConfig({
      mongoUri: 'mongodb://localhost:27017',
      basePath: './xronox-data',
      dbName: 'myapp_dev',
      tenants: ['acme-corp', 'Globex', longTenant],
    });
    expect(config.dbConnections).toEqual({ local: { mongoUri: 'mongodb://localhost:27017' } });
    expect(config.localStorage?.basePath).toBe('./xronox-data');
    const runtime = config.databases.runtime?.tenantDatabases ?? [];
    expect(runtime.map((t) => t.tenantId)).toEqual(['acme-corp', 'Globex', longTenant]);
    expect(runtime[0]?.dbName).toBe('myapp_dev_runtime_acme_corp');
    expect(runtime[1]?.dbName).toBe('myapp_dev_runtime_globex');
    // Too long for a database name: shortened, still valid (it loaded) and distinct per type.
    const long = [runtime[2]?.dbName, config.databases.messaging?.tenantDatabases?.[2]?.dbName];
    for (const name of long) expect(name?.length).toBeLessThanOrEqual(63);
    expect(new Set(long).size).toBe(2);
  });

  it('createDevConfig rejects mongoUri and sqlitePath together', () => {
    const err = configError(() => createDevConfig({ mongoUri: 'mongodb://h', sqlitePath: './x.sqlite' }));
    expect(err.message).toMatch(/mongoUri.*sqlitePath/);
  });

  it('createDevConfig reports tenants whose database names collide instead of merging them', () => {
    const err = configError(() => createDevConfig({ tenants: ['acme-corp', 'acme_corp'] }));
    expect(paths(err)).toContain('databases.runtime.tenantDatabases[1].dbName');
  });

  it('createProductionConfig() uses MongoDB, one S3 bucket per kind, and every database type', () => {
    const config = createProductionConfig({
      mongoUri: 'mongodb://prod:27017',
      s3Endpoint: 'https://s3.amazonaws.com',
      s3Region: 'us-east-1',
      s3AccessKey: 'key',
      s3SecretKey: 'secret',
      tenants: ['acme-corp', 'globex-inc'],
      bucketPrefix: 'myapp',
      forcePathStyle: true,
    });
    expect(config.dbConnections).toEqual({ primary: { mongoUri: 'mongodb://prod:27017' } });
    expect(config.spacesConnections.primary).toEqual({
      endpoint: 'https://s3.amazonaws.com',
      region: 'us-east-1',
      accessKey: 'key',
      secretKey: 'secret',
      forcePathStyle: true,
      buckets: { records: 'myapp-records', versions: 'myapp-versions', content: 'myapp-content', backups: 'myapp-backups' },
    });
    expect(config.localStorage).toBeUndefined();
    expect(config.databases.runtime?.tenantDatabases.map((t) => [t.tenantId, t.dbName, t.analyticsDbName])).toEqual([
      ['acme-corp', 'xronox_runtime_acme_corp', 'xronox_analytics_acme_corp'],
      ['globex-inc', 'xronox_runtime_globex_inc', 'xronox_analytics_globex_inc'],
    ]);
    const all = new Router(config).databases();
    expect(all).toHaveLength(3 + 3 * 2);
    expect(all.every((d) => d.spaceConnRef === 'primary' && d.dbConnRef === 'primary')).toBe(true);
    const runtime = new Router(config).resolve({ databaseType: 'runtime', tier: 'tenant', tenantId: 'globex-inc', collection: 'orders' });
    expect(runtime.blobs.versions).toEqual({ bucket: 'myapp-versions', prefix: 'versions' });
    expect(runtime.analyticsDbName).toBe('xronox_analytics_globex_inc');
  });

  it('createProductionConfig() leaves the endpoint out for AWS and reports a bucket prefix S3 would refuse', () => {
    const options = { mongoUri: 'mongodb://prod', s3Region: 'eu-west-1', s3AccessKey: 'k', s3SecretKey: 's', tenants: ['a'] };
    const config = createProductionConfig({ ...options, bucketPrefix: 'acme' });
    expect(config.spacesConnections.primary).not.toHaveProperty('endpoint');
    expect(config.spacesConnections.primary).not.toHaveProperty('forcePathStyle');
    const err = configError(() => createProductionConfig({ ...options, bucketPrefix: 'My_App' }));
    expect(paths(err)).toEqual(expect.arrayContaining(['spacesConnections.primary.buckets.records', 'spacesConnections.primary.buckets.backups']));
  });

  it('every preset is a fixed point of loadConfig', () => {
    const configs = [
      createMinimalConfig(),
      createDevConfig({ tenants: ['a', 'b'] }),
      createProductionConfig({ mongoUri: 'mongodb://p', s3Region: 'r', s3AccessKey: 'k', s3SecretKey: 's', tenants: ['a'], bucketPrefix: 'pre' }),
    ];
    // Presets are loaded configs, whose JSON masks their secrets: their plain copy is structuredClone's.
    for (const config of configs) expect(loadConfig(JSON.parse(JSON.stringify(structuredClone(config))))).toEqual(config);
  });
});

describe('loadConfig: runtime versioning', () => {
  it('refuses enableVersioning: false on a runtime database instead of silently ignoring it', () => {
    let caught: unknown;
    try {
      loadConfig({
        dbConnections: { local: { sqlitePath: '/tmp/x.sqlite' } },
        localStorage: { basePath: '/tmp/blobs', enabled: true },
        databases: { runtime: { tenantDatabases: [{ tenantId: 'a', dbConnRef: 'local', dbName: 'rt_a', enableVersioning: false }] } },
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).issues).toEqual([
      expect.objectContaining({ path: 'databases.runtime.tenantDatabases[0].enableVersioning', message: expect.stringMatching(/always versioned/) }),
    ]);
  });
});

describe('loadConfig: analytics databases', () => {
  const base = {
    dbConnections: { local: { sqlitePath: '/tmp/x.sqlite' } },
    localStorage: { basePath: '/tmp/blobs', enabled: true },
  };
  it("refuses an analytics database that is another database, or another tenant's analytics database", () => {
    const err = configError(() =>
      loadConfig({
        ...base,
        databases: {
          runtime: {
            tenantDatabases: [
              { tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme', analyticsDbName: 'rt_globex' },
              { tenantId: 'globex', dbConnRef: 'local', dbName: 'rt_globex' },
              { tenantId: 'a', dbConnRef: 'local', dbName: 'rt_a', analyticsDbName: 'shared_an' },
              { tenantId: 'b', dbConnRef: 'local', dbName: 'rt_b', analyticsDbName: 'shared_an' },
            ],
          },
        },
      }),
    );
    expect(err.issues.map((i) => i.path)).toEqual(['databases.runtime.tenantDatabases[0].analyticsDbName', 'databases.runtime.tenantDatabases[3].analyticsDbName']);
    expect(err.issues[0]?.message).toMatch(/mix two databases' totals/);
  });

  it('accepts an analytics database equal to its own dbName, or its own separate name', () => {
    expect(() =>
      loadConfig({
        ...base,
        databases: {
          runtime: {
            tenantDatabases: [
              { tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme', analyticsDbName: 'rt_acme' },
              { tenantId: 'globex', dbConnRef: 'local', dbName: 'rt_globex', analyticsDbName: 'an_globex' },
            ],
          },
        },
      }),
    ).not.toThrow();
  });
});
