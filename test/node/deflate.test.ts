/**
 * permessage-deflate (RFC 7692) in node/: the zlib side (MessageDeflate, the process-wide
 * limiter, releasing contexts), then whole connections: round trips for every takeover and
 * window combination, fragmented compressed messages, RSV1 on the wire, the inflate bomb,
 * corrupt data, ordering of sends around asynchronous compression, a close while inflating,
 * and publish compressing once for every subscriber.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import * as zlib from 'node:zlib';
import type { AddressInfo } from 'node:net';
import WS, { WebSocketServer as WsServer } from 'ws';
import { WebSocket, WebSocketServer, type ServerOptions } from '../../src/index.js';
import {
  MessageDeflate,
  liveDeflateContexts,
  resolveDeflateSettings,
  zlibQueue,
  type PerMessageDeflateOptions,
} from '../../src/node/deflate.js';
import { SharedMessage } from '../../src/node/shared-message.js';
import type { DeflateParams } from '../../src/protocol/deflate-negotiation.js';
import { HOST, RawClient, clientFrame, closeEvent, closePayload, startServer, upgradeRequest } from '../helpers.js';

const T = { timeout: 20_000 };
const TEXT = 0x1;
const BINARY = 0x2;
const CONTINUATION = 0x0;
const CLOSE = 0x8;

const FULL: DeflateParams = {
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
};
const SETTINGS = resolveDeflateSettings({});

function compress(md: MessageDeflate, data: Buffer, fin = true): Promise<Buffer> {
  return new Promise((resolve, reject) => md.compress(data, fin, (err, out) => (err ? reject(err) : resolve(out!))));
}
function decompress(md: MessageDeflate, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => md.decompress(data, (err, out) => (err ? reject(err) : resolve(out!))));
}
/** Deflate on its own, as a peer would, without the 00 00 ff ff tail. */
function deflateRaw(data: Buffer): Buffer {
  const out = zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return out.subarray(0, out.length - 4);
}

