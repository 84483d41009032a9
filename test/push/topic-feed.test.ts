/**
 * TopicFeeds (src/push/topic-feed.ts) without a network: the test plays the broker's transport
 * (a FeedSource whose every subscribe, position and range is a promise the test settles by
 * hand) and the Hub (a BrokerHost that records deliveries, resets and errors in one log).
 * In-order delivery, duplicates skipped, gaps filled from history or reset, epoch changes,
 * resync after a reconnection, retries after 1 s (mock timers), failures the broker reported
 * already kept quiet, queue overflow, the sender
 * excluded by origin, unwatch and close.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { BrokerHost, BrokerMessage, TopicPosition } from '../../src/push/broker.js';
import { TopicFeeds, type FeedMessage, type FeedSource } from '../../src/push/topic-feed.js';

/** One call to the fake source, waiting for the test to settle it. */
interface Call<T> {
  kind: 'subscribe' | 'position' | 'range';
  topic: string;
  args: unknown[];
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
}

/** A FeedSource whose answers the test gives by hand, in the order it chooses. */
class FakeSource implements FeedSource {
  readonly calls: Array<Call<unknown>> = [];
  readonly unsubscribed: string[] = [];

  private call<T>(kind: Call<T>['kind'], topic: string, args: unknown[]): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.calls.push({ kind, topic, args, resolve: resolve as (value: unknown) => void, reject });
    });
  }
  subscribe(topic: string): Promise<void> {
    return this.call('subscribe', topic, []);
  }
  unsubscribe(topic: string): void {
    this.unsubscribed.push(topic);
  }
  position(topic: string): Promise<TopicPosition> {
    return this.call('position', topic, []);
  }
  range(topic: string, epoch: string, after: number, upTo: number): Promise<BrokerMessage[] | undefined> {
    return this.call('range', topic, [epoch, after, upTo]);
  }

  /** The waiting calls, as `kind topic args` (what the feed asked for and has no answer to). */
  waiting(): string[] {
    return this.calls.map((c) => [c.kind, c.topic, ...c.args.map(String)].join(' '));
  }
  /** Take the oldest waiting call of `kind` (it must be there). */
  take(kind: Call<unknown>['kind'], topic = 't'): Call<unknown> {
    const i = this.calls.findIndex((c) => c.kind === kind && c.topic === topic);
    assert.ok(i >= 0, `no ${kind} of ${topic} waiting; waiting: ${JSON.stringify(this.waiting())}`);
    return this.calls.splice(i, 1)[0];
  }
}

/** The Hub's side: what the feeds delivered, reset and reported, in one ordered log. */
class FakeHost implements BrokerHost {
  /** `E:3` for a delivery of seq 3 in epoch E, `reset E:0`, `error <message>`. */
  readonly log: string[] = [];
  readonly delivered: Array<{ message: BrokerMessage; exclude: unknown }> = [];
  readonly errors: Error[] = [];
  deliver(message: BrokerMessage, exclude?: unknown): void {
    assert.equal(message.payload.toString(), `${message.epoch}${message.seq}`, 'the payload goes with its seq');
    this.log.push(`${message.epoch}:${message.seq}`);
    this.delivered.push({ message, exclude });
  }
  reset(topic: string, position: TopicPosition): void {
    assert.equal(topic, 't');
    this.log.push(`reset ${position.epoch}:${position.seq}`);
  }
  error(err: Error): void {
    this.log.push(`error ${err.message}`);
    this.errors.push(err);
  }
  /** Take what was logged so far. */
  take(): string[] {
    return this.log.splice(0);
  }
}

/** A message of topic t as the network brings it (payload `<epoch><seq>`). */
function msg(seq: number, epoch = 'A', extra: Partial<FeedMessage> = {}): FeedMessage {
  return { topic: 't', payload: Buffer.from(`${epoch}${seq}`), binary: false, seq, epoch, ...extra };
}

/** Let every settled promise's callbacks run (the feed reacts in promise callbacks). */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Feeds with topic t watched, subscribed and positioned at `position`. */
async function started(
  position: TopicPosition = { epoch: 'A', seq: 0 },
): Promise<{ source: FakeSource; host: FakeHost; feeds: TopicFeeds }> {
  const source = new FakeSource();
  const host = new FakeHost();
  const feeds = new TopicFeeds(source, () => host);
  const watching = feeds.watch('t');
  source.take('subscribe').resolve(undefined);
  await flush();
  source.take('position').resolve(position);
  await watching;
  assert.deepEqual(source.waiting(), []);
  return { source, host, feeds };
}

