/**
 * ZlibStream: one raw deflate or inflate stream that runs one job at a time (write, collect
 * the output), in slices that share the process-wide ZlibQueue fairly, and ZlibPool: idle
 * streams shared by every connection whose direction has "no context takeover", so such
 * connections hold no zlib state between messages at all.
 */
import * as zlib from 'node:zlib';
import { CloseCode } from '../protocol/close-codes.js';
import { createError, ERROR_CODES, type DuetErrorCode } from '../protocol/errors.js';

/** An error with a stable code and the close code the connection fails with. */
export interface DeflateError extends Error {
  code: string;
  closeCode: number;
}

/**
 * The error for a compression job: the catalogued class for `code` (src/protocol/errors.ts:
 * an inflate over the limit is a LimitExceededError, invalid data a ProtocolError...), with
 * the close code the connection fails with.
 */
export function deflateError(code: string, message: string, closeCode: number): DeflateError {
  const err = (
    code in ERROR_CODES ? createError(code as DuetErrorCode, message, { closeCode }) : new Error(message)
  ) as DeflateError;
  err.code = code;
  // Classes without a close code of their own (ConnectionClosedError, a DuetError for
  // WS_ERR_DEFLATE) carry it too: the connection needs it.
  if (err.closeCode !== closeCode)
    Object.defineProperty(err, 'closeCode', { value: closeCode, enumerable: true, configurable: true, writable: true });
  return err;
}

export type Done = (err: DeflateError | null, data?: Buffer) => void;

// RFC 7692 section 7.2.2: the receiver appends this before inflating; the sender strips it.
export const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/**
 * Input is compressed this many bytes at a time (one trip to the thread pool each), and a
 * job offers its slot to waiting jobs after each slice and after each OUTPUT_QUANTUM of
 * output (4 of zlib's 16 KiB chunks): at level 1 on this machine 64 KiB takes 0.05 ms (zeros)
 * to 1.2 ms (random bytes) to compress, and inflating 64 KiB about 0.2 ms of CPU. With 16
 * connections each inflating 4 MiB at once, small messages beside them waited 65-75 ms (p99)
 * with 256 KiB quanta and 30-55 ms with 64 KiB; the extra trips cost a few percent of a job
 * that has to give way, nothing for one that does not.
 */
export const INPUT_SLICE = 64 * 1024;
export const OUTPUT_QUANTUM = 64 * 1024;
/** Compressed input up to this size is joined with the trailer, so it takes a single write. */
const JOIN_MAX = 64 * 1024;

/** What a running job can do with its slot in the queue (see ZlibQueue). */
export interface JobSlot {
  stamp(): number;
  yieldSlot(resume: () => void, order: number): boolean;
}

interface Job {
  chunks: Buffer[];
  length: number;
  /** Fail with 1009 once the output passes this (0: no limit). */
  limit: number;
  /** What `limit` is called in the error message. */
  limitName: string;
  /** Output since the job last offered its slot. */
  sinceYield: number;
  slot: JobSlot;
  /** When it started, for the queue's order. */
  order: number;
  /** Waiting for its turn to come back round (the stream is paused). */
  paused: boolean;
  /** zlib took all the input (output may still sit in the paused stream). */
  written: boolean;
  /** Aborted while paused: fails with this when its turn comes. */
  aborted: DeflateError | undefined;
  cb: Done;
}

function noop(): void {}

export class ZlibStream {
  private readonly z: zlib.DeflateRaw | zlib.InflateRaw;
  private readonly inflate: boolean;
  private job: Job | undefined;
  /** Used since the idle sweep last looked. */
  used = true;
  closed = false;
  /** The deflate stream ended (the peer set BFINAL): zlib takes no more input on this one. */
  ended = false;

