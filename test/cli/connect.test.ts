/**
 * `duet connect` end to end through pipes: the built CLI against `duet serve` and against
 * hand-made servers, with its exit codes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as net from 'node:net';
import { fileURLToPath } from 'node:url';
import { startServer, HOST } from '../helpers.js';

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

test('a server close prints its code and reason on stderr (1001 exits 0, 4000 exits 1)', async () => {
  for (const [code, exit] of [
    [1001, 0],
    [4000, 1],
  ] as const) {
    const s = await startServer();
    s.wss.on('connection', (ws) => ws.on('message', () => ws.close(code, 'bye now')));
    try {
      const run = await connect([`ws://${HOST}:${s.port}/`], 'x\n', { keepOpen: true }).done;
      assert.equal(run.code, exit);
      assert.equal(run.stderr, `closed: ${code} bye now\n`);
    } finally {
      await s.close();
    }
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
