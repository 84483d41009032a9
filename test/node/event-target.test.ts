/**
 * WsEventTarget on its own: the WHATWG EventTarget side (onX attributes, addEventListener with
 * once / signal / handleEvent objects, removeEventListener, dispatchEvent) layered over the
 * EventEmitter events ws-style code uses. A small subclass plays the connection: the test
 * emits 'open' / 'message' / 'close' / 'error' as the connection does. Where the DOM's rules
 * decide (removal during a dispatch, once, event handler attributes), the same steps run on
 * Node's own EventTarget first, as the reference.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WsEventTarget } from '../../src/node/event-target.js';
import { WsCloseEvent, WsErrorEvent, WsEvent, WsMessageEvent } from '../../src/node/events.js';

class Target extends WsEventTarget {
  readyState = 1;
  wasCleanValue = true;
  peerClosed = true;
  /** How often the binary payload was converted for a WHATWG listener. */
  conversions = 0;
  get wasClean(): boolean {
    return this.wasCleanValue;
  }
  protected get closeFrameReceived(): boolean {
    return this.peerClosed;
  }
  protected get eventOrigin(): string {
    return 'ws://origin.test';
  }
  protected override whatwgMessageData(data: unknown): unknown {
    this.conversions++;
    return { converted: data };
  }
  /** As the connection does when a message arrives after it stopped being OPEN. */
  setDispatch(on: boolean): void {
    this.whatwgDispatch = on;
  }
}

/**
 * A browser-like target with an onopen attribute, on Node's EventTarget (the reference): the
 * handler's listener is added at the first non-null value and keeps its place (HTML "event
 * handler IDL attributes"); null removes it.
 */
class Reference extends EventTarget {
  private handler: ((e: Event) => void) | null = null;
  private readonly entry = (e: Event): void => this.handler?.call(this, e);
  private registered = false;
  get onopen(): ((e: Event) => void) | null {
    return this.handler;
  }
  set onopen(fn: ((e: Event) => void) | null) {
    this.handler = fn;
    if (fn === null) {
      if (this.registered) this.removeEventListener('open', this.entry);
      this.registered = false;
    } else if (!this.registered) {
      this.addEventListener('open', this.entry);
      this.registered = true;
    }
  }
}

/** What the steps below need of a target, ours or the reference. */
interface OpenTarget {
  onopen: unknown;
  addEventListener(type: string, l: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: string, l: () => void): void;
}

/** Run `steps` on the reference and on a WsEventTarget (fired with emit and with dispatchEvent); all must agree. */
function sameAsReference<T>(steps: (t: OpenTarget, fire: () => void) => T, expected: T): void {
  const ref = new Reference();
  assert.deepEqual(
    steps(ref, () => ref.dispatchEvent(new Event('open'))),
    expected,
    "Node's EventTarget",
  );
  const emitted = new Target();
  assert.deepEqual(
    steps(emitted, () => emitted.emit('open')),
    expected,
    'WsEventTarget, emit()',
  );
  const dispatched = new Target();
  assert.deepEqual(
    steps(dispatched, () => dispatched.dispatchEvent(new WsEvent('open', dispatched))),
    expected,
    'WsEventTarget, dispatchEvent()',
  );
}

/** A listener that records the events it gets, with `this`. */
function recorder(): { calls: Array<{ self: unknown; event: WsEvent }>; fn: (this: unknown, event: WsEvent) => void } {
  const calls: Array<{ self: unknown; event: WsEvent }> = [];
  return {
    calls,
    fn(this: unknown, event: WsEvent) {
      calls.push({ self: this, event });
    },
  };
}

