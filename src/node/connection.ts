/**
 * WebSocket: one connection class for the server side and the client side. It joins a socket
 * to the sans-I/O FrameParser, writes frames (corked and flushed once per event-loop turn),
 * runs the close handshake and reports events both `ws`-style (`on('message', (data,
 * isBinary))`) and WHATWG-style (`onmessage`, `addEventListener`).
 */
import type { Duplex } from 'node:stream';
import { CloseCode, closeCodeIsSendable } from '../protocol/close-codes.js';
import type { ProtocolError } from '../protocol/errors.js';
import { encodeClosePayload, encodeFrame, type EncodedFrame } from '../protocol/frame.js';
import { MAX_CONTROL_PAYLOAD, Opcode } from '../protocol/opcodes.js';
import { FrameParser, type FrameParserHandler } from '../protocol/parser.js';
import { isValidUtf8 } from '../protocol/utf8.js';
import { deadlines, type Expirable } from './deadlines.js';
import type { DeflateError, MessageDeflate } from './deflate.js';
import type { SharedMessage } from './shared-message.js';
import { openClient, parseProtocolsArgument, parseWebSocketUrl, type ClientOptions } from './client.js';
import { WsEventTarget, type WsListener } from './event-target.js';
import type { ConnectionHost, PublishOptions } from './host.js';
import { SendQueue } from './send-queue.js';
import {
  READ_PAUSE_BYTES,
  kConnection,
  replayHead,
  socketOnClose,
  socketOnData,
  socketOnDrain,
  socketOnEnd,
  socketOnError,
  type OwnedSocket,
} from './socket-listeners.js';
import { scheduleUncork } from './write-batch.js';

import {
  EMPTY,
  clampUnsignedShort,
  codedError,
  controlArguments,
  DEFAULT_CONNECTION_OPTIONS,
  toArrayBuffer,
  toBuffer,
  type BinaryType,
  type Callback,
  type CodedError,
  type ConnectionOptions,
  type RawData,
  type SendData,
  type SendOptions,
} from './connection-types.js';

export type { BinaryType, CodedError, ConnectionOptions, RawData, SendData, SendOptions } from './connection-types.js';

/**
 * Frames up to this size are collected per event-loop turn and written as one buffer; larger
 * ones go to the (corked) socket as they are, header and payload without a copy.
 */
const SMALL_FRAME = 4096;

type Listener<A extends unknown[]> = (this: WebSocket, ...args: A) => void;
interface WebSocketEvents {
  open: [];
  message: [data: RawData, isBinary: boolean];
  close: [code: number, reason: Buffer];
  error: [err: CodedError];
  ping: [data: Buffer];
  pong: [data: Buffer];
  drop: [backlog: number];
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

// The message being dispatched with a client's default 'blob' (see deliverMessage), and the
// Blob its WHATWG listeners share (made by the first of them, see whatwgMessageData).
let lastBlobOwner: WebSocket | undefined;
let lastBlobSource: Buffer | undefined;
let lastBlob: Blob | undefined;

const FLAG_NAMES = [
  'closeSent', 'closeReceived', 'sendingFragments', 'errorEmitted', 'corked', 'socketCorked', 'readPausedForWrites',
  'heardFrom', 'messageSeen', 'pingOutstanding', 'userPaused', 'whatwg', 'inflating', 'droppingFragments', 'droppingCompressed',
  'binaryTypeSet', 'slowConsumerSends',
] as const;
/** heardFrom and messageSeen start true; every other flag false. */
const INITIAL_FLAGS = (1 << FLAG_NAMES.indexOf('heardFrom')) | (1 << FLAG_NAMES.indexOf('messageSeen'));

export class WebSocket extends WsEventTarget implements FrameParserHandler, Expirable {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  // The instance constants live on the prototype (below), as WebIDL puts them: not four
  // more fields on every connection.
  declare readonly CONNECTING: 0;
  declare readonly OPEN: 1;
  declare readonly CLOSING: 2;
  declare readonly CLOSED: 3;

  /** CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3). */
  readyState: 0 | 1 | 2 | 3 = 0;
  /** The subprotocol the server selected ('' if none). */
  protocol = '';
  /** The extensions the server accepted, as a header value ('' if none). */
  extensions = '';
  /** The URL (client side); '' on the server side. */
  url = '';
  private binary: BinaryType = 'nodebuffer';

