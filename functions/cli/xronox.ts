/**
 * `xronox`: runs the background jobs and migrations by hand against any configured backend, in
 * this process.
 *
 *   xronox job run <archive|retention|backup|offload> [--db <dbName>]... [--wait] [--config <file>] [--quiet]
 *   xronox backup restore --db <dbName> --date <YYYY-MM-DD> [--snapshot <id>] [--collection <name>]... [--replace] [--wait] [--config <file>] [--quiet]
 *   xronox migrate [<type>|all] [--tenant <id>]... [--config <file>]
 *   xronox --version
 *
 * The config is `--config`, else the file `XRONOX_CONFIG_FILE` names, else `xronox.config.json`
 * (or `.xronox.json`) found as `initXronox()` finds it. The job's report is one JSON line on
 * stdout, written when everything is done; progress goes to stderr meanwhile (a bar on a
 * terminal, else a line per step and every few seconds; `--quiet`: none). Ctrl-C (or SIGTERM)
 * stops the job at its next safe point, or exits after 5 s if none comes (a second Ctrl-C exits
 * at once; either way a rerun finishes the work). Before any work, every store the command uses
 * is opened and checked (`xronox.admin.checkStorage()`): a folder it cannot write or an SQLite
 * file it cannot open is reported with its path and the reason. `migrate` creates ahead of time
 * what the configured databases (of one type, or all) need on their stores: on PostgreSQL each
 * database's schema and tables, and the collections of messaging and identities databases with
 * their indexes; idempotent; one JSON line per database (`migrateDatabases`).
 *
 * Exit codes: 0 done; 1 failed on some database, a store is unusable, or a restore was refused
 * (the database is not empty and --replace was not given); 2 bad usage or config (a --db that
 * names no database the job runs on included); 3 stopped early or a database was busy with
 * another run (rerun, or pass --wait).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Presets, SingleBar } from 'cli-progress';
import { DATABASE_TYPES, initXronox, loadConfigFile, maskSecretsIn, migrateDatabases, restoreBackup, runJob, SCHEDULED_JOBS, XronoxError, type DatabaseType, type JobProgress, type JobReport, type RunOptions, type ScheduledJob, type Xronox } from '../../core/index.js';

/** What `xronox migrate` takes: one database type, or all of them (the default). */
const MIGRATE_TARGETS = [...DATABASE_TYPES, 'all'] as const;

const USAGE = `Usage:
  xronox job run <${SCHEDULED_JOBS.join('|')}> [--db <dbName>]... [--wait] [--config <file>] [--quiet]
  xronox backup restore --db <dbName> --date <YYYY-MM-DD> [--snapshot <id>] [--collection <name>]... [--replace] [--wait] [--config <file>] [--quiet]
  xronox migrate [${MIGRATE_TARGETS.join('|')}] [--tenant <id>]... [--config <file>]

  --db          only these databases (repeat for several); restore: the database to rebuild
  --date        the snapshot's day (UTC)
  --snapshot    restore: that snapshot of the day (its id, e.g. T101502.123Z: the time of
                its run); default: the day's last complete one
  --collection  restore only these collections (default: the whole database)
  --replace     restore over data the database holds, replacing it whole (default: refuse
                unless what is restored is empty)
  --tenant      migrate: only these configured tenants' databases (repeat for several;
                default: every configured database of the type(s), generic and domain ones included)
  --wait        wait for another run's lease on a database instead of skipping it
  --config      the config file (default: $XRONOX_CONFIG_FILE, else xronox.config.json)
  --quiet       no progress bar
  --version     print the version of Xronox and exit`;

export const EXIT = { ok: 0, failed: 1, usage: 2, incomplete: 3 } as const;
/** The longest the CLI takes to stop once signalled, and to shut the engine down after a job. */
const STOP_MS = 5_000;

