import type { CollectionSpec, Doc, DocFilter, DocScalar, DocumentStore, SortSpec } from '../../contracts/document-store.js';
import type { Namespace } from '../../contracts/index-store.js';
import { TenantAccessError, ValidationError } from '../../errors.js';
import { checkNoExtraArguments, checkOptions } from '../../engine/arguments.js';
import { byPath, isPlainObject, matches } from '../../foundation/filter.js';
import { checkDocument } from './document-check.js';
import { parseDocumentFilter, parseSort } from './document-filter.js';

/** Reads return at most this many documents unless `limit` says otherwise. */
export const DEFAULT_FIND_LIMIT = 1000;
/** The largest `limit` a read may ask for. */
export const MAX_FIND_LIMIT = 10_000;

export interface FindDocumentsOptions {
  /** `{ field: 1 | -1 }` over the collection's fields, e.g. `{ firstSeenAt: -1 }`. Ties: insertion order. */
  sort?: Record<string, 1 | -1>;
  /** At most this many documents; default 1000, at most 10,000. */
  limit?: number;
}

/** How one kind of document collection (messaging's `messages`, identities' `users`…) behaves. */
export interface DocumentCollectionContext {
  readonly store: DocumentStore;
  readonly ns: Namespace;
  readonly spec: CollectionSpec;
  readonly maxDocumentBytes: number;
  /** The tenant a tenant-tier database belongs to: documents must carry it, and filters are pinned to it. */
  readonly tenantId: string | undefined;
  /** Checks (and may normalise) a document beyond the generic rules; throws a `ValidationError`. */
  readonly validate: (doc: Doc) => Doc;
  /** When a document expires (`WriteOptions.expiresAt`); `undefined`: never. */
  readonly expiresAt?: (doc: Doc) => Date | undefined;
}

/**
 * A document made ready to store, before anything is written: the document as the store will hold
 * it, and the object (a large payload) to put beside it first, if any. Checked whole (the size
 * limit included) before the collection is even created, so a refused write changes nothing.
 */
export interface StagedDocument {
  readonly doc: Doc;
  /** Puts the object the stored document refers to; called after the collection exists, just before the document is stored. */
  readonly put?: () => Promise<void>;
  /** Removes that object again when the document could not be stored (it belongs to this write alone). */
  readonly discard?: () => Promise<void>;
}

/** Ensured namespaces per store (the guarded store instance is one per connection per Xronox instance). */
const ensured = new WeakMap<DocumentStore, Map<string, Promise<void>>>();

/**
 * The generic handle of a plain document collection, which the messaging and identities handles
 * specialise: validation of documents and filters (before anything reaches the store), tenant
 * pinning, the collection created with its indexes on first use, upserts that can never create
 * two documents for one key.
 */
export class DocumentCollection {
  protected readonly ctx: DocumentCollectionContext;
  readonly #fields: ReadonlySet<string>;

  constructor(ctx: DocumentCollectionContext) {
    this.ctx = ctx;
    this.#fields = new Set(ctx.spec.fields);
  }

  /** The collection's name. */
  get name(): string {
    return this.ctx.ns.collection;
  }

  /** Creates the collection and its indexes unless they exist (done by every call on first use; idempotent). */
  ensure(...extra: never[]): Promise<void> {
    checkNoExtraArguments('ensure', 0, extra);
    let byNs = ensured.get(this.ctx.store);
    if (!byNs) ensured.set(this.ctx.store, (byNs = new Map()));
    const key = `${this.ctx.ns.dbName}\u0000${this.ctx.ns.collection}`;
    let ready = byNs.get(key);
    if (!ready) {
      ready = this.ctx.store.ensureCollection(this.ctx.ns, this.ctx.spec).catch((err: unknown) => {
        byNs.delete(key);
        throw err;
      });
      byNs.set(key, ready);
    }
    return ready;
  }

  /** Inserts a document; a unique index holding its key refuses it with `DuplicateKeyError`. */
  async insert(doc: unknown, ...extra: never[]): Promise<void> {
    checkNoExtraArguments('insert', 1, extra);
    const clean = this.prepare(doc);
    const staged = this.#stage(clean);
    await this.ensure();
    await this.#store(staged, (stored) => this.ctx.store.insertOne(this.ctx.ns, stored, this.#writeOptions(clean)));
  }

