import type { Collection, Xronox } from '../../core/index.js';
import type { Data } from '../../core/engine/documents.js';
import { ACTOR, type ComparedStore, isoToMicros, microsToIso, REASON } from './sql-versioned.js';

/**
 * A Xronox collection as one side of a comparison. It is acknowledged after the index commit;
 * `settleWrites` is `flush()`, which waits for the background blob sync (the version files).
 */
export class XronoxStore implements ComparedStore {
  readonly name: string;
  readonly versioned: boolean;
  readonly #xronox: Xronox;
  readonly #coll: Collection;

  /** `backend` names the index store in the side's name when it is not the embedded default (`on PostgreSQL`). */
  constructor(xronox: Xronox, databaseType: 'runtime' | 'knowledge', tenantId: string, collection: string, backend?: string) {
    this.#xronox = xronox;
    this.versioned = databaseType === 'runtime';
    const kind = this.versioned ? 'runtime (versioned)' : 'knowledge (unversioned)';
    this.name = backend ? `Xronox ${backend}, ${kind}` : `Xronox ${kind}`;
    this.#coll = xronox.with({ databaseType, tier: 'tenant', tenantId, collection });
  }

  async create(data: Data): Promise<string> {
    return (await this.#coll.create(data, ACTOR, REASON)).id;
  }

  async update(id: string, data: Data, expectedOv: number): Promise<void> {
    await this.#coll.update(id, data, expectedOv, ACTOR, REASON);
  }

  async settleWrites(): Promise<void> {
    const report = await this.#xronox.flush();
    if (report.failed > 0) throw new Error(`blob sync failed for ${report.failed} records`);
  }

  async versionTimes(id: string): Promise<number[]> {
    const times: number[] = [];
    let before: number | undefined;
    do {
      const page = await this.#coll.history(id, { limit: 1000, ...(before !== undefined ? { before } : {}) });
      for (const item of page.items) times[item.ov] = isoToMicros(item.at);
      before = page.nextBefore ?? undefined;
    } while (before !== undefined);
    return times;
  }

  async getAsOf(id: string, atMicros: number): Promise<{ ov: number; data: Data } | null> {
    const found = await this.#coll.getAsOf(id, microsToIso(atMicros));
    return found ? { ov: found.ov, data: found.data } : null;
  }

  async history(id: string, limit: number, beforeOv?: number): Promise<number[]> {
    const page = await this.#coll.history(id, { limit, ...(beforeOv !== undefined ? { before: beforeOv } : {}) });
    return page.items.map((item) => item.ov);
  }

  /** `create` then awaited `update`s, as a client would write them, then `flush()`. */
  async seed(versions: number, dataOf: (ov: number) => Data): Promise<string> {
    const id = await this.create(dataOf(0));
    for (let ov = 1; ov < versions; ov++) await this.update(id, dataOf(ov), ov - 1);
    await this.settleWrites();
    return id;
  }

  async close(): Promise<void> {}
}
