import { ValidationError } from '../errors.js';

/**
 * Version times are ISO-8601 UTC strings with microseconds (`2024-01-02T03:04:05.678901Z`):
 * fixed width, so they sort as strings exactly as they sort in time.
 *
 * A record's next version is stamped now, but always at least one microsecond after its previous
 * version, so `getAsOf(t)` is unambiguous at every recorded `t`. Only a record written more than
 * once per microsecond would run ahead of the wall clock, so "as of now" never misses an
 * acknowledged write.
 */
export function nextVersionTime(previous: string | null, nowMs: number = Date.now()): string {
  const now = nowMs * 1000;
  return formatMicros(previous === null ? now : Math.max(now, toMicros(previous) + 1));
}

/** The current time in the canonical version-time format. */
export function nowInstant(): string {
  return formatMicros(Date.now() * 1000);
}

const MIN_TIME = Date.parse('0001-01-01T00:00:00.000Z');
const MAX_TIME = Date.parse('9999-12-31T23:59:59.999Z');
const ISO_LIKE = /^(\d{4})-(\d{2})-(\d{2})(T\d{2}:\d{2}(:\d{2}(\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?$/;

/** Parses a caller's point in time (ISO-8601 string or Date) into the canonical form. */
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
