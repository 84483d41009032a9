/**
 * The slow-consumer policy judges what the kernel refused in earlier event-loop turns, never
 * the current turn's own burst (issue 13): a client that reads as fast as loopback allows
 * gets everything and stays open, however much one turn publishes; a client that stopped
 * reading is still closed (1013) or skipped ('drop') with its memory bounded. Plain `send()`
 * follows ws (no policy) unless the connection opts in with `slowConsumerSends`.
 *
 * The fast clients are `ws` clients (an independent implementation) in this process.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { WebSocket as WsClient } from 'ws';
import type { WebSocket } from '../../src/index.js';
import { nextTurn, sleep, startServer, waitFor } from '../helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A numbered binary payload of `size` bytes. */
function numbered(i: number, size: number): Buffer {
  const b = Buffer.alloc(size, i & 0xff);
  b.writeUInt32BE(i, 0);
  return b;
}

/** A ws client that records the numbers of the binary messages it gets, and how it closed. */
async function fastClient(
  port: number,
): Promise<{ ws: WsClient; seen: number[]; closeCode: () => number | undefined }> {
  const ws = new WsClient(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false, maxPayload: 0 });
  const seen: number[] = [];
  let code: number | undefined;
  ws.on('message', (data: Buffer) => seen.push(data.readUInt32BE(0)));
  ws.on('close', (c: number) => (code = c));
  ws.on('error', () => {});
  await once(ws, 'open');
  return { ws, seen, closeCode: () => code };
}

