/**
 * createWebSocketStream (src/node/stream.ts): a connection as a Duplex. Backpressure both
 * ways (a slow reader pauses the socket; a socket that does not drain makes write() return
 * false and 'drain' come later), end / close / destroy / error in both directions, and the
 * Duplex options ws documents (readableObjectMode, encoding; objectMode ignored). Cases that
 * show equal behaviour also run on ws's own createWebSocketStream.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import WS, { createWebSocketStream as wsCreateWebSocketStream } from 'ws';
import { createWebSocketStream, WebSocket } from '../../src/index.js';
import type { BinaryType, CodedError } from '../../src/index.js';
import { HOST, decodeFrames, startServer, waitFor, within } from '../helpers.js';

const T = { timeout: 30_000 };

type Started = Awaited<ReturnType<typeof startServer>>;

function url(port: number, path = '/'): string {
  return `ws://${HOST}:${port}${path}`;
}

/** A client and the server's side of it, once open. */
async function pair(s: Started, path = '/'): Promise<{ client: WebSocket; server: WebSocket }> {
  const conn = once(s.wss, 'connection') as Promise<[WebSocket]>;
  const client = new WebSocket(url(s.port, path));
  const [[server]] = await within(Promise.all([conn, once(client, 'open')]), 10_000, 'the connection');
  return { client, server };
}

/** The next `count` chunks, without ending the stream (for..await would destroy it on break). */
function nextChunks(stream: Duplex, count: number): Promise<unknown[]> {
  return within(
    new Promise<unknown[]>((resolve) => {
      const chunks: unknown[] = [];
      const onData = (chunk: unknown): void => {
        chunks.push(chunk);
        if (chunks.length === count) {
          stream.off('data', onData);
          stream.pause();
          resolve(chunks);
        }
      };
      stream.on('data', onData);
    }),
    10_000,
    `${count} chunks`,
  );
}

/** The stream's events in order, by name. */
function streamEvents(stream: Duplex): { names: string[]; error?: Error; closed: Promise<void> } {
  const out: { names: string[]; error?: Error; closed: Promise<void> } = {
    names: [],
    closed: new Promise<void>((resolve) => stream.once('close', () => resolve())),
  };
  for (const name of ['end', 'finish', 'error', 'close']) {
    stream.on(name, (err?: Error) => {
      out.names.push(name);
      if (name === 'error') out.error = err;
    });
  }
  return out;
}

// ---- reading and writing -----------------------------------------------------------------------

describe('createWebSocketStream: messages as chunks', () => {
  let s: Started;
  before(async () => {
    s = await startServer();
    s.wss.on('connection', (ws: WebSocket) => {
      ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }));
    });
  });
  after(() => s.close());

  it('a chunk written is one binary message; each message read is one Buffer chunk', T, async () => {
    const { client, server } = await pair(s);
    const got: Array<{ data: string; isBinary: boolean }> = [];
    server.on('message', (data: Buffer, isBinary: boolean) => got.push({ data: data.toString(), isBinary }));
    const stream = createWebSocketStream(client);
    stream.write('one');
    stream.write(Buffer.from('two'));
    const chunks = await nextChunks(stream, 2);
    assert.deepEqual(got, [
      { data: 'one', isBinary: true },
      { data: 'two', isBinary: true },
    ]);
    assert.ok(chunks.every((c) => Buffer.isBuffer(c)));
    assert.deepEqual(
      chunks.map((c) => String(c)),
      ['one', 'two'],
    );
    stream.destroy();
    await within(once(stream, 'close'));
  });

  it('decodeStrings: false sends strings as text messages', T, async () => {
    const { client, server } = await pair(s);
    const got = new Promise<boolean>((resolve) =>
      server.once('message', (_d: Buffer, isBinary: boolean) => resolve(isBinary)),
    );
    const stream = createWebSocketStream(client, { decodeStrings: false });
    stream.write('as text');
    assert.equal(await within(got), false);
    stream.destroy();
    await within(once(stream, 'close'));
  });

  it('writes before open wait for it and keep their order', T, async () => {
    const received: string[] = [];
    s.wss.once('connection', (ws: WebSocket) => ws.on('message', (d: Buffer) => received.push(d.toString())));
    const client = new WebSocket(url(s.port));
    const stream = createWebSocketStream(client);
    assert.equal(client.readyState, WebSocket.CONNECTING);
    for (const word of ['a', 'b', 'c']) stream.write(word);
    await nextChunks(stream, 3);
    assert.deepEqual(received, ['a', 'b', 'c']);
    const seen = streamEvents(stream);
    // The readable side must be read to its end, as with any Duplex, for 'close' to come.
    stream.resume();
    stream.end();
    await within(seen.closed);
    assert.deepEqual(seen.names.slice(0, 2).sort(), ['end', 'finish']);
    assert.equal(seen.names[2], 'close');
  });

  it('whatever binaryType says, binary messages are read as bytes, in order (Blobs included)', T, async () => {
    for (const type of ['arraybuffer', 'fragments', 'blob', 'nodebuffer'] as BinaryType[]) {
      const { client } = await pair(s);
      client.binaryType = type;
      const stream = createWebSocketStream(client, { decodeStrings: false });
      stream.write(Buffer.from([1, 2, 3]));
      stream.write('text between');
      stream.write(Buffer.from([4, 5]));
      const chunks = await nextChunks(stream, 3);
      assert.ok(
        chunks.every((c) => Buffer.isBuffer(c)),
        type,
      );
      assert.deepEqual(
        chunks.map((c) => [...c]),
        [[1, 2, 3], [...Buffer.from('text between')], [4, 5]],
        type,
      );
      stream.destroy();
      await within(once(stream, 'close'));
    }
  });

  it('a server-side connection works too: pipeline(stream, stream) echoes', T, async () => {
    const echo = await startServer();
    const piped: Array<Promise<void>> = [];
    echo.wss.on('connection', (ws: WebSocket) => {
      const stream = createWebSocketStream(ws);
      piped.push(pipeline(stream, stream));
    });
    try {
      const client = new WebSocket(url(echo.port));
      const replies: string[] = [];
      client.on('message', (d: Buffer) => replies.push(d.toString()));
      await within(once(client, 'open'));
      for (const m of ['x', 'y', 'z']) client.send(m);
      await waitFor(
        () => replies.length === 3,
        10_000,
        () => `replies: ${replies.join(',')}`,
      );
      assert.deepEqual(replies, ['x', 'y', 'z']);
      client.close(1000);
      await within(once(client, 'close'));
      await within(Promise.all(piped));
    } finally {
      await echo.close();
    }
  });
});

