/**
 * Hub: this process's side of topics. It knows which local subscriber follows which topic,
 * hands publishes to the broker (which numbers them and keeps their history: see broker.ts),
 * and frames each message the broker delivers once, writing the same bytes to every local
 * subscriber (each socket flushes once per event-loop turn, see node/write-batch.ts).
 *
 * With the default in-memory broker everything is synchronous: a publish is delivered before
 * `publish` returns, and a subscribe with recovery is answered in the same call. With an
 * asynchronous broker (Redis, the cluster's primary) a subscriber that asks to recover waits
 * in `pending` while its recovery is read; what is delivered meanwhile is kept for it and
 * sent after the replay, so it sees every message once, in order, with no gap.
 *
 * Why one file of ~510 lines: subscriptions, delivery and the recovery hand-over (pending,
 * catch-up, floors) share the one per-topic state; the hand-over is what makes a recovery meet
 * live delivery with no gap and no duplicate, and is easiest to check beside deliver().
 */
import type { PubSub, PublishOptions, Subscriber } from '../node/host.js';
import { SharedMessage } from '../node/shared-message.js';
import { createError } from '../protocol/errors.js';
import {
  MemoryBroker,
  type Broker,
  type BrokerHost,
  type BrokerMessage,
  type OutgoingMessage,
  type PublishResult,
  type TopicPosition,
} from './broker.js';
import type { HistoryOptions, Recovery } from './history.js';

/** Data a publish accepts. */
export type PublishData = string | Buffer | ArrayBuffer | ArrayBufferView;

/** Something delivered while a subscriber waited for its recovery: a message, or a reset. */
type PendingItem = { message: BrokerMessage; shared: SharedMessage } | { reset: TopicPosition };

/** Most items kept for one subscriber while its recovery is read; beyond, it is reset instead. */
const MAX_PENDING_ITEMS = 10_000;

interface LocalTopic {
  subscribers: Set<Subscriber>;
  /** Subscribers waiting for their recovery (asynchronous brokers): what arrived meanwhile. */
  pending: Map<Subscriber, PendingItem[] | 'overflow'> | undefined;
  /** Resolves when the broker delivers this topic here (asynchronous brokers). */
  ready: Promise<void> | undefined;
  /**
   * Subscribers whose recovery read further than this process's feed had delivered: messages
   * up to that position reach the feed later and are not sent to them again.
   */
  floors: Map<Subscriber, TopicPosition> | undefined;
}

