/**
 * Connection behaviour not covered by the raw-TCP table: listener failures, the close
 * handshake from both ends, WHATWG events on the server side.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import WS, { WebSocketServer as WsServer } from 'ws';
import { startServer, HOST, RawClient, clientFrame, closePayload, upgradeRequest } from '../helpers.js';
import type { WebSocket } from '../../src/index.js';

/** A ws client connected to `s`, and the server side of its connection. */
async function connectPair(s: {
  wss: { once(event: 'connection', l: (ws: WebSocket) => void): unknown };
  port: number;
}): Promise<{ c: WS; ws: WebSocket }> {
  const conn = new Promise<WebSocket>((resolve) => s.wss.once('connection', resolve));
  const c = new WS(`ws://${HOST}:${s.port}/`);
  await once(c, 'open');
  return { c, ws: await conn };
}

test('a message listener that throws fails only that connection, with 1011, and the process survives', async () => {
  const s = await startServer();
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  try {
    s.wss.on('connection', (ws) => {
      ws.on('message', (data) => {
        if ((data as Buffer).toString() === 'boom') throw new Error('application bug');
        ws.send(data);
      });
    });
    const good = new WS(`ws://${HOST}:${s.port}/`);
    const bad = new WS(`ws://${HOST}:${s.port}/`);
    await Promise.all([once(good, 'open'), once(bad, 'open')]);
    const closed = once(bad, 'close');
    bad.send('boom');
    const [code] = (await closed) as [number];
    assert.equal(code, 1011);
    good.send('still here');
    const [reply] = (await once(good, 'message')) as [Buffer];
    assert.equal(reply.toString(), 'still here');
    await new Promise((r) => setImmediate(r));
    assert.ok(warnings.some((w) => (w as Error & { code?: string }).code === 'WS_ERR_UNEXPECTED_CONDITION'));
    good.close();
  } finally {
    process.off('warning', onWarning);
    await s.close();
  }
});

test('with an error listener, a throwing listener is reported there with the cause', async () => {
  const s = await startServer();
  try {
    const errors = new Promise<Error & { code?: string; cause?: unknown }>((resolve) => {
      s.wss.on('connection', (ws) => {
        ws.on('error', resolve);
        ws.on('message', () => {
          throw new Error('bug');
        });
      });
    });
    const c = new WS(`ws://${HOST}:${s.port}/`);
    await once(c, 'open');
    c.send('x');
    const err = await errors;
    assert.equal(err.code, 'WS_ERR_UNEXPECTED_CONDITION');
    assert.equal((err.cause as Error).message, 'bug');
  } finally {
    await s.close();
  }
});

test('server-initiated close: wasClean, code and reason on both ends; readyState walks 1 -> 2 -> 3', async () => {
  const s = await startServer();
  try {
    const { c, ws } = await connectPair(s);
    assert.equal(ws.readyState, ws.OPEN);
    const events = new Promise<{ code: number; reason: string; wasClean: boolean }>((resolve) => {
      ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean });
    });
    const clientClosed = once(c, 'close');
    ws.close(4000, 'done here');
    assert.equal(ws.readyState, ws.CLOSING);
    const [code, reason] = (await clientClosed) as [number, Buffer];
    assert.equal(code, 4000);
    assert.equal(reason.toString(), 'done here');
    // ws echoes the code and the reason in its Close reply.
    assert.deepEqual(await events, { code: 4000, reason: 'done here', wasClean: true });
    assert.equal(ws.readyState, ws.CLOSED);
  } finally {
    await s.close();
  }
});

