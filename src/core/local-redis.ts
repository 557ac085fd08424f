/**
 * A private, throwaway redis-server on a free loopback port (used by `bananas demo` and the tests).
 * Persistence is off unless extra arguments turn it on.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { BananasError } from './errors.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** True when a `redis-server` binary is on PATH. */
export function hasRedisServer(binary = 'redis-server'): boolean {
  const probe = spawnSync(binary, ['--version'], { stdio: 'ignore' });
  return probe.error === undefined && probe.status === 0;
}

export interface LocalRedisOptions {
  port?: number;
  /** Extra arguments, e.g. ['--appendonly', 'yes', '--appendfsync', 'always']. */
  args?: string[];
  /** Data directory to use (kept on destroy); default: a new temporary directory (removed on destroy). */
  dir?: string;
  binary?: string;
  /**
   * A TLS-only server: `port` is its TLS port and no plain port is opened by default (put `--port 0`
   * and the `--tls-*` arguments in `args`); readiness is checked with a PING over TLS, trusting `caFile`.
   */
  tls?: { port: number; caFile: string };
}

export class LocalRedisServer {
  readonly port: number;
  readonly dir: string;
  private readonly args: string[];
  private readonly ownsDir: boolean;
  private readonly binary: string;
  private readonly tls?: { port: number; caFile: string };
  private child?: ChildProcess;

  private constructor(port: number, dir: string, options: LocalRedisOptions) {
    this.port = port;
    this.dir = dir;
    this.args = options.args ?? [];
    this.ownsDir = options.dir === undefined;
    this.binary = options.binary ?? 'redis-server';
    this.tls = options.tls;
  }

  static async start(options: LocalRedisOptions = {}): Promise<LocalRedisServer> {
    if (!hasRedisServer(options.binary)) {
      throw new BananasError(
        'REDIS_UNAVAILABLE',
        `${options.binary ?? 'redis-server'} was not found on PATH`,
      );
    }
    const port = options.tls?.port ?? options.port ?? (await freePort());
    const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'bananas-redis-'));
    const server = new LocalRedisServer(port, dir, options);
    await server.spawn();
    return server;
  }

  get url(): string {
    return `${this.tls ? 'rediss' : 'redis'}://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the process (again, after {@link stop}) and waits until it answers PING. */
  async spawn(): Promise<void> {
    const port = this.tls ? [] : ['--port', String(this.port)];
    const base = [...port, '--bind', '127.0.0.1', '--dir', this.dir];
    const persistence = ['--save', '', '--appendonly', 'no'];
    this.child = spawn(this.binary, [...base, ...persistence, ...this.args], { stdio: 'ignore' });
    await waitForPing(this.port, 10_000, this.tls && { ca: readFileSync(this.tls.caFile) });
  }

  /** Sends a signal to the server (SIGKILL, SIGSTOP, SIGCONT…). */
  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    await exited;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.spawn();
  }

  /** Stops the server and removes its temporary directory. */
  async destroy(): Promise<void> {
    await this.stop();
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Waits until the server on `port` answers PING (over TLS when `tls` is given). */
export async function waitForPing(port: number, timeoutMs: number, tls?: { ca: Buffer }): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new Redis({
      port,
      host: '127.0.0.1',
      ...(tls ? { tls } : {}),
      lazyConnect: true,
      enableReadyCheck: false,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      client.disconnect();
      return;
    } catch (err) {
      client.disconnect();
      // A server that asks for a password is up.
      if (/NOAUTH|WRONGPASS/.test((err as Error).message)) return;
      if (Date.now() > deadline)
        throw new BananasError('REDIS_UNAVAILABLE', `redis-server on port ${port} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
