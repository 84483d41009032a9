/**
 * WebSocket: one connection class for the server side and the client side. It joins a socket
 * to the sans-I/O FrameParser, writes frames (corked and flushed once per event-loop turn),
 * runs the close handshake and reports events both `ws`-style (`on('message', (data,
 * isBinary))`) and WHATWG-style (`onmessage`, `addEventListener`).
 *
 * This file is the public face: construction, binaryType, topics, the opening of a socket and
 * the typed events. The rest of the class is split by concern (see connection-core.ts):
 * write-path.ts, receive-path.ts, closing.ts.
 */
import type * as http from 'node:http';
import type { Duplex } from 'node:stream';
import { CloseCode } from '../protocol/close-codes.js';
import { CLOSED, fail, initialState, opened, tcpClosed } from '../protocol/connection-state.js';
import { FrameParser } from '../protocol/parser.js';
import { openClient } from './client.js';
import type { ClientOptions } from './client-options.js';
import { clientArguments, parseWebSocketUrl } from './client-url.js';
import { Closing } from './closing.js';
import {
  codedError,
  EMPTY,
  type BinaryType,
  type CodedError,
  type ConnectionOptions,
  type RawData,
} from './connection-types.js';
import type { MessageDeflate } from './deflate.js';
import type { PubSub, PublishOptions } from './host.js';
import {
  kConnection,
  replayHead,
  socketOnClose,
  socketOnData,
  socketOnDrain,
  socketOnEnd,
  socketOnError,
  type OwnedSocket,
} from './socket-listeners.js';

export type { BinaryType, CodedError, ConnectionOptions, RawData, SendData, SendOptions } from './connection-types.js';

type Listener<A extends unknown[]> = (this: WebSocket, ...args: A) => void;
/** The ws-style events of a connection and the arguments their listeners get. */
export interface WebSocketEvents {
  /** The connection is open (on the server side: before the server's `connection` event). */
  open: [];
  /** A message: `data` per `binaryType` (text: a Buffer of valid UTF-8 unless `binaryType` says otherwise). */
  message: [data: RawData, isBinary: boolean];
  /**
   * The connection is closed: the peer's code (1005 if its Close had none), 1006 without a
   * Close frame, or the code duet failed the connection with. Always the last event.
   */
  close: [code: number, reason: Buffer];
  /** What went wrong (`err.code`, see docs/errors.md), before `close`; only emitted when listened to. */
  error: [err: CodedError];
  /** A Ping arrived (answered automatically unless `autoPong` is off). */
  ping: [data: Buffer];
  /** A Pong arrived. */
  pong: [data: Buffer];
  /** Server side, slow-consumer policy 'drop': a message for this connection was skipped; `backlog` bytes wait. */
  drop: [backlog: number];
  /**
   * Client side: the server's 101 response arrived (read its headers, e.g. `set-cookie`),
   * before it is checked; `open` follows if it is right. Closing here abandons the attempt.
   */
  upgrade: [response: http.IncomingMessage];
  /**
   * Client side: the server answered with another status than 101 (and no redirect was
   * followed). With a listener, the response is yours to read (read it to the end or call
   * `response.resume()`) and `request.destroy()` aborts it; the connection fails (`error`
   * WS_ERR_UNEXPECTED_RESPONSE, `close` 1006) once the response is over, or at once when you
   * call `close()`. Without one, it fails with the status and the start of the body.
   */
  'unexpected-response': [request: http.ClientRequest, response: http.IncomingMessage];
  /**
   * Client side, `followRedirects`: a redirect is being followed to `url` (already `ws.url`);
   * `request` is the next request, its headers still open to change (`request.removeHeader`).
   * While a listener is there, no header is left behind on its own, across hosts too.
   */
  redirect: [url: string, request: http.ClientRequest];
}

// Typed overloads for the ws-style events (merged into the class below). Any other event
// name takes a listener of any arguments, as EventEmitter does, but without `any`: a listener
// says what it expects (`(a: string) => ...`), an unannotated parameter is `unknown`.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- on purpose: the event overloads
export interface WebSocket {
  /** Listen to a ws-style event (`message`, `close`, ...; see WebSocketEvents), or any other one emitted. */
  on<K extends keyof WebSocketEvents>(event: K, listener: Listener<WebSocketEvents[K]>): this;
  on<A extends unknown[]>(event: string | symbol, listener: Listener<A>): this;
  once<K extends keyof WebSocketEvents>(event: K, listener: Listener<WebSocketEvents[K]>): this;
  once<A extends unknown[]>(event: string | symbol, listener: Listener<A>): this;
  off<K extends keyof WebSocketEvents>(event: K, listener: Listener<WebSocketEvents[K]>): this;
  off<A extends unknown[]>(event: string | symbol, listener: Listener<A>): this;
  addListener<K extends keyof WebSocketEvents>(event: K, listener: Listener<WebSocketEvents[K]>): this;
  addListener<A extends unknown[]>(event: string | symbol, listener: Listener<A>): this;
  removeListener<K extends keyof WebSocketEvents>(event: K, listener: Listener<WebSocketEvents[K]>): this;
  removeListener<A extends unknown[]>(event: string | symbol, listener: Listener<A>): this;
}

