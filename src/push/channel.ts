/**
 * The JSON channel protocol (docs/protocol.md): clients subscribe to named topics, publish to
 * them, recover what they missed after a reconnect (epoch + seq) and ping at the application
 * level, all as JSON text messages with a `type` field; a publish with an `id` is acknowledged
 * and, by (topic, id), published once however often it is sent (the broker remembers the ids
 * with the topic). A reusable handler for any duet WebSocketServer:
 * `wss.on('connection', (ws) => channel.accept(ws))`.
 *
 * Each channel message is published through the Hub as an envelope whose seq is put in where
 * the broker numbers it (`payload` + seq + `tail`), so its JSON is built once per publish,
 * framed once for every subscriber, and kept as those same bytes in the topic's history, from
 * which recovery replays it.
 *
 * Why one file of ~750 lines: one handler per message type of the protocol (subscribe,
 * publish, batch, hello, ping), over one per-connection state (rate limit, recovery budget,
 * identity) and the limits it announces; the wire shapes are in channel-types.ts, reading
 * and answering messages in channel-wire.ts.
 */
import type { RawData, WebSocket } from '../node/connection.js';
import { CloseCode } from '../protocol/close-codes.js';
import type {
  ChannelAckEntry,
  ChannelDedupOptions,
  ChannelError,
  ChannelLimits,
  ChannelOptions,
  ChannelRateLimit,
  ChannelRecoveryBudget,
  ChannelSender,
} from './channel-types.js';
import type { Recovery } from './history.js';
import type { OutgoingMessage, PublishResult } from './broker.js';
import {
  ack,
  ackEntry,
  badPublishId,
  ClientError,
  counts,
  isPublishId,
  notPublished,
  parse,
  refused,
  sendJson,
  stringify,
  UNAVAILABLE_RETRY_MS,
  type Fields,
} from './channel-wire.js';
import type { Hub } from './hub.js';
import { newConnectionId, nickProblem, senderJson } from './identity.js';
import { refilled, waitFor, type BucketRate } from './token-bucket.js';

export { CHANNEL_ERROR_CODES } from './channel-types.js';
export type {
  ChannelAck,
  ChannelAckEntry,
  ChannelAcks,
  ChannelDedupOptions,
  ChannelError,
  ChannelErrorCode,
  ChannelLimits,
  ChannelMessage,
  ChannelOptions,
  ChannelPong,
  ChannelRateLimit,
  ChannelRecoveryBudget,
  ChannelSender,
  ChannelServerMessage,
  ChannelSubscribed,
  ChannelTopicOptions,
  ChannelUnsubscribed,
  ChannelWelcome,
} from './channel-types.js';

/** Longest topic name, in UTF-16 code units. */
export const MAX_TOPIC_LENGTH = 256;
/** Channel topics live under this prefix in the Hub, apart from raw `ws.subscribe()` topics. */
export const CHANNEL_TOPIC_PREFIX = 'channel:';

// Defaults, each stated once (see the option comments in channel-types.ts for why).
const DEFAULT_RATE_LIMIT: ChannelRateLimit = { messages: 20, perMs: 1000 };
const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024;
const DEFAULT_MAX_ERRORS = 5;
// Recovery replies are the protocol's amplifier: a 70-byte subscribe can ask for a whole
// history (duet serve: 100 messages of up to 16 KiB). 32 KiB at once covers a reconnect that
// missed a full history of ordinary chat messages or ticks (about 100-160 bytes each); the
// refill (about 1 KiB/s) keeps a client that spams recoveries at the message rate limit
// (20 x 70 bytes a second) to well under 10 bytes out per byte in after the first seconds.
const DEFAULT_RECOVERY_BUDGET: ChannelRecoveryBudget = { bytes: 32 * 1024, perMs: 30_000 };

// Two minutes outlast a client noticing a dead connection (its heartbeat bound, 30 s) and
// reconnecting through a few backoff steps; 10,000 ids per topic are two minutes of 80
// publishes a second on one topic, a few MB at most, and what bounds memory at any rate.
const DEFAULT_DEDUP: Required<ChannelDedupOptions> = { ttlMs: 120_000, size: 10_000 };
// 50 chat-sized publishes fit the default 16 KiB frame; a client's queue of 1,000 drains in
// 20 messages, one second of the default rate.
const DEFAULT_MAX_BATCH = 50;

