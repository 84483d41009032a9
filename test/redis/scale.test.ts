/**
 * `duet serve --redis` as an operator runs it: several processes, each with its own port, one
 * topic space in Redis, clients (duet/client, with reconnection and recovery) spread over them.
 * Every client gets every message once and in seq order; a process killed with SIGKILL loses
 * nothing for its clients, which come back through a round-robin TCP proxy to the others and
 * recover; Redis connections killed mid-stream leave no gap (one process's subscription alone:
 * what it missed comes from history); Redis losing its data is
 * announced (a reset); `--workers 2` runs /chat and /channel across its workers.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as net from 'node:net';
import type { Redis } from 'ioredis';
import { DuetClient } from '../../src/browser/client.js';
import { WebSocket } from '../../src/index.js';
import WS from 'ws';
import { startDuet, type Listening } from '../cli/cli-process.js';
import { probeUntilAllHear, serverPidsOn, withoutProbes } from '../helpers.js';
import {
  REDIS_URL,
  adminClient,
  deleteKeys,
  killConnections,
  skipWithoutRedis,
  testPrefix,
  until,
} from './redis-helpers.js';

const skip = await skipWithoutRedis();

/** One client's view of topic `chat`: what it got, in order, and the resets it was told of. */
interface Follower {
  client: DuetClient;
  got: Array<{ seq: number; data: { p: number; i: number } }>;
  resets: number;
  subscribed: boolean;
}

function follow(url: string, options: ConstructorParameters<typeof DuetClient>[1] = {}): Follower {
  const client = new DuetClient(url, { WebSocket, heartbeatInterval: 0, minDelay: 50, maxDelay: 500, ...options });
  const follower: Follower = { client, got: [], resets: 0, subscribed: false };
  client.subscribe('chat', (data, meta) =>
    follower.got.push({ seq: meta.seq, data: data as { p: number; i: number } }),
  );
  client.on('message', (m) => {
    if ((m as { type?: string }).type === 'subscribed') follower.subscribed = true;
  });
  client.on('reset', () => follower.resets++);
  return follower;
}

/** Publish `count` chat messages `{ p, i }` from `client`, one every `ms` (under the channel's 20/s limit). */
async function publishSlowly(client: DuetClient, p: number, count: number, ms: number): Promise<void> {
  for (let i = 1; i <= count; i++) {
    void client.publish('chat', { p, i });
    await new Promise((resolve) => setTimeout(resolve, ms));
  }
}

/** A raw channel client (`ws`): every message parsed, in order; `limits` is the first. */
async function channelClient(url: string): Promise<{ ws: WS; got: Array<Record<string, unknown>> }> {
  const ws = new WS(`${url}/channel`);
  const got: Array<Record<string, unknown>> = [];
  ws.on('message', (d: Buffer) => got.push(JSON.parse(d.toString()) as Record<string, unknown>));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  await until(() => got.length > 0, 'the limits message');
  assert.equal(got[0].type, 'limits');
  return { ws, got };
}

/** Seqs strictly consecutive from the first (no gap, no repeat, in order). */
function assertConsecutive(f: Follower, label: string): void {
  for (let k = 1; k < f.got.length; k++) {
    assert.equal(f.got[k].seq, f.got[k - 1].seq + 1, `${label}: seq ${f.got[k].seq} after ${f.got[k - 1].seq}`);
  }
}

/** A TCP proxy handing each connection to the next backend that accepts it (round robin). */
function roundRobinProxy(ports: number[]): Promise<{ port: number; close(): void }> {
  let next = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.pause();
    const tryBackend = (attempt: number): void => {
      if (attempt >= ports.length) {
        client.destroy();
        return;
      }
      const port = ports[next++ % ports.length];
      const upstream = net.connect(port, '127.0.0.1');
      upstream.once('error', () => tryBackend(attempt + 1));
      upstream.once('connect', () => {
        upstream.removeAllListeners('error');
        sockets.add(upstream);
        upstream.on('close', () => sockets.delete(upstream));
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        client.on('close', () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    tryBackend(0);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () => {
          server.close();
          for (const s of sockets) s.destroy();
        },
      }),
    );
  });
}

/** SIGTERM, as an operator stops it (so it also writes its coverage); SIGKILL after 10 s. Resolves with the exit code. */
async function stopGracefully(p: Listening): Promise<number | null> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return p.child.exitCode;
  const exited = new Promise<number | null>((resolve) => p.child.once('exit', (code) => resolve(code)));
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

