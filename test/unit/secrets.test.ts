import { Console } from 'node:console';
import { Writable } from 'node:stream';
import { format, inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { XronoxConfigBuilder } from '../../core/config/builder.js';
import { loadConfig } from '../../core/config/load.js';
import { maskConfig, maskSecretsIn, secretValues } from '../../core/config/secrets.js';
import type { ConfigError } from '../../core/errors.js';
import { initXronox } from '../../core/xronox.js';
import { configError } from '../support/errors.js';


/** Everything an error shows: its message, its issues and its JSON form. */
const everything = (err: ConfigError) => [err.message, JSON.stringify(err.issues), JSON.stringify(err)].join('\n');

const local = {
  dbConnections: { main: { sqlitePath: '/tmp/xronox-secrets.sqlite' } },
  localStorage: { basePath: '/tmp/xronox-secrets-blobs', enabled: true },
};

describe('ENV.NAME values', () => {
  it('are replaced by the variable anywhere in the input, arrays included', () => {
    const env = { MONGO_URI: 'mongodb://app:pw-from-env@db:27017', S3_KEY: 'AKIAFROMENVIRONMENT', PROP: 'customerId', NAME: 'rt_acme' };
    const config = loadConfig(
      {
        dbConnections: { main: { mongoUri: 'ENV.MONGO_URI' } },
        spacesConnections: { s3: { region: 'eu-west-1', accessKey: 'ENV.S3_KEY', secretKey: 'literal-secret', bucket: 'one-bucket' } },
        databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'main', spaceConnRef: 's3', dbName: 'ENV.NAME' }] } },
        collectionMaps: { orders: { indexedProps: ['ENV.PROP', 'total'] } },
      },
      env,
    );
    expect(config.dbConnections.main?.mongoUri).toBe(env.MONGO_URI);
    expect(config.spacesConnections.s3?.accessKey).toBe(env.S3_KEY);
    expect(config.spacesConnections.s3?.secretKey).toBe('literal-secret');
    expect(config.databases.runtime?.tenantDatabases[0]?.dbName).toBe('rt_acme');
    expect(config.collectionMaps.orders?.indexedProps).toEqual(['customerId', 'total']);
  });

  it('only when the whole string is ENV.NAME with a valid name; keys are never replaced', () => {
    const env = { X: 'replaced', ENV: 'replaced' };
    const config = loadConfig(
      {
        ...local,
        databases: {},
        counterRules: {
          rules: [
            {
              name: 'r',
              when: { a: 'ENV.X/suffix', b: 'prefix ENV.X', c: 'ENV.1X', d: 'env.X', e: 'ENV.', f: 'ENV.X', 'ENV.X': 1 },
            },
          ],
        },
      },
      env,
    );
    expect(config.counterRules?.rules?.[0]?.when).toEqual({
      a: 'ENV.X/suffix',
      b: 'prefix ENV.X',
      c: 'ENV.1X',
      d: 'env.X',
      e: 'ENV.',
      f: 'replaced',
      'ENV.X': 1,
    });
  });

  it('read process.env by default', () => {
    const name = `XRONOX_TEST_${Math.random().toString(36).slice(2)}`.toUpperCase();
    process.env[name] = '/tmp/from-process-env.sqlite';
    try {
      const config = loadConfig({ dbConnections: { main: { sqlitePath: `ENV.${name}` } }, databases: {} });
      expect(config.dbConnections.main?.sqlitePath).toBe('/tmp/from-process-env.sqlite');
    } finally {
      delete process.env[name];
    }
  });

  it('never change the caller\'s input', () => {
    const input = { dbConnections: { main: { sqlitePath: 'ENV.P' } }, databases: {}, collectionMaps: { o: { indexedProps: ['ENV.Q'] } } };
    const before = structuredClone(input);
    loadConfig(input, { P: '/tmp/p.sqlite', Q: 'q' });
    expect(input).toEqual(before);
    expect(Object.isFrozen(input.dbConnections)).toBe(false);
  });

  it('report every unset variable, with its path, in the one ConfigError that lists the other problems', () => {
    const err = configError(() =>
      loadConfig(
        {
          dbConnections: { main: { mongoUri: 'ENV.MONGO_URI' } },
          spacesConnections: { s3: { endpoint: 'ENV.S3_ENDPOINT', region: 'r', accessKey: 'ENV.S3_KEY', secretKey: 'ENV.S3_SECRET' } },
          databases: { runtime: { tenantDatabases: [{ tenantId: 'a', dbConnRef: 'nowhere', dbName: 'rt_a' }] } },
        },
        { S3_KEY: 'set-access-key' },
      ),
    );
    expect(err.issues).toEqual(
      expect.arrayContaining([
        { path: 'dbConnections.main.mongoUri', message: 'environment variable MONGO_URI is not set' },
        { path: 'spacesConnections.s3.endpoint', message: 'environment variable S3_ENDPOINT is not set' },
        { path: 'spacesConnections.s3.secretKey', message: 'environment variable S3_SECRET is not set' },
      ]),
    );
    expect(err.issues.map((i) => i.path)).toContain('databases.runtime.tenantDatabases[0].dbConnRef');
    expect(err.message).toContain('dbConnections.main.mongoUri: environment variable MONGO_URI is not set');
    // The placeholder's own consequences ("ENV.S3_ENDPOINT" is not a URL) are not reported too.
    expect(err.issues.filter((i) => i.path === 'spacesConnections.s3.endpoint')).toHaveLength(1);
    expect(err.issues.some((i) => i.message.includes('S3_KEY'))).toBe(false);
  });

  it('count a variable set to the empty string as set (and then validate its value)', () => {
    const err = configError(() => loadConfig({ dbConnections: { main: { sqlitePath: 'ENV.EMPTY' } }, databases: {} }, { EMPTY: '' }));
    expect(err.issues.map((i) => i.path)).toEqual(['dbConnections.main.sqlitePath']);
    expect(err.message).not.toContain('is not set');
  });
});

