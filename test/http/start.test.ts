import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../functions/api/api-keys.js';
import { tempDir } from '../support/temp.js';
import { call, ok, parseRawResponse, rawExchange } from './harness.js';

/** `npm start` (functions/local/start.ts) as a user runs it: a real process, its printed key, real requests, a signal. */

const root = fileURLToPath(new URL('../..', import.meta.url));
const tsx = pathToFileURL(join(root, 'node_modules/tsx/dist/loader.mjs')).href;

interface Started {
  child: ChildProcessWithoutNullStreams;
  base: string;
  key: string;
  /** stdout and stderr, one after the other. */
  output: () => string;
  stdout: () => string;
  exited: Promise<number | null>;
}

/** Runs start.ts with `args` and `env` until its stdout matches `banner` (or it exits first, which fails). */
async function launch(args: string[], env: NodeJS.ProcessEnv, banner: RegExp): Promise<{ match: RegExpExecArray; started: Omit<Started, 'key' | 'base'> }> {
  const child = spawn(process.execPath, ['--import', tsx, join(root, 'functions/local/start.ts'), ...args], { cwd: root, env });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  const match = await new Promise<RegExpExecArray>((done, fail) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const found = banner.exec(stdout);
      if (found) done(found);
    });
    void exited.then((code) => fail(new Error(`start.ts exited with ${code} before printing its banner:\n${stdout}\n${stderr}`)));
  });
  return { match, started: { child, output: () => stdout + stderr, stdout: () => stdout, exited } };
}

/** Starts the server on a free port and waits for its banner (the URL and the key). */
async function start(dataDir: string, env: Record<string, string> = {}): Promise<Started> {
  const { match, started } = await launch([], { ...process.env, PORT: '0', XRONOX_DATA_DIR: dataDir, ...env }, /Xronox API on (http:\/\/\S+)[\s\S]*API key: (\S+)/);
  return { ...started, base: match[1]!.replace('localhost', '127.0.0.1'), key: match[2]! };
}

/** Starts the server on a config file (`--config`, or `XRONOX_CONFIG_FILE` in `env`) and waits for its banner. */
async function startWithConfig(args: string[], env: Record<string, string> = {}): Promise<Omit<Started, 'key'>> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, PORT: '0', ...env };
  for (const name of ['XRONOX_DATA_DIR', 'XRONOX_API_KEY', ...(env.XRONOX_CONFIG_FILE ? [] : ['XRONOX_CONFIG_FILE'])]) if (!(name in env)) delete childEnv[name];
  const { match, started } = await launch(args, childEnv, /Xronox API on (http:\/\/\S+) \(config: [^)]+\)[\s\S]*callers: .*\n/);
  return { ...started, base: match[1]!.replace('localhost', '127.0.0.1') };
}

/** Every server a test started, killed after the file in case a test failed with it running. */
const children: ChildProcessWithoutNullStreams[] = [];
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/**
 * Runs start.ts on `dataDir` to its exit. If it prints its banner instead (it started, with a key,
 * on a folder it should have refused), it is killed and `printedKey` says so.
 */
async function startToExit(dataDir: string): Promise<{ code: number | null; printedKey: boolean; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', tsx, join(root, 'functions/local/start.ts')], { cwd: root, env: { ...process.env, PORT: '0', XRONOX_DATA_DIR: dataDir } });
  children.push(child);
  let stdout = '';
  let stderr = '';
  let printedKey = false;
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (!printedKey && stdout.includes('API key:')) {
      printedKey = true;
      child.kill('SIGKILL');
    }
  });
  const code = await new Promise<number | null>((done) => child.on('close', (c) => done(c)));
  return { code, printedKey, stdout, stderr };
}

