/**
 * The `ws`-compatible server API of WebSocketServer and of server-side connections, driven
 * by the `ws` client (an independent implementation) and, where a client must misbehave, by
 * raw TCP. Where `ws` 8's own server defines the expected behaviour, a reference check runs
 * the same steps against it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import WS, { WebSocketServer as WsServer } from 'ws';
import {
  DuetError,
  WebSocket,
  WebSocketServer,
  WsCloseEvent,
  WsErrorEvent,
  WsMessageEvent,
  type ServerOptions,
  type VerifyClientInfo,
} from '../../src/index.js';
import { HOST, RawClient, clientFrame, startServer, upgradeRequest, closeEvent } from '../helpers.js';
import { selfSignedCert } from '../tls-helpers.js';

const T = { timeout: 10_000 };

function wsUrl(port: number, path = '/'): string {
  return `ws://${HOST}:${port}${path}`;
}

function portOf(server: net.Server | WebSocketServer): number {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Every message echoed back with the same type. */
function echo(wss: WebSocketServer): void {
  wss.on('connection', (ws: WebSocket) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }));
  });
}

async function open(url: string, protocols?: string[], options?: WS.ClientOptions): Promise<WS> {
  const client = new WS(url, protocols, { handshakeTimeout: 3000, ...options });
  await once(client, 'open');
  return client;
}

/** Connect a `ws` client and return it with the matching server-side connection. */
async function pair(
  wss: WebSocketServer,
  port: number,
  path = '/',
): Promise<{ client: WS; server: WebSocket; req: http.IncomingMessage }> {
  const conn = once(wss, 'connection') as Promise<[WebSocket, http.IncomingMessage]>;
  const client = new WS(wsUrl(port, path), { handshakeTimeout: 3000 });
  const [[server, req]] = await Promise.all([conn, once(client, 'open')]);
  return { client, server, req };
}

async function roundTrip(client: WS, text: string): Promise<string> {
  const got = once(client, 'message') as Promise<[Buffer, boolean]>;
  client.send(text);
  const [data] = await got;
  return data.toString('utf8');
}

const clientClosed = (client: WS) => closeEvent(client);
const serverClosed = (ws: WebSocket) => closeEvent(ws);

interface Refusal {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Attempt a handshake that must be refused; resolves with the HTTP response. */
function refused(url: string, options?: WS.ClientOptions): Promise<Refusal> {
  return new Promise((resolve, reject) => {
    const client = new WS(url, { handshakeTimeout: 3000, ...options });
    client.on('open', () => {
      client.terminate();
      reject(new Error('the handshake was accepted'));
    });
    client.on('error', reject);
    client.on('unexpected-response', (req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
        req.destroy();
      });
    });
  });
}

/** Attempt a connection that must fail at TCP or HTTP level; resolves with the error. */
function failsToConnect(url: string): Promise<Error & { code?: string }> {
  return new Promise((resolve, reject) => {
    const client = new WS(url, { handshakeTimeout: 3000 });
    client.on('open', () => {
      client.terminate();
      reject(new Error('connected'));
    });
    client.on('error', resolve);
  });
}

function httpGet(port: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: HOST, port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.setTimeout(3000, () => req.destroy(new Error('HTTP request timed out')));
  });
}

function closeWss(wss: WebSocketServer): Promise<void> {
  return new Promise((resolve) => {
    for (const ws of wss.clients ?? []) ws.terminate();
    wss.close(() => resolve());
  });
}

const trackedSockets = new WeakMap<net.Server, Set<net.Socket>>();

/** Remember every TCP connection of `server`, so closeHttp can destroy upgraded ones too. */
function track<S extends net.Server>(server: S): S {
  const sockets = new Set<net.Socket>();
  trackedSockets.set(server, sockets);
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // TLS servers report the raw TCP socket here.
  server.on('secureConnection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return server;
}

/**
 * Close a server the test created. Sockets handed to 'upgrade' listeners are no longer
 * HTTP connections (closeAllConnections skips them), so tracked sockets are destroyed too:
 * a socket the WebSocket layer leaked must not hang the test run.
 */
function closeHttp(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    (server as http.Server).closeAllConnections?.();
    for (const socket of trackedSockets.get(server) ?? []) socket.destroy();
    server.close(() => resolve());
  });
}

// ---------------------------------------------------------------------------------------------

describe('WebSocketServer: own server (port, host)', () => {
  it('listens on host:port 0, emits listening, calls the constructor callback, reports address()', T, async () => {
    let callbackCalled = false;
    const wss = new WebSocketServer({ port: 0, host: HOST }, () => {
      callbackCalled = true;
    });
    try {
      await once(wss, 'listening');
      assert.equal(callbackCalled, true);
      const address = wss.address();
      assert.ok(address !== null && typeof address === 'object');
      assert.equal(address.address, HOST);
      assert.equal(address.family, 'IPv4');
      assert.ok(address.port > 0);
      echo(wss);
      const client = await open(wsUrl(address.port));
      assert.equal(await roundTrip(client, 'over port'), 'over port');
      client.terminate();
    } finally {
      await closeWss(wss);
    }
  });

  it('answers plain HTTP requests on its own server with 426', T, async () => {
    const srv = await startServer();
    try {
      const res = await httpGet(srv.port);
      assert.equal(res.status, 426);
    } finally {
      await srv.close();
    }
  });

  it('emits error when the port is already in use', T, async () => {
    const blocker = net.createServer();
    blocker.listen(0, HOST);
    await once(blocker, 'listening');
    const wss = new WebSocketServer({ port: portOf(blocker), host: HOST });
    try {
      const [err] = (await once(wss, 'error')) as [NodeJS.ErrnoException];
      assert.equal(err.code, 'EADDRINUSE');
    } finally {
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await closeHttp(blocker);
    }
  });

  it('requires exactly one of port, server and noServer', T, () => {
    assert.throws(() => new WebSocketServer({}), TypeError);
    assert.throws(() => new WebSocketServer({ port: 0, noServer: true }), TypeError);
    assert.throws(() => new WebSocketServer({ server: http.createServer(), noServer: true }), TypeError);
  });
});

