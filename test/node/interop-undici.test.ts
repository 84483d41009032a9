/**
 * Interop: undici's WebSocket (the WHATWG client Node ships; Node 20 needs
 * `--experimental-websocket`) as the client of duet's server. The client runs in a child
 * process started with that flag and is driven over IPC (advanced serialization, so strings
 * and bytes cross unchanged): the parent says open/send/close, the child reports every
 * event it sees. Skips with a printed reason when the running Node has no such WebSocket.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocket, WebSocketServer, type ServerOptions } from '../../src/index.js';
import { HOST, startServer, closeEvent } from '../helpers.js';

const T = { timeout: 10_000 };
/** Upper bound of every single wait in this file. */
const WAIT_MS = 5_000;

const FLAG = '--experimental-websocket';

/** Whether `node --experimental-websocket` has a global WebSocket here; the reason if not. */
function probeUndici(): string | null {
  const r = spawnSync(process.execPath, [FLAG, '-e', 'process.stdout.write(typeof WebSocket)'], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (r.error) return `could not run ${process.execPath} ${FLAG}: ${r.error.message}`;
  if (r.status !== 0) return `${process.execPath} rejects ${FLAG}: ${r.stderr.trim().split('\n')[0] ?? ''}`;
  if (r.stdout !== 'function') return `typeof WebSocket is '${r.stdout}' under ${FLAG}`;
  return null;
}

const unavailable = probeUndici();
if (unavailable) console.log(`# skipping undici interop tests: ${unavailable}`);

/**
 * The child: plain JavaScript run with `-e`. One WebSocket per id, binaryType 'arraybuffer';
 * every event goes back to the parent in order.
 */
const CHILD = `
'use strict';
const sockets = new Map();
const post = (m) => process.send(m);
const kindOf = (d) => typeof d === 'string' ? 'string' : d instanceof ArrayBuffer ? 'arraybuffer' : Object.prototype.toString.call(d);
process.on('message', (m) => {
  try {
    if (m.op === 'open') {
      const ws = m.protocols ? new WebSocket(m.url, m.protocols) : new WebSocket(m.url);
      ws.binaryType = 'arraybuffer';
      sockets.set(m.id, ws);
      ws.onopen = () => post({ ev: 'open', id: m.id, protocol: ws.protocol, extensions: ws.extensions, binaryType: ws.binaryType });
      ws.onmessage = (e) => post({ ev: 'message', id: m.id, kind: kindOf(e.data), data: typeof e.data === 'string' ? e.data : new Uint8Array(e.data) });
      ws.onerror = (e) => post({ ev: 'error', id: m.id, message: String(e.message ?? '') });
      ws.onclose = (e) => {
        sockets.delete(m.id);
        post({ ev: 'close', id: m.id, code: e.code, reason: e.reason, wasClean: e.wasClean, readyState: ws.readyState });
      };
    } else if (m.op === 'send') {
      const ws = sockets.get(m.id);
      // Binary goes out as an exact ArrayBuffer (not a view of a larger one).
      for (const d of m.data) ws.send(typeof d === 'string' ? d : d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
    } else if (m.op === 'close') {
      sockets.get(m.id).close(...m.args);
    }
  } catch (err) {
    post({ ev: 'threw', id: m.id, message: String(err) });
  }
});
process.on('disconnect', () => {
  for (const ws of sockets.values()) ws.close();
  process.exit(0);
});
post({ ev: 'ready', webSocket: typeof WebSocket });
`;

type ChildEvent =
  | { ev: 'ready'; webSocket: string }
  | { ev: 'open'; id: number; protocol: string; extensions: string; binaryType: string }
  | { ev: 'message'; id: number; kind: string; data: string | Uint8Array }
  | { ev: 'error'; id: number; message: string }
  | { ev: 'close'; id: number; code: number; reason: string; wasClean: boolean; readyState: number }
  | { ev: 'threw'; id: number; message: string };

type Open = Extract<ChildEvent, { ev: 'open' }>;
type Close = Extract<ChildEvent, { ev: 'close' }>;
type Message = Extract<ChildEvent, { ev: 'message' }>;

/** Reject after `ms` unless `p` settles first. */
function within<V>(p: Promise<V>, what: string | (() => string), ms = WAIT_MS): Promise<V> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`timed out after ${ms} ms waiting for ${typeof what === 'string' ? what : what()}`)),
        ms,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

/** One undici WebSocket in the child, seen from the parent. */
class UndiciClient {
  readonly events: ChildEvent[] = [];
  private waiters: Array<() => void> = [];

