/**
 * The WHATWG WebSocket client in Node: `new WebSocket(url, protocols?, options?)` against duet's
 * server, `ws`'s server and hand-written HTTP on raw TCP. Event order, exceptions, binaryType,
 * send() of every data type, bufferedAmount, handshake failures, TLS, and the Node extras.
 * Section names in test titles refer to the WHATWG WebSockets standard.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as https from 'node:https';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { WebSocketServer as WsServer } from 'ws';
import type { WebSocket as WsConn } from 'ws';
import { WebSocket, WebSocketServer } from '../../src/index.js';
import type { BinaryType, CodedError, WsCloseEvent, WsErrorEvent, WsEvent, WsMessageEvent } from '../../src/index.js';
import { HOST, decodeFrames, startServer, within } from '../helpers.js';
import { selfSignedCert } from '../tls-helpers.js';

const T = { timeout: 10_000 };

type Started = Awaited<ReturnType<typeof startServer>>;

// ---- helpers ------------------------------------------------------------------------------

/** Poll `cond` every few milliseconds until it holds; fail after `ms`. */
async function until(cond: () => boolean, ms = 5000, what = 'a condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Entry {
  type: string;
  readyState: number;
  data?: unknown;
  code?: number;
  reason?: string;
  wasClean?: boolean;
  error?: CodedError;
  event?: WsEvent;
}

/** Record every WHATWG event on `ws` with the readyState seen when it fired. */
function record(ws: WebSocket): { log: Entry[]; types(): string[]; closed: Promise<WsCloseEvent> } {
  const log: Entry[] = [];
  let resolveClosed!: (e: WsCloseEvent) => void;
  const closed = new Promise<WsCloseEvent>((r) => (resolveClosed = r));
  ws.addEventListener('open', (e: WsEvent) => log.push({ type: 'open', readyState: ws.readyState, event: e }));
  ws.addEventListener('message', (e: WsMessageEvent) =>
    log.push({ type: 'message', readyState: ws.readyState, data: e.data, event: e }),
  );
  ws.addEventListener('error', (e: WsErrorEvent) =>
    log.push({ type: 'error', readyState: ws.readyState, error: e.error as CodedError, event: e }),
  );
  ws.addEventListener('close', (e: WsCloseEvent) => {
    log.push({
      type: 'close',
      readyState: ws.readyState,
      code: e.code,
      reason: e.reason,
      wasClean: e.wasClean,
      event: e,
    });
    resolveClosed(e);
  });
  return { log, types: () => log.map((e) => e.type), closed };
}

function url(port: number, path = '/', scheme = 'ws'): string {
  return `${scheme}://${HOST}:${port}${path}`;
}

/** A duet server echoing every message with its type. */
async function echoServer(options: Parameters<typeof startServer>[0] = {}): Promise<Started> {
  const s = await startServer(options);
  s.wss.on('connection', (ws: WebSocket) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }));
  });
  return s;
}

