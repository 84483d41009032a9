/**
 * `duet serve` end to end: the built CLI in a child process, real clients (ws), SIGTERM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import WS from 'ws';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { selfSignedCert } from '../tls-helpers.js';
import { probeUntilAllHear, serverPidsOn, withoutProbes } from '../helpers.js';
import { CLI, startDuet, type Listening } from './cli-process.js';

type Served = Listening;

const DEMO_INDEX = fileURLToPath(new URL('../../dist/demo/index.html', import.meta.url));

function serve(args: string[] = []): Promise<Served> {
  return startDuet(['serve', '--port', '0', ...args]);
}

/** Wait (bounded) until the command printed `text` on stdout. */
async function waitForOutput(s: Served, text: string): Promise<void> {
  for (let i = 0; i < 500 && !s.stdout().includes(text); i++) await new Promise((r) => setTimeout(r, 10));
}

function open(url: string, options?: WS.ClientOptions): Promise<WS> {
  const ws = new WS(url, options);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/**
 * A /channel connection: every message parsed into `got` from the first on (listening before
 * `open`, since the server's first message may come with the handshake's answer), the `limits`
 * message it starts with taken out into `limits`.
 */
async function openChannel<M = Record<string, unknown>>(
  url: string,
): Promise<{ ws: WS; got: M[]; limits: Record<string, unknown> }> {
  const ws = new WS(`${url}/channel`);
  const got: M[] = [];
  ws.on('message', (d: Buffer) => got.push(JSON.parse(d.toString()) as M));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const deadline = Date.now() + 5000;
  while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const limits = got.shift() as Record<string, unknown> | undefined;
  if (limits?.type !== 'limits') throw new Error(`the first message is not limits: ${JSON.stringify(limits)}`);
  return { ws, got, limits };
}

function nextMessage(ws: WS): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) => ws.once('message', (data, isBinary) => resolve({ data: data as Buffer, isBinary })));
}

