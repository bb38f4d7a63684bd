/**
 * The whole Xronox error hierarchy. Every failure the library reports is one of these, with a
 * stable `code` that callers (and the HTTP layer's status table) can switch on, and the original
 * error kept as `cause`.
 */

export const ERROR_CODES = [
  'XRONOX_ERROR',
  'CONFIG_INVALID',
  'ROUTE_NOT_FOUND',
  'VALIDATION_FAILED',
  'NOT_FOUND',
  'CONFLICT',
  'VERSION_CONFLICT',
  'TENANT_ACCESS_DENIED',
  'STORAGE_FAILED',
  'CLOSED',
  'TAMPER_DETECTED',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export class XronoxError extends Error {
  readonly code: ErrorCode;

  constructor(message: string, options: { code?: ErrorCode; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code ?? 'XRONOX_ERROR';
  }
}

export interface ConfigIssue {
  /** Dotted path into the config, e.g. `databases.runtime.tenantDatabases[2].dbConnRef`. */
  path: string;
  message: string;
}

/** The configuration is invalid; `issues` lists every problem found, not just the first. */
export class ConfigError extends XronoxError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], options: { cause?: unknown } = {}) {
    const lines = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
    super(
      `Invalid Xronox config (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n  - ${lines.join('\n  - ')}`,
      { code: 'CONFIG_INVALID', cause: options.cause },
    );
    this.issues = issues;
  }
}

/** No database is configured for the requested type, tier and tenant or domain. */
export class RouteNotFoundError extends XronoxError {
  constructor(message: string) {
    super(message, { code: 'ROUTE_NOT_FOUND' });
  }
}

/** The caller's input (a document, a name, an id, a filter, an argument) is not acceptable. */
export class ValidationError extends XronoxError {
  /** Where in the input the problem is, when it is known (e.g. `data.items[3]`). */
  readonly path: string | undefined;

  constructor(message: string, options: { path?: string; cause?: unknown } = {}) {
    super(message, { code: 'VALIDATION_FAILED', cause: options.cause });
    this.path = options.path;
  }
}

export class NotFoundError extends XronoxError {
  constructor(message: string) {
    super(message, { code: 'NOT_FOUND' });
  }
}

export class ConflictError extends XronoxError {
  constructor(message: string, options: { code?: ErrorCode; cause?: unknown } = {}) {
    super(message, { code: options.code ?? 'CONFLICT', cause: options.cause });
  }
}

/** An optimistic-lock check failed: the record is at `actual`, not at the `expected` version. */
export class VersionConflictError extends ConflictError {
  readonly expected: number | null;
  readonly actual: number | null;

  constructor(id: string, expected: number | null, actual: number | null) {
    super(
      actual === null
        ? `Record ${id} does not exist (expected ov ${String(expected)})`
        : expected === null
          ? `Record ${id} already exists at ov ${actual}`
          : `Record ${id} is at ov ${actual}, not at the expected ov ${expected}`,
      { code: 'VERSION_CONFLICT' },
    );
    this.expected = expected;
    this.actual = actual;
  }
}

/**
 * A unique index already holds the key of a document being written (messaging, identities). Its
 * `code` is `CONFLICT`, so it is handled like every conflict (HTTP 409).
 */
export class DuplicateKeyError extends ConflictError {
  /** The collection written to. */
  readonly collection: string;
  /** The unique index that refused the write, e.g. `key_1_namespace_1_tenantId_1`. */
  readonly index: string;

  constructor(collection: string, index: string, options: { cause?: unknown } = {}) {
    super(`A document with the same ${index} key already exists in ${collection}`, { cause: options.cause });
    this.collection = collection;
    this.index = index;
  }
}

/**
 * A backup restore was asked into a database (or the collections it names) that already holds
 * data: importing the snapshot over it would mix records written since the backup with the
 * snapshot's, and counters would then match neither. Restore into an empty database, or ask for
 * `mode: 'replace'` (`--replace`). Its `code` is `CONFLICT`.
 */
export class RestoreTargetNotEmptyError extends ConflictError {
  /** The database that is not empty. */
  readonly dbName: string;
  /** How many records (record databases, deleted ones included) or documents it holds. */
  readonly held: number;
  readonly unit: 'records' | 'documents';

  constructor(dbName: string, held: number, unit: 'records' | 'documents', scope?: readonly string[]) {
    super(
      `${dbName} is not empty: ${scope ? `${scope.join(', ')} ${scope.length === 1 ? 'holds' : 'hold'}` : 'it holds'} ${held} ${held === 1 ? unit.slice(0, -1) : unit}, ` +
        'and restoring a backup over them would mix them with the snapshot. Restore into an empty database, or pass --replace ' +
        "(mode: 'replace') to replace the whole database with the snapshot",
    );
    this.dbName = dbName;
    this.held = held;
    this.unit = unit;
  }
}

/**
 * An update or delete was asked of an append-only database type (logs): its records are only
 * ever created. A `ValidationError` (HTTP 400), since no retry can make it succeed.
 */
export class AppendOnlyError extends ValidationError {
  readonly databaseType: string;
  readonly operation: string;

  constructor(databaseType: string, operation: string) {
    super(`${databaseType} is append-only: ${operation} is not allowed; create a new record instead`);
    this.databaseType = databaseType;
    this.operation = operation;
  }
}

/** A caller tried to reach data of a tenant or domain it may not touch. */
export class TenantAccessError extends XronoxError {
  constructor(message: string) {
    super(message, { code: 'TENANT_ACCESS_DENIED' });
  }
}

/** A backend (index store or blob store) failed; `adapter` and `operation` say which call. */
export class StorageError extends XronoxError {
  readonly adapter: string;
  readonly operation: string;

  constructor(adapter: string, operation: string, cause: unknown, message?: string) {
    super(message ?? `${adapter} failed during ${operation}`, { code: 'STORAGE_FAILED', cause });
    this.adapter = adapter;
    this.operation = operation;
  }
}

/** The Xronox instance (or one of its stores) has been shut down. */
export class ClosedError extends XronoxError {
  constructor(what = 'This Xronox instance') {
    super(`${what} has been closed`, { code: 'CLOSED' });
  }
}

/**
 * Stored data failed its tamper check (`verify`'s rules, applied by every read to what it
 * returns): a read refuses to serve it. This is an incident, not a caller's mistake: the HTTP
 * layer answers 500 with a correlation id and logs an alert line.
 */
export class TamperError extends XronoxError {
  /** `{dbName}/{collection}` of the record. */
  readonly collection: string;
  readonly id: string;
  /** The version (or head ov) that failed. */
  readonly ov: number;
  /** What does not match. */
  readonly reason: string;

  constructor(collection: string, id: string, ov: number, reason: string) {
    super(`Record ${id} version ${ov} in ${collection} failed its tamper check (${reason}); it was not served`, { code: 'TAMPER_DETECTED' });
    this.collection = collection;
    this.id = id;
    this.ov = ov;
    this.reason = reason;
  }
}