/** The server side of the next connection. */
function nextConnection(wss: { once(event: 'connection', l: (ws: WebSocket) => void): unknown }): Promise<WebSocket> {
  return new Promise((resolve) => wss.once('connection', resolve));
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe('slow consumers are judged on what the kernel refused', () => {
  for (const policy of ['close', 'drop'] as const) {
    it(
      `policy '${policy}': 17 publishes of 64 KiB in one turn (over a 1 MiB limit) all reach a fast client, which stays open`,
      { timeout: 30_000 },
      async () => {
        const srv = await startServer({ heartbeat: false, maxBufferedAmount: 1 * MiB, slowConsumer: policy });
        srv.wss.on('connection', (ws: WebSocket) => ws.subscribe('feed'));
        try {
          const serverSide = nextConnection(srv.wss);
          const c = await fastClient(srv.port);
          const conn = await serverSide;
          for (let i = 0; i < 17; i++) srv.wss.publish('feed', numbered(i, 64 * KiB));
          await waitFor(
            () => c.seen.length === 17 || c.closeCode() !== undefined,
            20_000,
            () => `got ${c.seen.length}`,
          );
          assert.deepEqual(c.seen, range(17));
          assert.equal(c.closeCode(), undefined, 'still open');
          assert.equal(conn.readyState, 1);
          assert.equal(conn.droppedMessages, 0);
          assert.deepEqual([srv.wss.stats().dropped, srv.wss.stats().slowConsumersClosed], [0, 0]);
          c.ws.terminate();
        } finally {
          await srv.close();
        }
      },
    );
  }

  it(
    'default options: send() of 40 x 512 KiB in one turn on connection (20 MiB) all arrive, as with ws',
    { timeout: 60_000 },
    async () => {
      const srv = await startServer({ heartbeat: false });
      srv.wss.on('connection', (ws: WebSocket) => {
        for (let i = 0; i < 40; i++) ws.send(numbered(i, 512 * KiB));
      });
      try {
        const c = await fastClient(srv.port);
        await waitFor(
          () => c.seen.length === 40 || c.closeCode() !== undefined,
          50_000,
          () => `got ${c.seen.length}`,
        );
        assert.deepEqual(c.seen, range(40));
        assert.equal(c.closeCode(), undefined, 'still open');
        assert.equal(srv.wss.stats().slowConsumersClosed, 0);
        c.ws.terminate();
      } finally {
        await srv.close();
      }
    },
  );

  for (const policy of ['close', 'drop'] as const) {
    it(
      `policy '${policy}': 800 x 64 KiB in bursts of 20 per turn with a stalled reader present: the fast client gets all 800, the stalled one is ${policy === 'close' ? 'closed 1013' : 'skipped'}, memory bounded`,
      { timeout: 60_000 },
      async () => {
        const LIMIT = 1 * MiB;
        const BURST = 20;
        const SIZE = 64 * KiB;
        const TOTAL = 800;
        const srv = await startServer({ heartbeat: false, maxBufferedAmount: LIMIT, slowConsumer: policy });
        srv.wss.on('connection', (ws: WebSocket) => ws.subscribe('feed'));
        try {
          let serverSide = nextConnection(srv.wss);
          const fast = await fastClient(srv.port);
          const fastConn = await serverSide;
          serverSide = nextConnection(srv.wss);
          const stalled = await fastClient(srv.port);
          const stalledConn = await serverSide;
          (stalled.ws as unknown as { _socket: { pause(): void } })._socket.pause();
          let maxStalledBacklog = 0;
          for (let i = 0; i < TOTAL; i += BURST) {
            for (let j = i; j < i + BURST; j++) srv.wss.publish('feed', numbered(j, SIZE));
            await nextTurn();
            if (stalledConn.readyState === 1)
              maxStalledBacklog = Math.max(maxStalledBacklog, stalledConn.bufferedAmount);
          }
          await waitFor(
            () => fast.seen.length === TOTAL || fast.closeCode() !== undefined,
            50_000,
            () => `fast client got ${fast.seen.length}`,
          );
          assert.deepEqual(fast.seen, range(TOTAL), 'the fast client got everything, in order');
          assert.equal(fast.closeCode(), undefined, 'the fast client stays open');
          assert.equal(fastConn.droppedMessages, 0);
          // The stalled reader holds at most the limit plus one turn's burst (and one message).
          assert.ok(maxStalledBacklog <= LIMIT + (BURST + 1) * SIZE, `stalled backlog reached ${maxStalledBacklog}`);
          if (policy === 'close') {
            assert.equal(srv.wss.stats().slowConsumersClosed, 1);
            assert.notEqual(stalledConn.readyState, 1, 'the stalled reader is closing');
          } else {
            assert.ok(stalledConn.droppedMessages > TOTAL / 2, `dropped ${stalledConn.droppedMessages}`);
            assert.equal(stalledConn.readyState, 1, "'drop' does not close");
          }
          fast.ws.terminate();
          stalled.ws.terminate();
        } finally {
          await srv.close();
        }
      },
    );
  }

  it(
    'plain send() is not judged unless the connection opts in with slowConsumerSends',
    { timeout: 30_000 },
    async () => {
      const srv = await startServer({ heartbeat: false, maxBufferedAmount: 1 * MiB, slowConsumer: 'close' });
      try {
        // Two stalled readers; the server sends 256 KiB per turn to each, for 64 turns (16 MiB,
        // more than loopback's kernel buffers hold).
        const conns: WebSocket[] = [];
        const clients = [];
        for (let k = 0; k < 2; k++) {
          const serverSide = nextConnection(srv.wss);
          const c = await fastClient(srv.port);
          (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
          clients.push(c);
          conns.push(await serverSide);
        }
        conns[1].slowConsumerSends = true;
        for (let i = 0; i < 64; i++) {
          for (const conn of conns) conn.send(numbered(i, 256 * KiB));
          await nextTurn();
          await sleep(2);
        }
        assert.equal(conns[0].readyState, 1, 'without opting in, send() queues as ws does');
        assert.ok(conns[0].bufferedAmount > 1 * MiB, `the application sees the backlog (${conns[0].bufferedAmount})`);
        assert.equal(conns[1].readyState, 2, 'opted in: closed as a slow consumer');
        assert.equal(srv.wss.stats().slowConsumersClosed, 1);
        for (const c of clients) c.ws.terminate();
      } finally {
        await srv.close();
      }
    },
  );
});

describe('a publisher burst does not freeze a room', () => {
  it(
    'a /chat-style publisher sending 3,000 x 1,000 B gets every relay back and pings answered, repeated',
    { timeout: 120_000 },
    async () => {
      const srv = await startServer({ heartbeat: false });
      srv.wss.on('connection', (ws: WebSocket) => {
        ws.subscribe('chat');
        ws.on('message', (data, isBinary) => srv.wss.publish('chat', data as Buffer, { binary: isBinary }));
      });
      try {
        const publisher = new WsClient(`ws://127.0.0.1:${srv.port}/`, { perMessageDeflate: false });
        const listener = new WsClient(`ws://127.0.0.1:${srv.port}/`, { perMessageDeflate: false });
        await Promise.all([once(publisher, 'open'), once(listener, 'open')]);
        let mine = 0;
        let theirs = 0;
        publisher.on('message', () => mine++);
        listener.on('message', () => theirs++);
        const text = 'y'.repeat(1000);
        for (let round = 1; round <= 3; round++) {
          for (let i = 0; i < 3000; i++) publisher.send(text);
          await waitFor(
            () => mine === 3000 * round && theirs === 3000 * round,
            60_000,
            () => `round ${round}: publisher ${mine}, listener ${theirs}`,
          );
          const tag = `round-${round}`;
          const pong = new Promise<string>((resolve) => publisher.once('pong', (d: Buffer) => resolve(d.toString())));
          publisher.ping(tag);
          assert.equal(await pong, tag, 'the publisher is still read');
        }
        publisher.terminate();
        listener.terminate();
      } finally {
        await srv.close();
      }
    },
  );
});