function toPayload(data: PublishData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/** Options of a Hub (a WebSocketServer passes its own `history`, `broker` and `maxTopics`). */
export interface HubOptions {
  /** History for every topic (off by default); per topic with `configureTopic`. */
  history?: HistoryOptions | false;
  /** Where topics' logs live and how messages reach other processes; in-memory by default. */
  broker?: Broker;
  /**
   * Most topics the default in-memory broker keeps (default 10,000). Beyond it the oldest topic
   * without subscribers is forgotten with its history, so clients inventing topic names
   * cannot grow memory forever. (A broker you pass has its own bound.)
   */
  maxTopics?: number;
  /** Where errors not tied to a call go (a lost broker connection, a failed `publish`). */
  onError?: (err: Error) => void;
}

/**
 * A subscriber's topic was reset: its numbering moved on without the messages in between (see
 * `Hub.onReset`).
 */
export type ResetListener = (topic: string, position: TopicPosition, subscribers: ReadonlySet<Subscriber>) => void;

/**
 * What `subscribeRecovering` reports: the recovery (possibly `recovered: false`), or the error
 * that kept it from being read. Return true to complete the subscription, false to give it up.
 */
export type RecoveryAnswer = (result: Recovery | Error) => boolean;

/**
 * Topics and publish: which connections follow which topic, and delivery. Every
 * WebSocketServer has one (`wss.hub`); `ws.subscribe(topic)` and `wss.publish(topic, data)`
 * go through it.
 */
export class Hub implements PubSub {
  private readonly topics = new Map<string, LocalTopic>();
  private readonly broker: Broker;
  private subscriptionCount = 0;
  /**
   * The topics of each subscriber, in the order it joined them: the Hub owns all topic state,
   * connections keep none (a connection that closes calls unsubscribeAll).
   */
  private readonly topicsBySubscriber = new Map<Subscriber, Set<string>>();
  /** Subscribers the last local delivery reached (a synchronous broker delivers inside publish). */
  private lastDelivered = 0;
  private readonly resetListeners = new Set<ResetListener>();
  private readonly onError: (err: Error) => void;

  constructor(options: HubOptions = {}) {
    this.onError =
      options.onError ??
      ((err) => {
        process.emitWarning(err);
      });
    if (options.broker !== undefined) {
      this.broker = options.broker;
      if (options.history !== undefined) this.broker.setDefaultHistory(options.history);
    } else {
      this.broker = new MemoryBroker({
        history: options.history ?? false,
        ...(options.maxTopics !== undefined ? { maxTopics: options.maxTopics } : {}),
      });
    }
    const host: BrokerHost = {
      deliver: (message, exclude) => this.deliver(message, exclude),
      reset: (topic, position) => this.reset(topic, position),
      error: (err) => this.onError(err),
    };
    this.broker.attach(host);
  }

  /** Whether the broker answers synchronously (the in-memory one) or with promises (Redis, cluster). */
  get synchronous(): boolean {
    return this.broker.synchronous;
  }

  /** Set the history of one topic (overrides the default), e.g. `{ size: 100 }`. */
  configureTopic(topic: string, options: { history: HistoryOptions | false }): void {
    this.broker.configureTopic(topic, options.history);
  }

  /**
   * Call `listener` when a topic's numbering moves on without the messages in between (an
   * asynchronous broker lost its log: a new epoch; or could not fill a gap after a lost
   * connection). The channel protocol answers its subscribers `subscribed` with
   * `recovered: false`. Returns a function that removes the listener.
   */
  onReset(listener: ResetListener): () => void {
    this.resetListeners.add(listener);
    return () => this.resetListeners.delete(listener);
  }

  private local(topic: string): LocalTopic {
    let state = this.topics.get(topic);
    if (state === undefined) {
      state = { subscribers: new Set(), pending: undefined, ready: undefined, floors: undefined };
      this.topics.set(topic, state);
      const watching = this.broker.watch(topic);
      if (watching instanceof Promise) {
        // The broker reports a failed watch itself (and retries); a subscriber waiting for
        // its recovery gets the error from the recovery read.
        state.ready = watching.catch(() => undefined);
      }
    }
    return state;
  }

  private addTopicOf(subscriber: Subscriber, topic: string): void {
    let mine = this.topicsBySubscriber.get(subscriber);
    if (mine === undefined) this.topicsBySubscriber.set(subscriber, (mine = new Set()));
    mine.add(topic);
    this.subscriptionCount++;
  }

  /** Add `subscriber` (a connection) to `topic`. Returns false if it already was. */
  subscribe(subscriber: Subscriber, topic: string): boolean {
    const state = this.local(topic);
    if (state.subscribers.has(subscriber) || state.pending?.has(subscriber)) return false;
    state.subscribers.add(subscriber);
    this.addTopicOf(subscriber, topic);
    return true;
  }

  /**
   * Subscribe `subscriber` to `topic` with a recovery: what it missed after (`since.epoch`,
   * `since.seq`), or, without `since`, just the topic's position. `answer` gets the recovery
   * (send it to the subscriber there: the answer, then the replayed messages) and says whether
   * to complete the subscription. Every message published after the recovery's position then
   * reaches the subscriber once, after the replay, whatever the broker: with the in-memory
   * one all of this happens in this call; with an asynchronous one, messages delivered while
   * the recovery is read are held for the subscriber and sent after `answer` returns.
   * A subscriber already subscribed gets its recovery and stays subscribed as it was.
   */
  subscribeRecovering(
    subscriber: Subscriber,
    topic: string,
    since: { seq: number; epoch: string } | undefined,
    answer: RecoveryAnswer,
  ): void {
    const broker = this.broker;
    if (broker.synchronous) {
      const recovery =
        since === undefined
          ? { ...broker.position(topic), recovered: false, messages: [] }
          : broker.recover(topic, since.seq, since.epoch);
      if (answer(recovery)) this.subscribe(subscriber, topic);
      return;
    }
    const read = (): Promise<Recovery> =>
      since === undefined
        ? broker.position(topic).then((position) => ({ ...position, recovered: false, messages: [] }))
        : broker.recover(topic, since.seq, since.epoch);
    const state = this.local(topic);
    if (state.subscribers.has(subscriber) || state.pending?.has(subscriber)) {
      // Already following: live delivery goes on; the recovery is sent when read (the
      // protocol tells clients to ignore a seq they saw).
      void read()
        .then(answer, (err: unknown) => answer(asError(err)))
        .catch((err: unknown) => this.onError(asError(err)));
      return;
    }
    (state.pending ??= new Map()).set(subscriber, []);
    this.addTopicOf(subscriber, topic);
    const settle = (result: Recovery | Error): void => {
      const items = state.pending?.get(subscriber);
      if (items === undefined || this.topics.get(topic) !== state) return; // left meanwhile
      state.pending!.delete(subscriber);
      let keep = false;
      try {
        keep = answer(result);
      } catch (err) {
        // No caller to throw to here (a promise callback): reported, and not subscribed, as
        // a throw from the answer of a synchronous broker's recovery leaves it.
        this.onError(asError(err));
      }
      if (!keep || result instanceof Error) {
        this.forget(subscriber, topic, state);
        return;
      }
      state.subscribers.add(subscriber);
      const at = this.catchUp(subscriber, topic, result, items);
      // The feed may lag behind what the recovery read: what it delivers up to there, the
      // subscriber has.
      (state.floors ??= new Map()).set(subscriber, at);
    };
    void (state.ready ?? Promise.resolve()).then(read).then(settle, (err: unknown) => settle(asError(err)));
  }

  /** Send a subscriber what was delivered while its recovery was read, after the recovery. */
  private catchUp(
    subscriber: Subscriber,
    topic: string,
    recovery: Recovery,
    items: PendingItem[] | 'overflow',
  ): TopicPosition {
    const at: TopicPosition = { epoch: recovery.epoch, seq: recovery.seq };
    const one = new Set([subscriber]);
    if (items === 'overflow') {
      // Too much arrived meanwhile to hold: the subscriber is told it may have missed some.
      this.tellReset(topic, at, one);
      return at;
    }
    for (const item of items) {
      if ('reset' in item) {
        if (item.reset.epoch !== at.epoch || item.reset.seq > at.seq) {
          at.epoch = item.reset.epoch;
          at.seq = item.reset.seq;
          this.tellReset(topic, item.reset, one);
        }
      } else if (item.message.epoch === at.epoch && item.message.seq > at.seq) {
        at.seq = item.message.seq;
        subscriber.sendEncoded(item.shared);
      }
      // Otherwise it is covered by the recovery, or from an epoch before it: skipped.
    }
    return at;
  }

  /** Leave every topic (a connection closed). */
  unsubscribeAll(subscriber: Subscriber): void {
    const mine = this.topicsBySubscriber.get(subscriber);
    if (mine === undefined) return;
    for (const topic of [...mine]) this.unsubscribe(subscriber, topic);
  }

  /** Whether `subscriber` follows `topic` (or waits for its recovery on it). */
  isSubscribed(subscriber: Subscriber, topic: string): boolean {
    return this.topicsBySubscriber.get(subscriber)?.has(topic) ?? false;
  }

  /** The topics `subscriber` is in, in the order it joined them. */
  topicsOf(subscriber: Subscriber): string[] {
    const mine = this.topicsBySubscriber.get(subscriber);
    return mine === undefined ? [] : [...mine];
  }

  /** Remove `subscriber` from `topic`. Returns false if it was not subscribed. */
  unsubscribe(subscriber: Subscriber, topic: string): boolean {
    const state = this.topics.get(topic);
    if (state === undefined) return false;
    if (!state.subscribers.delete(subscriber) && !state.pending?.delete(subscriber)) return false;
    state.floors?.delete(subscriber);
    this.forget(subscriber, topic, state);
    return true;
  }

  /** `subscriber` no longer follows `topic` (already removed from its sets). */
  private forget(subscriber: Subscriber, topic: string, state: LocalTopic): void {
    const mine = this.topicsBySubscriber.get(subscriber);
    mine?.delete(topic);
    if (mine?.size === 0) this.topicsBySubscriber.delete(subscriber);
    this.subscriptionCount--;
    if (state.subscribers.size === 0 && (state.pending === undefined || state.pending.size === 0)) {
      this.topics.delete(topic);
      this.broker.unwatch(topic);
    }
  }

  /**
   * Publish to every subscriber of `topic` (except `exclude`), in every process the broker
   * connects. Returns the number of local subscribers written to before it returned: with
   * the in-memory broker, every one; with an asynchronous broker 0 (delivery follows the
   * broker's answer; a failure goes to the `onError` handler: use `publishAsync` to await it).
   * `data` may be a function of the message's sequence number and the topic's epoch (in-memory
   * broker only; see `publishMessage` for a form every broker can number).
   */
  publish(
    topic: string,
    data: PublishData | ((seq: number, epoch: string) => PublishData),
    options?: PublishOptions,
    exclude?: Subscriber,
  ): number {
    return this.publishMessage(this.outgoing(topic, data, options), exclude);
  }

  /**
   * Publish and wait for the broker: resolves with the message's position (`{ epoch, seq }`)
   * once it is numbered and stored (at once with the in-memory broker); rejects with a
   * DuetError (`WS_ERR_BROKER_UNAVAILABLE`, `WS_ERR_BROKER_BACKLOG`) when it was not published.
   */
  publishAsync(
    topic: string,
    data: PublishData | ((seq: number, epoch: string) => PublishData),
    options?: PublishOptions,
    exclude?: Subscriber,
  ): Promise<TopicPosition> {
    try {
      return this.publishMessageAsync(this.outgoing(topic, data, options), exclude);
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }

  /**
   * Publish a message in the broker's own form, whose bytes may end in `tail` after the
   * sequence number (`payload + seq + tail`, put together where the number is assigned, so
   * it works with every broker). Returns what `publish` returns.
   */
  publishMessage(message: OutgoingMessage, exclude?: Subscriber): number {
    const broker = this.broker;
    if (broker.synchronous) {
      this.lastDelivered = 0;
      broker.publish(message, exclude);
      return this.lastDelivered;
    }
    broker.publish(message, exclude).catch((err: unknown) => this.onError(asError(err)));
    return 0;
  }

  /**
   * `publishMessage` returning where the message landed, at once: its position, or, for a
   * `dedup` id the broker still remembers, the first publish's with `duplicate: true`.
   * In-memory broker only (`WS_ERR_BROKER_ASYNC` otherwise): see `publishMessageAsync`.
   */
  publishMessageSync(message: OutgoingMessage, exclude?: Subscriber): PublishResult {
    const broker = this.broker;
    if (!broker.synchronous) throw asyncOnly('publishMessageSync()');
    return broker.publish(message, exclude);
  }

  /** `publishMessage`, waiting for the broker as `publishAsync` does (and with its `duplicate`). */
  publishMessageAsync(message: OutgoingMessage, exclude?: Subscriber): Promise<PublishResult> {
    const broker = this.broker;
    if (!broker.synchronous) return broker.publish(message, exclude);
    try {
      return Promise.resolve(broker.publish(message, exclude));
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }

  private outgoing(
    topic: string,
    data: PublishData | ((seq: number, epoch: string) => PublishData),
    options: PublishOptions | undefined,
  ): OutgoingMessage {
    let value: PublishData;
    if (typeof data === 'function') {
      if (!this.broker.synchronous) throw asyncOnly('a payload function');
      const position = this.broker.position(topic);
      value = data(position.seq + 1, position.epoch);
    } else {
      value = data;
    }
    const message: OutgoingMessage = {
      topic,
      payload: toPayload(value),
      binary: options?.binary ?? typeof value !== 'string',
    };
    if (options?.compress !== undefined) message.compress = options.compress;
    return message;
  }

  /**
   * Local fan-out: frame once (and compress once, for subscribers with permessage-deflate),
   * write the same bytes to every subscriber; keep it for subscribers waiting for a recovery.
   */
  private deliver(message: BrokerMessage, exclude: unknown): void {
    const state = this.topics.get(message.topic);
    if (state === undefined) return;
    const shared = new SharedMessage(message.payload, message.binary, message.compress !== false);
    let delivered = 0;
    const floors = state.floors;
    if (floors === undefined) {
      for (const ws of state.subscribers) {
        if (ws !== exclude && ws.sendEncoded(shared)) delivered++;
      }
    } else {
      for (const ws of state.subscribers) {
        const floor = floors.get(ws);
        if (floor !== undefined) {
          // Recovered already (or from an epoch the feed leaves with a reset, which clears floors).
          if (floor.epoch !== message.epoch || message.seq <= floor.seq) continue;
          floors.delete(ws);
        }
        if (ws !== exclude && ws.sendEncoded(shared)) delivered++;
      }
      if (floors.size === 0) state.floors = undefined;
    }
    this.lastDelivered = delivered;
    if (state.pending !== undefined) {
      for (const [subscriber, items] of state.pending) {
        if (items === 'overflow' || subscriber === exclude) continue;
        if (items.length >= MAX_PENDING_ITEMS) state.pending.set(subscriber, 'overflow');
        else items.push({ message, shared });
      }
    }
  }

  private reset(topic: string, position: TopicPosition): void {
    const state = this.topics.get(topic);
    if (state === undefined) return;
    state.floors = undefined;
    if (state.subscribers.size > 0) this.tellReset(topic, position, state.subscribers);
    if (state.pending !== undefined) {
      for (const items of state.pending.values()) if (items !== 'overflow') items.push({ reset: position });
    }
  }

  private tellReset(topic: string, position: TopicPosition, subscribers: ReadonlySet<Subscriber>): void {
    for (const listener of this.resetListeners) {
      try {
        listener(topic, { epoch: position.epoch, seq: position.seq }, subscribers);
      } catch (err) {
        this.onError(asError(err));
      }
    }
  }

  /** Subscribers of `topic` in this process (those waiting for their recovery included). */
  subscriberCount(topic: string): number {
    const state = this.topics.get(topic);
    return state === undefined ? 0 : state.subscribers.size + (state.pending?.size ?? 0);
  }

  /**
   * The topic's epoch and last sequence number (a new topic starts at seq 0). In-memory
   * broker only: with an asynchronous one use `positionAsync`.
   */
  position(topic: string): TopicPosition {
    if (!this.broker.synchronous) throw asyncOnly('position()');
    return this.broker.position(topic);
  }

  /** The topic's position, from any broker. */
  positionAsync(topic: string): Promise<TopicPosition> {
    const broker = this.broker;
    return broker.synchronous ? Promise.resolve(broker.position(topic)) : broker.position(topic);
  }

  /**
   * What a client that last saw (`epoch`, `since`) missed: exactly the messages after it, or
   * `recovered: false` when that cannot be known (no history, a gap older than the history,
   * another epoch). In-memory broker only: with an asynchronous one use `recoverAsync`.
   */
  recover(topic: string, since: number, epoch: string): Recovery {
    if (!this.broker.synchronous) throw asyncOnly('recover()');
    return this.broker.recover(topic, since, epoch);
  }

  /** `recover`, from any broker. */
  recoverAsync(topic: string, since: number, epoch: string): Promise<Recovery> {
    const broker = this.broker;
    return broker.synchronous
      ? Promise.resolve(broker.recover(topic, since, epoch))
      : broker.recover(topic, since, epoch);
  }

  /**
   * The name of the memory where the broker keeps publish ids (`OutgoingMessage.dedup`), or
   * undefined when it keeps none or does not know it yet (see `Broker.dedupScope`).
   */
  dedupScope(): string | undefined {
    return this.broker.dedupScope?.();
  }

  /** Topics with at least one subscriber here, and subscriptions over all topics. */
  stats(): { topics: number; subscriptions: number } {
    return { topics: this.topics.size, subscriptions: this.subscriptionCount };
  }

  /** Stop the broker (the server does this when it closes). */
  close(): void | Promise<void> {
    return this.broker.close();
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function asyncOnly(what: string): Error {
  return createError(
    'WS_ERR_BROKER_ASYNC',
    `${what} needs a synchronous broker; this hub's broker answers asynchronously: use publishAsync / positionAsync / recoverAsync`,
  );
}
