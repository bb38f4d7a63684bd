import type * as NodePath from 'node:path';
import { ConfigError, type ConfigIssue, XronoxError } from '../errors.js';
import { parseFilter } from '../foundation/filter.js';
import { builtinModule } from '../foundation/host.js';
import { policyFor } from './policy.js';
import { acceptsTenant, compileTenantPattern, dynamicTenantSections, renderTemplate, templateMatcher } from './dynamic-tenants.js';
import { type Environment, resolveEnvReferences } from './env.js';
import { isRecord, normaliseBuckets, normaliseSections } from './normalise.js';
import { BLOB_KINDS, configSchema, DEFAULT_SCHEMA_PREFIX, DATABASE_TYPES, type DatabaseType, type DynamicTenantsConfig, dynamicTenantsSchema, type ParsedConfig } from './schema.js';
import { maskWhenPrinted, secretValues } from './secrets.js';

/** A validated, normalised, deeply frozen configuration. */
export type XronoxConfig = Readonly<ParsedConfig>;

export interface LoadOptions {
  /**
   * Folder against which relative `dbConnections.*.sqlitePath` and `localStorage.basePath` are
   * resolved: a config file's own folder. Without it they stay as written (relative to the
   * working directory when opened).
   */
  baseDir?: string;
}

/**
 * Validates and normalises a config. Every problem (schema, references, storage policy, unset
 * environment variables) is collected and thrown together in one `ConfigError` with dotted paths.
 *
 * Any string value that is exactly `ENV.NAME` is replaced by the variable `NAME` of `env`
 * (default `process.env`); the caller's input is never changed. No secret of the config (keys,
 * URI passwords; see `secrets.ts`) ever appears in the error.
 */
export function loadConfig(input: unknown, env: Environment = process.env, options: LoadOptions = {}): XronoxConfig {
  // Every later step walks the input recursively; a hostile depth must be a ConfigError, not a stack overflow.
  const tooDeep = pathDeeperThan(input, MAX_CONFIG_DEPTH);
  if (tooDeep !== null) throw new ConfigError([{ path: tooDeep, message: `is nested deeper than ${MAX_CONFIG_DEPTH} levels` }]);
  const resolved = resolveEnvReferences(input, env);
  const value = options.baseDir === undefined ? resolved.value : resolveRelativePaths(resolved.value, options.baseDir);
  const pre = normaliseSections(value);
  const parsed = configSchema.safeParse(pre.value);
  // A variable that is not set is the one problem at its path; what its placeholder breaks downstream is not reported.
  const unset = new Set(resolved.missing.map((i) => i.path));
  const issues: ConfigIssue[] = [...resolved.missing];
  if (!parsed.success) {
    for (const i of parsed.error.issues) {
      const path = pre.userPath(formatPath(i.path));
      if (!unset.has(path)) issues.push({ path, message: i.message });
    }
  }
  // The cross-field checks read the raw input defensively, so they report alongside schema errors.
  issues.push(...crossCheck(pre.value).map((i) => ({ ...i, path: pre.userPath(i.path) })));
  if (issues.length > 0 || !parsed.success) throw new ConfigError(maskIssues(dedupe(issues), secretValues(value, env)));
  const versioningEnabled = parsed.data.versioning.enabled;
  // A private deep copy: freezing it never freezes objects the caller still holds.
  const config = structuredClone(normaliseBuckets(parsed.data, (t) => policyFor(t, versioningEnabled).versioned));
  // Printed (console.log, JSON.stringify), the config and anything holding it show no secret.
  maskWhenPrinted(config);
  return deepFreeze(config);
}

/** No real config comes close: its deepest paths (a counter rule's filter) are a dozen levels. */
const MAX_CONFIG_DEPTH = 64;

/**
 * The path of the first value nested deeper than `max` objects and arrays, or `null`. Iterative,
 * so any depth is safe. A value met again on its own path (a cycle) is not followed; a value
 * shared by several paths is followed again when a path reaches it deeper than before.
 */
