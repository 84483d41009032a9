/**
 * The README's quick start, as TypeScript (type-checked by `npm test`) and run: every binary
 * type a `message` listener can receive can be sent straight back, as with ws.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { WebSocket, WebSocketServer } from '../../src/index.js';

test('the quick-start echo server compiles as written and echoes text and binary, whatever binaryType', async () => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  wss.on('connection', (ws) => {
    ws.binaryType = 'fragments'; // the RawData case that is a Buffer[]
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  await once(wss, 'listening');
  const { port } = wss.address() as { port: number };
  try {
    const client = new WebSocket(`ws://127.0.0.1:${port}/`);
    client.binaryType = 'arraybuffer';
    await once(client, 'open');
    const got: Array<string | number[]> = [];
    client.onmessage = (event) =>
      got.push(typeof event.data === 'string' ? event.data : [...new Uint8Array(event.data as ArrayBuffer)]);
    client.send('hello');
    client.send(new Uint8Array([1, 2, 3]));
    for (let i = 0; i < 100 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(got, ['hello', [1, 2, 3]]);
    client.close();
  } finally {
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  }
});
