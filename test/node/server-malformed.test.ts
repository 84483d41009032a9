/**
 * Malformed input over real TCP: every bad opening handshake must get the exact HTTP status
 * (and the socket closed by the server), every bad frame the exact Close code (with an `error`
 * carrying a WS_ERR_* code, a matching `close`, and the server closing TCP). Each case is one
 * row of a table and one test; bytes are written by hand with the helpers in ../helpers.ts.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import type { CodedError, ServerOptions, WebSocket, WebSocketServer } from '../../src/index.js';
import { HOST, RawClient, clientFrame, closePayload, decodeFrames, startServer, upgradeRequest } from '../helpers.js';

// ---- small local tools ---------------------------------------------------------------------

type Server = Awaited<ReturnType<typeof startServer>>;

const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

/** Raw sockets opened by the current test; destroyed in afterEach so servers can close. */
const openSockets: net.Socket[] = [];

async function connect(port: number, request?: string | Buffer): Promise<RawClient> {
  const client = await RawClient.connect(port, request);
  openSockets.push(client.socket);
  return client;
}

function destroyOpenSockets(): void {
  for (const s of openSockets.splice(0)) s.destroy();
}

/** Reject if `p` does not settle within `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function startEchoServer(options: ServerOptions = {}): Promise<Server> {
  return startServer(options).then((srv) => {
    srv.wss.on('connection', (ws: WebSocket) => {
      ws.on('message', (d, b) => ws.send(d as Buffer, { binary: b }));
    });
    return srv;
  });
}

/** What the server side of one connection did. */
interface ServerSide {
  ws: WebSocket;
  errors: CodedError[];
  closed: Promise<{ code: number; reason: string }>;
}

/** The next connection `wss` accepts, with its `error` and `close` events recorded. */
function nextConnection(wss: WebSocketServer): Promise<ServerSide> {
  return new Promise((resolve) => {
    wss.once('connection', (ws: WebSocket) => {
      const errors: CodedError[] = [];
      ws.on('error', (err) => errors.push(err));
      const closed = new Promise<{ code: number; reason: string }>((r) => {
        ws.once('close', (code, reason) => r({ code, reason: reason.toString('utf8') }));
      });
      resolve({ ws, errors, closed });
    });
  });
}

/** Connect with a valid handshake and return the client and the server's side of it. */
async function openConnection(srv: Server): Promise<{ client: RawClient; side: ServerSide }> {
  const sideP = nextConnection(srv.wss);
  const client = await connect(srv.port);
  assert.equal(client.status, 101, `handshake failed: ${client.responseHead}`);
  const side = await within(sideP, 2000, 'server connection event');
  return { client, side };
}

/** Send a text message and expect the same text back. */
async function assertEchoes(client: RawClient, text = `echo-${randomBytes(4).toString('hex')}`): Promise<void> {
  const before = client.frames().length;
  client.write(clientFrame({ opcode: OP.TEXT, payload: text }));
  await client.until(() => client.frames().length > before || client.closed, 2000);
  const frame = client.frames()[before];
  assert.ok(frame, 'no echo received');
  assert.equal(frame.opcode, OP.TEXT);
  assert.equal(frame.masked, false, 'server frames must not be masked');
  assert.equal(frame.payload.toString('utf8'), text);
}

const newKey = (): string => randomBytes(16).toString('base64');

/**
 * An upgrade request built header by header, so any one can be dropped or replaced.
 * `set` replaces (or adds) a header; a value of null removes it.
 */
function request(
  o: {
    method?: string;
    path?: string;
    version?: string;
    set?: Record<string, string | null>;
    extra?: string[];
  } = {},
): string {
  const headers = new Map<string, string>([
    ['Host', HOST],
    ['Upgrade', 'websocket'],
    ['Connection', 'Upgrade'],
    ['Sec-WebSocket-Key', newKey()],
    ['Sec-WebSocket-Version', '13'],
  ]);
  for (const [name, value] of Object.entries(o.set ?? {})) {
    if (value === null) headers.delete(name);
    else headers.set(name, value);
  }
  const lines = [`${o.method ?? 'GET'} ${o.path ?? '/'} HTTP/${o.version ?? '1.1'}`];
  for (const [name, value] of headers) lines.push(`${name}: ${value}`);
  lines.push(...(o.extra ?? []), '', '');
  return lines.join('\r\n');
}

function expectedAccept(key: string): string {
  return createHash('sha1')
    .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
    .digest('base64');
}

// ---- opening handshake table ---------------------------------------------------------------

