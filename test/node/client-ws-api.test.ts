/**
 * The Node client with ws's API beside the browser's (src/node/client.ts, client-url.ts):
 * `new WebSocket(url, options)`, the `upgrade` / `unexpected-response` / `redirect` events,
 * `followRedirects` across hosts and schemes, `finishRequest`, Basic credentials from `auth`
 * and from the URL, and `ws+unix:` URLs. Where it shows equal behaviour, the same case runs
 * against ws's own client.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import WS from 'ws';
import { WebSocket, WebSocketServer } from '../../src/index.js';
import type { CodedError, WsCloseEvent } from '../../src/index.js';
import { HOST, startServer, within } from '../helpers.js';
import { selfSignedCert } from '../tls-helpers.js';

const T = { timeout: 15_000 };

type Started = Awaited<ReturnType<typeof startServer>>;

function url(port: number, path = '/', scheme = 'ws'): string {
  return `${scheme}://${HOST}:${port}${path}`;
}

/** A duet echo server that keeps every upgrade request it saw. */
async function echoServer(
  options: Parameters<typeof startServer>[0] = {},
): Promise<Started & { requests: http.IncomingMessage[] }> {
  const s = await startServer(options);
  const requests: http.IncomingMessage[] = [];
  s.wss.on('connection', (ws: WebSocket, req: http.IncomingMessage) => {
    requests.push(req);
    ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }));
  });
  return { ...s, requests };
}

/** Everything a client reports, in order: ws-style events by name, with their first argument. */
function events(ws: WebSocket): { names: string[]; error?: CodedError; closed: Promise<number> } {
  const out: { names: string[]; error?: CodedError; closed: Promise<number> } = {
    names: [],
    closed: new Promise<number>((resolve) => ws.on('close', (code: number) => resolve(code))),
  };
  for (const name of ['upgrade', 'open', 'unexpected-response', 'redirect', 'error', 'close']) {
    ws.on(name, (first: unknown) => {
      out.names.push(name);
      if (name === 'error') out.error = first as CodedError;
    });
  }
  return out;
}

async function opened(ws: WebSocket): Promise<void> {
  await within(
    new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('close', (code: number) => reject(new Error(`closed with ${code} before open`)));
    }),
    5000,
    'open',
  );
}

async function echoOnce(ws: WebSocket, text: string): Promise<string> {
  const reply = new Promise<string>((resolve) => ws.once('message', (data: Buffer) => resolve(data.toString())));
  ws.send(text);
  return within(reply, 5000, 'the echo');
}

async function closeClient(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  const closed = once(ws, 'close');
  ws.close();
  await within(closed, 5000, 'close');
}

/** An HTTP server answering every request with `status` and `headers` (a redirect, a refusal). */
async function answeringServer(
  answer: (req: http.IncomingMessage) => { status: number; headers?: Record<string, string>; body?: string },
): Promise<{ port: number; requests: http.IncomingMessage[]; close(): Promise<void> }> {
  const requests: http.IncomingMessage[] = [];
  const server = http.createServer();
  const reply = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    requests.push(req);
    const a = answer(req);
    res.writeHead(a.status, { 'Content-Type': 'text/plain', ...a.headers });
    res.end(a.body ?? '');
  };
  server.on('request', reply);
  // node:http hands requests with Upgrade to 'upgrade' listeners only; answer those by hand.
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    requests.push(req);
    const a = answer(req);
    const body = a.body ?? '';
    const lines = [
      `HTTP/1.1 ${a.status} ${http.STATUS_CODES[a.status] ?? ''}`,
      'Connection: close',
      `Content-Length: ${Buffer.byteLength(body)}`,
    ];
    for (const [k, v] of Object.entries(a.headers ?? {})) lines.push(`${k}: ${v}`);
    socket.on('error', () => {});
    socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on. */
