/**
 * permessage-deflate (RFC 7692) for one connection: compress what we send, inflate what we
 * receive, with the zlib streams this needs. Negotiation is protocol/deflate-negotiation.ts;
 * this file only runs zlib with the agreed parameters.
 *
 * Memory is what makes compression dangerous on a server, so:
 * - zlib streams are created on first use: a connection that never sends or receives a
 *   compressed message holds none;
 * - a stream that "no context takeover" lets us reset is reset after each message, and one
 *   timer for the whole process closes streams idle for IDLE_RELEASE_MS (our compressor always,
 *   since starting over is always decodable; the inflater only when the peer resets its
 *   compressor, because otherwise its next message may refer back into that state);
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
  }
  return { threshold, level, memLevel };
}

/** An error with a stable code and the close code the connection fails with. */
export interface DeflateError extends Error {
  code: string;
  closeCode: number;
}

function deflateError(code: string, message: string, closeCode: number): DeflateError {
  const err = new Error(message) as DeflateError;
  err.code = code;
  err.closeCode = closeCode;
  return err;
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

// RFC 7692 section 7.2.2: the receiver appends this before inflating; the sender strips it.
const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);

type Done = (err: DeflateError | null, data?: Buffer) => void;

interface Job {
  chunks: Buffer[];
  length: number;
  cb: Done;
}

// zlib cannot set up a raw deflate stream with 8-bit windows; 9 is decodable by a peer that
// agreed to 8 (see deflate-negotiation.ts), and inflating with a larger window is always safe.
const zlibWindowBits = (bits: number): number => Math.max(9, bits);

/** zlib streams with live state, checked by the idle timer. */
const live = new Set<MessageDeflate>();
let idleTimer: NodeJS.Timeout | undefined;

function sweepIdle(): void {
  for (const md of live) md.releaseIfIdle();
  if (live.size === 0 && idleTimer !== undefined) {
    clearInterval(idleTimer);
    idleTimer = undefined;
  }
}

function track(md: MessageDeflate): void {
  live.add(md);
  if (idleTimer === undefined) {
    idleTimer = setInterval(sweepIdle, IDLE_RELEASE_MS);
    idleTimer.unref();
  }
}

/** How many connections hold zlib streams right now (process-wide; for tests and stats). */
export function liveDeflateContexts(): number {
  let n = 0;
  for (const md of live) n += md.streamCount;
  return n;
}

/**
 * Compression state of one connection. Jobs of one direction must not overlap: the connection
 * sends one compressed message at a time (its send queue) and pauses its parser while a
 * message is inflated.
 */
export class MessageDeflate {
  readonly params: DeflateParams;
  readonly settings: DeflateSettings;
  private readonly isServer: boolean;
  private readonly maxPayload: number;

  private deflater: zlib.DeflateRaw | undefined;
  private inflater: zlib.InflateRaw | undefined;
  private deflateJob: Job | undefined;
  private inflateJob: Job | undefined;
  /** A fragmented compressed message is being sent: the compressor must not be reset. */
  private midMessage = false;
  /** A frame compressed elsewhere (SharedMessage) was sent: start our compressor over. */
  private compressorStale = false;
  private used = false;
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

  /** The peer's compressor starts over after each message, so our inflater may too. */
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

  /** zlib streams this connection holds now (0, 1 or 2). */
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

