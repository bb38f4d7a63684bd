import { randomUUID, sha256Hex } from '../../foundation/digest.js';
import { z } from 'zod';
import type { BlobStore } from '../../contracts/blob-store.js';
import { type CollectionSpec, type Doc, type DocValue, fromDocumentJson, toDocumentJson } from '../../contracts/document-store.js';
import { StorageError, ValidationError } from '../../errors.js';
import type { BlobLocation } from '../../routing/router.js';
import { DocumentCollection, type DocumentCollectionContext, type StagedDocument } from '../documents/document-collection.js';
import { isStorableDate } from '../documents/document-filter.js';
import { checkWith, keySegment } from '../documents/zod-check.js';

/**
 * The messaging database type: the durable tier under a Redis-based messaging layer (Chronow).
 * Exactly these collections, with exactly the indexes the messaging requirements document lists
 * (`deliveries` only with `captureDeliveries`).
 */
export const MESSAGING_COLLECTIONS = ['shared_memory', 'topics', 'messages', 'dead_letters', 'deliveries'] as const;
export type MessagingCollectionName = (typeof MESSAGING_COLLECTIONS)[number];

export const MESSAGING_SPECS: Readonly<Record<MessagingCollectionName, CollectionSpec>> = {
  shared_memory: {
    fields: ['key', 'namespace', 'tenantId', '_system.createdAt', '_system.updatedAt', '_system.retentionDays', '_system.tombstone', '_system.deletedAt'],
    indexes: [
      { name: 'key_1_namespace_1_tenantId_1', keys: [['key', 1], ['namespace', 1], ['tenantId', 1]], unique: true },
      { name: '_system.updatedAt_-1', keys: [['_system.updatedAt', -1]] },
      { name: '_system.deletedAt_1', keys: [['_system.deletedAt', 1]], sparse: true },
    ],
  },
  topics: {
    fields: ['topic', 'tenantId', 'shards', 'createdAt', '_system.updatedAt'],
    indexes: [{ name: 'topic_1_tenantId_1', keys: [['topic', 1], ['tenantId', 1]], unique: true }],
  },
  messages: {
    fields: ['topic', 'msgId', 'tenantId', 'firstSeenAt', 'size', '_system.createdAt'],
    indexes: [
      { name: 'topic_1_msgId_1_tenantId_1', keys: [['topic', 1], ['msgId', 1], ['tenantId', 1]], unique: true },
      { name: 'firstSeenAt_-1', keys: [['firstSeenAt', -1]] },
      { name: 'topic_1_firstSeenAt_-1', keys: [['topic', 1], ['firstSeenAt', -1]] },
    ],
  },
  dead_letters: {
    fields: ['topic', 'msgId', 'tenantId', 'reason', 'failedAt', 'deliveries', '_system.createdAt'],
    indexes: [
      { name: 'topic_1_failedAt_-1', keys: [['topic', 1], ['failedAt', -1]] },
      { name: 'failedAt_-1', keys: [['failedAt', -1]] },
    ],
  },
  // Not in the requirements document beyond its name: one document per delivery attempt.
  deliveries: {
    fields: ['topic', 'msgId', 'tenantId', 'consumer', 'attempt', 'deliveredAt', 'status', '_system.createdAt'],
    indexes: [
      { name: 'topic_1_msgId_1_tenantId_1_attempt_1', keys: [['topic', 1], ['msgId', 1], ['tenantId', 1], ['attempt', 1]] },
      { name: 'deliveredAt_-1', keys: [['deliveredAt', -1]] },
    ],
  },
};

const name = z.string().min(1).max(512);
const headers = z.record(z.string(), z.string());
const systemOf = <T extends z.ZodRawShape>(shape: T) => z.looseObject(shape);

/** The documented shapes; extra fields are kept as written. */
const SCHEMAS: Readonly<Record<MessagingCollectionName, z.ZodType>> = {
  shared_memory: z.looseObject({
    key: name,
    namespace: z.string().max(512),
    tenantId: name,
    val: z.unknown(),
    _system: systemOf({
      createdAt: z.date(),
      updatedAt: z.date(),
      retentionDays: z.number().positive().optional(),
      tombstone: z.boolean().optional(),
      deletedAt: z.date().optional(),
    }),
  }),
  topics: z.looseObject({ topic: name, tenantId: name, shards: z.number().int().positive(), createdAt: z.date(), _system: systemOf({ updatedAt: z.date() }) }),
  messages: z.looseObject({
    topic: name,
    msgId: name,
    tenantId: name,
    headers,
    payload: z.unknown(),
    firstSeenAt: z.date(),
    size: z.number().int().nonnegative(),
    _system: systemOf({ createdAt: z.date() }),
  }),
  dead_letters: z.looseObject({
    topic: name,
    msgId: name,
    tenantId: name,
    reason: z.string().max(10_000),
    headers,
    payload: z.unknown(),
    failedAt: z.date(),
    deliveries: z.number().int().nonnegative(),
    _system: systemOf({ createdAt: z.date() }),
  }),
  deliveries: z.looseObject({
    topic: name,
    msgId: name,
    tenantId: name,
    consumer: name,
    attempt: z.number().int().positive(),
    deliveredAt: z.date(),
    status: z.string().max(256).optional(),
    _system: systemOf({ createdAt: z.date() }),
  }),
};