describe('WebSocketServer: options changed after construction', () => {
  it('a change to wss.options.maxPayload applies to connections made afterwards, as in ws', T, async () => {
    const wss = new WebSocketServer({ port: 0, host: HOST, maxPayload: 1000 });
    await once(wss, 'listening');
    const clients: WS[] = [];
    try {
      echo(wss);
      const before = await open(wsUrl(portOf(wss)));
      clients.push(before);
      (wss.options as { maxPayload: number }).maxPayload = 10;
      const after = await open(wsUrl(portOf(wss)));
      clients.push(after);
      assert.equal(await roundTrip(before, 'x'.repeat(100)), 'x'.repeat(100), 'an existing connection keeps its limit');
      const outcome = new Promise<string>((resolve) => {
        after.once('close', (code: number) => resolve(`close ${code}`));
        after.once('message', () => resolve('echoed'));
      });
      after.send('y'.repeat(11));
      assert.equal(await outcome, 'close 1009', 'the new limit applies to the connection made after the change');
    } finally {
      for (const c of clients) c.terminate();
      await new Promise((r) => wss.close(r));
    }
  });
});

describe('WebSocketServer: server option (attach to an existing http.Server)', () => {
  it('serves WebSockets while the http.Server keeps serving normal requests', T, async () => {
    const httpServer = track(
      http.createServer((req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end(`http says hi to ${req.url}`);
      }),
    );
    const wss = new WebSocketServer({ server: httpServer });
    echo(wss);
    const listening = once(wss, 'listening');
    httpServer.listen(0, HOST);
    await listening; // the attached server's listening event is re-emitted
    try {
      const port = portOf(httpServer);
      assert.deepEqual(wss.address(), httpServer.address());
      const res = await httpGet(port, '/page');
      assert.deepEqual(res, { status: 200, body: 'http says hi to /page' });
      const client = await open(wsUrl(port, '/socket'));
      assert.equal(await roundTrip(client, 'attached'), 'attached');
      client.terminate();

      // Closing the WebSocketServer leaves the user's http.Server running.
      await closeWss(wss);
      assert.equal(httpServer.listening, true);
      assert.deepEqual(await httpGet(port, '/still'), { status: 200, body: 'http says hi to /still' });
    } finally {
      await closeWss(wss).catch(() => {});
      await closeHttp(httpServer);
    }
  });

  it('refuses two Host lines with 400 through node:http too (it keeps only the first in req.headers)', T, async () => {
    const httpServer = track(http.createServer());
    const wss = new WebSocketServer({ server: httpServer });
    echo(wss);
    httpServer.listen(0, HOST);
    await once(httpServer, 'listening');
    try {
      const port = portOf(httpServer);
      const twice = await RawClient.connect(port, upgradeRequest('/', ['host: other.example']));
      assert.equal(twice.status, 400);
      await twice.until(() => twice.closed, 2000);
      const single = await RawClient.connect(port, upgradeRequest('/'));
      assert.equal(single.status, 101);
      single.socket.destroy();
    } finally {
      await closeWss(wss).catch(() => {});
      await closeHttp(httpServer);
    }
  });

  it("re-emits the attached server's error event", T, async () => {
    const blocker = net.createServer();
    blocker.listen(0, HOST);
    await once(blocker, 'listening');
    const httpServer = track(http.createServer());
    const wss = new WebSocketServer({ server: httpServer });
    try {
      httpServer.listen(portOf(blocker), HOST);
      const [err] = (await once(wss, 'error')) as [NodeJS.ErrnoException];
      assert.equal(err.code, 'EADDRINUSE');
    } finally {
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await closeHttp(blocker);
    }
  });
});

describe('WebSocketServer: noServer + handleUpgrade', () => {
  it("completes handshakes handed over from the user's own upgrade handler", T, async () => {
    const wss = new WebSocketServer({ noServer: true });
    echo(wss);
    const httpServer = track(http.createServer((_req, res) => res.end('plain http')));
    httpServer.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (req.url?.startsWith('/ws')) {
        wss.handleUpgrade(req, socket, head, (ws, r) => {
          assert.equal(ws.readyState, WebSocket.OPEN);
          wss.emit('connection', ws, r);
        });
      } else {
        socket.destroy();
      }
    });
    httpServer.listen(0, HOST);
    await once(httpServer, 'listening');
    const port = portOf(httpServer);
    try {
      assert.throws(() => wss.address(), /noServer/);
      const conn = once(wss, 'connection') as Promise<[WebSocket, http.IncomingMessage]>;
      const client = await open(wsUrl(port, '/ws?id=5'));
      const [, req] = await conn;
      assert.equal(req.url, '/ws?id=5');
      assert.equal(await roundTrip(client, 'no server'), 'no server');
      assert.equal(wss.clients?.size, 1);
      assert.deepEqual(await httpGet(port), { status: 200, body: 'plain http' });
      const err = await failsToConnect(wsUrl(port, '/elsewhere'));
      assert.ok(err instanceof Error);
      client.terminate();
    } finally {
      await closeWss(wss);
      await closeHttp(httpServer);
    }
  });
});

/** duet's connection class with something of the application's, as ws users subclass ws's. */
class TaggedWebSocket extends WebSocket {
  readonly tag = 'tagged';
  shout(text: string): void {
    this.send(text.toUpperCase());
  }
}

