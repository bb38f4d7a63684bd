/**
 * `xronox`: runs the background jobs and migrations by hand against any configured backend, in
 * this process.
 *
 *   xronox job run <archive|retention|backup|offload> [--db <dbName>]... [--wait] [--config <file>] [--quiet]
 *   xronox backup restore --db <dbName> --date <YYYY-MM-DD> [--snapshot <id>] [--collection <name>]... [--replace] [--wait] [--config <file>] [--quiet]
 *   xronox migrate [<type>|all] [--tenant <id>]... [--config <file>]
 *   xronox verify [--db <dbName>]... [--collection <name>]... [--config <file>] [--quiet]
 *   xronox digest [--db <dbName>]... [--collection <name>]... [--config <file>]
 *   xronox hash-key --id <id> --role <read|write|admin> [--tenant <id>]... [--domain <name>]... [--generic]
 *   xronox [<command>] --help | --version
 *
 * The config is `--config`, else the file `XRONOX_CONFIG_FILE` names, else `xronox.config.json`
 * (or `.xronox.json`) found as `initXronox()` finds it. The job's report is one JSON line on
 * stdout, written when everything is done; progress goes to stderr meanwhile, in records against
 * the step's total with an ETA where the job counts its work first (a bar on a terminal, else a
 * line per step and every few seconds; `--quiet`: none). Ctrl-C (or SIGTERM)
 * stops the job at its next safe point, or exits after 5 s if none comes (a second Ctrl-C exits
 * at once; either way a rerun finishes the work). Before any work, every store the command uses
 * is opened and checked (`xronox.admin.checkStorage()`): a folder it cannot write or an SQLite
 * file it cannot open is reported with its path and the reason. `migrate` creates ahead of time
 * what the configured databases (of one type, or all) need on their stores: on PostgreSQL each
 * database's schema and tables, and the collections of messaging and identities databases with
 * their indexes; idempotent; one JSON line per database (`migrateDatabases`). `hash-key` reads an
 * API key from stdin and prints its `api.keys[]` entry (the key's SHA-256 and its access), so a
 * config never holds the key itself. `--help` (on stdout) and `--version` need no config.
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
import { TOKEN68 } from '../api/access.js';
import { hashApiKey } from '../api/api-keys.js';
import { API_ROLES, apiKeySchema, CONFIG_FILE_NAMES, ConfigError, DATABASE_TYPES, findConfigFile, initXronox, loadConfigFile, maskSecretsIn, migrateDatabases, restoreBackup, runJob, SCHEDULED_JOBS, XronoxError, type DatabaseType, type JobProgress, type JobReport, type RunOptions, type ScheduledJob, type Xronox } from '../../core/index.js';

/** What `xronox migrate` takes: one database type, or all of them (the default). */
const MIGRATE_TARGETS = [...DATABASE_TYPES, 'all'] as const;

const CONFIG_OPTION = `  --config      the config file (default: $XRONOX_CONFIG_FILE, else xronox.config.json or
                .xronox.json in the working directory or the nearest package root above it)`;

