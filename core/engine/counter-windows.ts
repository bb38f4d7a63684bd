import type { CounterWindowBounds, CounterWindowGranularity } from '../contracts/index-store.js';

/**
 * Counter windows (`retention.counters`): besides their totals, counter deltas are added to the
 * window of each configured granularity that contains the write time, in UTC. Keys sort as
 * strings in time order: `day:YYYY-MM-DD`, `week:YYYY-Www` (ISO 8601 week and week-year),
 * `month:YYYY-MM`.
 */

export const COUNTER_WINDOW_GRANULARITIES: readonly CounterWindowGranularity[] = ['day', 'week', 'month'];

/** `retention.counters` as configured. */
export interface CounterRetention {
  days?: number | undefined;
  weeks?: number | undefined;
  months?: number | undefined;
}

const POLICY_FIELD = { day: 'days', week: 'weeks', month: 'months' } as const;

/** The granularities a policy keeps windows of, in `day`, `week`, `month` order. */
export function windowGranularities(policy: CounterRetention | undefined): CounterWindowGranularity[] {
  return COUNTER_WINDOW_GRANULARITIES.filter((g) => policy?.[POLICY_FIELD[g]] !== undefined);
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** The window key of one granularity containing the instant `ms` (epoch milliseconds, UTC). */
export function windowKey(granularity: CounterWindowGranularity, ms: number): string {
  const d = new Date(ms);
  if (granularity === 'day') return `day:${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  if (granularity === 'month') return `month:${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}`;
  const { year, week } = isoWeek(ms);
  return `week:${pad(year, 4)}-W${pad(week)}`;
}

/** The window keys of every granularity the policy keeps, for a write at `ms`. */
export function windowKeysAt(granularities: readonly CounterWindowGranularity[], ms: number): string[] {
  return granularities.map((g) => windowKey(g, ms));
}

/** ISO 8601 week-year and week of the UTC day containing `ms` (weeks start on Monday; week 1 holds the year's first Thursday). */
export function isoWeek(ms: number): { year: number; week: number } {
  const d = new Date(ms);
  const day = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  const weekday = (new Date(day).getUTCDay() + 6) % 7; // Monday 0 .. Sunday 6
  const thursday = new Date(day + (3 - weekday) * 86_400_000);
  const year = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * 86_400_000)) + 1;
  return { year, week };
}

/**
 * The lowest window key to keep per granularity when the policy keeps the last N windows
 * including the current one at `nowMs`: N days → today and the N − 1 days before it, and
 * likewise for weeks and months. Granularities the policy does not set are absent.
 */
export function retentionBounds(policy: CounterRetention | undefined, nowMs: number): CounterWindowBounds {
  const out: { -readonly [G in CounterWindowGranularity]?: string } = {};
  const now = new Date(nowMs);
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  if (policy?.days !== undefined) out.day = windowKey('day', today - (policy.days - 1) * 86_400_000);
  if (policy?.weeks !== undefined) out.week = windowKey('week', today - (policy.weeks - 1) * 7 * 86_400_000);
  if (policy?.months !== undefined) out.month = windowKey('month', Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - (policy.months - 1), 1));
  return out;
}
