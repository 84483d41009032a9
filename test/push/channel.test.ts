/**
 * The JSON channel protocol (src/push/channel.ts, docs/protocol.md) over real connections: a
 * duet server on 127.0.0.1:0 with a Channel, driven by `ws` clients (an independent
 * implementation) that speak the protocol as any client would; the last block on an
 * asynchronous broker of the test's own (answers in a later turn, failures on demand, resets).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import WS from 'ws';
import { Channel, type ChannelOptions, type WebSocket } from '../../src/index.js';
import {
  MemoryBroker,
  messageBytes,
  type AsynchronousBroker,
  type BrokerHost,
  type OutgoingMessage,
  type PublishResult,
  type TopicPosition,
} from '../../src/push/broker.js';
import type { HistoryEntry, Recovery } from '../../src/push/history.js';
import { createError } from '../../src/protocol/errors.js';
import { HOST, RawClient, clientFrame, startServer, upgradeRequest, waitFor } from '../helpers.js';

const T = { timeout: 10_000 };
const WAIT_MS = 3000;

/** A server message as the test sees it. */
interface Msg {
  type: string;
  topic?: string;
  seq?: number;
  epoch?: string;
  recovered?: boolean;
  data?: unknown;
  id?: unknown;
  nick?: string;
  from?: { id: string; nick?: string };
  code?: string;
  message?: string;
  retryAfter?: number;
  outcome?: string;
  duplicate?: boolean;
  acks?: Array<Record<string, unknown>>;
  rate?: unknown;
  dedupMs?: number;
  dedupScope?: string;
}

/** A protocol client: every text message parsed and queued; `next()` takes them in order. */
class Client {
  readonly inbox: Msg[] = [];
  /** Every message's text, as received, in order. */
  readonly raw: string[] = [];
  binaries = 0;
  closeCode: number | undefined;
  closeReason = '';
  private wake: (() => void) | undefined;
  private pingId = 0;

  private constructor(readonly ws: WS) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) this.binaries++;
      else {
        const text = data.toString('utf8');
        this.raw.push(text);
        this.inbox.push(JSON.parse(text) as Msg);
      }
      this.wake?.();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
      this.wake?.();
    });
    ws.on('error', () => {});
  }

  /** The `limits` message the server sent first (taken out of the inbox by `open`). */
  limits: Msg | undefined;

  /** `channel`: the server speaks the channel protocol there (it sends `limits` first). */
  static async open(port: number, path = '/channel', channel = true): Promise<Client> {
    const ws = new WS(`ws://${HOST}:${port}${path}`, { handshakeTimeout: WAIT_MS });
    // Listening before `open`: the server's first message may come with the handshake's answer.
    const client = new Client(ws);
    await once(ws, 'open');
    if (!channel) return client;
    const first = await client.next();
    assert.equal(first.type, 'limits', `the first message is limits: ${JSON.stringify(first)}`);
    client.limits = first;
    client.raw.shift();
    return client;
  }

  send(message: object | string): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** Wait until `cond()` holds, re-checked on every message and on close. */
  async until(cond: () => boolean, what = 'condition', ms = WAIT_MS): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out waiting for ${what}; inbox: ${JSON.stringify(this.inbox).slice(0, 400)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  async next(): Promise<Msg> {
    await this.until(() => this.inbox.length > 0, 'a message');
    return this.inbox.shift()!;
  }

  async take(n: number): Promise<Msg[]> {
    await this.until(() => this.inbox.length >= n, `${n} messages`);
    return this.inbox.splice(0, n);
  }

  /** Send and expect the next message to be an error with `code`. */
  async expectError(message: object | string, code: string): Promise<Msg> {
    this.send(message);
    const reply = await this.next();
    assert.equal(
      reply.type,
      'error',
      `expected error ${code} for ${JSON.stringify(message)}, got ${JSON.stringify(reply)}`,
    );
    assert.equal(reply.code, code, `for ${JSON.stringify(message)}: ${reply.message}`);
    assert.equal(typeof reply.message, 'string');
    return reply;
  }

  /**
   * Everything the server sends before the answer to a ping sent now (the server answers in
   * order, so this is what it had sent so far). Removes the pong.
   */
  async drain(): Promise<Msg[]> {
    const id = `barrier-${++this.pingId}`;
    this.send({ type: 'ping', id });
    await this.until(() => this.inbox.some((m) => m.type === 'pong' && m.id === id), `pong ${id}`);
    const at = this.inbox.findIndex((m) => m.type === 'pong' && m.id === id);
    const before = this.inbox.splice(0, at + 1);
    before.pop();
    return before;
  }

  async subscribe(topic: string, since?: number, epoch?: string): Promise<Msg> {
    this.send(since === undefined ? { type: 'subscribe', topic } : { type: 'subscribe', topic, since, epoch });
    const reply = await this.next();
    assert.equal(reply.type, 'subscribed', JSON.stringify(reply));
    return reply;
  }

  /** Say hello with `nick`; returns the welcome (the connection's id and nick). */
  async hello(nick: string): Promise<{ id: string; nick: string }> {
    this.send({ type: 'hello', nick });
    const reply = await this.next();
    assert.equal(reply.type, 'welcome', JSON.stringify(reply));
    assert.equal(typeof reply.id, 'string');
    return { id: reply.id as string, nick: reply.nick! };
  }

  async closed(): Promise<number> {
    await this.until(() => this.closeCode !== undefined, 'close');
    return this.closeCode!;
  }

  close(): void {
    this.ws.terminate();
  }
}

/** A server with a channel on every connection. */
async function channelServer(options: ChannelOptions, serverOptions: Parameters<typeof startServer>[0] = {}) {
  const server = await startServer(serverOptions);
  const channel = new Channel(server.wss, options);
  server.wss.on('connection', (ws: WebSocket) => channel.accept(ws));
  const clients: Client[] = [];
  return {
    ...server,
    channel,
    async client(): Promise<Client> {
      const c = await Client.open(server.port);
      clients.push(c);
      return c;
    },
    async close(): Promise<void> {
      for (const c of clients) c.close();
      await server.close();
    },
  };
}

const CHAT: ChannelOptions = {
  topics: { chat: { history: { size: 100 } }, ticker: { history: { size: 100 }, publish: false } },
  rateLimit: false,
  maxErrors: 1000,
};

function seqs(messages: Msg[]): number[] {
  return messages.map((m) => {
    assert.equal(m.type, 'message', JSON.stringify(m));
    return m.seq!;
  });
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}

