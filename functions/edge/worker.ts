/**
 * The Cloudflare Workers entry point (infra/edge/wrangler.jsonc; docs/edge.md):
 *
 * - `fetch`: the HTTP API (the Hono app of functions/api), as on Lambda.
 * - `scheduled`: the jobs on Cron Triggers; `CRON_JOBS` says which cron runs which job.
 * - `queue`: version archival fed by R2 event notifications through a Queue, the twin of the
 *   S3-event function of functions/jobs: each object-created message names a `current.json`,
 *   whose record's pending versions are archived (idempotent, so redelivery is harmless).
 *
 * Config: the JSON of `XRONOX_CONFIG` (a secret, or a var), whose `ENV.NAME` values are the
 * Worker's string bindings (secrets and vars); a Hyperdrive binding `HYPERDRIVE` is offered as
 * `ENV.XRONOX_POSTGRES_URI`. Index store: PostgreSQL through node-postgres (`nodejs_compat`);
 * blobs: R2 through its S3 API (the S3 adapter).
 *
 * An engine lives for one invocation: a Worker may not use a connection (a socket to PostgreSQL)
 * opened by another request, so each request, cron run and batch opens its own (Hyperdrive makes
 * that cheap) and closes it at the end. The background blob sync of a request's writes runs under
 * `ctx.waitUntil`, after the response: the index already holds every acknowledged write and its
 * pending-sync mark, so a sync cut short loses nothing (the archive cron's repair pass finishes it).
 */
import { createApp } from '../api/app.js';
import { archiveObjects, runJob, ValidationError, Xronox, defaultAdapters, loadConfig, type JobReport, type ObjectRef, type ScheduledJob } from '../../core/index.js';

/** The Worker's bindings, as far as Xronox reads them. */
export interface EdgeEnv {
  /** The config JSON (a secret when it holds credentials). */
  XRONOX_CONFIG?: string;
  /** Hyperdrive in front of PostgreSQL: its connection string is `ENV.XRONOX_POSTGRES_URI`. */
  HYPERDRIVE?: { connectionString: string };
  /** Any other binding; the string ones are what `ENV.NAME` config values name. */
  [name: string]: unknown;
}

/** The part of `ExecutionContext` used here. */
export interface EdgeContext {
  waitUntil(promise: Promise<unknown>): void;
}

/** The part of `ScheduledController` used here. */
export interface EdgeScheduledController {
  cron: string;
  scheduledTime: number;
}

/** An R2 event notification, as a Queue delivers it (`message.body`). */
export interface R2EventNotification {
  account?: string;
  action: string;
  bucket: string;
  object: { key: string; size?: number; eTag?: string };
  eventTime?: string;
}

/** The part of a Queue `Message` used here. */
export interface EdgeMessage {
  readonly id: string;
  readonly body: unknown;
  ack(): void;
  retry(): void;
}

export interface EdgeMessageBatch {
  readonly queue: string;
  readonly messages: readonly EdgeMessage[];
}

/** The job each cron of infra/edge/wrangler.jsonc runs (UTC, as Lambda's schedules: the backup before retention, offload after both). */
export const CRON_JOBS: Readonly<Record<string, ScheduledJob>> = {
  '*/15 * * * *': 'archive',
  '0 2 * * *': 'backup',
  '30 3 * * *': 'retention',
  '0 4 * * *': 'offload',
};

/**
 * How long a cron run works before it stops at its next safe point and reports what it did (the
 * next run carries on): `XRONOX_JOB_BUDGET_MS`, default 14 minutes, inside the 15 minutes of wall
 * time Workers give a Cron Trigger. Jobs check it between pages, which take seconds.
 */
export function jobBudgetMs(env: EdgeEnv): number {
  const value = Number(env.XRONOX_JOB_BUDGET_MS);
  return Number.isSafeInteger(value) && value > 0 ? value : 14 * 60_000;
}

/** R2's actions that create an object (`PutObject`, `CopyObject`, `CompleteMultipartUpload`). */
const OBJECT_CREATED = new Set(['PutObject', 'CopyObject', 'CompleteMultipartUpload']);

/** One JSON line on the console (Workers Logs keeps them). */
function log(level: 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown> = {}): void {
  console[level === 'info' ? 'log' : level](JSON.stringify({ level, msg: message, ...fields }));
}

/** The config's `ENV.NAME` lookups: the Worker's string bindings, and Hyperdrive's connection string. */
function environmentOf(env: EdgeEnv): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(env)) if (typeof value === 'string') out[name] = value;
  if (env.HYPERDRIVE?.connectionString) out.XRONOX_POSTGRES_URI = env.HYPERDRIVE.connectionString;
  return out;
}