/**
 * A WebSocket connection, server side (made by WebSocketServer) or client side (`new
 * WebSocket(url)`). Events in both styles: `ws.on('message', (data, isBinary) => ...)` as in
 * `ws`, and `ws.onmessage` / `addEventListener` as in browsers. See docs/server.md and
 * docs/client.md.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- on purpose: the event overloads
export class WebSocket extends Closing {
  /** readyState: the opening handshake is in progress (client side). */
  static readonly CONNECTING = 0;
  /** readyState: messages can be sent and received. */
  static readonly OPEN = 1;
  /** readyState: the closing handshake has started. */
  static readonly CLOSING = 2;
  /** readyState: the connection is closed (or could not be opened). */
  static readonly CLOSED = 3;
  // The instance constants live on the prototype (below), as WebIDL puts them: not four
  // more fields on every connection.
  declare readonly CONNECTING: 0;
  declare readonly OPEN: 1;
  declare readonly CLOSING: 2;
  declare readonly CLOSED: 3;

  /**
   * `new WebSocket(url, protocols?, options?)` opens a client connection, as in browsers
   * (`options` holds the Node extras: headers, TLS, timeouts, redirects); `new WebSocket(url,
   * options)` is ws's form of the same. Throws a `SyntaxError` DOMException for a bad URL or
   * bad/duplicate protocols, a TypeError for options that are not an object or a header that
   * cannot be sent. `url` may also be `ws+unix:/path/to/socket:/request/path` (a Unix domain
   * socket). Server-side connections are made by WebSocketServer (`new WebSocket()`, no URL).
   */
  constructor(url: string | URL, options?: ClientOptions);
  constructor(url?: string | URL, protocols?: string | readonly string[], options?: ClientOptions);
  constructor(
    url?: string | URL,
    protocolsOrOptions?: string | readonly string[] | ClientOptions,
    options?: ClientOptions,
  ) {
    super();
    if (url === undefined) return;
    const parsed = parseWebSocketUrl(url);
    const args = clientArguments(protocolsOrOptions, options);
    this.whatwg = true;
    this.binary = 'blob';
    this.url = parsed.url.href;
    this.origin = parsed.url.origin;
    this.cancelHandshake = openClient(this, parsed, args.protocols, args.options);
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

  /** @internal */
  protected get eventOrigin(): string {
    return this.origin;
  }

  // ---- opening -----------------------------------------------------------------------------

  /** Client side: the server accepted the handshake. @internal */
  attachClientSocket(
    socket: Duplex,
    head: Buffer,
    options: ConnectionOptions,
    deflate: MessageDeflate | undefined,
  ): void {
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
    if (this.readyState === CLOSED) return;
    this.wire = fail(this.wire).state;
    setImmediate(() => {
      this.wire = tcpClosed(this.wire);
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
    this.parser = new FrameParser(this, {
      expectMasked: options.isServer,
      maxPayload: options.maxPayload,
      maxFragments: options.maxFragments,
      allowCompressed: deflate !== undefined,
    });
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
    this.wire = opened(initialState(options.isServer));
  }

  /** Emit `open`; the server does this before `connection`, the client after the handshake. @internal */
  emitOpen(): void {
    this.emitSafely('open');
  }

  // ---- topics (server side; the state is push/'s, see host.ts) -----------------------------

  /** Subscribe to `topic` (see server.publish). Returns false if already subscribed or not open. */
  subscribe(topic: string): boolean {
    const pubsub = this.requirePubSub();
    if (this.readyState !== WebSocket.OPEN) return false;
    return pubsub.subscribe(this, topic);
  }

  /** Leave `topic`. Returns false if not subscribed. */
  unsubscribe(topic: string): boolean {
    return this.requirePubSub().unsubscribe(this, topic);
  }

  /** Whether this connection is subscribed to `topic`. */
  isSubscribed(topic: string): boolean {
    return this.host?.pubsub?.isSubscribed(this, topic) ?? false;
  }

  /** The topics this connection is subscribed to. */
  get topics(): string[] {
    return this.host?.pubsub?.topicsOf(this) ?? [];
  }

  /** Publish to every subscriber of `topic` except this connection. Returns how many received it. */
  publish(topic: string, data: string | Buffer | ArrayBuffer | ArrayBufferView, options?: PublishOptions): number {
    return this.requirePubSub().publish(topic, data, options, this);
  }

  private requirePubSub(): PubSub {
    const pubsub = this.host?.pubsub;
    if (pubsub === undefined)
      throw codedError('WS_ERR_NO_PUBSUB', 'Topics are available on connections accepted by a duet WebSocketServer');
    return pubsub;
  }
}

for (const [name, value] of [
  ['CONNECTING', 0],
  ['OPEN', 1],
  ['CLOSING', 2],
  ['CLOSED', 3],
] as const) {
  Object.defineProperty(WebSocket.prototype, name, { value, enumerable: true, writable: false, configurable: false });
}
