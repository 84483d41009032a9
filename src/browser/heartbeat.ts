/**
 * The application-level heartbeat of a channel connection. Browsers cannot send WebSocket
 * pings, and a connection through a dead network can look open for many minutes, so the
 * client pings in the channel protocol (`{"type":"ping","id":N}`) and replaces the socket
 * when nothing comes back in time.
 */
import type { DuetClock } from './types.js';

/** What the heartbeat asks of its connection. */
export interface HeartbeatHost {
  /** Send `{"type":"ping","id":id}`. */
  ping(id: number): void;
  /** Nothing at all arrived within the timeout: the connection is dead. */
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
  private heard = false;

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

  /** Something arrived: the connection is alive, whatever it was. */
  received(): void {
    this.heard = true;
  }

  /** A pong with this id arrived. */
  pong(id: unknown): void {
    if (id !== this.pending) return;
    this.pending = null;
    if (this.pongTimer !== null) this.clock.clearTimeout(this.pongTimer);
    this.pongTimer = null;
    this.host.latency(this.clock.now() - this.sentAt);
    this.schedule();
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
    this.heard = false;
    this.pongTimer = this.clock.setTimeout(() => {
      this.pongTimer = null;
      // Anything received proves the connection alive (the pong may have been refused by the
      // server's rate limit): ping again rather than drop a working connection.
      if (this.heard) this.ping();
      else this.host.dead();
    }, this.timeout);
    this.host.ping(this.pending);
  }
}
