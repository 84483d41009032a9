/**
 * Hub: subscriptions and their counts, topics forgotten when nobody listens and nothing is
 * remembered, sequence numbers and epochs, encode-once delivery through the broker, and
 * recover(): exactly the missed range, or recovered: false.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Hub } from '../../src/push/hub.js';
import type { Broker, BrokerMessage } from '../../src/push/broker.js';
import type { Subscriber } from '../../src/node/host.js';
import type { EncodedFrame } from '../../src/protocol/frame.js';
import type { SharedMessage } from '../../src/node/shared-message.js';
import { decodeFrames } from '../helpers.js';

/** A stand-in subscriber (the Hub knows nothing else of connections) that records what it gets. */
class FakeConnection implements Subscriber {
  frames: EncodedFrame[] = [];
  accept = true;
  sendEncoded(message: SharedMessage): boolean {
    if (!this.accept) return false;
    this.frames.push(message.frame);
    return true;
  }
  /** The messages received, decoded with the tests' own decoder. */
  messages(): Array<{ opcode: number; text: string }> {
    return this.frames.map((f) => {
      const bytes = Array.isArray(f) ? Buffer.concat([f[0], f[1]]) : f;
      const { frames, rest } = decodeFrames(bytes);
      assert.equal(frames.length, 1);
      assert.equal(rest.length, 0);
      assert.equal(frames[0].fin, true);
      assert.equal(frames[0].masked, false);
      return { opcode: frames[0].opcode, text: frames[0].payload.toString() };
    });
  }
  texts(): string[] {
    return this.messages().map((m) => m.text);
  }
}

function fakes(n: number): FakeConnection[] {
  return Array.from({ length: n }, () => new FakeConnection());
}

/** The number of topics the Hub keeps state for (listened to or not). */
function topicsKept(hub: Hub): number {
  return (hub as unknown as { topics: Map<string, unknown> }).topics.size;
}

describe('Hub subscriptions', () => {
  it("owns each subscriber's topics: topicsOf in join order, isSubscribed, unsubscribeAll leaves every topic", () => {
    const hub = new Hub();
    const [a, b] = fakes(2);
    assert.deepEqual(hub.topicsOf(a), []);
    hub.subscribe(a, 'x');
    hub.subscribe(a, 'y');
    hub.subscribe(a, 'w');
    hub.subscribe(b, 'y');
    assert.deepEqual(hub.topicsOf(a), ['x', 'y', 'w']);
    assert.equal(hub.isSubscribed(a, 'y'), true);
    assert.equal(hub.isSubscribed(b, 'x'), false);
    hub.unsubscribe(a, 'y');
    assert.deepEqual(hub.topicsOf(a), ['x', 'w']);
    hub.unsubscribeAll(a);
    assert.deepEqual(hub.topicsOf(a), []);
    assert.equal(hub.isSubscribed(a, 'x'), false);
    assert.deepEqual([hub.subscriberCount('x'), hub.subscriberCount('y'), hub.subscriberCount('w')], [0, 1, 0]);
    assert.deepEqual(hub.stats(), { topics: 1, subscriptions: 1 });
    assert.equal(topicsKept(hub), 1, 'topics nobody listens to are forgotten');
    hub.unsubscribeAll(a); // again: nothing to do
    assert.deepEqual(hub.topicsOf(b), ['y']);
  });

  it('subscribe/unsubscribe report changes and keep counts right', () => {
    const hub = new Hub();
    const [a, b] = fakes(2);
    assert.equal(hub.subscribe(a, 't'), true);
    assert.equal(hub.subscribe(a, 't'), false, 'already subscribed');
    assert.equal(hub.subscribe(b, 't'), true);
    assert.equal(hub.subscribe(a, 'u'), true);
    assert.equal(hub.subscriberCount('t'), 2);
    assert.equal(hub.subscriberCount('u'), 1);
    assert.equal(hub.subscriberCount('none'), 0);
    assert.deepEqual(hub.stats(), { topics: 2, subscriptions: 3 });

    assert.equal(hub.unsubscribe(a, 't'), true);
    assert.equal(hub.unsubscribe(a, 't'), false, 'not subscribed any more');
    assert.equal(hub.unsubscribe(b, 'never'), false, 'unknown topic');
    assert.equal(hub.subscriberCount('t'), 1);
    assert.deepEqual(hub.stats(), { topics: 2, subscriptions: 2 });

    hub.unsubscribe(b, 't');
    hub.unsubscribe(a, 'u');
    assert.deepEqual(hub.stats(), { topics: 0, subscriptions: 0 });
  });

  it('a topic without history is forgotten when its last subscriber leaves: seq and epoch start over', () => {
    const hub = new Hub();
    const [a] = fakes(1);
    hub.subscribe(a, 't');
    hub.publish('t', 'one');
    hub.publish('t', 'two');
    const before = hub.position('t');
    assert.equal(before.seq, 2);
    hub.unsubscribe(a, 't');
    assert.equal(topicsKept(hub), 0, 'topic state dropped');
    hub.subscribe(a, 't');
    const after = hub.position('t');
    assert.equal(after.seq, 0, 'sequence starts over');
    assert.notEqual(after.epoch, before.epoch, 'a new epoch says so');
  });

  it('a topic with history is kept when its last subscriber leaves', () => {
    const hub = new Hub({ history: { size: 10 } });
    const [a] = fakes(1);
    hub.subscribe(a, 't');
    hub.publish('t', 'one');
    const before = hub.position('t');
    hub.unsubscribe(a, 't');
    assert.deepEqual(hub.stats(), { topics: 0, subscriptions: 0 }, 'no subscribers counted');
    assert.deepEqual(hub.position('t'), before, 'same epoch and seq');
    hub.publish('t', 'two');
    const r = hub.recover('t', 0, before.epoch);
    assert.equal(r.recovered, true);
    assert.deepEqual(
      r.messages.map((m) => m.payload.toString()),
      ['one', 'two'],
    );
  });

  it('publishing to a topic nobody subscribes to (no history) keeps no state', () => {
    // Otherwise every topic name ever published to (per-user notification topics, say)
    // stays in memory for the life of the server.
    const hub = new Hub();
    for (let i = 0; i < 1000; i++) assert.equal(hub.publish(`user:${i}`, 'hello'), 0);
    assert.deepEqual(hub.stats(), { topics: 0, subscriptions: 0 });
    assert.equal(topicsKept(hub), 0, `the Hub keeps state for ${topicsKept(hub)} topics nobody listens to`);
  });
});

