/**
 * DuetClient with a hand-driven WebSocket, clock and window: backoff, network and visibility
 * signals, heartbeat, the offline queue, resubscribe and recovery. Plus one run against a real
 * duet server's channel with duet's own WebSocket.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DuetClient,
  backoffCap,
  backoffDelay,
  retryHint,
  type DuetError,
  type DuetClientOptions,
  type DuetStatus,
} from '../../src/browser/client.js';
import { Channel, WebSocket } from '../../src/index.js';
import { startServer } from '../helpers.js';
import { FakeClock, FakeEnvironment, FakeWebSocket } from './fakes.js';

const URL_ = 'ws://127.0.0.1:1/channel';

/** A server's `limits` (docs/protocol.md): 20 messages/s, ids remembered 2 min in scope S1. */
const LIMITS = {
  type: 'limits',
  rate: { messages: 20, perMs: 1000 },
  maxMessageBytes: 16384,
  maxBatch: 50,
  dedupMs: 120_000,
  dedupScope: 'S1',
};

/** The id of the publish the client wrote as message `index` of `socket`. */
function idOf(socket: FakeWebSocket, index: number): string {
  return (JSON.parse(socket.sent[index] as string) as { id: string }).id;
}

function setup(options: DuetClientOptions = {}) {
  FakeWebSocket.reset();
  const clock = new FakeClock();
  const env = new FakeEnvironment();
  const client = new DuetClient(URL_, {
    WebSocket: FakeWebSocket,
    clock,
    environment: env,
    random: () => 0.5,
    ...options,
  });
  const statuses: DuetStatus[] = [];
  client.on('status', (s) => statuses.push(s));
  const errors: Error[] = [];
  client.on('error', (e) => errors.push(e));
  return { client, clock, env, statuses, errors };
}

/** The seq numbers a subscribe handler receives. */
function collect(client: DuetClient, topic: string): number[] {
  const seen: number[] = [];
  client.subscribe(topic, (_data, meta) => seen.push(meta.seq));
  return seen;
}

describe('backoff', () => {
  it('caps grow by factor up to maxDelay; full jitter stays in [0, cap)', () => {
    const opts = { minDelay: 500, maxDelay: 30_000, factor: 2 };
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7, 50, 5000].map((a) => backoffCap(a, opts)),
      [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000],
    );
    assert.equal(
      backoffDelay(3, opts, () => 0),
      0,
    );
    assert.equal(
      backoffDelay(3, opts, () => 0.999999),
      3999,
    );
    let seed = 7;
    const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    for (let attempt = 0; attempt < 12; attempt++) {
      for (let i = 0; i < 50; i++) {
        const d = backoffDelay(attempt, opts, random);
        assert.ok(d >= 0 && d < backoffCap(attempt, opts), `attempt ${attempt}: ${d}`);
      }
    }
    assert.equal(backoffCap(3, { minDelay: 0, maxDelay: 100, factor: 2 }), 0);
  });

  it('the client waits random * cap between attempts, counts retries, and resets them after stableAfter', () => {
    const { client, clock, statuses } = setup({
      minDelay: 100,
      maxDelay: 1000,
      factor: 2,
      heartbeatInterval: 0,
      connectTimeout: 0,
    });
    assert.equal(client.status, 'connecting');
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      FakeWebSocket.last.serverClose(1006);
      assert.equal(client.status, 'reconnecting');
      assert.equal(client.retries, i + 1);
      assert.equal(clock.pending, 1);
      const [delay] = clock.pendingDelays();
      waits.push(delay);
      const before = FakeWebSocket.instances.length;
      clock.advance(delay - 1);
      assert.equal(FakeWebSocket.instances.length, before, 'not before the delay');
      clock.advance(1);
      assert.equal(FakeWebSocket.instances.length, before + 1);
    }
    assert.deepEqual(waits, [50, 100, 200, 400, 500, 500]);
    FakeWebSocket.last.open();
    assert.equal(client.status, 'open');
    assert.equal(client.retries, 6, 'not reset before stableAfter');
    clock.advance(5000);
    assert.equal(client.retries, 0);
    FakeWebSocket.last.serverClose(1006);
    assert.deepEqual(clock.pendingDelays(), [50], 'backoff starts over');
    assert.deepEqual(statuses, ['reconnecting', 'open', 'reconnecting'], 'attempts stay in reconnecting');
    client.close();
  });

  it('gives up after maxRetries with status closed', () => {
    const { client, clock } = setup({ maxRetries: 2, connectTimeout: 0 });
    FakeWebSocket.last.serverClose(1006);
    clock.advance(10_000);
    FakeWebSocket.last.serverClose(1006);
    clock.advance(10_000);
    FakeWebSocket.last.serverClose(1006);
    assert.equal(client.status, 'closed');
    assert.equal(FakeWebSocket.instances.length, 3);
    assert.equal(clock.pending, 0);
    client.open();
    assert.equal(client.status, 'connecting');
    assert.equal(client.retries, 0);
    client.close();
  });
});

