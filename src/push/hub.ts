/**
 * Hub: topics and publish for one server. Each published message is framed once and the same
 * bytes are written to every subscriber (each socket flushes once per event-loop turn, see
 * node/write-batch.ts). Every topic has a sequence number and an epoch; with history on,
 * recent messages are kept so reconnecting clients can recover what they missed.
 */
import { randomBytes } from 'node:crypto';
import type { PubSub, PublishOptions, Subscriber } from '../node/host.js';
import { SharedMessage } from '../node/shared-message.js';
import { MemoryBroker, type Broker, type BrokerMessage } from './broker.js';
import { TopicHistory, type HistoryOptions, type Recovery } from './history.js';

/** Data a publish accepts. A function receives the message's sequence number and epoch. */
export type PublishData = string | Buffer | ArrayBuffer | ArrayBufferView;

interface Topic {
  subscribers: Set<Subscriber>;
  seq: number;
  epoch: string;
  history: TopicHistory | undefined;
}

function toPayload(data: PublishData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}

/** Options of a Hub (a WebSocketServer passes its own `history`, `broker` and `maxTopics`). */
export interface HubOptions {
  /** History for every topic (off by default); per topic with `configureTopic`. */
  history?: HistoryOptions | false;
  /** How messages reach subscribers; the in-memory broker by default. */
  broker?: Broker;
  /**
   * Most topics kept (default 10,000). Beyond it the oldest topic without subscribers is
   * forgotten with its history, so clients inventing topic names cannot grow memory forever.
   */
  maxTopics?: number;
}

/**
 * Topics and publish: which connections follow which topic, each topic's sequence number,
 * epoch and history. Every WebSocketServer has one (`wss.hub`); `ws.subscribe(topic)` and
 * `wss.publish(topic, data)` go through it.
 */
export class Hub implements PubSub {
  private readonly topics = new Map<string, Topic>();
  private readonly historyDefault: HistoryOptions | false;
  private readonly historyByTopic = new Map<string, HistoryOptions | false>();
  private readonly broker: Broker;
  private readonly maxTopics: number;
  private subscriptionCount = 0;
  /**
   * The topics of each subscriber, in the order it joined them: the Hub owns all topic state,
   * connections keep none (a connection that closes calls unsubscribeAll).
   */
  private readonly topicsBySubscriber = new Map<Subscriber, Set<string>>();
  /** Subscribers the last local delivery reached (the memory broker delivers synchronously). */
  private lastDelivered = 0;

  constructor(options: HubOptions = {}) {
    this.historyDefault = options.history ?? false;
    this.broker = options.broker ?? new MemoryBroker();
    this.maxTopics = options.maxTopics ?? 10_000;
    this.broker.attach((message, exclude) => this.deliver(message, exclude));
  }

  /** Set the history of one topic (overrides the default), e.g. `{ size: 100 }`. */
  configureTopic(topic: string, options: { history: HistoryOptions | false }): void {
    this.historyByTopic.set(topic, options.history);
    const state = this.topics.get(topic);
    if (state) state.history = options.history ? new TopicHistory(options.history) : undefined;
  }

  private historyFor(topic: string): HistoryOptions | false {
    return this.historyByTopic.has(topic) ? this.historyByTopic.get(topic)! : this.historyDefault;
  }

  private state(topic: string): Topic {
    let state = this.topics.get(topic);
    if (state === undefined) {
      if (this.topics.size >= this.maxTopics) this.evictIdleTopic();
      const history = this.historyFor(topic);
      state = {
        subscribers: new Set(),
        seq: 0,
        epoch: newEpoch(),
        history: history ? new TopicHistory(history) : undefined,
      };
      this.topics.set(topic, state);
    }
    return state;
  }

  /** Add `subscriber` (a connection) to `topic`. Returns false if it already was. */
  subscribe(subscriber: Subscriber, topic: string): boolean {
    const subscribers = this.state(topic).subscribers;
    if (subscribers.has(subscriber)) return false;
    subscribers.add(subscriber);
    let mine = this.topicsBySubscriber.get(subscriber);
    if (mine === undefined) this.topicsBySubscriber.set(subscriber, (mine = new Set()));
    mine.add(topic);
    this.subscriptionCount++;
    return true;
  }

  /** Leave every topic (a connection closed). */
  unsubscribeAll(subscriber: Subscriber): void {
    const mine = this.topicsBySubscriber.get(subscriber);
    if (mine === undefined) return;
    for (const topic of [...mine]) this.unsubscribe(subscriber, topic);
  }