describe('channel protocol: messages', () => {
  it('ping is answered with pong, echoing a string or number id', T, async () => {
    const s = await channelServer(CHAT);
    try {
      const c = await s.client();
      c.send({ type: 'ping' });
      assert.deepEqual(await c.next(), { type: 'pong' });
      c.send({ type: 'ping', id: 'abc' });
      assert.deepEqual(await c.next(), { type: 'pong', id: 'abc' });
      c.send({ type: 'ping', id: 42 });
      assert.deepEqual(await c.next(), { type: 'pong', id: 42 });
    } finally {
      await s.close();
    }
  });

  it('subscribe, message, unsubscribe', T, async () => {
    const s = await channelServer(CHAT);
    try {
      const c = await s.client();
      const sub = await c.subscribe('ticker');
      assert.equal(sub.topic, 'ticker');
      assert.equal(sub.seq, 0);
      assert.equal(sub.recovered, false);
      assert.equal(typeof sub.epoch, 'string');
      assert.ok(sub.epoch!.length > 0);
      assert.deepEqual(Object.keys(sub).sort(), ['epoch', 'recovered', 'seq', 'topic', 'type']);
      assert.equal(s.channel.subscriberCount('ticker'), 1);

      assert.equal(s.channel.publish('ticker', { type: 'tick', value: 1 }), 1);
      assert.deepEqual(await c.next(), { type: 'message', topic: 'ticker', seq: 1, data: { type: 'tick', value: 1 } });
      assert.equal(c.raw.at(-1), '{"type":"message","topic":"ticker","seq":1,"data":{"type":"tick","value":1}}');
      s.channel.publish('ticker', 'two');
      s.channel.publish('ticker', null);
      assert.deepEqual(await c.take(2), [
        { type: 'message', topic: 'ticker', seq: 2, data: 'two' },
        { type: 'message', topic: 'ticker', seq: 3, data: null },
      ]);
      assert.deepEqual(s.channel.position('ticker'), { epoch: sub.epoch, seq: 3 });

      c.send({ type: 'unsubscribe', topic: 'ticker' });
      assert.deepEqual(await c.next(), { type: 'unsubscribed', topic: 'ticker' });
      assert.equal(s.channel.subscriberCount('ticker'), 0);
      s.channel.publish('ticker', 'after');
      assert.deepEqual(await c.drain(), []);
      // Unsubscribing again is not an error.
      c.send({ type: 'unsubscribe', topic: 'ticker' });
      assert.deepEqual(await c.next(), { type: 'unsubscribed', topic: 'ticker' });
    } finally {
      await s.close();
    }
  });

  it('a client publish reaches every subscriber, the sender included, with its seq', T, async () => {
    const s = await channelServer(CHAT);
    try {
      const [alice, bob, carol] = await Promise.all([s.client(), s.client(), s.client()]);
      await alice.subscribe('chat');
      await bob.subscribe('chat');
      const me = await alice.hello('alice');
      alice.send({ type: 'publish', topic: 'chat', data: { text: 'hi' } });
      const expected = { type: 'message', topic: 'chat', seq: 1, from: me, data: { text: 'hi' } };
      assert.deepEqual(await alice.next(), expected);
      assert.deepEqual(await bob.next(), expected);
      // Every recipient got the same bytes; carol (not subscribed) got nothing.
      assert.equal(alice.raw.at(-1), bob.raw.at(-1));
      assert.deepEqual(await carol.drain(), []);
      // Publishing does not need a subscription (nor a hello: then `from` has no nick).
      carol.send({ type: 'publish', topic: 'chat', data: 'from carol' });
      const fromCarol = await bob.next();
      assert.deepEqual(fromCarol, {
        type: 'message',
        topic: 'chat',
        seq: 2,
        from: { id: fromCarol.from!.id },
        data: 'from carol',
      });
      assert.equal(typeof fromCarol.from.id, 'string');
      assert.notEqual(fromCarol.from.id, me.id);
      assert.deepEqual(await carol.drain(), []);
    } finally {
      await s.close();
    }
  });

  it('a subscribe and a publish in one TCP segment: the publish is delivered after subscribed', T, async () => {
    const s = await channelServer(CHAT);
    try {
      s.channel.publish('chat', 'old');
      const { epoch } = s.channel.position('chat');
      const raw = await RawClient.connect(s.port, upgradeRequest('/channel'));
      assert.equal(raw.status, 101);
      const text = (value: object): Buffer => clientFrame({ opcode: 0x1, payload: JSON.stringify(value) });
      raw.write(
        Buffer.concat([
          text({ type: 'subscribe', topic: 'chat', since: 0, epoch }),
          text({ type: 'publish', topic: 'chat', data: 'mine' }),
        ]),
      );
      await raw.until(() => raw.frames().length >= 4);
      const got = raw.frames().map((f) => JSON.parse(f.payload.toString()) as Msg);
      assert.equal(got.shift()?.type, 'limits');
      assert.equal(typeof got[2]?.from?.id, 'string');
      assert.deepEqual(got, [
        { type: 'subscribed', topic: 'chat', epoch, seq: 1, recovered: true },
        { type: 'message', topic: 'chat', seq: 1, data: 'old' },
        { type: 'message', topic: 'chat', seq: 2, from: { id: got[2].from!.id }, data: 'mine' },
      ]);
      raw.destroy();
    } finally {
      await s.close();
    }
  });

  it('a repeated subscribe is answered again and does not double delivery', T, async () => {
    const s = await channelServer(CHAT);
    try {
      const c = await s.client();
      const first = await c.subscribe('chat');
      const second = await c.subscribe('chat');
      assert.equal(second.epoch, first.epoch);
      assert.equal(s.channel.subscriberCount('chat'), 1);
      s.channel.publish('chat', 'once');
      assert.deepEqual(seqs(await c.drain()), [1]);
    } finally {
      await s.close();
    }
  });

  it('channel topics are apart from raw ws.subscribe() topics of the same name', T, async () => {
    const s = await channelServer(CHAT);
    try {
      const rawSide = once(s.wss, 'connection') as Promise<[WebSocket]>;
      const raw = await s.client();
      const [rawServerSide] = await rawSide;
      rawServerSide.subscribe('chat');
      const c = await s.client();
      await c.subscribe('chat');
      s.channel.publish('chat', 'channel');
      s.wss.publish('chat', '{"type":"raw"}');
      assert.deepEqual(seqs(await c.drain()), [1]);
      // The raw subscriber got the raw publish only.
      assert.deepEqual(await raw.drain(), [{ type: 'raw' }]);
    } finally {
      await s.close();
    }
  });

  it('a closed connection leaves its channel topics', T, async () => {
    const s = await channelServer(CHAT);
    try {
      const c = await s.client();
      await c.subscribe('chat');
      await c.subscribe('ticker');
      assert.equal(s.channel.subscriberCount('chat'), 1);
      c.ws.close(1000);
      await c.closed();
      const deadline = Date.now() + WAIT_MS;
      while (s.channel.subscriberCount('chat') + s.channel.subscriberCount('ticker') > 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      assert.equal(s.channel.subscriberCount('chat'), 0);
      assert.equal(s.channel.subscriberCount('ticker'), 0);
    } finally {
      await s.close();
    }
  });
});

describe('channel protocol: recovery', () => {
  it('returns exactly the missed range, as the bytes first sent, then live messages', T, async () => {
    const s = await channelServer(CHAT);
    try {
      const watcher = await s.client();
      await watcher.subscribe('chat');
      const a = await s.client();
      const sub = await a.subscribe('chat');
      for (let i = 1; i <= 3; i++) s.channel.publish('chat', { n: i });
      assert.deepEqual(seqs(await a.take(3)), [1, 2, 3]);
      a.close();
      for (let i = 4; i <= 8; i++) s.channel.publish('chat', { n: i });

      const b = await s.client();
      const again = await b.subscribe('chat', 3, sub.epoch);
      assert.deepEqual(again, { type: 'subscribed', topic: 'chat', epoch: sub.epoch, seq: 8, recovered: true });
      const missed = await b.take(5);
      assert.deepEqual(seqs(missed), [4, 5, 6, 7, 8]);
      assert.deepEqual(
        missed.map((m) => m.data),
        [{ n: 4 }, { n: 5 }, { n: 6 }, { n: 7 }, { n: 8 }],
      );
      // Replayed from history as published: byte for byte what live subscribers got.
      await watcher.take(8);
      assert.deepEqual(b.raw.slice(1), watcher.raw.slice(4, 9));
      s.channel.publish('chat', { n: 9 });
      assert.deepEqual(seqs(await b.drain()), [9]);
    } finally {
      await s.close();
    }
  });

  it('recovered: true with nothing to replay when the client is up to date', T, async () => {
    const s = await channelServer(CHAT);
    try {
      for (let i = 0; i < 4; i++) s.channel.publish('chat', i);
      const { epoch, seq } = s.channel.position('chat');
      const c = await s.client();
      const sub = await c.subscribe('chat', seq, epoch);
      assert.equal(sub.recovered, true);
      assert.equal(sub.seq, 4);
      assert.deepEqual(await c.drain(), []);
      // Recovering from seq 0 of this epoch replays everything the history holds.
      const d = await s.client();
      assert.equal((await d.subscribe('chat', 0, epoch)).recovered, true);
      assert.deepEqual(seqs(await d.drain()), [1, 2, 3, 4]);
    } finally {
      await s.close();
    }
  });

  it('recovered: false for a gap older than the history, then live only', T, async () => {
    const s = await channelServer({ topics: { small: { history: { size: 5 } } }, rateLimit: false });
    try {
      const { epoch } = s.channel.position('small');
      for (let i = 0; i < 20; i++) s.channel.publish('small', i);
      const c = await s.client();
      // Oldest kept is seq 16: since 15 is the earliest that can be recovered.
      const lost = await c.subscribe('small', 14, epoch);
      assert.deepEqual(lost, { type: 'subscribed', topic: 'small', epoch, seq: 20, recovered: false });
      assert.deepEqual(await c.drain(), []);
      s.channel.publish('small', 'live');
      assert.deepEqual(seqs(await c.drain()), [21]);
      const d = await s.client();
      assert.equal((await d.subscribe('small', 16, epoch)).recovered, true);
      assert.deepEqual(seqs(await d.drain()), [17, 18, 19, 20, 21]);
    } finally {
      await s.close();
    }
  });

  it('recovered: false for another epoch, a seq from the future, or a topic without history', T, async () => {
    const s = await channelServer({ topics: { chat: { history: { size: 100 } }, plain: {} }, rateLimit: false });
    try {
      s.channel.publish('chat', 'a');
      s.channel.publish('chat', 'b');
      const { epoch } = s.channel.position('chat');
      const c = await s.client();
      const other = await c.subscribe('chat', 1, 'another-epoch');
      assert.equal(other.recovered, false);
      assert.equal(other.epoch, epoch);
      assert.equal(other.seq, 2);
      assert.deepEqual(await c.drain(), []);
      const future = await c.subscribe('chat', 3, epoch);
      assert.equal(future.recovered, false);
      assert.deepEqual(await c.drain(), []);

      const plain = await c.subscribe('plain');
      s.channel.publish('plain', 'x');
      assert.deepEqual(seqs(await c.drain()), [1]);
      const noHistory = await c.subscribe('plain', 0, plain.epoch);
      assert.equal(noHistory.recovered, false);
      assert.deepEqual(await c.drain(), []);
    } finally {
      await s.close();
    }
  });

  it('a new server (another epoch) is reported as recovered: false', T, async () => {
    const first = await channelServer(CHAT);
    const second = await channelServer(CHAT);
    try {
      first.channel.publish('chat', 1);
      const { epoch } = first.channel.position('chat');
      second.channel.publish('chat', 1);
      const c = await second.client();
      const sub = await c.subscribe('chat', 1, epoch);
      assert.equal(sub.recovered, false);
      assert.notEqual(sub.epoch, epoch);
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('no gap and no duplicate when clients reconnect and recover while publishes continue', T, async () => {
    // No recovery budget: on a slow machine a client can fall further behind than the default
    // budget covers; this test is about gaps and duplicates, not the budget (tested below).
    const s = await channelServer({
      topics: { feed: { history: { size: 100_000 } } },
      rateLimit: false,
      recoveryBudget: false,
    });
    const TOTAL = 3000;
    let published = 0;
    let stopped = false;
    const start = Date.now();
    // About 4 publishes a millisecond, from every turn of the event loop (setImmediate), so
    // publishes land between any two I/O callbacks, also between a subscribe and anything it defers.
    const tick = (): void => {
      const due = Math.min(TOTAL, (Date.now() - start) * 4);
      while (published < due) s.channel.publish('feed', { n: ++published });
      if (published < TOTAL && !stopped) setImmediate(tick);
    };
    setImmediate(tick);
    try {
      const follow = async (rounds: number): Promise<{ seen: number[]; replayed: number }> => {
        const seen: number[] = [];
        let replayed = 0;
        let position: { epoch: string; seq: number } | undefined;
        for (let round = 0; round < rounds; round++) {
          const c = await Client.open(s.port);
          const sub =
            position === undefined
              ? await c.subscribe('feed')
              : await c.subscribe('feed', position.seq, position.epoch);
          if (position !== undefined) assert.equal(sub.recovered, true, `round ${round}`);
          // Nothing between the subscribe position and what follows is missing.
          if (position === undefined) seen.push(sub.seq!);
          const target = round === rounds - 1 ? TOTAL : Math.min(TOTAL, sub.seq! + 40);
          // Up to date already (the publisher may have finished) or once `target` arrived.
          const last = position?.seq ?? sub.seq!;
          await c.until(() => (c.inbox.at(-1)?.seq ?? last) >= target, `seq ${target}`, 8000);
          const got = seqs(c.inbox.splice(0));
          replayed += got.filter((q) => q <= sub.seq!).length;
          seen.push(...got);
          position = { epoch: sub.epoch!, seq: seen.at(-1)! };
          c.close();
          // Let some publishes happen while disconnected.
          await new Promise((r) => setTimeout(r, 3));
        }
        return { seen, replayed };
      };
      const results = await Promise.all([follow(6), follow(6), follow(3)]);
      for (const { seen, replayed } of results) {
        assert.deepEqual(seen, range(seen[0], TOTAL), 'consecutive seqs from the first subscribe to the last publish');
        assert.ok(replayed > 0, 'some messages were recovered from history');
      }
    } finally {
      stopped = true;
      await s.close();
    }
  });
});

describe('channel protocol: errors', () => {
  it('every malformed message gets its error code, and the connection keeps working', T, async () => {
    const s = await channelServer({ ...CHAT, maxMessageBytes: 200 });
    try {
      const c = await s.client();
      await c.expectError('not json', 'bad_json');
      await c.expectError('{"type":"ping"', 'bad_json');
      await c.expectError('', 'bad_json');
      for (const notObject of ['[1,2]', '"ping"', 'null', '42', 'true']) await c.expectError(notObject, 'bad_message');
      await c.expectError({}, 'bad_message');
      await c.expectError({ type: 5 }, 'bad_message');
      await c.expectError({ type: 'helo' }, 'unknown_type');
      await c.expectError({ type: 'SUBSCRIBE', topic: 'chat' }, 'unknown_type');
      // subscribe
      await c.expectError({ type: 'subscribe' }, 'bad_message');
      await c.expectError({ type: 'subscribe', topic: '' }, 'bad_message');
      await c.expectError({ type: 'subscribe', topic: 7 }, 'bad_message');
      await c.expectError({ type: 'subscribe', topic: 'chat', since: 1 }, 'bad_message');
      await c.expectError({ type: 'subscribe', topic: 'chat', epoch: 'e' }, 'bad_message');
      await c.expectError({ type: 'subscribe', topic: 'chat', since: -1, epoch: 'e' }, 'bad_message');
      await c.expectError({ type: 'subscribe', topic: 'chat', since: 1.5, epoch: 'e' }, 'bad_message');
      await c.expectError({ type: 'subscribe', topic: 'chat', since: '1', epoch: 'e' }, 'bad_message');
      await c.expectError({ type: 'subscribe', topic: 'chat', since: 1, epoch: 5 }, 'bad_message');
      const unknown = await c.expectError({ type: 'subscribe', topic: 'nope' }, 'unknown_topic');
      assert.equal(unknown.topic, 'nope');
      assert.equal(s.channel.subscriberCount('chat'), 0, 'failed subscribes subscribe nothing');
      // unsubscribe
      await c.expectError({ type: 'unsubscribe' }, 'bad_message');
      await c.expectError({ type: 'unsubscribe', topic: 'nope' }, 'unknown_topic');
      // publish
      await c.expectError({ type: 'publish', topic: 'chat' }, 'bad_message');
      await c.expectError({ type: 'publish', data: 1 }, 'bad_message');
      await c.expectError({ type: 'publish', topic: 'nope', data: 1 }, 'unknown_topic');
      await c.expectError({ type: 'publish', topic: 'ticker', data: 1 }, 'forbidden');
      await c.expectError({ type: 'publish', topic: 'chat', data: 1, from: { id: 'x' } }, 'identity');
      await c.expectError({ type: 'publish', topic: 'chat', data: 1, nick: 'x' }, 'identity');
      for (const id of [5, '', 'x'.repeat(129), { a: 1 }, true])
        await c.expectError({ type: 'publish', topic: 'chat', data: 1, id }, 'bad_message');
      // An error about a publish with an id names the id.
      const refused = await c.expectError({ type: 'publish', topic: 'ticker', data: 1, id: 'p1' }, 'forbidden');
      assert.equal(refused.id, 'p1');
      assert.equal(refused.topic, 'ticker');
      // batch
      await c.expectError({ type: 'batch' }, 'bad_message');
      await c.expectError({ type: 'batch', publishes: {} }, 'bad_message');
      await c.expectError({ type: 'batch', publishes: [] }, 'bad_message');
      await c.expectError({ type: 'batch', publishes: [1] }, 'bad_message');
      await c.expectError({ type: 'batch', publishes: [{ topic: 'chat', data: 1 }] }, 'bad_message');
      await c.expectError({ type: 'batch', publishes: [{ topic: 'chat', id: 'a' }] }, 'bad_message');
      await c.expectError({ type: 'batch', publishes: [{ data: 1, id: 'a' }] }, 'bad_message');
      await c.expectError({ type: 'batch', publishes: [{ topic: '', data: 1, id: 'a' }] }, 'bad_message');
      // hello
      await c.expectError({ type: 'hello' }, 'bad_message');
      for (const nick of [5, null, '', '   ', 'a\nb', 'tab\there', '\u0085', 'x'.repeat(65)])
        await c.expectError({ type: 'hello', nick }, 'bad_message');
      // ping
      await c.expectError({ type: 'ping', id: { a: 1 } }, 'bad_message');
      await c.expectError({ type: 'ping', id: [1] }, 'bad_message');
      // limits
      await c.expectError({ type: 'ping', id: 'x'.repeat(200) }, 'too_big');
      c.ws.send(Buffer.from('{"type":"ping"}'), { binary: true });
      assert.equal((await c.next()).code, 'binary');
      // Nothing above was published or subscribed, and the connection still works.
      assert.deepEqual(s.channel.position('ticker').seq, 0);
      assert.deepEqual(s.channel.position('chat').seq, 0);
      assert.deepEqual(await c.drain(), []);
      await c.subscribe('chat');
      c.send({ type: 'publish', topic: 'chat', data: 'ok', extra: 'ignored' });
      assert.deepEqual(seqs(await c.drain()), [1]);
      assert.equal(c.closeCode, undefined);
    } finally {
      await s.close();
    }
  });

  it('maxMessageBytes is the largest message accepted', T, async () => {
    const s = await channelServer({ ...CHAT, maxMessageBytes: 64 });
    try {
      const c = await s.client();
      const fits = JSON.stringify({ type: 'ping', id: '' });
      const exact = JSON.stringify({ type: 'ping', id: 'x'.repeat(64 - fits.length) });
      assert.equal(Buffer.byteLength(exact), 64);
      c.send(exact);
      assert.equal((await c.next()).type, 'pong');
      await c.expectError(JSON.stringify({ type: 'ping', id: 'x'.repeat(65 - fits.length) }), 'too_big');
      // Counted in bytes, not characters.
      await c.expectError(JSON.stringify({ type: 'ping', id: 'é'.repeat(64 - fits.length) }), 'too_big');
    } finally {
      await s.close();
    }
  });

  it('allowPublish decides who may publish where; unknown topics when allowed', T, async () => {
    const asked: string[] = [];
    const s = await channelServer({
      topics: { chat: {}, ticker: { publish: false } },
      allowUnknownTopics: true,
      allowPublish: (_ws, topic) => {
        asked.push(topic);
        return topic !== 'chat';
      },
      rateLimit: false,
      maxErrors: 100,
    });
    try {
      const c = await s.client();
      await c.expectError({ type: 'publish', topic: 'chat', data: 1 }, 'forbidden');
      // allowPublish overrides the topic's `publish: false`.
      c.send({ type: 'publish', topic: 'ticker', data: 1 });
      const room = await c.subscribe('room-42');
      assert.equal(room.recovered, false);
      c.send({ type: 'publish', topic: 'room-42', data: 'hello' });
      const { id } = s.channel.identity([...s.wss.clients][0])!;
      assert.deepEqual(await c.drain(), [{ type: 'message', topic: 'room-42', seq: 1, from: { id }, data: 'hello' }]);
      assert.deepEqual(asked, ['chat', 'ticker', 'room-42']);
      await c.expectError({ type: 'subscribe', topic: 'x'.repeat(257) }, 'bad_message');
    } finally {
      await s.close();
    }
  });

  it('by default clients may not publish to unknown topics', T, async () => {
    const s = await channelServer({ topics: {}, allowUnknownTopics: true, rateLimit: false });
    try {
      const c = await s.client();
      await c.subscribe('anything');
      await c.expectError({ type: 'publish', topic: 'anything', data: 1 }, 'forbidden');
      s.channel.publish('anything', 'from the server');
      assert.deepEqual(seqs(await c.drain()), [1]);
    } finally {
      await s.close();
    }
  });

  it('an application callback that throws gives that client an internal error, not a crash', T, async () => {
    const s = await channelServer({
      topics: { chat: {} },
      allowPublish: () => {
        throw new Error('boom in allowPublish');
      },
      rateLimit: false,
    });
    try {
      const warned = once(process, 'warning') as Promise<[Error]>;
      const c = await s.client();
      await c.expectError({ type: 'publish', topic: 'chat', data: 1 }, 'internal');
      const [warning] = await warned;
      assert.match(warning.message, /boom in allowPublish/);
      c.send({ type: 'ping' });
      assert.deepEqual(await c.next(), { type: 'pong' });
      // A publish with an id: the answer names it, so the client's promise settles.
      const named = await c.expectError({ type: 'publish', topic: 'chat', data: 2, id: 'p.1' }, 'internal');
      assert.deepEqual(
        { id: named.id, topic: named.topic, outcome: named.outcome },
        { id: 'p.1', topic: 'chat', outcome: undefined },
        `the internal error names the publish: ${JSON.stringify(named)}`,
      );
    } finally {
      await s.close();
    }
  });

  it('closes with 1008 after maxErrors errors and ignores what follows', T, async () => {
    const s = await channelServer({ ...CHAT, maxErrors: 3 });
    try {
      const c = await s.client();
      await c.expectError('x', 'bad_json');
      await c.expectError({ type: 'nope' }, 'unknown_type');
      c.send({ type: 'ping' });
      assert.equal((await c.next()).type, 'pong', 'good messages do not count');
      c.send('{');
      c.send('{');
      c.send({ type: 'ping' });
      assert.equal(await c.closed(), 1008);
      assert.equal(c.closeReason, 'too many errors');
      assert.deepEqual(
        c.inbox.map((m) => m.code),
        ['bad_json'],
        'the third error is answered, nothing after it',
      );
    } finally {
      await s.close();
    }
  });

  it('rate limit: a burst of `messages`, then rate_limited, refilled over time', T, async (t) => {
    // The bucket refills by Date.now(), which here moves only when the test ticks it: a slow
    // or busy machine cannot refill it early (real sleeps made this depend on the machine).
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const s = await channelServer({ ...CHAT, rateLimit: { messages: 3, perMs: 900 } });
    try {
      const c = await s.client();
      // Three refusals at most in one 900 ms window (more would close it: see the 1013 test).
      for (let i = 0; i < 4; i++) c.send({ type: 'ping', id: i });
      const replies = await c.take(4);
      assert.deepEqual(
        replies.map((m) => m.type),
        ['pong', 'pong', 'pong', 'error'],
      );
      assert.equal(replies[3].code, 'rate_limited');
      // One token comes back every 300 ms.
      assert.equal(replies[3].retryAfter, 300);
      // However long the real wait, no time passed for the bucket: still empty.
      await new Promise((r) => setTimeout(r, 50));
      c.send({ type: 'ping', id: 'no time passed' });
      assert.equal((await c.take(1))[0].code, 'rate_limited');
      // One token per 300 ms: after 420 ms one more message fits, not two.
      t.mock.timers.tick(420);
      for (let i = 0; i < 2; i++) c.send({ type: 'ping', id: i });
      const later = await c.take(2);
      assert.deepEqual(
        later.map((m) => m.code ?? m.type),
        ['pong', 'rate_limited'],
      );
      // 0.4 token left; 200 ms more make it over one.
      t.mock.timers.tick(200);
      c.send({ type: 'ping', id: 'refilled' });
      assert.equal((await c.take(1))[0].type, 'pong');
    } finally {
      await s.close();
    }
  });

  it(
    'a flooding client is closed with 1013 and a retry hint past twice the rate, not for errors (default limits)',
    T,
    async (t) => {
      // Date stands still (the test ticks it): the whole flood lands in one instant for the bucket.
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
      const s = await channelServer({ topics: { chat: {} } });
      try {
        const c = await s.client();
        assert.deepEqual(c.limits!.rate, { messages: 20, perMs: 1000 });
        for (let i = 0; i < 20; i++) c.send({ type: 'ping', id: i });
        for (let i = 0; i < 80; i++) c.send({ type: 'publish', topic: 'chat', data: i, id: `p${i}` });
        assert.equal(await c.closed(), 1013);
        assert.equal(c.closeReason, 'rate limited; retry after 1000 ms');
        assert.equal(c.inbox.filter((m) => m.type === 'pong').length, 20);
        // 21 refusals (more than `messages` in one window) close it; each was answered, none
        // counted toward maxErrors (5), so it was not closed with 1008 before.
        const errors = c.inbox.filter((m) => m.type === 'error');
        assert.equal(errors.length, 21);
        errors.forEach((m, i) => {
          assert.deepEqual(
            { code: m.code, retryAfter: m.retryAfter, id: m.id, topic: m.topic },
            { code: 'rate_limited', retryAfter: 50, id: `p${i}`, topic: 'chat' },
          );
        });
        assert.equal(s.channel.position('chat').seq, 0, 'nothing refused was published');
      } finally {
        await s.close();
      }
    },
  );

  it('a client refused up to `messages` times per window stays open (the margin)', T, async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const s = await channelServer({ ...CHAT, rateLimit: { messages: 3, perMs: 900 }, maxErrors: 2 });
    try {
      const c = await s.client();
      for (let round = 0; round < 3; round++) {
        // Twice the rate: 3 answered, 3 refused, every window. A refused message is not read
        // beyond what names a publish: invalid JSON is refused for the rate, not as bad_json.
        for (let i = 0; i < 3; i++) c.send({ type: 'ping', id: i });
        c.send('not json');
        c.send({ type: 'publish', topic: 'chat', data: round, id: `r${round}` });
        c.send({ type: 'publish', topic: 'chat', data: round }); // no id: none in the error
        const replies = await c.take(6);
        assert.deepEqual(
          replies.map((m) => m.code ?? m.type),
          ['pong', 'pong', 'pong', 'rate_limited', 'rate_limited', 'rate_limited'],
        );
        assert.deepEqual(
          replies.slice(3).map((m) => m.id),
          [undefined, `r${round}`, undefined],
        );
        t.mock.timers.tick(900);
      }
      assert.equal(c.closeCode, undefined);
      // One more refusal than that in a window, and it is closed.
      for (let i = 0; i < 7; i++) c.send({ type: 'ping', id: i });
      assert.equal(await c.closed(), 1013);
      assert.match(c.closeReason, /^rate limited; retry after \d+ ms$/);
    } finally {
      await s.close();
    }
  });

  it('a refused ping or publish with an id is named: rate_limited and too_big carry its id', T, async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const s = await channelServer({ ...CHAT, rateLimit: { messages: 3, perMs: 1000 }, maxMessageBytes: 200 });
    try {
      const c = await s.client();
      for (let i = 1; i <= 3; i++) c.send({ type: 'ping', id: i });
      // The bucket is empty (three refusals in the window: not enough to be closed): a client waits for the answer to its own ping (and would reconnect
      // without one), so the refusal names it, a number or a string as sent.
      c.send({ type: 'ping', id: 7 });
      c.send({ type: 'ping', id: 'beat-8' });
      c.send({ type: 'ping' });
      const replies = await c.take(6);
      assert.deepEqual(
        replies.map((m) => [m.type, m.code, m.id, m.topic]),
        [
          ['pong', undefined, 1, undefined],
          ['pong', undefined, 2, undefined],
          ['pong', undefined, 3, undefined],
          ['error', 'rate_limited', 7, undefined],
          ['error', 'rate_limited', 'beat-8', undefined],
          ['error', 'rate_limited', undefined, undefined],
        ],
      );
      t.mock.timers.tick(1000);
      // Over maxMessageBytes: refused too_big, and named too (up to 4 x the limit).
      const padding = 'x'.repeat(300);
      const big = await c.expectError({ type: 'publish', topic: 'chat', data: padding, id: 'b.1' }, 'too_big');
      assert.deepEqual({ id: big.id, topic: big.topic }, { id: 'b.1', topic: 'chat' });
      const bigPing = await c.expectError({ type: 'ping', id: 9, padding }, 'too_big');
      assert.equal(bigPing.id, 9);
      t.mock.timers.tick(1000);
      const huge = await c.expectError({ type: 'ping', id: 10, padding: 'x'.repeat(800) }, 'too_big');
      assert.equal(huge.id, undefined, 'over 4 x maxMessageBytes the message is not read');
      assert.equal(s.channel.position('chat').seq, 0, 'nothing refused was published');
    } finally {
      await s.close();
    }
  });

  it('one misbehaving client does not affect the others', T, async () => {
    const s = await channelServer({ topics: { chat: { history: { size: 10 } } }, maxErrors: 5 });
    try {
      const [good, bad] = await Promise.all([s.client(), s.client()]);
      await good.subscribe('chat');
      await bad.subscribe('chat');
      bad.send({ type: 'publish', topic: 'chat', data: 'before' });
      for (let i = 0; i < 10; i++)
        bad.send(
          i % 2 === 0 ? '{"type":"publish","topic":"chat","data":' : Buffer.from([1, 2, 3]).toString('latin1') + '{',
        );
      assert.equal(await bad.closed(), 1008);
      good.send({ type: 'publish', topic: 'chat', data: 'after' });
      const got = await good.drain();
      assert.deepEqual(
        got.map((m) => m.data),
        ['before', 'after'],
      );
      assert.deepEqual(seqs(got), [1, 2]);
      assert.equal(s.channel.subscriberCount('chat'), 1);
    } finally {
      await s.close();
    }
  });
});

describe('channel protocol: identity', () => {
  const GUARDED = ['id', 'nick', 'from'];
  const ROOM: ChannelOptions = {
    topics: {
      chat: { history: { size: 100 }, identityFields: GUARDED },
      presence: { history: false, identityFields: GUARDED },
    },
    rateLimit: false,
    maxErrors: 1000,
  };

  it(
    'hello: each connection gets an id from the server, stamped with its nick as `from` on what it publishes',
    T,
    async () => {
      const s = await channelServer(ROOM);
      try {
        const [ada, grace] = await Promise.all([s.client(), s.client()]);
        await ada.subscribe('chat');
        await grace.subscribe('chat');
        const a = await ada.hello('ada');
        const g = await grace.hello('grace');
        assert.equal(a.nick, 'ada');
        assert.match(a.id, /^[A-Za-z0-9_-]{12}$/);
        assert.notEqual(a.id, g.id);

        ada.send({ type: 'publish', topic: 'chat', data: { text: 'hi' } });
        const expected = {
          type: 'message',
          topic: 'chat',
          seq: 1,
          from: { id: a.id, nick: 'ada' },
          data: { text: 'hi' },
        };
        assert.deepEqual(await grace.next(), expected);
        assert.deepEqual(await ada.next(), expected);
        assert.equal(
          grace.raw.at(-1),
          `{"type":"message","topic":"chat","seq":1,"from":{"id":"${a.id}","nick":"ada"},"data":{"text":"hi"}}`,
        );

        // A second hello changes the nick, not the id; what follows carries the new one.
        assert.deepEqual(await ada.hello('Ada Lovelace'), { id: a.id, nick: 'Ada Lovelace' });
        ada.send({ type: 'publish', topic: 'chat', data: { text: 'again' } });
        assert.deepEqual((await grace.next()).from, { id: a.id, nick: 'Ada Lovelace' });
        await ada.take(1);

        // The server's own messages have no sender; it may speak for a connection it accepted.
        s.channel.publish('chat', 'from the server');
        assert.deepEqual(await grace.next(), { type: 'message', topic: 'chat', seq: 3, data: 'from the server' });
        const [adaSide] = [...s.wss.clients].filter((ws) => s.channel.identity(ws)!.id === a.id);
        assert.deepEqual(s.channel.identity(adaSide), { id: a.id, nick: 'Ada Lovelace' });
        s.channel.publish('chat', { left: true }, { from: adaSide });
        assert.deepEqual(await grace.next(), {
          type: 'message',
          topic: 'chat',
          seq: 4,
          from: { id: a.id, nick: 'Ada Lovelace' },
          data: { left: true },
        });

        // Recovery replays the sender as it was stamped.
        const late = await s.client();
        const { epoch } = s.channel.position('chat');
        await late.subscribe('chat', 0, epoch);
        assert.deepEqual(
          (await late.take(4)).map((m) => m.from?.nick ?? null),
          ['ada', 'Ada Lovelace', null, 'Ada Lovelace'],
        );
      } finally {
        await s.close();
      }
    },
  );

  it(
    'a client cannot join, leave or speak for another connection: such publishes are refused with `identity`',
    T,
    async () => {
      const s = await channelServer(ROOM);
      try {
        const [ada, mallory] = await Promise.all([s.client(), s.client()]);
        for (const c of [ada, mallory]) {
          await c.subscribe('chat');
          await c.subscribe('presence');
        }
        const a = await ada.hello('ada');
        const m = await mallory.hello('mallory');
        const ADA = { id: a.id, nick: 'ada' };
        const attempts: object[] = [
          // Presence entries naming someone else, in the data or beside it.
          { type: 'publish', topic: 'presence', data: { ...ADA, state: 'leave' } },
          { type: 'publish', topic: 'presence', data: { id: a.id, state: 'join' } },
          { type: 'publish', topic: 'presence', data: { state: 'leave' }, from: ADA },
          // Chat under another nick or id.
          { type: 'publish', topic: 'chat', data: { nick: 'ada', text: 'I am ada' } },
          { type: 'publish', topic: 'chat', data: { from: ADA, text: 'I am ada' } },
          { type: 'publish', topic: 'chat', data: { text: 'I am ada' }, nick: 'ada' },
          { type: 'publish', topic: 'chat', data: { text: 'I am ada' }, from: ADA },
        ];
        for (const attempt of attempts) {
          const error = await mallory.expectError(attempt, 'identity');
          assert.equal(error.topic, (attempt as { topic: string }).topic);
        }
        // None of it reached anyone.
        assert.deepEqual(await ada.drain(), []);
        assert.equal(s.channel.position('chat').seq, 0);

        // What mallory may say goes out as mallory's, whatever else the data holds.
        mallory.send({ type: 'publish', topic: 'presence', data: { state: 'leave' } });
        mallory.send({ type: 'publish', topic: 'chat', data: { text: 'hello', user: 'ada' } });
        const got = await ada.take(2);
        assert.deepEqual(got, [
          { type: 'message', topic: 'presence', seq: 1, from: m, data: { state: 'leave' } },
          { type: 'message', topic: 'chat', seq: 1, from: m, data: { text: 'hello', user: 'ada' } },
        ]);
        // Arrays and other values are not objects with fields: nothing to claim there.
        mallory.send({ type: 'publish', topic: 'chat', data: ['nick', 'ada'] });
        assert.deepEqual((await ada.next()).from, m);
        // `id` beside `data` is the publish's own id (acknowledged), never a sender's.
        mallory.send({ type: 'publish', topic: 'presence', data: { state: 'leave' }, id: a.id });
        assert.deepEqual(await ada.next(), {
          type: 'message',
          topic: 'presence',
          seq: 2,
          from: m,
          data: { state: 'leave' },
        });
      } finally {
        await s.close();
      }
    },
  );

  it('checks its arguments: publish({ from }) takes a connection of this channel', T, async () => {
    const s = await channelServer(ROOM);
    const other = await channelServer(ROOM);
    try {
      const side = once(other.wss, 'connection') as Promise<[WebSocket]>;
      await other.client();
      const [foreign] = await side;
      assert.throws(() => s.channel.publish('chat', 1, { from: foreign }), TypeError);
      assert.equal(s.channel.identity(foreign), undefined);
      assert.equal(s.channel.position('chat').seq, 0);
    } finally {
      await other.close();
      await s.close();
    }
  });
});

describe('channel protocol: recovery budget', () => {
  it(
    'a hostile client spamming full-history subscribes gets a bounded number of bytes (default limits)',
    { timeout: 30_000 },
    async (t) => {
      // Default rate limit and recovery budget, both refilled by Date.now(), which here moves only
      // when the test ticks it: each request goes once the server answered the one before, 55 ms
      // later by that clock. In real time one read delayed by over 5 ms on a busy machine made a
      // request arrive early for the bucket (rate_limited).
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
      // `small` keeps a full history that fits the budget once (about 24 KB); `big`'s (about
      // 110 KB) never does.
      const s = await channelServer({ topics: { small: { history: { size: 100 } }, big: { history: { size: 100 } } } });
      try {
        for (let i = 0; i < 100; i++) {
          s.channel.publish('small', { text: 'x'.repeat(180) });
          s.channel.publish('big', { text: 'x'.repeat(1000) });
        }
        const epochs = { small: s.channel.position('small').epoch, big: s.channel.position('big').epoch };
        const raw = await RawClient.connect(s.port, upgradeRequest('/channel'));
        assert.equal(raw.status, 101);
        const request = (topic: 'small' | 'big'): Buffer =>
          clientFrame({
            opcode: 0x1,
            payload: JSON.stringify({ type: 'subscribe', topic, since: 0, epoch: epochs[topic] }),
          });
        /** Requests answered so far: each gets one subscribed or one error. */
        const answered = (): number =>
          raw.frames().filter((f) => {
            const type = (JSON.parse(f.payload.toString()) as Msg).type;
            return type === 'subscribed' || type === 'error';
          }).length;
        // As fast as the rate limit lets it (a burst of 20, then 20 a second), so it is never
        // closed for flooding: 100 requests, half for each topic.
        const REQUESTS = 100;
        for (let i = 0; i < REQUESTS; i++) {
          if (i >= 20) t.mock.timers.tick(55);
          raw.write(request(i % 2 === 0 ? 'small' : 'big'));
          if (i >= 19) await raw.until(() => answered() > i, 10_000);
        }
        t.mock.timers.tick(55);
        raw.write(clientFrame({ opcode: 0x1, payload: '{"type":"ping","id":"end"}' }));
        await raw.until(() => raw.received.includes('"id":"end"'), 10_000);
        const replies = raw.frames().map((f) => JSON.parse(f.payload.toString()) as Msg);
        assert.equal(replies.shift()?.type, 'limits');
        const sent = raw.socket.bytesWritten;
        const received = raw.socket.bytesRead;
        raw.destroy();

        const ratio = received / sent;
        console.log(
          `# spam: ${sent} bytes of requests (handshake included), ${received} bytes back: ${ratio.toFixed(1)}x`,
        );
        // Without a budget: 6.5 MB back, about 900x.
        assert.ok(ratio < 10, `amplification ${ratio.toFixed(1)}x (${sent} bytes in, ${received} out)`);
        // The first small recovery came whole; the big one never replays (it cannot fit the budget).
        const subscribed = replies.filter((m) => m.type === 'subscribed');
        assert.equal(subscribed[0].topic, 'small');
        assert.equal(subscribed[0].recovered, true);
        assert.deepEqual(seqs(replies.slice(1, 101)), range(1, 100));
        assert.ok(subscribed.filter((m) => m.topic === 'big').every((m) => m.recovered === false));
        // The rest of the small ones were refused with a time to come back, and not counted as
        // errors: the connection was never closed.
        const limited = replies.filter((m) => m.type === 'error');
        assert.ok(
          limited.length > 0 &&
            limited.every((m) => m.code === 'recovery_limited' && m.topic === 'small' && m.retryAfter! > 0),
          JSON.stringify(limited.slice(0, 3)),
        );
        assert.equal(replies.filter((m) => m.type === 'error' && m.code !== 'recovery_limited').length, 0);
        assert.equal(raw.frames().filter((f) => f.opcode === 0x8).length, 0);
      } finally {
        await s.close();
      }
    },
  );

  it('recovery fits the budget at once, is refused with retryAfter when spent, and succeeds after it', T, async () => {
    const s = await channelServer({
      ...CHAT,
      topics: { chat: { history: { size: 100 } } },
      maxErrors: 2,
      recoveryBudget: { bytes: 4000, perMs: 2000 },
    });
    try {
      // 40 messages of about 130 bytes: 20 of them fit the budget, all 40 do not.
      for (let i = 0; i < 40; i++) s.channel.publish('chat', { n: i, text: 'x'.repeat(80) });
      const { epoch } = s.channel.position('chat');
      const c = await s.client();
      // A normal reconnect: 20 missed messages come at once.
      const first = await c.subscribe('chat', 20, epoch);
      assert.equal(first.recovered, true);
      assert.deepEqual(seqs(await c.take(20)), range(21, 40));
      // Asking again at once: it does not fit what is left, so it is refused, with when to
      // come back. Refusals do not count toward maxErrors (2 here).
      for (let i = 0; i < 3; i++) {
        const refusal = await c.expectError({ type: 'subscribe', topic: 'chat', since: 20, epoch }, 'recovery_limited');
        assert.equal(refusal.topic, 'chat');
        assert.ok(refusal.retryAfter! > 0 && refusal.retryAfter! <= 2000, String(refusal.retryAfter));
      }
      const { retryAfter } = await c.expectError(
        { type: 'subscribe', topic: 'chat', since: 20, epoch },
        'recovery_limited',
      );
      await new Promise((r) => setTimeout(r, retryAfter! + 20));
      const again = await c.subscribe('chat', 20, epoch);
      assert.equal(again.recovered, true);
      assert.deepEqual(seqs(await c.take(20)), range(21, 40));
      assert.equal(c.closeCode, undefined);
      // A recovery bigger than the whole budget is never replayed: recovered false, live from here.
      const other = await s.client();
      const whole = await other.subscribe('chat', 0, epoch);
      assert.deepEqual(whole, { type: 'subscribed', topic: 'chat', epoch, seq: 40, recovered: false });
      assert.deepEqual(await other.drain(), []);
      s.channel.publish('chat', 'live');
      assert.deepEqual(seqs(await other.drain()), [41]);
    } finally {
      await s.close();
    }
  });
});

describe('channel protocol: limits, acknowledged publishes, dedup and batches', () => {
  it('the first message of every connection is `limits`, from the real settings', T, async () => {
    const s = await channelServer({ topics: { chat: {} } });
    const custom = await channelServer({
      topics: { chat: {} },
      rateLimit: false,
      maxMessageBytes: 4096,
      maxBatch: 7,
      dedup: false,
    });
    const short = await channelServer({
      topics: { chat: {} },
      rateLimit: { messages: 5, perMs: 2000 },
      dedup: { ttlMs: 30_000 },
    });
    try {
      const [a, b] = await Promise.all([s.client(), s.client()]);
      assert.equal(typeof a.limits!.dedupScope, 'string');
      assert.ok(a.limits!.dedupScope!.length >= 16, 'at least 96 random bits');
      assert.deepEqual(a.limits, {
        type: 'limits',
        rate: { messages: 20, perMs: 1000 },
        maxMessageBytes: 16384,
        maxBatch: 50,
        dedupMs: 120000,
        dedupScope: a.limits!.dedupScope,
      });
      // One memory of ids per server (its broker): the same scope for every connection.
      assert.deepEqual(b.limits, a.limits);
      assert.deepEqual((await custom.client()).limits, {
        type: 'limits',
        rate: null,
        maxMessageBytes: 4096,
        maxBatch: 7,
        dedupMs: 0,
      });
      const other = (await short.client()).limits!;
      assert.deepEqual(other.rate, { messages: 5, perMs: 2000 });
      assert.equal(other.dedupMs, 30000);
      assert.notEqual(other.dedupScope, a.limits.dedupScope, 'another server, another memory');
    } finally {
      await Promise.all([s.close(), custom.close(), short.close()]);
    }
  });

  it('a publish with an id is acked with its seq, after its message reached the sender', T, async () => {
    const s = await channelServer(CHAT);
    try {
      const [a, b] = await Promise.all([s.client(), s.client()]);
      await a.subscribe('chat');
      await b.subscribe('chat');
      const me = await a.hello('ada');
      a.send({ type: 'publish', topic: 'chat', data: 'one', id: 'Xk3_9aP2qLm0.1' });
      assert.deepEqual(await a.take(2), [
        { type: 'message', topic: 'chat', seq: 1, from: me, data: 'one' },
        { type: 'ack', id: 'Xk3_9aP2qLm0.1', topic: 'chat', seq: 1 },
      ]);
      // The id is the publisher's business: subscribers see the message as always.
      assert.deepEqual(await b.next(), { type: 'message', topic: 'chat', seq: 1, from: me, data: 'one' });
      // Not subscribed: the ack alone. `null` counts as no id: no answer.
      const c = await s.client();
      c.send({ type: 'publish', topic: 'chat', data: 'two', id: 'c.1' });
      assert.deepEqual(await c.next(), { type: 'ack', id: 'c.1', topic: 'chat', seq: 2 });
      c.send({ type: 'publish', topic: 'chat', data: 'three', id: null });
      assert.deepEqual(await c.drain(), []);
      assert.deepEqual(seqs(await b.take(2)), [2, 3]);
      // A topic without history or subscribers is numbered too when the publish has an id.
      const lone = await channelServer({ ...CHAT, allowUnknownTopics: true, allowPublish: () => true });
      try {
        const d = await lone.client();
        d.send({ type: 'publish', topic: 'nobody', data: 1, id: 'd.1' });
        d.send({ type: 'publish', topic: 'nobody', data: 2, id: 'd.2' });
        assert.deepEqual(
          (await d.take(2)).map((m) => m.seq),
          [1, 2],
        );
      } finally {
        await lone.close();
      }
    } finally {
      await s.close();
    }
  });

  it('a repeated id is answered with the original ack and duplicate: true, and published once', T, async () => {
    const s = await channelServer(CHAT);
    try {
      const [watcher, first, second] = await Promise.all([s.client(), s.client(), s.client()]);
      await watcher.subscribe('chat');
      first.send({ type: 'publish', topic: 'chat', data: 'hello', id: 'sess.1' });
      assert.deepEqual(await first.next(), { type: 'ack', id: 'sess.1', topic: 'chat', seq: 1 });
      s.channel.publish('chat', 'someone else');
      // The same id again, on another connection (a client that reconnected and resent it).
      second.send({ type: 'publish', topic: 'chat', data: 'hello', id: 'sess.1' });
      assert.deepEqual(await second.next(), { type: 'ack', id: 'sess.1', topic: 'chat', seq: 1, duplicate: true });
      first.send({ type: 'publish', topic: 'chat', data: 'hello', id: 'sess.1' });
      assert.deepEqual(await first.next(), { type: 'ack', id: 'sess.1', topic: 'chat', seq: 1, duplicate: true });
      assert.deepEqual(
        (await watcher.drain()).map((m) => m.data),
        ['hello', 'someone else'],
      );
      assert.equal(s.channel.position('chat').seq, 2);
      // Keyed by topic and id: the same id on another topic is another publish.
      const open = await channelServer({ ...CHAT, allowUnknownTopics: true, allowPublish: () => true });
      try {
        const c = await open.client();
        c.send({ type: 'publish', topic: 'a', data: 1, id: 'same' });
        c.send({ type: 'publish', topic: 'b', data: 1, id: 'same' });
        assert.deepEqual(await c.take(2), [
          { type: 'ack', id: 'same', topic: 'a', seq: 1 },
          { type: 'ack', id: 'same', topic: 'b', seq: 1 },
        ]);
      } finally {
        await open.close();
      }
    } finally {
      await s.close();
    }
  });

  it('with dedup: false a publish with an id is acked but a repeat is published again', T, async () => {
    const s = await channelServer({ ...CHAT, dedup: false });
    try {
      const c = await s.client();
      c.send({ type: 'publish', topic: 'chat', data: 'x', id: 'a' });
      c.send({ type: 'publish', topic: 'chat', data: 'x', id: 'a' });
      assert.deepEqual(await c.take(2), [
        { type: 'ack', id: 'a', topic: 'chat', seq: 1 },
        { type: 'ack', id: 'a', topic: 'chat', seq: 2 },
      ]);
    } finally {
      await s.close();
    }
  });

  it('ids are remembered per topic up to dedup.size, oldest first out', T, async () => {
    const s = await channelServer({ ...CHAT, dedup: { size: 2 } });
    try {
      const c = await s.client();
      const publish = async (id: string): Promise<Msg> => {
        c.send({ type: 'publish', topic: 'chat', data: id, id });
        return c.next();
      };
      assert.equal((await publish('a')).seq, 1);
      assert.equal((await publish('b')).seq, 2);
      assert.deepEqual(await publish('a'), { type: 'ack', id: 'a', topic: 'chat', seq: 1, duplicate: true });
      assert.equal((await publish('c')).seq, 3); // `a` goes: the oldest
      assert.deepEqual(await publish('a'), { type: 'ack', id: 'a', topic: 'chat', seq: 4 });
      // Now `c` and `a` are remembered; `b` went when `a` came back.
      assert.equal((await publish('c')).duplicate, true);
      assert.equal((await publish('b')).seq, 5);
    } finally {
      await s.close();
    }
  });

  it('ids are remembered for dedup.ttlMs', T, async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const s = await channelServer({ ...CHAT, dedup: { ttlMs: 1000 } });
    try {
      const c = await s.client();
      assert.equal(c.limits!.dedupMs, 1000);
      const publish = async (id: string): Promise<Msg> => {
        c.send({ type: 'publish', topic: 'chat', data: id, id });
        return c.next();
      };
      assert.equal((await publish('a')).seq, 1);
      t.mock.timers.tick(600);
      assert.equal((await publish('b')).seq, 2);
      t.mock.timers.tick(400);
      assert.deepEqual(await publish('a'), { type: 'ack', id: 'a', topic: 'chat', seq: 1, duplicate: true });
      t.mock.timers.tick(1);
      // 1001 ms after it: forgotten, so published again; `b` (401 ms old) is still known.
      assert.deepEqual(await publish('a'), { type: 'ack', id: 'a', topic: 'chat', seq: 3 });
      assert.equal((await publish('b')).duplicate, true);
    } finally {
      await s.close();
    }
  });

  it('a batch is published in order and answered by one acks, for one rate-limit token', T, async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const s = await channelServer({
      topics: { chat: { history: { size: 100 } }, ticker: { publish: false } },
      rateLimit: { messages: 2, perMs: 1000 },
      maxErrors: 1000,
    });
    try {
      const [watcher, c] = await Promise.all([s.client(), s.client()]);
      await watcher.subscribe('chat'); // watcher's first token
      c.send({ type: 'publish', topic: 'chat', data: 'before', id: 'p0' }); // c's first token
      assert.equal((await c.next()).seq, 1);
      const publishes: Array<{ topic: string; data: unknown; id: string }> = Array.from({ length: 10 }, (_, i) => ({
        topic: 'chat',
        data: { n: i },
        id: `b${i}`,
      }));
      // A repeat of an earlier id, a refused entry and a repeat inside the batch itself.
      publishes.splice(3, 0, { topic: 'chat', data: 'before', id: 'p0' });
      publishes.splice(6, 0, { topic: 'ticker', data: 'no', id: 'bad' });
      publishes.push({ topic: 'chat', data: { n: 1 }, id: 'b1' });
      c.send({ type: 'batch', publishes }); // c's second token
      const answer = await c.next();
      assert.equal(answer.type, 'acks');
      assert.deepEqual(answer.acks, [
        { id: 'b0', topic: 'chat', seq: 2 },
        { id: 'b1', topic: 'chat', seq: 3 },
        { id: 'b2', topic: 'chat', seq: 4 },
        { id: 'p0', topic: 'chat', seq: 1, duplicate: true },
        { id: 'b3', topic: 'chat', seq: 5 },
        { id: 'b4', topic: 'chat', seq: 6 },
        { id: 'bad', topic: 'ticker', code: 'forbidden', message: 'publishing to "ticker" is not allowed' },
        { id: 'b5', topic: 'chat', seq: 7 },
        { id: 'b6', topic: 'chat', seq: 8 },
        { id: 'b7', topic: 'chat', seq: 9 },
        { id: 'b8', topic: 'chat', seq: 10 },
        { id: 'b9', topic: 'chat', seq: 11 },
        { id: 'b1', topic: 'chat', seq: 3, duplicate: true },
      ]);
      const got = await watcher.take(11);
      assert.deepEqual(seqs(got), range(1, 11));
      assert.deepEqual(
        got.slice(1).map((m) => m.data),
        Array.from({ length: 10 }, (_, i) => ({ n: i })),
      );
      // The batch took one token: the bucket is empty now.
      c.send({ type: 'ping', id: 'after' });
      assert.equal((await c.next()).code, 'rate_limited');
    } finally {
      await s.close();
    }
  });

  it('a malformed batch is one bad_message and publishes nothing; too many entries, too big', T, async () => {
    const s = await channelServer({ ...CHAT, maxBatch: 3, maxMessageBytes: 400 });
    try {
      const c = await s.client();
      const ok = (i: number): object => ({ topic: 'chat', data: i, id: `i${i}` });
      await c.expectError({ type: 'batch', publishes: [ok(1), ok(2), { topic: 'chat', data: 3 }] }, 'bad_message');
      await c.expectError({ type: 'batch', publishes: [ok(1), { topic: 'chat', data: 3, id: 7 }] }, 'bad_message');
      await c.expectError({ type: 'batch', publishes: [ok(1), ok(2), ok(3), ok(4)] }, 'bad_message');
      const big = await c.expectError(
        { type: 'batch', publishes: [ok(1), { topic: 'chat', data: 'x'.repeat(400), id: 'big' }] },
        'too_big',
      );
      assert.equal(big.id, undefined);
      assert.equal(s.channel.position('chat').seq, 0, 'nothing was published');
      c.send({ type: 'batch', publishes: [ok(1), ok(2), ok(3)] });
      assert.deepEqual((await c.next()).acks, [
        { id: 'i1', topic: 'chat', seq: 1 },
        { id: 'i2', topic: 'chat', seq: 2 },
        { id: 'i3', topic: 'chat', seq: 3 },
      ]);
    } finally {
      await s.close();
    }
  });

  it('refused batch entries count toward maxErrors: the acks are sent, then the close', T, async () => {
    const s = await channelServer({ ...CHAT, maxErrors: 3 });
    try {
      const c = await s.client();
      await c.expectError({ type: 'publish', topic: 'ticker', data: 1 }, 'forbidden');
      c.send({
        type: 'batch',
        publishes: [
          { topic: 'ticker', data: 1, id: 'x' },
          { topic: 'chat', data: 1, id: 'y' },
          { topic: 'nope', data: 1, id: 'z' },
        ],
      });
      assert.equal(await c.closed(), 1008);
      assert.equal(c.closeReason, 'too many errors');
      assert.deepEqual(
        c.inbox[0].acks!.map((a) => a.code ?? a.seq),
        ['forbidden', 1, 'unknown_topic'],
      );
    } finally {
      await s.close();
    }
  });

  it('an allowPublish that throws refuses that entry of a batch with internal, not the others', T, async () => {
    const warnings: unknown[] = [];
    const onWarning = (w: unknown): number => warnings.push(w);
    process.on('warning', onWarning);
    const s = await channelServer({
      ...CHAT,
      allowPublish: (_ws, topic) => {
        if (topic === 'ticker') throw new Error('the application failed');
        return true;
      },
    });
    try {
      const c = await s.client();
      c.send({
        type: 'batch',
        publishes: [
          { topic: 'ticker', data: 1, id: 'x' },
          { topic: 'chat', data: 1, id: 'y' },
        ],
      });
      assert.deepEqual((await c.next()).acks, [
        { id: 'x', topic: 'ticker', code: 'internal', message: 'the server could not handle this publish' },
        { id: 'y', topic: 'chat', seq: 1 },
      ]);
      await waitFor(
        () => warnings.length > 0,
        WAIT_MS,
        () => 'the warning',
      );
    } finally {
      process.off('warning', onWarning);
      await s.close();
    }
  });
});

