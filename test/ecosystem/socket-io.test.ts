/**
 * Socket.IO on duet: a Socket.IO server whose WebSocket engine is duet's WebSocketServer
 * (`wsEngine`), and Socket.IO's own Node client (socket.io-client, which speaks WebSocket
 * through ws). Both transports: WebSocket from the start, and HTTP long-polling upgraded to
 * WebSocket (engine.io hands the upgrade to duet's handleUpgrade). Acknowledgements, rooms and
 * binary payloads, and a check that the connection really is a duet one. 127.0.0.1 only.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Server, type Socket as ServerSocket } from 'socket.io';
import { io, type Socket as ClientSocket } from 'socket.io-client';
import { WebSocket, WebSocketServer } from '../../src/index.js';
import { HOST, waitFor } from '../helpers.js';

const T = { timeout: 30_000 };

let httpServer: http.Server;
let sio: Server;
let url: string;
/** Server-side sockets by the name each client gives in its handshake `auth`. */
const serverSockets = new Map<string, ServerSocket>();
/** The transport each server-side socket started on, by client name. */
const initialTransports = new Map<string, string>();
/** What the server received as binary: whether each `bytes` field arrived as a Buffer. */
const receivedBuffers: boolean[] = [];
const clients: ClientSocket[] = [];

/** A client named `name`; resolves once connected. */
async function connect(name: string, transports: Array<'polling' | 'websocket'>): Promise<ClientSocket> {
  const client = io(url, { transports, auth: { name }, reconnection: false, forceNew: true });
  clients.push(client);
  await new Promise<void>((resolve) => client.once('connect', resolve));
  return client;
}

/** The duet connection under a server-side socket, if its transport is WebSocket. */
function duetConnection(socket: ServerSocket | undefined): unknown {
  const transport = socket?.conn.transport as unknown as { name: string; socket?: unknown } | undefined;
  return transport?.name === 'websocket' ? transport.socket : undefined;
}

describe('Socket.IO with wsEngine: WebSocketServer from duet', () => {
  before(async () => {
    httpServer = http.createServer();
    sio = new Server(httpServer, { wsEngine: WebSocketServer, pingInterval: 10_000, pingTimeout: 10_000 });
    sio.on('connection', (socket) => {
      const name = String((socket.handshake.auth as { name?: unknown }).name);
      serverSockets.set(name, socket);
      initialTransports.set(name, socket.conn.transport.name);
      socket.on('echo', (data: unknown, ack: (reply: unknown) => void) => {
        const bytes = (data as { bytes?: unknown } | null)?.bytes;
        if (bytes !== undefined) receivedBuffers.push(Buffer.isBuffer(bytes));
        ack(data);
      });
      socket.on('join', async (room: string, ack: () => void) => {
        await socket.join(room);
        ack();
      });
      socket.on('shout', (room: string, text: string, ack: () => void) => {
        sio.to(room).emit('news', text);
        sio.emit('after', text);
        ack();
      });
    });
    httpServer.listen(0, HOST);
    await once(httpServer, 'listening');
    url = `http://${HOST}:${(httpServer.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const client of clients) client.disconnect();
    await new Promise<void>((resolve) => void sio.close(() => resolve()));
  });

  it("engine.io's WebSocket server is duet's", () => {
    assert.ok((sio.engine as unknown as { ws: unknown }).ws instanceof WebSocketServer);
  });

  it('WebSocket transport only: acknowledgements carry text and binary both ways', T, async () => {
    const client = await connect('ws-only', ['websocket']);
    assert.equal(client.io.engine.transport.name, 'websocket');
    assert.ok(duetConnection(serverSockets.get('ws-only')) instanceof WebSocket, 'the server side is a duet WebSocket');

    assert.deepEqual(await client.emitWithAck('echo', { text: 'héllo', n: 42 }), { text: 'héllo', n: 42 });
    const bytes = Buffer.from([0, 1, 2, 127, 128, 254, 255]);
    const reply = (await client.emitWithAck('echo', { bytes, label: 'binary' })) as { bytes: Buffer; label: string };
    assert.ok(Buffer.isBuffer(reply.bytes), 'binary comes back as a Buffer');
    assert.deepEqual([...reply.bytes], [...bytes]);
    assert.equal(reply.label, 'binary');
    assert.equal(receivedBuffers.at(-1), true, 'the server received a Buffer');
    // A larger binary payload: several frames' worth at the TCP level, one message.
    const big = Buffer.alloc(256 * 1024, 7);
    const bigReply = (await client.emitWithAck('echo', { bytes: big })) as { bytes: Buffer };
    assert.equal(Buffer.compare(bigReply.bytes, big), 0);
  });

  it('HTTP long-polling upgraded to WebSocket, then acknowledgements and binary over duet', T, async () => {
    const client = io(url, { auth: { name: 'upgrading' }, reconnection: false, forceNew: true });
    clients.push(client);
    const upgraded = new Promise<void>((resolve) => client.io.engine.once('upgrade', () => resolve()));
    await new Promise<void>((resolve) => client.once('connect', resolve));
    assert.equal(initialTransports.get('upgrading'), 'polling', 'the connection was made over long-polling');
    assert.deepEqual(await client.emitWithAck('echo', 'soon upgraded'), 'soon upgraded');
    await upgraded;
    assert.equal(client.io.engine.transport.name, 'websocket');
    await waitFor(
      () => duetConnection(serverSockets.get('upgrading')) instanceof WebSocket,
      10_000,
      () => 'the server side to switch to a duet WebSocket',
    );
    assert.deepEqual(await client.emitWithAck('echo', 'after the upgrade'), 'after the upgrade');
    const bytes = new Uint8Array([9, 8, 7, 0, 255]);
    const reply = (await client.emitWithAck('echo', { bytes })) as { bytes: Buffer };
    assert.deepEqual([...reply.bytes], [...bytes]);
  });

  it('rooms: a room broadcast reaches its members only', T, async () => {
    const [a, b, c] = await Promise.all([
      connect('room-a', ['websocket']),
      connect('room-b', ['polling', 'websocket']),
      connect('room-c', ['websocket']),
    ]);
    await Promise.all([a.emitWithAck('join', 'lobby'), b.emitWithAck('join', 'lobby')]);
    const seen = new Map<ClientSocket, string[]>([
      [a, []],
      [b, []],
      [c, []],
    ]);
    for (const [client, events] of seen) {
      client.on('news', (text: string) => events.push(`news:${text}`));
      client.on('after', (text: string) => events.push(`after:${text}`));
    }
    await a.emitWithAck('shout', 'lobby', 'hi');
    // `after` goes to everyone, after `news`: once each client has it, `news` had its chance.
    await waitFor(
      () => [...seen.values()].every((events) => events.includes('after:hi')),
      10_000,
      () => `every client to get 'after' (${JSON.stringify([...seen.values()])})`,
    );
    assert.deepEqual(seen.get(a), ['news:hi', 'after:hi']);
    assert.deepEqual(seen.get(b), ['news:hi', 'after:hi']);
    assert.deepEqual(seen.get(c), ['after:hi']);
  });
});
