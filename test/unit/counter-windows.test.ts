import { describe, expect, it } from 'vitest';
import { isoWeek, retentionBounds, windowGranularities, windowKey, windowKeysAt } from '../../core/engine/counter-windows.js';

const t = (iso: string) => Date.parse(iso);

describe('counter window keys', () => {
  it('day and month keys are the UTC calendar day and month', () => {
    expect(windowKey('day', t('2026-03-01T00:00:00Z'))).toBe('day:2026-03-01');
    expect(windowKey('day', t('2026-02-28T23:59:59.999Z'))).toBe('day:2026-02-28');
    expect(windowKey('day', t('2026-03-01T00:30:00+01:00'))).toBe('day:2026-02-28');
    expect(windowKey('month', t('2026-12-31T23:59:59Z'))).toBe('month:2026-12');
    expect(windowKey('month', t('2027-01-01T00:00:00Z'))).toBe('month:2027-01');
  });

  it('week keys follow ISO 8601 week-years at the year edges', () => {
    // 2026-12-31 is a Thursday: week 53 of 2026; 2027-01-01 (Friday) still belongs to it.
    expect(windowKey('week', t('2026-12-31T12:00:00Z'))).toBe('week:2026-W53');
    expect(windowKey('week', t('2027-01-01T12:00:00Z'))).toBe('week:2026-W53');
    expect(windowKey('week', t('2027-01-03T23:59:59Z'))).toBe('week:2026-W53');
    expect(windowKey('week', t('2027-01-04T00:00:00Z'))).toBe('week:2027-W01');
    // 2020-12-31 (Thursday) is in 2020-W53; 2021-01-03 (Sunday) too.
    expect(windowKey('week', t('2020-12-31T00:00:00Z'))).toBe('week:2020-W53');
    expect(windowKey('week', t('2021-01-03T00:00:00Z'))).toBe('week:2020-W53');
    // 2024-12-30 (Monday) already opens 2025-W01.
    expect(windowKey('week', t('2024-12-30T00:00:00Z'))).toBe('week:2025-W01');
    expect(windowKey('week', t('2024-12-29T23:59:59Z'))).toBe('week:2024-W52');
    expect(windowKey('week', t('2026-01-01T00:00:00Z'))).toBe('week:2026-W01');
    expect(isoWeek(t('2026-06-15T00:00:00Z'))).toEqual({ year: 2026, week: 25 });
  });

  it('every day of several years gets the week of its Thursday, and weeks go 1..52 or 53 in order', () => {
    let previous = '';
    for (let ms = t('2019-12-30T00:00:00Z'); ms < t('2030-01-01T00:00:00Z'); ms += 86_400_000) {
      const key = windowKey('week', ms);
      expect(key >= previous).toBe(true);
      previous = key;
      const weekday = (new Date(ms).getUTCDay() + 6) % 7;
      const thursday = new Date(ms + (3 - weekday) * 86_400_000);
      expect(key.slice(5, 9)).toBe(String(thursday.getUTCFullYear()));
    }
  });

  it('the policy picks the granularities, and the keys of a write follow them', () => {
    expect(windowGranularities(undefined)).toEqual([]);
    expect(windowGranularities({ months: 3, days: 30 })).toEqual(['day', 'month']);
    expect(windowKeysAt(['day', 'week', 'month'], t('2026-01-01T10:00:00Z'))).toEqual(['day:2026-01-01', 'week:2026-W01', 'month:2026-01']);
  });

  it('retention bounds keep the last N windows including the current one', () => {
    const now = t('2026-03-04T15:00:00Z'); // a Wednesday, ISO week 10
    expect(retentionBounds(undefined, now)).toEqual({});
    expect(retentionBounds({ days: 1, weeks: 1, months: 1 }, now)).toEqual({ day: 'day:2026-03-04', week: 'week:2026-W10', month: 'month:2026-03' });
    expect(retentionBounds({ days: 30 }, now)).toEqual({ day: 'day:2026-02-03' });
    expect(retentionBounds({ weeks: 11 }, now)).toEqual({ week: 'week:2025-W52' });
    expect(retentionBounds({ months: 14 }, now)).toEqual({ month: 'month:2025-02' });
  });
});
