/**
 * The shapes the browser client needs from its surroundings, declared here instead of taken
 * from the DOM library: the same source then type-checks for browsers (DOM types) and for
 * Node and tests (no DOM types), and a browser WebSocket, duet's WebSocket and a test fake
 * all fit without casts.
 */

/** What `send()` accepts: the WHATWG WebSocket's data types. */
export type SendData = string | ArrayBuffer | ArrayBufferView | Blob;

/**
 * An event handler slot of a socket. The parameter is `never` so that handlers of every
 * WebSocket implementation (each with its own event classes) are assignable; the client
 * reads events through {@link SocketEventLike}.
 */
export type SocketHandler = ((event: never) => void) | null;

/** The fields the client reads from the events a socket dispatches. */
export interface SocketEventLike {
  /** `message`: the payload. */
  data?: unknown;
  /** `close`: the close code. */
  code?: number;
  /** `close`: the close reason. */
  reason?: string;
  /** `close`: whether the closing handshake completed. */
  wasClean?: boolean;
  /** `error` (duet's WebSocket and Node): the underlying error. */
  error?: unknown;
}

/** The part of the WHATWG WebSocket the client uses. */
export interface WebSocketLike {
  /** 0 CONNECTING, 1 OPEN, 2 CLOSING, 3 CLOSED. */
  readonly readyState: number;
  /** Bytes sent but not yet handed to the network (the client holds back while they stay). */
  readonly bufferedAmount?: number;
  binaryType?: string;
  send(data: SendData): void;
  close(code?: number, reason?: string): void;
  onopen: SocketHandler;
  onmessage: SocketHandler;
  onerror: SocketHandler;
  onclose: SocketHandler;
}

/** A WebSocket constructor: `globalThis.WebSocket`, duet's `WebSocket`, or a fake. */
export type WebSocketConstructorLike = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Timers and a monotonic clock; injectable so tests can drive time by hand. */
export interface DuetClock {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Milliseconds from any fixed origin (used for latency). */
  now(): number;
}

/** A listener target such as `window` or `document`. */
export interface EventSourceLike {
  addEventListener?(type: string, listener: () => void): void;
  removeEventListener?(type: string, listener: () => void): void;
}

/**
 * The browser globals the client watches: `navigator.onLine`, the `online`/`offline` events
 * of `window` and `visibilitychange` of `document`. Everything is optional, so Node (none of
 * them) and tests (a fake) work too.
 */
export interface DuetEnvironment extends EventSourceLike {
  navigator?: { onLine?: boolean };
  document?: EventSourceLike & { visibilityState?: string };
}

/** Why a connection ended. Mirrors the WebSocket `close` event. */
export interface DuetCloseInfo {
  code: number;
  reason: string;
  wasClean: boolean;
}

/** Where a client is in a topic: the epoch and the last seq it saw. */
export interface TopicPosition {
  epoch: string;
  seq: number;
}

/** The connection state of a {@link DuetClient}. */
export type DuetStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** What to do with a message sent while the queue is full. */
export type QueuePolicy = 'drop-oldest' | 'drop-newest' | 'error';
