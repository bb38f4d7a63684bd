import type { OpenAPIHono } from '@hono/zod-openapi';
import { swaggerUI } from '@hono/swagger-ui';
import type { AppEnv } from './env.js';

export const OPENAPI_PATH = '/openapi.json';
export const DOCS_PATH = '/docs';

const DESCRIPTION = `Versioned, multi-tenant persistence. Every route under /v1 needs \`Authorization: Bearer <key>\`.
Writes to an existing record need \`If-Match: "<ov>"\` (from the ETag of a read or a write); errors are
\`application/problem+json\` (RFC 9457) with a stable \`code\`.`;

/**
 * The OpenAPI 3.1 document, generated from the route schemas, at `/openapi.json`, and Swagger UI
 * at `/docs`. Both are public: they describe the API, not any data. Swagger UI loads its assets
 * from a CDN and the document by a relative URL, so it works behind a path prefix (a Lambda stage).
 */
export function registerDocs(app: OpenAPIHono<AppEnv>): void {
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description: 'An API key (stored hashed in the config) or a JWT signed with the configured secret or JWKS',
  });
  app.doc31(OPENAPI_PATH, {
    openapi: '3.1.0',
    info: { title: 'Xronox API', version: '1.0.0', description: DESCRIPTION },
  });
  app.get(DOCS_PATH, swaggerUI({ url: `.${OPENAPI_PATH}`, title: 'Xronox API' }));
}