/** A port nothing listens on: bind, read the port, close. */
async function refusedPort(): Promise<number> {
  const srv = net.createServer();
  srv.listen(0, HOST);
  await once(srv, 'listening');
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

interface RawServer {
  port: number;
  /** Request heads received, in order. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * A raw TCP server speaking hand-written HTTP. `onRequest` gets the socket, the request head
 * and the request's Sec-WebSocket-Key once the head is complete.
 */
async function rawServer(onRequest: (socket: net.Socket, head: string, key: string) => void): Promise<RawServer> {
  const sockets = new Set<net.Socket>();
  const requests: string[] = [];
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let head = '';
    let done = false;
    socket.on('data', (chunk: Buffer) => {
      if (done) return;
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      done = true;
      head = head.slice(0, end);
      requests.push(head);
      const key = /^sec-websocket-key:[ \t]*(\S+)/im.exec(head)?.[1] ?? '';
      onRequest(socket, head, key);
    });
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function accept(key: string): string {
  return createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
}

/** A 101 response for `key`, with extra header lines. */
function response101(key: string, extra: string[] = [], acceptValue = accept(key)): string {
  return [
    'HTTP/1.1 101 Switching Protocols',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Accept: ${acceptValue}`,
    ...extra,
    '',
    '',
  ].join('\r\n');
}

function isDomException(name: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof DOMException, `expected a DOMException, got ${String(err)}`);
    assert.equal(err.name, name);
    return true;
  };
}

/** Open a client and wait for `open`. */
async function openClient(
  target: string,
  protocols?: string | string[],
  options?: ConstructorParameters<typeof WebSocket>[2],
): Promise<WebSocket> {
  const ws = new WebSocket(target, protocols, options);
  await within(
    new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('close', (e: WsCloseEvent) => reject(new Error(`closed with ${e.code} before open`)), {
        once: true,
      });
    }),
    5000,
    'open',
  );
  return ws;
}

/** Collect what a duet server receives: messages and close codes of every connection. */
function collect(wss: WebSocketServer): {
  messages: Array<{ data: Buffer; isBinary: boolean }>;
  closes: Array<{ code: number; reason: string }>;
  requests: IncomingMessage[];
} {
  const out = {
    messages: [] as Array<{ data: Buffer; isBinary: boolean }>,
    closes: [] as Array<{ code: number; reason: string }>,
    requests: [] as IncomingMessage[],
  };
  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    out.requests.push(req);
    ws.on('message', (data: Buffer, isBinary: boolean) => out.messages.push({ data: Buffer.from(data), isBinary }));
    ws.on('close', (code: number, reason: Buffer) => out.closes.push({ code, reason: reason.toString() }));
  });
  return out;
}

// ---- the seed program ---------------------------------------------------------------------

describe('the seed program from the issue', () => {
  it('runs as written against a duet echo server and prints three lines in order', T, async () => {
    const s = await echoServer({ path: '/echo' });
    const lines: string[] = [];
    const original = console.log;
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    console.log = (...args: unknown[]): void => {
      lines.push(args.map(String).join(' '));
      if (lines.length === 3) done();
    };
    try {
      const port = s.port;
      // ---- verbatim from the issue, except the URL ----
      /* eslint-disable no-var, @typescript-eslint/restrict-plus-operands -- the issue's code as written */
      var ws = new WebSocket('ws://127.0.0.1:' + port + '/echo');
      ws.onopen = function (_evt) {
        console.log('Connection open ...');
        ws.send('Hello WebSockets!');
      };
      ws.onmessage = function (evt) {
        console.log('Received Message: ' + evt.data);
        ws.close();
      };
      ws.onclose = function (_evt) {
        console.log('Connection closed.');
      };
      /* eslint-enable no-var, @typescript-eslint/restrict-plus-operands */
      // ----
      await within(finished, 5000, 'three console lines');
      await tick(20);
    } finally {
      console.log = original;
      await s.close();
    }
    assert.deepEqual(lines, ['Connection open ...', 'Received Message: Hello WebSockets!', 'Connection closed.']);
  });
});

// ---- event order ----------------------------------------------------------------------------

describe('event order (Feedback from the protocol)', () => {
  it('open -> message -> close, with readyState 1, 1, 3; the constructor returns first', T, async () => {
    const s = await startServer();
    s.wss.on('connection', (ws: WebSocket) => {
      ws.send('first');
      ws.close(4000, 'done');
    });
    try {
      const ws = new WebSocket(url(s.port));
      const rec = record(ws);
      assert.equal(ws.readyState, WebSocket.CONNECTING);
      assert.equal(ws.readyState, 0);
      assert.equal(rec.log.length, 0, 'no event fires during the constructor');
      await tick();
      await within(rec.closed);
      assert.deepEqual(rec.types(), ['open', 'message', 'close']);
      assert.deepEqual(
        rec.log.map((e) => e.readyState),
        [WebSocket.OPEN, WebSocket.OPEN, WebSocket.CLOSED],
      );
      assert.equal(rec.log[1].data, 'first');
      const close = rec.log[2];
      assert.equal(close.code, 4000);
      assert.equal(close.reason, 'done');
      assert.equal(close.wasClean, true);
      assert.equal(ws.readyState, WebSocket.CLOSED);
    } finally {
      await s.close();
    }
  });

  it('client-initiated close: readyState 2 right after close(), then close with wasClean true', T, async () => {
    const s = await echoServer();
    const seen = collect(s.wss);
    try {
      const ws = await openClient(url(s.port));
      const rec = record(ws);
      ws.close(1000, 'bye');
      assert.equal(ws.readyState, WebSocket.CLOSING);
      const e = await within(rec.closed);
      // CloseEvent code/reason are the server's Close frame: duet echoes the code, no reason.
      assert.equal(e.code, 1000);
      assert.equal(e.reason, '');
      assert.equal(e.wasClean, true);
      assert.deepEqual(rec.types(), ['close']);
      await until(() => seen.closes.length === 1);
      assert.deepEqual(seen.closes, [{ code: 1000, reason: 'bye' }]);
    } finally {
      await s.close();
    }
  });

  it('close() without arguments sends a Close without a body: close event code 1005', T, async () => {
    const s = await echoServer();
    const seen = collect(s.wss);
    try {
      const ws = await openClient(url(s.port));
      const rec = record(ws);
      ws.close();
      const e = await within(rec.closed);
      assert.equal(e.code, 1005);
      assert.equal(e.wasClean, true);
      await until(() => seen.closes.length === 1);
      assert.equal(seen.closes[0].code, 1005);
    } finally {
      await s.close();
    }
  });

  it(
    'failure to connect (refused port): error then close 1006, wasClean false, readyState CLOSED at both',
    T,
    async () => {
      const port = await refusedPort();
      const ws = new WebSocket(url(port));
      const rec = record(ws);
      assert.equal(ws.readyState, WebSocket.CONNECTING);
      await within(rec.closed);
      assert.deepEqual(rec.types(), ['error', 'close']);
      assert.deepEqual(
        rec.log.map((e) => e.readyState),
        [WebSocket.CLOSED, WebSocket.CLOSED],
      );
      assert.equal(rec.log[0].error?.code, 'ECONNREFUSED');
      assert.equal(rec.log[1].code, 1006);
      assert.equal(rec.log[1].wasClean, false);
      assert.equal(rec.log[1].reason, '');
    },
  );

  it('close() while CONNECTING: readyState 2 at once, then error and close 1006, never open', T, async () => {
    const s = await echoServer();
    try {
      const ws = new WebSocket(url(s.port));
      const rec = record(ws);
      ws.close();
      assert.equal(ws.readyState, WebSocket.CLOSING);
      assert.equal(rec.log.length, 0, 'events are asynchronous');
      await within(rec.closed);
      await tick(50);
      assert.deepEqual(rec.types(), ['error', 'close']);
      assert.equal(rec.log[0].error?.code, 'WS_ERR_CLOSED_BEFORE_OPEN');
      assert.equal(rec.log[1].code, 1006);
      assert.equal(rec.log[1].wasClean, false);
      assert.deepEqual(
        rec.log.map((e) => e.readyState),
        [WebSocket.CLOSED, WebSocket.CLOSED],
      );
      ws.close(); // a no-op when CLOSED
      await tick(20);
      assert.equal(rec.log.length, 2);
    } finally {
      await s.close();
    }
  });

  it('the readyState constants exist on the class and on instances', () => {
    assert.deepEqual([WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED], [0, 1, 2, 3]);
    const ws = new WebSocket('ws://127.0.0.1:1/', [], { signal: AbortSignal.abort() });
    ws.onerror = () => {};
    assert.deepEqual([ws.CONNECTING, ws.OPEN, ws.CLOSING, ws.CLOSED], [0, 1, 2, 3]);
    assert.equal(ws.protocol, '');
    assert.equal(ws.extensions, '');
    assert.equal(ws.bufferedAmount, 0);
    assert.equal(ws.binaryType, 'blob');
  });

  it('onX properties and addEventListener both fire, in registration order, with target and this', T, async () => {
    const s = await echoServer();
    try {
      const ws = new WebSocket(url(s.port));
      const calls: string[] = [];
      const targets: unknown[] = [];
      ws.onopen = function (this: unknown, e) {
        calls.push('onopen');
        targets.push(this, e.target);
        ws.send('x');
      };
      ws.addEventListener('open', function (this: unknown, e: WsEvent) {
        calls.push('open listener');
        targets.push(this, e.target);
      });
      ws.onmessage = (e) => calls.push(`onmessage ${String(e.data)}`);
      ws.addEventListener('message', (e: WsMessageEvent) => {
        calls.push(`message listener ${String(e.data)}`);
        ws.close();
      });
      ws.onclose = (e) => calls.push(`onclose ${e.code}`);
      const closed = new Promise<void>((r) => ws.addEventListener('close', () => r()));
      assert.equal(typeof ws.onopen, 'function');
      await within(closed);
      assert.deepEqual(calls, ['onopen', 'open listener', 'onmessage x', 'message listener x', 'onclose 1005']);
      for (const t of targets) assert.equal(t, ws);
    } finally {
      await s.close();
    }
  });

  it(
    'close() in one message listener does not hide that message from later listeners (one dispatch per message task)',
    T,
    async () => {
      // "handle a WebSocket message": the readyState check is step 1 of the task; the event is
      // then fired once, and DOM dispatch invokes every listener registered for it.
      const s = await echoServer();
      try {
        const ws = await openClient(url(s.port));
        const calls: string[] = [];
        ws.addEventListener('message', (e: WsMessageEvent) => {
          calls.push(`first ${String(e.data)}`);
          ws.close();
        });
        ws.addEventListener('message', (e: WsMessageEvent) => calls.push(`second ${String(e.data)}`));
        ws.send('m');
        await within(new Promise((r) => ws.addEventListener('close', r)));
        assert.deepEqual(calls, ['first m', 'second m']);
      } finally {
        await s.close();
      }
    },
  );

  it(
    'a message arriving after close() (CLOSING) is not dispatched to WHATWG listeners; EventEmitter ones get it',
    T,
    async () => {
      const s = await echoServer();
      try {
        const ws = await openClient(url(s.port));
        const whatwg: unknown[] = [];
        const emitter: string[] = [];
        ws.addEventListener('message', (e: WsMessageEvent) => whatwg.push(e.data));
        ws.on('message', (d: Buffer) => emitter.push(d.toString()));
        ws.send('echo me'); // the echo comes back after our Close frame has left
        ws.close(4000);
        const e = await within(new Promise<WsCloseEvent>((r) => ws.addEventListener('close', r)));
        assert.equal(e.code, 4000);
        assert.deepEqual(whatwg, []);
        assert.deepEqual(emitter, ['echo me']);
      } finally {
        await s.close();
      }
    },
  );

  it('setting onX to null removes the handler; replacing it calls only the new one', T, async () => {
    const s = await echoServer();
    try {
      const ws = await openClient(url(s.port));
      const calls: string[] = [];
      ws.onmessage = () => calls.push('old');
      ws.onmessage = () => calls.push('new');
      ws.send('1');
      await until(() => calls.length === 1);
      ws.onmessage = null;
      assert.equal(ws.onmessage, null);
      const rec = record(ws);
      ws.send('2');
      await until(() => rec.log.length === 1);
      assert.deepEqual(calls, ['new']);
      ws.close();
      await within(rec.closed);
    } finally {
      await s.close();
    }
  });

  it('addEventListener: once, signal, handleEvent objects, duplicates ignored, removeEventListener', T, async () => {
    const s = await echoServer();
    try {
      const ws = await openClient(url(s.port));
      const calls: string[] = [];
      const onceListener = (e: WsMessageEvent): void => void calls.push(`once ${String(e.data)}`);
      ws.addEventListener('message', onceListener, { once: true });

      const ac = new AbortController();
      ws.addEventListener('message', (e: WsMessageEvent) => calls.push(`signal ${String(e.data)}`), {
        signal: ac.signal,
      });
      ws.addEventListener('message', () => calls.push('never'), { signal: AbortSignal.abort() });

      const handler = {
        seen: [] as string[],
        self: undefined as unknown,
        handleEvent(e: WsMessageEvent) {
          this.self = this;
          this.seen.push(String(e.data));
        },
      };
      ws.addEventListener('message', handler);

      const twice = (): void => void calls.push('dup');
      ws.addEventListener('message', twice);
      ws.addEventListener('message', twice);

      const removed = (): void => void calls.push('removed');
      ws.addEventListener('message', removed);
      ws.removeEventListener('message', removed);

      ws.send('a');
      await until(() => handler.seen.length === 1);
      ac.abort();
      ws.send('b');
      await until(() => handler.seen.length === 2);
      assert.deepEqual(calls, ['once a', 'signal a', 'dup', 'dup']);
      assert.deepEqual(handler.seen, ['a', 'b']);
      assert.equal(handler.self, handler, 'handleEvent is called with the object as this');
      ws.close();
      await within(new Promise((r) => ws.addEventListener('close', r)));
    } finally {
      await s.close();
    }
  });
});

// ---- exceptions -----------------------------------------------------------------------------

describe('exceptions (constructor, send, close)', () => {
  it('bad URLs throw SyntaxError', () => {
    for (const bad of [
      '',
      'not a url',
      '/relative',
      'ws://',
      'ws://127.0.0.1:99999/',
      'ws://exa mple.com/',
      '//127.0.0.1/',
    ]) {
      assert.throws(() => new WebSocket(bad), isDomException('SyntaxError'), JSON.stringify(bad));
    }
  });

  it('schemes other than ws, wss, http and https throw SyntaxError', () => {
    for (const bad of [
      'ftp://127.0.0.1/',
      'file:///tmp/x',
      'data:text/plain,x',
      'javascript:1',
      'mailto:a@b.c',
      'wss+x://h/',
    ]) {
      assert.throws(() => new WebSocket(bad), isDomException('SyntaxError'), bad);
    }
  });

  it('fragments throw SyntaxError, the empty fragment too', () => {
    for (const bad of ['ws://h/#x', 'ws://h/#', 'wss://h/path?q=1#frag', 'http://h/#']) {
      assert.throws(() => new WebSocket(bad), isDomException('SyntaxError'), bad);
    }
  });

  it('http: and https: map to ws: and wss:; url is the serialized URL', T, async () => {
    const port = await refusedPort();
    const cases: Array<[string, string]> = [
      [`http://${HOST}:${port}/a?b=c`, `ws://${HOST}:${port}/a?b=c`],
      [`https://${HOST}:${port}/a`, `wss://${HOST}:${port}/a`],
      [`HTTP://${HOST}:${port}`, `ws://${HOST}:${port}/`],
      [`ws://${HOST}:${port}`, `ws://${HOST}:${port}/`],
      [`WSS://${HOST}:${port}/x/../y`, `wss://${HOST}:${port}/y`],
    ];
    for (const [input, expected] of cases) {
      const ws = new WebSocket(input);
      const rec = record(ws);
      assert.equal(ws.url, expected, input);
      await within(rec.closed);
    }
    const fromUrl = new WebSocket(new URL(`http://${HOST}:${port}/u`));
    const rec = record(fromUrl);
    assert.equal(fromUrl.url, `ws://${HOST}:${port}/u`);
    await within(rec.closed);
  });

  it('invalid subprotocol tokens throw SyntaxError', () => {
    for (const bad of ['', 'a b', 'a,b', 'chat/1', 'é', ' chat', 'x"y'] as const) {
      assert.throws(() => new WebSocket('ws://127.0.0.1:1/', bad), isDomException('SyntaxError'), JSON.stringify(bad));
      assert.throws(
        () => new WebSocket('ws://127.0.0.1:1/', ['ok', bad]),
        isDomException('SyntaxError'),
        JSON.stringify(bad),
      );
    }
  });

  it('duplicate subprotocols throw SyntaxError', () => {
    assert.throws(() => new WebSocket('ws://127.0.0.1:1/', ['chat', 'chat']), isDomException('SyntaxError'));
    assert.throws(() => new WebSocket('ws://127.0.0.1:1/', ['a', 'b', 'a']), isDomException('SyntaxError'));
  });

  it('duplicate subprotocols differing only in case throw SyntaxError (WPT Create-protocols-repeated-case-insensitive)', () => {
    let ws: WebSocket | undefined;
    try {
      assert.throws(() => {
        ws = new WebSocket('ws://127.0.0.1:1/', ['echo', 'eCho'], { signal: AbortSignal.abort() });
      }, isDomException('SyntaxError'));
    } finally {
      if (ws) ws.onerror = () => {};
    }
  });

  it('send() while CONNECTING throws InvalidStateError', T, async () => {
    const s = await echoServer();
    try {
      const ws = new WebSocket(url(s.port));
      const rec = record(ws);
      assert.throws(() => ws.send('x'), isDomException('InvalidStateError'));
      assert.throws(() => ws.send(new Uint8Array(1)), isDomException('InvalidStateError'));
      assert.throws(() => ws.send(new Blob(['x'])), isDomException('InvalidStateError'));
      assert.equal(ws.bufferedAmount, 0);
      ws.close();
      await within(rec.closed);
    } finally {
      await s.close();
    }
  });

  it('close() with a code other than 1000 or 3000-4999 throws InvalidAccessError', T, async () => {
    const s = await echoServer();
    try {
      const ws = await openClient(url(s.port));
      for (const code of [0, 999, 1001, 1002, 1005, 1006, 1011, 1015, 2999, 5000, 65535]) {
        assert.throws(() => ws.close(code), isDomException('InvalidAccessError'), String(code));
      }
      assert.equal(ws.readyState, WebSocket.OPEN, 'rejected calls do not start closing');
      ws.close();
      await within(new Promise((r) => ws.addEventListener('close', r)));
    } finally {
      await s.close();
    }
  });

  it('close() with a reason over 123 UTF-8 bytes throws SyntaxError; 123 bytes is fine', T, async () => {
    const s = await echoServer();
    const seen = collect(s.wss);
    try {
      const ws = await openClient(url(s.port));
      assert.throws(() => ws.close(1000, 'x'.repeat(124)), isDomException('SyntaxError'));
      assert.throws(() => ws.close(1000, 'é'.repeat(62)), isDomException('SyntaxError'), '62 x 2 bytes = 124');
      assert.equal(ws.readyState, WebSocket.OPEN);
      const reason = `${'é'.repeat(61)}a`; // 123 bytes
      ws.close(1000, reason);
      const e = await within(new Promise<WsCloseEvent>((r) => ws.addEventListener('close', r)));
      assert.equal(e.code, 1000);
      await until(() => seen.closes.length === 1);
      assert.deepEqual(seen.closes[0], { code: 1000, reason });
    } finally {
      await s.close();
    }
  });

  it('close(3000) and close(4999) are accepted and sent to the server', T, async () => {
    const s = await echoServer();
    const seen = collect(s.wss);
    try {
      for (const code of [3000, 4999]) {
        const ws = await openClient(url(s.port));
        ws.close(code, `code ${code}`);
        const e = await within(new Promise<WsCloseEvent>((r) => ws.addEventListener('close', r)));
        assert.equal(e.code, code);
        assert.equal(e.wasClean, true);
      }
      await until(() => seen.closes.length === 2);
      assert.deepEqual(seen.closes, [
        { code: 3000, reason: 'code 3000' },
        { code: 4999, reason: 'code 4999' },
      ]);
    } finally {
      await s.close();
    }
  });

  it('close(code) is [Clamp] unsigned short: 3000.4 is sent as 3000 (WebIDL)', T, async () => {
    const s = await echoServer();
    const seen = collect(s.wss);
    try {
      const ws = await openClient(url(s.port));
      try {
        ws.close(3000.4);
      } finally {
        if (ws.readyState === WebSocket.OPEN) ws.close();
      }
      await within(new Promise((r) => ws.addEventListener('close', r)));
      await until(() => seen.closes.length === 1);
      assert.equal(seen.closes[0].code, 3000);
    } finally {
      await s.close();
    }
  });
});

