import { escapeLiteral } from 'pg';

/**
 * Renders one of this adapter's statements with its parameters written as literals, so that a
 * transaction's writes and its COMMIT reach the server in one round trip (a simple query, the
 * only kind that holds several statements, takes no parameters).
 *
 * Each `$n` becomes the text node-postgres would have sent as that parameter, quoted: an untyped
 * literal, which PostgreSQL types from its context exactly as it types an untyped parameter. Only
 * the value kinds the adapter binds are accepted. Quoting is `escapeLiteral`'s (quotes doubled,
 * backslashes doubled under `E''`), and U+0000 is refused: it would end the query text early.
 */
export function inlineParams(text: string, values: readonly unknown[]): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"' || c === "'") {
      // A quoted identifier or literal of the statement itself: copied whole ("" and '' included).
      let j = i + 1;
      for (;;) {
        const end = text.indexOf(c, j);
        if (end < 0) throw new Error(`Unterminated ${c} in a statement`);
        if (text[end + 1] === c) j = end + 2;
        else {
          j = end + 1;
          break;
        }
      }
      out += text.slice(i, j);
      i = j;
    } else if (c === '$' && /[0-9]/.test(text[i + 1] ?? '') && !/[A-Za-z0-9_$]/.test(text[i - 1] ?? ' ')) {
      let j = i + 1;
      while (/[0-9]/.test(text[j] ?? '')) j++;
      const n = Number(text.slice(i + 1, j));
      if (n < 1 || n > values.length) throw new Error(`Statement parameter $${n} has no value`);
      out += literal(values[n - 1]);
      i = j;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** One parameter as a quoted, untyped literal (`NULL` for null). */
export function literal(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  return escapeLiteral(noNul(text(value)));
}

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') {
    if (Number.isNaN(value)) throw new Error('NaN cannot be a statement parameter');
    return String(value);
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (value instanceof Uint8Array) return `\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
  if (Array.isArray(value)) {
    const items = value.map((item: unknown) => (item === null || item === undefined ? 'NULL' : `"${text(item).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`));
    return `{${items.join(',')}}`;
  }
  throw new Error(`A ${typeof value} cannot be a statement parameter`);
}

function noNul(value: string): string {
  if (value.includes('\0')) throw new Error('PostgreSQL text cannot hold U+0000');
  return value;
}
