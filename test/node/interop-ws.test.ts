/**
 * Interop: the `ws` package (an independent implementation) as the client of duet's server.
 * Everything a `ws` user would do against an echo server: message types and sizes around
 * every length-encoding boundary, fragmentation both ways, ping/pong, every close code,
 * subprotocols and maxPayload.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import WS, { WebSocketServer as WsServer } from 'ws';
import { WebSocket, WebSocketServer } from '../../src/index.js';
import { HOST, startServer, closeEvent } from '../helpers.js';

const T = { timeout: 10_000 };

type Started = Awaited<ReturnType<typeof startServer>>;

function wsUrl(port: number, path = '/'): string {
  return `ws://${HOST}:${port}${path}`;
}

/** Every message echoed back with the same type. */
function echo(wss: WebSocketServer): void {
  wss.on('connection', (ws: WebSocket) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }));
  });
}

/** Connect a `ws` client and return it with the matching server-side connection. */
async function pair(
  wss: WebSocketServer,
  port: number,
  protocols?: string[],
): Promise<{ client: WS; server: WebSocket; req: IncomingMessage }> {
  const conn = once(wss, 'connection') as Promise<[WebSocket, IncomingMessage]>;
  const client = protocols ? new WS(wsUrl(port), protocols) : new WS(wsUrl(port));
  const [[server, req]] = await Promise.all([conn, once(client, 'open')]);
  return { client, server, req };
}

async function open(port: number): Promise<WS> {
  const client = new WS(wsUrl(port));
  await once(client, 'open');
  return client;
}

/**
 * The next `n` messages, in order. Rejects (never throws inside ws's listener, where a failed
 * assertion would be an uncaught exception) when the connection closes first or a message is
 * not a Buffer.
 */
function nextMessages(client: WS, n: number): Promise<Array<{ data: Buffer; isBinary: boolean }>> {
  return new Promise((resolve, reject) => {
    const got: Array<{ data: Buffer; isBinary: boolean }> = [];
    const onMessage = (data: WS.RawData, isBinary: boolean): void => {
      if (!Buffer.isBuffer(data)) {
        finish();
        reject(new Error(`ws delivers Buffers by default, got ${Object.prototype.toString.call(data)}`));
        return;
      }
      got.push({ data, isBinary });
      if (got.length === n) {
        finish();
        resolve(got);
      }
    };
    const onClose = (code: number): void => {
      finish();
      reject(new Error(`closed (${code}) after ${got.length} of ${n} messages`));
    };
    const finish = (): void => {
      client.off('message', onMessage);
      client.off('close', onClose);
    };
    client.on('message', onMessage);
    client.on('close', onClose);
  });
}

async function nextMessage(client: WS): Promise<{ data: Buffer; isBinary: boolean }> {
  return (await nextMessages(client, 1))[0];
}

const clientClosed = (client: WS) => closeEvent(client);
const serverClosed = (ws: WebSocket) => closeEvent(ws);

/** Bytes 0..255 repeated: every byte value appears, and a shifted copy would not compare equal. */
function patternBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8)) & 0xff;
  return b;
}

/** A string of exactly `n` UTF-8 bytes mixing 1-, 2-, 3- and 4-byte characters. */
function utf8Text(n: number): string {
  const unit = 'aé€😀'; // 1 + 2 + 3 + 4 = 10 bytes
  const s = unit.repeat(Math.floor(n / 10)) + 'x'.repeat(n % 10);
  assert.equal(Buffer.byteLength(s), n);
  return s;
}

