/**
 * Hub: subscriptions and their counts, topics forgotten when nobody listens and nothing is
 * remembered, sequence numbers and epochs, encode-once delivery through the broker, and
 * recover(): exactly the missed range, or recovered: false. With an asynchronous broker (a
 * fake whose every answer the test gives by hand): subscribers waiting for their recovery,
 * what is held for them and sent after the answer, floors, resets, failures, and the *Async
 * calls.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Hub } from '../../src/push/hub.js';
import {
  DEDUP_SWEEP_MS,
  MemoryBroker,
  messageBytes,
  type AsynchronousBroker,
  type Broker,
  type BrokerHost,
  type BrokerMessage,
  type OutgoingMessage,
  type SynchronousBroker,
} from '../../src/push/broker.js';
import type { Recovery } from '../../src/push/history.js';
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

/** The number of topics whose log the (default, in-memory) broker keeps (listened to or not). */
function topicsKept(hub: Hub): number {
  return (hub as unknown as { broker: Broker }).broker.topicCount();
}

/** A synchronous broker that records what it is given and delivers only when told to. */
function recordingBroker(): {
  broker: Broker;
  sent: Array<{ message: OutgoingMessage; exclude: unknown }>;
  host: () => BrokerHost;
  watched: string[];
} {
  const sent: Array<{ message: OutgoingMessage; exclude: unknown }> = [];
  const watched: string[] = [];
  let host: BrokerHost | undefined;
  let seq = 0;
  const broker: Broker = {
    synchronous: true,
    attach(h) {
      host = h;
    },
    configureTopic() {},
    setDefaultHistory() {},
    watch(topic) {
      watched.push(topic);
    },
    unwatch(topic) {
      watched.splice(watched.indexOf(topic), 1);
    },
    publish(message, exclude) {
      sent.push({ message, exclude }); // held, as a network broker would
      return { epoch: 'E', seq: ++seq };
    },
    recover: (_topic, since) => ({ epoch: 'E', seq, recovered: since === seq, messages: [] }),
    position: () => ({ epoch: 'E', seq }),
    topicCount: () => watched.length,
    close() {},
  };
  return { broker, sent, host: () => host!, watched };
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

  it('goes through the broker: publish hands it the message, delivery comes back through the host', () => {
    const { broker, sent, host, watched } = recordingBroker();
    const hub = new Hub({ broker });
    const [a, b] = fakes(2);
    hub.subscribe(a, 't');
    hub.subscribe(b, 't');
    assert.deepEqual(watched, ['t'], 'the broker is told once that this process follows t');
    hub.publish('t', 'hi', undefined, a);
    assert.equal(sent.length, 1);
    assert.equal(sent[0].message.topic, 't');
    assert.equal(sent[0].message.binary, false);
    assert.equal(sent[0].message.payload.toString(), 'hi');
    assert.equal(sent[0].exclude, a);
    assert.equal(a.frames.length + b.frames.length, 0, 'nothing delivered until the broker delivers');
    host().deliver({ topic: 't', payload: Buffer.from('hi'), binary: false, seq: 1, epoch: 'E' }, a);
    assert.deepEqual([a.texts(), b.texts()], [[], ['hi']]);
    hub.unsubscribeAll(a);
    hub.unsubscribeAll(b);
    assert.deepEqual(watched, [], 'and once that it no longer does');
  });

  it('with a broker, a publish reaches it even when this process has no subscriber for the topic', () => {
    // Several processes: subscribers of `alerts` live elsewhere; this one only publishes.
    const { broker, sent } = recordingBroker();
    const hub = new Hub({ broker });
    hub.publish('alerts', 'disk full');
    assert.equal(sent.length, 1, 'the message never left this process');
    assert.equal(sent[0]?.message.payload.toString(), 'disk full');
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
    const { broker, sent } = recordingBroker();
    const hub = new Hub({ broker });
    for (let i = 0; i < 100; i++) assert.equal(hub.publish(`user:${i}`, 'hello'), 0);
    assert.equal(hub.stats().topics, 0);
    assert.equal(sent.length, 100);
    const memory = new Hub();
    for (let i = 0; i < 100; i++) assert.equal(memory.publish(`user:${i}`, 'hello'), 0);
    assert.equal(topicsKept(memory), 0);
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

/** One call to the fake asynchronous broker, waiting for the test to answer it. */
interface Waiting {
  args: unknown[];
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

type AsyncCall = 'watch' | 'recover' | 'position' | 'publish';

/**
 * An asynchronous broker (as Redis or the cluster's primary is) whose every watch, recover,
 * position and publish is a promise the test settles by hand; deliveries and resets come when
 * the test calls `host()`.
 */
function asyncBroker(): {
  broker: AsynchronousBroker;
  host: () => BrokerHost;
  calls: Record<AsyncCall, Waiting[]>;
  take: (kind: AsyncCall) => Waiting;
  unwatched: string[];
  configured: unknown[];
} {
  const calls: Record<AsyncCall, Waiting[]> = { watch: [], recover: [], position: [], publish: [] };
  const unwatched: string[] = [];
  const configured: unknown[] = [];
  let host: BrokerHost | undefined;
  function wait<T>(kind: AsyncCall, args: unknown[]): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      calls[kind].push({ args, resolve: resolve as (value: unknown) => void, reject });
    });
  }
  const broker: AsynchronousBroker = {
    synchronous: false,
    attach(h) {
      host = h;
    },
    setDefaultHistory(history) {
      configured.push(['default', history]);
    },
    configureTopic(topic, history) {
      configured.push([topic, history]);
    },
    watch: (topic) => wait('watch', [topic]),
    unwatch(topic) {
      unwatched.push(topic);
    },
    publish: (message, exclude) => wait('publish', [message, exclude]),
    recover: (topic, since, epoch) => wait('recover', [topic, since, epoch]),
    position: (topic) => wait('position', [topic]),
    topicCount: () => 0,
    close: () => Promise.resolve(),
  };
  return {
    broker,
    host: () => host!,
    calls,
    take(kind) {
      const call = calls[kind].shift();
      assert.ok(call !== undefined, `no ${kind} waiting`);
      return call;
    },
    unwatched,
    configured,
  };
}

/** A subscriber that writes what it gets (`a E3`) into a log shared with answers and resets. */
class LogSubscriber implements Subscriber {
  constructor(
    readonly name: string,
    readonly log: string[],
  ) {}
  sendEncoded(message: SharedMessage): boolean {
    this.log.push(`${this.name} ${message.payload.toString()}`);
    return true;
  }
}

/** A message as the broker delivers it (payload `<epoch><seq>`). */
function delivered(seq: number, epoch = 'E', topic = 't'): BrokerMessage {
  return { topic, payload: Buffer.from(`${epoch}${seq}`), binary: false, seq, epoch };
}

function recovery(seq: number, epoch = 'E', recovered = true): Recovery {
  return { epoch, seq, recovered, messages: [] };
}

/** Let settled promises' callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

const ASYNC_ONLY = { name: 'TypeError', code: 'WS_ERR_BROKER_ASYNC' };

/**
 * A Hub on a fake asynchronous broker, with one log of what its subscribers got (`a E3`), what
 * answers saw (`a answer E:3 true`) and resets (`a reset F:0`), in order.
 */
function asyncHub() {
  const fake = asyncBroker();
  const errors: Error[] = [];
  const hub = new Hub({ broker: fake.broker, onError: (err) => errors.push(err) });
  const log: string[] = [];
  hub.onReset((_topic, position, subscribers) => {
    for (const s of subscribers) log.push(`${(s as LogSubscriber).name} reset ${position.epoch}:${position.seq}`);
  });
  const subscriber = (name: string): LogSubscriber => new LogSubscriber(name, log);
  /** An answer that logs what it got and returns `keep`. */
  const answer =
    (name: string, keep = true) =>
    (result: Recovery | Error): boolean => {
      log.push(
        result instanceof Error
          ? `${name} answer error ${result.message}`
          : `${name} answer ${result.epoch}:${result.seq} ${result.recovered}`,
      );
      return keep;
    };
  return { ...fake, hub, errors, log, subscriber, answer };
}

describe('Hub with an asynchronous broker: subscribe with recovery', () => {
  it('a new subscriber waits until the topic is fed and its recovery is read; what came meanwhile follows the answer, after its seq', async () => {
    const { hub, host, take, calls, log, subscriber, answer } = asyncHub();
    const [a, b] = [subscriber('a'), subscriber('b')];
    hub.subscribe(b, 't');
    hub.subscribeRecovering(a, 't', { seq: 2, epoch: 'E' }, answer('a'));
    assert.equal(calls.watch.length, 1, 'the broker is told once');
    assert.equal(hub.isSubscribed(a, 't'), true, 'waiting counts as subscribed');
    assert.equal(hub.subscriberCount('t'), 2);
    assert.deepEqual(hub.stats(), { topics: 1, subscriptions: 2 });
    assert.equal(hub.subscribe(a, 't'), false, 'already (waiting)');
    await settle();
    assert.equal(calls.recover.length, 0, 'no recovery read before the topic is fed');
    host().deliver(delivered(3));
    take('watch').resolve(undefined);
    await settle();
    const read = take('recover');
    assert.deepEqual(read.args, ['t', 2, 'E']);
    host().deliver(delivered(4));
    host().deliver(delivered(5), a); // a's own publish: not for a
    host().deliver(delivered(6));
    assert.deepEqual(log.splice(0), ['b E3', 'b E4', 'b E5', 'b E6'], 'a gets nothing before its answer');
    read.resolve(recovery(4)); // the recovery had 3 and 4
    await settle();
    assert.deepEqual(log.splice(0), ['a answer E:4 true', 'a E6']);
    host().deliver(delivered(7));
    host().deliver(delivered(8));
    assert.deepEqual(log.splice(0), ['b E7', 'a E7', 'b E8', 'a E8']);
    assert.deepEqual(hub.stats(), { topics: 1, subscriptions: 2 });
  });

  it('resets while it waits are passed on after the answer, in order; a reset the recovery covers is not', async () => {
    const { hub, host, take, log, subscriber, answer } = asyncHub();
    const a = subscriber('a');
    hub.subscribeRecovering(a, 't', undefined, answer('a'));
    take('watch').resolve(undefined);
    await settle();
    const read = take('position');
    assert.deepEqual(read.args, ['t'], 'without since: the position is read');
    host().deliver(delivered(5));
    host().reset('t', { epoch: 'E', seq: 4 });
    host().deliver(delivered(6));
    host().reset('t', { epoch: 'F', seq: 0 });
    host().deliver(delivered(1, 'F'));
    host().reset('t', { epoch: 'F', seq: 4 });
    host().deliver(delivered(5, 'F'));
    assert.deepEqual(log, [], 'nothing told while it waits');
    read.resolve({ epoch: 'E', seq: 5 });
    await settle();
    assert.deepEqual(log.splice(0), ['a answer E:5 false', 'a E6', 'a reset F:0', 'a F1', 'a reset F:4', 'a F5']);
    host().deliver(delivered(6, 'F'));
    assert.deepEqual(log.splice(0), ['a F6']);
  });

  it('more than 10,000 items while waiting: one reset at the recovery instead; 10,000 are all kept', async () => {
    const { hub, host, take, log, subscriber, answer } = asyncHub();
    const [a, c] = [subscriber('a'), subscriber('c')];
    hub.subscribeRecovering(a, 't', { seq: 0, epoch: 'E' }, answer('a'));
    take('watch').resolve(undefined);
    await settle();
    const readA = take('recover');
    host().deliver(delivered(1));
    hub.subscribeRecovering(c, 't', { seq: 1, epoch: 'E' }, answer('c'));
    await settle();
    const readC = take('recover');
    for (let seq = 2; seq <= 10_001; seq++) host().deliver(delivered(seq)); // a: 10,001; c: 10,000
    host().reset('t', { epoch: 'E', seq: 10_005 });
    readA.resolve(recovery(0));
    await settle();
    assert.deepEqual(log.splice(0), ['a answer E:0 true', 'a reset E:0'], 'one reset, no message');
    readC.resolve(recovery(1));
    await settle();
    const got = log.splice(0);
    assert.equal(got.length, 1 + 10_000 + 1);
    assert.deepEqual(
      [got[0], got[1], got.at(-2), got.at(-1)],
      ['c answer E:1 true', 'c E2', 'c E10001', 'c reset E:10005'],
    );
    host().deliver(delivered(10_006));
    assert.deepEqual(log.splice(0), ['a E10006', 'c E10006']);
  });

  it('floors: messages up to what the recovery read are not sent again when the feed delivers them late', async () => {
    const { hub, host, take, log, subscriber, answer } = asyncHub();
    const [a, b, c] = [subscriber('a'), subscriber('b'), subscriber('c')];
    hub.subscribe(b, 't');
    take('watch').resolve(undefined);
    hub.subscribeRecovering(a, 't', { seq: 2, epoch: 'E' }, answer('a'));
    await settle();
    host().deliver(delivered(3));
    take('recover').resolve(recovery(6)); // Redis had 6; this process's feed is at 3
    await settle();
    for (let seq = 4; seq <= 8; seq++) host().deliver(delivered(seq));
    assert.deepEqual(log.splice(0), [
      'b E3',
      'a answer E:6 true',
      'b E4',
      'b E5',
      'b E6',
      'b E7',
      'a E7',
      'b E8',
      'a E8',
    ]);
    // A recovery read in an epoch the feed has not reached yet: nothing of the old one for c;
    // the feed's reset to the new epoch clears the floors.
    hub.subscribeRecovering(c, 't', undefined, answer('c'));
    await settle();
    take('position').resolve({ epoch: 'F', seq: 1 });
    await settle();
    host().deliver(delivered(9));
    host().reset('t', { epoch: 'F', seq: 0 });
    host().deliver(delivered(1, 'F'));
    assert.deepEqual(log.splice(0), [
      'c answer F:1 false',
      'b E9',
      'a E9',
      'b reset F:0',
      'a reset F:0',
      'c reset F:0',
      'b F1',
      'a F1',
      'c F1',
    ]);
  });

  it('an answer of false forgets the subscription; the topic is unwatched when nobody is left', async () => {
    const { hub, host, take, unwatched, log, subscriber, answer } = asyncHub();
    const [a, b] = [subscriber('a'), subscriber('b')];
    hub.subscribeRecovering(a, 't', undefined, answer('a', false));
    take('watch').resolve(undefined);
    await settle();
    take('position').resolve({ epoch: 'E', seq: 3 });
    await settle();
    assert.deepEqual(log.splice(0), ['a answer E:3 false']);
    assert.equal(hub.isSubscribed(a, 't'), false);
    assert.deepEqual(hub.topicsOf(a), []);
    assert.deepEqual(hub.stats(), { topics: 0, subscriptions: 0 });
    assert.deepEqual(unwatched, ['t']);
    host().deliver(delivered(4));
    assert.deepEqual(log, []);
    // With another subscriber there, the topic stays.
    hub.subscribe(b, 'u');
    take('watch').resolve(undefined);
    hub.subscribeRecovering(a, 'u', undefined, answer('a', false));
    await settle();
    take('position').resolve({ epoch: 'E', seq: 0 });
    await settle();
    assert.deepEqual(unwatched, ['t']);
    assert.deepEqual(hub.stats(), { topics: 1, subscriptions: 1 });
    host().deliver(delivered(1, 'E', 'u'));
    assert.deepEqual(log.splice(0), ['a answer E:0 false', 'b E1']);
  });

  it('a failed recovery read reaches the answer as an Error and nothing is subscribed', async () => {
    const { hub, host, take, unwatched, log, subscriber, answer } = asyncHub();
    const a = subscriber('a');
    let seen: Recovery | Error | undefined;
    hub.subscribeRecovering(a, 't', { seq: 1, epoch: 'E' }, (result) => {
      seen = result;
      return true; // even so
    });
    take('watch').resolve(undefined);
    await settle();
    const failure = new Error('broker down');
    take('recover').reject(failure);
    await settle();
    assert.equal(seen, failure);
    assert.equal(hub.isSubscribed(a, 't'), false);
    assert.deepEqual(hub.stats(), { topics: 0, subscriptions: 0 });
    assert.deepEqual(unwatched, ['t']);
    host().deliver(delivered(2));
    // Without since (the position read), a rejection that is not an Error comes as one.
    hub.subscribeRecovering(a, 't', undefined, answer('a'));
    take('watch').resolve(undefined);
    await settle();
    take('position').reject('timeout');
    await settle();
    assert.deepEqual(log.splice(0), ['a answer error timeout']);
    assert.equal(hub.isSubscribed(a, 't'), false);
  });

  it('an answer that throws is reported to onError (no unhandled rejection) and the subscription is not made', async () => {
    const { hub, host, take, errors, unwatched, log, subscriber } = asyncHub();
    const a = subscriber('a');
    const bug = new Error('answer bug');
    const throwing = (): boolean => {
      throw bug;
    };
    hub.subscribeRecovering(a, 't', undefined, throwing);
    take('watch').resolve(undefined);
    await settle();
    take('position').resolve({ epoch: 'E', seq: 0 });
    await settle();
    assert.deepEqual(errors, [bug]);
    assert.equal(hub.isSubscribed(a, 't'), false);
    assert.deepEqual(hub.stats(), { topics: 0, subscriptions: 0 });
    assert.deepEqual(unwatched, ['t'], 'nobody left: unwatched');
    // Already subscribed: reported too, and the subscription stays.
    hub.subscribe(a, 't');
    hub.subscribeRecovering(a, 't', undefined, throwing);
    take('position').resolve({ epoch: 'E', seq: 0 });
    await settle();
    assert.deepEqual(errors, [bug, bug]);
    host().deliver(delivered(1));
    assert.deepEqual(log, ['a E1']);
  });

  it('a broker whose watch returns nothing (fed at once): the recovery is read at once', async () => {
    const fake = asyncBroker();
    const broker: AsynchronousBroker = { ...fake.broker, watch: () => undefined };
    const hub = new Hub({ broker });
    const log: string[] = [];
    hub.subscribeRecovering(new LogSubscriber('a', log), 't', undefined, () => true);
    await settle();
    assert.deepEqual(fake.take('position').args, ['t']);
  });

  it('a failed watch (the broker reports and retries it) does not hold the recovery read up', async () => {
    const { hub, take, log, subscriber, answer } = asyncHub();
    const a = subscriber('a');
    hub.subscribeRecovering(a, 't', undefined, answer('a'));
    take('watch').reject(new Error('subscribe failed'));
    await settle();
    take('position').resolve({ epoch: 'E', seq: 0 });
    await settle();
    assert.deepEqual(log, ['a answer E:0 false']);
    assert.equal(hub.isSubscribed(a, 't'), true);
  });

  it('unsubscribe while waiting: gone at once; the recovery, when read, is dropped unanswered', async () => {
    const { hub, host, take, unwatched, log, subscriber, answer } = asyncHub();
    const a = subscriber('a');
    hub.subscribeRecovering(a, 't', { seq: 0, epoch: 'E' }, answer('a'));
    take('watch').resolve(undefined);
    await settle();
    const read = take('recover');
    host().deliver(delivered(1));
    assert.equal(hub.unsubscribe(a, 't'), true);
    assert.equal(hub.unsubscribe(a, 't'), false);
    assert.equal(hub.isSubscribed(a, 't'), false);
    assert.equal(hub.subscriberCount('t'), 0);
    assert.deepEqual(hub.stats(), { topics: 0, subscriptions: 0 });
    assert.deepEqual(unwatched, ['t']);
    read.resolve(recovery(1));
    await settle();
    assert.deepEqual(log, []);
    // Left with unsubscribeAll and back (a plain subscribe) before the read returns: the old
    // read is not answered; the new subscription gets live messages.
    hub.subscribeRecovering(a, 't', { seq: 0, epoch: 'E' }, answer('a'));
    take('watch').resolve(undefined);
    await settle();
    const old = take('recover');
    hub.unsubscribeAll(a);
    assert.deepEqual(unwatched, ['t', 't']);
    hub.subscribe(a, 't');
    old.resolve(recovery(0));
    await settle();
    host().deliver(delivered(1));
    assert.deepEqual(log, ['a E1']);
    assert.deepEqual(hub.stats(), { topics: 1, subscriptions: 1 });
  });

  it('an already subscribed (or waiting) subscriber gets its recovery at once, without being added again', async () => {
    const { hub, host, take, calls, log, subscriber, answer } = asyncHub();
    const [a, c] = [subscriber('a'), subscriber('c')];
    hub.subscribe(a, 't');
    hub.subscribeRecovering(a, 't', { seq: 0, epoch: 'E' }, answer('a'));
    assert.equal(calls.recover.length, 1, 'read at once, not after the watch');
    host().deliver(delivered(1)); // live delivery goes on meanwhile
    take('recover').resolve(recovery(1));
    await settle();
    assert.deepEqual(log.splice(0), ['a E1', 'a answer E:1 true']);
    // A failed read is answered too; the subscription stays whatever the answer says.
    hub.subscribeRecovering(a, 't', undefined, answer('a', false));
    take('position').reject(new Error('down'));
    await settle();
    assert.deepEqual(log.splice(0), ['a answer error down']);
    assert.equal(hub.isSubscribed(a, 't'), true);
    assert.deepEqual(hub.stats(), { topics: 1, subscriptions: 1 });
    // Waiting for a first recovery, a second subscribe gets a read of its own.
    take('watch').resolve(undefined);
    hub.subscribeRecovering(c, 't', undefined, answer('c1'));
    await settle();
    const first = take('position');
    hub.subscribeRecovering(c, 't', undefined, answer('c2'));
    take('position').resolve({ epoch: 'E', seq: 1 });
    await settle();
    first.resolve({ epoch: 'E', seq: 1 });
    await settle();
    assert.deepEqual(log.splice(0), ['c2 answer E:1 false', 'c1 answer E:1 false']);
    assert.deepEqual(hub.stats(), { topics: 1, subscriptions: 2 });
    host().deliver(delivered(2));
    assert.deepEqual(log.splice(0), ['a E2', 'c E2']);
  });
});

describe('Hub with an asynchronous broker: publish, position, recover, resets', () => {
  it('publish returns 0 and hands the message over; a failure goes to onError', async () => {
    const { hub, take, errors, subscriber } = asyncHub();
    const a = subscriber('a');
    assert.equal(hub.synchronous, false);
    assert.equal(hub.publish('t', 'x', { compress: false }, a), 0);
    const call = take('publish');
    assert.deepEqual(call.args, [{ topic: 't', payload: Buffer.from('x'), binary: false, compress: false }, a]);
    const down = new Error('not published');
    call.reject(down);
    assert.equal(hub.publishMessage({ topic: 't', payload: '{"seq":', tail: '}', binary: false }), 0);
    assert.deepEqual(take('publish').args, [{ topic: 't', payload: '{"seq":', tail: '}', binary: false }, undefined]);
    hub.publish('t', Buffer.from('y'));
    take('publish').reject('backlog');
    hub.publish('t', 'z');
    take('publish').resolve({ epoch: 'E', seq: 1 });
    await settle();
    assert.equal(errors.length, 2);
    assert.equal(errors[0], down);
    assert.ok(errors[1] instanceof Error);
    assert.equal(errors[1].message, 'backlog');
  });

  it('without onError, a failed publish is a process warning', async () => {
    const { broker, take } = asyncBroker();
    const hub = new Hub({ broker });
    const warned = once(process, 'warning') as Promise<[Error]>;
    hub.publish('t', 'x');
    take('publish').reject(new Error('publish failed (expected by this test)'));
    const [warning] = await warned;
    assert.equal(warning.message, 'publish failed (expected by this test)');
  });

  it('publishAsync, positionAsync and recoverAsync wait for the broker', async () => {
    const { hub, take, calls } = asyncHub();
    const published = hub.publishAsync('t', 'x');
    take('publish').resolve({ epoch: 'E', seq: 7 });
    assert.deepEqual(await published, { epoch: 'E', seq: 7 });
    const refused = hub.publishAsync('t', 'y');
    const backlog = new Error('backlog');
    take('publish').reject(backlog);
    await assert.rejects(refused, (err) => err === backlog);
    const inTail = hub.publishMessageAsync({ topic: 't', payload: 'a', tail: 'b', binary: false });
    take('publish').resolve({ epoch: 'E', seq: 8 });
    assert.deepEqual(await inTail, { epoch: 'E', seq: 8 });
    const position = hub.positionAsync('t');
    assert.deepEqual(take('position').args, ['t']);
    assert.equal(calls.position.length, 0);
    const recovered = hub.recoverAsync('t', 3, 'E');
    const read = take('recover');
    assert.deepEqual(read.args, ['t', 3, 'E']);
    read.resolve(recovery(8));
    assert.deepEqual(await recovered, recovery(8));
    void position;
  });

  it('position(), recover() and a payload function throw WS_ERR_BROKER_ASYNC (TypeError); nothing is published', async () => {
    const { hub, calls } = asyncHub();
    assert.throws(() => hub.position('t'), ASYNC_ONLY);
    assert.throws(() => hub.recover('t', 0, 'E'), ASYNC_ONLY);
    assert.throws(() => hub.publish('t', (seq) => `${seq}`), ASYNC_ONLY);
    await assert.rejects(
      hub.publishAsync('t', (seq) => `${seq}`),
      ASYNC_ONLY,
    );
    assert.equal(calls.publish.length + calls.position.length, 0);
  });

  it('onReset: a reset reaches every listener with the subscribers; a throwing one is reported; the returned function removes it', () => {
    const { hub, host, errors, log, subscriber } = asyncHub();
    const [a, b] = [subscriber('a'), subscriber('b')];
    hub.subscribe(a, 't');
    hub.subscribe(b, 't');
    const bug = new Error('listener bug');
    const removeThrowing = hub.onReset(() => {
      throw bug;
    });
    const seen: string[] = [];
    const remove = hub.onReset((topic, position, subscribers) => {
      seen.push(
        `${topic} ${position.epoch}:${position.seq} ${[...subscribers].map((s) => (s as LogSubscriber).name).join(',')}`,
      );
    });
    host().reset('t', { epoch: 'F', seq: 0 });
    assert.deepEqual(errors, [bug]);
    assert.deepEqual(seen, ['t F:0 a,b'], 'called after the throwing one');
    assert.deepEqual(log.splice(0), ['a reset F:0', 'b reset F:0']);
    remove();
    removeThrowing();
    host().reset('t', { epoch: 'F', seq: 2 });
    host().reset('nobody here', { epoch: 'G', seq: 0 });
    assert.deepEqual(seen, ['t F:0 a,b']);
    assert.deepEqual(errors, [bug]);
    assert.deepEqual(log.splice(0), ['a reset F:2', 'b reset F:2']);
    hub.onReset(() => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- a listener that throws a non-Error
      throw 'not an Error';
    });
    host().reset('t', { epoch: 'F', seq: 3 });
    assert.equal(errors.length, 2);
    assert.ok(errors[1] instanceof Error);
    assert.equal(errors[1].message, 'not an Error');
    const lost = new Error('connection lost');
    host().error(lost);
    assert.equal(errors[2], lost, 'the broker reports to onError');
  });

  it('passes history settings to the broker and close() returns its close', async () => {
    const { broker, configured } = asyncBroker();
    const hub = new Hub({ broker, history: { size: 5 } });
    hub.configureTopic('t', { history: false });
    assert.deepEqual(configured, [
      ['default', { size: 5 }],
      ['t', false],
    ]);
    const closing = hub.close();
    assert.ok(closing instanceof Promise);
    await closing;
  });
});