describe('channel: server-side API', () => {
  it('checks its options and arguments', T, async () => {
    const s = await channelServer(CHAT);
    const other = await startServer();
    try {
      assert.throws(() => new Channel(s.wss, { rateLimit: { messages: 0, perMs: 1000 } }), RangeError);
      assert.throws(() => new Channel(s.wss, { maxErrors: 0 }), RangeError);
      assert.throws(() => new Channel(s.wss, { maxMessageBytes: 0 }), RangeError);
      assert.throws(() => new Channel(s.wss, { maxBatch: 0 }), RangeError);
      assert.throws(() => new Channel(s.wss, { maxBatch: 1.5 }), RangeError);
      assert.throws(() => new Channel(s.wss, { dedup: { ttlMs: 0 } }), RangeError);
      assert.throws(() => new Channel(s.wss, { dedup: { size: 0 } }), RangeError);
      assert.throws(() => new Channel(s.wss, { topics: { '': {} } }), RangeError);
      assert.throws(() => s.channel.publish('chat', undefined), TypeError);
      assert.throws(() => s.channel.publish('chat', 10n), TypeError);
      // A connection of another server has another Hub.
      const conn = once(other.wss, 'connection') as Promise<[WebSocket]>;
      const c = await Client.open(other.port, '/', false);
      const [foreign] = await conn;
      assert.throws(() => s.channel.accept(foreign), TypeError);
      c.close();
      // Nothing was published by the failed calls.
      assert.equal(s.channel.position('chat').seq, 0);
    } finally {
      await other.close();
      await s.close();
    }
  });

  it('publishing builds the envelope once per publish, whatever the number of subscribers', T, async () => {
    const s = await channelServer(CHAT);
    try {
      const clients = await Promise.all(Array.from({ length: 5 }, () => s.client()));
      for (const c of clients) await c.subscribe('chat');
      let built = 0;
      const data = {
        toJSON() {
          built++;
          return { big: 'x'.repeat(1000) };
        },
      };
      assert.equal(s.channel.publish('chat', data), 5);
      assert.equal(built, 1);
      for (const c of clients) assert.deepEqual(seqs(await c.drain()), [1]);
      const history = s.wss.hub.recover('channel:chat', 0, s.channel.position('chat').epoch);
      // raw: subscribed, the message, the drain's pong.
      assert.equal(history.messages[0].payload.toString(), clients[0].raw[1]);
      assert.equal(history.messages[0].binary, false);
    } finally {
      await s.close();
    }
  });
});