describe('WsEventTarget: onX attributes', () => {
  for (const type of ['open', 'message', 'error', 'close'] as const) {
    it(`on${type}: null at first, set, replaced (the old one no longer called), cleared with null`, () => {
      const t = new Target();
      const key = `on${type}` as const;
      assert.equal(t[key], null);
      const log: string[] = [];
      const first = (): void => void log.push('first');
      const second = (): void => void log.push('second');
      const fire = (): void => {
        if (type === 'message') t.emit('message', Buffer.from('x'), false);
        else if (type === 'close') t.emit('close', 1000, Buffer.alloc(0));
        else if (type === 'error') t.emit('error', new Error('e'));
        else t.emit('open');
      };
      t[key] = first;
      assert.equal(t[key], first);
      fire();
      t[key] = second;
      assert.equal(t[key], second);
      fire();
      t[key] = second; // the same again: still once
      fire();
      t[key] = null;
      assert.equal(t[key], null);
      if (type !== 'error') fire(); // an 'error' nobody listens to throws, as EventEmitter's does
      assert.deepEqual(log, ['first', 'second', 'second']);
      assert.equal(t.listenerCount(type), 0, 'nothing left behind');
    });
  }

  it('a value that is not a function reads back as null and is never called', () => {
    const t = new Target();
    t.onopen = 'not a function' as unknown as null;
    assert.equal(t.onopen, null);
    t.onmessage = { handleEvent: () => assert.fail('an object is not an event handler') } as unknown as null;
    assert.equal(t.onmessage, null);
    t.emit('open');
    t.emit('message', Buffer.from('x'), false);
    assert.equal(t.listenerCount('open') + t.listenerCount('message'), 0);
  });
});

describe('WsEventTarget: addEventListener and removeEventListener', () => {
  it('a function is called with the target as this; a handleEvent object with itself, its method looked up at each dispatch', () => {
    const t = new Target();
    const r = recorder();
    t.addEventListener('open', r.fn);
    const log: string[] = [];
    const obj = {
      handleEvent(this: unknown, event: WsEvent) {
        log.push(`first ${event.type} ${this === obj}`);
      },
    };
    t.addEventListener('open', obj);
    t.emit('open');
    obj.handleEvent = function (this: unknown, event: WsEvent) {
      log.push(`second ${event.type} ${this === obj}`);
    };
    t.emit('open');
    assert.equal(r.calls.length, 2);
    assert.equal(r.calls[0].self, t);
    assert.deepEqual(log, ['first open true', 'second open true']);
  });

  it('the same listener for the same type is added once (also with once:, also a handleEvent object); per type it is separate', () => {
    const t = new Target();
    let n = 0;
    const fn = (): void => void n++;
    const obj = { handleEvent: () => void n++ };
    t.addEventListener('open', fn);
    t.addEventListener('open', fn);
    t.addEventListener('open', fn, { once: true });
    t.addEventListener('open', fn, true);
    t.addEventListener('open', obj);
    t.addEventListener('open', obj);
    t.emit('open');
    assert.equal(n, 2);
    t.addEventListener('close', fn);
    t.emit('close', 1000, Buffer.alloc(0));
    assert.equal(n, 3);
  });

  it('null and undefined listeners are ignored by add and remove', () => {
    const t = new Target();
    t.addEventListener('open', null);
    t.addEventListener('open', undefined as unknown as null);
    t.removeEventListener('open', null);
    assert.equal(t.listenerCount('open'), 0);
  });

  it('once: called for the first event only, then gone; a once listener can be removed before it fires', () => {
    const t = new Target();
    let a = 0;
    let b = 0;
    const fa = (): void => void a++;
    const fb = (): void => void b++;
    t.addEventListener('open', fa, { once: true });
    t.addEventListener('open', fb, { once: true });
    t.removeEventListener('open', fb);
    t.emit('open');
    t.emit('open');
    assert.deepEqual([a, b], [1, 0]);
    assert.equal(t.listenerCount('open'), 0);
    t.addEventListener('open', fa, { once: true }); // may be added again once it has fired
    t.emit('open');
    assert.equal(a, 2);
  });

  it('signal: an aborted signal adds nothing; aborting later removes the listener (and only it)', () => {
    const t = new Target();
    const log: string[] = [];
    const before = new AbortController();
    before.abort();
    t.addEventListener('open', () => log.push('never'), { signal: before.signal });
    const later = new AbortController();
    t.addEventListener('open', () => log.push('until abort'), { signal: later.signal });
    t.addEventListener('open', () => log.push('stays'));
    t.emit('open');
    later.abort();
    t.emit('open');
    assert.deepEqual(log, ['until abort', 'stays', 'stays']);
    const onceSignal = new AbortController();
    t.addEventListener('close', () => log.push('once'), { once: true, signal: onceSignal.signal });
    t.emit('close', 1000, Buffer.alloc(0));
    onceSignal.abort(); // after it fired: nothing to remove, no error
    assert.equal(log.at(-1), 'once');
  });

  it('removeEventListener takes out that listener for that type only; an unknown one is a no-op', () => {
    const t = new Target();
    const log: string[] = [];
    const fn = (e: WsEvent): void => void log.push(e.type);
    t.addEventListener('open', fn);
    t.addEventListener('close', fn);
    t.removeEventListener('open', () => {});
    t.removeEventListener('message', fn);
    t.removeEventListener('open', fn);
    t.emit('open');
    t.emit('close', 1000, Buffer.alloc(0));
    assert.deepEqual(log, ['close']);
  });

  it('during a dispatch: a listener added is not called for that event; one that removes itself does not stop the next', () => {
    const t = new Target();
    const log: string[] = [];
    const added = (): void => void log.push('added');
    const self = (): void => {
      log.push('self');
      t.removeEventListener('open', self);
      t.addEventListener('open', added);
    };
    t.addEventListener('open', self);
    t.addEventListener('open', () => log.push('next'));
    t.emit('open');
    assert.deepEqual(log, ['self', 'next']);
    t.emit('open');
    assert.deepEqual(log, ['self', 'next', 'next', 'added']);
  });

  it('listeners run in the order they were added, ws-style and WHATWG-style alike', () => {
    const t = new Target();
    const log: string[] = [];
    t.on('message', () => log.push('ws 1'));
    t.addEventListener('message', () => log.push('whatwg 1'));
    t.onmessage = () => log.push('handler');
    t.on('message', () => log.push('ws 2'));
    t.addEventListener('message', { handleEvent: () => log.push('object') });
    t.emit('message', Buffer.from('x'), false);
    assert.deepEqual(log, ['ws 1', 'whatwg 1', 'handler', 'ws 2', 'object']);
  });
});

