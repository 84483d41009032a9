export { WebSocketServer } from './server.js';
export type { ServerOptions } from './server.js';
export { Hub } from './hub.js';
export type { HubOptions, PublishData } from './hub.js';
export { MemoryBroker } from './broker.js';
export type { Broker, BrokerMessage } from './broker.js';
export type { HistoryOptions, HistoryEntry, Recovery } from './history.js';
export type { Job } from './scheduler.js';
