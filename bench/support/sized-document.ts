import type { Data } from '../../core/engine/documents.js';
import { makeData } from './document.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ';

/**
 * The order document of `makeData`, with its `note` replaced by `bytes`-sized JSON in total.
 * The note is pseudo-random text (seeded by `seq`), so no store gets to compress it away:
 * PostgreSQL compresses large values (TOAST) and repeated filler would flatter it.
 * Every `seq` gives a different document of exactly the same length.
 */
export function makeSizedData(seq: number, bytes: number): Data {
  const base = { ...makeData(seq), note: '' };
  const room = bytes - Buffer.byteLength(JSON.stringify(base));
  if (room < 0) throw new Error(`a document of ${bytes} B is smaller than the order shape`);
  base.note = noise(seq, room);
  return base;
}

/** `length` characters of a xorshift stream seeded by `seed`; only characters JSON keeps as one byte. */
function noise(seed: number, length: number): string {
  let x = (seed + 1) * 2654435761 >>> 0 || 1;
  const out = new Array<string>(length);
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = ALPHABET[x % ALPHABET.length]!;
  }
  return out.join('');
}
