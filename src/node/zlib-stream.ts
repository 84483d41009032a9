/**
 * ZlibStream: one raw deflate or inflate stream that runs one job at a time (write, flush,
 * collect the output), and ZlibPool: idle streams shared by every connection whose direction
 * has "no context takeover", so such connections hold no zlib state between messages at all.
 */
import * as zlib from 'node:zlib';
import { CloseCode } from '../protocol/close-codes.js';

/** An error with a stable code and the close code the connection fails with. */
export interface DeflateError extends Error {
  code: string;
  closeCode: number;
}

export function deflateError(code: string, message: string, closeCode: number): DeflateError {
  const err = new Error(message) as DeflateError;
  err.code = code;
  err.closeCode = closeCode;
  return err;
}

export type Done = (err: DeflateError | null, data?: Buffer) => void;

// RFC 7692 section 7.2.2: the receiver appends this before inflating; the sender strips it.
export const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);

interface Job {
  chunks: Buffer[];
  length: number;
  limit: number;
  cb: Done;
}

function noop(): void {}

export class ZlibStream {
  private readonly z: zlib.DeflateRaw | zlib.InflateRaw;
  private job: Job | undefined;
  /** Used since the idle sweep last looked. */
  used = true;
  closed = false;
  /** The deflate stream ended (the peer set BFINAL): zlib takes no more input on this one. */
  ended = false;

  constructor(inflate: boolean, options: zlib.ZlibOptions) {
    this.z = inflate ? zlib.createInflateRaw(options) : zlib.createDeflateRaw(options);
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

  /** A job is running (its callback has not been called yet). */
  get busy(): boolean {
    return this.job !== undefined;
  }

  /**
   * Write `input` (plus the RFC 7692 trailer when inflating), flush, and call back with the
   * output. With `limit` > 0 the job fails with 1009 as soon as the output passes it; the rest
   * of the input is never processed (the stream is closed).
   */
  run(input: Buffer, trailer: boolean, limit: number, cb: Done): void {
    const job: Job = { chunks: [], length: 0, limit, cb };
    this.job = job;
    this.used = true;
    this.z.write(input);
    if (trailer) this.z.write(TRAILER);
    this.z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
      if (this.job === job) this.finish(null);
    });
  }

  private onData(chunk: Buffer): void {
    const job = this.job;
    if (job === undefined) return;
    job.length += chunk.length;
    if (job.limit > 0 && job.length > job.limit) {
      this.finish(deflateError('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', `inflated message over maxPayload (${job.limit} bytes)`, CloseCode.MESSAGE_TOO_BIG));
      return;
    }
    job.chunks.push(chunk);
  }

  private finish(err: DeflateError | null): void {
    const job = this.job;
    if (job === undefined) return;
    this.job = undefined;
    // After an error the stream's state is unusable (and it may still be working): close it.
    if (err !== null) {
      this.close();
      job.cb(err);
      return;
    }
    // RFC 7692 7.2.3.4 lets a sender end a message with a BFINAL block; zlib then ends the
    // stream (the trailer we appended is left over). Node marks that at once in its
    // readable state; 'end' only follows on a later tick.
    if ((this.z as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended === true) this.ended = true;
    job.cb(null, job.chunks.length === 1 ? job.chunks[0] : Buffer.concat(job.chunks, job.length));
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
