import { randomUUID } from 'node:crypto';
import * as mariadb from 'mariadb';
import pg from 'pg';
import type { Data } from '../../core/engine/documents.js';

/**
 * The versioned stores a user would reach for instead of Xronox, on the servers of this machine
 * (loopback): MariaDB's system-versioned tables and a PostgreSQL table whose history a trigger
 * keeps. Each also has an unversioned twin, so each system's own cost of versioning shows.
 *
 * Every table holds what Xronox keeps per version: the id, the version number (`ov`, checked
 * optimistically by every update, as Xronox checks `expectedOv`), who, why, and the JSON body.
 */
export interface ComparedStore {
  readonly name: string;
  readonly versioned: boolean;
  /** A new record at ov 0; returns its id. */
  create(data: Data): Promise<string>;
  /** Replaces the record's data; fails unless the record is at `expectedOv`. */
  update(id: string, data: Data, expectedOv: number): Promise<void>;
  /** Waits for what the store does after acknowledging a write (nothing, for these servers). */
  settleWrites(): Promise<void>;
  /** When each version began, in µs since the epoch, by ov ascending, as the store recorded it. */
  versionTimes(id: string): Promise<number[]>;
  /** The version current at `atMicros` (µs since the epoch), or null. */
  getAsOf(id: string, atMicros: number): Promise<{ ov: number; data: Data } | null>;
  /** Version numbers (with who, when, why) newest first, below `beforeOv` when given. */
  history(id: string, limit: number, beforeOv?: number): Promise<number[]>;
  /**
   * Setup only, never timed: a record with `versions` versions, data `dataOf(ov)`, written as
   * fast as the store allows (see each store for how that differs from `update`).
   */
  seed(versions: number, dataOf: (ov: number) => Data): Promise<string>;
  /** Drops what the store created. */
  close(): Promise<void>;
}

const NO_OV = 2 ** 31 - 1;

export const ACTOR = 'bench';
export const REASON = 'benchmark';

/** `2026-11-22T05:39:26.969485Z` for µs since the epoch. */
export function microsToIso(us: number): string {
  const seconds = Math.floor(us / 1e6);
  return `${new Date(seconds * 1000).toISOString().slice(0, 19)}.${String(us - seconds * 1e6).padStart(6, '0')}Z`;
}

/** µs since the epoch of an ISO-8601 UTC time with up to 6 fraction digits. */
export function isoToMicros(iso: string): number {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?Z$/.exec(iso);
  if (!m) throw new Error(`not an ISO-8601 UTC time: ${iso}`);
  return Date.parse(`${m[1]}Z`) * 1000 + Number((m[2] ?? '').padEnd(6, '0'));
}

function unique(prefix: string): string {
  return `${prefix}_${process.pid}_${randomUUID().slice(0, 8)}`;
}

// ---- PostgreSQL -------------------------------------------------------------------------

export interface ServerInfo {
  version: string;
  /** The settings that decide when a commit is durable, as the server reports them. */
  durability: Record<string, string>;
  /** One line for the report. */
  durabilityClass: string;
  /** Whether a commit is on disk (fsynced) when the client hears it succeeded. */
  fsyncPerCommit: boolean;
}

export async function connectPostgres(): Promise<pg.Client> {
  const client = new pg.Client({
    host: process.env.BENCH_PG_HOST ?? '127.0.0.1',
    port: Number(process.env.BENCH_PG_PORT ?? 5432),
    user: process.env.BENCH_PG_USER ?? 'postgres',
    database: process.env.BENCH_PG_DATABASE ?? 'test',
    connectionTimeoutMillis: 3000,
  });
  await client.connect();
  return client;
}

