/**
 * The connection's public types (what `send` takes, what `message` listeners get, the options
 * a server or client gives a connection) and the small conversions it needs.
 */
import { createError, type CreateErrorOptions, type DuetErrorCode, type ErrorFor } from '../protocol/errors.js';

/** How received binary data is handed to listeners. */
export type BinaryType = 'nodebuffer' | 'arraybuffer' | 'fragments' | 'blob';

/** Data `send` accepts. Strings go as text, everything else as binary (unless `binary` says otherwise). */
export type SendData = string | Buffer | ArrayBuffer | ArrayBufferView | Blob;

/** Options of `send`. */
export interface SendOptions {
  /** Send as a binary message (default: true for non-strings, false for strings). */
  binary?: boolean;
  /** Last fragment of the message (default true). `fin: false` starts or continues a fragmented message. */
  fin?: boolean;
  /**
   * With permessage-deflate negotiated, `false` sends this message uncompressed (default: compress
   * when it is at least `threshold` bytes). Decided by the first fragment of a fragmented message.
   */
  compress?: boolean;
  /** Accepted for `ws` compatibility; the side (client or server) decides masking. */
  mask?: boolean;
}

/** An error with a stable `code` string, as carried by `error` events. */
export interface CodedError extends Error {
  /** What happened: a `WS_ERR_*` code (docs/errors.md), or the system's (`ECONNREFUSED`, ...). */
  code: string;
}

/** Settings of one connection, chosen by the server or client that creates it. */
export interface ConnectionOptions {
  /** True on the server side: expects masked frames, sends unmasked, closes TCP first. */
  isServer: boolean;
  /** Largest incoming message in bytes; 0 means unlimited. */
  maxPayload: number;
  /** Most frames one incoming message may arrive in (empty continuation frames too); 0 or absent means unlimited. */
  maxFragments?: number;
  /** Milliseconds to wait for the peer's part of the close handshake before dropping TCP. */
  closeTimeout: number;
  /** Answer pings with pongs automatically. */
  autoPong: boolean;
  /** Milliseconds small frames may wait to be written together (server option `writeDelay`); 0 or absent: end of turn. */
  writeDelay?: number;
}

/** Until a socket is attached (never read: every path that uses options has a socket). */
export const DEFAULT_CONNECTION_OPTIONS: ConnectionOptions = Object.freeze({
  isServer: true,
  maxPayload: 0,
  closeTimeout: 30_000,
  autoPong: true,
});

export const EMPTY = Buffer.alloc(0);

/** The catalogued error for `code` (src/protocol/errors.ts): the class users catch, e.g. ConnectionClosedError. */
export function codedError<C extends DuetErrorCode>(
  code: C,
  message: string,
  options?: CreateErrorOptions,
): ErrorFor<C> {
  return createError(code, message, options);
}

export type Callback = (err?: Error | null) => void;

/** WebIDL `[Clamp] unsigned short`: NaN is 0, round half to even, clamp to 0-65535. */
export function clampUnsignedShort(value: number): number {
  const n = Number(value);
  if (Number.isNaN(n)) return 0;
  const clamped = Math.min(Math.max(n, 0), 65535);
  const floor = Math.floor(clamped);
  const diff = clamped - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** ws's argument shapes: ping(), ping(cb), ping(data), ping(data, cb), ping(data, mask, cb). */
export function controlArguments(
  data: SendData | number | Callback | undefined,
  mask: boolean | Callback | undefined,
  cb: Callback | undefined,
): [SendData | number | undefined, Callback | undefined] {
  if (typeof data === 'function') return [undefined, data];
  if (typeof mask === 'function') return [data, mask];
  return [data, cb];
}

export function toBuffer(data: Exclude<SendData, Blob>): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return Buffer.from(String(data), 'utf8');
}

export function toArrayBuffer(buf: Buffer): ArrayBuffer {
  if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength) return buf.buffer as ArrayBuffer;
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
}

/** What a `message` listener receives, by `binaryType` (text messages are always a Buffer). */
export type RawData = Buffer | ArrayBuffer | Buffer[] | Blob;