describe('WsEventTarget: the DOM rules (issue 14, item 7)', () => {
  it('a listener removed by an earlier listener of the same dispatch is not called (the DOM "removed" flag)', () => {
    sameAsReference(
      (t, fire) => {
        const log: string[] = [];
        const b = (): void => void log.push('b');
        t.addEventListener('open', () => {
          log.push('a');
          t.removeEventListener('open', b);
        });
        t.addEventListener('open', b);
        fire();
        fire();
        return log;
      },
      ['a', 'a'],
    );
  });

  it('removed during a dispatch: a once listener, and the on* handler cleared with null, are not called either', () => {
    sameAsReference(
      (t, fire) => {
        const log: string[] = [];
        const b = (): void => void log.push('once');
        t.addEventListener('open', () => {
          log.push('first');
          t.removeEventListener('open', b);
          t.onopen = null;
        });
        t.addEventListener('open', b, { once: true });
        t.onopen = () => log.push('handler');
        fire();
        return log;
      },
      ['first'],
    );
  });

  it('a WHATWG listener removed by a ws-style listener during the dispatch is not called', () => {
    const t = new Target();
    const log: string[] = [];
    const b = (): void => void log.push('b');
    t.on('open', () => {
      log.push('ws');
      t.removeEventListener('open', b);
    });
    t.addEventListener('open', b);
    t.emit('open');
    assert.deepEqual(log, ['ws']);
  });

  it("ws-style listeners keep EventEmitter's rule, as in ws: one removed with off() during an emit is still called by that emit", () => {
    const t = new Target();
    const log: string[] = [];
    const b = (): void => void log.push('b');
    t.on('open', () => {
      log.push('a');
      t.off('open', b);
    });
    t.on('open', b);
    t.emit('open');
    t.emit('open');
    assert.deepEqual(log, ['a', 'b', 'a']);
  });

  it('once: removed at its first call whichever way the event comes (dispatchEvent or emit)', () => {
    sameAsReference((t, fire) => {
      let n = 0;
      t.addEventListener('open', () => void n++, { once: true });
      fire();
      fire();
      fire();
      return n;
    }, 1);
    const t = new Target();
    let n = 0;
    t.addEventListener('open', () => void n++, { once: true });
    t.dispatchEvent(new WsEvent('open', t));
    t.dispatchEvent(new WsEvent('open', t));
    t.emit('open');
    assert.equal(n, 1);
    assert.equal(t.listenerCount('open'), 0);
  });

  it('once: a once listener that dispatches again from inside itself is not called again', () => {
    sameAsReference((t, fire) => {
      let n = 0;
      t.addEventListener(
        'open',
        () => {
          n++;
          if (n < 5) fire();
        },
        { once: true },
      );
      fire();
      return n;
    }, 1);
  });

  it('onopen and addEventListener of the same function are two entries; clearing onopen leaves the other, removeEventListener leaves onopen', () => {
    sameAsReference(
      (t, fire) => {
        let n = 0;
        const fn = (): void => void n++;
        const counts: number[] = [];
        t.addEventListener('open', fn);
        t.onopen = fn;
        t.addEventListener('open', fn); // a duplicate of the first entry, not of the handler's
        fire();
        counts.push(n);
        t.onopen = null;
        fire();
        counts.push(n);
        t.onopen = fn;
        t.removeEventListener('open', fn);
        fire();
        counts.push(n);
        return [counts, t.onopen === fn];
      },
      [[2, 3, 4], true],
    );
  });

  it('assigning onopen again keeps the handler in its place among the listeners; after null, a new handler goes last', () => {
    sameAsReference(
      (t, fire) => {
        const log: string[] = [];
        t.addEventListener('open', () => log.push('a'));
        t.onopen = () => log.push('h1');
        t.addEventListener('open', () => log.push('b'));
        t.onopen = () => log.push('h2');
        fire();
        t.onopen = null;
        t.onopen = () => log.push('h3');
        fire();
        return log;
      },
      ['a', 'h2', 'b', 'a', 'b', 'h3'],
    );
  });

  it("a handler replaced by an earlier listener during the dispatch: the new one is called in the handler's place", () => {
    sameAsReference(
      (t, fire) => {
        const log: string[] = [];
        t.addEventListener('open', () => {
          log.push('a');
          t.onopen = () => log.push('new');
        });
        t.onopen = () => log.push('old');
        t.addEventListener('open', () => log.push('b'));
        fire();
        return log;
      },
      ['a', 'new', 'b'],
    );
  });

  it("the handler's entry counts as a listener of its own (listenerCount, rawListeners)", () => {
    const t = new Target();
    const fn = (): void => {};
    t.addEventListener('open', fn);
    t.onopen = fn;
    assert.equal(t.listenerCount('open'), 2);
    assert.equal(t.rawListeners('open').length, 2);
    t.onopen = fn;
    assert.equal(t.listenerCount('open'), 2, 'the same again adds nothing');
    t.onopen = null;
    assert.equal(t.listenerCount('open'), 1);
  });

  it("removeAllListeners() takes the handler's entry too: onopen then reads null, and a new handler is added again", () => {
    const t = new Target();
    const log: string[] = [];
    const h = (): void => void log.push('h');
    t.onopen = h;
    t.removeAllListeners('open');
    assert.equal(t.onopen, null);
    t.emit('open');
    t.onopen = h;
    assert.equal(t.onopen, h);
    t.emit('open');
    assert.deepEqual(log, ['h']);
    assert.equal(t.listenerCount('open'), 1);
  });

  it('signal: aborting removes the entry it was given with, not the same listener added again later', () => {
    const t = new Target();
    let n = 0;
    const fn = (): void => void n++;
    const controller = new AbortController();
    t.addEventListener('open', fn, { signal: controller.signal });
    t.removeEventListener('open', fn);
    t.addEventListener('open', fn);
    controller.abort();
    t.emit('open');
    assert.equal(n, 1, 'the second entry stays (DOM: the abort steps remove that one event listener)');
  });
});

