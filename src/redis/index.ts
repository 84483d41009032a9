/**
 * duet/redis: the Redis broker, for several duet processes (on one machine or many) sharing
 * one topic space, with history and recovery in Redis. Needs `ioredis` (an optional peer
 * dependency: `npm install ioredis`). See docs/scaling.md.
 */
export { RedisBroker } from './broker.js';
export type { RedisBrokerOptions, RedisBrokerStats } from './broker.js';
