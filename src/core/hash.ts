/** Hashes shared by TypeScript and the Lua scripts. */
import { createHash } from 'node:crypto';

/**
 * SHA-1 (hex) of a document's exact bytes, as Lua's `redis.sha1hex` computes it: the scripts compare it to
 * check that a document is still the one the caller read.
 */
export function sha1Hex(bytes: Buffer | string): string {
  return createHash('sha1').update(bytes).digest('hex');
}