describe('close codes, close() and reconnect()', () => {
  it('no retry after the default no-retry codes; a custom shouldReconnect decides', () => {
    for (const code of [1002, 1003, 1007, 1008, 1009, 1010]) {
      const { client, clock } = setup();
      FakeWebSocket.last.open();
      FakeWebSocket.last.serverClose(code, 'no', true);
      assert.equal(client.status, 'closed', `code ${code}`);
      assert.deepEqual(client.lastClose, { code, reason: 'no', wasClean: true });
      assert.equal(clock.pending, 0);
    }
    for (const code of [1000, 1001, 1006, 1011, 1013, 4000]) {
      const { client } = setup();
      FakeWebSocket.last.serverClose(code);
      assert.equal(client.status, 'reconnecting', `code ${code}`);
      client.close();
    }
    const seen: number[] = [];
    const { client } = setup({ shouldReconnect: (c) => (seen.push(c.code), c.code !== 4401) });
    FakeWebSocket.last.serverClose(1008);
    assert.equal(client.status, 'reconnecting');
    client.reconnect();
    FakeWebSocket.last.serverClose(4401);
    assert.equal(client.status, 'closed');
    assert.deepEqual(seen, [1008, 4401]);
    const throwing = setup({
      shouldReconnect: () => {
        throw new Error('decider bug');
      },
    });
    FakeWebSocket.last.serverClose(1006);
    assert.equal(throwing.client.status, 'closed', 'a throwing shouldReconnect means no');
    assert.equal(throwing.errors.at(-1)?.message, 'decider bug');
  });

  it('close() closes the socket with the code, clears every timer and listener, and never reconnects', () => {
    const { client, clock, env, statuses } = setup();
    const closes: number[] = [];
    client.on('close', (c) => closes.push(c.code));
    const socket = FakeWebSocket.last;
    socket.open();
    client.subscribe('chat', () => {});
    assert.ok(clock.pending > 0);
    assert.ok(env.listening > 0);
    client.close(4001, 'bye');
    assert.deepEqual(socket.closeCalls, [[4001, 'bye']]);
    assert.equal(client.status, 'closed');
    assert.equal(clock.pending, 0);
    assert.equal(env.listening, 0);
    socket.serverClose(4001, 'bye', true);
    assert.deepEqual(closes, [4001], 'the real close is reported');
    clock.advance(120_000);
    env.goOnline();
    assert.equal(FakeWebSocket.instances.length, 1);
    assert.equal(clock.pending, 0);
    assert.deepEqual(statuses, ['open', 'closed']);
    assert.throws(() => client.close(1006), RangeError);
  });

  it('reconnect() drops the socket with 4000 and reconnects after the backoff', () => {
    const { client, clock } = setup();
    const first = FakeWebSocket.last;
    first.open();
    client.reconnect();
    assert.deepEqual(first.closeCalls, [[4000, 'reconnect']]);
    assert.deepEqual(client.lastClose, { code: 4000, reason: 'reconnect', wasClean: false });
    assert.equal(client.status, 'reconnecting');
    first.serverClose(4000); // its late close event is ignored
    assert.equal(client.retries, 1);
    clock.advance(250);
    assert.notEqual(FakeWebSocket.last, first);
    FakeWebSocket.last.open();
    assert.equal(client.status, 'open');
    client.close();
    assert.equal(clock.pending, 0);
  });

  it('reconnect() while waiting out the backoff connects at once; after close() it does nothing', () => {
    const { client } = setup({ minDelay: 60_000, random: () => 0.99 });
    FakeWebSocket.last.serverClose(1006);
    client.reconnect();
    assert.equal(FakeWebSocket.instances.length, 2);
    client.close();
    client.reconnect();
    assert.equal(FakeWebSocket.instances.length, 2);
    assert.equal(client.status, 'closed');
  });

  it('what a listener does while a connection is being lost stands: close() from retries, close()+open() from close', () => {
    const giving = setup();
    giving.client.on('retries', (n) => {
      if (n >= 2) giving.client.close();
    });
    FakeWebSocket.last.serverClose(1006);
    giving.clock.advance(1000);
    FakeWebSocket.last.serverClose(1006);
    assert.equal(giving.client.status, 'closed', 'not reconnecting after close()');
    assert.deepEqual(giving.statuses, ['reconnecting', 'closed']);
    assert.equal(giving.clock.pending, 0);
    assert.equal(giving.env.listening, 0);

    const restarting = setup();
    let first = true;
    restarting.client.on('close', () => {
      if (!first) return;
      first = false;
      restarting.client.close();
      restarting.client.open();
    });
    FakeWebSocket.last.open();
    FakeWebSocket.last.serverClose(1008); // a no-retry code: the old path gave up on the new socket
    assert.equal(FakeWebSocket.instances.length, 2);
    assert.equal(restarting.client.status, 'connecting');
    assert.equal(restarting.client.retries, 0);
    assert.equal(restarting.client.socket, FakeWebSocket.last);
    FakeWebSocket.last.open();
    assert.equal(restarting.client.status, 'open');
    FakeWebSocket.last.serverClose(1006);
    assert.equal(restarting.client.status, 'reconnecting', 'still active: it reconnects');
    restarting.client.close();
    assert.equal(restarting.clock.pending, 0);
  });

  it('a handshake that takes longer than connectTimeout is abandoned and retried', () => {
    const { client, clock } = setup({ connectTimeout: 3000 });
    const first = FakeWebSocket.last;
    clock.advance(3000);
    assert.deepEqual(client.lastClose, { code: 1006, reason: 'connect timeout', wasClean: false });
    assert.equal(first.closeCalls.length, 1);
    clock.advance(250);
    assert.equal(FakeWebSocket.instances.length, 2);
    client.close();
  });
});

describe('network and visibility', () => {
  it('waits while navigator.onLine is false and reconnects at once on online', () => {
    const { client, clock, env } = setup({ minDelay: 10_000 });
    FakeWebSocket.last.open();
    env.goOffline();
    assert.deepEqual(
      FakeWebSocket.last.sentJson,
      [{ type: 'ping', id: 1 }],
      'going offline probes the open connection',
    );
    FakeWebSocket.last.serverClose(1006);
    assert.equal(client.status, 'reconnecting');
    assert.equal(clock.pending, 0, 'no timer while offline');
    clock.advance(60_000);
    assert.equal(FakeWebSocket.instances.length, 1);
    env.goOnline();
    assert.equal(FakeWebSocket.instances.length, 2, 'connects on online, not after the backoff');
    client.close();
  });

  it('does not start connecting when opened offline', () => {
    const { clock, env } = setup({ autoOpen: false });
    env.navigator.onLine = false;
    const client = new DuetClient(URL_, { WebSocket: FakeWebSocket, clock, environment: env });
    assert.equal(client.status, 'connecting');
    assert.equal(FakeWebSocket.instances.length, 0);
    env.goOnline();
    assert.equal(FakeWebSocket.instances.length, 1);
    client.close();
  });

  it('retries at once when the tab becomes visible, and probes an open connection', () => {
    const { client, clock, env } = setup({ minDelay: 60_000, random: () => 0.99 });
    FakeWebSocket.last.serverClose(1006);
    env.setVisibility('hidden');
    assert.equal(FakeWebSocket.instances.length, 1);
    env.setVisibility('visible');
    assert.equal(FakeWebSocket.instances.length, 2);
    FakeWebSocket.last.open();
    env.setVisibility('hidden');
    env.setVisibility('visible');
    assert.deepEqual(FakeWebSocket.last.sentJson, [{ type: 'ping', id: 1 }], 'a ping checks the woken connection');
    assert.equal(clock.pendingDelays()[0], 5000);
    client.close();
  });
});

describe('heartbeat', () => {
  it('pings every heartbeatInterval, reports latency, and replaces a socket that does not answer', () => {
    const { client, clock } = setup({ heartbeatInterval: 1000, heartbeatTimeout: 500 });
    const latencies: number[] = [];
    client.on('latency', (ms) => latencies.push(ms));
    const socket = FakeWebSocket.last;
    socket.open();
    clock.advance(999);
    assert.equal(socket.sent.length, 0);
    clock.advance(1);
    assert.deepEqual(socket.sentJson, [{ type: 'ping', id: 1 }]);
    clock.advance(40);
    socket.message({ type: 'pong', id: 1 });
    assert.deepEqual(latencies, [40]);
    assert.equal(client.latency, 40);
    clock.advance(1000);
    assert.deepEqual(socket.sentJson.at(-1), { type: 'ping', id: 2 });
    clock.advance(300);
    // Traffic from the server proves nothing about what this client sends: only the pong counts.
    socket.message({ type: 'message', topic: 'other', seq: 1, data: null });
    socket.message({ type: 'pong', id: 1 });
    clock.advance(199);
    assert.equal(client.status, 'open');
    clock.advance(1);
    assert.equal(client.status, 'reconnecting');
    assert.deepEqual(client.lastClose, { code: 1006, reason: 'heartbeat timeout', wasClean: false });
    assert.deepEqual(socket.closeCalls, [[4000, 'heartbeat timeout']]);
    clock.advance(250);
    assert.equal(FakeWebSocket.instances.length, 2);
    client.close();
  });

  it('is off with heartbeatInterval 0 and in plain mode', () => {
    for (const options of [{ heartbeatInterval: 0 }, { channel: false }]) {
      const { client, clock } = setup({ ...options, stableAfter: 0 });
      FakeWebSocket.last.open();
      clock.advance(100_000);
      assert.equal(FakeWebSocket.last.sent.length, 0);
      assert.equal(clock.pending, 0);
      client.close();
    }
  });
});