/** An engine for one invocation, over the config the bindings hold. */
export function openEngine(env: EdgeEnv): Xronox {
  if (typeof env.XRONOX_CONFIG !== 'string' || env.XRONOX_CONFIG === '') {
    throw new ValidationError('The Worker has no XRONOX_CONFIG binding: set it (wrangler secret put XRONOX_CONFIG) to the config JSON');
  }
  let input: unknown;
  try {
    input = JSON.parse(env.XRONOX_CONFIG);
  } catch {
    // JSON.parse's message may quote the text, secrets included.
    throw new ValidationError('XRONOX_CONFIG is not valid JSON');
  }
  const config = loadConfig(input, environmentOf(env));
  return new Xronox(config, defaultAdapters, {
    onBackgroundError: (err, where) => log('error', 'xronox background work failed; it is retried', { ...where, error: err instanceof Error ? err.message : String(err) }),
  });
}

/** Ends an engine after its blob sync: under `waitUntil`, so the response need not wait. */
function closeAfterSync(xronox: Xronox, ctx: EdgeContext): void {
  // shutdown() drains the sync first (bounded: what it leaves stays in the outbox for the archive cron's repair).
  ctx.waitUntil(xronox.shutdown().catch((err: unknown) => log('warn', 'xronox shutdown failed', { error: err instanceof Error ? err.message : String(err) })));
}

/** The objects of an R2 event batch that were created; other actions and foreign messages are left out (and named in the log). */
export function objectRefsOf(batch: EdgeMessageBatch): { refs: ObjectRef[]; ignored: string[] } {
  const refs: ObjectRef[] = [];
  const ignored: string[] = [];
  for (const message of batch.messages) {
    const body = message.body as Partial<R2EventNotification> | null;
    const bucket = body?.bucket;
    const key = body?.object?.key;
    if (typeof bucket !== 'string' || typeof key !== 'string' || typeof body?.action !== 'string') {
      ignored.push(message.id);
      continue;
    }
    if (OBJECT_CREATED.has(body.action)) refs.push({ bucket, key });
  }
  return { refs, ignored };
}

function reportLine(report: JobReport): Record<string, unknown> {
  return { job: report.job, complete: report.complete, counts: report.counts, failures: report.failures, durationMs: report.durationMs };
}

export const worker = {
  async fetch(request: Request, env: EdgeEnv, ctx: EdgeContext): Promise<Response> {
    let xronox: Xronox;
    try {
      xronox = openEngine(env);
    } catch (err) {
      log('error', 'xronox config refused', { error: err instanceof Error ? err.message : String(err) });
      return new Response(JSON.stringify({ type: 'about:blank', title: 'Service misconfigured', status: 500, code: 'CONFIG_INVALID' }), {
        status: 500,
        headers: { 'Content-Type': 'application/problem+json' },
      });
    }
    try {
      return await createApp({ xronox }).fetch(request, env, ctx as never);
    } finally {
      closeAfterSync(xronox, ctx);
    }
  },

  async scheduled(controller: EdgeScheduledController, env: EdgeEnv, ctx: EdgeContext): Promise<void> {
    const job = CRON_JOBS[controller.cron];
    if (job === undefined) {
      const refused = new ValidationError(`No job runs on the cron ${JSON.stringify(controller.cron)}; expected one of ${Object.keys(CRON_JOBS).join(', ')}`);
      log('error', refused.message);
      throw refused;
    }
    const xronox = openEngine(env);
    try {
      // The schedule's time: a retried run backs up the same day and cuts retention at the same instant.
      const report = await runJob(xronox, job, { now: new Date(controller.scheduledTime), log: null, signal: AbortSignal.timeout(jobBudgetMs(env)) });
      log(report.failures.length > 0 ? 'error' : 'info', `xronox job ${job} ${report.failures.length > 0 ? 'failed on some databases' : report.complete ? 'finished' : 'stopped early'}`, reportLine(report));
      // A failed run throws, so Cron Triggers count it failed; every job is safe to rerun.
      if (report.failures.length > 0) throw new Error(`xronox ${job} failed on ${report.failures.length} database(s); first: ${report.failures[0]!.dbName}: ${report.failures[0]!.error}`);
    } finally {
      closeAfterSync(xronox, ctx);
    }
  },

  async queue(batch: EdgeMessageBatch, env: EdgeEnv, ctx: EdgeContext): Promise<void> {
    const { refs, ignored } = objectRefsOf(batch);
    // A message that is no R2 event would come back forever: acknowledged, and logged.
    if (ignored.length > 0) log('warn', 'xronox archive ignored messages that are not R2 event notifications', { queue: batch.queue, ids: ignored });
    const xronox = openEngine(env);
    try {
      const report = await archiveObjects(xronox, refs, { log: null });
      log(report.failures.length > 0 ? 'error' : 'info', 'xronox archive of R2 events', reportLine(report));
      // A failure retries the whole batch (archiving is idempotent); otherwise every message is done.
      for (const message of batch.messages) {
        if (report.failures.length > 0 && !ignored.includes(message.id)) message.retry();
        else message.ack();
      }
    } finally {
      closeAfterSync(xronox, ctx);
    }
  },
};
