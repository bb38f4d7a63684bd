/**
 * What the Lambda functions write to CloudWatch (functions/observability/telemetry.ts): the API
 * and job handlers are called as Lambda calls them, in a fresh module instance (a new container,
 * so the first invocation is a cold start), with API Gateway v2 and EventBridge events, and
 * everything they write to stdout and stderr is kept. Every line must be JSON: request lines with
 * the AWS request ids, cold start, tenant, route, status and latency; EMF blobs with the metrics
 * and dimensions docs/observability.md lists; background sync failures as structured error lines.
 */
import { renameSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { LambdaEvent } from 'hono/aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type * as ApiModule from '../../functions/api/lambda.js';
import type * as JobsModule from '../../functions/jobs/handlers.js';
import { createTelemetry, requestObserver, telemetrySettings } from '../../functions/observability/telemetry.js';
import { tempDir } from '../support/temp.js';
import { httpApiEvent, type RequestSpec, lambdaContext } from './http-api-event.js';
import { writeHandlerConfig } from './handler-config.js';
import { scheduledEvent } from './job-events.js';

type Line = Record<string, unknown>;
type Api = typeof ApiModule;
type Jobs = typeof JobsModule;

const KEY = 'xrx_lambda-observability-test-key';
const TENANT = 'acme';
const DB_NAME = 'rt_observability_acme';
const SECRET_FILTER_VALUE = 'query-value-that-must-not-be-logged';
const records = `/v1/tenants/${TENANT}/runtime/orders`;
const dir = tempDir('xronox-observability');
const blobs = join(dir.path, 'data/blobs');
const saved = { ...process.env };
/** Every line written to stdout or stderr since the last `take()`, with the stream it went to. */
let written: Array<{ stream: 'stdout' | 'stderr'; text: string }> = [];
const originalWrite = { stdout: process.stdout.write.bind(process.stdout), stderr: process.stderr.write.bind(process.stderr) };
let api: Api;
let jobs: Jobs;

beforeAll(async () => {
  const file = writeHandlerConfig(dir.path, { tenant: TENANT, dbName: DB_NAME, keyId: 'observability-test', key: KEY, dataDir: 'data' });
  process.env.XRONOX_CONFIG_FILE = file;
  delete process.env.XRONOX_CONFIG_SSM;
  // What the Lambda runtime sets for a function without provisioned concurrency: Powertools
  // reports a cold start only then.
  process.env.AWS_LAMBDA_INITIALIZATION_TYPE = 'on-demand';
  for (const name of ['POWERTOOLS_SERVICE_NAME', 'POWERTOOLS_METRICS_NAMESPACE', 'POWERTOOLS_METRICS_DISABLED', 'POWERTOOLS_DEV', 'XRONOX_TRACING', '_X_AMZN_TRACE_ID']) delete process.env[name];
  for (const stream of ['stdout', 'stderr'] as const) {
    process[stream].write = ((chunk: string | Uint8Array) => {
      written.push({ stream, text: typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8') });
      return true;
    }) as typeof process.stdout.write;
  }
  // Fresh module instances: a new container, whose first invocation is a cold start.
  vi.resetModules();
  api = await import('../../functions/api/lambda.js');
  jobs = await import('../../functions/jobs/handlers.js');
});

afterAll(async () => {
  process.stdout.write = originalWrite.stdout;
  process.stderr.write = originalWrite.stderr;
  await api?.container.close();
  await jobs?.container.close();
  for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
  Object.assign(process.env, saved);
  dir.cleanup();
});

/** The lines written since the last call, each parsed as JSON: a line that is not JSON fails the test. */
function take(): Array<Line & { stream: string }> {
  const out = written.flatMap(({ stream, text }) =>
    text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        try {
          return { ...(JSON.parse(l) as Line), stream };
        } catch {
          throw new Error(`a line on ${stream} is not JSON: ${l}`);
        }
      }),
  );
  written = [];
  return out;
}

let n = 0;
async function invoke(spec: RequestSpec) {
  n++;
  const awsRequestId = `obs-${n}-${Math.random().toString(16).slice(2, 10)}`;
  const event = httpApiEvent({ ...spec, headers: { authorization: `Bearer ${KEY}`, ...spec.headers } });
  const result = await api.handler(event as unknown as LambdaEvent, lambdaContext(awsRequestId));
  const lines = take();
  return { status: result.statusCode, json: JSON.parse(result.body) as Line, awsRequestId, apiGatewayRequestId: event.requestContext.requestId, lines };
}

/** A job function's context: 15 minutes left, as a scheduled function has at its start. */
function jobContext(awsRequestId: string, fn: string): never {
  return { ...lambdaContext(awsRequestId), functionName: `xronox-test-${fn}`, getRemainingTimeInMillis: () => 900_000 } as never;
}

const requestLines = (lines: Line[]) => lines.filter((l) => l.msg === 'request');
const emf = (lines: Line[]) => lines.filter((l) => typeof l._aws === 'object');
const metricNames = (blob: Line) => (blob._aws as { CloudWatchMetrics: Array<{ Metrics: Array<{ Name: string }> }> }).CloudWatchMetrics[0]!.Metrics.map((m) => m.Name).sort();
const cloudWatch = (blob: Line) => (blob._aws as { CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][] }> }).CloudWatchMetrics[0]!;

