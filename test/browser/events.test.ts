/**
 * The client's Emitter on its own: on() returns the way off, listeners run in the order
 * added, each function once per event, has(), a listener that throws is printed and does not
 * stop the others (nor reach the code that emitted), and what adding or removing listeners
 * during an emit does.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Emitter } from '../../src/browser/events.js';

describe('Emitter: on, off, has', () => {
  it('emit calls every listener of that event, in the order added, with the payload', () => {
    const emitter = new Emitter();
    const seen: string[] = [];
    emitter.on('latency', (ms) => seen.push(`a${ms}`));
    emitter.on('latency', (ms) => seen.push(`b${ms}`));
    emitter.on('retries', (n) => seen.push(`retries${n}`));
    emitter.emit('latency', 12);
    assert.deepEqual(seen, ['a12', 'b12']);
    emitter.emit('retries', 3);
    assert.deepEqual(seen, ['a12', 'b12', 'retries3']);
  });

  it('the payload object is passed as is, not copied', () => {
    const emitter = new Emitter();
    const close = { code: 1006, reason: '', wasClean: false };
    let got: unknown;
    emitter.on('close', (info) => (got = info));
    emitter.emit('close', close);
    assert.equal(got, close);
  });

  it('emit with no listener does nothing and does not throw', () => {
    const emitter = new Emitter();
    assert.doesNotThrow(() => emitter.emit('open', undefined));
    assert.doesNotThrow(() => emitter.emit('error', new Error('nobody listens')));
  });

  it('the function on() returns removes that listener only, and a second call is harmless', () => {
    const emitter = new Emitter();
    const seen: string[] = [];
    const offA = emitter.on('status', (s) => seen.push(`a:${s}`));
    emitter.on('status', (s) => seen.push(`b:${s}`));
    offA();
    offA();
    emitter.emit('status', 'open');
    assert.deepEqual(seen, ['b:open']);
  });

  it('the same function added twice is one listener: called once, removed by one off', () => {
    const emitter = new Emitter();
    let calls = 0;
    const listener = (): void => void calls++;
    const off1 = emitter.on('open', listener);
    emitter.on('open', listener);
    emitter.emit('open', undefined);
    assert.equal(calls, 1);
    off1();
    emitter.emit('open', undefined);
    assert.equal(calls, 1);
    assert.equal(emitter.has('open'), false);
  });

  it('the same function on two events is two listeners; removing one leaves the other', () => {
    const emitter = new Emitter();
    const seen: unknown[] = [];
    const listener = (payload: unknown): void => void seen.push(payload);
    const offLatency = emitter.on('latency', listener);
    emitter.on('retries', listener);
    offLatency();
    emitter.emit('latency', 5);
    emitter.emit('retries', 2);
    assert.deepEqual(seen, [2]);
  });

  it('has() says whether an event has a listener now', () => {
    const emitter = new Emitter();
    assert.equal(emitter.has('error'), false);
    const off = emitter.on('error', () => {});
    assert.equal(emitter.has('error'), true);
    assert.equal(emitter.has('message'), false, 'per event');
    off();
    assert.equal(emitter.has('error'), false, 'false again once the last one is gone');
  });
});

describe('Emitter: listeners that throw or change the listeners', () => {
  it('a listener that throws is printed with console.error; the next listeners still run; emit does not throw', (t) => {
    const printed = t.mock.method(console, 'error', () => {});
    const emitter = new Emitter();
    const seen: string[] = [];
    const bug = new Error('listener bug');
    emitter.on('status', () => {
      throw bug;
    });
    emitter.on('status', (s) => seen.push(s));
    assert.doesNotThrow(() => emitter.emit('status', 'reconnecting'));
    assert.deepEqual(seen, ['reconnecting']);
    assert.equal(printed.mock.callCount(), 1);
    assert.deepEqual(printed.mock.calls[0]?.arguments, [bug]);
  });

  it('a listener added during an emit is not called by that emit, only by the next', () => {
    const emitter = new Emitter();
    const seen: string[] = [];
    emitter.on('latency', (ms) => {
      seen.push(`first${ms}`);
      if (ms === 1) emitter.on('latency', (later) => seen.push(`added${later}`));
    });
    emitter.emit('latency', 1);
    assert.deepEqual(seen, ['first1']);
    emitter.emit('latency', 2);
    assert.deepEqual(seen, ['first1', 'first2', 'added2']);
  });

  it("a listener removed by an earlier one during an emit still gets that emit (Node's EventEmitter rule), not the next", () => {
    const emitter = new Emitter();
    const seen: string[] = [];
    let offSecond = (): void => {};
    emitter.on('retries', (n) => {
      seen.push(`first${n}`);
      offSecond();
    });
    offSecond = emitter.on('retries', (n) => seen.push(`second${n}`));
    emitter.emit('retries', 1);
    emitter.emit('retries', 2);
    assert.deepEqual(seen, ['first1', 'second1', 'first2']);
  });

  it('a listener that removes itself runs once', () => {
    const emitter = new Emitter();
    let calls = 0;
    const off = emitter.on('open', () => {
      calls++;
      off();
    });
    emitter.emit('open', undefined);
    emitter.emit('open', undefined);
    assert.equal(calls, 1);
    assert.equal(emitter.has('open'), false);
  });
});
