import type { Fault, ProxiedRequest } from '../../support/fault-proxy.js';
import { Gen } from '../../support/random.js';

/** `XRONOX_RELIABILITY_SCALE` (default 1): the long runs multiply their work by it. */
export function reliabilityScale(): number {
  const raw = process.env['XRONOX_RELIABILITY_SCALE'];
  const scale = raw === undefined || raw === '' ? 1 : Number(raw);
  if (!Number.isFinite(scale) || scale <= 0) throw new Error(`XRONOX_RELIABILITY_SCALE must be a positive number, got ${JSON.stringify(raw)}`);
  return scale;
}

/** The seed of a reliability test: `XRONOX_RELIABILITY_SEED` when set, else the test's default. */
export function reliabilitySeed(fallback: number): number {
  const raw = process.env['XRONOX_RELIABILITY_SEED'];
  return raw === undefined || raw === '' ? fallback : Number(raw);
}

export interface FaultScheduleOptions {
  /** Chance that a request gets a fault while the schedule is on. */
  rate: number;
  /** The client's request timeout: `slow` faults are drawn on both sides of it. */
  requestTimeoutMs: number;
}

/**
 * A seeded fault schedule for the fault proxy: while `on`, each request draws whether it gets a
 * fault and which. Requests arrive in an order the OS decides (concurrent writers, the background
 * sync, jobs), so a seed fixes the sequence of draws, not which request gets which.
 */
export class FaultSchedule {
  on = false;
  readonly #gen: Gen;
  readonly #options: FaultScheduleOptions;

  constructor(seed: number, options: FaultScheduleOptions) {
    this.#gen = new Gen(seed);
    this.#options = options;
  }

  readonly decide = (_req: ProxiedRequest): Fault | null => {
    if (!this.on || !this.#gen.chance(this.#options.rate)) return null;
    const g = this.#gen;
    const roll = g.float();
    if (roll < 0.2) return { kind: 'error', status: 503, code: 'SlowDown' };
    if (roll < 0.38) return { kind: 'error', status: 500, code: 'InternalError' };
    if (roll < 0.5) return { kind: 'ghost' };
    if (roll < 0.62) return { kind: 'refuse' };
    if (roll < 0.75) return { kind: 'reset' };
    // Slow: mostly a little, sometimes past the client's timeout (it gives up and retries).
    const past = g.chance(0.3);
    return { kind: 'slow', delayMs: past ? this.#options.requestTimeoutMs + 50 + g.int(300) : 20 + g.int(250) };
  };
}
