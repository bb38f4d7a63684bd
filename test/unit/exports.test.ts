import { describe, expect, it } from 'vitest';
import * as xronox from '../../core/index.js';

describe('public API', () => {
  it('exports exactly these runtime values (types are checked by the compiler)', () => {
    expect(Object.keys(xronox).sort()).toEqual([
      'ACTOR_TYPES',
      'API_ROLES',
      'AppendOnlyError',
      'BLOB_KINDS',
      'CONFIG_FILE_NAMES',
      'ClosedError',
      'Collection',
      'ConfigError',
      'ConflictError',
      'DATABASE_TYPES',
      'DATE_KEY',
      'DOCUMENT_DATABASE_TYPES',
      'DocumentCollection',
      'DuplicateKeyError',
      'ERROR_CODES',
      'FILTER_OPERATORS',
      'IDENTITY_COLLECTIONS',
      'IDENTITY_EVENTS_COLLECTION',
      'IDENTITY_SPECS',
      'IdentitiesCollection',
      'MAX_CONTINUATIONS',
      'MAX_CREATE_BATCH',
      'MESSAGING_COLLECTIONS',
      'MESSAGING_SPECS',
      'MessagingCollection',
      'NAME_RULES',
      'NotFoundError',
      'RestoreTargetNotEmptyError',
      'RouteNotFoundError',
      'Router',
      'SCHEDULED_JOBS',
      'STORAGE_POLICIES',
      'SqsJobQueue',
      'StorageError',
      'TIERS',
      'TamperError',
      'TenantAccessError',
      'VERSION_OPS',
      'ValidationError',
      'VersionConflictError',
      'Xronox',
      'XronoxConfigBuilder',
      'XronoxError',
      'apiCorsSchema',
      'apiKeySchema',
      'archiveObjects',
      'configSchema',
      'createDevConfig',
      'createMinimalConfig',
      'createProductionConfig',
      'defaultAdapters',
      'ensureDocumentDatabase',
      'expireDocumentDatabase',
      'expireDocuments',
      'fanOutJob',
      'findConfigFile',
      'initXronox',
      'isDocumentDatabaseType',
      'loadConfig',
      'loadConfigFile',
      'maskConfig',
      'maskSecretsIn',
      'migrateDatabases',
      'migrateDocuments',
      'parseInstant',
      'parseJobTask',
      'readLogRange',
      'restoreBackup',
      'runJob',
      'runJobTask',
      'toDocumentJson',
    ]);
  });

  it('every error has a stable code and is an XronoxError', () => {
    const errors = [
      new xronox.ConfigError([{ path: 'a', message: 'b' }]),
      new xronox.RouteNotFoundError('x'),
      new xronox.ValidationError('x'),
      new xronox.NotFoundError('x'),
      new xronox.ConflictError('x'),
      new xronox.VersionConflictError('id', 1, 2),
      new xronox.TenantAccessError('x'),
      new xronox.StorageError('fs', 'put', new Error('disk')),
      new xronox.ClosedError(),
      new xronox.TamperError('rt_acme/orders', 'id', 2, 'its stored document does not match its hash'),
    ];
    for (const err of errors) {
      expect(err).toBeInstanceOf(xronox.XronoxError);
      expect(xronox.ERROR_CODES).toContain(err.code);
      expect(err.name).toBe(err.constructor.name);
    }
    expect(new Set(errors.map((e) => e.code)).size).toBe(errors.length);
    expect(new xronox.VersionConflictError('id', 1, 2)).toBeInstanceOf(xronox.ConflictError);
    expect(new xronox.StorageError('fs', 'put', new Error('disk')).cause).toBeInstanceOf(Error);
    // Named refinements keep their parent's code, so callers and the HTTP table need no new case.
    expect(new xronox.DuplicateKeyError('users', 'tenantId_1_email_1')).toMatchObject({ code: 'CONFLICT', collection: 'users', index: 'tenantId_1_email_1', name: 'DuplicateKeyError' });
    expect(new xronox.DuplicateKeyError('users', 'i')).toBeInstanceOf(xronox.ConflictError);
    expect(new xronox.AppendOnlyError('logs', 'update')).toMatchObject({ code: 'VALIDATION_FAILED', databaseType: 'logs', operation: 'update', name: 'AppendOnlyError' });
    expect(new xronox.AppendOnlyError('logs', 'update')).toBeInstanceOf(xronox.ValidationError);
    expect(new xronox.RestoreTargetNotEmptyError('rt_acme', 12, 'records')).toMatchObject({ code: 'CONFLICT', dbName: 'rt_acme', held: 12, unit: 'records', name: 'RestoreTargetNotEmptyError' });
    expect(new xronox.RestoreTargetNotEmptyError('rt_acme', 12, 'records')).toBeInstanceOf(xronox.ConflictError);
  });
});
