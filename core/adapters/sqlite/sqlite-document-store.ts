import type * as Database from './sqlite-driver.js';
import {
  type CollectionSpec,
  type Doc,
  type DocFilter,
  type DocumentStore,
  type FindOptions,
  fromDocumentJson,
  type IndexInfo,
  type IndexKey,
  type IndexSpec,
  type SortSpec,
  type StoredDocument,
  toDocumentJson,
  type WriteOptions,
} from '../../contracts/document-store.js';
import type { Namespace } from '../../contracts/index-store.js';
import { ConflictError, DuplicateKeyError, ValidationError } from '../../errors.js';
import { valueAtPath } from '../../foundation/filter.js';
import { compileFilter, DOCUMENT_FIELDS, documentPath, extract, fieldOfExpression } from './sqlite-filter.js';
import type { SqliteFileOptions } from './sqlite-open.js';
import { openSqliteFile, statementCache } from './sqlite-open.js';
import { SQLITE_DOCUMENT_STORE_MEMBERS } from './sqlite-settings.js';

/** The connection's file is shared with the index store. */
export interface SqliteDocumentStoreOptions extends SqliteFileOptions {
  /** The clock that decides which documents have expired. Default: the system clock. */
  now?: () => Date;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS xronox_doc_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS xronox_doc_collections (
  db TEXT NOT NULL, coll TEXT NOT NULL, tbl TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
  PRIMARY KEY (db, coll)
);
`;
/** Bumped whenever the layout changes; a file of another version is refused. */
const SCHEMA_VERSION = 1;
const INDEX_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,119}$/;
/** The internal index on `expires_at`; `~` never occurs in a declared index name. */
const EXPIRY_INDEX = '~expiry';

/**
 * The embedded document store: every collection of every database is one table in the
 * connection's SQLite file, `"docs/<db>/<collection>"` (upper-case letters written `^` + lower
 * case, since SQLite names ignore case and Xronox names do not), with an integer id (insertion
 * order), the document JSON (`toDocumentJson`) and its expiry. Each declared index is a real
 * expression index on `json_extract(doc, '$."field"')`, `UNIQUE` where declared and partial
 * (`WHERE json_type(...) IS NOT NULL`) where sparse, so `PRAGMA index_list` shows exactly what
 * the spec asks for. Writes run in `BEGIN IMMEDIATE` transactions, so processes can share the file.
 */
export class SqliteDocumentStore implements DocumentStore {
  readonly name = SQLITE_DOCUMENT_STORE_MEMBERS.name;
  readonly capabilities = SQLITE_DOCUMENT_STORE_MEMBERS.capabilities;
  readonly #db: Database.Database;
  readonly #now: () => Date;
  /** Statements by their SQL text (tables and filters vary). */
  readonly #stmt: (sql: string) => Database.Statement;
  /** Tables known to exist, by namespace key. */
  readonly #tables = new Map<string, string>();
  /** Declared index names by SQLite index name, for naming the index in a `DuplicateKeyError`. */
  readonly #indexNames = new Map<string, string>();
  readonly #uniques = new Map<string, readonly IndexSpec[]>();
  #closed = false;

  constructor(options: SqliteDocumentStoreOptions) {
    this.#now = options.now ?? (() => new Date());
    this.#db = openSqliteFile(options, (db) => {
      db.transaction(() => {
        db.exec(SCHEMA);
        const row = db.prepare('SELECT version FROM xronox_doc_schema').get() as { version: number } | undefined;
        if (!row) db.prepare('INSERT INTO xronox_doc_schema (version) VALUES (?)').run(SCHEMA_VERSION);
        else if (row.version !== SCHEMA_VERSION) {
          throw new Error(`the file holds Xronox document schema ${row.version}, but this version needs schema ${SCHEMA_VERSION}`);
        }
      }).immediate();
    });
    this.#stmt = statementCache(this.#db, 500);
  }

  async ensureCollection(ns: Namespace, spec: CollectionSpec): Promise<void> {
    const tbl = tableName(ns);
    const wanted = spec.indexes.map((index) => ({ index, sqlName: `${tbl}/${encodeName(checkIndexName(index.name))}`, sql: '' }));
    for (const w of wanted) w.sql = indexSql(tbl, w.sqlName, w.index);
    this.#db
      .transaction(() => {
        this.#db.exec(`CREATE TABLE IF NOT EXISTS ${quote(tbl)} (id INTEGER PRIMARY KEY, doc TEXT NOT NULL, expires_at TEXT)`);
        this.#db.exec(`CREATE INDEX IF NOT EXISTS ${quote(`${tbl}/${EXPIRY_INDEX}`)} ON ${quote(tbl)} (expires_at) WHERE expires_at IS NOT NULL`);
        this.#db
          .prepare('INSERT INTO xronox_doc_collections (db, coll, tbl, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (db, coll) DO NOTHING')
          .run(ns.dbName, ns.collection, tbl, new Date().toISOString());
        for (const w of wanted) {
          const existing = this.#db.prepare(`SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?`).get(w.sqlName) as { sql: string } | undefined;
          if (existing && normaliseSql(existing.sql) !== normaliseSql(w.sql)) {
            throw new ConflictError(`Index ${w.index.name} of ${ns.dbName}.${ns.collection} exists with another definition; drop it to recreate it as declared`);
          }
          if (!existing) this.#db.exec(w.sql);
        }
      })
      .immediate();
    for (const w of wanted) this.#indexNames.set(w.sqlName, w.index.name);
    this.#uniques.set(nsKey(ns), spec.indexes.filter((i) => i.unique));
    this.#tables.set(nsKey(ns), tbl);
  }

  async listIndexes(ns: Namespace): Promise<IndexInfo[]> {
    const tbl = this.#table(ns);
    if (!tbl) return [];
    const list = this.#db.pragma(`index_list(${quote(tbl)})`) as Array<{ name: string; unique: number; partial: number }>;
    const out: IndexInfo[] = [];
    for (const entry of list) {
      const prefix = `${tbl}/`;
      if (!entry.name.startsWith(prefix) || entry.name === `${tbl}/${EXPIRY_INDEX}`) continue;
      const { sql } = this.#db.prepare(`SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?`).get(entry.name) as { sql: string };
      out.push({ name: decodeName(entry.name.slice(prefix.length)), keys: keysOfIndexSql(sql), unique: entry.unique === 1, sparse: entry.partial === 1 });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async insertOne(ns: Namespace, doc: Doc, options: WriteOptions = {}): Promise<void> {
    const tbl = this.#writableTable(ns);
    const json = toDocumentJson(doc);
    this.#db
      .transaction(() => {
        this.#purgeExpiredConflicts(ns, tbl, doc);
        this.#run(ns, () => this.#stmt(`INSERT INTO ${quote(tbl)} (doc, expires_at) VALUES (?, ?)`).run(json, expiryText(options.expiresAt)));
      })
      .immediate();
  }

  async upsertOne(ns: Namespace, filter: DocFilter, doc: Doc, options: WriteOptions = {}): Promise<{ created: boolean }> {
    const tbl = this.#writableTable(ns);
    const json = toDocumentJson(doc);
    const params: unknown[] = [];
    const where = compileFilter(filter, params, DOCUMENT_FIELDS);
    return this.#db
      .transaction(() => {
        const found = this.#stmt(`SELECT id FROM ${quote(tbl)} WHERE ${where} ORDER BY id LIMIT 1`).get(...params) as { id: number } | undefined;
        if (found) {
          this.#purgeExpiredConflicts(ns, tbl, doc, found.id);
          this.#run(ns, () => this.#stmt(`UPDATE ${quote(tbl)} SET doc = ?, expires_at = ? WHERE id = ?`).run(json, expiryText(options.expiresAt), found.id));
          return { created: false };
        }
        this.#purgeExpiredConflicts(ns, tbl, doc);
        this.#run(ns, () => this.#stmt(`INSERT INTO ${quote(tbl)} (doc, expires_at) VALUES (?, ?)`).run(json, expiryText(options.expiresAt)));
        return { created: true };
      })
      .immediate();
  }

  async findOne(ns: Namespace, filter: DocFilter | null, options: { sort?: SortSpec } = {}): Promise<Doc | null> {
    const [doc] = await this.find(ns, filter, { ...options, limit: 1 });
    return doc ?? null;
  }

  async find(ns: Namespace, filter: DocFilter | null, options: FindOptions): Promise<Doc[]> {
    const tbl = this.#table(ns);
    if (!tbl) return [];
    if (!Number.isSafeInteger(options.limit) || options.limit < 1) throw new ValidationError('limit must be a positive integer', { path: 'limit' });
    const params: unknown[] = [iso(this.#now())];
    const where = filter ? ` AND ${compileFilter(filter, params, DOCUMENT_FIELDS)}` : '';
    const order = [...(options.sort ?? []).map(([field, dir]) => `${extract(field)} ${dir === -1 ? 'DESC' : 'ASC'}`), 'id ASC'].join(', ');
    params.push(options.limit);
    const rows = this.#stmt(`SELECT doc FROM ${quote(tbl)} WHERE (expires_at IS NULL OR expires_at > ?)${where} ORDER BY ${order} LIMIT ?`).all(...params) as Array<{ doc: string }>;
    return rows.map((r) => fromDocumentJson(r.doc));
  }

  async deleteOne(ns: Namespace, filter: DocFilter): Promise<number> {
    const tbl = this.#table(ns);
    if (!tbl) return 0;
    const params: unknown[] = [iso(this.#now())];
    const where = compileFilter(filter, params, DOCUMENT_FIELDS);
    const sql = `DELETE FROM ${quote(tbl)} WHERE id = (SELECT id FROM ${quote(tbl)} WHERE (expires_at IS NULL OR expires_at > ?) AND ${where} ORDER BY id LIMIT 1)`;
    return this.#db.transaction(() => this.#stmt(sql).run(...params).changes).immediate();
  }

  async deleteMany(ns: Namespace, filter: DocFilter | null): Promise<number> {
    const tbl = this.#table(ns);
    if (!tbl) return 0;
    const params: unknown[] = [iso(this.#now())];
    const where = filter ? ` AND ${compileFilter(filter, params, DOCUMENT_FIELDS)}` : '';
    const sql = `DELETE FROM ${quote(tbl)} WHERE (expires_at IS NULL OR expires_at > ?)${where}`;
    return this.#db.transaction(() => this.#stmt(sql).run(...params).changes).immediate();
  }

  async deleteExpired(ns: Namespace, now: Date): Promise<number> {
    const tbl = this.#table(ns);
    if (!tbl) return 0;
    const sql = `DELETE FROM ${quote(tbl)} WHERE expires_at IS NOT NULL AND expires_at <= ?`;
    return this.#db.transaction(() => this.#stmt(sql).run(iso(now)).changes).immediate();
  }

  async exportDocuments(ns: Namespace, options: { after?: string; limit: number }): Promise<{ documents: StoredDocument[]; next: string | null }> {
    if (!Number.isSafeInteger(options.limit) || options.limit < 1) throw new ValidationError('limit must be a positive integer', { path: 'limit' });
    const after = options.after === undefined ? 0 : Number(options.after);
    if (!Number.isSafeInteger(after) || after < 0 || (options.after !== undefined && String(after) !== options.after)) {
      throw new ValidationError(`Invalid export cursor ${JSON.stringify(options.after).slice(0, 40)}`, { path: 'after' });
    }
    const tbl = this.#table(ns);
    if (!tbl) return { documents: [], next: null };
    const rows = this.#stmt(`SELECT id, doc, expires_at FROM ${quote(tbl)} WHERE id > ? ORDER BY id LIMIT ?`).all(after, options.limit) as Array<{ id: number; doc: string; expires_at: string | null }>;
    return {
      documents: rows.map((r) => ({ doc: fromDocumentJson(r.doc), expiresAt: r.expires_at === null ? null : new Date(r.expires_at) })),
      next: rows.length < options.limit ? null : String(rows[rows.length - 1]!.id),
    };
  }

  async importDocuments(ns: Namespace, documents: readonly StoredDocument[]): Promise<void> {
    const tbl = this.#writableTable(ns);
    const rows = documents.map((d) => [toDocumentJson(d.doc), expiryText(d.expiresAt ?? undefined)] as const);
    this.#db
      .transaction(() => {
        const insert = this.#stmt(`INSERT INTO ${quote(tbl)} (doc, expires_at) VALUES (?, ?)`);
        for (const [json, expiresAt] of rows) this.#run(ns, () => insert.run(json, expiresAt));
      })
      .immediate();
  }

  async clearCollection(ns: Namespace): Promise<number> {
    const tbl = this.#table(ns);
    if (!tbl) return 0;
    return this.#db.transaction(() => this.#stmt(`DELETE FROM ${quote(tbl)}`).run().changes).immediate();
  }

  async countDocuments(ns: Namespace): Promise<number> {
    const tbl = this.#table(ns);
    return tbl ? (this.#stmt(`SELECT count(*) AS n FROM ${quote(tbl)}`).get() as { n: number }).n : 0;
  }

  async replaceCollections(dbName: string, replacements: ReadonlyArray<{ collection: string; from: string | null }>, options: { onlyIfEmpty: boolean }): Promise<{ replaced: boolean; held: number }> {
    const plan = replacements.map((r) => ({
      live: this.#writableTable({ dbName, collection: r.collection }),
      from: r.from === null ? null : this.#writableTable({ dbName: r.from, collection: r.collection }),
    }));
    return this.#db
      .transaction(() => {
        let held = 0;
        for (const { live } of plan) held += (this.#stmt(`SELECT count(*) AS n FROM ${quote(live)}`).get() as { n: number }).n;
        if (options.onlyIfEmpty && held > 0) return { replaced: false, held };
        for (const { live, from } of plan) {
          this.#stmt(`DELETE FROM ${quote(live)}`).run();
          // Same ids, so the same insertion order.
          if (from !== null) this.#stmt(`INSERT INTO ${quote(live)} (id, doc, expires_at) SELECT id, doc, expires_at FROM ${quote(from)} ORDER BY id`).run();
        }
        return { replaced: true, held };
      })
      .immediate();
  }

  async ping(): Promise<void> {
    this.#db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  /** Removes expired documents that hold `doc`'s unique keys: they are gone for readers, so they must not refuse it. */
  #purgeExpiredConflicts(ns: Namespace, tbl: string, doc: Doc, exceptId = -1): void {
    for (const index of this.#uniques.get(nsKey(ns)) ?? []) {
      const values = index.keys.map(([field]) => valueAtPath(doc, field));
      if (values.some((v) => v === undefined)) continue;
      const where = index.keys.map(([field]) => `${extract(field)} = ?`).join(' AND ');
      this.#stmt(`DELETE FROM ${quote(tbl)} WHERE expires_at IS NOT NULL AND expires_at <= ? AND id <> ? AND ${where}`).run(iso(this.#now()), exceptId, ...values);
    }
  }

  #run(ns: Namespace, write: () => unknown): void {
    try {
      write();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const m = code === 'SQLITE_CONSTRAINT_UNIQUE' ? /index '([^']+)'/.exec((err as Error).message) : null;
      if (m) throw new DuplicateKeyError(ns.collection, this.#indexNames.get(m[1]!) ?? m[1]!, { cause: err });
      throw err;
    }
  }

  #table(ns: Namespace): string | null {
    const key = nsKey(ns);
    const known = this.#tables.get(key);
    if (known) return known;
    const row = this.#stmt('SELECT tbl FROM xronox_doc_collections WHERE db = ? AND coll = ?').get(ns.dbName, ns.collection) as { tbl: string } | undefined;
    if (row) this.#tables.set(key, row.tbl);
    return row?.tbl ?? null;
  }

  #writableTable(ns: Namespace): string {
    const tbl = this.#tables.get(nsKey(ns));
    if (!tbl || !this.#uniques.has(nsKey(ns))) throw new ValidationError(`${ns.dbName}.${ns.collection} has not been ensured in this process; call ensureCollection first`);
    return tbl;
  }
}

function nsKey(ns: Namespace): string {
  return `${ns.dbName}\u0000${ns.collection}`;
}

/** Names are `[A-Za-z0-9_-]`: writing an upper-case letter as `^` + lower case keeps them apart in SQLite, which ignores case. */
function encodeName(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `^${c.toLowerCase()}`);
}

function decodeName(name: string): string {
  return name.replace(/\^([a-z])/g, (_m, c: string) => c.toUpperCase());
}

function tableName(ns: Namespace): string {
  for (const [what, value] of [['database', ns.dbName], ['collection', ns.collection]] as const) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(value)) throw new ValidationError(`Invalid ${what} name ${JSON.stringify(value).slice(0, 80)}`);
  }
  return `docs/${encodeName(ns.dbName)}/${encodeName(ns.collection)}`;
}

function checkIndexName(name: string): string {
  if (!INDEX_NAME.test(name)) throw new ValidationError(`Invalid index name ${JSON.stringify(name).slice(0, 80)}`);
  return name;
}

function quote(identifier: string): string {
  // Every identifier here is built from checked names, which never hold a double quote.
  return `"${identifier}"`;
}

function indexSql(tbl: string, sqlName: string, index: IndexSpec): string {
  if (index.keys.length === 0 || index.keys.length > 8) throw new ValidationError(`Index ${index.name} needs 1 to 8 keys`);
  const columns = index.keys.map(([field, dir]) => `${extract(field)} ${dir === -1 ? 'DESC' : 'ASC'}`).join(', ');
  // MongoDB's sparse index leaves out documents that lack every key field.
  const partial = index.sparse ? ` WHERE ${index.keys.map(([field]) => `json_type(doc, '${documentPath(field)}') IS NOT NULL`).join(' OR ')}` : '';
  return `CREATE ${index.unique ? 'UNIQUE ' : ''}INDEX ${quote(sqlName)} ON ${quote(tbl)} (${columns})${partial}`;
}

function normaliseSql(sql: string): string {
  return sql.replace(/\s+/g, ' ').replace(/ IF NOT EXISTS/i, '').trim();
}

/** The keys of an index, read back from the SQL that SQLite keeps for it. */
function keysOfIndexSql(sql: string): IndexKey[] {
  const open = sql.indexOf('(', sql.indexOf(' ON '));
  let depth = 0;
  let start = open + 1;
  const parts: string[] = [];
  for (let i = open; i < sql.length; i++) {
    const c = sql[i];
    if (c === "'") i = sql.indexOf("'", i + 1);
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) {
      parts.push(sql.slice(start, i));
      break;
    } else if (c === ',' && depth === 1) {
      parts.push(sql.slice(start, i));
      start = i + 1;
    }
  }
  return parts.map((part) => {
    const m = /^(.*?)\s+(ASC|DESC)\s*$/i.exec(part.trim());
    const field = fieldOfExpression(m ? m[1]! : part);
    if (field === null) throw new Error(`Unexpected index expression: ${part.trim().slice(0, 120)}`);
    return [field, m && m[2]!.toUpperCase() === 'DESC' ? -1 : 1] as const;
  });
}

/**
 * The stored `expires_at`: ISO text, which orders like the dates only with four year digits
 * (`+010000-…` would sort before every real date and expire the document at once).
 */
function expiryText(date: Date | undefined): string | null {
  if (date !== undefined) {
    const year = Number.isFinite(date.getTime()) ? date.getUTCFullYear() : NaN;
    if (!(year >= 0 && year <= 9999)) throw new ValidationError('expiresAt must be a valid date in the years 0000-9999', { path: 'expiresAt' });
  }
  return iso(date);
}

function iso(date: Date | undefined): string | null {
  return date === undefined ? null : date.toISOString();
}
