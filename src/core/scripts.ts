/**
 * Loads the Lua scripts in ./lua (one file per atomic operation, named `<verb>-<numKeys>.lua`) and runs
 * them. Each script is given the functions of the shared fragment `_queue-keys.lua` it uses. A script is
 * sent with EVAL (its source) the first time on a connection and with EVALSHA afterwards; a NOSCRIPT reply
 * (the server restarted or flushed its scripts) sends it again as EVAL.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { Command } from 'ioredis';
import type { RedisClient } from './connection.js';

const LUA_DIR = new URL('./lua/', import.meta.url);

interface LoadedScript {
  numberOfKeys: number;
  lua: string;
  sha: string;
  /** The connections (their sockets) it was sent to with EVAL. */
  loadedOn: WeakSet<object>;
}

let cache: Map<string, LoadedScript> | undefined;

/** A top-level definition of the shared fragment: the name it defines and its text (comments included). */
interface SharedDefinition {
  name: string;
  text: string;
}

/** The names the fragment may define: a script's use of one is found by this pattern. */
const NAME = /\b(bananas[A-Za-z]+|BANANAS_[A-Z_]+)\b/g;

/**
 * Splits the shared fragment into its top-level definitions (`local function bananasX(…)`, `local bananasY =
 * …`), each with the comment lines above it; the fragment's own header comment is left out. Throws on
 * what it cannot split safely: another name, a `--[[` block comment, a statement before the first
 * definition.
 */
export function sharedDefinitions(fragment: string): SharedDefinition[] {
  const definitions: SharedDefinition[] = [];
  let loose: string[] = []; // comment and blank lines at the top level, not placed yet
  for (const line of fragment.split('\n')) {
    const start = /^local (?:function )?(\w+)/.exec(line);
    if (start) {
      const name = start[1]!;
      // Only such names are found where a script uses them (and a multi-line comment would be cut).
      if (!new RegExp(`^${NAME.source}$`).test(name))
        throw new Error(`shared Lua fragment: ${name} must be named bananasX or BANANAS_X`);
      definitions.push({ name, text: [...loose, line].join('\n') });
      loose = [];
    } else if (line.startsWith('--[[')) {
      throw new Error('shared Lua fragment: use -- line comments, not --[[ blocks, at the top level');
    } else if (line === '' && definitions.length === 0) {
      loose = []; // the fragment's header ends at its first blank line
    } else if (line === '' || line.startsWith('--')) {
      loose.push(line);
    } else if (definitions.length > 0) {
      definitions[definitions.length - 1]!.text += `\n${[...loose, line].join('\n')}`;
      loose = [];
    } else {
      throw new Error(`shared Lua fragment: a statement before the first definition: ${line}`);
    }
  }
  return definitions;
}

/**
 * The definitions of the shared fragment that `script` uses, directly or through another one, in the
 * fragment's order: a script run defines only what it calls (each definition costs time on every call).
 */
export function sharedPrelude(definitions: SharedDefinition[], script: string): string {
  const byName = new Map(definitions.map((d) => [d.name, d]));
  const used = new Set<string>();
  const visit = (text: string): void => {
    for (const [, name] of text.matchAll(NAME)) {
      const definition = byName.get(name!);
      if (!definition || used.has(name!)) continue;
      used.add(name!);
      visit(definition.text);
    }
  };
  visit(script);
  return definitions
    .filter((d) => used.has(d.name))
    .map((d) => d.text)
    .join('\n');
}

/** Every `<name>-<numKeys>.lua` in ./lua, keyed by name; files starting with `_` are shared fragments. */
function loadScripts(): Map<string, LoadedScript> {
  if (cache) return cache;
  const shared = sharedDefinitions(readFileSync(new URL('_queue-keys.lua', LUA_DIR), 'utf8'));
  const scripts = new Map<string, LoadedScript>();
  for (const file of readdirSync(LUA_DIR)) {
    const match = /^([a-z][a-z-]*)-(\d+)\.lua$/.exec(file);
    if (!match) continue;
    const [, name, keys] = match as unknown as [string, string, string];
    if (scripts.has(name)) throw new Error(`two Lua scripts named ${name} in ${LUA_DIR.pathname}`);
    const body = readFileSync(new URL(file, LUA_DIR), 'utf8');
    const lua = `${sharedPrelude(shared, body)}\n${body}`;
    const sha = createHash('sha1').update(lua).digest('hex');
    scripts.set(name, { numberOfKeys: Number(keys), lua, sha, loadedOn: new WeakSet() });
  }
  cache = scripts;
  return scripts;
}

