import { z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { isDocumentDatabaseType, ValidationError, type Actor, type RecordRouteRequest, type RouteRequest, type Tier } from '../../../core/index.js';
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
 * The one gate of every JSON body, before the body validator parses it:
 * - 415 unless the request declares `application/json` (the validator would otherwise treat a
 *   body-less request with no `Content-Type` as `{}`), or when it declares a `charset` that is not
 *   UTF-8 (`utf-16`, `latin1`…): JSON exchanged between systems is UTF-8 (RFC 8259 §8.1), and
 *   reading other bytes as UTF-8 would store something other than what was sent;
 * - 400 when the bytes are not valid UTF-8: decoding them leniently would store U+FFFD in place
 *   of what the client sent, and answer as if it had been stored.
 * The validator then parses the same bytes, which Hono keeps once read.
 */
export const jsonBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  const contentType = c.req.header('content-type') ?? '';
  const type = contentType.split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new HttpProblem(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send the body as JSON with Content-Type: application/json');
  }
  const charset = mediaTypeParameters(contentType).find(([name, value]) => name === 'charset' && !isUtf8Label(value))?.[1];
  if (charset !== undefined) {
    throw new HttpProblem(415, 'UNSUPPORTED_MEDIA_TYPE', `JSON bodies are read as UTF-8; send the body in UTF-8 (charset=utf-8, or no charset), not ${JSON.stringify(charset.slice(0, 40))}`);
  }
  // Hono keeps the bytes read here for the validator, which parses them next.
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  const invalidAt = firstInvalidUtf8Byte(bytes);
  if (invalidAt !== null) {
    throw new HttpProblem(400, 'BAD_REQUEST', 'The request body is not valid UTF-8', {
      errors: [{ path: 'body', message: `holds bytes that are not UTF-8, from byte ${invalidAt}` }],
    });
  }
  await next();
};

/** The parameters of a media type (`; name=value`, value a token or a quoted string), names lower-cased. */
function mediaTypeParameters(contentType: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const parameter = /;\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)/g;
  for (const [, name, value] of contentType.matchAll(parameter)) {
    out.push([name!.toLowerCase(), value!.startsWith('"') ? value!.slice(1, -1).replace(/\\(.)/g, '$1') : value!]);
  }
  return out;
}

/** Whether a charset label names UTF-8 (by the WHATWG Encoding Standard's labels: `utf-8`, `UTF8`, `unicode-1-1-utf-8`…). */
function isUtf8Label(label: string): boolean {
  try {
    return new TextDecoder(label).encoding === 'utf-8';
  } catch {
    return false; // not a label of any encoding
  }
}

/** Where the first byte sequence that is not UTF-8 starts; `null` when every byte is UTF-8. */
function firstInvalidUtf8Byte(bytes: Uint8Array): number | null {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return null;
  } catch {
    // Walk the lenient decoding beside the bytes: everything before the first U+FFFD that the
    // bytes do not spell (EF BF BD) decoded as written, so its byte length is its UTF-8 length.
    let at = 0;
    for (const char of new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes)) {
      if (char === '\uFFFD' && !(bytes[at] === 0xef && bytes[at + 1] === 0xbf && bytes[at + 2] === 0xbd)) return at;
      at += Buffer.byteLength(char, 'utf8');
    }
    return at;
  }
}

const STATUS_DESCRIPTIONS: Record<number, string> = {
  400: 'The request is not valid (path, query, headers or body; a body that is not UTF-8 JSON)',
  401: 'No valid API key or token',
  403: 'The credential does not reach this tenant, domain or tier, or its role is not enough',
  404: 'No such record, version or database',
  409: 'The change conflicts with another record (a unique key) or a running collection restore',
  412: 'If-Match names another ov than the current one (the problem holds currentOv)',
  413: 'The body is larger than the configured limit',
  415: 'The body is not declared as application/json, or declares a charset other than UTF-8',
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
