/**
 * SendQueue on its own: first in, first out under the limit; at the limit the policy decides
 * ('drop-oldest' keeps the newest, 'drop-newest' keeps the oldest, 'error' throws
 * WS_ERR_QUEUE_FULL and changes nothing); `dropped` counts what was discarded; a limit of 0;
 * the bound holds however much is pushed; publishes waiting for their ack count toward the
 * limit but are not dropped by 'drop-oldest' while their answer is on its way. client.test.ts
 * pins the same policies as a user of DuetClient sees them (what reaches the socket after a
 * reconnect).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DuetError } from '../../src/browser/errors.js';
import { SendQueue, type PublishItem, type RawItem } from '../../src/browser/send-queue.js';
import type { QueuePolicy, SendData } from '../../src/browser/types.js';

const POLICIES: QueuePolicy[] = ['drop-oldest', 'drop-newest', 'error'];

const raw = (data: SendData): RawItem => ({ kind: 'raw', data, inFlight: false });

/** Take the oldest waiting raw message out, as the sender does when it writes one. */
function shift(queue: SendQueue): SendData | undefined {
  const first = queue.firstWaiting();
  if (first === undefined) return undefined;
  queue.remove(first[0]);
  return (first[0] as RawItem).data;
}

function drain(queue: SendQueue): SendData[] {
  const out: SendData[] = [];
  for (let item = shift(queue); item !== undefined; item = shift(queue)) out.push(item);
  return out;
}

describe('SendQueue: under the limit', () => {
  it('keeps every message in order, whatever the policy; shift() takes the oldest, undefined when empty', () => {
    for (const policy of POLICIES) {
      const queue = new SendQueue(5, policy);
      assert.equal(queue.length, 0);
      assert.equal(shift(queue), undefined, policy);
      for (const m of ['a', 'b', 'c']) queue.push(raw(m));
      assert.equal(queue.length, 3);
      assert.equal(shift(queue), 'a', policy);
      assert.equal(queue.length, 2);
      assert.deepEqual(drain(queue), ['b', 'c'], policy);
      assert.equal(queue.dropped, 0, policy);
    }
  });

  it('keeps every data type as the same object (strings, ArrayBuffer, views)', () => {
    const queue = new SendQueue(10, 'drop-oldest');
    const buffer = new ArrayBuffer(4);
    const view = new Uint8Array([1, 2, 3]);
    queue.push(raw('text'));
    queue.push(raw(buffer));
    queue.push(raw(view));
    const out = drain(queue);
    assert.equal(out[0], 'text');
    assert.equal(out[1], buffer);
    assert.equal(out[2], view);
  });

  it('filling up to exactly the limit drops nothing', () => {
    for (const policy of POLICIES) {
      const queue = new SendQueue(3, policy);
      for (const m of ['1', '2', '3']) queue.push(raw(m));
      assert.equal(queue.length, 3, policy);
      assert.equal(queue.dropped, 0, policy);
    }
  });

  it('a shift makes room again: the next push is kept without dropping anything', () => {
    for (const policy of POLICIES) {
      const queue = new SendQueue(2, policy);
      queue.push(raw('1'));
      queue.push(raw('2'));
      shift(queue);
      queue.push(raw('3'));
      assert.deepEqual(drain(queue), ['2', '3'], policy);
      assert.equal(queue.dropped, 0, policy);
    }
  });
});

describe('SendQueue: full', () => {
  it("'drop-oldest' discards the oldest for each new message: the newest `limit` stay, in order", () => {
    const queue = new SendQueue(3, 'drop-oldest');
    for (const m of ['1', '2', '3', '4', '5']) queue.push(raw(m));
    assert.equal(queue.length, 3);
    assert.equal(queue.dropped, 2);
    assert.deepEqual(drain(queue), ['3', '4', '5']);
  });

  it("'drop-newest' discards the new message: the oldest `limit` stay, in order", () => {
    const queue = new SendQueue(3, 'drop-newest');
    for (const m of ['1', '2', '3', '4', '5']) queue.push(raw(m));
    assert.equal(queue.length, 3);
    assert.equal(queue.dropped, 2);
    assert.deepEqual(drain(queue), ['1', '2', '3']);
  });

  it("'error' throws a DuetError WS_ERR_QUEUE_FULL naming the limit, and keeps the queue and dropped as they were", () => {
    const queue = new SendQueue(2, 'error');
    queue.push(raw('1'));
    queue.push(raw('2'));
    assert.throws(
      () => queue.push(raw('3')),
      (err: unknown) => {
        assert.ok(err instanceof DuetError);
        assert.equal(err.code, 'WS_ERR_QUEUE_FULL');
        assert.equal(err.message, 'send queue full (2 messages not yet sent or acknowledged)');
        return true;
      },
    );
    assert.throws(() => queue.push(raw('4')), { code: 'WS_ERR_QUEUE_FULL' }, 'every push while full');
    assert.equal(queue.dropped, 0, 'nothing was dropped: the caller was told');
    assert.deepEqual(drain(queue), ['1', '2']);
  });

  it('the bound holds: 10 000 pushes into a queue of 100 keep 100 and count 9 900 dropped', () => {
    for (const policy of ['drop-oldest', 'drop-newest'] as const) {
      const queue = new SendQueue(100, policy);
      for (let i = 0; i < 10_000; i++) queue.push(raw(String(i)));
      assert.equal(queue.length, 100, policy);
      assert.equal(queue.dropped, 9_900, policy);
      const kept = drain(queue);
      const first = policy === 'drop-oldest' ? 9_900 : 0;
      assert.deepEqual(
        kept,
        Array.from({ length: 100 }, (_, i) => String(first + i)),
        policy,
      );
    }
  });
});

