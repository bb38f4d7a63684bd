import { describe, expect, it } from 'vitest';
import { clockCatchUpMs, MAX_CLOCK_WAIT_MS, nextVersionTime, nowInstant, parseAsOf, parseInstant, untilClockReaches } from '../../core/foundation/clock.js';
import { ValidationError } from '../../core/errors.js';

describe('nextVersionTime', () => {
  it('uses now, to the microsecond, for a record without a previous version', () => {
    expect(nextVersionTime(null, Date.parse('2024-01-01T00:00:00.000Z'))).toBe('2024-01-01T00:00:00.000000Z');
  });

  it('defaults now to the wall clock', () => {
    const before = Date.now();
    const t = Date.parse(nextVersionTime(null));
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Date.now());
  });

  it('is strictly increasing, one microsecond at a time, over many calls in one millisecond', () => {
    const now = Date.parse('2024-06-01T12:00:00.000Z');
    let previous: string | null = null;
    const seen: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const next = nextVersionTime(previous, now);
      if (previous !== null) expect(next > previous).toBe(true);
      seen.push(next);
      previous = next;
    }
    expect(new Set(seen).size).toBe(5000);
    // Fixed width: they sort as strings exactly as in time.
    expect([...seen].sort()).toEqual(seen);
    // 5,000 writes in one millisecond run only 4.999 ms ahead of the clock.
    expect(previous).toBe('2024-06-01T12:00:00.004999Z');
  });

  it('stays after the previous version when the clock goes backwards', () => {
    expect(nextVersionTime('2024-06-01T12:00:00.000000Z', Date.parse('2024-05-31T00:00:00.000Z'))).toBe('2024-06-01T12:00:00.000001Z');
  });

  it('follows the wall clock when it is ahead of the previous version', () => {
    expect(nextVersionTime('2024-06-01T12:00:00.000000Z', Date.parse('2024-06-01T12:00:05.123Z'))).toBe('2024-06-01T12:00:05.123000Z');
    // A millisecond later than a burst of writes, the clock is ahead again.
    let t = '2024-06-01T12:00:00.000000Z';
    for (let i = 0; i < 10; i++) t = nextVersionTime(t, Date.parse('2024-06-01T12:00:00.000Z'));
    expect(t).toBe('2024-06-01T12:00:00.000010Z');
    expect(nextVersionTime(t, Date.parse('2024-06-01T12:00:00.001Z'))).toBe('2024-06-01T12:00:00.001000Z');
  });

  it('reads a previous time written with an offset or with milliseconds only', () => {
    expect(nextVersionTime('2024-06-01T14:00:00+02:00', Date.parse('2024-06-01T00:00:00Z'))).toBe('2024-06-01T12:00:00.000001Z');
    expect(nextVersionTime('2024-06-01T12:00:00.999Z', Date.parse('2024-06-01T00:00:00Z'))).toBe('2024-06-01T12:00:00.999001Z');
  });
});

