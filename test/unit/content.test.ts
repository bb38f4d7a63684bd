import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { base64DecodedLength } from '../../core/engine/content.js';

describe('base64DecodedLength', () => {
  it('gives the decoded size of padded base64 of every length mod 3', () => {
    for (let n = 0; n < 64; n++) {
      const bytes = randomBytes(n);
      expect(base64DecodedLength(bytes.toString('base64')), `${n} bytes`).toBe(n);
    }
  });

  it('refuses anything that is not strict padded base64', () => {
    for (const bad of ['A', 'AB', 'ABC', 'AB=C', 'A===', '====', 'AB==CD==', 'QUJD\n', 'QU JD', 'QUJD!', 'QUJ-', 'QUJ_', 'QUJDé===', '=QUJ', 'QUJ\u0000']) {
      expect(base64DecodedLength(bad), JSON.stringify(bad)).toBe(-1);
    }
  });

  it('runs in one pass on a string of tens of MiB (a backtracking regex overflowed the stack there)', () => {
    const value = Buffer.alloc(24 * 1024 * 1024 + 1, 0xa5).toString('base64');
    expect(base64DecodedLength(value)).toBe(24 * 1024 * 1024 + 1);
    expect(base64DecodedLength(`${value.slice(0, -4)}*AAA`)).toBe(-1);
  });
});
