export { WebSocket } from './connection.js';
export type { BinaryType, CodedError, RawData, SendData, SendOptions } from './connection.js';
export { WebSocketServer } from './server.js';
export type { ClientOptions } from './client.js';
export type { AddEventListenerOptions } from './event-target.js';
export type { ServerOptions, VerifyClientInfo } from './server.js';
export { WsCloseEvent, WsErrorEvent, WsEvent, WsMessageEvent } from './events.js';
