/**
 * The base of every command: global flags (`--redis-url`/REDIS_URL, `--prefix`, `--json`), a fail-fast
 * Redis connection opened on demand and closed in finally(), and one place that turns errors into a
 * single stderr line and an exit code.
 */
import { Command, Errors, Flags, type Interfaces } from '@oclif/core';
import type { RedisOptions } from 'ioredis';
import {
  connectionLost,
  connectOrThrow,
  createRedis,
  DEFAULT_REDIS_URL,
  tlsOptions,
  type RedisClient,
} from '../core/connection.js';
import { BananasError, errorMessage, UsageError } from '../core/errors.js';
import { assertClusterPrefix, DEFAULT_PREFIX } from '../core/keys.js';
import { redactSecrets, redactUrl, secretsOf } from '../core/redact.js';
import { isTlsUrl, parseRedisUrl } from '../core/redis-url.js';
import { ExitCode, exitCodeFor, redisReplyOutcome } from './exit-codes.js';
import { startProgress, type Progress } from './progress.js';
import { interruptOnSignals } from './signals.js';

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<
  (typeof BananasCommand)['baseFlags'] & T['flags']
>;
export type BaseArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>;

export abstract class BananasCommand<T extends typeof Command> extends Command {
  static override enableJsonFlag = true;

  static override baseFlags = {
    'redis-url': Flags.string({
      env: 'REDIS_URL',
      summary: `Redis URL: redis[s]://, redis[s]+cluster://h1:port,h2:port, redis[s]+sentinel://h1:26379,h2:26379/<master> [default: ${DEFAULT_REDIS_URL}]`,
      helpGroup: 'GLOBAL',
    }),
    prefix: Flags.string({
      env: 'BANANAS_PREFIX',
      summary: 'Key prefix of the deployment',
      default: DEFAULT_PREFIX,
      helpGroup: 'GLOBAL',
    }),
    'tls-ca': Flags.string({
      env: 'REDIS_TLS_CA',
      summary: 'CA certificate file (PEM) that signs the Redis server certificate (rediss:// only)',
      helpGroup: 'GLOBAL',
    }),
    'tls-cert': Flags.string({
      env: 'REDIS_TLS_CERT',
      summary: 'Client certificate file (PEM), with --tls-key',
      helpGroup: 'GLOBAL',
    }),
    'tls-key': Flags.string({
      env: 'REDIS_TLS_KEY',
      summary: 'Private key file (PEM) of --tls-cert',
      helpGroup: 'GLOBAL',
    }),
    'tls-insecure': Flags.boolean({
      summary: 'Do not verify the Redis server certificate (testing only)',
      helpGroup: 'GLOBAL',
    }),
  };

  protected flags!: BaseFlags<T>;
  protected args!: BaseArgs<T>;
  private client?: RedisClient;
  /** Extra ioredis options for every connection of the command (TLS); set by init(). */
  protected redisOptions: RedisOptions = {};

  get redisUrl(): string {
    return this.flags['redis-url'] ?? DEFAULT_REDIS_URL;
  }

  public override async init(): Promise<void> {
    await super.init();
    const ctor = this.ctor as typeof BananasCommand;
    const { args, flags } = await this.parse({
      flags: ctor.flags,
      baseFlags: ctor.baseFlags,
      enableJsonFlag: ctor.enableJsonFlag,
      args: ctor.args,
      strict: ctor.strict,
    });
    this.flags = flags as BaseFlags<T>;
    this.args = args as BaseArgs<T>;
    this.checkTopology();
    this.redisOptions = this.connectionOptions();
  }

  /** A malformed cluster/sentinel URL, or a cluster with a prefix that is not one hash slot, is a usage error. */
  private checkTopology(): void {
    const topology = parseRedisUrl(this.redisUrl, redactUrl);
    const prefix = (this.flags as BaseFlags<typeof BananasCommand>).prefix;
    if (topology.kind === 'cluster') assertClusterPrefix(prefix);
  }

  /** The TLS flags as ioredis options (certificate files are read here, so a missing one fails at once). */
  private connectionOptions(): RedisOptions {
    const flags = this.flags as BaseFlags<typeof BananasCommand>;
    const tls = tlsOptions({
      ca: flags['tls-ca'],
      cert: flags['tls-cert'],
      key: flags['tls-key'],
      insecure: flags['tls-insecure'],
    });
    if (!tls) return {};
    if (!isTlsUrl(this.redisUrl)) {
      throw new UsageError(
        'the --tls-* flags need a rediss:// Redis URL (rediss+cluster:// or rediss+sentinel:// for those)',
      );
    }
    if (flags['tls-insecure']) {
      process.stderr.write(
        'bananas: warning: --tls-insecure: the Redis server certificate is not verified\n',
      );
    }
    return { tls };
  }