test('the same class works as the client side: masked frames out, unmasked in, client waits for the server to close TCP', async () => {
  const s = await startServer();
  try {
    s.wss.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(d as Buffer, { binary: isBinary })));
    const { connect } = await import('node:net');
    const { randomBytes } = await import('node:crypto');
    const { computeAccept } = await import('../../src/protocol/handshake.js');
    const { WebSocket: DuetSocket } = await import('../../src/index.js');
    const socket = connect(s.port, HOST);
    await once(socket, 'connect');
    const key = randomBytes(16).toString('base64');
    socket.write(
      `GET / HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    let head = Buffer.alloc(0);
    while (head.indexOf('\r\n\r\n') === -1) head = Buffer.concat([head, ((await once(socket, 'data')) as [Buffer])[0]]);
    const end = head.indexOf('\r\n\r\n');
    assert.match(
      head.subarray(0, end).toString(),
      new RegExp(`Sec-WebSocket-Accept: ${computeAccept(key).replace(/[+/]/g, '\\$&')}`),
    );
    socket.pause();
    const client = new DuetSocket();
    client.setSocket(socket, head.subarray(end + 4), {
      isServer: false,
      maxPayload: 0,
      closeTimeout: 1000,
      autoPong: true,
    });
    socket.resume();
    const big = Buffer.alloc(70_000, 7);
    const replies: Array<[string, boolean]> = [];
    const done = new Promise<void>((resolve) =>
      client.on('message', (d, isBinary) => {
        replies.push([isBinary ? `bin:${(d as Buffer).length}` : (d as Buffer).toString(), isBinary]);
        if (replies.length === 2) resolve();
      }),
    );
    client.send('from a duet client');
    client.send(big);
    await done;
    assert.deepEqual(replies, [
      ['from a duet client', false],
      ['bin:70000', true],
    ]);
    const closed = once(client, 'close');
    client.close(1000, 'bye');
    const [code] = (await closed) as [number];
    assert.equal(code, 1000);
    assert.equal(client.wasClean, true);
  } finally {
    await s.close();
  }
});

test('frames sent in the same write as the upgrade request reach listeners attached in `connection`', async () => {
  const s = await startServer();
  try {
    s.wss.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(d as Buffer, { binary: isBinary })));
    const request = Buffer.concat([
      Buffer.from(upgradeRequest()),
      clientFrame({ opcode: 0x1, payload: 'early' }),
      clientFrame({ opcode: 0x8, payload: closePayload(1000) }),
    ]);
    const c = await RawClient.connect(s.port, request);
    assert.equal(c.status, 101);
    assert.equal(await c.closeCode(), 1000);
    const texts = c
      .frames()
      .filter((f) => f.opcode === 0x1)
      .map((f) => f.payload.toString());
    assert.deepEqual(texts, ['early']);
  } finally {
    await s.close();
  }
});

test('a peer that sends but never reads cannot make the server queue replies without bound', async () => {
  const s = await startServer();
  try {
    const serverSide = new Promise<WebSocket>((resolve) =>
      s.wss.on('connection', (ws) => {
        ws.on('message', (d, isBinary) => ws.send(d as Buffer, { binary: isBinary }));
        resolve(ws);
      }),
    );
    const c = await RawClient.connect(s.port);
    const ws = await serverSide;
    c.socket.pause(); // the client stops reading
    const message = Buffer.alloc(256 * 1024, 3);
    const frame = clientFrame({ opcode: 0x2, payload: message });
    const count = 80; // 20 MiB in all
    for (let i = 0; i < count; i++) c.socket.write(frame);
    let maxBuffered = 0;
    for (let i = 0; i < 60; i++) {
      await new Promise((r) => setTimeout(r, 10));
      maxBuffered = Math.max(maxBuffered, ws.bufferedAmount);
    }
    assert.ok(c.socket.writableLength > 0, 'the client is held back by TCP flow control');
    assert.ok(maxBuffered < 2 * 1024 * 1024, `server-side queue stayed bounded (max ${maxBuffered} bytes)`);
    c.socket.resume();
    const expected = count * (message.length + 10);
    await c.until(() => c.received.length >= expected, 10_000);
    const frames = c.frames();
    assert.equal(frames.length, count);
    assert.ok(frames.every((f) => f.opcode === 0x2 && f.payload.equals(message)));
  } finally {
    await s.close();
  }
});

test('a peer that half-closes while the server still has unread data for it is dropped after closeTimeout (1006)', async () => {
  const s = await startServer({ closeTimeout: 300 });
  try {
    const closed = new Promise<number>((resolve) =>
      s.wss.on('connection', (ws) => {
        ws.on('close', (code) => resolve(code));
        ws.send(Buffer.alloc(8 * 1024 * 1024)); // more than the kernel buffers will take
      }),
    );
    const c = await RawClient.connect(s.port);
    c.socket.pause();
    await new Promise((r) => setTimeout(r, 100));
    c.socket.end(); // FIN without a Close frame, and never read
    const started = Date.now();
    assert.equal(await closed, 1006);
    assert.ok(Date.now() - started < 3000, 'dropped after closeTimeout, not left hanging');
    assert.equal(s.wss.clients.size, 0);
    c.destroy();
  } finally {
    await s.close();
  }
});

test('listeners are kept per event name with nothing inherited: constructor, toString, __proto__ and hasOwnProperty are plain event names', async () => {
  const { WebSocket: Ws } = await import('../../src/index.js');
  const ws = new Ws('ws://127.0.0.1:1/never', [], { handshakeTimeout: 1 });
  ws.on('error', () => {});
  const names = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'];
  for (const name of names) {
    assert.equal(ws.listenerCount(name), 0, name);
    assert.equal(ws.emit(name), false, `${name}: no listener, so emit() is false`);
  }
  const seen: string[] = [];
  for (const name of names) ws.on(name, () => seen.push(name));
  for (const name of names) assert.equal(ws.emit(name), true, name);
  assert.deepEqual(seen, names);
  assert.deepEqual(
    ws.eventNames().filter((n) => typeof n === 'string' && names.includes(n)),
    names,
  );
  for (const name of names) ws.removeAllListeners(name);
  for (const name of names) assert.equal(ws.listenerCount(name), 0, name);
  await new Promise((resolve) => ws.on('close', resolve));
});

// ---- reading resumes however the backlog fell (issue 13, point 6) -----------------------

/** Echo `count` messages of `size` bytes through `client`, all sent in one turn; resolves with how many came back. */
async function echoBurst(client: WS, count: number, size: number, ms = 30_000): Promise<number> {
  let got = 0;
  const payload = 'x'.repeat(size);
  const all = new Promise<void>((resolve) => {
    const onMessage = (): void => {
      if (++got === count) {
        client.off('message', onMessage);
        resolve();
      }
    };
    client.on('message', onMessage);
  });
  for (let i = 0; i < count; i++) client.send(payload);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([all, new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
  return got;
}

/** Ping with a distinct payload; resolves true when its Pong came back within `ms`. */
async function pingAnswered(client: WS, ms = 10_000): Promise<boolean> {
  const tag = `probe-${Math.random()}`;
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const onPong = (data: Buffer): void => {
      if (data.toString() !== tag) return;
      clearTimeout(timer);
      client.off('pong', onPong);
      resolve(true);
    };
    client.on('pong', onPong);
    client.ping(tag);
  });
}

test(
  'server: a burst of 3,000 x 1,000 B echoes, repeated, never wedges reading (a batch the kernel takes whole emits no drain)',
  { timeout: 120_000 },
  async () => {
    const s = await startServer({ heartbeat: false });
    try {
      s.wss.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(d as Buffer, { binary: isBinary })));
      const client = new WS(`ws://${HOST}:${s.port}/`, { perMessageDeflate: false });
      await once(client, 'open');
      for (let round = 0; round < 5; round++) {
        assert.equal(await echoBurst(client, 3000, 1000), 3000, `round ${round}: every echo back`);
        assert.ok(await pingAnswered(client), `round ${round}: a ping is still answered`);
      }
      // A burst of pings: their Pongs are small frames collected in one turn, past the read-pause mark.
      const big = Buffer.alloc(100, 7);
      for (let i = 0; i < 15_000; i++) client.ping(big);
      assert.ok(await pingAnswered(client, 30_000), 'after a ping burst, a ping is still answered');
      assert.equal(await echoBurst(client, 100, 1000), 100, 'and messages are echoed');
      client.terminate();
    } finally {
      await s.close();
    }
  },
);

