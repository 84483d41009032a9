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
 * - a compressed message may inflate to at most `maxInflatedPayload` (and maxPayload): inflating
 *   stops as soon as the output passes it (1009), without inflating the rest, and what was
 *   collected is dropped at once;
 * - closing the connection closes its streams (a compression in progress is given up).
 *
 * zlib runs on libuv's thread pool, through one process-wide ZlibQueue (zlib-queue.ts) that
 * keeps at most `concurrencyLimit` jobs there at once and shares it fairly between
 * connections. On top of that each connection has an inflate budget (`maxInflateRate`): past
 * it, its next compressed message waits (and its socket stays paused) until the budget has
 * refilled, so one connection cannot keep the pool busy for everyone else.
 *
 * Why one file of ~430 lines: both directions of one connection's compression share the
 * stream ownership rules above (pooled or owned, the zlib queue, the budget); split, each half
 * would need the other's state to release its streams on close.
 */
import * as zlib from 'node:zlib';
import { CloseCode } from '../protocol/close-codes.js';
import type { DeflateParams } from '../protocol/deflate-negotiation.js';
import {
  MESSAGE_COST,
  PER_MESSAGE_DEFLATE_DEFAULTS,
  checkDeflateOptions,
  type DeflateSettings,
  type PerMessageDeflateOptions,
} from './deflate-options.js';
import { ZlibQueue } from './zlib-queue.js';
import { TRAILER, ZlibPool, ZlibStream, deflateError, type DeflateError, type Done } from './zlib-stream.js';

export type { DeflateError } from './zlib-stream.js';
export {
  MESSAGE_COST,
  PER_MESSAGE_DEFLATE_DEFAULTS,
  type DeflateSettings,
  type PerMessageDeflateOptions,
} from './deflate-options.js';

/** Idle zlib streams are closed after this long without use (one timer for the process). */
export const IDLE_RELEASE_MS = 10_000;

/** The process-wide queue of zlib jobs (see PerMessageDeflateOptions.concurrencyLimit). */
export const zlibQueue = new ZlibQueue(PER_MESSAGE_DEFLATE_DEFAULTS.concurrencyLimit);

// zlib cannot set up a raw deflate stream with 8-bit windows; 9 is decodable by a peer that
// agreed to 8 (see deflate-negotiation.ts), and inflating with a larger window is always safe.
const zlibWindowBits = (bits: number): number => Math.max(9, bits);

/** Streams for directions without context takeover, shared by all connections. */
const pool = new ZlibPool(PER_MESSAGE_DEFLATE_DEFAULTS.concurrencyLimit);

/**
 * Check and resolve user options (throws RangeError for bad values); `concurrencyLimit`, when
 * given, becomes the process-wide limit.
 */
export function resolveDeflateSettings(options: PerMessageDeflateOptions): DeflateSettings {
  const settings = checkDeflateOptions(options);
  if (options.concurrencyLimit !== undefined) {
    zlibQueue.limit = options.concurrencyLimit;
    pool.maxIdle = options.concurrencyLimit;
  }
  return settings;
}

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
 * stream goes back to the pool afterwards, reset, unless the job failed. Returns the stream
 * (busy until `cb`).
 */
function runPooled(
  key: string,
  create: () => ZlibStream,
  data: Buffer,
  limit: number,
  limitName: string,
  cb: Done,
): ZlibStream {
  const stream = pool.acquire(key, create);
  startIdleTimer();
  stream.run(data, limit, limitName, zlibQueue, (err, out) => {
    if (err === null) pool.release(key, stream);
    zlibQueue.done();
    cb(err, out);
  });
  return stream;
}

/** A compressed empty message: what remains of a sync flush's empty stored block without its 00 00 ff ff. */
const EMPTY_MESSAGE = Buffer.from([0x00]);

