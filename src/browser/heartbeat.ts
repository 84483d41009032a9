/**
 * The application-level heartbeat of a channel connection. Browsers cannot send WebSocket
 * pings, and a connection through a dead network can look open for many minutes, so the
 * client pings in the channel protocol (`{"type":"ping","id":N}`) and replaces the socket
 * when the answer to that ping does not come back in time.
 *
 * Only the answer to its own ping counts, whatever else arrives: messages coming in prove
 * that the server-to-client path works, not that what the client sends gets through. A path
 * dead in one direction only (a NAT or proxy that lost half the mapping) is thus found
 * within `interval + timeout` of its death.
 */
import type { DuetClock } from './types.js';

/** What the heartbeat asks of its connection. */
export interface HeartbeatHost {
  /** Send `{"type":"ping","id":id}`. */
  ping(id: number): void;
  /** The ping went unanswered for the timeout: the connection is dead. */
  dead(): void;
  /** A pong came back after `ms`. */
  latency(ms: number): void;
}

export class Heartbeat {
  private readonly clock: DuetClock;
  private readonly interval: number;
  private readonly timeout: number;
  private readonly host: HeartbeatHost;
  private pingTimer: unknown = null;
  private pongTimer: unknown = null;
  private lastId = 0;
  private pending: number | null = null;
  private sentAt = 0;

  /** `interval` 0 turns it off. */
  constructor(clock: DuetClock, interval: number, timeout: number, host: HeartbeatHost) {
    this.clock = clock;
    this.interval = interval;
    this.timeout = timeout;
    this.host = host;
  }

  get enabled(): boolean {
    return this.interval > 0;
  }

  /** A connection opened: the first ping goes out after one interval. */
  start(): void {
    this.stop();
    this.schedule();
  }

  /** The connection ended: no timers remain. */
  stop(): void {
    if (this.pingTimer !== null) this.clock.clearTimeout(this.pingTimer);
    if (this.pongTimer !== null) this.clock.clearTimeout(this.pongTimer);
    this.pingTimer = this.pongTimer = null;
    this.pending = null;
  }

  /** A pong with this id arrived. */
  pong(id: unknown): void {
    if (this.answered(id)) this.host.latency(this.clock.now() - this.sentAt);
  }

  /**
   * The server answered the ping with this id some other way (refused it for its rate
   * limit): the round trip works, so the next ping follows after the interval. Returns
   * whether `id` was the ping waiting for its answer.
   */
  answered(id: unknown): boolean {
    if (id !== this.pending || id === null) return false;
    this.pending = null;
    if (this.pongTimer !== null) this.clock.clearTimeout(this.pongTimer);
    this.pongTimer = null;
    this.schedule();
    return true;
  }

  /** Check now rather than at the next scheduled ping (network changed, tab woke up). */
  probe(): void {
    if (!this.enabled || this.pending !== null) return;
    if (this.pingTimer === null) return; // not running
    this.clock.clearTimeout(this.pingTimer);
    this.pingTimer = null;
    this.ping();
  }

  private schedule(): void {
    if (!this.enabled) return;
    this.pingTimer = this.clock.setTimeout(() => {
      this.pingTimer = null;
      this.ping();
    }, this.interval);
  }

  private ping(): void {
    this.pending = ++this.lastId;
    this.sentAt = this.clock.now();
    // The deadline runs from now, even if the pacer holds the ping back a little.
    this.pongTimer = this.clock.setTimeout(() => {
      this.pongTimer = null;
      this.pending = null;
      this.host.dead();
    }, this.timeout);
    this.host.ping(this.pending);
  }
}
