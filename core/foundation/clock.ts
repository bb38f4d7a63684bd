import { ValidationError } from '../errors.js';

/**
 * Version times are ISO-8601 UTC strings with microseconds (`2024-01-02T03:04:05.678901Z`):
 * fixed width, so they sort as strings exactly as they sort in time.
 *
 * A record's next version is stamped now, but always at least one microsecond after its previous
 * version, so `getAsOf(t)` is unambiguous at every recorded `t`. Two versions of one record in one
 * millisecond are therefore stamped `…488000Z` and `…488001Z`, while JavaScript's clock (`Date`)
 * only says `…488Z`: that is why an as-of point given to the millisecond covers its whole
 * millisecond (`parseAsOf`), and why a write whose stamp ran past the clock's millisecond waits
 * for the clock before it is acknowledged (`clockCatchUpMs`).
 */
export function nextVersionTime(previous: string | null, nowMs: number = Date.now()): string {
  const now = nowMs * 1000;
  return formatMicros(previous === null ? now : Math.max(now, toMicros(previous) + 1));
}

/** "As of now": the end of the clock's current millisecond, which covers every acknowledged write. */
export function nowInstant(): string {
  return formatMicros(Date.now() * 1000 + 999);
}

/** The longest a write waits for the clock to reach its stamp (see `clockCatchUpMs`). */
export const MAX_CLOCK_WAIT_MS = 1000;

/**
 * How long to wait before acknowledging a write stamped `at`, so that any `Date` taken after the
 * acknowledgement is in the stamp's millisecond or later (and so "as of now" sees the write).
 * Zero unless the stamp ran ahead of the clock: more than a thousand versions of one record in one
 * millisecond, or a clock that stepped back behind the record's latest version. Capped at
 * `MAX_CLOCK_WAIT_MS`, so a clock stepped back further delays no write by more than that.
 */
export function clockCatchUpMs(at: string, nowMs: number = Date.now()): number {
  const ahead = Math.floor(toMicros(at) / 1000) - nowMs;
  return ahead > 0 ? Math.min(ahead, MAX_CLOCK_WAIT_MS) : 0;
}

const MIN_TIME = Date.parse('0001-01-01T00:00:00.000Z');
const MAX_TIME = Date.parse('9999-12-31T23:59:59.999Z');
const ISO_LIKE = /^(\d{4})-(\d{2})-(\d{2})(T\d{2}:\d{2}(:\d{2}(\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?$/;

/**
 * Parses a caller's "as of" point (an inclusive upper bound in time) into the canonical form. A
 * point given to the millisecond or coarser (a `Date`, or text with at most three fraction
 * digits) means the end of that millisecond: `Date` cannot name a microsecond, and a version
 * stamped `…488001Z` was written within the millisecond `…488Z` names. Text with microseconds
 * (a version's own `at`) is exact.
 */
export function parseAsOf(value: unknown, label = 'at'): string {
  const exact = parseInstant(value, label);
  const fraction = typeof value === 'string' ? (/\.(\d+)/.exec(value)?.[1] ?? '') : '';
  return fraction.length > 3 ? exact : `${exact.slice(0, -4)}999Z`;
}

/**
 * Parses a caller's point in time (ISO-8601 string or Date) into the canonical form, exactly: a
 * point given to the millisecond is its first microsecond (a lower bound, or a page token's own
 * time). Upper bounds of as-of reads use `parseAsOf`.
 */
export function parseInstant(value: unknown, label = 'at'): string {
  const invalid = () => new ValidationError(`${label} must be an ISO-8601 time such as 2024-01-01T00:00:00Z`, { path: label });
  if (value instanceof Date) {
    const ms = value.getTime();
    if (Number.isNaN(ms) || ms < MIN_TIME || ms > MAX_TIME) throw invalid();
    return formatMicros(ms * 1000);
  }
  const m = typeof value === 'string' ? ISO_LIKE.exec(value) : null;
  if (!m) throw invalid();
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // Date.parse rolls 2024-02-31 over into March; an impossible date is an error instead.
  if (month < 1 || month > 12 || day < 1 || day > new Date(Date.UTC(year, month, 0)).getUTCDate()) throw invalid();
  // Date.parse reads 24:00 as the next day's midnight; ISO 8601's own reading of it is as odd.
  if (m[4] !== undefined && Number(m[4].slice(1, 3)) > 23) throw invalid();
  const micros = toMicros(value as string);
  if (Number.isNaN(micros) || micros < MIN_TIME * 1000 || micros > MAX_TIME * 1000 + 999) throw invalid();
  return formatMicros(micros);
}

/** Microseconds since the epoch of an ISO-8601 time; digits past the microsecond are dropped. */
function toMicros(iso: string): number {
  const ms = Date.parse(iso);
  const fraction = /\.(\d+)/.exec(iso)?.[1] ?? '';
  return ms * 1000 + Number(fraction.slice(3, 6).padEnd(3, '0'));
}

function formatMicros(micros: number): string {
  const ms = Math.floor(micros / 1000);
  return `${new Date(ms).toISOString().slice(0, -1)}${String(micros - ms * 1000).padStart(3, '0')}Z`;
}

/** Resolves once the clock has reached the millisecond of `at` (at most `MAX_CLOCK_WAIT_MS`; see `clockCatchUpMs`). */
export async function untilClockReaches(at: string): Promise<void> {
  const deadline = Date.now() + MAX_CLOCK_WAIT_MS;
  while (clockCatchUpMs(at) > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, clockCatchUpMs(at)));
  }
}
