/** Private redis-server instances for tests, on free loopback ports (never the shared 6379). */
export {
  LocalRedisServer as RedisServer,
  freePort,
  waitForPing,
  type LocalRedisOptions as RedisServerOptions,
} from '../../src/core/local-redis.js';