// ---- binaryType and MessageEvent --------------------------------------------------------------

describe('binaryType and MessageEvent', () => {
  it(
    'blob (default) -> Blob, arraybuffer -> ArrayBuffer, nodebuffer -> Buffer; invalid values ignored; text is a string',
    T,
    async () => {
      const s = await echoServer();
      try {
        const ws = await openClient(url(s.port));
        const got: WsMessageEvent[] = [];
        ws.addEventListener('message', (e: WsMessageEvent) => got.push(e));
        const bytes = new Uint8Array([0, 1, 2, 250, 255]);
        const roundTrip = async (data: string | Uint8Array): Promise<WsMessageEvent> => {
          const n = got.length;
          ws.send(data);
          await until(() => got.length === n + 1);
          return got[n];
        };

        assert.equal(ws.binaryType, 'blob');
        let e = await roundTrip(bytes);
        assert.ok(e.data instanceof Blob, 'blob');
        assert.deepEqual(new Uint8Array(await e.data.arrayBuffer()), bytes);
        assert.equal((await roundTrip('text')).data, 'text');

        ws.binaryType = 'arraybuffer';
        assert.equal(ws.binaryType, 'arraybuffer');
        e = await roundTrip(bytes);
        assert.ok(e.data instanceof ArrayBuffer, 'arraybuffer');
        assert.ok(!Buffer.isBuffer(e.data));
        assert.deepEqual(new Uint8Array(e.data), bytes);
        assert.equal((await roundTrip('héllo')).data, 'héllo');

        ws.binaryType = 'bogus' as BinaryType;
        assert.equal(ws.binaryType, 'arraybuffer', 'an invalid value is ignored');

        ws.binaryType = 'nodebuffer';
        assert.equal(ws.binaryType, 'nodebuffer');
        e = await roundTrip(bytes);
        assert.ok(Buffer.isBuffer(e.data), 'nodebuffer');
        assert.deepEqual(new Uint8Array(e.data), bytes);
        const text = await roundTrip('still text');
        assert.equal(typeof text.data, 'string');
        assert.equal(text.data, 'still text');

        for (const m of got) {
          assert.equal(m.origin, `ws://${HOST}:${s.port}`, 'MessageEvent.origin is the URL origin');
          assert.equal(m.type, 'message');
          assert.equal(m.target, ws);
        }
        ws.close();
        await within(new Promise((r) => ws.addEventListener('close', r)));
      } finally {
        await s.close();
      }
    },
  );

  it(
    "the default 'blob' is for WHATWG listeners: ws-style message listeners get a Buffer (as ws gives) until binaryType is set",
    T,
    async () => {
      const s = await echoServer();
      try {
        const ws = await openClient(url(s.port));
        const bytes = new Uint8Array([9, 8, 7, 0, 255]);
        const styles: unknown[][] = [];
        const events: unknown[] = [];
        ws.on('message', (data: unknown, isBinary: boolean) => styles.push([data, isBinary]));
        ws.addEventListener('message', (e: WsMessageEvent) => events.push(e.data));
        ws.onmessage = (e: WsMessageEvent) => events.push(e.data);

        ws.send(bytes);
        await until(() => styles.length === 1 && events.length === 2);
        assert.ok(Buffer.isBuffer(styles[0][0]), 'ws-style listener: a Buffer');
        assert.deepEqual(new Uint8Array(styles[0][0]), bytes);
        assert.equal(styles[0][1], true);
        assert.ok(events[0] instanceof Blob, 'WHATWG listener: a Blob');
        assert.equal(events[0], events[1], 'every WHATWG listener gets the same Blob');
        assert.deepEqual(new Uint8Array(await events[0].arrayBuffer()), bytes);

        // Set explicitly, binaryType applies to both styles.
        ws.binaryType = 'blob';
        ws.send(bytes);
        await until(() => styles.length === 2 && events.length === 4);
        assert.ok(styles[1][0] instanceof Blob, "binaryType = 'blob' set: a Blob for ws-style listeners too");
        assert.ok(events[2] instanceof Blob);
        ws.binaryType = 'arraybuffer';
        ws.send(bytes);
        await until(() => styles.length === 3 && events.length === 6);
        assert.ok(styles[2][0] instanceof ArrayBuffer);
        assert.ok(events[4] instanceof ArrayBuffer);
        ws.close();
        await within(new Promise((r) => ws.addEventListener('close', r)));
      } finally {
        await s.close();
      }
    },
  );

  it(
    "the default 'blob': binaryType assigned in a listener applies from the next message; a delivery nested in a listener leaves the others the message's one Blob",
    T,
    async () => {
      const s = await echoServer();
      try {
        const ws = await openClient(url(s.port));
        const inner = await openClient(url(s.port));
        const bytes = new Uint8Array([1, 2, 3]);
        const events: unknown[] = [];
        ws.onmessage = (e: WsMessageEvent) => {
          events.push(e.data);
          ws.binaryType = 'arraybuffer';
        };
        ws.addEventListener('message', (e: WsMessageEvent) => events.push(e.data));
        ws.send(bytes);
        await until(() => events.length === 2);
        assert.ok(events[0] instanceof Blob);
        assert.equal(events[1], events[0], 'the next listener gets the same Blob (not a Buffer)');
        ws.send(bytes);
        await until(() => events.length === 4);
        assert.ok(
          events[2] instanceof ArrayBuffer && events[3] instanceof ArrayBuffer,
          'the next message follows the new binaryType',
        );

        // A listener that makes another connection deliver a message synchronously (here by
        // feeding its parser an unmasked binary frame, as a server sends it).
        const outer: unknown[] = [];
        const nested: unknown[] = [];
        inner.addEventListener('message', (e: WsMessageEvent) => nested.push(e.data));
        inner.onmessage = (e: WsMessageEvent) => nested.push(e.data);
        const other = await openClient(url(s.port));
        other.onmessage = (e: WsMessageEvent) => {
          outer.push(e.data);
          inner.parser!.push(Buffer.from([0x82, 0x01, 0x07]));
        };
        other.addEventListener('message', (e: WsMessageEvent) => outer.push(e.data));
        other.send(bytes);
        await until(() => outer.length === 2);
        assert.equal(nested.length, 2);
        assert.ok(outer[0] instanceof Blob && nested[0] instanceof Blob);
        assert.equal(outer[1], outer[0], 'the outer message keeps its one Blob');
        assert.equal(nested[1], nested[0], 'the nested message has its own one Blob');
        assert.notEqual(nested[0], outer[0]);
        assert.deepEqual(new Uint8Array(await outer[0].arrayBuffer()), bytes);
        assert.deepEqual(new Uint8Array(await nested[0].arrayBuffer()), new Uint8Array([7]));
        for (const c of [ws, inner, other]) c.close();
      } finally {
        await s.close();
      }
    },
  );

  it('an empty binary message is an empty Blob / ArrayBuffer; an empty text message is ""', T, async () => {
    const s = await echoServer();
    try {
      const ws = await openClient(url(s.port));
      const rec = record(ws);
      ws.send(new Uint8Array(0));
      await until(() => rec.log.length === 1);
      ws.binaryType = 'arraybuffer';
      ws.send(new ArrayBuffer(0));
      ws.send('');
      await until(() => rec.log.length === 3);
      assert.ok(rec.log[0].data instanceof Blob);
      assert.equal(rec.log[0].data.size, 0);
      assert.ok(rec.log[1].data instanceof ArrayBuffer);
      assert.equal(rec.log[1].data.byteLength, 0);
      assert.equal(rec.log[2].data, '');
      ws.close();
      await within(rec.closed);
    } finally {
      await s.close();
    }
  });
});

