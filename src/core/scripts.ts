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

/** Every `<name>-<numKeys>.lua` in ./lua, keyed by name; files starting with `_` are shared fragments. */
function loadScripts(): Map<string, LoadedScript> {
  if (cache) return cache;
  const shared = readFileSync(new URL('_queue-keys.lua', LUA_DIR), 'utf8');
  const scripts = new Map<string, LoadedScript>();
  for (const file of readdirSync(LUA_DIR)) {
    const match = /^([a-z][a-z-]*)-(\d+)\.lua$/.exec(file);
    if (!match) continue;
    const [, name, keys] = match as unknown as [string, string, string];
    if (scripts.has(name)) throw new Error(`two Lua scripts named ${name} in ${LUA_DIR.pathname}`);
    scripts.set(name, {
      numberOfKeys: Number(keys),
      lua: `${shared}\n${readFileSync(new URL(file, LUA_DIR), 'utf8')}`,
    });
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