function pathDeeperThan(input: unknown, max: number): string | null {
  type Frame = { value: unknown; path: string; depth: number } | { leave: object };
  const stack: Frame[] = [{ value: input, path: '', depth: 0 }];
  const ancestors = new Set<object>();
  // A shared value is followed again only when reached deeper than before: at most `max` times.
  const deepest = new Map<object, number>();
  while (stack.length > 0) {
    const frame = stack.pop()!;
    if ('leave' in frame) {
      ancestors.delete(frame.leave);
      continue;
    }
    const { value, path, depth } = frame;
    if (typeof value !== 'object' || value === null || ancestors.has(value) || (deepest.get(value) ?? -1) >= depth) continue;
    if (depth >= max) return path || '(root)';
    deepest.set(value, depth);
    ancestors.add(value);
    stack.push({ leave: value });
    // Index by index: `map` skips the holes of a sparse array.
    if (Array.isArray(value)) for (let i = 0; i < value.length; i++) stack.push({ value: value[i], path: `${path}[${i}]`, depth: depth + 1 });
    else for (const [key, child] of Object.entries(value)) stack.push({ value: child, path: path === '' ? key : `${path}.${key}`, depth: depth + 1 });
  }
  return null;
}

/** Issues with every secret value replaced by `****`, so messages that quote config values never leak one. */
function maskIssues(issues: ConfigIssue[], secrets: string[]): ConfigIssue[] {
  if (secrets.length === 0) return issues;
  const mask = (text: string) => secrets.reduce((out, secret) => out.split(secret).join('****'), text);
  return issues.map((i) => ({ path: mask(i.path), message: mask(i.message) }));
}

/** Relative SQLite and local blob paths made absolute against `baseDir`, in a copy. */
function resolveRelativePaths(input: unknown, baseDir: string): unknown {
  if (!isRecord(input)) return input;
  // Paths on a file system: a runtime without node:path (a Workers isolate) has none, and keeps them as written.
  const nodePath = builtinModule<typeof NodePath>('node:path');
  const absolute = (path: unknown) => (nodePath && typeof path === 'string' && path !== '' && !nodePath.isAbsolute(path) ? nodePath.resolve(baseDir, path) : path);
  const out: Record<string, unknown> = { ...input };
  if (isRecord(input.dbConnections)) {
    out.dbConnections = Object.fromEntries(
      Object.entries(input.dbConnections).map(([ref, conn]) => [ref, isRecord(conn) && 'sqlitePath' in conn ? { ...conn, sqlitePath: absolute(conn.sqlitePath) } : conn]),
    );
  }
  if (isRecord(input.localStorage) && 'basePath' in input.localStorage) {
    out.localStorage = { ...input.localStorage, basePath: absolute(input.localStorage.basePath) };
  }
  return out;
}

interface EntryRef {
  type: DatabaseType;
  path: string;
  entry: Record<string, unknown>;
}

/** Every database entry of the raw config, with its dotted path. */
export function databaseEntries(databases: unknown): EntryRef[] {
  const out: EntryRef[] = [];
  if (!isRecord(databases)) return out;
  for (const type of DATABASE_TYPES) {
    const section = databases[type];
    if (!isRecord(section)) continue;
    const base = `databases.${type}`;
    if (isRecord(section.genericDatabase)) out.push({ type, path: `${base}.genericDatabase`, entry: section.genericDatabase });
    for (const key of ['domainsDatabases', 'tenantDatabases'] as const) {
      const list = section[key];
      if (!Array.isArray(list)) continue;
      list.forEach((entry, i) => {
        if (isRecord(entry)) out.push({ type, path: `${base}.${key}[${i}]`, entry });
      });
    }
  }
  return out;
}