async function refusedPort(): Promise<number> {
  const srv = net.createServer();
  srv.listen(0, HOST);
  await once(srv, 'listening');
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function basic(credentials: string): string {
  return `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
}

// ---- arguments ------------------------------------------------------------------------------

describe("new WebSocket(url, options): ws's two-argument form beside the browsers' forms", () => {
  let s: Awaited<ReturnType<typeof echoServer>>;
  before(async () => {
    s = await echoServer({ handleProtocols: (p) => [...p][0] ?? false });
  });
  after(() => s.close());

  it('an object second argument is the options: headers are sent, no subprotocol offered', T, async () => {
    const ws = new WebSocket(url(s.port), { headers: { 'X-Two': 'args' } });
    await opened(ws);
    const req = s.requests.at(-1)!;
    assert.equal(req.headers['x-two'], 'args');
    assert.equal(req.headers['sec-websocket-protocol'], undefined);
    assert.equal(ws.protocol, '');
    assert.equal(await echoOnce(ws, 'two-argument form'), 'two-argument form');
    await closeClient(ws);
  });

  it('options.protocols (ws) offers subprotocols; (url, protocols, options) still works', T, async () => {
    const a = new WebSocket(url(s.port), { protocols: ['v2', 'v1'], headers: { 'X-Form': 'a' } });
    await opened(a);
    assert.equal(s.requests.at(-1)!.headers['sec-websocket-protocol'], 'v2, v1');
    assert.equal(a.protocol, 'v2');
    const b = new WebSocket(url(s.port), ['v3'], { headers: { 'X-Form': 'b' } });
    await opened(b);
    assert.equal(s.requests.at(-1)!.headers['x-form'], 'b');
    assert.equal(b.protocol, 'v3');
    await closeClient(a);
    await closeClient(b);
  });

  it('the WHATWG forms: a string, a list, an iterable, and WebIDL strings for other values', T, async () => {
    const cases: Array<[unknown, string | undefined]> = [
      [undefined, undefined],
      ['chat', 'chat'],
      [['a', 'b'], 'a, b'],
      [new Set(['s1', 's2']), 's1, s2'],
      [null, 'null'],
      [7, '7'],
    ];
    for (const [protocols, offered] of cases) {
      const ws = new WebSocket(url(s.port), protocols as string[]);
      await opened(ws);
      assert.equal(s.requests.at(-1)!.headers['sec-websocket-protocol'], offered, String(protocols));
      await closeClient(ws);
    }
  });

  it("ws's client sends the same request for the same two-argument call", T, async () => {
    const ours = new WebSocket(url(s.port), { headers: { 'X-Who': 'duet' }, protocols: ['p'] });
    await opened(ours);
    const ourReq = s.requests.at(-1)!;
    const theirs = new WS(url(s.port), { headers: { 'X-Who': 'ws' }, protocols: ['p'] } as WS.ClientOptions);
    await within(once(theirs, 'open'));
    const theirReq = s.requests.at(-1)!;
    assert.equal(ourReq.headers['x-who'], 'duet');
    assert.equal(theirReq.headers['x-who'], 'ws');
    assert.equal(ourReq.headers['sec-websocket-protocol'], 'p');
    assert.equal(theirReq.headers['sec-websocket-protocol'], 'p');
    theirs.close();
    await closeClient(ours);
  });

  it('bad arguments throw before anything is sent: TypeError, SyntaxError', T, async () => {
    const count = s.requests.length;
    assert.throws(() => new WebSocket(url(s.port), { headers: {} } as never, {}), TypeError);
    assert.throws(() => new WebSocket(url(s.port), [], 'options' as never), TypeError);
    assert.throws(() => new WebSocket(url(s.port), { protocols: ['a', 'a'] }), { name: 'SyntaxError' });
    assert.throws(() => new WebSocket(url(s.port), Symbol('p') as never), TypeError);
    assert.throws(() => new WebSocket(url(s.port), { auth: 5 as never }), /auth option must be a string/);
    assert.throws(() => new WebSocket(url(s.port), { headers: { 'Bad Name': 'x' } }), {
      code: 'WS_ERR_INVALID_HEADER',
    });
    // ws throws SyntaxError for the same repeated protocol.
    assert.throws(() => new WS(url(s.port), ['a', 'a']), { name: 'SyntaxError' });
    // Nothing was sent: the next request the server sees is this one's.
    const ws = new WebSocket(url(s.port), { headers: { 'X-After': 'throws' } });
    await opened(ws);
    assert.equal(s.requests.length, count + 1);
    assert.equal(s.requests.at(-1)!.headers['x-after'], 'throws');
    await closeClient(ws);
  });
});

// ---- upgrade ----------------------------------------------------------------------------------

describe("'upgrade': the 101 response", () => {
  let s: Awaited<ReturnType<typeof echoServer>>;
  before(async () => {
    s = await echoServer();
    s.wss.on('headers', (headers: string[]) => headers.push('Set-Cookie: session=abc'));
  });
  after(() => s.close());

  it('comes before open, with the response and its headers; ws orders them the same', T, async () => {
    const ws = new WebSocket(url(s.port));
    const seen = events(ws);
    const response = new Promise<http.IncomingMessage>((resolve) => ws.once('upgrade', resolve));
    await opened(ws);
    const res = await response;
    assert.equal(res.statusCode, 101);
    assert.deepEqual(res.headers['set-cookie'], ['session=abc']);
    assert.deepEqual(seen.names, ['upgrade', 'open']);

    const theirs = new WS(url(s.port));
    const order: string[] = [];
    theirs.on('upgrade', () => order.push('upgrade'));
    theirs.on('open', () => order.push('open'));
    await within(once(theirs, 'open'));
    assert.deepEqual(order, ['upgrade', 'open']);
    theirs.close();
    await closeClient(ws);
  });

  it('close() in an upgrade listener abandons the attempt: no open, error, close 1006', T, async () => {
    const ws = new WebSocket(url(s.port));
    const seen = events(ws);
    ws.once('upgrade', () => ws.close());
    assert.equal(await within(seen.closed), 1006);
    assert.deepEqual(seen.names, ['upgrade', 'error', 'close']);
    assert.equal(seen.error?.code, 'WS_ERR_CLOSED_BEFORE_OPEN');
  });

  it('a listener that throws is reported as a warning; the connection opens', T, async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on('warning', onWarning);
    try {
      const ws = new WebSocket(url(s.port));
      ws.once('upgrade', () => {
        throw new Error('upgrade listener bug');
      });
      await opened(ws);
      await new Promise((r) => setImmediate(r));
      assert.ok(warnings.some((w) => w.message === 'upgrade listener bug'));
      await closeClient(ws);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

// ---- unexpected-response ----------------------------------------------------------------------

describe("'unexpected-response': a status other than 101", () => {
  let s: Started;
  before(async () => {
    s = await startServer({
      verifyClient: (_info, done) => done(false, 401, 'Who are you?', { 'WWW-Authenticate': 'Basic realm="duet"' }),
    });
  });
  after(() => s.close());

  it('the listener reads the response; then error WS_ERR_UNEXPECTED_RESPONSE and close 1006', T, async () => {
    const ws = new WebSocket(url(s.port));
    const seen = events(ws);
    const got = new Promise<{ status: number; auth: string; body: string; req: http.ClientRequest }>((resolve) => {
      ws.once('unexpected-response', (req: http.ClientRequest, res: http.IncomingMessage) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, auth: String(res.headers['www-authenticate']), body, req }),
        );
      });
    });
    const r = await within(got);
    assert.equal(r.status, 401);
    assert.equal(r.auth, 'Basic realm="duet"');
    assert.equal(r.body, 'Who are you?');
    assert.ok(r.req instanceof http.ClientRequest);
    assert.equal(await within(seen.closed), 1006);
    assert.deepEqual(seen.names, ['unexpected-response', 'error', 'close']);
    assert.equal(seen.error?.code, 'WS_ERR_UNEXPECTED_RESPONSE');
    assert.equal((seen.error as CodedError & { status: number }).status, 401);
  });

  it("ws's client hands its listener the same readable response", T, async () => {
    const theirs = new WS(url(s.port));
    theirs.on('error', () => {});
    const body = await within(
      new Promise<string>((resolve) => {
        theirs.once('unexpected-response', (_req: http.ClientRequest, res: http.IncomingMessage) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            theirs.terminate();
            resolve(`${res.statusCode} ${text}`);
          });
        });
      }),
    );
    assert.equal(body, '401 Who are you?');
  });

  it('request.destroy() in the listener aborts it: error and close 1006 follow, no hang', T, async () => {
    const ws = new WebSocket(url(s.port));
    const seen = events(ws);
    ws.once('unexpected-response', (req: http.ClientRequest) => req.destroy());
    assert.equal(await within(seen.closed), 1006);
    assert.deepEqual(seen.names, ['unexpected-response', 'error', 'close']);
    assert.equal(seen.error?.code, 'WS_ERR_UNEXPECTED_RESPONSE');
  });

  it('close() in the listener: error WS_ERR_CLOSED_BEFORE_OPEN (as ws), close 1006', T, async () => {
    const ws = new WebSocket(url(s.port));
    const seen = events(ws);
    ws.once('unexpected-response', () => ws.close());
    assert.equal(await within(seen.closed), 1006);
    assert.deepEqual(seen.names, ['unexpected-response', 'error', 'close']);
    assert.equal(seen.error?.code, 'WS_ERR_CLOSED_BEFORE_OPEN');
  });

  it('a response that never ends, to a listener that does not read it: the handshake timeout ends it', T, async () => {
    // A server that sends a status and half its body, then stalls with the connection open.
    const sockets = new Set<net.Socket>();
    const stalling = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.once('data', () => socket.write('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 100\r\n\r\nhalf'));
    });
    stalling.listen(0, HOST);
    await once(stalling, 'listening');
    try {
      const ws = new WebSocket(url((stalling.address() as AddressInfo).port), { handshakeTimeout: 300 });
      const seen = events(ws);
      ws.once('unexpected-response', () => {});
      assert.equal(await within(seen.closed), 1006);
      assert.deepEqual(seen.names, ['unexpected-response', 'error', 'close']);
      assert.equal(seen.error?.code, 'WS_ERR_HANDSHAKE_TIMEOUT');
    } finally {
      for (const socket of sockets) socket.destroy();
      stalling.close();
    }
  });

  it('without followRedirects a 3xx goes to the listener too', T, async () => {
    const srv = await answeringServer(() => ({ status: 302, headers: { Location: '/elsewhere' } }));
    try {
      const ws = new WebSocket(url(srv.port));
      const seen = events(ws);
      const status = new Promise<number>((resolve) =>
        ws.once('unexpected-response', (_req: http.ClientRequest, res: http.IncomingMessage) => {
          res.resume();
          resolve(res.statusCode!);
        }),
      );
      assert.equal(await within(status), 302);
      assert.equal(await within(seen.closed), 1006);
      assert.equal(seen.error?.code, 'WS_ERR_UNEXPECTED_RESPONSE');
    } finally {
      await srv.close();
    }
  });
});

// ---- redirects ----------------------------------------------------------------------------------

describe('followRedirects: the redirect event, credentials, schemes', () => {
  let target: Awaited<ReturnType<typeof echoServer>>;
  before(async () => {
    target = await echoServer();
  });
  after(() => target.close());

  it(
    "'redirect' gets the new URL and the request before it is sent; with a listener nothing is dropped",
    T,
    async () => {
      const srv = await answeringServer(() => ({ status: 302, headers: { Location: url(target.port, '/moved') } }));
      try {
        const ws = new WebSocket(url(srv.port, '/start'), {
          followRedirects: true,
          headers: { Authorization: 'Bearer keep', 'X-Secret': 'remove me' },
        });
        const seen = events(ws);
        const redirect = new Promise<{ to: string; auth: unknown; urlThen: string }>((resolve) =>
          ws.once('redirect', (to: string, req: http.ClientRequest) => {
            const auth = req.getHeader('authorization');
            req.removeHeader('x-secret');
            resolve({ to, auth, urlThen: ws.url });
          }),
        );
        await opened(ws);
        const r = await redirect;
        assert.equal(r.to, url(target.port, '/moved'));
        assert.equal(r.urlThen, r.to);
        assert.equal(r.auth, 'Bearer keep');
        const req = target.requests.at(-1)!;
        assert.equal(req.url, '/moved');
        assert.equal(req.headers.authorization, 'Bearer keep');
        assert.equal(req.headers['x-secret'], undefined);
        assert.deepEqual(seen.names, ['redirect', 'upgrade', 'open']);
        await closeClient(ws);
      } finally {
        await srv.close();
      }
    },
  );

  it('to another host: Authorization, Cookie, Host and Basic credentials are left behind', T, async () => {
    const srv = await answeringServer(() => ({ status: 307, headers: { Location: url(target.port, '/x') } }));
    try {
      const ws = new WebSocket(`ws://user:secret@${HOST}:${srv.port}/`, {
        followRedirects: true,
        headers: { Cookie: 'a=b', Host: 'origin.example', 'X-Keep': '1' },
      });
      await opened(ws);
      assert.equal(srv.requests[0].headers.authorization, basic('user:secret'));
      assert.equal(srv.requests[0].headers.host, 'origin.example');
      const req = target.requests.at(-1)!;
      assert.equal(req.headers.authorization, undefined);
      assert.equal(req.headers.cookie, undefined);
      assert.equal(req.headers.host, `${HOST}:${target.port}`);
      assert.equal(req.headers['x-keep'], '1');
      await closeClient(ws);
    } finally {
      await srv.close();
    }
  });

  it('on the same host and port they are kept (the auth option too)', T, async () => {
    // The target redirects its own /start to /echo.
    const s = await startServer();
    const seen: http.IncomingMessage[] = [];
    s.wss.on('connection', (_ws: WebSocket, req: http.IncomingMessage) => seen.push(req));
    // duet's own server answers a request no duet server takes with 404: route /start by hand.
    const server = http.createServer();
    const wss = new WebSocketServer({ noServer: true });
    const firstHop: http.IncomingMessage[] = [];
    server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      if (req.url === '/start') {
        firstHop.push(req);
        socket.end('HTTP/1.1 301 Moved Permanently\r\nLocation: /echo\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        seen.push(req);
        ws.close();
      });
    });
    server.listen(0, HOST);
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    try {
      const ws = new WebSocket(url(port, '/start'), {
        followRedirects: true,
        auth: 'me:pw',
        headers: { Cookie: 'c=1' },
      });
      await opened(ws);
      assert.equal(firstHop[0].headers.authorization, basic('me:pw'));
      assert.equal(seen[0].url, '/echo');
      assert.equal(seen[0].headers.authorization, basic('me:pw'));
      assert.equal(seen[0].headers.cookie, 'c=1');
      await within(once(ws, 'close'));
    } finally {
      wss.close();
      server.closeAllConnections();
      server.close();
      await s.close();
    }
  });

  it('from ws: to wss: (another port): followed, and credentials stay behind', T, async () => {
    const { key, cert } = selfSignedCert();
    const tls = https.createServer({ key, cert });
    const wss = new WebSocketServer({ server: tls });
    const seen: http.IncomingMessage[] = [];
    wss.on('connection', (ws: WebSocket, req: http.IncomingMessage) => {
      seen.push(req);
      ws.on('message', (d: Buffer) => ws.send(d.toString()));
    });
    tls.listen(0, HOST);
    await once(tls, 'listening');
    const tlsPort = (tls.address() as AddressInfo).port;
    const srv = await answeringServer(() => ({ status: 302, headers: { Location: `https://localhost:${tlsPort}/s` } }));
    try {
      const ws = new WebSocket(url(srv.port), { followRedirects: true, ca: cert, auth: 'u:p' });
      await opened(ws);
      assert.equal(ws.url, `wss://localhost:${tlsPort}/s`);
      assert.equal(await echoOnce(ws, 'secure now'), 'secure now');
      assert.equal(seen[0].headers.authorization, undefined);
      await closeClient(ws);
    } finally {
      await srv.close();
      wss.close();
      tls.closeAllConnections();
      tls.close();
    }
  });

  it('a network server may not redirect to ws+unix: (WS_ERR_INVALID_REDIRECT)', T, async () => {
    const srv = await answeringServer(() => ({
      status: 302,
      headers: { Location: 'ws+unix:/var/run/docker.sock:/containers/json' },
    }));
    try {
      const ws = new WebSocket(url(srv.port), { followRedirects: true });
      const seen = events(ws);
      assert.equal(await within(seen.closed), 1006);
      assert.equal(seen.error?.code, 'WS_ERR_INVALID_REDIRECT');
      assert.deepEqual(seen.names, ['error', 'close']);
    } finally {
      await srv.close();
    }
  });

  it('a Location that is not a WebSocket URL fails with WS_ERR_INVALID_REDIRECT', T, async () => {
    const srv = await answeringServer(() => ({ status: 301, headers: { Location: 'ftp://files.example/x' } }));
    try {
      const ws = new WebSocket(url(srv.port), { followRedirects: true });
      const seen = events(ws);
      assert.equal(await within(seen.closed), 1006);
      assert.equal(seen.error?.code, 'WS_ERR_INVALID_REDIRECT');
      assert.match(seen.error.message, /ftp:\/\/files\.example\/x/);
    } finally {
      await srv.close();
    }
  });

  it('close() in a redirect listener stops there: the next request is never sent', T, async () => {
    const srv = await answeringServer(() => ({ status: 302, headers: { Location: url(target.port, '/never') } }));
    try {
      const count = target.requests.length;
      const ws = new WebSocket(url(srv.port), { followRedirects: true });
      const seen = events(ws);
      ws.once('redirect', () => ws.close());
      assert.equal(await within(seen.closed), 1006);
      assert.equal(seen.error?.code, 'WS_ERR_CLOSED_BEFORE_OPEN');
      // The redirect's request was not sent: the next one the target sees is this one.
      const next = new WebSocket(url(target.port, '/next'));
      await opened(next);
      assert.equal(target.requests.length, count + 1);
      assert.equal(target.requests.at(-1)!.url, '/next');
      await closeClient(next);
    } finally {
      await srv.close();
    }
  });
});

