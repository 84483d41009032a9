/**
 * cli/endpoints.ts in process: attachEndpoints on a WebSocketServer on 127.0.0.1, with `ws`
 * clients. The ticker's job is captured instead of run on a timer (the test calls it, with
 * Math.random and Date fixed), so ticks are exact and no test waits a second. What it pins:
 * pathOf, what each path attaches, /echo and /chat, the tick's shape and its random walk, the
 * /channel topics' configuration (who may publish, how much history), and when the server
 * says `leave` on presence. serve.test.ts runs the same endpoints through `duet serve`.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import WS from 'ws';
import { CHANNEL_HISTORY, attachEndpoints, pathOf, recentPosition, type Tick } from '../../src/cli/endpoints.js';
import type { WebSocket } from '../../src/index.js';
import { startServer, waitFor } from '../helpers.js';

/** attachEndpoints on a fresh server, its ticker job captured, every server-side connection kept. */
async function endpoints(t: TestContext) {
  const server = await startServer();
  const jobs: { ms: number; fn: (run: number) => void }[] = [];
  t.mock.method(server.wss, 'every', (ms: number, fn: (run: number) => void) => {
    jobs.push({ ms, fn });
    return { cancel: () => {}, active: true };
  });
  const channel = attachEndpoints(server.wss);
  const connections: { ws: WebSocket; path: string }[] = [];
  // Registered after attachEndpoints' own listener, so it runs after it.
  server.wss.on('connection', (ws: WebSocket, req: IncomingMessage) => connections.push({ ws, path: pathOf(req) }));
  const clients: WS[] = [];
  /** The `limits` message each /channel connection got first (taken out of its `got`). */
  const limits: Record<string, unknown>[] = [];
  const open = async (path: string): Promise<{ ws: WS; got: { data: Buffer; isBinary: boolean }[] }> => {
    const before = connections.length;
    const ws = new WS(`ws://127.0.0.1:${server.port}${path}`);
    clients.push(ws);
    const got: { data: Buffer; isBinary: boolean }[] = [];
    ws.on('message', (data, isBinary) => got.push({ data: data as Buffer, isBinary }));
    await once(ws, 'open');
    await waitFor(
      () => connections.length > before,
      5000,
      () => `the server side of ${path}`,
    );
    if (path === '/channel') {
      const [first] = await json(got, 1);
      assert.equal(first.type, 'limits');
      limits.push(first);
      got.shift();
    }
    return { ws, got };
  };
  const close = async (): Promise<void> => {
    for (const ws of clients) ws.terminate();
    await server.close();
  };
  return { server, wss: server.wss, channel, jobs, connections, open, close, limits };
}

/** Wait until `got` holds `n` messages (a generous bound), then return them as JSON objects. */
async function json(got: { data: Buffer }[], n: number): Promise<Record<string, unknown>[]> {
  await waitFor(
    () => got.length >= n,
    5000,
    () => `${n} messages, got ${got.map((m) => m.data.toString()).join(' | ')}`,
  );
  return got.map((m) => JSON.parse(m.data.toString()) as Record<string, unknown>);
}

const send = (ws: WS, message: object): void => ws.send(JSON.stringify(message));

describe('pathOf', () => {
  it('is the URL without its query; no URL is /', () => {
    const req = (url: string | undefined) => ({ url }) as IncomingMessage;
    assert.equal(pathOf(req('/echo')), '/echo');
    assert.equal(pathOf(req('/echo?token=1')), '/echo');
    assert.equal(pathOf(req('/a?b?c')), '/a');
    assert.equal(pathOf(req('/?x')), '/');
    assert.equal(pathOf(req(undefined)), '/');
  });
});