describe('recovery under the drop policy', () => {
  it(
    'a recovery asked by a client that stopped reading (backlog from earlier turns over the limit) closes with 1013 instead of answering with a hole',
    { timeout: 30_000 },
    async () => {
      const srv = await channelServer(
        { topics: { t: { history: { size: 50 } }, bulk: {} }, rateLimit: false },
        { slowConsumer: 'drop', maxBufferedAmount: 1000, heartbeat: false },
      );
      try {
        for (let i = 0; i < 50; i++) srv.channel.publish('t', 'x'.repeat(200));
        const { epoch } = srv.channel.position('t');
        const serverSide = new Promise<WebSocket>((resolve) => srv.wss.once('connection', resolve));
        const c = await RawClient.connect(srv.port);
        const ws = await serverSide;
        c.write(clientFrame({ opcode: 0x1, payload: JSON.stringify({ type: 'subscribe', topic: 'bulk' }) }));
        await c.until(() => c.frames().some((f) => f.opcode === 0x1));
        // The client stops reading; bulk publishes fill the kernel's buffers, then the server's,
        // in separate turns, until bytes from earlier turns wait beyond maxBufferedAmount.
        c.socket.pause();
        for (let i = 0; i < 2000 && ws.bufferedAmount <= 1000; i++) {
          srv.channel.publish('bulk', 'y'.repeat(64 * 1024));
          await new Promise((r) => setTimeout(r, 1));
        }
        assert.ok(ws.bufferedAmount > 1000, `backlog ${ws.bufferedAmount}`);
        c.write(
          clientFrame({ opcode: 0x1, payload: JSON.stringify({ type: 'subscribe', topic: 't', since: 0, epoch }) }),
        );
        c.socket.resume();
        await c.until(() => c.frames().some((f) => f.opcode === 0x8), 20_000);
        const close = c.frames().find((f) => f.opcode === 0x8)!;
        assert.equal(close.payload.readUInt16BE(0), 1013);
        c.destroy();
        const messages = c
          .frames()
          .filter((f) => f.opcode === 0x1)
          .map((f) => JSON.parse(f.payload.toString()) as { type: string; topic?: string });
        assert.ok(
          messages.filter((m) => m.type === 'message' && m.topic === 't').length < 50,
          'the replay was cut by the policy',
        );
      } finally {
        await srv.close();
      }
    },
  );

  it(
    "a reading client's recovery of a whole history in one turn is answered in full (one turn's burst is not judged)",
    T,
    async () => {
      const srv = await channelServer(
        { topics: { t: { history: { size: 50 } } }, rateLimit: false },
        { slowConsumer: 'drop', maxBufferedAmount: 1000 },
      );
      try {
        for (let i = 0; i < 50; i++) srv.channel.publish('t', 'x'.repeat(200));
        const { epoch } = srv.channel.position('t');
        const c = await RawClient.connect(srv.port);
        c.write(
          clientFrame({ opcode: 0x1, payload: JSON.stringify({ type: 'subscribe', topic: 't', since: 0, epoch }) }),
        );
        const replayed = (): number =>
          c
            .frames()
            .filter(
              (f) => f.opcode === 0x1 && (JSON.parse(f.payload.toString()) as { type: string }).type === 'message',
            ).length;
        await c.until(() => replayed() === 50 || c.frames().some((f) => f.opcode === 0x8));
        assert.equal(replayed(), 50);
        assert.ok(!c.frames().some((f) => f.opcode === 0x8), 'not closed');
        c.destroy();
      } finally {
        await srv.close();
      }
    },
  );
});