describe('Hub with the in-memory broker: the asynchronous API and the broker given', () => {
  it('publishAsync, positionAsync and recoverAsync resolve at once with what the synchronous calls give', async () => {
    const hub = new Hub({ history: { size: 10 } });
    assert.equal(hub.synchronous, true);
    const [a] = fakes(1);
    hub.subscribe(a, 't');
    const { epoch } = hub.position('t');
    assert.deepEqual(await hub.publishAsync('t', 'one'), { epoch, seq: 1 });
    assert.deepEqual(await hub.publishAsync('t', (seq, ep) => `${seq}@${ep}`), { epoch, seq: 2 });
    assert.deepEqual(a.texts(), ['one', `2@${epoch}`]);
    assert.deepEqual(await hub.positionAsync('t'), { epoch, seq: 2 });
    const recovered = await hub.recoverAsync('t', 0, epoch);
    assert.equal(recovered.recovered, true);
    assert.deepEqual(
      recovered.messages.map((m) => m.payload.toString()),
      ['one', `2@${epoch}`],
    );
    const bad = new RangeError('bad payload');
    await assert.rejects(
      hub.publishAsync('t', () => {
        throw bad;
      }),
      (err) => err === bad,
    );
  });

  it('publishAsync rejects when a synchronous broker throws', async () => {
    const { broker } = recordingBroker();
    const throwing: SynchronousBroker = {
      ...(broker as SynchronousBroker),
      publish: () => {
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- a broker that throws a non-Error
        throw 'full';
      },
    };
    const hub = new Hub({ broker: throwing });
    await assert.rejects(hub.publishAsync('t', 'x'), { name: 'Error', message: 'full' });
  });

  it('a MemoryBroker given with a history option gets it as its default', () => {
    const hub = new Hub({ broker: new MemoryBroker(), history: { size: 5 } });
    hub.publish('t', 'kept');
    const { epoch } = hub.position('t');
    assert.equal(hub.recover('t', 0, epoch).recovered, true);
  });

  it('a topic only looked at (position) and then published to, without history or subscribers, is forgotten', () => {
    const hub = new Hub();
    hub.position('t');
    assert.equal(topicsKept(hub), 1);
    hub.publish('t', 'x');
    assert.equal(topicsKept(hub), 0);
  });
});

