import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { NotFoundError, type Tier, type Xronox } from '../../../core/index.js';
import { requireRole } from '../access.js';
import type { AppEnv } from '../env.js';
import { etag } from '../problem.js';
import {
  versionProofSchema,
  booleanQuery,
  deletedSchema,
  functionIdHeader,
  historyPageSchema,
  ifMatchHeader,
  instant,
  limitQuery,
  ovQuery,
  reasonHeader,
  recordData,
  recordRestoreBody,
  recordSchema,
  restoredSchema,
  updatedSchema,
  versionRecordSchema,
} from '../schemas.js';
import { BEARER, COLLECTION_PATHS, etagHeader, jsonBody, noQuery, problems, recordParams, requireIfMatch, routeRequest, TAGS, who } from './common.js';

const writeHeaders = z.object({ 'if-match': ifMatchHeader.optional(), 'x-xronox-reason': reasonHeader.optional() });

/** `GET`, `PUT`, `PATCH`, `DELETE` on a record, its history and its restore, for one tier. */
export function registerRecordRoutes(app: OpenAPIHono<AppEnv>, tier: Tier, xronox: Xronox): void {
  const path = `${COLLECTION_PATHS[tier]}/{id}`;
  const params = recordParams(tier);
  const tags = [TAGS[tier]];
  const write = (method: 'put' | 'patch' | 'delete') => ({ path, tags, security: BEARER, method });

  const read = createRoute({
    method: 'get',
    path,
    operationId: `${tier}GetRecord`,
    summary: 'Read a record: the latest state, one version (?ov) or as of a time (?at)',
    tags,
    security: BEARER,
    middleware: [requireRole('read')] as const,
    request: {
      params,
      query: z
        .strictObject({ ov: ovQuery.optional(), at: instant.optional(), includeDeleted: booleanQuery.optional() })
        .refine((q) => q.ov === undefined || q.at === undefined, { message: 'give ov or at, not both', path: ['at'] }),
    },
    responses: {
      200: {
        description: 'The record (latest, with ETag) or a version of it (with op, at, actor, reason)',
        headers: etagHeader,
        content: { 'application/json': { schema: z.union([versionRecordSchema, recordSchema]) } },
      },
      ...problems(400, 404),
    },
  });
  app.openapi(read, async (c) => {
    const { id, ...p } = c.req.valid('param');
    const q = c.req.valid('query');
    const records = xronox.with(routeRequest(c.get('scope'), p));
    const includeDeleted = q.includeDeleted === true;
    if (q.ov !== undefined) {
      const version = await records.getVersion(id, q.ov);
      if (!version) throw new NotFoundError(`Record ${id} has no version ${q.ov}`);
      return c.json(version, 200);
    }
    if (q.at !== undefined) {
      const then = await records.getAsOf(id, q.at, { includeDeleted });
      if (!then) throw new NotFoundError(`Record ${id} did not exist at ${q.at}${includeDeleted ? '' : ' (or was deleted)'}`);
      return c.json(then, 200);
    }
    const latest = await records.getLatest(id, { includeDeleted });
    if (!latest) throw new NotFoundError(`Record ${id} does not exist`);
    c.header('ETag', etag(latest.ov));
    return c.json(latest, 200);
  });

  const update = createRoute({
    ...write('put'),
    operationId: `${tier}UpdateRecord`,
    summary: "Replace a record's data (If-Match required)",
    middleware: [requireRole('write'), jsonBody] as const,
    request: { params, query: noQuery, headers: writeHeaders, body: { required: true, content: { 'application/json': { schema: recordData } } } },
    responses: {
      200: { description: 'Updated; ETag is the new ov', headers: etagHeader, content: { 'application/json': { schema: updatedSchema } } },
      ...problems(400, 404, 409, 412, 413, 415, 428),
    },
  });
  app.openapi(update, async (c) => {
    const { id, ...p } = c.req.valid('param');
    const h = c.req.valid('header');
    const expectedOv = requireIfMatch(h['if-match']);
    const { actor, reason } = who(c, h['x-xronox-reason']);
    const updated = await xronox.with(routeRequest(c.get('scope'), p)).update(id, c.req.valid('json'), expectedOv, actor, reason);
    c.header('ETag', etag(updated.ov));
    return c.json(updated, 200);
  });

  const enrich = createRoute({
    ...write('patch'),
    operationId: `${tier}EnrichRecord`,
    summary: 'Deep-merge into a record: objects merge, arrays are unioned (If-Match required)',
    middleware: [requireRole('write'), jsonBody] as const,
    request: {
      params,
      query: noQuery,
      headers: writeHeaders.extend({ 'x-xronox-function-id': functionIdHeader.optional() }),
      body: { required: true, content: { 'application/json': { schema: recordData } } },
    },
    responses: {
      200: { description: 'Enriched; ETag is the new ov', headers: etagHeader, content: { 'application/json': { schema: updatedSchema } } },
      ...problems(400, 404, 409, 412, 413, 415, 428),
    },
  });
  app.openapi(enrich, async (c) => {
    const { id, ...p } = c.req.valid('param');
    const h = c.req.valid('header');
    const expectedOv = requireIfMatch(h['if-match']);
    const { actor, reason } = who(c, h['x-xronox-reason']);
    const functionId = h['x-xronox-function-id'];
    const enriched = await xronox
      .with(routeRequest(c.get('scope'), p))
      .enrich(id, c.req.valid('json'), { expectedOv, actor, ...(reason ? { reason } : {}), ...(functionId ? { functionId } : {}) });
    c.header('ETag', etag(enriched.ov));
    return c.json(enriched, 200);
  });

  const remove = createRoute({
    ...write('delete'),
    operationId: `${tier}DeleteRecord`,
    summary: 'Delete a record (If-Match required); logical unless logicalDelete is off',
    middleware: [requireRole('write')] as const,
    request: { params, query: noQuery, headers: writeHeaders },
    responses: {
      200: { description: 'Deleted', content: { 'application/json': { schema: deletedSchema } } },
      ...problems(400, 404, 412, 428),
    },
  });
  app.openapi(remove, async (c) => {
    const { id, ...p } = c.req.valid('param');
    const h = c.req.valid('header');
    const expectedOv = requireIfMatch(h['if-match']);
    const { actor, reason } = who(c, h['x-xronox-reason']);
    return c.json(await xronox.with(routeRequest(c.get('scope'), p)).delete(id, expectedOv, actor, reason), 200);
  });

  const versions = createRoute({
    method: 'get',
    path: `${path}/versions`,
    operationId: `${tier}ListVersions`,
    summary: "A record's versions, newest first, without payloads (versioned types)",
    tags,
    security: BEARER,
    middleware: [requireRole('read')] as const,
    request: { params, query: z.strictObject({ limit: limitQuery.optional(), before: ovQuery.optional() }) },
    responses: {
      200: { description: 'One page of history; pass nextBefore as before for older versions', content: { 'application/json': { schema: historyPageSchema } } },
      ...problems(400, 404),
    },
  });
  app.openapi(versions, async (c) => {
    const { id, ...p } = c.req.valid('param');
    const q = c.req.valid('query');
    const page = await xronox.with(routeRequest(c.get('scope'), p)).history(id, {
      ...(q.limit !== undefined ? { limit: q.limit } : {}),
      ...(q.before !== undefined ? { before: q.before } : {}),
    });
    // Every record has a version 0, so an empty first page means there is no such record.
    if (page.items.length === 0 && q.before === undefined) throw new NotFoundError(`Record ${id} does not exist`);
    return c.json(page, 200);
  });

  const proof = createRoute({
    method: 'get',
    path: `${path}/versions/{ov}/proof`,
    operationId: `${tier}GetVersionProof`,
    summary: 'A proof that a version is in the history the latest signed digest commits to (versioned types)',
    description: 'The version, the hash chain from it to the record head as of the digest, and the Merkle path to the signed root; checkable offline (docs/verifiable-history.md). 404 when no digest exists yet; 409 when the version is newer than the latest digest.',
    tags,
    security: BEARER,
    middleware: [requireRole('read')] as const,
    request: { params: params.extend({ ov: ovQuery }), query: noQuery },
    responses: {
      200: { description: 'The proof', content: { 'application/json': { schema: versionProofSchema } } },
      ...problems(400, 404, 409),
    },
  });
  app.openapi(proof, async (c) => {
    const { id, ov, ...p } = c.req.valid('param');
    return c.json(await xronox.with(routeRequest(c.get('scope'), p)).proof(id, ov), 200);
  });

  const restore = createRoute({
    method: 'post',
    path: `${path}/restore`,
    operationId: `${tier}RestoreRecord`,
    summary: 'Restore a record to a version or a time, as a new version (If-Match optional)',
    tags,
    security: BEARER,
    middleware: [requireRole('write'), jsonBody] as const,
    request: { params, query: noQuery, headers: writeHeaders, body: { required: true, content: { 'application/json': { schema: recordRestoreBody } } } },
    responses: {
      200: { description: 'Restored; ETag is the new ov', headers: etagHeader, content: { 'application/json': { schema: restoredSchema } } },
      ...problems(400, 404, 409, 412, 413, 415),
    },
  });
  app.openapi(restore, async (c) => {
    const { id, ...p } = c.req.valid('param');
    const h = c.req.valid('header');
    const expectedOv = h['if-match'];
    const { actor, reason } = who(c, h['x-xronox-reason']);
    const restored = await xronox
      .with(routeRequest(c.get('scope'), p))
      .restoreObject(id, c.req.valid('json'), { actor, ...(reason ? { reason } : {}), ...(expectedOv !== undefined ? { expectedOv } : {}) });
    c.header('ETag', etag(restored.ov));
    return c.json(restored, 200);
  });
}