  /** @internal */ parser: FrameParser | undefined;
  private socket: OwnedSocket | undefined;
  private options: ConnectionOptions = DEFAULT_CONNECTION_OPTIONS;
  /**
   * The yes/no state below, one bit each (see FLAG_NAMES after the class): one field instead
   * of fifteen on every connection. Read and written as ordinary properties.
   * @internal
   */
  flags = INITIAL_FLAGS;
  private declare closeSent: boolean;
  private declare closeReceived: boolean;
  private closeCode: number = CloseCode.ABNORMAL_CLOSURE;
  private closeReason: Buffer = EMPTY;
  private declare sendingFragments: boolean;
  private declare errorEmitted: boolean;
  /** Registered for the end-of-turn flush (write-batch.ts). @internal */ declare corked: boolean;
  /** The socket itself is corked (a large frame was written this turn). */
  private declare socketCorked: boolean;
  /** Small frames of this turn, written as one buffer at its end (see queueSmall). */
  private smallFrames: Buffer[] | undefined;
  private smallBytes = 0;
  private smallPayloadBytes = 0;
  private smallCallbacks: Callback[] | undefined;
  /**
   * Bytes handed to the socket in this event-loop turn (reset when the turn's writes are
   * flushed). The slow-consumer policy leaves them out: a connection is slow when bytes from
   * earlier turns are still unwritten, never because of this turn's own burst.
   */
  private turnBytes = 0;
  /** Reading paused because too much waits to be written. @internal */ declare readPausedForWrites: boolean;
  /** Set on every read; the heartbeat sweep clears it. @internal */ declare heardFrom: boolean;
  /** Set on every message; the idle sweep clears it. @internal */ declare messageSeen: boolean;
  /** Sweep bookkeeping (sweep.ts). @internal */ lastHeard = 0;
  /** @internal */ lastMessage = 0;
  /** @internal */ declare pingOutstanding: boolean;
  /** Bytes waiting to be written at the last sweep (a peer that drains them is alive). @internal */ lastBacklog = 0;
  /** The server's counters, policy and topic routing (server side only). @internal */ host: ConnectionHost | undefined;
  /** Pre-encoded frames waiting for a fragmented send to finish. */
  private heldFrames: Array<[EncodedFrame, number]> | undefined;
  private heldBytes = 0;
  private topicSet: Set<string> | undefined;
  /** Messages skipped because this connection's backlog was over `maxBufferedAmount` (policy 'drop'). */
  droppedMessages = 0;
  private declare userPaused: boolean;
  /** Client side: created with a URL, so the WHATWG rules for close() and send() apply. */
  private declare readonly whatwg: boolean;
  private cancelHandshake: (() => void) | undefined;
  /** Bytes passed to send() after closing: the WHATWG standard counts them in bufferedAmount. */
  private discarded = 0;
  /** Sends waiting behind a Blob being read (kept in call order), or undefined. */
  private queue: SendQueue | undefined;
  /** Frame header bytes written since the socket's buffer was last empty (see bufferedAmount). */
  private headerBytes = 0;
  /** permessage-deflate, when negotiated. */
  private deflate: MessageDeflate | undefined;
  /** A received message is being inflated: reading and parsing wait for it. */
  private declare inflating: boolean;
  /** TCP ended (1) or closed (2) while inflating: handled once the message was delivered. */
  private deferredSocketEvents = 0;
  /** Whether the fragmented message being sent (as seen by send(), not yet by the socket) is compressed. */
  private outgoingCompressed: boolean | undefined;
  /** The slow-consumer policy dropped the first fragment of the message being sent. */
  private declare droppingFragments: boolean;
  private declare droppingCompressed: boolean;
  /**
   * binaryType was assigned. Until then a client's 'blob' (the browsers' default) applies to
   * WHATWG listeners only: ws-style `message` listeners get a Buffer, as ws gives them.
   */
  private declare binaryTypeSet: boolean;
  /**
   * Server side: `send()` on this connection is subject to the server's slow-consumer policy
   * (`maxBufferedAmount` / `slowConsumer`), as publish and broadcast always are. Default
   * false: as in ws, `send()` queues whatever the application gives it, and the application
   * watches `bufferedAmount` itself.
   */
  declare slowConsumerSends: boolean;

  /**
   * `new WebSocket(url, protocols?, options?)` opens a client connection, as in browsers
   * (`options` holds the Node extras: headers, TLS, timeouts). Throws a `SyntaxError`
   * DOMException for a bad URL or bad/duplicate protocols. Server-side connections are made
   * by WebSocketServer.
   */
  constructor(url?: string | URL, protocols?: string | readonly string[], options?: ClientOptions) {
    super();
    if (url === undefined) return;
    const parsed = parseWebSocketUrl(url);
    const list = parseProtocolsArgument(protocols);
    this.whatwg = true;
    this.binary = 'blob';
    this.url = parsed.url.href;
    this.origin = parsed.url.origin;
    this.cancelHandshake = openClient(this, parsed, list, options ?? {});
  }

  /**
   * How binary messages are delivered, in both event styles: `'nodebuffer'` (Buffer; the
   * default on the server side), `'blob'` (the default on the client side, as in browsers),
   * `'arraybuffer'`, or `'fragments'` (Buffer[]). Other values are ignored.
   */
  get binaryType(): BinaryType {
    return this.binary;
  }
  set binaryType(value: BinaryType) {
    if (value === 'nodebuffer' || value === 'arraybuffer' || value === 'blob' || value === 'fragments') {
      this.binary = value;
      this.binaryTypeSet = true;
    }
  }

  private origin = '';

  /** @internal */
  protected get eventOrigin(): string {
    return this.origin;
  }

  /** Client side: the server accepted the handshake. @internal */
  attachClientSocket(socket: Duplex, head: Buffer, options: ConnectionOptions, deflate: MessageDeflate | undefined): void {
    this.cancelHandshake = undefined;
    this.setSocket(socket, head, options, deflate);
    this.emitOpen();
  }

  /**
   * Client side: the handshake failed (network, HTTP status, bad response, timeout, abort).
   * As in browsers: readyState CLOSED, then `error`, then `close` with 1006, asynchronously.
   * @internal
   */
  failHandshake(err: CodedError): void {
    this.cancelHandshake = undefined;
    if (this.readyState === WebSocket.CLOSED) return;
    this.readyState = WebSocket.CLOSING;
    setImmediate(() => {
      this.readyState = WebSocket.CLOSED;
      this.emitError(err);
      this.emitSafely('close', CloseCode.ABNORMAL_CLOSURE, EMPTY);
    });
  }

