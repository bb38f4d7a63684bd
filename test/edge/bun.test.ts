import { describe } from 'vitest';
import { RUNTIMES, runtimeSuitesTest } from './runtime/run-suites.js';

// The library under Bun, in a real bun process (see runtime/run-suites.ts).
describe('Bun', () => runtimeSuitesTest(RUNTIMES.bun));