test(
  'client: a duet client echoing a 3,000 x 1,000 B burst from a ws server keeps reading',
  { timeout: 120_000 },
  async () => {
    const { WebSocket: DuetWebSocket } = await import('../../src/index.js');
    const server = new WsServer({ port: 0, host: HOST, perMessageDeflate: false });
    await once(server, 'listening');
    try {
      const port = (server.address() as { port: number }).port;
      const serverSide = once(server, 'connection') as Promise<[WS]>;
      const client = new DuetWebSocket(`ws://${HOST}:${port}/`, [], { perMessageDeflate: false });
      client.binaryType = 'nodebuffer';
      client.on('message', (d: unknown, isBinary: boolean) => client.send(d as Buffer, { binary: isBinary }));
      const [peer] = await serverSide;
      for (let round = 0; round < 5; round++) {
        assert.equal(await echoBurst(peer, 3000, 1000), 3000, `round ${round}: every echo back`);
        assert.ok(await pingAnswered(peer), `round ${round}: a ping is still answered`);
      }
      client.terminate();
    } finally {
      for (const c of server.clients) c.terminate();
      await new Promise((r) => server.close(r));
    }
  },
);

// ---- close() never loses a queued message (issue 13, point 3) ----------------------------

for (const deflate of [false, true]) {
  test(
    `close() called twice right after send() loses nothing (permessage-deflate ${deflate ? 'on' : 'off'}); the second call is a no-op`,
    { timeout: 30_000 },
    async () => {
      const s = await startServer({ heartbeat: false, perMessageDeflate: deflate ? { threshold: 0 } : false });
      try {
        const errors: unknown[] = [];
        s.wss.on('connection', (ws) => {
          for (let i = 0; i < 50; i++) ws.send(`message ${i} `.repeat(100), (err) => err && errors.push(err));
          ws.close(1000, 'first');
          ws.close(4001, 'second'); // e.g. a shutdown path closing too
          assert.equal(ws.readyState, 2);
        });
        const client = new WS(`ws://${HOST}:${s.port}/`, { perMessageDeflate: deflate });
        const texts: string[] = [];
        client.on('message', (d: Buffer) => texts.push(d.toString()));
        const [code, reason] = (await once(client, 'close')) as [number, Buffer];
        assert.equal(texts.length, 50, `got ${texts.length} of 50`);
        assert.ok(
          texts.every((t, i) => t === `message ${i} `.repeat(100)),
          'in order, intact',
        );
        assert.deepEqual([code, reason.toString()], [1000, 'first'], 'the first close() decides the code');
        assert.deepEqual(errors, []);
        if (deflate) assert.match(String(client.extensions), /permessage-deflate/);
      } finally {
        await s.close();
      }
    },
  );
}