  constructor(
    private readonly child: UndiciChild,
    readonly id: number,
  ) {}

  /** Set when the child's handler threw for this socket: every wait fails with it. */
  private failure: Error | undefined;

  push(e: ChildEvent): void {
    if (e.ev === 'threw') this.failure = new Error(`the child threw: ${e.message}`);
    else this.events.push(e);
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Wait (up to WAIT_MS) until `cond()` holds; re-checked on every event. */
  until(cond: () => boolean, what: string): Promise<void> {
    return within(
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (this.failure) reject(this.failure);
          else if (cond()) resolve();
          else this.waiters.push(check);
        };
        check();
      }),
      () => `${what} (client ${this.id}; events so far: ${this.events.length ? this.summary() : 'none'})`,
    );
  }

  private summary(): string {
    const counts = new Map<string, number>();
    for (const e of this.events) counts.set(e.ev, (counts.get(e.ev) ?? 0) + 1);
    return [...counts].map(([k, n]) => `${k} x${n}`).join(', ');
  }

  /** The first event (in arrival order) that `pred` accepts. */
  async waitFor<E extends ChildEvent>(pred: (e: ChildEvent) => e is E, what: string): Promise<E> {
    let hit: E | undefined;
    await this.until(() => (hit = this.events.find(pred)) !== undefined, what);
    return hit!;
  }

  /** Resolves once `n` messages have arrived; fails if the socket closes first. */
  async messages(n: number): Promise<Message[]> {
    let count = 0;
    let seen = 0;
    let closed = false;
    await this.until(() => {
      for (; seen < this.events.length; seen++) {
        const e = this.events[seen];
        if (e.ev === 'message') count++;
        else if (e.ev === 'close') closed = true;
      }
      return count >= n || closed;
    }, `${n} messages`);
    const m = this.events.filter((e): e is Message => e.ev === 'message');
    assert.equal(
      m.length,
      n,
      `closed after ${m.length} of ${n} messages: ${JSON.stringify(this.events.find((e) => e.ev === 'close'))}`,
    );
    return m;
  }

  closed(): Promise<Close> {
    return this.waitFor((e): e is Close => e.ev === 'close', 'the close event');
  }

  send(...data: Array<string | Uint8Array>): void {
    this.child.post({ op: 'send', id: this.id, data });
  }

  close(...args: [] | [number] | [number, string]): void {
    this.child.post({ op: 'close', id: this.id, args });
  }
}

/** The child process holding undici WebSockets. */
class UndiciChild {
  private readonly proc: ChildProcess;
  private readonly clients = new Map<number, UndiciClient>();
  private nextId = 1;
  readonly ready: Promise<void>;

  constructor() {
    this.proc = spawn(process.execPath, [FLAG, '-e', CHILD], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    this.ready = within(
      new Promise<void>((resolve, reject) => {
        this.proc.once('exit', (code, signal) =>
          reject(new Error(`the undici child exited (${code ?? signal}) before it was ready`)),
        );
        this.proc.on('message', (m: ChildEvent) => {
          if (m.ev === 'ready') {
            if (m.webSocket === 'function') resolve();
            else reject(new Error(`typeof WebSocket is '${m.webSocket}' in the child`));
          } else {
            this.clients.get(m.id)?.push(m);
          }
        });
      }),
      'the undici child to start',
    );
  }

  post(m: unknown): void {
    this.proc.send(m as object);
  }

  /** Start a connection; it opens asynchronously (see `pair`). */
  connect(url: string, protocols?: string[]): UndiciClient {
    const c = new UndiciClient(this, this.nextId++);
    this.clients.set(c.id, c);
    this.post({ op: 'open', id: c.id, url, protocols });
    return c;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = once(this.proc, 'exit');
    if (this.proc.connected) this.proc.disconnect();
    try {
      await within(exited, 'the undici child to exit', 2_000);
    } catch {
      this.proc.kill('SIGKILL');
      await exited;
    }
  }
}

type Started = Awaited<ReturnType<typeof startServer>>;

interface Pair {
  client: UndiciClient;
  open: Open;
  server: WebSocket;
  req: IncomingMessage;
  /** Every message the server-side connection received, in order. */
  serverGot: Array<{ data: Buffer; isBinary: boolean }>;
}

/** Connect an undici client; resolves with it and the matching duet connection once both are open. */
async function pair(child: UndiciChild, srv: Started, protocols?: string[]): Promise<Pair> {
  const conn = once(srv.wss, 'connection') as Promise<[WebSocket, IncomingMessage]>;
  const client = child.connect(`ws://${HOST}:${srv.port}/`, protocols);
  const [[server, req], open] = await Promise.all([
    within(conn, 'the server connection'),
    client.waitFor((e): e is Open | Close => e.ev === 'open' || e.ev === 'close', 'the open event'),
  ]);
  assert.ok(open.ev === 'open', `the client did not open: ${JSON.stringify(open)}`);
  const serverGot: Pair['serverGot'] = [];
  server.on('message', (data: Buffer, isBinary: boolean) => serverGot.push({ data, isBinary }));
  return { client, open, server, req, serverGot };
}

/** Every message echoed back with the same type. */
function echo(wss: WebSocketServer): void {
  wss.on('connection', (ws: WebSocket) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }));
  });
}

