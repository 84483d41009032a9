/**
 * PacedFlush on its own, on the FakeClock of fakes.ts, with a host the test plays (a list of
 * waiting messages and a writable flag): the burst at start(), then one message per interval,
 * at most one timer, resume() after more was added, stop(), no pacing with interval 0, and a
 * host that turns unwritable or has nothing after all. client.test.ts pins the same pacing as
 * the client's defaults produce it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PacedFlush } from '../../src/browser/flush.js';
import { FakeClock } from './fakes.js';

function setup(interval: number, waiting: string[] = []) {
  const clock = new FakeClock();
  const state = { writable: true, waiting: [...waiting], sent: [] as string[], sendNextCalls: 0 };
  const flush = new PacedFlush(clock, interval, {
    writable: () => state.writable,
    waiting: () => state.waiting.length > 0,
    sendNext: () => {
      state.sendNextCalls++;
      const next = state.waiting.shift();
      if (next === undefined) return false;
      state.sent.push(next);
      return true;
    },
  });
  return { clock, flush, state };
}

const names = (n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `m${from + i}`);

describe('PacedFlush: a burst, then one per interval', () => {
  it('start(burst) sends burst messages at once and the rest one per interval, in order, one timer at a time', () => {
    const { clock, flush, state } = setup(100, names(6));
    flush.start(2);
    assert.deepEqual(state.sent, ['m0', 'm1']);
    assert.deepEqual(clock.pendingDelays(), [100]);
    clock.advance(99);
    assert.deepEqual(state.sent, ['m0', 'm1'], 'not before the interval');
    clock.advance(1);
    assert.deepEqual(state.sent, ['m0', 'm1', 'm2']);
    assert.deepEqual(clock.pendingDelays(), [100], 'the next one armed, only one');
    clock.advance(300);
    assert.deepEqual(state.sent, names(6));
    assert.equal(clock.pending, 0, 'nothing left: no timer');
    assert.deepEqual(clock.delays, [100, 100, 100, 100], 'one timer per paced message');
  });

  it('burst 0 sends nothing at once: the first message waits one interval', () => {
    const { clock, flush, state } = setup(50, names(2));
    flush.start(0);
    assert.deepEqual(state.sent, []);
    clock.advance(50);
    assert.deepEqual(state.sent, ['m0']);
    clock.advance(50);
    assert.deepEqual(state.sent, ['m0', 'm1']);
    assert.equal(clock.pending, 0);
  });

  it('a burst larger than what waits sends everything and arms no timer', () => {
    const { clock, flush, state } = setup(100, names(3));
    flush.start(10);
    assert.deepEqual(state.sent, names(3));
    assert.equal(clock.pending, 0);
    assert.equal(state.sendNextCalls, 3, 'sendNext is not asked once nothing waits');
  });

  it('burst Infinity sends everything at once even with an interval', () => {
    const { clock, flush, state } = setup(100, names(40));
    flush.start(Infinity);
    assert.deepEqual(state.sent, names(40));
    assert.equal(clock.pending, 0);
  });

  it('start() again replaces the pacing timer instead of adding a second one', () => {
    const { clock, flush, state } = setup(100, names(10));
    flush.start(1);
    clock.advance(40);
    flush.start(1);
    assert.deepEqual(state.sent, ['m0', 'm1']);
    assert.deepEqual(clock.pendingDelays(), [100], 'one timer, due a full interval after the second start');
    clock.advance(99);
    assert.deepEqual(state.sent, ['m0', 'm1']);
    clock.advance(1);
    assert.deepEqual(state.sent, ['m0', 'm1', 'm2']);
  });
});

describe('PacedFlush: interval 0', () => {
  it('start() sends everything at once whatever the burst, and no timer is armed', () => {
    const { clock, flush, state } = setup(0, names(25));
    flush.start(1);
    assert.deepEqual(state.sent, names(25));
    assert.equal(clock.pending, 0);
    assert.deepEqual(clock.delays, []);
  });

  it('resume() sends what was added at once', () => {
    const { clock, flush, state } = setup(0);
    flush.start(1);
    state.waiting.push('late1', 'late2');
    flush.resume();
    assert.deepEqual(state.sent, ['late1', 'late2']);
    assert.equal(clock.pending, 0);
  });
});

describe('PacedFlush: resume()', () => {
  it('something added after the flush drained goes out one interval later, not at once', () => {
    const { clock, flush, state } = setup(100, names(1));
    flush.start(5);
    assert.deepEqual(state.sent, ['m0']);
    state.waiting.push('added');
    flush.resume();
    assert.deepEqual(state.sent, ['m0'], 'paced: the burst was spent by start()');
    clock.advance(100);
    assert.deepEqual(state.sent, ['m0', 'added']);
    assert.equal(clock.pending, 0);
  });

  it('while a timer is armed, resume() changes nothing: the queue keeps its pace', () => {
    const { clock, flush, state } = setup(100, names(3));
    flush.start(1);
    clock.advance(60);
    state.waiting.push('added');
    flush.resume();
    flush.resume();
    assert.deepEqual(clock.pendingDelays(), [100]);
    assert.equal(clock.delays.length, 1, 'no second timer');
    clock.advance(40);
    assert.deepEqual(state.sent, ['m0', 'm1'], 'the armed timer still fires on time');
    clock.advance(200);
    assert.deepEqual(state.sent, ['m0', 'm1', 'm2', 'added']);
  });

  it('with nothing waiting, or an unwritable connection, resume() arms nothing', () => {
    const { clock, flush, state } = setup(100);
    flush.resume();
    assert.equal(clock.pending, 0);
    state.waiting.push('x');
    state.writable = false;
    flush.resume();
    assert.equal(clock.pending, 0);
    assert.deepEqual(state.sent, []);
    assert.equal(state.sendNextCalls, 0);
  });
});

describe('PacedFlush: stop() and a connection that goes away', () => {
  it('stop() clears the timer; what waits stays waiting, in order, for the next start()', () => {
    const { clock, flush, state } = setup(100, names(4));
    flush.start(1);
    flush.stop();
    assert.equal(clock.pending, 0);
    clock.advance(10_000);
    assert.deepEqual(state.sent, ['m0']);
    assert.deepEqual(state.waiting, ['m1', 'm2', 'm3']);
    flush.stop(); // twice: harmless
    flush.start(2);
    assert.deepEqual(state.sent, ['m0', 'm1', 'm2']);
  });

  it('a connection that is not writable at start() gets nothing, and no timer is armed', () => {
    const { clock, flush, state } = setup(100, names(3));
    state.writable = false;
    flush.start(10);
    assert.deepEqual(state.sent, []);
    assert.equal(clock.pending, 0);
    assert.equal(state.sendNextCalls, 0);
  });

  it('a connection that stops being writable mid-flush: the due timer sends nothing and arms no other', () => {
    const { clock, flush, state } = setup(100, names(4));
    flush.start(1);
    state.writable = false;
    clock.advance(100);
    assert.deepEqual(state.sent, ['m0']);
    assert.equal(clock.pending, 0, 'the pacing ended');
    state.writable = true;
    flush.resume();
    clock.advance(100);
    assert.deepEqual(state.sent, ['m0', 'm1'], 'resume() picks it up again, paced');
  });

  it('a host that says something waits but has nothing after all: the pacing ends instead of spinning', () => {
    const { clock, state } = setup(100);
    const liar = new PacedFlush(clock, 100, {
      writable: () => true,
      waiting: () => true,
      sendNext: () => {
        state.sendNextCalls++;
        return false;
      },
    });
    liar.start(5);
    assert.equal(state.sendNextCalls, 1, 'the burst stops at the first refusal');
    assert.equal(clock.pending, 1);
    clock.advance(100);
    assert.equal(state.sendNextCalls, 2);
    assert.equal(clock.pending, 0, 'no timer after a refusal');
  });
});
