/**
 * TopicTracker on its own: the per-topic bookkeeping of docs/protocol.md "A client, step by
 * step" (handlers, the position {epoch, last}, the pending subscribe, gaps and resets), with no
 * socket: the test plays the server's `subscribed` and `message` answers.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TopicTracker, type TopicHandler } from '../../src/browser/topics.js';

const h1: TopicHandler = () => {};
const h2: TopicHandler = () => {};

/** A tracker with `topic` subscribed and answered: position (epoch, seq). */
function live(topic = 't', epoch = 'e1', seq = 10): TopicTracker {
  const tracker = new TopicTracker();
  tracker.add(topic, h1);
  tracker.request(topic);
  tracker.subscribed(topic, epoch, seq, false);
  return tracker;
}

describe('TopicTracker: handlers', () => {
  it('add says whether a subscribe must go out (first handler), remove whether an unsubscribe must (last one)', () => {
    const tracker = new TopicTracker();
    assert.equal(tracker.add('t', h1), true);
    assert.equal(tracker.add('t', h2), false);
    assert.equal(tracker.add('t', h1), false, 'the same handler again');
    assert.deepEqual(tracker.handlers('t'), [h1, h2], 'each handler once, in the order added');
    assert.equal(tracker.hasHandler('t', h2), true);
    assert.equal(tracker.remove('t', h1), false);
    assert.equal(tracker.remove('t', h1), false, 'not there any more');
    assert.equal(tracker.remove('t', h2), true);
    assert.equal(tracker.hasHandler('t', h2), false);
    assert.deepEqual(tracker.handlers('t'), []);
    assert.deepEqual([...tracker.names()], []);
  });

  it('unknown topics: no handlers, nothing to remove, no position, empty epoch, no request', () => {
    const tracker = new TopicTracker();
    assert.equal(tracker.remove('nope', h1), false);
    assert.deepEqual(tracker.handlers('nope'), []);
    assert.equal(tracker.hasHandler('nope', h1), false);
    assert.equal(tracker.position('nope'), undefined);
    assert.equal(tracker.epoch('nope'), '');
    assert.equal(tracker.request('nope'), undefined);
    assert.equal(tracker.subscribed('nope', 'e', 1, false), undefined);
    assert.equal(tracker.message('nope', 1), 'ignore');
  });

  it('names lists every topic with a handler', () => {
    const tracker = new TopicTracker();
    tracker.add('a', h1);
    tracker.add('b', h1);
    tracker.add('c', h1);
    tracker.remove('b', h1);
    assert.deepEqual([...tracker.names()], ['a', 'c']);
  });
});

describe('TopicTracker: subscribe requests and the position', () => {
  it('a first subscribe asks for live delivery only; the answer is a reset from no position, which then is the position', () => {
    const tracker = new TopicTracker();
    tracker.add('t', h1);
    assert.equal(tracker.position('t'), undefined);
    assert.deepEqual(tracker.request('t'), { type: 'subscribe', topic: 't' });
    assert.deepEqual(tracker.subscribed('t', 'e1', 41, false), { topic: 't', epoch: 'e1', seq: 41, previous: null });
    assert.deepEqual(tracker.position('t'), { epoch: 'e1', seq: 41 });
    assert.equal(tracker.epoch('t'), 'e1');
  });

  it('with a position, the subscribe asks to recover from it (since + epoch)', () => {
    const tracker = live('t', 'e1', 41);
    assert.deepEqual(tracker.request('t'), { type: 'subscribe', topic: 't', since: 41, epoch: 'e1' });
  });

  it('a position given to add() is used by the first subscribe', () => {
    const tracker = new TopicTracker();
    tracker.add('t', h1, { epoch: 'saved', seq: 7 });
    assert.deepEqual(tracker.position('t'), { epoch: 'saved', seq: 7 });
    assert.deepEqual(tracker.request('t'), { type: 'subscribe', topic: 't', since: 7, epoch: 'saved' });
    assert.equal(tracker.subscribed('t', 'saved', 9, true), undefined, 'recovered: no reset');
    assert.deepEqual(
      tracker.position('t'),
      { epoch: 'saved', seq: 7 },
      'the replayed messages move it on, not the subscribed',
    );
  });

  it("recovered: no reset; the position keeps its seq, the epoch is the answer's", () => {
    const tracker = live('t', 'e1', 10);
    tracker.request('t');
    assert.equal(tracker.subscribed('t', 'e1-renamed', 15, true), undefined);
    assert.deepEqual(tracker.position('t'), { epoch: 'e1-renamed', seq: 10 });
  });

  it("not recovered (history gone, or a new epoch): a reset naming the old position; live delivery continues after the answer's seq", () => {
    const tracker = live('t', 'e1', 10);
    tracker.request('t');
    assert.deepEqual(tracker.subscribed('t', 'e2', 3, false), {
      topic: 't',
      epoch: 'e2',
      seq: 3,
      previous: { epoch: 'e1', seq: 10 },
    });
    assert.deepEqual(tracker.position('t'), { epoch: 'e2', seq: 3 });
    assert.equal(tracker.message('t', 4), 'deliver');
  });

  it('"recovered" with no position to recover from still resets (first subscribe)', () => {
    const tracker = new TopicTracker();
    tracker.add('t', h1);
    tracker.request('t');
    assert.deepEqual(tracker.subscribed('t', 'e1', 5, true), { topic: 't', epoch: 'e1', seq: 5, previous: null });
    assert.deepEqual(tracker.position('t'), { epoch: 'e1', seq: 5 });
  });

  it('the last handler removed forgets the position: a later subscribe starts fresh, without since', () => {
    const tracker = live('t', 'e1', 10);
    tracker.remove('t', h1);
    assert.equal(tracker.add('t', h2), true);
    assert.equal(tracker.position('t'), undefined);
    assert.deepEqual(tracker.request('t'), { type: 'subscribe', topic: 't' });
  });
});

