import { describe, expect, it } from 'vitest';
import { SCHEMAS_PER_STATEMENT, schemaGroups } from '../../core/adapters/postgres/postgres-schema.js';

/**
 * Reads across every database of a PostgreSQL store (listing them, which hold outbox entries or
 * dead letters) bind a parameter per schema; a statement may bind at most 65,535. They go in
 * groups, each within that bound, together covering every schema once, in order.
 */
describe('PostgreSQL: reads across schemas go in bounded groups', () => {
  it('covers every schema once, in order, in groups no larger than the bound', () => {
    for (const n of [0, 1, SCHEMAS_PER_STATEMENT - 1, SCHEMAS_PER_STATEMENT, SCHEMAS_PER_STATEMENT + 1, 70_000]) {
      const schemas = Array.from({ length: n }, (_, i) => `s${i}`);
      const groups = schemaGroups(schemas);
      expect(groups.flat()).toEqual(schemas);
      expect(groups.every((g) => g.length > 0 && g.length <= SCHEMAS_PER_STATEMENT)).toBe(true);
      expect(groups.length).toBe(Math.ceil(n / SCHEMAS_PER_STATEMENT));
    }
    // One parameter per schema: a group stays far below PostgreSQL's limit.
    expect(SCHEMAS_PER_STATEMENT).toBeLessThan(65_535);
  });
});