  constructor(inflate: boolean, options: zlib.ZlibOptions) {
    this.inflate = inflate;
    // Every write ends with a sync flush: a message (or a slice of one) is one trip to the
    // thread pool, not a write and then a flush (a tiny message cost 91 µs of CPU that way,
    // 35 µs this way).
    const opts = { ...options, flush: zlib.constants.Z_SYNC_FLUSH };
    this.z = inflate ? zlib.createInflateRaw(opts) : zlib.createDeflateRaw(opts);
    this.z.on('end', () => {
      this.ended = true;
    });
    this.z.on('data', (chunk: Buffer) => this.onData(chunk));
    this.z.on('error', (err: Error) =>
      this.finish(
        inflate
          ? deflateError('WS_ERR_INFLATE', `invalid compressed data: ${err.message}`, CloseCode.INVALID_PAYLOAD)
          : deflateError('WS_ERR_DEFLATE', `compression failed: ${err.message}`, CloseCode.INTERNAL_ERROR),
      ),
    );
  }

  /** A job is running or waiting for its turn (its callback has not been called yet). */
  get busy(): boolean {
    return this.job !== undefined;
  }

  /**
   * Compress `input`, or inflate it (with the RFC 7692 trailer appended), and call back with
   * the output, collected once: the pieces zlib hands over are joined into one Buffer at the
   * end (never grown by copying). With `limit` > 0 the job fails with 1009 as soon as the
   * output passes it, and the rest of the input is never processed (the stream is closed).
   * The caller holds a slot of the queue; the job may give it up and take it back between
   * slices (see ZlibQueue.yieldSlot).
   */
  run(input: Buffer, limit: number, limitName: string, slot: JobSlot, cb: Done): void {
    const job: Job = {
      chunks: [],
      length: 0,
      limit,
      limitName,
      sinceYield: 0,
      slot,
      order: slot.stamp(),
      paused: false,
      written: false,
      aborted: undefined,
      cb,
    };
    this.job = job;
    this.used = true;
    if (this.inflate) {
      const onWritten = (): void => {
        if (this.job !== job) return;
        job.written = true;
        if (!job.paused) this.finish(null);
      };
      if (input.length <= JOIN_MAX) {
        this.z.write(input.length === 0 ? TRAILER : Buffer.concat([input, TRAILER]), onWritten);
      } else {
        this.z.write(input);
        this.z.write(TRAILER, onWritten);
      }
      return;
    }
    let offset = 0;
    const writeSlice = (): void => {
      if (this.job !== job) return;
      job.paused = false;
      if (job.aborted !== undefined) {
        this.failAborted(job);
        return;
      }
      const end = Math.min(input.length, offset + INPUT_SLICE);
      const slice = offset === 0 && end === input.length ? input : input.subarray(offset, end);
      offset = end;
      this.z.write(slice, () => {
        if (this.job !== job) return;
        if (offset >= input.length) {
          this.finish(null);
          return;
        }
        // Waiting for its turn, it holds no slot: an abort meanwhile must not give one back
        // (paused first, as on the inflate side: the turn may come before yieldSlot returns).
        job.paused = true;
        if (!job.slot.yieldSlot(writeSlice, job.order)) writeSlice();
      });
    };
    writeSlice();
  }

  private onData(chunk: Buffer): void {
    const job = this.job;
    if (job === undefined) return;
    job.length += chunk.length;
    if (job.limit > 0 && job.length > job.limit) {
      this.finish(
        deflateError(
          'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH',
          `inflated message over ${job.limitName} (${job.limit} bytes)`,
          CloseCode.MESSAGE_TOO_BIG,
        ),
      );
      return;
    }
    job.chunks.push(chunk);
    job.sinceYield += chunk.length;
    if (this.inflate && job.sinceYield >= OUTPUT_QUANTUM) {
      job.sinceYield = 0;
      // If others wait: stop zlib after at most a chunk more (a paused stream's buffer fills
      // and Node stops calling zlib), and carry on when this job's turn comes back. Paused
      // first: that turn may come before yieldSlot even returns.
      job.paused = true;
      this.z.pause();
      if (!job.slot.yieldSlot(() => this.resumeJob(job), job.order)) {
        job.paused = false;
        this.z.resume();
      }
    }
  }