/** The property each collection must hold even when null (zod's `unknown` would accept its absence). */
const REQUIRED_VALUE: Partial<Record<MessagingCollectionName, string>> = { shared_memory: 'val', messages: 'payload', dead_letters: 'payload' };
/** Collections whose large payloads go to the content bucket. */
const OFFLOADED = new Set<MessagingCollectionName>(['messages', 'dead_letters']);
const DAY_MS = 86_400_000;

/** Payloads larger than this (as document JSON) go to the content bucket. Default 64 KiB. */
export const DEFAULT_PAYLOAD_OFFLOAD_BYTES = 64 * 1024;

export interface MessagingSettings {
  /** Payloads of `messages` and `dead_letters` above this many bytes go to the content bucket. */
  payloadOffloadBytes?: number;
  /** `shared_memory` entries without their own `_system.retentionDays` expire this many days after `_system.updatedAt` (`jobs.retention.sharedMemoryDays`). */
  sharedMemoryDays?: number;
  /** Other collections: documents expire this many days after `_system.createdAt`. */
  ttlDays?: Partial<Record<Exclude<MessagingCollectionName, 'shared_memory'>, number>>;
}

export interface MessagingContext extends Omit<DocumentCollectionContext, 'spec' | 'validate' | 'expiresAt'> {
  readonly collection: MessagingCollectionName;
  /** Where large payloads go (the store opened on first use); `undefined` when the database has no content location (then nothing is offloaded). */
  readonly content: { readonly blob: () => BlobStore; readonly location: BlobLocation } | undefined;
  readonly settings: MessagingSettings;
}

/** The name as a messaging collection, or a `ValidationError` naming the ones there are. */
export function messagingCollectionName(collection: string, captureDeliveries: boolean): MessagingCollectionName {
  const allowed = MESSAGING_COLLECTIONS.filter((c) => c !== 'deliveries' || captureDeliveries);
  if ((allowed as readonly string[]).includes(collection)) return collection as MessagingCollectionName;
  const hint = collection === 'deliveries' ? ' (deliveries are kept only when the database sets captureDeliveries)' : '';
  throw new ValidationError(`A messaging database holds the collections ${allowed.join(', ')}; got "${collection}"${hint}`, { path: 'collection' });
}

/**
 * A messaging collection: `insert`, `upsert`, `findOne`, `find`, `deleteOne`, `deleteMany`, as the
 * requirements document's `MessagingCollection`. Documents are checked against their documented
 * shape; on a tenant database they must name its tenant, and every filter is pinned to it.
 * Payloads of `messages` and `dead_letters` above `payloadOffloadBytes` are stored in the content
 * bucket (`content/{collection}/{topic}/{msgId}/{uuid}.json`) and brought back on reads,
 * checked against their SHA-256. Expired documents (`retentionDays`, `ttlDays`) are never returned
 * and are removed by `deleteExpired` (and on MongoDB by its TTL monitor as well).
 */
export class MessagingCollection extends DocumentCollection {
  readonly #m: MessagingContext;

  constructor(ctx: MessagingContext) {
    const collection = ctx.collection;
    super({
      ...ctx,
      spec: MESSAGING_SPECS[collection],
      validate: (doc) => validateMessagingDoc(collection, doc),
      expiresAt: (doc) => messagingExpiry(collection, doc, ctx.settings),
    });
    this.#m = ctx;
  }

