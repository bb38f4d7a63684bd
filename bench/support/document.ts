import type { Data } from '../../core/engine/documents.js';

const FILLER = 'The quick brown fox jumps over the lazy dog. '.repeat(12);
/** The ~1 KB JSON document both benchmarks write; `seq` changes per write so every version differs, at constant length. */
export function makeData(seq: number): Data {
  return {
    status: seq % 2 === 0 ? 'open' : 'paid',
    total: 1000 + (seq % 9000),
    seq: 1_000_000 + seq,
    currency: 'EUR',
    customer: { id: 'cus_000123', name: 'Ada Lovelace', email: 'ada@example.com', tier: 'gold' },
    items: [
      { sku: 'SKU-0001', qty: 2, price: 1999 },
      { sku: 'SKU-0002', qty: 1, price: 4999 },
      { sku: 'SKU-0003', qty: 5, price: 299 },
    ],
    tags: ['bench', 'xronox', 'versioned'],
    note: FILLER,
  };
}
