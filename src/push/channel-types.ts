/**
 * The channel protocol's public shapes (docs/protocol.md): the server's options, the messages
 * a client receives, and the stable error codes. The behaviour is in channel.ts.
 */
import type { WebSocket } from '../node/connection.js';
import type { HistoryOptions } from './history.js';
import type { ChannelSender } from './identity.js';

export type { ChannelSender } from './identity.js';

/**
 * The `code` strings of the protocol's `error` messages: wire format, so lower case and never
 * renamed (they are not JS error codes; see docs/errors.md, which lists them with the others).
 */
export const CHANNEL_ERROR_CODES = {
  bad_json: { meaning: 'the text is not valid JSON' },
  bad_message: { meaning: 'not a JSON object, or a field missing or of the wrong type' },
  unknown_type: { meaning: "`type` is not one of the protocol's" },
  unknown_topic: { meaning: 'the topic is not configured (and allowUnknownTopics is off)' },
  forbidden: { meaning: 'publishing to this topic is not allowed' },
  identity: { meaning: 'a publish names its sender (from, nick), which only the server may do' },
  too_big: { meaning: 'the message is over maxMessageBytes' },
  rate_limited: {
    meaning: 'too many messages in the rate-limit window; the message was dropped: send it again after retryAfter',
  },
  recovery_limited: { meaning: 'the recovery asked for does not fit the recovery budget now; see retryAfter' },
  unavailable: {
    meaning:
      'the server cannot reach its broker (Redis) now: the subscribe or publish was not done; send it again after retryAfter',
  },
  binary: { meaning: 'a binary frame: the protocol is JSON text only' },
  internal: { meaning: 'the server failed while handling the message (a bug; see the warning)' },
} as const satisfies Record<string, { readonly meaning: string }>;

/** Stable `code` strings of the protocol's `error` messages. */
export type ChannelErrorCode = keyof typeof CHANNEL_ERROR_CODES;

/** One topic of a channel. */
export interface ChannelTopicOptions {
  /** History kept for recovery, e.g. `{ size: 100 }`; omitted: the server's `history` option. */
  history?: HistoryOptions | false;
  /** Whether clients may publish here when no `allowPublish` is given (default true). */
  publish?: boolean;
  /**
   * Keys that an object `data` published by a client may not have here, because they would
   * claim who sent it (default none). Such a publish is refused with `identity`, so readers of
   * this topic find a sender in one place only: the `from` the server stamps. `duet serve`
   * uses `['id', 'nick', 'from']` on `chat` and `presence`.
   */
  identityFields?: readonly string[];
}

/** Per-connection message budget: at most `messages` per `perMs`, with bursts up to `messages`. */
export interface ChannelRateLimit {
  /** Messages allowed per window (and the largest burst). */
  messages: number;
  /** The window, in milliseconds. */
  perMs: number;
}

/**
 * Per-connection byte budget for recovery replies: a connection may be sent `bytes` of
 * replayed messages at once, and regains `bytes` every `perMs`.
 */
export interface ChannelRecoveryBudget {
  /** Bytes of replayed messages at once (and regained per `perMs`). */
  bytes: number;
  /** Milliseconds to regain `bytes`. */
  perMs: number;
}

/**
 * How long publish ids are remembered (the channel protocol's `publish` with `id`): a repeat
 * of a remembered (topic, id) is answered with the first publish's `ack` and `duplicate: true`
 * instead of being published again. The broker keeps them with the topic (in memory, in Redis,
 * or in the cluster's primary), so a repeat that reaches another process is caught too.
 */
export interface ChannelDedupOptions {
  /**
   * Milliseconds an id is remembered at least (default 120000: longer than a client takes
   * to notice a dead connection and reconnect, with margin), unless `size` newer ids of the
   * same topic push it out first.
   */
  ttlMs?: number;
  /**
   * Most ids remembered per topic (default 10000: two minutes of 80 publishes a second on
   * one topic), oldest first out: what bounds memory, whatever the publish rate.
   */
  size?: number;
}