describe('MessageDeflate and the zlib queue', () => {
  it('compresses and inflates across messages with context takeover, in both directions', async () => {
    const server = new MessageDeflate(FULL, SETTINGS, true, 0);
    const client = new MessageDeflate(FULL, SETTINGS, false, 0);
    const json = Buffer.from(
      JSON.stringify({ type: 'message', topic: 'chat', data: { user: 'ada', text: 'hello '.repeat(40) } }),
    );
    const sizes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const wire = await compress(server, json);
      sizes.push(wire.length);
      assert.deepEqual(await decompress(client, wire), json);
    }
    // The second copy refers back to the first: takeover works.
    assert.ok(sizes[1] < sizes[0] / 2, `sizes ${sizes}`);
    server.release();
    client.release();
  });

  it('an empty message right after another (nothing left to flush) is the single byte 0x00, and decodes', async () => {
    const server = new MessageDeflate(FULL, SETTINGS, true, 0);
    const client = new MessageDeflate(FULL, SETTINGS, false, 0);
    for (const text of ['first', '', '', 'after two empty ones', '']) {
      const wire = await compress(server, Buffer.from(text));
      if (text === '') assert.deepEqual([...wire], [0x00]);
      assert.equal((await decompress(client, wire)).toString(), text);
    }
    server.release();
    client.release();
  });

  it('maxInflateRate: 32 MiB/s on a server by default, no budget on a client unless asked for', () => {
    const rate = (md: MessageDeflate): number => (md as unknown as { inflateRate: number }).inflateRate;
    assert.equal(rate(new MessageDeflate(FULL, SETTINGS, true, 0)), 32 * 1024 * 1024);
    assert.equal(rate(new MessageDeflate(FULL, SETTINGS, false, 0)), 0);
    const asked = resolveDeflateSettings({ maxInflateRate: 1000 });
    assert.equal(rate(new MessageDeflate(FULL, asked, true, 0)), 1000);
    assert.equal(rate(new MessageDeflate(FULL, asked, false, 0)), 1000);
    assert.equal(rate(new MessageDeflate(FULL, resolveDeflateSettings({ maxInflateRate: 0 }), true, 0)), 0);
  });

  it('stops inflating as soon as the output passes maxPayload (1009), and corrupt data is 1007', async () => {
    const md = new MessageDeflate(FULL, SETTINGS, true, 64 * 1024);
    const bomb = deflateRaw(Buffer.alloc(16 * 1024 * 1024));
    await assert.rejects(
      decompress(md, bomb),
      (err: Error & { code: string; closeCode: number }) =>
        err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' && err.closeCode === 1009,
    );
    const md2 = new MessageDeflate(FULL, SETTINGS, true, 0);
    await assert.rejects(
      decompress(md2, Buffer.from([0xff, 0xff, 0xff, 0x00, 0x12])),
      (err: Error & { code: string; closeCode: number }) => err.code === 'WS_ERR_INFLATE' && err.closeCode === 1007,
    );
    md.release();
    md2.release();
  });

  it('holds no zlib stream before first use, frees an idle compressor, and everything on release', async () => {
    const before = liveDeflateContexts();
    const takeover = new MessageDeflate(FULL, SETTINGS, true, 0);
    assert.equal(takeover.streamCount, 0);
    await decompress(takeover, deflateRaw(Buffer.from('x'.repeat(2000))));
    await compress(takeover, Buffer.from('y'.repeat(2000)));
    assert.equal(takeover.streamCount, 2);
    assert.equal(liveDeflateContexts(), before + 2);
    takeover.releaseIfIdle(); // used since the last look: kept
    assert.equal(takeover.streamCount, 2);
    takeover.releaseIfIdle(); // idle: our compressor goes; the inflater stays (the peer may refer back)
    assert.equal(takeover.streamCount, 1);
    // It comes back when needed, and the output still decodes on the peer's side.
    const peer = new MessageDeflate(FULL, SETTINGS, false, 0);
    assert.equal(
      (await decompress(peer, await compress(takeover, Buffer.from('again '.repeat(100))))).toString(),
      'again '.repeat(100),
    );
    takeover.release();
    peer.release();
    assert.equal(takeover.streamCount, 0);
    assert.equal(liveDeflateContexts(), before);
    // After release, jobs fail cleanly instead of touching a closed stream.
    await assert.rejects(compress(takeover, Buffer.from('late')), /closed/);
  });

  it('without context takeover, connections hold nothing between messages: they share a small pool', async () => {
    const before = liveDeflateContexts();
    const noTakeover: DeflateParams = { ...FULL, serverNoContextTakeover: true, clientNoContextTakeover: true };
    const servers = Array.from({ length: 50 }, () => new MessageDeflate(noTakeover, SETTINGS, true, 0));
    const clients = Array.from({ length: 50 }, () => new MessageDeflate(noTakeover, SETTINGS, false, 0));
    const text = (i: number): Buffer => Buffer.from(`message ${i} `.repeat(200));
    await Promise.all(
      servers.map(async (md, i) => {
        const wire = await compress(md, text(i));
        assert.deepEqual(await decompress(clients[i], wire), text(i));
      }),
    );
    for (const md of [...servers, ...clients]) assert.equal(md.streamCount, 0);
    // One deflate and one inflate configuration: at most concurrencyLimit idle streams each.
    const pooled = liveDeflateContexts() - before;
    assert.ok(pooled > 0 && pooled <= 2 * zlibQueue.limit, `pooled ${pooled}`);
    for (const md of [...servers, ...clients]) md.release();
  });

  it('a peer may end a message with a BFINAL block (RFC 7692 7.2.3.4): pooled streams are not reused, takeover keeps its window', async () => {
    const noTakeover: DeflateParams = { ...FULL, clientNoContextTakeover: true };
    const a = new MessageDeflate(noTakeover, SETTINGS, true, 0);
    const b = new MessageDeflate(noTakeover, SETTINGS, true, 0);
    // zlib's default finish sets BFINAL on the last block.
    assert.equal((await decompress(a, zlib.deflateRawSync(Buffer.from('bye')))).toString(), 'bye');
    // The next connection to borrow a pooled inflater is not affected.
    for (let i = 0; i < 3; i++)
      assert.equal((await decompress(b, deflateRaw(Buffer.from('innocent')))).toString(), 'innocent');
    // With takeover the next message refers back into the first one, across its BFINAL.
    const first = Buffer.from('the quick brown fox jumps over the lazy dog; '.repeat(3));
    const second = Buffer.from('the quick brown fox jumps over the lazy dog; again');
    const secondWire = zlib
      .deflateRawSync(second, { dictionary: first, finishFlush: zlib.constants.Z_SYNC_FLUSH })
      .subarray(0, -4);
    assert.ok(secondWire.length < 20, 'the second message is mostly a back-reference');
    const t = new MessageDeflate(FULL, SETTINGS, true, 0);
    assert.deepEqual(await decompress(t, zlib.deflateRawSync(first)), first);
    assert.deepEqual(await decompress(t, secondWire), second);
    assert.deepEqual(await decompress(t, deflateRaw(Buffer.from('and on'))), Buffer.from('and on'));
    for (const md of [a, b, t]) md.release();
  });

  it('SharedMessage compresses once per distinct setting, and only at or over the threshold', () => {
    const message = new SharedMessage(Buffer.from('shared '.repeat(200)), false);
    const a = new MessageDeflate(FULL, SETTINGS, true, 0);
    const b = new MessageDeflate({ ...FULL, serverNoContextTakeover: true }, SETTINGS, true, 0);
    const narrow = new MessageDeflate({ ...FULL, serverMaxWindowBits: 10 }, SETTINGS, true, 0);
    assert.equal(
      message.compressedFrame(a),
      message.compressedFrame(b),
      'the same bytes for the same window and level',
    );
    assert.notEqual(message.compressedFrame(a), message.compressedFrame(narrow));
    const frame = message.compressedFrame(a) as Buffer;
    assert.equal(frame[0], 0xc1, 'FIN + RSV1 + text');
    assert.equal(
      zlib
        .inflateRawSync(Buffer.concat([frame.subarray(2), Buffer.from([0, 0, 0xff, 0xff])]), {
          finishFlush: zlib.constants.Z_SYNC_FLUSH,
        })
        .toString(),
      'shared '.repeat(200),
    );
    assert.equal(new SharedMessage(Buffer.from('tiny'), false).shouldCompress(a), false);
    assert.equal(new SharedMessage(Buffer.alloc(5000), true, false).shouldCompress(a), false);
    assert.equal(message.shouldCompress(a), true);
  });

  it('options are checked, and concurrencyLimit sets the process-wide limit', () => {
    assert.throws(() => resolveDeflateSettings({ level: 10 }), RangeError);
    assert.throws(() => resolveDeflateSettings({ memLevel: 0 }), RangeError);
    assert.throws(() => resolveDeflateSettings({ threshold: -1 }), RangeError);
    assert.throws(() => resolveDeflateSettings({ concurrencyLimit: 0 }), RangeError);
    assert.throws(
      () => new WebSocketServer({ noServer: true, perMessageDeflate: { serverMaxWindowBits: 16 } }),
      RangeError,
    );
    assert.throws(
      () => new WebSocket('ws://127.0.0.1:1/', [], { perMessageDeflate: { clientMaxWindowBits: 7 } }),
      RangeError,
    );
    const previous = zlibQueue.limit;
    try {
      resolveDeflateSettings({ concurrencyLimit: 7 });
      assert.equal(zlibQueue.limit, 7);
    } finally {
      zlibQueue.limit = previous;
    }
  });
});