function crossCheck(raw: unknown): ConfigIssue[] {
  if (!isRecord(raw)) return [];
  const issues: ConfigIssue[] = [];
  const dbConnections = isRecord(raw.dbConnections) ? raw.dbConnections : {};
  const spacesConnections = isRecord(raw.spacesConnections) ? raw.spacesConnections : {};
  const localEnabled = isRecord(raw.localStorage) && raw.localStorage.enabled === true;
  const versioningEnabled = !(isRecord(raw.versioning) && raw.versioning.enabled === false);
  const usedDbNames = new Map<string, string>();
  const seenTierKeys = new Map<string, string>();

  for (const { type, path, entry } of databaseEntries(raw.databases)) {
    const policy = policyFor(type, versioningEnabled);
    const dbConnRef = entry.dbConnRef;
    if (typeof dbConnRef === 'string' && !Object.hasOwn(dbConnections, dbConnRef)) {
      issues.push({
        path: `${path}.dbConnRef`,
        message: `names the connection "${dbConnRef}", which dbConnections does not define (defined: ${list(Object.keys(dbConnections))})`,
      });
    }
    const spaceConnRef = entry.spaceConnRef;
    if (typeof spaceConnRef === 'string' && spaceConnRef !== '') {
      if (!Object.hasOwn(spacesConnections, spaceConnRef)) {
        issues.push({
          path: `${path}.spaceConnRef`,
          message: `names the connection "${spaceConnRef}", which spacesConnections does not define (defined: ${list(Object.keys(spacesConnections))})`,
        });
      } else {
        const conn = spacesConnections[spaceConnRef];
        const connBuckets = isRecord(conn) && isRecord(conn.buckets) ? conn.buckets : {};
        const connBucket = isRecord(conn) ? conn.bucket : undefined;
        for (const kind of policy.blobKinds) {
          if (!entry[`${kind}Bucket`] && !entry.bucket && !connBuckets[kind] && !connBucket) {
            issues.push({
              path: `${path}.${kind}Bucket`,
              message: `is missing: ${type} writes ${kind} objects, so give ${kind}Bucket (or bucket) here, or buckets.${kind} (or bucket) on spacesConnections.${spaceConnRef}`,
            });
          }
        }
      }
    } else if (!localEnabled && policy.objectStorage === 'required') {
      issues.push({
        path: `${path}.spaceConnRef`,
        message: 'is missing and localStorage is not enabled: give a spaces connection or enable localStorage for blobs',
      });
    } else if (!localEnabled) {
      // No object storage at all (an empty spaceConnRef, as the messaging requirements write it): buckets would name nothing.
      for (const key of ['bucket', ...BLOB_KINDS.map((kind) => `${kind}Bucket`)]) {
        if (typeof entry[key] === 'string' && entry[key] !== '') {
          issues.push({ path: `${path}.${key}`, message: `names a bucket, but this database has no object storage (no spaceConnRef, and localStorage is not enabled); remove it, or give a spaceConnRef` });
        }
      }
    }
    if (!policy.versioned && entry.versionsBucket !== undefined) {
      issues.push({
        path: `${path}.versionsBucket`,
        message: `${type} is not versioned${type === 'runtime' ? ' (versioning.enabled is false)' : ''}, so it keeps no version history and has no versions bucket; remove versionsBucket`,
      });
    }
    const tier = path.endsWith('genericDatabase') ? 'generic' : path.includes('domainsDatabases') ? 'domain' : 'tenant';
    if (!policy.tiers.includes(tier)) {
      issues.push({ path, message: `${type} databases exist only at the ${policy.tiers.join(', ')} tier` });
    }
    let nameClash = false;
    if (typeof dbConnRef === 'string' && typeof entry.dbName === 'string') {
      const key = `${dbConnRef}\u0000${entry.dbName}`;
      const other = usedDbNames.get(key);
      if (other) {
        nameClash = true;
        issues.push({
          path: `${path}.dbName`,
          message: `"${entry.dbName}" on connection "${dbConnRef}" is already used by ${other}; two databases sharing one would mix their records`,
        });
      } else usedDbNames.set(key, path);
    }
    const usesLocalBlobs = localEnabled && (typeof spaceConnRef !== 'string' || spaceConnRef === '');
    if (usesLocalBlobs && !nameClash && typeof entry.dbName === 'string') {
      // On the local filesystem a database's default folder is its dbName, whatever its connection.
      const key = `\u0000local\u0000${entry.dbName}`;
      const other = usedDbNames.get(key);
      if (other) {
        issues.push({
          path: `${path}.dbName`,
          message: `"${entry.dbName}" is also the name of ${other}, and both keep blobs in localStorage, so they would share a folder; give them different names`,
        });
      } else usedDbNames.set(key, path);
    }
    const tierKey = tier === 'tenant' ? entry.tenantId : tier === 'domain' ? entry.domain : undefined;
    if (typeof tierKey === 'string') {
      const key = `${type}\u0000${tier}\u0000${tierKey}`;
      const other = seenTierKeys.get(key);
      if (other) issues.push({ path, message: `${tier} "${tierKey}" is configured twice for ${type} (also at ${other})` });
      else seenTierKeys.set(key, path);
    }
  }

  // Counters live in (analyticsDbName, collection): an analytics database that is another
  // database's name (or another tenant's analytics database) would merge their counters.
  const names = new Map<string, string>();
  const entries = databaseEntries(raw.databases);
  for (const { path, entry } of entries) {
    if (typeof entry.dbConnRef === 'string' && typeof entry.dbName === 'string') names.set(`${entry.dbConnRef}\u0000${entry.dbName}`, path);
  }
  for (const { path, entry } of entries) {
    const analytics = entry.analyticsDbName;
    if (typeof entry.dbConnRef !== 'string' || typeof analytics !== 'string' || analytics === entry.dbName) continue;
    const key = `${entry.dbConnRef}\u0000${analytics}`;
    const other = names.get(key);
    if (other && other !== path) {
      issues.push({
        path: `${path}.analyticsDbName`,
        message: `"${analytics}" on connection "${entry.dbConnRef}" is also used by ${other}; counters kept there would mix two databases' totals`,
      });
    } else names.set(key, path);
  }

  if (isRecord(raw.collectionMaps)) {
    for (const [collection, map] of Object.entries(raw.collectionMaps)) {
      if (!isRecord(map) || !Array.isArray(map.indexedProps) || !isRecord(map.validation)) continue;
      const required = map.validation.requiredIndexed;
      if (!Array.isArray(required) || map.indexedProps.length === 0) continue;
      required.forEach((prop, i) => {
        if (!(map.indexedProps as unknown[]).includes(prop)) {
          issues.push({
            path: `collectionMaps.${collection}.validation.requiredIndexed[${i}]`,
            message: `"${String(prop)}" is required but not listed in indexedProps`,
          });
        }
      });
    }
  }

  // The MongoDB index store commits every write in a multi-document transaction: it has no mode without them.
  if (isRecord(raw.transactions) && raw.transactions.enabled === false) {
    const mongo = Object.keys(dbConnections).filter((ref) => isRecord(dbConnections[ref]) && typeof (dbConnections[ref] as Record<string, unknown>).mongoUri === 'string');
    if (mongo.length > 0) {
      issues.push({
        path: 'transactions.enabled',
        message:
          `is false, but MongoDB connections (${list(mongo)}) always use multi-document transactions, which need a replica set; ` +
          'remove the setting, and run a single server as a one-node replica set (`mongod --replSet rs0`, then `rs.initiate()` once in mongosh)',
      });
    }
  }

  issues.push(...checkDynamicTenants(raw.databases, { dbConnections, spacesConnections, localEnabled, versioningEnabled }));

  issues.push(...checkApiKeys(raw.api));
  issues.push(...checkSchemaPrefixes(dbConnections));

  const rules = isRecord(raw.counterRules) && Array.isArray(raw.counterRules.rules) ? raw.counterRules.rules : [];
  rules.forEach((rule, i) => {
    if (!isRecord(rule) || !isRecord(rule.when)) return;
    try {
      parseFilter(rule.when, () => true);
    } catch (err) {
      issues.push({ path: `counterRules.rules[${i}].when`, message: err instanceof XronoxError ? err.message : String(err) });
    }
  });
  return issues;
}

