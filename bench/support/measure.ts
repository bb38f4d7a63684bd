/** Timing, statistics and table helpers for the benchmarks. Nothing here touches a store. */

/** Nanoseconds from a monotonic clock. */
export function now(): bigint {
  return process.hrtime.bigint();
}

export function secondsSince(start: bigint, end: bigint = now()): number {
  return Number(end - start) / 1e9;
}

/** Runs `op(i)` for i in [0, total) with `workers` operations in flight; each worker awaits its own. */
export async function inFlight(total: number, workers: number, op: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      await op(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(workers, total) }, worker));
}

export interface Throughput {
  ops: number;
  seconds: number;
  opsPerSecond: number;
}

/** Times `total` operations, `workers` in flight (1 = sequential awaits). */
export async function throughput(total: number, workers: number, op: (i: number) => Promise<unknown>): Promise<Throughput> {
  const start = now();
  await inFlight(total, workers, op);
  return rate(total, secondsSince(start));
}

export function rate(ops: number, seconds: number): Throughput {
  return { ops, seconds, opsPerSecond: ops / seconds };
}

export interface Latency {
  samples: number;
  p50: number;
  p99: number;
  mean: number;
}

/** Calls `op(i)` `samples` times, one at a time, and returns per-call latency in microseconds. */
export async function latency(samples: number, op: (i: number) => Promise<unknown>): Promise<Latency> {
  const [result] = await latencyInterleaved(samples, [op]);
  return result!;
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
}

/** `count` instants spread uniformly at random over [from, to], as ISO-8601 strings. */
export function randomInstants(from: string, to: string, count: number): string[] {
  const a = Date.parse(from);
  const b = Date.parse(to);
  return Array.from({ length: count }, () => new Date(a + Math.floor(Math.random() * (b - a + 1))).toISOString());
}

export function fmtRate(t: Throughput): string {
  return `${fmtNumber(t.opsPerSecond)} ops/s`;
}

export function fmtLatency(l: Latency): string {
  return `${fmtNumber(l.p50)} / ${fmtNumber(l.p99)} µs`;
}

export function fmtNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (n >= 100) return Math.round(n).toLocaleString('en-US');
  if (n >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

export function fmtRatio(engine: number, baseline: number): string {
  return `${(engine / baseline).toFixed(2)}×`;
}

/** A Markdown table, so the output can be pasted into BENCHMARKS.md unchanged. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/**
 * Latency of several operations measured in alternation (op A, op B, op C, op A, ...), so that
 * load from other processes on a shared machine falls on all of them alike.
 */
export async function latencyInterleaved(samples: number, ops: ReadonlyArray<(i: number) => Promise<unknown>>): Promise<Latency[]> {
  const times = ops.map(() => new Float64Array(samples));
  for (let i = 0; i < samples; i++) {
    for (let k = 0; k < ops.length; k++) {
      const start = now();
      await ops[k]!(i);
      times[k]![i] = Number(now() - start) / 1e3;
    }
  }
  return times.map((t) => summarise(t));
}

/** p50, p99 and mean of latencies in microseconds (sorts `times` in place). */
export function summarise(times: Float64Array): Latency {
  times.sort();
  let sum = 0;
  for (const t of times) sum += t;
  return { samples: times.length, p50: quantile(times, 0.5), p99: quantile(times, 0.99), mean: sum / times.length };
}

/** A progress log: each line starts with the seconds since `start` (and the process's RSS with `rss`). */
export function progressLog(start: bigint, options: { rss?: boolean } = {}): (message: string) => void {
  return (message) => {
    const rss = options.rss ? `, rss ${`${(process.memoryUsage.rss() / 2 ** 20).toFixed(0)} MiB`.padStart(8)}` : '';
    console.log(`[${secondsSince(start).toFixed(1).padStart(6)} s${rss}] ${message}`);
  };
}

/** The median of some numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The lines every benchmark ends with; a background error fails the run (exit code 1). */
export function finishRun(start: bigint, backgroundErrors: readonly unknown[], loadAverage: string): void {
  console.log(`Background errors: ${backgroundErrors.length}`);
  console.log(`Load average at end: ${loadAverage}`);
  console.log(`Total run time: ${secondsSince(start).toFixed(1)} s`);
  if (backgroundErrors.length > 0) {
    console.error(backgroundErrors[0]);
    process.exitCode = 1;
  }
}
