/**
 * ws's export shape. In ws, `require('ws')` and `import WebSocket from 'ws'` give the
 * WebSocket class, and the class carries the rest of the API as statics
 * (`WebSocket.Server`, `WebSocket.WebSocketServer`, `WebSocket.WebSocket`), with ws's type
 * names in a namespace merged with it (`WebSocket.Data`, `WebSocket.ServerOptions`, ...).
 * duet's entry point (index.ts) exports `WebSocket` from here: as its named export, its
 * default export, and what `require('duet')` returns. The statics are added to the one
 * connection class (node/connection.ts), so there is one class whichever way it is reached:
 * `require('duet') === (await import('duet')).default === (await import('duet')).WebSocket`.
 *
 * Every runtime export of 'duet' is also a static here, so that `const { WebSocketServer, Hub }
 * = require('duet')` works as `const { WebSocketServer } = require('ws')` does
 * (test/ws-shape.test.ts checks that the two lists agree).
 */
import type { IncomingMessage } from 'node:http';
import type { AddressInfo as NetAddressInfo } from 'node:net';
import type { ClientOptions as DuetClientOptions } from './node/client.js';
import { WebSocket as Connection, type RawData as DuetRawData } from './node/connection.js';
import type { PerMessageDeflateOptions as DuetPerMessageDeflateOptions } from './node/deflate.js';
import type { AddEventListenerOptions, WsEventMap } from './node/event-target.js';
import { WsCloseEvent, WsErrorEvent, WsEvent, WsMessageEvent } from './node/events.js';
import type { VerifyClientDone } from './node/server-options.js';
import { CloseCode, closeCodeIsValid } from './protocol/close-codes.js';
import {
  ConnectionClosedError,
  DuetError,
  ERROR_CODES,
  HandshakeError,
  LimitExceededError,
  ProtocolError,
} from './protocol/errors.js';
import {
  CHANNEL_ERROR_CODES,
  Channel,
  ClusterBroker,
  Hub,
  MemoryBroker,
  TopicFeeds,
  WebSocketServer as ServerClass,
  serveClusterBroker,
  type ServerOptions as DuetServerOptions,
} from './push/index.js';
import { createWebSocketStream } from './node/stream.js';

/** The statics `WebSocket` carries besides the readyState constants: ws's, then the rest of duet's exports. */
export interface WebSocketStatics {
  /** ws's name for the server class (`new WebSocket.Server({ port })`): WebSocketServer itself. */
  readonly Server: typeof ServerClass;
  readonly WebSocketServer: typeof ServerClass;
  /** The class itself, as in ws (`const { WebSocket } = require('duet')`). */
  readonly WebSocket: typeof Connection;
  /** ws's function: a connection as a Node Duplex stream (node/stream.ts). */
  readonly createWebSocketStream: typeof createWebSocketStream;
  readonly WsEvent: typeof WsEvent;
  readonly WsMessageEvent: typeof WsMessageEvent;
  readonly WsCloseEvent: typeof WsCloseEvent;
  readonly WsErrorEvent: typeof WsErrorEvent;
  readonly Hub: typeof Hub;
  readonly MemoryBroker: typeof MemoryBroker;
  readonly ClusterBroker: typeof ClusterBroker;
  readonly serveClusterBroker: typeof serveClusterBroker;
  readonly TopicFeeds: typeof TopicFeeds;
  readonly Channel: typeof Channel;
  readonly CHANNEL_ERROR_CODES: typeof CHANNEL_ERROR_CODES;
  readonly CloseCode: typeof CloseCode;
  readonly closeCodeIsValid: typeof closeCodeIsValid;
  readonly DuetError: typeof DuetError;
  readonly HandshakeError: typeof HandshakeError;
  readonly ProtocolError: typeof ProtocolError;
  readonly LimitExceededError: typeof LimitExceededError;
  readonly ConnectionClosedError: typeof ConnectionClosedError;
  readonly ERROR_CODES: typeof ERROR_CODES;
}

// The statics are declared on the connection class itself (a namespace merged with it), so that
// `typeof WebSocket` is one type wherever it is written: the class 'duet' exports, the
// constraint of `WebSocketServer<T extends typeof WebSocket>` and `ServerOptions<T>`, and
// `typeof WebSocket` in code written for ws (where the class carries them too).
declare module './node/connection.js' {
  // eslint-disable-next-line @typescript-eslint/no-namespace -- merged with the class: its statics
  namespace WebSocket {
    const Server: WebSocketStatics['Server'];
    const WebSocketServer: WebSocketStatics['WebSocketServer'];
    const WsEvent: WebSocketStatics['WsEvent'];
    const WsMessageEvent: WebSocketStatics['WsMessageEvent'];
    const WsCloseEvent: WebSocketStatics['WsCloseEvent'];
    const WsErrorEvent: WebSocketStatics['WsErrorEvent'];
    const Hub: WebSocketStatics['Hub'];
    const MemoryBroker: WebSocketStatics['MemoryBroker'];
    const ClusterBroker: WebSocketStatics['ClusterBroker'];
    const serveClusterBroker: WebSocketStatics['serveClusterBroker'];
    const TopicFeeds: WebSocketStatics['TopicFeeds'];
    const Channel: WebSocketStatics['Channel'];
    const CHANNEL_ERROR_CODES: WebSocketStatics['CHANNEL_ERROR_CODES'];
    const CloseCode: WebSocketStatics['CloseCode'];
    const closeCodeIsValid: WebSocketStatics['closeCodeIsValid'];
    const DuetError: WebSocketStatics['DuetError'];
    const HandshakeError: WebSocketStatics['HandshakeError'];
    const ProtocolError: WebSocketStatics['ProtocolError'];
    const LimitExceededError: WebSocketStatics['LimitExceededError'];
    const ConnectionClosedError: WebSocketStatics['ConnectionClosedError'];
    const ERROR_CODES: WebSocketStatics['ERROR_CODES'];
    const createWebSocketStream: WebSocketStatics['createWebSocketStream'];
    const WebSocket: WebSocketStatics['WebSocket'];
  }
}

