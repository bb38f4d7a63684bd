/**
 * The background functions' Lambda entry points (serverless.yml `functions/jobs/handlers.*`),
 * each a middy handler around one job of `core/jobs`:
 *
 * - `archive`: S3 `ObjectCreated` events for `…/current.json` in a records bucket. Archives every
 *   pending version of each record named (idempotent, so S3's at-least-once, unordered delivery
 *   and Lambda's retries are harmless).
 * - `archiveSweep`, `retention`, `backup`, `offload`: EventBridge scheduled events. Each runs its job over
 *   every database, one run per database at a time (a lease in its index store).
 *
 * The config and engine are built once per container and reused by warm invocations (the
 * container of `functions/api/container.ts`, without an HTTP app). A job that has not finished
 * when the invocation is about to time out stops at its next safe point and reports what it did;
 * the next run carries on. An invocation whose job failed on some database throws after logging
 * its report, so Lambda counts it failed and retries it (every job is safe to rerun).
 *
 * Every invocation logs its report as one JSON line through the Powertools logger (with the
 * Lambda request id and cold start; an error line when a database failed, and for an invocation
 * that failed before its job ran) and publishes `JobRuns` and `JobDuration` (and, for the sweep,
 * `BlobSyncBacklog`) as EMF: docs/observability.md.
 */
