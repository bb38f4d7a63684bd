import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { requestId } from 'hono/request-id';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { maskSecretsIn, TIERS, type ApiCorsConfig, type Xronox } from '../../core/index.js';
import { authenticate, authorizeScope } from './access.js';
import { type ApiAuthenticator, createApiAuthenticator } from './auth.js';
import { corsFor } from './cors.js';
import { DOCS_PATH, OPENAPI_PATH, registerDocs } from './docs.js';
import type { AppEnv } from './env.js';
import { type ApiLogger, jsonLineLogger, requestLog } from './logging.js';
import { HttpProblem, invalidRequest, type Problem, PROBLEM_CONTENT_TYPE, toProblem } from './problem.js';
import { registerCollectionRoutes } from './routes/collection-routes.js';
import { registerCounterRoutes } from './routes/counter-routes.js';
import { registerDocumentRoutes } from './routes/document-routes.js';
import { registerRecordRoutes } from './routes/record-routes.js';

/** Largest request body when neither the options nor the config say: the engine's default document limit. */
export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;

export interface CreateAppOptions {
  /** The engine the API serves. The app never shuts it down: its owner does. */
  xronox: Xronox;
  /** Who may call. Default: `createApiAuthenticator(xronox.config.api)` (keys and JWTs from the config; without an `api` section, nobody). */
  auth?: ApiAuthenticator;
  /** Receives one structured line per request. Default: JSON lines on stdout. */
  logger?: ApiLogger;
  /**
   * The id of a request that brought no well-formed `X-Request-Id`: in its log line, its
   * `X-Request-Id` answer header and, on a 500, the problem's `correlationId`. Default: a random
   * UUID. The Lambda handler gives the invocation's `awsRequestId`.
   */
  requestIdOf?: (c: Context) => string;
  /**
   * Largest request body in bytes (larger: 413). Default: the config's `api.bodyLimitBytes`, else
   * its `limits.maxDocumentBytes` (a body is a document), else 1 MiB.
   */
  bodyLimitBytes?: number;
  /**
   * Browser origins allowed to call the API (CORS). Default: the config's `api.cors`; `null` or
   * no config: none, and no CORS headers. `corsSettings` (./cors.ts) adds the environment's
   * `XRONOX_CORS_ORIGINS`, as the Lambda handler and `npm start` do.
   */
  cors?: ApiCorsConfig | null;
}

/**
 * The Xronox HTTP API as a Hono app: serve it with `@hono/node-server` (see
 * `functions/local/start.ts`) or any Hono adapter (a Lambda handler).
 *
 * Each request passes, in order: request id, request log, CORS (a preflight from an allowed
 * origin is answered there, before authentication: it carries no credential), authentication (401), tenant, domain
 * or tier authorization (403), body limit (413), the route's role (403), media type (415), zod
 * validation of path, query, headers and body (400), then the engine. Every error leaves through
 * `toProblem` as `application/problem+json`.
 */
export function createApp(options: CreateAppOptions): OpenAPIHono<AppEnv> {
  const { xronox } = options;
  const auth = options.auth ?? createApiAuthenticator(xronox.config.api);
  const maxSize = options.bodyLimitBytes ?? xronox.config.api?.bodyLimitBytes ?? xronox.config.limits?.maxDocumentBytes ?? DEFAULT_BODY_LIMIT_BYTES;

  const app = new OpenAPIHono<AppEnv>({
    // A schema failure anywhere (path, query, headers, body) becomes one 400 listing the issues.
    defaultHook: (result) => {
      if (!result.success) throw invalidRequest(result.target, result.error);
    },
  });

  app.use('*', requestId(options.requestIdOf ? { generator: options.requestIdOf } : {}));
  app.use('*', requestLog(options.logger ?? jsonLineLogger, (text) => maskSecretsIn(text, xronox.config)));
  const cors = options.cors === undefined ? xronox.config.api?.cors : options.cors;
  if (cors) app.use('*', corsFor(cors));
  app.use('/v1/*', authenticate(auth));
  app.use('/v1/tenants/:tenantId/*', authorizeScope('tenant'));
  app.use('/v1/domains/:domain/*', authorizeScope('domain'));
  app.use('/v1/generic/*', authorizeScope('generic'));
  app.use(
    '/v1/*',
    bodyLimit({
      maxSize,
      onError: () => {
        throw new HttpProblem(413, 'CONTENT_TOO_LARGE', `The request body is larger than ${maxSize} bytes`);
      },
    }),
  );

  registerCounterRoutes(app, xronox);
  for (const tier of TIERS) {
    // Before the record routes: `/messaging/...` and `/identities/...` are document collections.
    registerDocumentRoutes(app, tier, xronox);
    registerCollectionRoutes(app, tier, xronox);
    registerRecordRoutes(app, tier, xronox);
  }
  registerDocs(app);
  app.get('/', (c) => c.json({ name: 'Xronox API', openapi: OPENAPI_PATH, docs: DOCS_PATH }));

  app.notFound((c) => sendProblem(c, toProblem(new HttpProblem(404, 'NOT_FOUND', `No route answers ${c.req.method} ${c.req.path.slice(0, 256)}`), c.var.requestId)));
  app.onError((err, c) => sendProblem(c, toProblem(err, c.var.requestId)));
  return app;
}

/** Through the context, so headers set earlier (`X-Request-Id`) are kept. */
function sendProblem(c: Context<AppEnv>, { problem, headers }: { problem: Problem; headers: Record<string, string> }): Response {
  return c.body(JSON.stringify(problem), problem.status as ContentfulStatusCode, { ...headers, 'Content-Type': PROBLEM_CONTENT_TYPE });
}