describe('ws client -> duet echo server', () => {
  let srv: Started;
  const clients = new Set<WS>();

  async function client(): Promise<WS> {
    const c = await open(srv.port);
    clients.add(c);
    return c;
  }

  before(async () => {
    srv = await startServer();
    echo(srv.wss);
  });

  after(async () => {
    for (const c of clients) c.terminate();
    await srv.close();
  });

  it('echoes a text message', T, async () => {
    const c = await client();
    const got = nextMessage(c);
    c.send('hello duet');
    const { data, isBinary } = await got;
    assert.equal(isBinary, false);
    assert.equal(data.toString('utf8'), 'hello duet');
  });

  it('echoes a binary message', T, async () => {
    const c = await client();
    const got = nextMessage(c);
    const payload = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    c.send(payload);
    const { data, isBinary } = await got;
    assert.equal(isBinary, true);
    assert.deepEqual(data, payload);
  });

  it('echoes an empty text message', T, async () => {
    const c = await client();
    const got = nextMessage(c);
    c.send('');
    const { data, isBinary } = await got;
    assert.equal(isBinary, false);
    assert.equal(data.length, 0);
  });

  it('echoes an empty binary message', T, async () => {
    const c = await client();
    const got = nextMessage(c);
    c.send(Buffer.alloc(0));
    const { data, isBinary } = await got;
    assert.equal(isBinary, true);
    assert.equal(data.length, 0);
  });

  for (const size of [125, 126, 65535, 65536, 16 * 1024 * 1024]) {
    it(`echoes a ${size}-byte binary message byte for byte`, { timeout: 30_000 }, async () => {
      const c = await client();
      const got = nextMessage(c);
      const payload = patternBytes(size);
      c.send(payload);
      const { data, isBinary } = await got;
      assert.equal(isBinary, true);
      assert.equal(data.length, size);
      assert.ok(data.equals(payload), 'payload differs');
    });

    it(`echoes a ${size}-byte text message byte for byte`, { timeout: 30_000 }, async () => {
      const c = await client();
      const got = nextMessage(c);
      const text = size === 16 * 1024 * 1024 ? utf8Text(size) : 'x'.repeat(size);
      c.send(text);
      const { data, isBinary } = await got;
      assert.equal(isBinary, false);
      assert.equal(data.length, size);
      assert.ok(data.equals(Buffer.from(text, 'utf8')), 'payload differs');
    });
  }

  it('echoes multi-byte UTF-8 text unchanged', T, async () => {
    const c = await client();
    const text = 'Grüße, 世界! 😀 𝄞 ∑ — ½';
    const got = nextMessage(c);
    c.send(text);
    const { data, isBinary } = await got;
    assert.equal(isBinary, false);
    assert.equal(data.toString('utf8'), text);
  });

  it('delivers a text message fragmented by ws as one message', T, async () => {
    const { client: c, server } = await pair(srv.wss, srv.port);
    clients.add(c);
    const seen: Array<{ data: string; isBinary: boolean }> = [];
    server.on('message', (data: Buffer, isBinary: boolean) => seen.push({ data: data.toString('utf8'), isBinary }));
    const got = nextMessage(c);
    c.send('frag', { fin: false });
    c.send('-men', { fin: false });
    c.send('ted 😀', { fin: true });
    const { data, isBinary } = await got;
    assert.equal(data.toString('utf8'), 'frag-mented 😀');
    assert.equal(isBinary, false);
    assert.deepEqual(seen, [{ data: 'frag-mented 😀', isBinary: false }]);
  });

  it('delivers a binary message fragmented by ws as one message', T, async () => {
    const c = await client();
    const got = nextMessage(c);
    c.send(Buffer.from([1, 2]), { fin: false });
    c.send(Buffer.from([3]), { fin: false });
    c.send(Buffer.from([4, 5]), { fin: true });
    const { data, isBinary } = await got;
    assert.equal(isBinary, true);
    assert.deepEqual(data, Buffer.from([1, 2, 3, 4, 5]));
  });

  it('delivers fragments sent by duet with fin:false as one message to ws', T, async () => {
    const { client: c, server } = await pair(srv.wss, srv.port);
    clients.add(c);
    const got = nextMessages(c, 3);
    server.send('one ', { fin: false });
    server.send('two ', { fin: false });
    server.send('three', { fin: true });
    server.send(Buffer.from([0xaa]), { fin: false });
    server.send(Buffer.from([0xbb, 0xcc]), { fin: true });
    server.send('after');
    const messages = (await got).map(({ data, isBinary }) => ({
      data: isBinary ? data.toString('hex') : data.toString('utf8'),
      isBinary,
    }));
    assert.deepEqual(messages, [
      { data: 'one two three', isBinary: false },
      { data: 'aabbcc', isBinary: true },
      { data: 'after', isBinary: false },
    ]);
  });

  it('answers a ping from ws with a pong carrying the same payload, and emits ping', T, async () => {
    const { client: c, server } = await pair(srv.wss, srv.port);
    clients.add(c);
    const serverPing = once(server, 'ping') as Promise<[Buffer]>;
    const pong = once(c, 'pong') as Promise<[Buffer]>;
    c.ping(Buffer.from('are you there?'));
    const [[pingData], [pongData]] = await Promise.all([serverPing, pong]);
    assert.equal(pingData.toString(), 'are you there?');
    assert.equal(pongData.toString(), 'are you there?');
  });

  it('sends a ping that ws sees and answers; the server emits pong', T, async () => {
    const { client: c, server } = await pair(srv.wss, srv.port);
    clients.add(c);
    const clientPing = once(c, 'ping') as Promise<[Buffer]>;
    const serverPong = once(server, 'pong') as Promise<[Buffer]>;
    server.ping(Buffer.from([9, 8, 7]));
    const [[pingData], [pongData]] = await Promise.all([clientPing, serverPong]);
    assert.deepEqual(pingData, Buffer.from([9, 8, 7]));
    assert.deepEqual(pongData, Buffer.from([9, 8, 7]));
  });

  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]) {
    it(`close ${code} from ws: the server sees code and reason, ws gets the code echoed`, T, async () => {
      const { client: c, server } = await pair(srv.wss, srv.port);
      clients.add(c);
      const onServer = serverClosed(server);
      const onClient = clientClosed(c);
      c.close(code, `reason ${code} é`);
      const [s, cl] = await Promise.all([onServer, onClient]);
      assert.deepEqual(s, { code, reason: `reason ${code} é` });
      assert.equal(cl.code, code);
      assert.equal(server.readyState, WebSocket.CLOSED);
      assert.equal(server.wasClean, true);
    });
  }

  it('close initiated by the server: ws receives code and reason', T, async () => {
    const { client: c, server } = await pair(srv.wss, srv.port);
    clients.add(c);
    const onServer = serverClosed(server);
    const onClient = clientClosed(c);
    server.close(4321, 'server says bye 😀');
    const [s, cl] = await Promise.all([onServer, onClient]);
    assert.deepEqual(cl, { code: 4321, reason: 'server says bye 😀' });
    assert.equal(s.code, 4321, 'the code ws echoed back');
  });

  it('keeps 100 messages in order', T, async () => {
    const c = await client();
    const done = nextMessages(c, 100);
    for (let i = 0; i < 100; i++) c.send(`message ${i}`);
    const received = (await done).map(({ data }) => data.toString());
    assert.deepEqual(
      received,
      Array.from({ length: 100 }, (_, i) => `message ${i}`),
    );
  });

  it('calls the send callback once the data is written', T, async () => {
    const { client: c, server } = await pair(srv.wss, srv.port);
    clients.add(c);
    const got = nextMessage(c);
    const err = await new Promise<Error | null | undefined>((resolve) => server.send('with callback', resolve));
    assert.ok(err === undefined || err === null, `unexpected error ${String(err)}`);
    const err2 = await new Promise<Error | null | undefined>((resolve) =>
      server.send(Buffer.from([1]), { binary: true }, resolve),
    );
    assert.ok(err2 === undefined || err2 === null, `unexpected error ${String(err2)}`);
    assert.equal((await got).data.toString(), 'with callback');
  });

  it(
    'bufferedAmount counts what a paused ws reader has not taken, exactly, and is 0 again once it has read it all',
    { timeout: 30_000 },
    async () => {
      const { client: c, server } = await pair(srv.wss, srv.port);
      clients.add(c);
      assert.equal(server.bufferedAmount, 0, 'nothing sent yet');
      c.pause();
      // Send 1 MiB messages until the kernel's socket buffers (a few MiB, at most some tens)
      // are full and the server has to hold data itself. Bounded: a getter stuck at 0 fails here.
      const MiB = 1024 * 1024;
      const chunk = patternBytes(MiB);
      const MAX = 128;
      let sent = 0;
      let lastWritten: Promise<Error | null | undefined> = Promise.resolve(undefined);
      const send = (): void => {
        lastWritten = new Promise((resolve) => server.send(chunk, { binary: true }, resolve));
        sent++;
      };
      while (server.bufferedAmount === 0 && sent < MAX) {
        send();
        // Let the socket hand what it can to the kernel before looking again.
        await new Promise((resolve) => setImmediate(resolve));
      }
      const held = server.bufferedAmount;
      assert.ok(held > 0, `bufferedAmount still 0 after ${sent} MiB to a paused reader`);
      assert.ok(held <= sent * MiB, `bufferedAmount ${held} is more than the ${sent * MiB} bytes sent`);
      // While the socket is backed up, a send adds exactly its payload (frame headers are not
      // counted, as in browsers), before anything is written.
      send();
      send();
      assert.equal(server.bufferedAmount, held + 2 * MiB);
      const all = nextMessages(c, sent);
      c.resume();
      const received = await all;
      assert.ok(
        received.every(({ data, isBinary }) => isBinary && data.equals(chunk)),
        'every message arrives whole',
      );
      const err = await lastWritten;
      assert.ok(err === undefined || err === null, `the last send failed: ${String(err)}`);
      assert.equal(server.bufferedAmount, 0, 'all written: nothing buffered');
    },
  );
});

