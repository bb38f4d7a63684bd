import { sha256Hex } from '../../foundation/digest.js';
import { z } from 'zod';
import type { CollectionSpec, Doc, DocValue } from '../../contracts/document-store.js';
import type { Actor } from '../../contracts/index-store.js';
import { ValidationError } from '../../errors.js';
import { checkNoExtraArguments, checkOptions } from '../../engine/arguments.js';
import { isPlainObject } from '../../foundation/filter.js';
import { DocumentCollection, type DocumentCollectionContext, MAX_FIND_LIMIT } from '../documents/document-collection.js';
import { valueAt } from '../documents/document-filter.js';
import { checkWith } from '../documents/zod-check.js';

/**
 * The identities database type: users, accounts, sessions, roles and permissions. Not versioned;
 * instead, every change of a user, account, role or permission also writes an audit event into
 * the tenant's runtime database (collection `identity_events`), which is versioned, as the
 * storage architecture document recommends. Sessions are not audited (they are short-lived
 * tokens, written at every login) and expire at their `expiresAt`.
 */
export const IDENTITY_COLLECTIONS = ['users', 'accounts', 'sessions', 'roles', 'permissions'] as const;
export type IdentityCollectionName = (typeof IDENTITY_COLLECTIONS)[number];

/** The runtime collection that receives the audit events. */
export const IDENTITY_EVENTS_COLLECTION = 'identity_events';

const tenantUnique = (field: string) => ({ name: `tenantId_1_${field}_1`, keys: [['tenantId', 1], [field, 1]] as const, unique: true });

export const IDENTITY_SPECS: Readonly<Record<IdentityCollectionName, CollectionSpec>> = {
  users: {
    fields: ['userId', 'tenantId', 'email', 'accountId', 'status', '_system.createdAt', '_system.updatedAt'],
    indexes: [tenantUnique('email'), tenantUnique('userId'), { name: 'tenantId_1_accountId_1', keys: [['tenantId', 1], ['accountId', 1]] }],
  },
  accounts: { fields: ['accountId', 'tenantId', 'name', 'status'], indexes: [tenantUnique('accountId')] },
  sessions: {
    fields: ['sessionId', 'tenantId', 'userId', 'createdAt', 'expiresAt'],
    indexes: [tenantUnique('sessionId'), { name: 'tenantId_1_userId_1', keys: [['tenantId', 1], ['userId', 1]] }, { name: 'expiresAt_1', keys: [['expiresAt', 1]] }],
  },
  roles: { fields: ['name', 'tenantId'], indexes: [tenantUnique('name')] },
  permissions: { fields: ['name', 'tenantId'], indexes: [tenantUnique('name')] },
};

const id = z.string().min(1).max(256);
const names = z.array(z.string().min(1).max(256)).max(1000);

const SCHEMAS: Readonly<Record<IdentityCollectionName, z.ZodType>> = {
  users: z.looseObject({
    userId: id,
    tenantId: id,
    email: z.email().max(320),
    name: z.string().max(1000).optional(),
    roles: names.optional(),
    accountId: id.optional(),
    status: z.string().max(64).optional(),
  }),
  accounts: z.looseObject({ accountId: id, tenantId: id, name: z.string().min(1).max(1000), status: z.string().max(64).optional() }),
  sessions: z.looseObject({ sessionId: id, tenantId: id, userId: id, createdAt: z.date(), expiresAt: z.date() }),
  roles: z.looseObject({ name: id, tenantId: id, permissions: names.optional(), description: z.string().max(10_000).optional() }),
  permissions: z.looseObject({ name: id, tenantId: id, description: z.string().max(10_000).optional() }),
};

/** Fields whose values an audit event never copies (credentials and the like). */
const SECRET_FIELD = /pass(word)?|secret|token|hash|salt|otp|credential/i;
const REDACTED = '[redacted]';

/** Who made a change, and why: stored on the audit event (a runtime version). */
export interface IdentityChangeOptions {
  actor?: Actor;
  reason?: string;
}

