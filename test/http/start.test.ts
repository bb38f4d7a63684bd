import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';
import { call, ok, parseRawResponse, rawExchange } from './harness.js';

/** `npm start` (functions/local/start.ts) as a user runs it: a real process, its printed key, real requests, a signal. */

const root = fileURLToPath(new URL('../..', import.meta.url));
const tsx = pathToFileURL(join(root, 'node_modules/tsx/dist/loader.mjs')).href;

interface Started {
  child: ChildProcessWithoutNullStreams;
  base: string;
  key: string;
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts the server on a free port and waits for its banner (the URL and the key). */
async function start(dataDir: string, env: Record<string, string> = {}): Promise<Started> {
  const child = spawn(process.execPath, ['--import', tsx, join(root, 'functions/local/start.ts')], {
    cwd: root,
    env: { ...process.env, PORT: '0', XRONOX_DATA_DIR: dataDir, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  const banner = await new Promise<RegExpExecArray>((done, fail) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /Xronox API on (http:\/\/\S+)[\s\S]*API key: (\S+)/.exec(stdout);
      if (match) done(match);
    });
    void exited.then((code) => fail(new Error(`start.ts exited with ${code} before printing its banner:\n${stdout}\n${stderr}`)));
  });
  return { child, base: banner[1]!.replace('localhost', '127.0.0.1'), key: banner[2]!, output: () => stdout + stderr, exited };
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
    expect(lines.at(-1)).toMatchObject({ msg: 'stopped' });
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

  it('refuses a weak XRONOX_API_KEY', async () => {
    await expect(start(dir.path, { XRONOX_API_KEY: 'short' })).rejects.toThrow(/XRONOX_API_KEY must be at least 16 characters/);
  });
});