describe('TopicFeeds: delivery', () => {
  it('watch subscribes, then reads the position; what arrives meanwhile is held, then delivered after it', async () => {
    const source = new FakeSource();
    const host = new FakeHost();
    const feeds = new TopicFeeds(source, () => host);
    let ready = false;
    const watching = feeds.watch('t').then(() => {
      ready = true;
    });
    assert.equal(feeds.watch('t'), feeds.watch('t'), 'watching twice: the same promise');
    assert.equal(feeds.has('t'), true);
    assert.equal(feeds.has('u'), false);
    assert.equal(feeds.size, 1);
    assert.deepEqual(source.waiting(), ['subscribe t'], 'subscribed once, the position only after');
    source.take('subscribe').resolve(undefined);
    await flush();
    assert.deepEqual(source.waiting(), ['position t']);
    // Published around the position read: 4 and 5 are in it, 6 and 7 after it.
    for (const seq of [4, 5, 6, 7]) feeds.receive(msg(seq));
    await flush();
    assert.deepEqual(host.take(), [], 'nothing before the position is known');
    assert.equal(ready, false);
    source.take('position').resolve({ epoch: 'A', seq: 5 });
    await watching;
    assert.equal(ready, true);
    assert.deepEqual(host.take(), ['A:6', 'A:7']);
    assert.deepEqual(source.waiting(), []);
    feeds.receive(msg(9, 'A', { topic: 'u' }));
    assert.deepEqual(host.take(), [], 'a topic not watched is ignored');
  });

  it('delivers in order at once; a message delivered already is skipped; flags go through, origin does not', async () => {
    const { source, host, feeds } = await started({ epoch: 'A', seq: 2 });
    feeds.receive(msg(3));
    feeds.receive(msg(4, 'A', { binary: true, compress: false, origin: 7 }));
    feeds.receive(msg(4));
    feeds.receive(msg(2));
    feeds.receive(msg(5, 'A', { compress: true }));
    assert.deepEqual(host.take(), ['A:3', 'A:4', 'A:5'], 'synchronously, each once');
    assert.deepEqual(
      host.delivered.map((d) => d.message),
      [
        { topic: 't', payload: Buffer.from('A3'), binary: false, seq: 3, epoch: 'A' },
        { topic: 't', payload: Buffer.from('A4'), binary: true, compress: false, seq: 4, epoch: 'A' },
        { topic: 't', payload: Buffer.from('A5'), binary: false, compress: true, seq: 5, epoch: 'A' },
      ],
    );
    assert.deepEqual(source.waiting(), [], 'no read without a gap');
    assert.deepEqual(feeds.stats, { gapsFilled: 0, resets: 0 });
  });

  it('a gap is filled from history, in order; what arrives meanwhile waits and follows', async () => {
    const { source, host, feeds } = await started({ epoch: 'A', seq: 1 });
    feeds.receive(msg(4));
    assert.deepEqual(source.waiting(), ['range t A 1 3'], 'reads exactly the missing messages');
    feeds.receive(msg(5));
    feeds.receive(msg(2)); // late, and inside the gap: the fill brings it
    feeds.receive(msg(6));
    await flush();
    assert.deepEqual(host.take(), [], 'nothing jumps the gap');
    assert.deepEqual(source.waiting(), ['range t A 1 3'], 'one read at a time');
    source.take('range').resolve([msg(2), msg(3)]);
    await flush();
    assert.deepEqual(host.take(), ['A:2', 'A:3', 'A:4', 'A:5', 'A:6']);
    assert.deepEqual(source.waiting(), []);
    assert.deepEqual(feeds.stats, { gapsFilled: 1, resets: 0 });
    feeds.receive(msg(7));
    assert.deepEqual(host.take(), ['A:7'], 'live again');
  });

  it('a gap history no longer holds (range undefined): a reset at the gap end, then delivery goes on', async () => {
    const { source, host, feeds } = await started({ epoch: 'A', seq: 1 });
    feeds.receive(msg(5));
    feeds.receive(msg(6));
    source.take('range').resolve(undefined);
    await flush();
    assert.deepEqual(host.take(), ['reset A:4', 'A:5', 'A:6']);
    assert.deepEqual(feeds.stats, { gapsFilled: 0, resets: 1 });
    assert.deepEqual(source.waiting(), []);
  });

  it('a range shorter than asked (history trimmed as it was read): what it holds, then a reset for the rest', async () => {
    const { source, host, feeds } = await started({ epoch: 'A', seq: 1 });
    feeds.receive(msg(6));
    assert.deepEqual(source.waiting(), ['range t A 1 5']);
    // An entry the feed has already (1) is skipped; 2 and 3 are delivered; 4..5 are gone.
    source.take('range').resolve([msg(1), msg(2), msg(3)]);
    await flush();
    assert.deepEqual(host.take(), ['A:2', 'A:3', 'reset A:5', 'A:6']);
    assert.deepEqual(feeds.stats, { gapsFilled: 1, resets: 1 });
  });

  it('a message of another epoch: reset to {epoch: new, seq: 0}, then the new epoch filled from its history', async () => {
    const { source, host, feeds } = await started({ epoch: 'A', seq: 1 });
    feeds.receive(msg(2));
    feeds.receive(msg(3, 'B'));
    assert.deepEqual(host.take(), ['A:2', 'reset B:0']);
    assert.deepEqual(source.waiting(), ['range t B 0 2']);
    feeds.receive(msg(4, 'B'));
    source.take('range').resolve([msg(1, 'B'), msg(2, 'B')]);
    await flush();
    assert.deepEqual(host.take(), ['B:1', 'B:2', 'B:3', 'B:4']);
    // The first message of a new epoch needs no read.
    feeds.receive(msg(1, 'C'));
    assert.deepEqual(host.take(), ['reset C:0', 'C:1']);
    assert.deepEqual(source.waiting(), []);
    assert.deepEqual(feeds.stats, { gapsFilled: 1, resets: 2 });
  });
});

