import type { MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';
import { apiCorsSchema, ConfigError, type ApiCorsConfig } from '../../core/index.js';
import type { AppEnv } from './env.js';

/**
 * Names the allowed origins, comma-separated (or `*`), where the config cannot: the Lambda's
 * environment (serverless.yml sets it from the `corsOrigins` param that also configures the HTTP
 * API's CORS, infra/serverless/cors.cjs) and `npm start`. Overrides `api.cors.allowedOrigins`.
 */
export const CORS_ORIGINS_VARIABLE = 'XRONOX_CORS_ORIGINS';

/** Preflight answers are cached this long (seconds) unless the config says otherwise: as the HTTP API's CORS does. */
export const DEFAULT_CORS_MAX_AGE_SECONDS = 3600;

/** What a browser script may send: the credential, the body's type, the version a write replaces, and the API's own headers. */
export const CORS_ALLOW_HEADERS = ['Authorization', 'Content-Type', 'If-Match', 'X-Request-Id', 'X-Xronox-Reason', 'X-Xronox-Function-Id'];
/** What a browser script may read besides the safelisted headers: the version (for If-Match), where a record was created, and the id to quote. */
export const CORS_EXPOSE_HEADERS = ['ETag', 'Location', 'X-Request-Id'];
export const CORS_ALLOW_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

/**
 * The CORS settings in force: `XRONOX_CORS_ORIGINS` when set and not empty (then it
 * replaces the config's list, keeping its `maxAgeSeconds`), else the config's `api.cors`.
 * Origins from the environment are checked like the config's: a bad one is a `ConfigError`
 * naming the variable.
 */
export function corsSettings(fromConfig: ApiCorsConfig | undefined, env: NodeJS.ProcessEnv = process.env): ApiCorsConfig | undefined {
  const text = env[CORS_ORIGINS_VARIABLE]?.trim();
  if (!text) return fromConfig;
  const parsed = apiCorsSchema.safeParse({ ...fromConfig, allowedOrigins: text.split(',').map((o) => o.trim()).filter((o) => o !== '') });
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => ({ path: `${CORS_ORIGINS_VARIABLE}${issue.path.length > 1 ? `[${String(issue.path[1])}]` : ''}`, message: issue.message })));
  }
  return parsed.data;
}

/**
 * Hono's `cors` for the allowed origins only. A request from any other origin (or none) passes
 * through untouched, so it gets no CORS header at all, a preflight included (it then meets
 * authentication and the routes as any `OPTIONS` does: 401 under /v1, else 404). Hono's own middleware would still send the allowed methods
 * and headers to every origin. Responses vary by `Origin` either way, so a shared cache never
 * hands one origin's answer to another.
 */
export function corsFor(settings: ApiCorsConfig): MiddlewareHandler<AppEnv> {
  const any = settings.allowedOrigins.includes('*');
  const allowed = new Set(settings.allowedOrigins);
  const isAllowed = (origin: string | undefined): origin is string => origin !== undefined && (any || allowed.has(origin));
  const answer = cors({
    // The origin itself, also for `*`: answers vary by Origin either way.
    origin: (origin) => (isAllowed(origin) ? origin : null),
    allowMethods: CORS_ALLOW_METHODS,
    allowHeaders: CORS_ALLOW_HEADERS,
    exposeHeaders: CORS_EXPOSE_HEADERS,
    maxAge: settings.maxAgeSeconds ?? DEFAULT_CORS_MAX_AGE_SECONDS,
  });
  return async (c, next) => {
    if (isAllowed(c.req.header('origin'))) return answer(c, next);
    await next();
    c.header('Vary', 'Origin', { append: true });
  };
}
