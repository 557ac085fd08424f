// Compiles TypeScript and copies the Lua scripts next to the compiled core (tsc does not copy them).
// The output is built aside and swapped in, so a running CLI never sees a half-built dist/.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, renameSync, rmSync } from 'node:fs';

const staging = `dist.build-${process.pid}`;
const retired = `dist.old-${process.pid}`;
try {
  execFileSync(
    process.execPath,
    ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json', '--outDir', staging],
    {
      stdio: 'inherit',
    },
  );
} catch {
  rmSync(staging, { recursive: true, force: true });
  process.exit(1);
}
cpSync('src/core/lua', `${staging}/core/lua`, { recursive: true });
if (existsSync('dist')) renameSync('dist', retired);
renameSync(staging, 'dist');
rmSync(retired, { recursive: true, force: true });