describe('ws client -> duet server: subprotocols and limits', () => {
  it('agrees on the protocol chosen by handleProtocols', T, async () => {
    const srv = await startServer({ handleProtocols: (protocols) => (protocols.has('chat.v2') ? 'chat.v2' : false) });
    try {
      const { client, server } = await pair(srv.wss, srv.port, ['chat.v1', 'chat.v2']);
      assert.equal(client.protocol, 'chat.v2');
      assert.equal(server.protocol, 'chat.v2');
      client.terminate();
    } finally {
      await srv.close();
    }
  });

  it('closes with 1009 when ws sends 1 MiB over maxPayload 1000', T, async () => {
    const srv = await startServer({ maxPayload: 1000 });
    try {
      const { client, server } = await pair(srv.wss, srv.port);
      client.on('error', () => {});
      const onClient = clientClosed(client);
      const onServer = serverClosed(server);
      client.send(Buffer.alloc(1024 * 1024, 1));
      assert.equal((await onClient).code, 1009);
      assert.equal((await onServer).code, 1009);
    } finally {
      await srv.close();
    }
  });

  it("(reference) ws's own server also closes with 1009 in the same case", T, async () => {
    const wsServer = new WsServer({ port: 0, host: HOST, maxPayload: 1000 });
    // Unlike duet, ws's server-side connections throw protocol errors nobody listens to.
    wsServer.on('connection', (ws) => ws.on('error', () => {}));
    await once(wsServer, 'listening');
    try {
      const client = new WS(wsUrl((wsServer.address() as AddressInfo).port));
      client.on('error', () => {});
      await once(client, 'open');
      const onClient = clientClosed(client);
      client.send(Buffer.alloc(1024 * 1024, 1));
      assert.equal((await onClient).code, 1009);
    } finally {
      for (const c of wsServer.clients) c.terminate();
      await new Promise((resolve) => wsServer.close(resolve));
    }
  });
});