// ---------------------------------------------------------------------------------------------

async function echoServer(options: ServerOptions = {}): Promise<Awaited<ReturnType<typeof startServer>>> {
  const started = await startServer({ perMessageDeflate: { threshold: 0 }, ...options });
  started.wss.on('connection', (ws: WebSocket) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }));
  });
  return started;
}

async function openClient(
  port: number,
  perMessageDeflate: boolean | PerMessageDeflateOptions = { threshold: 0 },
): Promise<WebSocket> {
  const ws = new WebSocket(`ws://${HOST}:${port}/`, [], { perMessageDeflate });
  ws.binaryType = 'nodebuffer';
  await once(ws, 'open');
  return ws;
}

/** Collect the next `n` messages as [data, isBinary]. */
function collect(ws: WebSocket, n: number): Promise<Array<[Buffer, boolean]>> {
  return new Promise((resolve) => {
    const got: Array<[Buffer, boolean]> = [];
    const onMessage = (data: Buffer, isBinary: boolean): void => {
      got.push([Buffer.from(data), isBinary]);
      if (got.length === n) {
        ws.off('message', onMessage);
        resolve(got);
      }
    };
    ws.on('message', onMessage);
  });
}

describe('permessage-deflate connections', () => {
  const combos: Array<[string, ServerOptions['perMessageDeflate'], PerMessageDeflateOptions]> = [
    ['context takeover both ways, 15-bit windows', { threshold: 0 }, { threshold: 0 }],
    ['server_no_context_takeover', { threshold: 0, serverNoContextTakeover: true }, { threshold: 0 }],
    [
      'client_no_context_takeover (asked by the client)',
      { threshold: 0 },
      { threshold: 0, clientNoContextTakeover: true },
    ],
    [
      'both no context takeover, 9-bit windows',
      { threshold: 0 },
      {
        threshold: 0,
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
        serverMaxWindowBits: 9,
        clientMaxWindowBits: 9,
      },
    ],
    [
      'server imposes 8-bit windows both ways',
      { threshold: 0, serverMaxWindowBits: 8, clientMaxWindowBits: 8 },
      { threshold: 0 },
    ],
    ['client asks server_max_window_bits=10', { threshold: 0 }, { threshold: 0, serverMaxWindowBits: 10 }],
  ];
  const random = randomBytes(70_000);
  const messages: Array<[string, Buffer | string]> = [
    ['empty text', ''],
    ['1 byte', Buffer.from([7])],
    ['highly compressible text', 'all work and no play '.repeat(5000)],
    ['incompressible binary (70 KB)', random],
    ['random text', randomBytes(3000).toString('base64')],
    ['multi-byte UTF-8', 'héllo wörld ✓ 😀 '.repeat(300)],
  ];

  for (const [name, serverOptions, clientOptions] of combos) {
    it(`round trips with ${name}`, T, async () => {
      const { port, close } = await echoServer({ perMessageDeflate: serverOptions });
      try {
        const ws = await openClient(port, clientOptions);
        assert.match(ws.extensions, /^permessage-deflate/);
        // Twice, so the second round runs on warm (or reset) contexts.
        const all = [...messages, ...messages];
        const got = collect(ws, all.length + 1);
        for (const [, data] of all) ws.send(data);
        // And a fragmented compressed message, with an empty fragment in the middle.
        const parts = ['fragmented ', '', 'x'.repeat(3000), ' end'];
        parts.forEach((part, i) => ws.send(part, { fin: i === parts.length - 1 }));
        const received = await got;
        all.forEach(([label, data], i) => {
          const [bytes, isBinary] = received[i];
          assert.equal(isBinary, typeof data !== 'string', label);
          assert.ok(bytes.equals(typeof data === 'string' ? Buffer.from(data) : data), label);
        });
        assert.equal(received[all.length][0].toString(), parts.join(''));
        ws.close();
        await closeEvent(ws);
      } finally {
        await close();
      }
    });
  }

  it('compresses on the wire: RSV1 on the first frame of a message only, never on control frames', T, async () => {
    const { wss, port, close } = await startServer({ perMessageDeflate: { threshold: 10 } });
    try {
      wss.on('connection', (ws: WebSocket) => {
        ws.send('a'.repeat(5000));
        ws.send('tiny'); // under the threshold: plain
        ws.send('b'.repeat(3000), { compress: false });
        ws.send('frag-'.repeat(100), { fin: false });
        ws.ping('p');
        ws.send('ment-'.repeat(100), { fin: false });
        ws.send('end', { fin: true });
      });
      const raw = await RawClient.connect(port, upgradeRequest('/', ['Sec-WebSocket-Extensions: permessage-deflate']));
      assert.match(raw.responseHead, /\r\nSec-WebSocket-Extensions: permessage-deflate\r?\n?/i);
      await raw.until(() => raw.frames().length >= 7);
      const all = raw.frames();
      // The ping may overtake messages waiting for compression (RFC 6455 5.4 allows control
      // frames anywhere between frames); it is never compressed.
      const ping = all.filter((f) => f.opcode === 0x9);
      assert.deepEqual(
        ping.map((f) => [f.rsv, f.payload.toString()]),
        [[0, 'p']],
      );
      const frames = all.filter((f) => f.opcode !== 0x9);
      assert.deepEqual(
        frames.map((f) => [f.opcode, f.rsv, f.fin]),
        [
          [TEXT, 4, true],
          [TEXT, 0, true],
          [TEXT, 0, true],
          [TEXT, 4, false],
          [CONTINUATION, 0, false],
          [CONTINUATION, 0, true],
        ],
      );
      assert.ok(frames[0].payload.length < 100, 'compressed');
      assert.equal(frames[1].payload.toString(), 'tiny');
      assert.equal(frames[2].payload.length, 3000);
      // One inflate stream over the fragments (the peer keeps context between messages).
      const inflater = zlib.createInflateRaw();
      const inflate = (b: Buffer): Promise<Buffer> =>
        new Promise((resolve) => {
          const chunks: Buffer[] = [];
          const onData = (c: Buffer): number => chunks.push(c);
          inflater.on('data', onData);
          inflater.write(b);
          inflater.flush(zlib.constants.Z_SYNC_FLUSH, () => {
            inflater.off('data', onData);
            resolve(Buffer.concat(chunks));
          });
        });
      assert.equal(
        (await inflate(Buffer.concat([frames[0].payload, Buffer.from([0, 0, 0xff, 0xff])]))).toString(),
        'a'.repeat(5000),
      );
      const fragmented = Buffer.concat([
        frames[3].payload,
        frames[4].payload,
        frames[5].payload,
        Buffer.from([0, 0, 0xff, 0xff]),
      ]);
      assert.equal((await inflate(fragmented)).toString(), 'frag-'.repeat(100) + 'ment-'.repeat(100) + 'end');
      inflater.close();
      raw.destroy();
    } finally {
      await close();
    }
  });

  it('fragmented compressed messages from the client arrive whole', T, async () => {
    const { port, close } = await echoServer();
    try {
      const ws = await openClient(port);
      const got = collect(ws, 2);
      ws.send('hello ', { fin: false });
      ws.send('fragmented ', { fin: false });
      ws.send('world');
      ws.send(Buffer.alloc(0), { fin: false, binary: true }); // an empty first fragment
      ws.send(Buffer.from([1, 2, 3]), { fin: true });
      const [[a], [b, isBinary]] = await got;
      assert.equal(a.toString(), 'hello fragmented world');
      assert.deepEqual([...b], [1, 2, 3]);
      assert.equal(isBinary, true);
      ws.close();
    } finally {
      await close();
    }
  });

  it(
    'an inflate bomb (KBs that inflate past maxPayload) closes 1009 at once, without inflating it all',
    T,
    async () => {
      const { wss, port, close } = await startServer({ perMessageDeflate: true, maxPayload: 1024 * 1024 });
      try {
        const errors: string[] = [];
        const messages: number[] = [];
        wss.on('connection', (ws: WebSocket) => {
          ws.on('error', (err: Error & { code: string }) => errors.push(err.code));
          ws.on('message', (d: Buffer) => messages.push(d.length));
        });
        const bomb = deflateRaw(Buffer.alloc(256 * 1024 * 1024)); // 256 MiB of zeros: about 250 KB
        assert.ok(bomb.length < 300_000);
        const rss = process.memoryUsage().rss;
        const raw = await RawClient.connect(
          port,
          upgradeRequest('/', ['Sec-WebSocket-Extensions: permessage-deflate']),
        );
        raw.write(clientFrame({ opcode: BINARY, payload: bomb, rsv: 4 }));
        assert.equal(await raw.closeCode(5000), 1009);
        assert.deepEqual(errors, ['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH']);
        assert.deepEqual(messages, []);
        // Inflating all of it would have needed 256 MiB; we stopped after about 1 MiB.
        const grown = process.memoryUsage().rss - rss;
        assert.ok(grown < 64 * 1024 * 1024, `RSS grew by ${grown} bytes`);
      } finally {
        await close();
      }
    },
  );

  it('corrupt compressed data and invalid UTF-8 after inflating close with 1007', T, async () => {
    const { port, close } = await startServer({ perMessageDeflate: true });
    try {
      const cases = [Buffer.from([0xff, 0xff, 0xff, 0x00, 0x12]), deflateRaw(Buffer.from([0x68, 0xc3, 0x28, 0x69]))];
      for (const payload of cases) {
        const raw = await RawClient.connect(
          port,
          upgradeRequest('/', ['Sec-WebSocket-Extensions: permessage-deflate']),
        );
        raw.write(clientFrame({ opcode: TEXT, payload, rsv: 4 }));
        assert.equal(await raw.closeCode(), 1007);
      }
    } finally {
      await close();
    }
  });

  it('RSV1 without the extension negotiated is 1002', T, async () => {
    const { port, close } = await startServer({ perMessageDeflate: false });
    try {
      const raw = await RawClient.connect(port, upgradeRequest('/', ['Sec-WebSocket-Extensions: permessage-deflate']));
      assert.doesNotMatch(raw.responseHead, /Sec-WebSocket-Extensions/i);
      raw.write(clientFrame({ opcode: TEXT, payload: deflateRaw(Buffer.from('hi')), rsv: 4 }));
      assert.equal(await raw.closeCode(), 1002);
    } finally {
      await close();
    }
  });

  it('messages stay in order around asynchronous compression, and close() loses none of them', T, async () => {
    const { wss, port, close } = await startServer({ perMessageDeflate: { threshold: 100 } });
    try {
      const n = 300;
      const body = (i: number): string =>
        i % 3 === 0 ? `small ${i}` : i % 3 === 1 ? `${i} `.repeat(400) : `${i}!`.repeat(300);
      const serverGot = new Promise<{ got: string[]; code: number }>((resolve) => {
        wss.on('connection', (ws: WebSocket) => {
          const got: string[] = [];
          ws.on('message', (d: Buffer) => got.push(d.toString()));
          ws.on('close', (code: number) => resolve({ got, code }));
          // Server to client as well: mixed sizes, compress: false, a publish-like broadcast, then close.
          for (let i = 0; i < n; i++) ws.send(body(i), { compress: i % 7 !== 0 });
          ws.close(1000, 'done');
        });
      });
      const ws = await openClient(port, { threshold: 100 });
      const clientGot: string[] = [];
      ws.on('message', (d: Buffer) => clientGot.push(d.toString()));
      for (let i = 0; i < n; i++) ws.send(body(i), { compress: i % 5 !== 0 });
      const closed = closeEvent(ws);
      const { got, code } = await serverGot;
      assert.equal(code, 1000);
      assert.deepEqual(
        got,
        Array.from({ length: n }, (_, i) => body(i)),
      );
      await closed;
      assert.deepEqual(
        clientGot,
        Array.from({ length: n }, (_, i) => body(i)),
      );
    } finally {
      await close();
    }
  });

  it('a Close (or TCP end) right behind a compressed message is handled after that message', T, async () => {
    const { wss, port, close } = await startServer({ perMessageDeflate: true });
    try {
      const events: string[] = [];
      let done!: () => void;
      const finished = new Promise<void>((resolve) => (done = resolve));
      let closes = 0;
      wss.on('connection', (ws: WebSocket) => {
        ws.on('message', (d: Buffer) => events.push(`message ${d.length}`));
        ws.on('close', (code: number) => {
          events.push(`close ${code}`);
          if (++closes === 2) done();
        });
      });
      const big = Buffer.alloc(2 * 1024 * 1024, 'abc');
      const a = await RawClient.connect(port, upgradeRequest('/', ['Sec-WebSocket-Extensions: permessage-deflate']));
      a.write(
        Buffer.concat([
          clientFrame({ opcode: BINARY, payload: deflateRaw(big), rsv: 4 }),
          clientFrame({ opcode: CLOSE, payload: closePayload(4001) }),
        ]),
      );
      await a.until(() => a.closed);
      const b = await RawClient.connect(port, upgradeRequest('/', ['Sec-WebSocket-Extensions: permessage-deflate']));
      b.socket.end(clientFrame({ opcode: BINARY, payload: deflateRaw(big), rsv: 4 }));
      await finished;
      assert.deepEqual(events, [`message ${big.length}`, 'close 4001', `message ${big.length}`, 'close 1006']);
    } finally {
      await close();
    }
  });

  it(
    'publish compresses once for all subscribers, and each connection then restarts its own compressor',
    T,
    async () => {
      const { wss, port, close } = await startServer({ perMessageDeflate: { threshold: 0 } });
      try {
        const servers: WebSocket[] = [];
        wss.on('connection', (ws: WebSocket) => {
          ws.subscribe('news');
          servers.push(ws);
        });
        const clients = await Promise.all([
          openClient(port),
          openClient(port, { serverNoContextTakeover: true }),
          openClient(port, false),
        ]);
        assert.equal(clients[2].extensions, '');
        await new Promise((r) => setTimeout(r, 20));
        const own = JSON.stringify({ own: 'message', padding: 'abcdefgh'.repeat(50) });
        const shared = JSON.stringify({ shared: 'news', padding: 'abcdefgh'.repeat(50) });
        const got = clients.map((c) => collect(c, 4));
        for (const ws of servers) ws.send(own);
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(wss.publish('news', shared), 3);
        for (const ws of servers) ws.send(own);
        for (const ws of servers) ws.send(shared);
        const results = await Promise.all(got);
        for (const result of results)
          assert.deepEqual(
            result.map(([d]) => d.toString()),
            [own, shared, own, shared],
          );
        for (const c of clients) c.close();
      } finally {
        await close();
      }
    },
  );

  it('closing connections releases their zlib streams', T, async () => {
    const { port, close } = await echoServer();
    try {
      // Earlier tests' connections may still be closing: wait until the count is steady.
      let before = -1;
      for (let i = 0; i < 100 && before !== liveDeflateContexts(); i++) {
        before = liveDeflateContexts();
        await new Promise((r) => setTimeout(r, 30));
      }
      const clients = await Promise.all([openClient(port), openClient(port), openClient(port)]);
      await Promise.all(
        clients.map(async (c) => {
          const got = collect(c, 1);
          c.send('x'.repeat(5000));
          await got;
        }),
      );
      // Each pair holds compressor + inflater on both ends.
      assert.equal(liveDeflateContexts(), before + 12);
      await Promise.all(
        clients.map((c) => {
          c.close();
          return closeEvent(c);
        }),
      );
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(liveDeflateContexts(), before);
    } finally {
      await close();
    }
  });
});

