import { describe } from 'vitest';
import { RUNTIMES, runtimeSuitesTest } from './runtime/run-suites.js';

// The library under Deno, in a real deno process (see runtime/run-suites.ts).
describe('Deno', () => runtimeSuitesTest(RUNTIMES.deno));