describe('Hub publish', () => {
  it('frames each message once and writes the same bytes to every subscriber', () => {
    const hub = new Hub();
    const subs = fakes(3);
    for (const s of subs) hub.subscribe(s, 't');
    const [other] = fakes(1);
    hub.subscribe(other, 'elsewhere');
    assert.equal(hub.publish('t', 'hello'), 3);
    assert.ok(subs.every((s) => s.frames.length === 1));
    assert.ok(
      subs.every((s) => s.frames[0] === subs[0].frames[0]),
      'one encoded frame shared by all',
    );
    assert.deepEqual(subs[0].messages(), [{ opcode: 0x1, text: 'hello' }]);
    assert.equal(other.frames.length, 0, 'other topics get nothing');
  });

  it('large messages are framed once too', () => {
    const hub = new Hub();
    const subs = fakes(2);
    for (const s of subs) hub.subscribe(s, 't');
    const big = Buffer.alloc(100_000, 7);
    hub.publish('t', big);
    assert.strictEqual(subs[0].frames[0], subs[1].frames[0]);
    const msg = subs[1].messages()[0];
    assert.equal(msg.opcode, 0x2);
    assert.equal(msg.text.length, 100_000);
  });

  it('text for strings, binary for bytes, unless options.binary says otherwise', () => {
    const hub = new Hub();
    const [a] = fakes(1);
    hub.subscribe(a, 't');
    hub.publish('t', 'text');
    hub.publish('t', Buffer.from('buf'));
    hub.publish('t', new Uint8Array([0x61, 0x62]));
    hub.publish('t', new Uint8Array([0x63, 0x64]).buffer);
    hub.publish('t', 'as binary', { binary: true });
    hub.publish('t', Buffer.from('as text'), { binary: false });
    assert.deepEqual(a.messages(), [
      { opcode: 0x1, text: 'text' },
      { opcode: 0x2, text: 'buf' },
      { opcode: 0x2, text: 'ab' },
      { opcode: 0x2, text: 'cd' },
      { opcode: 0x2, text: 'as binary' },
      { opcode: 0x1, text: 'as text' },
    ]);
  });

  it('excludes the sender and returns how many were written to', () => {
    const hub = new Hub();
    const [a, b, c] = fakes(3);
    for (const s of [a, b, c]) hub.subscribe(s, 't');
    assert.equal(hub.publish('t', 'x', undefined, b), 2);
    assert.deepEqual([a.texts(), b.texts(), c.texts()], [['x'], [], ['x']]);
    c.accept = false; // e.g. a slow consumer under policy 'drop'
    assert.equal(hub.publish('t', 'y'), 2);
    assert.equal(hub.publish('nobody', 'z'), 0);
  });

  it('seq counts up per topic; a function payload sees its seq and the epoch', () => {
    const hub = new Hub();
    const [a] = fakes(1);
    hub.subscribe(a, 't');
    hub.subscribe(a, 'u');
    const { epoch } = hub.position('t');
    const seen: Array<[number, string]> = [];
    for (let i = 0; i < 3; i++) {
      hub.publish('t', (seq, ep) => {
        seen.push([seq, ep]);
        return `t${seq}`;
      });
    }
    hub.publish('u', (seq) => `u${seq}`);
    assert.deepEqual(seen, [
      [1, epoch],
      [2, epoch],
      [3, epoch],
    ]);
    assert.deepEqual(a.texts(), ['t1', 't2', 't3', 'u1']);
    assert.deepEqual(hub.position('t'), { epoch, seq: 3 });
    assert.equal(hub.position('u').seq, 1);
    assert.notEqual(hub.position('u').epoch, epoch, 'each topic has its own epoch');
  });

  it('epochs differ between Hubs (a restarted server)', () => {
    const epochs = new Set(Array.from({ length: 20 }, () => new Hub().position('t').epoch));
    assert.equal(epochs.size, 20);
  });

  it('goes through the broker: publish hands it the message, delivery comes back through attach()', () => {
    const sent: Array<{ message: BrokerMessage; exclude: unknown }> = [];
    let deliver: ((message: BrokerMessage, exclude: unknown) => void) | undefined;
    const broker: Broker = {
      attach(fn) {
        deliver = fn;
      },
      publish(message, exclude) {
        sent.push({ message, exclude }); // held, as a network broker would
      },
    };
    const hub = new Hub({ broker });
    const [a, b] = fakes(2);
    hub.subscribe(a, 't');
    hub.subscribe(b, 't');
    hub.publish('t', 'hi', undefined, a);
    assert.equal(sent.length, 1);
    assert.equal(sent[0].message.topic, 't');
    assert.equal(sent[0].message.seq, 1);
    assert.equal(sent[0].message.epoch, hub.position('t').epoch);
    assert.equal(sent[0].message.binary, false);
    assert.equal(sent[0].message.payload.toString(), 'hi');
    assert.equal(sent[0].exclude, a);
    assert.equal(a.frames.length + b.frames.length, 0, 'nothing delivered until the broker delivers');
    deliver!(sent[0].message, sent[0].exclude);
    assert.deepEqual([a.texts(), b.texts()], [[], ['hi']]);
  });

  it('with a broker, a publish reaches it even when this process has no subscriber for the topic', () => {
    // Several processes: subscribers of `alerts` live elsewhere; this one only publishes.
    const sent: BrokerMessage[] = [];
    const broker: Broker = {
      attach() {},
      publish(message) {
        sent.push(message);
      },
    };
    const hub = new Hub({ broker });
    hub.publish('alerts', 'disk full');
    assert.equal(sent.length, 1, 'the message never left this process');
    assert.equal(sent[0]?.payload.toString(), 'disk full');
  });
});

