import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config/load.js';
import { maskConfig, maskSecretsIn } from '../../core/config/secrets.js';
import { configError } from '../support/errors.js';

/** The `api` section of the config: keys, JWT, body limit, and how its secret is kept out of sight. */

const local = {
  dbConnections: { main: { sqlitePath: '/tmp/xronox-api-config.sqlite' } },
  localStorage: { basePath: '/tmp/xronox-api-config-blobs', enabled: true },
  databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'main', dbName: 'acme_runtime' }] } },
};
const hash = (c: string) => c.repeat(64);
const secret = 'a-jwt-secret-that-is-long-enough-1234';

describe('config: api', () => {
  it('is optional, and when given fills in defaults', () => {
    expect(loadConfig(local).api).toBeUndefined();
    const config = loadConfig({ ...local, api: { keys: [{ id: 'ci', sha256: hash('a'), role: 'write', tenants: ['acme'] }] } });
    expect(config.api).toEqual({ keys: [{ id: 'ci', sha256: hash('a'), role: 'write', tenants: ['acme'], domains: [], generic: false }] });
  });

  it('accepts the documented example', () => {
    const config = loadConfig({
      ...local,
      api: {
        keys: [
          { id: 'acme-app', sha256: hash('b'), role: 'write', tenants: ['acme'] },
          { id: 'ops', sha256: hash('c'), role: 'admin', tenants: ['*'], domains: ['*'], generic: true },
        ],
        jwt: { jwksUrl: 'https://login.example.com/.well-known/jwks.json', issuer: 'https://login.example.com/', audience: 'xronox' },
        bodyLimitBytes: 2_097_152,
      },
    });
    expect(config.api?.keys).toHaveLength(2);
    expect(Object.isFrozen(config.api?.keys[0])).toBe(true);
  });

  it('reports every problem at once, with dotted paths', () => {
    const err = configError(() =>
      loadConfig({
        ...local,
        api: {
          keys: [
            { id: 'bad id!', sha256: hash('A'), role: 'root', tenants: ['../beta'] },
            { id: 'ok', sha256: 'abc', role: 'read', domains: ['$where'] },
          ],
          jwt: { issuer: 'x' },
          bodyLimitBytes: 0,
          extra: true,
        },
      }),
    );
    const paths = err.issues.map((i) => i.path);
    for (const path of [
      'api.keys[0].id',
      'api.keys[0].sha256',
      'api.keys[0].role',
      'api.keys[0].tenants[0]',
      'api.keys[1].sha256',
      'api.keys[1].domains[0]',
      'api.jwt',
      'api.bodyLimitBytes',
      'api',
    ]) {
      expect(paths, path).toContain(path);
    }
  });

  it('refuses keys sharing an id or a hash, and keys that reach nothing', () => {
    const err = configError(() =>
      loadConfig({
        ...local,
        api: {
          keys: [
            { id: 'a', sha256: hash('1'), role: 'read', tenants: ['acme'] },
            { id: 'a', sha256: hash('2'), role: 'read', tenants: ['acme'] },
            { id: 'b', sha256: hash('1'), role: 'read', generic: true },
            { id: 'c', sha256: hash('3'), role: 'admin' },
          ],
        },
      }),
    );
    expect(err.issues).toEqual(
      expect.arrayContaining([
        { path: 'api.keys[1].id', message: expect.stringContaining('also the id of api.keys[0]') },
        { path: 'api.keys[2].sha256', message: expect.stringContaining('also the hash of api.keys[0]') },
        { path: 'api.keys[3]', message: expect.stringContaining('grants no tenant') },
      ]),
    );
  });

  it('wants exactly one of a secret (32+ characters) or a JWKS URL over https (http only on loopback)', () => {
    const jwt = (value: unknown) => () => loadConfig({ ...local, api: { jwt: value } });
    expect(configError(jwt({ secret, jwksUrl: 'https://x.example/jwks' })).issues[0]).toMatchObject({ path: 'api.jwt', message: 'give exactly one of secret or jwksUrl' });
    expect(configError(jwt({ secret: 'too-short' })).issues[0]?.path).toBe('api.jwt.secret');
    expect(configError(jwt({ jwksUrl: 'http://idp.example.com/jwks' })).issues[0]).toMatchObject({ path: 'api.jwt.jwksUrl', message: expect.stringContaining('https') });
    expect(configError(jwt({ jwksUrl: 'ftp://127.0.0.1/jwks' })).issues[0]?.path).toBe('api.jwt.jwksUrl');
    for (const url of ['https://idp.example.com/jwks', 'http://127.0.0.1:8080/jwks', 'http://localhost/jwks', 'http://[::1]:9/jwks']) {
      expect(loadConfig({ ...local, api: { jwt: { jwksUrl: url } } }).api?.jwt?.jwksUrl).toBe(url);
    }
  });

  it('keeps the JWT secret out of masked configs, texts and config errors, also when it comes from the environment', () => {
    const config = loadConfig({ ...local, api: { jwt: { secret } } });
    expect(maskConfig(config).api?.jwt?.secret).toBe('****');
    expect(config.api?.jwt?.secret).toBe(secret);
    expect(maskSecretsIn(`token check failed with ${secret}`, config)).toBe('token check failed with ****');
    const env = { JWT_SECRET: secret };
    const fromEnv = loadConfig({ ...local, api: { jwt: { secret: 'ENV.JWT_SECRET' } } }, env);
    expect(fromEnv.api?.jwt?.secret).toBe(secret);
    expect(maskSecretsIn(`leaked ${secret}`, { api: { jwt: { secret: 'ENV.JWT_SECRET' } } }, env)).toBe('leaked ****');
    // A message that quotes a config value never shows the secret.
    const err = configError(() =>
      loadConfig({ ...local, databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: secret, dbName: 'acme_runtime' }] } }, api: { jwt: { secret } } }),
    );
    expect(err.message).not.toContain(secret);
    expect(err.message).toContain('****');
  });
});
