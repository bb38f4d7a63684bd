import type * as NodeFs from 'node:fs';
import type * as NodePath from 'node:path';
import { ConfigError } from '../errors.js';
import { requireBuiltin } from '../foundation/host.js';
import type { Environment } from './env.js';
import { loadConfig, type XronoxConfig } from './load.js';

/**
 * Config files. `initXronox()` without a config reads the first of `CONFIG_FILE_NAMES` found in
 * the working directory or, failing that, in the nearest package root above it (the closest
 * ancestor folder holding a `package.json`). Relative `sqlitePath` and `localStorage.basePath`
 * in a file are resolved against the folder holding the file, so the file means the same thing
 * whatever the working directory.
 */

// Config files live on a file system, which Node, Deno and Bun give and a Workers isolate does not:
// asked for at call time (see foundation/host.ts), so the engine's import graph needs no node:fs.
const nodeFs = () => requireBuiltin<typeof NodeFs>('node:fs', 'Reading a config file');
const nodePath = () => requireBuiltin<typeof NodePath>('node:path', 'Reading a config file');

/** The names looked for, in order. */
export const CONFIG_FILE_NAMES = ['xronox.config.json', '.xronox.json'] as const;

/**
 * The path of the config file to use, searching `startDir` (default: the working directory),
 * then the nearest package root above it. Throws a `ConfigError` naming the files and folders
 * searched when there is none.
 */
export function findConfigFile(startDir: string = process.cwd()): string {
  const start = nodePath().resolve(startDir);
  const folders = [start];
  const root = packageRootAbove(start);
  if (root !== undefined) folders.push(root);
  for (const folder of folders) {
    for (const name of CONFIG_FILE_NAMES) {
      const path = nodePath().join(folder, name);
      if (isFile(path)) return path;
    }
  }
  const where = folders.length === 1 ? `${folders[0]} (no package root above it)` : `${folders[0]} and the package root ${folders[1]}`;
  throw new ConfigError([
    { path: '', message: `No config file found: looked for ${CONFIG_FILE_NAMES.join(', ')} in ${where}. Pass a config to initXronox or create one of these files` },
  ]);
}

/**
 * The parsed JSON of a config file (not yet validated). A file that cannot be read, or is not
 * valid JSON, is a `ConfigError` naming the file and, for bad JSON, the line and column. The
 * file's text is never quoted, so a secret in it cannot leak through the error.
 */
export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = nodeFs().readFileSync(path, 'utf8');
  } catch (err) {
    const reason = isErrno(err) ? err.code : 'unreadable';
    throw new ConfigError([{ path: '', message: `Cannot read the config file ${path} (${reason})` }], { cause: err });
  }
  // A UTF-8 byte order mark is not JSON, but editors write one.
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // JSON.parse's message may quote the text around the error, secrets included; say where instead.
    const problem = locateJsonError(text);
    const { line, column } = lineAndColumn(text, problem.offset);
    throw new ConfigError([{ path: '', message: `The config file ${path} is not valid JSON: ${problem.reason} at line ${line}, column ${column}` }]);
  }
}

/**
 * Reads, validates and normalises a config file (see `loadConfig`); relative paths in it are
 * resolved against its folder. A ConfigError for an invalid config names the file.
 */
export function loadConfigFile(path: string, env: Environment = process.env): XronoxConfig {
  const absolute = nodePath().resolve(path);
  const input = readConfigFile(absolute);
  try {
    return loadConfig(input, env, { baseDir: nodePath().dirname(absolute) });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const named = new ConfigError(err.issues, { cause: err.cause });
    named.message = err.message.replace(/^Invalid Xronox config/, `Invalid Xronox config in ${absolute}`);
    throw named;
  }
}

function packageRootAbove(start: string): string | undefined {
  let folder = start;
  for (;;) {
    const parent = nodePath().dirname(folder);
    if (parent === folder) return undefined;
    folder = parent;
    if (isFile(nodePath().join(folder, 'package.json'))) return folder;
  }
}

function isFile(path: string): boolean {
  try {
    return nodeFs().existsSync(path) && nodeFs().statSync(path).isFile();
  } catch {
    return false;
  }
}

function isErrno(err: unknown): err is NodeJS.ErrnoException & { code: string } {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string';
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === '\n') {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

/**
 * Where the first syntax error of `text` is, by a JSON grammar scan (RFC 8259). Called only
 * after `JSON.parse` failed, whose own messages do not always give a position.
 */
function locateJsonError(text: string): { offset: number; reason: string } {
  let i = 0;
  class JsonSyntax extends Error {
    constructor(
      readonly offset: number,
      readonly reason: string,
    ) {
      super(reason);
    }
  }
  const fail = (reason: string, at = i): never => {
    throw new JsonSyntax(at, reason);
  };
  const describe = (at: number) => (at >= text.length ? 'unexpected end of input' : `unexpected character ${JSON.stringify(text[at])}`);
  const space = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const expect = (ch: string, context: string) => {
    if (text[i] !== ch) fail(`${describe(i)}; expected "${ch}" ${context}`);
    i++;
  };
  const string = () => {
    const start = i;
    i++; // opening quote
    for (;;) {
      if (i >= text.length) fail('unterminated string', start);
      const ch = text.charCodeAt(i);
      if (ch === 0x22) return void i++;
      if (ch < 0x20) fail('control character in a string (write it as an escape)');
      if (ch === 0x5c) {
        const next = text[i + 1];
        if (next === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail('bad \\u escape in a string');
          i += 6;
        } else if (next !== undefined && '"\\/bfnrt'.includes(next)) i += 2;
        else fail('bad escape in a string');
      } else i++;
    }
  };
  const number = () => {
    const match = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!match || match[0] === '' || match[0] === '-') fail(`${describe(i)}; expected a value`);
    i += match![0].length;
  };
  const value = (depth: number): void => {
    if (depth > 512) fail('nesting too deep');
    space();
    const ch = text[i];
    if (ch === '{') {
      i++;
      space();
      if (text[i] === '}') return void i++;
      for (;;) {
        space();
        if (text[i] !== '"') fail(`${describe(i)}; expected a property name in double quotes`);
        string();
        space();
        expect(':', 'after a property name');
        value(depth + 1);
        space();
        if (text[i] === ',') {
          i++;
          continue;
        }
        expect('}', 'or "," after a property value');
        return;
      }
    }
    if (ch === '[') {
      i++;
      space();
      if (text[i] === ']') return void i++;
      for (;;) {
        value(depth + 1);
        space();
        if (text[i] === ',') {
          i++;
          continue;
        }
        expect(']', 'or "," after an array element');
        return;
      }
    }
    if (ch === '"') return string();
    for (const literal of ['true', 'false', 'null']) {
      if (text.startsWith(literal, i)) return void (i += literal.length);
    }
    if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) return number();
    fail(`${describe(i)}; expected a value`);
  };
  try {
    value(0);
    space();
    if (i < text.length) fail(`${describe(i)} after the end of the JSON value`);
    return { offset: text.length, reason: 'invalid JSON' };
  } catch (err) {
    if (err instanceof JsonSyntax) return { offset: err.offset, reason: err.reason };
    throw err;
  }
}
