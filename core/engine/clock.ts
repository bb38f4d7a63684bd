import { ValidationError } from '../errors.js';

/**
 * The timestamp of a record's next version: now, but always strictly after the previous version
 * of the same record. Strictly increasing times make `getAsOf(t)` unambiguous at every recorded
 * `t`. A record written more than once per millisecond runs ahead of the wall clock by the
 * excess, and falls back in step as soon as writes slow down.
 */
export function nextVersionTime(previous: string | null, now: number = Date.now()): string {
  if (previous === null) return new Date(now).toISOString();
  const prev = Date.parse(previous);
  return new Date(Math.max(now, prev + 1)).toISOString();
}

const MIN_TIME = Date.parse('0001-01-01T00:00:00.000Z');
const MAX_TIME = Date.parse('9999-12-31T23:59:59.999Z');

/** Parses a caller's point in time (ISO-8601 string or Date) into the canonical ISO form. */
export function parseInstant(value: unknown, label = 'at'): string {
  const time =
    value instanceof Date ? value.getTime() : typeof value === 'string' && ISO_LIKE.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(time) || time < MIN_TIME || time > MAX_TIME) {
    throw new ValidationError(`${label} must be an ISO-8601 time such as 2024-01-01T00:00:00Z`, { path: label });
  }
  return new Date(time).toISOString();
}

const ISO_LIKE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/;
