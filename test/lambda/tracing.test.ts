/**
 * X-Ray tracing of the API function (`XRONOX_TRACING`), with no AWS: the X-Ray SDK in its Lambda
 * mode (`LAMBDA_TASK_ROOT` set) sends each closed subsegment as a UDP datagram to the daemon
 * address (`AWS_XRAY_DAEMON_ADDRESS`), here a socket of the test standing in for the daemon.
 *
 * Off (the default), the tracer's module and the X-Ray SDK are never loaded and nothing is sent;
 * on, each invocation is one `## api` subsegment of the trace Lambda names in `_X_AMZN_TRACE_ID`,
 * annotated with the cold start and the service.
 */
import { createSocket, type Socket } from 'node:dgram';
import { createRequire } from 'node:module';
import type { LambdaEvent } from 'hono/aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type * as ApiModule from '../../functions/api/lambda.js';
import { tempDir } from '../support/temp.js';
import { httpApiEvent, lambdaContext } from './http-api-event.js';
import { writeHandlerConfig } from './handler-config.js';

const KEY = 'xrx_lambda-tracing-test-key';
const dir = tempDir('xronox-tracing');
const saved = { ...process.env };
const datagrams: string[] = [];
let daemon: Socket;
const originalWrite = { stdout: process.stdout.write.bind(process.stdout), stderr: process.stderr.write.bind(process.stderr) };
const written: string[] = [];
const loaded: Array<typeof ApiModule> = [];

beforeAll(async () => {
  const file = writeHandlerConfig(dir.path, { tenant: 'acme', dbName: 'rt_tracing_acme', keyId: 'tracing', key: KEY });
  daemon = createSocket('udp4');
  daemon.on('message', (msg) => datagrams.push(msg.toString('utf8')));
  await new Promise<void>((r) => daemon.bind(0, '127.0.0.1', r));
  // What the Lambda runtime sets (with active tracing, the trace header of the invocation).
  Object.assign(process.env, {
    XRONOX_CONFIG_FILE: file,
    AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
    AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
    LAMBDA_TASK_ROOT: dir.path,
    AWS_XRAY_DAEMON_ADDRESS: `127.0.0.1:${daemon.address().port}`,
    AWS_XRAY_CONTEXT_MISSING: 'IGNORE_ERROR',
    _X_AMZN_TRACE_ID: `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1`,
  });
  delete process.env.XRONOX_CONFIG_SSM;
  delete process.env.XRONOX_TRACING;
  // The function's JSON lines, and the X-Ray SDK's own, out of the test output.
  for (const stream of ['stdout', 'stderr'] as const) {
    process[stream].write = ((chunk: string | Uint8Array) => {
      written.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return true;
    }) as typeof process.stdout.write;
  }
});

afterAll(async () => {
  process.stdout.write = originalWrite.stdout;
  process.stderr.write = originalWrite.stderr;
  for (const api of loaded) await api.container.close();
  daemon?.close();
  for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
  Object.assign(process.env, saved);
  dir.cleanup();
});

async function freshApi(): Promise<typeof ApiModule> {
  vi.resetModules();
  const api = await import('../../functions/api/lambda.js');
  loaded.push(api);
  return api;
}

async function invoke(api: typeof ApiModule, awsRequestId: string) {
  const event = httpApiEvent({ method: 'POST', url: '/v1/tenants/acme/runtime/orders', body: { n: 1 }, headers: { authorization: `Bearer ${KEY}` } });
  const result = await api.handler(event as unknown as LambdaEvent, lambdaContext(awsRequestId));
  expect(result.statusCode).toBe(201);
}

/** The subsegments the daemon received: each datagram is a header line, then the document. */
function subsegments(): Array<Record<string, unknown>> {
  return datagrams.map((d) => JSON.parse(d.slice(d.indexOf('\n') + 1)) as Record<string, unknown>);
}

const xrayLoaded = () => Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('aws-xray-sdk-core'));

describe('X-Ray tracing of the API function', () => {
  it('is off by default: the X-Ray SDK is not loaded and nothing reaches the daemon', async () => {
    const api = await freshApi();
    await invoke(api, 'trace-off-1');
    await new Promise((r) => setTimeout(r, 200));
    expect(api.telemetry.settings.tracing).toBe(false);
    expect(api.telemetry.tracerLoaded).toBe(false);
    expect(xrayLoaded()).toBe(false);
    expect(datagrams).toEqual([]);
  });

  it('with XRONOX_TRACING=true, each invocation is a subsegment of the Lambda trace, annotated with the cold start', async () => {
    process.env.XRONOX_TRACING = 'true';
    const api = await freshApi();
    await invoke(api, 'trace-on-1');
    await invoke(api, 'trace-on-2');
    expect(api.telemetry.tracerLoaded).toBe(true);
    expect(xrayLoaded()).toBe(true);
    await vi.waitFor(() => expect(subsegments().filter((s) => s.name === '## api')).toHaveLength(2), { timeout: 5000 });
    const handlers = subsegments().filter((s) => s.name === '## api');
    const traceId = /Root=([^;]+)/.exec(process.env._X_AMZN_TRACE_ID!)![1];
    for (const [i, segment] of handlers.entries()) {
      expect(segment).toMatchObject({ type: 'subsegment', trace_id: traceId, parent_id: '53995c3f42cd8ad8', annotations: { ColdStart: i === 0, Service: 'xronox' } });
      expect(segment.end_time).toEqual(expect.any(Number));
    }
    // The log lines carry the trace id, so a log line leads to its trace.
    const lines = written.join('').split('\n').filter((l) => l.startsWith('{"time"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.msg === 'request' && l.awsRequestId === 'trace-on-1')).toMatchObject({ xrayTraceId: traceId });
  });
});
