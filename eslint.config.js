import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { importX } from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

/** The layers of core/ and functions/, lowest first. */
const LAYERS = [
  ['core/errors.ts', 'core/foundation'],
  ['core/contracts'],
  ['core/config'],
  ['core/routing'],
  ['core/store'],
  ['core/adapters'],
  ['core/engine'],
  ['core/domains'],
  ['core/jobs'],
  ['core/xronox.ts'],
  ['core/index.ts'],
  ['functions'],
];

/**
 * no-restricted-paths zones: no layer imports one above it; only the facade, the public entry
 * point and the adapters themselves know the adapters (the engine sees ports); functions/ sees
 * only core's public entry point.
 */
function layerZones() {
  const zones = LAYERS.flatMap((layer, i) =>
    layer.map((target) => ({
      target: `./${target}`,
      from: LAYERS.slice(i + 1).flat().map((p) => `./${p}`),
      message: 'Layers only point down (docs/architecture.md, "What is where").',
    })),
  ).filter((zone) => zone.from.length > 0);
  zones.push({
    target: ['./core/store', './core/engine', './core/domains', './core/jobs'],
    from: ['./core/adapters'],
    message: 'Only core/xronox.ts and core/index.ts know the adapters; the engine sees ports.',
  });
  zones.push({
    target: './functions',
    from: './core',
    except: ['./index.ts'],
    message: 'functions/ imports only core/index.ts, the public entry point.',
  });
  return zones;
}

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'tools/node22/', '.xronox-data/', '.scratch/', '.serverless/', 'coverage/', '.stryker-tmp*/', 'reports/'] },
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
    // Layers only point down; see "What is where" in docs/architecture.md. Each entry may import the ones
    // before it and never one after it; a back-up arrow or a cycle fails `npm test`.
    files: ['core/**/*.ts', 'functions/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
      'import-x/extensions': ['.ts', '.js', '.mjs'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': ['error', { zones: layerZones() }],
    },
  },
);