describe('permessage-deflate negotiation on the server, over the wire', () => {
  // [server options, Sec-WebSocket-Extensions offered, expected answer (null: declined)]
  const table: Array<[ServerOptions['perMessageDeflate'], string, string | null]> = [
    [true, 'permessage-deflate', 'permessage-deflate'],
    [true, 'permessage-deflate; client_max_window_bits', 'permessage-deflate'],
    [true, 'permessage-deflate; server_no_context_takeover', 'permessage-deflate; server_no_context_takeover'],
    [true, 'permessage-deflate; client_no_context_takeover', 'permessage-deflate; client_no_context_takeover'],
    [true, 'permessage-deflate; server_max_window_bits=10', 'permessage-deflate; server_max_window_bits=10'],
    [true, 'permessage-deflate; client_max_window_bits=9', 'permessage-deflate; client_max_window_bits=9'],
    [true, 'permessage-deflate; server_max_window_bits=16', null],
    [true, 'permessage-deflate; server_max_window_bits', null],
    [true, 'permessage-deflate; server_no_context_takeover; server_no_context_takeover', null],
    [true, 'permessage-deflate; mystery', null],
    [true, 'x-webkit-deflate-frame', null],
    // Several offers: the first acceptable one wins.
    [
      true,
      'permessage-deflate; mystery, permessage-deflate; server_max_window_bits=12, permessage-deflate',
      'permessage-deflate; server_max_window_bits=12',
    ],
    [true, 'x-other, permessage-deflate; client_no_context_takeover', 'permessage-deflate; client_no_context_takeover'],
    // The server's own terms.
    [
      { serverNoContextTakeover: true, serverMaxWindowBits: 11 },
      'permessage-deflate',
      'permessage-deflate; server_no_context_takeover; server_max_window_bits=11',
    ],
    [
      { clientMaxWindowBits: 10 },
      'permessage-deflate; client_max_window_bits',
      'permessage-deflate; client_max_window_bits=10',
    ],
    [{ clientMaxWindowBits: 10 }, 'permessage-deflate', null],
    [false, 'permessage-deflate', null],
    // Off unless asked for, as in ws.
    [undefined, 'permessage-deflate; client_max_window_bits', null],
  ];
  it('answers each offer as RFC 7692 section 7 says, and a declined offer still connects', T, async () => {
    for (const [options, offer, answer] of table) {
      const { port, close } = await startServer({ perMessageDeflate: options });
      try {
        const raw = await RawClient.connect(port, upgradeRequest('/', [`Sec-WebSocket-Extensions: ${offer}`]));
        assert.equal(raw.status, 101, offer);
        const header = /\r\nSec-WebSocket-Extensions: ([^\r\n]*)/i.exec(raw.responseHead)?.[1] ?? null;
        assert.equal(header, answer, `${JSON.stringify(options)} / ${offer}`);
        raw.destroy();
      } finally {
        await close();
      }
    }
  });

  it('a malformed Sec-WebSocket-Extensions header is 400', T, async () => {
    const { port, close } = await startServer({ perMessageDeflate: true });
    try {
      const raw = await RawClient.connect(
        port,
        upgradeRequest('/', ['Sec-WebSocket-Extensions: permessage-deflate; =x']),
      );
      assert.equal(raw.status, 400);
      raw.destroy();
    } finally {
      await close();
    }
  });
});

