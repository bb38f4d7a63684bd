/**
 * A PostgreSQL cluster of a test's own, for what must never be done to the machine's shared
 * server (other test files use it at the same time): restarting it, crashing it. The cluster is
 * made with `initdb` in a temporary folder, listens on a free port of 127.0.0.1 (and a socket in
 * that folder), and is stopped and removed by `destroy()`, which a test calls in `afterAll` so
 * that it runs when the test fails too.
 *
 * ```ts
 * const cluster = await createPrivateCluster();
 * cluster.uri;                         // postgres://postgres@127.0.0.1:<port>/postgres
 * await cluster.restart();             // pg_ctl -m fast restart
 * await cluster.stop('immediate');     // a crash: no checkpoint, recovery from the WAL at the next start
 * await cluster.start();
 * await cluster.destroy();             // stop (immediate) and remove the folder; never throws
 * createPrivateCluster({ wal_writer_delay: '10s' });   // with server settings of the test's own
 * ```
 *
 * The binaries are PostgreSQL 15's (`XRONOX_PG_BIN`, default `/usr/lib/postgresql/15/bin`).
 * `initdb` refuses to run as root: as root, every command runs as the `postgres` OS user
 * (`runuser`), in a folder it owns.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export const PG_BIN = process.env.XRONOX_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const RUNUSER = '/usr/sbin/runuser';
/** No pg_ctl step waits longer: a start that needs recovery takes seconds, not minutes. */
const PG_CTL_WAIT_S = 60;

export type ClusterAvailability = { ok: true } | { ok: false; reason: string };

export interface PrivateCluster {
  readonly uri: string;
  readonly port: number;
  /** The postmaster's process id (from `postmaster.pid`); a new one after each start. */
  postmasterPid(): number | undefined;
  start(): Promise<void>;
  stop(mode: 'fast' | 'immediate'): Promise<void>;
  restart(): Promise<void>;
  /** The server log so far (for a failure's message). */
  log(): string;
  destroy(): Promise<void>;
}

/** Whether a private cluster can be made here, and if not, why. */
export function privateClusterAvailability(): ClusterAvailability {
  for (const tool of ['initdb', 'pg_ctl']) {
    if (!existsSync(join(PG_BIN, tool))) return { ok: false, reason: `${join(PG_BIN, tool)} does not exist (set XRONOX_PG_BIN to PostgreSQL's bin folder)` };
  }
  if (userInfo().uid === 0) {
    if (!existsSync(RUNUSER)) return { ok: false, reason: `running as root, and ${RUNUSER} (to run initdb as the postgres user) does not exist` };
    if (postgresUser() === undefined) return { ok: false, reason: 'running as root, and there is no postgres OS user to run initdb as' };
  }
  return { ok: true };
}

/**
 * `settings`: server settings beyond this file's (`-c name=value` at every start), e.g. a test
 * that needs the WAL writer to stay idle for a while.
 */
export async function createPrivateCluster(settings: Readonly<Record<string, string>> = {}): Promise<PrivateCluster> {
  const root = mkdtempSync(join(tmpdir(), 'xronox-pg-cluster-'));
  const asRoot = userInfo().uid === 0;
  const owner = asRoot ? postgresUser() : undefined;
  if (owner) chownSync(root, owner.uid, owner.gid);
  const dataDir = join(root, 'data');
  const logFile = join(root, 'server.log');
  const port = await freePort();
  const run = (tool: string, args: readonly string[]) => runCommand(asRoot ? RUNUSER : join(PG_BIN, tool), asRoot ? ['-u', 'postgres', '--', join(PG_BIN, tool), ...args] : args, root);
  // The server's settings: this port and a socket in the test's folder (never the shared server's),
  // few connections and little memory; durability as the defaults have it (fsync, synchronous commit).
  const extra = Object.entries(settings).map(([name, value]) => ` -c ${name}=${value}`).join('');
  const serverOptions = `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c max_connections=40 -c shared_buffers=16MB${extra}`;
  let started = false;

  const cluster: PrivateCluster = {
    uri: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    postmasterPid: () => {
      const file = join(dataDir, 'postmaster.pid');
      if (!existsSync(file)) return undefined;
      const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
      return Number.isInteger(pid) ? pid : undefined;
    },
    start: async () => {
      await run('pg_ctl', ['-D', dataDir, '-l', logFile, '-o', serverOptions, '-w', '-t', String(PG_CTL_WAIT_S), 'start']);
      started = true;
    },
    stop: async (mode) => {
      await run('pg_ctl', ['-D', dataDir, '-m', mode, '-w', '-t', String(PG_CTL_WAIT_S), 'stop']);
    },
    restart: async () => {
      await run('pg_ctl', ['-D', dataDir, '-l', logFile, '-o', serverOptions, '-m', 'fast', '-w', '-t', String(PG_CTL_WAIT_S), 'restart']);
    },
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    destroy: async () => {
      if (started && existsSync(join(dataDir, 'postmaster.pid'))) await cluster.stop('immediate').catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    // C ordering and UTF8, as Xronox needs; no fsync of initdb's own files (a test's throwaway cluster).
    await run('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    await cluster.start();
    return cluster;
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
}

function postgresUser(): { uid: number; gid: number } | undefined {
  try {
    const line = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('postgres:'));
    const [, , uid, gid] = line?.split(':') ?? [];
    return uid !== undefined && gid !== undefined ? { uid: Number(uid), gid: Number(gid) } : undefined;
  } catch {
    return undefined;
  }
}

function runCommand(file: string, args: readonly string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // pg_ctl bounds its own waits (-t); this bound only turns a hang of anything else into a failure.
    execFile(file, args, { cwd, timeout: (PG_CTL_WAIT_S + 30) * 1000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${[file, ...args].join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** A port nothing listens on now (the kernel's pick); the cluster binds it a moment later. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
