/**
 * WebSocket: one connection class for the server side and the client side. It joins a socket
 * to the sans-I/O FrameParser, writes frames (corked and flushed once per event-loop turn),
 * runs the close handshake and reports events both `ws`-style (`on('message', (data,
 * isBinary))`) and WHATWG-style (`onmessage`, `addEventListener`).
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { CloseCode, closeCodeIsValid } from '../protocol/close-codes.js';
import type { ProtocolError } from '../protocol/errors.js';
import { encodeClosePayload, encodeFrame } from '../protocol/frame.js';
import { MAX_CONTROL_PAYLOAD, Opcode } from '../protocol/opcodes.js';
import { FrameParser, type FrameParserHandler } from '../protocol/parser.js';
import { deadlines, type Expirable } from './deadlines.js';
import { WsCloseEvent, WsErrorEvent, WsEvent, WsMessageEvent } from './events.js';
import { scheduleUncork } from './write-batch.js';

/** How received binary data is handed to listeners. */
export type BinaryType = 'nodebuffer' | 'arraybuffer' | 'fragments' | 'blob';

/** Data `send` accepts. Strings go as text, everything else as binary (unless `binary` says otherwise). */
export type SendData = string | Buffer | ArrayBuffer | ArrayBufferView;

export interface SendOptions {
  /** Send as a binary message (default: true for non-strings, false for strings). */
  binary?: boolean;
  /** Last fragment of the message (default true). `fin: false` starts or continues a fragmented message. */
  fin?: boolean;
  /** Accepted for `ws` compatibility; compression is not negotiated yet. */
  compress?: boolean;
  /** Accepted for `ws` compatibility; the side (client or server) decides masking. */
  mask?: boolean;
}

/** An error with a stable `code` string, as carried by `error` events. */
export interface CodedError extends Error {
  code: string;
}

/** Settings of one connection, chosen by the server or client that creates it. */
export interface ConnectionOptions {
  /** True on the server side: expects masked frames, sends unmasked, closes TCP first. */
  isServer: boolean;
  /** Largest incoming message in bytes; 0 means unlimited. */
  maxPayload: number;
  /** Milliseconds to wait for the peer's part of the close handshake before dropping TCP. */
  closeTimeout: number;
  /** Answer pings with pongs automatically. */
  autoPong: boolean;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter's own listener type
type WsListener = (...args: any[]) => void;
type WhatwgListener = ((event: never) => void) | { handleEvent(event: never): void };

const kWhatwg = Symbol('whatwgListener');
const EMPTY = Buffer.alloc(0);

function codedError(code: string, message: string): CodedError {
  const err = new Error(message) as CodedError;
  err.code = code;
  return err;
}

function toBuffer(data: SendData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return Buffer.from(String(data), 'utf8');
}

function toArrayBuffer(buf: Buffer): ArrayBuffer {
  if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength) return buf.buffer as ArrayBuffer;
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
}

// Socket listeners are shared functions that find their connection through a symbol on the
// socket: no closures per connection.
const kConnection = Symbol('duetConnection');
interface OwnedSocket extends Duplex {
  [kConnection]?: WebSocket;
}

function socketOnData(this: OwnedSocket, chunk: Buffer): void {
  const ws = this[kConnection];
  if (ws === undefined) return;
  try {
    ws.parser?.push(chunk);
  } catch (err) {
    // An application listener threw while handling this connection's events. Fail just this
    // connection with 1011 (unexpected condition) instead of taking the process down.
    ws.onListenerError(err);
  }
}
function socketOnEnd(this: OwnedSocket): void {
  this[kConnection]?.onSocketEnd();
}
function socketOnClose(this: OwnedSocket): void {
  this[kConnection]?.onSocketClose();
}
function socketOnError(this: OwnedSocket): void {
  // Resets and broken pipes end the connection (close 1006); they are not the application's error.
  this.destroy();
}

/** What a `message` listener receives, by `binaryType` (text messages are always a Buffer). */
export type RawData = Buffer | ArrayBuffer | Buffer[] | Blob;

type Listener<A extends unknown[]> = (this: WebSocket, ...args: A) => void;
interface WebSocketEvents {
  open: [];
  message: [data: RawData, isBinary: boolean];
  close: [code: number, reason: Buffer];
  error: [err: CodedError];
  ping: [data: Buffer];
  pong: [data: Buffer];
}