/** Options of `new Channel(server, options)`: the topics and the per-connection limits. */
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
  /**
   * Default `{ messages: 20, perMs: 1000 }`: generous for people, stops floods. `false`: no
   * limit. A refused message is answered `rate_limited` with `retryAfter` (not an error
   * toward `maxErrors`); a connection refused more than `messages` times within one `perMs`
   * (sending at over about twice the rate) is closed with 1013 and a retry hint.
   */
  rateLimit?: ChannelRateLimit | false;
  /** Largest message accepted, in bytes (default 16 KiB: chat-sized; bigger data belongs elsewhere). */
  maxMessageBytes?: number;
  /**
   * Errors one connection may cause before it is closed with 1008 (default 5); `rate_limited`,
   * `recovery_limited` and `unavailable` do not count.
   */
  maxErrors?: number;
  /**
   * Bytes of replayed history one connection may be sent (default `{ bytes: 32768, perMs:
   * 30000 }`). A recovery reply costs its messages' bytes. One bigger than `bytes` is never
   * sent: the subscribe is answered `recovered: false`. One that does not fit what is left
   * now is refused with `recovery_limited` and `retryAfter`. `false`: no budget.
   */
  recoveryBudget?: ChannelRecoveryBudget | false;
  /**
   * Publish ids remembered per topic, so that a client resending an unacknowledged publish
   * (after a reconnect) does not publish it twice (default `{ ttlMs: 120000, size: 10000 }`).
   * `false`: publishes with an id are acknowledged but never deduplicated (and the `limits`
   * message says `dedupMs: 0`, so clients do not resend).
   */
  dedup?: ChannelDedupOptions | false;
  /** Most publishes in one `batch` message (default 50). */
  maxBatch?: number;
}

// Message shapes, as the client receives them (docs/protocol.md).
/** A message published to a topic the connection follows. */
export interface ChannelMessage {
  type: 'message';
  topic: string;
  seq: number;
  /** Who published it, stamped by the server; absent on messages the server itself published. */
  from?: ChannelSender;
  data: unknown;
}
/** The answer to `hello`: the connection's identity, as stamped on what it publishes. */
export interface ChannelWelcome {
  type: 'welcome';
  id: string;
  nick: string;
}
/** The answer to `subscribe`: the topic's position and whether what was missed follows. */
export interface ChannelSubscribed {
  type: 'subscribed';
  topic: string;
  epoch: string;
  seq: number;
  recovered: boolean;
}
/** The answer to `unsubscribe`. */
export interface ChannelUnsubscribed {
  type: 'unsubscribed';
  topic: string;
}
/** The answer to `ping`, with its `id`. */
export interface ChannelPong {
  type: 'pong';
  id?: string | number;
}
/** A message the server refused, and why (`code`: CHANNEL_ERROR_CODES). */
export interface ChannelError {
  type: 'error';
  code: ChannelErrorCode;
  message: string;
  topic?: string;
  /** The `id` of the refused publish, when it had one. */
  id?: string;
  /**
   * `rate_limited`: milliseconds until the connection may send one more message;
   * `recovery_limited`: until the same subscribe fits the budget; `unavailable`: until it is
   * worth trying again.
   */
  retryAfter?: number;
}
/** The first message on every channel connection: the limits the server holds it to. */
export interface ChannelLimits {
  type: 'limits';
  /** The connection's rate limit (every message costs one, a `batch` too); null: none. */
  rate: { messages: number; perMs: number } | null;
  /** The largest message accepted, a whole `batch` included. */
  maxMessageBytes: number;
  /** Most publishes in one `batch`. */
  maxBatch: number;
  /** Milliseconds a publish id is remembered at least; 0: publish ids are not deduplicated. */
  dedupMs: number;
  /** Names the memory holding publish ids (absent with `dedupMs: 0`); see docs/protocol.md. */
  dedupScope?: string;
}
/** The answer to a `publish` with an `id`: published as `seq` (or, `duplicate`, earlier). */
export interface ChannelAck {
  type: 'ack';
  id: string;
  topic: string;
  seq: number;
  /** The id was remembered: this is the first publish's ack, and nothing was published again. */
  duplicate?: true;
}
/** One entry of an `acks` answer: the entry's ack, or why it was refused. */
export type ChannelAckEntry =
  | { id: string; topic: string; seq: number; duplicate?: true }
  | { id: string; topic: string; code: ChannelErrorCode; message: string; retryAfter?: number };
/** The answer to a `batch`: one entry per publish, in the batch's order. */
export interface ChannelAcks {
  type: 'acks';
  acks: ChannelAckEntry[];
}
/** Every message the server sends on a channel connection. */
export type ChannelServerMessage =
  | ChannelMessage
  | ChannelWelcome
  | ChannelSubscribed
  | ChannelUnsubscribed
  | ChannelPong
  | ChannelError
  | ChannelLimits
  | ChannelAck
  | ChannelAcks;
