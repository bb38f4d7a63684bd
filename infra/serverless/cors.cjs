/* global module, URL */
'use strict';
/**
 * CORS of the HTTP API from the `corsOrigins` param of serverless.yml: a comma-separated list of
 * the origins a browser may call the API from (`https://app.example.com,http://localhost:5173`),
 * or `*` for any; empty (the default): none, and API Gateway adds no CORS headers.
 *
 * - `httpApi` (`provider.httpApi.cors`): API Gateway's CORS configuration, or `false`. With one,
 *   API Gateway answers preflight `OPTIONS` requests itself and sets the CORS headers of every
 *   response (it ignores those the function sends), so it must allow what the app's routes take.
 * - `origins` (the API function's `XRONOX_CORS_ORIGINS`): the same list, normalised, so the app
 *   answers the same origins when it runs without API Gateway (locally, serverless-offline).
 *
 * Each origin is checked here, so a typo fails `osls package` instead of every browser request.
 */

/**
 * Request headers the routes read (functions/api): credentials, body type, conditional writes,
 * tracing, audit reason, the calling function's id. The same lists as the app's own CORS
 * (functions/api/cors.ts), which test/lambda/package.test.ts holds them to.
 */
const ALLOWED_HEADERS = ['authorization', 'content-type', 'if-match', 'x-request-id', 'x-xronox-reason', 'x-xronox-function-id'];
/** Response headers a browser script may read: the version (ETag), a created record's URL, the correlation id. */
const EXPOSED_HEADERS = ['etag', 'location', 'x-request-id'];
const ALLOWED_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];
/** How long a browser may cache a preflight answer (seconds); browsers cap it (Chromium at 2 h). */
const MAX_AGE = 3600;

/**
 * An origin exactly as a browser sends it, the same test as the app's config schema applies
 * (core/config/schema.ts): http(s), and `new URL(origin).origin` gives it back unchanged (no
 * path, no trailing slash, lowercase, no default port such as `:443`, a port that exists).
 */
function isOrigin(text) {
  try {
    const url = new URL(text);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.origin === text;
  } catch {
    return false;
  }
}

/** The param, split and checked: `[]` for none. */
async function parse(resolveVariable) {
  const raw = await resolveVariable('param:corsOrigins');
  if (raw === null || raw === undefined || raw === '') return [];
  if (typeof raw !== 'string') throw new Error(`The param corsOrigins must be a comma-separated list of origins; got ${JSON.stringify(raw)}`);
  const origins = raw.split(',').map((o) => o.trim()).filter((o) => o !== '');
  for (const origin of origins) {
    if (origin === '*') continue;
    if (!isOrigin(origin)) {
      throw new Error(`The param corsOrigins holds ${JSON.stringify(origin)}, which is not an origin: scheme and host (and port, unless the scheme's default), lowercase, no path or trailing slash, e.g. https://app.example.com`);
    }
  }
  if (origins.includes('*') && origins.length > 1) throw new Error('The param corsOrigins is either "*" (any origin) or a list of origins, not both');
  return [...new Set(origins)];
}

async function httpApi({ resolveVariable }) {
  const origins = await parse(resolveVariable);
  if (origins.length === 0) return false;
  return {
    allowedOrigins: origins,
    allowedHeaders: ALLOWED_HEADERS,
    allowedMethods: ALLOWED_METHODS,
    exposedResponseHeaders: EXPOSED_HEADERS,
    maxAge: MAX_AGE,
  };
}

async function origins({ resolveVariable }) {
  return (await parse(resolveVariable)).join(',');
}

module.exports = { httpApi, origins };
