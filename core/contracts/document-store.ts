import type { FilterTree } from '../foundation/filter-tree.js';
import type { Namespace } from './index-store.js';

/**
 * The document store port: plain, unversioned document collections with declared indexes, as the
 * messaging and identities databases need them (MongoDB collections named `shared_memory`,
 * `users`…, with their unique, sparse and descending indexes; on SQLite, one table per collection
 * with real expression indexes).
 *
 * Every call names its namespace (`dbName` + `collection`); the router has already turned the
 * tenant into a database name, and adapters keep namespaces fully apart.
 *
 * What the core guarantees before a call reaches an adapter (so adapters stay simple, see
 * `core/domains/documents/`): documents are checked by `checkDocument` (JSON values and `Date`s,
 * no `$`-prefixed, dotted, empty or `__proto__` keys, no top-level `_id` or `_xronox`, every
 * declared field a scalar, every unique index's fields strings or numbers); filters name only
 * declared fields and hold only scalars; `ensureCollection` ran for the namespace in this process.
 */
export interface DocumentStore {
  /** Short adapter name used in errors and logs, e.g. `sqlite`. */
  readonly name: string;
  readonly capabilities: DocumentStoreCapabilities;

  /**
   * Creates the collection and every index of `spec` unless they exist. Idempotent and safe when
   * several processes race. An existing index of the same name with another definition is an
   * error naming it (nothing is dropped).
   */
  ensureCollection(ns: Namespace, spec: CollectionSpec): Promise<void>;

  /** The indexes the backend holds for the collection (its internal ones left out); `[]` for an unknown collection. */
  listIndexes(ns: Namespace): Promise<IndexInfo[]>;

  /**
   * Inserts one document. A unique index that already holds its key (a live or an expired
   * document) rejects it with `DuplicateKeyError` naming the index, and nothing is written.
   */
  insertOne(ns: Namespace, doc: Doc, options?: WriteOptions): Promise<void>;

  /**
   * Atomically replaces the first document matching `filter` (expired ones included) with `doc`,
   * or inserts `doc` when none matches. The core passes only filters that pin every field of a
   * unique index by equality and agree with `doc`, so any number of racing callers leave exactly
   * one document for a key. A clash with another document's unique key is a `DuplicateKeyError`.
   */
  upsertOne(ns: Namespace, filter: DocFilter, doc: Doc, options?: WriteOptions): Promise<{ created: boolean }>;

  /** The first live document matching `filter` in `sort` order (default: insertion order); `null` when none. */
  findOne(ns: Namespace, filter: DocFilter | null, options?: { sort?: SortSpec }): Promise<Doc | null>;

  /**
   * Live documents matching `filter`, at most `limit`, in `sort` order then insertion order.
   * Order is defined when each sort field holds values of one type (or is missing).
   */
  find(ns: Namespace, filter: DocFilter | null, options: FindOptions): Promise<Doc[]>;

  /** Deletes the first live document matching `filter` in insertion order; returns how many (0 or 1). */
  deleteOne(ns: Namespace, filter: DocFilter): Promise<number>;

  /** Deletes every live document matching `filter` (`null`: all); returns how many. */
  deleteMany(ns: Namespace, filter: DocFilter | null): Promise<number>;

  /**
   * Deletes every document whose `expiresAt` (see `WriteOptions`) is at or before `now`; returns
   * how many. Reads never return such documents even before this runs, so expiry is exact
   * whatever the sweep's (or MongoDB's TTL monitor's) timing.
   */
  deleteExpired(ns: Namespace, now: Date): Promise<number>;

  /**
   * Every stored document of the collection (expired ones included, with their expiry) in
   * insertion order, a page at a time, for backups: pass the returned `next` as `after` until it
   * is `null`. Documents written while paging may or may not be seen. An unknown collection has
   * no documents.
   */
  exportDocuments(ns: Namespace, options: { after?: string; limit: number }): Promise<{ documents: StoredDocument[]; next: string | null }>;

  /**
   * Appends documents in the order given, keeping their expiry (restores). A unique index that
   * already holds a key is a `DuplicateKeyError` naming the index; then nothing of the call is
   * written on SQLite, and on MongoDB the documents before the clash are (a restore clears the
   * collection and starts again, so either way it converges).
   */
  importDocuments(ns: Namespace, documents: readonly StoredDocument[]): Promise<void>;

  /** Deletes every document of the collection, expired or not; returns how many. Indexes stay. */
  clearCollection(ns: Namespace): Promise<number>;

  /** How many documents the collection stores, expired ones not yet removed included; `0` for an unknown collection. */
  countDocuments(ns: Namespace): Promise<number>;