/** Keys of a publish request that would name a sender: only the server stamps that (`from`). */
const SENDER_KEYS = ['from', 'nick'] as const;

/** What the channel remembers per connection: one small object, no timers or closures. */
interface ConnectionState {
  /** Token bucket: messages that may be sent now, refilled from `refilledAt` on each message. */
  tokens: number;
  refilledAt: number;
  /** Messages refused by the rate limit in the window (of `rate.perMs`) that began at `limitedSince`. */
  limited: number;
  limitedSince: number;
  errors: number;
  /** Token bucket in bytes for recovery replies, refilled from `recoveryRefilledAt`. */
  recoveryBytes: number;
  recoveryRefilledAt: number;
  /** Made on first use (most connections never publish nor say hello). */
  id: string | undefined;
  nick: string | undefined;
  /** `from` as JSON, rebuilt when the nick changes. */
  fromJson: string | undefined;
}

interface TopicConfig {
  /** The topic name as a JSON string, ready to splice into envelopes. */
  json: string;
  publish: boolean;
  identityFields: readonly string[] | undefined;
}

/**
 * The JSON channel protocol (docs/protocol.md) on a server's connections: subscribe with
 * recovery, publish, hello/identity, ping, with per-connection limits. `channel.accept(ws)`
 * in the server's `connection` listener; `channel.publish(topic, data)` from the server.
 */
export class Channel {
  private readonly hub: Hub;
  private readonly topics = new Map<string, TopicConfig>();
  private readonly allowUnknownTopics: boolean;
  private readonly allowPublish: ((ws: WebSocket, topic: string) => boolean) | undefined;
  private readonly rate: BucketRate | false;
  private readonly recoveryBudget: BucketRate | false;
  private readonly maxMessageBytes: number;
  private readonly maxErrors: number;
  private readonly maxBatch: number;
  private readonly dedup: Required<ChannelDedupOptions> | false;
  /**
   * Publishes with an id waiting for an asynchronous broker, by topic and id: a repeat that
   * arrives meanwhile gets the same answer instead of a second publish. Each entry is a
   * publish the broker holds (bounded by its `maxPendingPublishes`), gone when it answers.
   */
  private readonly inflight = new Map<string, Promise<PublishResult>>();
  /** The `limits` message as sent, and the dedup scope it was made with. */
  private limitsJson: string | undefined;
  private limitsScope: string | undefined;
  private readonly connections = new WeakMap<WebSocket, ConnectionState>();
  /** One listener for every connection (it finds its connection as `this`). */
  private readonly listener: (this: WebSocket, data: RawData, isBinary: boolean) => void;

