import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { acquireMongoClient } from '../../core/adapters/mongodb/mongodb-client-pool.js';

/**
 * Where the MongoDB suites get a server: `MONGODB_URI` when set, else a container started with
 * testcontainers when a Docker engine answers, else nowhere — and then the suites say so loudly.
 * (No MongoDB server can be installed on the machines this project is built on.)
 */
export function mongoAvailability(): { source: 'env' | 'docker' } | { skip: string } {
  if (process.env.MONGODB_URI) return { source: 'env' };
  if (dockerAnswers()) return { source: 'docker' };
  return { skip: 'MONGODB_URI is not set and no Docker engine answers `docker info`, so there is no MongoDB server to test against' };
}

/** Set to `1` to run the suites against a server that holds Xronox databases of something else than a test run. */
export const SHARE_SERVER_VARIABLE = 'XRONOX_TEST_MONGODB_SHARED';
/** The suites' own bookkeeping on a server they share: which runs are under way (a run's databases are its own). */
const RUNS = { db: 'xronox_test_runs', collection: 'runs' } as const;
/** A run registered longer ago than this crashed: it no longer vouches for the server. */
const RUN_LIFETIME_MS = 2 * 3600_000;
const SYSTEM_DATABASES = new Set(['admin', 'config', 'local', RUNS.db]);

/** One run of a MongoDB suite: `uri` for its stores, and `finish`, which drops exactly the databases the run created. */
export interface MongoRun {
  uri: string;
  finish(): Promise<void>;
}

/**
 * Starts a run: a server (from `MONGODB_URI`, or a new container), checked to be a replica set
 * when `replicaSet` is asked, and — a server from `MONGODB_URI` may be anyone's — refused when
 * it holds Xronox databases (index-store collections) that no test run under way created,
 * unless `XRONOX_TEST_MONGODB_SHARED=1`. The run's stores must use `uri`: every command sent
 * through its client is watched, and `finish` drops the databases they named that did not exist
 * when the run started, and nothing else.
 */
export async function startMongoRun(source: 'env' | 'docker', options: { replicaSet: boolean }): Promise<MongoRun> {
  const server = source === 'env' ? { uri: process.env.MONGODB_URI!, stop: async () => undefined } : await startContainer();
  const admin = new MongoClient(server.uri, { serverSelectionTimeoutMS: 10_000 });
  const runId = randomUUID();
  try {
    const hello = await admin.db('admin').command({ hello: 1 });
    if (options.replicaSet && typeof hello.setName !== 'string' && hello.msg !== 'isdbgrid') {
      throw new Error('The MongoDB suites need a replica set (or mongos): the server at MONGODB_URI is a standalone server. `docker compose up -d mongodb` starts a one-node replica set');
    }
    const runs = admin.db(RUNS.db).collection<{ _id: string; startedAt: Date }>(RUNS.collection);
    const live = await runs.countDocuments({ startedAt: { $gt: new Date(Date.now() - RUN_LIFETIME_MS) } });
    // A run under way checked this server when it started: the Xronox databases now there are test runs'.
    if (source === 'env' && live === 0 && process.env[SHARE_SERVER_VARIABLE] !== '1') {
      const foreign = await xronoxDatabases(admin);
      if (foreign.length > 0) {
        throw new Error(
          `Refusing to run the MongoDB suites: the server at MONGODB_URI holds Xronox databases (${foreign.join(', ')}). ` +
            `The suites drop only what they create, but run them against a server of their own, or set ${SHARE_SERVER_VARIABLE}=1 if these are yours to share.`,
        );
      }
    }
    await runs.insertOne({ _id: runId, startedAt: new Date() });
  } catch (err) {
    await admin.close();
    await server.stop();
    throw err;
  }

  const before = new Set(await databaseNames(admin));
  const named = new Set<string>();
  const uri = withOption(server.uri, 'monitorCommands=true');
  const watched = acquireMongoClient(uri);
  watched.client.on('commandStarted', (event) => {
    named.add(event.databaseName);
    // MongoDB 8.0's bulkWrite runs on `admin` and names its collections' namespaces.
    for (const { ns } of (event.command.nsInfo as Array<{ ns: string }> | undefined) ?? []) named.add(ns.slice(0, ns.indexOf('.')));
  });
  return {
    uri,
    async finish() {
      try {
        await watched.release();
        for (const name of await databaseNames(admin)) if (named.has(name) && !before.has(name)) await admin.db(name).dropDatabase();
        const runs = admin.db(RUNS.db).collection<{ _id: string }>(RUNS.collection);
        await runs.deleteOne({ _id: runId });
        if ((await runs.countDocuments()) === 0) await admin.db(RUNS.db).dropDatabase();
      } finally {
        await admin.close();
        await server.stop();
      }
    },
  };
}

/** Databases holding a collection of the index store's layout (`{c}_head`, `{c}_ver`, `{c}_counter`, the `xronox_` queues). */
async function xronoxDatabases(admin: MongoClient): Promise<string[]> {
  const found: string[] = [];
  for (const db of await databaseNames(admin)) {
    const names = (await admin.db(db).listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
    if (names.some((n) => /^xronox_|_(head|ver|counter)$/.test(n))) found.push(db);
  }
  return found;
}

/** Names of the server's databases but its own. */
async function databaseNames(admin: MongoClient): Promise<string[]> {
  const { databases } = await admin.db('admin').admin().listDatabases({ nameOnly: true });
  return databases.map((d) => d.name).filter((name) => !SYSTEM_DATABASES.has(name));
}

async function startContainer(): Promise<{ uri: string; stop: () => Promise<void> }> {
  // Loaded only when Docker is there: testcontainers is a development dependency of these suites alone.
  const { MongoDBContainer } = await import('@testcontainers/mongodb');
  const container = await new MongoDBContainer(process.env.XRONOX_TEST_MONGODB_IMAGE ?? 'mongo:8.0').start();
  // The module starts a one-node replica set; directConnection skips the container's internal host name.
  return { uri: `${container.getConnectionString()}?directConnection=true`, stop: async () => void (await container.stop()) };
}

/** The URI with one more option (`mongodb://h:1` → `mongodb://h:1/?o=1`; `…/?a=1` → `…/?a=1&o=1`). */
function withOption(uri: string, option: string): string {
  if (uri.includes('?')) return `${uri}&${option}`;
  const afterScheme = uri.slice(uri.indexOf('://') + 3);
  return afterScheme.includes('/') ? `${uri}?${option}` : `${uri}/?${option}`;
}

function dockerAnswers(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}
