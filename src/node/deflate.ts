/**
 * permessage-deflate (RFC 7692) for one connection: compress what we send, inflate what we
 * receive, with the zlib streams this needs. Negotiation is protocol/deflate-negotiation.ts;
 * this file only runs zlib with the agreed parameters.
 *
 * Memory is what makes compression dangerous on a server (a compressor with a 15-bit window
 * is about 256 KiB, an inflater about 40 KiB), so:
 * - a direction with "no context takeover" holds no state between messages: each whole
 *   message borrows a stream from one pool shared by every connection (at most
 *   `concurrencyLimit` idle streams per configuration are kept);
 * - a direction with context takeover gets a stream of its own, created on first use: a
 *   connection that never sends or receives a compressed message holds none;
 * - one timer for the whole process closes our own compressors and pooled streams left idle
 *   for IDLE_RELEASE_MS (starting a compressor over is always decodable); an inflater with
 *   takeover stays, because the peer's next message may refer back into it;
 * - inflating stops as soon as the output passes maxPayload (1009), without inflating the rest;
 * - closing the connection closes its streams (after a job in flight, if any, finished).
 *
 * zlib runs on libuv's thread pool; ZlibLimiter keeps at most `concurrencyLimit` jobs there at
 * once, process-wide, so compression cannot starve file system and DNS work, and jobs of many
 * connections are served in arrival order.
 */
import * as zlib from 'node:zlib';
import { CloseCode } from '../protocol/close-codes.js';
import type { DeflateOptions, DeflateParams } from '../protocol/deflate-negotiation.js';
import { TRAILER, ZlibPool, ZlibStream, deflateError, type DeflateError, type Done } from './zlib-stream.js';

export type { DeflateError } from './zlib-stream.js';

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
}

/**
 * Every default, stated once. `threshold`: below about 1 KiB the frame header and deflate's
 * block overhead eat most of the gain, and each job costs a trip to the thread pool.
 * `level` 1: for messages of a few KiB, levels 1 to 9 compress within a few percent of each
 * other (measured on JSON chat traffic), while level 1 costs far less CPU on large messages.
 * `concurrencyLimit` 4: libuv's default pool size; more would only queue inside libuv, in
 * front of file system and DNS work.
 */
export const PER_MESSAGE_DEFLATE_DEFAULTS = {
  threshold: 1024,
  level: 1,
  memLevel: 8,
  concurrencyLimit: 4,
} as const;

/** Idle zlib streams are closed after this long without use (one timer for the process). */
export const IDLE_RELEASE_MS = 10_000;

/** The settings a connection compresses with (resolved once per server or client). */
export interface DeflateSettings {
  threshold: number;
  level: number;
  memLevel: number;
}

/** Check and resolve user options; throws RangeError/TypeError for bad values. */
export function resolveDeflateSettings(options: PerMessageDeflateOptions): DeflateSettings {
  const threshold = options.threshold ?? PER_MESSAGE_DEFLATE_DEFAULTS.threshold;
  const level = options.level ?? PER_MESSAGE_DEFLATE_DEFAULTS.level;
  const memLevel = options.memLevel ?? PER_MESSAGE_DEFLATE_DEFAULTS.memLevel;
  if (!(Number.isInteger(threshold) && threshold >= 0)) throw new RangeError(`perMessageDeflate.threshold must be an integer >= 0, got ${String(threshold)}`);
  if (!(Number.isInteger(level) && level >= 0 && level <= 9)) throw new RangeError(`perMessageDeflate.level must be an integer from 0 to 9, got ${String(level)}`);
  if (!(Number.isInteger(memLevel) && memLevel >= 1 && memLevel <= 9)) throw new RangeError(`perMessageDeflate.memLevel must be an integer from 1 to 9, got ${String(memLevel)}`);
  if (options.concurrencyLimit !== undefined) {
    const limit = options.concurrencyLimit;
    if (!(Number.isInteger(limit) && limit >= 1)) throw new RangeError(`perMessageDeflate.concurrencyLimit must be an integer >= 1, got ${String(limit)}`);
    zlibLimiter.limit = limit;
    pool.maxIdle = limit;
  }
  return { threshold, level, memLevel };
}

/** Runs at most `limit` zlib jobs at once; the rest wait in arrival order. */
export class ZlibLimiter {
  limit: number;
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Jobs running and waiting (for tests and stats). */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }

  /** Start `job` now or when a slot frees; the job must call done() exactly once. */
  run(job: () => void): void {
    if (this.running < this.limit) {
      this.running++;
      job();
    } else {
      this.waiting.push(job);
    }
  }

  done(): void {
    this.running--;
    while (this.running < this.limit && this.waiting.length > 0) {
      this.running++;
      this.waiting.shift()!();
    }
  }
}

/** The process-wide limiter (see PerMessageDeflateOptions.concurrencyLimit). */
export const zlibLimiter = new ZlibLimiter(PER_MESSAGE_DEFLATE_DEFAULTS.concurrencyLimit);

