import { BLOB_KINDS, DATABASE_TYPES, type ParsedConfig } from './schema.js';

/**
 * Every legacy shape is turned into the current one here, and nowhere else.
 *
 * Before parsing:
 * - a database type given as one database object (`logs: { dbConnRef, dbName, ... }`, as the
 *   storage architecture documents show for logs, messaging and identities) becomes
 *   `{ genericDatabase: {...} }`.
 * After parsing:
 * - a connection's single `bucket` becomes `buckets` with that bucket for every kind;
 * - a database's single `bucket` becomes `recordsBucket`, `contentBucket`, ... with that bucket
 *   (and `versionsBucket` only for versioned types); an empty `bucket` or `spaceConnRef` ("" in
 *   the messaging document's examples) means "none".
 * Folder prefixes default to the kind names, so one bucket keeps the kinds apart.
 * A single-object section may carry `dynamicTenants` beside its database fields; it stays on the
 * section.
 */

const SINGLE_DATABASE_KEYS = ['dbConnRef', 'dbName'];

export interface PreNormalised {
  value: unknown;
  /** Maps an issue path of the normalised input back to the path the user wrote. */
  userPath: (path: string) => string;
}

export function normaliseSections(input: unknown): PreNormalised {
  const singles: string[] = [];
  if (!isRecord(input) || !isRecord(input.databases)) return { value: input, userPath: (p) => p };
  const databases: Record<string, unknown> = { ...input.databases };
  for (const type of DATABASE_TYPES) {
    const section = databases[type];
    if (type !== 'runtime' && isRecord(section) && SINGLE_DATABASE_KEYS.some((k) => k in section)) {
      // dynamicTenants belongs to the section, not to its one database.
      const { dynamicTenants, ...database } = section;
      databases[type] = dynamicTenants === undefined ? { genericDatabase: database } : { genericDatabase: database, dynamicTenants };
      singles.push(type);
    }
  }
  return {
    value: { ...input, databases },
    userPath: (path) => {
      for (const type of singles) {
        const from = `databases.${type}.genericDatabase`;
        if (path === from || path.startsWith(`${from}.`)) return `databases.${type}${path.slice(from.length)}`;
      }
      return path;
    },
  };
}

type DatabaseEntry = {
  spaceConnRef?: string | undefined;
  bucket?: string | undefined;
  recordsBucket?: string | undefined;
  versionsBucket?: string | undefined;
  contentBucket?: string | undefined;
  backupsBucket?: string | undefined;
};

export function normaliseBuckets(config: ParsedConfig, isVersioned: (type: (typeof DATABASE_TYPES)[number]) => boolean): ParsedConfig {
  const spacesConnections = Object.fromEntries(
    Object.entries(config.spacesConnections).map(([ref, conn]) => {
      const { bucket, ...rest } = conn;
      if (!bucket) return [ref, rest];
      const buckets = { ...Object.fromEntries(BLOB_KINDS.map((k) => [k, bucket])), ...rest.buckets };
      return [ref, { ...rest, buckets }];
    }),
  ) as ParsedConfig['spacesConnections'];

  const databases: Record<string, unknown> = {};
  for (const type of DATABASE_TYPES) {
    const section = config.databases[type] as Record<string, unknown> | undefined;
    if (!section) continue;
    const fix = <T extends DatabaseEntry>(entry: T): T => {
      const { bucket, spaceConnRef, ...rest } = entry;
      const out: DatabaseEntry = { ...rest };
      if (spaceConnRef) out.spaceConnRef = spaceConnRef;
      if (bucket) {
        out.recordsBucket ??= bucket;
        out.contentBucket ??= bucket;
        out.backupsBucket ??= bucket;
        if (isVersioned(type)) out.versionsBucket ??= bucket;
      }
      return out as T;
    };
    databases[type] = Object.fromEntries(
      Object.entries(section).map(([key, value]) => [
        key,
        key === 'dynamicTenants' ? fixDynamic(value as { spaceConnRef?: string }) : Array.isArray(value) ? value.map((e: DatabaseEntry) => fix(e)) : fix(value as DatabaseEntry),
      ]),
    );
  }
  return { ...config, spacesConnections, databases: databases as ParsedConfig['databases'] };
}

/** An empty `spaceConnRef` of a dynamicTenants block means "none", as on a database. */
function fixDynamic<T extends { spaceConnRef?: string }>(settings: T): T {
  if (settings.spaceConnRef !== '') return settings;
  const rest = { ...settings };
  delete rest.spaceConnRef;
  return rest;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
