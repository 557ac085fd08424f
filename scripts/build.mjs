// Compiles TypeScript and copies the Lua scripts next to the compiled core (tsc does not copy them).
import { execFileSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';

rmSync('dist', { recursive: true, force: true });
try {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], {
    stdio: 'inherit',
  });
} catch {
  process.exit(1);
}
cpSync('src/core/lua', 'dist/core/lua', { recursive: true });
