import { execFileSync } from 'node:child_process';
import { MongoClient } from 'mongodb';

/**
 * Where the MongoDB suites get a server: `MONGODB_URI` when set, else a container started with
 * testcontainers when a Docker engine answers, else nowhere — and then the suites say so loudly.
 * (No MongoDB server can be installed on the machines this project is built on.)
 */
export interface MongoServer {
  uri: string;
  /** A replica set (or mongos) runs transactions; the index driver refuses a standalone server. */
  replicaSet: boolean;
  stop(): Promise<void>;
}

export function mongoAvailability(): { source: 'env' | 'docker' } | { skip: string } {
  if (process.env.MONGODB_URI) return { source: 'env' };
  if (dockerAnswers()) return { source: 'docker' };
  return { skip: 'MONGODB_URI is not set and no Docker engine answers `docker info`, so there is no MongoDB server to test against' };
}

export async function startMongo(source: 'env' | 'docker'): Promise<MongoServer> {
  if (source === 'env') {
    const uri = process.env.MONGODB_URI!;
    return { uri, replicaSet: await isReplicaSet(uri), stop: async () => undefined };
  }
  // Loaded only when Docker is there: testcontainers is a development dependency of this suite alone.
  const { MongoDBContainer } = await import('@testcontainers/mongodb');
  const container = await new MongoDBContainer('mongo:7.0').start();
  // The module starts a one-node replica set; directConnection skips the container's internal host name.
  const uri = `${container.getConnectionString()}?directConnection=true`;
  return { uri, replicaSet: await isReplicaSet(uri), stop: async () => void (await container.stop()) };
}

/** Names of the server's databases. */
export async function listDatabases(uri: string): Promise<string[]> {
  const client = new MongoClient(uri);
  try {
    const { databases } = await client.db('admin').admin().listDatabases({ nameOnly: true });
    return databases.map((d) => d.name);
  } finally {
    await client.close();
  }
}

/** Drops the databases a test created (every existing name `names` admits: pass the exact names the run recorded). */
export async function dropDatabases(uri: string, names: (name: string) => boolean): Promise<void> {
  const client = new MongoClient(uri);
  try {
    const { databases } = await client.db('admin').admin().listDatabases({ nameOnly: true });
    for (const { name } of databases) if (names(name)) await client.db(name).dropDatabase();
  } finally {
    await client.close();
  }
}

async function isReplicaSet(uri: string): Promise<boolean> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000 });
  try {
    const hello = await client.db('admin').command({ hello: 1 });
    return typeof hello.setName === 'string' || hello.msg === 'isdbgrid';
  } finally {
    await client.close();
  }
}

function dockerAnswers(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}