/** One audit event, as written to the tenant's runtime `identity_events` collection. */
export type IdentityChangeEvent = {
  eventType: 'identity_change';
  collection: IdentityCollectionName;
  op: 'create' | 'update' | 'delete';
  tenantId: string;
  /** The document's unique key, e.g. `{ tenantId, userId }`. */
  key: Record<string, string | number>;
  /** Top-level fields that changed, old and new (`null` when absent); secret-looking fields redacted. */
  changes: Array<{ field: string; oldValue: unknown; newValue: unknown }>;
};

/** Writes one audit event; resolved per tenant by the caller (a runtime collection). */
export type IdentityAudit = {
  /** Throws (a `RouteNotFoundError`) when the tenant has no runtime database: checked before anything is written. */
  check(tenantId: string): void;
  /** Throws the `ValidationError` that `write` would throw for this event, writing nothing. */
  validate(event: IdentityChangeEvent, options: IdentityChangeOptions): void;
  write(event: IdentityChangeEvent, options: IdentityChangeOptions): Promise<void>;
};

export interface IdentitiesContext extends Omit<DocumentCollectionContext, 'spec' | 'validate' | 'expiresAt'> {
  readonly collection: IdentityCollectionName;
  readonly audit: IdentityAudit;
}

/** The name as an identities collection, or a `ValidationError` naming the ones there are. */
export function identityCollectionName(collection: string): IdentityCollectionName {
  if ((IDENTITY_COLLECTIONS as readonly string[]).includes(collection)) return collection as IdentityCollectionName;
  throw new ValidationError(`An identities database holds the collections ${IDENTITY_COLLECTIONS.join(', ')}; got "${collection}"`, { path: 'collection' });
}

/** Checks a document as the store holds it (restores): what a write checks, emails already normalised. */
export function checkStoredIdentityDoc(collection: IdentityCollectionName, doc: Doc): void {
  checkWith(SCHEMAS[collection], doc, collection);
  if (JSON.stringify(normaliseEmail(doc)) !== JSON.stringify(doc)) throw new ValidationError(`Invalid ${collection} document: the email is not stored trimmed and lower-cased`, { path: 'doc.email' });
}

/**
 * An identities collection: the messaging handle's six methods, each write taking an optional
 * `{ actor, reason }` for its audit event. Emails are stored trimmed and lower-cased (and matched
 * so in filters), so one address is one user per tenant whatever its spelling.
 */
export class IdentitiesCollection extends DocumentCollection {
  readonly #i: IdentitiesContext;

  constructor(ctx: IdentitiesContext) {
    const collection = ctx.collection;
    super({
      ...ctx,
      spec: IDENTITY_SPECS[collection],
      validate: (doc) => checkWith(SCHEMAS[collection], normaliseEmail(doc), collection),
      ...(collection === 'sessions' ? { expiresAt: (doc: Doc) => (doc.expiresAt instanceof Date ? doc.expiresAt : undefined) } : {}),
    });
    this.#i = ctx;
  }

  // Each audited write builds its audit event and has it checked before the document is written,
  // so an event the runtime database would refuse refuses the change instead of following it.

  override async insert(doc: unknown, options: IdentityChangeOptions = {}, ...extra: never[]): Promise<void> {
    checkNoExtraArguments('insert', 2, extra);
    checkChangeOptions(options, 'insert');
    const clean = this.prepare(doc);
    this.#checkAudit(clean);
    const event = this.#event('create', null, clean, options);
    await super.insert(clean);
    await this.#writeEvent(event, options);
  }