// ---- finishRequest ---------------------------------------------------------------------------

describe('finishRequest (ws option)', () => {
  let s: Awaited<ReturnType<typeof echoServer>>;
  before(async () => {
    s = await echoServer();
  });
  after(() => s.close());

  it('gets the request and the WebSocket; it sets headers and ends the request itself', T, async () => {
    let gotSocket: unknown;
    const ws = new WebSocket(url(s.port), {
      finishRequest: (req, websocket) => {
        gotSocket = websocket;
        req.setHeader('X-Finished-By', 'app');
        req.end();
      },
    });
    await opened(ws);
    assert.equal(gotSocket, ws);
    assert.equal(s.requests.at(-1)!.headers['x-finished-by'], 'app');
    await closeClient(ws);
  });

  it('one that throws fails the attempt (WS_ERR_UNEXPECTED_CONDITION, close 1006)', T, async () => {
    const ws = new WebSocket(url(s.port), {
      finishRequest: () => {
        throw new Error('finish bug');
      },
    });
    const seen = events(ws);
    assert.equal(await within(seen.closed), 1006);
    assert.equal(seen.error?.code, 'WS_ERR_UNEXPECTED_CONDITION');
    assert.match(seen.error.message, /finish bug/);
  });
});

// ---- credentials ----------------------------------------------------------------------------