describe('duet serve --redis: several processes, one topic space', { skip, timeout: 180_000 }, () => {
  let admin: Redis;
  const processes: Listening[] = [];
  const prefixes: string[] = [];
  const clients: DuetClient[] = [];

  before(() => {
    admin = adminClient();
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(processes.map((p) => stopGracefully(p)));
    for (const prefix of prefixes) await deleteKeys(admin, prefix);
    admin.disconnect();
  });

  async function serve(n: number, name: string, extra: string[] = []): Promise<{ urls: string[]; prefix: string }> {
    const prefix = testPrefix(name);
    prefixes.push(prefix);
    const started = await Promise.all(
      Array.from({ length: n }, () =>
        startDuet(['serve', '--port', '0', '--redis', REDIS_URL, '--redis-prefix', prefix, ...extra]),
      ),
    );
    processes.push(...started);
    return { urls: started.map((p) => p.url), prefix };
  }

  function followMany(urls: string[], count: number): Follower[] {
    const followers = Array.from({ length: count }, (_, i) => follow(`${urls[i % urls.length]}/channel`));
    clients.push(...followers.map((f) => f.client));
    return followers;
  }

  it('3 processes, 300 clients, publishers on each process: every client gets every message once, in seq order', async () => {
    const { urls } = await serve(3, 'fanout');
    const followers = followMany(urls, 300);
    await until(() => followers.every((f) => f.subscribed), 'every subscription', 60_000);
    const publishers = urls.map((url) => follow(`${url}/channel`));
    clients.push(...publishers.map((p) => p.client));
    await until(() => publishers.every((p) => p.subscribed), 'the publishers');
    await Promise.all(publishers.map((p, k) => publishSlowly(p.client, k, 20, 100)));
    const total = 60;
    await until(() => followers.every((f) => f.got.length >= total), 'every delivery', 60_000);
    const reference = followers[0].got.map((g) => `${g.data.p}:${g.data.i}`);
    for (const [k, f] of followers.entries()) {
      assert.equal(f.got.length, total, `client ${k} got ${f.got.length}`);
      assertConsecutive(f, `client ${k}`);
      assert.deepEqual(
        f.got.map((g) => `${g.data.p}:${g.data.i}`),
        reference,
        `client ${k}: another order`,
      );
      assert.equal(f.resets, 1, 'only the first subscribe (recovered: false) counts as a reset');
    }
    // Each publisher's messages in the order it sent them.
    for (let p = 0; p < 3; p++) {
      assert.deepEqual(
        followers[0].got.filter((g) => g.data.p === p).map((g) => g.data.i),
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
    }
  });

  it('a process killed with SIGKILL: its clients reconnect through a proxy to the others and recover; nothing lost, nothing twice', async () => {
    const before = processes.length;
    const { urls } = await serve(3, 'sigkill');
    const ports = urls.map((u) => Number(new URL(u).port));
    const proxy = await roundRobinProxy(ports);
    try {
      const followers = followMany([`ws://127.0.0.1:${proxy.port}`], 60);
      await until(() => followers.every((f) => f.subscribed), 'every subscription', 60_000);
      // The publisher talks to process 0, which stays up; a message counts as sent once the
      // publisher has it back with its seq.
      const publisher = follow(`${urls[0]}/channel`);
      clients.push(publisher.client);
      await until(() => publisher.subscribed, 'the publisher');
      const victim = processes[before + 2];
      const stream = publishSlowly(publisher.client, 0, 40, 100);
      await until(() => publisher.got.length >= 10, 'ten messages out');
      victim.child.kill('SIGKILL');
      await stream;
      await until(() => publisher.got.length === 40, 'every message acknowledged');
      await until(() => followers.every((f) => f.got.length >= 40), 'every client caught up', 60_000);
      for (const [k, f] of followers.entries()) {
        assert.deepEqual(
          f.got.map((g) => g.data.i),
          Array.from({ length: 40 }, (_, i) => i + 1),
          `client ${k}`,
        );
        assertConsecutive(f, `client ${k}`);
      }
      assert.ok(victim.child.signalCode === 'SIGKILL');
    } finally {
      proxy.close();
    }
  });

  it('Redis connections killed during a stream: the gap is filled from history; Redis losing its data: clients are told (reset)', async () => {
    const { urls, prefix } = await serve(2, 'redis-faults');
    const followers = followMany(urls, 20);
    await until(() => followers.every((f) => f.subscribed), 'every subscription');
    const publisher = follow(`${urls[0]}/channel`);
    clients.push(publisher.client);
    await until(() => publisher.subscribed, 'the publisher');
    const refused: string[] = [];
    publisher.client.on('error', (e) => refused.push((e as { code?: string }).code ?? e.message));
    const stream = publishSlowly(publisher.client, 0, 40, 50);
    await until(() => publisher.got.length >= 10, 'ten messages out');
    const killed = await killConnections(admin, `duet-serve:${prefix}`);
    assert.ok(killed >= 4, `killed ${killed} connections (2 per process)`);
    await stream;
    // Publishes made while a process could not reach Redis were refused (`unavailable`), not
    // lost silently; what was published (the publisher got it back, numbered) reached everyone.
    // A last message, sent until it is through, marks the end.
    for (let tries = 0; !publisher.got.some((g) => g.data.i === 99); tries++) {
      assert.ok(tries < 200, 'Redis never came back for the publisher');
      void publisher.client.publish('chat', { p: 0, i: 99 });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const sent = publisher.got.map((g) => g.data.i);
    const lost = 40 - sent.filter((i) => i !== 99).length;
    assert.equal(
      refused.filter((c) => c === 'unavailable').length >= lost,
      true,
      `${lost} not published, ${refused.length} refusals`,
    );
    await until(() => followers.every((f) => f.got.length >= sent.length), 'every published message', 60_000);
    for (const [k, f] of followers.entries()) {
      assert.deepEqual(
        f.got.map((g) => g.data.i),
        sent,
        `client ${k}`,
      );
      assertConsecutive(f, `client ${k}`);
      assert.equal(f.resets, 1, `client ${k}: no reset but the first subscribe's`);
    }
    // Now Redis loses this application's data.
    await deleteKeys(admin, prefix);
    void publisher.client.publish('chat', { p: 0, i: 100 });
    await until(() => followers.every((f) => f.got.some((g) => g.data.i === 100)), 'the message after the loss');
    for (const [k, f] of followers.entries()) {
      assert.equal(f.resets, 2, `client ${k} was told the topic started over`);
      assert.equal(f.got.at(-1)!.seq, 1, 'numbering starts over');
    }
  });

  it("one process's Redis subscription killed while the other publishes: its clients get what was published meanwhile, from history, with no reset", async () => {
    const { urls, prefix } = await serve(2, 'gap');
    const followers = followMany(urls, 20);
    await until(() => followers.every((f) => f.subscribed), 'every subscription');
    const publishers = urls.map((url) => follow(`${url}/channel`));
    clients.push(...publishers.map((p) => p.client));
    await until(() => publishers.every((p) => p.subscribed), 'the publishers');
    // One of the two processes' subscriber connections (its commands connection stays, so
    // every publish goes through): `duet-serve:<prefix>:<broker id>:subscriber`.
    const subscriber = async (
      named: (name: string) => boolean = (name) =>
        name.startsWith(`duet-serve:${prefix}`) && name.endsWith(':subscriber'),
    ): Promise<{ id: string; name: string } | undefined> =>
      ((await admin.client('LIST')) as string)
        .split('\n')
        .map((line) => ({ id: /\bid=(\d+)/.exec(line)?.[1] ?? '', name: /\bname=(\S*)/.exec(line)?.[1] ?? '' }))
        .find((c) => named(c.name));
    // The topic's last seq in Redis (the channel's `chat` is `channel:chat` in the hub).
    const seqNow = async (): Promise<number> =>
      Number(await admin.hget(`${prefix}{${encodeURIComponent('channel:chat')}}:log`, 's'));
    // Both publishers, one on each process, 40 messages each, one every 60 ms.
    let acked = 0;
    const streams = publishers.map(async (publisher, p) => {
      for (let i = 1; i <= 40; i++) {
        void publisher.client.publish('chat', { p, i }).then(() => acked++);
        await new Promise((resolve) => setTimeout(resolve, 60));
      }
    });
    await until(() => acked >= 20, 'twenty messages acknowledged');
    // Kill it, and count what Redis numbered from then until a connection of that name is
    // back (ioredis waits 200 ms at least, and subscribes again after that): messages pub/sub
    // never brought that process. Again if none was published meanwhile (a stalled test).
    let missed = 0;
    for (let attempt = 0; missed === 0; attempt++) {
      assert.ok(attempt < 3, 'nothing was published while the subscription was down, three times');
      const victim = await subscriber();
      assert.ok(victim !== undefined, 'a subscriber connection to kill');
      assert.equal(Number(await admin.client('KILL', 'ID', victim.id)), 1);
      const atKill = await seqNow();
      for (let tries = 0; ; tries++) {
        assert.ok(tries < 1000, 'the subscriber connection never came back');
        const again = await subscriber((name) => name === victim.name);
        if (again !== undefined && again.id !== victim.id) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      missed = (await seqNow()) - atKill;
    }
    console.log(`# ${missed} messages published while the subscription was down`);
    await Promise.all(streams);
    await until(() => acked === 80, 'every publish acknowledged');
    await until(() => followers.every((f) => f.got.length >= 80), 'every client caught up', 60_000);
    const reference = followers[0].got.map((g) => `${g.data.p}:${g.data.i}`);
    for (const [k, f] of followers.entries()) {
      assert.equal(f.got.length, 80, `client ${k} got ${f.got.length}`);
      assertConsecutive(f, `client ${k}`);
      assert.deepEqual(
        f.got.map((g) => `${g.data.p}:${g.data.i}`),
        reference,
        `client ${k}: another order`,
      );
      for (const p of [0, 1])
        assert.deepEqual(
          f.got.filter((g) => g.data.p === p).map((g) => g.data.i),
          Array.from({ length: 40 }, (_, i) => i + 1),
          `client ${k}, publisher ${p}`,
        );
      assert.equal(f.resets, 1, `client ${k}: filled, not reset`);
    }
  });

  it('a publish id sent again to another process is answered with the original ack, not published twice; a flushed Redis gives a new dedupScope', async () => {
    const { urls, prefix } = await serve(2, 'dedup');
    const [a, b] = [await channelClient(urls[0]), await channelClient(urls[1])];
    try {
      const scope = a.got[0].dedupScope;
      assert.equal(typeof scope, 'string');
      assert.deepEqual(b.got[0], a.got[0], 'the same limits and scope from both processes');
      assert.equal(a.got[0].dedupMs, 120000);
      const watcher = follow(`${urls[1]}/channel`);
      clients.push(watcher.client);
      await until(() => watcher.subscribed, 'the watcher');
      const publish = { type: 'publish', topic: 'chat', data: { p: 1, i: 1 }, id: 'page-session.1' };
      a.ws.send(JSON.stringify(publish));
      await until(() => a.got.some((m) => m.type === 'ack'), 'the ack');
      const ack = a.got.find((m) => m.type === 'ack')!;
      assert.deepEqual(ack, { type: 'ack', id: 'page-session.1', topic: 'chat', seq: ack.seq });
      // The page lost its connection before the ack and resent it through the other process.
      b.ws.send(JSON.stringify(publish));
      await until(() => b.got.some((m) => m.type === 'ack'), 'the second ack');
      assert.deepEqual(
        b.got.find((m) => m.type === 'ack'),
        { ...ack, duplicate: true },
      );
      a.ws.send(JSON.stringify({ type: 'publish', topic: 'chat', data: { p: 1, i: 2 }, id: 'page-session.2' }));
      await until(() => watcher.got.length === 2, 'the next message');
      assert.deepEqual(
        watcher.got.map((g) => g.data.i),
        [1, 2],
        'published once',
      );
      // Redis loses this application's data: new connections are told of a new memory.
      await deleteKeys(admin, prefix);
      let fresh: Record<string, unknown> | undefined;
      for (let tries = 0; fresh === undefined; tries++) {
        assert.ok(tries < 100, 'the scope never changed');
        const c = await channelClient(urls[tries % 2]);
        if (c.got[0].dedupScope !== scope) fresh = c.got[0];
        c.ws.close();
        if (fresh === undefined) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(typeof fresh.dedupScope, 'string');
    } finally {
      a.ws.close();
      b.ws.close();
    }
  });

  it('--workers 2 --redis: /chat and /channel across the workers, one tick a second in all', async () => {
    const { urls } = await serve(1, 'workers', ['--workers', '2']);
    const url = urls[0];
    const chats = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const ws = new WS(`${url}/chat`);
        const got: string[] = [];
        ws.on('message', (d: Buffer) => got.push(d.toString()));
        await new Promise((resolve, reject) => {
          ws.once('open', resolve);
          ws.once('error', reject);
        });
        return { ws, got };
      }),
    );
    assert.equal(serverPidsOn(Number(new URL(url).port)).size, 2, 'connections on both workers');
    await probeUntilAllHear(chats);
    const real = (c: { got: string[] }): string[] => withoutProbes(c.got);
    for (let i = 0; i < 12; i++) chats[i % 6].ws.send(`m${i}`);
    await until(() => chats.every((c) => real(c).length === 12), 'every chat message');
    assert.equal(new Set(chats.map((c) => real(c).join(','))).size, 1, 'one order for all');
    const followers = followMany([url], 6);
    await until(() => followers.every((f) => f.subscribed), 'the channel subscriptions');
    void followers[0].client.publish('chat', { p: 9, i: 1 });
    await until(() => followers.every((f) => f.got.length === 1), 'the channel message everywhere');
    const ticks: number[] = [];
    const ticker = new WS(`${url}/ticker`);
    ticker.on('message', (d: Buffer) => ticks.push((JSON.parse(d.toString()) as { seq: number }).seq));
    await until(() => ticks.length >= 4, 'four ticks', 20_000);
    ticker.close();
    for (const c of chats) c.ws.close();
    // One process ticks (the lease holder): its run numbers follow each other. Two tickers
    // would interleave two series.
    for (let k = 1; k < ticks.length; k++) assert.equal(ticks[k], ticks[k - 1] + 1, `ticks ${ticks.join(', ')}`);
    // A worker that dies is started again; the port keeps serving.
    const primary = processes.at(-1)!;
    const workerPids = execFileSync('pgrep', ['-P', String(primary.child.pid)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map(Number);
    assert.equal(workerPids.length, 2, 'two workers');
    process.kill(workerPids[0], 'SIGKILL');
    await until(() => /exited \(SIGKILL\); starting another/.test(primary.stderr()), 'the restart');
    await until(
      () =>
        execFileSync('pgrep', ['-P', String(primary.child.pid)], { encoding: 'utf8' })
          .trim()
          .split('\n').length === 2,
      'two workers again',
    );
    const again = new WS(`${url}/echo`);
    const echoed = new Promise<string>((resolve) => again.once('message', (d: Buffer) => resolve(d.toString())));
    again.once('open', () => again.send('still serving'));
    assert.equal(await echoed, 'still serving');
    again.close();
    // SIGTERM to the primary stops every worker, and duet serve exits 0.
    assert.equal(await stopGracefully(primary), 0);
  });

  it("the ticker's process killed: another takes the ticker over within the lease and goes on from the last tick", async () => {
    interface Tick {
      seq: number;
      value: number;
    }
    const listen = (url: string): { ws: WS; ticks: Tick[] } => {
      const ws = new WS(`${url}/ticker`);
      const ticks: Tick[] = [];
      ws.on('message', (d: Buffer) => ticks.push(JSON.parse(d.toString()) as Tick));
      return { ws, ticks };
    };
    // The first process holds the ticker (alone when it starts)...
    const { urls, prefix } = await serve(1, 'ticker');
    const first = processes.at(-1)!;
    const a = listen(urls[0]);
    await until(() => a.ticks.length >= 2, 'ticks from the first process');
    // ...a second one joins on the same Redis; its client gets the first one's ticks.
    const second = await startDuet(['serve', '--port', '0', '--redis', REDIS_URL, '--redis-prefix', prefix]);
    processes.push(second);
    const b = listen(second.url);
    await until(() => b.ticks.length >= 2, 'ticks through Redis');
    first.child.kill('SIGKILL');
    const atKill = b.ticks.length;
    // The lease (3 s) runs out and the second process ticks: 3 more after the kill.
    await until(() => b.ticks.length >= atKill + 3, 'ticks after the takeover', 20_000);
    a.ws.close();
    b.ws.close();
    for (let k = 1; k < b.ticks.length; k++) {
      const [before, after] = [b.ticks[k - 1], b.ticks[k]];
      assert.equal(after.seq, before.seq + 1, `one count: ${b.ticks.map((t) => t.seq).join(', ')}`);
      assert.ok(Math.abs(after.value - before.value) <= 1.01, `one walk: ${before.value} then ${after.value}`);
    }
  });
});