/** Bytes where every value appears and a shifted copy would not compare equal. */
function patternBytes(n: number, seed = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8) + seed) & 0xff;
  return b;
}

function asBuffer(m: Message): Buffer {
  assert.equal(m.kind, 'arraybuffer', 'binaryType arraybuffer delivers ArrayBuffers');
  assert.ok(m.data instanceof Uint8Array);
  return Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
}

function asText(m: Message): string {
  assert.equal(m.kind, 'string');
  assert.equal(typeof m.data, 'string');
  return m.data as string;
}

const TEXTS = ['hello duet', '', 'Grüße, 世界! 😀 𝄞 ∑ — ½', 'é', '😀'.repeat(40), 'x'.repeat(126), 'ü'.repeat(40_000)];
const BINARIES = [
  Buffer.from([0, 1, 2, 0xfe, 0xff]),
  Buffer.alloc(0),
  patternBytes(125),
  patternBytes(126, 1),
  patternBytes(65_536, 2),
];

describe('undici WebSocket (child process) -> duet server', { skip: unavailable ?? false }, () => {
  let child: UndiciChild;
  const servers: Started[] = [];

  async function server(options: ServerOptions = {}): Promise<Started> {
    const srv = await startServer(options);
    servers.push(srv);
    return srv;
  }

  before(async () => {
    child = new UndiciChild();
    await child.ready;
  });

  after(async () => {
    await child?.stop();
    await Promise.all(servers.map((s) => s.close()));
  });

  for (const perMessageDeflate of [false, true]) {
    describe(`perMessageDeflate ${perMessageDeflate ? 'on' : 'off'}`, () => {
      let srv: Started;
      before(async () => {
        srv = await server({
          perMessageDeflate,
          handleProtocols: (protocols) => (protocols.has('chat.v2') ? 'chat.v2' : false),
        });
        echo(srv.wss);
      });

      it('handshake: the server picks one subprotocol, both sides agree on it and on the extensions', T, async () => {
        const { client, open, server: conn, req } = await pair(child, srv, ['chat.v1', 'chat.v2', 'chat.v3']);
        assert.equal(req.headers['sec-websocket-protocol'], 'chat.v1, chat.v2, chat.v3');
        assert.equal(open.protocol, 'chat.v2');
        assert.equal(conn.protocol, 'chat.v2');
        assert.equal(open.binaryType, 'arraybuffer');
        const offer = req.headers['sec-websocket-extensions'];
        // Whatever undici offers, what it reports is exactly what duet's server answered.
        assert.equal(open.extensions, conn.extensions);
        if (perMessageDeflate && offer !== undefined && /(^|,)\s*permessage-deflate\b/.test(offer)) {
          assert.match(conn.extensions, /^permessage-deflate\b/);
        } else {
          assert.equal(conn.extensions, '', `offer ${String(offer)}`);
        }
        client.close();
        assert.equal((await client.closed()).wasClean, true);
      });

      it('handshake without subprotocols: protocol is the empty string', T, async () => {
        const { client, open, server: conn, req } = await pair(child, srv);
        assert.equal(req.headers['sec-websocket-protocol'], undefined);
        assert.equal(open.protocol, '');
        assert.equal(conn.protocol, '');
        client.close();
        await client.closed();
      });

      it('echoes text (multi-byte UTF-8, empty) byte for byte and in order', T, async () => {
        const { client, serverGot } = await pair(child, srv);
        client.send(...TEXTS);
        const got = await client.messages(TEXTS.length);
        assert.deepEqual(got.map(asText), TEXTS);
        assert.deepEqual(
          serverGot.map((m) => m.isBinary),
          TEXTS.map(() => false),
        );
        serverGot.forEach((m, i) =>
          assert.ok(m.data.equals(Buffer.from(TEXTS[i], 'utf8')), `text ${i} as the server got it`),
        );
        client.close();
        await client.closed();
      });

      it('echoes binary ArrayBuffers (binaryType arraybuffer) byte for byte and in order', T, async () => {
        const { client, serverGot } = await pair(child, srv);
        client.send(...BINARIES);
        const got = await client.messages(BINARIES.length);
        got.forEach((m, i) => assert.ok(asBuffer(m).equals(BINARIES[i]), `binary ${i} echoed`));
        assert.equal(serverGot.length, BINARIES.length);
        serverGot.forEach((m, i) => {
          assert.equal(m.isBinary, true);
          assert.ok(m.data.equals(BINARIES[i]), `binary ${i} as the server got it`);
        });
        client.close();
        await client.closed();
      });

      it('mixes text and binary in one stream without reordering', T, async () => {
        const { client } = await pair(child, srv);
        const sent: Array<string | Buffer> = ['a', Buffer.from([1]), '', Buffer.alloc(0), 'ü', Buffer.from([2, 3])];
        client.send(...sent);
        const got = await client.messages(sent.length);
        got.forEach((m, i) => {
          const s = sent[i];
          if (typeof s === 'string') assert.equal(asText(m), s);
          else assert.ok(asBuffer(m).equals(s), `message ${i}`);
        });
        client.close();
        await client.closed();
      });

      it('carries a 1 MiB binary message each way', T, async () => {
        const { client, server: conn, serverGot } = await pair(child, srv);
        const up = patternBytes(1024 * 1024, 3);
        client.send(up);
        const [echoed] = await client.messages(1);
        assert.equal(serverGot.length, 1);
        assert.equal(serverGot[0].isBinary, true);
        assert.ok(serverGot[0].data.equals(up), 'the server got the 1 MiB exactly');
        assert.ok(asBuffer(echoed).equals(up), 'the echo is byte-exact');
        // And one that starts on the server.
        const down = patternBytes(1024 * 1024, 5);
        conn.send(down);
        const got = await client.messages(2);
        assert.ok(asBuffer(got[1]).equals(down), 'the server-sent 1 MiB is byte-exact');
        client.close();
        await client.closed();
      });

      it(
        `${perMessageDeflate ? 'compresses' : 'does not compress'} what the server sends; undici reads it exactly`,
        T,
        async () => {
          const { client, server: conn, serverGot } = await pair(child, srv);
          const socket = conn._socket as Socket;
          const text = 'all work and no play ✓ '.repeat(10_000); // 250,000 UTF-8 bytes
          const binary = Buffer.alloc(512 * 1024, 'duet');
          const before = socket.bytesWritten;
          conn.send(text);
          conn.send(binary);
          const [t, b] = await client.messages(2);
          assert.equal(asText(t), text);
          assert.ok(asBuffer(b).equals(binary));
          const wire = socket.bytesWritten - before;
          const raw = Buffer.byteLength(text) + binary.length;
          if (perMessageDeflate) assert.ok(wire < raw / 20, `${wire} bytes on the wire for ${raw} bytes of messages`);
          else assert.ok(wire > raw, `${wire} bytes on the wire for ${raw} bytes of messages`);
          // Whatever undici does on its side (Node 20's undici sends uncompressed), duet reads it.
          client.send(text, binary);
          await within(
            new Promise<void>((resolve) => conn.on('message', () => serverGot.length === 2 && resolve())),
            'the two messages on the server',
          );
          assert.equal(serverGot[0].data.toString('utf8'), text);
          assert.ok(serverGot[1].data.equals(binary));
          client.close();
          await client.closed();
        },
      );

      it('keeps 200 pipelined small messages in order, each way', T, async () => {
        const { client, server: conn, serverGot } = await pair(child, srv);
        const up = Array.from({ length: 200 }, (_, i) => `up ${i} ✓`);
        client.send(...up); // one loop in the child: all 200 go out before any echo is read
        const echoed = await client.messages(200);
        assert.deepEqual(echoed.map(asText), up);
        assert.deepEqual(
          serverGot.map((m) => m.data.toString('utf8')),
          up,
        );
        const down = Array.from({ length: 200 }, (_, i) => Buffer.from([i & 0xff, i >> 8, 0xab]));
        for (const b of down) conn.send(b);
        const got = await client.messages(400);
        got.slice(200).forEach((m, i) => assert.ok(asBuffer(m).equals(down[i]), `server message ${i}`));
        client.close();
        await client.closed();
      });
    });
  }

  describe('control frames and closing', () => {
    let srv: Started;
    before(async () => {
      srv = await server();
    });

    it('answers a server ping with a pong carrying the same payload', T, async () => {
      const { client, server: conn } = await pair(child, srv);
      const pongs: Buffer[] = [];
      conn.on('pong', (data: Buffer) => pongs.push(data));
      const payloads = [Buffer.from('are you there? ✓'), Buffer.alloc(0), patternBytes(125, 9)];
      for (const p of payloads) {
        const pong = within(once(conn, 'pong') as Promise<[Buffer]>, 'a pong');
        conn.ping(p);
        const [data] = await pong;
        assert.ok(data.equals(p), `pong payload ${p.length}`);
      }
      assert.equal(pongs.length, payloads.length);
      // Pings are not messages.
      assert.equal(client.events.filter((e) => e.ev === 'message').length, 0);
      client.close();
      await client.closed();
    });

    it(
      'close from undici with 4001 and a UTF-8 reason: the server sees exactly that, wasClean on both sides',
      T,
      async () => {
        const { client, server: conn } = await pair(child, srv);
        const reason = 'bye — ünïcödé 😀';
        const onServer = within(closeEvent(conn), 'the server close event');
        client.close(4001, reason);
        const [s, c] = await Promise.all([onServer, client.closed()]);
        assert.deepEqual(s, { code: 4001, reason });
        assert.equal(conn.wasClean, true);
        assert.equal(conn.readyState, WebSocket.CLOSED);
        assert.equal(c.wasClean, true);
        assert.equal(c.code, 4001);
        // duet echoes the code without the reason (RFC 6455 5.5.1 asks only for the code), and
        // the close event reports the Close frame received (RFC 6455 7.1.5-7.1.6): no reason.
        assert.equal(c.reason, '');
        assert.equal(c.readyState, 3);
        assert.equal(client.events.filter((e) => e.ev === 'error').length, 0);
      },
    );

    it('close from undici without a code: both sides report 1005', T, async () => {
      const { client, server: conn } = await pair(child, srv);
      const onServer = within(closeEvent(conn), 'the server close event');
      client.close();
      const [s, c] = await Promise.all([onServer, client.closed()]);
      assert.deepEqual(s, { code: 1005, reason: '' });
      assert.deepEqual([c.code, c.reason, c.wasClean], [1005, '', true]);
    });

    it('close from the server with 1001 and a reason: undici sees code, reason and wasClean', T, async () => {
      const { client, server: conn } = await pair(child, srv);
      const onServer = within(closeEvent(conn), 'the server close event');
      conn.close(1001, 'server going away ✓');
      const [s, c] = await Promise.all([onServer, client.closed()]);
      assert.deepEqual([c.code, c.reason, c.wasClean], [1001, 'server going away ✓', true]);
      assert.equal(s.code, 1001, 'undici echoed the code');
      assert.equal(conn.wasClean, true);
      assert.equal(client.events.filter((e) => e.ev === 'error').length, 0);
    });

    it('terminate() on the server: undici sees 1006 and wasClean false', T, async () => {
      const { client, server: conn } = await pair(child, srv);
      const onServer = within(closeEvent(conn), 'the server close event');
      conn.terminate();
      const [s, c] = await Promise.all([onServer, client.closed()]);
      assert.equal(s.code, 1006);
      assert.deepEqual([c.code, c.reason, c.wasClean], [1006, '', false]);
    });
  });

  describe('limits', () => {
    it('closes with 1009 when undici sends more than maxPayload', T, async () => {
      const srv = await server({ maxPayload: 1000 });
      const { client, server: conn, serverGot } = await pair(child, srv);
      const errors: Array<Error & { code?: string }> = [];
      conn.on('error', (err: Error) => errors.push(err));
      const onServer = within(closeEvent(conn), 'the server close event');
      client.send(patternBytes(1000)); // exactly the limit: delivered
      client.send(patternBytes(1001)); // one byte over
      const [s, c] = await Promise.all([onServer, client.closed()]);
      assert.equal(serverGot.length, 1);
      assert.ok(serverGot[0].data.equals(patternBytes(1000)));
      assert.deepEqual(
        errors.map((e) => e.code),
        ['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'],
      );
      assert.equal(s.code, 1009);
      // duet fails the connection (RFC 6455 7.1.7): Close 1009, then TCP closed without
      // waiting for the reply, so its side is not clean.
      assert.equal(conn.wasClean, false);
      // undici got the Close frame, answered it, and saw TCP close after that: clean for it.
      assert.deepEqual([c.code, c.reason, c.wasClean], [1009, '', true]);
      assert.equal(client.events.filter((e) => e.ev === 'error').length, 0);
    });
  });
});
