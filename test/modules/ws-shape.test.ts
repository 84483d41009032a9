/**
 * ws's export shape (src/ws-shape.ts, src/index.ts): the default export is the WebSocket class,
 * which carries ws's statics (`Server`, `WebSocketServer`, `WebSocket`, the readyState
 * constants) and every other runtime export of 'duet', so that `require('duet')` (the class)
 * reaches all of them. test/modules/require.test.ts runs the same through require().
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import * as duet from '../../src/index.js';
import DefaultWebSocket from '../../src/index.js';
import { HOST } from '../helpers.js';

/** ws's statics that are not named exports of 'duet' (ws's ES module has no `Server` export either). */
const WS_ONLY_STATICS = ['Server', 'CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];

describe("ws's export shape", () => {
  it('the default export and what require() gets are the WebSocket class', () => {
    assert.equal(DefaultWebSocket, duet.WebSocket);
    assert.equal(duet['module.exports'], duet.WebSocket);
    assert.equal(typeof DefaultWebSocket, 'function');
    assert.equal(DefaultWebSocket.name, 'WebSocket');
  });

  it("has ws's statics: Server, WebSocketServer, WebSocket and the readyState constants", () => {
    assert.equal(DefaultWebSocket.Server, duet.WebSocketServer);
    assert.equal(DefaultWebSocket.WebSocketServer, duet.WebSocketServer);
    assert.equal(DefaultWebSocket.WebSocket, DefaultWebSocket);
    assert.deepEqual(
      [DefaultWebSocket.CONNECTING, DefaultWebSocket.OPEN, DefaultWebSocket.CLOSING, DefaultWebSocket.CLOSED],
      [0, 1, 2, 3],
    );
  });

  it("every runtime export of 'duet' is a static of the class, the same object", () => {
    const named = Object.keys(duet).filter((name) => name !== 'default' && name !== 'module.exports');
    const statics = DefaultWebSocket as unknown as Record<string, unknown>;
    const exports = duet as unknown as Record<string, unknown>;
    const missing = named.filter((name) => statics[name] !== exports[name]);
    assert.deepEqual(missing, [], 'add these to the statics in src/ws-shape.ts');
    // ...and the other way round: no static that is not an export (besides ws's own).
    const extra = Object.keys(DefaultWebSocket).filter(
      (name) => !WS_ONLY_STATICS.includes(name) && !named.includes(name),
    );
    assert.deepEqual(extra, []);
    // Enumerable own properties, as ws's statics are (assigned in index.js): tools that copy a
    // CommonJS module's properties (Babel's interop, esbuild's __toESM) see them.
    for (const name of [...named, 'Server']) {
      assert.equal(Object.getOwnPropertyDescriptor(DefaultWebSocket, name)?.enumerable, true, name);
    }
  });

  it('new WebSocket.Server() and new WebSocket() talk to each other, as in ws code', async () => {
    const wss = new DefaultWebSocket.Server({ port: 0, host: HOST });
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
    await once(wss, 'listening');
    try {
      const { port } = wss.address() as { port: number };
      const client = new DefaultWebSocket.WebSocket(`ws://${HOST}:${port}`);
      await once(client, 'open');
      client.send('hello');
      const [data, isBinary] = (await once(client, 'message')) as [Buffer, boolean];
      assert.equal(data.toString(), 'hello');
      assert.equal(isBinary, false);
      assert.ok(client instanceof DefaultWebSocket);
      assert.equal(wss.clients.size, 1);
      client.close();
      await once(client, 'close');
    } finally {
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    }
  });
});