  /**
   * Replaces whole collections of `dbName` (a backup restore): each listed collection's
   * documents become copies of those of the same collection in database `from` (a restore's
   * staging area, left as it was), in their order and with their expiry; with `from: null` the
   * collection is only emptied. Both collections must have been ensured in this process.
   *
   * With `options.onlyIfEmpty`, nothing changes when the listed collections hold any document:
   * `replaced` is `false` and `held` says how many. With `capabilities.atomicReplace` all of it
   * is one transaction (readers see every collection as it was or every one replaced);
   * otherwise it runs collection by collection; it is idempotent, so a call cut off half-way is
   * finished by calling it again with the same staging area.
   */
  replaceCollections(dbName: string, replacements: ReadonlyArray<{ collection: string; from: string | null }>, options: { onlyIfEmpty: boolean }): Promise<{ replaced: boolean; held: number }>;

  /** Resolves when the backend answers. */
  ping(): Promise<void>;

  /**
   * Optional: connects to the backend (a client's first connection). The core's guard
   * (`core/store/guard.ts`) calls it once, before the first other call; when it fails, that call
   * fails and the next one calls it again; never after close. So methods need no connect of their own.
   */
  open?(): Promise<void>;

  /** Releases connections. Idempotent. */
  close(): Promise<void>;
}

export interface DocumentStoreCapabilities {
  /** The backend deletes expired documents by itself (a TTL index); otherwise only `deleteExpired` does. */
  readonly nativeExpiry: boolean;
  /** `replaceCollections` is one transaction (SQLite); otherwise it runs collection by collection. */
  readonly atomicReplace: boolean;
}

/** A value in a document: JSON plus `Date` (stored as a date, read back as a `Date`). */
export type DocScalar = string | number | boolean | null | Date;
export type DocValue = DocScalar | readonly DocValue[] | { readonly [key: string]: DocValue };
/** A document: a plain object. */
export type Doc = { [key: string]: DocValue };

/** One indexed field and its direction (`1` ascending, `-1` descending). */
export type IndexKey = readonly [field: string, direction: 1 | -1];

export interface IndexSpec {
  /** The index's name on every backend, e.g. `key_1_namespace_1_tenantId_1` (MongoDB's default naming). */
  readonly name: string;
  readonly keys: readonly IndexKey[];
  /** No two documents may hold the same values of `keys`. Default false. */
  readonly unique?: boolean;
  /** Documents lacking every field of `keys` are left out of the index (a null is present). Default false. */
  readonly sparse?: boolean;
}

export interface CollectionSpec {
  /**
   * The dotted paths that filters, sorts and indexes may name. Every document holds a scalar
   * (`DocScalar`) or nothing at each of them, under plain objects (never arrays), which is what
   * makes a filter mean the same thing on every backend.
   */
  readonly fields: readonly string[];
  readonly indexes: readonly IndexSpec[];
}

/** An index as the backend reports it. */
export interface IndexInfo {
  readonly name: string;
  readonly keys: readonly IndexKey[];
  readonly unique: boolean;
  readonly sparse: boolean;
}

/**
 * A validated filter over declared fields: the engine's `FilterNode` with `Date` values too.
 * Semantics are those of `core/foundation/filter.ts` (MongoDB's for scalars): equality is type-strict,
 * ranges match values of the operand's type only (dates with dates), `{ f: null }` matches null or
 * missing. `core/domains/documents/document-filter.ts` parses user input into it;
 * `matches` in `core/foundation/filter.ts` evaluates it.
 */
export type DocFilter = FilterTree<DocScalar>;

export type SortSpec = readonly IndexKey[];

export interface FindOptions {
  sort?: SortSpec;
  /** At most this many documents (1 or more). */
  limit: number;
}

export interface WriteOptions {
  /**
   * When the document expires: from then on reads skip it and `deleteExpired` removes it (as does
   * a TTL index where `capabilities.nativeExpiry`). Kept outside the document; absent: never.
   */
  expiresAt?: Date;
}

/** A document as stored: the document and when it expires (`null`: never). */
export interface StoredDocument {
  doc: Doc;
  expiresAt: Date | null;
}

/** The key under which a `Date` travels in document JSON (`{ "$date": "2024-01-01T00:00:00.000Z" }`). */
export const DATE_KEY = '$date';

/**
 * Document JSON: JSON in which a `Date` is `{ "$date": "<ISO-8601 UTC, ms>" }`. Documents never
 * hold `$`-prefixed keys of their own (`checkDocument`), so the tag is unambiguous, and because
 * dates are limited to years 0000-9999 the text of the tag orders like the dates it holds.
 */
export function toDocumentJson(value: DocValue): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
    // JSON.stringify calls Date#toJSON before the replacer; the holder still has the Date.
    const raw = this[key];
    return raw instanceof Date ? { [DATE_KEY]: raw.toISOString() } : v;
  });
}

/**
 * The inverse of `toDocumentJson`; `reviveText` undoes a store's own escaping of strings (the
 * PostgreSQL document store escapes what `jsonb` cannot hold).
 */
export function fromDocumentJson(text: string, reviveText?: (stored: string) => string): Doc {
  return JSON.parse(text, (_key, v: unknown) => {
    if (reviveText && typeof v === 'string') return reviveText(v);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const keys = Object.keys(v);
      const iso = (v as Record<string, unknown>)[DATE_KEY];
      if (keys.length === 1 && typeof iso === 'string') return new Date(iso);
    }
    return v;
  }) as Doc;
}
