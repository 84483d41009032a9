/**
 * Per-topic subscription state and the recovery rules of docs/protocol.md ("A client, step by
 * step"), without I/O: the client asks what to send and what to do with each server message.
 */
import type { TopicPosition } from './types.js';

/** Who published a message, as the server stamped it (docs/protocol.md, Identity). */
export interface MessageSender {
  /** The publishing connection's id, made by the server: tell senders apart by it. */
  id: string;
  /** The nick that connection gave in its `hello`, if any. */
  nick?: string;
}

/** What a subscriber's handler receives besides the data. */
export interface MessageMeta {
  topic: string;
  seq: number;
  epoch: string;
  /** Who published it; absent when the server did. */
  from?: MessageSender;
}

/** A subscriber's callback. */
export type TopicHandler = (data: unknown, meta: MessageMeta) => void;

/** The `reset` event: recovery was impossible, the app should reload the topic's state. */
export interface ResetInfo {
  topic: string;
  /** The new position's epoch. */
  epoch: string;
  /** The new position's seq: live messages continue after it. */
  seq: number;
  /** The position we had, or null for a first subscribe. */
  previous: TopicPosition | null;
}

/** The `subscribe` request for one topic. */
export interface SubscribeRequest {
  type: 'subscribe';
  topic: string;
  since?: number;
  epoch?: string;
}

interface TopicState {
  handlers: Set<TopicHandler>;
  epoch: string | undefined;
  /** Last seq delivered (or skipped by a reset). Undefined until the first `subscribed`. */
  last: number | undefined;
  /** A `subscribe` is on the wire and its `subscribed` has not come back. */
  pending: boolean;
}

/** What to do with a `message`. */
export type MessageVerdict = 'deliver' | 'ignore' | 'gap';

export class TopicTracker {
  private readonly topics = new Map<string, TopicState>();

  /** Add a handler; true when it is the topic's first (a `subscribe` must go out). */
  add(topic: string, handler: TopicHandler, from?: TopicPosition): boolean {
    let state = this.topics.get(topic);
    const first = state === undefined;
    if (!state) {
      state = { handlers: new Set(), epoch: from?.epoch, last: from?.seq, pending: false };
      this.topics.set(topic, state);
    }
    state.handlers.add(handler);
    return first;
  }

  /** Remove a handler; true when it was the topic's last (an `unsubscribe` must go out). */
  remove(topic: string, handler: TopicHandler): boolean {
    const state = this.topics.get(topic);
    if (!state || !state.handlers.delete(handler)) return false;
    if (state.handlers.size > 0) return false;
    // The position goes too: a later subscribe starts fresh rather than replaying messages
    // that were published while nobody here wanted them.
    this.topics.delete(topic);
    return true;
  }

  names(): IterableIterator<string> {
    return this.topics.keys();
  }

  /** Topics whose `subscribe` is unanswered. */
  pendingNames(): string[] {
    return [...this.topics].filter(([, state]) => state.pending).map(([topic]) => topic);
  }

  isPending(topic: string): boolean {
    return this.topics.get(topic)?.pending ?? false;
  }

  position(topic: string): TopicPosition | undefined {
    const state = this.topics.get(topic);
    if (!state || state.epoch === undefined || state.last === undefined) return undefined;
    return { epoch: state.epoch, seq: state.last };
  }

  hasHandler(topic: string, handler: TopicHandler): boolean {
    return this.topics.get(topic)?.handlers.has(handler) ?? false;
  }

  handlers(topic: string): TopicHandler[] {
    return [...(this.topics.get(topic)?.handlers ?? [])];
  }

  /** The `subscribe` to send for `topic` (with since/epoch when we have a position); marks it pending. */
  request(topic: string): SubscribeRequest | undefined {
    const state = this.topics.get(topic);
    if (!state) return undefined;
    state.pending = true;
    if (state.epoch !== undefined && state.last !== undefined) {
      return { type: 'subscribe', topic, since: state.last, epoch: state.epoch };
    }
    return { type: 'subscribe', topic };
  }

  /** A `subscribed` arrived. Returns the reset to report when recovery was impossible. */
  subscribed(topic: string, epoch: string, seq: number, recovered: boolean): ResetInfo | undefined {
    const state = this.topics.get(topic);
    if (!state) return undefined;
    state.pending = false;
    if (recovered && state.last !== undefined) {
      state.epoch = epoch;
      return undefined;
    }
    const previous =
      state.epoch !== undefined && state.last !== undefined ? { epoch: state.epoch, seq: state.last } : null;
    state.epoch = epoch;
    state.last = seq;
    return { topic, epoch, seq, previous };
  }

  /**
   * A `message` arrived. 'deliver' advances the position; 'ignore' for a seq already seen, an
   * unknown topic, or while a subscribe is pending (its replay brings the message again, in
   * order); 'gap' when messages were skipped: the caller resubscribes from the position.
   */
  message(topic: string, seq: number): MessageVerdict {
    const state = this.topics.get(topic);
    if (!state || state.last === undefined) return 'ignore';
    if (seq <= state.last) return 'ignore';
    if (state.pending) return 'ignore';
    if (seq > state.last + 1) return 'gap';
    state.last = seq;
    return 'deliver';
  }

  epoch(topic: string): string {
    return this.topics.get(topic)?.epoch ?? '';
  }

  /** A subscribe failed (an `error` naming the topic) or its connection ended: allow a new one. */
  unblock(topic?: string): void {
    if (topic === undefined) for (const state of this.topics.values()) state.pending = false;
    else {
      const state = this.topics.get(topic);
      if (state) state.pending = false;
    }
  }
}
