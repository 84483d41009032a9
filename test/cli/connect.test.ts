/**
 * `duet connect` end to end through pipes: the built CLI against `duet serve` and against
 * hand-made servers, with its exit codes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as https from 'node:https';
import * as net from 'node:net';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from '../../src/index.js';
import { startServer, HOST } from '../helpers.js';
import { selfSignedCert } from '../tls-helpers.js';

const CLI = fileURLToPath(new URL('../../dist/cli/duet.js', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `duet connect ...args`, writing `input` to its stdin (then ending it unless `keepOpen`). */
function connect(
  args: string[],
  input: string,
  opts: { keepOpen?: boolean; onStdout?: (s: string) => void } = {},
): { done: Promise<Run>; child: ReturnType<typeof spawn> } {
  const child = spawn(process.execPath, [CLI, 'connect', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    opts.onStdout?.(stdout);
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.write(input);
  if (!opts.keepOpen) child.stdin.end();
  const done = once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr }));
  return { done, child };
}

async function echoServer() {
  const s = await startServer();
  s.wss.on('connection', (ws, req) => {
    ws.on('message', (d, isBinary) => ws.send(d as Buffer, { binary: isBinary }));
    if (req.url === '/headers')
      ws.send(JSON.stringify({ auth: req.headers.authorization ?? null, protocol: ws.protocol }));
  });
  return s;
}

test('stdin lines go out as text; replies print one per line; stdin end closes with 1000 and exits 0', async () => {
  const s = await echoServer();
  const closes: number[] = [];
  s.wss.on('connection', (ws) => ws.on('close', (code) => closes.push(code)));
  try {
    const { done } = connect([`ws://${HOST}:${s.port}/`], 'hello\nwörld\n\nlast\n');
    const run = await done;
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'hello\nwörld\n\nlast\n');
    assert.equal(run.stderr, '');
    // The server sees the close once it reads the end of TCP: wait for it, within a bound.
    for (let i = 0; i < 500 && closes.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(closes, [1000]);
  } finally {
    await s.close();
  }
});

test('--binary sends lines as binary; binary replies print labelled hex', async () => {
  const s = await echoServer();
  try {
    const run = await connect(['--binary', `ws://${HOST}:${s.port}/`], 'ab\n').done;
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, '[binary 2 bytes] 6162\n');
  } finally {
    await s.close();
  }
});

test('-H headers and --subprotocol reach the server', async () => {
  const s = await echoServer();
  try {
    const run = await connect(
      ['-H', 'Authorization: Bearer t0k', '--subprotocol', 'chat.v1', `ws://${HOST}:${s.port}/headers`],
      '',
    ).done;
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout.trim()), { auth: 'Bearer t0k', protocol: 'chat.v1' });
  } finally {
    await s.close();
  }
});

test('a server close prints its code, what it means and the reason on stderr (1001 exits 0, 4000 and 1009 exit 1)', async () => {
  for (const [code, reason, exit, line] of [
    [1001, 'bye now', 0, 'closed: 1001 going away (reason: bye now)'],
    [4000, 'bye now', 1, 'closed: 4000 application code (reason: bye now)'],
    [1009, '', 1, 'closed: 1009 message too big'],
  ] as const) {
    const s = await startServer();
    s.wss.on('connection', (ws) => ws.on('message', () => ws.close(code, reason)));
    try {
      const run = await connect([`ws://${HOST}:${s.port}/`], 'x\n', { keepOpen: true }).done;
      assert.equal(run.code, exit);
      assert.equal(run.stderr, `${line}\n`);
    } finally {
      await s.close();
    }
  }
});

test('--max-payload exceeded on the server: "closed: 1009 message too big" and exit 1', async () => {
  const s = await startServer({ maxPayload: 10 });
  try {
    const run = await connect([`ws://${HOST}:${s.port}/`], 'more than ten bytes\n', { keepOpen: true }).done;
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^closed: 1009 message too big\b/);
  } finally {
    await s.close();
  }
});

