/**
 * Scheduler: jobs on a fixed grid (start + k*period) that do not drift however long a run
 * takes, skip missed slots instead of bursting, report errors and keep running, and stop on
 * cancel() / stopAll(). The scheduler runs on a clock the test moves by hand (time passes
 * only when the test says so; a run can take time; timers can fire late), so every count and
 * time is exact and nothing depends on how fast or busy the machine is. Real timers are
 * covered by test/push/server.test.ts (every() over TCP).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Scheduler, type SchedulerClock } from '../../src/push/scheduler.js';

interface FakeTimer {
  at: number;
  order: number;
  fn: () => void;
}

/** Time that passes only in advance() and spend(); timers fire in due order, as Node's do. */
class FakeClock implements SchedulerClock {
  time = 0;
  /** Added to every timer: how late timers fire on a busy machine. */
  lateness = 0;
  private timers: FakeTimer[] = [];
  private order = 0;

  now = (): number => this.time;
  setTimeout = (fn: () => void, ms: number): unknown => {
    // As in Node, a delay under 1 ms is 1 ms.
    const timer: FakeTimer = { at: this.time + Math.max(1, ms) + this.lateness, order: this.order++, fn };
    this.timers.push(timer);
    return timer;
  };
  clearTimeout = (timer: unknown): void => {
    this.timers = this.timers.filter((t) => t !== timer);
  };

  /** A run that takes `ms`: time passes, and timers due meanwhile fire only after it (late). */
  spend(ms: number): void {
    this.time += ms;
  }

  /** Let `ms` pass, firing each timer due by then at its time (or at once, if a run made it late). */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let next: FakeTimer | undefined;
      for (const t of this.timers) {
        if (t.at <= end && (next === undefined || t.at < next.at || (t.at === next.at && t.order < next.order)))
          next = t;
      }
      if (next === undefined) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.time = Math.max(this.time, next.at);
      next.fn();
    }
    this.time = Math.max(this.time, end);
  }

  /** Timers armed and not yet fired or cleared. */
  get pending(): number {
    return this.timers.length;
  }
}

function noErrors(clock?: SchedulerClock): Scheduler {
  return new Scheduler((err) => {
    throw new Error(`unexpected job error: ${String(err)}`);
  }, clock);
}

describe('Scheduler', () => {
  it('rejects periods that are not positive finite numbers', () => {
    const s = noErrors(new FakeClock());
    for (const ms of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => s.every(ms, () => {}), RangeError, `period ${ms}`);
    }
    assert.equal(s.size, 0);
  });

  it('runs on the grid without drift even when each run takes 40% of the period', () => {
    const clock = new FakeClock();
    const s = noErrors(clock);
    const period = 50;
    const runs: Array<[number, number]> = [];
    const job = s.every(period, (n) => {
      runs.push([n, clock.now()]);
      clock.spend(20);
    });
    clock.advance(1000);
    job.cancel();
    // Re-arming a period after each run ended would drift by the run time: 50, 120, 190, ...
    assert.deepEqual(
      runs,
      Array.from({ length: 20 }, (_, i) => [i + 1, (i + 1) * period]),
    );
  });

  it('timers that fire late do not make the lateness add up', () => {
    const clock = new FakeClock();
    clock.lateness = 15;
    const s = noErrors(clock);
    const runs: Array<[number, number]> = [];
    const job = s.every(50, (n) => runs.push([n, clock.now()]));
    clock.advance(500);
    job.cancel();
    // Each run 15 ms after its slot, the last one too (aimed at the grid, not at the last run).
    assert.deepEqual(
      runs,
      Array.from({ length: 9 }, (_, i) => [i + 1, (i + 1) * 50 + 15]),
    );
  });

  it('skips slots missed by a long run instead of firing a burst', () => {
    const clock = new FakeClock();
    const s = noErrors(clock);
    const period = 40;
    const runs: Array<[number, number]> = [];
    const job = s.every(period, (n) => {
      runs.push([n, clock.now()]);
      if (n === 1) clock.spend(period * 3.5); // from 40 to 180 ms: past slots 2, 3, 4
    });
    clock.advance(period * 8);
    job.cancel();
    assert.deepEqual(runs, [
      [1, 40],
      [5, 200], // the next slot still ahead, not 2, 3 and 4 at once
      [6, 240],
      [7, 280],
      [8, 320],
    ]);
  });

  it('cancel() stops a job, from inside its own run too; cancelling twice is harmless', () => {
    const clock = new FakeClock();
    const s = noErrors(clock);
    let a = 0;
    let b = 0;
    const jobA = s.every(10, () => {
      a++;
      if (a === 3) jobA.cancel();
    });
    const jobB = s.every(10, () => {
      b++;
    });
    assert.equal(s.size, 2);
    assert.equal(jobA.active, true);
    clock.advance(100);
    assert.equal(a, 3, 'job A ran until it cancelled itself on run 3');
    assert.equal(jobA.active, false);
    assert.equal(s.size, 1);
    assert.equal(b, 10);
    jobB.cancel();
    jobB.cancel();
    assert.equal(jobB.active, false);
    assert.equal(s.size, 0);
    assert.equal(clock.pending, 0, 'no timer left armed');
    clock.advance(100);
    assert.deepEqual([a, b], [3, 10], 'no run after cancel()');
  });

  it('cancel() before the first run: it never runs', () => {
    const clock = new FakeClock();
    const s = noErrors(clock);
    let runs = 0;
    const job = s.every(10, () => runs++);
    job.cancel();
    clock.advance(100);
    assert.equal(runs, 0);
    assert.equal(clock.pending, 0);
  });

  it('stopAll() cancels every job', () => {
    const clock = new FakeClock();
    const s = noErrors(clock);
    const counts = [0, 0, 0];
    const jobs = counts.map((_, i) => s.every(10 + i * 5, () => counts[i]++));
    clock.advance(80);
    assert.deepEqual(counts, [8, 5, 4]);
    s.stopAll();
    assert.equal(s.size, 0);
    for (const job of jobs) assert.equal(job.active, false);
    assert.equal(clock.pending, 0);
    clock.advance(100);
    assert.deepEqual(counts, [8, 5, 4], 'no run after stopAll()');
    // The scheduler is still usable.
    let later = 0;
    const job = s.every(10, () => later++);
    clock.advance(50);
    job.cancel();
    assert.equal(later, 5);
  });

  it('a throwing run is reported and the job keeps running', () => {
    const clock = new FakeClock();
    const errors: unknown[] = [];
    const s = new Scheduler((err) => errors.push(err), clock);
    const seen: number[] = [];
    const boom = new Error('boom');
    const job = s.every(10, (n) => {
      seen.push(n);
      if (n === 2 || n === 4) throw boom;
    });
    clock.advance(120);
    job.cancel();
    assert.deepEqual(errors, [boom, boom]);
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert.equal(job.active, false);
  });

  it('one timer per job (real timers): jobs do not keep the process alive once cancelled', () => {
    const s = noErrors();
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const jobs = Array.from({ length: 20 }, () => s.every(1000, () => {}));
    const during = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    assert.equal(during - before, 20, 'one timer per job');
    s.stopAll();
    const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    assert.equal(after, before, 'timers cleared');
    assert.equal(jobs.length, 20);
  });
});
