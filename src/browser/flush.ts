/**
 * Sends the offline queue after a reconnect at a pace the server accepts. A channel server
 * limits each connection's rate (`duet serve`: bursts of 20, then 20 per second) and closes
 * with 1008 after a few refusals, which the default shouldReconnect treats as final; so the
 * queue goes out as a burst, then one message per interval, oldest first.
 */
import type { SendQueue } from './send-queue.js';
import type { DuetClock, SendData } from './types.js';

/** What the flush needs from its connection. */
export interface FlushHost {
  /** Whether the current socket can take a message now. */
  writable(): boolean;
  write(data: SendData): void;
}

export class PacedFlush {
  private readonly clock: DuetClock;
  private readonly queue: SendQueue;
  private readonly interval: number;
  private readonly host: FlushHost;
  private timer: unknown = null;

  /** `interval` 0: no pacing, everything goes out at once. */
  constructor(clock: DuetClock, queue: SendQueue, interval: number, host: FlushHost) {
    this.clock = clock;
    this.queue = queue;
    this.interval = interval;
    this.host = host;
  }

  /** A flush timer is pending: messages sent now must queue behind the rest. */
  get running(): boolean {
    return this.timer !== null;
  }

  /** Send up to `burst` messages now and pace out the rest. */
  start(burst: number): void {
    this.stop();
    const now = this.interval > 0 ? burst : Infinity;
    for (let sent = 0; sent < now && this.sendOne(); sent++);
    this.resume();
  }

  /** Make sure what is queued keeps going out (a message was queued behind a flush). */
  resume(): void {
    if (this.timer !== null || this.queue.length === 0 || !this.host.writable()) return;
    if (this.interval <= 0) {
      while (this.sendOne());
      return;
    }
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      if (this.sendOne()) this.resume();
    }, this.interval);
  }

  /** The connection ended or the client closed: no timer remains; the rest stays queued. */
  stop(): void {
    if (this.timer === null) return;
    this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private sendOne(): boolean {
    if (this.queue.length === 0 || !this.host.writable()) return false;
    const item = this.queue.shift();
    if (item === undefined) return false;
    this.host.write(item);
    return true;
  }
}
