/**
 * One timer for many deadlines. Connections register a deadline (handshake, close handshake)
 * instead of arming a timer each: one setTimeout follows the earliest deadline, and when it
 * fires every due entry expires in one sweep.
 */

/** Something that can run out of time. */
export interface Expirable {
  /** Called once when the deadline passes (unless removed first). */
  expire(): void;
}

/**
 * Sweeps happen on a 50 ms grid: each one scans every pending deadline, so under a flood of
 * new deadlines (slow handshakes arriving all the time) waking for each would cost
 * O(pending) per arrival. Timeouts are seconds long; 50 ms late is harmless.
 */
const GRAIN_MS = 50;
const wakeTime = (at: number): number => Math.ceil(at / GRAIN_MS) * GRAIN_MS;

export class DeadlineQueue {
  private readonly deadlines = new Map<Expirable, number>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  /** Expire `item` in `ms` milliseconds (replacing an earlier deadline for it). */
  add(item: Expirable, ms: number): void {
    const at = Date.now() + ms;
    this.deadlines.set(item, at);
    const wake = wakeTime(at);
    if (wake < this.timerAt) this.arm(wake);
  }

  /** Forget `item`'s deadline. The shared timer is left alone; a sweep with nothing due is cheap. */
  delete(item: Expirable): void {
    this.deadlines.delete(item);
  }

  get size(): number {
    return this.deadlines.size;
  }

  private arm(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(this.sweep, Math.max(0, at - Date.now()));
    // The queue never keeps a process alive on its own: the sockets it watches do.
    this.timer.unref();
  }

  private readonly sweep = (): void => {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = Date.now();
    let next = Infinity;
    const due: Expirable[] = [];
    for (const [item, at] of this.deadlines) {
      if (at <= now) due.push(item);
      else if (at < next) next = at;
    }
    for (const item of due) this.deadlines.delete(item);
    if (next !== Infinity) this.arm(wakeTime(next));
    for (const item of due) item.expire();
  };
}

/** The process-wide queue used by every connection. */
export const deadlines = new DeadlineQueue();
