import oclif from 'eslint-config-oclif'
import prettier from 'eslint-config-prettier'

export default [
  {ignores: ['dist/**', 'node_modules/**', 'sdk/**', 'assets/**', 'install-scripts/**']},
  ...oclif,
  prettier,
  {
    rules: {
      // Binary formats (MXNet params, ELF, protobuf) need bit operations and hex literals.
      'no-bitwise': 'off',
      'unicorn/number-literal-case': 'off',
      // Sequential awaits are deliberate in supervision and protocol loops.
      'no-await-in-loop': 'off',
      'no-constant-condition': ['error', {checkLoops: false}],
      'n/no-process-exit': 'off',
      'unicorn/no-process-exit': 'off',
      'unicorn/prefer-top-level-await': 'off',
      'unicorn/no-array-reduce': 'off',
      'unicorn/prefer-math-trunc': 'off',
      'unicorn/no-new-array': 'off',
      'unicorn/prefer-code-point': 'off',
      'unicorn/text-encoding-identifier-case': 'off',
      'unicorn/no-array-for-each': 'off',
      'unicorn/prefer-event-target': 'off',
      'unicorn/prefer-string-raw': 'off',
      'unicorn/no-hex-escape': 'off',
      'unicorn/escape-case': 'off',
      'unicorn/no-negated-condition': 'off',
      'unicorn/prefer-ternary': 'off',
      'unicorn/switch-case-braces': 'off',
      'unicorn/consistent-function-scoping': 'off',
      'unicorn/no-useless-undefined': 'off',
      'unicorn/prefer-spread': 'off',
      'n/no-unsupported-features/node-builtins': 'off',
      complexity: 'off',
      'max-depth': 'off',
      'max-params': 'off',
      'no-warning-comments': 'off',
      'no-control-regex': 'off',
      'new-cap': 'off',
      camelcase: 'off',
      // a file's first comment says what it owns: a comment ends a run of imports to sort, so the sorter never
      // moves an import above it
      'perfectionist/sort-imports': ['error', {order: 'asc', partitionByComment: true, type: 'natural'}],
      'perfectionist/sort-objects': 'off',
      'perfectionist/sort-object-types': 'off',
      'perfectionist/sort-interfaces': 'off',
      'perfectionist/sort-union-types': 'off',
      'perfectionist/sort-switch-case': 'off',
      'perfectionist/sort-enums': 'off',
      'perfectionist/sort-classes': 'off',
      'perfectionist/sort-intersection-types': 'off',
      'mocha/max-top-level-suites': 'off',
      'mocha/no-top-level-hooks': 'off',
    },
  },
  {
    // the library and the commands are typed throughout; tests may use \`any\` for parsed JSON answers
    files: ['test/**/*.ts'],
    rules: {'@typescript-eslint/no-explicit-any': 'off'},
  },
  {
    files: ['**/*.cjs'],
    languageOptions: {
      globals: {
        __dirname: 'readonly',
        exports: 'writable',
        module: 'writable',
        process: 'readonly',
        require: 'readonly',
      },
      sourceType: 'commonjs',
    },
    rules: {'@typescript-eslint/no-require-imports': 'off', 'unicorn/prefer-module': 'off'},
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      'no-promise-executor-return': 'off',
      'unicorn/prefer-add-event-listener': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      'mocha/consistent-spacing-between-blocks': 'off',
    },
  },
]