  override async upsert(filter: unknown, doc: unknown, options: IdentityChangeOptions = {}, ...extra: never[]): Promise<{ created: boolean }> {
    checkNoExtraArguments('upsert', 3, extra);
    checkChangeOptions(options, 'upsert');
    const clean = this.prepare(doc);
    this.#checkAudit(clean);
    const normalised = normaliseEmailFilter(filter);
    // The whole upsert is checked before the read below, which would create the collection.
    this.checkUpsert(normalised, clean);
    const before = this.#audited() ? await super.findOne(normalised) : null;
    // The event of what the upsert is expected to do is checked first; should a racing writer
    // turn a replace into an insert (or the reverse), the other event is built afterwards.
    const expected = before ? this.#event('update', before, clean, options) : this.#event('create', null, clean, options);
    const result = await super.upsert(normalised, clean);
    const event = result.created === (before === null) ? expected : result.created ? this.#event('create', null, clean, options) : this.#event('update', before, clean, options);
    await this.#writeEvent(event, options);
    return result;
  }

  override findOne(filter?: unknown, options?: { sort?: Record<string, 1 | -1> }, ...extra: never[]): Promise<Doc | null> {
    return super.findOne(normaliseEmailFilter(filter), options, ...extra);
  }

  override find(filter?: unknown, options?: { sort?: Record<string, 1 | -1>; limit?: number }, ...extra: never[]): Promise<Doc[]> {
    return super.find(normaliseEmailFilter(filter), options, ...extra);
  }

