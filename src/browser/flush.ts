/**
 * Sends what waits when a connection opens (the resubscribes, then the offline queue) at a
 * pace the server accepts. A channel server limits each connection's rate (`duet serve`:
 * bursts of 20, then 20 per second) and closes with 1008 after a few refusals, which the
 * default shouldReconnect treats as final; so what waits goes out as a burst, then one
 * message per interval, in order.
 */
import type { DuetClock } from './types.js';

/** What the flush needs from its connection. */
export interface FlushHost {
  /** Whether the current socket can take a message now. */
  writable(): boolean;
  /** Whether anything waits to be sent. */
  waiting(): boolean;
  /** Send the next waiting message; false when there was none after all. */
  sendNext(): boolean;
}

export class PacedFlush {
  private readonly clock: DuetClock;
  private readonly interval: number;
  private readonly host: FlushHost;
  private timer: unknown = null;

  /** `interval` 0: no pacing, everything goes out at once. */
  constructor(clock: DuetClock, interval: number, host: FlushHost) {
    this.clock = clock;
    this.interval = interval;
    this.host = host;
  }

  /** Send up to `burst` messages now and pace out the rest. */
  start(burst: number): void {
    this.stop();
    const now = this.interval > 0 ? burst : Infinity;
    for (let sent = 0; sent < now && this.sendOne(); sent++);
    this.resume();
  }

  /** Make sure what waits keeps going out (something was added behind a flush, or after it). */
  resume(): void {
    if (this.timer !== null || !this.host.waiting() || !this.host.writable()) return;
    if (this.interval <= 0) {
      while (this.sendOne());
      return;
    }
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      if (this.sendOne()) this.resume();
    }, this.interval);
  }

  /** The connection ended or the client closed: no timer remains; what waits stays waiting. */
  stop(): void {
    if (this.timer === null) return;
    this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private sendOne(): boolean {
    return this.host.waiting() && this.host.writable() && this.host.sendNext();
  }
}