  /**
   * Replaces the document that `filter` names, or inserts `doc`. The filter must name every field
   * of one unique index by equality (the tenant is added on a tenant database), and `doc` must
   * agree with it: that is what makes concurrent upserts of one key leave exactly one document.
   */
  async upsert(filter: unknown, doc: unknown, ...extra: never[]): Promise<{ created: boolean }> {
    checkNoExtraArguments('upsert', 2, extra);
    const clean = this.prepare(doc);
    const node = this.checkUpsert(filter, clean);
    const staged = this.#stage(clean);
    await this.ensure();
    let created = false;
    await this.#store(staged, async (stored) => {
      ({ created } = await this.ctx.store.upsertOne(this.ctx.ns, node, stored, this.#writeOptions(clean)));
    });
    return { created };
  }

  /**
   * Checks an upsert of a prepared document and returns its filter: the filter must name a whole
   * unique key by equality, and the document must agree with it. Writes nothing.
   */
  protected checkUpsert(filter: unknown, doc: Doc): DocFilter {
    const node = this.#filter(filter);
    this.#checkUpsertKey(node, doc);
    return node!;
  }

  /** The first document matching `filter` (in `sort` order, else insertion order), or `null`. */
  async findOne(filter?: unknown, options: { sort?: Record<string, 1 | -1> } = {}, ...extra: never[]): Promise<Doc | null> {
    checkNoExtraArguments('findOne', 2, extra);
    const node = this.#filter(filter);
    const sort = this.#sort(options, ['sort'], 'findOne');
    await this.ensure();
    const doc = await this.ctx.store.findOne(this.ctx.ns, node, sort ? { sort } : {});
    return doc ? this.read(doc) : null;
  }

