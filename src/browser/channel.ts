/**
 * The client side of duet's channel protocol (docs/protocol.md) on top of one connection at a
 * time: subscribe and unsubscribe requests, resubscribing after a reconnect, and turning the
 * server's messages into deliveries, resets and errors. The connection itself (sockets,
 * reconnects, timers) stays in DuetClient.
 */
import type { DuetClientEvents } from './events.js';
import { readLimits, type ServerLimits } from './limits.js';
import { TopicTracker, type MessageMeta, type MessageSender, type TopicHandler } from './topics.js';
import { DuetError } from './errors.js';
import type { DuetClock, TopicPosition } from './types.js';

/** This client's identity on the server: the answer to its `hello` on the current connection. */
export interface ChannelIdentity {
  id: string;
  nick: string;
}

/** When a `recovery_limited` error carries no usable `retryAfter`. */
const DEFAULT_RECOVERY_RETRY_MS = 1000;

/** What the channel needs from its client. */
export interface ChannelHost {
  /** Whether a message written now goes out on an open connection. */
  isOpen(): boolean;
  write(text: string): void;
  emit<E extends keyof DuetClientEvents>(event: E, payload: DuetClientEvents[E]): void;
  /** `loud`: print it when nobody listens (a handler's bug should not vanish). */
  error(err: unknown, loud?: boolean): void;
  pong(id: unknown): void;
  /** The server refused the ping with this id (its rate limit): an answer all the same. */
  pingAnswered(id: unknown): void;
  /** Topics were added to those waiting for a paced subscribe (see {@link ChannelSession.nextSubscribe}). */
  resume(): void;
  /** The connection's `limits` arrived. */
  limits(limits: ServerLimits): void;
  /** The connection's first message was not `limits`: the server acknowledges no publishes. */
  noLimits(): void;
  /** A publish was acknowledged. */
  ack(id: unknown, seq: unknown): void;
  /** A publish was refused; true when it will be sent again (and the refusal is not reported). */
  refused(id: unknown, code: string, message: string, topic: string | undefined, retryAfter: unknown): boolean;
  /** A message without an id was refused for the rate limit. */
  rateLimited(retryAfter: unknown): void;
  /** For the one timer of deferred recoveries (cleared when the connection ends). */
  readonly clock: DuetClock;
}

export class ChannelSession {
  private readonly topics = new TopicTracker();
  private readonly host: ChannelHost;
  /** Topics whose subscribe waits for the client's paced flush, oldest first. */
  private readonly waitingTopics = new Set<string>();
  /** Topics whose recovery the server refused for now (`recovery_limited`): asked again on retryDeferred(). */
  private readonly deferredTopics = new Set<string>();
  /** Said in `hello` on every connection; undefined: no hello. */
  private nick: string | undefined;
  private me: ChannelIdentity | null = null;
  /** Fires retryDeferred() at the earliest time a `recovery_limited` asked for. */
  private retryTimer: unknown = null;
  private retryAt = 0;
  /** No message has arrived yet on this connection (the first one says whether `limits` come). */
  private first = true;

  constructor(host: ChannelHost) {
    this.host = host;
  }

