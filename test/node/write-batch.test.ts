import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scheduleUncork } from '../../src/node/write-batch.js';

test('everything scheduled in one turn is uncorked once, in the next check phase', async () => {
  const calls: number[] = [];
  const conns = [0, 1, 2].map((i) => ({ uncork: () => calls.push(i) }));
  for (const c of conns) scheduleUncork(c);
  assert.deepEqual(calls, [], 'nothing flushed synchronously');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(calls, [0, 1, 2]);
  scheduleUncork(conns[1]);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(calls, [0, 1, 2, 1], 'a later turn gets its own flush');
});
