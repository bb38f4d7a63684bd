import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { Xronox } from '../../../core/index.js';
import { requireRole } from '../access.js';
import type { AppEnv } from '../env.js';
import { collectionParam, countersSchema, databaseTypeParam, tenantIdParam } from '../schemas.js';
import { BEARER, noQuery, problems } from './common.js';

/**
 * `GET /v1/tenants/{tenantId}/counters/{databaseType}/{collection}`. Register it before the
 * record routes: `/v1/tenants/t/counters/runtime/orders` also has the shape of a record path,
 * and the first route registered answers.
 */
export function registerCounterRoutes(app: OpenAPIHono<AppEnv>, xronox: Xronox): void {
  const route = createRoute({
    method: 'get',
    path: '/v1/tenants/{tenantId}/counters/{databaseType}/{collection}',
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
  app.openapi(route, async (c) => {
    const { databaseType, collection } = c.req.valid('param');
    const scope = c.get('scope');
    if (scope.tier !== 'tenant') throw new Error('The counters route is mounted under /v1/tenants only');
    const totals = await xronox.counters.getTotals({ databaseType, tier: 'tenant', tenantId: scope.tenantId, collection });
    return c.json({ totals }, 200);
  });
}