describe('WsEventTarget: the ws-style EventEmitter side works as before', () => {
  it('on, once, off, emit, listenerCount and rawListeners, beside WHATWG listeners', () => {
    const t = new Target();
    const log: string[] = [];
    const a = (): void => void log.push('on');
    const b = (): void => void log.push('once');
    t.on('open', a);
    t.once('open', b);
    t.addEventListener('open', () => log.push('whatwg'));
    t.onopen = () => log.push('handler');
    assert.equal(t.listenerCount('open'), 4);
    const raw = t.rawListeners('open') as Array<{ listener?: unknown }>;
    assert.equal(raw[0], a);
    assert.equal(raw[1].listener, b, "once keeps EventEmitter's wrapper with .listener");
    assert.equal(t.emit('open'), true);
    t.emit('open');
    t.off('open', a);
    t.emit('open');
    assert.deepEqual(log, ['on', 'once', 'whatwg', 'handler', 'on', 'whatwg', 'handler', 'whatwg', 'handler']);
    assert.equal(t.listenerCount('open'), 2);
  });

  it('a message goes to ws-style listeners with (data, isBinary) and to WHATWG ones as a MessageEvent, in one order', () => {
    const t = new Target();
    const log: unknown[] = [];
    t.on('message', (data: Buffer, isBinary: boolean) => log.push(['ws', data.toString(), isBinary]));
    t.addEventListener('message', (e: WsMessageEvent) => log.push(['whatwg', e.data]), { once: true });
    t.once('message', (data: Buffer) => log.push(['ws once', data.toString()]));
    t.emit('message', Buffer.from('one'), false);
    t.emit('message', Buffer.from('two'), false);
    assert.deepEqual(log, [
      ['ws', 'one', false],
      ['whatwg', 'one'],
      ['ws once', 'one'],
      ['ws', 'two', false],
    ]);
  });
});