/**
 * Two PostgreSQL connections to the same database whose schema prefixes nest ("app_" and
 * "app_x_") would name one schema for two databases ("app_" + "x_rt" = "app_x_" + "rt"). Equal
 * prefixes are one store reached twice, which is fine. The same database is recognised by host,
 * port and database name; URIs that reach it by other names are not caught here (the store then
 * refuses the other's schema when it opens it).
 */
function checkSchemaPrefixes(dbConnections: Record<string, unknown>): ConfigIssue[] {
  const stores: Array<{ ref: string; server: string; prefix: string }> = [];
  for (const [ref, conn] of Object.entries(dbConnections)) {
    if (!isRecord(conn) || typeof conn.postgresUri !== 'string') continue;
    let server: string;
    try {
      const url = new URL(conn.postgresUri);
      server = `${url.hostname.toLowerCase()}:${url.port || '5432'}${url.pathname}`;
    } catch {
      continue; // the schema reports a URI it cannot read
    }
    stores.push({ ref, server, prefix: typeof conn.schemaPrefix === 'string' ? conn.schemaPrefix : DEFAULT_SCHEMA_PREFIX });
  }
  const issues: ConfigIssue[] = [];
  for (const [i, a] of stores.entries()) {
    for (const b of stores.slice(i + 1)) {
      if (a.server !== b.server || a.prefix === b.prefix) continue;
      const [outer, inner] = a.prefix.length <= b.prefix.length ? [a, b] : [b, a];
      if (!inner.prefix.startsWith(outer.prefix)) continue;
      issues.push({
        path: `dbConnections.${inner.ref}.schemaPrefix`,
        message: `"${inner.prefix}" starts with "${outer.prefix}", the prefix of dbConnections.${outer.ref} on the same PostgreSQL database, so one schema name could belong to both; give prefixes neither of which starts the other`,
      });
    }
  }
  return issues;
}

