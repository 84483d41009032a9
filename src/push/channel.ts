/**
 * The JSON channel protocol (docs/protocol.md): clients subscribe to named topics, publish to
 * them, recover what they missed after a reconnect (epoch + seq) and ping at the application
 * level, all as JSON text messages with a `type` field. A reusable handler for any duet
 * WebSocketServer: `wss.on('connection', (ws) => channel.accept(ws))`.
 *
 * Each channel message is published through the Hub with a payload function, so its JSON
 * envelope is built once per publish (with the Hub's seq), framed once for every subscriber,
 * and kept as those same bytes in the topic's history, from which recovery replays it.
 */
import type { RawData, WebSocket } from '../node/connection.js';
import { CloseCode } from '../protocol/close-codes.js';
import type { HistoryOptions } from './history.js';
import type { Hub } from './hub.js';

/** Stable `code` strings of the protocol's `error` messages. */
export type ChannelErrorCode =
  | 'bad_json' // not valid JSON
  | 'bad_message' // not an object, or a field missing or of the wrong type
  | 'unknown_type' // `type` is not one of the protocol's
  | 'unknown_topic' // the topic is not configured (and allowUnknownTopics is off)
  | 'forbidden' // publishing to this topic is not allowed
  | 'too_big' // the message is over maxMessageBytes
  | 'rate_limited' // too many messages in the rate-limit window
  | 'binary' // a binary frame: the protocol is JSON text only
  | 'internal'; // the server failed while handling the message (a bug; see the warning)

/** One topic of a channel. */
export interface ChannelTopicOptions {
  /** History kept for recovery, e.g. `{ size: 100 }`; omitted: the server's `history` option. */
  history?: HistoryOptions | false;
  /** Whether clients may publish here when no `allowPublish` is given (default true). */
  publish?: boolean;
}

/** Per-connection message budget: at most `messages` per `perMs`, with bursts up to `messages`. */
export interface ChannelRateLimit {
  messages: number;
  perMs: number;
}

export interface ChannelOptions {
  /** The topics clients may use, by name. */
  topics?: Record<string, ChannelTopicOptions>;
  /**
   * Let clients use topics not in `topics` (default false). They get the server's default
   * history; names are at most MAX_TOPIC_LENGTH characters.
   */
  allowUnknownTopics?: boolean;
  /**
   * Decides whether `ws` may publish to `topic` (a topic it may use). Default: configured
   * topics allow it unless their `publish` is false; unknown topics do not.
   */
  allowPublish?: (ws: WebSocket, topic: string) => boolean;
  /** Default `{ messages: 20, perMs: 1000 }`: generous for people, stops floods. `false`: no limit. */
  rateLimit?: ChannelRateLimit | false;
  /** Largest message accepted, in bytes (default 16 KiB: chat-sized; bigger data belongs elsewhere). */
  maxMessageBytes?: number;
  /** Errors one connection may cause before it is closed with 1008 (default 5). */
  maxErrors?: number;
}

// Message shapes, as the client receives them.
export interface ChannelMessage {
  type: 'message';
  topic: string;
  seq: number;
  data: unknown;
}
export interface ChannelSubscribed {
  type: 'subscribed';
  topic: string;
  epoch: string;
  seq: number;
  recovered: boolean;
}
export interface ChannelUnsubscribed {
  type: 'unsubscribed';
  topic: string;
}
export interface ChannelPong {
  type: 'pong';
  id?: string | number;
}
export interface ChannelError {
  type: 'error';
  code: ChannelErrorCode;
  message: string;
  topic?: string;
}
export type ChannelServerMessage = ChannelMessage | ChannelSubscribed | ChannelUnsubscribed | ChannelPong | ChannelError;

/** Longest topic name, in UTF-16 code units. */
export const MAX_TOPIC_LENGTH = 256;
/** Channel topics live under this prefix in the Hub, apart from raw `ws.subscribe()` topics. */
export const CHANNEL_TOPIC_PREFIX = 'channel:';

