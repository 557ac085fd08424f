/**
 * Loads the Lua scripts in ./lua (one file per atomic operation, named `<verb>-<numKeys>.lua`) and
 * registers them on a connection. The shared fragment `_queue-keys.lua` is prepended to each script.
 * ioredis sends EVALSHA and falls back to EVAL after a server restart (NOSCRIPT).
 */
import { readFileSync, readdirSync } from 'node:fs';
import type { RedisClient } from './connection.js';

const LUA_DIR = new URL('./lua/', import.meta.url);

interface LoadedScript {
  numberOfKeys: number;
  lua: string;
}

let cache: Map<string, LoadedScript> | undefined;

/** A top-level definition of the shared fragment: the name it defines and its text (comments included). */
interface SharedDefinition {
  name: string;
  text: string;
}

const NAME = /\b(bananas[A-Za-z]+|BANANAS_[A-Z_]+)\b/g;

/**
 * Splits the shared fragment into its top-level definitions (`local function bananasX(…)`, `local bananasY =
 * …`), each with the comment lines above it; the fragment's own header comment is left out.
 */
export function sharedDefinitions(fragment: string): SharedDefinition[] {
  const definitions: SharedDefinition[] = [];
  let loose: string[] = []; // comment and blank lines at the top level, not placed yet
  for (const line of fragment.split('\n')) {
    const start = /^local (?:function )?(\w+)/.exec(line);
    if (start) {
      definitions.push({ name: start[1]!, text: [...loose, line].join('\n') });
      loose = [];
    } else if (line === '' && definitions.length === 0) {
      loose = []; // the fragment's header ends at its first blank line
    } else if (line === '' || line.startsWith('--')) {
      loose.push(line);
    } else if (definitions.length > 0) {
      definitions[definitions.length - 1]!.text += `\n${[...loose, line].join('\n')}`;
      loose = [];
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
    scripts.set(name, { numberOfKeys: Number(keys), lua: `${sharedPrelude(shared, body)}\n${body}` });
  }
  cache = scripts;
  return scripts;
}

const registered = new WeakSet<RedisClient>();

type ScriptArg = string | number | Buffer;
type ScriptCommand<T> = (...args: ScriptArg[]) => Promise<T>;

function command<T>(redis: RedisClient, name: string, suffix: '' | 'Buffer'): ScriptCommand<T> {
  const scripts = loadScripts();
  if (!scripts.has(name)) throw new Error(`unknown Lua script ${name}`);
  if (!registered.has(redis)) {
    for (const [scriptName, script] of scripts)
      redis.defineCommand(`bananas_${scriptName.replace(/-/g, '_')}`, script);
    registered.add(redis);
  }
  const method = `bananas_${name.replace(/-/g, '_')}${suffix}`;
  return (redis as unknown as Record<string, ScriptCommand<T>>)[method]!.bind(redis);
}

/**
 * Runs the script `<name>-<n>.lua` on `redis` (registering all scripts on first use). `keys` are its
 * KEYS, `args` its ARGV, as its header documents.
 */
export function runScript<T = unknown>(
  redis: RedisClient,
  name: string,
  keys: string[],
  args: ScriptArg[],
): Promise<T> {
  return command<T>(redis, name, '')(...keys, ...args);
}

/** Same as {@link runScript}, but replies come back as Buffers (documents keep their exact bytes). */
export function runScriptBuffer<T = unknown>(
  redis: RedisClient,
  name: string,
  keys: string[],
  args: ScriptArg[],
): Promise<T> {
  return command<T>(redis, name, 'Buffer')(...keys, ...args);
}