describe('WebSocketServer: the WebSocket option (the class connections are made from)', () => {
  it("'connection' gets instances of it, typed as it (no cast); clients hold them; topics work", T, async () => {
    const { wss, port, close } = await startServer({ WebSocket: TaggedWebSocket });
    const made: TaggedWebSocket[] = [];
    wss.on('connection', (ws) => {
      made.push(ws);
      ws.subscribe('news');
      ws.on('message', (data: Buffer) => ws.shout(data.toString()));
    });
    try {
      const client = await open(wsUrl(port));
      assert.equal(await roundTrip(client, 'hello'), 'HELLO');
      assert.ok(made[0] instanceof TaggedWebSocket);
      assert.ok(made[0] instanceof WebSocket);
      assert.equal(made[0].tag, 'tagged');
      assert.equal(wss.options.WebSocket, TaggedWebSocket);
      assert.deepEqual([...(wss.clients ?? [])], made);
      const news = once(client, 'message') as Promise<[Buffer]>;
      assert.equal(wss.publish('news', 'extra'), 1);
      assert.equal(String((await news)[0]), 'extra');
      client.terminate();
    } finally {
      await close();
    }
  });

  it('handleUpgrade (noServer) hands its callback an instance too', T, async () => {
    const wss = new WebSocketServer({ noServer: true, WebSocket: TaggedWebSocket });
    const httpServer = track(http.createServer());
    const made: TaggedWebSocket[] = [];
    httpServer.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      wss.handleUpgrade(req, socket, head, (ws) => {
        made.push(ws);
        ws.shout('welcome');
      });
    });
    httpServer.listen(0, HOST);
    await once(httpServer, 'listening');
    try {
      const client = new WS(wsUrl(portOf(httpServer)));
      const [data] = (await once(client, 'message')) as [Buffer];
      assert.equal(String(data), 'WELCOME');
      assert.ok(made[0] instanceof TaggedWebSocket);
      client.terminate();
    } finally {
      await closeWss(wss);
      await closeHttp(httpServer);
    }
  });

  it("without it, connections are duet's WebSocket; a class that is not one throws TypeError", T, async () => {
    const plain = new WebSocketServer({ noServer: true });
    assert.equal(plain.options.WebSocket, WebSocket);
    for (const bad of [WS, class Other {}, 5, 'WebSocket']) {
      assert.throws(
        () => new WebSocketServer({ noServer: true, WebSocket: bad as unknown as typeof WebSocket }),
        /The WebSocket option must be duet's WebSocket class or a subclass of it/,
        String(bad),
      );
    }
    await closeWss(plain);
  });

  it('a constructor that throws: the handshake is answered 500 and reported; the server carries on', T, async () => {
    let fail = true;
    class Fragile extends WebSocket {
      constructor() {
        super();
        if (fail) throw new Error('constructor bug');
      }
    }
    const { wss, port, close } = await startServer({ WebSocket: Fragile });
    const errors: Array<Error & { code?: string }> = [];
    wss.on('error', (err: Error) => errors.push(err));
    echo(wss);
    try {
      const refusal = await refused(wsUrl(port));
      assert.equal(refusal.status, 500);
      assert.equal(errors[0]?.code, 'WS_ERR_UNEXPECTED_CONDITION');
      assert.match(errors[0].message, /constructor bug/);
      fail = false;
      const client = await open(wsUrl(port));
      assert.equal(await roundTrip(client, 'still up'), 'still up');
      client.terminate();
    } finally {
      await close();
    }
  });

  it("ws's server does the same with its option (reference)", T, async () => {
    class TaggedWs extends WS {
      readonly tag = 'ws-tagged';
    }
    const wss = new WsServer({ port: 0, host: HOST, WebSocket: TaggedWs });
    await once(wss, 'listening');
    try {
      const conn = once(wss, 'connection') as Promise<[TaggedWs]>;
      const client = new WS(wsUrl(portOf(wss as unknown as net.Server)));
      const [[ws]] = await Promise.all([conn, once(client, 'open')]);
      assert.ok(ws instanceof TaggedWs);
      client.terminate();
    } finally {
      wss.close();
    }
  });
});