describe('Basic credentials: the auth option and user:pass@ in the URL', () => {
  let s: Awaited<ReturnType<typeof echoServer>>;
  before(async () => {
    s = await echoServer();
  });
  after(() => s.close());

  it('auth sends Authorization: Basic (a colon in the password kept)', T, async () => {
    const ws = new WebSocket(url(s.port), { auth: 'user:pa:ss' });
    await opened(ws);
    assert.equal(s.requests.at(-1)!.headers.authorization, basic('user:pa:ss'));
    await closeClient(ws);
  });

  it('URL credentials are percent-decoded and sent; ws.url keeps them (WHATWG); ws sends the same', T, async () => {
    const withCreds = `ws://us%40er:p%C3%A4ss@${HOST}:${s.port}/`;
    const ws = new WebSocket(withCreds);
    await opened(ws);
    assert.equal(ws.url, withCreds);
    const ours = s.requests.at(-1)!.headers.authorization;
    assert.equal(ours, basic('us@er:päss'));
    const theirs = new WS(withCreds);
    await within(once(theirs, 'open'));
    assert.equal(s.requests.at(-1)!.headers.authorization, ours);
    theirs.close();
    await closeClient(ws);
  });

  it("the URL's credentials win over auth; an Authorization header wins over both", T, async () => {
    const a = new WebSocket(`ws://url:cred@${HOST}:${s.port}/`, { auth: 'opt:cred' });
    await opened(a);
    assert.equal(s.requests.at(-1)!.headers.authorization, basic('url:cred'));
    const b = new WebSocket(`ws://url:cred@${HOST}:${s.port}/`, {
      auth: 'opt:cred',
      headers: { authorization: 'Bearer token' },
    });
    await opened(b);
    assert.equal(s.requests.at(-1)!.headers.authorization, 'Bearer token');
    await closeClient(a);
    await closeClient(b);
  });

  it('an option node:http refuses (a localAddress that is no IP): WS_ERR_CONNECT, close 1006', T, async () => {
    const ws = new WebSocket(url(s.port), { localAddress: 'not an address' });
    const seen = events(ws);
    assert.equal(await within(seen.closed), 1006);
    assert.equal(seen.error?.code, 'WS_ERR_CONNECT');
    assert.match(seen.error.message, /^Could not make the request: /);
  });

  it('errors never show the credentials', T, async () => {
    const port = await refusedPort();
    const ws = new WebSocket(`ws://user:s3cret@${HOST}:${port}/`);
    const seen = events(ws);
    await within(seen.closed);
    assert.equal(seen.error?.code, 'ECONNREFUSED');
    assert.doesNotMatch(`${seen.error?.message} ${String(seen.error?.stack)}`, /s3cret/);
    const srv = await answeringServer(() => ({ status: 403, body: 'no' }));
    try {
      const refused = new WebSocket(`ws://user:s3cret@${HOST}:${srv.port}/`);
      const r = events(refused);
      await within(r.closed);
      assert.equal(r.error?.code, 'WS_ERR_UNEXPECTED_RESPONSE');
      assert.doesNotMatch(r.error.message, /s3cret/);
    } finally {
      await srv.close();
    }
  });
});