  override async deleteOne(filter: unknown, options: IdentityChangeOptions = {}, ...extra: never[]): Promise<number> {
    checkNoExtraArguments('deleteOne', 2, extra);
    checkChangeOptions(options, 'deleteOne');
    // As the plain handle: an empty filter is refused (the audited path below would otherwise
    // delete whichever identity comes first).
    if (!isPlainObject(filter) || Object.keys(filter).length === 0) throw new ValidationError('deleteOne needs a non-empty filter', { path: 'filter' });
    const normalised = normaliseEmailFilter(filter);
    if (!this.#audited()) return super.deleteOne(normalised);
    const doc = await super.findOne(normalised);
    if (!doc) return 0;
    this.#checkAudit(doc);
    const event = this.#event('delete', doc, null, options);
    const removed = await super.deleteOne(this.#keyFilter(doc));
    if (removed > 0) await this.#writeEvent(event, options);
    return removed;
  }

  /** Deletes every match (each audited on its own); refuses filters matching more than 10,000 documents. */
  override async deleteMany(filter: unknown, options: IdentityChangeOptions = {}, ...extra: never[]): Promise<number> {
    checkNoExtraArguments('deleteMany', 2, extra);
    checkChangeOptions(options, 'deleteMany');
    const normalised = normaliseEmailFilter(filter);
    if (!this.#audited()) return super.deleteMany(normalised);
    if (filter === undefined || filter === null) throw new ValidationError('deleteMany needs a filter; pass {} to delete every document', { path: 'filter' });
    const docs = await super.find(normalised, { limit: MAX_FIND_LIMIT });
    if (docs.length === MAX_FIND_LIMIT) throw new ValidationError(`deleteMany matches ${MAX_FIND_LIMIT} or more identities; narrow the filter`, { path: 'filter' });
    for (const doc of docs) this.#checkAudit(doc);
    const events = docs.map((doc) => this.#event('delete', doc, null, options));
    let removed = 0;
    for (const [i, doc] of docs.entries()) {
      if ((await super.deleteOne(this.#keyFilter(doc))) === 0) continue;
      removed++;
      await this.#writeEvent(events[i]!, options);
    }
    return removed;
  }

  #audited(): boolean {
    return this.#i.collection !== 'sessions';
  }

  #checkAudit(doc: Doc): void {
    if (this.#audited()) this.#i.audit.check(String(doc.tenantId));
  }

  /** The filter of a document's first unique key (every identities collection has one). */
  #keyFilter(doc: Doc): Record<string, DocValue> {
    const unique = IDENTITY_SPECS[this.#i.collection].indexes.find((i) => i.unique)!;
    return Object.fromEntries(unique.keys.map(([f]) => [f, valueAt(doc, f)!]));
  }

  /** The audit event of a change, already checked (`null`: nothing to audit). */
  #event(op: IdentityChangeEvent['op'], before: Doc | null, after: Doc | null, options: IdentityChangeOptions): IdentityChangeEvent | null {
    if (!this.#audited()) return null;
    const doc = (after ?? before)!;
    const unique = IDENTITY_SPECS[this.#i.collection].indexes.find((i) => i.unique)!;
    const fields = [...new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})])].filter((f) => f !== '_system');
    const changes = fields
      .map((field) => ({ field, oldValue: plain(before?.[field]), newValue: plain(after?.[field]) }))
      .filter((c) => JSON.stringify(c.oldValue) !== JSON.stringify(c.newValue))
      .map((c) => (SECRET_FIELD.test(c.field) ? { ...c, oldValue: c.oldValue === null ? null : REDACTED, newValue: c.newValue === null ? null : REDACTED } : c));
    if (op === 'update' && changes.length === 0) return null;
    boundChanges(changes, this.#i.maxDocumentBytes);
    const event: IdentityChangeEvent = {
      eventType: 'identity_change',
      collection: this.#i.collection,
      op,
      tenantId: String(doc.tenantId),
      key: Object.fromEntries(unique.keys.map(([f]) => [f, valueAt(doc, f) as string | number])),
      changes,
    };
    this.#i.audit.validate(event, options);
    return event;
  }

  async #writeEvent(event: IdentityChangeEvent | null, options: IdentityChangeOptions): Promise<void> {
    if (event) await this.#i.audit.write(event, options);
  }
}

/** JSON form of a value for an audit event (dates become ISO strings); `null` for absent. */
/** Room left in an audit event for its envelope (type, collection, op, tenant, key) and field names. */
const EVENT_ENVELOPE_BYTES = 2048;

/**
 * Keeps an audit event within the record size limit, whatever the identity's size: the largest
 * old and new values are replaced, one by one, by `{ truncated, bytes, sha256 }` until the
 * changes fit. A change too large to record in full is still recorded, never refused.
 */
function boundChanges(changes: Array<{ field: string; oldValue: unknown; newValue: unknown }>, maxBytes: number): void {
  const budget = Math.max(0, maxBytes - EVENT_ENVELOPE_BYTES);
  const size = (v: unknown) => Buffer.byteLength(JSON.stringify(v) ?? 'null', 'utf8');
  let total = size(changes);
  if (total <= budget) return;
  const slots = changes.flatMap((c) => (['oldValue', 'newValue'] as const).map((side) => ({ c, side, bytes: size(c[side]) }))).sort((a, b) => b.bytes - a.bytes);
  for (const slot of slots) {
    if (total <= budget) return;
    const text = JSON.stringify(slot.c[slot.side]) ?? 'null';
    const marker = { truncated: true, bytes: slot.bytes, sha256: sha256Hex(text) };
    total += size(marker) - slot.bytes;
    slot.c[slot.side] = marker;
  }
}

/** The options of an audited write: who and why, nothing else. */
function checkChangeOptions(options: unknown, method: string): void {
  checkOptions(options, ['actor', 'reason'], 'options', method);
}

function plain(value: DocValue | undefined): unknown {
  return value === undefined ? null : (JSON.parse(JSON.stringify(value)) as unknown);
}

function normaliseEmail(doc: Doc): Doc {
  return typeof doc.email === 'string' ? { ...doc, email: doc.email.trim().toLowerCase() } : doc;
}

/** Lower-cases the email strings of a filter (`email: "x"`, `$eq`, `$ne`, `$in`, `$nin`, inside `$and`/`$or`). */
function normaliseEmailFilter(filter: unknown): unknown {
  if (!isPlainObject(filter)) return filter;
  const lower = (v: unknown) => (typeof v === 'string' ? v.trim().toLowerCase() : v);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(filter)) {
    if ((key === '$and' || key === '$or') && Array.isArray(value)) out[key] = value.map(normaliseEmailFilter);
    else if (key !== 'email') out[key] = value;
    else if (isPlainObject(value)) {
      out[key] = Object.fromEntries(Object.entries(value).map(([op, v]) => [op, Array.isArray(v) ? v.map(lower) : lower(v)]));
    } else out[key] = lower(value);
  }
  return out;
}
