/**
 * What the client has to send, in order: raw messages of `send()` until they are written, and
 * publishes until the server acknowledged them (so that a publish lost with its connection
 * goes out again). Bounded, because a client offline for an hour must not grow without limit;
 * the policy decides which end gives.
 */
import { DuetError } from './errors.js';
import type { QueuePolicy, SendData } from './types.js';

/** A message of `send()`: gone from the queue once written. */
export interface RawItem {
  kind: 'raw';
  data: SendData;
  inFlight: false;
}

/** A publish: kept until acknowledged, refused for good, or given up. */
export interface PublishItem {
  kind: 'publish';
  /** `<session>.<n>`: the same on every resend, so the server can answer a repeat with its first ack. */
  id: string;
  topic: string;
  /** The batch entry `{"topic":...,"data":...,"id":...}`; the `publish` message is this with a `type`. */
  entry: string;
  /** UTF-8 bytes of `entry`. */
  bytes: number;
  /** Written on the current connection, its answer not in yet. */
  inFlight: boolean;
  /** Written inside a `batch` (a `rate_limited` refusal of a batch names no id). */
  batched: boolean;
  /** Written at least once, on this connection or an earlier one. */
  sent: boolean;
  /** The `dedupScope` of the connection it was last written on (undefined: that server keeps no ids). */
  scope: string | undefined;
  /** When it was first written (clock ms): the server keeps its id at least `dedupMs` from then. */
  firstSentAt: number;
  settle(error: Error | null, seq?: number): void;
}

export type QueueItem = RawItem | PublishItem;

export class SendQueue {
  private items: QueueItem[] = [];
  private readonly limit: number;
  private readonly policy: QueuePolicy;
  /** Messages discarded because the queue was full. */
  dropped = 0;

  constructor(limit: number, policy: QueuePolicy) {
    this.limit = limit;
    this.policy = policy;
  }

  /** Everything held: waiting to be written, and publishes waiting for their ack. */
  get length(): number {
    return this.items.length;
  }

  /** Items not written on the current connection. */
  get waiting(): number {
    let n = 0;
    for (const item of this.items) if (!item.inFlight) n++;
    return n;
  }

  /**
   * Add an item. When full, apply the policy: 'error' throws a DuetError WS_ERR_QUEUE_FULL;
   * 'drop-newest' drops `item`; 'drop-oldest' the oldest item not waiting for its answer on
   * the current connection (that answer is on its way), or `item` when every one is.
   * Returns the dropped item, if any.
   */
  push(item: QueueItem): QueueItem | undefined {
    if (this.items.length < this.limit) {
      this.items.push(item);
      return undefined;
    }
    if (this.policy === 'error')
      throw new DuetError('WS_ERR_QUEUE_FULL', `send queue full (${this.limit} messages not yet sent or acknowledged)`);
    this.dropped++;
    const oldest = this.policy === 'drop-oldest' ? this.items.findIndex((i) => !i.inFlight) : -1;
    if (oldest < 0) return item;
    const [dropped] = this.items.splice(oldest, 1);
    this.items.push(item);
    return dropped;
  }

  /** The oldest item not written on the current connection, with its index. */
  firstWaiting(): [QueueItem, number] | undefined {
    const index = this.items.findIndex((i) => !i.inFlight);
    return index < 0 ? undefined : [this.items[index], index];
  }

  /** Every item, oldest first. */
  all(): readonly QueueItem[] {
    return this.items;
  }

  remove(item: QueueItem): void {
    const index = this.items.indexOf(item);
    if (index >= 0) this.items.splice(index, 1);
  }

  /** Empty the queue; returns what it held. */
  clear(): QueueItem[] {
    const items = this.items;
    this.items = [];
    return items;
  }
}