  /** A payload above `payloadOffloadBytes` is staged for the content bucket; the stored document keeps its reference. */
  protected override stage(doc: Doc): StagedDocument {
    const content = this.#m.content;
    if (!OFFLOADED.has(this.#m.collection) || !content) return { doc };
    const bytes = Buffer.from(toDocumentJson(doc.payload ?? null), 'utf8');
    if (bytes.byteLength <= (this.#m.settings.payloadOffloadBytes ?? DEFAULT_PAYLOAD_OFFLOAD_BYTES)) return { doc };
    const { bucket, prefix } = content.location;
    // A fresh key per write: the object belongs to this write alone, so removing it on failure is safe.
    const key = `${prefix}/${this.#m.collection}/${keySegment(String(doc.topic))}/${keySegment(String(doc.msgId))}/${randomUUID()}.json`;
    const sha256 = sha256Hex(bytes);
    const system = (doc._system ?? {}) as Record<string, DocValue>;
    return {
      doc: { ...doc, payload: null, _system: { ...system, payloadRef: { key, size: bytes.byteLength, sha256 } } },
      put: () => content.blob().put(bucket, key, bytes, { contentType: 'application/json' }),
      discard: () => content.blob().delete(bucket, key),
    };
  }

  protected override async read(doc: Doc): Promise<Doc> {
    const system = doc._system as Record<string, DocValue> | undefined;
    // Only offloaded collections hold references, written by `write` alone (`validateMessagingDoc`
    // refuses a caller's own there); elsewhere `_system.payloadRef` is plain data, never followed.
    if (!OFFLOADED.has(this.#m.collection)) return doc;
    const ref = system?.payloadRef as { key?: unknown; sha256?: unknown } | undefined;
    if (!ref || typeof ref.key !== 'string' || typeof ref.sha256 !== 'string') return doc;
    const content = this.#m.content;
    if (!content) throw new StorageError('messaging', 'read', null, `The payload of ${this.name} document ${String(doc.msgId)} is in the content bucket, which this database no longer configures`);
    if (!ref.key.startsWith(`${content.location.prefix}/${this.#m.collection}/`) || ref.key.split('/').some((s) => s === '..' || s === '.' || s === '')) {
      throw new StorageError('messaging', 'read', null, `The payload reference of ${this.name} document ${String(doc.msgId)} points outside this collection's content: ${ref.key.slice(0, 200)}`);
    }
    const bytes = await content.blob().get(content.location.bucket, ref.key);
    if (!bytes || sha256Hex(bytes) !== ref.sha256) {
      throw new StorageError('messaging', 'read', null, `The payload object of ${this.name} document ${String(doc.msgId)} is ${bytes ? 'not what was stored (SHA-256 differs)' : 'missing'}: ${ref.key}`);
    }
    const { payloadRef: _ref, ...rest } = system!;
    void _ref;
    const payload = fromDocumentJson(`{"v":${Buffer.from(bytes).toString('utf8')}}`).v as DocValue;
    return { ...doc, payload, _system: rest };
  }
}

/**
 * Checks a document as the store holds it (restores): what a write checks, except that offloaded
 * collections may carry the `_system.payloadRef` that `write` put there, well formed.
 */
export function checkStoredMessagingDoc(collection: MessagingCollectionName, doc: Doc): void {
  const system = doc._system;
  if (!OFFLOADED.has(collection) || system === null || typeof system !== 'object' || Array.isArray(system) || system instanceof Date || !Object.hasOwn(system, 'payloadRef')) {
    validateMessagingDoc(collection, doc);
    return;
  }
  const { payloadRef: ref, ...rest } = system as Record<string, DocValue>;
  const r = ref as Record<string, unknown> | null;
  if (r === null || typeof r !== 'object' || typeof r.key !== 'string' || typeof r.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(r.sha256) || !Number.isSafeInteger(r.size)) {
    throw new ValidationError('_system.payloadRef must be { key, size, sha256 }', { path: 'doc._system.payloadRef' });
  }
  validateMessagingDoc(collection, { ...doc, _system: rest });
}

function validateMessagingDoc(collection: MessagingCollectionName, doc: Doc): Doc {
  checkWith(SCHEMAS[collection], doc, collection);
  const required = REQUIRED_VALUE[collection];
  if (required && !Object.hasOwn(doc, required)) throw new ValidationError(`Invalid ${collection} document: ${required} is required (it may be null)`, { path: `doc.${required}` });
  if (OFFLOADED.has(collection) && Object.hasOwn((doc._system ?? {}) as object, 'payloadRef')) {
    throw new ValidationError('_system.payloadRef is kept by Xronox (large payloads); documents may not set it', { path: 'doc._system.payloadRef' });
  }
  return doc;
}

/**
 * When a messaging document expires: `shared_memory` at `_system.updatedAt` plus its own
 * `retentionDays` (else `sharedMemoryDays`); the other collections at `_system.createdAt` plus
 * their `ttlDays`. Computed when written, so a changed setting applies to documents written after it.
 */
export function messagingExpiry(collection: MessagingCollectionName, doc: Doc, settings: MessagingSettings): Date | undefined {
  const system = (doc._system ?? {}) as Record<string, DocValue>;
  if (collection === 'shared_memory') {
    const own = system.retentionDays;
    const days = typeof own === 'number' && own > 0 ? own : settings.sharedMemoryDays;
    return expiryAfter(system.updatedAt, days);
  }
  return expiryAfter(system.createdAt, settings.ttlDays?.[collection]);
}

/**
 * `from` plus `days`; `undefined` (never) when that lies past what a store can hold (years
 * 0000-9999): a retention of millions of days means "keep", and must neither expire the document
 * at once (SQLite orders the ISO text `+010000-…` before any real date) nor fail the write.
 */
function expiryAfter(from: DocValue | undefined, days: number | undefined): Date | undefined {
  if (days === undefined || !(from instanceof Date)) return undefined;
  const at = new Date(from.getTime() + days * DAY_MS);
  return isStorableDate(at) ? at : undefined;
}
