import { afterAll } from 'vitest';
import { PostgresIndexDriver } from '../../core/adapters/postgres/postgres-index-driver.js';
import { IndexRuntime } from '../../core/store/index-runtime.js';
import { describePostgres, dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix } from '../support/postgres.js';
import { indexStoreConformance } from './index-store.suite.js';

const availability = await postgresAvailability();
const prefix = randomSchemaPrefix();

describePostgres('PostgreSQL index driver', availability, () => {
  afterAll(async () => {
    await dropSchemas(prefix);
  });

  indexStoreConformance('postgres', async () => {
    const store = IndexRuntime.of(new PostgresIndexDriver({ connectionString: POSTGRES_URI, schemaPrefix: prefix, pool: { max: 4 } }));
    return { store, cleanup: () => store.close() };
  });
});
