/**
 * Loads the Lua scripts in ./lua (one file per atomic operation, named `<verb>-<numKeys>.lua`) and
 * registers them on a connection. The shared fragment `_queue-keys.lua` is prepended to each script.
 * ioredis sends EVALSHA and falls back to EVAL after a server restart (NOSCRIPT).
 */
import { readFileSync, readdirSync } from 'node:fs';
import type { Redis } from 'ioredis';

const LUA_DIR = new URL('./lua/', import.meta.url);

export const SCRIPT_NAMES = ['enqueue', 'dequeue', 'finish', 'promote', 'recover', 'extend'] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

interface LoadedScript {
  numberOfKeys: number;
  lua: string;
}

let cache: Map<ScriptName, LoadedScript> | undefined;

function loadScripts(): Map<ScriptName, LoadedScript> {
  if (cache) return cache;
  const shared = readFileSync(new URL('_queue-keys.lua', LUA_DIR), 'utf8');
  const files = readdirSync(LUA_DIR).filter((f) => /^[a-z]+-\d+\.lua$/.test(f));
  const scripts = new Map<ScriptName, LoadedScript>();
  for (const name of SCRIPT_NAMES) {
    const file = files.find((f) => f.startsWith(`${name}-`));
    if (!file) throw new Error(`missing Lua script for ${name} in ${LUA_DIR.pathname}`);
    const numberOfKeys = Number(/-(\d+)\.lua$/.exec(file)?.[1]);
    scripts.set(name, { numberOfKeys, lua: `${shared}\n${readFileSync(new URL(file, LUA_DIR), 'utf8')}` });
  }
  cache = scripts;
  return scripts;
}

const registered = new WeakSet<Redis>();

type ScriptArg = string | number | Buffer;
type ScriptCommand<T> = (...args: ScriptArg[]) => Promise<T>;

function command<T>(redis: Redis, name: string): ScriptCommand<T> {
  if (!registered.has(redis)) {
    for (const [scriptName, script] of loadScripts()) redis.defineCommand(`bananas_${scriptName}`, script);
    registered.add(redis);
  }
  return (redis as unknown as Record<string, ScriptCommand<T>>)[name]!.bind(redis);
}

/** Runs one of the scripts on `redis` (registering them on first use). */
export function runScript<T = unknown>(
  redis: Redis,
  name: ScriptName,
  keys: string[],
  args: ScriptArg[],
): Promise<T> {
  return command<T>(redis, `bananas_${name}`)(...keys, ...args);
}

/** Same as {@link runScript}, but replies come back as Buffers (documents keep their exact bytes). */
export function runScriptBuffer<T = unknown>(
  redis: Redis,
  name: ScriptName,
  keys: string[],
  args: ScriptArg[],
): Promise<T> {
  return command<T>(redis, `bananas_${name}Buffer`)(...keys, ...args);
}
