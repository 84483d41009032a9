export { WebSocketServer } from './server.js';
export type { ServerOptions } from './server.js';
export { Hub } from './hub.js';
export type { HubOptions, PublishData, ResetListener, RecoveryAnswer } from './hub.js';
export { MemoryBroker, newEpoch, messageBytes } from './broker.js';
export type {
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
} from './broker.js';
export type { HistoryOptions, HistoryEntry, Recovery } from './history.js';
export { TopicFeeds } from './topic-feed.js';
export type { FeedSource, FeedMessage, FeedStats } from './topic-feed.js';
export { ClusterBroker } from './cluster-broker.js';
export type { ClusterBrokerOptions, ClusterBrokerStats } from './cluster-broker.js';
export { serveClusterBroker } from './cluster-primary.js';
export type {
  ClusterBrokerPrimary,
  ClusterBrokerPrimaryOptions,
  ClusterBrokerPrimaryStats,
} from './cluster-primary.js';
export type { Job } from './scheduler.js';
export { Channel, CHANNEL_ERROR_CODES, CHANNEL_TOPIC_PREFIX, MAX_TOPIC_LENGTH } from './channel.js';
export type {
  ChannelOptions,
  ChannelTopicOptions,
  ChannelRateLimit,
  ChannelRecoveryBudget,
  ChannelErrorCode,
  ChannelServerMessage,
  ChannelMessage,
  ChannelWelcome,
  ChannelSender,
  ChannelSubscribed,
  ChannelUnsubscribed,
  ChannelPong,
  ChannelError,
} from './channel.js';