  subscribe(topic: string, handler: TopicHandler, from?: TopicPosition): () => void {
    if (this.topics.add(topic, handler, from) && this.host.isOpen()) {
      this.waitingTopics.add(topic);
      this.host.resume();
    }
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      if (!this.topics.remove(topic, handler)) return;
      this.waitingTopics.delete(topic);
      this.deferredTopics.delete(topic);
      if (this.host.isOpen()) this.host.write(JSON.stringify({ type: 'unsubscribe', topic }));
    };
  }

  position(topic: string): TopicPosition | undefined {
    return this.topics.position(topic);
  }

  /** The nick to say in `hello`: now if open, and first thing on every connection. */
  setNick(nick: string): void {
    this.nick = nick;
    if (this.host.isOpen()) this.hello();
  }

  /** The server's answer to this connection's `hello`; null before it (and between connections). */
  get identity(): ChannelIdentity | null {
    return this.me;
  }

  /**
   * A connection opened: `hello` goes first (so that everything published afterwards, the
   * queue included, carries the nick), then every topic must be subscribed again, from its
   * position. The subscribes go out through the client's pacer ({@link nextSubscribe}),
   * ahead of its queue, so that many topics do not overrun the server's rate limit either.
   */
  resubscribe(): void {
    this.me = null;
    this.first = true;
    if (this.nick !== undefined) this.hello();
    this.waitingTopics.clear();
    this.deferredTopics.clear();
    this.stopRetry();
    for (const topic of this.topics.names()) this.waitingTopics.add(topic);
  }

  /** Whether a topic waits for its subscribe. */
  get waiting(): boolean {
    return this.waitingTopics.size > 0;
  }

  /** The subscribe of the next waiting topic (now pending), or undefined when none waits. */
  nextSubscribe(): string | undefined {
    for (const topic of this.waitingTopics) {
      this.waitingTopics.delete(topic);
      return JSON.stringify(this.topics.request(topic));
    }
    return undefined;
  }

  /**
   * Every topic's subscribe of this connection was answered with `subscribed`, and none
   * waits: the connection is confirmed (the client's backoff starts over).
   */
  get settled(): boolean {
    return this.waitingTopics.size === 0 && this.deferredTopics.size === 0 && this.topics.pendingNames().length === 0;
  }

  /** The connection ended: answers to pending subscribes will not come. */
  lost(): void {
    this.me = null;
    this.waitingTopics.clear();
    this.deferredTopics.clear();
    this.stopRetry();
    this.topics.unblock();
  }

  private stopRetry(): void {
    if (this.retryTimer === null) return;
    this.host.clock.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  /** The time a `recovery_limited` asked for has passed: subscribe those topics again. */
  private retryDeferred(): void {
    this.retryTimer = null;
    let added = false;
    for (const topic of this.deferredTopics) {
      // Still waiting for its recovery (not unsubscribed, not answered meanwhile).
      if (this.topics.isPending(topic)) {
        this.waitingTopics.add(topic);
        added = true;
      }
    }
    this.deferredTopics.clear();
    if (added) this.host.resume();
  }

  /** A message from the server, as received. */
  receive(data: unknown): void {
    if (typeof data !== 'string') {
      this.host.error(new DuetError('WS_ERR_INVALID_CHANNEL_MESSAGE', 'a binary message on a channel connection'));
      return;
    }
    let msg: unknown;
    try {
      msg = JSON.parse(data);
    } catch {
      this.host.error(new DuetError('WS_ERR_INVALID_CHANNEL_MESSAGE', 'a channel message that is not JSON'));
      return;
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
      this.host.error(new DuetError('WS_ERR_INVALID_CHANNEL_MESSAGE', 'a channel message that is not a JSON object'));
      return;
    }
    const fields = msg as Record<string, unknown>;
    if (this.first) {
      this.first = false;
      if (fields.type !== 'limits') this.host.noLimits();
    }
    this.handle(fields);
    this.host.emit('message', msg);
  }

  private request(topic: string): void {
    this.host.write(JSON.stringify(this.topics.request(topic)));
  }

  private hello(): void {
    this.host.write(JSON.stringify({ type: 'hello', nick: this.nick }));
  }

  private handle(msg: Record<string, unknown>): void {
    const topic = typeof msg.topic === 'string' ? msg.topic : undefined;
    switch (msg.type) {
      case 'pong':
        this.host.pong(msg.id);
        return;
      case 'limits':
        this.host.limits(readLimits(msg));
        return;
      case 'ack':
        this.host.ack(msg.id, msg.seq);
        return;
      case 'acks':
        if (Array.isArray(msg.acks)) for (const entry of msg.acks as unknown[]) this.entry(entry);
        return;
      case 'subscribed':
        if (topic !== undefined && typeof msg.epoch === 'string' && typeof msg.seq === 'number') {
          this.waitingTopics.delete(topic); // answered: a retry waiting for it is not needed
          const reset = this.topics.subscribed(topic, msg.epoch, msg.seq, msg.recovered === true);
          if (reset) this.host.emit('reset', reset);
        }
        return;
      case 'message':
        if (topic !== undefined && typeof msg.seq === 'number')
          this.message(topic, msg.seq, msg.data, sender(msg.from));
        return;
      case 'welcome':
        if (typeof msg.id === 'string' && typeof msg.nick === 'string') this.me = { id: msg.id, nick: msg.nick };
        return;
      case 'error': {
        const code = typeof msg.code === 'string' ? msg.code : 'WS_ERR_INVALID_CHANNEL_MESSAGE';
        const text = typeof msg.message === 'string' ? msg.message : code;
        if (typeof msg.id === 'string') {
          // About a publish of ours: sent again (rate limit, broker away) or refused for good.
          if (this.host.refused(msg.id, code, text, topic, msg.retryAfter)) return;
        } else if (code === 'rate_limited') {
          if (msg.id !== undefined) this.host.pingAnswered(msg.id);
          this.host.rateLimited(msg.retryAfter);
          this.retryPending();
        }
        // Both name a time to come back: the recovery budget, or the server's broker (Redis)
        // being away. A pending subscribe goes out again then.
        else if ((code === 'recovery_limited' || code === 'unavailable') && topic !== undefined)
          this.defer(topic, msg.retryAfter);
        else if (topic !== undefined) {
          // A refused subscribe must not block the next one (nor be retried).
          this.waitingTopics.delete(topic);
          this.topics.unblock(topic);
        }
        this.host.error(new DuetError(code, text, topic));
        return;
      }
    }
  }

  /** One entry of an `acks` message: an ack, or a refusal with a code. */
  private entry(entry: unknown): void {
    if (typeof entry !== 'object' || entry === null) return;
    const { id, seq, code, message, topic, retryAfter } = entry as Record<string, unknown>;
    if (typeof code !== 'string') {
      this.host.ack(id, seq);
      return;
    }
    const name = typeof topic === 'string' ? topic : undefined;
    const text = typeof message === 'string' ? message : code;
    if (!this.host.refused(id, code, text, name, retryAfter)) this.host.error(new DuetError(code, text, name));
  }

  /**
   * A message was refused by the rate limit, and the error does not say which. A subscribe
   * still unanswered may be it: send it again through the pacer. Until then the topic
   * stays pending (its messages are ignored and come again with the replay): unblocking it
   * at once made every later message look like a gap, each gap sent a subscribe, each was
   * refused too, and the errors ended in a close with 1008.
   */
  private retryPending(): void {
    let added = false;
    for (const topic of this.topics.pendingNames()) {
      if (this.deferredTopics.has(topic)) continue; // its time to come back is known
      this.waitingTopics.add(topic);
      added = true;
    }
    if (added) this.host.resume();
  }

  /**
   * The server would not replay what this topic missed yet (its recovery budget for this
   * connection is spent): the same subscribe goes out again after `retryAfter` ms. The topic
   * stays pending meanwhile, so live messages that arrive are left to the replay.
   */
  private defer(topic: string, retryAfter: unknown): void {
    this.waitingTopics.delete(topic);
    if (!this.topics.isPending(topic)) return;
    this.deferredTopics.add(topic);
    const ms =
      typeof retryAfter === 'number' && retryAfter >= 0 && Number.isFinite(retryAfter)
        ? retryAfter
        : DEFAULT_RECOVERY_RETRY_MS;
    // One timer for all deferred topics, due at the earliest time asked for; a topic still
    // refused then is deferred again with its own new time.
    const at = this.host.clock.now() + ms;
    if (this.retryTimer !== null && this.retryAt <= at) return;
    this.stopRetry();
    this.retryAt = at;
    this.retryTimer = this.host.clock.setTimeout(() => this.retryDeferred(), ms);
  }

  private message(topic: string, seq: number, data: unknown, from: MessageSender | undefined): void {
    const verdict = this.topics.message(topic, seq);
    if (verdict === 'gap') {
      // Messages were skipped (the server's slow-consumer policy): ask for them again.
      this.request(topic);
      return;
    }
    if (verdict !== 'deliver') return;
    const meta: MessageMeta = { topic, seq, epoch: this.topics.epoch(topic) };
    if (from !== undefined) meta.from = from;
    for (const handler of this.topics.handlers(topic)) {
      // An earlier handler may have unsubscribed this one: it must not get the message.
      if (!this.topics.hasHandler(topic, handler)) continue;
      try {
        handler(data, meta);
      } catch (err) {
        this.host.error(err, true);
      }
    }
    this.host.emit('deliver', { ...meta, data });
  }
}

/** A message's `from`, if it is one: `{ id, nick? }` with strings. */
function sender(from: unknown): MessageSender | undefined {
  if (typeof from !== 'object' || from === null) return undefined;
  const { id, nick } = from as Record<string, unknown>;
  if (typeof id !== 'string') return undefined;
  return typeof nick === 'string' ? { id, nick } : { id };
}
