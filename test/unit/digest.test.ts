import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { portableSha256, sha256, sha256Base64url, sha256Hex } from '../../core/foundation/digest.js';

const utf8 = new TextEncoder();
const cases: Array<Array<string | Uint8Array>> = [
  [''],
  ['abc'],
  ['a', 'b', 'c'],
  ['ünïcødé ✓', new Uint8Array([0, 255, 1])],
  [new Uint8Array(100_000).map((_, i) => i % 251)],
];

describe('SHA-256 on every runtime', () => {
  it.each(cases.map((parts, i) => [i, parts] as const))('case %i: the native and the portable hash give the standard digest', (_i, parts) => {
    const expected = createHash('sha256');
    for (const part of parts) expected.update(typeof part === 'string' ? utf8.encode(part) : part);
    const hex = expected.digest('hex');
    expect(Buffer.from(sha256(...parts)).toString('hex')).toBe(hex);
    expect(Buffer.from(portableSha256(...parts)).toString('hex')).toBe(hex);
    expect(sha256Hex(...parts)).toBe(hex);
    expect(sha256Base64url(...parts)).toBe(Buffer.from(hex, 'hex').toString('base64url'));
  });

  it('answers plain Uint8Arrays whichever implementation ran', () => {
    expect(Object.getPrototypeOf(sha256('x'))).toBe(Uint8Array.prototype);
  });
});