// ---- every send callback is called once, also for sends that never leave (issue 14, item 7) ----

/** A send callback that records each call, and a promise of its first call. */
function callbackProbe(): {
  cb: (err?: Error | null) => void;
  calls: Array<Error | null | undefined>;
  first: Promise<Error | null | undefined>;
} {
  const calls: Array<Error | null | undefined> = [];
  let resolve!: (err: Error | null | undefined) => void;
  const first = new Promise<Error | null | undefined>((r) => (resolve = r));
  return {
    calls,
    first,
    cb: (err) => {
      calls.push(err);
      resolve(err);
    },
  };
}

/** A few event-loop turns, for a second (wrong) call of a callback to show up. */
async function someTurns(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 50));
}

/** A Blob whose read fails (NotReadableError, as a Blob backed by a file that went away). */
function unreadableBlob(): Blob {
  return Object.setPrototypeOf(
    { size: 3, type: '', arrayBuffer: () => Promise.reject(new Error('NotReadableError')) },
    Blob.prototype,
  ) as Blob;
}

test(
  'send(blob, cb) with a Blob that cannot be read: 1011, and its callback and those of every send behind it get WS_ERR_BLOB_READ, once each',
  { timeout: 20_000 },
  async () => {
    const s = await startServer({ heartbeat: false });
    try {
      const { c, ws } = await connectPair(s);
      const errors: Array<Error & { code?: string }> = [];
      ws.on('error', (err) => errors.push(err));
      const received: string[] = [];
      c.on('message', (d: Buffer) => received.push(d.toString()));
      const clientClosed = once(c, 'close');
      // (Not events.once: it would reject on the 'error' event that comes first.)
      const serverClosed = new Promise((resolve) => ws.on('close', resolve));
      const probes = [callbackProbe(), callbackProbe(), callbackProbe()];
      ws.send('before', probes[0].cb);
      const blob = callbackProbe();
      ws.send(unreadableBlob(), blob.cb);
      ws.send('behind', probes[1].cb);
      ws.send(new Blob(['a readable Blob behind']), probes[2].cb);
      const [code] = (await clientClosed) as [number];
      assert.equal(code, 1011);
      const results = await Promise.all([blob.first, probes[1].first, probes[2].first]);
      for (const err of results)
        assert.equal((err as (Error & { code?: string }) | undefined)?.code, 'WS_ERR_BLOB_READ');
      assert.match(String(results[0]?.message), /NotReadableError/);
      assert.equal(((results[0] as Error & { cause?: unknown }).cause as Error).message, 'NotReadableError');
      assert.equal((await probes[0].first) ?? 'no error', 'no error', 'what was sent before the Blob went out');
      await serverClosed;
      await someTurns();
      assert.deepEqual(
        [blob, ...probes].map((p) => p.calls.length),
        [1, 1, 1, 1],
        'each callback exactly once',
      );
      assert.deepEqual(received, ['before'], 'nothing behind the Blob was sent');
      assert.deepEqual(
        errors.map((e) => e.code),
        ['WS_ERR_BLOB_READ'],
        "one 'error' event",
      );
    } finally {
      await s.close();
    }
  },
);

test('a promisified send() of an unreadable Blob rejects instead of never settling', { timeout: 20_000 }, async () => {
  const s = await startServer({ heartbeat: false });
  try {
    const { c, ws } = await connectPair(s);
    ws.on('error', () => {});
    const { promisify } = await import('node:util');
    const send = promisify((data: Blob | string, cb: (err?: Error | null) => void) => ws.send(data, cb));
    await assert.rejects(Promise.all([send(unreadableBlob()), send('behind')]), { code: 'WS_ERR_BLOB_READ' });
    await once(c, 'close');
  } finally {
    await s.close();
  }
});

