import { z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import type { Tier } from '../../../core/config/schema.js';
import type { Actor } from '../../../core/contracts/index-store.js';
import { isDocumentDatabaseType, type RecordRouteRequest } from '../../../core/domains/open.js';
import { ValidationError } from '../../../core/errors.js';
import type { RouteRequest } from '../../../core/routing/router.js';
import type { AppEnv, Scope } from '../env.js';
import { HttpProblem, PROBLEM_CONTENT_TYPE } from '../problem.js';
import { collectionParam, databaseTypeParam, domainParam, idParam, problemSchema, tenantIdParam } from '../schemas.js';

/** The collection path of each tier; records are `<base>/{id}`. */
export const COLLECTION_PATHS = {
  tenant: '/v1/tenants/{tenantId}/{databaseType}/{collection}',
  domain: '/v1/domains/{domain}/{databaseType}/{collection}',
  generic: '/v1/generic/{databaseType}/{collection}',
} as const satisfies Record<Tier, string>;

export const TAGS = { tenant: 'Tenant tier', domain: 'Domain tier', generic: 'Generic tier' } as const satisfies Record<Tier, string>;

/** The security requirement of every `/v1` operation. */
export const BEARER = [{ bearerAuth: [] }];

/**
 * Path parameters of a collection of `tier`. At run time the schema also holds the tier's
 * `tenantId` or `domain` (validated like the rest); its static type leaves them out on purpose:
 * handlers take the tenant or domain from the authorized `scope`, never from anywhere else.
 */
export function collectionParams(tier: Tier) {
  const shape = { databaseType: databaseTypeParam(tier), collection: collectionParam };
  const scoped = tier === 'tenant' ? { tenantId: tenantIdParam, ...shape } : tier === 'domain' ? { domain: domainParam, ...shape } : shape;
  return z.object(scoped) as unknown as z.ZodObject<typeof shape>;
}

export function recordParams(tier: Tier) {
  return collectionParams(tier).extend({ id: idParam });
}

/**
 * Which database a request goes to: the authorized scope plus the validated type and collection.
 * Messaging and identities hold documents, not records: these routes refuse them with a 400.
 */
export function routeRequest(scope: Scope, params: { databaseType: RouteRequest['databaseType']; collection: string }): RecordRouteRequest {
  const databaseType = params.databaseType;
  if (isDocumentDatabaseType(databaseType)) {
    throw new ValidationError(`${databaseType} collections hold documents, not versioned records; use the ${databaseType} document routes`, { path: 'path.databaseType' });
  }
  return {
    databaseType,
    tier: scope.tier,
    collection: params.collection,
    ...(scope.tier === 'tenant' ? { tenantId: scope.tenantId } : scope.tier === 'domain' ? { domain: scope.domain } : {}),
  };
}

/** The URL path of a record, built from validated parts (for `Location`). */
export function recordPath(scope: Scope, params: { databaseType: string; collection: string }, id: string): string {
  const prefix =
    scope.tier === 'tenant' ? `/v1/tenants/${scope.tenantId}` : scope.tier === 'domain' ? `/v1/domains/${scope.domain}` : '/v1/generic';
  return `${prefix}/${params.databaseType}/${params.collection}/${id}`;
}

/** Who made the change (the authenticated principal) and why (`X-Xronox-Reason`). */
export function who(c: Context<AppEnv>, reason: string | undefined): { actor: Actor; reason?: string } {
  return { actor: c.get('principal').actor, ...(reason !== undefined ? { reason } : {}) };
}

/** 428 when a write that must name the version it replaces does not. */
export function requireIfMatch(ov: number | undefined): number {
  if (ov === undefined) {
    throw new HttpProblem(428, 'PRECONDITION_REQUIRED', 'Send If-Match with the record\'s current ov as an entity tag (e.g. If-Match: "3"), as given by its ETag');
  }
  return ov;
}

/**
 * 415 unless the request declares a JSON body. Runs before the body validator, which would
 * otherwise treat a body-less request with no `Content-Type` as `{}`.
 */
export const jsonBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  const type = c.req.header('content-type')?.split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new HttpProblem(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send the body as JSON with Content-Type: application/json');
  }
  await next();
};

const STATUS_DESCRIPTIONS: Record<number, string> = {
  400: 'The request is not valid (path, query, headers or body)',
  401: 'No valid API key or token',
  403: 'The credential does not reach this tenant, domain or tier, or its role is not enough',
  404: 'No such record, version or database',
  409: 'The change conflicts with another record (a unique key) or a running collection restore',
  412: 'If-Match names another ov than the current one (the problem holds currentOv)',
  413: 'The body is larger than the configured limit',
  415: 'The body is not declared as application/json',
  428: 'If-Match is missing',
  500: 'Unexpected failure; the problem holds a correlationId',
};

/** Problem responses for the OpenAPI document. */
export function problems(...statuses: number[]) {
  return Object.fromEntries(
    [401, 403, 500, ...statuses].map((status) => [
      status,
      { description: STATUS_DESCRIPTIONS[status] ?? 'Error', content: { [PROBLEM_CONTENT_TYPE]: { schema: problemSchema } } },
    ]),
  );
}

/** Routes that take no query parameters still refuse unknown ones (a typo must not be ignored). */
export const noQuery = z.strictObject({});

export const etagHeader = z.object({ ETag: z.string().openapi({ description: 'The ov of the record as a strong entity tag, e.g. "3"' }) });