describe('WsEventTarget: the events WHATWG listeners get', () => {
  it('open: a plain event whose target and currentTarget are the socket', () => {
    const t = new Target();
    const r = recorder();
    t.addEventListener('open', r.fn);
    t.emit('open');
    const e = r.calls[0].event;
    assert.ok(e instanceof WsEvent);
    assert.deepEqual([e.type, e.target === t, e.currentTarget === t], ['open', true, true]);
  });

  it('message: text decoded as UTF-8, binary converted by the connection (per binaryType), origin set; ws-style listeners get the raw arguments', () => {
    const t = new Target();
    const r = recorder();
    const raw: unknown[][] = [];
    t.on('message', (...args: unknown[]) => raw.push(args));
    t.addEventListener('message', r.fn);
    const bytes = Buffer.from([0xff, 0x00]);
    t.emit('message', Buffer.from('grüße 😀'), false);
    t.emit('message', bytes, true);
    const [text, binary] = r.calls.map((c) => c.event as WsMessageEvent);
    assert.ok(text instanceof WsMessageEvent);
    assert.deepEqual(
      [text.type, text.data, text.origin, text.target === t],
      ['message', 'grüße 😀', 'ws://origin.test', true],
    );
    assert.deepEqual(binary.data, { converted: bytes });
    assert.equal(raw[1][0], bytes, 'ws-style listeners get the Buffer itself');
    assert.equal(raw[1][1], true);
  });

  it('message: built only when a WHATWG listener exists (no conversion for ws-style listeners alone)', () => {
    const t = new Target();
    t.on('message', () => {});
    t.emit('message', Buffer.from([1]), true);
    assert.equal(t.conversions, 0);
    t.addEventListener('message', () => {});
    t.emit('message', Buffer.from([1]), true);
    assert.equal(t.conversions, 1);
  });

  it('message: not dispatched to WHATWG listeners once the connection says so (no longer OPEN); ws-style listeners still get it', () => {
    const t = new Target();
    const log: string[] = [];
    t.on('message', () => log.push('ws'));
    t.onmessage = () => log.push('handler');
    t.addEventListener('message', () => log.push('listener'));
    t.setDispatch(false);
    t.emit('message', Buffer.from('late'), false);
    t.setDispatch(true);
    t.emit('message', Buffer.from('on time'), false);
    assert.deepEqual(log, ['ws', 'ws', 'handler', 'listener']);
  });

  it("close: code, reason (text) and wasClean when the peer's Close frame arrived", () => {
    const t = new Target();
    const r = recorder();
    t.addEventListener('close', r.fn);
    t.emit('close', 4001, Buffer.from('bye é'));
    const e = r.calls[0].event as WsCloseEvent;
    assert.ok(e instanceof WsCloseEvent);
    assert.deepEqual([e.type, e.code, e.reason, e.wasClean, e.target === t], ['close', 4001, 'bye é', true, true]);
  });

  it('close: without a Close frame from the peer, 1006 and no reason (RFC 6455 7.1.5), while ws-style listeners get the code given', () => {
    const t = new Target();
    t.peerClosed = false;
    t.wasCleanValue = false;
    const r = recorder();
    let wsCode = 0;
    t.on('close', (code: number) => (wsCode = code));
    t.addEventListener('close', r.fn);
    t.emit('close', 1002, Buffer.from('protocol error'));
    const e = r.calls[0].event as WsCloseEvent;
    assert.deepEqual([e.code, e.reason, e.wasClean], [1006, '', false]);
    assert.equal(wsCode, 1002);
  });

  it('error: the Error as event.error and its message as event.message', () => {
    const t = new Target();
    const r = recorder();
    t.onerror = r.fn;
    const err = Object.assign(new Error('bad frame'), { code: 'WS_ERR_INVALID_OPCODE' });
    t.emit('error', err);
    const e = r.calls[0].event as WsErrorEvent;
    assert.ok(e instanceof WsErrorEvent);
    assert.deepEqual([e.type, e.error === err, e.message], ['error', true, 'bad frame']);
  });
});