// Defaults, each stated once (see the option comments above for why).
const DEFAULT_RATE_LIMIT: ChannelRateLimit = { messages: 20, perMs: 1000 };
const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024;
const DEFAULT_MAX_ERRORS = 5;

/** What the channel remembers per connection: one small object, no timers or closures. */
interface ConnectionState {
  /** Token bucket: messages that may be sent now, refilled from `refilledAt` on each message. */
  tokens: number;
  refilledAt: number;
  errors: number;
}

interface TopicConfig {
  /** The topic name as a JSON string, ready to splice into envelopes. */
  json: string;
  publish: boolean;
}

type Fields = Record<string, unknown>;

class ClientError extends Error {
  constructor(
    readonly code: ChannelErrorCode,
    message: string,
    readonly topic?: string,
  ) {
    super(message);
  }
}

export class Channel {
  private readonly hub: Hub;
  private readonly topics = new Map<string, TopicConfig>();
  private readonly allowUnknownTopics: boolean;
  private readonly allowPublish: ((ws: WebSocket, topic: string) => boolean) | undefined;
  private readonly rate: ChannelRateLimit | false;
  private readonly maxMessageBytes: number;
  private readonly maxErrors: number;
  private readonly connections = new WeakMap<WebSocket, ConnectionState>();
  /** One listener for every connection (it finds its connection as `this`). */
  private readonly listener: (this: WebSocket, data: RawData, isBinary: boolean) => void;

  constructor(server: { readonly hub: Hub }, options: ChannelOptions = {}) {
    this.hub = server.hub;
    for (const [name, topic] of Object.entries(options.topics ?? {})) {
      checkTopicName(name);
      if (topic.history !== undefined) this.hub.configureTopic(CHANNEL_TOPIC_PREFIX + name, { history: topic.history });
      this.topics.set(name, { json: JSON.stringify(name), publish: topic.publish ?? true });
    }
    this.allowUnknownTopics = options.allowUnknownTopics ?? false;
    this.allowPublish = options.allowPublish;
    const rate = options.rateLimit ?? DEFAULT_RATE_LIMIT;
    if (rate !== false && !(rate.messages >= 1 && rate.perMs > 0)) throw new RangeError('rateLimit needs messages >= 1 and perMs > 0');
    this.rate = rate;
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.maxErrors = options.maxErrors ?? DEFAULT_MAX_ERRORS;
    if (!(this.maxMessageBytes > 0)) throw new RangeError('maxMessageBytes must be positive');
    if (!(this.maxErrors >= 1)) throw new RangeError('maxErrors must be at least 1');
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
    if (ws.host?.pubsub !== this.hub) throw new TypeError("Channel.accept() takes connections of the server the channel was created with");
    if (this.connections.has(ws)) return;
    const burst = this.rate === false ? 0 : this.rate.messages;
    this.connections.set(ws, { tokens: burst, refilledAt: Date.now(), errors: 0 });
    // The channel's replies (recovery replays above all) are push traffic: the server's
    // slow-consumer policy applies to them as to publishes.
    ws.slowConsumerSends = true;
    ws.on('message', this.listener);
  }

  /**
   * Send `data` (any JSON value) to every subscriber of `topic` as a `message` with the
   * topic's next seq. Returns the number of connections it was written to. Throws a
   * TypeError when `data` cannot be turned into JSON.
   */
  publish(topic: string, data: unknown): number {
    return this.publishJson(topic, this.topics.get(topic)?.json ?? JSON.stringify(topic), stringify(data));
  }

  /** The topic's epoch and last seq: hand it out with a state snapshot, so clients subscribe `since` it. */
  position(topic: string): { epoch: string; seq: number } {
    return this.hub.position(CHANNEL_TOPIC_PREFIX + topic);
  }

  /** Connections subscribed to `topic` through the channel. */
  subscriberCount(topic: string): number {
    return this.hub.subscriberCount(CHANNEL_TOPIC_PREFIX + topic);
  }