// ---- send() -----------------------------------------------------------------------------------

describe('send()', () => {
  it('string, ArrayBuffer, Uint8Array (with offset), DataView, Buffer and Blob arrive byte-exact', T, async () => {
    const s = await startServer();
    const seen = collect(s.wss);
    try {
      const ws = await openClient(url(s.port));
      const backing = new Uint8Array(256);
      for (let i = 0; i < backing.length; i++) backing[i] = i;
      const text = 'héllo, wörld € \u{1F600}';
      const ab = backing.slice(10, 20).buffer;
      const view = backing.subarray(3, 7);
      const dv = new DataView(backing.buffer, 100, 5);
      const buf = Buffer.from([9, 8, 7]);
      const blob = new Blob(['blob-', new Uint8Array([0, 255, 128])]);
      const big = new Uint8Array(70_000).map((_, i) => (i * 31) & 0xff); // 64-bit length
      ws.send(text);
      ws.send(ab);
      ws.send(view);
      ws.send(dv);
      ws.send(buf);
      ws.send(big);
      ws.send(blob); // last, so this test checks bytes only (ordering is the next tests' job)
      await until(() => seen.messages.length === 7);
      const expected: Array<[Uint8Array, boolean]> = [
        [Buffer.from(text, 'utf8'), false],
        [backing.slice(10, 20), true],
        [backing.slice(3, 7), true],
        [backing.slice(100, 105), true],
        [Uint8Array.from([9, 8, 7]), true],
        [big, true],
        [Buffer.concat([Buffer.from('blob-'), Buffer.from([0, 255, 128])]), true],
      ];
      seen.messages.forEach((m, i) => {
        assert.equal(m.isBinary, expected[i][1], `message ${i} type`);
        assert.ok(m.data.equals(expected[i][0]), `message ${i} bytes`);
      });
      ws.close();
      await within(new Promise((r) => ws.addEventListener('close', r)));
    } finally {
      await s.close();
    }
  });

  it('send(blob) then send(string) then send(blob): the server sees them in that order', T, async () => {
    const s = await startServer();
    const seen = collect(s.wss);
    try {
      const ws = await openClient(url(s.port));
      ws.send(new Blob(['blob one']));
      ws.send('string');
      ws.send(new Blob(['blob two']));
      await until(() => seen.messages.length === 3);
      assert.deepEqual(
        seen.messages.map((m) => `${m.isBinary ? 'binary' : 'text'} ${m.data.toString()}`),
        ['binary blob one', 'text string', 'binary blob two'],
      );
      ws.close();
      await within(new Promise((r) => ws.addEventListener('close', r)));
    } finally {
      await s.close();
    }
  });

  it('send(blob) then close(): the Blob is sent before the Close frame', T, async () => {
    const s = await startServer();
    const seen = collect(s.wss);
    try {
      const ws = await openClient(url(s.port));
      ws.send(new Blob(['only blob']));
      ws.close(1000);
      await within(new Promise((r) => ws.addEventListener('close', r)));
      await until(() => seen.closes.length === 1);
      assert.deepEqual(
        seen.messages.map((m) => m.data.toString()),
        ['only blob'],
      );
    } finally {
      await s.close();
    }
  });

  it('Blob sends keep their order with other sends and with close()', T, async () => {
    const s = await startServer();
    const seen = collect(s.wss);
    try {
      const ws = await openClient(url(s.port));
      ws.send(new Blob(['first blob']));
      ws.send('middle');
      ws.send(new Blob([new Uint8Array(100_000).fill(7)]));
      ws.send(new Uint8Array([1, 2, 3]));
      ws.send('last');
      ws.close(1000, 'after the blobs');
      const e = await within(new Promise<WsCloseEvent>((r) => ws.addEventListener('close', r)));
      assert.equal(e.code, 1000);
      await until(() => seen.closes.length === 1);
      assert.deepEqual(
        seen.messages.map((m) => [m.isBinary, m.data.length, m.data.subarray(0, 10).toString('latin1')]),
        [
          [true, 10, 'first blob'],
          [false, 6, 'middle'],
          [true, 100_000, '\x07'.repeat(10)],
          [true, 3, '\x01\x02\x03'],
          [false, 4, 'last'],
        ],
      );
      assert.deepEqual(seen.closes, [{ code: 1000, reason: 'after the blobs' }]);
    } finally {
      await s.close();
    }
  });
});