/**
 * An asynchronous broker in this process (as a networked one behaves, without the network):
 * each topic's whole log kept in an array, every publish, recover and position answered in a
 * later turn. `down`: each of them fails (the broker cannot be reached). `readGate`: a
 * recovery or position read takes its snapshot at once but answers only when the gate opens
 * (what is published meanwhile arrives before the answer). `gate`: every call waits for it
 * before anything else (`calls` counts the calls made, `publishes` the publish calls).
 * Publish ids are remembered (without bounds) unless made with `keepsIds` false; then it has no
 * `dedupScope`, as a broker that does not deduplicate.
 */
class LoopbackBroker implements AsynchronousBroker {
  readonly synchronous = false;
  readonly epoch = 'E1';
  down = false;
  /** publish() throws instead of returning a promise (a custom broker's bug). */
  throwAtOnce = false;
  /** Every call fails with this (after `gate`), e.g. WS_ERR_BROKER_OUTCOME_UNKNOWN. */
  failWith: Error | undefined;
  readGate: Promise<void> | undefined;
  gate: Promise<void> | undefined;
  calls = 0;
  publishes = 0;
  readonly dedupScope: (() => string) | undefined;
  private host: BrokerHost | undefined;
  private readonly logs = new Map<string, HistoryEntry[]>();
  private readonly ids = new Map<string, number>();

