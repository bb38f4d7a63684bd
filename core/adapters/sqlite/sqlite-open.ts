import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { openDatabase, type Database, type SqliteDriverName, type Statement } from './sqlite-driver.js';
import { fsReason, makeFolderSync } from '../fs/fs-folders.js';

/** How the stores of a connection open its SQLite file. */
export interface SqliteFileOptions {
  /** Database file (the connection's `sqlitePath`); created with its folder when missing. `:memory:` works for one process. */
  path: string;
  /** How long a writer waits for another process's write lock before failing. Default 10 s. */
  busyTimeoutMs?: number;
  /**
   * `full` (default) fsyncs every commit: an acknowledged write survives power loss.
   * `normal` survives process crashes but may lose the last commits on power loss.
   */
  durability?: 'full' | 'normal';
  /** The SQLite driver; default this runtime's (`defaultSqliteDriver`: better-sqlite3 on Node, bun:sqlite on Bun, node:sqlite on Deno). */
  driver?: SqliteDriverName;
}

/**
 * Opens a store's SQLite file (creating it, and its folder, when missing) in WAL mode with the
 * durability asked for, and runs `prepare` on it (pragmas, schema). Any failure closes the file
 * again, so a refused file is not left open behind the error, and is rethrown naming the file and
 * the reason: a folder that cannot be made (`ENOTDIR`, `EACCES`, ...), something that is not a
 * file at the path, or a file SQLite refuses.
 */
export function openSqliteFile(options: SqliteFileOptions, prepare: (db: Database) => void): Database {
  const { path, busyTimeoutMs = 10_000 } = options;
  const setUp = (db: Database) => {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous(options)}`);
    prepare(db);
  };
  if (path === ':memory:') return prepared(openDatabase(path, { busyTimeoutMs, driver: options.driver }), setUp, path);
  try {
    makeFolderSync(dirname(path));
  } catch (err) {
    throw openError(path, `its folder cannot be made (${fsReason(err)})`, err);
  }
  // SQLite would open a FIFO or a device too, and its first read of one may never return.
  const existing = statOrNull(path);
  if (existing?.isDirectory()) throw openError(path, 'a folder is at that path, not a file');
  if (existing && !existing.isFile()) throw openError(path, 'a FIFO, socket or device is at that path, not a file');
  let db: Database;
  try {
    db = openDatabase(path, { busyTimeoutMs, driver: options.driver });
  } catch (err) {
    throw openError(path, sqliteReason(err), err);
  }
  return prepared(db, setUp, path);
}

/** SQLite's `synchronous` setting for the durability asked for. */
export function synchronous(options: SqliteFileOptions): 'FULL' | 'NORMAL' {
  return options.durability === 'normal' ? 'NORMAL' : 'FULL';
}

/**
 * Statements of SQL that varies with a query's shape (filters, optional conditions), each text
 * prepared once and kept: shapes repeat. Bounded, the oldest going first, so filters of many
 * shapes cannot grow it without end.
 */
export function statementCache(db: Database, size = 256): (sql: string) => Statement {
  const kept = new Map<string, Statement>();
  return (sql) => {
    let stmt = kept.get(sql);
    if (!stmt) {
      stmt = db.prepare(sql);
      if (kept.size >= size) kept.delete(kept.keys().next().value!);
      kept.set(sql, stmt);
    }
    return stmt;
  };
}

function prepared(db: Database, prepare: (db: Database) => void, path: string): Database {
  try {
    prepare(db);
    return db;
  } catch (err) {
    db.close();
    throw path === ':memory:' ? err : openError(path, sqliteReason(err), err);
  }
}

function openError(path: string, reason: string, cause?: unknown): Error {
  return new Error(`Cannot open the SQLite file ${path}: ${reason}`, cause === undefined ? {} : { cause });
}

/** SQLite errors carry SQLite's code (see sqlite-driver.ts) (`SQLITE_CANTOPEN`, `SQLITE_NOTADB`); fs errors their errno code. */
function sqliteReason(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string' && code.startsWith('SQLITE_')) return `${code}: ${message}`;
  return fsReason(err);
}

function statOrNull(path: string) {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}