// ---- ws+unix ---------------------------------------------------------------------------------

describe('ws+unix: URLs (a duet server on a Unix domain socket)', () => {
  let dir: string;
  let socketPath: string;
  let server: http.Server;
  let wss: WebSocketServer;
  const requests: http.IncomingMessage[] = [];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'duet-unix-'));
    socketPath = join(dir, 'duet.sock');
    server = http.createServer();
    wss = new WebSocketServer({ server });
    wss.on('connection', (ws: WebSocket, req: http.IncomingMessage) => {
      requests.push(req);
      ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }));
    });
    server.listen(socketPath);
    await once(server, 'listening');
  });
  after(async () => {
    for (const c of wss.clients ?? []) c.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('connects over the socket for the request path after the colon; messages both ways', T, async () => {
    const address = `ws+unix:${socketPath}:/echo?room=1`;
    const ws = new WebSocket(address);
    await opened(ws);
    assert.equal(ws.url, address);
    assert.equal(requests.at(-1)!.url, '/echo?room=1');
    assert.equal(await echoOnce(ws, 'over a unix socket'), 'over a unix socket');
    await closeClient(ws);
  });

  it('without a request path the request is for /; ws+unix:// works too', T, async () => {
    const ws = new WebSocket(`ws+unix://${socketPath}`);
    await opened(ws);
    assert.equal(requests.at(-1)!.url, '/');
    await closeClient(ws);
  });

  it("ws's client reaches the same server with the same URL", T, async () => {
    const theirs = new WS(`ws+unix:${socketPath}:/ws-too`);
    await within(once(theirs, 'open'));
    assert.equal(requests.at(-1)!.url, '/ws-too');
    theirs.close();
    await within(once(theirs, 'close'));
  });

  it('a relative redirect stays on the socket', T, async () => {
    const redirecting = http.createServer();
    const redirectPath = join(dir, 'redirect.sock');
    const local = new WebSocketServer({ noServer: true });
    const seen: string[] = [];
    redirecting.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      seen.push(req.url!);
      if (req.url === '/old') {
        socket.end('HTTP/1.1 308 Permanent Redirect\r\nLocation: /new?x=1\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      local.handleUpgrade(req, socket, head, (ws) => ws.close());
    });
    redirecting.listen(redirectPath);
    await once(redirecting, 'listening');
    try {
      const ws = new WebSocket(`ws+unix:${redirectPath}:/old`, { followRedirects: true });
      await opened(ws);
      assert.deepEqual(seen, ['/old', '/new?x=1']);
      assert.equal(ws.url, `ws+unix:${redirectPath}:/new?x=1`);
      await within(once(ws, 'close'));
    } finally {
      local.close();
      redirecting.closeAllConnections();
      await new Promise<void>((r) => redirecting.close(() => r()));
    }
  });

  it('no socket at the path: error naming it (ENOENT), close 1006', T, async () => {
    const missing = join(dir, 'missing.sock');
    const ws = new WebSocket(`ws+unix:${missing}:/x`);
    const seen = events(ws);
    assert.equal(await within(seen.closed), 1006);
    assert.equal(seen.error?.code, 'ENOENT');
    assert.equal(seen.error?.message, `No such Unix socket: ${missing}`);
  });

  it('a path where nobody listens: ECONNREFUSED naming the socket', T, async () => {
    // A file that is not a listening socket (as a socket file left behind by a crashed server).
    const stale = join(dir, 'stale.sock');
    writeFileSync(stale, '');
    const ws = new WebSocket(`ws+unix:${stale}:/x`);
    const seen = events(ws);
    assert.equal(await within(seen.closed), 1006);
    assert.equal(seen.error?.code, 'ECONNREFUSED');
    assert.equal(seen.error?.message, `Connection refused by the Unix socket ${stale}`);
  });

  it('bad ws+unix: URLs throw SyntaxError', () => {
    for (const bad of ['ws+unix:', 'ws+unix://localhost/tmp/s:/x', `ws+unix:${socketPath}:/x#frag`]) {
      assert.throws(() => new WebSocket(bad), { name: 'SyntaxError' }, bad);
    }
  });

  it('the origin of its messages is "null" (an opaque origin), as new URL() gives', T, async () => {
    const ws = new WebSocket(`ws+unix:${socketPath}:/o`);
    await opened(ws);
    const event = new Promise<string>((resolve) =>
      ws.addEventListener('message', (e) => resolve(e.origin), { once: true }),
    );
    ws.send('x');
    assert.equal(await within(event), 'null');
    const closed = new Promise<WsCloseEvent>((r) => ws.addEventListener('close', r));
    ws.close();
    await within(closed);
  });
});

