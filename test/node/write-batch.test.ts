import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batchSlotOf, type BatchOwner, type BatchSlot } from '../../src/node/write-batch.js';

function owner(name: number, log: Array<[number, number]>): BatchOwner {
  return {
    batchSlot: undefined,
    flushTurn(slot: BatchSlot) {
      log.push([name, slot.bytes]);
    },
  };
}

test('every connection that wrote in a turn is flushed once, in the next check phase, in order of first write', async () => {
  const log: Array<[number, number]> = [];
  const conns = [0, 1, 2].map((i) => owner(i, log));
  for (const c of conns) batchSlotOf(c).bytes += 10;
  batchSlotOf(conns[1]).bytes += 5;
  assert.equal(batchSlotOf(conns[1]), conns[1].batchSlot, 'one slot per connection per turn');
  assert.deepEqual(log, [], 'nothing flushed synchronously');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log, [
    [0, 10],
    [1, 15],
    [2, 10],
  ]);
  assert.deepEqual(
    conns.map((c) => c.batchSlot),
    [undefined, undefined, undefined],
    'no slot held between turns',
  );
  batchSlotOf(conns[1]).bytes += 1;
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log.at(-1), [1, 1], 'a later turn gets its own flush, from a clean (reused) slot');
});

test('a slot is returned clean: no frames, counters or callbacks carried into the next turn', async () => {
  const log: Array<[number, number]> = [];
  const a = owner(0, log);
  const slot = batchSlotOf(a);
  slot.frames.push(Buffer.from('x'));
  slot.bytes = 3;
  slot.payloadBytes = 1;
  slot.turnBytes = 7;
  slot.socketCorked = true;
  slot.callbacks = [() => {}];
  await new Promise((r) => setImmediate(r));
  const b = owner(1, log);
  const next = batchSlotOf(b);
  assert.equal(next.owner, b);
  assert.deepEqual(
    [next.frames.length, next.bytes, next.payloadBytes, next.turnBytes, next.socketCorked, next.callbacks],
    [0, 0, 0, 0, false, undefined],
  );
  await new Promise((r) => setImmediate(r));
});

test('a write made while the batch is being flushed lands in the next turn', async () => {
  const log: Array<[number, number]> = [];
  const late = owner(9, log);
  const first: BatchOwner = {
    batchSlot: undefined,
    flushTurn() {
      log.push([0, 0]);
      batchSlotOf(late).bytes += 4;
    },
  };
  batchSlotOf(first);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log, [[0, 0]]);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log, [
    [0, 0],
    [9, 4],
  ]);
});
