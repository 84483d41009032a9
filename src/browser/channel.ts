/**
 * The client side of duet's channel protocol (docs/protocol.md) on top of one connection at a
 * time: subscribe and unsubscribe requests, resubscribing after a reconnect, and turning the
 * server's messages into deliveries, resets and errors. The connection itself (sockets,
 * reconnects, timers) stays in DuetClient.
 */
import type { DuetClientEvents } from './events.js';
import { TopicTracker, type TopicHandler } from './topics.js';
import { DuetError, type TopicPosition } from './types.js';

/** What the channel needs from its client. */
export interface ChannelHost {
  /** Whether a message written now goes out on an open connection. */
  isOpen(): boolean;
  write(text: string): void;
  emit<E extends keyof DuetClientEvents>(event: E, payload: DuetClientEvents[E]): void;
  /** `loud`: print it when nobody listens (a handler's bug should not vanish). */
  error(err: unknown, loud?: boolean): void;
  pong(id: unknown): void;
  /** Topics were added to those waiting for a paced subscribe (see {@link ChannelSession.sendNext}). */
  resume(): void;
}

export class ChannelSession {
  private readonly topics = new TopicTracker();
  private readonly host: ChannelHost;
  /** Topics whose subscribe waits for the client's paced flush, oldest first. */
  private readonly waitingTopics = new Set<string>();

  constructor(host: ChannelHost) {
    this.host = host;
  }

  subscribe(topic: string, handler: TopicHandler, from?: TopicPosition): () => void {
    if (this.topics.add(topic, handler, from) && this.host.isOpen()) this.request(topic);
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      if (!this.topics.remove(topic, handler)) return;
      this.waitingTopics.delete(topic);
      if (this.host.isOpen()) this.host.write(JSON.stringify({ type: 'unsubscribe', topic }));
    };
  }

  position(topic: string): TopicPosition | undefined {
    return this.topics.position(topic);
  }

  /**
   * A connection opened: every topic must be subscribed again, from its position. The
   * subscribes go out through the client's paced flush ({@link sendNext}), ahead of its
   * queue, so that many topics do not overrun the server's rate limit either.
   */
  resubscribe(): void {
    this.waitingTopics.clear();
    for (const topic of this.topics.names()) this.waitingTopics.add(topic);
  }

  /** Whether a topic waits for its subscribe. */
  get waiting(): boolean {
    return this.waitingTopics.size > 0;
  }

  /** Send the subscribe of the next waiting topic; false when none waits. */
  sendNext(): boolean {
    for (const topic of this.waitingTopics) {
      this.waitingTopics.delete(topic);
      this.request(topic);
      return true;
    }
    return false;
  }

  /** The connection ended: answers to pending subscribes will not come. */
  lost(): void {
    this.waitingTopics.clear();
    this.topics.unblock();
  }

  /** A message from the server, as received. */
  receive(data: unknown): void {
    if (typeof data !== 'string') {
      this.host.error(new DuetError('DUET_BAD_MESSAGE', 'a binary message on a channel connection'));
      return;
    }
    let msg: unknown;
    try {
      msg = JSON.parse(data);
    } catch {
      this.host.error(new DuetError('DUET_BAD_MESSAGE', 'a channel message that is not JSON'));
      return;
    }
    if (typeof msg !== 'object' || msg === null) {
      this.host.error(new DuetError('DUET_BAD_MESSAGE', 'a channel message that is not a JSON object'));
      return;
    }
    this.handle(msg as Record<string, unknown>);
    this.host.emit('message', msg);
  }

  private request(topic: string): void {
    this.host.write(JSON.stringify(this.topics.request(topic)));
  }

  private handle(msg: Record<string, unknown>): void {
    const topic = typeof msg.topic === 'string' ? msg.topic : undefined;
    switch (msg.type) {
      case 'pong':
        this.host.pong(msg.id);
        return;
      case 'subscribed':
        if (topic !== undefined && typeof msg.epoch === 'string' && typeof msg.seq === 'number') {
          this.waitingTopics.delete(topic); // answered: a retry waiting for it is not needed
          const reset = this.topics.subscribed(topic, msg.epoch, msg.seq, msg.recovered === true);
          if (reset) this.host.emit('reset', reset);
        }
        return;
      case 'message':
        if (topic !== undefined && typeof msg.seq === 'number') this.message(topic, msg.seq, msg.data);
        return;
      case 'error': {
        const code = typeof msg.code === 'string' ? msg.code : 'unknown';
        if (code === 'rate_limited') this.retryPending();
        else if (topic !== undefined) {
          // A refused subscribe must not block the next one (nor be retried).
          this.waitingTopics.delete(topic);
          this.topics.unblock(topic);
        }
        this.host.error(new DuetError(code, typeof msg.message === 'string' ? msg.message : code, topic));
        return;
      }
    }
  }

  /**
   * A message was refused by the rate limit, and the error does not say which. A subscribe
   * still unanswered may be it: send it again through the paced flush. Until then the topic
   * stays pending (its messages are ignored and come again with the replay): unblocking it
   * at once made every later message look like a gap, each gap sent a subscribe, each was
   * refused too, and the errors ended in a close with 1008.
   */
  private retryPending(): void {
    let added = false;
    for (const topic of this.topics.pendingNames()) {
      this.waitingTopics.add(topic);
      added = true;
    }
    if (added) this.host.resume();
  }

  private message(topic: string, seq: number, data: unknown): void {
    const verdict = this.topics.message(topic, seq);
    if (verdict === 'gap') {
      // Messages were skipped (the server's slow-consumer policy): ask for them again.
      this.request(topic);
      return;
    }
    if (verdict !== 'deliver') return;
    const meta = { topic, seq, epoch: this.topics.epoch(topic) };
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
