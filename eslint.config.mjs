// ESLint (npm run lint): @eslint/js and typescript-eslint's recommended rules, with type information.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/** Node's own globals (process, console, URL, ...), as the Node running ESLint has them: the .js and .mjs files are Node programs. */
const nodeGlobals = Object.fromEntries(Object.getOwnPropertyNames(globalThis).map((name) => [name, 'readonly']));
const commonJsGlobals = { require: 'readonly', module: 'writable', exports: 'writable', __dirname: 'readonly', __filename: 'readonly' };
const jestGlobals = Object.fromEntries(['jest', 'expect', 'describe', 'test', 'it', 'beforeAll', 'beforeEach', 'afterAll', 'afterEach'].map((name) => [name, 'readonly']));

export default defineConfig(
  {
    // Generated (imports/ by cdk8s import, dist/ by synth, lib/ and .build/ by esbuild), vendored (crds/, schemas/) or tool output.
    ignores: ['imports/', 'dist/', 'lib/', '.build/', 'node_modules/', 'crds/', 'schemas/', 'coverage/', 'secrets.local/'],
  },
  {
    // A disable comment that no configured rule needs is an error, so none outlives its reason.
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // tsc's convention (noUnusedParameters lets `_x` be), and `const { dropped: _, ...kept } = o` is how a key is left out.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    // No hand-written function over 150 lines (issue 27): a function that long holds more than one idea, and its reader
    // has to hold them all. Counted from a function's first line (its doc comment not) to its last, blanks and
    // comments inside included; a function inside another counts in both. Tests are lists of cases and are left out.
    files: ['main.ts', 'charts/**/*.ts', 'scripts/**/*.ts', 'scripts/**/*.mjs'],
    rules: { 'max-lines-per-function': ['error', { max: 150, skipBlankLines: false, skipComments: false, IIFEs: true }] },
  },
  {
    // Tests and scripts read rendered manifests, parsed YAML and JSON as `any`: the shape is what they check, and a type
    // for each would repeat imports/ and cdk8s-plus-28. The shipped code (charts/, main.ts) keeps these rules.
    files: ['test/**', 'scripts/**'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // Outside tsconfig.json: no type information.
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: nodeGlobals },
  },
  {
    // package.json has no "type": .js files are CommonJS (.cjs ones by name), and require() is how they import.
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: commonJsGlobals },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Jest setup files run beside the tests.
    files: ['test/**/*.js'],
    languageOptions: { globals: jestGlobals },
  },
);
