import { afterAll } from 'vitest';
import { PostgresDocumentStore } from '../../core/adapters/postgres/postgres-document-store.js';
import { describePostgres, dropDocumentSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix } from '../support/postgres-docs.js';
import { documentStoreConformance } from './document-store.suite.js';

// The PostgreSQL document store through the same suite as SQLite and MongoDB, against a real
// server. Every schema it makes carries this file's random prefix, and only those are dropped.
const availability = await postgresAvailability();
const schemaPrefix = randomSchemaPrefix();

describePostgres('PostgreSQL document store', availability, () => {
  let others = 0;
  afterAll(async () => {
    await dropDocumentSchemas(schemaPrefix);
  });

  documentStoreConformance('postgres', async () => {
    const store = new PostgresDocumentStore({ uri: POSTGRES_URI, schemaPrefix });
    return {
      store,
      // A pool of its own (its own connections), as another process would have.
      openAnother: async () => new PostgresDocumentStore({ uri: POSTGRES_URI, schemaPrefix, pool: { applicationName: `xronox-test-${++others}` } }),
      cleanup: () => store.close(),
    };
  });
});