  constructor(server: { readonly hub: Hub }, options: ChannelOptions = {}) {
    this.hub = server.hub;
    for (const [name, topic] of Object.entries(options.topics ?? {})) {
      checkTopicName(name);
      if (topic.history !== undefined) this.hub.configureTopic(CHANNEL_TOPIC_PREFIX + name, { history: topic.history });
      const identityFields = topic.identityFields?.length ? [...topic.identityFields] : undefined;
      this.topics.set(name, { json: JSON.stringify(name), publish: topic.publish ?? true, identityFields });
    }
    this.allowUnknownTopics = options.allowUnknownTopics ?? false;
    this.allowPublish = options.allowPublish;
    const rate = options.rateLimit ?? DEFAULT_RATE_LIMIT;
    if (rate !== false && !(rate.messages >= 1 && rate.perMs > 0))
      throw new RangeError('rateLimit needs messages >= 1 and perMs > 0');
    this.rate = rate === false ? false : { capacity: rate.messages, perMs: rate.perMs };
    const budget = options.recoveryBudget ?? DEFAULT_RECOVERY_BUDGET;
    if (budget !== false && !(budget.bytes >= 1 && budget.perMs > 0))
      throw new RangeError('recoveryBudget needs bytes >= 1 and perMs > 0');
    this.recoveryBudget = budget === false ? false : { capacity: budget.bytes, perMs: budget.perMs };
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.maxErrors = options.maxErrors ?? DEFAULT_MAX_ERRORS;
    if (!(this.maxMessageBytes > 0)) throw new RangeError('maxMessageBytes must be positive');
    if (!(this.maxErrors >= 1)) throw new RangeError('maxErrors must be at least 1');
    this.maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
    if (!(Number.isSafeInteger(this.maxBatch) && this.maxBatch >= 1))
      throw new RangeError('maxBatch must be an integer of at least 1');
    const dedup = options.dedup ?? {};
    this.dedup =
      dedup === false ? false : { ttlMs: dedup.ttlMs ?? DEFAULT_DEDUP.ttlMs, size: dedup.size ?? DEFAULT_DEDUP.size };
    if (
      this.dedup !== false &&
      !(this.dedup.ttlMs > 0 && Number.isSafeInteger(this.dedup.size) && this.dedup.size >= 1)
    )
      throw new RangeError('dedup needs ttlMs > 0 and an integer size >= 1');
    // A topic whose numbering moved on without the messages in between (an asynchronous broker
    // lost its log or could not fill a gap): its subscribers are answered as a subscribe with
    // nothing recovered would be, so clients reload the topic's state.
    this.hub.onReset((hubTopic, position, subscribers) => {
      if (!hubTopic.startsWith(CHANNEL_TOPIC_PREFIX)) return;
      const topic = hubTopic.slice(CHANNEL_TOPIC_PREFIX.length);
      const reset = JSON.stringify({
        type: 'subscribed',
        topic,
        epoch: position.epoch,
        seq: position.seq,
        recovered: false,
      });
      for (const subscriber of subscribers) {
        const ws = subscriber as WebSocket;
        if (this.connections.has(ws) && ws.readyState === ws.OPEN) ws.send(reset);
      }
    });
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the listener's own `this` is the socket
    const channel = this;
    this.listener = function (this: WebSocket, data: RawData, isBinary: boolean): void {
      channel.receive(this, data, isBinary);
    };
  }

  /**
   * Speak the channel protocol on `ws`, a connection of the same server. Its subscriptions
   * end when it closes. Accepting a connection twice does nothing.
   */
  accept(ws: WebSocket): void {
    if (ws.host?.pubsub !== this.hub)
      throw new TypeError('Channel.accept() takes connections of the server the channel was created with');
    if (this.connections.has(ws)) return;
    const now = Date.now();
    this.connections.set(ws, {
      tokens: this.rate === false ? 0 : this.rate.capacity,
      refilledAt: now,
      limited: 0,
      limitedSince: now,
      errors: 0,
      // A new connection may recover at once: that is what a reconnecting client needs.
      recoveryBytes: this.recoveryBudget === false ? 0 : this.recoveryBudget.capacity,
      recoveryRefilledAt: now,
      id: undefined,
      nick: undefined,
      fromJson: undefined,
    });
    // Before anything else: what the connection may send (a client paces itself by it).
    ws.send(this.limitsMessage());
    // The channel's replies (recovery replays above all) are push traffic: the server's
    // slow-consumer policy applies to them as to publishes.
    ws.slowConsumerSends = true;
    ws.on('message', this.listener);
  }

  /**
   * The `limits` message: made once, and again when the broker's dedup scope changed (a
   * Redis that lost its data, a cluster primary that answered).
   */
  private limitsMessage(): string {
    const scope = this.dedup === false ? undefined : this.hub.dedupScope();
    if (this.limitsJson === undefined || scope !== this.limitsScope) {
      this.limitsScope = scope;
      const rate = this.rate;
      const limits: ChannelLimits = {
        type: 'limits',
        rate: rate === false ? null : { messages: rate.capacity, perMs: rate.perMs },
        maxMessageBytes: this.maxMessageBytes,
        maxBatch: this.maxBatch,
        // A broker that keeps no ids (or does not know where yet): clients must not resend.
        dedupMs: scope === undefined || this.dedup === false ? 0 : this.dedup.ttlMs,
      };
      if (scope !== undefined) limits.dedupScope = scope;
      this.limitsJson = JSON.stringify(limits);
    }
    return this.limitsJson;
  }