/** Each command's synopsis and options: `xronox <command> --help` prints one, `xronox --help` all synopses. */
const COMMANDS = {
  job: {
    synopsis: `xronox job run <${SCHEDULED_JOBS.join('|')}> [--db <dbName>]... [--wait] [--config <file>] [--quiet]`,
    about: 'Runs one background job on every database it applies to (or those --db names), in this process.',
    options: `  --db          only these databases (repeat for several)
  --wait        wait for another run's lease on a database instead of skipping it
${CONFIG_OPTION}
  --quiet       no progress on stderr (the JSON report on stdout stays)`,
  },
  backup: {
    synopsis: 'xronox backup restore --db <dbName> --date <YYYY-MM-DD> [--snapshot <id>] [--collection <name>]... [--replace] [--wait] [--config <file>] [--quiet]',
    about: 'Rebuilds one database from a backup snapshot (backups themselves are the job: xronox job run backup).',
    options: `  --db          the database to rebuild
  --date        the snapshot's day (UTC)
  --snapshot    that snapshot of the day (its id, e.g. T101502.123Z: the time of its run);
                default: the day's last complete one
  --collection  restore only these collections (default: the whole database)
  --replace     restore over data the database holds, replacing it whole (default: refuse
                unless what is restored is empty)
  --wait        wait for another run's lease on the database instead of stopping
${CONFIG_OPTION}
  --quiet       no progress on stderr (the JSON report on stdout stays)`,
  },
  migrate: {
    synopsis: `xronox migrate [${[...DATABASE_TYPES, 'all'].join('|')}] [--tenant <id>]... [--config <file>]`,
    about: 'Creates ahead of time what the configured databases need on their stores (schemas, tables, collections, indexes); idempotent.',
    options: `  --tenant      only these configured tenants' databases (repeat for several; default: every
                configured database of the type(s), generic and domain ones included)
${CONFIG_OPTION}`,
  },
  verify: {
    synopsis: 'xronox verify [--db <dbName>]... [--collection <name>]... [--config <file>] [--quiet]',
    about: `Recomputes every version's hash chain of the versioned databases (or those --db names), checks each
stored column, head and current.json against it, and, with integrity.digestKey, the store against the
latest signed digest. Findings go to stderr as they are found, the report (JSON) to stdout; exit code 1
on any finding. Memory stays flat however long the histories are.`,
    options: `  --db          only these databases (repeat for several; default: every versioned database)
  --collection  only these collections (repeat for several)
${CONFIG_OPTION}
  --quiet       no progress on stderr (findings and the JSON report stay)`,
  },
  digest: {
    synopsis: 'xronox digest [--db <dbName>]... [--collection <name>]... [--config <file>]',
    about: `Takes a signed digest of every collection of the versioned databases (or those --db names) and writes it
to the backups bucket (digests/{dbName}/{collection}/{time}.json); run it on a schedule (cron). Needs
integrity.digestKey. A collection that fails verification gets no digest: it is named on stderr and
the exit code is 1. The report (JSON) goes to stdout.`,
    options: `  --db          only these databases (repeat for several; default: every versioned database)
  --collection  only these collections (repeat for several)
${CONFIG_OPTION}`,
  },
  'hash-key': {
    synopsis: `xronox hash-key --id <id> --role <${API_ROLES.join('|')}> [--tenant <id>]... [--domain <name>]... [--generic]`,
    about: `Reads an API key from stdin (one line) and prints its entry for the config's api.keys list: the key's
SHA-256 and its access. The config holds only the hash; the client sends the key as a bearer token.
  printf %s "$KEY" | xronox hash-key --id ci-writer --role write --tenant acme`,
    options: `  --id          names the key in logs; stored as the actor of every write it makes
  --role        read (GETs and counters), write (+ writes and record restores), admin (+ collection restores)
  --tenant      tenants it may reach (repeat for several; "*" for all)
  --domain      domains it may reach (repeat for several; "*" for all)
  --generic     it may reach the generic tier`,
  },
} as const;
type Command = keyof typeof COMMANDS;

const USAGE = `Usage:
${Object.values(COMMANDS).map((c) => `  ${c.synopsis}`).join('\n')}
  xronox <command> --help     one command's options
  xronox --version`;

function commandHelp(command: Command): string {
  const c = COMMANDS[command];
  return `Usage: ${c.synopsis}\n\n${c.about}\n\nOptions:\n${c.options}\n`;
}

/** This package's version: from the nearest package.json above this file that is Xronox's (the source tree, or a built copy). */
export function packageVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'xronox' && pkg.version) return pkg.version;
    }
    if (dirname(dir) === dir) throw new Error('package.json of xronox not found above the CLI');
  }
}

export const EXIT = { ok: 0, failed: 1, usage: 2, incomplete: 3 } as const;
/** The longest the CLI takes to stop once signalled, and to shut the engine down after a job. */
const STOP_MS = 5_000;

