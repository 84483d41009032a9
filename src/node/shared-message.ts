/**
 * SharedMessage: one message written to many connections (publish, broadcast). It is framed
 * once, and, for connections with permessage-deflate, compressed once per distinct setting
 * (usually one): compressing per connection would cost a zlib job per subscriber.
 *
 * That one compression runs synchronously, in the publisher's call, so that the frame can be
 * written in order with everything else sent to each subscriber; messages larger than
 * `publishCompressLimit` (1 MiB by default) are therefore sent uncompressed: a 100 MiB
 * publish compressed this way held the event loop for 386 ms (ordering and the synchronous
 * return of publish() would not survive compressing on the thread pool).
 */
import { encodeFrame, type EncodedFrame } from '../protocol/frame.js';
import { Opcode } from '../protocol/opcodes.js';
import { compressStandalone, type DeflateSettings, type MessageDeflate } from './deflate.js';

export class SharedMessage {
  readonly payload: Buffer;
  readonly binary: boolean;
  /** false: never compressed (the publisher said `compress: false`). */
  readonly compress: boolean;
  private plain: EncodedFrame | undefined;
  private compressed: Map<string, EncodedFrame> | undefined;
  private lastCompressed: { settings: DeflateSettings; bits: number; frame: EncodedFrame } | undefined;

  constructor(payload: Buffer, binary: boolean, compress = true) {
    this.payload = payload;
    this.binary = binary;
    this.compress = compress;
  }

  /** The uncompressed frame. */
  get frame(): EncodedFrame {
    return (this.plain ??= encodeFrame(this.binary ? Opcode.BINARY : Opcode.TEXT, this.payload, { fin: true }));
  }

  /** Whether a connection with this compression state should get the compressed frame. */
  shouldCompress(deflate: MessageDeflate): boolean {
    const { threshold, publishCompressLimit } = deflate.settings;
    return this.compress && this.payload.length >= threshold && this.payload.length <= publishCompressLimit;
  }

  /**
   * The frame compressed on its own with the connection's window and level: decodable by any
   * peer whatever its context-takeover state (the connection then starts its own compressor
   * over; see MessageDeflate.sharedFrameSent).
   */
  compressedFrame(deflate: MessageDeflate): EncodedFrame {
    const settings = deflate.settings;
    const bits = deflate.ownWindowBits;
    // Subscribers of one server share one settings object and nearly always one window size:
    // the last frame answers them without building a cache key per subscriber.
    const last = this.lastCompressed;
    if (last !== undefined && last.settings === settings && last.bits === bits) return last.frame;
    const key = `${bits}/${settings.level}/${settings.memLevel}`;
    const cache = (this.compressed ??= new Map());
    let frame = cache.get(key);
    if (frame === undefined) {
      const body = compressStandalone(this.payload, bits, settings);
      frame = encodeFrame(this.binary ? Opcode.BINARY : Opcode.TEXT, body, { fin: true, rsv1: true });
      cache.set(key, frame);
    }
    this.lastCompressed = { settings, bits, frame };
    return frame;
  }
}