describe('Hub history and recover()', () => {
  function withHistory(size: number, ttl?: number): { hub: Hub; epoch: string } {
    const hub = new Hub({ history: ttl === undefined ? { size } : { size, ttl } });
    for (let i = 1; i <= 8; i++) hub.publish('t', `m${i}`);
    return { hub, epoch: hub.position('t').epoch };
  }
  const texts = (r: { messages: Array<{ payload: Buffer }> }): string[] => r.messages.map((m) => m.payload.toString());

  it('returns exactly the messages after `since`, with the current position', () => {
    const { hub, epoch } = withHistory(5); // keeps m4..m8
    const r = hub.recover('t', 5, epoch);
    assert.equal(r.recovered, true);
    assert.equal(r.epoch, epoch);
    assert.equal(r.seq, 8);
    assert.deepEqual(texts(r), ['m6', 'm7', 'm8']);
    assert.deepEqual(
      r.messages.map((m) => m.seq),
      [6, 7, 8],
    );
  });

  it('nothing missed: recovered with no messages', () => {
    const { hub, epoch } = withHistory(5);
    const r = hub.recover('t', 8, epoch);
    assert.deepEqual(r, { recovered: true, epoch, seq: 8, messages: [] });
  });

  it('the oldest kept message is the boundary: since = oldest-1 recovers, oldest-2 does not', () => {
    const { hub, epoch } = withHistory(5); // oldest kept: m4
    assert.deepEqual(texts(hub.recover('t', 3, epoch)), ['m4', 'm5', 'm6', 'm7', 'm8']);
    assert.equal(hub.recover('t', 3, epoch).recovered, true);
    const r = hub.recover('t', 2, epoch);
    assert.equal(r.recovered, false, 'm3 is gone: recovery impossible, never a silent gap');
    assert.deepEqual(r.messages, []);
    assert.equal(r.epoch, epoch);
    assert.equal(r.seq, 8);
  });

  it('another epoch is never recovered', () => {
    const { hub } = withHistory(5);
    const r = hub.recover('t', 7, 'someOtherEpoch');
    assert.equal(r.recovered, false);
    assert.deepEqual(r.messages, []);
  });

  it('since ahead of the topic, negative or not an integer: not recovered', () => {
    const { hub, epoch } = withHistory(5);
    for (const since of [9, 100, -1, 6.5, Number.NaN]) {
      assert.equal(hub.recover('t', since, epoch).recovered, false, `since ${since}`);
    }
  });

  it('no history: not recovered, even for nothing missed', () => {
    const hub = new Hub();
    const [a] = fakes(1);
    hub.subscribe(a, 't');
    hub.publish('t', 'x');
    const { epoch } = hub.position('t');
    assert.equal(hub.recover('t', 0, epoch).recovered, false);
  });

  it('messages older than ttl are not recovered', (t) => {
    // Date.now() moves only when the test ticks it: a slow machine cannot age them early.
    t.mock.timers.enable({ apis: ['Date'], now: 1_700_000_000_000 });
    const { hub, epoch } = withHistory(100, 30);
    t.mock.timers.tick(29);
    assert.equal(hub.recover('t', 0, epoch).recovered, true, 'not yet ttl old');
    t.mock.timers.tick(2);
    hub.publish('t', 'm9');
    assert.equal(hub.recover('t', 0, epoch).recovered, false, 'm1..m8 aged out');
    assert.deepEqual(texts(hub.recover('t', 8, epoch)), ['m9']);
  });

  it('configureTopic overrides the default per topic', () => {
    const hub = new Hub();
    hub.configureTopic('kept', { history: { size: 2 } });
    for (let i = 1; i <= 3; i++) {
      hub.publish('kept', `k${i}`);
      hub.publish('plain', `p${i}`);
    }
    const kept = hub.position('kept');
    assert.deepEqual(texts(hub.recover('kept', 1, kept.epoch)), ['k2', 'k3']);
    assert.equal(hub.recover('plain', 2, hub.position('plain').epoch).recovered, false);

    const off = new Hub({ history: { size: 5 } });
    off.configureTopic('quiet', { history: false });
    off.publish('quiet', 'q');
    off.publish('loud', 'l');
    assert.equal(off.recover('quiet', 0, off.position('quiet').epoch).recovered, false);
    assert.equal(off.recover('loud', 0, off.position('loud').epoch).recovered, true);
  });

  it('a client that recovers and then follows live messages sees every seq once', () => {
    const { hub, epoch } = withHistory(5);
    const [a] = fakes(1);
    // The client saw up to seq 6, reconnects, recovers, then subscribes: no gap, no repeat.
    const r = hub.recover('t', 6, epoch);
    hub.subscribe(a, 't');
    hub.publish('t', 'm9');
    const seen = [...r.messages.map((m) => m.seq), ...a.texts().map((t) => Number(t.slice(1)))];
    assert.deepEqual(seen, [7, 8, 9]);
  });
});