describe('TopicFeeds: resync after a reconnection', () => {
  it('a higher seq is filled up to it with no message arriving; the same or a lower one reads nothing more', async () => {
    const { source, host, feeds } = await started({ epoch: 'A', seq: 2 });
    feeds.resync();
    assert.deepEqual(source.waiting(), ['position t']);
    source.take('position').resolve({ epoch: 'A', seq: 5 });
    await flush();
    assert.deepEqual(source.waiting(), ['range t A 2 5']);
    source.take('range').resolve([msg(3), msg(4), msg(5)]);
    await flush();
    assert.deepEqual(host.take(), ['A:3', 'A:4', 'A:5']);
    for (const seq of [5, 4]) {
      feeds.resync();
      source.take('position').resolve({ epoch: 'A', seq });
      await flush();
      assert.deepEqual(source.waiting(), [], `position ${seq}: nothing to fill`);
    }
    assert.deepEqual(host.take(), []);
  });

  it('a position read while a gap is being filled raises the target: both are filled', async () => {
    const { source, host, feeds } = await started({ epoch: 'A', seq: 1 });
    feeds.receive(msg(3));
    feeds.resync();
    source.take('position').resolve({ epoch: 'A', seq: 6 });
    await flush();
    assert.deepEqual(source.waiting(), ['range t A 1 2'], 'the read in flight goes first');
    source.take('range').resolve([msg(2)]);
    await flush();
    assert.deepEqual(source.waiting(), ['range t A 3 6']);
    source.take('range').resolve([msg(4), msg(5), msg(6)]);
    await flush();
    assert.deepEqual(host.take(), ['A:2', 'A:3', 'A:4', 'A:5', 'A:6']);
  });

  it('another epoch: reset to it at 0, then its history up to the position read', async () => {
    const { source, host, feeds } = await started({ epoch: 'A', seq: 4 });
    feeds.resync();
    source.take('position').resolve({ epoch: 'B', seq: 2 });
    await flush();
    assert.deepEqual(host.take(), ['reset B:0']);
    assert.deepEqual(source.waiting(), ['range t B 0 2']);
    source.take('range').resolve([msg(1, 'B'), msg(2, 'B')]);
    await flush();
    assert.deepEqual(host.take(), ['B:1', 'B:2']);
    feeds.receive(msg(3, 'B'));
    assert.deepEqual(host.take(), ['B:3']);
    assert.deepEqual(feeds.stats, { gapsFilled: 1, resets: 1 });
  });

  it('another epoch while a gap is being filled: what was held of the old epoch first, then the reset and the new epoch', async () => {
    // Redis restarted (and lost its data) while a fill was in flight.
    const { source, host, feeds } = await started({ epoch: 'A', seq: 1 });
    feeds.receive(msg(3));
    feeds.receive(msg(4));
    feeds.resync();
    source.take('position').resolve({ epoch: 'B', seq: 2 });
    await flush();
    assert.deepEqual(host.take(), [], 'the read in flight goes first');
    source.take('range').resolve([msg(2)]);
    await flush();
    assert.deepEqual(host.take(), ['A:2', 'A:3', 'A:4', 'reset B:0']);
    assert.deepEqual(
      source.waiting(),
      ['range t B 0 2'],
      'the new epoch up to the position read, with no message arriving',
    );
    source.take('range').resolve([msg(1, 'B'), msg(2, 'B')]);
    await flush();
    assert.deepEqual(host.take(), ['B:1', 'B:2']);
    feeds.receive(msg(3, 'B'));
    assert.deepEqual(host.take(), ['B:3']);
  });

  it('a new epoch with nothing in it yet: only the reset', async () => {
    const { source, host, feeds } = await started({ epoch: 'A', seq: 4 });
    feeds.resync();
    source.take('position').resolve({ epoch: 'B', seq: 0 });
    await flush();
    assert.deepEqual(host.take(), ['reset B:0']);
    assert.deepEqual(source.waiting(), []);
    feeds.receive(msg(1, 'B'));
    assert.deepEqual(host.take(), ['B:1']);
  });

  it('skips topics not positioned yet, and reports a failed position read', async () => {
    const { source, host, feeds } = await started({ epoch: 'A', seq: 0 });
    void feeds.watch('u');
    source.take('subscribe', 'u').resolve(undefined);
    await flush();
    assert.deepEqual(source.waiting(), ['position u']);
    feeds.resync();
    assert.deepEqual(source.waiting(), ['position u', 'position t'], 'u (still starting) is not read twice');
    source.take('position', 't').reject(new Error('still down'));
    await flush();
    assert.deepEqual(host.take(), ['error still down']);
  });
});

