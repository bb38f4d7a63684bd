import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { DATE_KEY, DOCUMENT_DATABASE_TYPES, IdentitiesCollection, parseInstant, toDocumentJson, ValidationError, type DocumentCollection, type DocumentDatabaseType, type DocValue, type Tier, type Xronox } from '../../../core/index.js';
import { requireRole } from '../access.js';
import type { AppEnv } from '../env.js';
import { booleanQuery, collectionParam, domainParam, filterQuery, reasonHeader, tenantIdParam } from '../schemas.js';
import { BEARER, jsonBody, noQuery, problems, TAGS, who } from './common.js';

/**
 * The messaging and identities collections over HTTP, in the resource style of the record routes:
 *
 *   POST   <base>/{messaging|identities}/{collection}                 insert          201 { inserted: true }
 *   PUT    <base>/{messaging|identities}/{collection}   { filter, doc } upsert          201/200 { created }
 *   GET    <base>/{messaging|identities}/{collection}?filter=&sort=&limit=   find     200 { items }
 *   DELETE <base>/{messaging|identities}/{collection}?filter=&many=   deleteOne/Many  200 { deleted }
 *
 * Dates travel as MongoDB Extended JSON, `{ "$date": "2026-01-01T00:00:00.000Z" }`, in bodies,
 * filters and responses. Registered before the record routes, whose `{databaseType}` does not
 * admit these types. Same auth, roles and problem responses as every `/v1` route.
 */
const DOCUMENT_PATHS = {
  tenant: (type: DocumentDatabaseType) => `/v1/tenants/{tenantId}/${type}/{collection}`,
  domain: (type: DocumentDatabaseType) => `/v1/domains/{domain}/${type}/{collection}`,
  generic: (type: DocumentDatabaseType) => `/v1/generic/${type}/{collection}`,
} as const satisfies Record<Tier, (type: DocumentDatabaseType) => string>;

const documentSchema = z
  .custom<Record<string, unknown>>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), { message: 'must be a JSON object' })
  .openapi('Document', {
    type: 'object',
    additionalProperties: true,
    description: 'A JSON object; dates as {"$date":"<ISO-8601>"}. Keys may not start with "$" (but for $date) or hold "."; _id is refused.',
    example: { key: 'user-config', namespace: 'app', tenantId: 'acme', val: { theme: 'dark' }, _system: { createdAt: { $date: '2026-01-01T00:00:00.000Z' }, updatedAt: { $date: '2026-01-01T00:00:00.000Z' } } },
  });
const upsertBody = z.strictObject({ filter: documentSchema, doc: documentSchema }).openapi('Upsert');
const sortQuery = z
  .string()
  .max(512)
  .transform((text, ctx): Record<string, unknown> => {
    try {
      const value: unknown = JSON.parse(text);
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
    } catch {
      // reported below
    }
    ctx.addIssue({ code: 'custom', message: 'must be a JSON object, e.g. {"firstSeenAt":-1}' });
    return z.NEVER;
  })
  .openapi({ type: 'string', example: '{"firstSeenAt":-1}', description: 'Fields and directions (1 or -1); ties in insertion order' });
const docLimitQuery = z
  .string()
  .regex(/^[1-9][0-9]{0,4}$/, { message: 'must be a whole number from 1 to 10000' })
  .transform(Number)
  .refine((n) => n <= 10_000, { message: 'must be at most 10000' })
  .openapi({ type: 'integer', minimum: 1, maximum: 10_000, example: 100, description: 'At most this many documents, 1 to 10000 (default 1000)' });

function paramsOf(tier: Tier) {
  const shape = { collection: collectionParam };
  const scoped = tier === 'tenant' ? { tenantId: tenantIdParam, ...shape } : tier === 'domain' ? { domain: domainParam, ...shape } : shape;
  // As for the record routes, the tenant or domain comes from the authorized scope, never from here.
  return z.object(scoped) as unknown as z.ZodObject<typeof shape>;
}

export function registerDocumentRoutes(app: OpenAPIHono<AppEnv>, tier: Tier, xronox: Xronox): void {
  for (const type of DOCUMENT_DATABASE_TYPES) registerType(app, tier, type, xronox);
}