describe('SendQueue: limit 0 and clear()', () => {
  it('limit 0 keeps nothing: the drop policies count every message, error throws at the first', () => {
    for (const policy of ['drop-oldest', 'drop-newest'] as const) {
      const queue = new SendQueue(0, policy);
      queue.push(raw('a'));
      queue.push(raw('b'));
      assert.equal(queue.length, 0, policy);
      assert.equal(queue.dropped, 2, policy);
      assert.equal(shift(queue), undefined, policy);
    }
    const strict = new SendQueue(0, 'error');
    assert.throws(() => strict.push(raw('a')), { code: 'WS_ERR_QUEUE_FULL' });
    assert.equal(strict.length, 0);
  });

  it('clear() empties the queue but keeps the dropped count; the queue takes messages again', () => {
    const queue = new SendQueue(2, 'drop-oldest');
    for (const m of ['1', '2', '3']) queue.push(raw(m));
    assert.equal(queue.dropped, 1);
    queue.clear();
    assert.equal(queue.length, 0);
    assert.equal(shift(queue), undefined);
    assert.equal(queue.dropped, 1, 'a total, not the current count');
    queue.push(raw('4'));
    queue.push(raw('5'));
    assert.equal(queue.dropped, 1, 'the full limit is free again');
    assert.deepEqual(drain(queue), ['4', '5']);
  });
});

function publish(id: string, inFlight = false): PublishItem {
  return {
    kind: 'publish',
    id,
    topic: 'chat',
    entry: `{"topic":"chat","data":1,"id":"${id}"}`,
    bytes: 0,
    inFlight,
    batched: false,
    sent: inFlight,
    scope: undefined,
    firstSentAt: 0,
    settle: () => {},
  };
}

describe('SendQueue: publishes waiting for their ack', () => {
  it('count toward the limit; waiting and firstWaiting() skip those in flight; push() returns what it dropped', () => {
    const queue = new SendQueue(3, 'drop-oldest');
    const a = publish('a', true);
    const b = publish('b');
    assert.equal(queue.push(a), undefined);
    assert.equal(queue.push(b), undefined);
    assert.equal(queue.push(raw('r')), undefined);
    assert.equal(queue.length, 3);
    assert.equal(queue.waiting, 2);
    assert.deepEqual(queue.firstWaiting(), [b, 1]);
    // Full: the oldest not in flight goes (a's ack is on its way).
    const c = publish('c');
    assert.equal(queue.push(c), b);
    assert.deepEqual(
      queue.all().map((i) => (i.kind === 'raw' ? i.data : i.id)),
      ['a', 'r', 'c'],
    );
    assert.equal(queue.dropped, 1);
  });

  it("'drop-oldest' with every item in flight drops the new one; 'drop-newest' always does", () => {
    const oldest = new SendQueue(2, 'drop-oldest');
    oldest.push(publish('a', true));
    oldest.push(publish('b', true));
    const c = publish('c');
    assert.equal(oldest.push(c), c);
    assert.deepEqual(
      oldest.all().map((i) => (i as PublishItem).id),
      ['a', 'b'],
    );
    const newest = new SendQueue(1, 'drop-newest');
    newest.push(publish('a'));
    const d = publish('d');
    assert.equal(newest.push(d), d);
    assert.equal(newest.dropped, 1);
  });

  it('remove() takes one item out wherever it is (an ack); an item not there is ignored', () => {
    const queue = new SendQueue(5, 'error');
    const items = [publish('a', true), publish('b', true), publish('c')];
    for (const item of items) queue.push(item);
    queue.remove(items[1]);
    queue.remove(items[1]);
    assert.deepEqual(
      queue.all().map((i) => (i as PublishItem).id),
      ['a', 'c'],
    );
    assert.equal(queue.firstWaiting()?.[0], items[2]);
    assert.equal(queue.clear().length, 2);
    assert.equal(queue.firstWaiting(), undefined);
  });
});