/**
 * API keys: an id names the actor of every write, so two keys sharing one would make the history
 * ambiguous; two entries with the same hash are the same key with two sets of rights; and a key
 * that reaches no tenant, domain or the generic tier is a mistake, not a policy.
 */
function checkApiKeys(api: unknown): ConfigIssue[] {
  const keys = isRecord(api) && Array.isArray(api.keys) ? api.keys : [];
  const issues: ConfigIssue[] = [];
  const ids = new Map<unknown, number>();
  const hashes = new Map<unknown, number>();
  keys.forEach((key, i) => {
    if (!isRecord(key)) return;
    const path = `api.keys[${i}]`;
    const sameId = ids.get(key.id);
    if (typeof key.id === 'string' && sameId !== undefined) issues.push({ path: `${path}.id`, message: `"${key.id}" is also the id of api.keys[${sameId}]; give each key its own id` });
    else ids.set(key.id, i);
    const sameHash = hashes.get(key.sha256);
    if (typeof key.sha256 === 'string' && sameHash !== undefined) issues.push({ path: `${path}.sha256`, message: `is also the hash of api.keys[${sameHash}]: one key cannot have two sets of rights` });
    else hashes.set(key.sha256, i);
    const grants = (list: unknown) => Array.isArray(list) && list.length > 0;
    if (!grants(key.tenants) && !grants(key.domains) && key.generic !== true) {
      issues.push({ path, message: 'grants no tenant, no domain and not the generic tier; list what the key may reach' });
    }
  });
  return issues;
}

interface Connections {
  dbConnections: Record<string, unknown>;
  spacesConnections: Record<string, unknown>;
  localEnabled: boolean;
  versioningEnabled: boolean;
}

/**
 * References and storage of every `dynamicTenants` block, and templates that give names another
 * template gives other tenants (found with a few sample tenant ids). The router also refuses,
 * per tenant, any name another database could have; this reports the templates that clash for
 * ordinary ids while the config loads.
 */