describe('permessage-deflate interop with ws (an independent implementation)', () => {
  const payloads: Array<Buffer | string> = [
    '',
    'x',
    'json '.repeat(3000),
    randomBytes(40_000),
    '✓ ünïcödé '.repeat(500),
    Buffer.alloc(1 << 20, 'z'),
  ];

  const wsOptions: Array<[string, object]> = [
    ['defaults', {}],
    ['no context takeover both ways', { serverNoContextTakeover: true, clientNoContextTakeover: true }],
    ['10-bit windows', { serverMaxWindowBits: 10, clientMaxWindowBits: 10 }],
  ];

  for (const [name, extra] of wsOptions) {
    it(`a ws client (${name}) against a duet server`, T, async () => {
      const { port, close } = await echoServer({ perMessageDeflate: { threshold: 0 } });
      try {
        const client = new WS(`ws://${HOST}:${port}/`, { perMessageDeflate: { threshold: 0, ...extra } });
        await once(client, 'open');
        assert.match(client.extensions, /permessage-deflate/);
        const got = new Promise<Array<[Buffer, boolean]>>((resolve) => {
          const list: Array<[Buffer, boolean]> = [];
          client.on('message', (d: Buffer, isBinary: boolean) => {
            list.push([d, isBinary]);
            if (list.length === payloads.length + 1) resolve(list);
          });
        });
        for (const p of payloads) client.send(p);
        client.send('frag-', { fin: false });
        client.send('mented', { fin: true });
        const list = await got;
        payloads.forEach((p, i) => {
          assert.equal(list[i][1], typeof p !== 'string');
          assert.ok(list[i][0].equals(typeof p === 'string' ? Buffer.from(p) : p), `payload ${i}`);
        });
        assert.equal(list[payloads.length][0].toString(), 'frag-mented');
        client.close(1000);
        await once(client, 'close');
      } finally {
        await close();
      }
    });

    it(`a duet client against a ws server (${name})`, T, async () => {
      const server = new WsServer({ port: 0, host: HOST, perMessageDeflate: { threshold: 0, ...extra } });
      await once(server, 'listening');
      server.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(d, { binary: isBinary })));
      try {
        const ws = await openClient((server.address() as AddressInfo).port);
        assert.match(ws.extensions, /^permessage-deflate/);
        const got = collect(ws, payloads.length + 1);
        for (const p of payloads) ws.send(p);
        ws.send('frag-', { fin: false });
        ws.send('mented', { fin: true });
        const list = await got;
        payloads.forEach((p, i) => {
          assert.equal(list[i][1], typeof p !== 'string');
          assert.ok(list[i][0].equals(typeof p === 'string' ? Buffer.from(p) : p), `payload ${i}`);
        });
        assert.equal(list[payloads.length][0].toString(), 'frag-mented');
        ws.close(1000);
        await closeEvent(ws);
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });
  }
});