interface HandshakeCase {
  name: string;
  /** Options for a server of its own; without them the case runs on the shared server. */
  options?: ServerOptions;
  /** Runs before the request (e.g. to fill the server up). */
  setup?: (srv: Server) => Promise<void>;
  request: string | Buffer | (() => string | Buffer);
  /** `status` may list alternatives (0 = no response, just closed). */
  expect: { status: number | number[]; header?: RegExp };
  /** Time allowed from connecting to TCP closed by the server (default 2000 ms). */
  closedWithinMs?: number;
}

const VERSION_13 = /^Sec-WebSocket-Version: 13$/im;
const ALLOW_GET = /^Allow: GET$/im;

const handshakeCases: HandshakeCase[] = [
  {
    name: 'POST method -> 405',
    request: () => request({ method: 'POST' }),
    expect: { status: 405, header: ALLOW_GET },
  },
  { name: 'PUT method -> 405', request: () => request({ method: 'PUT' }), expect: { status: 405, header: ALLOW_GET } },
  {
    name: 'HEAD method -> 405',
    request: () => request({ method: 'HEAD' }),
    expect: { status: 405, header: ALLOW_GET },
  },
  { name: 'HTTP/1.0 -> 400', request: () => request({ version: '1.0' }), expect: { status: 400 } },
  { name: 'missing Host -> 400', request: () => request({ set: { Host: null } }), expect: { status: 400 } },
  {
    name: 'two Host lines -> 400',
    request: () => request({ extra: ['Host: other.example'] }),
    expect: { status: 400 },
  },
  {
    name: 'two Host lines, the second as HOST -> 400',
    request: () => request({ extra: ['HOST: other.example'] }),
    expect: { status: 400 },
  },
  { name: 'missing Upgrade -> 400', request: () => request({ set: { Upgrade: null } }), expect: { status: 400 } },
  { name: 'Upgrade: h2c -> 400', request: () => request({ set: { Upgrade: 'h2c' } }), expect: { status: 400 } },
  { name: 'missing Connection -> 400', request: () => request({ set: { Connection: null } }), expect: { status: 400 } },
  {
    name: 'Connection: keep-alive only -> 400',
    request: () => request({ set: { Connection: 'keep-alive' } }),
    expect: { status: 400 },
  },
  {
    name: "Connection: 'keep-alive, Upgrade' -> 101",
    request: () => request({ set: { Connection: 'keep-alive, Upgrade' } }),
    expect: { status: 101 },
  },
  {
    name: 'Upgrade: WebSocket (mixed case) -> 101',
    request: () => request({ set: { Upgrade: 'WebSocket' } }),
    expect: { status: 101 },
  },
  {
    name: 'missing Sec-WebSocket-Version -> 426 + Sec-WebSocket-Version: 13',
    request: () => request({ set: { 'Sec-WebSocket-Version': null } }),
    expect: { status: 426, header: VERSION_13 },
  },
  {
    name: 'Sec-WebSocket-Version: 8 -> 426 + Sec-WebSocket-Version: 13',
    request: () => request({ set: { 'Sec-WebSocket-Version': '8' } }),
    expect: { status: 426, header: VERSION_13 },
  },
  {
    name: 'Sec-WebSocket-Version: 14 -> 426 + Sec-WebSocket-Version: 13',
    request: () => request({ set: { 'Sec-WebSocket-Version': '14' } }),
    expect: { status: 426, header: VERSION_13 },
  },
  {
    name: 'missing Sec-WebSocket-Key -> 400',
    request: () => request({ set: { 'Sec-WebSocket-Key': null } }),
    expect: { status: 400 },
  },
  {
    name: 'Sec-WebSocket-Key too short -> 400',
    request: () => request({ set: { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZQ==' } }),
    expect: { status: 400 },
  },
  {
    name: 'Sec-WebSocket-Key not base64 -> 400',
    request: () => request({ set: { 'Sec-WebSocket-Key': '!!!!!!!!!!!!!!!!!!!!!!==' } }),
    expect: { status: 400 },
  },
  {
    name: 'Sec-WebSocket-Key of 15 bytes -> 400',
    request: () => request({ set: { 'Sec-WebSocket-Key': randomBytes(15).toString('base64') } }),
    expect: { status: 400 },
  },
  {
    name: 'Sec-WebSocket-Key of 17 bytes -> 400',
    request: () => request({ set: { 'Sec-WebSocket-Key': randomBytes(17).toString('base64') } }),
    expect: { status: 400 },
  },
  {
    name: 'bad Sec-WebSocket-Protocol syntax -> 400',
    request: () => request({ set: { 'Sec-WebSocket-Protocol': 'chat, , super chat' } }),
    expect: { status: 400 },
  },
  {
    name: 'duplicate subprotocol -> 400',
    request: () => request({ set: { 'Sec-WebSocket-Protocol': 'chat, chat' } }),
    expect: { status: 400 },
  },
  {
    name: 'bad Sec-WebSocket-Extensions syntax -> 400',
    request: () => request({ set: { 'Sec-WebSocket-Extensions': 'permessage-deflate; =15;;' } }),
    expect: { status: 400 },
  },
  {
    name: 'oversized headers (a 20 KB header) -> 431',
    request: () => request({ extra: [`X-Big: ${'a'.repeat(20 * 1024)}`] }),
    expect: { status: 431 },
  },
  {
    name: 'garbage bytes instead of HTTP -> 400',
    request: () =>
      Buffer.concat([
        Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]),
        randomBytes(64),
        Buffer.from('\r\n\r\n'),
      ]),
    expect: { status: 400 },
  },
  {
    name: "path not served (path: '/echo') -> 404",
    options: { path: '/echo' },
    request: () => request({ path: '/other' }),
    expect: { status: 404 },
  },
  {
    name: "served path (path: '/echo', with a query) -> 101",
    options: { path: '/echo' },
    request: () => request({ path: '/echo?x=1' }),
    expect: { status: 101 },
  },
  {
    name: 'allowOrigins list, wrong Origin -> 403',
    options: { allowOrigins: ['https://app.example.com'] },
    request: () => request({ set: { Origin: 'https://evil.example.com' } }),
    expect: { status: 403 },
  },
  {
    name: 'allowOrigins list, right Origin -> 101',
    options: { allowOrigins: ['https://app.example.com'] },
    request: () => request({ set: { Origin: 'https://app.example.com' } }),
    expect: { status: 101 },
  },
  {
    name: 'allowOrigins list, no Origin -> 101',
    options: { allowOrigins: ['https://app.example.com'] },
    request: () => request(),
    expect: { status: 101 },
  },
  {
    name: 'allowOrigins function returning false -> 403',
    options: { allowOrigins: () => false },
    request: () => request({ set: { Origin: 'https://app.example.com' } }),
    expect: { status: 403 },
  },
  {
    name: 'maxConnections: 1 with one open -> 503',
    options: { maxConnections: 1 },
    setup: async (srv) => {
      const first = await connect(srv.port);
      assert.equal(first.status, 101);
    },
    request: () => request(),
    expect: { status: 503 },
  },
  {
    name: 'verifyClient sync false -> 401',
    options: { verifyClient: () => false },
    request: () => request(),
    expect: { status: 401 },
  },
  {
    name: 'verifyClient async false with 403 -> 403',
    options: { verifyClient: (_info, done) => setTimeout(() => done(false, 403), 5) },
    request: () => request(),
    expect: { status: 403 },
  },
  {
    name: 'half the headers then silence -> dropped after handshakeTimeout (408 or closed)',
    options: { handshakeTimeout: 300 },
    request: `GET / HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`,
    expect: { status: [408, 0] },
    closedWithinMs: 2000,
  },
];

describe('opening handshake: malformed requests get the exact HTTP status', () => {
  let shared: Server;
  const ownServers: Server[] = [];

  before(async () => {
    shared = await startEchoServer();
  });
  afterEach(async () => {
    destroyOpenSockets();
    await Promise.all(ownServers.splice(0).map((s) => s.close()));
  });
  after(async () => {
    destroyOpenSockets();
    await shared.close();
  });

  for (const c of handshakeCases) {
    test(c.name, { timeout: 5000 }, async () => {
      let srv = shared;
      if (c.options) {
        srv = await startEchoServer(c.options);
        ownServers.push(srv);
      }
      await c.setup?.(srv);
      const req = typeof c.request === 'function' ? c.request() : c.request;
      const start = Date.now();
      const client = await connect(srv.port, req);
      const allowed = Array.isArray(c.expect.status) ? c.expect.status : [c.expect.status];
      assert.ok(
        allowed.includes(client.status),
        `status ${client.status}, expected ${allowed.join(' or ')}; response: ${JSON.stringify(client.responseHead)}`,
      );
      if (c.expect.header) assert.match(client.responseHead, c.expect.header);

      if (client.status === 101) {
        const key = /^Sec-WebSocket-Key: (.*)$/im.exec(req.toString())![1];
        assert.match(
          client.responseHead,
          new RegExp(`^Sec-WebSocket-Accept: ${expectedAccept(key).replace(/[+/]/g, '\\$&')}$`, 'im'),
        );
        await assertEchoes(client);
        return;
      }
      // Refused: the server closes the socket (the client never does).
      const budget = c.closedWithinMs ?? 2000;
      await client.until(() => client.closed, budget);
      assert.ok(Date.now() - start < budget + 100);
    });
  }

  test(
    'after the failed handshakes above, a good connection on the same server still echoes',
    { timeout: 5000 },
    async () => {
      // Several more refusals in parallel, then a good one.
      const bad = await Promise.all([
        connect(shared.port, request({ method: 'POST' })),
        connect(shared.port, request({ set: { 'Sec-WebSocket-Key': null } })),
        connect(shared.port, Buffer.from('\x00\x01\x02garbage\r\n\r\n', 'latin1')),
        connect(shared.port, request({ set: { 'Sec-WebSocket-Version': '8' } })),
      ]);
      assert.deepEqual(
        bad.map((c) => c.status),
        [405, 400, 400, 426],
      );
      const { client } = await openConnection(shared);
      await assertEchoes(client);
      await assertEchoes(client, 'second');
    },
  );
});

// ---- frame table ---------------------------------------------------------------------------

interface FrameCase {
  name: string;
  /** Run on the server with maxPayload: 1000. */
  small?: boolean;
  /** Run on the server with maxFragments: 100. */
  fewFragments?: boolean;
  /** Bytes the client writes after the handshake (one write). Nothing more is ever sent. */
  send: () => Buffer[];
  /**
   * `closeCode`: the connection must be failed with this code, `error` naming the WS_ERR_* code.
   * `echo`: a valid close; the server answers with `echo` (1005 = a Close without a code).
   */
  expect: { closeCode: number; error: string } | { echo: number };
}

const bytes = (...b: number[]): Buffer => Buffer.from(b);
const text = (payload: string | Buffer, fin = true): Buffer => clientFrame({ opcode: OP.TEXT, payload, fin });
const cont = (payload: string | Buffer, fin = true): Buffer => clientFrame({ opcode: OP.CONT, payload, fin });
const close = (payload: Buffer): Buffer => clientFrame({ opcode: OP.CLOSE, payload });

const PROTOCOL = 1002;
const INVALID_DATA = 1007;
const TOO_BIG = 1009;

const frameCases: FrameCase[] = [
  {
    name: 'unmasked client frame -> 1002',
    send: () => [clientFrame({ opcode: OP.TEXT, payload: 'hi', mask: false })],
    expect: { closeCode: PROTOCOL, error: 'WS_ERR_EXPECTED_MASK' },
  },
  {
    name: 'RSV1 set -> 1002',
    send: () => [clientFrame({ opcode: OP.TEXT, payload: 'hi', rsv: 4 })],
    expect: { closeCode: PROTOCOL, error: 'WS_ERR_UNEXPECTED_RSV_1' },
  },
  {
    name: 'RSV2 set -> 1002',
    send: () => [clientFrame({ opcode: OP.TEXT, payload: 'hi', rsv: 2 })],
    expect: { closeCode: PROTOCOL, error: 'WS_ERR_UNEXPECTED_RSV_2_3' },
  },
  {
    name: 'RSV3 set -> 1002',
    send: () => [clientFrame({ opcode: OP.TEXT, payload: 'hi', rsv: 1 })],
    expect: { closeCode: PROTOCOL, error: 'WS_ERR_UNEXPECTED_RSV_2_3' },
  },
  ...[0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf].map((opcode): FrameCase => ({
    name: `reserved opcode 0x${opcode.toString(16).toUpperCase()} -> 1002`,
    send: () => [clientFrame({ opcode, payload: 'x' })],
    expect: { closeCode: PROTOCOL, error: 'WS_ERR_INVALID_OPCODE' },
  })),
  {
    name: 'ping with a 126-byte payload -> 1002',
    send: () => [clientFrame({ opcode: OP.PING, payload: Buffer.alloc(126, 0x61) })],
    expect: { closeCode: PROTOCOL, error: 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH' },
  },
  {
    name: 'fragmented ping (FIN=0) -> 1002',
    send: () => [clientFrame({ opcode: OP.PING, payload: 'p', fin: false })],
    expect: { closeCode: PROTOCOL, error: 'WS_ERR_EXPECTED_FIN' },
  },
  {
    name: 'close with a 1-byte payload -> 1002',
    send: () => [close(bytes(0x03))],
    expect: { closeCode: PROTOCOL, error: 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH' },
  },
  ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535].map((code): FrameCase => ({
    name: `close code ${code} -> 1002`,
    send: () => [close(closePayload(code))],
    expect: { closeCode: PROTOCOL, error: 'WS_ERR_INVALID_CLOSE_CODE' },
  })),
  ...[1000, 1001, 3000, 4999].map((code): FrameCase => ({
    name: `valid close code ${code} -> echoed`,
    send: () => [close(closePayload(code, 'bye'))],
    expect: { echo: code },
  })),
  { name: 'empty close -> close without a code (1005)', send: () => [close(Buffer.alloc(0))], expect: { echo: 1005 } },
  {
    name: 'close with an invalid UTF-8 reason -> 1007',
    send: () => [close(closePayload(1000, bytes(0x61, 0xff, 0x62)))],
    expect: { closeCode: INVALID_DATA, error: 'WS_ERR_INVALID_UTF8' },
  },
  {
    name: 'continuation without a start -> 1002',
    send: () => [cont('orphan')],
    expect: { closeCode: PROTOCOL, error: 'WS_ERR_UNEXPECTED_CONTINUATION' },
  },
  {
    name: 'text frame during a fragmented message -> 1002',
    send: () => [text('part 1', false), text('new message')],
    expect: { closeCode: PROTOCOL, error: 'WS_ERR_EXPECTED_CONTINUATION' },
  },
  {
    name: 'invalid UTF-8 in a single text frame -> 1007',
    send: () => [text(bytes(0x68, 0x69, 0xff, 0x21))],
    expect: { closeCode: INVALID_DATA, error: 'WS_ERR_INVALID_UTF8' },
  },
  {
    // Only two fragments are ever sent: the close must come before the final fragment would.
    name: 'invalid UTF-8 in the 2nd fragment -> 1007 before the final fragment',
    send: () => [text('valid start ', false), cont(bytes(0x61, 0xfe, 0x62), false)],
    expect: { closeCode: INVALID_DATA, error: 'WS_ERR_INVALID_UTF8' },
  },
  {
    // The rest of the frame is never sent: the invalid byte alone must fail it (RFC 6455 8.1).
    name: 'a text frame cut short after an invalid byte (16-bit length, rest never sent) -> 1007',
    send: () => [clientFrame({ opcode: OP.TEXT, payload: bytes(0x68, 0x69, 0xff, 0x21), declaredLength: 1000 })],
    expect: { closeCode: INVALID_DATA, error: 'WS_ERR_INVALID_UTF8' },
  },
  {
    name: 'a text frame cut short after an invalid byte (64-bit length, rest never sent) -> 1007',
    send: () => [clientFrame({ opcode: OP.TEXT, payload: bytes(0xc0), declaredLength: 100_000 })],
    expect: { closeCode: INVALID_DATA, error: 'WS_ERR_INVALID_UTF8' },
  },
  {
    name: 'a continuation frame cut short, breaking a character begun in the first fragment -> 1007',
    send: () => [
      text(bytes(0x61, 0xe2), false),
      clientFrame({ opcode: OP.CONT, payload: bytes(0x82, 0x28), declaredLength: 500, fin: false }),
    ],
    expect: { closeCode: INVALID_DATA, error: 'WS_ERR_INVALID_UTF8' },
  },
  {
    name: 'overlong encoding C0 AF -> 1007',
    send: () => [text(bytes(0x2f, 0xc0, 0xaf))],
    expect: { closeCode: INVALID_DATA, error: 'WS_ERR_INVALID_UTF8' },
  },
  {
    name: 'UTF-16 surrogate ED A0 80 -> 1007',
    send: () => [text(bytes(0x61, 0xed, 0xa0, 0x80))],
    expect: { closeCode: INVALID_DATA, error: 'WS_ERR_INVALID_UTF8' },
  },
  {
    name: 'text ending mid-sequence (single frame) -> 1007',
    send: () => [text(bytes(0x61, 0xe2, 0x82))],
    expect: { closeCode: INVALID_DATA, error: 'WS_ERR_INVALID_UTF8' },
  },
  {
    name: 'text ending mid-sequence (fragmented) -> 1007',
    send: () => [text(bytes(0x61, 0xf0, 0x9f), false), cont(bytes(0x98))],
    expect: { closeCode: INVALID_DATA, error: 'WS_ERR_INVALID_UTF8' },
  },
  {
    // The header alone declares 1001 bytes; the payload is never sent.
    name: 'frame declaring 1001 bytes over maxPayload 1000 -> 1009 without the payload',
    small: true,
    send: () => [clientFrame({ opcode: OP.BINARY, declaredLength: 1001 })],
    expect: { closeCode: TOO_BIG, error: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' },
  },
  {
    name: 'fragments summing over maxPayload 1000 -> 1009',
    small: true,
    send: () => [
      clientFrame({ opcode: OP.BINARY, payload: Buffer.alloc(600), fin: false }),
      clientFrame({ opcode: OP.CONT, payload: Buffer.alloc(600) }),
    ],
    expect: { closeCode: TOO_BIG, error: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' },
  },
  {
    name: 'a message in 101 frames over maxFragments 100 -> 1009 at the 101st header',
    fewFragments: true,
    send: () => [
      text('a', false),
      ...Array.from({ length: 99 }, () => cont('b', false)),
      clientFrame({ opcode: OP.CONT, declaredLength: 5000, fin: false }),
    ],
    expect: { closeCode: TOO_BIG, error: 'WS_ERR_TOO_MANY_BUFFERED_PARTS' },
  },
  {
    name: 'empty continuation frames count: 1 + 100 empty over maxFragments 100 -> 1009',
    fewFragments: true,
    send: () => [clientFrame({ opcode: OP.BINARY, fin: false }), ...Array.from({ length: 100 }, () => cont('', false))],
    expect: { closeCode: TOO_BIG, error: 'WS_ERR_TOO_MANY_BUFFERED_PARTS' },
  },
  {
    name: '64-bit length with the MSB set -> 1002',
    send: () => [clientFrame({ opcode: OP.BINARY, declaredLength: 2 ** 63, lengthEncoding: 64 })],
    expect: { closeCode: PROTOCOL, error: 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH' },
  },
  {
    name: '64-bit length 2^53 -> 1009',
    send: () => [clientFrame({ opcode: OP.BINARY, declaredLength: 2 ** 53, lengthEncoding: 64 })],
    expect: { closeCode: TOO_BIG, error: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' },
  },
  {
    name: 'non-minimal 16-bit length for 5 bytes -> 1002',
    send: () => [clientFrame({ opcode: OP.TEXT, payload: 'hello', lengthEncoding: 16 })],
    expect: { closeCode: PROTOCOL, error: 'WS_ERR_NON_MINIMAL_LENGTH' },
  },
  {
    name: 'non-minimal 64-bit length for 200 bytes -> 1002',
    send: () => [clientFrame({ opcode: OP.BINARY, payload: Buffer.alloc(200), lengthEncoding: 64 })],
    expect: { closeCode: PROTOCOL, error: 'WS_ERR_NON_MINIMAL_LENGTH' },
  },
];

describe('frames: malformed input gets the exact close code', () => {
  let srv: Server;
  let small: Server;
  let fewFragments: Server;

  before(async () => {
    srv = await startEchoServer();
    small = await startEchoServer({ maxPayload: 1000 });
    fewFragments = await startEchoServer({ maxFragments: 100 });
  });
  afterEach(() => destroyOpenSockets());
  after(async () => {
    destroyOpenSockets();
    await Promise.all([srv.close(), small.close(), fewFragments.close()]);
  });

  for (const c of frameCases) {
    test(c.name, { timeout: 5000 }, async () => {
      const { client, side } = await openConnection(c.small ? small : c.fewFragments ? fewFragments : srv);
      client.write(Buffer.concat(c.send()));

      // The Close frame and the end of TCP must come without the client sending anything more.
      const code = await client.closeCode(2000);
      const closeFrames = client.frames().filter((f) => f.opcode === OP.CLOSE);
      assert.equal(closeFrames.length, 1, 'exactly one Close frame');
      assert.equal(closeFrames[0].masked, false);
      assert.ok(client.ended, 'the server closed TCP (FIN)');
      const serverClose = await within(side.closed, 2000, "server 'close' event");

      if ('echo' in c.expect) {
        assert.equal(code, c.expect.echo);
        assert.equal(serverClose.code, c.expect.echo);
        assert.deepEqual(side.errors, []);
        if (c.expect.echo !== 1005) assert.equal(serverClose.reason, 'bye');
        return;
      }
      assert.equal(code, c.expect.closeCode);
      assert.equal(serverClose.code, c.expect.closeCode);
      assert.equal(side.errors.length, 1, "one 'error' event");
      const err = side.errors[0];
      assert.ok(err instanceof Error);
      assert.match(err.code, /^WS_ERR_[A-Z0-9_]+$/);
      assert.equal(err.code, c.expect.error);
    });
  }
});

describe('frames: text checked as it arrives', () => {
  let srv: Server;
  before(async () => {
    srv = await startEchoServer();
  });
  afterEach(() => destroyOpenSockets());
  after(async () => {
    destroyOpenSockets();
    await srv.close();
  });

  test(
    'valid text cut inside characters, across writes and fragments, is echoed whole (no false 1007)',
    { timeout: 10_000 },
    async () => {
      const message = `é€𝄞${'a'.repeat(40)}€𝄞`;
      const payload = Buffer.from(message);
      const { client, side } = await openConnection(srv);
      const wire = Buffer.concat([text(payload.subarray(0, 5), false), cont(payload.subarray(5))]);
      // Cut inside characters of each fragment, with a pause between writes so they are usually
      // read separately (the parser tests cover every split deterministically).
      const cuts = [0, 2 + 4 + 1, 2 + 4 + 4, wire.length - 3, wire.length];
      for (let i = 1; i < cuts.length; i++) {
        client.write(wire.subarray(cuts[i - 1], cuts[i]));
        await new Promise((r) => setTimeout(r, 20));
      }
      await client.until(() => client.frames().length > 0 || client.closed, 5000);
      assert.equal(client.frames()[0]?.payload.toString('utf8'), message);
      assert.deepEqual(side.errors, []);
    },
  );
});

describe('frames: fragments per message bounded (maxFragments)', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    destroyOpenSockets();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  test(
    'with the default, a 4 MiB message in 65,536 fragments of 64 bytes is received whole (and echoed)',
    { timeout: 60_000 },
    async () => {
      const srv = await startEchoServer();
      servers.push(srv);
      assert.ok(srv.wss.options.maxFragments >= 65_536, 'the default must allow 65,536 frames');
      const { client, side } = await openConnection(srv);
      const fragment = Buffer.alloc(64);
      const frames: Buffer[] = [];
      for (let i = 0; i < 65_536; i++) {
        fragment.fill(i & 0xff);
        frames.push(clientFrame({ opcode: i === 0 ? OP.BINARY : OP.CONT, payload: fragment, fin: i === 65_535 }));
      }
      const received = new Promise<Buffer>((resolve) =>
        side.ws.once('message', (data) => resolve(Buffer.from(data as Buffer))),
      );
      client.write(Buffer.concat(frames));
      const message = await within(received, 30_000, 'the 4 MiB message');
      assert.equal(message.length, 4 * 1024 * 1024);
      for (let i = 0; i < 65_536; i += 4099) assert.equal(message[i * 64 + 63], i & 0xff, `fragment ${i} in place`);
      // The echo is one frame of 4 MiB: a 10-byte header and the payload.
      await client.until(() => client.received.length >= 10 + 4 * 1024 * 1024 || client.closed, 30_000);
      assert.equal(client.frames()[0]?.payload.equals(message), true);
      assert.deepEqual(side.errors, []);
    },
  );

  test(
    'an endless stream of empty continuation frames is closed with 1009 (default limit)',
    { timeout: 60_000 },
    async () => {
      const srv = await startEchoServer();
      servers.push(srv);
      const limit = srv.wss.options.maxFragments;
      const { client, side } = await openConnection(srv);
      client.write(clientFrame({ opcode: OP.TEXT, payload: 'start', fin: false }));
      // Keep sending empty continuations until the server gives up, at most four times the limit
      // (if it never does, the Close never comes and the test fails).
      const batch = Buffer.concat(Array.from({ length: 4096 }, () => clientFrame({ opcode: OP.CONT, fin: false })));
      let sent = 0;
      while (!client.closed && !client.ended && sent < 4 * limit) {
        if (!client.socket.write(batch)) {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              client.socket.off('drain', done);
              client.socket.off('close', done);
              resolve();
            };
            client.socket.on('drain', done);
            client.socket.on('close', done);
          });
        }
        sent += 4096;
      }
      assert.equal(await client.closeCode(30_000), 1009);
      const serverClose = await within(side.closed, 10_000, "server 'close' event");
      assert.equal(serverClose.code, 1009);
      assert.deepEqual(
        side.errors.map((e) => e.code),
        ['WS_ERR_TOO_MANY_BUFFERED_PARTS'],
      );
      assert.ok(sent >= limit, `closed after ${sent} frames sent, fewer than the limit ${limit}`);
    },
  );

  test(
    'maxFragments: 0 turns the limit off; a changed wss.options.maxFragments applies to later connections',
    { timeout: 20_000 },
    async () => {
      const srv = await startEchoServer({ maxFragments: 0 });
      servers.push(srv);
      const frames = (n: number): Buffer =>
        Buffer.concat(
          Array.from({ length: n }, (_, i) =>
            clientFrame({ opcode: i === 0 ? OP.TEXT : OP.CONT, payload: 'x', fin: i === n - 1 }),
          ),
        );
      const first = await openConnection(srv);
      first.client.write(frames(200_000));
      // The echo: a 10-byte header (64-bit length) and 200,000 bytes.
      await first.client.until(() => first.client.received.length >= 10 + 200_000 || first.client.closed, 15_000);
      assert.equal(first.client.frames()[0]?.payload.length, 200_000);
      srv.wss.options.maxFragments = 10;
      const second = await openConnection(srv);
      second.client.write(frames(11));
      assert.equal(await second.client.closeCode(5000), 1009);
    },
  );
});

// ---- connection lifecycle and isolation ----------------------------------------------------

/** A raw socket that never half-closes on its own (allowHalfOpen), doing a valid handshake. */
async function halfOpenClient(
  port: number,
): Promise<{ socket: net.Socket; data: () => Buffer; ended: Promise<void>; closed: Promise<void> }> {
  const socket = net.connect({ port, host: HOST, allowHalfOpen: true });
  openSockets.push(socket);
  socket.on('error', () => {});
  let received = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
  });
  const ended = new Promise<void>((r) => socket.once('end', () => r()));
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await new Promise<void>((r) => socket.once('connect', () => r()));
  socket.write(upgradeRequest());
  await within(
    new Promise<void>((r) => {
      const check = (): void => {
        if (received.includes('\r\n\r\n')) r();
        else socket.once('data', check);
      };
      check();
    }),
    2000,
    'handshake response',
  );
  assert.match(received.toString('latin1'), /^HTTP\/1\.1 101 /);
  return { socket, data: () => received.subarray(received.indexOf('\r\n\r\n') + 4), ended, closed };
}