/** Runs the CLI; returns the exit code (the caller exits), so tests can call it in process. */
export async function main(
  argv: readonly string[],
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WriteStream | NodeJS.WritableStream; stdin?: NodeJS.ReadableStream & { isTTY?: boolean } } = process,
): Promise<number> {
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
        domain: { type: 'string', multiple: true },
        id: { type: 'string' },
        role: { type: 'string' },
        generic: { type: 'boolean' },
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
  const [group, verb, name] = positionals;
  const command = group !== undefined && Object.hasOwn(COMMANDS, group) ? (group as Command) : undefined;
  if (values.help) {
    // Help asked for is the answer, so it goes to stdout (pipeable into a pager); an unknown command is still bad usage.
    if (group !== undefined && !command) {
      io.stderr.write(`Unknown command: xronox ${group}\n\n${USAGE}\n`);
      return EXIT.usage;
    }
    io.stdout.write(command ? commandHelp(command) : `${USAGE}\n`);
    return EXIT.ok;
  }
  if (values.version) {
    if (positionals.length > 0) {
      io.stderr.write(`--version takes no command\n\n${USAGE}\n`);
      return EXIT.usage;
    }
    io.stdout.write(`${packageVersion()}\n`);
    return EXIT.ok;
  }
  if (positionals.length === 0) {
    io.stderr.write(`${USAGE}\n`);
    return EXIT.usage;
  }
  const keyOptions = values.id !== undefined || values.role !== undefined || values.domain !== undefined || values.generic !== undefined;
  if (command === 'hash-key') {
    if (positionals.length > 1) {
      io.stderr.write(`hash-key takes no arguments: it reads the key from stdin\n\n${commandHelp('hash-key')}`);
      return EXIT.usage;
    }
    return hashKey(values, io);
  }
  if (keyOptions) {
    io.stderr.write(`--id, --role, --domain and --generic are options of hash-key only\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (command === 'verify' || command === 'digest') {
    if (positionals.length > 1 || values.date !== undefined || values.snapshot !== undefined || values.replace || values.tenant || values.wait) {
      io.stderr.write(`${command} takes only --db, --collection, --config${command === 'verify' ? ' and --quiet' : ''}\n\n${commandHelp(command)}`);
      return EXIT.usage;
    }
    return command === 'verify' ? verifyCommand(values, io) : digestCommand(values, io);
  }
  const isRun = group === 'job' && verb === 'run' && SCHEDULED_JOBS.includes(name as ScheduledJob) && positionals.length === 3;
  const isRestore = group === 'backup' && verb === 'restore' && positionals.length === 2;
  const isMigrate = group === 'migrate' && (positionals.length === 1 || (positionals.length === 2 && (MIGRATE_TARGETS as readonly string[]).includes(verb!)));
  if (!isRun && !isRestore && !isMigrate) {
    io.stderr.write(`Unknown command: xronox ${positionals.join(' ')}\n\n${command ? commandHelp(command) : `${USAGE}\n`}`);
    return EXIT.usage;
  }
  if (isRestore && (values.db?.length !== 1 || !values.date)) {
    io.stderr.write(`backup restore needs exactly one --db and a --date\n\n${commandHelp('backup')}`);
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

  const xronox = openXronox(values.config, io.stderr);
  if (xronox === null) return EXIT.usage;

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
 * The engine over the config `--config` names (else `XRONOX_CONFIG_FILE`, else the nearest config
 * file), or `null` after saying on stderr why it cannot be read (a usage error).
 */
function openXronox(config: string | undefined, stderr: NodeJS.WritableStream): Xronox | null {
  try {
    const file = config ?? process.env.XRONOX_CONFIG_FILE;
    return initXronox(loadConfigFile(file ? resolve(file) : findConfig()));
  } catch (err) {
    stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return null;
  }
}

/** `xronox digest`: a signed digest of every collection; 1 when one failed verification (and got none). */
async function digestCommand(
  values: { db?: string[] | undefined; collection?: string[] | undefined; config?: string | undefined },
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WriteStream | NodeJS.WritableStream },
): Promise<number> {
  const xronox = openXronox(values.config, io.stderr);
  if (xronox === null) return EXIT.usage;
  try {
    await xronox.admin.checkStorage(values.db ? { databases: values.db } : {});
    const report = await xronox.writeDigests({ ...(values.db ? { databases: values.db } : {}), ...(values.collection ? { collections: values.collection } : {}) });
    for (const f of report.failed) io.stderr.write(`FAILED ${f.dbName}/${f.collection}: ${f.error}\n`);
    io.stdout.write(`${JSON.stringify(report)}\n`);
    return report.failed.length > 0 ? EXIT.failed : EXIT.ok;
  } catch (err) {
    io.stderr.write(`${maskSecretsIn(err instanceof Error ? err.message : String(err), xronox.config)}\n`);
    return err instanceof XronoxError && (err.code === 'VALIDATION_FAILED' || err.code === 'CONFIG_INVALID') ? EXIT.usage : EXIT.failed;
  } finally {
    await xronox.shutdown({ timeoutMs: STOP_MS });
  }
}

/** `xronox verify`: every finding on stderr as it comes, the report on stdout; 1 on any finding. */
async function verifyCommand(
  values: { db?: string[] | undefined; collection?: string[] | undefined; config?: string | undefined; quiet?: boolean | undefined },
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WriteStream | NodeJS.WritableStream },
): Promise<number> {
  const xronox = openXronox(values.config, io.stderr);
  if (xronox === null) return EXIT.usage;
  let stopped = false;
  const onSignal = () => {
    // Verify writes nothing: stopping at once loses nothing.
    stopped = true;
    io.stderr.write('\nStopped\n');
    process.exit(EXIT.incomplete);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let lastProgress = 0;
  try {
    await xronox.admin.checkStorage(values.db ? { databases: values.db } : {});
    const report = await xronox.verifyDatabases({
      ...(values.db ? { databases: values.db } : {}),
      ...(values.collection ? { collections: values.collection } : {}),
      onFinding: (f) => io.stderr.write(`FINDING ${f.dbName}/${f.collection} ${f.id} v${f.ov}: ${f.reason}\n`),
      onProgress: (p) => {
        if (values.quiet || Date.now() - lastProgress < 2_000) return;
        lastProgress = Date.now();
        io.stderr.write(`${p.dbName}/${p.collection}: ${p.records} records, ${p.versions} versions checked, ${p.findings} findings\n`);
      },
    });
    for (const db of report.databases) {
      for (const c of db.collections) {
        if (c.digest && !c.digest.ok) io.stderr.write(`FINDING ${db.dbName}/${c.collection} digest ${c.digest.key}: ${c.digest.reason}\n`);
        if (!values.quiet) io.stderr.write(`${db.dbName}/${c.collection}: ${c.records} records, ${c.versions} versions, ${c.findings} findings${c.digest ? `, digest ${c.digest.ok ? 'holds' : 'FAILS'}` : ', no signed digest'}\n`);
      }
    }
    io.stdout.write(`${JSON.stringify(report)}\n`);
    return report.ok ? EXIT.ok : EXIT.failed;
  } catch (err) {
    io.stderr.write(`${maskSecretsIn(err instanceof Error ? err.message : String(err), xronox.config)}\n`);
    return err instanceof XronoxError && (err.code === 'VALIDATION_FAILED' || err.code === 'CONFIG_INVALID') ? EXIT.usage : EXIT.failed;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!stopped) await xronox.shutdown({ timeoutMs: STOP_MS });
  }
}

/**
 * The config file found as `initXronox()` finds it; when there is none, the library's message
 * (which tells a program to pass a config) becomes one for a person at a terminal.
 */
function findConfig(): string {
  try {
    return findConfigFile();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const searched = (err.issues[0]?.message ?? err.message).replace(/\. Pass a config.*$/s, '');
    throw new Error(
      [
        `${searched}.`,
        'Tell xronox which config to use:',
        '  --config <file>            e.g. npx xronox migrate --config ./xronox.prod.json',
        '  XRONOX_CONFIG_FILE=<file>  the same, from the environment',
        `or create ${CONFIG_FILE_NAMES[0]} in this folder (its keys: docs/config.md).`,
      ].join('\n'),
      { cause: err },
    );
  }
}

/** Shortest key `hash-key` accepts: the config keeps a plain SHA-256, safe only for long random keys (apiKeySchema). */
const MIN_KEY_LENGTH = 32;

/** `xronox hash-key`: the `api.keys[]` entry for the key on stdin, checked by the config's own schema. */
async function hashKey(
  values: { id?: string | undefined; role?: string | undefined; tenant?: string[] | undefined; domain?: string[] | undefined; generic?: boolean | undefined },
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream; stdin?: NodeJS.ReadableStream & { isTTY?: boolean } },
): Promise<number> {
  const stdin = io.stdin ?? process.stdin;
  if (stdin.isTTY) {
    // Typed at a terminal, the key would stay on screen and in the scrollback.
    io.stderr.write(`hash-key reads the key from stdin, not from the terminal:\n  printf %s "$KEY" | xronox hash-key --id <id> --role <role> …\n`);
    return EXIT.usage;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  const key = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (!TOKEN68.test(key) || key.length < MIN_KEY_LENGTH) {
    io.stderr.write(
      `The key on stdin must be one line of at least ${MIN_KEY_LENGTH} letters, digits and -._~+/ (a bearer token; got ${key.length === 0 ? 'nothing' : `${key.length} characters${TOKEN68.test(key) ? '' : /\s/.test(key) ? ' with white space' : ', some of which a bearer token cannot hold'}`}): ` +
        `keys are kept as a plain SHA-256, which is safe only for long random keys. Make one with\n  node -e "console.log('xrx_' + require('node:crypto').randomBytes(32).toString('base64url'))"\n`,
    );
    return EXIT.usage;
  }
  const entry = apiKeySchema.safeParse({
    id: values.id,
    sha256: hashApiKey(key),
    role: values.role,
    tenants: values.tenant ?? [],
    domains: values.domain ?? [],
    generic: values.generic === true,
  });
  if (!entry.success) {
    const given = { tenants: values.tenant ?? [], domains: values.domain ?? [] };
    const problems = entry.error.issues.map((i) => {
      const [field, index] = i.path;
      const list = field === 'tenants' || field === 'domains' ? field : undefined;
      const option = list ? `--${list.slice(0, -1)} ${JSON.stringify(given[list][Number(index)])}` : `--${String(field)}`;
      return `  ${option}: ${i.message}`;
    });
    io.stderr.write(`${problems.join('\n')}\n\n${commandHelp('hash-key')}`);
    return EXIT.usage;
  }
  io.stdout.write(`${JSON.stringify(entry.data)}\n`);
  return EXIT.ok;
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

/** How often, at most, a progress line is written when stderr is not a terminal (a new step always gets one). */
const PROGRESS_LINE_MS = 2000;

/** `1,234 records`, or `1,234/5,000 records (25%)` when the step's total is known. */
function amount(p: JobProgress): string {
  if (p.total === null) return `${p.done.toLocaleString('en-US')} ${p.unit}`;
  const share = p.total > 0 ? Math.min(100, Math.floor((p.done / p.total) * 100)) : 100;
  return `${p.done.toLocaleString('en-US')}/${p.total.toLocaleString('en-US')} ${p.unit} (${share}%)`;
}

function countsOf(p: JobProgress): string {
  return Object.entries(p.counts).map(([k, v]) => `${k} ${v}`).join(', ') || '-';
}

/** `1m 05s` */
function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s` : `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * Progress for logs and pipes: a line when the run reaches a new database or step (or learns the
 * step's total) or finishes one, and at most every `PROGRESS_LINE_MS` while counts change; with
 * the step's total known, how much is left and when it should be done at the rate so far.
 */
function progressLines(stream: NodeJS.WritableStream): { update: (p: JobProgress) => void; stop: () => void } {
  let last = '';
  let lastStep = '';
  let lastAt = 0;
  let work = '';
  let stepStartedAt = Date.now();
  return {
    update: (p) => {
      const now = Date.now();
      // The ETA's rate is the current step's: from when the run reached this database or phase.
      if (`${p.dbName}\u0000${p.phase}` !== work) {
        work = `${p.dbName}\u0000${p.phase}`;
        stepStartedAt = now;
      }
      const step = `${p.databasesDone}\u0000${work}\u0000${p.total}`;
      const eta = p.total !== null && p.done > 0 && p.done < p.total ? ` | ETA ${duration(((now - stepStartedAt) / p.done) * (p.total - p.done))}` : '';
      const line = `${p.job}: ${p.databasesDone}/${p.databasesTotal} databases | ${p.dbName || '-'}${p.phase ? ` ${p.phase}` : ''} | ${amount(p)}${eta} | ${countsOf(p)}`;
      if (line === last || (step === lastStep && now - lastAt < PROGRESS_LINE_MS)) return;
      stream.write(`${line}\n`);
      last = line;
      lastStep = step;
      lastAt = now;
    },
    stop: () => undefined,
  };
}

/**
 * A terminal bar per step (a database, or a phase of one): over the step's records with an ETA
 * when the job counted them first, else a running count. A finished step keeps its line.
 */
function progressBar(stream: NodeJS.WritableStream): { update: (p: JobProgress) => void; stop: () => void } {
  const withTotal = '{job} {databases} databases | {db} [{bar}] {value}/{total} {unit} {percentage}% | ETA {eta_formatted} | {counts}';
  const withoutTotal = '{job} {databases} databases | {db} | {value} {unit} in {duration_formatted} | {counts}';
  let bar: SingleBar | null = null;
  let step = '';
  return {
    update: (p) => {
      const payload = { job: p.job, unit: p.unit, db: p.phase ? `${p.dbName} ${p.phase}` : p.dbName || '-', databases: `${p.databasesDone}/${p.databasesTotal}`, counts: countsOf(p) };
      const key = `${p.dbName}\u0000${p.phase}\u0000${p.total}`;
      if (bar && key !== step) {
        bar.stop();
        bar = null;
      }
      if (!bar) {
        bar = new SingleBar(
          {
            format: p.total === null ? withoutTotal : withTotal,
            stream: stream as NodeJS.WriteStream,
            hideCursor: true,
            // Jobs report between pages; redraw at most 10 times a second.
            fps: 10,
            etaBuffer: 50,
          },
          Presets.shades_classic,
        );
        bar.start(p.total ?? 0, p.done, payload);
        step = key;
      } else bar.update(p.done, payload);
    },
    stop: () => {
      bar?.stop();
      bar = null;
    },
  };
}

// Run when executed directly (`tsx functions/cli/xronox.ts …`, or the `xronox` bin).
if (process.argv[1] && resolve(process.argv[1]).replace(/\.[cm]?[jt]s$/, '') === resolve(new URL(import.meta.url).pathname).replace(/\.[cm]?[jt]s$/, '')) {
  process.exitCode = await main(process.argv.slice(2));
}
