import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashApiKey } from '../../functions/api/api-keys.js';

/**
 * The config file the handler tests give a Lambda function (`XRONOX_CONFIG_FILE`): the embedded
 * default in `folder` (paths relative to the file, as for any config file), one tenant's runtime
 * database, and one write key for that tenant. Returns the file's path.
 */
export function writeHandlerConfig(folder: string, o: { tenant: string; dbName: string; keyId: string; key: string; dataDir?: string }): string {
  const file = join(folder, 'xronox.config.json');
  const data = o.dataDir === undefined ? '' : `${o.dataDir}/`;
  writeFileSync(
    file,
    JSON.stringify({
      dbConnections: { local: { sqlitePath: `${data}xronox.sqlite` } },
      localStorage: { basePath: `${data}blobs`, enabled: true },
      databases: { runtime: { tenantDatabases: [{ tenantId: o.tenant, dbConnRef: 'local', dbName: o.dbName }] } },
      api: { keys: [{ id: o.keyId, sha256: hashApiKey(o.key), role: 'write', tenants: [o.tenant] }] },
    }),
  );
  return file;
}
