import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { v7 as uuidv7 } from 'uuid';
import { FsBlobStore } from '../../core/adapters/fs/fs-blob-store.js';

/**
 * The baseline: the least code that stores what the engine stores, without the engine.
 *
 * Same SQLite file (its own tables), same pragmas as `SqliteIndexDriver` (WAL, synchronous=FULL,
 * 10 s busy timeout), same record-document JSON text, same blob layout and bytes written through
 * the same `FsBlobStore.put` (temp file, fsync, rename, directory fsync). Each write is one
 * `BEGIN IMMEDIATE` transaction (read the head, upsert it, insert the version row), then, when
 * `blobs` is on, `v{ov}.json` and `current.json`, in the caller's critical path.
 *
 * No validation, no counters, no collection version, no outbox, no archival.
 */
export class RawBaseline {
  readonly db: Database.Database;
  readonly #blob: FsBlobStore;
  readonly #bucket: string;
  readonly #blobBasePath: string;
  readonly #stmts: ReturnType<typeof prepareStatements>;
  readonly #write: Database.Transaction<(w: RawWrite) => void>;
  readonly #update: Database.Transaction<
    (coll: string, id: string, data: Record<string, unknown>, expectedOv: number) => { ov: number; at: string; body: string }
  >;

  constructor(options: { sqlitePath: string; blobBasePath: string; bucket: string }) {
    this.db = new Database(options.sqlitePath, { timeout: 10_000 });
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS raw_heads (
        coll TEXT NOT NULL, id TEXT NOT NULL, ov INTEGER NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (coll, id)
      );
      CREATE TABLE IF NOT EXISTS raw_versions (
        coll TEXT NOT NULL, id TEXT NOT NULL, ov INTEGER NOT NULL, op TEXT NOT NULL, at TEXT NOT NULL,
        actor TEXT NOT NULL, reason TEXT, deleted INTEGER NOT NULL, size INTEGER NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (coll, id, ov)
      );
      CREATE INDEX IF NOT EXISTS raw_versions_by_time ON raw_versions (coll, id, at, ov);
    `);
    this.#blob = new FsBlobStore({ basePath: options.blobBasePath });
    this.#bucket = options.bucket;
    this.#blobBasePath = options.blobBasePath;
    this.#stmts = prepareStatements(this.db);
    this.#write = this.db.transaction((w: RawWrite) => {
      const s = this.#stmts;
      s.putHead.run(w.coll, w.id, w.ov, w.createdAt, w.at, w.body);
      s.putVersion.run(w.coll, w.id, w.ov, w.op, w.at, ACTOR, REASON, Buffer.byteLength(w.body, 'utf8'), w.body);
    });
    this.#update = this.db.transaction((coll: string, id: string, data: Record<string, unknown>, expectedOv: number) => {
      const head = this.#stmts.getHead.get(coll, id) as { ov: number; created_at: string; updated_at: string } | undefined;
      if (!head || head.ov !== expectedOv) throw new Error(`raw update of ${id}: expected ov ${expectedOv}, found ${head?.ov ?? 'none'}`);
      const ov = expectedOv + 1;
      // Same rule as the engine: a version's time is strictly after the previous one.
      const at = new Date(Math.max(Date.now(), Date.parse(head.updated_at) + 1)).toISOString();
      const body = JSON.stringify({ id, ov, op: 'update', at, actor: ACTOR, reason: REASON, deleted: false, createdAt: head.created_at, data });
      this.#write({ coll, id, ov, op: 'update', at, createdAt: head.created_at, body });
      return { ov, at, body };
    });
  }

  get sqliteVersion(): string {
    return (this.db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
  }

  /** Creates a record at ov 0. */
  async create(coll: string, data: Record<string, unknown>, blobs: boolean): Promise<{ id: string; at: string }> {
    const id = uuidv7();
    const at = new Date().toISOString();
    const body = JSON.stringify({ id, ov: 0, op: 'create', at, actor: ACTOR, reason: REASON, deleted: false, createdAt: at, data });
    this.#write.immediate({ coll, id, ov: 0, op: 'create', at, createdAt: at, body });
    if (blobs) await this.#putBlobs(coll, id, 0, body);
    return { id, at };
  }

  /** Writes version `expectedOv + 1`; throws when the record is not at `expectedOv`. */
  async update(coll: string, id: string, data: Record<string, unknown>, expectedOv: number, blobs: boolean): Promise<{ ov: number; at: string }> {
    const { ov, at, body } = this.#update.immediate(coll, id, data, expectedOv);
    if (blobs) await this.#putBlobs(coll, id, ov, body);
    return { ov, at };
  }

  /**
   * Appends versions `expectedOv + 1` .. `expectedOv + count` to a record for read benchmarks only:
   * index rows in transactions of 1,000, version files written without fsync. Not a write path
   * to time; the same rows and bytes as `update`, with version times 1 ms apart.
   */
  bulkAppend(coll: string, id: string, expectedOv: number, count: number, makeData: (ov: number) => Record<string, unknown>): string[] {
    const times: string[] = [];
    const folder = join(this.#blobBasePath, this.#bucket, 'versions', coll, id);
    mkdirSync(folder, { recursive: true });
    let ov = expectedOv;
    while (ov < expectedOv + count) {
      const batch = Math.min(1000, expectedOv + count - ov);
      const bodies = this.db
        .transaction(() => {
          const written: Array<{ ov: number; body: string }> = [];
          for (let k = 0; k < batch; k++) {
            const head = this.#stmts.getHead.get(coll, id) as { ov: number; created_at: string; updated_at: string };
            const next = head.ov + 1;
            const at = new Date(Date.parse(head.updated_at) + 1).toISOString();
            const body = JSON.stringify({
              id, ov: next, op: 'update', at, actor: ACTOR, reason: REASON, deleted: false, createdAt: head.created_at, data: makeData(next),
            });
            this.#write({ coll, id, ov: next, op: 'update', at, createdAt: head.created_at, body });
            written.push({ ov: next, body });
            times.push(at);
          }
          return written;
        })
        .immediate();
      for (const { ov: v, body } of bodies) writeFileSync(join(folder, `v${v}.json`), body);
      ov += batch;
    }
    return times;
  }

  /** The version at `at`, read from the index row: one indexed SELECT and a JSON.parse. */
  async getAsOf(coll: string, id: string, at: string): Promise<unknown> {
    const row = this.#stmts.bodyAt.get(coll, id, at) as { body: string } | undefined;
    return row ? JSON.parse(row.body) : null;
  }

  /** The version at `at`, read from its `v{ov}.json`: one indexed SELECT, one file read, a JSON.parse. */
  async getAsOfFromFile(coll: string, id: string, at: string): Promise<unknown> {
    const row = this.#stmts.ovAt.get(coll, id, at) as { ov: number } | undefined;
    if (!row) return null;
    const bytes = await this.#blob.get(this.#bucket, `versions/${coll}/${id}/v${row.ov}.json`);
    return bytes ? JSON.parse(Buffer.from(bytes).toString('utf8')) : null;
  }

  /** The newest `limit` version entries (no payloads), like `Collection.history`. */
  async history(coll: string, id: string, limit = 50): Promise<unknown[]> {
    return this.#stmts.history.all(coll, id, Number.MAX_SAFE_INTEGER, limit + 1) as unknown[];
  }

  close(): void {
    this.db.close();
  }

  async #putBlobs(coll: string, id: string, ov: number, body: string): Promise<void> {
    const bytes = Buffer.from(body, 'utf8');
    await this.#blob.put(this.#bucket, `versions/${coll}/${id}/v${ov}.json`, bytes, { contentType: 'application/json' });
    await this.#blob.put(this.#bucket, `records/${coll}/${id}/current.json`, bytes, { contentType: 'application/json' });
  }
}

function prepareStatements(db: Database.Database) {
  const p = (sql: string) => db.prepare(sql);
  return {
    getHead: p('SELECT ov, created_at, updated_at FROM raw_heads WHERE coll = ? AND id = ?'),
    putHead: p(
      `INSERT INTO raw_heads (coll, id, ov, created_at, updated_at, body) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (coll, id) DO UPDATE SET ov = excluded.ov, updated_at = excluded.updated_at, body = excluded.body`,
    ),
    putVersion: p(
      `INSERT INTO raw_versions (coll, id, ov, op, at, actor, reason, deleted, size, body)
       VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
    ),
    bodyAt: p('SELECT body FROM raw_versions WHERE coll = ? AND id = ? AND at <= ? ORDER BY at DESC, ov DESC LIMIT 1'),
    ovAt: p('SELECT ov FROM raw_versions WHERE coll = ? AND id = ? AND at <= ? ORDER BY at DESC, ov DESC LIMIT 1'),
    history: p(
      `SELECT ov, op, at, actor, reason, deleted, size FROM raw_versions
       WHERE coll = ? AND id = ? AND ov < ? ORDER BY ov DESC LIMIT ?`,
    ),
  };
}

interface RawWrite {
  coll: string;
  id: string;
  ov: number;
  op: 'create' | 'update';
  at: string;
  createdAt: string;
  body: string;
}

const ACTOR = 'bench';
const REASON = 'benchmark';