describe('Hub limits', () => {
  it('maxTopics: the oldest topic without subscribers is forgotten with its history; followed topics are kept', () => {
    const hub = new Hub({ history: { size: 10 }, maxTopics: 3 });
    const [a] = fakes(1);
    hub.subscribe(a, 'followed');
    hub.publish('old', 'x');
    hub.publish('middle', 'y');
    assert.equal(topicsKept(hub), 3);
    const old = hub.position('old');
    hub.publish('new', 'z'); // a fourth topic: 'old' (idle, oldest) goes
    assert.equal(topicsKept(hub), 3);
    assert.equal(hub.subscriberCount('followed'), 1);
    const r = hub.recover('old', 0, old.epoch);
    assert.equal(r.recovered, false, 'its history went with it');
  });

  it('publishing to a topic nobody follows and without history creates no state but reaches the broker', () => {
    const seen: BrokerMessage[] = [];
    const broker: Broker = {
      attach() {},
      publish(message) {
        seen.push(message);
      },
    };
    const hub = new Hub({ broker });
    for (let i = 0; i < 100; i++) assert.equal(hub.publish(`user:${i}`, 'hello'), 0);
    assert.equal(topicsKept(hub), 0);
    assert.equal(seen.length, 100);
  });

  it('history keeps copies, not views of the published buffer', () => {
    const hub = new Hub({ history: { size: 2 } });
    const big = Buffer.alloc(65536, 1);
    const view = big.subarray(10, 20);
    hub.publish('t', view);
    const { epoch } = hub.position('t');
    const kept = hub.recover('t', 0, epoch).messages[0].payload;
    assert.deepEqual(kept, view);
    assert.notEqual(kept.buffer, big.buffer);
  });
});
