import type { Actor, ApiRole } from '../../core/index.js';

/** Who is calling, and where they may go. */
export interface Principal {
  /** Names the caller in logs: `key:<id>` or `jwt:<sub>`. */
  readonly id: string;
  /** Stored as the actor of every version the caller writes. */
  readonly actor: Actor;
  readonly role: ApiRole;
  /** Tenants (or domains) the caller may touch; `'*'` in the set means all of them. */
  readonly tenants: ReadonlySet<string>;
  readonly domains: ReadonlySet<string>;
  /** Whether the caller may touch the generic tier. */
  readonly generic: boolean;
}

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
