/**
 * ZlibQueue (src/node/zlib-queue.ts): at most `limit` jobs hold a slot and new jobs wait in
 * arrival order; a job that offers its slot between slices gives way to any new job and to
 * paused jobs that started before it, and keeps its slot otherwise; paused jobs resume
 * oldest first.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ZlibQueue } from '../../src/node/zlib-queue.js';

/** A job of `n` slices that offers its slot after each but the last, logging `name0`, `name1`... */
function sliced(queue: ZlibQueue, log: string[], name: string, n: number): () => void {
  return () => {
    const order = queue.stamp();
    let i = 0;
    const step = (): void => {
      log.push(`${name}${i++}`);
      if (i === n) queue.done();
      else if (!queue.yieldSlot(step, order)) step();
    };
    step();
  };
}

describe('ZlibQueue', () => {
  it('runs at most `limit` jobs at once, the rest in arrival order', () => {
    const queue = new ZlibQueue(2);
    const started: number[] = [];
    for (let i = 0; i < 5; i++) queue.run(() => started.push(i));
    assert.deepEqual(started, [0, 1]);
    assert.deepEqual(queue.load, { running: 2, waiting: 3 });
    queue.done();
    assert.deepEqual(started, [0, 1, 2]);
    queue.done();
    queue.done();
    assert.deepEqual(started, [0, 1, 2, 3, 4]);
    queue.done();
    queue.done();
    assert.deepEqual(queue.load, { running: 0, waiting: 0 });
  });

  it('a long job gives way to each new job between its slices, and goes on when nobody new waits', () => {
    const queue = new ZlibQueue(1);
    const log: string[] = [];
    queue.run(() => {
      const order = queue.stamp();
      assert.equal(
        queue.yieldSlot(() => assert.fail('resumed although nobody waited'), order),
        false,
      );
      // Two one-slice jobs (other connections' small messages) arrive while it runs.
      queue.run(sliced(queue, log, 'small-a', 1));
      queue.run(sliced(queue, log, 'small-b', 1));
      let i = 0;
      const step = (): void => {
        log.push(`big${i++}`);
        if (i === 4) queue.done();
        else if (!queue.yieldSlot(step, order)) step();
      };
      step();
    });
    assert.deepEqual(log, ['big0', 'small-a0', 'small-b0', 'big1', 'big2', 'big3']);
    assert.deepEqual(queue.load, { running: 0, waiting: 0 });
  });

  it('long jobs are finished oldest first, not side by side, while new ones still get a turn', () => {
    const queue = new ZlibQueue(1);
    const log: string[] = [];
    queue.run(() => {
      queue.run(sliced(queue, log, 'b', 3));
      queue.run(sliced(queue, log, 'c', 3));
      sliced(queue, log, 'a', 3)();
    });
    // a gives its slot to the new b, b (newer than a) to the new c; then nobody new waits:
    // c gives way to the older a, which finishes, then b, then c.
    assert.deepEqual(log, ['a0', 'b0', 'c0', 'a1', 'a2', 'b1', 'b2', 'c1', 'c2']);
    assert.deepEqual(queue.load, { running: 0, waiting: 0 });
  });

  it('never has more than `limit` jobs holding a slot, whatever gives way to what', () => {
    const queue = new ZlibQueue(2);
    const log: string[] = [];
    let most = 0;
    const watch = (job: () => void) => (): void => {
      most = Math.max(most, queue.load.running);
      job();
    };
    let release!: () => void;
    queue.run(() => (release = () => queue.done())); // holds one slot throughout
    queue.run(() => {
      for (const name of ['b', 'c', 'd', 'e']) queue.run(watch(sliced(queue, log, name, 2)));
      sliced(queue, log, 'a', 3)();
    });
    release();
    assert.equal(most, 2);
    assert.deepEqual([...log].sort(), ['a0', 'a1', 'a2', 'b0', 'b1', 'c0', 'c1', 'd0', 'd1', 'e0', 'e1']);
    assert.deepEqual(queue.load, { running: 0, waiting: 0 });
  });

  it('thousands of waiting jobs are served in order', () => {
    const queue = new ZlibQueue(1);
    const order: number[] = [];
    queue.run(() => {});
    for (let i = 0; i < 5000; i++) queue.run(() => order.push(i));
    for (let i = 0; i <= 5000; i++) queue.done();
    assert.deepEqual(
      order,
      Array.from({ length: 5000 }, (_, i) => i),
    );
  });
});