  constructor(keepsIds = true) {
    this.dedupScope = keepsIds ? () => 'loopback-scope' : undefined;
  }

  attach(host: BrokerHost): void {
    this.host = host;
  }
  setDefaultHistory(): void {}
  configureTopic(): void {}
  watch(): Promise<void> {
    return Promise.resolve();
  }
  unwatch(): void {}
  topicCount(): number {
    return this.logs.size;
  }
  close(): void {}

  /** The topic's numbering moved on without the messages in between (as a feed reports it). */
  reset(topic: string, position: TopicPosition): void {
    this.host!.reset(topic, position);
  }

  private log(topic: string): HistoryEntry[] {
    let log = this.logs.get(topic);
    if (log === undefined) this.logs.set(topic, (log = []));
    return log;
  }

  private async reachable(): Promise<void> {
    this.calls++;
    await Promise.resolve();
    await this.gate;
    if (this.down) throw createError('WS_ERR_BROKER_UNAVAILABLE', 'the broker is down (this test says so)');
    if (this.failWith !== undefined) throw this.failWith;
  }

  publish(message: OutgoingMessage, exclude?: unknown): Promise<PublishResult> {
    // A custom broker may throw instead of rejecting.
    if (this.throwAtOnce) throw new Error('the broker failed before returning (this test says so)');
    return this.publishLater(message, exclude);
  }

