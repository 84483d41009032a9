import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { batchSlotOf, type BatchOwner, type BatchSlot } from '../../src/node/write-batch.js';
import { WebSocket, WebSocketServer } from '../../src/index.js';
import { startServer } from '../helpers.js';

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

test('a delayed slot (writeDelay) is not flushed at the end of the turn but once, by its timer, with what later turns added', async () => {
  const log: Array<[number, number]> = [];
  const a = owner(0, log);
  const b = owner(1, log);
  batchSlotOf(a, 30).bytes += 2;
  batchSlotOf(b).bytes += 7;
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log, [[1, 7]], 'the undelayed slot is flushed at the end of its turn, the delayed one waits');
  batchSlotOf(a, 30).bytes += 3;
  assert.equal(a.batchSlot?.bytes, 5, 'a later turn adds to the same delayed slot');
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(log, [
    [1, 7],
    [0, 5],
  ]);
  assert.equal(a.batchSlot, undefined);
});

test('writeDelay: frames sent over several turns leave in one socket write; the default writes once per turn', async () => {
  for (const writeDelay of [0, 1000]) {
    const { wss, port, close } = await startServer({ writeDelay });
    try {
      const connected = once(wss, 'connection');
      const client = new WebSocket(`ws://127.0.0.1:${port}`);
      const [conn] = (await connected) as [WebSocket];
      await once(client, 'open');
      const socket = (conn as unknown as { socket: { write: (...args: unknown[]) => boolean } }).socket;
      let writes = 0;
      const write = socket.write.bind(socket);
      socket.write = (...args: unknown[]) => {
        writes++;
        return write(...args);
      };
      const got: string[] = [];
      const all = new Promise<void>((resolve) =>
        client.on('message', (data) => {
          got.push((data as Buffer).toString());
          if (got.length === 3) resolve();
        }),
      );
      for (const text of ['a', 'b', 'c']) {
        conn.send(text);
        await new Promise((r) => setImmediate(r));
      }
      await all;
      assert.deepEqual(got, ['a', 'b', 'c'], `writeDelay ${writeDelay}: in order`);
      assert.equal(writes, writeDelay === 0 ? 3 : 1, `writeDelay ${writeDelay}: socket writes`);
      client.close();
      await once(client, 'close');
    } finally {
      await close();
    }
  }
});

test('writeDelay must be a whole number of ms from 0 to 1000', () => {
  for (const bad of [-1, 1.5, 1001, Number.NaN, '5' as unknown as number]) {
    assert.throws(() => new WebSocketServer({ noServer: true, writeDelay: bad }), RangeError, String(bad));
  }
  const ok = new WebSocketServer({ noServer: true, writeDelay: 1000 });
  ok.close();
});
