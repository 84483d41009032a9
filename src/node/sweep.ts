/**
 * Heartbeat and idle timeout for all of a server's connections with one timer. Each tick
 * reads the flags connections set as data arrives (no clock read per message), pings
 * connections that have been silent for `interval`, terminates those silent for
 * `interval + timeout` (a dead peer: close 1006 locally), and closes connections that sent no
 * message for `idleTimeout` (1001).
 */
import { CloseCode } from '../protocol/close-codes.js';
import { createError } from '../protocol/errors.js';
import type { WebSocket } from './connection.js';
import type { ServerCounters } from './host.js';

/** The server's heartbeat: ping silent connections, terminate dead ones. */
export interface HeartbeatOptions {
  /** Ping a connection after this many milliseconds without hearing from it. */
  interval: number;
  /** Terminate it if it stays silent this much longer (no pong, no frame at all). */
  timeout: number;
}

export interface SweepOptions {
  heartbeat: HeartbeatOptions | false;
  /** Close (1001) connections that sent no message for this many milliseconds; 0 = never. */
  idleTimeout: number;
  /** Fail (1008) connections whose fragmented message is older than this; 0 = never. */
  assemblyTimeout?: number;
}

export class Sweep {
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly heartbeat: HeartbeatOptions | false;
  private readonly idleTimeout: number;
  private readonly assemblyTimeout: number;

  constructor(
    private readonly connections: Set<WebSocket>,
    private readonly counters: ServerCounters,
    options: SweepOptions,
  ) {
    this.heartbeat = options.heartbeat;
    if (this.heartbeat && !(this.heartbeat.interval > 0 && this.heartbeat.timeout > 0)) {
      throw new RangeError('heartbeat.interval and heartbeat.timeout must be positive numbers of milliseconds');
    }
    this.idleTimeout = options.idleTimeout;
    this.assemblyTimeout = options.assemblyTimeout ?? 0;
    const periods: number[] = [];
    if (this.heartbeat) periods.push(this.heartbeat.interval, this.heartbeat.timeout);
    if (this.idleTimeout > 0) periods.push(this.idleTimeout);
    if (this.assemblyTimeout > 0) periods.push(this.assemblyTimeout);
    if (periods.length === 0) return;
    // Half the shortest period: a deadline is acted on at most that late.
    const tick = Math.max(5, Math.floor(Math.min(...periods) / 2));
    this.timer = setInterval(() => this.run(Date.now()), tick);
    this.timer.unref();
  }

  /** Start watching a new connection. */
  add(ws: WebSocket): void {
    const now = Date.now();
    ws.lastHeard = now;
    ws.lastMessage = now;
    ws.heardFrom = false;
    ws.messageSeen = false;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  private run(now: number): void {
    const heartbeat = this.heartbeat;
    const idle = this.idleTimeout;
    const assembly = this.assemblyTimeout;
    for (const ws of this.connections) {
      if (ws.readyState !== 1) continue;
      if (assembly > 0 && this.assemblyExpired(ws, now, assembly)) continue;
      // A peer that reads what we send is alive even if it says nothing: with data queued
      // behind a Ping, its Pong can only come after the backlog drains.
      const backlog = ws.backlog;
      const draining = backlog > 0 && backlog < ws.lastBacklog;
      ws.lastBacklog = backlog;
      // A connection the application paused cannot read the peer's Pong: its silence says
      // nothing, so it is not judged until it reads again (then a full interval starts).
      if (ws.heardFrom || draining || ws.isPaused) {
        ws.heardFrom = false;
        ws.lastHeard = now;
        ws.pingOutstanding = false;
      }
      if (ws.messageSeen) {
        ws.messageSeen = false;
        ws.lastMessage = now;
      }
      if (heartbeat) {
        const silent = now - ws.lastHeard;
        if (silent >= heartbeat.interval + heartbeat.timeout) {
          this.counters.heartbeatTerminated++;
          ws.terminate();
          continue;
        }
        if (silent >= heartbeat.interval && !ws.pingOutstanding) {
          ws.pingOutstanding = true;
          ws.ping();
        }
      }
      if (idle > 0 && now - ws.lastMessage >= idle) {
        this.counters.idleClosed++;
        ws.close(CloseCode.GOING_AWAY, 'idle timeout');
      }
    }
  }

  /**
   * A fragmented message is being assembled: time it from when a sweep first saw it, and
   * fail the connection (1008) once it is older than `limit`. The peer may be dripping empty
   * continuation frames or nothing at all; either way it holds a buffer and a share of CPU.
   */
  private assemblyExpired(ws: WebSocket, now: number, limit: number): boolean {
    if (ws.parser?.assembling !== true) {
      ws.assemblySeen = 0;
      return false;
    }
    if (ws.assemblySeen === 0) {
      ws.assemblySeen = now;
      return false;
    }
    if (now - ws.assemblySeen < limit) return false;
    ws.assemblySeen = 0;
    ws.closeCode = CloseCode.POLICY_VIOLATION;
    ws.failWithError(
      createError('WS_ERR_MESSAGE_ASSEMBLY_TIMEOUT', `fragmented message still incomplete after ${limit} ms`),
      CloseCode.POLICY_VIOLATION,
    );
    return true;
  }
}