  private publishJson(topic: string, topicJson: string, dataJson: string): number {
    const head = `{"type":"message","topic":${topicJson},"seq":`;
    const tail = `,"data":${dataJson}}`;
    return this.hub.publish(CHANNEL_TOPIC_PREFIX + topic, (seq) => head + seq + tail);
  }

  // ---- receiving -----------------------------------------------------------------------------

  private receive(ws: WebSocket, data: RawData, isBinary: boolean): void {
    // Messages that arrive while closing (the peer has not seen our Close yet) are ignored.
    if (ws.readyState !== ws.OPEN) return;
    const state = this.connections.get(ws);
    if (state === undefined) return;
    try {
      if (!this.takeToken(state)) throw new ClientError('rate_limited', 'too many messages; slow down');
      if (isBinary) throw new ClientError('binary', 'binary messages are not part of the protocol; send JSON text');
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : undefined;
      if (bytes === undefined) throw new ClientError('binary', 'text messages only');
      if (bytes.length > this.maxMessageBytes) throw new ClientError('too_big', `messages are limited to ${this.maxMessageBytes} bytes`);
      this.handle(ws, parse(bytes));
    } catch (err) {
      if (err instanceof ClientError) this.fail(ws, state, err.code, err.message, err.topic);
      else {
        // A bug here or an application callback threw: that client gets an error, the rest carry on.
        process.emitWarning(err instanceof Error ? err : String(err));
        this.fail(ws, state, 'internal', 'the server could not handle this message');
      }
    }
  }

  /** Token bucket from timestamps: no timer per connection. */
  private takeToken(state: ConnectionState): boolean {
    const rate = this.rate;
    if (rate === false) return true;
    const now = Date.now();
    const elapsed = now - state.refilledAt;
    state.refilledAt = now;
    // A clock that went backwards refills nothing.
    if (elapsed > 0) state.tokens = Math.min(rate.messages, state.tokens + (elapsed * rate.messages) / rate.perMs);
    if (state.tokens < 1) return false;
    state.tokens--;
    return true;
  }

  private handle(ws: WebSocket, msg: Fields): void {
    const type = msg.type;
    if (typeof type !== 'string') throw new ClientError('bad_message', 'a message needs a string "type"');
    switch (type) {
      case 'subscribe':
        this.subscribe(ws, msg);
        return;
      case 'unsubscribe': {
        const topic = this.topicOf(msg);
        ws.unsubscribe(CHANNEL_TOPIC_PREFIX + topic);
        // Idempotent: unsubscribing from a topic one is not subscribed to is not an error.
        sendJson(ws, { type: 'unsubscribed', topic });
        return;
      }
      case 'publish':
        this.publishFrom(ws, msg);
        return;
      case 'ping': {
        const id = msg.id;
        if (id === undefined || id === null) sendJson(ws, { type: 'pong' });
        else if (typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id))) sendJson(ws, { type: 'pong', id });
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
    if (typeof topic !== 'string' || topic.length === 0) throw new ClientError('bad_message', 'a non-empty string "topic" is required');
    if (!this.topics.has(topic)) {
      if (!this.allowUnknownTopics) throw new ClientError('unknown_topic', `no topic ${JSON.stringify(topic.slice(0, 64))}`, topic.slice(0, MAX_TOPIC_LENGTH));
      if (topic.length > MAX_TOPIC_LENGTH) throw new ClientError('bad_message', `topic names are at most ${MAX_TOPIC_LENGTH} characters`);
    }
    return topic;
  }