function checkDynamicTenants(databases: unknown, { dbConnections, spacesConnections, localEnabled, versioningEnabled }: Connections): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  /** Templates per index database (`db` + connection) or blob store (`local`, `s3` + connection). */
  const claims: TemplateClaim[] = [];

  for (const { type, path, settings } of dynamicTenantSections(databases)) {
    const { dbConnRef, spaceConnRef, bucketTemplate } = settings;
    if (typeof dbConnRef === 'string' && !Object.hasOwn(dbConnections, dbConnRef)) {
      issues.push({
        path: `${path}.dbConnRef`,
        message: `names the connection "${dbConnRef}", which dbConnections does not define (defined: ${list(Object.keys(dbConnections))})`,
      });
    }
    const usesSpaces = typeof spaceConnRef === 'string' && spaceConnRef !== '';
    if (usesSpaces && !Object.hasOwn(spacesConnections, spaceConnRef)) {
      issues.push({
        path: `${path}.spaceConnRef`,
        message: `names the connection "${spaceConnRef}", which spacesConnections does not define (defined: ${list(Object.keys(spacesConnections))})`,
      });
    } else if (usesSpaces && bucketTemplate === undefined) {
      const conn = spacesConnections[spaceConnRef];
      const connBuckets = isRecord(conn) && isRecord(conn.buckets) ? conn.buckets : {};
      const connBucket = isRecord(conn) ? conn.bucket : undefined;
      const lacking = policyFor(type, versioningEnabled).blobKinds.filter((kind) => !connBuckets[kind] && !connBucket);
      if (lacking.length > 0) {
        issues.push({
          path: `${path}.bucketTemplate`,
          message: `is missing and spacesConnections.${spaceConnRef} has no bucket for ${lacking.join(', ')}: give bucketTemplate, or buckets (or bucket) on the connection`,
        });
      }
    } else if (!usesSpaces && !localEnabled && policyFor(type, versioningEnabled).objectStorage === 'required') {
      issues.push({
        path: `${path}.spaceConnRef`,
        message: 'is missing and localStorage is not enabled: give a spaces connection or enable localStorage for blobs',
      });
    }
    if (type !== 'runtime' && settings.analyticsDbNameTemplate !== undefined) {
      issues.push({
        path: `${path}.analyticsDbNameTemplate`,
        message: `only runtime keeps counter totals in an analytics database; remove it from ${type}`,
      });
    }

    const parsed = dynamicTenantsSchema.safeParse(settings);
    if (!parsed.success || !parsed.data.enabled) continue;
    const section = { path, settings: parsed.data, pattern: compileTenantPattern(parsed.data) };
    const add = (store: string, field: TemplateClaim['field'], template: string | undefined) => {
      if (template !== undefined) claims.push({ store, section, field, template, matcher: templateMatcher(template) });
    };
    const data = parsed.data;
    add(`db\u0000${data.dbConnRef}`, 'dbNameTemplate', data.dbNameTemplate);
    if (data.analyticsDbNameTemplate !== data.dbNameTemplate) add(`db\u0000${data.dbConnRef}`, 'analyticsDbNameTemplate', data.analyticsDbNameTemplate);
    // In localStorage a tenant's folder is named like its database unless bucketTemplate names it.
    const blobStore = data.spaceConnRef ? `s3\u0000${data.spaceConnRef}` : localEnabled ? 'local' : null;
    if (blobStore === null) {
      // A type whose data lives whole in its database, without object storage: no folder, no bucket.
      if (data.bucketTemplate !== undefined) {
        issues.push({ path: `${path}.bucketTemplate`, message: 'names buckets, but these tenants have no object storage (no spaceConnRef, and localStorage is not enabled); remove it, or give a spaceConnRef' });
      }
    } else if (data.bucketTemplate !== undefined) add(blobStore, 'bucketTemplate', data.bucketTemplate);
    else if (blobStore === 'local') add('local', 'dbNameTemplate', data.dbNameTemplate);
  }

  for (const claim of claims) {
    const clash = firstClash(claim, claims);
    if (!clash) continue;
    const where = claim.store === 'local' ? 'in localStorage' : claim.store.startsWith('s3') ? `on spaces connection "${claim.store.slice(3)}"` : `on connection "${claim.store.slice(3)}"`;
    issues.push({
      path: `${claim.section.path}.${claim.field}`,
      message: `gives names that ${clash.other.section.path}.${clash.other.field} gives other tenants too, ${where}: the tenant "${clash.tenant}" would get "${clash.name}", as would the tenant "${clash.otherTenant}" there; give the templates distinct fixed parts`,
    });
  }
  return issues;
}

interface TemplateClaim {
  store: string;
  section: { path: string; settings: DynamicTenantsConfig; pattern: RegExp | undefined };
  field: 'dbNameTemplate' | 'analyticsDbNameTemplate' | 'bucketTemplate';
  template: string;
  matcher: RegExp;
}

/** Tenant ids tried against the other templates; ids a section's own rules refuse are skipped. */
const SAMPLE_TENANTS = ['a', 'z', 'tenant-1'];

function firstClash(claim: TemplateClaim, claims: readonly TemplateClaim[]) {
  for (const tenant of SAMPLE_TENANTS) {
    if (!acceptsTenant(claim.section.settings, claim.section.pattern, tenant)) continue;
    const name = renderTemplate(claim.template, tenant);
    for (const other of claims) {
      if (other === claim || other.store !== claim.store) continue;
      const otherTenant = other.matcher.exec(name)?.[1];
      if (otherTenant === undefined || (other.section === claim.section && otherTenant === tenant)) continue;
      if (acceptsTenant(other.section.settings, other.section.pattern, otherTenant)) return { other, tenant, name, otherTenant };
    }
  }
  return null;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

function list(names: string[]): string {
  return names.length === 0 ? 'none' : names.map((n) => `"${n}"`).join(', ');
}

function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const key = `${i.path}\u0000${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

