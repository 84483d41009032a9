/**
 * What a tiny compressed message costs the server (issue 13, point 11): server CPU per
 * message for `--messages` text messages of `--size` bytes echoed by `duet serve --deflate`
 * on /echo, sent
 *   plain       uncompressed (RSV1 clear), though deflate was negotiated;
 *   takeover    compressed, the server keeping an inflater per connection;
 *   no takeover compressed with client_no_context_takeover (the server borrows a pooled one).
 * The echo is below the server's threshold (1 KiB), so it goes back uncompressed: the figure
 * is the cost of inflating. `--conns` connections share the messages, each keeping up to
 * `--window` in flight. CPU is the server process's (all threads) from /proc.
 *
 * The default 8,000 messages over 4 connections stay within each connection's inflate budget
 * (maxInflateRate counts a tiny message as 16 KiB: 2,048 of them are the 32 MiB burst).
 *
 *   npm run build && node bench/deflate-tiny.mjs [--messages=8000] [--size=32] [--conns=4]
 *     [--window=50] [--dist=DIR] [--serve='...']
 * Not part of `npm test`.
 */
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import zlib from 'node:zlib';
import { arg, procStat, sleep, startDuetServe } from './lib/proc.mjs';
import { closeFrame, connect, maskedFrame } from './lib/wire.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(arg('dist', path.join(here, '..', 'dist')));
const messages = Number(arg('messages', '8000'));
const size = Number(arg('size', '32'));
const conns = Number(arg('conns', '4'));
const windowSize = Number(arg('window', '50'));
const serveArgs = arg('serve', '')
  .split(' ')
  .filter((s) => s !== '');

async function run(mode) {
  const { server, port } = await startDuetServe(path.join(dist, 'cli', 'duet.js'), [
    '--deflate',
    '--port',
    '0',
    ...serveArgs,
  ]);
  const offer = mode === 'no takeover' ? 'permessage-deflate; client_no_context_takeover' : 'permessage-deflate';
  const body = Buffer.from('x'.repeat(size - 8) + 'abcdefgh');
  const payload =
    mode === 'plain' ? body : zlib.deflateRawSync(body, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
  const frame = maskedFrame(0x1, payload, undefined, mode !== 'plain');
  const readBuffer = Buffer.allocUnsafe(64 * 1024);
  const perConn = Math.ceil(messages / conns);

  const clients = await Promise.all(
    Array.from(
      { length: conns },
      (_, id) =>
        new Promise((resolve) => {
          const c = connect(
            port,
            '/echo',
            readBuffer,
            {
              open: () => resolve(c),
              start() {},
              data() {},
              end(c) {
                c.received++;
                if (c.sent < perConn) {
                  c.sent++;
                  c.socket.write(frame);
                } else if (c.received === perConn) c.done();
              },
              close() {},
              fail: (_c, m) => console.error(m),
              gone() {},
            },
            id,
            undefined,
            offer,
          );
          Object.assign(c, { sent: 0, received: 0 });
        }),
    ),
  );
  // Warm up the server (JIT, zlib streams) with a few round trips first.
  const round = (count) =>
    Promise.all(
      clients.map(
        (c) =>
          new Promise((resolve) => {
            c.sent = 0;
            c.received = 0;
            c.done = resolve;
            const first = Math.min(windowSize, count);
            c.sent = first;
            c.socket.write(Buffer.concat(Array.from({ length: first }, () => frame)));
          }),
      ),
    );
  const saved = perConn;
  await round(Math.min(200, saved));
  await sleep(200);
  const before = procStat(server.pid);
  const t0 = performance.now();
  await round(saved);
  const ms = performance.now() - t0;
  const after = procStat(server.pid);
  for (const c of clients) {
    c.closing = true;
    c.socket.end(closeFrame(1000));
  }
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  const cpuMs = after.userMs + after.systemMs - before.userMs - before.systemMs;
  const total = perConn * conns;
  return {
    mode,
    messages: total,
    cpuUsPerMessage: Number(((cpuMs * 1000) / total).toFixed(1)),
    perSecond: Math.round(total / (ms / 1000)),
  };
}

const rows = [];
for (const mode of ['plain', 'takeover', 'no takeover']) rows.push(await run(mode));
console.log(
  `${messages} text messages of ${size} B echoed by duet serve --deflate (${conns} connections, ${windowSize} in flight each; Node ${process.version}):\n`,
);
console.log('| sent | server CPU per message | messages/s |');
console.log('|---|---|---|');
for (const r of rows) console.log(`| ${r.mode} | ${r.cpuUsPerMessage} µs | ${r.perSecond} |`);