describe('permessage-deflate: fragments, publishes and backpressure together', () => {
  it(
    'a publish while a compressed fragmented message is queued is neither merged into it nor splits it',
    T,
    async () => {
      const { wss, port, close } = await startServer({ perMessageDeflate: { threshold: 0 } });
      try {
        wss.on('connection', (ws: WebSocket) => {
          ws.subscribe('t');
          ws.send('frag1-', { fin: false });
          wss.publish('t', 'PUBLISHED');
          wss.broadcast('BROADCAST');
          ws.send('frag2');
          ws.send('after');
        });
        const ws = await openClient(port);
        const got = await collect(ws, 4);
        assert.deepEqual(
          got.map(([d]) => d.toString()),
          ['frag1-frag2', 'PUBLISHED', 'BROADCAST', 'after'],
        );
        ws.close();
      } finally {
        await close();
      }
    },
  );

  it(
    'an echo server stops reading while replies wait for compression, so a fast, healthy client is not closed as a slow consumer',
    T,
    async () => {
      const previous = zlibQueue.limit;
      const { port, close } = await echoServer({
        perMessageDeflate: { threshold: 0, level: 9, concurrencyLimit: 1 },
        maxBufferedAmount: 4 * 1024 * 1024,
      });
      try {
        const raw = await RawClient.connect(
          port,
          upgradeRequest('/', ['Sec-WebSocket-Extensions: permessage-deflate']),
        );
        assert.match(raw.responseHead, /permessage-deflate/);
        // 200 uncompressed messages of ~94 KiB in one write: parsing them costs nothing, while
        // each compressed reply takes a zlib job.
        const n = 200;
        const frames = Array.from({ length: n }, (_, i) =>
          clientFrame({ opcode: TEXT, payload: `${i}:` + 'lorem ipsum dolor sit amet '.repeat(3500) }),
        );
        raw.write(Buffer.concat(frames));
        await raw.until(() => raw.closed || raw.frames().length >= n, 15_000);
        const got = raw.frames();
        assert.deepEqual(
          got.filter((f) => f.opcode === CLOSE).map((f) => f.payload.readUInt16BE(0)),
          [],
          'closed by the server',
        );
        assert.equal(got.filter((f) => f.opcode === TEXT && f.rsv === 4).length, n);
        raw.destroy();
      } finally {
        zlibQueue.limit = previous;
        await close();
      }
    },
  );

  for (const compressed of [true, false]) {
    it(
      `slowConsumer 'drop' drops every fragment of a message whose first fragment it dropped (${compressed ? 'compressed' : 'uncompressed'})`,
      T,
      async () => {
        const { wss, port, close } = await startServer({
          perMessageDeflate: { threshold: 0 },
          slowConsumer: 'drop',
          maxBufferedAmount: 1024 * 1024,
        });
        try {
          const serverSide = once(wss, 'connection') as Promise<[WebSocket]>;
          const ws = await openClient(port, compressed ? { threshold: 0 } : false);
          const [server] = await serverSide;
          server.slowConsumerSends = true; // plain send() under the policy (it is not by default, as in ws)
          ws.pause();
          // Fill the pipe: random bytes do not compress, so the backlog really grows.
          for (let i = 0; i < 40 && server.backlog <= 1024 * 1024; i++) {
            server.send(randomBytes(1 << 20));
            await new Promise((r) => setTimeout(r, 20));
          }
          assert.ok(server.backlog > 1024 * 1024, `backlog ${server.backlog}`);
          const sentBefore = server.droppedMessages;
          server.send('dropped-1', { fin: false });
          server.send('dropped-2', { fin: true });
          assert.ok(server.droppedMessages > sentBefore);
          const texts: string[] = [];
          ws.on('message', (d: Buffer, isBinary: boolean) => {
            if (!isBinary) texts.push(d.toString());
          });
          ws.resume();
          for (let i = 0; i < 300 && server.backlog > 0; i++) await new Promise((r) => setTimeout(r, 10));
          server.send('after');
          for (let i = 0; i < 100 && !texts.includes('after'); i++) await new Promise((r) => setTimeout(r, 10));
          assert.deepEqual(texts, ['after']);
          ws.terminate();
        } finally {
          await close();
        }
      },
    );
  }

  it('a compression failure fails the connection with 1011 instead of sending a broken message', T, async () => {
    const { wss, port, close } = await startServer({ perMessageDeflate: { threshold: 0 } });
    const original = MessageDeflate.prototype.compress;
    try {
      const errors: string[] = [];
      wss.on('connection', (ws: WebSocket) => {
        ws.on('error', (err: Error & { code: string }) => errors.push(err.code));
        MessageDeflate.prototype.compress = function (_data, _fin, cb) {
          const err = Object.assign(new Error('simulated zlib failure'), { code: 'WS_ERR_DEFLATE', closeCode: 1011 });
          setImmediate(() => cb(err));
        };
        ws.send('never sent whole');
      });
      const raw = await RawClient.connect(port, upgradeRequest('/', ['Sec-WebSocket-Extensions: permessage-deflate']));
      assert.equal(await raw.closeCode(), 1011);
      assert.deepEqual(
        raw.frames().filter((f) => f.opcode === TEXT),
        [],
      );
      assert.deepEqual(errors, ['WS_ERR_DEFLATE']);
    } finally {
      MessageDeflate.prototype.compress = original;
      await close();
    }
  });
});

