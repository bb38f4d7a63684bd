import type { MiddlewareHandler } from 'hono';
import type { ApiRole } from '../../core/index.js';
import { type ApiAuthenticator, hasRole, mayReach } from './auth.js';
import type { AppEnv, Scope } from './env.js';
import { HttpProblem } from './problem.js';

/**
 * Authentication and authorization, in the order that keeps other tenants invisible: who is
 * calling (401), may they reach this tenant, domain or tier at all (403), is their role enough
 * for this operation (403). All three run before any input is validated or looked up, so the
 * answer for a tenant the caller may not reach is the same whether it exists or not.
 */

/** RFC 6750 token68: what a bearer token may contain, so what an API key must be to be sent as one. */
export const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;
/** A bearer credential; bounded so a huge header costs nothing. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]{1,8192}=*)$/i;
const REALM = 'Bearer realm="xronox"';

/** 401 unless `Authorization: Bearer <token>` names a principal; sets `principal`. */
export function authenticate(auth: ApiAuthenticator): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header('authorization');
    if (header === undefined) {
      throw new HttpProblem(401, 'UNAUTHORIZED', 'Send an API key or token as "Authorization: Bearer <key>"', { headers: { 'WWW-Authenticate': REALM } });
    }
    const token = BEARER.exec(header)?.[1];
    const principal = token === undefined ? null : await auth.authenticate(token);
    if (!principal) {
      throw new HttpProblem(401, 'UNAUTHORIZED', 'The bearer token is not a valid API key or token', {
        headers: { 'WWW-Authenticate': `${REALM}, error="invalid_token"` },
      });
    }
    c.set('principal', principal);
    await next();
  };
}

/** 403 unless the principal may reach the tier (and tenant or domain) of the path; sets `scope`. */
export function authorizeScope(tier: Scope['tier']): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    // The same decoded values the routes validate, so what is authorized is what is served.
    const scope: Scope =
      tier === 'tenant' ? { tier, tenantId: c.req.param('tenantId') ?? '' } : tier === 'domain' ? { tier, domain: c.req.param('domain') ?? '' } : { tier };
    if (!mayReach(c.get('principal'), scope)) throw forbidden();
    c.set('scope', scope);
    await next();
  };
}

/** 403 unless the principal's role is at least `role`. */
export function requireRole(role: ApiRole): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (!hasRole(c.get('principal'), role)) {
      throw new HttpProblem(403, 'FORBIDDEN', `This operation needs the ${role} role`);
    }
    await next();
  };
}

/** One text for every scope refusal: it must not vary with what exists. */
function forbidden(): HttpProblem {
  return new HttpProblem(403, 'FORBIDDEN', 'This credential does not grant access to the requested tenant, domain or tier');
}
