/**
 * Scheduler: jobs on a fixed grid (start + k*period) that do not drift however long a run
 * takes, skip missed slots instead of bursting, report errors and keep running, and stop on
 * cancel() / stopAll(). Timing assertions are generous: they separate "on the grid" from
 * "drifting by the run time" without depending on a quiet machine.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Scheduler } from '../../src/push/scheduler.js';

const T = { timeout: 10_000 };

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin: a run that takes real time
  }
}

function noErrors(): Scheduler {
  return new Scheduler((err) => {
    throw new Error(`unexpected job error: ${String(err)}`);
  });
}

describe('Scheduler', () => {
  it('rejects periods that are not positive finite numbers', () => {
    const s = noErrors();
    for (const ms of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => s.every(ms, () => {}), RangeError, `period ${ms}`);
    }
    assert.equal(s.size, 0);
  });

  it('runs on the grid without drift even when each run takes 40% of the period', T, async () => {
    const s = noErrors();
    const period = 50;
    const runs: Array<{ n: number; at: number }> = [];
    const t0 = performance.now();
    const job = s.every(period, (n) => {
      runs.push({ n, at: performance.now() - t0 });
      busyWait(20);
    });
    await sleep(1030);
    job.cancel();
    // On the grid: ~20 runs in 1 s. Drifting by the run time (70 ms per run) would give ~14.
    assert.ok(runs.length >= 17 && runs.length <= 21, `runs in 1 s: ${runs.length}`);
    // Run numbers count up from 1.
    assert.equal(runs[0].n, 1);
    for (let i = 1; i < runs.length; i++) assert.ok(runs[i].n > runs[i - 1].n, 'run numbers increase');
    // Each run fires close to start + n*period; lateness does not accumulate.
    const lateness = runs.map((r) => r.at - r.n * period);
    for (const late of lateness) assert.ok(late > -5, `a run fired before its slot (${late.toFixed(1)} ms)`);
    const last = lateness.slice(-5);
    assert.ok(Math.max(...last) < period, `late by ${last.map((l) => l.toFixed(1)).join(', ')} ms at the end: drifting`);
  });

  it('skips slots missed by a long run instead of firing a burst', T, async () => {
    const s = noErrors();
    const period = 40;
    const runs: Array<{ n: number; at: number }> = [];
    const t0 = performance.now();
    const job = s.every(period, (n) => {
      runs.push({ n, at: performance.now() - t0 });
      if (n === 1) busyWait(period * 3.5); // blocks past slots 2, 3, 4
    });
    await sleep(period * 8);
    job.cancel();
    assert.ok(runs.length >= 3, `runs: ${runs.length}`);
    assert.equal(runs[0].n, 1);
    assert.ok(runs[1].n >= 5, `the run after the long one is slot ${runs[1].n}, expected the next slot still ahead (>= 5)`);
    for (let i = 2; i < runs.length; i++) {
      assert.ok(runs[i].at - runs[i - 1].at > period / 2, `runs ${runs[i - 1].n} and ${runs[i].n} fired ${(runs[i].at - runs[i - 1].at).toFixed(1)} ms apart: a burst`);
    }
  });

  it('cancel() stops a job, from inside its own run too; cancelling twice is harmless', T, async () => {
    const s = noErrors();
    let a = 0;
    let b = 0;
    const jobA = s.every(10, () => {
      a++;
      // Counting runs, not slots: on a loaded machine the grid may skip a slot.
      if (a === 3) jobA.cancel();
    });
    const jobB = s.every(10, () => {
      b++;
    });
    assert.equal(s.size, 2);
    assert.equal(jobA.active, true);
    for (let i = 0; i < 200 && jobA.active; i++) await sleep(10);
    await sleep(50);
    assert.equal(a, 3, 'job A ran until it cancelled itself on run 3');
    assert.equal(jobA.active, false);
    assert.equal(s.size, 1);
    jobB.cancel();
    jobB.cancel();
    assert.equal(jobB.active, false);
    assert.equal(s.size, 0);
    const bAtCancel = b;
    assert.ok(bAtCancel >= 3, `job B ran ${bAtCancel} times`);
    await sleep(60);
    assert.equal(b, bAtCancel, 'no run after cancel()');
  });

  it('cancel() before the first run: it never runs', T, async () => {
    const s = noErrors();
    let runs = 0;
    const job = s.every(10, () => runs++);
    job.cancel();
    await sleep(50);
    assert.equal(runs, 0);
  });

  it('stopAll() cancels every job', T, async () => {
    const s = noErrors();
    const counts = [0, 0, 0];
    const jobs = counts.map((_, i) => s.every(10 + i * 5, () => counts[i]++));
    await sleep(80);
    s.stopAll();
    assert.equal(s.size, 0);
    for (const job of jobs) assert.equal(job.active, false);
    const snapshot = [...counts];
    for (const c of snapshot) assert.ok(c >= 2, `each job ran before stopAll: ${snapshot}`);
    await sleep(60);
    assert.deepEqual(counts, snapshot, 'no run after stopAll()');
    // The scheduler is still usable.
    let later = 0;
    const job = s.every(10, () => later++);
    await sleep(50);
    job.cancel();
    assert.ok(later >= 2);
  });

  it('a throwing run is reported and the job keeps running', T, async () => {
    const errors: unknown[] = [];
    const s = new Scheduler((err) => errors.push(err));
    const seen: number[] = [];
    const boom = new Error('boom');
    const job = s.every(10, (n) => {
      seen.push(n);
      if (n === 2 || n === 4) throw boom;
    });
    await sleep(120);
    job.cancel();
    assert.deepEqual(errors.length, 2, `errors: ${errors.length}`);
    assert.equal(errors[0], boom);
    assert.equal(errors[1], boom);
    assert.ok(seen.length >= 6, `runs: ${seen.join(',')}`);
    assert.ok(seen.includes(3) && seen.includes(5), `runs after the throws happened: ${seen.join(',')}`);
    assert.equal(job.active, false);
  });

  it('one timer per job: jobs do not keep the process alive once cancelled', T, async () => {
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
