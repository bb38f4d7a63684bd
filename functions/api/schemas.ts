import { z } from '@hono/zod-openapi';
import { ACTOR_TYPES, DATABASE_TYPES, isDocumentDatabaseType, MAX_CREATE_BATCH, NAME_RULES, STORAGE_POLICIES, VERSION_OPS, type DatabaseType, type NameKind, type Tier } from '../../core/index.js';

/**
 * Every path, query, header and body schema of the API, and the response shapes. The same
 * schemas validate requests and generate the OpenAPI document. Names follow the engine's own
 * rules (`core/foundation/names.ts`), so a name refused here would be refused by the engine too.
 * The engine still checks everything again: these schemas turn hostile input into a precise 400
 * early, they are not the only guard.
 */

const named = (kind: NameKind, example: string) =>
  z.string().regex(NAME_RULES[kind].pattern, { message: `must be ${NAME_RULES[kind].describe}` }).openapi({ example });

// ---- path ------------------------------------------------------------------------------------

export const tenantIdParam = named('tenantId', 'demo');
export const domainParam = named('domain', 'health');
export const collectionParam = named('collection', 'orders');
export const idParam = named('id', '01890f5e-8b3c-7d2a-9f4e-123456789abc');

/**
 * The record database types a tier serves (runtime lives only at the tenant tier). Messaging and
 * identities hold documents and have their own routes (`routes/document-routes.ts`).
 */
export function databaseTypesAt(tier: Tier): DatabaseType[] {
  return DATABASE_TYPES.filter((type) => STORAGE_POLICIES[type].tiers.includes(tier) && !isDocumentDatabaseType(type));
}

export const databaseTypeParam = (tier: Tier) => z.enum(databaseTypesAt(tier) as [DatabaseType, ...DatabaseType[]]).openapi({ example: databaseTypesAt(tier)[0] });

// ---- query -----------------------------------------------------------------------------------

/**
 * Query values arrive as text; whole numbers are parsed strictly (no `1e3`, `0x10`, ` 1`, `-0`).
 * The document describes what the value is, an integer (or a boolean below), not the text that
 * carries it: OpenAPI's query serialisation writes `limit=50` for the number 50, so a generated
 * client takes a number and sends exactly what this parser accepts.
 */
const wholeNumber = (max: number) =>
  z
    .string()
    .regex(/^(0|[1-9][0-9]{0,15})$/, { message: 'must be a whole number of at least 0' })
    .transform(Number)
    .refine((n) => n <= max, { message: `must be at most ${max}` });

export const ovQuery = wholeNumber(Number.MAX_SAFE_INTEGER).openapi({ type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, example: 0, description: 'A version (object version) of the record' });
export const limitQuery = wholeNumber(1000)
  .refine((n) => n >= 1, { message: 'must be at least 1' })
  .openapi({ type: 'integer', minimum: 1, maximum: 1000, example: 50, description: 'Page size, 1 to 1000 (default 50)' });

/** The shape of an ISO-8601 time; the engine checks the calendar (no 2024-02-31). Encode `+` as `%2B` in a query. */
export const instant = z
  .string()
  .max(64)
  .regex(/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/, { message: 'must be an ISO-8601 time such as 2024-01-01T00:00:00Z' })
  .openapi({ example: '2026-01-01T00:00:00Z' });

/** `true` or `false`, as OpenAPI serialises a boolean in a query (no `1`, `yes`, `TRUE`). */
export const booleanQuery = z
  .enum(['true', 'false'])
  .transform((v) => v === 'true')
  .openapi({ type: 'boolean' });

/** Largest `filter` accepted; the engine further bounds its depth and number of conditions. */
const MAX_FILTER_CHARS = 8192;

/** `filter` is JSON in the query string; it must be an object. Which operators and properties it may use is the engine's call. */
export const filterQuery = z
  .string()
  .max(MAX_FILTER_CHARS)
  .transform((text, ctx): Record<string, unknown> => {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      ctx.addIssue({ code: 'custom', message: 'must be a JSON object, e.g. {"status":"paid","total":{"$gt":10}}' });
      return z.NEVER;
    }
    return value as Record<string, unknown>;
  })
  .openapi({
    type: 'string',
    description: 'A JSON filter over indexed properties with $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or',
    example: '{"status":"paid"}',
  });