describe('WsEventTarget: dispatchEvent', () => {
  it('hands the given event object to onX handlers and addEventListener listeners of its type, not to ws-style listeners; returns true', () => {
    const t = new Target();
    const got: unknown[] = [];
    t.on('open', () => got.push('ws-style'));
    t.onopen = (e) => got.push(['handler', e]);
    const obj = {
      handleEvent(this: unknown, e: WsEvent) {
        got.push(['object', e, this === obj]);
      },
    };
    t.addEventListener('open', obj);
    t.addEventListener('close', () => got.push('other type'));
    const event = new WsEvent('open', t);
    assert.equal(t.dispatchEvent(event), true);
    assert.deepEqual(got, [
      ['handler', event],
      ['object', event, true],
    ]);
  });

  it('an event type nobody listens to: nothing happens, true', () => {
    const t = new Target();
    assert.equal(t.dispatchEvent(new WsEvent('custom', t)), true);
  });
});

describe('WsEventTarget: the listener table', () => {
  it('has no inherited names: event types such as "toString" or "constructor" have no listener until one is added', () => {
    const t = new Target();
    for (const type of ['toString', 'constructor', 'hasOwnProperty', '__proto__']) {
      assert.equal(t.listenerCount(type), 0, type);
      assert.deepEqual(t.rawListeners(type), [], type);
    }
    let n = 0;
    t.addEventListener('toString', () => void n++);
    t.emit('toString');
    assert.equal(n, 1);
  });
});
