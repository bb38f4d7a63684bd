/**
 * The Lambda handler against an S3 connection whose server accepts connections and never answers
 * (a network partition, as the client sees one): the index commits every write, the blob sync
 * cannot finish, and the handler must still answer before the function's deadline, leaving the
 * sync in the outbox. Also: every invocation shares the container's one pooled S3 client.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { LambdaContext, LambdaEvent } from 'hono/aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { pooledClientCount } from '../../core/adapters/s3/s3-client-pool.js';
import { hashApiKey } from '../../functions/api/api-keys.js';
import { container, handler } from '../../functions/api/lambda.js';
import { tempDir } from '../support/temp.js';
import { httpApiEvent, type RequestSpec } from './http-api-event.js';

const KEY = 'xrx_lambda-deadline-test-key';
const dir = tempDir('xronox-deadline');
const sockets = new Set<Socket>();
let silent: Server;
const saved = { file: process.env.XRONOX_CONFIG_FILE, ssm: process.env.XRONOX_CONFIG_SSM };
const warnings: Array<Record<string, unknown>> = [];
const backgroundErrors: string[] = [];
const stdoutWrite = process.stdout.write.bind(process.stdout);
const stderrWrite = process.stderr.write.bind(process.stderr);

beforeAll(async () => {
  silent = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const file = join(dir.path, 'xronox.config.json');
  writeFileSync(
    file,
    JSON.stringify({
      dbConnections: { local: { sqlitePath: 'xronox.sqlite' } },
      spacesConnections: {
        s3: {
          endpoint: `http://127.0.0.1:${(silent.address() as { port: number }).port}`,
          region: 'us-east-1',
          accessKey: 'AKIDDEADLINETEST',
          secretKey: 'deadline-test-secret',
          forcePathStyle: true,
          bucket: 'acme-data',
        },
      },
      databases: { runtime: { tenantDatabases: [{ tenantId: 'acme', dbConnRef: 'local', spaceConnRef: 's3', dbName: 'rt_acme' }] } },
      api: { keys: [{ id: 'deadline', sha256: hashApiKey(KEY), role: 'write', tenants: ['acme'] }] },
    }),
  );
  process.env.XRONOX_CONFIG_FILE = file;
  delete process.env.XRONOX_CONFIG_SSM;
  // Everything the function writes is a JSON line: its warnings and the engine's background-sync
  // errors (the uploads failing once the server goes away at the end) on stderr, request lines and
  // metrics on stdout. The warnings are kept to check; the rest stays out of the test output.
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    if (!text.startsWith('{')) return stderrWrite(chunk, ...rest);
    for (const line of text.trim().split('\n')) {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      if (parsed.level === 'warn') warnings.push(parsed);
      else backgroundErrors.push(String(parsed.msg));
    }
    return true;
  }) as typeof process.stderr.write;
  process.stdout.write = ((chunk: string, ...rest: never[]) => (chunk.startsWith('{') ? true : stdoutWrite(chunk, ...rest))) as typeof process.stdout.write;
});

afterAll(async () => {
  // The server goes away: the stalled uploads fail, the sync gives up for now, and shutdown can drain.
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((r) => silent.close(() => r()));
  await container.close();
  process.stderr.write = stderrWrite;
  process.stdout.write = stdoutWrite;
  for (const [key, value] of [['XRONOX_CONFIG_FILE', saved.file], ['XRONOX_CONFIG_SSM', saved.ssm]] as const) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  dir.cleanup();
}, 60_000);

let n = 0;
/** An invocation with 2.1 s left: the handler keeps 2 s back, so it may wait 100 ms for the sync. */
async function invoke(spec: RequestSpec) {
  n++;
  const context: LambdaContext = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'xronox-test-api',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:xronox-test-api',
    memoryLimitInMB: '512',
    awsRequestId: `deadline-${n}`,
    logGroupName: '/aws/lambda/xronox-test-api',
    logStreamName: 'test',
    getRemainingTimeInMillis: () => 2100,
  };
  const event = httpApiEvent({ ...spec, headers: { authorization: `Bearer ${KEY}`, ...spec.headers } });
  const result = await handler(event as unknown as LambdaEvent, context);
  return { status: result.statusCode, json: JSON.parse(result.body) as Record<string, unknown> };
}

describe('the Lambda handler when S3 does not answer', () => {
  it('answers committed writes before the deadline, leaving their sync in the outbox, with one S3 client for every invocation', async () => {
    const records = '/v1/tenants/acme/runtime/orders';
    const created = await invoke({ method: 'POST', url: records, body: { customer: 'ada' } });
    expect(created.status).toBe(201);
    const id = created.json.id as string;
    const updated = await invoke({ method: 'PUT', url: `${records}/${id}`, body: { customer: 'ada', total: 3 }, headers: { 'if-match': '"0"' } });
    expect(updated.status).toBe(200);
    // Reads come from the index, which holds every acknowledged write.
    const read = await invoke({ method: 'GET', url: `${records}/${id}` });
    expect(read.json).toMatchObject({ id, ov: 1, data: { total: 3 } });

    // Each invocation found the sync unfinished at its deadline and said so.
    expect(warnings.map((w) => w.correlationId)).toEqual(['deadline-1', 'deadline-2', 'deadline-3']);
    expect(warnings.every((w) => w.level === 'warn' && /stays in the outbox/.test(String(w.msg)))).toBe(true);
    // The uploads are still hanging on the one pooled client (the S3 store's module loads on its
    // first use, so on a busy machine its first socket may open after the last answer).
    await vi.waitFor(() => expect(sockets.size).toBeGreaterThan(0), { timeout: 10_000 });
    expect(pooledClientCount()).toBe(1);
    expect(container.stats).toMatchObject({ builds: 1, engines: 1, indexStores: 1, blobStores: 1 });
  });
});
