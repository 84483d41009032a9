/**
 * RedisBroker against a real Redis, several brokers (as several processes would have) in this
 * process: one topic space, order and exactly-once delivery, the sender excluded, recovery
 * with publishes racing it, gaps after a lost connection filled from history or announced,
 * Redis losing its data (a new epoch, announced), publishes refused while Redis is away or
 * the backlog is full, an outage of seconds behind a proxy (WebSocket connections stay up,
 * reconnection backs off, what was missed is filled from history), one Redis subscription per
 * topic per process, malformed messages skipped, topic names kept out of each other's keys,
 * and leases. Each test has its own key prefix and deletes its keys.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { RedisBroker, type RedisBrokerOptions } from '../../src/redis/index.js';
import { Hub } from '../../src/push/hub.js';
import type { OutgoingMessage, PublishDedup } from '../../src/push/broker.js';
import { DuetError } from '../../src/protocol/errors.js';
import { WebSocket, WebSocketServer } from '../../src/index.js';
import { FaultProxy } from '../fault-proxy.js';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Recovery } from '../../src/push/history.js';
import {
  Recorder,
  adminClient,
  assertOrderedWithAnnouncedGaps,
  deleteKeys,
  killConnections,
  skipWithoutRedis,
  testPrefix,
  until,
  REDIS_URL,
} from './redis-helpers.js';

const skip = await skipWithoutRedis();

describe('RedisBroker', { skip }, () => {
  let admin: Redis;
  const opened: RedisBroker[] = [];
  const prefixes: string[] = [];

  before(() => {
    admin = adminClient();
  });
  after(async () => {
    await Promise.all(opened.map((b) => b.close()));
    for (const prefix of prefixes) await deleteKeys(admin, prefix);
    admin.disconnect();
  });

  /** `n` brokers on one new prefix, each with a Hub that records errors and resets. */
  async function fleet(
    name: string,
    n: number,
    options: RedisBrokerOptions = {},
  ): Promise<{ brokers: RedisBroker[]; hubs: Hub[]; errors: Error[]; prefix: string; recorders: Recorder[] }> {
    const prefix = testPrefix(name);
    prefixes.push(prefix);
    const errors: Error[] = [];
    const brokers: RedisBroker[] = [];
    const hubs: Hub[] = [];
    const recorders: Recorder[] = [];
    for (let i = 0; i < n; i++) {
      const broker = await RedisBroker.connect({ url: REDIS_URL, prefix, ...options });
      opened.push(broker);
      brokers.push(broker);
      const hub = new Hub({ broker, onError: (err) => errors.push(err) });
      hub.onReset((_topic, position, subscribers) => {
        for (const s of subscribers) if (s instanceof Recorder) s.got.push({ reset: position });
      });
      hubs.push(hub);
    }
    return { brokers, hubs, errors, prefix, recorders };
  }

  /** Subscribe a new recorder to `topic` on `hub` and wait until Redis feeds it. */
  async function follow(hub: Hub, topic: string): Promise<Recorder> {
    const recorder = new Recorder();
    let answered: Recovery | Error | undefined;
    hub.subscribeRecovering(recorder, topic, undefined, (result) => {
      answered = result;
      return true;
    });
    await until(() => answered !== undefined, 'the subscription');
    assert.ok(!(answered instanceof Error), answered instanceof Error ? answered.message : '');
    return recorder;
  }

  it('three brokers share one topic space: every subscriber gets every message once, in seq order', async () => {
    const { hubs, errors } = await fleet('share', 3);
    const recorders = await Promise.all(hubs.flatMap((hub) => [follow(hub, 'room'), follow(hub, 'room')]));
    // 60 publishes from the three processes, interleaved, awaited together.
    const acks = await Promise.all(
      Array.from({ length: 60 }, (_, i) => hubs[i % 3].publishAsync('room', `p${i % 3}-${i}`)),
    );
    const seqs = acks.map((a) => a.seq).sort((x, y) => x - y);
    assert.deepEqual(
      seqs,
      Array.from({ length: 60 }, (_, i) => i + 1),
      'one number per publish, no hole',
    );
    assert.equal(new Set(acks.map((a) => a.epoch)).size, 1);
    await until(() => recorders.every((r) => r.got.length === 60), 'every delivery');
    // Everyone saw the same order: the seq order.
    const bySeq = new Map(acks.map((a, i) => [a.seq, `p${i % 3}-${i}`]));
    const expected = [...bySeq.keys()].sort((x, y) => x - y).map((s) => bySeq.get(s));
    for (const r of recorders) assert.deepEqual(r.texts(), expected);
    assert.deepEqual(errors, []);
  });

  it('a publish excludes its local sender, here and not elsewhere', async () => {
    const { hubs } = await fleet('exclude', 2);
    const [sender, neighbour] = [await follow(hubs[0], 't'), await follow(hubs[0], 't')];
    const remote = await follow(hubs[1], 't');
    await hubs[0].publishAsync('t', 'hello', undefined, sender);
    await until(() => neighbour.got.length === 1 && remote.got.length === 1, 'the deliveries');
    await hubs[0].publishAsync('t', 'again'); // one more, to be sure the first was never sent to `sender`
    await until(() => neighbour.got.length === 2, 'the second delivery');
    assert.deepEqual(sender.texts(), ['again']);
    assert.deepEqual(remote.texts(), ['hello', 'again']);
  });

  it('a publish made with no subscriber anywhere reaches nobody and, without history, leaves no key', async () => {
    const { hubs, prefix } = await fleet('nobody', 1);
    const ack = await hubs[0].publishAsync('user:42', 'offline');
    assert.equal(ack.seq, 1);
    // Only the memory's name (the dedup scope), made when the broker connected.
    assert.deepEqual(await admin.keys(`${prefix}*`), [`${prefix}dedup-scope`]);
  });

  it('recovery while others keep publishing: no gap and no duplicate between the replay and live messages', async () => {
    const { hubs } = await fleet('recover', 2, { history: { size: 1000 } });
    let n = 0;
    let stop = false;
    const publisher = (async () => {
      while (!stop) await hubs[0].publishAsync('feed', String(++n));
    })();
    await until(() => n >= 20, 'some history');
    const joined: Array<{ recorder: Recorder; since: number }> = [];
    for (let i = 0; i < 8; i++) {
      // Each joins from a point in the past, while the publisher keeps going.
      const since = Math.max(0, n - 10 - i);
      const { epoch } = await hubs[1].positionAsync('feed');
      const recorder = new Recorder();
      hubs[1].subscribeRecovering(recorder, 'feed', { seq: since, epoch }, (result) => {
        assert.ok(!(result instanceof Error));
        assert.equal(result.recovered, true);
        for (const m of result.messages) recorder.got.push({ text: m.payload.toString() });
        return true;
      });
      joined.push({ recorder, since });
      await until(() => recorder.got.length > 0, 'the replay');
    }
    const target = n + 30;
    await until(() => n >= target, 'more publishes');
    stop = true;
    await publisher;
    await until(() => joined.every((j) => Number(j.recorder.texts().at(-1)) === n), 'the last message everywhere');
    for (const [i, { recorder, since }] of joined.entries()) {
      const numbers = assertOrderedWithAnnouncedGaps(recorder.got, `subscriber ${i}`, since);
      assert.deepEqual(
        numbers,
        Array.from({ length: n - since }, (_, k) => since + 1 + k),
        `subscriber ${i} (since ${since}) misses or repeats a message`,
      );
      assert.ok(!recorder.got.some((x) => 'reset' in x), 'no reset');
    }
  });

  it('a lost subscriber connection: the messages published meanwhile are filled from history, in order', async () => {
    const { brokers, hubs, errors } = await fleet('gap', 2, { history: { size: 500 } });
    const recorder = await follow(hubs[1], 'g');
    for (let i = 1; i <= 10; i++) await hubs[0].publishAsync('g', String(i));
    await until(() => recorder.got.length === 10, 'the first ten');
    assert.equal(await killConnections(admin, `duet:${brokers[1].id}:subscriber`), 1);
    // Published while broker 1 cannot hear them (it reconnects after 200 ms at the earliest).
    await Promise.all(Array.from({ length: 40 }, (_, i) => hubs[0].publishAsync('g', String(11 + i))));
    await until(() => recorder.got.length === 50, 'the missed forty', 30_000);
    const numbers = assertOrderedWithAnnouncedGaps(recorder.got, 'after the drop');
    assert.deepEqual(
      numbers,
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    assert.ok(brokers[1].stats().gapsFilled >= 1, 'filled from history');
    assert.equal(brokers[1].stats().resets, 0);
    assert.ok(
      errors.some((e) => e instanceof DuetError && e.code === 'WS_ERR_BROKER_UNAVAILABLE'),
      'the lost connection was reported',
    );
    // Live delivery goes on after it.
    await hubs[0].publishAsync('g', '51');
    await until(() => recorder.got.length === 51, 'a live message after the gap');
  });

  it('a gap the history no longer covers is announced with a reset, never silent', async () => {
    const { brokers, hubs } = await fleet('reset', 2, { history: { size: 5 } });
    const recorder = await follow(hubs[1], 'r');
    await hubs[0].publishAsync('r', '1');
    await until(() => recorder.got.length === 1, 'the first');
    await killConnections(admin, `duet:${brokers[1].id}:subscriber`);
    await Promise.all(Array.from({ length: 30 }, (_, i) => hubs[0].publishAsync('r', String(2 + i))));
    await until(() => recorder.got.some((x) => 'reset' in x), 'the reset', 30_000);
    // Live delivery goes on after the position the reset announced.
    await hubs[0].publishAsync('r', '32');
    await until(() => recorder.texts().at(-1) === '32', 'a live message after the reset', 30_000);
    assertOrderedWithAnnouncedGaps(recorder.got, 'after a long gap');
    assert.ok(
      recorder.got.some((x) => 'reset' in x),
      'a reset was announced',
    );
    assert.ok(brokers[1].stats().resets >= 1);
  });

  it('Redis loses its data: a new epoch, subscribers told, numbering from 1, recovery in the old epoch refused', async () => {
    const { hubs, prefix } = await fleet('flush', 2, { history: { size: 10 } });
    const recorder = await follow(hubs[1], 'f');
    const before = await hubs[0].publishAsync('f', 'old');
    await until(() => recorder.got.length === 1, 'the first');
    assert.ok((await deleteKeys(admin, prefix)) >= 1); // as FLUSHALL would, for this prefix only
    const afterFlush = await hubs[0].publishAsync('f', 'new');
    assert.notEqual(afterFlush.epoch, before.epoch);
    assert.equal(afterFlush.seq, 1);
    await until(() => recorder.texts().includes('new'), 'the new message');
    const reset = recorder.got[1];
    assert.ok(reset !== undefined && 'reset' in reset, 'a reset came before the new message');
    assert.deepEqual(reset.reset, { epoch: afterFlush.epoch, seq: 0 });
    const r = await hubs[1].recoverAsync('f', before.seq, before.epoch);
    assert.equal(r.recovered, false);
    assert.equal(r.epoch, afterFlush.epoch);
  });

  /** A text message with a publish id (what the channel protocol hands the broker). */
  function withId(topic: string, text: string, id: string, dedup: Partial<PublishDedup> = {}): OutgoingMessage {
    return { topic, payload: text, binary: false, dedup: { id, ttlMs: 60_000, size: 100, ...dedup } };
  }

  it('a publish id is remembered in Redis: a repeat through another broker gets the first seq and is not published', async () => {
    const { hubs, brokers, prefix } = await fleet('dedup', 3);
    const scope = brokers[0].dedupScope();
    assert.equal(typeof scope, 'string');
    assert.ok(scope!.length >= 16);
    assert.deepEqual(
      brokers.map((b) => b.dedupScope()),
      [scope, scope, scope],
      'one memory for every process',
    );
    const recorder = await follow(hubs[2], 'room');
    const first = await hubs[0].publishMessageAsync(withId('room', 'hello', 'page.1'));
    assert.deepEqual(first, { seq: 1, epoch: first.epoch });
    const again = await hubs[1].publishMessageAsync(withId('room', 'hello', 'page.1'));
    assert.deepEqual(again, { seq: 1, epoch: first.epoch, duplicate: true });
    // Another id, and the same id on another topic, are publishes of their own.
    assert.equal((await hubs[1].publishMessageAsync(withId('room', 'next', 'page.2'))).seq, 2);
    assert.equal((await hubs[1].publishMessageAsync(withId('other', 'x', 'page.1'))).duplicate, undefined);
    await until(() => recorder.got.length === 2, 'the deliveries');
    await hubs[0].publishAsync('room', 'last'); // a marker: nothing else is on its way
    await until(() => recorder.got.length === 3, 'the marker');
    assert.deepEqual(recorder.texts(), ['hello', 'next', 'last']);
    assert.equal(brokers[1].stats().published, 2, 'a duplicate is not counted as published');
    // The ids live beside the topic's log, in its hash slot, and expire.
    const ids = `${prefix}{room}:ids`;
    assert.deepEqual(await admin.hgetall(ids), { 'page.1': '1', 'page.2': '2' });
    assert.deepEqual(await admin.zrange(`${prefix}{room}:idt`, '0', '-1'), ['page.1', 'page.2']);
    for (const key of [ids, `${prefix}{room}:idt`]) {
      const ttl = await admin.pttl(key);
      assert.ok(ttl > 0 && ttl <= 60_000, `${key} expires (${ttl} ms)`);
    }
  });

  it('the same id published by two processes at once is published once', async () => {
    const { hubs } = await fleet('dedup-race', 2);
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        hubs[i % 2].publishMessageAsync(withId('race', `m${i >> 1}`, `id${i >> 1}`)),
      ),
    );
    for (let k = 0; k < 20; k++) {
      const [a, b] = [results[2 * k], results[2 * k + 1]];
      assert.equal(a.seq, b.seq, `id${k}: one seq`);
      assert.equal([a.duplicate, b.duplicate].filter((d) => d === true).length, 1, `id${k}: one duplicate`);
    }
    assert.deepEqual(
      [...new Set(results.map((r) => r.seq))].sort((x, y) => x - y),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
  });

  it('ids are remembered up to the dedup size per topic, oldest first out, and for the dedup ttl', async () => {
    const { hubs, prefix } = await fleet('dedup-bounds', 1);
    const publish = (id: string, dedup: Partial<PublishDedup> = { size: 3 }) =>
      hubs[0].publishMessageAsync(withId('b', id, id, dedup));
    // Ids in reverse alphabetical order, most of them in the same millisecond: the oldest goes
    // first all the same.
    for (const id of ['z', 'y', 'x', 'w']) assert.equal((await publish(id)).duplicate, undefined);
    assert.equal((await publish('y')).duplicate, true);
    assert.equal(await admin.hlen(`${prefix}{b}:ids`), 3);
    assert.deepEqual(await admin.zrange(`${prefix}{b}:idt`, '0', '-1'), ['y', 'x', 'w'], 'in arrival order');
    const z = await publish('z'); // pushed out by `w`: published again, and `y` goes
    assert.deepEqual([z.seq, z.duplicate], [5, undefined]);
    assert.equal((await publish('y')).duplicate, undefined);
    // By time: an id older than ttlMs is forgotten when the next id is remembered.
    const ttlMs = 300;
    const t0 = Date.now();
    assert.equal((await publish('t', { ttlMs })).duplicate, undefined);
    let republished: number | undefined;
    for (let tries = 0; republished === undefined; tries++) {
      assert.ok(tries < 500, 'the id was never forgotten');
      const r = await publish('t', { ttlMs });
      if (r.duplicate !== true) republished = Date.now() - t0;
      else await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(republished >= ttlMs - 5, `forgotten after ${republished} ms, not before ${ttlMs}`);
  });

  it('the ids of a topic nobody publishes to any more leave Redis after the dedup ttl (the keys expire)', async () => {
    const { hubs, prefix } = await fleet('dedup-idle', 1);
    assert.equal((await hubs[0].publishMessageAsync(withId('quiet', 'x', 'q.1', { ttlMs: 300 }))).seq, 1);
    const keys = [`${prefix}{quiet}:ids`, `${prefix}{quiet}:idt`];
    assert.equal(await admin.exists(...keys), 2);
    // Redis expires them on its own (no publish needed); polled, with a generous bound.
    const deadline = Date.now() + 20_000;
    while ((await admin.exists(...keys)) > 0) {
      assert.ok(Date.now() < deadline, 'the ids never left Redis');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const again = await hubs[0].publishMessageAsync(withId('quiet', 'x', 'q.1', { ttlMs: 300 }));
    assert.deepEqual([again.seq, again.duplicate], [2, undefined], 'forgotten: published again');
  });

  it('the dedup scope is kept in Redis: a Redis that lost it (flushed) gives a new one, to every process', async () => {
    const { hubs, brokers, prefix } = await fleet('dedup-flush', 2);
    const before = brokers[0].dedupScope()!;
    assert.equal(await admin.get(`${prefix}dedup-scope`), before);
    const first = await hubs[0].publishMessageAsync(withId('f', 'x', 'id1'));
    assert.ok((await deleteKeys(admin, prefix)) >= 1); // as FLUSHALL would, for this prefix only
    await until(() => brokers.every((b) => b.dedupScope() !== before), 'the brokers to see the new scope', 10_000);
    const after = brokers[0].dedupScope();
    assert.equal(brokers[1].dedupScope(), after, 'one new scope for every process');
    assert.equal(await admin.get(`${prefix}dedup-scope`), after);
    // The ids went with it: the same id is published again (a client told of the new scope
    // does not resend it).
    const again = await hubs[1].publishMessageAsync(withId('f', 'x', 'id1'));
    assert.equal(again.duplicate, undefined);
    assert.notEqual(again.epoch, first.epoch);
  });

  it('one Redis subscription per topic per process, whatever its number of local subscribers; none once they leave', async () => {
    const { hubs, prefix } = await fleet('numsub', 2);
    const channel = (topic: string): string => `${prefix}{${topic}}:msg`;
    const numsub = async (): Promise<number[]> => {
      const reply = (await admin.call('PUBSUB', 'NUMSUB', channel('t'), channel('u'))) as Array<string | number>;
      return [Number(reply[1]), Number(reply[3])];
    };
    const onT = await Promise.all(Array.from({ length: 20 }, () => follow(hubs[0], 't')));
    const onT2 = await Promise.all(Array.from({ length: 5 }, () => follow(hubs[1], 't')));
    const onU = await Promise.all(Array.from({ length: 10 }, () => follow(hubs[0], 'u')));
    assert.deepEqual(await numsub(), [2, 1], 'topic t: one subscription per process; u: one');
    await hubs[0].publishAsync('t', 'x');
    await until(() => [...onT, ...onT2].every((r) => r.texts().length === 1), 'everyone on t');
    for (const r of onU) hubs[0].unsubscribe(r, 'u');
    for (const r of onT2) hubs[1].unsubscribe(r, 't');
    for (let tries = 0; (await numsub()).join() !== '1,0'; tries++) {
      assert.ok(tries < 500, `the subscriptions released: ${(await numsub()).join()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // Still one for t where subscribers are left: a publish from the other process reaches them.
    await hubs[1].publishAsync('t', 'y');
    await until(() => onT.every((r) => r.texts().length === 2), 'everyone left on t');
  });

  it('a Redis outage of seconds: WebSocket connections stay open, one error, publishes refused, reconnection backs off, and what was published elsewhere meanwhile arrives after', async () => {
    const prefix = testPrefix('outage');
    prefixes.push(prefix);
    const history = { size: 100, ttl: 60_000 };
    const proxy = await FaultProxy.start(Number(new URL(REDIS_URL).port || 6379));
    const broker = await RedisBroker.connect({ url: `redis://127.0.0.1:${proxy.port}`, prefix, history });
    const other = await RedisBroker.connect({ url: REDIS_URL, prefix, history });
    opened.push(broker, other);
    const elsewhere = new Hub({ broker: other });
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, broker });
    const errors: Error[] = [];
    wss.on('error', (err: Error) => errors.push(err));
    wss.on('connection', (ws, req) => ws.subscribe(req.url === '/late' ? 'late' : 'o'));
    try {
      await once(wss, 'listening');
      const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`;
      const clients = await Promise.all(
        Array.from({ length: 3 }, async () => {
          const ws = new WebSocket(url);
          const c = { ws, got: [] as string[], closed: false };
          ws.on('message', (data: Buffer) => c.got.push(data.toString()));
          ws.on('close', () => (c.closed = true));
          await once(ws, 'open');
          return c;
        }),
      );
      await until(() => wss.subscriberCount('o') === 3, 'three subscribers');
      await broker.watch('o');
      await elsewhere.publishAsync('o', 'before');
      await until(() => clients.every((c) => c.got.length === 1), 'the first message');

      proxy.refuse(true);
      const downAt = Date.now();
      await until(() => errors.length === 1, 'the outage reported');
      await assert.rejects(wss.publishAsync('o', 'refused'), (err: unknown) => {
        assert.ok(err instanceof DuetError);
        // Unavailable, or (if the commands connection's reset is still on its way) unknown.
        assert.match(err.code, /^WS_ERR_BROKER_(UNAVAILABLE|OUTCOME_UNKNOWN)$/);
        return true;
      });
      for (let i = 1; i <= 5; i++) await elsewhere.publishAsync('o', `during-${i}`);
      // A client that comes during the outage, to a topic this process does not follow yet:
      // the topic's subscription is retried every second, without an error each time.
      const late = new WebSocket(`${url}late`);
      const lateGot: string[] = [];
      late.on('message', (data: Buffer) => lateGot.push(data.toString()));
      await once(late, 'open');
      await until(() => Date.now() - downAt >= 4000, 'four seconds of outage');
      const attempts = proxy.acceptedAt.filter((t) => t > downAt);
      proxy.refuse(false);

      // Two connections (commands, subscriber), each retried after 200, 400, 800, 1600 ms...:
      // a handful of attempts, further and further apart, not a loop.
      assert.ok(attempts.length >= 2 && attempts.length <= 20, `${attempts.length} reconnection attempts in 4 s`);
      const gaps = attempts.slice(1).map((t, i) => t - attempts[i]);
      assert.ok(Math.max(...gaps) >= 700, `attempts spaced out (${gaps.join(', ')} ms)`);

      await until(() => clients.every((c) => c.got.length === 6), 'the messages of the outage', 20_000);
      let sent = false;
      for (let tries = 0; !sent; tries++) {
        assert.ok(tries < 200, 'publishing never worked again');
        sent = await wss.publishAsync('o', 'after').then(
          () => true,
          () => false,
        );
        if (!sent) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await until(() => clients.every((c) => c.got.length === 7), 'the message after');
      await broker.watch('late');
      await elsewhere.publishAsync('late', 'for the late one');
      await until(() => lateGot.length === 1, 'the late client served once Redis is back');
      late.close();
      const expected = ['before', 'during-1', 'during-2', 'during-3', 'during-4', 'during-5', 'after'];
      for (const c of clients) {
        assert.deepEqual(c.got, expected);
        assert.equal(c.closed, false, 'the WebSocket connection stayed open');
        assert.equal(c.ws.readyState, WebSocket.OPEN);
      }
      assert.equal(errors.length, 1, `one error for the outage: ${errors.map((e) => e.message).join('; ')}`);
      assert.match(errors[0].message, /lost; reconnecting/);
      assert.ok(broker.stats().gapsFilled >= 1, 'the missed messages were read from history');
      for (const c of clients) c.ws.close();
    } finally {
      await new Promise((resolve) => wss.close(resolve));
      await proxy.close();
    }
  });

  it('Redis away: publishAsync rejects with WS_ERR_BROKER_UNAVAILABLE (not published); after it returns, publishes go through', async () => {
    const { brokers, hubs, errors } = await fleet('down', 1);
    await killConnections(admin, `duet:${brokers[0].id}:commands`);
    await until(() => errors.length > 0, 'the lost connection reported');
    await assert.rejects(hubs[0].publishAsync('d', 'x'), (err: unknown) => {
      assert.ok(err instanceof DuetError);
      assert.equal(err.code, 'WS_ERR_BROKER_UNAVAILABLE');
      return true;
    });
    let ok = false;
    const deadline = Date.now() + 20_000;
    while (!ok && Date.now() < deadline) {
      ok = await hubs[0].publishAsync('d', 'y').then(
        () => true,
        () => false,
      );
      if (!ok) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(ok, 'publishing works again once Redis is back');
    assert.ok(brokers[0].stats().failed >= 1);
  });

  it('a publish Redis answers with an error (the script did not run) is not published: WS_ERR_BROKER_UNAVAILABLE', async () => {
    const { hubs, prefix } = await fleet('reply-error', 1);
    // Something else holds the topic's log key with another type: the script's first command fails.
    await admin.set(`${prefix}{taken}:log`, 'not a hash');
    await assert.rejects(hubs[0].publishAsync('taken', 'x'), (err: unknown) => {
      assert.ok(err instanceof DuetError);
      assert.equal(err.code, 'WS_ERR_BROKER_UNAVAILABLE');
      assert.match(err.message, /not published.*WRONGTYPE/);
      return true;
    });
    assert.equal(await admin.get(`${prefix}{taken}:log`), 'not a hash', 'nothing was written');
  });

  it('no Redis at start-up: connect() rejects with a clear WS_ERR_BROKER_UNAVAILABLE', async () => {
    await assert.rejects(RedisBroker.connect({ url: 'redis://127.0.0.1:1', connectTimeout: 3000 }), (err: unknown) => {
      assert.ok(err instanceof DuetError);
      assert.equal(err.code, 'WS_ERR_BROKER_UNAVAILABLE');
      assert.match(err.message, /cannot reach Redis at 127\.0\.0\.1:1/);
      return true;
    });
  });

  it('more publishes waiting than maxPendingPublishes: the rest are refused with WS_ERR_BROKER_BACKLOG', async () => {
    const { hubs, brokers } = await fleet('backlog', 1, { maxPendingPublishes: 5 });
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => hubs[0].publishAsync('b', `${i}`)));
    const refused = results.filter(
      (r) => r.status === 'rejected' && r.reason instanceof DuetError && r.reason.code === 'WS_ERR_BROKER_BACKLOG',
    );
    const accepted = results.filter((r) => r.status === 'fulfilled');
    assert.equal(accepted.length, 5, 'five in flight at once');
    assert.equal(refused.length, 45);
    assert.equal(brokers[0].stats().pending, 0);
    // A plain publish() that fails reports to onError rather than throwing.
  });

  it('a malformed message on a topic channel is counted and skipped; delivery goes on', async () => {
    const { brokers, hubs, errors, prefix } = await fleet('malformed', 1);
    const recorder = await follow(hubs[0], 'm');
    const channel = `${prefix}{m}:msg`;
    for (const junk of ['', 'hello', 'duet1 x y tt -\nz', 'duet1 1 e zz -\nz', 'duet1 1\nshort'])
      await admin.publish(channel, junk);
    await hubs[0].publishAsync('m', 'real');
    await until(() => recorder.got.length === 1, 'the real message');
    assert.deepEqual(recorder.texts(), ['real']);
    assert.equal(brokers[0].stats().malformed, 5);
    assert.equal(errors.filter((e) => e instanceof DuetError && e.code === 'WS_ERR_BROKER_MESSAGE').length, 5);
  });

  it("topic names are percent-encoded into keys: no name reaches another topic's keys", async () => {
    const { hubs, prefix } = await fleet('names', 1, { history: { size: 3 } });
    const names = ['a', 'a}:log', '{a}', 'a:hist', 'a b*?', 'ü', '*'];
    for (const name of names) await hubs[0].publishAsync(name, name);
    const keys = (await admin.keys(`${prefix}*`)).filter((key) => key !== `${prefix}dedup-scope`).sort();
    assert.equal(keys.length, names.length * 2, keys.join(' '));
    for (const key of keys) assert.match(key.slice(prefix.length), /^\{[A-Za-z0-9%\-_.!~*'()]+\}:(log|hist)$/);
    for (const name of names) {
      const r = await hubs[0].recoverAsync(name, 0, (await hubs[0].positionAsync(name)).epoch);
      assert.deepEqual(
        r.messages.map((m) => m.payload.toString()),
        [name],
      );
    }
  });

  it('history size and ttl are kept in Redis as in memory', async () => {
    const { hubs } = await fleet('history', 1, { history: { size: 3 } });
    for (let i = 1; i <= 5; i++) await hubs[0].publishAsync('h', `m${i}`);
    const { epoch } = await hubs[0].positionAsync('h');
    const ok = await hubs[0].recoverAsync('h', 2, epoch);
    assert.deepEqual(
      [ok.recovered, ok.seq, ok.messages.map((m) => m.payload.toString())],
      [true, 5, ['m3', 'm4', 'm5']],
    );
    assert.equal((await hubs[0].recoverAsync('h', 1, epoch)).recovered, false, 'older than the history');
    assert.equal((await hubs[0].recoverAsync('h', 6, epoch)).recovered, false, 'ahead of the topic');
    assert.equal((await hubs[0].recoverAsync('h', 5, 'other')).recovered, false, 'another epoch');
    const nothing = await hubs[0].recoverAsync('h', 5, epoch);
    assert.deepEqual([nothing.recovered, nothing.messages.length], [true, 0]);
    const { hubs: ttlHubs } = await fleet('ttl', 1, { history: { size: 10, ttl: 200 } });
    await ttlHubs[0].publishAsync('h', 'soon old');
    const at = await ttlHubs[0].positionAsync('h');
    assert.equal((await ttlHubs[0].recoverAsync('h', 0, at.epoch)).recovered, true);
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal((await ttlHubs[0].recoverAsync('h', 0, at.epoch)).recovered, false, 'older than the ttl');
  });

  it('synchronous calls on a Redis hub throw WS_ERR_BROKER_ASYNC', async () => {
    const { hubs } = await fleet('sync', 1);
    for (const call of [() => hubs[0].position('x'), () => hubs[0].recover('x', 0, 'e')]) {
      assert.throws(
        call,
        (err: unknown) => err instanceof TypeError && (err as DuetError).code === 'WS_ERR_BROKER_ASYNC',
      );
    }
    await assert.rejects(
      hubs[0].publishAsync('x', () => 'fn'),
      { code: 'WS_ERR_BROKER_ASYNC' },
    );
  });

  it('a lease is held by one broker at a time and passes on when it is not renewed', async () => {
    const { brokers } = await fleet('lease', 2);
    assert.equal(await brokers[0].lease('job', 300), true);
    assert.equal(await brokers[1].lease('job', 300), false, 'held by the other');
    assert.equal(await brokers[0].lease('job', 300), true, 'renewed by its holder');
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(await brokers[1].lease('job', 300), true, 'taken once it expired');
    assert.equal(await brokers[0].lease('job', 300), false);
  });
});

describe('RedisBroker against a Redis that stops answering', () => {
  it('a command waiting longer than commandTimeout fails (the stuck connection is dropped); a publish, with its outcome unknown', async () => {
    // A fake Redis: it answers what ioredis sends when it connects (HELLO 3, CLIENT SETNAME,
    // two CLIENT SETINFO, in one write) and the broker's first read of its dedup scope (so the
    // broker starts with a ready connection), and then never again.
    const sockets = new Set<import('node:net').Socket>();
    const { createServer } = await import('node:net');
    const fake = createServer((socket) => {
      sockets.add(socket);
      let answered = false;
      let scoped = false;
      socket.on('data', (chunk: Buffer) => {
        let reply = '';
        if (!answered) reply += '%2\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n+OK\r\n+OK\r\n+OK\r\n';
        answered = true;
        if (!scoped && chunk.includes('dedup-scope')) reply += '$10\r\nfake-scope\r\n';
        scoped ||= chunk.includes('dedup-scope');
        if (reply !== '') socket.write(reply);
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    const port = (fake.address() as import('node:net').AddressInfo).port;
    const broker = await RedisBroker.connect({
      url: `redis://127.0.0.1:${port}`,
      commandTimeout: 200,
      redis: { enableReadyCheck: false },
    });
    const errors: Error[] = [];
    const hub = new Hub({ broker, onError: (err) => errors.push(err) });
    try {
      assert.equal(broker.dedupScope(), 'fake-scope', 'connected, and answered once');
      const code = (err: unknown): string | undefined => (err instanceof DuetError ? err.code : undefined);
      const [published, position] = await Promise.allSettled([
        hub.publishAsync('t', 'never answered'),
        hub.positionAsync('t'),
      ]);
      // The publish script was sent: Redis may have run it before it stopped answering.
      assert.equal(published.status, 'rejected');
      assert.equal(code(published.reason), 'WS_ERR_BROKER_OUTCOME_UNKNOWN', String(published.reason));
      assert.match(String(published.reason), /no answer from Redis .*it may have been published/);
      // A read that failed did nothing: the broker could not be reached.
      assert.equal(position.status, 'rejected');
      assert.equal(code(position.reason), 'WS_ERR_BROKER_UNAVAILABLE');
      assert.deepEqual([broker.stats().pending, broker.stats().failed], [0, 1]);
    } finally {
      await broker.close();
      for (const s of sockets) s.destroy();
      fake.close();
    }
  });
});
