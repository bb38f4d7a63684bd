import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { Xronox } from '../../../core/index.js';
import { requireRole } from '../access.js';
import type { AppEnv } from '../env.js';
import { collectionParam, countersSchema, databaseTypeParam, tenantIdParam } from '../schemas.js';
import { BEARER, COLLECTION_PATHS, noQuery, problems } from './common.js';

/**
 * A collection's counter totals, at `GET <collection>/_counters`. The leading `_` keeps it apart
 * from the record routes: no record id starts with one (`NAME_RULES.id`), so `_counters` is never
 * a record's path, and the path has a literal segment where the record paths have `{id}`.
 *
 * The earlier `GET /v1/tenants/{tenantId}/counters/{databaseType}/{collection}` still answers
 * the same, for existing clients, but is left out of the OpenAPI document: beside
 * `<collection>/batch` and `<collection>/restore` it is an ambiguous path (each has a literal
 * where the other has a parameter, so no router can tell by the shape which is meant; only the
 * `{databaseType}` enum, which path linters do not read, keeps them apart).
 *
 * Register these before the record routes: the first route registered that matches answers.
 */
export const COUNTERS_PATH = `${COLLECTION_PATHS.tenant}/_counters`;
export const LEGACY_COUNTERS_PATH = '/v1/tenants/{tenantId}/counters/{databaseType}/{collection}';

export function registerCounterRoutes(app: OpenAPIHono<AppEnv>, xronox: Xronox): void {
  const route = (path: string, hide: boolean) =>
    createRoute({
      method: 'get',
      path,
      hide,
      operationId: 'tenantCounterTotals',
      summary: "A collection's counter totals: created, updated, deleted, restored and each counter rule",
      tags: ['Counters'],
      security: BEARER,
      middleware: [requireRole('read')] as const,
      request: { params: z.object({ tenantId: tenantIdParam, databaseType: databaseTypeParam('tenant'), collection: collectionParam }), query: noQuery },
      responses: {
        200: { description: 'The totals', content: { 'application/json': { schema: countersSchema } } },
        ...problems(400, 404),
      },
    });
  for (const [path, hide] of [
    [COUNTERS_PATH, false],
    [LEGACY_COUNTERS_PATH, true],
  ] as const) {
    app.openapi(route(path, hide), async (c) => {
      const { databaseType, collection } = c.req.valid('param');
      const scope = c.get('scope');
      if (scope.tier !== 'tenant') throw new Error('The counters route is mounted under /v1/tenants only');
      const totals = await xronox.counters.getTotals({ databaseType, tier: 'tenant', tenantId: scope.tenantId, collection });
      return c.json({ totals }, 200);
    });
  }
}