describe('permessage-deflate: the closing handshake waits for replies being compressed', () => {
  it("a reply sent before the peer's Close arrived goes out before the echoed Close", T, async () => {
    const { port, close } = await echoServer({ perMessageDeflate: true });
    try {
      const text = 'reply before close '.repeat(300);
      // Raw: the message and the Close in one write; the server echoes (compressing) and then closes.
      const raw = await RawClient.connect(port, upgradeRequest('/', ['Sec-WebSocket-Extensions: permessage-deflate']));
      raw.write(
        Buffer.concat([
          clientFrame({ opcode: TEXT, payload: deflateRaw(Buffer.from(text)), rsv: 4 }),
          clientFrame({ opcode: CLOSE, payload: closePayload(1000) }),
        ]),
      );
      await raw.until(() => raw.closed);
      assert.deepEqual(
        raw.frames().map((f) => [f.opcode, f.rsv]),
        [
          [TEXT, 4],
          [CLOSE, 0],
        ],
      );
      // duet's client: send, close at once; the echo still arrives, then close 1000.
      const ws = await openClient(port, true);
      const got: string[] = [];
      ws.on('message', (d: Buffer) => got.push(d.toString()));
      ws.send(text);
      ws.close(1000);
      const { code } = await closeEvent(ws);
      assert.equal(code, 1000);
      assert.deepEqual(got, [text]);
    } finally {
      await close();
    }
  });
});