  /** Whether `subscriber` follows `topic`. */
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
    if (state === undefined || !state.subscribers.delete(subscriber)) return false;
    const mine = this.topicsBySubscriber.get(subscriber);
    mine?.delete(topic);
    if (mine?.size === 0) this.topicsBySubscriber.delete(subscriber);
    this.subscriptionCount--;
    // A topic with nobody listening and nothing remembered is forgotten (its sequence, too).
    if (state.subscribers.size === 0 && state.history === undefined) this.topics.delete(topic);
    return true;
  }

  /**
   * Publish to every subscriber of `topic` (except `exclude`). `data` may be a function of
   * the message's sequence number and the topic's epoch, for payloads that carry them (the
   * channel protocol does). Returns the number of local subscribers written to.
   */
  publish(
    topic: string,
    data: PublishData | ((seq: number, epoch: string) => PublishData),
    options?: PublishOptions,
    exclude?: Subscriber,
  ): number {
    const known = this.topics.get(topic);
    if (known === undefined && !this.historyFor(topic)) {
      // Nobody here follows this topic and nothing is remembered: no state is made (offline
      // users' notification topics, made-up names). Other processes may still have
      // subscribers, so the broker gets it, without a sequence number.
      const value = typeof data === 'function' ? data(0, '') : data;
      this.broker.publish(
        {
          topic,
          payload: toPayload(value),
          binary: options?.binary ?? typeof value !== 'string',
          compress: options?.compress,
          seq: 0,
          epoch: '',
        },
        exclude,
      );
      return 0;
    }
    const state = known ?? this.state(topic);
    const seq = ++state.seq;
    const value = typeof data === 'function' ? data(seq, state.epoch) : data;
    const payload = toPayload(value);
    const binary = options?.binary ?? typeof value !== 'string';
    // History keeps its own copy: a received message may be a view into a whole socket read.
    if (state.history) state.history.add({ seq, payload: Buffer.from(payload), binary, time: Date.now() });
    this.lastDelivered = 0;
    this.broker.publish({ topic, payload, binary, compress: options?.compress, seq, epoch: state.epoch }, exclude);
    // A topic nobody here follows and nothing remembers is not kept (made-up topic names must
    // not grow the map); the broker still carried the message to other processes.
    if (state.subscribers.size === 0 && state.history === undefined) this.topics.delete(topic);
    return this.lastDelivered;
  }

  /**
   * Local fan-out: frame once (and compress once, for subscribers with permessage-deflate),
   * write the same bytes to every subscriber.
   */
  private deliver(message: BrokerMessage, exclude: unknown): void {
    const state = this.topics.get(message.topic);
    if (state === undefined || state.subscribers.size === 0) return;
    const shared = new SharedMessage(message.payload, message.binary, message.compress !== false);
    let delivered = 0;
    for (const ws of state.subscribers) {
      if (ws !== exclude && ws.sendEncoded(shared)) delivered++;
    }
    this.lastDelivered = delivered;
  }

  /** Subscribers of `topic` in this process. */
  subscriberCount(topic: string): number {
    return this.topics.get(topic)?.subscribers.size ?? 0;
  }

  /** The topic's epoch and last sequence number (a new topic starts at seq 0). */
  position(topic: string): { epoch: string; seq: number } {
    const state = this.state(topic);
    return { epoch: state.epoch, seq: state.seq };
  }

  /**
   * What a client that last saw (`epoch`, `since`) missed: exactly the messages after it, or
   * `recovered: false` when that cannot be known (no history, a gap older than the history,
   * another epoch).
   */
  recover(topic: string, since: number, epoch: string): Recovery {
    const state = this.state(topic);
    const base = { epoch: state.epoch, seq: state.seq };
    if (epoch !== state.epoch || state.history === undefined || !Number.isInteger(since) || since < 0) {
      return { ...base, recovered: false, messages: [] };
    }
    const messages = state.history.after(since, state.seq, Date.now());
    return messages === undefined
      ? { ...base, recovered: false, messages: [] }
      : { ...base, recovered: true, messages };
  }

  /**
   * Too many topics: forget the oldest one nobody subscribes to (its history goes with it, so
   * a later recovery on it reports `recovered: false`). Topics with subscribers are kept.
   */
  private evictIdleTopic(): void {
    for (const [name, state] of this.topics) {
      if (state.subscribers.size === 0) {
        this.topics.delete(name);
        return;
      }
    }
  }

  /** Topics with at least one subscriber, and subscriptions over all topics. */
  stats(): { topics: number; subscriptions: number } {
    let topics = 0;
    for (const state of this.topics.values()) if (state.subscribers.size > 0) topics++;
    return { topics, subscriptions: this.subscriptionCount };
  }
}