test('prints LISTENING with the real port on 127.0.0.1 by default, then where to open the demo', async () => {
  const s = await serve();
  try {
    assert.match(s.url, /^ws:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(s.url, 'ws://127.0.0.1:0');
    const port = s.url.split(':').pop()!;
    // The LISTENING line stays as it always was (tools parse it); the browser's line follows.
    await waitForOutput(s, 'open ');
    const what = existsSync(DEMO_INDEX) ? 'the demo' : 'the test page (npm run build:demo builds the demo)';
    assert.equal(s.stdout(), `LISTENING ws://127.0.0.1:${port}\nopen http://127.0.0.1:${port}/ for ${what}\n`);
  } finally {
    s.child.kill('SIGTERM');
    await once(s.child, 'exit');
  }
});

test('--deflate accepts permessage-deflate on the endpoints (off without it); /echo and /chat round trip compressed', async () => {
  const plain = await serve();
  const s = await serve(['--deflate']);
  try {
    const off = await open(`${plain.url}/echo`);
    assert.equal(off.extensions, '');
    off.terminate();
    const echo = await open(`${s.url}/echo`);
    assert.match(echo.extensions, /^permessage-deflate/);
    const big = JSON.stringify({ rows: Array.from({ length: 500 }, (_, i) => ({ i, name: `row ${i}` })) });
    const back = nextMessage(echo);
    echo.send(big);
    assert.equal((await back).data.toString(), big);
    const chat = await open(`${s.url}/chat`);
    assert.match(chat.extensions, /^permessage-deflate/);
    const relayed = nextMessage(chat);
    chat.send(big);
    assert.equal((await relayed).data.toString(), big);
    echo.terminate();
    chat.terminate();
  } finally {
    for (const child of [plain.child, s.child]) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  }
});

test('/echo returns every message with its type; /chat relays to everyone in order; SIGTERM closes with 1001 and exits 0', async () => {
  const s = await serve();
  const echo = await open(`${s.url}/echo`);
  const text = nextMessage(echo);
  echo.send('héllo');
  assert.deepEqual(await text, { data: Buffer.from('héllo'), isBinary: false });
  const bin = nextMessage(echo);
  echo.send(Buffer.from([0, 1, 2, 255]));
  assert.deepEqual(await bin, { data: Buffer.from([0, 1, 2, 255]), isBinary: true });

  const a = await open(`${s.url}/chat`);
  const b = await open(`${s.url}/chat`);
  const seenA: string[] = [];
  const seenB: string[] = [];
  a.on('message', (d) => seenA.push((d as Buffer).toString()));
  b.on('message', (d) => seenB.push((d as Buffer).toString()));
  const expected: string[] = [];
  for (let i = 0; i < 20; i++) {
    a.send(`a${i}`);
    expected.push(`a${i}`);
  }
  const deadline = Date.now() + 5000;
  while ((seenA.length < 20 || seenB.length < 20) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(seenA, expected, 'the sender gets its own messages, in order');
  assert.deepEqual(seenB, expected, 'other clients get every message, in order');

  const codes = Promise.all([echo, a, b].map((ws) => once(ws, 'close').then(([code]) => code as number)));
  s.child.kill('SIGTERM');
  const [exitCode] = (await once(s.child, 'exit')) as [number | null];
  assert.deepEqual(await codes, [1001, 1001, 1001]);
  assert.equal(exitCode, 0);
});

test('SIGINT also exits 0', async () => {
  const s = await serve();
  const ws = await open(`${s.url}/echo`);
  const closed = once(ws, 'close');
  s.child.kill('SIGINT');
  const [exitCode] = (await once(s.child, 'exit')) as [number | null];
  assert.equal((await closed)[0], 1001);
  assert.equal(exitCode, 0);
});

test('GET / serves an HTML page (the demo, or the test page), /test the test page; unknown WebSocket paths get 404', async () => {
  const s = await serve();
  try {
    const http = s.url.replace('ws://', 'http://');
    const home = await fetch(`${http}/`);
    assert.equal(home.status, 200);
    assert.match(home.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await home.text(), /<!doctype html>/i);
    const page = await fetch(`${http}/test`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await page.text(), /\/chat/);
    // The page, the demo and the plain answers: never sniffed as another type, never cached stale.
    for (const [path, method, status] of [
      ['/test', 'GET', 200],
      ['/test', 'HEAD', 200],
      ['/', 'GET', 200],
      ['/chat', 'GET', 426],
      ['/no-such-file.txt', 'GET', 404],
    ] as const) {
      const res = await fetch(`${http}${path}`, { method });
      assert.equal(res.status, status, `${method} ${path}`);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', `${method} ${path}`);
      assert.equal(res.headers.get('cache-control'), 'no-cache', `${method} ${path}`);
      await res.arrayBuffer();
    }
    const ws = new WS(`${s.url}/nope`);
    const [err] = (await once(ws, 'error')) as [Error];
    assert.match(err.message, /404/);
  } finally {
    s.child.kill('SIGTERM');
    await once(s.child, 'exit');
  }
});

test('/ticker pushes one JSON tick a second to every client, the same tick to all', async () => {
  type Tick = { type: string; seq: number; time: string; value: number };
  const s = await serve();
  try {
    const a = await open(`${s.url}/ticker`);
    const b = await open(`${s.url}/ticker`);
    const ticksA: Tick[] = [];
    const ticksB: Tick[] = [];
    // Both clients are subscribed once open, so every tick B gets reaches A too; wait (on the
    // messages, within a bound) until both saw the same two ticks, however late B joined.
    const bothSawTwo = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(`no two common ticks within 10 s: A ${JSON.stringify(ticksA)}, B ${JSON.stringify(ticksB)}`),
          ),
        10_000,
      );
      const check = (): void => {
        const seqsA = new Set(ticksA.map((t) => t.seq));
        if (ticksB.filter((t) => seqsA.has(t.seq)).length >= 2) {
          clearTimeout(timer);
          resolve();
        }
      };
      a.on('message', (d) => {
        ticksA.push(JSON.parse((d as Buffer).toString()) as Tick);
        check();
      });
      b.on('message', (d) => {
        ticksB.push(JSON.parse((d as Buffer).toString()) as Tick);
        check();
      });
      for (const ws of [a, b]) ws.once('close', (code) => reject(new Error(`closed with ${code}`)));
    });
    await bothSawTwo;
    a.close();
    b.close();
    const byA = new Map(ticksA.map((t) => [t.seq, t]));
    const common = ticksB.filter((t) => byA.has(t.seq));
    for (const t of common) assert.deepEqual(t, byA.get(t.seq), 'every client gets the same tick');
    const [first, second] = common;
    assert.equal(first.type, 'tick');
    assert.ok(Number.isFinite(first.value) && first.value > 0);
    assert.ok(!Number.isNaN(Date.parse(first.time)));
    // Seqs count periods on the server's grid (a run late by a whole period skips a slot), so
    // the times are about a second per seq apart; generous bounds for a busy machine.
    for (const ticks of [ticksA, ticksB]) {
      for (let i = 1; i < ticks.length; i++)
        assert.ok(ticks[i].seq > ticks[i - 1].seq, `in order: ${ticks.map((t) => t.seq).join(',')}`);
    }
    const periods = second.seq - first.seq;
    const gap = Date.parse(second.time) - Date.parse(first.time);
    assert.ok(
      gap > periods * 1000 - 500 && gap < periods * 1000 + 2000,
      `about a second per seq apart (${gap} ms for ${periods})`,
    );
  } finally {
    s.child.kill('SIGTERM');
    await once(s.child, 'exit');
  }
});