// ---- bufferedAmount -----------------------------------------------------------------------------

describe('bufferedAmount', () => {
  it('rises with a large send() and falls back to 0 once written', T, async () => {
    const s = await startServer();
    const seen = collect(s.wss);
    try {
      const ws = await openClient(url(s.port));
      assert.equal(ws.bufferedAmount, 0);
      const size = 8 * 1024 * 1024;
      ws.send(new Uint8Array(size));
      assert.ok(ws.bufferedAmount >= size, `right after send(): ${ws.bufferedAmount} >= ${size}`);
      ws.send('x');
      assert.ok(ws.bufferedAmount >= size + 1);
      await until(() => ws.bufferedAmount === 0, 5000, 'bufferedAmount to reach 0');
      await until(() => seen.messages.length === 2);
      assert.equal(seen.messages[0].data.length, size);
      ws.close();
      await within(new Promise((r) => ws.addEventListener('close', r)));
    } finally {
      await s.close();
    }
  });

  it('counts application bytes only (UTF-8 length), not framing (bufferedAmount getter steps)', T, async () => {
    const s = await echoServer();
    try {
      const ws = await openClient(url(s.port));
      ws.send('héllo'); // 6 bytes of UTF-8
      const afterText = ws.bufferedAmount;
      ws.send(new Uint8Array(10));
      const afterBinary = ws.bufferedAmount;
      ws.close();
      await within(new Promise((r) => ws.addEventListener('close', r)));
      assert.equal(afterText, 6, 'framing overhead is not counted');
      assert.equal(afterBinary, 16);
    } finally {
      await s.close();
    }
  });

  it('a Blob send counts its size at once', T, async () => {
    const s = await echoServer();
    try {
      const ws = await openClient(url(s.port));
      ws.send(new Blob([new Uint8Array(5000)]));
      assert.ok(ws.bufferedAmount >= 5000, `got ${ws.bufferedAmount}`);
      await until(() => ws.bufferedAmount === 0);
      ws.close();
      await within(new Promise((r) => ws.addEventListener('close', r)));
    } finally {
      await s.close();
    }
  });

  it('after close, send() does not throw and only grows bufferedAmount by the data size', T, async () => {
    const s = await echoServer();
    const seen = collect(s.wss);
    try {
      const ws = await openClient(url(s.port));
      ws.close(1000);
      assert.equal(ws.readyState, WebSocket.CLOSING);
      let before = ws.bufferedAmount;
      ws.send('abc');
      assert.equal(ws.bufferedAmount - before, 3, 'CLOSING: string');
      await within(new Promise((r) => ws.addEventListener('close', r)));
      assert.equal(ws.readyState, WebSocket.CLOSED);
      before = ws.bufferedAmount;
      assert.ok(before >= 3, 'does not reset once the connection closes');
      ws.send('héllo');
      assert.equal(ws.bufferedAmount, before + 6);
      ws.send(new Uint8Array(10));
      assert.equal(ws.bufferedAmount, before + 16);
      ws.send(new ArrayBuffer(7));
      assert.equal(ws.bufferedAmount, before + 23);
      ws.send(new Blob(['1234']));
      assert.equal(ws.bufferedAmount, before + 27);
      await tick(20);
      assert.equal(ws.bufferedAmount, before + 27);
      assert.equal(seen.messages.length, 0, 'nothing sent after close()');
    } finally {
      await s.close();
    }
  });
});

// ---- handshake failures ---------------------------------------------------------------------------

/** Connect to a raw server and expect error then close 1006; returns the error. */
async function expectHandshakeFailure(ws: WebSocket, ms = 3000): Promise<CodedError> {
  const rec = record(ws);
  try {
    await until(() => rec.log.some((e) => e.type === 'close' || e.type === 'open'), ms, 'close (or open)');
  } finally {
    if (ws.readyState === WebSocket.OPEN) ws.terminate();
  }
  assert.deepEqual(rec.types(), ['error', 'close']);
  const close = rec.log[1];
  assert.equal(close.code, 1006);
  assert.equal(close.wasClean, false);
  assert.equal(close.readyState, WebSocket.CLOSED);
  assert.equal(rec.log[0].readyState, WebSocket.CLOSED);
  const err = rec.log[0].error;
  assert.ok(err instanceof Error);
  return err;
}