describe('WebSocketServer: handleUpgrade twice with one socket', () => {
  it('the second call throws (WS_ERR_UPGRADE_TWICE) before touching the socket; the first completes', T, async () => {
    const first = new WebSocketServer({ noServer: true });
    const second = new WebSocketServer({ noServer: true });
    echo(first);
    const httpServer = track(http.createServer());
    const thrown: unknown[] = [];
    httpServer.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      first.handleUpgrade(req, socket, head, (ws, r) => first.emit('connection', ws, r));
      try {
        second.handleUpgrade(req, socket, head, () => assert.fail('the second server completed'));
      } catch (err) {
        thrown.push(err);
      }
      try {
        first.handleUpgrade(req, socket, head, () => assert.fail('the same server completed twice'));
      } catch (err) {
        thrown.push(err);
      }
    });
    httpServer.listen(0, HOST);
    await once(httpServer, 'listening');
    try {
      const client = await open(wsUrl(portOf(httpServer)));
      assert.equal(await roundTrip(client, 'once'), 'once');
      assert.equal(thrown.length, 2);
      for (const err of thrown) {
        assert.ok(err instanceof DuetError);
        assert.equal(err.code, 'WS_ERR_UPGRADE_TWICE');
        assert.match((err as Error).message, /more than once with the same socket/);
      }
      client.terminate();
    } finally {
      await closeWss(first);
      await closeWss(second);
      await closeHttp(httpServer);
    }
  });

  it('while the first is still in an async verifyClient, the second throws at once', T, async () => {
    let decide: ((ok: boolean) => void) | undefined;
    const wss = new WebSocketServer({
      noServer: true,
      verifyClient: (_info, done) => {
        decide = done;
      },
    });
    echo(wss);
    const httpServer = track(http.createServer());
    const thrown: unknown[] = [];
    httpServer.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      wss.handleUpgrade(req, socket, head, (ws, r) => wss.emit('connection', ws, r));
      try {
        wss.handleUpgrade(req, socket, head, () => assert.fail('completed twice'));
      } catch (err) {
        thrown.push(err);
      }
      decide?.(true);
    });
    httpServer.listen(0, HOST);
    await once(httpServer, 'listening');
    try {
      const client = await open(wsUrl(portOf(httpServer)));
      assert.equal(await roundTrip(client, 'verified once'), 'verified once');
      assert.equal((thrown[0] as DuetError).code, 'WS_ERR_UPGRADE_TWICE');
      client.terminate();
    } finally {
      await closeWss(wss);
      await closeHttp(httpServer);
    }
  });

  it('ws throws too (reference): its message says the same', T, async () => {
    const wss = new WsServer({ noServer: true });
    const httpServer = track(http.createServer());
    const thrown: unknown[] = [];
    httpServer.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      wss.handleUpgrade(req, socket, head, () => {});
      try {
        wss.handleUpgrade(req, socket, head, () => {});
      } catch (err) {
        thrown.push(err);
      }
    });
    httpServer.listen(0, HOST);
    await once(httpServer, 'listening');
    try {
      const client = await open(wsUrl(portOf(httpServer)));
      assert.match(String((thrown[0] as Error).message), /more than once with the same socket/);
      client.terminate();
    } finally {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      await closeHttp(httpServer);
    }
  });

  it(
    'two duet servers attached to one HTTP server without a path: the second reports it on error, no crash',
    T,
    async () => {
      const httpServer = track(http.createServer());
      const first = new WebSocketServer({ server: httpServer });
      const second = new WebSocketServer({ server: httpServer });
      echo(first);
      const errors: Array<Error & { code?: string }> = [];
      second.on('error', (err: Error) => errors.push(err));
      httpServer.listen(0, HOST);
      await once(httpServer, 'listening');
      try {
        const client = await open(wsUrl(portOf(httpServer)));
        assert.equal(await roundTrip(client, 'first one'), 'first one');
        assert.equal(errors.length, 1);
        assert.equal(errors[0].code, 'WS_ERR_UPGRADE_TWICE');
        assert.equal(second.clients?.size, 0);
        client.terminate();
      } finally {
        await closeWss(first);
        await closeWss(second);
        await closeHttp(httpServer);
      }
    },
  );

  it('...and as a process warning when the second has no error listener', T, async () => {
    const httpServer = track(http.createServer());
    const first = new WebSocketServer({ server: httpServer });
    const second = new WebSocketServer({ server: httpServer });
    echo(first);
    const warnings: Array<Error & { code?: string }> = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on('warning', onWarning);
    httpServer.listen(0, HOST);
    await once(httpServer, 'listening');
    try {
      const client = await open(wsUrl(portOf(httpServer)));
      assert.equal(await roundTrip(client, 'still the first'), 'still the first');
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(
        warnings.map((w) => w.code),
        ['WS_ERR_UPGRADE_TWICE'],
      );
      client.terminate();
    } finally {
      process.off('warning', onWarning);
      await closeWss(first);
      await closeWss(second);
      await closeHttp(httpServer);
    }
  });
});

describe('WebSocketServer: path', () => {
  it('accepts only its path (query string ignored) and refuses others with 404', T, async () => {
    const srv = await startServer({ path: '/chat' });
    echo(srv.wss);
    try {
      const client = await open(wsUrl(srv.port, '/chat?room=1'));
      assert.equal(await roundTrip(client, 'in chat'), 'in chat');
      client.terminate();
      const res = await refused(wsUrl(srv.port, '/other'));
      assert.equal(res.status, 404);
      const res2 = await refused(wsUrl(srv.port, '/chat/'));
      assert.equal(res2.status, 404);
    } finally {
      await srv.close();
    }
  });

  it(
    'two servers with different paths share one http.Server; an unknown path is refused, not left hanging',
    T,
    async () => {
      const httpServer = track(http.createServer());
      const a = new WebSocketServer({ server: httpServer, path: '/a' });
      const b = new WebSocketServer({ server: httpServer, path: '/b' });
      a.on('connection', (ws: WebSocket) => ws.send('from a'));
      b.on('connection', (ws: WebSocket) => ws.send('from b'));
      httpServer.listen(0, HOST);
      await once(httpServer, 'listening');
      const port = portOf(httpServer);
      try {
        for (const name of ['a', 'b']) {
          const client = new WS(wsUrl(port, `/${name}`), { handshakeTimeout: 3000 });
          const [data] = (await once(client, 'message')) as [Buffer];
          assert.equal(data.toString(), `from ${name}`);
          client.terminate();
        }
        // Expected: a 4xx answer. A server that answers nothing leaves the client (and the
        // socket on the server) waiting until the client gives up.
        const started = Date.now();
        const outcome = await new Promise<string>((resolve) => {
          const client = new WS(wsUrl(port, '/c'), { handshakeTimeout: 1000 });
          client.on('open', () => {
            client.terminate();
            resolve('open');
          });
          client.on('unexpected-response', (req, res) => {
            resolve(`status ${res.statusCode}`);
            req.destroy();
          });
          client.on('error', (err) => resolve(`error: ${err.message}`));
        });
        assert.match(outcome, /^status 4\d\d$/, `unknown path got: ${outcome} after ${Date.now() - started} ms`);
      } finally {
        await closeWss(a);
        await closeWss(b);
        await closeHttp(httpServer);
      }
    },
  );
});