describe('the API function, as CloudWatch receives it', () => {
  it('logs each request once with the AWS request ids, the cold start, tenant, route, status and latency', async () => {
    const created = await invoke({ method: 'POST', url: records, body: { customer: 'ada' } });
    expect(created.status).toBe(201);
    const read = await invoke({ method: 'GET', url: `${records}?limit=5&filter=${encodeURIComponent(JSON.stringify({ customer: SECRET_FILTER_VALUE }))}` });
    expect(read.status).toBe(200);

    for (const [call, coldStart] of [
      [created, true],
      [read, false],
    ] as const) {
      const lines = requestLines(call.lines);
      expect(lines).toHaveLength(1);
      const line = lines[0]!;
      expect(Object.keys(line).slice(0, 4)).toEqual(['time', 'level', 'msg', 'service']);
      expect(line).toMatchObject({
        level: 'info',
        service: 'xronox',
        coldStart,
        awsRequestId: call.awsRequestId,
        apiGatewayRequestId: call.apiGatewayRequestId,
        functionName: 'xronox-test-api',
        // Without an X-Request-Id from the client, the app's request id is the Lambda one.
        requestId: call.awsRequestId,
        tier: 'tenant',
        tenant: TENANT,
        route: '/v1/tenants/:tenantId/:databaseType/:collection',
        path: records,
        status: call.status,
        latencyMs: expect.any(Number),
        principal: 'key:observability-test',
      });
      expect(Date.parse(line.time as string)).not.toBeNaN();
    }
    expect(requestLines(created.lines)[0]).toMatchObject({ method: 'POST' });
    // Powertools' cold-start metric, on the first invocation only.
    expect(emf(created.lines).filter((b) => 'ColdStart' in b)).toEqual([expect.objectContaining({ ColdStart: 1, service: 'xronox', function_name: 'xronox-test-api' })]);
    expect(emf(read.lines).some((b) => 'ColdStart' in b)).toBe(false);
    // The query string is not logged anywhere (filters may hold personal data).
    expect(JSON.stringify(read.lines)).not.toContain(SECRET_FILTER_VALUE);
    expect(JSON.stringify(read.lines)).not.toContain('limit=5');
  });

  it('publishes its metrics as one EMF blob per invocation, by route and status class, and the cold start once', async () => {
    const created = await invoke({ method: 'POST', url: records, body: { customer: 'bob' } });
    const id = created.json.id as string;
    const stale = await invoke({ method: 'PUT', url: `${records}/${id}`, body: { customer: 'bob', total: 1 }, headers: { 'if-match': '"7"' } });
    expect(stale.status).toBe(412);

    for (const [call, statusClass, conflicts] of [
      [created, '2xx', 0],
      [stale, '4xx', 1],
    ] as const) {
      const blobs = emf(call.lines);
      expect(blobs).toHaveLength(1);
      const blob = blobs[0]!;
      expect(cloudWatch(blob)).toMatchObject({ Namespace: 'Xronox', Dimensions: [['service', 'route', 'statusClass'], ['service']] });
      expect(metricNames(blob)).toEqual(['BlobSyncFailures', 'Errors', 'Latency', 'Requests', 'WriteConflicts']);
      expect(blob).toMatchObject({ service: 'xronox', statusClass, Requests: 1, Errors: 0, WriteConflicts: conflicts, BlobSyncFailures: 0, Latency: expect.any(Number) });
      expect(blob.route).toMatch(/^\/v1\/tenants\/:tenantId\/:databaseType\/:collection/);
    }
    // The first test's first invocation was the cold start; no later invocation reports one.
    expect(emf([...created.lines, ...stale.lines]).some((b) => 'ColdStart' in b)).toBe(false);
  });

  it('answers a 500 with a correlation id that is the awsRequestId of its error line, counted in Errors', async () => {
    const { xronox } = await api.container.get();
    await xronox.shutdown();
    try {
      const failed = await invoke({ method: 'GET', url: records });
      expect(failed.status).toBe(500);
      expect(failed.json.correlationId).toBe(failed.awsRequestId);
      const line = requestLines(failed.lines).find((l) => l.awsRequestId === failed.json.correlationId);
      expect(line).toMatchObject({ level: 'error', stream: 'stderr', status: 500, requestId: failed.awsRequestId, error: { code: 'CLOSED' } });
      expect(emf(failed.lines)[0]).toMatchObject({ statusClass: '5xx', Requests: 1, Errors: 1 });
    } finally {
      await api.container.close();
    }
  });

  it('logs a failed background blob sync as a structured error line with its tenant and record, and counts it', async () => {
    // The blob folder becomes /proc, where no folder can be made: every sync fails (and is retried).
    renameSync(blobs, `${blobs}.aside`);
    symlinkSync('/proc', blobs);
    try {
      const created = await invoke({ method: 'POST', url: records, body: { customer: 'carol' } });
      expect(created.status).toBe(201);
      const failures = created.lines.filter((l) => l.msg === 'xronox background blob sync failed; it is retried');
      expect(failures.length).toBeGreaterThan(0);
      expect(failures[0]).toMatchObject({
        level: 'error',
        stream: 'stderr',
        service: 'xronox',
        awsRequestId: created.awsRequestId,
        operation: 'blob sync',
        dbName: DB_NAME,
        tier: 'tenant',
        tenantId: TENANT,
        databaseType: 'runtime',
        collection: 'orders',
        id: created.json.id,
        error: { name: 'StorageError', code: 'STORAGE_FAILED', message: expect.stringContaining('fs store failed during put') },
      });
      // Counted: in the request's blob, and as a BackgroundErrors metric of its own.
      const blobs = emf(created.lines);
      expect(blobs.find((b) => 'Requests' in b)).toMatchObject({ BlobSyncFailures: 1 });
      expect(blobs.find((b) => 'BackgroundErrors' in b)).toMatchObject({ service: 'xronox', BackgroundErrors: 1 });
      expect(cloudWatch(blobs.find((b) => 'BackgroundErrors' in b)!).Dimensions).toEqual([['service']]);

      // The archive sweep counts what stayed in the outbox: the backlog.
      await jobs.archiveSweep(scheduledEvent(new Date(), 'xronox-archive-sweep') as never, jobContext('obs-sweep-1', 'archiveSweep'));
      const sweep = take();
      expect(sweep.find((l) => l.msg === 'xronox job archiveSweep finished')).toMatchObject({ level: 'info', job: 'archiveSweep', outcome: 'succeeded', awsRequestId: 'obs-sweep-1', coldStart: true });
      const backlog = emf(sweep).find((b) => 'BlobSyncBacklog' in b);
      expect(backlog).toMatchObject({ service: 'xronox', BlobSyncBacklog: expect.any(Number) });
      expect(backlog!.BlobSyncBacklog).toBeGreaterThanOrEqual(1);
      expect(emf(sweep).find((b) => 'JobRuns' in b)).toMatchObject({ job: 'archiveSweep', outcome: 'succeeded', JobRuns: 1 });
      expect(cloudWatch(emf(sweep).find((b) => 'JobRuns' in b)!).Dimensions).toEqual([['service', 'job', 'outcome']]);
    } finally {
      rmSync(blobs);
      renameSync(`${blobs}.aside`, blobs);
    }
    // With the folder back, the next sweep empties the outbox.
    await jobs.archiveSweep(scheduledEvent(new Date(), 'xronox-archive-sweep') as never, jobContext('obs-sweep-2', 'archiveSweep'));
    const after = take();
    expect(emf(after).find((b) => 'BlobSyncBacklog' in b)).toMatchObject({ BlobSyncBacklog: 0 });
    expect(after.find((l) => l.msg === 'xronox job archiveSweep finished')).toMatchObject({ coldStart: false, awsRequestId: 'obs-sweep-2' });
  });

  it('logs a job invocation that fails before its job runs as an error line, counted as a failed run', async () => {
    await expect(jobs.retention({ not: 'a scheduled event' } as never, jobContext('obs-retention-1', 'retention'))).rejects.toThrow(
      /takes EventBridge scheduled events/,
    );
    const lines = take();
    expect(lines.find((l) => l.msg === 'xronox retention failed before its job ran')).toMatchObject({
      level: 'error',
      job: 'retention',
      awsRequestId: 'obs-retention-1',
      error: { name: 'ValidationError', code: 'VALIDATION_FAILED' },
    });
    expect(emf(lines).find((b) => 'JobRuns' in b)).toMatchObject({ job: 'retention', outcome: 'failed', JobRuns: 1 });
  });

  it('takes its service name, namespace and tracing switch from the environment', async () => {
    expect(telemetrySettings({})).toEqual({ serviceName: 'xronox', namespace: 'Xronox', tracing: false });
    expect(telemetrySettings({ POWERTOOLS_SERVICE_NAME: ' ', POWERTOOLS_METRICS_NAMESPACE: '', XRONOX_TRACING: 'yes' })).toEqual({ serviceName: 'xronox', namespace: 'Xronox', tracing: false });
    expect(telemetrySettings({ XRONOX_TRACING: 'TRUE' }).tracing).toBe(true);
    expect(telemetrySettings({ XRONOX_TRACING: '1' }).tracing).toBe(true);

    const telemetry = createTelemetry({ env: { POWERTOOLS_SERVICE_NAME: 'orders-api', POWERTOOLS_METRICS_NAMESPACE: 'Acme/Orders' }, metrics: true });
    take();
    await telemetry.invoke('api', undefined, {}, async () => {
      requestObserver(telemetry)({ time: 'ignored', level: 'info', msg: 'request', route: '/v1/x', status: 204, latencyMs: 1.5 });
    });
    const lines = take();
    expect(requestLines(lines)[0]).toMatchObject({ service: 'orders-api', route: '/v1/x', status: 204 });
    expect(requestLines(lines)[0]!.time).not.toBe('ignored');
    expect(cloudWatch(emf(lines)[0]!)).toMatchObject({ Namespace: 'Acme/Orders' });
    expect(emf(lines)[0]).toMatchObject({ service: 'orders-api', statusClass: '2xx', Requests: 1 });
  });
});
