/**
 * WebSocketServer options, and every default stated once, with the reason for it.
 */
import type * as http from 'node:http';
import type { HeaderFields } from '../protocol/header-fields.js';
import type { WebSocket } from './connection.js';
import type { PerMessageDeflateOptions } from './deflate.js';
import type { SlowConsumerPolicy } from './host.js';
import type { HeartbeatOptions } from './sweep.js';

/** What `verifyClient` receives. */
export interface VerifyClientInfo {
  /** The Origin header ('' when absent). */
  origin: string;
  /** True when the connection is over TLS. */
  secure: boolean;
  /** The upgrade request. */
  req: http.IncomingMessage;
}

/** Synchronous form: return true to accept. */
export type VerifyClientSync = (info: VerifyClientInfo) => boolean;
/**
 * How an asynchronous `verifyClient` answers: `done(true)` accepts; `done(false, status?,
 * message?, headers?)` refuses with `status` (401 by default), `message` as the text body and
 * `headers` added to the response. Header values may be strings, finite numbers
 * (`{ 'Retry-After': 120 }` sends `Retry-After: 120`) or arrays of them (one header line per
 * element), as node:http's `setHeader` takes them. `done` never throws: a name that is not an
 * HTTP token, a value with CR, LF, NUL, another control character or non-ASCII text, a value of
 * another type (undefined, null, an object) or an invalid status refuses the handshake with a
 * plain 500 instead (nothing of the asked response is sent) and the TypeError (`code`
 * `WS_ERR_INVALID_HEADER`) is reported on `wsClientError`, else `error`, else as a process
 * warning (see docs/server.md).
 */
export type VerifyClientDone = (ok: boolean, status?: number, message?: string, headers?: HeaderFields) => void;

/** Asynchronous form: call `done(true)` to accept, `done(false, status?, message?, headers?)` to refuse. */
export type VerifyClientAsync = (info: VerifyClientInfo, done: VerifyClientDone) => void;

/**
 * WebSocketServer's options; every default is in SERVER_DEFAULTS below, with why. `T` is the
 * class of the server's connections (the `WebSocket` option).
 */
export interface ServerOptions<T extends typeof WebSocket = typeof WebSocket> {
  /** Create an HTTP server listening on this port (0 picks a free port). */
  port?: number;
  /** Host to bind with `port` (default: all interfaces, like net.Server). */
  host?: string;
  /** Listen backlog with `port`. */
  backlog?: number;
  /** Attach to an existing http.Server or https.Server (for `wss://`). */
  server?: http.Server;
  /** Create no server: call `handleUpgrade` yourself from any HTTP server's `upgrade` event. */
  noServer?: boolean;
  /** Only accept upgrades whose pathname is exactly this (a request no duet server on the HTTP server takes gets 404). */
  path?: string;
  /** Largest incoming message in bytes; larger ones close the connection with 1009. 0 = no limit. */
  maxPayload?: number;
  /**
   * Most frames one incoming message may arrive in: its first frame and every continuation
   * frame, empty ones too. The frame over it closes the connection with 1009. 0 = no limit.
   */
  maxFragments?: number;
  /** Pick a subprotocol from those the client offered, or return false for none (default: the first offered, as in ws 8). */
  handleProtocols?: (protocols: Set<string>, req: http.IncomingMessage) => string | false;
  /** Accept or refuse each handshake (sync: return a boolean; async: call `done`). Refusal: 401 by default. */
  verifyClient?: VerifyClientSync | VerifyClientAsync;
  /** Keep open connections in `server.clients`. */
  clientTracking?: boolean;
  /**
   * Origins browsers may connect from (e.g. `['https://app.example.com']`), or a function
   * deciding. Others get 403 (protection against cross-site WebSocket hijacking). Requests
   * without an Origin header (non-browser clients) pass a list; a function sees `undefined`.
   */
  allowOrigins?: readonly string[] | ((origin: string | undefined, req: http.IncomingMessage) => boolean);
  /** Most simultaneous connections; the next handshakes get 503. */
  maxConnections?: number;
  /** Milliseconds a client has to send its complete request headers (own server only). */
  handshakeTimeout?: number;
  /** Milliseconds to wait for the peer's part of the close handshake before dropping TCP. */
  closeTimeout?: number;
  /** Answer pings with pongs automatically. */
  autoPong?: boolean;
  /** Largest request head in bytes (own server only; others get 431). Node's default is 16 KiB. */
  maxHeaderSize?: number;
  /**
   * Ping connections that have been silent for `interval` ms and terminate those that stay
   * silent `timeout` ms more (no pong, no frame): dead peers are found without per-connection
   * timers. `false` turns it off.
   */
  heartbeat?: HeartbeatOptions | false;
  /** Close (1001) a connection that sent no message for this many ms. 0 = never. */
  idleTimeout?: number;
  /**
   * Fail with 1008 (`WS_ERR_MESSAGE_ASSEMBLY_TIMEOUT`) a connection whose fragmented message is
   * still incomplete this many ms after its first fragment arrived (checked by the heartbeat
   * sweep, so acted on up to half the shortest sweep period late). 0 = never.
   */
  assemblyTimeout?: number;
  /** Bytes that may wait to be written to one connection before `slowConsumer` applies. */
  maxBufferedAmount?: number;
  /** For a connection over `maxBufferedAmount`: skip its messages ('drop') or close it with 1013 ('close'). */
  slowConsumer?: SlowConsumerPolicy;
  /** How long close() waits for closing handshakes before terminating the rest (ms). */
  shutdownTimeout?: number;
  /**
   * permessage-deflate (RFC 7692): `true` for the defaults, an object to tune it (see
   * docs/compression.md), `false` (the default, as in ws) to decline every offer.
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /**
   * The class connections are made from (ws's option): duet's `WebSocket` (the default) or a
   * subclass of it, constructed with no arguments, as duet makes a server-side connection.
   * `connection` listeners and `handleUpgrade` callbacks get instances of it. Anything else
   * makes the constructor throw a TypeError.
   */
  WebSocket?: T;
}