// zlib cannot set up a raw deflate stream with 8-bit windows; 9 is decodable by a peer that
// agreed to 8 (see deflate-negotiation.ts), and inflating with a larger window is always safe.
const zlibWindowBits = (bits: number): number => Math.max(9, bits);

/** Streams for directions without context takeover, shared by all connections. */
const pool = new ZlibPool(PER_MESSAGE_DEFLATE_DEFAULTS.concurrencyLimit);

/** Connections with zlib streams of their own, checked by the idle timer. */
const live = new Set<MessageDeflate>();
let idleTimer: NodeJS.Timeout | undefined;

function sweepIdle(): void {
  for (const md of live) md.releaseIfIdle();
  pool.sweep();
  if (live.size === 0 && pool.size === 0 && idleTimer !== undefined) {
    clearInterval(idleTimer);
    idleTimer = undefined;
  }
}

function startIdleTimer(): void {
  if (idleTimer === undefined) {
    idleTimer = setInterval(sweepIdle, IDLE_RELEASE_MS);
    idleTimer.unref();
  }
}

/** zlib streams alive in this process: connections' own plus the shared pool (for tests and stats). */
export function liveDeflateContexts(): number {
  let n = pool.size;
  for (const md of live) n += md.streamCount;
  return n;
}

/**
 * Run one whole-message job on a pooled stream (a direction without context takeover): the
 * stream goes back to the pool afterwards, reset, unless the job failed.
 */
function runPooled(key: string, create: () => ZlibStream, data: Buffer, inflate: boolean, limit: number, cb: Done): void {
  const stream = pool.acquire(key, create);
  startIdleTimer();
  stream.run(data, inflate, limit, (err, out) => {
    if (err === null) pool.release(key, stream);
    zlibLimiter.done();
    cb(err, out);
  });
}

const closedError = (what: string): DeflateError =>
  deflateError('WS_ERR_NOT_OPEN', `the connection closed while a message was being ${what}`, CloseCode.ABNORMAL_CLOSURE);

/**
 * Compression state of one connection. Jobs of one direction must not overlap: the connection
 * sends one compressed message at a time (its send queue) and pauses its parser while a
 * message is inflated.
 *
 * A direction with context takeover needs a stream of its own (the next message may refer
 * back into it). A direction without takeover borrows a stream from the shared pool for each
 * whole message, so it holds nothing between messages.
 */
export class MessageDeflate {
  readonly params: DeflateParams;
  readonly settings: DeflateSettings;
  private readonly isServer: boolean;
  private readonly maxPayload: number;

  private deflater: ZlibStream | undefined;
  private inflater: ZlibStream | undefined;
  /** A fragmented compressed message is being sent: the compressor must not be reset. */
  private midMessage = false;
  /** A frame compressed elsewhere (SharedMessage) was sent: start our compressor over. */
  private compressorStale = false;
  private released = false;

  constructor(params: DeflateParams, settings: DeflateSettings, isServer: boolean, maxPayload: number) {
    this.params = params;
    this.settings = settings;
    this.isServer = isServer;
    this.maxPayload = maxPayload;
  }

  /** Our compressor must start over after each message. */
  private get ownNoContextTakeover(): boolean {
    return this.isServer ? this.params.serverNoContextTakeover : this.params.clientNoContextTakeover;
  }

  /** The peer's compressor starts over after each message, so we need no inflate state between them. */
  private get peerNoContextTakeover(): boolean {
    return this.isServer ? this.params.clientNoContextTakeover : this.params.serverNoContextTakeover;
  }

  /** Largest window we may compress with (what a shared frame must respect). */
  get ownWindowBits(): number {
    return this.isServer ? this.params.serverMaxWindowBits : this.params.clientMaxWindowBits;
  }

  private get peerWindowBits(): number {
    return this.isServer ? this.params.clientMaxWindowBits : this.params.serverMaxWindowBits;
  }

  /** zlib streams this connection holds of its own now (0, 1 or 2). */
  get streamCount(): number {
    return (this.deflater ? 1 : 0) + (this.inflater ? 1 : 0);
  }

  /**
   * A frame compressed on its own (no reference to earlier messages) was sent on this
   * connection; our compressor's history no longer matches the peer's, so it starts over.
   */
  sharedFrameSent(): void {
    this.compressorStale = true;
  }

  private newDeflater(): ZlibStream {
    return new ZlibStream(false, { level: this.settings.level, memLevel: this.settings.memLevel, windowBits: zlibWindowBits(this.ownWindowBits) });
  }

  private newInflater(): ZlibStream {
    return new ZlibStream(true, { windowBits: zlibWindowBits(this.peerWindowBits) });
  }