  private async publishLater(message: OutgoingMessage, exclude?: unknown): Promise<PublishResult> {
    this.publishes++;
    await this.reachable();
    const key = message.dedup === undefined ? undefined : JSON.stringify([message.topic, message.dedup.id]);
    const known = key === undefined || this.dedupScope === undefined ? undefined : this.ids.get(key);
    if (known !== undefined) return { epoch: this.epoch, seq: known, duplicate: true };
    const log = this.log(message.topic);
    const seq = log.length + 1;
    if (key !== undefined) this.ids.set(key, seq);
    const payload = messageBytes(message, seq);
    log.push({ seq, payload, binary: message.binary, time: 0 });
    this.host?.deliver({ topic: message.topic, payload, binary: message.binary, seq, epoch: this.epoch }, exclude);
    return { epoch: this.epoch, seq };
  }

  async recover(topic: string, since: number, epoch: string): Promise<Recovery> {
    await this.reachable();
    const log = this.log(topic);
    const recovered = epoch === this.epoch && since <= log.length;
    const answer = { epoch: this.epoch, seq: log.length, recovered, messages: recovered ? log.slice(since) : [] };
    await this.readGate;
    return answer;
  }

  async position(topic: string): Promise<TopicPosition> {
    await this.reachable();
    const answer = { epoch: this.epoch, seq: this.log(topic).length };
    await this.readGate;
    return answer;
  }
}

describe('channel protocol: with an asynchronous broker', () => {
  it(
    'subscribe is answered after the broker; what is published during the read follows the replay, once',
    T,
    async () => {
      const broker = new LoopbackBroker();
      const s = await channelServer(CHAT, { broker });
      try {
        assert.throws(() => s.channel.position('chat'), { name: 'TypeError', code: 'WS_ERR_BROKER_ASYNC' });
        const a = await s.client();
        assert.deepEqual(await a.subscribe('chat'), {
          type: 'subscribed',
          topic: 'chat',
          epoch: 'E1',
          seq: 0,
          recovered: false,
        });
        const me = await a.hello('alice');
        a.send({ type: 'publish', topic: 'chat', data: 'one' });
        assert.deepEqual(await a.next(), { type: 'message', topic: 'chat', seq: 1, from: me, data: 'one' });
        assert.equal(s.channel.publish('chat', 'two'), 0, 'not written yet: the broker answers later');
        assert.deepEqual(seqs(await a.take(1)), [2]);
        assert.deepEqual(await s.channel.positionAsync('chat'), { epoch: 'E1', seq: 2 });

        let open!: () => void;
        broker.readGate = new Promise<void>((resolve) => (open = resolve));
        const b = await s.client();
        b.send({ type: 'subscribe', topic: 'chat', since: 1, epoch: 'E1' });
        await waitFor(
          () => s.channel.subscriberCount('chat') === 2,
          WAIT_MS,
          () => 'the subscribe to reach the server',
        );
        s.channel.publish('chat', 'three'); // after the read's snapshot, before its answer
        assert.deepEqual(seqs(await a.take(1)), [3]);
        open();
        assert.deepEqual(await b.next(), { type: 'subscribed', topic: 'chat', epoch: 'E1', seq: 2, recovered: true });
        assert.deepEqual(seqs(await b.drain()), [2, 3]);
        s.channel.publish('chat', 'four');
        assert.deepEqual(seqs(await b.drain()), [4]);
        assert.deepEqual(seqs(await a.drain()), [4]);
      } finally {
        await s.close();
      }
    },
  );

  it(
    'a subscribe whose recovery cannot be read, or a publish not taken, gets unavailable with retryAfter, not counted toward maxErrors',
    T,
    async () => {
      const broker = new LoopbackBroker();
      const s = await channelServer({ ...CHAT, maxErrors: 1 }, { broker });
      try {
        const c = await s.client();
        broker.down = true;
        const unavailable = {
          type: 'error',
          code: 'unavailable',
          message: 'the server cannot reach its broker now; subscribe again later',
          topic: 'chat',
          retryAfter: 1000,
        };
        c.send({ type: 'subscribe', topic: 'chat', since: 0, epoch: 'E1' });
        assert.deepEqual(await c.next(), unavailable);
        assert.equal(
          c.raw.at(-1),
          '{"type":"error","code":"unavailable","message":"the server cannot reach its broker now; subscribe again later","topic":"chat","retryAfter":1000}',
        );
        c.send({ type: 'subscribe', topic: 'chat' });
        assert.deepEqual(await c.next(), unavailable);
        c.send({ type: 'publish', topic: 'chat', data: 'lost' });
        assert.deepEqual(await c.next(), {
          type: 'error',
          code: 'unavailable',
          message: 'not published: the server cannot reach its broker now',
          topic: 'chat',
          retryAfter: 1000,
        });
        assert.deepEqual(await c.drain(), [], 'still open (maxErrors is 1)');
        assert.equal(s.channel.subscriberCount('chat'), 0, 'nothing subscribed');
        broker.down = false;
        assert.equal((await c.subscribe('chat')).recovered, false);
        assert.equal(s.channel.subscriberCount('chat'), 1);
        // A counted error still counts.
        c.send('not json');
        assert.equal((await c.next()).code, 'bad_json');
        assert.equal(await c.closed(), 1008);
      } finally {
        await s.close();
      }
    },
  );

  it(
    'a reset reaches channel subscribers of the topic as subscribed with recovered: false; raw subscribers get nothing',
    T,
    async () => {
      const broker = new LoopbackBroker();
      const server = await startServer({ broker });
      const channel = new Channel(server.wss, CHAT);
      const raws: WebSocket[] = [];
      server.wss.on('connection', (ws: WebSocket, req: { url?: string }) => {
        if (req.url === '/channel') channel.accept(ws);
        else raws.push(ws);
      });
      const clients: Client[] = [];
      try {
        const a = await Client.open(server.port);
        const other = await Client.open(server.port);
        const raw = await Client.open(server.port, '/raw', false);
        clients.push(a, other, raw);
        await a.subscribe('chat');
        await other.subscribe('ticker');
        await waitFor(
          () => raws.length === 1,
          WAIT_MS,
          () => 'the raw connection',
        );
        raws[0].subscribe('channel:chat'); // the channel's topic, but not a channel connection
        raws[0].subscribe('chat');
        broker.reset('channel:chat', { epoch: 'E2', seq: 0 });
        broker.reset('chat', { epoch: 'E2', seq: 5 }); // a raw topic: not the channel's
        await a.until(() => a.inbox.length > 0, 'the reset');
        assert.deepEqual(a.raw, [
          '{"type":"subscribed","topic":"chat","epoch":"E1","seq":0,"recovered":false}',
          '{"type":"subscribed","topic":"chat","epoch":"E2","seq":0,"recovered":false}',
        ]);
        a.inbox.length = 0;
        assert.deepEqual(await a.drain(), []);
        assert.deepEqual(await other.drain(), []);
        // The raw connection's first message is the one published after the resets.
        server.wss.publish('chat', '{"type":"after"}');
        assert.deepEqual(await raw.next(), { type: 'after' });
        assert.deepEqual(raw.raw, ['{"type":"after"}']);
      } finally {
        for (const c of clients) c.close();
        await server.close();
      }
    },
  );
});