type ScriptArg = string | number | Buffer;

/**
 * An argument (ARGV, 0-based `index`) computed again each time the call is written to a connection: a
 * lease deadline stays a lease from the moment Redis can run the call, also when ioredis sends the call
 * again after a reconnect.
 */
export interface WrittenArg {
  index: number;
  value: () => string;
}

/** A script call's arguments (ARGV), encoded in the Redis protocol. */
interface EncodedArguments {
  /** How many arguments `body` holds. */
  readonly count: number;
  /** The arguments as bulk strings. */
  readonly body: Buffer;
}

/**
 * A script call whose arguments are already encoded ({@link prepareScript}): a caller that sends batch
 * after batch encodes the next one while Redis runs the one before.
 */
export interface PreparedScript extends EncodedArguments {
  readonly name: string;
  readonly keys: string[];
}

/**
 * One call of a script: EVALSHA, or EVAL with its source on a connection that has not run it yet (what
 * ioredis' defineCommand sends). The argument list is set after construction: ioredis' Command copies the
 * list it is given with Array.prototype.flat, at about 0.2 µs an argument, and a settlement of 25 jobs
 * passes 130 of them. The arguments of a prepared call, and of one with a Buffer among them (documents
 * kept as stored bytes: ioredis would measure and copy each text argument several times), are encoded
 * once, into `encoded`; the list then holds only the hash and the keys (what a cluster client routes by).
 */
class ScriptCommand extends Command {
  private readonly encoded: EncodedArguments | undefined;

  constructor(
    private readonly script: LoadedScript,
    keys: string[],
    args: ScriptArg[],
    replyEncoding: 'utf8' | null,
    prepared?: EncodedArguments,
    private readonly written?: WrittenArg,
  ) {
    super('evalsha', [], { replyEncoding });
    this.encoded =
      prepared ?? (args.some((arg) => Buffer.isBuffer(arg)) ? encodeScriptArguments(args) : undefined);
    if (written && this.encoded) throw new Error('a script call with Buffer arguments takes no WrittenArg');
    // Built with concat, not an array literal: V8 watches how long a literal's arrays live and, from the
    // commands in flight while a worker starts, decided to allocate this literal's arrays in its old
    // generation, where each then kept its arguments (a settlement's documents) alive until a full
    // collection. V8 does not track arrays that concat makes.
    this.args = ([script.sha, script.numberOfKeys] as ScriptArg[]).concat(keys, this.encoded ? [] : args);
    this.stringifyArguments();
  }

  override toWritable(socket: object): string | Buffer {
    if (!this.script.loadedOn.has(socket)) {
      this.script.loadedOn.add(socket);
      this.name = 'eval';
      this.args[0] = this.script.lua;
    } else if (this.name === 'eval') {
      // Sent again (a reconnect) on a connection that has run the script.
      this.name = 'evalsha';
      this.args[0] = this.script.sha;
    }
    const reject = this.reject;
    this.reject = (err: Error) => {
      if (err.message.includes('NOSCRIPT')) this.script.loadedOn.delete(socket);
      reject.call(this, err);
    };
    if (this.written) this.args[2 + this.script.numberOfKeys + this.written.index] = this.written.value();
    if (this.encoded) {
      const head = encodeCommand(this.name, this.args as string[], this.encoded.count);
      return Buffer.concat([head, this.encoded.body], head.length + this.encoded.body.length);
    }
    return super.toWritable(socket);
  }
}