describe('maskConfig', () => {
  const config = loadConfig({
    dbConnections: {
      atlas: { mongoUri: 'mongodb+srv://app-user:s3cr3t-p%40ss@cluster0.example.net/?retryWrites=true' },
      plain: { mongoUri: 'mongodb://admin:hunter2-password@db1:27017,db2:27017/app' },
      noauth: { mongoUri: 'mongodb://localhost:27017' },
      file: { sqlitePath: '/tmp/x.sqlite' },
    },
    spacesConnections: {
      long: { region: 'r', accessKey: 'AKIAIOSFODNN7EXAMPLE', secretKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', bucket: 'one-bucket' },
      short: { region: 'r', accessKey: 'AKIA1234', secretKey: 'x', bucket: 'one-bucket' },
    },
    databases: {
      runtime: { tenantDatabases: [], dynamicTenants: { enabled: true, dbConnRef: 'atlas', spaceConnRef: 'long', dbNameTemplate: 'rt_{tenantId}' } },
    },
  });

  it('masks secret keys, shortens access keys, and hides URI passwords', () => {
    const masked = maskConfig(config);
    expect(masked.spacesConnections.long?.secretKey).toBe('****');
    expect(masked.spacesConnections.long?.accessKey).toBe('AKIA****');
    expect(masked.spacesConnections.short?.secretKey).toBe('****');
    expect(masked.spacesConnections.short?.accessKey).toBe('****');
    expect(masked.dbConnections.atlas?.mongoUri).toBe('mongodb+srv://app-user:****@cluster0.example.net/?retryWrites=true');
    expect(masked.dbConnections.plain?.mongoUri).toBe('mongodb://admin:****@db1:27017,db2:27017/app');
    expect(masked.dbConnections.noauth?.mongoUri).toBe('mongodb://localhost:27017');
    // Strictly: a `mongoUri: undefined` added to a SQLite connection would be a change too.
    expect(masked.dbConnections.file).toStrictEqual({ sqlitePath: '/tmp/x.sqlite' });
    // Everything else, connection refs of dynamic tenants included, is kept.
    expect(masked.databases).toEqual(config.databases);
    expect(masked.spacesConnections.long?.buckets).toEqual(config.spacesConnections.long?.buckets);
  });

  it('returns a copy: the config is unchanged, and the copy holds no secret anywhere', () => {
    const masked = JSON.stringify(maskConfig(config));
    for (const secret of ['s3cr3t-p%40ss', 's3cr3t-p@ss', 'hunter2-password', 'wJalrXUtnFEMI', 'IOSFODNN7EXAMPLE', 'AKIA1234']) {
      expect(masked).not.toContain(secret);
    }
    expect(config.spacesConnections.long?.secretKey).toBe('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY');
  });

  it('masks a password holding an unencoded "@" whole', () => {
    const masked = maskConfig({ dbConnections: { m: { mongoUri: 'mongodb://u:p@ss-word@host/db' } } });
    expect(masked.dbConnections.m.mongoUri).toBe('mongodb://u:****@host/db');
  });
});

describe('maskConfig: what it does not recognise', () => {
  it('copies values that are not configs, and connections that are not objects, unchanged', () => {
    expect(maskConfig(null)).toBeNull();
    expect(maskConfig(undefined)).toBeUndefined();
    expect(maskConfig('mongodb://u:password@h')).toBe('mongodb://u:password@h');
    const odd = { spacesConnections: { a: null, b: 'text' }, dbConnections: { c: null, d: ['mongodb://u:password@h'] }, api: { jwt: null } };
    expect(maskConfig(odd)).toStrictEqual(odd);
    expect(secretValues(odd, {})).toStrictEqual([]);
  });

  it('adds no field: a connection without keys, a JWT block without a secret, a config without dbConnections', () => {
    const raw = { spacesConnections: { anon: { region: 'r', bucket: 'b' } }, api: { jwt: { jwksUrl: 'https://idp.example/jwks' } } };
    expect(maskConfig(raw)).toStrictEqual(raw);
    // Keys that are not strings are not secrets the masking knows how to shorten: copied as they are.
    const numbers = { spacesConnections: { s: { secretKey: 12345678, accessKey: 87654321 } }, api: { jwt: { secret: 42 } } };
    expect(maskConfig(numbers)).toStrictEqual(numbers);
  });

  it('masks the JWT secret of a config that has no connections', () => {
    expect(maskConfig({ api: { jwt: { secret: 'jwt-secret-only' } } })).toStrictEqual({ api: { jwt: { secret: '****' } } });
  });
});

describe('MongoDB URIs', () => {
  it('masks the password of a URI with no user name (mongodb://:pw@host)', () => {
    const raw = { dbConnections: { m: { mongoUri: 'mongodb://:no-user-pw@host/db' } } };
    expect(maskConfig(raw).dbConnections.m.mongoUri).toBe('mongodb://:****@host/db');
    expect(maskSecretsIn('auth no-user-pw failed', raw)).toBe('auth **** failed');
  });

  it('leaves a user name without a password, and an empty password, as they are: neither is a secret', () => {
    for (const mongoUri of ['mongodb://app-user@host/db', 'mongodb://app-user:@host/db', 'mongodb://host-only:27017/db', 'mongodb://@host/db']) {
      const raw = { dbConnections: { m: { mongoUri } } };
      expect(maskConfig(raw).dbConnections.m.mongoUri).toBe(mongoUri);
      expect(secretValues(raw, {})).toStrictEqual([]);
    }
  });

  it('masks the password of a value the driver would refuse (a leading space, an upper-case scheme), keeping the rest', () => {
    for (const [mongoUri, masked] of [
      [' mongodb://app:typo-password@host/db', ' mongodb://app:****@host/db'],
      ['MONGODB+SRV://app:typo-password@cluster/db', 'MONGODB+SRV://app:****@cluster/db'],
      ['uri=mongodb://app:typo-password@host', 'uri=mongodb://app:****@host'],
    ]) {
      const raw = { dbConnections: { m: { mongoUri } } };
      expect(maskConfig(raw).dbConnections.m.mongoUri).toBe(masked);
      expect(maskSecretsIn(`could not connect to ${mongoUri}`, raw)).toBe(`could not connect to ${masked}`);
    }
  });

  it('lists a password once when decoding does not change it, and both forms when it does', () => {
    expect(secretValues({ dbConnections: { m: { mongoUri: 'mongodb://u:plain-password@h' } } }, {})).toStrictEqual(['plain-password']);
    expect(secretValues({ dbConnections: { m: { mongoUri: 'mongodb://u:p%40ss-word@h' } } }, {})).toStrictEqual(['p%40ss-word', 'p@ss-word']);
  });
});

describe('postgresUri passwords', () => {
  const uri = 'postgres://app:pg-s3cret-pass@db.example.net:5432/xronox';
  const masked = 'postgres://app:****@db.example.net:5432/xronox';

  it('are masked in maskConfig, every printable view of a loaded config, and maskSecretsIn', () => {
    const raw = { ...local, dbConnections: { pg: { postgresUri: uri } } };
    expect(maskConfig(raw).dbConnections.pg.postgresUri).toBe(masked);
    expect(maskConfig({ dbConnections: { pg: { postgresUri: 'POSTGRESQL://a:Other-pass@h/d' } } }).dbConnections.pg.postgresUri).toBe('POSTGRESQL://a:****@h/d');
    expect(maskSecretsIn(`connect ECONNREFUSED ${uri}`, raw, {})).toBe(`connect ECONNREFUSED ${masked}`);
    const config = loadConfig({ ...raw, databases: { knowledge: { genericDatabase: { dbConnRef: 'pg', dbName: 'kn' } } } });
    // The adapters still read the real URI; no printable view shows its password.
    expect(config.dbConnections.pg?.postgresUri).toBe(uri);
    for (const view of [JSON.stringify(config), inspect(config, { depth: 10 }), format('%o', config), format('%j', config)]) {
      expect(view).not.toContain('pg-s3cret-pass');
    }
    expect(JSON.stringify(config)).toContain(masked);
  });

  it('ENV.NAME: the value of the variable is masked too', () => {
    const env = { PG_URI: 'postgresql://svc:env-pg-password@10.0.0.5/app' };
    const raw = { dbConnections: { pg: { postgresUri: 'ENV.PG_URI' } } };
    expect(secretValues(raw, env)).toStrictEqual(['env-pg-password']);
    expect(maskSecretsIn('failed: postgresql://svc:env-pg-password@10.0.0.5/app', raw, env)).toBe('failed: postgresql://svc:****@10.0.0.5/app');
  });

  it('a password given as a query parameter is masked too', () => {
    const raw = { dbConnections: { q: { postgresUri: 'postgres://app@db/x?sslmode=require&password=query-pg-pw&application_name=a' } } };
    expect(maskConfig(raw).dbConnections.q.postgresUri).toBe('postgres://app@db/x?sslmode=require&password=****&application_name=a');
    expect(secretValues(raw, {})).toStrictEqual(['query-pg-pw']);
    expect(maskSecretsIn('auth query-pg-pw refused', raw, {})).toBe('auth **** refused');
  });

  it('the builder takes a schemaPrefix, which only a postgresUri connection may have', () => {
    const config = new XronoxConfigBuilder().addPostgresConnection('pg', 'postgres://app:builder-pg-pw@db/x', { schemaPrefix: 'acme_' }).withLocalStorage('/tmp/xronox-pg-blobs').build();
    expect(config.dbConnections.pg).toEqual({ postgresUri: 'postgres://app:builder-pg-pw@db/x', schemaPrefix: 'acme_' });
    const misplaced = configError(() => loadConfig({ dbConnections: { s: { sqlitePath: '/tmp/x.sqlite', schemaPrefix: 'acme_' } }, databases: {} }));
    expect(misplaced.issues[0]).toMatchObject({ path: 'dbConnections.s.schemaPrefix', message: 'applies to postgresUri connections only' });
    const bad = configError(() => loadConfig({ dbConnections: { pg: { postgresUri: 'postgres://app:two-pg-pw@db/x', schemaPrefix: 'Bad-Prefix' } }, databases: {} }));
    expect(bad.issues[0]?.path).toBe('dbConnections.pg.schemaPrefix');
    expect(everything(bad)).not.toContain('two-pg-pw');
  });
});

describe('maskSecretsIn', () => {
  it('masks a secret whole when a shorter secret is its prefix (longest first)', () => {
    // The shorter one comes first in the config, so only the ordering keeps "-and-more" out of sight.
    const raw = { spacesConnections: { s3: { region: 'r', secretKey: 'shared-prefix', accessKey: 'shared-prefix-and-more' } } };
    expect(secretValues(raw, {})).toStrictEqual(['shared-prefix-and-more', 'shared-prefix']);
    expect(maskSecretsIn('signed with shared-prefix-and-more, then shared-prefix', raw, {})).toBe('signed with ****, then ****');
  });

  it('masks secrets of exactly 4 characters, the shortest it searches for', () => {
    const raw = { spacesConnections: { s3: { region: 'r', accessKey: 'abc', secretKey: 'wxyz' } } };
    expect(maskSecretsIn('keys abc and wxyz', raw, {})).toBe('keys abc and ****');
  });

  it('replaces every secret value in a text, URI passwords as written and decoded', () => {
    const raw = {
      dbConnections: { m: { mongoUri: 'mongodb://app:p%40ssw0rd-x@host/db' } },
      spacesConnections: { s3: { region: 'r', accessKey: 'AKIAIOSFODNN7EXAMPLE', secretKey: 'the-secret-key-123' } },
    };
    const text =
      'connect mongodb://app:p%40ssw0rd-x@host/db failed; auth p@ssw0rd-x; signed with AKIAIOSFODNN7EXAMPLE/the-secret-key-123 twice: the-secret-key-123';
    expect(maskSecretsIn(text, raw)).toBe('connect mongodb://app:****@host/db failed; auth ****; signed with ****/**** twice: ****');
  });

  it('masks the values of ENV references in secret fields, taken from env', () => {
    const raw = { spacesConnections: { s3: { region: 'r', accessKey: 'ENV.KEY', secretKey: 'ENV.SECRET' } }, dbConnections: { m: { mongoUri: 'ENV.URI' } } };
    const env = { KEY: 'AKIAENVIRONMENT', SECRET: 'env-secret-value', URI: 'mongodb://u:env-password@h' };
    expect(maskSecretsIn('AKIAENVIRONMENT env-secret-value env-password ENV.KEY', raw, env)).toBe('**** **** **** ENV.KEY');
  });

  it('leaves other text alone, and secrets too short to tell from words', () => {
    const raw = { spacesConnections: { s3: { region: 'r', accessKey: 'a', secretKey: 's' } } };
    expect(maskSecretsIn('Invalid Xronox config (2 problems)', raw)).toBe('Invalid Xronox config (2 problems)');
    expect(maskSecretsIn('anything', null)).toBe('anything');
  });
});

describe('ConfigError never shows a secret', () => {
  const secretKey = 'SECRET-wJalrXUtnFEMI-K7MDENG';
  const accessKey = 'AKIA-ACCESS-9F3K2L';
  const password = 'pw-hunter2-Zq8';

  /** A broken config whose secrets also sit in fields whose errors quote their values. */
  const leaky = () => ({
    dbConnections: { main: { mongoUri: `mongodb://app:${password}@db:27017` } },
    spacesConnections: {
      s3: { endpoint: secretKey, region: accessKey, accessKey, secretKey, buckets: { records: secretKey.toLowerCase() } },
    },
    databases: {
      runtime: {
        tenantDatabases: [
          { tenantId: 'a', dbConnRef: secretKey, spaceConnRef: accessKey, dbName: 'rt_a' },
          { tenantId: password, dbConnRef: password, dbName: password },
        ],
        dynamicTenants: { enabled: true, dbConnRef: password, dbNameTemplate: 'rt_{tenantId}', validation: { pattern: `(${secretKey}` } },
      },
      knowledge: { genericDatabase: { dbConnRef: 'main', dbName: 'kn' }, tenantDatabases: [{ tenantId: 'x', dbConnRef: accessKey, dbName: `${secretKey}!` }] },
    },
    collectionMaps: { orders: { indexedProps: ['a'], validation: { requiredIndexed: [secretKey, password] } } },
    counterRules: { rules: [{ name: 'r', when: { status: { [`$${secretKey}`]: 1 } } }, { name: 'p', when: { $where: password } }] },
  });

  it('in its message, its issues, or its JSON form, even where the errors quote the values', () => {
    const err = configError(() => loadConfig(leaky()));
    // The masking, not the absence of problems, keeps the secrets out: there are many, and they quote values.
    expect(err.issues.length).toBeGreaterThanOrEqual(8);
    expect(everything(err)).toContain('****');
    for (const secret of [secretKey, accessKey, password, secretKey.toLowerCase()]) {
      expect(everything(err), secret).not.toContain(secret);
    }
  });

  it('when the secrets come from the environment', () => {
    const config = leaky();
    config.spacesConnections.s3.secretKey = 'ENV.S3_SECRET';
    config.spacesConnections.s3.accessKey = 'ENV.S3_ACCESS';
    config.dbConnections.main.mongoUri = 'ENV.MONGO_URI';
    const env = { S3_SECRET: secretKey, S3_ACCESS: accessKey, MONGO_URI: `mongodb://app:${password}@db:27017` };
    const err = configError(() => loadConfig(config, env));
    for (const secret of [secretKey, accessKey, password]) expect(everything(err), secret).not.toContain(secret);
  });

  it('when the builder reports it', () => {
    const err = configError(() =>
      new XronoxConfigBuilder()
        .addMongoConnection('main', `mongodb://app:${password}@db`)
        .addS3Connection('s3', { region: 'r', accessKey, secretKey })
        .addLogsDatabase({ mongoRef: password, s3Ref: secretKey, dbName: 'logs' })
        // The builder's own problems quote values too.
        .addIdentitiesDatabase({ mongoRef: password, dbConnRef: 'main', dbName: 'ids' } as never)
        .build(),
    );
    for (const secret of [secretKey, password]) expect(everything(err), secret).not.toContain(secret);
  });
});

describe('printed views of a loaded config and of the instance holding it', () => {
  // Secrets the config reads from the environment, as the issue found them printed (plus literal ones).
  const env = {
    S3_SECRET: 'wJalrXUtnFEMI-secret-from-env',
    S3_KEY: 'AKIAENVACCESSKEY123',
    MONGO_URI: 'mongodb://app:env-mongo-password@db.example.com:27017/app',
    JWT_SECRET: 'a-jwt-secret-from-the-environment-0123456789',
  };
  const secrets = [env.S3_SECRET, env.S3_KEY, 'env-mongo-password', env.JWT_SECRET, 'literal-secret-key-value', 'AKIALITERALKEY456'];
  const input = {
    dbConnections: { main: { mongoUri: 'ENV.MONGO_URI' } },
    spacesConnections: {
      s3: { region: 'eu-west-1', accessKey: 'ENV.S3_KEY', secretKey: 'ENV.S3_SECRET', bucket: 'acme-data' },
      other: { region: 'eu-west-1', accessKey: 'AKIALITERALKEY456', secretKey: 'literal-secret-key-value', bucket: 'other-data' },
    },
    databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'main', spaceConnRef: 's3', dbName: 'acme_runtime' }] } },
    api: { jwt: { secret: 'ENV.JWT_SECRET' } },
  };

  it('util.inspect, console.log, util.format, JSON.stringify and String show no secret, while the values stay readable', async () => {
    const xronox = initXronox(input, { env });
    try {
      const captured: string[] = [];
      const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (captured.push(chunk.toString()), done()) });
      const logger = new Console({ stdout: sink, stderr: sink });
      logger.log(xronox);
      logger.log(xronox.config);
      logger.dir(xronox, { depth: null, showHidden: true });
      logger.log('%o %O %j', xronox.config, xronox, xronox.config);
      const views = [
        ...captured,
        inspect(xronox, { depth: null }),
        inspect(xronox.config, { depth: null, showHidden: true }),
        inspect(xronox.config, { depth: null, customInspect: false }),
        inspect(xronox.config.spacesConnections),
        inspect(xronox.config.dbConnections.main),
        inspect(xronox.config.api),
        format('%s', xronox.config.spacesConnections.s3),
        JSON.stringify(xronox),
        JSON.stringify(xronox.config),
        JSON.stringify(xronox.config.spacesConnections.s3),
        JSON.stringify({ nested: { config: xronox.config } }),
        String(xronox),
        String(xronox.config),
        `${xronox.config.dbConnections.main as unknown as string}`,
      ];
      for (const view of views) for (const secret of secrets) expect(view, view.slice(0, 300)).not.toContain(secret);
      // Masked as maskConfig masks them, so the printout still says what is there.
      expect(JSON.parse(JSON.stringify(xronox.config))).toEqual(maskConfig(xronox.config));
      expect(inspect(xronox.config.spacesConnections.s3)).toContain("secretKey: '****'");
      expect(inspect(xronox.config.dbConnections.main)).toContain('mongodb://app:****@db.example.com');
      // The engine (and any code) still reads the real values.
      expect(xronox.config.spacesConnections.s3?.secretKey).toBe(env.S3_SECRET);
      expect(xronox.config.spacesConnections.s3?.accessKey).toBe(env.S3_KEY);
      expect(xronox.config.dbConnections.main?.mongoUri).toBe(env.MONGO_URI);
      expect(xronox.config.api?.jwt?.secret).toBe(env.JWT_SECRET);
      expect(Object.keys(xronox.config.spacesConnections.s3!)).toEqual(['region', 'accessKey', 'secretKey', 'buckets']);
      expect(structuredClone(xronox.config).spacesConnections.s3?.secretKey).toBe(env.S3_SECRET);
      // A loaded config can be loaded again (with its real secrets).
      expect(loadConfig(xronox.config, env).spacesConnections.s3?.secretKey).toBe(env.S3_SECRET);
    } finally {
      await xronox.shutdown();
    }
  });
});