  /**
   * Send `data` (any JSON value) to every subscriber of `topic` as a `message` with the
   * topic's next seq. Returns the number of connections it was written to. Throws a
   * TypeError when `data` cannot be turned into JSON.
   *
   * `options.from`: a connection this channel accepted; the message then carries its
   * identity in `from`, as if it had published it (for what the server says on a
   * connection's behalf, such as its presence `leave` when it closes).
   */
  publish(topic: string, data: unknown, options?: { from?: WebSocket }): number {
    let fromJson: string | undefined;
    if (options?.from !== undefined) {
      const state = this.connections.get(options.from);
      if (state === undefined) throw new TypeError('publish({ from }) takes a connection this channel accepted');
      fromJson = this.fromJsonOf(state);
    }
    return this.hub.publishMessage(
      this.envelope(topic, this.topics.get(topic)?.json ?? JSON.stringify(topic), stringify(data), fromJson),
    );
  }

  /**
   * Who `ws` is on this channel: the id the server gave it and the nick of its last `hello`
   * (what its messages carry as `from`). Undefined for a connection this channel did not accept.
   */
  identity(ws: WebSocket): ChannelSender | undefined {
    const state = this.connections.get(ws);
    return state === undefined ? undefined : this.senderOf(state);
  }

  /**
   * The topic's epoch and last seq: hand it out with a state snapshot, so clients subscribe
   * `since` it. In-memory broker only (`WS_ERR_BROKER_ASYNC` otherwise): see `positionAsync`.
   */
  position(topic: string): { epoch: string; seq: number } {
    return this.hub.position(CHANNEL_TOPIC_PREFIX + topic);
  }

  /** `position`, with any broker (Redis: read from Redis). */
  positionAsync(topic: string): Promise<{ epoch: string; seq: number }> {
    return this.hub.positionAsync(CHANNEL_TOPIC_PREFIX + topic);
  }

  /** Connections subscribed to `topic` through the channel. */
  subscriberCount(topic: string): number {
    return this.hub.subscriberCount(CHANNEL_TOPIC_PREFIX + topic);
  }

  /** A `message` envelope, its seq put in where the broker numbers it. */
  private envelope(topic: string, topicJson: string, dataJson: string, fromJson?: string): OutgoingMessage {
    const head = `{"type":"message","topic":${topicJson},"seq":`;
    const tail = fromJson === undefined ? `,"data":${dataJson}}` : `,"from":${fromJson},"data":${dataJson}}`;
    return { topic: CHANNEL_TOPIC_PREFIX + topic, payload: head, tail, binary: false };
  }

  private senderOf(state: ConnectionState): ChannelSender {
    state.id ??= newConnectionId();
    return state.nick === undefined ? { id: state.id } : { id: state.id, nick: state.nick };
  }

  private fromJsonOf(state: ConnectionState): string {
    return (state.fromJson ??= senderJson(this.senderOf(state)));
  }

  // ---- receiving -----------------------------------------------------------------------------

  private receive(ws: WebSocket, data: RawData, isBinary: boolean): void {
    // Messages that arrive while closing (the peer has not seen our Close yet) are ignored.
    if (ws.readyState !== ws.OPEN) return;
    const state = this.connections.get(ws);
    if (state === undefined) return;
    if (!this.takeToken(state)) {
      this.rateLimited(ws, state, data, isBinary);
      return;
    }
    try {
      if (isBinary) throw new ClientError('binary', 'binary messages are not part of the protocol; send JSON text');
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : undefined;
      if (bytes === undefined) throw new ClientError('binary', 'text messages only');
      if (bytes.length > this.maxMessageBytes)
        throw new ClientError('too_big', `messages are limited to ${this.maxMessageBytes} bytes`);
      this.handle(ws, state, parse(bytes));
    } catch (err) {
      if (err instanceof ClientError) this.fail(ws, state, err);
      else {
        // A bug here or an application callback threw: that client gets an error, the rest carry on.
        process.emitWarning(err instanceof Error ? err : String(err));
        this.fail(ws, state, new ClientError('internal', 'the server could not handle this message'));
      }
    }
  }