describe('handshake failures', () => {
  it('a 200 response: error naming the status, then close 1006', T, async () => {
    const raw = await rawServer((socket) => {
      socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world');
    });
    try {
      const err = await expectHandshakeFailure(new WebSocket(url(raw.port, '/x')));
      assert.equal(err.code, 'WS_ERR_UNEXPECTED_RESPONSE');
      assert.match(err.message, /\b200\b/);
      assert.match(raw.requests[0], /^GET \/x HTTP\/1\.1\r\n/);
      assert.match(raw.requests[0], /^upgrade: websocket\r?$/im);
      assert.match(raw.requests[0], /^sec-websocket-version: 13\r?$/im);
      assert.match(raw.requests[0], /^sec-websocket-key: [A-Za-z0-9+/]{22}==\r?$/im);
    } finally {
      await raw.close();
    }
  });

  it('a wrong Sec-WebSocket-Accept fails', T, async () => {
    const raw = await rawServer((socket, _head, key) => socket.write(response101(key, [], accept(`${key}x`))));
    try {
      const err = await expectHandshakeFailure(new WebSocket(url(raw.port)));
      assert.equal(err.code, 'WS_ERR_INVALID_ACCEPT');
    } finally {
      await raw.close();
    }
  });

  it(
    'a 101 without Upgrade: websocket or Connection: Upgrade fails with WS_ERR_INVALID_UPGRADE_HEADER',
    T,
    async () => {
      const heads = [
        ['HTTP/1.1 101 Switching Protocols', 'Connection: Upgrade'], // no Upgrade
        ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket'], // no Connection
        ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: close'],
        ['HTTP/1.1 101 Switching Protocols', 'Upgrade: h2c', 'Connection: Upgrade'],
      ];
      for (const lines of heads) {
        const raw = await rawServer((socket, _head, key) =>
          socket.write([...lines, `Sec-WebSocket-Accept: ${accept(key)}`, '', ''].join('\r\n')),
        );
        try {
          const err = await expectHandshakeFailure(new WebSocket(url(raw.port)));
          assert.equal(err.code, 'WS_ERR_INVALID_UPGRADE_HEADER', lines.join(' | '));
        } finally {
          await raw.close();
        }
      }
    },
  );

  it('a 101 with an unrequested extension fails', T, async () => {
    const raw = await rawServer((socket, _head, key) =>
      socket.write(response101(key, ['Sec-WebSocket-Extensions: x-custom-extension'])),
    );
    try {
      const err = await expectHandshakeFailure(new WebSocket(url(raw.port)));
      assert.equal(err.code, 'WS_ERR_UNEXPECTED_EXTENSION');
      // permessage-deflate when it was not offered (perMessageDeflate: false) fails the same way.
      const err2 = await expectHandshakeFailure(new WebSocket(url(raw.port), [], { perMessageDeflate: false }));
      assert.equal(err2.code, 'WS_ERR_UNEXPECTED_EXTENSION');
    } finally {
      await raw.close();
    }
  });

  // RFC 7692 section 7, the client side: what the server answers to our offer.
  const deflateResponses: Array<[string, string | null, string | undefined]> = [
    ['permessage-deflate', 'permessage-deflate', undefined],
    ['permessage-deflate; server_no_context_takeover', 'permessage-deflate; server_no_context_takeover', undefined],
    ['permessage-deflate; client_no_context_takeover', 'permessage-deflate; client_no_context_takeover', undefined],
    ['permessage-deflate; server_max_window_bits=8', 'permessage-deflate; server_max_window_bits=8', undefined],
    ['permessage-deflate; client_max_window_bits=10', 'permessage-deflate; client_max_window_bits=10', undefined],
    ['permessage-deflate; client_max_window_bits', null, 'WS_ERR_INVALID_EXTENSION'],
    ['permessage-deflate; server_max_window_bits=16', null, 'WS_ERR_INVALID_EXTENSION'],
    ['permessage-deflate; server_max_window_bits=08', null, 'WS_ERR_INVALID_EXTENSION'],
    ['permessage-deflate; server_no_context_takeover=1', null, 'WS_ERR_INVALID_EXTENSION'],
    ['permessage-deflate; server_no_context_takeover; server_no_context_takeover', null, 'WS_ERR_INVALID_EXTENSION'],
    ['permessage-deflate; unknown_param', null, 'WS_ERR_INVALID_EXTENSION'],
    ['permessage-deflate, permessage-deflate', null, 'WS_ERR_INVALID_EXTENSION'],
    ['permessage-deflate; x=', null, 'WS_ERR_INVALID_EXTENSION'],
  ];
  for (const [answer, extensions, code] of deflateResponses) {
    it(`permessage-deflate response "${answer}" -> ${code ?? 'open'}`, T, async () => {
      const raw = await rawServer((socket, _head, key) =>
        socket.write(response101(key, [`Sec-WebSocket-Extensions: ${answer}`])),
      );
      try {
        const ws = new WebSocket(url(raw.port));
        if (code !== undefined) {
          const err = await expectHandshakeFailure(ws);
          assert.equal(err.code, code);
        } else {
          await once(ws, 'open');
          assert.equal(ws.extensions, extensions);
          ws.terminate();
        }
        // What browsers offer, and so do we by default.
        assert.match(raw.requests[0], /^sec-websocket-extensions: permessage-deflate; client_max_window_bits\r?$/im);
      } finally {
        await raw.close();
      }
    });
  }
  it('the offer follows the perMessageDeflate options', T, async () => {
    const raw = await rawServer((socket, _head, key) => socket.write(response101(key, [])));
    try {
      const ws = new WebSocket(url(raw.port), [], {
        perMessageDeflate: {
          serverNoContextTakeover: true,
          clientNoContextTakeover: true,
          serverMaxWindowBits: 10,
          clientMaxWindowBits: 12,
        },
      });
      await once(ws, 'open');
      assert.equal(ws.extensions, '');
      ws.terminate();
      assert.match(
        raw.requests[0],
        /^sec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12\r?$/im,
      );
      const plain = new WebSocket(url(raw.port), [], { perMessageDeflate: false });
      await once(plain, 'open');
      plain.terminate();
      assert.doesNotMatch(raw.requests[1], /sec-websocket-extensions/i);
    } finally {
      await raw.close();
    }
  });

  it('a 101 with a subprotocol that was not offered fails', T, async () => {
    const raw = await rawServer((socket, _head, key) =>
      socket.write(response101(key, ['Sec-WebSocket-Protocol: other'])),
    );
    try {
      const err = await expectHandshakeFailure(new WebSocket(url(raw.port), ['chat']));
      assert.equal(err.code, 'WS_ERR_UNEXPECTED_PROTOCOL');
      assert.match(raw.requests[0], /^sec-websocket-protocol: chat\r?$/im);
      const err2 = await expectHandshakeFailure(new WebSocket(url(raw.port)));
      assert.equal(err2.code, 'WS_ERR_UNEXPECTED_PROTOCOL');
    } finally {
      await raw.close();
    }
  });

  it('protocols offered but the 101 selects none: fails (WHATWG establish a WebSocket connection)', T, async () => {
    const raw = await rawServer((socket, _head, key) => socket.write(response101(key)));
    try {
      await expectHandshakeFailure(new WebSocket(url(raw.port), ['chat']));
    } finally {
      await raw.close();
    }
  });

  it(
    'a server that accepts TCP but never answers: handshakeTimeout -> WS_ERR_HANDSHAKE_TIMEOUT, close 1006',
    T,
    async () => {
      const raw = await rawServer(() => {});
      try {
        const start = Date.now();
        const err = await expectHandshakeFailure(new WebSocket(url(raw.port), [], { handshakeTimeout: 300 }));
        const took = Date.now() - start;
        assert.equal(err.code, 'WS_ERR_HANDSHAKE_TIMEOUT');
        assert.ok(took >= 250 && took < 2500, `took ${took} ms`);
      } finally {
        await raw.close();
      }
    },
  );

  it('a server that sends half a response and stalls: handshake timeout', T, async () => {
    const raw = await rawServer((socket) => socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n'));
    try {
      const err = await expectHandshakeFailure(new WebSocket(url(raw.port), [], { handshakeTimeout: 300 }));
      assert.equal(err.code, 'WS_ERR_HANDSHAKE_TIMEOUT');
    } finally {
      await raw.close();
    }
  });

  it(
    'signal: aborting the AbortController ends the attempt (error, close 1006); an aborted signal too',
    T,
    async () => {
      const raw = await rawServer(() => {});
      try {
        const ac = new AbortController();
        const ws = new WebSocket(url(raw.port), [], { signal: ac.signal });
        await until(() => raw.requests.length === 1);
        ac.abort();
        const err = await expectHandshakeFailure(ws);
        assert.equal(err.code, 'ABORT_ERR');

        const pre = new WebSocket(url(raw.port), [], { signal: AbortSignal.abort() });
        assert.equal(pre.readyState, WebSocket.CONNECTING);
        const err2 = await expectHandshakeFailure(pre);
        assert.equal(err2.code, 'ABORT_ERR');
      } finally {
        await raw.close();
      }
    },
  );

  it('signal aborted after open leaves the connection alone (docs/client.md: it abandons the attempt)', T, async () => {
    const s = await echoServer();
    try {
      const ac = new AbortController();
      const ws = await openClient(url(s.port), [], { signal: ac.signal });
      const rec = record(ws);
      ac.abort();
      await tick(20);
      ws.send('still open');
      await until(() => rec.log.length > 0);
      assert.deepEqual(rec.types(), ['message']);
      assert.equal(rec.log[0].data, 'still open');
      ws.close();
      await within(rec.closed);
    } finally {
      await s.close();
    }
  });

  it('followRedirects false (default): a 302 is an error naming the status', T, async () => {
    const raw = await rawServer((socket) =>
      socket.end('HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n'),
    );
    try {
      const err = await expectHandshakeFailure(new WebSocket(url(raw.port)));
      assert.match(err.message, /\b302\b/);
      assert.equal(raw.requests.length, 1);
    } finally {
      await raw.close();
    }
  });

  it(
    'followRedirects true: a 302 to another duet server connects; url is updated; credentials dropped across hosts',
    T,
    async () => {
      const target = await echoServer({ path: '/target' });
      const seen = collect(target.wss);
      const raw = await rawServer((socket) =>
        socket.end(
          `HTTP/1.1 302 Found\r\nLocation: ws://${HOST}:${target.port}/target?x=1\r\nContent-Length: 0\r\n\r\n`,
        ),
      );
      try {
        const ws = await openClient(url(raw.port, '/start'), [], {
          followRedirects: true,
          headers: { Authorization: 'Bearer secret', 'X-Keep': 'kept' },
        });
        assert.equal(ws.url, `ws://${HOST}:${target.port}/target?x=1`);
        ws.send('after redirect');
        const msg = await within(new Promise<WsMessageEvent>((r) => ws.addEventListener('message', r, { once: true })));
        assert.equal(msg.data, 'after redirect');
        assert.match(raw.requests[0], /^authorization: Bearer secret\r?$/im);
        assert.equal(seen.requests[0].headers.authorization, undefined);
        assert.equal(seen.requests[0].headers['x-keep'], 'kept');
        ws.close();
        await within(new Promise((r) => ws.addEventListener('close', r)));
      } finally {
        await raw.close();
        await target.close();
      }
    },
  );

  it('followRedirects: more than maxRedirects fails', T, async () => {
    let raw: RawServer | undefined = undefined;
    raw = await rawServer((socket) =>
      socket.end(`HTTP/1.1 302 Found\r\nLocation: ws://${HOST}:${raw!.port}/again\r\nContent-Length: 0\r\n\r\n`),
    );
    try {
      const err = await expectHandshakeFailure(
        new WebSocket(url(raw.port), [], { followRedirects: true, maxRedirects: 2 }),
      );
      assert.equal(err.code, 'WS_ERR_TOO_MANY_REDIRECTS');
      assert.equal(raw.requests.length, 3);
    } finally {
      await raw.close();
    }
  });
});

// ---- TLS ----------------------------------------------------------------------------------------

describe('TLS (wss://) with a self-signed certificate', () => {
  async function tlsServer(): Promise<{ port: number; cert: string; close(): Promise<void> }> {
    const { key, cert } = selfSignedCert();
    const server = https.createServer({ key, cert });
    const wss = new WebSocketServer({ server });
    wss.on('connection', (ws: WebSocket) => {
      ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }));
    });
    server.listen(0, HOST);
    await once(server, 'listening');
    return {
      port: (server.address() as AddressInfo).port,
      cert,
      close: () =>
        new Promise<void>((resolve) => {
          for (const c of wss.clients ?? []) c.terminate();
          wss.close();
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    };
  }

  it('rejected by default: error (certificate), then close 1006', T, async () => {
    const srv = await tlsServer();
    try {
      const err = await expectHandshakeFailure(
        new WebSocket(url(srv.port, '/', 'wss'), [], { servername: 'localhost' }),
      );
      assert.match(`${err.code} ${err.message}`, /SELF_SIGNED|CERT/);
    } finally {
      await srv.close();
    }
  });

  it('accepted with { ca: cert } (name checked against CN=localhost)', T, async () => {
    const srv = await tlsServer();
    try {
      const ws = await openClient(url(srv.port, '/', 'wss'), [], { ca: srv.cert, servername: 'localhost' });
      ws.send('over tls');
      const msg = await within(new Promise<WsMessageEvent>((r) => ws.addEventListener('message', r, { once: true })));
      assert.equal(msg.data, 'over tls');
      assert.equal(msg.origin, `wss://${HOST}:${srv.port}`);
      ws.close();
      const e = await within(new Promise<WsCloseEvent>((r) => ws.addEventListener('close', r)));
      assert.equal(e.wasClean, true);
    } finally {
      await srv.close();
    }
  });

  it('{ ca: cert } with a name the certificate does not cover is still rejected', T, async () => {
    const srv = await tlsServer();
    try {
      const err = await expectHandshakeFailure(
        new WebSocket(url(srv.port, '/', 'wss'), [], { ca: srv.cert, servername: 'not-localhost' }),
      );
      assert.match(`${err.code} ${err.message}`, /ALTNAME|host|name/i);
    } finally {
      await srv.close();
    }
  });

  it('accepted with rejectUnauthorized: false', T, async () => {
    const srv = await tlsServer();
    try {
      const ws = await openClient(url(srv.port, '/', 'wss'), [], { rejectUnauthorized: false });
      ws.send('insecure');
      const msg = await within(new Promise<WsMessageEvent>((r) => ws.addEventListener('message', r, { once: true })));
      assert.equal(msg.data, 'insecure');
      ws.close();
      await within(new Promise((r) => ws.addEventListener('close', r)));
    } finally {
      await srv.close();
    }
  });
});