export async function postgresInfo(client: pg.Client): Promise<ServerInfo> {
  const durability: Record<string, string> = {};
  for (const name of ['fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes']) {
    durability[name] = String((await client.query<Record<string, string>>(`SHOW ${name}`)).rows[0]?.[name]);
  }
  const version = String((await client.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version);
  const fsyncPerCommit = durability.fsync === 'on' && durability.synchronous_commit !== 'off';
  const full = fsyncPerCommit ? 'WAL fsynced at every commit' : 'commits NOT fsynced one by one';
  return { version, durability, fsyncPerCommit, durabilityClass: `${full} (fsync=${durability.fsync}, synchronous_commit=${durability.synchronous_commit}, wal_sync_method=${durability.wal_sync_method})` };
}

/**
 * A current-state table plus, when versioned, a history table that a `BEFORE UPDATE` trigger
 * fills with the replaced row and its validity interval: the usual way to version a table in
 * PostgreSQL, which has no system-versioned tables. `getAsOf` reads the current row if it began
 * at or before the instant, else the history row valid then, through a `(id, valid_from)` index.
 * Bodies are `jsonb`, which is what one would store JSON documents in. On a `pg.Pool`, each
 * call takes a pooled connection, so concurrent callers run side by side (autocommit, as on a
 * client: every update is its own commit).
 */
export class PostgresStore implements ComparedStore {
  readonly name: string;
  readonly versioned: boolean;
  readonly #client: pg.Client | pg.Pool;
  readonly #cur: string;
  readonly #hist: string;
  readonly #fn: string;

  private constructor(client: pg.Client | pg.Pool, versioned: boolean) {
    this.#client = client;
    this.versioned = versioned;
    this.name = versioned ? 'PostgreSQL, trigger + history table' : 'PostgreSQL, plain table';
    const base = unique('xronox_bench');
    this.#cur = base;
    this.#hist = `${base}_history`;
    this.#fn = `${base}_keep`;
  }

  static async open(client: pg.Client | pg.Pool, versioned: boolean): Promise<PostgresStore> {
    const store = new PostgresStore(client, versioned);
    await store.#create();
    return store;
  }

  async #create(): Promise<void> {
    const c = this.#client;
    await c.query(`CREATE TABLE ${this.#cur} (
      id text PRIMARY KEY, ov integer NOT NULL, actor text NOT NULL, reason text,
      body jsonb NOT NULL, valid_from timestamptz NOT NULL DEFAULT now())`);
    if (!this.versioned) return;
    await c.query(`CREATE TABLE ${this.#hist} (
      id text NOT NULL, ov integer NOT NULL, actor text NOT NULL, reason text, body jsonb NOT NULL,
      valid_from timestamptz NOT NULL, valid_to timestamptz NOT NULL, PRIMARY KEY (id, ov))`);
    await c.query(`CREATE INDEX ${this.#hist}_at ON ${this.#hist} (id, valid_from)`);
    // now() is the transaction's start, as MariaDB stamps ROW_START: one instant per commit.
    await c.query(`CREATE FUNCTION ${this.#fn}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        NEW.valid_from := now();
        INSERT INTO ${this.#hist} (id, ov, actor, reason, body, valid_from, valid_to)
          VALUES (OLD.id, OLD.ov, OLD.actor, OLD.reason, OLD.body, OLD.valid_from, NEW.valid_from);
        RETURN NEW;
      END $$`);
    await c.query(`CREATE TRIGGER ${this.#fn} BEFORE UPDATE ON ${this.#cur} FOR EACH ROW EXECUTE FUNCTION ${this.#fn}()`);
  }

  async create(data: Data): Promise<string> {
    const id = randomUUID();
    await this.#client.query({ name: `${this.#cur}_ins`, text: `INSERT INTO ${this.#cur} (id, ov, actor, reason, body) VALUES ($1, 0, $2, $3, $4)`, values: [id, ACTOR, REASON, JSON.stringify(data)] });
    return id;
  }

  async update(id: string, data: Data, expectedOv: number): Promise<void> {
    const result = await this.#client.query({
      name: `${this.#cur}_upd`,
      text: `UPDATE ${this.#cur} SET ov = ov + 1, actor = $3, reason = $4, body = $5 WHERE id = $1 AND ov = $2`,
      values: [id, expectedOv, ACTOR, REASON, JSON.stringify(data)],
    });
    if (result.rowCount !== 1) throw new Error(`PostgreSQL update of ${id}: not at ov ${expectedOv}`);
  }

  async settleWrites(): Promise<void> {}

  async versionTimes(id: string): Promise<number[]> {
    const { rows } = await this.#client.query<{ ov: number; t: string }>(
      `SELECT ov, (extract(epoch FROM valid_from) * 1000000)::bigint AS t FROM ${this.#hist} WHERE id = $1
       UNION ALL SELECT ov, (extract(epoch FROM valid_from) * 1000000)::bigint FROM ${this.#cur} WHERE id = $1 ORDER BY ov`,
      [id],
    );
    return rows.map((r) => Number(r.t));
  }

  async getAsOf(id: string, atMicros: number): Promise<{ ov: number; data: Data } | null> {
    const { rows } = await this.#client.query<{ ov: number; body: Data }>({
      name: `${this.#cur}_asof`,
      text: `(SELECT ov, body FROM ${this.#cur} WHERE id = $1 AND valid_from <= $2::timestamptz)
             UNION ALL
             (SELECT ov, body FROM ${this.#hist} WHERE id = $1 AND valid_from <= $2::timestamptz AND valid_to > $2::timestamptz
              ORDER BY valid_from DESC LIMIT 1)
             LIMIT 1`,
      values: [id, microsToIso(atMicros)],
    });
    const row = rows[0];
    return row ? { ov: row.ov, data: row.body } : null;
  }

  async history(id: string, limit: number, beforeOv = NO_OV): Promise<number[]> {
    const { rows } = await this.#client.query<{ ov: number }>({
      name: `${this.#cur}_hist`,
      // The limit inside the history branch lets it walk the (id, ov) key backwards and stop.
      text: `(SELECT ov, actor, reason, valid_from FROM ${this.#cur} WHERE id = $1 AND ov < $2)
             UNION ALL
             (SELECT ov, actor, reason, valid_from FROM ${this.#hist} WHERE id = $1 AND ov < $2 ORDER BY ov DESC LIMIT $3)
             ORDER BY ov DESC LIMIT $3`,
      values: [id, beforeOv, limit],
    });
    return rows.map((r) => r.ov);
  }

  /** Autocommit updates like `update`, with `synchronous_commit = off` for this session meanwhile. */
  async seed(versions: number, dataOf: (ov: number) => Data): Promise<string> {
    // A session setting: on a pool it would land on one connection and stay there.
    if (this.#client instanceof pg.Pool) throw new Error('PostgresStore.seed needs a pg.Client');
    await this.#client.query('SET synchronous_commit = off');
    try {
      const id = await this.create(dataOf(0));
      for (let ov = 1; ov < versions; ov++) await this.update(id, dataOf(ov), ov - 1);
      return id;
    } finally {
      await this.#client.query('RESET synchronous_commit');
    }
  }

  async close(): Promise<void> {
    await this.#client.query(`DROP TABLE IF EXISTS ${this.#cur}, ${this.#hist}`);
    await this.#client.query(`DROP FUNCTION IF EXISTS ${this.#fn}()`);
  }
}

