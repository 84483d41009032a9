/**
 * ZlibQueue: the one queue every zlib job of the process goes through. zlib runs on libuv's
 * thread pool; at most `limit` jobs hold a slot at once, so compression cannot crowd out
 * file system and DNS work.
 *
 * A small message never waits behind a big one. A job works in slices (ZlibStream: a slice of
 * input compressed, a quantum of output inflated) and between slices offers its slot back:
 *   - to a job that has not started yet: new jobs go first, and most are done within their
 *     first slice (a chat line, a JSON update);
 *   - to an unfinished job that started before it: jobs that need more than one slice are
 *     finished oldest first, a few at a time, rather than all side by side. Side by side they
 *     would all end at about the same moment, and each end costs the event loop the joining
 *     of a whole message (16 ms per 4 MiB on the machine these numbers come from).
 * A connection has at most one job per direction in the queue (it inflates one message at a
 * time and compresses one at a time), so a connection that floods large or bomb-like messages
 * has one job among everyone else's, not a share that grows with its flood.
 */

interface Paused {
  resume: () => void;
  order: number;
}

export class ZlibQueue {
  limit: number;
  private running = 0;
  /** Jobs that have not started, oldest first from `head`. */
  private fresh: Array<() => void> = [];
  private head = 0;
  /** Jobs that gave their slot up between slices, oldest (lowest `order`) first. */
  private paused: Paused[] = [];
  private started = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Jobs holding a slot, and jobs waiting for one (new or paused): for tests and stats. */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.fresh.length - this.head + this.paused.length };
  }

  /** Start `job` now or when a slot frees; the job must call done() exactly once. */
  run(job: () => void): void {
    if (this.running < this.limit) {
      this.running++;
      job();
    } else {
      this.fresh.push(job);
    }
  }

  /** A number that orders jobs by when they started (what yieldSlot compares). */
  stamp(): number {
    return ++this.started;
  }

  /** The job holding a slot finished. */
  done(): void {
    this.running--;
    while (this.running < this.limit) {
      const next = this.head < this.fresh.length ? this.takeFresh() : this.paused.shift()?.resume;
      if (next === undefined) return;
      this.running++;
      next();
    }
  }

  /**
   * Called by a job that holds a slot, between two slices of its work; `order` is its
   * stamp(). When a new job waits, or a paused one that started earlier, the slot passes to
   * it and `resume` runs (holding a slot again) when this job's turn comes back: true.
   * Otherwise the job keeps its slot: false.
   */
  yieldSlot(resume: () => void, order: number): boolean {
    let next: () => void;
    if (this.head < this.fresh.length) next = this.takeFresh();
    else if (this.paused.length > 0 && this.paused[0].order < order) next = this.paused.shift()!.resume;
    else return false;
    // Keep `paused` sorted by order (it is short: one entry per job that needed many slices).
    let i = this.paused.length;
    while (i > 0 && this.paused[i - 1].order > order) i--;
    this.paused.splice(i, 0, { resume, order });
    next();
    return true;
  }

  private takeFresh(): () => void {
    const job = this.fresh[this.head];
    this.fresh[this.head++] = undefined as unknown as () => void;
    // Drop the consumed front now and then, so the array does not grow for ever.
    if (this.head === this.fresh.length) {
      this.fresh = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.fresh.length) {
      this.fresh = this.fresh.slice(this.head);
      this.head = 0;
    }
    return job;
  }
}