// ---- interop with ws's server ---------------------------------------------------------------------

describe("interop against ws's WebSocketServer", () => {
  async function wsServer(
    options: ConstructorParameters<typeof WsServer>[0] = {},
  ): Promise<{ server: WsServer; port: number; close(): Promise<void> }> {
    const server = new WsServer({ port: 0, host: HOST, ...options });
    await once(server, 'listening');
    return {
      server,
      port: (server.address() as AddressInfo).port,
      close: () =>
        new Promise<void>((resolve) => {
          for (const c of server.clients) c.terminate();
          server.close(() => resolve());
        }),
    };
  }

  it('text and binary both ways, headers, origin and subprotocol seen by the server', T, async () => {
    const srv = await wsServer();
    const conn = new Promise<[WsConn, IncomingMessage]>((resolve) =>
      srv.server.once('connection', (c, req) => resolve([c, req])),
    );
    try {
      const ws = await openClient(url(srv.port, '/interop?q=1'), ['chat', 'superchat'], {
        headers: { 'X-Token': 'abc123' },
        origin: 'https://app.example',
      });
      const [server, req] = await within(conn);
      assert.equal(ws.protocol, 'chat');
      assert.equal(server.protocol, 'chat');
      assert.equal(ws.extensions, '');
      assert.equal(req.headers['x-token'], 'abc123');
      assert.equal(req.headers.origin, 'https://app.example');
      assert.equal(req.url, '/interop?q=1');

      const received: Array<[Buffer, boolean]> = [];
      server.on('message', (data, isBinary) => received.push([data as Buffer, isBinary]));
      ws.send('héllo');
      ws.send(new Uint8Array([1, 2, 3, 255]));
      await until(() => received.length === 2);
      assert.deepEqual(received[0], [Buffer.from('héllo'), false]);
      assert.deepEqual(received[1], [Buffer.from([1, 2, 3, 255]), true]);

      ws.binaryType = 'arraybuffer';
      const rec = record(ws);
      server.send('from ws');
      server.send(Buffer.from([4, 5, 6]));
      await until(() => rec.log.length === 2);
      assert.equal(rec.log[0].data, 'from ws');
      assert.deepEqual(new Uint8Array(rec.log[1].data as ArrayBuffer), new Uint8Array([4, 5, 6]));
      ws.close();
      await within(rec.closed);
    } finally {
      await srv.close();
    }
  });

  it('close code and reason, client to server and server to client', T, async () => {
    const srv = await wsServer();
    try {
      // client -> server
      let conn = new Promise<WsConn>((resolve) => srv.server.once('connection', (c) => resolve(c)));
      let ws = await openClient(url(srv.port));
      let server = await within(conn);
      const serverClosed = new Promise<[number, string]>((resolve) =>
        server.on('close', (code, reason) => resolve([code, reason.toString()])),
      );
      let rec = record(ws);
      ws.close(4001, 'client bye');
      let e = await within(rec.closed);
      assert.deepEqual([e.code, e.reason, e.wasClean], [4001, 'client bye', true]);
      assert.deepEqual(await within(serverClosed), [4001, 'client bye']);

      // server -> client
      conn = new Promise<WsConn>((resolve) => srv.server.once('connection', (c) => resolve(c)));
      ws = await openClient(url(srv.port));
      server = await within(conn);
      rec = record(ws);
      server.close(4002, 'server bye');
      e = await within(rec.closed);
      assert.deepEqual([e.code, e.reason, e.wasClean], [4002, 'server bye', true]);
      assert.deepEqual(rec.types(), ['close']);
    } finally {
      await srv.close();
    }
  });

  it("ping()/pong() methods and 'ping'/'pong' events on the client", T, async () => {
    const srv = await wsServer();
    const conn = new Promise<WsConn>((resolve) => srv.server.once('connection', (c) => resolve(c)));
    try {
      const ws = await openClient(url(srv.port));
      const server = await within(conn);
      const serverPongs: string[] = [];
      const serverPings: string[] = [];
      server.on('pong', (d) => serverPongs.push(d.toString()));
      server.on('ping', (d) => serverPings.push(d.toString()));
      const clientPings: string[] = [];
      const clientPongs: string[] = [];
      ws.on('ping', (d: Buffer) => clientPings.push(d.toString()));
      ws.on('pong', (d: Buffer) => clientPongs.push(d.toString()));

      ws.ping('client ping'); // ws answers with a pong
      await until(() => clientPongs.length === 1);
      assert.deepEqual(serverPings, ['client ping']);
      assert.deepEqual(clientPongs, ['client ping']);

      server.ping('server ping'); // the client answers automatically
      await until(() => serverPongs.length === 1);
      assert.deepEqual(clientPings, ['server ping']);
      assert.deepEqual(serverPongs, ['server ping']);

      ws.pong('unsolicited');
      await until(() => serverPongs.length === 2);
      assert.equal(serverPongs[1], 'unsolicited');

      assert.throws(() => ws.ping('x'.repeat(126)), RangeError);
      ws.close();
      await within(new Promise((r) => ws.addEventListener('close', r)));
    } finally {
      await srv.close();
    }
  });

  it('a subprotocol chosen by handleProtocols is the protocol attribute', T, async () => {
    const srv = await wsServer({ handleProtocols: (protocols: Set<string>) => (protocols.has('v2') ? 'v2' : false) });
    try {
      const ws = await openClient(url(srv.port), ['v1', 'v2']);
      assert.equal(ws.protocol, 'v2');
      ws.close();
      await within(new Promise((r) => ws.addEventListener('close', r)));
    } finally {
      await srv.close();
    }
  });
});

// ---- maxPayload -------------------------------------------------------------------------------------

describe('maxPayload on the client', () => {
  it('a message at the limit arrives; one byte over fails the connection with 1009', T, async () => {
    const s = await startServer();
    const serverClosed = new Promise<number>((resolve) => {
      s.wss.on('connection', (ws: WebSocket) => {
        ws.on('close', (code: number) => resolve(code));
        ws.send('a'.repeat(10));
        ws.send(Buffer.alloc(11));
      });
    });
    try {
      const ws = new WebSocket(url(s.port), [], { maxPayload: 10 });
      const rec = record(ws);
      const e = await within(rec.closed);
      assert.deepEqual(rec.types(), ['open', 'message', 'error', 'close']);
      assert.equal(rec.log[1].data, 'a'.repeat(10));
      // The client failed the connection: its Close frame says 1009 (the server's close event
      // shows it), but no Close came back before it dropped TCP, so its own CloseEvent says
      // 1006 (RFC 6455 7.1.5), as in browsers.
      assert.equal(e.code, 1006);
      assert.equal(e.wasClean, false);
      assert.equal(await within(serverClosed), 1009);
    } finally {
      await s.close();
    }
  });
});

/** A server frame (unmasked) as a raw server writes it: FIN and opcode, length as given, then `payload`. */
function serverFrame(opcode: number, payload: Buffer, declaredLength = payload.length, fin = true): Buffer {
  const b0 = (fin ? 0x80 : 0) | opcode;
  let head: Buffer;
  if (declaredLength < 126) head = Buffer.from([b0, declaredLength]);
  else if (declaredLength <= 0xffff) head = Buffer.from([b0, 126, declaredLength >> 8, declaredLength & 0xff]);
  else {
    head = Buffer.alloc(10);
    head[0] = b0;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(declaredLength), 2);
  }
  return Buffer.concat([head, payload]);
}

/**
 * A raw server that answers the handshake, writes `frames` (one write each, a short pause
 * between them) and records what the client sends back.
 */