const closedError = (what: string): DeflateError =>
  deflateError(
    'WS_ERR_NOT_OPEN',
    `the connection closed while a message was being ${what}`,
    CloseCode.ABNORMAL_CLOSURE,
  );

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
  /** Largest inflated message: the lower of maxPayload and maxInflatedPayload (0: none). */
  private readonly inflateLimit: number;
  private readonly inflateLimitName: string;

  private deflater: ZlibStream | undefined;
  private inflater: ZlibStream | undefined;
  /** The streams (own or pooled) running this connection's jobs, given up on release. */
  private compressing: ZlibStream | undefined;
  private inflating: ZlibStream | undefined;
  /** maxInflateRate in force (bytes a second, 0: no budget). */
  private readonly inflateRate: number;
  /** Inflate budget in bytes (below 0: in debt), as of `budgetAt` (performance.now()). */
  private budget: number;
  private budgetAt: number;
  /** A compressed message waiting for the budget to refill. */
  private throttled: { timer: NodeJS.Timeout; cb: Done } | undefined;
  /** A fragmented compressed message is being sent: the compressor must not be reset. */
  private midMessage = false;
  /** A frame compressed elsewhere (SharedMessage) was sent: start our compressor over. */
  private compressorStale = false;
  private released = false;

  constructor(params: DeflateParams, settings: DeflateSettings, isServer: boolean, maxPayload: number) {
    this.params = params;
    this.settings = settings;
    this.isServer = isServer;
    const own = settings.maxInflatedPayload;
    const useOwn = own > 0 && (maxPayload === 0 || own < maxPayload);
    this.inflateLimit = useOwn ? own : maxPayload;
    this.inflateLimitName = useOwn ? 'maxInflatedPayload' : 'maxPayload';
    this.inflateRate = settings.maxInflateRate ?? (isServer ? PER_MESSAGE_DEFLATE_DEFAULTS.maxInflateRate : 0);
    this.budget = this.inflateRate;
    this.budgetAt = performance.now();
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
    return new ZlibStream(false, {
      level: this.settings.level,
      memLevel: this.settings.memLevel,
      windowBits: zlibWindowBits(this.ownWindowBits),
    });
  }

  private newInflater(): ZlibStream {
    return new ZlibStream(true, { windowBits: zlibWindowBits(this.peerWindowBits) });
  }

  /**
   * Compress one message or fragment. With `fin` the message ends: the trailing 00 00 ff ff
   * is removed (RFC 7692 section 7.2.1). Calls back asynchronously, in order.
   */
  compress(data: Buffer, fin: boolean, cb: Done): void {
    zlibQueue.run(() => {
      if (this.released) {
        zlibQueue.done();
        cb(closedError('compressed'));
        return;
      }
      // Every write ends with a sync flush, so output ends with 00 00 ff ff, which goes (RFC
      // 7692 7.2.1) - unless zlib had nothing to flush (an empty message right after another
      // flush): then the message is one empty stored block's first byte, 0x00 (7.2.3.6).
      const strip = (out: Buffer): Buffer =>
        !fin ? out : out.length === 0 ? EMPTY_MESSAGE : out.subarray(0, out.length - TRAILER.length);
      if (fin && !this.midMessage && this.ownNoContextTakeover) {
        // A whole message with no history before or after it: any pooled stream will do.
        const key = `d${this.ownWindowBits}/${this.settings.level}/${this.settings.memLevel}`;
        this.compressing = runPooled(
          key,
          () => this.newDeflater(),
          data,
          0,
          '',
          (err, out) => {
            this.compressing = undefined;
            cb(err, err === null ? strip(out!) : undefined);
          },
        );
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
      this.compressing = stream;
      stream.run(data, 0, '', zlibQueue, (err, out) => {
        this.compressing = undefined;
        if (err !== null) {
          this.deflater = undefined;
          this.midMessage = false;
        } else if (fin) {
          this.midMessage = false;
          if (this.ownNoContextTakeover) stream.reset();
        } else {
          this.midMessage = true;
        }
        zlibQueue.done();
        if (this.released) this.closeStreams();
        cb(err, err === null ? strip(out!) : undefined);
      });
    });
  }

  /**
   * Inflate one whole compressed message. Fails with 1009 (WS_ERR_UNSUPPORTED_MESSAGE_LENGTH)
   * as soon as the output passes the inflate limit (maxInflatedPayload or maxPayload), and with
   * 1007 (WS_ERR_INFLATE) for data zlib cannot decode. Calls back asynchronously; when the
   * connection has used up its inflate budget (maxInflateRate), only once it has refilled.
   */
  decompress(data: Buffer, cb: Done): void {
    const wait = this.budgetWait();
    if (wait > 0) {
      const timer = setTimeout(() => {
        this.throttled = undefined;
        this.inflate(data, cb);
      }, wait);
      this.throttled = { timer, cb };
      return;
    }
    this.inflate(data, cb);
  }

  /** Milliseconds until the inflate budget is out of debt (0: now), refilling it first. */
  private budgetWait(): number {
    const rate = this.inflateRate;
    if (rate === 0) return 0;
    const now = performance.now();
    this.budget = Math.min(rate, this.budget + ((now - this.budgetAt) * rate) / 1000);
    this.budgetAt = now;
    return this.budget >= 0 ? 0 : Math.ceil((-this.budget * 1000) / rate);
  }

  private inflate(data: Buffer, cb: Done): void {
    const done: Done = (err, out) => {
      this.inflating = undefined;
      if (err === null) this.budget -= Math.max(out!.length, MESSAGE_COST);
      cb(err, out);
    };
    zlibQueue.run(() => {
      if (this.released) {
        zlibQueue.done();
        cb(closedError('inflated'));
        return;
      }
      if (this.peerNoContextTakeover) {
        this.inflating = runPooled(
          `i${this.peerWindowBits}`,
          () => this.newInflater(),
          data,
          this.inflateLimit,
          this.inflateLimitName,
          done,
        );
        return;
      }
      let stream = this.inflater;
      if (stream === undefined) {
        stream = this.inflater = this.newInflater();
        live.add(this);
        startIdleTimer();
      }
      this.inflating = stream;
      stream.run(data, this.inflateLimit, this.inflateLimitName, zlibQueue, (err, out) => {
        if (err !== null) this.inflater = undefined;
        else if (stream.ended) this.restartInflater(stream, out!);
        zlibQueue.done();
        if (this.released) this.closeStreams();
        done(err, out);
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

  /**
   * The connection closed: a job in progress is given up (its output dropped, its callback
   * told WS_ERR_NOT_OPEN), and the streams are closed.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    const throttled = this.throttled;
    if (throttled !== undefined) {
      this.throttled = undefined;
      clearTimeout(throttled.timer);
      throttled.cb(closedError('inflated'));
    }
    this.compressing?.abort(closedError('compressed'));
    this.inflating?.abort(closedError('inflated'));
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
