import { isValidName } from '../foundation/names.js';
import { isRecord } from './normalise.js';
import { DATABASE_TYPES, type DatabaseType, type DynamicTenantsConfig, TENANT_PLACEHOLDER } from './schema.js';

/**
 * Templates of dynamic tenants: filling them in, telling whether a name could come from one, and
 * checking a tenant id against a section's rules. Shared by `loadConfig` and the router.
 */

/** Default number of resolved dynamic tenants a router keeps per database type. */
export const DEFAULT_DYNAMIC_CACHE_SIZE = 1000;

/** The template with every `{tenantId}` replaced by `tenantId`. */
export function renderTemplate(template: string, tenantId: string): string {
  return template.split(TENANT_PLACEHOLDER).join(tenantId);
}

/**
 * A matcher for the names a template can produce: the tenant id comes back as group 1. The
 * split is unique: every `{tenantId}` holds the same text and the literals are fixed, so a name's
 * length fixes the tenant id's.
 */
export function templateMatcher(template: string): RegExp {
  const parts = template.split(TENANT_PLACEHOLDER).map((p) => p.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&'));
  const [first = '', ...rest] = parts;
  return new RegExp(`^${first}${rest.map((p, i) => `${i === 0 ? '([A-Za-z0-9][A-Za-z0-9_-]*)' : '\\1'}${p}`).join('')}$`);
}

/** The tenant-id pattern of a section, anchored; `undefined` when the section sets none. */
export function compileTenantPattern(settings: DynamicTenantsConfig): RegExp | undefined {
  const source = settings.validation?.pattern;
  return source === undefined ? undefined : new RegExp(`^(?:${source})$`);
}

/**
 * Why `tenantId` is refused by the section's own rules (pattern, maxLength), or `null`. The
 * tenantId name rule is checked before this.
 */
export function tenantRuleViolation(settings: DynamicTenantsConfig, pattern: RegExp | undefined, tenantId: string): string | null {
  const maxLength = settings.validation?.maxLength;
  if (maxLength !== undefined && tenantId.length > maxLength) {
    return `is longer than dynamicTenants.validation.maxLength (${maxLength} characters)`;
  }
  if (pattern && !pattern.test(tenantId)) return `does not match dynamicTenants.validation.pattern ${pattern.source}`;
  return null;
}

/** Whether `tenantId` is one the section would accept (name rule and its own rules). */
export function acceptsTenant(settings: DynamicTenantsConfig, pattern: RegExp | undefined, tenantId: string): boolean {
  return isValidName('tenantId', tenantId) && tenantRuleViolation(settings, pattern, tenantId) === null;
}

/** Every `dynamicTenants` block of a (raw or loaded) `databases` object, with its dotted path. */
export function dynamicTenantSections(databases: unknown): Array<{ type: DatabaseType; path: string; settings: Record<string, unknown> }> {
  if (!isRecord(databases)) return [];
  const out: Array<{ type: DatabaseType; path: string; settings: Record<string, unknown> }> = [];
  for (const type of DATABASE_TYPES) {
    const section = databases[type];
    if (isRecord(section) && isRecord(section.dynamicTenants)) {
      out.push({ type, path: `databases.${type}.dynamicTenants`, settings: section.dynamicTenants });
    }
  }
  return out;
}
