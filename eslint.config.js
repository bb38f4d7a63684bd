import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', '.xronox-data/', '.scratch/', '.serverless/', 'coverage/', '.stryker-tmp*/', 'reports/'] },
  js.configs.recommended,

  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-syntax': [
        'error',
        { selector: 'ExportDefaultDeclaration', message: 'Use named exports (see STYLE.md).' },
        { selector: 'TSEnumDeclaration', message: 'Use an `as const` array and a derived union instead of an enum.' },
      ],
    },
  },
  // Tool config files must default-export; everything else uses named exports.
  { files: ['eslint.config.js', 'vitest.config.ts', 'vitest.mutation.config.ts', 'stryker.config.mjs'], rules: { 'no-restricted-syntax': 'off' } },
  {
    // The engine must not know its adapters, and the core must not know the functions layer.
    files: ['core/engine/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/adapters/**', '**/functions/**'] }] },
  },
  {
    files: ['core/**/*.ts'],
    ignores: ['core/engine/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/functions/**'] }] },
  },
);