function registerType(app: OpenAPIHono<AppEnv>, tier: Tier, type: DocumentDatabaseType, xronox: Xronox): void {
  const path = DOCUMENT_PATHS[tier](type);
  const params = paramsOf(tier);
  const tags = [TAGS[tier]];
  const op = (verb: string) => `${tier}${verb}${type === 'messaging' ? 'Messaging' : 'Identities'}`;
  const reasonHeaders = z.object({ 'x-xronox-reason': reasonHeader.optional() });
  const open = (c: Context<AppEnv>, collection: string): DocumentCollection => {
    const scope = c.get('scope');
    return xronox.with({
      databaseType: type,
      tier: scope.tier,
      collection,
      ...(scope.tier === 'tenant' ? { tenantId: scope.tenantId } : scope.tier === 'domain' ? { domain: scope.domain } : {}),
    }) as DocumentCollection;
  };

  app.openapi(
    createRoute({
      method: 'post', path, operationId: op('Insert'), summary: `Insert a ${type} document`, tags, security: BEARER,
      middleware: [requireRole('write'), jsonBody] as const,
      request: { params, query: noQuery, headers: reasonHeaders, body: { required: true, content: { 'application/json': { schema: documentSchema } } } },
      responses: { 201: { description: 'Inserted', content: { 'application/json': { schema: z.object({ inserted: z.literal(true) }) } } }, ...problems(400, 404, 409, 413, 415) },
    }),
    async (c) => {
      const collection = open(c, c.req.valid('param').collection);
      const doc = fromWire(c.req.valid('json'), 'body');
      if (collection instanceof IdentitiesCollection) await collection.insert(doc, who(c, c.req.valid('header')['x-xronox-reason']));
      else await collection.insert(doc);
      return c.json({ inserted: true as const }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'put', path, operationId: op('Upsert'), summary: `Replace the ${type} document a unique key names, or insert it`, tags, security: BEARER,
      middleware: [requireRole('write'), jsonBody] as const,
      request: { params, query: noQuery, headers: reasonHeaders, body: { required: true, content: { 'application/json': { schema: upsertBody } } } },
      responses: {
        200: { description: 'Replaced', content: { 'application/json': { schema: z.object({ created: z.boolean() }) } } },
        201: { description: 'Inserted', content: { 'application/json': { schema: z.object({ created: z.boolean() }) } } },
        ...problems(400, 404, 409, 413, 415),
      },
    }),
    async (c) => {
      const collection = open(c, c.req.valid('param').collection);
      const body = c.req.valid('json');
      const filter = fromWire(body.filter, 'body.filter');
      const doc = fromWire(body.doc, 'body.doc');
      const result =
        collection instanceof IdentitiesCollection
          ? await collection.upsert(filter, doc, who(c, c.req.valid('header')['x-xronox-reason']))
          : await collection.upsert(filter, doc);
      return result.created ? c.json(result, 201) : c.json(result, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path, operationId: op('Find'), summary: `Find ${type} documents`, tags, security: BEARER,
      middleware: [requireRole('read')] as const,
      request: { params, query: z.strictObject({ filter: filterQuery.optional(), sort: sortQuery.optional(), limit: docLimitQuery.optional() }) },
      responses: { 200: { description: 'The matching documents', content: { 'application/json': { schema: z.object({ items: z.array(documentSchema) }) } } }, ...problems(400, 404) },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const items = await open(c, c.req.valid('param').collection).find(q.filter ? fromWire(q.filter, 'query.filter') : {}, {
        ...(q.sort ? { sort: q.sort as Record<string, 1 | -1> } : {}),
        ...(q.limit !== undefined ? { limit: q.limit } : {}),
      });
      return c.json({ items: toWire(items) as Array<Record<string, unknown>> }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete', path, operationId: op('Delete'), summary: `Delete one ${type} document matching a filter, or every one with many=true`, tags, security: BEARER,
      middleware: [requireRole('write')] as const,
      request: { params, query: z.strictObject({ filter: filterQuery, many: booleanQuery.optional() }), headers: reasonHeaders },
      responses: { 200: { description: 'How many were deleted', content: { 'application/json': { schema: z.object({ deleted: z.number().int() }) } } }, ...problems(400, 404) },
    }),
    async (c) => {
      const collection = open(c, c.req.valid('param').collection);
      const q = c.req.valid('query');
      const filter = fromWire(q.filter, 'query.filter');
      const options = who(c, c.req.valid('header')['x-xronox-reason']);
      let deleted: number;
      if (collection instanceof IdentitiesCollection) deleted = q.many ? await collection.deleteMany(filter, options) : await collection.deleteOne(filter, options);
      else deleted = q.many ? await collection.deleteMany(filter) : await collection.deleteOne(filter);
      return c.json({ deleted }, 200);
    },
  );
}

/** Extended JSON in: `{ "$date": "<ISO>" }` becomes a `Date`; anything else is left for the engine to check. */
export function fromWire(value: unknown, path: string): Record<string, unknown> {
  const revive = (v: unknown, at: string, depth: number): unknown => {
    if (depth > 64) throw new ValidationError('The body is nested too deeply', { path: at });
    if (Array.isArray(v)) return v.map((item, i) => revive(item, `${at}[${i}]`, depth + 1));
    if (typeof v !== 'object' || v === null) return v;
    const entries = Object.entries(v);
    if (entries.length === 1 && entries[0]![0] === DATE_KEY) {
      const iso = entries[0]![1];
      const invalid = () => new ValidationError('$date takes an ISO-8601 time such as 2026-01-01T00:00:00.000Z', { path: `${at}.$date` });
      if (typeof iso !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:\d{2})$/.test(iso)) throw invalid();
      // The engine's parser refuses impossible dates (2024-02-31) that `new Date` would roll over.
      try {
        parseInstant(iso, `${at}.$date`);
      } catch {
        throw invalid();
      }
      return new Date(iso);
    }
    return Object.fromEntries(entries.map(([k, item]) => [k, revive(item, `${at}.${k}`, depth + 1)]));
  };
  return revive(value, path, 0) as Record<string, unknown>;
}

/** Extended JSON out: dates as `{ "$date": "<ISO>" }`. */
export function toWire(value: DocValue | DocValue[]): unknown {
  return JSON.parse(toDocumentJson(value as DocValue));
}
