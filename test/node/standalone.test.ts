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
import { HOST, RawClient, clientFrame, startServer, upgradeRequest } from '../helpers.js';

const T = { timeout: 10_000 };

describe("duet's own server (port mode)", () => {
  it('hands the application a request with method, url, version, headers, rawHeaders and socket', T, async () => {
    const { wss, port, close } = await startServer({ verifyClient: (info: { req: IncomingMessage }) => info.req.headers['x-token'] === 'yes' });
    try {
      const seen = once(wss, 'connection') as Promise<[WebSocket, IncomingMessage]>;
      const raw = await RawClient.connect(port, upgradeRequest('/room/7?x=1', ['X-Token: yes', 'Accept: a', 'Accept: b', 'Cookie: c=1', 'Cookie: d=2']));
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
      socket.write(Buffer.concat([Buffer.from(upgradeRequest('/')), clientFrame({ opcode: 1, payload: 'with the head' })]));
      await new Promise((r) => setTimeout(r, 10));
      socket.write(clientFrame({ opcode: 1, payload: 'before verifyClient answered' }));
      for (let i = 0; i < 100 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(got, ['with the head', 'before verifyClient answered']);
      socket.destroy();
    } finally {
      await close();
    }
  });

  it('answers requests that are not upgrades (426; HEAD without a body), malformed heads (400) and keeps serving', T, async () => {
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
  });

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
