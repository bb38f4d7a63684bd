import { mkdir, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FsBlobStore } from '../../core/adapters/fs/fs-blob-store.js';
import { PostgresIndexDriver } from '../../core/adapters/postgres/postgres-index-driver.js';
import { defaultAdapters } from '../../core/adapters/registry.js';
import { SqliteIndexDriver } from '../../core/adapters/sqlite/sqlite-index-driver.js';
import type { PutOptions } from '../../core/contracts/blob-store.js';
import type { VersionRow } from '../../core/contracts/index-store.js';
import type { Data } from '../../core/engine/documents.js';
import { ConflictError } from '../../core/errors.js';
import { loadConfig, Xronox } from '../../core/index.js';
import { IndexRuntime } from '../../core/store/index-runtime.js';
import { XronoxStore } from './xronox-store.js';

/**
 * Setup of deep records for Xronox on PostgreSQL (bench/history.bench.ts), not measured: a record
 * of 100,000 versions written through the engine on PostgreSQL takes several round trips per
 * version, one after the other (each update needs the head the previous one wrote), which is a
 * quarter of an hour on a shared machine even with synchronous_commit=off.
 *
 * So each record is written through the engine's `update` API by a Xronox whose index store is a
 * SQLite file with synchronous=NORMAL (as the SQLite setup instance of history.bench.ts) and whose
 * object store writes the version files without fsync (same folder layout and bytes as the local
 * folder store), flushed (every version archived to its file); its index entries are then
 * imported into PostgreSQL with `importRecords`, the call a restore stages records with: the same
 * head and version rows the engine wrote, in one transaction. (The in-memory reference driver
 * would be simpler, but its updates slow down with the depth of the record.) The reads are measured on a fresh instance with the default config, as a reader
 * would open it, so they read PostgreSQL and the files as after any other write path.
 */
export class PostgresDepthSeeder extends XronoxStore {
  readonly #builder: Xronox;
  readonly #built: IndexRuntime;
  readonly #target: IndexRuntime;
  readonly #ns: { dbName: string; collection: string };
  /** Of the last `seed`: seconds writing through the engine (with its flush), and seconds reading the rows and importing them. */
  buildSeconds = 0;
  importSeconds = 0;

  /**
   * `config`: the raw config of the Xronox on PostgreSQL that will read the records (its folder
   * and database names are what the builder writes under); `connectionString` and
   * `schemaPrefix`: its PostgreSQL connection; `sqlitePath`: the builder's index file.
   */
  constructor(
    config: Parameters<typeof loadConfig>[0],
    sqlitePath: string,
    postgres: { connectionString: string; schemaPrefix: string },
    where: { tenant: string; dbName: string; collection: string },
    onBackgroundError: (err: unknown) => void,
  ) {
    const built = IndexRuntime.of(new SqliteIndexDriver({ path: sqlitePath, durability: 'normal' }));
    const builder = new Xronox(
      loadConfig(config),
      { ...defaultAdapters, indexStore: () => built, blobStore: (_ref, _connection, basePath) => new UnsyncedFsBlobStore({ basePath: basePath! }) },
      { onBackgroundError },
    );
    super(builder, 'runtime', where.tenant, where.collection, 'on PostgreSQL');
    this.#builder = builder;
    this.#built = built;
    this.#target = IndexRuntime.of(new PostgresIndexDriver(postgres));
    this.#ns = { dbName: where.dbName, collection: where.collection };
  }

  /** Written to the builder's SQLite file and to the files (`XronoxStore.seed`: create, awaited updates, flush), then imported into PostgreSQL. */
  override async seed(versions: number, dataOf: (ov: number) => Data): Promise<string> {
    let start = process.hrtime.bigint();
    const id = await super.seed(versions, dataOf);
    this.buildSeconds = Number(process.hrtime.bigint() - start) / 1e9;
    start = process.hrtime.bigint();
    const head = await this.#built.getHead(this.#ns, id);
    if (!head) throw new Error(`the seeded record ${id} has no head`);
    const rows: VersionRow[] = [];
    for (let before: number | undefined; ; ) {
      const page = await this.#built.listVersions(this.#ns, id, { limit: 10_000, ...(before !== undefined ? { beforeOv: before } : {}) });
      rows.push(...page);
      if (page.length < 10_000) break;
      before = page[page.length - 1]!.ov;
    }
    if (rows.length !== versions || rows.some((r) => !r.archived)) throw new Error(`the seeded record ${id} has ${rows.length} versions (expected ${versions}), or some not archived`);
    await this.#target.importRecords(this.#ns, { records: [{ head, versions: rows }], sync: false });
    this.importSeconds = Number(process.hrtime.bigint() - start) / 1e9;
    return id;
  }

  override async close(): Promise<void> {
    await this.#builder.shutdown();
    await this.#target.close();
  }
}

/**
 * The local folder store's layout (`{basePath}/{bucket}/{key}`) and bytes, written in place
 * without fsync: setup only (like SQLite's synchronous=NORMAL for the SQLite setup instance).
 */
class UnsyncedFsBlobStore extends FsBlobStore {
  readonly #basePath: string;

  constructor(options: { basePath: string }) {
    super(options);
    this.#basePath = options.basePath;
  }

  override async put(bucket: string, key: string, body: Uint8Array, options: PutOptions = {}): Promise<void> {
    const path = join(this.#basePath, bucket, ...key.split('/'));
    await makeDirs(dirname(path));
    let handle;
    try {
      handle = await open(path, options.ifNoneMatch ? 'wx' : 'w');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ConflictError(`${bucket}/${key} already exists`);
      throw err;
    }
    try {
      await handle.writeFile(body);
    } finally {
      await handle.close();
    }
  }
}

const madeDirs = new Set<string>();
async function makeDirs(dir: string): Promise<void> {
  if (madeDirs.has(dir)) return;
  await mkdir(dir, { recursive: true });
  madeDirs.add(dir);
}