describe('attachEndpoints: /echo, /chat, /ticker', () => {
  it('each path attaches what it serves: a message handler, a topic, or nothing for other paths', async (t) => {
    const e = await endpoints(t);
    try {
      for (const path of ['/echo', '/chat', '/ticker', '/channel', '/other', '/echo/x']) await e.open(path);
      const seen = e.connections.map(({ ws, path }) => [path, ws.listenerCount('message')]);
      assert.deepEqual(seen, [
        ['/echo', 1],
        ['/chat', 1],
        ['/ticker', 0],
        ['/channel', 1],
        ['/other', 0],
        ['/echo/x', 0],
      ]);
      assert.equal(e.wss.subscriberCount('chat'), 1, 'only the /chat client');
      assert.equal(e.wss.subscriberCount('ticker'), 1, 'only the /ticker client');
    } finally {
      await e.close();
    }
  });

  it('/echo sends each message back to its sender only, with its type and bytes', async (t) => {
    const e = await endpoints(t);
    try {
      const a = await e.open('/echo');
      const b = await e.open('/echo');
      a.ws.send('héllo');
      a.ws.send(Buffer.from([0, 1, 255]));
      await waitFor(
        () => a.got.length === 2,
        5000,
        () => 'two echoes',
      );
      assert.deepEqual(
        a.got.map((m) => [m.isBinary, [...m.data]]),
        [
          [false, [...Buffer.from('héllo')]],
          [true, [0, 1, 255]],
        ],
      );
      // Had a's echoes gone to b too, they would be ahead of b's own in b's stream.
      b.ws.send('b only');
      await waitFor(
        () => b.got.length >= 1,
        5000,
        () => "b's echo",
      );
      assert.equal(b.got[0]?.data.toString(), 'b only');
    } finally {
      await e.close();
    }
  });

  it('/chat relays every message to every /chat client, the sender included, in order and with its type; /echo gets none', async (t) => {
    const e = await endpoints(t);
    try {
      const a = await e.open('/chat');
      const b = await e.open('/chat');
      const echo = await e.open('/echo');
      a.ws.send('one');
      b.ws.send(Buffer.from([7]));
      a.ws.send('three');
      for (const c of [a, b])
        await waitFor(
          () => c.got.length === 3,
          5000,
          () => 'three relayed',
        );
      // b's message was sent after a's first, before a's second; each socket sees one order.
      for (const c of [a, b]) {
        const texts = c.got.map((m) => (m.isBinary ? `bin:${[...m.data].join()}` : m.data.toString()));
        assert.ok(texts.indexOf('one') < texts.indexOf('three'), texts.join());
        assert.deepEqual([...texts].sort(), ['bin:7', 'one', 'three']);
      }
      assert.deepEqual(
        a.got.map((m) => m.data.toString('hex')),
        b.got.map((m) => m.data.toString('hex')),
        'the same order for everyone',
      );
      echo.ws.send('mine');
      await waitFor(
        () => echo.got.length >= 1,
        5000,
        () => 'the echo',
      );
      assert.equal(echo.got[0]?.data.toString(), 'mine', 'the chat went by /echo');
    } finally {
      await e.close();
    }
  });

  it('the ticker is one job every 1000 ms; a run sends the same tick to every /ticker client and to /channel ticker subscribers', async (t) => {
    const e = await endpoints(t);
    try {
      assert.deepEqual(
        e.jobs.map((j) => j.ms),
        [1000],
      );
      const a = await e.open('/ticker');
      const b = await e.open('/ticker');
      const sub = await e.open('/channel');
      send(sub.ws, { type: 'subscribe', topic: 'ticker' });
      await json(sub.got, 1);
      const NOW = Date.UTC(2024, 0, 2, 3, 4, 5, 678);
      t.mock.method(Math, 'random', () => 0.75);
      t.mock.timers.enable({ apis: ['Date'], now: NOW });
      e.jobs[0]?.fn(7);
      t.mock.timers.reset();
      t.mock.restoreAll();
      const tick: Tick = { type: 'tick', seq: 7, time: '2024-01-02T03:04:05.678Z', value: 100.5 };
      for (const c of [a, b]) {
        assert.deepEqual(await json(c.got, 1), [tick]);
        assert.equal(c.got[0]?.isBinary, false);
      }
      const [, message] = await json(sub.got, 2);
      assert.deepEqual(message, { type: 'message', topic: 'ticker', seq: 1, data: tick });
    } finally {
      await e.close();
    }
  });

  it('the value is a random walk from 100, each step (random - 0.5) * 2 rounded to cents, never below 1', async (t) => {
    const e = await endpoints(t);
    try {
      const published: number[] = [];
      t.mock.method(e.channel, 'publish', (topic: string, data: unknown) => {
        if (topic === 'ticker') published.push((data as Tick).value);
        return 0;
      });
      const random = t.mock.method(Math, 'random', () => 0.123);
      e.jobs[0]?.fn(1);
      assert.deepEqual(published, [99.25], '100 - 0.754, to cents');
      random.mock.mockImplementation(() => 0);
      for (let run = 2; run <= 110; run++) e.jobs[0]?.fn(run);
      assert.equal(published.length, 110);
      assert.equal(published[1], 98.25);
      assert.equal(Math.min(...published), 1);
      assert.equal(published[98], 1.25);
      assert.deepEqual(
        published.slice(99),
        Array.from({ length: 11 }, () => 1),
        'from the 100th step on, held at 1',
      );
    } finally {
      t.mock.restoreAll();
      await e.close();
    }
  });
});