// ---- headers ---------------------------------------------------------------------------------

/** `If-Match: "<ov>"`: one strong entity tag. `*` and lists are refused: a write must name the version it replaces. */
export const ifMatchHeader = z
  .string()
  .regex(/^"(0|[1-9][0-9]{0,15})"$/, { message: 'must be the record\'s current ov as a strong entity tag, e.g. "3"' })
  .transform((tag) => Number(tag.slice(1, -1)))
  .refine((ov) => Number.isSafeInteger(ov), { message: 'is too large' })
  .openapi({ type: 'string', example: '"0"', description: 'The ov the write expects the record to be at (from ETag)' });

export const reasonHeader = z.string().min(1).max(1024).openapi({ description: 'Why the change is made; stored on the version', example: 'customer request' });
export const functionIdHeader = z.string().min(1).max(256).openapi({ description: 'The function that enriches the record; kept in _system.functionIds', example: 'risk@v2' });

// ---- bodies ----------------------------------------------------------------------------------

/**
 * A record's data: any JSON object, passed on exactly as parsed. Not `z.record`, which rebuilds
 * the object and silently drops a `__proto__` key: the engine must see such keys to refuse them
 * by name (as it refuses `$` keys, depth and size at every level).
 */
export const recordData = z
  .custom<Record<string, unknown>>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), { message: 'must be a JSON object' })
  .openapi('RecordData', {
    type: 'object',
    additionalProperties: true,
    description: 'A JSON object. Keys may not start with "$"; "_system", "__proto__", "constructor" and "prototype" are refused.',
    example: { customer: 'ada', total: 12 },
  });

const ov = z.int().min(0).openapi({ example: 0 });
const cv = z.int().min(0).openapi({ example: 0 });

export const recordRestoreBody = z
  .union([z.strictObject({ ov }), z.strictObject({ at: instant })])
  .openapi('RecordRestoreTarget', { description: 'The version (`ov`) or the time (`at`) whose state to restore' });

export const collectionRestoreBody = z
  .union([z.strictObject({ cv, dryRun: z.boolean().optional() }), z.strictObject({ at: instant, dryRun: z.boolean().optional() })])
  .openapi('CollectionRestoreTarget', { description: 'The collection version (`cv`) or time (`at`) to bring every record back to; `dryRun` only reports' });

// ---- responses -------------------------------------------------------------------------------

const actor = z
  .union([z.string(), z.object({ type: z.enum(ACTOR_TYPES), identifier: z.string(), name: z.string().optional() })])
  .openapi('Actor');

const system = z.object({
  insertedAt: z.string(),
  updatedAt: z.string(),
  deletedAt: z.string().nullable(),
  functionIds: z.array(z.string()),
  parent: z.object({ id: z.string(), collection: z.string(), ov: z.int().optional() }).nullable(),
  origin: z.object({ type: z.string(), id: z.string().optional() }).nullable(),
});

export const recordSchema = z
  .object({
    id: z.string(),
    ov: z.int(),
    cv: z.int(),
    data: recordData,
    createdAt: z.string(),
    updatedAt: z.string(),
    deletedAt: z.string().nullable(),
    deleted: z.boolean(),
    _system: system,
  })
  .openapi('Record');

export const versionRecordSchema = recordSchema
  .extend({ op: z.enum(VERSION_OPS), at: z.string(), actor, reason: z.string().nullable(), functionId: z.string().nullable() })
  .openapi('VersionRecord');

export const createdSchema = z.object({ id: z.string(), ov: z.int(), cv: z.int(), createdAt: z.string() }).openapi('Created');
export const createManyBody = z
  .strictObject({ items: z.array(recordData).min(1).max(MAX_CREATE_BATCH) })
  .openapi('CreateManyBody', { description: `1 to ${MAX_CREATE_BATCH} records, created in one commit: all or none` });
export const createdManySchema = z.object({ items: z.array(createdSchema) }).openapi('CreatedMany');
export const updatedSchema = z.object({ id: z.string(), ov: z.int(), cv: z.int(), updatedAt: z.string() }).openapi('Updated');
export const deletedSchema = z.object({ id: z.string(), ov: z.int(), cv: z.int(), deletedAt: z.string() }).openapi('Deleted');
export const restoredSchema = updatedSchema.extend({ restoredFromOv: z.int() }).openapi('Restored');

