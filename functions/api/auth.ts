import { z } from 'zod';
import { API_ROLES, apiKeySchema, type Actor, type ApiConfig, type ApiRole } from '../../core/index.js';
import { hashApiKey } from './api-keys.js';
import type { Principal, Scope } from './env.js';
import { createJwtVerifier, type JwtVerifier } from './jwt.js';

/** Turns a bearer token into a principal. Injectable, so a deployment can bring its own. */
export interface ApiAuthenticator {
  /**
   * The principal the token stands for, or `null` when it stands for none (unknown key, bad or
   * expired JWT): the API answers 401. Rejects only when verification itself failed on our side
   * (the JWKS cannot be fetched), which the API answers with a logged 500.
   */
  authenticate(token: string): Promise<Principal | null>;
}

/** The access claims of a JWT: the same fields as an API key (`role`, `tenants`, `domains`, `generic`), plus `sub` and an optional `name`. */
const jwtClaimsSchema = z.object({
  ...apiKeySchema.pick({ role: true, tenants: true, domains: true, generic: true }).shape,
  sub: z.string().min(1).max(256),
  name: z.string().min(1).max(256).optional(),
});

/**
 * The authenticator of a config's `api` section: API keys by their SHA-256, then (when `jwt` is
 * set and the token looks like a JWT) JWTs. Without an `api` section nobody gets in.
 */
export function createApiAuthenticator(api: ApiConfig | undefined): ApiAuthenticator {
  const byHash = new Map<string, Principal>();
  for (const key of api?.keys ?? []) {
    byHash.set(key.sha256, principal(`key:${key.id}`, { type: 'api', identifier: key.id }, key));
  }
  const jwt: JwtVerifier | null = api?.jwt ? createJwtVerifier(api.jwt) : null;
  return {
    async authenticate(token) {
      // A map lookup on the digest does not leak the key by timing: an attacker who learned a
      // digest prefix from it would still need a preimage of SHA-256.
      const known = byHash.get(hashApiKey(token));
      if (known) return known;
      if (!jwt || token.split('.').length !== 3) return null;
      const payload = await jwt.verify(token);
      const claims = payload === null ? null : jwtClaimsSchema.safeParse(payload);
      if (!claims?.success) return null;
      const { sub, name } = claims.data;
      return principal(`jwt:${sub}`, name === undefined ? { type: 'user', identifier: sub } : { type: 'user', identifier: sub, name }, claims.data);
    },
  };
}

/** Whether the principal may touch this tier, tenant or domain at all (any role). */
export function mayReach(p: Principal, scope: Scope): boolean {
  switch (scope.tier) {
    case 'tenant':
      return p.tenants.has('*') || p.tenants.has(scope.tenantId);
    case 'domain':
      return p.domains.has('*') || p.domains.has(scope.domain);
    case 'generic':
      return p.generic;
  }
}

/** Whether the principal's role is at least `role` (`read` < `write` < `admin`). */
export function hasRole(p: Principal, role: ApiRole): boolean {
  return API_ROLES.indexOf(p.role) >= API_ROLES.indexOf(role);
}

function principal(id: string, actor: Actor, grants: { role: ApiRole; tenants: readonly string[]; domains: readonly string[]; generic: boolean }): Principal {
  return { id, actor, role: grants.role, tenants: new Set(grants.tenants), domains: new Set(grants.domains), generic: grants.generic };
}