  /** Token bucket from timestamps: no timer per connection. */
  private takeToken(state: ConnectionState): boolean {
    const rate = this.rate;
    if (rate === false) return true;
    const now = Date.now();
    state.tokens = refilled(state.tokens, state.refilledAt, now, rate);
    state.refilledAt = now;
    if (state.tokens < 1) return false;
    state.tokens--;
    return true;
  }

  /**
   * A message over the rate limit: dropped, and answered `rate_limited` with `retryAfter` (the
   * milliseconds until one token is back) and, for a publish, its `id` and `topic`, so the
   * client can send it again then; not counted toward `maxErrors`. A connection refused more
   * than `rate.messages` times within one `rate.perMs` window (it sends at over about twice
   * the rate, ignoring `retryAfter`) is closed with 1013 and the time until its bucket is full.
   */
  private rateLimited(ws: WebSocket, state: ConnectionState, data: RawData, isBinary: boolean): void {
    const rate = this.rate as BucketRate;
    const now = Date.now();
    if (now - state.limitedSince >= rate.perMs) {
      state.limitedSince = now;
      state.limited = 0;
    }
    state.limited++;
    const retryAfter = Math.max(1, waitFor(state.tokens, 1, rate));
    const error: ChannelError = {
      type: 'error',
      code: 'rate_limited',
      message: `too many messages; send again in ${retryAfter} ms`,
      retryAfter,
    };
    const publish = isBinary ? undefined : this.publishNamed(data);
    if (publish !== undefined) {
      error.topic = publish.topic;
      error.id = publish.id;
    }
    sendJson(ws, error);
    if (state.limited > rate.capacity) {
      ws.close(CloseCode.TRY_AGAIN_LATER, `rate limited; retry after ${waitFor(state.tokens, rate.capacity, rate)} ms`);
    }
  }

  /** The topic and id of a publish with an id (parsed only for this), else undefined. */
  private publishNamed(data: RawData): { topic: string; id: string } | undefined {
    const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : undefined;
    if (bytes === undefined || bytes.length > this.maxMessageBytes) return undefined;
    let msg: Fields;
    try {
      msg = parse(bytes);
    } catch {
      return undefined;
    }
    const { type, topic, id } = msg;
    if (type !== 'publish' || typeof topic !== 'string' || !isPublishId(id)) return undefined;
    return { topic: topic.slice(0, MAX_TOPIC_LENGTH), id };
  }

