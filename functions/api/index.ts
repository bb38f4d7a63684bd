/**
 * `xronox/http`: the HTTP API as a Hono app (`createApp`), for any Hono runtime adapter (Node's
 * `@hono/node-server`, Bun, Deno, a Lambda handler of one's own), and what a server around it
 * needs: the config's authenticator and the API keys' hashes (`api.keys[].sha256`).
 */
export { createApp, DEFAULT_BODY_LIMIT_BYTES, type CreateAppOptions } from './app.js';
export { createApiAuthenticator, type ApiAuthenticator } from './auth.js';
export { generateApiKey, hashApiKey } from './api-keys.js';
export type { AppEnv, Principal } from './env.js';