async function rawFrameServer(frames: Buffer[]): Promise<RawServer & { fromClient: () => Buffer }> {
  let received = Buffer.alloc(0);
  const raw = await rawServer((socket, _head, key) => {
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
    });
    socket.write(response101(key));
    let i = 0;
    const next = (): void => {
      if (i >= frames.length || socket.destroyed) return;
      socket.write(frames[i++]);
      setTimeout(next, 20);
    };
    next();
  });
  // The listener is added while rawServer handles the request head, so it sees frames only.
  return { ...raw, fromClient: () => received };
}

describe('received text checked as it arrives (client side)', () => {
  it(
    'a text frame cut short after an invalid byte (rest never sent): the client fails it with 1007 at once',
    T,
    async () => {
      for (const [name, frames] of [
        ['a single frame, 16-bit length', [serverFrame(0x1, Buffer.from([0x68, 0x69, 0xff, 0x21]), 1000)]],
        ['a single frame, 64-bit length', [serverFrame(0x1, Buffer.from([0xc0]), 100_000)]],
        [
          'a continuation breaking a character of the first fragment',
          [
            serverFrame(0x1, Buffer.from([0x61, 0xe2]), 2, false),
            serverFrame(0x0, Buffer.from([0x82, 0x28]), 500, false),
          ],
        ],
      ] as Array<[string, Buffer[]]>) {
        const raw = await rawFrameServer(frames);
        try {
          const ws = new WebSocket(url(raw.port));
          const rec = record(ws);
          const e = await within(rec.closed, 5000, `${name}: close`);
          assert.deepEqual(rec.types(), ['open', 'error', 'close'], name);
          assert.equal(rec.log[1].error?.code, 'WS_ERR_INVALID_UTF8', name);
          assert.equal(e.wasClean, false, name);
          // What the client put on the wire: one masked Close frame with 1007.
          await until(
            () => decodeFrames(raw.fromClient()).frames.some((f) => f.opcode === 0x8),
            5000,
            `${name}: the client's Close frame`,
          );
          const close = decodeFrames(raw.fromClient()).frames.find((f) => f.opcode === 0x8)!;
          assert.equal(close.masked, true, name);
          assert.equal(close.payload.readUInt16BE(0), 1007, name);
        } finally {
          await raw.close();
        }
      }
    },
  );

  it('valid text cut inside characters, across writes and fragments, arrives whole', T, async () => {
    const message = `é€𝄞${'a'.repeat(40)}€𝄞`;
    const payload = Buffer.from(message);
    const wire = Buffer.concat([
      serverFrame(0x1, payload.subarray(0, 5), 5, false),
      serverFrame(0x0, payload.subarray(5)),
    ]);
    const cuts = [0, 2 + 1, 2 + 4, wire.length - 3, wire.length];
    const raw = await rawFrameServer(cuts.slice(1).map((cut, i) => wire.subarray(cuts[i], cut)));
    try {
      const ws = new WebSocket(url(raw.port));
      const rec = record(ws);
      await until(() => rec.types().includes('message') || rec.types().includes('close'), 5000, 'the message');
      assert.deepEqual(rec.types(), ['open', 'message']);
      assert.equal(rec.log[1].data, message);
      ws.close();
    } finally {
      await raw.close();
    }
  });
});

describe('maxFragments on the client', () => {
  it(
    'a message in more frames than maxFragments fails the connection with 1009; within it, it arrives',
    T,
    async () => {
      const fragments = (n: number, last = true): Buffer[] =>
        Array.from({ length: n }, (_, i) =>
          serverFrame(i === 0 ? 0x2 : 0x0, Buffer.from([i & 0xff]), 1, last && i === n - 1),
        );
      // 10 frames: delivered. Then a message whose 11th frame goes over the limit.
      const raw = await rawFrameServer([
        Buffer.concat([...fragments(10), ...fragments(10, false), serverFrame(0x0, Buffer.alloc(0), 0, false)]),
      ]);
      try {
        const ws = new WebSocket(url(raw.port), [], { maxFragments: 10 });
        ws.binaryType = 'nodebuffer';
        const rec = record(ws);
        const e = await within(rec.closed, 5000, 'close');
        assert.deepEqual(rec.types(), ['open', 'message', 'error', 'close']);
        assert.deepEqual([...(rec.log[1].data as Buffer)], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert.equal(rec.log[2].error?.code, 'WS_ERR_TOO_MANY_BUFFERED_PARTS');
        assert.equal(e.wasClean, false);
        await until(
          () => decodeFrames(raw.fromClient()).frames.some((f) => f.opcode === 0x8),
          5000,
          "the client's Close frame",
        );
        const close = decodeFrames(raw.fromClient()).frames.find((f) => f.opcode === 0x8)!;
        assert.equal(close.payload.readUInt16BE(0), 1009);
      } finally {
        await raw.close();
      }
    },
  );

  it('the default lets a message in 65,536 fragments through', T, async () => {
    const frames = Array.from({ length: 65_536 }, (_, i) =>
      serverFrame(i === 0 ? 0x1 : 0x0, Buffer.from('ab'), 2, i === 65_535),
    );
    const raw = await rawFrameServer([Buffer.concat(frames)]);
    try {
      const ws = new WebSocket(url(raw.port));
      const rec = record(ws);
      await until(() => rec.types().includes('message') || rec.types().includes('close'), 20_000, 'the message');
      assert.deepEqual(rec.types(), ['open', 'message']);
      assert.equal((rec.log[1].data as string).length, 2 * 65_536);
      ws.close();
    } finally {
      await raw.close();
    }
  });
});

describe('Node extras: agent and createConnection', () => {
  it('an http.Agent is used for the request', T, async () => {
    const s = await echoServer();
    const { Agent } = await import('node:http');
    const agent = new Agent();
    let created = 0;
    const original = agent.createConnection.bind(agent);
    agent.createConnection = (...args: Parameters<typeof original>) => {
      created++;
      return original(...args);
    };
    try {
      const ws = await openClient(url(s.port), [], { agent });
      const reply = within(new Promise<WsMessageEvent>((r) => ws.addEventListener('message', r, { once: true })));
      ws.send('via agent');
      assert.equal((await reply).data, 'via agent');
      assert.equal(created, 1);
      ws.close();
      await within(new Promise((r) => ws.addEventListener('close', r)));
    } finally {
      agent.destroy();
      await s.close();
    }
  });

  it('createConnection makes the socket', T, async () => {
    const s = await echoServer();
    let made = 0;
    try {
      const ws = await openClient(url(s.port), [], {
        createConnection: () => {
          made++;
          return net.connect(s.port, HOST);
        },
      });
      const reply = within(new Promise<WsMessageEvent>((r) => ws.addEventListener('message', r, { once: true })));
      ws.send('own socket');
      assert.equal((await reply).data, 'own socket');
      assert.equal(made, 1);
      ws.close();
      await within(new Promise((r) => ws.addEventListener('close', r)));
    } finally {
      await s.close();
    }
  });
});

describe('review fixes', () => {
  it('close() twice while connecting does not throw; error then close 1006 once', T, async () => {
    const port = await refusedPort();
    const ws = new WebSocket(url(port));
    const events: string[] = [];
    ws.onerror = () => events.push('error');
    const closed = new Promise<WsCloseEvent>((r) => (ws.onclose = r));
    ws.close();
    ws.close();
    ws.close(1000, 'again');
    const e = await within(closed);
    assert.equal(e.code, 1006);
    await tick(20);
    assert.deepEqual(events, ['error']);
  });

  it('send() of a value that is not a string, bytes or Blob sends its string form as text', T, async () => {
    const s = await echoServer();
    try {
      const ws = await openClient(url(s.port));
      const reply = within(new Promise<WsMessageEvent>((r) => ws.addEventListener('message', r, { once: true })));
      ws.send({ toString: () => 'as text' } as unknown as string);
      assert.equal((await reply).data, 'as text');
      ws.close();
    } finally {
      await s.close();
    }
  });

  it(
    'an open or close listener that throws is reported as a warning; the process and the connection carry on',
    T,
    async () => {
      const s = await echoServer();
      const warnings: Error[] = [];
      const onWarning = (w: Error) => warnings.push(w);
      process.on('warning', onWarning);
      try {
        const ws = new WebSocket(url(s.port));
        ws.onopen = () => {
          throw new Error('open handler bug');
        };
        await within(new Promise((r) => ws.addEventListener('open', r)));
        const reply = within(new Promise<WsMessageEvent>((r) => ws.addEventListener('message', r, { once: true })));
        ws.send('still usable');
        assert.equal((await reply).data, 'still usable');
        ws.onclose = () => {
          throw new Error('close handler bug');
        };
        const closed = new Promise((r) => ws.addEventListener('close', r));
        ws.close();
        await within(closed);
        await tick(20);
        assert.deepEqual(warnings.map((w) => w.message).sort(), ['close handler bug', 'open handler bug']);
      } finally {
        process.off('warning', onWarning);
        await s.close();
      }
    },
  );
});
