/**
 * The bounded queue of messages sent while the client is not open. Bounded because a client
 * offline for an hour must not grow without limit; the policy decides which end gives.
 */
import { DuetError } from './errors.js';
import type { QueuePolicy, SendData } from './types.js';

export class SendQueue {
  private items: SendData[] = [];
  private readonly limit: number;
  private readonly policy: QueuePolicy;
  /** Messages discarded because the queue was full. */
  dropped = 0;

  constructor(limit: number, policy: QueuePolicy) {
    this.limit = limit;
    this.policy = policy;
  }

  get length(): number {
    return this.items.length;
  }

  /** Add a message; when full, apply the policy ('error' throws a DuetError WS_ERR_QUEUE_FULL). */
  push(item: SendData): void {
    if (this.items.length < this.limit) {
      this.items.push(item);
      return;
    }
    switch (this.policy) {
      case 'error':
        throw new DuetError('WS_ERR_QUEUE_FULL', `send queue full (${this.limit} messages) while not connected`);
      case 'drop-newest':
        this.dropped++;
        return;
      case 'drop-oldest':
        this.dropped++;
        if (this.limit === 0) return;
        this.items.shift();
        this.items.push(item);
        return;
    }
  }

  /** Take the oldest message (undefined when empty). */
  shift(): SendData | undefined {
    return this.items.shift();
  }

  clear(): void {
    this.items = [];
  }
}