// ---- MariaDB ----------------------------------------------------------------------------

export async function connectMariadb(): Promise<mariadb.Connection> {
  const conn = await mariadb.createConnection({
    host: process.env.BENCH_MARIADB_HOST ?? '127.0.0.1',
    port: Number(process.env.BENCH_MARIADB_PORT ?? 3306),
    user: process.env.BENCH_MARIADB_USER ?? 'root',
    password: process.env.BENCH_MARIADB_PASSWORD ?? '',
    database: process.env.BENCH_MARIADB_DATABASE ?? 'test',
    connectTimeout: 3000,
  });
  // ROW_START is a TIMESTAMP(6): stored in UTC, shown in the session's zone. UTC both ways.
  await conn.query("SET time_zone = '+00:00'");
  return conn;
}

/** A pool of `size` connections with the same settings as `connectMariadb` (the concurrent clients' side). */
export function connectMariadbPool(size: number): mariadb.Pool {
  return mariadb.createPool({
    host: process.env.BENCH_MARIADB_HOST ?? '127.0.0.1',
    port: Number(process.env.BENCH_MARIADB_PORT ?? 3306),
    user: process.env.BENCH_MARIADB_USER ?? 'root',
    password: process.env.BENCH_MARIADB_PASSWORD ?? '',
    database: process.env.BENCH_MARIADB_DATABASE ?? 'test',
    connectTimeout: 3000,
    connectionLimit: size,
    minimumIdle: size,
    initSql: "SET time_zone = '+00:00'",
  });
}