/**
 * A command in the Redis protocol (an array of bulk strings), written straight into one Buffer: each
 * argument is measured once and written once. When an argument is a Buffer, ioredis measures each text
 * argument three times and copies it twice: a tenth of the CPU of a `dlq requeue`. (Without Buffers its
 * one string, encoded by the socket, costs no more than this.) `more`: arguments that will follow these
 * (already encoded with {@link encodeArguments}), counted in the array's length.
 */
export function encodeCommand(name: string, args: ReadonlyArray<string | Buffer>, more = 0): Buffer {
  const head = `*${args.length + more + 1}\r\n$${name.length}\r\n${name}\r\n`;
  return encodeArguments(args, head);
}

/** `args` as bulk strings, after `head` (ASCII), in one Buffer. */
function encodeArguments(args: ReadonlyArray<string | Buffer>, head = ''): Buffer {
  const lengths = new Array<number>(args.length);
  let size = head.length;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const length = typeof arg === 'string' ? Buffer.byteLength(arg) : arg.length;
    lengths[i] = length;
    size += length + 16; // "$", up to 12 digits, two CRLFs
  }
  const out = Buffer.allocUnsafe(size);
  let at = out.write(head, 0, 'latin1');
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    at += out.write(`$${lengths[i]!}\r\n`, at, 'latin1');
    at += typeof arg === 'string' ? out.write(arg, at, lengths[i]!) : arg.copy(out, at);
    out[at++] = 13;
    out[at++] = 10;
  }
  return out.subarray(0, at);
}

/**
 * Encodes a call of the script `<name>-<n>.lua` ahead of sending it with {@link runPrepared}: the costly
 * part of sending a call with thousands of arguments, done while the connection is busy with others.
 */
export function prepareScript(name: string, keys: string[], args: ScriptArg[]): PreparedScript {
  scriptNamed(name);
  return { name, keys, ...encodeScriptArguments(args) };
}

function encodeScriptArguments(args: ScriptArg[]): EncodedArguments {
  const texts = args.map((arg) => (typeof arg === 'number' ? String(arg) : arg));
  return { count: args.length, body: encodeArguments(texts) };
}

/** Runs a call prepared by {@link prepareScript}; replies as {@link runScript}'s. */
export function runPrepared<T = unknown>(redis: RedisClient, prepared: PreparedScript): Promise<T> {
  const script = scriptNamed(prepared.name);
  return withResend(
    () => redis.sendCommand(new ScriptCommand(script, prepared.keys, [], 'utf8', prepared)) as Promise<T>,
  );
}

function scriptNamed(name: string): LoadedScript {
  const script = loadScripts().get(name);
  if (!script) throw new Error(`unknown Lua script ${name}`);
  return script;
}

/** Sends a script call, and once more (as EVAL) after a NOSCRIPT reply. */
function withResend<T>(sendOnce: () => Promise<T>): Promise<T> {
  return sendOnce().catch((err: unknown) => {
    if (!(err instanceof Error) || !err.message.includes('NOSCRIPT')) throw err;
    return sendOnce(); // as EVAL: the NOSCRIPT reply took the connection off the script's list
  });
}

function send<T>(
  redis: RedisClient,
  name: string,
  keys: string[],
  args: ScriptArg[],
  encoding: 'utf8' | null,
  written?: WrittenArg,
) {
  const script = scriptNamed(name);
  return withResend(
    () =>
      redis.sendCommand(new ScriptCommand(script, keys, args, encoding, undefined, written)) as Promise<T>,
  );
}

/**
 * Runs the script `<name>-<n>.lua` on `redis`. `keys` are its KEYS, `args` its ARGV, as its header
 * documents.
 */
export function runScript<T = unknown>(
  redis: RedisClient,
  name: string,
  keys: string[],
  args: ScriptArg[],
): Promise<T> {
  return send<T>(redis, name, keys, args, 'utf8');
}

/**
 * Same as {@link runScript}, but replies come back as Buffers (documents keep their exact bytes). `written`:
 * an argument computed each time the call is written (its place in `args` holds a placeholder).
 */
export function runScriptBuffer<T = unknown>(
  redis: RedisClient,
  name: string,
  keys: string[],
  args: ScriptArg[],
  written?: WrittenArg,
): Promise<T> {
  return send<T>(redis, name, keys, args, null, written);
}