describe('WebSocketServer: clientTracking', () => {
  it('clients grows with connections and shrinks as they close', T, async () => {
    const srv = await startServer();
    try {
      assert.ok(srv.wss.clients instanceof Set);
      assert.equal(srv.wss.clients.size, 0);
      const one = await pair(srv.wss, srv.port);
      const two = await pair(srv.wss, srv.port);
      assert.equal(srv.wss.clients.size, 2);
      assert.ok(srv.wss.clients.has(one.server) && srv.wss.clients.has(two.server));
      const closed1 = serverClosed(one.server);
      one.client.close();
      await closed1;
      assert.equal(srv.wss.clients.size, 1);
      assert.equal(srv.wss.clients.has(one.server), false);
      const closed2 = serverClosed(two.server);
      two.client.terminate();
      await closed2;
      assert.equal(srv.wss.clients.size, 0);
    } finally {
      await srv.close();
    }
  });

  it('clientTracking: false leaves clients undefined', T, async () => {
    const srv = await startServer({ clientTracking: false });
    try {
      assert.equal(srv.wss.clients, undefined);
      const { client } = await pair(srv.wss, srv.port);
      assert.equal(srv.wss.clients, undefined);
      client.close();
      await clientClosed(client);
    } finally {
      await srv.close();
    }
  });
});

describe('WebSocketServer: handleProtocols', () => {
  it("puts the chosen protocol in the response and on both sides' protocol", T, async () => {
    let offered: string[] = [];
    let reqUrl: string | undefined;
    const srv = await startServer({
      handleProtocols: (protocols, req) => {
        offered = [...protocols];
        reqUrl = req.url;
        return 'beta';
      },
    });
    try {
      const conn = once(srv.wss, 'connection') as Promise<[WebSocket]>;
      const client = await open(wsUrl(srv.port, '/p'), ['alpha', 'beta']);
      const [server] = await conn;
      assert.deepEqual(offered, ['alpha', 'beta']);
      assert.equal(reqUrl, '/p');
      assert.equal(client.protocol, 'beta');
      assert.equal(server.protocol, 'beta');
      client.terminate();
    } finally {
      await srv.close();
    }
  });

  it('returning false selects no protocol (no Sec-WebSocket-Protocol header)', T, async () => {
    const srv = await startServer({ handleProtocols: () => false });
    try {
      const conn = once(srv.wss, 'connection') as Promise<[WebSocket]>;
      const raw = await RawClient.connect(srv.port, upgradeRequest('/', ['Sec-WebSocket-Protocol: alpha, beta']));
      assert.equal(raw.status, 101);
      assert.doesNotMatch(raw.responseHead, /sec-websocket-protocol/i);
      const [server] = await conn;
      assert.equal(server.protocol, '');
      raw.destroy();
    } finally {
      await srv.close();
    }
  });

  it('without handleProtocols, picks the first protocol the client offered (as ws 8 does)', T, async () => {
    // Reference: ws 8's own server.
    const reference = new WsServer({ port: 0, host: HOST });
    await once(reference, 'listening');
    try {
      const client = await open(wsUrl(portOf(reference as unknown as net.Server)), ['first', 'second']);
      assert.equal(client.protocol, 'first');
      client.terminate();
    } finally {
      for (const c of reference.clients) c.terminate();
      await new Promise((resolve) => reference.close(resolve));
    }

    const srv = await startServer();
    try {
      const conn = once(srv.wss, 'connection') as Promise<[WebSocket]>;
      const client = await open(wsUrl(srv.port), ['first', 'second']);
      const [server] = await conn;
      assert.equal(client.protocol, 'first');
      assert.equal(server.protocol, 'first');
      client.terminate();
    } finally {
      await srv.close();
    }
  });
});

describe('WebSocketServer: verifyClient', () => {
  it('sync: true accepts, with origin, secure and req in info', T, async () => {
    let seen: VerifyClientInfo | undefined;
    const srv = await startServer({
      verifyClient: (info: VerifyClientInfo) => {
        seen = info;
        return true;
      },
    });
    echo(srv.wss);
    try {
      const client = await open(wsUrl(srv.port, '/v?x=1'), undefined, { origin: 'https://app.example' });
      assert.equal(await roundTrip(client, 'verified'), 'verified');
      assert.ok(seen);
      assert.equal(seen.origin, 'https://app.example');
      assert.equal(seen.secure, false);
      assert.equal(seen.req.url, '/v?x=1');
      client.terminate();
    } finally {
      await srv.close();
    }
  });

  it('sync: false refuses with 401', T, async () => {
    const srv = await startServer({ verifyClient: () => false });
    let connections = 0;
    srv.wss.on('connection', () => connections++);
    try {
      const res = await refused(wsUrl(srv.port));
      assert.equal(res.status, 401);
      assert.equal(connections, 0);
    } finally {
      await srv.close();
    }
  });

  it('async: done(true) accepts', T, async () => {
    const srv = await startServer({
      verifyClient: (_info: VerifyClientInfo, done: (ok: boolean) => void) => {
        setTimeout(() => done(true), 5);
      },
    });
    echo(srv.wss);
    try {
      const client = await open(wsUrl(srv.port));
      assert.equal(await roundTrip(client, 'async ok'), 'async ok');
      client.terminate();
    } finally {
      await srv.close();
    }
  });

  it('async: done(false, code, message, headers) refuses with them', T, async () => {
    const srv = await startServer({
      verifyClient: (_info, done) => {
        setTimeout(() => done(false, 403, 'Go away', { 'X-Reason': 'not-allowed' }), 5);
      },
    });
    try {
      const res = await refused(wsUrl(srv.port));
      assert.equal(res.status, 403);
      assert.equal(res.body, 'Go away');
      assert.equal(res.headers['x-reason'], 'not-allowed');
    } finally {
      await srv.close();
    }
  });

  it('async: done(false) without a code refuses with 401', T, async () => {
    const srv = await startServer({ verifyClient: (_info, done) => done(false) });
    try {
      assert.equal((await refused(wsUrl(srv.port))).status, 401);
    } finally {
      await srv.close();
    }
  });
});

