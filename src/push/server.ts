/**
 * The WebSocketServer applications import: node/'s server (handshake, connections, heartbeat,
 * slow consumers, shutdown) with the push layer installed: topics and publish through a Hub,
 * per-topic history, and timed jobs that stop when the server closes.
 */
import type { WebSocket } from '../node/connection.js';
import type { PublishOptions } from '../node/host.js';
import { WebSocketServer as NodeWebSocketServer } from '../node/server.js';
import type { ServerOptions as NodeServerOptions } from '../node/server-options.js';
import { createError } from '../protocol/errors.js';
import type { Broker, TopicPosition } from './broker.js';
import type { HistoryOptions, Recovery } from './history.js';
import { Hub, type PublishData } from './hub.js';
import { Scheduler, type Job } from './scheduler.js';

/**
 * The server's options (docs/server.md) and the push layer's (docs/push.md). `T` is the class
 * of its connections (the `WebSocket` option).
 */
export interface ServerOptions<T extends typeof WebSocket = typeof WebSocket> extends NodeServerOptions<T> {
  /** Keep recent messages of every topic for recovery (`{ size, ttl }`); off by default. */
  history?: HistoryOptions | false;
  /**
   * Where topics' sequence numbers, epochs and history live, and how messages reach other
   * processes: in memory, this process only, by default; `RedisBroker` from duet/redis for
   * several processes or machines (docs/scaling.md).
   */
  broker?: Broker;
  /** Most topics kept; beyond it the oldest topic without subscribers is forgotten (default 10,000). */
  maxTopics?: number;
}

/**
 * A WebSocket server with server push built in: `ws.subscribe(topic)`, `publish` (each message
 * framed once for every subscriber), per-topic history and recovery, timed jobs (`every`) that
 * stop when the server closes. Everything else (handshake, options, events, shutdown) is the
 * node/ server's; see docs/server.md and docs/push.md. `T` is the class of its connections
 * (the `WebSocket` option: duet's WebSocket or a subclass).
 */
export class WebSocketServer<T extends typeof WebSocket = typeof WebSocket> extends NodeWebSocketServer<T> {
  /** Topics, publish and history. */
  readonly hub: Hub;
  private readonly scheduler: Scheduler;
  private closing = false;

  /** Exactly one of `port`, `server` or `noServer`; `callback` runs once a created server listens. */
  constructor(options: ServerOptions<T> = {}, callback?: () => void) {
    super(options, callback);
    const report = (err: unknown): void => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
      else process.emitWarning(err instanceof Error ? err : String(err));
    };
    this.hub = new Hub({
      ...(options.history !== undefined ? { history: options.history } : {}),
      ...(options.broker ? { broker: options.broker } : {}),
      ...(options.maxTopics !== undefined ? { maxTopics: options.maxTopics } : {}),
      onError: report,
    });
    this.pubsub = this.hub;
    this.scheduler = new Scheduler(report);
    this.on('shutdown', () => {
      this.closing = true;
      this.scheduler.stopAll();
    });
  }

  /**
   * Send `data` to every subscriber of `topic`. The frame is encoded once and the same bytes
   * go to every subscriber. Returns the number of subscribers it was written to (slow
   * consumers under policy 'drop' are skipped).
   */
  publish(topic: string, data: PublishData, options?: PublishOptions): number {
    return this.hub.publish(topic, data, options);
  }

  /**
   * `publish`, waiting for the broker: resolves with the message's `{ epoch, seq }` once it is
   * numbered and stored (at once with the in-memory broker; after Redis answered with
   * duet/redis). Rejects with a DuetError (`WS_ERR_BROKER_UNAVAILABLE`, `WS_ERR_BROKER_BACKLOG`)
   * when the message was not published. See docs/scaling.md.
   */
  publishAsync(topic: string, data: PublishData, options?: PublishOptions): Promise<TopicPosition> {
    return this.hub.publishAsync(topic, data, options);
  }

  /** Subscribers of `topic`. */
  subscriberCount(topic: string): number {
    return this.hub.subscriberCount(topic);
  }

  /**
   * What a client that last saw (epoch, seq) on `topic` missed (see docs/push.md). With an
   * asynchronous broker (Redis) this throws `WS_ERR_BROKER_ASYNC`: use `recoverAsync`.
   */
  recover(topic: string, since: number, epoch: string): Recovery {
    return this.hub.recover(topic, since, epoch);
  }

  /** `recover` with any broker (an asynchronous one, such as Redis, reads its history). */
  recoverAsync(topic: string, since: number, epoch: string): Promise<Recovery> {
    return this.hub.recoverAsync(topic, since, epoch);
  }

  /**
   * Run `fn` every `ms` milliseconds, on a fixed grid (no drift), until the returned job is
   * cancelled or the server closes. A throw is reported on `error` (or as a warning).
   */
  every(ms: number, fn: (run: number) => void): Job {
    if (this.closing) {
      throw createError('WS_ERR_SERVER_NOT_RUNNING', 'The server is closed: no new jobs');
    }
    return this.scheduler.every(ms, fn);
  }

  /** @internal */
  protected override pubsubStats(): { topics: number; subscriptions: number } {
    return this.hub.stats();
  }
}

export type { WebSocket };