describe('offline queue', () => {
  it('queues while not open and flushes in order after the resubscribes', () => {
    const { client, clock } = setup();
    client.send('a');
    void client.publish('chat', { n: 1 });
    client.subscribe('chat', () => {});
    client.send('b');
    assert.equal(client.queued, 3);
    const socket = FakeWebSocket.last;
    const order: string[] = [];
    client.on('open', () => {
      order.push(...socket.sent.map(String));
      client.send('from open');
    });
    socket.open();
    assert.deepEqual(order, ['{"type":"subscribe","topic":"chat"}', 'a'], 'the publish waits for the limits');
    assert.equal(client.queued, 3);
    socket.message(LIMITS);
    assert.deepEqual(socket.sent.slice(2), [
      `{"type":"publish","topic":"chat","data":{"n":1},"id":"${idOf(socket, 2)}"}`,
      'b',
      'from open',
    ]);
    assert.equal(client.queued, 0);
    client.send('direct');
    assert.equal(socket.sent.at(-1), 'direct');
    socket.readyState = 2; // the server started closing; the close event has not come yet
    client.send('late');
    assert.equal(client.queued, 1);
    socket.serverClose(1001);
    clock.advance(250);
    const again = FakeWebSocket.last;
    again.open();
    assert.deepEqual(
      again.sent,
      ['{"type":"subscribe","topic":"chat"}'],
      'the unacknowledged publish is first in line',
    );
    again.message(LIMITS);
    assert.deepEqual(again.sent.slice(1), [socket.sent[2], 'late', 'from open'], 'sent again with the same id');
    client.close();
  });

  it('drop-oldest, drop-newest and error at queueLimit', () => {
    const cases = [
      { queuePolicy: 'drop-oldest', expect: ['3', '4', '5'] },
      { queuePolicy: 'drop-newest', expect: ['1', '2', '3'] },
    ] as const;
    for (const c of cases) {
      const { client } = setup({ queueLimit: 3, queuePolicy: c.queuePolicy, channel: false });
      for (const m of ['1', '2', '3', '4', '5']) client.send(m);
      assert.equal(client.dropped, 2);
      FakeWebSocket.last.open();
      assert.deepEqual(FakeWebSocket.last.sent, c.expect, c.queuePolicy);
      client.close();
    }
    const { client } = setup({ queueLimit: 2, queuePolicy: 'error', channel: false });
    client.send('1');
    client.send('2');
    assert.throws(() => client.send('3'), { name: 'DuetError', code: 'WS_ERR_QUEUE_FULL' });
    FakeWebSocket.last.open();
    assert.deepEqual(FakeWebSocket.last.sent, ['1', '2']);
    client.close();
    const none = setup({ queueLimit: 0, channel: false });
    none.client.send('x');
    FakeWebSocket.last.open();
    assert.deepEqual(FakeWebSocket.last.sent, []);
    none.client.close();
  });
});