  private handle(ws: WebSocket, state: ConnectionState, msg: Fields): void {
    const type = msg.type;
    if (typeof type !== 'string') throw new ClientError('bad_message', 'a message needs a string "type"');
    switch (type) {
      case 'subscribe':
        this.subscribe(ws, state, msg);
        return;
      case 'unsubscribe': {
        const topic = this.topicOf(msg);
        ws.unsubscribe(CHANNEL_TOPIC_PREFIX + topic);
        // Idempotent: unsubscribing from a topic one is not subscribed to is not an error.
        sendJson(ws, { type: 'unsubscribed', topic });
        return;
      }
      case 'publish':
        this.publishFrom(ws, state, msg);
        return;
      case 'batch':
        this.batch(ws, state, msg);
        return;
      case 'hello': {
        const problem = nickProblem(msg.nick);
        if (problem !== undefined) throw new ClientError('bad_message', problem);
        state.nick = msg.nick as string;
        state.fromJson = undefined;
        sendJson(ws, { type: 'welcome', id: this.senderOf(state).id, nick: state.nick });
        return;
      }
      case 'ping': {
        const id = msg.id;
        if (id === undefined || id === null) sendJson(ws, { type: 'pong' });
        else if (typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)))
          sendJson(ws, { type: 'pong', id });
        else throw new ClientError('bad_message', 'ping "id" must be a string or a number');
        return;
      }
      default:
        throw new ClientError('unknown_type', `unknown message type ${JSON.stringify(type.slice(0, 64))}`);
    }
  }

  /** The message's topic, checked: a name this client may use. */
  private topicOf(msg: Fields): string {
    const topic = msg.topic;
    if (typeof topic !== 'string' || topic.length === 0)
      throw new ClientError('bad_message', 'a non-empty string "topic" is required');
    if (!this.topics.has(topic)) {
      if (!this.allowUnknownTopics)
        throw new ClientError(
          'unknown_topic',
          `no topic ${JSON.stringify(topic.slice(0, 64))}`,
          topic.slice(0, MAX_TOPIC_LENGTH),
        );
      if (topic.length > MAX_TOPIC_LENGTH)
        throw new ClientError('bad_message', `topic names are at most ${MAX_TOPIC_LENGTH} characters`);
    }
    return topic;
  }

  private subscribe(ws: WebSocket, state: ConnectionState, msg: Fields): void {
    const topic = this.topicOf(msg);
    const since = msg.since ?? undefined;
    const epoch = msg.epoch ?? undefined;
    if ((since === undefined) !== (epoch === undefined)) {
      throw new ClientError('bad_message', '"since" and "epoch" go together (both or neither)', topic);
    }
    if (since !== undefined && !(typeof since === 'number' && Number.isSafeInteger(since) && since >= 0)) {
      throw new ClientError('bad_message', '"since" must be a non-negative integer', topic);
    }
    if (epoch !== undefined && typeof epoch !== 'string')
      throw new ClientError('bad_message', '"epoch" must be a string', topic);
    // A repeated subscribe is answered like a first one (`subscribed`, then what it asks to
    // recover); the subscription itself stays as it is.
    this.hub.subscribeRecovering(
      ws,
      CHANNEL_TOPIC_PREFIX + topic,
      since !== undefined && epoch !== undefined ? { seq: since, epoch } : undefined,
      (result) => this.answerSubscribe(ws, state, topic, result),
    );
  }

  /**
   * Answer a subscribe with its recovery; returns whether the subscription goes ahead.
   *
   * No gap and no duplicate between recovery and live delivery: the Hub subscribes the
   * connection only after this answer and the replay were written, and every message with a
   * seq after the recovery's reaches it live, after them (with the in-memory broker nothing
   * can be published in between: it is one synchronous call; with an asynchronous one the
   * Hub holds what arrives meanwhile and sends it after the replay). All writes to one socket
   * go out in call order.
   */
  private answerSubscribe(ws: WebSocket, state: ConnectionState, topic: string, result: Recovery | Error): boolean {
    if (ws.readyState !== ws.OPEN) return false;
    if (result instanceof Error) {
      this.fail(
        ws,
        state,
        new ClientError(
          'unavailable',
          'the server cannot reach its broker now; subscribe again later',
          topic,
          UNAVAILABLE_RETRY_MS,
        ),
      );
      return false;
    }
    let recovery = result;
    if (recovery.messages.length > 0) {
      try {
        recovery = this.chargeRecovery(state, recovery, topic);
      } catch (err) {
        if (!(err instanceof ClientError)) throw err;
        this.fail(ws, state, err);
        return false;
      }
    }
    const droppedBefore = ws.droppedMessages;
    sendJson(ws, {
      type: 'subscribed',
      topic,
      epoch: recovery.epoch,
      seq: recovery.seq,
      recovered: recovery.recovered,
    });
    // History holds the envelopes as published: replayed as they are, not encoded again.
    for (const entry of recovery.messages) ws.send(entry.payload, { binary: entry.binary });
    if (ws.droppedMessages !== droppedBefore) {
      // The slow-consumer policy skipped part of the answer: a recovery with a hole would be a
      // silent gap, so the client is told to come back later instead (1013).
      ws.close(1013, 'recovery did not fit the send buffer');
      return false;
    }
    return true;
  }

  /**
   * The recovery the budget allows: all of it (paid for), `recovered: false` when it is bigger
   * than the whole budget (it would never fit: the client reloads instead), or a
   * `recovery_limited` refusal when it fits the budget but not what is left of it now.
   */
  private chargeRecovery(state: ConnectionState, recovery: Recovery, topic: string): Recovery {
    const budget = this.recoveryBudget;
    if (budget === false) return recovery;
    let bytes = 0;
    for (const entry of recovery.messages) bytes += entry.payload.length;
    if (bytes > budget.capacity) return { epoch: recovery.epoch, seq: recovery.seq, recovered: false, messages: [] };
    const now = Date.now();
    state.recoveryBytes = refilled(state.recoveryBytes, state.recoveryRefilledAt, now, budget);
    state.recoveryRefilledAt = now;
    if (state.recoveryBytes < bytes) {
      const retryAfter = waitFor(state.recoveryBytes, bytes, budget);
      throw new ClientError(
        'recovery_limited',
        `this recovery (${bytes} bytes) does not fit the recovery budget now; subscribe again in ${retryAfter} ms`,
        topic,
        retryAfter,
      );
    }
    state.recoveryBytes -= bytes;
    return recovery;
  }

  /**
   * A client's publish, checked (topic, permission, identity, data) and made into its
   * envelope; throws the ClientError that refuses it. Its topic is then `msg.topic`.
   */
  private preparePublish(ws: WebSocket, state: ConnectionState, msg: Fields): OutgoingMessage {
    const topic = this.topicOf(msg);
    if (!('data' in msg)) throw new ClientError('bad_message', 'publish needs "data"', topic);
    const config = this.topics.get(topic);
    const allowed = this.allowPublish ? this.allowPublish(ws, topic) === true : (config?.publish ?? false);
    if (!allowed)
      throw new ClientError('forbidden', `publishing to ${JSON.stringify(topic.slice(0, 64))} is not allowed`, topic);
    for (const key of SENDER_KEYS) {
      if (key in msg)
        throw new ClientError(
          'identity',
          `a publish cannot carry "${key}": the server stamps who sent it (as "from")`,
          topic,
        );
    }
    const data = msg.data;
    if (config?.identityFields !== undefined && typeof data === 'object' && data !== null && !Array.isArray(data)) {
      for (const key of config.identityFields) {
        if (Object.hasOwn(data, key))
          throw new ClientError(
            'identity',
            `"data" cannot carry "${key}" on this topic: the server stamps who sent it (as "from")`,
            topic,
          );
      }
    }
    let dataJson: string;
    try {
      dataJson = stringify(data);
    } catch {
      // Only nesting too deep for JSON.stringify's stack gets here (the data came from JSON.parse).
      throw new ClientError('bad_message', '"data" is nested too deeply', topic);
    }
    // To every subscriber, the sender included: it sees its message with its seq.
    return this.envelope(topic, config?.json ?? JSON.stringify(topic), dataJson, this.fromJsonOf(state));
  }

  private publishFrom(ws: WebSocket, state: ConnectionState, msg: Fields): void {
    const id = msg.id ?? undefined;
    if (id !== undefined && !isPublishId(id)) throw badPublishId();
    let message: OutgoingMessage;
    try {
      message = this.preparePublish(ws, state, msg);
    } catch (err) {
      if (err instanceof ClientError) err.id = id;
      throw err;
    }
    const topic = msg.topic as string;
    if (id === undefined) {
      // No id, no answer: the path every publish took before acknowledgements, unchanged.
      if (this.hub.synchronous) {
        this.hub.publishMessage(message);
        return;
      }
      // A broker that cannot take it (Redis away, its backlog full): the sender is told it was
      // not published, never left to believe it was.
      this.hub.publishMessageAsync(message).catch(() => {
        if (ws.readyState === ws.OPEN) this.fail(ws, state, notPublished(topic));
      });
      return;
    }
    if (this.dedup !== false) message.dedup = { id, ttlMs: this.dedup.ttlMs, size: this.dedup.size };
    if (this.hub.synchronous) {
      // Numbered and delivered in this call (to the sender too, if subscribed: its `message`
      // comes before the ack), so the ack keeps its place among the connection's answers.
      sendJson(ws, ack(id, topic, this.hub.publishMessageSync(message)));
      return;
    }
    this.publishOnce(topic, id, message).then(
      (result) => {
        if (ws.readyState === ws.OPEN) sendJson(ws, ack(id, topic, result));
      },
      () => {
        if (ws.readyState !== ws.OPEN) return;
        const err = notPublished(topic);
        err.id = id;
        this.fail(ws, state, err);
      },
    );
  }

  /**
   * Publish with an id through an asynchronous broker: a repeat of a publish still waiting for
   * the broker (topic and id) is not sent again but answered with the same result when it comes
   * (`duplicate: true`), or the same error. Once answered, the broker's own memory of ids
   * answers repeats.
   */
  private publishOnce(topic: string, id: string, message: OutgoingMessage): Promise<PublishResult> {
    if (this.dedup === false) return this.hub.publishMessageAsync(message);
    const key = `${topic.length}:${topic}${id}`;
    const first = this.inflight.get(key);
    if (first !== undefined) return first.then(({ epoch, seq }) => ({ epoch, seq, duplicate: true }));
    const pending = this.hub.publishMessageAsync(message);
    this.inflight.set(key, pending);
    const forget = (): void => {
      this.inflight.delete(key);
    };
    pending.then(forget, forget);
    return pending;
  }

  /**
   * `batch`: several publishes with ids, published in order, answered by one `acks` with an
   * entry each (its ack, or why it was refused). A malformed batch is one `bad_message` and
   * nothing in it is published; a refused entry counts toward `maxErrors` as a refused
   * publish does, and does not stop the others.
   */
  private batch(ws: WebSocket, state: ConnectionState, msg: Fields): void {
    const entries = msg.publishes;
    if (!Array.isArray(entries) || entries.length === 0 || entries.length > this.maxBatch)
      throw new ClientError('bad_message', `"publishes" must be an array of 1 to ${this.maxBatch} publishes`);
    for (const entry of entries as unknown[]) {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry))
        throw new ClientError('bad_message', 'each of "publishes" is an object with "topic", "data" and "id"');
      const { topic, id } = entry as Fields;
      if (typeof topic !== 'string' || topic.length === 0 || !('data' in entry))
        throw new ClientError('bad_message', 'each of "publishes" needs a non-empty string "topic" and "data"');
      if (!isPublishId(id)) throw badPublishId();
    }
    const answers: Array<ChannelAckEntry | Promise<ChannelAckEntry>> = [];
    const synchronous = this.hub.synchronous;
    for (const entry of entries as Fields[]) {
      const id = entry.id as string;
      const topic = entry.topic as string;
      let message: OutgoingMessage;
      try {
        message = this.preparePublish(ws, state, entry);
      } catch (err) {
        const refusal =
          err instanceof ClientError ? err : new ClientError('internal', 'the server could not handle this publish');
        if (refusal !== err) process.emitWarning(err instanceof Error ? err : String(err));
        if (counts(refusal.code)) state.errors++;
        answers.push(refused(id, topic.slice(0, MAX_TOPIC_LENGTH), refusal));
        continue;
      }
      if (this.dedup !== false) message.dedup = { id, ttlMs: this.dedup.ttlMs, size: this.dedup.size };
      if (synchronous) {
        answers.push(ackEntry(id, topic, this.hub.publishMessageSync(message)));
      } else {
        answers.push(
          this.publishOnce(topic, id, message).then(
            (result) => ackEntry(id, topic, result),
            () => refused(id, topic, notPublished(topic)),
          ),
        );
      }
    }
    const answer = (acks: ChannelAckEntry[]): void => {
      if (ws.readyState !== ws.OPEN) return;
      sendJson(ws, { type: 'acks', acks });
      if (state.errors >= this.maxErrors) ws.close(CloseCode.POLICY_VIOLATION, 'too many errors');
    };
    if (synchronous) answer(answers as ChannelAckEntry[]);
    else void Promise.all(answers.map(async (entry) => entry)).then(answer);
  }

  private fail(ws: WebSocket, state: ConnectionState, err: ClientError): void {
    const error: ChannelError = { type: 'error', code: err.code, message: err.message };
    if (err.topic !== undefined) error.topic = err.topic;
    if (err.id !== undefined) error.id = err.id;
    if (err.retryAfter !== undefined) error.retryAfter = err.retryAfter;
    // Waiting for the recovery budget or for the broker is no misbehaviour: not counted.
    if (counts(err.code)) state.errors++;
    sendJson(ws, error);
    if (state.errors >= this.maxErrors) ws.close(CloseCode.POLICY_VIOLATION, 'too many errors');
  }
}

function checkTopicName(name: string): void {
  if (name.length === 0 || name.length > MAX_TOPIC_LENGTH)
    throw new RangeError(`topic names are 1 to ${MAX_TOPIC_LENGTH} characters: ${JSON.stringify(name)}`);
}
