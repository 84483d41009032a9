/**
 * DeadlineQueue on node:test's mock timers (setTimeout and Date move only when the test ticks
 * them), so which deadline has expired at each moment is exact, however slow or busy the
 * machine: a real-time version of these checks failed whenever a sleep overshot by 80 ms.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeadlineQueue } from '../../src/node/deadlines.js';

/** A start time on the queue's 50 ms grid, so deadlines are acted on exactly when due. */
const START = 1_700_000_000_000;

test('items expire in deadline order, each once, from one shared timer', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: START });
  const q = new DeadlineQueue();
  const expired: string[] = [];
  const item = (name: string) => ({ expire: () => expired.push(name) });
  q.add(item('b'), 300);
  q.add(item('a'), 100); // earlier than the armed timer: re-armed
  q.add(item('c'), 500);
  t.mock.timers.tick(99);
  assert.deepEqual(expired, []);
  t.mock.timers.tick(1);
  assert.deepEqual(expired, ['a']);
  t.mock.timers.tick(199);
  assert.deepEqual(expired, ['a']);
  t.mock.timers.tick(1);
  assert.deepEqual(expired, ['a', 'b']);
  t.mock.timers.tick(200);
  assert.deepEqual(expired, ['a', 'b', 'c']);
  assert.equal(q.size, 0);
  t.mock.timers.tick(1000);
  assert.deepEqual(expired, ['a', 'b', 'c'], 'each once');
});

test('deadlines between grid points wait for the next one (at most 50 ms late), never fire early', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: START });
  const q = new DeadlineQueue();
  let fired = 0;
  q.add({ expire: () => fired++ }, 10);
  t.mock.timers.tick(49);
  assert.equal(fired, 0);
  t.mock.timers.tick(1);
  assert.equal(fired, 1);
});

test('deleted items never expire; re-adding replaces the deadline', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: START });
  const q = new DeadlineQueue();
  let fired = 0;
  const x = { expire: () => fired++ };
  q.add(x, 20);
  q.delete(x);
  t.mock.timers.tick(100);
  assert.equal(fired, 0);
  q.add(x, 20);
  q.add(x, 200);
  t.mock.timers.tick(199);
  assert.equal(fired, 0, 'the later deadline replaced the earlier one');
  t.mock.timers.tick(1);
  assert.equal(fired, 1);
  assert.equal(q.size, 0);
});
