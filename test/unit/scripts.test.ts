import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Command } from 'ioredis';
import { encodeCommand, sharedDefinitions, sharedPrelude } from '../../src/core/scripts.js';

const LUA_DIR = new URL('../../src/core/lua/', import.meta.url);

describe('the shared Lua fragment', () => {
  const fragment = [
    '-- Header of the fragment.',
    '',
    '-- Doc of A.',
    'local function bananasA(x)',
    '  -- a comment in the body',
    '',
    '  return x',
    'end',
    '',
    'local bananasTable = {',
    '  f = function() return bananasA(1) end,',
    '}',
    '',
    '-- Doc of C, which uses the table.',
    'local function bananasC() return bananasTable.f() end',
    '',
    'local function bananasUnused() end',
    'local BANANAS_LIMIT = 5',
  ].join('\n');

  it('splits into top-level definitions, each with the comments above it and its whole body', () => {
    const definitions = sharedDefinitions(fragment);
    expect(definitions.map((d) => d.name)).toEqual([
      'bananasA',
      'bananasTable',
      'bananasC',
      'bananasUnused',
      'BANANAS_LIMIT',
    ]);
    // A: its doc comment and its whole body (lines 3 to 8: the header and the blank line after it are not).
    expect(definitions[0]!.text).toBe(fragment.split('\n').slice(2, 8).join('\n'));
    expect(definitions[1]!.text).toBe(
      ['', 'local bananasTable = {', '  f = function() return bananasA(1) end,', '}'].join('\n'),
    );
    expect(definitions[2]!.text).toContain('-- Doc of C');
  });

  it('refuses a fragment it cannot split safely', () => {
    expect(() => sharedDefinitions('local function helper() end')).toThrow(/must be named bananasX/);
    expect(() => sharedDefinitions('--[[ a block ]]\nlocal bananasA = 1')).toThrow(/--\[\[ blocks/);
    expect(() => sharedDefinitions('redis.call("PING")\nlocal bananasA = 1')).toThrow(/before the first/);
  });

  it('gives a script only what it uses, directly or through another definition, in the fragment order', () => {
    const definitions = sharedDefinitions(fragment);
    const prelude = sharedPrelude(definitions, 'return bananasC() + BANANAS_LIMIT');
    const defined = [...prelude.matchAll(/^local (?:function )?(\w+)/gm)].map((m) => m[1]);
    expect(defined).toEqual(['bananasA', 'bananasTable', 'bananasC', 'BANANAS_LIMIT']);
    expect(sharedPrelude(definitions, 'return 1')).toBe('');
  });

  it('every script gets a definition for each shared name it uses', () => {
    const definitions = sharedDefinitions(readFileSync(new URL('_queue-keys.lua', LUA_DIR), 'utf8'));
    const shared = new Set(definitions.map((d) => d.name));
    const scripts = readdirSync(LUA_DIR).filter((f) => /^[a-z][a-z-]*-\d+\.lua$/.test(f));
    expect(scripts.length).toBeGreaterThan(10);
    for (const file of scripts) {
      const body = readFileSync(new URL(file, LUA_DIR), 'utf8');
      const prelude = sharedPrelude(definitions, body);
      const defined = new Set([...prelude.matchAll(/^local (?:function )?(\w+)/gm)].map((m) => m[1]));
      for (const text of [body, prelude]) {
        for (const [name] of text.matchAll(/\b(bananas[A-Za-z]+|BANANAS_[A-Z_]+)\b/g)) {
          if (shared.has(name)) expect(defined.has(name), `${file} uses ${name}`).toBe(true);
        }
      }
    }
  });
});

describe('encodeCommand', () => {
  it('writes the bytes ioredis writes for the same command: text in UTF-8, Buffers as they are', () => {
    const text = ['sha', '2', 'k:é', '', 'x'.repeat(5000), '漢字 \u{1F34C}', '\r\n'];
    for (const args of [text, [...text, Buffer.from([0, 255, 13, 10])]]) {
      const expected = Buffer.from(new Command('evalsha', args).toWritable({}));
      expect(encodeCommand('evalsha', args).equals(expected)).toBe(true);
    }
    expect(encodeCommand('ping', []).toString()).toBe('*1\r\n$4\r\nping\r\n');
  });

  it('counts arguments that follow (more) in the array length: head then rest is the whole command', () => {
    const head = ['sha', '1', 'k:é'];
    const rest = ['a', Buffer.from([0, 13, 10]), '漢字'];
    const whole = encodeCommand('evalsha', [...head, ...rest]);
    const start = encodeCommand('evalsha', head, rest.length);
    // The rest encoded on its own, as a command named "" would carry it after its name.
    const restOnly = encodeCommand('', rest).subarray(`*${rest.length + 1}\r\n$0\r\n\r\n`.length);
    expect(Buffer.concat([start, restOnly]).equals(whole)).toBe(true);
    expect(start.subarray(0, 4).toString()).toBe('*7\r\n');
  });
});
