import type { Data } from '../../core/engine/documents.js';
import { settle } from './machine.js';
import { type Latency, now, secondsSince, summarise } from './measure.js';
import { makeSizedData } from './sized-document.js';
import { type ComparedStore, microsToIso } from './sql-versioned.js';

/**
 * Several clients at once against each side of a comparison (bench/compare.bench.ts): each client
 * awaits its own updates, on records no other client writes (so no update meets a version
 * conflict), then as many clients read `getAsOf` at once. The sides take turns in rounds whose
 * order rotates, never at the same time, so each has the machine and the server to itself.
 */

export interface ConcurrentOptions {
  clients: number;
  /** Records each client owns and updates in turn. */
  recordsPerClient: number;
  /** Timed updates per side (after `warmup` untimed ones), all clients together. */
  updates: number;
  warmup: number;
  rounds: number;
  /** Timed getAsOf calls per side (after `readWarmup` untimed ones), all clients together. */
  queries: number;
  readWarmup: number;
  bytes: number;
  log: (message: string) => void;
}

export interface ConcurrentResult {
  name: string;
  clients: number;
  updates: number;
  /** Seconds in the update loops (acknowledged writes). */
  ackSeconds: number;
  /** Plus `settleWrites()` after each loop. */
  endToEndSeconds: number;
  latency: Latency;
  asOf: Latency;
  asOfSeconds: number;
  asOfChecked: number;
}

/** A store under test with its records' ovs and the seq written into each version. */
export interface Tracked {
  store: ComparedStore;
  ids: string[];
  ovs: number[];
  /** seqs[r][ov]: the `seq` written into record r's version ov. */
  seqs: number[][];
  nextSeq: number;
}

/** Runs `count` calls of `op` (indices `from`…`from + count - 1`) on `clients` clients, each awaiting its own; `latencies[i]` in µs. */
async function onClients(clients: number, from: number, count: number, latencies: Float64Array | null, op: (client: number, i: number) => Promise<void>): Promise<void> {
  let next = from;
  const end = from + count;
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let i = next++; i < end; i = next++) {
        const start = now();
        await op(client, i);
        if (latencies) latencies[i] = Number(now() - start) / 1e3;
      }
    }),
  );
}

export async function runConcurrent(stores: readonly ComparedStore[], o: ConcurrentOptions): Promise<ConcurrentResult[]> {
  const records = o.clients * o.recordsPerClient;
  const tracked: Tracked[] = [];
  // Client c updates its records c, c + clients, c + 2·clients, … in turn.
  const turn = stores.map(() => new Array<number>(o.clients).fill(0));
  const updateOne = async (s: number, client: number) => {
    const t = tracked[s]!;
    const r = client + o.clients * (turn[s]![client]!++ % o.recordsPerClient);
    const seq = t.nextSeq++;
    await t.store.update(t.ids[r]!, makeSizedData(seq, o.bytes), t.ovs[r]!);
    t.ovs[r]!++;
    t.seqs[r]![t.ovs[r]!] = seq;
  };
  for (const store of stores) {
    const t: Tracked = { store, ids: [], ovs: [], seqs: [], nextSeq: 0 };
    for (let r = 0; r < records; r++) {
      const seq = t.nextSeq++;
      t.ids.push(await store.create(makeSizedData(seq, o.bytes)));
      t.ovs.push(0);
      t.seqs.push([seq]);
    }
    tracked.push(t);
    await onClients(o.clients, 0, o.warmup, null, (client) => updateOne(tracked.length - 1, client));
    await store.settleWrites();
  }

  const results: ConcurrentResult[] = stores.map((s) => ({
    name: s.name, clients: o.clients, updates: o.updates, ackSeconds: 0, endToEndSeconds: 0,
    latency: summarise(new Float64Array(0)), asOf: summarise(new Float64Array(0)), asOfSeconds: 0, asOfChecked: 0,
  }));
  const latencies = stores.map(() => new Float64Array(o.updates));
  const per = Math.ceil(o.updates / o.rounds);
  for (let round = 0; round < o.rounds; round++) {
    const from = round * per;
    const count = Math.min(o.updates, from + per) - from;
    for (let k = 0; k < stores.length; k++) {
      const s = (k + round) % stores.length;
      await settle();
      const start = now();
      await onClients(o.clients, from, count, latencies[s]!, (client) => updateOne(s, client));
      const acked = now();
      await stores[s]!.settleWrites();
      results[s]!.ackSeconds += secondsSince(start, acked);
      results[s]!.endToEndSeconds += secondsSince(start);
    }
    o.log(`  round ${round + 1}, ${o.clients} clients: ${stores.map((st, s) => `${st.name} ${Math.round((from + count) / results[s]!.ackSeconds)}/s`).join('; ')}`);
  }
  latencies.forEach((l, s) => (results[s]!.latency = summarise(l)));

  // getAsOf at instants uniform over a random record's lifetime; the right answer is the newest
  // version that began at or before the instant, by the times the store itself recorded.
  const total = o.readWarmup + o.queries;
  const plans: Array<{ t: Tracked; queries: Array<{ r: number; at: number; ov: number }>; answers: Array<{ ov: number; data: Data } | null>; latencies: Float64Array }> = [];
  for (const t of tracked) {
    const times: number[][] = [];
    for (const id of t.ids) times.push(await t.store.versionTimes(id));
    times.forEach((ts, r) => {
      if (ts.length !== t.ovs[r]! + 1) throw new Error(`${t.store.name}: record ${r} has ${ts.length} versions, expected ${t.ovs[r]! + 1}`);
    });
    const queries = Array.from({ length: total }, () => {
      const r = Math.floor(Math.random() * records);
      const ts = times[r]!;
      const at = ts[0]! + Math.floor(Math.random() * (ts[ts.length - 1]! - ts[0]! + 1));
      let ov = 0;
      while (ov + 1 < ts.length && ts[ov + 1]! <= at) ov++;
      return { r, at, ov };
    });
    plans.push({ t, queries, answers: new Array<{ ov: number; data: Data } | null>(total), latencies: new Float64Array(total) });
  }
  const read = (s: number, from: number, count: number) =>
    onClients(o.clients, from, count, plans[s]!.latencies, async (_client, i) => {
      const p = plans[s]!;
      const q = p.queries[i]!;
      p.answers[i] = await p.t.store.getAsOf(p.t.ids[q.r]!, q.at);
    });
  for (let s = 0; s < stores.length; s++) await read(s, 0, o.readWarmup);
  const readPer = Math.ceil(o.queries / o.rounds);
  for (let round = 0; round < o.rounds; round++) {
    const from = o.readWarmup + round * readPer;
    const count = Math.min(total, from + readPer) - from;
    for (let k = 0; k < stores.length; k++) {
      const s = (k + round) % stores.length;
      const start = now();
      await read(s, from, count);
      results[s]!.asOfSeconds += secondsSince(start);
    }
  }
  plans.forEach((p, s) => {
    p.queries.forEach((q, i) => {
      const got = p.answers[i];
      const seq = p.t.seqs[q.r]![q.ov]!;
      if (got?.ov !== q.ov || (got.data as { seq?: number }).seq !== 1_000_000 + seq) {
        throw new Error(`${p.t.store.name}: getAsOf(${microsToIso(q.at)}) with ${o.clients} clients returned ov ${got?.ov}, expected ${q.ov} (seq ${seq})`);
      }
    });
    results[s]!.asOf = summarise(p.latencies.subarray(o.readWarmup));
    results[s]!.asOfChecked = p.queries.length;
  });
  return results;
}