export const SERVER_DEFAULTS = {
  // Same as ws: big enough for any reasonable message, small enough that one peer cannot
  // make the server buffer gigabytes.
  maxPayload: 100 * 1024 * 1024,
  // 2^17 frames. Browsers and most libraries send each message as one frame; senders that
  // stream fragments still fit with room to spare: a 4 MiB message in 64-byte fragments is
  // 65,536 frames, a 100 MiB one (maxPayload) in 1 KiB fragments 102,400. Without a cap every
  // frame costs CPU (~100 ns) while maxPayload bounds only bytes: 60 million 1-byte fragments
  // took 6 s of CPU, and empty continuation frames, which add no bytes, went on for ever.
  maxFragments: 131_072,
  // ws users expect wss.clients to exist.
  clientTracking: true,
  // 10 s is generous for a handshake on any real network; slow-loris clients are dropped.
  handshakeTimeout: 10_000,
  // Same as ws: 30 s for the peer to answer our Close before TCP is dropped.
  closeTimeout: 30_000,
  // RFC 6455 5.5.2: a Ping must be answered by a Pong.
  autoPong: true,
  // No limit unless asked for; the operating system's file descriptor limit still applies.
  maxConnections: Infinity,
  // Dead peers (a laptop that slept, a cable pulled) send no FIN; 30 s of silence earns a
  // ping, 30 s more without any answer ends the connection. Browsers answer pings themselves.
  heartbeat: { interval: 30_000, timeout: 30_000 } as HeartbeatOptions | false,
  idleTimeout: 0,
  // 2 minutes: a fragmented message from any real sender completes in seconds (a 4 MiB one in
  // 64-byte fragments over a slow mobile link included); a peer that starts one and drips
  // fragments (or nothing) for minutes holds its buffer and a share of CPU for nothing.
  assemblyTimeout: 120_000,
  // 16 MiB: far above what a reading client ever has pending, far below what hurts a server.
  maxBufferedAmount: 16 * 1024 * 1024,
  // A reader that stopped reading is told to come back later (1013) rather than silently
  // missing messages; 'drop' suits tickers where only the latest value matters.
  slowConsumer: 'close' as SlowConsumerPolicy,
  // Long enough for a close handshake over a slow link, short enough for a deploy.
  shutdownTimeout: 5_000,
  // Off, as in ws: compression costs CPU and memory per connection; turn it on knowingly.
  perMessageDeflate: false as boolean | PerMessageDeflateOptions,
  // WebSocket: duet's own class, as in ws. Filled in by the server's constructor, not here:
  // this file is loaded (through the client's options) by the WebSocket class itself.
};

/** Options with every default filled in. */
export type ResolvedServerOptions<T extends typeof WebSocket = typeof WebSocket> = ServerOptions<T> & {
  [K in keyof typeof SERVER_DEFAULTS]: (typeof SERVER_DEFAULTS)[K];
} & { WebSocket: T };