export async function mariadbInfo(conn: mariadb.Connection): Promise<ServerInfo> {
  const [row] = (await conn.query(
    'SELECT @@version AS version, @@innodb_flush_log_at_trx_commit AS flush, @@sync_binlog AS sync_binlog, @@log_bin AS log_bin, @@innodb_doublewrite AS doublewrite, @@innodb_flush_method AS method',
  )) as Array<Record<string, unknown>>;
  const durability = {
    innodb_flush_log_at_trx_commit: String(row?.flush),
    sync_binlog: String(row?.sync_binlog),
    log_bin: String(row?.log_bin),
    innodb_doublewrite: String(row?.doublewrite),
    innodb_flush_method: String(row?.method),
  };
  const fsyncPerCommit = durability.innodb_flush_log_at_trx_commit === '1';
  const full = fsyncPerCommit ? 'redo log fsynced at every commit' : 'redo log NOT fsynced at every commit';
  const binlog = durability.log_bin === '0' ? 'binary log off' : `binary log on, sync_binlog=${durability.sync_binlog}`;
  return { version: String(row?.version), durability, fsyncPerCommit, durabilityClass: `${full} (innodb_flush_log_at_trx_commit=${durability.innodb_flush_log_at_trx_commit}, ${binlog})` };
}

/**
 * A table `WITH SYSTEM VERSIONING` (or without, for the unversioned twin). MariaDB keeps the old
 * row versions itself and adds `ROW_END` to the primary key; `getAsOf` is
 * `FOR SYSTEM_TIME AS OF`. Bodies are `JSON` (MariaDB's alias of LONGTEXT with a validity check).
 */
export class MariadbStore implements ComparedStore {
  readonly name: string;
  readonly versioned: boolean;
  /** One connection, or a pool (several clients at once; `seed` needs a connection). */
  readonly #conn: mariadb.Connection | mariadb.Pool;
  readonly #table = unique('xronox_bench');

  private constructor(conn: mariadb.Connection | mariadb.Pool, versioned: boolean) {
    this.#conn = conn;
    this.versioned = versioned;
    this.name = versioned ? 'MariaDB, WITH SYSTEM VERSIONING' : 'MariaDB, plain table';
  }

  static async open(conn: mariadb.Connection | mariadb.Pool, versioned: boolean): Promise<MariadbStore> {
    const store = new MariadbStore(conn, versioned);
    await conn.query(
      // KEY (id, ov) serves history listings (it holds history rows too); AS OF uses the primary key.
      `CREATE TABLE ${store.#table} (id VARCHAR(36) PRIMARY KEY, ov INT NOT NULL, actor VARCHAR(64) NOT NULL, reason VARCHAR(256), body JSON NOT NULL, KEY by_ov (id, ov))
       ENGINE=InnoDB${versioned ? ' WITH SYSTEM VERSIONING' : ''}`,
    );
    return store;
  }