  /** Documents matching `filter`: at most `limit` (default 1000), in `sort` order then insertion order. */
  async find(filter?: unknown, options: FindDocumentsOptions = {}, ...extra: never[]): Promise<Doc[]> {
    checkNoExtraArguments('find', 2, extra);
    const node = this.#filter(filter);
    const sort = this.#sort(options, ['sort', 'limit'], 'find');
    const limit = options?.limit ?? DEFAULT_FIND_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_FIND_LIMIT) {
      throw new ValidationError(`limit must be a whole number from 1 to ${MAX_FIND_LIMIT}`, { path: 'limit' });
    }
    await this.ensure();
    const docs = await this.ctx.store.find(this.ctx.ns, node, { limit, ...(sort ? { sort } : {}) });
    return Promise.all(docs.map((d) => this.read(d)));
  }

  /** Deletes one document matching `filter`; returns how many (0 or 1). An empty filter is refused. */
  async deleteOne(filter: unknown, ...extra: never[]): Promise<number> {
    checkNoExtraArguments('deleteOne', 1, extra);
    const node = this.#nonEmptyFilter(filter, 'deleteOne');
    await this.ensure();
    return this.ctx.store.deleteOne(this.ctx.ns, node);
  }

  /** Deletes every document matching `filter`; returns how many. Pass `{}` to delete them all. */
  async deleteMany(filter: unknown, ...extra: never[]): Promise<number> {
    checkNoExtraArguments('deleteMany', 1, extra);
    if (filter === undefined || filter === null) throw new ValidationError('deleteMany needs a filter; pass {} to delete every document', { path: 'filter' });
    const node = this.#filter(filter);
    await this.ensure();
    return this.ctx.store.deleteMany(this.ctx.ns, node);
  }

  /** Deletes the documents that have expired by `now`; returns how many (retention). */
  async deleteExpired(now: Date = new Date(), ...extra: never[]): Promise<number> {
    checkNoExtraArguments('deleteExpired', 1, extra);
    if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw new ValidationError('deleteExpired takes a valid Date', { path: 'now' });
    await this.ensure();
    return this.ctx.store.deleteExpired(this.ctx.ns, now);
  }

  /** The generic and the collection's own checks, and the tenant rule; returns the document to store. */
  protected prepare(doc: unknown): Doc {
    const { doc: checked } = checkDocument(doc, this.ctx.spec, Number.MAX_SAFE_INTEGER);
    const clean = this.ctx.validate(checked);
    const tenant = this.ctx.tenantId;
    if (tenant !== undefined && clean.tenantId !== tenant) {
      throw new TenantAccessError(`This handle serves tenant "${tenant}"; the document names tenant ${JSON.stringify(clean.tenantId)}`);
    }
    return clean;
  }

  /**
   * The document as the store will hold it (subclasses move large parts elsewhere): called before
   * anything is written or created, so it must only compute, never write.
   */
  protected stage(doc: Doc): StagedDocument {
    return { doc };
  }

  /** `stage`, with the size limit checked on what will be stored. */
  #stage(doc: Doc): StagedDocument {
    const staged = this.stage(doc);
    return { ...staged, doc: checkDocument(staged.doc, this.ctx.spec, this.ctx.maxDocumentBytes).doc };
  }

  /** Puts a staged document's object, then stores the document; a failed store removes the object again. */
  async #store(staged: StagedDocument, store: (stored: Doc) => Promise<void>): Promise<void> {
    await staged.put?.();
    try {
      await store(staged.doc);
    } catch (err) {
      await staged.discard?.().catch(() => undefined);
      throw err;
    }
  }

  /** Turns a stored document back into what the caller wrote (subclasses bring back large parts). */
  protected async read(doc: Doc): Promise<Doc> {
    return doc;
  }

  #writeOptions(doc: Doc): { expiresAt?: Date } {
    const at = this.ctx.expiresAt?.(doc);
    return at ? { expiresAt: at } : {};
  }

  #filter(input: unknown): DocFilter | null {
    const node = parseDocumentFilter(input, this.#fields);
    const tenant = this.ctx.tenantId;
    if (tenant === undefined) return node;
    const pin: DocFilter = { kind: 'compare', field: 'tenantId', op: '$eq', value: tenant };
    return node === null ? pin : { kind: 'and', items: [pin, node] };
  }

  #nonEmptyFilter(input: unknown, method: string): DocFilter {
    if (!isPlainObject(input) || Object.keys(input).length === 0) {
      throw new ValidationError(`${method} needs a non-empty filter`, { path: 'filter' });
    }
    return this.#filter(input)!;
  }

  #sort(options: unknown, known: readonly string[], method: string): SortSpec | undefined {
    if (options === undefined || options === null) return undefined;
    return parseSort(checkOptions(options, known, 'options', method).sort, this.#fields);
  }

  #checkUpsertKey(node: DocFilter | null, doc: Doc): void {
    const pinned = equalities(node);
    const unique = this.ctx.spec.indexes.filter((i) => i.unique);
    if (!unique.some((i) => i.keys.every(([f]) => pinned.has(f)))) {
      throw new ValidationError(
        unique.length === 0
          ? `${this.name} has no unique key, so it cannot be upserted; insert instead`
          : `upsert needs a filter naming every field of a unique key by equality: ${unique.map((i) => i.keys.map(([f]) => f).join(' + ')).join(', or ')}`,
        { path: 'filter' },
      );
    }
    const fields = byPath(doc);
    if (!matches(node, fields)) {
      const wrong = [...pinned.keys()].find((f) => !matches({ kind: 'compare', field: f, op: '$eq', value: pinned.get(f)! }, fields));
      throw new ValidationError(`The document does not match the upsert filter${wrong ? ` (${wrong})` : ''}; it must hold the key it is stored under`, { path: wrong ? `doc.${wrong}` : 'doc' });
    }
  }
}

/** Fields a filter pins to one value: `$eq` conditions at the top level (alone or in an `and`). */
function equalities(node: DocFilter | null): Map<string, DocScalar> {
  const out = new Map<string, DocScalar>();
  const visit = (n: DocFilter) => {
    if (n.kind === 'and') n.items.forEach(visit);
    else if (n.kind === 'compare' && n.op === '$eq' && n.value !== null) out.set(n.field, n.value);
  };
  if (node) visit(node);
  return out;
}
