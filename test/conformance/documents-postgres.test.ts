import { afterAll, describe, it } from 'vitest';
import { PostgresDocumentStore } from '../../core/adapters/postgres/postgres-document-store.js';
import { dropSchemas, POSTGRES_URI, postgresAvailability, randomSchemaPrefix } from '../support/postgres-docs.js';
import { documentStoreConformance } from './document-store.suite.js';

// The PostgreSQL document store through the same suite as SQLite and MongoDB, against a real
// server. Every schema it makes carries this file's random prefix, and only those are dropped.
const availability = await postgresAvailability();

if ('skip' in availability) {
  console.warn(`[xronox] SKIPPED the PostgreSQL document store suite: ${availability.skip}.`);
  describe.skip(`PostgreSQL document store conformance: ${availability.skip}`, () => {
    it('needs a PostgreSQL server', () => undefined);
  });
} else {
  const schemaPrefix = randomSchemaPrefix();
  let others = 0;
  afterAll(async () => {
    await dropSchemas(schemaPrefix);
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
}