// ---- backpressure ------------------------------------------------------------------------------

describe('createWebSocketStream: backpressure', () => {
  let s: Started;
  before(async () => {
    s = await startServer();
  });
  after(() => s.close());

  it('a slow reader pauses the connection (and its socket); reading resumes it; nothing is lost', T, async () => {
    const { client, server } = await pair(s);
    const stream = createWebSocketStream(client);
    const count = 256;
    const size = 64 * 1024;
    for (let i = 0; i < count; i++) {
      const message = Buffer.alloc(size, i & 0xff);
      message.writeUInt32BE(i, 0);
      server.send(message);
    }
    // Nobody reads the stream: the connection stops reading once the stream's buffer is full.
    await waitFor(
      () => client.isPaused,
      10_000,
      () => 'the client to pause',
    );
    assert.equal((client._socket as net.Socket).isPaused(), true);
    // 16 MiB were sent; the stream holds about one socket read of it, not all.
    assert.ok(stream.readableLength < 1024 * 1024, `readableLength ${stream.readableLength}`);
    const chunks = await within(
      new Promise<Buffer[]>((resolve) => {
        const got: Buffer[] = [];
        stream.on('data', (c: Buffer) => {
          got.push(c);
          if (got.length === count) resolve(got);
        });
      }),
      20_000,
      'every message',
    );
    assert.equal(client.isPaused, false);
    for (let i = 0; i < count; i++) {
      assert.equal(chunks[i].length, size);
      assert.equal(chunks[i].readUInt32BE(0), i);
    }
    stream.destroy();
    await within(once(stream, 'close'));
  });

  it('a socket that does not drain makes write() return false; drain comes once it does', T, async () => {
    const { client, server } = await pair(s);
    const received: Buffer[] = [];
    server.on('message', (d: Buffer) => received.push(d));
    // The server stops reading: TCP fills up behind it.
    server.pause();
    const stream = createWebSocketStream(client, { writableHighWaterMark: 256 * 1024 });
    const chunk = 64 * 1024;
    const limit = 1024; // 64 MiB at most
    let written = 0;
    let accepted = true;
    while (accepted && written < limit) {
      const message = Buffer.alloc(chunk, written & 0xff);
      message.writeUInt32BE(written, 0);
      accepted = stream.write(message);
      written++;
      // Let the writes that the socket took complete (their callbacks run) before the next.
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(accepted, false, `write() never returned false in ${written} writes`);
    assert.ok(written > 1, 'the first writes were taken while the socket drained');
    let drained = false;
    stream.once('drain', () => (drained = true));
    // The kernel refused more: bytes wait in the socket, and no drain while the peer does not read.
    await new Promise((r) => setImmediate(r));
    assert.ok((client._socket as net.Socket).writableLength > 0);
    assert.equal(drained, false);
    server.resume();
    await within(once(stream, 'drain'), 20_000, 'drain');
    await waitFor(
      () => received.length === written,
      20_000,
      () => `${received.length} of ${written} messages`,
    );
    for (let i = 0; i < written; i++) assert.equal(received[i].readUInt32BE(0), i);
    stream.destroy();
    await within(once(stream, 'close'));
  });
});

// ---- end, close, destroy, error -----------------------------------------------------------------

describe('createWebSocketStream: end, close, destroy and errors', () => {
  let s: Started;
  const closes: Array<{ code: number }> = [];
  before(async () => {
    s = await startServer();
    s.wss.on('connection', (ws: WebSocket) => ws.on('close', (code: number) => closes.push({ code })));
  });
  after(() => s.close());

  it('end() closes the connection (no code, 1005); finish, end and close follow', T, async () => {
    const { client, server } = await pair(s);
    const serverClosed = once(server, 'close') as Promise<[number]>;
    const stream = createWebSocketStream(client);
    const seen = streamEvents(stream);
    stream.resume();
    stream.end();
    await within(seen.closed);
    assert.deepEqual(seen.names.slice(0, 2).sort(), ['end', 'finish']);
    assert.equal(seen.names[2], 'close');
    assert.equal(client.readyState, WebSocket.CLOSED);
    assert.equal((await serverClosed)[0], 1005);
  });

  it('the peer closing ends the readable side; with allowHalfOpen (default) writing ends later', T, async () => {
    const { client, server } = await pair(s);
    const stream = createWebSocketStream(client);
    const seen = streamEvents(stream);
    stream.resume();
    server.close(1000, 'bye');
    await within(once(stream, 'end'));
    assert.equal(stream.destroyed, false);
    stream.end();
    await within(seen.closed);
    assert.deepEqual(seen.names, ['end', 'finish', 'close']);
  });

  it('allowHalfOpen: false ends the writable side with the readable one', T, async () => {
    const { client, server } = await pair(s);
    const stream = createWebSocketStream(client, { allowHalfOpen: false });
    const seen = streamEvents(stream);
    stream.resume();
    server.close(1000);
    await within(seen.closed);
    assert.deepEqual(seen.names.sort(), ['close', 'end', 'finish']);
  });

  it('destroy() terminates the connection (the server sees 1006); no error', T, async () => {
    const { client, server } = await pair(s);
    const serverClosed = once(server, 'close') as Promise<[number]>;
    const stream = createWebSocketStream(client);
    const seen = streamEvents(stream);
    stream.destroy();
    await within(seen.closed);
    assert.deepEqual(seen.names, ['close']);
    assert.equal(client.readyState, WebSocket.CLOSED);
    assert.equal((await within(serverClosed))[0], 1006);
  });

  it('end() before open: the connection opens, the writes go out, then it closes', T, async () => {
    const received: string[] = [];
    const serverClose = new Promise<number>((resolve) =>
      s.wss.once('connection', (ws: WebSocket) => {
        ws.on('message', (d: Buffer) => received.push(d.toString()));
        ws.on('close', (code: number) => resolve(code));
      }),
    );
    const client = new WebSocket(url(s.port));
    const stream = createWebSocketStream(client);
    const seen = streamEvents(stream);
    stream.resume();
    stream.end('last words');
    assert.equal(client.readyState, WebSocket.CONNECTING);
    await within(seen.closed);
    assert.equal(await within(serverClose), 1005);
    assert.deepEqual(received, ['last words']);
    assert.equal(seen.names.at(-1), 'close');
  });

  it('destroy() while connecting abandons the attempt: close, no error', T, async () => {
    const client = new WebSocket(url(s.port));
    const stream = createWebSocketStream(client);
    const seen = streamEvents(stream);
    stream.destroy();
    await within(seen.closed);
    assert.deepEqual(seen.names, ['close']);
    assert.equal(client.readyState, WebSocket.CLOSED);
  });

  it('destroy(err): error then close, after the connection closed', T, async () => {
    const { client } = await pair(s);
    const stream = createWebSocketStream(client);
    const seen = streamEvents(stream);
    const err = new Error('application gave up');
    stream.destroy(err);
    await within(seen.closed);
    assert.deepEqual(seen.names, ['error', 'close']);
    assert.equal(seen.error, err);
    assert.equal(client.readyState, WebSocket.CLOSED);
  });

  it('a write after the connection closed errors the stream (WS_ERR_NOT_OPEN)', T, async () => {
    const { client, server } = await pair(s);
    const stream = createWebSocketStream(client);
    const seen = streamEvents(stream);
    stream.resume();
    server.close(1000);
    await within(once(stream, 'end'));
    stream.write('too late');
    await within(seen.closed);
    assert.equal((seen.error as CodedError | undefined)?.code, 'WS_ERR_NOT_OPEN');
  });

  it('a failed handshake destroys the stream with its error', T, async () => {
    const srv = net.createServer();
    srv.listen(0, HOST);
    await once(srv, 'listening');
    const port = (srv.address() as AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const stream = createWebSocketStream(new WebSocket(url(port)));
    const seen = streamEvents(stream);
    stream.write('never sent');
    await within(seen.closed);
    assert.deepEqual(seen.names, ['error', 'close']);
    assert.equal((seen.error as CodedError).code, 'ECONNREFUSED');
  });

  it('a protocol error: the connection fails itself (Close 1002 sent), the stream gets its error', T, async () => {
    // A server that completes the handshake, then sends a frame with a reserved opcode.
    const fromClient: Buffer[] = [];
    const sockets = new Set<net.Socket>();
    const raw = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      let head = '';
      socket.on('data', (chunk: Buffer) => {
        if (head.includes('\r\n\r\n')) {
          fromClient.push(chunk);
          return;
        }
        head += chunk.toString('latin1');
        const key = /^sec-websocket-key:\s*(\S+)/im.exec(head)?.[1];
        if (key === undefined || !head.includes('\r\n\r\n')) return;
        const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        socket.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
        );
        socket.write(Buffer.from([0x83, 0x00]));
      });
    });
    raw.listen(0, HOST);
    await once(raw, 'listening');
    try {
      const client = new WebSocket(url((raw.address() as AddressInfo).port), { perMessageDeflate: false });
      const stream = createWebSocketStream(client);
      const seen = streamEvents(stream);
      await within(seen.closed);
      assert.deepEqual(seen.names, ['error', 'close']);
      assert.equal((seen.error as CodedError).code, 'WS_ERR_INVALID_OPCODE');
      const frames = decodeFrames(Buffer.concat(fromClient)).frames;
      assert.equal(frames[0]?.opcode, 0x8);
      assert.equal(frames[0].payload.readUInt16BE(0), 1002);
    } finally {
      for (const socket of sockets) socket.destroy();
      raw.close();
    }
  });

  it('wrapping a connection that is already closed: the stream just ends', T, async () => {
    const { client } = await pair(s);
    client.close();
    await within(once(client, 'close'));
    const stream = createWebSocketStream(client);
    const seen = streamEvents(stream);
    stream.resume();
    stream.end();
    await within(seen.closed);
    assert.deepEqual(seen.names.sort(), ['close', 'end', 'finish']);
  });
});