describe('paced flush of the queue', () => {
  it('sends a burst (resubscribes included), then one message per flushInterval, in order; sends made meanwhile go behind', () => {
    const { client, clock } = setup();
    client.subscribe('a', () => {});
    client.subscribe('b', () => {});
    for (let i = 0; i < 20; i++) client.send(`m${i}`);
    const socket = FakeWebSocket.last;
    let sentAtOpen = -1;
    client.on('open', () => {
      sentAtOpen = socket.sent.length;
      client.send('from open');
    });
    socket.open();
    assert.equal(sentAtOpen, 10, 'the default burst of 10: two subscribes and eight messages');
    assert.deepEqual(socket.sent.slice(2), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
    assert.equal(client.queued, 13, '12 left plus the one sent from the open listener');
    client.send('during');
    assert.equal(socket.sent.length, 10, 'a send during the flush waits its turn');
    clock.advance(99);
    assert.equal(socket.sent.length, 10);
    clock.advance(1);
    assert.deepEqual(socket.sent.slice(10), ['m8']);
    clock.advance(100 * 13);
    assert.deepEqual(socket.sent.slice(2), [...Array.from({ length: 20 }, (_, i) => `m${i}`), 'from open', 'during']);
    assert.equal(client.queued, 0);
    clock.advance(100); // a token back
    const pending = clock.pending;
    client.send('direct');
    assert.equal(socket.sent.at(-1), 'direct', 'once the queue is empty and a token is there, sends go straight out');
    assert.equal(clock.pending, pending, 'and start no timer');
    client.close();
    assert.equal(clock.pending, 0);
  });

  it('with the defaults, a full queue (1000) never overdraws the server default token bucket (20, one per 50 ms)', () => {
    const { client, clock } = setup();
    for (const topic of ['a', 'b', 'c', 'd', 'e']) client.subscribe(topic, () => {});
    for (let i = 0; i < 1000; i++) client.send(`m${i}`);
    const socket = FakeWebSocket.last;
    socket.open();
    let tokens = 20 - socket.sent.length;
    let counted = socket.sent.length;
    let lowest = tokens;
    for (let step = 0; step < 12_000 && client.queued > 0; step++) {
      clock.advance(10);
      // Pong every ping so the heartbeat's pings (which count too) do not drop the socket.
      for (const data of socket.sent.slice(counted).map(String)) {
        if (data.startsWith('{"type":"ping"'))
          socket.message({ type: 'pong', id: (JSON.parse(data) as { id: number }).id });
      }
      tokens = Math.min(20, tokens + 10 / 50) - (socket.sent.length - counted);
      counted = socket.sent.length;
      lowest = Math.min(lowest, tokens);
    }
    assert.equal(client.queued, 0);
    assert.equal(socket.sent.filter((d) => typeof d === 'string' && d.startsWith('m')).length, 1000);
    assert.deepEqual(
      socket.sent.filter((d) => typeof d === 'string' && d.startsWith('m')),
      Array.from({ length: 1000 }, (_, i) => `m${i}`),
    );
    assert.ok(lowest >= 1, `the bucket went down to ${lowest}`);
    client.close();
  });

  it('close() mid-flush leaves no timer and keeps the rest queued, in order, for the next open()', () => {
    const { client, clock } = setup({ channel: false, flushBurst: 2, flushInterval: 50, stableAfter: 0 });
    for (const m of ['1', '2', '3', '4', '5']) client.send(m);
    const first = FakeWebSocket.last;
    first.open();
    clock.advance(50);
    assert.deepEqual(first.sent, ['1', '2', '3']);
    client.close();
    assert.equal(clock.pending, 0);
    assert.equal(client.queued, 2);
    clock.advance(1000);
    assert.deepEqual(first.sent, ['1', '2', '3']);
    client.send('6');
    client.open();
    FakeWebSocket.last.open();
    assert.deepEqual(FakeWebSocket.last.sent, ['4', '5'], 'a new burst');
    clock.advance(50);
    assert.deepEqual(FakeWebSocket.last.sent, ['4', '5', '6']);
    assert.equal(clock.pending, 0);
    client.close();
  });

  it('a connection lost mid-flush stops the pacing; the next one resubscribes first and sends the rest', () => {
    const { client, clock } = setup({ flushBurst: 3, flushInterval: 50, heartbeatInterval: 0, stableAfter: 0 });
    client.subscribe('chat', () => {});
    for (const m of ['1', '2', '3', '4']) client.send(m);
    const first = FakeWebSocket.last;
    first.open();
    assert.deepEqual(first.sent.slice(1), ['1', '2']);
    first.serverClose(1006);
    assert.deepEqual(clock.pendingDelays(), [250], 'only the reconnect timer');
    clock.advance(250);
    FakeWebSocket.last.open();
    assert.deepEqual(FakeWebSocket.last.sent, ['{"type":"subscribe","topic":"chat"}', '3', '4']);
    assert.equal(first.sent.length, 3, 'nothing more went to the dead socket');
    client.close();
  });

  it('with more topics than the burst, the subscribes are paced too, ahead of the queue; control messages go first', () => {
    const { client, clock } = setup({ flushBurst: 4, flushInterval: 50, heartbeatInterval: 0 });
    const offs = ['t0', 't1', 't2', 't3', 't4', 't5', 't6'].map((topic) => client.subscribe(topic, () => {}));
    void client.publish('t0', 'queued');
    const socket = FakeWebSocket.last;
    socket.open();
    assert.deepEqual(
      socket.sentJson.map((m) => m.topic),
      ['t0', 't1', 't2', 't3'],
    );
    offs[5]?.(); // unsubscribed before its turn: no subscribe goes out for it
    socket.message({ ...LIMITS, rate: null }); // no limit at the server: everything may go now
    assert.deepEqual(
      socket.sentJson.slice(4).map((m) => [m.type, m.topic]),
      [
        ['unsubscribe', 't5'],
        ['subscribe', 't4'],
        ['subscribe', 't6'],
        ['publish', 't0'],
      ],
    );
    clock.advance(1000);
    assert.equal(socket.sent.length, 8);
    client.close();
  });

  it('before the limits arrive, the default pace holds for control messages too', () => {
    const { client, clock } = setup({ flushBurst: 2, flushInterval: 50, heartbeatInterval: 0 });
    const offs = ['t0', 't1', 't2'].map((topic) => client.subscribe(topic, () => {}));
    const socket = FakeWebSocket.last;
    socket.open();
    assert.equal(socket.sent.length, 2);
    offs[0]?.();
    assert.equal(socket.sent.length, 2, 'the unsubscribe waits for a token');
    clock.advance(50);
    assert.deepEqual(socket.sentJson.at(-1), { type: 'unsubscribe', topic: 't0' }, 'ahead of the waiting subscribe');
    clock.advance(50);
    assert.deepEqual(socket.sentJson.at(-1), { type: 'subscribe', topic: 't2' });
    client.close();
  });

  it('rate_limited: an unanswered subscribe is sent again once, paced, and the gap is filled exactly once', () => {
    const { client, clock } = setup({ flushInterval: 100, heartbeatInterval: 0 });
    const seen = collect(client, 'chat');
    const socket = FakeWebSocket.last;
    socket.open();
    socket.message({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 0, recovered: false });
    socket.message({ type: 'message', topic: 'chat', seq: 1, data: 1 });
    socket.message({ type: 'message', topic: 'chat', seq: 3, data: 3 }); // a gap: one subscribe
    const subscribes = () => socket.sentJson.filter((m) => m.type === 'subscribe');
    assert.equal(subscribes().length, 2);
    for (let seq = 4; seq < 10; seq++) {
      socket.message({ type: 'error', code: 'rate_limited', message: 'slow down', retryAfter: 100 });
      socket.message({ type: 'message', topic: 'chat', seq, data: seq });
    }
    assert.equal(subscribes().length, 2, 'errors and live messages send no subscribe of their own');
    clock.advance(199);
    assert.equal(subscribes().length, 2, 'nothing during the pause, nor before a token is back');
    clock.advance(1);
    assert.equal(subscribes().length, 3, 'one retry after retryAfter and a token');
    assert.deepEqual(subscribes().at(-1), { type: 'subscribe', topic: 'chat', since: 1, epoch: 'E' });
    clock.advance(1000);
    assert.equal(subscribes().length, 3);
    socket.message({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 9, recovered: true });
    for (let seq = 2; seq <= 10; seq++) socket.message({ type: 'message', topic: 'chat', seq, data: seq });
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // A subscribe answered before the retry's turn is not sent again.
    socket.message({ type: 'message', topic: 'chat', seq: 12, data: 12 });
    assert.equal(subscribes().length, 4);
    socket.message({ type: 'error', code: 'rate_limited', message: 'slow down' });
    socket.message({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 12, recovered: true });
    clock.advance(1000);
    assert.equal(subscribes().length, 4);
    client.close();
    assert.equal(clock.pending, 0);
  });

  it('flushInterval 0 sends everything at once; bad flush options throw', () => {
    const { client } = setup({ channel: false, flushInterval: 0, flushBurst: 1 });
    for (let i = 0; i < 50; i++) client.send(String(i));
    FakeWebSocket.last.open();
    assert.equal(FakeWebSocket.last.sent.length, 50);
    client.close();
    for (const bad of [
      { flushBurst: -1 },
      { flushBurst: 1.5 },
      { flushInterval: -1 },
      { flushInterval: Number.NaN },
      { flushInterval: 2 ** 31 },
    ]) {
      assert.throws(() => setup(bad), RangeError, JSON.stringify(bad));
    }
    // Every delay: setTimeout would fire a delay past 2^31 - 1 ms at once.
    for (const name of [
      'minDelay',
      'maxDelay',
      'stableAfter',
      'heartbeatInterval',
      'heartbeatTimeout',
      'connectTimeout',
    ]) {
      assert.throws(() => setup({ [name]: 2 ** 31 }), RangeError, name);
      assert.doesNotThrow(() => setup({ [name]: 2 ** 31 - 1 }).client.close(), name);
    }
  });
});

describe('subscribe and recovery', () => {
  it('resubscribes with since/epoch after a reconnect and delivers each seq exactly once', () => {
    const { client, clock } = setup();
    const resets: unknown[] = [];
    client.on('reset', (r) => resets.push(r));
    const seen = collect(client, 'chat');
    let socket = FakeWebSocket.last;
    socket.open();
    assert.deepEqual(socket.sentJson, [{ type: 'subscribe', topic: 'chat' }]);
    socket.message({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 2, recovered: false });
    assert.deepEqual(resets, [{ topic: 'chat', epoch: 'E', seq: 2, previous: null }]);
    socket.message({ type: 'message', topic: 'chat', seq: 3, data: 'c' });
    socket.message({ type: 'message', topic: 'chat', seq: 4, data: 'd' });
    assert.deepEqual(client.position('chat'), { epoch: 'E', seq: 4 });
    socket.serverClose(1006);
    clock.advance(250);
    socket = FakeWebSocket.last;
    socket.open();
    assert.deepEqual(socket.sentJson, [{ type: 'subscribe', topic: 'chat', since: 4, epoch: 'E' }]);
    socket.message({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 6, recovered: true });
    for (const seq of [4, 5, 6, 6, 7]) socket.message({ type: 'message', topic: 'chat', seq, data: seq });
    assert.deepEqual(seen, [3, 4, 5, 6, 7]);
    assert.equal(resets.length, 1);
    client.close();
  });

  it('emits reset with the previous position on a new epoch and continues from the new one', () => {
    const { client, clock } = setup();
    const resets: unknown[] = [];
    client.on('reset', (r) => resets.push(r));
    const metas: unknown[] = [];
    client.subscribe('chat', (data, meta) => metas.push({ data, ...meta }), { epoch: 'E', seq: 10 });
    FakeWebSocket.last.open();
    assert.deepEqual(
      FakeWebSocket.last.sentJson,
      [{ type: 'subscribe', topic: 'chat', since: 10, epoch: 'E' }],
      'from a known position',
    );
    FakeWebSocket.last.serverClose(1001);
    clock.advance(250);
    FakeWebSocket.last.open();
    FakeWebSocket.last.message({ type: 'subscribed', topic: 'chat', epoch: 'F', seq: 3, recovered: false });
    assert.deepEqual(resets, [{ topic: 'chat', epoch: 'F', seq: 3, previous: { epoch: 'E', seq: 10 } }]);
    FakeWebSocket.last.message({ type: 'message', topic: 'chat', seq: 3, data: 'old' });
    FakeWebSocket.last.message({ type: 'message', topic: 'chat', seq: 4, data: 'new' });
    assert.deepEqual(metas, [{ data: 'new', topic: 'chat', seq: 4, epoch: 'F' }]);
    client.close();
  });

  it('fills a gap by resubscribing with since once, ignoring what overlaps', () => {
    const { client } = setup();
    const seen = collect(client, 'chat');
    const socket = FakeWebSocket.last;
    socket.open();
    socket.message({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 0, recovered: false });
    socket.message({ type: 'message', topic: 'chat', seq: 1, data: 1 });
    socket.message({ type: 'message', topic: 'chat', seq: 3, data: 3 });
    socket.message({ type: 'message', topic: 'chat', seq: 4, data: 4 });
    assert.deepEqual(
      socket.sentJson.slice(1),
      [{ type: 'subscribe', topic: 'chat', since: 1, epoch: 'E' }],
      'one resubscribe',
    );
    socket.message({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 4, recovered: true });
    for (const seq of [2, 3, 4, 5]) socket.message({ type: 'message', topic: 'chat', seq, data: seq });
    assert.deepEqual(seen, [1, 2, 3, 4, 5]);
    client.close();
  });

  it('a handler unsubscribed by an earlier handler of the same message does not get it', () => {
    const { client } = setup();
    const got: string[] = [];
    let offB = (): void => {};
    client.subscribe('chat', (data) => {
      got.push(`A${String(data)}`);
      offB();
    });
    offB = client.subscribe('chat', (data) => got.push(`B${String(data)}`));
    const socket = FakeWebSocket.last;
    socket.open();
    socket.message({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 0, recovered: false });
    socket.message({ type: 'message', topic: 'chat', seq: 1, data: 1 });
    socket.message({ type: 'message', topic: 'chat', seq: 2, data: 2 });
    assert.deepEqual(got, ['A1', 'A2']);
    client.close();
  });

  it('unsubscribe sends unsubscribe after the last handler; errors and handler exceptions become error events', () => {
    const { client, errors } = setup();
    const socket = FakeWebSocket.last;
    socket.open();
    const offA = client.subscribe('chat', () => {
      throw new Error('handler bug');
    });
    const offB = client.subscribe('chat', () => {});
    assert.equal(socket.sent.length, 1);
    socket.message({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 0, recovered: false });
    socket.message({ type: 'message', topic: 'chat', seq: 1, data: 1 });
    assert.equal(errors[0]?.message, 'handler bug');
    offA();
    offA();
    assert.equal(socket.sent.length, 1);
    offB();
    assert.deepEqual(socket.sentJson.at(-1), { type: 'unsubscribe', topic: 'chat' });
    assert.equal(client.position('chat'), undefined);
    socket.message({ type: 'error', code: 'unknown_topic', message: 'no topic "x"', topic: 'x' });
    assert.deepEqual(
      { ...errors[1], message: errors[1]?.message },
      { name: 'DuetError', code: 'unknown_topic', topic: 'x', message: 'no topic "x"' },
    );
    socket.message('not json');
    assert.equal((errors[2] as { code?: string }).code, 'WS_ERR_INVALID_CHANNEL_MESSAGE');
    assert.throws(() => client.publish('chat', undefined), TypeError);
    client.close();
  });
});

describe('identity', () => {
  it('setNick: hello goes first on every connection (before the resubscribes and the queue); identity and meta.from come from the server', async () => {
    const { client } = setup({ heartbeatInterval: 0 });
    const got: unknown[] = [];
    client.subscribe('chat', (data, meta) => got.push({ data, from: meta.from }));
    client.setNick('ada');
    const published = client.publish('chat', { text: 'queued while connecting' });
    let socket = FakeWebSocket.last;
    socket.open();
    assert.deepEqual(socket.sentJson, [
      { type: 'hello', nick: 'ada' },
      { type: 'subscribe', topic: 'chat' },
    ]);
    assert.equal(client.identity, null, 'not before the welcome');
    socket.message({ type: 'welcome', id: 'ID1', nick: 'ada' });
    assert.deepEqual(client.identity, { id: 'ID1', nick: 'ada' });
    // A server that sends no limits first acknowledges nothing: the publish goes out without
    // an id (it would refuse one), and its promise says the outcome is unknown.
    assert.deepEqual(socket.sentJson.at(-1), {
      type: 'publish',
      topic: 'chat',
      data: { text: 'queued while connecting' },
    });
    await assert.rejects(published, { code: 'WS_ERR_OUTCOME_UNKNOWN' });
    socket.message({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 0, recovered: false });
    socket.message({ type: 'message', topic: 'chat', seq: 1, from: { id: 'ID1', nick: 'ada' }, data: 'mine' });
    socket.message({ type: 'message', topic: 'chat', seq: 2, data: 'from the server' });
    socket.message({ type: 'message', topic: 'chat', seq: 3, from: { id: 7, nick: 'bad' }, data: 'malformed from' });
    assert.deepEqual(got, [
      { data: 'mine', from: { id: 'ID1', nick: 'ada' } },
      { data: 'from the server', from: undefined },
      { data: 'malformed from', from: undefined },
    ]);
    // A new nick is said at once while open, and again first on the next connection.
    client.setNick('Ada L.');
    assert.deepEqual(socket.sentJson.at(-1), { type: 'hello', nick: 'Ada L.' });
    socket.serverClose(1006);
    assert.equal(client.identity, null);
    client.reconnect();
    socket = FakeWebSocket.last;
    socket.open();
    assert.deepEqual(socket.sentJson[0], { type: 'hello', nick: 'Ada L.' });
    assert.throws(() => client.setNick(''), TypeError);
    client.close();
  });
});

describe('recovery budget', () => {
  it('recovery_limited: the subscribe goes out again after retryAfter, once; what arrives meanwhile comes with the replay', () => {
    const { client, clock, errors } = setup({ heartbeatInterval: 0, flushInterval: 100 });
    const seen = collect(client, 'chat');
    const socket = FakeWebSocket.last;
    socket.open();
    socket.message({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 0, recovered: false });
    socket.message({ type: 'message', topic: 'chat', seq: 1, data: 1 });
    socket.message({ type: 'message', topic: 'chat', seq: 4, data: 4 }); // a gap: one subscribe
    const subscribes = () => socket.sentJson.filter((m) => m.type === 'subscribe');
    assert.equal(subscribes().length, 2);
    socket.message({ type: 'error', code: 'recovery_limited', message: 'later', topic: 'chat', retryAfter: 2500 });
    assert.equal((errors.at(-1) as { code?: string }).code, 'recovery_limited', 'reported, as every server error');
    // Live messages while waiting are left to the replay; a rate_limited does not resend it early.
    socket.message({ type: 'message', topic: 'chat', seq: 5, data: 5 });
    socket.message({ type: 'error', code: 'rate_limited', message: 'slow down' });
    clock.advance(2499);
    assert.equal(subscribes().length, 2, 'not before retryAfter');
    clock.advance(1 + 100);
    assert.equal(subscribes().length, 3);
    assert.deepEqual(subscribes().at(-1), { type: 'subscribe', topic: 'chat', since: 1, epoch: 'E' });
    clock.advance(10_000);
    assert.equal(subscribes().length, 3, 'once');
    socket.message({ type: 'subscribed', topic: 'chat', epoch: 'E', seq: 5, recovered: true });
    for (let seq = 2; seq <= 5; seq++) socket.message({ type: 'message', topic: 'chat', seq, data: seq });
    assert.deepEqual(seen, [1, 2, 3, 4, 5]);
    assert.deepEqual(client.position('chat'), { epoch: 'E', seq: 5 });
    // A retry still waiting when the connection ends is dropped with it (the next one
    // resubscribes anyway).
    socket.message({ type: 'message', topic: 'chat', seq: 7, data: 7 });
    socket.message({ type: 'error', code: 'recovery_limited', message: 'later', topic: 'chat', retryAfter: 5000 });
    client.close();
    assert.equal(clock.pending, 0);
  });

  it(
    'against a real Channel with a small budget, every topic is recovered whole: a refused one after its retryAfter',
    { timeout: 20_000 },
    async () => {
      const server = await startServer();
      const topics = { a: { history: { size: 100 } }, b: { history: { size: 100 } } };
      // Each topic's recovery (30 messages of about 130 bytes) fits the budget, both at once do not.
      const channel = new Channel(server.wss, { topics, recoveryBudget: { bytes: 5000, perMs: 1500 } });
      server.wss.on('connection', (ws) => channel.accept(ws));
      const url = `ws://127.0.0.1:${server.port}/channel`;
      try {
        for (let i = 1; i <= 40; i++) for (const t of ['a', 'b']) channel.publish(t, { i, text: 'x'.repeat(80) });
        const client = new DuetClient(url, { WebSocket, heartbeatInterval: 0 });
        const codes: string[] = [];
        client.on('error', (e) => codes.push((e as { code?: string }).code ?? e.message));
        const got: Record<string, number[]> = { a: [], b: [] };
        for (const t of ['a', 'b'] as const)
          client.subscribe(t, (data) => got[t].push((data as { i: number }).i), {
            epoch: channel.position(t).epoch,
            seq: 10,
          });
        const done = () => got.a.length === 30 && got.b.length === 30;
        for (let i = 0; i < 1000 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
        client.close();
        assert.deepEqual(codes, ['recovery_limited']);
        for (const t of ['a', 'b'])
          assert.deepEqual(
            got[t],
            Array.from({ length: 30 }, (_, k) => k + 11),
            t,
          );
      } finally {
        await server.close();
      }
    },
  );
});

describe('random sequences of calls and events', () => {
  it('never leave two live sockets, or timers, listeners or a socket behind a closed status', () => {
    // Seeded, so a failure is reproducible; the message names the run and the last steps.
    let seed = 12345;
    const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
    const ops = [
      'open',
      'close',
      'reconnect',
      'accept',
      'drop',
      'advance',
      'advance',
      'online',
      'offline',
      'hide',
      'show',
      'publish',
      'subscribe',
      'unsubscribe',
      'subscribed',
      'rate_limited',
    ] as const;
    for (let run = 0; run < 300; run++) {
      FakeWebSocket.reset();
      const clock = new FakeClock();
      const env = new FakeEnvironment();
      const client = new DuetClient(URL_, {
        WebSocket: FakeWebSocket,
        clock,
        environment: env,
        random,
        maxRetries: pick([Infinity, 3]),
        flushBurst: 2,
        flushInterval: 30,
        heartbeatInterval: pick([0, 500]),
        heartbeatTimeout: 200,
        connectTimeout: pick([0, 700]),
      });
      const offs: (() => void)[] = [];
      const steps: string[] = [];
      // Now and then a close listener closes, reopens or reconnects, as apps do.
      const reaction = pick(['close', 'reopen', 'reconnect'] as const);
      client.on('close', () => {
        if (random() >= 0.1) return;
        steps.push(`listener ${reaction}`);
        if (reaction === 'reconnect') client.reconnect();
        else client.close();
        if (reaction === 'reopen') client.open();
      });
      for (let step = 0; step < 60; step++) {
        const op = pick(ops);
        steps.push(op);
        const socket = FakeWebSocket.instances.at(-1);
        const open = socket?.readyState === 1;
        if (op === 'open') client.open();
        else if (op === 'close') client.close();
        else if (op === 'reconnect') client.reconnect();
        else if (op === 'accept' && socket?.readyState === 0) socket.open();
        else if (op === 'drop' && socket && socket.readyState < 3) socket.serverClose(pick([1006, 1001, 1008, 1011]));
        else if (op === 'advance') clock.advance(Math.floor(random() * 2000));
        else if (op === 'online') env.goOnline();
        else if (op === 'offline') env.goOffline();
        else if (op === 'hide') env.setVisibility('hidden');
        else if (op === 'show') env.setVisibility('visible');
        else if (op === 'publish') void client.publish('t', step);
        else if (op === 'subscribe') offs.push(client.subscribe(pick(['a', 'b', 'c']), () => {}));
        else if (op === 'unsubscribe') offs.pop()?.();
        else if (op === 'subscribed' && open)
          socket.message({
            type: 'subscribed',
            topic: pick(['a', 'b', 'c']),
            epoch: 'E',
            seq: 3,
            recovered: random() < 0.5,
          });
        else if (op === 'rate_limited' && open)
          socket.message({ type: 'error', code: 'rate_limited', message: 'slow down' });
        const where = `run ${run} step ${step}: ${steps.slice(-8).join(', ')}`;
        const live = FakeWebSocket.instances.filter(
          (s) => s.readyState < 2 && (s.onopen !== null || s.onmessage !== null),
        );
        assert.ok(live.length <= 1, `two live sockets after ${where}`);
        if (live.length === 1)
          assert.equal(client.socket, live[0], `a live socket that is not the current one after ${where}`);
        if (client.status === 'open')
          assert.equal(client.socket?.readyState, 1, `status open without an open socket after ${where}`);
        if (client.status === 'closed') {
          assert.equal(live.length, 0, `a live socket while closed after ${where}`);
          assert.equal(clock.pending, 0, `timers while closed after ${where}`);
          assert.equal(env.listening, 0, `listeners while closed after ${where}`);
        }
        if (client.status === 'reconnecting' && client.socket === null && env.navigator.onLine) {
          assert.ok(clock.pending > 0, `reconnecting with nothing scheduled after ${where}`);
        }
      }
      client.close();
      assert.equal(clock.pending, 0);
      assert.equal(env.listening, 0);
    }
  });
});

describe('acknowledged publishes', () => {
  it('resolve with the seq of their ack; pending counts them; a reconnect sends them again with the same id', async () => {
    const { client, clock } = setup({ heartbeatInterval: 0 });
    const counts: number[] = [];
    client.on('pending', (n) => counts.push(n));
    const first = client.publish('chat', 'one');
    const second = client.publish('chat', 'two');
    assert.equal(client.pending, 2);
    let socket = FakeWebSocket.last;
    socket.open();
    socket.message(LIMITS);
    const batch = socket.sentJson[0] as { type: string; publishes: { id: string; data: unknown }[] };
    assert.equal(batch.type, 'batch', 'waiting together: one batch');
    const [a, b] = batch.publishes.map((p) => p.id);
    socket.message({ type: 'acks', acks: [{ id: a, topic: 'chat', seq: 7 }] });
    assert.equal(await first, 7);
    assert.equal(client.pending, 1);
    socket.serverClose(1006); // b's ack is lost with the connection
    clock.advance(250);
    socket = FakeWebSocket.last;
    socket.open();
    socket.message(LIMITS);
    assert.deepEqual(socket.sentJson, [{ type: 'publish', topic: 'chat', data: 'two', id: b }]);
    socket.message({ type: 'ack', id: b, topic: 'chat', seq: 8, duplicate: true });
    assert.equal(await second, 8);
    assert.deepEqual(counts, [1, 2, 1, 0]);
    client.close();
  });

  it('a server that restarted (another dedupScope): what was sent rejects as outcome unknown, with an error event', async () => {
    const { client, clock, errors } = setup({ heartbeatInterval: 0 });
    let socket = FakeWebSocket.last;
    socket.open();
    socket.message(LIMITS);
    const sent = client.publish('chat', 'maybe published');
    socket.serverClose(1006);
    const queued = client.publish('chat', 'never sent');
    clock.advance(250);
    socket = FakeWebSocket.last;
    socket.open();
    socket.message({ ...LIMITS, dedupScope: 'S2' });
    await assert.rejects(sent, { name: 'DuetError', code: 'WS_ERR_OUTCOME_UNKNOWN', topic: 'chat' });
    assert.deepEqual(
      errors.map((e) => (e as DuetError).code).filter((code) => code !== 'WS_ERR_SOCKET'),
      ['WS_ERR_OUTCOME_UNKNOWN'],
    );
    assert.deepEqual(
      socket.sentJson.map((m) => m.data),
      ['never sent'],
    );
    socket.message({ type: 'ack', id: socket.sentJson[0].id, topic: 'chat', seq: 1 });
    assert.equal(await queued, 1);
    client.close();
  });

  it('close() rejects what is not acknowledged (raw messages stay); giving up after 1008 too; later publishes wait for open()', async () => {
    const { client } = setup({ heartbeatInterval: 0 });
    client.send('raw');
    const beforeClose = client.publish('chat', 1);
    client.close();
    await assert.rejects(beforeClose, { code: 'WS_ERR_PUBLISH_CANCELLED', message: /close\(\) was called/ });
    assert.equal(client.queued, 1);
    const afterClose = client.publish('chat', 2);
    client.open();
    const socket = FakeWebSocket.last;
    socket.open();
    socket.message(LIMITS);
    assert.deepEqual(socket.sent[0], 'raw');
    assert.equal((JSON.parse(socket.sent[1] as string) as { data: unknown }).data, 2);
    socket.serverClose(1008, 'too many errors');
    assert.equal(client.status, 'closed');
    await assert.rejects(afterClose, {
      code: 'WS_ERR_PUBLISH_CANCELLED',
      message: 'publish to "chat" cancelled: the client stopped reconnecting after close 1008 \'too many errors\'',
    });
    assert.equal(client.pending, 0);
  });

  it('a refused publish rejects with the server code and is reported; clearQueue() rejects the rest', async () => {
    const { client, errors } = setup({ heartbeatInterval: 0 });
    const socket = FakeWebSocket.last;
    socket.open();
    socket.message(LIMITS);
    const refused = client.publish('ticker', 1);
    socket.message({
      type: 'error',
      code: 'forbidden',
      message: 'server only',
      topic: 'ticker',
      id: socket.sentJson[0].id,
    });
    await assert.rejects(refused, { code: 'forbidden', topic: 'ticker', message: 'server only' });
    assert.equal(errors.length, 1);
    socket.readyState = 2;
    const cleared = client.publish('chat', 2);
    client.clearQueue();
    await assert.rejects(cleared, { code: 'WS_ERR_PUBLISH_CANCELLED' });
    client.close();
  });

  it('a burst of 100 while open stays inside the server bucket and every promise resolves; the client stays open', async () => {
    const { client, clock } = setup({ heartbeatInterval: 0 });
    const socket = FakeWebSocket.last;
    socket.open();
    socket.message(LIMITS);
    const promises = Array.from({ length: 100 }, (_, i) => client.publish('chat', i));
    // A server bucket of 20 per second, checked at every frame; it acks what it accepts.
    let tokens = 20;
    let at = clock.now();
    let counted = 0;
    let seq = 0;
    let refused = 0;
    for (let step = 0; step < 500 && counted < 200; step++) {
      for (const msg of socket.sentJson.slice(counted)) {
        tokens = Math.min(20, tokens + ((clock.now() - at) * 20) / 1000) - 1;
        at = clock.now();
        if (tokens < 0) refused++;
        const entries = msg.type === 'batch' ? (msg.publishes as { id: string }[]) : [msg as { id: string }];
        socket.message({ type: 'acks', acks: entries.map((e) => ({ id: e.id, topic: 'chat', seq: ++seq })) });
      }
      counted = socket.sent.length;
      if (client.pending === 0) break;
      clock.advance(10);
    }
    assert.equal(refused, 0, 'the server bucket never ran dry');
    assert.deepEqual(
      await Promise.all(promises),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    assert.ok(socket.sent.length < 30, `${socket.sent.length} frames for 100 publishes`);
    assert.equal(client.status, 'open');
    client.close();
  });
});

describe('liveness and backoff', () => {
  it('the retry counter starts over when the connection is confirmed: limits in and every subscribe answered', () => {
    const { client, clock } = setup({ heartbeatInterval: 0, minDelay: 100, maxDelay: 10_000 });
    client.subscribe('a', () => {});
    client.subscribe('b', () => {});
    for (let i = 0; i < 3; i++) {
      FakeWebSocket.last.serverClose(1006);
      clock.advance(10_000);
    }
    assert.equal(client.retries, 3);
    const socket = FakeWebSocket.last;
    socket.open();
    assert.equal(client.retries, 3, 'open alone is not enough');
    socket.message(LIMITS);
    socket.message({ type: 'subscribed', topic: 'a', epoch: 'E', seq: 0, recovered: false });
    assert.equal(client.retries, 3, 'b is not answered yet');
    socket.message({ type: 'subscribed', topic: 'b', epoch: 'E', seq: 0, recovered: false });
    assert.equal(client.retries, 0);
    socket.serverClose(1006);
    assert.deepEqual(clock.pendingDelays(), [50], 'the backoff starts over');
    client.close();
  });

  it('a connection that dies before it is confirmed keeps the delay growing (a server that accepts and drops)', () => {
    const { client, clock } = setup({ heartbeatInterval: 0, minDelay: 100, maxDelay: 100_000 });
    client.subscribe('a', () => {});
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      FakeWebSocket.last.open();
      FakeWebSocket.last.message(LIMITS); // limits, but the subscribe is never answered
      FakeWebSocket.last.serverClose(1006);
      delays.push(clock.pendingDelays()[0]);
      clock.advance(delays.at(-1)!);
    }
    assert.deepEqual(delays, [50, 100, 200, 400, 800, 1600]);
    assert.equal(client.retries, 6);
    client.close();
  });

  it('a flapping link (confirmed, then dropped, again and again) keeps the first delay', () => {
    const { client, clock } = setup({ heartbeatInterval: 0, minDelay: 100, stableAfter: 5000 });
    client.subscribe('a', () => {});
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      const socket = FakeWebSocket.last;
      socket.open();
      socket.message(LIMITS);
      socket.message({ type: 'subscribed', topic: 'a', epoch: 'E', seq: i, recovered: i > 0 });
      clock.advance(2000);
      socket.serverClose(1006);
      delays.push(clock.pendingDelays()[0]);
      clock.advance(delays.at(-1)!);
    }
    assert.deepEqual(delays, [50, 50, 50, 50, 50, 50]);
    client.close();
  });

  it('close 1013 with "retry after N ms": the next attempt waits at least that long', () => {
    const { client, clock } = setup({ heartbeatInterval: 0, minDelay: 100 });
    FakeWebSocket.last.open();
    FakeWebSocket.last.serverClose(1013, 'rate limited; retry after 1234 ms');
    assert.equal(client.status, 'reconnecting');
    assert.deepEqual(clock.pendingDelays(), [1234]);
    const before = FakeWebSocket.instances.length;
    clock.advance(1233);
    assert.equal(FakeWebSocket.instances.length, before);
    clock.advance(1);
    assert.equal(FakeWebSocket.instances.length, before + 1);
    assert.equal(retryHint({ code: 1013, reason: 'busy', wasClean: true }), 0);
    assert.equal(retryHint({ code: 1008, reason: 'retry after 10 ms', wasClean: true }), 0);
    assert.equal(retryHint({ code: 1013, reason: 'retry after 99999999 ms', wasClean: true }), 300_000);
    client.close();
  });

  it('a ping refused for the rate limit (the error names its id) counts as answered', () => {
    const { client, clock } = setup({ heartbeatInterval: 1000, heartbeatTimeout: 500 });
    const socket = FakeWebSocket.last;
    socket.open();
    socket.message(LIMITS);
    clock.advance(1000);
    assert.deepEqual(socket.sentJson.at(-1), { type: 'ping', id: 1 });
    socket.message({ type: 'error', code: 'rate_limited', message: 'slow', id: 1, retryAfter: 10 });
    clock.advance(1000);
    assert.equal(client.status, 'open', 'ping 1 would have timed out 500 ms after it went');
    assert.deepEqual(socket.sentJson.at(-1), { type: 'ping', id: 2 });
    client.close();
  });
});

describe('plain mode', () => {
  it('passes raw messages through and refuses channel calls', () => {
    const { client } = setup({ channel: false, binaryType: 'arraybuffer', protocols: ['v1'] });
    const got: unknown[] = [];
    client.on('message', (m) => got.push(m));
    const socket = FakeWebSocket.last;
    assert.equal(socket.binaryType, 'arraybuffer');
    assert.deepEqual(socket.protocols, ['v1']);
    socket.open();
    const bytes = new ArrayBuffer(2);
    socket.rawMessage('hello');
    socket.rawMessage(bytes);
    assert.deepEqual(got, ['hello', bytes]);
    assert.throws(() => client.subscribe('chat', () => {}), { code: 'WS_ERR_NOT_CHANNEL' });
    assert.throws(() => client.publish('chat', 1), { code: 'WS_ERR_NOT_CHANNEL' });
    client.close();
  });
});

describe('against a real duet server', () => {
  it('messages published while a client was reconnecting arrive exactly once', async () => {
    const server = await startServer();
    const channel = new Channel(server.wss, { topics: { chat: { history: { size: 100 } } } });
    server.wss.on('connection', (ws) => channel.accept(ws));
    const url = `ws://127.0.0.1:${server.port}/channel`;
    // The reader's network is a fake, so it stays away exactly until the test says 'online'.
    const env = new FakeEnvironment();
    const reader = new DuetClient(url, { WebSocket, environment: env });
    const writer = new DuetClient(url, { WebSocket });
    try {
      const got: unknown[] = [];
      const resets: unknown[] = [];
      reader.on('reset', (r) => resets.push(r));
      const waitFor = async (what: () => boolean, label: string) => {
        for (let i = 0; i < 1000 && !what(); i++) await new Promise((r) => setTimeout(r, 10));
        assert.ok(what(), `timed out waiting for ${label}`);
      };
      reader.subscribe('chat', (data) => got.push(data));
      const echoed: unknown[] = [];
      writer.subscribe('chat', (data) => echoed.push(data));
      await waitFor(() => reader.position('chat') !== undefined && writer.position('chat') !== undefined, 'subscribed');
      void writer.publish('chat', 1);
      void writer.publish('chat', 2);
      await waitFor(() => got.length === 2, 'live messages');
      env.navigator.onLine = false;
      reader.reconnect();
      assert.equal(reader.status, 'reconnecting');
      for (const n of [3, 4, 5]) void writer.publish('chat', n);
      await waitFor(() => echoed.length === 5, 'the writer to see its messages');
      assert.equal(reader.status, 'reconnecting', 'the reader was away while they were published');
      assert.equal(reader.socket, null);
      env.goOnline();
      await waitFor(() => got.length >= 5 && reader.status === 'open', 'recovery');
      void writer.publish('chat', 6);
      await waitFor(() => got.length >= 6, 'live after recovery');
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(got, [1, 2, 3, 4, 5, 6]);
      assert.equal(resets.length, 1, 'only the first subscribe reset');
      assert.deepEqual(reader.position('chat')?.seq, 6);
    } finally {
      reader.close();
      writer.close();
      await server.close();
    }
  });

  it('more subscribes and publishes than the rate limit reach a default Channel whole, paced or not; a raw flood gets 1013 and a later reconnect', async () => {
    const server = await startServer();
    // 25 more topics than `chat`: their subscribes alone are more than the server's burst.
    const others = Array.from({ length: 25 }, (_, i) => `t${i}`);
    const topics = Object.fromEntries(['chat', ...others].map((name) => [name, { history: { size: 100 } }]));
    const channel = new Channel(server.wss, { topics });
    server.wss.on('connection', (ws) => channel.accept(ws));
    const url = `ws://127.0.0.1:${server.port}/channel`;
    const run = async (options: DuetClientOptions, flood = 0) => {
      const client = new DuetClient(url, { WebSocket, autoOpen: false, ...options });
      const got: unknown[] = [];
      const codes: string[] = [];
      const closes: { code: number; reason: string }[] = [];
      client.on('error', (e) => codes.push((e as { code?: string }).code ?? e.message));
      client.on('close', ({ code, reason }) => closes.push({ code, reason }));
      for (const topic of others) client.subscribe(topic, () => {});
      client.subscribe('chat', (data) => got.push(data));
      // Raw messages need no limits to go out: at the default pace, or all at once with flushInterval 0.
      for (let i = 0; i < flood; i++) client.send(JSON.stringify({ type: 'ping', id: `flood ${i}` }));
      const acks = Array.from({ length: 20 }, (_, i) => client.publish('chat', i));
      client.open();
      const subscribed = () => others.every((topic) => client.position(topic) !== undefined);
      for (let i = 0; i < 1500 && !(got.length === 20 && subscribed()); i++)
        await new Promise((r) => setTimeout(r, 10));
      const seqs = await Promise.all(acks);
      client.close();
      return { got, codes, closes, seqs, subscribed: subscribed() };
    };
    try {
      // Unpaced until the limits arrive: the subscribes beyond the burst are refused and sent
      // again after retryAfter; the publishes wait for the limits, then go as one batch.
      const burst = await run({ flushInterval: 0 });
      assert.ok(burst.codes.includes('rate_limited'), 'some subscribes were refused');
      assert.deepEqual(burst.closes, [], 'but the connection stayed');
      assert.deepEqual(
        burst.got,
        Array.from({ length: 20 }, (_, i) => i),
      );
      assert.ok(burst.subscribed, 'every topic got its subscribed');
      assert.deepEqual(
        burst.seqs,
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      // The default pace: nothing refused at all.
      const paced = await run({});
      assert.deepEqual(
        paced.got,
        Array.from({ length: 20 }, (_, i) => i),
      );
      assert.deepEqual(paced.codes, []);
      assert.deepEqual(paced.closes, []);
      assert.ok(paced.subscribed, 'every topic got its subscribed');
      // 60 raw messages at once on a client told not to pace: more than twice the server's
      // burst, so the server closes with 1013 and a delay; the client comes back after it, and
      // its publishes and subscribes (not sent before the close, or sent again) arrive whole.
      const flooded = await run({ flushInterval: 0, minDelay: 10 }, 60);
      assert.equal(flooded.closes[0]?.code, 1013, 'what a flood gets');
      assert.match(flooded.closes[0].reason, /^rate limited; retry after \d+ ms$/);
      assert.ok(flooded.subscribed, 'every topic got its subscribed after the reconnect');
      assert.equal(flooded.got.length, 20);
    } finally {
      await server.close();
    }
  });
});

describe('mistakes at construction', () => {
  it('no WebSocket implementation and a bad URL throw from the constructor, where the caller sees them', () => {
    // Node 20 has no global WebSocket.
    assert.equal((globalThis as { WebSocket?: unknown }).WebSocket, undefined);
    assert.throws(() => new DuetClient('ws://127.0.0.1:1/channel'), { code: 'WS_ERR_NO_WEBSOCKET' });
    assert.throws(() => new DuetClient('ftp://example.com/', { WebSocket: FakeWebSocket }), {
      code: 'WS_ERR_INVALID_URL',
    });
    assert.throws(() => new DuetClient('not a url', { WebSocket: FakeWebSocket }), { code: 'WS_ERR_INVALID_URL' });
  });

  it('an error raised while the constructor connects reaches a listener attached right after it', async () => {
    class Refusing {
      constructor() {
        throw new Error('refused by the implementation');
      }
    }
    const client = new DuetClient('ws://127.0.0.1:1/channel', {
      WebSocket: Refusing as unknown as typeof FakeWebSocket,
    });
    const errors: string[] = [];
    client.on('error', (e) => errors.push(e.message));
    await Promise.resolve();
    assert.deepEqual(errors, ['refused by the implementation']);
    assert.equal(client.status, 'closed');
  });
});
