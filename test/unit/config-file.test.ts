import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONFIG_FILE_NAMES, findConfigFile, loadConfigFile, readConfigFile } from '../../core/config/file.js';
import { initXronox } from '../../core/xronox.js';
import { tempDir } from '../support/temp.js';
import { configError } from '../support/errors.js';

const dirs: Array<{ cleanup: () => void }> = [];
afterAll(() => dirs.forEach((d) => d.cleanup()));

/** A fresh folder (under the OS temp dir, which holds no package.json) with the given files. */
function folder(files: Record<string, string> = {}): string {
  const dir = tempDir('xronox-config-file');
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir.path, name, '..'), { recursive: true });
    writeFileSync(join(dir.path, name), text);
  }
  return dir.path;
}


/** A valid embedded config with relative paths, as a file would hold it. */
const embedded = (tenant = 'acme') =>
  JSON.stringify({
    dbConnections: { local: { sqlitePath: 'data/xronox.sqlite' } },
    localStorage: { basePath: './data/blobs', enabled: true },
    databases: { runtime: { tenantDatabases: [{ tenantId: tenant, dbConnRef: 'local', dbName: `rt_${tenant}` }] } },
  });

describe('findConfigFile', () => {
  it('finds xronox.config.json, else .xronox.json, in the start folder; the first name wins', () => {
    expect(CONFIG_FILE_NAMES).toEqual(['xronox.config.json', '.xronox.json']);
    const both = folder({ 'xronox.config.json': '{}', '.xronox.json': '{}' });
    expect(findConfigFile(both)).toBe(join(both, 'xronox.config.json'));
    const dotOnly = folder({ '.xronox.json': '{}' });
    expect(findConfigFile(dotOnly)).toBe(join(dotOnly, '.xronox.json'));
  });

  it('falls back to the nearest package root above the start folder, and no further', () => {
    const root = folder({
      'xronox.config.json': '{}',
      'pkg/package.json': '{}',
      'pkg/.xronox.json': '{}',
      'pkg/src/deep/placeholder.txt': '',
      'bare/package.json': '{}',
      'bare/src/placeholder.txt': '',
    });
    expect(findConfigFile(join(root, 'pkg/src/deep'))).toBe(join(root, 'pkg/.xronox.json'));
    // The start folder still wins over the package root.
    writeFileSync(join(root, 'pkg/src/deep/xronox.config.json'), '{}');
    expect(findConfigFile(join(root, 'pkg/src/deep'))).toBe(join(root, 'pkg/src/deep/xronox.config.json'));
    // The nearest package root has no file: the file above it is not used.
    const err = configError(() => findConfigFile(join(root, 'bare/src')));
    expect(err.message).toContain(join(root, 'bare/src'));
    expect(err.message).toContain(join(root, 'bare'));
  });

  it('names the files and folders it searched when there is no config file', () => {
    const empty = folder();
    const err = configError(() => findConfigFile(empty));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain('xronox.config.json');
    expect(err.message).toContain('.xronox.json');
    expect(err.message).toContain(empty);
  });

  it('ignores a folder of the same name as a config file', () => {
    const dir = folder({ 'xronox.config.json/placeholder.txt': '', '.xronox.json': '{}' });
    expect(findConfigFile(dir)).toBe(join(dir, '.xronox.json'));
  });
});

describe('readConfigFile', () => {
  it('parses the JSON of the file (a UTF-8 byte order mark is allowed)', () => {
    const dir = folder({ 'a.json': '{"x": [1, "two"]}', 'bom.json': '\uFEFF{"y": true}' });
    expect(readConfigFile(join(dir, 'a.json'))).toEqual({ x: [1, 'two'] });
    expect(readConfigFile(join(dir, 'bom.json'))).toEqual({ y: true });
  });

  it('reports invalid JSON with the file, line and column, and never quotes the file text', () => {
    const cases: Array<[string, number, number, RegExp]> = [
      ['{\n  "secretKey": "hunter2-very-secret",\n  "region": us-east-1\n}', 3, 13, /unexpected character "u"/],
      ['{\n  "secretKey": "hunter2-very-secret",\n}', 3, 1, /property name/],
      ['{"secretKey": "hunter2-very-secret"', 1, 36, /unexpected end of input/],
      ['{"secretKey": "hunter2-very-secret}', 1, 15, /unterminated string/],
      ['{"secretKey": "hunter2-very-secret"} x', 1, 38, /after the end/],
      ['', 1, 1, /end of input/],
    ];
    for (const [text, line, column, reason] of cases) {
      const dir = folder({ 'xronox.config.json': text });
      const file = join(dir, 'xronox.config.json');
      const err = configError(() => readConfigFile(file));
      expect(err.message, text).toContain(file);
      expect(err.message, text).toContain(`line ${line}, column ${column}`);
      expect(err.message, text).toMatch(reason);
      expect(JSON.stringify(err) + err.message, text).not.toContain('hunter2');
    }
  });

  it('reports a file it cannot read as a ConfigError naming it', () => {
    const missing = join(folder(), 'nope.json');
    const err = configError(() => readConfigFile(missing));
    expect(err.message).toContain(missing);
    expect(err.message).toContain('ENOENT');
  });
});