  async create(data: Data): Promise<string> {
    const id = randomUUID();
    await this.#conn.execute(`INSERT INTO ${this.#table} (id, ov, actor, reason, body) VALUES (?, 0, ?, ?, ?)`, [id, ACTOR, REASON, JSON.stringify(data)]);
    return id;
  }

  async update(id: string, data: Data, expectedOv: number): Promise<void> {
    const result = (await this.#conn.execute(`UPDATE ${this.#table} SET ov = ov + 1, actor = ?, reason = ?, body = ? WHERE id = ? AND ov = ?`, [
      ACTOR,
      REASON,
      JSON.stringify(data),
      id,
      expectedOv,
    ])) as { affectedRows: number };
    if (result.affectedRows !== 1) throw new Error(`MariaDB update of ${id}: not at ov ${expectedOv}`);
  }

  async settleWrites(): Promise<void> {}

  async versionTimes(id: string): Promise<number[]> {
    const rows = (await this.#conn.execute(
      `SELECT ov, CAST(UNIX_TIMESTAMP(ROW_START) * 1000000 AS UNSIGNED) AS t FROM ${this.#table} FOR SYSTEM_TIME ALL WHERE id = ? ORDER BY ov`,
      [id],
    )) as Array<{ ov: number; t: bigint }>;
    return rows.map((r) => Number(r.t));
  }

  async getAsOf(id: string, atMicros: number): Promise<{ ov: number; data: Data } | null> {
    const rows = (await this.#conn.execute(`SELECT ov, body FROM ${this.#table} FOR SYSTEM_TIME AS OF TIMESTAMP ? WHERE id = ?`, [
      microsToIso(atMicros).replace('T', ' ').slice(0, -1),
      id,
    ])) as Array<{ ov: number; body: Data }>;
    const row = rows[0];
    return row ? { ov: row.ov, data: row.body } : null;
  }

  async history(id: string, limit: number, beforeOv = NO_OV): Promise<number[]> {
    const rows = (await this.#conn.execute(
      `SELECT ov, actor, reason, ROW_START FROM ${this.#table} FOR SYSTEM_TIME ALL WHERE id = ? AND ov < ? ORDER BY ov DESC LIMIT ?`,
      [id, beforeOv, limit],
    )) as Array<{ ov: number }>;
    return rows.map((r) => r.ov);
  }

  /**
   * The same INSERT and UPDATE statements as `create` and `update`, 1,000 to a transaction, each
   * with its own `SET timestamp` (MariaDB stamps ROW_START with the statement's time), 1 ms
   * apart and ending a second ago, so every version has its own instant.
   */
  async seed(versions: number, dataOf: (ov: number) => Data): Promise<string> {
    const id = randomUUID();
    const first = Date.now() * 1000 - 1e6 - versions * 1000;
    const conn = this.#conn;
    if (!('beginTransaction' in conn)) throw new Error('MariadbStore.seed needs one connection, not a pool');
    const stamp = (ov: number) => conn.query(`SET timestamp = ${((first + ov * 1000) / 1e6).toFixed(6)}`);
    try {
      for (let from = 0; from < versions; from += 1000) {
        await conn.beginTransaction();
        for (let ov = from; ov < Math.min(versions, from + 1000); ov++) {
          await stamp(ov);
          if (ov === 0) await this.#conn.execute(`INSERT INTO ${this.#table} (id, ov, actor, reason, body) VALUES (?, 0, ?, ?, ?)`, [id, ACTOR, REASON, JSON.stringify(dataOf(0))]);
          else await this.update(id, dataOf(ov), ov - 1);
        }
        await conn.commit();
      }
    } finally {
      await conn.query('SET timestamp = DEFAULT');
    }
    return id;
  }

  async close(): Promise<void> {
    await this.#conn.query(`DROP TABLE IF EXISTS ${this.#table}`);
  }
}
