/**
 * Two duet endpoints sending to each other faster than they read: the server stops reading
 * while more than 1 MiB waits to be written to its peer (a peer that does not read cannot make
 * it queue replies without bound), the client never does, so the two can never end up each
 * waiting for the other. ws's client behaves the same way; before this rule a duet client
 * paused too and an echo of a long burst, or two large sends crossing, stalled until the
 * heartbeat ended the connection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { WebSocket } from '../../src/index.js';
import { startServer } from '../helpers.js';

const T = { timeout: 60_000 };

test('an echo server and a duet client that sends 200 x 64 KiB at once: every echo comes back', T, async () => {
  const { wss, port, close } = await startServer();
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary })));
  const client = new WebSocket(`ws://127.0.0.1:${port}/`);
  try {
    await once(client, 'open');
    const chunk = Buffer.alloc(64 * 1024, 7);
    let echoed = 0;
    let bytes = 0;
    const all = new Promise<void>((resolve) =>
      client.on('message', (data: Buffer) => {
        echoed++;
        bytes += data.length;
        if (echoed === 200) resolve();
      }),
    );
    for (let i = 0; i < 200; i++) client.send(chunk);
    await all;
    assert.equal(bytes, 200 * chunk.length);
  } finally {
    client.terminate();
    await close();
  }
});

test('4 MiB sent both ways at the same moment arrives both ways', T, async () => {
  const { wss, port, close } = await startServer();
  const big = Buffer.alloc(4 * 1024 * 1024, 1);
  const serverGot = new Promise<number>((resolve) =>
    wss.on('connection', (ws) => {
      ws.on('message', (data: Buffer) => resolve(data.length));
      ws.send(big);
    }),
  );
  const client = new WebSocket(`ws://127.0.0.1:${port}/`);
  try {
    const clientGot = new Promise<number>((resolve) => client.on('message', (data: Buffer) => resolve(data.length)));
    await once(client, 'open');
    client.send(big);
    assert.deepEqual(await Promise.all([serverGot, clientGot]), [big.length, big.length]);
  } finally {
    client.terminate();
    await close();
  }
});