describe('TopicFeeds: failures and limits', () => {
  it('a failed subscribe or position is reported and retried after 1 s, from the subscribe', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const source = new FakeSource();
    const host = new FakeHost();
    const feeds = new TopicFeeds(source, () => host);
    let ready = false;
    const watching = feeds.watch('t').then(() => {
      ready = true;
    });
    source.take('subscribe').reject(new Error('no connection'));
    await flush();
    assert.deepEqual(host.take(), ['error no connection']);
    t.mock.timers.tick(999);
    await flush();
    assert.deepEqual(source.waiting(), [], 'not before 1 s');
    t.mock.timers.tick(1);
    await flush();
    assert.deepEqual(source.waiting(), ['subscribe t']);
    source.take('subscribe').resolve(undefined);
    await flush();
    source.take('position').reject('timeout'); // not an Error: reported as one
    await flush();
    assert.ok(host.errors.at(-1) instanceof Error);
    assert.deepEqual(host.take(), ['error timeout']);
    t.mock.timers.tick(1000);
    await flush();
    source.take('subscribe').resolve(undefined);
    await flush();
    source.take('position').resolve({ epoch: 'A', seq: 3 });
    await watching;
    assert.equal(ready, true);
    feeds.receive(msg(4));
    assert.deepEqual(host.take(), ['A:4']);
  });

  it('quiet: a failure the broker says it reported already is retried but not reported again', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const source = new FakeSource();
    const host = new FakeHost();
    // The broker's rule in small: its own outage is quiet, anything else is news.
    const feeds = new TopicFeeds(
      source,
      () => host,
      (err) => err instanceof Error && err.message === 'outage',
    );
    const watching = feeds.watch('t');
    for (let i = 0; i < 3; i++) {
      source.take('subscribe').reject(new Error('outage'));
      await flush();
      t.mock.timers.tick(1000);
      await flush();
    }
    assert.deepEqual(host.take(), [], 'three failed tries, none reported');
    source.take('subscribe').reject(new Error('WRONGTYPE'));
    await flush();
    assert.deepEqual(host.take(), ['error WRONGTYPE'], 'another cause is reported');
    t.mock.timers.tick(1000);
    await flush();
    source.take('subscribe').resolve(undefined);
    await flush();
    source.take('position').resolve({ epoch: 'A', seq: 0 });
    await watching;
    feeds.receive(msg(1));
    assert.deepEqual(host.take(), ['A:1']);
  });

  it('a failed range is reported and read again after 1 s; held messages wait for it', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { source, host, feeds } = await started({ epoch: 'A', seq: 1 });
    feeds.receive(msg(3));
    source.take('range').reject(new Error('read failed'));
    await flush();
    feeds.receive(msg(4));
    assert.deepEqual(host.take(), ['error read failed']);
    t.mock.timers.tick(999);
    await flush();
    assert.deepEqual(source.waiting(), []);
    t.mock.timers.tick(1);
    await flush();
    assert.deepEqual(source.waiting(), ['range t A 1 2']);
    source.take('range').resolve([msg(2)]);
    await flush();
    assert.deepEqual(host.take(), ['A:2', 'A:3', 'A:4']);
  });

  it('unwatched or closed while waiting to retry: no retry', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { source, host, feeds } = await started({ epoch: 'A', seq: 1 });
    void feeds.watch('u');
    source.take('subscribe', 'u').reject(new Error('u failed'));
    feeds.receive(msg(3));
    source.take('range').reject(new Error('t failed'));
    await flush();
    assert.deepEqual(host.take().sort(), ['error t failed', 'error u failed']);
    feeds.unwatch('t');
    feeds.unwatch('u');
    t.mock.timers.tick(1000);
    await flush();
    assert.deepEqual(source.waiting(), [], 'unwatched: nothing read again');
    void feeds.watch('v');
    source.take('subscribe', 'v').reject(new Error('v failed'));
    await flush();
    feeds.close();
    t.mock.timers.tick(5000);
    await flush();
    assert.deepEqual(source.waiting(), [], 'closed: nothing read again');
    assert.deepEqual(host.take(), ['error v failed']);
  });

  it('a failure while the feed is being unwatched or closed is not retried, nor reported once closed', async () => {
    const source = new FakeSource();
    const host = new FakeHost();
    const feeds = new TopicFeeds(source, () => host);
    void feeds.watch('t');
    void feeds.watch('u');
    feeds.unwatch('t');
    source.take('subscribe', 't').reject(new Error('t failed'));
    feeds.close();
    source.take('subscribe', 'u').reject(new Error('u failed'));
    await flush();
    assert.deepEqual(host.take(), [], 'neither reported');
    assert.deepEqual(source.waiting(), []);
  });

  it('more than 10,000 messages held: the queue is let go and filled from history up to the last one seen', async () => {
    const { source, host, feeds } = await started({ epoch: 'A', seq: 1 });
    feeds.receive(msg(3)); // a gap: the read is slow, messages pile up
    for (let seq = 4; seq <= 10_002; seq++) feeds.receive(msg(seq));
    feeds.receive(msg(10_003)); // the 10,001st held: too many
    source.take('range').resolve([msg(2)]);
    await flush();
    assert.deepEqual(host.take(), ['A:2'], 'what was held is gone');
    assert.deepEqual(source.waiting(), ['range t A 2 10003'], 'up to the last message let go');
    const rest: FeedMessage[] = [];
    for (let seq = 3; seq <= 10_003; seq++) rest.push(msg(seq));
    source.take('range').resolve(rest);
    await flush();
    const log = host.take();
    assert.equal(log.length, 10_001);
    assert.deepEqual([log[0], log.at(-1)], ['A:3', 'A:10003']);
    assert.ok(
      log.every((entry, i) => entry === `A:${i + 3}`),
      'every one once, in order',
    );
    feeds.receive(msg(10_004));
    assert.deepEqual(host.take(), ['A:10004'], 'live again');
  });

  it('an overflow by a message of another epoch: the queue is let go and a later resync recovers', async () => {
    const { source, host, feeds } = await started({ epoch: 'A', seq: 1 });
    feeds.receive(msg(3));
    for (let seq = 4; seq <= 10_002; seq++) feeds.receive(msg(seq));
    feeds.receive(msg(1, 'B')); // let go, with the epoch change it carried
    source.take('range').resolve([msg(2)]);
    await flush();
    assert.deepEqual(host.take(), ['A:2']);
    assert.deepEqual(source.waiting(), [], 'nothing known to fill');
    feeds.resync();
    source.take('position').resolve({ epoch: 'B', seq: 2 });
    await flush();
    source.take('range').resolve([msg(1, 'B'), msg(2, 'B')]);
    await flush();
    assert.deepEqual(host.take(), ['reset B:0', 'B:1', 'B:2']);
  });
});

