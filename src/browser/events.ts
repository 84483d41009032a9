/**
 * The events of a DuetClient and a minimal typed emitter for them (no Node EventEmitter in
 * browsers, and DOM EventTarget would wrap every payload in an Event).
 */
import type { MessageMeta, ResetInfo } from './topics.js';
import type { DuetCloseInfo, DuetStatus } from './types.js';

/** A delivered channel message (the `deliver` event). */
export interface Delivery extends MessageMeta {
  data: unknown;
}

/** The events of a DuetClient and what their listeners receive. */
export interface DuetClientEvents {
  /** The status changed. */
  status: DuetStatus;
  /** A connection opened (after resubscribing and sending the queue's first burst). */
  open: void;
  /** A connection ended, for whatever reason. */
  close: DuetCloseInfo;
  /** Plain mode: MessageEvent.data; channel mode: every parsed server message object. */
  message: unknown;
  /** A socket error, a channel protocol error from the server, or a handler that threw. */
  error: Error;
  /** Recovery was impossible for a topic (new epoch, history too short, first subscribe has none). App should refetch state. */
  reset: ResetInfo;
  /** A heartbeat round trip, ms. */
  latency: number;
  /** (extra) A channel message was delivered to a topic's handlers: each seq once, in order. */
  deliver: Delivery;
  /** (extra) The retry counter changed. */
  retries: number;
  /** The number of publishes not yet acknowledged changed (`client.pending`). */
  pending: number;
}

type AnyListener = (payload: never) => void;

export class Emitter {
  private readonly listeners = new Map<keyof DuetClientEvents, Set<AnyListener>>();

  on<E extends keyof DuetClientEvents>(event: E, listener: (payload: DuetClientEvents[E]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    const stored = listener as AnyListener;
    set.add(stored);
    return () => void this.listeners.get(event)?.delete(stored);
  }

  has(event: keyof DuetClientEvents): boolean {
    return (this.listeners.get(event)?.size ?? 0) > 0;
  }

  emit<E extends keyof DuetClientEvents>(event: E, payload: DuetClientEvents[E]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as (payload: DuetClientEvents[E]) => void)(payload);
      } catch (err) {
        // A listener's exception must not break the connection logic that emitted the event.
        globalThis.console?.error(err);
      }
    }
  }
}
