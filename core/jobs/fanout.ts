import type { JobQueue } from '../contracts/job-queue.js';
import { ValidationError } from '../errors.js';
import { isValidName } from '../foundation/names.js';
import type { JobHost, JobReport, RunOptions } from './job.js';
import { jobDatabases, runJob, SCHEDULED_JOBS, type ScheduledJob } from './run.js';

/**
 * Fan-out: a coordinator (on the job's schedule) puts one task per database on a queue, and
 * workers run each task in an invocation of their own, so a job's databases run side by side and
 * each gets a whole invocation (and as many more as it needs: a task stopped by its deadline is
 * put back as a continuation, and the job carries on from its saved progress). Leases keep two
 * workers off one database, so a duplicated message costs a lease check.
 */
export interface JobTask {
  v: 1;
  job: ScheduledJob;
  dbName: string;
  /** The schedule's time (ISO): every task of one fan-out, and every continuation, runs as of it (one backup snapshot, one retention cut). */
  time: string;
  /** How many times the task was put back (continuations). */
  attempt: number;
}

/** A task put back more often than this goes to the dead-letter queue instead: it is not moving. */
export const MAX_CONTINUATIONS = 500;

/** What a coordinator did. */
export interface FanOutReport {
  job: ScheduledJob;
  time: string;
  /** The databases a task was sent for. */
  databases: string[];
}

/** Sends one task per database the job runs on (or those `databases` names) to the queue. */
export async function fanOutJob(xronox: JobHost, job: ScheduledJob, queue: JobQueue, options: { now?: Date; databases?: readonly string[] } = {}): Promise<FanOutReport> {
  const time = (options.now ?? new Date()).toISOString();
  const all = await jobDatabases(xronox, job);
  const databases = options.databases ? all.filter((d) => options.databases!.includes(d)) : all;
  await queue.send(databases.map((dbName) => JSON.stringify({ v: 1, job, dbName, time, attempt: 0 } satisfies JobTask)));
  return { job, time, databases };
}

/** A queue message's body as a task; a `ValidationError` saying what is wrong otherwise. */
export function parseJobTask(body: string): JobTask {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new ValidationError('The job task is not JSON');
  }
  const t = value as Partial<JobTask> | null;
  if (
    typeof t !== 'object' || t === null || t.v !== 1 || !SCHEDULED_JOBS.includes(t.job as ScheduledJob) || typeof t.dbName !== 'string' || !isValidName('dbName', t.dbName) ||
    typeof t.time !== 'string' || Number.isNaN(Date.parse(t.time)) || !Number.isSafeInteger(t.attempt) || (t.attempt as number) < 0
  ) {
    throw new ValidationError(`Not a job task (expected {"v":1,"job":"${SCHEDULED_JOBS.join('|')}","dbName","time","attempt"}): ${body.slice(0, 200)}`);
  }
  return t as JobTask;
}

/** What became of one task. */
export type TaskOutcome =
  /** Finished: the message can go. */
  | { outcome: 'done'; report: JobReport }
  /** Stopped early (its deadline, or another run holds the database): put back as `next`. */
  | { outcome: 'continue'; report: JobReport; next: JobTask; delaySeconds: number }
  /** Failed on its database: the message is to be delivered again (and, after the queue's receive limit, dead-lettered). */
  | { outcome: 'failed'; report: JobReport | null; error: string };

/** Runs one task (its job on its database, as of its time) until done or stopped. */
export async function runJobTask(xronox: JobHost, task: JobTask, options: Pick<RunOptions, 'signal' | 'run'> = {}): Promise<TaskOutcome> {
  const report = await runJob(xronox, task.job, { databases: [task.dbName], now: new Date(task.time), log: null, ...options });
  if (report.failures.length > 0) return { outcome: 'failed', report, error: report.failures.map((f) => `${f.dbName}: ${f.error}`).join('; ') };
  if (report.complete) return { outcome: 'done', report };
  if (task.attempt >= MAX_CONTINUATIONS) return { outcome: 'failed', report, error: `${task.job} of ${task.dbName} was put back ${task.attempt} times without finishing` };
  // Another run holds the database: try again once its lease may have run out. Stopped by the deadline: at once.
  const leased = report.skipped.some((s) => s.reason.startsWith('another'));
  return { outcome: 'continue', report, next: { ...task, attempt: task.attempt + 1 }, delaySeconds: leased ? 60 : 0 };
}
