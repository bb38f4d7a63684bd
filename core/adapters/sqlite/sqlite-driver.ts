import BetterSqlite3 from 'better-sqlite3';

/**
 * The SQLite driver seam: the part of better-sqlite3's API the SQLite stores use (statements,
 * `pluck`/`raw` rows, `pragma`, `transaction(fn).immediate()`), which is the API on Node. On Bun
 * (`bun:sqlite`) and where the runtime has `node:sqlite` (Deno 2, Node 22.5+), a thin wrapper
 * gives the same API, so the stores above it are the same code on every runtime:
 *
 * - rows are objects by column name; `pluck()` gives a row's first column, `raw()` arrays;
 *   a `get` that finds nothing is `undefined` (never `null`);
 * - `transaction(fn)` runs `fn` between `BEGIN` (`.deferred`/`.immediate`) and `COMMIT`, rolls back
 *   when it throws, and nests with savepoints; `fn` must be synchronous;
 * - errors carry SQLite's extended result code as a string `code` (`SQLITE_BUSY`,
 *   `SQLITE_CONSTRAINT_UNIQUE`), as better-sqlite3's do;
 * - BLOBs come back as `Uint8Array` (better-sqlite3's are Buffers, which are Uint8Arrays).
 */
export interface Statement {
  run(...params: unknown[]): { changes: number };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  /** This statement's rows as their first column's value. */
  pluck(): Statement;
  /** This statement's rows as arrays of their columns. */
  raw(): Statement;
}

/** A transaction function (see `Database.transaction`). */
export interface Transaction<F extends (...args: never[]) => unknown> {
  (...args: Parameters<F>): ReturnType<F>;
  deferred(...args: Parameters<F>): ReturnType<F>;
  immediate(...args: Parameters<F>): ReturnType<F>;
}

export interface Database {
  /** Whether the connection is open (false after `close`). */
  readonly open: boolean;
  prepare(sql: string): Statement;
  /** Runs SQL text of any number of statements, returning nothing. */
  exec(sql: string): void;
  /** `PRAGMA <source>`: its rows, or with `simple` the first column of the first row. */
  pragma(source: string, options?: { simple?: boolean }): unknown;
  transaction<F extends (...args: never[]) => unknown>(fn: F): Transaction<F>;
  close(): void;
}

export const SQLITE_DRIVERS = ['better-sqlite3', 'node:sqlite', 'bun:sqlite'] as const;
export type SqliteDriverName = (typeof SQLITE_DRIVERS)[number];

/**
 * The driver of this runtime: `bun:sqlite` on Bun, `node:sqlite` on Deno (which cannot load
 * better-sqlite3's native addon), better-sqlite3 on Node (node:sqlite is still experimental
 * there, and absent before Node 22.5).
 */
export function defaultSqliteDriver(): SqliteDriverName {
  const g = globalThis as { Bun?: unknown; Deno?: unknown };
  if (g.Bun !== undefined) return 'bun:sqlite';
  if (g.Deno !== undefined) return 'node:sqlite';
  return 'better-sqlite3';
}

/** Opens (creating when missing) the SQLite file at `path` with the driver named, or this runtime's. */
export function openDatabase(path: string, options: { busyTimeoutMs: number; driver?: SqliteDriverName }): Database {
  const driver = options.driver ?? defaultSqliteDriver();
  switch (driver) {
    case 'better-sqlite3':
      return new BetterSqlite3(path, { timeout: options.busyTimeoutMs }) as unknown as Database;
    case 'node:sqlite': {
      const mod = runtimeModule<{ DatabaseSync: new (path: string) => NativeDatabase }>('node:sqlite');
      return new WrappedDatabase(wrapErrors(() => new mod.DatabaseSync(path)), options.busyTimeoutMs, 'node');
    }
    case 'bun:sqlite': {
      const mod = runtimeModule<{ Database: new (path: string) => NativeDatabase }>('bun:sqlite');
      return new WrappedDatabase(wrapErrors(() => new mod.Database(path)), options.busyTimeoutMs, 'bun');
    }
  }
}

/** A module the runtime builds in, loaded synchronously (the stores open their file in a constructor). */
function runtimeModule<T>(id: string): T {
  const get = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule;
  let mod: unknown;
  try {
    mod = get?.(id);
  } catch {
    mod = undefined;
  }
  if (mod === undefined || mod === null) throw new Error(`The SQLite driver ${id} is not available on this runtime`);
  return mod as T;
}