  /** A connected client (fail-fast: unreachable Redis or refused credentials throw a typed error). */
  protected async redis(): Promise<RedisClient> {
    if (!this.client) {
      const client = createRedis({
        url: this.redisUrl,
        mode: 'fail-fast',
        connectionName: `bananas-${this.id ?? 'cli'}`,
        redisOptions: this.redisOptions,
      });
      await connectOrThrow(client, this.redisUrl);
      this.client = client;
    }
    return this.client;
  }

  /** Human output goes to stdout unless --json is set (then only the JSON document is printed). */
  protected print(text: string): void {
    if (!this.jsonEnabled()) this.log(text);
  }

  /** Runs `work` with a progress spinner on stderr (see startProgress), stopped when it ends. */
  protected async withProgress<T>(label: string, work: (progress: Progress) => Promise<T>): Promise<T> {
    const progress = startProgress(label, { json: this.jsonEnabled() });
    try {
      return await work(progress);
    } finally {
      progress.stop();
    }
  }

  /**
   * Runs an operation that stops at a safe point on SIGINT/SIGTERM: `work` gets the signal to pass on
   * (a second signal exits at once). Then `progress` is stopped and `render(result)` printed; an
   * interrupted result is also written as JSON with --json, and the command exits 130 (SIGINT) or 143.
   */
  protected async runInterruptible<R extends { interrupted: boolean }>(
    work: (signal: AbortSignal) => Promise<R>,
    options: { progress: { stop(): void }; render: (result: R) => string },
  ): Promise<R> {
    const interruption = interruptOnSignals();
    let result: R;
    try {
      result = await work(interruption.signal);
    } finally {
      interruption.dispose();
      options.progress.stop();
    }
    this.print(options.render(result));
    if (result.interrupted) {
      if (this.jsonEnabled()) this.logJson(result);
      this.exit(interruption.exitCode() ?? 130);
    }
    return result;
  }

  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    // A call that failed because the connection was lost: say what ended it (no reply, a reset).
    if (this.client) err = connectionLost(this.client, err, this.redisUrl) ?? err;
    const secrets = secretsOf(this.flags?.['redis-url'] ?? process.env.REDIS_URL);
    let exitCode: number = ExitCode.ERROR;
    let code = 'ERROR';
    let text = errorMessage(err);
    const reply = err instanceof BananasError ? undefined : redisReplyOutcome(err);
    if (err instanceof BananasError) {
      exitCode = exitCodeFor(err.code);
      code = err.code;
    } else if (reply) {
      // Redis refused the command (ACL), cannot serve it now (replica, OOM…), or met a wrong-typed key.
      ({ exitCode, code, message: text } = reply);
    } else if (err instanceof Errors.CLIError && 'parse' in err) {
      exitCode = ExitCode.USAGE;
      code = 'USAGE';
    } else if (err instanceof Errors.ExitError) {
      throw err;
    } else if (err instanceof Errors.CLIError && err.oclif?.exit !== undefined) {
      exitCode = err.oclif.exit;
    }
    const message = oneLine(redactSecrets(text, secrets));
    if (this.jsonEnabled?.()) {
      process.stdout.write(`${JSON.stringify({ error: { code, message, exitCode } })}\n`);
    }
    process.stderr.write(`bananas: ${message}\n`);
    if (exitCode === ExitCode.ERROR && !(err instanceof BananasError) && process.env.DEBUG) {
      process.stderr.write(`${redactSecrets(err.stack ?? '', secrets)}\n`);
    }
    this.exit(exitCode);
  }

  protected override async finally(err: Error | undefined): Promise<unknown> {
    this.client?.disconnect();
    return super.finally(err);
  }
}

/**
 * oclif spreads parse errors over lines ("Parsing --delay \n\t<reason>\nSee more help with --help",
 * "The following errors occurred:\n  <reason>\n  <reason>"); the reasons are on later lines, so join them
 * into one line instead of keeping only the first.
 */
function oneLine(message: string): string {
  const lines = message
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && line !== 'See more help with --help');
  // "Parsing --x" adds nothing when the reason names the flag already.
  const parsing = /^Parsing (--\S+)$/.exec(lines[0] ?? '');
  if (parsing && lines.length > 1 && lines[1]?.includes(parsing[1] as string)) lines.shift();
  let out = '';
  let list = false;
  for (const line of lines) {
    out = out === '' ? line : `${out}${out.endsWith(':') ? '' : list ? ';' : ':'} ${line}`;
    list ||= line.endsWith(':');
  }
  return out === '' ? 'error' : out;
}