  /**
   * Compress one message or fragment. With `fin` the message ends: the trailing 00 00 ff ff
   * is removed (RFC 7692 section 7.2.1). Calls back asynchronously, in order.
   */
  compress(data: Buffer, fin: boolean, cb: Done): void {
    zlibLimiter.run(() => {
      if (this.released) {
        zlibLimiter.done();
        cb(closedError('compressed'));
        return;
      }
      const strip = (out: Buffer): Buffer => (fin ? out.subarray(0, out.length - TRAILER.length) : out);
      if (fin && !this.midMessage && this.ownNoContextTakeover) {
        // A whole message with no history before or after it: any pooled stream will do.
        const key = `d${this.ownWindowBits}/${this.settings.level}/${this.settings.memLevel}`;
        runPooled(key, () => this.newDeflater(), data, false, 0, (err, out) => cb(err, err === null ? strip(out!) : undefined));
        return;
      }
      let stream = this.deflater;
      if (stream !== undefined && this.compressorStale && !this.midMessage) {
        stream.reset();
        this.compressorStale = false;
      }
      if (stream === undefined) {
        stream = this.deflater = this.newDeflater();
        this.compressorStale = false;
        live.add(this);
        startIdleTimer();
      }
      stream.run(data, false, 0, (err, out) => {
        if (err !== null) {
          this.deflater = undefined;
          this.midMessage = false;
        } else if (fin) {
          this.midMessage = false;
          if (this.ownNoContextTakeover) stream.reset();
        } else {
          this.midMessage = true;
        }
        zlibLimiter.done();
        if (this.released) this.closeStreams();
        cb(err, err === null ? strip(out!) : undefined);
      });
    });
  }

  /**
   * Inflate one whole compressed message. Fails with 1009 (WS_ERR_UNSUPPORTED_MESSAGE_LENGTH)
   * as soon as the output passes maxPayload, and with 1007 (WS_ERR_INFLATE) for data zlib
   * cannot decode. Calls back asynchronously.
   */
  decompress(data: Buffer, cb: Done): void {
    zlibLimiter.run(() => {
      if (this.released) {
        zlibLimiter.done();
        cb(closedError('inflated'));
        return;
      }
      if (this.peerNoContextTakeover) {
        runPooled(`i${this.peerWindowBits}`, () => this.newInflater(), data, true, this.maxPayload, cb);
        return;
      }
      let stream = this.inflater;
      if (stream === undefined) {
        stream = this.inflater = this.newInflater();
        live.add(this);
        startIdleTimer();
      }
      stream.run(data, true, this.maxPayload, (err, out) => {
        if (err !== null) this.inflater = undefined;
        else if (stream.ended) this.restartInflater(stream, out!);
        zlibLimiter.done();
        if (this.released) this.closeStreams();
        cb(err, out);
      });
    });
  }

  /**
   * The peer ended its deflate stream with a BFINAL block (RFC 7692 7.2.3.4) while context
   * takeover is on: its next message may still refer back into the window, so a new inflater
   * starts with the end of this message's output as its dictionary. (References reaching
   * further back, into earlier messages, then fail loudly with 1007 rather than silently.)
   */
  private restartInflater(ended: ZlibStream, output: Buffer): void {
    ended.close();
    const window = 1 << zlibWindowBits(this.peerWindowBits);
    const dictionary = Buffer.from(output.subarray(Math.max(0, output.length - window)));
    this.inflater = new ZlibStream(true, { windowBits: zlibWindowBits(this.peerWindowBits), dictionary });
  }

  /** The connection closed: close the streams now, or once the job in flight finished. */
  release(): void {
    this.released = true;
    this.closeStreams();
  }

  /**
   * Idle timer: close our compressor when it was not used since the last look (starting over
   * is always decodable). An inflater of our own exists only with context takeover, where the
   * peer may still refer back into it, so it stays.
   * @internal
   */
  releaseIfIdle(): void {
    const deflater = this.deflater;
    if (deflater !== undefined && !deflater.busy && !this.midMessage) {
      if (deflater.used) deflater.used = false;
      else {
        deflater.close();
        this.deflater = undefined;
      }
    }
    if (this.streamCount === 0) live.delete(this);
  }

  private closeStreams(): void {
    if (this.deflater !== undefined && !this.deflater.busy) {
      this.deflater.close();
      this.deflater = undefined;
    }
    if (this.inflater !== undefined && !this.inflater.busy) {
      this.inflater.close();
      this.inflater = undefined;
    }
    if (this.streamCount === 0) live.delete(this);
  }
}

/**
 * Compress a whole message on its own, synchronously, for frames shared by many connections
 * (publish, broadcast): no history before or after it, so any peer decodes it whatever its
 * context-takeover state, provided `windowBits` is no larger than the peer agreed to.
 */
export function compressStandalone(payload: Buffer, windowBits: number, settings: DeflateSettings): Buffer {
  const out = zlib.deflateRawSync(payload, {
    level: settings.level,
    memLevel: settings.memLevel,
    windowBits: zlibWindowBits(windowBits),
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
  });
  return out.subarray(0, out.length - TRAILER.length);
}