  /**
   * Compress one message or fragment. With `fin` the message ends: the trailing 00 00 ff ff
   * is removed (RFC 7692 section 7.2.1). Calls back asynchronously, in order.
   */
  compress(data: Buffer, fin: boolean, cb: Done): void {
    zlibLimiter.run(() => {
      if (this.released) {
        zlibLimiter.done();
        cb(deflateError('WS_ERR_NOT_OPEN', 'the connection closed while a message was being compressed', CloseCode.ABNORMAL_CLOSURE));
        return;
      }
      let deflater = this.deflater;
      if (deflater !== undefined && this.compressorStale && !this.midMessage) deflater.reset();
      this.compressorStale = false;
      if (deflater === undefined) {
        deflater = this.deflater = zlib.createDeflateRaw({
          level: this.settings.level,
          memLevel: this.settings.memLevel,
          windowBits: zlibWindowBits(this.ownWindowBits),
        });
        deflater.on('data', (chunk: Buffer) => this.onOutput(this.deflateJob, chunk));
        deflater.on('error', (err: Error) => this.finishDeflate(deflateError('WS_ERR_DEFLATE', `compression failed: ${err.message}`, CloseCode.INTERNAL_ERROR)));
        track(this);
      }
      this.used = true;
      this.deflateJob = { chunks: [], length: 0, cb };
      const job = this.deflateJob;
      deflater.write(data);
      deflater.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        if (this.deflateJob !== job) return;
        let out = job.chunks.length === 1 ? job.chunks[0] : Buffer.concat(job.chunks, job.length);
        if (fin) {
          // Z_SYNC_FLUSH always ends the output with an empty stored block, 00 00 ff ff.
          out = out.subarray(0, out.length - TRAILER.length);
          this.midMessage = false;
          if (this.ownNoContextTakeover) deflater.reset();
        } else {
          this.midMessage = true;
        }
        this.finishDeflate(null, out);
      });
    });
  }

  private finishDeflate(err: DeflateError | null, out?: Buffer): void {
    const job = this.deflateJob;
    if (job === undefined) return;
    this.deflateJob = undefined;
    if (err !== null) this.closeDeflater();
    zlibLimiter.done();
    if (this.released) this.closeStreams();
    job.cb(err, out);
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
        cb(deflateError('WS_ERR_NOT_OPEN', 'the connection closed while a message was being inflated', CloseCode.ABNORMAL_CLOSURE));
        return;
      }
      let inflater = this.inflater;
      if (inflater === undefined) {
        inflater = this.inflater = zlib.createInflateRaw({ windowBits: zlibWindowBits(this.peerWindowBits) });
        inflater.on('data', (chunk: Buffer) => this.onOutput(this.inflateJob, chunk));
        inflater.on('error', (err: Error) => this.finishInflate(deflateError('WS_ERR_INFLATE', `invalid compressed data: ${err.message}`, CloseCode.INVALID_PAYLOAD)));
        track(this);
      }
      this.used = true;
      this.inflateJob = { chunks: [], length: 0, cb };
      const job = this.inflateJob;
      inflater.write(data);
      inflater.write(TRAILER);
      inflater.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        if (this.inflateJob !== job) return;
        if (this.peerNoContextTakeover) inflater.reset();
        this.finishInflate(null, job.chunks.length === 1 ? job.chunks[0] : Buffer.concat(job.chunks, job.length));
      });
    });
  }

  private onOutput(job: Job | undefined, chunk: Buffer): void {
    if (job === undefined) return;
    job.length += chunk.length;
    if (job === this.inflateJob && this.maxPayload > 0 && job.length > this.maxPayload) {
      // Stop here: the rest of the message is never inflated.
      this.finishInflate(deflateError('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', `inflated message over maxPayload (${this.maxPayload} bytes)`, CloseCode.MESSAGE_TOO_BIG));
      return;
    }
    job.chunks.push(chunk);
  }

  private finishInflate(err: DeflateError | null, out?: Buffer): void {
    const job = this.inflateJob;
    if (job === undefined) return;
    this.inflateJob = undefined;
    // After an error the stream's state is unusable (and may still be working): close it.
    if (err !== null) this.closeInflater();
    zlibLimiter.done();
    if (this.released) this.closeStreams();
    job.cb(err, out);
  }

  /** The connection closed: close the streams now, or once the job in flight finished. */
  release(): void {
    this.released = true;
    if (this.deflateJob === undefined && this.inflateJob === undefined) this.closeStreams();
  }

  /** Idle timer: close what nothing needs (see the file comment). @internal */
  releaseIfIdle(): void {
    if (this.used) {
      this.used = false;
      return;
    }
    if (this.deflater !== undefined && this.deflateJob === undefined && !this.midMessage) this.closeDeflater();
    if (this.inflater !== undefined && this.inflateJob === undefined && this.peerNoContextTakeover) this.closeInflater();
    if (this.streamCount === 0) live.delete(this);
  }

  private closeStreams(): void {
    if (this.deflateJob === undefined) this.closeDeflater();
    if (this.inflateJob === undefined) this.closeInflater();
    if (this.streamCount === 0) live.delete(this);
  }

  private closeDeflater(): void {
    const deflater = this.deflater;
    if (deflater === undefined) return;
    this.deflater = undefined;
    this.midMessage = false;
    this.compressorStale = false;
    // A later 'error' from the closing stream must find a listener (or the process dies).
    deflater.on('error', noop);
    deflater.close();
  }

  private closeInflater(): void {
    const inflater = this.inflater;
    if (inflater === undefined) return;
    this.inflater = undefined;
    inflater.on('error', noop);
    inflater.close();
  }
}

function noop(): void {}

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