describe('WebSocketServer: events', () => {
  it('headers: a listener can add a response header the client sees', T, async () => {
    const srv = await startServer();
    let headersReq: http.IncomingMessage | undefined;
    srv.wss.on('headers', (headers: string[], req: http.IncomingMessage) => {
      headersReq = req;
      headers.push('X-Powered-By: duet');
    });
    try {
      const client = new WS(wsUrl(srv.port, '/h'), { handshakeTimeout: 3000 });
      const [[res]] = (await Promise.all([once(client, 'upgrade'), once(client, 'open')])) as [
        [http.IncomingMessage],
        unknown,
      ];
      assert.equal(res.headers['x-powered-by'], 'duet');
      assert.equal(headersReq?.url, '/h');
      client.terminate();
    } finally {
      await srv.close();
    }
  });

  it('connection: gives the connection and the upgrade request', T, async () => {
    const srv = await startServer();
    try {
      const { client, server, req } = await pair(srv.wss, srv.port, '/room/7?user=ann');
      assert.ok(server instanceof WebSocket);
      assert.equal(server.isServer, true);
      assert.equal(req.url, '/room/7?user=ann');
      assert.equal(req.headers.upgrade?.toLowerCase(), 'websocket');
      client.terminate();
    } finally {
      await srv.close();
    }
  });
});

describe('WebSocketServer: close and closeAll', () => {
  it('close(cb): cb and close event; new connections are refused afterwards', T, async () => {
    const srv = await startServer();
    const port = srv.port;
    const closeEvent = once(srv.wss, 'close');
    await new Promise<void>((resolve) => srv.wss.close(() => resolve()));
    await closeEvent;
    const err = await failsToConnect(wsUrl(port));
    assert.equal(err.code, 'ECONNREFUSED');
    // Closing again reports that the server is not running.
    const again = await new Promise<Error | undefined>((resolve) => srv.wss.close(resolve));
    assert.ok(again instanceof Error);
  });

  it('close(cb) is a graceful shutdown: every client gets 1001, then cb (unlike ws 8, documented)', T, async () => {
    const srv = await startServer();
    echo(srv.wss);
    const { client } = await pair(srv.wss, srv.port);
    const closed = once(client, 'close');
    let closeEvents = 0;
    srv.wss.on('close', () => closeEvents++);
    await new Promise<void>((resolve) => srv.wss.close(() => resolve()));
    const [code] = (await closed) as [number];
    assert.equal(code, 1001);
    assert.equal(closeEvents, 1);
  });

  it('close(cb) terminates a client that never answers the Close after shutdownTimeout', T, async () => {
    const srv = await startServer({ shutdownTimeout: 200 });
    const c = await RawClient.connect(srv.port);
    c.socket.pause(); // never reads, never answers
    const started = Date.now();
    await new Promise<void>((resolve) => srv.wss.close(() => resolve()));
    assert.ok(Date.now() - started < 3000);
    assert.equal(srv.wss.clients.size, 0);
    c.destroy();
  });

  it('closeAll() closes every client with 1001 and then the server', T, async () => {
    const srv = await startServer();
    const one = await pair(srv.wss, srv.port);
    const two = await pair(srv.wss, srv.port);
    const closes = Promise.all([clientClosed(one.client), clientClosed(two.client)]);
    const done = new Promise<void>((resolve) => srv.wss.closeAll(undefined, undefined, () => resolve()));
    const [c1, c2] = await closes;
    assert.equal(c1.code, 1001);
    assert.equal(c2.code, 1001);
    await done;
    assert.equal(srv.wss.clients?.size, 0);
  });
});

describe('server-side connection: state', () => {
  it('exposes readyState constants statically and on instances', T, async () => {
    assert.deepEqual([WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED], [0, 1, 2, 3]);
    const srv = await startServer();
    try {
      const { client, server } = await pair(srv.wss, srv.port);
      assert.deepEqual([server.CONNECTING, server.OPEN, server.CLOSING, server.CLOSED], [0, 1, 2, 3]);
      // Same values as ws's.
      assert.deepEqual([WS.CONNECTING, WS.OPEN, WS.CLOSING, WS.CLOSED], [0, 1, 2, 3]);
      client.terminate();
    } finally {
      await srv.close();
    }
  });

  it('goes OPEN -> CLOSING -> CLOSED', T, async () => {
    const srv = await startServer();
    try {
      const { client, server } = await pair(srv.wss, srv.port);
      assert.equal(server.readyState, WebSocket.OPEN);
      const closed = serverClosed(server);
      const onClient = clientClosed(client);
      server.close(1000, 'done');
      assert.equal(server.readyState, WebSocket.CLOSING);
      await closed;
      assert.equal(server.readyState, WebSocket.CLOSED);
      assert.deepEqual(await onClient, { code: 1000, reason: 'done' });
    } finally {
      await srv.close();
    }
  });

  it('terminate(): the client sees 1006', T, async () => {
    const srv = await startServer();
    try {
      const { client, server } = await pair(srv.wss, srv.port);
      const onClient = clientClosed(client);
      const onServer = serverClosed(server);
      server.terminate();
      assert.equal((await onClient).code, 1006);
      assert.equal((await onServer).code, 1006);
      assert.equal(server.readyState, WebSocket.CLOSED);
    } finally {
      await srv.close();
    }
  });
});

