/**
 * bananas: library API for the Bananas job queue (wire-compatible with the original Go service and SDKs).
 */
export * from './core/codec.js';
export * from './core/connection.js';
export * from './core/duration.js';
export * from './core/errors.js';
export * from './core/handlers.js';
export * from './core/keys.js';
export * from './core/logger.js';
export * from './core/queue.js';
export * from './core/redact.js';
export * from './core/worker.js';
export * from './core/local-redis.js';
