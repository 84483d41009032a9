/**
 * Header values an application hands to duet, at every entry point: verifyClient's refusal
 * (`done(false, status, message, headers)`, called at once or later), the `headers` event,
 * abortHandshake, and the client's `headers` option. Numbers and arrays are written as
 * node:http writes them (compared with a node:http server's own bytes); a value that cannot be a
 * header (CR/LF, NUL, a bad name, undefined...) is refused with a clear error, never a crash
 * and never an injected header line, and the server keeps serving. Raw TCP shows the exact
 * response lines; servers run in all three modes (port, server, noServer).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import * as net from 'node:net';
import WS from 'ws';
import { WebSocket, WebSocketServer, type ServerOptions } from '../../src/index.js';
import { abortHandshake } from '../../src/node/server.js';
import { HOST, RawClient, upgradeRequest } from '../helpers.js';

const T = { timeout: 20_000 };
type Mode = 'port' | 'server' | 'noServer';
const MODES: Mode[] = ['port', 'server', 'noServer'];

interface Started {
  wss: WebSocketServer;
  port: number;
  close(): Promise<void>;
}

/** A WebSocketServer in `mode` on 127.0.0.1:0 that echoes every message. */
async function start(mode: Mode, options: Omit<ServerOptions, 'port' | 'server' | 'noServer'> = {}): Promise<Started> {
  let wss: WebSocketServer;
  let httpServer: http.Server | undefined;
  const sockets = new Set<net.Socket>();
  if (mode === 'port') {
    wss = new WebSocketServer({ port: 0, host: HOST, ...options });
    await once(wss, 'listening');
  } else {
    httpServer = http.createServer((_req, res) => res.end('plain'));
    httpServer.on('connection', (s: net.Socket) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    if (mode === 'server') {
      wss = new WebSocketServer({ server: httpServer, ...options });
    } else {
      const w = new WebSocketServer({ noServer: true, ...options });
      httpServer.on('upgrade', (req, socket, head) =>
        w.handleUpgrade(req, socket, head, (ws) => w.emit('connection', ws, req)),
      );
      wss = w;
    }
    httpServer.listen(0, HOST);
    await once(httpServer, 'listening');
  }
  wss.on('connection', (ws: WebSocket) =>
    ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary })),
  );
  const address = (httpServer ?? wss).address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    wss,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients ?? []) ws.terminate();
        wss.close(() => {
          if (!httpServer) return resolve();
          for (const s of sockets) s.destroy();
          httpServer.close(() => resolve());
        });
      }),
  };
}

interface RawResponse {
  status: number;
  /** Header lines, without the status line. */
  lines: string[];
  /** The whole response as received (head and body), Latin-1. */
  raw: string;
}

/** Send `request` over raw TCP and read the whole answer until the server closes the connection. */
async function rawExchange(port: number, request: string = upgradeRequest()): Promise<RawResponse> {
  const client = await RawClient.connect(port, request);
  await client.until(() => client.closed, 10_000);
  const [statusLine = '', ...lines] = client.responseHead.split('\r\n');
  const m = /^HTTP\/1\.1 (\d{3})/.exec(statusLine);
  return {
    status: m ? Number(m[1]) : 0,
    lines,
    raw: `${client.responseHead}\r\n\r\n${client.received.toString('latin1')}`,
  };
}

/** The server still completes handshakes and echoes (it did not crash, nor wedge). */
async function stillServes(port: number): Promise<void> {
  const client = new WS(`ws://${HOST}:${port}/`, { handshakeTimeout: 5000 });
  await once(client, 'open');
  const reply = once(client, 'message') as Promise<[Buffer]>;
  client.send('still alive');
  assert.equal((await reply)[0].toString(), 'still alive');
  client.terminate();
}

/** The lines of `response` whose header name is one of `names` (case-insensitive), in order. */
function linesNamed(response: RawResponse, names: string[]): string[] {
  const wanted = new Set(names.map((n) => n.toLowerCase()));
  return response.lines.filter((line) => wanted.has(line.slice(0, line.indexOf(':')).toLowerCase()));
}