test('--wait SECONDS: after stdin ends, what arrives meanwhile is still printed; then 1000 and exit 0', async () => {
  const s = await startServer();
  const closes: number[] = [];
  s.wss.on('connection', (ws) => {
    ws.on('close', (code) => closes.push(code));
    // Answers come well after stdin has ended: only --wait lets them be printed.
    ws.on('message', (d) => {
      const text = (d as Buffer).toString();
      setTimeout(() => {
        if (ws.readyState === ws.OPEN) ws.send(`late ${text}`);
      }, 300);
    });
  });
  try {
    const waited = await connect(['--wait', '30', `ws://${HOST}:${s.port}/`], 'a\nb\n', {
      onStdout: (out) => {
        // Seen both: end the wait early by closing from the server, as a finished stream does.
        if (out.includes('late b')) for (const ws of s.wss.clients) ws.close(1000);
      },
    }).done;
    assert.equal(waited.code, 0, waited.stderr);
    assert.equal(waited.stdout, 'late a\nlate b\n');
    // Without --wait the connection closes as stdin ends: the late answers are not printed.
    const quick = await connect([`ws://${HOST}:${s.port}/`], 'c\n').done;
    assert.equal(quick.code, 0, quick.stderr);
    assert.equal(quick.stdout, '');
    // A short --wait runs out by itself and closes with 1000.
    const short = await connect(['-w', '0.2', `ws://${HOST}:${s.port}/`], '').done;
    assert.equal(short.code, 0, short.stderr);
    assert.equal(short.stderr, '');
    for (let i = 0; i < 500 && closes.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(closes.length, 3);
    assert.equal(closes[2], 1000, 'the --wait that ran out closed with 1000');
  } finally {
    await s.close();
  }
});

test('--wait and --handshake-timeout refuse values that are not a duration', async () => {
  for (const [args, message] of [
    [['--wait', 'soon'], /--wait takes a number of seconds, 0 to 2147483, got "soon"/],
    [['--wait', '-1'], /--wait takes a number of seconds, 0 to 2147483, got "-1"/],
    [['--wait', '9999999'], /--wait takes a number of seconds/],
    [['--handshake-timeout', '0'], /--handshake-timeout must be 1-2147483647 milliseconds, got 0/],
    [['--handshake-timeout', '1s'], /--handshake-timeout must be a whole number, got "1s"/],
  ] as const) {
    const run = await connect([...args, `ws://${HOST}:1/`], '').done;
    assert.equal(run.code, 1, args.join(' '));
    assert.match(run.stderr, message, args.join(' '));
  }
});

test('--handshake-timeout MS: a host that accepts TCP and never answers fails after MS, saying so', async () => {
  const sockets: net.Socket[] = [];
  const silent = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
  });
  silent.listen(0, HOST);
  await once(silent, 'listening');
  try {
    const port = (silent.address() as net.AddressInfo).port;
    const run = await connect(['--handshake-timeout', '300', `ws://${HOST}:${port}/`], '').done;
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      'duet connect: Opening handshake timed out after 300 ms (--handshake-timeout MS waits longer)\n',
    );
    assert.equal(sockets.length, 1, 'the TCP connection was accepted');
  } finally {
    for (const socket of sockets) socket.destroy();
    silent.close();
  }
});

test('the wrong scheme: wss:// to a plain server and ws:// to a TLS server say so and give the other URL', async () => {
  const plain = await startServer();
  const { cert, key } = selfSignedCert();
  const secureHttp = https.createServer({ cert, key });
  const secure = new WebSocketServer({ server: secureHttp });
  secureHttp.listen(0, HOST);
  await once(secureHttp, 'listening');
  const securePort = (secureHttp.address() as net.AddressInfo).port;
  try {
    const toPlain = await connect([`wss://${HOST}:${plain.port}/echo`], '').done;
    assert.equal(toPlain.code, 1);
    assert.equal(
      toPlain.stderr,
      `duet connect: ${HOST}:${plain.port} answered in plain text, not TLS: it is a ws:// server, not wss://; try ws://${HOST}:${plain.port}/echo\n`,
    );
    const toSecure = await connect([`ws://${HOST}:${securePort}/echo`], '').done;
    assert.equal(toSecure.code, 1);
    assert.equal(
      toSecure.stderr,
      `duet connect: ${HOST}:${securePort} speaks TLS: it is a wss:// server, not ws://; try wss://${HOST}:${securePort}/echo\n`,
    );
    // And the URL it suggests works.
    const right = await connect(['--insecure', `wss://${HOST}:${securePort}/echo`], '').done;
    assert.equal(right.code, 0, right.stderr);
  } finally {
    await plain.close();
    await new Promise<void>((resolve) => secure.close(() => resolve()));
    secureHttp.closeAllConnections();
    secureHttp.close();
  }
});

test('connection failures print one line and exit 1: refused, HTTP status, bad URL', async () => {
  const probe = net.createServer();
  probe.listen(0, HOST);
  await once(probe, 'listening');
  const port = (probe.address() as net.AddressInfo).port;
  probe.close();
  await once(probe, 'close');
  const refused = await connect([`ws://${HOST}:${port}/`], '').done;
  assert.equal(refused.code, 1);
  assert.equal(refused.stderr, `duet connect: Connection refused by ${HOST}:${port}\n`);

  const http = net.createServer((sock) => {
    sock.on('error', () => {});
    sock.once('data', () =>
      sock.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nno entry\n'),
    );
  });
  http.listen(0, HOST);
  await once(http, 'listening');
  try {
    const denied = await connect([`ws://${HOST}:${(http.address() as net.AddressInfo).port}/`], '').done;
    assert.equal(denied.code, 1);
    assert.equal(denied.stderr.split('\n').length, 2, 'one line');
    assert.match(denied.stderr, /403 Forbidden \(no entry\)/);
  } finally {
    http.close();
  }

  const bad = await connect(['ftp://example/'], '').done;
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /scheme/);
});

test('messages arriving from others are printed while stdin stays open (chat)', async () => {
  const s = await startServer();
  s.wss.on('connection', (ws) => {
    ws.on('message', (d) => {
      for (const peer of s.wss.clients) peer.send(d, { binary: false });
    });
  });
  try {
    let seen: () => void = () => {};
    const got = new Promise<void>((r) => (seen = r));
    const listener = connect([`ws://${HOST}:${s.port}/`], '', {
      keepOpen: true,
      onStdout: (out) => out.includes('from b') && seen(),
    });
    for (let i = 0; i < 500 && s.wss.clients.size < 1; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(s.wss.clients.size, 1, 'the listener connected');
    const talker = await connect([`ws://${HOST}:${s.port}/`], 'from b\n').done;
    assert.equal(talker.code, 0);
    await got;
    listener.child.stdin!.end();
    const run = await listener.done;
    assert.equal(run.code, 0);
    assert.equal(run.stdout, 'from b\n');
  } finally {
    await s.close();
  }
});