/** What node:sqlite's `DatabaseSync` and bun:sqlite's `Database` have in common, as used here. */
interface NativeDatabase {
  exec(sql: string): unknown;
  prepare(sql: string): NativeStatement;
  close(): void;
}

interface NativeStatement {
  run(...params: unknown[]): { changes: number | bigint };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  /** bun:sqlite: the rows as arrays. */
  values?(...params: unknown[]): unknown[][];
  /** node:sqlite: rows as arrays from now on. */
  setReturnArrays?(enabled: boolean): void;
}

type RowShape = 'object' | 'array' | 'first';

class WrappedStatement implements Statement {
  constructor(
    readonly db: WrappedDatabase,
    readonly native: NativeStatement,
    readonly shape: RowShape,
    readonly flavour: 'node' | 'bun',
  ) {}

  run(...params: unknown[]): { changes: number } {
    this.db.assertOpen();
    const result = wrapErrors(() => this.native.run(...bindable(params)));
    return { changes: Number(result.changes) };
  }

  get(...params: unknown[]): unknown {
    this.db.assertOpen();
    const row = wrapErrors(() => this.native.get(...bindable(params))) ?? undefined;
    if (this.shape === 'object' || row === undefined) return row;
    // node:sqlite gives this statement's rows as arrays already (`#as`); bun:sqlite as objects.
    const columns = Array.isArray(row) ? row : Object.values(row as Record<string, unknown>);
    return this.shape === 'array' ? columns : columns[0];
  }

  all(...params: unknown[]): unknown[] {
    this.db.assertOpen();
    const bound = bindable(params);
    if (this.shape === 'object') return wrapErrors(() => this.native.all(...bound));
    const rows = wrapErrors(() => (this.native.values ? this.native.values(...bound) : (this.native.all(...bound) as unknown[][])));
    return this.shape === 'array' ? rows : rows.map((r) => r[0]);
  }

  pluck(): Statement {
    return this.#as('first');
  }

  raw(): Statement {
    return this.#as('array');
  }

  #as(shape: RowShape): Statement {
    // node:sqlite gives arrays once asked; bun:sqlite has `values()` for them.
    if (this.flavour === 'node') {
      if (!this.native.setReturnArrays) throw new Error('This node:sqlite has no setReturnArrays (needs Node 24 or Deno 2)');
      this.native.setReturnArrays(true);
    }
    return new WrappedStatement(this.db, this.native, shape, this.flavour);
  }
}

class WrappedDatabase implements Database {
  #open = true;
  /** Depth of `transaction` calls in progress: the outermost is BEGIN/COMMIT, the inner ones savepoints. */
  #depth = 0;

  constructor(
    readonly native: NativeDatabase,
    busyTimeoutMs: number,
    readonly flavour: 'node' | 'bun',
  ) {
    this.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
  }

  get open(): boolean {
    return this.#open;
  }

  prepare(sql: string): Statement {
    this.assertOpen();
    return new WrappedStatement(this, wrapErrors(() => this.native.prepare(sql)), 'object', this.flavour);
  }

