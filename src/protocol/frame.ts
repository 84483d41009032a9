/**
 * Frame encoding (RFC 6455 section 5.2). Decoding lives in parser.ts.
 */
import { randomFillSync } from 'node:crypto';
import { copyMasked } from './mask.js';

/** Payloads up to this size are copied behind their header into one buffer (one write). */
const COPY_THRESHOLD = 1024;

/** An encoded frame: one buffer, or a header and the payload it was not copied behind. */
export type EncodedFrame = Buffer | [Buffer, Uint8Array];

/** Options for one outgoing frame. */
export interface FrameOptions {
  /** Last frame of its message. */
  fin: boolean;
  /** RSV1 (set by permessage-deflate on the first frame of a compressed message). */
  rsv1?: boolean;
  /** Mask the payload (clients must, servers must not). */
  mask?: boolean;
}

/** Size of the header for a payload of `length` bytes. */
export function headerSize(length: number, masked: boolean): number {
  const base = length < 126 ? 2 : length <= 0xffff ? 4 : 10;
  return masked ? base + 4 : base;
}

function writeHeader(target: Buffer, opcode: number, length: number, opts: FrameOptions): number {
  target[0] = (opts.fin ? 0x80 : 0) | (opts.rsv1 ? 0x40 : 0) | opcode;
  const maskBit = opts.mask ? 0x80 : 0;
  if (length < 126) {
    target[1] = maskBit | length;
    return 2;
  }
  if (length <= 0xffff) {
    target[1] = maskBit | 126;
    target.writeUInt16BE(length, 2);
    return 4;
  }
  target[1] = maskBit | 127;
  // 2^53 is far beyond any payload Node can hold, so the high word fits in 32 bits.
  target.writeUInt32BE(Math.floor(length / 0x100000000), 2);
  target.writeUInt32BE(length >>> 0, 6);
  return 10;
}

// Mask keys come from a pool of random bytes refilled in bulk: one crypto call per 1024
// frames instead of one per frame. RFC 6455 requires keys unpredictable to the application;
// crypto.randomFillSync is a CSPRNG.
const maskPool = Buffer.alloc(4096);
let maskPoolOffset = maskPool.length;

function nextMaskKey(): Buffer {
  if (maskPoolOffset === maskPool.length) {
    randomFillSync(maskPool);
    maskPoolOffset = 0;
  }
  const key = maskPool.subarray(maskPoolOffset, maskPoolOffset + 4);
  maskPoolOffset += 4;
  return key;
}

/**
 * Encode one frame. Returns one buffer (header and payload together) for small or masked
 * payloads, or `[header, payload]` for large unmasked ones so the payload is never copied.
 * The caller's `payload` is never modified.
 */
export function encodeFrame(opcode: number, payload: Uint8Array, opts: FrameOptions): EncodedFrame {
  const length = payload.length;
  const masked = opts.mask === true;
  const size = headerSize(length, masked);
  if (!masked && length > COPY_THRESHOLD) {
    const header = Buffer.allocUnsafe(size);
    writeHeader(header, opcode, length, opts);
    return [header, payload];
  }
  const frame = Buffer.allocUnsafe(size + length);
  let offset = writeHeader(frame, opcode, length, opts);
  if (masked) {
    const key = nextMaskKey();
    frame[offset] = key[0];
    frame[offset + 1] = key[1];
    frame[offset + 2] = key[2];
    frame[offset + 3] = key[3];
    offset += 4;
    copyMasked(payload, frame, offset, frame.subarray(offset - 4, offset));
  } else {
    frame.set(payload, offset);
  }
  return frame;
}

/** The payload of a Close frame: 2-byte code then UTF-8 reason. No code means an empty payload. */
export function encodeClosePayload(code: number | undefined, reason: string | Uint8Array = ''): Buffer {
  if (code === undefined) return Buffer.alloc(0);
  const reasonBytes = typeof reason === 'string' ? Buffer.from(reason, 'utf8') : reason;
  const payload = Buffer.allocUnsafe(2 + reasonBytes.length);
  payload.writeUInt16BE(code, 0);
  payload.set(reasonBytes, 2);
  return payload;
}