// ---- the Duplex options, beside ws's createWebSocketStream -----------------------------------

describe("createWebSocketStream options, as in ws's", () => {
  let s: Started;
  before(async () => {
    s = await startServer();
    s.wss.on('connection', (ws: WebSocket) => {
      ws.send('text one');
      ws.send(Buffer.from('binary'));
      ws.send('text two');
    });
  });
  after(() => s.close());

  type Make = (options?: Parameters<typeof createWebSocketStream>[1]) => Duplex;
  const implementations: Array<[string, Make]> = [
    ['duet', (options) => createWebSocketStream(new WebSocket(url(s.port)), options)],
    ['ws', (options) => wsCreateWebSocketStream(new WS(url(s.port)), options)],
  ];

  for (const [name, make] of implementations) {
    it(`${name}: readableObjectMode gives text messages as strings, binary as Buffers, one chunk each`, T, async () => {
      const stream = make({ readableObjectMode: true });
      const chunks = await nextChunks(stream, 3);
      assert.deepEqual(
        chunks.map((c) => (Buffer.isBuffer(c) ? `buffer:${c.toString()}` : `${typeof c}:${String(c)}`)),
        ['string:text one', 'buffer:binary', 'string:text two'],
      );
      stream.destroy();
      await within(once(stream, 'close'));
    });

    it(`${name}: encoding 'utf8' makes chunks strings`, T, async () => {
      const stream = make({ encoding: 'utf8' });
      const text = await within(
        new Promise<string>((resolve) => {
          let all = '';
          stream.on('data', (c: unknown) => {
            assert.equal(typeof c, 'string');
            all += String(c);
            if (all.length === 'text onebinarytext two'.length) resolve(all);
          });
        }),
      );
      assert.equal(text, 'text onebinarytext two');
      stream.destroy();
      await within(once(stream, 'close'));
    });

    it(`${name}: objectMode is ignored: objects cannot be written`, T, async () => {
      const stream = make({ objectMode: true });
      // Open first: ws's stream errors when destroyed while its connection is still connecting.
      await nextChunks(stream, 3);
      assert.equal(stream.writableObjectMode, false);
      assert.equal(stream.readableObjectMode, false);
      assert.throws(() => stream.write({ not: 'bytes' }), { code: 'ERR_INVALID_ARG_TYPE' });
      stream.destroy();
      await within(once(stream, 'close'));
    });
  }
});