export const recordPageSchema = z
  .object({ items: z.array(recordSchema), nextAfter: z.string().nullable().openapi({ description: 'Pass as `after` for the next page; null on the last' }) })
  .openapi('RecordPage');

const historyEntry = z.object({
  ov: z.int(),
  cv: z.int(),
  op: z.enum(VERSION_OPS),
  at: z.string(),
  actor,
  reason: z.string().nullable(),
  deleted: z.boolean(),
  size: z.int(),
  archived: z.boolean(),
});

export const historyPageSchema = z
  .object({ items: z.array(historyEntry), nextBefore: z.int().nullable().openapi({ description: 'Pass as `before` for the next (older) page; null on the last' }) })
  .openapi('HistoryPage');

export const collectionRestoreReportSchema = z
  .object({
    dryRun: z.boolean(),
    target: z.union([z.object({ cv: z.int() }), z.object({ at: z.string() })]),
    restored: z.int(),
    revived: z.int(),
    deleted: z.int(),
    unchanged: z.int(),
    changes: z.array(z.object({ id: z.string(), action: z.enum(['restore', 'revive', 'delete']), fromOv: z.int(), targetOv: z.int().nullable() })),
  })
  .openapi('CollectionRestoreReport');

export const countersSchema = z
  .object({ totals: z.record(z.string(), z.number()).openapi({ example: { created: 3, updated: 1, deleted: 0, restored: 0 } }) })
  .openapi('CounterTotals');

export const problemSchema = z
  .object({
    type: z.literal('about:blank'),
    title: z.string(),
    status: z.int(),
    detail: z.string(),
    code: z.string().openapi({ example: 'VALIDATION_FAILED' }),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    currentOv: z.int().nullable().optional(),
    correlationId: z.string().optional(),
  })
  .openapi('Problem');

// ---- verifiable history --------------------------------------------------------------------

const finding = z.object({ id: z.string(), ov: z.int(), reason: z.string() });

export const collectionVerificationSchema = z
  .object({
    ok: z.boolean().openapi({ description: 'false on any finding, including a store that no longer matches its latest signed digest' }),
    records: z.int(),
    versions: z.int(),
    findings: z.int().openapi({ description: 'Records with a finding (broken lists at most 1,000)' }),
    broken: z.array(finding).openapi({ description: "Each record's first broken link" }),
    digest: z
      .object({ key: z.string(), time: z.string(), cv: z.int(), ok: z.boolean(), reason: z.string().optional() })
      .nullable()
      .openapi({ description: 'The latest signed digest and whether the store matches it; null when there is none' }),
  })
  .openapi('CollectionVerification');

const signedDigest = z
  .object({
    format: z.literal('xronox-digest/1'),
    dbName: z.string(),
    collection: z.string(),
    time: z.string(),
    cv: z.int(),
    records: z.int(),
    root: z.string(),
    algorithm: z.enum(['hmac-sha256', 'ed25519']),
    keyId: z.string(),
    signature: z.string(),
  })
  .openapi('SignedDigest');

const versionFields = z.object({
  id: z.string(),
  ov: z.int(),
  cv: z.int(),
  op: z.string(),
  at: z.string(),
  actor: z.unknown(),
  reason: z.string().nullable(),
  deleted: z.boolean(),
});

export const versionProofSchema = z
  .object({
    format: z.literal('xronox-proof/1'),
    dbName: z.string(),
    collection: z.string(),
    id: z.string(),
    ov: z.int(),
    document: z.record(z.string(), z.unknown()).openapi({ description: 'The version as stored' }),
    previousHash: z.string().nullable(),
    chain: z.array(z.object({ fields: versionFields, hash: z.string(), document: z.record(z.string(), z.unknown()).optional() })).openapi({
      description: "The version and every later one up to the record's chain head as of the digest, oldest first",
    }),
    leaf: z.string(),
    path: z.array(z.object({ side: z.enum(['left', 'right']), hash: z.string() })).openapi({ description: 'Merkle path, leaf upwards, to the digest root' }),
    digest: signedDigest,
    digestKey: z.string(),
    publicKey: z.string().nullable().openapi({ description: 'Ed25519 only; check signatures with the key the operator gave you, not this one' }),
  })
  .openapi('VersionProof');