describe('attachEndpoints: /channel topics', () => {
  it('chat and presence take publishes from clients; ticker does not; other topics do not exist', async (t) => {
    const e = await endpoints(t);
    try {
      const c = await e.open('/channel');
      send(c.ws, { type: 'publish', topic: 'ticker', data: 1 });
      send(c.ws, { type: 'publish', topic: 'news', data: 1 });
      send(c.ws, { type: 'subscribe', topic: 'news' });
      send(c.ws, { type: 'subscribe', topic: 'chat' });
      send(c.ws, { type: 'subscribe', topic: 'presence' });
      send(c.ws, { type: 'publish', topic: 'chat', data: { text: 'hi' } });
      send(c.ws, { type: 'publish', topic: 'presence', data: { state: 'here' } });
      const got = await json(c.got, 7);
      assert.deepEqual(
        got.map((m) => [m.type, m.code ?? m.topic]),
        [
          ['error', 'forbidden'],
          ['error', 'unknown_topic'],
          ['error', 'unknown_topic'],
          ['subscribed', 'chat'],
          ['subscribed', 'presence'],
          ['message', 'chat'],
          ['message', 'presence'],
        ],
      );
    } finally {
      await e.close();
    }
  });

  it('/channel announces its limits first, and acknowledges and deduplicates publishes with an id', async (t) => {
    const e = await endpoints(t);
    try {
      const c = await e.open('/channel');
      const d = await e.open('/channel');
      const scope = e.limits[0].dedupScope;
      assert.equal(typeof scope, 'string');
      assert.deepEqual(e.limits, [
        {
          type: 'limits',
          rate: { messages: 20, perMs: 1000 },
          maxMessageBytes: 16384,
          maxBatch: 50,
          dedupMs: 120000,
          dedupScope: scope,
        },
        e.limits[0],
      ]);
      send(c.ws, { type: 'publish', topic: 'chat', data: { text: 'once' }, id: 'page.1' });
      assert.deepEqual(await json(c.got, 1), [{ type: 'ack', id: 'page.1', topic: 'chat', seq: 1 }]);
      // The page reconnected and sent it again: answered, not published twice.
      send(d.ws, { type: 'publish', topic: 'chat', data: { text: 'once' }, id: 'page.1' });
      assert.deepEqual(await json(d.got, 1), [{ type: 'ack', id: 'page.1', topic: 'chat', seq: 1, duplicate: true }]);
      assert.equal(e.channel.position('chat').seq, 1);
    } finally {
      await e.close();
    }
  });

  it('chat keeps its last 100 messages for recovery; presence keeps none', async (t) => {
    const e = await endpoints(t);
    try {
      for (let i = 1; i <= 101; i++) e.channel.publish('chat', { i });
      // Presence is live only: someone must be listening for its messages to be numbered.
      const listener = await e.open('/channel');
      send(listener.ws, { type: 'subscribe', topic: 'presence' });
      await json(listener.got, 1);
      for (let i = 1; i <= 3; i++) e.channel.publish('presence', { state: 'here', i });
      await json(listener.got, 4);
      const chat = e.channel.position('chat');
      const presence = e.channel.position('presence');
      assert.deepEqual([chat.seq, presence.seq], [101, 3]);
      const c = await e.open('/channel');
      send(c.ws, { type: 'subscribe', topic: 'chat', since: 1, epoch: chat.epoch });
      const got = await json(c.got, 101);
      assert.deepEqual(got[0], { type: 'subscribed', topic: 'chat', epoch: chat.epoch, seq: 101, recovered: true });
      assert.deepEqual(
        got.slice(1).map((m) => (m.data as { i: number }).i),
        Array.from({ length: 100 }, (_, k) => k + 2),
      );
      c.got.length = 0;
      send(c.ws, { type: 'unsubscribe', topic: 'chat' });
      send(c.ws, { type: 'subscribe', topic: 'chat', since: 0, epoch: chat.epoch });
      send(c.ws, { type: 'subscribe', topic: 'presence', since: 1, epoch: presence.epoch });
      const answers = (await json(c.got, 3)).filter((m) => m.type === 'subscribed');
      assert.deepEqual(answers, [
        { type: 'subscribed', topic: 'chat', epoch: chat.epoch, seq: 101, recovered: false },
        { type: 'subscribed', topic: 'presence', epoch: presence.epoch, seq: 3, recovered: false },
      ]);
    } finally {
      await e.close();
    }
  });
});

