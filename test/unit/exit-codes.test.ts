import { describe, expect, it } from 'vitest';
import { redisReplyOutcome } from '../../src/cli/exit-codes.js';

/** An error as ioredis reports a Redis error reply (the command is attached). */
function reply(message: string, command?: { name: string; args: unknown[] }): Error {
  return Object.assign(new Error(message), command ? { command } : {});
}

describe('redisReplyOutcome', () => {
  it.for([
    ["NOPERM this user has no permissions to run the 'eval' command", 4, 'REDIS_AUTH'],
    ["READONLY You can't write against a read only replica.", 4, 'REDIS_UNAVAILABLE'],
    ["OOM command not allowed when used memory > 'maxmemory'.", 4, 'REDIS_UNAVAILABLE'],
    ['BUSY Redis is busy running a script.', 4, 'REDIS_UNAVAILABLE'],
    ['LOADING Redis is loading the dataset in memory', 4, 'REDIS_UNAVAILABLE'],
    ['WRONGTYPE Operation against a key holding the wrong kind of value', 8, 'CONFLICT'],
  ] as const)('%s → exit %i (%s)', ([message, exitCode, code]) => {
    expect(redisReplyOutcome(reply(message))).toEqual({ exitCode, code, message });
  });

  it('leaves other errors to the caller (an internal error)', () => {
    expect(redisReplyOutcome(reply('ERR unknown command'))).toBeUndefined();
    expect(redisReplyOutcome(new TypeError('x is undefined'))).toBeUndefined();
    expect(redisReplyOutcome('NOPERM as a string')).toMatchObject({ exitCode: 4 });
  });

  it('names the key of a plain command, not the SHA of a script, and drops the script location', () => {
    const wrongType = 'WRONGTYPE Operation against a key holding the wrong kind of value';
    expect(
      redisReplyOutcome(reply(wrongType, { name: 'lrange', args: ['b:queue:dead', 0, 9] }))?.message,
    ).toBe(`b:queue:dead: ${wrongType}`);
    const scripted = `${wrongType} script: ${'a'.repeat(40)}, on @user_script:84.`;
    expect(
      redisReplyOutcome(reply(scripted, { name: 'evalsha', args: ['a'.repeat(40), 1, 'k'] }))?.message,
    ).toBe(wrongType);
  });
});