describe('TopicTracker: messages', () => {
  it('the next seq is delivered and moves the position; seqs already seen are ignored', () => {
    const tracker = live('t', 'e1', 10);
    assert.equal(tracker.message('t', 11), 'deliver');
    assert.equal(tracker.message('t', 12), 'deliver');
    assert.deepEqual(tracker.position('t'), { epoch: 'e1', seq: 12 });
    for (const seen of [12, 11, 5, 0]) assert.equal(tracker.message('t', seen), 'ignore', `seq ${seen}`);
    assert.deepEqual(tracker.position('t'), { epoch: 'e1', seq: 12 });
  });

  it('before the first subscribed nothing is delivered (no position to count from)', () => {
    const tracker = new TopicTracker();
    tracker.add('t', h1);
    assert.equal(tracker.message('t', 1), 'ignore');
    tracker.request('t');
    assert.equal(tracker.message('t', 1), 'ignore');
  });

  it('a gap is reported and does not move the position; the resubscribe it causes asks from the last seq delivered', () => {
    const tracker = live('t', 'e1', 10);
    assert.equal(tracker.message('t', 11), 'deliver');
    assert.equal(tracker.message('t', 13), 'gap');
    assert.deepEqual(tracker.position('t'), { epoch: 'e1', seq: 11 });
    assert.deepEqual(tracker.request('t'), { type: 'subscribe', topic: 't', since: 11, epoch: 'e1' });
  });

  it('while a subscribe is pending, messages are ignored (its replay brings them again, in order); delivery resumes after the answer', () => {
    const tracker = live('t', 'e1', 10);
    assert.equal(tracker.message('t', 12), 'gap');
    tracker.request('t');
    assert.deepEqual(tracker.pendingNames(), ['t']);
    assert.equal(tracker.message('t', 13), 'ignore', 'no second gap while resubscribing');
    assert.equal(tracker.message('t', 11), 'ignore', 'not even the missing one, live');
    assert.equal(tracker.subscribed('t', 'e1', 13, true), undefined);
    assert.deepEqual(tracker.pendingNames(), []);
    // The replay: 11, 12, 13 in order, then live.
    assert.deepEqual(
      [11, 12, 13, 14].map((seq) => tracker.message('t', seq)),
      ['deliver', 'deliver', 'deliver', 'deliver'],
    );
    assert.deepEqual(tracker.position('t'), { epoch: 'e1', seq: 14 });
  });

  it('topics are independent: a gap or pending subscribe on one leaves the others delivering', () => {
    const tracker = live('a', 'ea', 1);
    tracker.add('b', h1);
    tracker.request('b');
    tracker.subscribed('b', 'eb', 100, false);
    assert.equal(tracker.message('a', 5), 'gap');
    tracker.request('a');
    assert.equal(tracker.message('b', 101), 'deliver');
    assert.deepEqual(tracker.pendingNames(), ['a']);
    assert.deepEqual(tracker.position('b'), { epoch: 'eb', seq: 101 });
  });
});

describe('TopicTracker: unblock', () => {
  it("unblock(topic) clears that topic's pending subscribe (it failed): messages count again and a new subscribe may go", () => {
    const tracker = live('a', 'ea', 1);
    tracker.add('b', h1);
    tracker.request('b');
    tracker.request('a');
    assert.deepEqual(tracker.pendingNames().sort(), ['a', 'b']);
    tracker.unblock('a');
    assert.deepEqual(tracker.pendingNames(), ['b']);
    assert.equal(tracker.message('a', 2), 'deliver');
    tracker.unblock('unknown'); // no error
  });

  it('unblock() clears every topic (the connection ended: nothing is on the wire any more)', () => {
    const tracker = live('a', 'ea', 1);
    tracker.add('b', h1);
    tracker.request('a');
    tracker.request('b');
    tracker.unblock();
    assert.deepEqual(tracker.pendingNames(), []);
  });
});