// Typed overloads for the ws-style events (merged into the class below).
export interface WebSocket {
  on<K extends keyof WebSocketEvents>(event: K, listener: Listener<WebSocketEvents[K]>): this;
  on(event: string | symbol, listener: WsListener): this;
  once<K extends keyof WebSocketEvents>(event: K, listener: Listener<WebSocketEvents[K]>): this;
  once(event: string | symbol, listener: WsListener): this;
  off<K extends keyof WebSocketEvents>(event: K, listener: Listener<WebSocketEvents[K]>): this;
  off(event: string | symbol, listener: WsListener): this;
  addListener<K extends keyof WebSocketEvents>(event: K, listener: Listener<WebSocketEvents[K]>): this;
  addListener(event: string | symbol, listener: WsListener): this;
  removeListener<K extends keyof WebSocketEvents>(event: K, listener: Listener<WebSocketEvents[K]>): this;
  removeListener(event: string | symbol, listener: WsListener): this;
}

export class WebSocket extends EventEmitter implements FrameParserHandler, Expirable {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  readonly CONNECTING = 0;
  readonly OPEN = 1;
  readonly CLOSING = 2;
  readonly CLOSED = 3;

  /** CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3). */
  readyState: 0 | 1 | 2 | 3 = 0;
  /** The subprotocol the server selected ('' if none). */
  protocol = '';
  /** The extensions the server accepted, as a header value ('' if none). */
  extensions = '';
  /** The URL (client side); '' on the server side. */
  url = '';
  /** How binary messages are delivered: Buffer (default), ArrayBuffer, Buffer[] or Blob. */
  binaryType: BinaryType = 'nodebuffer';

  /** @internal */ parser: FrameParser | undefined;
  private socket: OwnedSocket | undefined;
  private options: ConnectionOptions = { isServer: true, maxPayload: 0, closeTimeout: 30_000, autoPong: true };
  private closeSent = false;
  private closeReceived = false;
  private closeCode: number = CloseCode.ABNORMAL_CLOSURE;
  private closeReason: Buffer = EMPTY;
  private sendingFragments = false;
  private errorEmitted = false;
  /** @internal */ corked = false;
  private handlers: Partial<Record<'open' | 'message' | 'error' | 'close', ((event: never) => void) | null>> = {};

  /**
   * Take over `socket` after a completed opening handshake. `head` holds bytes that arrived
   * behind the handshake. Used by WebSocketServer and the client; not for applications.
   * @internal
   */
  setSocket(socket: Duplex, head: Buffer, options: ConnectionOptions): void {
    const owned = socket as OwnedSocket;
    this.socket = owned;
    this.options = options;
    this.parser = new FrameParser(this, { expectMasked: options.isServer, maxPayload: options.maxPayload });
    owned[kConnection] = this;
    const net = socket as Duplex & { setNoDelay?: (v: boolean) => void; setTimeout?: (ms: number) => void };
    net.setNoDelay?.(true);
    net.setTimeout?.(0);
    // Bytes that came in with the handshake go back on the socket, so they are read (on a
    // later tick) after the application has attached its listeners in `connection`/`open`.
    if (head.length > 0) socket.unshift(head);
    socket.on('data', socketOnData);
    socket.on('end', socketOnEnd);
    socket.on('close', socketOnClose);
    socket.on('error', socketOnError);
    this.readyState = WebSocket.OPEN;
  }

  /** Emit `open`; the server does this before `connection`, the client after the handshake. @internal */
  emitOpen(): void {
    this.emit('open');
  }

  /** Bytes queued by send() but not yet handed to the operating system. */
  get bufferedAmount(): number {
    return this.socket ? this.socket.writableLength : 0;
  }

  /** True when this connection is the server side. */
  get isServer(): boolean {
    return this.options.isServer;
  }

  // ---- sending ----------------------------------------------------------------------------