describe('channel protocol: acknowledged publishes with an asynchronous broker', () => {
  it('acks come after the broker stored the publish; a repeat is answered by its memory of ids', T, async () => {
    const broker = new LoopbackBroker();
    const s = await channelServer(CHAT, { broker });
    try {
      const [a, b] = await Promise.all([s.client(), s.client()]);
      assert.equal(a.limits!.dedupScope, 'loopback-scope');
      a.send({ type: 'publish', topic: 'chat', data: 'one', id: 'a.1' });
      assert.deepEqual(await a.next(), { type: 'ack', id: 'a.1', topic: 'chat', seq: 1 });
      b.send({ type: 'publish', topic: 'chat', data: 'one', id: 'a.1' });
      assert.deepEqual(await b.next(), { type: 'ack', id: 'a.1', topic: 'chat', seq: 1, duplicate: true });
      assert.equal(broker.publishes, 2, 'the broker decided: the first was no longer in flight');
      assert.equal((await s.channel.positionAsync('chat')).seq, 1);
      // A batch through the broker: one acks, in order.
      a.send({
        type: 'batch',
        publishes: [
          { topic: 'chat', data: 2, id: 'a.2' },
          { topic: 'ticker', data: 3, id: 'a.3' },
          { topic: 'chat', data: 4, id: 'a.4' },
          { topic: 'chat', data: 2, id: 'a.2' },
        ],
      });
      assert.deepEqual((await a.next()).acks, [
        { id: 'a.2', topic: 'chat', seq: 2 },
        { id: 'a.3', topic: 'ticker', code: 'forbidden', message: 'publishing to "ticker" is not allowed' },
        { id: 'a.4', topic: 'chat', seq: 3 },
        { id: 'a.2', topic: 'chat', seq: 2, duplicate: true },
      ]);
    } finally {
      await s.close();
    }
  });

  it('a repeat that arrives while the original is in flight gets its answer: same seq, or same error', T, async () => {
    const broker = new LoopbackBroker();
    const s = await channelServer(CHAT, { broker });
    try {
      const [watcher, a, b] = await Promise.all([s.client(), s.client(), s.client()]);
      await watcher.subscribe('chat');
      let open!: () => void;
      broker.gate = new Promise<void>((resolve) => (open = resolve));
      a.send({ type: 'publish', topic: 'chat', data: 'once', id: 's.1' });
      await waitFor(
        () => broker.publishes === 1,
        WAIT_MS,
        () => 'the publish to reach the broker',
      );
      // The client reconnected (another connection) and resent it, and resent it again.
      b.send({ type: 'publish', topic: 'chat', data: 'once', id: 's.1' });
      b.send({ type: 'batch', publishes: [{ topic: 'chat', data: 'once', id: 's.1' }] });
      assert.deepEqual(await b.drain(), [], 'nothing answered while the original is in flight');
      open();
      assert.deepEqual(await a.next(), { type: 'ack', id: 's.1', topic: 'chat', seq: 1 });
      assert.deepEqual(await b.take(2), [
        { type: 'ack', id: 's.1', topic: 'chat', seq: 1, duplicate: true },
        { type: 'acks', acks: [{ id: 's.1', topic: 'chat', seq: 1, duplicate: true }] },
      ]);
      assert.equal(broker.publishes, 1, 'the repeats never reached the broker');
      assert.deepEqual(
        (await watcher.drain()).map((m) => m.data),
        ['once'],
      );

      // The original fails (the broker is away): the repeat gets the same error, with its id.
      broker.gate = new Promise<void>((resolve) => (open = resolve));
      broker.down = true;
      a.send({ type: 'publish', topic: 'chat', data: 'lost', id: 's.2' });
      await waitFor(
        () => broker.publishes === 2,
        WAIT_MS,
        () => 'the publish to reach the broker',
      );
      b.send({ type: 'publish', topic: 'chat', data: 'lost', id: 's.2' });
      assert.deepEqual(await b.drain(), []);
      open();
      for (const c of [a, b]) {
        const error = await c.next();
        assert.deepEqual(
          { type: error.type, code: error.code, id: error.id, topic: error.topic, retryAfter: error.retryAfter },
          { type: 'error', code: 'unavailable', id: 's.2', topic: 'chat', retryAfter: 1000 },
        );
      }
      assert.equal(broker.publishes, 2);
      // Once it failed it is forgotten: sent again later, it is published.
      broker.gate = undefined;
      broker.down = false;
      b.send({ type: 'publish', topic: 'chat', data: 'again', id: 's.2' });
      assert.deepEqual(await b.next(), { type: 'ack', id: 's.2', topic: 'chat', seq: 2 });
    } finally {
      await s.close();
    }
  });

  it('a batch entry the broker cannot take is refused as unavailable, not counted as an error', T, async () => {
    const broker = new LoopbackBroker();
    const s = await channelServer({ ...CHAT, maxErrors: 1 }, { broker });
    try {
      const c = await s.client();
      broker.down = true;
      c.send({ type: 'batch', publishes: [{ topic: 'chat', data: 1, id: 'u' }] });
      assert.deepEqual((await c.next()).acks, [
        {
          id: 'u',
          topic: 'chat',
          code: 'unavailable',
          message: 'not published: the server cannot reach its broker now',
          retryAfter: 1000,
        },
      ]);
      assert.deepEqual(await c.drain(), []);
      assert.equal(c.closeCode, undefined);
    } finally {
      await s.close();
    }
  });

  it('a broker that keeps no ids: limits say dedupMs 0 (clients must not resend); acks still come', T, async () => {
    const broker = new LoopbackBroker(false);
    const s = await channelServer(CHAT, { broker });
    try {
      const c = await s.client();
      assert.equal(c.limits!.dedupMs, 0);
      assert.equal(c.limits!.dedupScope, undefined);
      c.send({ type: 'publish', topic: 'chat', data: 1, id: 'n.1' });
      assert.deepEqual(await c.next(), { type: 'ack', id: 'n.1', topic: 'chat', seq: 1 });
    } finally {
      await s.close();
    }
  });
});

describe('channel protocol: with an asynchronous broker, connections that leave and errors', () => {
  it(
    'a client gone before the broker answers is sent nothing: not its recovery, not its failed publish',
    T,
    async () => {
      const broker = new LoopbackBroker();
      const s = await channelServer(CHAT, { broker });
      try {
        const serverSide = once(s.wss, 'connection') as Promise<[WebSocket]>;
        const c = await s.client();
        const [ws] = await serverSide;
        await c.subscribe('chat');
        let open!: () => void;
        broker.gate = new Promise<void>((resolve) => (open = resolve));
        const before = broker.calls;
        c.send({ type: 'subscribe', topic: 'chat', since: 0, epoch: 'E1' }); // already subscribed: read at once
        c.send({ type: 'publish', topic: 'chat', data: 'x' });
        await waitFor(
          () => broker.calls === before + 2,
          WAIT_MS,
          () => 'the subscribe and the publish to reach the broker',
        );
        const sent: unknown[] = [];
        ws.send = (...args: unknown[]) => void sent.push(args);
        c.close();
        await waitFor(
          () => s.channel.subscriberCount('chat') === 0,
          WAIT_MS,
          () => 'the server to see the close',
        );
        broker.down = true;
        open();
        // The broker's failures settle in promise callbacks, which all run before the next turn.
        await new Promise<void>((resolve) => setImmediate(resolve));
        assert.equal(broker.calls, before + 2);
        assert.deepEqual(sent, []);
      } finally {
        await s.close();
      }
    },
  );

  it(
    "a server publish the broker refuses is reported: on 'error' when listened to, else as a process warning",
    T,
    async () => {
      const broker = new LoopbackBroker();
      const s = await channelServer(CHAT, { broker });
      try {
        broker.down = true;
        const warned = once(process, 'warning') as Promise<[Error]>;
        assert.equal(s.channel.publish('chat', 'lost'), 0);
        const [warning] = await warned;
        assert.equal((warning as Error & { code?: string }).code, 'WS_ERR_BROKER_UNAVAILABLE');
        const reported = once(s.wss, 'error') as Promise<[Error]>;
        s.wss.publish('raw', 'lost too');
        const [err] = await reported;
        assert.equal((err as Error & { code?: string }).code, 'WS_ERR_BROKER_UNAVAILABLE');
      } finally {
        await s.close();
      }
    },
  );
});

/** The in-memory broker, whose publish throws while `failing` (a bug, or a custom broker's). */
class FailingMemoryBroker extends MemoryBroker {
  failing = false;

  override publish(message: OutgoingMessage, exclude?: unknown): PublishResult {
    if (this.failing) throw new Error('the broker failed (this test says so)');
    return super.publish(message, exclude);
  }
}

describe('channel protocol: every answer to a publish with an id names it', () => {
  it(
    'a synchronous broker that throws: internal with the id and topic, for a publish and a batch entry',
    T,
    async () => {
      const warnings: unknown[] = [];
      const onWarning = (w: unknown): number => warnings.push(w);
      process.on('warning', onWarning);
      const broker = new FailingMemoryBroker();
      const s = await channelServer(CHAT, { broker });
      try {
        const c = await s.client();
        broker.failing = true;
        // It failed while publishing: it may have been numbered first, so the outcome is unknown.
        const error = await c.expectError({ type: 'publish', topic: 'chat', data: 1, id: 'f.1' }, 'internal');
        assert.deepEqual(
          { id: error.id, topic: error.topic, outcome: error.outcome },
          { id: 'f.1', topic: 'chat', outcome: 'unknown' },
        );
        c.send({ type: 'batch', publishes: [{ topic: 'chat', data: 2, id: 'f.2' }] });
        const acks = await c.next();
        assert.equal(acks.type, 'acks', JSON.stringify(acks));
        assert.deepEqual(
          acks.acks!.map((a) => [a.id, a.topic, a.code, a.outcome]),
          [['f.2', 'chat', 'internal', 'unknown']],
        );
        broker.failing = false;
        c.send({ type: 'publish', topic: 'chat', data: 3, id: 'f.3' });
        assert.deepEqual(await c.next(), { type: 'ack', id: 'f.3', topic: 'chat', seq: 1 });
        await waitFor(
          () => warnings.length === 2,
          WAIT_MS,
          () => 'a warning for each failure',
        );
      } finally {
        process.off('warning', onWarning);
        await s.close();
      }
    },
  );

  it('an asynchronous broker whose publish throws at once: an error with the id, never an id-less one', T, async () => {
    const broker = new LoopbackBroker();
    const s = await channelServer(CHAT, { broker });
    try {
      const c = await s.client();
      broker.throwAtOnce = true;
      c.send({ type: 'publish', topic: 'chat', data: 1, id: 't.1' });
      const error = await c.next();
      assert.equal(error.type, 'error', JSON.stringify(error));
      assert.deepEqual({ id: error.id, topic: error.topic }, { id: 't.1', topic: 'chat' });
      c.send({ type: 'batch', publishes: [{ topic: 'chat', data: 2, id: 't.2' }] });
      const acks = await c.next();
      assert.deepEqual(
        acks.acks!.map((a) => [a.id, a.topic, typeof a.code]),
        [['t.2', 'chat', 'string']],
      );
      assert.equal(c.closeCode, undefined);
    } finally {
      await s.close();
    }
  });

  it(
    'a broker that got the publish but never answered: unavailable with "outcome": "unknown", to the repeat too',
    T,
    async () => {
      const broker = new LoopbackBroker();
      const s = await channelServer({ ...CHAT, maxErrors: 1 }, { broker });
      try {
        const [a, b] = await Promise.all([s.client(), s.client()]);
        let open!: () => void;
        broker.gate = new Promise<void>((resolve) => (open = resolve));
        broker.failWith = createError('WS_ERR_BROKER_OUTCOME_UNKNOWN', 'no answer (this test says so)');
        a.send({ type: 'publish', topic: 'chat', data: 'maybe', id: 'u.1' });
        await waitFor(
          () => broker.publishes === 1,
          WAIT_MS,
          () => 'the publish to reach the broker',
        );
        b.send({ type: 'publish', topic: 'chat', data: 'maybe', id: 'u.1' }); // a resend while in flight
        a.send({ type: 'batch', publishes: [{ topic: 'chat', data: 'maybe too', id: 'u.2' }] });
        await waitFor(
          () => broker.publishes === 2,
          WAIT_MS,
          () => 'the batch to reach the broker (the repeat does not)',
        );
        open();
        const expected = {
          type: 'error',
          code: 'unavailable',
          message: 'no answer from the broker: this publish may or may not have been published',
          topic: 'chat',
          id: 'u.1',
          retryAfter: 1000,
          outcome: 'unknown',
        };
        assert.deepEqual(await b.next(), expected, 'the repeat gets the same answer');
        const [single, batch] = await a.take(2);
        assert.deepEqual(single, expected);
        assert.deepEqual(batch.acks, [
          {
            id: 'u.2',
            topic: 'chat',
            code: 'unavailable',
            message: 'no answer from the broker: this publish may or may not have been published',
            retryAfter: 1000,
            outcome: 'unknown',
          },
        ]);
        // Not counted toward maxErrors (1): still open.
        assert.deepEqual(await a.drain(), []);
        assert.equal(a.closeCode, undefined);
        // A broker that says it could not take it: not published, and no outcome field.
        broker.gate = undefined;
        broker.failWith = createError('WS_ERR_BROKER_BACKLOG', 'full (this test says so)');
        a.send({ type: 'publish', topic: 'chat', data: 'no', id: 'u.3' });
        const refused = await a.next();
        assert.deepEqual([refused.code, refused.id, refused.outcome], ['unavailable', 'u.3', undefined]);
      } finally {
        await s.close();
      }
    },
  );
});
