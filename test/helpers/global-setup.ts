/**
 * Starts one private redis-server for the integration tests (unless REDIS_URL is set) and shares its URL.
 */
import type { TestProject } from 'vitest/node';
import { RedisServer } from './redis-server.js';

let server: RedisServer | undefined;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let url = process.env.REDIS_URL;
  if (!url) {
    server = await RedisServer.start();
    url = server.url;
  }
  project.provide('redisUrl', url);
  return async () => {
    await server?.destroy();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}