describe('handshakeTimeout and bad URLs (ws semantics, nothing secret in messages)', () => {
  it('handshakeTimeout 0 means no timeout (as in ws): a server that answers late is still reached', T, async () => {
    // An HTTP server that waits 200 ms before completing each upgrade: with a 1 ms timeout
    // the client gives up, with 0 it waits and opens.
    const wss = new WebSocketServer({ noServer: true });
    const late = http.createServer();
    late.on('upgrade', (req: http.IncomingMessage, sock: net.Socket, rest: Buffer) => {
      setTimeout(() => {
        if (!sock.destroyed) wss.handleUpgrade(req, sock, rest, () => {});
        else sock.destroy();
      }, 200);
    });
    late.listen(0, HOST);
    await once(late, 'listening');
    const port = (late.address() as AddressInfo).port;
    try {
      const quick = new WebSocket(url(port), { handshakeTimeout: 1 });
      const failed = events(quick);
      assert.equal(await within(failed.closed), 1006);
      assert.equal(failed.error?.code, 'WS_ERR_HANDSHAKE_TIMEOUT');
      const patient = new WebSocket(url(port), { handshakeTimeout: 0 });
      await within(once(patient, 'open'));
      patient.terminate();
    } finally {
      late.close();
      wss.close();
    }
  });

  it('a handshakeTimeout that is not a duration throws a RangeError from the constructor', () => {
    for (const bad of [-1, Number.NaN, Infinity, '5' as unknown as number]) {
      assert.throws(() => new WebSocket('ws://127.0.0.1:9/', { handshakeTimeout: bad }), RangeError, String(bad));
    }
  });

  it('an invalid URL with credentials: the SyntaxError does not repeat them', () => {
    assert.throws(
      () => new WebSocket('ws://ada:s3cr3t@127.0.0.1:99999/'),
      (err: Error) => err.name === 'SyntaxError' && err.message.includes('//***@') && !err.message.includes('s3cr3t'),
    );
  });
});