describe('parseInstant', () => {
  it.each([
    ['2024-01-02T03:04:05.678Z', '2024-01-02T03:04:05.678000Z'],
    ['2024-01-02T03:04:05.678901Z', '2024-01-02T03:04:05.678901Z'],
    ['2024-01-02T03:04:05.678901234Z', '2024-01-02T03:04:05.678901Z'],
    ['2024-01-02T03:04:05Z', '2024-01-02T03:04:05.000000Z'],
    ['2024-01-02T03:04Z', '2024-01-02T03:04:00.000000Z'],
    ['2024-01-02T03:04:05+02:00', '2024-01-02T01:04:05.000000Z'],
    ['2024-01-02T03:04:05.5-05:30', '2024-01-02T08:34:05.500000Z'],
    ['2024-01-02T00:00:00+14:00', '2024-01-01T10:00:00.000000Z'],
    ['2024-01-02', '2024-01-02T00:00:00.000000Z'],
    ['0001-01-01T00:00:00Z', '0001-01-01T00:00:00.000000Z'],
    ['9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999000Z'],
    ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00.000000Z'],
  ])('accepts %s', (input, expected) => {
    expect(parseInstant(input)).toBe(expected);
  });

  it('accepts Date objects', () => {
    expect(parseInstant(new Date('2024-01-02T03:04:05.678Z'))).toBe('2024-01-02T03:04:05.678000Z');
    expect(parseInstant(new Date(0))).toBe('1970-01-01T00:00:00.000000Z');
  });

  it.each([
    ['an empty string', ''],
    ['garbage', 'yesterday'],
    ['a date with words', 'Tue, 02 Jan 2024 03:04:05 GMT'],
    ['a slash date', '2024/01/02'],
    ['an impossible month', '2024-13-01'],
    ['an impossible day', '2024-02-31'],
    ['February 29 of a common year', '2023-02-29T00:00:00Z'],
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

describe('parseAsOf', () => {
  it.each([
    ['2024-01-02T03:04:05.678Z', '2024-01-02T03:04:05.678999Z'],
    ['2024-01-02T03:04:05.67Z', '2024-01-02T03:04:05.670999Z'],
    ['2024-01-02T03:04:05Z', '2024-01-02T03:04:05.000999Z'],
    ['2024-01-02', '2024-01-02T00:00:00.000999Z'],
    ['2024-01-02T03:04:05.6789Z', '2024-01-02T03:04:05.678900Z'],
    ['2024-01-02T03:04:05.678901Z', '2024-01-02T03:04:05.678901Z'],
    ['2024-01-02T03:04:05.678901234Z', '2024-01-02T03:04:05.678901Z'],
    ['2024-01-02T03:04:05.678+01:00', '2024-01-02T02:04:05.678999Z'],
    ['9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999999Z'],
  ])('reads %s as %s', (input, expected) => {
    expect(parseAsOf(input)).toBe(expected);
  });

  it('reads a Date as the end of its millisecond, after every version stamped within it', () => {
    expect(parseAsOf(new Date('2024-01-02T03:04:05.678Z'))).toBe('2024-01-02T03:04:05.678999Z');
    const ms = Date.parse('2024-01-02T03:04:05.678Z');
    let stamp: string | null = null;
    for (let i = 0; i < 1000; i++) {
      stamp = nextVersionTime(stamp, ms);
      expect(stamp <= parseAsOf(new Date(ms))).toBe(true);
    }
  });

  it('refuses what parseInstant refuses, naming the label', () => {
    expect(() => parseAsOf('yesterday', 'to')).toThrow(/^to must be an ISO-8601 time/);
    expect(() => parseAsOf(new Date(Number.NaN))).toThrow(ValidationError);
  });
});

describe('nowInstant', () => {
  it('is the end of the current millisecond', () => {
    const before = Date.now();
    const now = nowInstant();
    expect(now.endsWith('999Z')).toBe(true);
    expect(Date.parse(now)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(now)).toBeLessThanOrEqual(Date.now());
    expect(nextVersionTime(null) <= nowInstant()).toBe(true);
  });
});

describe('clockCatchUpMs', () => {
  const ms = Date.parse('2024-06-01T12:00:00.000Z');
  it('is zero while the stamp is within the clock\'s millisecond or behind it', () => {
    expect(clockCatchUpMs('2024-06-01T12:00:00.000999Z', ms)).toBe(0);
    expect(clockCatchUpMs('2024-06-01T11:59:59.999999Z', ms)).toBe(0);
  });
  it('is the distance to the stamp\'s millisecond when the stamp ran ahead, capped', () => {
    expect(clockCatchUpMs('2024-06-01T12:00:00.001000Z', ms)).toBe(1);
    expect(clockCatchUpMs('2024-06-01T12:00:00.250500Z', ms)).toBe(250);
    expect(clockCatchUpMs('2024-06-01T12:05:00.000000Z', ms)).toBe(MAX_CLOCK_WAIT_MS);
  });
  it('untilClockReaches resolves once the clock is in the stamp\'s millisecond', async () => {
    const target = nextVersionTime(null, Date.now() + 30);
    await untilClockReaches(target);
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(target));
  });
});
