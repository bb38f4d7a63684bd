import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { Tier, Xronox } from '../../../core/index.js';
import { requireRole } from '../access.js';
import type { AppEnv } from '../env.js';
import { etag } from '../problem.js';
import {
  booleanQuery,
  collectionRestoreBody,
  collectionRestoreReportSchema,
  collectionVerificationSchema,
  createdManySchema,
  createdSchema,
  createManyBody,
  filterQuery,
  idParam,
  limitQuery,
  reasonHeader,
  recordData,
  recordPageSchema,
} from '../schemas.js';
import { BEARER, COLLECTION_PATHS, collectionParams, jsonBody, noQuery, problems, recordPath, routeRequest, TAGS, who } from './common.js';

/** `POST` (create), `GET` (list), `POST /restore` and `POST /verify` on a collection of one tier. */
export function registerCollectionRoutes(app: OpenAPIHono<AppEnv>, tier: Tier, xronox: Xronox): void {
  const path = COLLECTION_PATHS[tier];
  const params = collectionParams(tier);
  const tags = [TAGS[tier]];

  const create = createRoute({
    method: 'post',
    path,
    operationId: `${tier}CreateRecord`,
    summary: 'Create a record (ov 0)',
    tags,
    security: BEARER,
    middleware: [requireRole('write'), jsonBody] as const,
    request: {
      params,
      query: noQuery,
      headers: z.object({ 'x-xronox-reason': reasonHeader.optional() }),
      body: { required: true, content: { 'application/json': { schema: recordData } } },
    },
    responses: {
      201: {
        description: 'Created; Location names the record and ETag its ov',
        headers: z.object({ Location: z.string(), ETag: z.string() }),
        content: { 'application/json': { schema: createdSchema } },
      },
      ...problems(400, 404, 409, 413, 415),
    },
  });
  app.openapi(create, async (c) => {
    const p = c.req.valid('param');
    const { actor, reason } = who(c, c.req.valid('header')['x-xronox-reason']);
    const created = await xronox.with(routeRequest(c.get('scope'), p)).create(c.req.valid('json'), actor, reason);
    c.header('Location', recordPath(c.get('scope'), p, created.id));
    c.header('ETag', etag(created.ov));
    return c.json(created, 201);
  });

  const createMany = createRoute({
    method: 'post',
    path: `${path}/batch`,
    operationId: `${tier}CreateRecords`,
    summary: 'Create many records in one commit (all or none)',
    tags,
    security: BEARER,
    middleware: [requireRole('write'), jsonBody] as const,
    request: {
      params,
      query: noQuery,
      headers: z.object({ 'x-xronox-reason': reasonHeader.optional() }),
      body: { required: true, content: { 'application/json': { schema: createManyBody } } },
    },
    responses: {
      201: { description: 'Every record created, in the order given', content: { 'application/json': { schema: createdManySchema } } },
      ...problems(400, 404, 413, 415),
    },
  });
  app.openapi(createMany, async (c) => {
    const { actor, reason } = who(c, c.req.valid('header')['x-xronox-reason']);
    const created = await xronox.with(routeRequest(c.get('scope'), c.req.valid('param'))).createMany(c.req.valid('json').items, actor, reason);
    return c.json({ items: created }, 201);
  });

  const list = createRoute({
    method: 'get',
    path,
    operationId: `${tier}ListRecords`,
    summary: 'List records by indexed properties',
    description: 'Pages are ordered by id; pass `nextAfter` as `after` for the next page.',
    tags,
    security: BEARER,
    middleware: [requireRole('read')] as const,
    request: {
      params,
      query: z.strictObject({ filter: filterQuery.optional(), limit: limitQuery.optional(), after: idParam.optional(), includeDeleted: booleanQuery.optional() }),
    },
    responses: {
      200: { description: 'One page of records', content: { 'application/json': { schema: recordPageSchema } } },
      ...problems(400, 404),
    },
  });
  app.openapi(list, async (c) => {
    const q = c.req.valid('query');
    const page = await xronox.with(routeRequest(c.get('scope'), c.req.valid('param'))).listByMeta({
      ...(q.filter !== undefined ? { filter: q.filter } : {}),
      ...(q.limit !== undefined ? { limit: q.limit } : {}),
      ...(q.after !== undefined ? { afterId: q.after } : {}),
      includeDeleted: q.includeDeleted === true,
    });
    return c.json({ items: page.items, nextAfter: page.nextAfterId }, 200);
  });

  const restore = createRoute({
    method: 'post',
    path: `${path}/restore`,
    operationId: `${tier}RestoreCollection`,
    summary: 'Restore the whole collection to a collection version or a time (admin)',
    description: 'Every record is brought to its state at the target as a new version; records created later are deleted, records deleted since are revived. Versioned types only.',
    tags,
    security: BEARER,
    middleware: [requireRole('admin'), jsonBody] as const,
    request: {
      params,
      query: noQuery,
      headers: z.object({ 'x-xronox-reason': reasonHeader.optional() }),
      body: { required: true, content: { 'application/json': { schema: collectionRestoreBody } } },
    },
    responses: {
      200: { description: 'What was (or, with dryRun, would be) changed', content: { 'application/json': { schema: collectionRestoreReportSchema } } },
      ...problems(400, 404, 409, 413, 415),
    },
  });
  app.openapi(restore, async (c) => {
    const { dryRun, ...target } = c.req.valid('json');
    const { actor, reason } = who(c, c.req.valid('header')['x-xronox-reason']);
    const report = await xronox.with(routeRequest(c.get('scope'), c.req.valid('param'))).restoreCollection(target, { dryRun: dryRun === true, actor, ...(reason ? { reason } : {}) });
    return c.json(report, 200);
  });

  const verify = createRoute({
    method: 'post',
    path: `${path}/verify`,
    operationId: `${tier}VerifyCollection`,
    summary: 'Verify the collection: every hash chain, and the latest signed digest (admin)',
    description:
      "Recomputes every version's hash chain, checks every stored column, head and current.json against it and, when a digest key is configured, the store against the latest signed digest. Versioned types only. Reads every version: run it on demand, not per request.",
    tags,
    security: BEARER,
    middleware: [requireRole('admin')] as const,
    request: { params, query: noQuery },
    responses: {
      200: { description: 'The verification report (ok false on any finding)', content: { 'application/json': { schema: collectionVerificationSchema } } },
      ...problems(400, 404),
    },
  });
  app.openapi(verify, async (c) => {
    const report = await xronox.with(routeRequest(c.get('scope'), c.req.valid('param'))).verifyCollection();
    return c.json(report, 200);
  });
}