import middy from '@middy/core';
import type { Context, S3Event, ScheduledEvent, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { createContainer } from '../api/container.js';
import { backgroundErrorLogger, createTelemetry, errorFields, METRIC, MetricUnit, publishGauge } from '../observability/telemetry.js';
import {
  archiveObjects,
  fanOutJob,
  maskSecretsIn,
  parseJobTask,
  runJob,
  runJobTask,
  SqsJobQueue,
  ValidationError,
  type FanOutReport,
  type JobQueue,
  type JobReport,
  type JobTask,
  type ObjectRef,
  type ScheduledJob,
  type XronoxConfig,
} from '../../core/index.js';

/** This process's logger, metrics and (with `XRONOX_TRACING`) tracer. */
export const telemetry = createTelemetry({ metrics: true });

let currentConfig: XronoxConfig | undefined;
const mask = (): ((text: string) => string) => {
  const config = currentConfig;
  return config ? (text) => maskSecretsIn(text, config) : (text) => text;
};

/** This container's config and engine; `container.stats` shows what was constructed. */
export const container = createContainer<null>({
  buildApp: ({ config }) => {
    currentConfig = config;
    return null;
  },
  onBackgroundError: backgroundErrorLogger(telemetry, mask),
});

/** The functions of serverless.yml, by their handler names: the `job` of log lines and metrics. */
type JobFunction = 'archive' | 'archiveSweep' | 'retention' | 'backup' | 'offload';

/**
 * Runs one invocation of a job function under the telemetry: its report (or the error that
 * stopped it before it had one) logged, its outcome counted, and the metrics published.
 */
function observed(job: JobFunction, context: Context, run: () => Promise<JobReport>): Promise<JobReport> {
  return telemetry.invoke(job, context, { job }, async () => {
    let report: JobReport;
    try {
      report = await run();
    } catch (err) {
      telemetry.logger.error(`xronox ${job} failed before its job ran`, { error: errorFields(err, mask()) });
      publishGauge(telemetry, METRIC.jobRuns, MetricUnit.Count, 1, { job, outcome: 'failed' });
      throw err;
    }
    const outcome = report.failures.length > 0 ? 'failed' : report.complete ? 'succeeded' : 'incomplete';
    const fields: Partial<JobReport> = { ...report };
    delete fields.job; // the invocation's `job` key names the function
    const level = outcome === 'failed' ? 'error' : outcome === 'incomplete' ? 'warn' : 'info';
    const failures = report.failures.map((f) => ({ dbName: f.dbName, error: mask()(f.error) }));
    telemetry.logger[level](`xronox job ${job} ${outcome === 'failed' ? 'failed on some databases' : outcome === 'succeeded' ? 'finished' : 'stopped early'}`, {
      ...fields,
      failures,
      outcome,
    });
    publishGauge(telemetry, METRIC.jobRuns, MetricUnit.Count, 1, { job, outcome });
    publishGauge(telemetry, METRIC.jobDuration, MetricUnit.Milliseconds, report.durationMs, { job });
    // What stayed in the outbox of each database the sweep's repair pass reached. A run that did
    // not reach some (outcome incomplete or failed) undercounts; it is still published, since a
    // sweep that keeps running out of time is when the backlog matters most.
    if (job === 'archiveSweep') publishGauge(telemetry, METRIC.blobSyncBacklog, MetricUnit.Count, report.counts.outboxLeft ?? 0);
    return failOnErrors(report);
  });
}

/**
 * How long before the Lambda timeout the job is told to stop (middy aborts the handler's
 * signal then). Scheduled functions get 15 minutes; a job checks the signal between pages of
 * work, which take seconds, so 30 s leaves room to finish the page, release the lease and log.
 */
const STOP_BEFORE_TIMEOUT_MS = 30_000;

/**
 * middy races the handler against its early-timeout response; resolving that response with a
 * promise that never settles makes the race wait for the handler, which, its signal aborted,
 * stops at its next checkpoint and returns its partial report. Lambda's own timeout still
 * bounds a handler that would not stop.
 */
const plugin = { timeoutEarlyInMillis: STOP_BEFORE_TIMEOUT_MS, timeoutEarlyResponse: () => new Promise<never>(() => undefined) };

export const archive = middy<S3Event, JobReport, Error, Context>(plugin).handler((event, context) =>
  observed('archive', context, async () => {
    const refs = objectRefs(event);
    const { xronox } = await container.get();
    return archiveObjects(xronox, refs, { log: null });
  }),
);

export const archiveSweep = scheduled('archiveSweep', 'archive');
export const retention = scheduled('retention', 'retention');
export const backup = scheduled('backup', 'backup');
export const offload = scheduled('offload', 'offload');

function scheduled(name: JobFunction, job: ScheduledJob) {
  return middy<ScheduledEvent, JobReport, Error, Context>(plugin).handler((event, context, { signal }) =>
    observed(name, context, async () => {
      if (event?.['detail-type'] !== 'Scheduled Event' && event?.source !== 'aws.events') {
        throw new ValidationError(`The ${job} function takes EventBridge scheduled events; got ${JSON.stringify(event)?.slice(0, 200)}`);
      }
      const { xronox } = await container.get();
      // The schedule's time, not the start of the invocation: a retried invocation backs up the
      // same day and cuts retention at the same instant as the first attempt.
      const now = typeof event.time === 'string' && !Number.isNaN(Date.parse(event.time)) ? new Date(event.time) : new Date();
      return runJob(xronox, job, { now, signal, log: null });
    }),
  );
}

/**
 * The objects of an S3 event: `ObjectCreated` records only, keys URL-decoded (S3 encodes them,
 * spaces as `+`). Anything that is not an S3 event is refused before any work is done.
 */
export function objectRefs(event: S3Event): ObjectRef[] {
  if (!event || !Array.isArray(event.Records)) throw new ValidationError('The archive function takes S3 events ({ Records: [...] })');
  const refs: ObjectRef[] = [];
  for (const [i, record] of event.Records.entries()) {
    const bucket = record?.s3?.bucket?.name;
    const key = record?.s3?.object?.key;
    if (record?.eventSource !== 'aws:s3' || typeof bucket !== 'string' || typeof key !== 'string') {
      throw new ValidationError(`Records[${i}] is not an S3 event record`);
    }
    if (typeof record.eventName !== 'string' || !record.eventName.startsWith('ObjectCreated:')) continue;
    let decoded: string;
    try {
      decoded = decodeURIComponent(key.replace(/\+/g, ' '));
    } catch {
      throw new ValidationError(`Records[${i}].s3.object.key is not URL-encoded text`);
    }
    refs.push({ bucket, key: decoded });
  }
  return refs;
}

function failOnErrors(report: JobReport): JobReport {
  if (report.failures.length > 0) {
    const first = report.failures[0]!;
    throw new Error(`xronox ${report.job} failed on ${report.failures.length} database(s); first: ${first.dbName}: ${first.error}`);
  }
  return report;
}

// ---- fan-out --------------------------------------------------------------------------------

/**
 * Fan-out (docs/jobs.md, "Fan-out"): instead of one function running a job over every database
 * in one invocation, a coordinator on the job's schedule sends one task per database to the jobs
 * queue (`XRONOX_JOBS_QUEUE_URL`; `XRONOX_SQS_ENDPOINT` for an SQS-compatible server), and
 * `jobWorker` runs the tasks, each in an invocation of its own: a task its deadline stops is put
 * back on the queue and carries on from the job's saved progress; a task that fails is reported
 * in `batchItemFailures`, so SQS delivers it again and, after the queue's receive limit, moves
 * it to the dead-letter queue.
 */
let jobQueue: JobQueue | undefined;

/** This container's job queue, made on first use from the environment. */
export function containerJobQueue(): JobQueue {
  if (jobQueue) return jobQueue;
  const queueUrl = process.env.XRONOX_JOBS_QUEUE_URL;
  if (!queueUrl) throw new ValidationError('XRONOX_JOBS_QUEUE_URL is not set: fan-out needs the jobs queue (serverless.yml sets it when the fanOut param is true)');
  const endpoint = process.env.XRONOX_SQS_ENDPOINT;
  jobQueue = new SqsJobQueue({ queueUrl, ...(endpoint ? { endpoint } : {}) });
  return jobQueue;
}

/** Forgets the queue (its client closed), so the next use reads the environment again. */
export async function closeJobQueue(): Promise<void> {
  const held = jobQueue;
  jobQueue = undefined;
  await held?.close();
}

export const archiveSweepFanOut = coordinator('archiveSweepFanOut', 'archive');
export const retentionFanOut = coordinator('retentionFanOut', 'retention');
export const backupFanOut = coordinator('backupFanOut', 'backup');
export const offloadFanOut = coordinator('offloadFanOut', 'offload');

function coordinator(name: string, job: ScheduledJob) {
  return middy<ScheduledEvent, FanOutReport, Error, Context>().handler((event, context) =>
    telemetry.invoke(name, context, { job: name }, async () => {
      if (event?.['detail-type'] !== 'Scheduled Event' && event?.source !== 'aws.events') {
        throw new ValidationError(`The ${name} function takes EventBridge scheduled events; got ${JSON.stringify(event)?.slice(0, 200)}`);
      }
      const { xronox } = await container.get();
      // The schedule's time: every task (and continuation) of this fan-out runs as of it.
      const now = typeof event.time === 'string' && !Number.isNaN(Date.parse(event.time)) ? new Date(event.time) : new Date();
      const report = await fanOutJob(xronox, job, containerJobQueue(), { now });
      telemetry.logger.info(`xronox ${job} fanned out to ${report.databases.length} database(s)`, { ...report });
      return report;
    }),
  );
}

/**
 * The worker: SQS events from the jobs queue (batch size 1 is best: each task may use a whole
 * invocation). Tasks run one after another until the deadline; a task stopped early, and every
 * task not started before the deadline, is put back (a continuation); a failed task, or one whose
 * continuation could not be sent, is reported in `batchItemFailures`.
 */
export const jobWorker = middy<SQSEvent, SQSBatchResponse, Error, Context>(plugin).handler((event, context, { signal }) =>
  telemetry.invoke('jobWorker', context, { job: 'jobWorker' }, async () => {
    if (!event || !Array.isArray(event.Records)) throw new ValidationError('The job worker takes SQS events ({ Records: [...] })');
    const { xronox } = await container.get();
    const queue = containerJobQueue();
    const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
    for (const record of event.Records) {
      const fail = (error: string) => {
        telemetry.logger.error('xronox job task failed', { messageId: record.messageId, error: mask()(error) });
        batchItemFailures.push({ itemIdentifier: record.messageId });
      };
      let task: JobTask;
      try {
        task = parseJobTask(record.body);
      } catch (err) {
        fail(err instanceof Error ? err.message : String(err));
        continue;
      }
      try {
        if (signal.aborted) {
          // Out of time before it started: back on the queue as it was.
          await queue.send([JSON.stringify(task)]);
          continue;
        }
        const result = await runJobTask(xronox, task, { signal });
        const fields = { messageId: record.messageId, task, outcome: result.outcome, ...(result.report ? { counts: result.report.counts, durationMs: result.report.durationMs } : {}) };
        if (result.outcome === 'failed') {
          fail(result.error);
          publishGauge(telemetry, METRIC.jobRuns, MetricUnit.Count, 1, { job: task.job, outcome: 'failed' });
          continue;
        }
        if (result.outcome === 'continue') await queue.send([JSON.stringify(result.next)], { delaySeconds: result.delaySeconds });
        telemetry.logger.info(`xronox ${task.job} of ${task.dbName} ${result.outcome === 'done' ? 'finished' : 'continues'}`, fields);
        publishGauge(telemetry, METRIC.jobRuns, MetricUnit.Count, 1, { job: task.job, outcome: result.outcome === 'done' ? 'succeeded' : 'incomplete' });
      } catch (err) {
        fail(err instanceof Error ? err.message : String(err));
      }
    }
    return { batchItemFailures };
  }),
);