  private subscribe(ws: WebSocket, msg: Fields): void {
    const topic = this.topicOf(msg);
    const since = msg.since ?? undefined;
    const epoch = msg.epoch ?? undefined;
    if ((since === undefined) !== (epoch === undefined)) {
      throw new ClientError('bad_message', '"since" and "epoch" go together (both or neither)', topic);
    }
    if (since !== undefined && !(typeof since === 'number' && Number.isSafeInteger(since) && since >= 0)) {
      throw new ClientError('bad_message', '"since" must be a non-negative integer', topic);
    }
    if (epoch !== undefined && typeof epoch !== 'string') throw new ClientError('bad_message', '"epoch" must be a string', topic);
    const hubTopic = CHANNEL_TOPIC_PREFIX + topic;
    // A repeated subscribe is answered like a first one (`subscribed`, then what it asks to
    // recover); the subscription itself stays as it is.
    const recovery =
      since !== undefined && epoch !== undefined ? this.hub.recover(hubTopic, since, epoch) : { ...this.hub.position(hubTopic), recovered: false, messages: [] };
    // No gap and no duplicate between recovery and live delivery: `recover` took the
    // position (epoch, seq) and the history up to seq, and from here to `ws.subscribe` the
    // code is synchronous, so no publish can run in between (the Hub and the memory broker
    // deliver in the publisher's call stack, one process, one thread). Every publish after
    // this function has seq > recovery.seq and reaches the client live, after the replay,
    // because all writes to one socket go out in call order.
    const droppedBefore = ws.droppedMessages;
    sendJson(ws, { type: 'subscribed', topic, epoch: recovery.epoch, seq: recovery.seq, recovered: recovery.recovered });
    // History holds the envelopes as published: replayed as they are, not encoded again.
    for (const entry of recovery.messages) ws.send(entry.payload, { binary: entry.binary });
    if (ws.droppedMessages !== droppedBefore) {
      // The slow-consumer policy skipped part of the answer: a recovery with a hole would be a
      // silent gap, so the client is told to come back later instead (1013).
      ws.close(1013, 'recovery did not fit the send buffer');
      return;
    }
    ws.subscribe(hubTopic);
  }

  private publishFrom(ws: WebSocket, msg: Fields): void {
    const topic = this.topicOf(msg);
    if (!('data' in msg)) throw new ClientError('bad_message', 'publish needs "data"', topic);
    const config = this.topics.get(topic);
    const allowed = this.allowPublish ? this.allowPublish(ws, topic) === true : (config?.publish ?? false);
    if (!allowed) throw new ClientError('forbidden', `publishing to ${JSON.stringify(topic.slice(0, 64))} is not allowed`, topic);
    let dataJson: string;
    try {
      dataJson = stringify(msg.data);
    } catch {
      // Only nesting too deep for JSON.stringify's stack gets here (the data came from JSON.parse).
      throw new ClientError('bad_message', '"data" is nested too deeply', topic);
    }
    // To every subscriber, the sender included: it sees its message with its seq.
    this.publishJson(topic, config?.json ?? JSON.stringify(topic), dataJson);
  }

  private fail(ws: WebSocket, state: ConnectionState, code: ChannelErrorCode, message: string, topic?: string): void {
    state.errors++;
    const error: ChannelError = topic === undefined ? { type: 'error', code, message } : { type: 'error', code, message, topic };
    sendJson(ws, error);
    if (state.errors >= this.maxErrors) ws.close(CloseCode.POLICY_VIOLATION, 'too many errors');
  }
}

function checkTopicName(name: string): void {
  if (name.length === 0 || name.length > MAX_TOPIC_LENGTH) throw new RangeError(`topic names are 1 to ${MAX_TOPIC_LENGTH} characters: ${JSON.stringify(name)}`);
}

function parse(bytes: Buffer): Fields {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ClientError('bad_json', 'the message is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ClientError('bad_message', 'a message is a JSON object');
  return value as Fields;
}

function stringify(data: unknown): string {
  const json = JSON.stringify(data);
  if (typeof json !== 'string') throw new TypeError('channel data must be a JSON value (not undefined, a function or a symbol)');
  return json;
}

function sendJson(ws: WebSocket, message: ChannelServerMessage): void {
  ws.send(JSON.stringify(message));
}