describe('attachEndpoints: presence leave', () => {
  it('a /channel connection that said hello is said to leave when it closes; one that did not, is not', async (t) => {
    const e = await endpoints(t);
    try {
      const leaves: unknown[] = [];
      t.mock.method(e.channel, 'publish', (topic: string, data: unknown, options?: { from?: WebSocket }) => {
        if (topic === 'presence') leaves.push({ data, from: options?.from === undefined ? undefined : 'a connection' });
        return 0;
      });
      const quiet = await e.open('/channel');
      const named = await e.open('/channel');
      send(named.ws, { type: 'hello', nick: 'ada' });
      await json(named.got, 1);
      const [quietServer, namedServer] = e.connections.map((c) => c.ws);
      assert.ok(quietServer && namedServer);
      quiet.ws.close();
      await once(quietServer, 'close');
      assert.deepEqual(leaves, [], 'no hello, no leave');
      named.ws.close();
      await once(namedServer, 'close');
      assert.deepEqual(leaves, [{ data: { state: 'leave' }, from: 'a connection' }]);
      assert.equal(e.channel.identity(namedServer)?.nick, 'ada');
    } finally {
      await e.close();
    }
  });

  it('while the server shuts down, nobody is said to leave', async (t) => {
    const e = await endpoints(t);
    let closed = false;
    try {
      const calls: string[] = [];
      t.mock.method(e.channel, 'publish', (topic: string) => {
        calls.push(topic);
        return 0;
      });
      for (const nick of ['ada', 'eve']) {
        const c = await e.open('/channel');
        send(c.ws, { type: 'hello', nick });
        await json(c.got, 1);
      }
      const serverSides = e.connections.map((c) => once(c.ws, 'close'));
      const done = new Promise<void>((resolve) => e.wss.close(() => resolve()));
      closed = true;
      await Promise.all(serverSides);
      await done;
      assert.deepEqual(calls, []);
    } finally {
      if (!closed) await e.close();
    }
  });
});

describe('recentPosition: where to subscribe from to get what a /channel topic keeps', () => {
  it('chat and ticker: the seq before their oldest kept message (0 until they keep 100); presence keeps none', async (t) => {
    const e = await endpoints(t);
    try {
      const empty = await recentPosition(e.channel, 'chat');
      assert.deepEqual(empty, { topic: 'chat', epoch: e.channel.position('chat').epoch, seq: 0, since: 0 });
      for (let i = 1; i <= 30; i++) e.channel.publish('chat', { text: `m${i}` });
      assert.equal((await recentPosition(e.channel, 'chat'))!.since, 0);
      for (let i = 31; i <= 150; i++) e.channel.publish('chat', { text: `m${i}` });
      const full = await recentPosition(e.channel, 'chat');
      assert.deepEqual(full, { topic: 'chat', epoch: e.channel.position('chat').epoch, seq: 150, since: 50 });
      assert.equal(CHANNEL_HISTORY.chat, 100);
      e.channel.publish('presence', { state: 'here' });
      const presence = await recentPosition(e.channel, 'presence');
      assert.equal(presence!.since, presence!.seq);
      assert.equal(await recentPosition(e.channel, 'nope'), undefined);
      assert.equal(await recentPosition(e.channel, 'toString'), undefined);

      // A subscribe from there gets exactly the 100 kept messages, recovered, then live ones.
      const { ws, got } = await e.open('/channel');
      send(ws, { type: 'subscribe', topic: 'chat', since: full.since, epoch: full.epoch });
      const answer = await json(got, 101);
      assert.deepEqual(answer[0], { type: 'subscribed', topic: 'chat', epoch: full.epoch, seq: 150, recovered: true });
      assert.deepEqual(
        answer.slice(1).map((m) => m.seq),
        Array.from({ length: 100 }, (_, i) => 51 + i),
      );
      e.channel.publish('chat', { text: 'live' });
      const next = await json(got, 102);
      assert.equal(next[101].seq, 151);
    } finally {
      await e.close();
    }
  });
});
