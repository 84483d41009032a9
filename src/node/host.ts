/**
 * What a server-side connection knows of its server: the counters it adds to, the
 * slow-consumer policy, and the publish/subscribe implementation (push/ provides it; node/
 * only defines its shape, so imports keep pointing downward).
 */
import type { SharedMessage } from './shared-message.js';

/** Numbers an operator needs; see `server.stats()`. */
export interface ServerCounters {
  /** Messages received from every connection. */
  messagesIn: number;
  /** Messages sent to connections (a publish counts once per subscriber written to). */
  messagesOut: number;
  /** Payload bytes received. */
  bytesIn: number;
  /** Payload bytes sent. */
  bytesOut: number;
  /** Messages skipped for slow consumers (policy 'drop'). */
  dropped: number;
  /** Connections closed with 1013 because they stopped reading (policy 'close'). */
  slowConsumersClosed: number;
  /** Connections terminated because they stopped answering pings. */
  heartbeatTerminated: number;
  /** Connections closed by `idleTimeout`. */
  idleClosed: number;
}

export function newCounters(): ServerCounters {
  return {
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    dropped: 0,
    slowConsumersClosed: 0,
    heartbeatTerminated: 0,
    idleClosed: 0,
  };
}

/** What to do with a message for a connection whose backlog is over `maxBufferedAmount`. */
export type SlowConsumerPolicy = 'drop' | 'close';

/** Options of `publish` / `broadcast`. */
export interface PublishOptions {
  /** Send as binary (default: true for non-strings). */
  binary?: boolean;
  /**
   * `false`: never compress this message. Otherwise it is compressed (once, for every
   * subscriber with permessage-deflate) when it is at least the server's `threshold` bytes.
   */
  compress?: boolean;
}

/**
 * What topic routing needs of a connection: take a message framed once for every subscriber.
 * push/'s Hub knows connections only by this interface (as uWebSockets' TopicTree knows
 * nothing of sockets), so the same Hub can serve any kind of subscriber.
 */
export interface Subscriber {
  /**
   * Write `message` (encoded once, shared by every subscriber) to this subscriber. Returns
   * false when it was not written (closing, or skipped by the slow-consumer policy).
   */
  sendEncoded(message: SharedMessage): boolean;
}

/**
 * Topic routing as connections see it (implemented by push/'s Hub, which owns all topic
 * state: which subscriber is in which topic).
 */
export interface PubSub {
  subscribe(subscriber: Subscriber, topic: string): boolean;
  unsubscribe(subscriber: Subscriber, topic: string): boolean;
  /** Leave every topic (the connection closed). */
  unsubscribeAll(subscriber: Subscriber): void;
  isSubscribed(subscriber: Subscriber, topic: string): boolean;
  /** The topics `subscriber` is in, in the order it joined them. */
  topicsOf(subscriber: Subscriber): string[];
  /** Deliver to every subscriber of `topic` except `exclude`; returns how many were sent to. */
  publish(
    topic: string,
    data: string | Buffer | ArrayBuffer | ArrayBufferView,
    options?: PublishOptions,
    exclude?: Subscriber,
  ): number;
}

export interface ConnectionHost {
  readonly counters: ServerCounters;
  readonly maxBufferedAmount: number;
  readonly slowConsumer: SlowConsumerPolicy;
  readonly pubsub: PubSub | undefined;
}
