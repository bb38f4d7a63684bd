import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../core/errors.js';
import { assertName, isValidName, NAME_RULES, type NameKind } from '../../core/foundation/names.js';

const KINDS = Object.keys(NAME_RULES) as NameKind[];

/** Inputs no kind of name may accept. */
const HOSTILE: ReadonlyArray<[string, unknown]> = [
  ['empty', ''],
  ['dot', '.'],
  ['dot-dot', '..'],
  ['traversal', '../x'],
  ['deep traversal', 'a/../../etc'],
  ['absolute path', '/etc/passwd'],
  ['backslash', 'a\\b'],
  ['operator', '$where'],
  ['dollar inside', 'a$b'],
  ['NUL', 'a\u0000b'],
  ['newline', 'a\nb'],
  ['trailing newline', 'abc\n'],
  ['space', 'a b'],
  ['unicode letter', 'café'],
  ['emoji', 'a😀'],
  ['fullwidth letter', 'ａｂｃ'],
  ['10 KB', 'a'.repeat(10_240)],
  ['quote', 'a"b'],
  ['null', null],
  ['undefined', undefined],
  ['number', 42],
  ['array', ['abc']],
  ['object', { toString: () => 'abc' }],
  ['String object', new String('abc')],
];

describe.each(KINDS)('%s names', (kind) => {
  it.each(HOSTILE)('rejects %s', (_label, value) => {
    expect(isValidName(kind, value)).toBe(false);
    expect(() => assertName(kind, value)).toThrow(ValidationError);
  });
});

const VALID: Record<NameKind, { accept: string[]; reject: string[] }> = {
  collection: {
    accept: ['orders', 'A', 'a_b-c', 'x'.repeat(63)],
    reject: ['1orders', '_orders', '-x', 'x'.repeat(64), 'a.b', 'a/b'],
  },
  id: {
    accept: ['1', 'a', 'A1_b-c', '0123', 'x'.repeat(128)],
    reject: ['_a', '-a', 'x'.repeat(129), 'a.b', 'a:b', 'a/b'],
  },
  tenantId: {
    accept: ['t1', '1t', 'T_1-x', 'x'.repeat(63)],
    reject: ['_t', 'x'.repeat(64), 't.1', 't/1'],
  },
  domain: {
    accept: ['sales', '9', 'x'.repeat(63)],
    reject: ['-sales', 'x'.repeat(64), 'a.b'],
  },
  dbName: {
    accept: ['db1', 'tenant-db_1', 'x'.repeat(63)],
    reject: ['_db', 'x'.repeat(64), 'a.b', 'admin$'],
  },
  property: {
    accept: ['a', '_a', 'customer.id', 'a1.b_2', Array.from({ length: 8 }, () => 'p').join('.'), 'x'.repeat(63)],
    reject: ['1a', 'a.', '.a', 'a..b', 'a.1b', 'a-b', Array.from({ length: 9 }, () => 'p').join('.'), 'x'.repeat(64)],
  },
  bucket: {
    accept: ['abc', 'my-bucket.logs', '1bucket', 'x'.repeat(63)],
    reject: ['ab', 'Upper', 'a..b', '-abc', 'abc-', 'abc.', 'a_b', 'x'.repeat(64)],
  },
  folderPrefix: {
    accept: ['logs', 'a/b', 'a/b/c/d', 'tenant-1/raw_2'],
    reject: ['/a', 'a/', 'a//b', 'a/b/c/d/e', 'a/./b', 'a/../b', '_a'],
  },
};

describe('rules per kind', () => {
  it('covers every kind', () => {
    expect(Object.keys(VALID).sort()).toEqual([...KINDS].sort());
  });

  it.each(KINDS)('%s accepts and rejects the right names', (kind) => {
    for (const name of VALID[kind].accept) {
      expect(isValidName(kind, name), `${kind} should accept ${JSON.stringify(name)}`).toBe(true);
      expect(assertName(kind, name)).toBe(name);
    }
    for (const name of VALID[kind].reject) {
      expect(isValidName(kind, name), `${kind} should reject ${JSON.stringify(name)}`).toBe(false);
    }
  });
});

describe('assertName errors', () => {
  function errorOf(kind: NameKind, value: unknown, label?: string): ValidationError {
    try {
      assertName(kind, value, label);
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      return err as ValidationError;
    }
    throw new Error('assertName accepted the value');
  }

  it('names the label, the value and the rule', () => {
    const err = errorOf('collection', '$where', 'collection');
    expect(err.code).toBe('VALIDATION_FAILED');
    expect(err.path).toBe('collection');
    expect(err.message).toContain('"$where"');
    expect(err.message).toContain(NAME_RULES.collection.describe);
  });

  it('defaults the label to the kind', () => {
    expect(errorOf('tenantId', '').path).toBe('tenantId');
    expect(errorOf('tenantId', '', 'request.tenant').path).toBe('request.tenant');
  });

  it.each([
    ['a 10 KB string', 'x'.repeat(10_240)],
    ['a 10 KB hostile string', `../${'$'.repeat(10_240)}`],
    ['a 1 MB string', 'y'.repeat(1024 * 1024)],
  ])('does not echo %s', (_label, value) => {
    const err = errorOf('id', value);
    expect(err.message.length).toBeLessThan(200);
    expect(err.message).toContain(`${(value as string).length}-character string`);
    expect(err.message).not.toContain('x'.repeat(50));
  });

  it('shows short strings escaped, so control characters cannot forge log lines', () => {
    const err = errorOf('id', 'a\nERROR forged');
    expect(err.message).not.toContain('\n');
    expect(err.message).toContain('"a\\nERROR forged"');
  });

  it('describes non-strings by type without calling into them', () => {
    let called = false;
    const sneaky = {
      toString: () => {
        called = true;
        return 'abc';
      },
    };
    expect(errorOf('id', sneaky).message).toMatch(/got an? object/);
    expect(called).toBe(false);
    expect(errorOf('id', null).message).toContain('got a null');
    expect(errorOf('id', undefined).message).toContain('got nothing');
    expect(errorOf('id', 7).message).toContain('got a number');
  });
});