describe('npm start', () => {
  const dir = tempDir('xronox-start');
  afterAll(() => dir.cleanup());

  it('serves the API with the printed key, logs JSON lines, and stops cleanly on SIGTERM', async () => {
    const server = await start(dir.path);
    expect(server.key).toMatch(/^xrx_[A-Za-z0-9_-]{43}$/);
    const orders = '/v1/tenants/demo/runtime/orders';
    expect((await call(server.base, 'GET', orders, { key: null })).status).toBe(401);
    const { body, reply } = await ok<{ id: string }>(server.base, 'POST', orders, { key: server.key, body: { customer: 'ada', total: 12 } });
    expect(reply.status).toBe(201);
    expect((await ok<{ data: unknown }>(server.base, 'GET', `${orders}/${body.id}`, { key: server.key })).body.data).toEqual({ customer: 'ada', total: 12 });
    expect((await call(server.base, 'GET', '/openapi.json', { key: null })).status).toBe(200);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    const lines = server.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'request', method: 'POST', status: 201, tenant: 'demo', principal: 'key:demo-admin' }));
    // The Lambda functions' request line, without what only Lambda knows (request ids, cold start).
    const requests = lines.filter((l) => l.msg === 'request');
    // (warn and error lines go to stderr, the others to stdout)
    expect(requests.map((l) => `${String(l.level)} ${String(l.status)}`).sort()).toEqual(['info 200', 'info 200', 'info 201', 'warn 401']);
    for (const line of requests) {
      expect(Object.keys(line).slice(0, 4)).toEqual(['time', 'level', 'msg', 'service']);
      expect(line).toMatchObject({ service: 'xronox', requestId: expect.any(String), route: expect.any(String), latencyMs: expect.any(Number) });
      expect(line).not.toHaveProperty('awsRequestId');
      expect(line).not.toHaveProperty('coldStart');
    }
    const stdoutLines = server.stdout().trimEnd().split('\n');
    expect(JSON.parse(stdoutLines.at(-1)!)).toMatchObject({ msg: 'stopped' });
  });

  it('keeps the data across restarts, takes the key from XRONOX_API_KEY, and stops on SIGINT', async () => {
    const key = 'my-own-dev-key-0123456789';
    const server = await start(dir.path, { XRONOX_API_KEY: key });
    // A key the user chose is referred to, not printed.
    expect(server.key).toBe('$XRONOX_API_KEY');
    expect(server.output()).not.toContain(key);
    const { body } = await ok<{ items: Array<{ data: unknown }> }>(server.base, 'GET', '/v1/tenants/demo/runtime/orders', { key });
    expect(body.items.map((r) => r.data)).toEqual([{ customer: 'ada', total: 12 }]);
    server.child.kill('SIGINT');
    expect(await server.exited).toBe(0);
  });

  it('answers a body over the limit with a 413 the client reads whole, then closes cleanly while the client sends the rest', async () => {
    const server = await start(dir.path);
    try {
      const bytes = 16 * 1024 * 1024;
      const head = `POST /v1/tenants/demo/runtime/orders HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${server.key}\r\nContent-Type: application/json\r\nContent-Length: ${bytes}\r\n\r\n`;
      const result = await rawExchange(server.base, head, { bytes });
      expect({ error: result.error, closedByServer: result.closedByServer, sent: result.sent }).toEqual({ error: null, closedByServer: true, sent: bytes });
      const response = parseRawResponse(result.response);
      expect({ status: response.status, connection: response.headers.connection }).toEqual({ status: 413, connection: 'close' });
      expect(JSON.parse(response.body)).toMatchObject({ code: 'CONTENT_TOO_LARGE' });
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });

  it('allows the origins XRONOX_CORS_ORIGINS lists, and refuses a bad one by name before starting', async () => {
    const server = await start(dir.path, { XRONOX_CORS_ORIGINS: 'http://localhost:5173, https://app.example.com' });
    const preflight = (origin: string) =>
      call(server.base, 'OPTIONS', '/v1/tenants/demo/runtime/orders', { key: null, headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' } });
    const allowed = await preflight('https://app.example.com');
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect((await preflight('https://elsewhere.example.com')).headers.get('access-control-allow-origin')).toBeNull();
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);

    await expect(start(dir.path, { XRONOX_CORS_ORIGINS: 'https://app.example.com/' })).rejects.toThrow(/XRONOX_CORS_ORIGINS\[0\]: must be an origin such as/);
  });

  it('refuses a weak XRONOX_API_KEY', async () => {
    await expect(start(dir.path, { XRONOX_API_KEY: 'short' })).rejects.toThrow(/XRONOX_API_KEY must be at least 16 characters/);
  });

  it('refuses a data folder it cannot use before printing a key, naming the path and the reason', async () => {
    const file = join(dir.path, 'a-file');
    writeFileSync(file, 'not a folder');
    const sqliteIsFolder = join(dir.path, 'sqlite-folder');
    mkdirSync(join(sqliteIsFolder, 'xronox.sqlite'), { recursive: true });
    const notSqlite = join(dir.path, 'not-sqlite');
    mkdirSync(notSqlite);
    writeFileSync(join(notSqlite, 'xronox.sqlite'), 'these bytes are not an SQLite database file at all');
    const blobsIsFile = join(dir.path, 'blobs-file');
    mkdirSync(blobsIsFile);
    writeFileSync(join(blobsIsFile, 'blobs'), 'not a folder');
    const cases = [
      // Before: a key, then the first write spun in mkdir at full CPU and SIGTERM went unanswered.
      { dataDir: `/proc/xronox-${process.pid}`, reason: `${`/proc/xronox-${process.pid}`}/xronox.sqlite: its folder cannot be made (ENOENT` },
      { dataDir: `/sys/xronox-${process.pid}`, reason: `${`/sys/xronox-${process.pid}`}/xronox.sqlite: its folder cannot be made (EPERM` },
      // Before: a key, then 500 on the first write.
      { dataDir: join(file, 'data'), reason: `${join(file, 'data')}/xronox.sqlite: its folder cannot be made (ENOTDIR` },
      { dataDir: sqliteIsFolder, reason: `${sqliteIsFolder}/xronox.sqlite: a folder is at that path` },
      { dataDir: notSqlite, reason: `${notSqlite}/xronox.sqlite: SQLITE_NOTADB` },
      { dataDir: blobsIsFile, reason: `The blob folder ${blobsIsFile}/blobs/` },
    ];
    for (const c of cases) {
      const run = await startToExit(c.dataDir);
      expect({ dataDir: c.dataDir, code: run.code, printedKey: run.printedKey, stdout: run.stdout }).toEqual({ dataDir: c.dataDir, code: 1, printedKey: false, stdout: '' });
      expect(run.stderr).toContain(`Cannot use the data folder ${c.dataDir} (XRONOX_DATA_DIR)`);
      expect(run.stderr).toContain(c.reason);
    }
  }, 240_000);

  it('a data folder that becomes unusable while it runs: writes are acknowledged, an archived version read is a 500, the sync logs the failure, and SIGTERM stops it', async () => {
    const dataDir = join(dir.path, 'breaks-later');
    const server = await start(dataDir);
    const orders = '/v1/tenants/demo/runtime/orders';
    const { body } = await ok<{ id: string }>(server.base, 'POST', orders, { key: server.key, body: { n: 1 } });
    await ok(server.base, 'PUT', `${orders}/${body.id}`, { key: server.key, body: { n: 2 }, headers: { 'if-match': '"0"' } });
    // Version 0 leaves the index once its object is written: wait for that (the sync is in the background).
    for (let history = ''; !history.includes('"archived":true'); ) history = (await call(server.base, 'GET', `${orders}/${body.id}/versions`, { key: server.key })).text;
    // The blob folder is now /proc, where no folder can be made (and Node's recursive mkdir
    // retried forever: before the fix, the sync spun there and SIGTERM never ended the process).
    rmSync(join(dataDir, 'blobs'), { recursive: true });
    symlinkSync('/proc', join(dataDir, 'blobs'));

    expect((await call(server.base, 'POST', orders, { key: server.key, body: { n: 3 } })).status).toBe(201);
    const archived = await call(server.base, 'GET', `${orders}/${body.id}?ov=0`, { key: server.key });
    expect({ status: archived.status, type: archived.headers.get('content-type'), code: (archived.json as { code?: string }).code }).toEqual({
      status: 500,
      type: 'application/problem+json',
      code: 'STORAGE_FAILED',
    });
    const syncFailures = () =>
      server
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.msg === 'xronox background blob sync failed; it is retried');
    while (syncFailures().length === 0) await new Promise((r) => setTimeout(r, 50));
    // A structured line: where it failed (the tenant, its database, the record) and the error.
    expect(syncFailures()).toContainEqual(
      expect.objectContaining({
        level: 'error',
        service: 'xronox',
        operation: 'blob sync',
        tenantId: 'demo',
        tier: 'tenant',
        collection: 'orders',
        error: expect.objectContaining({ name: 'StorageError', code: 'STORAGE_FAILED', message: expect.stringMatching(/^fs store failed during put: ENOENT/) }),
      }),
    );

    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(server.output()).toContain(JSON.stringify({ level: 'info', msg: 'stopped' }));
  });

  describe('on a config file of your own', () => {
    const key = `xrx_${'c'.repeat(24)}${process.pid}`;
    const reader = `xrx_${'r'.repeat(24)}${process.pid}`;
    /** A config with two keys kept as their hashes, as `xronox hash-key` prints them, and its data in `folder`. */
    function configFile(folder: string, api: unknown): string {
      mkdirSync(folder, { recursive: true });
      const file = join(folder, 'xronox.config.json');
      writeFileSync(
        file,
        JSON.stringify({
          dbConnections: { local: { sqlitePath: './index.sqlite' } },
          localStorage: { basePath: './objects', enabled: true },
          databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', dbName: 'rt_acme' }, { tenantId: 'beta', dbConnRef: 'local', dbName: 'rt_beta' }] } },
          ...(api === undefined ? {} : { api }),
        }),
      );
      return file;
    }
    const keys = {
      keys: [
        { id: 'acme-writer', sha256: hashApiKey(key), role: 'write', tenants: ['acme'] },
        { id: 'acme-reader', sha256: hashApiKey(reader), role: 'read', tenants: ['acme'] },
      ],
    };

    it('--config serves that config with its own keys, prints no key, keeps data where the config says; XRONOX_CONFIG_FILE does the same', async () => {
      const folder = join(dir.path, 'own-config');
      const file = configFile(folder, keys);
      const server = await startWithConfig(['--config', file]);
      try {
        expect(server.output()).not.toContain(key);
        expect(server.output()).toContain('2 API keys of the config (api.keys)');
        const orders = '/v1/tenants/acme/runtime/orders';
        expect((await call(server.base, 'GET', orders, { key: null })).status).toBe(401);
        expect((await call(server.base, 'GET', orders, { key: 'xrx_not-a-key-of-this-config-000000' })).status).toBe(401);
        const { body, reply } = await ok<{ id: string }>(server.base, 'POST', orders, { key, body: { customer: 'ada' } });
        expect(reply.status).toBe(201);
        // The key's grants are the config's: read-only for the reader, acme only for both.
        expect((await call(server.base, 'POST', orders, { key: reader, body: { customer: 'bob' } })).status).toBe(403);
        expect((await ok<{ data: unknown; }>(server.base, 'GET', `${orders}/${body.id}`, { key: reader })).body.data).toEqual({ customer: 'ada' });
        expect((await call(server.base, 'GET', '/v1/tenants/beta/runtime/orders', { key })).status).toBe(403);
        // The config's keys reach only their grants: the embedded default's tenant demo is not one.
        expect((await call(server.base, 'GET', '/v1/tenants/demo/runtime/orders', { key })).status).toBe(403);
      } finally {
        server.child.kill('SIGTERM');
        expect(await server.exited).toBe(0);
      }
      // The config's relative paths are the config folder's, not the working directory's.
      expect(existsSync(join(folder, 'index.sqlite'))).toBe(true);

      const again = await startWithConfig([], { XRONOX_CONFIG_FILE: file });
      try {
        const { body } = await ok<{ items: Array<{ data: unknown }> }>(again.base, 'GET', '/v1/tenants/acme/runtime/orders', { key: reader });
        expect(body.items.map((r) => r.data)).toEqual([{ customer: 'ada' }]);
      } finally {
        again.child.kill('SIGTERM');
        expect(await again.exited).toBe(0);
      }
    }, 60_000);

    it('a config file\'s api.cors is served, and XRONOX_CORS_ORIGINS replaces it when set', async () => {
      const file = configFile(join(dir.path, 'cors-config'), { ...keys, cors: { allowedOrigins: ['https://app.example.com'] } });
      const preflight = (base: string, origin: string) =>
        call(base, 'OPTIONS', '/v1/tenants/acme/runtime/orders', { key: null, headers: { origin, 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'authorization,if-match' } });
      const fromConfig = await startWithConfig(['--config', file]);
      try {
        const allowed = await preflight(fromConfig.base, 'https://app.example.com');
        expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
        expect(allowed.headers.get('access-control-allow-methods')).toContain('PATCH');
        expect((await preflight(fromConfig.base, 'http://localhost:5173')).headers.get('access-control-allow-origin')).toBeNull();
      } finally {
        fromConfig.child.kill('SIGTERM');
        expect(await fromConfig.exited).toBe(0);
      }
      const fromEnv = await startWithConfig(['--config', file], { XRONOX_CORS_ORIGINS: 'http://localhost:5173' });
      try {
        expect((await preflight(fromEnv.base, 'http://localhost:5173')).headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
        expect((await preflight(fromEnv.base, 'https://app.example.com')).headers.get('access-control-allow-origin')).toBeNull();
      } finally {
        fromEnv.child.kill('SIGTERM');
        expect(await fromEnv.exited).toBe(0);
      }
    }, 60_000);

    it('refuses, by name and before listening, a config nobody may call, XRONOX_DATA_DIR or XRONOX_API_KEY beside it, a bad config and an unknown option', async () => {
      const nobody = configFile(join(dir.path, 'nobody'), undefined);
      const good = configFile(join(dir.path, 'refusals'), keys);
      const broken = join(dir.path, 'broken.json');
      writeFileSync(broken, '{ "dbConnections": ');
      const cases: Array<{ args: string[]; env?: Record<string, string>; says: string }> = [
        { args: ['--config', nobody], says: 'lets nobody call the API: it has no api.keys and no api.jwt' },
        { args: ['--config', nobody], says: 'npx xronox hash-key' },
        { args: ['--config', good], env: { XRONOX_DATA_DIR: dir.path }, says: 'XRONOX_DATA_DIR is set, but a config file is given' },
        { args: ['--config', good], env: { XRONOX_API_KEY: key }, says: 'XRONOX_API_KEY is set, but a config file is given' },
        { args: ['--config', broken], says: `The config file ${broken} is not valid JSON` },
        { args: ['--config', join(dir.path, 'missing.json')], says: 'Cannot read the config file' },
        { args: ['--confg', good], says: "Unknown option '--confg'" },
      ];
      for (const c of cases) {
        const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', ...c.env };
        for (const name of ['XRONOX_DATA_DIR', 'XRONOX_API_KEY', 'XRONOX_CONFIG_FILE']) if (!c.env || !(name in c.env)) delete env[name];
        const child = spawn(process.execPath, ['--import', tsx, join(root, 'functions/local/start.ts'), ...c.args], { cwd: root, env });
        children.push(child);
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        const code = await new Promise<number | null>((done) => child.on('close', (n) => done(n)));
        expect({ args: c.args, code, stdout, says: stderr.includes(c.says) }).toEqual({ args: c.args, code: 1, stdout: '', says: true });
      }
    }, 120_000);
  });
});
