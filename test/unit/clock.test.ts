import { describe, expect, it } from 'vitest';
import { nextVersionTime, parseInstant } from '../../core/engine/clock.js';
import { ValidationError } from '../../core/errors.js';

describe('nextVersionTime', () => {
  it('uses now for a record without a previous version', () => {
    expect(nextVersionTime(null, Date.parse('2024-01-01T00:00:00.000Z'))).toBe('2024-01-01T00:00:00.000Z');
  });

  it('defaults now to the wall clock', () => {
    const before = Date.now();
    const t = Date.parse(nextVersionTime(null));
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Date.now());
  });

  it('is strictly increasing over many calls with a fixed now', () => {
    const now = Date.parse('2024-06-01T12:00:00.000Z');
    let previous: string | null = null;
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const next = nextVersionTime(previous, now);
      if (previous !== null) expect(Date.parse(next)).toBe(Date.parse(previous) + 1);
      expect(seen.has(next)).toBe(false);
      seen.add(next);
      previous = next;
    }
    // ISO strings of equal length sort like their times.
    const sorted = [...seen].sort();
    expect(sorted).toEqual([...seen]);
    expect(previous).toBe('2024-06-01T12:00:04.999Z');
  });

  it('stays ahead of a clock that goes backwards', () => {
    const prev = '2024-06-01T12:00:00.000Z';
    expect(nextVersionTime(prev, Date.parse('2024-05-31T00:00:00.000Z'))).toBe('2024-06-01T12:00:00.001Z');
  });

  it('follows the wall clock when it is ahead of the previous version', () => {
    const prev = '2024-06-01T12:00:00.000Z';
    const now = Date.parse('2024-06-01T12:00:05.123Z');
    expect(nextVersionTime(prev, now)).toBe('2024-06-01T12:00:05.123Z');
    // After running ahead in a burst, it falls back in step as soon as the clock catches up.
    let t: string = prev;
    for (let i = 0; i < 10; i++) t = nextVersionTime(t, Date.parse(prev));
    expect(t).toBe('2024-06-01T12:00:00.010Z');
    expect(nextVersionTime(t, Date.parse('2024-06-01T12:00:01.000Z'))).toBe('2024-06-01T12:00:01.000Z');
  });

  it('reads a previous time written with an offset', () => {
    expect(nextVersionTime('2024-06-01T14:00:00+02:00', Date.parse('2024-06-01T00:00:00Z'))).toBe('2024-06-01T12:00:00.001Z');
  });
});

describe('parseInstant', () => {
  it.each([
    ['2024-01-02T03:04:05.678Z', '2024-01-02T03:04:05.678Z'],
    ['2024-01-02T03:04:05Z', '2024-01-02T03:04:05.000Z'],
    ['2024-01-02T03:04Z', '2024-01-02T03:04:00.000Z'],
    ['2024-01-02T03:04:05+02:00', '2024-01-02T01:04:05.000Z'],
    ['2024-01-02T03:04:05.5-05:30', '2024-01-02T08:34:05.500Z'],
    ['2024-01-02T00:00:00+14:00', '2024-01-01T10:00:00.000Z'],
    ['2024-01-02', '2024-01-02T00:00:00.000Z'],
    ['0001-01-01T00:00:00Z', '0001-01-01T00:00:00.000Z'],
    ['9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999Z'],
    ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00.000Z'],
  ])('accepts %s', (input, expected) => {
    expect(parseInstant(input)).toBe(expected);
  });

  it('accepts Date objects', () => {
    expect(parseInstant(new Date('2024-01-02T03:04:05.678Z'))).toBe('2024-01-02T03:04:05.678Z');
    expect(parseInstant(new Date(0))).toBe('1970-01-01T00:00:00.000Z');
  });

  it.each([
    ['an empty string', ''],
    ['garbage', 'yesterday'],
    ['a date with words', 'Tue, 02 Jan 2024 03:04:05 GMT'],
    ['a slash date', '2024/01/02'],
    ['an impossible month', '2024-13-01'],
    ['an impossible hour', '2024-01-01T25:00:00Z'],
    ['a year beyond 9999', '10000-01-01T00:00:00Z'],
    ['an extended year', '+010000-01-01T00:00:00Z'],
    ['a time past the last instant', '9999-12-31T23:59:59-01:00'],
    ['leading space', ' 2024-01-02'],
    ['trailing text', '2024-01-02T00:00:00Zjunk'],
    ['a number', 1704067200000],
    ['a numeric string', '1704067200000'],
    ['null', null],
    ['undefined', undefined],
    ['an object', { at: '2024-01-02' }],
    ['an invalid Date', new Date(Number.NaN)],
    ['a Date beyond 9999', new Date(Date.parse('9999-12-31T23:59:59.999Z') + 1)],
  ])('rejects %s', (_label, input) => {
    try {
      parseInstant(input, 'asOf');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).path).toBe('asOf');
      expect((err as ValidationError).message).toMatch(/^asOf must be an ISO-8601 time/);
    }
  });
});
