import type { z } from 'zod';
import type { Doc } from '../../contracts/document-store.js';
import { ValidationError } from '../../errors.js';

/**
 * Checks a document against a collection's zod schema and returns the document itself (not zod's
 * output, which could reorder keys: documents must round-trip exactly). Every problem is listed in
 * the message; `path` names the first, e.g. `doc._system.updatedAt`.
 */
export function checkWith(schema: z.ZodType, doc: Doc, collection: string): Doc {
  const result = schema.safeParse(doc);
  if (result.success) return doc;
  const issues = result.error.issues.map((i) => ({ path: ['doc', ...i.path.map(String)].join('.'), message: i.message }));
  throw new ValidationError(`Invalid ${collection} document: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { path: issues[0]?.path ?? 'doc' });
}

/** Key characters that may stand in an object key segment as they are; every other byte is written `.XX`. */
const KEY_SAFE = /[A-Za-z0-9_-]/;

/**
 * A blob key segment for any non-empty string (a topic like `orders.created`, a message id like
 * `1712231230-0`): letters, digits, `_` and `-` stay; every other UTF-8 byte becomes `.` and two
 * hex digits. Injective, and never `.`, `..` or a `/`.
 */
export function keySegment(value: string): string {
  let out = '';
  for (const ch of value) {
    if (KEY_SAFE.test(ch)) out += ch;
    else for (const byte of Buffer.from(ch, 'utf8')) out += `.${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
