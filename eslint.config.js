// ESLint (flat config) for src/, test/, bench/, scripts/ and the demo's TypeScript.
// TypeScript files get typescript-eslint's type-aware rules, which catch the bugs tsc does
// not: a promise nobody awaits or catches, a promise where a callback's return is ignored,
// awaiting something that is not a promise. Plain .mjs/.js files (bench, scripts) get the
// JavaScript rules only; the demo's Vue components get eslint-plugin-vue's error-level rules
// (no type information: no tsconfig covers .vue files). Formatting is not the linter's job
// (see CONTRIBUTING.md).
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import pluginVue from 'eslint-plugin-vue';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const IO_MODULES = [
  'node:net',
  'node:tls',
  'node:stream',
  'node:zlib',
  'node:events',
  'node:timers',
  'node:child_process',
  'node:fs',
];
const SANS_IO = 'protocol/ is sans-I/O: sockets, streams, timers and zlib belong in node/.';

export default defineConfig(
  {
    ignores: [
      'dist/**',
      'coverage/**',
      'node_modules/**',
      'scratch/**',
      'tmp/**',
      'bench/results/**',
      'test-results/**',
      // Consumer code compiled against dist/*.d.ts by the type tests, with their own tsconfig.
      'test/types/fixtures/**',
    ],
  },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.node },
      parserOptions: {
        // One program per tsconfig; a file is checked in the first that includes it. The
        // browser client first (DOM lib, no Node types: what it is built with, although the
        // Node tests import it too), then Node code and tests, then the demo (bundler
        // resolution).
        project: ['./tsconfig.browser.json', './tsconfig.json', './demo/tsconfig.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Unused names: tsc's noUnusedLocals/noUnusedParameters already report them.
      '@typescript-eslint/no-unused-vars': 'off',
      // node:test's test()/describe()/it() return promises that the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] },
          ],
        },
      ],
      // `let x: T;` assigned once after a closure that reads it (a handler that needs the
      // object it is passed to) cannot be const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    // The browser client and the demo run in a browser: no Node globals there.
    files: ['src/browser/**', 'demo/src/**'],
    languageOptions: { globals: { ...globals.browser } },
  },
  // The layers of docs/design.md: imports point downward only (cli -> redis -> push -> node ->
  // protocol), the browser client stands alone, protocol/ does no I/O, and only redis/ (an
  // entry point of its own) imports the Redis client, an optional peer dependency.
  layer(
    'src/protocol/**',
    ['../node/*', '../push/*', '../redis/*', '../cli/*', '../browser/*', 'ioredis'],
    'protocol/ is the bottom layer: it imports nothing else from src/.',
  ),
  layer(
    'src/node/**',
    ['../push/*', '../redis/*', '../cli/*', '../browser/*', 'ioredis'],
    'node/ imports protocol/ only (push/ uses node/, not the other way).',
  ),
  layer(
    'src/push/**',
    ['../redis/*', '../cli/*', '../browser/*', 'ioredis'],
    'push/ imports node/ and protocol/ only (and no Redis client: that is duet/redis).',
  ),
  layer(
    'src/redis/**',
    ['../cli/*', '../browser/*'],
    'redis/ (the duet/redis entry) imports push/, node/ and protocol/; only it imports ioredis.',
  ),
  layer(
    'src/browser/**',
    ['../*', 'node:*'],
    'browser/ is built on its own (duet/client): nothing from the rest of src/, no Node built-ins.',
  ),
  {
    files: ['src/protocol/**'],
    rules: {
      'no-restricted-globals': [
        'error',
        ...['setTimeout', 'setInterval', 'setImmediate'].map((name) => ({ name, message: SANS_IO })),
      ],
    },
  },
  {
    // JavaScript and configs outside every tsconfig: syntax-level rules only.
    files: ['**/*.js', '**/*.mjs', 'demo/vite.config.ts'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { parserOptions: { project: null, projectService: false } },
  },
  {
    files: ['demo/**/*.vue'],
    extends: [pluginVue.configs['flat/essential'], tseslint.configs.disableTypeChecked],
    languageOptions: {
      globals: { ...globals.browser },
      parserOptions: { parser: tseslint.parser, extraFileExtensions: ['.vue'], project: null, projectService: false },
    },
    rules: {
      // The demo's components are its own, registered by import; none shadows an HTML element.
      'vue/multi-word-component-names': 'off',
    },
  },
  {
    // Findings in files under rework by the permessage-deflate change when linting came in;
    // fixed there, then these lines go: `new Map()` without type arguments (any) in
    // shared-message.ts, a number[] in a template, a method taken off its object on purpose.
    files: ['src/node/shared-message.ts'],
    rules: { '@typescript-eslint/no-unsafe-assignment': 'off', '@typescript-eslint/no-unsafe-return': 'off' },
  },
  {
    files: ['test/node/deflate.test.ts', 'test/node/zlib-stream.test.ts'],
    rules: {
      '@typescript-eslint/restrict-template-expressions': 'off',
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
    },
  },
);

/** A layer's import rule: `files` may not import `forbidden` (patterns); protocol/ no I/O modules either. */
function layer(files, forbidden, message) {
  const io = files === 'src/protocol/**' ? IO_MODULES.map((name) => ({ name, message: SANS_IO })) : [];
  return {
    files: [files],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: forbidden, message }], paths: io }] },
  };
}
