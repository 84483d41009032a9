/**
 * Timed push: jobs that run every N milliseconds on a fixed grid (start + k*N), so they do
 * not drift however long each run takes; one timer per job, none per connection. A run that
 * is late by more than a period skips the missed slots instead of firing in a burst.
 */

/**
 * Where the scheduler reads the time and arms its timers: performance.now() and Node's
 * timers unless a test hands it a clock it moves by hand.
 */
export interface SchedulerClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(timer: unknown): void;
}

const realClock: SchedulerClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

/** A scheduled job; cancel() stops it. */
export interface Job {
  /** Stop the job: it does not run again. */
  cancel(): void;
  /** True until cancelled. */
  readonly active: boolean;
}

export class Scheduler {
  private readonly jobs = new Set<ScheduledJob>();
  private readonly onError: (err: unknown) => void;
  private readonly clock: SchedulerClock;

  constructor(onError: (err: unknown) => void, clock: SchedulerClock = realClock) {
    this.onError = onError;
    this.clock = clock;
  }

  /** Run `fn(n)` every `ms` milliseconds (n = 1, 2, ...). */
  every(ms: number, fn: (run: number) => void): Job {
    if (!(ms > 0) || !Number.isFinite(ms)) throw new RangeError('every(ms, fn): ms must be a positive number');
    const job = new ScheduledJob(ms, fn, this.onError, (j) => this.jobs.delete(j), this.clock);
    this.jobs.add(job);
    return job;
  }

  /** Cancel every job (server shutdown). */
  stopAll(): void {
    for (const job of [...this.jobs]) job.cancel();
  }

  get size(): number {
    return this.jobs.size;
  }
}

class ScheduledJob implements Job {
  active = true;
  private timer: unknown;
  private readonly start: number;
  private run = 0;

  constructor(
    private readonly period: number,
    private readonly fn: (run: number) => void,
    private readonly onError: (err: unknown) => void,
    private readonly onCancel: (job: ScheduledJob) => void,
    private readonly clock: SchedulerClock,
  ) {
    this.start = clock.now();
    this.arm();
  }

  private arm(): void {
    const now = this.clock.now();
    // The next slot on the grid that is still ahead of us.
    let slot = Math.floor((now - this.start) / this.period) + 1;
    if (slot <= this.run) slot = this.run + 1;
    this.run = slot;
    this.timer = this.clock.setTimeout(this.fire, this.start + slot * this.period - now);
  }

  private readonly fire = (): void => {
    if (!this.active) return;
    try {
      this.fn(this.run);
    } catch (err) {
      this.onError(err);
    }
    if (this.active) this.arm();
  };

  cancel(): void {
    if (!this.active) return;
    this.active = false;
    this.clock.clearTimeout(this.timer);
    this.onCancel(this);
  }
}
