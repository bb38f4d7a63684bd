import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { AppEnv } from './env.js';
import { readSwaggerUiFile } from './swagger-ui-files.js';

export const OPENAPI_PATH = '/openapi.json';
export const DOCS_PATH = '/docs';

const DESCRIPTION = `Versioned, multi-tenant persistence. Every route under /v1 needs \`Authorization: Bearer <key>\`.
Writes to an existing record need \`If-Match: "<ov>"\` (from the ETag of a read or a write); errors are
\`application/problem+json\` (RFC 9457) with a stable \`code\`.`;

/**
 * The docs page's policy: scripts, styles and the document from this server only, no inline
 * script or style element, no frames, forms or plugins. `img-src data:` is for the icons
 * swagger-ui.css embeds; `connect-src 'self'` is what "Try it out" needs (the API is same-origin).
 */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Starts Swagger UI. A file of its own rather than an inline script, so the policy needs no
 * 'unsafe-inline' or hash. The document's URL is taken relative to this script
 * (`<prefix>/docs/init.js` -> `<prefix>/openapi.json`), so the page works behind any path prefix
 * (a Lambda stage) and whether or not the page URL ends in a slash. No validator badge: it would
 * send the document to validator.swagger.io.
 */
const INIT_JS = `'use strict';
(function () {
  var script = document.currentScript;
  window.addEventListener('load', function () {
    window.ui = SwaggerUIBundle({
      url: new URL('..${OPENAPI_PATH}', script.src).href,
      dom_id: '#swagger-ui',
      deepLinking: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: 'BaseLayout',
    });
  });
})();
`;

/** The page. Every URL in it is relative (`./docs/...` from `<prefix>/docs`), for the same reason. */
const PAGE = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Xronox API</title>
<link rel="stylesheet" href="./docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="./docs/swagger-ui-bundle.js"></script>
<script src="./docs/init.js"></script>
</body>
</html>
`;

/** The assets under `/docs/`, by file name: Swagger UI's own, from the pinned `swagger-ui-dist`, and the starter. */
const ASSETS: Record<string, { type: string; text: () => string }> = {
  'swagger-ui-bundle.js': { type: 'text/javascript; charset=utf-8', text: () => readSwaggerUiFile('swagger-ui-bundle.js') },
  'swagger-ui.css': { type: 'text/css; charset=utf-8', text: () => readSwaggerUiFile('swagger-ui.css') },
  'init.js': { type: 'text/javascript; charset=utf-8', text: () => INIT_JS },
};

/** Read once per process, on the first request for each (2 MB in all: not on a cold start that never shows the docs). */
const loaded = new Map<string, string>();

function send(c: Context<AppEnv>, body: string, type: string): Response {
  c.header('Content-Security-Policy', DOCS_CSP);
  c.header('X-Content-Type-Options', 'nosniff');
  // The assets change only with the package version; a day's caching spares a 2 MB download per visit.
  c.header('Cache-Control', type.startsWith('text/html') ? 'no-cache' : 'public, max-age=86400');
  return c.body(body, 200, { 'Content-Type': type });
}

/**
 * The OpenAPI 3.1 document, generated from the route schemas, at `/openapi.json`, and Swagger UI
 * at `/docs`, its assets under `/docs/`. All public: they describe the API, not any data. The
 * page loads nothing from elsewhere (no CDN): it works offline and under its own strict
 * Content-Security-Policy, which every response of `/docs` carries.
 */
export function registerDocs(app: OpenAPIHono<AppEnv>): void {
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description: 'An API key (stored hashed in the config) or a JWT signed with the configured secret or JWKS',
  });
  app.doc31(OPENAPI_PATH, {
    openapi: '3.1.0',
    info: { title: 'Xronox API', version: '1.0.0', description: DESCRIPTION, license: { name: 'MIT', url: 'https://opensource.org/license/mit' } },
    // Relative, so resolved against where the document was fetched (OpenAPI 3.1 §4.8.5):
    // `https://host/stage/openapi.json` -> `https://host/stage`. An absolute `/` would drop a
    // path prefix such as an API Gateway stage, and Swagger UI's "Try it out" would miss the API.
    servers: [{ url: '.', description: 'The server that serves this document' }],
  });
  app.get(DOCS_PATH, (c) => send(c, PAGE, 'text/html; charset=utf-8'));
  app.get(`${DOCS_PATH}/:file`, (c) => {
    const file = c.req.param('file');
    const asset = Object.hasOwn(ASSETS, file) ? ASSETS[file] : undefined;
    if (asset === undefined) return c.notFound(); // the app's 404 problem
    let text = loaded.get(file);
    if (text === undefined) {
      text = asset.text();
      loaded.set(file, text);
    }
    return send(c, text, asset.type);
  });
}
