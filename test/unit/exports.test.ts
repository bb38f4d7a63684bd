import { describe, expect, it } from 'vitest';
import * as xronox from '../../core/index.js';

describe('public API', () => {
  it('exports exactly these runtime values (types are checked by the compiler)', () => {
    expect(Object.keys(xronox).sort()).toEqual([
      'ACTOR_TYPES',
      'BLOB_KINDS',
      'CONFIG_FILE_NAMES',
      'ClosedError',
      'Collection',
      'ConfigError',
      'ConflictError',
      'DATABASE_TYPES',
      'ERROR_CODES',
      'FILTER_OPERATORS',
      'NotFoundError',
      'RouteNotFoundError',
      'Router',
      'SCHEDULED_JOBS',
      'STORAGE_POLICIES',
      'StorageError',
      'TIERS',
      'TenantAccessError',
      'ValidationError',
      'VersionConflictError',
      'Xronox',
      'XronoxConfigBuilder',
      'XronoxError',
      'archiveObjects',
      'configSchema',
      'createDevConfig',
      'createMinimalConfig',
      'createProductionConfig',
      'findConfigFile',
      'initXronox',
      'loadConfig',
      'loadConfigFile',
      'maskConfig',
      'maskSecretsIn',
      'restoreBackup',
      'runJob',
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
    ];
    for (const err of errors) {
      expect(err).toBeInstanceOf(xronox.XronoxError);
      expect(xronox.ERROR_CODES).toContain(err.code);
      expect(err.name).toBe(err.constructor.name);
    }
    expect(new Set(errors.map((e) => e.code)).size).toBe(errors.length);
    expect(new xronox.VersionConflictError('id', 1, 2)).toBeInstanceOf(xronox.ConflictError);
    expect(new xronox.StorageError('fs', 'put', new Error('disk')).cause).toBeInstanceOf(Error);
  });
});
