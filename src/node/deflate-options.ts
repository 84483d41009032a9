/**
 * The `perMessageDeflate` options of servers and clients: what each means, every default
 * stated once with the reason for it, and the check that turns them into DeflateSettings.
 */
import type { DeflateOptions } from '../protocol/deflate-negotiation.js';

/** `perMessageDeflate` options of the server and the client (negotiation options included). */
export interface PerMessageDeflateOptions extends DeflateOptions {
  /** Messages smaller than this many bytes are sent uncompressed (default 1024). */
  threshold?: number;
  /** zlib compression level, 0-9 (default 1). */
  level?: number;
  /** zlib memLevel, 1-9: memory of our compressor's hash tables (default 8). */
  memLevel?: number;
  /**
   * How many zlib jobs may run at once in this process (default 4, the size of libuv's thread
   * pool). Process-wide: the last value given by any server or client is the one in force.
   */
  concurrencyLimit?: number;
  /**
   * Largest size, in bytes, a compressed message may inflate to (default 4 MiB); past it the
   * connection closes with 1009. maxPayload applies too: the lower of the two wins. 0 = only
   * maxPayload.
   */
  maxInflatedPayload?: number;
  /**
   * Inflate budget of one connection, in bytes of inflated output per second (default 32 MiB
   * on a server, none on a client; each message counts at least MESSAGE_COST, 16 KiB). Past it
   * the connection's next compressed message waits, and its socket stays paused, until the
   * budget has refilled. 0 = no budget.
   */
  maxInflateRate?: number;
  /**
   * Publishes and broadcasts larger than this many bytes are sent uncompressed (default 1 MiB):
   * they are compressed once for all subscribers, synchronously, and this bounds how long one
   * can hold the event loop (at level 1 here: 2.6 ms for 1 MiB of JSON, 21 ms of random bytes).
   */
  publishCompressLimit?: number;
}

/**
 * Every default, stated once. `threshold`: below about 1 KiB the frame header and deflate's
 * block overhead eat most of the gain, and each job costs a trip to the thread pool.
 * `level` 1: for messages of a few KiB, levels 1 to 9 compress within a few percent of each
 * other (measured on JSON chat traffic), while level 1 costs far less CPU on large messages.
 * `concurrencyLimit` 4: libuv's default pool size; more would only queue inside libuv, in
 * front of file system and DNS work.
 * `maxInflatedPayload` 4 MiB: a few KB on the wire inflate to it (deflate reaches about
 * 1:1030), so it is what one connection can make the server hold per message; undici's client
 * chose 4 MiB too, Centrifugo 10 x its 64 KB message limit. Larger compressed messages are an
 * explicit choice (uncompressed ones are still bounded by maxPayload alone: they cost the
 * sender as much bandwidth as the server memory).
 * `maxInflateRate` 32 MiB/s on a server: far above what a browser sends, and about a tenth of a
 * core per connection at most for inflating (about 3 ms of CPU per MiB here; see
 * docs/compression.md). None on a client: it has no other peers to protect, and a feed it
 * subscribed to may well send faster.
 * `publishCompressLimit` 1 MiB: a dashboard's snapshot of a few hundred KB of JSON still goes out
 * compressed (about 1 ms), and no publish holds the event loop for more than a few ms of JSON
 * (a 100 MiB broadcast held it for 386 ms). Keep maxInflatedPayload at or under it on a server
 * that relays what it receives, or a bomb goes out inflated to every subscriber.
 */
export const PER_MESSAGE_DEFLATE_DEFAULTS = {
  threshold: 1024,
  level: 1,
  memLevel: 8,
  concurrencyLimit: 4,
  maxInflatedPayload: 4 * 1024 * 1024,
  maxInflateRate: 32 * 1024 * 1024,
  publishCompressLimit: 1024 * 1024,
} as const;

/**
 * What one compressed message counts against `maxInflateRate` at least. A zlib job has a fixed
 * cost: a tiny message takes 35-40 µs of CPU here, as much as inflating 12-16 KiB, so tiny
 * messages are held to the same tenth of a core (2,048 a second at the default rate).
 */
export const MESSAGE_COST = 16 * 1024;

/** The settings a connection compresses with (resolved once per server or client). */
export interface DeflateSettings {
  threshold: number;
  level: number;
  memLevel: number;
  maxInflatedPayload: number;
  /** undefined: the default for the side (a server's or a client's). */
  maxInflateRate: number | undefined;
  publishCompressLimit: number;
}

/** A whole number of bytes >= 0 (the options that are sizes or rates). */
function byteOption(
  options: PerMessageDeflateOptions,
  name: 'maxInflatedPayload' | 'maxInflateRate' | 'publishCompressLimit' | 'threshold',
): number {
  const value = options[name] ?? PER_MESSAGE_DEFLATE_DEFAULTS[name];
  if (!(Number.isSafeInteger(value) && value >= 0))
    throw new RangeError(`perMessageDeflate.${name} must be an integer >= 0, got ${String(value)}`);
  return value;
}

/** Check the options and fill in the defaults; throws RangeError for bad values. */
export function checkDeflateOptions(options: PerMessageDeflateOptions): DeflateSettings {
  const threshold = byteOption(options, 'threshold');
  const maxInflatedPayload = byteOption(options, 'maxInflatedPayload');
  const maxInflateRate = options.maxInflateRate === undefined ? undefined : byteOption(options, 'maxInflateRate');
  const publishCompressLimit = byteOption(options, 'publishCompressLimit');
  const level = options.level ?? PER_MESSAGE_DEFLATE_DEFAULTS.level;
  const memLevel = options.memLevel ?? PER_MESSAGE_DEFLATE_DEFAULTS.memLevel;
  if (!(Number.isInteger(level) && level >= 0 && level <= 9))
    throw new RangeError(`perMessageDeflate.level must be an integer from 0 to 9, got ${String(level)}`);
  if (!(Number.isInteger(memLevel) && memLevel >= 1 && memLevel <= 9))
    throw new RangeError(`perMessageDeflate.memLevel must be an integer from 1 to 9, got ${String(memLevel)}`);
  const limit = options.concurrencyLimit;
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1))
    throw new RangeError(`perMessageDeflate.concurrencyLimit must be an integer >= 1, got ${String(limit)}`);
  return { threshold, level, memLevel, maxInflatedPayload, maxInflateRate, publishCompressLimit };
}