/** How a plain node:http server writes `headers` on a response: its header lines, raw. */
async function nodeHttpLines(
  headers: Record<string, string | number | readonly (string | number)[]>,
): Promise<string[]> {
  const server = http.createServer((_req, res) => {
    res.writeHead(429, headers as http.OutgoingHttpHeaders);
    res.end('x');
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  try {
    const { port } = server.address() as net.AddressInfo;
    const response = await rawExchange(port, `GET / HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
    assert.equal(response.status, 429);
    return linesNamed(response, Object.keys(headers));
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

type DoneFn = (ok: boolean, status?: number, message?: string, headers?: unknown) => void;

/** An async verifyClient that refuses with these arguments, at once (`sync`) or after a timer. */
function refuseWith(
  when: 'sync' | 'later',
  status: number,
  message: string,
  headers: unknown,
): ServerOptions['verifyClient'] {
  return ((_info: unknown, done: DoneFn) => {
    if (when === 'sync') done(false, status, message, headers);
    else setTimeout(() => done(false, status, message, headers), 5);
  }) as ServerOptions['verifyClient'];
}

// The values that must never reach the wire, each with what it is.
const BAD_HEADERS: Array<[string, unknown]> = [
  ['CRLF injection in a value', { 'WWW-Authenticate': 'x\r\nSet-Cookie: a=b' }],
  ['LF injection in a value', { 'WWW-Authenticate': 'x\nSet-Cookie: a=b' }],
  ['CR in a value', { 'WWW-Authenticate': 'x\rSet-Cookie: a=b' }],
  ['CRLF inside an array element', { 'X-List': ['fine', 'x\r\nSet-Cookie: a=b'] }],
  ['NUL in a value', { 'X-A': 'a\0b' }],
  ['undefined value', { 'X-A': undefined }],
  ['null value', { 'X-A': null }],
  ['object value', { 'X-A': { a: 1 } }],
  ['name with a space', { 'Bad Name': '1' }],
  ['name with a colon', { 'Set-Cookie: a=b\r\nX': '1' }],
  ['name with CRLF', { 'X-A\r\nSet-Cookie': 'a=b' }],
  ['headers not an object', 'Set-Cookie: a=b'],
];

function assertNothingInjected(response: RawResponse, label: string): void {
  assert.equal(response.status, 500, `${label}: a plain 500`);
  assert.doesNotMatch(
    response.raw,
    /Set-Cookie|a=b|WWW-Authenticate|X-A|X-List|Bad Name/i,
    `${label}: nothing of the asked headers on the wire`,
  );
  assert.deepEqual(
    response.lines.map((l) => l.slice(0, l.indexOf(':'))),
    ['Connection', 'Content-Type', 'Content-Length'],
    `${label}: only duet's own headers`,
  );
}

describe('verifyClient: refusal headers of any JSON-ish type', () => {
  for (const mode of MODES) {
    for (const when of ['sync', 'later'] as const) {
      it(
        `${mode}, done called ${when === 'sync' ? 'at once' : 'later'}: { 'Retry-After': 120 } answers 429 with Retry-After: 120 (it used to crash the process)`,
        T,
        async () => {
          const srv = await start(mode, { verifyClient: refuseWith(when, 429, 'slow down', { 'Retry-After': 120 }) });
          const errors: Error[] = [];
          srv.wss.on('error', (err: Error) => errors.push(err));
          try {
            const response = await rawExchange(srv.port);
            assert.equal(response.status, 429);
            assert.deepEqual(linesNamed(response, ['Retry-After']), ['Retry-After: 120']);
            assert.match(response.raw, /\r\n\r\nslow down$/);
            assert.deepEqual(errors, []);
            srv.wss.options.verifyClient = undefined;
            await stillServes(srv.port);
          } finally {
            await srv.close();
          }
        },
      );
    }
  }

  it(
    'numbers, floats and arrays (of strings and of numbers) are written exactly as node:http writes them',
    T,
    async () => {
      const headers = {
        'Retry-After': 120,
        'X-Ratio': 0.25,
        'Set-Cookie': ['a=1; Path=/', 'b=2'],
        'X-Codes': [4, 2],
        'WWW-Authenticate': 'Bearer realm="duet"',
        'X-Empty-List': [] as string[],
      };
      const expected = [
        'Retry-After: 120',
        'X-Ratio: 0.25',
        'Set-Cookie: a=1; Path=/',
        'Set-Cookie: b=2',
        'X-Codes: 4',
        'X-Codes: 2',
        'WWW-Authenticate: Bearer realm="duet"',
      ];
      assert.deepEqual(await nodeHttpLines(headers), expected, 'what node:http sends (the reference)');
      for (const mode of MODES) {
        const srv = await start(mode, { verifyClient: refuseWith('later', 429, 'slow down', headers) });
        try {
          const response = await rawExchange(srv.port);
          assert.equal(response.status, 429, mode);
          assert.deepEqual(linesNamed(response, Object.keys(headers)), expected, mode);
        } finally {
          await srv.close();
        }
      }
    },
  );

  for (const mode of MODES) {
    it(
      `${mode}: a value or name that cannot be a header answers a plain 500, injects nothing, reports a TypeError on 'error'; the server keeps serving`,
      T,
      async () => {
        const srv = await start(mode);
        const errors: Array<Error & { code?: string }> = [];
        srv.wss.on('error', (err: Error) => errors.push(err));
        try {
          for (const [label, headers] of BAD_HEADERS) {
            for (const when of ['sync', 'later'] as const) {
              srv.wss.options.verifyClient = refuseWith(when, 401, 'no', headers);
              errors.length = 0;
              const response = await rawExchange(srv.port);
              assertNothingInjected(response, `${label} (${when})`);
              assert.equal(errors.length, 1, `${label} (${when}): one error reported`);
              assert.ok(errors[0] instanceof TypeError, label);
              assert.equal(errors[0].code, 'WS_ERR_INVALID_HEADER', label);
            }
          }
          srv.wss.options.verifyClient = undefined;
          await stillServes(srv.port);
        } finally {
          await srv.close();
        }
      },
    );
  }

  it('an invalid status (42, 1000, "429") answers 500 and reports a RangeError WS_ERR_INVALID_STATUS', T, async () => {
    const srv = await start('port');
    const errors: Array<Error & { code?: string }> = [];
    srv.wss.on('error', (err: Error) => errors.push(err));
    try {
      for (const status of [42, 1000, '429' as unknown as number]) {
        srv.wss.options.verifyClient = refuseWith('later', status, 'no', { 'Retry-After': 1 });
        errors.length = 0;
        assertNothingInjected(await rawExchange(srv.port), String(status));
        assert.equal(errors.length, 1);
        assert.ok(errors[0] instanceof RangeError);
        assert.equal(errors[0].code, 'WS_ERR_INVALID_STATUS');
      }
      srv.wss.options.verifyClient = undefined;
      await stillServes(srv.port);
    } finally {
      await srv.close();
    }
  });

  it('without an error listener the mistake is a process warning, and the server keeps serving', T, async () => {
    const srv = await start('port', {
      verifyClient: refuseWith('later', 401, 'no', { 'X-A': 'x\r\nSet-Cookie: a=b' }),
    });
    try {
      const warned = new Promise<Error>((resolve) => {
        const onWarning = (w: Error): void => {
          if ((w as Error & { code?: string }).code !== 'WS_ERR_INVALID_HEADER') return;
          process.off('warning', onWarning);
          resolve(w);
        };
        process.on('warning', onWarning);
      });
      assertNothingInjected(await rawExchange(srv.port), 'no listener');
      const warning = await warned;
      assert.match(warning.message, /Invalid value for header "X-A"/);
      srv.wss.options.verifyClient = undefined;
      await stillServes(srv.port);
    } finally {
      await srv.close();
    }
  });

  it(
    'a wsClientError listener gets the refusal with its headers, or the header error with status 500, and answers itself',
    T,
    async () => {
      const srv = await start('server');
      const seen: Array<{ code: string; status: number; headers?: unknown; message: string }> = [];
      srv.wss.on('wsClientError', (err, socket) => {
        seen.push({ code: err.code, status: err.status, headers: err.headers, message: err.message });
        socket.end(`HTTP/1.1 ${err.status} Custom\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      });
      try {
        srv.wss.options.verifyClient = refuseWith('later', 429, 'slow down', { 'Retry-After': 120 });
        assert.equal((await rawExchange(srv.port)).status, 429);
        assert.deepEqual(seen.pop(), {
          code: 'WS_ERR_CLIENT_REJECTED',
          status: 429,
          headers: { 'Retry-After': 120 },
          message: 'slow down',
        });

        srv.wss.options.verifyClient = refuseWith('sync', 429, 'slow down', { 'Retry-After': 'x\r\nSet-Cookie: a=b' });
        const response = await rawExchange(srv.port);
        assert.equal(response.status, 500);
        assert.doesNotMatch(response.raw, /Set-Cookie/);
        const fault = seen.pop()!;
        assert.equal(fault.code, 'WS_ERR_INVALID_HEADER');
        assert.equal(fault.status, 500);
        assert.match(fault.message, /Retry-After/);
        srv.wss.options.verifyClient = undefined;
        await stillServes(srv.port);
      } finally {
        await srv.close();
      }
    },
  );
});

describe('verifyClient that throws', () => {
  for (const mode of MODES) {
    for (const form of ['sync', 'async'] as const) {
      it(
        `${mode}, ${form} form: 500, the error reported as WS_ERR_UNEXPECTED_CONDITION with the cause, the server keeps serving`,
        T,
        async () => {
          const bug = new Error('application bug');
          const verifyClient =
            form === 'sync'
              ? (): boolean => {
                  throw bug;
                }
              : (_info: unknown, _done: unknown): void => {
                  throw bug;
                };
          const srv = await start(mode, { verifyClient: verifyClient as ServerOptions['verifyClient'] });
          const errors: Array<Error & { code?: string; cause?: unknown }> = [];
          srv.wss.on('error', (err: Error) => errors.push(err));
          try {
            const response = await rawExchange(srv.port);
            assert.equal(response.status, 500);
            assert.equal(errors.length, 1);
            assert.equal(errors[0].code, 'WS_ERR_UNEXPECTED_CONDITION');
            assert.equal(errors[0].cause, bug);
            srv.wss.options.verifyClient = undefined;
            await stillServes(srv.port);
          } finally {
            await srv.close();
          }
        },
      );
    }
  }

  it('done() called twice: the second call is ignored (no second response on the connection)', T, async () => {
    const srv = await start('port', {
      verifyClient: (_info, done) => {
        done(true);
        done(false, 403);
      },
    });
    try {
      const c = new WS(`ws://${HOST}:${srv.port}/`);
      await once(c, 'open');
      c.send('after');
      const [reply] = (await once(c, 'message')) as [Buffer];
      assert.equal(reply.toString(), 'after');
      c.close();
      await once(c, 'close');
    } finally {
      await srv.close();
    }
  });
});

describe('handleProtocols that throws', () => {
  for (const mode of MODES) {
    it(
      `${mode}: 500, reported as WS_ERR_UNEXPECTED_CONDITION with the cause, the server keeps serving`,
      T,
      async () => {
        const bug = new Error('application bug');
        const srv = await start(mode, {
          handleProtocols: () => {
            throw bug;
          },
        });
        const errors: Array<Error & { code?: string; cause?: unknown }> = [];
        srv.wss.on('error', (err: Error) => errors.push(err));
        try {
          const response = await rawExchange(srv.port, upgradeRequest('/', ['Sec-WebSocket-Protocol: chat']));
          assert.equal(response.status, 500);
          assert.equal(errors.length, 1);
          assert.equal(errors[0].code, 'WS_ERR_UNEXPECTED_CONDITION');
          assert.equal(errors[0].cause, bug);
          await stillServes(srv.port);
        } finally {
          await srv.close();
        }
      },
    );
  }
});

describe("the 'headers' event", () => {
  it(
    'lines pushed as strings reach the client; the array holds the status line and "Name: value" lines',
    T,
    async () => {
      const srv = await start('port');
      let seen: string[] = [];
      srv.wss.on('headers', (headers: string[]) => {
        seen = [...headers];
        headers.push('Retry-After: 120', 'Set-Cookie: a=1', 'Set-Cookie: b=2');
      });
      try {
        const client = await RawClient.connect(srv.port);
        assert.equal(seen[0], 'HTTP/1.1 101 Switching Protocols');
        assert.ok(
          seen.slice(1).every((line) => /^[A-Za-z-]+: \S/.test(line)),
          JSON.stringify(seen),
        );
        const lines = client.responseHead.split('\r\n');
        assert.equal(lines[0], 'HTTP/1.1 101 Switching Protocols');
        assert.deepEqual(lines.slice(-3), ['Retry-After: 120', 'Set-Cookie: a=1', 'Set-Cookie: b=2']);
        client.destroy();
      } finally {
        await srv.close();
      }
    },
  );

  for (const mode of MODES) {
    it(
      `${mode}: a line that cannot be sent (a number, CRLF inside, no colon, a bad name, a broken status line) answers a plain 500 and reports WS_ERR_INVALID_HEADER`,
      T,
      async () => {
        const srv = await start(mode);
        const errors: Array<Error & { code?: string }> = [];
        srv.wss.on('error', (err: Error) => errors.push(err));
        let push: (headers: unknown[]) => void = () => {};
        srv.wss.on('headers', (headers: string[]) => push(headers));
        const cases: Array<[string, (headers: unknown[]) => void]> = [
          ['a number', (h) => h.push(120)],
          ['a string array', (h) => h.push(['Set-Cookie: a=b'])],
          ['CRLF injection', (h) => h.push('X-A: 1\r\nSet-Cookie: a=b')],
          ['LF injection', (h) => h.push('X-A: 1\nSet-Cookie: a=b')],
          ['no colon', (h) => h.push('Set-Cookie a=b')],
          ['a name with a space', (h) => h.push('Bad Name: a=b')],
          ['CRLF in the status line', (h) => (h[0] = 'HTTP/1.1 101 Switching Protocols\r\nSet-Cookie: a=b')],
        ];
        try {
          for (const [label, change] of cases) {
            push = change;
            errors.length = 0;
            const response = await rawExchange(srv.port);
            assertNothingInjected(response, label);
            assert.equal(errors.length, 1, label);
            assert.equal(errors[0].code, 'WS_ERR_INVALID_HEADER', label);
          }
          push = () => {};
          await stillServes(srv.port);
        } finally {
          await srv.close();
        }
      },
    );
  }

  it(
    'a listener that throws: 500, the error reported as WS_ERR_UNEXPECTED_CONDITION with the cause, the server keeps serving',
    T,
    async () => {
      const srv = await start('port');
      const errors: Array<Error & { code?: string; cause?: unknown }> = [];
      srv.wss.on('error', (err: Error) => errors.push(err));
      const boom = new Error('boom');
      let throwing = true;
      srv.wss.on('headers', () => {
        if (throwing) throw boom;
      });
      try {
        assert.equal((await rawExchange(srv.port)).status, 500);
        assert.equal(errors.length, 1);
        assert.equal(errors[0].code, 'WS_ERR_UNEXPECTED_CONDITION');
        assert.equal(errors[0].cause, boom);
        throwing = false;
        await stillServes(srv.port);
      } finally {
        await srv.close();
      }
    },
  );
});

describe('abortHandshake', () => {
  /** A TCP server whose every connection is answered by `answer(socket)`. */
  async function answering(answer: (socket: net.Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
    const server = net.createServer((socket) => socket.once('data', () => answer(socket)));
    server.listen(0, HOST);
    await once(server, 'listening');
    return {
      port: (server.address() as net.AddressInfo).port,
      close: () => new Promise((resolve) => server.close(() => resolve())),
    };
  }

  it('writes numbers and arrays as node:http does', T, async () => {
    const srv = await answering((socket) =>
      abortHandshake(socket, 429, 'slow down', { 'Retry-After': 120, 'Set-Cookie': ['a=1', 'b=2'], 'X-Codes': [4, 2] }),
    );
    try {
      const response = await rawExchange(srv.port);
      assert.equal(response.status, 429);
      assert.deepEqual(linesNamed(response, ['Retry-After', 'Set-Cookie', 'X-Codes']), [
        'Retry-After: 120',
        'Set-Cookie: a=1',
        'Set-Cookie: b=2',
        'X-Codes: 4',
        'X-Codes: 2',
      ]);
    } finally {
      await srv.close();
    }
  });

  it(
    'a header that cannot be sent: the socket still gets a plain 500 and is closed, and the caller gets the TypeError',
    T,
    async () => {
      const thrown: unknown[] = [];
      const srv = await answering((socket) => {
        try {
          abortHandshake(socket, 401, 'no', { 'X-A': 'x\r\nSet-Cookie: a=b' });
        } catch (err) {
          thrown.push(err);
        }
      });
      try {
        assertNothingInjected(await rawExchange(srv.port), 'abortHandshake');
        assert.equal(thrown.length, 1);
        assert.ok(thrown[0] instanceof TypeError);
        assert.equal((thrown[0] as TypeError & { code?: string }).code, 'WS_ERR_INVALID_HEADER');
      } finally {
        await srv.close();
      }
    },
  );
});

/** Resolves when a client connection closes (its error event, expected here, is swallowed). */
function ended(ws: WebSocket): Promise<void> {
  ws.on('error', () => {});
  return new Promise((resolve) => ws.on('close', () => resolve()));
}

describe('client: the headers option', () => {
  /** A TCP server that records each request head it gets and answers 403. */
  async function recorder(): Promise<{
    port: number;
    heads: string[];
    connections: () => number;
    close(): Promise<void>;
  }> {
    const heads: string[] = [];
    let connections = 0;
    const server = net.createServer((socket) => {
      connections++;
      let buf = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => {
        buf += chunk;
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        heads.push(buf.slice(0, end));
        socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      });
      socket.on('error', () => {});
    });
    server.listen(0, HOST);
    await once(server, 'listening');
    return {
      port: (server.address() as net.AddressInfo).port,
      heads,
      connections: () => connections,
      close: () => new Promise((resolve) => server.close(() => resolve())),
    };
  }

  it(
    'numbers and arrays are sent as node:http sends them (one line per element; Cookie joined with "; " by node:http)',
    T,
    async () => {
      const srv = await recorder();
      try {
        const ws = new WebSocket(`ws://${HOST}:${srv.port}/`, [], {
          headers: {
            'X-Number': 120,
            'X-Float': 1.5,
            'X-List': ['a', 'b'],
            'X-Codes': [4, 2],
            'X-Empty': [],
            Cookie: ['a=1', 'b=2'],
          },
        });
        await ended(ws);
        const lines = srv.heads[0].split('\r\n');
        const picked = lines.filter((l) => /^(X-|Cookie:)/i.test(l));
        assert.deepEqual(picked, [
          'X-Number: 120',
          'X-Float: 1.5',
          'X-List: a',
          'X-List: b',
          'X-Codes: 4',
          'X-Codes: 2',
          'Cookie: a=1; b=2',
        ]);
      } finally {
        await srv.close();
      }
    },
  );

  it(
    'a header that cannot be sent throws a TypeError (WS_ERR_INVALID_HEADER) from the constructor, and nothing is sent',
    T,
    async () => {
      const srv = await recorder();
      try {
        const cases: Array<[string, Record<string, unknown> | undefined, string | undefined]> = [
          ...BAD_HEADERS.filter(([, h]) => typeof h === 'object').map(
            ([label, h]): [string, Record<string, unknown>, undefined] => [
              label,
              h as Record<string, unknown>,
              undefined,
            ],
          ),
          ['NaN', { 'X-A': NaN }, undefined],
          ['a boolean', { 'X-A': true }, undefined],
          ['non-ASCII', { 'X-A': 'caf\u00e9' }, undefined],
          ['origin with CRLF', undefined, 'https://a.example\r\nSet-Cookie: a=b'],
        ];
        for (const [label, headers, origin] of cases) {
          assert.throws(
            () =>
              new WebSocket(`ws://${HOST}:${srv.port}/`, [], {
                headers: headers as never,
                ...(origin !== undefined ? { origin } : {}),
              }),
            (err: unknown) =>
              err instanceof TypeError && (err as TypeError & { code?: string }).code === 'WS_ERR_INVALID_HEADER',
            label,
          );
        }
        // A good client afterwards is the first and only connection the server saw.
        const ok = new WebSocket(`ws://${HOST}:${srv.port}/`, [], { headers: { 'X-Good': 1 } });
        await ended(ok);
        assert.equal(srv.connections(), 1);
        assert.equal(srv.heads.length, 1);
        assert.match(srv.heads[0], /\r\nX-Good: 1(\r\n|$)/);
        assert.doesNotMatch(srv.heads[0], /Set-Cookie/);
      } finally {
        await srv.close();
      }
    },
  );
});
