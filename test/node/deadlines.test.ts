import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeadlineQueue } from '../../src/node/deadlines.js';

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

test('items expire in deadline order, each once, from one shared timer', async () => {
  const q = new DeadlineQueue();
  const expired: string[] = [];
  const item = (name: string) => ({ expire: () => expired.push(name) });
  const a = item('a');
  const b = item('b');
  const c = item('c');
  // Sweeps run on a 50 ms grid, so each deadline fires up to 50 ms late.
  q.add(b, 300);
  q.add(a, 100); // earlier than the armed timer: re-armed
  q.add(c, 500);
  await sleep(220);
  assert.deepEqual(expired, ['a']);
  await sleep(400);
  assert.deepEqual(expired, ['a', 'b', 'c']);
  assert.equal(q.size, 0);
});

test('deleted items never expire; re-adding replaces the deadline', async () => {
  const q = new DeadlineQueue();
  let fired = 0;
  const x = { expire: () => fired++ };
  q.add(x, 20);
  q.delete(x);
  await sleep(50);
  assert.equal(fired, 0);
  q.add(x, 20);
  q.add(x, 200);
  await sleep(120);
  assert.equal(fired, 0, 'the later deadline replaced the earlier one');
  await sleep(160);
  assert.equal(fired, 1);
});