  /** bun:sqlite lets a statement prepared before `close` run after it; better-sqlite3 refuses, and so does this. */
  assertOpen(): void {
    if (!this.#open) throw new TypeError('The database connection is not open');
  }

  exec(sql: string): void {
    this.assertOpen();
    wrapErrors(() => this.native.exec(sql));
  }

  pragma(source: string, options: { simple?: boolean } = {}): unknown {
    const rows = this.prepare(`PRAGMA ${source}`).all() as Array<Record<string, unknown>>;
    if (!options.simple) return rows;
    const first = rows[0];
    return first === undefined ? undefined : Object.values(first)[0];
  }

  transaction<F extends (...args: never[]) => unknown>(fn: F): Transaction<F> {
    const run = (mode: 'DEFERRED' | 'IMMEDIATE') =>
      (...args: Parameters<F>): ReturnType<F> => {
        const nested = this.#depth > 0;
        const savepoint = `xronox_tx_${this.#depth}`;
        this.exec(nested ? `SAVEPOINT ${savepoint}` : `BEGIN ${mode}`);
        this.#depth++;
        let result: ReturnType<F>;
        try {
          result = fn(...args) as ReturnType<F>;
          if (result instanceof Promise) throw new TypeError('A SQLite transaction function cannot be asynchronous');
          this.exec(nested ? `RELEASE ${savepoint}` : 'COMMIT');
        } catch (err) {
          // A failed COMMIT (SQLITE_BUSY, a full disk) leaves the transaction open: end it too.
          try {
            this.exec(nested ? `ROLLBACK TO ${savepoint}; RELEASE ${savepoint}` : 'ROLLBACK');
          } catch {
            // SQLite already rolled back (some errors end the transaction themselves).
          }
          throw err;
        } finally {
          this.#depth--;
        }
        return result;
      };
    return Object.assign(run('DEFERRED'), { deferred: run('DEFERRED'), immediate: run('IMMEDIATE') });
  }

  close(): void {
    if (!this.#open) return;
    this.native.close();
    this.#open = false;
  }
}

/** better-sqlite3 binds `undefined` as NULL; node:sqlite refuses it. */
function bindable(params: unknown[]): unknown[] {
  return params.some((p) => p === undefined) ? params.map((p) => (p === undefined ? null : p)) : params;
}

/**
 * Runs `op`, giving a SQLite error the string `code` better-sqlite3's have (`SQLITE_BUSY`,
 * `SQLITE_CONSTRAINT_UNIQUE`): node:sqlite's say `ERR_SQLITE_ERROR` and put SQLite's extended
 * result code in `errcode`; bun:sqlite's have the string already (and `errno`).
 */
function wrapErrors<T>(op: () => T): T {
  try {
    return op();
  } catch (err) {
    const e = err as { code?: unknown; errcode?: unknown; errno?: unknown } | null;
    const numeric = typeof e?.errcode === 'number' ? e.errcode : typeof e?.errno === 'number' ? e.errno : undefined;
    if (e && typeof e === 'object' && numeric !== undefined && !(typeof e.code === 'string' && e.code.startsWith('SQLITE_'))) {
      const named = new Error((err as Error).message, { cause: err }) as Error & { code: string; errcode: number };
      named.code = resultCodeName(numeric);
      named.errcode = numeric;
      throw named;
    }
    throw err;
  }
}

/** SQLite's extended result codes the stores and their messages tell apart; others by their primary code. */
const EXTENDED_CODES: Record<number, string> = {
  261: 'SQLITE_BUSY_RECOVERY', 517: 'SQLITE_BUSY_SNAPSHOT', 773: 'SQLITE_BUSY_TIMEOUT',
  1555: 'SQLITE_CONSTRAINT_PRIMARYKEY', 2067: 'SQLITE_CONSTRAINT_UNIQUE', 787: 'SQLITE_CONSTRAINT_FOREIGNKEY',
  1299: 'SQLITE_CONSTRAINT_NOTNULL', 275: 'SQLITE_CONSTRAINT_CHECK', 2579: 'SQLITE_CONSTRAINT_ROWID',
  264: 'SQLITE_READONLY_RECOVERY', 1032: 'SQLITE_READONLY_DBMOVED', 266: 'SQLITE_IOERR_READ', 778: 'SQLITE_IOERR_WRITE', 1034: 'SQLITE_IOERR_FSYNC',
};
const PRIMARY_CODES = [
  'SQLITE_OK', 'SQLITE_ERROR', 'SQLITE_INTERNAL', 'SQLITE_PERM', 'SQLITE_ABORT', 'SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_NOMEM', 'SQLITE_READONLY',
  'SQLITE_INTERRUPT', 'SQLITE_IOERR', 'SQLITE_CORRUPT', 'SQLITE_NOTFOUND', 'SQLITE_FULL', 'SQLITE_CANTOPEN', 'SQLITE_PROTOCOL', 'SQLITE_EMPTY',
  'SQLITE_SCHEMA', 'SQLITE_TOOBIG', 'SQLITE_CONSTRAINT', 'SQLITE_MISMATCH', 'SQLITE_MISUSE', 'SQLITE_NOLFS', 'SQLITE_AUTH', 'SQLITE_FORMAT',
  'SQLITE_RANGE', 'SQLITE_NOTADB',
];

function resultCodeName(code: number): string {
  return EXTENDED_CODES[code] ?? PRIMARY_CODES[code & 0xff] ?? `SQLITE_${code}`;
}