  /**
   * Send a message (or, with `fin: false`, a fragment of one). Strings go as text, other data
   * as binary. `cb` runs once the data is written to the socket, or with an error if the
   * connection is not open.
   */
  send(data: SendData | number, options?: SendOptions | ((err?: Error | null) => void), cb?: (err?: Error | null) => void): void {
    if (typeof options === 'function') {
      cb = options;
      options = undefined;
    }
    if (this.readyState === WebSocket.CONNECTING) {
      throw codedError('WS_ERR_NOT_OPEN', 'WebSocket is not open: readyState 0 (CONNECTING)');
    }
    const value: SendData = typeof data === 'number' ? String(data) : data;
    if (this.readyState !== WebSocket.OPEN || this.closeSent) {
      if (cb) this.notOpen(cb);
      return;
    }
    const binary = options?.binary ?? typeof value !== 'string';
    const fin = options?.fin ?? true;
    let opcode: number = binary ? Opcode.BINARY : Opcode.TEXT;
    if (this.sendingFragments) opcode = Opcode.CONTINUATION;
    this.sendingFragments = !fin;
    this.writeFrame(opcode, toBuffer(value), fin, cb);
  }

  /** Send a Ping (at most 125 bytes of data). */
  ping(data?: SendData | number, mask?: boolean, cb?: (err?: Error | null) => void): void {
    this.control(Opcode.PING, data, cb);
  }

  /** Send an unsolicited Pong (at most 125 bytes of data). */
  pong(data?: SendData | number, mask?: boolean, cb?: (err?: Error | null) => void): void {
    this.control(Opcode.PONG, data, cb);
  }

  private control(opcode: number, data: SendData | number | undefined, cb: ((err?: Error | null) => void) | undefined): void {
    if (this.readyState === WebSocket.CONNECTING) {
      throw codedError('WS_ERR_NOT_OPEN', 'WebSocket is not open: readyState 0 (CONNECTING)');
    }
    const payload = data === undefined ? EMPTY : toBuffer(typeof data === 'number' ? String(data) : data);
    if (payload.length > MAX_CONTROL_PAYLOAD) {
      throw new RangeError('The data size must not be greater than 125 bytes');
    }
    if (this.readyState !== WebSocket.OPEN || this.closeSent) {
      if (cb) this.notOpen(cb);
      return;
    }
    this.writeFrame(opcode, payload, true, cb);
  }

  private notOpen(cb: (err?: Error | null) => void): void {
    const state = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'][this.readyState];
    process.nextTick(cb, codedError('WS_ERR_NOT_OPEN', `WebSocket is not open: readyState ${this.readyState} (${state})`));
  }