  /**
   * Take over `socket` after a completed opening handshake. `head` holds bytes that arrived
   * behind the handshake. `options` may be shared by many connections (a server passes one
   * object to all of them); `deflate` is this connection's permessage-deflate state, if
   * negotiated. Used by WebSocketServer and the client; not for applications.
   * @internal
   */
  setSocket(socket: Duplex, head: Buffer, options: ConnectionOptions, deflate?: MessageDeflate): void {
    const owned = socket as OwnedSocket;
    this.socket = owned;
    this.options = options;
    this.deflate = deflate;
    this.parser = new FrameParser(this, { expectMasked: options.isServer, maxPayload: options.maxPayload, maxFragments: options.maxFragments, allowCompressed: deflate !== undefined });
    owned[kConnection] = this;
    const net = socket as Duplex & { setNoDelay?: (v: boolean) => void; setTimeout?: (ms: number) => void };
    net.setNoDelay?.(true);
    net.setTimeout?.(0);
    // Bytes that came in with the handshake go back on the socket and are read in a later
    // event-loop turn (setImmediate, not a tick), as browsers queue messages as tasks: an
    // application that awaits `open` and then attaches listeners still gets them.
    if (head.length > 0) {
      socket.pause();
      setImmediate(replayHead, this, socket, head);
    }
    socket.on('data', socketOnData);
    socket.on('end', socketOnEnd);
    socket.on('close', socketOnClose);
    socket.on('error', socketOnError);
    socket.on('drain', socketOnDrain);
    this.readyState = WebSocket.OPEN;
  }

  /** Emit `open`; the server does this before `connection`, the client after the handshake. @internal */
  emitOpen(): void {
    this.emitSafely('open');
  }

  /**
   * Emit an event whose listeners' exceptions must not escape into socket or timer callbacks
   * (where they would crash the process): they are reported as process warnings, as browsers
   * report exceptions in event handlers and carry on.
   */
  private emitSafely(event: string, ...args: unknown[]): void {
    // Each listener on its own: one that throws does not keep the others from running.
    for (const listener of this.rawListeners(event) as Array<(...a: unknown[]) => void>) {
      try {
        listener.apply(this, args);
      } catch (err) {
        process.emitWarning(err instanceof Error ? err : String(err));
      }
    }
  }

  /** Bytes queued by send() but not yet handed to the operating system. */
  get bufferedAmount(): number {
    // Application bytes only, as the WHATWG standard counts them: the frame headers written
    // since the socket's buffer was last empty are left out.
    let pending = 0;
    const socket = this.socket;
    if (socket !== undefined) {
      const waiting = socket.writableLength;
      if (waiting === 0) this.headerBytes = 0;
      else pending = Math.max(0, waiting - this.headerBytes);
    }
    return pending + this.smallPayloadBytes + (this.queue?.bytes ?? 0) + this.discarded;
  }

  /** Bytes waiting to be written to the peer (sweep.ts). @internal */
  get backlog(): number {
    return (this.socket?.writableLength ?? 0) + this.smallBytes;
  }

