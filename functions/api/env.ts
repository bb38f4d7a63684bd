import type { Principal } from './auth.js';

/** Which tier a request addresses, and its tenant or domain: set once authorization has passed. */
export type Scope = { tier: 'tenant'; tenantId: string } | { tier: 'domain'; domain: string } | { tier: 'generic' };

/** The Hono environment of the app: what middleware hands on to the handlers. */
export interface AppEnv {
  Variables: {
    /** From `hono/request-id`: the client's `X-Request-Id` when well-formed, else a UUID. Also the correlation id of a 500. */
    requestId: string;
    /** The authenticated caller (every `/v1` route). */
    principal: Principal;
    /** The tier, tenant or domain the caller was authorized for. */
    scope: Scope;
  };
}