describe('TopicFeeds: excluding the sender, unwatch and close', () => {
  it("expect(): the publish's own message leaves out its sender; earlier origins are forgotten with it", async () => {
    const { host, feeds } = await started({ epoch: 'A', seq: 0 });
    const [a, b, c] = ['a', 'b', 'c'];
    feeds.expect('t', 1, a);
    feeds.expect('t', 2, b);
    feeds.expect('t', 3, c);
    feeds.expect('not watched', 1, a); // ignored
    feeds.receive(msg(1));
    feeds.receive(msg(2, 'A', { origin: 2 }));
    feeds.receive(msg(3, 'A', { origin: 1 })); // 1 was before 2: forgotten (its message was lost)
    feeds.receive(msg(4, 'A', { origin: 3 }));
    feeds.receive(msg(5, 'A', { origin: 3 })); // 3 is delivered already
    assert.deepEqual(
      host.delivered.map((d) => d.exclude),
      [undefined, b, undefined, c, undefined],
    );
  });

  it('origins come with filled messages too, and a new epoch forgets the expected ones', async () => {
    const { source, host, feeds } = await started({ epoch: 'A', seq: 0 });
    feeds.expect('t', 1, 'a');
    feeds.expect('t', 2, 'b');
    feeds.receive(msg(2));
    source.take('range').resolve([msg(1, 'A', { origin: 1 })]);
    await flush();
    feeds.receive(msg(1, 'B', { origin: 2 }));
    assert.deepEqual(host.take(), ['A:1', 'A:2', 'reset B:0', 'B:1']);
    assert.deepEqual(
      host.delivered.map((d) => d.exclude),
      ['a', undefined, undefined],
    );
  });

  it('unwatch stops the topic: unsubscribed once, reads in flight ignored, watch starts it over', async () => {
    const { source, host, feeds } = await started({ epoch: 'A', seq: 1 });
    feeds.receive(msg(3));
    feeds.resync();
    feeds.unwatch('t');
    feeds.unwatch('t');
    assert.deepEqual(source.unsubscribed, ['t'], 'once');
    assert.equal(feeds.has('t'), false);
    assert.equal(feeds.size, 0);
    source.take('range').resolve([msg(2)]);
    source.take('position').resolve({ epoch: 'A', seq: 9 });
    feeds.receive(msg(4));
    await flush();
    assert.deepEqual(host.take(), []);
    assert.deepEqual(source.waiting(), []);
    // Unwatched while positioning: that start gives up; a new watch starts anew.
    const first = feeds.watch('t');
    source.take('subscribe').resolve(undefined);
    await flush();
    feeds.unwatch('t');
    source.take('position').resolve({ epoch: 'A', seq: 9 });
    await first;
    const second = feeds.watch('t');
    assert.notEqual(second, first);
    source.take('subscribe').resolve(undefined);
    await flush();
    source.take('position').resolve({ epoch: 'A', seq: 20 });
    await second;
    feeds.receive(msg(10));
    feeds.receive(msg(21));
    assert.deepEqual(host.take(), ['A:21'], 'positioned by the new start only');
  });

  it('close stops everything: no delivery, no read, no report', async () => {
    const { source, host, feeds } = await started({ epoch: 'A', seq: 1 });
    feeds.receive(msg(3));
    feeds.close();
    assert.equal(feeds.size, 0);
    source.take('range').reject(new Error('closed'));
    feeds.receive(msg(2));
    feeds.resync();
    feeds.expect('t', 1, 'a');
    await flush();
    assert.deepEqual(host.take(), []);
    assert.deepEqual(source.waiting(), []);
  });

  it('works without a host (not attached yet): nothing delivered, nothing thrown', async () => {
    const source = new FakeSource();
    const feeds = new TopicFeeds(source, () => undefined);
    void feeds.watch('t');
    source.take('subscribe').reject(new Error('reported to nobody'));
    feeds.close();
    await flush();
    const again = new TopicFeeds(source, () => undefined);
    const started2 = again.watch('t');
    source.take('subscribe').resolve(undefined);
    await flush();
    source.take('position').resolve({ epoch: 'A', seq: 0 });
    await started2;
    again.receive(msg(1));
    again.receive(msg(3));
    source.take('range').resolve([]);
    await flush();
    again.receive(msg(1, 'B'));
    assert.deepEqual(again.stats, { gapsFilled: 1, resets: 2 });
  });
});
