import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'dist.*/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.property.name='keys']:has(MemberExpression[object.name='redis'])",
          message: 'Never use KEYS; use SCAN.',
        },
      ],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@oclif/*', 'chalk', 'ora', 'cli-table3', '@inquirer/*'],
              message: 'core stays free of CLI libraries',
            },
            {
              group: ['**/cli/**', '**/commands/**', '**/inspector/**'],
              message: 'imports flow commands → cli → inspector → core',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/inspector/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/cli/**', '**/commands/**', '@oclif/*'],
              message: 'imports flow commands → cli → inspector → core',
            },
          ],
        },
      ],
    },
  },
);
