/**
 * Global setup of the scale suite: a pid file every started process is written to (servers.ts), and a
 * teardown that kills whichever of them still runs, so a crashed test file leaves no redis-server behind.
 * Only pids listed in this run's file are touched, and only if they still run redis-server or node.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'bananas-scale-'));
  const pidFile = join(dir, 'pids');
  writeFileSync(pidFile, '');
  process.env.BANANAS_SCALE_PIDS = pidFile;
  return () => {
    const pids = readFileSync(pidFile, 'utf8').split('\n').filter(Boolean).map(Number);
    let killed = 0;
    for (const pid of new Set(pids)) {
      if (!/redis-server|node/.test(commandLine(pid))) continue;
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        // Already gone.
      }
    }
    if (killed > 0) console.warn(`scale suite teardown: killed ${killed} leftover process(es)`);
    rmSync(dir, { recursive: true, force: true });
  };
}