  private resumeJob(job: Job): void {
    if (this.job !== job) return;
    job.paused = false;
    if (job.aborted !== undefined) {
      this.failAborted(job);
      return;
    }
    // Take what zlib produced after the pause (read() hands it to onData through 'data'),
    // which may use up the quantum again; then flow, or finish if zlib was done.
    while (this.job === job && !job.paused && this.z.read() !== null);
    if (this.job !== job || job.paused) return;
    // Flowing again in any case: the next job on this stream must get its output.
    this.z.resume();
    if (job.written) this.finish(null);
  }

  /**
   * Give up the job in progress (its connection closed): the output collected so far is
   * dropped and the stream closed now; the callback gets `err` at once if the job holds a
   * slot, or when its turn comes back if it was waiting for one.
   */
  abort(err: DeflateError): void {
    const job = this.job;
    if (job === undefined) return;
    job.chunks = [];
    this.close();
    if (job.paused) job.aborted = err;
    else this.finish(err);
  }

  private failAborted(job: Job): void {
    this.job = undefined;
    job.cb(job.aborted!);
  }

  private finish(err: DeflateError | null): void {
    const job = this.job;
    if (job === undefined) return;
    if (job.paused) {
      // An error while waiting for its turn (a late zlib error): reported when the turn comes.
      if (err !== null) {
        job.chunks = [];
        job.aborted ??= err;
        this.close();
      }
      return;
    }
    this.job = undefined;
    // After an error the stream's state is unusable (and it may still be working): close it.
    if (err !== null) {
      this.close();
      job.chunks = [];
      job.cb(err);
      return;
    }
    // RFC 7692 7.2.3.4 lets a sender end a message with a BFINAL block; zlib then ends the
    // stream (the trailer we appended is left over). Node marks that at once in its
    // readable state; 'end' only follows on a later tick.
    if ((this.z as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended === true)
      this.ended = true;
    const chunks = job.chunks;
    job.chunks = [];
    job.cb(null, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, job.length));
  }

  /** Forget all history (the next job starts a new stream of blocks). */
  reset(): void {
    this.z.reset();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // A late 'error' from the closing stream must find a listener (or the process dies).
    this.z.on('error', noop);
    this.z.close();
  }
}

/** Idle streams by configuration key, at most `maxIdle` of each kept. */
export class ZlibPool {
  private readonly idle = new Map<string, ZlibStream[]>();
  maxIdle: number;

  constructor(maxIdle: number) {
    this.maxIdle = maxIdle;
  }

  /** Streams kept idle. */
  get size(): number {
    let n = 0;
    for (const list of this.idle.values()) n += list.length;
    return n;
  }

  acquire(key: string, create: () => ZlibStream): ZlibStream {
    const list = this.idle.get(key);
    for (let stream = list?.pop(); stream !== undefined; stream = list!.pop()) {
      if (!stream.ended) return stream;
      stream.close();
    }
    return create();
  }

  /** Take a stream back after a successful job: reset, and kept if there is room. */
  release(key: string, stream: ZlibStream): void {
    if (stream.closed) return;
    if (stream.ended) {
      // A stream zlib has ended cannot be reset into use again.
      stream.close();
      return;
    }
    stream.reset();
    let list = this.idle.get(key);
    if (list === undefined) this.idle.set(key, (list = []));
    if (list.length < this.maxIdle) list.push(stream);
    else stream.close();
  }

  /** Close streams unused since the last sweep. */
  sweep(): void {
    for (const [key, list] of this.idle) {
      const kept = list.filter((stream) => {
        if (stream.used) {
          stream.used = false;
          return true;
        }
        stream.close();
        return false;
      });
      if (kept.length > 0) this.idle.set(key, kept);
      else this.idle.delete(key);
    }
  }
}