const statics: Omit<WebSocketStatics, 'WebSocket'> = {
  Server: ServerClass,
  WebSocketServer: ServerClass,
  WsEvent,
  WsMessageEvent,
  WsCloseEvent,
  WsErrorEvent,
  Hub,
  MemoryBroker,
  ClusterBroker,
  serveClusterBroker,
  TopicFeeds,
  Channel,
  CHANNEL_ERROR_CODES,
  CloseCode,
  closeCodeIsValid,
  DuetError,
  HandshakeError,
  ProtocolError,
  LimitExceededError,
  ConnectionClosedError,
  ERROR_CODES,
  createWebSocketStream,
};

/**
 * A WebSocket connection (see node/connection.ts), carrying ws's statics: `WebSocket.Server`,
 * `WebSocket.WebSocketServer`, `WebSocket.WebSocket`, the readyState constants, and the rest
 * of duet's exports.
 */
export const WebSocket: typeof Connection = Object.assign(Connection, statics, { WebSocket: Connection });

/** A WebSocket connection, server side or client side (see docs/server.md, docs/client.md). */
export type WebSocket = Connection;

// ws's type names, as @types/ws declares them: on the class (`WebSocket.Data`) and, for those
// @types/ws also exports by name, as named exports of 'duet' (`import type { Data } from
// 'duet'`, re-exported by index.ts). Declared once here under names of their own, since the
// namespace's members would shadow top-level types of the same name.

/** ws's name for what a `message` listener receives, or a string: `string | RawData`. */
type MessageData = string | DuetRawData;
/** `verifyClient`, synchronous form (ws's name): return true to accept. */
type VerifySync<Request extends IncomingMessage = IncomingMessage> = (info: {
  origin: string;
  secure: boolean;
  req: Request;
}) => boolean;
/**
 * `verifyClient`, asynchronous form (ws's name): `callback(true)` accepts,
 * `callback(false, status?, message?, headers?)` refuses.
 */
type VerifyAsync<Request extends IncomingMessage = IncomingMessage> = (
  info: { origin: string; secure: boolean; req: Request },
  callback: VerifyClientDone,
) => void;

export type {
  MessageData as Data,
  VerifySync as VerifyClientCallbackSync,
  VerifyAsync as VerifyClientCallbackAsync,
  DuetPerMessageDeflateOptions as PerMessageDeflateOptions,
  WsEvent as Event,
  WsMessageEvent as MessageEvent,
  WsCloseEvent as CloseEvent,
  WsErrorEvent as ErrorEvent,
  AddEventListenerOptions as EventListenerOptions,
  NetAddressInfo as AddressInfo,
};

/**
 * ws's type names on the class (as @types/ws declares them), mapped to duet's types, so that
 * code written against `ws` types (`WebSocket.Data`, `WebSocket.ServerOptions`) compiles.
 */
// eslint-disable-next-line @typescript-eslint/no-namespace -- ws's shape: its type names under the class's name
export declare namespace WebSocket {
  /** What a `message` listener receives (`Buffer`, `ArrayBuffer`, `Buffer[]`, or `Blob` per binaryType). */
  type RawData = DuetRawData;
  /** ws's older name for message data: a string too. */
  type Data = MessageData;
  /** The client's options (`new WebSocket(url, protocols, options)`). */
  type ClientOptions = DuetClientOptions;
  /** The server's options (`new WebSocketServer(options)`); `T` is the class of its connections (the `WebSocket` option). */
  type ServerOptions<T extends typeof Connection = typeof Connection> = DuetServerOptions<T>;
  /** permessage-deflate's options (docs/compression.md). */
  type PerMessageDeflateOptions = DuetPerMessageDeflateOptions;
  /** `verifyClient`, synchronous form: return true to accept. */
  type VerifyClientCallbackSync<Request extends IncomingMessage = IncomingMessage> = VerifySync<Request>;
  /** `verifyClient`, asynchronous form: `callback(true)` accepts, `callback(false, status?, message?, headers?)` refuses. */
  type VerifyClientCallbackAsync<Request extends IncomingMessage = IncomingMessage> = VerifyAsync<Request>;
  /** The WHATWG events' objects (`onopen`, `addEventListener`). */
  type Event = WsEvent;
  type MessageEvent = WsMessageEvent;
  type CloseEvent = WsCloseEvent;
  type ErrorEvent = WsErrorEvent;
  type WebSocketEventMap = WsEventMap;
  type EventListenerOptions = AddEventListenerOptions;
  /** What `server.address()` returns when listening on TCP. */
  type AddressInfo = NetAddressInfo;
  /** The server class (`WebSocket.Server` is WebSocketServer). */
  type Server<T extends typeof Connection = typeof Connection> = ServerClass<T>;
  type WebSocketServer<T extends typeof Connection = typeof Connection> = ServerClass<T>;
  /** The connection class, `WebSocket.WebSocket` as in ws. */
  type WebSocket = Connection;
}