test('/channel: chat keeps history, so a client that reconnects recovers exactly what it missed', async () => {
  const s = await serve();
  try {
    const waitFor = async (got: unknown[], n: number): Promise<void> => {
      const deadline = Date.now() + 5000;
      while (got.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(got.length >= n, `expected ${n} messages, got ${JSON.stringify(got)}`);
    };
    const { ws: a, got: gotA } = await openChannel(s.url);
    a.send(JSON.stringify({ type: 'subscribe', topic: 'chat' }));
    for (const text of ['one', 'two']) a.send(JSON.stringify({ type: 'publish', topic: 'chat', data: { text } }));
    await waitFor(gotA, 3);
    const subscribed = gotA[0] as { epoch: string; seq: number };
    const last = gotA[2] as { seq: number };
    a.close();
    await once(a, 'close');

    const { ws: b, got: gotB } = await openChannel(s.url);
    b.send(JSON.stringify({ type: 'subscribe', topic: 'chat' }));
    for (const text of ['three', 'four']) b.send(JSON.stringify({ type: 'publish', topic: 'chat', data: { text } }));
    await waitFor(gotB, 3);

    const { ws: again, got: gotAgain } = await openChannel(s.url);
    again.send(JSON.stringify({ type: 'subscribe', topic: 'chat', since: last.seq, epoch: subscribed.epoch }));
    await waitFor(gotAgain, 3);
    assert.deepEqual(gotAgain[0], {
      type: 'subscribed',
      topic: 'chat',
      epoch: subscribed.epoch,
      seq: last.seq + 2,
      recovered: true,
    });
    assert.deepEqual(
      gotAgain.slice(1).map((m) => (m as { data: { text: string } }).data.text),
      ['three', 'four'],
    );
    b.close();
    again.close();
  } finally {
    s.child.kill('SIGTERM');
    await once(s.child, 'exit');
  }
});

interface RecentAnswer {
  topic: string;
  epoch: string;
  seq: number;
  since: number;
}

test('GET /channel/recent?topic=chat: where to subscribe from for the chat kept so far; a page opened later gets it', async () => {
  const s = await serve();
  const http = s.url.replace('ws://', 'http://');
  const clients: WS[] = [];
  try {
    const writer = await open(`${s.url}/channel`);
    clients.push(writer);
    const seen: Array<{ type: string; seq?: number; data?: unknown }> = [];
    // The limits message the server starts with may come before or after this listener.
    writer.on('message', (d: Buffer) => {
      const m = JSON.parse(d.toString()) as { type: string };
      if (m.type !== 'limits') seen.push(m);
    });
    writer.send(JSON.stringify({ type: 'subscribe', topic: 'chat' }));
    for (const text of ['one', 'two', 'three'])
      writer.send(JSON.stringify({ type: 'publish', topic: 'chat', data: { text } }));
    for (let i = 0; i < 500 && seen.filter((m) => m.type === 'message').length < 3; i++)
      await new Promise((r) => setTimeout(r, 10));

    const res = await fetch(`${http}/channel/recent?topic=chat`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    const recent = (await res.json()) as RecentAnswer;
    assert.deepEqual({ ...recent, epoch: typeof recent.epoch }, { topic: 'chat', epoch: 'string', seq: 3, since: 0 });

    // A later client subscribing from there gets the three, then live messages.
    const later = await open(`${s.url}/channel`);
    clients.push(later);
    const got: Array<{ type: string; seq?: number; recovered?: boolean; data?: { text: string } }> = [];
    later.on('message', (d: Buffer) => {
      const m = JSON.parse(d.toString()) as { type: string };
      if (m.type !== 'limits') got.push(m);
    });
    later.send(JSON.stringify({ type: 'subscribe', topic: 'chat', since: recent.since, epoch: recent.epoch }));
    for (let i = 0; i < 500 && got.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(got[0].type, 'subscribed');
    assert.equal(got[0].recovered, true);
    assert.deepEqual(
      got.slice(1).map((m) => m.data?.text),
      ['one', 'two', 'three'],
    );

    for (const [query, status, body] of [
      ['?topic=nope', 404, /^\{"error":"no topic \\"nope\\" on \/channel"\}\n$/],
      ['', 400, /say which topic/],
    ] as const) {
      const answer = await fetch(`${http}/channel/recent${query}`);
      assert.equal(answer.status, status, query);
      assert.match(await answer.text(), body, query);
    }
    // Presence keeps no history: its since is its seq (nothing to replay).
    const presence = (await (await fetch(`${http}/channel/recent?topic=presence`)).json()) as RecentAnswer;
    assert.equal(presence.since, presence.seq);
    const post = await fetch(`${http}/channel/recent?topic=chat`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    await post.arrayBuffer();
  } finally {
    for (const ws of clients) ws.terminate();
    s.child.kill('SIGTERM');
    await once(s.child, 'exit');
  }
});

test('/channel: the server stamps who sent chat and presence; nobody can speak, join or leave for another; a closed connection is said to leave', async () => {
  const s = await serve();
  try {
    interface In {
      type: string;
      topic?: string;
      id?: string;
      code?: string;
      from?: { id: string; nick?: string };
      data?: unknown;
    }
    const client = async (): Promise<{ ws: WS; got: In[]; next(): Promise<In> }> => {
      const { ws, got } = await openChannel<In>(s.url);
      let read = 0;
      return {
        ws,
        got,
        async next(): Promise<In> {
          const deadline = Date.now() + 5000;
          while (got.length <= read && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
          assert.ok(got.length > read, `no message after ${JSON.stringify(got)}`);
          return got[read++];
        },
      };
    };
    const send = (ws: WS, m: object): void => ws.send(JSON.stringify(m));
    const ada = await client();
    const eve = await client();
    send(ada.ws, { type: 'hello', nick: 'ada' });
    const adaId = (await ada.next()).id!;
    send(eve.ws, { type: 'hello', nick: 'eve' });
    const eveId = (await eve.next()).id!;
    assert.notEqual(adaId, eveId);
    for (const c of [ada, eve]) {
      send(c.ws, { type: 'subscribe', topic: 'presence' });
      send(c.ws, { type: 'subscribe', topic: 'chat' });
      assert.equal((await c.next()).type, 'subscribed');
      assert.equal((await c.next()).type, 'subscribed');
    }
    // Eve tries to make ada leave, to join as ada, to chat as ada: each refused.
    for (const m of [
      { type: 'publish', topic: 'presence', data: { id: adaId, nick: 'ada', state: 'leave' } },
      { type: 'publish', topic: 'presence', data: { state: 'join' }, from: { id: adaId, nick: 'ada' } },
      { type: 'publish', topic: 'chat', data: { nick: 'ada', text: 'it is me, ada' } },
    ]) {
      send(eve.ws, m);
      const answer = await eve.next();
      assert.deepEqual([answer.type, answer.code, answer.topic], ['error', 'identity', m.topic]);
    }
    // What eve may say goes out as eve's; ada saw nothing else.
    send(eve.ws, { type: 'publish', topic: 'chat', data: { text: 'hi' } });
    const chat = await ada.next();
    assert.deepEqual([chat.topic, chat.from, chat.data], ['chat', { id: eveId, nick: 'eve' }, { text: 'hi' }]);
    await eve.next();
    // Eve leaves: the server says so, as eve.
    eve.ws.close();
    const leave = await ada.next();
    assert.deepEqual(
      [leave.topic, leave.from, leave.data],
      ['presence', { id: eveId, nick: 'eve' }, { state: 'leave' }],
    );
    ada.ws.close();
  } finally {
    s.child.kill('SIGTERM');
    await once(s.child, 'exit');
  }
});

test('--max-payload is enforced with close 1009', async () => {
  const s = await serve(['--max-payload', '100']);
  try {
    const ws = await open(`${s.url}/echo`);
    const closed = once(ws, 'close');
    ws.send(Buffer.alloc(101));
    assert.equal((await closed)[0], 1009);
  } finally {
    s.child.kill('SIGTERM');
    await once(s.child, 'exit');
  }
});

test('--deflate: a compressed message may inflate to --max-inflated-payload bytes (1 MiB by default), 1009 past it', async () => {
  const s = await serve(['--deflate', '--max-inflated-payload', '2000']);
  try {
    const ws = await open(`${s.url}/echo`, { perMessageDeflate: { threshold: 0 } });
    const back = nextMessage(ws);
    ws.send('a'.repeat(2000));
    assert.equal((await back).data.length, 2000);
    const closed = once(ws, 'close');
    ws.send('a'.repeat(2001)); // about 20 bytes on the wire
    assert.equal((await closed)[0], 1009);
  } finally {
    s.child.kill('SIGTERM');
    await once(s.child, 'exit');
  }
  const d = await serve(['--deflate']);
  try {
    const ws = await open(`${d.url}/echo`);
    const back = nextMessage(ws);
    ws.send(Buffer.alloc(1024 * 1024));
    assert.equal((await back).data.length, 1024 * 1024);
    const closed = once(ws, 'close');
    ws.send(Buffer.alloc(1024 * 1024 + 1));
    assert.equal((await closed)[0], 1009);
  } finally {
    d.child.kill('SIGTERM');
    await once(d.child, 'exit');
  }
  const child = spawn(process.execPath, [CLI, 'serve', '--deflate', '--max-inflated-payload', '4MiB'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 1);
  assert.match(err, /--max-inflated-payload must be a whole number/);
});

test('bad arguments exit 1 with a one-line reason: --port abc or -1, an unknown option', async () => {
  for (const [args, reason] of <Array<[string[], string]>>[
    [['--port', 'abc'], 'duet: --port "abc" is not a valid port: use 0-65535 (0 picks a free one)\n'],
    [['--port', '-1'], 'duet: --port "-1" is not a valid port: use 0-65535 (0 picks a free one)\n'],
    [['--prot', '80'], `duet: Unknown option '--prot'\n("duet help serve" lists the options)\n`],
  ]) {
    const child = spawn(process.execPath, [CLI, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 1, args.join(' '));
    assert.ok(err.startsWith(reason), `${args.join(' ')}: ${err}`);
  }
});

test('--workers and --redis: bad values and a Redis that does not answer exit 1 with the reason', async () => {
  const run = async (args: string[]): Promise<{ code: number | null; err: string }> => {
    const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    return { code, err };
  };
  const cases: Array<[string[], RegExp]> = [
    [['--workers', '0'], /--workers must be 1-64, got 0/],
    [['--workers', '65'], /--workers must be 1-64, got 65/],
    [['--workers', 'two'], /--workers must be a whole number/],
    [['--redis-prefix', 'x:'], /--redis-prefix goes with --redis/],
    // Nothing listens on port 1: the broker cannot connect, serve says so and fails.
    [['--redis', 'redis://127.0.0.1:1'], /cannot reach Redis at 127\.0\.0\.1:1/],
    // The same in workers: the primary stops the other worker and fails too.
    [['--workers', '2', '--redis', 'redis://127.0.0.1:1'], /a worker exited before listening \(code 1\); stopping/],
  ];
  for (const [args, reason] of cases) {
    const { code, err } = await run(args);
    assert.equal(code, 1, args.join(' '));
    assert.match(err, reason, args.join(' '));
  }
});

test('--workers 2 without Redis: /chat and /channel across the workers through the primary, one ticker, SIGTERM stops all', async () => {
  const s = await serve(['--workers', '2']);
  const clients: WS[] = [];
  try {
    const until = async (check: () => boolean, what: string): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    // The cluster hands connections to the workers in turn: six land on both.
    const chats = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const ws = await open(`${s.url}/chat`);
        clients.push(ws);
        const got: string[] = [];
        ws.on('message', (d: Buffer) => got.push(d.toString()));
        return { ws, got };
      }),
    );
    assert.equal(serverPidsOn(Number(new URL(s.url).port)).size, 2, 'connections on both workers');
    await probeUntilAllHear(chats);
    const real = (c: { got: string[] }): string[] => withoutProbes(c.got);
    for (let i = 0; i < 12; i++) chats[i % 6].ws.send(`m${i}`);
    await until(() => chats.every((c) => real(c).length === 12), 'every chat message on every client');
    assert.equal(new Set(chats.map((c) => real(c).join(','))).size, 1, 'one order for all');
    // The channel: subscribe on every connection, publish from one, numbered once for all.
    const channel = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const c = await openChannel<{ type: string; seq?: number; data?: unknown; duplicate?: boolean }>(s.url);
        clients.push(c.ws);
        c.ws.send(JSON.stringify({ type: 'subscribe', topic: 'chat' }));
        return c;
      }),
    );
    // Every worker knows the primary's memory of publish ids before it serves anyone.
    assert.equal(typeof channel[0].limits.dedupScope, 'string');
    assert.equal(channel[0].limits.dedupMs, 120000);
    assert.equal(new Set(channel.map((c) => c.limits.dedupScope)).size, 1, 'one scope in every worker');
    await until(() => channel.every((c) => c.got.some((m) => m.type === 'subscribed')), 'the subscriptions');
    channel[0].ws.send(JSON.stringify({ type: 'publish', topic: 'chat', data: { text: 'hi' } }));
    await until(() => channel.every((c) => c.got.some((m) => m.type === 'message')), 'the channel message');
    const seqs = channel.map((c) => c.got.find((m) => m.type === 'message')!.seq);
    assert.equal(new Set(seqs).size, 1, `one seq for everyone: ${seqs.join(', ')}`);
    // A publish id resent on every connection (both workers): published once, the rest answered
    // with the first ack and duplicate: true.
    for (const c of channel) c.ws.send(JSON.stringify({ type: 'publish', topic: 'chat', data: 'x', id: 'once.1' }));
    await until(() => channel.every((c) => c.got.some((m) => m.type === 'ack')), 'the acks');
    const acks = channel.map((c) => c.got.find((m) => m.type === 'ack')!);
    assert.equal(new Set(acks.map((a) => a.seq)).size, 1, 'one seq');
    assert.equal(acks.filter((a) => a.duplicate !== true).length, 1, 'published once');
    channel[0].ws.send(JSON.stringify({ type: 'publish', topic: 'chat', data: 'marker' }));
    await until(() => channel.every((c) => c.got.some((m) => m.data === 'marker')), 'the marker');
    assert.equal(channel[1].got.filter((m) => m.data === 'x').length, 1, 'delivered once');
    // One process ticks (the lease holder): its run numbers follow each other.
    const ticks: number[] = [];
    const ticker = await open(`${s.url}/ticker`);
    clients.push(ticker);
    ticker.on('message', (d: Buffer) => ticks.push((JSON.parse(d.toString()) as { seq: number }).seq));
    await until(() => ticks.length >= 3, 'three ticks');
    for (let k = 1; k < ticks.length; k++) assert.equal(ticks[k], ticks[k - 1] + 1, `ticks ${ticks.join(', ')}`);
    const exited = once(s.child, 'exit');
    s.child.kill('SIGTERM');
    assert.equal(((await exited) as [number | null])[0], 0);
  } finally {
    for (const ws of clients) ws.terminate();
    await s.stop();
  }
});

test('--tls-cert/--tls-key serve wss:// (echo over TLS)', async () => {
  const { cert, key } = selfSignedCert();
  const dir = mkdtempSync(join(tmpdir(), 'duet-cli-tls-'));
  writeFileSync(join(dir, 'cert.pem'), cert);
  writeFileSync(join(dir, 'key.pem'), key);
  const s = await serve(['--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')]);
  try {
    assert.match(s.url, /^wss:\/\/127\.0\.0\.1:\d+$/);
    const ws = await open(`${s.url}/echo`, { rejectUnauthorized: false });
    const reply = nextMessage(ws);
    ws.send('over tls');
    assert.deepEqual(await reply, { data: Buffer.from('over tls'), isBinary: false });
    const closed = once(ws, 'close');
    s.child.kill('SIGTERM');
    assert.equal((await closed)[0], 1001);
    const [exitCode] = (await once(s.child, 'exit')) as [number | null];
    assert.equal(exitCode, 0);
  } finally {
    if (s.child.exitCode === null) s.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--tls-cert without --tls-key, swapped or unreadable files: exit 1 with one line naming the file', async () => {
  const { cert, key } = selfSignedCert();
  const dir = mkdtempSync(join(tmpdir(), 'duet-cli-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  writeFileSync(certFile, cert);
  writeFileSync(keyFile, key);
  try {
    for (const [args, reason] of <Array<[string[], string]>>[
      [['--tls-cert', 'x.pem'], 'duet: --tls-cert and --tls-key go together\n'],
      [
        ['--tls-cert', keyFile, '--tls-key', certFile],
        `duet: --tls-cert and --tls-key look swapped: ${keyFile} holds a private key and ${certFile} a certificate; try --tls-cert ${certFile} --tls-key ${keyFile}\n`,
      ],
      [
        ['--tls-cert', join(dir, 'missing.pem'), '--tls-key', keyFile],
        `duet: --tls-cert ${join(dir, 'missing.pem')}: cannot read it: no such file (ENOENT)\n`,
      ],
      // With --workers the primary checks them before starting any worker.
      [
        ['--workers', '2', '--tls-cert', keyFile, '--tls-key', certFile],
        `duet: --tls-cert and --tls-key look swapped: `,
      ],
    ]) {
      const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 1, args.join(' '));
      assert.ok(err.startsWith(reason), `${args.join(' ')}: ${err}`);
      assert.equal(err.split('\n').length, 2, 'one line');
      assert.equal(out, '');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an upgrade to an unknown path gets 404 and its socket is freed: SIGTERM still exits promptly', async () => {
  const s = await serve();
  const { connect } = await import('node:net');
  const port = Number(s.url.split(':').pop());
  const sock = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(sock, 'connect');
  let response = '';
  sock.on('data', (d: Buffer) => (response += d.toString()));
  sock.on('error', () => {});
  sock.write(
    'GET /nope HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  // The server answers and ends its side; this client keeps its own side open and never
  // closes. The server must still let the socket go (it lingers at most a second).
  await once(sock, 'end');
  assert.match(response, /^HTTP\/1\.1 404 /);
  const started = Date.now();
  s.child.kill('SIGTERM');
  const [exitCode] = (await once(s.child, 'exit')) as [number | null];
  assert.equal(exitCode, 0);
  assert.ok(Date.now() - started < 2500, 'no socket held the exit');
  sock.destroy();
});

test('duet connect to a wss:// self-signed server: refused by default (one TLS line, exit 1), works with --insecure', async () => {
  const { cert, key } = selfSignedCert();
  const dir = mkdtempSync(join(tmpdir(), 'duet-cli-tls-'));
  writeFileSync(join(dir, 'cert.pem'), cert);
  writeFileSync(join(dir, 'key.pem'), key);
  const s = await serve(['--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')]);
  const run = (args: string[]) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'connect', ...args, `${s.url}/echo`], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.stdin.end('secure line\n');
      child.on('exit', (code) => resolve({ code, out, err }));
    });
  try {
    const refused = await run([]);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /^duet connect: TLS error with 127\.0\.0\.1:\d+: .+\n$/);
    const insecure = await run(['--insecure']);
    assert.equal(insecure.code, 0, insecure.err);
    assert.equal(insecure.out, 'secure line\n');
  } finally {
    s.child.kill('SIGTERM');
    await once(s.child, 'exit');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a port that is already taken: one line on stderr and exit code 1, no hang', async () => {
  const { createServer } = await import('node:net');
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const taken = (blocker.address() as { port: number }).port;
  try {
    const child = spawn(process.execPath, [CLI, 'serve', '--port', String(taken)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    assert.equal(code, 1, `exit ${code}; stderr: ${err}`);
    assert.match(err, /EADDRINUSE/);
  } finally {
    blocker.close();
  }
});