describe('loadConfigFile', () => {
  it('resolves relative sqlitePath and localStorage.basePath against the folder of the file', () => {
    const dir = folder({ 'conf/xronox.config.json': embedded() });
    const config = loadConfigFile(join(dir, 'conf/xronox.config.json'));
    expect(config.dbConnections.local?.sqlitePath).toBe(join(dir, 'conf/data/xronox.sqlite'));
    expect(config.localStorage?.basePath).toBe(join(dir, 'conf/data/blobs'));
  });

  it('keeps absolute paths, and resolves a relative path that came from the environment', () => {
    const input = JSON.parse(embedded()) as { dbConnections: { local: { sqlitePath: string } }; localStorage: { basePath: string } };
    input.dbConnections.local.sqlitePath = 'ENV.XRONOX_TEST_SQLITE';
    input.localStorage.basePath = '/srv/xronox/blobs';
    const dir = folder({ 'xronox.config.json': JSON.stringify(input) });
    const config = loadConfigFile(join(dir, 'xronox.config.json'), { XRONOX_TEST_SQLITE: 'db/x.sqlite' });
    expect(config.dbConnections.local?.sqlitePath).toBe(join(dir, 'db/x.sqlite'));
    expect(config.localStorage?.basePath).toBe('/srv/xronox/blobs');
  });

  it('reports an invalid config with the usual paths and names the file', () => {
    const dir = folder({
      'xronox.config.json': JSON.stringify({
        dbConnections: { local: { sqlitePath: 'x.sqlite' } },
        databases: { runtime: { tenantDatabases: [{ tenantId: 'a', dbConnRef: 'nowhere', dbName: 'rt_a' }] } },
        unknownKey: 1,
      }),
    });
    const file = join(dir, 'xronox.config.json');
    const err = configError(() => loadConfigFile(file));
    expect(err.message).toContain(`Invalid Xronox config in ${file}`);
    expect(err.issues.map((i) => i.path)).toEqual(
      expect.arrayContaining(['', 'databases.runtime.tenantDatabases[0].dbConnRef', 'databases.runtime.tenantDatabases[0].spaceConnRef']),
    );
  });
});

describe('initXronox without a config', () => {
  it('loads the config file of the working directory, or of the package root above it', async () => {
    const dir = folder({ 'app/package.json': '{}', 'app/xronox.config.json': embedded('from-file'), 'app/src/placeholder.txt': '' });
    const before = process.cwd();
    try {
      process.chdir(join(dir, 'app/src'));
      const xronox = initXronox();
      const orders = xronox.with({ databaseType: 'runtime', tier: 'tenant', tenantId: 'from-file', collection: 'orders' });
      expect(orders).toBeDefined();
      expect(xronox.config.dbConnections.local?.sqlitePath).toBe(join(dir, 'app/data/xronox.sqlite'));
      const { id } = await orders.create({ total: 1 });
      expect((await orders.getLatest(id))?.data).toEqual({ total: 1 });
      await xronox.shutdown();

      process.chdir(dir);
      writeFileSync(join(dir, '.xronox.json'), embedded('dotfile'));
      const second = initXronox(undefined, { onBackgroundError: () => undefined });
      expect(second.route({ databaseType: 'runtime', tier: 'tenant', tenantId: 'dotfile', collection: 'x' }).dbName).toBe('rt_dotfile');
      await second.shutdown();
    } finally {
      process.chdir(before);
    }
  });

  it('throws a ConfigError naming what it searched when there is no file', () => {
    const dir = folder();
    const before = process.cwd();
    try {
      process.chdir(dir);
      const err = configError(() => initXronox());
      expect(err.message).toContain('xronox.config.json');
      expect(err.message).toContain(dir);
    } finally {
      process.chdir(before);
    }
  });
});
