/**
 * duet's own listening server (`port` mode) reads request heads itself: what the
 * application sees of the request, bytes that follow the head, requests that are not
 * upgrades, slow and oversized heads, and close() with heads still arriving.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from '../../src/index.js';
import { constants as zlibConstants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { trimOws } from '../../src/protocol/handshake.js';
import { HOST, RawClient, clientFrame, startServer, upgradeRequest } from '../helpers.js';

const T = { timeout: 10_000 };

describe("duet's own server (port mode)", () => {
  it('hands the application a request with method, url, version, headers, rawHeaders and socket', T, async () => {
    const { wss, port, close } = await startServer({
      verifyClient: (info: { req: IncomingMessage }) => info.req.headers['x-token'] === 'yes',
    });
    try {
      const seen = once(wss, 'connection') as Promise<[WebSocket, IncomingMessage]>;
      const raw = await RawClient.connect(
        port,
        upgradeRequest('/room/7?x=1', ['X-Token: yes', 'Accept: a', 'Accept: b', 'Cookie: c=1', 'Cookie: d=2']),
      );
      assert.equal(raw.status, 101);
      const [, req] = await seen;
      assert.equal(req.method, 'GET');
      assert.equal(req.url, '/room/7?x=1');
      assert.equal(req.httpVersion, '1.1');
      assert.equal(req.headers.host, HOST);
      assert.equal(req.headers.accept, 'a, b');
      assert.equal(req.headers.cookie, 'c=1; d=2');
      assert.deepEqual(req.headersDistinct.accept, ['a', 'b']);
      assert.ok(req.rawHeaders.includes('X-Token'));
      assert.equal(req.socket.remoteAddress, HOST);
      raw.destroy();
      const refused = await RawClient.connect(port, upgradeRequest('/', ['X-Token: no']));
      assert.equal(refused.status, 401);
    } finally {
      await close();
    }
  });

  it('frames that arrive with the head, or while an async verifyClient decides, are not lost', T, async () => {
    const { wss, port, close } = await startServer({ verifyClient: (_info, done) => setTimeout(() => done(true), 50) });
    try {
      const got: string[] = [];
      wss.on('connection', (ws: WebSocket) => ws.on('message', (d: Buffer) => got.push(d.toString())));
      const socket = net.connect(port, HOST);
      await once(socket, 'connect');
      socket.write(
        Buffer.concat([Buffer.from(upgradeRequest('/')), clientFrame({ opcode: 1, payload: 'with the head' })]),
      );
      await new Promise((r) => setTimeout(r, 10));
      socket.write(clientFrame({ opcode: 1, payload: 'before verifyClient answered' }));
      for (let i = 0; i < 100 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(got, ['with the head', 'before verifyClient answered']);
      socket.destroy();
    } finally {
      await close();
    }
  });

  it(
    'answers requests that are not upgrades (426; HEAD without a body), malformed heads (400) and keeps serving',
    T,
    async () => {
      const { port, close } = await startServer();
      try {
        const get = await RawClient.connect(port, `GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
        assert.equal(get.status, 426);
        assert.match(get.responseHead, /\r\nUpgrade: websocket/i);
        await get.until(() => get.closed);
        assert.equal(get.received.toString(), 'This server speaks WebSocket only');
        const headReq = await RawClient.connect(port, `HEAD / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
        assert.equal(headReq.status, 426);
        await headReq.until(() => headReq.closed);
        assert.equal(headReq.received.length, 0);
        const garbage = await RawClient.connect(port, 'HELLO THERE\r\n\r\n');
        assert.equal(garbage.status, 400);
        const ok = await RawClient.connect(port, upgradeRequest('/'));
        assert.equal(ok.status, 101);
        ok.destroy();
      } finally {
        await close();
      }
    },
  );

  it('a head over maxHeaderSize gets 431 as soon as it is over, a slow one 408 after handshakeTimeout', T, async () => {
    const { port, close } = await startServer({ maxHeaderSize: 1024, handshakeTimeout: 200 });
    try {
      const socket = net.connect(port, HOST);
      await once(socket, 'connect');
      const chunks: Buffer[] = [];
      socket.on('data', (d: Buffer) => chunks.push(d));
      socket.write(`GET / HTTP/1.1\r\nX-Big: ${'a'.repeat(2000)}`); // never ends, but is already too big
      await once(socket, 'close');
      assert.match(Buffer.concat(chunks).toString(), /^HTTP\/1\.1 431 /);
      const slow = await RawClient.connect(port, 'GET / HTTP/1.1\r\nHost: x\r\n');
      assert.equal(slow.status, 408);
    } finally {
      await close();
    }
  });

  it('close() does not wait for connections that never finish their request head', T, async () => {
    const { wss, port } = await startServer({ handshakeTimeout: 60_000 });
    const socket = net.connect(port, HOST);
    await once(socket, 'connect');
    socket.on('error', () => {});
    socket.write('GET / HTTP/1.1\r\n');
    await new Promise((r) => setTimeout(r, 20));
    const started = Date.now();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    assert.ok(Date.now() - started < 5000);
    await once(socket, 'close');
  });
});

describe('review fixes: request heads, half-close, send callbacks, bufferedAmount', () => {
  it('header values are trimmed of spaces and tabs only, a long run of spaces included', () => {
    assert.equal(trimOws(' \t a b \t '), 'a b');
    assert.equal(trimOws('x' + ' '.repeat(20000) + 'y'), 'x' + ' '.repeat(20000) + 'y');
    assert.equal(trimOws(' '.repeat(20000)), '');
    assert.equal(trimOws('\u00a0x\u00a0'), '\u00a0x\u00a0');
  });

  it('req.headers is a plain object (hasOwnProperty works); a header named __proto__ is dropped', T, async () => {
    const { wss, port, close } = await startServer();
    try {
      const seen = once(wss, 'connection') as Promise<[WebSocket, IncomingMessage]>;
      const raw = await RawClient.connect(
        port,
        upgradeRequest('/', ['__proto__: evil', `X-Spaces: a${' '.repeat(15000)}b`]),
      );
      assert.equal(raw.status, 101);
      const [, req] = await seen;
      assert.equal(Object.prototype.hasOwnProperty.call(req.headers, 'host'), true);
      // eslint-disable-next-line no-prototype-builtins -- what it checks: headers inherit from Object.prototype, as in node:http
      assert.equal(req.headers.hasOwnProperty('host'), true);
      assert.equal(Object.getPrototypeOf(req.headers), Object.prototype);
      assert.equal(req.headers['x-spaces'], `a${' '.repeat(15000)}b`);
      raw.destroy();
    } finally {
      await close();
    }
  });

  it('a head with bare LF line endings gets 400 at once, not 408 after the timeout', T, async () => {
    const { port, close } = await startServer({ handshakeTimeout: 60_000 });
    try {
      const raw = await RawClient.connect(port, `GET / HTTP/1.1\nHost: x\nUpgrade: websocket\n\n`);
      assert.equal(raw.status, 400);
    } finally {
      await close();
    }
  });

  it(
    'a peer that half-closes right after a compressed message still gets the reply (sockets allow half-open)',
    T,
    async () => {
      const { wss, port, close } = await startServer({ perMessageDeflate: true });
      try {
        wss.on('connection', (ws: WebSocket) => ws.on('message', (d: Buffer) => ws.send(d.toString())));
        const raw = await RawClient.connect(
          port,
          upgradeRequest('/', ['Sec-WebSocket-Extensions: permessage-deflate']),
        );
        const text = 'half-closed '.repeat(500);
        const deflated = deflateRawSync(Buffer.from(text), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
        raw.socket.end(clientFrame({ opcode: 1, payload: deflated.subarray(0, deflated.length - 4), rsv: 4 }));
        await raw.until(() => raw.closed);
        const replies = raw.frames().filter((f) => f.opcode === 1);
        assert.equal(replies.length, 1);
        const inflated = inflateRawSync(Buffer.concat([replies[0].payload, Buffer.from([0, 0, 0xff, 0xff])]), {
          finishFlush: zlibConstants.Z_SYNC_FLUSH,
        });
        assert.equal(inflated.toString(), text);
      } finally {
        await close();
      }
    },
  );

  it('send() after the socket was destroyed (close event not yet emitted) calls back with an error', T, async () => {
    const { wss, port, close } = await startServer();
    try {
      const seen = once(wss, 'connection') as Promise<[WebSocket]>;
      const raw = await RawClient.connect(port);
      const [ws] = await seen;
      ws._socket!.destroy();
      assert.equal(ws.readyState, 1, 'still OPEN until the close event');
      const err = await new Promise<Error | null | undefined>((resolve) => ws.send('too late', resolve));
      assert.ok(err instanceof Error);
      raw.destroy();
    } finally {
      await close();
    }
  });

  it('bufferedAmount counts payload bytes only, also after earlier writes drained unobserved', T, async () => {
    const { wss, port, close } = await startServer({ maxBufferedAmount: 1 << 30 });
    try {
      const seen = once(wss, 'connection') as Promise<[WebSocket]>;
      const raw = await RawClient.connect(port);
      const [ws] = await seen;
      const payload = 'x'.repeat(98); // 100-byte frames: 2 header bytes each
      // Phase 1: the peer reads; everything drains and nobody looks at bufferedAmount.
      for (let i = 0; i < 50; i++) {
        for (let j = 0; j < 100; j++) ws.send(payload);
        await new Promise((r) => setImmediate(r));
      }
      await raw.until(() => raw.received.length >= 5000 * 100, 10_000);
      // The peer has every byte; the server learns its writes completed a turn or two later.
      for (let i = 0; i < 1000 && ws.bufferedAmount !== 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(ws.bufferedAmount, 0);
      // Phase 2: the peer stops reading until the socket's own buffer holds data.
      raw.socket.pause();
      const socket = ws._socket as unknown as { writableLength: number };
      for (let i = 0; i < 400 && socket.writableLength < 512 * 1024; i++) {
        for (let j = 0; j < 1000; j++) ws.send(payload);
        await new Promise((r) => setImmediate(r));
      }
      assert.ok(socket.writableLength >= 512 * 1024);
      const expected = socket.writableLength * 0.98;
      assert.ok(
        Math.abs(ws.bufferedAmount - expected) <= 200,
        `bufferedAmount ${ws.bufferedAmount}, expected about ${expected}`,
      );
      raw.destroy();
    } finally {
      await close();
    }
  });
});