  /**
   * Bytes offered to the socket in earlier event-loop turns and still not taken by the
   * kernel (the slow-consumer policy's measure). Messages waiting to be compressed count
   * too: their bytes are on their way to the socket whatever the peer does.
   * @internal
   */
  get staleBacklog(): number {
    const written = this.socket?.writableLength ?? 0;
    return Math.max(0, written - this.turnBytes) + this.heldBytes + this.queuedBytes;
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
  send(data: SendData | number | readonly Buffer[], options?: SendOptions | ((err?: Error | null) => void), cb?: (err?: Error | null) => void): void {
    if (typeof options === 'function') {
      cb = options;
      options = undefined;
    }
    if (this.readyState === WebSocket.CONNECTING) {
      throw new DOMException('WebSocket is not open: readyState 0 (CONNECTING)', 'InvalidStateError');
    }
    // Buffer[] (what binaryType 'fragments' delivers, part of RawData) is sent as one binary
    // message, so `ws.send(data, { binary: isBinary })` echoes whatever a listener received.
    // Anything else that is not a string, bytes or a Blob is sent as its string form (WebIDL's
    // conversion for the USVString overload), as text.
    const value: SendData = Array.isArray(data)
      ? Buffer.concat(data as readonly Buffer[])
      : typeof data === 'string' || data instanceof ArrayBuffer || ArrayBuffer.isView(data) || data instanceof Blob
        ? (data as SendData)
        : String(data);
    if (this.readyState !== WebSocket.OPEN || this.closeSent) {
      // WHATWG: data sent after closing is discarded but still counted in bufferedAmount.
      this.discarded += typeof value === 'string' ? Buffer.byteLength(value) : value instanceof Blob ? value.size : toBuffer(value).length;
      if (cb) this.notOpen(cb);
      return;
    }
    if (value instanceof Blob) {
      (this.queue ??= new SendQueue(this)).sendBlob(value, options, cb);
      return;
    }
    if (this.deflate !== undefined && this.sendCompressed(value, options, cb)) return;
    // (Uncompressed: the slow-consumer policy judges it when it is written, in sendNow.)
    if (this.queue?.active) {
      this.queue.send(value, typeof value === 'string' ? Buffer.byteLength(value) : toBuffer(value).length, options, cb);
      return;
    }
    this.sendNow(value, options, cb);
  }

  /**
   * permessage-deflate: decide whether this message (or fragment) is compressed, and if so
   * queue it for compression (zlib is asynchronous, so it and everything after it go through
   * the send queue, in order). Returns false when it is sent uncompressed the usual way.
   */
  private sendCompressed(value: Exclude<SendData, Blob>, options: SendOptions | undefined, cb: Callback | undefined): boolean {
    const fin = options?.fin ?? true;
    const continuing = this.outgoingCompressed !== undefined;
    let compress = this.outgoingCompressed;
    if (compress === undefined) {
      const size = typeof value === 'string' ? Buffer.byteLength(value) : toBuffer(value).length;
      compress = options?.compress !== false && (!fin || size >= this.deflate!.settings.threshold);
    }
    this.outgoingCompressed = fin ? undefined : compress;
    if (!compress) return false;
    // The slow-consumer policy judges a message once, here: a compressed message cannot be
    // dropped later, since the compressor's state already includes it. The fragments of a
    // message whose first fragment was dropped are dropped too.
    if (continuing ? this.droppingCompressed : this.slowConsumerSends && this.host !== undefined && !this.admit()) {
      this.droppingCompressed = !fin;
      if (cb) this.notOpen(cb);
      return true;
    }
    // The bytes go as a Buffer: say whether they were text.
    const binary = options?.binary ?? typeof value !== 'string';
    (this.queue ??= new SendQueue(this)).sendCompressed(toBuffer(value), { binary, fin }, cb);
    return true;
  }

  /** The send queue's compression step. @internal */
  compressQueued(data: Buffer, fin: boolean): Promise<Buffer | null> {
    return new Promise((resolve) => {
      if (this.deflate === undefined || this.closeSent || this.readyState === WebSocket.CLOSED || this.socket?.destroyed) {
        resolve(null);
        return;
      }
      this.deflate.compress(data, fin, (err, out) => {
        if (err !== null && err.code !== 'WS_ERR_NOT_OPEN' && this.readyState !== WebSocket.CLOSED) {
          // zlib failed on our own data: the message (or the rest of it) cannot be sent.
          this.failWithError(err, CloseCode.INTERNAL_ERROR);
        }
        resolve(err === null ? out! : null);
      });
    });
  }

  private sendNow(value: Exclude<SendData, Blob>, options: SendOptions | undefined, cb: ((err?: Error | null) => void) | undefined, compressed = false): void {
    const fin = options?.fin ?? true;
    if (this.droppingFragments || (this.slowConsumerSends && this.host !== undefined && !this.sendingFragments && !compressed && !this.admit())) {
      // A dropped first fragment takes the rest of its message with it.
      this.droppingFragments = !fin;
      if (cb) this.notOpen(cb);
      return;
    }
    const binary = options?.binary ?? typeof value !== 'string';
    let opcode: number = binary ? Opcode.BINARY : Opcode.TEXT;
    // RFC 7692 section 6.1: RSV1 on the first frame of a compressed message only.
    let rsv1 = compressed;
    if (this.sendingFragments) {
      opcode = Opcode.CONTINUATION;
      rsv1 = false;
    }
    this.sendingFragments = !fin;
    const payload = toBuffer(value);
    this.writeFrame(opcode, payload, fin, cb, rsv1);
    const host = this.host;
    if (host !== undefined) {
      if (fin) host.counters.messagesOut++;
      host.counters.bytesOut += payload.length;
    }
    if (fin && this.heldFrames !== undefined) this.releaseHeldFrames();
  }

  /**
   * Slow-consumer policy: with more than `maxBufferedAmount` bytes offered to this peer in
   * earlier event-loop turns still unwritten, a new message is dropped (counted, `drop` event)
   * or the connection is closed with 1013, so one reader that stopped reading cannot grow the
   * server's memory beyond the limit plus one turn's burst. What this turn wrote is not
   * judged: the kernel has not been offered it yet, and a fast reader takes it at once.
   */
  private admit(): boolean {
    const host = this.host!;
    const stale = this.staleBacklog;
    if (this.socket === undefined || stale <= host.maxBufferedAmount) return true;
    if (host.slowConsumer === 'drop') {
      this.droppedMessages++;
      host.counters.dropped++;
      if (this.listenerCount('drop') > 0) this.emitSafely('drop', this.backlog);
      return false;
    }
    if (!this.closeSent) {
      host.counters.slowConsumersClosed++;
      this.sendClose(CloseCode.TRY_AGAIN_LATER, Buffer.from('slow consumer'));
    }
    return false;
  }

  /**
   * Write a frame encoded once for many connections (publish, broadcast). Server side only:
   * the bytes are unmasked. Subject to the slow-consumer policy; held back while this
   * connection is in the middle of a fragmented send. Returns false when not written.
   * @internal
   */
  sendEncoded(message: SharedMessage): boolean {
    if (this.readyState !== WebSocket.OPEN || this.closeSent) return false;
    if (!this.admit()) return false;
    if (this.queue?.active) {
      // Behind a Blob being read or a message being compressed: wait in line, as the same
      // shared message (never merged into a fragmented message that is still being sent).
      this.queue.sendShared(message);
      return true;
    }
    this.writeShared(message);
    return true;
  }

  /** Write (or hold, during a fragmented send) a shared message. @internal */
  writeShared(message: SharedMessage): void {
    if (this.closeSent || this.readyState === WebSocket.CLOSED) return;
    const payloadLength = message.payload.length;
    const deflate = this.deflate;
    let frame: EncodedFrame;
    if (deflate !== undefined && message.shouldCompress(deflate)) {
      frame = message.compressedFrame(deflate);
      deflate.sharedFrameSent();
    } else {
      frame = message.frame;
    }
    if (this.sendingFragments) {
      (this.heldFrames ??= []).push([frame, payloadLength]);
      this.heldBytes += payloadLength;
    } else {
      this.writeEncoded(frame, payloadLength);
    }
    const counters = this.host!.counters;
    counters.messagesOut++;
    counters.bytesOut += payloadLength;
  }

  /** Write an encoded frame: small ones join this turn's batch, large ones go to the corked socket. */
  private writeEncoded(frame: EncodedFrame, payloadLength: number, cb?: Callback): void {
    if (!Array.isArray(frame) && frame.length <= SMALL_FRAME) {
      this.queueSmall(frame, payloadLength, cb);
      return;
    }
    const socket = this.corkSocket();
    this.headerBytes += Array.isArray(frame) ? frame[0].length : frame.length - payloadLength;
    this.turnBytes += Array.isArray(frame) ? frame[0].length + frame[1].length : frame.length;
    if (Array.isArray(frame)) {
      socket.write(frame[0]);
      socket.write(frame[1], cb);
    } else {
      socket.write(frame, cb);
    }
  }

  /**
   * Small frames of one event-loop turn are collected and written as one buffer when the turn
   * ends: one write request per socket per turn, without a writev of many tiny chunks or the
   * stream's per-chunk bookkeeping. (A frame shared by many connections is copied only when a
   * connection has several frames in the turn.)
   */
  private queueSmall(frame: Buffer, payloadLength: number, cb: Callback | undefined): void {
    if (this.socket === undefined || this.socket.destroyed) {
      if (cb !== undefined) this.notOpen(cb);
      return;
    }
    (this.smallFrames ??= []).push(frame);
    this.smallBytes += frame.length;
    this.smallPayloadBytes += payloadLength;
    if (cb !== undefined) (this.smallCallbacks ??= []).push(cb);
    if (!this.corked) {
      this.corked = true;
      scheduleUncork(this);
    }
  }

  /** Write the collected small frames now (before any other write, and before ending TCP). */
  private flushSmall(): void {
    const frames = this.smallFrames;
    if (frames === undefined || frames.length === 0) return;
    const data = frames.length === 1 ? frames[0] : Buffer.concat(frames, this.smallBytes);
    frames.length = 0;
    const socket = this.socket;
    // Header bytes are counted since the socket's buffer was last empty (see bufferedAmount).
    if (socket !== undefined && socket.writableLength === 0) this.headerBytes = 0;
    this.headerBytes += this.smallBytes - this.smallPayloadBytes;
    this.smallBytes = 0;
    this.smallPayloadBytes = 0;
    const callbacks = this.smallCallbacks;
    this.smallCallbacks = undefined;
    if (socket === undefined || !socket.writable) {
      if (callbacks !== undefined) for (const cb of callbacks) this.notOpen(cb);
      return;
    }
    this.turnBytes += data.length;
    socket.write(data, callbacks === undefined ? undefined : (err?: Error | null) => {
      for (const cb of callbacks) cb(err);
    });
  }

  /** Cork the socket for a large write this turn (uncorked with the batch), after the small frames. */
  private corkSocket(): OwnedSocket {
    this.flushSmall();
    const socket = this.socket!;
    if (socket.writableLength === 0) this.headerBytes = 0;
    if (!this.socketCorked) {
      this.socketCorked = true;
      socket.cork();
      if (!this.corked) {
        this.corked = true;
        scheduleUncork(this);
      }
    }
    return socket;
  }

  /** End TCP after whatever this turn still has to write. */
  private endSocket(socket: Duplex): void {
    this.flushSmall();
    socket.end();
  }

  private releaseHeldFrames(): void {
    const held = this.heldFrames!;
    this.heldFrames = undefined;
    this.heldBytes = 0;
    for (const [frame, payloadLength] of held) this.writeEncoded(frame, payloadLength);
  }

  // ---- topics (server side) ----------------------------------------------------------------

  /** Subscribe to `topic` (see server.publish). Returns false if already subscribed or not open. */
  subscribe(topic: string): boolean {
    const pubsub = this.requirePubSub();
    if (this.readyState !== WebSocket.OPEN) return false;
    const added = pubsub.subscribe(this, topic);
    if (added) (this.topicSet ??= new Set()).add(topic);
    return added;
  }

  /** Leave `topic`. Returns false if not subscribed. */
  unsubscribe(topic: string): boolean {
    const pubsub = this.requirePubSub();
    const removed = pubsub.unsubscribe(this, topic);
    if (removed) this.topicSet?.delete(topic);
    return removed;
  }

  /** Whether this connection is subscribed to `topic`. */
  isSubscribed(topic: string): boolean {
    return this.topicSet?.has(topic) ?? false;
  }

  /** The topics this connection is subscribed to. */
  get topics(): string[] {
    return this.topicSet ? [...this.topicSet] : [];
  }

  /** Publish to every subscriber of `topic` except this connection. Returns how many received it. */
  publish(topic: string, data: string | Buffer | ArrayBuffer | ArrayBufferView, options?: PublishOptions): number {
    return this.requirePubSub().publish(topic, data, options, this);
  }

  private requirePubSub(): NonNullable<ConnectionHost['pubsub']> {
    const pubsub = this.host?.pubsub;
    if (pubsub === undefined) throw codedError('WS_ERR_NO_PUBSUB', 'Topics are available on connections accepted by a duet WebSocketServer');
    return pubsub;
  }

  /** @internal */
  sendQueued(data: Exclude<SendData, Blob> | null, options: SendOptions | undefined, cb: ((err?: Error | null) => void) | undefined, compressed = false): void {
    if (data === null || this.closeSent || this.readyState === WebSocket.CLOSED) {
      if (cb) this.notOpen(cb);
      return;
    }
    this.sendNow(data, options, cb, compressed);
  }

  /** @internal */
  endQueued(): void {
    const socket = this.socket;
    if (socket !== undefined && !socket.writableEnded && !socket.destroyed) this.endSocket(socket);
  }

  /** @internal */
  closeQueued(code: number | undefined, reason: Buffer): void {
    if (this.readyState !== WebSocket.CLOSED) this.sendClose(code, reason);
  }

  /**
   * A Blob could not be read: fail the connection (1011), and hand the same error to the
   * Blob's callback and those of the sends queued behind it, which will never be sent (as ws
   * does; a promisified send() must settle).
   * @internal
   */
  blobFailed(cause: unknown, callbacks: Callback[]): void {
    const err = codedError('WS_ERR_BLOB_READ', `Could not read a Blob to send: ${String(cause)}`);
    (err as CodedError & { cause: unknown }).cause = cause;
    // Closed meanwhile: there is nothing left to fail (and no 'error' after 'close').
    if (this.readyState !== WebSocket.CLOSED) this.failWithError(err, CloseCode.INTERNAL_ERROR);
    for (const cb of callbacks) process.nextTick(cb, err);
  }

  /** Send a Ping (at most 125 bytes of data). */
  ping(data?: SendData | number | ((err?: Error | null) => void), mask?: boolean | ((err?: Error | null) => void), cb?: (err?: Error | null) => void): void {
    const [payload, callback] = controlArguments(data, mask, cb);
    this.control(Opcode.PING, payload, callback);
  }

  /** Send an unsolicited Pong (at most 125 bytes of data). */
  pong(data?: SendData | number | ((err?: Error | null) => void), mask?: boolean | ((err?: Error | null) => void), cb?: (err?: Error | null) => void): void {
    const [payload, callback] = controlArguments(data, mask, cb);
    this.control(Opcode.PONG, payload, callback);
  }

  /** Stop reading from the peer (messages wait in the kernel; TCP flow control slows the peer). */
  pause(): void {
    if (this.readyState === WebSocket.CONNECTING || this.readyState === WebSocket.CLOSED) return;
    this.userPaused = true;
    this.socket?.pause();
  }

  /** Resume reading after pause(). */
  resume(): void {
    if (this.readyState === WebSocket.CONNECTING || this.readyState === WebSocket.CLOSED) return;
    this.userPaused = false;
    this.resumeReading();
  }

  /** Bytes waiting in the send queue (Blobs being read, messages being compressed). @internal */
  get queuedBytes(): number {
    return this.queue?.bytes ?? 0;
  }

  /** The socket drained, or the send queue moved on: reading may resume. @internal */
  writesDrained(): void {
    if (!this.readPausedForWrites) return;
    if (this.backlog + this.queuedBytes > READ_PAUSE_BYTES) return;
    this.readPausedForWrites = false;
    this.resumeReading();
  }

  /** Read from the socket again unless something still holds reading. @internal */
  resumeReading(): void {
    if (!this.userPaused && !this.readPausedForWrites && !this.inflating) this.socket?.resume();
  }

  /** True while pause() is in effect. */
  get isPaused(): boolean {
    return this.userPaused;
  }

  /** The underlying socket (as ws's `_socket`, e.g. for `ws._socket.remoteAddress`). */
  get _socket(): Duplex | undefined {
    return this.socket;
  }

  private control(opcode: number, data: SendData | number | undefined, cb: ((err?: Error | null) => void) | undefined): void {
    if (this.readyState === WebSocket.CONNECTING) {
      throw new DOMException('WebSocket is not open: readyState 0 (CONNECTING)', 'InvalidStateError');
    }
    if (data instanceof Blob) throw new TypeError('ping() and pong() take a string or bytes, not a Blob');
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

  private writeFrame(opcode: number, payload: Uint8Array, fin: boolean, cb?: (err?: Error | null) => void, rsv1 = false): void {
    this.writeEncoded(encodeFrame(opcode, payload, { fin, mask: !this.options.isServer, rsv1 }), payload.length, cb);
  }

  /** Flush what this event-loop turn wrote. @internal */
  uncork(): void {
    this.corked = false;
    this.flushSmall();
    if (this.socketCorked) {
      this.socketCorked = false;
      this.socket?.uncork();
    }
    // From here on, what is still unwritten was offered to the kernel and refused.
    this.turnBytes = 0;
    // A write the kernel takes whole completes synchronously: it emits no 'drain', so reading
    // paused for this turn's replies must be resumed here, or it would stay paused for good.
    if (this.readPausedForWrites) this.writesDrained();
  }

  // ---- closing ----------------------------------------------------------------------------

  /**
   * Start the closing handshake. `code` must be 1000, 1001-1003, 1007-1014 or 3000-4999;
   * `reason` at most 123 bytes of UTF-8.
   */
  close(code?: number, reason?: string | Buffer): void {
    if (this.whatwg) {
      // The browser API's rules: `[Clamp] unsigned short` (round half to even, clamp), then
      // only 1000 and 3000-4999 are the application's to send.
      if (code !== undefined) code = clampUnsignedShort(code);
      if (code !== undefined && code !== 1000 && !(Number.isInteger(code) && code >= 3000 && code <= 4999)) {
        throw new DOMException(`The close code must be 1000 or in 3000-4999, not ${code}`, 'InvalidAccessError');
      }
    } else if (code !== undefined && !closeCodeIsSendable(code)) {
      throw new TypeError(`Invalid close code: ${code} (use 1000, 1001-1003, 1007-1014 or 3000-4999)`);
    }
    const reasonBytes = reason === undefined ? EMPTY : typeof reason === 'string' ? Buffer.from(reason, 'utf8') : reason;
    if (typeof reason !== 'string' && reason !== undefined && !isValidUtf8(reasonBytes)) {
      throw new TypeError('The close reason must be valid UTF-8');
    }
    if (reasonBytes.length > 123) {
      if (this.whatwg) throw new DOMException('The close reason must not be greater than 123 bytes of UTF-8', 'SyntaxError');
      throw new RangeError('The close reason must not be greater than 123 bytes');
    }
    if (code === undefined && reasonBytes.length > 0) code = CloseCode.NORMAL;
    // Closing already (a Close sent or queued behind messages still being compressed, the
    // peer's FIN, terminate()): a second close() does nothing, as in ws and browsers. It must
    // not send its Close ahead of what the first one queued.
    if (this.readyState === WebSocket.CLOSING) return;
    if (this.queue?.active && this.readyState === WebSocket.OPEN) {
      // CLOSING at once (later sends are discarded); the Close frame follows what was queued.
      this.readyState = WebSocket.CLOSING;
      this.queue.close(code, reasonBytes);
      return;
    }
    if (this.readyState === WebSocket.CLOSED) return;
    if (this.readyState === WebSocket.CONNECTING) {
      this.abortConnecting();
      return;
    }
    // CLOSING without a socket: a connection attempt being abandoned; nothing more to do.
    if (this.socket === undefined) return;
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

  /** Client side: abandon an unfinished opening handshake (error, then close 1006). */
  private abortConnecting(): void {
    if (this.cancelHandshake) this.cancelHandshake();
    else this.readyState = WebSocket.CLOSED;
  }

  private sendClose(code: number | undefined, reason: Uint8Array): void {
    this.readyState = WebSocket.CLOSING;
    if (this.closeSent) return;
    this.closeSent = true;
    this.sendingFragments = false;
    const socket = this.socket;
    if (socket === undefined) return;
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    this.writeFrame(Opcode.CLOSE, encodeClosePayload(code, reason), true);
    if (this.closeReceived && this.options.isServer) {
      // Handshake complete: the server closes TCP first (RFC 6455 section 7.1.1).
      this.endSocket(socket);
    }
    deadlines.add(this, this.options.closeTimeout);
  }

  /** The close handshake timed out: drop TCP. @internal */
  expire(): void {
    this.socket?.destroy();
  }

  // ---- parser events (FrameParserHandler) --------------------------------------------------

  /** @internal */
  onMessage(data: Buffer, isBinary: boolean, compressed: boolean): void {
    if (compressed) {
      this.inflate(data, isBinary);
      return;
    }
    this.deliverMessage(data, isBinary);
  }

  /**
   * Inflate a compressed message. zlib works asynchronously, so parsing and reading pause
   * until the message is delivered: what came behind it (a Close included) is handled after it.
   */
  private inflate(data: Buffer, isBinary: boolean): void {
    this.parser!.pause();
    this.inflating = true;
    this.socket?.pause();
    this.deflate!.decompress(data, (err, out) => this.inflated(err, out, isBinary));
  }

  private inflated(err: DeflateError | null, data: Buffer | undefined, isBinary: boolean): void {
    this.inflating = false;
    try {
      if (err !== null) {
        // WS_ERR_NOT_OPEN: the connection went away meanwhile; nothing to report.
        if (err.code !== 'WS_ERR_NOT_OPEN' && this.readyState !== WebSocket.CLOSED) {
          this.closeCode = err.closeCode;
          this.failWithError(err, err.closeCode);
        }
      } else if (!isBinary && !isValidUtf8(data!)) {
        this.closeCode = CloseCode.INVALID_PAYLOAD;
        this.failWithError(codedError('WS_ERR_INVALID_UTF8', 'invalid UTF-8 in text message'), CloseCode.INVALID_PAYLOAD);
      } else {
        this.deliverMessage(data!, isBinary);
        this.parser?.resume();
      }
    } catch (thrown) {
      this.onListenerError(thrown);
    }
    if (this.inflating) return;
    this.resumeReading();
    const deferred = this.deferredSocketEvents;
    this.deferredSocketEvents = 0;
    if (deferred & 1) this.onSocketEnd();
    if (deferred & 2) this.onSocketClose();
  }

  private deliverMessage(data: Buffer, isBinary: boolean): void {
    // As in ws, messages that arrive after close() was called (before the peer's Close) are
    // still delivered to `message` listeners; WHATWG listeners drop them (event-target.ts).
    if (this.readyState === WebSocket.CLOSED) return;
    this.whatwgDispatch = this.readyState === WebSocket.OPEN;
    this.messageSeen = true;
    const host = this.host;
    if (host !== undefined) {
      host.counters.messagesIn++;
      host.counters.bytesIn += data.length;
    }
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
          // The default 'blob' of a client: WHATWG listeners make the Blob (whatwgMessageData).
          if (this.binaryTypeSet) {
            value = new Blob([data as Uint8Array<ArrayBuffer>]);
            break;
          }
          {
            // Saved and put back: a listener may cause another delivery synchronously.
            const outerOwner = lastBlobOwner;
            const outerSource = lastBlobSource;
            const outerBlob = lastBlob;
            lastBlobOwner = this;
            lastBlobSource = data;
            lastBlob = undefined;
            try {
              this.emit('message', value, isBinary);
            } finally {
              // Not kept beyond this message.
              lastBlobOwner = outerOwner;
              lastBlobSource = outerSource;
              lastBlob = outerBlob;
            }
          }
          return;
      }
    }
    this.emit('message', value, isBinary);
  }

  /** @internal */
  protected override whatwgMessageData(data: RawData): unknown {
    // Decided when the message was delivered, not by binaryType now: a listener that assigns
    // binaryType changes later messages, not what this one's other listeners get.
    if (lastBlobOwner !== this || lastBlobSource !== data) return data;
    // One Blob per message, shared by every WHATWG listener (dispatch is synchronous).
    return (lastBlob ??= new Blob([data as Uint8Array<ArrayBuffer>]));
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
      if (this.options.isServer && this.socket !== undefined) this.endSocket(this.socket);
      return;
    }
    // Echo the peer's code (RFC 6455 section 5.5.1); a close without a code is echoed without one.
    const echo = code === CloseCode.NO_STATUS_RECEIVED ? undefined : code;
    if (this.queue?.active) {
      // Messages sent before the peer's Close arrived (still being compressed, or behind a
      // Blob) go out first; nothing sent from now on does.
      this.readyState = WebSocket.CLOSING;
      this.queue.close(echo, EMPTY);
      return;
    }
    this.sendClose(echo, EMPTY);
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
    this.endSocket(socket);
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

  /** @internal */
  emitError(err: Error): void {
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
    if (this.inflating) {
      this.deferredSocketEvents |= 1;
      return;
    }
    this.readyState = WebSocket.CLOSING;
    this.parser?.stop();
    const socket = this.socket;
    if (this.queue?.active) {
      // Replies still being compressed (or Blobs read) go out before our FIN.
      this.queue.end();
    } else if (socket !== undefined && !socket.writableEnded) {
      // Usually our FIN went out already (after the closing handshake); ending twice only
      // makes Node build an error object.
      this.endSocket(socket);
    }
    // Our FIN may wait behind data the peer never reads: do not wait for it forever.
    deadlines.add(this, this.options.closeTimeout);
  }

  /** TCP is gone: the connection is closed. @internal */
  onSocketClose(): void {
    if (this.readyState === WebSocket.CLOSED) return;
    if (this.inflating) {
      // The message being inflated arrived before the connection ended: deliver it first.
      this.deferredSocketEvents |= 2;
      return;
    }
    this.readyState = WebSocket.CLOSED;
    if (this.topicSet !== undefined) {
      const pubsub = this.host?.pubsub;
      for (const topic of this.topicSet) pubsub?.unsubscribe(this, topic);
      this.topicSet = undefined;
    }
    this.heldFrames = undefined;
    // Frames still collected for this turn cannot be written any more: their callbacks get
    // an error (the socket is not writable), and the list goes.
    this.flushSmall();
    this.smallFrames = undefined;
    deadlines.delete(this);
    this.parser?.stop();
    this.deflate?.release();
    const socket = this.socket;
    if (socket) {
      socket.removeListener('data', socketOnData);
      socket[kConnection] = undefined;
    }
    this.emitSafely('close', this.closeCode, this.closeReason);
  }

  /** True when both Close frames were exchanged. */
  get wasClean(): boolean {
    return this.closeSent && this.closeReceived;
  }

  /** @internal */
  protected get closeFrameReceived(): boolean {
    return this.closeReceived;
  }
}

// The connection's booleans, stored as bits of `flags` behind accessors on the prototype.
FLAG_NAMES.forEach((name, bit) => {
  const mask = 1 << bit;
  Object.defineProperty(WebSocket.prototype, name, {
    get(this: WebSocket): boolean {
      return (this.flags & mask) !== 0;
    },
    set(this: WebSocket, on: boolean) {
      this.flags = on ? this.flags | mask : this.flags & ~mask;
    },
  });
});

for (const [name, value] of [['CONNECTING', 0], ['OPEN', 1], ['CLOSING', 2], ['CLOSED', 3]] as const) {
  Object.defineProperty(WebSocket.prototype, name, { value, enumerable: true, writable: false, configurable: false });
}