describe('server-side connection: binaryType', () => {
  async function receiveBinary(
    binaryType: 'arraybuffer' | 'fragments' | 'blob',
  ): Promise<{ binary: unknown; text: unknown }> {
    const srv = await startServer();
    try {
      const { client, server } = await pair(srv.wss, srv.port);
      server.binaryType = binaryType;
      const messages: unknown[] = [];
      const got = new Promise<void>((resolve) => {
        server.on('message', (data: unknown) => {
          messages.push(data);
          if (messages.length === 2) resolve();
        });
      });
      client.send(Buffer.from([1, 2, 3, 250]));
      client.send('text stays text');
      await got;
      client.terminate();
      return { binary: messages[0], text: messages[1] };
    } finally {
      await srv.close();
    }
  }

  it('nodebuffer is the default', T, async () => {
    const srv = await startServer();
    try {
      const { client, server } = await pair(srv.wss, srv.port);
      assert.equal(server.binaryType, 'nodebuffer');
      client.terminate();
    } finally {
      await srv.close();
    }
  });

  it('arraybuffer delivers an ArrayBuffer', T, async () => {
    const { binary, text } = await receiveBinary('arraybuffer');
    assert.ok(binary instanceof ArrayBuffer, `got ${Object.prototype.toString.call(binary)}`);
    assert.deepEqual([...new Uint8Array(binary)], [1, 2, 3, 250]);
    assert.ok(Buffer.isBuffer(text));
    assert.equal(String(text), 'text stays text');
  });

  it('fragments delivers an array of Buffers', T, async () => {
    const { binary } = await receiveBinary('fragments');
    assert.ok(Array.isArray(binary));
    assert.ok(binary.every((b) => Buffer.isBuffer(b)));
    assert.deepEqual(Buffer.concat(binary), Buffer.from([1, 2, 3, 250]));
  });

  it('blob delivers a Blob', T, async () => {
    const { binary } = await receiveBinary('blob');
    assert.ok(binary instanceof Blob);
    assert.deepEqual(Buffer.from(await binary.arrayBuffer()), Buffer.from([1, 2, 3, 250]));
  });
});

describe('server-side connection: WHATWG event API', () => {
  async function withPair(
    fn: (p: { client: WS; server: WebSocket; srv: Awaited<ReturnType<typeof startServer>> }) => Promise<void>,
    options?: ServerOptions,
  ): Promise<void> {
    const srv = await startServer(options);
    try {
      const p = await pair(srv.wss, srv.port);
      try {
        await fn({ ...p, srv });
      } finally {
        p.client.terminate();
      }
    } finally {
      await srv.close();
    }
  }

  it('onmessage: data is a string for text and a Buffer for binary', T, () =>
    withPair(async ({ client, server }) => {
      const events: WsMessageEvent[] = [];
      const got = new Promise<void>((resolve) => {
        server.onmessage = (event) => {
          events.push(event);
          if (events.length === 2) resolve();
        };
      });
      assert.equal(typeof server.onmessage, 'function');
      client.send('héllo');
      client.send(Buffer.from([7, 8]));
      await got;
      assert.equal(events[0].type, 'message');
      assert.equal(events[0].target, server);
      assert.equal(events[0].data, 'héllo');
      assert.ok(Buffer.isBuffer(events[1].data));
      assert.deepEqual(events[1].data, Buffer.from([7, 8]));
    }),
  );

  it('onmessage: setting it again replaces the handler; null removes it', T, () =>
    withPair(async ({ client, server }) => {
      const calls: string[] = [];
      server.onmessage = () => calls.push('first');
      server.onmessage = (e) => calls.push(`second:${String(e.data)}`);
      const raw: string[] = [];
      server.on('message', (d: Buffer) => raw.push(d.toString()));
      client.send('a');
      await once(server, 'message');
      server.onmessage = null;
      assert.equal(server.onmessage, null);
      client.send('b');
      await once(server, 'message');
      assert.deepEqual(calls, ['second:a']);
      assert.deepEqual(raw, ['a', 'b']);
    }),
  );

  it('addEventListener / removeEventListener for message, with dedupe and handleEvent objects', T, () =>
    withPair(async ({ client, server }) => {
      const seen: string[] = [];
      const listener = (e: WsMessageEvent): void => {
        seen.push(`fn:${String(e.data)}`);
      };
      const obj = { handleEvent: (e: WsMessageEvent) => seen.push(`obj:${String(e.data)}`) };
      server.addEventListener('message', listener);
      server.addEventListener('message', listener); // same listener twice: called once
      server.addEventListener('message', obj);
      client.send('1');
      await once(server, 'message');
      server.removeEventListener('message', listener);
      server.removeEventListener('message', obj);
      client.send('2');
      await once(server, 'message');
      assert.deepEqual(seen, ['fn:1', 'obj:1']);
    }),
  );

  it('addEventListener with { once: true } fires once; removeEventListener works before it fires', T, () =>
    withPair(async ({ client, server }) => {
      const seen: string[] = [];
      server.addEventListener('message', (e: WsMessageEvent) => seen.push(String(e.data)), { once: true });
      const never = (): void => {
        seen.push('removed listener called');
      };
      server.addEventListener('message', never, { once: true });
      server.removeEventListener('message', never);
      client.send('x');
      await once(server, 'message');
      client.send('y');
      await once(server, 'message');
      assert.deepEqual(seen, ['x']);
    }),
  );

  it('onclose / addEventListener(close): code, reason and wasClean after a clean close', T, () =>
    withPair(async ({ client, server }) => {
      const events: WsCloseEvent[] = [];
      server.onclose = (e) => events.push(e);
      const viaListener = new Promise<WsCloseEvent>((resolve) =>
        server.addEventListener('close', (e: WsCloseEvent) => resolve(e)),
      );
      client.close(4002, 'bye now');
      const e = await viaListener;
      assert.equal(events.length, 1);
      for (const ev of [e, events[0]]) {
        assert.ok(ev instanceof WsCloseEvent);
        assert.equal(ev.type, 'close');
        assert.equal(ev.code, 4002);
        assert.equal(ev.reason, 'bye now');
        assert.equal(ev.wasClean, true);
      }
    }),
  );

  it('onclose: wasClean is false and code 1006 when TCP drops', T, () =>
    withPair(async ({ client, server }) => {
      const closed = new Promise<WsCloseEvent>((resolve) => {
        server.onclose = resolve;
      });
      client.terminate();
      const e = await closed;
      assert.equal(e.code, 1006);
      assert.equal(e.wasClean, false);
    }),
  );

  it('addEventListener(error) / onerror get an ErrorEvent with the error code on a protocol error', T, async () => {
    const srv = await startServer();
    try {
      const conn = once(srv.wss, 'connection') as Promise<[WebSocket]>;
      const raw = await RawClient.connect(srv.port);
      const [server] = await conn;
      const viaListener = new Promise<WsErrorEvent>((resolve) =>
        server.addEventListener('error', (e: WsErrorEvent) => resolve(e)),
      );
      const viaOnerror = new Promise<WsErrorEvent>((resolve) => {
        server.onerror = resolve;
      });
      raw.write(clientFrame({ opcode: 0x3, payload: 'reserved opcode' }));
      const [e1, e2] = await Promise.all([viaListener, viaOnerror]);
      for (const e of [e1, e2]) {
        assert.ok(e instanceof WsErrorEvent);
        assert.equal(e.type, 'error');
        assert.equal((e.error as Error & { code?: string }).code, 'WS_ERR_INVALID_OPCODE');
      }
      assert.equal(await raw.closeCode(), 1002);
    } finally {
      await srv.close();
    }
  });
});