/** Runs the CLI; returns the exit code (the caller exits), so tests can call it in process. */
export async function main(argv: readonly string[], io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WriteStream | NodeJS.WritableStream } = process): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        db: { type: 'string', multiple: true },
        date: { type: 'string' },
        snapshot: { type: 'string' },
        collection: { type: 'string', multiple: true },
        replace: { type: 'boolean' },
        tenant: { type: 'string', multiple: true },
        wait: { type: 'boolean' },
        config: { type: 'string' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (err) {
    io.stderr.write(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  const { positionals, values } = parsed;
  if (values.version) {
    io.stdout.write(`${packageVersion()}\n`);
    return EXIT.ok;
  }
  if (values.help || positionals.length === 0) {
    io.stderr.write(`${USAGE}\n`);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  const [group, verb, name] = positionals;
  const isRun = group === 'job' && verb === 'run' && SCHEDULED_JOBS.includes(name as ScheduledJob) && positionals.length === 3;
  const isRestore = group === 'backup' && verb === 'restore' && positionals.length === 2;
  const isMigrate = group === 'migrate' && (positionals.length === 1 || (positionals.length === 2 && (MIGRATE_TARGETS as readonly string[]).includes(verb!)));
  if (!isRun && !isRestore && !isMigrate) {
    io.stderr.write(`Unknown command: xronox ${positionals.join(' ')}\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (isRestore && (values.db?.length !== 1 || !values.date)) {
    io.stderr.write(`backup restore needs exactly one --db and a --date\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  if ((values.snapshot !== undefined || values.replace) && !isRestore) {
    io.stderr.write(`--snapshot and --replace are options of backup restore only\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (values.tenant && !isMigrate) {
    io.stderr.write(`--tenant is an option of migrate only\n\n${USAGE}\n`);
    return EXIT.usage;
  }

  let xronox;
  try {
    const file = values.config ?? process.env.XRONOX_CONFIG_FILE;
    xronox = file ? initXronox(loadConfigFile(resolve(file))) : initXronox();
  } catch (err) {
    io.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.usage;
  }

  // An unusable folder or file (or an unreachable store) is reported before any work starts.
  try {
    await xronox.admin.checkStorage(values.db ? { databases: values.db } : {});
  } catch (err) {
    io.stderr.write(`${maskSecretsIn(err instanceof Error ? err.message : String(err), xronox.config)}\n`);
    await xronox.shutdown({ timeoutMs: STOP_MS });
    return EXIT.failed;
  }

  if (isMigrate) {
    try {
      return await migrate(xronox, (verb ?? 'all') as (typeof MIGRATE_TARGETS)[number], values.tenant, io);
    } catch (err) {
      io.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      return err instanceof XronoxError && (err.code === 'VALIDATION_FAILED' || err.code === 'CONFIG_INVALID') ? EXIT.usage : EXIT.failed;
    } finally {
      await xronox.shutdown({ timeoutMs: STOP_MS });
    }
  }

  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    io.stderr.write('\nStopping at the next safe point (Ctrl-C again to quit at once)…\n');
    controller.abort();
    // A safe point that never comes (a store that hangs) does not keep the process: every job is
    // idempotent, so the next run finishes what this one leaves.
    setTimeout(() => {
      io.stderr.write(`Did not stop within ${STOP_MS / 1000} s; exiting (a rerun finishes the work)\n`);
      process.exit(EXIT.incomplete);
    }, STOP_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const terminal = 'isTTY' in io.stderr && io.stderr.isTTY === true;
  const bar = values.quiet ? null : terminal ? progressBar(io.stderr) : progressLines(io.stderr);
  const options: RunOptions = {
    signal: controller.signal,
    waitForLease: values.wait === true,
    log: (line) => {
      bar?.stop();
      io.stdout.write(`${line}\n`);
    },
    ...(bar ? { onProgress: bar.update } : {}),
  };
  try {
    const report: JobReport = isRestore
      ? await restoreBackup(
          xronox,
          {
            dbName: values.db![0]!,
            date: values.date!,
            ...(values.snapshot !== undefined ? { snapshot: values.snapshot } : {}),
            ...(values.collection ? { collections: values.collection } : {}),
            ...(values.replace ? { mode: 'replace' as const } : {}),
          },
          options,
        )
      : await runJob(xronox, name as ScheduledJob, { ...options, ...(values.db ? { databases: values.db } : {}) });
    bar?.stop();
    for (const f of report.failures) io.stderr.write(`${f.dbName}: ${f.error}\n`);
    return report.failures.length > 0 ? EXIT.failed : report.complete ? EXIT.ok : EXIT.incomplete;
  } catch (err) {
    bar?.stop();
    io.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return err instanceof XronoxError && (err.code === 'VALIDATION_FAILED' || err.code === 'CONFIG_INVALID') ? EXIT.usage : EXIT.failed;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await xronox.shutdown({ timeoutMs: STOP_MS });
  }
}

/**
 * `xronox migrate`: what every configured database of the type(s) needs on its stores (on
 * PostgreSQL its schema and tables; messaging and identities: their collections and indexes),
 * created unless there; one JSON line per database on stdout, its error (if any, secrets masked)
 * on stderr too. Dynamic tenants are in no config list (their databases are created on first
 * use), so a `--tenant` that names no configured database is bad usage.
 */
async function migrate(xronox: Xronox, target: (typeof MIGRATE_TARGETS)[number], tenants: string[] | undefined, io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }): Promise<number> {
  const databaseTypes: readonly DatabaseType[] = target === 'all' ? DATABASE_TYPES : [target];
  const reports = await migrateDatabases(xronox, { databaseTypes, ...(tenants ? { tenants } : {}) });
  for (const r of reports) if (r.error) r.error = maskSecretsIn(r.error, xronox.config);
  for (const r of reports) io.stdout.write(`${JSON.stringify(r)}\n`);
  for (const r of reports) if (r.error) io.stderr.write(`${r.dbName}: ${r.error}\n`);
  const what = target === 'all' ? '' : `${target} `;
  const unknown = (tenants ?? []).filter((t) => !reports.some((r) => r.tenantId === t));
  if (unknown.length > 0) {
    io.stderr.write(`No configured ${what}database for tenant ${unknown.map((t) => JSON.stringify(t)).join(', ')} (dynamic tenants' databases are created on first use)\n`);
  } else if (reports.length === 0) io.stderr.write(`No ${what}databases are configured: nothing to migrate\n`);
  return reports.some((r) => r.error) ? EXIT.failed : unknown.length > 0 ? EXIT.usage : EXIT.ok;
}

/**
 * The version in Xronox's package.json: the nearest one above this module that is Xronox's (two
 * folders up from the sources, three from the built `dist/functions/cli/`).
 */
function packageVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'xronox' && pkg.version) return pkg.version;
    }
    if (dirname(dir) === dir) throw new Error(`No package.json of xronox above ${fileURLToPath(import.meta.url)}`);
  }
}

/** How often, at most, a progress line is written when stderr is not a terminal (a new step always gets one). */
const PROGRESS_LINE_MS = 2000;

/**
 * Progress for logs and pipes: a line when the run reaches a new database or step or finishes
 * one, and at most every `PROGRESS_LINE_MS` while counts change.
 */
function progressLines(stream: NodeJS.WritableStream): { update: (p: JobProgress) => void; stop: () => void } {
  let last = '';
  let lastStep = '';
  let lastAt = 0;
  return {
    update: (p) => {
      const step = `${p.databasesDone}\u0000${p.dbName}\u0000${p.phase}`;
      const counts = Object.entries(p.counts).map(([k, v]) => `${k} ${v}`).join(', ') || '-';
      const line = `${p.job}: ${p.databasesDone}/${p.databasesTotal} databases | ${p.dbName || '-'}${p.phase ? ` ${p.phase}` : ''} | ${counts}`;
      const now = Date.now();
      if (line === last || (step === lastStep && now - lastAt < PROGRESS_LINE_MS)) return;
      stream.write(`${line}\n`);
      last = line;
      lastStep = step;
      lastAt = now;
    },
    stop: () => undefined,
  };
}

/** A bar over the databases of the run, with the units of work and counts so far. */
function progressBar(stream: NodeJS.WritableStream): { update: (p: JobProgress) => void; stop: () => void } {
  const bar = new SingleBar(
    {
      format: '{job} [{bar}] {value}/{total} databases | {units} done | {db} | {counts}',
      stream: stream as NodeJS.WriteStream,
      hideCursor: true,
      // Jobs report between pages; redraw at most 10 times a second.
      fps: 10,
    },
    Presets.shades_classic,
  );
  let started = false;
  return {
    update: (p) => {
      const payload = { job: p.job, units: p.units, db: p.phase ? `${p.dbName} ${p.phase}` : p.dbName, counts: Object.entries(p.counts).map(([k, v]) => `${k} ${v}`).join(', ') || '-' };
      if (!started) {
        bar.start(p.databasesTotal, p.databasesDone, payload);
        started = true;
      } else bar.update(p.databasesDone, payload);
    },
    stop: () => {
      if (started) bar.stop();
      started = false;
    },
  };
}

// Run when executed directly (`tsx functions/cli/xronox.ts …`, or the `xronox` bin).
if (process.argv[1] && resolve(process.argv[1]).replace(/\.[cm]?[jt]s$/, '') === resolve(new URL(import.meta.url).pathname).replace(/\.[cm]?[jt]s$/, '')) {
  process.exitCode = await main(process.argv.slice(2));
}
