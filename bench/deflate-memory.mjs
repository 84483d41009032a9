/**
 * What permessage-deflate costs in server memory: RSS per connection with N open connections
 * (default 10,000), for each compression setup, at three moments:
 *   idle    - connected, nothing sent (deflate negotiated but never used);
 *   active  - every client sent one compressed message and got one back (zlib streams live);
 *   later   - after the idle release ran (IDLE_RELEASE_MS x 2 + a margin) with no traffic.
 * The server runs in its own process; a raw client process opens the connections (one
 * handshake offering permessage-deflate each) so client memory is not counted.
 *
 *   node bench/deflate-memory.mjs [--connections=10000] [--quick]
 * Prints a Markdown table (used in docs/compression.md). Not part of `npm test`.
 */
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { arg } from './lib/proc.mjs';

const role = process.argv[2];

if (role === 'server') {
  const { WebSocketServer } = await import('../dist/index.js');
  const { IDLE_RELEASE_MS, liveDeflateContexts } = await import('../dist/node/deflate.js');
  const setup = JSON.parse(process.argv[3]);
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, heartbeat: false, perMessageDeflate: setup });
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  wss.once('listening', () =>
    process.send({ type: 'listening', port: wss.address().port, idleReleaseMs: IDLE_RELEASE_MS }),
  );
  process.on('message', (m) => {
    if (m.type === 'rss') {
      globalThis.gc?.();
      const status = readFileSync('/proc/self/status', 'utf8');
      const rss = Number(/VmRSS:\s+(\d+)/.exec(status)[1]) * 1024;
      process.send({ type: 'rss', rss, connections: wss.clients.size, zlib: liveDeflateContexts() });
    }
  });
  process.on('disconnect', () => process.exit(0));
} else {
  const connections = Number(arg('connections', arg('quick') ? '2000' : '10000'));
  const setups = [
    ['no compression', false],
    ['deflate, defaults (context takeover)', true],
    ['deflate, no context takeover both ways', { serverNoContextTakeover: true, clientNoContextTakeover: true }],
    ['deflate, takeover, 10-bit client window', { clientMaxWindowBits: 10 }],
  ];

  const request = (port) =>
    `GET /echo HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
    'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n';

  // One compressed client message (a 4 KiB JSON-ish text), masked with a zero key for brevity.
  const body = Buffer.from(
    JSON.stringify({ rows: Array.from({ length: 100 }, (_, i) => ({ id: i, name: `item ${i}` })) }),
  );
  const deflated = zlib.deflateRawSync(body, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
  const frame = Buffer.concat([
    Buffer.from([0xc1, 0x80 | 126, deflated.length >> 8, deflated.length & 0xff, 0, 0, 0, 0]),
    deflated,
  ]);

  const ask = (child, type) =>
    new Promise((resolve) => {
      const on = (m) => {
        if (m.type === type) {
          child.off('message', on);
          resolve(m);
        }
      };
      child.on('message', on);
      child.send({ type });
    });
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  const rows = [];
  for (const [name, setup] of setups) {
    const child = fork(new URL(import.meta.url).pathname, ['server', JSON.stringify(setup)], {
      execArgv: ['--expose-gc'],
    });
    const { port, idleReleaseMs } = await new Promise((resolve) => child.once('message', resolve));
    const base = (await ask(child, 'rss')).rss;
    const sockets = [];
    for (let i = 0; i < connections; i += 200) {
      const batch = [];
      for (let j = i; j < Math.min(connections, i + 200); j++) {
        batch.push(
          new Promise((resolve, reject) => {
            const socket = net.connect(port, '127.0.0.1', () => socket.write(request(port)));
            socket.once('data', () => resolve(socket));
            socket.once('error', reject);
          }),
        );
      }
      sockets.push(...(await Promise.all(batch)));
    }
    await sleep(500);
    const idleReading = await ask(child, 'rss');
    const idle = idleReading.rss;
    // One message each way per connection: the server inflates and compresses once.
    let replies = 0;
    await new Promise((resolve) => {
      for (const socket of sockets) {
        socket.once('data', () => {
          if (++replies === sockets.length) resolve();
        });
        socket.write(frame);
      }
    });
    await sleep(500);
    const activeReading = await ask(child, 'rss');
    const active = activeReading.rss;
    await sleep(idleReleaseMs * 2 + 1000);
    const laterReading = await ask(child, 'rss');
    const later = laterReading.rss;
    const per = (rss) => ((rss - base) / connections / 1024).toFixed(1);
    rows.push(
      `| ${name} | ${per(idle)} (${idleReading.zlib}) | ${per(active)} (${activeReading.zlib}) | ${per(later)} (${laterReading.zlib}) |`,
    );
    console.error(`${name}: idle ${per(idle)} KiB, active ${per(active)} KiB, later ${per(later)} KiB per connection`);
    for (const s of sockets) s.destroy();
    child.disconnect();
    await new Promise((r) => child.once('exit', r));
  }
  console.log(`Server RSS per connection, ${connections} connections (KiB; Node ${process.version}):\n`);
  console.log('KiB of RSS per connection, and (in brackets) the zlib streams alive in the server process.\n');
  console.log('| setup | idle | after one message each way | 20+ s later, no traffic |');
  console.log('|---|---|---|---|');
  for (const row of rows) console.log(row);
}