test(
  'close() while a Blob is being read: the sends queued before it get their callback once, without error; a send after it once, with WS_ERR_NOT_OPEN',
  { timeout: 20_000 },
  async () => {
    const s = await startServer({ heartbeat: false });
    try {
      const { c, ws } = await connectPair(s);
      const received: string[] = [];
      c.on('message', (d: Buffer) => received.push(d.toString()));
      const clientClosed = once(c, 'close');
      const blob = callbackProbe();
      const behind = callbackProbe();
      const late = callbackProbe();
      ws.send(new Blob(['blob']), blob.cb);
      ws.send('behind', behind.cb);
      ws.close(1000, 'bye');
      ws.send('after close', late.cb);
      const [code] = (await clientClosed) as [number];
      assert.equal(code, 1000);
      assert.deepEqual(received, ['blob', 'behind']);
      assert.equal((await blob.first) ?? 'no error', 'no error');
      assert.equal((await behind.first) ?? 'no error', 'no error');
      assert.equal(((await late.first) as Error & { code?: string })?.code, 'WS_ERR_NOT_OPEN');
      await someTurns();
      assert.deepEqual(
        [blob, behind, late].map((p) => p.calls.length),
        [1, 1, 1],
      );
    } finally {
      await s.close();
    }
  },
);

test(
  'the connection goes away while messages are being compressed: every callback is called once, with an error',
  { timeout: 20_000 },
  async () => {
    const s = await startServer({ heartbeat: false, perMessageDeflate: { threshold: 0 } });
    try {
      const conn = new Promise<WebSocket>((resolve) => s.wss.on('connection', resolve));
      const c = new WS(`ws://${HOST}:${s.port}/`, { perMessageDeflate: true });
      c.on('error', () => {});
      await once(c, 'open');
      const ws = await conn;
      assert.match(ws.extensions, /permessage-deflate/);
      const { randomBytes } = await import('node:crypto');
      const probes = [callbackProbe(), callbackProbe(), callbackProbe(), callbackProbe()];
      ws.send(randomBytes(512 * 1024), probes[0].cb); // compressed in zlib's thread pool
      ws.send('small', probes[1].cb);
      ws.send(new Blob(['blob']), probes[2].cb);
      ws.send(Buffer.alloc(64 * 1024, 1), probes[3].cb);
      const closed = once(ws, 'close');
      ws.terminate();
      await closed;
      const results = await Promise.all(probes.map((p) => p.first));
      results.forEach((err, i) => assert.ok(err instanceof Error, `callback ${i} got an error`));
      await someTurns();
      assert.deepEqual(
        probes.map((p) => p.calls.length),
        [1, 1, 1, 1],
        'each callback exactly once',
      );
    } finally {
      await s.close();
    }
  },
);

test(
  'a Blob read that fails after the connection closed: the callbacks get WS_ERR_BLOB_READ; no error event after close, readyState stays CLOSED',
  { timeout: 20_000 },
  async () => {
    const s = await startServer({ heartbeat: false });
    try {
      const conn = new Promise<WebSocket>((resolve) => s.wss.on('connection', resolve));
      const c = new WS(`ws://${HOST}:${s.port}/`);
      c.on('error', () => {});
      await once(c, 'open');
      const ws = await conn;
      const events: string[] = [];
      ws.on('error', (err: Error & { code?: string }) => events.push(`error ${err.code}`));
      ws.on('close', () => events.push('close'));
      let fail!: (err: Error) => void;
      const read = new Promise<ArrayBuffer>((_resolve, reject) => (fail = reject));
      const blob = Object.setPrototypeOf({ size: 1, type: '', arrayBuffer: () => read }, Blob.prototype) as Blob;
      const blobCb = callbackProbe();
      const behind = callbackProbe();
      ws.send(blob, blobCb.cb);
      ws.send('behind', behind.cb);
      const closed = new Promise((resolve) => ws.on('close', resolve));
      ws.terminate();
      await closed;
      fail(new Error('NotReadableError'));
      for (const err of await Promise.all([blobCb.first, behind.first]))
        assert.equal((err as Error & { code?: string })?.code, 'WS_ERR_BLOB_READ');
      await someTurns();
      assert.deepEqual(events, ['close']);
      assert.equal(ws.readyState, ws.CLOSED);
      assert.deepEqual([blobCb.calls.length, behind.calls.length], [1, 1]);
    } finally {
      await s.close();
    }
  },
);
