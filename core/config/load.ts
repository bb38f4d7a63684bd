import { ConfigError, type ConfigIssue, XronoxError } from '../errors.js';
import { parseFilter } from '../engine/filter.js';
import { policyFor } from '../routing/policy.js';
import { isRecord, normaliseBuckets, normaliseSections } from './normalise.js';
import { configSchema, DATABASE_TYPES, type DatabaseType, type ParsedConfig } from './schema.js';

/** A validated, normalised, deeply frozen configuration. */
export type XronoxConfig = Readonly<ParsedConfig>;

/**
 * Validates and normalises a config. Every problem (schema, references, storage policy) is
 * collected and thrown together in one `ConfigError` with dotted paths.
 */
export function loadConfig(input: unknown): XronoxConfig {
  const pre = normaliseSections(input);
  const parsed = configSchema.safeParse(pre.value);
  const issues: ConfigIssue[] = parsed.success
    ? []
    : parsed.error.issues.map((i) => ({ path: pre.userPath(formatPath(i.path)), message: i.message }));
  // The cross-field checks read the raw input defensively, so they report alongside schema errors.
  issues.push(...crossCheck(pre.value).map((i) => ({ ...i, path: pre.userPath(i.path) })));
  if (issues.length > 0 || !parsed.success) throw new ConfigError(dedupe(issues));
  const versioningEnabled = parsed.data.versioning.enabled;
  // A private deep copy: freezing it never freezes objects the caller still holds.
  return deepFreeze(structuredClone(normaliseBuckets(parsed.data, (t) => policyFor(t, versioningEnabled).versioned)));
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
    } else if (!localEnabled) {
      issues.push({
        path: `${path}.spaceConnRef`,
        message: 'is missing and localStorage is not enabled: give a spaces connection or enable localStorage for blobs',
      });
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
    const usesLocalBlobs = typeof spaceConnRef !== 'string' || spaceConnRef === '';
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

