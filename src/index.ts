/**
 * duet: a WebSocket stack for Node.js.
 *
 *   import { WebSocketServer } from 'duet';
 *   const wss = new WebSocketServer({ port: 8080 });
 *   wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
 *
 * As in ws, the WebSocket class is also the default export and what `require('duet')`
 * returns, and it carries the rest of the API as statics (`WebSocket.Server`, ...; see
 * ws-shape.ts). A runtime export added here is added to the statics there too.
 */
import { WebSocket } from './ws-shape.js';
export { WebSocket };
export default WebSocket;
// What require('duet') returns on Node 20.19+ and 22.12+ (require of an ES module): the class,
// as require('ws') does.
export { WebSocket as 'module.exports' };
// ws's type names that @types/ws exports by name (they are on the class too: WebSocket.Data).
export type {
  Data,
  VerifyClientCallbackSync,
  VerifyClientCallbackAsync,
  PerMessageDeflateOptions,
  Event,
  MessageEvent,
  CloseEvent,
  ErrorEvent,
  EventListenerOptions,
  AddressInfo,
} from './ws-shape.js';
export type { BinaryType, CodedError, RawData, SendData, SendOptions, WebSocketEvents } from './node/connection.js';
export type { ClientOptions } from './node/client.js';
// A connection as a Node Duplex stream, as ws's function of that name.
export { createWebSocketStream } from './node/stream.js';
export type { AddEventListenerOptions, WsEventListener, WsEventMap } from './node/event-target.js';
export type {
  VerifyClientInfo,
  VerifyClientAsync,
  VerifyClientDone,
  HandshakeRefusal,
  ServerStats,
  ServerEvents,
} from './node/server.js';
export type { HeaderFields, HeaderValue } from './protocol/header-fields.js';
export type { HeartbeatOptions } from './node/sweep.js';
export type { PublishOptions, SlowConsumerPolicy } from './node/host.js';
export { WsCloseEvent, WsErrorEvent, WsEvent, WsMessageEvent } from './node/events.js';
// The server applications use: node/'s server with the push layer (topics, history, jobs).
export { WebSocketServer, Hub, MemoryBroker } from './push/index.js';
// Several processes of one machine (node:cluster) sharing topics through the primary.
export { ClusterBroker, serveClusterBroker, TopicFeeds } from './push/index.js';
export type { FeedSource, FeedMessage, FeedStats } from './push/index.js';
export type {
  ClusterBrokerOptions,
  ClusterBrokerStats,
  ClusterBrokerPrimary,
  ClusterBrokerPrimaryOptions,
  ClusterBrokerPrimaryStats,
} from './push/index.js';
export type {
  ServerOptions,
  HubOptions,
  PublishData,
  Broker,
  BrokerHost,
  BrokerMessage,
  OutgoingMessage,
  PublishDedup,
  PublishResult,
  TopicPosition,
  SynchronousBroker,
  AsynchronousBroker,
  MemoryBrokerOptions,
  ResetListener,
  RecoveryAnswer,
  HistoryOptions,
  HistoryEntry,
  Recovery,
  Job,
} from './push/index.js';
export { Channel, CHANNEL_ERROR_CODES } from './push/index.js';
export type {
  ChannelOptions,
  ChannelTopicOptions,
  ChannelRateLimit,
  ChannelRecoveryBudget,
  ChannelErrorCode,
  ChannelServerMessage,
  ChannelSender,
} from './push/index.js';
export { CloseCode, closeCodeIsValid } from './protocol/index.js';
// Errors (docs/errors.md): catch with instanceof, branch on `code`.
export {
  DuetError,
  HandshakeError,
  ProtocolError,
  LimitExceededError,
  ConnectionClosedError,
  ERROR_CODES,
} from './protocol/index.js';
export type {
  DuetErrorCode,
  ErrorInfo,
  HandshakeErrorCode,
  ProtocolErrorCode,
  LimitExceededErrorCode,
  ConnectionClosedErrorCode,
} from './protocol/index.js';