  private writeFrame(opcode: number, payload: Uint8Array, fin: boolean, cb?: (err?: Error | null) => void): void {
    const socket = this.socket!;
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      scheduleUncork(this);
    }
    const frame = encodeFrame(opcode, payload, { fin, mask: !this.options.isServer });
    if (Array.isArray(frame)) {
      socket.write(frame[0]);
      socket.write(frame[1], cb);
    } else {
      socket.write(frame, cb);
    }
  }

  /** Flush writes corked during this event-loop turn. @internal */
  uncork(): void {
    this.corked = false;
    this.socket?.uncork();
  }

  // ---- closing ----------------------------------------------------------------------------

  /**
   * Start the closing handshake. `code` must be 1000, 1001-1003, 1007-1014 or 3000-4999;
   * `reason` at most 123 bytes of UTF-8.
   */
  close(code?: number, reason?: string | Buffer): void {
    if (code !== undefined && (!Number.isInteger(code) || !closeCodeIsValid(code))) {
      throw new TypeError(`Invalid close code: ${code} (use 1000, 1001-1003, 1007-1014 or 3000-4999)`);
    }
    const reasonBytes = reason === undefined ? EMPTY : typeof reason === 'string' ? Buffer.from(reason, 'utf8') : reason;
    if (reasonBytes.length > 123) throw new RangeError('The close reason must not be greater than 123 bytes');
    if (code === undefined && reasonBytes.length > 0) code = CloseCode.NORMAL;
    if (this.readyState === WebSocket.CLOSED) return;
    if (this.readyState === WebSocket.CONNECTING) {
      this.abortConnecting();
      return;
    }
    this.sendClose(code, reasonBytes);
  }

  /** Destroy the socket at once, without a closing handshake (close code 1006). */
  terminate(): void {
    if (this.readyState === WebSocket.CLOSED) return;
    if (this.readyState === WebSocket.CONNECTING) {
      this.abortConnecting();
      return;
    }
    this.readyState = WebSocket.CLOSING;
    this.socket?.destroy();
  }

  /** Client side: abandon an unfinished opening handshake. Overridden by the client. @internal */
  protected abortConnecting(): void {
    this.readyState = WebSocket.CLOSED;
  }

  private sendClose(code: number | undefined, reason: Uint8Array): void {
    this.readyState = WebSocket.CLOSING;
    if (this.closeSent) return;
    this.closeSent = true;
    this.sendingFragments = false;
    const socket = this.socket!;
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    this.writeFrame(Opcode.CLOSE, encodeClosePayload(code, reason), true);
    if (this.closeReceived && this.options.isServer) {
      // Handshake complete: the server closes TCP first (RFC 6455 section 7.1.1).
      socket.end();
    }
    deadlines.add(this, this.options.closeTimeout);
  }

  /** The close handshake timed out: drop TCP. @internal */
  expire(): void {
    this.socket?.destroy();
  }

  // ---- parser events (FrameParserHandler) --------------------------------------------------

  /** @internal */
  onMessage(data: Buffer, isBinary: boolean): void {
    if (this.readyState !== WebSocket.OPEN) return;
    let value: RawData = data;
    if (isBinary) {
      switch (this.binaryType) {
        case 'arraybuffer':
          value = toArrayBuffer(data);
          break;
        case 'fragments':
          value = [data];
          break;
        case 'blob':
          value = new Blob([data as Uint8Array<ArrayBuffer>]);
          break;
      }
    }
    this.emit('message', value, isBinary);
  }

  /** @internal */
  onPing(data: Buffer): void {
    if (this.options.autoPong && this.readyState === WebSocket.OPEN && !this.closeSent) {
      this.writeFrame(Opcode.PONG, data, true);
    }
    this.emit('ping', data);
  }

  /** @internal */
  onPong(data: Buffer): void {
    this.emit('pong', data);
  }

  /** @internal */
  onClose(code: number, reason: Buffer): void {
    this.closeReceived = true;
    this.closeCode = code;
    this.closeReason = reason;
    if (this.closeSent) {
      if (this.options.isServer) this.socket?.end();
      return;
    }
    // Echo the peer's code (RFC 6455 section 5.5.1); a close without a code is echoed without one.
    this.sendClose(code === CloseCode.NO_STATUS_RECEIVED ? undefined : code, EMPTY);
  }

  /** @internal */
  onProtocolError(err: ProtocolError): void {
    this.closeCode = err.closeCode;
    this.failWithError(err, err.closeCode);
  }

  /**
   * Fail the connection (RFC 6455 section 7.1.7): emit `error`, send a Close frame with
   * `closeCode`, and close TCP without waiting for the peer's Close.
   * @internal
   */
  failWithError(err: CodedError | ProtocolError, closeCode: number): void {
    this.parser?.stop();
    this.emitError(err);
    const socket = this.socket;
    if (!socket) return;
    if (!this.closeSent && socket.writable) {
      this.closeSent = true;
      this.writeFrame(Opcode.CLOSE, encodeClosePayload(closeCode, ''), true);
    }
    this.readyState = WebSocket.CLOSING;
    socket.end();
    deadlines.add(this, this.options.closeTimeout);
  }

  /** A listener threw while this connection dispatched an event. @internal */
  onListenerError(cause: unknown): void {
    const err = codedError(
      'WS_ERR_UNEXPECTED_CONDITION',
      `a listener threw: ${cause instanceof Error ? cause.message : String(cause)}`,
    );
    (err as CodedError & { cause: unknown }).cause = cause;
    if (this.listenerCount('error') === 0 || this.errorEmitted) {
      // Nobody would hear of it otherwise; the process keeps running.
      process.emitWarning(err);
    }
    this.closeCode = CloseCode.INTERNAL_ERROR;
    this.failWithError(err, CloseCode.INTERNAL_ERROR);
  }

  private emitError(err: Error): void {
    if (this.errorEmitted) return;
    this.errorEmitted = true;
    // A server must survive bad peers even when the application attached no error listener,
    // so `error` is only emitted to listeners that exist (EventEmitter would throw otherwise).
    if (this.listenerCount('error') === 0) return;
    try {
      this.emit('error', err);
    } catch (thrown) {
      process.emitWarning(thrown instanceof Error ? thrown : String(thrown));
    }
  }

  // ---- socket events ------------------------------------------------------------------------

  /** The peer half-closed TCP. @internal */
  onSocketEnd(): void {
    this.readyState = WebSocket.CLOSING;
    this.parser?.stop();
    this.socket?.end();
  }

  /** TCP is gone: the connection is closed. @internal */
  onSocketClose(): void {
    if (this.readyState === WebSocket.CLOSED) return;
    this.readyState = WebSocket.CLOSED;
    deadlines.delete(this);
    this.parser?.stop();
    const socket = this.socket;
    if (socket) {
      socket.removeListener('data', socketOnData);
      socket[kConnection] = undefined;
    }
    this.emit('close', this.closeCode, this.closeReason);
  }

  /** True when both Close frames were exchanged. */
  get wasClean(): boolean {
    return this.closeSent && this.closeReceived;
  }

  // ---- WHATWG event API -----------------------------------------------------------------------

  get onopen(): ((event: WsEvent) => void) | null {
    return (this.handlers.open as ((event: WsEvent) => void) | undefined) ?? null;
  }
  set onopen(fn: ((event: WsEvent) => void) | null) {
    this.setHandler('open', fn);
  }
  get onmessage(): ((event: WsMessageEvent) => void) | null {
    return (this.handlers.message as ((event: WsMessageEvent) => void) | undefined) ?? null;
  }
  set onmessage(fn: ((event: WsMessageEvent) => void) | null) {
    this.setHandler('message', fn);
  }
  get onerror(): ((event: WsErrorEvent) => void) | null {
    return (this.handlers.error as ((event: WsErrorEvent) => void) | undefined) ?? null;
  }
  set onerror(fn: ((event: WsErrorEvent) => void) | null) {
    this.setHandler('error', fn);
  }
  get onclose(): ((event: WsCloseEvent) => void) | null {
    return (this.handlers.close as ((event: WsCloseEvent) => void) | undefined) ?? null;
  }
  set onclose(fn: ((event: WsCloseEvent) => void) | null) {
    this.setHandler('close', fn);
  }

  private setHandler(type: 'open' | 'message' | 'error' | 'close', fn: ((event: never) => void) | null): void {
    const old = this.handlers[type];
    if (old) this.removeEventListener(type, old);
    this.handlers[type] = typeof fn === 'function' ? fn : null;
    if (typeof fn === 'function') this.addEventListener(type, fn);
  }

  /**
   * WHATWG-style listener: `message` events carry `data` (string for text), `close` events
   * `code`, `reason` and `wasClean`, `error` events the `Error`.
   */
  addEventListener(type: string, listener: WhatwgListener, options?: { once?: boolean }): void {
    for (const existing of this.rawListeners(type) as Array<WsListener & { [kWhatwg]?: WhatwgListener }>) {
      if (existing[kWhatwg] === listener) return;
    }
    const call = (event: WsEvent): void => {
      if (typeof listener === 'function') (listener as (e: WsEvent) => void).call(this, event);
      else (listener.handleEvent as (e: WsEvent) => void).call(listener, event);
    };
    let wrapper: WsListener & { [kWhatwg]?: WhatwgListener };
    switch (type) {
      case 'message':
        wrapper = (data: Buffer | ArrayBuffer | Buffer[] | Blob, isBinary: boolean) => {
          call(new WsMessageEvent(this, isBinary ? data : (data as Buffer).toString('utf8')));
        };
        break;
      case 'close':
        wrapper = (code: number, reason: Buffer) => {
          call(new WsCloseEvent(this, code, reason.toString('utf8'), this.wasClean));
        };
        break;
      case 'error':
        wrapper = (err: Error) => call(new WsErrorEvent(this, err));
        break;
      default:
        wrapper = () => call(new WsEvent(type, this));
    }
    wrapper[kWhatwg] = listener;
    if (options?.once) this.once(type, wrapper);
    else this.on(type, wrapper);
  }

  removeEventListener(type: string, listener: WhatwgListener): void {
    for (const existing of this.rawListeners(type) as Array<WsListener & { [kWhatwg]?: WhatwgListener; listener?: WsListener & { [kWhatwg]?: WhatwgListener } }>) {
      if (existing[kWhatwg] === listener || existing.listener?.[kWhatwg] === listener) {
        this.removeListener(type, existing);
        return;
      }
    }
  }
}