describe('server-side connection: argument and state errors', () => {
  it('send while CLOSING calls back with WS_ERR_NOT_OPEN', T, async () => {
    const srv = await startServer();
    try {
      const { client, server } = await pair(srv.wss, srv.port);
      server.close();
      assert.equal(server.readyState, WebSocket.CLOSING);
      const err = await new Promise<(Error & { code?: string }) | null | undefined>((resolve) =>
        server.send('late', resolve),
      );
      assert.ok(err instanceof Error);
      assert.equal(err.code, 'WS_ERR_NOT_OPEN');
      await clientClosed(client);
    } finally {
      await srv.close();
    }
  });

  it('close() with an invalid code throws TypeError; a reason over 123 bytes throws RangeError', T, async () => {
    const srv = await startServer();
    try {
      const { client, server } = await pair(srv.wss, srv.port);
      for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 1000.5, NaN]) {
        assert.throws(() => server.close(code), TypeError, `code ${code}`);
      }
      assert.throws(() => server.close(1000, 'x'.repeat(124)), RangeError);
      assert.throws(() => server.close(1000, 'é'.repeat(62)), RangeError, '124 bytes in 62 characters');
      assert.equal(server.readyState, WebSocket.OPEN, 'the failed calls changed nothing');
      const onClient = clientClosed(client);
      server.close(1000, 'x'.repeat(123));
      assert.deepEqual(await onClient, { code: 1000, reason: 'x'.repeat(123) });
    } finally {
      await srv.close();
    }
  });

  it('ping() with more than 125 bytes throws RangeError; 125 bytes is fine', T, async () => {
    const srv = await startServer();
    try {
      const { client, server } = await pair(srv.wss, srv.port);
      assert.throws(() => server.ping(Buffer.alloc(126)), RangeError);
      const ping = once(client, 'ping') as Promise<[Buffer]>;
      server.ping(Buffer.alloc(125, 0x61));
      const [data] = await ping;
      assert.equal(data.length, 125);
      client.terminate();
    } finally {
      await srv.close();
    }
  });

  it('a server with no error listeners on its connections survives a protocol error', T, async () => {
    const srv = await startServer();
    echo(srv.wss);
    try {
      const raw = await RawClient.connect(srv.port);
      assert.equal(raw.status, 101);
      raw.write(clientFrame({ opcode: 0x1, payload: 'not masked', mask: false }));
      assert.equal(await raw.closeCode(), 1002);
      const raw2 = await RawClient.connect(srv.port);
      raw2.write(clientFrame({ opcode: 0x1, payload: Buffer.from([0xff, 0xfe]) }));
      assert.equal(await raw2.closeCode(), 1007);
      // Still serving.
      const client = await open(wsUrl(srv.port));
      assert.equal(await roundTrip(client, 'alive'), 'alive');
      client.terminate();
    } finally {
      await srv.close();
    }
  });
});

describe('wss:// (TLS) via an attached https.Server', () => {
  it('echoes a message over TLS with a self-signed certificate', { timeout: 30_000 }, async () => {
    const { key, cert } = selfSignedCert();
    const httpsServer = track(https.createServer({ key, cert }, (_req, res) => res.end('https ok')));
    let secure: boolean | undefined;
    const wss = new WebSocketServer({
      server: httpsServer,
      verifyClient: (info: VerifyClientInfo) => {
        secure = info.secure;
        return true;
      },
    });
    echo(wss);
    httpsServer.listen(0, HOST);
    await once(httpsServer, 'listening');
    try {
      const port = portOf(httpsServer);
      const client = await open(`wss://${HOST}:${port}/secure`, undefined, { rejectUnauthorized: false });
      assert.equal(await roundTrip(client, 'over tls 🔒'), 'over tls 🔒');
      assert.equal(secure, true);
      const closed = clientClosed(client);
      client.close(1000);
      assert.equal((await closed).code, 1000);
    } finally {
      await closeWss(wss);
      await closeHttp(httpsServer);
    }
  });
});