describe('connection lifecycle', () => {
  const servers: Server[] = [];
  const server = async (options: ServerOptions = {}): Promise<Server> => {
    const s = await startEchoServer(options);
    servers.push(s);
    return s;
  };
  afterEach(async () => {
    destroyOpenSockets();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  test("a peer that vanishes (TCP destroyed) -> server 'close' with 1006", { timeout: 5000 }, async () => {
    const srv = await server();
    const { client, side } = await openConnection(srv);
    await assertEchoes(client);
    client.destroy();
    const { code } = await within(side.closed, 2000, "server 'close'");
    assert.equal(code, 1006);
    assert.deepEqual(side.errors, []);
  });

  test(
    'close handshake started by the client with 1000: server echoes and closes TCP first',
    { timeout: 5000 },
    async () => {
      const srv = await server();
      const { client, side } = await openConnection(srv);
      client.write(close(closePayload(1000)));
      assert.equal(await client.closeCode(2000), 1000);
      // The client never ends its side, so an 'end' it saw can only be the server's FIN.
      assert.ok(client.ended, 'server sent FIN first');
      const { code } = await within(side.closed, 2000, "server 'close'");
      assert.equal(code, 1000);
      assert.equal(side.ws.wasClean, true);
    },
  );

  test('a client that sends Close and never closes TCP is dropped by the server', { timeout: 5000 }, async () => {
    const srv = await server({ closeTimeout: 300 });
    const sideP = nextConnection(srv.wss);
    const c = await halfOpenClient(srv.port);
    const side = await within(sideP, 2000, 'connection');
    c.socket.write(close(closePayload(1000)));
    await within(c.ended, 2000, 'server FIN');
    const closeFrame = decodeFrames(c.data()).frames.find((f) => f.opcode === OP.CLOSE);
    assert.equal(closeFrame?.payload.readUInt16BE(0), 1000, 'server echoed Close 1000');
    // The client keeps its side open; the server must still let go of the connection.
    const { code } = await within(side.closed, 2000, "server 'close'");
    assert.equal(code, 1000);
    assert.equal(c.socket.writable, true, 'the client never half-closed');
  });

  test(
    "a peer that never answers the server's Close is dropped after closeTimeout; 'close' is 1006",
    { timeout: 5000 },
    async () => {
      const srv = await server({ closeTimeout: 300 });
      const { client, side } = await openConnection(srv);
      const start = Date.now();
      side.ws.close(1000, 'done');
      await client.until(() => client.frames().some((f) => f.opcode === OP.CLOSE), 2000);
      const { code } = await within(side.closed, 2000, "server 'close'");
      const elapsed = Date.now() - start;
      assert.equal(code, 1006);
      assert.ok(elapsed >= 250, `dropped after ${elapsed} ms, before closeTimeout`);
      await client.until(() => client.closed, 2000);
    },
  );

  test('bad peers do not affect a good connection on the same server', { timeout: 8000 }, async () => {
    const srv = await server();
    const good = await openConnection(srv);
    await assertEchoes(good.client, 'before');

    const badFrames: Buffer[] = [
      clientFrame({ opcode: OP.TEXT, payload: 'x', mask: false }),
      clientFrame({ opcode: 0x3 }),
      text(bytes(0xc0, 0xaf)),
      close(closePayload(1005)),
      clientFrame({ opcode: OP.BINARY, declaredLength: 2 ** 63, lengthEncoding: 64 }),
      cont('orphan'),
    ];
    const results = await Promise.all(
      badFrames.map(async (frame) => {
        const { client } = await openConnection(srv);
        client.write(frame);
        return client.closeCode(2000);
      }),
    );
    assert.deepEqual(results, [1002, 1002, 1007, 1002, 1002, 1002]);
    const refused = await Promise.all([
      connect(srv.port, request({ method: 'POST' })),
      connect(srv.port, Buffer.from('garbage\r\n\r\n')),
    ]);
    assert.deepEqual(
      refused.map((c) => c.status),
      [405, 400],
    );
    // A vanished peer too.
    const { client: vanishing, side } = await openConnection(srv);
    vanishing.destroy();
    await within(side.closed, 2000, 'vanished peer');

    await assertEchoes(good.client, 'after');
    assert.equal(good.client.closed, false);
    assert.equal(good.side.ws.readyState, 1);
    assert.deepEqual(good.side.errors, []);
  });
});