describe('MemoryBroker', () => {
  it('messageBytes: the payload as bytes, with the seq and the tail put in', () => {
    const bytes = Buffer.from('raw');
    assert.equal(messageBytes({ topic: 't', payload: bytes, binary: true }, 7), bytes, 'the same buffer');
    assert.deepEqual(messageBytes({ topic: 't', payload: 'h\u00e9', binary: false }, 7), Buffer.from('h\u00e9'));
    assert.equal(messageBytes({ topic: 't', payload: '{"seq":', tail: '}', binary: false }, 7).toString(), '{"seq":7}');
    assert.equal(
      messageBytes({ topic: 't', payload: Buffer.from('<'), tail: '>', binary: true }, 12).toString(),
      '<12>',
    );
  });

  it('configureTopic on a topic it holds: the new history applies from now on', () => {
    const broker = new MemoryBroker();
    const hub = new Hub({ broker });
    const [a] = fakes(1);
    hub.subscribe(a, 't');
    hub.publish('t', 'before');
    hub.configureTopic('t', { history: { size: 5 } });
    hub.publish('t', 'kept');
    const { epoch } = hub.position('t');
    assert.deepEqual(
      hub.recover('t', 1, epoch).messages.map((m) => m.payload.toString()),
      ['kept'],
    );
    assert.equal(hub.recover('t', 0, epoch).recovered, false, 'the first came before the history');
    // The same settings again (a second Channel, or every cluster worker at start) keep it.
    hub.configureTopic('t', { history: { size: 5, ttl: 0 } });
    assert.deepEqual(
      hub.recover('t', 1, epoch).messages.map((m) => m.payload.toString()),
      ['kept'],
      'configured again with the same settings: the history stays',
    );
    hub.configureTopic('t', { history: false });
    assert.equal(hub.recover('t', 1, epoch).recovered, false, 'history off: gone');
    broker.unwatch('never watched'); // nothing to do
    assert.equal(broker.topicCount(), 1);
  });

  it('a publish with compress: false is delivered with it', () => {
    const hub = new Hub();
    const got: boolean[] = [];
    hub.subscribe({ sendEncoded: (m) => got.push(m.compress) > 0 }, 't');
    hub.publish('t', 'plain', { compress: false });
    hub.publish('t', 'default');
    assert.deepEqual(got, [false, true]);
  });

  it('publish ids of a topic nobody publishes to any more are released after their ttl, and its log with them', (t) => {
    t.mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_000_000 });
    const broker = new MemoryBroker();
    const hub = new Hub({ broker });
    const withId = (topic: string, id: string, ttlMs: number) =>
      hub.publishMessageSync({ topic, payload: id, binary: false, dedup: { id, ttlMs, size: 100 } });
    try {
      // 1,000 idle topics (nobody follows them), each with one id; one kept by its history.
      for (let i = 0; i < 1000; i++) withId(`idle${i}`, 'x', 30_000);
      hub.configureTopic('kept', { history: { size: 5 } });
      withId('kept', 'x', 30_000);
      withId('longer', 'y', 60_000);
      assert.equal(broker.topicCount(), 1002);
      // No publish comes again: the sweep alone releases them, within DEDUP_SWEEP_MS after the ttl.
      t.mock.timers.tick(30_000 + DEDUP_SWEEP_MS);
      assert.equal(broker.topicCount(), 2, 'the idle topics went with their ids; history keeps "kept"');
      assert.equal(withId('kept', 'x', 30_000).duplicate, undefined, 'its id is forgotten: published again');
      assert.equal(withId('longer', 'y', 60_000).duplicate, true, 'a longer ttl: still remembered');
      t.mock.timers.tick(60_000 + DEDUP_SWEEP_MS);
      assert.equal(broker.topicCount(), 1);
      assert.equal(withId('longer', 'y', 60_000).duplicate, undefined);
    } finally {
      broker.close();
    }
  });
});
